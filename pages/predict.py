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
    results = render.scored_uploads(run, sources) if sources else []
    if results:
        render.prediction_summary(results, thresholds, run.label_names)
        render.refused_files(results)
        shown, order = render.prediction_filters(run.label_names)
        chosen = uploads.order([r for r in results if uploads.matches(r, shown, thresholds)], order)
        st.subheader("All predictions")
        render.predictions_table(chosen, thresholds, run.label_names, results)
        render.prediction_grid(chosen, thresholds)
    render.bundle_uploader(expanded=False)
