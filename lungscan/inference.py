"""Loading a checkpoint once and classifying CT slices with calibrated probabilities."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .checkpoint import load_checkpoint
from .devices import autocast, pick_device, use_bf16
from .errors import CheckpointError
from .frozen import freeze
from .gate import GateResult, capture_gate_features, check_contrast, check_features
from .registry import ARCHITECTURES
from .transforms import Box, Preprocessing, body_box, framing_warning, model_view, preprocess, resolution_warning

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "checkpoint.pt"
DEFAULT_FILE = "default.txt"
ENGINES = ("auto", "eager")


@dataclass(frozen=True)
class Prediction:
    label: str
    confidence: float
    probabilities: dict[str, float]
    class_names: tuple[str, ...]
    arch: str
    model_version: str
    gate: GateResult = field(default_factory=lambda: GateResult(True))
    logits: tuple[float, ...] = ()
    framing_warning: str | None = None  # set when a loosely framed slice was cropped to the body first
    resolution_warning: str | None = None  # set when the slice shown to the model is smaller than its input

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "confidence": self.confidence,
            "probabilities": self.probabilities,
            "model": self.arch,
            "model_version": self.model_version,
            "in_distribution": self.gate.ok,
            "gate_reason": self.gate.reason,
            "framing_warning": self.framing_warning,
            "resolution_warning": self.resolution_warning,
        }


class Predictor:
    """A loaded model plus everything its checkpoint says about using it.

    Thread-safe for prediction (no state changes after construction), so the app
    caches one per checkpoint and shares it across sessions.
    """

    def __init__(self, model: nn.Module, meta: dict[str, Any], device: torch.device, precision: str = "fp32",
                 engine: str = "auto") -> None:
        if engine not in ENGINES:
            raise ValueError(f"unknown engine {engine!r}; expected one of {', '.join(ENGINES)}")
        #: The eager model: Grad-CAM and the training tools use it; `predict` too, unless a frozen graph runs.
        self.model = model.to(device).eval().to(memory_format=torch.channels_last)
        self.meta = meta
        self.device = device
        self.arch: str = meta["arch"]
        self.class_names: tuple[str, ...] = tuple(meta["class_names"])
        self.prep = Preprocessing.from_dict(meta["preprocessing"])
        self.temperature = float(meta["temperature"])
        self.model_version: str = f"{self.arch}@{meta['code_version']}"
        #: fp32 by default: the reference numbers. bf16 autocast ("bf16", or "auto" on CPUs with native bf16)
        #: runs the eager model, faster than eager fp32 only on such CPUs, and moves logits by up to a few
        #: tenths (see README); see devices.use_bf16.
        self.bf16 = use_bf16(device, precision)
        self.precision = "bf16" if self.bf16 else "fp32"
        #: "auto": a frozen TorchScript graph (lungscan.frozen, about 2x faster) for fp32 on CPU when it
        #: matches the eager model; "eager" always runs the model as it is.
        self._frozen = None
        if engine == "auto" and device.type == "cpu" and not self.bf16:
            self._frozen = freeze(self.model, self.arch, self.prep.input_size)
        self.engine = "frozen" if self._frozen is not None else "eager"

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str | torch.device | None = None,
                        precision: str = "fp32", engine: str = "auto") -> Predictor:
        device = pick_device("auto" if device is None else str(device))
        model, meta = load_checkpoint(path, device=device)
        predictor = cls(model, meta, device, precision, engine)
        log.info("loaded %s from %s on %s (%s, %s)", meta["arch"], path, device, predictor.precision,
                 predictor.engine)
        return predictor

    def model_view(self, image: Image.Image) -> Image.Image:
        """The greyscale image the model actually sees (for overlays)."""
        return model_view(image, self.prep)

    def input_tensor(self, image: Image.Image, box: Box | None = None) -> torch.Tensor:
        return preprocess(image, self.prep, box)[None].to(self.device).contiguous(memory_format=torch.channels_last)

    @torch.inference_mode()
    def predict(self, image: Image.Image) -> Prediction:
        """Classify one greyscale slice (from `lungscan.imaging.load_image`)."""
        refusal = check_contrast(image)
        box = body_box(image)  # found once: for the model's input and for both notes
        if self._frozen is not None:
            logits, features = self._frozen(self.input_tensor(image, box))
            logits, features = logits[0], features[0]
        else:
            with capture_gate_features(self.model, self.arch) as captured, autocast(self.device, self.bf16):
                logits = self.model(self.input_tensor(image, box)).float()[0].cpu()
            features = captured[0][0]
        probabilities = torch.softmax(logits / self.temperature, dim=0).numpy()
        gate = refusal or check_features(features.numpy(), self.meta.get("gate"))
        best = int(np.argmax(probabilities))
        return Prediction(
            label=self.class_names[best],
            confidence=float(probabilities[best]),
            probabilities={name: float(p) for name, p in zip(self.class_names, probabilities)},
            class_names=self.class_names,
            arch=self.arch,
            model_version=self.model_version,
            gate=gate,
            logits=tuple(float(v) for v in logits),
            framing_warning=framing_warning(image, self.prep, box),
            resolution_warning=resolution_warning(image, self.prep, box),
        )


def available_checkpoints(models_dir: str | Path) -> dict[str, Path]:
    """Registered architectures with a checkpoint under models_dir/<arch>/, in registry order."""
    models_dir = Path(models_dir)
    return {arch: models_dir / arch / CHECKPOINT_NAME for arch in ARCHITECTURES
            if (models_dir / arch / CHECKPOINT_NAME).is_file()}


def default_arch(models_dir: str | Path) -> str:
    path = Path(models_dir) / DEFAULT_FILE
    return path.read_text().strip() if path.is_file() else "efficientnet_lite0"


def default_checkpoint(models_dir: str | Path) -> Path:
    """The default model's checkpoint; a clear error when it is missing."""
    arch = default_arch(models_dir)
    path = Path(models_dir) / arch / CHECKPOINT_NAME
    if not path.is_file():
        raise CheckpointError(
            f"The default model ({arch}) has no checkpoint at {path}. Train it with "
            f"`python -m training.train --arch {arch} --data data/chest-ct --out {path.parent}`."
        )
    return path


def resolve_model(name_or_path: str | None, models_dir: str | Path) -> Path:
    """A checkpoint path from an architecture name, a file path, or None for the default."""
    if name_or_path is None:
        return default_checkpoint(models_dir)
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    if name_or_path in ARCHITECTURES:
        path = Path(models_dir) / name_or_path / CHECKPOINT_NAME
        if path.is_file():
            return path
        raise CheckpointError(f"No checkpoint for {name_or_path} at {path}; train it first.")
    raise CheckpointError(
        f"{name_or_path!r} is neither a checkpoint file nor an architecture ({', '.join(ARCHITECTURES)})."
    )
