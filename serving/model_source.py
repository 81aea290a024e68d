"""Turn `models:/name@alias`, `models:/name/3` or a local path into a local bundle folder, and
refuse a version serving may not follow an alias to (``serving/admission.py``)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from serving.admission import alias_version_tags, parse_models_uri, refusal
from serving.generator.source import read_manifest, write_manifest
from thumbloop.model.bundle import GENERATOR_DIR, BundleError, find_bundle_dir
from thumbloop.staging import move_into_place, staging_beside

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResolvedModel:
    uri: str
    version: str  # what every Prediction names: "<name>/<version>" or "local:<digest>"
    bundle_dir: Path


class VersionRefused(BundleError):
    """A version the alias points at that serving will not load (see :func:`refusal`)."""


def resolve(
    uri_or_path: str,
    tracking_uri: str,
    cache_dir: Path,
    *,
    fetch_base: bool = True,
    admit: bool = False,
) -> ResolvedModel:
    """A local bundle path, or a ``models:/`` URI downloaded once into ``cache_dir``. With
    ``fetch_base`` the bundle's reply generator gets its base model too (``fetch_generator_base``,
    a large download, once per host): a server that only writes template replies passes False.
    With ``admit`` a ``models:/NAME@ALIAS`` URI whose version :func:`refusal` refuses raises
    :class:`VersionRefused` before anything is downloaded (a local path or a version named by
    number is the operator's explicit choice, and is not checked)."""
    path = Path(uri_or_path).expanduser()
    if not uri_or_path.startswith("models:/"):
        if not path.exists():
            raise BundleError(f"{uri_or_path}: no such model path (and not a models:/ URI)")
        bundle_dir = find_bundle_dir(path.resolve())
        digest = hashlib.sha256((bundle_dir / "bundle.json").read_bytes()).hexdigest()[:12]
        return ResolvedModel(uri_or_path, f"local:{digest}", bundle_dir)

    import mlflow.artifacts  # only for a models:/ URI, as in alias_target

    name, alias, version = parse_models_uri(uri_or_path)
    if alias is not None:
        found = alias_version_tags(tracking_uri, name, alias)
        if found is None:
            raise BundleError(f"{uri_or_path}: registered model {name!r} has no alias {alias!r}")
        version, tags = found
        why = refusal(tags) if admit else None
        if why is not None:
            raise VersionRefused(f"{uri_or_path} is version {version}, refused: {why}")
    assert version is not None
    dst = cache_dir / name / version
    try:
        bundle_dir = find_bundle_dir(dst)
    except BundleError:
        pass
    else:
        if fetch_base:
            fetch_generator_base(bundle_dir, tracking_uri, cache_dir)
        return ResolvedModel(uri_or_path, f"{name}/{version}", bundle_dir)
    with staging_beside(dst) as partial:
        mlflow.set_registry_uri(tracking_uri)
        mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{version}",
            dst_path=str(partial),
            tracking_uri=tracking_uri,
        )
        find_bundle_dir(partial)
        move_into_place(partial, dst, already_there=_holds_bundle)
    bundle_dir = find_bundle_dir(dst)
    if fetch_base:
        fetch_generator_base(bundle_dir, tracking_uri, cache_dir)
    return ResolvedModel(uri_or_path, f"{name}/{version}", bundle_dir)


def fetch_generator_base(bundle_dir: Path, tracking_uri: str, cache_dir: Path) -> None:
    """A cached bundle's reply generator (a LoRA adapter) names the MLflow copy of its base
    (``base_uri``, see ``learning.generator.base``): download that base once per host into
    ``cache_dir/generator-bases/`` and point the adapter at it, so the bundle serves exactly the
    base it was trained on, on hosts that never had it. A failed fetch is logged and leaves the
    adapter's own ``base`` in place: the classifier still loads, and a generator that cannot load
    falls back to template replies."""
    adapter = bundle_dir / GENERATOR_DIR
    manifest = read_manifest(adapter)
    uri = manifest.get("base_uri")
    if not uri:
        return
    dst = cache_dir / "generator-bases" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    try:
        if not (dst / "config.json").is_file():
            _download_base(uri, tracking_uri, dst)
    except Exception as exc:  # whatever went wrong, the classifier must still load
        log.warning(
            "generator base %s not fetched (%s); keeping base %r", uri, exc, manifest.get("base")
        )
        return
    if manifest.get("base") != str(dst):
        write_manifest(adapter, manifest | {"base": str(dst)})


def _download_base(uri: str, tracking_uri: str, dst: Path) -> None:
    import mlflow.artifacts  # only for a models:/ URI, as in alias_target

    with staging_beside(dst) as partial:
        got = Path(
            mlflow.artifacts.download_artifacts(
                artifact_uri=uri, dst_path=str(partial), tracking_uri=tracking_uri
            )
        )
        if not (got / "config.json").is_file():
            raise BundleError(f"{uri}: not a causal LM folder (no config.json)")
        move_into_place(got, dst, already_there=lambda d: (d / "config.json").is_file())


def _holds_bundle(path: Path) -> bool:
    try:
        find_bundle_dir(path)
    except BundleError:
        return False
    return True
