"""Run an ASGI app factory under uvicorn in a child process on 127.0.0.1 (the way the local stack serves it)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import requests

from local_stack.aws_world import free_port

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def uvicorn_server(factory: str, env: Mapping[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """Yields (base URL, pid) once the server answers; stops it afterwards."""
    port = free_port()
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - fixed argv
            [
                sys.executable,
                "-m",
                "uvicorn",
                factory,
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                "--no-access-log",
            ],
            env={**os.environ, **env},
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if proc.poll() is not None:
                    raise RuntimeError(f"uvicorn {factory} exited with {proc.returncode}; see {log_path}")
                try:
                    requests.get(f"{base}/openapi.json", timeout=2)
                    break
                except requests.ConnectionError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"uvicorn {factory} did not start in 60 s") from None
                    time.sleep(0.2)
            yield base, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
