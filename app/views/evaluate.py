"""The Evaluate page's panels: thresholds (by hand or chosen on the validation split),
which split chose them and which is scored, and every metric at those thresholds."""

from __future__ import annotations

import dataclasses

import pandas as pd
import streamlit as st

from app import loaders, runs, state
from app.widgets import NUMBER, describe_data
from mlcore import datasets, metrics, plots

SPLIT_LABELS = {
    "test": "Test split (held out: the honest estimate)",
    "validation": "Validation split (where thresholds are tuned)",
}
RULE_LABELS = {"precision": "Precision at least", "recall": "Recall at least"}


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
    """A global slider, one slider per label, and automatic choices made on the validation split."""
    current = state.thresholds(run)
    st.slider(
        "Global threshold (sets every label)",
        0.0,
        1.0,
        step=0.01,
        on_change=_global_changed,
        args=(run,),
        key=state.seed_slider(state.global_threshold_key(run), state.global_threshold(run)),
    )
    for column, label in zip(st.columns(len(run.label_names)), run.label_names, strict=True):
        column.slider(
            f"Threshold for {label}",
            0.0,
            1.0,
            step=0.01,
            on_change=_threshold_changed,
            args=(run, label),
            key=state.seed_slider(state.threshold_key(run, label), current[label]),
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
    columns = st.columns(4 + len(labels))
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


def confusion_grid(scores: runs.SplitScores, thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    matrices = metrics.confusion_matrices(scores.y_true, scores.y_score, threshold=thresholds, labels=labels)
    for column, label, matrix in zip(st.columns(len(labels)), labels, matrices, strict=True):
        column.plotly_chart(plots.confusion_heatmap(matrix, label), key=state.element_key("chart", "confusion", label))


def sweep_grid(evaluation: runs.Evaluation, split: str, thresholds: dict[str, float], labels: tuple[str, ...]) -> None:
    """Precision, recall and F1 against the threshold on the scored split, the validation F1-best marked."""
    sweep, best = evaluation.split(split).sweep, evaluation.best_thresholds
    for column, label in zip(st.columns(len(labels)), labels, strict=True):
        figure = plots.threshold_sweep_figure(sweep, label, threshold=thresholds[label], best=best.get(label))
        column.plotly_chart(figure, key=state.element_key("chart", "sweep", label))


def score_loaded_run(run: runs.Run) -> None:
    """A loaded bundle has no test probabilities yet: score the current data's test split once."""
    config = dataclasses.replace(state.data_config(), image_size=run.image_size)
    st.info(
        f"{run.title} has no evaluation yet. Score it on the validation and test splits of the current data "
        f"({describe_data(config)})."
    )
    if st.button(
        "Score the validation and test splits with this model",
        key=state.widget_key("eval", "score"),
        icon=":material/calculate:",
    ):
        try:
            with st.spinner("Predicting the validation and test splits once…"):
                state.replace_run(run, runs.with_evaluation(run, loaders.load_splits(config)))
        except (datasets.DatasetUnavailable, ValueError, OSError) as error:
            st.error(str(error))
        else:
            st.rerun()
