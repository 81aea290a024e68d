"""Build the shipped domains from the public sets in ``../shared/data`` (train/validation only).

    python data/build_domains.py [--shared ../shared/data] [--out data]

Writes ``data/sentiment/`` (3-class chat sentiment), ``data/banking/`` (the default domain)
and ``data/clinc150/`` (a second benchmark domain). Deterministic (fixed seeds); the files are
committed, so this only needs re-running when the recipe changes. Nothing called *test* is read.
"""

from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

OOS = "out_of_scope"
SMALL_TALK = [
    "greeting",
    "goodbye",
    "thank_you",
    "are_you_a_bot",
    "what_is_your_name",
    "what_can_i_ask_you",
    "who_made_you",
    "who_do_you_work_for",
    "yes",
    "no",
]
# CLINC150 intents a bank assistant must treat as out of scope (none overlaps a banking need).
OOS_DOMAINS = {
    "travel",
    "utility",
    "home",
    "auto_and_commute",
    "kitchen_and_dining",
    "small_talk",
    "meta",
}
NOT_OOS = set(SMALL_TALK) | {
    "exchange_rate",
    "travel_notification",
    "change_user_name",
    "user_name",
}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            n += 1
    return n


def stratified_split(
    rows: list[dict[str, Any]], fraction: float, seed: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    rng = random.Random(seed)
    train, held = [], []
    for label in sorted(by_label):
        items = by_label[label][:]
        rng.shuffle(items)
        k = max(1, round(fraction * len(items)))
        held.extend(items[:k])
        train.extend(items[k:])
    return train, held


def sample_per_label(rows: list[dict[str, Any]], k: int, seed: int) -> list[dict[str, Any]]:
    by_label: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_label[r["label"]].append(r)
    rng = random.Random(seed)
    out = []
    for label in sorted(by_label):
        out.extend(rng.sample(by_label[label], min(k, len(by_label[label]))))
    return out


def tl(rows: Iterable[dict[str, Any]], label: str | None = None) -> list[dict[str, str]]:
    return [{"text": r["text"], "label": label or r["label"]} for r in rows]


def build_sentiment(shared: Path, out: Path) -> dict[str, int]:
    tweets_train = read_jsonl(shared / "tweet_sentiment/train.jsonl")
    tweets_val = read_jsonl(shared / "tweet_sentiment/validation.jsonl")
    sst_train = read_jsonl(shared / "sst2/train.jsonl")
    # SST-2 train is mostly tree fragments; whole-ish phrases (>= 6 words) carry sentence-level
    # sentiment. They add review-style language the tweets lack.
    sst_long = [r for r in sst_train if len(r["text"].split()) >= 6]
    rng = random.Random(7)
    rng.shuffle(sst_long)
    sst_pick = [
        {"text": r["text"], "label": "positive" if int(r["label"]) == 1 else "negative"}
        for r in sst_long[:12000]
    ]
    counts = {
        "train": write_jsonl(out / "train.jsonl", tl(tweets_train) + sst_pick),
        "validation": write_jsonl(out / "validation.jsonl", tl(tweets_val)),
        "eval/sst2_validation": write_jsonl(
            out / "eval/sst2_validation.jsonl", read_jsonl(shared / "sst2/validation.jsonl")
        ),
        "eval/tweeteval_validation": write_jsonl(
            out / "eval/tweeteval_validation.jsonl",
            tl(read_jsonl(shared / "tweeteval_sentiment/validation.jsonl")),
        ),
    }
    return counts


def build_banking(shared: Path, out: Path) -> dict[str, int]:
    bank = read_jsonl(shared / "banking77/train.jsonl")
    bank_train, bank_val = stratified_split(bank, 0.1, seed=13)
    clinc_train = read_jsonl(shared / "clinc150/train.jsonl")
    clinc_val = read_jsonl(shared / "clinc150/validation.jsonl")

    def small_talk(rows: list[dict[str, Any]]) -> list[dict[str, str]]:
        return tl(r for r in rows if r["label"] in SMALL_TALK)

    def oos(rows: list[dict[str, Any]], per_intent: int, seed: int) -> list[dict[str, str]]:
        other = [r for r in rows if r["domain"] in OOS_DOMAINS and r["label"] not in NOT_OOS]
        picked = sample_per_label(other, per_intent, seed)
        return tl(picked, OOS) + tl((r for r in rows if r["label"] == "oos"), OOS)

    train = tl(bank_train) + small_talk(clinc_train) + oos(clinc_train, 15, seed=21)
    val = tl(bank_val) + small_talk(clinc_val) + oos(clinc_val, 5, seed=22)
    return {
        "intents/train": write_jsonl(out / "intents/train.jsonl", train),
        "intents/validation": write_jsonl(out / "intents/validation.jsonl", val),
    }


def build_clinc(shared: Path, out: Path) -> dict[str, int]:
    def rows(split: str) -> list[dict[str, str]]:
        data = read_jsonl(shared / f"clinc150/{split}.jsonl")
        return [
            {"text": r["text"], "label": OOS if r["label"] == "oos" else r["label"]} for r in data
        ]

    train = rows("train")
    counts = {
        "intents/train": write_jsonl(out / "intents/train.jsonl", train),
        "intents/validation": write_jsonl(out / "intents/validation.jsonl", rows("validation")),
    }
    labels = sorted({r["label"] for r in train})
    responses = {
        label: [
            {"id": f"{label}/1", "tone": "neutral", "text": _clinc_reply(label, 1)},
            {"id": f"{label}/2", "tone": "neutral", "text": _clinc_reply(label, 2)},
            {"id": f"{label}/3", "tone": "empathetic", "text": _clinc_reply(label, 3)},
        ]
        for label in labels
    }
    (out / "responses.json").write_text(
        json.dumps({"version": 1, "assistant_name": "Thumbloop", "responses": responses}, indent=2)
        + "\n",
        encoding="utf-8",
    )
    return counts


def _clinc_reply(label: str, variant: int) -> str:
    # A benchmark domain: generic replies that name the recognised request.
    topic = label.replace("_", " ")
    if label == OOS:
        return [
            "",
            "Sorry, that is outside what I can help with. Could you ask it another way?",
            "I can't help with that one, I'm afraid. Is there something else I can do?",
            "Sorry for the trouble - that is outside what I can do. What else can I help with?",
        ][variant]
    return [
        "",
        f"Sure - let's sort out your request about {topic}.",
        f"Got it: {topic}. Here is what I can do for you.",
        f"Sorry for the hassle. Let's get your {topic} request sorted.",
    ][variant]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--shared", type=Path, default=here.parent.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=here)
    args = parser.parse_args()
    report = {
        "sentiment": build_sentiment(args.shared, args.out / "sentiment"),
        "banking": build_banking(args.shared, args.out / "banking"),
        "clinc150": build_clinc(args.shared, args.out / "clinc150"),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
