"""The offline side: knowledge base integrity, retrieval, guardrails, de-identification and the planner."""

from datetime import date

import pytest
from llm_fixtures import CLASSES, IDENTIFIERS, identifying_scan

from lungscan.classes import display_name
from lungscan.errors import KnowledgeBaseError, ValidationError
from lungscan.llm import assistant, treatment
from lungscan.llm.deidentify import age_band, case_summary, normalise_stage, stage_group, years_since_quit_band
from lungscan.llm.guardrails import DOSING_REFUSAL, NOT_COVERED_REPLY, check_question
from lungscan.llm.planner import OFFLINE_LABEL, offline_plan
from lungscan.llm.retrieval import default_knowledge_base, load_knowledge_base
from lungscan.llm.schema import SECTION_TITLES

# --- Knowledge base ------------------------------------------------------------------------------


def test_every_passage_cites_a_public_source():
    kb = default_knowledge_base()
    assert len(kb.passages) >= 40
    for passage in kb.passages:
        assert passage.sources, passage.id
        assert all(s.url.startswith("https://") for s in passage.sources)
    cited = {s.key for p in kb.passages for s in p.sources}
    for guideline in ("nccn-early", "nccn-metastatic", "esmo-nsclc", "acs-symptoms", "nci-pdq-nsclc", "uspstf-2021"):
        assert guideline in cited


def test_malformed_knowledge_file_is_refused(tmp_path):
    (tmp_path / "SOURCES.md").write_text("| acs | ACS | https://www.cancer.org/ |\n", encoding="utf-8")
    (tmp_path / "topic.md").write_text("# T\n\n## Heading {#h}\nText.\nSources: nope\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match="unknown source keys"):
        load_knowledge_base(tmp_path)
    (tmp_path / "topic.md").write_text("# T\n\n## Heading {#h}\nText with no sources line.\n", encoding="utf-8")
    with pytest.raises(KnowledgeBaseError, match="no Sources line"):
        load_knowledge_base(tmp_path)


# --- Retrieval -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("What are the symptoms of lung cancer?", "symptoms-common"),
        ("Who should be screened for lung cancer?", "screening-who"),
        ("What is EGFR?", "glossary-egfr"),
        ("Which mutations should be tested, like EGFR and ALK?", "molecular-markers"),
        ("How can I quit smoking?", "cessation-how"),
        ("What are the side effects of immunotherapy?", "side-effects-immunotherapy"),
        ("What is the treatment for stage 3 lung cancer?", "stage-III"),
        ("What is SBRT?", "glossary-sbrt"),
    ],
)
def test_retrieval_finds_the_right_cited_passage(question, expected):
    hits = default_knowledge_base().search(question)
    assert expected in [hit.passage.id for hit in hits]
    assert all(hit.passage.sources for hit in hits)


@pytest.mark.parametrize(
    "question",
    ["What's the capital of France?", "Write me Python code to sort a list", "Who won the football game?",
     "Is mesothelioma caused by lungfish?"],
)
def test_retrieval_finds_nothing_for_out_of_scope_questions(question):
    assert default_knowledge_base().search(question) == []


def test_offline_answer_quotes_passages_with_sources():
    reply = assistant.answer("What are the symptoms of lung cancer?")
    text = "".join(reply)
    assert reply.mode == "offline" and reply.notice is None
    assert "> A cough that does not go away" in text or "> - A cough that does not go away" in text
    assert "Source: [American Cancer Society: Lung Cancer Signs and Symptoms](https://www.cancer.org/" in text
    assert {"passage_id", "title", "sources"} <= set(reply.sources[0])


@pytest.mark.parametrize("question", ["What's the capital of France?", "write me python code"])
def test_out_of_scope_questions_are_declined_plainly(question):
    reply = assistant.answer(question)
    text = "".join(reply)
    assert "knowledge base does not cover this" in text and reply.sources == []


def test_on_topic_but_uncovered_question_says_so():
    text = "".join(assistant.answer("Can lungfish oil cure lung cancer?"))
    assert text == NOT_COVERED_REPLY


# --- Guardrails ----------------------------------------------------------------------------------


def test_guardrails():
    assert check_question("I'm coughing up a lot of blood").emergency
    assert not check_question("Is coughing up blood a symptom of lung cancer?").emergency
    assert check_question("Do I have lung cancer?").personal_diagnosis
    assert check_question("How many mg of varenicline should I take?").dosing
    assert not check_question("What is varenicline?").dosing
    assert check_question("How often should I take my tablets?").dosing
    assert not check_question("How many sessions does SBRT take?").dosing
    assert check_question("I want to end my life").crisis
    assert not check_question("What's the capital of France?").on_topic
    assert check_question("What is stage 4?").on_topic


def test_dosing_is_declined_and_diagnosis_requests_get_a_notice():
    assert "".join(assistant.answer("What dose of osimertinib should I take?")) == DOSING_REFUSAL
    text = "".join(assistant.answer("Do I have lung cancer? My scan says adenocarcinoma."))
    assert text.startswith("I can't tell whether you")
    assert "biopsy" in text


def test_red_flags_point_to_emergency_care_offline():
    text = "".join(assistant.answer("My husband has severe chest pain and can't breathe"))
    assert "emergency" in text.split("\n\n")[0].lower()


# --- De-identification ---------------------------------------------------------------------------


def test_case_summary_keeps_facts_and_drops_identifiers():
    summary = case_summary(identifying_scan(stage="stage iiib"), today=date(2026, 12, 1))
    assert [n for n in IDENTIFIERS if n.lower() in summary.lower()] == []
    for fact in ("Age band: 60-69", "Sex: male", "Clinician-entered stage: IIIB", "about 30 pack-years",
                 "quit 10-14 years ago", "asbestos", "COPD", "diabetes", "hypertension", "pneumonia",
                 "chronic cough yes (6 weeks)", "Adenocarcinoma, calibrated confidence 85%"):
        assert fact in summary


def test_a_scan_that_failed_the_input_check_gets_no_class_and_no_plan():
    flagged = identifying_scan(gate_flag="This image does not look like the chest CT slices the model was trained on.")
    summary = case_summary(flagged)
    assert "Image-model output: none" in summary and "input check" in summary
    assert [name for name in CLASSES if display_name(name) in summary] == []
    assert "Age band: 60-69" in summary  # the rest of the case stays, for the assistant's context
    with pytest.raises(ValidationError, match="failed the input check"):
        treatment.plan_treatment(flagged, client=None)


def test_unrecognised_stage_is_withheld_not_sent():
    summary = case_summary(identifying_scan(stage="ask Dr Vexley"))
    assert "Vexley" not in summary and "withheld" in summary


@pytest.mark.parametrize(
    ("age", "band"), [(None, None), (9, "under 18"), (40, "40-49"), (64, "60-69"), (89, "80-89"), (95, "90 or older")]
)
def test_age_band(age, band):
    assert age_band(age) == band


def test_stage_and_quit_helpers():
    assert normalise_stage("Stage IIIa") == "IIIA" and stage_group("IIIA") == "III"
    assert normalise_stage("t2a n0 m0") == "t2an0m0" and stage_group("T2aN0M0") is None
    assert normalise_stage("IV") == "IV" and stage_group("ivb") == "IV"
    assert normalise_stage("John Smith") is None and normalise_stage("") is None
    assert years_since_quit_band(date(2010, 1, 1), date(2026, 1, 1)) == "15 or more years ago"
    assert years_since_quit_band(date(2025, 6, 1), date(2026, 1, 1)) == "less than 1 year ago"


# --- Offline planner -----------------------------------------------------------------------------


@pytest.mark.parametrize("predicted_class", CLASSES)
def test_offline_plan_is_complete_for_every_class(predicted_class):
    plan = offline_plan(identifying_scan(predicted_class))
    sections = plan.sections.model_dump()
    assert set(sections) == set(SECTION_TITLES)
    assert all(sections.values()), [name for name, value in sections.items() if not value]
    assert OFFLINE_LABEL in plan.sections.summary_and_uncertainty
    assert plan.passages and all(p.sources for p in plan.passages)
    text = " ".join(str(v) for v in sections.values())
    if predicted_class == "normal":
        assert "does not rule out lung cancer" in text and "screening" in text
    else:
        assert "biopsy" in text.lower() and "PET-CT" in text and "brain MRI" in text
        assert "PD-L1" in text


def test_offline_plan_follows_class_and_stage():
    adeno = offline_plan(identifying_scan("adenocarcinoma", stage="IV")).sections
    assert all(item.startswith("Stage IV") for item in adeno.treatment_options_by_stage[1:-1])
    assert "EGFR" in " ".join(adeno.confirmation_steps) and "ROS1" in " ".join(adeno.confirmation_steps)
    squamous = offline_plan(identifying_scan("squamous_cell_carcinoma")).sections
    assert "squamous" in " ".join(squamous.confirmation_steps).lower()
    large = offline_plan(identifying_scan("large_cell_carcinoma")).sections
    assert "neuroendocrine" in " ".join(large.confirmation_steps)


def test_smoking_cessation_comes_first_for_smokers():
    current = offline_plan(identifying_scan(smoking_status="current", quit_date=None)).sections
    assert current.supportive_care_and_lifestyle[0].startswith("Stopping smoking comes first")
    never = offline_plan(
        identifying_scan(smoking_status="never", smoking_years=None, cigarettes_per_day=None, quit_date=None)
    ).sections
    assert "radon" in never.supportive_care_and_lifestyle[0]


def test_offline_plan_is_deterministic_and_cites_sources():
    first = treatment.plan_treatment(identifying_scan("normal"), client=None)
    second = treatment.plan_treatment(identifying_scan("normal"), client=None)
    assert first.content() == second.content()
    assert first.content()["Sources"] and all("https://" in line for line in first.content()["Sources"])


def test_follow_up_questions_stay_in_the_conversation_topic():
    from lungscan.llm.gemini import ChatTurn

    history = [ChatTurn(role="user", content="What is SBRT?"), ChatTurn(role="assistant", content="Radiation.")]
    follow_up = assistant.answer("And how many sessions does it take?", history)
    text = "".join(follow_up)
    assert follow_up.mode == "offline" and "1 to 5" in text
    assert "glossary-sbrt" in [source["passage_id"] for source in follow_up.sources]
    without_context = assistant.answer("And how many sessions does it take?")
    assert "knowledge base does not cover this" in "".join(without_context)
    assert without_context.mode == "guardrail"
