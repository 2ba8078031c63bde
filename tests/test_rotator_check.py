"""`credential-rotator --check` and the `{"check": true}` event: one status per provider, nothing written."""

from __future__ import annotations

import json

import pytest

from credential_rotator.cli import main
from credential_rotator.handler import handler
from local_stack.aws_world import free_port
from local_stack.earthdata_emulator import Fault
from tests import rotator_support
from tests.rotator_support import LOGIN_SECRET, SECRET_IDS, USERNAME, LambdaContext, assert_no_secrets

EXPIRATION = "2099-01-01 00:00:00+00:00"


@pytest.fixture
def fixed_expiration(edl):
    """The DAACs hand out credentials expiring at EXPIRATION, so the report can be compared exactly."""
    originals = dict(edl.daacs)
    for name, mint in originals.items():
        edl.daacs[name] = lambda mint=mint: {**mint(), "expiration": EXPIRATION}
    yield
    edl.daacs.update(originals)


@pytest.fixture
def unchanged(aws_world, good_secrets):
    yield
    for name, secret_id in SECRET_IDS.items():
        assert aws_world.get_secret(secret_id) == good_secrets[name]


def ok_line(name: str) -> str:
    return f"{name}: ok: login OK; credentials valid until {EXPIRATION}"


def test_check_reports_valid_until_and_writes_nothing(rotator_env, fixed_expiration, unchanged, capsys, edl):
    assert main(["--check"]) == 0
    assert capsys.readouterr().out.splitlines() == [ok_line("daac-a"), ok_line("daac-b")]


def test_check_reports_a_daac_403_as_eula_not_accepted(rotator_env, fixed_expiration, unchanged, capsys, edl):
    edl.set_fault(daac="daac-a", fault=Fault.FORBIDDEN)
    assert main(["--check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"daac-a: eula_not_accepted: EULA not accepted: forbidden: DAAC s3credentials ({edl.credentials_url('daac-a')})"
        " refused access (HTTP 403): the user may not have accepted this DAAC's EULA or lacks access",
        ok_line("daac-b"),
    ]


def test_check_reports_an_endpoint_that_does_not_answer_as_unreachable(
    rotator_env, fixed_expiration, unchanged, monkeypatch, capsys, edl
):
    config = rotator_support.providers_config(edl)
    closed = f"http://127.0.0.1:{free_port()}/daac-a/s3credentials"
    config[0]["credentials_url"] = closed
    monkeypatch.setenv("PROVIDERS_CONFIG", json.dumps(config))
    assert main(["--check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"daac-a: unreachable: endpoint unreachable: unreachable: DAAC s3credentials ({closed}) could not be "
        "reached: ConnectionError (2 attempts)",
        ok_line("daac-b"),
    ]


def test_check_reports_a_refused_login(rotator_env, unchanged, aws_world, capsys, edl, mint_log, good_secrets):
    aws_world.put_secret(LOGIN_SECRET, {"username": USERNAME, "password": "wrong-password-7d2c"})
    assert main(["--check", "--provider", "daac-b"]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"daac-b: login_failed: login failed: unauthorized: Earthdata Login token endpoint ({edl.base_url}"
        "/api/users/find_or_create_token) refused the username/password (HTTP 401)"
    ]
    assert_no_secrets(out, edl, mint_log, good_secrets)


def test_check_event_returns_the_report_without_writing_or_failing(
    rotator_env, fixed_expiration, unchanged, capsys, edl
):
    edl.set_fault(daac="daac-b", fault=Fault.FORBIDDEN)
    result = handler({"check": True}, LambdaContext(remaining_ms=120_000))
    assert result["ok"] is False
    assert result["check"]["daac-a"] == {
        "status": "ok",
        "message": f"login OK; credentials valid until {EXPIRATION}",
        "valid_until": EXPIRATION,
    }
    assert result["check"]["daac-b"]["status"] == "eula_not_accepted"
    assert result["check"]["daac-b"]["valid_until"] is None
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert not [line for line in lines if "_aws" in line]  # a check emits no rotation metrics
    checks = {line["provider"]: line for line in lines if line.get("message") == "provider check"}
    assert (checks["daac-a"]["level"], checks["daac-b"]["level"]) == ("INFO", "ERROR")


def test_check_and_dry_run_are_exclusive(rotator_env, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--check", "--dry-run"])
    assert err.value.code == 2
