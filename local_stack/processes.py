"""Child processes of the local stack (and of tests that serve the API): started in their own process group, stopped
as a group, so Ctrl-C or a failed start-up never leaves a server behind.

The raster API always runs in a child process, never in the runner's interpreter: its environment *is* its AWS
identity (as on Lambda), and GDAL must not share a GIL with the servers it talks to.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import requests

API_APP = "raster_api.main:create_app"


def start_process(
    argv: Sequence[str], env: Mapping[str, str], log: IO[bytes] | None = None, cwd: str | Path | None = None
) -> subprocess.Popen[bytes]:
    """Start `argv` in a new session (its own process group) with exactly `env` as its environment."""
    return subprocess.Popen(  # noqa: S603 - argv is built by this package, never from user input
        list(argv),
        env=dict(env),
        cwd=cwd,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10.0, sig: signal.Signals = signal.SIGTERM) -> None:
    """Send `sig` to the process group, wait, then SIGKILL whatever is left of it."""
    if proc.poll() is None:
        _signal_group(proc, sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=timeout)
    # Grandchildren (e.g. uvicorn workers) may outlive the leader: the group goes in any case.
    _signal_group(proc, signal.SIGKILL)
    if proc.poll() is None:
        proc.wait()


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def uvicorn_argv(port: int, app: str = API_APP, host: str = "127.0.0.1", log_level: str = "info") -> list[str]:
    """uvicorn serving an app factory (the raster API's by default); the API's own JSON access log is the record of
    requests, so uvicorn's plain access lines are off."""
    return [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--factory",
        "--host",
        host,
        "--port",
        str(port),
        "--log-level",
        log_level,
        "--no-server-header",
        "--no-access-log",
    ]


def wait_until_healthy(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0, status: int | None = 200
) -> None:
    """Poll `url` until it answers `status` (None: anything at all); fail early when the process dies."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited with code {proc.returncode} before {url} answered")
        try:
            answer = requests.get(url, timeout=2)
            if status is None or answer.status_code == status:
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer {status or ''} within {timeout:.0f} s")
        time.sleep(0.1)


@contextmanager
def serving(
    argv: Sequence[str],
    env: Mapping[str, str],
    log_path: str | Path,
    ready_url: str,
    timeout: float = 60.0,
    status: int | None = 200,
    cwd: str | Path | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """A server process (output appended to `log_path`) once `ready_url` answers; stopped with its group on exit."""
    with open(log_path, "ab") as log:
        proc = start_process(argv, env, log, cwd)
    try:
        try:
            wait_until_healthy(ready_url, proc, timeout, status)
            if proc.poll() is not None:  # it answered, but the process is gone: another server holds the port
                raise RuntimeError(f"process exited with code {proc.returncode} after {ready_url} answered")
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; its output is in {log_path}") from None
        yield proc
    finally:
        stop_process(proc)


def base_env() -> dict[str, str]:
    """The parts of this process's environment a child needs that carry no AWS identity."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV", "PROJ_DATA", "GDAL_DATA")
    env = {k: os.environ[k] for k in keep if k in os.environ}
    # Never let a child fall back to a developer's profile or an instance role.
    env.update(
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONUNBUFFERED="1",
    )
    return env
