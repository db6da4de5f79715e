"""Classification metrics, calibration and bootstrap intervals (scikit-learn underneath)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)
from sklearn.preprocessing import label_binarize


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, *, max_iter: int = 200) -> float:
    """Temperature T > 0 minimising the NLL of softmax(logits / T) (Guo et al., 2017)."""
    z = torch.as_tensor(np.asarray(logits), dtype=torch.float64)
    y = torch.as_tensor(np.asarray(labels), dtype=torch.long)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(z / log_t.exp(), y)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(np.clip(log_t.exp().item(), 0.05, 20.0))


def reliability(probabilities: np.ndarray, labels: np.ndarray, n_bins: int = 10) -> dict[str, Any]:
    """Expected calibration error (top-label, equal-width bins) and the diagram's bins."""
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == labels).astype(float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    bins = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, n_bins - 1)
    ece, bin_conf, bin_acc, bin_count = 0.0, [], [], []
    for b in range(n_bins):
        mask = bins == b
        count = int(mask.sum())
        bin_count.append(count)
        if count == 0:
            bin_conf.append(None)
            bin_acc.append(None)
            continue
        c, a = float(confidence[mask].mean()), float(correct[mask].mean())
        bin_conf.append(c)
        bin_acc.append(a)
        ece += count / len(labels) * abs(a - c)
    return {"ece": float(ece), "bin_edges": edges.tolist(), "bin_confidence": bin_conf, "bin_accuracy": bin_acc,
            "bin_count": bin_count}


def bootstrap_ci(
    labels: np.ndarray, predictions: np.ndarray, *, n_resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals for accuracy and macro-F1 (resampling test images)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    classes = np.unique(labels)
    accs, f1s = np.empty(n_resamples), np.empty(n_resamples)
    for i in range(n_resamples):
        idx = rng.integers(0, n, n)
        accs[i] = accuracy_score(labels[idx], predictions[idx])
        f1s[i] = f1_score(labels[idx], predictions[idx], labels=classes, average="macro", zero_division=0)
    tail = (1 - level) / 2 * 100
    return {
        "accuracy_ci": np.percentile(accs, [tail, 100 - tail]).tolist(),
        "macro_f1_ci": np.percentile(f1s, [tail, 100 - tail]).tolist(),
    }


def classification_metrics(
    labels: Sequence[int], probabilities: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class P/R/F1/AUC, confusion matrix, ROC curves and AUCs."""
    y = np.asarray(labels)
    p = np.asarray(probabilities, dtype=np.float64)
    k = len(class_names)
    pred = p.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=list(range(k)), zero_division=0
    )
    onehot = label_binarize(y, classes=list(range(k)))
    per_class, curves, aucs = {}, {}, []
    for i, name in enumerate(class_names):
        has_both = 0 < onehot[:, i].sum() < len(y)
        auc = float(roc_auc_score(onehot[:, i], p[:, i])) if has_both else None
        if has_both:
            fpr, tpr, _ = roc_curve(onehot[:, i], p[:, i])
            curves[name] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
            aucs.append(auc)
        per_class[name] = {
            "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
            "support": int(support[i]), "auc": auc,
        }
    fpr, tpr, _ = roc_curve(onehot.ravel(), p.ravel())
    curves["micro"] = {"fpr": fpr.round(5).tolist(), "tpr": tpr.round(5).tolist()}
    return {
        "n": int(len(y)),
        "class_names": list(class_names),
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, labels=list(range(k)), average="macro", zero_division=0)),
        "per_class": per_class,
        "confusion_matrix": confusion_matrix(y, pred, labels=list(range(k))).tolist(),
        "roc_auc": {
            "micro": float(roc_auc_score(onehot.ravel(), p.ravel())),
            "macro": float(np.mean(aucs)) if aucs else None,
        },
        "roc_curves": curves,
    }
