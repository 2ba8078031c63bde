"""Who may read what: OIDC bearer tokens from moto's Cognito (RS256, JWKS over HTTP) and each provider's `access`."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
from types import SimpleNamespace

import pytest
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import RSAKey
from moto.utilities.utils import load_resource

from local_stack.aws_world import DAAC_B_BUCKET, OWN_BUCKET, PARTNER_BUCKET, free_port, providers_config
from local_stack.cognito import NO_GROUP_USER, sample_user
from raster_api.auth import AuthConfigError
from tests.api_helpers import tile_path

MEMBER = sample_user("partner-analysts")
# The key moto's Cognito signs with (what an attacker would need): forged tokens below differ in one claim only.
MOTO_KEY = RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))
UNAUTHENTICATED = (
    "provider 'partner' is restricted: sign in and send a bearer token "
    "(Authorization header, or access_token for tile URLs)"
)


def restricted_config(world) -> str:
    providers = providers_config(world)
    for provider in providers:
        if provider["name"] == "partner":
            provider["access"] = ["partner-analysts"]
        if provider["name"] == "daac-b":
            provider["access"] = "authenticated"
    return json.dumps(providers)


@pytest.fixture
def auth_env(api_env, aws_world, issuer, monkeypatch):
    monkeypatch.setenv("PROVIDERS_CONFIG", restricted_config(aws_world))
    for key, value in issuer.api_env().items():
        monkeypatch.setenv(key, value)
    return issuer


@pytest.fixture
def client(auth_env):
    from raster_api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as test_client:
        yield test_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def partner_tile(client, sample_urls, **kwargs):
    return client.get(tile_path(), params={"url": sample_urls[PARTNER_BUCKET], **kwargs.pop("params", {})}, **kwargs)


def test_a_group_member_reads_the_restricted_provider(client, issuer, sample_urls):
    tokens = issuer.tokens(MEMBER)
    for token in (tokens["IdToken"], tokens["AccessToken"]):  # `aud` and Cognito's `client_id` alike
        response = partner_tile(client, sample_urls, headers=bearer(token))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "image/png"


def test_without_a_token_the_restricted_provider_is_401(client, sample_urls):
    response = partner_tile(client, sample_urls)
    assert response.status_code == 401
    assert response.json()["detail"] == UNAUTHENTICATED
    assert response.headers["www-authenticate"] == 'Bearer realm="raster-api"'
    assert response.headers["cache-control"] == "private, no-store"


def test_a_caller_outside_the_group_is_403_naming_the_provider(client, issuer, sample_urls):
    token = issuer.id_token(NO_GROUP_USER)
    response = partner_tile(client, sample_urls, headers=bearer(token))
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "provider 'partner' is restricted to the groups partner-analysts, and this caller is in none of them"
    )
    # "authenticated" needs no group.
    daac_b = client.get(tile_path(), params={"url": sample_urls[DAAC_B_BUCKET]}, headers=bearer(token))
    assert daac_b.status_code == 200, daac_b.text


def test_public_providers_need_no_token(client, sample_urls):
    response = client.get(tile_path(), params={"url": sample_urls[OWN_BUCKET]})
    assert response.status_code == 200
    assert response.headers["cache-control"] == "public, max-age=3600, s-maxage=86400"


def _sign(issuer, header: dict | None = None, key=MOTO_KEY, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": issuer.issuer,
        "sub": "forged-user",
        "aud": issuer.client_id,
        "exp": now + 600,
        "iat": now,
        "cognito:groups": ["partner-analysts"],
        **claims,
    }
    return jwt.encode({"alg": "RS256", "kid": "dummy", **(header or {})}, payload, key)


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _bad_tokens(issuer) -> dict[str, tuple[str, str]]:
    valid = _sign(issuer)
    head, payload, signature = valid.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered_payload = _b64({**claims, "sub": "someone-else"})
    public_pem = MOTO_KEY.as_pem(private=False)
    # The classic confusion attack: HMAC "signed" with the issuer's public key (libraries refuse to build it).
    hs_input = f"{_b64({'alg': 'HS256', 'kid': 'dummy'})}.{payload}"
    hs_signature = base64.urlsafe_b64encode(hmac.new(public_pem, hs_input.encode(), hashlib.sha256).digest())
    hs256 = f"{hs_input}.{hs_signature.rstrip(b'=').decode()}"
    now = int(time.time())
    return {
        "expired": (_sign(issuer, exp=now - 3600, iat=now - 7200), "token has expired"),
        "not yet valid": (_sign(issuer, nbf=now + 3600), "token is not valid yet"),
        "wrong issuer": (
            _sign(issuer, iss="https://cognito-idp.us-west-2.amazonaws.com/other"),
            "token claim 'iss' is not accepted",
        ),
        "wrong audience": (_sign(issuer, aud="another-client"), "token audience is not accepted"),
        "unknown kid": (_sign(issuer, header={"kid": "rotated-away"}), "token is signed by an unknown key"),
        "tampered": (f"{head}.{tampered_payload}.{signature}", "token signature is invalid"),
        "alg none": (f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.", "token algorithm 'none' is not accepted"),
        "hs256 with the public key": (hs256, "token algorithm 'HS256' is not accepted"),
        "not a jwt": ("not-a-token", "token is not a JWT"),
        "kid not a string": (f"{_b64({'alg': 'RS256', 'kid': 7})}.{payload}.{signature}", "token is not a JWT"),
        "crit header": (f"{_b64({'alg': 'RS256', 'crit': ['x']})}.{payload}.{signature}", "token is not a JWT"),
    }


CASES = [
    "expired",
    "not yet valid",
    "wrong issuer",
    "wrong audience",
    "unknown kid",
    "tampered",
    "alg none",
    "hs256 with the public key",
    "not a jwt",
    "kid not a string",
    "crit header",
]


@pytest.mark.parametrize("case", CASES)
def test_invalid_tokens_are_401(client, issuer, sample_urls, case):
    token, detail = _bad_tokens(issuer)[case]
    response = partner_tile(client, sample_urls, headers=bearer(token))
    assert response.status_code == 401, response.text
    assert response.json()["detail"] == detail
    assert response.headers["www-authenticate"] == (
        f'Bearer realm="raster-api", error="invalid_token", error_description="{detail}"'
    )
    # Even on a public provider: a token that is sent is checked.
    public = client.get(tile_path(), params={"url": sample_urls[OWN_BUCKET]}, headers=bearer(token))
    assert public.status_code == 401


def test_a_token_signed_by_the_issuers_key_is_accepted(client, issuer, sample_urls):
    """The forging helper is right: with the issuer's real key, the same claims pass (so the cases above fail for
    the reason they name)."""
    response = partner_tile(client, sample_urls, headers=bearer(_sign(issuer)))
    assert response.status_code == 200, response.text


def test_the_jwks_is_fetched_once_and_refetched_at_most_once_a_minute(client, issuer, sample_urls, monkeypatch):
    verifier = client.app.state.token_verifier
    assert verifier.fetches == 1  # at start-up
    token = issuer.id_token(MEMBER)
    for _ in range(10):
        assert partner_tile(client, sample_urls, headers=bearer(token)).status_code == 200
    assert verifier.fetches == 1
    unknown = _bad_tokens(issuer)["unknown kid"][0]
    # Within a minute of the last fetch, a key the cache lacks causes no fetch.
    assert partner_tile(client, sample_urls, headers=bearer(unknown)).status_code == 401
    assert verifier.fetches == 1
    later = time.monotonic() + 61
    monkeypatch.setattr("jwt.jwks_client.time", SimpleNamespace(monotonic=lambda: later))  # PyJWT's cooldown clock
    for _ in range(5):
        assert partner_tile(client, sample_urls, headers=bearer(unknown)).status_code == 401
    assert verifier.fetches == 2


def test_an_issuer_outage_keeps_the_keys_and_is_asked_at_most_once_a_minute(client, issuer, sample_urls, monkeypatch):
    verifier = client.app.state.token_verifier
    monkeypatch.setattr(verifier._keys, "uri", f"http://127.0.0.1:{free_port()}/jwks.json")  # nothing listens
    later = time.monotonic() + 61
    monkeypatch.setattr("jwt.jwks_client.time", SimpleNamespace(monotonic=lambda: later))  # PyJWT's cooldown clock
    unknown = _bad_tokens(issuer)["unknown kid"][0]
    for _ in range(5):
        response = partner_tile(client, sample_urls, headers=bearer(unknown))
        assert response.status_code == 401
        assert response.json()["detail"] == "token is signed by an unknown key"
    assert verifier.fetches == 2  # start-up, then one failed refetch: the next four tokens waited for the cooldown
    member = partner_tile(client, sample_urls, headers=bearer(issuer.id_token(MEMBER)))
    assert member.status_code == 200, member.text


def test_an_issuer_answering_a_web_page_keeps_the_keys_and_is_asked_at_most_once_a_minute(
    client, issuer, sample_urls, aws_world, monkeypatch
):
    verifier = client.app.state.token_verifier
    monkeypatch.setattr(verifier._keys, "uri", f"{aws_world.endpoint}/moto-api/")  # 200, HTML: a maintenance page
    later = time.monotonic() + 61
    monkeypatch.setattr("jwt.jwks_client.time", SimpleNamespace(monotonic=lambda: later))  # PyJWT's cooldown clock
    unknown = _bad_tokens(issuer)["unknown kid"][0]
    for _ in range(5):
        assert partner_tile(client, sample_urls, headers=bearer(unknown)).status_code == 401
    assert verifier.fetches == 2
    member = partner_tile(client, sample_urls, headers=bearer(issuer.id_token(MEMBER)))
    assert member.status_code == 200, member.text


def test_access_token_parameter_works_and_is_never_logged(client, issuer, sample_urls, caplog):
    token = issuer.id_token(MEMBER)
    with caplog.at_level(logging.INFO, logger="raster_api.access"):
        response = partner_tile(client, sample_urls, params={"access_token": token})
    assert response.status_code == 200, response.text
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.access"]
    sub = jwt.decode(token, MOTO_KEY).claims["sub"]
    assert records[-1]["user"] == sub
    assert "access_token=[REDACTED]" in records[-1]["query"]
    assert token not in caplog.text and token.split(".")[2] not in caplog.text


@pytest.mark.parametrize("path", [tile_path(), "/cog/WebMercatorQuad/tilejson.json", "/cog/statistics"])
def test_restricted_responses_are_private_and_public_ones_cacheable(client, issuer, sample_urls, path):
    token = issuer.id_token(MEMBER)
    restricted = client.get(path, params={"url": sample_urls[PARTNER_BUCKET]}, headers=bearer(token))
    assert restricted.status_code == 200, restricted.text
    assert restricted.headers["cache-control"] == "private, no-store"
    public = client.get(path, params={"url": sample_urls[OWN_BUCKET]})
    assert public.status_code == 200
    assert public.headers["cache-control"].startswith("public, ")


@pytest.mark.parametrize("path", [tile_path(), "/cog/WebMercatorQuad/tilejson.json", "/cog/WebMercatorQuad/map.html"])
def test_an_answer_to_a_request_carrying_a_token_is_private_even_for_a_public_provider(
    client, issuer, sample_urls, path
):
    """A TileJSON or map page embeds `access_token` in its tile URLs: a shared cache must not keep it for others."""
    token = issuer.id_token(MEMBER)
    for kwargs in ({"headers": bearer(token)}, {"params": {"access_token": token}}):
        params = {"url": sample_urls[OWN_BUCKET], **kwargs.pop("params", {})}
        response = client.get(path, params=params, **kwargs)
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "private, no-store"


def test_providers_lists_restricted_ones_only_to_callers_who_may_read_them(client, issuer):
    anonymous = [p["name"] for p in client.get("/providers").json()]
    assert anonymous == ["daac-a", "own"]
    visitor = client.get("/providers", headers=bearer(issuer.id_token(NO_GROUP_USER))).json()
    assert [p["name"] for p in visitor] == ["daac-a", "daac-b", "own"]
    member = client.get("/providers", headers=bearer(issuer.id_token(MEMBER))).json()
    assert [p["name"] for p in member] == ["daac-a", "daac-b", "partner", "own"]
    assert [p["access"] for p in member] == ["public", "authenticated", ["partner-analysts"], "public"]
    hidden = client.get("/providers/partner")
    assert hidden.status_code == 404
    assert hidden.json()["detail"] == "unknown provider 'partner'"
    assert client.get("/providers/partner", headers=bearer(issuer.id_token(MEMBER))).status_code == 200


def test_a_restricted_provider_without_an_issuer_fails_start_up(api_env, aws_world, monkeypatch):
    monkeypatch.setenv("PROVIDERS_CONFIG", restricted_config(aws_world))
    from raster_api.main import create_app

    with pytest.raises(AuthConfigError) as error:
        create_app()
    assert str(error.value) == (
        "providers 'daac-b', 'partner' restrict access but RASTER_API_AUTH_ISSUER is not set: "
        "refusing to start, since every caller would be anonymous"
    )


def test_a_hostile_algorithm_name_is_not_echoed_into_the_header(client, sample_urls, issuer):
    head = _b64({"alg": 'RS256"\r\nSet-Cookie: x=1', "kid": "dummy"})
    payload = _sign(issuer).split(".")[1]
    response = partner_tile(client, sample_urls, headers=bearer(f"{head}.{payload}.c2ln"))
    assert response.status_code == 401
    assert response.json()["detail"] == "token algorithm 'RS256???Set-Cookie??' is not accepted"
    assert "set-cookie" not in response.headers


def test_an_unknown_provider_name_does_not_reveal_restricted_ones(client, sample_urls):
    response = client.get(tile_path(), params={"url": sample_urls[OWN_BUCKET], "provider": "nope"})
    assert response.status_code == 400
    assert response.json()["detail"] == "unknown provider 'nope'; known providers: daac-a, own"


def test_a_restricted_provider_the_caller_may_not_read_answers_like_an_unknown_one(client, issuer, sample_urls):
    """Named for a bucket it does not serve, a restricted provider is not told apart from a name that does not exist."""
    for headers in ({}, bearer(issuer.id_token(NO_GROUP_USER))):
        response = client.get(
            tile_path(), params={"url": sample_urls[OWN_BUCKET], "provider": "partner"}, headers=headers
        )
        assert response.status_code == 400
        assert response.json()["detail"] == "unknown provider 'partner'; known providers: daac-a, own"
    member = client.get(
        tile_path(),
        params={"url": sample_urls[OWN_BUCKET], "provider": "partner"},
        headers=bearer(issuer.id_token(MEMBER)),
    )
    assert member.status_code == 403
    assert member.json()["detail"] == "provider 'partner' does not serve bucket 'own-data'"
