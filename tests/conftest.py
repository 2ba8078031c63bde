"""Session fixtures shared by every test module: a moto server (IAM auth on) holding the world of
`local_stack.aws_world`, sample COGs in each bucket, and provider secrets holding real STS credentials.

Tests that need the raster API build it in their own fixtures *after* `api_env` has set the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest

from local_stack.aws_world import (
    DAAC_A_SECRET,
    DAAC_B_SECRET,
    AwsWorld,
    Keys,
    build_world,
    moto_server,
    providers_config,
    upload_samples,
)

# The rotator tests' fixtures (module-scoped: each module gets its own emulator and secrets).
pytest_plugins = ["tests.rotator_support"]

# Never let a test reach a real AWS account or a developer's profile.
for _var in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
    os.environ.pop(_var, None)
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
# Starlette's test client addresses `testserver`: a host the API serves in tests (links name it).
os.environ["RASTER_API_ALLOWED_HOSTS"] = "testserver,localhost,127.0.0.1,[::1]"


@pytest.fixture(scope="session")
def aws_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AwsWorld]:
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with moto_server(log_path=str(log)) as endpoint:
        world = build_world(endpoint)
        yield world


@pytest.fixture(scope="session")
def sample_urls(aws_world: AwsWorld) -> dict[str, str]:
    """bucket -> s3:// URL of that bucket's sample COG."""
    return upload_samples(aws_world)


@pytest.fixture(scope="session")
def daac_keys(aws_world: AwsWorld) -> dict[str, Keys]:
    """Real STS credentials for each DAAC role, as the DAAC's s3credentials endpoint would hand them out."""
    return {"daac-a": aws_world.assume("daac-a-s3"), "daac-b": aws_world.assume("daac-b-s3")}


@pytest.fixture(scope="session")
def provider_secrets(aws_world: AwsWorld, daac_keys: dict[str, Keys]) -> dict[str, str]:
    """Write each earthdata provider's secret the way the rotator does; returns provider -> secret id."""
    ids = {"daac-a": DAAC_A_SECRET, "daac-b": DAAC_B_SECRET}
    for name, secret_id in ids.items():
        aws_world.put_secret(secret_id, daac_keys[name].earthdata_json())
    return ids


@pytest.fixture(scope="session")
def issuer(aws_world: AwsWorld):
    """moto's Cognito user pool as the OIDC issuer, with one sample user per group and one in none."""
    from local_stack.cognito import create_issuer

    return create_issuer(aws_world)


@pytest.fixture(scope="session")
def lambda_keys(aws_world: AwsWorld) -> Keys:
    """The raster API's own identity: assumed-role credentials with a session token, as on Lambda."""
    return aws_world.assume("raster-lambda", session_name="raster-api")


@pytest.fixture
def api_env(
    monkeypatch: pytest.MonkeyPatch,
    aws_world: AwsWorld,
    lambda_keys: Keys,
    sample_urls: dict[str, str],
    provider_secrets: dict[str, str],
) -> dict[str, str]:
    """The environment of a raster API process in this world (set on os.environ for the test's duration)."""
    env = {
        **aws_world.endpoint_env(),
        **lambda_keys.env(),
        "PROVIDERS_CONFIG": json.dumps(providers_config(aws_world)),
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def api_app(api_env: dict[str, str]):
    """A raster API app built after `api_env` set the environment (fresh credential cache per test)."""
    from raster_api.main import create_app

    return create_app()


@pytest.fixture
def api_client(api_app):
    """An HTTP client on `api_app` (server errors come back as 500 responses, as on Lambda)."""
    from fastapi.testclient import TestClient

    with TestClient(api_app, raise_server_exceptions=False) as client:
        yield client


@pytest.fixture
def api_client_factory(api_env: dict[str, str]):
    """Build a raster API client when the test asks for it (after it changed the environment)."""
    from fastapi.testclient import TestClient

    from raster_api.main import create_app

    clients: list[TestClient] = []

    def build() -> TestClient:
        clients.append(TestClient(create_app(), raise_server_exceptions=False))
        return clients[-1]

    yield build
    for client in clients:
        client.close()


@pytest.fixture(scope="session")
def pgstac_db():
    """One real PostgreSQL + PostGIS, migrated with pypgstac, per test session (per worker under xdist)."""
    from local_stack.pgstac_db import pgstac_database, postgis_missing

    reason = postgis_missing()
    if reason:
        pytest.skip(f"pgstac tests need PostgreSQL with PostGIS: {reason}")
    with pgstac_database() as db:
        yield db


@pytest.fixture(scope="session", autouse=True)
def _botocore_secrets():
    """The credentials every botocore answer hands this process, for `recorder`'s leak check."""
    from tests.reliability_support import watch_botocore_secrets

    with watch_botocore_secrets():
        yield


@pytest.fixture
def recorder(lambda_keys: Keys, daac_keys: dict[str, Keys]):
    """Every response body and log line of the test's requests; when the test ends, none may contain a secret: the
    Lambda's keys, the DAACs' keys, the Earthdata password, or any secret value botocore handed this process at any
    time in the session (so an app a fixture built before the recorder started is covered too)."""
    from tests.reliability_support import EARTHDATA_PASSWORD, TrafficRecorder

    with TrafficRecorder().recording() as rec:
        yield rec
    secrets = [*lambda_keys.secret_values(), *(v for k in daac_keys.values() for v in k.secret_values())]
    assert rec.leaks([*secrets, EARTHDATA_PASSWORD]) == []


def _md_client(aws_world: AwsWorld, lambda_keys: Keys, **settings: str):
    """An app with the /md/ routes, shared by a module's tests (building one fetches every provider's credentials)."""
    from fastapi.testclient import TestClient

    from raster_api.main import create_app

    env = {
        **aws_world.endpoint_env(),
        **lambda_keys.env(),
        "PROVIDERS_CONFIG": json.dumps(providers_config(aws_world)),
        "RASTER_API_MD_ENABLED": "true",
        **settings,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        with TestClient(create_app(), raise_server_exceptions=False) as client:
            yield client


@pytest.fixture(scope="module")
def md_client(aws_world: AwsWorld, lambda_keys: Keys, sample_urls: dict[str, str], provider_secrets: dict[str, str]):
    yield from _md_client(aws_world, lambda_keys)


@pytest.fixture(scope="module")
def small_budget_md_client(
    aws_world: AwsWorld, lambda_keys: Keys, sample_urls: dict[str, str], provider_secrets: dict[str, str]
):
    """With a 1 MB source budget."""
    yield from _md_client(aws_world, lambda_keys, RASTER_API_MAX_SOURCE_BYTES=str(2**20))
