"""Reusable rendering: the widgets and panels the pages are assembled from.

Every helper reads persistent values through :mod:`app.state`, draws with
Streamlit and shows mlcore's errors as messages, never as tracebacks.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import streamlit as st

from app import loaders, runs, settings, state, uploads
from mlcore import datasets, metrics, plots, predict, store
from mlcore.config import ARCHITECTURES, DataConfig, TrainConfig

PAGES = {  # file -> (title, icon); the entry script builds the navigation from this
    "pages/data.py": ("Data", ":material/photo_library:"),
    "pages/train.py": ("Train", ":material/model_training:"),
    "pages/evaluate.py": ("Evaluate", ":material/tune:"),
    "pages/predict.py": ("Predict", ":material/image_search:"),
}
DEFAULT_PAGE = "pages/data.py"
SOURCE_LABELS = {
    "real": "Real photos (cats_and_dogs_filtered)",
    "folder": "A local folder",
    "demo": "Generated demo set (synthetic, offline)",
}
IMAGE_SIZES = (32, 48, 64, 96, 128, 160)
REAL_TRAIN_IMAGES = 2000
ARCHITECTURE_LABELS = {"seed": "Seed CNN (the notebook's network)", "compact": "Compact residual CNN (stronger)"}
BATCH_SIZES = (8, 16, 32, 64, 128)
MAX_EPOCHS = 100
LEARNING_RATES = (1e-4, 3e-4, 1e-3, 2e-3, 3e-3, 1e-2)
CARDS_PER_ROW = 4
CARDS_PER_PAGE = 12
IMAGE_TYPES = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
BADGE_COLORS = {"dog": "orange", "cat": "blue", "indoor": "green"}
SYNTHETIC_NOTE = ("SYNTHETIC data: the demo set is generated cartoon cats and dogs, not photos. "
                  "Use it to try the app offline; numbers on it say nothing about real images.")
NUMBER = st.column_config.NumberColumn


def page_link(path: str) -> None:
    title, icon = PAGES[path]
    st.page_link(path, label=title, icon=icon)


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


def badges(labels: tuple[str, ...]) -> str:
    if not labels:
        return ":gray-badge[none of the labels]"
    return " ".join(f":{BADGE_COLORS.get(label, 'violet')}-badge[{label}]" for label in labels)


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    minutes, rest = divmod(int(round(value)), 60)
    return f"{minutes} min {rest:02d} s" if minutes else f"{rest} s"


# --- frame and sidebar ------------------------------------------------------------------------


def page_frame(page_file: str) -> None:
    """Page settings, this session's state, a finished job collected, and the sidebar.

    Every page calls it first, rather than the entry script, so a page that
    Streamlit runs without the entry script (see ``app/__init__.py``) works too.
    """
    st.set_page_config(page_title="Cats, dogs & indoor: multi-label CNN", page_icon=":material/pets:", layout="wide")
    state.init()
    state.enter_page(page_file)
    state.collect_finished_job()
    sidebar()


def sidebar() -> None:
    """Dataset, current model and training status, on every page."""
    with st.sidebar:
        st.markdown("**Dataset**")
        st.caption(describe_data(state.data_config()))
        st.markdown("**Model**")
        run = state.active_run()
        st.caption(f"{run.title} ({state.RUN_KINDS[run.source]})" if run else "None yet: train one or load a bundle.")
        st.markdown("**Training**")
        if state.job() is not None:
            _sidebar_training()
        else:
            st.caption("No training running.")


def _live_job():
    """This session's job and a snapshot of its status, or ``None``; a finished job
    triggers the full rerun that collects its run for every page."""
    job = state.job()
    if job is None:
        return None
    status = job.status()
    if status.done:
        st.rerun()
    return job, status


@st.fragment(run_every=2)
def _sidebar_training() -> None:
    if (live := _live_job()) is None:
        return
    status = live[1]
    st.progress(status.fraction, text=progress_text(status))


# --- data page ---------------------------------------------------------------------------


def data_settings() -> None:
    """The data settings form; applying it replaces the session's data config."""
    config = state.data_config()
    count = config.demo_images if config.source == "demo" else (config.n_images or REAL_TRAIN_IMAGES)
    with st.form("data_settings"):
        source = st.radio("Source", list(SOURCE_LABELS), format_func=SOURCE_LABELS.get, horizontal=True,
                          index=list(SOURCE_LABELS).index(config.source), key=state.widget_key("data", "source"))
        folder = st.text_input("Folder path (for a local folder: one subfolder per class, e.g. cats/ and dogs/)",
                               value=config.folder or "", key=state.widget_key("data", "folder"))
        left, right = st.columns(2)
        count = left.number_input("Number of images", min_value=8, max_value=10_000, step=40,
                                  value=count, key=state.widget_key("data", "count"))
        size = right.select_slider("Image size (pixels)", options=IMAGE_SIZES,
                                   value=config.image_size, key=state.widget_key("data", "size"))
        left.caption("Demo set: images generated in all. Real dataset or folder: training images used "
                     "(a stratified subset; the real set has 2,000). The test split is never cut.")
        right.caption("The seed network's size grows with the square of this.")
        indoor = left.slider("Probability of the random 'indoor' tag", 0.0, 1.0, step=0.05,
                             value=config.indoor_probability, key=state.widget_key("data", "indoor"))
        seed = right.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1,
                                  value=config.seed, key=state.widget_key("data", "seed"))
        applied = st.form_submit_button("Apply settings", type="primary", key="w.data.apply")
    if not applied:
        return
    demo = source == "demo"
    try:
        state.set_data_config(dataclasses.replace(
            config, source=source, folder=(folder.strip() or None) if source == "folder" else None,
            image_size=int(size), indoor_probability=float(indoor), seed=int(seed),
            n_images=None if demo else int(count), demo_images=int(count) if demo else config.demo_images,
        ))
    except ValueError as error:
        st.error(f"These settings cannot be used: {error}")
    else:
        st.rerun()  # redraw everything, the sidebar included, with the new data


def real_dataset_missing() -> None:
    """No local copy of the real dataset: a deliberate download, or one click to the demo set."""
    st.warning("The real cats_and_dogs_filtered dataset is not on this machine yet. Download it once "
               "(68 MB, checked and kept in Keras' cache), or use the generated demo set.")
    left, right = st.columns(2)
    if left.button("Download the real dataset", type="primary", icon=":material/download:", key="w.data.download"):
        with st.spinner("Downloading and checking cats_and_dogs_filtered…"):
            try:
                datasets.download_real_dataset()
            except datasets.DatasetUnavailable as error:
                st.error(str(error))
            else:
                st.rerun()
    right.button("Use the demo set instead", on_click=state.use_demo_data, icon=":material/swap_horiz:",
                 key="w.data.use_demo")


def data_overview(overview: loaders.DataOverview) -> None:
    if not overview.synthetic:  # the synthetic note is shown before loading, from the config
        st.caption(f"Photos from `{overview.origin}`. Labels: {', '.join(overview.label_names)} "
                   "(the 'indoor' tag is random by design).")
    if overview.skipped_files:
        st.warning(f"{len(overview.skipped_files)} unreadable file(s) were skipped: "
                   + ", ".join(overview.skipped_files[:5]) + ("…" if len(overview.skipped_files) > 5 else ""))
    left, right = st.columns(2)
    left.plotly_chart(plots.split_sizes_figure(overview.sizes), key="chart.split_sizes")
    right.plotly_chart(plots.label_counts_figure(overview.label_counts), key="chart.label_counts")
    st.subheader("Sample training images")
    st.image(overview.samples, caption=overview.captions, width=128)


# --- train page --------------------------------------------------------------------------


def train_form(disabled: bool) -> TrainConfig | None:
    """The training settings; returns a config only when submitted and valid."""
    config = state.train_config()
    with st.form("train_settings"):
        first, second, third = st.columns(3)
        epochs = first.slider("Epochs", min_value=1, max_value=MAX_EPOCHS, step=1,
                              value=min(config.epochs, MAX_EPOCHS), key=state.widget_key("train", "epochs"),
                              help="Drag, or click the slider and use the arrow keys.")
        batch_size = second.select_slider("Batch size", options=BATCH_SIZES,
                                          value=config.batch_size, key=state.widget_key("train", "batch"))
        learning_rate = third.select_slider("Learning rate", options=LEARNING_RATES, format_func=lambda v: f"{v:g}",
                                            value=config.learning_rate, key=state.widget_key("train", "lr"))
        architecture = st.radio("Architecture", ARCHITECTURES, format_func=ARCHITECTURE_LABELS.get, horizontal=True,
                                index=ARCHITECTURES.index(config.architecture),
                                key=state.widget_key("train", "architecture"))
        augmentation = st.checkbox("Augmentation: random flips, shifts and zoom (compact network only)",
                                   value=config.augmentation, key=state.widget_key("train", "augmentation"))
        seed = st.number_input("Seed", min_value=0, max_value=2**31 - 1, step=1,
                               value=config.seed, key=state.widget_key("train", "seed"))
        submitted = st.form_submit_button("Start training", type="primary", disabled=disabled,
                                          icon=":material/play_arrow:", key="w.train.start")
    if not submitted:
        return None
    try:
        return TrainConfig(architecture=architecture, epochs=int(epochs), batch_size=int(batch_size),
                           learning_rate=float(learning_rate), augmentation=bool(augmentation), seed=int(seed))
    except ValueError as error:
        st.error(f"These settings cannot be used: {error}")
        return None


def progress_text(status) -> str:
    if status.phase == "preparing":
        return "Preparing: loading TensorFlow and building the network…"
    if status.phase == "scoring":
        return "Scoring the test split…"
    stopping = " · stopping at the next batch" if status.stop_requested else ""
    return (f"Epoch {status.epoch}/{status.epochs} · batch {status.batch}/{status.batches} · "
            f"{seconds(status.elapsed)} elapsed · about {seconds(status.eta)} left{stopping}")


@st.fragment(run_every=1)
def training_progress() -> None:
    """Live progress of this session's job; polls the worker, never blocks it."""
    if (live := _live_job()) is None:
        return
    job, status = live
    st.progress(status.fraction, text=progress_text(status))
    if status.epoch:  # nothing to show while TensorFlow loads and the network is built
        columns = st.columns(4)
        columns[0].metric("Epoch", f"{status.epoch}/{status.epochs}")
        columns[1].metric("Batch", f"{status.batch}/{status.batches}")
        columns[2].metric("Elapsed", seconds(status.elapsed))
        columns[3].metric("Time left", seconds(status.eta))
        st.plotly_chart(plots.training_curves(status.history, live=status.trace), key="chart.live_curves")
    st.button("Stop training", on_click=job.request_stop, disabled=status.stop_requested, key="w.train.stop",
              icon=":material/stop:", help="Stops at the next batch and keeps the partially trained model.")


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
    columns[2].metric("Images: train · val · test", " · ".join(f"{sizes.get(k, 0):,}" for k in ("train", "validation", "test")))
    if run.evaluation is not None:
        auc = run.evaluation.test.ranking["roc_auc"]
        columns[3].metric("Test ROC-AUC: dog · cat", " · ".join(f"{auc.get(k, float('nan')):.2f}" for k in ("dog", "cat")))
    settings_table = {**meta.get("train_config", {}), "data": describe_data(run.data_config) if run.data_config else ""}
    with st.expander("Run settings"):
        st.json(settings_table)
    if run.history:
        st.plotly_chart(plots.training_curves(run.history), key="chart.final_curves")
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
    frame = pd.DataFrame({
        validation: [(run.history.get(f"val_auc_{label}") or [np.nan])[-1] for label in run.label_names],
        test: run.evaluation.test.ranking["roc_auc"].reindex(list(run.label_names)).to_numpy(),
    }, index=pd.Index(run.label_names, name="label"))
    st.dataframe(frame, key="table.label_auc", column_config={validation: NUMBER(format="%.3f"),
                                                               test: NUMBER(format="%.3f")})


def bundle_download(run: runs.Run) -> None:
    thresholds, origins = state.thresholds(run), state.threshold_origins(run)
    st.download_button(
        "Download the run bundle (.zip)", data=lambda: runs.bundle_bytes(run, thresholds, origins),
        file_name=runs.bundle_file_name(run), mime="application/zip", on_click="ignore",
        icon=":material/download:", key="w.train.bundle",
        help="The model plus run.json (settings, history, your current thresholds and how each was chosen, "
             "test metrics). "
             "Load it on the Predict page or with `python -m mlcore predict BUNDLE IMAGE`.")


# --- evaluate page -----------------------------------------------------------------------


SPLIT_LABELS = {"test": "Test split (held out: the honest estimate)",
                "validation": "Validation split (where thresholds are tuned)"}
RULE_LABELS = {"precision": "Precision at least", "recall": "Recall at least"}


def _threshold_changed(run: runs.Run, label: str) -> None:
    state.set_thresholds(run, {label: st.session_state[state.threshold_key(run, label)]}, state.manual_origin())


def _global_changed(run: runs.Run) -> None:
    state.set_global_threshold(run, st.session_state[state.global_threshold_key(run)], state.manual_origin())


def _split_changed() -> None:
    state.set_eval_split(st.session_state[state.widget_key("eval", "split")])


def split_picker(evaluation: runs.Evaluation) -> str:
    """Which split the page scores: the test split by default, the validation split for tuning by hand."""
    if evaluation.validation is None:
        return "test"
    sizes = {"test": len(evaluation.test), "validation": len(evaluation.validation)}
    st.radio("Scored split", list(SPLIT_LABELS), horizontal=True, index=list(SPLIT_LABELS).index(state.eval_split()),
             format_func=lambda name: f"{SPLIT_LABELS[name]}, {sizes[name]:,} images", on_change=_split_changed,
             key=state.widget_key("eval", "split"))
    return state.eval_split()


def _apply_rule(run: runs.Run, rule: str, target: float | None) -> None:
    """Set every label's threshold by ``rule`` on the validation split; labels it cannot reach keep theirs."""
    chosen = run.evaluation.choose(rule, target)
    reached = {label: value for label, value in chosen.items() if value is not None}
    origin = metrics.threshold_origin(rule, split="validation", target=target)
    if reached:
        state.set_thresholds(run, reached, origin)
    missed = [label for label, value in chosen.items() if value is None]
    if missed:
        state.post_eval_notice("warning", f"No threshold reaches {rule} {target:.2f} on the validation split for "
                                          f"{', '.join(missed)}: {'its' if len(missed) == 1 else 'their'} "
                                          "threshold is unchanged.")
    else:
        state.post_eval_notice("success", f"Thresholds set: {metrics.describe_origin(origin)}.")


def _apply_target_rule(run: runs.Run) -> None:
    """The rule and target as the widgets hold them when the button is clicked (both may change in that run)."""
    rule = st.session_state[state.widget_key("eval", "rule")]
    _apply_rule(run, rule, float(st.session_state[state.widget_key("eval", "target")]))


def threshold_controls(run: runs.Run) -> dict[str, float]:
    """A global slider, one slider per label, and automatic choices made on the validation split."""
    current = state.thresholds(run)
    st.slider("Global threshold (sets every label)", 0.0, 1.0, step=0.01, on_change=_global_changed, args=(run,),
              key=state.seed_slider(state.global_threshold_key(run), state.global_threshold(run)))
    for column, label in zip(st.columns(len(run.label_names)), run.label_names):
        column.slider(f"Threshold for {label}", 0.0, 1.0, step=0.01, on_change=_threshold_changed, args=(run, label),
                      key=state.seed_slider(state.threshold_key(run, label), current[label]))
    automatic_thresholds(run)
    if notice := state.pop_eval_notice():
        {"success": st.success, "warning": st.warning}[notice[0]](notice[1])
    return state.thresholds(run)


def automatic_thresholds(run: runs.Run) -> None:
    """F1-best, or a precision or recall target, per label, always chosen on the validation split."""
    default = metrics.threshold_origin("default")
    if run.evaluation.validation is None:
        st.caption("This run has no validation split, so thresholds cannot be chosen automatically.")
        st.button("Reset all to 0.50", on_click=state.set_global_threshold, args=(run, 0.5, default),
                  key="w.eval.reset")
        return
    best = run.evaluation.best_thresholds
    first, second, third, fourth, fifth = st.columns([3, 2, 2, 2, 2], vertical_alignment="bottom")
    first.button("F1-best per label", on_click=_apply_rule, args=(run, "f1", None),
                 icon=":material/auto_fix_high:", key="w.eval.best",
                 help="Chosen on the validation split: " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()))
    second.selectbox("Or by a target", list(RULE_LABELS), format_func=RULE_LABELS.get,
                     key=state.widget_key("eval", "rule"))
    third.number_input("Target", min_value=0.05, max_value=1.0, value=0.9, step=0.05, format="%.2f",
                                key=state.widget_key("eval", "target"))
    fourth.button("Set by target", on_click=_apply_target_rule, args=(run,), key="w.eval.apply_rule",
                  icon=":material/target:",
                  help="Precision: the lowest threshold whose validation precision reaches the target (as much "
                       "recall as that precision allows). Recall: the highest threshold whose validation recall "
                       "reaches it (as few false positives as that recall allows).")
    fifth.button("Reset all to 0.50", on_click=state.set_global_threshold, args=(run, 0.5, default), key="w.eval.reset")


def provenance(run: runs.Run, split: str) -> None:
    """Say, in plain words, which split chose each threshold and which split is being scored."""
    origins, current = state.threshold_origins(run), state.thresholds(run)
    chosen = " · ".join(f"**{label}** {current[label]:.2f} ({metrics.describe_origin(origins.get(label))})"
                        for label in run.label_names)
    evaluation = run.evaluation
    if split == "test":
        scored = (f"Scored on the **test split**: {len(evaluation.test):,} images used neither to train the model "
                  "nor to choose its thresholds.")
    else:
        scored = (f"Scored on the **validation split** ({len(evaluation.validation):,} images): tune thresholds "
                  "here, then read the honest figures on the test split.")
    st.markdown(f"Thresholds: {chosen}.  \n{scored}")
    by_hand_on_test = [label for label in run.label_names
                       if isinstance(origins.get(label), dict) and origins[label].get("method") == "manual"
                       and origins[label].get("split") == "test"]
    if by_hand_on_test and split == "test":
        st.caption(f":orange[{', '.join(by_hand_on_test)}: set by hand while looking at the test split, so the "
                   "test figures for it are optimistic. Tune on the validation split instead.]")


def summary_metrics(scores: runs.SplitScores, thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    values = metrics.summary_scores(scores.y_true, scores.y_score, threshold=thresholds, labels=labels)
    columns = st.columns(4 + len(labels))
    columns[0].metric("Micro F1", f"{values['micro_f1']:.3f}")
    columns[1].metric("Macro F1", f"{values['macro_f1']:.3f}")
    columns[2].metric("Hamming loss", f"{values['hamming_loss']:.3f}", help="Share of wrong label decisions; lower is better.")
    columns[3].metric("Subset accuracy", f"{values['subset_accuracy']:.3f}", help="Share of images with every label right.")
    for column, label in zip(columns[4:], labels):
        auc, note = scores.ranking.loc[label, "roc_auc"], scores.ranking.loc[label, "note"]
        hint = "Random by design: about 0.5 is the honest result." if label == "indoor" else "Threshold-free."
        column.metric(f"ROC-AUC {label}", "n/a" if pd.isna(auc) else f"{auc:.3f}", help=note or hint)


def report_table(scores: runs.SplitScores, thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    """sklearn's classification report, formatted as sklearn prints it."""
    frame = metrics.classification_report_frame(scores.y_true, scores.y_score, threshold=thresholds, labels=labels)
    st.dataframe(frame, key="table.report", column_config={
        "precision": NUMBER(format="%.2f"), "recall": NUMBER(format="%.2f"),
        "f1-score": NUMBER(format="%.2f"), "support": NUMBER(format="%d"),
    })


def confusion_grid(scores: runs.SplitScores, thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    matrices = metrics.confusion_matrices(scores.y_true, scores.y_score, threshold=thresholds, labels=labels)
    for column, label, matrix in zip(st.columns(len(labels)), labels, matrices):
        column.plotly_chart(plots.confusion_heatmap(matrix, label), key=f"chart.confusion.{label}")


def sweep_grid(evaluation: runs.Evaluation, split: str, thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    """Precision, recall and F1 against the threshold on the scored split, the validation F1-best marked."""
    sweep, best = evaluation.split(split).sweep, evaluation.best_thresholds
    for column, label in zip(st.columns(len(labels)), labels):
        figure = plots.threshold_sweep_figure(sweep, label, threshold=thresholds[label], best=best.get(label))
        column.plotly_chart(figure, key=f"chart.sweep.{label}")


def score_loaded_run(run: runs.Run) -> None:
    """A loaded bundle has no test probabilities yet: score the current data's test split once."""
    config = dataclasses.replace(state.data_config(), image_size=run.image_size)
    st.info(f"{run.title} has no evaluation yet. Score it on the validation and test splits of the current data "
            f"({describe_data(config)}).")
    if st.button("Score the validation and test splits with this model", key="w.eval.score",
                 icon=":material/calculate:"):
        try:
            with st.spinner("Predicting the validation and test splits once…"):
                state.replace_run(run, runs.with_evaluation(run, loaders.load_splits(config)))
        except (datasets.DatasetUnavailable, ValueError, OSError) as error:
            st.error(str(error))
        else:
            st.rerun()


# --- predict page ------------------------------------------------------------------------


def model_picker() -> runs.Run | None:
    """Which of the session's models to use, when there is a choice."""
    available = state.available_runs()
    if len(available) > 1:
        st.session_state["w.predict.model"] = st.session_state[state.ACTIVE]  # follows a newly loaded bundle
        st.radio("Model", list(available), horizontal=True, key="w.predict.model",
                 format_func=lambda kind: f"{available[kind].title} ({state.RUN_KINDS[kind]})",
                 on_change=lambda: state.set_active(st.session_state["w.predict.model"]))
    return state.active_run()


def bundle_uploader(*, expanded: bool) -> None:
    """Load a run bundle (validated, refused layers never deserialised), if the deployment allows it."""
    if not settings.allow_bundle_upload():
        return
    with st.expander("Load a run bundle (.zip)", expanded=expanded, icon=":material/upload_file:"):
        upload = st.file_uploader("Run bundle saved by the Train page or `python -m mlcore train`", type=["zip"],
                                  key="w.predict.bundle")  # limit: server.maxUploadSize
        if upload is None:
            return
        try:
            with st.spinner("Checking and loading the bundle…"):
                run, fresh = state.load_bundle(upload.file_id, upload.getvalue(), upload.name)
        except store.BundleError as error:
            st.error(f"**{upload.name}**: {error}")
            return
        if fresh:
            st.rerun()  # redraw with the new model everywhere, the sidebar included
        st.success(f"Loaded **{upload.name}**: labels {', '.join(run.label_names)}, {run.image_size} px images.")


def image_inputs() -> list[uploads.Source]:
    """Uploaded files and an optional camera picture, as ``(name, file)``; read only when scored."""
    files = st.file_uploader("Images (JPEG, PNG, WebP, BMP, GIF, TIFF): as many as you like",
                             type=list(IMAGE_TYPES), accept_multiple_files=True, key="w.predict.images",
                             max_upload_size=predict.MAX_BYTES // 2**20)
    sources: list[uploads.Source] = [(file.name, file) for file in files or []]
    if st.toggle("Take a picture with the camera", key="w.predict.camera_on"):
        photo = st.camera_input("Camera", key="w.predict.camera")
        if photo is not None:
            sources.append(("camera photo", photo))
    return sources


def scored_uploads(run: runs.Run, sources: list[uploads.Source]) -> list[uploads.Scored]:
    """Score the uploads (only files not seen before), with a progress bar while it works."""
    bar = st.empty()

    def progress(done: int, total: int) -> None:
        bar.progress(done / total, text=f"Scoring {total:,} new image(s): {done:,} done")

    try:
        return uploads.score(run, sources, state.prediction_cache(), on_progress=progress)
    except ValueError as error:  # the model itself refused the batch: say so, keep the page
        st.error(f"The model could not score these images: {error}")
        return []
    finally:
        bar.empty()


def prediction_summary(results: list[uploads.Scored], thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    """How many files, how many refused, and how many got each label."""
    good = [result for result in results if not result.error]
    counts = {label: sum(label in r.labels(thresholds) for r in good) for label in labels}
    counts[uploads.NONE_LABEL] = sum(not r.labels(thresholds) for r in good)
    refused = len(results) - len(good)
    st.markdown(f"**{len(results):,} file(s)**: {len(good):,} predicted"
                + (f", {refused:,} refused" if refused else "") + " · "
                + " · ".join(f"{label} {count:,}" for label, count in counts.items()))


def refused_files(results: list[uploads.Scored]) -> None:
    """Every refused file with its own reason; many of them fold into an expander."""
    refused = [result for result in results if result.error]
    if not refused:
        return
    with st.expander(f"{len(refused):,} file(s) could not be used", expanded=len(refused) <= 10,
                     icon=":material/broken_image:"):
        for result in refused:
            st.error(f"**{result.name}**: {result.error}")


def prediction_filters(labels: tuple[str, ...]) -> tuple[set[str], str | None]:
    """Which predicted labels to show, and the order of the cards."""
    options = [*labels, uploads.NONE_LABEL, "refused"]
    left, right = st.columns([3, 1])
    shown = left.multiselect("Show files predicted as", options, default=options,
                             key=state.widget_key("predict", "filter"))
    by = right.selectbox("Order", [None, *labels], key=state.widget_key("predict", "order"),
                         format_func=lambda label: "as uploaded" if label is None else f"most {label} first")
    return set(shown), by


def predictions_table(results: list[uploads.Scored], thresholds: dict[str, float], labels: tuple[str, ...],
                      everything: list[uploads.Scored]) -> None:
    """The (filtered, sortable) table, and a CSV of every file."""
    frame = uploads.table(results, thresholds, labels)
    probability = st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.3f")
    st.dataframe(frame, hide_index=True, key="table.predictions", column_config={label: probability for label in labels})
    st.download_button("Download all predictions (CSV)", uploads.table(everything, thresholds, labels).to_csv(index=False),
                       file_name="predictions.csv", mime="text/csv", on_click="ignore", icon=":material/download:",
                       key="w.predict.csv")


def prediction_grid(results: list[uploads.Scored], thresholds: dict[str, float]) -> None:
    """Cards, several per row, a page at a time."""
    cards = [result for result in results if not result.error]
    if not cards:
        return
    pages = -(-len(cards) // CARDS_PER_PAGE)
    page = 1
    if pages > 1:
        page = int(st.number_input(f"Page (of {pages:,}, {CARDS_PER_PAGE} images each)", min_value=1,
                                   max_value=pages, value=1, step=1, key=state.widget_key("predict", "page")))
    start = (page - 1) * CARDS_PER_PAGE
    for row_start in range(start, min(start + CARDS_PER_PAGE, len(cards)), CARDS_PER_ROW):
        for column, (index, result) in zip(st.columns(CARDS_PER_ROW),
                                           enumerate(cards[row_start:row_start + CARDS_PER_ROW], row_start)):
            with column.container(border=True):
                prediction_card(index, result, thresholds)


def prediction_card(index: int, result: uploads.Scored, thresholds: dict[str, float]) -> None:
    st.image(result.thumbnail, width="stretch")
    st.markdown(f"**{result.name}** → {badges(result.labels(thresholds))}")
    st.plotly_chart(plots.probability_bars(result.probabilities, thresholds, compact=True), key=f"chart.proba.{index}")
