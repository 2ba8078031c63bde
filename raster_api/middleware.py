"""The edge of every request (`RequestMiddleware`): one structured JSON access-log line per request, so we can always
tell who read what, the error net, the response size limit and the cache policy, in one layer.

Pure ASGI (no `BaseHTTPMiddleware`, which would buffer tile bodies). The request id is API Gateway's when the request
came through Mangum, else a generated one, and is echoed in `x-request-id`. The objects read come from the request's
`raster_api.reading.ReadLog`, filled by the provider-read seam: `provider`, `bucket` and `key` name the first one,
`reads` lists every one (a mosaic tile reads many). Query-string values that could be secrets are redacted before
they reach the log.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from raster_api.budget import CostMeter
from raster_api.caching import CachePolicy
from raster_api.errors import error_response
from raster_api.reading import ReadLog, read_log
from raster_api.routing import ResolvedRead
from raster_api.settings import BudgetSettings

access_logger = logging.getLogger("raster_api.access")
error_logger = logging.getLogger("raster_api.errors")

REDACTED = "[REDACTED]"
_SECRET_PARAM = re.compile(r"token|secret|password|passwd|signature|credential|auth|key|session|grant", re.IGNORECASE)
# Keys that are not secrets even though they match the pattern above.
_PUBLIC_PARAMS = frozenset({"colormap_name", "url", "provider"})


def redact_query(query: str) -> str:
    """The query string with secret-looking parameters and the query part of URL values redacted."""
    parts = []
    for name, value in parse_qsl(query, keep_blank_values=True):
        # `x=1;access_token=...` is one parameter `x` to Starlette, but a secret all the same.
        hidden = [part.partition("=")[0] for part in value.split(";")[1:] if "=" in part]
        if (name not in _PUBLIC_PARAMS and _SECRET_PARAM.search(name)) or any(_SECRET_PARAM.search(h) for h in hidden):
            value = REDACTED
        elif "://" in value and "?" in value:
            value = value.split("?", 1)[0] + "?" + REDACTED
        parts.append(f"{name}={value}")
    return "&".join(parts)


def _request_id(scope: Scope) -> str:
    event = scope.get("aws.event") or {}
    request_id = (event.get("requestContext") or {}).get("requestId") if isinstance(event, dict) else None
    return str(request_id) if request_id else uuid.uuid4().hex


def _route(scope: Scope) -> str:
    """The route template (`/cog/tiles/{tileMatrixSetId}/...`), prefix included, else the raw path."""
    # FastAPI >= 0.120 keeps the prefixed template on the effective route context of included routers.
    fastapi_state = scope.get("fastapi")
    context = fastapi_state.get("effective_route_context") if isinstance(fastapi_state, dict) else None
    for holder in (context, scope.get("route")):
        path = getattr(holder, "path_format", None)
        if path:
            return str(path)
    return str(scope.get("path", ""))


@dataclass(frozen=True)
class RequestMiddleware:
    """The edge of every request, in one pure-ASGI layer with one `send` wrapper (a layer per job cost a coroutine per
    message each: `python -m bench --only floor`, docs/benchmarking.md):

    - the access log: one JSON line per request, `{"request_id", "method", "route", "path", "query", "provider",
      "bucket", "key", "status", ...}`, handed with the request's reads to `metrics` (`raster_api.metrics`) when set;
      the request id is echoed in `x-request-id`;
    - the error net: any exception the app raises before its response starts is a logged 500 with the generic body;
    - `Accept` made parseable for titiler (`well_formed_accept`);
    - the response size limit: a 413 in words instead of a body over `max_response_bytes`;
    - `Cache-Control` by `raster_api.caching.CachePolicy`, on every answer including the 413 and the 500."""

    app: ASGIApp
    cache_policy: CachePolicy
    max_response_bytes: int
    metrics: Callable[[dict[str, Any], ReadLog], None] | None = None
    # Each request's budgets (`raster_api.budget`); the clock is injectable for tests.
    budget: BudgetSettings | None = None
    clock: Callable[[], float] = time.monotonic

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        state: dict[str, Any] = scope.setdefault("state", {})
        request_id = _request_id(scope)
        state["request_id"] = request_id
        _make_accept_parseable(scope)
        response: dict[str, int] = {"status": 500, "bytes": 0}
        started = refused = False

        async def send_out(message: Message) -> None:
            if message["type"] == "http.response.start":
                response["status"] = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                self.cache_policy.apply(scope, message["status"], headers)
            elif message["type"] == "http.response.body":
                response["bytes"] += len(message.get("body", b""))
            await send(message)

        async def send_wrapper(message: Message) -> None:
            nonlocal started, refused
            if message["type"] == "http.response.start":
                started = True
                if (too_large := self._refusal_of_size(scope, message)) is not None:
                    refused = True
                    await too_large(scope, receive, send_out)
                    return
            if not refused:
                await send_out(message)

        with read_log(CostMeter(self.budget or BudgetSettings(), clock=self.clock)) as reads:
            try:
                await self.app(scope, receive, send_wrapper)
            except Exception as exc:  # the last line of defence: every known error is mapped by raster_api.errors
                error_logger.error("unhandled %s on %s", type(exc).__name__, scope.get("path"), exc_info=exc)
                if started:
                    raise  # a body is on its way: nothing valid can be sent any more
                answer = error_response(scope, 500, "internal server error", {"Cache-Control": "no-store"})
                await answer(scope, receive, send_out)
            finally:
                record = self._record(scope, state, reads.snapshot(), response, start)
                record["budget"] = state.get("budget")
                access_logger.info(json.dumps(record, separators=(",", ":")))
                if self.metrics is not None:
                    self.metrics(record, reads)

    def _refusal_of_size(self, scope: Scope, start: Message) -> JSONResponse | None:
        """A 413 for a response whose `content-length` (titiler's responses carry one; after compression) is over the
        limit, keeping its CORS headers; None for any other. Lambda returns at most 6 MB synchronously, and API Gateway
        gets binary bodies base64-encoded (4/3 larger), so a bigger tile, preview or part would fail as an opaque 502
        at the gateway; here the client learns what to change, and nothing is buffered."""
        headers = MutableHeaders(scope=start)
        length = headers.get("content-length")
        if length is None or not length.isdigit() or int(length) <= self.max_response_bytes:
            return None
        detail = (
            f"the response would be {length} bytes, more than the limit of {self.max_response_bytes} "
            "(RASTER_API_MAX_RESPONSE_BYTES): ask for a smaller width/height/max_size or a compressed format"
        )
        cors = {name: value for name, value in headers.items() if name.startswith("access-control-") or name == "vary"}
        return error_response(scope, 413, detail, cors)

    @staticmethod
    def _record(
        scope: Scope, state: dict[str, Any], reads: list[ResolvedRead], response: dict[str, int], start: float
    ) -> dict[str, Any]:
        read = reads[0] if reads else None
        query = scope.get("query_string", b"").decode("latin-1")
        return {
            "type": "access",
            "request_id": state.get("request_id"),
            "user": state.get("user"),  # the caller's `sub`; never the token
            "method": scope.get("method"),
            "route": _route(scope),
            "path": scope.get("path"),
            "query": redact_query(query) if query else "",
            "provider": read.provider.name if read is not None else None,
            "bucket": read.location.bucket if read is not None else None,
            "key": read.location.key if read is not None else None,
            "reads": [{"provider": r.provider.name, "bucket": r.location.bucket, "key": r.location.key} for r in reads],
            "status": response["status"],
            "duration_ms": round((time.perf_counter() - start) * 1000, 1),
            "bytes": response["bytes"],
        }


def well_formed_accept(value: str) -> str:
    """`Accept` with the media-range parameters that are not `name=value` dropped (`text/html;foo` -> `text/html`)."""
    ranges = []
    for media_range in value.split(","):
        media_type, *params = (part.strip() for part in media_range.split(";"))
        kept = [p for p in params if p.count("=") == 1 and not p.startswith("=")]
        ranges.append(";".join([media_type, *kept]))
    return ",".join(ranges)


def _make_accept_parseable(scope: Scope) -> None:
    """titiler negotiates formats from `Accept` itself and fails (a 500) on a parameter that is not `name=value`
    (`text/html;foo`, `application/json;q`): such parameters are dropped, so the library only ever receives media
    ranges it can parse (RFC 9110 parameters are `name=value`; the media type itself is kept)."""
    headers = scope["headers"]
    fixed = [
        (name, well_formed_accept(value.decode("latin-1")).encode("latin-1") if name == b"accept" else value)
        for name, value in headers
    ]
    if fixed != headers:
        scope["headers"] = fixed
