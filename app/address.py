"""The address bar: what of a session's setup lives in the URL's query string.

``ws`` is the workspace token, ``run`` a share token, ``active`` the run the pages
use, ``data.<field>`` and ``train.<field>`` the settings that differ from the
defaults and ``thr.<label>`` the active run's thresholds. Copying the address
bar therefore reproduces the setup in a fresh session (and opens the workspace:
the address is its key). Values from a URL are parsed strictly; anything that is
not valid is reported and left out, never trusted.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import types
import typing

import streamlit as st

from mlcore.config import DataConfig, TrainConfig

WORKSPACE = "ws"
SHARE = "run"
ACTIVE = "active"
PRIVATE = (WORKSPACE, SHARE, ACTIVE)  # what a setup link leaves out, with the thresholds (a run's own)
THRESHOLD_PREFIX = "thr."
CONFIGS = {"data": DataConfig, "train": TrainConfig}
SERVER_ONLY = {"data_dir", "archive"}  # where the server keeps data: never taken from a URL
UPLOADED_SOURCE = "zip"  # a visitor's uploaded zip stays in their session: a link cannot carry it
MAX_VALUE_LENGTH = 500


@dataclasses.dataclass(frozen=True)
class Setup:
    """What a URL asks for: the configs it changes, the thresholds it sets, and what was wrong with it."""

    data_config: DataConfig | None
    train_config: TrainConfig | None
    thresholds: dict[str, float]
    problems: list[str]


@functools.cache
def _field_types(kind: type) -> dict[str, object]:
    hints = typing.get_type_hints(kind)
    return {field.name: hints[field.name] for field in dataclasses.fields(kind) if field.name not in SERVER_ONLY}


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    return repr(value) if isinstance(value, float) else str(value)


def _parse(text: str, kind: object) -> object:
    """One URL value as the field's type; ``ValueError`` when it is not one."""
    if isinstance(kind, types.UnionType):  # X | None
        if text.lower() == "none":
            return None
        (kind,) = [option for option in typing.get_args(kind) if option is not type(None)]
    if len(text) > MAX_VALUE_LENGTH:
        raise ValueError("too long")
    if kind is bool:
        if text.lower() not in ("true", "false"):
            raise ValueError(f"{text!r} is not true or false")
        return text.lower() == "true"
    if kind is float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text!r} is not a finite number")
        return value
    if kind is int:
        return int(text)
    return text


def _short(text: str, limit: int = 60) -> str:
    """A value from an address, cut short for a message."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def encode(data_config: DataConfig, train_config: TrainConfig, thresholds: dict[str, float]) -> dict[str, str]:
    """The settings part of the query string: fields that differ from the defaults, and thresholds."""
    params = {}
    for prefix, config in (("data", data_config), ("train", train_config)):
        default = type(config)()
        for name in _field_types(type(config)):
            value = getattr(config, name)
            if value != getattr(default, name):
                params[f"{prefix}.{name}"] = _text(value)
    params.update({f"{THRESHOLD_PREFIX}{label}": f"{value:.2f}" for label, value in thresholds.items()})
    return params


def _config(prefix: str, kind: type, params: dict[str, str], problems: list[str]):
    fields, values = _field_types(kind), {}
    for key, text in params.items():
        if not key.startswith(f"{prefix}."):
            continue
        name = key[len(prefix) + 1 :]
        if name not in fields:
            problems.append(f"{_short(key)} is not a {prefix} setting.")
            continue
        try:
            values[name] = _parse(text, fields[name])
        except ValueError as error:
            problems.append(f"{_short(key)}: {_short(str(error))}.")
    if not values:
        return None
    if values.get("source") == UPLOADED_SOURCE:
        problems.append("the data was an uploaded zip, which stays with the session that uploaded it: upload it "
                        "on the Data page (the other settings were not used).")  # fmt: skip
        return None
    try:
        return kind(**values)
    except ValueError as error:
        problems.append(f"the {prefix} settings were not used: {_short(str(error))}.")
        return None


def decode(params: dict[str, str]) -> Setup:
    """The setup a URL's query parameters ask for; what cannot be used is listed in ``problems``."""
    problems: list[str] = []
    data_config = _config("data", DataConfig, params, problems)
    train_config = _config("train", TrainConfig, params, problems)
    thresholds = {}
    for key, text in params.items():
        if key.startswith(THRESHOLD_PREFIX):
            try:
                value = _parse(text, float)
            except ValueError as error:
                problems.append(f"{_short(key)}: {_short(str(error))}.")
                continue
            if 0.0 <= value <= 1.0:
                thresholds[key[len(THRESHOLD_PREFIX) :]] = round(value, 2)
            else:
                problems.append(f"{_short(key)}: a threshold must be between 0 and 1, not {_short(text)}.")
    return Setup(data_config, train_config, thresholds, problems)


def read() -> dict[str, str]:
    """This page load's query parameters (the last value of a repeated one)."""
    return {key: st.query_params.get(key, "") for key in st.query_params}


def write(params: dict[str, str]) -> None:
    """Make the address bar show exactly ``params`` (sent to the browser only when it changes)."""
    if read() != params:
        st.query_params.from_dict(params)
