"""Analytics tables computed from scans saved in a real SQLite file."""

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from lungscan import analytics, storage
from lungscan.config import Settings
from lungscan.storage import ScanCreate

DAY = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)


def probabilities(label: str, confidence: float) -> dict[str, float]:
    others = [c for c in ("adenocarcinoma", "large_cell_carcinoma", "squamous_cell_carcinoma", "normal") if c != label]
    rest = (1.0 - confidence) / len(others)
    return {label: confidence, **{c: rest for c in others}}


# (patient, age, sex, smoking, years, per day, label, confidence, day offset, cough, occupational)
ROWS = [
    ("P-1", 35, "female", "never", None, None, "normal", 0.95, 0, False, False),
    ("P-2", 47, "male", "current", 20, 20, "adenocarcinoma", 0.55, 0, True, True),
    ("P-3", 62, "male", "former", 30, 40, "squamous_cell_carcinoma", 0.81, 2, True, False),
    ("P-4", 68, None, "current", 40, 10, "adenocarcinoma", 0.99, 2, False, True),
    ("P-4", 68, None, "current", 40, 10, "adenocarcinoma", 1.0, 3, True, True),
    ("P-5", 85, "other", "unknown", None, None, "normal", 0.62, 3, False, False),
    ("P-6", None, "female", "former", 10, None, "normal", 0.3, 3, False, False),
]


@pytest.fixture(scope="module")
def frame(tmp_path_factory):
    settings = Settings(data_dir=tmp_path_factory.mktemp("analytics") / "data", _env_file=None)
    engine = storage.get_engine(settings.resolved_database_url)
    storage.init_db(engine)
    with storage.new_session(engine) as session:
        for index, (patient, age, sex, smoking, years, per_day, label, conf, offset, cough, occupational) in enumerate(
            ROWS
        ):
            scan = storage.create_scan(
                session, settings=settings, created_by="dr_a",
                image=Image.fromarray(np.full((40, 40), index, dtype=np.uint8), mode="L"),
                scan=ScanCreate(
                    patient_id=patient, age=age, sex=sex, smoking_status=smoking, smoking_years=years,
                    cigarettes_per_day=per_day, chronic_cough=cough, occupational_exposure=occupational,
                    source_format="png", model_arch="efficientnet_lite0", model_version="v1",
                    predicted_class=label, confidence=conf, probabilities=probabilities(label, conf),
                    gate_flag="not a CT?" if conf < 0.5 else None,
                ),
            )
            scan.created_at = DAY + pd.Timedelta(days=offset, hours=index)
            session.add(scan)
        session.commit()
        return analytics.scans_dataframe(storage.list_scans(session))


def test_scans_dataframe_has_one_row_per_scan_with_derived_fields(frame):
    assert len(frame) == len(ROWS)
    assert set(analytics.COLUMNS) <= set(frame.columns)
    assert {"prob_adenocarcinoma", "prob_normal"} <= set(frame.columns)
    p3 = frame.set_index("patient_id").loc["P-3"]
    assert p3["pack_years"] == 60.0 and p3["age_band"] == "60-69" and p3["confidence"] == 0.81
    assert frame["created_at"].dt.tz is not None
    assert sorted(frame["date"].unique()) == [date(2026, 3, 1), date(2026, 3, 3), date(2026, 3, 4)]
    assert pd.isna(frame.set_index("patient_id").loc["P-6", "pack_years"])  # cigarettes per day unknown


@pytest.mark.parametrize(("age", "band"), [(None, "unknown"), (0, "<40"), (39, "<40"), (40, "40-49"), (69, "60-69"),
                                            (79, "70-79"), (80, "80+"), (120, "80+")])
def test_age_band_edges(age, band):
    assert analytics.age_band(age) == band


def test_summary(frame):
    stats = analytics.summary(frame)
    assert stats["scans"] == 7 and stats["patients"] == 6 and stats["flagged"] == 1
    assert stats["mean_confidence"] == pytest.approx(sum(r[7] for r in ROWS) / 7)
    assert (stats["first_date"], stats["last_date"]) == (date(2026, 3, 1), date(2026, 3, 4))


def test_class_distribution_includes_unseen_classes(frame):
    table = analytics.class_distribution(frame)
    assert list(table["predicted_class"]) == ["adenocarcinoma", "large_cell_carcinoma", "squamous_cell_carcinoma",
                                              "normal"]
    assert list(table["count"]) == [3, 0, 1, 3]
    assert table["share"].sum() == pytest.approx(1.0)


def test_confidence_histogram_bins(frame):
    table = analytics.confidence_histogram(frame, bins=5)
    assert list(table["label"]) == ["0%-20%", "20%-40%", "40%-60%", "60%-80%", "80%-100%"]
    assert list(table["count"]) == [0, 1, 1, 1, 4]  # 1.0 falls into the last bin
    with pytest.raises(ValueError):
        analytics.confidence_histogram(frame, bins=0)


def test_age_sex_breakdown(frame):
    table = analytics.age_sex_breakdown(frame)
    assert list(table.index) == list(analytics.AGE_BANDS)
    assert list(table.columns) == ["female", "male", "other", "unknown"]
    assert table.loc["60-69", "male"] == 1 and table.loc["60-69", "unknown"] == 2
    assert table.loc["80+", "other"] == 1 and table.loc["unknown", "female"] == 1
    assert int(table.to_numpy().sum()) == 7


def test_smoking_by_class_counts_and_shares(frame):
    counts = analytics.smoking_by_class(frame)
    assert counts.loc["current", "adenocarcinoma"] == 3 and counts.loc["never", "normal"] == 1
    assert counts["large_cell_carcinoma"].sum() == 0
    shares = analytics.smoking_by_class(frame, normalize=True)
    assert shares["normal"].sum() == pytest.approx(1.0)
    assert shares.loc["former", "normal"] == pytest.approx(1 / 3)
    assert shares["large_cell_carcinoma"].sum() == 0.0


def test_pack_years_by_class(frame):
    table = analytics.pack_years_by_class(frame)
    assert table.loc["adenocarcinoma", "n"] == 3
    assert table.loc["adenocarcinoma", "median"] == 20.0  # 20, 20, 20 pack-years
    assert table.loc["squamous_cell_carcinoma", "mean"] == 60.0
    assert table.loc["normal", "n"] == 0


def test_risk_factor_rates_by_class(frame):
    rates = analytics.risk_factor_rates(frame)
    assert rates.loc["chronic_cough", "adenocarcinoma"] == pytest.approx(2 / 3)
    assert rates.loc["occupational_exposure", "adenocarcinoma"] == 1.0
    assert rates.loc["chronic_cough", "normal"] == 0.0
    assert np.isnan(rates.loc["chronic_cough", "large_cell_carcinoma"])  # no scans: no data, not 0%


def test_predictions_over_time_fills_empty_days(frame):
    table = analytics.predictions_over_time(frame)
    assert list(table.index.date) == [date(2026, 3, d) for d in (1, 2, 3, 4)]
    assert table.loc["2026-03-02"].sum() == 0
    assert table.loc["2026-03-01", "normal"] == 1 and table.loc["2026-03-01", "adenocarcinoma"] == 1
    assert int(table.to_numpy().sum()) == 7
    weekly = analytics.predictions_over_time(frame, freq="W")
    assert int(weekly.to_numpy().sum()) == 7


def test_every_table_works_without_scans():
    empty = analytics.scans_dataframe([])
    assert len(empty) == 0 and set(analytics.COLUMNS) <= set(empty.columns)
    assert analytics.summary(empty)["scans"] == 0
    assert analytics.class_distribution(empty)["count"].sum() == 0
    assert analytics.confidence_histogram(empty)["count"].sum() == 0
    assert int(analytics.age_sex_breakdown(empty).to_numpy().sum()) == 0
    assert int(analytics.smoking_by_class(empty).to_numpy().sum()) == 0
    assert analytics.pack_years_by_class(empty)["n"].sum() == 0
    assert analytics.risk_factor_rates(empty).isna().all().all()
    assert analytics.predictions_over_time(empty).empty
