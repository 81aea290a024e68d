"""``alias_version`` tells "no such alias" apart from "cannot ask" (a refused login must not read
as "no champion": ``thumbloop train --if-no-champion`` would then register a seed over it)."""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from learning.registry.client import alias_version
from thumbloop.cli.main import cli


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
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    env = {"THUMBLOOP_HOME": str(tmp_path), "THUMBLOOP_MLFLOW_TRACKING_URI": refusing_server}
    result = CliRunner().invoke(cli, ["train", "--if-no-champion"], env=env)
    assert result.exit_code != 0
    assert "cannot ask" in result.output and "401" in result.output
    assert not (tmp_path / "bundles").exists()  # nothing was trained
