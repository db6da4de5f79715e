"""Result widgets shared by the Scan, History, Gallery and Models pages."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from lungscan import figures
from lungscan.classes import NOT_A_FINDING, display_name
from lungscan.explain import CAM_METHODS, overlay_cam
from lungscan.registry import ARCHITECTURES
from lungscan.transforms import at_slice_aspect

from .resources import cached_cam, get_predictor


def image_key(image: Image.Image) -> str:
    """A digest of the pixels, used to cache heatmaps per image."""
    return hashlib.sha256(image.tobytes() + repr((image.mode, image.size)).encode()).hexdigest()


def model_title(arch: str) -> str:
    spec = ARCHITECTURES.get(arch)
    return spec.display_name if spec is not None else arch


def prediction_summary(
    *, label: str, confidence: float, probabilities: dict[str, float], gate_ok: bool, gate_reason: str | None, key: str,
    framing_warning: str | None = None, resolution_warning: str | None = None,
) -> None:
    """The answer: predicted class and calibrated probabilities, or the input gate's warning instead, and a
    note when the slice was framed unlike the training slices and so cropped to the body, or is smaller than the
    model's input."""
    if gate_ok:
        st.metric(
            "Predicted class",
            display_name(label),
            f"{confidence:.1%} calibrated probability",
            delta_color="off",
            delta_arrow="off",
        )
    else:
        st.warning(f"**Input check failed.** {gate_reason or ''}\n\n{NOT_A_FINDING}", icon=":material/warning:")
    if gate_ok and framing_warning:
        st.warning(f"**Framed unlike the training slices.** {framing_warning}", icon=":material/crop:")
    if gate_ok and resolution_warning:
        st.warning(f"**Smaller than the model's input.** {resolution_warning}", icon=":material/blur_on:")
    st.plotly_chart(
        figures.probability_bar(probabilities, highlight=label, flagged=not gate_ok),
        key=f"{key}_probabilities",
        config={"displayModeBar": False},
    )


@dataclass(frozen=True)
class Heatmap:
    """What the heatmap panel shows, for reuse in a PDF report."""

    method: str
    target_class: str
    base: Image.Image
    overlay: np.ndarray


def heatmap_panel(checkpoint: Path, image: Image.Image, *, default_target: str, key: str) -> Heatmap:
    """Interactive Grad-CAM: target class, CAM method and opacity; input and overlay side by side, zoomable."""
    predictor = get_predictor(checkpoint)
    classes = list(predictor.class_names)
    col1, col2, col3 = st.columns(3)
    target = col1.selectbox(
        "Heatmap for class",
        classes,
        index=classes.index(default_target) if default_target in classes else 0,
        format_func=display_name,
        key=f"{key}_target",
    )
    method_label = col2.selectbox("CAM method", list(CAM_METHODS), key=f"{key}_method")
    opacity = col3.slider("Heatmap opacity", 0.0, 1.0, 0.45, 0.05, key=f"{key}_opacity")
    view = predictor.model_view(image)
    cam = cached_cam(str(checkpoint), image_key(image), target, CAM_METHODS[method_label], image)
    # Shown at the aspect ratio of the region the model saw (it sees the slice or the body squeezed to a square).
    base = at_slice_aspect(view, image, predictor.prep)
    overlay = np.asarray(at_slice_aspect(Image.fromarray(overlay_cam(view, cam, opacity)), image, predictor.prep))
    st.plotly_chart(
        figures.image_pair(base, overlay, titles=("What the model saw", f"{method_label}: {display_name(target)}")),
        key=f"{key}_heatmap",
    )
    st.caption(
        "Red areas raised the score of the chosen class most. A heatmap shows where the model looked, "
        "not why, and not whether it was right. Drag to zoom, double-click to reset."
    )
    return Heatmap(method=method_label, target_class=target, base=base, overlay=overlay)
