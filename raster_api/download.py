"""Short-lived pre-signed downloads: hand out a URL, never credentials.

`GET /cog/download?url=s3://bucket/key&provider=NAME` answers 307 to an S3 GET URL signed (SigV4, query string) with
the provider's current credentials and valid for `RASTER_API_DOWNLOAD_EXPIRES` seconds (default 60). Only providers
whose config says `allow_download: true` hand out downloads: DAAC data must be downloaded through Earthdata Login,
so an earthdata provider is refused (403) unless its operator decided otherwise. Ownership is the same as for tiles
(`ProviderRouter.resolve`). Every URL handed out is audit-logged (provider, bucket, key, expiry, request id), never
the URL itself, since its signature is a bearer credential until it expires.

The S3 endpoint is boto3's: `AWS_ENDPOINT_URL` when set (a local emulator, http), else AWS's https endpoint.
"""

from __future__ import annotations

import json
import logging
from pathlib import PurePosixPath
from typing import Annotated, Any

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from fastapi.responses import RedirectResponse

from providers import Provider
from raster_api.credentials import AwsCredentials
from raster_api.dependencies import get_router, read_scope, resolved_read
from raster_api.reading import ReadScope
from raster_api.routing import ResolvedRead
from raster_api.settings import DownloadSettings

audit_logger = logging.getLogger("raster_api.audit")


def presigned_get_url(provider: Provider, creds: AwsCredentials | None, bucket: str, key: str, expires_in: int) -> str:
    """A SigV4 query-signed GET URL for `s3://bucket/key` (unsigned, plain URL for an `unsigned` provider)."""
    # Virtual-hosted style gives AWS's regional https host (`bucket.s3.<region>.amazonaws.com`; boto3's "auto" picks
    # the global host, which redirects); a dotted bucket name would break TLS there, so it goes path-style.
    config = Config(
        signature_version=UNSIGNED if creds is None else "s3v4",
        s3={"addressing_style": "path" if "." in bucket else "virtual"},
    )
    keys: dict[str, Any] = {}
    if creds is not None:
        keys = {
            "aws_access_key_id": creds.access_key_id,
            "aws_secret_access_key": creds.secret_access_key,
            "aws_session_token": creds.session_token,
        }
    # A fresh session: the default one is not thread-safe, and the keys must be exactly the provider's.
    s3 = boto3.session.Session().client("s3", region_name=provider.region, config=config, **keys)
    params: dict[str, Any] = {
        "Bucket": bucket,
        "Key": key,
        "ResponseContentDisposition": f'attachment; filename="{_filename(key)}"',
    }
    if provider.requester_pays:
        params["RequestPayer"] = "requester"
    return str(s3.generate_presigned_url("get_object", Params=params, ExpiresIn=expires_in))


def _filename(key: str) -> str:
    name = PurePosixPath(key).name or "download"
    return "".join(ch for ch in name if ch.isprintable() and ch not in '"\\')


router = APIRouter(tags=["Download"])


@router.get(
    "/cog/download",
    response_class=RedirectResponse,
    status_code=307,
    summary="Redirect to a short-lived pre-signed S3 URL of the object",
    responses={
        307: {"description": "Redirect to a pre-signed S3 GET URL (valid for RASTER_API_DOWNLOAD_EXPIRES seconds)"},
        403: {"description": "The provider does not allow downloads, or does not serve the bucket"},
    },
)
def download(
    request: Request,
    read: Annotated[ResolvedRead, Depends(resolved_read)],
    scope: Annotated[ReadScope, Depends(read_scope)],
) -> RedirectResponse:
    provider = read.provider
    scope.log.add(read)  # the access log names the object handed out, refused or not
    if not provider.allow_download:
        raise HTTPException(
            status_code=403,
            detail=f"provider {provider.name!r} does not allow downloads (allow_download is false): {read.url}",
        )
    settings: DownloadSettings = request.app.state.download_settings
    creds = get_router(request).credentials(provider)
    url = presigned_get_url(provider, creds, read.location.bucket, read.location.key, settings.expires)
    audit_logger.info(
        json.dumps(
            {
                "type": "download",
                "request_id": getattr(request.state, "request_id", None),
                "provider": provider.name,
                "bucket": read.location.bucket,
                "key": read.location.key,
                "expires_in": settings.expires,
            },
            separators=(",", ":"),
        )
    )
    # Never cached: the URL dies after `download_expires` seconds, a cached redirect would outlive it.
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})


def add_download(app: FastAPI, settings: DownloadSettings) -> None:
    """Register `GET /cog/download`."""
    app.state.download_settings = settings
    app.include_router(router)
