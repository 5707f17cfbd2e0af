"""Deployment settings, from environment variables first, then ``st.secrets``.

Environment variables win so a container can be configured without a secrets
file; ``.streamlit/secrets.toml`` keys are the lower-case names below.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

from mlcore.config import cache_dir

ALLOW_BUNDLE_UPLOAD_ENV = "MLCORE_ALLOW_BUNDLE_UPLOAD"
MAX_JOBS_ENV = "MLCORE_MAX_JOBS"
DEFAULT_MAX_JOBS = 2
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _setting(env_name: str, secret_name: str, default):
    value = os.environ.get(env_name)
    if value is not None:
        return value
    if st.secrets.load_if_toml_exists():  # no secrets file is the normal local case
        return st.secrets.get(secret_name, default)
    return default


def allow_bundle_upload() -> bool:
    """Whether the Predict page accepts run bundles (switch off for public deployments)."""
    value = _setting(ALLOW_BUNDLE_UPLOAD_ENV, "allow_bundle_upload", True)
    return str(value).strip().lower() not in FALSE_WORDS


def max_jobs() -> int:
    """How many training jobs may run at once on this server, across all sessions."""
    value = _setting(MAX_JOBS_ENV, "max_jobs", DEFAULT_MAX_JOBS)
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return DEFAULT_MAX_JOBS


MEMORY_BUDGET_ENV = "MLCORE_MEMORY_BUDGET_MB"
DEFAULT_MEMORY_BUDGET_MB = 2500  # a Community Cloud app is stopped at about 2.7 GB


def memory_budget() -> int | None:
    """Bytes this server process may hold before it refuses new jobs (training, scoring uploads);
    ``None`` when the deployment turned the guard off (``off``, ``false``, ``no`` or ``0``)."""
    value = _setting(MEMORY_BUDGET_ENV, "memory_budget_mb", DEFAULT_MEMORY_BUDGET_MB)
    if str(value).strip().lower() in FALSE_WORDS:
        return None
    try:
        return max(1, int(value)) * 2**20
    except (TypeError, ValueError):
        return DEFAULT_MEMORY_BUDGET_MB * 2**20


RUN_STORE_ENV = "MLCORE_RUN_STORE"
RUN_STORE_MAX_RUNS_ENV = "MLCORE_RUN_STORE_MAX_RUNS"
RUN_STORE_MAX_MB_ENV = "MLCORE_RUN_STORE_MAX_MB"


def run_store_dir() -> Path | None:
    """Where the server keeps runs (default: ``runs/`` in the mlcore cache folder); ``None`` when
    the deployment turned the store off (``off``, ``false``, ``no`` or ``0``)."""
    value = _setting(RUN_STORE_ENV, "run_store", None)
    if value is not None and str(value).strip().lower() in FALSE_WORDS:
        return None
    return Path(str(value)).expanduser() if value else cache_dir() / "runs"


def _positive(env_name: str, secret_name: str, default: int) -> int:
    try:
        return max(1, int(_setting(env_name, secret_name, default)))
    except (TypeError, ValueError):
        return default


def run_store_limits() -> tuple[int, int]:
    """The store's cap: ``(runs, bytes)``; the oldest runs go first beyond it."""
    runs = _positive(RUN_STORE_MAX_RUNS_ENV, "run_store_max_runs", 200)
    megabytes = _positive(RUN_STORE_MAX_MB_ENV, "run_store_max_mb", 2048)
    return runs, megabytes * 2**20
