"""The raster tiler stack: network, provider secrets, rotator, token issuer, raster API, CDN, alarms, dashboard and
outputs.

Only wiring lives here; each service is a construct of its own module. `DeploySettings` has already validated
everything (providers, region, VPC inputs), so this module never has to say no.
"""

from __future__ import annotations

import json

from aws_cdk import CfnOutput, Duration, Environment, Stack, Tags
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infrastructure.alarms import Alarms, AlarmsProps
from infrastructure.auth import TokenIssuer, UserPoolAuth, UserPoolAuthProps
from infrastructure.bundling import lambda_code, lambda_image_code, md_bundle, raster_bundle, rotator_bundle
from infrastructure.cdn import Cdn, CdnProps
from infrastructure.config import DeploySettings
from infrastructure.dashboard import Dashboard, DashboardProps
from infrastructure.nag import acknowledge_findings
from infrastructure.network import Network, NetworkProps
from infrastructure.provider_secrets import ProviderSecrets
from infrastructure.raster import HANDLER, RasterApi, RasterApiProps, default_buckets, download_buckets
from infrastructure.rotator import CredentialRotator, CredentialRotatorProps
from providers import Provider, ProviderKind


def import_secret(scope: Construct, construct_id: str, name_or_arn: str) -> secretsmanager.ISecret:
    """An existing secret by ARN (complete or partial) or by name; grants then name exactly that secret."""
    if name_or_arn.startswith("arn:"):
        # A complete ARN ends in "-" + 6 random characters that Secrets Manager appended to the name.
        suffix = name_or_arn.rsplit("-", 1)[-1]
        if len(suffix) == 6 and suffix.isalnum():
            return secretsmanager.Secret.from_secret_complete_arn(scope, construct_id, name_or_arn)
        return secretsmanager.Secret.from_secret_partial_arn(scope, construct_id, name_or_arn)
    return secretsmanager.Secret.from_secret_name_v2(scope, construct_id, name_or_arn)


class RasterTilerStack(Stack):
    """Public members: `network`, `secrets`, `rotator` (None without earthdata providers), `user_pool_auth` (with
    `cognito`), `raster`, `cdn` (None when `cdn` is off), `origin_verify_secret` (with the CDN), `alarms`,
    `dashboard`."""

    def __init__(self, scope: Construct, settings: DeploySettings) -> None:
        super().__init__(
            scope,
            settings.stack_name,
            env=Environment(account=settings.account, region=settings.region),
            description=f"Raster tiler ({settings.stage}): titiler on Lambda with per-provider credentials",
        )
        self.settings = settings
        architecture = lambda_.Architecture.ARM_64 if settings.architecture == "arm64" else lambda_.Architecture.X86_64
        self.network = Network(
            self,
            "Network",
            NetworkProps(
                cidr=settings.vpc_cidr,
                nat_gateways=settings.nat_gateways,
                max_azs=settings.max_azs,
                availability_zones=tuple(settings.availability_zones),
                vpc_id=settings.vpc_id,
                private_subnet_ids=tuple(settings.private_subnet_ids),
            ),
        )
        self.secrets = ProviderSecrets(
            self, "ProviderSecrets", names={p.name: settings.secret_name(p) for p in settings.earthdata_providers}
        )
        providers = tuple(self._deployed_provider(p) for p in settings.providers)
        provider_secrets: dict[str, secretsmanager.ISecret] = dict(self.secrets.secrets)
        # Signs the tile URLs handed to signed-in callers (`raster_api.grants`): generated here, read by the raster
        # Lambda, replaced weekly by the rotator (the API still accepts the previous value).
        self.grant_key_secret = (
            secretsmanager.Secret(
                self,
                "GrantKeySecret",
                secret_name=f"{settings.secret_prefix}{settings.stack_name}/tile-grant-key",
                description="Key the raster API signs tile URL grants with (rotated by the credential rotator)",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    exclude_punctuation=True, password_length=48
                ),
            )
            if settings.auth_enabled
            else None
        )
        self.rotator: CredentialRotator | None = None
        if settings.earthdata_providers and settings.earthdata_login_secret:
            self.rotator = CredentialRotator(
                self,
                "CredentialRotator",
                CredentialRotatorProps(
                    code=lambda_code(
                        rotator_bundle(settings.architecture), settings.bundling, settings.bundle_cache_dir
                    ),
                    providers=tuple(p for p in providers if p.kind is ProviderKind.EARTHDATA),
                    provider_secrets=dict(self.secrets.secrets),
                    login_secret=import_secret(self, "EarthdataLoginSecret", settings.earthdata_login_secret),
                    login_secret_id=settings.earthdata_login_secret,
                    earthdata_url=settings.earthdata_url,
                    architecture=architecture,
                    vpc=self.network.vpc,
                    subnets=self.network.subnets,
                    grant_key_secret=self.grant_key_secret,
                ),
            )
        # Generated here, sent by CloudFront as `x-origin-verify`, readable by the raster Lambda: the API can then
        # refuse requests that reach the execute-api URL directly, around the cache and the web ACL.
        self.origin_verify_secret = (
            secretsmanager.Secret(
                self,
                "OriginVerifySecret",
                secret_name=self.origin_verify_secret_name,
                description="Value CloudFront sends to the raster API as the x-origin-verify header",
                generate_secret_string=secretsmanager.SecretStringGenerator(
                    exclude_punctuation=True, password_length=48
                ),
            )
            if settings.cdn
            else None
        )
        self.user_pool_auth = (
            UserPoolAuth(self, "Auth", UserPoolAuthProps(groups=tuple(settings.access_groups)))
            if settings.cognito
            else None
        )
        # With the CDN on, the custom domain belongs to the distribution, not to API Gateway.
        api_domain = None if settings.cdn else settings.domain_name
        api_certificate = None if settings.cdn else settings.certificate_arn
        self.raster = RasterApi(
            self,
            "RasterApi",
            RasterApiProps(
                code=lambda_code(raster_bundle(settings.architecture), settings.bundling, settings.bundle_cache_dir),
                providers=providers,
                provider_secrets=provider_secrets,
                architecture=architecture,
                vpc=self.network.vpc,
                subnets=self.network.subnets,
                memory_mb=settings.raster_memory_mb,
                timeout=Duration.seconds(settings.raster_timeout_seconds),
                snap_start=settings.snap_start,
                cors_origins=tuple(settings.cors_origins),
                pgstac_secret=import_secret(self, "PgstacSecret", settings.pgstac_secret)
                if settings.pgstac_secret
                else None,
                pgstac_secret_id=settings.pgstac_secret,
                domain_name=api_domain,
                certificate_arn=api_certificate,
                throttle_rate=settings.throttle_rate,
                throttle_burst=settings.throttle_burst,
                reserved_concurrency=settings.raster_reserved_concurrency,
                origin_verify_secret=self.origin_verify_secret,
                origin_verify_secret_id=self.origin_verify_secret_name if self.origin_verify_secret else None,
                token_issuer=self._token_issuer(),
                grant_key_secret=self.grant_key_secret,
                md_code=lambda_image_code(
                    md_bundle(settings.architecture), HANDLER, settings.bundling, settings.bundle_cache_dir
                )
                if settings.md
                else None,
                environment=dict(settings.raster_environment),
            ),
        )
        self.cdn = (
            Cdn(
                self,
                "Cdn",
                CdnProps(
                    api=self.raster.api,
                    origin_verify_secret=self.origin_verify_secret,
                    domain_name=settings.domain_name,
                    certificate_arn=settings.certificate_arn,
                    web_acl_arn=settings.waf_acl_arn,
                    additional_metrics=settings.cdn_additional_metrics,
                ),
            )
            if self.origin_verify_secret
            else None
        )
        # Links in TileJSON/WMTS are written from this, never from a request's Host: behind the CDN the Host the API
        # sees is API Gateway's. The distribution references only the HttpApi (not its routes or integration), so the
        # function can depend on it without a cycle.
        if settings.domain_name:
            self.raster.set_public_url(f"https://{settings.domain_name}")
        elif self.cdn:
            self.raster.set_public_url(f"https://{self.cdn.distribution.distribution_domain_name}")
        self.alarms = Alarms(
            self,
            "Alarms",
            AlarmsProps(
                rotator=self.rotator.function if self.rotator else None,
                api=self.raster.api,
                earthdata_providers=tuple(p.name for p in settings.earthdata_providers),
                email=settings.alarm_email,
                topic_arn=settings.alarm_topic_arn,
                expiry_threshold_seconds=settings.expiry_alarm_seconds,
                error_rate_percent=settings.error_rate_alarm_percent,
            ),
        )
        self.dashboard = Dashboard(
            self,
            "Dashboard",
            DashboardProps(
                dashboard_name=settings.stack_name,
                providers=tuple(p.name for p in settings.providers),
                earthdata_providers=tuple(p.name for p in settings.earthdata_providers),
                function=self.raster.function,
                md_function=self.raster.md_function,
                api=self.raster.api,
                distribution=self.cdn.distribution if self.cdn else None,
            ),
        )
        self._outputs()
        for key, value in {"Project": settings.project, "Stage": settings.stage, **settings.tags}.items():
            Tags.of(self).add(key, value)
        acknowledge_findings(
            self.raster,
            self.rotator,
            self.secrets,
            default_buckets(settings.providers),
            cdn=self.cdn,
            origin_verify_secret=self.origin_verify_secret,
            user_pool_auth=self.user_pool_auth,
            downloadable_buckets=download_buckets(settings.providers),
            grant_key_secret=self.grant_key_secret,
        )

    @property
    def origin_verify_secret_name(self) -> str:
        return f"{self.settings.secret_prefix}{self.settings.stack_name}/origin-verify"

    @property
    def availability_zones(self) -> list[str]:
        """The configured AZs when given: CDK then never looks them up (no AWS call at synth)."""
        configured = getattr(self, "settings", None)
        if configured is not None and configured.availability_zones:
            return list(configured.availability_zones)
        return list(super().availability_zones)

    def _token_issuer(self) -> TokenIssuer | None:
        settings = self.settings
        if self.user_pool_auth:
            return TokenIssuer(
                issuer=self.user_pool_auth.issuer,
                audience=self.user_pool_auth.audience,
                groups_claim=settings.auth_groups_claim,
            )
        if settings.auth_issuer and settings.auth_audience:
            return TokenIssuer(
                issuer=settings.auth_issuer,
                audience=settings.auth_audience,
                jwks_url=settings.auth_jwks_url,
                groups_claim=settings.auth_groups_claim,
            )
        return None

    def _deployed_provider(self, provider: Provider) -> Provider:
        """The provider as the Lambdas see it: an earthdata `secret_id` names the secret this stack created."""
        if provider.kind is not ProviderKind.EARTHDATA:
            return provider
        return provider.model_copy(update={"secret_id": self.secrets.names[provider.name]})

    def _outputs(self) -> None:
        CfnOutput(self, "ApiUrl", value=self.raster.url, description="Raster API base URL")
        CfnOutput(self, "RasterFunctionName", value=self.raster.function.function_name)
        if self.cdn:
            CfnOutput(self, "CdnUrl", value=self.cdn.url, description="Public base URL (CloudFront)")
            CfnOutput(
                self,
                "DistributionDomainName",
                value=self.cdn.distribution.distribution_domain_name,
                description="Point the custom domain's DNS (CNAME/alias) here" if self.cdn.custom_domain else None,
            )
        CfnOutput(self, "DashboardName", value=self.dashboard.dashboard.dashboard_name)
        if self.raster.domain:
            CfnOutput(
                self,
                "CustomDomainTarget",
                value=self.raster.domain.regional_domain_name,
                description="Point the custom domain's DNS (CNAME/alias) here",
            )
        if self.raster.security_group:
            CfnOutput(
                self,
                "RasterSecurityGroupId",
                value=self.raster.security_group.security_group_id,
                description="Allow this group in the pgstac database's security group",
            )
        if self.rotator:
            CfnOutput(self, "RotatorFunctionName", value=self.rotator.function.function_name)
        CfnOutput(
            self,
            "ProviderSecretNames",
            value=json.dumps(self.secrets.names, sort_keys=True),
            description="Earthdata provider -> Secrets Manager secret written by the rotator",
        )
        CfnOutput(self, "AlarmTopicArn", value=self.alarms.topic.topic_arn)
        if self.user_pool_auth:
            CfnOutput(self, "UserPoolId", value=self.user_pool_auth.user_pool.user_pool_id)
            CfnOutput(
                self,
                "UserPoolClientId",
                value=self.user_pool_auth.client.user_pool_client_id,
                description="App client for sign-in (the tokens' audience)",
            )
        if self.raster.download_role:
            CfnOutput(self, "DownloadRoleArn", value=self.raster.download_role.role_arn)
