"""Storage against a real SQLite file in a temp dir: schema, migrations, scans and their images."""

import hashlib
import sqlite3
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from PIL import Image
from pydantic import ValidationError as PydanticValidationError
from sqlalchemy import inspect
from sqlmodel import SQLModel

from lungscan import storage
from lungscan.errors import DuplicateUserError, NotFoundError, StorageError, ValidationError
from lungscan.storage import ScanCreate, ScanPublic, User

PROBS = {"adenocarcinoma": 0.7, "large_cell_carcinoma": 0.1, "squamous_cell_carcinoma": 0.15, "normal": 0.05}


@pytest.fixture
def engine(settings):
    engine = storage.get_engine(settings.resolved_database_url)
    storage.init_db(engine)
    return engine


@pytest.fixture
def session(engine):
    with storage.new_session(engine) as session:
        yield session


def make_scan(**overrides) -> ScanCreate:
    fields = {
        "patient_id": "P-0001",
        "age": 64,
        "sex": "female",
        "smoking_status": "former",
        "smoking_years": 30,
        "cigarettes_per_day": 20,
        "chronic_cough": True,
        "source_format": "png",
        "original_filename": "../../etc/slice 1.png",
        "model_arch": "efficientnet_lite0",
        "model_version": "efficientnet_lite0@abc123",
        "predicted_class": "adenocarcinoma",
        "confidence": 0.7,
        "probabilities": PROBS,
    }
    return ScanCreate(**(fields | overrides))


def png_bytes(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return storage.encode_png(Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8), mode="L"))


def test_init_db_creates_schema_version_and_is_idempotent(settings, engine):
    assert storage.schema_version(engine) == storage.SCHEMA_VERSION == 1
    assert storage.init_db(engine) == 1  # second run applies nothing and does not fail
    with sqlite3.connect(settings.data_dir / "lungscan.db") as raw:
        tables = {row[0] for row in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"scans", "users", "treatment_plans", "chat_messages"} <= tables


def test_migrated_schema_matches_the_models(engine):
    """A model change without a new migration fails here instead of in production."""
    inspector = inspect(engine)
    for table in SQLModel.metadata.sorted_tables:
        db_columns = {c["name"]: c for c in inspector.get_columns(table.name)}
        assert set(db_columns) == {c.name for c in table.columns}, table.name
        for column in table.columns:
            assert db_columns[column.name]["nullable"] == column.nullable, (table.name, column.name)
        db_indexes = {
            i["name"]: (tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(table.name)
        }
        model_indexes = {i.name: (tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes}
        assert db_indexes == model_indexes, table.name
        db_fks = {(tuple(fk["constrained_columns"]), fk["referred_table"], fk["options"].get("ondelete"))
                  for fk in inspector.get_foreign_keys(table.name)}
        model_fks = {((fk.parent.name,), fk.column.table.name, fk.ondelete) for fk in table.foreign_keys}
        assert db_fks == model_fks, table.name


def test_database_newer_than_code_is_refused(settings, engine):
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA user_version = 99")
    with pytest.raises(StorageError, match="newer"):
        storage.init_db(engine)


def test_engine_is_cached_per_url_with_foreign_keys_on(settings, tmp_path):
    url = settings.resolved_database_url
    assert storage.get_engine(url) is storage.get_engine(url)
    assert storage.get_engine(url) is not storage.get_engine(f"sqlite:///{tmp_path / 'other.db'}")
    with storage.get_engine(url).connect() as connection:
        assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1


def test_non_sqlite_url_is_refused():
    with pytest.raises(StorageError, match="SQLite only"):
        storage.get_engine("postgresql://localhost/lungscan")


def test_create_scan_round_trip_stores_image_by_hash(settings, session):
    data = png_bytes()
    scan = storage.create_scan(session, settings=settings, scan=make_scan(), image=data, created_by="dr_a")

    again = storage.get_scan(session, scan_id=scan.id)
    assert again.patient_id == "P-0001" and again.created_by == "dr_a"
    assert again.probabilities == PROBS
    assert again.pack_years == 30.0
    assert again.created_at.tzinfo is not None
    assert abs(again.created_at - datetime.now(UTC)) < timedelta(minutes=1)
    assert again.original_filename == "slice 1.png"  # folders stripped: a label, never a path
    digest = hashlib.sha256(data).hexdigest()
    assert again.image_sha256 == digest
    assert again.image_path == f"{digest[:2]}/{digest}.png"
    assert storage.scan_image_path(settings, again).read_bytes() == data

    public = ScanPublic.from_scan(again)
    assert public.probabilities == PROBS and public.id == scan.id
    assert "probabilities_json" not in public.model_dump()


def test_create_scan_from_pil_image_stores_png(settings, session):
    image = Image.new("L", (48, 48), 128)
    scan = storage.create_scan(
        session, settings=settings, scan=make_scan(), image=image, image_suffix=".dcm", created_by="dr_a"
    )
    assert scan.image_path.endswith(".png")
    with Image.open(storage.scan_image_path(settings, scan)) as stored:
        assert stored.size == (48, 48) and stored.getpixel((0, 0)) == 128


def test_failed_commit_leaves_neither_row_nor_file(settings, session):
    data = png_bytes(1)
    with pytest.raises(StorageError, match="Could not save the scan"):
        # created_by=None violates NOT NULL at commit time, after the file was written.
        storage.create_scan(session, settings=settings, scan=make_scan(), image=data, created_by=None)
    assert storage.count_scans(session) == 0
    assert not any(p.is_file() for p in settings.uploads_dir.rglob("*"))


def test_failed_commit_keeps_an_image_another_scan_uses(settings, session):
    data = png_bytes(2)
    first = storage.create_scan(session, settings=settings, scan=make_scan(), image=data, created_by="dr_a")
    with pytest.raises(StorageError):
        storage.create_scan(session, settings=settings, scan=make_scan(), image=data, created_by=None)
    assert storage.scan_image_path(settings, first).is_file()


def test_save_scan_image_deduplicates_and_refuses_bad_input(settings):
    data = png_bytes(3)
    assert storage.save_scan_image(settings, data, "png") == storage.save_scan_image(settings, data, ".PNG")
    assert len([p for p in settings.uploads_dir.rglob("*") if p.is_file()]) == 1
    assert storage.save_scan_image(settings, data, ".jpeg").endswith(".jpg")
    with pytest.raises(ValidationError, match="stored as"):
        storage.save_scan_image(settings, data, ".exe")
    with pytest.raises(ValidationError, match="empty"):
        storage.save_scan_image(settings, b"", ".png")


def test_scan_image_path_refuses_escaping_paths(settings, session):
    scan = storage.create_scan(session, settings=settings, scan=make_scan(), image=png_bytes(), created_by="dr_a")
    scan.image_path = "../../lungscan.db"
    with pytest.raises(StorageError, match="outside"):
        storage.scan_image_path(settings, scan)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"patient_id": "John Smith"}, "pseudonymous"),
        ({"patient_id": ""}, "pseudonymous"),
        ({"sex": "unknown-ish"}, "Sex must be"),
        ({"smoking_status": "sometimes"}, "Smoking status"),
        ({"smoking_status": "never"}, "never-smoker"),
        ({"smoking_status": "current", "quit_date": date(2020, 1, 1)}, "current smoker"),
        ({"quit_date": date.today() + timedelta(days=400)}, "future"),
        ({"age": 150}, "less than or equal to 120"),
        ({"probabilities": {"adenocarcinoma": 0.5, "normal": 0.2}}, "sum to"),
        ({"predicted_class": "normal", "probabilities": {"adenocarcinoma": 1.0}}, "not among"),
        ({"notes": "x" * 5000}, "limit is 4000"),
    ],
)
def test_intake_validation_explains_what_is_wrong(overrides, message):
    with pytest.raises(PydanticValidationError, match=message):
        make_scan(**overrides)


def test_intake_normalises_values():
    scan = make_scan(sex=" Male ", smoking_status=None, smoking_years=None, stage="  ", notes="  ok ")
    assert (scan.sex, scan.smoking_status, scan.stage, scan.notes) == ("male", "unknown", None, "ok")
    assert scan.pack_years is None


def test_list_scans_filters_and_orders_newest_first(settings, session):
    now = datetime.now(UTC)
    rows = [
        ("P-1", "adenocarcinoma", "dr_a", now - timedelta(days=10)),
        ("P-2", "normal", "dr_b", now - timedelta(days=2)),
        ("P-1", "normal", "dr_a", now),
    ]
    for index, (patient, label, author, created) in enumerate(rows):
        probs = {"adenocarcinoma": 0.2, "normal": 0.8} if label == "normal" else {"adenocarcinoma": 0.9, "normal": 0.1}
        scan = storage.create_scan(
            session, settings=settings, created_by=author, image=png_bytes(index),
            scan=make_scan(patient_id=patient, predicted_class=label, probabilities=probs),
        )
        scan.created_at = created
        session.add(scan)
    session.commit()

    assert [s.patient_id for s in storage.list_scans(session)] == ["P-1", "P-2", "P-1"]
    assert [s.created_at for s in storage.list_scans(session)] == sorted((r[3] for r in rows), reverse=True)
    assert {s.predicted_class for s in storage.list_scans(session, predicted_class="normal")} == {"normal"}
    assert len(storage.list_scans(session, predicted_class=["normal", "adenocarcinoma"])) == 3
    assert len(storage.list_scans(session, patient_id="P-1")) == 2
    assert len(storage.list_scans(session, created_by="dr_b")) == 1
    assert len(storage.list_scans(session, date_from=(now - timedelta(days=3)).date())) == 2
    assert len(storage.list_scans(session, date_to=(now - timedelta(days=2)).date())) == 2  # whole day included
    assert len(storage.list_scans(session, date_from=now - timedelta(days=11), date_to=now - timedelta(days=9))) == 1
    assert len(storage.list_scans(session, limit=1, offset=1)) == 1

    # By result, as the app reports it: a scan the input check doubted has no class, whatever the model said.
    doubted = storage.create_scan(
        session, settings=settings, created_by="dr_a", image=png_bytes(9),
        scan=make_scan(patient_id="P-3", predicted_class="normal", probabilities={"adenocarcinoma": 0.2, "normal": 0.8},
                       gate_flag="This image does not look like the chest CT slices the model was trained on."),
    )
    assert len(storage.list_scans(session, predicted_class="normal")) == 3
    assert {s.patient_id for s in storage.list_scans(session, result=["normal"])} == {"P-1", "P-2"}
    assert [s.id for s in storage.list_scans(session, result=[storage.NO_FINDING_RESULT])] == [doubted.id]
    assert len(storage.list_scans(session, result=["adenocarcinoma", storage.NO_FINDING_RESULT])) == 2


def test_delete_scan_removes_plans_image_and_unlinks_chat(settings, session):
    scan = storage.create_scan(session, settings=settings, scan=make_scan(), image=png_bytes(5), created_by="dr_a")
    image_path = storage.scan_image_path(settings, scan)
    storage.create_treatment_plan(
        session, scan_id=scan.id, created_by="dr_a", source="offline", content={"Summary": "text", "Steps": ["a", "b"]}
    )
    message = storage.add_chat_message(
        session, username="dr_a", conversation_id="c1", role="user", content="about this scan", scan_id=scan.id
    )
    storage.delete_scan(session, settings=settings, scan_id=scan.id)

    assert storage.get_scan(session, scan_id=scan.id) is None
    assert not image_path.exists()
    assert storage.list_treatment_plans(session, scan_id=scan.id) == []
    with sqlite3.connect(settings.data_dir / "lungscan.db") as raw:
        assert raw.execute("SELECT COUNT(*) FROM treatment_plans").fetchone()[0] == 0
        assert raw.execute("SELECT scan_id FROM chat_messages WHERE id = ?", (message.id,)).fetchone()[0] is None
    with pytest.raises(NotFoundError):
        storage.delete_scan(session, settings=settings, scan_id=scan.id)


def test_delete_scan_keeps_an_image_another_scan_shares(settings, session):
    data = png_bytes(6)
    first = storage.create_scan(session, settings=settings, scan=make_scan(), image=data, created_by="dr_a")
    second = storage.create_scan(session, settings=settings, scan=make_scan(), image=data, created_by="dr_a")
    path = storage.scan_image_path(settings, first)
    storage.delete_scan(session, settings=settings, scan_id=first.id)
    assert path.is_file()
    storage.delete_scan(session, settings=settings, scan_id=second.id)
    assert not path.exists()


def test_treatment_plans_keep_section_order_and_validate(settings, session):
    scan = storage.create_scan(session, settings=settings, scan=make_scan(), image=png_bytes(), created_by="dr_a")
    content = {"Zeta first": "ü text", "Alpha second": ["one", "two"]}
    storage.create_treatment_plan(session, scan_id=scan.id, created_by="dr_a", source="gemini", content=content,
                                  model_name="gemini-2.5-flash", prompt_version="v1")
    latest = storage.create_treatment_plan(session, scan_id=scan.id, created_by="dr_a", source="offline",
                                           content={"Only": "x"})
    plans = storage.list_treatment_plans(session, scan_id=scan.id)
    assert [p.id for p in plans] == [latest.id, plans[1].id]
    assert list(plans[1].content) == ["Zeta first", "Alpha second"] and plans[1].content["Zeta first"] == "ü text"
    with pytest.raises(ValidationError):
        storage.create_treatment_plan(session, scan_id=scan.id, created_by="dr_a", source="gpt", content={})
    with pytest.raises(NotFoundError):
        storage.create_treatment_plan(session, scan_id=9999, created_by="dr_a", source="offline", content={})


def test_chat_messages_are_per_user_and_conversation(session):
    storage.add_chat_message(session, username="a", conversation_id="c1", role="user", content="hi")
    storage.add_chat_message(session, username="a", conversation_id="c1", role="assistant", content="hello",
                             sources=[{"title": "KB", "id": 3}])
    storage.add_chat_message(session, username="a", conversation_id="c2", role="user", content="other")
    storage.add_chat_message(session, username="b", conversation_id="c1", role="user", content="not yours")

    messages = storage.list_chat_messages(session, username="a", conversation_id="c1")
    assert [m.content for m in messages] == ["hi", "hello"]
    assert messages[1].sources == [{"title": "KB", "id": 3}] and messages[0].sources is None
    assert storage.list_conversations(session, username="a") == ["c2", "c1"]
    assert storage.clear_conversation(session, username="a", conversation_id="c1") == 2
    assert storage.list_chat_messages(session, username="a", conversation_id="c1") == []
    assert len(storage.list_chat_messages(session, username="b", conversation_id="c1")) == 1
    with pytest.raises(ValidationError):
        storage.add_chat_message(session, username="a", conversation_id="c1", role="system", content="x")


def test_users_are_unique_case_insensitively(session):
    storage.add_user(session, user=User(username="alice", name="Alice", password_hash="h", role="clinician"))
    assert storage.get_user(session, username=" ALICE ").name == "Alice"
    with pytest.raises(DuplicateUserError):
        storage.add_user(session, user=User(username="alice", name="Alice 2", password_hash="h", role="student"))
    assert [u.username for u in storage.list_users(session)] == ["alice"]
