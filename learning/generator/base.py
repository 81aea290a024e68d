"""The reply generator's base model in MLflow, so a registered bundle is complete on any host.

A bundle carries only its LoRA adapter (a few MB); the base it applies to (SmolLM2's converted
safetensors folder, ~0.5 GB, or any configured causal LM) is logged once per base version as the
artifacts of a run tagged ``kind=generator-base`` and named in the adapter's ``generator.json``
as ``base_uri``. Serving downloads it from there (``serving.model_source``), once per host.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from learning.registry.client import configure, experiment_id
from serving.generator.source import MANIFEST, GeneratorSource, read_manifest, write_manifest
from thumbloop.settings import Settings

BASE_ARTIFACT = "generator-base"


def publish_base(settings: Settings, base: GeneratorSource) -> str:
    """The ``runs:/`` URI of ``base``'s folder in MLflow, logging it first if this version of it
    was never logged (a run that did not finish logging does not count)."""
    if base.base is not None:
        raise ValueError(f"{base.folder}: an adapter, not a base model")
    if "'" in base.version:
        raise ValueError(f"generator version {base.version!r} cannot contain a quote")
    client = configure(settings)
    exp = experiment_id(settings, client)
    found = client.search_runs(
        [exp],
        filter_string=f"tags.kind = 'generator-base' and tags.generator_version = '{base.version}'"
        " and attributes.status = 'FINISHED'",
        max_results=1,
    )
    if found:
        return f"runs:/{found[0].info.run_id}/{BASE_ARTIFACT}"
    run = client.create_run(
        exp,
        run_name=f"generator base {base.version}",
        tags={"kind": "generator-base", "generator_version": base.version},
    )
    try:
        client.log_artifacts(run.info.run_id, str(base.folder), BASE_ARTIFACT)
        # the copy keeps the version it has here (a folder without one is named by its path)
        with tempfile.TemporaryDirectory() as tmp:
            write_manifest(Path(tmp), read_manifest(base.folder) | {"version": base.version})
            client.log_artifact(run.info.run_id, str(Path(tmp) / MANIFEST), BASE_ARTIFACT)
    except BaseException:
        client.set_terminated(run.info.run_id, status="FAILED")
        raise
    client.set_terminated(run.info.run_id)
    return f"runs:/{run.info.run_id}/{BASE_ARTIFACT}"
