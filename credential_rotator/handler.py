"""`credential_rotator.handler.handler`: the Lambda entry point, run every 30 minutes by EventBridge.

A scheduled event rotates every earthdata provider; `{"providers": ["daac-a", ...]}` rotates only those. The
invocation ends in error when any provider failed (after all the others were written), so the Lambda's `Errors`
metric and its alarm fire; the message names each failed provider and its fault, never a credential.

`{"check": true}` (what the post-deploy run sends) writes nothing: it checks each provider's login and DAAC and
returns `{"ok": bool, "check": {name: {"status", "message", "valid_until"}}}` (see `credential_rotator.check`); a
provider that is not OK is logged at ERROR but does not fail the invocation.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from credential_rotator.check import CheckResult, CheckStatus, run_check
from credential_rotator.grant_key import rotate_grant_key
from credential_rotator.observability import configure_logging
from credential_rotator.rotate import RotationResult, run
from credential_rotator.settings import RotatorSettings

logger = logging.getLogger(__name__)


class RotationFailedError(Exception):
    """At least one provider could not be rotated; the message lists each with its fault."""


def providers_from_event(event: Mapping[str, Any] | None) -> list[str] | None:
    """The provider names an event asks for, or None for "all" (EventBridge's scheduled event has no such key)."""
    if not isinstance(event, Mapping) or "providers" not in event:
        return None
    names = event["providers"]
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n for n in names):
        raise ValueError('event "providers" must be a non-empty list of provider names')
    return names


# Every provider's deadline ends this long before Lambda's own timeout, so the summary, the metrics and the error are
# still emitted when Earthdata is slow.
SAFETY_MARGIN_SECONDS = 15.0


def time_budget_from_context(context: Any) -> float | None:
    """Seconds the run may take: the invocation's remaining time less the safety margin (None outside Lambda)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return None
    return remaining() / 1000.0 - SAFETY_MARGIN_SECONDS


def check_from_event(event: Mapping[str, Any] | None) -> bool:
    if not isinstance(event, Mapping) or "check" not in event:
        return False
    if not isinstance(event["check"], bool):
        raise ValueError('event "check" must be true or false')
    return event["check"]


def handler(event: Mapping[str, Any] | None, context: Any) -> RotationResult | CheckResult:
    configure_logging()
    names = providers_from_event(event)
    if check_from_event(event):
        checked = run_check(names, time_budget_from_context(context), SAFETY_MARGIN_SECONDS)
        for name, check in checked["check"].items():
            level = logging.INFO if check["status"] == CheckStatus.OK else logging.ERROR
            extra = {"provider": name, "status": check["status"], "reason": check["message"]}
            logger.log(level, "provider check", extra={**extra, "valid_until": check["valid_until"]})
        return checked
    report = run(
        names=names,
        time_budget=time_budget_from_context(context),
        reserve_seconds=SAFETY_MARGIN_SECONDS,
    )
    result = report.result()
    settings = RotatorSettings()
    if names is None and settings.grant_key_secret_id:  # a scheduled run (not one for named providers)
        from providers.aws import client

        result["grant_key"] = rotate_grant_key(
            client("secretsmanager"),
            settings.grant_key_secret_id,
            timedelta(days=settings.grant_key_max_age_days),
        )
    if report.failed:
        raise RotationFailedError(report.failure_message())
    return result
