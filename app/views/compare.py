"""The Compare page's panels: runs picked side by side, their curves on the same axes,
their settings with the differences marked, and their test metrics."""

from __future__ import annotations

import html

import pandas as pd
import streamlit as st

from app import runs, state
from app.widgets import NUMBER, plain
from mlcore import plots

METRIC_NAMES = dict(plots.CURVE_METRICS)
DIFFERENT = "background-color: rgba(255, 196, 0, 0.25)"


def unique_names(chosen: list[runs.Run]) -> list[str]:
    """A column name per run: its name, numbered where two runs share one."""
    names, seen = [], {}
    for run in chosen:
        name = run.name or run.title
        seen[name] = seen.get(name, 0) + 1
        names.append(name if seen[name] == 1 else f"{name} #{seen[name]}")
    return names


def run_picker(items: list[runs.Run]) -> list[runs.Run]:
    """Two or more runs; by default the two newest."""
    by_id = {run.id: run for run in items}
    chosen = st.multiselect(
        "Runs to compare",
        list(by_id),
        default=list(by_id)[-2:],
        format_func=lambda run_id: by_id[run_id].label,
        key=state.widget_key("compare", "runs"),
    )
    return [by_id[run_id] for run_id in chosen if run_id in by_id]


def curves(chosen: list[runs.Run], names: list[str]) -> None:
    metric = st.segmented_control(
        "Metric",
        list(METRIC_NAMES),
        default="loss",
        format_func=METRIC_NAMES.get,
        key=state.widget_key("compare", "metric"),
    )
    # Plotly reads <a>, <b> and the like in trace names: a run's name is shown as text, never as markup.
    histories = {html.escape(name): run.history for name, run in zip(names, chosen, strict=True) if run.history}
    missing = [name for name, run in zip(names, chosen, strict=True) if not run.history]
    st.plotly_chart(
        plots.compare_curves(histories, metric=metric or "loss"), key=state.element_key("chart", "compare_curves")
    )
    if missing:
        st.caption(
            f"No training curves for: {plain(', '.join(missing))} (a bundle without a history, or stopped early)."
        )


def settings_frame(chosen: list[runs.Run], names: list[str]) -> pd.DataFrame:
    """Settings as rows, runs as columns, and whether the runs differ in each."""
    frame = pd.DataFrame({name: runs.settings_of(run) for name, run in zip(names, chosen, strict=True)})
    frame = frame.map(lambda value: "" if value is None else str(value))  # one type per column, as Arrow needs
    frame.insert(0, "differs", [len(set(row)) > 1 for row in frame.to_numpy()])
    frame.index.name = "setting"
    return frame


def settings_table(chosen: list[runs.Run], names: list[str]) -> None:
    frame = settings_frame(chosen, names)
    styled = frame.style.apply(lambda row: [DIFFERENT if row["differs"] else ""] * len(row), axis=1).format(
        lambda value: "" if value is None else str(value)
    )
    st.dataframe(styled, key=state.element_key("table", "compare_settings"))
    st.caption(f"{int(frame['differs'].sum())} of {len(frame)} settings differ (highlighted).")


def metrics_frame(chosen: list[runs.Run], names: list[str]) -> pd.DataFrame:
    """Test metrics as rows, runs as columns; F1 at each run's own thresholds."""
    return pd.DataFrame(
        {name: runs.scoreboard(run, state.thresholds(run)) for name, run in zip(names, chosen, strict=True)}
    )


def metrics_table(chosen: list[runs.Run], names: list[str]) -> None:
    frame = metrics_frame(chosen, names)
    thresholds = " · ".join(
        f"{name}: " + ", ".join(f"{label} {value:.2f}" for label, value in state.thresholds(run).items())
        for name, run in zip(names, chosen, strict=True)
    )
    st.dataframe(
        frame,
        key=state.element_key("table", "compare_metrics"),
        column_config={name: NUMBER(format="%.3f") for name in names},
    )
    st.caption(f"On each run's test split. F1 at each run's own thresholds: {plain(thresholds)}.")
