"""Exports: a PDF report per scan, treatment-plan PDF/Markdown, and CSV/ZIP of scan history.

PDFs use fpdf2's core Helvetica font, which covers Latin-1 only. Rather than
bundle a Unicode font, every string goes through `pdf_text`, which maps common
typography (dashes, quotes, bullets, >=) to ASCII and replaces anything else
outside Latin-1 with '?', so a report never fails on an unexpected character.

Images are passed in (the greyscale slice and the Grad-CAM overlay computed by
`lungscan.explain`); nothing here runs a model.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import unicodedata
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
from fpdf import FPDF
from fpdf.enums import XPos, YPos
from fpdf.errors import FPDFException
from PIL import Image

from .classes import NOT_A_FINDING, display_name, result_label
from .config import Settings
from .errors import ReportError, StorageError
from .storage import Scan, ScanPublic, scan_image_path

logger = logging.getLogger(__name__)

DISCLAIMER = (
    "Research and education decision support - not for diagnostic use. LungScan's outputs are not a "
    "diagnosis and must not guide patient care without review by a qualified clinician."
)
PLAN_DISCLAIMER = (
    "This draft was generated to support discussion in research and education. It is not a treatment "
    "recommendation; decisions belong to the treating clinician and the multidisciplinary team."
)

_ASCII_FALLBACKS = {
    "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-",
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201c": '"', "\u201d": '"', "\u201e": '"',
    "\u2022": "-", "\u2023": "-", "\u25cf": "-", "\u2026": "...", "\u2264": "<=", "\u2265": ">=",
    "\u2248": "~", "\u2260": "!=", "\u2192": "->", "\u2190": "<-", "\u00a0": " ", "\u2009": " ",
    "\u200b": "", "\u2122": "(TM)", "\u2030": " per mille", "\u03b1": "alpha", "\u03b2": "beta",
    "\u03bc": "\u00b5", "\u2713": "yes", "\u2717": "no",
}

#: CSV column order: identity and time, intake, derived, model output, image.
INTAKE_FIELDS: tuple[str, ...] = (
    "patient_id", "age", "sex", "smoking_status", "smoking_years", "cigarettes_per_day", "passive_smoking",
    "quit_date", "previous_lung_disease", "previous_infections", "chronic_cough", "cough_duration_weeks",
    "occupational_exposure", "occupational_details", "air_pollution_exposure", "shortness_of_breath",
    "chest_pain", "weight_loss", "fatigue", "sputum", "comorbidities", "stage", "notes",
)
SYMPTOM_FIELDS: tuple[str, ...] = ("chronic_cough", "shortness_of_breath", "chest_pain", "weight_loss", "fatigue",
                                   "sputum")
EXPOSURE_FIELDS: tuple[str, ...] = ("passive_smoking", "occupational_exposure", "air_pollution_exposure")
_RESULT_FIELDS: tuple[str, ...] = ("source_format", "original_filename", "model_arch", "model_version",
                                   "predicted_class", "confidence", "gate_flag", "image_path", "image_sha256")

ScanLike = Scan | ScanPublic
ImageLike = Image.Image | np.ndarray


def pdf_text(value: Any) -> str:
    """`value` as text the Latin-1 core fonts can print."""
    text = "" if value is None else str(value)
    text = unicodedata.normalize("NFKC", text)  # ligatures, full-width forms; note: turns micro sign into mu
    text = "".join(_ASCII_FALLBACKS.get(char, char) for char in text)
    return text.encode("latin-1", errors="replace").decode("latin-1")


def _label(field: str) -> str:
    return field.replace("_", " ").capitalize()


def _as_pil(image: ImageLike) -> Image.Image:
    if isinstance(image, Image.Image):
        return image.convert("RGB") if image.mode not in ("L", "RGB") else image
    array = np.asarray(image)
    if array.dtype != np.uint8:
        if array.size and float(np.nanmax(array)) <= 1.0:
            array = array * 255.0
        array = np.clip(np.nan_to_num(array), 0, 255).astype(np.uint8)
    if array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4)):
        return Image.fromarray(array).convert("RGB") if array.ndim == 3 else Image.fromarray(array, mode="L")
    raise ReportError(f"Cannot put an array of shape {array.shape} into a report; expected (H, W) or (H, W, 3).")


def _format_datetime(value: datetime | date | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return value.isoformat()


def _yes_no(value: bool | None) -> str:
    return "yes" if value else "no"


def intake_summary(scan: ScanLike) -> list[tuple[str, str]]:
    """The patient history as (label, value) rows, for reports and prompts; empty fields are left out."""
    rows: list[tuple[str, str]] = [("Patient ID (pseudonymous)", scan.patient_id)]
    if scan.age is not None:
        rows.append(("Age", str(scan.age)))
    if scan.sex:
        rows.append(("Sex", scan.sex))
    smoking = scan.smoking_status
    details = []
    if scan.smoking_years is not None:
        details.append(f"{scan.smoking_years} years")
    if scan.cigarettes_per_day is not None:
        details.append(f"{scan.cigarettes_per_day}/day")
    if scan.pack_years is not None:
        details.append(f"{scan.pack_years:.1f} pack-years")
    if scan.quit_date is not None:
        details.append(f"quit {scan.quit_date.isoformat()}")
    rows.append(("Smoking", smoking + (f" ({', '.join(details)})" if details else "")))
    symptoms = []
    for field in SYMPTOM_FIELDS:
        if getattr(scan, field):
            weeks = scan.cough_duration_weeks if field == "chronic_cough" else None
            symptoms.append(_label(field).lower() + (f" ({weeks} weeks)" if weeks is not None else ""))
    rows.append(("Symptoms", ", ".join(symptoms) or "none recorded"))
    exposures = []
    if scan.passive_smoking:
        exposures.append("passive smoking")
    if scan.occupational_exposure:
        exposures.append("occupational" + (f" ({scan.occupational_details})" if scan.occupational_details else ""))
    if scan.air_pollution_exposure:
        exposures.append("air pollution")
    rows.append(("Exposures", ", ".join(exposures) or "none recorded"))
    for field in ("previous_lung_disease", "previous_infections", "comorbidities", "stage", "notes"):
        value = getattr(scan, field)
        if value:
            rows.append((_label(field) + (" (clinician-entered)" if field == "stage" else ""), str(value)))
    return rows


class _ReportPDF(FPDF):
    def __init__(self, title: str) -> None:
        super().__init__(orientation="portrait", unit="mm", format="A4")
        self.report_title = pdf_text(title)
        self.set_title(self.report_title)
        self.set_creator("LungScan")
        self.set_auto_page_break(auto=True, margin=18)
        self.set_margins(15, 15, 15)

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font("Helvetica", size=7)
        self.set_text_color(110)
        self.cell(0, 5, pdf_text(f"{self.report_title} - not for diagnostic use - page {self.page_no()}/{{nb}}"),
                  align="C")
        self.set_text_color(0)

    def heading(self, text: str, size: int = 12) -> None:
        self.ln(2)
        self.set_font("Helvetica", style="B", size=size)
        self.multi_cell(0, 6, pdf_text(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("Helvetica", size=10)

    def paragraph(self, text: str, size: int = 10) -> None:
        self.set_font("Helvetica", size=size)
        self.multi_cell(0, 5, pdf_text(text), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def disclaimer(self, text: str) -> None:
        self.set_fill_color(255, 243, 205)
        self.set_font("Helvetica", style="B", size=9)
        self.multi_cell(0, 5, pdf_text(text), border=1, fill=True, padding=2, align="L",
                        new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        self.set_font("Helvetica", size=10)
        self.ln(2)

    def key_values(self, rows: Sequence[tuple[str, str]]) -> None:
        self.set_font("Helvetica", size=9)
        with self.table(col_widths=(55, 125), text_align=("LEFT", "LEFT"), first_row_as_headings=False,
                        line_height=5) as table:
            for key, value in rows:
                row = table.row()
                row.cell(pdf_text(key))
                row.cell(pdf_text(value))
        self.set_font("Helvetica", size=10)

    def bullets(self, items: Iterable[str]) -> None:
        self.set_font("Helvetica", size=10)
        for item in items:
            self.set_x(self.l_margin + 3)
            self.multi_cell(0, 5, pdf_text(f"- {item}"), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def to_bytes(self) -> bytes:
        try:
            return bytes(self.output())
        except (FPDFException, ValueError, OSError) as exc:
            raise ReportError(f"The PDF could not be produced: {exc}") from exc


def scan_report_pdf(
    scan: ScanLike,
    *,
    image: ImageLike | None,
    overlay: ImageLike | None = None,
    cam_method: str = "Grad-CAM",
    generated_by: str | None = None,
    generated_at: datetime | None = None,
    framing_warning: str | None = None,
    resolution_warning: str | None = None,
) -> bytes:
    """A one-to-two page PDF for a saved scan: disclaimer, images, probabilities, model, intake, and the
    notes of `lungscan.transforms.framing_warning` (a loosely framed slice cropped to the body) and
    `resolution_warning` (a slice smaller than the model's input) when there are any."""
    pdf = _ReportPDF("LungScan scan report")
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    pdf.cell(0, 9, "LungScan scan report", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=9)
    generated = generated_at or datetime.now(UTC)
    line = f"Scan #{scan.id} - analysed {_format_datetime(scan.created_at)} by {scan.created_by}"
    line += f" - report generated {_format_datetime(generated)}"
    if generated_by:
        line += f" by {generated_by}"
    pdf.multi_cell(0, 5, pdf_text(line), align="L", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    pdf.disclaimer(DISCLAIMER)

    images = [(img, caption) for img, caption in ((image, "CT slice"), (overlay, f"{cam_method} overlay"))
              if img is not None]
    if images:
        top = pdf.get_y()
        heights = []
        for index, (img, caption) in enumerate(images):
            pil = _as_pil(img)
            width = min(85.0, 95.0 * pil.width / pil.height)  # at most 85 mm wide and 95 mm tall
            height = width * pil.height / pil.width
            x = pdf.l_margin + index * 95.0
            pdf.image(pil, x=x, y=top, w=width, h=height)
            pdf.set_xy(x, top + height + 1)
            pdf.set_font("Helvetica", size=8)
            pdf.cell(width, 4, pdf_text(caption), align="C")
            heights.append(height)
        pdf.set_xy(pdf.l_margin, top + max(heights) + 7)
        if overlay is not None:
            pdf.paragraph(
                f"The {cam_method} heatmap shows which regions most raised the model's score for the class it was "
                "drawn for (chosen on the page; not always the predicted class); it is not a segmentation of a lesion.",
                size=8,
            )

    # As the app shows it: no class is reported for an image the input check doubted.
    label = result_label(scan.predicted_class, doubted=scan.gate_flag is not None, confidence=scan.confidence,
                         decimals=1)
    pdf.heading(f"Model output: {label}")
    if scan.gate_flag:
        pdf.set_text_color(170, 0, 0)
        pdf.paragraph(f"Input check warning: {scan.gate_flag}")
        pdf.set_text_color(0)
        pdf.paragraph(NOT_A_FINDING)
    if framing_warning:
        pdf.paragraph(f"Framed unlike the training slices: {framing_warning}")
    if resolution_warning:
        pdf.paragraph(f"Smaller than the model's input: {resolution_warning}")
    probabilities = sorted(scan.probabilities.items(), key=lambda item: item[1], reverse=True)
    pdf.set_font("Helvetica", size=9)
    with pdf.table(col_widths=(120, 60), text_align=("LEFT", "RIGHT"), line_height=5) as table:
        header = table.row()
        header.cell("Class")
        header.cell("Calibrated probability")
        for class_name, probability in probabilities:
            row = table.row()
            row.cell(pdf_text(display_name(class_name)))
            row.cell(f"{probability:.1%}")
    pdf.ln(2)
    pdf.key_values([
        ("Model architecture", scan.model_arch),
        ("Model version", scan.model_version),
        ("Image source", f"{scan.source_format}" + (f" ({scan.original_filename})" if scan.original_filename else "")),
        ("Image SHA-256", scan.image_sha256),
    ])

    pdf.heading("Patient history (as entered)")
    pdf.key_values(intake_summary(scan))
    return pdf.to_bytes()


# --- Treatment plans ----------------------------------------------------------------------------

Sections = Mapping[str, str | Sequence[str]]

_PLAN_META_LABELS: tuple[tuple[str, str], ...] = (
    ("patient_id", "Patient ID (pseudonymous)"),
    ("scan_id", "Scan"),
    ("predicted_class", "Model output"),
    ("stage", "Stage (clinician-entered)"),
    ("source", "Generated by"),
    ("model_name", "Language model"),
    ("prompt_version", "Prompt version"),
    ("created_at", "Created"),
    ("created_by", "Requested by"),
)


def _meta_rows(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    rows = []
    for key, label in _PLAN_META_LABELS:
        value = meta.get(key)
        if value in (None, ""):
            continue
        if key == "predicted_class":
            value = display_name(str(value))
        elif key == "source":
            value = {"gemini": "Google Gemini", "offline": "Offline knowledge base"}.get(str(value), value)
        elif isinstance(value, (datetime, date)):
            value = _format_datetime(value)
        rows.append((label, str(value)))
    return rows


def _check_sections(sections: Sections) -> None:
    if not sections:
        raise ReportError("The treatment plan has no sections.")
    for title, body in sections.items():
        if not isinstance(body, str) and not (isinstance(body, Sequence) and all(isinstance(i, str) for i in body)):
            raise ReportError(f"Section {title!r} must be text or a list of strings.")


def treatment_plan_pdf(plan_sections: Sections, meta: Mapping[str, Any]) -> bytes:
    """A PDF of a treatment-plan draft; sections keep their order (title -> text or bullet list).

    `meta` may hold patient_id, scan_id, predicted_class, stage, source, model_name,
    prompt_version, created_at and created_by; missing keys are left out.
    """
    _check_sections(plan_sections)
    pdf = _ReportPDF("LungScan treatment plan draft")
    pdf.add_page()
    pdf.set_font("Helvetica", style="B", size=16)
    pdf.cell(0, 9, "LungScan treatment plan draft", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(1)
    pdf.disclaimer(DISCLAIMER + " " + PLAN_DISCLAIMER)
    rows = _meta_rows(meta)
    if rows:
        pdf.key_values(rows)
    for title, body in plan_sections.items():
        pdf.heading(title, size=11)
        if isinstance(body, str):
            pdf.paragraph(body)
        else:
            pdf.bullets(body)
    return pdf.to_bytes()


def treatment_plan_markdown(plan_sections: Sections, meta: Mapping[str, Any]) -> str:
    """The same plan as Markdown (Unicode kept), for download or display."""
    _check_sections(plan_sections)
    lines = ["# LungScan treatment plan draft", "", f"> **{DISCLAIMER}** {PLAN_DISCLAIMER}", ""]
    for label, value in _meta_rows(meta):
        lines.append(f"- **{label}:** {value}")
    for title, body in plan_sections.items():
        lines += ["", f"## {title}", ""]
        if isinstance(body, str):
            lines.append(body.strip())
        else:
            lines += [f"- {item}" for item in body]
    return "\n".join(lines).rstrip() + "\n"


# --- CSV and ZIP --------------------------------------------------------------------------------


def _csv_safe(value: Any) -> Any:
    """Neutralise spreadsheet formulas in free text (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def scan_row(scan: ScanLike) -> dict[str, Any]:
    """One flat record per scan: intake, pack-years, model output, one `prob_<class>` column per class."""
    row: dict[str, Any] = {
        "id": scan.id,
        "created_at": scan.created_at.isoformat() if scan.created_at else None,
        "created_by": scan.created_by,
    }
    for field in INTAKE_FIELDS:
        value = getattr(scan, field)
        row[field] = value.isoformat() if isinstance(value, date) else value
    row["pack_years"] = None if scan.pack_years is None else round(scan.pack_years, 2)
    for field in _RESULT_FIELDS:
        row[field] = getattr(scan, field)
    for class_name, probability in scan.probabilities.items():
        row[f"prob_{class_name}"] = probability
    return row


def scans_to_csv(scans: Iterable[ScanLike]) -> bytes:
    """UTF-8 CSV, one row per scan; probability columns are the union of every scan's classes."""
    rows = [scan_row(scan) for scan in scans]
    columns = ["id", "created_at", "created_by", *INTAKE_FIELDS, "pack_years", *_RESULT_FIELDS]
    for row in rows:
        columns += [key for key in row if key.startswith("prob_") and key not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="raise", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_safe(value) for key, value in row.items()})
    return buffer.getvalue().encode("utf-8")


def scans_to_zip(scans: Iterable[ScanLike], settings: Settings) -> bytes:
    """A ZIP with scans.csv, images/<id>_<sha>.<ext>, scans/<id>.json and a README.

    A scan whose image file is missing is still exported; its JSON says so.
    """
    scans = list(scans)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("README.txt", (
            "LungScan export\n\n" + DISCLAIMER + "\n\n"
            "scans.csv       one row per scan (intake, model output, probabilities)\n"
            "scans/<id>.json the same record per scan, with the image file name\n"
            "images/         the stored CT slice of each scan\n"
            f"\nExported {_format_datetime(datetime.now(UTC))}.\n"
        ))
        archive.writestr("scans.csv", scans_to_csv(scans))
        for scan in scans:
            record = scan_row(scan)
            record["probabilities"] = scan.probabilities
            suffix = "." + scan.image_path.rsplit(".", 1)[-1] if "." in scan.image_path else ""
            name = f"images/{scan.id}_{scan.image_sha256[:12]}{suffix}"
            try:
                path = scan_image_path(settings, scan)
                archive.writestr(name, path.read_bytes(), compress_type=zipfile.ZIP_STORED)
                record["image_file"] = name
            except (OSError, StorageError) as exc:
                logger.warning("Scan %s exported without its image: %s", scan.id, exc)
                record["image_file"] = None
                record["image_missing"] = True
            archive.writestr(f"scans/{scan.id}.json", json.dumps(record, indent=2, ensure_ascii=False))
    return buffer.getvalue()
