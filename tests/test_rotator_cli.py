"""The `credential-rotator` CLI ops use to test a login by hand, and the Lambda package's import diet."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from credential_rotator.cli import main
from local_stack.earthdata_emulator import Fault
from tests.rotator_support import SECRET_IDS, assert_no_secrets

HEAVY_MODULES = ("titiler", "fastapi", "starlette", "rasterio", "osgeo", "numpy", "rio_tiler", "local_stack")


def test_dry_run_prints_redacted_secrets_and_writes_nothing(
    rotator_env, capsys, aws_world, edl, mint_log, good_secrets
):
    assert main(["--dry-run"]) == 0
    captured = capsys.readouterr()
    assert "would write daac-a -> secret raster/providers/rotator-test-a" in captured.out
    assert '"secretAccessKey": "***redacted***"' in captured.out
    assert '"provider": "daac-b"' in captured.out
    for name, secret_id in SECRET_IDS.items():
        assert aws_world.get_secret(secret_id) == good_secrets[name]
    assert_no_secrets(captured.out + captured.err, edl, mint_log, good_secrets)


def test_provider_option_rotates_only_that_provider(rotator_env, capsys, aws_world, good_secrets):
    assert main(["--provider", "daac-b"]) == 0
    assert "rotated daac-b" in capsys.readouterr().out
    assert aws_world.get_secret(SECRET_IDS["daac-b"])["provider"] == "daac-b"
    assert aws_world.get_secret(SECRET_IDS["daac-a"]) == good_secrets["daac-a"]


def test_failure_exits_non_zero_and_names_the_fault(rotator_env, capsys, edl):
    edl.set_fault(daac="daac-a", fault=Fault.MALFORMED)
    assert main(["--dry-run"]) == 1
    out = capsys.readouterr().out
    assert "FAILED daac-a: malformed_json:" in out and "would write daac-b" in out


def test_console_script_dry_run_in_a_fresh_process(rotator_env, edl, mint_log, good_secrets):
    script = Path(sys.executable).with_name("credential-rotator")
    proc = subprocess.run(
        [str(script), "--dry-run", "--provider", "daac-a"],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "would write daac-a" in proc.stdout
    assert_no_secrets(proc.stdout + proc.stderr, edl, mint_log, good_secrets)


def test_rotator_imports_neither_titiler_nor_gdal_nor_numpy():
    code = (
        "import sys, credential_rotator.handler, credential_rotator.cli; "
        f"print(','.join(m for m in {HEAVY_MODULES!r} if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert proc.stdout.strip() == ""


def test_invalid_setting_exits_2_naming_the_variable(rotator_env, monkeypatch, capsys):
    monkeypatch.setenv("ROTATOR_RETRIES", "many")
    assert main([]) == 2
    assert "invalid setting(s): ROTATOR_RETRIES" in capsys.readouterr().err
