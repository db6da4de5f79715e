"""LungScan: the router and the frame every page shares.

Run with ``streamlit run app.py``. Each run: page config, sign-in state (cookie,
inactivity, disabled accounts), the intended-use banner, and a navigation holding
only the pages the signed-in role may open. A visitor who is not signed in gets the
login page and nothing else.
"""

from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import streamlit as st
import streamlit_authenticator as stauth

from lungscan import auth
from lungscan.errors import LungScanError
from ui import session
from ui.frame import ROLE_LABELS, SessionUser, current_user, disclaimer_banner
from ui.resources import get_engine, get_settings

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("lungscan.app")
APP_DIR = Path(__file__).resolve().parent

st.set_page_config(
    page_title="LungScan",
    page_icon=":material/pulmonology:",
    layout="wide",
    menu_items={"About": "LungScan: research and education decision support for lung CT slices. Not for diagnostic use."},
)

# Page key (pages/<key>.py), title, icon, URL path. Who may open which page is lungscan.auth.PERMISSIONS.
# URL paths differ from the file names on purpose: Streamlit's legacy pages/ folder mode (active
# only until the first st.navigation call of a process) maps file names to URLs, and a URL it
# cannot match always falls through to this router. Each page also checks the role itself.
SECTIONS: dict[str, list[tuple[str, str, str, str]]] = {
    "Clinical": [
        ("scan", "Analyse scan", ":material/upload_file:", "analyse"),
        ("history", "History", ":material/history:", "scan-history"),
        ("treatment", "Treatment options", ":material/medication:", "treatment-options"),
        ("assistant", "Assistant", ":material/forum:", "clinical-assistant"),
        ("analytics", "Analytics", ":material/monitoring:", "scan-analytics"),
    ],
    "Learning": [
        ("models", "Model comparison", ":material/compare:", "model-comparison"),
        ("gallery", "Demo gallery", ":material/photo_library:", "demo-gallery"),
        ("about", "About & model card", ":material/info:", "about-lungscan"),
    ],
    "Administration": [
        ("admin", "Users", ":material/manage_accounts:", "user-admin"),
    ],
}


def _page_exists(key: str) -> bool:
    if (APP_DIR / "pages" / f"{key}.py").is_file():
        return True
    log.warning("Page file pages/%s.py is missing; it is left out of the navigation.", key)
    return False


def pages_for(role: str) -> dict[str, list[st.Page]]:
    """The navigation sections a role sees."""
    sections: dict[str, list[st.Page]] = {}
    for section, entries in SECTIONS.items():
        allowed = [
            st.Page(f"pages/{key}.py", title=title, icon=icon, url_path=url_path)
            for key, title, icon, url_path in entries
            if auth.can_open(role, key) and _page_exists(key)
        ]
        if allowed:
            sections[section] = allowed
    return sections


def login_page(authenticator: stauth.Authenticate) -> None:
    """The only page a visitor who is not signed in can open."""
    st.title("LungScan")
    st.caption("Lung CT slice classification with explanations, for research and education.")
    notice = session.logout_notice()
    if notice:
        st.info(notice)
    was_signed_in = session.is_authenticated()
    authenticator.login(location="main", key="lungscan_login", fields={"Form name": "Log in", "Login": "Log in"})
    status = st.session_state.get("authentication_status")
    if status and not was_signed_in:
        session.mark_signed_in()
        st.success(f"Signed in as {st.session_state.get('name')}. Opening LungScan…")
        st.button("Continue", type="primary")
    elif status is False:
        st.error("Username or password is incorrect, or the account is disabled.")


def sidebar(user: SessionUser) -> None:
    with st.sidebar:
        st.markdown(f"**{user.name}**  \n{ROLE_LABELS[user.role]} · `{user.username}`")
        session.logout_button()


settings = get_settings()
try:
    get_engine()  # migrate the database and create the admin account before anyone signs in
except LungScanError as exc:
    log.error("LungScan cannot start: %s", exc)
    st.error(f"LungScan cannot start: {exc}")
    st.stop()
authenticator = session.build_authenticator(settings)
session.refuse_revoked_cookie(authenticator, settings)
session.sign_in_from_cookie(authenticator)

user = current_user()
session.enforce_session_rules(settings, user_valid=user is not None)
if not session.is_authenticated():
    user = None
session.render_cookie_cleanup(authenticator)

disclaimer_banner()
if user is None:
    navigation = st.navigation([st.Page(partial(login_page, authenticator), title="Log in", icon=":material/login:", url_path="login")])
else:
    navigation = st.navigation(pages_for(user.role))
    sidebar(user)
navigation.run()
