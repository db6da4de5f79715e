"""Plotly figures for the dashboard: probabilities, image/heatmap pairs and evaluation charts.

Figures are plain `plotly.graph_objects.Figure` objects built from data; pages only
hand them to ``st.plotly_chart``. Nothing here imports Streamlit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots

from .classes import display_name

ACCENT = "#1f6f8b"
MUTED = "#9db4c0"
WARNING = "#b9770e"


def probability_bar(probabilities: dict[str, float], *, highlight: str | None = None, flagged: bool = False) -> go.Figure:
    """Horizontal bars of the calibrated class probabilities, the predicted class highlighted."""
    classes = list(probabilities)
    values = [float(probabilities[c]) for c in classes]
    colours = [(WARNING if flagged else ACCENT) if c == highlight else MUTED for c in classes]
    figure = go.Figure(
        go.Bar(
            x=values,
            y=[display_name(c) for c in classes],
            orientation="h",
            marker_color=colours,
            text=[f"{v:.1%}" for v in values],
            textposition="auto",
            hovertemplate="%{y}: %{x:.1%}<extra></extra>",
        )
    )
    figure.update_layout(
        xaxis={"range": [0, 1], "tickformat": ".0%", "title": "Calibrated probability"},
        yaxis={"autorange": "reversed"},
        height=60 + 45 * len(classes),
        margin={"l": 10, "r": 10, "t": 10, "b": 40},
    )
    return figure


def _as_rgb(image: Image.Image | np.ndarray) -> np.ndarray:
    array = np.asarray(image.convert("RGB") if isinstance(image, Image.Image) else image)
    if array.ndim == 2:
        array = np.stack([array] * 3, axis=-1)
    return array.astype(np.uint8)


def image_pair(
    left: Image.Image | np.ndarray,
    right: Image.Image | np.ndarray,
    *,
    titles: tuple[str, str] = ("Model input", "Heatmap overlay"),
) -> go.Figure:
    """Two images side by side with linked axes: zooming or panning one moves both."""
    figure = make_subplots(rows=1, cols=2, subplot_titles=titles, horizontal_spacing=0.03)
    figure.add_trace(go.Image(z=_as_rgb(left), hoverinfo="skip"), row=1, col=1)
    figure.add_trace(go.Image(z=_as_rgb(right), hoverinfo="skip"), row=1, col=2)
    figure.update_xaxes(showticklabels=False, matches="x")
    figure.update_yaxes(showticklabels=False, matches="y", scaleanchor="x")
    figure.update_layout(margin={"l": 0, "r": 0, "t": 30, "b": 0}, height=420, dragmode="zoom")
    return figure


def image_grid(images: list[tuple[str, Image.Image | np.ndarray]], *, columns: int = 4) -> go.Figure:
    """Several labelled images in a grid (e.g. one Grad-CAM per model), axes linked for zooming."""
    columns = max(1, min(columns, len(images)))
    rows = (len(images) + columns - 1) // columns
    figure = make_subplots(
        rows=rows,
        cols=columns,
        subplot_titles=[title for title, _ in images],
        horizontal_spacing=0.02,
        vertical_spacing=0.08,
    )
    for index, (_, image) in enumerate(images):
        figure.add_trace(go.Image(z=_as_rgb(image), hoverinfo="skip"), row=index // columns + 1, col=index % columns + 1)
    figure.update_xaxes(showticklabels=False, matches="x")
    figure.update_yaxes(showticklabels=False, matches="y")
    figure.update_layout(margin={"l": 0, "r": 0, "t": 30, "b": 0}, height=280 * rows)
    return figure


def confusion_matrix(evaluation: dict[str, Any], *, normalise: bool = True) -> go.Figure:
    """Heatmap of the confusion matrix (rows true, columns predicted); row-normalised by default."""
    labels = [display_name(c) for c in evaluation["class_names"]]
    counts = np.asarray(evaluation.get("confusion_matrix") or np.zeros((len(labels), len(labels))), dtype=float)
    if normalise:
        totals = counts.sum(axis=1, keepdims=True)
        values = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        text = [[f"{v:.0%}<br>({int(c)})" for v, c in zip(vr, cr)] for vr, cr in zip(values, counts)]
    else:
        values = counts
        text = [[str(int(c)) for c in row] for row in counts]
    figure = go.Figure(
        go.Heatmap(
            z=values,
            x=labels,
            y=labels,
            text=text,
            texttemplate="%{text}",
            colorscale="Blues",
            zmin=0,
            zmax=1 if normalise else None,
            showscale=False,
            hovertemplate="true %{y}<br>predicted %{x}<br>%{text}<extra></extra>",
        )
    )
    figure.update_layout(
        xaxis={"title": "Predicted", "side": "bottom"},
        yaxis={"title": "True", "autorange": "reversed"},
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        height=380,
    )
    return figure


def roc_curves(evaluation: dict[str, Any]) -> go.Figure:
    """One-vs-rest ROC per class plus the micro average, AUC in the legend."""
    curves = evaluation.get("roc_curves") or {}
    per_class = evaluation.get("per_class") or {}
    roc_auc = evaluation.get("roc_auc") or {}
    figure = go.Figure()
    for key, curve in curves.items():
        if key == "micro":
            name, auc, dash = "Micro average", roc_auc.get("micro"), "dash"
        else:
            name, auc, dash = display_name(key), (per_class.get(key) or {}).get("auc"), "solid"
        label = f"{name} (AUC {auc:.3f})" if isinstance(auc, (int, float)) else name
        figure.add_trace(go.Scatter(x=curve.get("fpr", []), y=curve.get("tpr", []), mode="lines", name=label, line={"dash": dash}))
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="Chance", line={"dash": "dot", "color": "grey"}))
    figure.update_layout(
        xaxis={"title": "False positive rate", "range": [0, 1]},
        yaxis={"title": "True positive rate", "range": [0, 1.01]},
        height=380,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"font": {"size": 10}},
    )
    return figure


def training_curves(evaluation: dict[str, Any]) -> go.Figure:
    """Loss and accuracy per epoch, train and validation."""
    history = evaluation.get("history") or []
    epochs = [row.get("epoch") for row in history]
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    for key, name, dash in (("train", "train", "solid"), ("val", "validation", "dash")):
        figure.add_trace(
            go.Scatter(x=epochs, y=[row.get(f"{key}_loss") for row in history], name=f"{name} loss", line={"dash": dash}),
            row=1,
            col=1,
        )
        figure.add_trace(
            go.Scatter(x=epochs, y=[row.get(f"{key}_acc") for row in history], name=f"{name} accuracy", line={"dash": dash}),
            row=1,
            col=2,
        )
    figure.update_xaxes(title="Epoch")
    figure.update_layout(height=320, margin={"l": 10, "r": 10, "t": 30, "b": 10}, legend={"font": {"size": 10}})
    return figure


def reliability_diagram(evaluation: dict[str, Any]) -> go.Figure:
    """Confidence against accuracy per bin, before and after temperature scaling."""
    reliability = evaluation.get("reliability") or {}
    figure = go.Figure()
    figure.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="Perfect calibration", line={"dash": "dot", "color": "grey"}))
    for key, name, ece_key in (("uncalibrated", "Before", "ece"), ("calibrated", "After temperature scaling", "ece_calibrated")):
        bins = reliability.get(key) or {}
        ece = evaluation.get(ece_key)
        label = f"{name} (ECE {ece:.3f})" if isinstance(ece, (int, float)) else name
        figure.add_trace(
            go.Scatter(
                x=bins.get("bin_confidence", []),
                y=bins.get("bin_accuracy", []),
                mode="lines+markers",
                name=label,
                customdata=bins.get("bin_count", []),
                hovertemplate="confidence %{x:.2f}<br>accuracy %{y:.2f}<br>%{customdata} images<extra></extra>",
            )
        )
    figure.update_layout(
        xaxis={"title": "Confidence", "range": [0, 1]},
        yaxis={"title": "Accuracy", "range": [0, 1.01]},
        height=360,
        margin={"l": 10, "r": 10, "t": 30, "b": 10},
        legend={"font": {"size": 10}},
    )
    return figure
