"""Driving the real python-telegram-bot Application against the fake Bot API: on its own event
loop in a thread, stopped the way SIGINT stops it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any


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
