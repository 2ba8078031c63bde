"""Validation of a DAAC's answer before anything is written: a bad answer must never replace a good secret.

Messages name the missing or invalid keys, never their values (pydantic's own messages quote the input).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import ValidationError

from credential_rotator.errors import ExpiredCredentialsError, MalformedResponseError, MissingKeyError
from providers import S3Credentials

REQUIRED_KEYS = ("accessKeyId", "secretAccessKey", "sessionToken", "expiration")


def validate_credentials(
    payload: dict[str, Any], where: str, min_validity_seconds: float, now: datetime | None = None
) -> S3Credentials:
    """The answer as `S3Credentials`, or a specific `RotationError`."""
    missing = [key for key in REQUIRED_KEYS if payload.get(key) in (None, "")]
    if missing:
        raise MissingKeyError(f"{where} answer lacks {', '.join(missing)}")
    try:
        credentials = S3Credentials.model_validate(payload)
    except ValidationError as exc:
        fields = sorted({str(err["loc"][0]) for err in exc.errors() if err["loc"]})
        raise MalformedResponseError(f"{where} answer has invalid {', '.join(fields) or 'content'}") from None
    left = credentials.seconds_left(now)
    if left < min_validity_seconds:
        state = f"expired {int(-left)} s ago" if left <= 0 else f"expire in {int(left)} s"
        raise ExpiredCredentialsError(
            f"{where} answered credentials that {state} (expiration {credentials.expiration.isoformat()}); "
            f"at least {int(min_validity_seconds)} s are required"
        )
    return credentials
