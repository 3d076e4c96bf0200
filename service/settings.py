"""Hold every setting of the service and the command line, read once from the environment."""

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LimitSettings(BaseModel):
    """Limits on what one upload may be."""

    max_upload_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_pixels: int = Field(default=50_000_000, gt=0)


class Settings(BaseSettings):
    """Settings of memberlens; each field can be set as `MEMBERLENS_<FIELD>` (nested: `__`)."""

    model_config = SettingsConfigDict(env_prefix="MEMBERLENS_", env_nested_delimiter="__")

    bundle: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    torch_threads: int = Field(default=0, ge=0)
    limits: LimitSettings = LimitSettings()
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$")


def load_settings() -> Settings:
    """Build the settings from the environment; call once at an entry point."""
    return Settings()
