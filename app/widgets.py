"""Small formatters and display pieces that several pages share."""

from __future__ import annotations

import streamlit as st

from mlcore.config import DataConfig

REAL_TRAIN_IMAGES = 2000
NUMBER = st.column_config.NumberColumn
EXCLUSIVE_NOTE = (
    "Grad-CAM colours the places whose features raised this label's score. Where two labels exclude each other "
    "(every image here is a cat or a dog), a network may learn one as the absence of the other; its heatmap for "
    "that label then has little to point at."
)


def describe_data(config: DataConfig) -> str:
    """One line about a data config, with the synthetic warning where it applies."""
    if config.source == "demo":
        what = f"**Demo set (SYNTHETIC)**, {config.demo_images:,} generated images"
    elif config.source == "real":
        count = "all" if not config.n_images or config.n_images >= REAL_TRAIN_IMAGES else f"{config.n_images:,}"
        what = f"**Real cats_and_dogs_filtered**, {count} training images"
    else:
        count = f"up to {config.n_images:,}" if config.n_images else "all"
        what = f"**Folder** `{config.folder}`, {count} training images"
    return f"{what} · {config.image_size} px · indoor p = {config.indoor_probability:.2f} · seed {config.seed}"


def seconds(value: float | None) -> str:
    """A duration as people read it: ``"42 s"``, ``"3 min 05 s"``; ``"–"`` when unknown."""
    if value is None:
        return "–"
    minutes, rest = divmod(int(round(value)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


def progress_text(status) -> str:
    """One line about a training job's progress (a :class:`app.jobs.JobStatus`)."""
    if status.phase == "preparing":
        return "Preparing: loading TensorFlow and building the network…"
    if status.phase == "scoring":
        return "Scoring the validation and test splits…"
    stopping = " · stopping at the next batch" if status.stop_requested else ""
    return (
        f"Epoch {status.epoch}/{status.epochs} · batch {status.batch}/{status.batches} · "
        f"{seconds(status.elapsed)} elapsed · about {seconds(status.eta)} left{stopping}"
    )
