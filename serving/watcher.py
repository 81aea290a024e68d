"""Follow the MLflow alias: when it moves, load the new version in the background and swap."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from serving.engine import ActiveModel, ModelHolder
from serving.model_source import alias_target, parse_models_uri

log = logging.getLogger(__name__)


class AliasWatcher:
    def __init__(
        self,
        uri: str,
        tracking_uri: str,
        holder: ModelHolder,
        load: Callable[[str], ActiveModel],
        interval_s: float,
        on_result: Callable[[str, ActiveModel | None], None] | None = None,
    ) -> None:
        name, alias, _ = parse_models_uri(uri)
        if alias is None:
            raise ValueError(f"{uri}: only an alias (models:/NAME@ALIAS) can be watched")
        self.name, self.alias = name, alias
        self.tracking_uri = tracking_uri
        self.holder = holder
        self._load = load
        self.interval = interval_s
        self._on_result = on_result
        self._failed: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="alias-watcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def check_once(self) -> bool:
        """Returns True when a new version was swapped in."""
        target = await asyncio.to_thread(alias_target, self.tracking_uri, self.name, self.alias)
        current = self.holder.current
        wanted = f"{self.name}/{target}" if target else None
        if wanted is None or (current and current.version == wanted) or wanted == self._failed:
            return False
        log.info("alias %s@%s moved to version %s: loading", self.name, self.alias, target)
        try:
            new = await asyncio.to_thread(self._load, f"models:/{self.name}/{target}")
        except Exception:
            log.exception(
                "loading %s failed; still serving %s", wanted, current and current.version
            )
            self._failed = wanted
            if self._on_result:
                self._on_result(wanted, None)
            return False
        self._failed = None
        old = self.holder.swap(new)
        log.info("now serving %s (was %s)", new.version, old and old.version)
        if self._on_result:
            self._on_result(wanted, new)
        return True

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.check_once()
            except Exception:  # a registry hiccup must not kill the watcher
                log.exception("alias check failed")
