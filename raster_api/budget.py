"""What one request may cost, decided from the dataset's header and the request's counts before any pixel is read.

Bounding each parameter alone (tilesize, max_size, expression length) does not bound the work: a 512 px tile with 666
expression blocks, 1000 repeated `bidx`, a 300-band raster, a raster of 131072 x 131072 px without overviews, 12 000
features or 150 mosaic items are each valid and each would exhaust a Lambda. So every read of the provider-read seam
is priced first (`ReadCost`): the decoded output (bands x width x height x bytes per sample) and the decoded source
pixels GDAL must read for it (at the overview level it reads for that scale, in whole blocks; summed over the
request's reads), and refused above `RASTER_API_MAX_*` with a 400 that names the parameters to change and the limit.
A request also has a deadline (`RASTER_API_REQUEST_DEADLINE`), checked before each open and each read: past it the
answer is a 503 with `Retry-After`. The access log names the budget a request hit.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy
import pyproj
from affine import Affine
from rasterio.crs import CRS
from rasterio.errors import WindowError
from rasterio.warp import transform_bounds

from raster_api.errors import DeadlineExceeded, OverBudget
from raster_api.settings import BudgetSettings

MB = 2**20
# An expression is evaluated in float64; so is a stacking mosaic's median, mean or stdev.
EXPRESSION_ITEMSIZE = 8
# Base blocks below this side may hide larger overview blocks (asked for with `level_block`).
SMALL_BLOCK = 256
STACKED_ITEMSIZE = 8


@dataclass(frozen=True)
class ReadCost:
    """What one read will cost, from the dataset's header and the request."""

    out_bands: int
    out_width: int
    out_height: int
    out_itemsize: int
    source_pixels: int  # per band, whole blocks, at the overview level read
    source_bands: int  # bands read (a repeated band counts each time)
    source_itemsize: int
    # The request asks for a coarser scale than the dataset has overviews for (it is read at a finer level).
    missing_overview: bool
    # Compressed blocks as wide as the image (strips, one tile): decoded from their first row.
    striped: bool = False

    @property
    def output_bytes(self) -> int:
        return self.out_bands * self.out_width * self.out_height * self.out_itemsize

    @property
    def source_bytes(self) -> int:
        return self.source_pixels * self.source_bands * self.source_itemsize


def _scaled(width: float, height: float, max_size: int | None) -> tuple[float, float]:
    """rio-tiler's output size for `max_size`: the longer side brought down to it, never up."""
    if max_size and max(width, height) > max_size:
        ratio = max_size / max(width, height)
        return max(1.0, width * ratio), max(1.0, height * ratio)
    return width, height


def estimate(
    dataset: Any,
    *,
    bounds: tuple[float, float, float, float] | None = None,
    bounds_crs: CRS | None = None,
    width: int | None = None,
    height: int | None = None,
    max_size: int | None = None,
    buffer: float | None = None,
    indexes: list[int] | None = None,
    expression_blocks: int = 0,
    level_block: Callable[[int], tuple[int, int]] | None = None,
) -> ReadCost:
    """The cost of reading `bounds` (in `bounds_crs`; the whole dataset when None) of `dataset` into an image of
    `width` x `height` (or `max_size`, or the native size) with the bands `indexes` (all when None).
    `level_block(i)` is the block shape of overview level `i`, asked only when the base blocks are small."""
    full_width, full_height = dataset.width, dataset.height
    native_w, native_h, bottom = float(full_width), float(full_height), float(full_height)
    if bounds is not None:
        if bounds_crs is not None and dataset.crs is not None and bounds_crs != dataset.crs:
            bounds = _transformed(bounds, bounds_crs, dataset.crs)
        col_off, row_off, window_w, window_h = _window(bounds, dataset.transform)
        # Bounds that do not transform (inf, NaN) are priced as the whole dataset.
        if all(math.isfinite(v) for v in (col_off, row_off, window_w, window_h)):
            # Only the part inside the dataset is read.
            native_w = min(abs(window_w), full_width)
            native_h = min(abs(window_h), full_height)
            bottom = min(max(row_off, row_off + window_h, 0.0), full_height)
    if width and height:
        pad = 2 * (buffer or 0)
        out_w, out_h = width + pad, height + pad
        # A buffer widens the area read as much as the image.
        native_w = min(native_w * out_w / width, full_width)
        native_h = min(native_h * out_h / height, full_height)
    else:
        out_w, out_h = _scaled(native_w, native_h, max_size)

    # GDAL reads the coarsest overview that is still at least as fine as the output (a conservative reading of its
    # choice); in whole blocks of that level.
    ratio = min(native_w / max(out_w, 1), native_h / max(out_h, 1))
    overviews = dataset.overviews(1)
    factor = max((f for f in (1, *overviews) if f <= max(ratio, 1)), default=1)
    block_h, block_w = dataset.block_shapes[0]
    if factor > 1 and level_block is not None and min(block_h, block_w) < SMALL_BLOCK:
        # Overviews may be written with other (larger) blocks than small base tiles.
        block_h, block_w = level_block(overviews.index(factor))
    level_w, level_h = math.ceil(full_width / factor), math.ceil(full_height / factor)
    read_w = min(level_w, (math.ceil(native_w / factor / block_w) + 1) * block_w)
    read_h = min(level_h, (math.ceil(native_h / factor / block_h) + 1) * block_h)
    striped = _compressed_strips(dataset)
    source_pixels = read_w * read_h
    if striped:
        # GDAL may present one compressed strip as 1-row blocks: reaching a row decodes every row above it.
        source_pixels = level_w * min(level_h, math.ceil(bottom / factor) + 1)
    if (warped := _warped_strips(dataset)) is not None:
        source_pixels, striped = warped, True
    bands = list(indexes) if indexes else list(range(1, dataset.count + 1))
    itemsize = max(_itemsize(dtype) for dtype in dataset.dtypes)
    return ReadCost(
        out_bands=expression_blocks or len(bands),
        out_width=math.ceil(out_w),
        out_height=math.ceil(out_h),
        out_itemsize=_work_itemsize(dataset, expression_blocks),
        source_pixels=source_pixels,
        source_bands=_decoded_bands(dataset, bands),
        source_itemsize=itemsize,
        missing_overview=ratio >= 2 * factor,
        striped=striped,
    )


def _window(bounds: tuple[float, float, float, float], transform: Affine) -> tuple[float, float, float, float]:
    """`rasterio.windows.from_bounds(*bounds, transform=transform)` as (col_off, row_off, width, height), with the
    same refusal of inconsistent bounds, in plain affine arithmetic (rasterio's goes through numpy: 0.3 ms a tile)."""
    left, bottom, right, top = bounds
    if (right - left) / transform.a < 0 or (bottom - top) / transform.e < 0:
        raise WindowError("Bounds and transform are inconsistent")
    inverse = ~transform
    corners = [inverse @ corner for corner in ((left, top), (right, top), (right, bottom), (left, bottom))]
    cols, rows = [col for col, _ in corners], [row for _, row in corners]
    return min(cols), min(rows), max(cols) - min(cols), max(rows) - min(rows)


@functools.lru_cache(maxsize=64)
def _transformer(src: CRS, dst: CRS) -> pyproj.Transformer | None:
    """One transformer per pair of CRSs, shared by every request thread (pyproj's Transformer is thread-safe: one PROJ
    object per thread, since 3.1); None, remembered too, for a pair PROJ cannot transform (Mars to Earth)."""
    try:
        return pyproj.Transformer.from_crs(
            pyproj.CRS.from_wkt(src.to_wkt()), pyproj.CRS.from_wkt(dst.to_wkt()), always_xy=True
        )
    except pyproj.exceptions.ProjError:
        return None


def _transformed(bounds: tuple[float, float, float, float], src: CRS, dst: CRS) -> tuple[float, float, float, float]:
    """`rasterio.warp.transform_bounds(src, dst, *bounds, densify_pts=21)` with a PROJ transformer made once per pair
    of CRSs (rasterio makes one per call: half a millisecond, on every tile). A pair PROJ cannot transform goes to
    rasterio, whose errors the reader answers with a 400 naming both CRSs."""
    if (transformer := _transformer(src, dst)) is not None:
        try:
            return transformer.transform_bounds(*bounds, densify_pts=21)  # type: ignore[no-any-return]
        except pyproj.exceptions.ProjError:
            pass
    return transform_bounds(src, dst, *bounds, densify_pts=21)


def estimate_point(dataset: Any, indexes: list[int] | None = None) -> ReadCost:
    """The cost of reading one pixel: the full-resolution block holding it, in every band decoded with it."""
    block_h, block_w = dataset.block_shapes[0]
    striped = _compressed_strips(dataset)
    rows = dataset.height if striped else block_h  # the row is not known here: the strip's worst case
    bands = list(indexes) if indexes else list(range(1, dataset.count + 1))
    itemsize = max(_itemsize(dtype) for dtype in dataset.dtypes)
    source_pixels = min(block_w, dataset.width) * min(rows, dataset.height)
    if (warped := _warped_strips(dataset)) is not None:
        source_pixels, striped = warped, True
    return ReadCost(
        out_bands=len(bands),
        out_width=1,
        out_height=1,
        out_itemsize=itemsize,
        source_pixels=source_pixels,
        source_bands=_decoded_bands(dataset, bands),
        source_itemsize=itemsize,
        missing_overview=False,
        striped=striped,
    )


def _compressed_strips(dataset: Any) -> bool:
    """Compressed blocks as wide as the image (strips, or a single tile): GDAL may present one such block as
    1-row blocks, but reaching a row decodes every row above it."""
    return bool(dataset.block_shapes[0][1] >= dataset.width and dataset.compression is not None)


def _warped_strips(dataset: Any) -> int | None:
    """For a dataset read through a warped VRT (rio-tiler warps datasets georeferenced by GCPs), whose source has
    compressed blocks as wide as the image: the source's pixels (where the warp reads in it is not known here)."""
    source = getattr(dataset, "src_dataset", None)
    if source is not None and _compressed_strips(source):
        return int(source.width * source.height)
    return None


def _work_itemsize(dataset: Any, expression_blocks: int) -> int:
    """Bytes per output sample while it is worked on: an expression's result and floating-point data are rendered
    (rescaled, masked, cast) in float64."""
    if expression_blocks or any(numpy.dtype(dtype).kind == "f" for dtype in dataset.dtypes):
        return EXPRESSION_ITEMSIZE
    return max(_itemsize(dtype) for dtype in dataset.dtypes)


def _decoded_bands(dataset: Any, bands: list[int]) -> int:
    """Bands GDAL decodes to read `bands`: all of them when the samples are interleaved by pixel."""
    interleaving = getattr(dataset.interleaving, "value", None)
    return max(len(bands), dataset.count) if interleaving == "PIXEL" and dataset.count > 1 else len(bands)


def _itemsize(dtype: str) -> int:
    return numpy.dtype(dtype).itemsize


@dataclass
class CostMeter:
    """One request's budget: the limits, what its reads have cost so far, its deadline."""

    limits: BudgetSettings = field(default_factory=BudgetSettings)
    clock: Callable[[], float] = time.monotonic
    started: float = field(default=-1.0)
    source_bytes: int = 0
    # Reads whose outputs are all held at once (an item's assets, a median mosaic's items) add up in `held_bytes`,
    # at `held_itemsize` bytes per sample when set (a median or a mean computes in float64).
    holding: bool = False
    held_itemsize: int | None = None
    held_bytes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.started < 0:
            self.started = self.clock()

    def check_deadline(self) -> None:
        seconds = self.limits.request_deadline
        if self.clock() - self.started > seconds:
            raise DeadlineExceeded(
                "request_deadline",
                f"the request worked past its {seconds:g} s deadline (RASTER_API_REQUEST_DEADLINE) and was stopped; "
                "retry later, or ask for less (a smaller area, fewer bands, items or features)",
            )

    def charge(self, cost: ReadCost, url: str) -> None:
        """Refuse `cost` (400) if it breaks a budget, else add it to what the request has read."""
        self.check_deadline()
        limits = self.limits
        if cost.output_bytes > limits.max_output_bytes:
            raise OverBudget(
                "max_output_bytes",
                f"the output would be {cost.out_bands} band(s) of {cost.out_width}x{cost.out_height} px "
                f"({_mb(cost.output_bytes)} MB decoded), above the {_mb(limits.max_output_bytes)} MB a request may "
                "produce (RASTER_API_MAX_OUTPUT_BYTES): ask for fewer bands (bidx, expression) or fewer pixels "
                "(tilesize, max_size, width/height)",
            )
        with self._lock:
            if self.holding:
                itemsize = self.held_itemsize or cost.out_itemsize
                held = self.held_bytes + cost.out_bands * cost.out_width * cost.out_height * itemsize
                if held > limits.max_output_bytes:
                    raise OverBudget(
                        "max_output_bytes",
                        f"this request holds every asset's or item's pixels at once: {_mb(held)} MB with {url}, above "
                        f"the {_mb(limits.max_output_bytes)} MB a request may hold (RASTER_API_MAX_OUTPUT_BYTES): ask "
                        "for fewer pixels, assets or items (items_limit)",
                    )
                self.held_bytes = held
            total = self.source_bytes + cost.source_bytes
            if total > limits.max_source_bytes:
                before = f" (after {_mb(self.source_bytes)} MB by its other reads)" if self.source_bytes else ""
                if cost.striped:
                    advice = (
                        "its compressed blocks span the whole width (strips, or one tile), decoded from their first "
                        "row. Convert it to a COG (`rio cogeo create`), or ask for a smaller area or fewer bands"
                    )
                elif cost.missing_overview:
                    advice = (
                        "it has no overview for this scale. Add overviews (`rio cogeo create`, or `gdaladdo`), or ask "
                        "for a smaller area or fewer bands"
                    )
                else:
                    advice = "ask for a smaller area, fewer bands, features or items"
                raise OverBudget(
                    "max_source_bytes",
                    f"reading this from {url} needs {_mb(cost.source_bytes)} MB of pixels{before}, above the "
                    f"{_mb(limits.max_source_bytes)} MB a request may read (RASTER_API_MAX_SOURCE_BYTES): {advice}",
                )
            self.source_bytes = total


def check_stack(
    limits: BudgetSettings, holder: str, count: int, noun: str, side: int, itemsize: int, advice: str
) -> None:
    """Refuse, before anything is read, `count` images of `side` x `side` px held at once (at least one band of
    `itemsize` bytes each) above the output budget; `holder` and `noun` say who holds what in the message."""
    held = count * side * side * itemsize
    if held > limits.max_output_bytes:
        raise OverBudget(
            "max_output_bytes",
            f"{holder} holds {count} {noun}(s) of {side}x{side} px at once (at least {held / MB:,.0f} MB), above the "
            f"{limits.max_output_bytes / MB:,.0f} MB a request may hold (RASTER_API_MAX_OUTPUT_BYTES): {advice}",
        )


def _mb(size: int) -> str:
    return f"{size / MB:,.1f}" if size < 10 * MB else f"{size / MB:,.0f}"
