"""Structured JSON logs and CloudWatch Embedded Metric Format (EMF) lines, on stdout, one JSON object per line.

Lambda ships stdout to CloudWatch Logs, which turns EMF lines into metrics without an API call (no PutMetricData
permission, no latency). Alarms are defined on exactly these names: namespace `RasterTiler/CredentialRotator`,
dimension `Provider`, metrics `RotationSuccess`, `RotationFailure`, `SecondsUntilExpiry`.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any, TextIO

from providers import metrics as names

METRICS_NAMESPACE = names.ROTATOR_NAMESPACE

LOGGER_NAME = "credential_rotator"

# Attributes every LogRecord has: anything else on a record came from `extra=` and goes into the JSON object.
_STANDARD_ATTRS = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: timestamp, level, logger, message and the record's `extra` fields."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in record.__dict__.items() if k not in _STANDARD_ATTRS and not k.startswith("_")})
        if record.exc_info and record.exc_info[0] is not None:
            entry["exception"] = record.exc_info[0].__name__  # the type only: tracebacks can quote values
        return json.dumps(entry, default=str)


class _CurrentStreamHandler(logging.Handler):
    """Writes to whatever `sys.stdout`/`sys.stderr` is at emit time (pytest and the CLI swap them)."""

    def __init__(self, stream_name: str) -> None:
        super().__init__()
        self.stream_name = stream_name

    def emit(self, record: logging.LogRecord) -> None:
        try:
            stream: TextIO = getattr(sys, self.stream_name)
            stream.write(self.format(record) + "\n")
            stream.flush()
        except Exception:
            self.handleError(record)


def configure_logging(stream_name: str = "stdout", level: int = logging.INFO) -> logging.Logger:
    """Give the `credential_rotator` loggers one JSON handler (idempotent); they do not propagate to root."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        if isinstance(handler, _CurrentStreamHandler):
            logger.removeHandler(handler)
    handler = _CurrentStreamHandler(stream_name)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


class MetricsEmitter:
    """Prints one EMF line per provider outcome; `enabled=False` (the CLI) prints nothing."""

    def __init__(self, enabled: bool = True, stream_name: str = "stdout") -> None:
        self.enabled = enabled
        self.stream_name = stream_name

    def provider_outcome(self, provider: str, success: bool, seconds_until_expiry: float | None) -> None:
        if not self.enabled:
            return
        metrics: list[dict[str, str]] = [
            {"Name": names.ROTATION_SUCCESS, "Unit": "Count"},
            {"Name": names.ROTATION_FAILURE, "Unit": "Count"},
        ]
        values: dict[str, float] = {names.ROTATION_SUCCESS: int(success), names.ROTATION_FAILURE: int(not success)}
        if seconds_until_expiry is not None:
            metrics.append({"Name": names.SECONDS_UNTIL_EXPIRY, "Unit": "Seconds"})
            values[names.SECONDS_UNTIL_EXPIRY] = round(seconds_until_expiry)
        line = {
            "_aws": {
                "Timestamp": int(time.time() * 1000),
                "CloudWatchMetrics": [
                    {"Namespace": METRICS_NAMESPACE, "Dimensions": [[names.PROVIDER_DIMENSION]], "Metrics": metrics}
                ],
            },
            names.PROVIDER_DIMENSION: provider,
            **values,
        }
        stream: TextIO = getattr(sys, self.stream_name)
        stream.write(json.dumps(line) + "\n")
        stream.flush()
