"""Shared fixtures: an isolated cache, the real-data directory, and CI strictness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.realdata import real_data_root


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Decoded-array caches go to a per-run folder unless the caller chose one; stored runs always do."""
    if "MLCORE_CACHE_DIR" not in os.environ:
        os.environ["MLCORE_CACHE_DIR"] = str(tmp_path_factory.mktemp("mlcore-cache"))
    # Runs stored by app and browser tests go to a per-run folder too, even where the cache is kept.
    os.environ["MLCORE_RUN_STORE"] = str(tmp_path_factory.mktemp("mlcore-runs"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The data directory holding the real dataset; skips (or fails in CI) when absent."""
    return real_data_root()
