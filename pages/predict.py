"""Predict: labels for your own images with the session's model or a loaded bundle."""

import streamlit as st

from app import render, settings, state, uploads

render.page_frame(__file__)
st.title("Predict")
run = render.model_picker()
if run is None:
    bundles = ", or load a run bundle (.zip) saved earlier" if settings.allow_bundle_upload() else ""
    st.info(f"No model yet. Train one on the Train page{bundles}.")
    render.page_link("pages/train.py")
    render.bundle_uploader(expanded=True)
else:
    thresholds = state.thresholds(run)
    st.caption(f"Model: {run.title}. Thresholds: "
               + ", ".join(f"{label} {value:.2f}" for label, value in thresholds.items())
               + " (tune them on the Evaluate page).")
    sources = render.image_inputs()
    try:
        results = uploads.score(run, sources) if sources else []
    except ValueError as error:  # the model itself refused the batch: say so, keep the page
        st.error(f"The model could not score these images: {error}")
        results = []
    for index, result in enumerate(results):
        render.prediction_card(index, result, thresholds)
    if results:
        st.subheader("All predictions")
        render.predictions_table(results, thresholds, run.label_names)
    render.bundle_uploader(expanded=False)
