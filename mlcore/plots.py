"""Plotly figure builders for the dashboard: pure functions from numbers to figures.

Nothing here knows about Streamlit or Keras. Every figure uses one colour per
label (:func:`label_color`) and one per split or series, so a label looks the
same on every chart of the app.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

LABEL_COLORS = {"dog": "#d9822b", "cat": "#5b6fd6", "indoor": "#2a9d8f"}
# Twenty labels at most: each other label gets its own colour (Tableau 20 without the three above).
FALLBACK_COLORS = (
    "#8e6bbf", "#c05780", "#6c8d3e", "#b8860b", "#4f8fbf", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
    "#ff9da7", "#9c755f", "#bab0ac", "#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
SPLIT_COLORS = {"train": "#4c78a8", "validation": "#f58518", "test": "#54a24b"}
SERIES_COLORS = {"train": "#4c78a8", "validation": "#f58518"}
SWEEP_COLORS = {"precision": "#4c78a8", "recall": "#e45756", "f1": "#54a24b"}
CURVE_METRICS = (("loss", "Loss"), ("binary_accuracy", "Binary accuracy"), ("auc", "AUC"))
CELL_NAMES = (("TN", "FP"), ("FN", "TP"))
_MARGIN = dict(l=10, r=10, t=40, b=10)


def label_color(label: str, index: int = 0) -> str:
    """The app-wide colour of a label; unknown labels get a stable fallback by position."""
    return LABEL_COLORS.get(label, FALLBACK_COLORS[index % len(FALLBACK_COLORS)])


def _add_epochs(figure: go.Figure, values: Sequence[float], **trace) -> None:
    """One value per epoch as a line with markers, epochs counted from 1 (nothing when empty)."""
    if len(values):
        figure.add_scatter(x=list(range(1, len(values) + 1)), y=list(values), mode="lines+markers", **trace)


RUN_COLORS = ("#4c78a8", "#e45756", "#54a24b", "#b279a2", "#f58518", "#72b7b2", "#9d755d", "#eeca3b")


def compare_curves(histories: Mapping[str, Mapping[str, Sequence[float]]], *, metric: str = "loss") -> go.Figure:
    """One metric's training curves of several runs on the same axes: a colour per run,
    validation solid, training dashed. ``histories`` maps a run's name to its per-epoch history."""
    figure = go.Figure()
    for index, (name, history) in enumerate(histories.items()):
        color = RUN_COLORS[index % len(RUN_COLORS)]
        for series, key, dash in (("validation", f"val_{metric}", "solid"), ("train", metric, "dash")):
            _add_epochs(
                figure,
                history.get(key, []),
                name=f"{name} · {series}",
                meta=name,
                legendgroup=name,
                line=dict(color=color, dash=dash),
            )
    title = dict(CURVE_METRICS).get(metric, metric)
    figure.update_layout(
        title=f"{title} per epoch: validation solid, training dashed",
        xaxis_title="epoch",
        yaxis_title=title,
        margin=_MARGIN,
        height=380,
        legend=dict(orientation="h", y=-0.2),
    )
    figure.update_xaxes(rangemode="tozero")
    return figure


def split_sizes_figure(sizes: Mapping[str, int]) -> go.Figure:
    """One bar per split with its image count."""
    names = list(sizes)
    figure = go.Figure(
        go.Bar(
            x=names,
            y=[sizes[name] for name in names],
            text=[f"{sizes[name]:,}" for name in names],
            textposition="auto",
            marker_color=[SPLIT_COLORS.get(name, "#888") for name in names],
            hovertemplate="%{x}: %{y:,} images<extra></extra>",
        )
    )
    figure.update_layout(title="Images per split", yaxis_title="images", margin=_MARGIN, height=320)
    return figure


def label_counts_figure(counts: pd.DataFrame) -> go.Figure:
    """Grouped bars of positive examples per label (columns) in each split (index)."""
    figure = go.Figure()
    for index, label in enumerate(counts.columns):
        figure.add_bar(
            name=label,
            x=list(counts.index),
            y=counts[label].tolist(),
            marker_color=label_color(label, index),
            text=counts[label].tolist(),
            textposition="auto",
            hovertemplate=f"{label}: %{{y:,}} in %{{x}}<extra></extra>",
        )
    figure.update_layout(
        title="Images tagged with each label",
        barmode="group",
        yaxis_title="images",
        legend_title_text="label",
        margin=_MARGIN,
        height=320,
    )
    return figure


def training_curves(
    history: Mapping[str, Sequence[float]], *, live: Mapping[str, Sequence[float]] | None = None
) -> go.Figure:
    """Loss, binary accuracy and AUC per epoch for train and validation.

    ``history`` holds per-epoch values (``loss``, ``val_loss``, ...). ``live``
    optionally adds the running training values within epochs: a key ``x``
    with fractional epochs plus one list per metric.
    """
    figure = make_subplots(rows=1, cols=len(CURVE_METRICS), subplot_titles=[title for _, title in CURVE_METRICS])
    for column, (metric, _) in enumerate(CURVE_METRICS, start=1):
        if live and live.get(metric):
            figure.add_scatter(
                x=list(live["x"]),
                y=list(live[metric]),
                mode="lines",
                name="train (running)",
                line=dict(color=SERIES_COLORS["train"], width=1, dash="dot"),
                legendgroup="live",
                showlegend=column == 1,
                row=1,
                col=column,
            )
        for series, key in (("train", metric), ("validation", f"val_{metric}")):
            _add_epochs(
                figure,
                history.get(key, []),
                name=series,
                line=dict(color=SERIES_COLORS[series]),
                legendgroup=series,
                showlegend=column == 1,
                row=1,
                col=column,
            )
        figure.update_xaxes(title_text="epoch", rangemode="tozero", row=1, col=column)
    figure.update_layout(margin=_MARGIN, height=320, legend=dict(orientation="h", y=-0.25))
    return figure


def _confusion_cells(matrix: np.ndarray) -> tuple[np.ndarray, list[list[str]]]:
    """Each cell's share of all examples (percent) and its text: name, count, share."""
    if matrix.shape != (2, 2):
        raise ValueError(f"a binary confusion matrix has shape (2, 2), got {matrix.shape}")
    total = int(matrix.sum())
    share = matrix / total * 100 if total else np.zeros((2, 2))
    text = [
        [f"<b>{CELL_NAMES[i][j]}</b><br>{int(matrix[i, j]):,}<br>{share[i, j]:.1f}%" for j in range(2)]
        for i in range(2)
    ]
    return share, text


def confusion_heatmap(matrix: np.ndarray, label: str, *, clickable: bool = False) -> go.Figure:
    """A 2x2 heatmap ``[[TN, FP], [FN, TP]]`` with names, counts and percentages.

    Colour is the share of all examples, on a fixed 0-100% scale, so the three
    labels' heatmaps can be compared at a glance. ``clickable`` lays a transparent
    marker over each cell (heatmaps themselves send no click selections), whose
    ``customdata`` is the cell's name.
    """
    share, text = _confusion_cells(np.asarray(matrix))
    figure = go.Figure(
        go.Heatmap(
            z=share,
            x=["predicted no", "predicted yes"],
            y=["actual no", "actual yes"],
            text=text,
            texttemplate="%{text}",
            zmin=0,
            zmax=100,
            colorscale="Blues",
            showscale=False,
            hovertemplate="%{y} / %{x}: %{z:.1f}% of examples<extra></extra>",
        )
    )
    if clickable:
        cells = [
            (CELL_NAMES[i][j], ["predicted no", "predicted yes"][j], ["actual no", "actual yes"][i])
            for i in range(2)
            for j in range(2)
        ]
        figure.add_scatter(
            x=[x for _, x, _ in cells],
            y=[y for _, _, y in cells],
            customdata=[name for name, _, _ in cells],
            mode="markers",
            marker=dict(size=70, symbol="square", color="rgba(0,0,0,0)"),
            showlegend=False,
            hovertemplate="%{customdata}: click to see these images<extra></extra>",
        )
    figure.update_yaxes(autorange="reversed")
    figure.update_layout(title=f"{label}", margin=_MARGIN, height=300, clickmode="event+select")
    return figure


SCORE_BINS = np.linspace(0.0, 1.0, 21)
CLASS_COLORS = {"has": "#d9822b", "lacks": "#5b6fd6"}


def score_distribution_figure(y_true: np.ndarray, y_score: np.ndarray, label: str, *, threshold: float) -> go.Figure:
    """Predicted probabilities of one label for the images that have it and those that don't,
    as overlaid histograms over 20 bins of [0, 1], with the threshold as a vertical line."""
    actual = np.asarray(y_true).astype(bool).ravel()
    scores = np.clip(np.asarray(y_score, dtype=np.float64).ravel(), 0.0, 1.0)
    centers = (SCORE_BINS[:-1] + SCORE_BINS[1:]) / 2
    traces = []
    for group, members in (("has", actual), ("lacks", ~actual)):
        counts, _ = np.histogram(scores[members], bins=SCORE_BINS)
        name = f"{'with' if group == 'has' else 'without'} {label} ({int(members.sum()):,})"
        traces.append(
            go.Bar(
                x=centers,
                y=counts,
                width=SCORE_BINS[1] - SCORE_BINS[0],
                name=name,
                opacity=0.6,
                marker_color=CLASS_COLORS[group],
                hovertemplate=f"{name}: %{{y:,}} images near p=%{{x:.2f}}<extra></extra>",
            )
        )
    top = max(1, *(int(np.max(trace.y)) for trace in traces)) * 1.08
    traces.append(_threshold_line(threshold, top, text="threshold"))
    layout = dict(
        title=label,
        barmode="overlay",
        xaxis=dict(range=[0, 1], title="predicted probability"),
        yaxis=dict(title="images", range=[0, top]),
        margin=_MARGIN,
        height=300,
        legend=dict(orientation="h", y=-0.35),
    )
    return go.Figure(traces, layout=layout)


def _curve_figure(
    x,
    y,
    point: tuple[float, float],
    *,
    title: str,
    name: str,
    color: str,
    axes: tuple[str, str],
    diagonal: bool,
    point_text: str,
) -> go.Figure:
    traces = [
        go.Scatter(
            x=x,
            y=y,
            mode="lines",
            name=name,
            line=dict(color=color),
            hovertemplate=f"{axes[0]} %{{x:.3f}}, {axes[1]} %{{y:.3f}}<extra></extra>",
        )
    ]
    if diagonal:
        traces.append(
            go.Scatter(
                x=[0, 1], y=[0, 1], mode="lines", name="chance", line=dict(color="#999", dash="dot"), hoverinfo="skip"
            )
        )
    traces.append(
        go.Scatter(
            x=[point[0]],
            y=[point[1]],
            mode="markers",
            name=point_text,
            marker=dict(size=11, color="#222", symbol="circle"),
            hovertemplate=f"{point_text}<br>{axes[0]} %{{x:.3f}}, {axes[1]} %{{y:.3f}}<extra></extra>",
        )
    )
    layout = dict(
        title=title,
        xaxis=dict(range=[0, 1], title=axes[0]),
        yaxis=dict(range=[0, 1.02], title=axes[1]),
        margin=_MARGIN,
        height=300,
        legend=dict(orientation="h", y=-0.35),
    )
    return go.Figure(traces, layout=layout)


CURVE_KINDS = {  # kind -> (title, name of the area, x axis, y axis, chance diagonal)
    "roc": ("ROC", "AUC", "false positive rate", "true positive rate", True),
    "pr": ("precision-recall", "AP", "recall", "precision", False),
}


def curve_figure(
    kind: str, x, y, area: float, label: str, *, point: tuple[float, float], threshold: float
) -> go.Figure:
    """One label's ROC (``kind="roc"``: FPR, TPR, AUC) or precision-recall curve (``"pr"``: recall,
    precision, average precision) with the area in the legend and the current operating point."""
    title, area_name, x_title, y_title, diagonal = CURVE_KINDS[kind]
    return _curve_figure(
        x,
        y,
        point,
        title=f"{label}: {title}",
        name=f"{kind.upper()}, {area_name} {area:.3f}",
        color=label_color(label),
        axes=(x_title, y_title),
        diagonal=diagonal,
        point_text=f"threshold {threshold:.2f}",
    )


def _threshold_line(threshold: float, top: float, *, text: str) -> go.Scatter:
    """The current threshold as a dashed vertical line trace (a trace, not a layout shape, so
    that :func:`move_threshold` can move it cheaply), named in the legend."""
    return go.Scatter(
        x=[threshold, threshold],
        y=[0, top],
        mode="lines",
        name=f"{text} {threshold:.2f}",
        line=dict(color="#333", dash="dash", width=1.5),
        meta="threshold",
        hoverinfo="skip",
    )


def _threshold_mark(x: float, color: str, dash: str, text: str, top: bool) -> tuple[dict, dict]:
    """A full-height vertical line at ``x`` and its label, as plain layout dicts."""
    line = dict(type="line", xref="x", yref="paper", x0=x, x1=x, y0=0, y1=1, line=dict(color=color, dash=dash))
    note = dict(
        x=x,
        xref="x",
        yref="paper",
        y=1 if top else 0,
        text=text,
        showarrow=False,
        xanchor="right" if top else "left",
        yanchor="top" if top else "bottom",
    )
    return line, note


def threshold_sweep_figure(
    sweep: pd.DataFrame, label: str, *, threshold: float, best: float | None = None, best_split: str = "validation"
) -> go.Figure:
    """Precision, recall and F1 of one label against the threshold, the current one marked,
    and ``best`` (the F1-best threshold chosen on ``best_split``) when given.

    ``sweep`` is :func:`mlcore.metrics.threshold_sweep`'s long table (any labels).
    Built in one constructor call: ``add_vline`` costs about 10 ms a line, and the
    Evaluate page redraws three of these figures on every slider move.
    """
    rows = sweep[sweep["label"] == label]
    x = rows["threshold"].to_numpy()
    traces = [
        go.Scatter(
            x=x,
            y=rows[metric].to_numpy(),
            mode="lines",
            name=metric,
            line=dict(color=color),
            hovertemplate=f"{metric} %{{y:.3f}} at %{{x:.2f}}<extra></extra>",
        )
        for metric, color in SWEEP_COLORS.items()
    ]
    traces.append(_threshold_line(threshold, 1.05, text="current"))
    marks = []
    if best is not None:
        marks.append(_threshold_mark(best, SWEEP_COLORS["f1"], "dot", f"F1-best on {best_split} {best:.2f}", top=False))
    layout = dict(
        title=label,
        xaxis_title="threshold",
        yaxis=dict(range=[0, 1.05]),
        margin=_MARGIN,
        height=300,
        legend=dict(orientation="h", y=-0.3),
        shapes=[line for line, _ in marks],
        annotations=[note for _, note in marks],
    )
    return go.Figure(traces, layout=layout)


# Redrawing after a threshold move: update the marks of a figure built once, rather than
# building it again. A figure's constructor validates every property (about 10 ms for a
# curve of 500 points); an update of the few moving parts costs about 0.2 ms.


def move_threshold(figure: go.Figure, threshold: float) -> go.Figure:
    """Move the current-threshold line of a sweep or distribution figure."""
    line = next(trace for trace in figure.data if trace.meta == "threshold")
    line.update(x=[threshold, threshold], name=f"{line.name.rsplit(' ', 1)[0]} {threshold:.2f}")
    return figure


def move_operating_point(figure: go.Figure, point: tuple[float, float], *, threshold: float) -> go.Figure:
    """Move the operating-point marker of a ROC or precision-recall figure."""
    with figure.batch_update():
        figure.data[-1].update(x=[point[0]], y=[point[1]], name=f"threshold {threshold:.2f}")
    return figure


def update_confusion(figure: go.Figure, matrix: np.ndarray) -> go.Figure:
    """Put new counts into a :func:`confusion_heatmap` figure."""
    share, text = _confusion_cells(np.asarray(matrix))
    figure.data[0].update(z=share, text=text)
    return figure


def probability_bars(
    probabilities: Mapping[str, float], thresholds: Mapping[str, float], *, compact: bool = False
) -> go.Figure:
    """One horizontal bar per label with its probability and that label's threshold line.

    ``compact`` drops the axis title and shrinks the margins, for a card in a grid.
    """
    labels = list(probabilities)
    values = [probabilities[label] for label in labels]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=labels,
            orientation="h",
            text=[f"{value:.1%}" for value in values],
            textposition="auto",
            marker_color=[label_color(label, index) for index, label in enumerate(labels)],
            hovertemplate="%{y}: %{x:.3f}<extra></extra>",
        )
    )
    for index, label in enumerate(labels):
        # A short vertical tick across this label's bar only (its own threshold).
        figure.add_shape(
            type="line",
            x0=thresholds[label],
            x1=thresholds[label],
            y0=index - 0.45,
            y1=index + 0.45,
            line=dict(color="#222", width=2, dash="dash"),
        )
    title = None if compact else "probability (dashed: threshold)"
    figure.update_xaxes(range=[0, 1], dtick=0.25 if not compact else 0.5, tickformat=".0%", title_text=title)
    figure.update_yaxes(autorange="reversed")
    margin = dict(l=0, r=10, t=5, b=5) if compact else dict(_MARGIN, r=30)
    figure.update_layout(
        margin=margin, height=(40 if compact else 80) + (30 if compact else 45) * len(labels), showlegend=False
    )
    return figure
