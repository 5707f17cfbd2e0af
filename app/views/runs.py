"""The Runs page's panels: every run of the workspace in one table (a click makes one
active), and the active run's name, share link, deletion and summary."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app import runs, state, workspace
from app.widgets import NUMBER, read_only_notice

SHOWN_SETTINGS = ("architecture", "epochs", "batch size", "learning rate", "data source", "image size", "indoor p")


def runs_frame(items: list[runs.Run]) -> pd.DataFrame:
    """One row per run: what it is, how it was made, and its test scores at its own thresholds."""
    rows = []
    for run in items:
        settings = runs.settings_of(run)
        rows.append(
            {
                "active": "●" if run is state.active_run() else "",
                "name": run.name or run.title,
                "kind": state.RUN_KINDS[run.source],
                **{name: settings[name] for name in SHOWN_SETTINGS},
                "training time (s)": settings["training time (s)"],
                **runs.scoreboard(run, state.thresholds(run)),
                "kept": "on the server" if run.stored else "this session only",
            }
        )
    return pd.DataFrame(rows)


def runs_table(items: list[runs.Run]) -> None:
    """The table; clicking a row makes that run the active one for Evaluate and Predict."""
    frame = runs_frame(items)
    scores = [column for column in frame.columns if column.startswith(("ROC-AUC", "F1", "micro", "macro"))]
    event = st.dataframe(
        frame,
        hide_index=True,
        on_select="rerun",
        selection_mode="single-row",
        key=state.widget_key("runs", "table"),
        column_config={column: NUMBER(format="%.3f") for column in scores},
    )
    rows = event.selection.rows if event is not None else []
    if rows:  # a click is an event: the next table starts unselected, the active mark shows the choice
        state.renew_widgets("runs")
        if 0 <= rows[0] < len(items):
            state.set_active(items[rows[0]].id)
        st.rerun()


def setup_link() -> None:
    """The current data and training settings as a link without the workspace key."""
    with st.expander("Setup link: these settings, without your runs", icon=":material/link:"):
        st.caption(
            "Opens the app with the current data and training settings in a new, empty workspace. "
            "The address bar itself also holds your workspace key: give it only to people who may change your runs."
        )
        st.code(workspace.setup_link(), language=None)


def _renamed(run: runs.Run, key: str) -> None:
    workspace.rename(run, state.widget_value(key))


def active_run_panel(run: runs.Run) -> None:
    """Name, share link and deletion of the active run."""
    if run.read_only:
        read_only_notice(run)
    else:
        key = state.widget_key("runs", f"name.{run.id}")
        st.text_input("Name", value=run.name or run.title, max_chars=120, key=key, on_change=_renamed, args=(run, key))
    link = workspace.share_link(run)
    if link and not run.read_only:
        st.markdown(
            "**Share link**: anyone who opens it sees this run read-only (its numbers, curves, model and the "
            "test images it was scored on), and none of your other runs."
        )
        st.code(link, language=None)
    elif not run.read_only:
        st.caption("This run is kept for this session only (the server's run store is off), so it has no share link.")
    words = (
        ("Close this shared run", "It leaves this session; the run itself stays with its owner.", "Close it")
        if run.read_only
        else (
            "Delete this run",
            "It goes from this workspace and from the server; its share link stops working.",
            "Delete for good",
        )
    )
    with st.popover(words[0], icon=":material/delete:"):
        st.markdown(words[1])
        st.button(
            words[2],
            type="primary",
            on_click=workspace.delete,
            args=(run,),
            key=state.widget_key("runs", f"delete.{run.id}"),
        )
