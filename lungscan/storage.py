"""SQLite storage for scans, users, treatment plans and assistant chat history.

Tables are SQLModel models with Create/Public variants; CRUD functions are
keyword-only and take a `session`. The schema is created and changed only by the
numbered migrations in `MIGRATIONS`, applied by `init_db` and tracked with SQLite's
``PRAGMA user_version`` (never by deleting the database file).

Scan images live on disk under ``settings.uploads_dir``, named by the SHA-256 of
their bytes, and the database stores the path relative to that folder. Creating a
scan writes the file first and commits the row second; if the commit fails the new
file is removed, so a failure leaves neither. Deleting a scan deletes its treatment
plans (``ON DELETE CASCADE``) and its image file once no other scan refers to it.

Sessions: pages should use `new_session(engine)` (``expire_on_commit=False``) so
objects returned by CRUD functions stay readable after the session closes.
"""

import hashlib
import io
import json
import logging
import os
import re
import tempfile
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from PIL import Image
from pydantic import ValidationError as PydanticValidationError
from pydantic import field_validator, model_validator
from sqlalchemy import Connection, Engine, and_, event, func, or_
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import DateTime, TypeDecorator
from sqlmodel import Field, Session, SQLModel, col, create_engine, delete, select

from .config import Settings
from .errors import DuplicateUserError, NotFoundError, StorageError, ValidationError

logger = logging.getLogger(__name__)

SEXES: tuple[str, ...] = ("female", "male", "other")
SMOKING_STATUSES: tuple[str, ...] = ("never", "former", "current", "unknown")
ROLES: tuple[str, ...] = ("admin", "clinician", "student")
PLAN_SOURCES: tuple[str, ...] = ("gemini", "offline")
CHAT_ROLES: tuple[str, ...] = ("user", "assistant")
#: The `list_scans` result filter for scans whose image the input check doubted (no class is reported for them).
NO_FINDING_RESULT = "no_finding"
#: Image suffixes the scan store accepts (DICOM only once anonymised by `lungscan.dicom`).
IMAGE_SUFFIXES: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".dcm")

_PATIENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{1,31}$")
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MAX_TEXT = 4000


def utc_now() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores timestamps as naive UTC (SQLite has no time zones) and returns them UTC-aware."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("LungScan stores only timezone-aware datetimes (use UTC).")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _clean_text(value: str | None, *, field: str, max_length: int = _MAX_TEXT) -> str:
    value = (value or "").strip()
    if len(value) > max_length:
        raise ValueError(f"{field} is {len(value)} characters long; the limit is {max_length}.")
    return value


def sanitise_filename(name: str | None) -> str:
    """A filename kept only as a display label: no folders, no control or odd characters, 120 chars max."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = re.sub(r"[^\w .()+-]", "_", base, flags=re.ASCII).strip(" .")
    return base[:120]


def validation_message(exc: PydanticValidationError) -> str:
    """A pydantic validation error as one readable sentence per problem, for `st.error`."""
    lines = []
    for error in exc.errors():
        field = ".".join(str(part) for part in error["loc"]).replace("_", " ")
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"{field.capitalize()}: {message}" if field else message)
    return "\n".join(lines)


# --- Patient intake -----------------------------------------------------------------------------


class PatientIntake(SQLModel):
    """Clinical history recorded with a scan. The patient is identified only by a pseudonymous ID."""

    patient_id: str = Field(index=True, max_length=64)
    age: int | None = Field(default=None, ge=0, le=120)
    sex: str | None = None
    smoking_status: str = "unknown"
    smoking_years: int | None = Field(default=None, ge=0, le=100)
    cigarettes_per_day: int | None = Field(default=None, ge=0, le=200)
    passive_smoking: bool = False
    quit_date: date | None = None
    previous_lung_disease: str = ""
    previous_infections: str = ""
    chronic_cough: bool = False
    cough_duration_weeks: int | None = Field(default=None, ge=0, le=1000)
    occupational_exposure: bool = False
    occupational_details: str = ""
    air_pollution_exposure: bool = False
    shortness_of_breath: bool = False
    chest_pain: bool = False
    weight_loss: bool = False
    fatigue: bool = False
    sputum: bool = False
    comorbidities: str = ""
    #: Clinician-entered stage, free text such as "IIIA" or "T2N0M0"; never inferred by the model.
    stage: str | None = Field(default=None, max_length=32)
    notes: str = ""

    @property
    def pack_years(self) -> float | None:
        """Cigarettes per day / 20 x years smoked, or None when either is unknown."""
        if self.cigarettes_per_day is None or self.smoking_years is None:
            return None
        return self.cigarettes_per_day / 20 * self.smoking_years

    @field_validator("patient_id", mode="before")
    @classmethod
    def _check_patient_id(cls, value: str) -> str:
        value = (value or "").strip() if isinstance(value, str) else value
        if not isinstance(value, str) or not _PATIENT_ID_RE.match(value):
            raise ValueError(
                "Patient ID must be a pseudonymous code of 1-64 letters, digits, '.', '_' or '-' "
                "(for example P-0042); never a name."
            )
        return value

    @field_validator("sex", mode="before")
    @classmethod
    def _check_sex(cls, value: str | None) -> str | None:
        if value is None or (isinstance(value, str) and value.strip() == ""):
            return None
        value = str(value).strip().lower()
        if value not in SEXES:
            raise ValueError(f"Sex must be one of {', '.join(SEXES)} or left empty.")
        return value

    @field_validator("smoking_status", mode="before")
    @classmethod
    def _check_smoking_status(cls, value: str | None) -> str:
        value = (value or "unknown").strip().lower()
        if value not in SMOKING_STATUSES:
            raise ValueError(f"Smoking status must be one of {', '.join(SMOKING_STATUSES)}.")
        return value

    @field_validator(
        "previous_lung_disease",
        "previous_infections",
        "occupational_details",
        "comorbidities",
        "notes",
        mode="before",
    )
    @classmethod
    def _check_free_text(cls, value: str | None, info: Any) -> str:
        return _clean_text(value, field=info.field_name.replace("_", " ").capitalize())

    @field_validator("stage", mode="before")
    @classmethod
    def _check_stage(cls, value: str | None) -> str | None:
        value = (value or "").strip()
        return value or None

    @field_validator("quit_date")
    @classmethod
    def _check_quit_date(cls, value: date | None) -> date | None:
        if value is not None and value > utc_now().date():
            raise ValueError("Quit date cannot be in the future.")
        return value

    @model_validator(mode="after")
    def _check_smoking_consistency(self) -> "PatientIntake":
        if self.smoking_status == "never" and (self.smoking_years or self.cigarettes_per_day or self.quit_date):
            raise ValueError("A never-smoker cannot have smoking years, cigarettes per day or a quit date.")
        if self.quit_date is not None and self.smoking_status == "current":
            raise ValueError("A current smoker cannot have a quit date; choose 'former'.")
        return self


# --- Scans --------------------------------------------------------------------------------------


class ScanResult(SQLModel):
    """What the model said about a scan, and where the image came from."""

    source_format: str = Field(max_length=16)
    original_filename: str = Field(default="", max_length=120)
    model_arch: str = Field(max_length=64)
    model_version: str = Field(max_length=128)
    predicted_class: str = Field(index=True, max_length=64)
    confidence: float = Field(ge=0.0, le=1.0)
    #: Set when the input gate doubted the image was a chest CT slice (its reason).
    gate_flag: str | None = Field(default=None, max_length=500)

    @field_validator("original_filename", mode="before")
    @classmethod
    def _sanitise_filename(cls, value: str | None) -> str:
        return sanitise_filename(value)

    @field_validator("source_format", mode="before")
    @classmethod
    def _lower_format(cls, value: str) -> str:
        return (value or "").strip().lower()


class ScanCreate(PatientIntake, ScanResult):
    """Everything the Scan page knows before saving; storage adds the image, author and time."""

    probabilities: dict[str, float]

    @field_validator("probabilities")
    @classmethod
    def _check_probabilities(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("Probabilities are empty.")
        if any(not 0.0 <= p <= 1.0 for p in value.values()):
            raise ValueError("Every probability must lie in [0, 1].")
        if abs(sum(value.values()) - 1.0) > 1e-3:
            raise ValueError(f"Probabilities sum to {sum(value.values()):.4f}, not 1.")
        return value

    @model_validator(mode="after")
    def _check_prediction(self) -> "ScanCreate":
        if self.predicted_class not in self.probabilities:
            raise ValueError(f"Predicted class {self.predicted_class!r} is not among the probabilities.")
        return self


class Scan(PatientIntake, ScanResult, table=True):
    __tablename__ = "scans"

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime, index=True)
    created_by: str = Field(index=True, max_length=32)
    #: Path relative to settings.uploads_dir.
    image_path: str = Field(max_length=255)
    image_sha256: str = Field(index=True, max_length=64)
    probabilities_json: str

    @property
    def probabilities(self) -> dict[str, float]:
        return json.loads(self.probabilities_json)


class ScanPublic(PatientIntake, ScanResult):
    """A saved scan as pages and exports see it (probabilities parsed)."""

    id: int
    created_at: datetime
    created_by: str
    image_path: str
    image_sha256: str
    probabilities: dict[str, float]

    @classmethod
    def from_scan(cls, scan: Scan) -> "ScanPublic":
        return cls.model_validate(scan.model_dump() | {"probabilities": scan.probabilities})


# --- Users --------------------------------------------------------------------------------------


class UserBase(SQLModel):
    username: str = Field(unique=True, index=True, max_length=32)
    name: str = Field(max_length=100)
    email: str = Field(default="", max_length=254)
    role: str = Field(default="clinician", max_length=16)
    disabled: bool = False

    @field_validator("username", mode="before")
    @classmethod
    def _check_username(cls, value: str) -> str:
        value = (value or "").strip().lower()
        if not _USERNAME_RE.match(value):
            raise ValueError("Username must be 2-32 lower-case letters, digits, '.', '_' or '-'.")
        return value

    @field_validator("name", mode="before")
    @classmethod
    def _check_name(cls, value: str) -> str:
        value = (value or "").strip()
        if not value:
            raise ValueError("Name cannot be empty.")
        return value

    @field_validator("email", mode="before")
    @classmethod
    def _check_email(cls, value: str | None) -> str:
        value = (value or "").strip()
        if value and not _EMAIL_RE.match(value):
            raise ValueError(f"{value!r} is not an email address.")
        return value

    @field_validator("role", mode="before")
    @classmethod
    def _check_role(cls, value: str) -> str:
        value = (value or "").strip().lower()
        if value not in ROLES:
            raise ValueError(f"Role must be one of {', '.join(ROLES)}.")
        return value


class User(UserBase, table=True):
    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    password_hash: str = Field(max_length=128)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)


class UserCreate(UserBase):
    """A new user as the admin form enters it; `lungscan.auth.create_user` hashes the password."""

    password: str


class UserPublic(UserBase):
    """A user without the password hash."""

    id: int
    created_at: datetime


# --- Treatment plans and chat -------------------------------------------------------------------


class TreatmentPlan(SQLModel, table=True):
    __tablename__ = "treatment_plans"

    id: int | None = Field(default=None, primary_key=True)
    scan_id: int = Field(foreign_key="scans.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)
    created_by: str = Field(max_length=32)
    source: str = Field(max_length=16)
    model_name: str = Field(default="", max_length=128)
    prompt_version: str = Field(default="", max_length=32)
    request_text: str = ""
    #: Ordered sections, title -> text or list of strings.
    content_json: str

    @property
    def content(self) -> dict[str, str | list[str]]:
        return json.loads(self.content_json)


class ChatMessage(SQLModel, table=True):
    __tablename__ = "chat_messages"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, max_length=32)
    conversation_id: str = Field(index=True, max_length=64)
    role: str = Field(max_length=16)
    content: str
    sources_json: str | None = None
    scan_id: int | None = Field(default=None, foreign_key="scans.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utc_now, sa_type=UTCDateTime)

    @property
    def sources(self) -> list[Any] | None:
        return None if self.sources_json is None else json.loads(self.sources_json)


# --- Engine and migrations ----------------------------------------------------------------------

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _enable_foreign_keys(dbapi_connection: Any, connection_record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def get_engine(url: str) -> Engine:
    """The engine for a database URL, created once per URL (SQLite only; foreign keys on).

    Creates the parent folder of a SQLite file so a fresh data_dir works.
    """
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            raise StorageError(f"LungScan's storage and migrations support SQLite only, not {parsed.drivername!r}.")
        kwargs: dict[str, Any] = {"connect_args": {"check_same_thread": False}}
        if parsed.database in (None, "", ":memory:"):
            kwargs["poolclass"] = StaticPool  # one shared connection, or each would see its own empty database
        else:
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _enable_foreign_keys)
        _engines[url] = engine
        return engine


def new_session(engine: Engine) -> Session:
    """A session whose objects stay readable after commit and close (pages render them later)."""
    return Session(engine, expire_on_commit=False)


# Migration 1 is frozen DDL, not `metadata.create_all`, so that a later model change cannot
# silently alter what version 1 means. A schema change = a new function appended here.
_MIGRATION_1 = (
    """
    CREATE TABLE scans (
        patient_id VARCHAR(64) NOT NULL,
        age INTEGER,
        sex VARCHAR,
        smoking_status VARCHAR NOT NULL,
        smoking_years INTEGER,
        cigarettes_per_day INTEGER,
        passive_smoking BOOLEAN NOT NULL,
        quit_date DATE,
        previous_lung_disease VARCHAR NOT NULL,
        previous_infections VARCHAR NOT NULL,
        chronic_cough BOOLEAN NOT NULL,
        cough_duration_weeks INTEGER,
        occupational_exposure BOOLEAN NOT NULL,
        occupational_details VARCHAR NOT NULL,
        air_pollution_exposure BOOLEAN NOT NULL,
        shortness_of_breath BOOLEAN NOT NULL,
        chest_pain BOOLEAN NOT NULL,
        weight_loss BOOLEAN NOT NULL,
        fatigue BOOLEAN NOT NULL,
        sputum BOOLEAN NOT NULL,
        comorbidities VARCHAR NOT NULL,
        stage VARCHAR(32),
        notes VARCHAR NOT NULL,
        source_format VARCHAR(16) NOT NULL,
        original_filename VARCHAR(120) NOT NULL,
        model_arch VARCHAR(64) NOT NULL,
        model_version VARCHAR(128) NOT NULL,
        predicted_class VARCHAR(64) NOT NULL,
        confidence FLOAT NOT NULL,
        gate_flag VARCHAR(500),
        id INTEGER NOT NULL,
        created_at DATETIME NOT NULL,
        created_by VARCHAR(32) NOT NULL,
        image_path VARCHAR(255) NOT NULL,
        image_sha256 VARCHAR(64) NOT NULL,
        probabilities_json VARCHAR NOT NULL,
        PRIMARY KEY (id)
    )
    """,
    "CREATE INDEX ix_scans_patient_id ON scans (patient_id)",
    "CREATE INDEX ix_scans_predicted_class ON scans (predicted_class)",
    "CREATE INDEX ix_scans_created_at ON scans (created_at)",
    "CREATE INDEX ix_scans_created_by ON scans (created_by)",
    "CREATE INDEX ix_scans_image_sha256 ON scans (image_sha256)",
    """
    CREATE TABLE users (
        username VARCHAR(32) NOT NULL,
        name VARCHAR(100) NOT NULL,
        email VARCHAR(254) NOT NULL,
        role VARCHAR(16) NOT NULL,
        disabled BOOLEAN NOT NULL,
        id INTEGER NOT NULL,
        password_hash VARCHAR(128) NOT NULL,
        created_at DATETIME NOT NULL,
        PRIMARY KEY (id)
    )
    """,
    "CREATE UNIQUE INDEX ix_users_username ON users (username)",
    """
    CREATE TABLE treatment_plans (
        id INTEGER NOT NULL,
        scan_id INTEGER NOT NULL,
        created_at DATETIME NOT NULL,
        created_by VARCHAR(32) NOT NULL,
        source VARCHAR(16) NOT NULL,
        model_name VARCHAR(128) NOT NULL,
        prompt_version VARCHAR(32) NOT NULL,
        request_text VARCHAR NOT NULL,
        content_json VARCHAR NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(scan_id) REFERENCES scans (id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX ix_treatment_plans_scan_id ON treatment_plans (scan_id)",
    """
    CREATE TABLE chat_messages (
        id INTEGER NOT NULL,
        username VARCHAR(32) NOT NULL,
        conversation_id VARCHAR(64) NOT NULL,
        role VARCHAR(16) NOT NULL,
        content VARCHAR NOT NULL,
        sources_json VARCHAR,
        scan_id INTEGER,
        created_at DATETIME NOT NULL,
        PRIMARY KEY (id),
        FOREIGN KEY(scan_id) REFERENCES scans (id) ON DELETE SET NULL
    )
    """,
    "CREATE INDEX ix_chat_messages_username ON chat_messages (username)",
    "CREATE INDEX ix_chat_messages_conversation_id ON chat_messages (conversation_id)",
)


def _migration_1(connection: Connection) -> None:
    """Create every table."""
    for statement in _MIGRATION_1:
        connection.exec_driver_sql(statement)


#: Schema migrations in order; migration N brings the database to ``user_version`` N.
MIGRATIONS: tuple[Callable[[Connection], None], ...] = (_migration_1,)
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.exec_driver_sql("PRAGMA user_version").scalar_one())


def init_db(engine: Engine) -> int:
    """Bring the database to the newest schema; returns the schema version.

    Each migration runs in its own transaction together with its ``user_version``
    bump, so a failed migration leaves the previous version intact. A database newer
    than this code is refused rather than guessed at.
    """
    current = schema_version(engine)
    if current > SCHEMA_VERSION:
        raise StorageError(
            f"The database is at schema version {current}, newer than this LungScan ({SCHEMA_VERSION}). "
            "Upgrade LungScan instead of downgrading the database."
        )
    for version in range(current + 1, SCHEMA_VERSION + 1):
        migration = MIGRATIONS[version - 1]
        try:
            with engine.begin() as connection:
                migration(connection)
                connection.exec_driver_sql(f"PRAGMA user_version = {version:d}")
        except SQLAlchemyError as exc:
            raise StorageError(f"Database migration {version} failed: {exc}") from exc
        logger.info("Database migrated to schema version %d", version)
    return SCHEMA_VERSION


# --- Scan images --------------------------------------------------------------------------------


def _normalise_suffix(suffix: str) -> str:
    suffix = suffix.lower() if suffix.startswith(".") else "." + suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ValidationError(f"Scan images are stored as {', '.join(IMAGE_SUFFIXES)}, not {suffix!r}.")
    return ".jpg" if suffix == ".jpeg" else suffix


def _image_relative_path(sha256: str, suffix: str) -> str:
    return f"{sha256[:2]}/{sha256}{suffix}"


def save_scan_image(settings: Settings, data: bytes, suffix: str) -> str:
    """Store image bytes under ``settings.uploads_dir`` by SHA-256; returns the relative path.

    Identical bytes map to one file, so saving twice is harmless. The write is atomic
    (temporary file + rename), so a crash never leaves a half-written image.
    """
    if not data:
        raise ValidationError("Refusing to store an empty image.")
    suffix = _normalise_suffix(suffix)
    digest = hashlib.sha256(data).hexdigest()
    relative = _image_relative_path(digest, suffix)
    target = settings.uploads_dir / relative
    if target.is_file():
        return relative
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=suffix)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp_name, target)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise StorageError(f"Could not store the scan image: {exc.strerror or exc}") from exc
    return relative


def scan_image_path(settings: Settings, scan: Scan | ScanPublic) -> Path:
    """Absolute path of a scan's stored image (refuses paths escaping the uploads folder)."""
    root = settings.uploads_dir.resolve()
    path = (root / scan.image_path).resolve()
    if not path.is_relative_to(root):
        raise StorageError(f"Scan {scan.id} has an image path outside the uploads folder.")
    return path


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of a PIL image (how rendered DICOM slices and decoded uploads are stored)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()


# --- Scan CRUD ----------------------------------------------------------------------------------


def create_scan(
    session: Session,
    *,
    settings: Settings,
    scan: ScanCreate,
    image: bytes | Image.Image,
    image_suffix: str = ".png",
    created_by: str,
) -> Scan:
    """Save a scan: image file first, then the row; on failure neither remains.

    `image` is the bytes to keep (PNG/JPEG upload, or anonymised DICOM) or a PIL image,
    which is stored as PNG.
    """
    if isinstance(image, Image.Image):
        data, image_suffix = encode_png(image), ".png"
    else:
        data = bytes(image)
    digest = hashlib.sha256(data).hexdigest()
    relative = _image_relative_path(digest, _normalise_suffix(image_suffix))
    existed_before = (settings.uploads_dir / relative).is_file()
    relative = save_scan_image(settings, data, image_suffix)
    row = Scan(
        **scan.model_dump(exclude={"probabilities"}),
        probabilities_json=json.dumps(scan.probabilities),
        image_path=relative,
        image_sha256=digest,
        created_by=created_by,
    )
    try:
        session.add(row)
        session.commit()
    except BaseException as exc:
        session.rollback()
        if not existed_before and not _image_in_use(session, relative):
            (settings.uploads_dir / relative).unlink(missing_ok=True)
        if isinstance(exc, SQLAlchemyError):
            raise StorageError(f"Could not save the scan: {exc}") from exc
        raise
    session.refresh(row)
    logger.info("Saved scan %s for patient %s by %s", row.id, row.patient_id, created_by)
    return row


def _image_in_use(session: Session, relative: str) -> bool:
    """True when a committed scan row refers to this image (another upload of the same bytes)."""
    statement = select(func.count()).select_from(Scan).where(Scan.image_path == relative)
    return bool(session.exec(statement).one())


def get_scan(session: Session, *, scan_id: int) -> Scan | None:
    return session.get(Scan, scan_id)


def _start_of(day: date | datetime) -> datetime:
    if isinstance(day, datetime):
        return day if day.tzinfo else day.replace(tzinfo=UTC)
    return datetime.combine(day, time.min, tzinfo=UTC)


def list_scans(
    session: Session,
    *,
    date_from: date | datetime | None = None,
    date_to: date | datetime | None = None,
    predicted_class: str | Sequence[str] | None = None,
    result: Sequence[str] | None = None,
    patient_id: str | None = None,
    created_by: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[Scan]:
    """Scans, newest first. A `date_to` date includes that whole day (UTC); datetimes are exact.

    `predicted_class` matches the model's class whatever the input check said; `result` matches what the app reports:
    a class name selects the scans that got that class, `NO_FINDING_RESULT` those whose image the input check doubted.
    """
    statement = select(Scan)
    if date_from is not None:
        statement = statement.where(col(Scan.created_at) >= _start_of(date_from))
    if date_to is not None:
        if isinstance(date_to, datetime):
            statement = statement.where(col(Scan.created_at) <= _start_of(date_to))
        else:
            statement = statement.where(col(Scan.created_at) < _start_of(date_to + timedelta(days=1)))
    if predicted_class:
        classes = [predicted_class] if isinstance(predicted_class, str) else list(predicted_class)
        statement = statement.where(col(Scan.predicted_class).in_(classes))
    if result:
        classes = [name for name in result if name != NO_FINDING_RESULT]
        matches = [and_(col(Scan.predicted_class).in_(classes), col(Scan.gate_flag).is_(None))] if classes else []
        if NO_FINDING_RESULT in result:
            matches.append(col(Scan.gate_flag).is_not(None))
        statement = statement.where(or_(*matches))
    if patient_id:
        statement = statement.where(Scan.patient_id == patient_id.strip())
    if created_by:
        statement = statement.where(Scan.created_by == created_by)
    statement = statement.order_by(col(Scan.created_at).desc(), col(Scan.id).desc()).offset(offset)
    if limit is not None:
        statement = statement.limit(limit)
    return list(session.exec(statement).all())


def count_scans(session: Session) -> int:
    return int(session.exec(select(func.count()).select_from(Scan)).one())


def delete_scan(session: Session, *, settings: Settings, scan_id: int) -> None:
    """Delete a scan, its treatment plans and (if no other scan shares it) its image file.

    The row goes first; a file that then fails to delete is only logged, because an
    orphaned file is harmless while a row without its image is not.
    """
    scan = session.get(Scan, scan_id)
    if scan is None:
        raise NotFoundError(f"Scan {scan_id} does not exist.")
    image_path = scan_image_path(settings, scan)
    relative = scan.image_path
    try:
        session.delete(scan)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        raise StorageError(f"Could not delete scan {scan_id}: {exc}") from exc
    if not _image_in_use(session, relative):
        try:
            image_path.unlink(missing_ok=True)
        except OSError as exc:
            logger.warning("Scan %s deleted but its image %s could not be removed: %s", scan_id, image_path, exc)
    logger.info("Deleted scan %s", scan_id)


# --- User CRUD (hashing and policy live in lungscan.auth) ---------------------------------------


def get_user(session: Session, *, username: str) -> User | None:
    return session.exec(select(User).where(User.username == username.strip().lower())).first()


def list_users(session: Session, *, include_disabled: bool = True) -> list[User]:
    statement = select(User).order_by(col(User.username))
    if not include_disabled:
        statement = statement.where(col(User.disabled).is_(False))
    return list(session.exec(statement).all())


def count_active_admins(session: Session) -> int:
    statement = select(func.count()).select_from(User).where(User.role == "admin", col(User.disabled).is_(False))
    return int(session.exec(statement).one())


def add_user(session: Session, *, user: User) -> User:
    """Insert a user row (password already hashed); refuses a taken username."""
    if get_user(session, username=user.username) is not None:
        raise DuplicateUserError(f"User {user.username!r} already exists.")
    try:
        session.add(user)
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        raise DuplicateUserError(f"User {user.username!r} already exists.") from exc
    session.refresh(user)
    return user


def save_user(session: Session, *, user: User) -> User:
    """Commit changes made to a user row."""
    try:
        session.add(user)
        session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        raise StorageError(f"Could not save user {user.username!r}: {exc}") from exc
    session.refresh(user)
    return user


def delete_user(session: Session, *, username: str) -> None:
    user = get_user(session, username=username)
    if user is None:
        raise NotFoundError(f"User {username!r} does not exist.")
    session.delete(user)
    session.commit()


# --- Treatment plans ----------------------------------------------------------------------------


def create_treatment_plan(
    session: Session,
    *,
    scan_id: int,
    created_by: str,
    source: str,
    content: dict[str, str | list[str]],
    model_name: str = "",
    prompt_version: str = "",
    request_text: str = "",
) -> TreatmentPlan:
    """Store a generated plan; `content` is an ordered mapping of section title -> text or bullet list."""
    if source not in PLAN_SOURCES:
        raise ValidationError(f"Plan source must be one of {', '.join(PLAN_SOURCES)}.")
    if session.get(Scan, scan_id) is None:
        raise NotFoundError(f"Scan {scan_id} does not exist.")
    plan = TreatmentPlan(
        scan_id=scan_id,
        created_by=created_by,
        source=source,
        model_name=model_name,
        prompt_version=prompt_version,
        request_text=request_text,
        content_json=json.dumps(content, ensure_ascii=False),
    )
    session.add(plan)
    session.commit()
    session.refresh(plan)
    return plan


def list_treatment_plans(session: Session, *, scan_id: int) -> list[TreatmentPlan]:
    """Plans for a scan, newest first."""
    statement = (
        select(TreatmentPlan)
        .where(TreatmentPlan.scan_id == scan_id)
        .order_by(col(TreatmentPlan.created_at).desc(), col(TreatmentPlan.id).desc())
    )
    return list(session.exec(statement).all())


# --- Assistant chat -----------------------------------------------------------------------------


def add_chat_message(
    session: Session,
    *,
    username: str,
    conversation_id: str,
    role: str,
    content: str,
    sources: list[Any] | None = None,
    scan_id: int | None = None,
) -> ChatMessage:
    if role not in CHAT_ROLES:
        raise ValidationError(f"Chat role must be one of {', '.join(CHAT_ROLES)}.")
    message = ChatMessage(
        username=username,
        conversation_id=conversation_id,
        role=role,
        content=content,
        sources_json=None if sources is None else json.dumps(sources, ensure_ascii=False),
        scan_id=scan_id,
    )
    session.add(message)
    session.commit()
    session.refresh(message)
    return message


def list_chat_messages(session: Session, *, username: str, conversation_id: str) -> list[ChatMessage]:
    """A user's conversation, oldest message first."""
    statement = (
        select(ChatMessage)
        .where(ChatMessage.username == username, ChatMessage.conversation_id == conversation_id)
        .order_by(col(ChatMessage.created_at), col(ChatMessage.id))
    )
    return list(session.exec(statement).all())


def list_conversations(session: Session, *, username: str) -> list[str]:
    """A user's conversation IDs, most recently active first."""
    statement = (
        select(ChatMessage.conversation_id)
        .where(ChatMessage.username == username)
        .group_by(col(ChatMessage.conversation_id))
        .order_by(func.max(ChatMessage.id).desc())
    )
    return list(session.exec(statement).all())


def clear_conversation(session: Session, *, username: str, conversation_id: str) -> int:
    """Delete a user's conversation; returns how many messages were removed."""
    statement = delete(ChatMessage).where(
        col(ChatMessage.username) == username, col(ChatMessage.conversation_id) == conversation_id
    )
    result = session.exec(statement)
    session.commit()
    return int(result.rowcount or 0)
