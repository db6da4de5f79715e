"""The structured treatment-plan schema, shared by Gemini (as response schema) and the offline planner."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field, field_validator

#: Bump whenever the system instruction, the request layout or this schema changes;
#: every saved plan records the version it was produced with.
PROMPT_VERSION = "treatment-plan-v1"

#: Section field -> heading shown on the page, in the PDF and in the Markdown export.
SECTION_TITLES: dict[str, str] = {
    "summary_and_uncertainty": "Summary of the finding and its uncertainty",
    "confirmation_steps": "What is needed to confirm it",
    "treatment_options_by_stage": "Treatment options by stage",
    "supportive_care_and_lifestyle": "Supportive care and lifestyle",
    "follow_up": "Follow-up",
    "red_flag_symptoms": "Red-flag symptoms: seek urgent care",
    "questions_for_care_team": "Questions to ask the care team",
}


#: A section of short bullet points: at least one, at most twelve.
Bullets = Annotated[list[str], Field(min_length=1, max_length=12)]


class TreatmentPlanSections(BaseModel):
    """A patient-education plan outline. Every section must say something."""

    summary_and_uncertainty: str = Field(
        min_length=1,
        description=(
            "Two to four sentences: what the image model suggested, how confident it was, and why a CT-slice "
            "classifier cannot diagnose cancer on its own."
        ),
    )
    confirmation_steps: Bullets = Field(
        description=(
            "Steps needed to confirm or rule out the finding: tissue biopsy and histology, staging CT/PET-CT, "
            "brain MRI when indicated, molecular testing (EGFR, ALK, ROS1, KRAS, PD-L1 and others) where relevant."
        )
    )
    treatment_options_by_stage: Bullets = Field(
        description=(
            "Standard options by stage (surgery, SBRT, chemoradiation, immunotherapy, targeted therapy), "
            "each as one bullet; general, not a prescription; no doses."
        )
    )
    supportive_care_and_lifestyle: Bullets = Field(
        description="Supportive care and lifestyle; smoking cessation first when relevant."
    )
    follow_up: Bullets = Field(description="Typical follow-up and surveillance.")
    red_flag_symptoms: Bullets = Field(description="Symptoms that need urgent or emergency care.")
    questions_for_care_team: Bullets = Field(description="Questions the patient or clinician may ask the care team.")

    @field_validator("summary_and_uncertainty")
    @classmethod
    def _summary_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("summary is blank")
        return value.strip()

    @field_validator(
        "confirmation_steps",
        "treatment_options_by_stage",
        "supportive_care_and_lifestyle",
        "follow_up",
        "red_flag_symptoms",
        "questions_for_care_team",
    )
    @classmethod
    def _items_not_blank(cls, value: list[str]) -> list[str]:
        cleaned = [item.strip() for item in value if item and item.strip()]
        if not cleaned:
            raise ValueError("section is empty")
        return cleaned

    def titled(self) -> dict[str, str | list[str]]:
        """Ordered heading -> text or bullets, the shape stored in the database and exported."""
        data = self.model_dump()
        return {title: data[field] for field, title in SECTION_TITLES.items()}
