"""Upload CT slices with the patient's history, classify them, explain the answer, save to history."""

import logging
from pathlib import Path

import pandas as pd
import streamlit as st

from lungscan import analysis, storage
from lungscan.classes import result_label
from lungscan.dicom import WINDOWS
from lungscan.errors import DicomError, LungScanError
from ui.frame import require_page
from ui.resources import available_checkpoints, get_engine, get_predictor, get_settings
from ui.widgets import heatmap_panel, model_title, prediction_summary

BATCH = "scan_batch"
log = logging.getLogger("lungscan.pages.scan")

user = require_page("scan")
settings = get_settings()
st.title("Analyse scan")

checkpoints = available_checkpoints()
if not checkpoints:
    st.error(
        f"No trained model is installed in {settings.models_dir}. Train one (see README, 'Training') "
        "or restore the committed default model."
    )
    st.stop()

arch = st.selectbox(
    "Model",
    list(checkpoints),
    format_func=lambda a: model_title(a) + (" (default)" if a == next(iter(checkpoints)) else ""),
    help="Architectures with a trained checkpoint in the models folder; the default model is preselected.",
)
checkpoint = checkpoints[arch]

with st.expander(
    "Patient and CT slices", expanded=not st.session_state.get(BATCH), icon=":material/person:"
), st.form("scan_form"):
    st.subheader("Patient")
    st.caption("Use a pseudonymous patient ID (e.g. P-0042), never a name. The intake applies to every file below.")
    c1, c2, c3 = st.columns(3)
    patient_id = c1.text_input("Patient ID *", max_chars=64)
    age = c2.number_input("Age", min_value=0, max_value=120, value=None, step=1)
    sex = c3.selectbox("Sex", [None, *storage.SEXES], format_func=lambda s: "—" if s is None else s.capitalize())

    st.subheader("Smoking")
    c1, c2, c3, c4 = st.columns(4)
    smoking_status = c1.selectbox(
        "Status", storage.SMOKING_STATUSES, index=storage.SMOKING_STATUSES.index("unknown"), format_func=str.capitalize
    )
    smoking_years = c2.number_input("Years smoked", min_value=0, max_value=100, value=None, step=1)
    cigarettes_per_day = c3.number_input("Cigarettes per day", min_value=0, max_value=200, value=None, step=1)
    quit_date = c4.date_input("Quit date", value=None, help="Former smokers only.")
    passive_smoking = st.checkbox("Passive smoking exposure")

    st.subheader("History and exposures")
    c1, c2 = st.columns(2)
    previous_lung_disease = c1.text_input("Previous lung disease", placeholder="e.g. COPD, tuberculosis")
    previous_infections = c2.text_input("Previous infections", placeholder="e.g. recurrent pneumonia")
    chronic_cough = c1.checkbox("Chronic cough")
    cough_duration_weeks = c2.number_input("Cough duration (weeks)", min_value=0, max_value=1000, value=None, step=1)
    occupational_exposure = c1.checkbox("Occupational exposure (asbestos, radon, silica, diesel …)")
    occupational_details = c2.text_input("Occupational details")
    air_pollution_exposure = c1.checkbox("Long-term air pollution exposure")
    comorbidities = c2.text_input("Comorbidities")

    st.subheader("Symptoms")
    s1, s2, s3, s4, s5 = st.columns(5)
    shortness_of_breath = s1.checkbox("Shortness of breath")
    chest_pain = s2.checkbox("Chest pain")
    weight_loss = s3.checkbox("Weight loss")
    fatigue = s4.checkbox("Fatigue")
    sputum = s5.checkbox("Sputum")
    c1, c2 = st.columns([1, 3])
    stage = c1.text_input("Stage (if known)", max_chars=32, help="Clinician-entered, e.g. IIIA or T2N0M0.")
    notes = c2.text_area("Notes", height=68)

    st.subheader("CT slices")
    uploads = st.file_uploader(
        "PNG, JPEG or DICOM (one slice per file)",
        type=list(analysis.UPLOAD_TYPES),
        accept_multiple_files=True,
    )
    submitted = st.form_submit_button("Analyse", type="primary")

if submitted:
    try:
        intake = analysis.build_intake(
            {
                "patient_id": patient_id,
                "age": age,
                "sex": sex,
                "smoking_status": smoking_status,
                "smoking_years": smoking_years,
                "cigarettes_per_day": cigarettes_per_day,
                "passive_smoking": passive_smoking,
                "quit_date": quit_date,
                "previous_lung_disease": previous_lung_disease,
                "previous_infections": previous_infections,
                "chronic_cough": chronic_cough,
                "cough_duration_weeks": cough_duration_weeks,
                "occupational_exposure": occupational_exposure,
                "occupational_details": occupational_details,
                "air_pollution_exposure": air_pollution_exposure,
                "shortness_of_breath": shortness_of_breath,
                "chest_pain": chest_pain,
                "weight_loss": weight_loss,
                "fatigue": fatigue,
                "sputum": sputum,
                "comorbidities": comorbidities,
                "stage": stage,
                "notes": notes,
            }
        )
    except LungScanError as exc:
        st.error(f"Please correct the intake form:\n\n{exc}")
        st.stop()
    if not uploads:
        st.error("Choose at least one CT slice to analyse.")
        st.stop()

    try:
        predictor = get_predictor(checkpoint)
    except LungScanError as exc:
        st.error(f"The {model_title(arch)} model could not be loaded: {exc}")
        st.stop()
    results = []
    progress = st.progress(0.0, text="Analysing…")
    for index, upload in enumerate(uploads, start=1):
        progress.progress((index - 1) / len(uploads), text=f"Analysing {upload.name} ({index}/{len(uploads)})")
        try:
            prepared = analysis.prepare_upload(upload.getvalue(), filename=upload.name)
            prediction = predictor.predict(prepared.image)
            with storage.new_session(get_engine()) as session:
                scan = analysis.save_analysis(
                    session, settings=settings, prepared=prepared, prediction=prediction, intake=intake,
                    created_by=user.username,
                )
        except LungScanError as exc:
            results.append({"filename": upload.name, "error": str(exc)})
            continue
        except Exception:  # noqa: BLE001 - one unreadable file must not stop the batch or the page
            log.exception("Unexpected failure analysing %s", upload.name)
            results.append({"filename": upload.name, "error": "An unexpected error occurred; it has been logged."})
            continue
        results.append(
            {
                "filename": upload.name,
                "scan_id": scan.id,
                "arch": prediction.arch,
                "checkpoint": str(checkpoint),
                "label": prediction.label,
                "confidence": prediction.confidence,
                "probabilities": prediction.probabilities,
                "gate_ok": prediction.gate.ok,
                "gate_reason": prediction.gate.reason,
                "framing_warning": prediction.framing_warning,
                "resolution_warning": prediction.resolution_warning,
                "image": prepared.image,
                "dicom": prepared.dicom,
            }
        )
    progress.progress(1.0, text=f"Analysed {len(uploads)} file{'' if len(uploads) == 1 else 's'}.")
    st.session_state[BATCH] = results
    st.rerun()  # collapse the form so the results sit right under it

batch = st.session_state.get(BATCH)
if not batch:
    st.stop()

for failed in (r for r in batch if "error" in r):
    st.error(f"**{failed['filename']}** was not analysed: {failed['error']}", icon=":material/error:")
analysed = [r for r in batch if "error" not in r]
if not analysed:
    st.stop()
saved = f"{len(analysed)} scan{'' if len(analysed) == 1 else 's'}"
st.success(f"Saved {saved} to the history. Open the form above to analyse more.", icon=":material/check_circle:")

if len(batch) > 1:
    st.subheader("Results")
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "File": r["filename"],
                    "Scan ID": r.get("scan_id"),
                    "Result": (
                        "not analysed"
                        if "error" in r
                        else result_label(r["label"], doubted=not r["gate_ok"])
                    ),
                    "Probability": r.get("confidence") if r.get("gate_ok") else None,
                    "Model": model_title(r["arch"]) if "arch" in r else "",
                }
                for r in batch
            ]
        ),
        hide_index=True,
        width="stretch",
        column_config={"Probability": st.column_config.ProgressColumn(format="percent", min_value=0, max_value=1)},
    )

chosen = analysed[0]
if len(analysed) > 1:
    chosen = st.selectbox(
        "Show details for", analysed, format_func=lambda r: f"{r['filename']} (scan {r['scan_id']})", key="scan_detail"
    )

st.subheader(f"{chosen['filename']} · scan {chosen['scan_id']}")
st.caption(f"Model: {model_title(chosen['arch'])}. Saved to the history; open it there for the PDF report.")
left, right = st.columns([2, 3])
with left:
    prediction_summary(
        label=chosen["label"],
        confidence=chosen["confidence"],
        probabilities=chosen["probabilities"],
        gate_ok=chosen["gate_ok"],
        gate_reason=chosen["gate_reason"],
        framing_warning=chosen["framing_warning"],
        resolution_warning=chosen["resolution_warning"],
        key=f"scan_{chosen['scan_id']}",
    )
with right:
    dicom_slice = chosen["dicom"]
    if dicom_slice is None:
        st.image(chosen["image"], caption="Uploaded slice (greyscale)", width="stretch")
    elif not dicom_slice.hounsfield:
        modality = dicom_slice.metadata.get("modality") or "unknown"
        st.image(chosen["image"], caption=f"DICOM slice as stored (modality {modality})", width="stretch")
        st.caption(
            "Its pixel values are not Hounsfield units (not a CT image, e.g. a screenshot saved as DICOM), so it is "
            "analysed as its grey levels and CT windows do not apply; identifying DICOM tags are never stored."
        )
    else:
        preset_columns = st.columns(3)
        for column, (name, title) in zip(preset_columns, (("lung", "Lung"), ("mediastinal", "Mediastinal"))):
            width, level = WINDOWS[name]
            column.image(dicom_slice.render(name), caption=f"{title} window (W{width:.0f} / L{level:.0f})")
        with preset_columns[2]:
            custom_width = st.number_input("Custom width (HU)", 1, 5000, 400, 10, key="dicom_width")
            custom_level = st.number_input("Custom level (HU)", -1200, 3000, 40, 10, key="dicom_level")
            try:
                st.image(dicom_slice.render((custom_width, custom_level)), caption="Custom window")
            except DicomError as exc:
                st.error(str(exc))
        width, level = dicom_slice.window
        st.caption(
            f"The model analyses the slice through a wide window (W{width:.0f} / L{level:.0f}) with the air around "
            "the patient black, to match the screenshots it learned from (see \"What the model saw\" below); "
            "identifying DICOM tags are never stored."
        )

heatmap_panel(
    Path(chosen["checkpoint"]),
    chosen["image"],
    default_target=chosen["label"],
    key=f"scan_{chosen['scan_id']}",
)
