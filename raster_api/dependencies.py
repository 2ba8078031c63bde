"""The titiler side of the provider-read seam: the request's `url` and `?provider=` become a `ReadScope` and a
resolved read, handed to `raster_api.reading.ProviderReader` through the factory's slots.

- `read_scope` (inside `CogReaderParams`, the `reader_dependency`): the request's scope, carrying `?provider=`;
- `DatasetPath` (`path_dependency`): the URL resolved through that scope (a 400/403 before GDAL is ever called);
- `UnsignedEnvironment` (`environment_dependency`): GDAL settings and an *unsigned* session; credentials enter only
  in the reader, so nothing can read with the Lambda's own identity by accident.

The dependencies that only parse and check (no I/O) are `async def`, so FastAPI runs them on the event loop
instead of handing each to the thread pool.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, cast
from urllib.parse import urlencode

import morecantile
import morecantile.errors
from fastapi import Depends, Query, Request
from fastapi.params import Depends as DependsParam
from rasterio.session import AWSSession
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import QueryParams
from titiler.core.dependencies import DefaultDependency
from titiler.core.errors import BadRequestError
from titiler.core.routing import EndpointScope

from raster_api.auth import Caller, TokenVerifier, bearer_token
from raster_api.errors import NO_PIXEL, InvalidToken, Unauthenticated
from raster_api.grants import GRANT_PARAM, GrantSigner
from raster_api.params import MAX_COORDINATE, TILE_MATRIX_SETS, JsonTooLarge, bounded_json, check_feature_areas
from raster_api.reading import ReadScope
from raster_api.routing import ProviderRouter, ResolvedRead

MAX_ZOOM = 30
# GeoJSON bodies (a feature or a feature collection): MultiPolygon coordinates nest 4 deep inside 3 levels of objects.
MAX_BODY_DEPTH = 16
MAX_BODY_BYTES = 4_000_000


def get_router(request: Request) -> ProviderRouter:
    router: ProviderRouter = request.app.state.provider_router
    return router


ProviderRouterDep = Annotated[ProviderRouter, Depends(get_router)]


async def current_caller(
    request: Request,
    access_token: Annotated[
        str | None,
        Query(description="Bearer token, for clients that cannot send `Authorization` (prefer signed tile URLs)"),
    ] = None,
    grant: Annotated[
        str | None,
        Query(description="Signed tile URL grant, as put in the tile URLs of a signed-in caller's TileJSON"),
    ] = None,
) -> Caller | None:
    """The signed-in caller (a bearer token, else a tile grant), or None (anonymous, or no issuer configured).
    Whatever is sent is checked: an invalid one is a 401 even where anonymous reads would do. Checking may fetch the
    issuer's keys or the grant keys, so it runs in the thread pool; an anonymous request never leaves the loop."""
    verifier: TokenVerifier = request.app.state.token_verifier
    if not verifier.configured:
        return None
    token = bearer_token(request.headers.get("authorization"), access_token)
    if token is not None:
        caller = await run_in_threadpool(verifier.verify, token)
    elif grant is not None:
        signer: GrantSigner | None = request.app.state.grant_signer
        if signer is None:
            raise InvalidToken("tile grants are not enabled here: send a bearer token")
        caller = await run_in_threadpool(signer.verify, grant, request)
    else:
        return None
    request.state.user = caller.sub  # the access log's `user`
    return caller


CallerDep = Annotated[Caller | None, Depends(current_caller)]


def sign_tile_urls(request: Request, caller: CallerDep) -> None:
    """For a signed-in caller, the tile URLs a TileJSON, WMTS document or map page hands out carry a grant instead of
    the caller's token: titiler builds them from the request's query, so the query it reads is rewritten here."""
    signer: GrantSigner | None = request.app.state.grant_signer
    if caller is None or signer is None:
        return
    grant = signer.issue(caller, request)
    kept = [(k, v) for k, v in request.query_params.multi_items() if k not in ("access_token", GRANT_PARAM)]
    set_query(request, [*kept, (GRANT_PARAM, grant)])


def set_query(request: Request, items: list[tuple[str, str]]) -> None:
    """Replace the query the endpoint reads (titiler builds the links of its documents from it)."""
    query = urlencode(items)
    request.scope["query_string"] = query.encode()
    request._query_params = QueryParams(query)  # Starlette caches the parsed query on the request titiler reads


def require_caller(request: Request, caller: CallerDep) -> None:
    """Routes that write (registering a search) need a signed-in caller whenever an issuer is configured."""
    if caller is None and request.app.state.token_verifier.configured:
        raise Unauthenticated("this route needs a signed-in caller: send a bearer token")


async def read_scope(
    request: Request,
    caller: CallerDep,
    provider: Annotated[
        str | None,
        Query(description="Provider whose credentials read the dataset; default: the provider owning the bucket"),
    ] = None,
) -> ReadScope:
    return ReadScope(get_router(request), provider, caller=caller)


async def resolved_read(
    url: Annotated[str, Query(description="Dataset URL: `s3://bucket/key` (or a DAAC's https distribution URL)")],
    scope: Annotated[ReadScope, Depends(read_scope)],
) -> ResolvedRead:
    return scope.resolve(url)


async def DatasetPath(read: Annotated[ResolvedRead, Depends(resolved_read)]) -> ResolvedRead:
    """`path_dependency`: the resolved object (the reader opens its canonical GDAL path)."""
    return read


@dataclass(init=False)
class CogReaderParams(DefaultDependency):
    """`reader_dependency`: the request's read scope, passed to `ProviderReader(read, scope=...)`."""

    scope: ReadScope = field(init=False)

    def __init__(self, scope: Annotated[ReadScope, Depends(read_scope)]) -> None:
        self.scope = scope


async def _unsigned_environment(request: Request) -> dict[str, Any]:
    return {**get_router(request).gdal_config, "session": AWSSession(aws_unsigned=True)}


# `environment_dependency`: GDAL settings with an unsigned session (each reader adds its provider's). A coroutine
# function, so FastAPI runs it on the event loop rather than in its thread pool; titiler types the slot as a plain one.
unsigned_environment = cast(Callable[..., dict[str, Any]], _unsigned_environment)


async def valid_tile(request: Request) -> None:
    """Router dependency: tile coordinates outside the tile matrix are a 400, not an empty 200 tile."""
    params = request.path_params
    if not {"tileMatrixSetId", "z", "x", "y"} <= params.keys():
        return
    try:
        tms = TILE_MATRIX_SETS.get(params["tileMatrixSetId"])
        tile = morecantile.Tile(int(params["x"]), int(params["y"]), int(params["z"]))
    except (morecantile.errors.InvalidIdentifier, ValueError):
        return  # the endpoint's own validation answers 422
    # Over-zoom is allowed a little past the TMS's last level; z=1024 would overflow morecantile's arithmetic.
    too_deep = tile.z > max(tms.maxzoom, MAX_ZOOM)
    if too_deep or not tms.is_valid(tile, strict=False):
        raise BadRequestError(f"tile {tile.z}/{tile.x}/{tile.y} does not exist in tile matrix set {tms.id}")


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # the endpoint's own validation answers 422


async def bounded_output(request: Request) -> None:
    """Router dependency for the parameters titiler declares on its endpoints rather than in a dependency slot:
    `tilesize` and the `{width}x{height}` of preview and bbox paths above `RASTER_API_MAX_IMAGE_SIZE` (or below
    1 px), and `/bbox` paths whose min is not below max."""
    limit = request.app.state.settings.api.max_image_size
    sizes = {"tilesize": request.query_params.get("tilesize")}
    sizes.update({name: request.path_params.get(name) for name in ("width", "height")})
    for name, value in sizes.items():
        size = _number(value)
        if size is not None and not 1 <= size <= limit:
            raise BadRequestError(f"{name}={value} must be between 1 and {limit} pixels")
    _check_ranges(request)


async def bounded_query_size(request: Request) -> None:
    """`width`/`height` query parameters of routes that declare them themselves (`/colorMaps` legends, OGC `/map`):
    at most `RASTER_API_MAX_IMAGE_SIZE` px a side."""
    limit = request.app.state.settings.api.max_image_size
    for name in ("width", "height"):
        size = _number(request.query_params.get(name))
        if size is not None and not 1 <= size <= limit:
            raise BadRequestError(f"{name}={request.query_params[name]} must be between 1 and {limit} pixels")


def _numbers(values: list[str]) -> list[float] | None:
    numbers = [_number(value) for value in values]
    return None if None in numbers else [n for n in numbers if n is not None]


def _check_ranges(request: Request) -> None:
    """A `/bbox` path needs min < max (GDAL fails on it with a 500)."""
    names = ("minx", "miny", "maxx", "maxy")
    bbox = _numbers([request.path_params[name] for name in names]) if set(names) <= request.path_params.keys() else None
    if bbox and not all(abs(v) <= MAX_COORDINATE for v in bbox):
        raise BadRequestError(NO_PIXEL)
    if bbox and not (bbox[0] < bbox[2] and bbox[1] < bbox[3]):
        raise BadRequestError(f"bbox {','.join(map(str, bbox))} is empty: min must be below max on both axes")


# pgstac search limits: a negative or absurd value reaches PostgreSQL as an integer it cannot hold.
SEARCH_LIMITS = {"scan_limit": 100_000, "items_limit": 10_000, "time_limit": 60}


async def valid_zooms(request: Request) -> None:
    """Zooms beyond `MAX_ZOOM` on tileset routes are a 400 (morecantile overflows on them: a 500)."""
    for name in ("minzoom", "maxzoom"):
        zoom = _number(request.query_params.get(name))
        if zoom is not None and not 0 <= zoom <= MAX_ZOOM:
            raise BadRequestError(f"{name}={request.query_params[name]} must be between 0 and {MAX_ZOOM}")


async def valid_stac_query(request: Request) -> None:
    """Empty asset names and out-of-range pgstac search limits are a 400 (rio-tiler and pgstac answer them with a
    ValueError or a database error: a 500); asset options (`name|bidx=1`) on `/info`, whose reader takes none."""
    if request.url.path.endswith(("/info", "/info.geojson")) and any(
        "|" in name for name in request.query_params.getlist("assets")
    ):
        raise BadRequestError("asset options (assets=name|...) are not supported on /info")
    if any(not name.strip() for name in request.query_params.getlist("assets")):
        raise BadRequestError("assets must not contain an empty asset name")
    for name, maximum in SEARCH_LIMITS.items():
        value = _number(request.query_params.get(name))
        if value is not None and not 0 < value <= maximum:
            raise BadRequestError(f"{name}={request.query_params[name]} must be between 1 and {maximum}")


def _bboxes(geojson: Any) -> list[Any]:
    """Every `bbox` member of a GeoJSON body: the object's, its geometry's, its features'."""
    if not isinstance(geojson, dict):
        return []
    found = [geojson["bbox"]] if "bbox" in geojson else []
    found += _bboxes(geojson.get("geometry"))
    for feature in geojson.get("features") or []:
        found += _bboxes(feature)
    return found


async def valid_geojson_body(request: Request) -> None:
    """Router dependency: rio-tiler bounds a feature by its GeoJSON `bbox` when it has one and unpacks 4 numbers,
    so a valid 3D bbox (6 numbers) is a 500 there; here it is a 400 that says what to send."""
    if request.method != "POST" or "json" not in request.headers.get("content-type", ""):
        return
    text = (await request.body()).decode("utf-8", errors="replace")
    try:
        body = bounded_json("the request body", text, max_depth=MAX_BODY_DEPTH, max_bytes=MAX_BODY_BYTES)
    except JsonTooLarge:
        raise
    except BadRequestError:
        return  # not JSON: the endpoint's own validation answers 422
    for bbox in _bboxes(body):
        if isinstance(bbox, list) and len(bbox) != 4:
            raise BadRequestError(f"a GeoJSON bbox of {len(bbox)} numbers is not supported: send 4 (2D) or none")
    limits = request.app.state.settings.budget
    check_feature_areas(body, limits.max_features, limits.max_vertices)


def _scopes(*paths: str, method: str = "GET") -> list[EndpointScope]:
    """Example paths (inside a factory's router) that the routes a guard concerns match."""
    return [EndpointScope(path=path, method=method) for path in paths]


TILE_ROUTES = _scopes(
    "/tiles/WebMercatorQuad/0/0/0", "/tiles/WebMercatorQuad/0/0/0.png", "/tiles/WebMercatorQuad/0/0/0/assets"
)
TILESET_ROUTES = _scopes(
    "/WebMercatorQuad/tilejson.json",
    "/WebMercatorQuad/map.html",
    "/WMTSCapabilities.xml",
    "/tiles",
    "/tiles/WebMercatorQuad",
)
MAP_ROUTES = _scopes("/map")
# Every route whose document carries the request's query into links: tile URLs, and the tilesets' own links.
SIGNED_URL_ROUTES = _scopes(
    "/WebMercatorQuad/tilejson.json",
    "/WebMercatorQuad/map.html",
    "/WMTSCapabilities.xml",
    "/tiles",
    "/tiles/WebMercatorQuad",
)
SIZED_ROUTES = [*_scopes("/preview/1x1.png", "/bbox/0,0,1,1/1x1.png"), *_scopes("/feature/1x1.png", method="POST")]
BBOX_ROUTES = _scopes("/bbox/0,0,1,1.png", "/bbox/0,0,1,1/1x1.png", "/bbox/0,0,1,1/assets")
FEATURE_ROUTES = _scopes("/feature", "/feature.png", "/feature/1x1.png", "/statistics", method="POST")

# titiler's `route_dependencies`: each guard runs on the routes whose parameters it checks (COG, mosaic, item).
ROUTE_GUARDS: list[tuple[list[EndpointScope], list[DependsParam]]] = [
    (TILE_ROUTES, [Depends(valid_tile), Depends(bounded_output)]),
    (TILESET_ROUTES, [Depends(bounded_output), Depends(valid_zooms)]),
    (SIZED_ROUTES, [Depends(bounded_output)]),
    (BBOX_ROUTES, [Depends(bounded_output)]),
    (FEATURE_ROUTES, [Depends(valid_geojson_body)]),
    (MAP_ROUTES, [Depends(bounded_query_size)]),
    (SIGNED_URL_ROUTES, [Depends(sign_tile_urls)]),
]
# The mosaic and item routers' own query parameters, valid on each of their routes.
STAC_ROUTER_GUARDS: list[DependsParam] = [Depends(valid_stac_query)]
