"""The Lambda entry point with real API Gateway HTTP API (payload 2.0) events: binary tiles come back base64."""

import base64
import gzip
import importlib
import json
import threading

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


def test_tiles_after_the_first_start_no_thread(handler, sample_urls, monkeypatch):
    """Plain Mangum runs each event as its own root task, and anyio ends the worker thread it started for it: every
    invocation started a thread, whose first coordinate transformation built PROJ's per-thread context again (about
    1 ms). After the first tile, this handler starts no thread."""
    event = http_api_event(tile_path(), {"url": sample_urls[DAAC_A_BUCKET]})
    assert handler(event, CONTEXT)["statusCode"] == 200
    started: list[str] = []
    real_start = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        started.append(thread.name)
        real_start(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    for _ in range(5):
        answer = handler(event, CONTEXT)
        assert answer["statusCode"] == 200
        assert_tile_from(base64.b64decode(answer["body"]), DAAC_A_BUCKET)
    assert started == []


def test_an_exception_in_the_app_is_a_500_and_the_next_event_is_served():
    from fastapi import FastAPI

    from raster_api.lambda_loop import OneLoopMangum

    app = FastAPI()

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("bug")

    @app.get("/ok")
    def ok() -> dict[str, str]:
        return {"thread": threading.current_thread().name}

    handler = OneLoopMangum(app)
    assert handler(http_api_event("/boom", {}), CONTEXT)["statusCode"] == 500
    answers = [handler(http_api_event("/ok", {}), CONTEXT) for _ in range(3)]
    assert [a["statusCode"] for a in answers] == [200, 200, 200]
    assert len({a["body"] for a in answers}) == 1  # one worker thread served all three
    with pytest.raises(ValueError, match="no lifespan"):
        OneLoopMangum(app, lifespan="auto")
