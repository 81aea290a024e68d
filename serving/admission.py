"""Which registered version serving may follow an alias to (:func:`refusal`), and the registry
lookups that rule needs. Light on purpose: ``thumbloop up``, ``promote`` and the learning side ask
the registry through here without importing torch or transformers (``model_source`` does)."""

from __future__ import annotations

from collections.abc import Mapping

# Version tags the admission rule reads (learning/retrain/report.py and learning/seed/run.py write
# `kind` and `gate`; learning/registry/promotion.py writes the override on `promote --force`).
KIND_TAG, GATE_TAG, OVERRIDE_TAG = "kind", "gate", "gate.override"


def refusal(tags: Mapping[str, str]) -> str | None:
    """Why serving refuses a version with these tags, or None when it may serve it.

    Admitted: a version whose gate passed (``gate=passed``); a seed (``kind=seed`` with no gate
    tag: it is trained on the domain's curated data and has no champion to be gated against);
    any version with an override tag (``gate.override``, written by ``thumbloop promote --force``
    with who and when). Refused: a failed gate, and a version with no gate verdict that is not a
    seed (a retrain registered without one, or a version registered by hand)."""
    if OVERRIDE_TAG in tags:
        return None
    gate = tags.get(GATE_TAG)
    if gate == "passed":
        return None
    if gate is None and tags.get(KIND_TAG) == "seed":
        return None
    if gate is not None:
        return f"its gate is {gate!r}, not 'passed'"
    return f"it has no gate verdict (kind {tags.get(KIND_TAG)!r}, not a seed)"


def parse_models_uri(uri: str) -> tuple[str, str | None, str | None]:
    """``models:/name@alias`` -> (name, alias, None); ``models:/name/3`` -> (name, None, "3")."""
    body = uri.removeprefix("models:/")
    if "@" in body:
        name, alias = body.split("@", 1)
        if not name or not alias:
            raise ValueError(f"bad model URI {uri!r}")
        return name, alias, None
    name, _, version = body.partition("/")
    if not name or not version.isdigit():
        raise ValueError(f"bad model URI {uri!r}: expected models:/NAME@ALIAS or models:/NAME/N")
    return name, None, version


def is_missing(exc: Exception) -> bool:
    """Does this MLflow error say the registered model or alias does not exist? (Anything else,
    such as a refused login or an unreachable server, must not read as "no such alias".)"""
    code = getattr(exc, "error_code", None)
    return code == "RESOURCE_DOES_NOT_EXIST" or (
        code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc)
    )


def alias_target(tracking_uri: str, name: str, alias: str) -> str | None:
    """The version number an alias points at, or None when the model or alias does not exist;
    other registry errors are raised."""
    found = alias_version_tags(tracking_uri, name, alias)
    return found[0] if found else None


def alias_version_tags(
    tracking_uri: str, name: str, alias: str
) -> tuple[str, dict[str, str]] | None:
    """The version an alias points at and that version's tags (one registry call), or None when
    the model or alias does not exist; other registry errors are raised."""
    # mlflow only where a registry is asked: serving a local bundle path never imports it
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        mv = MlflowClient(tracking_uri, tracking_uri).get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if is_missing(exc):
            return None
        raise
    return str(mv.version), dict(mv.tags or {})
