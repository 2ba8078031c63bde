"""Typed, bounded inputs: each malformed parameter is a 4xx naming it, never a 500 (issue: parameters by construction)."""

import pytest

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
