"""Raster API settings, one pydantic-settings class per concern (titiler-pgstac style).

Everything is read from the environment when `create_app()` runs, never at import time, so tests and the Lambda
runtime can set the environment first. `PROVIDERS_CONFIG` is the shared contract name and so is read unprefixed.
"""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlsplit

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
    # The origin (`https://tiles.example.com`) every link in TileJSON/WMTS/map documents is built from. Unset: a
    # request's `X-Forwarded-Host`/`Host` is used only when it is in `allowed_hosts` (or is the API Gateway domain the
    # Lambda event names); a cacheable document must never carry a host a caller made up.
    public_url: str | None = None
    # Hosts whose name may appear in links: exact `host` or `host:port`, or `*.suffix`. A host without a port allows
    # any port.
    allowed_hosts: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["localhost", "127.0.0.1", "[::1]"])
    # The Secrets Manager secret (plain string) CloudFront sends as `x-origin-verify`: set, requests without it get
    # a 403, so the API is reachable only through the distribution.
    origin_verify_secret_id: str | None = None
    # Seconds a client is told to wait (`Retry-After`) when a provider's credentials are unavailable.
    retry_after_seconds: int = Field(default=30, ge=1)
    # Largest tile/preview/part side (and `max_size`) a request may ask for: bounds the memory one request can use.
    max_image_size: int = Field(default=4096, ge=256)
    # Lambda's synchronous response limit is 6 MB and API Gateway base64-encodes binary bodies: ~4.4 MB raw.
    max_response_bytes: int = Field(default=4_400_000, ge=1)
    # Per-provider CloudWatch metrics as EMF lines on stdout (`raster_api.metrics`); the stack turns it on.
    metrics: bool = False
    debug: bool = False

    @field_validator("cors_origins", "allowed_hosts", mode="before")
    @classmethod
    def _lists(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("public_url")
    @classmethod
    def _origin_only(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"RASTER_API_PUBLIC_URL must be an origin such as https://tiles.example.com: {value!r}")
        return f"{parts.scheme}://{parts.netloc}"

    @model_validator(mode="after")
    def _no_wildcard_with_credentials(self) -> ApiSettings:
        if self.cors_allow_credentials and "*" in self.cors_origins:
            raise ValueError("RASTER_API_CORS_ORIGINS may not contain '*' when RASTER_API_CORS_ALLOW_CREDENTIALS is on")
        return self


class BudgetSettings(BaseSettings):
    """What one request may cost (`raster_api.budget`), checked from headers and counts before pixels are read. The
    defaults fit a 2048 MB, 25 s Lambda with room to spare."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_", extra="ignore")

    # Decoded output: bands x width x height x bytes per sample (8 for an expression's float64).
    max_output_bytes: int = Field(default=64 * 2**20, ge=2**20)
    # Decoded source pixels a request reads, summed over its reads (features, mosaic items), at the overview level
    # GDAL reads for the asked scale, whole blocks.
    max_source_bytes: int = Field(default=256 * 2**20, ge=2**20)
    # Chunks one `/md/` (NetCDF, HDF5, Zarr) read may touch: each is an S3 request, decoded whole.
    max_chunks: int = Field(default=1024, ge=1)
    # Distinct bands an expression may name.
    max_expression_bands: int = Field(default=32, ge=1)
    # Features and vertices in a POST body (`/statistics`, `/feature`).
    max_features: int = Field(default=100, ge=1)
    max_vertices: int = Field(default=50_000, ge=4)
    # Items a mosaic tile, part or point reads; fewer for pixel selections that hold every item's pixels at once.
    max_mosaic_items: int = Field(default=30, ge=1)
    max_stacked_items: int = Field(default=10, ge=1)
    # Seconds a request may work before it answers 503 (below the Lambda's 25 s and API Gateway's 30 s).
    request_deadline: float = Field(default=20.0, gt=0)


class CacheSettings(BaseSettings):
    """`Cache-Control` per response class (`raster_api.caching`); a CDN and browsers take their TTLs from these."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_CACHE_", extra="ignore")

    # 2xx images (tiles, previews, parts): a COG's pixels do not change under the same URL.
    tiles: str = "public, max-age=3600, s-maxage=86400"
    # Other 2xx documents (TileJSON, info, statistics, WMTS capabilities, the viewer).
    metadata: str = "public, max-age=60, s-maxage=300"
    # A missing object may be uploaded soon.
    not_found: str = "public, max-age=30, s-maxage=30"
    # 400/413/422: the same request gets the same answer, but a deploy may change it.
    client_error: str = "public, max-age=30, s-maxage=30"


class AuthSettings(BaseSettings):
    """OpenID Connect bearer tokens (`raster_api.auth`). Without an issuer every caller is anonymous."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_AUTH_", extra="ignore")

    issuer: str | None = None
    # `aud` of ID tokens, or `client_id` of Cognito access tokens.
    audience: str | None = None
    # Default: `jwks_uri` of `<issuer>/.well-known/openid-configuration`.
    jwks_url: str | None = None
    groups_claim: str = "cognito:groups"
    algorithms: Annotated[list[str], NoDecode] = Field(default_factory=lambda: ["RS256"])
    clock_skew: float = Field(default=60.0, ge=0, le=300)
    # A token naming a key the cached JWKS lacks triggers at most one refetch per this many seconds.
    jwks_refetch_interval: float = Field(default=60.0, ge=0)
    http_timeout: float = Field(default=5.0, gt=0)

    @field_validator("algorithms", mode="before")
    @classmethod
    def _algorithms(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        allowed = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
        bad = [a for a in value if a not in allowed]
        if bad or not value:
            raise ValueError(
                f"RASTER_API_AUTH_ALGORITHMS must list asymmetric algorithms only ({sorted(allowed)}): {bad}"
            )
        return value

    @model_validator(mode="after")
    def _audience_with_issuer(self) -> AuthSettings:
        if self.issuer and not self.audience:
            raise ValueError("RASTER_API_AUTH_AUDIENCE is required when RASTER_API_AUTH_ISSUER is set")
        return self


class DownloadSettings(BaseSettings):
    """Pre-signed downloads (`raster_api.download`)."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_DOWNLOAD_", extra="ignore")

    # Seconds a download URL stays valid (and the scoped session behind it: STS's minimum is 900 s).
    expires: int = Field(default=60, ge=1, le=3600)
    # The role a `default` provider's downloads are signed with, narrowed to the one object by a session policy.
    role_arn: str | None = None


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
    # After a SnapStart restore, wait at most this long for every provider's credentials (fetched side by side); a
    # provider not back by then is fetched by its first request. Lambda gives the restore hooks 10 s in all.
    restore_deadline: float = Field(default=5.0, gt=0, le=9)


class GdalSettings(BaseSettings):
    """The few GDAL knobs worth changing per deployment; the rest is fixed in `raster_api.gdal`."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_GDAL_", extra="ignore")

    cachemax: str = "200"  # MB, process-wide (set as GDAL_CACHEMAX unless already in the environment)
    http_timeout: int = Field(default=20, ge=1)
    http_connect_timeout: int = Field(default=5, ge=1)
    http_max_retry: int = Field(default=2, ge=0)


class ProvidersSettings(BaseSettings):
    """`PROVIDERS_CONFIG` (inline JSON or a JSON/YAML path), validated by `providers.load_providers`."""

    model_config = SettingsConfigDict(extra="ignore")

    providers_config: str | None = Field(default=None, validation_alias="PROVIDERS_CONFIG")

    def load(self) -> list[Provider]:
        """Raise `providers.ProvidersConfigError` with a clear message when the config is bad."""
        return load_providers(self.providers_config)


class DatabaseSettings(BaseSettings):
    """Where the database is: libpq's names, unprefixed (titiler-pgstac and every Postgres tool use them)."""

    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = None
    pgstac_secret_id: str | None = None
    pghost: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.database_url or self.pgstac_secret_id or self.pghost)


class PoolSettings(BaseSettings):
    """The connection pool and caches; defaults suit Lambda (one request at a time per execution environment)."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_PGSTAC_", extra="ignore")

    min_size: int = 1
    max_size: int = 1
    # Seconds a request waits for a pooled connection before answering 503.
    timeout: float = 10.0
    # Seconds start-up waits for the first connection (start-up goes on without it: /healthz says so).
    startup_timeout: float = 10.0
    connect_timeout: int = 5
    max_idle: float = 300.0
    max_lifetime: float = 3600.0
    # How long a Secrets Manager value and the collections' declared providers are reused.
    secret_ttl: float = 300.0
    collection_cache_ttl: float = 60.0
    # Close the pool when the app shuts down (uvicorn, tests; on Lambda no lifespan runs).
    close_on_shutdown: bool = True


class ViewerSample(BaseModel):
    """A COG (or, with `variable`, a NetCDF/HDF5/Zarr variable) offered in the viewer's sample list."""

    url: Annotated[str, Field(description="s3:// URL of the COG, NetCDF/HDF5 file or Zarr store")]
    provider: Annotated[str | None, Field(description="Provider to read it with")] = None
    title: Annotated[str | None, Field(description="Label shown in the list")] = None
    variable: Annotated[str | None, Field(description="Variable to show through /md/ (not a COG)")] = None


class ViewerSettings(BaseSettings):
    """`RASTER_API_VIEWER_SAMPLES`: JSON list of samples offered in the viewer (default: none)."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_VIEWER_", extra="ignore")

    samples: list[ViewerSample] = Field(default_factory=list)


class PgstacToggle(BaseSettings):
    """Whether to mount the pgstac endpoints (a database is configured)."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_", extra="ignore")

    pgstac_enabled: bool = False


class MdToggle(BaseSettings):
    """Whether to mount the `/md/` routes (NetCDF-4, HDF5 and Zarr through titiler.xarray): they need the `md` extra,
    which does not fit the COG function's bundle, so the stack turns them on only in the md function."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_MD_", extra="ignore")

    enabled: bool = False


class LambdaRuntime(BaseSettings):
    """What the Lambda runtime tells the function about itself."""

    model_config = SettingsConfigDict(extra="ignore")

    # "on-demand", "provisioned-concurrency" or "snap-start" (Lambda sets it for the init phase).
    initialization_type: str = Field(default="on-demand", validation_alias="AWS_LAMBDA_INITIALIZATION_TYPE")

    @property
    def init_before_requests(self) -> bool:
        """Init runs ahead of any request (a snapshot, or provisioned concurrency): work moved there is free."""
        return self.initialization_type in ("snap-start", "provisioned-concurrency")


class GrantSettings(BaseSettings):
    """Signed tile URLs (`raster_api.grants`): off unless keys or a key secret are given."""

    model_config = SettingsConfigDict(env_prefix="RASTER_API_GRANT_", extra="ignore")

    # Signing keys, oldest first (the last signs, all verify): for the local stack and tests.
    keys: Annotated[list[str], NoDecode] = Field(default_factory=list)
    # Or a Secrets Manager secret holding one key: its AWSCURRENT version signs, AWSPREVIOUS still verifies.
    secret_id: str | None = None
    # How long a grant is valid (never longer than the caller's token).
    ttl: int = Field(default=3600, ge=30, le=3600)
    # How often the secret is re-read (a rotation is picked up within it).
    secret_ttl: float = Field(default=300.0, gt=0)

    @field_validator("keys", mode="before")
    @classmethod
    def _keys(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("keys")
    @classmethod
    def _long_keys(cls, value: list[str]) -> list[str]:
        if any(len(key) < 32 for key in value):
            raise ValueError("each grant key must be at least 32 characters")
        return value

    @property
    def enabled(self) -> bool:
        return bool(self.keys or self.secret_id)


class Settings(BaseModel):
    """All settings of one app instance; `create_app(Settings(...))` lets tests override any of them."""

    api: ApiSettings = Field(default_factory=ApiSettings)
    budget: BudgetSettings = Field(default_factory=BudgetSettings)
    cache: CacheSettings = Field(default_factory=CacheSettings)
    auth: AuthSettings = Field(default_factory=AuthSettings)
    download: DownloadSettings = Field(default_factory=DownloadSettings)
    credentials: CredentialSettings = Field(default_factory=CredentialSettings)
    gdal: GdalSettings = Field(default_factory=GdalSettings)
    providers: ProvidersSettings = Field(default_factory=ProvidersSettings)
    pgstac: PgstacToggle = Field(default_factory=PgstacToggle)
    md: MdToggle = Field(default_factory=MdToggle)
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    pgstac_pool: PoolSettings = Field(default_factory=PoolSettings)
    viewer: ViewerSettings = Field(default_factory=ViewerSettings)
    runtime: LambdaRuntime = Field(default_factory=LambdaRuntime)
    grants: GrantSettings = Field(default_factory=GrantSettings)

    @property
    def pgstac_mounted(self) -> bool:
        """The one decision whether the pgstac routes are mounted: a database is named by `DATABASE_URL` or
        `PGSTAC_SECRET_ID`, or by libpq's `PGHOST` with `RASTER_API_PGSTAC_ENABLED=true`."""
        db = self.database
        return bool(db.database_url or db.pgstac_secret_id or (self.pgstac.pgstac_enabled and db.pghost))
