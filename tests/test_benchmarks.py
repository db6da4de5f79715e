"""The benchmark scripts run end to end and print their figures (no timing is asserted)."""

import json
import re
import subprocess
import sys
from pathlib import Path

from synthetic import make_dataset
from tiny_models import write_evaluation, write_tiny_checkpoint

PROJECT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=PROJECT, capture_output=True, text=True, timeout=600)


def test_training_benchmark_prints_each_target_beside_its_baseline(tmp_path):
    models = tmp_path / "models"
    write_tiny_checkpoint(models, "mobilenet_v2", input_size=64)
    write_evaluation(models, "mobilenet_v2", accuracy=0.8)
    data = make_dataset(tmp_path / "ct", per_class=2, splits=("train",))
    result = _run("training.benchmark", "--data", str(data), "--models", str(models),
                  "--repeats", "5", "--batches", "2", "--batch-size", "4")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert re.search(r"test accuracy\s+0\.800 .*NOT MET \(short by 0\.150\)", out)
    assert re.search(r"PNG bytes -> probabilities\s+p50\s+[\d.]+ ms .*\(engine: frozen\)", out)
    assert "same path, eager PyTorch" in out and "baseline: bare eager forward" in out
    assert re.search(r"bare loop baseline\s+[\d.]+ s/batch\s+ratio [\d.]+x", out)


def test_ui_latency_benchmark_drives_the_scan_page_and_loads_the_model_once(tmp_path):
    models = tmp_path / "models"
    write_tiny_checkpoint(models, "mobilenet_v2", input_size=64)
    result = _run("benchmarks.ui_latency", "--uploads", "10", "--warmup", "1", "--models-dir", str(models))
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"p50:\s+[\d.]+ s", result.stdout)
    assert "scans saved:      12" in result.stdout  # 1 warm-up + 10 measured + the second session's
    assert "loaded once per process: yes" in result.stdout


def test_latency_times_every_evaluated_model_in_one_run_and_says_where(tmp_path):
    # The default has its checkpoint; the other model's is not kept, so its architecture is timed untrained.
    models = tmp_path / "models"
    write_tiny_checkpoint(models, "mobilenet_v2", input_size=64)
    (models / "default.txt").write_text("mobilenet_v2\n")
    prep = {"input_size": 64, "mean": [0.5] * 3, "std": [0.5] * 3, "geometry": "full"}
    for arch in ("mobilenet_v2", "efficientnet_lite0"):
        path = write_evaluation(models, arch, accuracy=0.8)
        path.write_text(json.dumps({**json.loads(path.read_text()), "preprocessing": prep,
                                    "shortcut": {"prediction_agreement": 0.9}}))
    data = make_dataset(tmp_path / "ct", per_class=2, splits=("train", "test"))
    result = _run("training.latency", "--data", str(data), "--models", str(models), "--repeats", "5", "--write")
    assert result.returncode == 0, result.stderr
    assert re.search(r"check: the default model \(mobilenet_v2\) with initial weights takes [\d.]+ ms", result.stdout)
    assert re.search(r"\| mobilenet_v2 \| trained \| frozen \| [\d.]+ \| 1\.00 \|", result.stdout)
    assert re.search(r"\| efficientnet_lite0 \| initial \| frozen \| [\d.]+ \| [\d.]+ \|", result.stdout)
    reports = {arch: json.loads((models / arch / "evaluation.json").read_text())
               for arch in ("mobilenet_v2", "efficientnet_lite0")}
    assert reports["efficientnet_lite0"]["latency_weights"] == "initial"
    assert reports["mobilenet_v2"]["latency_cpu"] == reports["efficientnet_lite0"]["latency_cpu"]
    assert reports["mobilenet_v2"]["latency_ms_p50"] != 5.0  # the made-up figure was replaced
    assert _run("training.compare", "--models", str(models)).returncode == 0
    note = (models / "COMPARISON.md").read_text()
    assert f"every model timed in one run on {reports['mobilenet_v2']['latency_cpu']}" in note
    assert "Timed with initial weights, as their checkpoints are not kept" in note and note.endswith(
        ": efficientnet_lite0.\n")
