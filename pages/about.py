"""Intended use, the default model's card, dataset provenance, licence notes and known shortcuts."""

import streamlit as st

from lungscan import model_cards
from ui.frame import require_page
from ui.resources import get_settings

require_page("about")
settings = get_settings()

st.title("About LungScan")

st.header("Intended use")
st.markdown(
    """
LungScan classifies a single axial chest CT slice into one of four classes — **adenocarcinoma**,
**large cell carcinoma**, **squamous cell carcinoma** and **normal** — and shows where in the image
the model looked (Grad-CAM). It is **decision support for research and education**. It is not a
medical device, it has not been clinically validated, and its output is **not a diagnosis**.

- It sees one 2-D slice, not a study: no volume, no prior imaging, no clinical context.
- It only knows the four classes above. Other findings (infection, nodules of other histology,
  metastases, artefacts) will still be forced into one of the four.
- Images that do not look like the chest CT slices it was trained on are flagged by an input gate,
  and no finding is reported for them — but the gate can miss.
- Every result must be reviewed by a qualified clinician; patient records are pseudonymous
  (patient IDs, never names) and stay on this machine.
"""
)

st.header("Model card")
evaluations = model_cards.load_evaluations(settings.models_dir)
default = model_cards.default_arch(settings.models_dir)
card = evaluations.evaluations.get(default or "") or next(iter(evaluations.evaluations.values()), None)
if card is None:
    st.info("No evaluated model is installed yet (no `models/*/evaluation.json`). Train and evaluate one first.")
else:
    st.caption("The default model, as measured on the held-out test split. The Model comparison page has every model.")
    facts = model_cards.model_card_facts(card)
    st.dataframe(
        [{"Item": key, "Value": value} for key, value in facts.items()], hide_index=True, width="stretch"
    )
    st.markdown(
        """
**Training data.** The public Kaggle *Chest CT-Scan images* dataset (see below), split into train,
validation and test folders by its author; images are converted to 8-bit greyscale and resized to
the model's input size. Class probabilities are calibrated on the validation split by temperature
scaling, so "70 %" means about 70 % of such predictions were right on that split.

**Metrics and their limits.** The test split holds a few hundred images from the same source as the
training images; confidence intervals are bootstrap 95 % intervals. *Dedup accuracy* re-scores the test
set without images that are near-duplicates of training images: the gap between the two numbers shows
how much of the headline figure comes from memorised images. Performance on scans from other scanners,
protocols or populations is unknown.
"""
    )

st.header("Dataset provenance and licence")
st.markdown(
    """
- **Source:** "Chest CT-Scan images" by **Mohamed Hany** on Kaggle (four folders: adenocarcinoma,
  large cell carcinoma, squamous cell carcinoma, normal; train/valid/test splits by the author).
- **Licence:** listed as **CC0 (public domain)** in the DagsHub dataset catalogue. This has **not been
  verified** against the Kaggle page or the original image sources; the images are believed to be
  collected from public web sources, whose own terms may differ. Check before any reuse beyond research
  and teaching.
- The dataset is not redistributed with LungScan; point `LUNGSCAN_DATASET_DIR` at a local copy for the
  demo gallery and for training.
"""
)

st.header("Known dataset shortcuts")
st.markdown(
    """
A model can score well on this dataset for the wrong reasons. LungScan's preprocessing and evaluation
counter the shortcuts that were found, but they are worth knowing:

- **Duplicates leak from train to test in the *normal* class.** Several test images are (near-)copies of
  training images, inflating test accuracy; hence the *dedup accuracy* column.
- **Normal images are larger and more often RGB(A)** than the cancer images, so image size or colour mode
  alone predicts the class. LungScan converts every image to greyscale and resizes it, so neither reaches
  the model. Sharpness still can: resized to the model's input, the larger *normal* screenshots come out
  sharper, and nearly every training slice smaller than the input (78 of 80) shows a cancer. Shrunk before
  analysis, slices are misread more often: some *normal* validation slices are then called cancer, and at
  128 px some cancer test slices normal. A slice smaller than the model's input is therefore analysed with
  a note saying so; use a larger export or the DICOM file where you can.
- **Test slices are framed differently.** In train and valid the body spans nearly all of each slice;
  in the test split it spans a median 79-85 % of the height of the cancer slices, with more black margin
  around it, and a clinic's own screenshots may be framed any way. A model that sees the whole slice
  squeezed to a square can learn the framing; models with the *body* geometry crop every slice to the
  patient's body first. Each evaluation report's *framing* probe shows how predictions change when every
  slice gets a black margin. A slice framed more loosely than the training slices is analysed cropped to
  the body, for every model, and the result says so.
- **The display contrast differs by class.** Most cancer screenshots show the lungs near black and the
  body mid-grey; most *normal* ones are brighter, much as the lung window shows a slice. A model can
  learn that contrast instead of the disease, so the default model was trained with random CT-window
  contrast: on validation screenshots re-rendered through the lung window its accuracy falls from 95 % to
  87 %, and it calls no cancer normal (the previous default fell to about 55 % and called about one cancer
  in eight normal). A screenshot taken through your viewer's lung window is still read less accurately; a
  DICOM upload is shown to the model through the window the training screenshots imply instead.
- **Four files named `.png` are really JPEGs.** LungScan reads every file by content, not by extension.
- Grad-CAM heatmaps that light up the image border, text or background rather than the lungs are a sign
  that a model found another shortcut; the Model comparison page shows them for every model.
"""
)
