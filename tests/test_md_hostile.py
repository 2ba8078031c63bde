"""Hostile but valid `/md/` requests and files: each is refused (a 4xx in words) before the work it would cost, or
answered; never a 5xx. Found by attacking the routes (chunks larger than the variable, chunks spanning a dimension
`sel` fixed, tiny chunks, huge declared coordinates and time dimensions, areas far larger than the data, odd `sel`,
`bidx` and variables)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import xarray

from local_stack.aws_world import DAAC_A_BUCKET

WORLD = {
    "type": "Feature",
    "properties": {},
    "geometry": {"type": "Polygon", "coordinates": [[[-179, -84], [179, -84], [179, 84], [-179, 84], [-179, -84]]]},
}


def _put_zarr(aws_world, tmp_path: Path, key: str, arrays: dict, consolidated: bool = True) -> str:
    """A Zarr (format 2) group of `arrays` (name -> (dims, shape, chunks, dtype, data or None)); an array given no
    data is declared only (its chunks are never written). Returns its URL."""
    import zarr

    local = tmp_path / key.replace("/", "_")
    group = zarr.open_group(local, mode="w", zarr_format=2)
    for name, (dims, shape, chunks, dtype, data) in arrays.items():
        # No fill value: zarr's default (0) would be masked, a missing value in every coordinate holding 0.
        array = group.create_array(
            name, shape=shape, chunks=chunks, dtype=dtype, fill_value=None, attributes={"_ARRAY_DIMENSIONS": dims}
        )
        if data is not None:
            array[...] = data
    if consolidated:
        zarr.consolidate_metadata(local)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        aws_world.put_object(DAAC_A_BUCKET, f"{key}/{path.relative_to(local).as_posix()}", path.read_bytes())
    return f"s3://{DAAC_A_BUCKET}/{key}"


def _grid(size: int) -> dict:
    return {
        "lat": (["lat"], (size,), (size,), "float64", np.linspace(34.9, 34.1, size)),
        "lon": (["lon"], (size,), (size,), "float64", np.linspace(-120.9, -120.1, size)),
    }


def _data_requests(wire, variable: str) -> list[str]:
    return [
        urlsplit(r.url).path
        for r in wire.s3_requests()
        if f"/{variable}/" in urlsplit(r.url).path and ".z" not in urlsplit(r.url).path
    ]


def test_a_chunk_larger_than_its_variable_is_priced_whole(aws_world, small_budget_md_client, tmp_path):
    """An 8 x 8 variable stored in one 3000 x 3000 chunk (36 MB decoded, a few KB stored): refused under 1 MB before
    the chunk is fetched."""
    url = _put_zarr(
        aws_world,
        tmp_path,
        "md/bigchunk.zarr",
        {**_grid(8), "sst": (["lat", "lon"], (8, 8), (3000, 3000), "float32", 1.0)},
    )
    with aws_world.recording.capture() as wire:
        point = small_budget_md_client.get("/md/point/-120.5,34.5", params={"url": url, "variable": "sst"})
        tile = small_budget_md_client.get(
            "/md/tiles/WebMercatorQuad/8/42/101.png", params={"url": url, "variable": "sst"}
        )
    for answer in (point, tile):
        assert answer.status_code == 400, answer.text
        assert "RASTER_API_MAX_SOURCE_BYTES" in answer.json()["detail"]
    assert _data_requests(wire, "sst") == []


def test_a_chunk_spanning_the_dimension_sel_fixed_is_priced_whole(aws_world, small_budget_md_client, tmp_path):
    """Chunks of 400 time steps x 100 x 100 (16 MB decoded): one time step still decodes the whole chunk."""
    arrays = {
        **_grid(100),
        "time": (["time"], (400,), (400,), "int64", np.arange(400)),
        "sst": (["time", "lat", "lon"], (400, 100, 100), (400, 100, 100), "float32", None),
    }
    url = _put_zarr(aws_world, tmp_path, "md/timechunk.zarr", arrays)
    point = small_budget_md_client.get(
        "/md/point/-120.5,34.5", params={"url": url, "variable": "sst", "sel": "time=nearest::0"}
    )
    assert point.status_code == 400, point.text
    assert "RASTER_API_MAX_SOURCE_BYTES" in point.json()["detail"]


def test_tiny_chunks_are_refused_by_their_count_before_any_is_fetched(aws_world, md_client, tmp_path):
    """100 x 100 px in 1 x 1 chunks: a tile would make 10 000 S3 requests (the budget's bytes allow it)."""
    url = _put_zarr(
        aws_world,
        tmp_path,
        "md/tiny.zarr",
        {**_grid(100), "sst": (["lat", "lon"], (100, 100), (1, 1), "float32", None)},
    )
    with aws_world.recording.capture() as wire:
        tile = md_client.get("/md/tiles/WebMercatorQuad/8/42/101.png", params={"url": url, "variable": "sst"})
    assert tile.status_code == 400, tile.text
    detail = tile.json()["detail"]
    assert "RASTER_API_MAX_CHUNKS" in detail and "chunks are 1 x 1 px" in detail
    assert _data_requests(wire, "sst") == []


def test_an_area_far_larger_than_the_data_is_priced_at_the_size_rio_tiler_would_make(aws_world, md_client):
    """An 8 x 8 x 4 variable: a world bbox at its resolution, or world statistics, would be an image of thousands of
    px a side (77 MB for the bbox, 495 MB held for statistics): refused by the output budget."""
    values = np.ones((4, 8, 8), dtype="float32")
    ds = xarray.Dataset(
        {"sst": (("time", "lat", "lon"), values)},
        coords={"time": [0, 1, 2, 3], "lat": np.linspace(34.9, 34.1, 8), "lon": np.linspace(-120.9, -120.1, 8)},
    )
    aws_world.put_object(DAAC_A_BUCKET, "md/small.nc", bytes(ds.to_netcdf(engine="h5netcdf")))
    query = {"url": f"s3://{DAAC_A_BUCKET}/md/small.nc", "variable": "sst"}
    bbox = md_client.get("/md/bbox/-179,-84,179,84.npy", params=query)
    stats = md_client.post("/md/statistics", params=query, json=WORLD)
    for answer in (bbox, stats):
        assert answer.status_code == 400, answer.text
        assert "RASTER_API_MAX_OUTPUT_BYTES" in answer.json()["detail"]
    inside = md_client.get("/md/bbox/-120.8,34.2,-120.2,34.8.npy", params=query)
    assert inside.status_code == 200, inside.text


def test_a_huge_declared_coordinate_is_refused_before_it_is_loaded(aws_world, md_client, tmp_path):
    """A `lon` of 2 x 10^7 values (160 MB, never written): xarray would load it whole to open the file."""
    arrays = {
        "lat": (["lat"], (8,), (8,), "float64", np.linspace(34.9, 34.1, 8)),
        "lon": (["lon"], (20_000_000,), (1_000_000,), "float64", None),
        "sst": (["lat", "lon"], (8, 20_000_000), (8, 1000), "float32", None),
    }
    url = _put_zarr(aws_world, tmp_path, "md/hugecoord.zarr", arrays)
    with aws_world.recording.capture() as wire:
        info = md_client.get("/md/info", params={"url": url, "variable": "sst"})
    assert info.status_code == 400, info.text
    assert "coordinates" in info.json()["detail"] and "'lon'" in info.json()["detail"]
    assert _data_requests(wire, "lon") == []


def test_thousands_of_time_steps_are_refused_as_bands(aws_world, md_client, tmp_path):
    arrays = {
        **_grid(8),
        "time": (["time"], (5000,), (5000,), "int64", np.arange(5000)),
        "sst": (["time", "lat", "lon"], (5000, 8, 8), (1000, 8, 8), "float32", None),
    }
    url = _put_zarr(aws_world, tmp_path, "md/longtime.zarr", arrays)
    info = md_client.get("/md/info", params={"url": url, "variable": "sst"})
    assert info.status_code == 400, info.text
    assert info.json()["detail"].endswith("has 5000 steps along 'time', each a band: choose at most 1000 with sel")
    chosen = md_client.get("/md/info", params={"url": url, "variable": "sst", "sel": "time=nearest::5"})
    assert chosen.status_code == 200, chosen.text


@pytest.fixture(scope="module")
def odd_netcdf(aws_world) -> str:
    """sst(time, lat, lon); depth_only(depth, lat, lon) with no depth coordinate; named(station, lat, lon) with text
    stations; flag(lat, lon) boolean; shuffled(step, lat, lon) with an unsorted step; thin (1 px of latitude)."""
    lat, lon = np.linspace(34.9, 34.1, 4), np.linspace(-120.9, -120.1, 5)
    ds = xarray.Dataset(
        {
            "sst": (("time", "lat", "lon"), np.ones((2, 4, 5), "float32")),
            "depth_only": (("depth", "lat", "lon"), np.ones((3, 4, 5), "float32")),
            "named": (("station", "lat", "lon"), np.ones((2, 4, 5), "float32")),
            "flag": (("lat", "lon"), np.ones((4, 5), bool)),
            "shuffled": (("step", "lat", "lon"), np.ones((3, 4, 5), "float32")),
            "repeated": (("rep", "lat", "lon"), np.ones((2, 4, 5), "float32")),
        },
        coords={"time": [0, 1], "lat": lat, "lon": lon, "station": ["a", "b"], "step": [2, 0, 1], "rep": [1, 1]},
    )
    aws_world.put_object(DAAC_A_BUCKET, "md/odd.nc", bytes(ds.to_netcdf(engine="h5netcdf")))
    thin = xarray.Dataset({"sst": (("lat", "lon"), np.ones((1, 5), "float32"))}, coords={"lat": [34.5], "lon": lon})
    aws_world.put_object(DAAC_A_BUCKET, "md/thin.nc", bytes(thin.to_netcdf(engine="h5netcdf")))
    return f"s3://{DAAC_A_BUCKET}/md/odd.nc"


@pytest.mark.parametrize(
    ("route", "params", "status", "said"),
    [
        ("point", {"variable": "sst", "sel": "lat=34.9"}, 400, "'lat' is the x/y dimension"),
        ("point", {"variable": "sst", "sel": ["time=nearest::0", "time=pad::1"]}, 400, "one method per dimension"),
        (
            "point",
            {"variable": "depth_only", "sel": "depth=x"},
            400,
            "'x' is not a value of dimension 'depth' (a position)",
        ),
        ("point", {"variable": "named", "sel": "station=nearest::zz"}, 400, "nearest needs numbers or times"),
        ("point", {"variable": "flag"}, 400, "holds bool values"),
        ("point", {"variable": "shuffled", "sel": "step=nearest::1"}, 400, "nearest needs a sorted coordinate"),
        ("point", {"variable": "repeated", "sel": "rep=1"}, 400, "dimension 'rep' of s3://"),
        ("tile", {"variable": "sst", "bidx": "3"}, 400, "bidx=3: variable 'sst'"),
        ("bbox", {"variable": "sst"}, 404, ""),
        ("thin", {"variable": "sst"}, 400, "is 5 x 1 px"),
    ],
)
def test_odd_requests_are_4xx_naming_what_is_wrong(md_client, odd_netcdf, route, params, status, said):
    path = {
        "point": "/md/point/-120.5,34.5",
        "tile": "/md/tiles/WebMercatorQuad/8/42/101.png",
        "bbox": "/md/bbox/0,0,1,1.png",  # no data there
        "thin": "/md/point/-120.5,34.5",
    }[route]
    url = odd_netcdf.replace("odd.nc", "thin.nc") if route == "thin" else odd_netcdf
    answer = md_client.get(path, params={"url": url, **params})
    assert answer.status_code == status, answer.text
    assert said in answer.json()["detail"]


def test_an_array_named_as_a_group_and_a_refused_bucket_are_4xx(aws_world, md_client, tmp_path):
    url = _put_zarr(
        aws_world, tmp_path, "md/group.zarr", {**_grid(8), "sst": (["lat", "lon"], (8, 8), (8, 8), "float32", 1.0)}
    )
    group = md_client.get("/md/info", params={"url": url, "variable": "sst", "group": "sst"})
    assert group.status_code == 400, group.text
    assert "group 'sst' is not a group" in group.json()["detail"]
    # daac-b's glob covers daac-b-other, which its role may not read: S3's 403 is the API's.
    for key in ("x.nc", "x.zarr"):
        refused = md_client.get("/md/info", params={"url": f"s3://daac-b-other/{key}", "variable": "sst"})
        assert refused.status_code == 403, refused.text
        assert "provider 'daac-b'" in refused.json()["detail"]


@pytest.mark.parametrize("routes", ["md", "cog"])
def test_the_map_page_escapes_what_it_shows_in_its_popup(md_client, routes):
    """titiler's map page puts an error's detail (which repeats the caller's `url` or `variable`) and a file's band
    names into its popup as HTML; ours escapes them."""
    params = {"url": f"s3://{DAAC_A_BUCKET}/md/x.nc", "variable": "v"}
    page = md_client.get(f"/{routes}/WebMercatorQuad/map.html", params=params)
    assert page.status_code == 200, page.text
    assert "${esc(err.errorData.detail)}" in page.text and "${esc(bandNames[i])}" in page.text
    assert "${err.errorData.detail}" not in page.text
