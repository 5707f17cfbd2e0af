"""The Predict page's panels: the model picker, bundle and image uploads, and the
predictions as a summary, a filterable table and a paged grid of cards."""

from __future__ import annotations

import streamlit as st

from app import jobs, runs, settings, state, uploads, workspace
from app.widgets import EXCLUSIVE_NOTE, plain
from mlcore import memory, plots, predict, store

BADGE_COLORS = {"dog": "orange", "cat": "blue", "indoor": "green"}
CARDS_PER_ROW = 4
CARDS_PER_PAGE = 12
IMAGE_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")


def model_picker() -> runs.Run | None:
    """Which of the session's models to use, when there is a choice (newest first)."""
    available = {run.id: run for run in reversed(state.all_runs())}
    if len(available) > 1:
        key = state.widget_key("predict", "model")
        state.move_widget(key, state.active_run().id)  # follows a newly loaded bundle
        st.selectbox(
            "Model",
            list(available),
            key=key,
            format_func=lambda run_id: f"{available[run_id].label} ({state.RUN_KINDS[available[run_id].source]})",
            on_change=lambda: state.set_active(state.widget_value(key)),
        )
    return state.active_run()


def bundle_uploader(*, expanded: bool) -> None:
    """Load a run bundle (validated, refused layers never deserialised), if the deployment allows it."""
    if not settings.allow_bundle_upload():
        return
    with st.expander("Load a run bundle (.zip)", expanded=expanded, icon=":material/upload_file:"):
        upload = st.file_uploader(
            "Run bundle saved by the Train page or `python -m mlcore train`",
            type=["zip"],
            key=state.widget_key("predict", "bundle"),
            max_upload_size=store.MAX_BUNDLE_BYTES // 2**20,
        )
        if upload is None:
            return
        try:
            with st.spinner("Checking and loading the bundle…"):
                run, fresh = state.load_bundle(upload.file_id, upload.getvalue(), upload.name)
        except store.BundleError as error:
            st.error(f"**{plain(upload.name)}**: {error}")
            return
        if fresh:
            workspace.keep_bundle(run, upload.getvalue())
            st.rerun()  # redraw with the new model everywhere, the sidebar included
        st.success(f"Loaded **{plain(upload.name)}**: labels {', '.join(run.label_names)}, {run.image_size} px images.")


def image_inputs() -> list[uploads.Source]:
    """Uploaded files and an optional camera picture, as ``(name, file)``; read only when scored."""
    files = st.file_uploader(
        f"Images (JPEG, PNG, WebP, BMP, GIF, TIFF): up to {uploads.MAX_FILES} at a time",
        type=list(IMAGE_TYPES),
        accept_multiple_files=True,
        key=state.widget_key("predict", "images"),
        max_upload_size=predict.MAX_BYTES // 2**20,
    )
    sources: list[uploads.Source] = [(file.name, file) for file in files or []]
    notice = st.empty()  # above the camera, filled once the camera's picture is known
    if st.toggle("Take a picture with the camera", key=state.widget_key("predict", "camera_on")):
        photo = st.camera_input("Camera", key=state.widget_key("predict", "camera"))
        if photo is not None:
            sources.append(("camera photo", photo))
    if len(sources) > uploads.MAX_FILES:
        notice.warning(
            f"Only the first {uploads.MAX_FILES} of the {len(sources):,} files are scored: one batch is at most "
            f"{uploads.MAX_FILES} files, so the server stays quick for everyone. To score the others, remove "
            "these from the uploader and add the rest.",
            icon=":material/filter_list:",
        )
        sources = sources[: uploads.MAX_FILES]
    return sources


def scored_uploads(run: runs.Run, sources: list[uploads.Source]) -> list[uploads.Scored]:
    """Score the uploads (only files not seen before), with a progress bar while it works."""
    bar = st.empty()

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Scoring {total:,} new image(s): {done:,} done")

    try:
        return uploads.score(run, sources, state.prediction_cache(), on_progress=progress, guard=jobs.GUARD)
    except ValueError as error:  # the model itself refused the batch: say so, keep the page
        st.error(f"The model could not score these images: {error}")
        return []
    except memory.MemoryBudgetExceeded as error:
        st.error(str(error))
        return []
    finally:
        bar.empty()


def prediction_summary(results: list[uploads.Scored], thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    """How many files, how many refused, and how many got each label."""
    good = [result for result in results if not result.error]
    counts = {label: sum(label in r.labels(thresholds) for r in good) for label in labels}
    counts[uploads.NONE_LABEL] = sum(not r.labels(thresholds) for r in good)
    refused = len(results) - len(good)
    st.markdown(
        f"**{len(results):,} file(s)**: {len(good):,} predicted"
        + (f", {refused:,} refused" if refused else "")
        + " · "
        + " · ".join(f"{label} {count:,}" for label, count in counts.items())
    )


def refused_files(results: list[uploads.Scored]) -> None:
    """Every refused file with its own reason; many of them fold into an expander."""
    refused = [result for result in results if result.error]
    if not refused:
        return
    with st.expander(
        f"{len(refused):,} file(s) could not be used", expanded=len(refused) <= 10, icon=":material/broken_image:"
    ):
        for result in refused:
            st.error(f"**{result.name}**: {result.error}")


def prediction_filters(labels: tuple[str, ...]) -> tuple[set[str], str | None]:
    """Which predicted labels to show, and the order of the cards."""
    options = [*labels, uploads.NONE_LABEL, "refused"]
    left, right = st.columns([3, 1])
    shown = left.multiselect(
        "Show files predicted as", options, default=options, key=state.widget_key("predict", "filter")
    )
    by = right.selectbox(
        "Order",
        [None, *labels],
        key=state.widget_key("predict", "order"),
        format_func=lambda label: "as uploaded" if label is None else f"most {label} first",
    )
    return set(shown), by


def predictions_table(
    results: list[uploads.Scored],
    thresholds: dict[str, float],
    labels: tuple[str, ...],
    everything: list[uploads.Scored],
) -> None:
    """The (filtered, sortable) table, and a CSV of every file."""
    frame = uploads.table(results, thresholds, labels)
    probability = st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f")
    st.dataframe(
        frame,
        hide_index=True,
        key=state.element_key("table", "predictions"),
        column_config={label: probability for label in labels},
    )
    st.download_button(
        "Download all predictions (CSV)",
        uploads.table(everything, thresholds, labels).to_csv(index=False),
        file_name="predictions.csv",
        mime="text/csv",
        on_click="ignore",
        icon=":material/download:",
        key=state.widget_key("predict", "csv"),
    )


def explanation_label(labels: tuple[str, ...]) -> str | None:
    """Which label's Grad-CAM heatmap the cards show, if any."""
    choice = st.radio(
        "Grad-CAM on the cards: where the network found evidence for",
        [None, *labels],
        horizontal=True,
        format_func=lambda label: "off" if label is None else label,
        key=state.widget_key("predict", "cam"),
        help="Computed for the cards on the page shown, when chosen. " + EXCLUSIVE_NOTE,
    )
    return choice


def prediction_grid(
    run: runs.Run, results: list[uploads.Scored], thresholds: dict[str, float], sources: dict[str, uploads.Source]
) -> None:
    """Cards, several per row, a page at a time; with a Grad-CAM overlay for the label chosen."""
    cards = [result for result in results if not result.error]
    if not cards:
        return
    explained = explanation_label(run.label_names)
    pages = -(-len(cards) // CARDS_PER_PAGE)
    page = 1
    if pages > 1:
        page = int(
            st.number_input(
                f"Page (of {pages:,}, {CARDS_PER_PAGE} images each)",
                min_value=1,
                max_value=pages,
                value=1,
                step=1,
                key=state.widget_key("predict", "page"),
            )
        )
    start = (page - 1) * CARDS_PER_PAGE
    for row_start in range(start, min(start + CARDS_PER_PAGE, len(cards)), CARDS_PER_ROW):
        row = cards[row_start : row_start + CARDS_PER_ROW]
        for column, (index, result) in zip(st.columns(CARDS_PER_ROW), enumerate(row, row_start), strict=False):
            picture = result.thumbnail
            if explained is not None and result.digest in sources:
                picture = _explanation(run, result, sources[result.digest], explained)
            with column.container(border=True):
                prediction_card(index, result, thresholds, picture)


def _explanation(run: runs.Run, result: uploads.Scored, source: uploads.Source, label: str) -> bytes:
    index = run.label_names.index(label)
    return state.explanation(
        (run.id, result.digest, label), lambda: uploads.explanation_jpeg(run, uploads.content(source), index)
    )


def badges(labels: tuple[str, ...]) -> str:
    """Predicted labels as coloured badges; a grey one when no label passes its threshold."""
    if not labels:
        return ":gray-badge[none of the labels]"
    return " ".join(f":{BADGE_COLORS.get(label, 'violet')}-badge[{label}]" for label in labels)


def prediction_card(index: int, result: uploads.Scored, thresholds: dict[str, float], picture: bytes) -> None:
    st.image(picture, width="stretch")
    st.markdown(f"**{result.name}** → {badges(result.labels(thresholds))}")
    st.plotly_chart(
        plots.probability_bars(result.probabilities, thresholds, compact=True),
        key=state.element_key("chart", "proba", str(index)),
    )
