"""A local Telegram Bot API server for the tests: the real wire protocol, in memory.

It answers ``POST/GET /bot<token>/<method>`` with JSON, form-urlencoded or query parameters
(what python-telegram-bot sends) and replies ``{"ok": true, "result": ...}`` or Telegram's own
errors (``{"ok": false, "error_code": 400, "description": "Bad Request: ..."}``, 401 for a wrong
token, 409 for getUpdates while a webhook is set, 429 with ``parameters.retry_after``). It keeps
chats and messages, so edits, replies and "message is not modified" behave as on Telegram, and it
records every call by method.

Tests inject what users do (:meth:`FakeBotApi.user_message`, :meth:`press`, :meth:`react`,
:meth:`edit`): the update is queued for ``getUpdates`` long polling (honouring ``offset``,
``timeout`` and ``allowed_updates``) or, while a webhook is set, posted to
:attr:`webhook_delivery_url` with the ``X-Telegram-Bot-Api-Secret-Token`` header, as a TLS proxy
in front of the bot would receive it.

Methods: getMe, getUpdates, setWebhook, deleteWebhook, getWebhookInfo, sendMessage,
sendChatAction, editMessageReplyMarkup, editMessageText, answerCallbackQuery, setMyCommands,
getMyCommands, deleteMyCommands, close, logOut. Anything else is 404 "Not Found".
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.integration.fakes.telegram_methods import BotApiMethods
from tests.integration.fakes.telegram_wire import (
    ApiCall,
    ApiError,
    JSONDict,
    auto_entities,
    error_response,
    read_params,
)


class FakeBotApi(BotApiMethods):
    def __init__(
        self,
        token: str,
        *,
        bot_id: int = 7_000_001,
        username: str = "thumbloop_test_bot",
        poll_step_s: float = 0.05,
    ) -> None:
        bot: JSONDict = {
            "id": bot_id,
            "is_bot": True,
            "first_name": "Thumbloop",
            "username": username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        super().__init__(bot, poll_step_s=poll_step_s)
        self.token = token
        self.calls: list[ApiCall] = []
        self.rejected_requests = 0  # wrong token
        self.webhook_delivery_url: str | None = None
        self._failures: dict[str, list[ApiError]] = {}
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(900_000_001)
        self.app = Starlette(
            routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])]
        )

    # --- HTTP -------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            with self._lock:
                self.rejected_requests += 1
            return error_response(ApiError(401, "Unauthorized"))
        method = request.path_params["method"]
        handler = self._methods.get(method.lower())
        if handler is None:
            return error_response(ApiError(404, "Not Found: method not found"))
        try:
            params = await read_params(request)
        except ValueError as exc:
            return error_response(ApiError(400, f"Bad Request: {exc}"))
        with self._lock:
            self.calls.append(ApiCall(method, params))
            queued = self._failures.get(method.lower())
            failure = queued.pop(0) if queued else None
        if failure is not None:
            return error_response(failure)
        try:
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as exc:
            return error_response(exc)
        return JSONResponse({"ok": True, "result": result})

    # --- what tests use ---------------------------------------------------------------------

    def calls_to(self, method: str) -> list[ApiCall]:
        with self._lock:
            return [c for c in self.calls if c.method.lower() == method.lower()]

    def fail_next(
        self,
        method: str,
        code: int = 429,
        description: str | None = None,
        *,
        retry_after: int | None = None,
        times: int = 1,
    ) -> None:
        """The next ``times`` calls of ``method`` answer with this error (429: flood control)."""
        if code == 429 and retry_after is None:
            retry_after = 1
        text = description or (
            f"Too Many Requests: retry after {retry_after}" if code == 429 else "Bad Request"
        )
        params = {"retry_after": retry_after} if retry_after is not None else None
        with self._lock:
            self._failures.setdefault(method.lower(), []).extend(
                ApiError(code, text, params) for _ in range(times)
            )

    def user(self, user_id: int, first_name: str = "Ada", username: str | None = None) -> JSONDict:
        u: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            u["username"] = username
        return u

    def private_chat(self, user: JSONDict) -> JSONDict:
        chat = {"id": user["id"], "type": "private", "first_name": user["first_name"]}
        with self._lock:
            self.chats[chat["id"]] = chat
        return chat

    def group_chat(self, chat_id: int, title: str = "Thumbloop testers") -> JSONDict:
        chat = {"id": chat_id, "type": "supergroup", "title": title}
        with self._lock:
            self.chats[chat_id] = chat
        return chat

    def user_message(
        self,
        chat: JSONDict,
        user: JSONDict,
        text: str | None = None,
        *,
        reply_to: JSONDict | None = None,
        **content: Any,
    ) -> JSONDict:
        """A user sends a message (text, or other content such as ``sticker=...``)."""
        msg = self._new_message(chat, user, reply_to)
        if text is not None:
            msg["text"] = text
            entities = auto_entities(text)
            if entities:
                msg["entities"] = entities
        msg.update(content)
        with self._lock:
            self.messages[(chat["id"], msg["message_id"])] = msg
        self.inject({"message": msg})
        return msg

    def sticker(self, chat: JSONDict, user: JSONDict) -> JSONDict:
        return self.user_message(
            chat,
            user,
            sticker={
                "file_id": "CAACAgIAAxkBAAEBsticker",
                "file_unique_id": "AgADsticker",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
                "emoji": "😀",
            },
        )

    def edit(self, message: JSONDict, text: str) -> JSONDict:
        """The user edits a message they sent."""
        edited = {**message, "text": text, "edit_date": int(time.time())}
        with self._lock:
            self.messages[(message["chat"]["id"], message["message_id"])] = edited
        self.inject({"edited_message": edited})
        return edited

    def press(self, user: JSONDict, message: JSONDict, data: str) -> str:
        """The user presses an inline button carrying ``data`` under ``message``."""
        query_id = str(next(self._query_ids))
        with self._lock:
            self._queries[query_id] = False
            current = self.messages.get((message["chat"]["id"], message["message_id"]), message)
        self.inject(
            {
                "callback_query": {
                    "id": query_id,
                    "from": user,
                    "message": current,
                    "chat_instance": f"ci{message['chat']['id']}",
                    "data": data,
                }
            }
        )
        return query_id

    def react(
        self,
        user: JSONDict,
        message: JSONDict,
        new: list[str],
        old: list[str] | None = None,
    ) -> None:
        self.inject(
            {
                "message_reaction": {
                    "chat": message["chat"],
                    "message_id": message["message_id"],
                    "user": user,
                    "date": int(time.time()),
                    "old_reaction": [{"type": "emoji", "emoji": e} for e in old or []],
                    "new_reaction": [{"type": "emoji", "emoji": e} for e in new],
                }
            }
        )

    def inject(self, body: JSONDict) -> JSONDict:
        """Queue an update (or deliver it to the webhook, when one is set)."""
        with self._lock:
            update = {"update_id": next(self._update_ids), **body}
            webhook = dict(self.webhook) if self.webhook else None
            if webhook is None:
                self._pending.append(update)
                return update
        if not self._allowed(update):
            with self._lock:
                self.dropped_updates.append(update)
            return update
        if self.webhook_delivery_url is None:
            raise RuntimeError("a webhook is set but the test gave no webhook_delivery_url")
        headers = {}
        if webhook.get("secret_token"):
            headers["X-Telegram-Bot-Api-Secret-Token"] = webhook["secret_token"]
        resp = httpx.post(self.webhook_delivery_url, json=update, headers=headers, timeout=10)
        resp.raise_for_status()
        return update

    def bot_messages(self, chat_id: int | None = None) -> list[JSONDict]:
        with self._lock:
            return [
                m
                for (cid, _), m in sorted(self.messages.items())
                if m.get("from", {}).get("id") == self.bot["id"]
                and (chat_id is None or cid == chat_id)
            ]

    def message(self, chat_id: int, message_id: int) -> JSONDict:
        with self._lock:
            return self.messages[(chat_id, message_id)]

    def query_answered(self, query_id: str) -> bool:
        with self._lock:
            return self._queries.get(query_id, False)
