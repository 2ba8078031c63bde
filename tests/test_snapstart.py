"""SnapStart: the runtime hooks, called in order as Lambda calls them, with time moved on between snapshot and
restore: a DAAC's keys rotated by the rotator (and the old ones refused by S3), an assumed role's session gone, the
database connections killed. The first tile of each kind after the restore is a 200, read with the new keys (moto's
recorder tells which key signed each S3 request).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
import snapshot_restore_py
from mangum import Mangum

from local_stack.aws_world import DAAC_A_BUCKET, OWN_BUCKET, PARTNER_BUCKET, AwsWorld, Keys, providers_config
from local_stack.pgstac_db import PgstacDatabase, load_collections, load_items, stac_collection, stac_item
from local_stack.samples import DEFAULT_BOUNDS
from raster_api import snapstart
from tests.api_helpers import CONTEXT as LAMBDA_CONTEXT
from tests.api_helpers import assert_tile_from, http_api_event, tile_path

OLD_ROLE = "snapstart-daac-a-before"  # the keys in the DAAC secret when the snapshot was taken
SECRET = "raster/providers/snapstart-daac-a"
COLLECTION = "snapstart-daac-a"


@pytest.fixture
def hooks() -> Iterator[None]:
    """The runtime's hook registries, emptied around the test (they are process-wide)."""
    before, after = snapshot_restore_py.get_before_snapshot(), snapshot_restore_py.get_after_restore()
    saved = (list(before), list(after))
    before.clear()
    after.clear()
    yield
    before[:], after[:] = saved


@pytest.fixture
def old_daac_keys(aws_world: AwsWorld) -> Iterator[Keys]:
    """Keys of a role that may read DAAC A's bucket until the test deletes its policy (a rotated-away key)."""
    iam = aws_world.client("iam")
    trust = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    role = iam.create_role(
        RoleName=OLD_ROLE, AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]})
    )
    aws_world.role_arns[OLD_ROLE] = role["Role"]["Arn"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"], "Resource": "*"}],
    }
    iam.put_role_policy(RoleName=OLD_ROLE, PolicyName="read", PolicyDocument=json.dumps(policy))
    try:
        yield aws_world.assume(OLD_ROLE, session_name="before-snapshot")
    finally:
        for name in iam.list_role_policies(RoleName=OLD_ROLE)["PolicyNames"]:
            iam.delete_role_policy(RoleName=OLD_ROLE, PolicyName=name)
        iam.delete_role(RoleName=OLD_ROLE)


@pytest.fixture
def catalog(aws_world: AwsWorld, pgstac_db: PgstacDatabase, sample_urls: dict[str, str]) -> str:
    """One collection whose item is DAAC A's sample."""
    load_collections(pgstac_db.dsn, [stac_collection(COLLECTION, DEFAULT_BOUNDS)])
    load_items(pgstac_db.dsn, [stac_item(COLLECTION, f"{COLLECTION}-item", sample_urls[DAAC_A_BUCKET], DEFAULT_BOUNDS)])
    return COLLECTION


@pytest.fixture
def lambda_app(
    monkeypatch: pytest.MonkeyPatch,
    aws_world: AwsWorld,
    lambda_keys: Keys,
    old_daac_keys: Keys,
    pgstac_db: PgstacDatabase,
    catalog: str,
    hooks: None,
) -> Iterator[tuple[Any, Mangum]]:
    """The app as `raster_api.handler` builds it in Lambda's init phase: built, primed, hooks registered."""
    config = providers_config(aws_world)
    for provider in config:
        if provider["name"] == "daac-a":
            provider["secret_id"] = SECRET
    aws_world.put_secret(SECRET, old_daac_keys.earthdata_json())
    env = {
        **aws_world.endpoint_env(),
        **lambda_keys.env(),
        "PROVIDERS_CONFIG": json.dumps(config),
        "DATABASE_URL": pgstac_db.dsn,
        "RASTER_API_PGSTAC_ENABLED": "true",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "snap-start",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    from raster_api.handler import build

    app, handler = build()
    yield app, handler
    app.state.pgstac.close()


def _get(handler: Mangum, path: str, params: dict[str, str]) -> dict[str, Any]:
    return handler(http_api_event(path, params), LAMBDA_CONTEXT)


def _kill_connections(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'raster-api'"
        ).fetchall()
    return len(rows)


def test_after_a_restore_the_first_tiles_are_read_with_the_new_keys(
    lambda_app, aws_world, daac_keys, sample_urls, pgstac_db, old_daac_keys
):
    app, handler = lambda_app
    cache = app.state.provider_router.credential_cache
    before = {name: cache.get(name) for name in ("daac-a", "partner")}
    assert before["daac-a"].access_key_id == old_daac_keys.access_key_id

    for hook, args, kwargs in snapshot_restore_py.get_before_snapshot():
        hook(*args, **kwargs)
    assert [cache.health(name).available for name in ("daac-a", "partner")] == [False, False]  # nothing kept
    assert app.state.provider_router._sessions == {}  # nor a GDAL session holding the keys

    # Hours later: the rotator wrote new keys, the old ones are refused, the database dropped every connection.
    aws_world.put_secret(SECRET, daac_keys["daac-a"].earthdata_json())
    aws_world.client("iam").delete_role_policy(RoleName=OLD_ROLE, PolicyName="read")
    _kill_connections(pgstac_db.dsn)

    for hook, args, kwargs in snapshot_restore_py.get_after_restore():
        hook(*args, **kwargs)
    after = {name: cache.health(name) for name in ("daac-a", "partner")}
    assert all(h.available for h in after.values()), after

    with aws_world.recording.capture() as wire:
        daac = _get(handler, tile_path(), {"url": sample_urls[DAAC_A_BUCKET], "provider": "daac-a"})
        partner = _get(handler, tile_path(), {"url": sample_urls[PARTNER_BUCKET]})
        own = _get(handler, tile_path(), {"url": sample_urls[OWN_BUCKET]})
        mosaic = _get(handler, f"/collections/{COLLECTION}/{tile_path().removeprefix('/cog/')}", {"assets": "data"})
    for name, response in {"daac": daac, "partner": partner, "own": own, "mosaic": mosaic}.items():
        assert response["statusCode"] == 200, (name, response["body"][:300])
    for response, bucket in (
        (daac, DAAC_A_BUCKET),
        (partner, PARTNER_BUCKET),
        (own, OWN_BUCKET),
        (mosaic, DAAC_A_BUCKET),
    ):
        assert_tile_from(_body(response), bucket)

    signers = {}
    for request in wire.s3_requests():
        signers.setdefault(request.bucket_and_key[0], set()).add(request.access_key_id)
    new_partner = cache.get("partner").access_key_id
    assert signers[DAAC_A_BUCKET] == {daac_keys["daac-a"].access_key_id}  # never the keys of before the snapshot
    assert signers[PARTNER_BUCKET] == {new_partner} and new_partner != before["partner"].access_key_id


def _body(response: dict[str, Any]) -> bytes:
    import base64

    return base64.b64decode(response["body"]) if response.get("isBase64Encoded") else response["body"].encode()


def test_priming_sends_one_request_through_mangum_and_the_whole_middleware_stack(api_app, caplog):
    with caplog.at_level(logging.INFO, logger="raster_api.access"):
        snapstart.prime(Mangum(api_app, lifespan="off"))
    (record,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "raster_api.access"]
    assert (record["path"], record["status"]) == ("/healthz", 200)


def test_each_restored_sandbox_draws_its_own_random_numbers(api_app):
    snapshot = random.getstate(), np.random.get_state()  # noqa: NPY002 - the global generators are the point
    draws = []
    for _ in range(2):  # two sandboxes restored from the same snapshot
        random.setstate(snapshot[0])
        np.random.set_state(snapshot[1])  # noqa: NPY002
        snapstart.after_restore(api_app)
        draws.append((random.random(), np.random.random()))  # noqa: S311, NPY002
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]
