"""Where the real dataset is for tests; absent, a test skips locally and fails in CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REAL_DATA_REASON = (
    "the real cats_and_dogs_filtered dataset is not available: set MLCORE_DATA_DIR to a folder "
    "containing cats_and_dogs_filtered/"
)


def real_data_root() -> Path:
    """``$MLCORE_DATA_DIR``, when it holds the dataset; otherwise skip (fail under CI)."""
    value = os.environ.get("MLCORE_DATA_DIR")
    root = Path(value) if value else None
    if root is None or not (root / "cats_and_dogs_filtered" / "validation").is_dir():
        if os.environ.get("CI") or os.environ.get("MLCORE_REQUIRE_REAL_DATA"):
            pytest.fail(f"CI must run the real-data tests, but {REAL_DATA_REASON} (MLCORE_DATA_DIR={value!r})")
        pytest.skip(REAL_DATA_REASON)
    return root
