"""Shared builders for the LLM tests: a scan full of identifiers, a valid plan body, a fast client."""

from __future__ import annotations

import json
from datetime import date

from lungscan import storage
from lungscan.llm.gemini import GeminiClient

CLASSES = ("adenocarcinoma", "large_cell_carcinoma", "squamous_cell_carcinoma", "normal")

#: Strings that must never reach Gemini, planted in every identifying field of the intake.
IDENTIFIERS = (
    "PZ-QX-98765",  # patient ID
    "Xavier",
    "Quillfeather",
    "Wallaby",
    "Sydney",
    "Quillco",
    "Portsmouth",
    "Vexley",
    "Orlando",
    "0400 123",  # phone number in the notes
    "drquill",  # the user who created the scan
    "xavier_ct",  # original file name
    "2013-07-19",  # quit date
    "2011",  # year in free text
    "2026-11-30",  # model version with a date
    "c0ffee",  # image hash / path
)


def identifying_scan(predicted_class: str = "adenocarcinoma", *, stage: str | None = None, **overrides) -> storage.Scan:
    """An in-memory Scan whose free text and metadata are full of identifiers (nothing saved)."""
    probabilities = {name: 0.05 for name in CLASSES}
    probabilities[predicted_class] = 0.85
    fields = dict(
        patient_id="PZ-QX-98765",
        age=64,
        sex="male",
        smoking_status="former",
        smoking_years=30,
        cigarettes_per_day=20,
        quit_date=date(2013, 7, 19),
        passive_smoking=True,
        previous_lung_disease="COPD diagnosed 2011 by Dr Orlando Vexley at Portsmouth General",
        previous_infections="pneumonia while visiting Sydney",
        chronic_cough=True,
        cough_duration_weeks=6,
        occupational_exposure=True,
        occupational_details="asbestos at the Quillco shipyard, Portsmouth, for Xavier's father",
        air_pollution_exposure=False,
        shortness_of_breath=True,
        chest_pain=False,
        weight_loss=True,
        fatigue=False,
        sputum=False,
        comorbidities="type 2 diabetes; hypertension (Dr Vexley)",
        stage=stage,
        notes="Patient Xavier Quillfeather, 12 Wallaby Way, Sydney. Call his wife on 0400 123 456.",
        source_format="png",
        original_filename="xavier_ct.png",
        model_arch="efficientnet_lite0",
        model_version="efficientnet_lite0-2026-11-30",
        predicted_class=predicted_class,
        confidence=0.85,
        probabilities_json=json.dumps(probabilities),
        created_by="drquill",
        image_path="c0/c0ffee.png",
        image_sha256="c0ffee" * 10 + "abcd",
        id=7,
    )
    fields.update(overrides)
    return storage.Scan(**fields)


def plan_json(**overrides) -> str:
    body = {
        "summary_and_uncertainty": "The model suggested adenocarcinoma with 85% confidence; this is not a diagnosis.",
        "confirmation_steps": ["Biopsy and histology.", "Staging CT and PET-CT.", "EGFR, ALK and PD-L1 testing."],
        "treatment_options_by_stage": ["Depends on stage: surgery or SBRT for early stage."],
        "supportive_care_and_lifestyle": ["Stay smoke-free."],
        "follow_up": ["CT every 6 months at first."],
        "red_flag_symptoms": ["Coughing up blood."],
        "questions_for_care_team": ["What stage is it?"],
    }
    body.update(overrides)
    return json.dumps(body)


def fast_client(base_url: str, *, timeout_s: float = 5.0, attempts: int = 3) -> GeminiClient:
    """The real client with short backoff so retry tests take milliseconds."""
    return GeminiClient(
        api_key="dummy-key", model="gemini-test-flash", base_url=base_url, timeout_s=timeout_s,
        attempts=attempts, initial_delay_s=0.01, max_delay_s=0.05,
    )
