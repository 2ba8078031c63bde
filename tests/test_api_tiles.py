"""Tiles for three providers of different kinds, read through the ASGI app with each provider's own credentials."""

import pytest

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET, PARTNER_BUCKET
from tests.api_helpers import assert_tile_from, tile_path


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
