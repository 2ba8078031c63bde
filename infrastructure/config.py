"""Deployment settings, read from `DEPLOY_*` environment variables and an optional `.env` file.

Everything an operator may change lives here so the stack code stays declarative. Validation happens before any CDK
construct exists: a wrong providers file or a region where Earthdata credentials cannot work fails with a message
that names the provider, instead of deploying something that returns 403 on every DAAC tile.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, PrivateAttr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from providers import Provider, ProviderKind, load_providers

# NASA's Earthdata temporary S3 credentials only work for requests made from inside this region.
EARTHDATA_REGION = "us-west-2"

# Names the Lambda service sets itself; it rejects a function that tries to define them.
RESERVED_LAMBDA_VARIABLES = frozenset(
    {
        "_HANDLER",
        "_X_AMZN_TRACE_ID",
        "AWS_ACCESS_KEY_ID",
        "AWS_DEFAULT_REGION",
        "AWS_EXECUTION_ENV",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_FUNCTION_NAME",
        "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_LAMBDA_LOG_GROUP_NAME",
        "AWS_LAMBDA_LOG_STREAM_NAME",
        "AWS_LAMBDA_RUNTIME_API",
        "AWS_REGION",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "LAMBDA_RUNTIME_DIR",
        "LAMBDA_TASK_ROOT",
    }
)

# CloudFront only accepts ACM certificates from us-east-1.
CLOUDFRONT_CERTIFICATE_PREFIX = "arn:aws:acm:us-east-1:"

# The API's token settings; the stack alone sets them, from `auth_*` and `cognito`.
AUTH_VARIABLE_PREFIX = "RASTER_API_AUTH_"

Architecture = Literal["x86_64", "arm64"]
BundlingMode = Literal["local", "docker", "skip"]


class DeploySettings(BaseSettings):
    """One deployment (a stage) of the raster tiler. Field `x` is read from `DEPLOY_X`."""

    model_config = SettingsConfigDict(env_prefix="DEPLOY_", env_file=".env", extra="ignore")

    # Naming and placement.
    project: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,30}$")] = "raster-tiler"
    stage: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9-]{0,19}$")] = "dev"
    account: Annotated[str | None, Field(pattern=r"^\d{12}$")] = None
    region: str = EARTHDATA_REGION
    tags: dict[str, str] = Field(default_factory=dict)

    # Providers (same format as the runtime's PROVIDERS_CONFIG: inline JSON or a JSON/YAML file path).
    providers_config: str
    # Prepended to every earthdata provider's `secret_id` to keep stages in one account apart (e.g. "prod/").
    secret_prefix: Annotated[str, Field(pattern=r"^[A-Za-z0-9/_+=.@-]*$")] = ""
    # Existing secret holding {"username","password"} or {"token"}; the stack only ever sees its name.
    earthdata_login_secret: str | None = None
    earthdata_url: str = "https://urs.earthdata.nasa.gov"
    # Existing secret with the pgstac connection (name or ARN); omit to run without the STAC endpoints.
    pgstac_secret: str | None = None

    # Network: a new VPC (cidr + NAT) unless `vpc_id` names an existing one.
    vpc_id: str | None = None
    vpc_cidr: str = "10.42.0.0/16"
    nat_gateways: Annotated[int, Field(ge=1, le=3)] = 1
    max_azs: Annotated[int, Field(ge=2, le=3)] = 2
    availability_zones: list[str] = Field(default_factory=list)
    private_subnet_ids: list[str] = Field(default_factory=list)

    # Raster Lambda.
    architecture: Architecture = "x86_64"
    raster_memory_mb: Annotated[int, Field(ge=512, le=10240)] = 2048
    # API Gateway HTTP APIs give up after 30 s, so a longer Lambda timeout only wastes money.
    raster_timeout_seconds: Annotated[int, Field(ge=3, le=30)] = 25
    # SnapStart (published versions, API Gateway calling the `live` alias): init leaves the cold start path.
    snap_start: bool = True
    cors_origins: list[str] = Field(default_factory=lambda: ["*"])
    raster_environment: dict[str, str] = Field(default_factory=dict)
    # The `/md/` routes (NetCDF-4, HDF5, Zarr) in a second function behind the same API: a container image, as their
    # dependencies take the bundle past a zip's 250 MB, so deploying it needs Docker; Lambda has no SnapStart for
    # images. Off: `/md/` is a 404.
    md: bool = False
    # None = the account's unreserved pool; a number caps (and guarantees) the raster Lambda's concurrency.
    raster_reserved_concurrency: Annotated[int | None, Field(ge=1)] = None
    # Custom domain: on the CloudFront distribution when `cdn` is on (certificate in us-east-1), else on API Gateway.
    # It is also the origin of every link the API writes (`RASTER_API_PUBLIC_URL`).
    domain_name: str | None = None
    certificate_arn: str | None = None

    # Who signs the bearer tokens the API checks: an existing OpenID Connect issuer (`auth_issuer` + `auth_audience`),
    # or `cognito` for a user pool the stack creates (app client + one group per group the providers file names).
    # Needed as soon as one provider's `access` is not "public".
    auth_issuer: Annotated[str | None, Field(pattern=r"^https://[^\s/?#]+(/[^\s?#]*)?$")] = None
    # `aud` of the issuer's ID tokens (or `client_id` of Cognito access tokens).
    auth_audience: str | None = None
    # Unset: the API reads `jwks_uri` from the issuer's discovery document.
    auth_jwks_url: Annotated[str | None, Field(pattern=r"^https://\S+$")] = None
    auth_groups_claim: Annotated[str, Field(min_length=1)] = "cognito:groups"
    cognito: bool = False

    # CDN and abuse protection.
    cdn: bool = True
    # CloudFront's additional metrics (CacheHitRate and co.): billed as about 8 custom CloudWatch metrics.
    cdn_additional_metrics: bool = True
    # An existing WAFv2 web ACL of scope CLOUDFRONT (it lives in us-east-1), e.g. with a rate-based rule.
    waf_acl_arn: Annotated[str | None, Field(pattern=r"^arn:aws:wafv2:us-east-1:\d{12}:global/webacl/.+")] = None
    # API Gateway stage throttling (requests per second, and burst): a ceiling on what a flood can cost.
    throttle_rate: Annotated[float, Field(gt=0)] = 100
    throttle_burst: Annotated[int, Field(ge=1)] = 200

    # Alarms.
    alarm_email: str | None = None
    alarm_topic_arn: str | None = None
    expiry_alarm_seconds: Annotated[int, Field(ge=60)] = 1200
    error_rate_alarm_percent: Annotated[float, Field(gt=0, le=100)] = 5.0

    # Packaging: "local" = pip with manylinux wheels (Docker only if no pip), "docker", or "skip" (tests).
    bundling: BundlingMode = "local"
    bundle_cache_dir: Path = Path("build/lambda-bundles")

    _providers: list[Provider] = PrivateAttr(default_factory=list)

    @field_validator("vpc_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = ipaddress.ip_network(value, strict=True)
        if not 16 <= network.prefixlen <= 24:
            raise ValueError(f"vpc_cidr {value} must be between /16 and /24 to fit public and private subnets")
        return value

    @field_validator("raster_environment")
    @classmethod
    def _no_reserved_variables(cls, value: dict[str, str]) -> dict[str, str]:
        reserved = sorted(RESERVED_LAMBDA_VARIABLES.intersection(value))
        if reserved:
            raise ValueError(f"raster_environment may not set Lambda's reserved variables: {', '.join(reserved)}")
        # An issuer slipped in here would escape the check that restricted providers have one.
        auth = sorted(k for k in value if k.startswith(AUTH_VARIABLE_PREFIX))
        if auth:
            raise ValueError(
                f"raster_environment may not set {', '.join(auth)}: use DEPLOY_AUTH_* or DEPLOY_COGNITO instead"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DeploySettings:
        self._providers = load_providers(self.providers_config)
        self._check_earthdata()
        self._check_auth()
        if self.vpc_id and not (self.private_subnet_ids and self.availability_zones):
            raise ValueError("an existing vpc_id needs private_subnet_ids and availability_zones (no lookups)")
        if self.vpc_id and len(self.private_subnet_ids) % len(self.availability_zones):
            raise ValueError("private_subnet_ids must be a multiple of availability_zones (one per AZ)")
        if bool(self.domain_name) != bool(self.certificate_arn):
            raise ValueError("domain_name and certificate_arn go together")
        if self.cdn and self.certificate_arn and not self.certificate_arn.startswith(CLOUDFRONT_CERTIFICATE_PREFIX):
            raise ValueError(
                f"certificate_arn {self.certificate_arn} must be an ACM certificate in us-east-1 "
                f"({CLOUDFRONT_CERTIFICATE_PREFIX}...): CloudFront only uses certificates from there "
                "(or set cdn=false to put the domain on API Gateway, which needs one in the stack's region)"
            )
        if self.waf_acl_arn and not self.cdn:
            raise ValueError("waf_acl_arn is attached to the CloudFront distribution: it needs cdn=true")
        if self.alarm_email and self.alarm_topic_arn:
            raise ValueError("give alarm_email (a new topic) or alarm_topic_arn (an existing one), not both")
        return self

    def _check_earthdata(self) -> None:
        earthdata = self.earthdata_providers
        if not earthdata:
            return
        if self.region != EARTHDATA_REGION:
            names = ", ".join(repr(p.name) for p in earthdata)
            raise ValueError(
                f"Earthdata provider(s) {names} need region {EARTHDATA_REGION}: NASA's temporary S3 credentials "
                f"only work in-region, and this deployment targets {self.region}. Deploy to {EARTHDATA_REGION} "
                "or remove those providers."
            )
        if not self.earthdata_login_secret:
            raise ValueError(
                f"earthdata provider {earthdata[0].name!r} needs DEPLOY_EARTHDATA_LOGIN_SECRET (an existing secret)"
            )

    def _check_auth(self) -> None:
        if self.auth_issuer and self.cognito:
            raise ValueError("give auth_issuer (an existing issuer) or cognito=true (a new user pool), not both")
        if bool(self.auth_issuer) != bool(self.auth_audience):
            raise ValueError("auth_issuer and auth_audience go together")
        if self.auth_jwks_url and not self.auth_issuer:
            raise ValueError("auth_jwks_url belongs to an existing auth_issuer (the API finds a user pool's own)")
        restricted = self.restricted_providers
        if restricted and not self.auth_enabled:
            names = ", ".join(f"{p.name!r} ({_describe_access(p.access)})" for p in restricted)
            raise ValueError(
                f"provider(s) {names} restrict access but no token issuer is configured, so nobody could read them "
                "(the API refuses to start): set DEPLOY_AUTH_ISSUER and DEPLOY_AUTH_AUDIENCE for an existing OpenID "
                "Connect issuer, or DEPLOY_COGNITO=true for a user pool created by the stack"
            )

    @property
    def providers(self) -> list[Provider]:
        return list(self._providers)

    @property
    def earthdata_providers(self) -> list[Provider]:
        return [p for p in self._providers if p.kind is ProviderKind.EARTHDATA]

    @property
    def restricted_providers(self) -> list[Provider]:
        return [p for p in self._providers if p.access != "public"]

    @property
    def access_groups(self) -> list[str]:
        """Every group a provider's `access` names, sorted: the Cognito groups the stack creates."""
        return sorted({g for p in self._providers if isinstance(p.access, tuple) for g in p.access})

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_issuer or self.cognito)

    @property
    def stack_name(self) -> str:
        return f"{self.project}-{self.stage}"

    def secret_name(self, provider: Provider) -> str:
        """Name of the secret the stack creates for an earthdata provider."""
        return f"{self.secret_prefix}{provider.secret_id}"


def _describe_access(access: str | tuple[str, ...]) -> str:
    return access if isinstance(access, str) else "groups " + ", ".join(access)
