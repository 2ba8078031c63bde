"""`/md/` routes (NetCDF-4, HDF5 and Zarr) from titiler.xarray's factory, read through the provider-read seam; mounted
when `RASTER_API_MD_ENABLED` is true (the `md` extra is installed).

The path dependency is the COG routes' (`DatasetPath`: the URL resolved to its canonical object and the provider that
owns the bucket; `?provider=` can only refuse). The reader opens that one object with the provider's credentials
(`raster_api.md_store`) and records the read in the request's read log, so the access log names it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

import attr
import numpy
import xarray
from affine import Affine
from fastapi import Depends, FastAPI
from rio_tiler.constants import WGS84_CRS
from rio_tiler.utils import cast_to_sequence
from rioxarray.exceptions import NoDataInBounds
from starlette import status
from titiler.extensions import wmtsExtension
from titiler.xarray.dependencies import XarrayParams
from titiler.xarray.factory import TilerFactory as XarrayTilerFactory
from titiler.xarray.io import X_DIM_NAMES, Y_DIM_NAMES
from titiler.xarray.io import Reader as XarrayFileReader

from raster_api import budget
from raster_api.dependencies import ROUTE_GUARDS, DatasetPath, read_scope
from raster_api.errors import OverBudget, VariableSelection
from raster_api.md_store import open_hdf5_file, open_zarr
from raster_api.params import parameter_slots
from raster_api.reading import ReadScope
from raster_api.routing import ResolvedRead

# xarray's selection methods (`sel=time=nearest::2026-07-02`).
SEL_METHODS = ("nearest", "pad", "ffill", "backfill", "bfill")
# Steps of the dimension left as bands: titiler.xarray describes each band (`/md/info`) and rio-tiler keeps one array
# per band, so a million time steps would take seconds and hundreds of MB before any budget applies.
MAX_BANDS = 1000


# rioxarray's errors caused by the area asked (the COG routes answer those from rio-tiler's table).
MD_STATUS_CODES: dict[type[Exception], int] = {
    NoDataInBounds: status.HTTP_404_NOT_FOUND,  # a bbox, feature or statistics area outside the variable
}


@dataclass
class MdReaderParams(XarrayParams):
    """titiler.xarray's reader parameters (`variable`, `sel`, `group`, `decode_times`) and the request's read scope."""

    scope: Annotated[ReadScope, Depends(read_scope)] = field(kw_only=True)


@attr.s
class ProviderXarrayReader(XarrayFileReader):
    """titiler.xarray's reader, opening the resolved object through the provider-read seam."""

    scope: ReadScope = attr.ib(kw_only=True, default=None)

    def __attrs_post_init__(self) -> None:
        self.opener = self._open
        try:
            super().__attrs_post_init__()
        except KeyError as exc:
            # titiler.xarray's get_variable: a variable the file lacks, or a `sel` value no coordinate has.
            raise self._selection_error(exc) from None

    @property
    def read(self) -> ResolvedRead:
        """The resolved object `DatasetPath` gave as `src_path`."""
        return cast(ResolvedRead, self.src_path)

    # Every data method is priced (`raster_api.budget`) before any pixel is read, from the variable's header.
    def part(self, bbox: Any, *args: Any, **kwargs: Any) -> Any:
        self._charge(
            bounds=bbox,
            bounds_crs=kwargs.get("bounds_crs") or WGS84_CRS,  # rio-tiler's default
            width=kwargs.get("width"),
            height=kwargs.get("height"),
            max_size=kwargs.get("max_size"),
            indexes=kwargs.get("indexes"),
        )
        return super().part(bbox, *args, **kwargs)

    def preview(self, *args: Any, **kwargs: Any) -> Any:
        self._charge(
            width=kwargs.get("width"),
            height=kwargs.get("height"),
            max_size=kwargs.get("max_size", 1024),
            indexes=kwargs.get("indexes"),
        )
        return super().preview(*args, **kwargs)

    def statistics(self, *args: Any, **kwargs: Any) -> Any:
        self._charge(indexes=kwargs.get("indexes"))  # the whole variable
        return super().statistics(*args, **kwargs)

    def point(self, *args: Any, **kwargs: Any) -> Any:
        self._charge(point=True, indexes=kwargs.get("indexes"))
        return super().point(*args, **kwargs)

    def _charge(self, **request: Any) -> None:
        layout = _ChunkLayout(self.input, self.ds.variables[self.variable])
        meter = self.scope.log.meter
        indexes = cast_to_sequence(request.pop("indexes", None))  # how rio-tiler reads `indexes`
        for index in indexes or ():
            if not 1 <= index <= layout.bands:
                raise VariableSelection(
                    f"bidx={index}: variable {self.variable!r} of {self.read} has {layout.bands} band(s)"
                )
        cost, chunks = layout.cost(indexes=indexes, **request)
        if chunks > meter.limits.max_chunks:
            raise OverBudget(
                "max_chunks",
                f"reading this from {self.read.url} touches {chunks} chunks of {self.variable!r} (one S3 request "
                f"each; its chunks are {layout.chunk_y} x {layout.chunk_x} px), above the {meter.limits.max_chunks} "
                "a request may touch (RASTER_API_MAX_CHUNKS): ask for a smaller area or fewer bands",
            )
        meter.charge(cost, self.read.url)

    def _selection_error(self, exc: KeyError) -> VariableSelection:
        ds = getattr(self, "ds", None)
        names = sorted(map(str, ds.data_vars)) if ds is not None else []
        read = self.read
        if ds is not None and self.variable not in ds.data_vars:
            return VariableSelection(
                f"variable {self.variable!r} is not in {read} (provider {read.provider.name!r}); it has: "
                f"{', '.join(names[:20]) or 'none'}"
            )
        return VariableSelection(f"sel {self.sel!r} selects nothing in {read}: {str(exc)[:120]}")

    def _open(self, src_path: ResolvedRead, group: str | None = None, decode_times: bool = True, **_: Any) -> Any:
        if not isinstance(src_path, ResolvedRead):
            raise TypeError("ProviderXarrayReader reads a ResolvedRead (ReadScope.resolve), not a raw URL")
        self.scope.log.add(src_path)
        self.scope.log.meter.check_deadline()
        if src_path.location.key.rstrip("/").endswith(".zarr"):
            ds = open_zarr(src_path, self.scope.router, group=group, decode_times=decode_times)
        else:
            file = open_hdf5_file(src_path, self.scope.router)
            try:
                ds = xarray.open_dataset(file, engine="h5netcdf", group=group, decode_times=decode_times)
            except OSError:
                if group is None:
                    raise
                # The file is HDF5 (open_hdf5_file checked it): what h5netcdf cannot open is the group.
                raise VariableSelection(f"group {group!r} is not in {src_path}") from None
        self._check_grid(ds, src_path)
        return ds

    def _check_grid(self, ds: xarray.Dataset, read: ResolvedRead) -> None:
        """A 400 for a variable or `sel` titiler.xarray cannot map (it would fail with a ValueError, a KeyError or an
        assertion): a variable that is not a grid of numbers with one x and one y dimension of 2 px or more, a `sel`
        on a dimension it lacks or on x/y, a value or method its coordinate cannot take, or more than one other
        dimension (or more than `MAX_BANDS` steps of it) left for the bands."""
        array = ds.variables.get(self.variable)
        if array is None:
            return  # named by get_variable's KeyError (`_selection_error`)
        name = f"variable {self.variable!r} of {read}"
        dims = [str(d) for d in array.dims]
        sizes = dict(zip(dims, array.shape, strict=True))
        x = [d for d in dims if d in ("x", *X_DIM_NAMES)]
        y = [d for d in dims if d in ("y", *Y_DIM_NAMES)]
        grid = (
            f"{name} has dimensions ({', '.join(dims)}): /md/ maps a variable with one x (lon) and one y (lat) "
            "dimension and at most one other, or more chosen with sel"
        )
        if len(x) != 1 or len(y) != 1:
            raise VariableSelection(grid)
        if array.dtype.kind not in "iuf":
            raise VariableSelection(f"{name} holds {array.dtype} values: /md/ maps integer and floating-point ones")
        if min(sizes[x[0]], sizes[y[0]]) < 2:
            raise VariableSelection(f"{name} is {sizes[x[0]]} x {sizes[y[0]]} px: /md/ maps grids of 2 x 2 or more")
        methods: dict[str, set[str]] = {}
        values: dict[str, int] = {}
        for part in self.sel or []:
            dimension, _, value = part.partition("=")
            method, _, value = value.rpartition("::")
            if dimension in (*x, *y):
                raise VariableSelection(
                    f"sel {part!r}: {dimension!r} is the x/y dimension of {name}; ask for an area instead (a tile, "
                    "a bbox, a point)"
                )
            if dimension not in dims:
                raise VariableSelection(
                    f"sel {part!r}: {name} has no dimension {dimension!r} (it has {', '.join(dims)})"
                )
            if method and method not in SEL_METHODS:
                raise VariableSelection(f"sel {part!r}: the method is one of {', '.join(SEL_METHODS)}")
            if method:
                methods.setdefault(dimension, set()).add(method)
                if len(methods[dimension]) > 1:
                    raise VariableSelection(
                        f"sel: one method per dimension, {dimension!r} has {sorted(methods[dimension])}"
                    )
            coordinate = ds.variables.get(dimension)
            kind = "i" if coordinate is None else coordinate.dtype.kind  # no coordinate: positions 0, 1, ...
            if kind in "OSU" and method:
                raise VariableSelection(f"sel {part!r}: {method} needs numbers or times; {dimension!r} holds text")
            index = ds.indexes.get(dimension)
            if index is not None and not index.is_unique:
                raise VariableSelection(
                    f"sel {part!r}: dimension {dimension!r} of {read} repeats values, so a value does not name one step"
                )
            if method and index is not None and not (index.is_monotonic_increasing or index.is_monotonic_decreasing):
                raise VariableSelection(
                    f"sel {part!r}: {method} needs a sorted coordinate, and {dimension!r} of {read} is not sorted (or "
                    "holds missing values); give an exact value"
                )
            if kind not in "OSU":
                try:
                    (numpy.int64 if coordinate is None else coordinate.dtype.type)(value)  # how titiler.xarray casts
                except (ValueError, TypeError, OverflowError):
                    kind_name = "a position" if coordinate is None else str(coordinate.dtype)
                    raise VariableSelection(
                        f"sel {part!r}: {value!r} is not a value of dimension {dimension!r} ({kind_name})"
                    ) from None
            values[dimension] = values.get(dimension, 0) + 1
        # A dimension given one value is dropped; one given several stays, as the bands.
        others = [d for d in dims if d not in (*x, *y) and values.get(d) != 1]
        if len(others) > 1:
            raise VariableSelection(grid)
        if others and (steps := values.get(others[0]) or sizes[others[0]]) > MAX_BANDS:
            raise VariableSelection(
                f"{name} has {steps} steps along {others[0]!r}, each a band: choose at most {MAX_BANDS} with sel"
            )


class _ChunkLayout:
    """What a read of a variable costs, from its header (no pixel is read): zarr and h5py decode whole chunks however
    little of one is asked, and a chunk may be larger than the variable, span several bands or a dimension `sel`
    fixed, so a chunk is priced whole, in every dimension, mapped to the dimensions by name (the file's order is not
    the ((band,) y, x) order titiler.xarray serves). A contiguous HDF5 variable is read row by row; there are no
    overviews, so a small image of a large variable reads all of it."""

    def __init__(self, array: xarray.DataArray, stored: xarray.Variable) -> None:
        # `array`: the variable as titiler.xarray serves it, `sel` applied; `stored`: as the file stores it.
        self.height, self.width = int(array.shape[-2]), int(array.shape[-1])
        self.bands = int(numpy.prod(array.shape[:-2])) if array.ndim > 2 else 1
        self.crs = array.rio.crs
        transform = array.rio.transform()
        if transform.e > 0:
            # Latitude ascending (as in PO.DAAC's MUR): rio-tiler flips the rows it reads, so the read covers the
            # same window as the north-up grid's; price that one.
            transform = Affine(
                transform.a,
                transform.b,
                transform.c,
                transform.d,
                -transform.e,
                transform.f + transform.e * self.height,
            )
        self.transform = transform
        stored_dtype = numpy.dtype(stored.encoding.get("dtype", stored.dtype))
        self.itemsize = max(array.dtype.itemsize, stored_dtype.itemsize)
        dims = [str(d) for d in stored.dims]
        chunking = stored.encoding.get("chunks") or stored.encoding.get("chunksizes")
        if chunking and len(chunking) == len(dims):
            chunks = {d: max(1, int(c)) for d, c in zip(dims, chunking, strict=True)}
        else:  # contiguous: one row of the last dimension at a time
            chunks = dict.fromkeys(dims, 1) | ({dims[-1]: int(stored.shape[-1])} if dims else {})
        x_name = next(d for d in dims if d in ("x", *X_DIM_NAMES))
        y_name = next(d for d in dims if d in ("y", *Y_DIM_NAMES))
        self.chunk_x, self.chunk_y = chunks[x_name], chunks[y_name]
        served = [str(d) for d in array.dims[:-2]]
        self.chunk_band = chunks.get(served[0], 1) if len(served) == 1 else 1
        self.chunk_elements = int(numpy.prod(list(chunks.values())))

    def cost(
        self,
        *,
        bounds: Any = None,
        bounds_crs: Any = None,
        width: int | None = None,
        height: int | None = None,
        max_size: int | None = None,
        indexes: Sequence[int] | None = None,
        point: bool = False,
    ) -> tuple[budget.ReadCost, int]:
        """The read's cost and the chunks it touches (one S3 request each)."""
        x0, y0, x1, y1 = 0.0, 0.0, float(self.width), float(self.height)
        out_w, out_h = (1.0, 1.0) if point else (float(self.width), float(self.height))
        if bounds is not None:
            if bounds_crs is not None and self.crs is not None and bounds_crs != self.crs:
                bounds = budget._transformed(bounds, bounds_crs, self.crs)
            col, row, w, h = budget._window(bounds, self.transform)
            if all(math.isfinite(v) for v in (col, row, w, h)):
                x0, x1 = max(0.0, min(col, col + w)), min(float(self.width), max(col, col + w))
                y0, y1 = max(0.0, min(row, row + h)), min(float(self.height), max(row, row + h))
                # rio-tiler sizes an image from the whole area asked, at the data's resolution, not only from the
                # part inside the data.
                out_w, out_h = abs(w), abs(h)
        if width and height:
            out_w, out_h = float(width), float(height)
        elif not point:
            out_w, out_h = budget._scaled(out_w, out_h, max_size)
        if point:
            across = down = 1
        elif x1 <= x0 or y1 <= y0:
            across = down = 0
        else:
            across = math.floor((x1 - 1e-9) / self.chunk_x) - math.floor(x0 / self.chunk_x) + 1
            down = math.floor((y1 - 1e-9) / self.chunk_y) - math.floor(y0 / self.chunk_y) + 1
        bands = indexes or list(range(1, self.bands + 1))
        band_chunks = len({(band - 1) // self.chunk_band for band in bands})
        chunks = across * down * band_chunks
        cost = budget.ReadCost(
            out_bands=len(bands),
            out_width=max(1, math.ceil(out_w)),
            out_height=max(1, math.ceil(out_h)),
            out_itemsize=max(self.itemsize, 4),  # decoded and reprojected as floating point
            source_pixels=chunks * self.chunk_elements,
            source_bands=1,
            source_itemsize=self.itemsize,
            missing_overview=False,
        )
        return cost, chunks


def add_md_routes(app: FastAPI) -> None:
    md = XarrayTilerFactory(
        router_prefix="/md",
        # The COG routes' guards: a valid tile, bounded outputs and zooms, bounded bodies, signed tile URLs.
        route_dependencies=ROUTE_GUARDS,
        reader=ProviderXarrayReader,
        path_dependency=DatasetPath,
        add_viewer=True,
        # The COG routes' bounded parameters, renderer and tile matrix sets, through the same slots.
        **parameter_slots(app.state.settings.api, XarrayTilerFactory, reader_dependency=MdReaderParams),
    )
    # WMTS checks a layer's query by building the tile dependencies from it alone: the reader's without the read
    # scope (which needs the request), so a valid query is not refused for want of a caller.
    checked: list[Callable[..., Any]] = [XarrayParams, md.tile_dependency, md.layer_dependency, md.dataset_dependency]
    checked += [md.process_dependency, md.colormap_dependency, md.render_dependency]
    wmtsExtension(tile_dependencies=checked).register(md)
    app.include_router(md.router, prefix="/md", tags=["NetCDF, HDF5 and Zarr"])
