"""`/md/` tiles: our app against vanilla titiler.xarray on the same Zarr store in a DAAC bucket (same moto, same
tiles, interleaved, in-process through Starlette's TestClient), plus our tiles of the same data as NetCDF-4.

Vanilla titiler.xarray 2.3 reads Zarr only (its opener is `xarray.open_dataset(engine="zarr")` over obstore), so the
NetCDF row has no vanilla side. Vanilla is given the DAAC's keys, the region and the endpoint as opener options: left
to itself it would ask a public host for the bucket's region, and it would read with the process's own identity.

Also counted: S3 requests per tile on each side (moto's recorder), which is where the two designs differ: vanilla
keeps every opened dataset for the life of the process (`functools.cache` on the URL alone, whoever asks), ours opens
the object for each request through the caller's provider (its metadata is read again; the credentials are cached).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import attr
from fastapi import FastAPI
from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
from titiler.xarray.extensions import VariablesExtension
from titiler.xarray.factory import TilerFactory
from titiler.xarray.io import Reader

from bench.inprocess import client, create_ours
from bench.report import Row, Section
from bench.stats import median_ratio, summarize
from bench.tiles import TMS, tiles_within
from bench.timing import interleaved
from bench.world import BenchWorld
from local_stack.aws_world import DAAC_A_BUCKET, Keys, patched_environ
from local_stack.samples import SST_VARIABLE, make_sst_netcdf, make_sst_zarr

log = logging.getLogger("bench")

# MUR's grid spacing (0.01 degree) over 10 x 10 degrees, in 256 x 256 chunks.
BOUNDS = (-125.0, 30.0, -115.0, 40.0)
SIZE = 1024
ZOOMS = (5, 6, 7, 8)
ZARR_KEY = "md/bench/sst.zarr"
NETCDF_KEY = "md/bench/sst.nc"


def upload(bw: BenchWorld) -> tuple[str, str]:
    """The same data as a Zarr store and as a NetCDF-4 file in the DAAC's bucket; returns their URLs."""
    for key, body in make_sst_zarr(10.0, BOUNDS, SIZE).items():
        bw.world.put_object(DAAC_A_BUCKET, f"{ZARR_KEY}/{key}", body)
    bw.world.put_object(DAAC_A_BUCKET, NETCDF_KEY, make_sst_netcdf(10.0, BOUNDS, SIZE))
    return f"s3://{DAAC_A_BUCKET}/{ZARR_KEY}", f"s3://{DAAC_A_BUCKET}/{NETCDF_KEY}"


def create_vanilla_xarray(keys: Keys, endpoint: str) -> FastAPI:
    """titiler.xarray's factory and reader as its docs deploy them, reading with one fixed identity (the DAAC's)."""
    options = {
        "infer_region": False,  # else a request to https://{bucket}.s3.amazonaws.com, a public host
        "region": "us-west-2",
        "endpoint": endpoint,
        "virtual_hosted_style_request": False,
        "access_key_id": keys.access_key_id,
        "secret_access_key": keys.secret_access_key,
        "token": keys.session_token,
    }

    @attr.s
    class FixedIdentityReader(Reader):
        opener_options: dict[str, Any] = attr.ib(factory=lambda: dict(options))

    app = FastAPI(title="vanilla titiler.xarray")
    md = TilerFactory(router_prefix="/md", reader=FixedIdentityReader, extensions=[VariablesExtension()])
    app.include_router(md.router, prefix="/md")
    add_exception_handlers(app, DEFAULT_STATUS_CODES)
    return app


def _path(tile: tuple[int, int, int], url: str, provider: str | None) -> str:
    z, x, y = tile
    query = f"url={url}&variable={SST_VARIABLE}&bidx=1&rescale=283,300" + (f"&provider={provider}" if provider else "")
    return f"/md/tiles/{TMS}/{z}/{x}/{y}.png?{query}"


def run_md(bw: BenchWorld, ours_env: dict[str, str | None], endpoint: str, count: int) -> Section:
    zarr_url, netcdf_url = upload(bw)
    # Starlette's test client addresses `testserver`; obstore (vanilla's) reads `AWS_ALLOW_HTTP` for moto's http.
    env = {
        **ours_env,
        "RASTER_API_MD_ENABLED": "true",
        "RASTER_API_ALLOWED_HOSTS": "testserver",
        "AWS_ALLOW_HTTP": "true",
    }
    with patched_environ(env):
        ours_app = create_ours()
        vanilla_app = create_vanilla_xarray(bw.daac_keys["daac-a"], endpoint)
        tiles = tiles_within(BOUNDS, ZOOMS, count)
        with client(ours_app) as ours, client(vanilla_app) as vanilla:
            errors: list[str] = []

            def getter(c: Any, url: str, provider: str | None) -> Callable[[tuple[int, int, int]], None]:
                def get(tile: tuple[int, int, int]) -> None:
                    r = c.get(_path(tile, url, provider))
                    if r.status_code not in (200, 404):  # 404: a tile of the bounds' edge outside the data
                        errors.append(f"{r.status_code} {r.text[:160]}")

                return get

            getters = {
                "ours, Zarr": getter(ours, zarr_url, "daac-a"),
                "vanilla titiler.xarray, Zarr": getter(vanilla, zarr_url, None),
                "ours, NetCDF-4": getter(ours, netcdf_url, "daac-a"),
            }
            for get in getters.values():  # warm: first opens, imports, vanilla's cache filled
                get(tiles[0])
            log.info("md: %d tiles x %d sides, interleaved", len(tiles), len(getters))
            timings = interleaved(getters, tiles)
            requests_per_tile = {}
            sample = tiles[: min(20, len(tiles))]
            for name, get in getters.items():
                with bw.world.recording.capture() as wire:
                    for tile in sample:
                        get(tile)
                requests_per_tile[name] = len(wire.s3_requests()) / len(sample)
    summaries = {name: summarize(samples) for name, samples in timings.items()}
    ratio = median_ratio(timings["ours, Zarr"], timings["vanilla titiler.xarray, Zarr"])
    rows = [
        Row(
            "md",
            f"tile latency, {name} (median / p90)",
            f"{s['median_ms']:.1f} / {s['p90_ms']:.1f} ms",
            note=f"{requests_per_tile[name]:.1f} S3 requests per tile",
        )
        for name, s in summaries.items()
    ]
    rows.append(
        Row(
            "md",
            "ours / vanilla titiler.xarray, Zarr (median ratio)",
            f"x{ratio['ratio']:.2f} (95% CI {ratio['ci95_low']:.2f}-{ratio['ci95_high']:.2f})",
            note="vanilla keeps each opened dataset for the life of the process, whoever asks; ours opens per request",
        )
    )
    if errors:
        rows.append(Row("md", "unexpected answers", str(len(errors)), "0", False, errors[0]))
    return Section(
        name="md",
        rows=rows,
        data={"summaries": summaries, "ratio": ratio, "s3_requests_per_tile": requests_per_tile, "tiles": len(tiles)},
        notes=[
            f"{len(tiles)} tiles at zooms {ZOOMS[0]}-{ZOOMS[-1]} of a {SIZE} x {SIZE} int16 variable (two time steps, "
            "band 1 rendered) in a DAAC bucket, the same bytes as Zarr (format 2, consolidated, 256 x 256 chunks) and "
            "as NetCDF-4 (128 x 128 chunks, zlib).",
        ],
    )
