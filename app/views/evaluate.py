"""The Evaluate page's panels: thresholds (by hand or chosen on the validation split),
which split chose them and which is scored, and every metric at those thresholds."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import pandas as pd
import streamlit as st

from app import jobs, loaders, runs, state, workspace
from app.widgets import EXCLUSIVE_NOTE, LABELS_PER_ROW, NUMBER, describe_data, label_columns, plain, read_only_notice
from mlcore import datasets, memory, metrics, plots, predict
from mlcore.config import RANDOM_LABEL

SPLIT_LABELS = {
    "test": "Test split (held out: the honest estimate)",
    "validation": "Validation split (where thresholds are tuned)",
}
RULE_LABELS = {"precision": "Precision at least", "recall": "Recall at least"}
CELL_WORDS = {"TP": "true positives", "FP": "false positives", "FN": "false negatives", "TN": "true negatives"}
GALLERY_PER_ROW = 4
GALLERY_PER_PAGE = 8


def _threshold_changed(run: runs.Run, label: str) -> None:
    state.set_thresholds(run, {label: state.widget_value(state.threshold_key(run, label))}, state.manual_origin())


def _global_changed(run: runs.Run) -> None:
    state.set_global_threshold(run, state.widget_value(state.global_threshold_key(run)), state.manual_origin())


def _split_changed() -> None:
    state.set_eval_split(state.widget_value(state.widget_key("eval", "split")))


def split_picker(evaluation: runs.Evaluation) -> str:
    """Which split the page scores: the test split by default, the validation split for tuning by hand."""
    if evaluation.validation is None:
        return "test"
    sizes = {"test": len(evaluation.test), "validation": len(evaluation.validation)}
    st.radio(
        "Scored split",
        list(SPLIT_LABELS),
        horizontal=True,
        index=list(SPLIT_LABELS).index(state.eval_split()),
        format_func=lambda name: f"{SPLIT_LABELS[name]}, {sizes[name]:,} images",
        on_change=_split_changed,
        key=state.widget_key("eval", "split"),
    )
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
        state.post_eval_notice(
            "warning",
            f"No threshold reaches {rule} {target:.2f} on the validation split for "
            f"{', '.join(missed)}: {'its' if len(missed) == 1 else 'their'} "
            "threshold is unchanged.",
        )
    else:
        state.post_eval_notice("success", f"Thresholds set: {metrics.describe_origin(origin)}.")


def _apply_target_rule(run: runs.Run) -> None:
    """The rule and target as the widgets hold them when the button is clicked (both may change in that run)."""
    rule = state.widget_value(state.widget_key("eval", "rule"))
    _apply_rule(run, rule, float(state.widget_value(state.widget_key("eval", "target"))))


def threshold_controls(run: runs.Run) -> dict[str, float]:
    """A global slider, one slider per label, and automatic choices made on the validation split
    (none for a shared run: it is shown at the thresholds its owner chose)."""
    current = state.thresholds(run)
    if run.read_only:
        read_only_notice(run)
        return current
    st.slider(
        "Global threshold (sets every label)",
        0.0,
        1.0,
        step=0.01,
        on_change=_global_changed,
        args=(run,),
        key=state.seed_widget(state.global_threshold_key(run), state.global_threshold(run)),
    )
    for column, label in zip(label_columns(run.label_names), run.label_names, strict=True):
        column.slider(
            f"Threshold for {label}",
            0.0,
            1.0,
            step=0.01,
            on_change=_threshold_changed,
            args=(run, label),
            key=state.seed_widget(state.threshold_key(run, label), current[label]),
        )
    automatic_thresholds(run)
    if notice := state.pop_eval_notice():
        {"success": st.success, "warning": st.warning}[notice[0]](notice[1])
    return state.thresholds(run)


def automatic_thresholds(run: runs.Run) -> None:
    """F1-best, or a precision or recall target, per label, always chosen on the validation split."""
    default = metrics.threshold_origin("default")
    if run.evaluation.validation is None:
        st.caption("This run has no validation split, so thresholds cannot be chosen automatically.")
        st.button(
            "Reset all to 0.50",
            on_click=state.set_global_threshold,
            args=(run, 0.5, default),
            key=state.widget_key("eval", "reset"),
        )
        return
    best = run.evaluation.best_thresholds
    first, second, third, fourth, fifth = st.columns([3, 2, 2, 2, 2], vertical_alignment="bottom")
    first.button(
        "F1-best per label",
        on_click=_apply_rule,
        args=(run, "f1", None),
        icon=":material/auto_fix_high:",
        key=state.widget_key("eval", "best"),
        help="Chosen on the validation split: " + ", ".join(f"{k} {v:.2f}" for k, v in best.items()),
    )
    second.selectbox(
        "Or by a target", list(RULE_LABELS), format_func=RULE_LABELS.get, key=state.widget_key("eval", "rule")
    )
    third.number_input(
        "Target",
        min_value=0.05,
        max_value=1.0,
        value=0.9,
        step=0.05,
        format="%.2f",
        key=state.widget_key("eval", "target"),
    )
    fourth.button(
        "Set by target",
        on_click=_apply_target_rule,
        args=(run,),
        key=state.widget_key("eval", "apply_rule"),
        icon=":material/target:",
        help="Precision: the lowest threshold whose validation precision reaches the target (as much "
        "recall as that precision allows). Recall: the highest threshold whose validation recall "
        "reaches it (as few false positives as that recall allows).",
    )
    fifth.button(
        "Reset all to 0.50",
        on_click=state.set_global_threshold,
        args=(run, 0.5, default),
        key=state.widget_key("eval", "reset"),
    )


def provenance(run: runs.Run, split: str) -> None:
    """Say, in plain words, which split chose each threshold and which split is being scored."""
    origins, current = state.threshold_origins(run), state.thresholds(run)
    chosen = " · ".join(
        f"**{label}** {current[label]:.2f} ({metrics.describe_origin(origins.get(label))})" for label in run.label_names
    )
    evaluation = run.evaluation
    if split == "test":
        scored = (
            f"Scored on the **test split**: {len(evaluation.test):,} images used neither to train the model "
            "nor to choose its thresholds."
        )
    else:
        scored = (
            f"Scored on the **validation split** ({len(evaluation.validation):,} images): tune thresholds "
            "here, then read the honest figures on the test split."
        )
    st.markdown(f"Thresholds: {chosen}.  \n{scored}")
    by_hand_on_test = [
        label
        for label in run.label_names
        if isinstance(origins.get(label), dict)
        and origins[label].get("method") == "manual"
        and origins[label].get("split") == "test"
    ]
    if by_hand_on_test and split == "test":
        st.caption(
            f":orange[{', '.join(by_hand_on_test)}: set by hand while looking at the test split, so the "
            "test figures for it are optimistic. Tune on the validation split instead.]"
        )


def summary_metrics(scores: runs.SplitScores, thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    values = metrics.summary_scores(scores.y_true, scores.y_score, threshold=thresholds, labels=labels)
    wide = len(labels) <= LABELS_PER_ROW
    columns = st.columns(4 + len(labels)) if wide else st.columns(4) + label_columns(labels)
    columns[0].metric("Micro F1", f"{values['micro_f1']:.3f}")
    columns[1].metric("Macro F1", f"{values['macro_f1']:.3f}")
    columns[2].metric(
        "Hamming loss", f"{values['hamming_loss']:.3f}", help="Share of wrong label decisions; lower is better."
    )
    columns[3].metric(
        "Subset accuracy", f"{values['subset_accuracy']:.3f}", help="Share of images with every label right."
    )
    for column, label in zip(columns[4:], labels, strict=True):
        auc, note = scores.ranking.loc[label, "roc_auc"], scores.ranking.loc[label, "note"]
        hint = "Random by design: about 0.5 is the honest result." if label == "indoor" else "Threshold-free."
        column.metric(f"ROC-AUC {label}", "n/a" if pd.isna(auc) else f"{auc:.3f}", help=note or hint)


def report_table(scores: runs.SplitScores, thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    """sklearn's classification report, formatted as sklearn prints it."""
    frame = metrics.classification_report_frame(scores.y_true, scores.y_score, threshold=thresholds, labels=labels)
    st.dataframe(
        frame,
        key=state.element_key("table", "report"),
        column_config={
            "precision": NUMBER(format="%.2f"),
            "recall": NUMBER(format="%.2f"),
            "f1-score": NUMBER(format="%.2f"),
            "support": NUMBER(format="%d"),
        },
    )


def _cell_clicked(label: str) -> None:
    """A click on a confusion heatmap's cell opens that cell in the error gallery."""
    chosen = state.widget_value(state.element_key("chart", "confusion", label)) or {}
    for point in chosen.get("selection", {}).get("points", []):
        cell = point.get("customdata")
        cell = cell[0] if isinstance(cell, list) and cell else cell
        if cell in metrics.CELLS:
            state.set_gallery(label=label, cell=cell)
            return


def confusion_grid(run: runs.Run, split: str, thresholds: dict[str, float]) -> None:
    """One heatmap per label; clicking a cell shows its images in the error gallery below."""
    scores, labels = run.evaluation.split(split), run.label_names
    matrices = metrics.confusion_matrices(scores.y_true, scores.y_score, threshold=thresholds, labels=labels)
    for column, label, matrix in zip(label_columns(labels), labels, matrices, strict=True):
        figure = state.figure(
            (run.id, split, "confusion", label), lambda m=matrix, n=label: plots.confusion_heatmap(m, n, clickable=True)
        )
        column.plotly_chart(
            plots.update_confusion(figure, matrix),
            key=state.element_key("chart", "confusion", label),
            on_select=functools.partial(_cell_clicked, label),
            selection_mode="points",
        )
    st.caption("Click a cell to see its images in the error gallery.")


def _separation(scores: runs.SplitScores, label: str) -> str:
    """One line on what a label's two score distributions say."""
    auc = scores.ranking.loc[label, "roc_auc"]
    if pd.isna(auc):
        return f"This split has only one class for {label}: there is nothing to separate."
    if 0.4 <= auc <= 0.6:
        why = " It is random by design: no image shows it." if label == RANDOM_LABEL else ""
        return (
            f"The two groups lie on top of each other (ROC-AUC {auc:.2f}): no threshold separates them, "
            f"so the network has not learned {label}.{why}"
        )
    return (
        f"Images with {label} score {'higher' if auc > 0.5 else 'lower'} than those without (ROC-AUC {auc:.2f}); "
        "the dashed line is the threshold."
    )


def distributions_grid(run: runs.Run, split: str, thresholds: dict[str, float]) -> None:
    """Per label, the scores of images with and without it, and the threshold between them."""
    scores, labels = run.evaluation.split(split), run.label_names
    for column, (index, label) in zip(label_columns(labels), enumerate(labels), strict=True):
        figure = state.figure(
            (run.id, split, "distribution", label),
            lambda i=index, n=label: plots.score_distribution_figure(
                scores.y_true[:, i], scores.y_score[:, i], n, threshold=thresholds[n]
            ),
        )
        figure = plots.move_threshold(figure, thresholds[label])
        column.plotly_chart(figure, key=state.element_key("chart", "distribution", label))
        column.caption(_separation(scores, label))


def curves_grid(run: runs.Run, split: str, thresholds: dict[str, float]) -> None:
    """Per label, the ROC and precision-recall curves with the current operating point on each."""
    scores, labels = run.evaluation.split(split), run.label_names
    for kind in ("roc", "pr"):
        for column, (index, label) in zip(label_columns(labels), enumerate(labels), strict=True):
            curves = scores.curves.get(label)
            if curves is None:
                column.caption(f"{label}: one class only in this split, so no curve.")
                continue
            point = metrics.operating_point(
                scores.y_true[:, index], scores.y_score[:, index], threshold=thresholds[label]
            )
            xy = (point["fpr"], point["tpr"]) if kind == "roc" else (point["tpr"], point["precision"])
            figure = state.figure(
                (run.id, split, kind, label), lambda k=kind, c=curves, n=label, p=xy: _curve(k, c, n, p)
            )
            figure = plots.move_operating_point(figure, xy, threshold=thresholds[label])
            column.plotly_chart(figure, key=state.element_key("chart", kind, label))


def _curve(kind: str, curves: metrics.Curves, label: str, point: tuple[float, float]):
    x, y, area = {
        "roc": (curves.fpr, curves.tpr, curves.roc_auc),
        "pr": (curves.recall, curves.precision, curves.average_precision),
    }[kind]
    return plots.curve_figure(kind, x, y, area, label, point=point, threshold=0.5)


def _pictures_private(run: runs.Run) -> bool:
    """Another person's uploaded pictures stay theirs: a share link shows numbers, not images."""
    return run.source == "shared" and run.data_config is not None and run.data_config.source == "zip"


def _gallery_images(run: runs.Run, split: str):
    """The scored split's images and targets, from the same cached data the run was scored on."""
    if run.data_config is None:
        return None
    if _pictures_private(run):
        return None
    try:
        splits = loaders.load_splits(run.data_config)
    except (datasets.DatasetUnavailable, ValueError, OSError):
        return None
    part, scored = (splits.validation if split == "validation" else splits.test), run.evaluation.split(split)
    same = len(part) == len(scored) and np.array_equal(part.targets, scored.y_true)
    return part if same else None  # other data than the run was scored on: never mislabel an image


def error_gallery(run: runs.Run, split: str, thresholds: dict[str, float]) -> None:
    """Per label, the images in one confusion cell, most confident mistakes first, a page at a time."""
    scores, labels = run.evaluation.split(split), run.label_names
    part = _gallery_images(run, split)
    if part is None:
        st.info(
            "This run was trained on pictures its owner uploaded; they stay private, so the gallery is not shown."
            if _pictures_private(run)
            else "The images this run was scored on are not loaded here, so the gallery cannot show them."
        )
        return
    chosen = state.gallery()
    chosen["cell"] = chosen["cell"] if chosen["cell"] in metrics.CELLS else "FP"
    label = chosen["label"] if chosen["label"] in labels else labels[0]
    index = labels.index(label)
    column, score = scores.y_true[:, index], scores.y_score[:, index]
    counts = {
        cell: len(metrics.confusion_cell(column, score, threshold=thresholds[label], cell=cell))
        for cell in metrics.CELLS
    }
    left, right = st.columns([2, 3])
    left.radio(
        "Label",
        labels,
        horizontal=True,
        on_change=_gallery_changed,
        args=("label",),
        key=state.seed_widget(state.widget_key("gallery", "label"), label),
    )
    right.radio(
        "Cell",
        metrics.CELLS,
        horizontal=True,
        on_change=_gallery_changed,
        args=("cell",),
        # Static option labels: a label that changed with the threshold would change the widget's options.
        format_func=lambda cell: f"{cell}: {CELL_WORDS[cell]}",
        key=state.seed_widget(state.widget_key("gallery", "cell"), chosen["cell"]),
    )
    st.caption(
        f"At threshold {thresholds[label]:.2f} for {label}: "
        + " · ".join(f"{cell} {counts[cell]:,}" for cell in metrics.CELLS)
    )
    members = metrics.confusion_cell(column, score, threshold=thresholds[label], cell=chosen["cell"])
    if not len(members):
        st.caption(f"No {CELL_WORDS[chosen['cell']]} for {label} at threshold {thresholds[label]:.2f}.")
        return
    pages = -(-len(members) // GALLERY_PER_PAGE)
    page = min(chosen["page"], pages)  # a threshold move can shrink the cell
    page_key = state.widget_key("gallery", "page")
    state.move_widget(page_key, page)
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    left.number_input(
        f"Page (of {pages:,})",
        min_value=1,
        max_value=pages,
        step=1,
        on_change=_gallery_changed,
        args=("page",),
        key=page_key,
    )
    explain_them = right.toggle(
        f"Grad-CAM: where the network found evidence for {label}",
        key=state.widget_key("gallery", "cam"),
        help="Computed for the images on this page only, when switched on. " + EXCLUSIVE_NOTE,
    )
    shown = members[(page - 1) * GALLERY_PER_PAGE : page * GALLERY_PER_PAGE]
    pictures = part.images[shown]
    if explain_them and workspace.ensure_model(run):
        from mlcore import explain  # deferred: importing TensorFlow costs seconds

        heat = explain.gradcam(run.model, pictures, index)
        pictures = [explain.overlay(picture, cam) for picture, cam in zip(pictures, heat, strict=True)]
    captions = [f"p({label}) = {score[i]:.2f} · true: {loaders.tags(scores.y_true[i], labels)}" for i in shown]
    st.caption(
        f"{len(members):,} {CELL_WORDS[chosen['cell']]} for {label} on the {split} split, "
        f"{'most confident first' if chosen['cell'] in ('TP', 'FP') else 'lowest score first'}."
    )
    for start in range(0, len(shown), GALLERY_PER_ROW):
        row = zip(
            st.columns(GALLERY_PER_ROW),
            pictures[start : start + GALLERY_PER_ROW],
            captions[start : start + GALLERY_PER_ROW],
            strict=False,
        )
        for column, picture, caption in row:
            column.image(picture, caption=caption, width="stretch")


def _gallery_changed(name: str) -> None:
    state.set_gallery(**{name: state.widget_value(state.widget_key("gallery", name))})


def sweep_grid(run: runs.Run, split: str, thresholds: dict[str, float]) -> None:
    """Precision, recall and F1 against the threshold on the scored split, the validation F1-best marked."""
    evaluation, labels = run.evaluation, run.label_names
    sweep, best = evaluation.split(split).sweep, evaluation.best_thresholds
    for column, label in zip(label_columns(labels), labels, strict=True):
        figure = state.figure(
            (run.id, split, "sweep", label),
            lambda n=label: plots.threshold_sweep_figure(sweep, n, threshold=thresholds[n], best=best.get(n)),
        )
        column.plotly_chart(
            plots.move_threshold(figure, thresholds[label]), key=state.element_key("chart", "sweep", label)
        )


def score_loaded_run(run: runs.Run) -> None:
    """A loaded bundle has no test probabilities yet: score the current data's test split once."""
    config = dataclasses.replace(state.data_config(), image_size=run.image_size)
    st.info(
        f"{plain(run.label)} has no evaluation yet. Score it on the validation and test splits of the current data "
        f"({describe_data(config)})."
    )
    if st.button(
        "Score the validation and test splits with this model",
        key=state.widget_key("eval", "score"),
        icon=":material/calculate:",
    ) and workspace.ensure_model(run):
        try:
            needed = memory.scoring_bytes(run.model, predict.PREDICT_CHUNK)
            with (
                jobs.GUARD.hold("Scoring the validation and test splits", needed),
                st.spinner("Predicting the validation and test splits once…"),
            ):
                scored = runs.with_evaluation(run, loaders.load_splits(config), config)
        except (datasets.DatasetUnavailable, ValueError, OSError, memory.MemoryBudgetExceeded) as error:
            st.error(str(error))
        else:
            state.replace_run(run, scored)
            workspace.keep_scores(scored)
            st.rerun()


def threshold_panels(run: runs.Run, split: str, thresholds: dict[str, float]) -> None:
    """Everything drawn at the current thresholds for the scored split, section by section."""
    scores, labels = run.evaluation.split(split), run.label_names
    summary_metrics(scores, thresholds, labels)
    sections = {
        "Classification report": lambda: report_table(scores, thresholds, labels),
        "Confusion matrices": lambda: confusion_grid(run, split, thresholds),
        "Error gallery": lambda: error_gallery(run, split, thresholds),
        "Score distributions": lambda: distributions_grid(run, split, thresholds),
        "ROC and precision-recall curves": lambda: curves_grid(run, split, thresholds),
        "Precision, recall and F1 against the threshold": lambda: sweep_grid(run, split, thresholds),
    }
    for title, draw in sections.items():
        st.subheader(title)
        draw()
