"""``alias_version`` tells "no such alias" apart from "cannot ask" (a refused login must not read
as "no champion": ``thumbloop train --if-no-champion`` would then register a seed over it)."""

from __future__ import annotations

import http.server
import json
import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from learning.registry.versions import alias_version


class _Refuses(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="mlflow"')
        self.send_header("Content-Length", "12")
        self.end_headers()
        self.wfile.write(b"Unauthorized")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def refusing_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refuses)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


def test_missing_model_or_alias_is_none(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert alias_version(client, "nothing", "champion") is None
    client.create_registered_model("thumbloop")
    assert alias_version(client, "thumbloop", "champion") is None


def test_a_refused_login_is_an_error(refusing_server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    client = MlflowClient(tracking_uri=refusing_server, registry_uri=refusing_server)
    with pytest.raises(MlflowException, match="401"):
        alias_version(client, "thumbloop", "champion")


def test_train_if_no_champion_stops_when_the_registry_refuses(
    refusing_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    from thumbloop.cli.main import cli

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    env = {"THUMBLOOP_HOME": str(tmp_path), "THUMBLOOP_MLFLOW_TRACKING_URI": refusing_server}
    result = CliRunner().invoke(cli, ["train", "--if-no-champion"], env=env)
    assert result.exit_code != 0
    assert "cannot ask" in result.output and "401" in result.output
    assert not (tmp_path / "bundles").exists()  # nothing was trained


def test_a_generator_base_that_cannot_be_fetched_leaves_the_bundle_loadable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from serving.model_source import fetch_generator_base

    adapter = tmp_path / "bundle" / "generator"
    adapter.mkdir(parents=True)
    manifest = {"version": "kto-1", "base": "smollm2", "base_uri": f"file://{tmp_path}/gone"}
    (adapter / "generator.json").write_text(json.dumps(manifest))
    with caplog.at_level(logging.WARNING, logger="serving.model_source"):
        fetch_generator_base(tmp_path / "bundle", f"sqlite:///{tmp_path}/x.db", tmp_path / "cache")
    assert json.loads((adapter / "generator.json").read_text()) == manifest
    assert "not fetched" in caplog.text
    assert not list((tmp_path / "cache").glob("generator-bases/*"))  # no half-written base


def test_a_bundle_without_a_logged_base_is_left_alone(tmp_path: Path) -> None:
    from serving.model_source import fetch_generator_base

    fetch_generator_base(tmp_path, "sqlite:///unused.db", tmp_path / "cache")  # no generator
    adapter = tmp_path / "generator"
    adapter.mkdir()
    (adapter / "generator.json").write_text(json.dumps({"version": "v", "base": "smollm2"}))
    fetch_generator_base(tmp_path, "sqlite:///unused.db", tmp_path / "cache")
    assert json.loads((adapter / "generator.json").read_text())["base"] == "smollm2"
    assert not (tmp_path / "cache").exists()


def test_a_template_server_does_not_fetch_the_generator_base(tmp_path: Path) -> None:
    """The base (~0.5 GB) comes down only for a server that will load the generator."""
    from serving.model_source import resolve

    base = tmp_path / "logged-base"
    base.mkdir()
    (base / "config.json").write_text("{}")
    cached = tmp_path / "cache" / "m" / "1"
    adapter = cached / "generator"
    adapter.mkdir(parents=True)
    (cached / "bundle.json").write_text("{}")
    manifest = {"version": "kto-1", "base": "/training-host/smollm2", "base_uri": base.as_uri()}
    (adapter / "generator.json").write_text(json.dumps(manifest))
    tracking = f"sqlite:///{tmp_path}/unused.db"

    resolve("models:/m/1", tracking, tmp_path / "cache", fetch_base=False)
    assert json.loads((adapter / "generator.json").read_text()) == manifest
    assert not (tmp_path / "cache" / "generator-bases").exists()

    resolved = resolve("models:/m/1", tracking, tmp_path / "cache")
    fetched = Path(json.loads((adapter / "generator.json").read_text())["base"])
    assert resolved.bundle_dir == cached
    assert fetched.parent == tmp_path / "cache" / "generator-bases"
    assert (fetched / "config.json").is_file()
