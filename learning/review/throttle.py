"""Login rate limiting for the review inbox: per account name and per client address, a few
failed logins are free, then each further failure locks that name or address for a delay that
doubles (up to a cap); a success clears both. In process: the inbox is one process.

An attempt is counted when it is admitted, before its password is checked, and uncounted by a
success: a burst of concurrent guesses cannot all slip in before the first failure is recorded.
A failure then starts its lock again, so the wait runs from the answer the user saw.
Names are counted as typed whether or not such a reviewer exists, and a locked attempt is
refused before any hash is checked, so neither the lock nor its timing tells which names exist.

Memory is bounded: keys are fixed-size digests (a 60 KiB "name" costs what "alice" costs), and
each table holds at most ``max_entries``, forgetting idle entries first, then the least recently
failed ones."""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Policy:
    """``free`` failures in a row pass; the ``free``-th locks the key for ``base_s``, and every
    failure after it twice as long as the one before, at most ``max_s``. A key with no failure
    for ``forget_s`` starts over."""

    free: int
    base_s: float
    max_s: float
    forget_s: float

    def __post_init__(self) -> None:
        if self.free < 1 or self.base_s <= 0 or self.max_s < self.base_s:
            raise ValueError("a policy needs free >= 1 and 0 < base_s <= max_s")
        if self.forget_s < self.max_s:
            raise ValueError("forget_s must be at least max_s, or a lock would outlive its count")

    def delay(self, failures: int) -> float:
        """How long ``failures`` failures in a row lock the key (0: not yet)."""
        if failures < self.free:
            return 0.0
        # the exponent is capped so a huge count cannot overflow the float
        return min(self.max_s, self.base_s * 2.0 ** min(failures - self.free, 64))


# a reviewer who mistypes five times waits 30 s, then 1, 2, 4 ... minutes, at most 15; one address
# may fail more often (reviewers behind one NAT) before it is slowed down the same way
ACCOUNT = Policy(free=5, base_s=30.0, max_s=900.0, forget_s=3600.0)
ADDRESS = Policy(free=20, base_s=30.0, max_s=900.0, forget_s=3600.0)
MAX_ENTRIES = 20_000


@dataclass(slots=True)
class _Entry:
    failures: int
    last: float  # when the latest attempt was counted
    until: float  # locked until (clock time); <= last when not locked


class _Table:
    """One kind of key (account or address) under one policy, oldest-failed first."""

    def __init__(self, policy: Policy, max_entries: int) -> None:
        self.policy = policy
        self.max_entries = max_entries
        self.entries: OrderedDict[bytes, _Entry] = OrderedDict()

    def _live(self, key: bytes, now: float) -> _Entry | None:
        entry = self.entries.get(key)
        if entry is not None and now - entry.last >= self.policy.forget_s and now >= entry.until:
            del self.entries[key]
            return None
        return entry

    def wait(self, key: bytes, now: float) -> float:
        entry = self._live(key, now)
        return max(0.0, entry.until - now) if entry else 0.0

    def count(self, key: bytes, now: float) -> None:
        entry = self._live(key, now)
        if entry is None:
            entry = self.entries[key] = _Entry(0, now, now)
        entry.failures += 1
        entry.last = now
        entry.until = now + self.policy.delay(entry.failures)
        self.entries.move_to_end(key)
        self._trim(now)

    def restart(self, key: bytes, now: float) -> None:
        entry = self.entries.get(key)
        if entry is not None:
            entry.last = now
            entry.until = max(entry.until, now + self.policy.delay(entry.failures))
            self.entries.move_to_end(key)

    def clear(self, key: bytes) -> None:
        self.entries.pop(key, None)

    def _trim(self, now: float) -> None:
        # the front holds the entries counted longest ago: idle ones go first, for free
        while self.entries:
            _, oldest = next(iter(self.entries.items()))
            idle = now - oldest.last >= self.policy.forget_s and now >= oldest.until
            if not idle and len(self.entries) <= self.max_entries:
                break
            self.entries.popitem(last=False)


def _key(kind: bytes, value: str) -> bytes:
    return hashlib.blake2b(
        value.encode("utf-8", "surrogatepass"), digest_size=16, person=kind
    ).digest()


class LoginThrottle:
    """Decides whether a login attempt may check its password.

    ``admit(name, address)`` returns 0 and counts the attempt as a failure in advance, or the
    seconds to wait (nothing counted); ``failed(name, address)`` starts the lock again from the
    moment the password was found wrong (checking it takes a while); ``succeeded(name,
    address)`` clears both keys."""

    def __init__(
        self,
        account: Policy = ACCOUNT,
        address: Policy = ADDRESS,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.accounts = _Table(account, max_entries)
        self.addresses = _Table(address, max_entries)
        self.clock = clock
        self._lock = threading.Lock()

    def admit(self, name: str, address: str) -> float:
        """0 when the attempt may go on (and is counted), else the seconds until it may."""
        a, b = _key(b"account", name), _key(b"address", address)
        with self._lock:
            now = self.clock()
            wait = max(self.accounts.wait(a, now), self.addresses.wait(b, now))
            if wait > 0:
                return wait
            self.accounts.count(a, now)
            self.addresses.count(b, now)
            return 0.0

    def failed(self, name: str, address: str) -> None:
        with self._lock:
            now = self.clock()
            self.accounts.restart(_key(b"account", name), now)
            self.addresses.restart(_key(b"address", address), now)

    def succeeded(self, name: str, address: str) -> None:
        with self._lock:
            self.accounts.clear(_key(b"account", name))
            self.addresses.clear(_key(b"address", address))

    def held(self) -> int:
        """Entries held, both tables together (what memory grows with)."""
        return len(self.accounts.entries) + len(self.addresses.entries)


def retry_after(wait_s: float) -> int:
    """The ``Retry-After`` header's whole seconds: never 0 while locked."""
    return max(1, math.ceil(wait_s))


def in_words(wait_s: float) -> str:
    seconds = retry_after(wait_s)
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    return f"{math.ceil(seconds / 60)} minutes"
