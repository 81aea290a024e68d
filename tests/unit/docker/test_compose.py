"""docker/compose.yaml cannot rot: its commands parse with the real CLIs, its settings are fields
of Settings, its ports agree, and the topology rules hold (health checks, one beat, GPU roles).
Nothing is run and Docker is not needed: the files are read and the click commands parse argv.
Who may do what (secrets, database roles, Redis and RabbitMQ users): test_least_privilege.py.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import click
import pytest
import yaml

from thumbloop.cli.main import cli
from thumbloop.settings import Settings
from thumbloop.task_names import DEFAULT_QUEUE, TRAINING_QUEUE

ROOT = Path(__file__).resolve().parents[3]
DOCKER = ROOT / "docker"
COMPOSE_TEXT = (DOCKER / "compose.yaml").read_text(encoding="utf-8")
ENV_EXAMPLE = (DOCKER / ".env.example").read_text(encoding="utf-8")
SERVICES: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE_TEXT)["services"]
# the services that run something other than the `thumbloop` CLI, and what
NOT_THUMBLOOP = {
    "rabbitmq": "the image's rabbitmq-server (docker/rabbitmq/thumbloop.conf)",
    "redis": "redis-server",
    "postgres": "the image's own entrypoint",
    "mlflow": "mlflow server (docker/mlflow-entrypoint.sh)",
    "mlflow-user-learning": "python docker/mlflow_users.py",
    "mlflow-user-serving": "python docker/mlflow_users.py",
    "db-grants": "python docker/db_grants.py",
}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?:(:?[-?+])([^}]*))?\}")


def expand(text: str) -> str:
    """What compose makes of ``${NAME:-default}`` with nothing set: the default; a variable
    without a default becomes ``<NAME>``."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        return arg if op in (":-", "-") else f"<{name}>"

    return _INTERPOLATION.sub(sub, text).replace("$$", "$")


def argv_of(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    words = shlex.split(value) if isinstance(value, str) else [str(w) for w in value]
    return [expand(w) for w in words]


def environment(service: dict[str, Any]) -> dict[str, str]:
    return {k: expand(str(v)) for k, v in (service.get("environment") or {}).items()}


def parse_thumbloop(argv: list[str]) -> tuple[tuple[str, ...], dict[str, Any]]:
    """Parses ``thumbloop ...`` with the real click commands, without invoking any: the path of
    subcommand names and the leaf's parameters. Unknown commands or options, bad values and
    missing paths raise click's usage errors. (Group options are taken to be flags.)"""
    assert argv[:1] == ["thumbloop"], argv
    command: click.Command = cli
    name, args, path = "thumbloop", argv[1:], []
    ctx: click.Context | None = None
    while isinstance(command, click.Group):
        split = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
        if split is None:
            if command.invoke_without_command:  # a group that also runs by itself
                break
            raise click.UsageError(f"{shlex.join(argv)}: names no subcommand of {name}")
        ctx = command.make_context(name, args[: split + 1], parent=ctx)
        sub = command.get_command(ctx, args[split])  # the lazy `bot` group imports its module
        if sub is None:
            raise click.UsageError(f"{shlex.join(argv)}: {name} has no command {args[split]!r}")
        command, name, args = sub, args[split], args[split + 1 :]
        path.append(name)
    leaf = command.make_context(name, list(args), parent=ctx)
    return tuple(path), leaf.params


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"docker_{name}", DOCKER / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def thumbloop_services() -> dict[str, list[str]]:
    return {
        name: argv_of(svc.get("command"))
        for name, svc in SERVICES.items()
        if argv_of(svc.get("command"))[:1] == ["thumbloop"]
    }


@pytest.fixture(scope="module", autouse=True)
def _in_repo_root() -> Iterator[None]:
    # commands name paths relative to the image's WORKDIR, which holds what the repo root does
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(ROOT)
        yield


@pytest.fixture(scope="module")
def parsed() -> dict[str, tuple[tuple[str, ...], dict[str, Any]]]:
    return {name: parse_thumbloop(argv) for name, argv in thumbloop_services().items()}


def healthcheck_argv(service: dict[str, Any]) -> list[str]:
    test = argv_of((service.get("healthcheck") or {}).get("test"))
    return test[1:] if test[:1] in (["CMD"], ["CMD-SHELL"]) else test


def gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    resources = (service.get("deploy") or {}).get("resources") or {}
    devices = (resources.get("reservations") or {}).get("devices") or []
    return [d for d in devices if d.get("driver") == "nvidia" and "gpu" in d.get("capabilities")]


def is_one_shot(service: dict[str, Any]) -> bool:
    return service.get("restart") == "no"


def test_every_service_runs_thumbloop_or_is_known() -> None:
    others = set(SERVICES) - set(thumbloop_services())
    assert others == set(NOT_THUMBLOOP), "a new non-thumbloop service: add it to NOT_THUMBLOOP"


@pytest.mark.parametrize("name", sorted(thumbloop_services()))
def test_thumbloop_commands_parse_with_the_real_cli(name: str) -> None:
    argv = thumbloop_services()[name]
    try:
        parse_thumbloop(argv)
    except click.ClickException as exc:
        pytest.fail(f"{name}: `{shlex.join(argv)}` does not parse: {exc.format_message()}")


def secret_targets(service: dict[str, Any]) -> dict[str, str]:
    """target (the variable or file name in /run/secrets) -> source (the file in docker/secrets)."""
    out = {}
    for item in service.get("secrets") or []:
        source, target = (
            (item, item)
            if isinstance(item, str)
            else (item["source"], item.get("target", item["source"]))
        )
        out[target] = source
    return out


def secret_values() -> dict[str, str]:
    """What docker/make_secrets.py writes, in a scratch folder."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        load_script("make_secrets").make(Path(tmp))
        return {p.name: p.read_text(encoding="utf-8").strip() for p in Path(tmp).iterdir()}


def service_env(name: str, values: dict[str, str]) -> dict[str, str]:
    """A service's variables as with-secrets.sh makes them: environment plus mounted secrets."""
    svc = SERVICES[name]
    env = environment(svc)
    env |= {t: values[s] for t, s in secret_targets(svc).items() if re.fullmatch(r"[A-Z0-9_]+", t)}
    return env


def test_mlflow_server_arguments_parse_with_mlflow() -> None:
    from mlflow.cli import server

    svc = SERVICES["mlflow"]
    entrypoint = argv_of(svc["entrypoint"])
    script = DOCKER / Path(entrypoint[-1]).name
    assert entrypoint == ["sh", "/app/docker/with-secrets.sh", "sh", f"/app/docker/{script.name}"]
    assert script.is_file()
    assert 'exec mlflow server "$@"' in script.read_text(encoding="utf-8")
    params = server.make_context("server", argv_of(svc["command"])).params
    assert params["app_name"] == "basic-auth"
    assert params["serve_artifacts"] and params["artifacts_destination"].startswith("/")
    assert params["host"] == "0.0.0.0"
    volumes = [str(v).split(":") for v in svc["volumes"]]
    assert any(target == params["artifacts_destination"] for _, target in volumes)
    # the backend and the auth store are secrets (they carry the password of the role mlflow)
    env = service_env("mlflow", secret_values())
    assert urlsplit(env["MLFLOW_BACKEND_STORE_URI"]).path == "/mlflow"
    assert urlsplit(env["MLFLOW_AUTH_DATABASE_URI"]).path == "/mlflow_auth"
    for key in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_AUTH_DATABASE_URI"):
        assert urlsplit(env[key]).username == "mlflow", key


def test_script_arguments_parse() -> None:
    users = load_script("mlflow_users").build_parser()
    for name, user in (("worker", "mlflow-user-learning"), ("serving", "mlflow-user-serving")):
        argv = argv_of(SERVICES[user]["command"])
        assert argv[:2] == ["python", "docker/mlflow_users.py"]
        args = users.parse_args(argv[2:])
        assert args.username == environment(SERVICES[name])["MLFLOW_TRACKING_USERNAME"]
        # the one-shot reads the account's password from the secret it mounts
        assert args.password_env in secret_targets(SERVICES[user])
        assert (
            secret_targets(SERVICES[user])[args.password_env]
            == secret_targets(SERVICES[name])["MLFLOW_TRACKING_PASSWORD"]
        )
    grants = argv_of(SERVICES["db-grants"]["command"])
    assert grants[:2] == ["python", "docker/db_grants.py"]
    load_script("db_grants").build_parser().parse_args(grants[2:])
    checks = load_script("healthcheck").build_parser()
    for name, svc in SERVICES.items():
        argv = healthcheck_argv(svc)
        if argv[:2] == ["python", "/app/docker/healthcheck.py"]:
            assert checks.parse_args(argv[2:]).check, name


def test_thumbloop_variables_are_settings() -> None:
    names = set(re.findall(r"\bTHUMBLOOP_([A-Z0-9_]+)", COMPOSE_TEXT + ENV_EXAMPLE))
    unknown = {f"THUMBLOOP_{n}" for n in names if n.lower() not in Settings.fields()}
    assert not unknown, f"not fields of thumbloop.settings.Settings: {sorted(unknown)}"


def env_example_names() -> set[str]:
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE, flags=re.M))


def test_env_example_lists_every_variable_compose_reads() -> None:
    used = {m.group(1) for m in _INTERPOLATION.finditer(COMPOSE_TEXT.replace("$$", ""))}
    assert not used - env_example_names(), "document these in docker/.env.example"
    required = {m.group(1) for m in _INTERPOLATION.finditer(COMPOSE_TEXT) if m.group(2) == ":?"}
    set_lines = set(re.findall(r"^([A-Z][A-Z0-9_]*)=\S", ENV_EXAMPLE, flags=re.M))
    assert required <= set_lines, "required variables need an (uncommented) placeholder"


def test_service_addresses_name_services_and_ports_agree(
    parsed: dict[str, tuple[tuple[str, ...], dict[str, Any]]],
) -> None:
    values = secret_values()
    for name in thumbloop_services():
        env = service_env(name, values)
        for key in ("DATABASE_URL", "BROKER_URL", "RESULT_BACKEND", "REDIS_URL", "SERVING_URL"):
            if f"THUMBLOOP_{key}" in env:
                assert urlsplit(env[f"THUMBLOOP_{key}"]).hostname in SERVICES, (name, key)
    env = service_env("serving", values) | environment(SERVICES["telegram"])
    assert parsed["serving"][0] == ("serve",)
    serve = parsed["serving"][1]
    serving_url = urlsplit(env["THUMBLOOP_SERVING_URL"])
    assert (serving_url.hostname, serving_url.port) == ("serving", serve["port"])
    assert serve["host"] == "0.0.0.0"
    assert [str(p) for p in SERVICES["serving"]["expose"]] == [str(serve["port"])]
    health = urlsplit(healthcheck_argv(SERVICES["serving"])[-1])
    assert (health.port, health.path) == (serve["port"], "/healthz")

    from mlflow.cli import server

    mlflow_port = server.make_context("server", argv_of(SERVICES["mlflow"]["command"])).params[
        "port"
    ]
    tracking = urlsplit(env["THUMBLOOP_MLFLOW_TRACKING_URI"])
    assert (tracking.hostname, tracking.port) == ("mlflow", mlflow_port)
    health = urlsplit(healthcheck_argv(SERVICES["mlflow"])[-1])
    assert (health.port, health.path) == (mlflow_port, "/health")
    published = [expand(str(p)) for p in SERVICES["mlflow"]["ports"]]
    assert all(p.endswith(f":{mlflow_port}") for p in published)
    allowed = expand(environment(SERVICES["mlflow"])["MLFLOW_SERVER_ALLOWED_HOSTS"])
    assert f"mlflow:{mlflow_port}" in allowed.split(","), "MLflow would refuse the services"


def test_long_running_services_have_healthchecks_and_one_shots_are_awaited() -> None:
    awaited = {
        target
        for svc in SERVICES.values()
        for target, dep in (svc.get("depends_on") or {}).items()
        if dep.get("condition") == "service_completed_successfully"
    }
    for name, svc in SERVICES.items():
        if is_one_shot(svc):
            assert name in awaited, f"{name} is a one-shot nobody waits for"
        else:
            assert healthcheck_argv(svc), f"{name} runs long and has no healthcheck"
            assert not svc["healthcheck"].get("disable"), name
    assert {
        "migrate",
        "db-grants",
        "seed",
        "mlflow-user-learning",
        "mlflow-user-serving",
    } <= awaited


def test_depends_on_conditions_fit_their_targets() -> None:
    for name, svc in SERVICES.items():
        for target, dep in (svc.get("depends_on") or {}).items():
            assert target in SERVICES, f"{name} depends on a missing {target}"
            condition = dep.get("condition")
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name}: {target} has no healthcheck"
            else:
                assert condition == "service_completed_successfully", (name, target)
                assert is_one_shot(SERVICES[target]), f"{name}: {target} is not a one-shot"


def test_exactly_one_beat_and_every_queue_consumed(
    parsed: dict[str, tuple[tuple[str, ...], dict[str, Any]]],
) -> None:
    workers = {name: params for name, (path, params) in parsed.items() if path == ("worker",)}
    beats = [name for name, params in workers.items() if params["beat"]]
    assert len(beats) == 1, f"services running beat: {beats}"
    assert (SERVICES[beats[0]].get("deploy") or {}).get("replicas", 1) == 1
    consumed = {q for params in workers.values() for q in params["queues"].split(",")}
    assert {DEFAULT_QUEUE, TRAINING_QUEUE} <= consumed
    for name in workers:
        assert "migrate" in SERVICES[name]["depends_on"], f"{name} starts before migrations"


def test_gpu_roles_reserve_a_gpu_and_use_the_cuda_image(
    parsed: dict[str, tuple[tuple[str, ...], dict[str, Any]]],
) -> None:
    def gpu_role(path: tuple[str, ...], params: dict[str, Any]) -> bool:
        trains = path == ("worker",) and TRAINING_QUEUE in params["queues"].split(",")
        return path in {("serve",), ("train",)} or trains

    roles = {name for name, (path, params) in parsed.items() if gpu_role(path, params)}
    assert {"serving", "trainer", "seed"} <= roles
    for name in roles:
        assert gpu_devices(SERVICES[name]), f"{name} reserves no NVIDIA GPU"
        assert SERVICES[name]["build"]["dockerfile"] == "docker/Dockerfile.cuda", name
    reserving = {name for name, svc in SERVICES.items() if gpu_devices(svc)}
    assert reserving == roles


def test_serving_scales_behind_one_name() -> None:
    serving = SERVICES["serving"]
    assert "container_name" not in serving
    assert "ports" not in serving, "a fixed host port stops `--scale serving=N`"
    assert "replicas" in serving["deploy"]


def test_build_sections_point_at_the_dockerfiles() -> None:
    for name, svc in SERVICES.items():
        if "build" in svc:
            context = (DOCKER / svc["build"]["context"]).resolve()
            assert context == ROOT, name
            assert (context / svc["build"]["dockerfile"]).is_file(), name


def copied_sources(dockerfile: Path) -> set[str]:
    sources: set[str] = set()
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        words = line.split()
        if words[:1] == ["COPY"]:
            sources |= {w.rstrip("/") for w in words[1:-1] if not w.startswith("--")}
    return sources


def test_files_the_commands_use_are_in_the_images() -> None:
    for name, svc in SERVICES.items():
        if "build" not in svc:
            continue
        sources = copied_sources(ROOT / svc["build"]["dockerfile"])
        words = argv_of(svc.get("command")) + argv_of(svc.get("entrypoint"))
        words += healthcheck_argv(svc)
        for word in words:
            path = word.removeprefix("/app/")
            if path.split("/")[0] in {"docker", "data"}:
                assert (ROOT / path).exists(), f"{name}: {word} is not in the repository"
                assert any(path == s or path.startswith(f"{s}/") for s in sources), (
                    f"{name}: {word} is not copied by {svc['build']['dockerfile']}"
                )


class _OverrideLoader(yaml.SafeLoader):
    """Reads compose override files: `!reset` becomes the string "!reset"."""


_OverrideLoader.add_constructor("!reset", lambda loader, node: "!reset")


def test_cpu_override_resets_every_gpu_reservation() -> None:
    text = (DOCKER / "compose.cpu.yaml").read_text(encoding="utf-8")
    services = yaml.load(text, Loader=_OverrideLoader)["services"]
    assert set(services) <= set(SERVICES)
    reset = {
        name
        for name, svc in services.items()
        if svc["deploy"]["resources"]["reservations"]["devices"] == "!reset"
    }
    assert reset == {name for name, svc in SERVICES.items() if gpu_devices(svc)}
    for name in reset:
        assert services[name]["build"]["dockerfile"] == "docker/Dockerfile", name
