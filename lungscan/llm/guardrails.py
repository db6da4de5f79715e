"""Guardrails shared by the Gemini and offline assistants.

Deterministic checks on the user's question, applied before any model is called:
red-flag symptoms get an emergency-care notice first; requests for a personal diagnosis
get a plain statement that no tool here can give one; dosing questions are declined
outright; questions with no lung-health vocabulary are declined as off topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .retrieval import analyse

EMERGENCY_NOTICE = (
    "**If this is happening now, get emergency help:** call your local emergency number (911 in the US, "
    "112 in Europe, 999 in the UK) or go to the nearest emergency department. Coughing up more than a little "
    "blood, severe or sudden breathlessness, chest pain, confusion, fainting or a seizure cannot wait for a chat answer."
)
CRISIS_NOTICE = (
    "**If you are thinking about harming yourself, please reach out now:** call your local emergency number, "
    "or in the US call or text 988 (Suicide & Crisis Lifeline). You deserve support from a person right away."
)
DIAGNOSIS_NOTICE = (
    "I can't tell whether you or anyone else has lung cancer, and neither can a single-slice image model. "
    "Only a clinician who reviews the full scan, and a biopsy examined by a pathologist, can. "
    "Here is general information that may help you talk to your care team."
)
DOSING_REFUSAL = (
    "I can't advise on doses, or on starting, stopping or changing any medicine. Dosing depends on the person, "
    "their kidney and liver function, other medicines and the treatment plan, so please ask the oncologist, "
    "cancer nurse or pharmacist who prescribed it. I'm happy to explain what a treatment is, how it works in "
    "general, or which side effects to report."
)
OFF_TOPIC_REPLY = (
    "The knowledge base does not cover this: I can only help with questions about lung cancer and lung health, "
    "such as symptoms, risk factors and screening, diagnosis and staging, treatments and their side effects, "
    "and living with treatment."
)
NOT_COVERED_REPLY = (
    "The knowledge base does not cover this question. It holds patient-education summaries about lung cancer "
    "symptoms, risk factors, screening, diagnosis and staging, biomarker testing, treatments, side effects, "
    "supportive care, stopping smoking, follow-up and questions to ask the care team. Please ask the care team, "
    "or rephrase the question using one of these topics."
)

_FIRST_PERSON = r"\b(i|i'm|im|i've|ive|me|my|we|our|he|she|his|her|they|their|mum|mom|dad|husband|wife|partner)\b"
_RED_FLAGS = (
    r"cough\w*\s+(up\s+)?(a\s+lot\s+of\s+|lots\s+of\s+|much\s+)?blood",
    r"h(a)?emoptysis",
    r"(can'?t|cannot|can\s+not|struggling\s+to|hard\s+to|unable\s+to)\s+breathe",
    r"(severe|sudden|very)\s+(short(ness)?\s+of\s+breath|breathless\w*)",
    r"chest\s+pain",
    r"(lips?|face)\s+(is\s+|are\s+|turning\s+|turned\s+)?blue",
    r"faint(ed|ing)?|passed\s+out|seizure|fit\s+now",
    r"(sudden|new)\s+(confusion|weakness|numbness)|confused",
    r"spinal\s+cord|can'?t\s+(walk|move\s+my\s+legs)",
    r"fever.*(chemo|immunotherapy|treatment)|(chemo|immunotherapy|treatment).*fever",
)
_CRISIS = r"suicid\w*|kill\s+myself|end\s+my\s+life|self[-\s]harm|want\s+to\s+die"
_PERSONAL_DIAGNOSIS = (
    r"\b(do|does|could|might|will)\s+(i|he|she|they|my\s+\w+)\s+(have|has|get)\s+(lung\s+)?cancer",
    r"\bam\s+i\s+(going\s+to\s+die|dying|sick)",
    r"\b(is|was)\s+(it|this|that|my\s+\w+(\s+\w+)?)\s+(cancer|cancerous|malignant|benign|a\s+tumou?r)",
    r"\bdiagnos\w*\s+(me|my|him|her)\b",
    r"\bwhat\s+do\s+i\s+have\b",
    r"\b(my|this|the)\s+(scan|result|x-?ray|ct)\s+(shows?|says?|means?)",
    r"\bhow\s+long\s+(do|does)\s+(i|he|she|my\s+\w+)\s+have\s+(left|to\s+live)",
)
_DOSING = (
    r"\bdos(e|es|age|ing)\b",
    r"\bhow\s+(many|much)\s+(mg|milligrams?|tablets?|pills?|capsules?|ml)\b",
    r"\b\d+\s*(mg|mcg|ml)\b",
    r"\bhow\s+(much|many|often)\b.*\b(should|do|can|must)\s+(i|he|she|they|we|you)\s+(take|give|use)\b",
    r"\b(increase|double|skip|stop|change)\s+(my|his|her|the)\s+(medication|medicine|tablets?|pills?|treatment\s+dose)",
)

#: Vocabulary of lung health; a question needs at least one of these to count as on topic.
_DOMAIN_WORDS = """
lung lungs pulmonary cancer cancers tumour tumor tumours tumors nodule nodules malignant benign carcinoma
adenocarcinoma squamous large-cell neuroendocrine nsclc sclc metastasis metastases metastatic oncology
oncologist pathologist pathology radiologist histology biopsy bronchoscopy ebus mediastinoscopy thoracentesis
ct scan scans pet mri x-ray xray ldct screening lung-rads staging stage stages tnm lymph
smoking smoke smoker smokers cigarette cigarettes tobacco vaping vape nicotine cessation pack-year
pack-years varenicline bupropion radon asbestos silica diesel pollution secondhand
cough coughing sputum phlegm blood breath breathless breathlessness breathing wheeze wheezing chest hoarse
hoarseness appetite fatigue symptom symptoms pain headache
surgery surgeon lobectomy segmentectomy pneumonectomy vats radiation radiotherapy sbrt sabr
chemotherapy chemo chemoradiation immunotherapy checkpoint pembrolizumab nivolumab atezolizumab durvalumab
targeted therapy therapies treatment treatments egfr alk ros1 kras braf ntrk her2 pd-l1 pdl1
biomarker biomarkers mutation mutations molecular ngs osimertinib alectinib
nausea rash diarrhoea diarrhea pneumonitis neuropathy
palliative hospice supportive rehabilitation
follow-up surveillance recurrence relapse remission prognosis survival
copd emphysema fibrosis asthma pneumonia tuberculosis
diagnosis diagnosed diagnose lungscan grad-cam heatmap classifier
"""
DOMAIN_TERMS: frozenset[str] = frozenset(t for word in _DOMAIN_WORDS.split() for t in analyse(word))


@dataclass(frozen=True)
class Guard:
    """What the guardrails found in one question."""

    emergency: bool
    crisis: bool
    personal_diagnosis: bool
    dosing: bool
    on_topic: bool

    def notices(self) -> list[str]:
        """Fixed notices shown before any answer (online or offline)."""
        found = []
        if self.crisis:
            found.append(CRISIS_NOTICE)
        if self.emergency:
            found.append(EMERGENCY_NOTICE)
        if self.personal_diagnosis:
            found.append(DIAGNOSIS_NOTICE)
        return found

    @property
    def refusal(self) -> str | None:
        """A complete reply that replaces the answer, or None when the question may be answered."""
        if self.dosing:
            return DOSING_REFUSAL
        if not self.on_topic and not (self.emergency or self.crisis):
            return OFF_TOPIC_REPLY
        return None


def _any(patterns: tuple[str, ...] | str, text: str) -> bool:
    patterns = (patterns,) if isinstance(patterns, str) else patterns
    return any(re.search(p, text) for p in patterns)


def is_on_topic(question: str) -> bool:
    """True when the question uses at least one lung-health word."""
    return any(
        token in DOMAIN_TERMS or token.startswith("stage_") for token in analyse(question) if " " not in token
    )


def check_question(question: str) -> Guard:
    """Run every guardrail on a question (case-insensitive, deterministic)."""
    text = question.lower()
    personal = bool(re.search(_FIRST_PERSON, text))
    return Guard(
        emergency=personal and _any(_RED_FLAGS, text),
        crisis=_any(_CRISIS, text),
        personal_diagnosis=_any(_PERSONAL_DIAGNOSIS, text),
        dosing=_any(_DOSING, text),
        on_topic=is_on_topic(question),
    )
