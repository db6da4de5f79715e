"""Would flip test-time augmentation or an ensemble of runs do better? Validation split only.

    python -m training.validation_probe --data ../shared/data/chest-ct CHECKPOINT [CHECKPOINT ...]

For each checkpoint: accuracy and mean negative log-likelihood (calibrated) on the
de-duplicated validation split the trainer selects on, alone, with horizontal-flip
test-time augmentation (logits averaged over the slice and its mirror image) and, with
`--sizes`, at other input sizes than the one it was trained at (the train/test
resolution discrepancy of Touvron et al., 2019); then the average of the calibrated
probabilities of every prefix of the checkpoint list (first two, first three, ...). The
test split is never read. Nothing here changes the app: it answers whether such a change
would be worth making.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch

from lungscan.imaging import load_image
from lungscan.inference import Predictor
from lungscan.transforms import preprocess

from .train import load_splits


@torch.inference_mode()
def log_probabilities(predictor: Predictor, images, flip: bool = False, size: int | None = None) -> np.ndarray:
    """Calibrated log-probabilities, one row per image; `size` overrides the checkpoint's input size."""
    prep = dataclasses.replace(predictor.prep, input_size=size or predictor.prep.input_size)
    rows = []
    for image in images:
        x = preprocess(image, prep)[None].contiguous(memory_format=torch.channels_last)
        logits = predictor.model(x).float()
        if flip:
            logits = (logits + predictor.model(torch.flip(x, dims=[3])).float()) / 2
        rows.append(torch.log_softmax(logits[0] / predictor.temperature, dim=0).numpy())
    return np.stack(rows)


def summary(name: str, log_p: np.ndarray, labels: np.ndarray) -> str:
    accuracy = float((log_p.argmax(1) == labels).mean())
    nll = float(-log_p[np.arange(len(labels)), labels].mean())
    return f"| {name} | {accuracy:.3f} | {nll:.3f} |"


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--sizes", type=lambda v: [int(x) for x in v.split(",")], default=[],
                   help="also evaluate at these input sizes, comma-separated (e.g. 240,256)")
    p.add_argument("checkpoints", type=Path, nargs="+")
    a = p.parse_args(argv)
    samples = load_splits(a.data)["valid"]  # the split the trainer selects on
    images = [load_image(s.path.read_bytes()) for s in samples]
    labels = np.array([s.label for s in samples])
    print(f"validation: {len(samples)} images\n\n| model | valid acc | valid NLL |\n|---|---|---|")
    names, plain = [], []
    for checkpoint in a.checkpoints:
        predictor = Predictor.from_checkpoint(checkpoint, device="cpu", engine="eager")
        names.append(checkpoint.parent.name)
        plain.append(log_probabilities(predictor, images))
        print(summary(names[-1], plain[-1], labels))
        print(summary(f"{names[-1]} + flip TTA", log_probabilities(predictor, images, flip=True), labels))
        for size in a.sizes:
            print(summary(f"{names[-1]} at {size} px", log_probabilities(predictor, images, size=size), labels))
    for k in range(2, len(names) + 1):
        mean = np.log(np.mean(np.exp(plain[:k]), axis=0))
        print(summary("ensemble of " + " + ".join(names[:k]), mean, labels))


if __name__ == "__main__":
    main()
