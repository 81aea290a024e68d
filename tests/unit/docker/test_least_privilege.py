"""Least privilege in docker/compose.yaml: what each service is given, and nothing more. Each
mounts only its own secrets; each has its own database role, MLflow account, Redis user and
RabbitMQ user; the broker is RabbitMQ. Read from the files, nothing run (the users for real:
tests/integration/docker/). A change here is a change of who can do what in production: review
it as one."""

from __future__ import annotations

import hashlib
import json
import re
from urllib.parse import urlsplit

import yaml

from learning.worker.dead_letters import DEAD_LETTER_QUEUE
from learning.worker.maintenance import beat_schedule
from tests.unit.docker.test_compose import (
    COMPOSE_TEXT,
    DOCKER,
    ENV_EXAMPLE,
    SERVICES,
    argv_of,
    environment,
    healthcheck_argv,
    load_script,
    parse_thumbloop,
    secret_targets,
    secret_values,
    service_env,
    thumbloop_services,
)
from thumbloop.settings import Settings
from thumbloop.task_names import DEFAULT_QUEUE, RETRAIN_IF_DUE, ROUTES, TRAINING_QUEUE

CELERY = ("worker", "trainer", "beat")

SECRETS_OF = {
    "rabbitmq": {"rabbitmq_definitions"},
    "redis": {"redis_acl", "redis_healthcheck_password"},
    "postgres": {
        "postgres_password",
        "db_owner_password",
        "db_learning_password",
        "db_review_password",
        "db_serving_password",
        "db_mlflow_password",
    },
    "mlflow": {
        "mlflow_backend_uri",
        "mlflow_auth_uri",
        "mlflow_admin_password",
        "mlflow_flask_secret",
    },
    "mlflow-user-learning": {"mlflow_admin_password", "mlflow_learning_password"},
    "mlflow-user-serving": {"mlflow_admin_password", "mlflow_serving_password"},
    "migrate": {"owner_database_url"},
    "db-grants": {"owner_database_url"},
    "seed": {"learning_database_url", "mlflow_learning_password"},
    "serving": {"serving_redis_url", "mlflow_serving_password"},
    **{
        celery: {
            "learning_database_url",
            f"{celery}_broker_url",
            f"{celery}_result_url",
            f"{celery}_redis_url",
            "mlflow_learning_password",
        }
        for celery in CELERY
    },
    "telegram": {
        "telegram_broker_url",
        "telegram_redis_url",
        "id_key",
        "signing_key",
        "telegram_token",
    },
    "slack": {
        "slack_broker_url",
        "slack_redis_url",
        "id_key",
        "signing_key",
        "slack_bot_token",
        "slack_app_token",
    },
    "review": {"review_database_url"},
}
# Redis' and RabbitMQ's users' passwords are mounted nowhere: their URLs carry them, and the
# servers get only hashes (redis_acl, rabbitmq_definitions)
REDIS_USERS = ("serving", *CELERY, "telegram", "slack")
BROKER_USERS = (*CELERY, "telegram", "slack")
HASHED_ONLY = {f"redis_{n}_password" for n in REDIS_USERS} | {
    f"rabbitmq_{n}_password" for n in BROKER_USERS
}
BOTS = ("telegram", "slack")


def test_each_service_mounts_exactly_its_own_secrets() -> None:
    got = {name: set(secret_targets(svc).values()) for name, svc in SERVICES.items()}
    assert got == SECRETS_OF
    declared = yaml.safe_load(COMPOSE_TEXT)["secrets"]
    assert set(declared) == {s for sources in SECRETS_OF.values() for s in sources}
    assert all(spec == {"file": f"./secrets/{name}"} for name, spec in declared.items())
    # and docker/make_secrets.py writes exactly those files, and the passwords hashed into them
    assert set(load_script("make_secrets").ALL) == set(declared) | HASHED_ONLY


def test_no_secret_travels_in_the_environment_or_the_env_file() -> None:
    secretish = re.compile(r"PASSWORD|SECRET|TOKEN|_KEY\b|_URL\b|_URI\b|BACKEND")
    allowed = {"THUMBLOOP_SERVING_URL", "THUMBLOOP_MLFLOW_TRACKING_URI", "POSTGRES_PASSWORD_FILE"}
    for name, svc in SERVICES.items():
        for key in environment(svc):
            assert key in allowed or not secretish.search(key), f"{name}: {key} in environment"
        for env_file in svc.get("env_file") or []:
            assert isinstance(env_file, dict) and env_file["required"] is False, name
    assignments = re.findall(r"^([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, flags=re.M)
    assert not [a for a in assignments if secretish.search(a) and a not in allowed]
    assert "${" not in "".join(
        str(v)
        for svc in SERVICES.values()
        for v in (svc.get("environment") or {}).values()
        if ":?" in str(v)
    ), "no required (secret) variable is interpolated from .env any more"


def test_the_bots_reach_neither_the_database_nor_mlflow() -> None:
    values = secret_values()
    for bot in BOTS:
        env = service_env(bot, values)
        assert "THUMBLOOP_DATABASE_URL" not in env, bot
        assert "THUMBLOOP_RESULT_BACKEND" not in env, bot
        assert not [k for k in env if k.startswith("MLFLOW_")], bot
        assert not [k for k in env if k.startswith("THUMBLOOP_MLFLOW")], bot
        # the other platform's tokens are not theirs either
        other = "SLACK" if bot == "telegram" else "TELEGRAM"
        assert not [k for k in env if k.startswith(f"THUMBLOOP_{other}")], bot


def test_only_the_learning_side_can_register_or_move_an_alias() -> None:
    holders = {
        n
        for n, svc in SERVICES.items()
        if "mlflow_learning_password" in secret_targets(svc).values()
    }
    assert holders == {"worker", "trainer", "beat", "seed", "mlflow-user-learning"}
    users = load_script("mlflow_users").build_parser()
    learning = users.parse_args(argv_of(SERVICES["mlflow-user-learning"]["command"])[2:])
    serving = users.parse_args(argv_of(SERVICES["mlflow-user-serving"]["command"])[2:])
    assert learning.admin and not serving.admin and serving.model is None
    assert learning.username != serving.username
    # serving reads with the default permission: READ, which neither tags nor moves an alias
    assert environment(SERVICES["mlflow"])["MLFLOW_AUTH_DEFAULT_PERMISSION"] == "READ"
    assert "THUMBLOOP_DATABASE_URL" not in service_env("serving", secret_values())


def test_database_roles_are_per_service_and_made_by_the_init_script() -> None:
    values = secret_values()
    script = (DOCKER / "postgres" / "init-roles.sh").read_text(encoding="utf-8")
    mounts = [str(v) for v in SERVICES["postgres"]["volumes"]]
    assert "./postgres/init-roles.sh:/docker-entrypoint-initdb.d/10-roles.sh:ro" in mounts
    roles = {}
    for name in thumbloop_services() | {"db-grants": []}:
        url = service_env(name, values).get("THUMBLOOP_DATABASE_URL")
        if url:
            parts = urlsplit(url)
            roles[name] = parts.username
            assert parts.password and parts.password in values.values()
            password_file = next(k for k, v in values.items() if v == parts.password)
            # the role is made with the password its URL carries
            assert f'/{password_file}"`\nALTER ROLE {parts.username} ' in script, name
            assert password_file in secret_targets(SERVICES["postgres"]).values()
    assert roles == {
        "migrate": "thumbloop_owner",
        "db-grants": "thumbloop_owner",
        "seed": "thumbloop_learning",
        "worker": "thumbloop_learning",
        "trainer": "thumbloop_learning",
        "beat": "thumbloop_learning",
        "review": "thumbloop_review",
    }
    superuser = environment(SERVICES["postgres"])["POSTGRES_USER"]
    assert superuser not in roles.values()
    assert "REVOKE ALL ON DATABASE" in script and "FROM PUBLIC" in script


def test_every_secret_setting_is_mounted_or_documented() -> None:
    """Each secret setting is a compose secret of some service, or docker/README.md says how to
    add it (the optional ones: webhook and signing secrets, the previous signing key, ...)."""
    secrets = {
        f"THUMBLOOP_{name.upper()}"
        for name, field in Settings.fields().items()
        if "SecretStr" in str(field.annotation)
    }
    assert {"THUMBLOOP_TELEGRAM_TOKEN", "THUMBLOOP_SLACK_BOT_TOKEN"} <= secrets
    mounted = {t for svc in SERVICES.values() for t in secret_targets(svc)}
    readme = (DOCKER / "README.md").read_text(encoding="utf-8")
    assert not {s for s in secrets - mounted if s not in readme}


def test_the_broker_is_rabbitmq_with_a_user_per_service() -> None:
    make = load_script("make_secrets")
    values = secret_values()
    definitions = json.loads(values["rabbitmq_definitions"])
    hashes = {u["name"]: u["password_hash"] for u in definitions["users"]}
    users = {}
    for name in thumbloop_services():
        url = service_env(name, values).get("THUMBLOOP_BROKER_URL")
        if url:
            parts = urlsplit(url)
            assert (parts.scheme, parts.hostname, parts.port) == ("amqp", "rabbitmq", 5672)
            assert parts.path == f"/{make.RABBITMQ_VHOST}", name
            users[name] = parts.username
            # RabbitMQ holds the hash of the very password the URL carries
            assert make.rabbit_hash_matches(parts.password, hashes[parts.username]), name
            assert not make.rabbit_hash_matches("wrong", hashes[parts.username])
            assert "rabbitmq" in SERVICES[name]["depends_on"], f"{name} starts before its broker"
    assert users == {n: n for n in BROKER_USERS}  # one each
    assert set(hashes) == set(users.values())
    assert definitions["vhosts"] == [{"name": make.RABBITMQ_VHOST}]
    assert all(u["tags"] == [] for u in definitions["users"]), "no administrator"
    broker = SERVICES["rabbitmq"]
    assert "ports" not in broker and "expose" not in broker
    assert broker["hostname"] == "rabbitmq"  # its data is kept under the node's name
    volumes = [str(v) for v in broker["volumes"]]
    assert "rabbitmq-data:/var/lib/rabbitmq" in volumes
    mount = "./rabbitmq/thumbloop.conf:/etc/rabbitmq/conf.d/20-thumbloop.conf:ro"
    assert mount in volumes
    conf = (DOCKER / "rabbitmq" / "thumbloop.conf").read_text(encoding="utf-8")
    assert "\nload_definitions = /run/secrets/rabbitmq_definitions\n" in conf
    assert "rabbitmq_definitions" in secret_targets(broker)
    assert healthcheck_argv(broker)[:1] == ["rabbitmq-diagnostics"]


def _may(rule: str, name: str) -> bool:
    """RabbitMQ searches the regex in the name (unanchored): so do we."""
    return re.search(rule, name) is not None


def test_broker_permissions_fit_the_queues_the_code_uses() -> None:
    rules = load_script("make_secrets").BROKER_RULES
    assert all(r.startswith("^") and r.endswith("$") for rs in rules.values() for r in rs)
    # each Celery service consumes the queues of its command, and no other
    for name in CELERY:
        queues = parse_thumbloop(argv_of(SERVICES[name]["command"]))[1]["queues"].split(",")
        configure, write, read = rules[name]
        for queue in queues:
            assert _may(configure, queue) and _may(write, queue) and _may(read, queue), name
        others = {DEFAULT_QUEUE, TRAINING_QUEUE} - set(queues)
        if name != "beat":  # beat sends to `training`: see below
            assert not [q for q in others if _may(configure, q) or _may(read, q)], name
        for control in ("celery.pidbox", "celery@abc.celery.pidbox", "celeryev", "celeryev.1"):
            assert _may(configure, control) and _may(read, control), (name, control)
    # beat sends what its schedule names, the retrain checks included
    sent = {e["options"]["queue"] for e in beat_schedule(Settings()).values()}
    assert sent == {DEFAULT_QUEUE, ROUTES[RETRAIN_IF_DUE]["queue"]}
    assert all(_may(rules["beat"][0], q) and _may(rules["beat"][1], q) for q in sent)
    # dead letters: put away and redriven by the default queue's consumers only
    holders = {n for n, (c, w, r) in rules.items() if _may(c, DEAD_LETTER_QUEUE)}
    assert holders == {"worker", "beat"}
    # the bots: the default queue, nothing else (no control broadcast, no `training`)
    for bot in BOTS:
        configure, write, read = rules[bot]
        assert _may(configure, DEFAULT_QUEUE) and _may(write, DEFAULT_QUEUE)
        for name in (TRAINING_QUEUE, DEAD_LETTER_QUEUE, "celery.pidbox", "celeryev", "x"):
            assert not (_may(configure, name) or _may(write, name) or _may(read, name)), name
    # Celery sends tasks through the default exchange: only the services that send tasks
    senders = {n for n, (_, write, _) in rules.items() if _may(write, "amq.default")}
    assert senders == {"worker", "beat", *BOTS}


def test_no_two_services_share_a_redis_user() -> None:
    values = secret_values()
    acl = {line.split()[1]: line.split() for line in values["redis_acl"].splitlines()}
    users: dict[str, set[str]] = {}
    for name in thumbloop_services():
        env = service_env(name, values)
        for key in ("THUMBLOOP_REDIS_URL", "THUMBLOOP_RESULT_BACKEND"):
            if key in env:
                parts = urlsplit(env[key])
                assert (parts.scheme, parts.hostname, parts.port) == ("redis", "redis", 6379)
                assert parts.username and parts.password, (name, key)
                digest = hashlib.sha256(parts.password.encode()).hexdigest()
                assert f"#{digest}" in acl[parts.username], (name, key)
                users.setdefault(name, set()).add(parts.username)
    assert users == {n: {n} for n in REDIS_USERS}  # one each, its state and results alike
    assert acl["default"][2] == "off", "a client that names no user gets in"
    for user, rule in acl.items():
        assert rule[2] == ("off" if user == "default" else "on"), user
        assert {"resetkeys", "resetchannels", "-@all"} <= set(rule), user
        too_much = {"~*", "%R~*", "allkeys", "&*", "allchannels", "+@all", "allcommands"}
        assert not too_much & set(rule), user
        assert "nopass" not in rule, user
    assert acl["healthcheck"][-1] == "+ping" and "~" not in " ".join(acl["healthcheck"])
    # serving only reads the posteriors (SADD: the index of intents, see make_secrets.py)
    assert "%R~thumbloop:posterior:*" in acl["serving"]
    assert not {"+hset", "+hincrbyfloat", "+del", "+evalsha"} & set(acl["serving"])
    argv = argv_of(SERVICES["redis"]["command"])
    assert argv[argv.index("--aclfile") + 1] == "/run/secrets/redis_acl"
    assert "redis://redis" not in COMPOSE_TEXT, "a Redis URL without a user"
    health = " ".join(healthcheck_argv(SERVICES["redis"]))
    assert "REDISCLI_AUTH" in health and "--user healthcheck" in health
