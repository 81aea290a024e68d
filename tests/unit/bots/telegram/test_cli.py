"""``thumbloop bot telegram``'s log filter: the bot token never reaches a log line."""

from __future__ import annotations

import logging
import sys

from bots.telegram.cli import REDACTED, TokenRedactor


def test_token_redactor_hides_the_token_in_messages_and_tracebacks() -> None:
    token = "123:SECRET-token"
    redactor = TokenRedactor(token)
    record = logging.LogRecord(
        "httpx", logging.INFO, __file__, 1, "POST %s", (f"https://api/bot{token}/getMe",), None
    )
    assert redactor.filter(record)
    assert token not in record.getMessage() and REDACTED in record.getMessage()
    try:
        raise RuntimeError(f"The token `{token}` was rejected by the server.")
    except RuntimeError:
        failing = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", None, sys.exc_info())
    redactor.filter(failing)
    assert failing.exc_text is not None and token not in failing.exc_text
    assert token not in logging.Formatter().format(failing)
