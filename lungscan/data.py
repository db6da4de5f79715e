"""Dataset discovery, de-duplication and an in-memory dataset for training.

Accepts the Kaggle layout (`Data/{train,valid,test}/<class folder>`), the same without
`Data/`, and folders named `val`/`validation`; class folders are mapped by
`lungscan.classes.class_from_folder`.
"""

from __future__ import annotations

import copy
import hashlib
import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .classes import CLASS_NAMES, class_from_folder
from .errors import DatasetError
from .imaging import load_image
from .transforms import Preprocessing, eval_transform, standardize, train_transform

log = logging.getLogger(__name__)

SPLIT_ALIASES: dict[str, tuple[str, ...]] = {
    "train": ("train", "training"),
    "valid": ("valid", "val", "validation"),
    "test": ("test", "testing"),
}


@dataclass(frozen=True)
class Sample:
    path: Path
    label: int
    md5: str

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.label]


def split_dir(root: Path, split: str) -> Path:
    """The folder that holds `split` under `root` (with or without a `Data/` level)."""
    if split not in SPLIT_ALIASES:
        raise DatasetError(f"Unknown split {split!r}; use one of {', '.join(SPLIT_ALIASES)}.")
    root = Path(root)
    for base in (root, root / "Data", root / "data"):
        for alias in SPLIT_ALIASES[split]:
            if (base / alias).is_dir():
                return base / alias
    raise DatasetError(
        f"No {split!r} folder under {root}. Unpack the Kaggle 'Chest CT-Scan images' dataset into "
        f"data/chest-ct/ (so that data/chest-ct/{split}/<class>/ exists) or pass --data."
    )


def file_md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def list_samples(root: Path, split: str) -> list[Sample]:
    """Every file in a split's class folders, sorted for reproducibility."""
    base = split_dir(root, split)
    samples = []
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        label = CLASS_NAMES.index(class_from_folder(folder.name))
        for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
            samples.append(Sample(path, label, file_md5(path)))
    if not samples:
        raise DatasetError(f"The {split!r} folder {base} holds no images.")
    return samples


def deduplicate(samples: Sequence[Sample], *, exclude_md5: Iterable[str] = ()) -> list[Sample]:
    """Drop exact duplicates (keep the first), files whose bytes carry two labels, and `exclude_md5`.

    Used on the training split (the public set repeats `normal` images many times and
    has one byte-identical pair under two labels) and to keep validation images that
    also sit in train from steering model selection.
    """
    excluded = set(exclude_md5)
    labels_by_md5: dict[str, set[int]] = {}
    for sample in samples:
        labels_by_md5.setdefault(sample.md5, set()).add(sample.label)
    conflicting = {md5 for md5, labels in labels_by_md5.items() if len(labels) > 1}
    if conflicting:
        log.warning("dropping %d image(s) that appear under more than one label", len(conflicting))
    kept, seen = [], set()
    for sample in samples:
        if sample.md5 in seen or sample.md5 in conflicting or sample.md5 in excluded:
            continue
        seen.add(sample.md5)
        kept.append(sample)
    return kept


def fingerprint(samples_by_split: dict[str, Sequence[Sample]]) -> dict:
    """A digest of exactly which files (by content) and labels a model was trained and selected on."""
    digest = hashlib.sha256()
    for split in sorted(samples_by_split):
        for sample in sorted(samples_by_split[split], key=lambda s: (s.md5, s.label)):
            digest.update(f"{split}:{sample.md5}:{sample.label}\n".encode())
    return {
        "sha256": digest.hexdigest(),
        "counts": {
            split: dict(sorted(Counter(CLASS_NAMES[s.label] for s in samples).items()))
            for split, samples in samples_by_split.items()
        },
    }


class CachedCTDataset(Dataset):
    """Decodes every file once into a standardized uint8 tensor, then augments on the fly."""

    def __init__(self, samples: Sequence[Sample], prep: Preprocessing, *, train: bool, augment: str = "card") -> None:
        self.samples = list(samples)
        self.prep = prep
        self.images = [standardize(load_image(s.path), prep) for s in self.samples]
        self.labels = torch.tensor([s.label for s in self.samples])
        self.transform = train_transform(prep, augment) if train else eval_transform(prep)

    def unaugmented(self) -> CachedCTDataset:
        """The same decoded images under the evaluation transform, without decoding the files again."""
        view = copy.copy(self)
        view.transform = eval_transform(self.prep)
        return view

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.transform(self.images[index]), int(self.labels[index])
