"""Saved scans: filter, inspect, export (CSV, ZIP, PDF per scan) and delete."""

from datetime import date, timedelta

import pandas as pd
import streamlit as st
from PIL import Image

from lungscan import reports, storage
from lungscan.classes import CLASS_NAMES, NO_FINDING, display_name, result_label
from lungscan.errors import LungScanError
from lungscan.transforms import body_box, framing_warning, resolution_warning
from ui.frame import require_page
from ui.resources import available_checkpoints, get_engine, get_predictor, get_settings
from ui.widgets import heatmap_panel, model_title, prediction_summary

PDF_KEY = "history_pdf"

user = require_page("history")
settings = get_settings()
st.title("History")
notice = st.session_state.pop("history_notice", None)
if notice:
    (st.error if notice[0] == "error" else st.success)(notice[1])

c1, c2, c3 = st.columns([2, 2, 1])
today = date.today()
dates = c1.date_input("Analysed between", value=(today - timedelta(days=365), today), max_value=today + timedelta(days=1))
results = c2.multiselect(
    "Result",
    [*CLASS_NAMES, storage.NO_FINDING_RESULT],
    format_func=lambda r: NO_FINDING if r == storage.NO_FINDING_RESULT else display_name(r),
)
patient_id = c3.text_input("Patient ID")
date_from, date_to = (dates[0], dates[-1]) if isinstance(dates, (tuple, list)) and dates else (None, None)

with storage.new_session(get_engine()) as session:
    scans = storage.list_scans(
        session, date_from=date_from, date_to=date_to, result=results or None, patient_id=patient_id or None
    )

if not scans:
    st.info("No saved scans match these filters. Analysed scans appear here automatically.")
    st.stop()

table = pd.DataFrame(
    [
        {
            "Scan": scan.id,
            "Analysed": scan.created_at,
            "Patient ID": scan.patient_id,
            "Result": result_label(scan.predicted_class, doubted=scan.gate_flag is not None),
            "Probability": None if scan.gate_flag else scan.confidence,
            "Model": model_title(scan.model_arch),
            "By": scan.created_by,
            "File": scan.original_filename,
        }
        for scan in scans
    ]
)
st.dataframe(
    table,
    hide_index=True,
    width="stretch",
    column_config={
        "Analysed": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        "Probability": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1),
    },
)
e1, e2, _ = st.columns([1, 1, 3])
e1.download_button(
    "Export CSV", reports.scans_to_csv(scans), file_name="lungscan-scans.csv", mime="text/csv", icon=":material/table:"
)
e2.download_button(
    "Export ZIP (with images)",
    lambda: reports.scans_to_zip(scans, settings),
    file_name="lungscan-scans.zip",
    mime="application/zip",
    icon=":material/folder_zip:",
)

st.divider()
by_id = {scan.id: scan for scan in scans}
scan_id = st.selectbox(
    "Scan details",
    list(by_id),
    format_func=lambda i: f"Scan {i} · {by_id[i].patient_id} · {by_id[i].created_at:%Y-%m-%d %H:%M}",
    key="history_scan",
)
scan = by_id[scan_id]
st.subheader(f"Scan {scan.id} · patient {scan.patient_id}")

try:
    with Image.open(storage.scan_image_path(settings, scan)) as stored:
        image = stored.convert("L")
except (OSError, LungScanError) as exc:
    image = None
    st.warning(f"The stored image of scan {scan.id} cannot be read ({exc}).")

checkpoint = available_checkpoints().get(scan.model_arch)
model_problem = f"The {model_title(scan.model_arch)} model is no longer installed"
framing = resolution = None
if image is not None and checkpoint is not None:
    try:
        prep = get_predictor(checkpoint).prep
        box = body_box(image)
        framing, resolution = framing_warning(image, prep, box), resolution_warning(image, prep, box)
    except LungScanError as exc:
        model_problem = f"The {model_title(scan.model_arch)} model could not be loaded ({exc})"
        checkpoint = None
left, right = st.columns([2, 3])
with left:
    prediction_summary(
        label=scan.predicted_class,
        confidence=scan.confidence,
        probabilities=scan.probabilities,
        gate_ok=scan.gate_flag is None,
        gate_reason=scan.gate_flag,
        framing_warning=framing,
        resolution_warning=resolution,
        key=f"history_{scan.id}",
    )
    st.caption(f"Model: {model_title(scan.model_arch)} · version `{scan.model_version}`")
with right:
    st.markdown("**Patient history (as entered)**")
    st.dataframe(
        pd.DataFrame(reports.intake_summary(scan), columns=["Item", "Value"]), hide_index=True, width="stretch"
    )

heatmap = None
if image is not None and checkpoint is not None:
    heatmap = heatmap_panel(checkpoint, image, default_target=scan.predicted_class, key=f"history_{scan.id}")
elif image is not None:
    st.image(image, caption="Stored slice", width=360)
    st.info(f"{model_problem}, so no heatmap can be drawn.")

p1, p2, _ = st.columns([1, 1, 3])
if p1.button("Create PDF report", icon=":material/picture_as_pdf:"):
    try:
        st.session_state[PDF_KEY] = (
            scan.id,
            reports.scan_report_pdf(
                scan,
                image=heatmap.base if heatmap else image,
                overlay=heatmap.overlay if heatmap else None,
                cam_method=f"{heatmap.method} ({display_name(heatmap.target_class)})" if heatmap else "Grad-CAM",
                generated_by=user.username,
                framing_warning=framing,
                resolution_warning=resolution,
            ),
        )
    except LungScanError as exc:
        st.error(str(exc))
pdf = st.session_state.get(PDF_KEY)
if pdf and pdf[0] == scan.id:
    p2.download_button(
        "Download PDF", pdf[1], file_name=f"lungscan-scan-{scan.id}.pdf", mime="application/pdf", type="primary"
    )



def delete_scan(scan_id: int) -> None:
    """Runs before the next script run, so the confirmation box can be reset."""
    try:
        with storage.new_session(get_engine()) as session:
            storage.delete_scan(session, settings=settings, scan_id=scan_id)
    except LungScanError as exc:
        st.session_state["history_notice"] = ("error", str(exc))
    else:
        st.session_state["history_notice"] = ("success", f"Scan {scan_id} deleted.")
    st.session_state["history_confirm"] = False


with st.expander("Delete this scan"):
    confirmed = st.checkbox(
        f"I understand that scan {scan.id} and its image are deleted permanently.", key="history_confirm"
    )
    st.button(
        "Delete scan",
        type="primary",
        disabled=not confirmed,
        icon=":material/delete:",
        on_click=delete_scan,
        args=(scan.id,),
    )
