"""Every way Earthdata fails: the failing provider's good secret stays, the other provider is still rotated, the
invocation ends in an error naming the provider and the fault, and no secret value reaches the output."""

from __future__ import annotations

import json

import pytest

from credential_rotator.handler import RotationFailedError, handler
from local_stack.earthdata_emulator import AuthMode, Fault
from tests import rotator_support
from tests.rotator_support import LOGIN_SECRET, PRE_TOKEN, SECRET_IDS, USERNAME, LambdaContext, assert_no_secrets


def run_failing(capsys: pytest.CaptureFixture[str]) -> tuple[str, str]:
    """Run the handler, expect it to raise; returns (exception text, captured output)."""
    with pytest.raises(RotationFailedError) as err:
        handler({"source": "aws.events"}, None)
    captured = capsys.readouterr()
    return str(err.value), captured.out + captured.err


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        (Fault.SERVER_ERROR, "server_error"),
        (Fault.HANG, "timeout"),
        (Fault.HTML, "html_response"),
        (Fault.MALFORMED, "malformed_json"),
        (Fault.MISSING_KEY, "missing_key"),
        (Fault.UNAUTHORIZED, "unauthorized"),
        (Fault.FORBIDDEN, "forbidden"),
    ],
)
def test_daac_fault_keeps_good_secret_and_rotates_the_other(
    rotator_env, capsys, aws_world, edl, mint_log, good_secrets, fault, code
):
    edl.set_fault(daac="daac-a", fault=fault)
    message, output = run_failing(capsys)
    assert f"daac-a ({code}: " in message
    assert "daac-b" not in message
    assert aws_world.get_secret(SECRET_IDS["daac-a"]) == good_secrets["daac-a"]
    assert aws_world.get_secret(SECRET_IDS["daac-b"])["provider"] == "daac-b"
    assert_no_secrets(message + output, edl, mint_log, good_secrets)


def test_credentials_that_already_expired_are_not_written(rotator_env, capsys, aws_world, edl, good_secrets):
    original = edl.daacs["daac-a"]
    edl.daacs["daac-a"] = lambda: {**original(), "expiration": "2020-01-01 00:00:00+00:00"}
    try:
        message, _ = run_failing(capsys)
    finally:
        edl.daacs["daac-a"] = original
    assert "daac-a (expiring: " in message and "expired" in message
    assert aws_world.get_secret(SECRET_IDS["daac-a"]) == good_secrets["daac-a"]


def test_edl_maintenance_fails_every_provider_with_a_maintenance_message(
    rotator_env,
    capsys,
    aws_world,
    edl,
    mint_log,
    good_secrets,
):
    edl.set_fault(fault=Fault.MAINTENANCE)
    message, output = run_failing(capsys)
    assert "daac-a (edl_maintenance: " in message and "daac-b (edl_maintenance: " in message
    assert "maintenance window" in message
    for name, secret_id in SECRET_IDS.items():
        assert aws_world.get_secret(secret_id) == good_secrets[name]
    assert_no_secrets(message + output, edl, mint_log, good_secrets)


@pytest.mark.parametrize(
    ("fault", "code"),
    [(Fault.SERVER_ERROR, "server_error"), (Fault.HANG, "timeout"), (Fault.MALFORMED, "malformed_json")],
)
def test_edl_fault_fails_both_providers_and_writes_nothing(
    rotator_env,
    capsys,
    aws_world,
    edl,
    good_secrets,
    fault,
    code,
):
    edl.set_fault(fault=fault)
    message, _ = run_failing(capsys)
    assert f"daac-a ({code}: " in message and f"daac-b ({code}: " in message
    for name, secret_id in SECRET_IDS.items():
        assert aws_world.get_secret(secret_id) == good_secrets[name]


def test_wrong_password_at_token_endpoint_is_unauthorized_after_one_call(
    rotator_env,
    capsys,
    aws_world,
    edl,
    mint_log,
    good_secrets,
):
    wrong = "wrong-password-7d2c"
    aws_world.put_secret(LOGIN_SECRET, {"username": USERNAME, "password": wrong})
    message, output = run_failing(capsys)
    assert "daac-a (unauthorized: " in message and "refused the username/password" in message
    assert edl.count("token") == 1  # neither retried nor repeated per provider
    assert wrong not in message + output
    assert_no_secrets(message + output, edl, mint_log, good_secrets)


def test_wrong_password_at_oauth_authorize_reports_the_html_login_page(
    rotator_env,
    capsys,
    aws_world,
    edl,
    good_secrets,
):
    # A good token lets daac-b rotate by bearer; daac-a only does redirects, where EDL shows its login page (200).
    aws_world.put_secret(LOGIN_SECRET, {"username": USERNAME, "password": "wrong-password-7d2c", "token": PRE_TOKEN})
    edl.set_auth_mode("daac-a", AuthMode.REDIRECT_ONLY)
    message, _ = run_failing(capsys)
    assert "daac-a (edl_login_page: " in message and "HTML login page" in message
    assert aws_world.get_secret(SECRET_IDS["daac-a"]) == good_secrets["daac-a"]
    assert aws_world.get_secret(SECRET_IDS["daac-b"])["provider"] == "daac-b"


def test_failure_emits_failure_metric_with_the_current_secrets_remaining_life(rotator_env, capsys, edl):
    edl.set_fault(daac="daac-a", fault=Fault.SERVER_ERROR)
    _, output = run_failing(capsys)
    metrics = {line["Provider"]: line for line in map(json.loads, output.splitlines()) if "_aws" in line}
    assert metrics["daac-a"]["RotationFailure"] == [1.0] and metrics["daac-a"]["RotationSuccess"] == [0.0]
    assert metrics["daac-a"]["SecondsUntilExpiry"][0] > 0  # the good secret written earlier is still valid
    assert metrics["daac-b"]["RotationSuccess"] == [1.0]


def test_server_errors_are_retried_before_failing(rotator_env, capsys, edl):
    edl.set_fault(daac="daac-a", fault=Fault.SERVER_ERROR)
    run_failing(capsys)
    assert edl.count("daac-a/s3credentials") == 2  # ROTATOR_RETRIES=1


def test_unauthorized_token_call_is_not_retried(rotator_env, capsys, edl):
    edl.set_fault(fault=Fault.UNAUTHORIZED)
    message, _ = run_failing(capsys)
    assert "daac-a (unauthorized: " in message
    assert edl.count("token") == 1 and edl.count("authorize") == 0


def test_secret_write_refusal_fails_that_provider_only(rotator_env, monkeypatch, capsys, aws_world, edl):
    config = rotator_support.providers_config(edl)
    config[0]["secret_id"] = "raster/providers/rotator-test-does-not-exist"
    monkeypatch.setenv("PROVIDERS_CONFIG", json.dumps(config))
    message, _ = run_failing(capsys)
    assert "daac-a (secret_write: Secrets Manager refused PutSecretValue" in message
    assert aws_world.get_secret(SECRET_IDS["daac-b"])["provider"] == "daac-b"


def test_missing_login_fails_every_provider_with_a_configuration_message(rotator_env, monkeypatch, capsys, edl):
    monkeypatch.delenv("EARTHDATA_LOGIN_SECRET_ID")
    message, _ = run_failing(capsys)
    assert "daac-a (login_config: no Earthdata login configured" in message and "daac-b (login_config: " in message
    assert edl.count("token") == 0


def test_providers_left_when_lambda_time_runs_out_are_reported_not_cut_off(rotator_env, capsys, aws_world, edl):
    with pytest.raises(RotationFailedError) as err:
        handler({}, LambdaContext(remaining_ms=5_000))  # less than the safety margin: no provider may start
    assert "daac-a (time_budget: " in str(err.value) and "daac-b (time_budget: " in str(err.value)
    assert edl.count("daac-a/s3credentials") == 0
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    assert {m["Provider"] for m in metrics if m["RotationFailure"] == [1.0]} == {"daac-a", "daac-b"}


def test_lambda_context_with_time_left_rotates_normally(rotator_env, edl):
    assert handler({}, LambdaContext(remaining_ms=300_000))["rotated"] == ["daac-a", "daac-b"]


def test_edl_outage_is_probed_once_per_run_not_once_per_provider(rotator_env, capsys, edl):
    edl.set_fault(fault=Fault.MAINTENANCE)
    message, _ = run_failing(capsys)
    assert "daac-b (edl_maintenance: " in message and "not tried again" in message
    assert edl.count("token") == 2 and edl.count("authorize") == 2  # ROTATOR_RETRIES=1: two attempts each
