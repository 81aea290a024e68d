"""The CLI, the contracts, the serving client and every bots module must not pull in torch or
transformers at import time (a bot is a small process; `thumbloop --help` must stay fast)."""

import pkgutil
import subprocess
import sys

import pytest

import bots

BOTS_MODULES = sorted(m.name for m in pkgutil.walk_packages(bots.__path__, "bots."))
LIGHT_MODULES = [
    "thumbloop.cli.main",
    "thumbloop.contracts",
    "thumbloop.settings",
    "thumbloop.queue",
    "serving.client",
    "serving.admission",  # what `thumbloop up` and `promote` ask the registry through
    "learning.review.app",  # the inbox reads the groups the worker makes with the encoder
    *BOTS_MODULES,
]


def heavy_modules_after_import(module: str) -> list[str]:
    code = (
        f"import sys, {module}\n"
        "print(','.join(m for m in ('torch', 'transformers', 'mlflow') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_bots_modules_are_found() -> None:
    # the list below must hold the adapters themselves, not just the empty package
    assert {"bots.telegram.app", "bots.slack.app", "bots.common.outbox"} <= set(BOTS_MODULES)


@pytest.mark.parametrize("module", LIGHT_MODULES)
def test_module_does_not_import_torch(module: str) -> None:
    assert heavy_modules_after_import(module) == []


def test_the_check_sees_a_heavy_import() -> None:
    assert "torch" in heavy_modules_after_import("thumbloop.model.network")
