"""Synthetic CT-like slices and dataset folders, so tests never need the real dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from lungscan.classes import CLASS_NAMES

REAL_DATASET = Path(__file__).resolve().parents[2] / "shared" / "data" / "chest-ct"


#: The body ellipse's box, as shares of the slice's width and height: the body nearly fills the slice, as in the
#: real training slices (where the body's box spans a median 98-100 % of each side).
BODY = (0.02, 0.03, 0.98, 0.97)


def body_extent(size: tuple[int, int]) -> tuple[int, int, int, int]:
    """The pixel box of `ct_like`'s body ellipse in a slice of `size`."""
    w, h = size
    return round(BODY[0] * w), round(BODY[1] * h), round(BODY[2] * w), round(BODY[3] * h)


def ct_like(label: int, seed: int = 0, size: tuple[int, int] = (300, 240)) -> Image.Image:
    """A greyscale 'slice': grey body ellipse, two dark lungs, and a class-specific bright nodule.

    The nodule's position and size depend on the class (none for normal), so a small
    model can learn the classes in a few epochs.
    """
    rng = np.random.default_rng(seed * 10 + label)
    w, h = size
    image = Image.new("L", size, 0)
    draw = ImageDraw.Draw(image)
    draw.ellipse((BODY[0] * w, BODY[1] * h, BODY[2] * w, BODY[3] * h), fill=150)
    draw.ellipse((0.18 * w, 0.22 * h, 0.46 * w, 0.78 * h), fill=25)
    draw.ellipse((0.54 * w, 0.22 * h, 0.82 * w, 0.78 * h), fill=25)
    if CLASS_NAMES[label] != "normal":
        cx = (0.28, 0.70, 0.32)[label] * w
        cy = (0.35, 0.55, 0.65)[label] * h
        r = (0.10, 0.07, 0.05)[label] * w
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=235)
    noise = rng.normal(0, 6, (h, w))
    return Image.fromarray(np.clip(np.asarray(image, dtype=float) + noise, 0, 255).astype(np.uint8), "L")


def make_dataset(root: Path, per_class: int = 6, folders: dict[str, str] | None = None,
                 splits: tuple[str, ...] = ("train", "valid", "test")) -> Path:
    """Write root/<split>/<folder>/*.png with `per_class` synthetic images per class."""
    folders = folders or {c: c for c in CLASS_NAMES}
    for split in splits:
        s_index = ("train", "valid", "test").index(split)
        for label, name in enumerate(CLASS_NAMES):
            folder = root / split / folders[name]
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(per_class):
                ct_like(label, seed=1000 * s_index + i).save(folder / f"{i}.png")
    return root
