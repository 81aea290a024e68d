"""The pure Slack converters: which payloads and commands the bot acts on, and what it reads
from them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from bots.slack.convert import (
    clean_text,
    inbound_from_event,
    parse_subcommand,
    reaction_change,
    remaining_thumb,
    vote_click,
)
from bots.slack.texts import escape_mrkdwn

BOT = "UBOT0001"


def dm(**extra: Any) -> dict[str, Any]:
    event = {
        "type": "message",
        "channel_type": "im",
        "channel": "D0001",
        "user": "U0ALICE",
        "text": "my card has not arrived",
        "ts": "1700000000.000100",
    }
    return event | extra


def test_a_direct_message_is_answered_in_a_thread_of_its_own() -> None:
    got = inbound_from_event(dm(), BOT)
    assert got is not None
    assert (got.text, got.user, got.channel) == ("my card has not arrived", "U0ALICE", "D0001")
    assert got.ts == got.thread_ts == "1700000000.000100"
    threaded = inbound_from_event(dm(thread_ts="1699999999.000001"), BOT)
    assert threaded is not None and threaded.thread_ts == "1699999999.000001"


@pytest.mark.parametrize(
    "extra",
    [
        {"user": BOT, "bot_id": "BBOT"},  # our own reply
        {"bot_id": "B0OTHER"},  # another bot
        {"bot_profile": {"id": "B0OTHER"}},
        {"user": BOT},  # our user id even without bot_id
        {"subtype": "message_changed"},
        {"subtype": "message_deleted"},
        {"subtype": "channel_join"},
        {"subtype": "thread_broadcast"},
        {"channel_type": "channel", "channel": "C0001"},  # channel chatter without a mention
        {"text": "   "},
        {"text": f"<@{BOT}>"},  # only the mention
        {"user": None},
        {"ts": None},
        {"type": "reaction_added"},
    ],
)
def test_what_the_bot_never_answers(extra: dict[str, Any]) -> None:
    assert inbound_from_event(dm(**extra), BOT) is None


def test_mentions_in_channels_are_answered_but_not_twice_in_dms() -> None:
    mention = {"type": "app_mention", "channel": "C0001", "user": "U0ALICE", "ts": "1.2"}
    got = inbound_from_event(mention | {"text": f"<@{BOT}> what is the rate?"}, BOT)
    assert got is not None and got.text == "what is the rate?" and got.thread_ts == "1.2"
    # the same words in a DM come as message.im too; the app_mention copy is dropped
    assert inbound_from_event(mention | {"channel": "D0001", "text": f"<@{BOT}> hi"}, BOT) is None


def test_clean_text_unwraps_slack_markup() -> None:
    text = (
        f"<@{BOT}> ask <@U0BOB|bob> in <#C0001|general> about <https://x.test/a|this> "
        "&amp; <mailto:a@b.test> &lt;now&gt; <!here>"
    )
    assert clean_text(text, BOT) == (
        "ask @someone in #general about this & mailto:a@b.test <now> @here"
    )
    assert escape_mrkdwn("a < b & c > d") == "a &lt; b &amp; c &gt; d"
    assert clean_text(escape_mrkdwn("a < b & c"), BOT) == "a < b & c"


def block_actions(**extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0BOB"},
        "channel": {"id": "D0001"},
        "container": {"type": "message", "message_ts": "1.5", "channel_id": "D0001"},
        "message": {"ts": "1.5", "text": "reply", "blocks": [{"type": "section"}]},
        "actions": [{"action_id": "thumbloop_vote_down", "value": "t1.x.d.y"}],
    }
    return body | extra


def test_vote_click_reads_the_button_user_and_message() -> None:
    click = vote_click(block_actions())
    assert click is not None
    assert (click.token, click.direction, click.user) == ("t1.x.d.y", -1, "U0BOB")
    assert (click.channel, click.message_ts, click.message_text) == ("D0001", "1.5", "reply")
    assert click.blocks == [{"type": "section"}]
    no_message = vote_click(block_actions(message=None, channel=None))
    assert no_message is not None and no_message.message_ts == "1.5"


@pytest.mark.parametrize(
    "extra",
    [
        {"actions": [{"action_id": "something_else", "value": "v"}]},
        {"actions": [{"action_id": "thumbloop_vote_up"}]},  # no value
        {"actions": "nope"},
        {"user": {}},
        {"channel": None, "container": None},
    ],
)
def test_vote_click_rejects_malformed_payloads(extra: dict[str, Any]) -> None:
    assert vote_click(block_actions(**extra)) is None


def reaction(kind: str = "reaction_added", **extra: Any) -> dict[str, Any]:
    event = {
        "type": kind,
        "user": "U0BOB",
        "reaction": "+1",
        "item_user": BOT,
        "item": {"type": "message", "channel": "D0001", "ts": "1.5"},
    }
    return event | extra


def test_thumb_reactions_on_bot_replies_are_votes() -> None:
    up = reaction_change(reaction(), BOT)
    assert up is not None and (up.value, up.added, up.user, up.ts) == (1, True, "U0BOB", "1.5")
    down = reaction_change(reaction("reaction_removed", reaction="-1::skin-tone-4"), BOT)
    assert down is not None and (down.value, down.added) == (-1, False)
    assert reaction_change(reaction(reaction="thumbsdown"), BOT) is not None
    # the vote's time is when the person reacted, not when the event reached the bot
    timed = reaction_change(reaction("reaction_removed", event_ts="1700000000.250000"), BOT)
    assert timed is not None and timed.at == datetime(2023, 11, 14, 22, 13, 20, 250000, UTC)
    late = datetime.now(UTC)
    assert (reaction_change(reaction(event_ts="garbage"), BOT) or up).at >= late


@pytest.mark.parametrize(
    "extra",
    [
        {"reaction": "heart"},
        {"item_user": "U0ALICE"},  # someone else's message
        {"user": BOT},  # the bot's own reaction
        {"item": {"type": "file", "file": "F1"}},
        {"type": "message"},
    ],
)
def test_other_reactions_are_not_votes(extra: dict[str, Any]) -> None:
    assert reaction_change(reaction(**extra), BOT) is None
    assert reaction_change(reaction(), None) is None  # bot user unknown: cannot tell


def test_remaining_thumb_reads_reactions_get() -> None:
    both = [{"name": "+1", "users": ["U0BOB"]}, {"name": "-1", "users": ["U0ALICE"]}]
    assert remaining_thumb(both, "U0BOB") == 1
    assert remaining_thumb(both, "U0ALICE") == -1
    assert remaining_thumb(both, "U0CAROL") is None
    conflicting = [
        {"name": "+1::skin-tone-2", "users": ["U0BOB"]},
        {"name": "-1", "users": ["U0BOB"]},
    ]
    assert remaining_thumb(conflicting, "U0BOB") is None
    assert remaining_thumb(None, "U0BOB") is None


def test_slash_subcommands() -> None:
    assert parse_subcommand("") == "help" and parse_subcommand(None) == "help"
    assert parse_subcommand("  Privacy please") == "privacy"
    assert parse_subcommand("FORGET") == "forget"
    assert parse_subcommand("dance") is None


def test_a_choice_click_carries_its_value_thread_and_time() -> None:
    from bots.slack.convert import choice_click

    body = {
        "user": {"id": "U1"},
        "channel": {"id": "C1"},
        "message": {"ts": "10.5", "thread_ts": "9.1", "text": "hi", "blocks": [{"type": "x"}]},
        "actions": [
            {"action_id": "thumbloop_choice_h", "value": "c1.tok", "action_ts": "1700000000.25"}
        ],
    }
    click = choice_click(body)
    assert click is not None
    assert (click.token, click.choice, click.user, click.channel) == ("c1.tok", "h", "U1", "C1")
    assert (click.message_ts, click.thread_ts) == ("10.5", "9.1")
    assert click.at.timestamp() == 1700000000.25
    assert choice_click({**body, "actions": [{"action_id": "thumbloop_choice_9"}]}) is None
    assert choice_click({**body, "user": {}}) is None
