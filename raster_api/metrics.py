"""CloudWatch metrics per provider, as Embedded Metric Format lines on stdout (Lambda ships them to CloudWatch Logs,
which turns them into metrics: no PutMetricData call on the request path).

Namespace `RasterTiler/RasterApi`, dimension `Provider` (what `infrastructure/dashboard.py` plots): for each provider
a request read through, `Requests`, `ClientErrors` (4xx), `ServerErrors` (5xx), `S3Refusals` (S3 refused the
provider's keys), `LatencyMs` and `CredentialSecondsLeft` (of its cached credentials, when they expire). A request that
read nothing counts under `Provider=none`; `/healthz` is not counted. Written with Powertools' `EphemeralMetrics`, which keeps no state between
requests (its `Metrics` shares one buffer across instances and threads).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from providers import metrics as names
from raster_api.reading import ReadLog
from raster_api.routing import ProviderRouter

NAMESPACE = names.API_NAMESPACE
NO_PROVIDER = "none"


@dataclass(frozen=True)
class RequestMetrics:
    router: ProviderRouter
    namespace: str = NAMESPACE

    def __call__(self, record: dict[str, Any], log: ReadLog) -> None:
        from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

        if record.get("path") == "/healthz":
            return  # liveness probes (and SnapStart's priming request) are not traffic
        status = int(record["status"])
        providers = list(dict.fromkeys(read.provider.name for read in log.snapshot())) or [NO_PROVIDER]
        for provider in providers:
            metrics = EphemeralMetrics(namespace=self.namespace)
            metrics.add_dimension(name=names.PROVIDER_DIMENSION, value=provider)
            metrics.add_metric(name=names.REQUESTS, unit=MetricUnit.Count, value=1)
            metrics.add_metric(name=names.CLIENT_ERRORS, unit=MetricUnit.Count, value=int(400 <= status < 500))
            metrics.add_metric(name=names.SERVER_ERRORS, unit=MetricUnit.Count, value=int(status >= 500))
            metrics.add_metric(name=names.S3_REFUSALS, unit=MetricUnit.Count, value=int(provider in log.refused))
            metrics.add_metric(name=names.LATENCY_MS, unit=MetricUnit.Milliseconds, value=float(record["duration_ms"]))
            if provider != NO_PROVIDER:
                seconds_left = self.router.provider_health(provider).seconds_left
                if seconds_left is not None:
                    metrics.add_metric(
                        name=names.CREDENTIAL_SECONDS_LEFT, unit=MetricUnit.Seconds, value=round(seconds_left)
                    )
            metrics.flush_metrics()
