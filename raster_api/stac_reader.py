"""Per-asset provider routing for STAC readers: every asset is read with the provider that owns its bucket.

A pgstac mosaic mixes items from many buckets (a DAAC's, our own) and rio-tiler reads them in worker threads. The
request-level GDAL environment cannot carry one identity for all of them, and threads do not inherit a
`rasterio.Env` reliably (veda-backend issue #192). rio-tiler's seam is the optional `env` of a multi-asset reader's
`_get_asset_info`: it is applied around that one asset's read, inside its own worker thread. Here that `env` gets the
owning provider's session, after two checks that may refuse the read (never a silent fallback identity):

- `?provider=NAME` on the request restricts every asset to buckets NAME owns;
- a collection may declare its provider (`"tiler:provider": NAME` at the top level of the collection document);
  bucket ownership still rules, so a collection cannot claim a bucket its provider does not serve.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from typing import Any, Protocol

import attr
import rasterio
from rasterio.errors import RasterioIOError
from rio_tiler.io import BaseReader
from rio_tiler.types import AssetInfo, AssetType
from titiler.pgstac.reader import PgSTACReader, SimpleSTACReader

from providers import Provider, S3Location, parse_s3_url
from raster_api.errors import S3Failure, classify_s3_failure, translate_read_error

# The collection field naming the provider that serves a collection's assets.
COLLECTION_PROVIDER_FIELD = "tiler:provider"

# S3 failures worth one retry with freshly fetched credentials.
_RETRYABLE = (S3Failure.REFUSED, S3Failure.BAD_CREDENTIALS)


class ProviderRouting(Protocol):
    """What the readers need from the raster API's provider router (`raster_api.routing.ProviderRouter`)."""

    def parse_url(self, url: str) -> S3Location:
        """`s3://bucket/key` or a DAAC distribution URL; raises a 400-mapped error otherwise."""
        ...

    def owner(self, bucket: str) -> Provider | None: ...

    def check_access(self, provider_name: str | None, bucket: str) -> Provider:
        """The provider that may read `bucket` for a request naming `provider_name`; raises (403) when refused."""
        ...

    def gdal_env(self, provider: Provider) -> dict[str, Any]:
        """`rasterio.Env` keyword arguments reading as `provider` (raises (503) when credentials are unavailable)."""
        ...

    def refresh(self, provider: Provider) -> None:
        """Fetch `provider`'s credentials now (after S3 refused a read)."""
        ...


@attr.s(frozen=True, auto_attribs=True)
class AssetRouting:
    """One request's routing rules: the router, the provider the request names, the collections' declarations."""

    router: ProviderRouting
    provider: str | None = None
    collection_provider: Callable[[str], str | None] = attr.ib(default=lambda _collection: None)

    def route(self, info: AssetInfo, collection: str | None) -> AssetInfo:
        """Point `info` at the S3 object and add its owner's credentials to the asset's `env`, or refuse it."""
        location = self.router.parse_url(info["url"])
        if collection and (declared := self.collection_provider(collection)):
            self.router.check_access(declared, location.bucket)
        provider = self.router.check_access(self.provider, location.bucket)
        info["url"] = location.url
        # Keep the reader's own options (e.g. GDAL_INGESTED_BYTES_AT_OPEN) and add the provider's session on top.
        info["env"] = {**info.get("env", {}), **self.router.gdal_env(provider)}
        return info

    def reader(self, reader: type[BaseReader], url: str) -> Callable[..., AbstractContextManager[BaseReader]]:
        """`reader`, retried once with fresh credentials when S3 refuses the open (like the COG routes), and with
        S3 failures worded like the COG routes' (provider and object named, no GDAL text)."""
        owner = self.router.owner(parse_s3_url(url).bucket)
        return functools.partial(_routed_read, reader, self.router, owner)


@contextmanager
def _routed_read(
    reader: type[BaseReader], router: ProviderRouting, provider: Provider | None, url: str, *args: Any, **kwargs: Any
) -> Iterator[BaseReader]:
    name = provider.name if provider else "none"
    with ExitStack() as stack:
        try:
            try:
                src = stack.enter_context(reader(url, *args, **kwargs))
            except RasterioIOError as exc:
                if provider is None or classify_s3_failure(exc) not in _RETRYABLE:
                    raise
                # Keys may have rotated since they were cached (a rotation also clears GDAL's cached refusal).
                router.refresh(provider)
                stack.enter_context(rasterio.Env(**router.gdal_env(provider)))
                src = stack.enter_context(reader(url, *args, **kwargs))
            yield src
        except RasterioIOError as exc:
            raise (translate_read_error(exc, name, url) or exc) from exc


@attr.s
class RoutedMosaicItemReader(SimpleSTACReader):
    """titiler.pgstac's mosaic item reader, reading each asset with its bucket owner's credentials."""

    routing: AssetRouting = attr.ib(kw_only=True)

    def _get_asset_info(self, asset: AssetType) -> AssetInfo:
        return self.routing.route(super()._get_asset_info(asset), self.input.get("collection"))

    def _get_reader(self, asset_info: AssetInfo) -> type[BaseReader]:
        return self.routing.reader(self.reader, asset_info["url"])  # type: ignore[return-value]


@attr.s
class RoutedItemReader(PgSTACReader):
    """titiler.pgstac's item reader (`/collections/{c}/items/{i}`), with the same per-asset routing."""

    routing: AssetRouting = attr.ib(kw_only=True)

    def _get_asset_info(self, asset: AssetType) -> AssetInfo:
        return self.routing.route(super()._get_asset_info(asset), self.item.collection_id)

    def _get_reader(self, asset_info: AssetInfo) -> type[BaseReader]:
        return self.routing.reader(self.reader, asset_info["url"])  # type: ignore[return-value]
