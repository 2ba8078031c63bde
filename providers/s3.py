"""S3 URL parsing and bucket pattern matching, the two facts provider routing is built on."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

# AWS bucket naming rules (3-63 chars, lowercase, digits, dots, hyphens). Anything else is user error, not a bucket.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Location:
    """An object in S3, named by bucket and key."""

    bucket: str
    key: str

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def gdal_path(self) -> str:
        return f"/vsis3/{self.bucket}/{self.key}"


def is_valid_bucket_name(name: str) -> bool:
    return bool(_BUCKET_RE.match(name)) and ".." not in name


def parse_s3_url(url: str) -> S3Location:
    """Parse `s3://bucket/key`; raise ValueError with a message fit for a 400 response."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not is_valid_bucket_name(bucket):
        raise ValueError(f"invalid S3 bucket name {bucket!r} in {url!r}")
    if not key:
        raise ValueError(f"S3 URL {url!r} names no object key")
    return S3Location(bucket=bucket, key=key)


def is_glob(pattern: str) -> bool:
    return any(ch in pattern for ch in "*?[")


def bucket_matches(pattern: str, bucket: str) -> bool:
    """True when `bucket` is named by `pattern` (an exact name or an fnmatch glob, case-sensitive)."""
    if is_glob(pattern):
        return fnmatch.fnmatchcase(bucket, pattern)
    return pattern == bucket


def match_specificity(pattern: str) -> tuple[int, int]:
    """Rank a matching pattern: an exact name beats any glob; among globs, more literal characters win.

    This is what makes bucket ownership exclusive even when a catch-all glob such as `*` is configured.
    """
    if not is_glob(pattern):
        return (1, len(pattern))
    literal = sum(1 for ch in pattern if ch not in "*?[]")
    return (0, literal)
