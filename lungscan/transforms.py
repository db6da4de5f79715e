"""The one definition of preprocessing, shared by training, evaluation and the app.

Pipeline: any image -> 8-bit greyscale (`lungscan.imaging`) -> geometry -> [train:
random augmentation | eval: nothing more] -> 3 identical channels -> float in [0, 1]
-> normalise with the architecture's mean/std.

Two geometries, recorded in every checkpoint:

- ``crop`` (the original model card's): resize the short side to `resize_size` (256
  for a 224 model), then centre-crop `input_size`. On this dataset's slices (median
  width/height 1.45) the crop drops about 40 % of the width, i.e. the lateral lung.
- ``full``: resize the whole slice to `input_size` x `input_size`, so the model sees
  both lungs out to the chest wall, at the cost of a slight horizontal squeeze.

The first two steps are deterministic and produce a small uint8 tensor, so training
decodes each file once and keeps those tensors in memory; augmentation then runs on
tensors and is cheap next to the model's forward and backward passes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


GEOMETRIES = ("crop", "full")
AUGMENTATIONS = ("card", "trivial")


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects as input; stored in every checkpoint."""

    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    geometry: str = "crop"  # crop | full (see the module docstring)

    def __post_init__(self) -> None:
        if self.geometry not in GEOMETRIES:
            raise ValueError(f"unknown geometry {self.geometry!r}; expected one of {', '.join(GEOMETRIES)}")

    @property
    def resize_size(self) -> int:
        return round(self.input_size * 256 / 224)

    def to_dict(self) -> dict:
        return {"input_size": self.input_size, "mean": list(self.mean), "std": list(self.std),
                "geometry": self.geometry}

    @classmethod
    def from_dict(cls, data: dict) -> "Preprocessing":
        return cls(int(data["input_size"]), tuple(data["mean"]), tuple(data["std"]), data.get("geometry", "crop"))


def standardize(image: Image.Image, prep: Preprocessing) -> torch.Tensor:
    """Greyscale PIL image -> uint8 tensor (1, H, W): short side `prep.resize_size` for
    the ``crop`` geometry, exactly `input_size` square for ``full``."""
    if image.mode != "L":
        raise ValueError(f"expected a greyscale 'L' image from lungscan.imaging, got mode {image.mode!r}")
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))[None]
    if prep.geometry == "full":
        return F.resize(tensor, [prep.input_size, prep.input_size], antialias=True)
    return F.resize(tensor, [prep.resize_size], antialias=True)


def _finish(prep: Preprocessing) -> list[v2.Transform]:
    return [
        v2.Lambda(lambda t: t.expand(3, -1, -1) if t.shape[-3] == 1 else t),
        v2.ToDtype(torch.float32, scale=True),
        v2.Normalize(mean=list(prep.mean), std=list(prep.std)),
    ]


def train_transform(prep: Preprocessing, augment: str = "card") -> v2.Compose:
    """Training augmentation on standardized uint8 tensors.

    ``card``: random resized crop (60-100 % of the area), horizontal flip, rotation up to
    10 degrees and brightness/contrast jitter of 20 %: the original model card's
    augmentation, applied to the greyscale slice.
    ``trivial``: the same crop and flip, then TrivialAugmentWide (Müller & Hutter, 2021;
    torchvision's classification recipe) in place of the rotation and jitter: one of
    its geometric or intensity operations per image, at a random strength.
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augment!r}; expected one of {', '.join(AUGMENTATIONS)}")
    crop_and_flip = [v2.RandomResizedCrop(prep.input_size, scale=(0.6, 1.0), antialias=True), v2.RandomHorizontalFlip()]
    if augment == "trivial":
        return v2.Compose([*crop_and_flip, v2.TrivialAugmentWide(), *_finish(prep)])
    return v2.Compose([*crop_and_flip, v2.RandomRotation(10), v2.ColorJitter(brightness=0.2, contrast=0.2),
                       *_finish(prep)])


def eval_transform(prep: Preprocessing) -> v2.Compose:
    """Deterministic transform used for validation, test and the app (a no-op crop for ``full``)."""
    return v2.Compose([v2.CenterCrop(prep.input_size), *_finish(prep)])


def model_view(image: Image.Image, prep: Preprocessing) -> Image.Image:
    """The exact greyscale image the model sees, for overlays and reports."""
    crop = F.center_crop(standardize(image, prep), [prep.input_size])
    return Image.fromarray(crop[0].numpy(), mode="L")


def at_slice_aspect(view: Image.Image, slice_size: tuple[int, int], prep: Preprocessing) -> Image.Image:
    """A model view (or a heatmap over it) stretched back to the slice's width/height, for display.

    Only the ``full`` geometry squeezes the slice; a ``crop`` view is returned unchanged.
    """
    if prep.geometry != "full":
        return view
    width, height = slice_size
    return view.resize((max(1, round(view.height * width / height)), view.height), Image.Resampling.BILINEAR)


def preprocess(image: Image.Image, prep: Preprocessing) -> torch.Tensor:
    """Greyscale PIL image -> normalised float tensor (3, input_size, input_size)."""
    return eval_transform(prep)(standardize(image, prep))
