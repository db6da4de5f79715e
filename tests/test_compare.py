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
