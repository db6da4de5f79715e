"""Reading the evaluation results in ``models/<arch>/evaluation.json`` and shaping them for display.

The Models page and the About page's model card show what these files hold; the
shaping (which numbers, in which columns, with which rounding) lives here so it is
tested without a browser. Figures are built in `lungscan.figures`.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from .classes import display_name

log = logging.getLogger(__name__)

EVALUATION_FILE = "evaluation.json"
DEFAULT_FILE = "default.txt"
#: Keys an evaluation file must have to be shown at all.
REQUIRED_KEYS = ("arch", "class_names", "accuracy")


@dataclass(frozen=True)
class EvaluationSet:
    """Every readable evaluation file, plus a message for each unreadable one."""

    evaluations: dict[str, dict[str, Any]]
    problems: dict[str, str]

    def __bool__(self) -> bool:
        return bool(self.evaluations)


def read_evaluation(path: Path) -> dict[str, Any]:
    """One evaluation file, checked for the keys every display needs. Raises ValueError otherwise."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"{path} does not hold a JSON object.")
    missing = [key for key in REQUIRED_KEYS if key not in data]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}.")
    return data


def default_arch(models_dir: Path) -> str | None:
    """The architecture named in ``models/default.txt``, if any."""
    path = Path(models_dir) / DEFAULT_FILE
    try:
        name = path.read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return name or None


def load_evaluations(models_dir: Path) -> EvaluationSet:
    """All ``models/*/evaluation.json``: the default model first, then by accuracy, best first."""
    evaluations: dict[str, dict[str, Any]] = {}
    problems: dict[str, str] = {}
    root = Path(models_dir)
    for path in sorted(root.glob(f"*/{EVALUATION_FILE}")):
        folder = path.parent.name
        try:
            evaluations[folder] = read_evaluation(path)
        except ValueError as exc:
            log.warning("Skipping %s", exc)
            problems[folder] = str(exc)
    default = default_arch(root)

    def order(item: tuple[str, dict[str, Any]]) -> tuple[int, float, str]:
        folder, data = item
        return (0 if default in (folder, data.get("arch")) else 1, -_number(data.get("accuracy")), folder)

    return EvaluationSet(dict(sorted(evaluations.items(), key=order)), problems)


def _number(value: Any) -> float:
    """A float for sorting and rounding; NaN for anything missing or non-numeric."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return math.nan
    return number


def _interval(values: Any) -> str:
    if not isinstance(values, (list, tuple)) or len(values) != 2:
        return ""
    low, high = (_number(v) for v in values)
    if math.isnan(low) or math.isnan(high):
        return ""
    return f"{low:.3f}–{high:.3f}"


def model_label(evaluation: dict[str, Any]) -> str:
    return str(evaluation.get("display_name") or evaluation.get("arch"))


def comparison_table(evaluations: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """One row per model with the headline numbers, in the order given."""
    rows = []
    for folder, ev in evaluations.items():
        roc = ev.get("roc_auc") or {}
        size = _number(ev.get("checkpoint_bytes"))
        params = _number(ev.get("params"))
        rows.append(
            {
                "Model": model_label(ev),
                "Architecture": ev.get("arch", folder),
                "Pretrained": bool(ev.get("pretrained", False)),
                "Test images": ev.get("n"),
                "Accuracy": _number(ev.get("accuracy")),
                "Accuracy 95% CI": _interval(ev.get("accuracy_ci")),
                "Macro-F1": _number(ev.get("macro_f1")),
                "Macro-F1 95% CI": _interval(ev.get("macro_f1_ci")),
                "Dedup accuracy": _number(ev.get("dedup_accuracy")),
                "Dedup images": ev.get("dedup_n"),
                "AUC (macro)": _number(roc.get("macro")),
                "AUC (micro)": _number(roc.get("micro")),
                "ECE": _number(ev.get("ece")),
                "ECE calibrated": _number(ev.get("ece_calibrated")),
                "Temperature": _number(ev.get("temperature")),
                "Parameters (M)": params / 1e6 if not math.isnan(params) else math.nan,
                "Size (MB)": size / 1e6 if not math.isnan(size) else math.nan,
                "Latency p50 (ms)": _number(ev.get("latency_ms_p50")),
            }
        )
    return pd.DataFrame(rows)


def per_class_table(evaluations: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Long table: one row per (model, class) with precision, recall, F1, AUC and support."""
    rows = []
    for ev in evaluations.values():
        per_class = ev.get("per_class") or {}
        for class_name in ev.get("class_names", []):
            stats = per_class.get(class_name) or {}
            rows.append(
                {
                    "Model": model_label(ev),
                    "Class": display_name(class_name),
                    "Precision": _number(stats.get("precision")),
                    "Recall": _number(stats.get("recall")),
                    "F1": _number(stats.get("f1")),
                    "AUC": _number(stats.get("auc")),
                    "Support": stats.get("support"),
                }
            )
    return pd.DataFrame(rows, columns=["Model", "Class", "Precision", "Recall", "F1", "AUC", "Support"])


def per_class_wide(evaluations: dict[str, dict[str, Any]], metric: str) -> pd.DataFrame:
    """Models as rows, classes as columns, one metric ('Precision', 'Recall', 'F1' or 'AUC')."""
    long = per_class_table(evaluations)
    if long.empty:
        return pd.DataFrame()
    wide = long.pivot(index="Model", columns="Class", values=metric)
    return wide.reindex(index=list(dict.fromkeys(long["Model"])), columns=list(dict.fromkeys(long["Class"])))


def model_input(preprocessing: dict[str, Any] | None) -> str:
    """How a model sees a slice, from its checkpoint's preprocessing record."""
    if not preprocessing:
        return "—"
    side = int(preprocessing["input_size"])
    geometry = preprocessing.get("geometry", "crop")
    if geometry == "full":
        return f"the whole slice resized to {side}×{side}, greyscale"
    if geometry == "body":
        return f"the slice cropped to the patient's body, resized to {side}×{side}, greyscale"
    return f"{side}×{side} centre crop of the slice resized to {round(side * 256 / 224)} (short side), greyscale"


def model_card_facts(evaluation: dict[str, Any]) -> dict[str, str]:
    """The headline facts of one model for the About page's model card, as display strings."""

    def pct(value: Any) -> str:
        number = _number(value)
        return "—" if math.isnan(number) else f"{number:.1%}"

    facts = {
        "Model": model_label(evaluation),
        "Architecture": str(evaluation.get("arch")),
        "Pretrained on ImageNet": "yes" if evaluation.get("pretrained") else "no",
        "Classes": ", ".join(display_name(c) for c in evaluation.get("class_names", [])),
        "Model input": model_input(evaluation.get("preprocessing")),
        "Evaluated on": f"{evaluation.get('n', '?')} images ({evaluation.get('split', 'test')} split)",
        "Accuracy": f"{pct(evaluation.get('accuracy'))} (95% CI {_interval(evaluation.get('accuracy_ci')) or '—'})",
        "Macro-F1": f"{_number(evaluation.get('macro_f1')):.3f} (95% CI {_interval(evaluation.get('macro_f1_ci')) or '—'})",
        "Accuracy without near-duplicates": (
            f"{pct(evaluation.get('dedup_accuracy'))} on {evaluation.get('dedup_n', '?')} images"
        ),
        "Calibration error (ECE)": (
            f"{_number(evaluation.get('ece')):.3f} before, {_number(evaluation.get('ece_calibrated')):.3f} after "
            f"temperature scaling (T = {_number(evaluation.get('temperature')):.2f})"
        ),
    }
    loose = evaluation.get("loose_framing")
    facts["Loosely framed slices"] = (
        f"cropped to the body before analysis, as the app does ({loose.get('slices', '?')} of "
        f"{evaluation.get('n', '?')} images)" if loose and loose.get("cropped")
        else "analysed whole: this report predates the app's crop to the body, so its figures are not comparable"
    )
    framing = evaluation.get("framing")
    if framing:
        facts["With a black margin around the slice"] = (
            f"accuracy {pct(framing.get('accuracy_original'))} → {pct(framing.get('accuracy_reframed'))}; "
            f"{pct(framing.get('prediction_agreement'))} of predictions unchanged (slice filling "
            f"{pct(framing.get('fill'))} of each side)"
        )
    if evaluation.get("command"):
        facts["Reproduce with"] = str(evaluation["command"])
    return facts
