"""Property-based requests against every route of the app's OpenAPI (schemathesis 4, Python API, in-process ASGI).

Positive and negative cases for each operation, with `url` drawn from the sample objects plus junk (so generated
requests exercise provider routing and real reads without waiting on timeouts) and `provider` from the configured
names plus an unknown one. The app must never answer 5xx, and no body may exceed `MAX_RESPONSE_BYTES` (8 MiB: the
largest legitimate answer here is a preview or part of a 512 px sample).
"""

from __future__ import annotations

import contextlib
import re
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.python import asgi

from tests.reliability_support import (
    EARTHDATA_PASSWORD,
    EARTHDATA_USERNAME,
    MAX_RESPONSE_BYTES,
    TrafficRecorder,
)

EXAMPLES_PER_OPERATION = 20
MIN_TOTAL_REQUESTS = 500
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


@pytest.fixture(scope="module")
def recorder():
    with TrafficRecorder().recording() as rec:
        yield rec


@pytest.fixture
def api_schema(api_env, monkeypatch):
    monkeypatch.setenv("EARTHDATA_USERNAME", EARTHDATA_USERNAME)
    monkeypatch.setenv("EARTHDATA_PASSWORD", EARTHDATA_PASSWORD)
    from raster_api.main import create_app

    app = create_app()

    async def served(scope: Any, receive: Any, send: Any) -> None:
        # As under uvicorn: Starlette's ServerErrorMiddleware has already answered 500 when it re-raises.
        with contextlib.suppress(Exception):
            await app(scope, receive, send)

    return schemathesis.openapi.from_asgi(app.openapi_url or "/openapi.json", served)


def _with_routing_values(case: Any, url: str, provider: str | None) -> None:
    """Replace generated `url`/`provider` query values by routing-relevant ones (only where the route has them)."""
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


def _exercise(operation: Any, urls: list[str], client: Any, recorder: TrafficRecorder) -> tuple[int, list[str]]:
    """Run one operation's generated cases; returns (requests made, problems)."""
    made = 0
    problems: list[str] = []
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, url=st.sampled_from(urls), provider=st.sampled_from(PROVIDERS))
    def run(case: Any, url: str, provider: str | None) -> None:
        nonlocal made
        _with_routing_values(case, url, provider)
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
        + "\n".join(by_route.values())
        + "\nexceptions logged:\n"
        + "\n".join(errors[:30])
    )


def test_no_secret_in_this_modules_logs_or_bodies(recorder, lambda_keys, daac_keys):
    secrets = [*lambda_keys.secret_values(), *(v for k in daac_keys.values() for v in k.secret_values())]
    assert len(recorder.bodies) >= MIN_TOTAL_REQUESTS
    assert recorder.leaks([*secrets, EARTHDATA_PASSWORD]) == []
