"""The whole system on one machine, on 127.0.0.1, with one command (`python -m local_stack`): a DEVELOPMENT TOOL.

What runs, in start-up order (each piece is the real one except AWS and Earthdata, which are local stand-ins):
1. moto in server mode (S3, STS, IAM, Secrets Manager) with IAM authentication on, holding the world of
   `local_stack.aws_world` and a sample COG per bucket, each readable only by its provider's identity;
2. the Earthdata Login + DAAC `s3credentials` emulator, minting real moto STS credentials per DAAC;
3. the real credential rotator (as the `rotator` role), once before serving and then every `rotate_every` seconds;
4. pgstac with sample collections and a registered search, when PostgreSQL + PostGIS are installed;
5. the raster API under uvicorn, in a child process whose environment is the `raster-lambda` identity;
6. nginx's `proxy_cache` in front of it (`local_stack.cdn`, the stand-in for CloudFront) on the port callers use,
   unless `cdn` is off; the API then listens on another free port, and its links name the cache's URL.

Each step prints one line with its time. Every process's log is kept in `<stack_dir>/logs/` (`.local-stack/` in the
repository by default) after the stack stops; the next run starts them afresh.

Every child runs in its own process group and is stopped as a group on Ctrl-C, SIGTERM, or a failed start-up.
With `real_aws` only the API runs, with this shell's AWS identity and the caller's `PROVIDERS_CONFIG`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlencode

from local_stack.aws_world import (
    EARTHDATA_LOGIN_SECRET,
    NON_COG_URL,
    AwsWorld,
    build_world,
    free_port,
    moto_server,
    providers_config,
    upload_md_samples,
    upload_samples,
)
from local_stack.cognito import NO_GROUP_USER, SAMPLE_GROUPS, CognitoIssuer, create_issuer, sample_user
from local_stack.processes import base_env, serving, start_process, stop_process, uvicorn_argv
from local_stack.samples import SST_VARIABLE
from providers.models import owner_of, parse_providers

DEFAULT_PORT = 8000
DEFAULT_STACK_DIR = Path(__file__).resolve().parent.parent / ".local-stack"
HOST = "127.0.0.1"
EARTHDATA_USER = "local-stack-user"
ROTATOR_ARGV = [sys.executable, "-m", "credential_rotator.cli"]


@dataclass(frozen=True)
class StackOptions:
    port: int = DEFAULT_PORT
    real_aws: bool = False
    pgstac: bool = True
    rotate_every: float = 60.0
    state_file: Path | None = None
    cdn: bool = True
    stack_dir: Path = DEFAULT_STACK_DIR


class StartupError(RuntimeError):
    """A piece of the stack could not start; the message says which and why."""


def say(message: str) -> None:
    print(f"[local-stack] {message}", flush=True)


class Steps:
    """One progress line per finished step, with the seconds it took."""

    def __init__(self) -> None:
        self._since = time.monotonic()

    def done(self, message: str) -> None:
        now = time.monotonic()
        say(f"{message} ({now - self._since:.1f} s)")
        self._since = now


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(options: StackOptions) -> int:
    """Start everything, serve until Ctrl-C/SIGTERM (or until the API dies), stop everything. Returns an exit code."""
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    code = 0
    with ExitStack() as stack:
        try:
            _check_port_free(options.port)
            logs = _fresh_logs(options.stack_dir)
            api = _start_real_aws(stack, options, logs) if options.real_aws else _start_local(stack, options, logs)
            say(f"ready: open http://{HOST}:{options.port}/ (Ctrl-C stops everything; logs in {logs})")
            api.wait()
            say(f"the API exited on its own (code {api.returncode}); stopping")
            code = 1
        except KeyboardInterrupt:
            say("stopping")
        except StartupError as exc:
            say(f"start-up failed: {exc}")
            code = 1
        except Exception:
            traceback.print_exc()
            say("start-up failed (see the traceback above); stopping what had started")
            code = 1
        finally:
            # A second Ctrl-C must not cut the clean-up short: every child is stopped with bounded waits.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    say("stopped")
    return code


def _fresh_logs(stack_dir: Path) -> Path:
    """`<stack_dir>/logs`, emptied of the previous run's files."""
    logs = stack_dir / "logs"
    if logs.exists():
        shutil.rmtree(logs)
    logs.mkdir(parents=True)
    return logs


def _check_port_free(port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            raise StartupError(f"port {port} on {HOST} is in use; pass --port") from None


def _start_real_aws(stack: ExitStack, options: StackOptions, logs: Path) -> subprocess.Popen[bytes]:
    if not os.environ.get("PROVIDERS_CONFIG"):
        raise StartupError("--real-aws needs PROVIDERS_CONFIG (inline JSON or a file path) in the environment")
    say("real AWS: only the API runs, with this shell's AWS identity, reading the real provider secrets")
    return _serve(stack, dict(os.environ), options, logs, Steps())


def _start_local(stack: ExitStack, options: StackOptions, logs: Path) -> subprocess.Popen[bytes]:
    say("development tools on 127.0.0.1 only (moto, Earthdata emulator): never deployed, never for real data")
    steps = Steps()
    endpoint = stack.enter_context(moto_server(log_path=str(logs / "moto.log")))
    world = build_world(endpoint)
    steps.done(f"moto ready: {endpoint} (S3, STS, IAM, Secrets Manager; IAM authentication on)")
    samples = upload_samples(world)
    steps.done(f"sample COGs uploaded: {', '.join(samples.values())}")
    md_samples = upload_md_samples(world)
    steps.done(f"sample NetCDF files uploaded (for /md/): {', '.join(md_samples.values())}")

    edl, edl_password = _start_earthdata(stack, world)
    world.put_secret(EARTHDATA_LOGIN_SECRET, {"username": EARTHDATA_USER, "password": edl_password})
    providers_json = json.dumps(_restricted(providers_config(world, earthdata_url=edl.base_url)))
    _create_provider_secrets(world, providers_json)
    steps.done(
        f"Earthdata Login emulator ready (DEVELOPMENT TOOL, mints moto STS credentials per DAAC): {edl.base_url}"
    )

    rotator = Rotator(world, providers_json, edl.base_url, logs / "rotator.log")
    if not rotator.run_once():
        raise StartupError("the credential rotator failed" + _tail(logs / "rotator.log"))
    stack.enter_context(rotator.schedule(options.rotate_every))
    steps.done(
        f"rotator ran as the rotator role: every earthdata provider's secret written; next every "
        f"{options.rotate_every:.0f} s"
    )

    issuer = create_issuer(world)
    token_files = _write_tokens(issuer, options.stack_dir / "tokens")
    steps.done(
        f"token issuer ready (moto Cognito user pool {issuer.pool_id}); provider {RESTRICTED_PROVIDER!r} is "
        f"restricted to the group {RESTRICTED_GROUP!r}"
    )

    if options.pgstac:
        db_env, db_state = _start_pgstac(stack, samples, logs, steps)
    else:
        db_env, db_state = _no_pgstac("--no-pgstac given")
    env = {
        **base_env(),
        **world.endpoint_env(),
        **world.assume("raster-lambda", session_name="raster-api").env(),
        "PROVIDERS_CONFIG": providers_json,
        "RASTER_API_VIEWER_SAMPLES": json.dumps(_viewer_samples(providers_json, samples, md_samples)),
        "RASTER_API_MD_ENABLED": "true",
        "RASTER_API_DOWNLOAD_ROLE_ARN": world.role_arns["raster-download"],
        **issuer.api_env(),
        # Signed tile URLs: a key of this run only (the stack's is a rotated Secrets Manager secret).
        "RASTER_API_GRANT_KEYS": secrets.token_urlsafe(32),
        **db_env,
    }
    api = _serve(stack, env, options, logs, steps)
    _print_urls(options.port, samples, md_samples, providers_json, db_state)
    _print_sign_in(options.port, token_files)
    if options.state_file:
        state = {
            "api": f"http://{HOST}:{options.port}",
            "cdn": options.cdn,
            "logs": str(logs),
            "moto": endpoint,
            "earthdata": edl.base_url,
            "providers": json.loads(providers_json),
            "samples": samples,
            "md_samples": md_samples,
            "tokens": {user: str(path) for user, path in token_files.items()},
            **db_state,
        }
        _write_state(stack, options.state_file, world, state)
    return api


RESTRICTED_PROVIDER = "partner"
RESTRICTED_GROUP = SAMPLE_GROUPS[0]


def _restricted(providers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The partner's data is for its group only, so the sign-in path can be tried locally."""
    return [{**p, "access": [RESTRICTED_GROUP]} if p["name"] == RESTRICTED_PROVIDER else p for p in providers]


def _write_tokens(issuer: CognitoIssuer, directory: Path) -> dict[str, Path]:
    """One ID token per sample user, in files only this user can read (bearer tokens are never printed)."""
    directory.mkdir(parents=True, exist_ok=True)
    directory.chmod(0o700)
    files = {}
    for user in (sample_user(RESTRICTED_GROUP), NO_GROUP_USER):
        path = directory / f"{user}.jwt"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(issuer.id_token(user))
        files[user] = path
    return files


def _print_sign_in(port: int, token_files: dict[str, Path]) -> None:
    member, visitor = (token_files[u] for u in (sample_user(RESTRICTED_GROUP), NO_GROUP_USER))
    say(f"sign-in:   provider {RESTRICTED_PROVIDER!r} needs a token of group {RESTRICTED_GROUP!r} (valid 1 hour):")
    say(f"           member: {member}  no group: {visitor}")
    say(
        f'           paste one into the viewer\'s sign-in box, or: curl -H "Authorization: Bearer $(cat {member})" '
        f"http://{HOST}:{port}/providers"
    )


def _start_earthdata(stack: ExitStack, world: AwsWorld) -> tuple[Any, str]:
    from local_stack.earthdata_emulator import EarthdataEmulator, daac_minters

    password = secrets.token_urlsafe(16)
    edl = stack.enter_context(EarthdataEmulator(users={EARTHDATA_USER: password}, daacs=daac_minters(world)))
    return edl, password


def _tail(path: Path, lines: int = 6) -> str:
    """The last lines of a log (none of ours logs a secret), to explain a failure where it is printed."""
    try:
        text = path.read_text(errors="replace").strip()
    except OSError:
        return ""
    return ":\n" + "\n".join(text.splitlines()[-lines:]) if text else ""


def _create_provider_secrets(world: AwsWorld, providers_json: str) -> None:
    """Empty provider secrets, as the CDK stack creates them: the rotator may only write values, not create secrets."""
    sm = world.client("secretsmanager")
    for provider in parse_providers(json.loads(providers_json)):
        if provider.secret_id:
            sm.create_secret(Name=provider.secret_id, Description=f"S3 credentials of provider {provider.name}")


def _no_pgstac(reason: str) -> tuple[dict[str, str], dict[str, Any]]:
    say(f"pgstac: OFF ({reason}); COG endpoints only, no /searches or /collections mosaics")
    return {}, {}


def _start_pgstac(
    stack: ExitStack, samples: dict[str, str], logs: Path, steps: Steps
) -> tuple[dict[str, str], dict[str, Any]]:
    from local_stack.pgstac_db import pgstac_database, postgis_missing
    from local_stack.pgstac_samples import load_samples, register_search

    reason = postgis_missing()
    if reason:
        return _no_pgstac(reason)
    try:
        db = stack.enter_context(pgstac_database())
        # Runs before the database's own clean-up (which removes its directory), so its log outlives the stack.
        stack.callback(_keep, db.directory / "postgres.log", logs / "postgres.log")
        collections = load_samples(db.dsn, samples)
        search_id = register_search(db.dsn, collections)
    except (RuntimeError, OSError) as exc:
        return _no_pgstac(f"PostgreSQL did not start: {exc}")
    steps.done(
        f"pgstac ready: 127.0.0.1:{db.port}/{db.dbname}, collections {', '.join(collections)}; search {search_id}"
    )
    return {**db.env(), "RASTER_API_PGSTAC_ENABLED": "true"}, {
        "database_port": db.port,
        "pgstac_directory": str(db.directory),
        "search_id": search_id,
    }


def _keep(source: Path, destination: Path) -> None:
    with suppress(OSError):
        shutil.copyfile(source, destination)


def _serve(
    stack: ExitStack, env: dict[str, str], options: StackOptions, logs: Path, steps: Steps
) -> subprocess.Popen[bytes]:
    """The API, behind the cache unless it is off; its links always name the URL callers use."""
    public_url = f"http://{HOST}:{options.port}"
    env = {**env, "RASTER_API_PUBLIC_URL": public_url}
    if not options.cdn:
        api = _start_api(stack, env, options.port, logs)
        steps.done(f"raster API ready (uvicorn): {public_url} (cache off: --no-cdn)")
        return api
    from local_stack.cdn import nginx_cache, nginx_missing

    reason = nginx_missing()
    if reason:
        raise StartupError(f"the cache cannot start: {reason}; or pass --no-cdn")
    api_port = free_port()
    api = _start_api(stack, env, api_port, logs)
    steps.done(f"raster API ready (uvicorn): http://{HOST}:{api_port} (direct, uncached)")
    try:
        stack.enter_context(
            nginx_cache(f"http://{HOST}:{api_port}", options.stack_dir / "cdn", logs=logs, port=options.port)
        )
    except RuntimeError as exc:
        raise StartupError(str(exc)) from None
    steps.done(f"cache ready (nginx proxy_cache, X-Cache-Status on every response): {public_url}")
    return api


def _start_api(stack: ExitStack, env: dict[str, str], port: int, logs: Path) -> subprocess.Popen[bytes]:
    log = logs / "api.log"
    try:
        return stack.enter_context(serving(uvicorn_argv(port), env, log, f"http://{HOST}:{port}/healthz", timeout=90))
    except RuntimeError as exc:
        raise StartupError(f"the raster API did not come up: {exc}{_tail(log)}") from None


def _viewer_samples(
    providers_json: str, samples: dict[str, str], md_samples: dict[str, str] | None = None
) -> list[dict[str, str]]:
    providers = parse_providers(json.loads(providers_json))
    out = []
    for bucket, url in samples.items():
        owner = owner_of(providers, bucket)
        name = owner.name if owner else ""
        out.append({"url": url, "provider": name, "title": f"{owner.display_title if owner else bucket}: {url}"})
    # The one that is not a COG, so a publisher can see what the validation panel says about a bad upload.
    bucket = NON_COG_URL.split("/")[2]
    owner = owner_of(providers, bucket)
    title = f"Not a COG (striped, no overviews): {NON_COG_URL}"
    out.append({"url": NON_COG_URL, "provider": owner.name if owner else "", "title": title})
    for bucket, url in (md_samples or {}).items():
        owner = owner_of(providers, bucket)
        title = f"NetCDF, {SST_VARIABLE} ({owner.display_title if owner else bucket}): {url}"
        out.append({"url": url, "provider": owner.name if owner else "", "title": title, "variable": SST_VARIABLE})
    return out


def _print_urls(
    port: int, samples: dict[str, str], md_samples: dict[str, str], providers_json: str, db_state: dict[str, Any]
) -> None:
    api = f"http://{HOST}:{port}"
    say(f"viewer:    {api}/")
    say(f"API docs:  {api}/api.html")
    say(f"providers: {api}/providers")
    for sample in _viewer_samples(providers_json, samples, md_samples):
        query = urlencode({"url": sample["url"], "provider": sample["provider"], **_variable(sample)})
        routes = "md" if "variable" in sample else "cog"
        say(f"tilejson:  {api}/{routes}/WebMercatorQuad/tilejson.json?{query}")
    if db_state.get("search_id"):
        say(f"mosaic:    {api}/searches/{db_state['search_id']}/info")


def _variable(sample: dict[str, str]) -> dict[str, str]:
    return {"variable": sample["variable"]} if "variable" in sample else {}


def _write_state(stack: ExitStack, path: Path, world: AwsWorld, state: dict[str, Any]) -> None:
    """For scripts and tests: endpoints and the moto world's admin keys (local fakes, but still kept 0600)."""
    state = {**state, "admin": {"access_key_id": world.admin.access_key_id, "secret": world.admin.secret_access_key}}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)
    stack.callback(lambda: path.unlink(missing_ok=True))


class Rotator:
    """Runs the real credential rotator in a child process with the `rotator` role's identity."""

    def __init__(self, world: AwsWorld, providers_json: str, earthdata_url: str, log_path: Path) -> None:
        self.world = world
        self.providers_json = providers_json
        self.earthdata_url = earthdata_url
        self.log_path = log_path
        self._lock = threading.Lock()
        self._current: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()

    def env(self) -> dict[str, str]:
        return {
            **base_env(),
            **self.world.endpoint_env(),
            **self.world.assume("rotator", session_name="credential-rotator").env(),
            "PROVIDERS_CONFIG": self.providers_json,
            "EARTHDATA_LOGIN_SECRET_ID": EARTHDATA_LOGIN_SECRET,
            "EARTHDATA_URL": self.earthdata_url,
        }

    def run_once(self, timeout: float = 180.0) -> bool:
        """One rotation; True when the rotator exited 0 (every provider rotated)."""
        with self._lock, open(self.log_path, "ab") as log:
            if self._stopping.is_set():
                return False
            proc = start_process(ROTATOR_ARGV, self.env(), log)
            self._current = proc
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop_process(proc)
        finally:
            with self._lock:
                self._current = None
        return proc.returncode == 0

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            proc = self._current
        if proc is not None:
            stop_process(proc)

    @contextmanager
    def schedule(self, every: float) -> Iterator[None]:
        """Rotate every `every` seconds in a background thread until the context exits."""
        thread = threading.Thread(target=self._loop, args=(every, say), name="rotator-schedule", daemon=True)
        thread.start()
        try:
            yield
        finally:
            self.stop()
            thread.join(timeout=15)

    def _loop(self, every: float, report: Callable[[str], None]) -> None:
        while not self._stopping.wait(every):
            try:
                ok = self.run_once()
            except Exception as exc:  # noqa: BLE001 - a failed run is reported, the schedule goes on
                if not self._stopping.is_set():
                    report(f"rotator: scheduled run failed to start ({type(exc).__name__})")
                continue
            if not self._stopping.is_set():
                report("rotator: scheduled run ok" if ok else f"rotator: scheduled run FAILED; see {self.log_path}")
