"""The application around the tiles: endpoints, /providers, /healthz, headers, start-up validation, access log,
and no secret anywhere a user or an operator can see."""

import json
import logging

import pytest

from local_stack.aws_world import DAAC_A_BUCKET, DAAC_B_BUCKET, OWN_BUCKET, PARTNER_BUCKET, SAMPLE_BASES
from providers import ProvidersConfigError
from raster_api.main import create_app
from raster_api.middleware import redact_query
from tests.api_helpers import TILE_X, TILE_Y, TILE_Z, assert_image_from, tile_path

# A point in the sample's 3rd column band (columns 128..191): value base + 2.
LON, LAT = -120.0 + 150 / 512, 34.5
PARTNER_BASE = SAMPLE_BASES[PARTNER_BUCKET]


@pytest.mark.parametrize(
    ("path", "check"),
    [
        ("/cog/info", lambda r: r.json()["width"] == 512 and r.json()["nodata_value"] == 0),
        ("/cog/statistics", lambda r: (r.json()["b1"]["min"], r.json()["b1"]["max"]) == (160, 167)),
        (f"/cog/point/{LON},{LAT}", lambda r: r.json()["values"] == [162]),
        ("/cog/preview.png", lambda r: assert_image_from(r.content, PARTNER_BASE, "preview") is None),
        (
            "/cog/bbox/-119.9,34.1,-119.5,34.4.png",
            lambda r: assert_image_from(r.content, PARTNER_BASE, "part", (-119.9, 34.1, -119.5, 34.4)) is None,
        ),
        ("/cog/WebMercatorQuad/tilejson.json", lambda r: "provider=partner" in r.json()["tiles"][0]),
        ("/cog/WMTSCapabilities.xml", lambda r: b"provider=partner" in r.content.replace(b"&amp;", b"&")),
        ("/cog/WebMercatorQuad/map.html", lambda r: r.headers["content-type"].startswith("text/html")),
        ("/cog/validate", lambda r: r.json()["COG"] is True),
        ("/cog/tiles/WebMercatorQuad", lambda r: any("provider=partner" in x["href"] for x in r.json()["links"])),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_cog_endpoints_read_the_providers_dataset(api_client, sample_urls, path, check):
    response = api_client.get(path, params={"url": sample_urls[PARTNER_BUCKET], "provider": "partner"})
    assert response.status_code == 200, response.text
    assert check(response)


def test_feature_endpoint_reads_inside_the_shape(api_client, sample_urls):
    feature = {
        "type": "Feature",
        "properties": {},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[-119.9, 34.1], [-119.5, 34.1], [-119.5, 34.4], [-119.9, 34.4], [-119.9, 34.1]]],
        },
    }
    response = api_client.post("/cog/feature.png", params={"url": sample_urls[OWN_BUCKET]}, json=feature)
    assert response.status_code == 200, response.text
    assert_image_from(response.content, SAMPLE_BASES[OWN_BUCKET], "feature", feature)


@pytest.mark.parametrize("path", ["/tileMatrixSets", "/colorMaps", "/algorithms"])
def test_library_endpoints_are_mounted(api_client, path):
    assert api_client.get(path).status_code == 200


def test_healthz_reports_enabled_parts(api_client):
    response = api_client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "cog": True, "pgstac": False, "md": False}


def test_providers_lists_each_provider_with_credential_health(api_client):
    # Every provider's keys were fetched at start-up: real health before any read.
    providers = {p["name"]: p for p in api_client.get("/providers").json()}
    assert set(providers) == {"daac-a", "daac-b", "partner", "own"}
    daac_a = providers["daac-a"]
    assert (daac_a["kind"], daac_a["title"], daac_a["buckets"]) == ("earthdata", "DAAC A (Earthdata)", [DAAC_A_BUCKET])
    assert daac_a["credentials"]["available"] is True
    assert 3000 < daac_a["credentials"]["seconds_left"] <= 3600
    assert daac_a["credentials"]["last_error"] is None
    assert daac_a["credentials"]["last_refresh"] is not None
    assert daac_a["credentials"]["last_forced_refresh"] is None  # S3 never refused a read


def test_unknown_provider_detail_is_404(api_client):
    response = api_client.get("/providers/nope")
    assert response.status_code == 404
    assert response.json()["detail"] == "unknown provider 'nope'"


def test_invalid_providers_config_fails_start_up(api_env, monkeypatch):
    monkeypatch.setenv("PROVIDERS_CONFIG", json.dumps([{"name": "x", "kind": "earthdata", "buckets": ["b"]}]))
    with pytest.raises(ProvidersConfigError, match="provider 'x'.*earthdata provider needs credentials_url"):
        create_app()


def test_cors_wildcard_with_credentials_is_refused(api_env, monkeypatch):
    monkeypatch.setenv("RASTER_API_CORS_ORIGINS", "*")
    monkeypatch.setenv("RASTER_API_CORS_ALLOW_CREDENTIALS", "true")
    with pytest.raises(ValueError, match="may not contain '\\*'"):
        create_app()


def test_cors_allows_only_configured_origins(api_env, monkeypatch, api_client_factory):
    monkeypatch.setenv("RASTER_API_CORS_ORIGINS", "https://maps.example.org,https://viewer.example.org")
    client = api_client_factory()
    preflight = {"Access-Control-Request-Method": "GET"}
    allowed = client.options("/healthz", headers={"Origin": "https://maps.example.org", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://maps.example.org"
    refused = client.options("/healthz", headers={"Origin": "https://evil.example.com", **preflight})
    assert "access-control-allow-origin" not in refused.headers


def test_json_is_compressed_and_tiles_are_not(api_client, sample_urls):
    info = api_client.get("/cog/info", params={"url": sample_urls[OWN_BUCKET]}, headers={"Accept-Encoding": "gzip"})
    assert info.headers["content-encoding"] == "gzip"
    assert info.json()["width"] == 512
    tile = api_client.get(tile_path(), params={"url": sample_urls[OWN_BUCKET]}, headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in tile.headers


def test_access_log_line_says_who_read_what(api_client, sample_urls, caplog):
    caplog.set_level(logging.INFO, logger="raster_api.access")
    response = api_client.get(tile_path(), params={"url": sample_urls[DAAC_B_BUCKET]})
    assert response.status_code == 200
    (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.access"]
    assert line["request_id"] == response.headers["x-request-id"]
    assert line["route"] == "/cog/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format}"
    assert (line["provider"], line["bucket"], line["key"]) == ("daac-b", DAAC_B_BUCKET, "products/sample.tif")
    assert (line["status"], line["bytes"]) == (200, len(response.content))
    assert line["path"] == f"/cog/tiles/WebMercatorQuad/{TILE_Z}/{TILE_X}/{TILE_Y}.png"
    assert line["duration_ms"] > 0


def test_access_log_redacts_secret_query_values():
    query = "url=https://h/x.tif?X-Amz-Signature=abc&token=t0psecret&api_key=k3y&provider=own&bidx=1"
    assert redact_query(query) == (
        "url=https://h/x.tif?[REDACTED]&token=[REDACTED]&api_key=[REDACTED]&provider=own&bidx=1"
    )


def test_no_secret_in_any_response_or_log_line(
    api_app, api_client, sample_urls, daac_keys, lambda_keys, aws_world, caplog, capsys
):
    caplog.set_level(logging.DEBUG)  # everything any library logs, rasterio's debug output included
    bodies = []
    for bucket in (DAAC_A_BUCKET, DAAC_B_BUCKET, PARTNER_BUCKET, OWN_BUCKET):
        bodies.append(api_client.get(tile_path(), params={"url": sample_urls[bucket]}))
        bodies.append(api_client.get("/cog/info", params={"url": sample_urls[bucket]}))
    bodies.append(api_client.get(tile_path(), params={"url": f"s3://{DAAC_A_BUCKET}/nope.tif"}))  # 404
    bodies.append(api_client.get(tile_path(), params={"url": sample_urls[OWN_BUCKET], "provider": "daac-a"}))  # 403
    bodies.append(api_client.get(tile_path(), params={"url": sample_urls[OWN_BUCKET], "provider": "x"}))  # 400
    bodies.append(api_client.get("/providers"))
    for name in ("daac-a", "daac-b", "partner", "own"):
        bodies.append(api_client.get(f"/providers/{name}"))
    router = api_app.state.provider_router
    secrets = {
        *daac_keys["daac-a"].secret_values(),
        *daac_keys["daac-b"].secret_values(),
        *lambda_keys.secret_values(),
        *aws_world.admin.secret_values(),
        *router.credentials("partner").secret_values(),
    }
    captured = capsys.readouterr()
    seen = [caplog.text, captured.out, captured.err]
    seen += [r.text + json.dumps(dict(r.headers)) for r in bodies if not r.headers["content-type"].startswith("image")]
    seen += [r.content.decode("latin-1") for r in bodies if r.headers["content-type"].startswith("image")]
    for text in seen:
        for secret in secrets:
            assert secret not in text
    assert caplog.records, "the scan must have seen log lines"


def test_a_wmts_layer_is_named_by_the_canonical_object(api_client, sample_urls):
    response = api_client.get("/cog/WMTSCapabilities.xml", params={"url": sample_urls[OWN_BUCKET]})
    assert response.status_code == 200
    assert f"<ows:Title>{sample_urls[OWN_BUCKET]}_WebMercatorQuad_default</ows:Title>".encode() in response.content


@pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. "coroutine ... was never awaited"
@pytest.mark.parametrize("query", [{"rescale": "5,1"}, {"color_formula": "gamma r 0.0000001"}])
def test_a_wmts_document_whose_layer_query_is_invalid_is_400(api_client, sample_urls, query):
    """titiler validates the layer's query by building the parameter classes itself (`check_query_params`): the
    classes parsed on the event loop (`parsed_in_loop`) still refuse it there, so no document lists broken tiles."""
    response = api_client.get("/cog/WMTSCapabilities.xml", params={"url": sample_urls[OWN_BUCKET], **query})
    assert response.status_code == 400
    assert response.json()["detail"] == (
        "Could not find any valid layers in metadata or construct one from Query Parameters."
    )


def test_a_tile_hops_to_the_thread_pool_once_for_titilers_endpoint(api_client, sample_urls, monkeypatch):
    """titiler's parameter classes are parsed on the event loop (`raster_api.params.parsed_in_loop`); only the
    endpoint, which reads and renders, runs in the thread pool."""
    import anyio.to_thread

    hops: list[str] = []
    run_sync = anyio.to_thread.run_sync

    async def counted(func, *args, **kwargs):
        hops.append(getattr(func, "func", func).__name__)
        return await run_sync(func, *args, **kwargs)

    monkeypatch.setattr(anyio.to_thread, "run_sync", counted)
    response = api_client.get(tile_path(), params={"url": sample_urls[OWN_BUCKET]})
    assert response.status_code == 200
    assert hops == ["_run_sync_endpoint"]


def test_the_tile_route_takes_vanilla_titilers_query_parameters(api_app):
    """The parameter classes parsed on the event loop keep their query names (ours add `provider` and the credentials `grant` and `access_token`)."""
    from titiler.core.factory import TilerFactory

    def query_names(app, path: str) -> set[str]:
        operation = app.openapi()["paths"][path]["get"]
        return {p["name"] for p in operation["parameters"] if p["in"] == "query"}

    from fastapi import FastAPI

    vanilla = FastAPI()
    vanilla.include_router(TilerFactory(router_prefix="/cog").router, prefix="/cog")
    path = "/cog/tiles/{tileMatrixSetId}/{z}/{x}/{y}.{format}"
    assert query_names(api_app, path) - query_names(vanilla, path) == {"provider", "grant", "access_token"}
    assert query_names(vanilla, path) - query_names(api_app, path) == set()
