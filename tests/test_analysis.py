"""Upload -> prepared image -> saved scan, with a stand-in predictor and a real SQLite file."""

import io
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from lungscan import analysis, storage
from lungscan.errors import DicomError, ImageError, ValidationError


@dataclass
class FakePrediction:
    label: str = "adenocarcinoma"
    confidence: float = 0.7
    probabilities: dict = field(
        default_factory=lambda: {"adenocarcinoma": 0.7, "large_cell_carcinoma": 0.1, "squamous_cell_carcinoma": 0.1, "normal": 0.1}
    )
    arch: str = "efficientnet_lite0"
    model_version: str = "efficientnet_lite0@test"
    gate: SimpleNamespace = field(default_factory=lambda: SimpleNamespace(ok=True, reason=None))


def ct_png(*, text: str | None = None, size: int = 128) -> bytes:
    yy, xx = np.mgrid[:size, :size]
    body = ((yy - size / 2) ** 2 + (xx - size / 2) ** 2) < (size * 0.45) ** 2
    lungs = (((yy - size / 2) ** 2 + (xx - size * 0.33) ** 2) < (size * 0.15) ** 2) | (
        ((yy - size / 2) ** 2 + (xx - size * 0.67) ** 2) < (size * 0.15) ** 2
    )
    pixels = np.where(body, 170, 0).astype(np.uint8)
    pixels[lungs] = 30
    info = PngImagePlugin.PngInfo()
    if text:
        info.add_text("PatientName", text)
    buffer = io.BytesIO()
    Image.fromarray(pixels, "L").convert("RGB").save(buffer, format="PNG", pnginfo=info)
    return buffer.getvalue()


INTAKE = {"patient_id": "P-0042", "age": 61, "sex": "male", "smoking_status": "current", "smoking_years": 30, "cigarettes_per_day": 20}


def test_raster_upload_is_greyscale_with_its_real_format():
    jpeg = io.BytesIO()
    Image.open(io.BytesIO(ct_png())).save(jpeg, format="JPEG")
    prepared = analysis.prepare_upload(jpeg.getvalue(), filename="../secret/slice.png")  # a JPEG named .png
    assert prepared.image.mode == "L" and prepared.source_format == "jpeg"
    assert prepared.filename == "slice.png" and prepared.dicom is None


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"hello, not an image at all" * 10, "not an image"),
        (ct_png()[:200], "corrupt or truncated"),
    ],
)
def test_bad_uploads_raise_image_error(data, message):
    with pytest.raises(ImageError, match=message):
        analysis.prepare_upload(data, filename="x.png")


def test_dicom_without_pixels_is_a_dicom_error():
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.PatientName = "Doe^Jane"
    ds.Modality = "CT"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    with pytest.raises(DicomError, match="no pixel data"):
        analysis.prepare_upload(buffer.getvalue(), filename="report.dcm")


def test_intake_problems_are_listed():
    with pytest.raises(ValidationError) as info:
        analysis.build_intake({"patient_id": "John Smith", "smoking_status": "never", "smoking_years": 5})
    assert "Patient id" in str(info.value)


def test_saved_scan_keeps_a_clean_png_and_the_prediction(settings, session):
    prepared = analysis.prepare_upload(ct_png(text="Doe^Jane"), filename="slice.png")
    scan = analysis.save_analysis(
        session,
        settings=settings,
        prepared=prepared,
        prediction=FakePrediction(),
        intake=analysis.build_intake(INTAKE),
        created_by="clin",
    )
    stored = storage.scan_image_path(settings, scan)
    assert stored.suffix == ".png" and b"Doe^Jane" not in stored.read_bytes()
    with Image.open(stored) as image:
        assert image.mode == "L"
    assert scan.predicted_class == "adenocarcinoma" and scan.gate_flag is None and scan.pack_years == 30
    assert scan.source_format == "png" and scan.created_by == "clin"


def test_gate_refusal_is_recorded(settings, session):
    prediction = FakePrediction(gate=SimpleNamespace(ok=False, reason="Not a chest CT slice (photo?)"))
    scan = analysis.save_analysis(
        session, settings=settings, prepared=analysis.prepare_upload(ct_png()), prediction=prediction,
        intake=analysis.build_intake(INTAKE), created_by="clin",
    )
    assert scan.gate_flag == "Not a chest CT slice (photo?)"


def test_bad_prediction_saves_nothing(settings, session):
    prediction = FakePrediction(probabilities={"adenocarcinoma": 0.2, "normal": 0.2})
    with pytest.raises(ValidationError, match="sum"):
        analysis.save_analysis(
            session, settings=settings, prepared=analysis.prepare_upload(ct_png()), prediction=prediction,
            intake=analysis.build_intake(INTAKE), created_by="clin",
        )
    assert storage.count_scans(session) == 0
    assert not any(p.is_file() for p in settings.uploads_dir.rglob("*")) if settings.uploads_dir.exists() else True
