"""Print LungScan's targets beside measured figures and same-run baselines.

    python -m training.benchmark [--data ../shared/data/chest-ct] [--models models]

1. Quality: the default model's test accuracy and macro-F1 (target >= 0.95 each) and
   its accuracy on de-duplicated test images, read from models/<arch>/evaluation.json
   (produced by training.evaluate; the command that made it is printed too).
2. Inference: p50 latency of one slice from PNG bytes to calibrated probabilities
   (decode, greyscale, resize, crop, normalise, forward, softmax, input gate), target
   <= 30 ms, as the app runs it (a frozen TorchScript graph, see lungscan.frozen), beside
   the same path run eagerly and the bare eager forward on a ready tensor, measured in
   the same run.
3. Training data pipeline: seconds per training batch through LungScan's real pipeline
   (cached decoded images, on-the-fly augmentation, DataLoader) against a bare PyTorch
   loop over pre-loaded tensors, same model, batch size and precision (the trainer's:
   bf16 on CPUs with native bf16, fp32 on others); target ratio <= 1.3.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from lungscan.checkpoint import read_checkpoint
from lungscan.data import CachedCTDataset, list_samples
from lungscan.devices import autocast, cpu_has_native_bf16, training_precision
from lungscan.imaging import load_image
from lungscan.inference import Predictor, default_arch, default_checkpoint
from lungscan.registry import create_model
from lungscan.transforms import Preprocessing


def _timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def bench_quality(models_dir: Path) -> None:
    arch = default_arch(models_dir)
    path = models_dir / arch / "evaluation.json"
    print(f"== 1. Quality of the default model ({arch}) ==")
    if not path.is_file():
        print(f"   no {path}; run training.evaluate first")
        return
    r = json.loads(path.read_text())
    for key, label in (("accuracy", "test accuracy"), ("macro_f1", "test macro-F1")):
        lo, hi = r[f"{key}_ci"]
        verdict = "MET" if r[key] >= 0.95 else f"NOT MET (short by {0.95 - r[key]:.3f})"
        print(f"   {label:<16} {r[key]:.3f}  (95% CI {lo:.3f}-{hi:.3f})  target >= 0.950  {verdict}")
    print(f"   dedup accuracy   {r['dedup_accuracy']:.3f}  on the {r['dedup_n']} test images with no copy in train")
    valid = r.get("valid_accuracy")
    print(f"   valid accuracy   {'n/a' if valid is None else f'{valid:.3f}'}  (the default was chosen on the validation split only)")
    print(f"   reproduce: {r.get('command')}")


def bench_inference(models_dir: Path, sample: bytes, repeats: int) -> None:
    """The app's default path (fp32, frozen graph where it verifies), the same path run eagerly, the bare eager
    forward pass as the baseline, and the opt-in bf16 mode."""
    predictor = Predictor.from_checkpoint(default_checkpoint(models_dir), device="cpu", precision="fp32")
    eager = Predictor(predictor.model, predictor.meta, predictor.device, precision="fp32", engine="eager")
    print(f"== 2. Single-slice CPU inference ({predictor.arch}, input {predictor.prep.input_size}, "
          f"{torch.get_num_threads()} threads) ==")
    x = predictor.input_tensor(load_image(sample))
    with torch.inference_mode():
        for _ in range(5):
            eager.model(x)
            predictor.predict(load_image(sample))
            eager.predict(load_image(sample))
        bare = _timed(lambda: eager.model(x), repeats)
    full = _timed(lambda: predictor.predict(load_image(sample)), repeats)
    full_eager = _timed(lambda: eager.predict(load_image(sample)), repeats)
    p50_full, p50_eager, p50_bare = (statistics.median(t) * 1000 for t in (full, full_eager, bare))
    verdict = "MET" if p50_full <= 30 else f"NOT MET (over by {p50_full - 30:.1f} ms)"
    print(f"   PNG bytes -> probabilities  p50 {p50_full:6.1f} ms   target <= 30 ms  {verdict}  "
          f"(engine: {predictor.engine})")
    print(f"   same path, eager PyTorch    p50 {p50_eager:6.1f} ms   {p50_eager / p50_full:.2f}x the time")
    print(f"   baseline: bare eager forward p50 {p50_bare:6.1f} ms   ratio {p50_full / p50_bare:.2f}x")
    if cpu_has_native_bf16():
        fast = Predictor(predictor.model, predictor.meta, predictor.device, precision="bf16")
        for _ in range(5):
            fast.predict(load_image(sample))
        p50_fast = statistics.median(_timed(lambda: fast.predict(load_image(sample)), repeats)) * 1000
        print(f"   opt-in bf16 (LUNGSCAN_INFERENCE_PRECISION=bf16, eager)  p50 {p50_fast:6.1f} ms")


def bench_training_pipeline(models_dir: Path, samples, batch_size: int, batches: int) -> None:
    """One epoch's cost for the default model's own recipe input (size and geometry from its checkpoint)."""
    meta = read_checkpoint(default_checkpoint(models_dir))["meta"]
    arch, prep = meta["arch"], Preprocessing.from_dict(meta["preprocessing"])
    dataset = CachedCTDataset(samples[: batch_size * batches], prep, train=True)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True)
    device = torch.device("cpu")
    precision = training_precision(device)  # what training.train uses on this CPU
    torch.manual_seed(0)
    model = create_model(arch).to(memory_format=torch.channels_last).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    criterion = nn.CrossEntropyLoss()

    def step(x, y):
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision != "fp32"):
            loss = criterion(model(x.contiguous(memory_format=torch.channels_last)).float(), y)
        loss.backward()
        optimizer.step()

    preloaded = [(torch.randn(batch_size, 3, prep.input_size, prep.input_size), torch.randint(0, 4, (batch_size,)))
                 for _ in range(batches)]
    step(*preloaded[0])  # warm-up
    bare, real = [], []
    for _ in range(2):  # interleave to share any drift in machine load
        bare += _timed(lambda: [step(x, y) for x, y in preloaded], 1)
        real += _timed(lambda: [step(x, y) for x, y in loader], 1)
    bare_s, real_s = min(bare) / batches, min(real) / batches
    ratio = real_s / bare_s
    print(f"== 3. Training epoch cost ({arch}, batch {batch_size}, {precision}, channels_last) ==")
    print(f"   LungScan pipeline   {real_s:.3f} s/batch")
    print(f"   bare loop baseline  {bare_s:.3f} s/batch   ratio {ratio:.2f}x   target <= 1.30x  "
          f"{'MET' if ratio <= 1.3 else 'NOT MET'}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=Path("data/chest-ct"))
    p.add_argument("--models", type=Path, default=Path("models"))
    p.add_argument("--repeats", type=int, default=50)
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args(argv)
    samples = list_samples(a.data, "train") if (a.data / "train").exists() or (a.data / "Data").exists() else None
    if samples is None:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from synthetic import make_dataset  # noqa: E402  (synthetic stand-in when the dataset is absent)

        import tempfile

        root = make_dataset(Path(tempfile.mkdtemp()), per_class=a.batch_size * a.batches // 4 + 1, splits=("train",))
        samples = list_samples(root, "train")
        print(f"(dataset not found at {a.data}; using synthetic slices)")
    bench_quality(a.models)
    bench_inference(a.models, samples[0].path.read_bytes(), a.repeats)
    bench_training_pipeline(a.models, samples, a.batch_size, a.batches)


if __name__ == "__main__":
    main()
