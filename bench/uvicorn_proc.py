"""Run an ASGI app factory under uvicorn in a child process on 127.0.0.1 (the way the local stack serves it)."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from local_stack.aws_world import free_port
from local_stack.processes import serving, uvicorn_argv

ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def uvicorn_server(factory: str, env: Mapping[str, str], log_path: Path) -> Iterator[tuple[str, int]]:
    """Yields (base URL, pid) once the server answers; stops it afterwards."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = uvicorn_argv(port, app=factory, log_level="warning")
    # Any answer means it is serving (our app has no /openapi.json, vanilla titiler has no /healthz).
    with serving(argv, {**os.environ, **env}, log_path, f"{base}/openapi.json", status=None, cwd=ROOT) as proc:
        yield base, proc.pid
