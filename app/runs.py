"""Runs: a model plus everything the pages show about it, computed once.

A :class:`Run` comes from a training job or from an uploaded bundle. Its
:class:`Evaluation` holds the test-split probabilities and every
threshold-free result (sweeps, ROC-AUC, F1-best thresholds), so moving a
threshold slider only re-thresholds cached numbers and never calls the model.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from typing import Any

import numpy as np
import pandas as pd

from mlcore import metrics, predict, store
from mlcore.config import DataConfig, TrainConfig
from mlcore.datasets import Splits

DEFAULT_ORIGIN = metrics.threshold_origin("default")


@dataclasses.dataclass(frozen=True, eq=False)
class SplitScores:
    """One split's targets and probabilities with their threshold-free results."""

    y_true: np.ndarray
    y_score: np.ndarray
    sweep: pd.DataFrame
    ranking: pd.DataFrame
    curves: dict[str, metrics.Curves]  # ROC and precision-recall per label (labels with both classes)

    @classmethod
    def compute(cls, y_true: np.ndarray, y_score: np.ndarray, labels: tuple[str, ...]) -> SplitScores:
        return cls(
            y_true=y_true,
            y_score=y_score,
            sweep=metrics.threshold_sweep(y_true, y_score, labels=labels),
            ranking=metrics.ranking_scores(y_true, y_score, labels=labels),
            curves=metrics.label_curves(y_true, y_score, labels=labels),
        )

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


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A usable model and what the app knows about it. Never mutated: replaced."""

    model: Any
    label_names: tuple[str, ...]
    image_size: int
    source: str  # "trained" (this session) or "bundle" (uploaded)
    title: str
    metadata: dict
    evaluation: Evaluation | None = None
    data_config: DataConfig | None = None
    train_config: TrainConfig | None = None
    id: str = dataclasses.field(default_factory=lambda: uuid.uuid4().hex[:12])

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
    state = "stopped after" if result.stopped else "trained for"
    title = f"{train_config.architecture} CNN, {state} {result.epochs_completed}/{train_config.epochs} epochs"
    return Run(
        model=result.model,
        label_names=splits.label_names,
        image_size=int(splits.test.images.shape[1]),
        source="trained",
        title=title,
        metadata=metadata,
        evaluation=evaluation,
        data_config=data_config,
        train_config=train_config,
    )


def from_bundle(bundle: store.RunBundle, file_name: str) -> Run:
    """A run from a loaded bundle: no evaluation until the user scores a test split."""
    return Run(
        model=bundle.model,
        label_names=bundle.label_names,
        image_size=bundle.image_size,
        source="bundle",
        title=f"bundle {file_name}",
        metadata=bundle.metadata,
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
    metadata = {
        **run.metadata,
        "thresholds": dict(thresholds),
        "threshold_origin": dict(origins) if origins is not None else run.default_origins,
    }
    if run.evaluation is not None:
        metadata["test_metrics"] = test_metrics(run.evaluation, thresholds, run.label_names)
    for key in ("format", "version", "versions"):  # bundle_bytes writes these itself
        metadata.pop(key, None)
    return store.bundle_bytes(run.model, metadata)


def bundle_file_name(run: Run) -> str:
    architecture = run.train_config.architecture if run.train_config else "model"
    return f"mlcore-run-{architecture}-{run.id}.zip"
