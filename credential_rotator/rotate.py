"""One rotation run: for each `earthdata` provider, fetch, validate, then `PutSecretValue` to its `secret_id`.

Providers are independent and rotate concurrently in a bounded pool (`ROTATOR_CONCURRENCY`), each with its own
deadline: each failure is recorded with its specific fault, so an outage or a hang of one DAAC never leaves another
DAAC's secret to expire. A provider's secret is written only after its new credentials
validated, so a failure leaves the current (possibly still valid) secret untouched.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NotRequired, TypedDict

from botocore.exceptions import BotoCoreError, ClientError

from credential_rotator.deadline import Deadline, RunBudget
from credential_rotator.earthdata import EarthdataClient, safe_url
from credential_rotator.errors import (
    EarthdataTimeoutError,
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
    grant_key: NotRequired[str]  # "rotated", "kept" or "failed": the raster API's tile-grant key (scheduled runs)


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
    deadline: Deadline | None = None,
    may_write: Callable[[], bool] = lambda: True,
) -> tuple[dict[str, Any], S3Credentials]:
    """Fetch, validate and (unless `store` is None: dry run) write one provider's secret.

    `may_write` is asked just before the write: False means the run already reported this provider (it outlived its
    deadline), so nothing is written behind the report's back.
    """
    assert provider.credentials_url and provider.secret_id  # noqa: S101 - the schema requires both for earthdata
    where = f"DAAC s3credentials ({safe_url(provider.credentials_url)})"
    payload = client.fetch_credentials(provider.credentials_url, deadline)
    fetched_at = datetime.now(UTC)
    credentials = validate_credentials(payload, where, min_validity_seconds, now=fetched_at)
    secret = build_secret(provider, credentials, fetched_at)
    if store is not None:
        if not may_write():
            raise abandoned_error(provider, deadline)
        store.put(provider.secret_id, secret)
    return secret, credentials


def abandoned_error(provider: Provider, deadline: Deadline | None) -> EarthdataTimeoutError:
    assert provider.credentials_url  # noqa: S101 - the schema requires it for earthdata
    where = f"DAAC s3credentials ({safe_url(provider.credentials_url)})"
    within = deadline.describe() if deadline is not None else "the invocation's time"
    return EarthdataTimeoutError(f"{where} was still being fetched at the end of {within}; retried next run")


class _Attempt:
    """One provider's turn in the pool: the worker may write only while the run has not given up on it."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.deadline: Deadline | None = None
        self._lock = threading.Lock()
        self._state = "running"  # -> "writing" (worker) | "abandoned" (run)

    def begin_write(self) -> bool:
        with self._lock:
            if self._state == "abandoned":
                return False
            self._state = "writing"
            return True

    def abandon(self) -> bool:
        """True when the worker may no longer write; False when it is writing (wait for it)."""
        with self._lock:
            if self._state == "writing":
                return False
            self._state = "abandoned"
            return True

    @property
    def abandoned(self) -> bool:
        with self._lock:
            return self._state == "abandoned"


_Outcome = tuple[dict[str, Any], S3Credentials] | RotationError

# How long past the run's end the pool is awaited before an unfinished provider is reported `timeout`. Workers honour
# their deadlines themselves, so this only covers a request that outlives its timeout; it is taken out of the reserve.
ABANDON_GRACE_SECONDS = 2.0


def _rotate_one(
    attempt: _Attempt,
    client: EarthdataClient,
    store: SecretStore | None,
    min_validity_seconds: float,
    budget: RunBudget | None,
) -> _Outcome:
    provider = attempt.provider
    if attempt.abandoned or (budget is not None and budget.exhausted()):
        return TimeBudgetError("the invocation ran out of time before this provider's turn; retried next run")
    attempt.deadline = budget.provider_deadline() if budget is not None else None
    try:
        return rotate_provider(provider, client, store, min_validity_seconds, attempt.deadline, attempt.begin_write)
    except RotationError as exc:
        return exc


def rotate(
    providers: Sequence[Provider],
    client: EarthdataClient,
    store: SecretStore | None,
    min_validity_seconds: float,
    metrics: MetricsEmitter,
    report: RotationReport | None = None,
    budget: RunBudget | None = None,
    concurrency: int = 1,
) -> RotationReport:
    """Rotate the providers `concurrency` at a time, each on its own; `store=None` is a dry run (nothing written, no
    metrics).

    With a `budget` (see `credential_rotator.deadline`) every provider has its own deadline, so a hanging DAAC is
    reported `timeout` for that provider alone; a provider whose turn comes after the run's end is reported
    `time_budget`. Results, logs and metrics are recorded in the providers' order once the pool is done.
    """
    report = report or RotationReport()
    if not providers:
        return report
    attempts = [_Attempt(p) for p in providers]
    outcomes: dict[str, _Outcome] = {}
    pool = ThreadPoolExecutor(max_workers=min(concurrency, len(providers)), thread_name_prefix="rotate")
    try:
        futures = {
            pool.submit(_rotate_one, attempt, client, store, min_validity_seconds, budget): attempt
            for attempt in attempts
        }
        timeout = None if budget is None else max(0.0, budget.remaining()) + ABANDON_GRACE_SECONDS
        done, _ = wait(futures, timeout=timeout)
        for future, attempt in futures.items():
            if future not in done and attempt.abandon():
                outcomes[attempt.provider.name] = abandoned_error(attempt.provider, attempt.deadline)
            else:
                outcomes[attempt.provider.name] = future.result()  # done, or writing: then wait for the write
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    for provider in providers:
        outcome = outcomes[provider.name]
        if isinstance(outcome, RotationError):
            _record_failure(report, provider, outcome, store, metrics)
        else:
            _record_success(report, provider, *outcome, store, metrics)
    return report


def _record_success(
    report: RotationReport,
    provider: Provider,
    secret: dict[str, Any],
    credentials: S3Credentials,
    store: SecretStore | None,
    metrics: MetricsEmitter,
) -> None:
    assert provider.secret_id  # noqa: S101 - the schema requires it for earthdata
    left = credentials.seconds_left()
    report.rotated.append(provider.name)
    report.written[provider.name] = {
        "secret_id": provider.secret_id,
        "value": redact(secret),
        "seconds_until_expiry": int(left),
        "expiration": secret["expiration"],
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
    time_budget: float | None = None,
    reserve_seconds: float = 0.0,
) -> RotationReport:
    """A whole run configured from the environment (settings are read now, not at import).

    `time_budget`: seconds the run may take (the Lambda's remaining time less `reserve_seconds`); None = unbounded.
    """
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
        budget = None
        if time_budget is not None:
            budget = RunBudget.plan(time_budget, len(selected), settings.concurrency, reserve_seconds)
        rotate(
            selected,
            client,
            None if dry_run else store,
            settings.min_validity_seconds,
            metrics,
            report,
            budget,
            settings.concurrency,
        )
        logger.info(
            "rotation finished",
            extra={
                "rotated": report.rotated,
                "failed": sorted(report.failed),
                "token_calls": client.token_calls,
                "concurrency": settings.concurrency,
            },
        )
    return report
