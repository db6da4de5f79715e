"""The canonical class order, display names and dataset folder-name mapping."""

from __future__ import annotations

import re

from .errors import DatasetError

#: Output order of every model LungScan trains. Checkpoints record their own order;
#: the app reads class names from the checkpoint, this tuple only seeds training.
CLASS_NAMES: tuple[str, ...] = (
    "adenocarcinoma",
    "large_cell_carcinoma",
    "squamous_cell_carcinoma",
    "normal",
)

DISPLAY_NAMES: dict[str, str] = {
    "adenocarcinoma": "Adenocarcinoma",
    "large_cell_carcinoma": "Large cell carcinoma",
    "squamous_cell_carcinoma": "Squamous cell carcinoma",
    "normal": "Normal",
}

# Folder names are normalised (lower case, runs of '.', '_', '-' and spaces become '_')
# and then matched on their leading words, so the Kaggle train/valid names with their
# TNM suffix ("adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib"), the plain test names
# ("large.cell.carcinoma") and snake_case names all map to the same class.
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("adenocarcinoma", "adenocarcinoma"),
    ("large_cell_carcinoma", "large_cell_carcinoma"),
    ("squamous_cell_carcinoma", "squamous_cell_carcinoma"),
    ("normal", "normal"),
)


#: A saved result whose image the input check doubted: the model's class is not reported for it.
NO_FINDING = "input check failed — no finding"
NOT_A_FINDING = (
    "No finding is reported for this image. The probabilities below are what the model computed, "
    "but they are not meaningful for an image it was not built for."
)


def result_label(predicted_class: str, *, doubted: bool, confidence: float | None = None, decimals: int = 0) -> str:
    """A result in one line: the class (with its calibrated confidence, when given), or `NO_FINDING` when the input
    check doubted the image."""
    if doubted:
        return NO_FINDING
    name = display_name(predicted_class)
    return name if confidence is None else f"{name} ({confidence:.{decimals}%})"


def display_name(class_name: str) -> str:
    """Human-readable name of a class (falls back to the raw name)."""
    return DISPLAY_NAMES.get(class_name, class_name.replace("_", " ").capitalize())


def class_from_folder(folder_name: str) -> str:
    """Map a dataset class-folder name to a canonical class name.

    Raises DatasetError for a folder that names no known class.
    """
    normalised = re.sub(r"[\s._\-]+", "_", folder_name.strip().lower()).strip("_")
    for prefix, class_name in _PREFIXES:
        if normalised == prefix or normalised.startswith(prefix + "_"):
            return class_name
    raise DatasetError(
        f"Folder {folder_name!r} does not name a known class; expected one of "
        f"{', '.join(CLASS_NAMES)} (Kaggle folder names with a TNM suffix are accepted too)."
    )
