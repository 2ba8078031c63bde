"""The CDK app's synthesized template: what ops deploy and what an auditor reads.

Built with `bundling=skip` (a placeholder asset) and cdk-nag on, so each synth takes seconds and a finding fails it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")

from aws_cdk import App  # noqa: E402
from aws_cdk import aws_sns as sns  # noqa: E402
from pydantic import ValidationError  # noqa: E402

from infrastructure.app import build_app  # noqa: E402
from infrastructure.auth import TokenIssuer  # noqa: E402
from infrastructure.bundling import BundleError, check_size  # noqa: E402
from infrastructure.config import DeploySettings  # noqa: E402
from tests.infra_helpers import as_list, dependency_cycle  # noqa: E402

LOGIN_SECRET = "raster-tiler/earthdata-login"
PGSTAC_SECRET = "arn:aws:secretsmanager:us-west-2:123456789012:secret:pgstac/conn-AbCdEf"
PARTNER_ROLE = "arn:aws:iam::111122223333:role/raster-tiler-reader"
CERTIFICATE = "arn:aws:acm:us-west-2:123456789012:certificate/0b1c2d3e-0000-4000-8000-000000000000"
CDN_CERTIFICATE = "arn:aws:acm:us-east-1:123456789012:certificate/1c2d3e4f-0000-4000-8000-000000000000"
WEB_ACL = "arn:aws:wafv2:us-east-1:123456789012:global/webacl/raster-tiler/a1b2c3d4-0000-4000-8000-000000000000"
OPS_TOPIC = "arn:aws:sns:us-west-2:123456789012:ops-alarms"
ORIGIN_VERIFY_SECRET = "dev/raster-tiler-dev/origin-verify"
PROVIDERS = [
    {
        "name": "daac-a",
        "kind": "earthdata",
        "buckets": ["daac-a-protected"],
        "credentials_url": "https://daac-a.example.org/s3credentials",
        "secret_id": "raster/providers/daac-a",
    },
    {
        "name": "daac-b",
        "kind": "earthdata",
        "buckets": ["daac-b-*"],
        "credentials_url": "https://daac-b.example.org/s3credentials",
        "secret_id": "raster/providers/daac-b",
    },
    {"name": "partner", "kind": "assume_role", "buckets": ["partner-data"], "role_arn": PARTNER_ROLE},
    {"name": "own", "kind": "default", "buckets": ["own-data", "own-archive-*"]},
    {"name": "public", "kind": "unsigned", "buckets": ["public-data"]},
]


# The same providers with access rules: a partner for two groups, our own buckets for any signed-in caller (and
# downloadable), a second default provider that is not, an assume_role provider's downloads (signed with its own role).
RESTRICTED_PROVIDERS = [
    {**p, "access": ["partner-analysts", "ops"], "allow_download": True}
    if p["name"] == "partner"
    else {**p, "access": "authenticated", "allow_download": True}
    if p["name"] == "own"
    else {**p, "access": ["ops"]}
    if p["name"] == "daac-a"
    else p
    for p in PROVIDERS
] + [{"name": "scratch", "kind": "default", "buckets": ["own-scratch"]}]
ISSUER = "https://login.example.org/realms/maps"
JWKS_URL = "https://login.example.org/realms/maps/protocol/openid-connect/certs"


def settings(**overrides: Any) -> DeploySettings:
    values: dict[str, Any] = {
        "providers_config": json.dumps(PROVIDERS),
        "earthdata_login_secret": LOGIN_SECRET,
        "pgstac_secret": PGSTAC_SECRET,
        "alarm_email": "ops@example.org",
        "secret_prefix": "dev/",
        "bundling": "skip",
        "_env_file": None,
        **overrides,
    }
    return DeploySettings(**values)


def synth(config: DeploySettings, tmp: Path, tamper: Any = None) -> dict[str, Any]:
    app, stack = build_app(config, App(outdir=str(tmp)))
    if tamper:
        tamper(stack)
    assembly = app.synth()
    return dict(assembly.get_stack_by_name(stack.stack_name).template)


@pytest.fixture(scope="module")
def outdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cdk")


@pytest.fixture(scope="module")
def template(outdir: Path) -> dict[str, Any]:
    return synth(settings(), outdir)


def resources(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in template["Resources"].items() if v["Type"] == kind}


def function(template: dict[str, Any], handler: str) -> tuple[str, dict[str, Any]]:
    found = [
        (k, v)
        for k, v in resources(template, "AWS::Lambda::Function").items()
        if v["Properties"].get("Handler") == handler
    ]
    assert len(found) == 1, f"one function with handler {handler}"
    return found[0]


def statements_of_role(template: dict[str, Any], function_id: str) -> list[dict[str, Any]]:
    role = template["Resources"][function_id]["Properties"]["Role"]["Fn::GetAtt"][0]
    statements: list[dict[str, Any]] = []
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": role} in policy["Properties"]["Roles"]:
            statements.extend(policy["Properties"]["PolicyDocument"]["Statement"])
    return statements


def resources_for(statements: list[dict[str, Any]], action: str) -> list[Any]:
    return [r for s in statements if action in as_list(s["Action"]) for r in as_list(s["Resource"])]


def provider_secret_refs(template: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {
        v["Properties"]["Name"]: {"Ref": k}
        for k, v in resources(template, "AWS::SecretsManager::Secret").items()
        if v["Properties"]["Name"] != ORIGIN_VERIFY_SECRET
    }


def secrets_named(template: dict[str, Any], name: str) -> dict[str, dict[str, Any]]:
    return {
        k: v for k, v in resources(template, "AWS::SecretsManager::Secret").items() if v["Properties"]["Name"] == name
    }


# --- schedule and post-deploy run -------------------------------------------------------------------------------


def test_schedule_runs_the_rotator_every_30_minutes(template: dict[str, Any]) -> None:
    rotator_id, _ = function(template, "credential_rotator.handler.handler")
    rules = list(resources(template, "AWS::Events::Rule").values())
    assert [r["Properties"]["ScheduleExpression"] for r in rules] == ["rate(30 minutes)"]
    assert [t["Arn"] for t in rules[0]["Properties"]["Targets"]] == [{"Fn::GetAtt": [rotator_id, "Arn"]}]


def test_rotator_runs_once_after_each_deploy_without_blocking_it(template: dict[str, Any]) -> None:
    rotator_id, _ = function(template, "credential_rotator.handler.handler")
    triggers = list(resources(template, "Custom::Trigger").values())
    assert len(triggers) == 1
    assert triggers[0]["Properties"]["InvocationType"] == "Event"
    version = template["Resources"][triggers[0]["Properties"]["HandlerArn"]["Ref"]]
    assert version["Properties"]["FunctionName"] == {"Ref": rotator_id}
    # Runs only once the provider secrets exist.
    assert set(provider_secret_refs(template)) and all(
        ref["Ref"] in triggers[0]["DependsOn"] for ref in provider_secret_refs(template).values()
    )


def test_each_deploy_sends_the_rotator_a_check_event_without_blocking_it(template: dict[str, Any]) -> None:
    rotator_id, _ = function(template, "credential_rotator.handler.handler")
    (check,) = resources(template, "Custom::AWS").values()
    create = check["Properties"]["Create"]["Fn::Join"][1]
    assert check["Properties"]["Update"] == check["Properties"]["Create"]  # again whenever the version changes
    call = json.loads(create[0] + "VERSION-ARN" + create[2])
    assert (call["service"], call["action"]) == ("Lambda", "invoke")
    assert call["parameters"]["InvocationType"] == "Event"
    assert json.loads(call["parameters"]["Payload"]) == {"check": True}
    version = template["Resources"][create[1]["Ref"]]
    assert version["Type"] == "AWS::Lambda::Version" and version["Properties"]["FunctionName"] == {"Ref": rotator_id}
    assert all(ref["Ref"] in check["DependsOn"] for ref in provider_secret_refs(template).values())
    policy = template["Resources"][next(d for d in check["DependsOn"] if "CustomResourcePolicy" in d)]
    assert policy["Properties"]["PolicyDocument"]["Statement"] == [
        {"Action": "lambda:InvokeFunction", "Effect": "Allow", "Resource": {"Ref": create[1]["Ref"]}}
    ]


# --- secrets ----------------------------------------------------------------------------------------------------


def test_one_secret_per_earthdata_provider_named_by_the_providers_file(template: dict[str, Any]) -> None:
    assert set(provider_secret_refs(template)) == {"dev/raster/providers/daac-a", "dev/raster/providers/daac-b"}


# --- IAM --------------------------------------------------------------------------------------------------------


def test_rotator_writes_only_the_provider_secrets(template: dict[str, Any]) -> None:
    rotator_id, _ = function(template, "credential_rotator.handler.handler")
    statements = statements_of_role(template, rotator_id)
    put = resources_for(statements, "secretsmanager:PutSecretValue")
    assert sorted(map(json.dumps, put)) == sorted(map(json.dumps, provider_secret_refs(template).values()))
    written = {a for s in statements for a in as_list(s["Action"]) if a.startswith("secretsmanager:")}
    assert written <= {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
        "secretsmanager:PutSecretValue",
    }


def test_rotator_reads_the_login_secret_by_name(template: dict[str, Any]) -> None:
    rotator_id, _ = function(template, "credential_rotator.handler.handler")
    read = json.dumps(resources_for(statements_of_role(template, rotator_id), "secretsmanager:GetSecretValue"))
    assert f":secret:{LOGIN_SECRET}-??????" in read


def test_raster_reads_only_provider_and_database_secrets(template: dict[str, Any]) -> None:
    raster_id, _ = function(template, "raster_api.handler.handler")
    statements = statements_of_role(template, raster_id)
    read = resources_for(statements, "secretsmanager:GetSecretValue")
    origin_verify = {"Ref": next(iter(secrets_named(template, ORIGIN_VERIFY_SECRET)))}
    expected = [*provider_secret_refs(template).values(), PGSTAC_SECRET, origin_verify]
    assert sorted(map(json.dumps, read)) == sorted(map(json.dumps, expected))
    assert not resources_for(statements, "secretsmanager:PutSecretValue")


def test_raster_assumes_only_the_configured_roles(template: dict[str, Any]) -> None:
    raster_id, _ = function(template, "raster_api.handler.handler")
    assert resources_for(statements_of_role(template, raster_id), "sts:AssumeRole") == [PARTNER_ROLE]


def test_raster_reads_only_the_default_providers_buckets(template: dict[str, Any]) -> None:
    raster_id, _ = function(template, "raster_api.handler.handler")
    statements = statements_of_role(template, raster_id)
    assert sorted(resources_for(statements, "s3:GetObject")) == [
        "arn:aws:s3:::own-archive-*/*",
        "arn:aws:s3:::own-data/*",
    ]
    assert sorted(resources_for(statements, "s3:ListBucket")) == ["arn:aws:s3:::own-archive-*", "arn:aws:s3:::own-data"]
    s3_actions = {a for s in statements for a in as_list(s["Action"]) if a.startswith("s3:")}
    assert s3_actions == {"s3:GetObject", "s3:ListBucket"}


def test_no_policy_grants_every_resource(template: dict[str, Any]) -> None:
    documents = [p["Properties"]["PolicyDocument"] for p in resources(template, "AWS::IAM::Policy").values()]
    for role in resources(template, "AWS::IAM::Role").values():
        documents += [p["PolicyDocument"] for p in role["Properties"].get("Policies", [])]
    wildcard = [s for d in documents for s in d["Statement"] if "*" in as_list(s["Resource"])]
    assert wildcard == []


# --- environment ------------------------------------------------------------------------------------------------


def test_raster_environment_carries_providers_and_no_secrets(template: dict[str, Any]) -> None:
    _, raster = function(template, "raster_api.handler.handler")
    env = raster["Properties"]["Environment"]["Variables"]
    assert set(env) == {
        "PROVIDERS_CONFIG",
        "RASTER_API_CORS_ORIGINS",
        "RASTER_API_METRICS",
        "PGSTAC_SECRET_ID",
        "RASTER_API_ORIGIN_VERIFY_SECRET_ID",
        "RASTER_API_PUBLIC_URL",
    }
    assert env["RASTER_API_METRICS"] == "true"
    providers = {p["name"]: p for p in json.loads(env["PROVIDERS_CONFIG"])}
    assert list(providers) == [p["name"] for p in PROVIDERS]
    assert providers["daac-a"]["secret_id"] == "dev/raster/providers/daac-a"
    assert providers["partner"]["role_arn"] == PARTNER_ROLE
    assert env["PGSTAC_SECRET_ID"] == PGSTAC_SECRET
    assert json.loads(env["RASTER_API_CORS_ORIGINS"]) == ["*"]
    assert env["RASTER_API_ORIGIN_VERIFY_SECRET_ID"] == "dev/raster-tiler-dev/origin-verify"


def test_no_lambda_sets_aws_variables_or_credentials(template: dict[str, Any]) -> None:
    for fn in resources(template, "AWS::Lambda::Function").values():
        env = fn["Properties"].get("Environment", {}).get("Variables", {})
        assert not [k for k in env if k.startswith("AWS_")]
        assert not [k for k in env if any(w in k for w in ("PASSWORD", "TOKEN", "USERNAME", "SECRET_ACCESS"))]


def test_rotator_environment_names_the_login_secret_and_earthdata_providers(template: dict[str, Any]) -> None:
    _, rotator = function(template, "credential_rotator.handler.handler")
    env = rotator["Properties"]["Environment"]["Variables"]
    assert env["EARTHDATA_LOGIN_SECRET_ID"] == LOGIN_SECRET
    assert env["EARTHDATA_URL"] == "https://urs.earthdata.nasa.gov"
    assert [p["secret_id"] for p in json.loads(env["PROVIDERS_CONFIG"])] == [
        "dev/raster/providers/daac-a",
        "dev/raster/providers/daac-b",
    ]


def test_raster_lambda_runs_python_312_with_configured_size(template: dict[str, Any]) -> None:
    _, raster = function(template, "raster_api.handler.handler")
    props = raster["Properties"]
    assert (props["Runtime"], props["Architectures"], props["MemorySize"], props["Timeout"]) == (
        "python3.12",
        ["x86_64"],
        2048,
        25,
    )


# --- network ----------------------------------------------------------------------------------------------------


def test_new_vpc_uses_the_configured_cidr_and_nat(template: dict[str, Any]) -> None:
    (vpc,) = resources(template, "AWS::EC2::VPC").values()
    assert vpc["Properties"]["CidrBlock"] == "10.42.0.0/16"
    assert len(resources(template, "AWS::EC2::NatGateway")) == 1
    assert resources(template, "AWS::EC2::FlowLog")
    for handler in ("raster_api.handler.handler", "credential_rotator.handler.handler"):
        subnets = function(template, handler)[1]["Properties"]["VpcConfig"]["SubnetIds"]
        assert subnets and all("privateSubnet" in s["Ref"] for s in subnets)


def test_snapstart_is_on_by_default_and_the_api_calls_the_live_alias(template: dict[str, Any]) -> None:
    _, raster = function(template, "raster_api.handler.handler")
    assert raster["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}
    # With SnapStart the API must call a published version (through the alias), not $LATEST.
    (alias_id, alias), *others = resources(template, "AWS::Lambda::Alias").items()
    assert others == [] and alias["Properties"]["Name"] == "live"
    for integration in resources(template, "AWS::ApiGatewayV2::Integration").values():
        assert alias_id in json.dumps(integration["Properties"]["IntegrationUri"])
    _, rotator = function(template, "credential_rotator.handler.handler")
    assert "SnapStart" not in rotator["Properties"]  # scheduled every 30 min: no user waits for its cold start


def test_snapstart_can_be_turned_off(tmp_path: Path) -> None:
    template = synth(settings(snap_start=False), tmp_path)
    raster_id, raster = function(template, "raster_api.handler.handler")
    assert "SnapStart" not in raster["Properties"]
    assert not resources(template, "AWS::Lambda::Alias")
    for integration in resources(template, "AWS::ApiGatewayV2::Integration").values():
        assert raster_id in json.dumps(integration["Properties"]["IntegrationUri"])


def test_existing_vpc_arm64_snapstart_domain_and_topic(tmp_path: Path) -> None:
    config = settings(
        vpc_id="vpc-0abc",
        private_subnet_ids=["subnet-1", "subnet-2"],
        availability_zones=["us-west-2a", "us-west-2b"],
        architecture="arm64",
        cdn=False,
        domain_name="tiles.example.org",
        certificate_arn=CERTIFICATE,
        alarm_email=None,
        alarm_topic_arn=OPS_TOPIC,
    )
    template = synth(config, tmp_path)
    assert not resources(template, "AWS::EC2::VPC")
    assert not resources(template, "AWS::EC2::NatGateway")
    _, raster = function(template, "raster_api.handler.handler")
    assert raster["Properties"]["VpcConfig"]["SubnetIds"] == ["subnet-1", "subnet-2"]
    assert raster["Properties"]["Architectures"] == ["arm64"]
    assert raster["Properties"]["SnapStart"] == {"ApplyOn": "PublishedVersions"}  # on arm64 too
    # Without the CDN the custom domain is mapped to the API; alarms go to the existing topic (no new topic or key).
    (domain,) = resources(template, "AWS::ApiGatewayV2::DomainName").values()
    assert domain["Properties"]["DomainName"] == "tiles.example.org"
    assert domain["Properties"]["DomainNameConfigurations"][0]["CertificateArn"] == CERTIFICATE
    assert resources(template, "AWS::ApiGatewayV2::ApiMapping")
    assert template["Outputs"]["ApiUrl"]["Value"] == "https://tiles.example.org/"
    assert not resources(template, "AWS::SNS::Topic") and not resources(template, "AWS::KMS::Key")
    alarms = resources(template, "AWS::CloudWatch::Alarm").values()
    assert alarms and all(a["Properties"]["AlarmActions"] == [OPS_TOPIC] for a in alarms)


def test_existing_vpc_needs_its_subnets() -> None:
    with pytest.raises(ValidationError, match="private_subnet_ids"):
        settings(vpc_id="vpc-0abc")


# --- region guard -----------------------------------------------------------------------------------------------


def test_earthdata_provider_outside_us_west_2_is_refused_by_name() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(region="eu-west-1")
    message = str(caught.value)
    assert "'daac-a'" in message and "'daac-b'" in message and "us-west-2" in message and "eu-west-1" in message


def test_other_regions_are_fine_without_earthdata_providers() -> None:
    others = [p for p in PROVIDERS if p["kind"] != "earthdata"]
    config = settings(region="eu-west-1", providers_config=json.dumps(others), earthdata_login_secret=None)
    assert config.region == "eu-west-1" and not config.earthdata_providers


def test_settings_come_from_deploy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_STAGE", "prod")
    monkeypatch.setenv("DEPLOY_PROVIDERS_CONFIG", json.dumps(PROVIDERS))
    monkeypatch.setenv("DEPLOY_EARTHDATA_LOGIN_SECRET", LOGIN_SECRET)
    monkeypatch.setenv("DEPLOY_CORS_ORIGINS", '["https://maps.example.org"]')
    monkeypatch.setenv("DEPLOY_ARCHITECTURE", "arm64")
    config = DeploySettings(_env_file=None)  # type: ignore[call-arg]
    assert (config.stack_name, config.cors_origins, config.architecture) == (
        "raster-tiler-prod",
        ["https://maps.example.org"],
        "arm64",
    )


# --- alarms and outputs -----------------------------------------------------------------------------------------


def test_alarms_reach_the_topic(template: dict[str, Any]) -> None:
    alarms = list(resources(template, "AWS::CloudWatch::Alarm").values())
    topic_id = next(iter(resources(template, "AWS::SNS::Topic")))
    assert all(a["Properties"]["AlarmActions"] == [{"Ref": topic_id}] for a in alarms)
    (subscription,) = resources(template, "AWS::SNS::Subscription").values()
    assert subscription["Properties"]["Endpoint"] == "ops@example.org"
    names = {a["Properties"].get("MetricName") for a in alarms}
    assert "Errors" in names  # rotator failures
    assert any("Metrics" in a["Properties"] for a in alarms)  # 5xx rate (math expression)


def test_each_earthdata_provider_has_an_expiry_alarm(template: dict[str, Any]) -> None:
    expiry = [
        a["Properties"]
        for a in resources(template, "AWS::CloudWatch::Alarm").values()
        if a["Properties"].get("MetricName") == "SecondsUntilExpiry"
    ]
    assert {a["Namespace"] for a in expiry} == {"RasterTiler/CredentialRotator"}
    assert sorted(a["Dimensions"][0]["Value"] for a in expiry) == ["daac-a", "daac-b"]
    assert all(a["ComparisonOperator"] == "LessThanThreshold" and a["Threshold"] == 1200 for a in expiry)


def test_outputs_name_the_api_the_rotator_and_the_secrets(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    assert {"ApiUrl", "RotatorFunctionName", "ProviderSecretNames", "AlarmTopicArn"} <= set(outputs)
    assert json.loads(outputs["ProviderSecretNames"]["Value"]) == {
        "daac-a": "dev/raster/providers/daac-a",
        "daac-b": "dev/raster/providers/daac-b",
    }


# --- CDN --------------------------------------------------------------------------------------------------------


def only(template: dict[str, Any], kind: str) -> dict[str, Any]:
    (resource,) = resources(template, kind).values()
    return dict(resource["Properties"])


def default_behavior(template: dict[str, Any]) -> dict[str, Any]:
    return dict(only(template, "AWS::CloudFront::Distribution")["DistributionConfig"]["DefaultCacheBehavior"])


@pytest.fixture(scope="module")
def custom_domain_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = settings(
        domain_name="tiles.example.org",
        certificate_arn=CDN_CERTIFICATE,
        waf_acl_arn=WEB_ACL,
        throttle_rate=25,
        throttle_burst=50,
        raster_reserved_concurrency=40,
    )
    return synth(config, tmp_path_factory.mktemp("cdk-domain"))


def test_cache_key_is_path_all_query_strings_encoding_authorization_and_origin_with_ttls_from_the_origin(
    template: dict[str, Any],
) -> None:
    config = only(template, "AWS::CloudFront::CachePolicy")["CachePolicyConfig"]
    assert (config["MinTTL"], config["DefaultTTL"], config["MaxTTL"]) == (0, 0, 365 * 24 * 3600)
    assert config["ParametersInCacheKeyAndForwardedToOrigin"] == {
        "QueryStringsConfig": {"QueryStringBehavior": "all"},
        "HeadersConfig": {"HeaderBehavior": "whitelist", "Headers": ["Authorization", "Origin"]},
        "CookiesConfig": {"CookieBehavior": "none"},
        "EnableAcceptEncodingGzip": True,
        "EnableAcceptEncodingBrotli": True,
    }
    assert default_behavior(template)["CachePolicyId"] == {
        "Ref": next(iter(resources(template, "AWS::CloudFront::CachePolicy")))
    }


def test_origin_gets_all_query_strings_and_cors_headers_but_never_host_or_accept(template: dict[str, Any]) -> None:
    config = only(template, "AWS::CloudFront::OriginRequestPolicy")["OriginRequestPolicyConfig"]
    assert config["QueryStringsConfig"] == {"QueryStringBehavior": "all"}
    assert config["CookiesConfig"] == {"CookieBehavior": "none"}
    # Authorization reaches the origin through the cache key only, so it never joins a shared entry.
    assert config["HeadersConfig"] == {
        "HeaderBehavior": "whitelist",
        "Headers": ["Access-Control-Request-Method", "Access-Control-Request-Headers", "Content-Type"],
    }
    cache_headers = only(template, "AWS::CloudFront::CachePolicy")["CachePolicyConfig"][
        "ParametersInCacheKeyAndForwardedToOrigin"
    ]["HeadersConfig"]["Headers"]
    forwarded = {h.lower() for h in [*config["HeadersConfig"]["Headers"], *cache_headers]}
    assert not forwarded & {"host", "accept"}


def test_viewers_are_redirected_to_https_and_only_get_and_head_are_cached(template: dict[str, Any]) -> None:
    behavior = default_behavior(template)
    assert behavior["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behavior["Compress"] is True
    assert behavior["CachedMethods"] == ["GET", "HEAD"]
    assert behavior["AllowedMethods"] == ["GET", "HEAD", "OPTIONS", "PUT", "PATCH", "POST", "DELETE"]
    (origin,) = only(template, "AWS::CloudFront::Distribution")["DistributionConfig"]["Origins"]
    assert origin["CustomOriginConfig"] == {"OriginProtocolPolicy": "https-only", "OriginSSLProtocols": ["TLSv1.2"]}


def test_cloudfront_sends_the_generated_origin_verify_secret(template: dict[str, Any]) -> None:
    (origin,) = only(template, "AWS::CloudFront::Distribution")["DistributionConfig"]["Origins"]
    secret_id = next(iter(secrets_named(template, ORIGIN_VERIFY_SECRET)))
    assert origin["OriginCustomHeaders"] == [
        {
            "HeaderName": "x-origin-verify",
            "HeaderValue": {"Fn::Join": ["", ["{{resolve:secretsmanager:", {"Ref": secret_id}, ":SecretString:::}}"]]},
        }
    ]
    generated = template["Resources"][secret_id]["Properties"]["GenerateSecretString"]
    assert generated == {"ExcludePunctuation": True, "PasswordLength": 48}


def test_responses_carry_security_headers(template: dict[str, Any]) -> None:
    config = only(template, "AWS::CloudFront::ResponseHeadersPolicy")["ResponseHeadersPolicyConfig"]
    assert config["SecurityHeadersConfig"] == {
        "StrictTransportSecurity": {"AccessControlMaxAgeSec": 31536000, "IncludeSubdomains": True, "Override": True},
        "ContentTypeOptions": {"Override": True},
        "FrameOptions": {"FrameOption": "DENY", "Override": True},
        "ReferrerPolicy": {"ReferrerPolicy": "strict-origin-when-cross-origin", "Override": True},
    }
    policy_id = next(iter(resources(template, "AWS::CloudFront::ResponseHeadersPolicy")))
    assert default_behavior(template)["ResponseHeadersPolicyId"] == {"Ref": policy_id}


def test_additional_cdn_metrics_are_enabled_for_the_hit_rate(template: dict[str, Any]) -> None:
    subscription = only(template, "AWS::CloudFront::MonitoringSubscription")
    distribution_id = next(iter(resources(template, "AWS::CloudFront::Distribution")))
    assert subscription == {
        "DistributionId": {"Ref": distribution_id},
        "MonitoringSubscription": {
            "RealtimeMetricsSubscriptionConfig": {"RealtimeMetricsSubscriptionStatus": "Enabled"}
        },
    }


def test_cdn_url_is_the_distribution_without_a_custom_domain(template: dict[str, Any]) -> None:
    distribution_id = next(iter(resources(template, "AWS::CloudFront::Distribution")))
    assert template["Outputs"]["CdnUrl"]["Value"] == {
        "Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution_id, "DomainName"]}, "/"]]
    }
    config = only(template, "AWS::CloudFront::Distribution")["DistributionConfig"]
    assert "Aliases" not in config and "WebACLId" not in config


def test_custom_domain_moves_to_the_distribution_with_tls_1_2(custom_domain_template: dict[str, Any]) -> None:
    config = only(custom_domain_template, "AWS::CloudFront::Distribution")["DistributionConfig"]
    assert config["Aliases"] == ["tiles.example.org"]
    assert config["ViewerCertificate"] == {
        "AcmCertificateArn": CDN_CERTIFICATE,
        "MinimumProtocolVersion": "TLSv1.2_2021",
        "SslSupportMethod": "sni-only",
    }
    assert config["WebACLId"] == WEB_ACL
    assert not resources(custom_domain_template, "AWS::ApiGatewayV2::DomainName")
    assert custom_domain_template["Outputs"]["CdnUrl"]["Value"] == "https://tiles.example.org/"


def test_cdn_certificate_outside_us_east_1_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"must be an ACM certificate in us-east-1"):
        settings(domain_name="tiles.example.org", certificate_arn=CERTIFICATE)


def test_web_acl_needs_the_cdn() -> None:
    with pytest.raises(ValidationError, match=r"waf_acl_arn .* needs cdn=true"):
        settings(cdn=False, waf_acl_arn=WEB_ACL)


def test_cdn_false_deploys_no_distribution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_CDN", "false")
    monkeypatch.setenv("DEPLOY_PROVIDERS_CONFIG", json.dumps([p for p in PROVIDERS if p["kind"] == "unsigned"]))
    config = DeploySettings(bundling="skip", _env_file=None)  # type: ignore[call-arg]
    assert config.cdn is False
    template = synth(config, tmp_path)
    assert not [r for r in template["Resources"].values() if r["Type"].startswith("AWS::CloudFront::")]
    assert not resources(template, "AWS::SecretsManager::Secret")
    assert "CdnUrl" not in template["Outputs"]
    _, raster = function(template, "raster_api.handler.handler")
    env = raster["Properties"]["Environment"]["Variables"]
    # No domain and no distribution: the API allows only the API Gateway host its event names.
    assert not {"RASTER_API_ORIGIN_VERIFY_SECRET_ID", "RASTER_API_PUBLIC_URL"} & set(env)


def test_links_are_built_from_the_distribution_domain_behind_the_cdn(template: dict[str, Any]) -> None:
    _, raster = function(template, "raster_api.handler.handler")
    distribution_id = next(iter(resources(template, "AWS::CloudFront::Distribution")))
    assert raster["Properties"]["Environment"]["Variables"]["RASTER_API_PUBLIC_URL"] == {
        "Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution_id, "DomainName"]}]]
    }


def test_links_are_built_from_the_custom_domain(custom_domain_template: dict[str, Any]) -> None:
    _, raster = function(custom_domain_template, "raster_api.handler.handler")
    assert raster["Properties"]["Environment"]["Variables"]["RASTER_API_PUBLIC_URL"] == "https://tiles.example.org"


# --- throttling and concurrency ---------------------------------------------------------------------------------


def test_stage_is_throttled_by_default(template: dict[str, Any]) -> None:
    assert only(template, "AWS::ApiGatewayV2::Stage")["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": 200,
        "ThrottlingRateLimit": 100,
    }
    _, raster = function(template, "raster_api.handler.handler")
    assert "ReservedConcurrentExecutions" not in raster["Properties"]


def test_throttle_and_reserved_concurrency_follow_the_settings(custom_domain_template: dict[str, Any]) -> None:
    assert only(custom_domain_template, "AWS::ApiGatewayV2::Stage")["DefaultRouteSettings"] == {
        "ThrottlingBurstLimit": 50,
        "ThrottlingRateLimit": 25,
    }
    _, raster = function(custom_domain_template, "raster_api.handler.handler")
    assert raster["Properties"]["ReservedConcurrentExecutions"] == 40


# --- dashboard --------------------------------------------------------------------------------------------------


def dashboard_body(template: dict[str, Any]) -> str:
    body = only(template, "AWS::CloudWatch::Dashboard")["DashboardBody"]
    return "".join(part if isinstance(part, str) else json.dumps(part) for part in body["Fn::Join"][1])


def test_dashboard_has_every_providers_api_metrics(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    for provider in (p["name"] for p in PROVIDERS):
        for metric in ("Requests", "ClientErrors", "ServerErrors", "S3Refusals", "LatencyMs"):
            assert f'"RasterTiler/RasterApi","{metric}","Provider","{provider}"' in body, (provider, metric)


def test_dashboard_has_rotation_metrics_for_earthdata_providers_only(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    for provider in (p["name"] for p in PROVIDERS):
        expected = provider in {"daac-a", "daac-b"}
        for namespace, metric in (
            ("RasterTiler/CredentialRotator", "SecondsUntilExpiry"),
            ("RasterTiler/CredentialRotator", "RotationSuccess"),
            ("RasterTiler/CredentialRotator", "RotationFailure"),
            ("RasterTiler/RasterApi", "CredentialSecondsLeft"),
        ):
            assert (f'"{namespace}","{metric}","Provider","{provider}"' in body) is expected, (provider, metric)


def test_the_dashboard_and_alarms_read_exactly_what_the_lambdas_write(template: dict[str, Any]) -> None:
    """Metric names are defined once (providers.metrics); what the stack reads in our namespaces is what is written."""
    from providers import metrics as names

    body = dashboard_body(template)
    read = set(re.findall(r'"(RasterTiler/\w+)","(\w+)","Provider"', body))
    for alarm in (r["Properties"] for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Alarm"):
        if alarm.get("Namespace", "").startswith("RasterTiler/"):
            read.add((alarm["Namespace"], alarm["MetricName"]))
    written = {(names.API_NAMESPACE, m) for m in names.API_METRICS}
    written |= {(names.ROTATOR_NAMESPACE, m) for m in names.ROTATOR_METRICS}
    assert read == written


def test_dashboard_shows_cdn_hit_rate_errors_and_lambda_health(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    for metric in ("CacheHitRate", "4xxErrorRate", "5xxErrorRate"):
        assert f'"AWS/CloudFront","{metric}","DistributionId"' in body
    assert '"region":"us-east-1"' in body
    for metric in ("Duration", "ConcurrentExecutions", "Throttles"):
        assert f'"AWS/Lambda","{metric}","FunctionName"' in body
    assert only(template, "AWS::CloudWatch::Dashboard")["DashboardName"] == "raster-tiler-dev"


# --- identity and access ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cognito_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = settings(providers_config=json.dumps(RESTRICTED_PROVIDERS), cognito=True)
    return synth(config, tmp_path_factory.mktemp("cdk-cognito"))


@pytest.fixture(scope="module")
def issuer_template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    config = settings(
        providers_config=json.dumps(RESTRICTED_PROVIDERS),
        auth_issuer=ISSUER,
        auth_audience="raster-tiler",
        auth_jwks_url=JWKS_URL,
        auth_groups_claim="groups",
        cdn=False,
        domain_name="tiles.example.org",
        certificate_arn=CERTIFICATE,
    )
    return synth(config, tmp_path_factory.mktemp("cdk-issuer"))


def raster_env(template: dict[str, Any]) -> dict[str, Any]:
    _, raster = function(template, "raster_api.handler.handler")
    return dict(raster["Properties"]["Environment"]["Variables"])


def test_restricted_providers_without_an_issuer_fail_the_synth_by_name() -> None:
    with pytest.raises(ValidationError) as caught:
        settings(providers_config=json.dumps(RESTRICTED_PROVIDERS))
    message = str(caught.value)
    assert (
        "provider(s) 'daac-a' (groups ops), 'partner' (groups partner-analysts, ops), 'own' (authenticated) "
        "restrict access but no token issuer is configured"
    ) in message
    assert "DEPLOY_AUTH_ISSUER and DEPLOY_AUTH_AUDIENCE" in message and "DEPLOY_COGNITO=true" in message


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"auth_issuer": ISSUER, "auth_audience": "a", "cognito": True}, "not both"),
        ({"auth_issuer": ISSUER}, "auth_issuer and auth_audience go together"),
        ({"auth_audience": "a"}, "auth_issuer and auth_audience go together"),
        ({"cognito": True, "auth_jwks_url": JWKS_URL}, "auth_jwks_url belongs to an existing auth_issuer"),
        ({"auth_issuer": "http://login.example.org", "auth_audience": "a"}, "auth_issuer"),
        ({"raster_environment": {"RASTER_API_AUTH_ISSUER": ISSUER}}, "may not set RASTER_API_AUTH_ISSUER"),
    ],
)
def test_inconsistent_auth_settings_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(**overrides)


def test_auth_settings_come_from_deploy_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEPLOY_PROVIDERS_CONFIG", json.dumps(RESTRICTED_PROVIDERS))
    monkeypatch.setenv("DEPLOY_EARTHDATA_LOGIN_SECRET", LOGIN_SECRET)
    monkeypatch.setenv("DEPLOY_AUTH_ISSUER", ISSUER)
    monkeypatch.setenv("DEPLOY_AUTH_AUDIENCE", "raster-tiler")
    monkeypatch.setenv("DEPLOY_AUTH_JWKS_URL", JWKS_URL)
    monkeypatch.setenv("DEPLOY_AUTH_GROUPS_CLAIM", "groups")
    config = DeploySettings(_env_file=None)  # type: ignore[call-arg]
    assert (config.auth_issuer, config.auth_audience, config.auth_jwks_url, config.auth_groups_claim) == (
        ISSUER,
        "raster-tiler",
        JWKS_URL,
        "groups",
    )
    monkeypatch.delenv("DEPLOY_AUTH_ISSUER")
    monkeypatch.delenv("DEPLOY_AUTH_AUDIENCE")
    monkeypatch.delenv("DEPLOY_AUTH_JWKS_URL")
    monkeypatch.setenv("DEPLOY_COGNITO", "true")
    assert DeploySettings(_env_file=None).cognito is True  # type: ignore[call-arg]


def test_public_providers_deploy_no_issuer(template: dict[str, Any]) -> None:
    assert not [k for k in raster_env(template) if k.startswith("RASTER_API_AUTH_")]
    assert not [r for r in template["Resources"].values() if r["Type"].startswith("AWS::Cognito::")]


def test_created_user_pool_issues_the_tokens_the_api_accepts(cognito_template: dict[str, Any]) -> None:
    pool_id = next(iter(resources(cognito_template, "AWS::Cognito::UserPool")))
    client_id = next(iter(resources(cognito_template, "AWS::Cognito::UserPoolClient")))
    env = raster_env(cognito_template)
    assert {k: v for k, v in env.items() if k.startswith("RASTER_API_AUTH_")} == {
        "RASTER_API_AUTH_ISSUER": {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [pool_id, "ProviderURL"]}]]},
        "RASTER_API_AUTH_AUDIENCE": {"Ref": client_id},
        "RASTER_API_AUTH_GROUPS_CLAIM": "cognito:groups",
    }
    outputs = cognito_template["Outputs"]
    assert (outputs["UserPoolId"]["Value"], outputs["UserPoolClientId"]["Value"]) == (
        {"Ref": pool_id},
        {"Ref": client_id},
    )
    # The deployed providers keep their access rules: the API enforces them.
    deployed = {p["name"]: p["access"] for p in json.loads(env["PROVIDERS_CONFIG"])}
    assert deployed == {
        "daac-a": ["ops"],
        "daac-b": "public",
        "partner": ["partner-analysts", "ops"],
        "own": "authenticated",
        "public": "public",
        "scratch": "public",
    }


def test_the_tile_grant_key_is_generated_read_by_the_api_and_rotated_by_the_rotator(
    cognito_template: dict[str, Any],
) -> None:
    secrets = {
        k: v
        for k, v in resources(cognito_template, "AWS::SecretsManager::Secret").items()
        if v["Properties"].get("Name", "").endswith("/tile-grant-key")
    }
    ((secret_id, secret),) = secrets.items()
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] == 48
    assert raster_env(cognito_template)["RASTER_API_GRANT_SECRET_ID"] == {"Ref": secret_id}
    raster_id, _ = function(cognito_template, "raster_api.handler.handler")
    assert {"Ref": secret_id} in resources_for(
        statements_of_role(cognito_template, raster_id), "secretsmanager:GetSecretValue"
    )
    assert {"Ref": secret_id} not in resources_for(
        statements_of_role(cognito_template, raster_id), "secretsmanager:PutSecretValue"
    )
    rotator_id, rotator = function(cognito_template, "credential_rotator.handler.handler")
    assert rotator["Properties"]["Environment"]["Variables"]["ROTATOR_GRANT_KEY_SECRET_ID"] == {"Ref": secret_id}
    rotator_statements = statements_of_role(cognito_template, rotator_id)
    for action in ("secretsmanager:ListSecretVersionIds", "secretsmanager:PutSecretValue"):
        assert {"Ref": secret_id} in resources_for(rotator_statements, action)


def test_no_tile_grant_key_without_signed_in_callers(template: dict[str, Any]) -> None:
    names = [v["Properties"].get("Name", "") for v in resources(template, "AWS::SecretsManager::Secret").values()]
    assert not [n for n in names if n.endswith("/tile-grant-key")]
    assert "RASTER_API_GRANT_SECRET_ID" not in raster_env(template)


def test_user_pool_has_one_group_per_group_the_providers_name(cognito_template: dict[str, Any]) -> None:
    pool_id = next(iter(resources(cognito_template, "AWS::Cognito::UserPool")))
    groups = resources(cognito_template, "AWS::Cognito::UserPoolGroup").values()
    assert sorted((g["Properties"]["GroupName"], g["Properties"]["UserPoolId"]["Ref"]) for g in groups) == [
        ("ops", pool_id),
        ("partner-analysts", pool_id),
    ]


def test_user_pool_is_admin_only_with_mfa_and_threat_protection(cognito_template: dict[str, Any]) -> None:
    pool = only(cognito_template, "AWS::Cognito::UserPool")
    assert pool["AdminCreateUserConfig"] == {"AllowAdminCreateUserOnly": True}
    assert (pool["MfaConfiguration"], pool["EnabledMfas"]) == ("ON", ["SOFTWARE_TOKEN_MFA"])
    assert pool["Policies"] == {
        "PasswordPolicy": {
            "MinimumLength": 12,
            "RequireLowercase": True,
            "RequireNumbers": True,
            "RequireSymbols": True,
            "RequireUppercase": True,
            "TemporaryPasswordValidityDays": 3,
        }
    }
    assert (pool["UserPoolTier"], pool["UserPoolAddOns"]) == ("PLUS", {"AdvancedSecurityMode": "ENFORCED"})
    # Deleting the stack keeps the accounts.
    (resource,) = resources(cognito_template, "AWS::Cognito::UserPool").values()
    assert (resource["DeletionPolicy"], resource["UpdateReplacePolicy"]) == ("Retain", "Retain")


def test_app_client_is_public_with_one_hour_tokens(cognito_template: dict[str, Any]) -> None:
    client = only(cognito_template, "AWS::Cognito::UserPoolClient")
    assert client["GenerateSecret"] is False
    assert client["ExplicitAuthFlows"] == [
        "ALLOW_USER_PASSWORD_AUTH",
        "ALLOW_USER_SRP_AUTH",
        "ALLOW_REFRESH_TOKEN_AUTH",
    ]
    assert (client["AccessTokenValidity"], client["IdTokenValidity"], client["RefreshTokenValidity"]) == (60, 60, 1440)
    assert client["TokenValidityUnits"] == {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "minutes"}
    assert (client["PreventUserExistenceErrors"], client["EnableTokenRevocation"]) == ("ENABLED", True)
    assert client["AllowedOAuthFlowsUserPoolClient"] is False


def test_existing_issuer_is_passed_to_the_api_as_configured(issuer_template: dict[str, Any]) -> None:
    env = raster_env(issuer_template)
    assert {k: v for k, v in env.items() if k.startswith("RASTER_API_AUTH_")} == {
        "RASTER_API_AUTH_ISSUER": ISSUER,
        "RASTER_API_AUTH_AUDIENCE": "raster-tiler",
        "RASTER_API_AUTH_JWKS_URL": JWKS_URL,
        "RASTER_API_AUTH_GROUPS_CLAIM": "groups",
    }
    assert not [r for r in issuer_template["Resources"].values() if r["Type"].startswith("AWS::Cognito::")]
    # Without the CDN the custom domain is API Gateway's, and links are built from it.
    assert env["RASTER_API_PUBLIC_URL"] == "https://tiles.example.org"


def test_issuer_without_a_jwks_url_leaves_it_to_discovery() -> None:
    assert TokenIssuer(issuer=ISSUER, audience="raster-tiler").environment() == {
        "RASTER_API_AUTH_ISSUER": ISSUER,
        "RASTER_API_AUTH_AUDIENCE": "raster-tiler",
        "RASTER_API_AUTH_GROUPS_CLAIM": "cognito:groups",
    }


# --- downloads --------------------------------------------------------------------------------------------------


def download_role(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (found,) = [(k, v["Properties"]) for k, v in resources(template, "AWS::IAM::Role").items() if "DownloadRole" in k]
    return found


def test_download_role_is_assumable_only_by_the_raster_lambda(cognito_template: dict[str, Any]) -> None:
    raster_id, raster = function(cognito_template, "raster_api.handler.handler")
    execution_role = raster["Properties"]["Role"]["Fn::GetAtt"][0]
    _, role = download_role(cognito_template)
    assert role["AssumeRolePolicyDocument"] == {
        "Statement": [
            {
                "Action": "sts:AssumeRole",
                "Effect": "Allow",
                "Principal": {"AWS": {"Fn::GetAtt": [execution_role, "Arn"]}},
            }
        ],
        "Version": "2012-10-17",
    }
    assert role["MaxSessionDuration"] == 3600


def test_download_role_reads_only_objects_of_downloadable_default_providers(cognito_template: dict[str, Any]) -> None:
    role_id, role = download_role(cognito_template)
    # Not `scratch` (no allow_download), not `partner` (its downloads are signed with the partner's role).
    assert role["Policies"] == [
        {
            "PolicyDocument": {
                "Statement": [
                    {
                        "Action": "s3:GetObject",
                        "Effect": "Allow",
                        "Resource": ["arn:aws:s3:::own-archive-*/*", "arn:aws:s3:::own-data/*"],
                    }
                ],
                "Version": "2012-10-17",
            },
            "PolicyName": "DownloadableObjects",
        }
    ]
    assert "ManagedPolicyArns" not in role
    attached = [
        p
        for p in resources(cognito_template, "AWS::IAM::Policy").values()
        if {"Ref": role_id} in p["Properties"]["Roles"]
    ]
    assert attached == []


def test_raster_lambda_assumes_the_download_role_and_the_partner_role(cognito_template: dict[str, Any]) -> None:
    raster_id, _ = function(cognito_template, "raster_api.handler.handler")
    role_id, _ = download_role(cognito_template)
    statements = statements_of_role(cognito_template, raster_id)
    assert [s for s in statements if "sts:AssumeRole" in as_list(s["Action"])] == [
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Resource": PARTNER_ROLE},
        {"Action": "sts:AssumeRole", "Effect": "Allow", "Resource": {"Fn::GetAtt": [role_id, "Arn"]}},
    ]
    assert raster_env(cognito_template)["RASTER_API_DOWNLOAD_ROLE_ARN"] == {"Fn::GetAtt": [role_id, "Arn"]}
    assert cognito_template["Outputs"]["DownloadRoleArn"]["Value"] == {"Fn::GetAtt": [role_id, "Arn"]}


def test_no_download_role_without_a_downloadable_default_provider(template: dict[str, Any]) -> None:
    assert not [k for k in resources(template, "AWS::IAM::Role") if "DownloadRole" in k]
    assert "RASTER_API_DOWNLOAD_ROLE_ARN" not in raster_env(template)
    assert "DownloadRoleArn" not in template["Outputs"]


# --- dependencies -----------------------------------------------------------------------------------------------


def test_dependency_cycles_are_found() -> None:
    template = {"Resources": {"A": {"Properties": {"X": {"Fn::GetAtt": ["B", "Arn"]}}}, "B": {"DependsOn": "A"}}}
    assert dependency_cycle(template) == ["A", "B", "A"]


def test_function_depends_on_the_distribution_without_a_cycle(
    template: dict[str, Any], cognito_template: dict[str, Any]
) -> None:
    # Function -> Distribution (public URL) -> HttpApi; the integration and route depend on the function, the API
    # on neither. The download role's trust names the function's role, which depends on nothing of the function.
    assert dependency_cycle(template) == []
    assert dependency_cycle(cognito_template) == []


# --- cdk-nag ----------------------------------------------------------------------------------------------------


def test_cdk_nag_has_no_unacknowledged_finding(
    template: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    # The module fixture synthesized with AwsSolutionsChecks: reaching here means no finding failed the synth.
    assert template["Resources"]


def test_cdk_nag_fails_the_synth_on_a_new_finding(tmp_path: Path) -> None:
    def add_plain_topic(stack: Any) -> None:
        sns.Topic(stack, "UnencryptedTopic")

    with pytest.raises(Exception, match="ValidationFailed") as caught:
        synth(settings(), tmp_path, tamper=add_plain_topic)
    assert "AwsSolutions-SNS3" in str(caught.value) and "UnencryptedTopic" in str(caught.value)


# --- packaging --------------------------------------------------------------------------------------------------


def test_oversized_bundle_is_refused_with_its_largest_entries(tmp_path: Path) -> None:
    (tmp_path / "bigpkg").mkdir()
    (tmp_path / "bigpkg" / "blob.so").write_bytes(b"\0" * 3 * 2**20)
    (tmp_path / "small.py").write_text("x = 1\n")
    with pytest.raises(
        BundleError, match=r"raster-api Lambda bundle is 3 MB unzipped, over Lambda's 2 MB limit.*bigpkg 3 MB"
    ):
        check_size(tmp_path, "raster-api", limit=2 * 2**20)


@pytest.fixture(autouse=True)
def _no_aws_profile(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    yield


# --- md function (NetCDF, HDF5, Zarr) -----------------------------------------------------------------------------


def image_functions(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k: v for k, v in resources(template, "AWS::Lambda::Function").items() if v["Properties"].get("PackageType")}


def test_md_routes_are_off_by_default(template: dict[str, Any]) -> None:
    assert image_functions(template) == {}
    routes = [r["Properties"]["RouteKey"] for r in resources(template, "AWS::ApiGatewayV2::Route").values()]
    assert routes == ["$default"]


def test_md_function_serves_md_with_the_raster_functions_environment_and_grants(tmp_path: Path) -> None:
    template = synth(settings(md=True), tmp_path)
    raster_id, raster = function(template, "raster_api.handler.handler")
    ((md_id, md),) = image_functions(template).items()
    properties = md["Properties"]
    assert properties["PackageType"] == "Image" and "SnapStart" not in properties  # Lambda has none for images
    assert (properties["MemorySize"], properties["Timeout"]) == (2048, 25)
    assert properties["VpcConfig"] == raster["Properties"]["VpcConfig"]
    md_env = properties["Environment"]["Variables"]
    raster_env = raster["Properties"]["Environment"]["Variables"]
    assert md_env.pop("RASTER_API_MD_ENABLED") == "true"
    # Downloads stay with the raster function (its download role); everything else is the same configuration.
    assert md_env == {k: v for k, v in raster_env.items() if k != "RASTER_API_DOWNLOAD_ROLE_ARN"}
    assert "RASTER_API_MD_ENABLED" not in raster_env
    # The same secrets, roles and buckets, nothing more.
    raster_grants = {json.dumps(s, sort_keys=True) for s in statements_of_role(template, raster_id)}
    md_grants = {json.dumps(s, sort_keys=True) for s in statements_of_role(template, md_id)}
    assert md_grants == raster_grants
    # API Gateway sends /md/... to the md function, everything else to the raster function's alias.
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]["Target"]
        for r in resources(template, "AWS::ApiGatewayV2::Route").values()
    }
    assert set(routes) == {"$default", "ANY /md/{proxy+}"}
    integrations = resources(template, "AWS::ApiGatewayV2::Integration")
    target = integrations[routes["ANY /md/{proxy+}"]["Fn::Join"][1][1]["Ref"]]
    assert md_id in json.dumps(target["Properties"]["IntegrationUri"])
    default = integrations[routes["$default"]["Fn::Join"][1][1]["Ref"]]
    assert md_id not in json.dumps(default["Properties"]["IntegrationUri"])
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    assert "md Lambda (/md/) duration" in json.dumps(dashboard["Properties"]["DashboardBody"])
