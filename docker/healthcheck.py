"""Health checks for the containers of docker/compose.yaml (exit 0 healthy, 1 not).

    python docker/healthcheck.py http URL   # the URL answers 2xx (serving /healthz, MLflow /health)
    python docker/healthcheck.py worker     # this container's Celery worker answers a ping
    python docker/healthcheck.py bot        # a bot's dependencies answer: serving and the broker

Nothing here imports torch, so a check costs a fraction of a second. Settings come from the
same THUMBLOOP_* environment as the service itself, plus the secrets compose mounts under
/run/secrets/ (a health check is started by `docker exec`, not through the service's entry point
docker/with-secrets.sh, so it reads them the same way itself: :func:`load_secrets`).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import sys
import urllib.error
import urllib.request

TIMEOUT_S = 5.0
SECRETS_DIR = "/run/secrets"
_VARIABLE = re.compile(r"[A-Z_][A-Z0-9_]*")


def load_secrets(folder: str | None = None) -> list[str]:
    """What docker/with-secrets.sh does: each file in the secrets folder named like an upper-case
    variable becomes that variable (trailing newlines dropped). Returns the names set."""
    folder = folder or os.environ.get("SECRETS_DIR", SECRETS_DIR)
    if not os.path.isdir(folder):
        return []
    names = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if _VARIABLE.fullmatch(name) and os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                os.environ[name] = f.read().rstrip("\n")
            names.append(name)
    return names


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as exc:
        print(f"{url}: {exc}", file=sys.stderr)
        return False


def worker_ok() -> bool:
    """Pings only this container's node (Celery names it celery@<hostname>)."""
    from celery import Celery
    from kombu.exceptions import OperationalError

    from thumbloop.settings import Settings

    app = Celery("thumbloop-healthcheck", broker=Settings().effective_broker_url)
    # one connection attempt, not kombu's default of retrying forever
    app.conf.broker_transport_options = {"max_retries": 1}
    app.conf.broker_connection_timeout = TIMEOUT_S
    node = f"celery@{socket.gethostname()}"
    try:
        replies = app.control.ping(destination=[node], timeout=TIMEOUT_S)
    except (OperationalError, OSError) as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return False
    if not replies:
        print(f"{node} did not answer a ping", file=sys.stderr)
    return bool(replies)


def bot_ok() -> bool:
    """A polling or Socket Mode bot has no port of its own; it is useful only while the serving
    worker and the broker it hands votes to can be reached."""
    from kombu import Connection
    from kombu.exceptions import OperationalError

    from thumbloop.settings import Settings

    settings = Settings()
    if not http_ok(settings.serving.serving_url.rstrip("/") + "/healthz"):
        return False
    try:
        with Connection(settings.effective_broker_url, connect_timeout=TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1)
    except (OperationalError, OSError) as exc:
        print(f"broker: {exc}", file=sys.stderr)
        return False
    return True


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="check", required=True)
    http = sub.add_parser("http", help="GET a URL; healthy on 2xx")
    http.add_argument("url")
    sub.add_parser("worker", help="ping this container's Celery worker")
    sub.add_parser("bot", help="serving /healthz and the broker answer")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    load_secrets()
    if args.check == "http":
        ok = http_ok(args.url)
    elif args.check == "worker":
        ok = worker_ok()
    else:
        ok = bot_ok()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
