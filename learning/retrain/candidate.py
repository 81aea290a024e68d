"""What one retrain works with, as named types: the votes it learned from, the champion it started
from, the candidate it trained, and each model measured the same way for the gate. The seam
between training, the gate and the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from learning.retrain.thumbs import ThumbExample, VoteRecord
from learning.seed.config import TrainConfig
from thumbloop.domain import Domain
from thumbloop.model.bundle import LoadedBundle


@dataclass(frozen=True)
class Thumbs:
    """The votes on record, and the intent examples made of them: the older ones trained on, the
    most recent held back for the gate."""

    votes: list[VoteRecord]
    train: list[ThumbExample]
    held: list[ThumbExample]


@dataclass(frozen=True)
class Evaluation:
    """One model measured on what the gate compares: the domain's golden (validation) messages
    and the held-back votes, the same messages in the same order for both models."""

    golden_intent_accuracy: float
    golden_sentiment_accuracy: float
    golden_intent_macro_f1: float
    heldout_vote_agreement: float  # nan without held-back votes
    golden_labels: list[str]  # the golden messages' intents
    golden_predicted: list[str]  # the model's intent for each of them
    heldout_predicted: list[str]  # the model's intent for each held-back vote's message
    heldout_confidence: list[float] = field(default_factory=list)  # its top probability there

    def metrics(self) -> dict[str, float]:
        """The numbers under the names the gate, the bundle and the MLflow run use."""
        return {
            "golden_intent_accuracy": self.golden_intent_accuracy,
            "golden_sentiment_accuracy": self.golden_sentiment_accuracy,
            "golden_intent_macro_f1": self.golden_intent_macro_f1,
            "heldout_vote_agreement": self.heldout_vote_agreement,
        }


@dataclass(frozen=True)
class Champion:
    """The version a retrain starts from, as it was before any training."""

    version: str
    bundle: LoadedBundle
    bundle_dir: Path  # where its bundle was downloaded (the candidate keeps its responses)
    evaluation: Evaluation


@dataclass(frozen=True)
class Candidate:
    """What a retrain trained: the champion's model tuned on the votes, and how."""

    bundle: LoadedBundle
    domain: Domain
    config: TrainConfig
    train_stats: dict[str, float]  # replayed examples, tuned layers, steps, final loss
    evaluation: Evaluation
