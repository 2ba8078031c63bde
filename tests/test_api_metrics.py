"""Per-provider CloudWatch metrics in Embedded Metric Format, as the dashboard reads them."""

from __future__ import annotations

import json
import uuid

import pytest

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET
from local_stack.samples import make_cog
from providers import metrics as metric_names
from tests.api_helpers import private_secret_config, tile_path


def _emf_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


@pytest.fixture
def metrics_client(api_env, monkeypatch, api_client_factory):
    monkeypatch.setenv("RASTER_API_METRICS", "true")
    return api_client_factory()


def test_a_tile_counts_under_its_provider(metrics_client, sample_urls, capsys):
    capsys.readouterr()
    response = metrics_client.get(tile_path(), params={"url": sample_urls[DAAC_A_BUCKET]})
    assert response.status_code == 200
    [line] = _emf_lines(capsys.readouterr().out)
    directive = line["_aws"]["CloudWatchMetrics"]
    assert directive[0]["Namespace"] == "RasterTiler/RasterApi"
    assert directive[0]["Dimensions"] == [["Provider"]]
    assert [m["Name"] for m in directive[0]["Metrics"]] == [
        "Requests",
        "ClientErrors",
        "ServerErrors",
        "S3Refusals",
        "LatencyMs",
        "CredentialSecondsLeft",
    ]
    assert tuple(m["Name"] for m in directive[0]["Metrics"]) == metric_names.API_METRICS  # what the stack reads
    assert line["Provider"] == "daac-a"
    assert (line["Requests"], line["ClientErrors"], line["ServerErrors"], line["S3Refusals"]) == (
        [1.0],
        [0.0],
        [0.0],
        [0.0],
    )
    assert 0 < line["CredentialSecondsLeft"][0] <= 3600


def test_errors_and_refusals_are_counted(
    api_env, aws_world, daac_keys, monkeypatch, api_client_factory, sample_urls, capsys
):
    secret_id = f"raster/providers/metrics-{uuid.uuid4().hex[:8]}"
    aws_world.put_secret(secret_id, daac_keys["daac-b"].earthdata_json())  # keys S3 refuses on daac-a's bucket
    monkeypatch.setenv("PROVIDERS_CONFIG", private_secret_config(aws_world, secret_id))
    monkeypatch.setenv("RASTER_API_METRICS", "true")
    # An object GDAL has never read in this process: nothing of it is in GDAL's caches.
    key = f"metrics/{uuid.uuid4().hex}.tif"
    aws_world.put_object(DAAC_A_BUCKET, key, make_cog(20))
    client = api_client_factory()
    capsys.readouterr()
    refused = client.get(tile_path(), params={"url": f"s3://{DAAC_A_BUCKET}/{key}"})
    assert refused.status_code == 403
    missing = client.get(tile_path(), params={"url": f"s3://{OWN_BUCKET}/not/there.tif"})
    assert missing.status_code == 404
    lines = _emf_lines(capsys.readouterr().out)
    assert [(line["Provider"], line["ClientErrors"], line["S3Refusals"]) for line in lines] == [
        ("daac-a", [1.0], [1.0]),
        ("own", [1.0], [0.0]),
    ]


def test_metrics_are_off_unless_enabled(api_client, sample_urls, capsys):
    capsys.readouterr()
    assert api_client.get(tile_path(), params={"url": sample_urls[OWN_BUCKET]}).status_code == 200
    assert _emf_lines(capsys.readouterr().out) == []
