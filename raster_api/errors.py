"""Errors of the raster API and how each becomes an HTTP answer.

titiler maps every `RasterioIOError` (and any `Exception`) to 500 with `str(exc)` as the body, so an S3 404 or 403
would become a 500 that may carry a bucket, a key or worse. Here upstream errors are mapped on purpose: a missing
object is a 404 that names the provider and the object, S3 refusing a provider's keys says so, and anything
unexpected is a 500 with a generic body (the details go to the log, which never holds a credential either).

The exception tree is flat and knows nothing of HTTP; `RASTER_API_STATUS_CODES` is the one place with status codes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from enum import StrEnum

from fastapi import FastAPI
from morecantile.errors import InvalidIdentifier, InvalidZoomError, MorecantileError
from rasterio.errors import RasterioIOError, WindowError
from rio_tiler import errors as rt
from starlette import status
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import Scope
from titiler.core.errors import DEFAULT_STATUS_CODES, BadRequestError, TileNotFoundError

logger = logging.getLogger(__name__)


class RasterApiError(Exception):
    """Base class; `detail` is what the client reads and must never hold a credential; `headers` go on the answer."""

    headers: Mapping[str, str] = {}

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class Unauthenticated(RasterApiError):
    """No bearer token where the provider (or route) needs a signed-in caller."""

    headers = {"WWW-Authenticate": 'Bearer realm="raster-api"'}


class InvalidToken(RasterApiError):
    """A bearer token was sent but is not valid (RFC 6750's `invalid_token`)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.headers = {
            "WWW-Authenticate": f'Bearer realm="raster-api", error="invalid_token", error_description="{detail}"'
        }


class NotAllowed(RasterApiError):
    """A signed-in caller who may not read through the provider (not in its groups)."""


class DownloadRefused(RasterApiError):
    """The provider (or this deployment) hands out no download for this object."""


class IssuerUnavailable(RasterApiError):
    """The identity provider's signing keys cannot be fetched."""


class UnknownProvider(RasterApiError):
    """`?provider=` names no configured provider."""


class InvalidDatasetUrl(RasterApiError):
    """The `url` is not an S3 object URL (or a DAAC distribution URL) we can read with provider credentials."""


class BucketNotServed(RasterApiError):
    """The bucket belongs to another provider, or to none."""


class CredentialsUnavailable(RasterApiError):
    """No valid credentials for a provider (expired, missing, refresh failing)."""

    def __init__(self, provider: str, reason: str) -> None:
        super().__init__(f"credentials for provider {provider!r} are unavailable ({reason}); retry later")
        self.provider = provider
        self.reason = reason


class ObjectNotFound(RasterApiError):
    """S3 says the object does not exist."""


class AccessRefused(RasterApiError):
    """S3 refused to let the provider's credentials read the object."""


class CredentialsRejected(RasterApiError):
    """S3 rejected the provider's credentials themselves (expired, invalid or malformed token)."""


class NotARaster(RasterApiError):
    """The object exists and was read, but GDAL cannot open it as a raster."""


class CrsNotSupported(RasterApiError):
    """The dataset has no CRS, or one that cannot be transformed to the CRS the request asks for (a Mars or a local
    engineering CRS on a web map): the request cannot be answered from it."""


class UnsupportedDataType(RasterApiError):
    """The dataset's sample type cannot be turned into what the request asks for (complex samples; uint64 images)."""


class OverBudget(RasterApiError):
    """The request would cost more than a budget allows (output, source pixels, bands, features, items); refused
    before the pixels are read."""

    def __init__(self, budget: str, detail: str) -> None:
        super().__init__(detail)
        self.budget = budget


class DeadlineExceeded(OverBudget):
    """The request worked past `RASTER_API_REQUEST_DEADLINE`."""


class UpstreamReadError(RasterApiError):
    """Any other failure reading from S3."""


class BadBandSelection(RasterApiError):
    """`bidx`, `expression` or `nodata` do not fit the dataset (bands it lacks, a nodata its type cannot hold)."""


class OutsideReference(RasterApiError):
    """A file that names data outside itself: an HDF5 external link, virtual dataset or external storage (400)."""


class VariableSelection(RasterApiError):
    """A variable or a `sel` a NetCDF/HDF5/Zarr file does not have (400)."""


class NoPixel(RasterApiError):
    """The requested area maps to no pixel of the dataset (GDAL refuses the window)."""


RASTER_API_STATUS_CODES: dict[type[Exception], int] = {
    Unauthenticated: status.HTTP_401_UNAUTHORIZED,
    InvalidToken: status.HTTP_401_UNAUTHORIZED,
    NotAllowed: status.HTTP_403_FORBIDDEN,
    DownloadRefused: status.HTTP_403_FORBIDDEN,
    IssuerUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    UnknownProvider: status.HTTP_400_BAD_REQUEST,
    InvalidDatasetUrl: status.HTTP_400_BAD_REQUEST,
    BucketNotServed: status.HTTP_403_FORBIDDEN,
    CredentialsUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    ObjectNotFound: status.HTTP_404_NOT_FOUND,
    AccessRefused: status.HTTP_403_FORBIDDEN,
    CredentialsRejected: status.HTTP_502_BAD_GATEWAY,
    NotARaster: status.HTTP_400_BAD_REQUEST,
    CrsNotSupported: status.HTTP_400_BAD_REQUEST,
    UnsupportedDataType: status.HTTP_400_BAD_REQUEST,
    OverBudget: status.HTTP_400_BAD_REQUEST,
    DeadlineExceeded: status.HTTP_503_SERVICE_UNAVAILABLE,
    UpstreamReadError: status.HTTP_502_BAD_GATEWAY,
    NoPixel: status.HTTP_400_BAD_REQUEST,
    BadBandSelection: status.HTTP_400_BAD_REQUEST,
    OutsideReference: status.HTTP_400_BAD_REQUEST,
    VariableSelection: status.HTTP_400_BAD_REQUEST,
}

# rio-tiler and morecantile errors caused by request parameters: 4xx, never titiler's generic 500.
USER_INPUT_STATUS_CODES: dict[type[Exception], int] = {
    **{exc: code for exc, code in DEFAULT_STATUS_CODES.items() if code < 500},  # titiler's (builtins are all 500)
    BadRequestError: status.HTTP_400_BAD_REQUEST,
    TileNotFoundError: status.HTTP_404_NOT_FOUND,
    rt.PointOutsideBounds: status.HTTP_404_NOT_FOUND,
    rt.InvalidBufferSize: status.HTTP_400_BAD_REQUEST,
    rt.InvalidBounds: status.HTTP_400_BAD_REQUEST,
    rt.InvalidColorMapName: status.HTTP_400_BAD_REQUEST,
    rt.InvalidMosaicMethod: status.HTTP_400_BAD_REQUEST,
    rt.AssetAsBandError: status.HTTP_400_BAD_REQUEST,
    rt.InvalidPointDataError: status.HTTP_400_BAD_REQUEST,
    rt.MissingCRS: status.HTTP_400_BAD_REQUEST,
    rt.InvalidGeographicBounds: status.HTTP_400_BAD_REQUEST,
    rt.MaxArraySizeError: status.HTTP_400_BAD_REQUEST,
    rt.EmptyMosaicError: status.HTTP_404_NOT_FOUND,
    rt.NoAssetFoundError: status.HTTP_404_NOT_FOUND,
    InvalidIdentifier: status.HTTP_400_BAD_REQUEST,
    InvalidZoomError: status.HTTP_400_BAD_REQUEST,
    MorecantileError: status.HTTP_400_BAD_REQUEST,
    WindowError: status.HTTP_400_BAD_REQUEST,  # e.g. a bbox whose min is above its max
}


class S3Failure(StrEnum):
    """What a GDAL `/vsis3/` error says happened."""

    NOT_FOUND = "not_found"
    REFUSED = "refused"  # AccessDenied: these keys may not read this object
    BAD_CREDENTIALS = "bad_credentials"  # the keys themselves are invalid or expired
    NOT_RASTER = "not_raster"  # read fine, but not a format GDAL opens
    OTHER = "other"


_FAILURE_MARKERS: tuple[tuple[S3Failure, tuple[str, ...]], ...] = (
    (
        S3Failure.BAD_CREDENTIALS,
        (
            "InvalidAccessKeyId",
            "InvalidToken",
            "ExpiredToken",
            "TokenRefreshRequired",
            "SignatureDoesNotMatch",
            "InvalidClientTokenId",
            "token is malformed",
            "security token included in the request is expired",
        ),
    ),
    (S3Failure.REFUSED, ("AccessDenied", "Access Denied", "AllAccessDisabled", "HTTP response code: 403")),
    (
        S3Failure.NOT_FOUND,
        (
            "ObjectNotFound",
            "NoSuchKey",
            "NoSuchBucket",
            "BucketNotFound",
            "does not exist in the file system",
            "No such file or directory",
            "HTTP response code: 404",
        ),
    ),
    (S3Failure.NOT_RASTER, ("not recognized as being in a supported file format", "not a TIFF file")),
)


def error_text(exc: BaseException) -> str:
    """The message of `exc` and of the errors it was raised from: rasterio's "Read failed. See previous exception"
    keeps GDAL's actual words in the cause."""
    parts, seen = [], set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        parts.append(str(current))
        current = current.__cause__ or current.__context__
    return " | ".join(parts)


def _classify_text(text: str, exclude: frozenset[S3Failure] = frozenset()) -> S3Failure:
    for failure, markers in _FAILURE_MARKERS:
        if failure not in exclude and any(marker in text for marker in markers):
            return failure
    return S3Failure.OTHER


def classify_s3_failure(
    exc: BaseException, path: str | None = None, exclude: frozenset[S3Failure] = frozenset()
) -> S3Failure | None:
    """Classify a rasterio/GDAL read error (None when it is not an I/O error at all). GDAL's words quote the path,
    which is the caller's choice (`.../AccessDenied.tif`): it is taken out before the words are read. `exclude`
    leaves classes out (a refusal that the object's own answer contradicts)."""
    if not isinstance(exc, RasterioIOError):
        return None
    return _classify_text(_gdal_words(exc, path), exclude)


def _gdal_words(exc: BaseException, path: str | None) -> str:
    """`error_text(exc)` without the path GDAL quotes (its words are read, never the caller's key)."""
    text = error_text(exc)
    return text.replace(path, "<path>") if path else text


def classify_s3_answer(code: str, http_status: int) -> S3Failure:
    """Classify S3's own error answer to a request (its `Error/Code` and HTTP status)."""
    failure = _classify_text(code)
    if failure is S3Failure.OTHER:
        failure = {403: S3Failure.REFUSED, 404: S3Failure.NOT_FOUND}.get(http_status, S3Failure.OTHER)
    return failure


def translate_read_error(
    exc: BaseException, provider: str, url: str, path: str, failure: S3Failure | None = None
) -> RasterApiError:
    """The API error for a failed read of `url` (GDAL's `path`) with `provider`'s credentials (`raster_api.reading`
    raises it); `failure` is what S3 answered the object itself, when that was asked (GDAL's words otherwise)."""
    failure = failure or classify_s3_failure(exc, path) or S3Failure.OTHER
    if any(marker in _gdal_words(exc, path) for marker in BAD_WINDOW_MARKERS):
        return NoPixel(NO_PIXEL)
    if failure is S3Failure.NOT_FOUND:
        return ObjectNotFound(f"{url} not found for provider {provider!r}")
    if failure is S3Failure.REFUSED:
        return AccessRefused(f"S3 refused provider {provider!r} read access to {url}")
    if failure is S3Failure.NOT_RASTER:
        return NotARaster(
            f"{url} (provider {provider!r}) is not a GeoTIFF: this API serves GeoTIFF/COG only, because other formats "
            "(VRT, netCDF, HDF...) can make GDAL read objects other than the one requested"
        )
    if failure is S3Failure.BAD_CREDENTIALS:
        return CredentialsRejected(f"S3 rejected the credentials of provider {provider!r} reading {url}")
    logger.warning("reading %s with provider %s failed: %s", url, provider, error_text(exc))
    return UpstreamReadError(f"reading {url} with provider {provider!r} failed")


NO_PIXEL = "the requested area maps to no pixel of the dataset"
# GDAL's words for a bbox/feature window that rounds to no pixel (or overflows, for absurd coordinates).
BAD_WINDOW_MARKERS = ("Wrong values in DstRect", "Invalid dataset dimensions", "Access window out of range")


def error_response(
    scope: Scope, status_code: int, detail: str, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """The one error body of every route and middleware: `{"detail", "request_id"}`."""
    body = {"detail": detail, "request_id": scope.get("state", {}).get("request_id")}
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


def add_exception_handlers(
    app: FastAPI,
    retry_after_seconds: int = 30,
    extra_status_codes: Mapping[type[Exception], int] | None = None,
    generic_details: Mapping[type[Exception], str] | None = None,
) -> None:
    """Register one handler for one merged table: titiler's and rio-tiler's input errors, ours, and the parts'
    (`extra_status_codes`, e.g. pgstac's). Bodies are `{"detail", "request_id"}`; `generic_details` replaces the
    message of errors that may carry connection details. No built-in exception is mapped: anything not in the table
    is a bug, answered 500 by `raster_api.middleware.RequestMiddleware`."""
    table = {**USER_INPUT_STATUS_CODES, **RASTER_API_STATUS_CODES, **(extra_status_codes or {})}
    generic = dict(generic_details or {})

    def handler(request: Request, exc: Exception) -> JSONResponse:
        mro = type(exc).__mro__
        code = next(table[cls] for cls in mro if cls in table)
        headers: dict[str, str] = {}
        if isinstance(exc, RasterApiError):
            detail = exc.detail
            headers.update(exc.headers)
        else:
            detail = next((generic[cls] for cls in mro if cls in generic), None) or _first_line(exc)
        if isinstance(exc, OverBudget):
            request.scope.setdefault("state", {})["budget"] = exc.budget  # the access log names it
        if code == status.HTTP_503_SERVICE_UNAVAILABLE:
            headers["Retry-After"] = str(retry_after_seconds)
        if code >= 500:
            logger.warning("%s on %s: %s", type(exc).__name__, request.url.path, _first_line(exc))
        return error_response(request.scope, code, detail, headers)

    for exc_class in table:
        app.add_exception_handler(exc_class, handler)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
