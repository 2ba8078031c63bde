"""The benchmark's local AWS: a moto child process with IAM auth, the sample COGs and fresh provider secrets.

It mirrors the test suite's fixtures (`tests/conftest.py`) so the benchmark measures the same system the tests
check, and adds the bigger quadrant COGs the mosaic benchmark needs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from local_stack.aws_world import (
    DAAC_A_BUCKET,
    DAAC_A_SECRET,
    DAAC_B_SECRET,
    OWN_BUCKET,
    AwsWorld,
    Keys,
    build_world,
    moto_server,
    providers_config,
    upload_samples,
)

# A process that must never reach a real AWS account or a developer's profile.
SAFE_ENV = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_PROFILE": None,
    "AWS_DEFAULT_PROFILE": None,
}

# Titiler's recommended GDAL settings for Lambda, given to the vanilla app so both sides read S3 the same way.
VANILLA_GDAL_ENV: dict[str, str | int] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIPLEX": "YES",
    "GDAL_HTTP_VERSION": "2",
    "GDAL_INGESTED_BYTES_AT_OPEN": "32768",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.TIF,.tiff",
    "GDAL_CACHEMAX": 200,  # rasterio hands this one to GDALSetCacheMax64: an int, not a string
    "CPL_VSIL_CURL_CACHE_SIZE": "200000000",
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": "5000000",
}

# The 4-asset mosaic: one COG per quadrant of the sample area, two quadrants per provider.
MOSAIC_BOUNDS = (-120.0, 34.0, -119.0, 35.0)
MOSAIC_QUADRANTS: dict[str, tuple[str, tuple[float, float, float, float], int]] = {
    "q-nw": (DAAC_A_BUCKET, (-120.0, 34.5, -119.5, 35.0), 20),
    "q-ne": (OWN_BUCKET, (-119.5, 34.5, -119.0, 35.0), 120),
    "q-sw": (OWN_BUCKET, (-120.0, 34.0, -119.5, 34.5), 130),
    "q-se": (DAAC_A_BUCKET, (-119.5, 34.0, -119.0, 34.5), 30),
}


@dataclass
class BenchWorld:
    """Handles the benchmarks need: the moto world, identities, sample URLs and a raster API environment."""

    world: AwsWorld
    sample_urls: dict[str, str]
    daac_keys: dict[str, Keys]
    lambda_keys: Keys
    mosaic_urls: dict[str, str] = field(default_factory=dict)

    def api_env(self, **extra: str) -> dict[str, str]:
        """The environment of a raster API process in this world (the same as tests' `api_env`)."""
        return {
            **self.world.endpoint_env(),
            **self.lambda_keys.env(),
            "PROVIDERS_CONFIG": json.dumps(providers_config(self.world)),
            **extra,
        }

    def vanilla_env(self) -> dict[str, str]:
        """A vanilla titiler process: the process identity in plain AWS_* variables (GDAL set: `bench.vanilla`)."""
        return {**self.world.endpoint_env(), **self.lambda_keys.env()}

    def rotate(self, provider: str) -> None:
        """Write fresh STS credentials into an earthdata provider's secret, as the rotator does."""
        role = {"daac-a": "daac-a-s3", "daac-b": "daac-b-s3"}[provider]
        secret = {"daac-a": DAAC_A_SECRET, "daac-b": DAAC_B_SECRET}[provider]
        self.daac_keys[provider] = self.world.assume(role)
        self.world.put_secret(secret, self.daac_keys[provider].earthdata_json())

    def secret_values(self) -> tuple[str, ...]:
        keys = [self.world.admin, self.lambda_keys, *self.daac_keys.values()]
        return tuple(v for k in keys for v in k.secret_values())


def _upload_mosaic(world: AwsWorld) -> dict[str, str]:
    from local_stack.samples import make_cog

    urls = {}
    for name, (bucket, bounds, base) in MOSAIC_QUADRANTS.items():
        key = f"mosaic/{name}.tif"
        world.put_object(bucket, key, make_cog(base, bounds=bounds))
        urls[name] = f"s3://{bucket}/{key}"
    return urls


@contextmanager
def bench_world(workdir: Path) -> Iterator[BenchWorld]:
    """Start moto (child process), build the world, upload samples, write provider secrets."""
    with moto_server(log_path=str(workdir / "moto.log")) as endpoint:
        world = build_world(endpoint)
        urls = upload_samples(world)
        bw = BenchWorld(
            world=world,
            sample_urls=urls,
            daac_keys={},
            lambda_keys=world.assume("raster-lambda", session_name="raster-api"),
        )
        bw.rotate("daac-a")
        bw.rotate("daac-b")
        bw.mosaic_urls = _upload_mosaic(world)
        yield bw
