"""Every trained architecture side by side: metrics, charts and Grad-CAM on one sample."""

import streamlit as st

from lungscan import analysis, figures, gallery, imaging, model_cards
from lungscan.classes import display_name
from lungscan.errors import LungScanError
from lungscan.explain import CAM_METHODS, overlay_cam
from ui.frame import require_page
from ui.resources import available_checkpoints, cached_cam, get_predictor, get_settings
from ui.widgets import image_key, model_title

require_page("models")
settings = get_settings()
st.title("Model comparison")
st.caption(
    "All numbers are from each model's held-out test evaluation (`models/<arch>/evaluation.json`), "
    "with bootstrap 95 % confidence intervals. Higher is better except calibration error, size and latency."
)

loaded = model_cards.load_evaluations(settings.models_dir)
for folder, problem in loaded.problems.items():
    st.warning(f"Skipped `{folder}`: {problem}")
evaluations = loaded.evaluations

if not evaluations:
    st.info("No evaluation results yet. Train and evaluate models (README, 'Training') to fill this page.")
else:
    number = st.column_config.NumberColumn
    st.subheader("Headline metrics")
    st.dataframe(
        model_cards.comparison_table(evaluations),
        hide_index=True,
        width="stretch",
        column_config={
            "Accuracy": number(format="%.3f"),
            "Macro-F1": number(format="%.3f"),
            "Dedup accuracy": number(format="%.3f", help="Accuracy without test images that duplicate training images."),
            "AUC (macro)": number(format="%.3f"),
            "AUC (micro)": number(format="%.3f"),
            "ECE": number(format="%.3f", help="Expected calibration error before temperature scaling."),
            "ECE calibrated": number(format="%.3f", help="After temperature scaling on the validation split."),
            "Temperature": number(format="%.2f"),
            "Parameters (M)": number(format="%.1f"),
            "Size (MB)": number(format="%.1f"),
            "Latency p50 (ms)": number(format="%.1f", help="Median single-image latency on the evaluation machine."),
        },
    )

    st.subheader("Per class")
    metric_tabs = st.tabs(["F1", "Precision", "Recall", "AUC"])
    for tab, metric in zip(metric_tabs, ["F1", "Precision", "Recall", "AUC"]):
        tab.dataframe(model_cards.per_class_wide(evaluations, metric).round(3), width="stretch")

    labels = {folder: model_cards.model_label(ev) for folder, ev in evaluations.items()}
    selected = st.multiselect("Models in the charts", list(evaluations), default=list(evaluations)[:4], format_func=labels.get)
    chart_tabs = st.tabs(["Confusion matrices", "ROC curves", "Training curves", "Reliability"])
    builders = (figures.confusion_matrix, figures.roc_curves, figures.training_curves, figures.reliability_diagram)
    for tab, build, name in zip(chart_tabs, builders, ("cm", "roc", "curves", "reliability")):
        with tab:
            columns = st.columns(2)
            for index, folder in enumerate(selected):
                with columns[index % 2]:
                    st.markdown(f"**{labels[folder]}**")
                    st.plotly_chart(build(evaluations[folder]), key=f"models_{name}_{folder}")

st.subheader("Grad-CAM of every model on one image")
checkpoints = available_checkpoints()
if not checkpoints:
    st.info("No trained checkpoints are installed.")
    st.stop()
samples = gallery.gallery_images(settings.resolved_dataset_dir, per_class=4)
sources = (["Demo gallery"] if samples else []) + ["Upload an image"]
source = st.radio("Sample", sources, horizontal=True, key="models_source")
sample = None
if source == "Demo gallery":
    chosen = st.selectbox(
        "Gallery image", samples, format_func=lambda s: f"{display_name(s.class_name)} · {s.path.name}", key="models_sample"
    )
    try:
        sample = imaging.load_image(chosen.path)
    except LungScanError as exc:
        st.error(str(exc))
else:
    upload = st.file_uploader(
        "A CT slice (not saved anywhere)", type=list(analysis.UPLOAD_TYPES), key="models_upload"
    )
    if upload is not None:
        try:
            sample = analysis.prepare_upload(upload.getvalue(), filename=upload.name).image
        except LungScanError as exc:
            st.error(f"{upload.name}: {exc}")
method_label = st.selectbox("CAM method", list(CAM_METHODS), key="models_method")
if sample is not None:
    panels = []
    digest = image_key(sample)
    with st.spinner("Running every model…"):
        for arch, checkpoint in checkpoints.items():
            try:
                predictor = get_predictor(checkpoint)
                prediction = predictor.predict(sample)
                cam = cached_cam(str(checkpoint), digest, prediction.label, CAM_METHODS[method_label], sample)
            except LungScanError as exc:
                st.error(f"{model_title(arch)}: {exc}")
                continue
            verdict = f"{display_name(prediction.label)} {prediction.confidence:.0%}" if prediction.gate.ok else "input check failed"
            panels.append((f"{model_title(arch)}: {verdict}", overlay_cam(predictor.model_view(sample), cam, 0.45)))
    if panels:
        st.plotly_chart(figures.image_grid(panels, columns=4), key="models_cam_grid")
        st.caption("Each heatmap is for the class that model predicted. Zoom one panel and all follow.")
