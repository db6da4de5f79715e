"""Upload-to-result latency of the Scan page, and proof that the model is loaded once per process.

Drives the real app (app.py -> pages/scan.py) with Streamlit's AppTest: signs in as a
clinician, then uploads a different CT-like slice each time and measures the script
run that reads the upload, classifies it, saves it, computes the Grad-CAM heatmap and
builds every figure. Browser rendering is not included (see tests/test_e2e_browser.py
for the browser path). A second session is opened to show the cached model is shared.

    python -m benchmarks.ui_latency                    # default model if trained, else same arch untrained
    python -m benchmarks.ui_latency --uploads 20 --models-dir models

Prints the figures; exits non-zero when the model was loaded more than once per checkpoint.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
TARGET_P50_S = 1.5
PASSWORD = "Timing-pass-123"


def ct_like_slice(seed: int, size: int = 512) -> bytes:
    """A synthetic axial slice: a bright body disk, two dark lungs, some texture; different per seed."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    body = (yy - 0.5) ** 2 / 0.16 + (xx - 0.5) ** 2 / 0.2 < 1
    lungs = ((yy - 0.48) ** 2 / 0.06 + (xx - 0.32) ** 2 / 0.015 < 1) | ((yy - 0.48) ** 2 / 0.06 + (xx - 0.68) ** 2 / 0.015 < 1)
    pixels = np.where(body, 150.0, 5.0)
    pixels[lungs] = 25.0
    pixels += rng.normal(0, 12, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L").save(buffer, format="PNG")
    return buffer.getvalue()


def resolve_models_dir(requested: Path | None, scratch: Path) -> tuple[Path, str]:
    """The models folder to benchmark and a description of what is in it."""
    from lungscan.errors import CheckpointError
    from lungscan.inference import default_arch, default_checkpoint

    candidates = [requested] if requested else [ROOT / "models"]
    for folder in candidates:
        try:
            path = default_checkpoint(folder)
        except CheckpointError:
            continue
        return folder, f"trained checkpoint {path}"
    if requested:
        raise SystemExit(f"No default checkpoint in {requested}.")
    sys.path.insert(0, str(ROOT / "tests"))
    from tiny_models import write_tiny_checkpoint

    arch = default_arch(ROOT / "models")
    write_tiny_checkpoint(scratch / "models", arch, input_size=224)
    return scratch / "models", f"untrained {arch} at 224 px (same compute as the trained default; no trained model found)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--uploads", type=int, default=12, help="measured uploads (at least 10)")
    parser.add_argument("--warmup", type=int, default=2, help="uploads before measuring")
    parser.add_argument("--models-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.uploads < 10:
        parser.error("--uploads must be at least 10")
    logging.basicConfig(level=logging.WARNING)

    scratch = Path(tempfile.mkdtemp(prefix="lungscan-bench-"))
    models_dir, description = resolve_models_dir(args.models_dir, scratch)
    os.environ.update(
        {
            "LUNGSCAN_DATA_DIR": str(scratch / "data"),
            "LUNGSCAN_MODELS_DIR": str(models_dir),
            "LUNGSCAN_ADMIN_PASSWORD": "Bench-root-456",
        }
    )
    os.chdir(ROOT)

    from streamlit.testing.v1 import AppTest

    from lungscan import auth, inference, storage
    from lungscan.config import Settings

    loads: list[str] = []
    original = inference.Predictor.from_checkpoint.__func__

    def counting_from_checkpoint(cls, path, *args, **kwargs):
        loads.append(str(path))
        return original(cls, path, *args, **kwargs)

    inference.Predictor.from_checkpoint = classmethod(counting_from_checkpoint)

    settings = Settings()
    engine = storage.get_engine(settings.resolved_database_url)
    storage.init_db(engine)
    with storage.new_session(engine) as session:
        auth.create_user(session, username="bench", name="Benchmark", password=PASSWORD, role="clinician")

    def signed_in_scan_page() -> AppTest:
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=300).run()
        at.text_input[0].input("bench")
        at.text_input[1].input(PASSWORD)
        at.button[0].click().run()
        at.run()
        at.switch_page("pages/scan.py").run()
        if at.exception:
            raise SystemExit(f"The scan page failed: {at.exception}")
        return at

    def upload(at: AppTest, seed: int) -> float:
        at.text_input[0].input(f"BENCH-{seed:03d}")
        at.file_uploader[0].set_value((f"slice-{seed}.png", ct_like_slice(seed), "image/png"))
        start = time.perf_counter()
        at.button[0].click().run()
        elapsed = time.perf_counter() - start
        if at.exception or not at.get("plotly_chart") or not at.success:
            raise SystemExit(f"Upload {seed} did not render a result: {at.exception or [e.value for e in at.error]}")
        return elapsed

    at = signed_in_scan_page()
    for seed in range(args.warmup):
        upload(at, seed)
    timings = [upload(at, args.warmup + i) for i in range(args.uploads)]

    second_session = signed_in_scan_page()  # another browser tab / user: must reuse the cached model
    second = upload(second_session, 10_000)

    with storage.new_session(engine) as session:
        saved = storage.count_scans(session)
    p50 = statistics.median(timings)
    p90 = float(np.percentile(timings, 90))
    per_checkpoint = {path: loads.count(path) for path in set(loads)}
    print("LungScan Scan page latency (AppTest, upload -> rendered result incl. Grad-CAM and save)")
    print(f"  model:            {description}")
    print(f"  CPU threads:      torch {__import__('torch').get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    print(f"  uploads measured: {len(timings)} (after {args.warmup} warm-up)")
    print(f"  p50:              {p50:.3f} s   (target <= {TARGET_P50_S} s: {'met' if p50 <= TARGET_P50_S else 'NOT met'})")
    print(f"  p90:              {p90:.3f} s")
    print(f"  min / max:        {min(timings):.3f} / {max(timings):.3f} s")
    print(f"  second session:   {second:.3f} s for its first upload")
    print(f"  scans saved:      {saved}")
    print(f"  model loads:      {len(loads)} in this process " + ", ".join(f"({Path(p).parent.name}: {n})" for p, n in per_checkpoint.items()))
    once = all(n == 1 for n in per_checkpoint.values()) and len(per_checkpoint) >= 1
    print(f"  loaded once per process: {'yes' if once else 'NO'}")
    return 0 if once else 1


if __name__ == "__main__":
    sys.exit(main())
