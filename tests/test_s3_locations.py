"""The canonical object identity: only keys GDAL reads as written can become an `S3Location`."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from providers.s3 import InvalidS3Location, S3Location, gdal_target, parse_s3_url


@given(st.text(min_size=0, max_size=40))
def test_every_location_names_what_gdal_reads(key):
    try:
        location = S3Location("own-data", key)
    except InvalidS3Location:
        return
    assert gdal_target(location.gdal_path) == ("own-data", key)
    assert parse_s3_url(location.url) == location
    assert S3Location.from_gdal_path(location.gdal_path) == location


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("a/../b", "key contains a '.' or '..' path segment"),
        ("./b", "key contains a '.' or '..' path segment"),
        ("a//b", "key contains an empty path segment ('//', or a leading or trailing '/')"),
        ("a/", "key contains an empty path segment ('//', or a leading or trailing '/')"),
        ("a\x00b", "key contains a control character (such as NUL)"),
        ("a\\b", "key contains a backslash"),
        ("a\ud800", "key is not valid UTF-8"),
        ("é" * 513, "key is 1026 bytes long, more than S3's limit of 1024"),
        ("", "names no object key"),
    ],
)
def test_keys_gdal_would_rewrite_are_refused(key, problem):
    with pytest.raises(InvalidS3Location) as refused:
        S3Location("own-data", key)
    assert str(refused.value).endswith(problem)


def test_literal_percent_escapes_and_dots_inside_names_are_kept():
    location = parse_s3_url("s3://own-data/a/%2e%2e/b...tif")
    assert (location.bucket, location.key) == ("own-data", "a/%2e%2e/b...tif")


def test_gdal_target_models_the_rewrites_that_broke_isolation():
    assert gdal_target("/vsis3/own-data/../partner-data/k.tif") == ("partner-data", "k.tif")
    assert gdal_target("/vsis3/own-data/k.tif\x00/../x") == ("own-data", "k.tif")
