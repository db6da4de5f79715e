"""Treatment-plan outlines for a saved scan: Gemini when configured, the offline guideline summary otherwise."""

import streamlit as st

from lungscan import reports, storage
from lungscan.classes import result_label
from lungscan.errors import LungScanError
from lungscan.llm import treatment
from lungscan.llm.deidentify import normalise_stage
from lungscan.storage import Scan
from ui.frame import require_page
from ui.resources import get_engine, get_gemini_client

NOTICE = "treatment_notice"


def show_plans(scan: Scan) -> None:
    """The plans saved for a scan, newest first, each with its PDF and Markdown export."""
    with storage.new_session(get_engine()) as session:
        plans = storage.list_treatment_plans(session, scan_id=scan.id)
    if not plans:
        st.caption("No plan saved for this scan yet.")
        return
    for number, plan in enumerate(plans):
        heading = treatment.plan_heading(plan.source, plan.model_name)
        title = f"{heading} · {plan.created_at:%Y-%m-%d %H:%M} UTC · by {plan.created_by} · {plan.prompt_version}"
        with st.expander(title, expanded=number == 0):
            for section, body in plan.content.items():
                st.markdown(f"**{section}**")
                st.markdown(body if isinstance(body, str) else "\n".join(f"- {item}" for item in body))
            meta = {
                "patient_id": scan.patient_id,
                "scan_id": scan.id,
                "predicted_class": scan.predicted_class,
                "stage": treatment.stage_used(plan.request_text) or "",
                "source": plan.source,
                "model_name": plan.model_name,
                "prompt_version": plan.prompt_version,
                "created_at": plan.created_at,
                "created_by": plan.created_by,
            }
            left, right = st.columns(2)
            try:
                left.download_button(
                    "PDF", reports.treatment_plan_pdf(plan.content, meta), file_name=f"treatment-plan-{plan.id}.pdf",
                    mime="application/pdf", icon=":material/picture_as_pdf:", key=f"pdf_{plan.id}",
                )
            except LungScanError as exc:
                left.error(f"PDF export failed: {exc}")
            right.download_button(
                "Markdown", reports.treatment_plan_markdown(plan.content, meta),
                file_name=f"treatment-plan-{plan.id}.md", mime="text/markdown", icon=":material/description:",
                key=f"md_{plan.id}",
            )


user = require_page("treatment")
client = get_gemini_client()
st.title("Treatment options")
if client is None:
    st.info(
        "Gemini is not configured (no `GEMINI_API_KEY`): LungScan writes an **offline guideline summary** from its "
        "curated knowledge base. Nothing leaves this machine.",
        icon=":material/cloud_off:",
    )
else:
    st.caption(f"Gemini model `{client.model}`. Only the de-identified text below is sent, and only when you click.")

with storage.new_session(get_engine()) as session:
    scans = {scan.id: scan for scan in storage.list_scans(session, limit=500)}
if not scans:
    st.info("No scans yet. Analyse a scan first; it will then appear here.")
    st.stop()

requested = st.query_params.get("scan")
ids = list(scans)
scan_id = st.selectbox(
    "Scan",
    ids,
    index=ids.index(int(requested)) if requested and requested.isdigit() and int(requested) in scans else 0,
    format_func=lambda i: (
        f"#{i} · {scans[i].created_at:%Y-%m-%d %H:%M} · {scans[i].patient_id} · "
        f"{result_label(scans[i].predicted_class, doubted=bool(scans[i].gate_flag), confidence=scans[i].confidence)}"
    ),
)
scan = scans[scan_id]
if scan.gate_flag:
    st.warning(
        f"**Scan #{scan.id} failed the input check**, so LungScan reports no finding for it and writes no treatment "
        f"outline. {scan.gate_flag} Analyse a chest CT slice of this patient instead.",
        icon=":material/warning:",
    )
    show_plans(scan)
    st.stop()

stage = st.text_input(
    "Stage (optional)",
    value=scan.stage or "",
    max_chars=32,
    key=f"stage_{scan_id}",
    help="Clinician-entered stage group (e.g. IIIA) or TNM (e.g. T2aN0M0). Never inferred by the model.",
).strip()
if stage and normalise_stage(stage) is None:
    st.warning("This stage is not in a recognised format (e.g. IIIA or T2aN0M0), so it will not be used.")

request = treatment.treatment_request(scan, stage=stage or None)
sent_label = "Exactly what will be sent to Gemini" if client else "The de-identified request (not sent: offline)"
with st.expander(sent_label, expanded=client is not None):
    st.caption("De-identified: age band, sex, model output, stage, smoking, symptoms, exposures, comorbidities. "
               "No patient ID, names, dates, places, free-text notes or image.")
    st.code(request.text, language=None, wrap_lines=True)

label = "Send to Gemini" if client is not None else "Generate offline summary"
if st.button(label, type="primary", icon=":material/send:"):
    with st.spinner("Writing the plan outline…"):
        result = treatment.plan_treatment(scan, client=client, stage=stage or None, request=request)
        try:
            with storage.new_session(get_engine()) as session:
                storage.create_treatment_plan(
                    session,
                    scan_id=scan.id,
                    created_by=user.username,
                    source=result.source,
                    content=result.content(),
                    model_name=result.model_name,
                    prompt_version=result.prompt_version,
                    request_text=result.request_text,
                )
        except LungScanError as exc:
            st.error(f"The plan could not be saved: {exc}")
    if client is not None:  # without a key the info box above already says this is offline
        st.session_state[NOTICE] = (scan.id, result.notice)

notice_scan, notice = st.session_state.get(NOTICE, (None, None))
if notice and notice_scan == scan.id:
    st.warning(notice, icon=":material/warning:")
show_plans(scan)
