"""The comparison table and the default-model choice (validation only) from evaluation reports."""

import json

from training import compare

from tiny_models import write_evaluation


def _report(models_dir, arch, *, valid, test, preprocessing=None):
    path = write_evaluation(models_dir, arch, accuracy=test)
    report = json.loads(path.read_text())
    report.update(valid_accuracy=valid, shortcut={"prediction_agreement": 0.9})
    if preprocessing:
        report["preprocessing"] = preprocessing
    path.write_text(json.dumps(report))


def test_default_is_chosen_by_validation_never_by_test(tmp_path):
    _report(tmp_path, "efficientnet_lite0", valid=0.90, test=0.80,
            preprocessing={"input_size": 224, "mean": [0.5] * 3, "std": [0.5] * 3, "geometry": "full"})
    _report(tmp_path, "resnet50", valid=0.60, test=0.95)  # better on test, worse on validation
    compare.main(["--models", str(tmp_path), "--write-default"])
    assert (tmp_path / "default.txt").read_text().strip() == "efficientnet_lite0"
    rows = [line for line in (tmp_path / "COMPARISON.md").read_text().splitlines() if line.startswith("| ")]
    assert "| input |" in rows[0]
    assert rows[1].split(" | ")[2:4] == ["224 full", "1"]  # sorted by validation; input and epochs columns
    assert rows[2].split(" | ")[2] == "224 crop"  # a report without a preprocessing record: the card's crop
    assert rows[1].split(" | ")[11] == "—"  # a report from before the framing probe


def test_comparison_shows_how_much_framing_changes_each_model_and_how_loose_slices_were_analysed(tmp_path):
    _report(tmp_path, "efficientnet_lite0", valid=0.9, test=0.8)
    _report(tmp_path, "resnet50", valid=0.6, test=0.7)  # a report from before the probe and the crop
    path = tmp_path / "efficientnet_lite0" / "evaluation.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "framing": {"prediction_agreement": 0.875},
                                "loose_framing": {"slices": 209, "cropped": True}}))
    compare.main(["--models", str(tmp_path)])
    header, _, *rows = [line for line in (tmp_path / "COMPARISON.md").read_text().splitlines() if line.startswith("|")]
    columns = [c.strip() for c in header.strip("|").split("|")]
    cells = [[c.strip() for c in row.strip("|").split("|")] for row in rows]
    assert [row[columns.index("framing agreement")] for row in cells] == ["0.875", "—"]
    assert [row[columns.index("loose slices")] for row in cells] == ["cropped (209)", "whole"]


def test_candidate_runs_are_ranked_by_validation_with_their_commands(tmp_path):
    from dataclasses import asdict

    from lungscan.checkpoint import save_checkpoint
    from lungscan.registry import create_model
    from training.train import TrainConfig

    model = create_model("mobilenet_v2")
    for name, accs, cfg in (
        ("a", [0.5, 0.7], TrainConfig("mobilenet_v2", "d", "runs/a", epochs=2, amp=False)),
        ("b", [0.8, 0.6], TrainConfig("mobilenet_v2", "d", "runs/b", epochs=2, geometry="full", schedule="cosine")),
        ("c", [0.4, 0.4], TrainConfig("mobilenet_v2", "d", "runs/c", epochs=2)),
    ):
        history = [{"epoch": i + 1, "val_acc": acc, "val_loss": 1 - acc} for i, acc in enumerate(accs)]
        recipe = asdict(cfg) | ({"selection": "max valid accuracy (fp32), then min valid loss"} if name == "c" else {})
        meta = {"arch": "mobilenet_v2", "class_names": [], "preprocessing": {}, "temperature": 1.0,
                "recipe": recipe, "history": history, "data_fingerprint": "test", "code_version": "test"}
        if name == "c":  # the trainer records the precision it could use: fp32 on a CPU without native bf16
            meta["training_precision"] = "fp32"
        save_checkpoint(tmp_path / name / "checkpoint.pt", model=model, meta=meta)
    out = tmp_path / "SELECTION.md"
    compare.main(["--candidates", *(str(tmp_path / name / "checkpoint.pt") for name in "abc"), "--out", str(out)])
    rows = out.read_text().splitlines()[2:]
    assert rows[0].startswith("| b | 0.800 | 0.200 | 1 / 2 | mixed precision | mixed precision |")
    assert "--epochs 2 --geometry full --schedule cosine`" in rows[0]
    assert rows[1].startswith("| a | 0.700 | 0.300 | 2 / 2 | fp32 | fp32 |") and "--geometry" not in rows[1]
    assert rows[1].endswith("--epochs 2 --no-amp` |")  # booleans become the CLI's own flags
    assert rows[2].startswith("| c | 0.400 | 0.600 | 1 / 2 | fp32 | fp32 |")  # asked for amp, CPU had no bf16


def test_comparison_says_when_its_latencies_come_from_different_cpus(tmp_path):
    _report(tmp_path, "efficientnet_lite0", valid=0.9, test=0.8)
    _report(tmp_path, "resnet50", valid=0.6, test=0.7)
    _report(tmp_path, "densenet121", valid=0.5, test=0.6)
    cpus = {"efficientnet_lite0": "AMD EPYC, AVX2, 2 threads", "resnet50": "Intel Xeon, AVX-512, 2 threads",
            "densenet121": "AMD EPYC, AVX2, 2 threads"}
    for arch, cpu in cpus.items():
        path = tmp_path / arch / "evaluation.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "latency_cpu": cpu}))
    compare.main(["--models", str(tmp_path)])
    text = (tmp_path / "COMPARISON.md").read_text()
    assert "measured on different CPUs (" in text and "every model timed in one run" not in text
    # Grouped by CPU: each CPU is named once, then the models timed on it.
    note = text[text.index("measured on different CPUs ("):]
    assert note.count("AMD EPYC") == 1 and "Intel Xeon, AVX-512, 2 threads: resnet50" in note
    assert ("AMD EPYC, AVX2, 2 threads: efficientnet_lite0, densenet121" in note
            or "AMD EPYC, AVX2, 2 threads: densenet121, efficientnet_lite0" in note)
