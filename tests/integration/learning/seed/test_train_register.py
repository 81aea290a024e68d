"""Train a tiny domain for real into a SQLite-backed MLflow store, load it back by alias."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from learning.registry.client import alias_version, configure
from learning.registry.versions import Registered
from learning.seed.run import record_seed_run
from serving.model_source import resolve
from thumbloop.cli.main import cli
from thumbloop.model.bundle import load_bundle
from thumbloop.model.device import resolve_device
from thumbloop.model.predictor import predict_many
from thumbloop.settings import Settings
from thumbloop.store.db import make_engine, session_scope
from thumbloop.store.schema import TrainingRunRow


def test_seed_model_is_registered_as_champion(tiny_registered, tiny_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    assert tiny_registered.registered is not None
    assert tiny_registered.registered.aliases == ["champion"]
    client = configure(tiny_settings)
    mv = alias_version(client, tiny_settings.model_name, "champion")
    assert mv is not None and str(mv.version) == tiny_registered.registered.version
    run = client.get_run(tiny_registered.registered.run_id)
    assert "intent_accuracy" in run.data.metrics
    assert run.data.params["domain"] == "tiny"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"confusion_matrix.png", "data_manifest.json", "training_loss.png"} <= names
    # the database lists the seed beside the retrains
    engine = make_engine(tiny_settings.effective_database_url)
    with session_scope(engine) as s:
        rows = s.scalars(select(TrainingRunRow).where(TrainingRunRow.kind == "seed")).all()
        assert [(r.status, r.model_version, r.mlflow_run_id) for r in rows] == [
            ("registered", tiny_registered.registered.version, tiny_registered.registered.run_id)
        ]
        assert rows[0].finished_at is not None and "intent_accuracy" in rows[0].metrics
    engine.dispose()


def test_champion_loads_by_alias_and_predicts(tiny_registered, tiny_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    resolved = resolve(
        f"models:/{tiny_settings.model_name}@champion",
        tiny_settings.effective_tracking_uri,
        tiny_settings.home / "models",
    )
    assert resolved.version == f"{tiny_settings.model_name}/{tiny_registered.registered.version}"
    bundle = load_bundle(resolved.bundle_dir, resolve_device("cpu"))
    texts = ["my new card still has not arrived", "hello there", "I want to change my PIN"]
    p_int, p_sent = predict_many(bundle, texts)
    assert p_int.shape == (3, len(bundle.intents))
    assert p_sent.shape == (3, 3)
    top = [bundle.intents[i] for i in p_int.argmax(1)]
    assert top[0] == "card_arrival"
    assert top[2] == "change_pin"


def test_pyfunc_flavour_loads_through_mlflow(tiny_registered, tiny_settings: Settings) -> None:  # type: ignore[no-untyped-def]
    import mlflow.pyfunc

    configure(tiny_settings)
    model = mlflow.pyfunc.load_model(f"models:/{tiny_settings.model_name}@champion")
    out = model.predict(["I lost my card", "thanks so much, you are great"])
    assert list(out.columns) == ["intent", "intent_confidence", "sentiment", "sentiment_score"]
    assert len(out) == 2


def _env(settings: Settings) -> dict[str, str]:
    return {
        "THUMBLOOP_HOME": str(settings.home),
        "THUMBLOOP_MODEL_NAME": settings.model_name,
        "THUMBLOOP_DEVICE": "cpu",
    }


def test_cli_eval_on_small_files(tiny_registered, tiny_settings: Settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "intent.jsonl"
    data.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"text": "When will my card arrive?", "label": "card_arrival"},
                {"text": "how do I change my pin", "label": "change_pin"},
                {"text": "what's the weather like on mars", "label": "oos"},
            ]
        )
    )
    runner = CliRunner()
    res = runner.invoke(
        cli, ["eval", "--data", str(data), "--task", "intent", "--json"], env=_env(tiny_settings)
    )
    assert res.exit_code == 0, res.output
    scores = json.loads(res.output[res.output.index("{") :])
    assert scores["n"] == 3
    assert {"accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision"} <= set(
        scores
    )

    sst = tmp_path / "sst.jsonl"
    sst.write_text(
        '{"text": "a wonderful , moving film", "label": 1}\n'
        '{"text": "dull and lifeless", "label": 0}\n'
    )
    res = runner.invoke(
        cli,
        [
            "eval",
            "--model",
            str(tiny_registered.bundle_dir),
            "--data",
            str(sst),
            "--task",
            "sentiment",
        ],
        env=_env(tiny_settings),
    )
    assert res.exit_code == 0, res.output
    assert "accuracy" in res.output


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "no examples"),
        (
            '{"text": "x", "label": "book_flight"}\n',
            "bad.jsonl:1: unknown intent label 'book_flight'",
        ),
        ('{"text": "x", "label": "card_arrival"}\nnot json\n', ":2: not valid JSON"),
    ],
)
def test_cli_eval_errors_are_clear(
    tiny_registered, tiny_settings: Settings, tmp_path: Path, content: str, message: str
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    res = CliRunner().invoke(
        cli, ["eval", "--data", str(data), "--task", "intent"], env=_env(tiny_settings)
    )
    assert res.exit_code != 0
    assert message in res.output


def test_unknown_model_uri_is_a_clear_error(
    tiny_registered, tiny_settings: Settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    data = tmp_path / "ok.jsonl"
    data.write_text('{"text": "hi", "label": "greeting"}\n')
    res = CliRunner().invoke(
        cli,
        ["eval", "--model", "models:/nope@champion", "--data", str(data), "--task", "intent"],
        env=_env(tiny_settings),
    )
    assert res.exit_code != 0
    assert "no alias" in res.output or "nope" in res.output


def test_a_seed_run_the_database_cannot_take_is_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        home=tmp_path, database_url="postgresql+psycopg2://nobody:secret@127.0.0.1:1/none"
    )
    registered = Registered(run_id="r1", version="3", aliases=[])
    record_seed_run(settings, registered, {"intent_accuracy": 0.9}, datetime.now(UTC))
    assert "seed run not recorded in 127.0.0.1:1/none" in caplog.text
    assert "secret" not in caplog.text  # the password stays out of the log
