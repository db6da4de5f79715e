"""Signing in and out: streamlit-authenticator wired to the SQLite users, plus session hygiene.

streamlit-authenticator 0.4.2 keeps the login in ``st.session_state``
(``authentication_status``, ``username``, ``name``, ``roles``) and a signed JWT
re-authentication cookie, read server-side from ``st.context.cookies`` and
written/deleted in the browser by a hidden ``extra_streamlit_components`` iframe.
Two consequences shape this module:

* ``st.context.cookies`` is a snapshot taken when the browser session opened, so
  after a logout the old cookie is still visible to this session. The library's
  ``logout`` flag in session state makes it ignore the cookie; `end_session` keeps
  that flag when it wipes everything else.
* The browser only deletes (or sets) the cookie once the hidden iframe has rendered,
  so the delete is rendered in the run after the logout, never cut short by a rerun.

On top of the library: logouts are remembered per user for the life of the process,
so a cookie issued before a logout no longer signs anyone in (other tabs included);
the cookie lives no longer than one inactivity period; and a user who is idle for
``Settings.session_timeout_minutes`` is logged off on their next interaction.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

import streamlit as st
import streamlit_authenticator as stauth

from lungscan import auth, storage
from lungscan.config import Settings

from .resources import get_engine, logout_registry

log = logging.getLogger(__name__)

_LAST_ACTIVITY = "_lungscan_last_activity"
_SIGNED_IN_AT = "_lungscan_signed_in_at"
_DELETE_COOKIE = "_lungscan_delete_cookie"
_NOTICE = "_lungscan_notice"
#: streamlit-authenticator's own flag: while True it ignores the re-authentication cookie.
_LIBRARY_LOGOUT_FLAG = "logout"


def is_authenticated() -> bool:
    return bool(st.session_state.get("authentication_status"))


def build_authenticator(settings: Settings) -> stauth.Authenticate:
    """A fresh authenticator for this run, with the credentials as the database holds them now.

    Built every run (it renders the cookie reader and must see disabled users and new
    passwords at once); only enabled users are in the credentials.
    """
    with storage.new_session(get_engine()) as session:
        credentials = auth.credentials_for_authenticator(session)
    return stauth.Authenticate(
        credentials,
        cookie_name=settings.cookie_name,
        cookie_key=auth.cookie_key(settings),
        # The re-authentication cookie outlives no inactivity period.
        cookie_expiry_days=settings.session_timeout_minutes / (24 * 60),
        auto_hash=False,
        login_sleep_time=0,
    )


def _cookie_issued_at(token: dict, settings: Settings) -> float:
    return float(token["exp_date"]) - timedelta(minutes=settings.session_timeout_minutes).total_seconds()


def refuse_revoked_cookie(authenticator: stauth.Authenticate, settings: Settings) -> None:
    """Ignore a re-authentication cookie issued before its user's last logout (or for nobody)."""
    if is_authenticated() or st.session_state.get(_LIBRARY_LOGOUT_FLAG):
        return
    token = authenticator.cookie_controller.get_cookie()
    if not token:
        return
    logged_out_at = logout_registry().get(str(token.get("username", "")).lower())
    if logged_out_at is not None and _cookie_issued_at(token, settings) <= logged_out_at:
        log.info("Ignoring a re-authentication cookie issued before %s logged out", token.get("username"))
        st.session_state[_LIBRARY_LOGOUT_FLAG] = True
        st.session_state[_DELETE_COOKIE] = True


def sign_in_from_cookie(authenticator: stauth.Authenticate) -> None:
    """Sign in with a valid re-authentication cookie, rendering nothing (no form)."""
    if is_authenticated():
        return
    try:
        authenticator.login(location="unrendered")
    except stauth.LoginError as exc:  # the cookie names a user who is gone or disabled
        log.info("Re-authentication cookie refused: %s", exc)
        st.session_state[_LIBRARY_LOGOUT_FLAG] = True
        st.session_state[_DELETE_COOKIE] = True
        return
    if is_authenticated():
        mark_signed_in()


def render_cookie_cleanup(authenticator: stauth.Authenticate) -> None:
    """Render the cookie deletion requested by the previous run's logout (once)."""
    if st.session_state.pop(_DELETE_COOKIE, False):
        authenticator.cookie_controller.delete_cookie()


def end_session(reason: str) -> None:
    """Log the user off for real: wipe session state, refuse the cookie, delete it in the browser.

    Safe inside widget callbacks (that is where the logout button calls it).
    """
    username = st.session_state.get("username")
    if username:
        logout_registry()[str(username).lower()] = time.time()
        log.info("User %s logged off (%s)", username, reason)
    for key in list(st.session_state.keys()):
        del st.session_state[key]
    st.session_state["authentication_status"] = None
    st.session_state[_LIBRARY_LOGOUT_FLAG] = True
    st.session_state[_DELETE_COOKIE] = True
    st.session_state[_NOTICE] = reason


def enforce_session_rules(settings: Settings, *, user_valid: bool) -> None:
    """End the session when the user is disabled, was logged out elsewhere, or was idle too long.

    Every script run is an interaction, so a run counts as activity.
    """
    if not is_authenticated():
        return
    now = time.time()
    username = str(st.session_state.get("username") or "").lower()
    signed_in_at = st.session_state.setdefault(_SIGNED_IN_AT, now)
    last = st.session_state.get(_LAST_ACTIVITY)
    if not user_valid:
        end_session("Your account is no longer active. Please contact an administrator.")
    elif logout_registry().get(username, 0.0) > signed_in_at:
        end_session("You were logged out (this account logged out in another window).")
    elif last is not None and now - last > settings.session_timeout_minutes * 60:
        end_session(f"You were logged out after {settings.session_timeout_minutes} minutes of inactivity.")
    else:
        st.session_state[_LAST_ACTIVITY] = now


def mark_signed_in() -> None:
    """Record the start of a fresh sign-in (activity clock and logout-elsewhere check start here)."""
    now = time.time()
    st.session_state[_SIGNED_IN_AT] = now
    st.session_state[_LAST_ACTIVITY] = now
    st.session_state.pop(_NOTICE, None)


def logout_notice() -> str | None:
    """The message left by the last logout (timeout, disabled account) for the login page.

    It stays until the next sign-in, so the reruns that the cookie component triggers
    after a logout do not wipe it before the user has read it.
    """
    return st.session_state.get(_NOTICE)


def logout_button(location: str = "sidebar") -> None:
    """A button that ends the session; the cookie is deleted on the next run."""
    container = st.sidebar if location == "sidebar" else st
    container.button(
        "Log out",
        key="lungscan_logout",
        icon=":material/logout:",
        on_click=end_session,
        args=("You have logged out.",),
        width="stretch",
    )
