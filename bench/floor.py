"""The floor: what a tile costs with no framework at all (rio-tiler opening the COG, reading the tile, encoding the
PNG, with our GDAL settings and the provider's session) next to vanilla titiler's endpoint and ours, interleaved tile
by tile against the same S3 emulator: through each app's Lambda handler in the benchmark's process (as Lambda runs
them), and under uvicorn in their own processes (as the local stack serves them). Then a profile of ours through its
handler, split into our code, titiler/rio-tiler, FastAPI/Starlette/Mangum and GDAL/rasterio.
"""

from __future__ import annotations

import base64
import cProfile
import http.client
import json
import pstats
import threading
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import rasterio
from fastapi import FastAPI
from mangum import Mangum
from rio_tiler.io import Reader

from bench.report import Row, Section
from bench.stats import median_ratio, summarize
from bench.tiles import tile_path, tiles_within
from bench.timing import interleaved
from bench.uvicorn_proc import uvicorn_server
from local_stack.aws_world import Keys
from local_stack.samples import DEFAULT_BOUNDS
from raster_api.lambda_loop import OneLoopMangum

ZOOMS = (9, 10, 11, 12)
TARGET = 1.5
CONTEXT = types.SimpleNamespace(function_name="bench", aws_request_id="b", get_remaining_time_in_millis=lambda: 30000)
Tile = tuple[int, int, int]


def _event(url: str) -> dict[str, Any]:
    path, _, query = url.partition("?")
    host = "abc123.execute-api.us-west-2.amazonaws.com"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": query,
        "headers": {"host": host, "accept": "image/png"},
        "requestContext": {
            "domainName": host,
            "requestId": "bench",
            "stage": "$default",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
        },
        "isBase64Encoded": False,
    }


def _through_mangum(
    handler: Callable[[dict[str, Any], Any], dict[str, Any]], url: str, provider: str | None, errors: list[str]
) -> Callable[[Tile], None]:

    def get(tile: Tile) -> None:
        response = handler(_event(tile_path(tile, url, provider)), CONTEXT)
        if response["statusCode"] != 200 or base64.b64decode(response["body"])[:4] != b"\x89PNG":
            errors.append(f"{response['statusCode']} {str(response['body'])[:120]}")

    return get


def _raw(gdal_path: str, env: dict[str, Any]) -> Callable[[Tile], None]:
    def get(tile: Tile) -> None:
        z, x, y = tile
        with rasterio.Env(**env), Reader(gdal_path) as cog:
            cog.tile(x, y, z).render(img_format="PNG")

    return get


def _profile_split(stats: pstats.Stats, n: int) -> str:
    """Self time per tile, grouped by who owns the code."""
    groups = {
        "ours (raster_api, providers)": ("/raster_api/", "/providers/"),
        "titiler, rio-tiler, morecantile": ("/titiler/", "/rio_tiler/", "/morecantile/"),
        "FastAPI, Starlette, Mangum, anyio, pydantic": ("/fastapi/", "/starlette/", "/mangum/", "/anyio/", "/pydantic"),
        "rasterio, GDAL (C calls from rasterio)": ("/rasterio/", "rasterio._"),
        "boto3, botocore": ("/boto3/", "/botocore/"),
    }
    totals = dict.fromkeys([*groups, "other (numpy, PIL, stdlib...)"], 0.0)
    raw: dict[tuple[str, int, str], tuple[int, int, float, float, object]] = stats.stats  # type: ignore[attr-defined]
    for (filename, _, name), (_, _, self_time, _, _) in raw.items():
        where = f"{filename}:{name}"
        group = next((g for g, marks in groups.items() if any(m in where for m in marks)), None)
        totals[group or "other (numpy, PIL, stdlib...)"] += self_time
    lines = [
        f"cProfile of ours through its Lambda handler, self time per tile ({n} tiles; cProfile inflates every side):"
    ]
    lines += [f"{ms * 1000 / n:8.2f} ms  {group}" for group, ms in sorted(totals.items(), key=lambda kv: -kv[1])]
    lines += ["", "top functions by own time (ms per tile):"]
    top = sorted(raw.items(), key=lambda kv: -kv[1][2])[:15]
    lines += [
        f"{st * 1000 / n:8.2f}  {fn.split('site-packages/')[-1]}:{ln} {name}"
        for (fn, ln, name), (_, _, st, _, _) in top
    ]
    return "\n".join(lines)


def run_floor(
    ours: FastAPI,
    vanilla: FastAPI,
    url: str,
    provider: str,
    gdal_path: str,
    raw_env: dict[str, Any],
    count: int,
    label: str,
    profile: bool = True,
) -> Section:
    """Through each app's Lambda handler: vanilla titiler's documented `Mangum(app)`, ours `raster_api.handler`'s."""
    section = Section(name="floor")
    tiles = tiles_within(DEFAULT_BOUNDS, ZOOMS, count)
    errors: list[str] = []
    contenders = {
        "raw rio-tiler": _raw(gdal_path, raw_env),
        "vanilla titiler": _through_mangum(Mangum(vanilla, lifespan="off"), url, None, errors),
        "ours": _through_mangum(OneLoopMangum(ours), url, provider, errors),
    }
    _measure(section, contenders, tiles, errors, f"{label}: tile through the Lambda handler")
    if profile:
        get = contenders["ours"]
        section.profile = _profile_split(_profiled(lambda: [get(tile) for tile in tiles]), len(tiles))
    return section


def run_floor_uvicorn(
    ours_env: dict[str, str],
    vanilla_env: dict[str, str],
    url: str,
    provider: str,
    gdal_path: str,
    raw_env: dict[str, Any],
    count: int,
    workdir: Path,
) -> Section:
    """As the local stack serves: each app under uvicorn in its own process, asked over HTTP/1.1 keep-alive."""
    section = Section(name="floor")
    tiles = tiles_within(DEFAULT_BOUNDS, ZOOMS, count)
    errors: list[str] = []
    with (
        uvicorn_server("raster_api.main:create_app", ours_env, workdir / "uvicorn-floor-ours.log") as (ours, _),
        uvicorn_server("bench.vanilla:create_vanilla_app", vanilla_env, workdir / "uvicorn-floor-vanilla.log") as (
            vanilla,
            _,
        ),
    ):
        contenders = {
            "raw rio-tiler": _raw(gdal_path, raw_env),
            "vanilla titiler": _over_http(vanilla, url, None, errors),
            "ours": _over_http(ours, url, provider, errors),
        }
        _measure(section, contenders, tiles, errors, "uvicorn (AWS_* variables): tile over HTTP")
    return section


def _over_http(base: str, url: str, provider: str | None, errors: list[str]) -> Callable[[Tile], None]:
    connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=60)

    def get(tile: Tile) -> None:
        connection.request("GET", tile_path(tile, url, provider), headers={"Accept": "image/png"})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200 or body[:4] != b"\x89PNG":
            errors.append(f"{response.status} {body[:120]!r}")

    return get


def _measure(
    section: Section, contenders: dict[str, Callable[[Tile], None]], tiles: list[Tile], errors: list[str], how: str
) -> None:
    """Interleaved timings of `contenders` (after a warm-up: headers cached by GDAL, first-use costs paid, on every
    side alike), and the two rows: the times, and ours / raw next to vanilla / raw."""
    for get in contenders.values():
        for tile in tiles[:5]:
            get(tile)
    times = interleaved(contenders, tiles)
    section.samples = {name.replace(" ", "\n"): values for name, values in times.items()}
    stats = {name: summarize(values) for name, values in times.items()}
    ours_raw = median_ratio(times["ours"], times["raw rio-tiler"])
    vanilla_raw = median_ratio(times["vanilla titiler"], times["raw rio-tiler"])
    section.data = {"stats": stats, "ours_vs_raw": ours_raw, "vanilla_vs_raw": vanilla_raw, "errors": errors[:5]}
    label = how.split(":")[0]

    def cell(name: str) -> str:
        return f"{stats[name]['median_ms']:.1f} / {stats[name]['p90_ms']:.1f} ms"

    section.rows.append(
        Row(
            "floor",
            f"{how}, median / p90 of {len(tiles)} z{ZOOMS[0]}-{ZOOMS[-1]} PNG tiles, interleaved: raw rio-tiler "
            "(open, tile, PNG, with the same GDAL settings and session); vanilla titiler; ours",
            f"{cell('raw rio-tiler')}; {cell('vanilla titiler')}; {cell('ours')}",
            "",
            None if not errors else False,
            f"{len(errors)} errors, e.g. {errors[0]}" if errors else "",
        )
    )
    section.rows.append(
        Row(
            "floor",
            f"{label}: ours / raw rio-tiler (median ratio), next to vanilla titiler / raw",
            f"x{ours_raw['ratio']:.2f} (95% CI {ours_raw['ci95_low']:.2f}-{ours_raw['ci95_high']:.2f}); vanilla "
            f"x{vanilla_raw['ratio']:.2f}",
            f"≤ {TARGET}",
            ours_raw["ratio"] <= TARGET and not errors,
        )
    )


def _profiled(run: Callable[[], object]) -> pstats.Stats:
    """cProfile of `run()`. Since Python 3.12 cProfile sees every thread (it uses `sys.monitoring`, which is
    process-wide): a request runs on the caller's thread (Mangum), the event loop's and anyio's worker thread."""
    profile = cProfile.Profile()
    profile.enable()
    try:
        run()
    finally:
        profile.disable()
    return pstats.Stats(profile)


@contextmanager
def container_credentials(keys: Keys) -> Iterator[str]:
    """Lambda's credentials as a SnapStart function gets them: an HTTP endpoint named by
    `AWS_CONTAINER_CREDENTIALS_FULL_URI` (no `AWS_ACCESS_KEY_ID` in the environment), here on 127.0.0.1."""
    body = json.dumps(
        {
            "AccessKeyId": keys.access_key_id,
            "SecretAccessKey": keys.secret_access_key,
            "Token": keys.session_token,
            "Expiration": (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"),
        }
    ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/credentials"
    finally:
        server.shutdown()
        server.server_close()
