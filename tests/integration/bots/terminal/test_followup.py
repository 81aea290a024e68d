"""`thumbloop chat` follow-ups through its runner against a scripted serving worker (so the
ranking is known): a script's '-' then '? n' records the correction and prints the answer; a
reply that asked to clarify offers its choices at once; at the prompt, the pick is typed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from prompt_toolkit.application import create_app_session
from prompt_toolkit.input import create_pipe_input
from prompt_toolkit.output import DummyOutput

from bots.common import followup as fu
from bots.terminal.app import ChatSession
from bots.terminal.convert import parse_script
from bots.terminal.runner import run_interactive, run_script
from tests.integration.bots.terminal.test_chat import RecordingSender
from tests.integration.fakes.serving import ScriptedServing, answer_text, run_scripted_serving
from thumbloop import task_names as tasks

CHARGED = "I was charged twice for the same coffee"
UNSURE = "something about my money"


@pytest.fixture(scope="module")
def serving() -> Iterator[tuple[ScriptedServing, str]]:
    with run_scripted_serving({"charged_twice", "pending_card_payment", "refund"}) as (s, url):
        s.says(
            CHARGED,
            [("charged_twice", 0.7), ("pending_card_payment", 0.2), ("refund", 0.02)],
            "charged_twice_1",
        )
        s.says(
            UNSURE,
            [("refund", 0.4), ("pending_card_payment", 0.3), ("out_of_scope", 0.2)],
            "oos_1+clarify:refund|pending_card_payment",
        )
        yield s, url


def test_a_script_downvotes_picks_an_intent_and_gets_its_answer(
    serving: tuple[ScriptedServing, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, url = serving
    sender = RecordingSender()
    session = ChatSession(queue=sender, id_key="s", user="ann")
    steps = parse_script([f"> {CHARGED}", "-", "? h", "? 1", "? 2"])
    failures = asyncio.run(run_script(session, url, steps, as_json=True))
    assert failures == 1, "'? 2' names nothing on offer (refund is under the floor)"
    names = [n for n, _ in sender.sent]
    assert names == [
        tasks.RECORD_INTERACTION,
        tasks.RECORD_VOTE,
        tasks.RECORD_CORRECTION,
        tasks.RECORD_CORRECTION,
    ]
    iid = sender.sent[0][1]["interaction"]["interaction_id"]
    unhelpful, intent = (kw["correction"] for _, kw in sender.sent[2:])
    assert (unhelpful["kind"], unhelpful["label"]) == ("unhelpful", None)
    assert (intent["kind"], intent["label"]) == ("intent", "pending_card_payment")
    assert intent["interaction_id"] == iid and intent["platform"] == "cli"
    captured = capsys.readouterr()
    records = [json.loads(line) for line in captured.out.splitlines()]
    picks = [r for r in records if r["step"] == "pick"]
    assert picks[-1]["answer"] == answer_text("pending_card_payment")
    assert picks[0]["answer"] is None
    assert "line 5" in captured.err


def test_an_unsure_reply_lists_its_choices_and_the_prompt_takes_a_pick(
    serving: tuple[ScriptedServing, str], capsys: pytest.CaptureFixture[str]
) -> None:
    scripted, url = serving
    sender = RecordingSender()
    session = ChatSession(queue=sender, id_key="s", user="ann")

    async def go() -> None:
        with create_pipe_input() as pipe, create_app_session(input=pipe, output=DummyOutput()):
            for keys in (f"{UNSURE}\r", "2\r", f"{CHARGED}\r", "-", "\r", "/quit\r"):
                pipe.send_text(keys)
            await asyncio.wait_for(run_interactive(session, url), 60)

    asyncio.run(go())
    out = capsys.readouterr().out
    assert "1) refund" in out and "2) pending card payment" in out
    assert f"s) {fu.SOMETHING_ELSE}" in out
    assert f"bot ▸ {answer_text('pending_card_payment')}" in out
    assert f"h) {fu.DIDNT_HELP}" in out, "shown after the 👎"
    names = [n for n, _ in sender.sent]
    assert names == [
        tasks.RECORD_INTERACTION,
        tasks.RECORD_CORRECTION,
        tasks.RECORD_INTERACTION,
        tasks.RECORD_VOTE,
    ], "Enter skipped the second follow-up"
    made = sender.sent[1][1]["correction"]
    assert (made["kind"], made["label"]) == ("intent", "pending_card_payment")
    assert scripted.answered[-1].conversation_id == session.conversation
