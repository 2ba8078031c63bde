"""`--check` (CLI) and `{"check": true}` (Lambda event): verify each provider's login and DAAC without writing.

Ops add a DAAC and want to know before the schedule does whether the login works, whether the user accepted the
DAAC's EULA (a 403 from its `s3credentials`), whether the endpoint answers at all, and how long the credentials it
hands out live. A check is a dry run (fetch + validate, the same concurrency and deadlines) read as one status per
provider; nothing is written and no metric is emitted.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TypedDict

from credential_rotator.errors import (
    EarthdataTimeoutError,
    ForbiddenError,
    LoginConfigError,
    LoginPageError,
    RotationError,
    ServerError,
    UnauthorizedError,
    UnreachableError,
)
from credential_rotator.observability import MetricsEmitter
from credential_rotator.rotate import RotationReport, run


class CheckStatus(StrEnum):
    OK = "ok"  # login OK, credentials valid until ...
    EULA_NOT_ACCEPTED = "eula_not_accepted"  # the DAAC answered 403
    UNREACHABLE = "unreachable"  # connection error, timeout or 5xx (after retries)
    LOGIN_FAILED = "login_failed"  # EDL refused the login, or no login is configured
    ERROR = "error"  # any other fault (HTML, malformed JSON, expiring credentials, unknown provider, ...)


class ProviderCheck(TypedDict):
    status: str
    message: str
    valid_until: str | None  # the fetched credentials' expiration (Earthdata's format), when OK


class CheckResult(TypedDict):
    """What the handler returns for `{"check": true}`."""

    ok: bool
    check: dict[str, ProviderCheck]


_STATUS_OF: tuple[tuple[tuple[type[RotationError], ...], CheckStatus, str], ...] = (
    ((ForbiddenError,), CheckStatus.EULA_NOT_ACCEPTED, "EULA not accepted"),
    ((UnreachableError, EarthdataTimeoutError, ServerError), CheckStatus.UNREACHABLE, "endpoint unreachable"),
    ((UnauthorizedError, LoginPageError, LoginConfigError), CheckStatus.LOGIN_FAILED, "login failed"),
)


def classify(exc: RotationError) -> ProviderCheck:
    for types, status, label in _STATUS_OF:
        if isinstance(exc, types):
            return {"status": status, "message": f"{label}: {exc}", "valid_until": None}
    return {"status": CheckStatus.ERROR, "message": f"error: {exc}", "valid_until": None}


def check_result(report: RotationReport) -> CheckResult:
    checks: dict[str, ProviderCheck] = {}
    for name in report.rotated:
        until = str(report.written[name]["expiration"])
        checks[name] = {
            "status": CheckStatus.OK,
            "message": f"login OK; credentials valid until {until}",
            "valid_until": until,
        }
    for name, exc in report.failed.items():
        checks[name] = classify(exc)
    return {"ok": not report.failed, "check": dict(sorted(checks.items()))}


def run_check(
    names: Sequence[str] | None = None, time_budget: float | None = None, reserve_seconds: float = 0.0
) -> CheckResult:
    """Check the providers configured in the environment; writes nothing."""
    report = run(
        names=names,
        dry_run=True,
        metrics=MetricsEmitter(enabled=False),
        time_budget=time_budget,
        reserve_seconds=reserve_seconds,
    )
    return check_result(report)
