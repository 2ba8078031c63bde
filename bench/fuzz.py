"""`python -m bench --only fuzz`: thousands of generated requests on the raster API, counted by status.

The test suite runs the same kind of generation with a CI-sized budget; here the budget is large. Three families:
JSON-valued and numeric rendering parameters on a tile, dataset URLs in every spelling (routing and canonical
keys), and statistics parameters. The verdict is the count of 5xx answers: zero is the target.
"""

from __future__ import annotations

import functools
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.report import Row, Section

TILE = "/cog/tiles/WebMercatorQuad/10/171/407.png"

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5),
    max_leaves=40,
)
JSON_TEXT = JSON_VALUES.map(json.dumps) | st.text(max_size=40) | st.integers(1, 6000).map(lambda n: "[" * n)
NUMBERS = st.one_of(st.integers(-(10**12), 10**12).map(str), st.floats().map(str), st.text(max_size=6))
ALGORITHMS = st.sampled_from(["hillshade", "contours", "normalizedIndex", "terrarium", "grayscale", "sum", "cast"])
FORMULA_OPS = st.sampled_from(["gamma", "saturation", "sigmoidal", "", "r", "rgb", "b"])


def _tile_params(url: str) -> st.SearchStrategy[dict[str, str]]:
    optional = st.fixed_dictionaries(
        {},
        optional={
            "colormap": JSON_TEXT,
            "algorithm": ALGORITHMS,
            "algorithm_params": JSON_TEXT,
            "color_formula": st.lists(FORMULA_OPS | NUMBERS, max_size=5).map(" ".join),
            "rescale": st.tuples(NUMBERS, NUMBERS).map(",".join),
            "bidx": st.integers(-3, 5).map(str),
            "expression": st.lists(
                st.sampled_from(["b1", "b2", "+", "*", "(", ")", "sqrt", "x", "1e5"]), max_size=6
            ).map("".join),
            "nodata": NUMBERS,
            "buffer": NUMBERS,
        },
    )
    return optional.map(lambda params: {"url": url, **params})


def _urls(sample_urls: dict[str, str]) -> st.SearchStrategy[dict[str, str]]:
    buckets = st.sampled_from([*sample_urls, "own-data", "some-unlisted-bucket", "Bad_Bucket"])
    segments = st.sampled_from(["a", "..", ".", "", "%2e%2e", "\\", "\x00", "é", "cogs", "sample.tif", "?", "#"])
    keys = st.lists(segments, max_size=6).map("/".join) | st.sampled_from(
        [u.split("/", 3)[3] for u in sample_urls.values()]
    )
    url = st.builds(lambda b, k: f"s3://{b}/{k}", buckets, keys) | st.builds(
        lambda b, k: f"http://127.0.0.1:9/{b}/{k}", buckets, keys
    )
    provider = st.sampled_from([None, "own", "partner", "daac-a", "daac-b", "nobody"])
    return st.builds(lambda u, p: {"url": u, **({"provider": p} if p else {})}, url, provider)


def _statistics_params(url: str) -> st.SearchStrategy[dict[str, str]]:
    optional = st.fixed_dictionaries(
        {},
        optional={
            "histogram_bins": st.lists(st.integers(0, 20000).map(str), min_size=1, max_size=4).map(",".join),
            "histogram_range": st.tuples(NUMBERS, NUMBERS).map(",".join),
            "p": st.integers(-5, 200).map(str),
            "max_size": NUMBERS,
            "categorical": st.sampled_from(["true", "false", "x"]),
        },
    )
    return optional.map(lambda params: {"url": url, **params})


def run_fuzz(app: Any, sample_urls: dict[str, str], own_url: str, examples: int) -> Section:
    from fastapi.testclient import TestClient

    section = Section(name="fuzz")
    families: list[tuple[str, str, st.SearchStrategy[dict[str, str]]]] = [
        ("tile rendering parameters", TILE, _tile_params(own_url)),
        ("dataset URLs and providers", "/cog/statistics", _urls(sample_urls)),
        ("statistics parameters", "/cog/statistics", _statistics_params(own_url)),
    ]
    with TestClient(app, raise_server_exceptions=False) as client:
        for family, path, strategy in families:
            counts: Counter[int] = Counter()
            failures: list[str] = []
            start = time.monotonic()
            _run(examples, strategy, functools.partial(_request, client, path, counts=counts, failures=failures))
            total = sum(counts.values())
            fives = sum(n for code, n in counts.items() if code >= 500)
            spread = ", ".join(f"{code}: {n}" for code, n in sorted(counts.items()))
            section.rows.append(
                Row("fuzz", f"{family} ({path})", f"{total} cases, {fives} × 5xx", "0 × 5xx", fives == 0, spread)
            )
            section.data[family] = {
                "cases": total,
                "statuses": dict(counts),
                "seconds": round(time.monotonic() - start, 1),
                "5xx_examples": failures[:10],
            }
    return section


def _request(client: Any, path: str, params: dict[str, str], *, counts: Counter[int], failures: list[str]) -> None:
    response = client.get(path, params=params)
    counts[response.status_code] += 1
    if response.status_code >= 500:
        failures.append(json.dumps(params)[:300])


def _run(examples: int, strategy: st.SearchStrategy[dict[str, str]], case: Callable[[dict[str, str]], None]) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def generated(params: dict[str, str]) -> None:
        case(params)

    generated()
