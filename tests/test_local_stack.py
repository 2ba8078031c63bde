"""The README's run command, for real: `python -m local_stack` as a subprocess on a free port, from a clean state.

It must come up with one timed line per step, serve every provider's sample through the cache (nginx) and the API,
have the real rotator write every earthdata provider's secret, and after Ctrl-C (SIGINT) leave no process behind
and every process's log in place.
"""

from __future__ import annotations

import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import morecantile
import numpy as np
import psutil
import pytest
import requests
from botocore.config import Config
from PIL import Image

from local_stack.aws_world import MD_SAMPLE_BASES, SAMPLE_BASES, free_port
from local_stack.cdn import nginx_missing
from local_stack.pgstac_db import postgis_missing
from local_stack.processes import start_process, stop_process
from local_stack.samples import SST_BOUNDS, SST_SIZE, SST_VARIABLE, sst_value
from providers import S3Credentials
from providers.models import owner_of, parse_providers

pytestmark = [
    pytest.mark.slow,
    # The stack serves through nginx by default; scripts/bootstrap.sh installs it.
    pytest.mark.skipif(nginx_missing() is not None, reason=str(nginx_missing())),
]

REPO = Path(__file__).resolve().parents[1]
ROTATE_EVERY = 5
CENTER = (-119.5, 34.5)  # the samples cover (-120, 34, -119, 35)


@dataclass
class RunningStack:
    proc: subprocess.Popen[bytes]
    api: str
    state: dict[str, Any]
    output: Path
    stack_dir: Path


def _wait_for_state(proc: subprocess.Popen[bytes], state_file: Path, output: Path, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"local stack exited with {proc.returncode}:\n{output.read_text()[-4000:]}")
        if state_file.exists() and state_file.stat().st_size:
            return json.loads(state_file.read_text())
        time.sleep(0.5)
    pytest.fail(f"local stack not ready within {timeout} s:\n{output.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    tmp = tmp_path_factory.mktemp("local-stack")
    port = free_port()
    output = tmp / "stack.out"
    state_file = tmp / "state.json"
    stack_dir = tmp / "never-run-before"
    argv = [sys.executable, "-m", "local_stack", "--port", str(port), "--state-file", str(state_file)]
    argv += ["--rotate-every", str(ROTATE_EVERY), "--stack-dir", str(stack_dir)]
    with open(output, "wb") as out:
        proc = start_process(argv, os.environ, out)
    try:
        state = _wait_for_state(proc, state_file, output)
        api = f"http://127.0.0.1:{port}"
        assert requests.get(f"{api}/healthz", timeout=5).status_code == 200
        yield RunningStack(proc, api, state, output, stack_dir)
    finally:
        stop_process(proc, timeout=60, sig=signal.SIGINT)  # Ctrl-C, as a user stops it


def _owner(state: dict[str, Any], bucket: str) -> str:
    owner = owner_of(parse_providers(state["providers"]), bucket)
    assert owner is not None, bucket
    return owner.name


@pytest.mark.parametrize("bucket", sorted(SAMPLE_BASES))
def test_serves_a_tile_of_each_providers_sample(stack: RunningStack, bucket: str) -> None:
    tile = morecantile.tms.get("WebMercatorQuad").tile(*CENTER, 8)
    url = f"{stack.api}/cog/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png"
    params = {"url": stack.state["samples"][bucket], "provider": _owner(stack.state, bucket)}
    headers = {}
    restricted = next(p for p in stack.state["providers"] if p["name"] == params["provider"]).get("access")
    if restricted not in (None, "public"):
        # The local stack's restricted provider: anonymous callers are asked to sign in, its group's user reads.
        anonymous = requests.get(url, params=params, timeout=60)
        assert anonymous.status_code == 401, anonymous.text
        assert anonymous.headers["X-Cache-Status"] == "MISS"
        token = Path(stack.state["tokens"]["partner-analysts-user"]).read_text()
        headers = {"Authorization": f"Bearer {token}"}
    response = requests.get(url, params=params, headers=headers, timeout=60)
    assert response.status_code == 200, response.text
    assert response.headers["X-Cache-Status"] == "MISS"
    image = np.asarray(Image.open(io.BytesIO(response.content)))
    values, alpha = image[..., 0], image[..., -1]
    seen = set(np.unique(values[alpha == 255]).tolist())
    base = SAMPLE_BASES[bucket]
    assert seen, "tile has no data pixels"
    assert seen <= set(range(base, base + 8)), f"pixels {sorted(seen)} are not {bucket}'s (base {base})"
    assert len(seen) > 1, "the column ramp is missing"


@pytest.mark.parametrize("bucket", sorted(MD_SAMPLE_BASES))
def test_serves_each_netcdf_sample_through_md(stack: RunningStack, bucket: str) -> None:
    """A PO.DAAC-style NetCDF in a DAAC bucket (read with the keys the rotator fetched) and one in our own: both days'
    temperatures where the sample has them, and a tile."""
    url = stack.state["md_samples"][bucket]
    params = {"url": url, "provider": _owner(stack.state, bucket), "variable": SST_VARIABLE}
    west, south, east, _ = SST_BOUNDS
    column = 100
    lon = west + (east - west) / SST_SIZE * (column + 0.5)
    point = requests.get(f"{stack.api}/md/point/{lon},{south + 0.5}", params=params, timeout=60)
    assert point.status_code == 200, point.text
    base = MD_SAMPLE_BASES[bucket]
    assert point.json()["values"] == pytest.approx([sst_value(base, column, 0), sst_value(base, column, 1)])
    tile = morecantile.tms.get("WebMercatorQuad").tile(west + 0.5, south + 0.5, 8)
    response = requests.get(
        f"{stack.api}/md/tiles/WebMercatorQuad/{tile.z}/{tile.x}/{tile.y}.png",
        params={**params, "bidx": 1, "rescale": "280,300", "colormap_name": "viridis"},
        timeout=60,
    )
    assert (response.status_code, response.headers["content-type"]) == (200, "image/png"), response.text


def test_rotator_wrote_every_earthdata_providers_secret(stack: RunningStack) -> None:
    admin = stack.state["admin"]
    session = boto3.session.Session(
        aws_access_key_id=admin["access_key_id"], aws_secret_access_key=admin["secret"], region_name="us-west-2"
    )
    config = Config(retries={"max_attempts": 1})
    sm = session.client("secretsmanager", endpoint_url=stack.state["moto"], config=config)
    earthdata = [p for p in stack.state["providers"] if p["kind"] == "earthdata"]
    assert len(earthdata) == 2
    for provider in earthdata:
        creds = S3Credentials.model_validate_json(sm.get_secret_value(SecretId=provider["secret_id"])["SecretString"])
        assert creds.seconds_left() > 600, provider["name"]
        # The secret holds the DAAC role's identity, minted through the Earthdata emulator.
        sts = boto3.client(
            "sts",
            endpoint_url=stack.state["moto"],
            region_name="us-west-2",
            aws_access_key_id=creds.access_key_id,
            aws_secret_access_key=creds.secret_access_key,
            aws_session_token=creds.session_token,
            config=config,
        )
        assert f":assumed-role/{provider['name']}-s3/" in sts.get_caller_identity()["Arn"]


def test_rotator_runs_again_in_the_background(stack: RunningStack) -> None:
    admin = stack.state["admin"]
    sm = boto3.client(
        "secretsmanager",
        endpoint_url=stack.state["moto"],
        region_name="us-west-2",
        aws_access_key_id=admin["access_key_id"],
        aws_secret_access_key=admin["secret"],
    )
    secret_id = next(p["secret_id"] for p in stack.state["providers"] if p["kind"] == "earthdata")
    first = sm.get_secret_value(SecretId=secret_id)["VersionId"]
    deadline = time.monotonic() + 6 * ROTATE_EVERY
    while sm.get_secret_value(SecretId=secret_id)["VersionId"] == first:
        assert time.monotonic() < deadline, stack.output.read_text()[-3000:]
        time.sleep(1)
    # The secret changes while the rotator process is still writing the other providers; it reports when it exits.
    while "rotator: scheduled run ok" not in stack.output.read_text():
        assert time.monotonic() < deadline, stack.output.read_text()[-3000:]
        time.sleep(0.5)


STEPS = [
    "moto ready: ",
    "sample COGs uploaded: ",
    "Earthdata Login emulator ready ",
    "rotator ran as the rotator role: ",
    "raster API ready (uvicorn): ",
    "cache ready (nginx proxy_cache, X-Cache-Status on every response): ",
]


def test_sigint_stops_every_process_and_keeps_every_log(stack: RunningStack) -> None:
    root = psutil.Process(stack.proc.pid)
    children = root.children(recursive=True)
    assert any("moto.server" in " ".join(c.cmdline()) for c in children)
    assert any("uvicorn" in " ".join(c.cmdline()) for c in children)
    assert any(c.cmdline()[:1] == ["/usr/sbin/nginx"] for c in children)
    # PostgreSQL daemonizes (pg_ctl): find it by its data directory rather than as a child.
    pg_dir = stack.state.get("pgstac_directory")
    postgres = [p for p in psutil.process_iter(["cmdline"]) if pg_dir and pg_dir in " ".join(p.info["cmdline"] or [])]
    if postgis_missing() is None:
        assert postgres, "pgstac should be running when PostgreSQL + PostGIS are installed"

    stack.proc.send_signal(signal.SIGINT)
    assert stack.proc.wait(timeout=60) == 0, stack.output.read_text()[-3000:]

    _, alive = psutil.wait_procs([*children, *postgres], timeout=10)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    assert not requests_ok(f"{stack.api}/healthz")
    output = stack.output.read_text()
    assert "[local-stack] stopped" in output

    pgstac = postgis_missing() is None
    steps = STEPS + (["pgstac ready: "] if pgstac else [])
    for step in steps:
        lines = [line for line in output.splitlines() if line.startswith(f"[local-stack] {step}")]
        assert len(lines) == 1, (step, output)
        assert re.search(r" \(\d+\.\d s\)$", lines[0]), lines[0]
    # uvicorn's own access lines are off: the API's JSON access log (in its log file) is the record.
    assert '"GET /' not in output

    logs = stack.stack_dir / "logs"
    expected = {"moto.log", "rotator.log", "api.log", "nginx-access.log", "nginx-error.log"}
    assert expected | ({"postgres.log"} if pgstac else set()) <= {p.name for p in logs.iterdir()}
    assert '"type":"access"' in (logs / "api.log").read_text()
    assert '"cache":"MISS"' in (logs / "nginx-access.log").read_text()
    if pgstac:
        assert "database system is ready to accept connections" in (logs / "postgres.log").read_text()


def requests_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).ok
    except requests.RequestException:
        return False


def test_port_in_use_fails_clearly(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "local_stack", "--port", str(port), "--no-pgstac"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1
    assert f"port {port} on 127.0.0.1 is in use" in done.stdout


FAILING_START = """
import sys, psutil
from pathlib import Path
from local_stack import runner
runner.Rotator.run_once = lambda self, timeout=0: False  # as if Earthdata Login were down at start-up
options = runner.StackOptions(port=int(sys.argv[1]), pgstac=False, stack_dir=Path(sys.argv[2]))
code = runner.run(options)
print("children left:", len(psutil.Process().children(recursive=True)))
sys.exit(code)
"""


def test_failed_start_up_stops_what_had_started(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", FAILING_START, str(free_port()), str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "start-up failed: the credential rotator failed" in done.stdout
    assert "children left: 0" in done.stdout
