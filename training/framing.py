"""How tightly the slices of each split and class are framed around the body.

    python -m training.framing --data ../shared/data/chest-ct

For every split and class: the median share of the slice's width and height that the body's box
(`lungscan.transforms.body_box`, which keeps a 2 % margin) spans, and how many slices are framed more loosely than
`MIN_BODY_SPAN`, the point below which the app crops a slice to the body before analysis. This reads images only; it
uses no model and no prediction, so it can be run on the test split without touching model selection.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from lungscan.classes import CLASS_NAMES
from lungscan.data import list_samples
from lungscan.imaging import load_image
from lungscan.transforms import MIN_BODY_SPAN, body_box, body_span


def spans(path: Path) -> tuple[float, float]:
    """The share of the slice's width and height that the body's box spans."""
    image = load_image(path)
    return body_span(image, body_box(image))


def framing_table(data: Path, splits: tuple[str, ...] = ("train", "valid", "test")) -> str:
    lines = ["| split | class | files | median width span | median height span | framed loosely |",
             "|---|---|---|---|---|---|"]
    for split in splits:
        samples = list_samples(data, split)
        for label, name in enumerate(CLASS_NAMES):
            found = np.array([spans(s.path) for s in samples if s.label == label]).reshape(-1, 2)
            if not len(found):
                continue
            width, height = np.median(found, axis=0)
            loose = int((found.min(axis=1) < MIN_BODY_SPAN).sum())
            lines.append(f"| {split} | {name} | {len(found)} | {width:.2f} | {height:.2f} | {loose} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    a = p.parse_args(argv)
    print(framing_table(a.data))
    print(f"\nframed loosely: the body's box spans under {MIN_BODY_SPAN:.0%} of the width or the height")


if __name__ == "__main__":
    main()
