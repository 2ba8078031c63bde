"""The raster API: one Python 3.12 Lambda behind an API Gateway HTTP API (optionally on a custom domain), and with `md`
a second one serving `/md/` (NetCDF-4, HDF5, Zarr) from a container image, with the same environment and grants.

Permissions are grants, each naming exactly what the providers file names: read the provider (and database) secrets,
assume the configured provider roles, read the `default` provider's buckets. Environment = user defaults, then the
contract variables the user may not override (`PROVIDERS_CONFIG`, `RASTER_API_CORS_ORIGINS`, `RASTER_API_METRICS`,
`PGSTAC_SECRET_ID`, `RASTER_API_ORIGIN_VERIFY_SECRET_ID`, `RASTER_API_AUTH_*`, `RASTER_API_DOWNLOAD_ROLE_ARN`,
`RASTER_API_PUBLIC_URL`).
The stage is throttled so that a flood of requests has a price ceiling.

Downloads of `default` providers are signed with a separate download role, not with the Lambda's own: the API assumes
it with an inline session policy naming the one object handed out, so the session token in a pre-signed URL can read
nothing else, and the role itself can only ever read the buckets of providers with `allow_download`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infrastructure.auth import TokenIssuer
from providers import Provider, ProviderKind

HANDLER = "raster_api.handler.handler"
# Lambda's limit on the total size of a function's environment variables.
ENVIRONMENT_LIMIT = 4096


def default_buckets(providers: Iterable[Provider]) -> list[str]:
    """Bucket names and globs served with the Lambda's own identity (`kind: default`)."""
    return sorted({b for p in providers if p.kind is ProviderKind.DEFAULT for b in p.buckets})


def download_buckets(providers: Iterable[Provider]) -> list[str]:
    """Buckets of the `default` providers with `allow_download`: what the download role may read."""
    return sorted({b for p in providers if p.kind is ProviderKind.DEFAULT and p.allow_download for b in p.buckets})


def bucket_arns(buckets: Iterable[str]) -> list[str]:
    """The IAM resources for reading `buckets`: each bucket (ListBucket) and its objects (GetObject)."""
    return [arn for b in buckets for arn in (f"arn:aws:s3:::{b}", f"arn:aws:s3:::{b}/*")]


class EnvironmentTooLargeError(ValueError):
    """The providers list does not fit in Lambda's 4 KB environment."""


@dataclass(frozen=True)
class RasterApiProps:
    """Everything the raster API needs; defaults suit a tile server (2 GB, 25 s, CORS open)."""

    code: lambda_.Code
    providers: tuple[Provider, ...]
    provider_secrets: dict[str, secretsmanager.ISecret]
    architecture: lambda_.Architecture
    vpc: ec2.IVpc | None = None
    subnets: ec2.SubnetSelection | None = None
    memory_mb: int = 2048
    timeout: Duration = field(default_factory=lambda: Duration.seconds(25))
    snap_start: bool = True
    cors_origins: tuple[str, ...] = ("*",)
    pgstac_secret: secretsmanager.ISecret | None = None
    pgstac_secret_id: str | None = None
    domain_name: str | None = None
    certificate_arn: str | None = None
    # Stage throttling: steady requests per second and burst; beyond them API Gateway answers 429.
    throttle_rate: float = 100
    throttle_burst: int = 200
    reserved_concurrency: int | None = None
    # The secret CloudFront sends as `x-origin-verify` (read by the API to refuse requests that bypass the CDN).
    origin_verify_secret: secretsmanager.ISecret | None = None
    origin_verify_secret_id: str | None = None
    # The issuer of the bearer tokens the API checks; None = every caller is anonymous (all providers public).
    token_issuer: TokenIssuer | None = None
    # The key tile URL grants are signed with (`RASTER_API_GRANT_SECRET_ID`); None: no signed tile URLs.
    grant_key_secret: secretsmanager.ISecret | None = None
    # The md function's image (`infrastructure.bundling.lambda_image_code`); None: no `/md/` routes.
    md_code: lambda_.DockerImageCode | None = None
    # Escape hatch: extra environment (never overrides the contract variables above).
    environment: dict[str, str] = field(default_factory=dict)


class RasterApi(Construct):
    """Public members: `function`, `target` (alias when SnapStart is on), `md_function` (None without `md_code`),
    `api`, `url`, `domain`, `security_group`, `download_role` (None unless a `default` provider allows downloads)."""

    def __init__(self, scope: Construct, construct_id: str, props: RasterApiProps) -> None:
        super().__init__(scope, construct_id)
        self.security_group = (
            ec2.SecurityGroup(self, "SecurityGroup", vpc=props.vpc, description="Raster API Lambda (egress only)")
            if props.vpc
            else None
        )
        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Dynamic raster tiles (titiler) with per-provider credentials",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=props.architecture,
            handler=HANDLER,
            code=props.code,
            memory_size=props.memory_mb,
            timeout=props.timeout,
            environment=self.environment(props),
            vpc=props.vpc,
            vpc_subnets=props.subnets,
            security_groups=[self.security_group] if self.security_group else None,
            log_group=self.log_group,
            snap_start=lambda_.SnapStartConf.ON_PUBLISHED_VERSIONS if props.snap_start else None,
            reserved_concurrent_executions=props.reserved_concurrency,
        )
        self.target: lambda_.IFunction = (
            lambda_.Alias(self, "Live", alias_name="live", version=self.function.current_version)
            if props.snap_start
            else self.function
        )
        self.md_function = self._md_function(props) if props.md_code else None
        self._grant(props, self.function)
        if self.md_function:
            self._grant(props, self.md_function)
        self.download_role = self._download_role(props)
        self.domain = self._domain(props)
        self.api = apigw.HttpApi(
            self,
            "Api",
            description="Raster tiles",
            default_integration=integrations.HttpLambdaIntegration("Lambda", self.target),
            default_domain_mapping=apigw.DomainMappingOptions(domain_name=self.domain) if self.domain else None,
        )
        if self.md_function:
            self.api.add_routes(
                path="/md/{proxy+}",
                methods=[apigw.HttpMethod.ANY],
                integration=integrations.HttpLambdaIntegration("Md", self.md_function),
            )
        self._stage_settings(props)
        self.url = f"https://{props.domain_name}/" if props.domain_name else self.api.api_endpoint + "/"

    @staticmethod
    def environment(props: RasterApiProps) -> dict[str, str]:
        env = {
            **props.environment,
            "PROVIDERS_CONFIG": json.dumps(
                [p.model_dump(mode="json", exclude_none=True) for p in props.providers], separators=(",", ":")
            ),
            "RASTER_API_CORS_ORIGINS": json.dumps(list(props.cors_origins)),
            # Per-provider EMF metrics, which the dashboard plots.
            "RASTER_API_METRICS": "true",
        }
        if props.pgstac_secret_id:
            env["PGSTAC_SECRET_ID"] = props.pgstac_secret_id
        if props.origin_verify_secret_id:
            env["RASTER_API_ORIGIN_VERIFY_SECRET_ID"] = props.origin_verify_secret_id
        if props.grant_key_secret is not None:
            env["RASTER_API_GRANT_SECRET_ID"] = props.grant_key_secret.secret_arn
        if props.token_issuer:
            env.update(props.token_issuer.environment())
        size = sum(len(k) + len(v) for k, v in env.items())
        if size > ENVIRONMENT_LIMIT:
            raise EnvironmentTooLargeError(
                f"the raster Lambda environment is {size} bytes (PROVIDERS_CONFIG "
                f"{len(env['PROVIDERS_CONFIG'])}), over Lambda's {ENVIRONMENT_LIMIT}-byte limit: shorten bucket "
                "lists with globs or drop titles"
            )
        return env

    def _md_function(self, props: RasterApiProps) -> lambda_.DockerImageFunction:
        assert props.md_code is not None  # noqa: S101 - called only with an image
        self.md_log_group = logs.LogGroup(self, "MdLogs", retention=logs.RetentionDays.ONE_MONTH)
        return lambda_.DockerImageFunction(
            self,
            "MdFunction",
            description="NetCDF-4, HDF5 and Zarr tiles (titiler.xarray) with per-provider credentials",
            code=props.md_code,
            architecture=props.architecture,
            memory_size=props.memory_mb,
            timeout=props.timeout,
            environment={**self.environment(props), "RASTER_API_MD_ENABLED": "true"},
            vpc=props.vpc,
            vpc_subnets=props.subnets,
            security_groups=[self.security_group] if self.security_group else None,
            log_group=self.md_log_group,
            reserved_concurrent_executions=props.reserved_concurrency,
        )

    @staticmethod
    def _grant(props: RasterApiProps, function: lambda_.Function) -> None:
        for secret in props.provider_secrets.values():
            secret.grant_read(function)
        if props.pgstac_secret:
            props.pgstac_secret.grant_read(function)
        if props.origin_verify_secret:
            props.origin_verify_secret.grant_read(function)
        if props.grant_key_secret is not None:
            props.grant_key_secret.grant_read(function)
        role_arns = sorted({p.role_arn for p in props.providers if p.kind is ProviderKind.ASSUME_ROLE and p.role_arn})
        if role_arns:
            function.add_to_role_policy(iam.PolicyStatement(actions=["sts:AssumeRole"], resources=role_arns))
        buckets = default_buckets(props.providers)
        if buckets:
            arns = bucket_arns(buckets)
            function.add_to_role_policy(iam.PolicyStatement(actions=["s3:ListBucket"], resources=arns[0::2]))
            function.add_to_role_policy(iam.PolicyStatement(actions=["s3:GetObject"], resources=arns[1::2]))

    def _download_role(self, props: RasterApiProps) -> iam.Role | None:
        buckets = download_buckets(props.providers)
        if not buckets:
            return None
        execution_role = self.function.role
        assert execution_role is not None  # noqa: S101 - Function creates one when none is given
        role = iam.Role(
            self,
            "DownloadRole",
            description="Signs the raster API's download URLs; assumed with a session policy naming one object",
            assumed_by=iam.ArnPrincipal(execution_role.role_arn),
            # A pre-signed URL stops working with the session that signed it: an hour covers the API's longest expiry.
            max_session_duration=Duration.hours(1),
            inline_policies={
                "DownloadableObjects": iam.PolicyDocument(
                    statements=[iam.PolicyStatement(actions=["s3:GetObject"], resources=bucket_arns(buckets)[1::2])]
                )
            },
        )
        role.grant_assume_role(execution_role)
        self.function.add_environment("RASTER_API_DOWNLOAD_ROLE_ARN", role.role_arn)
        return role

    def set_public_url(self, url: str) -> None:
        """The origin (`https://host`, no path) every link the API writes starts with, instead of a request's Host."""
        for function in (self.function, self.md_function):
            if function:
                function.add_environment("RASTER_API_PUBLIC_URL", url)

    def _domain(self, props: RasterApiProps) -> apigw.DomainName | None:
        if not (props.domain_name and props.certificate_arn):
            return None
        certificate = acm.Certificate.from_certificate_arn(self, "Certificate", props.certificate_arn)
        return apigw.DomainName(self, "Domain", domain_name=props.domain_name, certificate=certificate)

    def _stage_settings(self, props: RasterApiProps) -> None:
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=logs.RetentionDays.ONE_MONTH)
        stage = self.api.default_stage
        assert stage is not None  # noqa: S101 - HttpApi always creates $default unless told not to
        cfn_stage = stage.node.default_child
        assert isinstance(cfn_stage, apigw.CfnStage)  # noqa: S101
        cfn_stage.default_route_settings = apigw.CfnStage.RouteSettingsProperty(
            throttling_rate_limit=props.throttle_rate, throttling_burst_limit=props.throttle_burst
        )
        cfn_stage.access_log_settings = apigw.CfnStage.AccessLogSettingsProperty(
            destination_arn=self.access_logs.log_group_arn,
            format=json.dumps(
                {
                    "requestId": "$context.requestId",
                    "ip": "$context.identity.sourceIp",
                    "requestTime": "$context.requestTime",
                    "method": "$context.httpMethod",
                    # The path only: query strings can carry tokens.
                    "path": "$context.path",
                    "status": "$context.status",
                    "latencyMs": "$context.responseLatency",
                    "integrationError": "$context.integrationErrorMessage",
                }
            ),
        )
