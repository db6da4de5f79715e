"""Tiny, untrained checkpoints for UI tests: real LungScan checkpoints, small and fast on a CPU.

Nothing is trained; the weights are random (seeded). Tests that need a model build
one of these in their temp folder instead of relying on the committed default model.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from lungscan.checkpoint import save_checkpoint
from lungscan.classes import CLASS_NAMES
from lungscan.registry import create_model
from lungscan.transforms import Preprocessing


def write_tiny_checkpoint(
    models_dir: Path, arch: str = "mobilenet_v2", *, input_size: int = 64, default: bool = True, seed: int = 0
) -> Path:
    """Write models_dir/<arch>/checkpoint.pt (random weights) and, if `default`, models_dir/default.txt."""
    torch.manual_seed(seed)
    model = create_model(arch)
    meta = {
        "arch": arch,
        "class_names": list(CLASS_NAMES),
        "preprocessing": Preprocessing(input_size=input_size).to_dict(),
        "temperature": 1.5,
        "recipe": {"note": "untrained test checkpoint"},
        "data_fingerprint": "test",
        "code_version": "test",
    }
    path = save_checkpoint(Path(models_dir) / arch / "checkpoint.pt", model=model, meta=meta)
    if default:
        (Path(models_dir) / "default.txt").write_text(arch + "\n")
    return path


def write_evaluation(models_dir: Path, arch: str = "mobilenet_v2", accuracy: float = 0.5) -> Path:
    """A complete, made-up evaluation.json in the lead's schema (for the Models and About pages)."""
    classes = list(CLASS_NAMES)
    data = {
        "arch": arch,
        "display_name": arch,
        "pretrained": False,
        "split": "test",
        "n": 40,
        "class_names": classes,
        "accuracy": accuracy,
        "accuracy_ci": [accuracy - 0.1, accuracy + 0.1],
        "macro_f1": accuracy - 0.05,
        "macro_f1_ci": [accuracy - 0.15, accuracy + 0.05],
        "dedup_n": 35,
        "dedup_accuracy": accuracy - 0.05,
        "per_class": {c: {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 10, "auc": 0.7} for c in classes},
        "confusion_matrix": [[5, 2, 2, 1], [2, 5, 2, 1], [2, 2, 5, 1], [1, 1, 1, 7]],
        "roc_auc": {"micro": 0.72, "macro": 0.7},
        "roc_curves": {c: {"fpr": [0.0, 0.3, 1.0], "tpr": [0.0, 0.7, 1.0]} for c in [*classes, "micro"]},
        "ece": 0.1,
        "ece_calibrated": 0.05,
        "temperature": 1.5,
        "reliability": {
            "uncalibrated": {"bin_confidence": [0.3, 0.7], "bin_accuracy": [0.25, 0.6], "bin_count": [20, 20]},
            "calibrated": {"bin_confidence": [0.3, 0.6], "bin_accuracy": [0.3, 0.58], "bin_count": [22, 18]},
        },
        "params": 2_200_000,
        "checkpoint_bytes": 9_000_000,
        "latency_ms_p50": 5.0,
        "history": [{"epoch": 1, "train_loss": 1.3, "train_acc": 0.4, "val_loss": 1.2, "val_acc": 0.45}],
        "command": f"python -m training.train --arch {arch}",
    }
    path = Path(models_dir) / arch / "evaluation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path
