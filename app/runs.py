"""Runs: a model plus everything the pages show about it, computed once.

A :class:`Run` comes from a training job, an uploaded bundle or the run store. Its
:class:`Evaluation` holds the test-split probabilities and every
threshold-free result (sweeps, ROC-AUC, F1-best thresholds), so moving a
threshold slider only re-thresholds cached numbers and never calls the model.
A stored run's model is read from the store only when something needs it.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import uuid
from collections.abc import Callable
from pathlib import PurePath
from typing import Any

import numpy as np
import pandas as pd

from mlcore import metrics, predict, runstore, store
from mlcore.config import DataConfig, TrainConfig
from mlcore.datasets import Splits

DEFAULT_ORIGIN = metrics.threshold_origin("default")


@dataclasses.dataclass(frozen=True, eq=False)
class SplitScores:
    """One split's targets and probabilities with their threshold-free results, each computed
    once, when first asked for (a workspace of many runs opens without computing them all)."""

    y_true: np.ndarray
    y_score: np.ndarray
    labels: tuple[str, ...]

    @classmethod
    def compute(cls, y_true: np.ndarray, y_score: np.ndarray, labels: tuple[str, ...]) -> SplitScores:
        return cls(y_true=y_true, y_score=y_score, labels=labels)

    @functools.cached_property
    def sweep(self) -> pd.DataFrame:
        return metrics.threshold_sweep(self.y_true, self.y_score, labels=self.labels)

    @functools.cached_property
    def ranking(self) -> pd.DataFrame:
        return metrics.ranking_scores(self.y_true, self.y_score, labels=self.labels)

    @functools.cached_property
    def curves(self) -> dict[str, metrics.Curves]:
        """ROC and precision-recall per label (labels with both classes)."""
        return metrics.label_curves(self.y_true, self.y_score, labels=self.labels)

    def __len__(self) -> int:
        return len(self.y_true)


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluation:
    """Probabilities of the validation split (which chooses thresholds) and of the
    test split (which is reported), each with its threshold-free results."""

    test: SplitScores
    validation: SplitScores | None
    labels: tuple[str, ...]

    @classmethod
    def compute(
        cls,
        labels: tuple[str, ...],
        test: tuple[np.ndarray, np.ndarray],
        validation: tuple[np.ndarray, np.ndarray] | None,
    ) -> Evaluation:
        """From ``(y_true, y_score)`` pairs; a validation split without examples counts as none."""
        chooser = SplitScores.compute(*validation, labels) if validation is not None and len(validation[0]) else None
        return cls(test=SplitScores.compute(*test, labels), validation=chooser, labels=labels)

    @functools.cached_property
    def boards(self) -> dict[tuple, dict[str, float]]:
        """Scoreboards already computed, by thresholds (see :meth:`scoreboard`)."""
        return {}

    def scoreboard(self, thresholds: dict[str, float]) -> dict[str, float]:
        """Test ROC-AUC per label, and F1 per label, micro and macro F1 at ``thresholds``; each set of
        thresholds is scored once (the Runs and Compare pages show many runs on every rerun)."""
        key = tuple(thresholds[label] for label in self.labels)
        if key not in self.boards:
            test, labels = self.test, self.labels
            report = metrics.classification_report_frame(test.y_true, test.y_score, threshold=thresholds, labels=labels)
            summary = metrics.summary_scores(test.y_true, test.y_score, threshold=thresholds, labels=labels)
            board = {f"ROC-AUC {label}": float(test.ranking["roc_auc"][label]) for label in labels}
            board.update({f"F1 {label}": float(report.loc[label, "f1-score"]) for label in labels})
            board.update({"micro F1": summary["micro_f1"], "macro F1": summary["macro_f1"]})
            if len(self.boards) >= 64:  # a session that tried many thresholds keeps the latest ones
                self.boards.clear()
            self.boards[key] = board
        return dict(self.boards[key])

    def split(self, name: str) -> SplitScores:
        """``"test"`` or ``"validation"``; the test split when the other is missing."""
        return self.validation if name == "validation" and self.validation is not None else self.test

    @functools.cached_property
    def best_thresholds(self) -> dict[str, float]:
        """F1-best thresholds, chosen on the validation split (empty without one)."""
        return self.choose("f1") if self.validation is not None else {}

    def choose(self, rule: str, target: float | None = None) -> dict[str, float | None]:
        """Thresholds chosen by ``rule`` on the validation split (``None`` where unreachable)."""
        if self.validation is None:
            raise ValueError("This run has no validation split to choose thresholds on.")
        return metrics.choose_thresholds(
            self.validation.y_true, self.validation.y_score, rule=rule, target=target, labels=self.labels
        )


class ModelRef:
    """A run's Keras model, held or read on first use by ``load`` (then kept until released)."""

    def __init__(self, model: Any = None, *, load: Callable[[], Any] | None = None):
        if model is None and load is None:
            raise ValueError("a ModelRef needs a model or a way to load one")
        self._model, self._load = model, load
        self._lock = threading.Lock()

    def get(self) -> Any:
        """The model; raises ``store.BundleError`` when a stored one can no longer be read."""
        with self._lock:
            if self._model is None:
                self._model = self._load()
            return self._model

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def release(self) -> None:
        """Let go of a model that can be read again (kept when there is nothing to read it from)."""
        with self._lock:
            if self._load is not None:
                self._model = None

    def drop(self) -> None:
        """Let go of the model for good; :meth:`get` then says so."""
        with self._lock:
            if self._load is None:
                self._load = functools.partial(_model_not_kept)
            self._model = None


def _model_not_kept() -> Any:
    raise store.BundleError("This run's model was not kept (this server keeps no runs, and newer runs took its place).")


@dataclasses.dataclass(frozen=True)
class Stored:
    """Where a run lives in the run store: its id there, its share token and where it came from."""

    run_id: str
    share_token: str
    source: str = "trained"  # "trained" or "bundle", also for a run opened by a share link


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A usable model and what the app knows about it. Never mutated: replaced."""

    model_ref: ModelRef
    label_names: tuple[str, ...]
    image_size: int
    source: str  # "trained" (in this workspace), "bundle" (uploaded) or "shared" (opened by a share link)
    title: str
    metadata: dict
    evaluation: Evaluation | None = None
    data_config: DataConfig | None = None
    train_config: TrainConfig | None = None
    name: str = ""  # what the person calls it; the title until renamed
    stored: Stored | None = None  # None: kept in this session only
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])

    @property
    def model(self) -> Any:
        return self.model_ref.get()

    @property
    def label(self) -> str:
        """How pages name the run: its name, and what it is when the name does not say."""
        return f"{self.name} ({self.title})" if self.name and self.name != self.title else self.title

    @property
    def read_only(self) -> bool:
        """Opened by someone else's share link: shown, never changed."""
        return self.source == "shared"

    @property
    def history(self) -> dict[str, list[float]]:
        return self.metadata.get("history", {})

    @property
    def synthetic(self) -> bool:
        return bool(self.metadata.get("synthetic_data", False))

    @property
    def default_thresholds(self) -> dict[str, float]:
        saved = self.metadata.get("thresholds") or {}
        return {label: float(saved.get(label, 0.5)) for label in self.label_names}

    @property
    def default_origins(self) -> dict[str, dict]:
        """How the saved thresholds were set, as the run's metadata records it."""
        saved = self.metadata.get("threshold_origin")
        saved = saved if isinstance(saved, dict) else {}
        return {label: saved.get(label, DEFAULT_ORIGIN) for label in self.label_names}


def score_splits(model, splits: Splits) -> Evaluation:
    """Predict the validation and test splits once and precompute everything threshold-free."""
    validation = (splits.validation.targets, predict.predict_proba(model, splits.validation.images))
    test = (splits.test.targets, predict.predict_proba(model, splits.test.images))
    return Evaluation.compute(splits.label_names, test, validation)


def from_training(result, splits: Splits, data_config: DataConfig, train_config: TrainConfig) -> Run:
    """A run from a finished (or stopped) training result; scores the validation and test splits."""
    evaluation = score_splits(result.model, splits)
    default = {label: 0.5 for label in splits.label_names}
    metadata = store.run_metadata(
        data_config,
        train_config,
        splits,
        result,
        thresholds=default,
        threshold_origin={label: DEFAULT_ORIGIN for label in splits.label_names},
        test_metrics=test_metrics(evaluation, default, splits.label_names),
    )
    title = trained_title(train_config, result.epochs_completed, result.stopped)
    return Run(
        model_ref=ModelRef(result.model),
        label_names=splits.label_names,
        image_size=int(splits.test.images.shape[1]),
        source="trained",
        title=title,
        metadata=metadata,
        evaluation=evaluation,
        data_config=data_config,
        train_config=train_config,
    )


def trained_title(train_config: TrainConfig, epochs_completed: int, stopped: bool) -> str:
    state = "stopped after" if stopped else "trained for"
    return f"{train_config.architecture} CNN, {state} {epochs_completed}/{train_config.epochs} epochs"


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def clean_metadata(metadata: dict) -> dict:
    """A bundle's ``run.json`` with the fields pages read put in shape: a bundle from elsewhere may hold
    anything there, and a shared bundle is shown to people who did not choose it."""
    clean = dict(metadata)
    for key in ("train_config", "data_config", "split_sizes"):
        clean[key] = metadata.get(key) if isinstance(metadata.get(key), dict) else {}
    clean["split_sizes"] = {k: int(v) for k, v in clean["split_sizes"].items() if _number(v) is not None and v >= 0}
    history = metadata.get("history") if isinstance(metadata.get("history"), dict) else {}
    clean["history"] = {
        key: [float(v) for v in values]
        for key, values in history.items()
        if isinstance(key, str) and isinstance(values, list) and all(_number(v) is not None for v in values)
    }
    clean["train_seconds"] = _number(metadata.get("train_seconds"))
    completed = _number(metadata.get("epochs_completed"))
    clean["epochs_completed"] = int(completed) if completed is not None and completed >= 0 else None
    return clean


def _config(kind: type, values: object) -> Any:
    """A config rebuilt from a bundle's run.json, or ``None`` when it is missing or not valid."""
    try:
        return kind(**values) if isinstance(values, dict) else None
    except (TypeError, ValueError):
        return None


def from_stored(loaded: runstore.LoadedRun, load_model: Callable[[], Any], *, shared: bool = False) -> Run:
    """A run read back from the run store; its model is read by ``load_model`` on first use.
    ``shared``: opened by a share link, so it is shown read-only. Raises ``store.BundleError``."""
    entry = loaded.entry
    metadata = clean_metadata(store.read_metadata(loaded.bundle))
    labels = tuple(metadata["labels"])
    metadata["thresholds"] = usable_thresholds(entry.thresholds or metadata.get("thresholds"), labels)
    metadata["threshold_origin"] = entry.threshold_origin or metadata.get("threshold_origin") or {}
    scores = loaded.scores
    for split, (targets, _) in scores.items():
        if targets.shape[1] != len(labels):
            raise store.BundleError(
                f"The stored {split} probabilities have {targets.shape[1]} labels, not {len(labels)}."
            )
    evaluation = Evaluation.compute(labels, scores["test"], scores.get("validation")) if scores else None
    data_config = _config(DataConfig, entry.scored_on or metadata.get("data_config"))
    train_config = _config(TrainConfig, metadata.get("train_config"))
    if entry.source == "trained" and train_config is not None:
        title = trained_title(train_config, metadata.get("epochs_completed") or 0, bool(metadata.get("stopped_early")))
    else:
        title = "loaded bundle"
    return Run(
        model_ref=ModelRef(load=load_model),
        label_names=labels,
        image_size=int(metadata["image_size"]),
        source="shared" if shared else entry.source,
        title=title,
        metadata=metadata,
        evaluation=evaluation,
        data_config=data_config if evaluation is not None else None,
        train_config=train_config,
        name=entry.name,
        stored=Stored(entry.run_id, entry.share_token, entry.source),
        id=("shared-" if shared else "") + entry.run_id,
    )


def usable_thresholds(values: object, labels: tuple[str, ...]) -> dict[str, float]:
    """The thresholds among ``values`` that a slider can show (numbers in [0, 1]); others are left out."""
    if not isinstance(values, dict):
        return {}
    return {
        label: round(float(value), 2)
        for label, value in values.items()
        if label in labels
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        and 0.0 <= value <= 1.0  # NaN fails this too
    }


def split_scores(run: Run) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The run's targets and probabilities per split, as the run store keeps them (empty: not scored)."""
    if run.evaluation is None:
        return {}
    scores = {"test": (run.evaluation.test.y_true, run.evaluation.test.y_score)}
    if run.evaluation.validation is not None:
        scores["validation"] = (run.evaluation.validation.y_true, run.evaluation.validation.y_score)
    return scores


def from_bundle(bundle: store.RunBundle, file_name: str) -> Run:
    """A run from a loaded bundle: no evaluation until the user scores a test split."""
    return Run(
        model_ref=ModelRef(bundle.model),
        label_names=bundle.label_names,
        image_size=bundle.image_size,
        source="bundle",
        title="loaded bundle",
        metadata=clean_metadata(bundle.metadata),
        name=file_name,
    )


def with_evaluation(run: Run, splits: Splits, data_config: DataConfig) -> Run:
    """The same run, scored on the validation and test splits of ``data_config`` (loaded as ``splits``;
    labels and image size must match), which it keeps so pages can show those images."""
    if tuple(splits.label_names) != tuple(run.label_names):
        raise ValueError(f"The model predicts {list(run.label_names)} but the data has {list(splits.label_names)}.")
    if int(splits.test.images.shape[1]) != run.image_size:
        raise ValueError(
            f"The model takes {run.image_size} px images but the data has {splits.test.images.shape[1]} px."
        )
    return dataclasses.replace(run, evaluation=score_splits(run.model, splits), data_config=data_config)


def test_metrics(evaluation: Evaluation, thresholds: dict[str, float], labels: tuple[str, ...]) -> dict:
    """The bundle's ``test_metrics`` block at the given thresholds (as the CLI writes it)."""
    test = evaluation.test
    return metrics.evaluation_summary(
        test.y_true, test.y_score, threshold=thresholds, labels=labels, ranking=test.ranking
    )


def bundle_bytes(run: Run, thresholds: dict[str, float], origins: dict[str, dict] | None = None) -> bytes:
    """The run as a bundle carrying the thresholds the user tuned, how each was set, and test metrics at them."""
    return store.bundle_bytes(run.model, bundle_metadata(run, thresholds, origins))


def bundle_metadata(run: Run, thresholds: dict[str, float], origins: dict[str, dict] | None = None) -> dict:
    """The ``run.json`` of :func:`bundle_bytes`."""
    metadata = {
        **run.metadata,
        "thresholds": dict(thresholds),
        "threshold_origin": dict(origins) if origins is not None else run.default_origins,
    }
    if run.evaluation is not None:
        metadata["test_metrics"] = test_metrics(run.evaluation, thresholds, run.label_names)
    for key in ("format", "version", "versions"):  # bundle_bytes writes these itself
        metadata.pop(key, None)
    return metadata


def bundle_file_name(run: Run) -> str:
    architecture = run.train_config.architecture if run.train_config else "model"
    return f"mlcore-run-{architecture}-{run.id}.zip"


def _or_unknown(value: object) -> object:
    return "?" if value is None else value


def _source(data: dict) -> object:
    """The data source as a person names it: an uploaded zip by its file name."""
    archive = data.get("archive")
    if data.get("source") == "zip" and isinstance(archive, str):
        return f"zip {PurePath(archive).name}"
    return data.get("source")


def settings_of(run: Run) -> dict[str, object]:
    """The settings that shaped a run, by name, as the Runs and Compare pages list them."""
    train = run.metadata.get("train_config") or {}
    data = run.metadata.get("data_config") or {}
    return {
        "architecture": run.metadata.get("architecture", train.get("architecture", "")),
        "epochs": f"{_or_unknown(run.metadata.get('epochs_completed'))}/{_or_unknown(train.get('epochs'))}",
        "batch size": train.get("batch_size"),
        "learning rate": train.get("learning_rate"),
        "augmentation": train.get("augmentation"),
        "training seed": train.get("seed"),
        "data source": _source(data),
        "training images": (run.metadata.get("split_sizes") or {}).get("train"),
        "image size": run.image_size,
        "indoor p": data.get("indoor_probability"),
        "data seed": data.get("seed"),
        "training time (s)": round(_number(run.metadata.get("train_seconds")) or float("nan"), 1),
    }


def scoreboard(run: Run, thresholds: dict[str, float]) -> dict[str, float]:
    """Test ROC-AUC per label, and F1 per label, micro and macro F1 at ``thresholds`` (NaN: not scored)."""
    names = [f"ROC-AUC {label}" for label in run.label_names] + [f"F1 {label}" for label in run.label_names]
    if run.evaluation is None:
        return dict.fromkeys([*names, "micro F1", "macro F1"], float("nan"))
    return run.evaluation.scoreboard(thresholds)
