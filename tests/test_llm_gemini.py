"""The real google-genai client against a local fake Gemini server: privacy, schema, retries and fallbacks."""

import re
import time

import pytest
from fake_gemini import (
    FakeGemini,
    ok,
    prompt_blocked,
    safety_finish,
    server_error,
    stall,
    stream,
    too_many_requests,
)
from llm_fixtures import IDENTIFIERS, fast_client, identifying_scan, plan_json

from lungscan.config import Settings
from lungscan.errors import LLMBadOutput, LLMSafetyBlocked, LLMUnavailable
from lungscan.llm import assistant, treatment
from lungscan.llm.gemini import ChatTurn, GeminiClient
from lungscan.llm.schema import PROMPT_VERSION, SECTION_TITLES, TreatmentPlanSections


@pytest.fixture
def fake():
    with FakeGemini() as server:
        yield server


@pytest.fixture
def client(fake):
    return fast_client(fake.base_url)


# --- What leaves the machine ---------------------------------------------------------------------


def test_treatment_request_carries_no_identifier(fake, client):
    scan = identifying_scan("adenocarcinoma", stage="IIIA")
    fake.script(ok(plan_json()))

    result = treatment.plan_treatment(scan, client=client)

    assert result.source == "gemini" and len(fake.requests) == 1
    sent = fake.requests[0]
    raw = sent.raw
    leaked = [needle for needle in IDENTIFIERS if needle.lower() in raw.lower()]
    assert leaked == [], f"identifiers sent to Gemini: {leaked}"
    assert not re.search(r"\d{4}-\d{2}-\d{2}", raw), "a date was sent"
    # The de-identified facts do go out (so this test would notice an empty request).
    for fact in ("60-69", "IIIA", "85%", "about 30 pack-years", "quit 10-14 years ago", "asbestos", "COPD",
                 "diabetes", "hypertension", "pneumonia", "Adenocarcinoma"):
        assert fact in raw
    assert sent.headers.get("x-goog-api-key") == "dummy-key"
    assert "gemini-test-flash:generateContent" in sent.path


def test_exact_request_text_is_what_is_sent(fake, client):
    scan = identifying_scan("squamous_cell_carcinoma")
    request = treatment.treatment_request(scan, stage="T2aN0M0")
    fake.script(ok(plan_json()))

    result = treatment.plan_treatment(scan, client=client, request=request)

    body = fake.requests[0].body
    assert body["contents"][0]["parts"][0]["text"] == request.prompt
    assert body["systemInstruction"]["parts"][0]["text"] == request.system_instruction
    assert result.request_text == request.text and "T2aN0M0" in request.prompt


def test_response_schema_is_requested(fake, client):
    fake.script(ok(plan_json()))
    treatment.plan_treatment(identifying_scan(), client=client)

    config = fake.requests[0].body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config.get("responseSchema") or config.get("responseJsonSchema")
    assert schema is not None
    assert set(schema["properties"]) == set(SECTION_TITLES)
    assert fake.requests[0].body["safetySettings"]


def test_gemini_plan_is_returned_with_model_and_prompt_version(fake, client):
    fake.script(ok(plan_json()))
    result = treatment.plan_treatment(identifying_scan(), client=client)

    assert (result.source, result.model_name, result.prompt_version) == ("gemini", "gemini-test-flash", PROMPT_VERSION)
    assert result.notice is None
    assert result.content()["What is needed to confirm it"][2] == "EGFR, ALK and PD-L1 testing."


# --- Retries and faults --------------------------------------------------------------------------


def test_429_is_retried_and_succeeds(fake, client):
    fake.script(too_many_requests(), ok(plan_json()))
    result = treatment.plan_treatment(identifying_scan(), client=client)

    assert len(fake.requests) == 2
    assert result.source == "gemini" and result.notice is None


def test_429_is_retried_for_streaming_too(fake, client):
    fake.script(too_many_requests(), stream("EGFR is ", "a gene."))
    reply = assistant.answer("What is EGFR?", client=client)

    assert "".join(reply) == "EGFR is a gene."
    assert reply.mode == "gemini" and len(fake.requests) == 2


def test_persistent_500_falls_back_to_offline_after_retries(fake, client):
    fake.script(server_error(), server_error(), server_error())
    scan = identifying_scan("large_cell_carcinoma")
    before = scan.model_dump()

    result = treatment.plan_treatment(scan, client=client)

    assert len(fake.requests) == 3  # the SDK retried 5xx with backoff
    assert result.source == "offline" and result.model_name == treatment.OFFLINE_MODEL_NAME
    assert "HTTP 500" in result.notice and "offline guideline summary" in result.notice
    assert "Offline guideline summary" in result.sections.summary_and_uncertainty
    assert scan.model_dump() == before  # the scan is untouched


def test_persistent_429_says_rate_limited(fake, client):
    fake.script(too_many_requests(), too_many_requests(), too_many_requests())
    result = treatment.plan_treatment(identifying_scan(), client=client)
    assert result.source == "offline" and "rate-limiting" in result.notice


def test_timeout_falls_back_to_offline(fake):
    client = fast_client(fake.base_url, timeout_s=0.3, attempts=2)
    fake.script(stall(1.0), stall(1.0))
    started = time.monotonic()

    result = treatment.plan_treatment(identifying_scan(), client=client)

    assert result.source == "offline" and "did not answer in time" in result.notice
    assert time.monotonic() - started < 5


def test_unreachable_server_falls_back(client):
    dead = fast_client("http://127.0.0.1:9", timeout_s=0.5, attempts=1)
    result = treatment.plan_treatment(identifying_scan(), client=dead)
    assert result.source == "offline" and "could not be reached" in result.notice


@pytest.mark.parametrize("reply", [safety_finish(), prompt_blocked()], ids=["finish-safety", "prompt-blocked"])
def test_safety_block_gives_clear_message_and_offline_plan(fake, client, reply):
    fake.script(reply)
    result = treatment.plan_treatment(identifying_scan(), client=client)

    assert result.source == "offline"
    assert "safety filters blocked" in result.notice
    assert all(result.sections.model_dump().values())


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("Sure! Here is your plan: {not json", "not valid structured output"),
        (plan_json(confirmation_steps=[]), "not valid structured output"),
        (plan_json(summary_and_uncertainty="   "), "not valid structured output"),
        ('{"summary_and_uncertainty": "only this"}', "not valid structured output"),
        ("", "empty answer"),
    ],
    ids=["not-json", "empty-section", "blank-summary", "missing-sections", "empty"],
)
def test_malformed_structured_output_falls_back(fake, client, body, message):
    fake.script(ok(body))
    result = treatment.plan_treatment(identifying_scan(), client=client)
    assert result.source == "offline" and message in result.notice


def test_client_raises_typed_errors(fake, client):
    fake.script(ok("nope"))
    with pytest.raises(LLMBadOutput):
        client.generate_structured("x", schema=TreatmentPlanSections, system_instruction="y")
    fake.script(prompt_blocked())
    with pytest.raises(LLMSafetyBlocked):
        list(client.stream_text("x", system_instruction="y"))
    fake.script(server_error(), server_error(), server_error())
    with pytest.raises(LLMUnavailable):
        list(client.stream_text("x", system_instruction="y"))


# --- Streaming assistant -------------------------------------------------------------------------


def test_streaming_yields_multiple_chunks_and_cites_passages(fake, client):
    fake.script(stream("Common symptoms ", "include a lasting cough ", "and breathlessness."))
    history = [ChatTurn(role="user", content="Hello"), ChatTurn(role="assistant", content="Hi, ask me.")]
    reply = assistant.answer("What are the symptoms of lung cancer?", history, "- Age band: 60-69", client)

    chunks = list(reply)
    assert chunks == ["Common symptoms ", "include a lasting cough ", "and breathlessness."]
    assert reply.mode == "gemini" and reply.text == "".join(chunks) and reply.sources

    sent = fake.requests[0]
    assert ":streamGenerateContent" in sent.path and "alt=sse" in sent.path
    roles = [content["role"] for content in sent.body["contents"]]
    assert roles == ["user", "model", "user"]
    last = sent.body["contents"][-1]["parts"][0]["text"]
    assert "Age band: 60-69" in last and "Reference passages" in last
    assert "What are the symptoms of lung cancer?" in last


def test_scan_context_for_chat_carries_no_identifier(fake, client):
    from lungscan.llm.deidentify import case_summary

    fake.script(stream("Okay."))
    list(assistant.answer("What does this result mean for staging?", [], case_summary(identifying_scan()), client))
    raw = fake.requests[0].raw
    assert [n for n in IDENTIFIERS if n.lower() in raw.lower()] == []


@pytest.mark.parametrize(
    "failure", [[server_error()] * 3, [safety_finish()], [ok("")]], ids=["500", "safety", "empty"]
)
def test_streaming_failure_falls_back_to_quoted_passages(fake, client, failure):
    fake.script(*failure)
    reply = assistant.answer("How can I quit smoking?", client=client)
    text = "".join(reply)

    assert reply.mode == "offline" and reply.notice
    assert "offline knowledge-base answer instead" in text
    assert "> " in text and "Source: [" in text
    assert reply.sources


def test_guardrails_decline_without_calling_gemini(fake, client):
    for question in ("What is the capital of France?", "Write me Python code", "What dose of osimertinib should I take?"):
        reply = assistant.answer(question, client=client)
        text = "".join(reply)
        assert reply.mode == "guardrail" and text
    assert fake.requests == []


def test_red_flag_question_gets_emergency_notice_before_gemini_answer(fake, client):
    fake.script(stream("General information."))
    text = "".join(assistant.answer("I am coughing up lots of blood, what should I do?", client=client))
    assert text.index("emergency") < text.index("General information.")


# --- Configuration -------------------------------------------------------------------------------


def test_no_key_means_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("GEMINI_API_KEY", "")
    assert GeminiClient.from_settings(Settings(data_dir=tmp_path)) is None
    result = treatment.plan_treatment(identifying_scan(), client=None)
    assert result.source == "offline" and "not configured" in result.notice


def test_key_and_base_url_come_from_the_environment(monkeypatch, tmp_path, fake):
    monkeypatch.setenv("GEMINI_API_KEY", "env-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
    monkeypatch.setenv("LUNGSCAN_GEMINI_MODEL", "gemini-from-env")
    client = GeminiClient.from_settings(Settings(data_dir=tmp_path), initial_delay_s=0.01)
    fake.script(ok(plan_json()))

    result = treatment.plan_treatment(identifying_scan(), client=client)

    assert result.source == "gemini" and result.model_name == "gemini-from-env"
    assert fake.requests[0].headers["x-goog-api-key"] == "env-key"
    assert "gemini-from-env:generateContent" in fake.requests[0].path
