"""cdk-nag: the AwsSolutions rules run at every synth, and every accepted finding says why it is accepted.

Acknowledgements are attached to the exact constructs (and, for IAM wildcards, the exact wildcard strings) they
concern, so a new finding anywhere else still fails `cdk synth`.
"""

from __future__ import annotations

from collections.abc import Iterable

from aws_cdk import Acknowledgment, Validations
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import IConstruct

from infrastructure.auth import UserPoolAuth
from infrastructure.cdn import Cdn
from infrastructure.provider_secrets import ProviderSecrets
from infrastructure.raster import RasterApi, bucket_arns
from infrastructure.rotator import CredentialRotator

LAMBDA_MANAGED_POLICIES = {
    "AWSLambdaBasicExecutionRole": (
        "AWS's own minimal Lambda logging policy (CloudWatch Logs writes only), attached by the Function construct."
    ),
    "AWSLambdaVPCAccessExecutionRole": (
        "Required for a Lambda in a VPC to manage its network interfaces (ENI actions have no resource-level "
        "permissions); attached by the Function construct."
    ),
}
RUNTIME_REASON = (
    "Python 3.12 on purpose: the bundled manylinux wheels (rasterio/GDAL, numpy) and the code are built and tested "
    "for CPython 3.12; a runtime upgrade is a deliberate change to the project's Python version."
)


def _acknowledge(scope: IConstruct, rule: str, reason: str) -> None:
    Validations.of(scope).acknowledge(Acknowledgment(id=rule, reason=reason))


def acknowledge_lambda(function_scope: IConstruct) -> None:
    """The findings every Python Lambda of this stack shares (managed execution policies, pinned runtime)."""
    for policy, reason in LAMBDA_MANAGED_POLICIES.items():
        _acknowledge(
            function_scope,
            f"AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/{policy}]",
            reason,
        )
    _acknowledge(function_scope, "AwsSolutions-L1", RUNTIME_REASON)


def acknowledge_cdn(cdn: Cdn, origin_verify_secret: secretsmanager.ISecret) -> None:
    """The CloudFront findings this design accepts (TLS on the default domain, logging, geo restriction)."""
    distribution = cdn.distribution
    if not cdn.custom_domain:
        _acknowledge(
            distribution,
            "AwsSolutions-CFR4",
            "No custom domain configured: the distribution uses CloudFront's default *.cloudfront.net certificate, "
            "whose viewer security policy CloudFront fixes itself; with DEPLOY_DOMAIN_NAME the stack sets "
            "TLSv1.2_2021. The origin leg is HTTPS with TLS 1.2 only.",
        )
    _acknowledge(
        distribution,
        "AwsSolutions-CFR3",
        "Every request that reaches the origin is in the API Gateway access log (path only, no query strings, which "
        "can carry tokens); cache hits are counted by CloudFront's metrics on the dashboard. Standard logging would "
        "add an ACL-enabled log bucket holding full query strings.",
    )
    _acknowledge(
        distribution,
        "AwsSolutions-CFR1",
        "A public map tile service for users anywhere; data access is decided per provider and bucket, not by country.",
    )
    _acknowledge(
        distribution,
        "AwsSolutions-CFR2",
        "A web ACL is optional (DEPLOY_WAF_ACL_ARN, e.g. with a rate-based rule); without it the API Gateway stage "
        "throttle caps the request rate and so the bill.",
    )
    _acknowledge(
        origin_verify_secret,
        "AwsSolutions-SMG4",
        "A shared value between CloudFront (custom origin header) and the raster API, not a credential to an AWS "
        "service; rotating it means redeploying the distribution. Replace it by changing the secret and deploying.",
    )


def acknowledge_findings(
    raster: RasterApi,
    rotator: CredentialRotator | None,
    secrets: ProviderSecrets,
    default_buckets: Iterable[str],
    cdn: Cdn | None = None,
    origin_verify_secret: secretsmanager.ISecret | None = None,
    user_pool_auth: UserPoolAuth | None = None,
    downloadable_buckets: Iterable[str] = (),
    grant_key_secret: secretsmanager.ISecret | None = None,
) -> None:
    """Attach the reasoned acknowledgements for the findings this design accepts."""
    if grant_key_secret is not None:
        _acknowledge(
            grant_key_secret,
            "AwsSolutions-SMG4",
            "Replaced weekly by the credential rotator Lambda on its EventBridge schedule (the API still accepts the "
            "AWSPREVIOUS value, so no tile URL in flight breaks); it signs the API's own tile URLs and opens nothing "
            "else, so Secrets Manager's four-step rotation protocol has nothing to set or test.",
        )
    acknowledge_lambda(raster.function)
    if raster.md_function:
        acknowledge_lambda(raster.md_function)
    if rotator:
        acknowledge_lambda(rotator.function)
    if rotator and rotator.check_provider is not None:
        _acknowledge(
            rotator.check_provider,
            "AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]",
            'CDK\'s AwsCustomResource provider (it sends the rotator the post-deploy {"check": true}); the managed '
            "policy is AWS's minimal Lambda logging policy, attached by the construct.",
        )
    _acknowledge(
        raster.api,
        "AwsSolutions-APIG4",
        "Public providers are read anonymously by design (map front-ends fetch tiles like from any web map tile "
        "service); for restricted providers the API itself validates the caller's OpenID Connect token and groups, "
        "per provider and on the same routes, which an API Gateway authorizer on the route cannot express.",
    )
    if cdn and origin_verify_secret:
        acknowledge_cdn(cdn, origin_verify_secret)
    for secret in secrets.secrets.values():
        _acknowledge(
            secret,
            "AwsSolutions-SMG4",
            "Rotated every 30 minutes by the credential rotator Lambda on its EventBridge schedule (Earthdata issues "
            "one-hour keys); Secrets Manager's own rotation protocol does not fit a value fetched from Earthdata.",
        )
    for arn in bucket_arns(default_buckets):
        for function in (raster.function, raster.md_function):
            if "*" in arn and function:
                _acknowledge(
                    function,
                    f"AwsSolutions-IAM5[Resource::{arn}]",
                    "Objects (or bucket globs) of the `default` provider's buckets, exactly as the providers file "
                    "lists them: the raster API reads any object in the buckets it serves with its own identity.",
                )
    if raster.download_role:
        for arn in bucket_arns(downloadable_buckets):
            if "*" in arn:
                _acknowledge(
                    raster.download_role,
                    f"AwsSolutions-IAM5[Resource::{arn}]",
                    "Objects of the buckets whose `default` provider allows downloads, exactly as the providers file "
                    "lists them; every session the API opens on this role carries a session policy naming one object.",
                )
