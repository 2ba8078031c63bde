"""`python -m bench --only hostile`: hostile but valid requests against the API under uvicorn in its own process,
each with its wall time and the growth of the server's resident memory while it was served (sampled from
`/proc/<pid>/status` every 10 ms), then a normal tile to show the server still answers.

The rasters are the ones strangers find: a GeoTIFF declaring 131072 x 131072 px without overviews (a sparse file of a
few MB), a 300-band COG, a 22-band COG whose bands carry STATISTICS_* tags, and, with PostgreSQL, a pgstac collection
of 150 items over one tile. Goal per request: answered within 5 s and +512 MB.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import morecantile
import numpy as np
import requests

from bench.report import Row, Section
from bench.uvicorn_proc import uvicorn_server
from local_stack.aws_world import OWN_BUCKET, AwsWorld
from local_stack.samples import make_hostile_geotiff

BOUNDS = (-120.0, 34.0, -119.0, 35.0)
SECONDS_GOAL = 5.0
GROWTH_GOAL_MB = 512.0
ITEMS = 150


def _upload(world: AwsWorld) -> dict[str, str]:
    objects = {
        "cog": make_hostile_geotiff(3, 2048),
        "huge": make_hostile_geotiff(1, 131072, overviews=False),
        "bands-300": make_hostile_geotiff(300, 1024, overviews=False),
        "bands-22": make_hostile_geotiff(22, 512, statistics_tags=True),
        "float-huge": make_hostile_geotiff(1, 32768, overviews=False, dtype="float32"),
        "float": make_hostile_geotiff(1, 2048, dtype="float32"),
    }
    return world.put_rasters(OWN_BUCKET, "bench-hostile", objects)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _measured(pid: int, method: str, url: str, **kwargs: Any) -> tuple[int, float, float, str]:
    """(status, seconds, peak RSS growth in MB, detail) of one request."""
    baseline = _rss_mb(pid)
    peak = [baseline]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], _rss_mb(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        response = requests.request(method, url, timeout=60, **kwargs)
        status, text = response.status_code, response.text if response.status_code != 200 else ""
    except requests.RequestException as exc:
        status, text = 0, type(exc).__name__
    elapsed = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_mb(pid))
    detail = ""
    if text:
        try:
            detail = str(json.loads(text).get("detail", ""))[:140]
        except ValueError:
            detail = text[:140]
    return status, elapsed, peak[0] - baseline, detail


def _tile(z: int, fmt: str = "npy") -> str:
    tile = morecantile.tms.get("WebMercatorQuad").tile(-119.5, 34.5, z)
    return f"tiles/WebMercatorQuad/{z}/{tile.x}/{tile.y}.{fmt}"


def _squares(count: int) -> dict[str, Any]:
    rng = np.random.default_rng(3)
    features = []
    for x, y in zip(rng.uniform(-119.99, -119.01, count), rng.uniform(34.01, 34.99, count), strict=True):
        ring = [[x, y], [x + 0.002, y], [x + 0.002, y + 0.002], [x, y + 0.002], [x, y]]
        features.append({"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}})
    return {"type": "FeatureCollection", "features": features}


def _load_collection(dsn: str, url: str) -> None:
    from local_stack.pgstac_db import load_collections, load_items, stac_collection, stac_item

    load_collections(dsn, [stac_collection("hostile", BOUNDS)])
    items = [
        stac_item("hostile", f"hostile-{i:03d}", url, BOUNDS, datetime=f"2024-01-01T00:{i // 60:02d}:{i % 60:02d}Z")
        for i in range(ITEMS)
    ]
    load_items(dsn, items)


def run_hostile(env: Mapping[str, str], world: AwsWorld, workdir: Path) -> Section:
    from local_stack.pgstac_db import pgstac_database, postgis_missing

    urls = _upload(world)
    requests_: list[tuple[str, str, str, dict[str, Any]]] = [
        (
            "666 expression blocks, tilesize 512",
            "GET",
            f"/cog/{_tile(7)}",
            {"params": {"url": urls["cog"], "tilesize": 512, "expression": ";".join(["b1"] * 666)}},
        ),
        (
            "bidx=1 repeated 1000 times, tilesize 512",
            "GET",
            f"/cog/{_tile(7)}",
            {"params": {"url": urls["cog"], "tilesize": 512, "bidx": [1] * 1000}},
        ),
        (
            "300-band COG, tilesize 1024",
            "GET",
            f"/cog/{_tile(9)}",
            {"params": {"url": urls["bands-300"], "tilesize": 1024}},
        ),
        ("300-band COG, statistics", "GET", "/cog/statistics", {"params": {"url": urls["bands-300"]}}),
        ("131072 px without overviews: z5 tile", "GET", f"/cog/{_tile(5)}", {"params": {"url": urls["huge"]}}),
        ("131072 px without overviews: preview", "GET", "/cog/preview.png", {"params": {"url": urls["huge"]}}),
        ("131072 px without overviews: statistics", "GET", "/cog/statistics", {"params": {"url": urls["huge"]}}),
        (
            "expression b1+...+b22 over tagged bands",
            "GET",
            f"/cog/{_tile(9)}",
            {"params": {"url": urls["bands-22"], "expression": "+".join(f"b{i}" for i in range(1, 23))}},
        ),
        (
            "32768 px float32 without overviews: z11 tile, buffer=1024",
            "GET",
            f"/cog/{_tile(11)}",
            {"params": {"url": urls["float-huge"], "buffer": 1024}},
        ),
        (
            "float32 COG, tilesize 4096",
            "GET",
            f"/cog/{_tile(9, 'png')}",
            {"params": {"url": urls["float"], "tilesize": 4096}},
        ),
        (
            "hillshade over a 4096 px bbox",
            "GET",
            "/cog/bbox/-119.9,34.1,-119.4,34.6/4096x4096.png",
            {"params": {"url": urls["cog"], "bidx": 1, "algorithm": "hillshade"}},
        ),
        (
            "POST /cog/statistics, 12 000 polygons",
            "POST",
            "/cog/statistics",
            {"params": {"url": urls["cog"]}, "json": _squares(12_000)},
        ),
        (
            "POST /cog/statistics, 100 polygons (allowed)",
            "POST",
            "/cog/statistics",
            {"params": {"url": urls["cog"]}, "json": _squares(100)},
        ),
    ]
    reason = postgis_missing()
    mosaic = f"/collections/hostile/{_tile(6)}"
    if not reason:
        requests_ += [
            (
                "mosaic median, items_limit=500, exitwhenfull/skipcovered off",
                "GET",
                mosaic,
                {
                    "params": {
                        "assets": "data",
                        "pixel_selection": "median",
                        "items_limit": 500,
                        "exitwhenfull": "false",
                        "skipcovered": "false",
                    }
                },
            ),
            (
                "mosaic median, tilesize 1024, 150 items (default cap)",
                "GET",
                mosaic,
                {
                    "params": {
                        "assets": "data",
                        "pixel_selection": "median",
                        "tilesize": 1024,
                        "exitwhenfull": "false",
                        "skipcovered": "false",
                    }
                },
            ),
            (
                "mosaic first, tilesize 1024, 150 items (default cap)",
                "GET",
                mosaic,
                {"params": {"assets": "data", "tilesize": 1024, "exitwhenfull": "false", "skipcovered": "false"}},
            ),
        ]
    section = Section(name="hostile")
    if reason:
        section.notes.append(f"mosaic requests skipped: PostgreSQL/PostGIS unavailable ({reason})")

    def serve(extra_env: Mapping[str, str]) -> None:
        with uvicorn_server("raster_api.main:create_app", {**env, **extra_env}, workdir / "uvicorn-hostile.log") as (
            base,
            pid,
        ):
            requests.get(f"{base}/cog/info", params={"url": urls["cog"]}, timeout=60)  # warm imports and caches
            for name, method, path, kwargs in requests_:
                status, seconds, growth, detail = _measured(pid, method, base + path, **kwargs)
                ok = status != 0 and status < 500 and seconds <= SECONDS_GOAL and growth <= GROWTH_GOAL_MB
                section.rows.append(
                    Row(
                        "hostile",
                        name,
                        f"{status}, {seconds:.2f} s, +{growth:.0f} MB",
                        f"≤ {SECONDS_GOAL:g} s, ≤ +{GROWTH_GOAL_MB:g} MB, no 5xx",
                        ok,
                        detail,
                    )
                )
                section.data[name] = {"status": status, "seconds": seconds, "rss_growth_mb": growth, "detail": detail}
            normal = requests.get(f"{base}/cog/{_tile(9, 'png')}", params={"url": urls["cog"]}, timeout=60)
            section.rows.append(
                Row("hostile", "a normal tile afterwards", str(normal.status_code), "200", normal.status_code == 200)
            )

    if reason:
        serve({})
    else:
        with pgstac_database() as db:
            _load_collection(db.dsn, urls["cog"])
            serve({"RASTER_API_PGSTAC_ENABLED": "true", **db.env()})
    return section
