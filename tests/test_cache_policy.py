"""Cache-Control per response class, and the hosts links are built from (what a CDN in front would share)."""

from __future__ import annotations

import importlib
import json

import pytest

from local_stack.aws_world import OWN_BUCKET
from raster_api.edge import OriginSecret, host_allowed
from tests.api_helpers import CONTEXT, HOST, http_api_event, tile_path

TILES = "public, max-age=3600, s-maxage=86400"
METADATA = "public, max-age=60, s-maxage=300"
SHORT = "public, max-age=30, s-maxage=30"


@pytest.fixture
def url(sample_urls):
    return sample_urls[OWN_BUCKET]


@pytest.mark.parametrize(
    ("path", "extra", "status", "expected"),
    [
        (tile_path(), {}, 200, TILES),
        ("/cog/preview.png", {}, 200, TILES),
        ("/cog/WebMercatorQuad/tilejson.json", {}, 200, METADATA),
        ("/cog/info", {}, 200, METADATA),
        ("/cog/statistics", {}, 200, METADATA),
        ("/cog/WMTSCapabilities.xml", {}, 200, METADATA),
        (tile_path(), {"url": "s3://own-data/not/there.tif"}, 404, SHORT),
        (tile_path(), {"rescale": "5,1"}, 400, SHORT),
        ("/cog/tiles/WebMercatorQuad/99/0/0.png", {}, 400, SHORT),
        ("/cog/preview.png", {"max_size": "0"}, 422, SHORT),
        (tile_path(), {"provider": "partner"}, 403, "private, no-store"),
        (tile_path(), {"provider": "nobody"}, 400, SHORT),
        ("/providers", {}, 200, "no-store"),
        ("/providers/own", {}, 200, "no-store"),
        ("/healthz", {}, 200, "no-store"),
    ],
)
def test_each_response_class_has_its_cache_policy(api_client, url, path, extra, status, expected):
    params = {"url": url, **extra} if path.startswith("/cog") else {}
    response = api_client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.headers["cache-control"] == expected


def test_post_responses_are_not_stored(api_client, url):
    feature = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[[-120, 34], [-119, 34], [-119, 35], [-120, 34]]]},
    }
    response = api_client.post("/cog/statistics", params={"url": url}, json=feature)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"


def test_the_policies_are_settings(api_env, monkeypatch, api_client_factory, url):
    monkeypatch.setenv("RASTER_API_CACHE_TILES", "public, max-age=5")
    monkeypatch.setenv("RASTER_API_CACHE_NOT_FOUND", "public, max-age=1")
    client = api_client_factory()
    assert client.get(tile_path(), params={"url": url}).headers["cache-control"] == "public, max-age=5"
    missing = client.get(tile_path(), params={"url": "s3://own-data/not/there.tif"})
    assert missing.headers["cache-control"] == "public, max-age=1"


def _tilejson_tiles(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["tiles"][0]


def test_links_use_the_public_url_whatever_the_host(api_env, monkeypatch, api_client_factory, url):
    monkeypatch.setenv("RASTER_API_PUBLIC_URL", "https://tiles.example.org/")
    client = api_client_factory()
    headers = {"Host": "evil.example.com", "X-Forwarded-Host": "evil.example.com", "X-Forwarded-Proto": "http"}
    tiles = _tilejson_tiles(client.get("/cog/WebMercatorQuad/tilejson.json", params={"url": url}, headers=headers))
    assert tiles.startswith("https://tiles.example.org/cog/tiles/WebMercatorQuad/{z}/{x}/{y}")
    wmts = client.get("/cog/WMTSCapabilities.xml", params={"url": url}, headers=headers)
    assert "evil.example.com" not in wmts.text and "https://tiles.example.org/cog/tiles/" in wmts.text


def test_a_forged_host_is_refused_and_a_forged_forwarded_host_ignored(api_client, url):
    forged = api_client.get("/cog/WebMercatorQuad/tilejson.json", params={"url": url}, headers={"Host": "evil.com"})
    assert forged.status_code == 400
    assert forged.json()["detail"] == (
        "host 'evil.com' is not served here: set RASTER_API_PUBLIC_URL or add it to RASTER_API_ALLOWED_HOSTS"
    )
    assert forged.headers["cache-control"] == "no-store"
    tiles = _tilejson_tiles(
        api_client.get(
            "/cog/WebMercatorQuad/tilejson.json", params={"url": url}, headers={"X-Forwarded-Host": "evil.com"}
        )
    )
    assert tiles.startswith("http://testserver/cog/tiles/")


def test_an_allowed_forwarded_host_names_the_links(api_env, monkeypatch, api_client_factory, url):
    monkeypatch.setenv("RASTER_API_ALLOWED_HOSTS", "testserver,*.cloudfront.net")
    client = api_client_factory()
    headers = {"X-Forwarded-Host": "d111111abcdef8.cloudfront.net", "X-Forwarded-Proto": "https"}
    tiles = _tilejson_tiles(client.get("/cog/WebMercatorQuad/tilejson.json", params={"url": url}, headers=headers))
    assert tiles.startswith("https://d111111abcdef8.cloudfront.net/cog/tiles/")


def test_in_lambda_a_forged_host_falls_back_to_the_gateway_domain(api_env, sample_urls):
    import raster_api.handler

    handler = importlib.reload(raster_api.handler).handler
    event = http_api_event(
        "/cog/WebMercatorQuad/tilejson.json",
        {"url": sample_urls[OWN_BUCKET]},
        headers={"host": "evil.com", "x-forwarded-host": "evil.com"},
    )
    response = handler(event, CONTEXT)
    assert response["statusCode"] == 200, response["body"]
    assert json.loads(response["body"])["tiles"][0].startswith(f"https://{HOST}/cog/tiles/")


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("testserver", True),
        ("TestServer:8080", True),
        ("api.example.org", False),
        ("d1.cloudfront.net", True),
        ("cloudfront.net", False),
        ("evilcloudfront.net", False),
        ("127.0.0.1:8000", True),
        ("127.0.0.1:9000", False),
        ("[::1]:8000", True),
        ("a@testserver", False),
        ("testserver/x", False),
    ],
)
def test_host_patterns(host, allowed):
    assert host_allowed(host, ["testserver", "*.cloudfront.net", "127.0.0.1:8000", "[::1]"]) is allowed


def test_origin_verify_refuses_requests_that_skip_the_cdn(api_env, aws_world, monkeypatch, api_client_factory, url):
    aws_world.put_secret("raster/origin-verify", "first-secret")
    monkeypatch.setenv("RASTER_API_ORIGIN_VERIFY_SECRET_ID", "raster/origin-verify")
    client = api_client_factory()
    direct = client.get(tile_path(), params={"url": url})
    assert direct.status_code == 403
    assert direct.json()["detail"] == (
        "requests must come through the CDN: the x-origin-verify header is missing or wrong"
    )
    wrong = client.get(tile_path(), params={"url": url}, headers={"x-origin-verify": "guess"})
    assert wrong.status_code == 403
    through_cdn = client.get(tile_path(), params={"url": url}, headers={"x-origin-verify": "first-secret"})
    assert through_cdn.status_code == 200


def test_an_unreadable_origin_secret_is_503_with_the_configured_retry_after(
    api_env, monkeypatch, api_client_factory, url
):
    monkeypatch.setenv("RASTER_API_ORIGIN_VERIFY_SECRET_ID", "raster/origin-verify-never-written")
    monkeypatch.setenv("RASTER_API_RETRY_AFTER_SECONDS", "7")
    response = api_client_factory().get(tile_path(), params={"url": url}, headers={"x-origin-verify": "anything"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "7"
    assert response.json() == {
        "detail": "origin verification is unavailable; retry later",
        "request_id": response.headers["x-request-id"],
    }


def test_a_rotated_origin_secret_is_reread_at_most_once_per_interval():
    values = iter(["old", "new", "newer"])
    fetches: list[str] = []
    now = [0.0]

    def fetch() -> str:
        fetches.append(value := next(values))
        return value

    secret = OriginSecret(fetch, recheck_interval=60.0, clock=lambda: now[0])
    assert secret.matches("old")
    now[0] = 10.0
    assert not secret.matches("new")  # inside the interval: no refetch for a wrong header
    assert fetches == ["old"]
    now[0] = 61.0
    assert secret.matches("new")  # past it: re-read once, the rotated value is accepted
    assert not secret.matches("old")
    assert fetches == ["old", "new"]


def test_the_origin_secret_is_kept_while_secrets_manager_is_down():
    answers = iter(["current"])  # a second read raises StopIteration, as an unreachable Secrets Manager would raise
    now = [0.0]
    secret = OriginSecret(lambda: next(answers), recheck_interval=60.0, clock=lambda: now[0])
    assert secret.matches("current")
    now[0] = 3600.0  # long past the interval: a matching header still needs no read
    assert secret.matches("current")
