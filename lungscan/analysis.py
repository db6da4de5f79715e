"""From uploaded bytes to a saved, explained scan: the Scan page's work without the page.

`prepare_upload` reads one file by content (PNG, JPEG, DICOM, ...) and refuses bad
input with an ImageError; `analyse` runs the model; `save_analysis` stores the
image and the row together. What is stored is always a fresh PNG of the greyscale
slice the model analysed (for DICOM: `lungscan.dicom.model_rendering`), so no upload metadata
(EXIF, PNG text chunks, DICOM patient tags) ever reaches the disk.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from PIL import Image
from pydantic import ValidationError as PydanticValidationError
from sqlmodel import Session

from . import imaging, storage
from .config import Settings
from .errors import ValidationError

if TYPE_CHECKING:
    from .dicom import DicomSlice

log = logging.getLogger(__name__)

#: Upload types the Scan page offers (content is sniffed regardless of the name).
UPLOAD_TYPES: tuple[str, ...] = ("png", "jpg", "jpeg", "dcm", "dicom")


class PredictionLike(Protocol):
    label: str
    confidence: float
    probabilities: dict[str, float]
    arch: str
    model_version: str
    gate: Any


@dataclass(frozen=True)
class PreparedImage:
    """One readable upload: the greyscale image the model gets and where it came from."""

    image: Image.Image
    source_format: str
    filename: str
    #: The decoded DICOM slice (Hounsfield units, window presets); None for raster images.
    dicom: DicomSlice | None = None


def prepare_upload(data: bytes, *, filename: str = "") -> PreparedImage:
    """Read one uploaded file by content. Raises ImageError (or DicomError) with a user-facing message."""
    data = imaging.read_bytes(data)
    name = storage.sanitise_filename(filename)
    if imaging.is_dicom(data):
        from .dicom import read_dicom

        dicom_slice = read_dicom(data)
        return PreparedImage(image=dicom_slice.image, source_format="dicom", filename=name, dicom=dicom_slice)
    raster = imaging.decode_raster(data)
    source_format = (raster.format or "image").lower()
    return PreparedImage(image=imaging.to_greyscale(raster), source_format=source_format, filename=name)


def build_intake(values: dict[str, Any]) -> storage.PatientIntake:
    """Validate the intake form; raises ValidationError listing every problem."""
    try:
        return storage.PatientIntake.model_validate(values)
    except PydanticValidationError as exc:
        raise ValidationError(storage.validation_message(exc)) from exc


def gate_flag(prediction: PredictionLike) -> str | None:
    """The input gate's reason when it doubted the image, else None."""
    gate = getattr(prediction, "gate", None)
    if gate is None or getattr(gate, "ok", True):
        return None
    reason = getattr(gate, "reason", None) or "The image does not look like a chest CT slice."
    return reason[:500]


def save_analysis(
    session: Session,
    *,
    settings: Settings,
    prepared: PreparedImage,
    prediction: PredictionLike,
    intake: storage.PatientIntake,
    created_by: str,
) -> storage.Scan:
    """Store the image (as PNG) and the scan row together; on any failure neither remains."""
    try:
        record = storage.ScanCreate(
            **intake.model_dump(),
            source_format=prepared.source_format,
            original_filename=prepared.filename,
            model_arch=prediction.arch,
            model_version=prediction.model_version,
            predicted_class=prediction.label,
            confidence=float(prediction.confidence),
            probabilities={k: float(v) for k, v in prediction.probabilities.items()},
            gate_flag=gate_flag(prediction),
        )
    except PydanticValidationError as exc:
        raise ValidationError(storage.validation_message(exc)) from exc
    return storage.create_scan(
        session, settings=settings, scan=record, image=prepared.image, created_by=created_by
    )
