"""How many items a pgstac mosaic request reads: titiler.pgstac's backend (its `backend` slot) with `items_limit`
bounded before the search runs.

pgstac reads up to `items_limit` items per tile (100 by default, any number on request), and the caller decides
`exitwhenfull`/`skipcovered`. Here every tile, part and point search is capped at `RASTER_API_MAX_MOSAIC_ITEMS`,
and at `RASTER_API_MAX_STACKED_ITEMS` for pixel selections that hold every item's pixels at once (median, mean,
stdev, count, sum); asking for more is a 400 naming the parameter and the limit, turning `exitwhenfull` or
`skipcovered` off cannot read past it, and each item read is still priced and timed by `raster_api.budget`.
"""

from __future__ import annotations

from typing import Any

import attr
from rasterio.crs import CRS
from rio_tiler.constants import WGS84_CRS
from titiler.pgstac.backend import PGSTACBackend

from raster_api.budget import STACKED_ITEMSIZE, check_stack
from raster_api.errors import OverBudget
from raster_api.reading import current_read_log
from raster_api.settings import BudgetSettings


def _stacking(pixel_selection: Any) -> str | None:
    """The name of a pixel selection that keeps every item's array until the end (rio-tiler's carry it as a `stack`
    field; titiler passes the method's class), else None."""
    method_class = pixel_selection if isinstance(pixel_selection, type) else type(pixel_selection)
    if "stack" in getattr(method_class, "__dataclass_fields__", {}):
        return method_class.__name__.removesuffix("Method").lower()
    return None


def _hold(itemsize: int) -> None:
    meter = current_read_log().meter
    meter.holding, meter.held_itemsize = True, itemsize


def capped_search(options: dict[str, Any] | None, pixel_selection: Any, limits: BudgetSettings) -> dict[str, Any]:
    """The search options with `items_limit` at most the cap for `pixel_selection` (the cap when not asked)."""
    options = dict(options or {})
    stacking = _stacking(pixel_selection)
    cap = limits.max_stacked_items if stacking else limits.max_mosaic_items
    asked = options.get("items_limit")
    if asked is not None and asked > cap:
        if stacking:
            raise OverBudget(
                "max_stacked_items",
                f"items_limit={asked} is above {cap}: pixel_selection={stacking} holds every item's pixels at once, "
                "so it reads at most that many items (RASTER_API_MAX_STACKED_ITEMS)",
            )
        raise OverBudget(
            "max_mosaic_items",
            f"items_limit={asked} is above {cap}, the most items a mosaic request reads (RASTER_API_MAX_MOSAIC_ITEMS)",
        )
    options["items_limit"] = asked or cap
    return options


def bounded_backend(limits: BudgetSettings) -> type[PGSTACBackend]:
    """titiler.pgstac's backend, its searches capped by `capped_search`; a stacking pixel selection makes the
    request's meter count what the stack holds (`CostMeter.holding`), and a tile's stack is priced from the item
    count before any item is read."""

    @attr.s
    class BoundedPGSTACBackend(PGSTACBackend):
        # (pixel selection, tile side in px) while a stacking tile is searched, for `assets_for_tile`.
        _stacked_tile: tuple[str, int] | None = attr.ib(default=None, init=False)

        # rio-tiler's BaseBackend widens BaseReader's signatures the same way (and ignores the same check).
        def tile(  # type: ignore[override]
            self, x: int, y: int, z: int, search_options: dict | None = None, **kwargs: Any
        ) -> Any:
            pixel_selection = kwargs.get("pixel_selection")
            options = capped_search(search_options, pixel_selection, limits)
            if stacking := _stacking(pixel_selection):
                _hold(STACKED_ITEMSIZE)
                side = kwargs.get("tilesize") or self.tms.matrix(z).tileWidth
                self._stacked_tile = (stacking, side + 2 * int(kwargs.get("buffer") or 0))
            return super().tile(x, y, z, search_options=options, **kwargs)

        def assets_for_tile(self, x: int, y: int, z: int, **kwargs: Any) -> list[Any]:
            assets = super().assets_for_tile(x, y, z, **kwargs)
            if self._stacked_tile is not None:
                stacking, side = self._stacked_tile
                advice = "ask for a smaller tilesize or fewer items (items_limit)"
                check_stack(limits, f"pixel_selection={stacking}", len(assets), "item", side, STACKED_ITEMSIZE, advice)
            return assets

        def part(self, bbox: Any, search_options: dict | None = None, **kwargs: Any) -> Any:  # type: ignore[override]
            options = capped_search(search_options, kwargs.get("pixel_selection"), limits)
            if _stacking(kwargs.get("pixel_selection")):
                _hold(STACKED_ITEMSIZE)
            return super().part(bbox, search_options=options, **kwargs)

        def point(  # type: ignore[override]
            self, lon: float, lat: float, coord_crs: CRS = WGS84_CRS, search_options: dict | None = None, **kwargs: Any
        ) -> Any:
            options = capped_search(search_options, None, limits)
            return super().point(lon, lat, coord_crs=coord_crs, search_options=options, **kwargs)

    return BoundedPGSTACBackend
