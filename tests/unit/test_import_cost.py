"""The CLI, the contracts and the bots must not pull in torch at import time."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["thumbloop.contracts", "bots", "thumbloop.cli.main", "thumbloop.settings"]
)
def test_module_does_not_import_torch(module: str) -> None:
    code = f"import sys, {module}; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False", out.stdout + out.stderr
