"""The temporary S3 credentials contract: the JSON a DAAC's `s3credentials` endpoint returns.

The rotator writes exactly this shape (plus metadata keys) to a provider's secret and the raster API reads it back,
so both sides validate with the same model.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator


class S3Credentials(BaseModel):
    """`{"accessKeyId", "secretAccessKey", "sessionToken", "expiration"}`; extra keys are kept."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)

    access_key_id: str = Field(alias="accessKeyId", min_length=1, repr=False)
    secret_access_key: str = Field(alias="secretAccessKey", min_length=1, repr=False)
    session_token: str = Field(alias="sessionToken", min_length=1, repr=False)
    expiration: datetime

    @field_validator("expiration", mode="before")
    @classmethod
    def _parse_expiration(cls, value: object) -> object:
        # Earthdata writes "2026-11-23 19:39:04+00:00" (space, not T); fromisoformat reads both on 3.11+.
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip())
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        return value

    def seconds_left(self, now: datetime | None = None) -> float:
        return (self.expiration - (now or datetime.now(UTC))).total_seconds()

    def to_secret_dict(self) -> dict[str, object]:
        """The Earthdata JSON shape, with `expiration` written the way Earthdata writes it."""
        data: dict[str, object] = dict(self.model_extra or {})
        data.update(
            accessKeyId=self.access_key_id,
            secretAccessKey=self.secret_access_key,
            sessionToken=self.session_token,
            expiration=self.expiration.astimezone(UTC).isoformat(sep=" ", timespec="seconds"),
        )
        return data

    def secret_values(self) -> tuple[str, str]:
        """The values that must never appear in a log line or response (for redaction and test scans)."""
        return (self.secret_access_key, self.session_token)
