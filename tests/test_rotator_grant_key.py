"""The tile-grant key: the rotator replaces it once it is older than its maximum age (AWSCURRENT becomes AWSPREVIOUS,
which the API still accepts), keeps it otherwise, and a failure is reported without failing the providers' run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from credential_rotator.grant_key import rotate_grant_key
from local_stack.aws_world import AwsWorld

SECRET = "raster/grant-key-rotator-test"


def _versions(aws_world: AwsWorld) -> dict[str, str]:
    sm = aws_world.client("secretsmanager")
    return {
        stage: sm.get_secret_value(SecretId=SECRET, VersionStage=stage)["SecretString"]
        for stage in ("AWSCURRENT", "AWSPREVIOUS")
        if any(stage in v["VersionStages"] for v in sm.list_secret_version_ids(SecretId=SECRET)["Versions"])
    }


def test_the_key_is_replaced_once_older_than_its_maximum_age(aws_world: AwsWorld, caplog) -> None:
    aws_world.put_secret(SECRET, "the-first-grant-key-of-at-least-32-characters")
    sm = aws_world.client("secretsmanager")
    week = timedelta(days=7)
    assert rotate_grant_key(sm, SECRET, week) == "kept"
    assert _versions(aws_world) == {"AWSCURRENT": "the-first-grant-key-of-at-least-32-characters"}
    eight_days_on = datetime.now(UTC) + timedelta(days=8)
    assert rotate_grant_key(sm, SECRET, week, now=lambda: eight_days_on) == "rotated"
    versions = _versions(aws_world)
    assert versions["AWSPREVIOUS"] == "the-first-grant-key-of-at-least-32-characters"
    assert len(versions["AWSCURRENT"]) == 48 and versions["AWSCURRENT"] != versions["AWSPREVIOUS"]
    assert versions["AWSCURRENT"] not in caplog.text


def test_a_missing_secret_is_reported_not_raised(aws_world: AwsWorld) -> None:
    assert (
        rotate_grant_key(aws_world.client("secretsmanager"), "raster/no-such-grant-key", timedelta(days=7)) == "failed"
    )
