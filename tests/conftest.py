"""Shared fixtures: an isolated cache, the real-data directory, and CI strictness."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_DATA_REASON = (
    "the real cats_and_dogs_filtered dataset is not available: set MLCORE_DATA_DIR to a folder "
    "containing cats_and_dogs_filtered/"
)


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """Decoded-array caches go to a per-run folder unless the caller chose one."""
    if "MLCORE_CACHE_DIR" not in os.environ:
        os.environ["MLCORE_CACHE_DIR"] = str(tmp_path_factory.mktemp("mlcore-cache"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def real_data_dir() -> Path:
    """The data directory holding the real dataset; skips (or fails in CI) when absent."""
    value = os.environ.get("MLCORE_DATA_DIR")
    root = Path(value) if value else None
    if root is None or not (root / "cats_and_dogs_filtered" / "train").is_dir():
        if os.environ.get("CI") or os.environ.get("MLCORE_REQUIRE_REAL_DATA"):
            pytest.fail(f"CI must run the real-data tests, but {REAL_DATA_REASON} (MLCORE_DATA_DIR={value!r})")
        pytest.skip(REAL_DATA_REASON)
    return root
