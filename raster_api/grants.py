"""Signed tile URLs ("grants"): a signed-in caller's map gets tile URLs that carry a short-lived signature instead
of the caller's bearer token.

Map libraries cannot set headers on tile requests, so before grants a restricted map carried the whole OpenID Connect
token in every tile URL (`access_token=`): valid for up to an hour for every provider the user may read, and copied
into browser history, `Referer`s and proxy logs. Now a TileJSON, WMTS capabilities document or map page requested
with a token (header or `access_token`) gets tile URLs with `grant=<signature>` and no token:

- a grant names the caller (`sub`, groups) and binds what the URL reads and how it renders: the route's path
  parameters (a search, a collection, an item) and every query parameter (`url`, `provider`, `bidx`, `rescale`,
  `expression`, ...) except those that only choose the tile grid, its size or the output format (`UNBOUND_QUERY`);
  changing any bound value, or the expiry, breaks the signature;
- it expires after `RASTER_API_GRANT_TTL` seconds (default 3600), never after the token it was issued for;
- it is accepted only by the routes that a tile URL template, or a map page built from it, needs (`GRANT_ROUTES`),
  with no token; the reads it allows are authorized again, for the grant's caller, by the read seam;
- it is signed with itsdangerous (HMAC-SHA256 over a JSON payload) under keys from `RASTER_API_GRANT_KEYS` or the
  Secrets Manager secret `RASTER_API_GRANT_SECRET_ID` (its AWSCURRENT version signs, AWSPREVIOUS still verifies, so
  a rotation invalidates nothing that is still within its lifetime). Neither keys nor grants are ever logged.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from itsdangerous import BadSignature, URLSafeSerializer
from starlette.requests import Request

from raster_api.auth import Caller
from raster_api.errors import InvalidToken, IssuerUnavailable
from raster_api.reuse import reused_for
from raster_api.settings import GrantSettings

GRANT_PARAM = "grant"
# What a grant is for: tiles, and the documents and page that hand out tile URLs (the map page fetches its TileJSON
# with the grant it was given).
GRANT_ROUTES = frozenset({"tile", "tilejson", "map_viewer", "wmts", "tileset_list", "tileset"})
# Query parameters that only choose the tile grid, the tile size or the format (titiler adds or drops them between a
# TileJSON and its tile URLs, and a WMTS client adds OGC's), or that carry credentials.
UNBOUND_QUERY = frozenset(
    {
        GRANT_PARAM,
        "access_token",
        "tilematrixsetid",
        "tile_format",
        "tile_scale",
        "tilesize",
        "minzoom",
        "maxzoom",
        "zooms",
        "use_epsg",
        "service",
        "request",
        "acceptversions",
        "sections",
        "updatesequence",
        "acceptformats",
    }
)
UNBOUND_PATH = frozenset({"z", "x", "y", "tileMatrixSetId", "format"})
SALT = "raster-api tile grant"
CLOCK_SKEW = 60


def binding(request: Request) -> str:
    """A digest of what the request reads and how it renders: its route's bound path parameters and query items."""
    path = sorted((k, str(v)) for k, v in request.path_params.items() if k not in UNBOUND_PATH)
    # In the request's order, not sorted: of a parameter given twice FastAPI reads the last, so order is meaning.
    query = [(k, v) for k, v in request.query_params.multi_items() if k.lower() not in UNBOUND_QUERY]
    canonical = json.dumps({"path": path, "query": query}, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def route_name(request: Request) -> str | None:
    route = request.scope.get("route")
    return getattr(route, "name", None)


class GrantSigner:
    """Issues and checks grants with the current keys (newest last: it signs; every key verifies)."""

    def __init__(self, keys: Callable[[], Sequence[str]], ttl: int, now: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self.ttl = ttl
        self.now = now

    def _serializer(self) -> URLSafeSerializer:
        keys = list(self._keys())
        if not keys:
            raise ValueError("no grant key")
        return URLSafeSerializer(keys, salt=SALT)

    def issue(self, caller: Caller, request: Request) -> str:
        """A grant for `caller` to read what `request` names, until the TTL or the caller's own expiry."""
        expires = int(self.now()) + self.ttl
        if caller.expires is not None:
            expires = min(expires, int(caller.expires))
        payload = {"sub": caller.sub, "groups": sorted(caller.groups), "exp": expires, "bind": binding(request)}
        return str(self._serializer().dumps(payload))

    def verify(self, grant: str, request: Request) -> Caller:
        """The caller a valid grant was issued to; 401 (with what to do) when it is forged, for another request, or
        expired."""
        if route_name(request) not in GRANT_ROUTES or request.method not in ("GET", "HEAD"):
            raise InvalidToken("a tile grant is only accepted by tile, TileJSON, WMTS and map routes")
        try:
            payload: Any = self._serializer().loads(grant)
        except BadSignature:
            raise InvalidToken(
                "the tile grant is not valid: fetch a fresh TileJSON (a signed-in request gets signed tile URLs)"
            ) from None
        if not isinstance(payload, dict) or not {"sub", "groups", "exp", "bind"} <= payload.keys():
            raise InvalidToken("the tile grant is not valid: fetch a fresh TileJSON")
        if payload["bind"] != binding(request):
            raise InvalidToken(
                "the tile grant was issued for another dataset, provider or parameters: fetch a fresh TileJSON for "
                "these"
            )
        if int(payload["exp"]) <= self.now():
            expired = datetime.fromtimestamp(int(payload["exp"]), UTC).isoformat(timespec="seconds")
            raise InvalidToken(f"the tile grant expired at {expired}: fetch a fresh TileJSON")
        if int(payload["exp"]) > self.now() + self.ttl + CLOCK_SKEW:  # never issued here: a leaked key's forgery
            raise InvalidToken("the tile grant is not valid: fetch a fresh TileJSON")
        return Caller(
            sub=str(payload["sub"]),
            username=None,
            groups=frozenset(str(g) for g in payload["groups"]),
            expires=float(payload["exp"]),
        )


def grant_keys(settings: GrantSettings, timer: Callable[[], float] = time.monotonic) -> Callable[[], Sequence[str]]:
    """The keys, oldest first: the setting's, or the secret's AWSPREVIOUS and AWSCURRENT versions re-read at most once
    per `secret_ttl` (a rotation is picked up within it)."""
    if not settings.secret_id:
        keys = tuple(settings.keys)
        return lambda: keys
    secret_id = settings.secret_id

    held: list[tuple[str, ...]] = []  # the last keys read: kept while Secrets Manager is unreachable

    def load() -> tuple[str, ...]:
        from botocore.exceptions import BotoCoreError, ClientError

        from providers.aws import client

        found = []
        try:
            secrets = client("secretsmanager")
            for stage in ("AWSPREVIOUS", "AWSCURRENT"):
                try:
                    found.append(str(secrets.get_secret_value(SecretId=secret_id, VersionStage=stage)["SecretString"]))
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code")
                    if stage == "AWSCURRENT" or code != "ResourceNotFoundException":
                        raise
        except (ClientError, BotoCoreError) as exc:
            if held:
                return held[0]
            raise IssuerUnavailable(
                f"the tile grant keys are unavailable ({type(exc).__name__}); retry later"
            ) from None
        held[:] = [tuple(found)]
        return held[0]

    return reused_for(settings.secret_ttl, load, timer)
