"""In-process clients for our app and the vanilla one (both through Starlette's TestClient, so the two sides pay
the same ASGI cost), plus a counter of the AWS API calls the process makes."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import botocore.client
from fastapi import FastAPI
from fastapi.testclient import TestClient


def create_ours() -> FastAPI:
    """Our app, built after the caller has set the process environment (settings are read at build time)."""
    from raster_api.main import create_app

    return create_app()


@contextmanager
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


class AwsCallLog:
    """Every botocore API call of this process (any client, any session): (time, service, operation, params)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, str, str, dict[str, Any]]] = []
        self._lock = threading.Lock()

    def count(self, service: str, operation: str) -> Counter[str]:
        """Calls of one operation keyed by the secret id / role ARN they named."""
        key = {"GetSecretValue": "SecretId", "AssumeRole": "RoleArn"}.get(operation, "")
        return Counter(
            str(params.get(key, "")) for _, svc, op, params in self.calls if svc == service and op == operation
        )

    @contextmanager
    def recording(self) -> Iterator[AwsCallLog]:
        original = botocore.client.BaseClient._make_api_call
        log = self

        def traced(client_self: Any, operation_name: str, api_params: dict[str, Any]) -> Any:
            service = client_self.meta.service_model.service_name
            with log._lock:
                log.calls.append((time.monotonic(), service, operation_name, dict(api_params)))
            return original(client_self, operation_name, api_params)

        botocore.client.BaseClient._make_api_call = traced  # type: ignore[method-assign]
        try:
            yield self
        finally:
            botocore.client.BaseClient._make_api_call = original  # type: ignore[method-assign]
