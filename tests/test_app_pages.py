"""AppTest smoke tests of the whole app: every page for every role, sign-in, sign-out and access rules.

Each test runs `app.py` against a fresh SQLite database in a temp folder
(LUNGSCAN_DATA_DIR) and a tiny, untrained checkpoint written by the test
(LUNGSCAN_MODELS_DIR), so nothing depends on the real dataset or trained models.
"""

from __future__ import annotations

import base64
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from lungscan import auth, storage
from lungscan.config import Settings

sys.path.insert(0, str(Path(__file__).parent))
from test_analysis import ct_png  # noqa: E402
from test_reports import pdf_text  # noqa: E402
from tiny_models import write_evaluation, write_tiny_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
ADMIN_PASSWORD = "Root-pass-123"
PASSWORDS = {"clin": "Doctor-pass-123", "stud": "Learner-pass-123"}
TIMEOUT = 60

ALL_PAGES = ("scan", "history", "treatment", "assistant", "analytics", "models", "gallery", "about", "admin")
PATIENT_PAGES = ("scan", "history", "treatment", "assistant", "analytics")


def existing(pages) -> list[str]:
    return [p for p in pages if (ROOT / "pages" / f"{p}.py").is_file()]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("models")
    write_tiny_checkpoint(root, "mobilenet_v2")
    write_evaluation(root, "mobilenet_v2")
    return root


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("chest-ct")
    for folder in ("adenocarcinoma", "large.cell.carcinoma", "normal", "squamous.cell.carcinoma"):
        (root / "test" / folder).mkdir(parents=True)
        (root / "test" / folder / f"{folder}-1.png").write_bytes(ct_png(size=96))
    return root


@pytest.fixture
def app_env(tmp_path, monkeypatch, models_dir, dataset_dir) -> Settings:
    """Environment for one app instance; clears Streamlit's process-wide caches between tests."""
    monkeypatch.setenv("LUNGSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LUNGSCAN_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("LUNGSCAN_DATASET_DIR", str(dataset_dir))
    monkeypatch.setenv("LUNGSCAN_ADMIN_PASSWORD", ADMIN_PASSWORD)
    monkeypatch.setenv("LUNGSCAN_SESSION_TIMEOUT_MINUTES", "30")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.chdir(ROOT)
    st.cache_resource.clear()
    st.cache_data.clear()
    settings = Settings()
    engine = storage.get_engine(settings.resolved_database_url)
    storage.init_db(engine)
    with storage.new_session(engine) as session:
        auth.ensure_admin(session, password=ADMIN_PASSWORD)
        auth.create_user(session, username="clin", name="Dr Clinician", password=PASSWORDS["clin"], role="clinician")
        auth.create_user(session, username="stud", name="A Student", password=PASSWORDS["stud"], role="student")
    yield settings
    st.cache_resource.clear()
    st.cache_data.clear()


def new_app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def login(username: str, password: str | None = None) -> AppTest:
    at = new_app().run()
    password = password or (ADMIN_PASSWORD if username == "admin" else PASSWORDS[username])
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click().run()
    assert not at.exception, at.exception
    at.run()  # the browser reruns once the cookie is set; AppTest needs it explicitly
    return at


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "header", "subheader", "markdown", "caption", "info", "warning", "error", "success") for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def open_page(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"pages/{page}.py").run()
    assert not at.exception, f"{page}: {at.exception}"
    return at


# --- Logged out -------------------------------------------------------------------------------


def test_visitor_sees_only_the_login_form_and_the_banner(app_env):
    at = new_app().run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert "not for diagnostic use" in at.warning[0].value
    for page in existing(ALL_PAGES):
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(f"pages/{page}.py")


@pytest.mark.parametrize("page", existing(ALL_PAGES))
def test_page_files_run_directly_refuse_a_visitor(app_env, page):
    """A page reached without the router (legacy pages/ mode) still refuses anyone not signed in."""
    at = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=TIMEOUT).run()
    assert not at.exception
    assert [e.value for e in at.error] == ["Please log in to open this page."]
    assert not at.dataframe and not at.file_uploader and not at.title


def test_wrong_password_and_disabled_user_are_refused(app_env):
    at = login("clin", "Wrong-pass-999")
    assert at.session_state["authentication_status"] is False
    assert any("incorrect" in e.value for e in at.error)
    with storage.new_session(storage.get_engine(app_env.resolved_database_url)) as session:
        auth.set_disabled(session, username="clin", disabled=True)
    at = login("clin")
    assert not at.session_state["authentication_status"]


# --- Roles ------------------------------------------------------------------------------------


@pytest.mark.parametrize("username", ["admin", "clin", "stud"])
def test_each_role_opens_exactly_its_pages(app_env, username):
    at = login(username)
    role = {"admin": "admin", "clin": "clinician", "stud": "student"}[username]
    for page in existing(ALL_PAGES):
        if auth.can_open(role, page):
            open_page(at, page)
            assert "not for diagnostic use" in at.warning[0].value, page
            assert not [e.value for e in at.error], f"{page}: {[e.value for e in at.error]}"
        else:
            with pytest.raises(ValueError):
                at.switch_page(f"pages/{page}.py")


def test_student_cannot_reach_patient_records_even_directly(app_env):
    at = login("stud")
    for page in PATIENT_PAGES:
        assert not auth.can_open("student", page)
    for page in existing(PATIENT_PAGES):
        with pytest.raises(ValueError):
            at.switch_page(f"pages/{page}.py")
        direct = AppTest.from_file(str(ROOT / "pages" / f"{page}.py"), default_timeout=TIMEOUT)
        for key in ("authentication_status", "username"):
            direct.session_state[key] = at.session_state[key]
        direct.run()
        assert [e.value for e in direct.error] == ["This page is not available to the 'student' role."], page
        assert not direct.dataframe and not direct.file_uploader


# --- Clinical flow ----------------------------------------------------------------------------


def analyse(at: AppTest, files: list[tuple[str, bytes, str]], patient_id: str = "P-0042") -> AppTest:
    open_page(at, "scan")
    at.text_input[0].input(patient_id)
    at.file_uploader[0].set_value(files)
    at.button[0].click().run()
    assert not at.exception, at.exception
    return at


def bomb_png() -> bytes:
    """A tiny file that claims 20000 x 20000 pixels (a decompression bomb)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (20_000, 20_000)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_scan_upload_shows_result_saves_it_and_refuses_bad_files(app_env):
    at = login("clin")
    at = analyse(
        at,
        [
            ("slice.png", ct_png(size=160), "image/png"),
            ("empty.png", b"", "image/png"),
            ("notes.png", b"these are not pixels" * 20, "image/png"),
            ("cut.png", ct_png(size=160)[:300], "image/png"),
            ("bomb.png", bomb_png(), "image/png"),
        ],
    )
    errors = [e.value for e in at.error]
    assert any("cut.png" in e and "truncated" in e for e in errors)
    assert any("bomb.png" in e and "too large" in e for e in errors)
    assert any("empty.png" in e and "empty" in e for e in errors)
    assert any("notes.png" in e and "not an image" in e for e in errors)
    assert any(s.value.startswith("Saved 1 scan to the history.") for s in at.success)
    assert [m.label for m in at.metric] == ["Predicted class"]
    assert at.metric[0].value in ("Adenocarcinoma", "Large cell carcinoma", "Squamous cell carcinoma", "Normal")
    assert len(at.get("plotly_chart")) == 2  # probabilities + heatmap pair
    with storage.new_session(storage.get_engine(app_env.resolved_database_url)) as session:
        scans = storage.list_scans(session)
    assert len(scans) == 1 and scans[0].patient_id == "P-0042" and scans[0].created_by == "clin"
    assert storage.scan_image_path(app_env, scans[0]).is_file()
    assert len([p for p in app_env.uploads_dir.rglob("*") if p.is_file()]) == 1  # nothing half-saved

    # Changing the heatmap settings re-renders without re-analysing or saving again.
    at.selectbox(key=f"scan_{scans[0].id}_method").set_value("Grad-CAM++").run()
    at.slider(key=f"scan_{scans[0].id}_opacity").set_value(0.8).run()
    assert not at.exception
    with storage.new_session(storage.get_engine(app_env.resolved_database_url)) as session:
        assert storage.count_scans(session) == 1


def test_blank_image_is_flagged_not_labelled(app_env):
    blank = np.full((128, 128), 40, dtype=np.uint8)
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(blank).save(buffer, format="PNG")
    at = analyse(login("clin"), [("blank.png", buffer.getvalue(), "image/png")])
    assert not at.metric  # no "Predicted class" finding
    assert any("Input check failed" in w.value for w in at.warning)

    # The History says the same: no class and no probability, and the result filter finds it as such.
    at = analyse(at, [("slice.png", ct_png(size=160), "image/png")])
    open_page(at, "history")
    table = at.dataframe[0].value.set_index("File")
    assert table.loc["blank.png", "Result"] == "input check failed — no finding"
    assert pd.isna(table.loc["blank.png", "Probability"]) and table.loc["slice.png", "Probability"] > 0
    at.multiselect[0].select(storage.NO_FINDING_RESULT).run()
    assert list(at.dataframe[0].value["File"]) == ["blank.png"]


def assert_note_kept(at, heading: str, note: str) -> None:
    """The saved scan keeps a note about its input: on the History page and in its PDF report."""
    open_page(at, "history")
    assert [w.value for w in at.warning if heading in w.value] == [note]
    [pdf_button] = [b for b in at.button if b.label == "Create PDF report"]
    pdf_button.click().run()
    _, pdf = at.session_state["history_pdf"]
    assert heading in pdf_text(pdf)


def test_loosely_framed_slice_is_analysed_cropped_to_the_body_with_a_note(app_env):
    import io

    from PIL import Image

    tight = Image.open(io.BytesIO(ct_png(size=160)))
    loose = Image.new("L", (320, 260))
    loose.paste(tight, (80, 50))  # the same slice with a wide black margin around it
    buffer = io.BytesIO()
    loose.save(buffer, format="PNG")
    at = analyse(login("clin"), [("loose.png", buffer.getvalue(), "image/png")])
    assert [m.label for m in at.metric] == ["Predicted class"]  # a note, not a refusal
    [advice] = [w.value for w in at.warning if "Framed unlike the training slices" in w.value]
    assert "analysed cropped to the body" in advice
    # "What the model saw" is the body, not the slice with its wide black margin.
    [pair] = [json.loads(c.proto.spec) for c in at.get("plotly_chart") if "What the model saw" in c.proto.spec]
    z = pair["data"][0]["z"]  # plotly's typed-array encoding
    seen = np.frombuffer(base64.b64decode(z["bdata"]), z["dtype"]).reshape([int(n) for n in z["shape"].split(",")])
    assert (seen < 10).mean() < (np.asarray(tight) < 10).mean() + 0.1 < (np.asarray(loose) < 10).mean()
    assert_note_kept(at, "Framed unlike the training slices", advice)
    at = analyse(login("clin"), [("tight.png", ct_png(size=160), "image/png")])
    assert not [w for w in at.warning if "Framed unlike" in w.value]


def test_slice_smaller_than_the_model_input_is_analysed_with_a_note(app_env):
    at = analyse(login("clin"), [("small.png", ct_png(size=48), "image/png")])  # the test model's input is 64 px
    assert [m.label for m in at.metric] == ["Predicted class"]  # a note, not a refusal
    [note] = [w.value for w in at.warning if "Smaller than the model's input" in w.value]
    assert "only 48 px on its short side" in note
    assert_note_kept(at, "Smaller than the model's input", note)
    at = analyse(login("clin"), [("large.png", ct_png(size=160), "image/png")])
    assert not [w for w in at.warning if "Smaller than" in w.value]


def test_history_shows_a_scan_whose_model_is_no_longer_installed(app_env):
    at = analyse(login("clin"), [("slice.png", ct_png(size=128), "image/png")])
    with storage.new_session(storage.get_engine(app_env.resolved_database_url)) as session:
        [scan] = storage.list_scans(session)
        scan.model_arch = "resnet50"  # analysed with a model this installation does not have
        session.add(scan)
        session.commit()
    open_page(at, "history")
    assert any("ResNet50 model is no longer installed, so no heatmap can be drawn" in i.value for i in at.info)
    assert [m.label for m in at.metric] == ["Predicted class"]


def test_intake_validation_blocks_analysis(app_env):
    at = analyse(login("clin"), [("slice.png", ct_png(), "image/png")], patient_id="John Smith")
    assert any("Please correct the intake form" in e.value for e in at.error)
    with storage.new_session(storage.get_engine(app_env.resolved_database_url)) as session:
        assert storage.count_scans(session) == 0


def test_history_detail_pdf_export_and_delete(app_env):
    at = analyse(login("clin"), [("a.png", ct_png(size=128), "image/png"), ("b.png", ct_png(size=140), "image/png")])
    assert at.dataframe  # results table for several files
    open_page(at, "history")
    assert len(at.dataframe[0].value) == 2
    assert {b.label for b in at.get("download_button")} >= {"Export CSV", "Export ZIP (with images)"}
    [pdf_button] = [b for b in at.button if b.label == "Create PDF report"]
    pdf_button.click().run()
    assert not at.exception
    assert any(b.label == "Download PDF" for b in at.get("download_button"))
    scan_id, pdf = at.session_state["history_pdf"]
    assert pdf.startswith(b"%PDF")

    at.text_input[0].input("P-9999").run()
    assert any("No saved scans" in i.value for i in at.info)
    at.text_input[0].input("").run()

    at.checkbox(key="history_confirm").check().run()
    [delete] = [b for b in at.button if b.label == "Delete scan"]
    delete.click().run()
    assert not at.exception
    assert any(f"Scan {scan_id} deleted." in s.value for s in at.success)
    with storage.new_session(storage.get_engine(app_env.resolved_database_url)) as session:
        assert storage.get_scan(session, scan_id=scan_id) is None and storage.count_scans(session) == 1


# --- Admin ------------------------------------------------------------------------------------


def test_admin_adds_a_user_who_can_then_sign_in(app_env):
    at = open_page(login("admin"), "admin")
    form_inputs = {t.label: t for t in at.text_input}
    form_inputs["Username"].input("newdoc")
    form_inputs["Full name"].input("New Doctor")
    form_inputs["Initial password"].input("Fresh-pass-123")
    form_inputs["Repeat password"].input("Fresh-pass-123")
    [add] = [b for b in at.button if b.label == "Add user"]
    add.click().run()
    assert not at.exception and not at.error
    assert "newdoc" in list(at.dataframe[0].value["Username"])
    assert login("newdoc", "Fresh-pass-123").session_state["authentication_status"] is True


def test_admin_disabling_a_user_ends_their_session(app_env):
    clinician = login("clin")
    with storage.new_session(storage.get_engine(app_env.resolved_database_url)) as session:
        auth.set_disabled(session, username="clin", disabled=True)
    clinician.run()
    assert not clinician.session_state["authentication_status"]
    assert any("no longer active" in i.value for i in clinician.info)


# --- Session ----------------------------------------------------------------------------------


def test_logout_ends_the_session_and_closes_the_pages(app_env):
    at = open_page(login("clin"), "history")
    at.button(key="lungscan_logout").click().run()
    assert not at.exception
    assert not at.session_state["authentication_status"]
    assert "username" not in at.session_state or at.session_state["username"] is None
    assert at.session_state["logout"] is True  # the library ignores the old cookie from now on
    assert any("You have logged out." in i.value for i in at.info)
    for page in existing(ALL_PAGES):
        with pytest.raises(ValueError):
            at.switch_page(f"pages/{page}.py")


def test_inactivity_logs_the_user_off(app_env):
    at = login("clin")
    at.session_state["_lungscan_last_activity"] = time.time() - 31 * 60
    at.run()
    assert not at.session_state["authentication_status"]
    assert any("30 minutes of inactivity" in i.value for i in at.info)


def test_activity_within_the_timeout_keeps_the_session(app_env):
    at = login("clin")
    at.session_state["_lungscan_last_activity"] = time.time() - 29 * 60
    at.run()
    assert at.session_state["authentication_status"] is True


def test_analytics_charts_the_saved_scans(app_env):
    at = analyse(login("clin"), [("a.png", ct_png(size=128), "image/png"), ("b.png", ct_png(size=150), "image/png")])
    open_page(at, "analytics")
    assert at.metric[0].label == "Scans" and at.metric[0].value == "2"
    assert len(at.get("plotly_chart")) >= 6
    at.segmented_control[0].set_value("D").run()
    assert not at.exception and len(at.get("plotly_chart")) >= 6


def test_dicom_upload_shows_window_presets_and_stores_no_identifiers(app_env):
    from test_dicom import IDENTIFYING, make_dicom

    import io

    from pydicom import dcmread

    good = make_dicom()
    without_pixels = dcmread(io.BytesIO(make_dicom()))
    del without_pixels.PixelData
    buffer = io.BytesIO()
    without_pixels.save_as(buffer, enforce_file_format=True)
    no_pixels = buffer.getvalue()
    at = analyse(login("clin"), [("slice.dcm", good, "application/dicom"), ("report.dcm", no_pixels, "application/dicom")])
    assert any("report.dcm" in e.value for e in at.error)
    captions = [img.caption for element in at.image for img in element.proto.imgs]
    assert any("Lung window (W1500 / L-600)" in c for c in captions)
    assert any("Mediastinal window" in c for c in captions) and any("Custom window" in c for c in captions)
    at.number_input(key="dicom_width").set_value(2000).run()
    assert not at.exception
    with storage.new_session(storage.get_engine(app_env.resolved_database_url)) as session:
        [scan] = storage.list_scans(session)
    assert scan.source_format == "dicom" and scan.image_path.endswith(".png")
    stored = b"".join(p.read_bytes() for p in app_env.data_dir.rglob("*") if p.is_file())
    for value in (str(v) for v in IDENTIFYING.values()):
        if len(value) >= 4:  # e.g. the patient's name, ID, birth date, institution
            assert value.encode() not in stored, value


def test_dicom_slice_in_its_field_of_view_is_analysed_cropped_to_the_body(app_env):
    from test_dicom import phantom_dicom

    at = analyse(login("clin"), [("chest.dcm", phantom_dicom(), "application/dicom")])
    [advice] = [w.value for w in at.warning if "Framed unlike the training slices" in w.value]
    assert "analysed cropped to the body" in advice


def test_screenshot_saved_as_dicom_is_shown_as_stored_without_ct_windows(app_env):
    import io

    from PIL import Image
    from test_dicom import make_dicom

    grey = np.asarray(Image.open(io.BytesIO(ct_png(size=128))).convert("L"))
    data = make_dicom(grey, slope=None, intercept=None, Modality="OT", identifying=False)
    at = analyse(login("clin"), [("capture.dcm", data, "application/dicom")])
    assert not at.exception and not at.error
    captions = [img.caption for element in at.image for img in element.proto.imgs]
    assert "DICOM slice as stored (modality OT)" in captions
    assert not any("Lung window" in c for c in captions)
    assert any("not Hounsfield units" in c.value for c in at.caption)


def test_first_run_creates_admin_with_a_generated_password_shown_once(tmp_path, monkeypatch, models_dir, caplog):
    monkeypatch.setenv("LUNGSCAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LUNGSCAN_MODELS_DIR", str(models_dir))
    monkeypatch.delenv("LUNGSCAN_ADMIN_PASSWORD", raising=False)
    monkeypatch.chdir(ROOT)
    st.cache_resource.clear()
    caplog.set_level("INFO")
    new_app().run()
    new_app().run()  # a second session in the same process
    announcements = [r.getMessage() for r in caplog.records if "generated password" in r.getMessage()]
    assert len(announcements) == 1
    password = announcements[0].split("generated password: ")[1].split()[0]
    st.cache_resource.clear()
    assert login("admin", password).session_state["authentication_status"] is True
    st.cache_resource.clear()
