"""Time single-slice CPU inference of every evaluated architecture on this machine, in one run.

    python -m training.latency --data ../shared/data/chest-ct [--models models] [--write]

The comparison table's CPU column compares models only when all of them are timed on one CPU under the same
load. Only the default model's checkpoint is kept in git, and the time these networks take does not depend on
the values of their weights (fixed shapes, no data-dependent control flow), so an architecture whose checkpoint
is absent is timed with freshly initialised weights at its report's input size and geometry, through the same
path as `training.evaluate`: file bytes to calibrated probabilities and the input gate, with the frozen graph
where it verifies. As a same-run check of that premise, the default model is timed both ways.

With --write, each models/<arch>/evaluation.json gets the new latency fields, plus the CPU they were measured on
and which weights were timed.
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import torch

from lungscan.checkpoint import code_version
from lungscan.data import CachedCTDataset, list_samples
from lungscan.devices import cpu_name
from lungscan.gate import fit_gate
from lungscan.inference import CHECKPOINT_NAME, Predictor, default_arch
from lungscan.registry import create_model
from lungscan.transforms import Preprocessing

from .compare import load_reports
from .evaluate import measure_latency


def untrained_predictor(report: dict, slices: list) -> Predictor:
    """The report's architecture with initial weights, its input size and geometry, and an input gate fitted on a
    few real slices so that the gate's cost is timed too."""
    torch.manual_seed(0)
    prep = Preprocessing.from_dict(report["preprocessing"])
    model = create_model(report["arch"], num_classes=len(report["class_names"])).eval()
    dataset = CachedCTDataset(slices, prep, train=False)
    meta = {"arch": report["arch"], "class_names": report["class_names"], "preprocessing": prep.to_dict(),
            "temperature": 1.0, "code_version": code_version(),
            "gate": fit_gate(model, report["arch"], dataset, dataset, torch.device("cpu"))}
    return Predictor(model, meta, torch.device("cpu"))


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True, help="dataset root; its first test slice is the one timed")
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--repeats", type=int, default=30)
    p.add_argument("--write", action="store_true", help="record the figures in each evaluation.json")
    a = p.parse_args(argv)
    reports = load_reports(a.models)
    if not reports:
        raise SystemExit(f"no models/<arch>/evaluation.json under {a.models}; run training.evaluate first")
    timed = list_samples(a.data, "test")[0].path  # the slice training.evaluate times
    train = list_samples(a.data, "train")
    gate_slices = train[:: max(1, len(train) // 32)]  # about 32 slices, every class
    default = default_arch(a.models)
    print(f"Single-slice CPU inference, p50 of {a.repeats} (file bytes -> probabilities), on {cpu_name()}")
    rows = []
    for report in reports:
        checkpoint = a.models / report["arch"] / CHECKPOINT_NAME
        trained = checkpoint.is_file()
        predictor = (Predictor.from_checkpoint(checkpoint, device="cpu") if trained
                     else untrained_predictor(report, gate_slices))
        fields = measure_latency(predictor, timed, a.repeats)
        fields["latency_weights"] = "trained" if trained else "initial"
        rows.append((report, fields))
        if report["arch"] == default:
            check = measure_latency(untrained_predictor(report, gate_slices), timed, a.repeats)
            baseline = fields["latency_ms_p50"]
            print(f"   check: the default model ({report['display_name']}) with initial weights takes "
                  f"{check['latency_ms_p50']:.1f} ms against {baseline:.1f} ms trained "
                  f"({check['latency_ms_p50'] / baseline:.2f}x)")
    baseline = next((f["latency_ms_p50"] for r, f in rows if r["arch"] == default), None)
    print("| model | weights timed | engine | p50 ms | x default |")
    print("|---|---|---|---|---|")
    for report, fields in rows:
        ratio = f"{fields['latency_ms_p50'] / baseline:.2f}" if baseline else "n/a"
        print(f"| {report['display_name']} | {fields['latency_weights']} | {fields['latency_engine']} "
              f"| {fields['latency_ms_p50']:.1f} | {ratio} |")
        if a.write:
            path = a.models / report["arch"] / "evaluation.json"
            path.write_text(json.dumps({**json.loads(path.read_text()), **fields}, indent=1))


if __name__ == "__main__":
    main()
