"""Demo gallery for students: public dataset images, classified and explained (no patient records)."""

import streamlit as st

from lungscan import gallery, imaging
from lungscan.classes import CLASS_NAMES, display_name
from lungscan.errors import LungScanError
from ui.frame import require_page
from ui.resources import available_checkpoints, get_predictor, get_settings
from ui.widgets import heatmap_panel, model_title, prediction_summary

require_page("gallery")
settings = get_settings()
st.title("Demo gallery")
st.caption(
    "Images from the public Kaggle 'Chest CT-Scan images' test split (not used for training). "
    "Nothing here is a patient record, and nothing is saved."
)

images = gallery.gallery_images(settings.resolved_dataset_dir)
if not images:
    st.info(
        f"The public dataset is not on this machine (looked in `{settings.resolved_dataset_dir}`). "
        "Unpack the Kaggle 'Chest CT-Scan images' dataset there, or point `LUNGSCAN_DATASET_DIR` at it, "
        "to browse example slices. The Model comparison page works without it."
    )
    st.stop()

shown_class = st.segmented_control(
    "Class", CLASS_NAMES, format_func=display_name, default=CLASS_NAMES[0], key="gallery_class"
) or CLASS_NAMES[0]
choices = [image for image in images if image.class_name == shown_class]
columns = st.columns(4)
for index, image in enumerate(choices):
    columns[index % 4].image(str(image.path), caption=image.path.name, width="stretch")

chosen = st.selectbox("Classify this image", choices, format_func=lambda image: image.path.name, key="gallery_image")
checkpoints = available_checkpoints()
if not checkpoints:
    st.info("No trained model is installed, so the image cannot be classified here.")
    st.stop()
arch, checkpoint = next(iter(checkpoints.items()))
try:
    slice_image = imaging.load_image(chosen.path)
    prediction = get_predictor(checkpoint).predict(slice_image)
except LungScanError as exc:
    st.error(f"{chosen.path.name} could not be classified: {exc}")
    st.stop()

st.subheader(f"{chosen.path.name}")
st.caption(f"Dataset label: **{display_name(chosen.class_name)}** · model: {model_title(arch)} (default)")
left, right = st.columns([2, 3])
with left:
    prediction_summary(
        label=prediction.label,
        confidence=prediction.confidence,
        probabilities=prediction.probabilities,
        gate_ok=prediction.gate.ok,
        gate_reason=prediction.gate.reason,
        framing_warning=prediction.framing_warning,
        resolution_warning=prediction.resolution_warning,
        key="gallery",
    )
    if prediction.gate.ok:
        verdict = "agrees with" if prediction.label == chosen.class_name else "differs from"
        st.write(f"The model {verdict} the dataset label.")
with right:
    heatmap_panel(checkpoint, slice_image, default_target=prediction.label, key="gallery")
