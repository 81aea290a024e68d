"""The generator's prompt builder: pure, no model."""

from serving.replies.prompt import EMPATHY, PERSONA, PromptInput, build_messages
from thumbloop.contracts import Turn

REF = "You can check the status of your card order in the app under Cards."


def test_persona_intent_and_grounding_in_place() -> None:
    msgs = build_messages(PromptInput("where is my card?", "card_arrival", "neutral", REF))
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == PERSONA and "bank" in PERSONA
    last = msgs[-1]["content"]
    assert last.startswith("where is my card?")
    assert "about card arrival:" in last and last.endswith(REF)


def test_negative_sentiment_asks_for_empathy() -> None:
    neutral = build_messages(PromptInput("hi", "greeting", "positive", REF))
    negative = build_messages(PromptInput("this is awful", "card_arrival", "negative", REF))
    assert EMPATHY not in neutral[0]["content"]
    assert negative[0]["content"].endswith(EMPATHY)


def test_recent_history_opens_with_a_user_turn_and_is_clipped() -> None:
    history = [
        Turn(role="user", text="first question"),
        Turn(role="assistant", text="first answer"),
        Turn(role="user", text="second   question\nwith newline"),
        Turn(role="assistant", text="x" * 2000),
    ]
    msgs = build_messages(PromptInput("and now?", "card_arrival", "neutral", REF, history), 3)
    # the last 3 turns start with an assistant turn: dropped so the user speaks first
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[1]["content"] == "second question with newline"
    assert len(msgs[2]["content"]) == 500 and msgs[2]["content"].endswith("…")
    assert (
        build_messages(PromptInput("q", "card_arrival", "neutral", REF, history), 0)[1]["role"]
        == "user"
    )
    assert len(build_messages(PromptInput("q", "card_arrival", "neutral", REF, history), 0)) == 2
