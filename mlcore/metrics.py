"""Thresholding and multi-label evaluation, following scikit-learn conventions.

Every function takes ``(y_true, y_score)`` with keyword-only options and leans on
sklearn for the numbers, so the app shows exactly what ``classification_report``
prints. Everything here is cheap enough to rerun on every threshold change.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from sklearn import metrics as skm

from mlcore.config import LABELS

Threshold = float | np.ndarray | list[float] | tuple[float, ...] | dict[str, float]


def _check_scores(y_true: np.ndarray, y_score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_true.ndim != 2 or y_true.shape != y_score.shape:
        raise ValueError(f"y_true and y_score must be 2-D and of one shape, got {y_true.shape} and {y_score.shape}")
    return y_true.astype(int), y_score


def threshold_vector(threshold: Threshold, labels: tuple[str, ...] | int) -> np.ndarray:
    """One threshold per label from a scalar, a sequence or a ``{label: value}`` dict."""
    names = tuple(labels) if not isinstance(labels, int) else tuple(str(i) for i in range(labels))
    if isinstance(threshold, dict):
        missing = [name for name in names if name not in threshold]
        if missing:
            raise ValueError(f"threshold dict has no value for {missing}")
        values = np.array([threshold[name] for name in names], dtype=np.float64)
    else:
        values = np.asarray(threshold, dtype=np.float64)
        if values.ndim == 0:
            values = np.full(len(names), float(values))
    if values.shape != (len(names),):
        raise ValueError(f"expected 1 or {len(names)} thresholds, got {values.shape[0]}")
    bad = values[(values < 0) | (values > 1) | ~np.isfinite(values)]
    if bad.size:
        raise ValueError(f"thresholds must lie in [0, 1], got {bad.tolist()}")
    return values


def binarize(y_score: np.ndarray, *, threshold: Threshold = 0.5, labels: tuple[str, ...] | None = None) -> np.ndarray:
    """Decisions ``y_score >= threshold`` (per label when given per label), as int."""
    y_score = np.asarray(y_score, dtype=np.float64)
    if y_score.ndim != 2:
        raise ValueError(f"y_score must be 2-D, got shape {y_score.shape}")
    vector = threshold_vector(threshold, labels if labels is not None else y_score.shape[1])
    return (y_score >= vector).astype(int)


def classification_report_frame(
    y_true: np.ndarray, y_score: np.ndarray, *, threshold: Threshold = 0.5, labels: tuple[str, ...] = LABELS
) -> pd.DataFrame:
    """sklearn's ``classification_report`` as a table: one row per label and average."""
    y_true, _ = _check_scores(y_true, y_score)
    y_pred = binarize(y_score, threshold=threshold, labels=labels)
    report = skm.classification_report(y_true, y_pred, target_names=list(labels), output_dict=True, zero_division=0)
    frame = pd.DataFrame(report).T[["precision", "recall", "f1-score", "support"]]
    frame["support"] = frame["support"].astype(int)
    return frame


def confusion_matrices(
    y_true: np.ndarray, y_score: np.ndarray, *, threshold: Threshold = 0.5, labels: tuple[str, ...] = LABELS
) -> np.ndarray:
    """``multilabel_confusion_matrix``: shape ``(labels, 2, 2)`` as ``[[TN, FP], [FN, TP]]``."""
    y_true, _ = _check_scores(y_true, y_score)
    return skm.multilabel_confusion_matrix(y_true, binarize(y_score, threshold=threshold, labels=labels))


def summary_scores(
    y_true: np.ndarray, y_score: np.ndarray, *, threshold: Threshold = 0.5, labels: tuple[str, ...] = LABELS
) -> dict[str, float]:
    """Hamming loss, subset accuracy, micro and macro F1 at the given threshold(s)."""
    y_true, _ = _check_scores(y_true, y_score)
    y_pred = binarize(y_score, threshold=threshold, labels=labels)
    return {
        "hamming_loss": float(skm.hamming_loss(y_true, y_pred)),
        "subset_accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "micro_f1": float(skm.f1_score(y_true, y_pred, average="micro", zero_division=0)),
        "macro_f1": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def ranking_scores(y_true: np.ndarray, y_score: np.ndarray, *, labels: tuple[str, ...] = LABELS) -> pd.DataFrame:
    """Per-label ROC-AUC and average precision (threshold-free).

    Where a label has a single class in ``y_true`` both are undefined: they are NaN
    and the ``note`` column says why.
    """
    y_true, y_score = _check_scores(y_true, y_score)
    rows = []
    for index, label in enumerate(labels):
        column = y_true[:, index]
        positives = int(column.sum())
        if positives in (0, len(column)):
            kind = "positive" if positives else "negative"
            rows.append((label, np.nan, np.nan, f"only {kind} examples: undefined"))
            continue
        rows.append(
            (
                label,
                float(skm.roc_auc_score(column, y_score[:, index])),
                float(skm.average_precision_score(column, y_score[:, index])),
                "",
            )
        )
    return pd.DataFrame(rows, columns=["label", "roc_auc", "average_precision", "note"]).set_index("label")


DEFAULT_SWEEP = np.round(np.linspace(0.01, 0.99, 99), 2)


def threshold_sweep(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    thresholds: np.ndarray = DEFAULT_SWEEP,
    labels: tuple[str, ...] = LABELS,
) -> pd.DataFrame:
    """Precision, recall and F1 per label at each threshold (long format).

    Vectorised over thresholds: one comparison of shape (thresholds, samples, labels).
    Precision is 0 where nothing is predicted positive, as sklearn's ``zero_division=0``.
    """
    y_true, y_score = _check_scores(y_true, y_score)
    thresholds = np.asarray(thresholds, dtype=np.float64)
    predicted = y_score[None, :, :] >= thresholds[:, None, None]
    positives = y_true[None, :, :].astype(bool)
    tp = (predicted & positives).sum(axis=1)
    fp = (predicted & ~positives).sum(axis=1)
    fn = (~predicted & positives).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
    frames = [
        pd.DataFrame(
            {
                "label": label,
                "threshold": thresholds,
                "precision": precision[:, i],
                "recall": recall[:, i],
                "f1": f1[:, i],
            }
        )
        for i, label in enumerate(labels)
    ]
    return pd.concat(frames, ignore_index=True)


def best_thresholds(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    thresholds: np.ndarray = DEFAULT_SWEEP,
    labels: tuple[str, ...] = LABELS,
) -> dict[str, float]:
    """The F1-best threshold per label (the lowest one on ties)."""
    sweep = threshold_sweep(y_true, y_score, thresholds=thresholds, labels=labels)
    best = sweep.loc[sweep.groupby("label", sort=False)["f1"].idxmax()]
    return {row.label: float(row.threshold) for row in best.itertuples()}


@dataclasses.dataclass(frozen=True)
class Curves:
    """One label's threshold-free curves (sklearn's ``roc_curve`` and ``precision_recall_curve``)."""

    fpr: np.ndarray
    tpr: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    roc_auc: float
    average_precision: float


def label_curves(y_true: np.ndarray, y_score: np.ndarray, *, labels: tuple[str, ...] = LABELS) -> dict[str, Curves]:
    """ROC and precision-recall curves per label; labels with one class in ``y_true`` are left out."""
    y_true, y_score = _check_scores(y_true, y_score)
    curves = {}
    for index, label in enumerate(labels):
        column, scores = y_true[:, index], y_score[:, index]
        if column.min() == column.max():
            continue
        fpr, tpr, _ = skm.roc_curve(column, scores)
        precision, recall, _ = skm.precision_recall_curve(column, scores)
        curves[label] = Curves(
            fpr,
            tpr,
            precision,
            recall,
            float(skm.roc_auc_score(column, scores)),
            float(skm.average_precision_score(column, scores)),
        )
    return curves


def operating_point(y_true: np.ndarray, y_score: np.ndarray, *, threshold: float) -> dict[str, float]:
    """Where one label's threshold puts it: counts, TPR (recall), FPR and precision (NaN with no positives called)."""
    column, scores = np.asarray(y_true).astype(int).ravel(), np.asarray(y_score, dtype=np.float64).ravel()
    predicted = scores >= threshold
    tp, fp = int((predicted & (column == 1)).sum()), int((predicted & (column == 0)).sum())
    fn, tn = int((~predicted & (column == 1)).sum()), int((~predicted & (column == 0)).sum())
    return {
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "tpr": tp / (tp + fn) if tp + fn else float("nan"),
        "fpr": fp / (fp + tn) if fp + tn else float("nan"),
        "precision": tp / (tp + fp) if tp + fp else float("nan"),
    }


CELLS = ("TP", "FP", "FN", "TN")


def confusion_cell(y_true: np.ndarray, y_score: np.ndarray, *, threshold: float, cell: str) -> np.ndarray:
    """Indices of one label's examples in a confusion cell, the most confident first.

    FP and TP: highest score first; FN and TN: lowest score first. For the two error
    cells that puts the most confident mistakes on top.
    """
    if cell not in CELLS:
        raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
    column, scores = np.asarray(y_true).astype(int).ravel(), np.asarray(y_score, dtype=np.float64).ravel()
    predicted = scores >= threshold
    actual = column == 1
    member = {
        "TP": predicted & actual,
        "FP": predicted & ~actual,
        "FN": ~predicted & actual,
        "TN": ~predicted & ~actual,
    }
    chosen = np.flatnonzero(member[cell])
    order = np.argsort(-scores[chosen] if cell in ("TP", "FP") else scores[chosen], kind="stable")
    return chosen[order]


THRESHOLD_RULES = ("f1", "precision", "recall")


def choose_thresholds(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    rule: str = "f1",
    target: float | None = None,
    thresholds: np.ndarray = DEFAULT_SWEEP,
    labels: tuple[str, ...] = LABELS,
) -> dict[str, float | None]:
    """One threshold per label, chosen by ``rule`` on the candidate ``thresholds``.

    - ``"f1"``: the F1-best threshold (the lowest one on ties);
    - ``"precision"``: the lowest threshold whose precision reaches ``target`` (so
      recall is as high as that precision allows);
    - ``"recall"``: the highest threshold whose recall reaches ``target`` (so as few
      false positives as that recall allows).

    A label where no candidate reaches the target gets ``None``. Call it on the
    split that chooses thresholds (validation), never on the split you report.
    """
    if rule not in THRESHOLD_RULES:
        raise ValueError(f"rule must be one of {THRESHOLD_RULES}, got {rule!r}")
    if rule == "f1":
        return best_thresholds(y_true, y_score, thresholds=thresholds, labels=labels)
    if target is None or not 0.0 < float(target) <= 1.0:
        raise ValueError(f"rule {rule!r} needs a target in (0, 1], got {target!r}")
    sweep = threshold_sweep(y_true, y_score, thresholds=thresholds, labels=labels)
    chosen: dict[str, float | None] = {}
    for label in labels:
        rows = sweep[(sweep["label"] == label) & (sweep[rule] >= float(target) - 1e-12)]
        if rows.empty:
            chosen[label] = None
        else:
            chosen[label] = float(rows["threshold"].min() if rule == "precision" else rows["threshold"].max())
    return chosen


ORIGIN_METHODS = ("default", "fixed", "manual", *THRESHOLD_RULES)


def threshold_origin(method: str, *, split: str | None = None, target: float | None = None) -> dict:
    """Where a threshold came from, as plain JSON for run bundles: how it was set
    (``ORIGIN_METHODS``), on which split, and the rule's target if it had one."""
    if method not in ORIGIN_METHODS:
        raise ValueError(f"method must be one of {ORIGIN_METHODS}, got {method!r}")
    return {"method": method, "split": split, "target": None if target is None else float(target)}


def describe_origin(origin: object) -> str:
    """A threshold origin in words; anything malformed (an old or foreign bundle) reads as unrecorded."""
    unknown = "origin not recorded"
    if not isinstance(origin, dict) or not isinstance(origin.get("method"), str):
        return unknown
    method, split, target = origin["method"], origin.get("split"), origin.get("target")
    where = f"the {split} split" if split in ("validation", "test") else "an unrecorded split"
    if method in ("precision", "recall"):
        try:
            target = float(target) if isinstance(target, (int, float)) and not isinstance(target, bool) else None
        except OverflowError:  # an integer of hundreds of digits
            target = None
        if target is None or not 0.0 < target <= 1.0:  # NaN fails this too
            return unknown
        extreme = "lowest" if method == "precision" else "highest"
        return f"{extreme} threshold with {method} ≥ {target:.2f} on {where}"
    words = {
        "f1": f"F1-best on {where}",
        "manual": f"set by hand while viewing {where}",
        "default": "the default",
        "fixed": "fixed on the command line",
    }
    return words.get(method, unknown)


def evaluation_summary(
    y_true: np.ndarray,
    y_score: np.ndarray,
    *,
    threshold: Threshold = 0.5,
    labels: tuple[str, ...] = LABELS,
    ranking: pd.DataFrame | None = None,
) -> dict:
    """Plain-JSON metrics for a run bundle: report, summary scores, ROC-AUC and AP per label.

    Pass ``ranking`` (from :func:`ranking_scores`) when it is already computed.
    """
    report = classification_report_frame(y_true, y_score, threshold=threshold, labels=labels)
    ranking = ranking if ranking is not None else ranking_scores(y_true, y_score, labels=labels)
    return {
        "report": report.to_dict(orient="index"),
        "summary": summary_scores(y_true, y_score, threshold=threshold, labels=labels),
        "roc_auc": ranking["roc_auc"].to_dict(),
        "average_precision": ranking["average_precision"].to_dict(),
    }
