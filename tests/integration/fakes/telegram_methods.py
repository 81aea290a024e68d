"""The Bot API methods the fake server answers, over the chats, messages, webhook and commands it
keeps (:class:`tests.integration.fakes.telegram_server.FakeBotApi` adds HTTP and what tests do).

Methods: getMe, getUpdates, setWebhook, deleteWebhook, getWebhookInfo, sendMessage,
sendChatAction, editMessageReplyMarkup, editMessageText, answerCallbackQuery, setMyCommands,
getMyCommands, deleteMyCommands, close, logOut.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.integration.fakes.telegram_wire import (
    CHAT_ACTIONS,
    DEFAULT_EXCLUDED,
    NOT_MODIFIED,
    UPDATE_KINDS,
    ApiError,
    JSONDict,
    check_markup,
    scope_key,
    utf16_len,
)


class BotApiMethods:
    def __init__(self, bot: JSONDict, *, poll_step_s: float) -> None:
        self.bot = bot
        self.poll_step_s = poll_step_s
        self.dropped_updates: list[JSONDict] = []  # not in allowed_updates
        self.webhook: JSONDict | None = None
        self.allowed_updates: list[str] | None = None
        self.commands: dict[str, list[JSONDict]] = {}
        self.chats: dict[int, JSONDict] = {}
        self.messages: dict[tuple[int, int], JSONDict] = {}
        self._pending: list[JSONDict] = []
        self._queries: dict[str, bool] = {}  # callback query id -> answered
        self._lock = threading.RLock()
        self._message_ids: dict[int, itertools.count[int]] = {}
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

    def _allowed(self, update: JSONDict) -> bool:
        kind = next((k for k in UPDATE_KINDS if k in update), None)
        if kind is None:
            return False
        if not self.allowed_updates:
            return kind not in DEFAULT_EXCLUDED
        return kind in self.allowed_updates

    def pending(self) -> list[JSONDict]:
        """The updates not confirmed yet (what ``getUpdates`` would send again)."""
        with self._lock:
            return [dict(u) for u in self._pending]

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
        markup = check_markup(p.get("reply_markup"))
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
        markup = check_markup(p.get("reply_markup"))
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
        markup = check_markup(p.get("reply_markup"))
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
            self.commands[scope_key(p)] = commands
        return True

    def _get_my_commands(self, p: JSONDict) -> list[JSONDict]:
        with self._lock:
            return self.commands.get(scope_key(p), [])

    def _delete_my_commands(self, p: JSONDict) -> bool:
        with self._lock:
            self.commands.pop(scope_key(p), None)
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
