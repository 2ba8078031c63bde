"""GDAL configuration for reading COGs from S3 on Lambda, in one place.

These are titiler's recommended Lambda settings (few, large, merged range requests; no directory listing on open;
bounded HTTP timeouts so a slow S3 never holds a Lambda until its own timeout), less its extension gate
(`CPL_VSIL_CURL_ALLOWED_EXTENSIONS`): a key of any name is a dataset, and one without `.tif` must not read as "not
found". `GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR` alone keeps GDAL from listing or probing sidecar files
(`.ovr`, `.msk`, `.aux.xml`), so the first tile of a COG still costs the same few GETs; the price is that external
overviews and masks are not used (docs/api.md, "Fidelity"). They are passed per request through
`rasterio.Env(**env)` together with the provider's session, never set process-wide, so nothing here can leak one
provider's state into another's read.

GDAL's `/vsis3/` caches are keyed by path, not by credentials; `invalidate_buckets` is how a credential rotation
clears what the old keys left behind (a cached 403 must not outlive the rotation).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable

import rasterio.cache

from providers.s3 import is_glob
from raster_api.settings import GdalSettings

logger = logging.getLogger(__name__)

# Endpoint options of the shared contract: read from the environment so the API runs against a local emulator.
ENDPOINT_OPTIONS = ("AWS_S3_ENDPOINT", "AWS_HTTPS", "AWS_VIRTUAL_HOSTING")


def gdal_config(settings: GdalSettings | None = None) -> dict[str, str]:
    """The GDAL options every read runs with."""
    settings = settings or GdalSettings()
    config = {
        "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
        "GDAL_HTTP_MULTIPLEX": "YES",
        "GDAL_HTTP_VERSION": "2",
        "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
        "VSI_CACHE": "TRUE",
        "VSI_CACHE_SIZE": "5000000",
        "GDAL_HTTP_TIMEOUT": str(settings.http_timeout),
        "GDAL_HTTP_CONNECTTIMEOUT": str(settings.http_connect_timeout),
        "GDAL_HTTP_MAX_RETRY": str(settings.http_max_retry),
        "GDAL_HTTP_RETRY_DELAY": "0.5",
        # Never print request headers (they carry X-Amz-Security-Token) into the logs.
        "CPL_CURL_VERBOSE": "NO",
        "CPL_DEBUG": "OFF",
    }
    config.update({name: os.environ[name] for name in ENDPOINT_OPTIONS if os.environ.get(name)})
    return config


def configure_process(settings: GdalSettings | None = None) -> None:
    """Process-wide GDAL settings: the block cache size is global in GDAL, so it is not a per-request option."""
    settings = settings or GdalSettings()
    os.environ.setdefault("GDAL_CACHEMAX", settings.cachemax)


def invalidate_buckets(patterns: Iterable[str]) -> None:
    """Drop GDAL's cached bytes, file properties and errors for these bucket names or globs."""
    patterns = list(patterns)
    if any(is_glob(p) for p in patterns):
        # GDAL can only drop by prefix; a glob has none, so drop everything (rare: a rotation per provider).
        rasterio.cache.invalidate_all()
        logger.info("GDAL cache cleared (provider lists bucket globs)")
        return
    for bucket in patterns:
        rasterio.cache.invalidate(f"/vsis3/{bucket}/")
    logger.info("GDAL cache cleared for buckets %s", ", ".join(patterns))


def invalidate_path(gdal_path: str) -> None:
    """Drop GDAL's cache for one object before a retry with fresh credentials."""
    rasterio.cache.invalidate(gdal_path)
