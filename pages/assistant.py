"""A lung-cancer health assistant: streaming Gemini answers, or quoted offline knowledge-base passages."""

import uuid

import streamlit as st

from lungscan import storage
from lungscan.classes import result_label
from lungscan.llm import assistant
from lungscan.llm.deidentify import case_summary
from lungscan.llm.gemini import ChatTurn
from ui.frame import require_page
from ui.resources import get_engine, get_gemini_client

CONVERSATION = "assistant_conversation"

user = require_page("assistant")
client = get_gemini_client()
st.title("Assistant")
st.caption(
    "Questions about lung cancer: symptoms, risk factors and screening, diagnosis and staging, treatments and living "
    "with treatment. It does not diagnose, give doses, or replace the care team."
)
if client is None:
    st.info(
        "Gemini is not configured: answers quote LungScan's offline knowledge base with their sources.",
        icon=":material/cloud_off:",
    )


def render_sources(sources: list | None) -> None:
    if not sources:
        return
    with st.expander("Sources"):
        for entry in sources:
            links = "; ".join(f"[{s['name']}]({s['url']})" for s in entry.get("sources", []))
            st.markdown(f"- **{entry.get('title', '')}**: {links}")


with storage.new_session(get_engine()) as session:
    conversations = storage.list_conversations(session, username=user.username)
    scans = {scan.id: scan for scan in storage.list_scans(session, limit=200)}
if CONVERSATION not in st.session_state:
    st.session_state[CONVERSATION] = conversations[0] if conversations else uuid.uuid4().hex
conversation_id = st.session_state[CONVERSATION]

left, middle, right = st.columns([3, 1, 1], vertical_alignment="bottom")
scan_id = left.selectbox(
    "Scan context (optional)",
    [None, *scans],
    format_func=lambda i: "None" if i is None else (
        f"#{i} · {scans[i].patient_id} · "
        f"{result_label(scans[i].predicted_class, doubted=bool(scans[i].gate_flag), confidence=scans[i].confidence)}"
    ),
    help="Adds the scan's de-identified summary to your questions (never the patient ID, dates or notes).",
)
if middle.button("New chat", icon=":material/add_comment:", width="stretch"):
    st.session_state[CONVERSATION] = uuid.uuid4().hex
    st.rerun()
if right.button("Clear chat", icon=":material/delete:", width="stretch"):
    with storage.new_session(get_engine()) as session:
        storage.clear_conversation(session, username=user.username, conversation_id=conversation_id)
    st.rerun()
scan_context = case_summary(scans[scan_id]) if scan_id is not None else None
if scan_context:
    with st.expander("Context sent with your questions"):
        st.code(scan_context, language=None, wrap_lines=True)

with storage.new_session(get_engine()) as session:
    messages = storage.list_chat_messages(session, username=user.username, conversation_id=conversation_id)
for message in messages:
    with st.chat_message(message.role):
        st.markdown(message.content)
        render_sources(message.sources)

question = st.chat_input("Ask about lung cancer…", max_chars=assistant.MAX_QUESTION_CHARS)
if question:
    history = [ChatTurn(role=m.role, content=m.content) for m in messages]
    with storage.new_session(get_engine()) as session:
        storage.add_chat_message(
            session, username=user.username, conversation_id=conversation_id, role="user", content=question,
            scan_id=scan_id,
        )
    with st.chat_message("user"):
        st.markdown(question)
    with st.chat_message("assistant"):
        reply = assistant.answer(question, history, scan_context, client)
        st.write_stream(reply)
        render_sources(reply.sources)
    with storage.new_session(get_engine()) as session:
        storage.add_chat_message(
            session, username=user.username, conversation_id=conversation_id, role="assistant",
            content=reply.text, sources=reply.sources or None, scan_id=scan_id,
        )
