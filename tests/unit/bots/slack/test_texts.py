"""What the Slack bot shows: Block Kit for replies and votes, and the /thumbloop texts."""

from __future__ import annotations

import json
import uuid
from typing import Any

from bots.common.signing import SigningKeys, sign_vote, verify_vote
from bots.slack.convert import VOTE_ACTION
from bots.slack.texts import (
    DOWN_ACTION,
    HELP,
    PRIVACY,
    SECTION_LIMIT,
    STATUS_BLOCK_ID,
    UP_ACTION,
    VOTE_BLOCK_ID,
    answer,
    reply_blocks,
    reply_text,
    voted_blocks,
)


def _blocks() -> tuple[uuid.UUID, list[dict[str, Any]]]:
    iid = uuid.uuid4()
    return iid, reply_blocks(
        "Rates <today> & tomorrow",
        sign_vote(SigningKeys("s"), iid, 1),
        sign_vote(SigningKeys("s"), iid, -1),
    )


def test_reply_blocks_carry_the_text_and_two_signed_buttons() -> None:
    iid, blocks = _blocks()
    section, actions = blocks
    assert section["text"] == {"type": "mrkdwn", "text": "Rates &lt;today&gt; &amp; tomorrow"}
    assert actions["block_id"] == VOTE_BLOCK_ID
    elements = actions["elements"]
    assert isinstance(elements, list)
    assert [e["action_id"] for e in elements] == [UP_ACTION, DOWN_ACTION]
    assert all(VOTE_ACTION.match(e["action_id"]) for e in elements)
    assert [verify_vote(SigningKeys("s"), e["value"]) for e in elements] == [(iid, 1), (iid, -1)]
    assert all(len(e["value"]) <= 2000 for e in elements)  # Slack's limit for a button value
    json.dumps(blocks)  # plain JSON for the Web API


def test_long_replies_fit_a_section() -> None:
    text = reply_text("x" * 5000)
    assert len(text) == SECTION_LIMIT and text.endswith("…")


def test_voted_blocks_highlight_the_choice_and_can_be_revoted() -> None:
    _, blocks = _blocks()
    up = voted_blocks(blocks, 1)
    assert [b.get("block_id") for b in up] == [None, VOTE_BLOCK_ID, STATUS_BLOCK_ID]
    styles = {e["action_id"]: e.get("style") for e in up[1]["elements"]}
    assert styles == {UP_ACTION: "primary", DOWN_ACTION: None}
    assert "👍" in up[2]["elements"][0]["text"]
    down = voted_blocks(up, -1)  # from the already updated message: one status line, replaced
    assert [b.get("block_id") for b in down] == [None, VOTE_BLOCK_ID, STATUS_BLOCK_ID]
    styles = {e["action_id"]: e.get("style") for e in down[1]["elements"]}
    assert styles == {UP_ACTION: None, DOWN_ACTION: "danger"}
    assert "👎" in down[2]["elements"][0]["text"].split("(")[0]
    assert blocks[1]["elements"][0].get("style") is None  # the input is left alone


def test_slash_command_answers() -> None:
    assert answer("help", "") == HELP and answer("privacy", "privacy") == PRIVACY
    unknown = answer(None, "<b>`x` more")
    assert "&lt;b&gt;x" in unknown and "`x`" not in unknown and HELP in unknown
    for text in ("/thumbloop help", "/thumbloop privacy", "/thumbloop forget"):
        assert text in HELP


def test_follow_up_blocks_replace_the_old_ones_and_tick_the_pick() -> None:
    from bots.common.followup import SOMETHING_ELSE, FollowUp
    from bots.slack.convert import CHOICE_ACTION
    from bots.slack.texts import FOLLOWUP_BLOCK_ID, TICK, followup_blocks, with_followup

    plan = FollowUp(("card_arrival",), unhelpful=True)
    tokens = {c: f"token-{c}" for c in plan.choices}
    _, blocks = _blocks()
    first = with_followup(blocks, followup_blocks(plan, tokens))
    again = with_followup(first, followup_blocks(plan, tokens, picked="o"))
    assert len(again) == len(blocks) + 2, "the old follow-up is replaced, not stacked"
    buttons = next(b for b in again if b.get("block_id") == FOLLOWUP_BLOCK_ID)["elements"]
    assert [b["text"]["text"] for b in buttons] == [
        "card arrival",
        f"{TICK} {SOMETHING_ELSE}",
        "Right topic, the answer didn't help",
    ]
    assert [b["value"] for b in buttons] == ["token-0", "token-o", "token-h"]
    assert [b.get("style") for b in buttons] == [None, "primary", None]
    assert all(CHOICE_ACTION.match(b["action_id"]) for b in buttons)
    assert with_followup(again, []) == blocks
