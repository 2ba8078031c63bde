"""The built-in DAAC catalogue: `"daac": "PODAAC"` fills the endpoint, explicit fields win, an unknown name stops
start-up with the list of known names, and `Provider.distribution_origins` names the https hosts of a provider."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from credential_rotator.cli import main
from credential_rotator.handler import handler
from providers import ProvidersConfigError, load_providers
from providers.daacs import DAACS, known_daac_names, lookup_daac
from providers.models import parse_providers

KNOWN = "ASDC, ASF, GESDISC, GHRC, LAADS, LPDAAC, NSIDC, OBDAAC, ORNLDAAC, PODAAC"
EXAMPLE = Path(__file__).resolve().parents[1] / "infrastructure" / "providers.example.yaml"


def earthdata(**fields: object) -> dict[str, object]:
    return {"name": "p", "kind": "earthdata", "buckets": ["b-protected"], "secret_id": "raster/providers/p", **fields}


def test_podaac_resolves_to_the_catalogue_endpoint():
    (provider,) = parse_providers([earthdata(daac="PODAAC")])
    assert provider.daac == "PODAAC"
    assert provider.credentials_url == "https://archive.podaac.earthdata.nasa.gov/s3credentials"
    assert provider.distribution_origins == ("https://archive.podaac.earthdata.nasa.gov",)


@pytest.mark.parametrize("spelling", ["podaac", "PO.DAAC", "po-daac", "Po_Daac", "po daac", "POCLOUD"])
def test_daac_names_are_matched_case_insensitively_ignoring_punctuation(spelling):
    (provider,) = parse_providers([earthdata(daac=spelling)])
    assert provider.daac == "PODAAC"


def test_explicit_credentials_url_wins_and_its_origin_is_a_distribution_origin():
    (provider,) = parse_providers([earthdata(daac="lpdaac", credentials_url="http://127.0.0.1:8123/lp/s3credentials")])
    assert provider.credentials_url == "http://127.0.0.1:8123/lp/s3credentials"
    assert provider.distribution_origins == ("https://data.lpdaac.earthdatacloud.nasa.gov", "http://127.0.0.1:8123")


def test_provider_without_daac_has_its_credentials_url_origin_only():
    (provider,) = parse_providers([earthdata(credentials_url="https://EXAMPLE.org:443/s3credentials")])
    assert provider.distribution_origins == ("https://example.org",)


def test_a_daac_whose_paths_are_not_bucket_names_has_no_distribution_origin():
    (provider,) = parse_providers([earthdata(daac="GES DISC")])
    assert provider.credentials_url == "https://data.gesdisc.earthdata.nasa.gov/s3credentials"
    assert provider.distribution_origins == ()


def test_unknown_daac_fails_with_the_known_names():
    with pytest.raises(ProvidersConfigError) as err:
        parse_providers([earthdata(daac="XYZDAAC")])
    assert str(err.value) == (
        f"invalid PROVIDERS_CONFIG: provider 'p' field daac: Value error, unknown DAAC 'XYZDAAC'; known DAACs: {KNOWN}"
    )


def test_daac_on_another_kind_is_refused():
    with pytest.raises(ProvidersConfigError) as err:
        parse_providers([{"name": "own", "kind": "default", "buckets": ["x"], "daac": "LPDAAC"}])
    assert (
        str(err.value) == "invalid PROVIDERS_CONFIG: provider 'own': Value error, daac only applies to kind earthdata"
    )


def test_unknown_daac_stops_the_rotator_cli_at_start_up(monkeypatch, capsys):
    monkeypatch.setenv("PROVIDERS_CONFIG", json.dumps([earthdata(daac="nope")]))
    assert main(["--dry-run"]) == 2
    assert f"unknown DAAC 'nope'; known DAACs: {KNOWN}" in capsys.readouterr().err


def test_unknown_daac_fails_the_lambda_before_any_request(monkeypatch):
    monkeypatch.setenv("PROVIDERS_CONFIG", json.dumps([earthdata(daac="nope")]))
    with pytest.raises(ProvidersConfigError, match=f"known DAACs: {KNOWN}$"):
        handler({}, None)


def test_catalogue_covers_the_issue_daacs_with_s3credentials_endpoints():
    assert known_daac_names() == tuple(KNOWN.split(", "))
    for daac in DAACS:
        assert daac.credentials_url.startswith("https://") and daac.credentials_url.endswith("/s3credentials")
        assert lookup_daac(daac.cmr_provider) is daac


def test_example_providers_file_uses_the_catalogue():
    raw = yaml.safe_load(EXAMPLE.read_text())
    providers = load_providers(str(EXAMPLE))
    assert sum(1 for entry in raw if "daac" in entry) >= 3
    assert all("credentials_url" not in entry for entry in raw if "daac" in entry)
    for provider in providers:
        if provider.daac:
            assert set(provider.buckets) <= set(lookup_daac(provider.daac).buckets)
