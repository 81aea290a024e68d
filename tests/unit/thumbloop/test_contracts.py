import uuid

import pytest
from pydantic import ValidationError

from thumbloop.contracts import IncomingMessage, Interaction, Prediction, Vote
from thumbloop.identity import hash_id

RATER = hash_id("secret", "telegram", 42)


def test_incoming_message_rejects_blank_text() -> None:
    with pytest.raises(ValidationError, match="non-whitespace"):
        IncomingMessage(text="   \n\t")
    assert IncomingMessage(text=" hi ").text == " hi "


def test_vote_value_must_be_plus_or_minus_one() -> None:
    iid = uuid.uuid4()
    assert Vote(interaction_id=iid, rater=RATER, value=1, platform="slack").value == 1
    assert Vote(interaction_id=iid, rater=RATER, value=-1, platform="slack").value == -1
    for bad in (0, 2, -2):
        with pytest.raises(ValidationError):
            Vote(interaction_id=iid, rater=RATER, value=bad, platform="slack")  # type: ignore[arg-type]


def test_vote_rejects_raw_platform_ids_and_bad_uuids() -> None:
    with pytest.raises(ValidationError, match="HMAC"):
        Vote(interaction_id=uuid.uuid4(), rater="123456789", value=1, platform="telegram")
    with pytest.raises(ValidationError):
        Vote(interaction_id="not-a-uuid", rater=RATER, value=1, platform="telegram")  # type: ignore[arg-type]


def test_prediction_round_trips_json_and_caps_ranking() -> None:
    pred = Prediction(
        intent={
            "name": "card_arrival",
            "confidence": 0.9,
            "ranking": [{"name": "card_arrival", "confidence": 0.9}],
        },
        sentiment={"label": "neutral", "score": 0.8},
        reply={"text": "hi", "response_id": "card_arrival/1"},
        model_version="thumbloop/1",
        latency_ms=3.2,
    )
    again = Prediction.model_validate_json(pred.model_dump_json())
    assert again == pred
    with pytest.raises(ValidationError):
        Prediction(
            intent={
                "name": "a",
                "confidence": 0.5,
                "ranking": [{"name": "a", "confidence": 0.1}] * 5,
            },
            sentiment={"label": "neutral", "score": 0.8},
            reply={"text": "hi", "response_id": "a/1"},
            model_version="v",
            latency_ms=1,
        )
    with pytest.raises(ValidationError):
        Prediction(
            intent={"name": "a", "confidence": 0.5, "ranking": []},
            sentiment={"label": "angry", "score": 0.8},
            reply={"text": "hi", "response_id": "a/1"},
            model_version="v",
            latency_ms=1,
        )


def test_interaction_requires_hashed_ids() -> None:
    base = dict(
        interaction_id=uuid.uuid4(),
        platform="slack",
        user=RATER,
        conversation=RATER,
        text="hello",
        intent="greeting",
        intent_confidence=0.9,
        sentiment="positive",
        response_id="greeting/1",
        reply_text="Hi!",
        model_version="thumbloop/1",
    )
    assert Interaction(**base).user == RATER  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Interaction(**(base | {"user": "U123"}))  # type: ignore[arg-type]


def test_interaction_of_a_generated_reply_keeps_how_it_was_made() -> None:
    prompt = [{"role": "system", "content": "persona"}, {"role": "user", "content": "card?"}]
    pred = Prediction(
        intent={"name": "card_arrival", "confidence": 0.9, "ranking": []},
        sentiment={"label": "neutral", "score": 0.8},
        reply={
            "text": "It arrives in 3 days.",
            "response_id": "gen+card_arrival/1",
            "strategy": "generative",
            "generator": "smollm2+kto-1",
            "prompt": prompt,
        },
        model_version="thumbloop/2",
        latency_ms=900,
    )
    item = Interaction.of_reply(
        pred, text="card?", platform="slack", user=RATER, conversation=RATER
    )
    assert (item.reply_strategy, item.generator) == ("generative", "smollm2+kto-1")
    assert [m.model_dump() for m in item.reply_prompt or []] == prompt
    again = Interaction.model_validate_json(item.model_dump_json())
    assert again == item
    template = pred.model_copy(
        update={"reply": pred.reply.model_copy(update={"strategy": "template", "prompt": None})}
    )
    plain = Interaction.of_reply(template, text="x", platform="cli", user=RATER, conversation=RATER)
    assert plain.reply_prompt is None and plain.reply_strategy == "template"
    with pytest.raises(ValidationError):  # roles are the chat template's
        Prediction.model_validate(
            pred.model_dump() | {"reply": pred.reply.model_dump() | {"prompt": [{"role": "x"}]}}
        )


def test_hash_id_is_keyed_and_namespaced() -> None:
    assert hash_id("a", "slack", "U1") != hash_id("b", "slack", "U1")
    assert hash_id("a", "slack", "U1") != hash_id("a", "telegram", "U1")
    assert hash_id("a", "slack", "U1") == hash_id("a", "slack", "U1")
    assert len(hash_id("a", "slack", "U1")) == 64


def test_correction_carries_a_label_exactly_when_an_intent_was_picked() -> None:
    from thumbloop.contracts import Correction

    iid = uuid.uuid4()
    picked = Correction(
        interaction_id=iid, rater=RATER, kind="intent", label="card_arrival", platform="slack"
    )
    assert Correction.model_validate_json(picked.model_dump_json()) == picked
    assert Correction(interaction_id=iid, rater=RATER, kind="other", platform="cli").label is None
    for kind, label in (("intent", None), ("intent", ""), ("unhelpful", "card_arrival")):
        with pytest.raises(ValidationError, match="label"):
            Correction(interaction_id=iid, rater=RATER, kind=kind, label=label, platform="cli")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        Correction(interaction_id=iid, rater=RATER, kind="wrong", platform="cli")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="HMAC"):
        Correction(interaction_id=iid, rater="42", kind="other", platform="cli")
