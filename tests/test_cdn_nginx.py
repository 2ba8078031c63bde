"""The API behind a real HTTP cache (Debian's nginx, `local_stack.cdn`), as it is behind CloudFront: what is shared,
what is never shared, and for how long. The API runs under uvicorn against moto; requests that reach it are counted
in its own JSON access log.
"""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import morecantile
import pytest
import requests

from local_stack.aws_world import NON_COG_URL, OWN_BUCKET, PARTNER_BUCKET, free_port, providers_config
from local_stack.cdn import Cdn, nginx_cache, nginx_missing
from local_stack.processes import base_env, serving, uvicorn_argv
from raster_api.middleware import redact_query
from tests.api_helpers import assert_tile_from, tile_path

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(nginx_missing() is not None, reason=str(nginx_missing())),
]

TILES = "public, max-age=3600, s-maxage=86400"
METADATA = "public, max-age=60, s-maxage=300"
NOT_FOUND_TTL = 1
# A provider whose secret the rotator never wrote: every read of its buckets is a 503.
UNROTATED = {
    "name": "unrotated",
    "kind": "earthdata",
    "buckets": ["unrotated-*"],
    "credentials_url": "http://127.0.0.1:9/unrotated/s3credentials",
    "secret_id": "raster/providers/never-rotated",
}
WEB_MERCATOR = morecantile.tms.get("WebMercatorQuad")


@dataclass
class ApiLog:
    """The API's access log, one JSON line per request that reached it."""

    path: Path
    direct: str

    def records(self) -> list[dict]:
        lines = self.path.read_text().splitlines()
        return [r for r in (json.loads(line) for line in lines if line.startswith("{")) if r.get("type") == "access"]

    def settle(self) -> None:
        """Wait until every earlier request is logged: a request sent straight to the API is logged after them."""
        before = self.count("/healthz", {})
        assert requests.get(f"{self.direct}/healthz", timeout=10).status_code == 200
        deadline = time.monotonic() + 10
        while self.count("/healthz", {}) == before:
            assert time.monotonic() < deadline, "the API did not log a request within 10 s"
            time.sleep(0.05)

    def count(self, path: str, params: dict[str, str]) -> int:
        query = redact_query(urlencode(params)) if params else ""
        return sum(1 for r in self.records() if r["path"] == path and r["query"] == query)


@dataclass
class Stack:
    cdn: Cdn
    api: ApiLog

    def get(self, path: str, params: dict[str, str] | None = None, **headers: str) -> requests.Response:
        response = requests.get(f"{self.cdn.url}{path}", params=params, headers=headers, timeout=60)
        assert "X-Cache-Status" in response.headers, response.headers
        return response

    def reached_api(self, path: str, params: dict[str, str] | None = None) -> int:
        self.api.settle()
        return self.api.count(path, params or {})


@pytest.fixture(scope="module")
def stack(aws_world, lambda_keys, sample_urls, provider_secrets, tmp_path_factory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("cdn")
    cdn_port, api_port = free_port(), free_port()
    env = {
        **base_env(),
        **aws_world.endpoint_env(),
        **lambda_keys.env(),
        "PROVIDERS_CONFIG": json.dumps([*providers_config(aws_world), UNROTATED]),
        "RASTER_API_PUBLIC_URL": f"http://127.0.0.1:{cdn_port}",
        "RASTER_API_CACHE_NOT_FOUND": f"public, max-age={NOT_FOUND_TTL}, s-maxage={NOT_FOUND_TTL}",
    }
    log = tmp / "api.log"
    direct = f"http://127.0.0.1:{api_port}"
    with (
        serving(uvicorn_argv(api_port), env, log, f"{direct}/healthz", timeout=90),
        nginx_cache(direct, tmp / "cdn-state", port=cdn_port) as cdn,
    ):
        yield Stack(cdn, ApiLog(log, direct))


def _tile(z: int) -> str:
    """A tile over the samples' centre at zoom `z`: each test uses its own, so no test sees another's entries."""
    tile = WEB_MERCATOR.tile(-119.5, 34.5, z)
    return tile_path(tile.z, tile.x, tile.y)


def test_the_second_identical_public_tile_is_a_hit_that_never_reaches_the_api(stack: Stack, sample_urls) -> None:
    params = {"url": sample_urls[OWN_BUCKET], "provider": "own"}
    first = stack.get(tile_path(), params)
    assert (first.status_code, first.headers["X-Cache-Status"]) == (200, "MISS")
    assert first.headers["Cache-Control"] == TILES
    second = stack.get(tile_path(), params)
    assert (second.status_code, second.headers["X-Cache-Status"]) == (200, "HIT")
    assert second.content == first.content
    assert_tile_from(second.content, OWN_BUCKET)
    assert stack.reached_api(tile_path(), params) == 1
    # The shared TTL is s-maxage, not the browsers' max-age.
    entry = stack.cdn.entry_for(second.request.path_url)
    assert entry is not None and entry.ttl == 86400


@pytest.mark.parametrize(
    ("change", "bucket"),
    [
        pytest.param({"provider": "partner", "url": "partner"}, PARTNER_BUCKET, id="another-provider"),
        pytest.param({"url": "non-cog"}, OWN_BUCKET, id="another-url"),
        pytest.param({"rescale": "100,130"}, OWN_BUCKET, id="another-parameter"),
    ],
)
def test_another_provider_url_or_parameter_is_a_miss(stack: Stack, sample_urls, change, bucket) -> None:
    path = _tile(9)
    base = {"url": sample_urls[OWN_BUCKET], "provider": "own"}
    stack.get(path, base)
    assert stack.get(path, base).headers["X-Cache-Status"] == "HIT"
    urls = {"partner": sample_urls[PARTNER_BUCKET], "non-cog": NON_COG_URL}
    params = {**base, **{k: urls.get(v, v) if k == "url" else v for k, v in change.items()}}
    response = stack.get(path, params)
    assert (response.status_code, response.headers["X-Cache-Status"]) == (200, "MISS"), response.text
    assert response.content != stack.get(path, base).content
    assert stack.reached_api(path, params) == 1


def test_an_answer_to_a_caller_with_a_token_is_never_stored(stack: Stack, sample_urls) -> None:
    """It may embed the token (TileJSON, WMTS, map pages): `private, no-store` even for a public provider."""
    path = _tile(8)
    params = {"url": sample_urls[OWN_BUCKET], "provider": "own"}
    stack.get(path, params)
    assert stack.get(path, params).headers["X-Cache-Status"] == "HIT"
    for caller in ("caller-one", "caller-one", "caller-two"):
        response = stack.get(path, params, Authorization=f"Bearer {caller}")
        assert (response.headers["X-Cache-Status"], response.headers["Cache-Control"]) == ("MISS", "private, no-store")
    assert stack.reached_api(path, params) == 4


def test_compressed_and_plain_bodies_never_mix(stack: Stack, sample_urls) -> None:
    path = "/cog/info"
    params = {"url": sample_urls[OWN_BUCKET], "provider": "own"}
    zipped = stack.get(path, params, **{"Accept-Encoding": "gzip, deflate"})
    assert (zipped.headers["X-Cache-Status"], zipped.headers["Content-Encoding"]) == ("MISS", "gzip")
    # Another spelling of the same encoding is the same entry, as CloudFront normalises it.
    raw = requests.get(
        f"{stack.cdn.url}{path}", params=params, headers={"Accept-Encoding": "gzip"}, stream=True, timeout=60
    )
    assert (raw.headers["X-Cache-Status"], raw.headers["Content-Encoding"]) == ("HIT", "gzip")
    assert json.loads(gzip.decompress(raw.raw.read())) == zipped.json()
    plain = stack.get(path, params, **{"Accept-Encoding": "identity"})
    assert plain.headers["X-Cache-Status"] == "MISS"
    assert "Content-Encoding" not in plain.headers
    assert plain.json() == zipped.json()


@pytest.mark.parametrize(
    ("case", "status", "cache_control"),
    [
        pytest.param("credentials-unavailable", 503, "no-store", id="503"),
        pytest.param("bucket-of-another-provider", 403, "private, no-store", id="private"),
        pytest.param("providers", 200, "no-store", id="providers"),
    ],
)
def test_errors_private_answers_and_providers_are_never_cached(
    stack: Stack, sample_urls, case, status, cache_control
) -> None:
    path, params = {
        "credentials-unavailable": (_tile(7), {"url": "s3://unrotated-data/scene.tif"}),
        "bucket-of-another-provider": (_tile(7), {"url": sample_urls[OWN_BUCKET], "provider": "partner"}),
        "providers": ("/providers", {}),
    }[case]
    for _ in range(2):
        response = stack.get(path, params)
        assert response.status_code == status, response.text
        assert response.headers["Cache-Control"] == cache_control
        assert response.headers["X-Cache-Status"] == "MISS"
    assert stack.reached_api(path, params) == 2
    assert stack.cdn.entry_for(response.request.path_url) is None


def test_a_post_is_never_cached(stack: Stack, sample_urls) -> None:
    feature = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[-119.9, 34.1], [-119.5, 34.1], [-119.5, 34.4], [-119.9, 34.4], [-119.9, 34.1]]],
        },
    }
    params = {"url": sample_urls[OWN_BUCKET], "provider": "own"}
    for _ in range(2):
        response = requests.post(f"{stack.cdn.url}/cog/statistics", params=params, json=feature, timeout=60)
        assert response.status_code == 200, response.text
        assert response.headers["X-Cache-Status"] == "BYPASS"
    assert stack.reached_api("/cog/statistics", params) == 2


def test_a_404_is_cached_for_its_ttl_then_asked_again(stack: Stack) -> None:
    params = {"url": f"s3://{OWN_BUCKET}/cogs/not-uploaded-yet.tif", "provider": "own"}
    first = stack.get(_tile(10), params)
    assert (first.status_code, first.headers["X-Cache-Status"]) == (404, "MISS")
    assert first.headers["Cache-Control"] == f"public, max-age={NOT_FOUND_TTL}, s-maxage={NOT_FOUND_TTL}"
    # nginx's own record of the entry (written as the response ends), instead of a guess at its clock.
    deadline = time.monotonic() + 10
    while (entry := stack.cdn.entry_for(first.request.path_url)) is None:
        assert time.monotonic() < deadline, "the 404 was not stored"
        time.sleep(0.05)
    assert entry.ttl == NOT_FOUND_TTL
    # nginx serves an entry while its whole-second clock is not past `valid_until`.
    time.sleep(max(0.0, entry.valid_until + 1.2 - time.time()))
    again = stack.get(_tile(10), params)
    assert (again.status_code, again.headers["X-Cache-Status"]) == (404, "EXPIRED")
    assert stack.reached_api(_tile(10), params) == 2


def test_a_forged_host_never_appears_in_a_tilejson(stack: Stack, sample_urls) -> None:
    params = {"url": sample_urls[OWN_BUCKET], "provider": "own"}
    path = "/cog/WebMercatorQuad/tilejson.json"
    for headers in ({"Host": "evil.example"}, {"X-Forwarded-Host": "evil.example"}, {}):
        response = stack.get(path, params, **headers)
        assert response.status_code == 200, response.text
        assert response.headers["Cache-Control"] == METADATA
        assert "evil.example" not in response.text
        tiles = response.json()["tiles"]
        assert tiles == [
            f"{stack.cdn.url}/cog/tiles/WebMercatorQuad/{{z}}/{{x}}/{{y}}?{urlencode(params)}&tilesize=512"
        ]


def test_an_html_request_never_stores_html_for_json_clients(stack: Stack, sample_urls) -> None:
    """CloudFront neither keys on `Accept` nor forwards it; nor does the local cache."""
    path, params = "/cog/tiles/WebMercatorQuad", {"url": sample_urls[OWN_BUCKET], "provider": "own"}
    html = stack.get(path, params, Accept="text/html")
    assert (html.status_code, html.headers["content-type"]) == (200, "application/json")
    json_client = stack.get(path, params, Accept="application/json")
    assert (json_client.headers["X-Cache-Status"], json_client.headers["content-type"]) == ("HIT", "application/json")


def test_no_log_of_the_cache_holds_a_token(stack: Stack, sample_urls) -> None:
    token = "header.payload-that-must-not-be-logged.signature"
    params = {"url": sample_urls[OWN_BUCKET], "provider": "own", "access_token": token, "max_size": "1024"}
    assert stack.get("/cog/preview.tif", params).status_code == 200  # a large body: nginx would buffer it to disk
    stack.api.settle()
    for log in (stack.cdn.access_log, stack.cdn.error_log):
        assert token not in (log.read_text() if log.exists() else "")
