"""The raster API's tile-grant signing key (`raster_api.grants`): replaced here once it is older than
`ROTATOR_GRANT_KEY_MAX_AGE_DAYS`, on the rotator's own schedule.

The key is one random string in a Secrets Manager secret (`ROTATOR_GRANT_KEY_SECRET_ID`, created by the stack). A new
value becomes AWSCURRENT and the old one AWSPREVIOUS; the API signs with the first and still accepts the second, so
a rotation breaks no tile URL that is within its lifetime (an hour at most). The value is never logged.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

logger = logging.getLogger(__name__)

KEY_BYTES = 36  # 48 URL-safe characters


def rotate_grant_key(
    client: Any, secret_id: str, max_age: timedelta, now: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> str:
    """Replace the key when its current version is older than `max_age`; returns "rotated", "kept" or "failed"
    (logged with the reason: a failure here never fails the providers' rotation)."""
    try:
        versions = client.list_secret_version_ids(SecretId=secret_id)["Versions"]
        current = next(v for v in versions if "AWSCURRENT" in v.get("VersionStages", []))
        age = now() - current["CreatedDate"]
        if age < max_age:
            logger.info("grant key kept", extra={"secret_id": secret_id, "age_days": round(age.days, 1)})
            return "kept"
        client.put_secret_value(SecretId=secret_id, SecretString=secrets.token_urlsafe(KEY_BYTES))
    except (ClientError, BotoCoreError, StopIteration, KeyError) as exc:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else type(exc).__name__
        logger.error("grant key rotation failed", extra={"secret_id": secret_id, "reason": code})
        return "failed"
    logger.info("grant key rotated", extra={"secret_id": secret_id, "age_days": age.days})
    return "rotated"
