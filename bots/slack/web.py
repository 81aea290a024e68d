"""The Web API calls the Slack handlers make that must never raise: a failed update or notice is
logged with Slack's error code, and the handler goes on."""

from __future__ import annotations

import logging
from typing import Any

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)


def api_error(exc: SlackApiError) -> str:
    """Slack's error code, or the HTTP status when the answer was not Slack's JSON."""
    error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
    return str(error or f"HTTP {exc.response.status_code}")


async def update_message(
    client: AsyncWebClient, channel: str, ts: str, text: str, blocks: list[dict[str, Any]]
) -> None:
    try:
        await client.chat_update(channel=channel, ts=ts, text=text or "Thumbloop", blocks=blocks)
    except SlackApiError as exc:
        log.warning("recorded, but the message was not updated: %s", api_error(exc))


async def post_ephemeral(client: AsyncWebClient, channel: str, user: str, text: str) -> None:
    try:
        await client.chat_postEphemeral(channel=channel, user=user, text=text)
    except SlackApiError as exc:
        log.warning("ephemeral not delivered: %s", api_error(exc))
