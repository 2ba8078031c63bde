"""Provider credentials: cached, refreshed ahead of expiry, never a fallback identity, recovered after rotation.

Tests that rewrite a secret use one that only they read (`private_secret_config`), never the session's shared ones.
"""

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
import rasterio
from rasterio.errors import RasterioIOError

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET, PARTNER_BUCKET
from providers import Provider, ProviderKind
from raster_api.credentials import AwsCredentials, CredentialCache
from raster_api.reading import ReadScope
from raster_api.routing import ProviderRouter
from raster_api.settings import CredentialSettings, Settings
from tests.api_helpers import assert_tile_from, earthdata_json, fresh_object, private_secret_config, tile_path


@pytest.fixture
def private_secret(api_env, aws_world, daac_keys, monkeypatch):
    """daac-a reads its keys from a fresh secret (holding good keys until the test rewrites it)."""
    secret_id = f"raster/providers/api-test-{uuid.uuid4().hex[:8]}"
    aws_world.put_secret(secret_id, daac_keys["daac-a"].earthdata_json())
    monkeypatch.setenv("PROVIDERS_CONFIG", private_secret_config(aws_world, secret_id))
    monkeypatch.setenv("RASTER_API_CREDENTIALS_FAILURE_BACKOFF", "0")
    monkeypatch.setenv("RASTER_API_CREDENTIALS_FORCED_REFRESH_INTERVAL", "0")
    return secret_id


def _past() -> str:
    return (datetime.now(UTC) - timedelta(minutes=5)).isoformat(sep=" ", timespec="seconds")


def test_expired_credentials_are_503_with_retry_after(
    private_secret, aws_world, daac_keys, api_client_factory, sample_urls
):
    aws_world.put_secret(private_secret, earthdata_json(daac_keys["daac-a"], expiration=_past()))
    response = api_client_factory().get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET]})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    detail = response.json()["detail"]
    assert detail.startswith("credentials for provider 'daac-a' are unavailable (credentials expired at")


def test_rotation_after_expiry_recovers_on_the_next_request(
    private_secret, aws_world, daac_keys, api_client_factory, sample_urls
):
    aws_world.put_secret(private_secret, earthdata_json(daac_keys["daac-a"], expiration=_past()))
    api_client = api_client_factory()
    assert api_client.get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET]}).status_code == 503
    aws_world.put_secret(private_secret, aws_world.assume("daac-a-s3").earthdata_json())
    response = api_client.get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET]})
    assert response.status_code == 200, response.text
    assert_tile_from(response.content, DAAC_A_BUCKET)


def test_missing_secret_is_503_and_never_falls_back_to_the_lambda_identity(
    api_env, aws_world, monkeypatch, api_client_factory, sample_urls
):
    monkeypatch.setenv("PROVIDERS_CONFIG", private_secret_config(aws_world, "raster/providers/does-not-exist"))
    response = api_client_factory().get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET]})
    assert response.status_code == 503
    assert response.headers["cache-control"] == "no-store"  # a CDN must not keep an outage
    assert response.json()["detail"] == (
        "credentials for provider 'daac-a' are unavailable "
        "(cannot read secret 'raster/providers/does-not-exist': ResourceNotFoundException); retry later"
    )


def test_failed_refresh_keeps_serving_still_valid_credentials(
    private_secret, aws_world, monkeypatch, api_client_factory, sample_urls
):
    monkeypatch.setenv("RASTER_API_CREDENTIALS_REFRESH_INTERVAL", "0")  # every request refreshes
    client = api_client_factory()
    assert client.get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET]}).status_code == 200
    aws_world.put_secret(private_secret, "this is not JSON")
    response = client.get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET]})
    assert response.status_code == 200, response.text
    assert_tile_from(response.content, DAAC_A_BUCKET)
    health = client.get("/providers/daac-a").json()["credentials"]
    assert health["available"] is True
    assert health["last_error"] == f"secret {private_secret!r} is not valid s3credentials JSON (value)"


def test_read_refused_by_s3_is_403_saying_so(private_secret, aws_world, daac_keys, api_client_factory):
    url = fresh_object(aws_world, DAAC_A_BUCKET)
    aws_world.put_secret(private_secret, daac_keys["daac-b"].earthdata_json())  # keys S3 refuses for this bucket
    response = api_client_factory().get(tile_path(), params={"url": url})
    assert response.status_code == 403
    assert response.json()["detail"] == f"S3 refused provider 'daac-a' read access to {url}"


def test_read_refused_by_s3_is_retried_with_fresh_credentials(private_secret, aws_world, daac_keys, api_client_factory):
    url = fresh_object(aws_world, DAAC_A_BUCKET)
    aws_world.put_secret(private_secret, daac_keys["daac-b"].earthdata_json())
    api_client = api_client_factory()
    assert api_client.get(tile_path(), params={"url": url}).status_code == 403  # the cache now holds refused keys
    # The rotator fixes the secret. The cached keys are still "fresh" (refresh interval 300 s): only the retry after
    # S3's refusal fetches the new ones, and neither the old keys nor GDAL's cached 403 fail this request.
    aws_world.put_secret(private_secret, daac_keys["daac-a"].earthdata_json())
    response = api_client.get(tile_path(), params={"url": url})
    assert response.status_code == 200, response.text
    assert_tile_from(response.content, DAAC_A_BUCKET)


def test_rotation_clears_a_cached_403_for_the_providers_buckets(private_secret, aws_world, daac_keys, monkeypatch):
    monkeypatch.setenv("RASTER_API_CREDENTIALS_REFRESH_INTERVAL", "0")  # every gdal_env() re-reads the secret
    router = ProviderRouter.from_settings(Settings())
    url = fresh_object(aws_world, DAAC_A_BUCKET)
    path = ReadScope(router).resolve(url).gdal_path
    aws_world.put_secret(private_secret, daac_keys["daac-b"].earthdata_json())
    with pytest.raises(RasterioIOError), rasterio.Env(**router.gdal_env("daac-a")):
        rasterio.open(path)
    aws_world.put_secret(private_secret, daac_keys["daac-a"].earthdata_json())
    # Without clearing GDAL's cache on rotation this first read fails with a cached "HTTP response code: 403".
    with rasterio.Env(**router.gdal_env("daac-a")), rasterio.open(path) as src:
        assert src.read(1, window=((0, 1), (0, 1)))[0, 0] == 10


def test_first_tiles_after_start_up_fetch_no_credentials(api_app, api_client, sample_urls):
    """Fetched during start-up (Lambda's init phase): no tile, not even the first, waits for Secrets Manager/STS."""
    cache = api_app.state.provider_router.credential_cache
    calls: dict[str, int] = {}

    def counting(fetch):
        def wrapper(provider):
            calls[provider.name] = calls.get(provider.name, 0) + 1
            return fetch(provider)

        return wrapper

    cache.fetchers = {kind: counting(fetch) for kind, fetch in cache.fetchers.items()}
    for _ in range(5):
        for bucket in (DAAC_A_BUCKET, PARTNER_BUCKET, OWN_BUCKET):
            assert api_client.get(tile_path(), params={"url": sample_urls[bucket]}).status_code == 200
    assert calls == {}
    assert all(api_client.get(f"/providers/{name}").json()["credentials"]["available"] for name in ("daac-a", "own"))


# --- the cache on its own: concurrency and refresh timing ------------------------------------------------------

PROVIDER = Provider(name="p", kind=ProviderKind.DEFAULT, buckets=("b",))


def _creds(seconds_left: float, key: str = "AKIAEXAMPLE") -> AwsCredentials:
    return AwsCredentials(key, "secret", "token", datetime.now(UTC) + timedelta(seconds=seconds_left))


def test_concurrent_requests_share_one_refresh():
    calls = []

    def slow_fetch(provider):
        calls.append(provider.name)
        time.sleep(0.3)
        return _creds(3600)

    cache = CredentialCache([PROVIDER], CredentialSettings(), fetchers={ProviderKind.DEFAULT: slow_fetch})
    results = []
    threads = [threading.Thread(target=lambda: results.append(cache.get("p"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert len(results) == 8 and len(set(results)) == 1


def test_credentials_are_refreshed_ahead_of_expiration():
    answers = iter([_creds(200, "AKIAOLD"), _creds(3600, "AKIANEW")])
    settings = CredentialSettings(refresh_margin=300, near_expiry_recheck=0)
    cache = CredentialCache([PROVIDER], settings, fetchers={ProviderKind.DEFAULT: lambda p: next(answers)})
    assert cache.get("p").access_key_id == "AKIAOLD"
    assert cache.get("p").access_key_id == "AKIANEW"  # 200 s left < 300 s margin: refreshed


def test_fresh_credentials_are_not_refetched():
    calls = []
    cache = CredentialCache(
        [PROVIDER], CredentialSettings(), fetchers={ProviderKind.DEFAULT: lambda p: calls.append(1) or _creds(3600)}
    )
    for _ in range(20):
        cache.get("p")
    assert len(calls) == 1


def test_rotation_is_reported_once_per_key_change():
    answers = iter([_creds(3600, "AKIAONE"), _creds(3600, "AKIAONE"), _creds(3600, "AKIATWO")])
    rotated = []
    cache = CredentialCache(
        [PROVIDER],
        CredentialSettings(refresh_interval=0),
        fetchers={ProviderKind.DEFAULT: lambda p: next(answers)},
        on_rotation=lambda p: rotated.append(p.name),
    )
    for _ in range(3):
        cache.get("p")
    assert rotated == ["p"]


def test_a_burst_of_refused_reads_forces_at_most_one_refresh_per_interval(
    private_secret, aws_world, daac_keys, monkeypatch, api_client_factory
):
    monkeypatch.setenv("RASTER_API_CREDENTIALS_FORCED_REFRESH_INTERVAL", "60")
    aws_world.put_secret(private_secret, daac_keys["daac-b"].earthdata_json())  # valid keys S3 refuses here
    client = api_client_factory()
    cache = client.app.state.provider_router.credential_cache
    fetches: list[str] = []
    fetch = cache.fetchers[ProviderKind.EARTHDATA]
    cache.fetchers[ProviderKind.EARTHDATA] = lambda provider: fetches.append(provider.name) or fetch(provider)
    assert client.get("/providers/daac-a").json()["credentials"]["last_forced_refresh"] is None
    for _ in range(10):
        url = fresh_object(aws_world, DAAC_A_BUCKET)
        response = client.get(tile_path(), params={"url": url})
        assert response.status_code == 403
        assert response.json()["detail"] == f"S3 refused provider 'daac-a' read access to {url}"
    assert fetches == ["daac-a"]
    assert client.get("/providers/daac-a").json()["credentials"]["last_forced_refresh"] is not None
