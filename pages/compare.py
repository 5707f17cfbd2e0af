"""Compare: two or more runs side by side: curves, settings, test metrics."""

import streamlit as st

from app import frame, navigation, state
from app.views import compare as view

frame.page_frame(__file__)
st.title("Compare")
items = state.all_runs()
if len(items) < 2:
    st.info("Comparing needs two runs or more in this workspace: train another one, or load a bundle.")
    navigation.page_link("pages/train.py")
else:
    chosen = view.run_picker(items)
    if len(chosen) < 2:
        st.info("Pick two runs or more.")
    else:
        names = view.unique_names(chosen)
        st.subheader("Training curves")
        view.curves(chosen, names)
        st.subheader("Settings")
        view.settings_table(chosen, names)
        st.subheader("Test metrics")
        view.metrics_table(chosen, names)
