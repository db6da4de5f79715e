"""Analytics over the saved scans: model outputs against the recorded history and over time."""

from datetime import date, timedelta

import plotly.express as px
import streamlit as st

from lungscan import analytics, storage
from lungscan.classes import display_name
from ui.frame import require_page
from ui.resources import get_engine

require_page("analytics")
st.title("Analytics")
st.caption(
    "Counts describe what the model said about the scans saved here, not how common a disease is, "
    "and associations are not causes."
)

c1, c2 = st.columns([2, 1])
today = date.today()
dates = c1.date_input("Analysed between", value=(today - timedelta(days=365), today), key="analytics_dates")
include_flagged = c2.checkbox("Include scans that failed the input check", value=False)
date_from, date_to = (dates[0], dates[-1]) if isinstance(dates, (tuple, list)) and dates else (None, None)

with storage.new_session(get_engine()) as session:
    frame = analytics.scans_dataframe(storage.list_scans(session, date_from=date_from, date_to=date_to))
if not include_flagged:
    frame = frame[~frame["flagged"]]

facts = analytics.summary(frame)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Scans", facts["scans"])
m2.metric("Patients", facts["patients"])
m3.metric("Mean confidence", "—" if facts["mean_confidence"] is None else f"{facts['mean_confidence']:.1%}")
m4.metric("Failed input check", facts["flagged"] if include_flagged else "excluded")
if not facts["scans"]:
    st.info("No scans in this period yet. Analysed scans appear here automatically.")
    st.stop()



def labelled(table):
    """Class columns or rows renamed to their display names."""
    return table.rename(columns=display_name, index=lambda i: display_name(i) if isinstance(i, str) else i)


left, right = st.columns(2)
with left:
    st.subheader("Predicted classes")
    distribution = analytics.class_distribution(frame).assign(
        predicted_class=lambda t: t["predicted_class"].map(display_name)
    )
    st.plotly_chart(px.bar(distribution, x="predicted_class", y="count", labels={"predicted_class": "", "count": "Scans"}))
with right:
    st.subheader("Model confidence")
    histogram = analytics.confidence_histogram(frame)
    st.plotly_chart(px.bar(histogram, x="label", y="count", labels={"label": "Calibrated probability", "count": "Scans"}))

left, right = st.columns(2)
with left:
    st.subheader("Age and sex")
    age_sex = analytics.age_sex_breakdown(frame).reset_index().melt(id_vars="age_band", var_name="sex", value_name="scans")
    st.plotly_chart(px.bar(age_sex, x="age_band", y="scans", color="sex", labels={"age_band": "Age"}))
with right:
    st.subheader("Smoking status by predicted class")
    smoking = labelled(analytics.smoking_by_class(frame, normalize=True))
    st.plotly_chart(
        px.imshow(smoking, text_auto=".0%", color_continuous_scale="Blues", aspect="auto", labels={"color": "Share"})
    )

left, right = st.columns(2)
with left:
    st.subheader("Pack-years by predicted class")
    known = frame.dropna(subset=["pack_years"]).assign(predicted_class=lambda t: t["predicted_class"].map(display_name))
    if known.empty:
        st.caption("No scan has both smoking years and cigarettes per day recorded.")
    else:
        st.plotly_chart(px.box(known, x="predicted_class", y="pack_years", points="all", labels={"predicted_class": ""}))
with right:
    st.subheader("Symptoms and exposures by predicted class")
    rates = labelled(analytics.risk_factor_rates(frame)).rename(index=lambda f: f.replace("_", " ").capitalize())
    st.plotly_chart(px.imshow(rates, text_auto=".0%", color_continuous_scale="Oranges", aspect="auto", zmin=0, zmax=1))

st.subheader("Predictions over time")
freq = st.segmented_control("Per", ["D", "W", "M"], format_func={"D": "day", "W": "week", "M": "month"}.get, default="W")
over_time = labelled(analytics.predictions_over_time(frame, freq=freq or "W"))
st.plotly_chart(px.bar(over_time, labels={"value": "Scans", "period": "", "variable": "Predicted class"}))
