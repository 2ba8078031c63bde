"""Small real COGs whose pixel values say which source they came from.

Each sample is a single-band uint8 COG (EPSG:4326, internal overviews, nodata 0) with values
`base + (column // 64)`: the base identifies the bucket and the column ramp lets tests check pixels, not just colour.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import rasterio
from rasterio.io import MemoryFile
from rasterio.transform import from_bounds

DEFAULT_BOUNDS = (-120.0, 34.0, -119.0, 35.0)


def make_cog(base: int, bounds: tuple[float, float, float, float] = DEFAULT_BOUNDS, size: int = 512) -> bytes:
    """Return the bytes of a tiled, overviewed GeoTIFF made by GDAL's COG driver."""
    cols = np.arange(size, dtype=np.uint16) // 64
    data = np.broadcast_to((base + cols).astype(np.uint8), (size, size)).copy()
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 1,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": from_bounds(*bounds, size, size),
        "nodata": 0,
    }
    with MemoryFile() as src_mem:
        with src_mem.open(**profile) as dst:
            dst.write(data, 1)
        with src_mem.open() as src, MemoryFile() as out_mem:
            cog_profile = {
                **src.profile,
                "driver": "COG",
                "blocksize": 256,
                "compress": "DEFLATE",
                "overview_resampling": "nearest",
            }
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), out_mem.open(**cog_profile) as dst:
                dst.write(src.read())
            return bytes(out_mem.read())


def expected_value(base: int, column: int, size: int = 512) -> int:
    """The pixel value of the sample with `base` at full-resolution `column`."""
    return base + (column // 64)


# Next to the own sample (east of it), so both outlines can be seen on one map.
STRIPED_BOUNDS = (-119.0, 34.0, -118.0, 35.0)


def make_striped_geotiff(bounds: tuple[float, float, float, float] = STRIPED_BOUNDS, size: int = 1024) -> bytes:
    """Return a GeoTIFF that is deliberately NOT a COG: striped (no internal tiling) and without overviews.

    What a publisher uploads before running `rio cogeo create`: the viewer's validation panel must name both
    problems. Three uint8 bands (red: column ramp, green: row ramp, blue: 200) so band selection and an RGB
    rendering have something to show.
    """
    ramp = (np.arange(size, dtype=np.uint32) * 250 // size + 1).astype(np.uint8)
    data = np.stack(
        [
            np.broadcast_to(ramp, (size, size)),
            np.broadcast_to(ramp[:, None], (size, size)),
            np.full((size, size), 200, dtype=np.uint8),
        ]
    )
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": 3,
        "dtype": "uint8",
        "crs": "EPSG:4326",
        "transform": from_bounds(*bounds, size, size),
        "nodata": 0,
        "tiled": False,
        "blockysize": 8,
        "compress": "DEFLATE",
        "interleave": "pixel",
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
        return bytes(mem.read())


def make_hostile_geotiff(
    count: int, size: int, overviews: bool = True, statistics_tags: bool = False, dtype: str = "uint8"
) -> bytes:
    """A square GeoTIFF (value 7, 256 px tiles) of the kinds hostile requests aim at: many bands; with no
    overviews; bands tagged with STATISTICS_MINIMUM/MAXIMUM (rio-tiler's expression range estimate reads them).
    Above 4096 px nothing is written (a sparse file: a huge declared size in a few MB)."""
    profile = {
        "driver": "GTiff",
        "width": size,
        "height": size,
        "count": count,
        "dtype": dtype,
        "crs": "EPSG:4326",
        "transform": from_bounds(*DEFAULT_BOUNDS, size, size),
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "DEFLATE",
        "SPARSE_OK": "TRUE",
    }
    with MemoryFile() as memory:
        with memory.open(**profile) as dst:
            if size <= 4096:
                dst.write(np.full((count, size, size), 7, dtype=dtype))
                if overviews:
                    dst.build_overviews([2, 4, 8])
            if statistics_tags:
                for band in range(1, count + 1):
                    dst.update_tags(band, STATISTICS_MINIMUM=0, STATISTICS_MAXIMUM=100)
        return bytes(memory.read())


# West of the COG samples, so the sea-surface temperature and the COGs can be told apart on one map.
SST_BOUNDS = (-121.0, 34.0, -120.0, 35.0)
SST_SIZE = 256
SST_VARIABLE = "analysed_sst"
SST_OFFSET = 273.15
SST_SCALE = 0.001
SST_FILL = -32768
# The north-west corner is land: no value there (`_FillValue`).
SST_LAND = 32


def sst_value(base: float, column: int, time: int = 0) -> float:
    """The sample's temperature (kelvin) at `column` of time step `time`, as decoded from its packed integers."""
    return SST_OFFSET + SST_SCALE * round((base + 0.5 * (column // 32) + time) / SST_SCALE)


def sst_dataset(
    base: float, bounds: tuple[float, float, float, float] = SST_BOUNDS, size: int = SST_SIZE
) -> tuple[Any, dict[str, Any]]:
    """The sample as an xarray Dataset and its encoding, shaped like PO.DAAC's MUR sea-surface temperature:
    `analysed_sst(time, lat, lon)` packed as int16 with `scale_factor`/`add_offset` and `_FillValue`, latitude
    ascending, chunked; two daily time steps. Its value is `base` degrees Celsius plus 0.5 per 32 columns, plus 1 on
    the second day; the north-west corner is land (no value)."""
    import xarray

    west, south, east, north = bounds
    step_x, step_y = (east - west) / size, (north - south) / size
    ramp = base + 0.5 * (np.arange(size) // 32)
    kelvin = np.stack([np.broadcast_to(SST_OFFSET + ramp + t, (size, size)) for t in (0, 1)]).astype("float64")
    # Ascending latitude: row 0 is the south edge; the land corner is the north-west one.
    kelvin[:, -SST_LAND:, :SST_LAND] = np.nan
    attrs = {"long_name": "analysed sea surface temperature", "units": "kelvin"}
    ds = xarray.Dataset(
        {SST_VARIABLE: (("time", "lat", "lon"), kelvin, attrs)},
        coords={
            "time": np.array(["2026-07-01", "2026-07-02"], dtype="datetime64[ns]"),
            "lat": south + step_y * (np.arange(size) + 0.5),
            "lon": west + step_x * (np.arange(size) + 0.5),
        },
        attrs={"title": "Sample sea-surface temperature (MUR-like)", "Conventions": "CF-1.7"},
    )
    packing = {"dtype": "int16", "scale_factor": SST_SCALE, "add_offset": SST_OFFSET, "_FillValue": SST_FILL}
    return ds, packing


def make_sst_netcdf(base: float, bounds: tuple[float, float, float, float] = SST_BOUNDS, size: int = SST_SIZE) -> bytes:
    """`sst_dataset` as a NetCDF-4 file (chunks of 128 x 128, zlib)."""
    ds, packing = sst_dataset(base, bounds, size)
    encoding = {SST_VARIABLE: {**packing, "chunksizes": (1, 128, 128), "zlib": True}}
    return bytes(ds.to_netcdf(engine="h5netcdf", encoding=encoding))


def make_sst_zarr(
    base: float, bounds: tuple[float, float, float, float] = SST_BOUNDS, size: int = SST_SIZE
) -> dict[str, bytes]:
    """`sst_dataset` as a Zarr store (format 2, consolidated, chunks of 256 x 256): key under the store -> bytes."""
    import tempfile
    from pathlib import Path

    ds, packing = sst_dataset(base, bounds, size)
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store.zarr"
        encoding = {SST_VARIABLE: {**packing, "chunks": (1, 256, 256)}}
        ds.to_zarr(store, encoding=encoding, zarr_format=2, consolidated=True)
        return {str(p.relative_to(store)): p.read_bytes() for p in sorted(store.rglob("*")) if p.is_file()}
