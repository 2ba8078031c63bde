"""The `/md/` routes (NetCDF-4, HDF5, Zarr) and their store: read through the provider's credentials (obstore), checked
on the wire (moto's recorder): only the canonical object or prefix, signed with its provider's key."""

from __future__ import annotations

import io
from urllib.parse import urlsplit

import h5py
import numpy as np
import pytest
import xarray

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET


@pytest.fixture
def router(aws_world, api_env, provider_secrets):
    from raster_api.routing import ProviderRouter
    from raster_api.settings import Settings

    return ProviderRouter.from_settings(Settings())


def _netcdf(values: np.ndarray) -> bytes:
    ds = xarray.Dataset(
        {"sst": (("time", "lat", "lon"), values, {"units": "K"})},
        coords={
            "time": [0, 1],
            "lat": np.linspace(34.9, 34.1, values.shape[1]),
            "lon": np.linspace(-120, -119, values.shape[2]),
        },
    )
    return bytes(ds.to_netcdf(engine="h5netcdf"))


def _with_external_link(target: str) -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5["data"] = np.arange(4)
        h5["leak"] = h5py.ExternalLink(target, "/")
    return buffer.getvalue()


def test_a_netcdf_in_a_daac_bucket_is_read_with_that_daacs_keys_and_only_its_key(aws_world, router, daac_keys):
    from raster_api.md_store import open_hdf5

    values = np.arange(2 * 4 * 5, dtype="float32").reshape(2, 4, 5)
    aws_world.put_object(DAAC_A_BUCKET, "md/sst.nc", _netcdf(values))
    read = router_read(router, f"s3://{DAAC_A_BUCKET}/md/sst.nc")
    with aws_world.recording.capture() as wire:
        with open_hdf5(read, router) as h5:
            got = h5["sst"][...]
    np.testing.assert_array_equal(got, values)
    s3 = wire.s3_requests()
    assert s3, "the store read nothing"
    assert {urlsplit(r.url).path for r in s3} == {f"/{DAAC_A_BUCKET}/md/sst.nc"}
    assert {r.access_key_id for r in s3} == {daac_keys["daac-a"].access_key_id}


@pytest.mark.parametrize("target", ["/proc/self/environ", f"s3://{OWN_BUCKET}/cogs/sample.tif", "other.nc"])
def test_a_file_linking_outside_itself_is_refused_before_the_link_is_followed(aws_world, router, target):
    from raster_api.errors import OutsideReference
    from raster_api.md_store import open_hdf5

    aws_world.put_object(DAAC_A_BUCKET, "md/linked.nc", _with_external_link(target))
    read = router_read(router, f"s3://{DAAC_A_BUCKET}/md/linked.nc")
    with aws_world.recording.capture() as wire:
        with pytest.raises(OutsideReference, match="links 'leak' to"):
            open_hdf5(read, router)
    assert {urlsplit(r.url).path for r in wire.s3_requests()} == {f"/{DAAC_A_BUCKET}/md/linked.nc"}


def router_read(router, url: str):
    from raster_api.routing import ResolvedRead

    location = router.parse_url(url)
    return ResolvedRead(router.check_access(None, location.bucket), location)


def _with_virtual_dataset() -> bytes:
    buffer = io.BytesIO()
    layout = h5py.VirtualLayout(shape=(4,), dtype="i8")
    layout[:] = h5py.VirtualSource("/proc/self/environ", "data", shape=(4,))
    with h5py.File(buffer, "w") as h5:
        h5.create_virtual_dataset("data", layout)
    return buffer.getvalue()


def _with_external_storage() -> bytes:
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.create_dataset("data", shape=(4,), dtype="u1", external=[("/proc/self/environ", 0, 4)])
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("make", "said"),
    [(_with_virtual_dataset, "a virtual dataset"), (_with_external_storage, "in an external file")],
)
def test_virtual_datasets_and_external_storage_are_refused(aws_world, router, make, said):
    from raster_api.errors import OutsideReference
    from raster_api.md_store import open_hdf5

    aws_world.put_object(DAAC_A_BUCKET, "md/outside.nc", make())
    read = router_read(router, f"s3://{DAAC_A_BUCKET}/md/outside.nc")
    with pytest.raises(OutsideReference, match=said):
        open_hdf5(read, router)


def test_md_info_and_a_tile_read_the_daacs_netcdf(aws_world, md_client, caplog):
    values = np.arange(2 * 4 * 5, dtype="float32").reshape(2, 4, 5)
    aws_world.put_object(DAAC_A_BUCKET, "md/route.nc", _netcdf(values))
    url = f"s3://{DAAC_A_BUCKET}/md/route.nc"
    info = md_client.get("/md/info", params={"url": url, "variable": "sst", "sel": "time=1"})
    assert info.status_code == 200, info.text
    assert info.json()["width"] == 5
    assert info.json()["height"] == 4
    tile = md_client.get(
        "/md/tiles/WebMercatorQuad/8/42/101.png",
        params={"url": url, "variable": "sst", "sel": "time=1", "rescale": "0,40"},
    )
    assert tile.status_code == 200, tile.text
    refused = md_client.get("/md/info", params={"url": url, "variable": "sst", "provider": "own"})
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == "provider 'own' does not serve bucket 'daac-a-protected'"


@pytest.mark.parametrize(
    ("key", "sent"),
    [
        ("../../../own-data/cogs/sample.tif", None),  # refused by obstore before any request
        ("a/./b", None),
        ("a//b", None),
        ("/abs", "/daac-a-protected/md/store.zarr/abs"),
        (
            "..%2F..%2Fown-data%2Fcogs%2Fsample.tif",
            "/daac-a-protected/md/store.zarr/..%252F..%252Fown-data%252Fcogs%252Fsample.tif",
        ),
    ],
)
def test_a_key_a_crafted_zarr_could_name_stays_under_its_prefix_on_the_wire(aws_world, router, key, sent):
    """Zarr names chunks from its metadata, so a crafted store may name any key: under a store bound to the Zarr's
    prefix, dot and empty segments are refused before any request, and the rest stay literal keys under the prefix."""
    import obstore

    from raster_api.md_store import object_store

    read = router_read(router, f"s3://{DAAC_A_BUCKET}/md/store.zarr")
    store = object_store(read, router, prefix=read.location.key)
    with aws_world.recording.capture() as wire:
        with pytest.raises((ValueError, FileNotFoundError)):
            obstore.get(store, key)
    assert [urlsplit(r.url).path for r in wire.s3_requests()] == ([] if sent is None else [sent])


def test_md_point_decodes_scale_offset_and_fill_value(aws_world, md_client):
    packed = np.array([[[10, 20], [30, -999]], [[40, 50], [60, 70]]], dtype="int16")
    ds = xarray.Dataset(
        {"sst": (("time", "lat", "lon"), packed)},
        coords={"time": [0, 1], "lat": [34.75, 34.25], "lon": [-119.75, -119.25]},
    )
    ds["sst"].encoding.update(
        {"scale_factor": 0.5, "add_offset": 270.0, "_FillValue": np.int16(-999), "dtype": "int16"}
    )
    ds["sst"].attrs["units"] = "K"
    # Written undecoded: the file holds the packed integers and the attributes, as a DAAC's file does.
    raw = ds.copy()
    raw["sst"] = raw["sst"].astype("float32") * 0.5 + 270.0
    raw["sst"] = raw["sst"].where(packed != -999)
    raw["sst"].encoding.update(
        {"scale_factor": 0.5, "add_offset": 270.0, "_FillValue": np.int16(-999), "dtype": "int16"}
    )
    aws_world.put_object(DAAC_A_BUCKET, "md/packed.nc", bytes(raw.to_netcdf(engine="h5netcdf")))
    url = f"s3://{DAAC_A_BUCKET}/md/packed.nc"
    answers = {}
    for name, (lon, lat) in {"nw": (-119.75, 34.75), "se": (-119.25, 34.25)}.items():
        answers[name] = md_client.get(f"/md/point/{lon},{lat}", params={"url": url, "variable": "sst", "sel": "time=0"})
    assert answers["nw"].status_code == 200, answers["nw"].text
    assert answers["nw"].json()["values"] == [275.0]  # 10 * 0.5 + 270
    assert answers["se"].status_code == 200
    assert answers["se"].json()["values"] == [None]  # the _FillValue is no data


def test_md_errors_name_the_parameter_and_the_object(aws_world, md_client, sample_urls):
    values = np.zeros((2, 4, 5), dtype="float32")
    aws_world.put_object(DAAC_A_BUCKET, "md/errors.nc", _netcdf(values))
    nc = f"s3://{DAAC_A_BUCKET}/md/errors.nc"
    cases = [
        ({"url": nc, "variable": "nope"}, 400, f"variable 'nope' is not in {nc} (provider 'daac-a'); it has: sst"),
        (
            {"url": f"s3://{DAAC_A_BUCKET}/md/missing.nc", "variable": "sst"},
            404,
            f"s3://{DAAC_A_BUCKET}/md/missing.nc not found for provider 'daac-a'",
        ),
        (
            {"url": sample_urls[DAAC_A_BUCKET], "variable": "sst"},
            400,
            f"{sample_urls[DAAC_A_BUCKET]} (provider 'daac-a') is not a NetCDF-4/HDF5 file: /md/ reads NetCDF-4 and HDF5",
        ),
    ]
    for params, status, detail in cases:
        answer = md_client.get("/md/info", params=params)
        assert (answer.status_code, answer.json()["detail"]) == (status, detail)
    out_of_range = md_client.get("/md/info", params={"url": nc, "variable": "sst", "sel": "time=99"})
    assert out_of_range.status_code == 400
    assert out_of_range.json()["detail"].startswith(f"sel ['time=99'] selects nothing in {nc}")


def test_obstore_never_combines_a_providers_keys_with_the_lambdas_session_token(api_env, aws_world, lambda_keys):
    """An IAM user's keys (no token) read through obstore while AWS_SESSION_TOKEN holds the Lambda's, as on Lambda:
    moto refuses a key paired with a foreign token, so a 200 shows obstore sent the provider's keys alone."""
    import os

    import obstore

    from providers import ProviderKind, load_providers
    from raster_api.credentials import AwsCredentials, CredentialCache
    from raster_api.md_store import object_store
    from raster_api.routing import ProviderRouter

    assert os.environ["AWS_SESSION_TOKEN"] == lambda_keys.session_token
    providers = load_providers(os.environ["PROVIDERS_CONFIG"])
    admin = aws_world.admin
    cache = CredentialCache(
        providers,
        fetchers={ProviderKind.DEFAULT: lambda p: AwsCredentials(admin.access_key_id, admin.secret_access_key)},
    )
    static = ProviderRouter(providers, cache)
    aws_world.put_object(OWN_BUCKET, "md/static.nc", _netcdf(np.zeros((2, 4, 5), dtype="float32")))
    read = router_read(static, f"s3://{OWN_BUCKET}/md/static.nc")
    assert (
        bytes(obstore.get(object_store(read, static), "md/static.nc", options={"range": (0, 4)}).bytes()) == b"\x89HDF"
    )


def test_obstore_alone_would_combine_keys_with_the_environments_token(api_env, aws_world):
    """The hazard the credential provider guards against (if this passes, the test above tests something real)."""
    import obstore
    import obstore.exceptions
    from obstore.store import S3Store

    aws_world.put_object(OWN_BUCKET, "md/hazard.nc", b"\x89HDF....")
    admin = aws_world.admin
    store = S3Store(
        OWN_BUCKET,
        endpoint=api_env["AWS_ENDPOINT_URL"],
        region="us-west-2",
        access_key_id=admin.access_key_id,
        secret_access_key=admin.secret_access_key,
        client_options={"allow_http": True},
    )
    with pytest.raises(obstore.exceptions.GenericError, match="InvalidToken"):
        obstore.get(store, "md/hazard.nc")


def _put_zarr(aws_world, tmp_path, bucket: str, prefix: str, ds: xarray.Dataset, zarr_format: int = 2) -> None:
    local = tmp_path / "store.zarr"
    ds.to_zarr(local, zarr_format=zarr_format, consolidated=True)
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        aws_world.put_object(bucket, f"{prefix}/{path.relative_to(local).as_posix()}", path.read_bytes())


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_a_zarr_store_is_read_under_its_prefix_with_the_providers_keys(
    aws_world, router, daac_keys, tmp_path, zarr_format
):
    import zarr

    from raster_api.md_store import object_store

    values = np.arange(2 * 4 * 5, dtype="float32").reshape(2, 4, 5)
    ds = xarray.Dataset(
        {"sst": (("time", "lat", "lon"), values)},
        coords={"time": [0, 1], "lat": np.linspace(34.9, 34.1, 4), "lon": np.linspace(-120, -119, 5)},
    )
    prefix = f"md/cube-v{zarr_format}.zarr"
    _put_zarr(aws_world, tmp_path, DAAC_A_BUCKET, prefix, ds, zarr_format)
    read = router_read(router, f"s3://{DAAC_A_BUCKET}/{prefix}")
    with aws_world.recording.capture() as wire:
        store = zarr.storage.ObjectStore(object_store(read, router, prefix=read.location.key), read_only=True)
        with xarray.open_dataset(store, engine="zarr") as opened:
            got = opened["sst"].values
    np.testing.assert_array_equal(got, values)
    s3 = wire.s3_requests()
    assert s3
    assert all(urlsplit(r.url).path.startswith(f"/{DAAC_A_BUCKET}/{prefix}/") for r in s3), [r.url for r in s3]
    assert {r.access_key_id for r in s3} == {daac_keys["daac-a"].access_key_id}


def test_a_zarr_whose_metadata_names_arrays_outside_it_reads_nothing_outside(aws_world, router, tmp_path):
    """Consolidated metadata naming an array under `../../../own-data/`: zarr refuses the store (today a
    GroupNotFoundError, still to map to a 400), and every request stayed under the prefix."""
    import json as _json

    import zarr

    from raster_api.md_store import object_store

    values = np.zeros((4, 5), dtype="float32")
    ds = xarray.Dataset({"sst": (("lat", "lon"), values)}, coords={"lat": np.arange(4.0), "lon": np.arange(5.0)})
    prefix = "md/crafted.zarr"
    local = tmp_path / "c.zarr"
    ds.to_zarr(local, zarr_format=2, consolidated=True)
    meta = _json.loads((local / ".zmetadata").read_text())
    meta["metadata"] = {
        (k.replace("sst/", "../../../own-data/cogs/") if k.startswith("sst/") else k): v
        for k, v in meta["metadata"].items()
    }
    (local / ".zmetadata").write_text(_json.dumps(meta))
    for path in sorted(p for p in local.rglob("*") if p.is_file()):
        aws_world.put_object(DAAC_A_BUCKET, f"{prefix}/{path.relative_to(local).as_posix()}", path.read_bytes())
    read = router_read(router, f"s3://{DAAC_A_BUCKET}/{prefix}")
    with aws_world.recording.capture() as wire:
        store = zarr.storage.ObjectStore(object_store(read, router, prefix=read.location.key), read_only=True)
        with pytest.raises(zarr.errors.GroupNotFoundError):
            xarray.open_dataset(store, engine="zarr")
    paths = [urlsplit(r.url).path for r in wire.s3_requests()]
    assert paths
    assert all(p.startswith(f"/{DAAC_A_BUCKET}/{prefix}/") for p in paths), paths


def test_md_routes_read_a_zarr_store(aws_world, md_client, tmp_path):
    values = np.arange(2 * 4 * 5, dtype="float32").reshape(2, 4, 5)
    ds = xarray.Dataset(
        {"sst": (("time", "lat", "lon"), values)},
        coords={"time": [0, 1], "lat": np.linspace(34.9, 34.1, 4), "lon": np.linspace(-120, -119, 5)},
    )
    _put_zarr(aws_world, tmp_path, DAAC_A_BUCKET, "md/route.zarr", ds)
    url = f"s3://{DAAC_A_BUCKET}/md/route.zarr"
    info = md_client.get("/md/info", params={"url": url, "variable": "sst", "sel": "time=1"})
    assert info.status_code == 200, info.text
    assert (info.json()["width"], info.json()["height"]) == (5, 4)
    missing = md_client.get("/md/info", params={"url": f"s3://{DAAC_A_BUCKET}/md/none.zarr", "variable": "sst"})
    assert missing.status_code == 404, missing.text


@pytest.mark.parametrize("latitudes", ["descending", "ascending"])
def test_a_large_variable_is_refused_before_its_pixels_are_read(aws_world, small_budget_md_client, latitudes):
    """A 1024 x 1024 float32 variable (4 MB, no overviews) under a 1 MB source budget: a whole-world tile would read
    all of it. Refused with the budget's words; the small tile of one corner passes. Latitude ascending (as in
    PO.DAAC's MUR, a south-up grid) is priced like descending."""
    values = np.zeros((1, 1024, 1024), dtype="float32")
    lat = np.linspace(89.9, -89.9, 1024)
    ds = xarray.Dataset(
        {"sst": (("time", "lat", "lon"), values)},
        coords={
            "time": [0],
            "lat": lat if latitudes == "descending" else lat[::-1],
            "lon": np.linspace(-179.9, 179.9, 1024),
        },
    )
    aws_world.put_object(DAAC_A_BUCKET, f"md/big-{latitudes}.nc", bytes(ds.to_netcdf(engine="h5netcdf")))
    url = f"s3://{DAAC_A_BUCKET}/md/big-{latitudes}.nc"
    world = small_budget_md_client.get("/md/tiles/WebMercatorQuad/0/0/0.png", params={"url": url, "variable": "sst"})
    assert world.status_code == 400, world.text
    assert "RASTER_API_MAX_SOURCE_BYTES" in world.json()["detail"]
    corner = small_budget_md_client.get("/md/tiles/WebMercatorQuad/6/0/0.png", params={"url": url, "variable": "sst"})
    assert corner.status_code == 200, corner.text
    world_polygon = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[[-179, -89], [179, -89], [179, 89], [-179, 89], [-179, -89]]]},
    }
    stats = small_budget_md_client.post("/md/statistics", params={"url": url, "variable": "sst"}, json=world_polygon)
    assert stats.status_code == 400, stats.text
    assert "RASTER_API_MAX_SOURCE_BYTES" in stats.json()["detail"]


def test_md_routes_answer_no_5xx_to_generated_requests(aws_world, md_client, tmp_path, sample_urls):
    """Generated queries over the /md/ routes (a NetCDF, a Zarr, junk URLs; variables, sel, rescale, tiles, points):
    never a 5xx. A fixed (derandomized) set, as the other fuzz tests run in CI."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    values = np.arange(2 * 4 * 5, dtype="float32").reshape(2, 4, 5)
    ds = xarray.Dataset(
        {"sst": (("time", "lat", "lon"), values)},
        coords={"time": [0, 1], "lat": np.linspace(34.9, 34.1, 4), "lon": np.linspace(-120, -119, 5)},
    )
    aws_world.put_object(DAAC_A_BUCKET, "md/fuzz.nc", bytes(ds.to_netcdf(engine="h5netcdf")))
    _put_zarr(aws_world, tmp_path, DAAC_A_BUCKET, "md/fuzz.zarr", ds)
    urls = [
        f"s3://{DAAC_A_BUCKET}/md/fuzz.nc",
        f"s3://{DAAC_A_BUCKET}/md/fuzz.zarr",
        f"s3://{DAAC_A_BUCKET}/md/nope.zarr",
        sample_urls[DAAC_A_BUCKET],
        "s3://own-data/../daac-a-protected/md/fuzz.nc",
        "s3://unlisted/x.nc",
        "",
        "not a url",
    ]
    text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
    query = st.fixed_dictionaries(
        {"url": st.sampled_from(urls), "variable": st.one_of(st.sampled_from(["sst", "time", "lat"]), text)},
        optional={
            "sel": st.one_of(st.sampled_from(["time=0", "time=1", "time=nearest::0.4", "time=9", "lat=34.9"]), text),
            "rescale": st.one_of(st.sampled_from(["0,40", "40,0", "nan,1"]), text),
            "group": text,
            "decode_times": st.sampled_from(["true", "false", "x"]),
            "provider": st.sampled_from(["daac-a", "own", "nobody"]),
        },
    )
    paths = st.one_of(
        st.just("/md/info"),
        st.builds(
            lambda z, x, y: f"/md/tiles/WebMercatorQuad/{z}/{x}/{y}.png",
            st.integers(0, 12),
            st.integers(0, 20),
            st.integers(0, 20),
        ),
        st.builds(lambda lon, lat: f"/md/point/{lon},{lat}", st.floats(-200, 200), st.floats(-100, 100)),
        st.just("/md/WebMercatorQuad/tilejson.json"),
    )
    seen: list[int] = []

    @settings(
        max_examples=int(__import__("os").environ.get("MD_FUZZ", "120")),
        derandomize=not __import__("os").environ.get("MD_FUZZ"),
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(path=paths, params=query)
    def check(path: str, params: dict[str, str]) -> None:
        answer = md_client.get(path, params=params)
        seen.append(answer.status_code)
        assert answer.status_code < 500, (path, params, answer.text[:300])

    check()
    assert 200 in seen and 400 in seen


def test_md_wmts_and_map_page(aws_world, md_client):
    values = np.arange(2 * 4 * 5, dtype="float32").reshape(2, 4, 5)
    aws_world.put_object(DAAC_A_BUCKET, "md/wmts.nc", _netcdf(values))
    params = {"url": f"s3://{DAAC_A_BUCKET}/md/wmts.nc", "variable": "sst", "sel": "time=0", "rescale": "0,40"}
    wmts = md_client.get("/md/WMTSCapabilities.xml", params=params)
    assert wmts.status_code == 200, wmts.text
    assert b"/md/tiles/WebMercatorQuad/{TileMatrix}/{TileCol}/{TileRow}" in wmts.content
    page = md_client.get("/md/WebMercatorQuad/map.html", params=params)
    assert page.status_code == 200, page.text
    bad = md_client.get("/md/WMTSCapabilities.xml", params={**params, "rescale": "5,1"})
    assert bad.status_code == 400, bad.text


def test_the_local_stacks_sst_sample_renders_through_md_as_written(aws_world, md_client, daac_keys):
    """The PO.DAAC-style sample the local stack and the viewer show: both days' temperatures at a column (decoded
    from int16 with scale/offset), the land corner without a value, a tile, and the POSTed statistics the viewer
    draws its histogram from, all signed with the DAAC's key."""
    from local_stack.aws_world import MD_SAMPLE_KEY
    from local_stack.samples import SST_BOUNDS, SST_LAND, SST_SIZE, SST_VARIABLE, make_sst_netcdf, sst_value

    aws_world.put_object(DAAC_A_BUCKET, MD_SAMPLE_KEY, make_sst_netcdf(10.0))
    url = f"s3://{DAAC_A_BUCKET}/{MD_SAMPLE_KEY}"
    query = {"url": url, "variable": SST_VARIABLE}
    west, south, east, north = SST_BOUNDS
    step = (east - west) / SST_SIZE
    column = 200
    with aws_world.recording.capture() as wire:
        info = md_client.get("/md/info.geojson", params=query)
        sea = md_client.get(f"/md/point/{west + step * (column + 0.5)},{south + 0.5}", params=query)
        land = md_client.get(f"/md/point/{west + step * 3.5},{north - step * 3.5}", params=query)
        tile = md_client.get("/md/tiles/WebMercatorQuad/8/42/101.png", params={**query, "rescale": "283,290"})
        stats = md_client.post("/md/statistics", params={**query, "histogram_bins": 40}, json=info.json())
    assert info.status_code == 200, info.text
    assert [round(c, 6) for c in info.json()["bbox"]] == list(SST_BOUNDS)
    assert info.json()["properties"]["count"] == 2  # the two days
    assert sea.status_code == 200, sea.text
    assert sea.json()["values"] == pytest.approx([sst_value(10.0, column, 0), sst_value(10.0, column, 1)])
    assert land.status_code == 200 and land.json()["values"] == [None, None], land.text
    assert (tile.status_code, tile.headers["content-type"]) == (200, "image/png"), tile.text
    assert stats.status_code == 200, stats.text
    b1 = stats.json()["properties"]["statistics"]["b1"]
    assert (b1["min"], b1["max"]) == pytest.approx((sst_value(10.0, 0), sst_value(10.0, SST_SIZE - 1)))
    assert b1["count"] == SST_SIZE * SST_SIZE - SST_LAND * SST_LAND
    assert {urlsplit(r.url).path for r in wire.s3_requests()} == {f"/{DAAC_A_BUCKET}/{MD_SAMPLE_KEY}"}
    assert {r.access_key_id for r in wire.s3_requests()} == {daac_keys["daac-a"].access_key_id}


@pytest.fixture
def restricted_md_client(api_env, aws_world, issuer, monkeypatch):
    from fastapi.testclient import TestClient

    from raster_api.main import create_app
    from tests.test_auth import restricted_config

    monkeypatch.setenv("PROVIDERS_CONFIG", restricted_config(aws_world))
    for key, value in issuer.api_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RASTER_API_GRANT_KEYS", "an-md-test-grant-key-of-at-least-32-characters")
    monkeypatch.setenv("RASTER_API_MD_ENABLED", "true")
    with TestClient(create_app(), raise_server_exceptions=False) as client:
        yield client


def test_a_restricted_providers_netcdf_needs_a_member_and_its_tile_urls_carry_grants(
    aws_world, restricted_md_client, issuer
):
    """Provider `partner` is for the group partner-analysts: anonymous /md/ reads are a 401 before any S3 request; a
    member's TileJSON hands out tile URLs with a grant (never the token), which then read without a token."""
    from local_stack.aws_world import PARTNER_BUCKET
    from local_stack.cognito import sample_user
    from local_stack.samples import SST_VARIABLE, make_sst_netcdf
    from tests.test_auth import bearer

    aws_world.put_object(PARTNER_BUCKET, "md/sst.nc", make_sst_netcdf(15.0))
    query = {"url": f"s3://{PARTNER_BUCKET}/md/sst.nc", "variable": SST_VARIABLE, "bidx": "1"}
    with aws_world.recording.capture() as wire:
        anonymous = restricted_md_client.get("/md/point/-120.5,34.5", params=query)
    assert anonymous.status_code == 401, anonymous.text
    assert "partner" in anonymous.json()["detail"]
    assert wire.s3_requests() == []
    token = issuer.tokens(sample_user("partner-analysts"))["IdToken"]
    tilejson = restricted_md_client.get("/md/WebMercatorQuad/tilejson.json", params=query, headers=bearer(token))
    assert tilejson.status_code == 200, tilejson.text
    template = tilejson.json()["tiles"][0]
    assert "grant=" in template and token not in template
    parts = urlsplit(template.replace("{z}", "8").replace("{x}", "42").replace("{y}", "101"))
    tile = restricted_md_client.get(f"{parts.path}?{parts.query}")
    assert (tile.status_code, tile.headers["content-type"]) == (200, "image/png"), tile.text
