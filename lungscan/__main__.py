"""Command-line inference: `python -m lungscan predict [--model NAME_OR_PATH] FILE... [--json]`.

Prints one result per file. An unreadable file gets its own error line (JSON object
with an "error" key) and the remaining files still run; the exit status is 1 when any
file failed, 2 when the model itself could not be loaded.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .classes import display_name, result_label
from .config import get_settings
from .devices import PRECISIONS
from .errors import ImageError, LungScanError
from .imaging import load_image
from .inference import Predictor, resolve_model


def _predict(args: argparse.Namespace) -> int:
    try:
        settings = get_settings()
        predictor = Predictor.from_checkpoint(resolve_model(args.model, settings.models_dir), device=args.device,
                                              precision=args.precision or settings.inference_precision)
    except LungScanError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for file in args.files:
        try:
            prediction = predictor.predict(load_image(Path(file)))
        except ImageError as exc:
            failed += 1
            if args.json:
                print(json.dumps({"file": file, "error": str(exc)}))
            else:
                print(f"{file}: error: {exc}")
            continue
        if args.json:
            print(json.dumps({"file": file, **prediction.to_dict()}))
        else:
            flag = "" if prediction.gate.ok else f"  [warning: {prediction.gate.reason}]"
            if prediction.framing_warning:
                flag += f"  [framing: {prediction.framing_warning}]"
            if prediction.resolution_warning:
                flag += f"  [resolution: {prediction.resolution_warning}]"
            probs = ", ".join(f"{display_name(k)} {v:.1%}" for k, v in prediction.probabilities.items())
            result = result_label(prediction.label, doubted=not prediction.gate.ok, confidence=prediction.confidence,
                                  decimals=1)
            print(f"{file}: {result} | {probs}{flag}")
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING)
    parser = argparse.ArgumentParser(prog="python -m lungscan", description="LungScan — research and education "
                                     "decision support for lung CT slices; not for diagnostic use.")
    sub = parser.add_subparsers(dest="command", required=True)
    predict = sub.add_parser("predict", help="classify CT slices (PNG, JPEG or DICOM)")
    predict.add_argument("files", nargs="+", metavar="FILE")
    predict.add_argument("--model", default=None, help="architecture name or checkpoint path (default: the default model)")
    predict.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    predict.add_argument("--precision", choices=PRECISIONS, default=None,
                         help="CPU inference precision (default: the inference_precision setting, fp32)")
    predict.add_argument("--json", action="store_true", help="one JSON object per file")
    args = parser.parse_args(argv)
    return _predict(args)


if __name__ == "__main__":
    sys.exit(main())
