"""Hand-computed expectations on tiny arrays."""

import numpy as np
import pytest

from mlcore import metrics

LABELS = ("dog", "cat", "indoor")
Y_TRUE = np.array([[1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 1, 1]])
Y_SCORE = np.array(
    [
        [0.9, 0.2, 0.6],
        [0.4, 0.7, 0.3],
        [0.6, 0.5, 0.1],
        [0.3, 0.8, 0.4],
    ]
)


def test_binarize_global_and_per_label():
    np.testing.assert_array_equal(
        metrics.binarize(Y_SCORE, threshold=0.5), [[1, 0, 1], [0, 1, 0], [1, 1, 0], [0, 1, 0]]
    )
    np.testing.assert_array_equal(
        metrics.binarize(Y_SCORE, threshold={"dog": 0.65, "cat": 0.75, "indoor": 0.35}, labels=LABELS),
        [[1, 0, 1], [0, 0, 0], [0, 0, 0], [0, 1, 1]],
    )


@pytest.mark.parametrize("bad", [1.5, -0.1, [0.5, 0.5], float("nan")])
def test_bad_thresholds_are_named(bad):
    with pytest.raises(ValueError, match="threshold"):
        metrics.binarize(Y_SCORE, threshold=bad, labels=LABELS)


def test_classification_report_values():
    report = metrics.classification_report_frame(Y_TRUE, Y_SCORE, threshold=0.5, labels=LABELS)
    # dog: TP 2, FP 0, FN 0 -> 1/1/1. cat: TP 2, FP 1 -> P 2/3, R 1, F1 0.8. indoor: TP 1, FN 1 -> 1, 0.5, 2/3.
    assert list(report.index) == ["dog", "cat", "indoor", "micro avg", "macro avg", "weighted avg", "samples avg"]
    assert report.loc["cat", "precision"] == pytest.approx(2 / 3)
    assert report.loc["cat", "f1-score"] == pytest.approx(0.8)
    assert report.loc["indoor", "recall"] == pytest.approx(0.5)
    assert report.loc["indoor", "f1-score"] == pytest.approx(2 / 3)
    # micro: TP 5, FP 1, FN 1 -> 5/6 each
    assert report.loc["micro avg", "precision"] == pytest.approx(5 / 6)
    assert report.loc["micro avg", "recall"] == pytest.approx(5 / 6)
    assert report.loc["macro avg", "f1-score"] == pytest.approx((1 + 0.8 + 2 / 3) / 3)
    assert report["support"].tolist() == [2, 2, 2, 6, 6, 6, 6]


def test_per_label_threshold_changes_the_report():
    strict = metrics.classification_report_frame(
        Y_TRUE, Y_SCORE, threshold={"dog": 0.5, "cat": 0.75, "indoor": 0.35}, labels=LABELS
    )
    assert strict.loc["cat", "precision"] == pytest.approx(1.0)
    assert strict.loc["cat", "recall"] == pytest.approx(0.5)
    assert strict.loc["indoor", "recall"] == pytest.approx(1.0)


def test_confusion_matrices_and_summary():
    matrices = metrics.confusion_matrices(Y_TRUE, Y_SCORE, threshold=0.5, labels=LABELS)
    np.testing.assert_array_equal(matrices[0], [[2, 0], [0, 2]])
    np.testing.assert_array_equal(matrices[1], [[1, 1], [0, 2]])
    np.testing.assert_array_equal(matrices[2], [[2, 0], [1, 1]])
    summary = metrics.summary_scores(Y_TRUE, Y_SCORE, threshold=0.5, labels=LABELS)
    assert summary["hamming_loss"] == pytest.approx(2 / 12)
    assert summary["subset_accuracy"] == pytest.approx(2 / 4)
    assert summary["micro_f1"] == pytest.approx(5 / 6)
    assert summary["macro_f1"] == pytest.approx((1 + 0.8 + 2 / 3) / 3)


def test_ranking_scores_and_single_class_label():
    ranking = metrics.ranking_scores(Y_TRUE, Y_SCORE, labels=LABELS)
    assert ranking.loc["dog", "roc_auc"] == pytest.approx(1.0)
    # cat positives 0.7, 0.8; negatives 0.2, 0.5 -> AUC 1.0; indoor pos 0.6, 0.4 vs neg 0.3, 0.1 -> 1.0
    assert ranking.loc["indoor", "roc_auc"] == pytest.approx(1.0)
    flipped = Y_TRUE.copy()
    flipped[:, 2] = 0
    ranking = metrics.ranking_scores(flipped, Y_SCORE, labels=LABELS)
    assert np.isnan(ranking.loc["indoor", "roc_auc"])
    assert "only negative" in ranking.loc["indoor", "note"]
    mixed_auc = metrics.ranking_scores(Y_TRUE, Y_SCORE[:, [1, 0, 2]], labels=LABELS)
    assert mixed_auc.loc["dog", "roc_auc"] == pytest.approx(0.0)  # cat scores rank dogs last


def test_threshold_sweep_matches_sklearn_and_best_thresholds():
    sweep = metrics.threshold_sweep(Y_TRUE, Y_SCORE, thresholds=np.array([0.25, 0.55, 0.75]), labels=LABELS)
    cat = sweep[sweep.label == "cat"].set_index("threshold")
    # at 0.25: cat predicted for 0.7, 0.5, 0.8 -> TP 2, FP 1
    assert cat.loc[0.25, "precision"] == pytest.approx(2 / 3)
    assert cat.loc[0.55, "f1"] == pytest.approx(1.0)
    assert cat.loc[0.75, "recall"] == pytest.approx(0.5)
    for threshold in (0.25, 0.55, 0.75):
        report = metrics.classification_report_frame(Y_TRUE, Y_SCORE, threshold=threshold, labels=LABELS)
        for label in LABELS:
            row = sweep[(sweep.label == label) & (sweep.threshold == threshold)].iloc[0]
            assert row.f1 == pytest.approx(report.loc[label, "f1-score"])
    best = metrics.best_thresholds(Y_TRUE, Y_SCORE, thresholds=np.array([0.25, 0.55, 0.75]), labels=LABELS)
    assert best == {"dog": 0.55, "cat": 0.55, "indoor": 0.25}


CANDIDATES = np.array([0.25, 0.35, 0.45, 0.55, 0.65, 0.75, 0.85])


def test_threshold_rules_pick_the_hand_computed_thresholds():
    # dog scores 0.9+ 0.4- 0.6+ 0.3-: precision reaches 1 from 0.45; recall stays 1 up to 0.55, 0.5 up to 0.85.
    choose = metrics.choose_thresholds
    assert choose(Y_TRUE, Y_SCORE, rule="precision", target=0.9, thresholds=CANDIDATES, labels=LABELS) == {
        "dog": 0.45,
        "cat": 0.55,
        "indoor": 0.35,
    }
    assert choose(Y_TRUE, Y_SCORE, rule="recall", target=0.9, thresholds=CANDIDATES, labels=LABELS) == {
        "dog": 0.55,
        "cat": 0.65,
        "indoor": 0.35,
    }
    assert choose(Y_TRUE, Y_SCORE, rule="recall", target=0.5, thresholds=CANDIDATES, labels=LABELS) == {
        "dog": 0.85,
        "cat": 0.75,
        "indoor": 0.55,
    }
    assert choose(Y_TRUE, Y_SCORE, rule="f1", thresholds=CANDIDATES, labels=LABELS) == {
        "dog": 0.45,
        "cat": 0.55,
        "indoor": 0.35,
    }
    # Nothing at 0.25 reaches precision 0.9: no threshold rather than a wrong one.
    assert choose(Y_TRUE, Y_SCORE, rule="precision", target=0.9, thresholds=CANDIDATES[:1], labels=LABELS) == {
        "dog": None,
        "cat": None,
        "indoor": None,
    }


@pytest.mark.parametrize(("rule", "target"), [("precision", 0.6), ("precision", 0.8), ("recall", 0.7), ("recall", 0.3)])
def test_threshold_rules_agree_with_sklearn_on_random_scores(rule, target):
    from sklearn.metrics import precision_score, recall_score

    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, size=(200, 3))
    y_score = np.clip(y_true * 0.3 + rng.random((200, 3)) * 0.7, 0, 1)
    chosen = metrics.choose_thresholds(y_true, y_score, rule=rule, target=target, labels=LABELS)
    score = {"precision": precision_score, "recall": recall_score}[rule]
    grid = list(metrics.DEFAULT_SWEEP)
    for index, label in enumerate(LABELS):
        value = chosen[label]
        assert value is not None
        at = score(y_true[:, index], y_score[:, index] >= value, zero_division=0)
        assert at >= target
        neighbour = grid.index(value) + (-1 if rule == "precision" else 1)
        if 0 <= neighbour < len(grid):  # the next candidate the rule would prefer misses the target
            assert score(y_true[:, index], y_score[:, index] >= grid[neighbour], zero_division=0) < target


@pytest.mark.parametrize(("rule", "target"), [("accuracy", 0.9), ("precision", None), ("recall", 1.5)])
def test_bad_threshold_rules_are_named(rule, target):
    with pytest.raises(ValueError, match="rule"):
        metrics.choose_thresholds(Y_TRUE, Y_SCORE, rule=rule, target=target, labels=LABELS)


def test_shape_mismatch_is_reported():
    with pytest.raises(ValueError, match="shape"):
        metrics.classification_report_frame(Y_TRUE[:, :2], Y_SCORE, labels=LABELS)


def test_evaluation_summary_is_plain_json():
    import json

    summary = metrics.evaluation_summary(Y_TRUE, Y_SCORE, threshold=0.5, labels=LABELS)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["report"]["cat"]["f1-score"] == pytest.approx(0.8)
    assert summary["summary"]["hamming_loss"] == pytest.approx(2 / 12)
    assert summary["roc_auc"] == {"dog": 1.0, "cat": 1.0, "indoor": 1.0}


@pytest.mark.parametrize(
    ("origin", "words"),
    [
        (metrics.threshold_origin("f1", split="validation"), "F1-best on the validation split"),
        (
            metrics.threshold_origin("recall", split="validation", target=0.8),
            "highest threshold with recall ≥ 0.80 on the validation split",
        ),
        (metrics.threshold_origin("manual", split="test"), "set by hand while viewing the test split"),
        ({"method": "precision", "target": 10**400, "split": "validation"}, "origin not recorded"),
        ({"method": "precision", "target": float("nan")}, "origin not recorded"),
        ({"method": "recall", "target": -5}, "origin not recorded"),
        ({"method": "f1", "split": ["x"]}, "F1-best on an unrecorded split"),
        ({"method": {"a": 1}}, "origin not recorded"),
        (None, "origin not recorded"),
        ([1, 2], "origin not recorded"),
    ],
)
def test_threshold_origins_in_words_never_raise(origin, words):
    assert metrics.describe_origin(origin) == words


def test_curves_are_sklearns_and_single_class_labels_have_none():
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

    curves = metrics.label_curves(Y_TRUE, Y_SCORE, labels=LABELS)
    fpr, tpr, _ = roc_curve(Y_TRUE[:, 2], Y_SCORE[:, 2])
    np.testing.assert_allclose(curves["indoor"].fpr, fpr)
    np.testing.assert_allclose(curves["indoor"].tpr, tpr)
    precision, recall, _ = precision_recall_curve(Y_TRUE[:, 1], Y_SCORE[:, 1])
    np.testing.assert_allclose(curves["cat"].precision, precision)
    np.testing.assert_allclose(curves["cat"].recall, recall)
    assert curves["dog"].roc_auc == pytest.approx(1.0)
    assert curves["indoor"].average_precision == pytest.approx(average_precision_score(Y_TRUE[:, 2], Y_SCORE[:, 2]))
    one_class = Y_TRUE.copy()
    one_class[:, 0] = 1
    assert "dog" not in metrics.label_curves(one_class, Y_SCORE, labels=LABELS)


def test_the_operating_point_is_the_confusion_matrix_at_the_threshold():
    # indoor at 0.35: scores 0.6+ 0.3- 0.1- 0.4+ -> TP 2, FP 0, FN 0, TN 2.
    point = metrics.operating_point(Y_TRUE[:, 2], Y_SCORE[:, 2], threshold=0.35)
    assert point == {"tp": 2, "fp": 0, "fn": 0, "tn": 2, "tpr": 1.0, "fpr": 0.0, "precision": 1.0}
    nothing = metrics.operating_point(Y_TRUE[:, 2], Y_SCORE[:, 2], threshold=0.99)
    assert nothing["tpr"] == 0.0
    assert np.isnan(nothing["precision"])


def test_a_confusion_cell_lists_its_examples_most_confident_first():
    y_true = np.array([1, 0, 0, 1, 0, 1, 0])
    y_score = np.array([0.9, 0.8, 0.6, 0.2, 0.1, 0.4, 0.55])
    assert metrics.confusion_cell(y_true, y_score, threshold=0.5, cell="FP").tolist() == [1, 2, 6]  # 0.8, 0.6, 0.55
    assert metrics.confusion_cell(y_true, y_score, threshold=0.5, cell="FN").tolist() == [3, 5]  # 0.2, then 0.4
    assert metrics.confusion_cell(y_true, y_score, threshold=0.5, cell="TP").tolist() == [0]
    assert metrics.confusion_cell(y_true, y_score, threshold=0.5, cell="TN").tolist() == [4]
    with pytest.raises(ValueError, match="cell"):
        metrics.confusion_cell(y_true, y_score, threshold=0.5, cell="XX")
