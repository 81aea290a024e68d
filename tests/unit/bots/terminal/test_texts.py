"""What `thumbloop chat` prints: the JSON records of --json and the line under each reply."""

from __future__ import annotations

import json
import uuid

from bots.terminal.texts import as_json_line, describe, reply_record, vote_record, vote_text
from tests.unit.bots.terminal.test_app import prediction
from thumbloop.contracts import Vote
from thumbloop.identity import hash_id


def test_reply_record_is_json_ready() -> None:
    p = prediction()
    record = reply_record("my card", p)
    assert record["interaction_id"] == str(p.interaction_id)
    assert record["model_version"] == "thumbloop/3" and record["sentiment"] == "negative"


def test_json_lines_keep_emoji_and_votes_name_their_reply() -> None:
    iid = uuid.uuid4()
    vote = Vote(interaction_id=iid, rater=hash_id("s", "cli", "ann"), value=1, platform="cli")
    line = as_json_line(vote_record(vote))
    assert json.loads(line) == {"step": "vote", "value": 1, "interaction_id": str(iid)}
    assert as_json_line({"reply": "👍 ok"}) == '{"reply": "👍 ok"}'


def test_the_line_under_a_reply_and_the_vote_echo() -> None:
    line = describe(prediction())
    assert line == (
        "intent card_arrival 0.90 · sentiment negative 0.70 · model thumbloop/3 · 12 ms"
    )
    assert vote_text(1).strip() == "👍 recorded" and vote_text(-1).strip() == "👎 recorded"


def test_the_follow_up_is_listed_with_the_keys_that_pick_it() -> None:
    from bots.common.followup import DIDNT_HELP, QUESTION, SOMETHING_ELSE, FollowUp
    from bots.terminal.texts import choices_text

    text = choices_text(FollowUp(("card_arrival", "lost_or_stolen_card"), unhelpful=True))
    lines = [line.strip() for line in text.splitlines()]
    assert lines == [
        QUESTION,
        "1) card arrival",
        "2) lost or stolen card",
        f"s) {SOMETHING_ELSE}",
        f"h) {DIDNT_HELP}",
        "(Enter skips)",
    ]
