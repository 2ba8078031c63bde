"""Our answers against vanilla titiler's on the same bytes: the field's test rasters (`tests.raster_corpus`) in one S3
bucket, read by our API (through the provider seam) and by titiler.core's own `TilerFactory` (GDAL's defaults plus
the same keys and endpoint). For each raster: `/info`, `/statistics`, a preview, three tiles and a point, compared on
status, JSON and decoded pixels.

A difference is either a bug to fix or a choice listed in `KNOWN_DIFFERENCES` with its reason; the "Fidelity"
table of `docs/api.md` lists the same rasters (a test checks both lists agree). Our answer is never a 5xx, even where
titiler's is.
"""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from morecantile import Tile
from morecantile import tms as tms_registry
from rasterio.io import MemoryFile
from rio_tiler.io import Reader

from local_stack.aws_world import OWN_BUCKET
from tests.raster_corpus import CORPUS, CorpusRaster, build_corpus, iter_objects

PREFIX = "corpus"
WEB_MERCATOR = tms_registry.get("WebMercatorQuad")
ROUTES = ("info", "statistics", "preview", "tile-minzoom", "tile-maxzoom", "tile-corner", "point")
API_DOCS = Path(__file__).resolve().parent.parent / "docs" / "api.md"

TILES = ("tile-minzoom", "tile-maxzoom", "tile-corner")
NOT_GEOTIFF = "400 naming GeoTIFF as the only format served: a VRT, netCDF... can make GDAL read other objects"
NO_SIDECARS = "sidecar files are not read (`GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR`: no listing or probe per open)"
NOT_ON_MAP = "400: the CRS cannot be transformed to the tile matrix set's or WGS84 (titiler: 500)"

# raster -> (the routes where our answer differs, why); see the "Fidelity" table of docs/api.md.
KNOWN_DIFFERENCES: dict[str, tuple[tuple[str, ...], str]] = {
    "format-png": (ROUTES, NOT_GEOTIFF + " (titiler: 200)"),
    "format-jpeg-as-tif": (ROUTES, NOT_GEOTIFF + " (titiler: 200)"),
    "format-netcdf": (ROUTES, NOT_GEOTIFF + " (titiler: 200)"),
    "overviews-external": (("info",), NO_SIDECARS + ": no overviews listed"),
    "mask-external": (ROUTES, NO_SIDECARS + ": the mask is not applied"),
    "uint64": (("preview", *TILES), "400 saying how to render uint64 (titiler: 500, numpy cannot hold the mask range)"),
    "complex64": (
        tuple(r for r in ROUTES if r != "info"),
        "400: complex samples are refused (titiler: 500, its models hold real numbers)",
    ),
    "mars": (("point", *TILES), NOT_ON_MAP),
    "local-cs": (("point", *TILES), NOT_ON_MAP),
    "no-crs": (("info", "preview", "point", *TILES), "400: a dataset without a CRS cannot be placed (titiler: 500)"),
}


def _difference(raster: str, route: str) -> str | None:
    routes, why = KNOWN_DIFFERENCES.get(raster, ((), ""))
    return why if route in routes else None


@pytest.fixture(scope="module")
def corpus(aws_world, tmp_path_factory) -> dict[str, CorpusRaster]:
    directory = tmp_path_factory.mktemp("corpus")
    rasters = build_corpus(directory)
    for key, body in iter_objects(rasters, directory):
        aws_world.put_object(OWN_BUCKET, f"{PREFIX}/{key}", body)
    return {raster.name: raster for raster in rasters}


@pytest.fixture(scope="module")
def clients(aws_world, corpus, sample_urls, provider_secrets, lambda_keys):
    """(ours, vanilla titiler): both read `s3://own-data/corpus/...` with the same keys (the `own` provider's: the
    process identity, which titiler takes from the environment as GDAL does)."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient
    from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
    from titiler.core.factory import TilerFactory

    from local_stack.aws_world import providers_config
    from raster_api.main import create_app

    env = {**aws_world.endpoint_env(), **lambda_keys.env(), "PROVIDERS_CONFIG": json.dumps(providers_config(aws_world))}
    vanilla = FastAPI()
    vanilla.include_router(TilerFactory().router, prefix="/cog")
    add_exception_handlers(vanilla, DEFAULT_STATUS_CODES)
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        with (
            TestClient(create_app(), raise_server_exceptions=False) as ours,
            TestClient(vanilla, raise_server_exceptions=False) as theirs,
        ):
            yield ours, theirs


def _requests(raster: CorpusRaster) -> dict[str, tuple[str, dict[str, Any]]]:
    """route -> (path, params) for one raster; tiles and the point are placed from the raster's own header."""
    url = f"s3://{OWN_BUCKET}/{PREFIX}/{raster.key}"
    tiles = {name: Tile(0, 0, 0) for name in ("tile-minzoom", "tile-maxzoom", "tile-corner")}
    lon, lat = 0.0, 0.0
    try:
        with Reader(str(raster.files[0])) as src:
            west, south, east, north = src.get_geographic_bounds(WEB_MERCATOR.rasterio_geographic_crs)
            minzoom, maxzoom = src.minzoom, src.maxzoom
    except Exception:  # noqa: BLE001 - no geographic placement (non-earth, no CRS...): the world tile
        pass
    else:
        lon, lat = (west + east) / 2, (south + north) / 2
        corner = (west + (east - west) / 10, north - (north - south) / 10)
        tiles = {
            "tile-minzoom": WEB_MERCATOR.tile(lon, lat, minzoom),
            "tile-maxzoom": WEB_MERCATOR.tile(lon, lat, maxzoom),
            "tile-corner": WEB_MERCATOR.tile(*corner, maxzoom),
        }
    requests: dict[str, tuple[str, dict[str, Any]]] = {
        "info": ("/cog/info", {"url": url}),
        "statistics": ("/cog/statistics", {"url": url}),
        "preview": ("/cog/preview.npy", {"url": url, "max_size": 128}),
        "point": (f"/cog/point/{lon},{lat}", {"url": url}),
    }
    for name, tile in tiles.items():
        requests[name] = (f"/cog/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png", {"url": url})
    return requests


def _normalised(value: Any) -> Any:
    """JSON with NaN made comparable (NaN != NaN) and our URL spelled like titiler's."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def _decoded(response) -> np.ndarray:
    if response.headers["content-type"].startswith("application/x-binary"):
        return np.load(io.BytesIO(response.content))
    with MemoryFile(response.content) as mem, mem.open() as src:
        return src.read()


def _compare(ours, theirs) -> str | None:
    """None when a user would see the same answer; else what differs."""
    if ours.status_code != theirs.status_code:
        said = {r.status_code: r.text[:160] for r in (ours, theirs) if r.status_code != 200}
        return f"status {ours.status_code} vs titiler's {theirs.status_code} {said}"
    if ours.status_code != 200:
        return None  # both refuse; our message is ours (sanitised), titiler's is GDAL's
    if ours.headers["content-type"].startswith("application/json"):
        a, b = _normalised(ours.json()), _normalised(theirs.json())
        return None if a == b else f"JSON differs: {json.dumps(a)[:300]} vs {json.dumps(b)[:300]}"
    a, b = _decoded(ours), _decoded(theirs)
    if a.shape != b.shape or a.dtype != b.dtype:
        return f"pixels {a.dtype}{a.shape} vs titiler's {b.dtype}{b.shape}"
    if not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
        return f"{int((a != b).sum())} pixel values differ"
    return None


@pytest.mark.parametrize("name", list(CORPUS))
def test_answers_match_vanilla_titiler_on_the_same_bytes(clients, corpus, name):
    ours, theirs = clients
    raster = corpus[name]
    differences = {}
    for route, (path, params) in _requests(raster).items():
        answer = ours.get(path, params=params)
        if answer.status_code >= 500:
            differences[route] = f"ours is a {answer.status_code}: {answer.text[:200]}"
            continue
        found = _compare(answer, theirs.get(path, params=params))
        listed = _difference(name, route)
        if found and not listed:
            differences[route] = found
        elif listed and not found:
            differences[route] = f"listed as a difference ({listed}) but the answers are the same"
    assert not differences, json.dumps(differences, indent=1)


def test_every_listed_difference_is_in_the_documentation():
    section = API_DOCS.read_text().split("## Fidelity", 1)[1].split("\n#", 1)[0]
    rows = set(re.findall(r"^\| `([\w-]+)` \|", section, flags=re.MULTILINE))
    assert rows == set(KNOWN_DIFFERENCES)


def test_uint64_renders_when_cast_as_the_refusal_says(clients, corpus):
    ours, _theirs = clients
    path, params = _requests(corpus["uint64"])["tile-maxzoom"]
    refused = ours.get(path, params=params)
    assert refused.status_code == 400
    assert refused.json()["detail"] == (
        "uint64 samples cannot be rendered as an image; cast them with an expression (e.g. expression=b1*1.0, "
        "with rescale) to render a float image"
    )
    cast = ours.get(path, params={**params, "expression": "b1*1.0", "rescale": "0,300000000000000"})
    assert cast.status_code == 200, cast.text
    assert cast.headers["content-type"] == "image/png"
