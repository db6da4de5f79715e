"""Build one comparison table across every evaluated architecture and pick the default model.

    python -m training.compare --models models [--write-default]
    python -m training.compare --candidates runs/*/checkpoint.pt [--out SELECTION.md]

Reads models/<arch>/evaluation.json, prints a Markdown table, writes models/COMPARISON.md
and, with --write-default, names the architecture with the best *validation* accuracy
(ties: higher test-free criteria only — smaller checkpoint) in models/default.txt.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from lungscan.checkpoint import read_checkpoint
from lungscan.registry import ARCHITECTURES

from .train import TrainConfig


def load_reports(models_dir: Path) -> list[dict]:
    reports = []
    for arch in ARCHITECTURES:
        path = models_dir / arch / "evaluation.json"
        if path.is_file():
            reports.append(json.loads(path.read_text()))
    return reports


def _ci(report: dict, key: str) -> str:
    lo, hi = report[f"{key}_ci"]
    return f"{report[key]:.3f} ({lo:.3f}–{hi:.3f})"


def _input(report: dict) -> str:
    """Input side and geometry, e.g. '224 full'; reports from before geometries existed used the card's crop."""
    prep = report.get("preprocessing") or {"input_size": report.get("recipe", {}).get("input_size") or 224}
    return f"{prep['input_size']} {prep.get('geometry', 'crop')}"


def _framing(report: dict) -> str:
    """The framing probe's prediction agreement; reports from before the probe existed have none."""
    framing = report.get("framing")
    return f"{framing['prediction_agreement']:.3f}" if framing else "—"


def _loose(report: dict) -> str:
    """How the report's loosely framed slices were analysed: reports from before the crop analysed them whole."""
    loose = report.get("loose_framing")
    return f"cropped ({loose['slices']})" if loose and loose.get("cropped") else "whole"


def markdown_table(reports: list[dict]) -> str:
    header = ("| model | pretrained | input | epochs | valid acc | test accuracy (95% CI) | macro-F1 (95% CI) "
              "| dedup acc (n) | macro AUC | ECE → calibrated | shortcut agreement | framing agreement | loose slices "
              "| params | size MB | CPU ms |")
    lines = [header, "|" + "|".join(["---"] * 16) + "|"]
    for r in sorted(reports, key=lambda r: -(r.get("valid_accuracy") or 0)):
        lines.append(
            f"| {r['display_name']} | {'ImageNet' if r['pretrained'] else 'none'} | {_input(r)} "
            f"| {len(r.get('history', []))} "
            f"| {r.get('valid_accuracy') or float('nan'):.3f} | {_ci(r, 'accuracy')} | {_ci(r, 'macro_f1')} "
            f"| {r['dedup_accuracy']:.3f} ({r['dedup_n']}) | {r['roc_auc']['macro']:.3f} "
            f"| {r['ece']:.3f} → {r['ece_calibrated']:.3f} | {r['shortcut']['prediction_agreement']:.3f} "
            f"| {_framing(r)} | {_loose(r)} | {r['params'] / 1e6:.1f} M | {r['checkpoint_bytes'] / 1e6:.1f} "
            f"| {r['latency_ms_p50']:.0f} |"
        )
    return "\n".join(lines)


def latency_note(reports: list[dict]) -> str:
    """Where the CPU column was measured (one CPU for all models, or which model on which), and which models were
    timed with initial weights because their checkpoints are not kept."""
    by_cpu: dict[str, list[str]] = {}
    for r in reports:
        by_cpu.setdefault(r.get("latency_cpu", "an unrecorded CPU"), []).append(r["display_name"])
    if len(by_cpu) == 1:
        note = (f"*CPU ms*: p50 of one slice from file bytes to probabilities, every model timed in one run on "
                f"{next(iter(by_cpu))} (`python -m training.latency --data <dataset> --write`).")
    else:
        listed = "; ".join(f"{cpu}: {', '.join(names)}" for cpu, names in by_cpu.items())
        note = f"*CPU ms*: p50 of one slice from file bytes to probabilities, measured on different CPUs ({listed})."
    untrained = [r["display_name"] for r in reports if r.get("latency_weights") == "initial"]
    if untrained:
        note += (f" Timed with initial weights, as their checkpoints are not kept (the time does not depend on the "
                 f"weights' values): {', '.join(untrained)}.")
    return note


def choose_default(reports: list[dict]) -> str:
    """Best validation accuracy; the test split plays no part in the choice."""
    return max(reports, key=lambda r: ((r.get("valid_accuracy") or 0), -r["checkpoint_bytes"]))["arch"]


def recipe_command(meta: dict) -> str:
    """The `training.train` command that reproduces a checkpoint from its recorded recipe."""
    recipe, defaults = meta["recipe"], asdict(TrainConfig(arch="", data="", out=""))
    parts = [f"python -m training.train --arch {recipe['arch']} --data DATA --out {recipe['out']}"]
    for key, value in recipe.items():
        if isinstance(value, str):
            value = value.lower()  # early checkpoints wrote "Adam"
        if key == "amp" and value is False:
            parts.append("--no-amp")
        elif key in defaults and key not in ("arch", "data", "out", "device", "amp") and value != defaults[key]:
            parts.append(f"--{key.replace('_', '-')} {value}")
    return " ".join(parts)


def validation_precision(recipe: dict) -> str:
    """How a run computed its validation figures: fp32 since the trainer validates as the app runs the model;
    earlier runs with mixed precision validated under autocast too."""
    return "fp32" if "fp32" in recipe.get("selection", "") or not recipe.get("amp", True) else "mixed precision"


def trained_in(meta: dict) -> str:
    """What a run trained in: recorded since the trainer uses bf16 only on CPUs with native bf16."""
    return meta.get("training_precision") or ("mixed precision" if meta["recipe"].get("amp", True) else "fp32")


def candidates_table(paths: list[Path]) -> str:
    """Training runs of one model side by side, by their validation results only (no test numbers)."""
    rows = []
    for path in paths:
        meta = read_checkpoint(path)["meta"]
        if "soup" in meta:  # a weight average: its own validation result, no epochs of its own
            valid = meta["metrics"]["valid"]
            epochs, command = f"soup of {len(meta['soup']['ingredients'])}", meta["soup"]["command"]
        else:
            best = max(meta["history"], key=lambda r: (r["val_acc"], -r["val_loss"]))  # the trainer's own rule
            valid = {"accuracy": best["val_acc"], "loss": best["val_loss"]}
            epochs, command = f"{best['epoch']} / {len(meta['history'])}", recipe_command(meta)
            if (meta.get("swa") or {}).get("chosen"):  # the run shipped its weight average, not an epoch
                valid = meta["metrics"]["valid"]
                epochs = f"average of last {meta['swa']['epochs_averaged']} / {len(meta['history'])}"
        rows.append((path, meta, valid, epochs, command))
    rows.sort(key=lambda row: (row[2]["accuracy"], -row[2]["loss"]), reverse=True)
    lines = ["| run | valid acc | valid loss | best epoch / run | trained in | validated in | command |", "|---" * 7 + "|"]
    for path, meta, valid, epochs, command in rows:
        lines.append(f"| {path.parent.name} | {valid['accuracy']:.3f} | {valid['loss']:.3f} | {epochs} "
                     f"| {trained_in(meta)} | {validation_precision(meta['recipe'])} | `{command}` |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--write-default", action="store_true")
    p.add_argument("--candidates", type=Path, nargs="+", help="checkpoints of candidate runs: compare by validation")
    p.add_argument("--out", type=Path, help="with --candidates: also write the table to this file")
    a = p.parse_args(argv)
    if a.candidates:
        table = candidates_table(a.candidates)
        print(table)
        if a.out:
            a.out.write_text(table + "\n")
        return
    reports = load_reports(a.models)
    if not reports:
        raise SystemExit(f"No evaluation.json under {a.models}; run training.train_all first.")
    table = markdown_table(reports)
    text = ("# Architecture comparison (test split, n = {n})\n\nGenerated by `python -m training.compare --models "
            "models --write-default` from each `models/<arch>/evaluation.json`; regenerate everything with "
            "`python -m training.train_all --data <dataset>`. Sorted by validation accuracy, which alone picks the "
            "default model. *dedup acc* counts only test images with no byte-identical copy in train; *shortcut "
            "agreement* is the share of test predictions unchanged when every image is re-encoded to 512x512 RGB "
            "PNG first; *framing agreement*, when every image is centred on a black margin that it fills to 80 % of "
            "each side (— for reports from before that probe). *loose slices*: test slices whose body spans under 90 % "
            "of the width or height were analysed cropped to the body (their number), as the app does now, or whole, "
            "in reports from before the app did so. *input*: side in pixels and geometry (`crop`: the "
            "model card's Resize(256)+CenterCrop(224); `full`: the whole slice resized to a square; `body`: the "
            "slice cropped to the patient's body, then resized to a square).\n\n{table}\n\n{latency}\n").format(
                n=reports[0]["n"], table=table, latency=latency_note(reports))
    (a.models / "COMPARISON.md").write_text(text)
    print(table)
    if a.write_default:
        default = choose_default(reports)
        (a.models / "default.txt").write_text(default + "\n")
        print(f"\ndefault model: {default}")


if __name__ == "__main__":
    main()
