"""Helpers for the raster API tests: tile coordinates over the samples and the pixels a tile must hold."""

from __future__ import annotations

import functools
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import numpy as np
from morecantile import Tile
from morecantile import tms as tms_registry
from rasterio.io import MemoryFile
from rio_tiler.io import Reader

from local_stack.aws_world import SAMPLE_BASES
from local_stack.samples import make_cog

WEB_MERCATOR = tms_registry.get("WebMercatorQuad")
# Why an object that is not a GeoTIFF is refused (the end of the 400's detail).
NOT_GEOTIFF_REASON = (
    "this API serves GeoTIFF/COG only, because other formats (VRT, netCDF, HDF...) can make GDAL read objects other "
    "than the one requested"
)
# A tile fully inside every sample (bounds -120..-119, 34..35).
TILE_Z = 10
TILE_X, TILE_Y = WEB_MERCATOR.tile(-119.6, 34.5, TILE_Z)[:2]
SAMPLE_LEFT, SAMPLE_SIZE, SAMPLE_DEGREES = -120.0, 512, 1.0


def tile_path(z: int = TILE_Z, x: int = TILE_X, y: int = TILE_Y, fmt: str = "png") -> str:
    return f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.{fmt}"


def decode_image(content: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(first band, alpha mask) of a PNG/WEBP/TIFF body."""
    with MemoryFile(content) as mem, mem.open() as src:
        data = src.read()
    band = data[0]
    alpha = data[-1] if data.shape[0] > 1 else np.full(band.shape, 255, dtype=np.uint8)
    return band, alpha


def expected_tile(base: int, z: int = TILE_Z, x: int = TILE_X, y: int = TILE_Y, size: int = 256) -> np.ndarray:
    """The value each tile column must hold: `base + sample_column // 64` at the column's centre longitude."""
    bounds = WEB_MERCATOR.bounds(Tile(x, y, z))
    lons = bounds.left + (np.arange(size) + 0.5) * (bounds.right - bounds.left) / size
    columns = np.floor((lons - SAMPLE_LEFT) * SAMPLE_SIZE / SAMPLE_DEGREES).astype(int)
    row = base + columns // 64
    return np.broadcast_to(row, (size, size))


@functools.cache
def sample_tile(base: int, x: int = TILE_X, y: int = TILE_Y, z: int = TILE_Z) -> np.ndarray:
    """The tile of a sample COG (`make_cog(base)`) as rio-tiler reads it from the same bytes, without the API."""
    with MemoryFile(make_cog(base)) as mem, Reader(mem.name) as cog:
        return cog.tile(x, y, z).data[0]


def assert_image_from(content: bytes, base: int, method: str, *args: Any, **kwargs: Any) -> None:
    """The image's pixels and mask are exactly what rio-tiler's `method` (preview, part, feature) gives for the sample
    `make_cog(base)`, read from the same bytes without the API."""
    with MemoryFile(make_cog(base)) as mem, Reader(mem.name) as cog:
        expected = getattr(cog, method)(*args, **kwargs)
    band, alpha = decode_image(content)
    assert band.shape == expected.data[0].shape, (band.shape, expected.data[0].shape)
    assert np.array_equal(alpha, expected.mask), "the valid pixels differ"
    assert np.array_equal(band[alpha > 0], expected.data[0][expected.mask > 0]), "the pixel values differ"


def assert_tile_from(content: bytes, bucket: str, x: int = TILE_X, y: int = TILE_Y, z: int = TILE_Z) -> None:
    """The tile is fully valid and its pixels are exactly `bucket`'s sample (as rio-tiler reads the same bytes)."""
    band, alpha = decode_image(content)
    assert (alpha == 255).all(), "tile should be fully inside the sample"
    expected = sample_tile(SAMPLE_BASES[bucket], x, y, z)
    assert np.array_equal(band, expected), f"pixels {band.min()}..{band.max()} are not {bucket}'s sample"


def private_secret_config(world, secret_id: str, provider: str = "daac-a") -> str:
    """`PROVIDERS_CONFIG` where `provider` reads its keys from `secret_id` (a secret only this test writes)."""
    import json

    from local_stack.aws_world import providers_config

    config = providers_config(world)
    for entry in config:
        if entry["name"] == provider:
            entry["secret_id"] = secret_id
    return json.dumps(config)


def earthdata_json(keys, expiration: str | None = None) -> dict[str, str]:
    """The secret value for `keys`, optionally with another `expiration`."""
    value = keys.earthdata_json()
    if expiration is not None:
        value["expiration"] = expiration
    return value


def fresh_object(world, bucket: str) -> str:
    """Upload a copy of `bucket`'s sample under a new key; returns its s3:// URL.

    GDAL caches bytes and refusals by path for the whole process: a test about what S3 answers needs a path that no
    earlier test has read.
    """
    import uuid

    from local_stack.samples import make_cog

    key = f"api-tests/{uuid.uuid4().hex}.tif"
    world.put_object(bucket, key, make_cog(SAMPLE_BASES[bucket]))
    return f"s3://{bucket}/{key}"


def presigned_signature_valid(url: str, secret_access_key: str) -> bool:
    """Recompute a SigV4 query signature (GET, host header only, unsigned payload), as S3 does on receipt: every
    query parameter but the signature itself is covered."""
    import hashlib
    import hmac
    from urllib.parse import parse_qsl, quote, urlsplit

    parts = urlsplit(url)
    params = parse_qsl(parts.query, keep_blank_values=True)
    values = dict(params)
    canonical_query = "&".join(
        f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params) if k != "X-Amz-Signature"
    )
    canonical_request = "\n".join(
        [
            "GET",
            parts.path,
            canonical_query,
            f"host:{parts.netloc}",
            "",
            values["X-Amz-SignedHeaders"],
            "UNSIGNED-PAYLOAD",
        ]
    )
    scope = values["X-Amz-Credential"].split("/", 1)[1]
    string_to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", values["X-Amz-Date"], scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = ("AWS4" + secret_access_key).encode()
    for part in scope.split("/"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, values["X-Amz-Signature"])


# API Gateway HTTP API (payload 2.0) events, as the Lambda handler receives them.
HOST = "abc123.execute-api.us-west-2.amazonaws.com"


def http_api_event(path: str, query: dict[str, str], headers: dict[str, str] | None = None, request_id="rid-1"):
    """An API Gateway HTTP API v2 event as Lambda receives it."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": urlencode(query),
        "cookies": [],
        "headers": {"host": HOST, "user-agent": "pytest", "x-forwarded-proto": "https", **(headers or {})},
        "queryStringParameters": query,
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": HOST,
            "domainPrefix": "abc123",
            "http": {
                "method": "GET",
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "pytest",
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "23/Nov/2026:19:50:00 +0000",
            "timeEpoch": 1795290600000,
        },
        "isBase64Encoded": False,
    }


CONTEXT = SimpleNamespace(
    function_name="raster-api", aws_request_id="lambda-req", get_remaining_time_in_millis=lambda: 30000
)
