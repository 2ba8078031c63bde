"""`npx cdk synth` as ops run it (real CLI, real pip bundling, no Docker, no AWS), then each bundled Lambda asset
is imported by a clean interpreter that sees only the asset directory and the standard library.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.api_helpers import http_api_event
from tests.infra_helpers import dependency_cycle

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_PROVIDERS = REPO / "infrastructure" / "providers.example.yaml"
# Environment values CloudFormation fills in at deploy time, as a deployed function would see them.
DEPLOY_TIME_VALUES = {"RASTER_API_PUBLIC_URL": "https://d111111abcdef8.cloudfront.net"}

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(600),
    pytest.mark.skipif(not (REPO / "node_modules" / ".bin" / "cdk").exists(), reason="CDK CLI not installed (npm)"),
]


def cdk_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DEPLOY_", "CDK_"))}
    env.update(
        JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION="1",
        JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION="20",
        # Explicit account and AZs: nothing to look up, no credentials needed.
        DEPLOY_ACCOUNT="123456789012",
        DEPLOY_REGION="us-west-2",
        DEPLOY_AVAILABILITY_ZONES='["us-west-2a", "us-west-2b"]',
        DEPLOY_PROVIDERS_CONFIG=str(EXAMPLE_PROVIDERS),
        DEPLOY_EARTHDATA_LOGIN_SECRET="raster-tiler/earthdata-login",
        DEPLOY_ALARM_EMAIL="ops@example.org",
        DEPLOY_MD="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
    )
    return env


@pytest.fixture(scope="module")
def cloud_assembly(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cdk.out")
    npx = shutil.which("npx")
    assert npx, "node's npx is needed"
    result = subprocess.run(
        [npx, "cdk", "synth", "--no-lookups", "--quiet", "--no-notices", "--output", str(out)],
        cwd=REPO,
        env=cdk_env(),
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def synthesized_template(assembly: Path) -> dict[str, Any]:
    (template_file,) = assembly.glob("raster-tiler-*.template.json")
    template: dict[str, Any] = json.loads(template_file.read_text())
    return template


def lambda_assets(assembly: Path) -> dict[str, tuple[Path, dict[str, str]]]:
    """handler -> (asset directory, environment) for every Python Lambda in the synthesized template."""
    assets = {}
    for resource in synthesized_template(assembly)["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function" and str(props.get("Runtime", "")).startswith("python"):
            asset = props["Code"]["S3Key"].removesuffix(".zip")
            variables = props.get("Environment", {}).get("Variables", {})
            # A new deploy-time value fails here by name rather than reaching the handler as a CloudFormation dict.
            env = {k: v if isinstance(v, str) else DEPLOY_TIME_VALUES[k] for k, v in variables.items()}
            assets[props["Handler"]] = (assembly / f"asset.{asset}", env)
    return assets


def image_assets(assembly: Path) -> dict[str, tuple[Path, dict[str, str]]]:
    """command -> (image asset directory, environment) for every image Lambda in the synthesized template."""
    assets = {}
    for resource in synthesized_template(assembly)["Resources"].values():
        props = resource.get("Properties", {})
        if resource["Type"] == "AWS::Lambda::Function" and props.get("PackageType") == "Image":
            digest = json.dumps(props["Code"]["ImageUri"]).rsplit(":", 1)[-1].strip('"}]')
            variables = props.get("Environment", {}).get("Variables", {})
            env = {k: v if isinstance(v, str) else DEPLOY_TIME_VALUES[k] for k, v in variables.items()}
            asset = assembly / f"asset.{digest}"
            (command,) = re.findall(r'^CMD \["([^"]+)"\]$', (asset / "Dockerfile").read_text(), re.MULTILINE)
            assets[command] = (asset, env)
    return assets


def test_synthesized_template_has_no_dependency_cycle(cloud_assembly: Path) -> None:
    # The raster function names the distribution (RASTER_API_PUBLIC_URL), which names the API: a cycle would only
    # show at deploy, as CloudFormation's "Circular dependency between resources".
    template = synthesized_template(cloud_assembly)
    (raster,) = [
        r
        for r in template["Resources"].values()
        if r.get("Properties", {}).get("Handler") == "raster_api.handler.handler"
    ]
    (distribution_id,) = [k for k, r in template["Resources"].items() if r["Type"] == "AWS::CloudFront::Distribution"]
    assert raster["Properties"]["Environment"]["Variables"]["RASTER_API_PUBLIC_URL"] == {
        "Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution_id, "DomainName"]}]]
    }
    assert dependency_cycle(template) == []


def import_in_clean_interpreter(
    asset: Path, module: str, env: dict[str, str], events: list[dict[str, Any]] | None = None
) -> subprocess.CompletedProcess[str]:
    """`-I -S -B`: no site-packages, no user site, no PYTHONPATH, no bytecode written; only the asset is added.

    Each of `events` is then handed to the module's handler; stdout is the list of answers as JSON.
    """
    code = (
        "import sys, json, types; sys.path.insert(0, sys.argv[1]); import importlib; "
        "m = importlib.import_module(sys.argv[2]); assert callable(m.handler); "
        "ctx = types.SimpleNamespace(function_name='f', aws_request_id='r', get_remaining_time_in_millis=lambda: 9000); "
        "print(json.dumps([m.handler(e, ctx) for e in json.loads(sys.argv[3])]))"
    )
    clean_env = {
        "PATH": "/usr/bin:/bin",
        "AWS_REGION": "us-west-2",
        "AWS_DEFAULT_REGION": "us-west-2",
        "AWS_EC2_METADATA_DISABLED": "true",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        **env,
    }
    return subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code, str(asset), module, json.dumps(events or [])],
        cwd=asset,
        env=clean_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_synth_bundles_both_lambdas_without_docker(cloud_assembly: Path) -> None:
    assets = lambda_assets(cloud_assembly)
    assert set(assets) == {"raster_api.handler.handler", "credential_rotator.handler.handler"}
    for asset, _ in assets.values():
        assert asset.is_dir()
        assert not list(asset.rglob("__pycache__"))


def test_assets_ship_byte_code_in_place_of_python_source(cloud_assembly: Path) -> None:
    # Lambda's /var/task is read-only: source-only bundles would be compiled again on every cold start.
    for asset, _ in [*lambda_assets(cloud_assembly).values(), *image_assets(cloud_assembly).values()]:
        assert not list(asset.rglob("*.py"))
        assert (asset / "providers" / "models.pyc").is_file()


def test_rotator_asset_ships_no_titiler_or_gdal(cloud_assembly: Path) -> None:
    asset, _ = lambda_assets(cloud_assembly)["credential_rotator.handler.handler"]
    shipped = {p.name for p in asset.iterdir()}
    assert {"credential_rotator", "providers", "requests", "pydantic"} <= shipped
    assert not shipped & {"titiler", "rasterio", "rasterio.libs", "fastapi", "raster_api"}


def test_rotator_handler_imports_from_its_asset_alone(cloud_assembly: Path) -> None:
    asset, env = lambda_assets(cloud_assembly)["credential_rotator.handler.handler"]
    result = import_in_clean_interpreter(asset, "credential_rotator.handler", env)
    assert result.returncode == 0, result.stderr[-3000:]


def test_raster_handler_serves_from_its_asset_alone(cloud_assembly: Path) -> None:
    asset, env = lambda_assets(cloud_assembly)["raster_api.handler.handler"]
    env.pop("RASTER_API_ORIGIN_VERIFY_SECRET_ID")  # no Secrets Manager here (its check has its own tests)
    events = [http_api_event("/healthz", {}), http_api_event("/api", {})]  # /api: every route's schema
    result = import_in_clean_interpreter(asset, "raster_api.handler", env, events)
    assert result.returncode == 0, result.stderr[-3000:]
    healthz, openapi = json.loads(result.stdout.splitlines()[-1])
    assert (healthz["statusCode"], json.loads(healthz["body"])["status"]) == (200, "ok")
    assert openapi["statusCode"] == 200 and "/cog/tiles/{tileMatrixSetId}/{z}/{x}/{y}" in openapi["body"]


def test_md_image_is_the_bundle_over_lambdas_base_image_and_serves_md_alone(cloud_assembly: Path) -> None:
    """The md function's image: Lambda's Python 3.12 base image plus the locally built bundle (no Docker at synth);
    its handler answers from the bundle alone with the /md/ routes mounted."""
    (handler,) = image_assets(cloud_assembly)
    asset, env = image_assets(cloud_assembly)[handler]
    assert handler == "raster_api.handler.handler"
    assert (asset / "Dockerfile").read_text().splitlines()[:2] == [
        "FROM public.ecr.aws/lambda/python:3.12",
        "COPY . ${LAMBDA_TASK_ROOT}",
    ]
    assert {"titiler", "xarray", "h5py", "zarr", "obstore", "raster_api"} <= {p.name for p in asset.iterdir()}
    env.pop("RASTER_API_ORIGIN_VERIFY_SECRET_ID")  # no Secrets Manager here (its check has its own tests)
    events = [http_api_event("/healthz", {}), http_api_event("/api", {})]
    result = import_in_clean_interpreter(asset, "raster_api.handler", env, events)
    assert result.returncode == 0, result.stderr[-3000:]
    healthz, openapi = json.loads(result.stdout.splitlines()[-1])
    assert json.loads(healthz["body"]) == {"status": "ok", "cog": True, "pgstac": False, "md": True}
    assert "/md/tiles/{tileMatrixSetId}/{z}/{x}/{y}" in openapi["body"]
