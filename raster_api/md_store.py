"""Reading NetCDF-4/HDF5 objects and Zarr stores with a provider's credentials, and only the canonical object (for Zarr:
its prefix).

obstore rather than fsspec/s3fs or h5py's ros3: it takes a credential callback (so a store signs with the provider's
cached keys and never with anything in the environment), binds a store to one bucket and prefix (a key a Zarr's
metadata names cannot leave it), and its ranged reads are what an `s3:GetObject` policy allows.

- `object_store(read, router)`: an obstore `S3Store` bound to the object's bucket, signing with the provider's
  cached credentials through a credential provider (so nothing is inferred from the environment: obstore would
  otherwise take the Lambda's own `AWS_*` keys), or unsigned for an `unsigned` provider.
- `open_hdf5(read, router)`: an h5py file over a range-reading file object of that one key, after
  `refuse_outside_references` checked it names nothing outside itself: HDF5 resolves external links, virtual datasets
  and external raw storage against the *local* filesystem when the file is a Python file object (a crafted file could
  name `/proc/self/environ`).
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import h5py
import obstore
from obstore.exceptions import NotFoundError, PermissionDeniedError, UnauthenticatedError
from obstore.store import S3Store

from raster_api.errors import (
    AccessRefused,
    NotARaster,
    ObjectNotFound,
    OutsideReference,
    OverBudget,
    VariableSelection,
)
from raster_api.routing import ProviderRouter, ResolvedRead

if TYPE_CHECKING:  # obstore's config types exist only in its stubs
    from obstore.store import ClientConfig, S3Config, S3Credential


def object_store(read: ResolvedRead, router: ProviderRouter, prefix: str | None = None) -> S3Store:
    """`prefix`: every path is taken under it (a Zarr store's key); obstore refuses `.`, `..` and empty segments."""
    provider = read.provider
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    config: S3Config = {"region": provider.region}
    if endpoint:
        config["endpoint"] = endpoint
        config["virtual_hosted_style_request"] = False
    if provider.requester_pays:
        config["request_payer"] = True
    client_options: ClientConfig = {"allow_http": bool(endpoint and endpoint.startswith("http://"))}
    if router.credentials(provider) is None:
        config["skip_signature"] = True
        return S3Store(read.location.bucket, prefix=prefix, config=config, client_options=client_options)

    def credentials() -> S3Credential:
        keys = router.credentials(provider)
        if keys is None:  # the provider turned unsigned: refuse rather than sign with anything else
            raise PermissionError(f"provider {provider.name!r} has no credentials")
        # obstore keeps a credential until `expires_at`; a short horizon makes it ask the cache (not Secrets Manager)
        # again soon, so a rotation reaches this store like it reaches GDAL.
        horizon = datetime.now(UTC) + timedelta(minutes=5)
        return {
            "access_key_id": keys.access_key_id,
            "secret_access_key": keys.secret_access_key,
            "token": keys.session_token,
            "expires_at": min(horizon, keys.expiration) if keys.expiration else horizon,
        }

    return S3Store(
        read.location.bucket,
        prefix=prefix,
        config=config,
        client_options=client_options,
        credential_provider=credentials,
    )


# Opening a dataset loads every one-dimensional variable (the dimensions' coordinates) whole, before any budget can
# price a read: a file declaring a coordinate of 10^8 values would take gigabytes. Checked from the headers first.
MAX_COORDINATE_BYTES = 64 * 2**20
# S3's answers that mean "not this object" and "not with these keys", as obstore raises them.
MISSING = (FileNotFoundError, NotFoundError)
REFUSED = (PermissionError, PermissionDeniedError, UnauthenticatedError)


def refuse_large_coordinates(sizes: list[tuple[str, int]], read: ResolvedRead) -> None:
    """A 400 when the one-dimensional variables (`(name, bytes)` from the headers) would load more than
    `MAX_COORDINATE_BYTES`."""
    total = sum(size for _, size in sizes)
    if total > MAX_COORDINATE_BYTES:
        largest = max(sizes, key=lambda item: item[1])
        raise OverBudget(
            "max_coordinate_bytes",
            f"{read.url} (provider {read.provider.name!r}) declares {total / 2**20:,.0f} MB of coordinates (the largest "
            f"{largest[0]!r}, {largest[1] / 2**20:,.0f} MB), above the {MAX_COORDINATE_BYTES // 2**20} MB /md/ loads to "
            "open a file",
        )


def one_dimensional_sizes(h5: h5py.File) -> list[tuple[str, int]]:
    """`(name, bytes)` of every one-dimensional dataset, from the headers."""
    sizes: list[tuple[str, int]] = []

    def visit(name: str, obj: Any) -> None:
        if isinstance(obj, h5py.Dataset) and len(obj.shape or ()) == 1:
            sizes.append((name, int(obj.shape[0]) * obj.dtype.itemsize))

    h5.visititems(visit)
    return sizes


def refuse_outside_references(h5: h5py.File, read: ResolvedRead) -> None:
    """A 400 naming the first external link, virtual dataset or external storage in `h5` (found without following
    any link: h5py visits the links themselves)."""

    def outside(name: str, link: Any) -> str | None:
        # A non-None answer stops h5py's visit (an exception raised inside its C callback would not come out whole).
        if isinstance(link, h5py.ExternalLink):
            return f"links {name!r} to {link.filename!r}"
        if isinstance(link, h5py.HardLink):
            obj = h5.get(name)
            if isinstance(obj, h5py.Dataset) and obj.is_virtual:
                return f"has {name!r}, a virtual dataset (it reads other files)"
            if isinstance(obj, h5py.Dataset) and obj.external:
                return f"keeps the data of {name!r} in an external file"
        return None

    if (found := h5.visititems_links(outside)) is not None:
        raise OutsideReference(
            f"{read.url} (provider {read.provider.name!r}) {found}: files that name data outside themselves are not read"
        )


# HDF5 reads its metadata in many small pieces, scattered and often the same ones again: the object is read in aligned
# blocks, each fetched once per request (a 1024 x 1024 NetCDF tile: 62 GETs through obstore's buffered reader).
BLOCK_BYTES = 256 * 1024


class _ObjectFile(io.RawIOBase):
    """One object as the seekable binary file h5py's `fileobj` driver reads, in `BLOCK_BYTES` blocks fetched with
    ranged GETs of its key only (what an `s3:GetObject` policy allows)."""

    mode = "rb"

    def __init__(self, store: S3Store, key: str, size: int, first_block: bytes) -> None:
        super().__init__()
        self._store, self._key, self._size = store, key, size
        self._blocks: dict[int, bytes] = {0: first_block}
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self._size - self._position)
        if count <= 0:
            return 0
        first, last = self._position // BLOCK_BYTES, (self._position + count - 1) // BLOCK_BYTES
        missing = [block for block in range(first, last + 1) if block not in self._blocks]
        if missing:
            starts = [block * BLOCK_BYTES for block in missing]
            ends = [min(start + BLOCK_BYTES, self._size) for start in starts]
            fetched = obstore.get_ranges(self._store, self._key, starts=starts, ends=ends)
            for block, data in zip(missing, fetched, strict=True):
                self._blocks[block] = bytes(data)
        view = memoryview(buffer)
        done = 0
        while done < count:
            block, offset = divmod(self._position + done, BLOCK_BYTES)
            piece = self._blocks[block][offset : offset + count - done]
            view[done : done + len(piece)] = piece
            done += len(piece)
        self._position += count
        return count


def open_hdf5(read: ResolvedRead, router: ProviderRouter) -> h5py.File:
    return h5py.File(open_hdf5_file(read, router), "r")


def open_hdf5_file(read: ResolvedRead, router: ProviderRouter) -> _ObjectFile:
    """The object as a file, once checked to name nothing outside itself (HDF5 readers such as h5netcdf open it)."""
    store = object_store(read, router)
    key = read.location.key
    # Only the object's own key is ever requested, and only with ranged GETs (the permission s3:GetObject covers, as
    # GDAL reads): the first block's GET also tells the size (moto, like an s3:GetObject-only policy, refuses HEAD).
    provider = read.provider.name
    try:
        first = obstore.get(store, key, options={"range": (0, BLOCK_BYTES)})
        size, first_block = first.meta["size"], bytes(first.bytes())
    except MISSING:
        raise ObjectNotFound(f"{read.url} not found for provider {provider!r}") from None
    except REFUSED:
        raise AccessRefused(f"S3 refused provider {provider!r} read access to {read.url}") from None
    file = _ObjectFile(store, key, size, first_block)
    try:
        h5 = h5py.File(file, "r")
    except OSError:
        raise NotARaster(
            f"{read.url} (provider {provider!r}) is not a NetCDF-4/HDF5 file: /md/ reads NetCDF-4 and HDF5"
        ) from None
    with h5:
        refuse_outside_references(h5, read)
        refuse_large_coordinates(one_dimensional_sizes(h5), read)
    file.seek(0)
    return file


def open_zarr(read: ResolvedRead, router: ProviderRouter, group: str | None, decode_times: bool) -> Any:
    """A Zarr store (format 2 or 3) under the object's key: every request stays under that prefix, in the provider's
    bucket (obstore refuses `.`, `..` and empty segments in the keys the store's metadata names). The group's headers
    are read first: it must be a group, and its coordinates small enough to load."""
    import xarray
    import zarr
    from xarray.backends.zarr import ZarrStore

    provider = read.provider.name
    store: Any = zarr.storage.ObjectStore(
        object_store(read, router, prefix=read.location.key.rstrip("/")), read_only=True
    )
    try:
        if group:
            zarr.open_group(store, mode="r", path=group)  # an array where a group is named: xarray fails on it
        # The group as xarray opens it (one read of its metadata), checked, then handed to xarray as its store.
        opened = ZarrStore.open_group(store, group=group, mode="r", consolidated=None, consolidate_on_close=False)
        coordinates = [
            (name, int(array.shape[0]) * array.dtype.itemsize)
            for name, array in opened.members.items()  # as xarray read them (consolidated metadata: no listing)
            if isinstance(array, zarr.Array) and len(array.shape) == 1 and hasattr(array.dtype, "itemsize")
        ]
        refuse_large_coordinates(coordinates, read)
        return xarray.open_dataset(store, engine="zarr", store=opened, decode_times=decode_times)
    except (zarr.errors.GroupNotFoundError, zarr.errors.NodeTypeValidationError, zarr.errors.ContainsArrayError):
        if group:
            raise VariableSelection(f"group {group!r} is not a group of {read.url}") from None
        raise ObjectNotFound(f"{read.url} is not a Zarr store readable by provider {provider!r}") from None
    except MISSING:
        raise ObjectNotFound(f"{read.url} is not a Zarr store readable by provider {provider!r}") from None
    except REFUSED:
        raise AccessRefused(f"S3 refused provider {provider!r} read access to {read.url}") from None
    except ValueError as exc:
        if "Could not parse path" in str(exc):  # obstore's refusal of a key with `.`, `..` or an empty segment
            raise OutsideReference(f"{read.url} (provider {provider!r}) names a key outside itself: {exc}") from None
        raise NotARaster(f"{read.url} (provider {provider!r}) is not a Zarr store /md/ can read: {exc}") from None
