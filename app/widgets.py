"""Small formatters and display pieces that several pages share."""

from __future__ import annotations

import re
from pathlib import Path

import streamlit as st

from app import choices, runs, state, workspace
from mlcore.config import DataConfig

REAL_TRAIN_IMAGES = 2000
NUMBER = st.column_config.NumberColumn
EXCLUSIVE_NOTE = (
    "Grad-CAM colours the places whose features raised this label's score. Where two labels exclude each other "
    "(every image here is a cat or a dog), a network may learn one as the absence of the other; its heatmap for "
    "that label then has little to point at."
)


MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


def plain(text: str) -> str:
    """Text that someone else chose (a run's name, a file name) as it is, inside Markdown:
    no links, images or formatting of its own."""
    return MARKDOWN_SPECIAL.sub(r"\\\1", text)


def describe_data(config: DataConfig) -> str:
    """One line about a data config, with the synthetic warning where it applies."""
    if config.source == "demo":
        what = f"**Demo set (SYNTHETIC)**, {config.demo_images:,} generated images"
    elif config.source == "real":
        count = "all" if not config.n_images or config.n_images >= REAL_TRAIN_IMAGES else f"{config.n_images:,}"
        what = f"**Real cats_and_dogs_filtered**, {count} training images"
    elif config.source == "zip":
        count = f"up to {config.n_images:,}" if config.n_images else "all"
        what = f"**Uploaded zip** {plain(Path(config.archive).name)}, {count} training images"
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
        return "Scoring the validation and test splits and keeping the run…"
    stopping = " · stopping at the next batch" if status.stop_requested else ""
    return (
        f"Epoch {status.epoch}/{status.epochs} · batch {status.batch}/{status.batches} · "
        f"{seconds(status.elapsed)} elapsed · about {seconds(status.eta)} left{stopping}"
    )


def read_only_notice(run: runs.Run) -> None:
    """What a shared run allows, and the way to a copy that can be changed."""
    st.info(
        f"**{plain(run.label)}** was shared with you by link: it is shown as its owner left it, thresholds included, "
        "and nothing you do here changes it. Copy it into your workspace to tune it.",
        icon=":material/visibility:",
    )
    st.button(
        "Copy into my workspace",
        on_click=workspace.copy_shared,
        args=(run,),
        icon=":material/content_copy:",
        key=state.widget_key("shared", f"copy.{run.id}"),
    )


def seed_input(container, group: str, value: int) -> int:
    """The seed field of the Data and Train forms."""
    return container.number_input(
        "Seed", min_value=0, max_value=choices.MAX_SEED, step=1, value=value, key=state.widget_key(group, "seed")
    )


LABELS_PER_ROW = 4


def label_columns(labels: tuple[str, ...]) -> list:
    """One column per label, in rows of at most four: five or twenty labels stay readable."""
    per_row = max(1, min(len(labels), LABELS_PER_ROW))
    columns = []
    for start in range(0, len(labels), per_row):
        columns += st.columns(per_row)[: len(labels) - start]
    return columns
