"""Train: settings, a background training job with live progress, and the result."""

import streamlit as st

from app import frame, navigation, state, summary, workspace
from app.views import train as view
from app.widgets import describe_data, plain
from mlcore.datasets import DatasetUnavailable

frame.page_frame(__file__)
st.title("Train")
st.markdown(f"Training data: {describe_data(state.data_config())} (change it on the Data page)")

config = view.train_form(disabled=state.job() is not None)
view.augmentation_preview(state.train_config())
if config is not None:
    try:
        state.start_training(config, workspace.keeper())
    except (RuntimeError, DatasetUnavailable, ValueError, OSError) as error:  # job running, server limit, data
        st.error(str(error))
    else:
        st.rerun()  # redraw at once with the form locked and the live progress

if message := state.job_message():
    {"success": st.success, "warning": st.warning, "error": st.error}[message[0]](message[1])
if state.job() is not None:
    view.training_progress()
elif run := state.trained_run():
    st.subheader(plain(run.label))
    summary.run_summary(run)
    navigation.page_link("pages/evaluate.py")
else:
    st.info(
        "No model yet: choose the settings above and start training. "
        "Training runs in the background, so you can keep using the app."
    )
