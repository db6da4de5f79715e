"""User management: add users, disable or re-enable them, reset passwords, assign roles (admins only)."""

import pandas as pd
import streamlit as st

from lungscan import auth, storage
from lungscan.errors import LungScanError
from ui.frame import ROLE_LABELS, require_page
from ui.resources import get_engine

NOTICE = "admin_notice"

me = require_page("admin")
st.title("Users")
if NOTICE in st.session_state:
    st.success(st.session_state.pop(NOTICE))

with storage.new_session(get_engine()) as session:
    users = storage.list_users(session)

st.dataframe(
    pd.DataFrame(
        [
            {
                "Username": u.username,
                "Name": u.name,
                "Email": u.email,
                "Role": ROLE_LABELS.get(u.role, u.role),
                "Active": not u.disabled,
                "Created": u.created_at,
            }
            for u in users
        ]
    ),
    hide_index=True,
    width="stretch",
    column_config={"Created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm")},
)

add_tab, manage_tab = st.tabs(["Add user", "Manage user"])

with add_tab, st.form("add_user", clear_on_submit=True):
    col1, col2 = st.columns(2)
    username = col1.text_input("Username", help="2-32 lower-case letters, digits, '.', '_' or '-'.")
    name = col2.text_input("Full name")
    email = col1.text_input("Email (optional)")
    role = col2.selectbox("Role", auth.ROLES, index=auth.ROLES.index("clinician"), format_func=ROLE_LABELS.get)
    password = col1.text_input("Initial password", type="password", help="At least 10 characters with a letter and a digit.")
    repeat = col2.text_input("Repeat password", type="password")
    if st.form_submit_button("Add user", type="primary"):
        if password != repeat:
            st.error("The two passwords differ.")
        else:
            try:
                with storage.new_session(get_engine()) as session:
                    created = auth.create_user(
                        session, username=username, name=name, email=email, password=password, role=role
                    )
            except LungScanError as exc:
                st.error(str(exc))
            else:
                st.session_state[NOTICE] = f"Added {ROLE_LABELS[created.role].lower()} '{created.username}'."
                st.rerun()

with manage_tab:
    target = st.selectbox("User", [u.username for u in users], key="admin_target")
    selected = next((u for u in users if u.username == target), None)
    if selected is not None:
        is_me = selected.username == me.username
        st.caption(
            f"{selected.name} · {ROLE_LABELS.get(selected.role, selected.role)} · "
            f"{'disabled' if selected.disabled else 'active'}"
        )
        col1, col2 = st.columns(2)
        with col1.form("assign_role"):
            new_role = st.selectbox(
                "Role", auth.ROLES, index=auth.ROLES.index(selected.role), format_func=ROLE_LABELS.get
            )
            if st.form_submit_button("Assign role"):
                try:
                    with storage.new_session(get_engine()) as session:
                        auth.set_role(session, username=selected.username, role=new_role)
                except LungScanError as exc:
                    st.error(str(exc))
                else:
                    st.session_state[NOTICE] = f"'{selected.username}' is now {ROLE_LABELS[new_role].lower()}."
                    st.rerun()
        with col2.form("reset_password", clear_on_submit=True):
            new_password = st.text_input("New password", type="password")
            if st.form_submit_button("Reset password"):
                try:
                    with storage.new_session(get_engine()) as session:
                        auth.set_password(session, username=selected.username, password=new_password)
                except LungScanError as exc:
                    st.error(str(exc))
                else:
                    st.success(f"Password of '{selected.username}' reset. Pass it on securely.")
        label = "Re-enable login" if selected.disabled else "Disable login"
        if st.button(label, disabled=is_me, help="You cannot disable your own account." if is_me else None):
            try:
                with storage.new_session(get_engine()) as session:
                    auth.set_disabled(session, username=selected.username, disabled=not selected.disabled)
            except LungScanError as exc:
                st.error(str(exc))
            else:
                state = "enabled" if selected.disabled else "disabled"
                st.session_state[NOTICE] = f"Login of '{selected.username}' {state}."
                st.rerun()
