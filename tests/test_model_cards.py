"""Evaluation JSON loading, table shaping and the figures built from it."""

import json
import math

import pytest

from lungscan import figures, model_cards

CLASSES = ["adenocarcinoma", "large_cell_carcinoma", "squamous_cell_carcinoma", "normal"]


def evaluation(arch: str, accuracy: float, **extra) -> dict:
    data = {
        "arch": arch,
        "display_name": arch.replace("_", " ").title(),
        "pretrained": arch != "simple_cnn",
        "split": "test",
        "n": 315,
        "class_names": CLASSES,
        "accuracy": accuracy,
        "accuracy_ci": [accuracy - 0.05, accuracy + 0.04],
        "macro_f1": accuracy - 0.02,
        "macro_f1_ci": [accuracy - 0.08, accuracy + 0.03],
        "dedup_n": 250,
        "dedup_accuracy": accuracy - 0.1,
        "per_class": {c: {"precision": 0.8, "recall": 0.7, "f1": 0.75, "support": 80, "auc": 0.9} for c in CLASSES},
        "confusion_matrix": [[70, 5, 5, 0], [10, 40, 1, 0], [3, 2, 85, 0], [0, 0, 1, 53]],
        "roc_auc": {"micro": 0.95, "macro": 0.94},
        "roc_curves": {c: {"fpr": [0, 0.1, 1], "tpr": [0, 0.8, 1]} for c in [*CLASSES, "micro"]},
        "ece": 0.08,
        "ece_calibrated": 0.03,
        "temperature": 1.7,
        "reliability": {
            "uncalibrated": {"bin_confidence": [0.5, 0.9], "bin_accuracy": [0.4, 0.8], "bin_count": [10, 90]},
            "calibrated": {"bin_confidence": [0.45, 0.85], "bin_accuracy": [0.42, 0.83], "bin_count": [12, 88]},
        },
        "params": 3_400_000,
        "checkpoint_bytes": 14_000_000,
        "latency_ms_p50": 21.5,
        "history": [{"epoch": e, "train_loss": 1 / e, "train_acc": 0.5 + e / 20, "val_loss": 1.1 / e, "val_acc": 0.45 + e / 20} for e in range(1, 6)],
        "command": f"python -m training.train --arch {arch}",
    }
    data.update(extra)
    return data


@pytest.fixture
def models_dir(tmp_path):
    for arch, acc in (("resnet50", 0.91), ("efficientnet_lite0", 0.88), ("simple_cnn", 0.62)):
        (tmp_path / arch).mkdir()
        (tmp_path / arch / "evaluation.json").write_text(json.dumps(evaluation(arch, acc)))
    (tmp_path / "default.txt").write_text("efficientnet_lite0\n")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "evaluation.json").write_text("{not json")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "evaluation.json").write_text(json.dumps({"arch": "partial"}))
    return tmp_path


def test_default_first_then_by_accuracy_and_bad_files_reported(models_dir):
    loaded = model_cards.load_evaluations(models_dir)
    assert list(loaded.evaluations) == ["efficientnet_lite0", "resnet50", "simple_cnn"]
    assert set(loaded.problems) == {"broken", "partial"}
    assert "lacks class_names, accuracy" in loaded.problems["partial"]


def test_empty_models_folder_is_falsy(tmp_path):
    loaded = model_cards.load_evaluations(tmp_path / "missing")
    assert not loaded and loaded.problems == {}


def test_comparison_table_has_every_headline_number(models_dir):
    table = model_cards.comparison_table(model_cards.load_evaluations(models_dir).evaluations)
    row = table.set_index("Architecture").loc["resnet50"]
    assert row["Accuracy"] == pytest.approx(0.91)
    assert row["Accuracy 95% CI"] == "0.860–0.950"
    assert row["Dedup accuracy"] == pytest.approx(0.81)
    assert row["ECE"] == 0.08 and row["ECE calibrated"] == 0.03
    assert row["Parameters (M)"] == pytest.approx(3.4) and row["Size (MB)"] == pytest.approx(14.0)
    assert row["AUC (macro)"] == 0.94 and bool(row["Pretrained"]) is True
    assert bool(table.set_index("Architecture").loc["simple_cnn"]["Pretrained"]) is False


def test_missing_numbers_become_nan_not_errors():
    table = model_cards.comparison_table({"x": {"arch": "x", "class_names": CLASSES, "accuracy": 0.5}})
    assert math.isnan(table.loc[0, "ECE"]) and table.loc[0, "Accuracy 95% CI"] == ""


def test_per_class_tables(models_dir):
    evaluations = model_cards.load_evaluations(models_dir).evaluations
    long = model_cards.per_class_table(evaluations)
    assert len(long) == 3 * 4 and set(long["Class"]) == {"Adenocarcinoma", "Large cell carcinoma", "Squamous cell carcinoma", "Normal"}
    wide = model_cards.per_class_wide(evaluations, "F1")
    assert list(wide.index)[0] == "Efficientnet Lite0" and wide.shape == (3, 4)
    assert list(wide.columns) == ["Adenocarcinoma", "Large cell carcinoma", "Squamous cell carcinoma", "Normal"]


def test_model_card_facts(models_dir):
    facts = model_cards.model_card_facts(model_cards.load_evaluations(models_dir).evaluations["resnet50"])
    assert facts["Accuracy"].startswith("91.0%") and "T = 1.70" in facts["Calibration error (ECE)"]
    assert facts["Reproduce with"] == "python -m training.train --arch resnet50"
    assert "With a black margin around the slice" not in facts  # a report from before the framing probe
    assert facts["Loosely framed slices"].startswith("analysed whole")  # and from before the app cropped them
    framed = {**model_cards.load_evaluations(models_dir).evaluations["resnet50"],
              "framing": {"fill": 0.8, "accuracy_original": 0.849, "accuracy_reframed": 0.745,
                          "prediction_agreement": 0.784},
              "loose_framing": {"slices": 209, "cropped": True}}
    facts = model_cards.model_card_facts(framed)
    assert facts["With a black margin around the slice"] == (
        "accuracy 84.9% → 74.5%; 78.4% of predictions unchanged (slice filling 80.0% of each side)")
    assert facts["Loosely framed slices"].startswith("cropped to the body before analysis") and "209 of" in facts[
        "Loosely framed slices"]


def test_model_card_says_how_a_body_model_sees_a_slice():
    body = {"input_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "geometry": "body"}
    assert model_cards.model_input(body) == "the slice cropped to the patient's body, resized to 224×224, greyscale"


def test_figures_carry_the_data(models_dir):
    ev = model_cards.load_evaluations(models_dir).evaluations["resnet50"]
    cm = figures.confusion_matrix(ev)
    assert cm.data[0].z[0][0] == pytest.approx(70 / 80)
    roc = figures.roc_curves(ev)
    names = [trace.name for trace in roc.data]
    assert "Micro average (AUC 0.950)" in names and "Adenocarcinoma (AUC 0.900)" in names
    curves = figures.training_curves(ev)
    assert list(curves.data[0].y) == [1.0, 0.5, 1 / 3, 0.25, 0.2]
    reliability = figures.reliability_diagram(ev)
    assert [t.name for t in reliability.data][1:] == ["Before (ECE 0.080)", "After temperature scaling (ECE 0.030)"]
    bar = figures.probability_bar({"normal": 0.7, "adenocarcinoma": 0.3}, highlight="normal")
    assert list(bar.data[0].x) == [0.7, 0.3] and bar.data[0].marker.color[0] == figures.ACCENT


def test_model_card_says_how_the_model_sees_a_slice():
    full = {"input_size": 288, "mean": [0.5] * 3, "std": [0.5] * 3, "geometry": "full"}
    assert model_cards.model_input(full) == "the whole slice resized to 288×288, greyscale"
    legacy = {"input_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3}  # written before geometries existed
    assert model_cards.model_input(legacy).startswith("224×224 centre crop of the slice resized to 256")
    assert model_cards.model_input(None) == "—"
