"""Failed logins limited over HTTP, on the real app under uvicorn: a few wrong passwords, then
429 with Retry-After even for the right one, for a name that exists or not; other names and
other addresses unaffected; the right password accepted once the lock has passed. Other client
addresses come as X-Forwarded-For from loopback, which uvicorn trusts by default, as it does
for ``thumbloop review``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from learning.review.throttle import LoginThrottle, Policy
from learning.review.users import set_user
from tests.integration.learning.review.conftest import PASSWORD, Running, login, start
from tests.unit.learning.review.seed import Msg

# short locks, so waiting one out is quick; addresses get more tries than names
# (long enough that a busy machine's next request still finds the lock)
ACCOUNT = Policy(free=3, base_s=4.0, max_s=8.0, forget_s=60.0)
ADDRESS = Policy(free=8, base_s=4.0, max_s=8.0, forget_s=60.0)
LIMITED = "Too many failed logins for this name or from this address."


@pytest.fixture
def inbox(tmp_path: Path) -> Iterator[Running]:
    throttle = LoginThrottle(ACCOUNT, ADDRESS)
    for running in start(tmp_path, messages=[Msg("where is my card")], throttle=throttle):
        for name in ("bob", "carol"):
            set_user(running.settings.home / "review-users", name, PASSWORD)
        yield running


def _client(inbox: Running, address: str | None = None) -> httpx.Client:
    headers = {"x-forwarded-for": address} if address else {}
    return httpx.Client(base_url=inbox.url, follow_redirects=False, timeout=30, headers=headers)


def test_wrong_passwords_lock_the_name_until_the_wait_is_over(inbox: Running) -> None:
    with _client(inbox) as c:
        assert [login(c, "alice", "nope").status_code for _ in range(3)] == [401] * 3
        refused = login(c)  # the right password, while locked
        assert refused.status_code == 429
        wait = int(refused.headers["retry-after"])
        assert 1 <= wait <= 4
        assert LIMITED in refused.text and "Try again in " in refused.text
        assert 'name="csrf"' in refused.text  # the login form, to try again from
        assert c.get("/").status_code == 303  # not logged in
        # a name nobody has is locked the same way: a 429 does not tell which names exist
        assert [login(c, "mallory", "nope").status_code for _ in range(4)] == [401] * 3 + [429]
    with _client(inbox, "192.0.2.10") as elsewhere:
        assert login(elsewhere).status_code == 429  # the name is locked from everywhere
    with _client(inbox) as other:
        assert login(other, "bob").status_code == 303  # another name, same address
    time.sleep(wait)
    with _client(inbox) as c:
        ok = login(c)
        assert (ok.status_code, ok.headers["location"]) == (303, "/")
        assert c.get("/").status_code == 200
    with _client(inbox) as c:  # the success cleared the count: three free failures again
        assert [login(c, "alice", "nope").status_code for _ in range(4)] == [401] * 3 + [429]


def test_one_address_trying_many_names_is_locked_and_others_are_not(inbox: Running) -> None:
    with _client(inbox, "198.51.100.7") as sprayer:
        codes = [login(sprayer, f"guess{k}", "nope").status_code for k in range(8)]
        assert codes == [401] * 8
        refused = login(sprayer, "carol")  # a real reviewer's right password, same address
        assert refused.status_code == 429 and "retry-after" in refused.headers
    with _client(inbox, "203.0.113.9") as c:
        assert login(c, "carol").status_code == 303  # another address gets in
