"""Hold every setting of the service and the command line, read once from the environment."""

import json
import re
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

API_KEY_HASH_PATTERN = re.compile(r"^sha256:[0-9a-f]{64}$")


class LimitSettings(BaseModel):
    """Limits on what one upload may be."""

    max_upload_bytes: int = Field(default=20 * 1024 * 1024, gt=0)
    max_pixels: int = Field(default=50_000_000, gt=0)
    max_batch_photos: int = Field(default=8, ge=1, le=64)
    max_batch_bytes: int = Field(default=48 * 1024 * 1024, gt=0)


class AuthSettings(BaseModel):
    """Optional API keys: none configured means the API is open.

    Clients send a key in the `X-API-Key` header. Keys are stored only as `sha256:<hex>`
    digests; `memberlens api-key` makes a key and its digest. In the environment, give several
    digests comma-separated or as a JSON list.
    """

    api_key_hashes: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("api_key_hashes", mode="before")
    @classmethod
    def _split_hashes(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [part.strip() for part in text.split(",") if part.strip()]

    @field_validator("api_key_hashes")
    @classmethod
    def _check_hashes(cls, hashes: list[str]) -> list[str]:
        normalised = [digest.strip().lower() for digest in hashes]
        for digest in normalised:
            if not API_KEY_HASH_PATTERN.match(digest):
                raise ValueError(
                    "expected each API key hash as sha256:<64 hex digits>; "
                    "make one with `memberlens api-key`"
                )
        return normalised


class ConcurrencySettings(BaseModel):
    """How many photos are identified at once, how many may wait, and how shutdown waits."""

    workers: int = Field(default=1, ge=1, le=16)
    queue_size: int = Field(default=8, ge=0, le=1000)
    retry_after_s: int = Field(default=2, ge=1, le=600)
    shutdown_timeout_s: float = Field(default=30.0, gt=0)


class ReloadSettings(BaseModel):
    """How often the bundle folder is checked for a new bundle; 0 turns live reload off."""

    interval_s: float = Field(default=5.0, ge=0)


class Settings(BaseSettings):
    """Settings of memberlens; each field can be set as `MEMBERLENS_<FIELD>` (nested: `__`)."""

    model_config = SettingsConfigDict(env_prefix="MEMBERLENS_", env_nested_delimiter="__")

    bundle: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    torch_threads: int = Field(default=0, ge=0)
    limits: LimitSettings = LimitSettings()
    auth: AuthSettings = AuthSettings()
    concurrency: ConcurrencySettings = ConcurrencySettings()
    reload: ReloadSettings = ReloadSettings()
    warm_up: bool = True
    log_format: str = Field(default="auto", pattern="^(auto|json|text)$")


def load_settings() -> Settings:
    """Build the settings from the environment; call once at an entry point."""
    return Settings()
