"""The Bot API's wire format as the fake server speaks it: parameters read the way Telegram reads
them (JSON, form or query, each coerced to its documented type), Telegram's error bodies, the
entities its servers add to users' text, and the checks it makes on inline keyboards."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse

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


def scope_key(p: JSONDict) -> str:
    scope = p.get("scope") or {"type": "default"}
    return f"{scope.get('type')}:{p.get('language_code') or ''}"


def check_markup(markup: Any) -> JSONDict | None:
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


async def read_params(request: Request) -> JSONDict:
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


def error_response(exc: ApiError) -> JSONResponse:
    body: JSONDict = {"ok": False, "error_code": exc.code, "description": exc.description}
    if exc.parameters:
        body["parameters"] = exc.parameters
    return JSONResponse(body, status_code=exc.code)
