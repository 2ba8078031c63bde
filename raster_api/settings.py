"""Raster API settings, one pydantic-settings class per concern (titiler-pgstac style).

Everything is read from the environment when `create_app()` runs, never at import time, so tests and the Lambda
runtime can set the environment first. `PROVIDERS_CONFIG` is the shared contract name and so is read unprefixed.
"""

from __future__ import annotations

import json
from typing import Annotated

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from providers import Provider, load_providers


def _split_csv(value: object) -> object:
    """Accept `a,b` as well as a JSON list for list settings."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    return value


class ApiSettings(BaseSettings):
    """HTTP behaviour: CORS, caching headers, retry hints."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_", extra="ignore")

    name: str = "Raster API"
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    cors_allow_credentials: bool = False
    cache_control: str | None = "public, max-age=3600"
    # Seconds a client is told to wait (`Retry-After`) when a provider's credentials are unavailable.
    retry_after_seconds: int = Field(default=30, ge=1)
    # Largest tile/preview/part side (and `max_size`) a request may ask for: bounds the memory one request can use.
    max_image_size: int = Field(default=4096, ge=256)
    # Lambda's synchronous response limit is 6 MB and API Gateway base64-encodes binary bodies: ~4.4 MB raw.
    max_response_bytes: int = Field(default=4_400_000, ge=1)
    debug: bool = False

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _origins(cls, value: object) -> object:
        return _split_csv(value)

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> ApiSettings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("RASTER_API_CORS_ORIGINS may not contain '*' when RASTER_API_CORS_ALLOW_CREDENTIALS is on")
        return self


class CredentialSettings(BaseSettings):
    """How provider credentials are cached and refreshed (no AWS call per tile)."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_CREDENTIALS_", extra="ignore")

    # Re-read every provider's credentials at least this often (a rotated secret is picked up within it).
    refresh_interval: float = Field(default=300.0, ge=0)
    # Refresh this many seconds before `expiration`.
    refresh_margin: float = Field(default=300.0, ge=0)
    # Inside the margin, a secret that still holds the same soon-expiring keys is re-read at most this often.
    near_expiry_recheck: float = Field(default=30.0, ge=0)
    # After a failed refresh, wait this long before trying again (unless a read was refused).
    failure_backoff: float = Field(default=5.0, ge=0)
    # At most one forced refresh (after S3 refused a read) per provider in this many seconds: refused reads sent by
    # anyone must not turn into a Secrets Manager or STS call each.
    forced_refresh_interval: float = Field(default=60.0, ge=0)
    # How long a request waits for another thread's refresh of the same provider.
    lock_timeout: float = Field(default=15.0, gt=0)
    aws_connect_timeout: float = Field(default=2.0, gt=0)
    aws_read_timeout: float = Field(default=5.0, gt=0)
    aws_max_attempts: int = Field(default=3, ge=1)
    assume_role_duration: int = Field(default=3600, ge=900)


class GdalSettings(BaseSettings):
    """The few GDAL knobs worth changing per deployment; the rest is fixed in `raster_api.gdal`."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_GDAL_", extra="ignore")

    cachemax: str = "200"  # MB, process-wide (set as GDAL_CACHEMAX unless already in the environment)
    http_timeout: int = Field(default=20, ge=1)
    http_connect_timeout: int = Field(default=5, ge=1)
    http_max_retry: int = Field(default=2, ge=0)
    allowed_extensions: str = ".tif,.TIF,.tiff,.TIFF"


class ProvidersSettings(BaseSettings):
    """`PROVIDERS_CONFIG` (inline JSON or a JSON/YAML path), validated by `providers.load_providers`."""

    model_config = SettingsConfigDict(extra="ignore")

    providers_config: str | None = Field(default=None, validation_alias="PROVIDERS_CONFIG")

    def load(self) -> list[Provider]:
        """Raise `providers.ProvidersConfigError` with a clear message when the config is bad."""
        return load_providers(self.providers_config)


class PgstacToggle(BaseSettings):
    """Whether to mount the pgstac endpoints (a database is configured)."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_", extra="ignore")

    pgstac_enabled: bool = False


class Settings(BaseModel):
    """All settings of one app instance; `create_app(Settings(...))` lets tests override any of them."""

    api: ApiSettings = Field(default_factory=ApiSettings)
    credentials: CredentialSettings = Field(default_factory=CredentialSettings)
    gdal: GdalSettings = Field(default_factory=GdalSettings)
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)
    pgstac: PgstacToggle = Field(default_factory=PgstacToggle)
