"""`GET /cog/download`: a 307 to a short-lived pre-signed S3 URL, never credentials.

Two real S3 servers, because no single local one does both jobs:
- the moto world (IAM auth on) for who may download what and with which identity the URL is signed;
- s3rver (npm, test-only) to fetch the pre-signed URL itself: moto answers 500 to any query-signed request while
  IAM auth is on, and never enforces `X-Amz-Expires`; s3rver serves query-signed GETs and refuses them after expiry.
  s3rver knows one key pair (`S3RVER`), so there the API's own identity (the `default` provider) is that pair.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import pytest
import requests
from botocore.config import Config
from fastapi.testclient import TestClient

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET, Keys, free_port
from local_stack.processes import start_process, stop_process
from local_stack.samples import make_cog

REPO = Path(__file__).resolve().parents[1]
S3RVER_JS = REPO / "node_modules" / "s3rver" / "bin" / "s3rver.js"
S3RVER_KEY = "S3RVER"  # s3rver 3.x's only key pair (id and secret)
OBJECT_KEY = "cogs/download.tif"
SHORT_EXPIRY = 3  # X-Amz-Date has whole seconds: the URL lives 2-3 s, room for a slow CI fetch


# -- moto world (IAM auth on): who may download, signed by whom ---------------------------------------------------


def _download(client: TestClient, url: str, provider: str | None = None):
    params = {"url": url, **({"provider": provider} if provider else {})}
    return client.get("/cog/download", params=params, follow_redirects=False)


def test_redirects_to_a_url_signed_by_the_providers_identity(
    api_client: TestClient, sample_urls: dict[str, str], lambda_keys: Keys
) -> None:
    response = _download(api_client, sample_urls[OWN_BUCKET], "own")
    assert response.status_code == 307, response.text
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Credential"][0].startswith(lambda_keys.access_key_id + "/")
    assert query["X-Amz-Expires"] == ["60"]
    assert response.headers["cache-control"] == "no-store"


def test_provider_without_allow_download_gets_403(api_client: TestClient, sample_urls: dict[str, str]) -> None:
    response = _download(api_client, sample_urls[DAAC_A_BUCKET], "daac-a")
    assert response.status_code == 403
    assert "'daac-a'" in response.json()["detail"]
    assert "allow_download" in response.json()["detail"]


def test_another_providers_bucket_is_refused(api_client: TestClient, sample_urls: dict[str, str]) -> None:
    response = _download(api_client, sample_urls[DAAC_A_BUCKET], "own")
    assert response.status_code == 403
    assert "'own'" in response.json()["detail"]


def test_download_is_audit_logged_without_the_signature(
    api_client: TestClient, sample_urls: dict[str, str], caplog: pytest.LogCaptureFixture, lambda_keys: Keys
) -> None:
    with caplog.at_level(logging.INFO, logger="raster_api.audit"):
        response = _download(api_client, sample_urls[OWN_BUCKET], "own")
    signature = parse_qs(urlsplit(response.headers["location"]).query)["X-Amz-Signature"][0]
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.audit"]
    assert records == [
        {
            "type": "download",
            "request_id": response.headers["x-request-id"],
            "provider": "own",
            "bucket": OWN_BUCKET,
            "key": sample_urls[OWN_BUCKET].split("/", 3)[3],
            "expires_in": 60,
        }
    ]
    for secret in (signature, *lambda_keys.secret_values()):
        assert secret not in caplog.text


def test_without_an_endpoint_override_the_url_is_https_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """As deployed (no AWS_ENDPOINT_URL): the URL is AWS's own https endpoint. Signing is local, nothing is sent."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLEEXAMPLE00")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret-example-secret-00000000000")
    monkeypatch.setenv(
        "PROVIDERS_CONFIG",
        json.dumps([{"name": "own", "kind": "default", "buckets": [OWN_BUCKET], "allow_download": True}]),
    )
    from raster_api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        response = _download(client, f"s3://{OWN_BUCKET}/{OBJECT_KEY}", "own")
    assert response.status_code == 307, response.text
    assert response.headers["location"].startswith(f"https://{OWN_BUCKET}.s3.us-west-2.amazonaws.com/{OBJECT_KEY}?")


# -- s3rver: the URL itself works, then expires --------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    node = shutil.which("node")
    if node is None or not S3RVER_JS.exists():
        pytest.skip("s3rver is not installed (scripts/bootstrap.sh runs npm install)")
    directory = tmp_path_factory.mktemp("s3rver")
    port = free_port()
    argv = [node, str(S3RVER_JS), "-d", str(directory), "-a", "127.0.0.1", "-p", str(port), "-s"]
    proc = start_process([*argv, "--configure-bucket", OWN_BUCKET], {"PATH": "/usr/bin:/bin"})
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _wait_listening(endpoint, proc)
        body = make_cog(110, size=256)
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-west-2",
            aws_access_key_id=S3RVER_KEY,
            aws_secret_access_key=S3RVER_KEY,
            config=Config(signature_version="s3v4", retries={"max_attempts": 1}),
        ).put_object(Bucket=OWN_BUCKET, Key=OBJECT_KEY, Body=body)
        yield endpoint, body
    finally:
        stop_process(proc)


def _wait_listening(endpoint: str, proc) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, "s3rver exited"
        try:
            requests.get(endpoint, timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail("s3rver did not start")


@pytest.fixture
def short_expiry_client(s3rver: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    endpoint, _ = s3rver
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", S3RVER_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", S3RVER_KEY)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv(
        "PROVIDERS_CONFIG",
        json.dumps([{"name": "own", "kind": "default", "buckets": [OWN_BUCKET], "allow_download": True}]),
    )
    monkeypatch.setenv("RASTER_API_DOWNLOAD_EXPIRES", str(SHORT_EXPIRY))
    from raster_api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def _presigned(client: TestClient) -> str:
    response = _download(client, f"s3://{OWN_BUCKET}/{OBJECT_KEY}", "own")
    assert response.status_code == 307, response.text
    return response.headers["location"]


def test_presigned_url_fetches_the_exact_bytes(short_expiry_client: TestClient, s3rver: tuple[str, bytes]) -> None:
    response = requests.get(_presigned(short_expiry_client), timeout=10)
    assert response.status_code == 200, response.text
    assert response.content == s3rver[1]
    assert 'filename="download.tif"' in response.headers["content-disposition"]


def test_presigned_url_is_refused_after_expiry(short_expiry_client: TestClient) -> None:
    url = _presigned(short_expiry_client)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == [str(SHORT_EXPIRY)]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expires_at = signed_at + timedelta(seconds=SHORT_EXPIRY)
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1.5)
    response = requests.get(url, timeout=10)
    assert response.status_code == 403
    assert "Request has expired" in response.text
