"""Treatment-plan outlines: Gemini with a response schema when configured, the offline planner otherwise.

`treatment_request` builds the exact, de-identified text that would be sent; the page
shows it and passes the same object back to `plan_treatment` on an explicit click.
Any LLM failure (timeout, rate limit after retries, server error, safety block, empty
or malformed output) yields the offline plan plus a notice saying why; the scan itself
is never modified.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import date

from ..errors import LLMError, ValidationError
from .deidentify import Intake, case_summary
from .gemini import GeminiClient
from .planner import OFFLINE_LABEL, offline_plan
from .schema import PROMPT_VERSION, SECTION_TITLES, TreatmentPlanSections

logger = logging.getLogger(__name__)

OFFLINE_MODEL_NAME = "offline-knowledge-base"
SOURCES_TITLE = "Sources"

SYSTEM_INSTRUCTION = """\
You are a careful oncology education assistant supporting a clinician who uses LungScan, a research and \
education tool that classifies a single chest CT slice. You write a structured, guideline-concordant outline \
of next steps for non-small cell lung cancer (or for a "normal" result), for discussion with the care team.

Rules:
- The image model's class is not a diagnosis. Say so, and describe its uncertainty from the calibrated confidence.
- Base content on widely accepted guidelines (NCCN, ESMO, ACS, NCI PDQ, USPSTF 2021 for screening). \
Be conservative; do not invent trial results or statistics.
- Never give drug doses, schedules or instructions to start, stop or change a medicine.
- Confirmation steps: biopsy and histology, staging CT and PET-CT, brain MRI when indicated, and molecular \
testing (EGFR, ALK, ROS1, KRAS, BRAF, MET, RET, NTRK, HER2, PD-L1) where relevant to the suggested type.
- If a stage is given, focus the treatment options on it; otherwise summarise the options by stage group.
- Put smoking cessation first in supportive care when the person smokes or smoked.
- For a "normal" result, say that it does not rule out cancer and focus on review, follow-up and screening.
- Plain English, short bullets, no patient-identifying details, no markdown headings.
"""


@dataclass(frozen=True)
class TreatmentRequest:
    """Exactly what is sent to Gemini: the system instruction and the de-identified request."""

    system_instruction: str
    prompt: str

    @property
    def text(self) -> str:
        """Both parts as one text, shown on the page and stored with the plan."""
        return f"[System instruction]\n{self.system_instruction}\n[Request]\n{self.prompt}"


@dataclass
class TreatmentResult:
    sections: TreatmentPlanSections
    source: str  # "gemini" or "offline"
    model_name: str
    prompt_version: str
    request_text: str
    notice: str | None = None
    sources: list[dict[str, object]] = field(default_factory=list)

    @property
    def heading(self) -> str:
        return plan_heading(self.source, self.model_name)

    def content(self) -> dict[str, str | list[str]]:
        """Ordered sections (title -> text or bullets) as stored in the database and exported."""
        content = self.sections.titled()
        if self.sources:
            content[SOURCES_TITLE] = _source_lines(self.sources)
        return content


def plan_heading(source: str, model_name: str) -> str:
    """How a plan is labelled everywhere: the offline label, or the Gemini model that wrote it."""
    return f"Gemini-generated outline ({model_name})" if source == "gemini" else OFFLINE_LABEL


def stage_used(request_text: str) -> str | None:
    """The stage a stored plan was written for, read back from its request text."""
    match = re.search(r"^- Clinician-entered stage: (\S+)$", request_text, re.MULTILINE)
    return match.group(1) if match else None


def _source_lines(sources: list[dict[str, object]]) -> list[str]:
    seen: dict[str, str] = {}
    for entry in sources:
        for source in entry.get("sources", []):  # type: ignore[union-attr]
            seen.setdefault(str(source["url"]), str(source["name"]))  # type: ignore[index]
    return [f"{name}: {url}" for url, name in seen.items()]


def treatment_request(intake: Intake, *, stage: str | None = None, today: date | None = None) -> TreatmentRequest:
    """The de-identified request for one scan; `stage` overrides the stage recorded at intake."""
    titles = "\n".join(f"- {field}: {title}" for field, title in SECTION_TITLES.items())
    prompt = (
        "Write a treatment-plan outline for discussion with the care team, using the JSON schema provided.\n"
        f"Sections:\n{titles}\n\n"
        "De-identified case summary:\n"
        f"{case_summary(intake, stage=stage, today=today)}"
    )
    return TreatmentRequest(SYSTEM_INSTRUCTION, prompt)


def offline_result(
    intake: Intake, *, stage: str | None, request: TreatmentRequest, notice: str | None
) -> TreatmentResult:
    plan = offline_plan(intake, stage=stage)
    return TreatmentResult(
        sections=plan.sections,
        source="offline",
        model_name=OFFLINE_MODEL_NAME,
        prompt_version=PROMPT_VERSION,
        request_text=request.text,
        notice=notice,
        sources=[p.as_source_dict() for p in plan.passages],
    )


def plan_treatment(
    intake: Intake,
    *,
    client: GeminiClient | None,
    stage: str | None = None,
    request: TreatmentRequest | None = None,
    today: date | None = None,
) -> TreatmentResult:
    """A plan outline from Gemini, or the offline guideline summary when Gemini is off or fails.

    Raises ValidationError for a scan whose image failed the input check: no class is reported for it, so there is
    nothing to plan for.
    """
    if intake.gate_flag:
        raise ValidationError(
            "This scan failed the input check, so LungScan reports no finding for it and writes no treatment outline."
        )
    request = request or treatment_request(intake, stage=stage, today=today)
    if client is None:
        return offline_result(
            intake,
            stage=stage,
            request=request,
            notice="Gemini is not configured (no GEMINI_API_KEY), so this is the offline guideline summary.",
        )
    try:
        sections = client.generate_structured(
            request.prompt, schema=TreatmentPlanSections, system_instruction=request.system_instruction
        )
    except LLMError as exc:
        logger.warning("Treatment plan falls back to offline: %s", exc)
        notice = f"{exc} Showing the offline guideline summary instead."
        return offline_result(intake, stage=stage, request=request, notice=notice)
    return TreatmentResult(
        sections=sections,
        source="gemini",
        model_name=client.model,
        prompt_version=PROMPT_VERSION,
        request_text=request.text,
    )
