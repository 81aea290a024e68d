import random

from serving.replies.posteriors import InMemoryPosteriors
from serving.replies.strategies import EMPATHY_PREFIX, ReplyContext, TemplateReplies, thompson_pick
from thumbloop.domain import ResponseVariant

RESPONSES = {
    "card_arrival": [
        ResponseVariant(id="card_arrival/1", tone="neutral", text="Your card is on its way."),
        ResponseVariant(id="card_arrival/2", tone="neutral", text="Cards usually arrive soon."),
        ResponseVariant(
            id="card_arrival/3", tone="empathetic", text="Sorry for the wait! It is coming."
        ),
    ],
    "change_pin": [ResponseVariant(id="change_pin/1", tone="neutral", text="Go to Cards > PIN.")],
    "out_of_scope": [
        ResponseVariant(id="out_of_scope/1", tone="neutral", text="I can't help with that.")
    ],
}


def ctx(**kw: object) -> ReplyContext:
    base: dict[str, object] = dict(
        text="where is my card",
        intent="card_arrival",
        confidence=0.9,
        ranking=[("card_arrival", 0.9), ("change_pin", 0.05), ("out_of_scope", 0.05)],
        sentiment="neutral",
        out_of_scope="out_of_scope",
        threshold=0.3,
    )
    return ReplyContext(**(base | kw))  # type: ignore[arg-type]


async def test_neutral_message_gets_a_neutral_variant() -> None:
    s = TemplateReplies(RESPONSES, InMemoryPosteriors(), random.Random(0))
    ids = {(await s.reply(ctx())).response_id for _ in range(50)}
    assert ids == {"card_arrival/1", "card_arrival/2"}


async def test_negative_sentiment_selects_empathetic_variant_or_prefix() -> None:
    s = TemplateReplies(RESPONSES, InMemoryPosteriors(), random.Random(0))
    r = await s.reply(ctx(sentiment="negative"))
    assert r.response_id == "card_arrival/3"
    r = await s.reply(ctx(intent="change_pin", sentiment="negative"))
    assert r.text.startswith(EMPATHY_PREFIX) and r.response_id == "change_pin/1"


async def test_low_confidence_and_oos_offer_top_two_intents() -> None:
    s = TemplateReplies(RESPONSES, InMemoryPosteriors(), random.Random(0))
    for c in (
        ctx(confidence=0.2),
        ctx(
            intent="out_of_scope",
            ranking=[("out_of_scope", 0.8), ("card_arrival", 0.1), ("change_pin", 0.1)],
        ),
    ):
        r = await s.reply(c)
        assert "card arrival" in r.text and "change pin" in r.text
        assert r.text.startswith("I can't help with that.")
        assert "clarify" in r.response_id


async def test_thompson_sampling_follows_the_votes() -> None:
    post = InMemoryPosteriors()
    for _ in range(40):
        await post.update("card_arrival", "card_arrival/2", +1)
        await post.update("card_arrival", "card_arrival/1", -1)
    s = TemplateReplies(RESPONSES, post, random.Random(1))
    picks = [(await s.reply(ctx())).response_id for _ in range(200)]
    assert picks.count("card_arrival/2") > 190


def test_thompson_without_votes_is_roughly_uniform() -> None:
    rng = random.Random(3)
    variants = RESPONSES["card_arrival"][:2]
    picks = [thompson_pick(variants, {}, rng).id for _ in range(2000)]
    share = picks.count("card_arrival/1") / len(picks)
    assert 0.4 < share < 0.6
