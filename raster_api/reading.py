"""The one provider-read seam: every dataset the API reads, for the COG, mosaic and item routes alike, is opened here.

`ProviderReader` is rio-tiler's `Reader` opened through a request's `ReadScope`, which does, in this order:
1. resolve: the URL is parsed once into its canonical `S3Location` and the provider that may read it is decided
   (`ProviderRouter.check_access`: the bucket's owner; `?provider=` and a collection's declared provider can only
   refuse, never widen), then whether this caller may read through it (`raster_api.auth.authorize`: the
   provider's `access`). GDAL is given the location's own path, never the URL as written;
2. credentials: the provider's `rasterio.Env` is entered for the reader's whole life (the request-level env of every
   route is unsigned, so a read that bypassed this seam could not borrow the Lambda's identity);
3. retry: when S3 refuses the open, the provider's credentials are refreshed (at most once per
   `RASTER_API_CREDENTIALS_FORCED_REFRESH_INTERVAL`) and, if they changed, the open is tried once more after GDAL's
   cache of that path is dropped;
4. errors: GDAL failures become API errors naming the provider and the object (`translate_read_error`), at open and
   during reads alike;
5. record: each read is added to the request's `ReadLog`, which the access-log line reports.

A request's `ReadLog` is started by the access-log middleware and reached through a context variable; a scope keeps
the log it was created with, so rio-tiler's worker threads (which do not inherit context variables) record into it.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, cast

import attr
import numpy
import rasterio
from rasterio._err import CPLE_NotSupportedError
from rasterio.crs import CRS
from rasterio.errors import CRSError, RasterioIOError
from rio_tiler.constants import WGS84_CRS
from rio_tiler.expression import parse_expression
from rio_tiler.io import Reader

from raster_api import budget, gdal
from raster_api.auth import Caller, authorize, may_read
from raster_api.budget import CostMeter
from raster_api.errors import (
    BadBandSelection,
    BucketNotServed,
    CrsNotSupported,
    OverBudget,
    S3Failure,
    UnsupportedDataType,
    classify_s3_failure,
    translate_read_error,
)
from raster_api.routing import ProviderRouter, ResolvedRead

# Bands beyond which rio-tiler's expression range estimate (2^n evaluations) is skipped.
MAX_RANGE_ESTIMATE_BANDS = 8
# The formats a dataset may be: GeoTIFF (COGs) names no other file it would make GDAL open.
ALLOWED_DRIVER = "GTiff"
# S3 answers that fresh credentials may cure.
RETRYABLE = frozenset({S3Failure.REFUSED, S3Failure.BAD_CREDENTIALS})


@dataclass
class ReadLog:
    """The objects one request read (or tried to), in order; appended to from any thread."""

    reads: list[ResolvedRead] = field(default_factory=list)
    # What the request may still cost, and its deadline.
    meter: CostMeter = field(default_factory=CostMeter)
    # Providers whose keys S3 refused (after the retry): the S3Refusals metric.
    refused: set[str] = field(default_factory=set)
    # Whether the request was allowed to read through a restricted provider (its answer is for this caller only),
    # set at resolution: also for a route that answers without opening the object.
    restricted: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, read: ResolvedRead) -> None:
        with self._lock:
            if read not in self.reads:
                self.reads.append(read)

    def add_refusal(self, provider: str) -> None:
        with self._lock:
            self.refused.add(provider)

    def snapshot(self) -> list[ResolvedRead]:
        with self._lock:
            return list(self.reads)


_current_log: ContextVar[ReadLog | None] = ContextVar("raster_api_read_log", default=None)


@contextmanager
def read_log(meter: CostMeter | None = None) -> Iterator[ReadLog]:
    """Collect the reads of the code run inside (the access-log middleware wraps each request with it), priced by
    `meter` (default budgets when None)."""
    log = ReadLog(meter=meter or CostMeter())
    token = _current_log.set(log)
    try:
        yield log
    finally:
        _current_log.reset(token)


def current_read_log() -> ReadLog:
    """The running request's log (a throwaway one outside a request, e.g. in a script)."""
    return _current_log.get() or ReadLog()


@attr.s(frozen=True, auto_attribs=True)
class ReadScope:
    """One request's read rules: the router, the provider the request names, the collections' declarations."""

    router: ProviderRouter
    provider: str | None = None
    collection_provider: Callable[[str], str | None] = attr.ib(default=lambda _collection: None)
    log: ReadLog = attr.ib(factory=current_read_log)
    # The signed-in caller (None: anonymous); a restricted provider reads only for callers its `access` names.
    caller: Caller | None = None

    def resolve(self, url: str, collection: str | None = None) -> ResolvedRead:
        """The canonical object and the provider that reads it for this request, or a 400/401/403 error."""
        location = self.router.parse_url(url)
        if collection and (declared := self.collection_provider(collection)):
            self.router.check_access(declared, location.bucket)
        try:
            provider = self.router.check_access(self.provider, location.bucket)
        except BucketNotServed:
            named = self.router.providers.get(self.provider or "")
            if named is not None and not may_read(named, self.caller):
                # "does not serve bucket" would tell a stranger that this restricted provider exists.
                raise self.router.unknown_provider(named.name) from None
            raise
        authorize(provider, self.caller)
        if not provider.is_public:
            self.log.restricted = True
        return ResolvedRead(provider, location)

    def open(self, read: ResolvedRead, stack: ExitStack, opener: Callable[[str], Any] = rasterio.open) -> Any:
        """`opener(gdal_path)` inside the provider's env (kept on `stack`), retried once with fresh credentials when
        S3 refused the object itself."""
        self.log.add(read)
        self.log.meter.check_deadline()
        provider, path = read.provider, read.gdal_path
        credentials = self.router.credentials(provider)
        for attempt in (1, 2):
            stack.enter_context(rasterio.Env(**self.router.gdal_env(provider, credentials)))
            try:
                return opener(path)
            except RasterioIOError as exc:
                said = classify_s3_failure(exc, path) or S3Failure.OTHER
                # A refusal in GDAL's words may be a follow-up request's (see `ProviderRouter.object_failure`) or one
                # GDAL cached for this path: the object's own answer decides.
                failure = self.router.object_failure(read, credentials) if said in RETRYABLE else said
                if attempt == 1 and failure in RETRYABLE:
                    fresh = self.router.force_refresh(provider)
                    if fresh != credentials:  # else nothing new to try (or refreshed too recently): S3's answer stands
                        gdal.invalidate_path(path)
                        credentials = fresh
                        continue
                elif attempt == 1 and failure is None:
                    # The object reads fine with these keys: drop GDAL's cache of the path and ask once more.
                    gdal.invalidate_path(path)
                    continue
                if failure is None:  # still: GDAL's words, less the refusal the object's answer contradicts
                    failure = classify_s3_failure(exc, path, exclude=RETRYABLE) or S3Failure.OTHER
                if failure in RETRYABLE:
                    self.log.add_refusal(provider.name)
                raise translate_read_error(exc, provider.name, read.url, path, failure) from exc
        raise AssertionError("unreachable: the second attempt returns or raises")

    def reader(self, collection: str | None = None) -> Callable[..., ProviderReader]:
        """A reader factory for rio-tiler's multi-asset readers (`_get_reader`): `factory(href, **options)`."""

        def open_asset(href: str, **options: Any) -> ProviderReader:
            # titiler hands a COG reader its path dependency's value the same way: a resolved read as `input`.
            return ProviderReader(self.resolve(href, collection), scope=self, **options)

        return open_asset


BAND_NAME = re.compile(r"\bb(\d+)\b")


def _bands_read(kwargs: dict[str, Any]) -> list[int] | None:
    """The bands a read's `expression` or `indexes` name, as rio-tiler reads them (None: every band)."""
    if expression := kwargs.get("expression"):
        return list(parse_expression(expression))
    indexes = kwargs.get("indexes")
    return [indexes] if isinstance(indexes, int) else list(indexes) if indexes else None


WKT_NAME = re.compile(r'^\w+\["([^"]{1,80})"')


def _crs_name(crs: CRS | None) -> str:
    """`EPSG:3857`, or the name a WKT gives (`Mars (2015) - Sphere / Ocentric`), for a message."""
    if crs is None:
        return "none"
    if authority := crs.to_authority():
        return ":".join(authority)
    match = WKT_NAME.match(crs.to_wkt())
    return repr(match.group(1)) if match else "a custom CRS"


# What numexpr (rio-tiler's evaluator) accepts besides band names.
EXPRESSION_FUNCTIONS = frozenset(
    [
        "where",
        "sin",
        "cos",
        "tan",
        "arcsin",
        "arccos",
        "arctan",
        "arctan2",
        "sinh",
        "cosh",
        "tanh",
        "arcsinh",
        "arccosh",
        "arctanh",
        "log",
        "log10",
        "log1p",
        "exp",
        "expm1",
        "sqrt",
        "abs",
        "floor",
        "ceil",
    ]
)
IDENTIFIER = re.compile(r"(?<![\w.])[A-Za-z_]\w*")
MAX_EXPRESSION_LENGTH = 2_000


def _check_expression(expression: str) -> None:
    """A rio-tiler expression (`;`-separated numexpr blocks over `b1`, `b2`...): names and syntax, else a 400."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise BadBandSelection(f"expression is longer than {MAX_EXPRESSION_LENGTH} characters")
    for name in IDENTIFIER.findall(expression):
        if not BAND_NAME.fullmatch(name) and name not in EXPRESSION_FUNCTIONS:
            raise BadBandSelection(f"expression: unknown name {name[:40]!r} (bands are b1, b2, ...)")
    for block in expression.split(";"):
        try:
            compile(block, "<expression>", "eval")  # parsed only, never run: numexpr evaluates it
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            raise BadBandSelection(f"expression: {block[:60]!r} is not a valid expression") from None


def _holds(dtype: str, value: float) -> bool:
    """Whether arrays of `dtype` can hold `value` (nan and infinities only in floats)."""
    kind = numpy.dtype(dtype)
    if kind.kind == "f":
        return math.isnan(value) or math.isinf(value) or abs(value) <= numpy.finfo(kind).max
    if not float(value).is_integer():
        return False
    info = numpy.iinfo(kind)
    return info.min <= value <= info.max


@attr.s
class ProviderReader(Reader):
    """rio-tiler's COG reader, opened through the provider-read seam; `input` is the resolved read."""

    scope: ReadScope = attr.ib(kw_only=True)

    def __attrs_post_init__(self) -> None:
        try:
            if not self.dataset:
                self.dataset = self.scope.open(self.resolved, self._ctx_stack, self._open)
            super().__attrs_post_init__()
        except BaseException:
            # No `with` block will close a reader that failed to open: leave the thread's GDAL env as it was.
            self._ctx_stack.close()
            raise

    def _open(self, path: str) -> Any:
        # GeoTIFF only: GDAL picks a driver by content, and a VRT (or GTI, MRF...) saved as `.tif` would open other
        # objects, in any bucket, with this provider's credentials and outside this seam.
        return self._ctx_stack.enter_context(rasterio.open(path, driver=ALLOWED_DRIVER))

    @property
    def resolved(self) -> ResolvedRead:
        """The object this reader reads (its `input`: titiler passes the path dependency's value through)."""
        if not isinstance(self.input, ResolvedRead):
            raise TypeError("ProviderReader reads a ResolvedRead (ReadScope.resolve), not a raw URL")
        return self.input

    @property
    def read_path(self) -> str:
        return self.resolved.gdal_path

    # Every data method of rio-tiler's Reader reaches the dataset through one of these three (tile and feature call
    # part; preview and statistics call read): the bands and nodata asked for are checked there against the dataset.
    # They are also where a read is priced (`raster_api.budget`) before any pixel is read.
    def part(self, *args: Any, **kwargs: Any) -> Any:
        self._check_request(kwargs)
        with self._placed(kwargs.get("dst_crs") or kwargs.get("bounds_crs") or WGS84_CRS):
            bbox = args[0] if args else kwargs["bbox"]
            self._charge(kwargs, bounds=bbox, bounds_crs=kwargs.get("bounds_crs") or WGS84_CRS)
            return self._evaluated(super().part, args, kwargs)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        self._check_request(kwargs)
        self._charge(kwargs)
        return self._evaluated(super().read, args, kwargs)

    def point(self, *args: Any, **kwargs: Any) -> Any:
        self._check_request(kwargs)
        self.scope.log.meter.charge(budget.estimate_point(self.dataset, _bands_read(kwargs)), self.resolved.url)
        with self._placed(kwargs.get("coord_crs") or WGS84_CRS):
            return super().point(*args, **kwargs)

    def _charge(self, kwargs: dict[str, Any], **area: Any) -> None:
        expression = kwargs.get("expression")
        cost = budget.estimate(
            self.dataset,
            width=kwargs.get("width"),
            height=kwargs.get("height"),
            max_size=kwargs.get("max_size"),
            buffer=kwargs.get("buffer"),
            indexes=_bands_read(kwargs),
            expression_blocks=len(expression.split(";")) if expression else 0,
            level_block=self._level_block,
            **area,
        )
        self.scope.log.meter.charge(cost, self.resolved.url)

    def _level_block(self, level: int) -> tuple[int, int]:
        """The block shape of overview `level` (its own IFD; GDAL's cache holds the header already)."""
        with rasterio.open(self.read_path, driver=ALLOWED_DRIVER, overview_level=level) as overview:
            return cast(tuple[int, int], overview.block_shapes[0])

    @staticmethod
    def _evaluated(method: Callable[..., Any], args: Any, kwargs: dict[str, Any]) -> Any:
        """`method` with rio-tiler's expression handling (read the bands it names, then evaluate it), except that
        the output range estimated from the bands' STATISTICS_* tags (one evaluation per min/max combination: 2^n)
        is dropped beyond `MAX_RANGE_ESTIMATE_BANDS` bands."""
        expression = kwargs.pop("expression", None)
        if not expression:
            return method(*args, **kwargs)
        image = method(*args, **{**kwargs, "indexes": parse_expression(expression)})
        if image.dataset_statistics and len(image.dataset_statistics) > MAX_RANGE_ESTIMATE_BANDS:
            image.dataset_statistics = None
        return image.apply_expression(expression)

    def tile(self, *args: Any, **kwargs: Any) -> Any:
        # Whether the tile exists is decided in the tile matrix set's CRS, before `part`.
        with self._placed(self.tms.rasterio_crs, f"tile matrix set {self.tms.id!r}"):
            return super().tile(*args, **kwargs)

    def info(self) -> Any:
        with self._placed(None):
            return super().info()

    @contextmanager
    def _placed(self, target: CRS | None, name: str | None = None) -> Iterator[None]:
        """Answer the transformations a dataset's CRS cannot make (no CRS; Mars or a local engineering CRS on a web
        map) with a 400 naming the object and both CRSs; GDAL/PROJ raise them as `CRSError`/`CPLE_NotSupportedError`."""
        if self.crs is None:
            raise CrsNotSupported(
                f"{self.resolved.url} (provider {self.resolved.provider.name!r}) has no coordinate reference system, "
                "so it cannot be placed on a map"
            )
        try:
            yield
        except (CRSError, CPLE_NotSupportedError) as exc:
            if "coordinate operation" not in str(exc):
                raise
            wanted = f"{name} ({_crs_name(target)})" if name else _crs_name(target)
            raise CrsNotSupported(
                f"the CRS of {self.resolved.url} (provider {self.resolved.provider.name!r}), {_crs_name(self.crs)}, "
                f"cannot be transformed to {wanted}"
            ) from None

    def _check_request(self, kwargs: dict[str, Any]) -> None:
        """Real-valued samples, `bidx`/`expression` bands that exist and a `nodata` the dataset's type can hold, else a
        400."""
        dataset = cast(Any, self.dataset)  # always open here: __attrs_post_init__ opened it
        if numpy.dtype(dataset.dtypes[0]).kind == "c":
            raise UnsupportedDataType(
                f"{self.resolved.url} holds {dataset.dtypes[0]} (complex) samples: this API reads real values only"
            )
        count = dataset.count
        indexes = kwargs.get("indexes")
        wanted = [indexes] if isinstance(indexes, int) else list(indexes or [])
        if expression := kwargs.get("expression"):
            _check_expression(expression)
            named = [int(n) for n in BAND_NAME.findall(expression)]
            limit = self.scope.log.meter.limits.max_expression_bands
            if len(set(named)) > limit:
                raise OverBudget(
                    "max_expression_bands",
                    f"expression names {len(set(named))} distinct bands, more than {limit} "
                    "(RASTER_API_MAX_EXPRESSION_BANDS)",
                )
            wanted += named
        missing = sorted({i for i in wanted if not 1 <= i <= count})
        if missing:
            raise BadBandSelection(
                f"band(s) {', '.join(map(str, missing))} of {self.resolved.url} do not exist: it has {count} band(s)"
            )
        nodata = kwargs.get("nodata", self.options.get("nodata"))
        if nodata is not None and not _holds(dataset.dtypes[0], nodata):
            raise BadBandSelection(
                f"nodata={nodata} does not fit the data type {dataset.dtypes[0]} of {self.resolved.url}"
            )

    def __exit__(self, exc_type: Any, exc_value: BaseException | None, traceback: Any) -> None:
        self.close()
        if isinstance(exc_value, RasterioIOError):
            # A failure after the open (a range request refused or lost): worded like one at the open.
            read = self.resolved
            raise translate_read_error(exc_value, read.provider.name, read.url, read.gdal_path) from exc_value
