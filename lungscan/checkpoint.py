"""Self-describing checkpoints: weights plus everything needed to use and audit them.

A checkpoint is a dict {"format", "meta", "state_dict"} saved with torch.save and
loaded with weights_only=True and strict=True. `meta` holds the architecture, class
names in output order, preprocessing, calibration temperature, the input-gate
statistics, the training recipe, the data fingerprint, the code version and metrics.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import __version__
from .config import PROJECT_ROOT
from .errors import CheckpointError, UnknownArchitectureError
from .registry import create_model

FORMAT = "lungscan-checkpoint/1"
REQUIRED_META = ("arch", "class_names", "preprocessing", "temperature", "recipe", "data_fingerprint", "code_version")


def code_version() -> str:
    """Package version plus the git commit (and '+dirty') when run from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "lungscan", "training"],
            cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    if not commit:
        return __version__
    return f"{__version__}+g{commit}{'.dirty' if dirty else ''}"


def save_checkpoint(path: str | Path, *, model: nn.Module, meta: dict[str, Any]) -> Path:
    """Write atomically (temp file + rename) so a crash never leaves half a checkpoint."""
    missing = [key for key in REQUIRED_META if key not in meta]
    if missing:
        raise CheckpointError(f"checkpoint metadata lacks {', '.join(missing)}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save({"format": FORMAT, "meta": meta, "state_dict": state}, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The raw checkpoint dict, validated; no model is built."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"No checkpoint at {path}.")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean the same here
        raise CheckpointError(f"{path} is not a readable LungScan checkpoint: {exc}") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint.")
    missing = [key for key in REQUIRED_META if key not in payload["meta"]]
    if missing:
        raise CheckpointError(f"{path} metadata lacks {', '.join(missing)}.")
    return payload


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Build the checkpoint's architecture and load its weights strictly; returns (model in eval mode, meta)."""
    payload = read_checkpoint(path)
    meta = payload["meta"]
    try:
        model = create_model(meta["arch"], num_classes=len(meta["class_names"]))
    except UnknownArchitectureError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not match architecture {meta['arch']!r}: {exc}") from exc
    return model.to(device).eval(), meta


def update_metadata(path: str | Path, **updates: Any) -> None:
    """Merge `updates` into a checkpoint's metadata in place (e.g. test metrics after evaluation)."""
    payload = read_checkpoint(path)
    payload["meta"].update(updates)
    tmp = Path(path).with_suffix(".pt.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
