"""`/md/` routes (NetCDF-4, HDF5 and Zarr) from titiler.xarray's factory, read through the provider-read seam; mounted
when `RASTER_API_MD_ENABLED` is true (the `md` extra is installed).

The path dependency is the COG routes' (`DatasetPath`: the URL resolved to its canonical object and the provider that
owns the bucket; `?provider=` can only refuse). The reader opens that one object with the provider's credentials
(`raster_api.md_store`) and records the read in the request's read log, so the access log names it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

import attr
import numpy
import xarray
from affine import Affine
from fastapi import Depends, FastAPI
from rio_tiler.constants import WGS84_CRS
from titiler.extensions import wmtsExtension
from titiler.xarray.dependencies import XarrayParams
from titiler.xarray.factory import TilerFactory as XarrayTilerFactory
from titiler.xarray.io import X_DIM_NAMES, Y_DIM_NAMES
from titiler.xarray.io import Reader as XarrayFileReader

from raster_api import budget
from raster_api.dependencies import ROUTE_GUARDS, DatasetPath, read_scope
from raster_api.errors import VariableSelection
from raster_api.md_store import open_hdf5_file, open_zarr
from raster_api.params import parameter_slots
from raster_api.reading import ReadScope
from raster_api.routing import ResolvedRead


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
            bounds_crs=kwargs.get("bounds_crs") or WGS84_CRS,
            width=kwargs.get("width"),
            height=kwargs.get("height"),
            max_size=kwargs.get("max_size"),
        )
        return super().part(bbox, *args, **kwargs)

    def preview(self, *args: Any, **kwargs: Any) -> Any:
        self._charge(width=kwargs.get("width"), height=kwargs.get("height"), max_size=kwargs.get("max_size", 1024))
        return super().preview(*args, **kwargs)

    def statistics(self, *args: Any, **kwargs: Any) -> Any:
        self._charge()  # the whole variable
        return super().statistics(*args, **kwargs)

    def point(self, *args: Any, **kwargs: Any) -> Any:
        self.scope.log.meter.charge(budget.estimate_point(_ArrayHeader(self.input)), self.read.url)
        return super().point(*args, **kwargs)

    def _charge(self, **area: Any) -> None:
        self.scope.log.meter.charge(budget.estimate(_ArrayHeader(self.input), **area), self.read.url)

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
        """A 400 for a variable titiler.xarray cannot map (it would fail with a ValueError or an assertion): one
        without two horizontal dimensions, or with more than one other dimension left once `sel` has chosen."""
        array = ds.variables.get(self.variable)
        if array is None:
            return  # named by get_variable's KeyError (`_selection_error`)
        dims = [str(d) for d in array.dims]
        x = [d for d in dims if d in ("x", *X_DIM_NAMES)]
        y = [d for d in dims if d in ("y", *Y_DIM_NAMES)]
        chosen = set()
        for part in self.sel or []:
            dimension, _, value = part.partition("=")
            value = value.split("::", 1)[-1]
            if dimension not in dims:
                raise VariableSelection(
                    f"sel {part!r}: variable {self.variable!r} of {read} has no dimension {dimension!r} "
                    f"(it has {', '.join(dims)})"
                )
            coordinate = ds.variables.get(dimension)
            if coordinate is not None and coordinate.dtype != object:
                try:
                    coordinate.dtype.type(value)  # how titiler.xarray casts a sel value
                except (ValueError, TypeError, OverflowError):
                    raise VariableSelection(
                        f"sel {part!r}: {value!r} is not a value of dimension {dimension!r} ({coordinate.dtype})"
                    ) from None
            chosen.add(dimension)
        others = [d for d in dims if d not in (*x, *y) and d not in chosen]
        if len(x) != 1 or len(y) != 1 or len(others) > 1:
            raise VariableSelection(
                f"variable {self.variable!r} of {read} has dimensions ({', '.join(dims)}): /md/ maps a variable "
                "with one x (lon) and one y (lat) dimension and at most one other, or more chosen with sel"
            )


class _ArrayHeader:
    """What `raster_api.budget.estimate` reads of a rasterio dataset, from a DataArray's header (no pixel is read):
    a 2-D grid, as many bands as the other dimensions hold, in the chunks the file stores (whole when contiguous)."""

    compression = None
    interleaving = None

    def __init__(self, array: xarray.DataArray) -> None:
        self.height, self.width = int(array.shape[-2]), int(array.shape[-1])
        self.count = int(numpy.prod(array.shape[:-2])) if array.ndim > 2 else 1
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
        self.dtypes = [str(array.dtype)] * self.count
        # Zarr and chunked HDF5 read whole chunks; a contiguous HDF5 variable is read row by row.
        chunks = array.encoding.get("chunks") or array.encoding.get("chunksizes") or (1, self.width)
        self.block_shapes = [(int(chunks[-2]), int(chunks[-1]))] * self.count

    def overviews(self, band: int) -> list[int]:
        return []  # NetCDF and Zarr variables carry no overviews: a small image of a large one reads all of it


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
