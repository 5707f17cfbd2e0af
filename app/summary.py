"""A run's summary: what it did, its settings, curves, per-label AUC and its bundle.
The Train page shows it for the run just trained, the Runs page for the active run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import runs, state, workspace
from app.widgets import NUMBER, describe_data, seconds
from mlcore import plots


def run_summary(run: runs.Run) -> None:
    """What a finished run did, its curves and its bundle."""
    meta = run.metadata
    if run.synthetic:
        st.warning("This model was trained on the SYNTHETIC demo set.", icon=":material/draw:")
    columns = st.columns([2, 2, 3, 3])
    epochs = meta.get("train_config", {}).get("epochs", "?")
    completed = meta.get("epochs_completed")
    columns[0].metric("Epochs", f"{'?' if completed is None else completed}/{epochs}")
    columns[1].metric("Training time", seconds(meta.get("train_seconds")))
    sizes = meta.get("split_sizes", {})
    columns[2].metric(
        "Images: train · val · test", " · ".join(f"{sizes.get(k, 0):,}" for k in ("train", "validation", "test"))
    )
    if run.evaluation is not None:
        auc = run.evaluation.test.ranking["roc_auc"]
        columns[3].metric(
            "Test ROC-AUC: dog · cat", " · ".join(f"{auc.get(k, float('nan')):.2f}" for k in ("dog", "cat"))
        )
    settings_table = {**meta.get("train_config", {}), "data": describe_data(run.data_config) if run.data_config else ""}
    with st.expander("Run settings"):
        st.json(settings_table)
    if run.history:
        st.plotly_chart(plots.training_curves(run.history), key=state.element_key("chart", "final_curves"))
        label_auc_table(run)
    elif run.train_config is not None and (run.source == "trained" or run.metadata.get("stopped_early")):
        st.info("No epoch finished before the stop, so there are no curves; the partial model is still usable.")
    else:
        st.info("This bundle holds no training history, so there are no curves.")
    bundle_download(run)


def label_auc_table(run: runs.Run) -> None:
    """Per label: the last epoch's validation AUC (Keras, during training) beside the test ROC-AUC (sklearn)."""
    if run.evaluation is None:
        return
    sizes = run.metadata.get("split_sizes", {})
    validation = f"validation AUC, last epoch ({sizes.get('validation', 0):,} images)"
    test = f"test ROC-AUC ({len(run.evaluation.test):,} images)"
    frame = pd.DataFrame(
        {
            validation: [(run.history.get(f"val_auc_{label}") or [np.nan])[-1] for label in run.label_names],
            test: run.evaluation.test.ranking["roc_auc"].reindex(list(run.label_names)).to_numpy(),
        },
        index=pd.Index(run.label_names, name="label"),
    )
    st.dataframe(
        frame,
        key=state.element_key("table", "label_auc"),
        column_config={validation: NUMBER(format="%.3f"), test: NUMBER(format="%.3f")},
    )


def bundle_download(run: runs.Run) -> None:
    if run.stored is None and not run.model_ref.loaded:
        st.caption("Its model was not kept (this server keeps no runs), so it cannot be downloaded any more.")
        return
    thresholds, origins = state.thresholds(run), state.threshold_origins(run)
    st.download_button(
        "Download the run bundle (.zip)",
        data=workspace.bundle_maker(run, thresholds, origins),
        file_name=runs.bundle_file_name(run),
        mime="application/zip",
        on_click="ignore",
        icon=":material/download:",
        key=state.widget_key("train", "bundle"),
        help="The model plus run.json (settings, history, your current thresholds and how each was chosen, "
        "test metrics). "
        "Load it on the Predict page or with `python -m mlcore predict BUNDLE IMAGE`.",
    )
