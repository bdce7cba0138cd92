"""One chdb folder for the whole test session: chdb serves a single folder per process."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def chdb_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("chdb")
    return tmp_path_factory.mktemp("chdb")
