"""Static evaluation figures (PNG) saved beside each evaluation JSON; the app draws its own plotly charts."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from lungscan.classes import display_name  # noqa: E402


def save_figures(report: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    names = [display_name(c) for c in report["class_names"]]
    title = report["display_name"]
    paths = []

    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    cm = np.asarray(report["confusion_matrix"])
    ax.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax.text(j, i, str(v), ha="center", va="center", color="white" if v > cm.max() / 2 else "black")
    ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("Predicted")
    ax.set_ylabel("True")
    ax.set_title(f"{title}\nconfusion matrix (test, n={report['n']})", fontsize=9)
    fig.tight_layout()
    paths.append(out_dir / "confusion_matrix.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5.5, 4.8))
    for key, curve in report["roc_curves"].items():
        auc = report["roc_auc"]["micro"] if key == "micro" else report["per_class"][key]["auc"]
        label = "micro-average" if key == "micro" else display_name(key)
        ax.plot(curve["fpr"], curve["tpr"], label=f"{label} (AUC {auc:.3f})", linestyle="--" if key == "micro" else "-")
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title(f"{title}\nROC (test)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    paths.append(out_dir / "roc_curves.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    history = report.get("history") or []
    if history:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.6))
        epochs = [h["epoch"] for h in history]
        for key, label in (("train_loss", "train"), ("val_loss", "valid")):
            a1.plot(epochs, [h[key] for h in history], label=label)
        for key, label in (("train_acc", "train"), ("val_acc", "valid")):
            a2.plot(epochs, [h[key] for h in history], label=label)
        a1.set_title("Loss")
        a2.set_title("Accuracy")
        for a in (a1, a2):
            a.set_xlabel("epoch")
            a.legend()
        fig.suptitle(f"{title}: training curves", fontsize=9)
        fig.tight_layout()
        paths.append(out_dir / "training_curves.png")
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 4.5))
    for key, label in (("uncalibrated", f"before (ECE {report['ece']:.3f})"),
                       ("calibrated", f"after T={report['temperature']:.2f} (ECE {report['ece_calibrated']:.3f})")):
        bins = report["reliability"][key]
        pts = [(c, a) for c, a in zip(bins["bin_confidence"], bins["bin_accuracy"]) if c is not None]
        if pts:
            ax.plot(*zip(*pts), marker="o", label=label)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=0.8, label="perfect calibration")
    ax.set_xlabel("Confidence")
    ax.set_ylabel("Accuracy")
    ax.set_title(f"{title}\nreliability (test)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(out_dir / "reliability.png")
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths
