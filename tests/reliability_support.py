"""Shared by the reliability tests (`tests/test_reliability_*.py`): a recorder of every log line and response body
they produce, so each module can end by scanning them for the secret values in play.

The recorder also captures the credentials the app obtains by itself at run time (AssumeRole answers, secret
values), because those are secrets too and the test never handed them over.
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


class TrafficRecorder(logging.Handler):
    """Collects formatted log records (with tracebacks) and response bodies and headers."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.bodies: list[str] = []
        self.runtime_secrets: set[str] = set()
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

    def _credentials_seen(self, operation: str, result: dict[str, Any]) -> None:
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
        with self._lock:
            self.runtime_secrets.update(v for v in found if len(v) >= 8)

    @contextmanager
    def recording(self) -> Iterator[TrafficRecorder]:
        """Attach to the root logger and watch the credentials botocore hands to this process."""
        original = botocore.client.BaseClient._make_api_call
        recorder = self

        def watched(client: Any, operation: str, params: dict[str, Any]) -> Any:
            result = original(client, operation, params)
            recorder._credentials_seen(operation, result)
            return result

        root = logging.getLogger()
        root.addHandler(self)
        botocore.client.BaseClient._make_api_call = watched  # type: ignore[method-assign]
        try:
            yield self
        finally:
            botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]
            root.removeHandler(self)

    def leaks(self, secrets: Iterable[str]) -> list[str]:
        """Each (secret prefix, where) hit; secrets are shown by their first 4 characters only."""
        values = {s for s in [*secrets, *self.runtime_secrets] if s}
        hits = []
        for where, texts in (("log", self.lines), ("response", self.bodies)):
            for text in texts:
                hits += [f"{where}: {value[:4]}... in {text[:120]!r}" for value in values if value in text]
        return hits
