"""pgstac mosaics, collections and items with per-asset provider routing, against real parts.

A real PostgreSQL + PostGIS migrated with pypgstac (one per test session), items whose assets are COGs in the moto
buckets (IAM auth on: each bucket is readable only by its provider's identity), and the raster API app built with
`create_app()`. One web-mercator tile is split in two: a west COG in a DAAC bucket and an east COG in another
provider's bucket, so a tile's left and right halves say which source (and so which credentials) they came from.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from io import BytesIO
from typing import Any

import morecantile
import numpy as np
import pytest
from fastapi.testclient import TestClient
from rasterio.io import MemoryFile

from local_stack.aws_world import DAAC_A_BUCKET, DAAC_B_BUCKET, OWN_BUCKET, AwsWorld, Keys, providers_config
from local_stack.pgstac_db import (
    PgstacDatabase,
    load_collections,
    load_items,
    stac_collection,
    stac_item,
)
from local_stack.samples import make_cog

TMS = morecantile.tms.get("WebMercatorQuad")
TILE = TMS.tile(-119.6, 34.5, 9)
WEST, SOUTH, EAST, NORTH = TMS.bounds(TILE)
MID = (WEST + EAST) / 2
WEST_BOUNDS = (WEST, SOUTH - 0.1, MID, NORTH + 0.1)
EAST_BOUNDS = (MID, SOUTH - 0.1, EAST, NORTH + 0.1)
TILE_PATH = f"tiles/WebMercatorQuad/{TILE.z}/{TILE.x}/{TILE.y}.png"

PREFIX = "pgstac-tests"
BASES = {DAAC_A_BUCKET: 10, DAAC_B_BUCKET: 60, OWN_BUCKET: 110}

# collection id -> (bucket, bounds, declared provider or None)
COLLECTIONS: dict[str, tuple[str, tuple[float, float, float, float], str | None]] = {
    "daac-a-west": (DAAC_A_BUCKET, WEST_BOUNDS, "daac-a"),
    "daac-b-east": (DAAC_B_BUCKET, EAST_BOUNDS, None),
    "own-east": (OWN_BUCKET, EAST_BOUNDS, None),
    # Claims provider "own" for assets in daac-a's bucket: bucket ownership must win.
    "wrong-claim": (DAAC_A_BUCKET, WEST_BOUNDS, "own"),
}


def _href(bucket: str, bounds: tuple[float, ...]) -> str:
    side = "west" if bounds == WEST_BOUNDS else "east"
    return f"s3://{bucket}/{PREFIX}/{side}.tif"


@pytest.fixture(scope="module")
def stac_catalog(aws_world: AwsWorld, pgstac_db: PgstacDatabase) -> dict[str, str]:
    """Upload the half-tile COGs and load one collection + item per entry of COLLECTIONS; returns item ids."""
    uploaded: set[str] = set()
    collections, items, item_ids = [], [], {}
    for collection_id, (bucket, bounds, declared) in COLLECTIONS.items():
        href = _href(bucket, bounds)
        if href not in uploaded:
            aws_world.put_object(bucket, href.split("/", 3)[3], make_cog(BASES[bucket], bounds=bounds))
            uploaded.add(href)
        extra = {"tiler:provider": declared} if declared else {}
        collections.append(stac_collection(collection_id, bounds, extra=extra))
        item_ids[collection_id] = f"{collection_id}-item"
        items.append(stac_item(collection_id, item_ids[collection_id], href, bounds))
    load_collections(pgstac_db.dsn, collections)
    load_items(pgstac_db.dsn, items)
    return item_ids


def _api_environ(aws_world: AwsWorld, lambda_keys: Keys, db_env: dict[str, str]) -> dict[str, str]:
    return {
        **aws_world.endpoint_env(),
        **lambda_keys.env(),
        "PROVIDERS_CONFIG": json.dumps(providers_config(aws_world)),
        "RASTER_API_PGSTAC_ENABLED": "true",
        **db_env,
    }


@pytest.fixture(scope="module")
def client(
    aws_world: AwsWorld,
    lambda_keys: Keys,
    provider_secrets: dict[str, str],
    pgstac_db: PgstacDatabase,
    stac_catalog: dict[str, str],
) -> Iterator[TestClient]:
    from raster_api.main import create_app

    with pytest.MonkeyPatch.context() as mp:
        for key, value in _api_environ(aws_world, lambda_keys, {"DATABASE_URL": pgstac_db.dsn}).items():
            mp.setenv(key, value)
        with TestClient(create_app()) as test_client:
            yield test_client


def _register(client: TestClient, collections: list[str], **body: Any) -> str:
    response = client.post("/searches/register", json={"collections": collections, **body})
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


def _tile(client: TestClient, prefix: str, params: dict[str, str] | None = None, **kwargs: Any) -> Any:
    """GET the test tile of a mosaic or item at `prefix`, reading its `data` asset."""
    return client.get(f"{prefix}/{TILE_PATH}", params={"assets": "data", **(params or {})}, **kwargs)


def _pixels(content: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Decode a PNG tile: (values of band 1, alpha mask)."""
    with MemoryFile(BytesIO(content)) as mem, mem.open() as src:
        data = src.read()
    return data[0], data[-1]


def _assert_half(values: np.ndarray, mask: np.ndarray, columns: slice, base: int) -> None:
    half_values, half_mask = values[:, columns], mask[:, columns]
    assert half_mask.all(), "every pixel of this half should be covered"
    assert half_values.min() >= base and half_values.max() <= base + 7, (half_values.min(), half_values.max())


LEFT, RIGHT = slice(4, 124), slice(132, 252)  # away from the seam in the middle of the 256-px tile


def test_search_mosaic_tile_shows_both_providers(client: TestClient) -> None:
    search_id = _register(client, ["daac-a-west", "own-east"])
    response = _tile(client, f"/searches/{search_id}")
    assert response.status_code == 200, response.text
    values, mask = _pixels(response.content)
    _assert_half(values, mask, LEFT, BASES[DAAC_A_BUCKET])
    _assert_half(values, mask, RIGHT, BASES[OWN_BUCKET])


def test_threaded_mosaic_reads_each_daac_with_its_own_credentials(client: TestClient) -> None:
    """Two DAACs in one tile, read in parallel threads: the process identity (raster-lambda, in the environment)
    may read neither bucket, and each DAAC's keys only its own, so a correct tile proves per-thread routing."""
    import titiler.mosaic.factory

    assert titiler.mosaic.factory.MOSAIC_THREADS > 1, "the mosaic must be read with threads for this test to mean it"
    search_id = _register(client, ["daac-a-west", "daac-b-east"])
    response = _tile(client, f"/searches/{search_id}")
    assert response.status_code == 200, response.text
    values, mask = _pixels(response.content)
    _assert_half(values, mask, LEFT, BASES[DAAC_A_BUCKET])
    _assert_half(values, mask, RIGHT, BASES[DAAC_B_BUCKET])


def test_provider_param_refuses_other_providers_assets(client: TestClient, daac_keys: dict[str, Keys]) -> None:
    search_id = _register(client, ["daac-a-west", "own-east"])
    response = _tile(client, f"/searches/{search_id}", params={"provider": "own"})
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert "'own'" in detail and DAAC_A_BUCKET in detail
    for secret in daac_keys["daac-a"].secret_values():
        assert secret not in response.text


def test_provider_param_owning_every_asset_reads_the_tile(client: TestClient) -> None:
    search_id = _register(client, ["own-east"])
    response = _tile(client, f"/searches/{search_id}", params={"provider": "own"})
    assert response.status_code == 200, response.text
    values, mask = _pixels(response.content)
    _assert_half(values, mask, RIGHT, BASES[OWN_BUCKET])
    assert not mask[:, LEFT].any(), "no item covers the west half"


def test_unknown_provider_param_is_a_client_error(client: TestClient) -> None:
    search_id = _register(client, ["own-east"])
    response = _tile(client, f"/searches/{search_id}", params={"provider": "nobody"})
    assert response.status_code == 400
    assert "nobody" in response.json()["detail"]


def test_collection_mosaic_tile(client: TestClient) -> None:
    response = _tile(client, "/collections/daac-a-west")
    assert response.status_code == 200, response.text
    values, mask = _pixels(response.content)
    _assert_half(values, mask, LEFT, BASES[DAAC_A_BUCKET])


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        (
            {"items_limit": "500", "exitwhenfull": "false", "skipcovered": "false"},
            "items_limit=500 is above 30, the most items a mosaic request reads (RASTER_API_MAX_MOSAIC_ITEMS)",
        ),
        (
            {"items_limit": "11", "pixel_selection": "median"},
            "items_limit=11 is above 10: pixel_selection=median holds every item's pixels at once, so it reads at "
            "most that many items (RASTER_API_MAX_STACKED_ITEMS)",
        ),
    ],
    ids=["any-method", "median"],
)
def test_a_mosaic_reads_at_most_its_item_budget(client: TestClient, params: dict[str, str], detail: str) -> None:
    response = _tile(client, "/collections/daac-a-west", params=params)
    assert response.status_code == 400
    assert response.json()["detail"] == detail


def test_a_stacking_mosaic_is_priced_from_its_item_count_before_any_read(client: TestClient, aws_world) -> None:
    with aws_world.recording.capture() as wire:
        response = _tile(client, "/collections/daac-a-west", params={"pixel_selection": "median", "tilesize": "4096"})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "pixel_selection=median holds 1 item(s) of 4096x4096 px at once (at least 128 MB), above the 64 MB a request "
        "may hold (RASTER_API_MAX_OUTPUT_BYTES): ask for a smaller tilesize or fewer items (items_limit)"
    )
    assert wire.s3_requests() == []


def test_a_median_mosaic_within_its_item_budget_is_served(client: TestClient) -> None:
    response = _tile(client, "/collections/daac-a-west", params={"pixel_selection": "median"})
    assert response.status_code == 200, response.text
    values, mask = _pixels(response.content)
    _assert_half(values, mask, LEFT, BASES[DAAC_A_BUCKET])


def test_collection_tilejson(client: TestClient) -> None:
    response = client.get("/collections/own-east/WebMercatorQuad/tilejson.json", params={"assets": "data"})
    assert response.status_code == 200, response.text
    tilejson = response.json()
    assert "/collections/own-east/tiles/WebMercatorQuad/{z}/{x}/{y}" in tilejson["tiles"][0]
    assert tilejson["bounds"] == pytest.approx(list(EAST_BOUNDS))


def test_collection_declaring_a_provider_cannot_claim_another_providers_bucket(client: TestClient) -> None:
    response = _tile(client, "/collections/wrong-claim")
    assert response.status_code == 403, response.text
    detail = response.json()["detail"]
    assert "'own'" in detail and DAAC_A_BUCKET in detail


def test_item_asset_tile(client: TestClient, stac_catalog: dict[str, str]) -> None:
    item = stac_catalog["daac-b-east"]
    response = _tile(client, f"/collections/daac-b-east/items/{item}")
    assert response.status_code == 200, response.text
    values, mask = _pixels(response.content)
    _assert_half(values, mask, RIGHT, BASES[DAAC_B_BUCKET])


def test_item_tilejson(client: TestClient, stac_catalog: dict[str, str]) -> None:
    item = stac_catalog["daac-a-west"]
    response = client.get(
        f"/collections/daac-a-west/items/{item}/WebMercatorQuad/tilejson.json", params={"assets": "data"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["bounds"] == pytest.approx(list(WEST_BOUNDS))


def test_item_asset_refused_for_another_provider(client: TestClient, stac_catalog: dict[str, str]) -> None:
    item = stac_catalog["daac-a-west"]
    response = _tile(client, f"/collections/daac-a-west/items/{item}", params={"provider": "daac-b"})
    assert response.status_code == 403, response.text
    assert "'daac-b'" in response.json()["detail"] and DAAC_A_BUCKET in response.json()["detail"]


def test_unknown_search_is_404(client: TestClient) -> None:
    response = _tile(client, f"/searches/{'0' * 32}")
    assert response.status_code == 404
    assert "not found" in response.json()["detail"]


def test_unknown_item_is_404(client: TestClient) -> None:
    response = client.get("/collections/own-east/items/no-such-item/WebMercatorQuad/tilejson.json")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("path", "params", "words"),
    [
        ("/WebMercatorQuad/tilejson.json", {"assets": ""}, "empty asset name"),
        ("/tiles/WebMercatorQuad/1024/1/1.png", {"assets": "data"}, "does not exist"),
        ("/tiles/WebMercatorQuad/10/171/407.png", {"assets": "data", "scan_limit": "-5"}, "scan_limit"),
        ("/tiles/WebMercatorQuad/10/171/407.png", {"assets": "data", "time_limit": "-120"}, "time_limit"),
        (
            "/tiles/WebMercatorQuad/10/171/407.png",
            {"assets": "data", "algorithm": "hillshade", "algorithm_params": "null"},
            "JSON object",
        ),
    ],
)
def test_bad_mosaic_parameters_are_400_naming_the_parameter(
    client: TestClient, path: str, params: dict[str, str], words: str
) -> None:
    search_id = _register(client, ["own-east"])
    response = client.get(f"/searches/{search_id}{path}", params=params)
    assert response.status_code == 400, response.text
    assert words in response.json()["detail"]
    assert set(response.json()) == {"detail", "request_id"}


def test_item_info_with_band_options_is_400(client: TestClient, stac_catalog: dict[str, str]) -> None:
    item = stac_catalog["own-east"]
    response = client.get(f"/collections/own-east/items/{item}/info", params={"assets": "data|bidx=1"})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "asset options (assets=name|...) are not supported on /info"


def test_mosaic_buffer_beyond_the_image_size_is_422_naming_it(client: TestClient) -> None:
    search_id = _register(client, ["own-east"])
    response = _tile(client, f"/searches/{search_id}", {"buffer": "1e308"})
    assert response.status_code == 422, response.text
    assert [error["loc"][1] for error in response.json()["detail"]] == ["buffer"]


def test_mosaic_feature_with_a_3d_bbox_is_400(client: TestClient) -> None:
    search_id = _register(client, ["own-east"])
    west, south, east, north = EAST_BOUNDS
    ring = [[west, south], [east, south], [east, north], [west, south]]
    geometry = {"type": "Polygon", "coordinates": [ring], "bbox": [west, south, 0, east, north, 0]}
    feature = {"type": "Feature", "properties": {}, "geometry": geometry}
    response = client.post(f"/searches/{search_id}/feature.png", params={"assets": "data"}, json=feature)
    assert response.status_code == 400, response.text


def test_item_with_an_empty_asset_name_is_400(client: TestClient, stac_catalog: dict[str, str]) -> None:
    response = client.get(f"/collections/own-east/items/{stac_catalog['own-east']}/info", params={"assets": ""})
    assert response.status_code == 400, response.text


def test_register_with_an_invalid_bbox_next_to_intersects_is_a_client_error(client: TestClient) -> None:
    point = {"type": "Point", "coordinates": [-119.5, 34.5]}
    response = client.post("/searches/register", json={"intersects": point, "bbox": [1, 2, 3]})
    assert response.status_code == 422, response.text


def test_register_with_bad_cql2_is_400(client: TestClient) -> None:
    response = client.post(
        "/searches/register",
        json={"collections": ["own-east"], "filter": {"op": "no-such-op", "args": []}, "filter-lang": "cql2-json"},
    )
    assert response.status_code == 400, response.text


def test_collection_tile_with_bad_cql2_text_is_400(client: TestClient) -> None:
    response = _tile(client, "/collections/own-east", params={"filter": "datetime >>>= 3"})
    assert response.status_code == 400, response.text
    assert "CQL2" in response.json()["detail"]


def test_collection_tile_with_a_query_that_is_not_json_is_400(client: TestClient) -> None:
    # Valid JSON as sent; titiler.pgstac URL-decodes it once more ("%22" becomes a quote) before parsing.
    response = _tile(client, "/collections/own-east", params={"query": '{"title": {"eq": "%22"}}'})
    assert response.status_code == 400, response.text
    assert "not valid JSON" in response.json()["detail"]


def test_search_list_shows_registered_searches(client: TestClient) -> None:
    search_id = _register(client, ["own-east", "daac-b-east"])
    response = client.get("/searches/", params={"limit": 100})
    assert response.status_code == 200
    assert search_id in [entry["search"]["hash"] for entry in response.json()["searches"]]


@pytest.mark.parametrize("path", ["/searches/", "/searches/list"])
def test_search_list_filter_with_a_percent_sign_is_400(client: TestClient, path: str) -> None:
    response = client.get(path, params={"name": "100%-done"})
    assert response.status_code == 400, response.text
    assert "may not contain '%'" in response.json()["detail"]


def test_search_list_filters_by_metadata(client: TestClient) -> None:
    response = client.post("/searches/register", json={"collections": ["own-east"], "metadata": {"name": "east-only"}})
    assert response.status_code == 200, response.text
    listed = client.get("/searches/", params={"name": "east-only"}).json()["searches"]
    assert [entry["search"]["hash"] for entry in listed] == [response.json()["id"]]


def test_mosaic_feature_is_read_at_a_bounded_size(client: TestClient) -> None:
    search_id = _register(client, ["own-east"])
    ring = [[-200.0, -80.0], [200.0, -80.0], [200.0, 80.0], [-200.0, -80.0]]
    feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    response = client.post(f"/searches/{search_id}/feature.png", params={"assets": "data"}, json=feature)
    assert response.status_code == 200, response.text
    values, _ = _pixels(response.content)
    assert max(values.shape) == 4096


def test_healthz_reports_pgstac_enabled_and_online(client: TestClient) -> None:
    body = client.get("/healthz").json()
    assert body["pgstac"] is True or body["pgstac"].get("enabled") is True


# -- configuration: no database, a Secrets Manager secret, an unreachable database, expired credentials ----------


def test_without_a_database_the_app_serves_cog_routes_only(api_env: dict[str, str], monkeypatch) -> None:
    from raster_api.main import create_app

    for name in ("DATABASE_URL", "PGSTAC_SECRET_ID", "PGHOST", "RASTER_API_PGSTAC_ENABLED"):
        monkeypatch.delenv(name, raising=False)
    with TestClient(create_app()) as plain:
        assert plain.get("/healthz").json()["pgstac"] is False
        assert plain.get("/searches/").status_code == 404
        assert plain.get("/cog/info", params={"url": f"s3://{OWN_BUCKET}/cogs/sample.tif"}).status_code == 200


def test_database_from_pgstac_secret_id(
    api_env: dict[str, str], monkeypatch, aws_world: AwsWorld, pgstac_db: PgstacDatabase, stac_catalog: dict[str, str]
) -> None:
    from raster_api.main import create_app

    aws_world.put_secret("raster/pgstac-db", pgstac_db.secret_value())
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("PGSTAC_SECRET_ID", "raster/pgstac-db")
    with TestClient(create_app()) as from_secret:
        response = _tile(from_secret, "/collections/own-east")
    assert response.status_code == 200, response.text
    values, mask = _pixels(response.content)
    _assert_half(values, mask, RIGHT, BASES[OWN_BUCKET])


def test_unreachable_database_is_503_without_connection_details(api_env: dict[str, str], monkeypatch) -> None:
    from local_stack.aws_world import free_port
    from raster_api.main import create_app

    password = "db-password-never-shown"
    monkeypatch.setenv("DATABASE_URL", f"postgresql://raster:{password}@127.0.0.1:{free_port()}/pgstac")
    monkeypatch.setenv("RASTER_API_PGSTAC_STARTUP_TIMEOUT", "0.5")
    monkeypatch.setenv("RASTER_API_PGSTAC_TIMEOUT", "0.5")
    with TestClient(create_app()) as down:
        response = _tile(down, f"/searches/{'1' * 32}")
    assert response.status_code == 503, response.text
    assert password not in response.text and "127.0.0.1" not in response.text


def test_expired_daac_credentials_fail_the_mosaic_with_503(
    api_env: dict[str, str],
    monkeypatch,
    aws_world: AwsWorld,
    daac_keys: dict[str, Keys],
    pgstac_db: PgstacDatabase,
    stac_catalog: dict[str, str],
) -> None:
    from raster_api.main import create_app

    expired = {**daac_keys["daac-a"].earthdata_json(), "expiration": "2020-01-01 00:00:00+00:00"}
    aws_world.put_secret("raster/providers/daac-a-expired", expired)
    config = providers_config(aws_world)
    for provider in config:
        if provider["name"] == "daac-a":
            provider["secret_id"] = "raster/providers/daac-a-expired"
    monkeypatch.setenv("PROVIDERS_CONFIG", json.dumps(config))
    monkeypatch.setenv("DATABASE_URL", pgstac_db.dsn)
    with TestClient(create_app()) as stale:
        search_id = _register(stale, ["daac-a-west", "own-east"])
        response = _tile(stale, f"/searches/{search_id}")
    assert response.status_code == 503, response.text
    assert "daac-a" in response.json()["detail"]
    for secret in daac_keys["daac-a"].secret_values():
        assert secret not in response.text


def test_asset_outside_s3_is_refused_not_read(client: TestClient, pgstac_db: PgstacDatabase, tmp_path) -> None:
    """An item pointing at a file on the API's own disk is a 400, never a read (assets are S3 objects only)."""
    local = tmp_path / "local.tif"
    local.write_bytes(make_cog(200, bounds=WEST_BOUNDS))
    load_collections(pgstac_db.dsn, [stac_collection("local-files", WEST_BOUNDS)])
    load_items(pgstac_db.dsn, [stac_item("local-files", "local-item", str(local), WEST_BOUNDS)])
    response = _tile(client, "/collections/local-files")
    assert response.status_code == 400, response.text
    assert "s3://" in response.json()["detail"]


def test_mosaic_picks_up_rotated_credentials_after_s3_refuses_the_cached_ones(
    api_env: dict[str, str],
    monkeypatch,
    aws_world: AwsWorld,
    daac_keys: dict[str, Keys],
    pgstac_db: PgstacDatabase,
) -> None:
    from raster_api.main import create_app

    # Its own object and secret, so GDAL's path-keyed cache and the shared provider secrets stay untouched.
    aws_world.put_object(DAAC_A_BUCKET, f"{PREFIX}/rotation.tif", make_cog(BASES[DAAC_A_BUCKET], bounds=WEST_BOUNDS))
    load_collections(pgstac_db.dsn, [stac_collection("daac-a-rotation", WEST_BOUNDS)])
    href = f"s3://{DAAC_A_BUCKET}/{PREFIX}/rotation.tif"
    load_items(pgstac_db.dsn, [stac_item("daac-a-rotation", "rotation-item", href, WEST_BOUNDS)])
    secret_id = "raster/providers/daac-a-rotating"
    aws_world.put_secret(secret_id, daac_keys["daac-b"].earthdata_json())  # valid keys, but not for daac-a's bucket
    config = providers_config(aws_world)
    for provider in config:
        if provider["name"] == "daac-a":
            provider["secret_id"] = secret_id
    monkeypatch.setenv("PROVIDERS_CONFIG", json.dumps(config))
    monkeypatch.setenv("DATABASE_URL", pgstac_db.dsn)
    monkeypatch.setenv("RASTER_API_CREDENTIALS_FORCED_REFRESH_INTERVAL", "0")
    with TestClient(create_app()) as rotating:
        refused = _tile(rotating, "/collections/daac-a-rotation")
        assert refused.status_code == 403, refused.text
        assert "daac-a" in refused.json()["detail"]
        aws_world.put_secret(secret_id, daac_keys["daac-a"].earthdata_json())  # the rotator writes good keys
        response = _tile(rotating, "/collections/daac-a-rotation")
    assert response.status_code == 200, response.text
    values, mask = _pixels(response.content)
    _assert_half(values, mask, LEFT, BASES[DAAC_A_BUCKET])


def test_pool_replaces_a_connection_dropped_while_frozen(client: TestClient, pgstac_db: PgstacDatabase) -> None:
    """A Lambda thaw finds its pooled connection dead (idle timeout, failover): the next request still works."""
    import psycopg

    assert client.get("/searches/").status_code == 200
    with psycopg.connect(pgstac_db.dsn, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'raster-api'"
        ).fetchone()
    assert killed is not None and killed[0] >= 1
    assert client.get("/searches/").status_code == 200


def _http_api_event(path: str) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) GET event, as Lambda hands it to Mangum."""
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "tiles.example.org"},
        "requestContext": {
            "domainName": "tiles.example.org",
            "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1"},
            "stage": "$default",
            "requestId": "test",
        },
        "isBase64Encoded": False,
    }


def test_lambda_invocations_reuse_the_pool_opened_at_init(
    api_env: dict[str, str], monkeypatch, pgstac_db: PgstacDatabase
) -> None:
    """The Lambda handler runs no lifespan per invocation: the pool opened at init serves them all."""
    import importlib

    import raster_api.handler

    monkeypatch.setenv("DATABASE_URL", pgstac_db.dsn)
    module = importlib.reload(raster_api.handler)  # the app is built at import, after the env is set
    app, handler = module.app, module.handler
    pool = app.state.dbpool
    try:
        for _ in range(2):
            assert handler(_http_api_event("/searches/"), None)["statusCode"] == 200
        assert app.state.dbpool is pool and not pool.closed
    finally:
        app.state.pgstac.close()


@pytest.mark.parametrize(
    "href",
    [
        f"s3://{OWN_BUCKET}/../{DAAC_A_BUCKET}/{PREFIX}/west.tif",
        f"http://127.0.0.1:9/{DAAC_A_BUCKET}/%2e%2e/{OWN_BUCKET}/{PREFIX}/east.tif",
        # (pgstac cannot store a NUL; pystac turns these backslashes into slashes, and the result is refused)
        f"s3://{OWN_BUCKET}/{PREFIX}\\..\\..\\{DAAC_A_BUCKET}\\{PREFIX}\\west.tif",
    ],
)
def test_asset_href_climbing_into_another_bucket_is_400_and_reaches_no_bucket(
    client: TestClient, pgstac_db: PgstacDatabase, aws_world: AwsWorld, href: str
) -> None:
    collection = f"climb-{abs(hash(href))}"
    load_collections(pgstac_db.dsn, [stac_collection(collection, WEST_BOUNDS)])
    load_items(pgstac_db.dsn, [stac_item(collection, f"{collection}-item", href, WEST_BOUNDS)])
    wire = aws_world.recording
    wire.start()
    try:
        mosaic = _tile(client, f"/collections/{collection}")
        item = _tile(client, f"/collections/{collection}/items/{collection}-item")
        received = wire.s3_requests()
    finally:
        wire.stop()
    for response in (mosaic, item):
        assert response.status_code == 400, response.text
        # The item route gets the href through pystac, which turns backslashes into slashes: refused either way.
        shown = {repr(href), repr(href.replace(chr(92), "/"))}
        detail = response.json()["detail"]
        assert any(detail.startswith(f"url {form} is refused: ") for form in shown), detail
        assert detail.endswith(("key contains a '.' or '..' path segment", "key contains a backslash")), detail
    assert received == []


def test_mosaic_access_log_names_each_assets_provider_bucket_and_key(client: TestClient, caplog) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="raster_api.access")
    search_id = _register(client, ["daac-a-west", "own-east"])
    assert _tile(client, f"/searches/{search_id}").status_code == 200
    line = json.loads([r.getMessage() for r in caplog.records if r.name == "raster_api.access"][-1])
    assert sorted((r["provider"], r["bucket"], r["key"]) for r in line["reads"]) == [
        ("daac-a", DAAC_A_BUCKET, f"{PREFIX}/west.tif"),
        ("own", OWN_BUCKET, f"{PREFIX}/east.tif"),
    ]


@pytest.fixture(scope="module")
def restricted_client(
    aws_world: AwsWorld,
    lambda_keys: Keys,
    provider_secrets: dict[str, str],
    pgstac_db: PgstacDatabase,
    stac_catalog: dict[str, str],
    issuer,
) -> Iterator[TestClient]:
    """daac-b is readable by signed-in callers only; moto's Cognito is the issuer."""
    from raster_api.main import create_app

    providers = providers_config(aws_world)
    for provider in providers:
        if provider["name"] == "daac-b":
            provider["access"] = "authenticated"
    with pytest.MonkeyPatch.context() as mp:
        for key, value in _api_environ(aws_world, lambda_keys, {"DATABASE_URL": pgstac_db.dsn}).items():
            mp.setenv(key, value)
        mp.setenv("PROVIDERS_CONFIG", json.dumps(providers))
        for key, value in issuer.api_env().items():
            mp.setenv(key, value)
        with TestClient(create_app()) as test_client:
            yield test_client


def test_registering_a_search_needs_a_signed_in_caller(restricted_client: TestClient, issuer) -> None:
    anonymous = restricted_client.post("/searches/register", json={"collections": ["own-east"]})
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"] == "this route needs a signed-in caller: send a bearer token"
    signed_in = restricted_client.post(
        "/searches/register",
        json={"collections": ["own-east"]},
        headers={"Authorization": f"Bearer {issuer.id_token('visitor')}"},
    )
    assert signed_in.status_code == 200, signed_in.text


def test_a_restricted_providers_mosaic_assets_and_items_need_a_caller(
    restricted_client: TestClient, issuer, stac_catalog: dict[str, str]
) -> None:
    token = issuer.id_token("visitor")
    headers = {"Authorization": f"Bearer {token}"}
    search = restricted_client.post("/searches/register", json={"collections": ["daac-b-east"]}, headers=headers)
    prefixes = [f"/searches/{search.json()['id']}", f"/collections/daac-b-east/items/{stac_catalog['daac-b-east']}"]
    for prefix in prefixes:
        anonymous = _tile(restricted_client, prefix)
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.json()["detail"].startswith("provider 'daac-b' is restricted: sign in")
        signed_in = _tile(restricted_client, prefix, {"access_token": token})
        assert signed_in.status_code == 200, signed_in.text
        assert signed_in.headers["cache-control"] == "private, no-store"
    # Assets of public providers in the same deployment stay public and cacheable.
    public = _tile(restricted_client, "/collections/own-east")
    assert public.status_code == 200, public.text
    assert public.headers["cache-control"] == "public, max-age=3600, s-maxage=86400"


def _searches_naming(dsn: str, text: str) -> int:
    import psycopg

    with psycopg.connect(dsn) as connection:
        query = "SELECT count(*) FROM pgstac.searches WHERE search::text LIKE %s"
        return connection.execute(query, (f"%{text}%",)).fetchone()[0]


def test_an_anonymous_collection_search_writes_nothing_to_the_database(
    restricted_client: TestClient, issuer, pgstac_db: PgstacDatabase
) -> None:
    for value in range(5):
        anonymous = _tile(restricted_client, "/collections/own-east", params={"filter": f"id = 'anonymous-{value}'"})
        assert anonymous.status_code == 401
        assert anonymous.json()["detail"] == "this route needs a signed-in caller: send a bearer token"
    assert _searches_naming(pgstac_db.dsn, "anonymous-") == 0
    signed_in = _tile(
        restricted_client,
        "/collections/own-east",
        params={"filter": "id = 'own-east-item' OR id = 'signed-in-marker'"},
        headers={"Authorization": f"Bearer {issuer.id_token('visitor')}"},
    )
    assert signed_in.status_code == 200, signed_in.text
    assert _searches_naming(pgstac_db.dsn, "signed-in-marker") > 0  # titiler.pgstac registers it (its rows)
    assert _tile(restricted_client, "/collections/own-east").status_code == 200  # no search parameter: anyone


def test_an_items_assets_are_priced_together(client: TestClient, stac_catalog: dict[str, str], aws_world) -> None:
    """An item's assets are held until they are stacked: asking for the same asset many times adds up."""
    item = stac_catalog["daac-a-west"]
    path = f"/collections/daac-a-west/items/{item}/{TILE_PATH.replace('.png', '.npy')}"
    with aws_world.recording.capture() as wire:
        response = client.get(path, params=[("assets", "data")] * 8 + [("tilesize", "4096")])
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "the request holds 8 asset(s) of 4096x4096 px at once (at least 128 MB), above the 64 MB a request may hold "
        "(RASTER_API_MAX_OUTPUT_BYTES): ask for fewer assets or a smaller tilesize"
    )
    assert wire.s3_requests() == []


def test_the_mosaic_map_page_escapes_what_it_shows_in_its_popup(client: TestClient) -> None:
    """titiler.pgstac's map page puts an error's detail (which repeats the caller's parameters) into its popup as HTML;
    ours escapes it, like the COG and /md/ map pages."""
    search_id = _register(client, ["own-east"])
    page = client.get(f"/searches/{search_id}/WebMercatorQuad/map.html", params={"assets": "data"})
    assert page.status_code == 200, page.text
    assert "${esc(err.errorData.detail)}" in page.text and "${esc(bandNames[i])}" in page.text
    assert "${err.errorData.detail}" not in page.text
