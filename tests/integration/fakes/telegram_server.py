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
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

JSONDict = dict[str, Any]

# Telegram's defaults when allowed_updates was never given (or given as []).
DEFAULT_EXCLUDED = {"chat_member", "message_reaction", "message_reaction_count"}
UPDATE_KINDS = (
    "message",
    "edited_message",
    "channel_post",
    "edited_channel_post",
    "callback_query",
    "message_reaction",
    "message_reaction_count",
    "chat_member",
    "my_chat_member",
)
INT_FIELDS = {
    "message_id",
    "offset",
    "limit",
    "timeout",
    "max_connections",
    "cache_time",
    "message_thread_id",
    "reply_to_message_id",
}
BOOL_FIELDS = {"show_alert", "drop_pending_updates", "disable_notification", "protect_content"}
JSON_FIELDS = {
    "reply_markup",
    "allowed_updates",
    "commands",
    "scope",
    "entities",
    "reply_parameters",
    "link_preview_options",
}
CHAT_ACTIONS = {
    "typing",
    "upload_photo",
    "record_video",
    "upload_video",
    "record_voice",
    "upload_voice",
    "upload_document",
    "choose_sticker",
    "find_location",
    "record_video_note",
    "upload_video_note",
}
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)


class ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: JSONDict | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.parameters = code, description, parameters


@dataclass(frozen=True)
class ApiCall:
    method: str
    params: JSONDict
    at: float = field(default_factory=time.monotonic)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def auto_entities(text: str) -> list[JSONDict]:
    """What Telegram's servers add to a user's text: bot commands, @mentions, URLs."""
    out: list[JSONDict] = []
    for kind, pattern in (
        ("bot_command", r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?"),
        ("mention", r"(?<!\w)@[A-Za-z0-9_]{3,32}"),
    ):
        for m in re.finditer(pattern, text):
            if (
                kind == "mention"
                and out
                and any(
                    e["type"] == "bot_command"
                    and e["offset"] <= utf16_len(text[: m.start()]) < e["offset"] + e["length"]
                    for e in out
                )
            ):
                continue
            out.append(
                {
                    "type": kind,
                    "offset": utf16_len(text[: m.start()]),
                    "length": utf16_len(m.group()),
                }
            )
    return sorted(out, key=lambda e: e["offset"])


class FakeBotApi:
    def __init__(
        self,
        token: str,
        *,
        bot_id: int = 7_000_001,
        username: str = "thumbloop_test_bot",
        poll_step_s: float = 0.05,
    ) -> None:
        self.token = token
        self.bot: JSONDict = {
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
        self.poll_step_s = poll_step_s
        self.calls: list[ApiCall] = []
        self.rejected_requests = 0  # wrong token
        self.dropped_updates: list[JSONDict] = []  # not in allowed_updates
        self.webhook: JSONDict | None = None
        self.webhook_delivery_url: str | None = None
        self.allowed_updates: list[str] | None = None
        self.commands: dict[str, list[JSONDict]] = {}
        self.chats: dict[int, JSONDict] = {}
        self.messages: dict[tuple[int, int], JSONDict] = {}
        self._pending: list[JSONDict] = []
        self._queries: dict[str, bool] = {}  # callback query id -> answered
        self._failures: dict[str, list[ApiError]] = {}
        self._lock = threading.RLock()
        self._update_ids = itertools.count(1)
        self._query_ids = itertools.count(900_000_001)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self.app = Starlette(
            routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])]
        )
        self._methods: dict[str, Callable[[JSONDict], Any]] = {
            "getme": lambda p: self.bot,
            "getupdates": self._get_updates,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
            "getwebhookinfo": self._get_webhook_info,
            "sendmessage": self._send_message,
            "sendchataction": self._send_chat_action,
            "editmessagereplymarkup": self._edit_reply_markup,
            "editmessagetext": self._edit_text,
            "answercallbackquery": self._answer_callback_query,
            "setmycommands": self._set_my_commands,
            "getmycommands": self._get_my_commands,
            "deletemycommands": self._delete_my_commands,
            "close": lambda p: True,
            "logout": lambda p: True,
        }

    # --- HTTP -------------------------------------------------------------------------------

    async def _endpoint(self, request: Request) -> JSONResponse:
        if request.path_params["token"] != self.token:
            with self._lock:
                self.rejected_requests += 1
            return _error(ApiError(401, "Unauthorized"))
        method = request.path_params["method"]
        handler = self._methods.get(method.lower())
        if handler is None:
            return _error(ApiError(404, "Not Found: method not found"))
        try:
            params = await _read_params(request)
        except ValueError as exc:
            return _error(ApiError(400, f"Bad Request: {exc}"))
        with self._lock:
            self.calls.append(ApiCall(method, params))
            queued = self._failures.get(method.lower())
            failure = queued.pop(0) if queued else None
        if failure is not None:
            return _error(failure)
        try:
            result = handler(params)
            if asyncio.iscoroutine(result):
                result = await result
        except ApiError as exc:
            return _error(exc)
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

    # --- methods ----------------------------------------------------------------------------

    def _allowed(self, update: JSONDict) -> bool:
        kind = next((k for k in UPDATE_KINDS if k in update), None)
        if kind is None:
            return False
        if not self.allowed_updates:
            return kind not in DEFAULT_EXCLUDED
        return kind in self.allowed_updates

    async def _get_updates(self, p: JSONDict) -> list[JSONDict]:
        with self._lock:
            if self.webhook is not None:
                raise ApiError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                )
            if "allowed_updates" in p:
                self.allowed_updates = list(p["allowed_updates"])
        offset = int(p.get("offset") or 0)
        limit = max(1, min(100, int(p.get("limit") or 100)))
        deadline = time.monotonic() + max(0, int(p.get("timeout") or 0))
        while True:
            with self._lock:
                if offset > 0:  # confirms every update before it
                    self._pending = [u for u in self._pending if u["update_id"] >= offset]
                keep: list[JSONDict] = []
                for u in self._pending:
                    (keep if self._allowed(u) else self.dropped_updates).append(u)
                self._pending = keep
                ready = self._pending[:limit]
            if ready or time.monotonic() >= deadline:
                return ready
            await asyncio.sleep(self.poll_step_s)

    def _set_webhook(self, p: JSONDict) -> bool:
        url = str(p.get("url") or "")
        if not url:
            return self._delete_webhook(p)
        if not url.startswith("https://"):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        secret = p.get("secret_token")
        if secret is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", str(secret)):
            raise ApiError(400, "Bad Request: secret token contains unallowed characters")
        with self._lock:
            self.webhook = {
                "url": url,
                "secret_token": secret,
                "max_connections": p.get("max_connections", 40),
            }
            if "allowed_updates" in p:
                self.allowed_updates = list(p["allowed_updates"])
            if p.get("drop_pending_updates"):
                self._pending.clear()
        return True

    def _delete_webhook(self, p: JSONDict) -> bool:
        with self._lock:
            self.webhook = None
            if p.get("drop_pending_updates"):
                self._pending.clear()
        return True

    def _get_webhook_info(self, p: JSONDict) -> JSONDict:
        with self._lock:
            info: JSONDict = {
                "url": self.webhook["url"] if self.webhook else "",
                "has_custom_certificate": False,
                "pending_update_count": len(self._pending),
            }
            if self.allowed_updates:
                info["allowed_updates"] = self.allowed_updates
        return info

    def _chat(self, p: JSONDict) -> JSONDict:
        try:
            chat_id = int(p["chat_id"])
        except (KeyError, TypeError, ValueError):
            raise ApiError(400, "Bad Request: chat not found") from None
        with self._lock:
            chat = self.chats.get(chat_id)
        if chat is None:
            raise ApiError(400, "Bad Request: chat not found")
        return chat

    def _send_message(self, p: JSONDict) -> JSONDict:
        chat = self._chat(p)
        text = p.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > 4096:
            raise ApiError(400, "Bad Request: message is too long")
        markup = _check_markup(p.get("reply_markup"))
        reply_to = None
        reply_id = (p.get("reply_parameters") or {}).get("message_id") or p.get(
            "reply_to_message_id"
        )
        if reply_id is not None:
            with self._lock:
                reply_to = self.messages.get((chat["id"], int(reply_id)))
            if reply_to is None:
                raise ApiError(400, "Bad Request: message to be replied not found")
        msg = self._new_message(chat, self.bot, reply_to)
        msg["text"] = text
        if markup is not None:
            msg["reply_markup"] = markup
        with self._lock:
            self.messages[(chat["id"], msg["message_id"])] = msg
        return msg

    def _send_chat_action(self, p: JSONDict) -> bool:
        self._chat(p)
        if p.get("action") not in CHAT_ACTIONS:
            raise ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    def _own_message(self, p: JSONDict) -> JSONDict:
        if p.get("inline_message_id"):
            raise ApiError(400, "Bad Request: MESSAGE_ID_INVALID")
        chat = self._chat(p)
        with self._lock:
            msg = self.messages.get((chat["id"], int(p.get("message_id") or 0)))
        if msg is None:
            raise ApiError(400, "Bad Request: message to edit not found")
        if msg.get("from", {}).get("id") != self.bot["id"]:
            raise ApiError(400, "Bad Request: message can't be edited")
        return msg

    def _edit_reply_markup(self, p: JSONDict) -> JSONDict:
        msg = self._own_message(p)
        markup = _check_markup(p.get("reply_markup"))
        if markup == msg.get("reply_markup"):
            raise ApiError(400, NOT_MODIFIED)
        return self._store_edit(msg, {"reply_markup": markup})

    def _edit_text(self, p: JSONDict) -> JSONDict:
        msg = self._own_message(p)
        text = p.get("text")
        if not isinstance(text, str) or not text.strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if utf16_len(text) > 4096:
            raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
        markup = _check_markup(p.get("reply_markup"))
        if text == msg.get("text") and markup == msg.get("reply_markup"):
            raise ApiError(400, NOT_MODIFIED)
        return self._store_edit(msg, {"text": text, "reply_markup": markup})

    def _store_edit(self, msg: JSONDict, changes: JSONDict) -> JSONDict:
        edited = {**msg, **changes, "edit_date": int(time.time())}
        if edited.get("reply_markup") is None:
            edited.pop("reply_markup", None)  # an edit without a keyboard removes it
        with self._lock:
            self.messages[(msg["chat"]["id"], msg["message_id"])] = edited
        return edited

    def _answer_callback_query(self, p: JSONDict) -> bool:
        qid = str(p.get("callback_query_id") or "")
        with self._lock:
            if self._queries.get(qid, True):  # unknown or already answered
                raise ApiError(
                    400,
                    "Bad Request: query is too old and response timeout expired or query ID is "
                    "invalid",
                )
            if len(str(p.get("text") or "")) > 200:
                raise ApiError(400, "Bad Request: MESSAGE_TOO_LONG")
            self._queries[qid] = True
        return True

    def _set_my_commands(self, p: JSONDict) -> bool:
        commands = p.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise ApiError(400, "Bad Request: commands must be an array of at most 100 commands")
        for c in commands:
            if not re.fullmatch(r"[a-z0-9_]{1,32}", str(c.get("command", ""))):
                raise ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", ""))) <= 256:
                raise ApiError(400, "Bad Request: BOT_COMMAND_DESCRIPTION_INVALID")
        with self._lock:
            self.commands[_scope_key(p)] = commands
        return True

    def _get_my_commands(self, p: JSONDict) -> list[JSONDict]:
        with self._lock:
            return self.commands.get(_scope_key(p), [])

    def _delete_my_commands(self, p: JSONDict) -> bool:
        with self._lock:
            self.commands.pop(_scope_key(p), None)
        return True

    def _new_message(self, chat: JSONDict, sender: JSONDict, reply_to: JSONDict | None) -> JSONDict:
        with self._lock:
            ids = self._message_ids.setdefault(chat["id"], itertools.count(1))
            msg: JSONDict = {
                "message_id": next(ids),
                "from": sender,
                "chat": chat,
                "date": int(time.time()),
            }
        if reply_to is not None:
            msg["reply_to_message"] = {k: v for k, v in reply_to.items() if k != "reply_to_message"}
        return msg


def _scope_key(p: JSONDict) -> str:
    scope = p.get("scope") or {"type": "default"}
    return f"{scope.get('type')}:{p.get('language_code') or ''}"


def _check_markup(markup: Any) -> JSONDict | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise ApiError(400, "Bad Request: can't parse reply keyboard markup JSON object")
    rows = markup.get("inline_keyboard")
    if rows is None:
        return markup
    for row in rows:
        for button in row:
            if not button.get("text"):
                raise ApiError(
                    400, "Bad Request: text buttons are unallowed in the inline keyboard"
                )
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= 64:
                raise ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


async def _read_params(request: Request) -> JSONDict:
    raw: dict[str, Any] = dict(request.query_params)
    ctype = request.headers.get("content-type", "")
    if request.method == "POST":
        if ctype.startswith("application/json"):
            body = await request.body()
            if body:
                parsed = json.loads(body)
                if not isinstance(parsed, dict):
                    raise ValueError("JSON body must be an object")
                return {**raw, **parsed}
        elif ctype.startswith("application/x-www-form-urlencoded"):
            form = (await request.body()).decode()
            raw.update(parse_qsl(form, keep_blank_values=True))
        elif ctype.startswith("multipart/form-data"):  # file uploads: not used by the bot
            raise ValueError("multipart uploads are not supported by this test server")
    return {k: _coerce(k, v) for k, v in raw.items()}


def _coerce(name: str, value: Any) -> Any:
    """Form values are strings; Telegram reads each parameter as its documented type."""
    if not isinstance(value, str):
        return value
    try:
        if name in JSON_FIELDS:
            return json.loads(value)
        if name in INT_FIELDS:
            return int(value)
        if name in BOOL_FIELDS:
            return value.lower() in ("true", "1")
        if name == "chat_id":
            return int(value) if re.fullmatch(r"-?\d+", value) else value
    except (ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"can't parse parameter {name}") from exc
    return value


def _error(exc: ApiError) -> JSONResponse:
    body: JSONDict = {"ok": False, "error_code": exc.code, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return JSONResponse(body, status_code=exc.code)


# --- driving the real Application against it ------------------------------------------------


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, step: float = 0.05) -> Any:
    """Polls ``predicate`` until it returns something truthy (returned) or fails the test."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout:.0f}s")
        time.sleep(step)


class BotThread:
    """Runs ``run`` (e.g. ``lambda: run_polling(app, stop_signals=None)``, exactly what the
    CLI calls) on its own event loop in a thread; :meth:`stop` ends it as SIGINT would."""

    def __init__(self, app: Any, run: Callable[[], None]) -> None:
        self.app, self._run = app, run
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._target, name="telegram-bot", daemon=True)

    def _target(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def start(self) -> BotThread:
        self.thread.start()
        return self

    def call(self, fn: Callable[[], Any]) -> None:
        """Runs ``fn`` on the bot's loop (thread-safe)."""
        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(fn)

    def stop(self, timeout: float = 30) -> None:
        if self.thread.is_alive():
            wait_until(lambda: self.app.running or not self.thread.is_alive(), timeout=timeout)
            self.call(self.app.stop_running)
            self.thread.join(timeout)
        assert not self.thread.is_alive(), "the bot did not shut down"
        if self.error is not None:
            raise self.error
