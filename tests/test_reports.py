"""PDF, CSV and ZIP exports of real scans saved in a temp SQLite database."""

import csv
import io
import json
import re
import zipfile
import zlib
from datetime import date

import numpy as np
import pytest
from PIL import Image

from lungscan import reports, storage
from lungscan.errors import ReportError
from lungscan.storage import ScanCreate, ScanPublic

PROBS = {"adenocarcinoma": 0.7, "large_cell_carcinoma": 0.1, "squamous_cell_carcinoma": 0.15, "normal": 0.05}


def pdf_text(data: bytes) -> str:
    """The text drawn in a PDF made by fpdf2: inflate each stream and read its string operands."""
    chunks = []
    for match in re.finditer(rb"stream\r?\n(.*?)\r?\nendstream", data, flags=re.DOTALL):
        try:
            content = zlib.decompress(match.group(1))
        except zlib.error:
            continue  # image data
        for string in re.findall(rb"\((.*?)(?<!\\)\)\s*Tj", content, flags=re.DOTALL):
            chunks.append(re.sub(rb"\\([()\\])", rb"\1", string).decode("latin-1"))
    return "\n".join(chunks)


def page_count(data: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", data))


def image_count(data: bytes) -> int:
    return len(re.findall(rb"/Subtype\s*/Image", data))


def save(session, settings, seed=0, **overrides):
    fields = {
        "patient_id": "P-0042", "age": 67, "sex": "male", "smoking_status": "former", "smoking_years": 30,
        "cigarettes_per_day": 20, "quit_date": date(2019, 5, 1), "chronic_cough": True, "cough_duration_weeks": 12,
        "weight_loss": True, "occupational_exposure": True, "occupational_details": "asbestos, shipyard",
        "comorbidities": "COPD", "source_format": "png", "original_filename": "slice.png",
        "model_arch": "efficientnet_lite0", "model_version": "efficientnet_lite0@2026-12-01",
        "predicted_class": "adenocarcinoma", "confidence": 0.7, "probabilities": PROBS,
    }
    pixels = np.random.default_rng(seed).integers(0, 255, (64, 64), dtype=np.uint8)
    return storage.create_scan(
        session, settings=settings, scan=ScanCreate(**(fields | overrides)),
        image=Image.fromarray(pixels, mode="L"), created_by="dr_who",
    )


def test_scan_report_has_disclaimer_images_probabilities_model_and_intake(settings, session):
    scan = save(session, settings)
    image = Image.open(storage.scan_image_path(settings, scan))
    overlay = np.zeros((64, 64, 3), dtype=np.uint8)
    overlay[..., 0] = 255
    data = reports.scan_report_pdf(scan, image=image, overlay=overlay, generated_by="dr_who")

    assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
    assert page_count(data) >= 1 and image_count(data) == 2
    text = pdf_text(data)
    for expected in (
        "LungScan scan report", "not for diagnostic use", "Grad-CAM overlay",
        "Model output: Adenocarcinoma (70.0%)", "Squamous cell carcinoma", "15.0%", "5.0%",
        "efficientnet_lite0@2026-12-01", "P-0042", "67", "former (30 years, 20/day, 30.0 pack-years, quit 2019-05-01)",
        "chronic cough (12 weeks), weight loss", "occupational (asbestos, shipyard)", "COPD",
        f"Scan #{scan.id}",
    ):
        assert expected in text, expected
    # The heatmap is explained for the class it was drawn for, which the page lets the user choose.
    assert "which regions most raised the model's score for the class it was drawn for" in text
    # Probabilities are listed most likely first.
    assert text.index("Adenocarcinoma\n70.0%") < text.index("Squamous cell carcinoma") < text.index("Normal")


def test_scan_report_without_overlay_and_with_gate_warning(settings, session):
    scan = save(session, settings, gate_flag="Image does not look like a chest CT slice.")
    public = ScanPublic.from_scan(scan)
    data = reports.scan_report_pdf(public, image=np.full((64, 32), 0.5), overlay=None,
                                   framing_warning="The body spans only 70% of this slice's width.",
                                   resolution_warning="The slice the model was shown is only 90 px on its short side.")
    assert image_count(data) == 1
    text = pdf_text(data)
    assert "Input check warning: Image does not look like a chest CT slice." in text
    assert "Model output: input check failed - no finding" in text and "No finding is reported" in text
    assert "Model output: Adenocarcinoma" not in text  # as the app shows it: no class for a doubted image
    assert "Framed unlike the training slices: The body spans only 70% of this slice's width." in text
    assert "Smaller than the model's input: The slice the model was shown is only 90 px on its short side." in text
    assert "Grad-CAM" not in text


def test_scan_report_survives_text_outside_latin1(settings, session):
    scan = save(session, settings, notes="Smoker ≥ 20/day — “heavy” ✓ 肺癌", comorbidities="Müller–Lyer")
    text = pdf_text(reports.scan_report_pdf(scan, image=None))
    assert 'Smoker >= 20/day - "heavy" yes ??' in text
    assert "Müller-Lyer" in text  # Latin-1 letters are kept


def test_scan_report_refuses_an_image_of_the_wrong_shape(settings, session):
    scan = save(session, settings)
    with pytest.raises(ReportError, match="shape"):
        reports.scan_report_pdf(scan, image=np.zeros((4, 4, 4, 4)))


SECTIONS = {
    "Summary": "Findings suggest a primary lung malignancy; confirm with biopsy.",
    "Staging work-up": ["PET-CT", "Brain MRI", "EBUS-TBNA ≥ 3 stations"],
    "Questions for the MDT": ["Is the patient fit for surgery?"],
}
META = {"patient_id": "P-0042", "scan_id": 7, "predicted_class": "adenocarcinoma", "source": "offline",
        "prompt_version": "v2", "created_by": "dr_who"}


def test_treatment_plan_pdf_keeps_section_order(tmp_path):
    data = reports.treatment_plan_pdf(SECTIONS, META)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert text.index("Summary") < text.index("Staging work-up") < text.index("Questions for the MDT")
    for expected in ("- PET-CT", "- EBUS-TBNA >= 3 stations", "Offline knowledge base", "P-0042",
                     "not a treatment", "Adenocarcinoma"):
        assert expected in text, expected


def test_treatment_plan_markdown():
    markdown = reports.treatment_plan_markdown(SECTIONS, META)
    assert markdown.startswith("# LungScan treatment plan draft\n")
    assert "- **Patient ID (pseudonymous):** P-0042" in markdown
    assert "## Staging work-up\n\n- PET-CT\n- Brain MRI\n- EBUS-TBNA ≥ 3 stations\n" in markdown  # Unicode kept
    assert markdown.index("## Summary") < markdown.index("## Staging work-up") < markdown.index("## Questions")
    assert "not for diagnostic use" in markdown


@pytest.mark.parametrize("sections", [{}, {"Bad": 3}, {"Bad": ["ok", 4]}])
def test_treatment_plan_refuses_malformed_sections(sections):
    with pytest.raises(ReportError):
        reports.treatment_plan_pdf(sections, {})
    with pytest.raises(ReportError):
        reports.treatment_plan_markdown(sections, {})


def test_scans_to_csv_columns_rows_and_formula_guard(settings, session):
    save(session, settings, seed=0)
    save(session, settings, seed=1, patient_id="P-0043", notes="=HYPERLINK(\"http://x\")", smoking_status="never",
         smoking_years=None, cigarettes_per_day=None, quit_date=None, predicted_class="normal",
         probabilities={"normal": 0.9, "adenocarcinoma": 0.1}, confidence=0.9)
    scans = storage.list_scans(session)
    rows = list(csv.DictReader(io.StringIO(reports.scans_to_csv(scans).decode("utf-8"))))

    assert len(rows) == 2
    assert set(rows[0]) >= {"id", "created_at", "patient_id", "age", "pack_years", "predicted_class", "confidence",
                            "prob_adenocarcinoma", "prob_normal", "prob_squamous_cell_carcinoma", "model_version"}
    newest, oldest = rows
    assert newest["patient_id"] == "P-0043" and newest["notes"].startswith("'=HYPERLINK")
    assert newest["pack_years"] == "" and newest["prob_squamous_cell_carcinoma"] == ""
    assert oldest["pack_years"] == "30.0" and oldest["quit_date"] == "2019-05-01" and oldest["chronic_cough"] == "True"
    assert float(oldest["prob_adenocarcinoma"]) == 0.7


def test_scans_to_csv_with_no_scans_has_a_header():
    text = reports.scans_to_csv([]).decode()
    assert text.splitlines()[0].startswith("id,created_at,created_by,patient_id")


def test_scans_to_zip_holds_csv_images_and_json(settings, session):
    first, second = save(session, settings, seed=0), save(session, settings, seed=1, patient_id="P-0099")
    storage.scan_image_path(settings, second).unlink()  # an image lost on disk must not break the export
    scans = storage.list_scans(session)
    with zipfile.ZipFile(io.BytesIO(reports.scans_to_zip(scans, settings))) as archive:
        names = set(archive.namelist())
        image_name = f"images/{first.id}_{first.image_sha256[:12]}.png"
        assert names == {"README.txt", "scans.csv", image_name, f"scans/{first.id}.json", f"scans/{second.id}.json"}
        assert archive.read(image_name) == storage.scan_image_path(settings, first).read_bytes()
        record = json.loads(archive.read(f"scans/{first.id}.json"))
        assert record["probabilities"] == PROBS and record["image_file"] == image_name
        assert record["patient_id"] == "P-0042" and record["pack_years"] == 30.0
        missing = json.loads(archive.read(f"scans/{second.id}.json"))
        assert missing["image_missing"] is True and missing["image_file"] is None
        assert len(archive.read("scans.csv").decode().splitlines()) == 3
        assert "not for diagnostic use" in archive.read("README.txt").decode()


def test_pdf_text_maps_typography_and_replaces_the_rest():
    assert reports.pdf_text("a – b “c” … ≤ 5 µg é 漢") == 'a - b "c" ... <= 5 µg é ?'
    assert reports.pdf_text(None) == ""
