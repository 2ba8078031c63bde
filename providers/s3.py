"""S3 object identity and bucket pattern matching, the two facts provider routing is built on.

An `S3Location` is the canonical identity of an object: a valid bucket name and a key that GDAL reads exactly as
written. GDAL rewrites some paths before it sends them (it collapses `.` and `..` segments, so
`/vsis3/a/../b/k` reads bucket `b`; a NUL ends the path), so keys it would rewrite are refused here, when the
location is built, and the GDAL path is derived from the validated pair only. Parsing that path back must give the
same pair: `S3Location` checks this invariant for every instance, so no caller can hold a location whose GDAL path
names another object.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

# AWS bucket naming rules (3-63 chars, lowercase, digits, dots, hyphens). Anything else is user error, not a bucket.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")
# S3's limit on a key, in bytes of its UTF-8 encoding.
MAX_KEY_BYTES = 1024
GDAL_PREFIX = "/vsis3/"


class InvalidS3Location(ValueError):
    """A bucket or key that is not a plain S3 object name; the message says what is wrong (fit for a 400)."""


def is_valid_bucket_name(name: str) -> bool:
    return bool(_BUCKET_RE.match(name)) and ".." not in name


def key_problem(key: str) -> str | None:
    """Why `key` cannot name an object that GDAL reads as written, or None when it can."""
    if not key:
        return "names no object key"
    try:
        size = len(key.encode("utf-8"))
    except UnicodeEncodeError:
        return "key is not valid UTF-8"
    if size > MAX_KEY_BYTES:
        return f"key is {size} bytes long, more than S3's limit of {MAX_KEY_BYTES}"
    if any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in key):
        return "key contains a control character (such as NUL)"
    if "\\" in key:
        return "key contains a backslash"
    segments = key.split("/")
    if any(segment in (".", "..") for segment in segments):
        return "key contains a '.' or '..' path segment"
    if "" in segments:
        return "key contains an empty path segment ('//', or a leading or trailing '/')"
    return None


@dataclass(frozen=True)
class S3Location:
    """An object in S3, named by bucket and key; only valid pairs can be built (else `InvalidS3Location`)."""

    bucket: str
    key: str

    def __post_init__(self) -> None:
        if not is_valid_bucket_name(self.bucket):
            raise InvalidS3Location(f"invalid S3 bucket name {self.bucket!r}")
        if problem := key_problem(self.key):
            raise InvalidS3Location(f"s3://{self.bucket}/{self.key!r}: {problem}")
        # The invariant the whole isolation rests on: what GDAL reads from the path it is given is this object.
        if gdal_target(self.gdal_path) != (self.bucket, self.key):
            raise AssertionError(f"the GDAL path of s3://{self.bucket}/{self.key!r} names another object")

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.key}"

    @property
    def gdal_path(self) -> str:
        return f"{GDAL_PREFIX}{self.bucket}/{self.key}"

    @classmethod
    def from_gdal_path(cls, path: str) -> S3Location:
        """The object GDAL reads for `path` (refused if that is not a valid location)."""
        return cls(*gdal_target(path))


def gdal_target(path: str) -> tuple[str, str]:
    """(bucket, key) that GDAL reads for a `/vsis3/` path, with the rewrites GDAL is known to make: the path ends
    at a NUL, and `.`/`..` segments are collapsed (so `/vsis3/a/../b/k` reads bucket `b`)."""
    if not path.startswith(GDAL_PREFIX):
        raise InvalidS3Location(f"not a /vsis3/ path: {path!r}")
    segments: list[str] = []
    for segment in path.removeprefix(GDAL_PREFIX).split("\0", 1)[0].split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment != ".":
            segments.append(segment)
    return _split("/".join(segments))


def _split(bucket_and_key: str) -> tuple[str, str]:
    bucket, _, key = bucket_and_key.partition("/")
    return bucket, key


def parse_s3_url(url: str) -> S3Location:
    """Parse `s3://bucket/key`, the key taken literally (as the AWS CLI does: no percent-decoding).

    Raises `InvalidS3Location` with a message fit for a 400 response.
    """
    if not url.startswith("s3://"):
        raise InvalidS3Location(f"not an s3:// URL: {url!r}")
    return S3Location(*_split(url.removeprefix("s3://")))


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
