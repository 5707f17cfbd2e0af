"""The Train page's panels: the settings form, live progress and a finished run's summary."""

from __future__ import annotations

import numpy as np
import pandas as pd
import streamlit as st

from app import frame, loaders, runs, state
from app.widgets import NUMBER, describe_data, progress_text, seconds
from mlcore import plots
from mlcore.config import ARCHITECTURES, DataConfig, TrainConfig
from mlcore.datasets import DatasetUnavailable

ARCHITECTURE_LABELS = {"seed": "Seed CNN (the notebook's network)", "compact": "Compact residual CNN (stronger)"}
BATCH_SIZES = (8, 16, 32, 64, 128)
MAX_EPOCHS = 100
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2)


def train_form(disabled: bool) -> TrainConfig | None:
    """The training settings; returns a config only when submitted and valid."""
    config = state.train_config()
    with st.form(state.widget_key("train", "form")):
        first, second, third = st.columns(3)
        epochs = first.slider(
            "Epochs",
            min_value=1,
            max_value=MAX_EPOCHS,
            step=1,
            value=min(config.epochs, MAX_EPOCHS),
            key=state.widget_key("train", "epochs"),
            help="Drag, or click the slider and use the arrow keys.",
        )
        batch_size = second.select_slider(
            "Batch size", options=BATCH_SIZES, value=config.batch_size, key=state.widget_key("train", "batch")
        )
        learning_rate = third.select_slider(
            "Learning rate",
            options=LEARNING_RATES,
            format_func=lambda v: f"{v:g}",
            value=config.learning_rate,
            key=state.widget_key("train", "lr"),
        )
        architecture = st.radio(
            "Architecture",
            ARCHITECTURES,
            format_func=ARCHITECTURE_LABELS.get,
            horizontal=True,
            index=ARCHITECTURES.index(config.architecture),
            key=state.widget_key("train", "architecture"),
        )
        augmentation = st.checkbox(
            "Augmentation: random flips, shifts and zoom (compact network only)",
            value=config.augmentation,
            key=state.widget_key("train", "augmentation"),
        )
        seed = st.number_input(
            "Seed", min_value=0, max_value=2**31 - 1, step=1, value=config.seed, key=state.widget_key("train", "seed")
        )
        submitted = st.form_submit_button(
            "Start training",
            type="primary",
            disabled=disabled,
            icon=":material/play_arrow:",
            key=state.widget_key("train", "start"),
        )
    if not submitted:
        return None
    try:
        return TrainConfig(
            architecture=architecture,
            epochs=int(epochs),
            batch_size=int(batch_size),
            learning_rate=float(learning_rate),
            augmentation=bool(augmentation),
            seed=int(seed),
        )
    except ValueError as error:
        st.error(f"These settings cannot be used: {error}")
        return None


AUGMENTED_IMAGES = 4
AUGMENTED_COPIES = 3


@st.cache_data(max_entries=4, show_spinner=False)
def _augmented(data_config: DataConfig) -> tuple[np.ndarray, np.ndarray] | None:
    """A few training images and the views augmentation makes of them (same for every session)."""
    from mlcore import model  # deferred: importing TensorFlow costs seconds

    try:
        images = loaders.load_splits(data_config).train.images[:AUGMENTED_IMAGES]
    except (DatasetUnavailable, ValueError, OSError):
        return None
    return np.array(images), model.augmented_examples(images, copies=AUGMENTED_COPIES, seed=data_config.seed)


def augmentation_preview(config: TrainConfig) -> None:
    """When augmentation is on: training images as the compact network sees them in training."""
    if not config.augmentation:
        return
    examples = _augmented(state.data_config())
    if examples is None:
        return
    originals, views = examples
    with st.expander(
        "Augmentation: training images as the compact network sees them",
        expanded=config.architecture == "compact",
        icon=":material/flip:",
    ):
        st.caption(
            "Each epoch shows every training image flipped, shifted and zoomed at random (left: the image; "
            "then three draws). The network learns what stays the same. Only the compact network augments; "
            "predictions always see the image as it is."
        )
        for original, drawn in zip(originals, views, strict=True):
            st.image([original, *drawn], width=110)


@st.fragment(run_every=1)
def training_progress() -> None:
    """Live progress of this session's job; polls the worker, never blocks it."""
    if (live := frame.live_job()) is None:
        return
    job, status = live
    st.progress(status.fraction, text=progress_text(status))
    if status.epoch:  # nothing to show while TensorFlow loads and the network is built
        columns = st.columns(4)
        columns[0].metric("Epoch", f"{status.epoch}/{status.epochs}")
        columns[1].metric("Batch", f"{status.batch}/{status.batches}")
        columns[2].metric("Elapsed", seconds(status.elapsed))
        columns[3].metric("Time left", seconds(status.eta))
        st.plotly_chart(
            plots.training_curves(status.history, live=status.trace), key=state.element_key("chart", "live_curves")
        )
    st.button(
        "Stop training",
        on_click=job.request_stop,
        disabled=status.stop_requested,
        key=state.widget_key("train", "stop"),
        icon=":material/stop:",
        help="Stops at the next batch and keeps the partially trained model.",
    )


def run_summary(run: runs.Run) -> None:
    """What a finished run did, its curves and its bundle."""
    meta = run.metadata
    if run.synthetic:
        st.warning("This model was trained on the SYNTHETIC demo set.", icon=":material/draw:")
    columns = st.columns([2, 2, 3, 3])
    epochs = meta.get("train_config", {}).get("epochs", "?")
    columns[0].metric("Epochs", f"{meta.get('epochs_completed', '?')}/{epochs}")
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
    else:
        st.info("No epoch finished before the stop, so there are no curves; the partial model is still usable.")
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
    thresholds, origins = state.thresholds(run), state.threshold_origins(run)
    st.download_button(
        "Download the run bundle (.zip)",
        data=lambda: runs.bundle_bytes(run, thresholds, origins),
        file_name=runs.bundle_file_name(run),
        mime="application/zip",
        on_click="ignore",
        icon=":material/download:",
        key=state.widget_key("train", "bundle"),
        help="The model plus run.json (settings, history, your current thresholds and how each was chosen, "
        "test metrics). "
        "Load it on the Predict page or with `python -m mlcore predict BUNDLE IMAGE`.",
    )
