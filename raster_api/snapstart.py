"""Lambda SnapStart: what the snapshot holds, and what a restore renews.

With SnapStart, Lambda runs the init phase (`raster_api.handler`: the app built, `prime` run) once per published
version, snapshots the memory, and starts every later sandbox from that snapshot, minutes or days later. So:

- the snapshot holds what is the same for every request and every sandbox: the app and its routes, the middleware
  stack (built by the first request through it), GDAL's drivers and a `rasterio.Env`, PROJ's database and the tile
  matrix sets (`prime`, run by the handler when init runs ahead of requests);
- it must not hold what expires or belongs to one sandbox: provider credentials (Earthdata keys last an hour, and
  the rotator replaces them), the pgstac connections (their sockets are dead after a restore) and the random state
  (identical in every restored sandbox). `before_snapshot` drops the first two; `after_restore` fetches every
  provider's credentials again (side by side, for at most `RASTER_API_CREDENTIALS_RESTORE_DEADLINE` seconds: a
  provider that is not back by then is fetched by its first request, and a failure is recorded for `/providers`,
  as at init), reopens the pool and reseeds random state.

The hooks are registered with the runtime through `snapshot_restore_py` (part of Lambda's Python runtime; the
package of that name elsewhere). Without SnapStart they never run, and `prime` only moves work into init.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from fastapi import FastAPI

logger = logging.getLogger(__name__)

# An API Gateway HTTP API (payload 2.0) request for /healthz: what `prime` sends through the whole stack once.
PRIME_EVENT: dict[str, Any] = {
    "version": "2.0",
    "routeKey": "$default",
    "rawPath": "/healthz",
    "rawQueryString": "",
    "headers": {"host": "snapstart.prime", "user-agent": "raster-api-snapstart-prime"},
    "requestContext": {
        "domainName": "snapstart.prime",
        "http": {"method": "GET", "path": "/healthz", "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
        "requestId": "snapstart-prime",
        "stage": "$default",
    },
    "isBase64Encoded": False,
}


class _PrimeContext:
    """The Lambda context Mangum passes on (nothing reads it for /healthz)."""

    function_name = "snapstart-prime"
    aws_request_id = "snapstart-prime"

    @staticmethod
    def get_remaining_time_in_millis() -> int:
        return 30_000


def prime(handler: Any) -> None:
    """`_prime`, whose failure is logged, never fatal: an unprimed snapshot is slower, not wrong."""
    try:
        _prime(handler)
    except Exception:
        logger.warning("SnapStart priming failed; the first requests pay what it would have done", exc_info=True)


def _prime(handler: Any) -> None:
    """Do in init what every first request would otherwise pay: GDAL's drivers and a `rasterio.Env`, PROJ's database
    (a transformation), the tile matrix sets, one tile read and encoded from an in-memory GeoTIFF (rio-tiler's and
    the encoders' first-use costs), and one request through Mangum and the whole middleware stack."""
    import morecantile
    import rasterio
    from rasterio.warp import transform

    with rasterio.Env():
        transform("EPSG:4326", "EPSG:3857", [0.0], [0.0])
        _read_and_encode_a_tile()
    for tms_id in morecantile.tms.list():
        morecantile.tms.get(tms_id)
    response = handler(PRIME_EVENT, _PrimeContext())
    # Behind the CDN the origin check answers 403 (the request carries no origin secret): the stack is warm anyway.
    logger.info("priming request through the middleware stack answered %s", response.get("statusCode"))


def _read_and_encode_a_tile() -> None:
    """A web-mercator tile of a small in-memory GeoTIFF, read by rio-tiler and encoded as PNG (no S3, no provider)."""
    import numpy as np
    from rasterio.io import MemoryFile
    from rasterio.transform import from_bounds
    from rio_tiler.io import Reader

    half = 20037508.342789244
    profile = {
        "driver": "GTiff",
        "dtype": "uint8",
        "count": 1,
        "width": 64,
        "height": 64,
        "crs": "EPSG:3857",
        "transform": from_bounds(-half, -half, half, half, 64, 64),
        "tiled": False,
    }
    with MemoryFile() as memory:
        with memory.open(**profile) as dataset:
            dataset.write(np.zeros((1, 64, 64), dtype="uint8"))
        with Reader(memory.name) as cog:
            cog.tile(0, 0, 1).render(img_format="PNG")


def before_snapshot(app: FastAPI) -> None:
    """Drop what must not be restored: every provider's credentials (and the sessions built from them), the issuer's
    keys, and the pgstac pool (closed)."""
    app.state.provider_router.forget()
    app.state.token_verifier.forget()
    connection = getattr(app.state, "pgstac", None)
    if connection is not None:
        connection.close()
    logger.info("SnapStart: credentials and issuer keys dropped, database pool closed before the snapshot")


def after_restore(app: FastAPI) -> None:
    """Renew what a restored sandbox cannot reuse: random state, provider credentials, the issuer's keys, the pgstac
    pool. Logs which providers are back (the others are fetched by their first request)."""
    random.seed()
    _reseed_numpy()
    router = app.state.provider_router
    verifier = app.state.token_verifier
    if verifier.configured:
        verifier.prefetch()
    router.credential_cache.prefetch(deadline=router.credential_cache.settings.restore_deadline)
    connection = getattr(app.state, "pgstac", None)
    if connection is not None:
        app.state.dbpool = connection.open(wait=False)
    missing = [name for name in router.providers if not router.provider_health(name).available]
    logger.info(
        "SnapStart: restored",
        extra={"providers_without_credentials": missing, "database_pool": "reopening" if connection else "none"},
    )


def _reseed_numpy() -> None:
    import numpy as np

    np.random.seed()  # noqa: NPY002 - the legacy global generator is what libraries without a Generator use


def register(app: FastAPI) -> None:
    """Register the hooks with Lambda's runtime (they run only where SnapStart is on)."""
    from snapshot_restore_py import register_after_restore, register_before_snapshot

    register_before_snapshot(before_snapshot, app)
    register_after_restore(after_restore, app)
