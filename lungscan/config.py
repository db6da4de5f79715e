"""One Settings object for paths, database, device and LLM configuration.

Values come, in order of precedence, from constructor arguments, environment
variables (prefix ``LUNGSCAN_``; the Gemini key and base URL also under their
standard names), ``.streamlit/secrets.toml`` and the defaults below. Secrets never
live in source.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SECRETS_FILE = PROJECT_ROOT / ".streamlit" / "secrets.toml"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LUNGSCAN_",
        extra="ignore",
        toml_file=SECRETS_FILE,
        populate_by_name=True,
    )

    data_dir: Path = PROJECT_ROOT / "data"
    models_dir: Path = PROJECT_ROOT / "models"
    #: Public dataset folder, used by the student demo gallery when present.
    dataset_dir: Path | None = None
    #: SQLAlchemy URL; defaults to a SQLite file inside data_dir.
    database_url: str | None = None
    #: "auto" picks CUDA, then MPS, then CPU.
    device: str = "auto"
    #: CPU inference precision: "fp32" (default, the reported numbers), "bf16" (about 1.5x faster on
    #: CPUs with native bf16, logits shift slightly), or "auto" (bf16 only where the CPU has it natively).
    inference_precision: Literal["auto", "fp32", "bf16"] = "fp32"

    admin_password: SecretStr | None = None
    cookie_key: SecretStr | None = None
    cookie_name: str = "lungscan_auth"
    session_timeout_minutes: int = 30

    gemini_api_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("GEMINI_API_KEY", "LUNGSCAN_GEMINI_API_KEY", "gemini_api_key")
    )
    #: A current GA Flash model (Google's deprecations page, Dec 2026); override with LUNGSCAN_GEMINI_MODEL.
    gemini_model: str = "gemini-3.8-flash"
    gemini_base_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("GOOGLE_GEMINI_BASE_URL", "LUNGSCAN_GEMINI_BASE_URL", "gemini_base_url"),
    )
    gemini_timeout_s: float = 30.0

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def resolved_dataset_dir(self) -> Path:
        return self.dataset_dir if self.dataset_dir is not None else self.data_dir / "chest-ct"

    @property
    def uploads_dir(self) -> Path:
        """Where analysed scan images are kept (outside git, inside data_dir)."""
        return self.data_dir / "scans"

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'lungscan.db'}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (tests build their own `Settings(...)` instead)."""
    return Settings()
