"""What the `test_rotator_*` modules share: the Earthdata emulator with its test user, the provider secrets an
earlier rotation left, the rotator's identity and environment, and the leak check. Loaded as a pytest plugin by
`tests/conftest.py`, so the module-scoped fixtures are per module and no test module imports another.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from local_stack.aws_world import DAAC_A_BUCKET, DAAC_B_BUCKET, AwsWorld, Keys
from local_stack.earthdata_emulator import AuthMode, EarthdataEmulator, daac_minters

USERNAME = "rotator-test-user"
PASSWORD = "correct-horse-battery-staple-9f3a"
PRE_TOKEN = "pre-generated-edl-token-5c1e7b"
SECRET_IDS = {"daac-a": "raster/providers/rotator-test-a", "daac-b": "raster/providers/rotator-test-b"}
LOGIN_SECRET = "raster/earthdata-login-rotator-test"  # the rotator role may read raster/earthdata-login*
TOKEN_SECRET = "raster/earthdata-login-rotator-test-token"


class MintLog:
    """Wraps the DAAC minters and remembers every credential handed out (to scan output for leaks)."""

    def __init__(self, minters: dict[str, Callable[[], dict[str, Any]]]) -> None:
        self.minted: list[dict[str, Any]] = []
        self.minters = {daac: self._wrap(m) for daac, m in minters.items()}

    def _wrap(self, minter: Callable[[], dict[str, Any]]) -> Callable[[], dict[str, Any]]:
        def mint() -> dict[str, Any]:
            creds = minter()
            self.minted.append(creds)
            return creds

        return mint


@pytest.fixture(scope="module")
def mint_log(aws_world: AwsWorld) -> MintLog:
    return MintLog(daac_minters(aws_world))


@pytest.fixture(scope="module")
def edl(mint_log: MintLog) -> Iterator[EarthdataEmulator]:
    with EarthdataEmulator(
        users={USERNAME: PASSWORD}, tokens=[PRE_TOKEN], daacs=dict(mint_log.minters), hang_seconds=4.0
    ) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def good_secrets(aws_world: AwsWorld) -> dict[str, dict[str, str]]:
    """A valid secret per provider, as left by an earlier rotation: what a failed rotation must leave in place."""
    return {
        "daac-a": aws_world.assume("daac-a-s3", session_name="earlier").earthdata_json(),
        "daac-b": aws_world.assume("daac-b-s3", session_name="earlier").earthdata_json(),
    }


@pytest.fixture(scope="module")
def rotator_keys(aws_world: AwsWorld) -> Keys:
    return aws_world.assume("rotator", session_name="rotator")


def providers_config(edl: EarthdataEmulator) -> list[dict[str, Any]]:
    return [
        {
            "name": name,
            "kind": "earthdata",
            "buckets": [bucket],
            "credentials_url": edl.credentials_url(name),
            "secret_id": SECRET_IDS[name],
        }
        for name, bucket in (("daac-a", DAAC_A_BUCKET), ("daac-b", DAAC_B_BUCKET))
    ] + [{"name": "own", "kind": "default", "buckets": ["own-data"]}]


@pytest.fixture
def rotator_env(
    monkeypatch: pytest.MonkeyPatch,
    aws_world: AwsWorld,
    edl: EarthdataEmulator,
    good_secrets: dict[str, dict[str, str]],
    rotator_keys: Keys,
) -> dict[str, str]:
    """A rotator process environment; provider secrets reset to `good_secrets`, emulator faults and counts cleared."""
    for name, secret_id in SECRET_IDS.items():
        aws_world.put_secret(secret_id, good_secrets[name])
    aws_world.put_secret(LOGIN_SECRET, {"username": USERNAME, "password": PASSWORD})
    aws_world.put_secret(TOKEN_SECRET, {"token": PRE_TOKEN})
    edl.clear_faults()
    for daac in ("daac-a", "daac-b"):
        edl.set_auth_mode(daac, AuthMode.BEARER_AND_REDIRECT)
    edl.reset_counts()
    for var in ("EARTHDATA_USERNAME", "EARTHDATA_PASSWORD", "EARTHDATA_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(var, raising=False)
    env = {
        **aws_world.endpoint_env(),
        **rotator_keys.env(),
        "PROVIDERS_CONFIG": json.dumps(providers_config(edl)),
        "EARTHDATA_URL": edl.base_url,
        "EARTHDATA_LOGIN_SECRET_ID": LOGIN_SECRET,
        "ROTATOR_CONNECT_TIMEOUT": "2",
        # A normal answer mints real moto STS credentials, which takes >0.5 s on a loaded CI machine; HANG stalls
        # 4 s, so it outlasts this read timeout whatever the load.
        "ROTATOR_READ_TIMEOUT": "2",
        "ROTATOR_RETRIES": "1",
        "ROTATOR_BACKOFF_SECONDS": "0.05",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def forbidden_texts(edl: EarthdataEmulator, mint_log: MintLog, good: dict[str, dict[str, str]]) -> list[str]:
    """Every secret value this module's world knows: none may appear in any output."""
    texts = [PASSWORD, PRE_TOKEN, *edl.issued_tokens]
    for creds in [*mint_log.minted, *good.values()]:
        texts += [creds.get(k, "") for k in ("accessKeyId", "secretAccessKey", "sessionToken")]
    return [t for t in texts if t]


def assert_no_secrets(text: str, edl: EarthdataEmulator, mint_log: MintLog, good: dict[str, dict[str, str]]) -> None:
    leaked = [t[:6] + "..." for t in forbidden_texts(edl, mint_log, good) if t in text]
    assert not leaked, f"secret values leaked into output: {leaked}"


class LambdaContext:
    """The one method of Lambda's context object the rotator uses."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms
