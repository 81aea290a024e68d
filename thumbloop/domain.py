"""A domain is a folder: intents, reply variants and (a pointer to) sentiment data.

    DOMAIN/
      domain.json              name, description, out_of_scope label, sentiment folder
      intents/train.jsonl      {"text": ..., "label": ...} per line
      intents/validation.jsonl same format; used for early checks and the OOS threshold
      responses.json           {"version": 1, "responses": {intent: [{id, tone, text}, ...]}}
    SENTIMENT/ (domain.json "sentiment", relative to DOMAIN)
      train.jsonl, validation.jsonl   labels negative | neutral | positive

Loading validates everything up front and names the file and line of the first problem.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from thumbloop.contracts import SENTIMENT_LABELS


class DomainError(ValueError):
    """A domain folder or data file is missing or malformed."""


class Example(BaseModel):
    model_config = ConfigDict(frozen=True)
    text: str = Field(min_length=1)
    label: str = Field(min_length=1)


class ResponseVariant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    id: str = Field(min_length=1)
    tone: Literal["neutral", "empathetic"] = "neutral"
    text: str = Field(min_length=1)


class DomainManifest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    description: str = ""
    out_of_scope: str = "out_of_scope"
    sentiment: str = "../sentiment"
    sources: list[str] = []


def read_examples(path: Path, *, allowed: set[str] | None = None) -> list[Example]:
    """Read a JSONL file of {text, label}; labels become strings."""
    if not path.is_file():
        raise DomainError(f"{path}: no such file")
    rows: list[Example] = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                raw: Any = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DomainError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from exc
            if not isinstance(raw, dict) or "text" not in raw or "label" not in raw:
                raise DomainError(f"{path}:{lineno}: expected an object with 'text' and 'label'")
            try:
                ex = Example(text=str(raw["text"]).strip(), label=str(raw["label"]))
            except ValidationError as exc:
                raise DomainError(f"{path}:{lineno}: empty text or label") from exc
            if allowed is not None and ex.label not in allowed:
                raise DomainError(f"{path}:{lineno}: unknown label {ex.label!r}")
            rows.append(ex)
    if not rows:
        raise DomainError(f"{path}: no examples")
    return rows


@dataclass(frozen=True)
class Domain:
    root: Path
    manifest: DomainManifest
    intents: tuple[str, ...]
    train: list[Example] = field(repr=False)
    validation: list[Example] = field(repr=False)
    responses: dict[str, list[ResponseVariant]] = field(repr=False)
    sentiment_dir: Path

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def out_of_scope(self) -> str:
        return self.manifest.out_of_scope

    def sentiment(self, split: Literal["train", "validation"]) -> list[Example]:
        return read_examples(self.sentiment_dir / f"{split}.jsonl", allowed=set(SENTIMENT_LABELS))

    def files(self) -> list[Path]:
        return [
            self.root / "domain.json",
            self.root / "intents/train.jsonl",
            self.root / "intents/validation.jsonl",
            self.root / "responses.json",
            self.sentiment_dir / "train.jsonl",
            self.sentiment_dir / "validation.jsonl",
        ]

    def manifest_digest(self) -> dict[str, Any]:
        """What went into a model: each file with its size and SHA-256 (logged to MLflow)."""
        entries = []
        for path in self.files():
            data = path.read_bytes()
            entries.append(
                {
                    "file": os.path.relpath(path, self.root.parent),
                    "bytes": len(data),
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "lines": data.count(b"\n"),
                }
            )
        return {"domain": self.name, "files": entries}


def load_responses(path: Path) -> dict[str, list[ResponseVariant]]:
    if not path.is_file():
        raise DomainError(f"{path}: no such file")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        table = raw["responses"]
        return {k: [ResponseVariant(**v) for v in vs] for k, vs in table.items()}
    except (json.JSONDecodeError, KeyError, TypeError, ValidationError) as exc:
        raise DomainError(f"{path}: malformed responses file ({exc})") from exc


def load_domain(root: Path) -> Domain:
    root = root.resolve()
    manifest_path = root / "domain.json"
    if not manifest_path.is_file():
        raise DomainError(f"{root}: not a domain folder (no domain.json)")
    try:
        manifest = DomainManifest(**json.loads(manifest_path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, ValidationError, TypeError) as exc:
        raise DomainError(f"{manifest_path}: malformed ({exc})") from exc
    train = read_examples(root / "intents/train.jsonl")
    intents = tuple(sorted({e.label for e in train}))
    validation = read_examples(root / "intents/validation.jsonl", allowed=set(intents))
    responses = load_responses(root / "responses.json")
    missing = [i for i in intents if not responses.get(i)]
    if missing:
        raise DomainError(f"{root / 'responses.json'}: no responses for intents {missing[:5]}")
    sentiment_dir = (root / manifest.sentiment).resolve()
    for split in ("train", "validation"):
        if not (sentiment_dir / f"{split}.jsonl").is_file():
            raise DomainError(f"{sentiment_dir / f'{split}.jsonl'}: no such file")
    return Domain(root, manifest, intents, train, validation, responses, sentiment_dir)
