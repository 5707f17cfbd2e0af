"""Deployment settings, from environment variables first, then ``st.secrets``.

Environment variables win so a container can be configured without a secrets
file; ``.streamlit/secrets.toml`` keys are the lower-case names below.
"""

from __future__ import annotations

import os

import streamlit as st

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
