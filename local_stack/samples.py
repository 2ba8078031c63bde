"""Small real COGs whose pixel values say which source they came from.

Each sample is a single-band uint8 COG (EPSG:4326, internal overviews, nodata 0) with values
`base + (column // 64)`: the base identifies the bucket and the column ramp lets tests check pixels, not just colour.
"""

from __future__ import annotations

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
