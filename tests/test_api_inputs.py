"""Typed, bounded inputs: each malformed parameter is a 4xx naming it, never a 500 (issue: parameters by construction)."""

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local_stack.aws_world import OWN_BUCKET
from tests.api_helpers import tile_path

DEEP_LIST = "[" * 5000 + "]" * 5000
DEEP_OBJECT = '{"a":' * 3000 + "1" + "}" * 3000


@pytest.mark.parametrize(
    ("params", "status", "detail"),
    [
        ({"colormap": '{"a":[1,2,3,4]}'}, 400, "colormap keys must be integer pixel values, not 'a'"),
        ({"colormap": "[1]"}, 400, "colormap[0] must be [[min, max], color]"),
        (
            {"colormap": '[[["a","b"],[1,2,3,4]]]'},
            400,
            "colormap[0]: the interval must be [min, max] numbers with min < max",
        ),
        ({"colormap": DEEP_LIST}, 400, "colormap is nested deeper than 4 levels"),
        ({"colormap": DEEP_OBJECT}, 400, "colormap is nested deeper than 4 levels"),
        (
            {"algorithm": "hillshade", "algorithm_params": DEEP_OBJECT},
            400,
            "algorithm_params is nested deeper than 4 levels",
        ),
        (
            {"algorithm": "grayscale"},
            400,
            "algorithm 'grayscale' needs 3 band(s), the image has 1: choose them with bidx or expression",
        ),
        ({"color_formula": "gamma r 0"}, 400, "color_formula: gamma argument 0 must be between 0.01 and 100.0"),
        (
            {"color_formula": "saturation 1e309"},
            400,
            "color_formula: saturation argument 1e309 must be between 0.0 and 100.0",
        ),
        (
            {"color_formula": "sigmoidal rgb 1000000 0.5"},
            400,
            "color_formula: sigmoidal argument 1000000 must be between 0.0 and 100.0",
        ),
        ({"rescale": "5,1"}, 400, "rescale='5.0,1.0': min must be below max"),
        ({"rescale": "0,inf"}, 400, "rescale='0.0,inf' must be 'min,max' (two finite numbers)"),
    ],
)
def test_malformed_tile_parameters_are_client_errors_naming_the_parameter(
    api_client, sample_urls, params, status, detail
):
    response = api_client.get(tile_path(), params={"url": sample_urls[OWN_BUCKET], **params})
    assert response.status_code == status, response.text
    assert response.json()["detail"] == detail


@pytest.mark.parametrize(
    ("params", "detail"),
    [
        ({"histogram_bins": "0"}, "histogram_bins must be between 1 and 10000"),
        ({"histogram_bins": "1,2,1"}, "histogram_bins edges must increase from left to right"),
        ({"histogram_range": "5,1"}, "histogram_range=5,1: min must be below max"),
    ],
)
def test_malformed_statistics_parameters_are_400_naming_the_parameter(api_client, sample_urls, params, detail):
    response = api_client.get("/cog/statistics", params={"url": sample_urls[OWN_BUCKET], **params})
    assert response.status_code == 400, response.text
    assert response.json()["detail"] == detail


@pytest.mark.parametrize(("name", "value"), [("p", "101"), ("max_size", "0"), ("width", "100000"), ("buffer", "5000")])
def test_out_of_bound_numbers_are_422_naming_the_parameter(api_client, sample_urls, name, value):
    path = "/cog/statistics" if name == "p" else "/cog/preview.png" if name != "buffer" else tile_path()
    response = api_client.get(path, params={"url": sample_urls[OWN_BUCKET], name: value})
    assert response.status_code == 422, response.text
    assert [error["loc"][1] for error in response.json()["detail"]] == [name]


def test_a_keep_alive_connection_survives_a_burst_of_malformed_requests(
    aws_world, sample_urls, provider_secrets, lambda_keys, tmp_path
):
    """Under uvicorn (real HTTP): no malformed request makes the app raise past ASGI, so the same connection
    answers every one of them with JSON and then serves a tile."""
    import http.client
    import json
    from urllib.parse import urlencode

    from local_stack.aws_world import free_port, providers_config
    from local_stack.processes import base_env, serving, uvicorn_argv

    env = {
        **base_env(),
        **aws_world.endpoint_env(),
        **lambda_keys.env(),
        "PROVIDERS_CONFIG": json.dumps(providers_config(aws_world)),
    }
    port = free_port()
    argv = uvicorn_argv(port, log_level="warning")
    with serving(argv, env, tmp_path / "api.log", f"http://127.0.0.1:{port}/healthz"):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        url = sample_urls[OWN_BUCKET]
        malformed = [
            {"colormap": DEEP_LIST},
            {"colormap": DEEP_OBJECT},
            {"algorithm": "hillshade", "algorithm_params": DEEP_OBJECT},
            {"color_formula": "gamma r 0"},
            {"algorithm": "grayscale"},
            {"colormap": "[1]"},
        ]
        for params in malformed * 3:
            connection.request("GET", f"{tile_path()}?{urlencode({'url': url, **params})}")
            response = connection.getresponse()
            body = json.loads(response.read())
            assert response.status == 400, body
            assert set(body) == {"detail", "request_id"}
        connection.request("GET", f"{tile_path()}?{urlencode({'url': url})}")
        response = connection.getresponse()
        assert response.status == 200
        assert response.read()[:8] == b"\x89PNG\r\n\x1a\n"
        connection.close()
    assert "Exception in ASGI application" not in (tmp_path / "api.log").read_text()


def test_no_handler_is_registered_for_a_built_in_exception(api_app):
    builtin = [exc for exc in api_app.exception_handlers if isinstance(exc, type) and exc.__module__ == "builtins"]
    assert builtin == []


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=5), children, max_size=5),
    max_leaves=30,
)


@settings(
    max_examples=int(os.environ.get("INPUTS_FUZZ_EXAMPLES", "300")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(["colormap", "algorithm_params"]),
    value=JSON_VALUES.map(lambda v: json.dumps(v)) | st.text(max_size=40),
    algorithm=st.sampled_from(["hillshade", "contours", "normalizedIndex", "terrarium", "grayscale", "cast"]),
)
def test_generated_json_parameters_are_answered_never_a_5xx(api_client, sample_urls, name, value, algorithm):
    params = {"url": sample_urls[OWN_BUCKET], name: value}
    if name == "algorithm_params":
        params["algorithm"] = algorithm
    response = api_client.get(tile_path(), params=params)
    assert response.status_code in (200, 400), (params, response.status_code, response.text)
    if response.status_code == 400:
        assert response.json()["detail"].startswith((name, f"invalid {name}", "algorithm ", f"{name} for")), (
            response.text
        )


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [("text/html;foo", "text/html"), ("application/json;q", "application/json"), ("*/*;x", "application/json")],
)
@pytest.mark.parametrize(
    "path", ["/colorMaps", "/algorithms", "/tileMatrixSets/WebMercatorQuad", "/cog/tiles/WebMercatorQuad"]
)
def test_a_malformed_accept_header_is_read_as_its_media_type(api_client, sample_urls, path, accept, media_type):
    """titiler parses `Accept` itself and fails on a parameter that is not name=value; the media type still counts."""
    response = api_client.get(path, params={"url": sample_urls[OWN_BUCKET]}, headers={"accept": accept})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].split(";")[0] == media_type
