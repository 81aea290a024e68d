"""`thumbloop review` serves the inbox for real: a process on loopback, the database migrated,
a reviewer added with `thumbloop review add-user`, a login that works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.conftest import BANKING
from tests.integration.servers import free_port, wait_until
from tests.integration.workers import ROOT, stop_worker


def test_thumbloop_review_serves_the_inbox(tmp_path: Path) -> None:
    env = os.environ | {"THUMBLOOP_HOME": str(tmp_path), "THUMBLOOP_DOMAIN_DIR": str(BANKING)}
    pw = "correct horse battery"
    subprocess.run(
        [sys.executable, "-m", "thumbloop", "review", "add-user", "alice"],
        input=f"{pw}\n{pw}\n".encode(),
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    port = free_port()
    log = open(tmp_path / "review.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "thumbloop", "review", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(base + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return proc.poll() is not None  # died: stop waiting, the asserts below say so

    try:
        wait_until(ready, 60, what="thumbloop review to start")
        assert proc.poll() is None, (tmp_path / "review.log").read_text()
        with httpx.Client(base_url=base, timeout=10, follow_redirects=True) as c:
            page = c.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
            ok = c.post("/login", data={"csrf": token, "name": "alice", "password": pw})
            assert ok.status_code == 200 and "Nothing needs a look" in ok.text  # after redirect
        assert (tmp_path / "thumbloop.db").is_file()  # migrated on start
    finally:
        stop_worker(proc)
        log.close()
