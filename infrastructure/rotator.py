"""The credential rotator: a Lambda run every 30 minutes and once right after each deploy.

Earthdata S3 credentials live one hour, so a 30-minute schedule always leaves a valid set in the secret even when
one run fails. The post-deploy run (a CDK Trigger, invoked asynchronously) makes credentials exist before the first
tile request without letting an Earthdata Login outage fail the deployment; failures surface in the alarms instead.
Each deploy that changes the function also sends it `{"check": true}` (asynchronously, through a Lambda `Invoke` custom
resource: a Trigger cannot carry a payload): the per-provider report (login OK / EULA not accepted / unreachable /
valid until) lands in the rotator's log group as `provider check` lines, ERROR for a provider that is not OK.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from aws_cdk import Annotations, Duration, Stack, triggers
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import custom_resources as cr
from constructs import Construct, IConstruct

from providers import Provider

HANDLER = "credential_rotator.handler.handler"
CHECK_EVENT = {"check": True}
SCHEDULE = events.Schedule.rate(Duration.minutes(30))


@dataclass(frozen=True)
class CredentialRotatorProps:
    """`providers` go to the Lambda as PROVIDERS_CONFIG (earthdata `secret_id`s already set to the stack's secrets)."""

    code: lambda_.Code
    providers: tuple[Provider, ...]
    provider_secrets: dict[str, secretsmanager.Secret]
    login_secret: secretsmanager.ISecret
    login_secret_id: str
    earthdata_url: str
    architecture: lambda_.Architecture
    vpc: ec2.IVpc | None = None
    subnets: ec2.SubnetSelection | None = None
    memory_mb: int = 256
    timeout: Duration = field(default_factory=lambda: Duration.minutes(2))
    # Escape hatch: extra environment (user values never override the contract variables).
    environment: dict[str, str] = field(default_factory=dict)
    run_after_deploy: bool = True
    # The raster API's tile-grant key, replaced by scheduled runs once a week (None: no signed-in callers).
    grant_key_secret: secretsmanager.ISecret | None = None


class CredentialRotator(Construct):
    """Public members: `function`, `rule` (the 30-minute schedule), `trigger` (post-deploy run, or None), `check`
    (post-deploy `{"check": true}` invocation, or None)."""

    def __init__(self, scope: Construct, construct_id: str, props: CredentialRotatorProps) -> None:
        super().__init__(scope, construct_id)
        environment = {
            **props.environment,
            "PROVIDERS_CONFIG": json.dumps([p.model_dump(mode="json", exclude_none=True) for p in props.providers]),
            "EARTHDATA_LOGIN_SECRET_ID": props.login_secret_id,
            "EARTHDATA_URL": props.earthdata_url,
        }
        if props.grant_key_secret is not None:
            environment["ROTATOR_GRANT_KEY_SECRET_ID"] = props.grant_key_secret.secret_arn
        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH)
        self.function = lambda_.Function(
            self,
            "Function",
            description="Fetches Earthdata temporary S3 credentials into each provider's secret",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=props.architecture,
            handler=HANDLER,
            code=props.code,
            memory_size=props.memory_mb,
            timeout=props.timeout,
            environment=environment,
            vpc=props.vpc,
            vpc_subnets=props.subnets,
            log_group=self.log_group,
            # Two overlapping runs would race on the same secrets.
            reserved_concurrent_executions=1,
        )
        self._grant(props)
        self.rule = events.Rule(
            self,
            "Schedule",
            description="Rotate Earthdata S3 credentials (they live one hour)",
            schedule=SCHEDULE,
            targets=[targets.LambdaFunction(self.function, retry_attempts=2)],
        )
        self.trigger: triggers.Trigger | None = None
        self.check: cr.AwsCustomResource | None = None
        self.check_provider: IConstruct | None = None
        if props.run_after_deploy:
            self.trigger = triggers.Trigger(
                self,
                "RunAfterDeploy",
                handler=self.function,
                invocation_type=triggers.InvocationType.EVENT,
                execute_after=list(props.provider_secrets.values()),
                execute_on_handler_change=True,
            )
            self.check = self._check_after_deploy(list(props.provider_secrets.values()))
            # The Trigger's version exists only for that run (identity-based invoke permission); EventBridge, the
            # only resource-policy caller, invokes the unqualified function, so the qualifier caveat does not apply.
            Annotations.of(self.function).acknowledge_warning(
                "@aws-cdk/aws-lambda:addPermissionsToVersionOrAlias",
                "EventBridge invokes the unqualified function; the Trigger invokes its version with its own role",
            )

    def _check_after_deploy(self, after: list[secretsmanager.Secret]) -> cr.AwsCustomResource:
        """Invoke the function's current version with `{"check": true}` on create and whenever the version changes
        (its ARN is a parameter); asynchronously, so a DAAC or EDL outage never fails the deployment."""
        version_arn = self.function.current_version.function_arn
        invoke = cr.AwsSdkCall(
            service="Lambda",
            action="invoke",
            parameters={"FunctionName": version_arn, "InvocationType": "Event", "Payload": json.dumps(CHECK_EVENT)},
            physical_resource_id=cr.PhysicalResourceId.of("credential-rotator-post-deploy-check"),
            output_paths=["StatusCode"],
        )
        check = cr.AwsCustomResource(
            self,
            "CheckAfterDeploy",
            on_create=invoke,
            on_update=invoke,
            policy=cr.AwsCustomResourcePolicy.from_statements(
                [iam.PolicyStatement(actions=["lambda:InvokeFunction"], resources=[version_arn])]
            ),
            install_latest_aws_sdk=False,
        )
        for secret in after:
            check.node.add_dependency(secret)
        # The stack-wide singleton Lambda that makes the SDK call (public for cdk-nag acknowledgements).
        provider_id = "AWS" + cr.AwsCustomResource.PROVIDER_FUNCTION_UUID.replace("-", "")
        self.check_provider = Stack.of(self).node.find_child(provider_id)
        return check

    def _grant(self, props: CredentialRotatorProps) -> None:
        """Read the login secret; read and put only the provider secrets (never create, delete or re-describe)."""
        props.login_secret.grant_read(self.function)
        for secret in props.provider_secrets.values():
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue", "secretsmanager:PutSecretValue"],
                    resources=[secret.secret_arn],
                )
            )
        if props.grant_key_secret is not None:
            self.function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:ListSecretVersionIds", "secretsmanager:PutSecretValue"],
                    resources=[props.grant_key_secret.secret_arn],
                )
            )
