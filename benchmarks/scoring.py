"""Per-label F1 at 0.5 and ROC-AUC, computed the same way for every pipeline (sklearn only)."""

from __future__ import annotations

import numpy as np


def label_scores(y_true: np.ndarray, y_score: np.ndarray, labels: tuple[str, ...]) -> dict[str, dict[str, float]]:
    from sklearn.metrics import f1_score, roc_auc_score

    y_true = np.asarray(y_true).astype(int)
    y_score = np.asarray(y_score, dtype=np.float64)
    return {
        label: {
            "f1": round(float(f1_score(y_true[:, i], y_score[:, i] >= 0.5, zero_division=0)), 4),
            "auc": round(float(roc_auc_score(y_true[:, i], y_score[:, i])), 4),
        }
        for i, label in enumerate(labels)
    }
