"""The Train page's panels: the settings form, live progress and a finished run's summary."""

from __future__ import annotations

import numpy as np
import streamlit as st

from app import choices, frame, loaders, state
from app.widgets import progress_text, seconds, seed_input
from mlcore import plots
from mlcore.config import ARCHITECTURES, DataConfig, TrainConfig
from mlcore.datasets import DatasetUnavailable

ARCHITECTURE_LABELS = {"seed": "Seed CNN (the notebook's network)", "compact": "Compact residual CNN (stronger)"}


def train_form(disabled: bool) -> TrainConfig | None:
    """The training settings; returns a config only when submitted and valid."""
    config = state.train_config()
    with st.form(state.widget_key("train", "form")):
        first, second, third = st.columns(3)
        epochs = first.slider(
            "Epochs",
            min_value=1,
            max_value=choices.MAX_EPOCHS,
            step=1,
            value=min(config.epochs, choices.MAX_EPOCHS),
            key=state.widget_key("train", "epochs"),
            help="Drag, or click the slider and use the arrow keys.",
        )
        batch_size = second.select_slider(
            "Batch size", options=choices.BATCH_SIZES, value=config.batch_size, key=state.widget_key("train", "batch")
        )
        learning_rate = third.select_slider(
            "Learning rate",
            options=choices.LEARNING_RATES,
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
        seed = seed_input(st, "train", config.seed)
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
