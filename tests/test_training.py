"""A short real training run on synthetic data: the loss falls, resume continues, checkpoints round-trip."""

import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lungscan.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from lungscan.classes import CLASS_NAMES, display_name
from lungscan.data import list_samples
from lungscan.devices import cpu_has_native_bf16
from lungscan.errors import CheckpointError
from lungscan.imaging import load_image
from lungscan.inference import Predictor
import training.train as train_module
from training.compare import candidates_table
from training.evaluate import evaluate, reframe, shrink
from training.soup import average, soup
from training.train import TrainConfig, train

from synthetic import ct_like, make_dataset

PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    # Kaggle-style folder names in train/valid, plain names in test.
    root = tmp_path_factory.mktemp("ct")
    make_dataset(root, per_class=4, splits=("train",), folders={
        "adenocarcinoma": "adenocarcinoma_left.lower.lobe_T2_N0_M0_Ib",
        "large_cell_carcinoma": "large.cell.carcinoma_left.hilum_T2_N2_M0_IIIa",
        "squamous_cell_carcinoma": "squamous.cell.carcinoma_left.hilum_T1_N2_M0_IIIa",
        "normal": "normal"})
    make_dataset(root, per_class=2, splits=("valid", "test"))
    return root


def _config(dataset, out, epochs):
    return TrainConfig(arch="efficientnet_lite0", data=str(dataset), out=str(out), epochs=epochs, batch_size=8,
                       lr_backbone=1e-3, lr_head=1e-3, patience=0, seed=1, input_size=96)


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    train(_config(dataset, out, epochs=3))
    first = json.loads((out / "history.json").read_text())
    checkpoint = train(_config(dataset, out, epochs=6), resume=True)
    return out, first, checkpoint


def test_training_lowers_the_loss(trained):
    out, _, _ = trained
    history = json.loads((out / "history.json").read_text())
    assert history[-1]["train_loss"] < history[0]["train_loss"]


def test_resume_continues_where_it_stopped(trained):
    out, first, _ = trained
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in first] == [1, 2, 3]
    assert [h["epoch"] for h in history] == [1, 2, 3, 4, 5, 6]
    assert history[:3] == first  # the first three epochs were not rerun


def _improved_config(dataset, out, epochs, **averaging):
    return TrainConfig(arch="efficientnet_lite0", data=str(dataset), out=str(out), epochs=epochs, batch_size=8,
                       lr_backbone=1e-3, lr_head=1e-3, weight_decay=0.05, patience=0, seed=3, input_size=64,
                       geometry="full", augment="trivial", optimizer="adamw", schedule="cosine", label_smoothing=0.1,
                       mixup=0.2, cutmix=1.0, mix_prob=0.5, **(averaging or {"ema": 0.9}))


@pytest.mark.parametrize("averaging", [{"ema": 0.9}, {"swa_start": 2}], ids=["ema", "swa"])
def test_resume_with_schedule_and_weight_average_gives_the_same_model_as_one_run(dataset, tmp_path, monkeypatch,
                                                                                 averaging):
    # A run interrupted (Ctrl-C) during epoch 3 of 4 and resumed: the cosine schedule and the weight
    # average carry on exactly, so the history and the shipped weights equal an uninterrupted run's.
    straight = train(_improved_config(dataset, tmp_path / "straight", epochs=4, **averaging))

    real_epoch, calls = train_module.train_one_epoch, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(train_module, "train_one_epoch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train(_improved_config(dataset, tmp_path / "resumed", epochs=4, **averaging))
    monkeypatch.setattr(train_module, "train_one_epoch", real_epoch)
    resumed = train(_improved_config(dataset, tmp_path / "resumed", epochs=4, **averaging), resume=True)

    def rows(run):
        history = json.loads((tmp_path / run / "history.json").read_text())
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history]

    assert len(rows("straight")) == 4 and rows("straight") == rows("resumed")
    a, b = read_checkpoint(straight), read_checkpoint(resumed)
    recipe = a["meta"]["recipe"]
    assert recipe["schedule"] == "cosine" and recipe["cutmix"] == 1.0 and recipe["augment"] == "trivial"
    assert a["meta"]["preprocessing"]["geometry"] == "full"
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert a["meta"]["swa"] == b["meta"]["swa"]


def test_weight_average_ships_only_when_it_validates_at_least_as_well_as_the_best_epoch(dataset, tmp_path):
    checkpoint = train(replace(_config(dataset, tmp_path, epochs=4), swa_start=2))
    meta = read_checkpoint(checkpoint)["meta"]
    swa, best = meta["swa"], max(meta["history"], key=lambda r: (r["val_acc"], -r["val_loss"]))
    assert swa["epochs_averaged"] == 3  # epochs 2, 3 and 4
    assert swa["chosen"] == ((swa["val_acc"], -swa["val_loss"]) >= (best["val_acc"], -best["val_loss"]))
    shipped = (swa["val_acc"], swa["val_loss"]) if swa["chosen"] else (best["val_acc"], best["val_loss"])
    assert (meta["metrics"]["valid"]["accuracy"], meta["metrics"]["valid"]["loss"]) == shipped
    # What the app gets from the shipped weights is the recorded validation result.
    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    valid = train_module.load_splits(dataset)["valid"]
    logits = torch.tensor([predictor.predict(load_image(s.path)).logits for s in valid])
    labels = torch.tensor([s.label for s in valid])
    assert shipped[0] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    with pytest.raises(ValueError, match="choose one"):
        train(replace(_config(dataset, tmp_path / "both", epochs=1), swa_start=1, ema=0.9))


def test_mixing_blends_images_and_labels_of_a_batch():
    x = torch.stack([torch.full((3, 16, 16), float(i)) for i in range(4)])
    y = torch.tensor([0, 1, 2, 3])
    torch.manual_seed(0)
    for cfg in (TrainConfig(arch="", data="", out="", mixup=0.4), TrainConfig(arch="", data="", out="", cutmix=1.0)):
        mixed, target = train_module.make_mixer(cfg)(x, y)
        assert target.shape == (4, 4) and torch.allclose(target.sum(1), torch.ones(4))
        assert (target > 0).sum(1).max() == 2  # each image now carries two labels' worth of content
        assert not torch.equal(mixed, x)
    assert train_module.make_mixer(TrainConfig(arch="", data="", out="")) is None


def test_checkpoint_describes_itself(trained, dataset):
    _, _, checkpoint = trained
    meta = read_checkpoint(checkpoint)["meta"]
    assert meta["arch"] == "efficientnet_lite0" and meta["class_names"] == list(CLASS_NAMES)
    assert meta["preprocessing"] == {"input_size": 96, "mean": [0.5] * 3, "std": [0.5] * 3, "geometry": "crop"}
    assert meta["pretrained"] == "imagenet" and meta["recipe"]["lr_head"] == 1e-3
    assert meta["data_fingerprint"]["counts"]["train"] == {c: 4 for c in sorted(CLASS_NAMES)}
    assert len(meta["history"]) == 6 and meta["temperature"] > 0 and meta["gate"]["threshold"] > 0
    # The recipe asks for mixed precision; the checkpoint records what this CPU could really use.
    assert meta["recipe"]["amp"] is True
    assert meta["training_precision"] == ("bf16" if cpu_has_native_bf16() else "fp32")


def test_recorded_validation_result_is_what_the_app_gets_from_the_shipped_model(trained, dataset):
    # Selection ran in the precision the app uses (fp32), so the checkpoint's validation figures are the
    # shipped weights' figures through the app's own Predictor, not a bf16 approximation of them.
    _, _, checkpoint = trained
    meta = read_checkpoint(checkpoint)["meta"]
    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    valid = train_module.load_splits(dataset)["valid"]
    logits = torch.tensor([predictor.predict(load_image(s.path)).logits for s in valid])
    labels = torch.tensor([s.label for s in valid])
    assert meta["metrics"]["valid"]["accuracy"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert meta["metrics"]["valid"]["loss"] == pytest.approx(
        torch.nn.functional.cross_entropy(logits, labels).item(), rel=1e-4)


def test_evaluation_report_matches_the_app_and_probes_shortcuts_and_framing(trained, dataset):
    _, _, checkpoint = trained
    report = evaluate(checkpoint, dataset, "test")
    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    test = list_samples(dataset, "test")
    labels = [s.class_name for s in test]
    assert report["n"] == len(test) == 8
    assert report["accuracy"] == pytest.approx(
        sum(predictor.predict(load_image(s.path)).label == y for s, y in zip(test, labels)) / len(test))
    assert sum(map(sum, report["confusion_matrix"])) == 8
    reframed = [predictor.predict(reframe(load_image(s.path))).label for s in test]
    framing = report["framing"]
    assert framing["accuracy_reframed"] == pytest.approx(sum(p == y for p, y in zip(reframed, labels)) / len(test))
    assert framing["accuracy_original"] == report["accuracy"] and 0 <= framing["prediction_agreement"] <= 1
    assert {"prediction_agreement", "same_aspect"} <= report["shortcut"].keys()
    # The resolution probe shows the model each slice shrunk, through the app's path.
    normal = [predictor.predict(load_image(s.path)).label == "normal" for s in test]
    for side, probe in report["resolution"]["sides"].items():
        shrunk = [predictor.predict(shrink(load_image(s.path), int(side))).label for s in test]
        assert probe["accuracy"] == pytest.approx(sum(p == y for p, y in zip(shrunk, labels)) / len(test))
        assert probe["normal_now_cancer"] == sum(n and p != "normal" for n, p in zip(normal, shrunk))
        assert probe["cancer_now_normal"] == sum(not n and p == "normal" for n, p in zip(normal, shrunk))
    # The slices counted as loosely framed are those the app notes it cropped: none here, all once reframed.
    assert report["loose_framing"]["slices"] == sum(
        predictor.predict(load_image(s.path)).framing_warning is not None for s in test)
    assert all(predictor.predict(reframe(load_image(s.path))).framing_warning for s in test)


def test_shrinking_keeps_the_aspect_ratio_and_leaves_small_slices_alone():
    image = ct_like(0, size=(300, 200))
    small = shrink(image, 128)
    assert small.size == (192, 128) and small.mode == "L"
    assert shrink(small, 160) is small  # already below the side: unchanged
    assert np.asarray(small).std() > 10  # still a slice, not a blank


def test_reframing_centres_the_slice_on_a_black_margin():
    image = ct_like(0, size=(200, 160))
    framed = reframe(image, 0.8)
    pixels = np.asarray(framed)
    assert framed.size == (250, 200) and pixels[:20].max() == 0 and pixels[:, -25:].max() == 0
    assert np.array_equal(pixels[20:180, 25:225], np.asarray(image))


def test_soup_averages_weights_and_takes_counters_from_the_first():
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(9)}
    mean = average([a, b])
    assert torch.equal(mean["w"], torch.tensor([2.0, 4.0])) and mean["n"].item() == 5


def test_greedy_soup_is_never_worse_on_validation_than_its_best_run(trained, dataset, tmp_path):
    _, _, first = trained
    second = train(replace(_config(dataset, tmp_path / "second", epochs=3), seed=2))
    path = soup([second, first], dataset, tmp_path / "soup")
    meta = read_checkpoint(path)["meta"]
    singles = {str(p): read_checkpoint(p)["meta"]["metrics"]["valid"] for p in (first, second)}
    best = max(singles, key=lambda p: (singles[p]["accuracy"], -singles[p]["loss"]))
    trials = meta["soup"]["trials"]
    assert [t["checkpoint"] for t in trials] == [best, next(p for p in singles if p != best)]
    assert trials[0]["added"] and meta["soup"]["ingredients"][0]["checkpoint"] == best
    assert (meta["metrics"]["valid"]["accuracy"], -meta["metrics"]["valid"]["loss"]) >= (
        singles[best]["accuracy"], -singles[best]["loss"])
    # The recorded validation figures are those of the saved weights, as the app's Predictor runs them.
    predictor = Predictor.from_checkpoint(path, "cpu")
    valid = train_module.load_splits(dataset)["valid"]
    logits = torch.tensor([predictor.predict(load_image(s.path)).logits for s in valid])
    labels = torch.tensor([s.label for s in valid])
    assert meta["metrics"]["valid"]["accuracy"] == pytest.approx((logits.argmax(1) == labels).float().mean().item())
    assert meta["gate"]["threshold"] > 0 and meta["temperature"] > 0
    # Listed beside the runs by its own validation result and the command that rebuilds it.
    row = next(line for line in candidates_table([path, first]).splitlines() if line.startswith("| soup |"))
    assert f"| {meta['metrics']['valid']['accuracy']:.3f} |" in row
    assert f"soup of {len(meta['soup']['ingredients'])}" in row and "python -m training.soup" in row


def test_checkpoint_round_trip_keeps_class_order_and_outputs(trained, tmp_path):
    _, _, checkpoint = trained
    model, meta = load_checkpoint(checkpoint)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        before = model(x)
    reversed_meta = {**meta, "class_names": list(reversed(meta["class_names"]))}
    copy = save_checkpoint(tmp_path / "copy.pt", model=model, meta=reversed_meta)
    model2, meta2 = load_checkpoint(copy)
    with torch.no_grad():
        assert torch.allclose(before, model2(x))
    assert meta2["class_names"] == list(reversed(CLASS_NAMES))
    # The predictor labels outputs with the checkpoint's order, not a hard-coded list.
    image = ct_like(0)
    p1, p2 = Predictor.from_checkpoint(checkpoint, "cpu").predict(image), Predictor.from_checkpoint(copy, "cpu").predict(image)
    assert p1.probabilities["adenocarcinoma"] == pytest.approx(p2.probabilities["normal"])


def test_loading_is_strict(trained, tmp_path):
    _, _, checkpoint = trained
    payload = read_checkpoint(checkpoint)
    payload["state_dict"].pop(next(iter(payload["state_dict"])))
    broken = tmp_path / "broken.pt"
    torch.save(payload, broken)
    with pytest.raises(CheckpointError, match="does not match"):
        load_checkpoint(broken)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError):
        load_checkpoint(tmp_path / "junk.pt")


def test_trained_model_learns_the_synthetic_classes(trained, dataset):
    _, _, checkpoint = trained
    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    test_files = sorted((dataset / "test").glob("*/*.png"))
    correct = sum(predictor.predict(load_image(f)).label == f.parent.name for f in test_files)
    assert correct / len(test_files) > 0.5  # chance is 0.25


def test_input_gate_flags_photos_and_blank_images_but_passes_slices(trained, dataset):
    import io

    import numpy as np
    from PIL import Image
    from skimage import data

    _, _, checkpoint = trained
    predictor = Predictor.from_checkpoint(checkpoint, "cpu")
    slices = sorted((dataset / "test").glob("*/*.png"))
    assert sum(predictor.predict(load_image(f)).gate.ok for f in slices) >= len(slices) - 1
    for photo in (data.astronaut(), data.coffee(), data.page()):
        buffer = io.BytesIO()
        Image.fromarray(photo).save(buffer, format="PNG")
        gate = predictor.predict(load_image(buffer.getvalue())).gate
        assert not gate.ok and "does not look like" in gate.reason
    blank = predictor.predict(Image.fromarray(np.full((200, 200), 90, np.uint8), "L")).gate
    assert not blank.ok and "blank" in blank.reason


def test_cli_predicts_every_file_and_reports_bad_ones(trained, dataset, tmp_path):
    _, _, checkpoint = trained
    good = sorted((dataset / "test" / "normal").glob("*.png"))[0]
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    loose = tmp_path / "loose.png"
    reframe(load_image(good)).save(loose)  # the same slice with a wide black margin around it
    small = tmp_path / "small.png"
    load_image(good).resize((80, 64)).save(small)  # below the model's 96 px input
    result = subprocess.run(
        [sys.executable, "-m", "lungscan", "predict", "--model", str(checkpoint), str(bad), str(good), str(loose),
         str(small), "--json"],
        capture_output=True, text=True, cwd=PROJECT, timeout=300,
    )
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1
    assert lines[0]["file"] == str(bad) and "corrupt" in lines[0]["error"]
    assert lines[1]["file"] == str(good) and lines[1]["label"] in CLASS_NAMES
    assert set(lines[1]["probabilities"]) == set(CLASS_NAMES)
    assert sum(lines[1]["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    # A slice framed like the training slices gets no note; the loosely framed copy is analysed cropped to the body.
    assert lines[1]["framing_warning"] is None
    assert lines[2]["file"] == str(loose) and "analysed cropped to the body" in lines[2]["framing_warning"]
    # A slice smaller than the model's input is enlarged, and the user is told.
    assert lines[1]["resolution_warning"] is None
    assert lines[3]["file"] == str(small) and "only 64 px on its short side" in lines[3]["resolution_warning"]

    # As text, a slice gets its class; an image the input check doubts gets no finding, as in the app.
    from PIL import Image
    from skimage import data

    photo = tmp_path / "photo.png"
    Image.fromarray(data.astronaut()).save(photo)
    result = subprocess.run(
        [sys.executable, "-m", "lungscan", "predict", "--model", str(checkpoint), str(good), str(photo)],
        capture_output=True, text=True, cwd=PROJECT, timeout=300,
    )
    slice_line, photo_line = result.stdout.splitlines()
    assert result.returncode == 0
    assert slice_line.startswith(f"{good}: {display_name(lines[1]['label'])} (")
    assert photo_line.startswith(f"{photo}: input check failed — no finding | ")
    assert "[warning: This image does not look like" in photo_line


def test_cli_without_any_model_explains_how_to_get_one(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "lungscan", "predict", "x.png"], capture_output=True, text=True, cwd=PROJECT,
        env={"LUNGSCAN_MODELS_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}, timeout=300,
    )
    assert result.returncode == 2 and "training.train" in result.stderr


def test_train_all_recipe_reproduces_the_committed_default_model():
    """`training.train_all` must retrain the shipped default with the recipe it was actually trained with."""
    from training.train_all import RECIPES

    models = PROJECT / "models"
    arch = (models / "default.txt").read_text().strip()
    shipped = read_checkpoint(models / arch / "checkpoint.pt")["meta"]["recipe"]
    cfg, _ = train_module.parse_args(["--arch", arch, "--data", "DATA", "--out", "OUT", *RECIPES[arch]])
    ours = {k: v for k, v in asdict(cfg).items() if k not in ("data", "out", "device")}
    # An option added after the checkpoint was trained did not exist then: the run had its default.
    defaults = asdict(TrainConfig(arch="", data="", out=""))
    assert ours == {k: shipped.get(k, defaults[k]) for k in ours}


def test_validation_probe_reports_each_run_its_flip_other_sizes_and_the_ensemble(trained, dataset, capsys):
    from training.validation_probe import main as probe

    _, _, checkpoint = trained
    probe(["--data", str(dataset), "--sizes", "96,128", str(checkpoint), str(checkpoint)])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ") and "valid" not in line]
    assert len(rows) == 9  # twice (run, + flip, at 96 px, at 128 px), then the ensemble of the two
    assert "flip TTA" in rows[1] and "at 128 px" in rows[3] and rows[-1].startswith("| ensemble of")
    single, native, ensemble = (rows[i].split(" | ")[1:] for i in (0, 2, -1))
    # The trained size (96) gives the run's own figures; an ensemble of a run with itself is that run.
    assert single == native == ensemble
    meta = read_checkpoint(checkpoint)["meta"]
    assert float(single[0]) == pytest.approx(meta["metrics"]["valid"]["accuracy"], abs=1e-3)
