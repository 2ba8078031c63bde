"""The local AWS world really enforces identity: the ground truth every routing test relies on."""

import pytest
import rasterio
import rasterio.cache
from botocore.exceptions import ClientError
from rasterio.session import AWSSession

from local_stack.aws_world import DAAC_A_BUCKET, DAAC_B_BUCKET, SAMPLE_KEYS


def test_daac_role_reads_only_its_bucket(aws_world, sample_urls, daac_keys):
    s3_a = aws_world.client("s3", daac_keys["daac-a"])
    assert s3_a.get_object(Bucket=DAAC_A_BUCKET, Key=SAMPLE_KEYS[DAAC_A_BUCKET])["ContentLength"] > 0
    with pytest.raises(ClientError) as err:
        s3_a.get_object(Bucket=DAAC_B_BUCKET, Key=SAMPLE_KEYS[DAAC_B_BUCKET])
    assert err.value.response["Error"]["Code"] == "AccessDenied"


def test_gdal_is_refused_with_another_providers_keys(aws_world, sample_urls, daac_keys):
    keys = daac_keys["daac-a"]
    session = AWSSession(
        aws_access_key_id=keys.access_key_id,
        aws_secret_access_key=keys.secret_access_key,
        aws_session_token=keys.session_token,
    )
    path = f"/vsis3/{DAAC_B_BUCKET}/{SAMPLE_KEYS[DAAC_B_BUCKET]}"
    # GDAL's caches are keyed by path, not keys: neither an earlier read nor this refusal may cross tests.
    rasterio.cache.invalidate(path)
    try:
        with rasterio.Env(session, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", **aws_world.gdal_env()):
            with pytest.raises(rasterio.errors.RasterioIOError):
                rasterio.open(path)
    finally:
        rasterio.cache.invalidate(path)
