"""Follow the MLflow alias: when it moves, load the new version in the background and swap.

A version whose load fails (a registry or network error, a broken bundle, a model that fails its
warm-up checks) is tried again with backoff, ``RETRY_FIRST_S`` doubling to ``RETRY_MAX_S``, for
as long as the alias points at it: a transient error must not pin the old model for good, and a
version that is truly broken costs one attempt every few minutes. A version is served only once
a load (which runs the checks) succeeds.

Before loading, the watcher reads the version's tags: a version the admission rule refuses
(:func:`serving.admission.refusal`: a failed gate, or no gate verdict on a version that is not
a seed, without a ``promote --force`` override) is not loaded at all. The refusal is logged and
reported once per move of the alias (``on_refused``); the old model keeps serving, and the tags
are read again at every poll, so an override or a move of the alias takes effect at the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from serving.admission import alias_version_tags, parse_models_uri, refusal
from serving.engine import ActiveModel, ModelHolder

log = logging.getLogger(__name__)

RETRY_FIRST_S = 2.0
RETRY_MAX_S = 300.0


class AliasWatcher:
    def __init__(
        self,
        uri: str,
        tracking_uri: str,
        holder: ModelHolder,
        load: Callable[[str], ActiveModel],
        interval_s: float,
        on_result: Callable[[str, ActiveModel | None], None] | None = None,
        on_refused: Callable[[str, str], None] | None = None,
        retry_first_s: float = RETRY_FIRST_S,
        retry_max_s: float = RETRY_MAX_S,
        clock: Callable[[], float] = time.monotonic,
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
        self._on_refused = on_refused
        self._refused: str | None = None  # the version refused last, reported once per move
        self.retry_first_s, self.retry_max_s = retry_first_s, retry_max_s
        self._clock = clock
        self._failed: str | None = None  # the version whose last load failed
        self._failures = 0  # its failed loads in a row
        self._retry_at = 0.0  # when it may be tried again (on the clock)
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
        found = await asyncio.to_thread(
            alias_version_tags, self.tracking_uri, self.name, self.alias
        )
        target, tags = found if found else (None, {})
        current = self.holder.current
        wanted = f"{self.name}/{target}" if target else None
        serving = current is not None and current.version == wanted
        if wanted != self._failed or serving:  # the alias moved on, or the version got loaded
            self._failed, self._failures = None, 0
        if wanted != self._refused:
            self._refused = None
        if wanted is None or serving:
            return False
        why = refusal(tags)
        if why is not None:
            if wanted != self._refused:
                self._refused = wanted
                log.error(
                    "alias %s@%s points at %s, refused: %s; still serving %s (promote it with "
                    "`thumbloop promote --force %s` to serve it anyway)",
                    self.name,
                    self.alias,
                    wanted,
                    why,
                    current and current.version,
                    target,
                )
                if self._on_refused:
                    self._on_refused(wanted, why)
            return False
        self._refused = None
        if wanted == self._failed and self._clock() < self._retry_at:
            return False
        log.info(
            "alias %s@%s points at version %s: loading%s",
            self.name,
            self.alias,
            target,
            f" (attempt {self._failures + 1})" if self._failures else "",
        )
        try:
            new = await asyncio.to_thread(self._load, f"models:/{self.name}/{target}")
        except Exception:
            self._failed, self._failures = wanted, self._failures + 1
            delay = min(self.retry_first_s * 2 ** (self._failures - 1), self.retry_max_s)
            self._retry_at = self._clock() + delay
            log.exception(
                "loading %s failed; still serving %s; trying again in %.1f s",
                wanted,
                current and current.version,
                delay,
            )
            if self._on_result:
                self._on_result(wanted, None)
            return False
        self._failed, self._failures = None, 0
        old = self.holder.swap(new)
        log.info("now serving %s (was %s)", new.version, old and old.version)
        if self._on_result:
            self._on_result(wanted, new)
        return True

    def _next_check_in(self) -> float:
        """The poll interval, or less when a failed version's retry is due before then."""
        if self._failed is None:
            return self.interval
        return max(0.0, min(self.interval, self._retry_at - self._clock()))

    async def _run(self) -> None:
        registry_down = False
        while True:
            # not sooner than the interval while the registry fails, even with a retry due
            await asyncio.sleep(self.interval if registry_down else self._next_check_in())
            try:
                await self.check_once()
            except Exception:  # a registry hiccup must not kill the watcher
                log.exception("alias check failed")
                registry_down = True
            else:
                registry_down = False
