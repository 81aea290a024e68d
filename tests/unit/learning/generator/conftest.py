from __future__ import annotations

import pytest

from tests.unit.learning.generator.kto_votes import Rounds, first_round


@pytest.fixture(scope="package")
def rounds(tmp_path_factory: pytest.TempPathFactory) -> Rounds:
    """One trained round, shared by every test of this package that needs an adapter."""
    return first_round(tmp_path_factory.mktemp("kto"))
