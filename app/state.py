"""Per-session state: the one owner of every key, initialised once, behind small accessors.

Streamlit drops a widget's state when its page is not shown, so every value
that must survive a page switch (data settings, runs, thresholds) lives under a
non-widget ``mlapp.*`` key; widgets (keys from :func:`widget_key`) take those
values as their declared defaults. Every widget and element key is built here.
Nothing here is shared between browser sessions.

Readers take an optional ``session`` (default: this script run's ``st.session_state``),
so tests can read an AppTest session through the same accessors the pages use.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, MutableMapping
from typing import Any

import streamlit as st

from app import jobs, loaders, runs, uploaded_data
from mlcore import metrics, store
from mlcore.config import DataConfig, TrainConfig

DATA_CONFIG = "mlapp.data_config"
DATA_NOTICE = "mlapp.data_notice"
UPLOADS = "mlapp.uploads"  # this session's uploaded zips (app.uploaded_data), deleted with the session
TRAIN_CONFIG = "mlapp.train_config"
JOB = "mlapp.job"
JOB_MESSAGE = "mlapp.job_message"
RUNS = "mlapp.runs"  # {run id: Run}, oldest first: every run of this session and its workspace
ACTIVE = "mlapp.active"  # the id of the run the pages use
WORKSPACE = "mlapp.workspace"  # this session's workspace token (also in the address bar)
SAVED_THRESHOLDS = "mlapp.saved_thresholds"  # {run id: (thresholds, origins) as the run store has them}
NOTICES = "mlapp.notices"  # messages for the next page drawn: [(kind, text)]
THRESHOLDS = "mlapp.thresholds"  # {run id: {label: threshold}}
GLOBAL_THRESHOLD = "mlapp.global_threshold"  # {run id: last value of the global slider}
THRESHOLD_ORIGINS = "mlapp.threshold_origins"  # {run id: {label: metrics.threshold_origin(...)}}
EVAL_SPLIT = "mlapp.eval_split"  # which split the Evaluate page scores: "test" or "validation"
EVAL_NOTICE = "mlapp.eval_notice"  # a message from a threshold button, shown once
GALLERY = "mlapp.gallery"  # the error gallery's label, confusion cell and page
FIGURES = "mlapp.figures"  # {(run id, split, kind, label): a figure built once, its marks moved per rerun}
BUNDLE_ID = "mlapp.bundle_upload_id"
WIDGET_REVISIONS = "mlapp.widget_revisions"  # {widget group: revision}
PAGE = "mlapp.page"  # the page shown last, and how many page visits so far
ENTERED = "mlapp.entered"  # set by the entry script on every run, taken by the page frame
LEGACY_RUNS = "mlapp.legacy_runs"  # page runs that skipped the entry script so far

PREDICTIONS = "mlapp.predictions"  # {(run id, file digest): uploads.Scored}
EXPLANATIONS = "mlapp.explanations"  # {(run id, file digest, label): Grad-CAM card JPEG}
MAX_EXPLANATIONS = 48
MAX_UNSTORED_MODELS = 3  # models of runs the store does not keep, held per session
RUN_KINDS = {"trained": "trained", "bundle": "loaded from a bundle", "shared": "shared with you, read-only"}


Session = MutableMapping


def _state(session: Session | None) -> Session:
    return st.session_state if session is None else session


def _default_data_config() -> DataConfig:
    if loaders.real_dataset_path(DataConfig()) is not None:
        return DataConfig(source="real")
    return DataConfig(source="demo")


def mark_entry() -> None:
    """The entry script ran in this script run (see :func:`app.compat.end_legacy_pages_mode`)."""
    st.session_state[ENTERED] = True


def ran_without_entry() -> bool:
    """Whether this script run skipped the entry script (the mark is used up). Says so at most
    twice per session, so a page that reruns because of it can never loop."""
    if st.session_state.pop(ENTERED, False):
        return False
    tries = st.session_state.get(LEGACY_RUNS, 0)
    st.session_state[LEGACY_RUNS] = tries + 1
    return tries < 2


def init() -> None:
    """Create this session's keys once; later calls leave them alone."""
    if DATA_CONFIG not in st.session_state:
        config = _default_data_config()
        st.session_state[DATA_CONFIG] = config
        st.session_state[DATA_NOTICE] = (
            None
            if config.source == "real"
            else (
                "No local copy of the real cats_and_dogs_filtered dataset was found, so the app starts with the "
                "generated demo set (synthetic drawings). Pick the real dataset below to download it (68 MB)."
            )
        )
    defaults = {
        TRAIN_CONFIG: TrainConfig(),
        JOB: None,
        JOB_MESSAGE: None,
        RUNS: {},
        ACTIVE: None,
        WORKSPACE: None,
        SAVED_THRESHOLDS: {},
        NOTICES: [],
        THRESHOLDS: {},
        GLOBAL_THRESHOLD: {},
        THRESHOLD_ORIGINS: {},
        EVAL_SPLIT: "test",
        EVAL_NOTICE: None,
        GALLERY: {"label": None, "cell": "FP", "page": 1},
        FIGURES: {},
        BUNDLE_ID: None,
        EXPLANATIONS: {},
        PREDICTIONS: {},
        WIDGET_REVISIONS: {},
        PAGE: ("", 0),
    }
    for key, value in defaults.items():
        st.session_state.setdefault(key, value)


def widget_key(group: str, name: str, session: Session | None = None) -> str:
    """The key of a widget in ``group``: stable until :func:`renew_widgets` is called.

    Widgets get their persistent value as their declared default (``value=``), never
    through a Session State write: a browser that remounts a widget (after a page
    switch) falls back to the declared default, so that default must be the real one.
    """
    revision = _state(session)[WIDGET_REVISIONS].get(group, 0)
    return f"w.{group}.{name}" + (f"~{revision}" if revision else "")


def element_key(kind: str, *names: str) -> str:
    """The key of a display element that keeps its identity across reruns (``kind``: chart or table)."""
    return ".".join((kind, *names))


def enter_page(page_file: str) -> None:
    """Count page visits: widgets keyed by the visit start fresh from current values."""
    name, visits = st.session_state[PAGE]
    if name != page_file:
        st.session_state[PAGE] = (page_file, visits + 1)


def renew_widgets(group: str) -> None:
    """New identities for a group's widgets, so they show values changed by code.

    Writing a widget's key from code would also work, but it races with what the
    browser sends back; a new widget simply starts from its declared default.
    """
    revisions = st.session_state[WIDGET_REVISIONS]
    revisions[group] = revisions.get(group, 0) + 1


# --- data -----------------------------------------------------------------------------


def data_config(session: Session | None = None) -> DataConfig:
    return _state(session)[DATA_CONFIG]


def set_data_config(config: DataConfig) -> None:
    st.session_state[DATA_CONFIG] = config
    st.session_state[DATA_NOTICE] = None


def use_demo_data() -> None:
    """Switch to the generated demo set, keeping the other settings (a button callback)."""
    set_data_config(dataclasses.replace(data_config(), source="demo", folder=None, archive=None))
    renew_widgets("data")  # the form shows the new source


def session_uploads() -> uploaded_data.SessionUploads:
    """This session's private folder of uploaded zips, made on first use."""
    if UPLOADS not in st.session_state:
        st.session_state[UPLOADS] = uploaded_data.SessionUploads()
    return st.session_state[UPLOADS]


def touch_uploads() -> None:
    """Mark this session's uploads as in use (idle ones are swept, see app.uploaded_data)."""
    if (uploads := st.session_state.get(UPLOADS)) is not None:
        uploads.touch()


def data_notice() -> str | None:
    return st.session_state[DATA_NOTICE]


# --- training ---------------------------------------------------------------------------


def train_config(session: Session | None = None) -> TrainConfig:
    return _state(session)[TRAIN_CONFIG]


def set_train_config(config: TrainConfig) -> None:
    st.session_state[TRAIN_CONFIG] = config
    renew_widgets("train")  # the form shows the new settings


def job(session: Session | None = None) -> jobs.TrainingJob | None:
    return _state(session)[JOB]


def start_training(config: TrainConfig, keep: jobs.Keeper | None = None) -> jobs.TrainingJob:
    """Start this session's one job on the current data; ``keep`` stores its run when it ends.
    Raises ``RuntimeError`` (job running, server limit), ``DatasetUnavailable`` or ``ValueError``."""
    st.session_state[TRAIN_CONFIG] = config
    if job() is not None:
        raise RuntimeError("A training job is already running in this session: stop it or wait for it to end.")
    splits = loaders.load_splits(data_config())
    if len(splits.train) == 0:
        raise ValueError("The training split is empty: use more images.")
    st.session_state[JOB] = jobs.TrainingJob(splits, data_config(), config, keep=keep).start()
    st.session_state[JOB_MESSAGE] = None
    return st.session_state[JOB]


def collect_finished_job() -> None:
    """Move a finished job's run into the session (called at the top of every run)."""
    current = job()
    status = current.status() if current is not None else None
    if status is None or not status.done:
        return
    st.session_state[JOB] = None
    if current.run is None:
        st.session_state[JOB_MESSAGE] = ("error", status.error or "Training failed.")
        return
    add_run(current.run)
    if current.keep_message:
        post_notice("warning", current.keep_message)
    st.session_state[JOB_MESSAGE] = (
        ("warning", "Training was stopped; the partially trained model is kept and evaluated.")
        if status.phase == "stopped"
        else ("success", "Training finished.")
    )


def job_message() -> tuple[str, str] | None:
    return st.session_state[JOB_MESSAGE]


# --- runs and thresholds --------------------------------------------------------------------


def add_run(run: runs.Run, *, activate: bool = True) -> None:
    """Keep a run in the session (last in the list) and make it the active one. Of the runs the store
    does not keep, only the newest few keep their model in memory."""
    st.session_state[RUNS][run.id] = run
    unstored = [other for other in st.session_state[RUNS].values() if other.stored is None and other.model_ref.loaded]
    for old in unstored[:-MAX_UNSTORED_MODELS]:
        old.model_ref.drop()
    if activate or active_run() is None:
        set_active(run.id)
    renew_widgets("runs")  # a selection in the runs table must not outlive the rows it pointed at


def all_runs(session: Session | None = None) -> list[runs.Run]:
    """The session's runs, oldest first."""
    return list(_state(session)[RUNS].values())


def run_by_id(run_id: str, session: Session | None = None) -> runs.Run | None:
    return _state(session)[RUNS].get(run_id)


def active_kind(session: Session | None = None) -> str | None:
    """Where the active run came from: ``"trained"``, ``"bundle"``, ``"shared"`` or ``None``."""
    run = active_run(session)
    return run.source if run is not None else None


def active_run(session: Session | None = None) -> runs.Run | None:
    run_id = _state(session)[ACTIVE]
    return _state(session)[RUNS].get(run_id) if run_id else None


def set_active(run_id: str) -> None:
    """Make a run the one the pages use; stored models of the other runs are let go (read again when needed)."""
    if run_id not in st.session_state[RUNS]:
        return
    st.session_state[ACTIVE] = run_id
    for other in st.session_state[RUNS].values():
        if other.id != run_id:
            other.model_ref.release()


def remove_run(run_id: str) -> None:
    """Drop a run and what the session kept for it; the newest remaining one becomes active if it was."""
    st.session_state[RUNS].pop(run_id, None)
    for per_run in (THRESHOLDS, GLOBAL_THRESHOLD, THRESHOLD_ORIGINS, SAVED_THRESHOLDS):
        st.session_state[per_run].pop(run_id, None)
    if st.session_state[ACTIVE] == run_id:
        st.session_state[ACTIVE] = next(reversed(st.session_state[RUNS]), None)
    renew_widgets("runs")


def trained_run(session: Session | None = None) -> runs.Run | None:
    """The newest run trained in this workspace."""
    return next((run for run in reversed(all_runs(session)) if run.source == "trained"), None)


def bundle_run(session: Session | None = None) -> runs.Run | None:
    """The newest run loaded from a bundle."""
    return next((run for run in reversed(all_runs(session)) if run.source == "bundle"), None)


def workspace_token(session: Session | None = None) -> str | None:
    return _state(session)[WORKSPACE]


def set_workspace(token: str) -> None:
    st.session_state[WORKSPACE] = token


def shared_token(session: Session | None = None) -> str | None:
    """The share token of the run this session opened by a link, while it is open."""
    return next((run.stored.share_token for run in all_runs(session) if run.read_only), None)


def saved_thresholds(run: runs.Run) -> tuple[dict, dict]:
    """A stored run's thresholds and origins as the run store has them."""
    return st.session_state[SAVED_THRESHOLDS].get(run.id, (run.default_thresholds, run.default_origins))


def mark_thresholds_saved(run: runs.Run, values: tuple[dict, dict]) -> None:
    st.session_state[SAVED_THRESHOLDS][run.id] = values


def post_notice(kind: str, text: str) -> None:
    """A message (``"info"``, ``"warning"`` or ``"error"``) for the top of the next page drawn."""
    st.session_state[NOTICES].append((kind, text))


def pop_notices() -> list[tuple[str, str]]:
    notices, st.session_state[NOTICES] = st.session_state[NOTICES], []
    return notices


def thresholds(run: runs.Run, session: Session | None = None) -> dict[str, float]:
    return dict(_state(session)[THRESHOLDS].get(run.id, run.default_thresholds))


def global_threshold(run: runs.Run) -> float:
    values = list(thresholds(run).values())
    fallback = values[0] if len(set(values)) == 1 else 0.5
    return st.session_state[GLOBAL_THRESHOLD].setdefault(run.id, fallback)


def threshold_key(run: runs.Run, label: str, session: Session | None = None) -> str:
    return f"w.thr.{run.id}.{label}.v{_state(session)[PAGE][1]}"


def global_threshold_key(run: runs.Run) -> str:
    return f"w.thr.{run.id}.__all__.v{st.session_state[PAGE][1]}"


def seed_widget(key: str, value) -> str:
    """Give a widget that code also moves its value through Session State when its key is new.

    Threshold sliders change from code (the global slider, the F1-best button), so
    their value lives in Session State rather than in ``value=``; their keys carry
    the page-visit count, so a browser that remounts them after a page switch meets
    new widgets seeded with the current value, never a stale declared default. The
    error gallery's choices (moved by clicks on a confusion heatmap) work the same way.
    """
    if key not in st.session_state:
        st.session_state[key] = value
    return key


def widget_value(key: str, session: Session | None = None):
    """A widget's current value (in callbacks: the value just set by the user)."""
    return _state(session)[key]


def move_widget(key: str, value) -> None:
    """Set a widget from code, only when it differs: writing a widget's key sends
    the value to the browser, which would undo moves the user made meanwhile.
    (Creating new slider widgets instead would make the browser remount the slider
    being dragged, losing its focus and value.)"""
    current = st.session_state.get(key)
    same = current == value if not isinstance(value, float) or current is None else abs(current - value) <= 1e-9
    if not same:
        st.session_state[key] = value


def threshold_origins(run: runs.Run, session: Session | None = None) -> dict[str, dict]:
    """Per label, how its current threshold was set (see :func:`mlcore.metrics.threshold_origin`)."""
    return dict(_state(session)[THRESHOLD_ORIGINS].get(run.id, run.default_origins))


def set_thresholds(run: runs.Run, values: dict[str, float], origin: dict) -> None:
    """Store per-label thresholds with their origin and move their sliders (safe inside widget callbacks)."""
    merged = {**thresholds(run), **{label: round(float(v), 2) for label, v in values.items()}}
    st.session_state[THRESHOLDS][run.id] = merged
    st.session_state[THRESHOLD_ORIGINS][run.id] = {**threshold_origins(run), **{label: origin for label in values}}
    for label, value in merged.items():
        move_widget(threshold_key(run, label), value)


def set_global_threshold(run: runs.Run, value: float, origin: dict) -> None:
    value = round(float(value), 2)
    st.session_state[GLOBAL_THRESHOLD][run.id] = value
    move_widget(global_threshold_key(run), value)
    set_thresholds(run, {label: value for label in run.label_names}, origin)


def manual_origin() -> dict:
    """The origin of a threshold moved by hand: on whichever split the page shows."""
    return metrics.threshold_origin("manual", split=eval_split())


def eval_split(session: Session | None = None) -> str:
    return _state(session)[EVAL_SPLIT]


def set_eval_split(name: str) -> None:
    if name not in ("test", "validation"):
        raise ValueError(f"split must be 'test' or 'validation', got {name!r}")
    st.session_state[EVAL_SPLIT] = name


def gallery(session: Session | None = None) -> dict:
    """The error gallery's choice: ``{"label", "cell", "page"}`` (label ``None``: the first one)."""
    return dict(_state(session)[GALLERY])


def set_gallery(**changes) -> None:
    """Change the gallery's label, cell or page, and move their widgets (safe inside callbacks)."""
    chosen = {**gallery(), **changes}
    if "label" in changes or "cell" in changes:
        chosen["page"] = changes.get("page", 1)
    st.session_state[GALLERY] = chosen
    for name in ("label", "cell", "page"):
        if chosen[name] is not None:
            move_widget(widget_key("gallery", name), chosen[name])


def figure(key: tuple, build: Callable[[], Any]) -> Any:
    """This session's figure for ``key`` (whose first item is a run id), built once.

    Figures of other runs are dropped when a new run's figure is built. The caller
    moves the figure's marks before drawing it; Streamlit serialises a figure when it
    is drawn, so changing it afterwards never changes what was sent.
    """
    cache = st.session_state[FIGURES]
    if key not in cache:
        for stale in [old for old in cache if old[0] != key[0]]:
            del cache[stale]
        cache[key] = build()
    return cache[key]


def post_eval_notice(kind: str, text: str) -> None:
    st.session_state[EVAL_NOTICE] = (kind, text)


def pop_eval_notice() -> tuple[str, str] | None:
    notice, st.session_state[EVAL_NOTICE] = st.session_state[EVAL_NOTICE], None
    return notice


def load_bundle(upload_id: str, data: bytes, file_name: str) -> tuple[runs.Run, bool]:
    """Validate and load an uploaded bundle once per upload: ``(run, newly loaded)``.
    Raises ``BundleError``."""
    current = bundle_run()
    if current is not None and st.session_state[BUNDLE_ID] == upload_id:
        return current, False
    jobs.prepare_keras()
    run = runs.from_bundle(store.load_bundle(data), file_name)
    st.session_state[BUNDLE_ID] = upload_id
    add_run(run)
    return run, True


def prediction_cache(session: Session | None = None) -> dict:
    """This session's scored uploads, ``{(run id, content digest): uploads.Scored}``."""
    return _state(session)[PREDICTIONS]


def explanations(session: Session | None = None) -> dict:
    """This session's Grad-CAM card pictures, ``{(run id, file digest, label): JPEG}``."""
    return _state(session)[EXPLANATIONS]


def explanation(key: tuple, build: Callable[[], bytes]) -> bytes:
    """A Grad-CAM card picture for ``(run id, file digest, label)``, made once; the oldest go first."""
    cache = st.session_state[EXPLANATIONS]
    if key not in cache:
        cache[key] = build()
        while len(cache) > MAX_EXPLANATIONS:
            del cache[next(iter(cache))]
    return cache[key]


def replace_run(old: runs.Run, new: runs.Run) -> None:
    """Swap a run for an updated copy (same id, so thresholds carry over)."""
    if st.session_state[RUNS].get(old.id) is old:
        st.session_state[RUNS][old.id] = new
