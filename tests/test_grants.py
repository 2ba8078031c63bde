"""Signed tile URLs: a signed-in caller's TileJSON, WMTS document and map page hand out tile URLs with a short-lived
grant instead of the bearer token; the tiles load with no token until the grant expires, and only for what it was
issued for. Tokens come from moto's Cognito (a real sign-in); provider `partner` is restricted to a group."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from fastapi.testclient import TestClient
from itsdangerous import URLSafeSerializer

from local_stack.aws_world import DAAC_B_BUCKET, OWN_BUCKET, PARTNER_BUCKET, AwsWorld
from local_stack.cognito import sample_user
from raster_api.grants import SALT, grant_keys
from raster_api.settings import GrantSettings
from tests.api_helpers import TILE_X, TILE_Y, TILE_Z, assert_tile_from
from tests.test_auth import bearer, restricted_config

MEMBER = sample_user("partner-analysts")
KEYS = ["an-old-grant-key-of-at-least-32-characters", "the-current-grant-key-at-least-32-characters"]
TILEJSON = "/cog/WebMercatorQuad/tilejson.json"
REISSUE = "fetch a fresh TileJSON for these"


@pytest.fixture
def client(api_env, aws_world, issuer, monkeypatch):
    monkeypatch.setenv("PROVIDERS_CONFIG", restricted_config(aws_world))
    for key, value in issuer.api_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RASTER_API_GRANT_KEYS", ",".join(KEYS))
    from raster_api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def tile_url(tilejson: dict, z: int = TILE_Z, x: int = TILE_X, y: int = TILE_Y) -> str:
    """The document's tile URL template for one tile, as a path and query on the test client."""
    parts = urlsplit(tilejson["tiles"][0].replace("{z}", str(z)).replace("{x}", str(x)).replace("{y}", str(y)))
    return f"{parts.path}?{parts.query}"


def signed_tilejson(client, sample_urls, token: str, **params: str) -> dict:
    params = {"url": sample_urls[PARTNER_BUCKET], "tile_format": "png", **params}
    response = client.get(TILEJSON, params=params, headers=bearer(token))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "private, no-store"
    return response.json()


def with_query(address: str, **changes: str) -> str:
    path, _, query = address.partition("?")
    items = dict(parse_qsl(query))
    items.update(changes)
    return f"{path}?{urlencode(items)}"


def test_a_members_tilejson_has_signed_tile_urls_that_load_with_no_token(client, issuer, sample_urls):
    token = issuer.id_token(MEMBER)
    tilejson = signed_tilejson(client, sample_urls, token)
    template = tilejson["tiles"][0]
    assert "grant=" in template and "access_token" not in template and token not in json.dumps(tilejson)
    tile = client.get(with_query(tile_url(tilejson), tilesize="256"))  # no Authorization, no access_token
    assert tile.status_code == 200, tile.text
    assert_tile_from(tile.content, PARTNER_BUCKET)
    assert tile.headers["cache-control"] == "private, no-store"


def test_a_token_sent_as_access_token_is_not_echoed_into_tile_urls(client, issuer, sample_urls):
    token = issuer.id_token(MEMBER)
    response = client.get(TILEJSON, params={"url": sample_urls[PARTNER_BUCKET], "access_token": token})
    assert response.status_code == 200, response.text
    assert token not in response.text and "access_token" not in response.text
    assert client.get(tile_url(response.json())).status_code == 200


@pytest.mark.parametrize(
    "change",
    [
        {"url": "own sample"},  # another object, of a public provider
        {"url": "daac-b sample"},  # another object, of a provider the member may read
        {"provider": "own"},
        {"rescale": "0,1"},
        {"bidx": "2"},
        {"expression": "b1*2"},
    ],
    ids=["object", "other-object", "provider", "rescale", "bidx", "expression"],
)
def test_a_grant_reads_only_what_it_was_issued_for(client, issuer, sample_urls, change):
    tilejson = signed_tilejson(client, sample_urls, issuer.id_token(MEMBER), bidx="1")
    values = {"own sample": sample_urls[OWN_BUCKET], "daac-b sample": sample_urls[DAAC_B_BUCKET]}
    changed = with_query(tile_url(tilejson), **{k: values.get(v, v) for k, v in change.items()})
    response = client.get(changed)
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == (
        "the tile grant was issued for another dataset, provider or parameters: " + REISSUE
    )
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_the_tile_size_and_format_are_not_bound(client, issuer, sample_urls):
    tilejson = signed_tilejson(client, sample_urls, issuer.id_token(MEMBER))
    path, _, query = with_query(tile_url(tilejson), tilesize="256").partition("?")
    path = path.removesuffix(".png")
    for suffix, media_type in ((".webp", "image/webp"), (".png", "image/png")):
        response = client.get(f"{path}{suffix}?{query}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == media_type


def test_an_expired_grant_is_401_telling_to_fetch_a_fresh_tilejson(client, issuer, sample_urls):
    tilejson = signed_tilejson(client, sample_urls, issuer.id_token(MEMBER))
    signer = client.app.state.grant_signer
    issued_now = signer.now
    signer.now = lambda: issued_now() + 3601  # past the one-hour lifetime
    response = client.get(tile_url(tilejson))
    assert response.status_code == 401
    assert response.json()["detail"].startswith("the tile grant expired at ")
    assert response.json()["detail"].endswith(": fetch a fresh TileJSON")


def test_a_grant_never_outlives_the_token_it_was_issued_for(client, issuer, sample_urls):
    token = issuer.id_token(MEMBER)
    caller = client.app.state.token_verifier.verify(token)
    tilejson = signed_tilejson(client, sample_urls, token)
    signer = client.app.state.grant_signer
    signer.now = lambda: caller.expires  # the token's own expiry, well inside the grant's hour
    assert client.get(tile_url(tilejson)).status_code == 401


def test_a_forged_or_misplaced_grant_is_refused(client, issuer, sample_urls):
    tilejson = signed_tilejson(client, sample_urls, issuer.id_token(MEMBER))
    url = tile_url(tilejson)
    grant = dict(parse_qsl(url.partition("?")[2]))["grant"]
    forged = client.get(with_query(url, grant=grant[:-3] + ("AAA" if not grant.endswith("AAA") else "BBB")))
    assert forged.status_code == 401
    assert forged.json()["detail"].startswith("the tile grant is not valid")
    # Statistics of the same object with the same parameters: not a route a grant is for.
    stats = client.get("/cog/statistics", params={"url": sample_urls[PARTNER_BUCKET], "grant": grant})
    assert stats.status_code == 401
    assert stats.json()["detail"] == "a tile grant is only accepted by tile, TileJSON, WMTS and map routes"


def test_anonymous_tilejson_of_a_restricted_provider_is_401_and_public_ones_are_unchanged(client, sample_urls):
    restricted = client.get(TILEJSON, params={"url": sample_urls[PARTNER_BUCKET]})
    assert restricted.status_code == 401
    public = client.get(TILEJSON, params={"url": sample_urls[OWN_BUCKET]})
    assert public.status_code == 200
    assert "grant=" not in public.text
    assert public.headers["cache-control"].startswith("public, ")


def test_the_map_page_and_wmts_hand_out_grants_not_tokens(client, issuer, sample_urls):
    token = issuer.id_token(MEMBER)
    params = {"url": sample_urls[PARTNER_BUCKET]}
    page = client.get("/cog/WebMercatorQuad/map.html", params=params, headers=bearer(token))
    assert page.status_code == 200, page.text
    assert token not in page.text and "grant=" in page.text
    # The page's own TileJSON request carries the grant it was given, and no token.
    tilejson_url = re.search(r"https?://[^\s\"']+tilejson\.json\?[^\s\"']+", page.text)
    assert tilejson_url is not None and "access_token" not in tilejson_url[0]
    tilejson = client.get(tilejson_url[0].replace("&amp;", "&"))
    assert tilejson.status_code == 200, tilejson.text
    assert client.get(tile_url(tilejson.json())).status_code == 200
    wmts = client.get("/cog/WMTSCapabilities.xml", params=params, headers=bearer(token))
    assert wmts.status_code == 200, wmts.text
    assert token not in wmts.text and "grant=" in wmts.text


def test_no_token_grant_or_key_in_any_log_line(client, issuer, sample_urls, caplog):
    token = issuer.id_token(MEMBER)
    with caplog.at_level(logging.DEBUG):
        tilejson = signed_tilejson(client, sample_urls, token)
        url = tile_url(tilejson)
        assert client.get(url).status_code == 200
        assert client.get(with_query(url, bidx="2")).status_code == 401
    grant = dict(parse_qsl(url.partition("?")[2]))["grant"]
    # What the API logged (the test's own HTTP client logs the URLs it asks for, as any client may).
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    for secret in (token, token.split(".")[2], grant, *KEYS):
        assert secret not in logged
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.access"]
    tile_record = next(r for r in records if r["status"] == 200 and "/tiles/" in r["path"])
    assert tile_record["user"] == client.app.state.token_verifier.verify(token).sub
    assert "grant=[REDACTED]" in tile_record["query"]


def test_keys_rotate_without_breaking_grants_in_flight(aws_world: AwsWorld, monkeypatch):
    """The secret's AWSPREVIOUS version still verifies what its AWSCURRENT signed before a rotation."""
    for key, value in {**aws_world.endpoint_env(), **aws_world.admin.env()}.items():
        monkeypatch.setenv(key, value)
    secret_id = "raster/grant-key-rotation-test"
    aws_world.put_secret(secret_id, KEYS[0])
    now = [0.0]
    keys = grant_keys(GrantSettings(secret_id=secret_id, secret_ttl=300), timer=lambda: now[0])
    assert keys() == (KEYS[0],)
    payload = {"sub": "s", "groups": [], "exp": 1, "bind": "b"}
    signed_before = URLSafeSerializer(list(keys()), salt=SALT).dumps(payload)
    aws_world.put_secret(secret_id, KEYS[1])  # the rotation: the old value becomes AWSPREVIOUS
    assert keys() == (KEYS[0],)  # re-read at most every 300 s
    now[0] = 301.0
    assert keys() == (KEYS[0], KEYS[1])  # the newest signs, both verify
    assert URLSafeSerializer(list(keys()), salt=SALT).loads(signed_before) == payload


def test_tileset_documents_hand_out_grants_not_tokens(client, issuer, sample_urls):
    token = issuer.id_token(MEMBER)
    for path in ("/cog/tiles", "/cog/tiles/WebMercatorQuad"):
        response = client.get(path, params={"url": sample_urls[PARTNER_BUCKET], "access_token": token})
        assert response.status_code == 200, response.text
        assert token not in response.text and "access_token" not in response.text and "grant=" in response.text
        assert response.headers["cache-control"] == "private, no-store"


def test_the_order_of_a_repeated_parameter_is_bound(client, issuer, sample_urls):
    """Of `url` given twice FastAPI reads the last: a grant for one order is not one for the other."""
    token = issuer.id_token(MEMBER)
    urls = [("url", sample_urls[OWN_BUCKET]), ("url", sample_urls[PARTNER_BUCKET]), ("tile_format", "png")]
    response = client.get(f"{TILEJSON}?{urlencode(urls)}", headers=bearer(token))
    assert response.status_code == 200, response.text
    path, _, query = tile_url(response.json()).partition("?")
    items = parse_qsl(query)
    swapped = [(k, v) for k, v in items if k == "url"][::-1] + [(k, v) for k, v in items if k != "url"]
    assert client.get(f"{path}?{query}").status_code == 200
    assert client.get(f"{path}?{urlencode(swapped)}").status_code == 401


def test_a_grant_expiring_later_than_any_issued_here_is_refused(client, sample_urls):
    forged = URLSafeSerializer(KEYS, salt=SALT).dumps({"sub": "x", "groups": [], "exp": 4_102_444_800, "bind": "b"})
    params = {"url": sample_urls[PARTNER_BUCKET], "grant": forged}
    response = client.get(f"/cog/tiles/WebMercatorQuad/{TILE_Z}/{TILE_X}/{TILE_Y}.png", params=params)
    assert response.status_code == 401


def test_a_percent_encoded_grant_name_is_still_private(client, issuer, sample_urls):
    tilejson = signed_tilejson(client, sample_urls, issuer.id_token(MEMBER))
    path, _, query = tile_url(tilejson).partition("?")
    response = client.get(f"{path}?{query.replace('grant=', '%67rant=')}")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "private, no-store"


def test_a_token_hidden_behind_a_semicolon_is_not_logged(client, issuer, sample_urls, caplog):
    token = issuer.id_token(MEMBER)
    with caplog.at_level(logging.INFO, logger="raster_api.access"):
        client.get("/cog/tiles", params={"url": sample_urls[OWN_BUCKET], "x": f"1;access_token={token}"})
    assert token not in caplog.text


def test_grant_keys_unavailable_is_a_503_not_a_500(api_env, aws_world, issuer, sample_urls, monkeypatch):
    monkeypatch.setenv("PROVIDERS_CONFIG", restricted_config(aws_world))
    for key, value in issuer.api_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RASTER_API_GRANT_SECRET_ID", "raster/no-such-grant-key")
    from raster_api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        response = client.get(
            TILEJSON, params={"url": sample_urls[PARTNER_BUCKET]}, headers=bearer(issuer.id_token(MEMBER))
        )
    assert response.status_code == 503, response.text
    assert response.json()["detail"].startswith("the tile grant keys are unavailable")
