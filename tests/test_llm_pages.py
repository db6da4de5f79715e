"""AppTest for the Treatment and Assistant pages, offline and online (fake Gemini server), on a real SQLite DB.

The login is bypassed exactly the way the real sign-in leaves it: streamlit-authenticator's
``authentication_status`` and ``username`` in session state, for a user that exists and is
enabled in the database (`ui.frame.current_user` checks both).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

from lungscan import auth, storage
from lungscan.config import Settings
from lungscan.llm.schema import PROMPT_VERSION

sys.path.insert(0, str(Path(__file__).parent))
from fake_gemini import FakeGemini, ok, server_error, stream  # noqa: E402
from llm_fixtures import plan_json  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 60
PATIENT_ID = "PZ-QX-98765"
NOTES = "Patient Xavier Quillfeather of 12 Wallaby Way"


@pytest.fixture(autouse=True)
def fast_bcrypt(monkeypatch):
    real_gensalt = auth.bcrypt.gensalt
    monkeypatch.setattr(auth.bcrypt, "gensalt", lambda rounds=4, prefix=b"2b": real_gensalt(4, prefix))


@pytest.fixture
def app_env(tmp_path, monkeypatch) -> Settings:
    """A fresh database with one clinician and one saved scan whose intake holds identifiers."""
    monkeypatch.setenv("LUNGSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LUNGSCAN_ADMIN_PASSWORD", "Root-pass-123")
    monkeypatch.setenv("GEMINI_API_KEY", "")  # beats any .streamlit/secrets.toml key
    monkeypatch.delenv("GOOGLE_GEMINI_BASE_URL", raising=False)
    monkeypatch.chdir(ROOT)
    st.cache_resource.clear()
    settings = Settings()
    engine = storage.get_engine(settings.resolved_database_url)
    storage.init_db(engine)
    with storage.new_session(engine) as session:
        auth.ensure_admin(session, password="Root-pass-123")
        auth.create_user(session, username="clin", name="Dr Clinician", password="Doctor-pass-123", role="clinician")
        scan = storage.ScanCreate(
            patient_id=PATIENT_ID, age=71, sex="female", smoking_status="current", smoking_years=40,
            cigarettes_per_day=20, comorbidities="COPD", notes=NOTES, source_format="png",
            model_arch="mobilenet_v2", model_version="test", predicted_class="squamous_cell_carcinoma",
            confidence=0.81, probabilities={"adenocarcinoma": 0.1, "large_cell_carcinoma": 0.05,
                                            "squamous_cell_carcinoma": 0.81, "normal": 0.04},
        )
        storage.create_scan(session, settings=settings, scan=scan, image=Image.new("L", (16, 16)), created_by="clin")
    yield settings
    st.cache_resource.clear()


@pytest.fixture
def online(monkeypatch, app_env):
    """Gemini configured with a dummy key, pointed at a local fake server."""
    with FakeGemini() as fake:
        monkeypatch.setenv("GEMINI_API_KEY", "dummy-key")
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.base_url)
        monkeypatch.setenv("LUNGSCAN_GEMINI_MODEL", "gemini-test-flash")
        yield fake


def page(name: str) -> AppTest:
    at = AppTest.from_file(str(ROOT / "pages" / f"{name}.py"), default_timeout=TIMEOUT)
    at.session_state["authentication_status"] = True  # what streamlit-authenticator sets on login
    at.session_state["username"] = "clin"
    at.session_state["name"] = "Dr Clinician"
    return at.run()


def all_text(at: AppTest) -> str:
    kinds = ("title", "markdown", "caption", "info", "warning", "error", "code")
    return "\n".join(str(e.value) for kind in kinds for e in getattr(at, kind))


def plans(settings: Settings) -> list[storage.TreatmentPlan]:
    with storage.new_session(storage.get_engine(settings.resolved_database_url)) as session:
        (scan,) = storage.list_scans(session)
        return storage.list_treatment_plans(session, scan_id=scan.id)


def chat(settings: Settings) -> list[storage.ChatMessage]:
    with storage.new_session(storage.get_engine(settings.resolved_database_url)) as session:
        (conversation,) = storage.list_conversations(session, username="clin")
        return storage.list_chat_messages(session, username="clin", conversation_id=conversation)


# --- Treatment page ------------------------------------------------------------------------------


def test_treatment_offline_generates_saves_and_exports(app_env):
    at = page("treatment")
    assert not at.exception, at.exception
    request = at.code[0].value
    assert "Squamous cell carcinoma" in request and "70-79" in request
    assert PATIENT_ID not in request and "Xavier" not in request and "Wallaby" not in request
    assert plans(app_env) == []  # nothing happens before the click

    (button,) = [b for b in at.button if b.label == "Generate offline summary"]
    button.click().run()

    assert not at.exception, at.exception
    text = all_text(at)
    assert "Offline guideline summary" in text and "not configured" in text
    (saved,) = plans(app_env)
    assert (saved.source, saved.model_name, saved.prompt_version) == ("offline", "offline-knowledge-base", PROMPT_VERSION)
    assert saved.content["Supportive care and lifestyle"][0].startswith("Stopping smoking comes first")
    labels = [b.label for b in at.get("download_button")]
    assert labels == ["PDF", "Markdown"]


def test_treatment_online_sends_only_on_click_and_saves_model_name(online, app_env):
    online.default = ok(plan_json())
    at = page("treatment")
    assert not at.exception, at.exception
    assert online.requests == []  # showing the request sends nothing

    at.text_input[0].set_value("IIIA").run()
    assert "Clinician-entered stage: IIIA" in at.code[0].value
    (button,) = [b for b in at.button if b.label == "Send to Gemini"]
    button.click().run()

    assert not at.exception, at.exception
    assert len(online.requests) == 1
    raw = online.requests[0].raw
    assert PATIENT_ID not in raw and "Xavier" not in raw and "IIIA" in raw
    assert "Gemini-generated outline (gemini-test-flash)" in "\n".join(e.label for e in at.expander)
    (saved,) = plans(app_env)
    assert (saved.source, saved.model_name, saved.prompt_version) == ("gemini", "gemini-test-flash", PROMPT_VERSION)
    assert saved.request_text == at.code[0].value


def test_treatment_online_failure_falls_back_with_a_message(online, app_env):
    online.default = server_error()
    at = page("treatment")
    (button,) = [b for b in at.button if b.label == "Send to Gemini"]
    button.click().run()

    assert not at.exception, at.exception
    assert any("HTTP 500" in w.value and "offline guideline summary" in w.value for w in at.warning)
    (saved,) = plans(app_env)
    assert saved.source == "offline"


def add_flagged_scan(settings: Settings) -> int:
    """A second scan, for the same patient, whose image failed the input check."""
    with storage.new_session(storage.get_engine(settings.resolved_database_url)) as session:
        scan = storage.ScanCreate(
            patient_id=PATIENT_ID, age=71, sex="female", smoking_status="current", source_format="jpeg",
            model_arch="mobilenet_v2", model_version="test", predicted_class="normal", confidence=0.92,
            probabilities={"adenocarcinoma": 0.05, "large_cell_carcinoma": 0.02, "squamous_cell_carcinoma": 0.01,
                           "normal": 0.92},
            gate_flag="This image does not look like the chest CT slices the model was trained on.",
        )
        return storage.create_scan(
            session, settings=settings, scan=scan, image=Image.new("L", (16, 16)), created_by="clin"
        ).id


def test_treatment_writes_no_plan_for_a_scan_that_failed_the_input_check(app_env):
    flagged = add_flagged_scan(app_env)
    at = page("treatment")
    at.selectbox[0].set_value(flagged).run()
    assert not at.exception, at.exception
    assert "input check failed — no finding" in at.selectbox[0].format_func(flagged)
    assert any(f"Scan #{flagged} failed the input check" in w.value for w in at.warning)
    assert not [b for b in at.button if b.label == "Generate offline summary"] and not at.code  # no request either
    with storage.new_session(storage.get_engine(app_env.resolved_database_url)) as session:
        assert storage.list_treatment_plans(session, scan_id=flagged) == []

    at.selectbox[0].set_value(flagged - 1).run()  # the patient's other scan still gets its outline
    assert [b for b in at.button if b.label == "Generate offline summary"]


# --- Assistant page ------------------------------------------------------------------------------


def test_assistant_offline_quotes_sources_and_persists_history(app_env):
    at = page("assistant")
    assert not at.exception, at.exception
    at.chat_input[0].set_value("What are the symptoms of lung cancer?").run()

    assert not at.exception, at.exception
    user_message, answer = chat(app_env)
    assert (user_message.role, answer.role) == ("user", "assistant")
    assert "> " in answer.content and "Source: [American Cancer Society" in answer.content
    assert answer.sources and answer.sources[0]["sources"][0]["url"].startswith("https://")

    again = page("assistant")  # a new session of the same user sees the stored conversation
    assert [m.name for m in again.chat_message] == ["user", "assistant"]
    assert "What are the symptoms of lung cancer?" in all_text(again)


def test_assistant_context_of_a_scan_that_failed_the_input_check_has_no_class(app_env):
    flagged = add_flagged_scan(app_env)
    at = page("assistant")
    assert "input check failed — no finding" in at.selectbox[0].format_func(flagged)
    at.selectbox[0].set_value(flagged).run()
    assert not at.exception, at.exception
    context = at.code[0].value
    assert "Image-model output: none" in context and "Normal" not in context and "92%" not in context


def test_assistant_offline_declines_off_topic(app_env):
    at = page("assistant")
    at.chat_input[0].set_value("What's the capital of France?").run()
    assert not at.exception, at.exception
    assert "knowledge base does not cover this" in chat(app_env)[1].content


def test_assistant_online_streams_with_scan_context(online, app_env):
    online.default = stream("Squamous cell carcinoma ", "is linked to smoking; ", "ask about PD-L1 testing.")
    at = page("assistant")
    at.selectbox[0].select_index(1).run()
    at.chat_input[0].set_value("What should happen next for this result?").run()

    assert not at.exception, at.exception
    answer = chat(app_env)[1]
    assert answer.content == "Squamous cell carcinoma is linked to smoking; ask about PD-L1 testing."
    assert answer.scan_id is not None
    sent = online.requests[0]
    assert ":streamGenerateContent" in sent.path
    raw = json.dumps(sent.body)
    assert "Squamous cell carcinoma, calibrated confidence 81%" in raw
    assert PATIENT_ID not in raw and "Xavier" not in raw
