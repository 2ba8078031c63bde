"""Tile addresses inside a COG's bounds, shared by every benchmark that requests tiles."""

from __future__ import annotations

import random

import morecantile

TMS = "WebMercatorQuad"


def tiles_within(
    bounds: tuple[float, float, float, float], zooms: tuple[int, ...], count: int, seed: int = 1
) -> list[tuple[int, int, int]]:
    """`count` distinct (z, x, y) tiles intersecting `bounds`, sampled deterministically across `zooms`."""
    tms = morecantile.tms.get(TMS)
    pool = [(t.z, t.x, t.y) for t in tms.tiles(*bounds, zooms=list(zooms))]
    rng = random.Random(seed)
    rng.shuffle(pool)
    if len(pool) >= count:
        return pool[:count]
    return [pool[i % len(pool)] for i in range(count)]


def tile_path(tile: tuple[int, int, int], url: str, provider: str | None = None, fmt: str = "png") -> str:
    z, x, y = tile
    query = f"url={url}" + (f"&provider={provider}" if provider else "")
    return f"/cog/tiles/{TMS}/{z}/{x}/{y}.{fmt}?{query}"
