"""An Earthdata Login (EDL) + DAAC `s3credentials` emulator: a DEVELOPMENT TOOL for tests, benchmarks and the local
stack. Never deployed, never exposed: it binds 127.0.0.1 only and its "passwords" are test fixtures.

Why it exists: the credential rotator talks to two kinds of hosts (EDL and the DAACs) through two auth flows, and
EDL's failure modes (maintenance pages, a 200 HTML login page on a bad password, hangs) are what the rotator must
survive. A real HTTP server on loopback lets tests exercise exactly those bytes, with credentials that are real moto
STS credentials for a per-DAAC role.

One server on one port plays every host:

- EDL:  ``POST /api/users/find_or_create_token`` (HTTP Basic) -> ``{"access_token", "token_type",
  "expiration_date": "MM/DD/YYYY"}``; wrong password -> 401 JSON.
  ``GET /oauth/authorize?client_id=&redirect_uri=&response_type=code&state=`` with HTTP Basic -> 302 to
  ``redirect_uri?code=...&state=...``; no Authorization -> 401 with ``WWW-Authenticate: Basic``; wrong password ->
  **200 HTML login page** (like real EDL).
- DAAC ``<daac>``: ``GET /<daac>/s3credentials`` with ``Authorization: Bearer <token>`` (or the DAAC's session cookie)
  -> the JSON returned by that DAAC's minting callable; otherwise 302 to ``/oauth/authorize`` (or 401 for a
  bearer-only DAAC). ``GET /<daac>/redirect?code=...`` exchanges the code, sets the cookie ``<daac>-session`` and
  302s back to ``/<daac>/s3credentials``.

Class API::

    with EarthdataEmulator(
        users={"alice": "wonderland"},                 # username -> password
        tokens=["pre-issued-token"],                   # bearer tokens valid from the start
        daacs={"daac-a": lambda: aws_world.assume("daac-a-s3").earthdata_json()},  # or daac_minters(aws_world)
        auth_modes={"daac-b": AuthMode.BEARER_ONLY},   # default AuthMode.BEARER_AND_REDIRECT
        hang_seconds=3.0,                              # how long the HANG fault stalls (bounded)
    ) as edl:
        edl.base_url                     # "http://127.0.0.1:PORT" -> EARTHDATA_URL
        edl.credentials_url("daac-a")    # "http://127.0.0.1:PORT/daac-a/s3credentials" -> provider credentials_url
        edl.set_fault(daac="daac-a", fault=Fault.SERVER_ERROR)   # daac=None (default) targets the EDL endpoints
        edl.set_fault(fault=Fault.MAINTENANCE)
        edl.set_latency(0.5, daac="daac-a")   # answer normally, 0.5 s late (daac=None: the EDL endpoints)
        edl.clear_faults()
        edl.set_auth_mode("daac-a", AuthMode.REDIRECT_ONLY)
        edl.count("token")               # requests per endpoint: "token", "authorize", "daac-a/s3credentials",
        edl.count("daac-a/redirect")     #   "daac-a/redirect"; edl.counts is the whole Counter
        edl.requests                     # RecordedRequest deque (last 10,000): endpoint, method, auth scheme, cookie
        edl.reset_counts()
        edl.issued_tokens                # tokens handed out by the token endpoint

Faults (`Fault`, settable per DAAC or for EDL; a string value such as ``"500"`` works too): ``SERVER_ERROR`` (500
JSON), ``HANG`` (stall ``hang_seconds`` then 504), ``HTML`` (200 HTML page), ``MALFORMED`` (200 truncated JSON),
``MISSING_KEY`` (200 JSON without ``sessionToken`` / ``access_token``), ``UNAUTHORIZED`` (401 JSON), ``FORBIDDEN``
(403 JSON), ``MAINTENANCE`` (503 HTML "down for maintenance"). An EDL fault applies to both EDL endpoints; a DAAC
fault applies to that DAAC's ``s3credentials`` answer.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

if TYPE_CHECKING:
    from local_stack.aws_world import AwsWorld

Minter = Callable[[], dict[str, Any]]

TOKEN_PATH = "/api/users/find_or_create_token"
AUTHORIZE_PATH = "/oauth/authorize"
MAX_STALL_SECONDS = 60.0  # HANG and latency are bounded: a forgotten fault must not wedge the local stack


class AuthMode(StrEnum):
    """Which auth a DAAC's s3credentials endpoint accepts (DAACs differ, and change without notice)."""

    BEARER_AND_REDIRECT = "bearer+redirect"
    BEARER_ONLY = "bearer-only"
    REDIRECT_ONLY = "redirect-only"


class Fault(StrEnum):
    SERVER_ERROR = "500"
    HANG = "hang"
    HTML = "html"
    MALFORMED = "malformed"
    MISSING_KEY = "missing_key"
    UNAUTHORIZED = "401"
    FORBIDDEN = "403"
    MAINTENANCE = "maintenance"


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the emulator saw it (no credential values are kept, only the auth scheme)."""

    endpoint: str  # "token", "authorize", "<daac>/s3credentials", "<daac>/redirect", "other"
    method: str
    auth_scheme: str | None  # "Basic", "Bearer" or None
    has_cookie: bool


LOGIN_PAGE = """<!DOCTYPE html>
<html><head><title>Earthdata Login</title></head>
<body><h1>Earthdata Login</h1>
<form action="/login" method="post"><p>Invalid username or password, please retry.</p>
<input name="username"><input name="password" type="password"><button>Log in</button></form>
</body></html>
"""

MAINTENANCE_PAGE = """<!DOCTYPE html>
<html><head><title>Earthdata Login - Maintenance</title></head>
<body><h1>Earthdata Login is down for scheduled maintenance</h1><p>Please try again later.</p></body></html>
"""

GENERIC_HTML_PAGE = """<!DOCTYPE html>
<html><head><title>Earthdata Login</title></head><body><p>Please log in to continue.</p></body></html>
"""


def daac_minters(world: AwsWorld, roles: Mapping[str, str] | None = None) -> dict[str, Minter]:
    """Minting callables for the moto world's DAACs: each call returns fresh STS credentials for the DAAC's role."""
    roles = roles or {"daac-a": "daac-a-s3", "daac-b": "daac-b-s3"}

    def minter(role: str) -> Minter:
        return lambda: dict(world.assume(role, session_name="earthdata").earthdata_json())

    return {daac: minter(role) for daac, role in roles.items()}


class EarthdataEmulator:
    """EDL and DAAC hosts on one loopback port (see the module docstring for the API)."""

    def __init__(
        self,
        users: Mapping[str, str] | None = None,
        tokens: Iterable[str] = (),
        daacs: Mapping[str, Minter] | None = None,
        auth_modes: Mapping[str, AuthMode | str] | None = None,
        hang_seconds: float = 3.0,
        port: int = 0,
    ) -> None:
        self.users: dict[str, str] = dict(users or {})
        self.daacs: dict[str, Minter] = dict(daacs or {})
        self.auth_modes: dict[str, AuthMode] = {d: AuthMode(m) for d, m in (auth_modes or {}).items()}
        self.hang_seconds = min(float(hang_seconds), MAX_STALL_SECONDS)
        # Only the endpoints use these, and they all run on the server's one event loop thread: no lock needed.
        self._valid_tokens: set[str] = set(tokens)
        self._codes: dict[str, str] = {}  # one-time OAuth code -> daac
        self._sessions: dict[str, str] = {}  # cookie value -> daac
        # The lock guards what the control methods (called from other threads) share with the endpoints.
        self._lock = threading.Lock()
        self._user_tokens: dict[str, str] = {}
        self._faults: dict[str | None, Fault] = {}
        self._latency: dict[str | None, float] = {}
        self.counts: Counter[str] = Counter()
        self.requests: deque[RecordedRequest] = deque(maxlen=10_000)  # bounded: the local stack runs for hours
        self._stopping = threading.Event()
        self._port = port
        self._socket: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> EarthdataEmulator:
        # Bound here rather than by uvicorn: a taken port fails in the caller, and the port is known at once.
        self._socket = socket.create_server(("127.0.0.1", self._port))
        self._stopping.clear()
        # log_config=None leaves the host process's logging alone (uvicorn's default would reconfigure it); tests
        # scan stdout and stderr, so only warnings and errors may reach them, and no access lines.
        config = uvicorn.Config(self._app(), lifespan="off", log_config=None, log_level="warning", access_log=False)
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, args=([self._socket],), name="earthdata-emulator", daemon=True
        )
        self._thread.start()
        while not server.started:  # the socket already listens, but routes are only served from here on
            if not self._thread.is_alive():
                self.stop()
                raise RuntimeError("the Earthdata emulator did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        self._stopping.set()  # uvicorn waits for requests in progress: release HANG faults and latencies first
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._socket is not None:
            self._socket.close()
        self._server, self._thread, self._socket = None, None, None

    def __enter__(self) -> EarthdataEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._socket is None:
            raise RuntimeError("the Earthdata emulator is not running")
        return int(self._socket.getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def credentials_url(self, daac: str) -> str:
        return f"{self.base_url}/{daac}/s3credentials"

    def set_fault(self, daac: str | None = None, fault: Fault | str | None = None) -> None:
        """Make a DAAC (or, with daac=None, EDL) misbehave; fault=None clears it."""
        with self._lock:
            if fault is None:
                self._faults.pop(daac, None)
            else:
                self._faults[daac] = Fault(fault)

    def clear_faults(self) -> None:
        """Clears faults and latencies."""
        with self._lock:
            self._faults.clear()
            self._latency.clear()

    def set_latency(self, seconds: float, daac: str | None = None) -> None:
        """Delay every answer of a DAAC (or, with daac=None, of EDL) by `seconds` (bounded like HANG); 0 clears it."""
        with self._lock:
            self._latency[daac] = min(max(float(seconds), 0.0), MAX_STALL_SECONDS)

    def fault(self, daac: str | None = None) -> Fault | None:
        with self._lock:
            return self._faults.get(daac)

    def set_auth_mode(self, daac: str, mode: AuthMode | str) -> None:
        with self._lock:
            self.auth_modes[daac] = AuthMode(mode)

    def auth_mode(self, daac: str) -> AuthMode:
        with self._lock:
            return self.auth_modes.get(daac, AuthMode.BEARER_AND_REDIRECT)

    def count(self, endpoint: str) -> int:
        with self._lock:
            return self.counts[endpoint]

    def reset_counts(self) -> None:
        with self._lock:
            self.counts.clear()
            self.requests.clear()

    @property
    def issued_tokens(self) -> list[str]:
        with self._lock:
            return list(self._user_tokens.values())

    def _endpoint(self, path: str) -> tuple[str, str | None]:
        """The name a request is counted under, and its DAAC (None for EDL and for unknown paths)."""
        if path == TOKEN_PATH:
            return "token", None
        if path == AUTHORIZE_PATH:
            return "authorize", None
        parts = path.strip("/").split("/")
        if len(parts) == 2 and parts[0] in self.daacs and parts[1] in ("s3credentials", "redirect"):
            return f"{parts[0]}/{parts[1]}", parts[0]
        return "other", None

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.counts[request.endpoint] += 1
            self.requests.append(request)

    def _latency_for(self, daac: str | None) -> float:
        with self._lock:
            return self._latency.get(daac, 0.0)

    async def _stall(self, seconds: float) -> None:
        """Wait without holding up other requests, in short sleeps so that `stop()` (another thread) cuts it short."""
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set() and (left := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(left, 0.05))

    def _check_user(self, username: str, password: str) -> bool:
        expected = self.users.get(username)
        return expected is not None and secrets.compare_digest(expected, password)

    def _token_for(self, username: str) -> str:
        with self._lock:
            token = self._user_tokens.get(username)
            if token is None:
                token = "edl-token-" + secrets.token_urlsafe(24)
                self._user_tokens[username] = token
                self._valid_tokens.add(token)
            return token

    def _app(self) -> Starlette:
        return Starlette(
            routes=[
                Route(TOKEN_PATH, self._token, methods=["POST"]),
                Route(AUTHORIZE_PATH, self._authorize, methods=["GET"]),
                Route("/{daac}/s3credentials", self._s3credentials, methods=["GET"]),
                Route("/{daac}/redirect", self._daac_redirect, methods=["GET"]),
            ],
            # Any unknown path or method gets the same JSON 404 (Starlette's would be a plain-text 404 or a 405).
            exception_handlers={404: _not_found, 405: _not_found},
            middleware=[Middleware(_RecordAndDelay, emulator=self)],
        )

    async def _fault_answer(self, fault: Fault | None, missing_key: Callable[[], dict[str, Any]]) -> Response | None:
        """The answer of a host with that fault (None: no fault); `missing_key` builds the MISSING_KEY body."""
        if fault is Fault.HANG:
            await self._stall(self.hang_seconds)
            return JSONResponse({"error": "gateway_timeout"}, 504)
        if fault is Fault.MISSING_KEY:
            return JSONResponse(await run_in_threadpool(missing_key))
        return FAULT_ANSWERS[fault]() if fault else None

    async def _token(self, request: Request) -> Response:
        missing_key = {"token_type": "Bearer", "expiration_date": "01/01/2099"}
        if answer := await self._fault_answer(self.fault(None), missing_key.copy):
            return answer
        creds = _basic(request.headers.get("Authorization"))
        if creds is None or not self._check_user(*creds):
            return JSONResponse({"error": "invalid_credentials", "error_description": "Invalid user credentials"}, 401)
        expires = (datetime.now(UTC) + timedelta(days=60)).strftime("%m/%d/%Y")
        return JSONResponse(
            {"access_token": self._token_for(creds[0]), "token_type": "Bearer", "expiration_date": expires}
        )

    async def _authorize(self, request: Request) -> Response:
        if answer := await self._fault_answer(self.fault(None), dict):
            return answer
        query = request.query_params
        daac, redirect_uri = query.get("client_id", ""), query.get("redirect_uri", "")
        if daac not in self.daacs or query.get("response_type") != "code" or not redirect_uri:
            return JSONResponse({"error": "invalid_request"}, 400)
        auth = request.headers.get("Authorization")
        if auth is None:
            realm = {"WWW-Authenticate": 'Basic realm="Please enter your Earthdata Login"'}
            return HTMLResponse(LOGIN_PAGE, 401, headers=realm)
        creds = _basic(auth)
        if creds is None or not self._check_user(*creds):
            return HTMLResponse(LOGIN_PAGE)  # what real EDL does on a bad password: 200
        params = {"code": secrets.token_urlsafe(16)}
        self._codes[params["code"]] = daac
        if "state" in query:
            params["state"] = query["state"]
        return RedirectResponse(f"{redirect_uri}?{urlencode(params)}", 302)

    async def _s3credentials(self, request: Request) -> Response:
        daac = request.path_params["daac"]
        if daac not in self.daacs:
            return _not_found(request)
        mode = self.auth_mode(daac)
        token = _bearer(request.headers.get("Authorization"))
        bearer = token if mode is not AuthMode.REDIRECT_ONLY else None  # a redirect-only DAAC ignores the header
        session = request.cookies.get(f"{daac}-session")
        if (session is not None and self._sessions.get(session) == daac) or (bearer in self._valid_tokens):
            if answer := await self._fault_answer(self.fault(daac), lambda: _without_session_token(self.daacs[daac]())):
                return answer
            # Minters call moto's STS through boto3: blocking, so off the event loop.
            return JSONResponse(await run_in_threadpool(self.daacs[daac]))
        if bearer is not None:
            return JSONResponse({"error": "invalid_token", "error_description": "The bearer token is not valid"}, 401)
        if mode is AuthMode.BEARER_ONLY:
            return JSONResponse({"error": "unauthorized", "error_description": "Bearer token required"}, 401)
        params = {
            "client_id": daac,
            "redirect_uri": f"{self.base_url}/{daac}/redirect",
            "response_type": "code",
            "state": f"/{daac}/s3credentials",
        }
        return RedirectResponse(f"{self.base_url}{AUTHORIZE_PATH}?{urlencode(params)}", 302)

    async def _daac_redirect(self, request: Request) -> Response:
        daac = request.path_params["daac"]
        if daac not in self.daacs:
            return _not_found(request)
        code = request.query_params.get("code", "")
        if not code or self._codes.pop(code, None) != daac:
            return JSONResponse(
                {"error": "invalid_grant", "error_description": "Unknown or used authorization code"}, 401
            )
        session = secrets.token_urlsafe(16)
        self._sessions[session] = daac
        response = RedirectResponse(f"{self.base_url}/{daac}/s3credentials", 302)
        response.set_cookie(f"{daac}-session", session, path=f"/{daac}", httponly=True, samesite=None)
        return response


@dataclass(frozen=True)
class _RecordAndDelay:
    """ASGI middleware: every request is counted and recorded (404s too), then held by the latency set for its host."""

    app: ASGIApp
    emulator: EarthdataEmulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope)
        endpoint, daac = self.emulator._endpoint(request.url.path)
        auth = request.headers.get("Authorization")
        scheme = auth.split(" ", 1)[0] if auth else None
        self.emulator._record(RecordedRequest(endpoint, request.method, scheme, bool(request.headers.get("Cookie"))))
        if endpoint in ("token", "authorize") or daac:
            await self.emulator._stall(self.emulator._latency_for(daac))
        await self.app(scope, receive, send)


FAULT_ANSWERS: dict[Fault, Callable[[], Response]] = {
    Fault.SERVER_ERROR: lambda: JSONResponse({"error": "internal_server_error"}, 500),
    Fault.HTML: lambda: HTMLResponse(GENERIC_HTML_PAGE),
    Fault.MALFORMED: lambda: Response(b'{"accessKeyId": "AKIA', media_type="application/json"),
    Fault.UNAUTHORIZED: lambda: JSONResponse({"error": "unauthorized", "error_description": "Unauthorized"}, 401),
    Fault.FORBIDDEN: lambda: JSONResponse({"error": "forbidden", "error_description": "Forbidden"}, 403),
    Fault.MAINTENANCE: lambda: HTMLResponse(MAINTENANCE_PAGE, 503, headers={"Retry-After": "3600"}),
}


def _not_found(request: Request, exc: Exception | None = None) -> Response:
    return JSONResponse({"error": "not_found"}, 404)


def _without_session_token(payload: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in payload.items() if key != "sessionToken"}


def _basic(header: str | None) -> tuple[str, str] | None:
    if not header or not header.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return user, password


def _bearer(header: str | None) -> str | None:
    if header and header.startswith("Bearer "):
        return header[7:].strip()
    return None
