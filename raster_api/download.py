"""Short-lived pre-signed downloads: hand out a URL that reads one object, never credentials.

`GET /cog/download?url=s3://bucket/key&provider=NAME` answers 307 to an S3 GET URL (SigV4, query string) valid for
`RASTER_API_DOWNLOAD_EXPIRES` seconds (default 60). Only a signed-in caller who may read the provider
(`raster_api.auth`) gets one, and only from providers whose config says `allow_download: true`.

The URL is signed with credentials that can read that one object and nothing else: an STS session of the download
role (`RASTER_API_DOWNLOAD_ROLE_ARN`, for `default` providers) or of the partner's role (`assume_role` providers),
narrowed by an inline session policy that allows `s3:GetObject` on the object's ARN only. Its token is in the URL,
so whoever holds the URL can do exactly what the URL does. Earthdata providers stay refused unless configured
otherwise; then the URL is signed with the DAAC's temporary keys (which read all of that DAAC's buckets until they
expire: documented in docs/api.md). `unsigned` providers get the plain object URL.

The URL carries `x-user=<sub>` and `x-request-id=<id>` inside its signature: S3 ignores `x-` query parameters when
authorizing but records them in its server access log, so the bucket's own log tells who downloaded what. The audit
line (`raster_api.audit`) has the same fields, never the URL (its signature is a bearer credential until it expires).

The S3 endpoint is boto3's: `AWS_ENDPOINT_URL` when set (a local emulator, http), else AWS's https endpoint.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import PurePosixPath
from typing import Annotated, Any
from urllib.parse import quote, urlencode

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import RedirectResponse

from providers import Provider, ProviderKind
from raster_api.auth import Caller
from raster_api.credentials import AwsCredentials, CredentialFetchError
from raster_api.dependencies import get_router, read_scope, resolved_read
from raster_api.errors import CredentialsUnavailable, DownloadRefused, Unauthenticated
from raster_api.reading import ReadScope
from raster_api.routing import ResolvedRead
from raster_api.settings import DownloadSettings

audit_logger = logging.getLogger("raster_api.audit")


SESSION_NAME = re.compile(r"[^\w+=,.@-]")


def object_arn(bucket: str, key: str) -> str:
    """The object's ARN with IAM's wildcard characters escaped (`${*}`, `${?}`, `${$}`): a key containing `*` must
    name itself, not every key it would match as a pattern."""
    escaped = "".join({"*": "${*}", "?": "${?}", "$": "${$}"}.get(ch, ch) for ch in key)
    return f"arn:aws:s3:::{bucket}/{escaped}"


def session_policy(bucket: str, key: str) -> str:
    """The inline session policy of a download: `s3:GetObject` on one object."""
    statement = {"Effect": "Allow", "Action": "s3:GetObject", "Resource": object_arn(bucket, key)}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]}, separators=(",", ":"))


def presigned_get_url(
    provider: Provider,
    creds: AwsCredentials | None,
    bucket: str,
    key: str,
    expires_in: int,
    audit_params: dict[str, str] | None = None,
) -> str:
    """A SigV4 query-signed GET URL for `s3://bucket/key` (unsigned, plain URL for an `unsigned` provider);
    `audit_params` (`x-...`) are added to the query before signing, so they are covered by the signature."""
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
    # A fresh session: the default one is not thread-safe, and the keys must be exactly these.
    s3 = boto3.session.Session().client("s3", region_name=provider.region, config=config, **keys)
    if audit_params:
        extra = urlencode(sorted(audit_params.items()), quote_via=quote)

        def add_audit_params(request: Any, **_: Any) -> None:
            request.url += ("&" if "?" in request.url else "?") + extra

        s3.meta.events.register("before-sign.s3.GetObject", add_audit_params)
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


def signing_credentials(
    request: Request, read: ResolvedRead, caller: Caller, settings: DownloadSettings
) -> AwsCredentials | None:
    """The credentials the URL is signed with: a one-object STS session, the DAAC's keys, or none (unsigned)."""
    provider = read.provider
    if provider.kind is ProviderKind.UNSIGNED:
        return None
    if provider.kind is ProviderKind.EARTHDATA:
        return get_router(request).credentials(provider)
    if provider.kind is ProviderKind.DEFAULT and not settings.role_arn:
        raise DownloadRefused(
            f"provider {provider.name!r} hands out no downloads: no download role is configured "
            f"(RASTER_API_DOWNLOAD_ROLE_ARN): {read.url}"
        )
    role_arn = settings.role_arn if provider.kind is ProviderKind.DEFAULT else provider.role_arn
    cache = get_router(request).credential_cache
    try:
        return cache.scoped_session(
            provider,
            str(role_arn),
            "download-" + SESSION_NAME.sub("-", caller.sub),
            policy=session_policy(read.location.bucket, read.location.key),
        )
    except CredentialFetchError as exc:
        if "PackedPolicyTooLarge" in str(exc):
            raise DownloadRefused(f"the object key is too long for a scoped download: {read.url}") from None
        raise CredentialsUnavailable(provider.name, str(exc)) from None


router = APIRouter(tags=["Download"])


@router.get(
    "/cog/download",
    response_class=RedirectResponse,
    status_code=307,
    summary="Redirect to a short-lived pre-signed S3 URL that reads this one object",
    responses={
        307: {"description": "Redirect to a pre-signed S3 GET URL (valid for RASTER_API_DOWNLOAD_EXPIRES seconds)"},
        401: {"description": "No (valid) bearer token"},
        403: {"description": "The provider does not allow downloads or this caller, or does not serve the bucket"},
    },
)
def download(
    request: Request,
    read: Annotated[ResolvedRead, Depends(resolved_read)],
    scope: Annotated[ReadScope, Depends(read_scope)],
) -> RedirectResponse:
    provider = read.provider
    scope.log.add(read)  # the access log names the object handed out, refused or not
    settings: DownloadSettings = request.app.state.download_settings
    if not request.app.state.token_verifier.configured:
        raise DownloadRefused(
            "downloads need a signed-in caller and no identity provider is configured (RASTER_API_AUTH_ISSUER)"
        )
    caller = scope.caller
    if caller is None:
        raise Unauthenticated(f"downloads need a signed-in caller: send a bearer token ({read.url})")
    if not provider.allow_download:
        raise DownloadRefused(
            f"provider {provider.name!r} does not allow downloads (allow_download is false): {read.url}"
        )
    creds = signing_credentials(request, read, caller, settings)
    request_id = str(getattr(request.state, "request_id", "") or "")
    # The session behind the URL lives STS_MIN_DURATION seconds (STS's shortest, so the URL cannot outlive it by
    # much); the URL itself no longer than asked.
    expires_in = settings.expires
    url = presigned_get_url(
        provider,
        creds,
        read.location.bucket,
        read.location.key,
        expires_in,
        {"x-user": caller.sub, "x-request-id": request_id},
    )
    audit_logger.info(
        json.dumps(
            {
                "type": "download",
                "request_id": request_id,
                "user": caller.sub,
                "provider": provider.name,
                "bucket": read.location.bucket,
                "key": read.location.key,
                "expires_in": expires_in,
                "scoped_session": creds is not None and provider.kind is not ProviderKind.EARTHDATA,
            },
            separators=(",", ":"),
        )
    )
    # Never cached: the URL dies after `expires` seconds, a cached redirect would outlive it.
    return RedirectResponse(url, status_code=307, headers={"Cache-Control": "no-store"})


def add_download(app: FastAPI, settings: DownloadSettings) -> None:
    """Register `GET /cog/download`."""
    app.state.download_settings = settings
    app.include_router(router)
