"""The rotator's settings, one pydantic-settings class per concern, read per invocation (never at import time) so a
changed environment or secret takes effect without a cold start.
"""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_EARTHDATA_URL = "https://urs.earthdata.nasa.gov"


class EarthdataSettings(BaseSettings):
    """Where Earthdata Login is and how to log in: `EARTHDATA_*`.

    `EARTHDATA_LOGIN_SECRET_ID` (a secret holding `{"username", "password"}` or `{"token"}`) wins over the
    `EARTHDATA_USERNAME`/`EARTHDATA_PASSWORD`/`EARTHDATA_TOKEN` variables, which are meant for a developer's shell.
    """

    model_config = SettingsConfigDict(env_prefix="EARTHDATA_", extra="ignore")

    url: str = DEFAULT_EARTHDATA_URL
    login_secret_id: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None


class RotatorSettings(BaseSettings):
    """How the rotator behaves: `ROTATOR_*`, plus the shared `PROVIDERS_CONFIG`."""

    model_config = SettingsConfigDict(env_prefix="ROTATOR_", extra="ignore")

    providers_config: str | None = Field(default=None, validation_alias=AliasChoices("PROVIDERS_CONFIG"))
    connect_timeout: float = Field(default=5.0, gt=0, description="seconds to connect to EDL or a DAAC")
    read_timeout: float = Field(default=10.0, gt=0, description="seconds to wait for an answer")
    retries: int = Field(default=2, ge=0, le=5, description="extra attempts after a 5xx, timeout or connection error")
    backoff_seconds: float = Field(default=1.0, ge=0, description="first retry delay; doubles on each retry")
    concurrency: int = Field(
        default=4, ge=1, le=32, description="providers rotated at once (a bounded thread pool; one EDL token per run)"
    )
    min_validity_seconds: int = Field(
        default=900, ge=0, description="refuse credentials that expire sooner than this after they were fetched"
    )
    grant_key_secret_id: str | None = Field(default=None, description="the raster API's tile-grant key secret")
    grant_key_max_age_days: float = Field(default=7.0, gt=0, description="replace the grant key once this old")
