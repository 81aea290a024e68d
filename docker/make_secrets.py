"""Write the secret files docker/compose.yaml mounts, one per secret, into docker/secrets/.

    python docker/make_secrets.py            # creates what is missing; never overwrites
    python docker/make_secrets.py --list     # what each file holds

Passwords and keys are random (32 bytes, hex); the connection URLs that carry them (each
service's database role, the Redis password, MLflow's stores) are written beside them, so the two
never disagree. Files are mode 644 in a folder of mode 700: the folder keeps them from the
host's other users, and the containers (each runs as its own user) can read the files compose
mounts into them. The platform tokens cannot be made here: their files are created empty, to
be filled in with what BotFather and Slack gave you (an empty token stops only the bot that
needs it, with an error naming the setting).

A secret that exists is kept as it is: to rotate one, delete it and the files derived from it
(the URLs naming it) and run again, then re-run docker/postgres/init-roles.sh (database roles)
or `up` (the mlflow-user-* one-shots set the MLflow accounts), and restart the services that
mount it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

SECRETS = Path(__file__).resolve().parent / "secrets"

# random values: (name, what it is)
RANDOM = {
    "postgres_password": "PostgreSQL superuser (used only by docker/postgres/init-roles.sh)",
    "db_owner_password": "role thumbloop_owner: migrations and table grants",
    "db_learning_password": "role thumbloop_learning: worker, trainer, beat, seed",
    "db_review_password": "role thumbloop_review: the review inbox",
    "db_serving_password": "role thumbloop_serving: serving without Redis (not mounted by compose)",
    "db_mlflow_password": "role mlflow: MLflow's databases",
    "redis_password": "Redis' default user (requirepass)",
    "mlflow_admin_password": "MLflow's admin (the mlflow-user-* one-shots log in as it)",
    "mlflow_flask_secret": "MLflow auth app's CSRF key",
    "mlflow_learning_password": "MLflow account thumbloop-learning (registers, moves aliases)",
    "mlflow_serving_password": "MLflow account thumbloop-serving (reads)",
    "id_key": "THUMBLOOP_ID_KEY: hashes user ids (never change it)",
    "signing_key": "THUMBLOOP_SIGNING_KEY: signs vote buttons (rotatable)",
}
# filled in by hand
TOKENS = {
    "telegram_token": "THUMBLOOP_TELEGRAM_TOKEN, from @BotFather",
    "slack_bot_token": "THUMBLOOP_SLACK_BOT_TOKEN (xoxb-...)",
    "slack_app_token": "THUMBLOOP_SLACK_APP_TOKEN (xapp-..., Socket Mode)",
}


def _pg(role: str, password: str, database: str, driver: str = "+psycopg2") -> str:
    return f"postgresql{driver}://{role}:{password}@postgres:5432/{database}"


# derived from the random values: name -> (function of them, what it is)
DERIVED: dict[str, tuple[Callable[[dict[str, str]], str], str]] = {
    "owner_database_url": (
        lambda s: _pg("thumbloop_owner", s["db_owner_password"], "thumbloop"),
        "THUMBLOOP_DATABASE_URL of migrate and db-grants",
    ),
    "learning_database_url": (
        lambda s: _pg("thumbloop_learning", s["db_learning_password"], "thumbloop"),
        "THUMBLOOP_DATABASE_URL of worker, trainer, beat, seed",
    ),
    "review_database_url": (
        lambda s: _pg("thumbloop_review", s["db_review_password"], "thumbloop"),
        "THUMBLOOP_DATABASE_URL of review",
    ),
    "mlflow_backend_uri": (
        lambda s: _pg("mlflow", s["db_mlflow_password"], "mlflow", ""),
        "MLflow's runs and registry",
    ),
    "mlflow_auth_uri": (
        lambda s: _pg("mlflow", s["db_mlflow_password"], "mlflow_auth", ""),
        "MLflow's users",
    ),
    "redis_broker_url": (
        lambda s: f"redis://:{s['redis_password']}@redis:6379/0",
        "THUMBLOOP_BROKER_URL",
    ),
    "redis_result_url": (
        lambda s: f"redis://:{s['redis_password']}@redis:6379/1",
        "THUMBLOOP_RESULT_BACKEND",
    ),
    "redis_state_url": (
        lambda s: f"redis://:{s['redis_password']}@redis:6379/2",
        "THUMBLOOP_REDIS_URL (posteriors, history, locks)",
    ),
    "redis_acl": (
        # Redis keeps only the password's SHA-256 (the server never holds the clear text)
        lambda s: (
            "user default on sanitize-payload "
            f"#{hashlib.sha256(s['redis_password'].encode()).hexdigest()} ~* &* +@all"
        ),
        "Redis' ACL file",
    ),
}
ALL = {**RANDOM, **TOKENS, **{k: what for k, (_, what) in DERIVED.items()}}


def _write(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n" if value else "")


def make(folder: Path) -> list[str]:
    """Creates the missing files in ``folder``; returns their names."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder.chmod(0o700)
    made: list[str] = []
    values: dict[str, str] = {}
    for name in RANDOM:
        path = folder / name
        if not path.exists():
            _write(path, secrets.token_hex(32))
            made.append(name)
        values[name] = path.read_text(encoding="utf-8").strip()
    for name in TOKENS:
        if not (folder / name).exists():
            _write(folder / name, "")
            made.append(name)
    for name, (derive, _) in DERIVED.items():
        if not (folder / name).exists():
            _write(folder / name, derive(values))
            made.append(name)
    return made


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=SECRETS, help=f"default: {SECRETS}")
    parser.add_argument("--list", action="store_true", help="print what each file is; write none")
    args = parser.parse_args(argv)
    if args.list:
        for name, what in ALL.items():
            print(f"{name:28} {what}")
        return 0
    made = make(args.dir)
    print(f"{args.dir}: created {', '.join(made) if made else 'nothing (all there)'}")
    empty = [n for n in TOKENS if not (args.dir / n).read_text(encoding="utf-8").strip()]
    if empty:
        print(f"fill in before starting the bots that use them: {', '.join(empty)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
