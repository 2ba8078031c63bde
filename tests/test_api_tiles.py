"""Tiles for three providers of different kinds, read through the ASGI app with each provider's own credentials."""

import json

import boto3
import numpy as np
import pytest

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET, PARTNER_BUCKET, REGION, moto_server
from local_stack.samples import make_cog
from tests.api_helpers import assert_tile_from, decode_image, sample_tile, tile_path


@pytest.mark.parametrize(
    ("bucket", "provider"),
    [(DAAC_A_BUCKET, "daac-a"), (PARTNER_BUCKET, "partner"), (OWN_BUCKET, "own")],
    ids=["earthdata", "assume_role", "default"],
)
def test_tile_pixels_come_from_the_providers_bucket(api_client, sample_urls, bucket, provider):
    response = api_client.get(tile_path(), params={"url": sample_urls[bucket], "provider": provider})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    assert_tile_from(response.content, bucket)


@pytest.mark.parametrize("bucket", [DAAC_A_BUCKET, PARTNER_BUCKET, OWN_BUCKET])
def test_provider_defaults_to_the_buckets_owner(api_client, sample_urls, bucket):
    response = api_client.get(tile_path(), params={"url": sample_urls[bucket]})
    assert response.status_code == 200, response.text
    assert_tile_from(response.content, bucket)


@pytest.fixture(scope="module")
def public_s3():
    """A second moto server with IAM auth off (moto answers anonymous requests with 500 while auth is on)."""
    with moto_server() as endpoint:
        s3 = boto3.client(
            "s3", endpoint_url=endpoint, region_name=REGION, aws_access_key_id="setup", aws_secret_access_key="setup"
        )
        s3.create_bucket(Bucket="open-data", CreateBucketConfiguration={"LocationConstraint": REGION})
        s3.put_object(Bucket="open-data", Key="cogs/public.tif", Body=make_cog(200), ACL="public-read")
        # Not public: moto (auth off) serves it to any signed request, and refuses only anonymous ones.
        s3.put_object(Bucket="open-data", Key="cogs/private.tif", Body=make_cog(200))
        yield endpoint.removeprefix("http://")


@pytest.fixture
def unsigned_client(api_env, monkeypatch, public_s3, api_client_factory):
    monkeypatch.setenv("AWS_S3_ENDPOINT", public_s3)
    monkeypatch.setenv("PROVIDERS_CONFIG", json.dumps([{"name": "open", "kind": "unsigned", "buckets": ["open-data"]}]))
    return api_client_factory()


def test_unsigned_provider_reads_public_objects(unsigned_client):
    client = unsigned_client
    env = client.app.state.provider_router.gdal_env("open")
    assert (env["AWS_NO_SIGN_REQUEST"], env["AWS_SESSION_TOKEN"]) == ("YES", "")
    assert "AWS_ACCESS_KEY_ID" not in env["session"].get_credential_options()
    response = client.get(tile_path(), params={"url": "s3://open-data/cogs/public.tif"})
    assert response.status_code == 200, response.text
    band, alpha = decode_image(response.content)
    assert (alpha == 255).all() and np.array_equal(band, sample_tile(200))


def test_unsigned_provider_never_signs_with_the_lambdas_keys(unsigned_client):
    response = unsigned_client.get(tile_path(), params={"url": "s3://open-data/cogs/private.tif"})
    assert response.status_code == 403  # a signed request (with the Lambda's keys in the env) would have been served
    assert response.json()["detail"] == "S3 refused provider 'open' read access to s3://open-data/cogs/private.tif"
