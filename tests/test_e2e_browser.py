"""End to end in a real browser: `streamlit run app.py` driven by Playwright in headless Chromium.

Flow: log in as admin, create a clinician, log out, log in as the clinician, upload a CT
slice, see the class and the heatmap, find the scan in the history, download its PDF,
log out, and check that the pages (and the login cookie) are gone. A screenshot and the
server log go to test-artifacts/ on failure.

Needs Debian's chromium at /usr/bin/chromium (CI installs it); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
DATASET_TEST_SPLIT = ROOT.parent / "shared" / "data" / "chest-ct" / "test"
ADMIN_PASSWORD = "Root-pass-123"
CLINICIAN = ("drlee", "Dr Lee", "Careful-pass-42")
PATIENT_ID = "P-E2E-001"
TIMEOUT_MS = 90_000

pytestmark = [
    pytest.mark.timeout(600),
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed at /usr/bin/chromium"),
]
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ct_slice(tmp_path: Path) -> Path:
    """A real slice from the public test split when present, else a synthetic CT-like slice."""
    if DATASET_TEST_SPLIT.is_dir():
        candidates = sorted(p for p in DATASET_TEST_SPLIT.glob("*/*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        if candidates:
            return candidates[0]
    sys.path.insert(0, str(Path(__file__).parent))
    from test_analysis import ct_png

    path = tmp_path / "synthetic-slice.png"
    path.write_bytes(ct_png(size=320))
    return path


def models_dir(tmp_path: Path) -> Path:
    """The committed default model when present, else a tiny untrained checkpoint."""
    committed = ROOT / "models"
    default = committed / "default.txt"
    if default.is_file() and (committed / default.read_text().strip() / "checkpoint.pt").is_file():
        return committed
    sys.path.insert(0, str(Path(__file__).parent))
    from tiny_models import write_tiny_checkpoint

    write_tiny_checkpoint(tmp_path / "models", "mobilenet_v2", input_size=96)
    return tmp_path / "models"


@pytest.fixture
def server(tmp_path):
    port = free_port()
    log_path = tmp_path / "streamlit.log"
    env = os.environ | {
        "LUNGSCAN_DATA_DIR": str(tmp_path / "data"),
        "LUNGSCAN_MODELS_DIR": str(models_dir(tmp_path)),
        "LUNGSCAN_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "LUNGSCAN_COOKIE_KEY": "e2e-test-cookie-key-" + "x" * 32,
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
    }
    env.pop("GEMINI_API_KEY", None)
    command = [
        sys.executable, "-m", "streamlit", "run", "app.py",
        "--server.port", str(port), "--server.address", "127.0.0.1", "--server.headless", "true",
    ]
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.read() == b"ok":
                        break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"Streamlit did not start:\n{log_path.read_text()}")
            time.sleep(0.5)
        yield url, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def settle(page) -> None:
    """Wait until the app is idle.

    The hidden cookie component (streamlit-authenticator) reports to the server a moment
    after it loads, which reruns the script; a form submitted in that moment is lost to
    the interrupted run. People type slower than that; a test has to wait for it.
    """
    page.locator("iframe").first.wait_for(state="attached")
    page.wait_for_timeout(1500)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")


def sidebar_nav(page):
    return page.locator('[data-testid="stSidebarNav"]')


def log_in(page, username: str, password: str) -> None:
    settle(page)
    page.get_by_label("Username", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("button", name="Log out").wait_for(timeout=TIMEOUT_MS)


def log_out(page) -> None:
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("Username", exact=True).first.wait_for(timeout=TIMEOUT_MS)
    # While the cookie component's rerun is in flight Streamlit can show the stale notice beside the new one;
    # once the app is idle there must be exactly one.
    page.get_by_text("You have logged out.").first.wait_for(timeout=TIMEOUT_MS)
    settle(page)
    assert page.get_by_text("You have logged out.").count() == 1


def open_page(page, title: str) -> None:
    sidebar_nav(page).get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).first.wait_for(timeout=TIMEOUT_MS)
    settle(page)


def test_full_clinical_flow_in_chromium(server, tmp_path):
    url, log_path = server
    slice_path = ct_slice(tmp_path)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run",
            ],
        )
        context = browser.new_context(accept_downloads=True, viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        try:
            page.goto(url)
            page.get_by_text("not for diagnostic use").first.wait_for()
            assert not sidebar_nav(page).is_visible()

            # Admin creates a clinician.
            log_in(page, "admin", ADMIN_PASSWORD)
            open_page(page, "Users")
            username, name, password = CLINICIAN
            page.get_by_label("Username", exact=True).fill(username)
            page.get_by_label("Full name", exact=True).fill(name)
            page.get_by_label("Initial password", exact=True).fill(password)
            page.get_by_label("Repeat password", exact=True).fill(password)
            page.get_by_role("button", name="Add user").click()
            page.get_by_text(f"Added clinician '{username}'.").wait_for()
            log_out(page)

            # The clinician analyses a slice.
            log_in(page, username, password)
            assert not sidebar_nav(page).get_by_text("Users", exact=True).is_visible()
            open_page(page, "Analyse scan")
            page.get_by_label("Patient ID *", exact=True).fill(PATIENT_ID)
            page.locator('input[type="file"]').set_input_files(str(slice_path))
            page.get_by_text(slice_path.name).first.wait_for()
            page.get_by_role("button", name="Analyse").click()
            page.get_by_text("Saved 1 scan to the history. Open the form above to analyse more.").wait_for()
            finding = page.get_by_text("Predicted class")
            gate = page.get_by_text("Input check failed")
            finding.or_(gate).first.wait_for()
            if DATASET_TEST_SPLIT.is_dir() or finding.count():
                assert finding.count() >= 1, "a dataset slice should get a class, not a gate refusal"
            page.get_by_text("What the model saw").first.wait_for()  # the heatmap figure
            assert page.locator(".js-plotly-plot").count() >= 2
            page.locator(".js-plotly-plot").last.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "e2e-scan-heatmap.png"))  # for a human look

            # It is in the history, with a PDF report.
            open_page(page, "History")
            page.get_by_role("heading", name=f"Scan 1 · patient {PATIENT_ID}").wait_for()
            page.get_by_role("button", name="Create PDF report").click()
            with page.expect_download() as download_info:
                page.get_by_role("button", name="Download PDF").click()
            pdf = Path(download_info.value.path()).read_bytes()
            assert pdf.startswith(b"%PDF")

            # Logging out closes every page, and a reload does not sign back in.
            log_out(page)
            assert not sidebar_nav(page).is_visible()
            page.wait_for_timeout(1500)  # let the hidden cookie component finish
            assert not [c for c in context.cookies() if c["name"] == "lungscan_auth"]
            page.goto(f"{url}/scan-history")
            page.get_by_label("Username", exact=True).first.wait_for()
            assert not page.get_by_text(PATIENT_ID).count()
            page.reload()
            page.get_by_label("Username", exact=True).first.wait_for()
            assert not page.get_by_role("button", name="Log out").count()
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "e2e-failure.png"), full_page=True)
            shutil.copy(log_path, ARTIFACTS / "e2e-streamlit.log")
            raise
        finally:
            context.close()
            browser.close()
