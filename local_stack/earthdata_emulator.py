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

import base64
import json
import secrets
import sys
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlencode, urlsplit

if TYPE_CHECKING:
    from local_stack.aws_world import AwsWorld

Minter = Callable[[], dict[str, Any]]

TOKEN_PATH = "/api/users/find_or_create_token"
AUTHORIZE_PATH = "/oauth/authorize"


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


class _EmulatorServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (read timeout on a HANG fault) closes its socket before the answer: expected here,
        # and a traceback on stderr would pollute the output tests scan.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


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
        self.hang_seconds = min(float(hang_seconds), 60.0)
        self._valid_tokens: set[str] = set(tokens)
        self._user_tokens: dict[str, str] = {}
        self._codes: dict[str, str] = {}  # one-time OAuth code -> daac
        self._sessions: dict[str, str] = {}  # cookie value -> daac
        self._faults: dict[str | None, Fault] = {}
        self._latency: dict[str | None, float] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.counts: Counter[str] = Counter()
        self.requests: deque[RecordedRequest] = deque(maxlen=10_000)  # bounded: the local stack runs for hours
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> EarthdataEmulator:
        server = _EmulatorServer(("127.0.0.1", self._port), _make_handler(self))
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(target=server.serve_forever, name="earthdata-emulator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # releases HANG faults in progress
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def __enter__(self) -> EarthdataEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- addresses -------------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the Earthdata emulator is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def credentials_url(self, daac: str) -> str:
        return f"{self.base_url}/{daac}/s3credentials"

    # -- control ---------------------------------------------------------------------------------------------
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
            self._latency[daac] = min(max(float(seconds), 0.0), 60.0)

    def _delay(self, daac: str | None) -> None:
        with self._lock:
            seconds = self._latency.get(daac, 0.0)
        if seconds:
            self._stopping.wait(seconds)

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

    # -- state used by the request handler -------------------------------------------------------------------
    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.counts[request.endpoint] += 1
            self.requests.append(request)

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

    def _token_valid(self, token: str) -> bool:
        with self._lock:
            return token in self._valid_tokens

    def _new_code(self, daac: str) -> str:
        code = secrets.token_urlsafe(16)
        with self._lock:
            self._codes[code] = daac
        return code

    def _redeem_code(self, code: str, daac: str) -> bool:
        with self._lock:
            return self._codes.pop(code, None) == daac

    def _new_session(self, daac: str) -> str:
        value = secrets.token_urlsafe(16)
        with self._lock:
            self._sessions[value] = daac
        return value

    def _session_valid(self, value: str, daac: str) -> bool:
        with self._lock:
            return self._sessions.get(value) == daac

    def _hang(self) -> None:
        self._stopping.wait(self.hang_seconds)


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


def _make_handler(emulator: EarthdataEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "EarthdataEmulator/1.0"
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
            pass  # quiet: tests capture output and scan it for secrets

        # -- plumbing ----------------------------------------------------------------------------------------
        def _send(self, status: int, body: bytes, content_type: str, headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, payload: Any, headers: Mapping[str, str] | None = None) -> None:
            self._send(status, json.dumps(payload).encode(), "application/json", headers)

        def _html(self, status: int, page: str, headers: Mapping[str, str] | None = None) -> None:
            self._send(status, page.encode(), "text/html; charset=utf-8", headers)

        def _redirect(self, location: str, headers: Mapping[str, str] | None = None) -> None:
            self._send(302, b"", "text/plain", {"Location": location, **(headers or {})})

        def _cookie(self, name: str) -> str | None:
            raw = self.headers.get("Cookie")
            if not raw:
                return None
            jar: SimpleCookie = SimpleCookie()
            jar.load(raw)
            morsel = jar.get(name)
            return morsel.value if morsel else None

        def _endpoint(self, path: str) -> tuple[str, str | None]:
            if path == TOKEN_PATH:
                return "token", None
            if path == AUTHORIZE_PATH:
                return "authorize", None
            parts = path.strip("/").split("/")
            if len(parts) == 2 and parts[0] in emulator.daacs and parts[1] in ("s3credentials", "redirect"):
                return f"{parts[0]}/{parts[1]}", parts[0]
            return "other", None

        def _dispatch(self) -> None:
            url = urlsplit(self.path)
            endpoint, daac = self._endpoint(url.path)
            auth = self.headers.get("Authorization")
            scheme = auth.split(" ", 1)[0] if auth else None
            emulator._record(RecordedRequest(endpoint, self.command, scheme, bool(self.headers.get("Cookie"))))
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            if endpoint in ("token", "authorize") or daac:
                emulator._delay(daac)
            if endpoint == "token" and self.command == "POST":
                self._token(auth)
            elif endpoint == "authorize" and self.command == "GET":
                self._authorize(auth, query)
            elif daac and endpoint.endswith("/s3credentials") and self.command == "GET":
                self._s3credentials(daac, auth)
            elif daac and endpoint.endswith("/redirect") and self.command == "GET":
                self._daac_redirect(daac, query)
            else:
                self._json(404, {"error": "not_found"})

        def do_GET(self) -> None:  # noqa: N802 - stdlib name
            self._dispatch()

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            self._dispatch()

        # -- faults --------------------------------------------------------------------------------------------
        def _fault(self, fault: Fault | None, missing_key_payload: dict[str, Any]) -> bool:
            """Answer with the fault when one is set; True when the request was answered."""
            if fault is None:
                return False
            if fault is Fault.HANG:
                emulator._hang()
                self._json(504, {"error": "gateway_timeout"})
            elif fault is Fault.SERVER_ERROR:
                self._json(500, {"error": "internal_server_error"})
            elif fault is Fault.HTML:
                self._html(200, GENERIC_HTML_PAGE)
            elif fault is Fault.MALFORMED:
                self._send(200, b'{"accessKeyId": "AKIA', "application/json")
            elif fault is Fault.MISSING_KEY:
                self._json(200, missing_key_payload)
            elif fault is Fault.UNAUTHORIZED:
                self._json(401, {"error": "unauthorized", "error_description": "Unauthorized"})
            elif fault is Fault.FORBIDDEN:
                self._json(403, {"error": "forbidden", "error_description": "Forbidden"})
            elif fault is Fault.MAINTENANCE:
                self._html(503, MAINTENANCE_PAGE, {"Retry-After": "3600"})
            return True

        # -- EDL -------------------------------------------------------------------------------------------
        def _token(self, auth: str | None) -> None:
            if self._fault(emulator.fault(None), {"token_type": "Bearer", "expiration_date": "01/01/2099"}):
                return
            creds = _basic(auth)
            if creds is None or not emulator._check_user(*creds):
                self._json(401, {"error": "invalid_credentials", "error_description": "Invalid user credentials"})
                return
            expires = (datetime.now(UTC) + timedelta(days=60)).strftime("%m/%d/%Y")
            token = emulator._token_for(creds[0])
            self._json(200, {"access_token": token, "token_type": "Bearer", "expiration_date": expires})

        def _authorize(self, auth: str | None, query: dict[str, str]) -> None:
            if self._fault(emulator.fault(None), {}):
                return
            daac = query.get("client_id", "")
            redirect_uri = query.get("redirect_uri", "")
            if daac not in emulator.daacs or query.get("response_type") != "code" or not redirect_uri:
                self._json(400, {"error": "invalid_request"})
                return
            if auth is None:
                self._html(401, LOGIN_PAGE, {"WWW-Authenticate": 'Basic realm="Please enter your Earthdata Login"'})
                return
            creds = _basic(auth)
            if creds is None or not emulator._check_user(*creds):
                self._html(200, LOGIN_PAGE)  # what real EDL does on a bad password
                return
            params = {"code": emulator._new_code(daac)}
            if "state" in query:
                params["state"] = query["state"]
            self._redirect(f"{redirect_uri}?{urlencode(params)}")

        # -- DAAC ------------------------------------------------------------------------------------------
        def _s3credentials(self, daac: str, auth: str | None) -> None:
            mode = emulator.auth_mode(daac)
            token = _bearer(auth)
            session = self._cookie(f"{daac}-session")
            authorized = (session is not None and emulator._session_valid(session, daac)) or (
                token is not None and mode is not AuthMode.REDIRECT_ONLY and emulator._token_valid(token)
            )
            if authorized:
                if not self._fault(emulator.fault(daac), self._mint_without_token(daac)):
                    self._json(200, emulator.daacs[daac]())
                return
            if token is not None and mode is not AuthMode.REDIRECT_ONLY:
                self._json(401, {"error": "invalid_token", "error_description": "The bearer token is not valid"})
                return
            if mode is AuthMode.BEARER_ONLY:
                self._json(401, {"error": "unauthorized", "error_description": "Bearer token required"})
                return
            params = {
                "client_id": daac,
                "redirect_uri": f"{emulator.base_url}/{daac}/redirect",
                "response_type": "code",
                "state": f"/{daac}/s3credentials",
            }
            self._redirect(f"{emulator.base_url}{AUTHORIZE_PATH}?{urlencode(params)}")

        def _mint_without_token(self, daac: str) -> dict[str, Any]:
            if emulator.fault(daac) is not Fault.MISSING_KEY:
                return {}
            payload = dict(emulator.daacs[daac]())
            payload.pop("sessionToken", None)
            return payload

        def _daac_redirect(self, daac: str, query: dict[str, str]) -> None:
            code = query.get("code", "")
            if not code or not emulator._redeem_code(code, daac):
                self._json(401, {"error": "invalid_grant", "error_description": "Unknown or used authorization code"})
                return
            cookie = f"{daac}-session={emulator._new_session(daac)}; Path=/{daac}; HttpOnly"
            self._redirect(f"{emulator.base_url}/{daac}/s3credentials", {"Set-Cookie": cookie})

    return Handler
