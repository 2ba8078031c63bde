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
from dataclasses import dataclass
from enum import StrEnum

from fastapi import FastAPI
from morecantile.errors import InvalidIdentifier, InvalidZoomError, MorecantileError
from rasterio._err import CPLE_BaseError
from rasterio.errors import RasterioError, RasterioIOError, WindowError
from rio_tiler import errors as rt
from starlette import status
from starlette.requests import Request
from starlette.responses import JSONResponse
from titiler.core.errors import DEFAULT_STATUS_CODES, BadRequestError, TileNotFoundError

logger = logging.getLogger(__name__)


class RasterApiError(Exception):
    """Base class; `detail` is what the client reads and must never hold a credential."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


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


class UpstreamReadError(RasterApiError):
    """Any other failure reading from S3."""


class NoPixel(RasterApiError):
    """The requested area maps to no pixel of the dataset (GDAL refuses the window)."""


RASTER_API_STATUS_CODES: dict[type[Exception], int] = {
    UnknownProvider: status.HTTP_400_BAD_REQUEST,
    InvalidDatasetUrl: status.HTTP_400_BAD_REQUEST,
    BucketNotServed: status.HTTP_403_FORBIDDEN,
    CredentialsUnavailable: status.HTTP_503_SERVICE_UNAVAILABLE,
    ObjectNotFound: status.HTTP_404_NOT_FOUND,
    AccessRefused: status.HTTP_403_FORBIDDEN,
    CredentialsRejected: status.HTTP_502_BAD_GATEWAY,
    NotARaster: status.HTTP_400_BAD_REQUEST,
    UpstreamReadError: status.HTTP_502_BAD_GATEWAY,
    NoPixel: status.HTTP_400_BAD_REQUEST,
}

# rio-tiler and morecantile errors caused by request parameters: 4xx, never titiler's generic 500.
USER_INPUT_STATUS_CODES: dict[type[Exception], int] = {
    **{exc: code for exc, code in DEFAULT_STATUS_CODES.items() if code < 500},
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


def classify_s3_failure(exc: BaseException) -> S3Failure | None:
    """Classify a rasterio/GDAL read error; None when it is not an I/O error at all."""
    if not isinstance(exc, RasterioIOError):
        return None
    text = error_text(exc)
    for failure, markers in _FAILURE_MARKERS:
        if any(marker in text for marker in markers):
            return failure
    return S3Failure.OTHER


def translate_read_error(exc: BaseException, provider: str, url: str) -> RasterApiError:
    """The API error for a failed read of `url` with `provider`'s credentials (`raster_api.reading` raises it)."""
    failure = classify_s3_failure(exc) or S3Failure.OTHER
    if any(marker in error_text(exc) for marker in BAD_WINDOW_MARKERS):
        return NoPixel(NO_PIXEL)
    if failure is S3Failure.NOT_FOUND:
        return ObjectNotFound(f"{url} not found for provider {provider!r}")
    if failure is S3Failure.REFUSED:
        return AccessRefused(f"S3 refused provider {provider!r} read access to {url}")
    if failure is S3Failure.NOT_RASTER:
        return NotARaster(f"{url} (provider {provider!r}) is not a raster GDAL can read")
    if failure is S3Failure.BAD_CREDENTIALS:
        return CredentialsRejected(f"S3 rejected the credentials of provider {provider!r} reading {url}")
    logger.warning("reading %s with provider %s failed: %s", url, provider, error_text(exc))
    return UpstreamReadError(f"reading {url} with provider {provider!r} failed")


NO_PIXEL = "the requested area maps to no pixel of the dataset"
# GDAL's words for a bbox/feature window that rounds to no pixel (or overflows, for absurd coordinates).
BAD_WINDOW_MARKERS = ("Wrong values in DstRect", "Invalid dataset dimensions", "Access window out of range")


@dataclass(frozen=True)
class InputError:
    """An error the libraries raise on request input they do not check, recognised by where it was raised (the
    innermost frame outside numpy) and/or by its message; `detail` is formatted with `exc`."""

    exc: type[Exception]
    raised_in: str | None
    marker: str | None
    detail: str

    def matches(self, exc: BaseException) -> bool:
        return (
            isinstance(exc, self.exc)
            and (self.raised_in is None or self.raised_in in _raising_file(exc))
            and (self.marker is None or self.marker in str(exc))
        )


INPUT_ERRORS: tuple[InputError, ...] = (
    InputError(IndexError, None, "band index", "{exc}"),  # rasterio: `bidx` beyond the dataset's band count
    InputError(TypeError, None, "fill_value", "invalid nodata value: {exc}"),  # numpy: nodata outside the dtype
    InputError(rt.RioTilerError, None, "Invalid geometry", "{exc}"),  # a /feature body that is not a polygon
    InputError(CPLE_BaseError, None, "Cannot invert geotransform", "the requested area has no extent"),
    InputError(ZeroDivisionError, "rio_tiler/utils.py", None, NO_PIXEL),  # sizing a window of zero width
    InputError(OverflowError, "rio_tiler/utils.py", None, NO_PIXEL),  # rounding a window of infinite size
    InputError(ValueError, "rio_tiler/utils.py", "NaN", NO_PIXEL),  # sizing a window of zero width and height
    InputError(ValueError, "rio_tiler/expression.py", None, "invalid expression: {exc}"),  # `blocksize`: b + locksize
    # ImageData.mask of 64-bit integers (e.g. algorithm=sum of uint8 bands): rescaling casts before rendering
    InputError(
        OverflowError,
        "rio_tiler/models.py",
        None,
        "the result is 64-bit integers, which cannot be rendered: add `rescale`",
    ),
    # e.g. normalizedIndex on a single band
    InputError(IndexError, "titiler/core/algorithm/", None, "the algorithm does not fit the selected bands: {exc}"),
    # `assets=name|bidx=1` on an item's /info, whose reader takes no band options
    InputError(
        TypeError, "rio_tiler/io/base.py", "unexpected keyword argument", "asset options are not supported here: {exc}"
    ),
)


def _raising_file(exc: BaseException) -> str:
    """The file of the innermost traceback frame outside numpy, with `/` separators."""
    tb, filename = exc.__traceback__, ""
    while tb is not None:
        name = tb.tb_frame.f_code.co_filename.replace("\\", "/")
        if "/numpy/" not in name:
            filename = name
        tb = tb.tb_next
    return filename


def _request_id(request: Request) -> str | None:
    return request.scope.get("state", {}).get("request_id")


def _json_error(request: Request, status_code: int, detail: str, headers: Mapping[str, str] | None = None):
    body: dict[str, object] = {"detail": detail}
    if request_id := _request_id(request):
        body["request_id"] = request_id
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


def add_exception_handlers(app: FastAPI, retry_after_seconds: int = 30) -> None:
    """Register every mapping once: our errors, user-input errors, GDAL errors, and a sanitized catch-all."""

    def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RasterApiError)
        code = RASTER_API_STATUS_CODES.get(type(exc), status.HTTP_500_INTERNAL_SERVER_ERROR)
        headers = {"Retry-After": str(retry_after_seconds)} if code == status.HTTP_503_SERVICE_UNAVAILABLE else None
        if code >= 500:
            logger.warning("%s: %s", type(exc).__name__, exc.detail)
        return _json_error(request, code, exc.detail, headers)

    def user_error(code: int):
        def handler(request: Request, exc: Exception) -> JSONResponse:
            return _json_error(request, code, str(exc) or type(exc).__name__)

        return handler

    def input_error(request: Request, exc: Exception) -> JSONResponse:
        for known in INPUT_ERRORS:
            if known.matches(exc):
                return _json_error(request, status.HTTP_400_BAD_REQUEST, known.detail.format(exc=exc))
        return unexpected(request, exc)

    def unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.error("unhandled %s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        return _json_error(request, status.HTTP_500_INTERNAL_SERVER_ERROR, "internal server error")

    for exc_class, code in USER_INPUT_STATUS_CODES.items():
        app.add_exception_handler(exc_class, user_error(code))
    app.add_exception_handler(RasterApiError, api_error)
    app.add_exception_handler(RasterioError, unexpected)
    for exc_class in dict.fromkeys(known.exc for known in INPUT_ERRORS):
        app.add_exception_handler(exc_class, input_error)
    app.add_exception_handler(Exception, unexpected)
