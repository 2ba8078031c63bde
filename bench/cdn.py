"""`python -m bench --only cdn`: what the cache in front of the API buys, measured on the local stand-in for CloudFront
(nginx, `local_stack.cdn`) and on the S3 emulator's own request count.

- Tile latency (p50/p95) of the API direct, through nginx on a MISS, and through nginx on a HIT: each tile is asked
  of the API directly and through nginx in random order (so GDAL's caches favour neither), then through nginx again.
- Requests/s of each path with a few client threads: direct, MISS (tiles nginx has not seen), HIT (tiles it holds).
- S3 GETs per tile counted by moto's recorder, ours vs vanilla titiler, for the first tile of a COG the process has
  never opened and for a further tile of the same COG; and for a tile served from the cache (none, by design).
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import requests

from bench.report import Row, Section
from bench.tiles import tile_path, tiles_within
from bench.uvicorn_proc import uvicorn_server
from local_stack.aws_world import OWN_BUCKET, AwsWorld
from local_stack.cdn import nginx_cache, nginx_missing
from local_stack.samples import DEFAULT_BOUNDS, make_cog

CACHE = "X-Cache-Status"
FRESH_COG_SIZE = 4096


def _percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000.0
    return {"n": int(a.size), "p50_ms": float(np.median(a)), "p95_ms": float(np.percentile(a, 95))}


def _timed_get(session: requests.Session, url: str, want_cache: str | None) -> tuple[float, int]:
    start = time.perf_counter()
    response = session.get(url, timeout=60)
    elapsed = time.perf_counter() - start
    if response.status_code != 200:
        raise RuntimeError(f"{url}: {response.status_code} {response.text[:200]}")
    if want_cache is not None and response.headers.get(CACHE) != want_cache:
        raise RuntimeError(f"{url}: {CACHE} {response.headers.get(CACHE)!r}, expected {want_cache}")
    return elapsed, len(response.content)


def _latency(direct: str, cdn: str, paths: list[str], seed: int = 11) -> tuple[dict[str, list[float]], list[int]]:
    rng = random.Random(seed)
    session = requests.Session()
    samples: dict[str, list[float]] = {"direct": [], "miss": [], "hit": []}
    sizes: list[int] = []
    for path in paths:
        first: list[tuple[str, Callable[[], tuple[float, int]]]] = [
            ("direct", functools.partial(_timed_get, session, direct + path, None)),
            ("miss", functools.partial(_timed_get, session, cdn + path, "MISS")),
        ]
        rng.shuffle(first)
        for name, call in first:
            elapsed, size = call()
            samples[name].append(elapsed)
            if name == "direct":
                sizes.append(size)
        samples["hit"].append(_timed_get(session, cdn + path, "HIT")[0])
    return samples, sizes


def _throughput(base: str, paths: list[str], want_cache: str | None, workers: int) -> float:
    sessions: dict[int, requests.Session] = {}

    def get(path: str) -> None:
        session = sessions.setdefault(threading.get_ident(), requests.Session())
        _timed_get(session, base + path, want_cache)

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(get, paths))
    return len(paths) / (time.perf_counter() - start)


def _s3_gets(world: AwsWorld, base: str, path: str) -> dict[str, int]:
    """S3 requests moto received while `base` served `path` (nothing else talks to moto meanwhile)."""
    recording = world.recording
    recording.start()
    try:
        _timed_get(requests.Session(), base + path, None)
    finally:
        recording.stop()
    s3 = recording.s3_requests()
    return {"get": sum(1 for r in s3 if r.method == "GET"), "all": len(s3)}


def _gets_per_tile(
    world: AwsWorld, servers: dict[str, str], cogs: int, seed: int = 5
) -> dict[str, dict[str, list[dict[str, int]]]]:
    """First and second tile of `cogs` fresh COGs, per server (each opens every COG for the first time itself)."""
    rng = random.Random(seed)
    first_tile, second_tile = tiles_within(DEFAULT_BOUNDS, (12,), 2, seed=seed)
    counts: dict[str, dict[str, list[dict[str, int]]]] = {name: {"first": [], "warm": []} for name in servers}
    for i in range(cogs):
        key = f"bench-cdn/fresh-{i}.tif"
        # Larger than the 512 px samples, so a tile's blocks are not all in GDAL's first read of the header.
        world.put_object(OWN_BUCKET, key, make_cog(110 + i % 8, size=FRESH_COG_SIZE))
        url = f"s3://{OWN_BUCKET}/{key}"
        order = list(servers)
        rng.shuffle(order)
        for name in order:
            provider = "own" if name == "ours" else None
            counts[name]["first"].append(_s3_gets(world, servers[name], tile_path(first_tile, url, provider)))
            counts[name]["warm"].append(_s3_gets(world, servers[name], tile_path(second_tile, url, provider)))
    return counts


def _mean(values: list[dict[str, int]], field: str) -> float:
    return float(np.mean([v[field] for v in values])) if values else float("nan")


def run_cdn(
    ours_env: Mapping[str, str],
    vanilla_env: Mapping[str, str],
    world: AwsWorld,
    own_url: str,
    workdir: Path,
    latency_tiles: int = 150,
    throughput_requests: int = 300,
    workers: int = 4,
    fresh_cogs: int = 5,
) -> Section:
    section = Section(name="cdn")
    reason = nginx_missing()
    if reason:
        section.skipped = reason
        return section
    section.notes = [
        "nginx (Debian's, `local_stack.cdn`) in front of the API under uvicorn, both on the same 2-core machine as the "
        "client: the HIT figures are nginx's local cost, not an edge location's; the MISS overhead is the extra hop.",
        "S3 requests are counted by moto's recorder while one request is served and nothing else talks to moto. "
        "'first' is the first tile of a COG the server process has never opened (COGs uploaded for the run), 'warm' "
        "a second tile of the same COG; vanilla is titiler.core's TilerFactory with titiler's recommended GDAL "
        "settings (`bench.vanilla`).",
    ]
    tiles = tiles_within(DEFAULT_BOUNDS, (10, 11, 12, 13), latency_tiles + throughput_requests, seed=21)
    lat_paths = [tile_path(t, own_url, "own") for t in tiles[:latency_tiles]]
    fresh_paths = [tile_path(t, own_url, "own") for t in tiles[latency_tiles:]]
    with (
        uvicorn_server("raster_api.main:create_app", ours_env, workdir / "uvicorn-cdn-ours.log") as (direct, _),
        uvicorn_server("bench.vanilla:create_vanilla_app", vanilla_env, workdir / "uvicorn-cdn-vanilla.log") as (
            vanilla,
            _,
        ),
        nginx_cache(direct, workdir / "cdn-state") as cdn,
    ):
        # A warm-up, so neither side pays for the first GDAL open in the timings.
        for path in lat_paths[:5]:
            _timed_get(requests.Session(), direct + path, None)
        samples, sizes = _latency(direct, cdn.url, lat_paths)
        rps = {
            "direct": _throughput(direct, lat_paths[: throughput_requests // 2] * 2, None, workers),
            "miss": _throughput(cdn.url, fresh_paths, "MISS", workers),
            "hit": _throughput(cdn.url, (lat_paths * 3)[:throughput_requests], "HIT", workers),
        }
        hit_gets = _s3_gets(world, cdn.url, lat_paths[0])
        gets = _gets_per_tile(world, {"ours": direct, "vanilla": vanilla}, fresh_cogs)

    stats = {name: _percentiles(values) for name, values in samples.items()}
    section.samples = {f"tile {name}": values for name, values in samples.items()}
    section.data = {
        "latency": stats,
        "requests_per_s": rps,
        "workers": workers,
        "tile_bytes_mean": float(np.mean(sizes)),
        "s3_requests_per_tile": gets,
        "s3_requests_hit": hit_gets,
    }
    d, m, h = stats["direct"], stats["miss"], stats["hit"]
    section.rows += [
        Row(
            "cdn",
            f"tile latency p50 / p95, {latency_tiles} tiles (z10-13, 256 px PNG, mean {np.mean(sizes) / 1024:.1f} KiB)",
            f"API direct {d['p50_ms']:.1f} / {d['p95_ms']:.1f} ms; nginx MISS {m['p50_ms']:.1f} / {m['p95_ms']:.1f} ms; "
            f"nginx HIT {h['p50_ms']:.2f} / {h['p95_ms']:.2f} ms",
            "HIT p50 ≤ direct p50 / 10; MISS p50 ≤ direct p50 + 5 ms",
            h["p50_ms"] <= d["p50_ms"] / 10 and m["p50_ms"] <= d["p50_ms"] + 5,
        ),
        Row(
            "cdn",
            f"tiles/s with {workers} client threads",
            f"API direct {rps['direct']:.1f}; nginx MISS {rps['miss']:.1f}; nginx HIT {rps['hit']:.0f}",
            "HIT ≥ 10 × direct",
            rps["hit"] >= 10 * rps["direct"],
        ),
    ]
    for phase, words in (("first", "first tile of a COG never opened"), ("warm", "another tile of an opened COG")):
        ours, van = gets["ours"][phase], gets["vanilla"][phase]
        section.rows.append(
            Row(
                "cdn",
                f"S3 GETs per z12 tile ({words}), mean over {fresh_cogs} fresh {FRESH_COG_SIZE} px COGs (all S3 "
                "requests in brackets): ours vs vanilla",
                f"{_mean(ours, 'get'):.1f} ({_mean(ours, 'all'):.1f}) vs {_mean(van, 'get'):.1f} "
                f"({_mean(van, 'all'):.1f})",
                "ours ≤ vanilla",
                _mean(ours, "all") <= _mean(van, "all"),
            )
        )
    section.rows.append(
        Row("cdn", "S3 requests for a tile served by nginx (HIT)", f"{hit_gets['all']}", "0", hit_gets["all"] == 0)
    )
    return section
