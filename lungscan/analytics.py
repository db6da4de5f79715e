"""Tables behind the Analytics page: one DataFrame of scans and small pure summaries of it.

Every function takes the DataFrame from `scans_dataframe` and returns a tidy table
that a page can hand straight to a chart; each works on an empty frame too (the
page then shows zeros instead of crashing). Counts describe the model's outputs
on the scans saved here, not disease prevalence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from .classes import CLASS_NAMES
from .reports import EXPOSURE_FIELDS, INTAKE_FIELDS, SYMPTOM_FIELDS, ScanLike, scan_row
from .storage import SEXES, SMOKING_STATUSES

AGE_BANDS: tuple[str, ...] = ("<40", "40-49", "50-59", "60-69", "70-79", "80+", "unknown")
SEX_LABELS: tuple[str, ...] = (*SEXES, "unknown")
RISK_FACTORS: tuple[str, ...] = (*SYMPTOM_FIELDS, *EXPOSURE_FIELDS)

_BASE_COLUMNS: tuple[str, ...] = (
    "id", "created_at", "created_by", *INTAKE_FIELDS, "pack_years", "model_arch", "model_version",
    "predicted_class", "confidence", "gate_flag",
)
COLUMNS: tuple[str, ...] = (*_BASE_COLUMNS, "age_band", "sex_label", "date", "flagged")


def age_band(age: float | None) -> str:
    """The decade band of an age, '<40', '80+' or 'unknown'."""
    if age is None or pd.isna(age):
        return "unknown"
    if age < 40:
        return "<40"
    if age >= 80:
        return "80+"
    low = int(age // 10 * 10)
    return f"{low}-{low + 9}"


def scans_dataframe(scans: Iterable[ScanLike]) -> pd.DataFrame:
    """One row per scan: intake fields, pack-years, age band, model output, UTC time and date.

    Also `prob_<class>` columns for every class any scan has. `created_at` is a
    UTC-aware timestamp, `date` its calendar day (UTC).
    """
    rows = [scan_row(scan) for scan in scans]
    frame = pd.DataFrame(rows, columns=None if rows else list(_BASE_COLUMNS))
    probability_columns = sorted(c for c in frame.columns if c.startswith("prob_"))
    frame = frame.reindex(columns=[*_BASE_COLUMNS, *probability_columns])
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
    frame["age"] = pd.to_numeric(frame["age"], errors="coerce").astype("Int64")
    frame["pack_years"] = pd.to_numeric(frame["pack_years"], errors="coerce").astype(float)
    frame["confidence"] = pd.to_numeric(frame["confidence"], errors="coerce").astype(float)
    frame["age_band"] = pd.Categorical([age_band(a) for a in frame["age"]], categories=AGE_BANDS, ordered=True)
    frame["sex_label"] = pd.Categorical(frame["sex"].fillna("unknown"), categories=SEX_LABELS)
    frame["date"] = frame["created_at"].dt.tz_convert("UTC").dt.date
    frame["flagged"] = frame["gate_flag"].notna()
    for field in RISK_FACTORS:
        frame[field] = frame[field].astype(bool)
    return frame


def _class_order(frame: pd.DataFrame) -> list[str]:
    """Known classes in canonical order, then any other class the data contains."""
    extra = sorted(set(frame["predicted_class"].dropna()) - set(CLASS_NAMES))
    return [*CLASS_NAMES, *extra]


def summary(frame: pd.DataFrame) -> dict[str, object]:
    """Headline numbers: scans, distinct patients, mean confidence, gate-flagged scans, first/last date."""
    return {
        "scans": int(len(frame)),
        "patients": int(frame["patient_id"].nunique()),
        "mean_confidence": float(frame["confidence"].mean()) if len(frame) else None,
        "flagged": int(frame["flagged"].sum()),
        "first_date": min(frame["date"]) if len(frame) else None,
        "last_date": max(frame["date"]) if len(frame) else None,
    }


def class_distribution(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns predicted_class, count, share; every known class appears, with 0 if unseen."""
    counts = frame["predicted_class"].value_counts().reindex(_class_order(frame), fill_value=0)
    total = int(counts.sum())
    return pd.DataFrame({
        "predicted_class": counts.index,
        "count": counts.to_numpy(dtype=int),
        "share": counts.to_numpy(dtype=float) / total if total else np.zeros(len(counts)),
    })


def confidence_histogram(frame: pd.DataFrame, *, bins: int = 10) -> pd.DataFrame:
    """Equal-width bins over [0, 1]: columns bin_start, bin_end, label, count (1.0 falls in the last bin)."""
    if bins < 1:
        raise ValueError("bins must be at least 1")
    edges = np.linspace(0.0, 1.0, bins + 1)
    counts, _ = np.histogram(frame["confidence"].dropna().clip(0.0, 1.0), bins=edges)
    return pd.DataFrame({
        "bin_start": edges[:-1],
        "bin_end": edges[1:],
        "label": [f"{lo:.0%}-{hi:.0%}" for lo, hi in zip(edges[:-1], edges[1:])],
        "count": counts.astype(int),
    })


def age_sex_breakdown(frame: pd.DataFrame) -> pd.DataFrame:
    """Scan counts with age bands as rows and sexes (female, male, other, unknown) as columns."""
    table = pd.crosstab(frame["age_band"], frame["sex_label"], dropna=False)
    return table.reindex(index=list(AGE_BANDS), columns=list(SEX_LABELS), fill_value=0).astype(int)


def smoking_by_class(frame: pd.DataFrame, *, normalize: bool = False) -> pd.DataFrame:
    """Smoking status (rows) by predicted class (columns): counts, or shares within each class."""
    table = pd.crosstab(frame["smoking_status"], frame["predicted_class"])
    table = table.reindex(index=list(SMOKING_STATUSES), columns=_class_order(frame), fill_value=0).astype(int)
    if normalize:
        totals = table.sum(axis=0).replace(0, np.nan)
        return (table / totals).fillna(0.0)
    return table


def pack_years_by_class(frame: pd.DataFrame) -> pd.DataFrame:
    """Per predicted class: n (scans with known pack-years), median and mean pack-years."""
    known = frame.dropna(subset=["pack_years"])
    grouped = known.groupby("predicted_class")["pack_years"]
    table = pd.DataFrame({"n": grouped.size(), "median": grouped.median(), "mean": grouped.mean()})
    table = table.reindex(_class_order(frame))
    table["n"] = table["n"].fillna(0).astype(int)
    return table


def risk_factor_rates(frame: pd.DataFrame, factors: Sequence[str] = RISK_FACTORS) -> pd.DataFrame:
    """Share of scans with each symptom/exposure (rows) within each predicted class (columns).

    A class with no scans gets NaN (no data), not 0 (never present).
    """
    classes = _class_order(frame)
    rates = frame.groupby("predicted_class")[list(factors)].mean().T if len(frame) else pd.DataFrame(index=factors)
    return rates.reindex(index=list(factors), columns=classes).astype(float)


def predictions_over_time(frame: pd.DataFrame, *, freq: str = "D") -> pd.DataFrame:
    """Scan counts per period (UTC) and predicted class; periods without scans are filled with 0.

    `freq` is a pandas period alias: "D" daily, "W" weekly, "M" monthly. The index
    holds each period's start timestamp.
    """
    classes = _class_order(frame)
    if not len(frame):
        return pd.DataFrame(columns=classes, index=pd.DatetimeIndex([], name="period"), dtype=int)
    periods = frame["created_at"].dt.tz_convert("UTC").dt.tz_localize(None).dt.to_period(freq)
    table = pd.crosstab(periods, frame["predicted_class"])
    full_range = pd.period_range(periods.min(), periods.max(), freq=freq)
    table = table.reindex(index=full_range, columns=classes, fill_value=0).astype(int)
    table.index = table.index.to_timestamp()
    table.index.name = "period"
    table.columns.name = None
    return table
