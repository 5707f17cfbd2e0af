"""Runs: every run of this workspace, kept on the server; pick the active one, rename, share, delete."""

import streamlit as st

from app import frame, navigation, state, summary, workspace
from app.views import runs as view
from app.widgets import plain

frame.page_frame(__file__)
st.title("Runs")
st.caption(
    "Every run trained or loaded in this workspace. The address bar is the workspace's key: keep it (bookmark "
    "it) to come back to these runs, and give out a run's share link, not the address, to show one run."
)
if workspace.run_store() is None:
    st.info("This server keeps no runs (its run store is off): runs last as long as this browser tab.")
view.setup_link()
workspace.refresh()
items = state.all_runs()
if not items:
    st.info("No runs yet in this workspace. Train one, or load a run bundle on the Predict page.")
    navigation.page_link("pages/train.py")
else:
    st.caption("Click a row to make that run the active one for Evaluate and Predict.")
    view.runs_table(items)
    run = state.active_run()
    st.subheader(f"Active: {plain(run.label)}")
    view.active_run_panel(run)
    summary.run_summary(run)
    if len(items) > 1:
        navigation.page_link("pages/compare.py")
