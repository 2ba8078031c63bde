"""Image rendering for titiler's `render_func` slot: titiler's own, after refusing in words what it cannot render.

Two refusals where vanilla titiler answers 500: rio-tiler builds an image's mask from the data type's full range,
which numpy cannot hold for `uint64` (`OverflowError`), and titiler's preview route names the image's CRS in a header
(`AttributeError` for a dataset without one).
"""

from __future__ import annotations

from typing import Any

import rasterio
from rasterio.session import DummySession
from rio_tiler.models import ImageData
from titiler.core.utils import render_image as titiler_render_image

from raster_api.errors import CrsNotSupported, UnsupportedDataType


def render_image(image: ImageData, **kwargs: Any) -> tuple[bytes, str]:
    if image.array.dtype.name == "uint64":
        raise UnsupportedDataType(
            "uint64 samples cannot be rendered as an image; cast them with an expression (e.g. expression=b1*1.0, "
            "with rescale) to render a float image"
        )
    if image.crs is None:
        raise CrsNotSupported("the dataset has no coordinate reference system, so it cannot be rendered as a map image")
    # Encoding reads nothing remote, but rio-tiler opens a `rasterio.Env` for it when none is open, and without a
    # session rasterio builds a boto3 one from AWS_* variables (an on-demand Lambda has them): milliseconds per tile.
    with rasterio.Env(session=DummySession()):
        return titiler_render_image(image, **kwargs)
