"""The review inbox's login limiter on an injected clock: free failures, a doubling lock with a
cap, accounts and addresses apart, reset on success, forgetting, bounded memory."""

from __future__ import annotations

import pytest

from learning.review.throttle import LoginThrottle, Policy, in_words, retry_after

ACCOUNT = Policy(free=3, base_s=10.0, max_s=40.0, forget_s=100.0)
ADDRESS = Policy(free=6, base_s=5.0, max_s=20.0, forget_s=100.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _throttle(clock: Clock, max_entries: int = 1000) -> LoginThrottle:
    return LoginThrottle(ACCOUNT, ADDRESS, max_entries=max_entries, clock=clock)


def test_a_few_failures_pass_then_the_lock_doubles_up_to_its_cap() -> None:
    clock = Clock()
    t = _throttle(clock)
    assert [t.admit("alice", f"10.0.0.{k}") for k in range(3)] == [0, 0, 0]
    assert t.admit("alice", "10.0.0.9") == 10.0  # the third failure locked the name
    clock.now += 4
    assert t.admit("alice", "10.0.0.9") == 6.0  # refusals do not extend the lock
    waits = []
    for _ in range(4):
        clock.now += t.admit("alice", "10.0.0.9")  # wait it out, fail once more
        assert t.admit("alice", "10.0.0.9") == 0
        waits.append(t.admit("alice", "10.0.0.9"))
    assert waits == [20.0, 40.0, 40.0, 40.0]


def test_a_success_clears_the_name_and_the_address() -> None:
    clock = Clock()
    t = _throttle(clock)
    for _ in range(2):
        assert t.admit("alice", "10.0.0.1") == 0
    assert t.admit("alice", "10.0.0.1") == 0  # the right password, as the third try
    t.succeeded("alice", "10.0.0.1")
    assert t.held() == 0
    for _ in range(3):
        assert t.admit("alice", "10.0.0.1") == 0  # three free failures again
    assert t.admit("alice", "10.0.0.1") > 0


def test_names_and_addresses_are_limited_apart() -> None:
    clock = Clock()
    t = _throttle(clock)
    for _ in range(3):
        t.admit("alice", "10.0.0.1")
    assert t.admit("alice", "192.0.2.7") > 0  # the name is locked from everywhere
    assert t.admit("bob", "10.0.0.1") == 0  # another name from that address is not
    assert t.admit("bob", "192.0.2.7") == 0
    # one address trying many names is stopped by its own limit
    sprayed = [t.admit(f"user{k}", "198.51.100.1") for k in range(7)]
    assert sprayed[:6] == [0] * 6 and sprayed[6] == 5.0
    assert t.admit("carol", "203.0.113.5") == 0  # other addresses still get in


def test_every_attempt_is_counted_when_admitted() -> None:
    # a burst of concurrent guesses: none has failed yet when the next one asks
    t = _throttle(Clock())
    assert [t.admit("alice", "10.0.0.1") > 0 for _ in range(5)] == [False] * 3 + [True] * 2


def test_the_lock_runs_from_the_failure_not_from_the_attempt() -> None:
    clock = Clock()
    t = _throttle(clock)
    for _ in range(3):
        t.admit("alice", "10.0.0.1")
    clock.now += 4  # checking the third password took a while
    t.failed("alice", "10.0.0.1")
    clock.now += 7
    assert t.admit("alice", "10.0.0.1") == 3.0
    t.failed("bob", "10.0.0.2")  # nothing counted for them: nothing to lock
    assert t.admit("bob", "10.0.0.2") == 0


def test_a_name_left_alone_starts_over() -> None:
    clock = Clock()
    t = _throttle(clock)
    for _ in range(3):
        t.admit("alice", "10.0.0.1")
    clock.now += 10
    assert t.admit("alice", "10.0.0.1") == 0  # the fourth failure: locked for 20 s
    clock.now += 99
    assert t.admit("alice", "10.0.0.1") == 0
    assert t.admit("alice", "10.0.0.1") == 40.0  # the count was kept: the fifth locks for 40 s
    clock.now += 140  # 100 s after that lock ended, nothing is held against the name
    assert [t.admit("alice", "10.0.0.1") for _ in range(4)] == [0, 0, 0, 10.0]


def test_memory_is_bounded_whatever_is_typed() -> None:
    clock = Clock()
    t = _throttle(clock, max_entries=50)
    for k in range(5000):
        t.admit(f"guess-{k}" + "x" * (k % 7) * 10_000, f"10.{k // 250}.{k % 250}.1")
    assert t.held() == 100  # 50 names and 50 addresses, however many were tried
    # the most recent failures are the ones kept
    assert t.admit("guess-4999" + "x" * (4999 % 7) * 10_000, "10.19.249.1") == 0
    for _ in range(2):
        t.admit("guess-4999" + "x" * (4999 % 7) * 10_000, "10.19.249.1")
    assert t.admit("guess-4999" + "x" * (4999 % 7) * 10_000, "192.0.2.1") > 0


def test_idle_entries_are_dropped_first() -> None:
    clock = Clock()
    t = _throttle(clock, max_entries=50)
    for k in range(40):
        t.admit(f"old-{k}", "10.0.0.1")
    clock.now += 1000  # every old entry is idle and unlocked
    t.admit("new", "10.0.0.2")
    assert t.held() == 2


def test_policies_that_make_no_sense_are_refused() -> None:
    with pytest.raises(ValueError):
        Policy(free=0, base_s=1, max_s=2, forget_s=3)
    with pytest.raises(ValueError):
        Policy(free=1, base_s=5, max_s=2, forget_s=3)
    with pytest.raises(ValueError):
        Policy(free=1, base_s=1, max_s=20, forget_s=3)
    with pytest.raises(ValueError):
        LoginThrottle(max_entries=0)
    assert Policy(free=1, base_s=1, max_s=10, forget_s=10).delay(10**6) == 10


def test_the_wait_in_a_header_and_in_words() -> None:
    assert [retry_after(w) for w in (0.01, 1.0, 29.2)] == [1, 1, 30]
    assert [in_words(w) for w in (0.3, 29.2, 89, 90, 899.5)] == [
        "1 second",
        "30 seconds",
        "89 seconds",
        "2 minutes",
        "15 minutes",
    ]
