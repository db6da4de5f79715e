"""The shared frame of every page: the intended-use banner and role checks.

`app.py` only lists the pages a role may open; `require_role` checks again inside
each page, so a page reached any other way still refuses the wrong user.
"""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

INTENDED_USE = (
    "**Research and education decision support — not for diagnostic use.** "
    "LungScan's outputs are not a diagnosis and must not guide patient care without review "
    "by a qualified clinician."
)

ROLES: tuple[str, ...] = ("admin", "clinician", "student")
ROLE_LABELS: dict[str, str] = {"admin": "Administrator", "clinician": "Clinician", "student": "Student"}
#: Roles that may see patient records (scans, history, treatment, assistant, analytics).
CLINICAL_ROLES: tuple[str, ...] = ("admin", "clinician")


@dataclass(frozen=True)
class SessionUser:
    """The signed-in user as the pages see it (no password hash, no ORM session attached)."""

    username: str
    name: str
    role: str


def disclaimer_banner() -> None:
    """Show the intended-use statement; every page carries it (app.py calls it once per run)."""
    st.warning(INTENDED_USE, icon=":material/info:")


def current_user() -> SessionUser | None:
    """The signed-in, enabled user, read fresh from the database; None when nobody is."""
    if not st.session_state.get("authentication_status"):
        return None
    username = st.session_state.get("username")
    if not username:
        return None
    from lungscan import auth, storage

    from .resources import get_engine

    with storage.new_session(get_engine()) as session:
        user = auth.active_user(session, username=username)
    if user is None:
        return None
    return SessionUser(username=user.username, name=user.name or user.username, role=user.role)


def require_page(page: str) -> SessionUser:
    """Return the signed-in user if their role may open `page` (a key of lungscan.auth.PAGES); else stop."""
    from lungscan import auth

    return require_role(*(role for role in auth.ROLES if auth.can_open(role, page)))


def require_role(*roles: str) -> SessionUser:
    """Return the signed-in user if they hold one of `roles`; otherwise explain and stop the page."""
    user = current_user()
    if user is None:
        st.error("Please log in to open this page.")
        st.stop()
    if user.role not in roles:
        st.error(f"This page is not available to the '{user.role}' role.")
        st.stop()
    return user
