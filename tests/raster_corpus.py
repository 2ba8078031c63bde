"""The field's test rasters, made here: odd data types, nodata of every kind, masks and alpha, sidecars, scale/offset,
palettes, polar, dateline-crossing, non-earth and local CRSs, GCPs, tiny, tall, striped, many bands, other formats,
keys with and without extensions (what rio-tiler's and titiler's own fixtures cover).

`build_corpus(directory)` writes each raster (and its sidecar files) under `directory` and returns the list; the
differential test uploads them to S3 and reads each through our API and vanilla titiler.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.control import GroundControlPoint
from rasterio.enums import ColorInterp
from rasterio.transform import Affine, from_bounds

WGS84_BOUNDS = (-120.0, 34.0, -119.0, 35.0)
SIZE = 128


@dataclass(frozen=True)
class CorpusRaster:
    """One object of the corpus: its key in the bucket, the files written (key first, then sidecars)."""

    name: str
    key: str
    files: tuple[Path, ...] = field(default=())
    # Objects next to it that GDAL may look for (external overviews, masks).
    sidecars: tuple[str, ...] = ()


def _ramp(dtype: str, bands: int = 1, width: int = SIZE, height: int = SIZE) -> np.ndarray:
    """Values that differ per pixel and per band and span the type's range without overflowing it."""
    kind = np.dtype(dtype)
    y, x = np.mgrid[0:height, 0:width]
    base = (x * 3 + y * 5) % 251
    stack = np.stack([base + 7 * b for b in range(bands)]).astype("float64")
    if kind.kind == "c":
        return (stack + 1j * stack[::-1]).astype(kind)
    if kind.kind in "iu":
        info = np.iinfo(kind)
        scale = max(1, min(info.max // 512, 2**40))
        values = stack * scale
        if info.min < 0:
            values -= 200 * scale
        return values.astype(kind)
    return (stack / 10 - 5).astype(kind)


def _profile(dtype: str, count: int = 1, width: int = SIZE, height: int = SIZE, **extra: Any) -> dict[str, Any]:
    return {
        "driver": "GTiff",
        "dtype": dtype,
        "count": count,
        "width": width,
        "height": height,
        "crs": "EPSG:4326",
        "transform": from_bounds(*WGS84_BOUNDS, width, height),
        "tiled": True,
        "blockxsize": 64,
        "blockysize": 64,
        **extra,
    }


Writer = Callable[[Path], None]


def _simple(dtype: str, count: int = 1, overviews: bool = True, **extra: Any) -> Writer:
    def write(path: Path) -> None:
        profile = _profile(dtype, count, **extra)
        data = _ramp(dtype, count, profile["width"], profile["height"])
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(data)
            if overviews:
                dst.build_overviews([2, 4])

    return write


def _with_nodata_value(dtype: str, nodata: float) -> Writer:
    def write(path: Path) -> None:
        data = _ramp(dtype)
        data[:, :20, :20] = nodata
        with rasterio.open(path, "w", **_profile(dtype, nodata=nodata)) as dst:
            dst.write(data)
            dst.build_overviews([2, 4])

    return write


def _nan_nodata(path: Path) -> None:
    data = _ramp("float32")
    data[:, 30:60, 10:40] = np.nan
    with rasterio.open(path, "w", **_profile("float32", nodata=float("nan"))) as dst:
        dst.write(data)


def _internal_mask(count: int, dtype: str = "uint8") -> Writer:
    def write(path: Path) -> None:
        data = _ramp(dtype, count)
        mask = np.full((SIZE, SIZE), 255, dtype="uint8")
        mask[40:90, 40:90] = 0
        with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(path, "w", **_profile(dtype, count)) as dst:
            dst.write(data)
            dst.write_mask(mask)
            dst.build_overviews([2])

    return write


def _alpha(path: Path) -> None:
    data = _ramp("uint8", 4)
    data[3] = 255
    data[3, :32, :] = 0
    with rasterio.open(path, "w", **_profile("uint8", 4, photometric="RGB", alpha="YES")) as dst:
        dst.write(data)
        dst.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue, ColorInterp.alpha]


def _gray_alpha(path: Path) -> None:
    data = _ramp("uint8", 2)
    data[1] = 255
    data[1, :, :16] = 0
    with rasterio.open(path, "w", **_profile("uint8", 2, alpha="YES")) as dst:
        dst.write(data)
        dst.colorinterp = [ColorInterp.gray, ColorInterp.alpha]


def _external_overviews(path: Path) -> None:
    _simple("uint8", overviews=False)(path)
    with rasterio.Env(TIFF_USE_OVR=True), rasterio.open(path, "r+") as src:  # TIFF_USE_OVR: GDAL writes <name>.ovr
        src.build_overviews([2, 4])


def _external_mask(path: Path) -> None:
    _simple("uint8", overviews=False)(path)
    mask = np.full((SIZE, SIZE), 255, dtype="uint8")
    mask[:, 64:] = 0
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=False), rasterio.open(path, "r+") as dst:  # writes <name>.msk
        dst.write_mask(mask)


def _scale_offset(path: Path) -> None:
    with rasterio.open(path, "w", **_profile("int16", nodata=-32768)) as dst:
        dst.write(_ramp("int16"))
        dst.scales = (0.01,)
        dst.offsets = (-5.0,)


def _palette(path: Path) -> None:
    data = (_ramp("uint8") % 4).astype("uint8")
    with rasterio.open(path, "w", **_profile("uint8")) as dst:
        dst.write(data)
        dst.write_colormap(1, {0: (0, 0, 0, 0), 1: (255, 0, 0, 255), 2: (0, 255, 0, 255), 3: (0, 0, 255, 255)})


def _statistics_tags(path: Path) -> None:
    with rasterio.open(path, "w", **_profile("uint16", 3)) as dst:
        dst.write(_ramp("uint16", 3))
        for band in (1, 2, 3):
            dst.update_tags(band, STATISTICS_MINIMUM=0, STATISTICS_MAXIMUM=1000)
        dst.descriptions = ("red", "green", "blue")


def _projected(crs: str, bounds: tuple[float, float, float, float], dtype: str = "uint8") -> Writer:
    def write(path: Path) -> None:
        profile = {**_profile(dtype), "crs": crs, "transform": from_bounds(*bounds, SIZE, SIZE)}
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(_ramp(dtype))
            dst.build_overviews([2, 4])

    return write


LOCAL_CS = 'LOCAL_CS["engineering grid",UNIT["metre",1],AXIS["Easting",EAST],AXIS["Northing",NORTH]]'


def _no_crs(path: Path) -> None:
    profile = {**_profile("uint8"), "crs": None, "transform": from_bounds(0, 0, SIZE, SIZE, SIZE, SIZE)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(_ramp("uint8"))


def _gcps(path: Path) -> None:
    gcps = [
        GroundControlPoint(0, 0, -120.0, 35.0),
        GroundControlPoint(0, SIZE, -119.0, 35.0),
        GroundControlPoint(SIZE, 0, -120.0, 34.0),
        GroundControlPoint(SIZE, SIZE, -119.0, 34.0),
    ]
    profile = {**_profile("uint8"), "crs": None, "transform": None}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(_ramp("uint8"))
        dst.gcps = (gcps, rasterio.crs.CRS.from_epsg(4326))


def _rotated(path: Path) -> None:
    transform = Affine.translation(-120.0, 35.0) * Affine.rotation(10) * Affine.scale(1 / SIZE, -1 / SIZE)
    with rasterio.open(path, "w", **{**_profile("uint8"), "transform": transform}) as dst:
        dst.write(_ramp("uint8"))


def _shape(width: int, height: int, tiled: bool = True) -> Writer:
    def write(path: Path) -> None:
        profile = _profile("uint8", width=width, height=height, tiled=tiled)
        if not tiled or width < 16 or height < 16:
            profile.pop("blockxsize")
            profile.pop("blockysize")
            profile["tiled"] = False
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(_ramp("uint8", 1, width, height))

    return write


def _cog(dtype: str = "uint8", count: int = 1, **options: Any) -> Writer:
    def write(path: Path) -> None:
        with rasterio.open(path, "w", **{**_profile(dtype, count), "driver": "COG", **options}) as dst:
            dst.write(_ramp(dtype, count))

    return write


def _format(driver: str, dtype: str = "uint8") -> Writer:
    def write(path: Path) -> None:
        tiff = path.with_name(path.name + ".source.tif")
        _simple(dtype, overviews=False)(tiff)
        rasterio.shutil.copy(tiff, path, driver=driver)
        tiff.unlink()

    return write


# name -> (key, writer, sidecar suffixes)
CORPUS: dict[str, tuple[str, Writer, tuple[str, ...]]] = {
    "uint8": ("dtypes/uint8.tif", _simple("uint8"), ()),
    "int8": ("dtypes/int8.tif", _simple("int8"), ()),
    "uint16": ("dtypes/uint16.tif", _simple("uint16"), ()),
    "int16": ("dtypes/int16.tif", _simple("int16"), ()),
    "uint32": ("dtypes/uint32.tif", _simple("uint32"), ()),
    "int32": ("dtypes/int32.tif", _simple("int32"), ()),
    "uint64": ("dtypes/uint64.tif", _simple("uint64"), ()),
    "int64": ("dtypes/int64.tif", _simple("int64"), ()),
    "float32": ("dtypes/float32.tif", _simple("float32"), ()),
    "float64": ("dtypes/float64.tif", _simple("float64"), ()),
    "complex64": ("dtypes/complex64.tif", _simple("complex64", overviews=False), ()),
    "nodata-uint8-0": ("nodata/uint8-zero.tif", _with_nodata_value("uint8", 0), ()),
    "nodata-int16-min": ("nodata/int16-min.tif", _with_nodata_value("int16", -32768), ()),
    "nodata-float64": ("nodata/float64-big.tif", _with_nodata_value("float64", -1e30), ()),
    "nodata-nan": ("nodata/float32-nan.tif", _nan_nodata, ()),
    "mask-internal-1band": ("masks/internal-1band.tif", _internal_mask(1), ()),
    "mask-internal-rgb": ("masks/internal-rgb.tif", _internal_mask(3), ()),
    "mask-internal-float32": ("masks/internal-float32.tif", _internal_mask(1, "float32"), ()),
    "alpha-rgba": ("masks/rgba.tif", _alpha, ()),
    "alpha-gray": ("masks/gray-alpha.tif", _gray_alpha, ()),
    "overviews-external": ("sidecars/external-ovr.tif", _external_overviews, (".ovr",)),
    "mask-external": ("sidecars/external-msk.tif", _external_mask, (".msk",)),
    "bands-2": ("bands/2.tif", _simple("uint8", 2), ()),
    "bands-22-statistics": ("bands/22.tif", _simple("uint16", 22, overviews=False), ()),
    "bands-300": ("bands/300.tif", _simple("uint8", 300, overviews=False, width=32, height=32), ()),
    "statistics-tags": ("bands/statistics-tags.tif", _statistics_tags, ()),
    "scale-offset": ("values/scale-offset.tif", _scale_offset, ()),
    "palette": ("values/palette.tif", _palette, ()),
    "utm": ("crs/utm11.tif", _projected("EPSG:32611", (300000, 3760000, 400000, 3860000)), ()),
    "dateline-4326": ("crs/dateline-4326.tif", _projected("EPSG:4326", (170.0, -20.0, 190.0, 0.0)), ()),
    "dateline-3832": ("crs/dateline-3832.tif", _projected("EPSG:3832", (-1_000_000, -2_000_000, 1_000_000, 0)), ()),
    "polar-3413": ("crs/polar-3413.tif", _projected("EPSG:3413", (-1_000_000, -1_000_000, 1_000_000, 1_000_000)), ()),
    "polar-3031": ("crs/polar-3031.tif", _projected("EPSG:3031", (-500_000, -500_000, 500_000, 500_000)), ()),
    "mars": ("crs/mars.tif", _projected("IAU_2015:49900", (-10.0, -10.0, 10.0, 10.0)), ()),
    "local-cs": ("crs/local-engineering.tif", _projected(LOCAL_CS, (0, 0, 1000, 1000)), ()),
    "no-crs": ("crs/none.tif", _no_crs, ()),
    "gcps": ("crs/gcps.tif", _gcps, ()),
    "rotated": ("crs/rotated.tif", _rotated, ()),
    "tiny-1x1": ("shapes/1x1.tif", _shape(1, 1), ()),
    "tiny-3x2": ("shapes/3x2.tif", _shape(3, 2), ()),
    "tall": ("shapes/tall.tif", _shape(16, 4000), ()),
    "striped": ("shapes/striped.tif", _shape(512, 512, tiled=False), ()),
    "cog-deflate": ("cogs/deflate.tif", _cog(compress="DEFLATE", predictor=2, overview_resampling="nearest"), ()),
    "cog-zstd-float": ("cogs/zstd-float.tif", _cog("float32", compress="ZSTD", predictor=3), ()),
    "cog-lerc": ("cogs/lerc.tif", _cog("float32", compress="LERC", max_z_error=0), ()),
    "cog-jpeg-rgb": ("cogs/jpeg-rgb.tif", _cog("uint8", 3, compress="JPEG", overview_resampling="nearest"), ()),
    "cog-webp-rgb": ("cogs/webp-rgb.tif", _cog("uint8", 3, compress="WEBP", quality=100), ()),
    "big-endian": ("cogs/big-endian.tif", _simple("uint16", endianness="BIG"), ()),
    "key-no-extension": ("keys/cog", _cog(), ()),
    "key-upper-extension": ("keys/cog.TIF", _cog(), ()),
    "key-geotiff-extension": ("keys/cog.geotiff", _cog(), ()),
    "format-png": ("formats/image.png", _format("PNG"), ()),
    "format-jpeg-as-tif": ("formats/jpeg-named.tif", _format("JPEG"), ()),
    "format-netcdf": ("formats/grid.nc", _format("netCDF"), ()),
}


def build_corpus(directory: Path) -> list[CorpusRaster]:
    """Write every raster of `CORPUS` under `directory` (same relative paths as their keys)."""
    rasters = []
    for name, (key, writer, sidecars) in CORPUS.items():
        path = directory / key
        path.parent.mkdir(parents=True, exist_ok=True)
        with rasterio.Env(GDAL_PAM_ENABLED=False):
            writer(path)
        files = (path, *(Path(f"{path}{suffix}") for suffix in sidecars))
        missing = [f.name for f in files if not f.exists()]
        assert not missing, f"{name}: GDAL did not write {missing}"
        rasters.append(CorpusRaster(name, key, files, sidecars))
    return rasters


def iter_objects(rasters: list[CorpusRaster], directory: Path) -> Iterator[tuple[str, bytes]]:
    """(key, bytes) of every file of the corpus, sidecars included."""
    for raster in rasters:
        for path in raster.files:
            yield str(path.relative_to(directory)), path.read_bytes()
