"""`thumbloop up`: the whole loop on one machine, supervised by honcho.

The plan (which processes, with which commands) is a pure function of the settings so it can be
checked without starting anything; :func:`run` hands it to honcho's process manager, which
prefixes each process's output, reports a process that exits, and stops the rest (SIGTERM to
each process group, SIGKILL after a grace period) on Ctrl-C or when one of them dies.
"""

from __future__ import annotations

import contextlib
import os
import select
import shlex
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from thumbloop.settings import Settings


@dataclass(frozen=True)
class StackProcess:
    name: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        """A shell line for honcho; `exec` so signals reach the program, not a shell."""
        return "exec " + shlex.join(self.argv)


@dataclass(frozen=True)
class StackOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    mlflow_port: int = 5000
    mlflow_ui: bool = True
    worker_concurrency: int = 2
    python: str = sys.executable


def embedded_mlflow(settings: Settings) -> bool:
    """The tracking store is a local database file: `up` runs a server (UI + REST) on it."""
    return urlsplit(settings.effective_tracking_uri).scheme in ("sqlite", "file", "")


def enabled_bots(settings: Settings) -> list[str]:
    bots = []
    if settings.bots.telegram_token is not None:
        bots.append("telegram")
    if settings.bots.slack_bot_token is not None and (
        settings.bots.slack_app_token is not None or settings.bots.slack_signing_secret is not None
    ):
        bots.append("slack")
    return bots


def serving_url(opts: StackOptions) -> str:
    host = "127.0.0.1" if opts.host in ("0.0.0.0", "::") else opts.host
    return f"http://{host}:{opts.port}"


def mlflow_url(settings: Settings, opts: StackOptions) -> str | None:
    if embedded_mlflow(settings):
        return f"http://127.0.0.1:{opts.mlflow_port}" if opts.mlflow_ui else None
    return settings.effective_tracking_uri


def plan(settings: Settings, opts: StackOptions) -> list[StackProcess]:
    me = (opts.python, "-m", "thumbloop")
    procs = [
        StackProcess("serving", (*me, "serve", "--host", opts.host, "--port", str(opts.port))),
        StackProcess(
            "worker", (*me, "worker", "--beat", "--concurrency", str(opts.worker_concurrency))
        ),
    ]
    if opts.mlflow_ui and embedded_mlflow(settings):
        procs.append(
            StackProcess(
                "mlflow",
                (
                    opts.python,
                    "-m",
                    "mlflow",
                    "server",
                    "--backend-store-uri",
                    settings.effective_tracking_uri,
                    "--default-artifact-root",
                    settings.effective_artifact_root,
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(opts.mlflow_port),
                    "--workers",
                    "1",
                ),
            )
        )
    if review_enabled(settings):
        procs.append(StackProcess("review", (*me, "review")))
    procs += [StackProcess(bot, (*me, "bot", bot)) for bot in enabled_bots(settings)]
    return procs


def review_enabled(settings: Settings) -> bool:
    """The review inbox runs once someone may log in to it (it refuses to start otherwise)."""
    from learning.review.users import read_users_file, users_file

    return settings.review.review_users is not None or bool(read_users_file(users_file(settings)))


def child_env(settings: Settings, opts: StackOptions) -> dict[str, str]:
    """The parent's environment, with the resolved home and the serving URL pinned down."""
    env = dict(os.environ)
    env["THUMBLOOP_HOME"] = str(settings.home)
    env["THUMBLOOP_SERVING_URL"] = serving_url(opts)
    env["PYTHONUNBUFFERED"] = "1"  # lines reach the prefixed output as they are printed
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    # MLflow 3's server otherwise starts a job runner with seven huey consumers for its GenAI
    # features (trace scoring and the like), which Thumbloop never uses: 1.3 GB of the UI's
    # 1.8 GB resident memory, measured with mlflow 3.17 and one worker.
    env.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    return env


def busy_ports(settings: Settings, opts: StackOptions) -> list[int]:
    ports = [opts.port]
    if opts.mlflow_ui and embedded_mlflow(settings):
        ports.append(opts.mlflow_port)
    if review_enabled(settings):
        ports.append(settings.review.review_port)
    busy = []
    for port in ports:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((opts.host if opts.host != "0.0.0.0" else "", port))
            except OSError:
                busy.append(port)
    return busy


def banner(settings: Settings, opts: StackOptions, procs: list[StackProcess]) -> str:
    api = serving_url(opts)
    ui = mlflow_url(settings, opts)
    bots = enabled_bots(settings)
    lines = [
        "thumbloop up: " + ", ".join(p.name for p in procs),
        f"  API          {api}  (docs: {api}/docs, metrics: {api}/metrics)",
        f"  MLflow UI    {ui or 'off (--no-mlflow-ui)'}",
        f"  model        {settings.model_uri}",
        f"  database     {_redact(settings.effective_database_url)}",
        f"  queue        {_redact(settings.effective_broker_url)}",
        "  bots         "
        + (
            ", ".join(bots)
            or "none (set THUMBLOOP_TELEGRAM_TOKEN or THUMBLOOP_SLACK_BOT_TOKEN to add one)"
        ),
        f"  chat         thumbloop chat --api {api}   (in another terminal)",
        "  review       "
        + (
            f"http://{settings.review.review_host}:{settings.review.review_port}"
            if review_enabled(settings)
            else "off (thumbloop review add-user NAME, then restart)"
        ),
        "  stop         Ctrl-C (or SIGTERM, SIGHUP)",
    ]
    return "\n".join(lines)


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@")
    return url


def announce_when_ready(url: str, timeout_s: float = 600.0) -> threading.Thread:
    """Print one line once the serving worker answers /readyz (a model is loaded)."""
    import httpx

    def wait() -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    version = httpx.get(f"{url}/v1/model", timeout=2).json().get("version")
                    print(f"ready: serving model version {version} at {url}", flush=True)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)

    thread = threading.Thread(target=wait, name="thumbloop-ready", daemon=True)
    thread.start()
    return thread


def output_closed(fd: int) -> bool:
    """Whether nobody reads ``fd`` any more (a pipe whose reader exited reports an error)."""
    poller = select.poll()
    poller.register(fd, select.POLLERR | select.POLLHUP)
    return any(event & (select.POLLERR | select.POLLHUP) for _, event in poller.poll(0))


def run(procs: list[StackProcess], env: dict[str, str]) -> int:
    """Run the processes until one exits, or until `up` is told to stop: Ctrl-C, SIGTERM,
    SIGHUP (the terminal went away) or its output closing (`make run | tee log` after the
    reader exited). Every way out stops the children; returns the stack's exit code."""
    from honcho.manager import Manager
    from honcho.printer import Printer

    stopping = threading.Event()

    def stop(why: str, returncode: int) -> None:
        if stopping.is_set():
            return
        stopping.set()
        manager._system_print(f"{why}: stopping\n")
        if manager.returncode is None:
            manager.returncode = returncode
        manager.terminate()

    class _Printer(Printer):  # type: ignore[misc]
        """Honcho's printer, except that a closed output stops the stack instead of `up`."""

        def write(self, message: Any) -> None:
            try:
                super().write(message)
            except (BrokenPipeError, ValueError, OSError):
                self.output = open(os.devnull, "w")  # noqa: SIM115 (lives as long as `up`)
                stop("output closed", 141)

    manager = Manager(printer=_Printer(sys.stdout))
    for proc in procs:
        manager.add_process(proc.name, proc.command, env=env)
    signal.signal(signal.SIGHUP, lambda signum, frame: stop("SIGHUP received", 129))

    def watch_output() -> None:
        fd = sys.stdout.fileno()
        while not stopping.wait(0.5):
            if output_closed(fd):
                stop("output closed", 141)

    threading.Thread(target=watch_output, name="thumbloop-output", daemon=True).start()
    try:
        manager.loop()
    finally:
        stopping.set()
        _stop_leftovers(manager)
    return int(manager.returncode or 0)


def _stop_leftovers(manager: Any) -> None:
    """Children still running when the loop ended (it raised, or a stop raced its exit)."""
    alive = [
        p["pid"] for p in manager._processes.values() if p.get("pid") and "returncode" not in p
    ]
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + 5
    for pid in alive:
        while time.monotonic() < deadline and _running(pid):
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return False
    return True
