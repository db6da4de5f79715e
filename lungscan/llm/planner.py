"""The deterministic offline planner: the treatment-plan sections assembled from the knowledge base.

Same input, same output: no model, no network. Every bullet comes from (or, for the
summary, is templated around) a cited passage, and the passages used are returned so
the page and the exports can list their sources. The result is always labelled
"Offline guideline summary".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..classes import display_name
from .deidentify import Intake, normalise_stage, stage_group
from .retrieval import KnowledgeBase, Passage, default_knowledge_base
from .schema import TreatmentPlanSections

OFFLINE_LABEL = "Offline guideline summary"
MAX_ITEMS = 12
CANCER_CLASSES = ("adenocarcinoma", "large_cell_carcinoma", "squamous_cell_carcinoma")


@dataclass(frozen=True)
class OfflinePlan:
    sections: TreatmentPlanSections
    passages: tuple[Passage, ...]


class _Collector:
    """Collects bullets for one plan and remembers which passages they came from."""

    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.used: dict[str, Passage] = {}

    def passage(self, passage_id: str) -> Passage:
        found = self.kb.get(passage_id)
        self.used.setdefault(found.id, found)
        return found

    def bullets(self, passage_id: str, limit: int | None = None, prefix: str = "") -> list[str]:
        items = self.passage(passage_id).bullets
        return [_join(prefix, item) for item in items[:limit]]

    def intro(self, passage_id: str, sentences: int | None = None) -> str:
        text = self.passage(passage_id).intro
        if sentences is None:
            return text
        return " ".join(_sentences(text)[:sentences])


def _join(prefix: str, item: str) -> str:
    """Prefix a bullet, lower-casing its first word unless it is an acronym ("A fever" -> "a fever")."""
    first_word = item.split(" ", 1)[0]
    if prefix and item[:1].isupper() and not (len(first_word) > 1 and first_word.isupper()):
        item = item[0].lower() + item[1:]
    return prefix + item


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s]


def _cap(items: list[str]) -> list[str]:
    unique: list[str] = []
    for item in items:
        if item and item not in unique:
            unique.append(item)
    return unique[:MAX_ITEMS]


def _summary(intake: Intake, stage: str | None, group: str | None) -> str:
    label = display_name(intake.predicted_class)
    others = sorted(
        ((name, p) for name, p in (intake.probabilities or {}).items() if name != intake.predicted_class),
        key=lambda item: -item[1],
    )
    runner_up = f"; the next most likely class was {display_name(others[0][0])} ({others[0][1]:.0%})" if others else ""
    parts = [
        f"The image model's top class for this single CT slice was {label}, with a calibrated confidence of "
        f"{intake.confidence:.0%}{runner_up}."
    ]
    margin = intake.confidence - (others[0][1] if others else 0.0)
    if intake.confidence < 0.6 or margin < 0.2:
        parts.append("This is an uncertain result: the model cannot clearly tell the classes apart here.")
    if intake.predicted_class == "normal":
        parts.append(
            "A 'normal' result does not rule out lung cancer: the model sees one slice only and can miss "
            "small or out-of-slice findings."
        )
    else:
        parts.append(
            "This is not a diagnosis: only a full radiology review and a biopsy examined by a pathologist can "
            "confirm cancer and its type."
        )
        if group:
            parts.append(f"The clinician entered stage {stage}, so the options below focus on stage {group}.")
        elif stage:
            parts.append(f"The clinician entered {stage}; options for all stage groups are summarised below.")
        else:
            parts.append("No stage was entered, so options for all stages are summarised below.")
    parts.append(f"{OFFLINE_LABEL} from LungScan's curated knowledge base; general information, not a treatment plan.")
    return " ".join(parts)


def _confirmation(c: _Collector, cls: str) -> list[str]:
    if cls == "normal":
        return _cap(c.bullets("result-normal") + [c.intro("screening-results", 3)])
    ways = "; ".join(_join(" ", b).strip().rstrip(".") for b in c.bullets("diagnosis-biopsy"))
    items = [c.intro("diagnosis-biopsy", 1), f"Depending on where the abnormal area is, the sample comes from: {ways}."]
    items += c.bullets("diagnosis-staging-tests")
    if cls == "squamous_cell_carcinoma":
        items.append(c.intro("molecular-squamous"))
    else:
        markers = "; ".join(b.rstrip(".") for b in c.bullets("molecular-markers"))
        items.append(f"Biomarker testing, ideally with a next-generation sequencing panel: {markers}.")
    items.append(c.intro("molecular-early"))
    if cls == "large_cell_carcinoma":
        items.append(_sentences(c.intro("types-large-cell"))[-2])
    return _cap(items)


def _treatment(c: _Collector, cls: str, group: str | None) -> list[str]:
    if cls == "normal":
        return _cap(
            [
                "No cancer treatment follows from an image-model result: treatment is only planned after a "
                "clinician has reviewed the full imaging and, if cancer is suspected, a biopsy has confirmed it.",
                c.intro("screening-who", 1),
                c.intro("follow-up-no-cancer", 1),
            ]
        )
    items = [c.intro("stage-principles", 2)]
    if group in ("I", "II", "III", "IV"):
        items += c.bullets(f"stage-{group}", prefix=f"Stage {group}: ")
    elif group == "0":
        items.append("Stage 0 (in situ) cancer is usually treated with surgery alone; ask the team for specifics.")
        c.passage("stage-I")
    else:
        items.append(c.intro("stage-unknown"))
        for stage in ("I", "II", "III", "IV"):
            items += c.bullets(f"stage-{stage}", limit=1, prefix=f"Stage {stage}: ")
    if cls == "squamous_cell_carcinoma":
        items.append(
            "For squamous cell carcinoma, targetable gene changes are less common, so immunotherapy and "
            "chemotherapy are more often the systemic options; biomarker results still decide."
        )
        c.passage("types-squamous")
    items.append(c.intro("treatment-trials", 1))
    return _cap(items)


def _supportive(c: _Collector, intake: Intake, cls: str) -> list[str]:
    items: list[str] = []
    if intake.smoking_status == "never":
        items.append(
            "Avoid second-hand smoke, and consider testing the home for radon, a leading cause of lung cancer "
            "in never-smokers."
        )
        c.passage("risk-other")
    else:
        first = "Stopping smoking comes first. " if intake.smoking_status == "current" else ""
        items.append(first + c.intro("cessation-why", 2))
        items += c.bullets("cessation-how", limit=2)
    if cls != "normal":
        items.append(c.intro("supportive-palliative"))
    items += c.bullets("supportive-lifestyle")
    items.append(_sentences(c.intro("supportive-emotional"))[-1])
    return _cap(items)


def _follow_up(c: _Collector, cls: str, group: str | None) -> list[str]:
    if cls == "normal":
        return _cap([c.intro("follow-up-no-cancer"), c.intro("screening-results", 2)] + c.bullets("result-normal")[1:2])
    items = c.bullets("follow-up-after-treatment")
    if group in (None, "IV"):
        items.append(c.intro("follow-up-advanced"))
    return _cap(items)


def _red_flags(c: _Collector, cls: str) -> list[str]:
    items = c.bullets("red-flags-emergency")
    if cls != "normal":
        items += c.bullets("red-flags-treatment", limit=3, prefix="During treatment, call the care team the same day: ")
    return _cap(items)


def _questions(c: _Collector, cls: str) -> list[str]:
    if cls == "normal":
        return _cap(c.bullets("questions-no-cancer"))
    return _cap(c.bullets("questions-diagnosis") + c.bullets("questions-treatment"))


def offline_plan(intake: Intake, *, stage: str | None = None, kb: KnowledgeBase | None = None) -> OfflinePlan:
    """A complete plan outline for the scan's predicted class (and stage, if entered or given)."""
    collector = _Collector(kb or default_knowledge_base())
    cls = intake.predicted_class  # any class other than "normal" gets the (non-squamous) cancer outline
    chosen_stage = normalise_stage(stage or intake.stage)
    group = stage_group(chosen_stage)
    sections = TreatmentPlanSections(
        summary_and_uncertainty=_summary(intake, chosen_stage, group),
        confirmation_steps=_confirmation(collector, cls),
        treatment_options_by_stage=_treatment(collector, cls, group),
        supportive_care_and_lifestyle=_supportive(collector, intake, cls),
        follow_up=_follow_up(collector, cls, group),
        red_flag_symptoms=_red_flags(collector, cls),
        questions_for_care_team=_questions(collector, cls),
    )
    collector.passage("result-not-diagnosis")
    return OfflinePlan(sections, tuple(collector.used.values()))
