"""Reading and de-identifying single CT slices stored as DICOM (pydicom 3).

`read_dicom` turns DICOM bytes into Hounsfield units (Rescale Slope/Intercept or a
Modality LUT applied) and renders them through a named or custom window; the
result keeps only technical metadata, never the dataset itself. The rendering the
model analyses looks like the CT screenshots the models learned from: their contrast
(`MODEL_WINDOW`) and their black surround (see `model_rendering`); `DicomSlice.render`
gives the clinical windows for display. Values that are not Hounsfield units (not a CT image, e.g. a screenshot
saved as a secondary capture) are shown and analysed as the file displays them
(`stored_rendering`). `anonymize_dicom` rewrites a file keeping an allow-list of
technical attributes, blanks the identifying ones the CT object requires, replaces
the UIDs and drops everything else (private tags, sequences, overlays, free text),
in the spirit of the DICOM PS3.15 Basic Confidentiality Profile. LungScan stores
only that output or a PNG rendering, never the uploaded file.

Decisions: a multi-frame file is refused unless the caller names a `frame`, because
silently picking one slice of a volume could classify a slice nobody looked at.
Colour DICOMs (secondary captures) are refused: they carry no Hounsfield units.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import BytesLengthException, InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut, get_decoder, pixel_array
from pydicom.uid import UID, UID_dictionary, generate_uid

from .errors import DicomError
from .imaging import MAX_PIXELS, MIN_SIDE

#: Named display windows as (width, level) in Hounsfield units.
WINDOWS: dict[str, tuple[float, float]] = {
    "lung": (1500.0, -600.0),
    "mediastinal": (350.0, 50.0),
    "soft_tissue": (400.0, 40.0),
    "bone": (1800.0, 400.0),
}
DEFAULT_WINDOW = "lung"
#: (width, level) through which the model sees a CT slice: the median window that the training screenshots' lung and
#: body grey levels imply (`python -m training.dicom_probe`: W2228 / L72), far wider than the lung window. Through
#: the lung window the lungs come out about 85 of 255 against about 20 in those screenshots.
MODEL_WINDOW: tuple[float, float] = (2230.0, 70.0)

Window = str | tuple[float, float]

#: Below this many Hounsfield units a pixel is air (about -1000 HU) or the scanner's padding outside its field of
#: view, not tissue: fat is about -100 HU and aerated lung -900 to -500 HU, but the lungs lie inside the body.
AIR_HU = -500.0
#: Share of the slice's border the body may touch (arms, a large patient) for the slice still to count as showing
#: the whole body inside air; see `surrounding_air`.
MAX_EDGE_CONTACT = 0.25

# pydicom raises a variety of exceptions for malformed files (found by fuzzing truncated,
# bit-flipped and random files); these are the ones we turn into a DicomError.
_PARSE_ERRORS = (
    InvalidDicomError,
    BytesLengthException,
    NotImplementedError,  # unknown VR
    AttributeError,  # a required tag missing where pydicom expects it
    EOFError,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    struct.error,
    OSError,
)


@dataclass(frozen=True)
class DicomSlice:
    """One decoded slice: Hounsfield units, a rendering and non-identifying metadata."""

    hu: np.ndarray
    #: What the model analyses: the window below (`MODEL_WINDOW` unless asked otherwise) with the air around the
    #: patient black (`model_rendering`), or
    #: for values that are not Hounsfield units, the file's own display (`stored_rendering`).
    image: Image.Image
    window: tuple[float, float]
    #: True for MONOCHROME1, where low values are displayed bright.
    inverted: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    #: False when the values are not Hounsfield units (not a CT image, e.g. a screenshot saved as a secondary
    #: capture): `hu` then holds them as stored, `image` shows them as the file asks, and CT windows do not apply.
    hounsfield: bool = True

    def render(self, window: Window = DEFAULT_WINDOW) -> Image.Image:
        """The slice as an 8-bit greyscale image through another window preset or (width, level)."""
        if not self.hounsfield:
            modality = self.metadata.get("modality") or "unknown"
            raise DicomError(f"This DICOM image is not in Hounsfield units (modality {modality}), so CT windows do "
                             "not apply to it.")
        return _render(self.hu, resolve_window(window), inverted=self.inverted)


def resolve_window(window: Window) -> tuple[float, float]:
    """(width, level) for a preset name or a custom pair; refuses unknown names and width <= 0."""
    if isinstance(window, str):
        try:
            return WINDOWS[window]
        except KeyError:
            raise DicomError(f"Unknown window {window!r}; choose one of {', '.join(WINDOWS)} or give (width, level).")
    try:
        width, level = (float(v) for v in window)
    except (TypeError, ValueError) as exc:
        raise DicomError("A custom window is a pair of numbers: (width, level).") from exc
    if not np.isfinite(width) or not np.isfinite(level) or width <= 0:
        raise DicomError(f"Window width must be a positive number, not {width}.")
    return width, level


def _render(hu: np.ndarray, window: tuple[float, float], *, inverted: bool) -> Image.Image:
    width, level = window
    low = level - width / 2
    scaled = np.clip((hu - low) / width, 0.0, 1.0) * 255.0
    pixels = np.rint(scaled).astype(np.uint8)
    if inverted:
        pixels = 255 - pixels
    return Image.fromarray(pixels, mode="L")


def surrounding_air(hu: np.ndarray) -> np.ndarray:
    """Boolean mask of the air around the patient: pixels under `AIR_HU` connected to the slice's edge.

    Air inside the body (lungs, airways) is enclosed by tissue and is not part of it; nor is a table or anything
    else denser than air. When the body reaches more than `MAX_EDGE_CONTACT` of the slice's border, the slice was
    reconstructed or cut through the body (a zoomed field of view) and a lung may touch the edge too: then nothing
    is marked, since such a slice is framed close to the body already.
    """
    tissue = (hu >= AIR_HU).astype(np.uint8)
    side = max(3, round(min(hu.shape) / 100) | 1)  # detaches a table or thin lines, as `body_box` does
    tissue = cv2.morphologyEx(tissue, cv2.MORPH_OPEN, np.ones((side, side), np.uint8))
    count, labels, stats, _ = cv2.connectedComponentsWithStats(tissue, connectivity=8)
    if count > 1:
        body = labels == 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
        border = np.concatenate([body[0], body[-1], body[1:-1, 0], body[1:-1, -1]])
        if border.mean() > MAX_EDGE_CONTACT:
            return np.zeros(hu.shape, dtype=bool)
    return connected_to_edge(hu < AIR_HU)


def connected_to_edge(mask: np.ndarray) -> np.ndarray:
    """The pixels of a boolean `mask` whose region (4-connected) touches the slice's edge."""
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=4)
    edge = np.unique(np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]]))
    return np.isin(labels, edge[edge != 0])


def model_rendering(hu: np.ndarray, window: tuple[float, float] = MODEL_WINDOW) -> Image.Image:
    """The slice as the models expect it: through `window`, with the air around the patient black.

    The models learned from CT screenshots whose surround is black (grey level 0), whose body is the bright region
    that `lungscan.transforms.body_box` finds, and whose contrast `MODEL_WINDOW` matches. On validation screenshots
    turned back into Hounsfield units and written as DICOM in a field of view, the default model's accuracy is
    0.403 through the lung window (air grey, as LungScan rendered DICOM before), 0.855 with the surround black and
    0.919 through `MODEL_WINDOW`, against 0.952 on the screenshots; the previous default, trained without random
    contrast, scored 0.323, 0.548 and 0.919 (`python -m training.dicom_probe`). The polarity
    is always air-dark, whatever the file's photometric interpretation: that is what the models saw.
    """
    pixels = np.array(_render(hu, window, inverted=False))
    pixels[surrounding_air(hu)] = 0
    return Image.fromarray(pixels, mode="L")


def in_hounsfield_units(ds: Dataset, rescale: Dataset) -> bool:
    """Whether the values, after the modality LUT, are Hounsfield units: a CT image, or a rescale that says so."""
    return (str(ds.get("Modality", "")).strip().upper() == "CT"
            or str(rescale.get("RescaleType", "")).strip().upper() == "HU")


def stored_rendering(values: np.ndarray, ds: Dataset, *, inverted: bool) -> Image.Image:
    """Values that are not Hounsfield units, shown as the file asks: through its own Window Center / Width; else,
    with 8 bits or fewer, as grey levels (a screenshot saved as DICOM); else stretched over their own range."""
    center, width = _number(ds, "WindowCenter"), _number(ds, "WindowWidth")
    if center is not None and width is not None and width > 0:
        window = (width, center)
    elif int(ds.get("BitsStored", 16) or 16) <= 8 and values.min() >= 0:
        window = (255.0, 127.5)
    else:
        low, high = float(values.min()), float(values.max())
        window = (max(high - low, 1.0), (high + low) / 2)
    return _render(values, window, inverted=inverted)


def _parse(data: bytes) -> Dataset:
    """Parse every element now (pydicom is lazy), so a corrupt header fails here, with one message."""
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        for _ in ds.iterall():
            pass
        syntax = ds.file_meta.get("TransferSyntaxUID")
        if not syntax or not isinstance(syntax, str):
            raise DicomError("The DICOM file has no transfer syntax in its header, so its pixels cannot be read.")
        if not UID(syntax).is_transfer_syntax:
            raise DicomError(f"The DICOM header names an unknown transfer syntax ({syntax}).")
    except _PARSE_ERRORS as exc:
        raise DicomError(f"The DICOM file is corrupt or truncated and cannot be read ({exc}).") from exc
    return ds


def _transfer_syntax(ds: Dataset) -> UID | None:
    meta = getattr(ds, "file_meta", None)
    return UID(meta.TransferSyntaxUID) if meta is not None and "TransferSyntaxUID" in meta else None


def _check_decodable(ds: Dataset) -> None:
    syntax = _transfer_syntax(ds)
    if syntax is None or not syntax.is_compressed:
        return
    try:
        decoder = get_decoder(syntax)
    except NotImplementedError as exc:
        raise DicomError(f"The DICOM encoding {syntax.name} is not supported.") from exc
    if not decoder.is_available:
        raise DicomError(
            f"The DICOM image is compressed as {syntax.name}, which LungScan cannot decode here "
            "(no decoder plugin installed). Export the slice uncompressed or as PNG and upload that."
        )


def _rescale_dataset(ds: Dataset, frame: int) -> Dataset:
    """The dataset that holds Rescale Slope/Intercept: top level, or an enhanced CT's functional groups."""
    if "RescaleSlope" in ds or "ModalityLUTSequence" in ds:
        return ds
    for groups_keyword, index in (("PerFrameFunctionalGroupsSequence", frame), ("SharedFunctionalGroupsSequence", 0)):
        groups = ds.get(groups_keyword)
        if not groups or index >= len(groups):
            continue
        transformation = groups[index].get("PixelValueTransformationSequence")
        if transformation:
            return transformation[0]
    return ds


def _number(ds: Dataset, keyword: str) -> float | None:
    value = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, MultiValue)):
        value = value[0] if len(value) else None
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def technical_metadata(ds: Dataset) -> dict[str, Any]:
    """Non-identifying acquisition tags, JSON-serialisable; missing ones are None."""
    spacing = ds.get("PixelSpacing")
    syntax = _transfer_syntax(ds)
    return {
        "modality": str(ds.get("Modality", "")) or None,
        "rows": int(ds.Rows) if "Rows" in ds else None,
        "columns": int(ds.Columns) if "Columns" in ds else None,
        "pixel_spacing_mm": [float(v) for v in spacing] if spacing else None,
        "slice_thickness_mm": _number(ds, "SliceThickness"),
        "kvp": _number(ds, "KVP"),
        "photometric_interpretation": str(ds.get("PhotometricInterpretation", "")) or None,
        "bits_stored": int(ds.BitsStored) if "BitsStored" in ds else None,
        "number_of_frames": int(_number(ds, "NumberOfFrames") or 1),
        "transfer_syntax": syntax.name if syntax is not None else None,
    }


def read_dicom(data: bytes, *, window: Window = MODEL_WINDOW, frame: int | None = None) -> DicomSlice:
    """Decode a single-slice DICOM into Hounsfield units and the 8-bit rendering the model analyses.

    `window` is a preset name from WINDOWS or a custom (width, level) for that rendering. For a
    multi-frame file, `frame` (0-based) must name the slice. Raises DicomError with a
    message fit for the user.
    """
    resolved_window = resolve_window(window)
    ds = _parse(data)
    if not any(keyword in ds for keyword in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise DicomError("The DICOM file has no image (no pixel data); it may be a report or structured document.")
    image_type = ds.get("ImageType") or []
    image_type = [str(value).strip().upper() for value in ([image_type] if isinstance(image_type, str) else image_type)]
    if "LOCALIZER" in image_type:
        raise DicomError(
            "The DICOM image is a localizer (scout): a projection through the whole body taken to plan the scan, not "
            "an axial slice. It is often the first file of a series; upload an axial slice of the chest instead."
        )
    photometric = str(ds.get("PhotometricInterpretation", "")).strip().upper()
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        raise DicomError(
            f"The DICOM image is {photometric or 'of unknown colour model'}, not a greyscale CT acquisition "
            "(MONOCHROME1/2). Upload the original CT slice."
        )
    rows, columns = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    if min(rows, columns) < MIN_SIDE:
        raise DicomError(f"The DICOM image is {columns}x{rows} pixels; at least {MIN_SIDE} px per side is needed.")
    if rows * columns > MAX_PIXELS:
        raise DicomError(f"The DICOM image is {columns}x{rows} pixels; the limit is {MAX_PIXELS / 1e6:.0f} megapixels.")
    frames = int(_number(ds, "NumberOfFrames") or 1)
    if frames > 1 and frame is None:
        raise DicomError(
            f"The DICOM file holds {frames} frames (a multi-frame volume). LungScan analyses one slice: "
            "export the slice you want as a single-frame DICOM or PNG."
        )
    index = 0 if frame is None else frame
    if not 0 <= index < frames:
        raise DicomError(f"Frame {index} does not exist; the file has {frames} frame(s).")
    _check_decodable(ds)
    try:
        raw = pixel_array(ds, index=index if frames > 1 else None)
    except (*_PARSE_ERRORS, RuntimeError) as exc:
        raise DicomError(f"The DICOM pixel data is corrupt, truncated or cannot be decoded ({exc}).") from exc
    if raw.ndim != 2:
        raise DicomError(f"Expected one greyscale slice, got pixel data of shape {raw.shape}.")
    rescale = _rescale_dataset(ds, index)
    try:
        hu = np.asarray(apply_modality_lut(raw, rescale), dtype=np.float32)
    except _PARSE_ERRORS as exc:
        raise DicomError(f"The DICOM rescale / modality LUT tags are invalid ({exc}).") from exc
    if not np.isfinite(hu).all():
        raise DicomError("The DICOM pixel data contains non-finite values.")
    inverted = photometric == "MONOCHROME1"
    metadata = technical_metadata(ds)
    if frames > 1:
        metadata["frame"] = index
    hounsfield = in_hounsfield_units(ds, rescale)
    return DicomSlice(
        hu=hu,
        image=model_rendering(hu, resolved_window) if hounsfield else stored_rendering(hu, ds, inverted=inverted),
        window=resolved_window,
        inverted=inverted,
        metadata=metadata,
        hounsfield=hounsfield,
    )


# --- De-identification --------------------------------------------------------------------------

#: Technical attributes copied unchanged into an anonymised file; everything else is dropped.
KEEP_KEYWORDS: frozenset[str] = frozenset({
    "SpecificCharacterSet", "ImageType", "SOPClassUID", "Modality", "Manufacturer", "ManufacturerModelName",
    "BodyPartExamined", "SliceThickness", "SpacingBetweenSlices", "KVP", "DataCollectionDiameter",
    "ReconstructionDiameter", "GantryDetectorTilt", "TableHeight", "RotationDirection", "ExposureTime",
    "XRayTubeCurrent", "Exposure", "FilterType", "ConvolutionKernel", "PatientPosition", "SeriesNumber",
    "AcquisitionNumber", "InstanceNumber", "ImagePositionPatient", "ImageOrientationPatient", "SliceLocation",
    "SamplesPerPixel", "PhotometricInterpretation", "NumberOfFrames", "Rows", "Columns", "PixelSpacing",
    "PixelAspectRatio", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "PlanarConfiguration",
    "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue", "WindowCenter", "WindowWidth",
    "VOILUTFunction", "RescaleIntercept", "RescaleSlope", "RescaleType", "LossyImageCompression",
    "LossyImageCompressionRatio", "LossyImageCompressionMethod", "PixelData", "FloatPixelData",
    "DoubleFloatPixelData",
})
#: UIDs that identify the study, series, instance or frame of reference: replaced, not kept.
REPLACE_UID_KEYWORDS: tuple[str, ...] = (
    "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID",
)
#: Type 2 attributes of the CT Image IOD that must be present, so they stay, empty.
BLANK_KEYWORDS: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber",
)
#: (0012,0063) is LO: at most 64 characters.
DEIDENTIFICATION_METHOD = "LungScan allow-list, PS3.15 Basic Profile spirit, new UIDs"


def anonymize_dicom(data: bytes) -> bytes:
    """A de-identified copy of a DICOM file; the pixel data and technical tags are unchanged.

    Refuses files that declare burned-in annotation, since text in the pixels
    cannot be removed here.
    """
    ds = _parse(data)
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        raise DicomError(
            "The DICOM image declares burned-in annotation (text such as names in the pixels), "
            "which LungScan cannot remove. Upload a clean slice."
        )
    try:
        clean = _allow_listed_copy(ds)
        buffer = io.BytesIO()
        clean.save_as(buffer, enforce_file_format=True)
    except _PARSE_ERRORS as exc:
        raise DicomError(f"The DICOM file could not be rewritten without identifying data ({exc}).") from exc
    return buffer.getvalue()


def _allow_listed_copy(ds: Dataset) -> Dataset:
    """A new dataset with only KEEP_KEYWORDS, blanked BLANK_KEYWORDS, fresh UIDs and a new file meta."""
    syntax = _transfer_syntax(ds)
    clean = Dataset()
    for element in ds:
        keyword = element.keyword
        if element.tag.is_private or not keyword or keyword not in KEEP_KEYWORDS:
            continue
        if element.VR == "SQ":
            continue
        clean.add(element)
    for keyword in BLANK_KEYWORDS:
        setattr(clean, keyword, "")
    new_uids = {keyword: generate_uid() for keyword in REPLACE_UID_KEYWORDS if keyword in ds}
    new_uids.setdefault("SOPInstanceUID", generate_uid())
    for keyword, uid in new_uids.items():
        setattr(clean, keyword, uid)
    if "SOPClassUID" in clean and UID(clean.SOPClassUID) not in UID_dictionary:
        del clean.SOPClassUID  # a private SOP class UID can point back to a vendor or site
    clean.PatientIdentityRemoved = "YES"
    clean.DeidentificationMethod = DEIDENTIFICATION_METHOD

    meta = FileMetaDataset()
    meta.TransferSyntaxUID = syntax
    meta.MediaStorageSOPClassUID = clean.get("SOPClassUID", UID("1.2.840.10008.5.1.4.1.1.7"))  # SC if unknown
    meta.MediaStorageSOPInstanceUID = clean.SOPInstanceUID
    clean.file_meta = meta
    if "SOPClassUID" not in clean:
        clean.SOPClassUID = meta.MediaStorageSOPClassUID
    return clean
