"""The Evaluate page: thresholds chosen on the validation split drive every number shown for the test split,
all from the stored probabilities."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app import state
from mlcore import datasets, metrics, predict

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def scores(trained_app):
    """The test split's targets and the trained model's probabilities, computed here with mlcore."""
    run = state.trained_run(trained_app.session_state)
    splits = datasets.load_splits(run.data_config)
    return splits.test.targets, predict.predict_proba(run.model, splits.test.images), splits.label_names


@pytest.fixture(scope="module")
def validation_scores(trained_app):
    """The same for the validation split, the one that chooses thresholds."""
    run = state.trained_run(trained_app.session_state)
    splits = datasets.load_splits(run.data_config)
    return splits.validation.targets, predict.predict_proba(run.model, splits.validation.images), splits.label_names


@pytest.fixture
def evaluate(trained_app, ui):
    at = ui.open_page(trained_app, "evaluate")
    at.radio(key=ui.key(at, "eval", "split")).set_value("test")
    at.button(key=ui.key(at, "eval", "reset")).click().run()
    assert not at.exception
    return at


def shown_report(at) -> pd.DataFrame:
    return at.dataframe[0].value  # the only table on the page


def expected_report(scores, threshold) -> pd.DataFrame:
    y_true, y_score, labels = scores
    return metrics.classification_report_frame(y_true, y_score, threshold=threshold, labels=labels)


def label_slider(at, label):
    return next(s for s in at.slider if s.label == f"Threshold for {label}")


def test_the_report_is_mlcores_and_follows_the_global_threshold(evaluate, scores):
    at = evaluate
    pd.testing.assert_frame_equal(shown_report(at), expected_report(scores, 0.5), atol=1e-9)
    assert list(shown_report(at).index) == [
        "dog",
        "cat",
        "indoor",
        "micro avg",
        "macro avg",
        "weighted avg",
        "samples avg",
    ]

    moved = next(
        t
        for t in (0.3, 0.7, 0.1, 0.9, 0.02, 0.98)
        if not expected_report(scores, t).equals(expected_report(scores, 0.5))
    )
    at.slider(key=next(s.key for s in at.slider if s.label.startswith("Global"))).set_value(moved).run()

    assert not at.exception
    pd.testing.assert_frame_equal(shown_report(at), expected_report(scores, moved), atol=1e-9)
    assert not shown_report(at).equals(expected_report(scores, 0.5))
    assert all(label_slider(at, label).value == pytest.approx(moved) for label in scores[2])


def test_per_label_thresholds_drive_the_report_and_summary(evaluate, scores):
    at = evaluate
    label_slider(at, "dog").set_value(0.35).run()
    label_slider(at, "indoor").set_value(0.8).run()
    thresholds = {"dog": 0.35, "cat": 0.5, "indoor": 0.8}

    pd.testing.assert_frame_equal(shown_report(at), expected_report(scores, thresholds), atol=1e-9)
    y_true, y_score, labels = scores
    summary = metrics.summary_scores(y_true, y_score, threshold=thresholds, labels=labels)
    shown = {metric.label: metric.value for metric in at.metric}
    assert shown["Micro F1"] == f"{summary['micro_f1']:.3f}"
    assert shown["Macro F1"] == f"{summary['macro_f1']:.3f}"
    assert shown["Hamming loss"] == f"{summary['hamming_loss']:.3f}"
    assert shown["Subset accuracy"] == f"{summary['subset_accuracy']:.3f}"
    auc = metrics.ranking_scores(y_true, y_score, labels=labels)["roc_auc"]
    assert shown["ROC-AUC dog"] == f"{auc['dog']:.3f}"


def test_confusion_heatmaps_name_and_count_every_cell(evaluate, scores, ui):
    at = evaluate
    y_true, y_score, labels = scores
    matrices = metrics.confusion_matrices(y_true, y_score, threshold=0.5, labels=labels)
    heatmaps = [figure for figure in ui.plotly_figures(at) if figure["data"][0]["type"] == "heatmap"]
    assert [figure["layout"]["title"]["text"] for figure in heatmaps] == list(labels)
    for figure, matrix in zip(heatmaps, matrices, strict=True):
        text = figure["data"][0]["text"]
        for (row, column), name in np.ndenumerate(np.array([["TN", "FP"], ["FN", "TP"]])):
            cell = text[row][column]
            assert cell.startswith(f"<b>{name}</b><br>{matrix[row, column]:,}<br>")
            assert cell.endswith(f"{matrix[row, column] / matrix.sum() * 100:.1f}%")


def shown_markdown(at) -> str:
    return "\n".join(block.value for block in at.markdown)


def test_f1_best_is_chosen_on_the_validation_split_and_judged_on_the_test_split(
    evaluate, scores, validation_scores, ui
):
    at = evaluate
    y_val, p_val, labels = validation_scores
    best = metrics.best_thresholds(y_val, p_val, labels=labels)
    leaked = metrics.best_thresholds(scores[0], scores[1], labels=labels)
    assert best != leaked, "the demo run should make the two choices differ, or this test proves nothing"
    at.button(key=ui.key(at, "eval", "best")).click().run()

    assert {label: label_slider(at, label).value for label in labels} == pytest.approx(best)
    pd.testing.assert_frame_equal(shown_report(at), expected_report(scores, best), atol=1e-9)
    text = shown_markdown(at)
    assert all(f"**{label}** {best[label]:.2f} (F1-best on the validation split)" in text for label in labels)
    assert "Scored on the **test split**" in text
    sweeps = [
        figure
        for figure in ui.plotly_figures(at)
        if figure["data"][0].get("mode") == "lines"
        and figure["layout"].get("xaxis", {}).get("title", {}).get("text") == "threshold"
    ]
    assert len(sweeps) == len(labels)
    test_sweep = metrics.threshold_sweep(scores[0], scores[1], labels=labels)
    for figure, label in zip(sweeps, labels, strict=True):
        [marked_best] = (shape["x0"] for shape in figure["layout"]["shapes"])
        assert ui.threshold_mark(figure) == pytest.approx(best[label])
        assert marked_best == pytest.approx(best[label])
        rows = test_sweep[test_sweep.label == label]
        assert ui.array(figure["data"][2]["y"]) == pytest.approx(rows["f1"].to_numpy()), "the test split's curve"


def test_a_precision_target_sets_the_lowest_threshold_that_reaches_it_on_validation(
    evaluate, scores, validation_scores, ui
):
    at = evaluate
    y_val, p_val, labels = validation_scores
    target = 0.75
    chosen = metrics.choose_thresholds(y_val, p_val, rule="precision", target=target, labels=labels)
    at.selectbox(key=ui.key(at, "eval", "rule")).set_value("precision")
    at.number_input(key=ui.key(at, "eval", "target")).set_value(target)
    at.button(key=ui.key(at, "eval", "apply_rule")).click().run()

    assert not at.exception
    expected = {label: (value if value is not None else 0.5) for label, value in chosen.items()}
    assert {label: label_slider(at, label).value for label in labels} == pytest.approx(expected)
    pd.testing.assert_frame_equal(shown_report(at), expected_report(scores, expected), atol=1e-9)
    from sklearn.metrics import precision_score

    for index, label in enumerate(labels):
        if chosen[label] is not None:
            assert precision_score(y_val[:, index], p_val[:, index] >= chosen[label]) >= target
    missed = [label for label, value in chosen.items() if value is None]
    notices = [element.value for element in (*at.warning, *at.success)]
    if missed:
        assert any(
            "No threshold reaches precision 0.75" in notice and all(m in notice for m in missed) for notice in notices
        )
    else:
        assert any("lowest threshold with precision ≥ 0.75 on the validation split" in n for n in notices)


def test_the_split_switch_scores_the_validation_split(evaluate, scores, validation_scores, ui):
    at = evaluate
    at.radio(key=ui.key(at, "eval", "split")).set_value("validation").run()
    assert not at.exception
    pd.testing.assert_frame_equal(shown_report(at), expected_report(validation_scores, 0.5), atol=1e-9)
    assert shown_report(at).loc["micro avg", "support"] == validation_scores[0].sum()
    assert "Scored on the **validation split**" in shown_markdown(at)
    label_slider(at, "dog").set_value(0.3).run()
    at.radio(key=ui.key(at, "eval", "split")).set_value("test").run()
    pd.testing.assert_frame_equal(
        shown_report(at), expected_report(scores, {"dog": 0.3, "cat": 0.5, "indoor": 0.5}), atol=1e-9
    )
    assert "**dog** 0.30 (set by hand while viewing the validation split)" in shown_markdown(at)


def test_thresholds_survive_a_page_switch_and_reach_the_predict_page(evaluate, ui):
    at = evaluate
    label_slider(at, "cat").set_value(0.42).run()
    ui.open_page(at, "predict")
    assert any("cat 0.42" in caption.value for caption in at.caption)
    ui.open_page(at, "evaluate")
    assert label_slider(at, "cat").value == pytest.approx(0.42)


def test_without_a_model_the_page_says_how_to_get_one(ui):
    at = ui.open_page(ui.new_app(), "evaluate")
    assert not at.exception
    assert any("Train one first" in info.value for info in at.info)


def test_moving_thresholds_never_calls_the_model(evaluate, monkeypatch, ui):
    def refuse(*args, **kwargs):
        raise AssertionError("the Evaluate page called the model")

    monkeypatch.setattr(predict, "predict_proba", refuse)
    at = evaluate
    for value in (0.2, 0.6):
        at.slider(key=next(s.key for s in at.slider if s.label.startswith("Global"))).set_value(value).run()
        assert not at.exception
    at.button(key=ui.key(at, "eval", "best")).click().run()
    assert not at.exception


def global_slider(at):
    return at.slider(key=next(s.key for s in at.slider if s.label.startswith("Global")))


def test_score_distributions_are_histograms_of_the_test_scores_split_by_the_label(evaluate, scores, ui):
    at = evaluate
    y_true, y_score, labels = scores
    global_slider(at).set_value(0.4).run()
    bins = np.linspace(0, 1, 21)
    for index, label in enumerate(labels):
        figure = next(
            f
            for f in ui.plotly_figures(at)
            if f["layout"].get("barmode") == "overlay" and f["layout"]["title"]["text"] == label
        )
        has = y_true[:, index] == 1
        assert ui.array(figure["data"][0]["y"]).tolist() == np.histogram(y_score[has, index], bins)[0].tolist()
        assert ui.array(figure["data"][1]["y"]).tolist() == np.histogram(y_score[~has, index], bins)[0].tolist()
        assert ui.threshold_mark(figure) == pytest.approx(0.4)
    from sklearn.metrics import roc_auc_score

    indoor_auc = roc_auc_score(y_true[:, 2], y_score[:, 2])
    said = [caption.value for caption in at.caption if "ROC-AUC" in caption.value]
    expected = "lie on top of each other" if 0.4 <= indoor_auc <= 0.6 else "than those without"
    assert any(f"ROC-AUC {indoor_auc:.2f}" in line and expected in line for line in said)


def test_roc_and_pr_curves_are_sklearns_and_the_operating_point_follows_the_threshold(evaluate, scores, ui):
    from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score, roc_curve

    at = evaluate
    y_true, y_score, labels = scores
    for threshold in (0.3, 0.6):
        global_slider(at).set_value(threshold).run()
        for index, label in enumerate(labels):
            column, score = y_true[:, index], y_score[:, index]
            roc = ui.figure_titled(at, f"{label}: ROC")
            fpr, tpr, _ = roc_curve(column, score)
            assert ui.array(roc["data"][0]["x"]) == pytest.approx(fpr)
            assert ui.array(roc["data"][0]["y"]) == pytest.approx(tpr)
            assert f"AUC {roc_auc_score(column, score):.3f}" in roc["data"][0]["name"]
            (tn, fp), (fn, tp) = metrics.confusion_matrices(y_true, y_score, threshold=threshold, labels=labels)[index]
            point = roc["data"][-1]
            assert (point["x"][0], point["y"][0]) == pytest.approx((fp / (fp + tn), tp / (tp + fn)))
            assert point["name"] == f"threshold {threshold:.2f}"
            pr = ui.figure_titled(at, f"{label}: precision-recall")
            precision, recall, _ = precision_recall_curve(column, score)
            assert ui.array(pr["data"][0]["x"]) == pytest.approx(recall)
            assert f"AP {average_precision_score(column, score):.3f}" in pr["data"][0]["name"]
            if tp + fp:
                assert (pr["data"][-1]["x"][0], pr["data"][-1]["y"][0]) == pytest.approx(
                    (tp / (tp + fn), tp / (tp + fp))
                )


def test_the_error_gallery_shows_a_cells_images_most_confident_first_and_follows_the_threshold(
    evaluate, scores, trained_app, ui
):
    at = evaluate
    y_true, y_score, labels = scores
    at.radio(key=ui.key(at, "gallery", "label")).set_value("dog").run()
    for threshold in (0.5, 0.2):
        global_slider(at).set_value(threshold).run()
        for cell in ("FP", "TN", "TP", "FN"):
            at.radio(key=ui.key(at, "gallery", "cell")).set_value(cell).run()
            assert not at.exception
            expected = metrics.confusion_cell(y_true[:, 0], y_score[:, 0], threshold=threshold, cell=cell)
            captions = [c for image in at.image for c in image.captions if c.startswith("p(dog)")]
            assert len(captions) == min(8, len(expected)), (cell, threshold)
            shown = [float(c.split("=")[1].split("·")[0]) for c in captions]
            assert shown == pytest.approx([round(y_score[i, 0], 2) for i in expected[:8]], abs=0.006)
            assert shown == sorted(shown, reverse=cell in ("TP", "FP"))
    at.radio(key=ui.key(at, "gallery", "cell")).set_value("TP").run()

    def pictures():
        return [(image.value, image.captions) for image in at.image if image.captions[0].startswith("p(dog)")]

    plain = pictures()
    at.toggle(key=ui.key(at, "gallery", "cam")).set_value(True).run()
    assert not at.exception
    overlaid = pictures()
    assert [captions for _, captions in overlaid] == [captions for _, captions in plain]
    assert all(after != before for (after, _), (before, _) in zip(overlaid, plain, strict=True)), "new pictures"
    at.toggle(key=ui.key(at, "gallery", "cam")).set_value(False).run()
    assert pictures() == plain
