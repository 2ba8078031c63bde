"""`GET /cog/download`: a 307 to a short-lived pre-signed S3 URL, never credentials.

Two real S3 servers, because no single local one does both jobs:
- the moto world (IAM auth on) for who may download what and with which identity the URL is signed;
- s3rver (npm, test-only) to fetch the pre-signed URL itself: moto answers 500 to any query-signed request while
  IAM auth is on, and never enforces `X-Amz-Expires`; s3rver checks query signatures (so the `x-user` parameter is
  proven inside it) and refuses them after expiry. s3rver knows one key pair (`S3RVER`): there the object belongs to
  an earthdata provider whose secret holds that pair (downloads of such providers are signed with the DAAC's keys).
"""

from __future__ import annotations

import base64
import json
import logging
import os
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

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET, PARTNER_BUCKET, Keys, free_port, providers_config
from local_stack.cognito import NO_GROUP_USER
from local_stack.processes import serving
from local_stack.samples import make_cog
from providers import Provider
from raster_api.credentials import AwsCredentials
from raster_api.download import presigned_get_url, session_policy
from tests.api_helpers import presigned_signature_valid

REPO = Path(__file__).resolve().parents[1]
S3RVER_JS = REPO / "node_modules" / "s3rver" / "bin" / "s3rver.js"
S3RVER_KEY = "S3RVER"  # s3rver 3.x's only key pair (id and secret)
OBJECT_KEY = "cogs/download.tif"
SHORT_EXPIRY = 3  # X-Amz-Date has whole seconds: the URL lives 2-3 s, room for a slow CI fetch


# -- moto world (IAM auth on): who may download, signed by whom ---------------------------------------------------


def _download(client: TestClient, url: str, provider: str | None = None, token: str | None = None):
    params = {"url": url, **({"provider": provider} if provider else {})}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.get("/cog/download", params=params, headers=headers, follow_redirects=False)


def _downloads_config(world) -> str:
    providers = providers_config(world)
    for provider in providers:
        if provider["name"] == "partner":
            provider["allow_download"] = True
    return json.dumps(providers)


@pytest.fixture
def download_client(api_env, aws_world, issuer, monkeypatch) -> Iterator[TestClient]:
    monkeypatch.setenv("PROVIDERS_CONFIG", _downloads_config(aws_world))
    monkeypatch.setenv("RASTER_API_DOWNLOAD_ROLE_ARN", aws_world.role_arns["raster-download"])
    for key, value in issuer.api_env().items():
        monkeypatch.setenv(key, value)
    from raster_api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def token(issuer) -> str:
    return str(issuer.id_token(NO_GROUP_USER))


def _session_of(world, access_key_id: str) -> dict:
    """The STS session moto issued for `access_key_id` (role, session policy): the emulator's own record."""
    data = requests.get(f"{world.endpoint}/moto-api/data.json", timeout=10).json()
    sessions = [s for s in data["sts"]["AssumedRole"] if s["access_key_id"] == access_key_id]
    assert len(sessions) == 1
    return sessions[0]


def _allowed(policy: str, resource: str) -> bool:
    from moto.iam.access_control import IAMPolicy, PermissionResult

    return IAMPolicy(policy).is_action_permitted("s3:GetObject", resource) == PermissionResult.PERMITTED


@pytest.mark.parametrize(
    ("provider", "bucket", "role"),
    [("own", OWN_BUCKET, "raster-download"), ("partner", PARTNER_BUCKET, "partner-reader")],
)
def test_the_url_is_signed_by_a_session_that_reads_only_that_object(
    download_client, token, sample_urls, aws_world, lambda_keys, provider, bucket, role
) -> None:
    response = _download(download_client, sample_urls[bucket], provider, token)
    assert response.status_code == 307, response.text
    assert response.headers["cache-control"] == "private, no-store"  # for this caller, and it expires
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-Expires"] == ["60"]
    key_id = query["X-Amz-Credential"][0].split("/")[0]
    assert key_id != lambda_keys.access_key_id  # never the API's own session
    session = _session_of(aws_world, key_id)
    assert session["role_arn"] == aws_world.role_arns[role]
    key = sample_urls[bucket].split("/", 3)[3]
    assert json.loads(session["policy"]) == {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/{key}"}],
    }
    # moto does not apply session policies to requests; its policy engine says what AWS would allow.
    assert _allowed(session["policy"], f"arn:aws:s3:::{bucket}/{key}")
    assert not _allowed(session["policy"], f"arn:aws:s3:::{bucket}/cogs/another.tif")
    assert not _allowed(
        session["policy"], f"arn:aws:s3:::{OWN_BUCKET if bucket != OWN_BUCKET else PARTNER_BUCKET}/{key}"
    )


def test_wildcards_in_a_key_name_only_that_key():
    policy = session_policy(OWN_BUCKET, "a*/b?$.tif")
    resource = json.loads(policy)["Statement"][0]["Resource"]
    assert resource == "arn:aws:s3:::own-data/a${*}/b${?}${$}.tif"


def test_without_a_token_a_download_is_401(download_client, sample_urls) -> None:
    response = _download(download_client, sample_urls[OWN_BUCKET], "own")
    assert response.status_code == 401
    assert response.json()["detail"] == (
        f"downloads need a signed-in caller: send a bearer token ({sample_urls[OWN_BUCKET]})"
    )
    assert response.headers["www-authenticate"] == 'Bearer realm="raster-api"'


def test_without_an_issuer_downloads_are_refused(api_client: TestClient, sample_urls: dict[str, str]) -> None:
    response = _download(api_client, sample_urls[OWN_BUCKET], "own")
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "downloads need a signed-in caller and no identity provider is configured (RASTER_API_AUTH_ISSUER)"
    )


def test_without_a_download_role_a_default_provider_refuses(download_client, token, sample_urls, monkeypatch):
    monkeypatch.delenv("RASTER_API_DOWNLOAD_ROLE_ARN")
    from raster_api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        response = _download(client, sample_urls[OWN_BUCKET], "own", token)
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "provider 'own' hands out no downloads: no download role is configured (RASTER_API_DOWNLOAD_ROLE_ARN): "
        f"{sample_urls[OWN_BUCKET]}"
    )


def test_provider_without_allow_download_gets_403(download_client, token, sample_urls) -> None:
    response = _download(download_client, sample_urls[DAAC_A_BUCKET], "daac-a", token)
    assert response.status_code == 403
    assert response.json()["detail"] == (
        f"provider 'daac-a' does not allow downloads (allow_download is false): {sample_urls[DAAC_A_BUCKET]}"
    )


def test_another_providers_bucket_is_refused(download_client, token, sample_urls) -> None:
    response = _download(download_client, sample_urls[DAAC_A_BUCKET], "own", token)
    assert response.status_code == 403
    assert "'own'" in response.json()["detail"]


def test_download_is_audit_logged_with_the_user_and_without_secrets(
    download_client, token, sample_urls, caplog: pytest.LogCaptureFixture, lambda_keys: Keys
) -> None:
    with caplog.at_level(logging.INFO):
        response = _download(download_client, sample_urls[OWN_BUCKET], "own", token)
    location = response.headers["location"]
    query = parse_qs(urlsplit(location).query)
    sub = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))["sub"]
    assert query["x-user"] == [sub]
    assert query["x-request-id"] == [response.headers["x-request-id"]]
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.audit"]
    assert records == [
        {
            "type": "download",
            "request_id": response.headers["x-request-id"],
            "user": sub,
            "provider": "own",
            "bucket": OWN_BUCKET,
            "key": sample_urls[OWN_BUCKET].split("/", 3)[3],
            "expires_in": 60,
            "scoped_session": True,
        }
    ]
    access = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.access"]
    assert access[-1]["user"] == sub
    for secret in (query["X-Amz-Signature"][0], query["X-Amz-Security-Token"][0], token, *lambda_keys.secret_values()):
        assert secret not in caplog.text


def test_without_an_endpoint_override_the_url_is_https_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """As deployed (no AWS_ENDPOINT_URL): the URL is AWS's own https endpoint. Signing is local, nothing is sent."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    provider = Provider(name="own", kind="unsigned", buckets=(OWN_BUCKET,), allow_download=True)
    url = presigned_get_url(
        provider, AwsCredentials("AKIAEXAMPLEEXAMPLE00", "example-secret", None), OWN_BUCKET, OBJECT_KEY, 60
    )
    assert url.startswith(f"https://{OWN_BUCKET}.s3.us-west-2.amazonaws.com/{OBJECT_KEY}?")


# -- s3rver: the URL itself works, then expires --------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3rver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, bytes]]:
    node = shutil.which("node")
    if node is None or not S3RVER_JS.exists():
        pytest.skip("s3rver is not installed (scripts/bootstrap.sh runs npm install)")
    directory = tmp_path_factory.mktemp("s3rver")
    port = free_port()
    argv = [node, str(S3RVER_JS), "-d", str(directory), "-a", "127.0.0.1", "-p", str(port), "-s"]
    argv += ["--configure-bucket", OWN_BUCKET]
    endpoint = f"http://127.0.0.1:{port}"
    with serving(argv, {"PATH": "/usr/bin:/bin"}, os.devnull, endpoint, timeout=30, status=None):
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


S3RVER_SECRET = "raster/providers/s3rver-daac"


@pytest.fixture
def short_expiry_client(
    s3rver: tuple[str, bytes], api_env, aws_world, issuer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[TestClient]:
    """The API with S3 on s3rver (everything else on moto): an earthdata provider that allows downloads, whose
    secret holds s3rver's key pair, so its URLs are signed with keys s3rver checks."""
    endpoint, _ = s3rver
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    expiration = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S+00:00")
    aws_world.put_secret(
        S3RVER_SECRET,
        {"accessKeyId": S3RVER_KEY, "secretAccessKey": S3RVER_KEY, "sessionToken": "s3rver", "expiration": expiration},
    )
    provider = {
        "name": "own",
        "kind": "earthdata",
        "buckets": [OWN_BUCKET],
        "credentials_url": "http://127.0.0.1:9/s3credentials",
        "secret_id": S3RVER_SECRET,
        "allow_download": True,
    }
    monkeypatch.setenv("PROVIDERS_CONFIG", json.dumps([provider]))
    monkeypatch.setenv("RASTER_API_DOWNLOAD_EXPIRES", str(SHORT_EXPIRY))
    for key, value in issuer.api_env().items():
        monkeypatch.setenv(key, value)
    from raster_api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def _presigned(client: TestClient, issuer) -> str:
    response = _download(client, f"s3://{OWN_BUCKET}/{OBJECT_KEY}", "own", issuer.id_token(NO_GROUP_USER))
    assert response.status_code == 307, response.text
    return response.headers["location"]


def test_presigned_url_fetches_the_exact_bytes(short_expiry_client: TestClient, s3rver, issuer) -> None:
    response = requests.get(_presigned(short_expiry_client, issuer), timeout=10)
    assert response.status_code == 200, response.text
    assert response.content == s3rver[1]
    assert 'filename="download.tif"' in response.headers["content-disposition"]


def test_the_user_is_inside_the_signature(short_expiry_client: TestClient, issuer) -> None:
    """s3rver does not check `x-` parameters, so the signature is recomputed as S3 does: changing `x-user` or
    `x-request-id` breaks it."""
    url = _presigned(short_expiry_client, issuer)
    query = parse_qs(urlsplit(url).query)
    assert presigned_signature_valid(url, S3RVER_KEY)
    for name in ("x-user", "x-request-id"):
        forged = url.replace(f"{name}={query[name][0]}", f"{name}=someone-else")
        assert forged != url
        assert not presigned_signature_valid(forged, S3RVER_KEY)


def test_presigned_url_is_refused_after_expiry(short_expiry_client: TestClient, issuer) -> None:
    url = _presigned(short_expiry_client, issuer)
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Expires"] == [str(SHORT_EXPIRY)]
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expires_at = signed_at + timedelta(seconds=SHORT_EXPIRY)
    time.sleep(max(0.0, (expires_at - datetime.now(UTC)).total_seconds()) + 1.5)
    response = requests.get(url, timeout=10)
    assert response.status_code == 403
    assert "Request has expired" in response.text
