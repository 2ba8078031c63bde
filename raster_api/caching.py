"""`Cache-Control` on every response, chosen by what the response is and whom it was for.

A CDN (CloudFront in the deployment, nginx in the local stack) keys entries on the path and the query string only, so
the origin decides what may be shared. In order:
1. anything that read a restricted provider's object (`access` not public), and any answer to a request that
   carried a token (`Authorization`, `access_token`, a tile `grant`), is `private, no-store`: it was allowed for this caller, or may
   embed the token (a TileJSON's tile URLs), and must never be served to another (RFC 6750 §2.3);
2. 401/403 depend on the caller's token: `private, no-store`; 429 and every 5xx are transient: `no-store`;
3. `/providers` (filtered per caller, live credential health), `/healthz` and `/cog/download` (a URL that expires)
   are `no-store`; so is every method but GET/HEAD;
4. 404 and the other 4xx get their own short TTLs; 2xx images the long one, other 2xx documents a shorter one.

A `Cache-Control` the route set itself is kept (only rule 1 overrides it). Applied by
`raster_api.middleware.RequestMiddleware` to every answer, CORS preflights included (`no-store`: not a GET); bodies
are streamed untouched.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.datastructures import MutableHeaders
from starlette.types import Scope

from raster_api.grants import GRANT_PARAM
from raster_api.reading import current_read_log
from raster_api.settings import CacheSettings

PRIVATE = "private, no-store"
NO_STORE = "no-store"
# Responses that are about the caller or the moment, never about an object.
UNCACHEABLE_PATHS = re.compile(r"^/(providers(/.*)?|healthz|cog/download)$")
CALLER_DEPENDENT_STATUSES = frozenset({401, 403})


@dataclass(frozen=True)
class CachePolicy:
    settings: CacheSettings

    def header(self, method: str, path: str, status: int, media_type: str, restricted: bool) -> str | None:
        """The `Cache-Control` value, or None to keep what the route set (or set nothing)."""
        if restricted or status in CALLER_DEPENDENT_STATUSES:
            return PRIVATE
        if status == 429 or status >= 500 or method not in ("GET", "HEAD") or UNCACHEABLE_PATHS.match(path):
            return NO_STORE
        if status == 404:
            return self.settings.not_found
        if status >= 400:
            return self.settings.client_error
        if 200 <= status < 300:
            return self.settings.tiles if media_type.startswith("image/") else self.settings.metadata
        return None  # redirects and the like keep their own

    def apply(self, scope: Scope, status: int, headers: MutableHeaders) -> None:
        """Set `Cache-Control` on a response's start (`raster_api.middleware.RequestMiddleware`). The request's reads
        are all known once the response starts (a tile is rendered before it is sent)."""
        log = current_read_log()
        restricted = (
            log.restricted or any(not read.provider.is_public for read in log.snapshot()) or _carries_token(scope)
        )
        value = self.header(scope["method"], scope["path"], status, headers.get("content-type", ""), restricted)
        if value is not None and (restricted or "cache-control" not in headers):
            headers["Cache-Control"] = value


def _carries_token(scope: Scope) -> bool:
    if any(name == b"authorization" for name, _ in scope.get("headers", [])):
        return True
    names = {name.lower() for name, _ in parse_qsl(scope.get("query_string", b"").decode("latin-1"), True)}
    return bool(names & {"access_token", GRANT_PARAM})
