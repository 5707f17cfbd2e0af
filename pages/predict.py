"""Predict: labels for your own images with the session's model or a loaded bundle."""

import streamlit as st

from app import frame, navigation, settings, state, uploads, workspace
from app.views import predict as view
from app.widgets import plain

frame.page_frame(__file__)
st.title("Predict")
run = view.model_picker()
if run is None:
    bundles = ", or load a run bundle (.zip) saved earlier" if settings.allow_bundle_upload() else ""
    st.info(f"No model yet. Train one on the Train page{bundles}.")
    navigation.page_link("pages/train.py")
    view.bundle_uploader(expanded=True)
else:
    thresholds = state.thresholds(run)
    st.caption(
        f"Model: {plain(run.label)}. Thresholds: "
        + ", ".join(f"{label} {value:.2f}" for label, value in thresholds.items())
        + " (tune them on the Evaluate page)."
    )
    sources = view.image_inputs()
    results = view.scored_uploads(run, sources) if sources and workspace.ensure_model(run) else []
    if results:
        view.prediction_summary(results, thresholds, run.label_names)
        view.refused_files(results)
        shown, order = view.prediction_filters(run.label_names)
        chosen = uploads.order([r for r in results if uploads.matches(r, shown, thresholds)], order)
        st.subheader("All predictions")
        view.predictions_table(chosen, thresholds, run.label_names, results)
        by_digest = {result.digest: source for result, (_, source) in zip(results, sources, strict=True)}
        view.prediction_grid(run, chosen, thresholds, by_digest)
    view.bundle_uploader(expanded=False)
