"""Every `st.cache_resource` loader of the app, in one place.

Resources cached here are shared by all sessions of the process: the settings, the
database engine (created, migrated and seeded with the admin user once), one
`Predictor` per checkpoint file and the LLM client. Pages never build these
themselves; they call the functions below.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import streamlit as st
from PIL import Image
from sqlalchemy.engine import Engine

from lungscan.config import Settings

if TYPE_CHECKING:
    from lungscan.inference import Predictor
    from lungscan.llm.gemini import GeminiClient

log = logging.getLogger(__name__)


@st.cache_resource(show_spinner=False)
def get_settings() -> Settings:
    """The process-wide settings (environment, then .streamlit/secrets.toml, then defaults)."""
    settings = Settings()
    log.info("LungScan data folder: %s; models folder: %s", settings.data_dir, settings.models_dir)
    return settings


@st.cache_resource(show_spinner=False)
def _engine_for(database_url: str) -> Engine:
    """Create the engine for a URL, migrate the schema and bootstrap the admin account, once."""
    from lungscan import auth, storage

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    engine = storage.get_engine(database_url)
    storage.init_db(engine)
    with storage.new_session(engine) as session:
        password = settings.admin_password.get_secret_value() if settings.admin_password else None
        # Logs a generated password once (WARNING, so it reaches the console) when none is configured.
        auth.ensure_admin(session, password=password or None)
    return engine


def get_engine() -> Engine:
    """The SQLModel engine of the configured database (schema migrated, admin present)."""
    return _engine_for(get_settings().resolved_database_url)


@st.cache_resource(show_spinner=False, max_entries=16)
def _predictor_for(checkpoint_path: str, mtime_ns: int, device: str | None, precision: str = "fp32") -> Predictor:
    """Load one checkpoint; keyed by path and modification time so a retrained file reloads."""
    from lungscan.inference import Predictor

    log.info("Loading model checkpoint %s (device=%s)", checkpoint_path, device or "auto")
    return Predictor.from_checkpoint(Path(checkpoint_path), device=device, precision=precision)


def get_predictor(checkpoint_path: Path) -> Predictor:
    """The shared `Predictor` for a checkpoint file, on CUDA, MPS or CPU (Settings.device)."""
    settings = get_settings()
    path = Path(checkpoint_path).resolve()
    device = None if settings.device == "auto" else settings.device
    return _predictor_for(str(path), path.stat().st_mtime_ns, device, settings.inference_precision)


@st.cache_resource(show_spinner=False)
def logout_registry() -> dict[str, float]:
    """username -> time of their last logout; re-authentication cookies issued earlier are refused."""
    return {}


@st.cache_data(show_spinner=False, max_entries=64)
def cached_cam(checkpoint_path: str, image_key: str, target_class: str, method: str, _image: Image.Image) -> np.ndarray:
    """A class activation map, cached by checkpoint, image digest, class and method.

    Moving the opacity slider or reopening a result then costs nothing; `lungscan.explain`
    serialises the hook-installing work itself because the models are shared.
    """
    from lungscan.explain import compute_cam

    return compute_cam(get_predictor(Path(checkpoint_path)), _image, target_class, method)


def available_checkpoints() -> dict[str, Path]:
    """Architectures with a checkpoint on disk, the default first (not cached: files may appear)."""
    from lungscan import inference
    from lungscan.errors import CheckpointError

    models_dir = get_settings().models_dir
    found = inference.available_checkpoints(models_dir)
    try:
        default = inference.default_checkpoint(models_dir)
    except CheckpointError:
        return dict(found)
    ordered = {arch: path for arch, path in found.items() if Path(path) == Path(default)}
    ordered.update(found)
    return ordered


# --- LLM client (pages/treatment.py, pages/assistant.py) -------------------------------------------


@st.cache_resource(show_spinner=False, max_entries=4)
def _gemini_client_for(
    key_fingerprint: str, model: str, base_url: str | None, timeout_s: float, _api_key: str
) -> GeminiClient:
    """One Gemini client per (key, model, base URL, timeout); the key itself is not a cache key."""
    from lungscan.llm.gemini import GeminiClient

    log.info("Creating the Gemini client (model %s, base URL %s)", model, base_url or "default")
    return GeminiClient(api_key=_api_key, model=model, base_url=base_url, timeout_s=timeout_s)


def get_gemini_client() -> GeminiClient | None:
    """The shared Gemini client, or None when no GEMINI_API_KEY is configured (pages then work offline)."""
    settings = get_settings()
    key = settings.gemini_api_key.get_secret_value().strip() if settings.gemini_api_key else ""
    if not key:
        return None
    fingerprint = hashlib.sha256(key.encode()).hexdigest()[:16]
    return _gemini_client_for(
        fingerprint, settings.gemini_model, settings.gemini_base_url or None, settings.gemini_timeout_s, key
    )
