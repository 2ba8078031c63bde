"""A local AWS for tests, benchmarks and the local stack (a development tool, never deployed): moto in server mode on 127.0.0.1 with IAM authentication on.

Every identity the system uses is a real moto IAM principal whose identity policy grants exactly its buckets, so a
read with the wrong provider's keys really gets 403, from boto3 and from GDAL's `/vsis3/` alike.

Identities (each bucket is readable by exactly one of them):
- `admin` user: set-up only (creating buckets, secrets, objects); never used by the system under test.
- `raster-lambda` role: the raster API's own identity (the `default` provider); reads `own-data`, reads the
  provider secrets, may assume `partner-reader`.
- `daac-a-s3` / `daac-b-s3` roles: what an Earthdata DAAC hands out through `s3credentials`; each reads its bucket.
- `partner-reader` role: the `assume_role` provider's target; reads `partner-data`.
- `raster-download` role: assumed by `raster-lambda` to sign `own-data` downloads (one object per session).
- `rotator` role: the credential rotator; reads the Earthdata login secret, writes the provider secrets.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
import requests
from botocore.config import Config

from local_stack.processes import serving

REGION = "us-west-2"
ACCOUNT_ID = "123456789012"

DAAC_A_BUCKET = "daac-a-protected"
DAAC_B_BUCKET = "daac-b-protected"
OWN_BUCKET = "own-data"
PARTNER_BUCKET = "partner-data"
PUBLIC_BUCKET = "public-data"

PARTNER_EXTERNAL_ID = "partner-external-id"

DAAC_A_SECRET = "raster/providers/daac-a"
DAAC_B_SECRET = "raster/providers/daac-b"
EARTHDATA_LOGIN_SECRET = "raster/earthdata-login"


def _s3_read_policy(*buckets: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:GetObjectVersion"],
                "Resource": [f"arn:aws:s3:::{b}/*" for b in buckets],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
                "Resource": [f"arn:aws:s3:::{b}" for b in buckets],
            },
        ],
    }


def _assume_policy(external_id: str | None = None) -> str:
    # moto matches trust principals literally, so trust "*" and let identity policies decide who may assume.
    statement: dict[str, Any] = {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return json.dumps({"Version": "2012-10-17", "Statement": [statement]})


@dataclass(frozen=True)
class Keys:
    """A set of AWS credentials; `env()` renders them as the standard environment variables."""

    access_key_id: str
    secret_access_key: str
    session_token: str | None = None
    expiration: str | None = None

    def env(self) -> dict[str, str]:
        out = {"AWS_ACCESS_KEY_ID": self.access_key_id, "AWS_SECRET_ACCESS_KEY": self.secret_access_key}
        if self.session_token:
            out["AWS_SESSION_TOKEN"] = self.session_token
        return out

    def earthdata_json(self) -> dict[str, str]:
        """The shape a DAAC's s3credentials endpoint returns."""
        assert self.session_token and self.expiration
        return {
            "accessKeyId": self.access_key_id,
            "secretAccessKey": self.secret_access_key,
            "sessionToken": self.session_token,
            "expiration": self.expiration,
        }

    def secret_values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.secret_access_key, self.session_token) if v)


@dataclass
class AwsWorld:
    """Handles to the running moto server and the identities created in it."""

    endpoint: str  # http://127.0.0.1:PORT
    admin: Keys
    role_arns: dict[str, str] = field(default_factory=dict)

    @property
    def recording(self) -> WireRecording:
        return WireRecording(self.endpoint)

    @property
    def host_port(self) -> str:
        return self.endpoint.removeprefix("http://")

    def client(self, service: str, keys: Keys | None = None) -> Any:
        keys = keys or self.admin
        return boto3.client(
            service,
            region_name=REGION,
            endpoint_url=self.endpoint,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            aws_session_token=keys.session_token,
            config=Config(retries={"max_attempts": 1}),
        )

    def assume(self, role: str, duration: int = 3600, session_name: str = "test") -> Keys:
        """Real STS credentials for one of the world's roles (moto signs them; IAM auth enforces the policy)."""
        extra = {"ExternalId": PARTNER_EXTERNAL_ID} if role == "partner-reader" else {}
        creds = self.client("sts").assume_role(
            RoleArn=self.role_arns[role], RoleSessionName=session_name, DurationSeconds=duration, **extra
        )["Credentials"]
        return Keys(
            creds["AccessKeyId"],
            creds["SecretAccessKey"],
            creds["SessionToken"],
            creds["Expiration"].isoformat(sep=" ", timespec="seconds"),
        )

    def gdal_env(self) -> dict[str, str]:
        """GDAL's endpoint variables for this server."""
        return {"AWS_S3_ENDPOINT": self.host_port, "AWS_HTTPS": "NO", "AWS_VIRTUAL_HOSTING": "FALSE"}

    def endpoint_env(self) -> dict[str, str]:
        """Everything a process needs to talk to this server: boto3's and GDAL's endpoint variables."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            **self.gdal_env(),
        }

    def put_object(self, bucket: str, key: str, body: bytes) -> None:
        self.client("s3").put_object(Bucket=bucket, Key=key, Body=body)

    def put_rasters(self, bucket: str, prefix: str, rasters: Mapping[str, bytes]) -> dict[str, str]:
        """Put each raster at `<prefix>/<name>.tif`; returns name -> its s3:// URL."""
        urls = {}
        for name, body in rasters.items():
            key = f"{prefix}/{name}.tif"
            self.put_object(bucket, key, body)
            urls[name] = f"s3://{bucket}/{key}"
        return urls

    def put_secret(self, secret_id: str, value: Mapping[str, Any] | str) -> None:
        text = value if isinstance(value, str) else json.dumps(value)
        sm = self.client("secretsmanager")
        try:
            sm.put_secret_value(SecretId=secret_id, SecretString=text)
        except sm.exceptions.ResourceNotFoundException:
            sm.create_secret(Name=secret_id, SecretString=text)

    def get_secret(self, secret_id: str) -> dict[str, Any]:
        return json.loads(self.client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])


ROLE_POLICIES: dict[str, dict[str, Any]] = {
    "daac-a-s3": _s3_read_policy(DAAC_A_BUCKET),
    "daac-b-s3": _s3_read_policy(DAAC_B_BUCKET),
    "partner-reader": _s3_read_policy(PARTNER_BUCKET),
    "raster-lambda": {
        "Version": "2012-10-17",
        "Statement": [
            *_s3_read_policy(OWN_BUCKET, PUBLIC_BUCKET)["Statement"],
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue", "secretsmanager:DescribeSecret"],
                # moto checks Secrets Manager actions against Resource "*" only (it cannot scope by secret ARN).
                "Resource": [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:raster/providers/*", "*"],
            },
            {
                "Effect": "Allow",
                "Action": "sts:AssumeRole",
                "Resource": [
                    f"arn:aws:iam::{ACCOUNT_ID}:role/partner-reader",
                    f"arn:aws:iam::{ACCOUNT_ID}:role/raster-download",
                ],
            },
        ],
    },
    # What downloads of the `default` provider are signed with, each session narrowed to one object.
    "raster-download": {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{OWN_BUCKET}/*"}],
    },
    "rotator": {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": ["secretsmanager:GetSecretValue"],
                # moto checks Secrets Manager actions against Resource "*" only (it cannot scope by secret ARN).
                "Resource": [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:{EARTHDATA_LOGIN_SECRET}*", "*"],
            },
            {
                "Effect": "Allow",
                "Action": [
                    "secretsmanager:PutSecretValue",
                    "secretsmanager:DescribeSecret",
                    "secretsmanager:GetSecretValue",
                ],
                "Resource": [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:raster/providers/*", "*"],
            },
        ],
    },
}

BUCKETS = (DAAC_A_BUCKET, DAAC_B_BUCKET, OWN_BUCKET, PARTNER_BUCKET, PUBLIC_BUCKET)


def build_world(endpoint: str, buckets: tuple[str, ...] = BUCKETS) -> AwsWorld:
    """Create users, roles, buckets and empty provider secrets, then switch IAM authentication on."""
    bootstrap = Keys("AKIABOOTSTRAPBOOTSTRA", "bootstrap-secret-bootstrap-secret-0000")
    iam = boto3.client(
        "iam",
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id=bootstrap.access_key_id,
        aws_secret_access_key=bootstrap.secret_access_key,
    )
    iam.create_user(UserName="admin")
    iam.put_user_policy(
        UserName="admin",
        PolicyName="all",
        PolicyDocument=json.dumps(
            {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        ),
    )
    key = iam.create_access_key(UserName="admin")["AccessKey"]
    world = AwsWorld(endpoint=endpoint, admin=Keys(key["AccessKeyId"], key["SecretAccessKey"]))
    for role, policy in ROLE_POLICIES.items():
        trust = _assume_policy(PARTNER_EXTERNAL_ID if role == "partner-reader" else None)
        arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
        iam.put_role_policy(RoleName=role, PolicyName="access", PolicyDocument=json.dumps(policy))
        world.role_arns[role] = arn
    s3 = world.client("s3")
    for bucket in buckets:
        s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
    requests.post(
        f"{endpoint}/moto-api/reset-auth", data=b"0", headers={"Content-Type": "text/plain"}, timeout=10
    ).raise_for_status()
    return world


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class WireRequest:
    """One request as moto received it: the wire truth of who asked for what."""

    method: str
    url: str  # raw, as sent (path style: /bucket/key?query)
    service: str | None  # from the SigV4 credential scope; None when unsigned
    access_key_id: str | None

    @property
    def bucket_and_key(self) -> tuple[str, str]:
        """The bucket asked, and the object key (or, for a listing, the prefix listed: GDAL lists `key/` to tell a
        missing object from a directory)."""
        from urllib.parse import parse_qs, unquote, urlsplit

        parts = urlsplit(self.url)
        bucket, _, key = unquote(parts.path).removeprefix("/").partition("/")
        if not key:
            key = parse_qs(parts.query).get("prefix", [""])[0]
        return bucket, key


_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/[^/]+/[^/]+/([^/]+)/aws4_request")


def _wire_request(entry: Mapping[str, Any]) -> WireRequest:
    headers = {k.lower(): v for k, v in entry.get("headers", {}).items()}
    match = _CREDENTIAL_SCOPE.search(headers.get("authorization", ""))
    return WireRequest(
        method=entry.get("method", ""),
        url=entry.get("url", ""),
        service=match.group(2) if match else None,
        access_key_id=match.group(1) if match else None,
    )


class WireRecording:
    """moto's request recorder (`/moto-api/recorder/...`): what the emulator received between two `reset()`s."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def _post(self, action: str) -> None:
        requests.post(f"{self.endpoint}/moto-api/recorder/{action}", timeout=10).raise_for_status()

    def start(self) -> None:
        self._post("reset-recording")
        self._post("start-recording")

    def stop(self) -> None:
        self._post("stop-recording")

    def reset(self) -> None:
        self._post("reset-recording")

    @contextmanager
    def capture(self) -> Iterator[WireRecording]:
        """Record what the emulator receives inside the block (`requests()` reads it afterwards)."""
        self.start()
        try:
            yield self
        finally:
            self.stop()

    def requests(self) -> list[WireRequest]:
        answer = requests.get(f"{self.endpoint}/moto-api/recorder/download-recording", timeout=10)
        answer.raise_for_status()
        return [_wire_request(json.loads(line)) for line in answer.text.splitlines() if line.strip()]

    def s3_requests(self) -> list[WireRequest]:
        """Requests to S3 (signed for s3, or unsigned and not to moto's own API)."""
        return [
            r
            for r in self.requests()
            if r.service == "s3" or (r.service is None and not r.url.startswith(("/moto-api", "http")))
        ]


@contextmanager
def moto_server(port: int = 0, log_path: str | None = None) -> Iterator[str]:
    """Run moto's server in a child process on 127.0.0.1; yields its endpoint URL.

    A child process, not `ThreadedMotoServer`: GDAL can hold the GIL while it waits on a socket (seen with a cached
    file header and a 403), and a server thread in the same interpreter then never answers: a deadlock.
    Its request recorder (off until `WireRecording.start()`) writes next to the log, or to a temporary file.
    """
    port = port or free_port()
    endpoint = f"http://127.0.0.1:{port}"
    recording = (log_path or os.path.join(tempfile.gettempdir(), f"moto-{port}")) + ".recording.jsonl"
    argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    env = {**os.environ, "MOTO_RECORDER_FILEPATH": recording}
    with serving(argv, env, log_path or os.devnull, f"{endpoint}/moto-api/", timeout=30, status=None):
        yield endpoint


@contextmanager
def patched_environ(values: Mapping[str, str | None]) -> Iterator[None]:
    """Set (or, with None, unset) environment variables, restoring them afterwards."""
    old = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# Sample objects: one COG per bucket, each with its own pixel base value (see local_stack.samples).
SAMPLE_BASES: dict[str, int] = {DAAC_A_BUCKET: 10, DAAC_B_BUCKET: 60, OWN_BUCKET: 110, PARTNER_BUCKET: 160}
SAMPLE_KEYS: dict[str, str] = {
    DAAC_A_BUCKET: "HLSL30.020/sample/sample.B04.tif",
    DAAC_B_BUCKET: "products/sample.tif",
    OWN_BUCKET: "cogs/sample.tif",
    PARTNER_BUCKET: "shared/sample.tif",
}


# Not a COG on purpose (striped, no overviews; local_stack.samples.make_striped_geotiff): what the viewer's
# validation panel must flag. Kept out of SAMPLE_KEYS, which maps each bucket to its one COG.
NON_COG_BUCKET = OWN_BUCKET
NON_COG_KEY = "uploads/striped-no-overviews.tif"
NON_COG_URL = f"s3://{NON_COG_BUCKET}/{NON_COG_KEY}"


# NetCDF-4 samples for the `/md/` routes (local_stack.samples.make_sst_netcdf): a PO.DAAC-style one in a DAAC's
# bucket and one in our own, each with its own base temperature (degrees Celsius).
MD_SAMPLE_KEY = "md/sst/20260701-MUR-like.nc"
MD_SAMPLE_BASES: dict[str, float] = {DAAC_A_BUCKET: 10.0, OWN_BUCKET: 20.0}


def sample_url(bucket: str) -> str:
    return f"s3://{bucket}/{SAMPLE_KEYS[bucket]}"


def upload_samples(world: AwsWorld) -> dict[str, str]:
    """Put one sample COG into each private bucket, and the non-COG at `NON_COG_URL`; returns bucket -> s3:// URL
    of each bucket's COG."""
    from local_stack.samples import make_cog, make_striped_geotiff

    for bucket, base in SAMPLE_BASES.items():
        world.put_object(bucket, SAMPLE_KEYS[bucket], make_cog(base))
    world.put_object(NON_COG_BUCKET, NON_COG_KEY, make_striped_geotiff())
    return {bucket: sample_url(bucket) for bucket in SAMPLE_BASES}


def upload_md_samples(world: AwsWorld) -> dict[str, str]:
    """Put the NetCDF samples into their buckets; returns bucket -> s3:// URL."""
    from local_stack.samples import make_sst_netcdf

    for bucket, base in MD_SAMPLE_BASES.items():
        world.put_object(bucket, MD_SAMPLE_KEY, make_sst_netcdf(base))
    return {bucket: f"s3://{bucket}/{MD_SAMPLE_KEY}" for bucket in MD_SAMPLE_BASES}


def providers_config(world: AwsWorld, earthdata_url: str = "http://127.0.0.1:9/") -> list[dict[str, Any]]:
    """A `PROVIDERS_CONFIG` with one provider of each signed kind for this world.

    `earthdata_url` is the base of the (emulated) DAAC hosts; the raster API never calls it, the rotator does.
    """
    base = earthdata_url.rstrip("/")
    return [
        {
            "name": "daac-a",
            "title": "DAAC A (Earthdata)",
            "kind": "earthdata",
            "buckets": [DAAC_A_BUCKET],
            "credentials_url": f"{base}/daac-a/s3credentials",
            "secret_id": DAAC_A_SECRET,
        },
        {
            "name": "daac-b",
            "title": "DAAC B (Earthdata)",
            "kind": "earthdata",
            "buckets": ["daac-b-*"],
            "credentials_url": f"{base}/daac-b/s3credentials",
            "secret_id": DAAC_B_SECRET,
        },
        {
            "name": "partner",
            "title": "Partner account",
            "kind": "assume_role",
            "buckets": [PARTNER_BUCKET],
            "role_arn": world.role_arns["partner-reader"],
            "external_id": PARTNER_EXTERNAL_ID,
        },
        {
            "name": "own",
            "title": "Our buckets",
            "kind": "default",
            "buckets": [OWN_BUCKET],
            "allow_download": True,
        },
    ]
