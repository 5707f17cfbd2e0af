"""Evaluate: tune the decision thresholds and see every metric follow instantly."""

import streamlit as st

from app import frame, navigation, state
from app.views import evaluate as view
from app.widgets import plain

frame.page_frame(__file__)
st.title("Evaluate")
run = state.active_run()
if run is None:
    st.info("There is no model to evaluate yet. Train one first, or load a run bundle on the Predict page.")
    navigation.page_link("pages/train.py")
elif run.evaluation is None:
    view.score_loaded_run(run)
else:
    evaluation = run.evaluation
    st.caption(
        f"{plain(run.label)}. Every number below is recomputed from the stored probabilities of the validation "
        "and test splits: moving a slider never calls the model."
    )
    if run.synthetic:
        st.warning("Evaluated on the SYNTHETIC demo set.", icon=":material/draw:")
    split = view.split_picker(evaluation)
    thresholds = view.threshold_controls(run)
    view.provenance(run, split)
    view.threshold_panels(run, split, thresholds)
