"""The students' demo gallery: a few public dataset images per class, never patient records."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .classes import CLASS_NAMES, class_from_folder
from .data import split_dir
from .errors import DatasetError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass(frozen=True)
class GalleryImage:
    path: Path
    class_name: str
    split: str

    @property
    def label(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}"


def gallery_images(dataset_dir: Path | None, *, split: str = "test", per_class: int = 8) -> list[GalleryImage]:
    """Up to `per_class` images of each class from one split, in a stable order; [] when the dataset is absent.

    The test split is the default so that students see images the models were not trained on.
    """
    if dataset_dir is None or not Path(dataset_dir).is_dir():
        return []
    try:
        base = split_dir(Path(dataset_dir), split)
    except DatasetError as exc:
        log.info("Demo gallery unavailable: %s", exc)
        return []
    found: dict[str, list[GalleryImage]] = {name: [] for name in CLASS_NAMES}
    for folder in sorted(p for p in base.iterdir() if p.is_dir()):
        try:
            class_name = class_from_folder(folder.name)
        except DatasetError:
            continue
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        found[class_name].extend(GalleryImage(path, class_name, split) for path in files)
    return [image for name in CLASS_NAMES for image in found[name][:per_class]]
