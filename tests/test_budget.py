"""Bounded cost: hostile but valid requests are refused from the dataset's header and the request's counts, before
any pixel is read (checked on the wire: only the GETs of the open reach S3), with a 400 naming what to change and
the limit; a request past its deadline is a 503 with Retry-After; the access log names the budget hit."""

from __future__ import annotations

import io
import json
import logging
import uuid

import numpy as np
import pytest
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds

from local_stack.aws_world import OWN_BUCKET
from local_stack.samples import make_hostile_geotiff
from tests.api_helpers import TILE_X, TILE_Y, TILE_Z, tile_path

HUGE = 131072


@pytest.fixture(scope="module")
def hostile(aws_world):
    """s3:// URLs of the rasters strangers find: huge without overviews, 300 bands, 22 bands with statistics tags."""
    objects = {
        "cog": make_hostile_geotiff(1, 1024),
        "huge-no-overviews": make_hostile_geotiff(1, HUGE, overviews=False),
        "bands-300": make_hostile_geotiff(300, 256),
        "bands-22-tagged": make_hostile_geotiff(22, 256, statistics_tags=True),
    }
    return aws_world.put_rasters(OWN_BUCKET, "hostile", objects)


def _fresh_copy(aws_world, url: str) -> str:
    """The same bytes under a key no GDAL cache has seen (so the wire shows the open's GETs)."""
    key = url.split("/", 3)[3]
    body = aws_world.client("s3").get_object(Bucket=OWN_BUCKET, Key=key)["Body"].read()
    fresh = f"hostile/fresh/{uuid.uuid4().hex}.tif"
    aws_world.put_object(OWN_BUCKET, fresh, body)
    return f"s3://{OWN_BUCKET}/{fresh}"


def _opening_gets(aws_world, client, url: str) -> int:
    """S3 GETs of opening `url` (a fresh copy of it) and reading no pixel: `/info`."""
    response, gets = _s3_gets(aws_world, client, "/cog/info", params={"url": _fresh_copy(aws_world, url)})
    assert response.status_code == 200
    return len(gets)


def _s3_gets(aws_world, client, path: str, **kwargs):
    with aws_world.recording.capture() as wire:
        response = client.request(kwargs.pop("method", "GET"), path, **kwargs)
    return response, [r for r in wire.s3_requests() if r.method == "GET"]


OUTPUT_LIMIT = (
    "above the 64 MB a request may produce (RASTER_API_MAX_OUTPUT_BYTES): ask for fewer bands (bidx, expression) or "
    "fewer pixels (tilesize, max_size, width/height)"
)


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (
            {"tilesize": 512, "expression": ";".join(["b1"] * 666)},
            f"the output would be 666 band(s) of 512x512 px (1,332 MB decoded), {OUTPUT_LIMIT}",
        ),
        (
            {"tilesize": 512, "bidx": ["1"] * 1000},
            f"the output would be 1000 band(s) of 512x512 px (250 MB decoded), {OUTPUT_LIMIT}",
        ),
    ],
    ids=["666-expression-blocks", "bidx-1000-times"],
)
def test_a_huge_output_is_refused_before_any_pixel_is_read(api_client, aws_world, hostile, params, detail):
    url = _fresh_copy(aws_world, hostile["cog"])
    response, gets = _s3_gets(aws_world, api_client, tile_path(), params={"url": url, **params})
    assert response.status_code == 400
    assert response.json()["detail"] == detail
    assert len(gets) == _opening_gets(aws_world, api_client, hostile["cog"])  # the open's: no pixel


def test_many_bands_at_a_large_size_are_refused(api_client, aws_world, hostile):
    url = _fresh_copy(aws_world, hostile["bands-300"])
    response, gets = _s3_gets(aws_world, api_client, tile_path(fmt="npy"), params={"url": url, "tilesize": 1024})
    assert response.status_code == 400
    assert (
        response.json()["detail"] == f"the output would be 300 band(s) of 1024x1024 px (300 MB decoded), {OUTPUT_LIMIT}"
    )
    assert len(gets) == 1


@pytest.mark.parametrize(
    ("route", "needs"),
    [(tile_path(5, 5, 12), "16,384"), ("/cog/preview.png", "16,384"), ("/cog/statistics", "16,384")],
    ids=["z5-tile", "preview", "statistics"],
)
def test_a_huge_raster_without_overviews_is_refused_saying_how_to_add_them(
    api_client, aws_world, hostile, route, needs
):
    url = _fresh_copy(aws_world, hostile["huge-no-overviews"])
    response, gets = _s3_gets(aws_world, api_client, route, params={"url": url})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"reading this from {url} needs {needs} MB of pixels, above the 256 MB a request may read "
        "(RASTER_API_MAX_SOURCE_BYTES): it has no overview for this scale. Add overviews (`rio cogeo create`, or "
        "`gdaladdo`), or ask for a smaller area or fewer bands"
    )
    assert len(gets) == _opening_gets(aws_world, api_client, hostile["huge-no-overviews"])


def test_an_expression_over_22_tagged_bands_is_answered(api_client, hostile):
    """rio-tiler would estimate the output range from every min/max combination of the bands' STATISTICS_* tags
    (2^22 evaluations); beyond 8 bands the estimate is skipped."""
    expression = "+".join(f"b{i}" for i in range(1, 23))
    response = api_client.get(
        tile_path(fmt="npy"), params={"url": hostile["bands-22-tagged"], "expression": expression}
    )
    assert response.status_code == 200, response.text
    data = np.load(io.BytesIO(response.content))
    assert data.shape == (2, 256, 256)
    assert set(np.unique(data[0])) == {22 * 7.0}


def test_an_expression_naming_too_many_bands_is_refused(api_client, hostile):
    expression = "+".join(f"b{i}" for i in range(1, 34))
    response = api_client.get(tile_path(), params={"url": hostile["bands-300"], "expression": expression})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "expression names 33 distinct bands, more than 32 (RASTER_API_MAX_EXPRESSION_BANDS)"
    )


def _square(x: float, y: float, size: float = 0.001) -> dict:
    ring = [[x, y], [x + size, y], [x + size, y + size], [x, y + size], [x, y]]
    return {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}


def test_a_body_with_too_many_features_is_refused(api_client, hostile):
    body = {"type": "FeatureCollection", "features": [_square(-119.9 + i * 0.002, 34.5) for i in range(101)]}
    response = api_client.post("/cog/statistics", params={"url": hostile["cog"]}, json=body)
    assert response.status_code == 400
    assert response.json()["detail"] == "the body holds 101 features, more than 100 (RASTER_API_MAX_FEATURES)"


def test_a_body_with_too_many_vertices_is_refused(api_client, hostile):
    ring = [[-119.5 + 0.1 * np.cos(a), 34.5 + 0.1 * np.sin(a)] for a in np.linspace(0, 2 * np.pi, 50_001)]
    ring[-1] = ring[0]
    body = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    response = api_client.post("/cog/statistics", params={"url": hostile["cog"]}, json=body)
    assert response.status_code == 400
    assert response.json()["detail"] == "the body holds 50001 positions, more than 50000 (RASTER_API_MAX_VERTICES)"


def test_the_source_budget_is_summed_over_a_requests_features(api_env, api_client_factory, monkeypatch, hostile):
    monkeypatch.setenv("RASTER_API_MAX_SOURCE_BYTES", str(2**20))  # 1 MB: four features of 2x2 blocks each
    client = api_client_factory()
    body = {"type": "FeatureCollection", "features": [_square(-119.99 + i * 0.19, 34.01, 0.2) for i in range(5)]}
    response = client.post("/cog/statistics", params={"url": hostile["cog"]}, json=body)
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"reading this from {hostile['cog']} needs 0.2 MB of pixels (after 1.0 MB by its other reads), above the 1.0 "
        "MB a request may read (RASTER_API_MAX_SOURCE_BYTES): ask for a smaller area, fewer bands, features or items"
    )


def test_past_its_deadline_a_request_is_503_and_the_log_names_the_budget(api_env, hostile, caplog):
    """The clock is the access-log middleware's: here one that has moved 21 s on once the request has started."""
    from fastapi.testclient import TestClient

    from raster_api.main import create_app
    from raster_api.middleware import RequestMiddleware

    readings = iter([0.0])
    app = create_app()
    for middleware in app.user_middleware:
        if middleware.cls is RequestMiddleware:
            middleware.kwargs["clock"] = lambda: next(readings, 21.0)
    client = TestClient(app, raise_server_exceptions=False)
    with caplog.at_level(logging.INFO, logger="raster_api.access"):
        response = client.get(tile_path(), params={"url": hostile["cog"]})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "30"
    assert response.json()["detail"] == (
        "the request worked past its 20 s deadline (RASTER_API_REQUEST_DEADLINE) and was stopped; retry later, or "
        "ask for less (a smaller area, fewer bands, items or features)"
    )
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.access"]
    assert records[-1]["budget"] == "request_deadline"


def test_a_normal_tile_still_passes_every_budget(api_client, hostile, caplog):
    with caplog.at_level(logging.INFO, logger="raster_api.access"):
        response = api_client.get(tile_path(TILE_Z, TILE_X, TILE_Y), params={"url": hostile["cog"]})
    assert response.status_code == 200
    records = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.access"]
    assert records[-1]["budget"] is None


def _write(path, width: int, height: int, count: int = 1, **profile) -> bytes:
    base = {
        "driver": "GTiff",
        "width": width,
        "height": height,
        "count": count,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": from_bounds(-120.0, 34.0, -119.0, 35.0, width, height),
        "compress": "DEFLATE",
    }
    with rasterio.open(path, "w", **{**base, **profile}) as dst:
        dst.write(np.full((count, height, width), 7, dtype="uint8"))
    return path.read_bytes()


@pytest.fixture(scope="module")
def layouts(aws_world, tmp_path_factory):
    """Layouts whose cost is not what their blocks say: one 2048 px tile, one compressed strip, 16 bands
    interleaved by pixel (and the same bands by band)."""
    tmp = tmp_path_factory.mktemp("layouts")
    objects = {
        "one-tile": _write(tmp / "a.tif", 2048, 2048, tiled=True, blockxsize=2048, blockysize=2048),
        "one-strip": _write(tmp / "b.tif", 2048, 2048, tiled=False, blockysize=2048),
        "pixel-interleaved": _write(tmp / "c.tif", 512, 512, 16, tiled=True, blockxsize=256, blockysize=256),
        "band-interleaved": _write(
            tmp / "d.tif", 512, 512, 16, tiled=True, blockxsize=256, blockysize=256, interleave="band"
        ),
    }
    return aws_world.put_rasters(OWN_BUCKET, "layouts", objects)


@pytest.fixture
def small_budget_client(api_env, api_client_factory, monkeypatch):
    monkeypatch.setenv("RASTER_API_MAX_SOURCE_BYTES", str(2**20))  # 1 MB
    return api_client_factory()


SOURCE_LIMIT = "above the 1.0 MB a request may read (RASTER_API_MAX_SOURCE_BYTES)"


def test_a_point_is_priced_by_the_block_it_decodes(small_budget_client, layouts):
    response = small_budget_client.get("/cog/point/-119.5,34.5", params={"url": layouts["one-tile"]})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"reading this from {layouts['one-tile']} needs 4.0 MB of pixels, {SOURCE_LIMIT}: its compressed blocks span "
        "the whole width (strips, or one tile), decoded from their first row. Convert it to a COG (`rio cogeo "
        "create`), or ask for a smaller area or fewer bands"
    )


def test_a_compressed_strip_is_priced_from_its_first_row(small_budget_client, layouts):
    near_the_bottom = "/cog/bbox/-119.6,34.0,-119.5,34.05/64x64.png"
    response = small_budget_client.get(near_the_bottom, params={"url": layouts["one-strip"]})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        f"reading this from {layouts['one-strip']} needs 4.0 MB of pixels, {SOURCE_LIMIT}: its compressed blocks "
        "span the whole width (strips, or one tile), decoded from their first row. Convert it to a COG (`rio cogeo "
        "create`), or ask for a smaller area or fewer bands"
    )
    near_the_top = small_budget_client.get(
        "/cog/bbox/-119.6,34.97,-119.5,35.0/64x64.png", params={"url": layouts["one-strip"]}
    )
    assert near_the_top.status_code == 200, near_the_top.text


def test_bands_interleaved_by_pixel_are_all_decoded(small_budget_client, layouts):
    params = {"bidx": "1", "max_size": "512"}
    by_pixel = small_budget_client.get("/cog/preview.png", params={"url": layouts["pixel-interleaved"], **params})
    assert by_pixel.status_code == 400
    assert by_pixel.json()["detail"].startswith(
        f"reading this from {layouts['pixel-interleaved']} needs 4.0 MB of pixels, {SOURCE_LIMIT}"
    )
    by_band = small_budget_client.get("/cog/preview.png", params={"url": layouts["band-interleaved"], **params})
    assert by_band.status_code == 200, by_band.text


def test_bounds_that_do_not_transform_are_priced_as_the_whole_dataset(api_client, sample_urls):
    """A bbox far outside a projection's domain transforms to inf/NaN: never a 500."""
    path = "/cog/bbox/-100000000,-100000000,100000000,100000000/64x64.png"
    response = api_client.get(path, params={"url": sample_urls[OWN_BUCKET], "coord_crs": "EPSG:3035"})
    assert response.status_code == 200, response.text  # the sample (512 px) is within every budget


def test_a_gcp_georeferenced_strip_is_priced_from_its_source(small_budget_client, aws_world, tmp_path):
    """rio-tiler reads a GCP dataset through a warped VRT, whose own blocks are small: the source's strip decides."""
    from rasterio.control import GroundControlPoint

    path = tmp_path / "gcp-strip.tif"
    profile = {"driver": "GTiff", "width": 2048, "height": 2048, "count": 1, "dtype": "uint8", "compress": "DEFLATE"}
    with rasterio.open(path, "w", tiled=False, blockysize=2048, **profile) as dst:
        dst.write(np.full((1, 2048, 2048), 7, dtype="uint8"))
        corners = [(0, 0, -120.0, 35.0), (0, 2048, -119.0, 35.0), (2048, 0, -120.0, 34.0), (2048, 2048, -119.0, 34.0)]
        dst.gcps = ([GroundControlPoint(r, c, x, y) for r, c, x, y in corners], rasterio.crs.CRS.from_epsg(4326))
    aws_world.put_object(OWN_BUCKET, "layouts/gcp-strip.tif", path.read_bytes())
    url = f"s3://{OWN_BUCKET}/layouts/gcp-strip.tif"
    response = small_budget_client.get("/cog/point/-119.5,34.5", params={"url": url})
    assert response.status_code == 400
    # 8 MB: the warped VRT reads its source band and adds an alpha band.
    assert response.json()["detail"].startswith(f"reading this from {url} needs 8.0 MB of pixels, {SOURCE_LIMIT}: its ")


def test_overview_blocks_larger_than_small_base_tiles_are_priced(small_budget_client, aws_world, tmp_path):
    path = tmp_path / "small-tiles.tif"
    profile = {
        "driver": "GTiff",
        "width": 2048,
        "height": 2048,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:4326",
        "transform": from_bounds(-120.0, 34.0, -119.0, 35.0, 2048, 2048),
        "tiled": True,
        "blockxsize": 16,
        "blockysize": 16,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(np.full((1, 2048, 2048), 7, dtype="uint16"))
    with rasterio.Env(GDAL_TIFF_OVR_BLOCKSIZE=1024), rasterio.open(path, "r+") as dst:
        dst.build_overviews([2, 4])
    aws_world.put_object(OWN_BUCKET, "layouts/small-tiles.tif", path.read_bytes())
    url = f"s3://{OWN_BUCKET}/layouts/small-tiles.tif"
    response = small_budget_client.get("/cog/preview.png", params={"url": url, "max_size": 1024})
    assert response.status_code == 400  # one 1024 px block of uint16 at the first overview: 2 MB
    assert response.json()["detail"].startswith(f"reading this from {url} needs 2.0 MB of pixels, {SOURCE_LIMIT}")


def test_a_tile_buffer_widens_the_area_priced(layouts):
    from raster_api.budget import estimate

    with MemoryFile(make_hostile_geotiff(1, 2048, overviews=False)) as memory, memory.open() as dataset:
        bounds, args = (-119.75, 34.25, -119.5, 34.5), {"width": 256, "height": 256}
        plain = estimate(dataset, bounds=bounds, bounds_crs=dataset.crs, **args)
        buffered = estimate(dataset, bounds=bounds, bounds_crs=dataset.crs, buffer=256, **args)
    # 0.25 degrees of a 2048 px degree: 512 px, read in 256 px blocks (one more for alignment); a 256 px buffer on a
    # 256 px tile triples the side read.
    assert (plain.source_pixels, buffered.source_pixels) == (768 * 768, 1792 * 1792)


def test_the_window_and_transform_priced_are_rasterios():
    """`budget` computes windows in plain affine arithmetic and keeps one PROJ transformer per pair of CRSs: the same
    numbers as `rasterio.windows.from_bounds` and `rasterio.warp.transform_bounds`, and the same refusals."""
    import random

    from affine import Affine
    from rasterio.crs import CRS
    from rasterio.errors import WindowError
    from rasterio.warp import transform_bounds
    from rasterio.windows import from_bounds

    from raster_api.budget import _transformed, _window

    rng = random.Random(7)
    for _ in range(2000):
        transform = Affine(rng.uniform(1e-4, 100), 0, rng.uniform(-1e6, 1e6), 0, -rng.uniform(1e-4, 100), 0)
        left, bottom = rng.uniform(-1e6, 1e6), rng.uniform(-1e6, 1e6)
        bounds = (left, bottom, left + rng.uniform(0, 1e5), bottom + rng.uniform(0, 1e5))
        window = from_bounds(*bounds, transform=transform)
        assert _window(bounds, transform) == pytest.approx(
            (window.col_off, window.row_off, window.width, window.height), rel=1e-9, abs=1e-6
        )
    with pytest.raises(WindowError, match="inconsistent"):
        _window((1, 0, 0, 1), Affine(1, 0, 0, 0, -1, 0))
    for src, dst, bounds in [
        ("EPSG:3857", "EPSG:4326", (-13358338.9, 4070118.9, -13319203.1, 4109254.7)),
        ("EPSG:4326", "EPSG:32611", (-120.0, 34.0, -119.0, 35.0)),
        ("EPSG:4326", "EPSG:3413", (-180.0, 60.0, 180.0, 90.0)),
    ]:
        expected = transform_bounds(CRS.from_string(src), CRS.from_string(dst), *bounds, densify_pts=21)
        assert _transformed(bounds, CRS.from_string(src), CRS.from_string(dst)) == pytest.approx(expected, rel=1e-9)
