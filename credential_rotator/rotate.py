"""One rotation run: for each `earthdata` provider, fetch, validate, then `PutSecretValue` to its `secret_id`.

Providers are independent: each failure is recorded with its specific fault and the loop goes on, so an outage of one
DAAC never leaves another DAAC's secret to expire. A provider's secret is written only after its new credentials
validated, so a failure leaves the current (possibly still valid) secret untouched.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict

from botocore.exceptions import BotoCoreError, ClientError

from credential_rotator.earthdata import EarthdataClient, safe_url
from credential_rotator.errors import (
    LoginConfigError,
    RotationError,
    SecretWriteError,
    TimeBudgetError,
    UnknownProviderError,
)
from credential_rotator.login import load_login
from credential_rotator.observability import MetricsEmitter
from credential_rotator.settings import EarthdataSettings, RotatorSettings
from credential_rotator.validate import validate_credentials
from providers import Provider, ProviderKind, S3Credentials, load_providers

logger = logging.getLogger(__name__)

REDACTED = "***redacted***"
SECRET_KEYS = ("accessKeyId", "secretAccessKey", "sessionToken")


class RotationResult(TypedDict):
    """What the handler returns (and the CLI prints): provider names, and `name -> "fault: reason"`."""

    rotated: list[str]
    failed: dict[str, str]


@dataclass
class RotationReport:
    rotated: list[str] = field(default_factory=list)
    failed: dict[str, RotationError] = field(default_factory=dict)
    # provider -> {"secret_id", "value" (redacted), "seconds_until_expiry"}: what was (or, dry run, would be) written
    written: dict[str, dict[str, Any]] = field(default_factory=dict)

    def result(self) -> RotationResult:
        return {"rotated": list(self.rotated), "failed": {name: str(exc) for name, exc in self.failed.items()}}

    def failure_message(self) -> str:
        details = "; ".join(f"{name} ({exc})" for name, exc in self.failed.items())
        return f"credential rotation failed for {len(self.failed)} provider(s): {details}"


def redact(secret: dict[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if k in SECRET_KEYS else v) for k, v in secret.items()}


class SecretStore:
    """The provider secrets in Secrets Manager (boto3 through `providers.aws.client`, honouring AWS_ENDPOINT_URL)."""

    def __init__(self, client: Any | None = None) -> None:
        if client is None:
            from providers.aws import client as aws_client

            client = aws_client("secretsmanager")
        self.client = client

    def put(self, secret_id: str, value: dict[str, Any]) -> None:
        try:
            self.client.put_secret_value(SecretId=secret_id, SecretString=json.dumps(value))
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "error")
            raise SecretWriteError(f"Secrets Manager refused PutSecretValue on {secret_id!r}: {code}") from None
        except BotoCoreError as exc:
            raise SecretWriteError(f"Secrets Manager write to {secret_id!r} failed: {type(exc).__name__}") from None

    def seconds_until_expiry(self, secret_id: str) -> float | None:
        """How long the secret currently stored stays valid (best effort; None when unknown)."""
        try:
            text = self.client.get_secret_value(SecretId=secret_id)["SecretString"]
            return S3Credentials.model_validate(json.loads(text)).seconds_left()
        except Exception:  # noqa: BLE001 - a metric, never a reason to fail
            return None


def select_providers(
    providers: Iterable[Provider], names: Sequence[str] | None
) -> tuple[list[Provider], dict[str, RotationError]]:
    """The earthdata providers to rotate: all of them, or those named (unknown names become failures)."""
    known = {p.name: p for p in providers}
    earthdata = [p for p in known.values() if p.kind is ProviderKind.EARTHDATA]
    if names is None:
        return earthdata, {}
    selected: list[Provider] = []
    failed: dict[str, RotationError] = {}
    for name in dict.fromkeys(names):
        provider = known.get(name)
        if provider is None:
            failed[name] = UnknownProviderError(f"no provider named {name!r} in PROVIDERS_CONFIG")
        elif provider.kind is not ProviderKind.EARTHDATA:
            failed[name] = UnknownProviderError(f"provider {name!r} is of kind {provider.kind}, not earthdata")
        else:
            selected.append(provider)
    return selected, failed


def build_secret(provider: Provider, credentials: S3Credentials, fetched_at: datetime) -> dict[str, Any]:
    """The Earthdata JSON shape plus metadata (the raster API ignores extra keys)."""
    return {
        **credentials.to_secret_dict(),
        "provider": provider.name,
        "fetched_at": fetched_at.isoformat(timespec="seconds"),
    }


def rotate_provider(
    provider: Provider,
    client: EarthdataClient,
    store: SecretStore | None,
    min_validity_seconds: float,
) -> tuple[dict[str, Any], S3Credentials]:
    """Fetch, validate and (unless `store` is None: dry run) write one provider's secret."""
    assert provider.credentials_url and provider.secret_id  # noqa: S101 - the schema requires both for earthdata
    where = f"DAAC s3credentials ({safe_url(provider.credentials_url)})"
    payload = client.fetch_credentials(provider.credentials_url)
    fetched_at = datetime.now(UTC)
    credentials = validate_credentials(payload, where, min_validity_seconds, now=fetched_at)
    secret = build_secret(provider, credentials, fetched_at)
    if store is not None:
        store.put(provider.secret_id, secret)
    return secret, credentials


def rotate(
    providers: Sequence[Provider],
    client: EarthdataClient,
    store: SecretStore | None,
    min_validity_seconds: float,
    metrics: MetricsEmitter,
    report: RotationReport | None = None,
    deadline: float | None = None,
) -> RotationReport:
    """Rotate each provider independently; `store=None` is a dry run (nothing written, no metrics).

    `deadline` (a `time.monotonic()` value) stops starting new providers when the invocation is about to time out,
    so the remaining ones are reported (and counted in metrics) instead of silently cut off.
    """
    report = report or RotationReport()
    for provider in providers:
        assert provider.secret_id  # noqa: S101 - the schema requires it for earthdata
        if deadline is not None and time.monotonic() >= deadline:
            budget = TimeBudgetError("the invocation ran out of time before this provider's turn; retried next run")
            _record_failure(report, provider, budget, store, metrics)
            continue
        try:
            secret, credentials = rotate_provider(provider, client, store, min_validity_seconds)
        except RotationError as exc:
            _record_failure(report, provider, exc, store, metrics)
            continue
        left = credentials.seconds_left()
        report.rotated.append(provider.name)
        report.written[provider.name] = {
            "secret_id": provider.secret_id,
            "value": redact(secret),
            "seconds_until_expiry": int(left),
        }
        logger.info(
            "would rotate provider (dry run)" if store is None else "rotated provider",
            extra={
                "provider": provider.name,
                "secret_id": provider.secret_id,
                "expiration": secret["expiration"],
                "seconds_until_expiry": int(left),
            },
        )
        if store is not None:
            metrics.provider_outcome(provider.name, True, left)
    return report


def _record_failure(
    report: RotationReport,
    provider: Provider,
    exc: RotationError,
    store: SecretStore | None,
    metrics: MetricsEmitter,
) -> None:
    report.failed[provider.name] = exc
    logger.error(
        "rotation failed; secret left unchanged",
        extra={"provider": provider.name, "secret_id": provider.secret_id, "fault": exc.fault, "reason": exc.message},
    )
    if store is not None and provider.secret_id:
        metrics.provider_outcome(provider.name, False, store.seconds_until_expiry(provider.secret_id))


def run(
    names: Sequence[str] | None = None,
    dry_run: bool = False,
    metrics: MetricsEmitter | None = None,
    deadline: float | None = None,
) -> RotationReport:
    """A whole run configured from the environment (settings are read now, not at import)."""
    settings = RotatorSettings()
    edl = EarthdataSettings()
    metrics = metrics or MetricsEmitter()
    selected, unknown = select_providers(load_providers(settings.providers_config), names)
    report = RotationReport(failed=dict(unknown))
    for name, exc in unknown.items():
        logger.error("rotation failed", extra={"provider": name, "fault": exc.fault, "reason": exc.message})
    store = SecretStore()
    try:
        login = load_login(edl, store.client)
    except LoginConfigError as exc:
        for provider in selected:
            _record_failure(report, provider, exc, None if dry_run else store, metrics)
        return report
    logger.info(
        "rotation started",
        extra={
            "providers": [p.name for p in selected],
            "earthdata_url": safe_url(edl.url),
            "login_source": login.source,
            "login": "token" if login.has_token else "username/password",
            "dry_run": dry_run,
        },
    )
    with EarthdataClient(
        login,
        edl.url,
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        retries=settings.retries,
        backoff_seconds=settings.backoff_seconds,
    ) as client:
        rotate(selected, client, None if dry_run else store, settings.min_validity_seconds, metrics, report, deadline)
        logger.info(
            "rotation finished",
            extra={"rotated": report.rotated, "failed": sorted(report.failed), "token_calls": client.token_calls},
        )
    return report
