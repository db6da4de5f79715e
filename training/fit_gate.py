"""(Re)fit a checkpoint's input-gate statistics without retraining.

    python -m training.fit_gate --checkpoint models/efficientnet_lite0/checkpoint.pt --data ../shared/data/chest-ct

Uses the same de-duplicated train/valid splits as training (statistics from train,
threshold from valid) and writes them into the checkpoint's metadata.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from lungscan.checkpoint import load_checkpoint, update_metadata
from lungscan.data import CachedCTDataset
from lungscan.gate import fit_gate
from lungscan.transforms import Preprocessing

from .train import load_splits

log = logging.getLogger("lungscan.fit_gate")


def refit(checkpoint: Path, data: Path) -> dict:
    model, meta = load_checkpoint(checkpoint)
    prep = Preprocessing.from_dict(meta["preprocessing"])
    splits = load_splits(data)
    stats = fit_gate(model, meta["arch"], CachedCTDataset(splits["train"], prep, train=False),
                     CachedCTDataset(splits["valid"], prep, train=False), model_device(model))
    update_metadata(checkpoint, gate=stats)
    return stats


def model_device(model):
    return next(model.parameters()).device


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, nargs="+", required=True)
    p.add_argument("--data", type=Path, required=True)
    a = p.parse_args(argv)
    for checkpoint in a.checkpoint:
        stats = refit(checkpoint, a.data)
        log.info("%s: gate threshold %.2f (valid p50 %.2f, p99 %.2f)", checkpoint, stats["threshold"],
                 stats["valid_p50"], stats["valid_p99"])


if __name__ == "__main__":
    main()
