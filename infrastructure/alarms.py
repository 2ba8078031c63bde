"""Alarms that tell ops, through one SNS topic, that tiles are failing or DAAC credentials are about to lapse.

A rotation that keeps failing would otherwise be noticed only when every DAAC tile returns 403, an hour later: the
rotator's own metric (`SecondsUntilExpiry`, per provider) raises an alarm while the current keys still work.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from constructs import Construct

from providers import metrics as names


@dataclass(frozen=True)
class AlarmsProps:
    """Give `topic_arn` to reuse a topic, or `email` to subscribe someone to a new encrypted one."""

    rotator: lambda_.IFunction | None
    api: apigw.HttpApi
    earthdata_providers: tuple[str, ...]
    email: str | None = None
    topic_arn: str | None = None
    expiry_threshold_seconds: int = 1200
    error_rate_percent: float = 5.0
    # Escape hatch: more alarms to route to the same topic.
    extra_alarms: tuple[cloudwatch.Alarm, ...] = field(default_factory=tuple)


class Alarms(Construct):
    """Public members: `topic`, `rotator_errors`, `server_error_rate`, `credentials_expiry` (provider -> alarm)."""

    def __init__(self, scope: Construct, construct_id: str, props: AlarmsProps) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._topic(props)
        action = actions.SnsAction(self.topic)
        self.rotator_errors = (
            cloudwatch.Alarm(
                self,
                "RotatorErrors",
                alarm_description="The credential rotator Lambda failed (see its log group)",
                metric=props.rotator.metric_errors(period=Duration.hours(1), statistic="Sum"),
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
            if props.rotator
            else None
        )
        period = Duration.minutes(5)
        rate = cloudwatch.MathExpression(
            expression="IF(requests > 0, 100 * errors / requests, 0)",
            using_metrics={
                "errors": props.api.metric_server_error(period=period, statistic="Sum"),
                "requests": props.api.metric_count(period=period, statistic="Sum"),
            },
            label="5xx responses (%)",
            period=period,
        )
        self.server_error_rate = cloudwatch.Alarm(
            self,
            "ServerErrorRate",
            alarm_description=f"More than {props.error_rate_percent}% of raster API responses are 5xx",
            metric=rate,
            threshold=props.error_rate_percent,
            evaluation_periods=3,
            datapoints_to_alarm=2,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.credentials_expiry = {name: self._expiry(name, props) for name in props.earthdata_providers}
        alarms = [self.rotator_errors, self.server_error_rate, *self.credentials_expiry.values()]
        for alarm in filter(None, alarms):
            alarm.add_alarm_action(action)
            alarm.add_ok_action(action)
        for alarm in props.extra_alarms:
            alarm.add_alarm_action(action)

    def _expiry(self, provider: str, props: AlarmsProps) -> cloudwatch.Alarm:
        # Missing data breaches: no datapoint for an hour means the rotator has not reported on this provider.
        return cloudwatch.Alarm(
            self,
            f"CredentialsExpiry-{provider}",
            alarm_description=(
                f"Earthdata credentials of provider {provider} expire in less than "
                f"{props.expiry_threshold_seconds} s (rotation is failing)"
            ),
            metric=cloudwatch.Metric(
                namespace=names.ROTATOR_NAMESPACE,
                metric_name=names.SECONDS_UNTIL_EXPIRY,
                dimensions_map={names.PROVIDER_DIMENSION: provider},
                statistic="Minimum",
                period=Duration.hours(1),
            ),
            threshold=props.expiry_threshold_seconds,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.BREACHING,
        )

    def _topic(self, props: AlarmsProps) -> sns.ITopic:
        if props.topic_arn:
            return sns.Topic.from_topic_arn(self, "Topic", props.topic_arn)
        # CloudWatch cannot publish to a topic under the AWS-managed SNS key, hence a customer key it may use.
        key = kms.Key(self, "TopicKey", description="Raster tiler alarm topic", enable_key_rotation=True)
        key.grant(iam.ServicePrincipal("cloudwatch.amazonaws.com"), "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(self, "Topic", display_name="Raster tiler alarms", master_key=key, enforce_ssl=True)
        if props.email:
            topic.add_subscription(subscriptions.EmailSubscription(props.email))
        return topic
