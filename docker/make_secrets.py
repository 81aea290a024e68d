"""Write the secret files docker/compose.yaml mounts, one per secret, into docker/secrets/.

    python docker/make_secrets.py            # creates what is missing; never overwrites a secret
    python docker/make_secrets.py --list     # what each file holds

Passwords and keys are random (32 bytes, hex); the connection URLs that carry them (each
service's database role, Redis user and RabbitMQ user, MLflow's stores) are written beside them,
so the two never disagree. Files are mode 644 in a folder of mode 700: the folder keeps them from
the host's other users, and the containers (each runs as its own user) can read the files compose
mounts into them. The platform tokens cannot be made here: their files are created empty, to
be filled in with what BotFather and Slack gave you (an empty token stops only the bot that
needs it, with an error naming the setting).

Two files are rules rather than secrets, and are rewritten whenever they no longer say what the
passwords and the rules below say (a release that changes a rule, a rotated password):
`redis_acl` (each Redis user, its keys and commands, its password as a SHA-256) and
`rabbitmq_definitions` (RabbitMQ's vhost, users with salted password hashes, and permissions).

A secret that exists is kept as it is: to rotate one, delete it and the files derived from it
(the URLs naming it) and run again, then re-run docker/postgres/init-roles.sh (database roles),
restart redis or rabbitmq (their users), or `up` (the mlflow-user-* one-shots set the MLflow
accounts), and restart the services that mount it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import secrets
import sys
from collections.abc import Callable
from pathlib import Path

SECRETS = Path(__file__).resolve().parent / "secrets"

# Redis: one ACL user per service, allowed the keys its code touches and the commands it sends;
# anything else answers NOPERM. The keys are named in serving/replies/posteriors.py,
# learning/retrain/lock.py, bots/common/keys.py (each bot's prefix), and by Celery's Redis
# result backend. (redis-py's CLIENT SETINFO on connecting is refused, which redis-py ignores:
# Redis before 7.2 rejects an ACL naming it.)
_RESULTS = (
    # Celery reads the stored state first (a SUCCESS is never overwritten), then SETEX and a
    # PUBLISH on the key's channel in one MULTI
    "~celery-task-meta-* &celery-task-meta-* +get +set +setex +publish +multi +exec +discard"
)
_POSTERIORS = (
    "~thumbloop:posterior:* ~thumbloop:posterior-intents:* "
    # a vote moves its counts in one script (EVALSHA; SCRIPT LOAD when Redis lost it), and Redis
    # checks each call the script makes as if the user made it
    "+evalsha +script|load +hget +hset +hincrbyfloat +sadd "
    # reconcile, and /forget's resync of the user's intents, rewrite hashes in one MULTI
    "+smembers +hgetall +del +srem +multi +exec +discard"
)
# each bot's keys (history, follow-ups, its platform's state) share the bot's own prefix
# (bots/common/keys.py): a bot reads no conversation of the other platform
_BOT_STATE = (
    "+get +set +expire +lrange +rpush +ltrim +sadd +smembers +multi +exec +discard "
    # /forget takes the user's turns out of each chat (LREM) and deletes the follow-ups and reply
    # references the user's index sets name: keys of the bot's own patterns
    "+lrem +del"
)
REDIS_RULES = {
    # reads the posteriors; the one write is SADD to the index of intents, with SCAN, once per
    # process and only while that index is missing (hashes written before it existed): SCAN is
    # keyless, so no pattern narrows it, and it lists key names (hashed ids), never values
    "serving": (
        "%R~thumbloop:posterior:* ~thumbloop:posterior-intents:* "
        "+hgetall +smembers +exists +scan +sadd"
    ),
    # a forget deletes rows in SQL and resyncs the posteriors: no bot key is the worker's
    "worker": f"{_POSTERIORS} {_RESULTS}",
    "beat": f"{_POSTERIORS} {_RESULTS}",  # consumes the default queue: the worker's tasks
    # the single-flight lock: SET NX PX, released by a script that GETs and DELs it
    "trainer": f"~thumbloop:lock:retrain:* +set +get +del +evalsha +script|load {_RESULTS}",
    "telegram": f"~thumbloop:tg:* {_BOT_STATE}",
    "slack": f"~thumbloop:slack:* {_BOT_STATE}",
}
REDIS_HEALTH_USER = "healthcheck"  # the redis service's health check: PING only
REDIS_STATE_DB, REDIS_RESULT_DB = 2, 1
CELERY_SERVICES = ("worker", "trainer", "beat")

# RabbitMQ, vhost `thumbloop`: one user per service that uses the broker. A permission is a
# regex over queue and exchange names: configure declares, write publishes to an exchange and
# binds a queue, read consumes a queue and binds from an exchange. Celery binds each queue to an
# exchange of its own name, and every producer declares the queue it sends to (a task sent before
# any worker started is kept), so a user that sends to a queue may also read it: the regex cannot
# tell the exchange from the queue.
RABBITMQ_VHOST = "thumbloop"
# Celery workers' control (ping: the health check, mingle) and events (gossip, heartbeats): the
# exchanges celery.pidbox, reply.celery.pidbox, celeryev and queues <node>.celery.pidbox,
# <id>.reply.celery.pidbox, celeryev.<id>
_CONTROL = r"celery\.pidbox|reply\.celery\.pidbox|.+\.celery\.pidbox|celeryev|celeryev\..+"
_DEAD = r"thumbloop\.dead-letters"  # where a task out of retries waits while the database is down
# Celery sends a task through the default exchange, routed by the queue's name, and the default
# exchange routes to every queue by name: whoever sends tasks can put a message into any queue
# whose name it knows. No regex narrows that; only Celery publishing through the queues' own
# exchanges would (thumbloop/queue.py, learning/worker/celery_app.py).
_SENDS = r"amq\.default"
# user -> (the names it may configure and read, whether it sends Celery tasks)
BROKER_NAMES = {
    # sends a task again when it retries, and the dead letters a redrive takes back
    "worker": (rf"thumbloop|{_DEAD}|{_CONTROL}", True),
    # the worker's tasks too (it consumes the default queue); sends the retrain checks
    "beat": (rf"thumbloop|training|{_DEAD}|{_CONTROL}", True),
    "trainer": (rf"training|{_CONTROL}", False),
    # the queue they send to: no dead letters, no control broadcast (shutdown), no `training`
    "telegram": ("thumbloop", True),
    "slack": ("thumbloop", True),
}
# user -> (configure, write, read)
BROKER_RULES = {
    name: (f"^({names})$", f"^({_SENDS}|{names})$" if sends else f"^({names})$", f"^({names})$")
    for name, (names, sends) in BROKER_NAMES.items()
}

# random values: (name, what it is)
RANDOM = {
    "postgres_password": "PostgreSQL superuser (used only by docker/postgres/init-roles.sh)",
    "db_owner_password": "role thumbloop_owner: migrations and table grants",
    "db_learning_password": "role thumbloop_learning: worker, trainer, beat, seed",
    "db_review_password": "role thumbloop_review: the review inbox",
    "db_serving_password": "role thumbloop_serving: serving without Redis (not mounted by compose)",
    "db_mlflow_password": "role mlflow: MLflow's databases",
    "redis_healthcheck_password": f"Redis user {REDIS_HEALTH_USER} (PING only)",
    **{f"redis_{n}_password": f"Redis user {n}" for n in REDIS_RULES},
    **{f"rabbitmq_{n}_password": f"RabbitMQ user {n}" for n in BROKER_RULES},
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


def _sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def redis_acl(s: dict[str, str]) -> str:
    """Redis keeps only each password's SHA-256 (the server never holds the clear text)."""

    def user(name: str, rules: str) -> str:
        password = s[f"redis_{name}_password"]
        return f"user {name} on #{_sha256(password)} resetkeys resetchannels -@all {rules}"

    return "\n".join(
        [
            # a client that names no user is `default`: nobody may log in as it
            "user default off resetkeys resetchannels -@all",
            user(REDIS_HEALTH_USER, "+ping"),
            # +select: each URL names its database
            *(user(name, f"+select {rules}") for name, rules in REDIS_RULES.items()),
        ]
    )


def rabbit_hash(password: str, salt: bytes | None = None) -> str:
    """RabbitMQ's rabbit_password_hashing_sha256: base64(salt + SHA-256(salt + password))."""
    salt = os.urandom(4) if salt is None else salt
    return base64.b64encode(salt + hashlib.sha256(salt + password.encode()).digest()).decode()


def rabbit_hash_matches(password: str, hashed: str) -> bool:
    try:
        salt = base64.b64decode(hashed, validate=True)[:4]
    except ValueError:
        return False
    return len(salt) == 4 and secrets.compare_digest(rabbit_hash(password, salt), hashed)


def rabbitmq_definitions(s: dict[str, str]) -> str:
    """Imported by RabbitMQ on every boot (load_definitions in docker/rabbitmq/thumbloop.conf).
    No administrator: operators use rabbitmqctl inside the container, which needs none."""
    users = [
        {
            "name": name,
            "password_hash": rabbit_hash(s[f"rabbitmq_{name}_password"]),
            "hashing_algorithm": "rabbit_password_hashing_sha256",
            "tags": [],
        }
        for name in BROKER_RULES
    ]
    permissions = [
        {"user": name, "vhost": RABBITMQ_VHOST, "configure": c, "write": w, "read": r}
        for name, (c, w, r) in BROKER_RULES.items()
    ]
    return json.dumps(
        {"users": users, "vhosts": [{"name": RABBITMQ_VHOST}], "permissions": permissions},
        indent=2,
    )


def _redis_url(name: str, s: dict[str, str], db: int) -> str:
    return f"redis://{name}:{s[f'redis_{name}_password']}@redis:6379/{db}"


def _broker_url(name: str, s: dict[str, str]) -> str:
    return f"amqp://{name}:{s[f'rabbitmq_{name}_password']}@rabbitmq:5672/{RABBITMQ_VHOST}"


Derive = Callable[[dict[str, str]], str]


def _url(make: Callable[[str, dict[str, str]], str], name: str) -> Derive:
    return lambda s: make(name, s)


# derived from the random values: name -> (function of them, what it is)
DERIVED: dict[str, tuple[Derive, str]] = {
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
    **{
        f"{n}_redis_url": (
            _url(lambda name, s: _redis_url(name, s, REDIS_STATE_DB), n),
            f"THUMBLOOP_REDIS_URL of {n} (Redis user {n})",
        )
        for n in REDIS_RULES
    },
    **{
        f"{n}_result_url": (
            _url(lambda name, s: _redis_url(name, s, REDIS_RESULT_DB), n),
            f"THUMBLOOP_RESULT_BACKEND of {n} (Redis user {n})",
        )
        for n in CELERY_SERVICES
    },
    **{
        f"{n}_broker_url": (
            _url(_broker_url, n),
            f"THUMBLOOP_BROKER_URL of {n} (RabbitMQ user {n})",
        )
        for n in BROKER_RULES
    },
    "redis_acl": (redis_acl, "Redis' ACL file: its users and their keys and commands"),
    "rabbitmq_definitions": (rabbitmq_definitions, "RabbitMQ's vhost, users and permissions"),
}
RULES = ("redis_acl", "rabbitmq_definitions")  # kept in step: rewritten when stale
ALL = {**RANDOM, **TOKENS, **{k: what for k, (_, what) in DERIVED.items()}}


def _in_step(name: str, text: str, values: dict[str, str]) -> bool:
    fresh = DERIVED[name][0](values)
    if name != "rabbitmq_definitions":
        return text == fresh
    # the hashes are salted: equal apart from them, and each hash the user's password
    try:
        current = json.loads(text)
        hashes = {u["name"]: u.pop("password_hash") for u in current["users"]}
    except (ValueError, KeyError, TypeError, AttributeError):
        return False
    expected = json.loads(fresh)
    for user in expected["users"]:
        del user["password_hash"]
    return current == expected and all(
        rabbit_hash_matches(values[f"rabbitmq_{user}_password"], hashes[user])
        for user in BROKER_RULES
    )


def _write(path: Path, value: str, *, replace: bool = False) -> None:
    target = path.with_name(f".{path.name}.tmp") if replace else path
    if replace:
        target.unlink(missing_ok=True)  # left by a run that was interrupted
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(value + "\n" if value else "")
    if replace:
        os.replace(target, path)


def make(folder: Path) -> list[str]:
    """Creates the missing files in ``folder``, and rewrites stale rules; returns their names."""
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
        path = folder / name
        if not path.exists():
            _write(path, derive(values))
            made.append(name)
        elif name in RULES and not _in_step(name, path.read_text(encoding="utf-8").strip(), values):
            _write(path, derive(values), replace=True)
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
    print(f"{args.dir}: wrote {', '.join(made) if made else 'nothing (all there)'}")
    empty = [n for n in TOKENS if not (args.dir / n).read_text(encoding="utf-8").strip()]
    if empty:
        print(f"fill in before starting the bots that use them: {', '.join(empty)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
