"""Input gate: is this plausibly a chest CT slice like the ones the model learned from?

Two checks. A blank or near-uniform image is refused outright. Otherwise the image's
pooled activations at a mid-depth layer (the spec's `gate_layer`; the classifier's own
input is too class-specific after fine-tuning to tell a photo from a slice) are
compared with the training distribution by Mahalanobis distance to the nearest class
mean under a shared, shrunk (Ledoit-Wolf) covariance (Lee et al., 2018). The
threshold is set on the validation split, which the statistics never saw: images
further than THRESHOLD_MARGIN x its 99th percentile are flagged as out of distribution,
so a photo, a document or another kind of image does not get a confident cancer label.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch
from PIL import Image
from sklearn.covariance import LedoitWolf
from torch import nn
from torch.utils.data import DataLoader, Dataset

from .registry import get_spec

#: Standard deviation (grey levels) under which an image carries no anatomy.
MIN_CONTRAST = 8.0
#: Threshold = this factor x the 99th percentile of validation-split distances.
THRESHOLD_MARGIN = 1.15

_hook_lock = threading.Lock()


@dataclass(frozen=True)
class GateResult:
    ok: bool
    reason: str | None = None
    score: float | None = None
    threshold: float | None = None


@contextmanager
def capture_gate_features(model: nn.Module, arch: str) -> Iterator[list[torch.Tensor]]:
    """Record the spatially pooled output of the architecture's gate layer during forward passes."""
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        features = output.detach().float()
        if features.ndim == 4:
            features = features.mean(dim=(2, 3))
        captured.append(features.flatten(1).cpu())

    with _hook_lock:
        handle = get_spec(arch).gate_layer(model).register_forward_hook(hook)
        try:
            yield captured
        finally:
            handle.remove()


@torch.no_grad()
def extract_features(model: nn.Module, arch: str, dataset: Dataset, device: torch.device) -> np.ndarray:
    model.eval()
    with capture_gate_features(model, arch) as captured:
        for x, _ in DataLoader(dataset, batch_size=64):
            model(x.to(device).contiguous(memory_format=torch.channels_last))
    return torch.cat(captured).numpy()


def _distances(features: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    diffs = features[:, None, :] - means[None, :, :]
    return np.sqrt(np.einsum("ncd,de,nce->nc", diffs, precision, diffs).min(axis=1))


def fit_gate(model: nn.Module, arch: str, train_ds: Dataset, valid_ds: Dataset, device: torch.device) -> dict:
    """Class means, shared precision matrix and threshold, as tensors for the checkpoint."""
    train_x = extract_features(model, arch, train_ds, device)
    train_y = np.asarray(train_ds.labels)
    classes = np.unique(train_y)
    means = np.stack([train_x[train_y == c].mean(axis=0) for c in classes])
    centred = train_x - means[np.searchsorted(classes, train_y)]
    precision = LedoitWolf().fit(centred).precision_
    held_out = _distances(extract_features(model, arch, valid_ds, device), means, precision)
    threshold = float(np.percentile(held_out, 99) * THRESHOLD_MARGIN)
    return {
        "means": torch.from_numpy(means.astype(np.float32)),
        "precision": torch.from_numpy(precision.astype(np.float32)),
        "threshold": threshold,
        "valid_p50": float(np.percentile(held_out, 50)),
        "valid_p99": float(np.percentile(held_out, 99)),
    }


def check_contrast(image: Image.Image) -> GateResult | None:
    """A refusal for blank images, or None when the image has enough contrast."""
    std = float(np.asarray(image, dtype=np.float32).std())
    if std < MIN_CONTRAST:
        return GateResult(False, "The image is blank or nearly uniform; it shows no anatomy to classify.")
    return None


def check_features(features: np.ndarray, stats: dict | None) -> GateResult:
    """Compare one image's features with the training distribution."""
    if not stats:
        return GateResult(True, None)
    score = float(_distances(features.reshape(1, -1), stats["means"].numpy(), stats["precision"].numpy())[0])
    threshold = float(stats["threshold"])
    if score > threshold:
        return GateResult(
            False,
            "This image does not look like the chest CT slices the model was trained on "
            f"(distance {score:.1f} > {threshold:.1f}). It may be a photo, a document or another kind of scan; "
            "the predicted class is not meaningful for it.",
            score, threshold,
        )
    return GateResult(True, None, score, threshold)
