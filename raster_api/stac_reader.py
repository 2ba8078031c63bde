"""Per-asset provider routing for STAC readers: every asset is read with the provider that owns its bucket.

A pgstac mosaic mixes items from many buckets (a DAAC's, our own) and rio-tiler reads them in worker threads, so one
request-level identity cannot serve them all. Each asset is opened through the provider-read seam instead
(`raster_api.reading.ReadScope.reader`): its href is parsed into the canonical object, its owner decided and its
reader opened inside that owner's env, in the asset's own worker thread. Two rules may refuse an asset (never a
silent fallback identity):

- `?provider=NAME` on the request restricts every asset to buckets NAME owns;
- a collection may declare its provider (`"tiler:provider": NAME` at the top level of the collection document);
  bucket ownership still rules, so a collection cannot claim a bucket its provider does not serve.
"""

from __future__ import annotations

from typing import Any

import attr
from rio_tiler.io import BaseReader
from rio_tiler.types import AssetInfo
from titiler.pgstac.reader import PgSTACReader, SimpleSTACReader

from raster_api.budget import check_stack
from raster_api.reading import ReadScope

# The collection field naming the provider that serves a collection's assets.
COLLECTION_PROVIDER_FIELD = "tiler:provider"


@attr.s
class RoutedMosaicItemReader(SimpleSTACReader):
    """titiler.pgstac's mosaic item reader, reading each asset through the provider-read seam."""

    scope: ReadScope = attr.ib(kw_only=True)

    def _get_reader(self, asset_info: AssetInfo) -> type[BaseReader]:
        return self.scope.reader(self.input.get("collection"))  # type: ignore[return-value]


@attr.s
class RoutedItemReader(PgSTACReader):
    """titiler.pgstac's item reader (`/collections/{c}/items/{i}`), with the same per-asset routing."""

    scope: ReadScope = attr.ib(kw_only=True)

    def __attrs_post_init__(self) -> None:
        # The assets' images are read one by one and held until they are stacked into one: their sizes add up.
        self.scope.log.meter.holding = True
        super().__attrs_post_init__()

    def tile(self, *args: Any, **kwargs: Any) -> Any:
        # Priced before any asset is read: each asset's tile is at least one byte per pixel.
        assets = kwargs.get("assets") or []
        side = (kwargs.get("tilesize") or 256) + 2 * int(kwargs.get("buffer") or 0)
        limits = self.scope.log.meter.limits
        advice = "ask for fewer assets or a smaller tilesize"
        check_stack(limits, "the request", len(assets), "asset", side, 1, advice)
        return super().tile(*args, **kwargs)

    def _get_reader(self, asset_info: AssetInfo) -> type[BaseReader]:
        return self.scope.reader(self.item.collection_id)  # type: ignore[return-value]
