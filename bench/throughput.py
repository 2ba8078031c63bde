"""Throughput and resident memory under uvicorn (child processes): our app on a mixed multi-provider load vs
vanilla titiler on the same request mix for the one bucket it can read, in alternating blocks."""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psutil
import requests

from bench.report import Row, Section
from bench.tiles import TMS, tile_path, tiles_within
from bench.uvicorn_proc import uvicorn_server
from local_stack.samples import DEFAULT_BOUNDS

Request = tuple[str, bool]  # (path and query, is a tile)


def request_mix(sources: list[tuple[str, str | None]], count: int, seed: int = 3) -> list[Request]:
    """Mostly tiles (PNG and WEBP) with some info, statistics, tilejson and preview, over `sources` (url, provider)."""
    rng = random.Random(seed)
    tiles = tiles_within(DEFAULT_BOUNDS, (9, 10, 11, 12, 13), 500, seed=seed)
    out: list[Request] = []
    for i in range(count):
        url, provider = sources[i % len(sources)]
        query = f"url={url}" + (f"&provider={provider}" if provider else "")
        roll = rng.random()
        if roll < 0.80:
            out.append((tile_path(rng.choice(tiles), url, provider, fmt=rng.choice(["png", "png", "webp"])), True))
        elif roll < 0.88:
            out.append((f"/cog/info?{query}", False))
        elif roll < 0.94:
            out.append((f"/cog/statistics?{query}", False))
        elif roll < 0.98:
            out.append((f"/cog/{TMS}/tilejson.json?{query}", False))
        else:
            out.append((f"/cog/preview.png?{query}&max_size=256", False))
    return out


def _block(base: str, reqs: list[Request], workers: int, errors: list[str]) -> float:
    sessions: dict[int, requests.Session] = {}

    def get(req: Request) -> None:
        import threading

        s = sessions.setdefault(threading.get_ident(), requests.Session())
        r = s.get(base + req[0], timeout=60)
        if r.status_code != 200:
            errors.append(f"{r.status_code} {req[0][:100]} {r.text[:100]}")

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(get, reqs))
    return time.perf_counter() - start


def run_throughput(
    ours_env: Mapping[str, str],
    vanilla_env: Mapping[str, str],
    ours_sources: list[tuple[str, str | None]],
    vanilla_sources: list[tuple[str, str | None]],
    workdir: Path,
    total: int = 2000,
    block: int = 200,
    workers: int = 4,
    max_growth_mb: float = 50.0,
) -> Section:
    section = Section(name="throughput and memory")
    section.notes = [
        "ours serves four providers of three kinds, vanilla one bucket with the process identity; ours is not slower "
        "because it reuses one `AWSSession` per provider where vanilla's `rasterio.Env` builds a boto3 Session from "
        "the environment on every request (see tile latency). RSS is sampled after every block; growth is the last "
        "sample minus the first (after the warm-up block).",
    ]
    # The vanilla side only gives context (its throughput on the same mix); a quarter of the requests is enough.
    share = {"ours": 1.0, "vanilla": 0.25}
    mixes = {"ours": request_mix(ours_sources, total), "vanilla": request_mix(vanilla_sources, total // 4)}
    errors: dict[str, list[str]] = {"ours": [], "vanilla": []}
    elapsed = {"ours": 0.0, "vanilla": 0.0}
    rss: dict[str, list[tuple[int, float]]] = {"ours": [], "vanilla": []}
    with (
        uvicorn_server("raster_api.main:create_app", ours_env, workdir / "uvicorn-ours.log") as (ours_base, ours_pid),
        uvicorn_server("bench.vanilla:create_vanilla_app", vanilla_env, workdir / "uvicorn-vanilla.log") as (
            van_base,
            van_pid,
        ),
    ):
        servers: dict[str, tuple[str, int]] = {"ours": (ours_base, ours_pid), "vanilla": (van_base, van_pid)}
        order = ["ours", "vanilla"]
        for i in range(0, total, block):
            order.reverse()
            for name in order:
                base, pid = servers[name]
                size = int(block * share[name])
                start = int(i * share[name])
                chunk = mixes[name][start : start + size]
                elapsed[name] += _block(base, chunk, workers, errors[name])
                rss[name].append((start + len(chunk), psutil.Process(pid).memory_info().rss / 2**20))
    section.data = {"workers": workers, "total": total, "block": block, "rss_mb": rss}
    for name in ("ours", "vanilla"):
        count = len(mixes[name])
        tiles = sum(1 for _, is_tile in mixes[name] if is_tile)
        warm = rss[name][0][1]
        final = rss[name][-1][1]
        growth = final - warm
        section.data[name] = {
            "requests": count,
            "requests_per_s": count / elapsed[name],
            "tiles_per_s": tiles / elapsed[name],
            "elapsed_s": elapsed[name],
            "rss_after_warmup_mb": warm,
            "rss_final_mb": final,
            "rss_peak_mb": max(v for _, v in rss[name]),
            "growth_mb": growth,
            "error_count": len(errors[name]),
            "errors": errors[name][:5],
        }
    o, v = section.data["ours"], section.data["vanilla"]
    section.rows.append(
        Row(
            "throughput",
            f"requests/s under uvicorn (1 process), {total} mixed requests, {workers} client threads; ours over "
            f"{len(ours_sources)} providers vs vanilla ({v['requests']} requests) on its one bucket, in alternating "
            f"blocks of {block} and {block // 4}",
            f"{o['requests_per_s']:.1f} req/s ({o['tiles_per_s']:.1f} tiles/s) vs {v['requests_per_s']:.1f} req/s "
            f"({v['tiles_per_s']:.1f} tiles/s) = x{o['requests_per_s'] / v['requests_per_s']:.2f}",
            "",
            None if not (errors["ours"] or errors["vanilla"]) else False,
            f"errors: ours {len(errors['ours'])}, vanilla {len(errors['vanilla'])}"
            if errors["ours"] or errors["vanilla"]
            else "",
        )
    )
    section.rows.append(
        Row(
            "memory",
            f"resident memory (psutil RSS) of the uvicorn process after a {block}-request warm-up and after {total}",
            f"ours {o['rss_after_warmup_mb']:.0f} → {o['rss_final_mb']:.0f} MB (growth {o['growth_mb']:+.1f} MB); "
            f"vanilla {v['rss_after_warmup_mb']:.0f} → {v['rss_final_mb']:.0f} MB ({v['growth_mb']:+.1f} MB)",
            f"growth ≤ {max_growth_mb:g} MB",
            o["growth_mb"] <= max_growth_mb,
        )
    )
    return section
