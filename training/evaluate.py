"""Evaluate a checkpoint on a split and write a JSON report plus figures.

    python -m training.evaluate --checkpoint models/efficientnet_lite0/checkpoint.pt \
        --data ../shared/data/chest-ct --split test --out models/efficientnet_lite0/evaluation.json

Reports accuracy, macro-F1 with bootstrap 95% CIs, per-class precision/recall/F1/AUC,
the confusion matrix, ROC curves, calibration error before and after the checkpoint's
temperature (fitted on the validation split at training time), accuracy on the test
images that are not byte-identical to any training image, a shortcut probe (every test
image re-encoded to one size and mode), a framing probe (every image centred on a black
margin, as a screenshot framed more loosely), a resolution probe (every image shrunk first,
as a smaller source image), size and CPU latency.

Images go through `Predictor`, exactly as in the app: a slice framed more loosely than
the training slices is cropped to the body first (`lungscan.transforms.model_region`);
`loose_framing` counts them.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from lungscan.checkpoint import read_checkpoint, update_metadata
from lungscan.classes import CLASS_NAMES
from lungscan.data import Sample, list_samples
from lungscan.devices import PRECISIONS, cpu_name
from lungscan.imaging import decode_raster, load_image, read_bytes
from lungscan.inference import Predictor
from lungscan.metrics import bootstrap_ci, classification_metrics, reliability, softmax
from lungscan.registry import get_spec
from lungscan.transforms import MIN_BODY_SPAN, body_box, loose_span

from .figures import save_figures

log = logging.getLogger("lungscan.evaluate")

#: The shortcut probe's canonical encoding: one size, one mode, one format.
PROBE_SIZE = (512, 512)
#: The framing probe: each slice centred on a black canvas that it fills to this share of each side. The cancer
#: slices of this dataset's test split are framed about so (the body's box spans a median 90-97 % of their width and
#: 79-85 % of their height, against 98-100 % of each side in train and valid; `python -m training.framing`), and a
#: clinic's own screenshots can be framed any way.
REFRAME_FILL = 0.8
#: The resolution probe: each slice shrunk so that its short side is at most this many pixels. Every slice is resized
#: to the model's input, so its size never reaches the model, but its sharpness does: the `normal` slices are larger
#: (a median 600x479 against about 410x275 for the cancer classes) and so, resized down, sharper. At 512 px (the
#: shortcut probe) every slice keeps its own detail; below the input size (224) all of them lose some.
SHRINK_SIDES = (192, 160, 128)


def reencode_canonical(path: Path, *, keep_aspect: bool = False) -> bytes:
    """Re-encode a file as an RGB PNG of one size, erasing size, mode and format cues.

    keep_aspect=False: exactly 512x512 (also changes the aspect ratio);
    keep_aspect=True: short side 512, aspect ratio kept (isolates resolution and mode).
    """
    image = decode_raster(read_bytes(path)).convert("RGB")
    if keep_aspect:
        scale = PROBE_SIZE[0] / min(image.size)
        size = (round(image.width * scale), round(image.height * scale))
    else:
        size = PROBE_SIZE
    image = image.resize(size, Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def reframe(image: Image.Image, fill: float = REFRAME_FILL) -> Image.Image:
    """`image` centred on a black canvas that it fills to `fill` of the width and of the height."""
    canvas = Image.new(image.mode, (round(image.width / fill), round(image.height / fill)), 0)
    canvas.paste(image, ((canvas.width - image.width) // 2, (canvas.height - image.height) // 2))
    return canvas


def shrink(image: Image.Image, side: int) -> Image.Image:
    """`image` resized down (Lanczos) so that its short side is at most `side` pixels; a smaller image is returned
    as it is."""
    scale = side / min(image.size)
    if scale >= 1:
        return image
    return image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                        Image.Resampling.LANCZOS)


def _logits(predictor: Predictor, images: list[Image.Image]) -> np.ndarray:
    return np.stack([np.asarray(predictor.predict(img).logits) for img in images])


def measure_latency(predictor: Predictor, path: Path, repeats: int = 30) -> dict:
    """The report's latency fields: p50 milliseconds for one slice from file bytes to
    probabilities (after warm-up), with the thread count, engine and CPU it was measured with."""
    data = read_bytes(path)
    for _ in range(5):
        predictor.predict(load_image(data))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predictor.predict(load_image(data))
        times.append((time.perf_counter() - start) * 1000)
    return {"latency_ms_p50": float(np.median(times)), "latency_threads": torch.get_num_threads(),
            "latency_engine": predictor.engine, "latency_cpu": cpu_name()}


def evaluate(checkpoint: Path, data: Path, split: str = "test", precision: str = "fp32") -> dict:
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu", precision=precision)
    meta = predictor.meta
    class_names = list(predictor.class_names)
    samples: list[Sample] = list_samples(data, split)
    labels = np.array([class_names.index(CLASS_NAMES[s.label]) for s in samples])
    images = [load_image(s.path) for s in samples]
    logits = _logits(predictor, images)
    calibrated = softmax(logits, predictor.temperature)
    report = {
        "arch": predictor.arch,
        "display_name": get_spec(predictor.arch).display_name,
        "pretrained": meta.get("pretrained") == "imagenet",
        "split": split,
        "checkpoint": str(checkpoint),
        "model_version": predictor.model_version,
        "inference_precision": predictor.precision,
        "preprocessing": predictor.prep.to_dict(),
        **classification_metrics(labels, calibrated, class_names),
    }
    report.update(bootstrap_ci(labels, calibrated.argmax(1)))

    train_md5 = {s.md5 for s in list_samples(data, "train")}
    unique = np.array([s.md5 not in train_md5 for s in samples])
    report["dedup_n"] = int(unique.sum())
    report["dedup_accuracy"] = float((calibrated.argmax(1)[unique] == labels[unique]).mean()) if unique.any() else None
    dedup_metrics = classification_metrics(labels[unique], calibrated[unique], class_names)
    report["dedup_macro_f1"] = dedup_metrics["macro_f1"]

    before, after = reliability(softmax(logits, 1.0), labels), reliability(calibrated, labels)
    report["temperature"] = predictor.temperature
    report["ece"], report["ece_calibrated"] = before["ece"], after["ece"]
    report["reliability"] = {"uncalibrated": before, "calibrated": after}

    original_pred = logits.argmax(1)
    normal = class_names.index("normal")

    def probe(keep_aspect: bool) -> dict:
        pred = _logits(predictor, [load_image(reencode_canonical(s.path, keep_aspect=keep_aspect))
                                   for s in samples]).argmax(1)
        return {
            "accuracy_reencoded": float((pred == labels).mean()),
            "prediction_agreement": float((pred == original_pred).mean()),
            "changed_by_class": {
                name: int(((pred != original_pred) & (labels == i)).sum()) for i, name in enumerate(class_names)
            },
            "normal_predictions_reencoded": int((pred == normal).sum()),
        }

    report["shortcut"] = {
        "description": "every test image re-encoded to 512x512 RGB PNG before prediction; "
                       "'same_aspect' re-encodes to short side 512 instead, keeping the aspect ratio",
        "accuracy_original": report["accuracy"],
        "normal_predictions_original": int((original_pred == normal).sum()),
        **probe(keep_aspect=False),
        "same_aspect": probe(keep_aspect=True),
    }

    reframed = _logits(predictor, [reframe(image) for image in images]).argmax(1)
    report["framing"] = {
        "description": f"every image centred on a black margin, filling {REFRAME_FILL:.0%} of each side",
        "fill": REFRAME_FILL,
        "accuracy_original": report["accuracy"],
        "accuracy_reframed": float((reframed == labels).mean()),
        "prediction_agreement": float((reframed == original_pred).mean()),
    }

    resolution = {}
    for side in SHRINK_SIDES:
        shrunk = _logits(predictor, [shrink(image, side) for image in images]).argmax(1)
        resolution[str(side)] = {
            "accuracy": float((shrunk == labels).mean()),
            "prediction_agreement": float((shrunk == original_pred).mean()),
            "normal_now_cancer": int(((original_pred == normal) & (shrunk != normal)).sum()),
            "cancer_now_normal": int(((original_pred != normal) & (shrunk == normal)).sum()),
        }
    report["resolution"] = {
        "description": "every image shrunk so that its short side is at most N px (keys) before analysis; "
                       "'normal_now_cancer' and 'cancer_now_normal' count predictions that cross between normal "
                       "and the cancer classes",
        "accuracy_original": report["accuracy"],
        "sides": resolution,
    }

    report["loose_framing"] = {
        "description": f"slices whose body spans under {MIN_BODY_SPAN:.0%} of the width or height, cropped to the "
                       "body before analysis",
        "slices": sum(loose_span(image, body_box(image)) is not None for image in images),
        "cropped": True,
    }

    report["params"] = int(sum(p.numel() for p in predictor.model.parameters()))
    report["checkpoint_bytes"] = checkpoint.stat().st_size
    report.update(measure_latency(predictor, samples[0].path))
    report["valid_accuracy"] = meta.get("metrics", {}).get("valid", {}).get("accuracy")
    report["history"] = meta.get("history", [])
    report["recipe"] = meta.get("recipe", {})
    report["data_fingerprint"] = meta.get("data_fingerprint")
    return report


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--split", default="test", choices=("train", "valid", "test"))
    p.add_argument("--out", type=Path, required=True, help="JSON report path; figures go beside it")
    p.add_argument("--no-update-checkpoint", action="store_true", help="do not record the metrics in the checkpoint")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="CPU inference precision (default fp32, as the app uses by default)")
    p.add_argument("--latency-only", action="store_true",
                   help="re-measure only the CPU latency in an existing report (run on an otherwise idle machine)")
    a = p.parse_args(argv)
    if a.latency_only:
        report = json.loads(a.out.read_text())
        predictor = Predictor.from_checkpoint(a.checkpoint, device="cpu", precision=a.precision)
        report.update(measure_latency(predictor, list_samples(a.data, a.split)[0].path))
        a.out.write_text(json.dumps(report, indent=1))
        log.info("%s: CPU latency p50 %.1f ms", report["arch"], report["latency_ms_p50"])
        return
    report = evaluate(a.checkpoint, a.data, a.split, a.precision)
    report["command"] = "python -m training.evaluate " + " ".join(shlex.quote(x) for x in (argv or sys.argv[1:]))
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(report, indent=1))
    save_figures(report, a.out.parent)
    if not a.no_update_checkpoint:
        summary = {k: report[k] for k in ("n", "accuracy", "accuracy_ci", "macro_f1", "macro_f1_ci", "dedup_n",
                                          "dedup_accuracy", "ece", "ece_calibrated")}
        previous = read_checkpoint(a.checkpoint)["meta"].get("metrics", {})
        update_metadata(a.checkpoint, metrics={**previous, a.split: summary})
    log.info("%s on %s: accuracy %.3f %s, macro-F1 %.3f, dedup accuracy %s (n=%d)", report["arch"], a.split,
             report["accuracy"], [round(x, 3) for x in report["accuracy_ci"]], report["macro_f1"],
             report["dedup_accuracy"], report["dedup_n"])


if __name__ == "__main__":
    main()
