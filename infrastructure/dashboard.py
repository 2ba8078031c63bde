"""One CloudWatch dashboard for the deployment: a row per provider, then the CDN, the API and the Lambda.

The alarms say that something is wrong; this says where. Per-provider rows matter because one DAAC's expired keys or
refused buckets hide inside the totals: its `S3Refusals` and `CredentialSecondsLeft` (emitted by the API in EMF) and,
for earthdata providers, the rotator's `SecondsUntilExpiry` and rotation outcomes sit side by side.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_apigatewayv2 as apigw
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

from providers import metrics as names

# CloudFront publishes its metrics in us-east-1 only, with the dimension Region=Global.
CLOUDFRONT_REGION = "us-east-1"
PERIOD = Duration.minutes(5)
WIDTH = 24


@dataclass(frozen=True)
class DashboardProps:
    """`providers` in the providers file's order; the earthdata ones also get the rotator's metrics."""

    dashboard_name: str
    providers: tuple[str, ...]
    earthdata_providers: tuple[str, ...]
    function: lambda_.IFunction
    api: apigw.HttpApi
    distribution: cloudfront.IDistribution | None = None
    md_function: lambda_.IFunction | None = None


def _provider_metric(namespace: str, name: str, provider: str, statistic: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace=namespace,
        metric_name=name,
        dimensions_map={names.PROVIDER_DIMENSION: provider},
        statistic=statistic,
        period=PERIOD,
        label=f"{name} ({statistic})",
    )


def _cdn_metric(distribution: cloudfront.IDistribution, name: str, statistic: str) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        namespace="AWS/CloudFront",
        metric_name=name,
        dimensions_map={"DistributionId": distribution.distribution_id, "Region": "Global"},
        statistic=statistic,
        period=PERIOD,
        region=CLOUDFRONT_REGION,
        label=name,
    )


class Dashboard(Construct):
    """Public member: `dashboard`."""

    def __init__(self, scope: Construct, construct_id: str, props: DashboardProps) -> None:
        super().__init__(scope, construct_id)
        self.dashboard = cloudwatch.Dashboard(
            self, "Dashboard", dashboard_name=props.dashboard_name, default_interval=Duration.hours(6)
        )
        for provider in props.providers:
            self.dashboard.add_widgets(*self._provider_row(provider, provider in props.earthdata_providers))
        if props.distribution:
            self.dashboard.add_widgets(*self._cdn_row(props.distribution))
        self.dashboard.add_widgets(*self._api_row(props.api), *self._lambda_row(props.function, "Raster Lambda"))
        if props.md_function:
            self.dashboard.add_widgets(*self._lambda_row(props.md_function, "md Lambda (/md/)"))

    @staticmethod
    def _provider_row(provider: str, earthdata: bool) -> list[cloudwatch.IWidget]:
        width = WIDTH // (4 if earthdata else 2)
        row: list[cloudwatch.IWidget] = [
            cloudwatch.GraphWidget(
                title=f"{provider}: requests and errors",
                width=width,
                left=[
                    _provider_metric(names.API_NAMESPACE, name, provider, "Sum")
                    for name in (names.REQUESTS, names.CLIENT_ERRORS, names.SERVER_ERRORS, names.S3_REFUSALS)
                ],
            ),
            cloudwatch.GraphWidget(
                title=f"{provider}: latency (ms)",
                width=width,
                left=[_provider_metric(names.API_NAMESPACE, names.LATENCY_MS, provider, s) for s in ("p50", "p99")],
            ),
        ]
        if earthdata:
            row += [
                cloudwatch.GraphWidget(
                    title=f"{provider}: credential seconds left",
                    width=width,
                    left=[
                        _provider_metric(names.ROTATOR_NAMESPACE, names.SECONDS_UNTIL_EXPIRY, provider, "Minimum"),
                        _provider_metric(names.API_NAMESPACE, names.CREDENTIAL_SECONDS_LEFT, provider, "Minimum"),
                    ],
                ),
                cloudwatch.GraphWidget(
                    title=f"{provider}: rotations",
                    width=width,
                    left=[
                        _provider_metric(names.ROTATOR_NAMESPACE, name, provider, "Sum")
                        for name in (names.ROTATION_SUCCESS, names.ROTATION_FAILURE)
                    ],
                ),
            ]
        return row

    @staticmethod
    def _cdn_row(distribution: cloudfront.IDistribution) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="CDN cache hit rate (%)",
                width=WIDTH // 3,
                left=[_cdn_metric(distribution, "CacheHitRate", "Average")],
                left_y_axis=cloudwatch.YAxisProps(min=0, max=100),
            ),
            cloudwatch.GraphWidget(
                title="CDN error rates (%)",
                width=WIDTH // 3,
                left=[_cdn_metric(distribution, n, "Average") for n in ("4xxErrorRate", "5xxErrorRate")],
            ),
            cloudwatch.GraphWidget(
                title="CDN requests",
                width=WIDTH // 3,
                left=[_cdn_metric(distribution, "Requests", "Sum")],
            ),
        ]

    @staticmethod
    def _api_row(api: apigw.HttpApi) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title="API Gateway requests, 4xx, 5xx",
                width=WIDTH // 2,
                left=[
                    api.metric_count(period=PERIOD, statistic="Sum"),
                    api.metric_client_error(period=PERIOD, statistic="Sum"),
                    api.metric_server_error(period=PERIOD, statistic="Sum"),
                ],
            ),
            cloudwatch.GraphWidget(
                title="API Gateway latency (ms)",
                width=WIDTH // 2,
                left=[api.metric_latency(period=PERIOD, statistic=s) for s in ("p50", "p99")],
            ),
        ]

    @staticmethod
    def _lambda_row(function: lambda_.IFunction, name: str) -> list[cloudwatch.IWidget]:
        return [
            cloudwatch.GraphWidget(
                title=f"{name} duration (ms)",
                width=WIDTH // 3,
                left=[function.metric_duration(period=PERIOD, statistic=s) for s in ("p50", "p99", "Maximum")],
            ),
            cloudwatch.GraphWidget(
                title=f"{name} concurrent executions",
                width=WIDTH // 3,
                left=[
                    cloudwatch.Metric(
                        namespace="AWS/Lambda",
                        metric_name="ConcurrentExecutions",
                        dimensions_map={"FunctionName": function.function_name},
                        statistic="Maximum",
                        period=PERIOD,
                    )
                ],
            ),
            cloudwatch.GraphWidget(
                title=f"{name} throttles and errors",
                width=WIDTH // 3,
                left=[
                    function.metric_throttles(period=PERIOD, statistic="Sum"),
                    function.metric_errors(period=PERIOD, statistic="Sum"),
                ],
            ),
        ]
