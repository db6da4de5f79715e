"""The one definition of preprocessing, shared by training, evaluation and the app.

Pipeline: any image -> 8-bit greyscale (`lungscan.imaging`) -> geometry -> [train:
random augmentation | eval: nothing more] -> 3 identical channels -> float in [0, 1]
-> normalise with the architecture's mean/std.

Three geometries, recorded in every checkpoint:

- ``crop`` (the original model card's): resize the short side to `resize_size` (256
  for a 224 model), then centre-crop `input_size`. On this dataset's slices (median
  width/height 1.45) the crop drops about 40 % of the width, i.e. the lateral lung.
- ``full``: resize the whole slice to `input_size` x `input_size`, so the model sees
  both lungs out to the chest wall, at the cost of a slight horizontal squeeze.
- ``body``: crop the slice to the patient's body (`body_box`: the largest bright region,
  so the black surround, the scanner table and burnt-in text fall away), then resize
  that crop like ``full``. Screenshots are framed by whoever took them: in this dataset
  the body's box spans a median 98-100 % of each side of the training and validation
  slices but 79-85 % of the height of the test slices of the cancer classes
  (`python -m training.framing`), and a clinic's own screenshots are framed any way at
  all. Cropping to the body makes the model's input independent of that framing.

For the ``crop`` and ``full`` geometries too, a slice framed more loosely than most
training slices (the body under `MIN_BODY_SPAN` of its width or height) is first cropped
to the body (`model_region`), in training, validation and at inference alike, so that it
looks like the slices these models learn from; `framing_warning` tells the user.

The first two steps are deterministic and produce a small uint8 tensor, so training
decodes each file once and keeps those tensors in memory; augmentation then runs on
tensors and is cheap next to the model's forward and backward passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from PIL import Image
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F


GEOMETRIES = ("crop", "full", "body")
BODY_THRESHOLD = 30  # grey level above the black surround of a CT screenshot (air outside the body is ~0)
BODY_MARGIN = 0.02  # of the body's width and height, kept on each side
#: A slice whose body spans less than this share of its width or height is framed more loosely than the training
#: slices (where the body's box spans a median 98-100 % of each side; under 0.9 in 25 of 613 training files).
MIN_BODY_SPAN = 0.9
AUGMENTATIONS = ("card", "trivial", "window", "window-lowres")
Box = tuple[int, int, int, int]  # (left, top, right, bottom) in pixels


@dataclass(frozen=True)
class Preprocessing:
    """What a model expects as input; stored in every checkpoint."""

    input_size: int = 224
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    geometry: str = "crop"  # crop | full | body (see the module docstring)

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


def body_box(image: Image.Image) -> Box:
    """(left, top, right, bottom) of the patient's body in a greyscale slice, with a small margin.

    The body is the largest connected region brighter than the black surround, after a
    morphological opening that detaches thin things (table edges, text, calipers) from
    it. A slice without a dark surround, or whose largest region's box covers under 1/16 of the slice (a
    quarter of each side), is returned whole: there is nothing to crop, or no clear body to crop to.
    """
    pixels = np.asarray(image)
    height, width = pixels.shape
    side = max(3, round(min(height, width) / 100) | 1)
    mask = cv2.morphologyEx((pixels > BODY_THRESHOLD).astype(np.uint8), cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if count < 2:
        return 0, 0, width, height
    left, top, box_w, box_h, _ = stats[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))]
    if box_w * box_h < width * height / 16:
        return 0, 0, width, height
    pad_x, pad_y = round(box_w * BODY_MARGIN), round(box_h * BODY_MARGIN)
    return (max(0, left - pad_x), max(0, top - pad_y), min(width, left + box_w + pad_x),
            min(height, top + box_h + pad_y))


def body_span(image: Image.Image, box: Box) -> tuple[float, float]:
    """The share of the slice's width and height that the body's `box` (from `body_box`) spans."""
    left, top, right, bottom = box
    return (right - left) / image.width, (bottom - top) / image.height


def loose_span(image: Image.Image, box: Box) -> tuple[float, float] | None:
    """`body_span` when the slice is framed more loosely than the training slices (under `MIN_BODY_SPAN` of its width
    or height); None otherwise."""
    span = body_span(image, box)
    return span if min(span) < MIN_BODY_SPAN else None


def model_region(image: Image.Image, prep: Preprocessing, box: Box | None = None) -> Box:
    """The part of the slice the model is shown, in training and at inference, as (left, top, right, bottom).

    The body's box for the ``body`` geometry, and for the others when the slice is framed more loosely than the
    training slices (the body spans under `MIN_BODY_SPAN` of its width or height); the whole slice otherwise.
    `box`: the slice's `body_box`, when the caller has it already.
    """
    box = box or body_box(image)
    if prep.geometry == "body" or loose_span(image, box):
        return box
    return 0, 0, *image.size


def framing_warning(image: Image.Image, prep: Preprocessing, box: Box | None = None) -> str | None:
    """What the user should know when a model that sees the whole slice gets one framed more loosely than most
    training slices: the slice was cropped to the body before analysis (`model_region`).

    A model with the ``body`` geometry crops every slice to the body and never needs it.
    """
    if prep.geometry == "body":
        return None
    box = box or body_box(image)
    span = loose_span(image, box)
    if span is None:
        return None
    width, height = span
    left, top, right, bottom = box
    # Whole percents rounded down, so a span just under the threshold never reads as the threshold itself.
    return (f"The body spans only {math.floor(width * 100)}% of this slice's width and {math.floor(height * 100)}% of "
            "its height, more loosely than the slices the model learned from, which are cropped close to the body. "
            f"It was analysed cropped to the body (x {left}-{right}, y {top}-{bottom} px of {image.width}x"
            f"{image.height}); check that the crop holds the whole chest.")


def resolution_warning(image: Image.Image, prep: Preprocessing, box: Box | None = None) -> str | None:
    """What the user should know when the part of the slice the model is shown (`model_region`) is smaller than the
    model's input: it is enlarged, and so blurred, before analysis.

    In this dataset nearly every training slice that small shows a cancer (78 of the 80 whose short side is under
    224 px; the `normal` screenshots are larger), and slices shrunk below the input are misread more often, in both
    directions: on validation some `normal` slices are then called cancer, on test (at 128 px) some cancer slices
    normal (`training.evaluate`'s resolution probe).
    """
    left, top, right, bottom = model_region(image, prep, box)
    side = min(right - left, bottom - top)
    if side >= prep.input_size:
        return None
    return (f"The slice the model was shown is only {side} px on its short side, below the model's {prep.input_size} "
            "px input, so it was enlarged, and blurred, for analysis. Nearly all the training slices this small show "
            "a cancer, and blurred slices are misread more often: use a larger export or the DICOM file if you can.")


def standardize(image: Image.Image, prep: Preprocessing, box: Box | None = None) -> torch.Tensor:
    """Greyscale PIL image -> its `model_region` -> uint8 tensor (1, H, W): short side `prep.resize_size` for
    the ``crop`` geometry, exactly `input_size` square for ``full`` and ``body``."""
    if image.mode != "L":
        raise ValueError(f"expected a greyscale 'L' image from lungscan.imaging, got mode {image.mode!r}")
    region = model_region(image, prep, box)
    if region != (0, 0, *image.size):
        image = image.crop(region)
    tensor = torch.from_numpy(np.array(image, dtype=np.uint8, copy=True))[None]
    if prep.geometry in ("full", "body"):
        return F.resize(tensor, [prep.input_size, prep.input_size], antialias=True)
    return F.resize(tensor, [prep.resize_size], antialias=True)


class RandomWindow(torch.nn.Module):
    """A uint8 greyscale slice shown through a random linear grey-level map, clipped to 0-255: what another CT
    window would have made of it.

    The training screenshots come in a few display styles (most cancer slices show the lungs near black and the
    body mid-grey; most `normal` slices, like the lung window, show both brighter). A gain of 0.6-1.8 (log-uniform)
    and an offset of -40 to +70 grey levels span the maps between those styles and the lung window, grey air
    included.
    """

    def __init__(self, gain: tuple[float, float] = (0.6, 1.8), offset: tuple[float, float] = (-40.0, 70.0)) -> None:
        super().__init__()
        self.log_gain = (math.log(gain[0]), math.log(gain[1]))
        self.offset = offset

    def forward(self, slice_: torch.Tensor) -> torch.Tensor:
        gain = math.exp(float(torch.empty(()).uniform_(*self.log_gain)))
        offset = float(torch.empty(()).uniform_(*self.offset))
        return (slice_.float() * gain + offset).round().clamp(0, 255).to(torch.uint8)


class RandomLowResolution(torch.nn.Module):
    """A uint8 slice shown as a smaller source image would be: resized down by a random factor of its sides
    (`scale`, log-uniform), then back up to its size.

    Every slice is resized to the model's input, so a slice's own size cannot reach the model, but its sharpness
    can: the `normal` screenshots are larger (a median 600x479 against about 410x275 for the cancer classes) and,
    resized down to the input, sharper. On validation slices shrunk before analysis (`training.evaluate`'s
    resolution probe), models trained without this call some `normal` slices cancer and no cancer slice normal.
    """

    def __init__(self, scale: tuple[float, float] = (0.5, 1.0)) -> None:
        super().__init__()
        self.log_scale = (math.log(scale[0]), math.log(scale[1]))

    def forward(self, slice_: torch.Tensor) -> torch.Tensor:
        scale = math.exp(float(torch.empty(()).uniform_(*self.log_scale)))
        height, width = slice_.shape[-2:]
        small = F.resize(slice_, [max(1, round(height * scale)), max(1, round(width * scale))], antialias=True)
        return F.resize(small, [height, width], antialias=True)


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
    ``window``: the card's crop, flip and rotation, then, in place of the 20 % jitter,
    `RandomWindow` on 80 % of the slices: the contrast of another CT window, so that the
    model cannot lean on the few display styles of the training screenshots.
    ``window-lowres``: ``window``, after showing half the slices at a lower resolution
    (`RandomLowResolution`, 50-100 % of each side), so that the model cannot lean on how
    sharp the larger `normal` screenshots are.
    """
    if augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augment!r}; expected one of {', '.join(AUGMENTATIONS)}")
    crop_and_flip = [v2.RandomResizedCrop(prep.input_size, scale=(0.6, 1.0), antialias=True), v2.RandomHorizontalFlip()]
    if augment == "trivial":
        return v2.Compose([*crop_and_flip, v2.TrivialAugmentWide(), *_finish(prep)])
    if augment in ("window", "window-lowres"):
        low_res = [v2.RandomApply([RandomLowResolution()], p=0.5)] if augment == "window-lowres" else []
        return v2.Compose([*low_res, *crop_and_flip, v2.RandomRotation(10), v2.RandomApply([RandomWindow()], p=0.8),
                           *_finish(prep)])
    return v2.Compose([*crop_and_flip, v2.RandomRotation(10), v2.ColorJitter(brightness=0.2, contrast=0.2),
                       *_finish(prep)])


def eval_transform(prep: Preprocessing) -> v2.Compose:
    """Deterministic transform used for validation, test and the app (a no-op crop for ``full`` and ``body``)."""
    return v2.Compose([v2.CenterCrop(prep.input_size), *_finish(prep)])


def model_view(image: Image.Image, prep: Preprocessing) -> Image.Image:
    """The exact greyscale image the model sees, for overlays and reports."""
    crop = F.center_crop(standardize(image, prep), [prep.input_size])
    return Image.fromarray(crop[0].numpy(), mode="L")


def at_slice_aspect(view: Image.Image, image: Image.Image, prep: Preprocessing) -> Image.Image:
    """A model view of `image` (or a heatmap over it) stretched back to the width/height of
    the region it shows, for display.

    ``full`` squeezes its `model_region` (the whole slice, or the body of a loosely framed one) and ``body`` the
    body's box to a square; a ``crop`` view is returned unchanged.
    """
    if prep.geometry == "crop":
        return view
    left, top, right, bottom = model_region(image, prep)
    width, height = right - left, bottom - top
    return view.resize((max(1, round(view.height * width / height)), view.height), Image.Resampling.BILINEAR)


def preprocess(image: Image.Image, prep: Preprocessing, box: Box | None = None) -> torch.Tensor:
    """Greyscale PIL image -> normalised float tensor (3, input_size, input_size); `box`: its `body_box`, if known."""
    return eval_transform(prep)(standardize(image, prep, box))
