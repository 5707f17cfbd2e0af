"""What every page draws first: page settings, this session's state, and the sidebar
with the data, the model and live training status."""

from __future__ import annotations

import streamlit as st

from app import state, workspace
from app.widgets import describe_data, plain, progress_text

NOTICE_STYLES = {"info": st.info, "warning": st.warning, "error": st.error}


def page_frame(page_file: str) -> None:
    """Page settings, this session's state and workspace, a finished job collected, the
    address bar brought up to date, messages for the user, and the sidebar.

    Every page calls it first, rather than the entry script, so a page that
    Streamlit runs without the entry script (see ``app/compat.py``) works too.
    """
    if state.ran_without_entry():  # a page run alone, in Streamlit's legacy page mode (app/compat.py)
        st.rerun()  # our import has ended that mode: the rerun goes through the entry script
    st.set_page_config(page_title="Cats, dogs & indoor: multi-label CNN", page_icon=":material/pets:", layout="wide")
    state.init()
    workspace.start()
    state.enter_page(page_file)
    state.collect_finished_job()
    state.touch_uploads()
    workspace.sync()
    for kind, text in state.pop_notices():
        NOTICE_STYLES[kind](plain(text))  # they may repeat what an address held: text, never Markdown
    sidebar()


def sidebar() -> None:
    """Dataset, current model and training status, on every page."""
    with st.sidebar:
        st.markdown("**Dataset**")
        st.caption(describe_data(state.data_config()))
        st.markdown("**Model**")
        run = state.active_run()
        st.caption(
            f"{plain(run.label)} ({state.RUN_KINDS[run.source]})" if run else "None yet: train one or load a bundle."
        )
        st.markdown("**Training**")
        if state.job() is not None:
            _sidebar_training()
        else:
            st.caption("No training running.")


def live_job():
    """This session's job and a snapshot of its status, or ``None``; a finished job
    triggers the full rerun that collects its run for every page."""
    job = state.job()
    if job is None:
        return None
    status = job.status()
    if status.done:
        st.rerun()
    return job, status


@st.fragment(run_every=2)
def _sidebar_training() -> None:
    if (live := live_job()) is None:
        return
    status = live[1]
    st.progress(status.fraction, text=progress_text(status))
