"""The Data page's panels: the data settings form, the download offer and the overview."""

from __future__ import annotations

import dataclasses

import streamlit as st

from app import choices, loaders, state
from app.widgets import REAL_TRAIN_IMAGES, seed_input
from mlcore import datasets, plots

SOURCE_LABELS = {
    "real": "Real photos (cats_and_dogs_filtered)",
    "folder": "A local folder",
    "demo": "Generated demo set (synthetic, offline)",
}
SYNTHETIC_NOTE = (
    "SYNTHETIC data: the demo set is generated cartoon cats and dogs, not photos. "
    "Use it to try the app offline; numbers on it say nothing about real images."
)


def data_settings() -> None:
    """The data settings form; applying it replaces the session's data config."""
    config = state.data_config()
    count = config.demo_images if config.source == "demo" else (config.n_images or REAL_TRAIN_IMAGES)
    with st.form(state.widget_key("data", "form")):
        source = st.radio(
            "Source",
            list(SOURCE_LABELS),
            format_func=SOURCE_LABELS.get,
            horizontal=True,
            index=list(SOURCE_LABELS).index(config.source),
            key=state.widget_key("data", "source"),
        )
        folder = st.text_input(
            "Folder path (for a local folder: one subfolder per class, e.g. cats/ and dogs/)",
            value=config.folder or "",
            key=state.widget_key("data", "folder"),
        )
        left, right = st.columns(2)
        count = left.number_input(
            "Number of images",
            min_value=choices.MIN_IMAGES,
            max_value=choices.MAX_IMAGES,
            step=40,
            value=count,
            key=state.widget_key("data", "count"),
        )
        size = right.select_slider(
            "Image size (pixels)",
            options=choices.IMAGE_SIZES,
            value=config.image_size,
            key=state.widget_key("data", "size"),
        )
        left.caption(
            "Demo set: images generated in all. Real dataset or folder: training images used "
            "(a stratified subset; the real set has 2,000). The test split is never cut."
        )
        right.caption("The seed network's size grows with the square of this.")
        indoor = left.slider(
            "Probability of the random 'indoor' tag",
            0.0,
            1.0,
            step=0.05,
            value=config.indoor_probability,
            key=state.widget_key("data", "indoor"),
        )
        seed = seed_input(right, "data", config.seed)
        applied = st.form_submit_button("Apply settings", type="primary", key=state.widget_key("data", "apply"))
    if not applied:
        return
    demo = source == "demo"
    try:
        state.set_data_config(
            dataclasses.replace(
                config,
                source=source,
                folder=(folder.strip() or None) if source == "folder" else None,
                image_size=int(size),
                indoor_probability=float(indoor),
                seed=int(seed),
                n_images=None if demo else int(count),
                demo_images=int(count) if demo else config.demo_images,
            )
        )
    except ValueError as error:
        st.error(f"These settings cannot be used: {error}")
    else:
        st.rerun()  # redraw everything, the sidebar included, with the new data


def real_dataset_missing() -> None:
    """No local copy of the real dataset: a deliberate download, or one click to the demo set."""
    st.warning(
        "The real cats_and_dogs_filtered dataset is not on this machine yet. Download it once "
        "(68 MB, checked and kept in Keras' cache), or use the generated demo set."
    )
    left, right = st.columns(2)
    if left.button(
        "Download the real dataset",
        type="primary",
        icon=":material/download:",
        key=state.widget_key("data", "download"),
    ):
        with st.spinner("Downloading and checking cats_and_dogs_filtered…"):
            try:
                datasets.download_real_dataset()
            except datasets.DatasetUnavailable as error:
                st.error(str(error))
            else:
                st.rerun()
    right.button(
        "Use the demo set instead",
        on_click=state.use_demo_data,
        icon=":material/swap_horiz:",
        key=state.widget_key("data", "use_demo"),
    )


def data_overview(overview: loaders.DataOverview) -> None:
    if not overview.synthetic:  # the synthetic note is shown before loading, from the config
        st.caption(
            f"Photos from `{overview.origin}`. Labels: {', '.join(overview.label_names)} "
            "(the 'indoor' tag is random by design)."
        )
    if overview.skipped_files:
        st.warning(
            f"{len(overview.skipped_files)} unreadable file(s) were skipped: "
            + ", ".join(overview.skipped_files[:5])
            + ("…" if len(overview.skipped_files) > 5 else "")
        )
    left, right = st.columns(2)
    left.plotly_chart(plots.split_sizes_figure(overview.sizes), key=state.element_key("chart", "split_sizes"))
    right.plotly_chart(plots.label_counts_figure(overview.label_counts), key=state.element_key("chart", "label_counts"))
    st.subheader("Sample training images")
    st.image(overview.samples, caption=overview.captions, width=128)
