"""The titiler seam: where a request's `url` and `?provider=` become a GDAL path and a credentialed GDAL env.

`DatasetPath` (the factory's `path_dependency`) and `ProviderEnvironment` (its `environment_dependency`) share the
sub-dependency `resolved_read`, which FastAPI runs once per request. The resolution is also kept in the request
state so the access log and the error handlers can name the provider and the object.

`ProviderRetryRoute` retries an endpoint once when S3 refused the read: the provider's credentials may have rotated
since they were cached, or GDAL may still hold a 403 cached under the path.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import morecantile
import morecantile.errors
from fastapi import Depends, Query, Request, Response
from fastapi.routing import APIRoute
from rasterio.errors import RasterioIOError
from starlette.concurrency import run_in_threadpool
from titiler.core.errors import BadRequestError

from raster_api import gdal
from raster_api.errors import S3Failure, classify_s3_failure
from raster_api.routing import ProviderRouter, ResolvedRead

READ_STATE = "raster_read"
RETRYABLE = (S3Failure.REFUSED, S3Failure.BAD_CREDENTIALS)


def get_router(request: Request) -> ProviderRouter:
    router: ProviderRouter = request.app.state.provider_router
    return router


ProviderRouterDep = Annotated[ProviderRouter, Depends(get_router)]


def resolved_read(
    request: Request,
    url: Annotated[str, Query(description="Dataset URL: `s3://bucket/key` (or a DAAC's https distribution URL)")],
    provider: Annotated[
        str | None,
        Query(description="Provider whose credentials read the dataset; default: the provider owning the bucket"),
    ] = None,
) -> ResolvedRead:
    read = get_router(request).resolve(url, provider)
    request.state.raster_read = read
    return read


def DatasetPath(read: Annotated[ResolvedRead, Depends(resolved_read)]) -> str:
    """`path_dependency`: the GDAL path of the resolved object."""
    return read.gdal_path


def ProviderEnvironment(request: Request, read: Annotated[ResolvedRead, Depends(resolved_read)]) -> dict[str, Any]:
    """`environment_dependency`: the provider's credentials and the Lambda GDAL settings (sync: may refresh)."""
    return get_router(request).gdal_env(read.provider)


def valid_tile(request: Request) -> None:
    """Router dependency: tile coordinates outside the tile matrix are a 400, not an empty 200 tile."""
    params = request.path_params
    if not {"tileMatrixSetId", "z", "x", "y"} <= params.keys():
        return
    try:
        tms = morecantile.tms.get(params["tileMatrixSetId"])
        tile = morecantile.Tile(int(params["x"]), int(params["y"]), int(params["z"]))
    except (morecantile.errors.InvalidIdentifier, ValueError):
        return  # the endpoint's own validation answers 422
    if not tms.is_valid(tile, strict=False):
        raise BadRequestError(f"tile {tile.z}/{tile.x}/{tile.y} does not exist in tile matrix set {tms.id}")


class ProviderRetryRoute(APIRoute):
    """Runs the endpoint a second time, with freshly fetched credentials, when S3 refused the first read."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def retrying_handler(request: Request) -> Response:
            try:
                return await handler(request)
            except RasterioIOError as exc:
                read: ResolvedRead | None = getattr(request.state, READ_STATE, None)
                if read is None or classify_s3_failure(exc) not in RETRYABLE:
                    raise
                await run_in_threadpool(_refresh_for_retry, get_router(request), read)
                return await handler(request)

        return retrying_handler


def _refresh_for_retry(router: ProviderRouter, read: ResolvedRead) -> None:
    router.refresh(read.provider)
    gdal.invalidate_path(read.gdal_path)
