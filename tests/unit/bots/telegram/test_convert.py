"""The Telegram adapter's pure decisions: addressing, mentions, reactions, button data."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from telegram import Chat, Message, MessageEntity, ReactionTypeCustomEmoji, ReactionTypeEmoji, User

from bots.common.signing import SigningKeys, sign_vote
from bots.telegram import texts
from bots.telegram.convert import (
    emojis_of,
    is_addressed,
    parse_callback,
    reaction_vote,
    strip_mention,
)

BOT = User(id=99, is_bot=True, first_name="Thumbloop", username="thumbloop_bot")
ADA = User(id=1, is_bot=False, first_name="Ada")
KEYS = SigningKeys("unit-secret")
UP, DOWN = texts.UP, texts.DOWN


def msg(
    text: str, chat_type: str = Chat.SUPERGROUP, from_user: User = ADA, **kw: object
) -> Message:
    return Message(
        message_id=10,
        date=datetime.now(UTC),
        chat=Chat(id=-5 if chat_type != Chat.PRIVATE else 1, type=chat_type),
        from_user=from_user,
        text=text,
        **kw,  # type: ignore[arg-type]
    )


def mention(text: str, word: str) -> MessageEntity:
    return MessageEntity(MessageEntity.MENTION, text.index(word), len(word))


def test_private_messages_are_always_for_the_bot() -> None:
    assert is_addressed(msg("hi", Chat.PRIVATE), BOT.id, BOT.username)


def test_group_messages_need_a_mention_or_a_reply_to_the_bot() -> None:
    assert not is_addressed(msg("lunch?"), BOT.id, BOT.username)
    text = "hey @Thumbloop_Bot where is my card"
    assert is_addressed(
        msg(text, entities=[mention(text, "@Thumbloop_Bot")]), BOT.id, "thumbloop_bot"
    )
    other = "hey @someone_else where is my card"
    assert not is_addressed(
        msg(other, entities=[mention(other, "@someone_else")]), BOT.id, "thumbloop_bot"
    )
    to_bot = msg("and now?", reply_to_message=msg("an answer", from_user=BOT))
    assert is_addressed(to_bot, BOT.id, BOT.username)
    to_ada = msg("and now?", reply_to_message=msg("my words"))
    assert not is_addressed(to_ada, BOT.id, BOT.username)
    text_mention = MessageEntity(MessageEntity.TEXT_MENTION, 0, 4, user=BOT)
    assert is_addressed(msg("Bott, help", entities=[text_mention]), BOT.id, BOT.username)


def test_strip_mention_keeps_the_question() -> None:
    assert (
        strip_mention("@thumbloop_bot  where is   my card", "thumbloop_bot") == "where is my card"
    )
    assert (
        strip_mention("where is my card @THUMBLOOP_BOT?", "thumbloop_bot") == "where is my card ?"
    )
    assert strip_mention("mail @thumbloop_botanist", "thumbloop_bot") == "mail @thumbloop_botanist"
    assert strip_mention("@thumbloop_bot", "thumbloop_bot") == ""


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ([], [UP], 1),
        ([], [DOWN], -1),
        ([UP], [DOWN], -1),
        ([DOWN], [UP], 1),
        ([UP], [], 0),
        ([UP], [UP, "❤"], None),
        ([], ["❤"], None),
        (["❤"], [], None),
        ([UP, DOWN], [UP], 1),
        ([], [UP, DOWN], -1),
    ],
)
def test_reaction_vote(old: list[str], new: list[str], expected: int | None) -> None:
    assert reaction_vote(old, new) == expected


def test_emojis_of_ignores_custom_emoji() -> None:
    reactions = [ReactionTypeEmoji(UP), ReactionTypeCustomEmoji("123")]
    assert emojis_of(reactions) == [UP]


def test_parse_callback_refuses_forged_and_malformed_data() -> None:
    iid = uuid.uuid4()
    good = sign_vote(KEYS, iid, 1)
    assert parse_callback(SigningKeys("other-secret"), good) is None
    assert parse_callback(KEYS, good.replace(".u.", ".d.")) is None
    for junk in (None, "", "t1", "t1.a.b.c", "fg:y", "fg:maybe:0123456789abcdef", "fg:y:XYZ"):
        assert parse_callback(KEYS, junk) is None
