"""Outages, made real: Secrets Manager/STS behind a loopback relay that the test shuts (connections refused), and
S3 at a loopback port where nothing listens.

- Secrets Manager unreachable while cached credentials are valid: tiles are still served.
- Secrets Manager unreachable once the cached credentials expired: 503 with `Retry-After` (no fallback identity).
- S3 unreachable: a clear 5xx, returned within GDAL's configured timeouts (the test asserts that it returns).

Only boto3 goes through the relay; GDAL talks to moto directly (GDAL may hold the GIL while it waits on a socket, so
an in-process relay thread must never sit on its path).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET, SAMPLE_BASES, free_port
from local_stack.samples import make_cog
from tests.api_helpers import assert_tile_from, earthdata_json, private_secret_config, tile_path
from tests.reliability_support import EARTHDATA_PASSWORD, EARTHDATA_USERNAME, TrafficRecorder

EXPIRING_SECRET = "raster/providers/reliability-expiring"


class TcpRelay:
    """A loopback TCP relay to `upstream_port`; `shut()` closes the listener and every open connection."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                downstream, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            with self._lock:
                self._open += [downstream, upstream]
            for src, dst in ((downstream, upstream), (upstream, downstream)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def shut(self) -> None:
        self._stopped.set()
        self.listener.close()
        self._thread.join(timeout=5)
        with self._lock:
            for s in self._open:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()


@pytest.fixture
def relay(aws_world) -> Iterator[TcpRelay]:
    r = TcpRelay(int(aws_world.host_port.rsplit(":", 1)[1]))
    yield r
    r.shut()


@pytest.fixture
def fault_env(api_env, monkeypatch, relay):
    """The API's environment with boto3 behind the relay and short, bounded AWS timeouts."""
    settings = {
        "AWS_ENDPOINT_URL": relay.endpoint,
        "RASTER_API_CREDENTIALS_AWS_CONNECT_TIMEOUT": "1",
        "RASTER_API_CREDENTIALS_AWS_READ_TIMEOUT": "2",
        "RASTER_API_CREDENTIALS_AWS_MAX_ATTEMPTS": "2",
        "RASTER_API_CREDENTIALS_FAILURE_BACKOFF": "0",
        "RASTER_API_GDAL_HTTP_TIMEOUT": "5",
        "RASTER_API_GDAL_HTTP_CONNECT_TIMEOUT": "2",
        "EARTHDATA_USERNAME": EARTHDATA_USERNAME,
        "EARTHDATA_PASSWORD": EARTHDATA_PASSWORD,
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    return {**api_env, **settings}


def _client(recorder: TrafficRecorder) -> TestClient:
    from raster_api.main import create_app

    client = TestClient(create_app(), raise_server_exceptions=False)
    client.event_hooks["response"].append(recorder.httpx_hook)
    return client


def _fresh_object(aws_world, bucket: str, name: str) -> str:
    """A new object GDAL has never cached, so a read really goes to S3."""
    key = f"reliability/{name}-{time.monotonic_ns()}.tif"
    aws_world.put_object(bucket, key, make_cog(SAMPLE_BASES[bucket]))
    return f"s3://{bucket}/{key}"


def test_tiles_are_served_from_cached_credentials_while_secrets_manager_is_down(
    fault_env, monkeypatch, relay, recorder, aws_world, sample_urls
):
    monkeypatch.setenv("RASTER_API_CREDENTIALS_REFRESH_INTERVAL", "0.5")
    with _client(recorder) as client:
        first = client.get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET], "provider": "daac-a"})
        assert first.status_code == 200, first.text
        relay.shut()
        later = time.monotonic() + 0.6  # past the refresh interval: the next request tries Secrets Manager and fails
        client.app.state.provider_router.credential_cache.clock = lambda: later
        url = _fresh_object(aws_world, DAAC_A_BUCKET, "sm-down")
        response = client.get(tile_path(), params={"url": url, "provider": "daac-a"})
        assert response.status_code == 200, response.text
        assert_tile_from(response.content, DAAC_A_BUCKET)
        health = client.get("/providers/daac-a").json()["credentials"]
        assert health["available"] is True and health["last_error"]


def test_expired_credentials_with_secrets_manager_down_get_503_with_retry_after(
    fault_env, monkeypatch, relay, recorder, aws_world, daac_keys, sample_urls
):
    # Valid for an hour of real time (a slow start cannot expire them); the test moves the cache's clock instead.
    expiration = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
    aws_world.put_secret(
        EXPIRING_SECRET, earthdata_json(daac_keys["daac-a"], expiration.isoformat(sep=" ", timespec="seconds"))
    )
    monkeypatch.setenv("PROVIDERS_CONFIG", private_secret_config(aws_world, EXPIRING_SECRET))
    monkeypatch.setenv("RASTER_API_CREDENTIALS_REFRESH_MARGIN", "0")
    with _client(recorder) as client:
        first = client.get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET], "provider": "daac-a"})
        assert first.status_code == 200, first.text
        relay.shut()
        inside_the_margin = expiration - timedelta(seconds=4)  # the keys have 4 s left: no longer usable
        client.app.state.provider_router.credential_cache.now = lambda: inside_the_margin
        response = client.get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET], "provider": "daac-a"})
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert "daac-a" in response.json()["detail"]


def test_s3_unreachable_gives_a_clear_5xx(api_env, monkeypatch, recorder, aws_world):
    url = _fresh_object(aws_world, OWN_BUCKET, "s3-down")
    monkeypatch.setenv("AWS_S3_ENDPOINT", f"127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("RASTER_API_GDAL_HTTP_CONNECT_TIMEOUT", "2")
    monkeypatch.setenv("RASTER_API_GDAL_HTTP_MAX_RETRY", "1")
    with _client(recorder) as client:
        response = client.get(tile_path(), params={"url": url, "provider": "own"})
    assert 502 <= response.status_code <= 504, response.text
    detail = response.json()["detail"]
    assert "own" in detail and OWN_BUCKET in detail, detail
