"""Providers rotate concurrently, each with its own deadline taken from the Lambda's remaining time: a hanging DAAC
is reported `timeout` for itself alone while every answering DAAC's secret is rewritten in the same run, and the
Earthdata token is fetched once however many providers ask for it at the same time.

The defaults that matter are kept (10 s read timeout, 2 retries: ~33 s per hanging DAAC, more than the run has); the
HANG fault stalls 60 s, far past any deadline, so the outcome does not depend on the machine's speed. The runs have
21 s left (6 s of budget after the 15 s reserve): a hang costs its deadline in real time, so a short one keeps the
module fast while an answering DAAC (a login, one GET, one secret write) still finishes well within its share.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from credential_rotator.handler import RotationFailedError, handler
from local_stack.aws_world import AwsWorld, Keys
from local_stack.earthdata_emulator import EarthdataEmulator, Fault, daac_minters
from tests.rotator_support import LOGIN_SECRET, PASSWORD, USERNAME, LambdaContext, MintLog, assert_no_secrets

NAMES = ("daac-a", "daac-b", "daac-c", "daac-d")
SECRET_IDS = {name: f"raster/providers/rotator-concurrency-{name[-1]}" for name in NAMES}
ROLES = {"daac-a": "daac-a-s3", "daac-b": "daac-b-s3", "daac-c": "daac-a-s3", "daac-d": "daac-b-s3"}
BUCKETS = {"daac-a": "daac-a-protected", "daac-b": "daac-b-protected", "daac-c": "daac-c-data", "daac-d": "daac-d-data"}


@pytest.fixture(scope="module")
def mint_log(aws_world: AwsWorld) -> MintLog:
    return MintLog(daac_minters(aws_world, ROLES))


@pytest.fixture(scope="module")
def edl(mint_log: MintLog) -> Iterator[EarthdataEmulator]:
    with EarthdataEmulator(users={USERNAME: PASSWORD}, daacs=dict(mint_log.minters), hang_seconds=60.0) as emulator:
        yield emulator


@pytest.fixture(scope="module")
def good_secrets(aws_world: AwsWorld) -> dict[str, dict[str, str]]:
    return {name: aws_world.assume(ROLES[name], session_name="earlier").earthdata_json() for name in NAMES}


@pytest.fixture(scope="module")
def rotator_keys(aws_world: AwsWorld) -> Keys:
    return aws_world.assume("rotator", session_name="rotator")


@pytest.fixture
def env(
    monkeypatch: pytest.MonkeyPatch,
    aws_world: AwsWorld,
    edl: EarthdataEmulator,
    good_secrets: dict[str, dict[str, str]],
    rotator_keys: Keys,
) -> None:
    for name in NAMES:
        aws_world.put_secret(SECRET_IDS[name], good_secrets[name])
    aws_world.put_secret(LOGIN_SECRET, {"username": USERNAME, "password": PASSWORD})
    edl.clear_faults()
    edl.reset_counts()
    for var in ("EARTHDATA_USERNAME", "EARTHDATA_PASSWORD", "EARTHDATA_TOKEN", "AWS_PROFILE", "ROTATOR_CONCURRENCY"):
        monkeypatch.delenv(var, raising=False)
    providers = [
        {
            "name": name,
            "kind": "earthdata",
            "buckets": [BUCKETS[name]],
            "credentials_url": edl.credentials_url(name),
            "secret_id": SECRET_IDS[name],
        }
        for name in NAMES
    ]
    values = {
        **aws_world.endpoint_env(),
        **rotator_keys.env(),
        "PROVIDERS_CONFIG": json.dumps(providers),
        "EARTHDATA_URL": edl.base_url,
        "EARTHDATA_LOGIN_SECRET_ID": LOGIN_SECRET,
        "ROTATOR_BACKOFF_SECONDS": "0.05",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def hang_message(edl: EarthdataEmulator, name: str, share: str) -> str:
    return (
        f"{name} (timeout: DAAC s3credentials ({edl.credentials_url(name)}) did not answer within this provider's "
        f"{share} deadline (its share of the Lambda invocation's remaining time, less a 15 s reserve); retried next run)"
    )


def run_with_21_seconds_left(capsys: pytest.CaptureFixture[str]) -> tuple[str, list[dict[str, Any]], str]:
    with pytest.raises(RotationFailedError) as err:
        handler({"source": "aws.events"}, LambdaContext(remaining_ms=21_000))
    captured = capsys.readouterr()
    lines = [json.loads(line) for line in captured.out.splitlines() if line.strip()]
    return str(err.value), lines, captured.out + captured.err


def assert_rotated(aws_world: AwsWorld, good: dict[str, dict[str, str]], name: str) -> None:
    secret = aws_world.get_secret(SECRET_IDS[name])
    assert secret["provider"] == name
    assert secret["accessKeyId"] != good[name]["accessKeyId"]


def test_one_hanging_daac_with_21_s_left_costs_only_that_provider(env, capsys, aws_world, edl, mint_log, good_secrets):
    edl.set_fault(daac="daac-a", fault=Fault.HANG)  # first in the list: done one by one, it starved the others
    message, lines, output = run_with_21_seconds_left(capsys)
    assert message == "credential rotation failed for 1 provider(s): " + hang_message(edl, "daac-a", "6 s")
    assert aws_world.get_secret(SECRET_IDS["daac-a"]) == good_secrets["daac-a"]
    for name in ("daac-b", "daac-c", "daac-d"):
        assert_rotated(aws_world, good_secrets, name)
    metrics = {line["Provider"]: line for line in lines if "_aws" in line}
    assert {name: m["RotationSuccess"][0] for name, m in metrics.items()} == {
        "daac-a": 0,
        "daac-b": 1,
        "daac-c": 1,
        "daac-d": 1,
    }
    assert metrics["daac-a"]["SecondsUntilExpiry"][0] > 0  # the good secret left in place is still valid
    assert_no_secrets(message + output, edl, mint_log, good_secrets)


def test_three_of_four_hanging_daacs_with_21_s_left_fail_alone(env, capsys, aws_world, edl, good_secrets):
    for name in ("daac-a", "daac-b", "daac-c"):
        edl.set_fault(daac=name, fault=Fault.HANG)
    message, _, _ = run_with_21_seconds_left(capsys)
    assert message == "credential rotation failed for 3 provider(s): " + "; ".join(
        hang_message(edl, name, "6 s") for name in ("daac-a", "daac-b", "daac-c")
    )
    for name in ("daac-a", "daac-b", "daac-c"):
        assert aws_world.get_secret(SECRET_IDS[name]) == good_secrets[name]
    assert_rotated(aws_world, good_secrets, "daac-d")


def test_a_pool_smaller_than_the_providers_gives_each_wave_its_share(env, monkeypatch, capsys, aws_world, edl):
    # Two at once, four providers: two waves of 3 s each out of the 6 s budget. daac-a and daac-b hang in the
    # first wave; daac-c and daac-d still get their turn and rotate.
    monkeypatch.setenv("ROTATOR_CONCURRENCY", "2")
    edl.set_fault(daac="daac-a", fault=Fault.HANG)
    edl.set_fault(daac="daac-b", fault=Fault.HANG)
    message, _, _ = run_with_21_seconds_left(capsys)
    assert message == "credential rotation failed for 2 provider(s): " + "; ".join(
        hang_message(edl, name, "3 s") for name in ("daac-a", "daac-b")
    )
    for name in ("daac-c", "daac-d"):
        assert aws_world.get_secret(SECRET_IDS[name])["provider"] == name


def test_token_endpoint_is_called_once_by_four_concurrent_providers(env, edl):
    edl.set_latency(1.0)  # a slow token endpoint: all four providers ask for the token while it is being fetched
    result = handler({}, LambdaContext(remaining_ms=120_000))
    assert result == {"rotated": list(NAMES), "failed": {}}
    assert edl.count("token") == 1
    assert [edl.count(f"{name}/s3credentials") for name in NAMES] == [1, 1, 1, 1]
