"""JSON logs and CloudWatch Embedded Metric Format (EMF) lines, one JSON object per line, written by Powertools.

Lambda ships stdout to CloudWatch Logs, which turns EMF lines into metrics without an API call (no PutMetricData
permission, no latency). Alarms are defined on exactly these names: namespace `RasterTiler/CredentialRotator`,
dimension `Provider`, metrics `RotationSuccess`, `RotationFailure`, `SecondsUntilExpiry`.

The modules log through plain `logging.getLogger(__name__)`; `configure_logging` puts Powertools' JSON formatter on
their parent logger rather than using Powertools' `Logger`, whose first configuration per process wins: the CLI logs
to stderr (its summary is stdout) and the Lambda to stdout.
"""

from __future__ import annotations

import logging
import sys

from aws_lambda_powertools.logging.formatter import LambdaPowertoolsFormatter
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from providers import metrics as names

METRICS_NAMESPACE = names.ROTATOR_NAMESPACE

LOGGER_NAME = "credential_rotator"
_HANDLER_NAME = "credential_rotator.json"


class _ExceptionTypeOnlyFormatter(LambdaPowertoolsFormatter):
    """Powertools' JSON object with the record's `extra` fields, but an exception is written as its type's name alone
    (`exception_name`): its message, notes and traceback can quote values such as a URL with a token."""

    def format(self, record: logging.LogRecord) -> str:
        exc_type = record.exc_info[0] if record.exc_info else None
        if exc_type is not None:
            fields = {**record.__dict__, "exc_info": None, "exc_text": None, "exception_name": exc_type.__name__}
            record = logging.makeLogRecord(fields)
        return super().format(record)


def configure_logging(stream_name: str = "stdout", level: int = logging.INFO) -> logging.Logger:
    """Give the `credential_rotator` loggers one JSON handler on `sys.<stream_name>` as it is now (idempotent: each
    Lambda invocation and CLI run calls this first); they do not propagate to root."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if handler.get_name() == _HANDLER_NAME:
            logger.removeHandler(handler)
    handler = logging.StreamHandler(getattr(sys, stream_name))
    handler.set_name(_HANDLER_NAME)
    handler.setFormatter(
        _ExceptionTypeOnlyFormatter(
            service=LOGGER_NAME,
            location="%(name)s.%(funcName)s:%(lineno)d",
            use_rfc3339=True,
            utc=True,
            serialize_stacktrace=False,
        )
    )
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


class MetricsEmitter:
    """One EMF line on stdout per provider outcome, written by Powertools' `EphemeralMetrics` (nothing kept between
    lines); `enabled=False` (the CLI) writes nothing."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled

    def provider_outcome(self, provider: str, success: bool, seconds_until_expiry: float | None) -> None:
        if not self.enabled:
            return
        metrics = EphemeralMetrics(namespace=METRICS_NAMESPACE)
        metrics.add_dimension(name=names.PROVIDER_DIMENSION, value=provider)
        metrics.add_metric(name=names.ROTATION_SUCCESS, unit=MetricUnit.Count, value=int(success))
        metrics.add_metric(name=names.ROTATION_FAILURE, unit=MetricUnit.Count, value=int(not success))
        if seconds_until_expiry is not None:
            metrics.add_metric(
                name=names.SECONDS_UNTIL_EXPIRY, unit=MetricUnit.Seconds, value=round(seconds_until_expiry)
            )
        metrics.flush_metrics()
