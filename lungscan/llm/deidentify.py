"""Build the only text about a patient that may leave the machine.

What goes out: an age band, sex, the model's predicted class and calibrated confidence,
a stage if the clinician entered one in a recognised format, smoking status with
pack-years and a years-since-quitting bucket, yes/no symptoms and exposures, and
comorbidities.

What never goes out: the patient ID, names, any date (quit date, scan date), the user,
file names, paths, hashes, model version strings (they may embed dates), the image,
and free text. Free-text fields (notes, occupational details, previous lung disease,
previous infections, comorbidities) can hold names, places or dates, so they are not
passed through or "scrubbed": only terms from fixed medical vocabularies below are
*recognised* in them and sent as canonical words. Everything else in them is dropped.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Protocol

from ..classes import display_name

#: Recognised term (regex, matched case-insensitively on word boundaries) -> canonical wording.
COMORBIDITY_TERMS: dict[str, str] = {
    r"copd|chronic obstructive": "COPD",
    r"emphysema": "emphysema",
    r"asthma": "asthma",
    r"(pulmonary |lung )?fibrosis|\bipf\b|interstitial lung": "pulmonary fibrosis / interstitial lung disease",
    r"bronchiectasis": "bronchiectasis",
    r"sarcoidosis": "sarcoidosis",
    r"diabet\w*": "diabetes",
    r"hypertension|high blood pressure": "hypertension",
    r"heart failure|cardiac failure": "heart failure",
    r"coronary|heart attack|myocardial infarction|angina|ischa?emic heart": "coronary artery disease",
    r"atrial fibrillation|\bafib\b": "atrial fibrillation",
    r"stroke": "previous stroke",
    r"(chronic )?kidney disease|renal (failure|impairment|disease)|\bckd\b": "chronic kidney disease",
    r"liver disease|cirrhosis|hepatitis": "liver disease",
    r"obes\w*": "obesity",
    r"depression|anxiety": "depression or anxiety",
    r"autoimmune|rheumatoid|lupus|crohn|ulcerative colitis": "autoimmune disease",
    r"(previous|prior|history of) cancer|lymphoma|leukemia|leukaemia|breast cancer|head and neck cancer": (
        "previous cancer"
    ),
    r"\bhiv\b": "HIV",
    r"tuberculosis|\btb\b": "tuberculosis",
    r"pneumonia": "pneumonia",
    r"covid(-?19)?|sars-cov-2": "COVID-19",
    r"pulmonary embolism|\bdvt\b|thrombosis": "blood clots",
}

#: Occupational or environmental exposure terms recognised in the occupational details.
EXPOSURE_TERMS: dict[str, str] = {
    r"asbestos": "asbestos",
    r"radon": "radon",
    r"silica": "silica",
    r"diesel": "diesel exhaust",
    r"coal": "coal dust",
    r"arsenic": "arsenic",
    r"chromium": "chromium",
    r"nickel": "nickel",
    r"beryllium": "beryllium",
    r"cadmium": "cadmium",
    r"uranium": "uranium",
    r"welding|welder": "welding fumes",
    r"painter|paint fumes": "paint fumes",
    r"mining|miner": "mining dust",
}

_STAGE_GROUP_RE = re.compile(r"^(?:stage\s*)?(0|I{1,3}|IV)([ABC][1-3]?)?$", re.IGNORECASE)
_TNM_RE = re.compile(r"^(?:c|p|yp)?T(?:[0-4]|X|is)[a-c]?\s*N[0-3X]\s*M(?:[01][a-c]?|X)$", re.IGNORECASE)


class Intake(Protocol):
    """The fields of `lungscan.storage.Scan` this module reads (a Scan satisfies it)."""

    age: int | None
    sex: str | None
    smoking_status: str
    smoking_years: int | None
    cigarettes_per_day: int | None
    passive_smoking: bool
    quit_date: date | None
    previous_lung_disease: str
    previous_infections: str
    chronic_cough: bool
    cough_duration_weeks: int | None
    occupational_exposure: bool
    occupational_details: str
    air_pollution_exposure: bool
    shortness_of_breath: bool
    chest_pain: bool
    weight_loss: bool
    fatigue: bool
    sputum: bool
    comorbidities: str
    stage: str | None
    predicted_class: str
    confidence: float
    gate_flag: str | None

    @property
    def pack_years(self) -> float | None: ...

    @property
    def probabilities(self) -> dict[str, float]: ...


def age_band(age: int | None) -> str | None:
    """Ten-year band ("60-69"); under 18 and 90+ are pooled so extreme ages do not single anyone out."""
    if age is None:
        return None
    if age < 18:
        return "under 18"
    if age >= 90:
        return "90 or older"
    low = age // 10 * 10
    return f"{low}-{low + 9}"


def years_since_quit_band(quit_date: date | None, today: date) -> str | None:
    """Coarse years-since-quitting bucket (15 years is the screening guideline's cut-off)."""
    if quit_date is None:
        return None
    years = (today - quit_date).days / 365.25
    if years < 1:
        return "less than 1 year ago"
    if years < 5:
        return "1-4 years ago"
    if years < 10:
        return "5-9 years ago"
    if years < 15:
        return "10-14 years ago"
    return "15 or more years ago"


def normalise_stage(stage: str | None) -> str | None:
    """A stage group ("IIIA") or TNM ("T2aN0M0") in canonical form; None when empty or unrecognised."""
    if not stage:
        return None
    text = re.sub(r"\s+", " ", stage.strip())
    group = _STAGE_GROUP_RE.match(text)
    if group:
        return group.group(1).upper() + (group.group(2) or "").upper()
    if _TNM_RE.match(text):
        return re.sub(r"\s+", "", text)
    return None


def stage_group(stage: str | None) -> str | None:
    """The overall stage group "0", "I", "II", "III" or "IV" of a recognised stage group; None for TNM."""
    normalised = normalise_stage(stage)
    if normalised is None:
        return None
    match = re.match(r"^(0|IV|I{1,3})", normalised)  # TNM strings start with a letter T/c/p/y
    return match.group(1) if match else None


def recognised_terms(text: str, vocabulary: dict[str, str]) -> list[str]:
    """Canonical names of vocabulary terms found in free text; nothing else from the text survives."""
    found: list[str] = []
    for pattern, canonical in vocabulary.items():
        if re.search(rf"\b(?:{pattern})", text or "", re.IGNORECASE) and canonical not in found:
            found.append(canonical)
    return found


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def case_summary_lines(intake: Intake, *, stage: str | None = None, today: date | None = None) -> list[str]:
    """The de-identified facts, one per line; `stage` overrides the intake's stage when given."""
    today = today or date.today()
    lines: list[str] = []
    if intake.gate_flag:
        # The app reports no finding for such an image, so its class is not passed on either.
        lines.append("Image-model output: none (the image failed LungScan's input check: it does not look like the "
                     "chest CT slices the model was trained on, so no class is reported)")
    else:
        probabilities = intake.probabilities or {}
        others = ", ".join(
            f"{display_name(name)} {prob:.0%}"
            for name, prob in sorted(probabilities.items(), key=lambda item: -item[1])
            if name != intake.predicted_class
        )
        lines.append(
            f"Image-model output (one CT slice): {display_name(intake.predicted_class)}, "
            f"calibrated confidence {intake.confidence:.0%}" + (f" (other classes: {others})" if others else "")
        )
    raw_stage = stage if stage else intake.stage
    chosen_stage = normalise_stage(raw_stage)
    if chosen_stage:
        lines.append(f"Clinician-entered stage: {chosen_stage}")
    else:
        lines.append("Stage: not in a recognised format (withheld)" if raw_stage else "Stage: not entered")
    lines.append(f"Age band: {age_band(intake.age) or 'not recorded'}")
    lines.append(f"Sex: {intake.sex or 'not recorded'}")

    smoking = f"Smoking status: {intake.smoking_status or 'unknown'}"
    pack_years = intake.pack_years
    if pack_years is not None:
        smoking += f"; about {round(pack_years)} pack-years"
    quit_band = years_since_quit_band(intake.quit_date, today) if intake.smoking_status == "former" else None
    if quit_band:
        smoking += f"; quit {quit_band}"
    lines.append(smoking)
    lines.append(f"Second-hand smoke exposure: {_yes(intake.passive_smoking)}")

    cough = _yes(intake.chronic_cough)
    if intake.chronic_cough and intake.cough_duration_weeks:
        cough += f" ({intake.cough_duration_weeks} weeks)"
    lines.append(
        "Symptoms: "
        f"chronic cough {cough}; shortness of breath {_yes(intake.shortness_of_breath)}; "
        f"chest pain {_yes(intake.chest_pain)}; weight loss {_yes(intake.weight_loss)}; "
        f"fatigue {_yes(intake.fatigue)}; sputum {_yes(intake.sputum)}"
    )

    exposures = f"occupational exposure {_yes(intake.occupational_exposure)}"
    agents = recognised_terms(intake.occupational_details, EXPOSURE_TERMS)
    if intake.occupational_exposure and agents:
        exposures += f" ({', '.join(agents)})"
    exposures += f"; air pollution {_yes(intake.air_pollution_exposure)}"
    lines.append(f"Exposures: {exposures}")

    history = recognised_terms(
        " ".join((intake.previous_lung_disease, intake.previous_infections, intake.comorbidities)),
        COMORBIDITY_TERMS,
    )
    lines.append(f"Lung disease, infections and comorbidities: {', '.join(history) if history else 'none recorded'}")
    return lines


def case_summary(intake: Intake, *, stage: str | None = None, today: date | None = None) -> str:
    """The de-identified case summary as a bulleted block of text."""
    return "\n".join(f"- {line}" for line in case_summary_lines(intake, stage=stage, today=today))
