"""Shared by the tests that check no secret comes out: a recorder of every log line and response body of a test, so
it can end by scanning them for the secret values in play (`recorder` in conftest.py).

The credentials the app obtains by itself at run time (AssumeRole answers, secret values) are secrets too, and no
test handed them over: botocore's answers are watched for the whole session (`watch_botocore_secrets`).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import botocore.client

# A made-up Earthdata login, put in the app's environment during the reliability tests: it must never come out.
EARTHDATA_USERNAME = "reliability-user"
EARTHDATA_PASSWORD = "edl-pass-7f3a9c1e55b2d4"  # noqa: S105 - a test fixture

# The largest body any endpoint may return under the reliability tests: tiles, previews and parts are capped by
# rio-tiler's `max_size`/array limits, JSON documents are small; anything bigger means a parameter was not bounded.
MAX_RESPONSE_BYTES = 8 * 1024 * 1024

# Every secret value botocore handed this process (AssumeRole answers, secret values), whichever test or fixture
# asked: `watch_botocore_secrets` runs for the whole session, so an app built before a test's recorder is covered.
SEEN_SECRETS: set[str] = set()
_SEEN_LOCK = threading.Lock()


def _credentials_seen(operation: str, result: dict[str, Any]) -> None:
    found: list[str] = []
    if operation == "AssumeRole":
        creds = result.get("Credentials", {})
        found += [creds.get("SecretAccessKey", ""), creds.get("SessionToken", "")]
    elif operation == "GetSecretValue":
        try:
            value = json.loads(result.get("SecretString", "{}"))
        except ValueError:
            value = {}
        if isinstance(value, dict):
            found += [str(value.get(k, "")) for k in ("secretAccessKey", "sessionToken", "password", "token")]
    with _SEEN_LOCK:
        SEEN_SECRETS.update(v for v in found if len(v) >= 8)


@contextmanager
def watch_botocore_secrets() -> Iterator[None]:
    """Record the credentials in every botocore answer of this process while it lasts."""
    original = botocore.client.BaseClient._make_api_call

    def watched(client: Any, operation: str, params: dict[str, Any]) -> Any:
        result = original(client, operation, params)
        _credentials_seen(operation, result)
        return result

    botocore.client.BaseClient._make_api_call = watched  # type: ignore[method-assign]
    try:
        yield
    finally:
        botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]


class TrafficRecorder(logging.Handler):
    """Collects formatted log records (with tracebacks) and response bodies and headers."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.bodies: list[str] = []
        self._lock = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        with self._lock:
            self.lines.append(text)

    def response(self, status: int, headers: Iterable[tuple[str, str]], body: bytes) -> None:
        head = "\n".join(f"{k}: {v}" for k, v in headers)
        with self._lock:
            self.bodies.append(f"{status}\n{head}\n\n{body.decode('latin-1')}")

    def httpx_hook(self, response: Any) -> None:
        """An httpx/TestClient `response` event hook."""
        response.read()
        self.response(response.status_code, response.headers.items(), response.content)

    @contextmanager
    def recording(self) -> Iterator[TrafficRecorder]:
        """Attach to the root logger for the duration."""
        root = logging.getLogger()
        root.addHandler(self)
        try:
            yield self
        finally:
            root.removeHandler(self)

    def leaks(self, secrets: Iterable[str]) -> list[str]:
        """Each (secret prefix, where) hit; secrets are shown by their first 4 characters only."""
        with _SEEN_LOCK:
            values = {s for s in [*secrets, *SEEN_SECRETS] if s}
        hits = []
        for where, texts in (("log", self.lines), ("response", self.bodies)):
            for text in texts:
                hits += [f"{where}: {value[:4]}... in {text[:120]!r}" for value in values if value in text]
        return hits
