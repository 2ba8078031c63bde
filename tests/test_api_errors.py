"""Every way a request can fail answers with the right status and a message naming provider and object."""

import uuid
from urllib.parse import quote

import pytest

from local_stack.aws_world import DAAC_A_BUCKET, DAAC_B_BUCKET, OWN_BUCKET, PARTNER_BUCKET, SAMPLE_KEYS
from local_stack.samples import make_cog
from tests.api_helpers import NOT_GEOTIFF_REASON, TILE_Z, assert_tile_from, decode_image, tile_path


def test_unknown_provider_is_400_listing_known_names(api_client, sample_urls):
    response = api_client.get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET], "provider": "nope"})
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "unknown provider 'nope'" in detail
    for name in ("daac-a", "daac-b", "own", "partner"):
        assert name in detail


@pytest.mark.parametrize(
    "url",
    [
        "https://example.com/data/cog.tif",
        "/etc/passwd",
        "/vsicurl/http://127.0.0.1:1/x.tif",
        "file:///etc/hosts",
        "s3://Not_A_Bucket/key.tif",
        "s3://own-data",
    ],
)
def test_urls_that_are_not_s3_objects_are_400(api_client, url):
    response = api_client.get("/cog/info", params={"url": url})
    assert response.status_code == 400
    assert response.json()["detail"]


def test_daac_distribution_url_is_read_as_its_s3_object(api_client):
    # The earthdata provider's credentials_url host is 127.0.0.1:9 in this world (see providers_config).
    url = f"http://127.0.0.1:9/{DAAC_A_BUCKET}/{SAMPLE_KEYS[DAAC_A_BUCKET]}"
    response = api_client.get(tile_path(), params={"url": url})
    assert response.status_code == 200, response.text
    assert_tile_from(response.content, DAAC_A_BUCKET)


def test_provider_not_serving_the_bucket_is_403_naming_both(api_client, sample_urls):
    response = api_client.get(tile_path(), params={"url": sample_urls[PARTNER_BUCKET], "provider": "daac-a"})
    assert response.status_code == 403
    assert response.json()["detail"] == f"provider 'daac-a' does not serve bucket '{PARTNER_BUCKET}'"


def test_bucket_owned_by_no_provider_is_403(api_client):
    response = api_client.get(tile_path(), params={"url": "s3://somebody-elses-bucket/cog.tif"})
    assert response.status_code == 403
    assert response.json()["detail"] == "bucket 'somebody-elses-bucket' is not served by any provider"


def test_default_provider_never_reads_an_earthdata_bucket(api_client, sample_urls):
    response = api_client.get(tile_path(), params={"url": sample_urls[DAAC_B_BUCKET], "provider": "own"})
    assert response.status_code == 403
    assert "'own' does not serve bucket 'daac-b-protected'" in response.json()["detail"]


def test_missing_object_is_404_naming_provider_and_object(api_client):
    url = f"s3://{DAAC_A_BUCKET}/HLSL30.020/missing/missing.B04.tif"
    response = api_client.get(tile_path(), params={"url": url})
    assert response.status_code == 404
    assert response.json()["detail"] == f"{url} not found for provider 'daac-a'"


def test_tile_outside_the_dataset_is_404(api_client, sample_urls):
    response = api_client.get(tile_path(TILE_Z, 0, 0), params={"url": sample_urls[OWN_BUCKET]})
    assert response.status_code == 404
    assert "outside" in response.json()["detail"]


# Each bad input with its exact answer: a 400 naming the parameter (detail), or FastAPI's 422 naming it (the
# parameters whose validation failed).
BAD_INPUTS = [
    ("/cog/tiles/NoSuchTMS/10/171/407.png", {}, 422, ["tileMatrixSetId"]),
    (
        "/cog/tiles/WebMercatorQuad/99/171/407.png",
        {},
        400,
        "tile 99/171/407 does not exist in tile matrix set WebMercatorQuad",
    ),
    (
        "/cog/tiles/WebMercatorQuad/10/-1/407.png",
        {},
        400,
        "tile 10/-1/407 does not exist in tile matrix set WebMercatorQuad",
    ),
    (
        "/cog/tiles/WGS1984Quad/1024/1024/1024.png",
        {},
        400,
        "tile 1024/1024/1024 does not exist in tile matrix set WGS1984Quad",
    ),
    ("/cog/tiles/WebMercatorQuad/10/171/407.gif", {}, 422, ["format"]),
    (
        "/cog/tiles/WebMercatorQuad/10/171/407.png",
        {"bidx": "7"},
        400,
        "band(s) 7 of s3://own-data/cogs/sample.tif do not exist: it has 1 band(s)",
    ),
    (
        "/cog/tiles/WebMercatorQuad/10/171/407.png",
        {"expression": "b1+"},
        400,
        "expression: 'b1+' is not a valid expression",
    ),
    ("/cog/tiles/WebMercatorQuad/10/171/407.png", {"rescale": "a,b"}, 422, ["rescale"]),
    ("/cog/tiles/WebMercatorQuad/10/171/407.png", {"colormap_name": "no_such_map"}, 422, ["colormap_name"]),
    (
        "/cog/tiles/WebMercatorQuad/10/171/407.png",
        {"colormap": "{not json"},
        400,
        "colormap is not valid JSON: Expecting property name enclosed in double quotes at position 1",
    ),
    ("/cog/point/500,95", {}, 404, "Point is outside dataset bounds"),
    ("/cog/bbox/1,2,3.png", {}, 404, "Not Found"),
    ("/cog/preview.png", {"max_size": "big"}, 422, ["max_size"]),
    (
        "/cog/statistics",
        {"bidx": "0"},
        400,
        "band(s) 0 of s3://own-data/cogs/sample.tif do not exist: it has 1 band(s)",
    ),
    ("/cog/statistics", {"p": "200"}, 422, ["p"]),
    (
        "/cog/tiles/WebMercatorQuad/10/171/407.png",
        {"nodata": "nan"},
        400,
        "nodata=nan does not fit the data type uint8 of s3://own-data/cogs/sample.tif",
    ),
    ("/cog/bbox/10,10,-10,-10.png", {}, 400, "bbox 10.0,10.0,-10.0,-10.0 is empty: min must be below max on both axes"),
    (
        "/cog/preview.png",
        {"algorithm": "hillshade", "algorithm_params": "null"},
        400,
        "algorithm_params for 'hillshade' must be a JSON object",
    ),
    (
        "/cog/preview.png",
        {"algorithm": "hillshade", "algorithm_params": "[1, 2]"},
        400,
        "algorithm_params for 'hillshade' must be a JSON object",
    ),
    (
        "/cog/preview.png",
        {"algorithm": "hillshade", "algorithm_params": '{"azimuth": "north"}'},
        400,
        "invalid algorithm_params for 'hillshade': 1 validation error for HillShade",
    ),
    (
        "/cog/preview.png",
        {"algorithm": "hillshade", "algorithm_params": '{"output_dtype": "complex64", "azimuth": 90}'},
        400,
        "algorithm_params for 'hillshade': unknown parameter(s) 'output_dtype'; it takes angle_altitude, azimuth, "
        "buffer, z_exaggeration",
    ),
    (
        "/cog/tiles/WebMercatorQuad/10/171/407.png",
        {"algorithm": "terrainrgb", "algorithm_params": '{"interval": 1e-7}'},
        400,
        "algorithm 'terrainrgb' cannot be applied to this image with these algorithm_params: Data of 30000000.0 "
        "larger than 256 ** 3",
    ),
    (
        "/cog/tiles/WebMercatorQuad/10/171/407.png",
        {"algorithm": "hillshade", "algorithm_params": '{"buffer": 0}', "tilesize": "1"},
        400,
        "algorithm 'hillshade' cannot be applied to this image with these algorithm_params: Shape of array too small "
        "to calculate a numerical gradient, at least (edge_order + 1) elements are required.",
    ),
    (
        "/cog/preview.png",
        {"algorithm": "no-such-algorithm"},
        400,
        "unknown algorithm 'no-such-algorithm'; known: bitonal, cast, ceil, contours, floor, grayscale, hillshade, max, mean, median, min, normalizedIndex, slope, std, sum, terrainrgb, terrarium, var",
    ),
    ("/cog/preview.png", {"width": "-10"}, 422, ["width"]),
    ("/colorMaps/viridis", {"format": "png", "height": "-120"}, 400, "height=-120 must be between 1 and 4096 pixels"),
    ("/colorMaps/viridis", {"format": "png", "width": "0"}, 400, "width=0 must be between 1 and 4096 pixels"),
    ("/cog/statistics", {"histogram_range": "10,-5"}, 400, "histogram_range=10,-5: min must be below max"),
    (
        "/cog/point/-119.5,34.5",
        {"expression": "blocksize"},
        400,
        "expression: unknown name 'blocksize' (bands are b1, b2, ...)",
    ),
    (
        "/cog/preview.png",
        {"algorithm": "normalizedIndex", "bidx": "1"},
        400,
        "algorithm 'normalizedIndex' needs 2 band(s), the image has 1: choose them with bidx or expression",
    ),
    (
        "/cog/tiles/WebMercatorQuad",
        {"minzoom": "131891764528535", "maxzoom": "131891764528535"},
        400,
        "minzoom=131891764528535 must be between 0 and 30",
    ),
    (
        "/cog/bbox/-120.0,34.0,-119.0,34.0.tif",
        {},
        400,
        "bbox -120.0,34.0,-119.0,34.0 is empty: min must be below max on both axes",
    ),
    (
        "/cog/tiles/WebMercatorQuad/10/171/407.png",
        {"tilesize": "100000"},
        400,
        "tilesize=100000 must be between 1 and 4096 pixels",
    ),
    ("/cog/tiles/WebMercatorQuad/10/171/407.png", {"buffer": "50000"}, 422, ["buffer"]),
    ("/cog/preview.png", {"width": "100000", "height": "100000"}, 422, ["height", "width"]),
    ("/cog/preview/100000x100000.png", {}, 400, "width=100000 must be between 1 and 4096 pixels"),
    ("/cog/preview.png", {"max_size": "100000"}, 422, ["max_size"]),
    ("/cog/bbox/-119.9,34.1,-119.5,34.4/50000x50000.png", {}, 400, "width=50000 must be between 1 and 4096 pixels"),
    ("/cog/statistics", {"histogram_bins": "1000000000"}, 400, "histogram_bins must be between 1 and 10000"),
]


@pytest.mark.parametrize(("path", "params", "status", "expected"), BAD_INPUTS)
def test_bad_parameters_are_client_errors_naming_the_parameter(api_client, sample_urls, path, params, status, expected):
    response = api_client.get(path, params={"url": sample_urls[OWN_BUCKET], **params})
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    if status == 422:
        assert sorted(error["loc"][1] for error in detail) == sorted(expected)
    elif expected.startswith("invalid algorithm_params"):
        assert detail.startswith(expected)
    else:
        assert detail == expected


def test_large_area_is_read_at_a_bounded_size(api_client, sample_urls):
    # Full resolution of this bbox would be 204800 x 102400 pixels (20 GB); without width/height it is capped.
    response = api_client.get("/cog/bbox/-200,-100,200,100.png", params={"url": sample_urls[OWN_BUCKET]})
    assert response.status_code == 200
    band, _ = decode_image(response.content)
    assert max(band.shape) == 4096


def test_feature_that_is_not_a_polygon_is_400(api_client, sample_urls):
    line = {"type": "Feature", "properties": {}, "geometry": {"type": "Point", "coordinates": [-119.5, 34.5]}}
    response = api_client.post("/cog/feature.png", params={"url": sample_urls[OWN_BUCKET]}, json=line)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "the feature's geometry must be a Polygon or MultiPolygon, not Point"


@pytest.mark.parametrize(
    "ring",
    [
        [[-119.5, 34.5], [1e300, 34.5], [1e300, 1e300], [-119.5, 34.5]],
        [[-119.5, 34.5], [-119.4, 34.5], [-119.4, 1e308], [-119.5, 34.5]],
        [[-1e308, -1e308], [1e308, -1e308], [1e308, 1e308], [-1e308, -1e308]],
    ],
)
def test_feature_with_absurd_coordinates_is_400(api_client, sample_urls, ring):
    feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    for path in ("/cog/feature.png", "/cog/statistics"):
        response = api_client.post(path, params={"url": sample_urls[OWN_BUCKET]}, json=feature)
        assert response.status_code == 400, (path, response.status_code, response.text)
        assert response.json()["detail"] == "the requested area maps to no pixel of the dataset"


def test_feature_with_a_3d_geometry_bbox_is_400(api_client, sample_urls):
    ring = [[-119.6, 34.4], [-119.4, 34.4], [-119.4, 34.6], [-119.6, 34.4]]
    geometry = {"type": "Polygon", "coordinates": [ring], "bbox": [-119.6, 34.4, 0, -119.4, 34.6, 0]}
    feature = {"type": "Feature", "properties": {}, "geometry": geometry}
    for path in ("/cog/feature.png", "/cog/statistics"):
        response = api_client.post(path, params={"url": sample_urls[OWN_BUCKET]}, json=feature)
        assert response.status_code == 400, (path, response.status_code, response.text)
        assert "bbox of 6 numbers" in response.json()["detail"]


def test_feature_with_absurd_coordinates_and_a_width_is_400(api_client, sample_urls):
    ring = [[-1e308, -1e308], [1e308, -1e308], [1e308, 1e308], [-1e308, -1e308]]
    feature = {"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [ring]}}
    params = {"url": sample_urls[OWN_BUCKET], "width": "3600"}
    response = api_client.post("/cog/feature", params=params, json=feature)
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == "the requested area maps to no pixel of the dataset"


def test_response_larger_than_lambda_can_return_is_413_naming_the_limit(api_client, sample_urls):
    response = api_client.get("/cog/bbox/-120,34,-119,35/3000x3000.tif", params={"url": sample_urls[OWN_BUCKET]})
    assert response.status_code == 413
    assert "RASTER_API_MAX_RESPONSE_BYTES" in response.json()["detail"]
    assert response.json()["request_id"] == response.headers["x-request-id"]  # the same body as every error
    assert response.headers["cache-control"] == "public, max-age=30, s-maxage=30"
    small = api_client.get("/cog/bbox/-120,34,-119,35/300x300.tif", params={"url": sample_urls[OWN_BUCKET]})
    assert small.status_code == 200


def test_a_413_keeps_the_cors_headers_so_a_browser_can_read_it(api_env, monkeypatch, api_client_factory, sample_urls):
    monkeypatch.setenv("RASTER_API_CORS_ORIGINS", "https://maps.example.org")
    client = api_client_factory()
    response = client.get(
        "/cog/bbox/-120,34,-119,35/3000x3000.tif",
        params={"url": sample_urls[OWN_BUCKET]},
        headers={"Origin": "https://maps.example.org"},
    )
    assert response.status_code == 413
    assert response.headers["access-control-allow-origin"] == "https://maps.example.org"
    assert response.headers["access-control-expose-headers"] == "x-request-id"


def test_algorithm_params_that_are_not_an_object_name_the_algorithm(api_client, sample_urls):
    params = {"url": sample_urls[OWN_BUCKET], "algorithm": "hillshade", "algorithm_params": "null"}
    response = api_client.get("/cog/preview.png", params=params)
    assert response.status_code == 400
    assert response.json()["detail"] == "algorithm_params for 'hillshade' must be a JSON object"


def test_algorithm_output_that_cannot_be_rendered_is_400_and_rescale_renders_it(api_client, sample_urls):
    params = {"url": sample_urls[OWN_BUCKET], "algorithm": "sum"}
    response = api_client.get("/cog/preview.png", params=params)
    assert response.status_code == 400
    assert "add `rescale`" in response.json()["detail"]
    response = api_client.get("/cog/preview.png", params={**params, "rescale": "0,1000"})
    assert response.status_code == 200
    assert decode_image(response.content)[0].any()


def test_object_that_is_not_a_geotiff_is_400_saying_only_geotiff_is_served(api_client, aws_world):
    aws_world.put_object(OWN_BUCKET, "api-tests/notes.tif", b"these are meeting notes, not a GeoTIFF")
    response = api_client.get("/cog/info", params={"url": f"s3://{OWN_BUCKET}/api-tests/notes.tif"})
    assert response.status_code == 400
    assert (
        response.json()["detail"]
        == f"s3://{OWN_BUCKET}/api-tests/notes.tif (provider 'own') is not a GeoTIFF: " + NOT_GEOTIFF_REASON
    )


def test_a_missing_object_is_decided_by_its_own_answer_and_forces_no_refresh(api_client, aws_world):
    """GDAL follows the object's `NoSuchKey` with a listing probe, which moto refuses (it rejects that request's
    signature; real S3 refuses it to keys without s3:ListBucket): the object's own answer decides, 404."""
    url = f"s3://{DAAC_A_BUCKET}/HLSL30.020/missing/never-written.B04.tif"
    with aws_world.recording.capture() as wire:
        response = api_client.get(tile_path(), params={"url": url})
    assert response.status_code == 404
    assert response.json()["detail"] == f"{url} not found for provider 'daac-a'"
    key = "HLSL30.020/missing/never-written.B04.tif"
    assert [(r.service, r.method, r.url.split("/", 3)[3]) for r in wire.requests()] == [
        ("s3", "GET", f"{DAAC_A_BUCKET}/{key}"),  # GDAL: NoSuchKey
        ("s3", "GET", f"{DAAC_A_BUCKET}/?delimiter=%2F&max-keys=100&prefix={quote(key, safe='')}%2F"),  # its probe
        ("s3", "GET", f"{DAAC_A_BUCKET}/{key}"),  # the object's own answer: NoSuchKey
    ]  # and no Secrets Manager read: no forced refresh
    assert api_client.get("/providers/daac-a").json()["credentials"]["last_forced_refresh"] is None


@pytest.mark.parametrize("name", ["AccessDenied", "ExpiredToken", "NoSuchKey"])
def test_a_key_naming_an_s3_error_is_read_as_what_it_holds(api_client, aws_world, name):
    """GDAL's messages quote the path: a key's words are never taken for S3's answer."""
    key = f"api-tests/words/{name}.tif"
    aws_world.put_object(OWN_BUCKET, key, b"not a GeoTIFF at all")
    response = api_client.get("/cog/info", params={"url": f"s3://{OWN_BUCKET}/{key}"})
    assert response.status_code == 400
    assert (
        response.json()["detail"] == f"s3://{OWN_BUCKET}/{key} (provider 'own') is not a GeoTIFF: " + NOT_GEOTIFF_REASON
    )


def test_a_refusal_gdal_cached_for_another_identity_does_not_fail_the_owner(api_client, aws_world, daac_keys):
    """GDAL caches answers by path, not by keys: a 403 cached for another identity's read of the object is dropped
    once the object's own answer shows the owner's keys read it."""
    import rasterio
    from rasterio.session import AWSSession

    key = f"api-tests/cached-refusal/{uuid.uuid4().hex}.tif"
    aws_world.put_object(DAAC_B_BUCKET, key, make_cog(60))
    path = f"/vsis3/{DAAC_B_BUCKET}/{key}"
    stranger = daac_keys["daac-a"]
    session = AWSSession(
        aws_access_key_id=stranger.access_key_id,
        aws_secret_access_key=stranger.secret_access_key,
        aws_session_token=stranger.session_token,
    )
    with pytest.raises(rasterio.errors.RasterioIOError), rasterio.Env(session, **aws_world.gdal_env()):
        rasterio.open(path)  # GDAL now holds a 403 for this path
    response = api_client.get(tile_path(), params={"url": f"s3://{DAAC_B_BUCKET}/{key}"})
    assert response.status_code == 200, response.text
    assert_tile_from(response.content, DAAC_B_BUCKET)
