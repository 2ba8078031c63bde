"""Property-based requests against every route of the app's OpenAPI (schemathesis 4, Python API, in-process ASGI).

Positive and negative cases for each operation, with `url` drawn from the sample objects plus junk (so generated
requests exercise provider routing and real reads without waiting on timeouts), `provider` from the configured names
plus an unknown one, and (with a pgstac database, when PostgreSQL is installed) search/collection/item ids drawn from
the loaded catalogue plus unknown ones. The app must never answer 5xx, and no body may exceed `MAX_RESPONSE_BYTES`
(8 MiB: the largest legitimate answer here is a preview or part of a 512 px sample).

CI runs a fixed (derandomized) set. To hunt for new failures, run with fresh random cases and more of them, e.g.
`RELIABILITY_FUZZ_EXAMPLES=60 .venv/bin/pytest tests/test_reliability_schemathesis.py` (every 5xx found that way
so far has a regression test in test_api_errors.py or test_pgstac_mosaics.py).
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi

from local_stack.aws_world import SAMPLE_KEYS
from local_stack.samples import DEFAULT_BOUNDS
from tests.reliability_support import (
    EARTHDATA_PASSWORD,
    EARTHDATA_USERNAME,
    MAX_RESPONSE_BYTES,
    TrafficRecorder,
)

FUZZ_EXAMPLES = int(os.environ.get("RELIABILITY_FUZZ_EXAMPLES", "0"))  # > 0: random cases, this many per operation
EXAMPLES_PER_OPERATION = FUZZ_EXAMPLES or 14
MIN_TOTAL_REQUESTS = 350
PGSTAC_EXAMPLES_PER_OPERATION = FUZZ_EXAMPLES or 6
COLLECTION = "reliability-samples"
JUNK_URLS = [
    "",
    "not a url",
    "s3://",
    "s3://own-data/",
    "s3://UPPER_CASE/x.tif",
    "s3://unlisted-bucket/x.tif",
    "s3://own-data/does/not/exist.tif",
    "s3://daac-b-protected/../../etc/passwd",
    "https://example.invalid/a.tif",
    "file:///etc/passwd",
    "/vsicurl/http://127.0.0.1:9/x.tif",
    "http://127.0.0.1:9/daac-a-protected/HLSL30.020/sample/sample.B04.tif",
]
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(Error|Exception)\b.*")  # a traceback's last line
PROVIDERS = [None, "daac-a", "daac-b", "partner", "own", "nobody", ""]


def _schema(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The app's schema, built after the environment is set; 500s come back as responses, as under uvicorn."""
    monkeypatch.setenv("EARTHDATA_USERNAME", EARTHDATA_USERNAME)
    monkeypatch.setenv("EARTHDATA_PASSWORD", EARTHDATA_PASSWORD)
    from raster_api.main import create_app

    app = create_app()

    async def served(scope: Any, receive: Any, send: Any) -> None:
        # Starlette's ServerErrorMiddleware has already answered 500 when it re-raises.
        with contextlib.suppress(Exception):
            await app(scope, receive, send)

    return schemathesis.openapi.from_asgi(app.openapi_url or "/openapi.json", served)


@pytest.fixture
def api_schema(api_env, monkeypatch):
    return _schema(monkeypatch)


@pytest.fixture(scope="module")
def pgstac_dsn(aws_world, sample_urls, pgstac_db):
    """A pgstac database holding one collection with an item per sample (two providers' buckets among them)."""
    from local_stack.pgstac_db import (
        load_collections,
        load_items,
        stac_collection,
        stac_item,
    )

    load_collections(pgstac_db.dsn, [stac_collection(COLLECTION, DEFAULT_BOUNDS)])
    items = [stac_item(COLLECTION, bucket, url, DEFAULT_BOUNDS) for bucket, url in sample_urls.items()]
    load_items(pgstac_db.dsn, items)
    return pgstac_db


@pytest.fixture
def pgstac_schema(api_env, monkeypatch, pgstac_dsn):
    for key, value in pgstac_dsn.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RASTER_API_PGSTAC_ENABLED", "true")
    return _schema(monkeypatch)


def _with_routing_values(case: Any, url: str, provider: str | None, ids: dict[str, str]) -> None:
    """Replace generated `url`/`provider` query values (and pgstac ids) by routing-relevant ones where the route has
    them; `ids` holds a drawn value per path parameter (an existing collection, item or search, or junk)."""
    path = dict(case.path_parameters or {})
    for name, value in ids.items():
        if name in path:
            path[name] = value
    case.path_parameters = path
    names = {p.name for p in case.operation.query}
    query = dict(case.query or {})
    if "url" in names:
        query["url"] = url
    if "provider" in names:
        if provider is None:
            query.pop("provider", None)
        else:
            query["provider"] = provider
    case.query = query


def _exercise(
    operation: Any,
    urls: list[str],
    client: Any,
    recorder: TrafficRecorder,
    examples: int = EXAMPLES_PER_OPERATION,
    known_ids: dict[str, list[str]] | None = None,
) -> tuple[int, list[str]]:
    """Run one operation's generated cases; returns (requests made, problems)."""
    id_choices = st.fixed_dictionaries({k: st.sampled_from(v) for k, v in (known_ids or {}).items()})
    made = 0
    problems: list[str] = []
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=not FUZZ_EXAMPLES,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, url=st.sampled_from(urls), provider=st.sampled_from(PROVIDERS), ids=id_choices)
    def run(case: Any, url: str, provider: str | None, ids: dict[str, str]) -> None:
        nonlocal made
        _with_routing_values(case, url, provider, ids)
        response = case.call(session=client)
        made += 1
        recorder.response(response.status_code, response.headers.items(), response.content)
        label = f"{case.method} {case.formatted_path} query={case.query}"
        if response.status_code >= 500:
            problems.append(f"{response.status_code} {label}: {response.content[:200]!r}")
        if len(response.content) > MAX_RESPONSE_BYTES:
            problems.append(f"{len(response.content)} bytes > limit: {label}")

    run()
    return made, problems


def test_generated_requests_on_every_route_get_no_5xx_and_bounded_bodies(api_schema, sample_urls, recorder):
    urls = [*sample_urls.values(), *JUNK_URLS]
    operations = [result.ok() for result in api_schema.get_all_operations()]
    total = 0
    problems: list[str] = []
    with asgi.get_client(api_schema.app) as client:
        for operation in operations:
            made, found = _exercise(operation, urls, client, recorder)
            total += made
            problems += found
    assert len(operations) >= 25, [op.label for op in operations]
    assert total >= MIN_TOTAL_REQUESTS
    assert problems == [], _summary(problems, recorder)


def test_generated_requests_on_pgstac_routes_get_no_5xx_and_bounded_bodies(pgstac_schema, sample_urls, recorder):
    urls = [*sample_urls.values(), *JUNK_URLS]
    operations = [result.ok() for result in pgstac_schema.get_all_operations()]
    mosaic_ops = [op for op in operations if op.path.startswith(("/searches", "/collections"))]
    total = 0
    problems: list[str] = []
    with asgi.get_client(pgstac_schema.app) as client:
        registered = client.post("/searches/register", json={"collections": [COLLECTION]})
        assert registered.status_code == 200, registered.text
        known_ids = {
            "search_id": [registered.json()["id"], "0" * 32, "not-a-search"],
            "collection_id": [COLLECTION, "no-such-collection"],
            "item_id": [*SAMPLE_KEYS, "no-such-item"],
        }
        for operation in mosaic_ops:
            made, found = _exercise(operation, urls, client, recorder, PGSTAC_EXAMPLES_PER_OPERATION, known_ids)
            total += made
            problems += found
    assert len(mosaic_ops) >= 15, [op.label for op in operations]
    assert total >= len(mosaic_ops) * 4
    assert problems == [], _summary(problems, recorder)


def _summary(problems: list[str], recorder: TrafficRecorder) -> str:
    """One example per route and the distinct exceptions the app logged, so a failure reads as a bug list."""
    by_route: dict[str, str] = {}
    for p in problems:
        by_route.setdefault(p.split(" query=")[0].split(" ", 1)[1], p)
    errors = sorted(
        {last for text in recorder.lines if (last := text.splitlines()[-1].strip()) and EXCEPTION_LINE.match(last)}
    )
    return (
        f"{len(problems)} problems on {len(by_route)} routes:\n"
        + "\n".join(p[:300] for p in by_route.values())
        + "\nexceptions logged:\n"
        + "\n".join(errors[:30])
    )
