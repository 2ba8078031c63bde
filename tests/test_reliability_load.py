"""Concurrent mixed-provider load: many threads read the same objects through three providers of different kinds.

Every request either returns pixels of its own bucket (the right provider) or is refused with 403 (a provider that
does not own the bucket): zero errors and zero cross-provider reads, even while GDAL's path-keyed caches are hot.
"""

from __future__ import annotations

import itertools
import random
from concurrent.futures import ThreadPoolExecutor

import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET, PARTNER_BUCKET, SAMPLE_BASES
from local_stack.samples import DEFAULT_BOUNDS
from tests.api_helpers import decode_image, sample_tile
from tests.reliability_support import EARTHDATA_PASSWORD, EARTHDATA_USERNAME

PROVIDER_BUCKETS = {"daac-a": DAAC_A_BUCKET, "partner": PARTNER_BUCKET, "own": OWN_BUCKET}  # earthdata, role, default
ROUNDS = 50  # x 9 (object, provider) pairs = 450 requests from 8 threads
THREADS = 8


def _tiles_inside(zooms: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Tiles that lie entirely inside the sample, so every pixel of a good tile is valid."""
    west, south, east, north = DEFAULT_BOUNDS
    tms = morecantile.tms.get("WebMercatorQuad")
    out = []
    for t in tms.tiles(west, south, east, north, zooms=list(zooms)):
        b = tms.bounds(t)
        if b.left >= west and b.right <= east and b.bottom >= south and b.top <= north:
            out.append((t.z, t.x, t.y))
    return out


@pytest.fixture
def load_client(api_env, monkeypatch, recorder):
    monkeypatch.setenv("EARTHDATA_USERNAME", EARTHDATA_USERNAME)
    monkeypatch.setenv("EARTHDATA_PASSWORD", EARTHDATA_PASSWORD)
    from raster_api.main import create_app

    with TestClient(create_app(), raise_server_exceptions=False) as client:
        client.event_hooks["response"].append(recorder.httpx_hook)
        yield client


def _outcome(client: TestClient, urls: dict[str, str], job: tuple[str, str, tuple[int, int, int]]) -> str:
    """'ok', 'refused' or a description of what went wrong."""
    bucket, provider, (z, x, y) = job
    r = client.get(f"/cog/tiles/WebMercatorQuad/{z}/{x}/{y}.png", params={"url": urls[bucket], "provider": provider})
    owner = PROVIDER_BUCKETS[provider] == bucket
    if not owner:
        if r.status_code == 403 and provider in r.text and bucket in r.text:
            return "refused"
        return f"CROSS-PROVIDER {provider}->{bucket}: {r.status_code} {r.text[:100]}"
    if r.status_code != 200:
        return f"error {provider}->{bucket}: {r.status_code} {r.text[:160]}"
    band, alpha = decode_image(r.content)
    if not ((alpha == 255).all() and np.array_equal(band, sample_tile(SAMPLE_BASES[bucket], x, y, z))):
        return f"CROSS-PROVIDER pixels {provider}->{bucket}: {np.unique(band).tolist()[:8]}"
    return "ok"


def test_mixed_provider_load_has_no_errors_and_no_cross_provider_reads(load_client, sample_urls):
    tiles = _tiles_inside((10, 11, 12))
    pairs = list(itertools.product(PROVIDER_BUCKETS.values(), PROVIDER_BUCKETS))  # (object's bucket, provider)
    rng = random.Random(11)
    jobs = [(bucket, provider, rng.choice(tiles)) for _ in range(ROUNDS) for bucket, provider in pairs]
    rng.shuffle(jobs)
    with ThreadPoolExecutor(THREADS) as pool:
        outcomes = list(pool.map(lambda job: _outcome(load_client, sample_urls, job), jobs))
    problems = [o for o in outcomes if o not in ("ok", "refused")]
    assert len(outcomes) == ROUNDS * 9
    assert problems == [], f"{len(problems)} bad answers, e.g. {problems[:5]}"
    assert outcomes.count("ok") == ROUNDS * 3 and outcomes.count("refused") == ROUNDS * 6
