"""Average the weights of several fine-tuned runs of one model into one checkpoint (a greedy model soup).

    python -m training.soup --data DATA --out runs/exp/soup RUN_A/checkpoint.pt RUN_B/checkpoint.pt ...

Runs fine-tuned from the same pretrained weights tend to stay in one basin of the loss, so the average of their
weights is itself a good model, often better than each (Wortsman et al., 2022, "Model soups"), and it costs nothing
at inference: one model, the same latency. Greedy soup: sort the runs by validation accuracy (then loss), start
from the best and add each next run only if the soup's validation accuracy (then loss) does not get worse. After
averaging, the batch-norm statistics are recomputed on the training images (as for SWA, Izmailov et al., 2018),
since neither run's running statistics describe the averaged weights. The test split plays no part. The result is
an ordinary checkpoint with a fresh temperature and input gate, which records its ingredients.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch
from torch.optim.swa_utils import update_bn
from torch.utils.data import DataLoader

from lungscan.checkpoint import code_version, read_checkpoint, save_checkpoint
from lungscan.data import CachedCTDataset, fingerprint
from lungscan.errors import CheckpointError
from lungscan.gate import fit_gate
from lungscan.metrics import fit_temperature
from lungscan.registry import create_model
from lungscan.transforms import Preprocessing

from .compare import recipe_command, trained_in
from .train import load_splits, predict_logits, validate

log = logging.getLogger("lungscan.soup")


def average(state_dicts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of floating-point tensors; integer buffers (batch counters) come from the first."""
    return {key: (torch.stack([sd[key].float() for sd in state_dicts]).mean(0).to(value.dtype)
                  if value.is_floating_point() else value.clone())
            for key, value in state_dicts[0].items()}


def soup(checkpoints: list[Path], data: str | Path, out: Path) -> Path:
    payloads = [read_checkpoint(path) for path in checkpoints]
    metas = [p["meta"] for p in payloads]
    for field in ("arch", "class_names", "preprocessing"):
        if any(m[field] != metas[0][field] for m in metas):
            raise CheckpointError(f"cannot average these checkpoints: their {field} differ")
    splits = load_splits(data)
    data_digest = fingerprint(splits)["sha256"]
    if any(m["data_fingerprint"]["sha256"] != data_digest for m in metas):
        raise CheckpointError(f"every ingredient must be trained on the data in {data} (fingerprints differ)")
    prep = Preprocessing.from_dict(metas[0]["preprocessing"])
    train_ds, valid_ds = (CachedCTDataset(splits[s], prep, train=False) for s in ("train", "valid"))
    train_loader, valid_loader = DataLoader(train_ds, batch_size=64), DataLoader(valid_ds, batch_size=64)
    model = create_model(metas[0]["arch"], num_classes=len(metas[0]["class_names"]))

    def evaluate(indices: list[int]) -> tuple[float, float]:
        """(accuracy, -loss) on validation, larger is better (the trainer's rule); leaves those weights in `model`."""
        if len(indices) == 1:
            model.load_state_dict(payloads[indices[0]]["state_dict"], strict=True)
        else:
            model.load_state_dict(average([payloads[i]["state_dict"] for i in indices]), strict=True)
            update_bn((x.contiguous(memory_format=torch.channels_last) for x, _ in train_loader), model)
        accuracy, loss = validate(model, valid_loader, torch.device("cpu"))
        return accuracy, -loss

    singles = {i: evaluate([i]) for i in range(len(payloads))}
    order = sorted(singles, key=singles.get, reverse=True)
    chosen, best = [order[0]], singles[order[0]]
    best_state = payloads[order[0]]["state_dict"]
    trials = [{"checkpoint": str(checkpoints[order[0]]), "valid_accuracy": best[0], "valid_loss": -best[1],
               "added": True}]
    log.info("start: %s (valid acc %.3f, loss %.3f)", checkpoints[order[0]], best[0], -best[1])
    for i in order[1:]:
        key = evaluate(chosen + [i])
        added = key >= best
        log.info("%s %s: soup valid acc %.3f, loss %.3f", "add" if added else "skip", checkpoints[i], key[0], -key[1])
        trials.append({"checkpoint": str(checkpoints[i]), "valid_accuracy": key[0], "valid_loss": -key[1],
                       "added": added})
        if added:
            chosen, best = chosen + [i], key
            best_state = {k: v.clone() for k, v in model.state_dict().items()}  # with its recomputed batch norm
    model.load_state_dict(best_state, strict=True)

    logits, labels = predict_logits(model, valid_loader, torch.device("cpu"))
    lead = metas[chosen[0]]
    meta = {
        **{k: lead[k] for k in ("arch", "display_name", "class_names", "preprocessing", "pretrained")},
        "temperature": fit_temperature(logits, labels),
        "gate": fit_gate(model, lead["arch"], train_ds, valid_ds, torch.device("cpu")),
        "training_precision": " + ".join(sorted({trained_in(metas[i]) for i in chosen})),
        "recipe": {**lead["recipe"], "out": str(out),
                   "selection": "greedy soup: max valid accuracy (fp32), then min valid loss"},
        "soup": {"command": " ".join(["python -m training.soup --data DATA --out", str(out), *map(str, checkpoints)]),
                 "ingredients": [{"checkpoint": str(checkpoints[i]), "command": recipe_command(metas[i]),
                                  "valid": metas[i]["metrics"]["valid"]} for i in chosen],
                 "trials": trials, "batch_norm": "recomputed on the training images" if len(chosen) > 1 else None},
        "data_fingerprint": lead["data_fingerprint"],
        "code_version": code_version(),
        "history": [],  # no epochs of its own; each ingredient's run has its history
        "metrics": {"valid": {"accuracy": best[0], "loss": -best[1], "epoch": None}},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = save_checkpoint(out / "checkpoint.pt", model=model, meta=meta)
    log.info("saved %s: %d of %d runs, valid acc %.3f, loss %.3f", path, len(chosen), len(payloads), best[0], -best[1])
    return path


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", type=Path, nargs="+", help="checkpoints of runs of one architecture")
    p.add_argument("--data", required=True, help="the dataset the runs were trained on")
    p.add_argument("--out", type=Path, required=True, help="output folder for checkpoint.pt")
    a = p.parse_args(argv)
    soup(a.checkpoints, a.data, a.out)


if __name__ == "__main__":
    main()
