"""Train one architecture on a Chest CT folder dataset.

    python -m training.train --arch efficientnet_lite0 --data ../shared/data/chest-ct --out models/efficientnet_lite0

The default recipe is the original model card's: Adam, lr 1e-5 for a pretrained
backbone and 1e-4 for the head (a backbone trained from scratch uses the head rate),
weight decay 1e-6, up to 60 epochs, mixed precision (fp16 on CUDA, bf16 on CPUs
that compute it natively, fp32 on other CPUs), channels_last, best-by-validation
checkpointing (validation in fp32, as the app runs the model), fixed seeds and
resumable state. Training de-duplicates the training split and drops validation images
that also occur in train, so selection is not steered by leaked copies. At the end the
best weights get a calibration temperature and input-gate statistics, both fitted on
train/validation only.

Optionally (``--swa-start N``) the weights at the end of every epoch from epoch N on are
averaged (stochastic weight averaging, Izmailov et al., 2018). At the end the average,
its batch norm recomputed on the training images, competes with the best epoch on
validation by the same rule, and the winner ships.
"""

from __future__ import annotations

import argparse
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn, update_bn
from torch.utils.data import DataLoader
from torchvision.transforms import v2
from tqdm import tqdm

from lungscan.checkpoint import code_version, save_checkpoint
from lungscan.classes import CLASS_NAMES
from lungscan.data import CachedCTDataset, Sample, deduplicate, fingerprint, list_samples
from lungscan.devices import autocast, pick_device, training_precision
from lungscan.gate import fit_gate
from lungscan.metrics import fit_temperature
from lungscan.registry import create_model, get_spec
from lungscan.transforms import AUGMENTATIONS, GEOMETRIES, Preprocessing

log = logging.getLogger("lungscan.train")


@dataclass
class TrainConfig:
    arch: str
    data: str
    out: str
    epochs: int = 60
    batch_size: int = 32
    lr_backbone: float = 1e-5
    lr_head: float = 1e-4
    weight_decay: float = 1e-6
    pretrained: str = "auto"  # auto: ImageNet weights when they ship offline, else none
    class_weights: str = "balanced"  # balanced | none
    patience: int = 15  # epochs without validation improvement before stopping; 0 = never
    seed: int = 42
    amp: bool = True
    device: str = "auto"
    max_train_samples: int | None = None  # for quick smoke runs and tests
    input_size: int | None = None  # default: the architecture's (224)
    geometry: str = "crop"  # crop: the card's Resize+CenterCrop | full: the whole slice | body: the body only
    augment: str = "card"  # card | trivial | window | window-lowres: see lungscan.transforms.train_transform
    optimizer: str = "adam"  # adam (the card's) | adamw (decoupled weight decay)
    schedule: str = "constant"  # constant (the card's) | cosine (one warm-up epoch, then cosine decay to 0)
    label_smoothing: float = 0.0
    ema: float = 0.0  # decay of an exponential moving average of the weights, evaluated and kept; 0 = off
    mixup: float = 0.0  # Beta(alpha, alpha) of MixUp between pairs of training images; 0 = off
    cutmix: float = 0.0  # Beta(alpha, alpha) of CutMix (a pasted patch of another image); 0 = off
    mix_prob: float = 1.0  # share of training batches mixed when mixup or cutmix is on
    swa_start: int = 0  # average the weights after each epoch from this one (1-based) on; 0 = off

    def resolved_pretrained(self) -> str:
        if self.pretrained != "auto":
            return self.pretrained
        return "imagenet" if get_spec(self.arch).pretrained_offline else "none"


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load_splits(data: str | Path, max_train: int | None = None) -> dict[str, list[Sample]]:
    train = deduplicate(list_samples(Path(data), "train"))
    valid = deduplicate(list_samples(Path(data), "valid"), exclude_md5={s.md5 for s in train})
    if max_train:
        train = train[:: max(1, len(train) // max_train)][:max_train]
    return {"train": train, "valid": valid}


def param_groups(model: nn.Module, arch: str, cfg: TrainConfig, pretrained: bool) -> list[dict]:
    head_params = list(get_spec(arch).head(model).parameters())
    head_ids = {id(p) for p in head_params}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    backbone_lr = cfg.lr_backbone if pretrained else cfg.lr_head
    return [
        {"params": backbone, "lr": backbone_lr, "name": "backbone"},
        {"params": head_params, "lr": cfg.lr_head, "name": "head"},
    ]


@torch.no_grad()
def predict_logits(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[np.ndarray, np.ndarray]:
    """fp32 logits and labels over a loader."""
    model.eval()
    logits, labels = [], []
    for x, y in loader:
        x = x.to(device).contiguous(memory_format=torch.channels_last)
        logits.append(model(x).float().cpu())
        labels.append(y)
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def validate(model: nn.Module, loader: DataLoader, device: torch.device) -> tuple[float, float]:
    """Accuracy and mean cross-entropy of the fp32 logits over a loader."""
    logits, labels = predict_logits(model, loader, device)
    loss = float(nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels)))
    return float((logits.argmax(1) == labels).mean()), loss


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, steps_per_epoch: int):
    """None for the card's constant rates; else a per-step schedule: one linear warm-up epoch, then cosine to 0."""
    if cfg.schedule == "constant":
        return None
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = min(steps_per_epoch, total - 1)
    return torch.optim.lr_scheduler.SequentialLR(
        optimizer,
        [torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=0.1, total_iters=max(1, warmup)),
         torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total - warmup))],
        milestones=[warmup],
    )


def make_mixer(cfg: TrainConfig) -> v2.Transform | None:
    """The batch-mixing augmentation asked for (MixUp, CutMix or a random choice of the two), or None."""
    mixers = []
    if cfg.mixup:
        mixers.append(v2.MixUp(alpha=cfg.mixup, num_classes=len(CLASS_NAMES)))
    if cfg.cutmix:
        mixers.append(v2.CutMix(alpha=cfg.cutmix, num_classes=len(CLASS_NAMES)))
    if not mixers:
        return None
    return mixers[0] if len(mixers) == 1 else v2.RandomChoice(mixers)


def train_one_epoch(model, loader, optimizer, criterion, device, amp, scaler, desc: str, *,
                    scheduler=None, ema: AveragedModel | None = None, mixer: v2.Transform | None = None,
                    mix_prob: float = 1.0) -> tuple[float, float]:
    """One pass over the loader; returns mean loss and accuracy (against the dominant label of a mixed image)."""
    model.train()
    total_loss, correct, seen = 0.0, 0, 0
    for x, y in tqdm(loader, desc=desc, leave=False, unit="batch"):
        target = y
        if mixer is not None and torch.rand(()) < mix_prob:
            x, target = mixer(x, y)  # target: per-class weights, rows summing to 1
            y = target.argmax(1)
        x = x.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        y, target = y.to(device, non_blocking=True), target.to(device, non_blocking=True)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            out = model(x)
            loss = criterion(out.float(), target)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        if scheduler is not None:
            scheduler.step()
        if ema is not None:
            ema.update_parameters(model)
        total_loss += loss.item() * len(y)
        correct += (out.argmax(1) == y).sum().item()
        seen += len(y)
    return total_loss / seen, correct / seen


def finish_swa(swa: AveragedModel, model: nn.Module, train_plain: CachedCTDataset, valid_loader: DataLoader,
               device: torch.device, best_key: tuple[float, float]) -> dict | None:
    """Recompute the averaged weights' batch norm on the (unaugmented) training images and validate them; when
    they beat or tie the best epoch by the trainer's rule, load them into `model`, which is then what ships."""
    if int(swa.n_averaged) == 0:
        log.info("weight averaging never started (the run ended before --swa-start)")
        return None
    train_loader = DataLoader(train_plain, batch_size=64)
    update_bn((x.to(device).contiguous(memory_format=torch.channels_last) for x, _ in train_loader), swa.module)
    val_acc, val_loss = validate(swa.module, valid_loader, device)
    chosen = (val_acc, -val_loss) >= best_key
    log.info("weight average of %d epochs: valid loss %.4f acc %.3f (best epoch: loss %.4f acc %.3f); shipping %s",
             int(swa.n_averaged), val_loss, val_acc, -best_key[1], best_key[0],
             "the average" if chosen else "the best epoch")
    if chosen:
        model.load_state_dict(swa.module.state_dict(), strict=True)
    return {"epochs_averaged": int(swa.n_averaged), "val_acc": val_acc, "val_loss": val_loss, "chosen": chosen}


def train(cfg: TrainConfig, *, resume: bool = False) -> Path:
    """Run training; returns the path of the best, finalised checkpoint."""
    if cfg.swa_start and cfg.ema:
        raise ValueError("--swa-start and --ema both average the weights; choose one")
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    version = code_version()  # the code this run imported, not whatever HEAD is when it ends
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    spec = get_spec(cfg.arch)
    prep = Preprocessing(cfg.input_size or spec.input_size, spec.mean, spec.std, cfg.geometry)
    pretrained = cfg.resolved_pretrained()

    precision = training_precision(device, cfg.amp)
    amp = precision != "fp32"
    if cfg.amp and not amp and device.type == "cpu":
        log.info("mixed precision off: this CPU has no native bf16 (AVX-512 BF16 or AMX), where emulated bf16 "
                 "trains about 10x slower than fp32")
    splits = load_splits(cfg.data, cfg.max_train_samples)
    log.info("train %d / valid %d images (de-duplicated), device %s, precision %s",
             len(splits["train"]), len(splits["valid"]), device, precision)
    train_ds = CachedCTDataset(splits["train"], prep, train=True, augment=cfg.augment)
    valid_ds = CachedCTDataset(splits["valid"], prep, train=False)
    generator = torch.Generator().manual_seed(cfg.seed)
    train_loader = DataLoader(train_ds, batch_size=cfg.batch_size, shuffle=True, generator=generator, drop_last=False)
    valid_loader = DataLoader(valid_ds, batch_size=64)

    model = create_model(cfg.arch, pretrained=pretrained).to(device).to(memory_format=torch.channels_last)
    optimizer_cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[cfg.optimizer]
    optimizer = optimizer_cls(param_groups(model, cfg.arch, cfg, pretrained == "imagenet"), weight_decay=cfg.weight_decay)
    scheduler = make_scheduler(optimizer, cfg, steps_per_epoch=len(train_loader))
    ema = (AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)
           if cfg.ema else None)
    evaluated = ema.module if ema is not None else model  # the weights validated, selected and shipped
    swa = AveragedModel(model) if cfg.swa_start else None  # equal-weight average of end-of-epoch weights
    counts = torch.bincount(train_ds.labels, minlength=len(CLASS_NAMES)).float()
    weights = counts.sum() / (len(CLASS_NAMES) * counts.clamp(min=1)) if cfg.class_weights == "balanced" else None
    criterion = nn.CrossEntropyLoss(weight=weights.to(device) if weights is not None else None,
                                    label_smoothing=cfg.label_smoothing)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    mixer = make_mixer(cfg)

    state_path, best_path = out / "last_state.pt", out / "best_weights.pt"
    history: list[dict] = []
    start_epoch, best_key, stale = 0, (-1.0, float("-inf")), 0
    if resume and state_path.exists():
        state = torch.load(state_path, map_location="cpu", weights_only=False)  # our own file, holds RNG state
        model.load_state_dict(state["model"], strict=True)
        optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["scheduler"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        if swa is not None and state.get("swa") is not None:
            swa.load_state_dict(state["swa"])
        history, start_epoch, best_key, stale = state["history"], state["epoch"], tuple(state["best_key"]), state["stale"]
        torch.set_rng_state(state["torch_rng"])
        generator.set_state(state["loader_rng"])
        random.setstate(state["py_rng"])
        np.random.set_state(state["np_rng"])
        log.info("resumed after epoch %d", start_epoch)

    for epoch in range(start_epoch, cfg.epochs):
        started = time.perf_counter()
        train_loss, train_acc = train_one_epoch(
            model, train_loader, optimizer, criterion, device, amp, scaler, f"epoch {epoch + 1}/{cfg.epochs}",
            scheduler=scheduler, ema=ema, mixer=mixer, mix_prob=cfg.mix_prob,
        )
        # Validate in fp32, as evaluation and the app run the model: bf16 autocast moves logits enough to
        # flip a few of the 62 validation images, which would steer the choice of the best epoch.
        val_acc, val_loss = validate(evaluated, valid_loader, device)
        if swa is not None and epoch + 1 >= cfg.swa_start:
            swa.update_parameters(model)
        row = {"epoch": epoch + 1, "train_loss": train_loss, "train_acc": train_acc, "val_loss": val_loss,
               "val_acc": val_acc, "seconds": round(time.perf_counter() - started, 2)}
        history.append(row)
        key = (val_acc, -val_loss)
        improved = key > best_key
        if improved:
            best_key, stale = key, 0
            torch.save(evaluated.state_dict(), best_path)
        else:
            stale += 1
        log.info("epoch %d: train loss %.4f acc %.3f | valid loss %.4f acc %.3f %s(%.1fs)", epoch + 1, train_loss,
                 train_acc, val_loss, val_acc, "* " if improved else "", row["seconds"])
        torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "history": history,
                    "scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "ema": ema.state_dict() if ema is not None else None,
                    "swa": swa.state_dict() if swa is not None else None,
                    "epoch": epoch + 1, "best_key": list(best_key), "stale": stale,
                    "torch_rng": torch.get_rng_state(), "loader_rng": generator.get_state(),
                    "py_rng": random.getstate(), "np_rng": np.random.get_state()}, state_path)
        (out / "history.json").write_text(json.dumps(history, indent=1))
        if cfg.patience and stale >= cfg.patience:
            log.info("no validation improvement for %d epochs; stopping", stale)
            break

    model.load_state_dict(torch.load(best_path, map_location="cpu", weights_only=True), strict=True)
    model = model.to(device)
    train_plain = train_ds.unaugmented()  # for batch-norm statistics and the input gate
    swa_result = None if swa is None else finish_swa(swa, model, train_plain, valid_loader, device, best_key)
    logits, labels = predict_logits(model, valid_loader, device)
    temperature = fit_temperature(logits, labels)
    gate_stats = fit_gate(model, cfg.arch, train_plain, valid_ds, device)
    best_epoch = max(history, key=lambda r: (r["val_acc"], -r["val_loss"]))
    valid_result = {"accuracy": best_epoch["val_acc"], "loss": best_epoch["val_loss"], "epoch": best_epoch["epoch"]}
    if swa_result is not None and swa_result["chosen"]:
        valid_result = {"accuracy": swa_result["val_acc"], "loss": swa_result["val_loss"], "epoch": None}
    meta = {
        "arch": cfg.arch,
        "display_name": spec.display_name,
        "class_names": list(CLASS_NAMES),
        "preprocessing": prep.to_dict(),
        "temperature": temperature,
        "gate": gate_stats,
        "pretrained": pretrained,
        "training_precision": precision,
        "recipe": {**asdict(cfg), "loss": "cross-entropy", "selection": "max valid accuracy (fp32), then min valid loss"},
        "data_fingerprint": fingerprint(splits),
        "code_version": version,
        "history": history,
        "swa": swa_result,
        "metrics": {"valid": valid_result},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    final = save_checkpoint(out / "checkpoint.pt", model=model.cpu(), meta=meta)
    log.info("saved %s (%s, valid acc %.3f, T=%.3f)", final,
             f"best epoch {valid_result['epoch']}" if valid_result["epoch"] else "weight average",
             valid_result["accuracy"], temperature)
    return final


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, bool]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", required=True)
    p.add_argument("--data", required=True, help="dataset root with train/ and valid/ (see README)")
    p.add_argument("--out", required=True, help="output folder (checkpoint.pt, history.json, resumable state)")
    for name, default in (("epochs", 60), ("batch-size", 32), ("patience", 15), ("seed", 42)):
        p.add_argument(f"--{name}", type=int, default=default)
    for name, default in (("lr-backbone", 1e-5), ("lr-head", 1e-4), ("weight-decay", 1e-6)):
        p.add_argument(f"--{name}", type=float, default=default)
    p.add_argument("--pretrained", choices=("auto", "none", "imagenet"), default="auto")
    p.add_argument("--class-weights", choices=("balanced", "none"), default="balanced")
    p.add_argument("--device", default="auto")
    p.add_argument("--no-amp", action="store_true")
    p.add_argument("--max-train-samples", type=int, default=None)
    p.add_argument("--input-size", type=int, default=None, help="square input side (default: the architecture's)")
    p.add_argument("--geometry", choices=GEOMETRIES, default="crop",
                   help="crop: the model card's Resize+CenterCrop; full: the whole slice resized to a square; "
                        "body: the slice cropped to the patient's body, then resized to a square (crop and full "
                        "also crop a loosely framed slice to the body first)")
    p.add_argument("--augment", choices=AUGMENTATIONS, default="card",
                   help="card: the model card's augmentation; trivial: crop, flip and TrivialAugmentWide; "
                        "window: the card's with random CT-window contrast in place of its jitter; "
                        "window-lowres: window, with half the slices shown at a lower resolution first")
    p.add_argument("--optimizer", choices=("adam", "adamw"), default="adam")
    p.add_argument("--schedule", choices=("constant", "cosine"), default="constant")
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay per step for the kept weights (0 = off)")
    p.add_argument("--mixup", type=float, default=0.0, help="MixUp Beta alpha, e.g. 0.2 (0 = off)")
    p.add_argument("--cutmix", type=float, default=0.0, help="CutMix Beta alpha, e.g. 1.0 (0 = off)")
    p.add_argument("--mix-prob", type=float, default=1.0,
                   help="share of batches mixed when --mixup/--cutmix is on (both on: one picked per batch)")
    p.add_argument("--swa-start", type=int, default=0,
                   help="average the weights after each epoch from this one on (SWA); the average, its batch norm "
                        "recomputed, ships if it validates at least as well as the best epoch (0 = off)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last_state.pt")
    a = p.parse_args(argv)
    cfg = TrainConfig(arch=a.arch, data=a.data, out=a.out, epochs=a.epochs, batch_size=a.batch_size,
                      lr_backbone=a.lr_backbone, lr_head=a.lr_head, weight_decay=a.weight_decay,
                      pretrained=a.pretrained, class_weights=a.class_weights, patience=a.patience, seed=a.seed,
                      amp=not a.no_amp, device=a.device, max_train_samples=a.max_train_samples,
                      input_size=a.input_size, geometry=a.geometry, augment=a.augment, optimizer=a.optimizer,
                      schedule=a.schedule, label_smoothing=a.label_smoothing, ema=a.ema, mixup=a.mixup, cutmix=a.cutmix,
                      mix_prob=a.mix_prob, swa_start=a.swa_start)
    return cfg, a.resume


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    cfg, resume = parse_args(argv)
    get_spec(cfg.arch)  # fail fast on an unknown name
    train(cfg, resume=resume)


if __name__ == "__main__":
    main()
