"""How a model fares on validation slices presented as CT DICOM files would present them. Validation split only.

    python -m training.dicom_probe --data ../shared/data/chest-ct [--checkpoint PATH]

The dataset holds screenshots, not DICOM files, so each validation slice is written as a 16-bit CT file (through
`lungscan.dicom`'s reader, as an upload would be) in two framings:

- *as filed*: the screenshot's own frame, its black surround made air (-1000 HU);
- *in a field of view*: the same slice centred in a square with a margin of 25 % of each side of air, and the
  scanner's padding (-3024 HU) outside the circular field of view, as a full reconstruction looks.

Inside the body the Hounsfield units are the lung window's inverse, so the lung window renders the screenshot's own
grey levels. Each framing is rendered two ways: the lung window alone (air grey, as LungScan did before), and as
`lungscan.dicom.model_rendering` does now (the air around the patient black). Inverting the lung window cannot give
the chest wall realistic units, though (dark fat in a screenshot becomes air), so the mask of the surrounding air
is computed, with `lungscan.dicom.surrounding_air`, on a second map of the same slice in which the body's edge (grey
level `BODY_THRESHOLD`) lies at -500 HU, as it does in real CT. The test split is never read.
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
from lungscan.transforms import BODY_THRESHOLD

from .train import load_splits

LUNG_LOW, LUNG_WIDTH = -1350.0, 1500.0  # the lung window (W1500 / L-600)
AIR, PADDING = -1000.0, -3024.0
MARGIN = 0.25


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
    ds.PixelData = np.rint(hu + 1024).astype(np.int16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def screenshot_surround(grey: np.ndarray) -> np.ndarray:
    """The screenshot's own surround: dark pixels (at most `BODY_THRESHOLD`) connected to its edge."""
    _, labels = cv2.connectedComponents((grey <= BODY_THRESHOLD).astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge != 0])


def in_field_of_view(hu: np.ndarray) -> np.ndarray:
    """`hu` centred in a square of air, with the scanner's padding outside the square's inscribed circle."""
    height, width = hu.shape
    side = round(max(height, width) * (1 + 2 * MARGIN))
    top, left = (side - height) // 2, (side - width) // 2
    canvas = np.full((side, side), AIR, np.float32)
    canvas[top:top + height, left:left + width] = hu
    rows, columns = np.mgrid[:side, :side]
    padding = (rows - side / 2) ** 2 + (columns - side / 2) ** 2 > (side / 2) ** 2
    canvas[padding] = PADDING
    return canvas


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING)
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--checkpoint", type=Path, default=None, help="default: the app's default model")
    a = p.parse_args(argv)
    checkpoint = a.checkpoint or default_checkpoint(Path("models"))
    predictor = Predictor.from_checkpoint(checkpoint, device="cpu")
    samples = load_splits(a.data)["valid"]
    truth = [predictor.class_names[s.label] for s in samples]
    labels: dict[str, list[str]] = {}
    untouched = {"as filed": 0, "in a field of view": 0}
    for sample in samples:
        grey = np.asarray(load_image(sample.path.read_bytes()))
        surround = screenshot_surround(grey)
        labels.setdefault("screenshot", []).append(predictor.predict(Image.fromarray(grey)).label)
        lung_hu = LUNG_LOW + grey.astype(np.float32) / 255 * LUNG_WIDTH
        lung_hu[surround] = AIR
        edge_hu = AIR + grey.astype(np.float32) * (dicom.AIR_HU - AIR) / BODY_THRESHOLD  # grey 30 -> -500 HU
        edge_hu[surround] = AIR
        for framing in untouched:
            pixels_hu = lung_hu if framing == "as filed" else in_field_of_view(lung_hu)
            mask_hu = edge_hu if framing == "as filed" else in_field_of_view(edge_hu)
            plain = np.array(dicom.read_dicom(ct_file(pixels_hu)).render("lung"))
            labels.setdefault(f"{framing}, lung window (air grey)", []).append(
                predictor.predict(Image.fromarray(plain)).label)
            mask = dicom.surrounding_air(dicom.read_dicom(ct_file(mask_hu)).hu)
            plain[mask] = 0
            labels.setdefault(f"{framing}, surrounding air black", []).append(
                predictor.predict(Image.fromarray(plain)).label)
            untouched[framing] += not mask.any()
    print(f"{checkpoint}: {len(samples)} validation slices\n")
    print("| input | accuracy | predictions as for the screenshot |\n|---|---|---|")
    for name, predicted in labels.items():
        accuracy = np.mean([p == t for p, t in zip(predicted, truth)])
        same = np.mean([p == s for p, s in zip(predicted, labels["screenshot"])])
        print(f"| {name} | {accuracy:.3f} | {same:.3f} |")
    print()
    for framing, left in untouched.items():
        print(f"- {framing}: the surrounding air was left grey in {left} of {len(samples)} slices, whose body touches "
              f"over {dicom.MAX_EDGE_CONTACT:.0%} of the border (`surrounding_air`)")


if __name__ == "__main__":
    main()
