"""Provider isolation: concurrent mixed-provider reads never cross, GDAL caches never serve another provider, and a
provider's keys never travel with the Lambda's own session token."""

import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.session import AWSSession
from rio_tiler.io import Reader
from rio_tiler.utils import inherit_rasterio_env

from local_stack.aws_world import DAAC_A_BUCKET, DAAC_B_BUCKET, OWN_BUCKET, PARTNER_BUCKET, SAMPLE_BASES
from providers import ProviderKind, load_providers
from raster_api.credentials import AwsCredentials, CredentialCache
from raster_api.reading import ReadScope
from raster_api.routing import ProviderRouter
from raster_api.settings import Settings
from tests.api_helpers import TILE_X, TILE_Y, TILE_Z, assert_tile_from, fresh_object, sample_tile, tile_path

OWNERS = {DAAC_A_BUCKET: "daac-a", DAAC_B_BUCKET: "daac-b", PARTNER_BUCKET: "partner", OWN_BUCKET: "own"}


def test_concurrent_mixed_provider_requests_never_cross(api_client, sample_urls, caplog):
    caplog.set_level(logging.INFO, logger="raster_api.access")
    jobs = [(bucket, TILE_X + dx) for _ in range(3) for bucket in OWNERS for dx in (0, 1)]

    def fetch(job):
        bucket, x = job
        return bucket, x, api_client.get(tile_path(x=x), params={"url": sample_urls[bucket]})

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(fetch, jobs))
    for bucket, x, response in results:
        assert response.status_code == 200, response.text
        assert_tile_from(response.content, bucket, x=x)
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.access"]
    reads = {(line["provider"], line["bucket"]) for line in lines if line["bucket"]}
    assert reads == {(provider, bucket) for bucket, provider in OWNERS.items()}


def test_another_provider_is_refused_before_gdal_even_when_bytes_are_cached(api_client, sample_urls):
    url = sample_urls[DAAC_A_BUCKET]
    assert api_client.get(tile_path(), params={"url": url, "provider": "daac-a"}).status_code == 200  # now cached
    response = api_client.get(tile_path(), params={"url": url, "provider": "daac-b"})
    assert response.status_code == 403
    assert response.json()["detail"] == "provider 'daac-b' does not serve bucket 'daac-a-protected'"


@pytest.fixture
def static_key_router(api_env, aws_world):
    """A router whose `default` provider has static keys without a session token (an IAM user's)."""
    providers = load_providers(os.environ["PROVIDERS_CONFIG"])
    admin = aws_world.admin
    cache = CredentialCache(
        providers,
        fetchers={ProviderKind.DEFAULT: lambda p: AwsCredentials(admin.access_key_id, admin.secret_access_key)},
    )
    return ProviderRouter(providers, cache)


def test_keys_are_never_combined_with_the_lambdas_session_token(static_key_router, aws_world, lambda_keys):
    assert os.environ["AWS_SESSION_TOKEN"] == lambda_keys.session_token  # as on Lambda
    path = ReadScope(static_key_router).resolve(fresh_object(aws_world, OWN_BUCKET)).gdal_path
    with rasterio.Env(**static_key_router.gdal_env("own")), rasterio.open(path) as src:
        assert src.read(1, window=((0, 1), (0, 1)))[0, 0] == 110


def test_gdal_alone_would_combine_keys_with_the_environments_token(api_env, aws_world):
    """The hazard the explicit token guards against (if this passes, the test above tests something real)."""
    admin = aws_world.admin
    path = fresh_object(aws_world, OWN_BUCKET).replace("s3://", "/vsis3/")
    session = AWSSession(aws_access_key_id=admin.access_key_id, aws_secret_access_key=admin.secret_access_key)
    with pytest.raises(RasterioIOError), rasterio.Env(session, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
        rasterio.open(path)


def test_provider_env_reaches_rio_tiler_worker_threads(api_env, aws_world):
    """rio-tiler's worker threads read with the provider's keys (the process identity could not read DAAC A)."""
    router = ProviderRouter.from_settings(Settings())
    path = ReadScope(router).resolve(fresh_object(aws_world, DAAC_A_BUCKET)).gdal_path

    def read_tile():
        with Reader(path) as src:
            return src.tile(TILE_X, TILE_Y, TILE_Z), src.statistics()

    with rasterio.Env(**router.gdal_env("daac-a")):
        task = inherit_rasterio_env(read_tile)  # what rio-tiler wraps each worker-thread read with
    with ThreadPoolExecutor(max_workers=2) as pool:
        image, stats = pool.submit(task).result()
    assert np.array_equal(image.data[0], sample_tile(SAMPLE_BASES[DAAC_A_BUCKET]))
    assert stats["b1"].min == 10 and stats["b1"].max == 17
