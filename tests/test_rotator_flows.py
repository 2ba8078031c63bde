"""The rotator against the Earthdata emulator and moto (IAM auth on), run as the `rotator` role: both login flows
work, the token is fetched once per run, and what it writes really opens the DAAC's bucket (and only that one).

The rotator fixtures (the emulator, secrets, the rotator's environment) are in `tests.rotator_support`.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import rasterio
import rasterio.cache
from rasterio.session import AWSSession

from credential_rotator.handler import RotationFailedError, handler
from local_stack.aws_world import DAAC_A_BUCKET, DAAC_B_BUCKET, SAMPLE_KEYS, AwsWorld
from local_stack.earthdata_emulator import AuthMode
from tests.rotator_support import PASSWORD, PRE_TOKEN, SECRET_IDS, TOKEN_SECRET, USERNAME, assert_no_secrets


def read_pixel(keys: dict[str, Any], bucket: str, world: AwsWorld) -> int:
    rasterio.cache.invalidate_all()  # GDAL caches by path, not identity: every read must really reach S3
    session = AWSSession(
        aws_access_key_id=keys["accessKeyId"],
        aws_secret_access_key=keys["secretAccessKey"],
        aws_session_token=keys["sessionToken"],
    )
    with rasterio.Env(session, GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR", **world.gdal_env()):
        with rasterio.open(f"/vsis3/{bucket}/{SAMPLE_KEYS[bucket]}") as src:
            return int(src.read(1, window=((0, 1), (0, 1)))[0, 0])


# -- tests ---------------------------------------------------------------------------------------------------------


def test_token_flow_rotates_every_earthdata_provider(rotator_env, aws_world, edl, good_secrets):
    result = handler({"source": "aws.events", "detail-type": "Scheduled Event"}, None)
    assert result == {"rotated": ["daac-a", "daac-b"], "failed": {}}
    for name, secret_id in SECRET_IDS.items():
        secret = aws_world.get_secret(secret_id)
        assert secret["provider"] == name
        assert secret["accessKeyId"] != good_secrets[name]["accessKeyId"]
        assert set(secret) >= {"accessKeyId", "secretAccessKey", "sessionToken", "expiration", "fetched_at"}
    assert edl.count("authorize") == 0


def test_one_token_call_per_run_shared_by_all_providers(rotator_env, edl):
    handler({}, None)
    assert edl.count("token") == 1
    assert edl.count("daac-a/s3credentials") == 1 and edl.count("daac-b/s3credentials") == 1


def test_written_credentials_read_their_daac_bucket_through_gdal(rotator_env, aws_world, sample_urls):
    handler({}, None)
    secret = aws_world.get_secret(SECRET_IDS["daac-a"])
    assert read_pixel(secret, DAAC_A_BUCKET, aws_world) == 10  # daac-a-protected's sample base value


def test_written_credentials_are_refused_on_the_other_daacs_bucket(rotator_env, aws_world, sample_urls):
    handler({}, None)
    secret = aws_world.get_secret(SECRET_IDS["daac-a"])
    with pytest.raises(rasterio.errors.RasterioIOError):
        read_pixel(secret, DAAC_B_BUCKET, aws_world)


def test_redirect_flow_rotates_a_daac_that_refuses_bearer_tokens(rotator_env, aws_world, edl, good_secrets):
    edl.set_auth_mode("daac-a", AuthMode.REDIRECT_ONLY)
    assert handler({}, None)["rotated"] == ["daac-a", "daac-b"]
    assert aws_world.get_secret(SECRET_IDS["daac-a"])["accessKeyId"] != good_secrets["daac-a"]["accessKeyId"]
    assert edl.count("authorize") == 1 and edl.count("daac-a/redirect") == 1


def test_password_goes_only_to_earthdata_login_endpoints(rotator_env, edl):
    edl.set_auth_mode("daac-a", AuthMode.REDIRECT_ONLY)
    handler({}, None)
    basic = {r.endpoint for r in edl.requests if r.auth_scheme == "Basic"}
    assert basic == {"token", "authorize"}


def test_redirect_flow_refuses_to_send_the_password_to_another_host(rotator_env, monkeypatch, edl):
    # EDL configured as http://localhost:PORT: the DAAC's redirect to http://127.0.0.1:PORT/oauth/authorize is
    # another origin, so the rotator follows it without the password and reports why.
    monkeypatch.setenv("EARTHDATA_URL", edl.base_url.replace("127.0.0.1", "localhost"))
    edl.set_auth_mode("daac-a", AuthMode.REDIRECT_ONLY)
    with pytest.raises(RotationFailedError, match=r"daac-a \(unexpected_response: .*not the Earthdata Login host"):
        handler({}, None)
    assert not [r for r in edl.requests if r.endpoint == "authorize" and r.auth_scheme == "Basic"]


def test_bearer_only_daac_is_rotated_with_the_token(rotator_env, edl):
    edl.set_auth_mode("daac-b", AuthMode.BEARER_ONLY)
    assert handler({}, None)["rotated"] == ["daac-a", "daac-b"]


def test_pre_generated_token_skips_the_token_call(rotator_env, monkeypatch, edl):
    monkeypatch.setenv("EARTHDATA_LOGIN_SECRET_ID", TOKEN_SECRET)
    assert handler({}, None)["rotated"] == ["daac-a", "daac-b"]
    assert edl.count("token") == 0


def test_token_from_environment_variable_without_secret(rotator_env, monkeypatch, edl):
    monkeypatch.delenv("EARTHDATA_LOGIN_SECRET_ID")
    monkeypatch.setenv("EARTHDATA_TOKEN", PRE_TOKEN)
    assert handler({}, None)["rotated"] == ["daac-a", "daac-b"]


def test_token_only_login_cannot_follow_a_redirect_only_daac(rotator_env, monkeypatch, edl, aws_world, good_secrets):
    monkeypatch.setenv("EARTHDATA_LOGIN_SECRET_ID", TOKEN_SECRET)
    edl.set_auth_mode("daac-a", AuthMode.REDIRECT_ONLY)
    with pytest.raises(RotationFailedError, match=r"daac-a \(unexpected_response: .*no Earthdata username/password"):
        handler({}, None)
    assert aws_world.get_secret(SECRET_IDS["daac-a"]) == good_secrets["daac-a"]


def test_event_with_provider_list_rotates_only_those(rotator_env, aws_world, good_secrets):
    assert handler({"providers": ["daac-b"]}, None) == {"rotated": ["daac-b"], "failed": {}}
    assert aws_world.get_secret(SECRET_IDS["daac-a"]) == good_secrets["daac-a"]


def test_unknown_provider_in_event_fails_by_name_after_rotating_the_others(rotator_env, aws_world, good_secrets):
    with pytest.raises(RotationFailedError, match=r"nope \(unknown_provider: no provider named 'nope'"):
        handler({"providers": ["nope", "daac-b"]}, None)
    assert aws_world.get_secret(SECRET_IDS["daac-b"])["provider"] == "daac-b"


def test_logs_are_json_lines_with_emf_metrics_per_provider(rotator_env, capsys):
    handler({}, None)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    metrics = {line["Provider"]: line for line in lines if "_aws" in line}
    assert set(metrics) == {"daac-a", "daac-b"}
    directive = metrics["daac-a"]["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "RasterTiler/CredentialRotator"
    assert directive["Dimensions"] == [["Provider"]]
    assert {m["Name"] for m in directive["Metrics"]} == {"RotationSuccess", "RotationFailure", "SecondsUntilExpiry"}
    assert metrics["daac-a"]["RotationSuccess"] == [1.0] and metrics["daac-a"]["RotationFailure"] == [0.0]
    assert 3000 < metrics["daac-a"]["SecondsUntilExpiry"][0] <= 3600
    assert any(line.get("message") == "rotated provider" and line.get("provider") == "daac-b" for line in lines)


def test_successful_run_prints_no_secret_values(rotator_env, capsys, edl, mint_log, good_secrets):
    edl.set_auth_mode("daac-a", AuthMode.REDIRECT_ONLY)
    handler({}, None)
    captured = capsys.readouterr()
    assert_no_secrets(captured.out + captured.err, edl, mint_log, good_secrets)


def test_a_netrc_login_is_never_added_to_daac_requests(rotator_env, monkeypatch, tmp_path, edl):
    # requests adds ~/.netrc logins by itself unless told otherwise; ops machines often have one for EDL.
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine 127.0.0.1 login {USERNAME} password {PASSWORD}\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    edl.set_auth_mode("daac-a", AuthMode.REDIRECT_ONLY)
    handler({}, None)
    assert {r.endpoint for r in edl.requests if r.auth_scheme == "Basic"} == {"token", "authorize"}
