"""The Data page's panels: the data settings form, the download offer and the overview."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import streamlit as st

from app import choices, jobs, loaders, state
from app.widgets import REAL_TRAIN_IMAGES, plain, seed_input
from mlcore import archives, datasets, memory, plots, predict
from mlcore.config import RANDOM_LABEL
from mlcore.labels import ANNOTATION_FILE

SOURCE_LABELS = {
    "real": "Real photos (cats_and_dogs_filtered)",
    "zip": "Your images (upload a zip)",
    "folder": "A local folder",
    "demo": "Generated demo set (synthetic, offline)",
}
ZIP_HELP = (
    "One folder per class (as `image_dataset_from_directory` reads them; one wrapping folder is fine), "
    f"or a folder of images with a `{ANNOTATION_FILE}`: a header row, then one row per image with its file "
    "name and its labels separated by `;` or `|`. Limits: {limits}."
)
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
        limits = archives.ZipLimits()
        archive = st.file_uploader(
            "Zip of your images (for the upload source)",
            type=["zip"],
            max_upload_size=limits.max_archive_bytes // archives.MB,
            help=ZIP_HELP.format(limits=zip_limits_text(limits)),
            key=state.widget_key("data", "zip"),
        )
        if config.source == "zip":
            st.caption(f"In use: {plain(Path(config.archive).name)}. Upload another zip to replace it.")
        folder = st.text_input(
            f"Folder path (for a local folder: one subfolder per class, e.g. cats/ and dogs/, or images "
            f"with a {ANNOTATION_FILE})",
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
            "Demo set: images generated in all. Real dataset, zip or folder: at most this many training "
            "images (a stratified subset; the real set has 2,000). The test split is never cut."
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
        archive_path = _archive_path(source, archive, config)
        if source == "zip" and archive_path is None:
            st.error(f"Choose a zip to upload first: {ZIP_HELP.format(limits=zip_limits_text(limits))}")
            return
        state.set_data_config(
            dataclasses.replace(
                config,
                source=source,
                folder=(folder.strip() or None) if source == "folder" else None,
                archive=archive_path,
                image_size=int(size),
                indoor_probability=float(indoor),
                seed=int(seed),
                n_images=None if demo else int(count),
                demo_images=int(count) if demo else config.demo_images,
            )
        )
    except ValueError as error:  # archives.ArchiveError included
        st.error(f"These settings cannot be used: {plain(str(error))}")
    except memory.MemoryBudgetExceeded as error:
        st.error(str(error))
    except OSError as error:  # the server's disk: full, or not writable
        st.error(f"The zip could not be kept on the server ({type(error).__name__}); try again later.")
    else:
        st.rerun()  # redraw everything, the sidebar included, with the new data


def zip_limits_text(limits: archives.ZipLimits) -> str:
    return (
        f"{limits.max_archive_bytes // archives.MB} MB zipped, {limits.max_total_bytes // archives.MB:,} MB unzipped, "
        f"{limits.max_files:,} files, {limits.max_file_bytes // archives.MB} MB and "
        f"{predict.MAX_PIXELS // 1_000_000} megapixels per image, at least {datasets.MIN_CLASS_IMAGES} images "
        f"per class, at most {datasets.MAX_CLASSES} classes"
    )


def _archive_path(source: str, upload, config) -> str | None:
    """The zip the applied settings use: a new upload (kept in this session's private
    folder), else the one already in use."""
    if source != "zip":
        if upload is not None:
            state.post_notice("warning", "A zip is chosen but not used: pick 'Your images (upload a zip)' to use it.")
        return None
    if upload is not None:
        # Decoding threads each hold a picture (big ones one at a time) and a chunk of members is read.
        needed = predict.DECODE_BUDGET + datasets.decode_workers() * predict.HEAVY_DECODE + datasets.DECODE_CHUNK_BYTES
        jobs.GUARD.check(f"Reading the images of {upload.name}", needed)
        return str(state.session_uploads().keep(upload.name, upload.getvalue()))
    return config.archive if config.source == "zip" else None


def label_options(config) -> None:
    """For labels.csv data: drop rare labels or not, add the random tag or not."""
    with st.form(state.widget_key("data", "labels_form")):
        st.markdown(f"**Labels from {ANNOTATION_FILE}**")
        drop = st.checkbox(
            f"Drop labels seen on fewer than {datasets.MIN_LABEL_IMAGES} images",
            value=config.drop_rare_labels,
            help="Too few to split into training, validation and test and to judge on.",
            key=state.widget_key("data", "drop_rare"),
        )
        indoor = st.checkbox(
            "Add the random 'indoor' tag as a control",
            value=config.add_indoor,
            help="A label no picture shows, drawn at random: its ROC-AUC should stay near 0.5.",
            key=state.widget_key("data", "add_indoor"),
        )
        if st.form_submit_button("Apply label options", key=state.widget_key("data", "labels_apply")):
            state.set_data_config(dataclasses.replace(config, drop_rare_labels=drop, add_indoor=indoor))
            st.rerun()


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
    if overview.annotated:
        random = " and the random 'indoor' tag" if RANDOM_LABEL in overview.label_names else ""
        labels = ", ".join(name for name in overview.label_names if name != RANDOM_LABEL)
        st.caption(plain(f"Images from {overview.origin}. Labels from {ANNOTATION_FILE}: {labels}{random}."))
    elif not overview.synthetic:  # the synthetic note is shown before loading, from the config
        st.caption(
            plain(f"Photos from {overview.origin}. Labels: {', '.join(overview.label_names)}")
            + " (the 'indoor' tag is random by design)."
        )
    left_out = list(overview.findings)
    if overview.skipped_files:
        left_out.insert(0, datasets.Finding("unreadable or damaged image(s) were skipped", overview.skipped_files))
    if left_out:
        st.warning(
            "Left out of the data:\n" + "\n".join(f"- {plain(finding.sentence())}" for finding in left_out),
            icon=":material/filter_alt:",
        )
    left, right = st.columns(2)
    left.plotly_chart(plots.split_sizes_figure(overview.sizes), key=state.element_key("chart", "split_sizes"))
    right.plotly_chart(plots.label_counts_figure(overview.label_counts), key=state.element_key("chart", "label_counts"))
    st.subheader("Sample training images")
    st.image(overview.samples, caption=overview.captions, width=128)
