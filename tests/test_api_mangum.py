"""The Lambda entry point with real API Gateway HTTP API (payload 2.0) events: binary tiles come back base64."""

import base64
import gzip
import importlib
import json

import pytest

from local_stack.aws_world import DAAC_A_BUCKET, PARTNER_BUCKET
from tests.api_helpers import CONTEXT, assert_tile_from, http_api_event, tile_path


@pytest.fixture
def handler(api_env):
    import raster_api.handler

    return importlib.reload(raster_api.handler).handler  # the app is built at import, after the env is set


def test_png_tile_is_base64_with_the_providers_pixels(handler, sample_urls):
    event = http_api_event(tile_path(), {"url": sample_urls[DAAC_A_BUCKET]}, request_id="apigw-req-42")
    answer = handler(event, CONTEXT)
    assert answer["statusCode"] == 200
    assert answer["isBase64Encoded"] is True
    assert answer["headers"]["content-type"] == "image/png"
    assert answer["headers"]["x-request-id"] == "apigw-req-42"
    assert_tile_from(base64.b64decode(answer["body"]), DAAC_A_BUCKET)


@pytest.mark.parametrize(
    ("fmt", "content_type", "magic"),
    [("jpg", "image/jpg", b"\xff\xd8"), ("webp", "image/webp", b"RIFF"), ("tif", "image/tiff", b"II*\x00")],
)
def test_binary_formats_are_base64(handler, sample_urls, fmt, content_type, magic):
    answer = handler(http_api_event(tile_path(fmt=fmt), {"url": sample_urls[PARTNER_BUCKET]}), CONTEXT)
    assert answer["statusCode"] == 200
    assert answer["isBase64Encoded"] is True
    assert answer["headers"]["content-type"].startswith(content_type)
    assert base64.b64decode(answer["body"]).startswith(magic)


def test_json_is_plain_text(handler, sample_urls):
    answer = handler(http_api_event("/cog/info", {"url": sample_urls[PARTNER_BUCKET]}), CONTEXT)
    assert answer["statusCode"] == 200
    assert answer["isBase64Encoded"] is False
    assert json.loads(answer["body"])["width"] == 512


def test_compressed_json_is_base64(handler, sample_urls):
    event = http_api_event("/cog/info", {"url": sample_urls[PARTNER_BUCKET]}, {"accept-encoding": "gzip"})
    answer = handler(event, CONTEXT)
    assert answer["headers"]["content-encoding"] == "gzip"
    assert answer["isBase64Encoded"] is True
    assert json.loads(gzip.decompress(base64.b64decode(answer["body"])))["width"] == 512


def test_errors_come_back_as_json(handler, sample_urls):
    event = http_api_event(tile_path(), {"url": sample_urls[PARTNER_BUCKET], "provider": "daac-a"})
    answer = handler(event, CONTEXT)
    assert answer["statusCode"] == 403
    assert json.loads(answer["body"])["detail"] == "provider 'daac-a' does not serve bucket 'partner-data'"
