"""`thumbloop chat` at its prompt: keys typed into prompt_toolkit, a real serving worker."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from bots.terminal.app import ChatSession
from bots.terminal.runner import run_interactive
from serving.app import create_app
from tests.integration.servers import run_uvicorn
from thumbloop import task_names as tasks
from thumbloop.settings import Settings


class RecordingSender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def send(self, name: str, kwargs: dict[str, Any]) -> str:
        self.sent.append((name, kwargs))
        return "id"


@pytest.fixture(scope="module")
def bundle_server(tiny_registered, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:  # type: ignore[no-untyped-def]
    settings = Settings(home=tmp_path_factory.mktemp("chat-home"), device="cpu")
    with run_uvicorn(create_app(settings, str(tiny_registered.bundle_dir))) as base:
        yield base


def _type_into_chat(url: str, keys: list[str]) -> tuple[RecordingSender, str]:
    sender = RecordingSender()
    session = ChatSession(queue=sender, id_key="s", user="ann")

    async def go() -> None:
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            for k in keys:
                pipe.send_text(k)
            await asyncio.wait_for(run_interactive(session, url), 60)

    asyncio.run(go())
    return sender, session.conversation


def test_enter_sends_a_message_and_plus_on_an_empty_line_votes_up(
    bundle_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sender, _ = _type_into_chat(
        # after the 👎 the chat asks what went wrong: Enter skips
        bundle_server,
        ["my card has not arrived yet\r", "+", "hello there\r", "-", "\r", "/quit\r"],
    )
    names = [name for name, _ in sender.sent]
    assert names == [
        tasks.RECORD_INTERACTION,
        tasks.RECORD_VOTE,
        tasks.RECORD_INTERACTION,
        tasks.RECORD_VOTE,
    ]
    first, up, second, down = (payload for _, payload in sender.sent)
    assert up["vote"]["value"] == 1
    assert up["vote"]["interaction_id"] == first["interaction"]["interaction_id"]
    assert down["vote"]["value"] == -1
    assert down["vote"]["interaction_id"] == second["interaction"]["interaction_id"]
    out = capsys.readouterr().out
    assert "bot ▸" in out and "intent card_arrival" in out
    assert "👍 recorded" in out and "👎 recorded" in out


def test_plus_inside_a_message_is_text_and_a_vote_needs_a_reply(
    bundle_server: str, capsys: pytest.CaptureFixture[str]
) -> None:
    sender, _ = _type_into_chat(bundle_server, ["+", "c++ card +1\r", "/quit\r"])
    assert [name for name, _ in sender.sent] == [tasks.RECORD_INTERACTION]
    assert sender.sent[0][1]["interaction"]["text"] == "c++ card +1"
    assert "nothing to rate yet" in capsys.readouterr().out


def test_no_serving_worker_is_a_clear_message_not_a_crash(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    sender, _ = _type_into_chat("http://127.0.0.1:9", ["hello\r", "/quit\r"])
    assert sender.sent == []
    assert "is `thumbloop up` running?" in capsys.readouterr().out
