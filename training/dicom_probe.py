"""Which window should a DICOM slice be rendered through for the model, and how does it fare then? No test split.

    python -m training.dicom_probe --data ../shared/data/chest-ct [--checkpoint PATH]

The dataset holds screenshots, not DICOM files, and a screenshot does not say which CT window it was taken
through. Its grey levels do hint at it: the median grey level of the aerated lung and that of the rest of the
body, taken to be about -850 and -20 Hounsfield units (lung parenchyma; fat at -100 mixed with muscle and blood
at 40), give the window that maps the one onto the other (`implied_window`).

1. **Training split**: the median window implied by the training screenshots, which `lungscan.dicom.MODEL_WINDOW`
   records, beside the standard lung window.
2. **Validation split**: each screenshot is turned back into Hounsfield units through its own implied window (its
   black surround made air, -1000 HU), written as a 16-bit CT DICOM file, read back through `lungscan.dicom` as an
   upload would be, and rendered through the lung window or the model window; as filed, and centred in a field of
   view (a margin of 25 % of each side of air, the scanner's padding of -3024 HU outside the circle), with the air
   left as the window renders it or blacked out as `lungscan.dicom.model_rendering` does.

Units made from screenshots are approximate, and dark fat in a screenshot can come out under -500 HU, where real fat
never is; so the mask of the surrounding air (`lungscan.dicom.surrounding_air`) is computed on a second map of the
same slice whose body edge (grey level `BODY_THRESHOLD`) lies at -500 HU, as it does in real CT. What this measures
is how much the model depends on the contrast and framing of its training screenshots, not how it does on real CT.
"""

from __future__ import annotations

import argparse
import io
import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from lungscan import dicom
from lungscan.imaging import load_image
from lungscan.inference import Predictor, default_checkpoint
from lungscan.transforms import BODY_THRESHOLD, body_box

from .train import load_splits

LUNG_HU, BODY_HU = -850.0, -20.0  # aerated lung; the rest of the body (fat, muscle, blood) taken together
AIR, PADDING = -1000.0, -3024.0
MARGIN = 0.25


def implied_window(grey: np.ndarray) -> tuple[float, float] | None:
    """(width, level) that maps `LUNG_HU` and `BODY_HU` to the screenshot's median lung and body grey levels.

    Within the body's box, Otsu's threshold splits the dark lungs from the brighter body; saturated pixels (bone,
    text) and the black surround are left out. None when either part is too small to tell.
    """
    left, top, right, bottom = body_box(Image.fromarray(grey))
    inner = grey[top:bottom, left:right]
    threshold, _ = cv2.threshold(inner, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    lung, body = inner[(inner <= threshold) & (inner > 0)], inner[(inner > threshold) & (inner < 250)]
    if min(lung.size, body.size) < 100 or np.median(body) - np.median(lung) < 10:
        return None
    width = (BODY_HU - LUNG_HU) * 255 / float(np.median(body) - np.median(lung))
    low = LUNG_HU - float(np.median(lung)) * width / 255
    return width, low + width / 2


def ct_file(hu: np.ndarray) -> bytes:
    """A minimal single-frame CT Image Storage file holding `hu` (stored as HU + 1024, signed 16-bit)."""
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, meta.MediaStorageSOPInstanceUID, "CT"
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = hu.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, -1024
    ds.PixelData = np.rint(np.clip(hu, -3024, 3000) + 1024).astype(np.int16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def screenshot_surround(grey: np.ndarray) -> np.ndarray:
    """The screenshot's own surround: dark pixels (at most `BODY_THRESHOLD`) connected to its edge."""
    return dicom.connected_to_edge(grey <= BODY_THRESHOLD)


def in_field_of_view(hu: np.ndarray) -> np.ndarray:
    """`hu` centred in a square of air, with the scanner's padding outside the square's inscribed circle."""
    height, width = hu.shape
    side = round(max(height, width) * (1 + 2 * MARGIN))
    top, left = (side - height) // 2, (side - width) // 2
    canvas = np.full((side, side), AIR, np.float32)
    canvas[top:top + height, left:left + width] = hu
    rows, columns = np.mgrid[:side, :side]
    canvas[(rows - side / 2) ** 2 + (columns - side / 2) ** 2 > (side / 2) ** 2] = PADDING
    return canvas


def train_window(samples) -> tuple[float, float]:
    windows = [w for w in (implied_window(np.asarray(load_image(s.path.read_bytes()))) for s in samples) if w]
    width, level = np.median(np.array(windows), axis=0)
    print(f"training split: the window implied by {len(windows)} of {len(samples)} screenshots has a median width "
          f"of {width:.0f} HU and level {level:.0f} HU (lungscan.dicom.MODEL_WINDOW: W{dicom.MODEL_WINDOW[0]:.0f} / "
          f"L{dicom.MODEL_WINDOW[1]:.0f}; the lung window is W1500 / L-600)\n")
    return float(width), float(level)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, default=None, help="default: the app's default model")
    a = p.parse_args(argv)
    splits = load_splits(a.data)
    fallback = train_window(splits["train"])
    checkpoint = a.checkpoint or default_checkpoint(Path("models"))
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    samples = splits["valid"]
    truth = [predictor.class_names[s.label] for s in samples]
    windows = {"lung window": dicom.WINDOWS["lung"], "model window": dicom.MODEL_WINDOW}
    labels: dict[str, list[str]] = {"the screenshot": []}
    guessed = 0
    for sample in samples:
        grey = np.asarray(load_image(sample.path.read_bytes()))
        labels["the screenshot"].append(predictor.predict(Image.fromarray(grey)).label)
        surround = screenshot_surround(grey)
        own = implied_window(grey)
        guessed += own is None
        width, level = own or fallback
        hu = level - width / 2 + grey.astype(np.float32) / 255 * width
        hu[surround] = AIR
        edge_hu = AIR + grey.astype(np.float32) * (dicom.AIR_HU - AIR) / BODY_THRESHOLD  # grey 30 -> -500 HU
        edge_hu[surround] = AIR
        for framing, frame in (("as filed", lambda x: x), ("in a field of view", in_field_of_view)):
            slice_ = dicom.read_dicom(ct_file(frame(hu)))
            mask = dicom.surrounding_air(np.rint(frame(edge_hu)))
            for name, window in windows.items():
                rendered = np.array(slice_.render(window))
                labels.setdefault(f"{framing}, {name}, air as rendered", []).append(
                    predictor.predict(Image.fromarray(rendered)).label)
                rendered[mask] = 0
                labels.setdefault(f"{framing}, {name}, surrounding air black", []).append(
                    predictor.predict(Image.fromarray(rendered)).label)
    print(f"{checkpoint}: {len(samples)} validation slices ({guessed} rendered back through the training median "
          "window, their own being unclear)\n")
    print("| validation input | accuracy | cancer called normal | predictions as for the screenshot |")
    print("|---|---|---|---|")
    for name, predicted in labels.items():
        accuracy = np.mean([p == t for p, t in zip(predicted, truth)])
        missed = np.mean([p == "normal" for p, t in zip(predicted, truth) if t != "normal"])
        same = np.mean([p == s for p, s in zip(predicted, labels["the screenshot"])])
        print(f"| {name} | {accuracy:.3f} | {missed:.3f} | {same:.3f} |")


if __name__ == "__main__":
    main()
