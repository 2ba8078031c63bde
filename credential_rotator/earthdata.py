"""`EarthdataClient`: gets a DAAC's temporary S3 credentials through Earthdata Login (EDL).

Two flows, because DAACs differ and change without notice:
- token flow: `POST {EARTHDATA_URL}/api/users/find_or_create_token` (HTTP Basic) once per run, then
  `GET credentials_url` with `Authorization: Bearer`. A pre-generated token skips the token call.
- OAuth redirect flow: `GET credentials_url` -> 302 to EDL's `oauth/authorize` -> HTTP Basic sent there (and only
  there) -> 302 back to the DAAC with `?code=` -> the DAAC sets a cookie and redirects to `s3credentials` -> JSON.

The redirect flow is used when a username/password is available and the bearer call is redirected or refused with
401, or when the token call failed for a reason other than a refused password (EDL's token API can be down while
its OAuth pages work). The password is attached only to requests whose scheme, host and port are EARTHDATA_URL's
and whose path is under its `oauth/`: it never reaches a DAAC, even one that shares EDL's origin.

Every request has bounded connect/read timeouts and is retried with exponential backoff on 5xx, timeouts and
connection errors; never on 4xx. An EDL outage (5xx or timeout at `oauth/authorize`, after retries) is remembered for
the rest of the run, so a maintenance window costs one probe, not one per provider. Error messages name the endpoint
(without query string) and never carry the password, token or credentials.

One client serves every provider of a run from several threads: the token call is made once under a lock (the
others wait for it), calls to EDL's `oauth/authorize` are serialised so an outage is probed once, and each provider's
requests carry its own `Deadline`: no attempt starts after it, and no timeout or backoff reaches past it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests

from credential_rotator.deadline import Deadline
from credential_rotator.errors import (
    EarthdataTimeoutError,
    ForbiddenError,
    HtmlResponseError,
    LoginPageError,
    MaintenanceError,
    MalformedResponseError,
    MissingKeyError,
    RotationError,
    ServerError,
    UnauthorizedError,
    UnexpectedResponseError,
    UnreachableError,
)
from credential_rotator.login import EarthdataLogin

logger = logging.getLogger(__name__)

TOKEN_PATH = "/api/users/find_or_create_token"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 10
USER_AGENT = "raster-tiler-credential-rotator/1.0"


class _NoAuth(requests.auth.AuthBase):
    """An explicit "no credentials": without it requests would add a ~/.netrc login on its own, even for a DAAC."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        return request


NO_AUTH = _NoAuth()


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: what "same host" means for sending the password."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"https": 443, "http": 80}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def safe_url(url: str) -> str:
    """The URL without query string or fragment (OAuth codes and states live there): fit for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"


def _attempts(count: int) -> str:
    return f"{count} attempt{'' if count == 1 else 's'}"


def deadline_error(where: str, deadline: Deadline) -> EarthdataTimeoutError:
    """The provider ran out of its share of the invocation's time while waiting for `where`."""
    error = EarthdataTimeoutError(f"{where} did not answer within {deadline.describe()}; retried next run")
    error.by_deadline = True
    return error


@contextmanager
def _held(lock: threading.Lock, deadline: Deadline | None, where: str) -> Iterator[None]:
    """Hold `lock`, waiting at most until `deadline` (another provider may be in a slow call to `where`)."""
    if not lock.acquire(timeout=-1 if deadline is None else max(0.0, deadline.remaining())):
        assert deadline is not None  # noqa: S101 - an unbounded acquire always succeeds
        raise deadline_error(where, deadline)
    try:
        yield
    finally:
        lock.release()


def _looks_like_html(response: requests.Response) -> bool:
    content_type = response.headers.get("Content-Type", "").lower()
    return "html" in content_type or response.content.lstrip()[:1] == b"<"


class EarthdataClient:
    """One rotation run's Earthdata session: the bearer token is fetched at most once and shared by all providers."""

    def __init__(
        self,
        login: EarthdataLogin,
        earthdata_url: str,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        retries: int = 2,
        backoff_seconds: float = 1.0,
    ) -> None:
        self.login = login
        self.earthdata_url = earthdata_url.rstrip("/")
        self.timeout = (connect_timeout, read_timeout)
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        self._edl_origin = origin(self.earthdata_url)
        self._edl_oauth_prefix = urlsplit(self.earthdata_url).path.rstrip("/") + "/oauth/"
        self._token: str | None = login.token.get_secret_value() if login.has_token and login.token else None
        self._token_error: RotationError | None = None
        self._edl_outage: RotationError | None = None  # EDL's authorize endpoint down (5xx/timeout) in this run
        self.token_expires: date | None = None
        self.token_calls = 0
        self._token_lock = threading.Lock()  # one token call per run, however many providers ask at once
        self._edl_lock = threading.Lock()  # one oauth/authorize probe at a time, so an outage is probed once
        self._session = requests.Session()  # the token call only; each provider's flow has its own session

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> EarthdataClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- public ------------------------------------------------------------------------------------------------
    def fetch_credentials(self, credentials_url: str, deadline: Deadline | None = None) -> dict[str, Any]:
        """The DAAC's `s3credentials` JSON object (not yet validated: see `credential_rotator.validate`)."""
        try:
            token = self.bearer_token(deadline)
        except UnauthorizedError:
            raise
        except RotationError as exc:
            if not self.login.has_password:
                raise
            return self._redirect_after_token_failure(credentials_url, exc, deadline)
        if token is None:
            return self._redirect_flow(credentials_url, deadline)
        return self._bearer_flow(credentials_url, token, deadline)

    def bearer_token(self, deadline: Deadline | None = None) -> str | None:
        """The pre-generated token, or one from the token endpoint (called at most once per client, thread-safe)."""
        if self._token is not None:
            return self._token
        if not self.login.has_password:
            return None
        where = f"Earthdata Login token endpoint ({safe_url(self.earthdata_url + TOKEN_PATH)})"
        with _held(self._token_lock, deadline, where):
            if self._token is not None:
                return self._token
            if self._token_error is not None:
                raise self._token_error
            try:
                self._token = self._request_token(deadline)
            except RotationError as exc:
                if not exc.by_deadline:  # another provider, with time left, may try again
                    self._token_error = exc
                raise
            return self._token

    # -- token flow -----------------------------------------------------------------------------------------------
    def _request_token(self, deadline: Deadline | None) -> str:
        url = self.earthdata_url + TOKEN_PATH
        where = f"Earthdata Login token endpoint ({safe_url(url)})"
        self.token_calls += 1
        assert self.login.username and self.login.password  # noqa: S101 - has_password checked by the caller
        response = self._send(
            self._session,
            "POST",
            url,
            where,
            auth=(self.login.username, self.login.password.get_secret_value()),
            deadline=deadline,
        )
        if response.status_code == 401:
            raise UnauthorizedError(f"{where} refused the username/password (HTTP 401)")
        payload = self._json_object(response, where)
        token = payload.get("access_token")
        if not isinstance(token, str) or not token:
            raise MissingKeyError(f"{where} answer lacks access_token")
        self.token_expires = self._parse_token_expiry(payload.get("expiration_date"), where)
        logger.info(
            "earthdata token obtained",
            extra={"token_expires": self.token_expires.isoformat() if self.token_expires else None},
        )
        return token

    @staticmethod
    def _parse_token_expiry(value: object, where: str) -> date | None:
        if value is None:
            return None
        try:
            return datetime.strptime(str(value), "%m/%d/%Y").date()
        except ValueError:
            raise MalformedResponseError(f"{where} answered an expiration_date that is not MM/DD/YYYY") from None

    def _bearer_flow(self, credentials_url: str, token: str, deadline: Deadline | None) -> dict[str, Any]:
        where = f"DAAC s3credentials ({safe_url(credentials_url)})"
        headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        with requests.Session() as session:  # requests.Session is not documented thread-safe: one per flow
            response = self._send(session, "GET", credentials_url, where, headers=headers, deadline=deadline)
        refused = response.status_code == 401 or response.status_code in REDIRECT_STATUSES
        if refused and self.login.has_password:
            logger.info(
                "bearer token not accepted, using the OAuth redirect flow",
                extra={"endpoint": safe_url(credentials_url), "status": response.status_code},
            )
            return self._redirect_flow(credentials_url, deadline)
        if response.status_code in REDIRECT_STATUSES:
            raise UnexpectedResponseError(
                f"{where} redirected to a login instead of accepting the bearer token, and no Earthdata "
                "username/password is configured for the OAuth redirect flow"
            )
        return self._json_object(response, where)

    # -- OAuth redirect flow ------------------------------------------------------------------------------------
    def _redirect_after_token_failure(
        self, credentials_url: str, token_error: RotationError, deadline: Deadline | None
    ) -> dict[str, Any]:
        logger.info(
            "token call failed, trying the OAuth redirect flow",
            extra={"endpoint": safe_url(credentials_url), "fault": token_error.fault},
        )
        try:
            return self._redirect_flow(credentials_url, deadline)
        except RotationError as exc:
            raise type(exc)(f"{exc.message} (the token call had failed too: {token_error})") from None

    def _sends_password_to(self, url: str) -> bool:
        return origin(url) == self._edl_origin and urlsplit(url).path.startswith(self._edl_oauth_prefix)

    def _redirect_flow(self, credentials_url: str, deadline: Deadline | None) -> dict[str, Any]:
        session = requests.Session()  # its own cookie jar: a DAAC's session cookie belongs to this flow only
        url = credentials_url
        try:
            for _ in range(MAX_REDIRECTS):
                with_password = self._sends_password_to(url)
                where = self._describe_hop(url, credentials_url, with_password)
                kwargs: dict[str, Any] = {"headers": {"Accept": "application/json"}}
                if with_password and self.login.username and self.login.password:
                    kwargs["auth"] = (self.login.username, self.login.password.get_secret_value())
                response = self._send_hop(session, url, where, with_password, kwargs, deadline)
                if response.status_code in REDIRECT_STATUSES and response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"])
                    continue
                return self._redirect_answer(response, where, with_password)
        finally:
            session.close()
        raise UnexpectedResponseError(
            f"DAAC s3credentials ({safe_url(credentials_url)}) redirected more than {MAX_REDIRECTS} times"
        )

    def _send_hop(
        self,
        session: requests.Session,
        url: str,
        where: str,
        with_password: bool,
        kwargs: dict[str, Any],
        deadline: Deadline | None,
    ) -> requests.Response:
        """One redirect-flow request; an EDL outage seen by one provider's flow fails the next ones fast."""
        if not with_password:
            return self._send(session, "GET", url, where, deadline=deadline, **kwargs)
        with _held(self._edl_lock, deadline, where):
            if self._edl_outage is not None:
                raise type(self._edl_outage)(f"{self._edl_outage.message}; seen earlier in this run, not tried again")
            try:
                return self._send(session, "GET", url, where, deadline=deadline, **kwargs)
            except (ServerError, EarthdataTimeoutError, UnreachableError) as exc:
                if not exc.by_deadline:  # a provider's own deadline is not an EDL outage
                    self._edl_outage = exc
                raise

    def _describe_hop(self, url: str, credentials_url: str, with_password: bool) -> str:
        if with_password:
            return f"Earthdata Login authorization ({safe_url(url)})"
        if origin(url) == origin(credentials_url):
            return f"DAAC s3credentials ({safe_url(url)})"
        return f"redirect target ({safe_url(url)})"

    def _redirect_answer(self, response: requests.Response, where: str, with_password: bool) -> dict[str, Any]:
        if with_password and response.status_code == 200 and _looks_like_html(response):
            raise LoginPageError(
                f"{where} answered its HTML login page (HTTP 200): Earthdata Login refused the username/password"
            )
        if with_password and response.status_code == 401:
            raise UnauthorizedError(f"{where} refused the username/password (HTTP 401)")
        if response.status_code == 401 and response.headers.get("WWW-Authenticate", "").lower().startswith("basic"):
            raise UnexpectedResponseError(
                f"{where} asks for a password, but it is not the Earthdata Login host of EARTHDATA_URL "
                f"({safe_url(self.earthdata_url)}); the password is only sent there"
            )
        return self._json_object(response, where)

    # -- HTTP ------------------------------------------------------------------------------------------------------
    def _send(
        self,
        session: requests.Session,
        method: str,
        url: str,
        where: str,
        deadline: Deadline | None = None,
        **kwargs: Any,
    ) -> requests.Response:
        """One request with retries on 5xx, timeouts and connection errors; redirects are never followed here.

        With a `deadline`, no attempt or backoff starts after it and no timeout reaches past it: when the deadline
        cut the wait short the error says so; when it left no time for a retry, the last attempt's error stands.
        """
        headers: Mapping[str, str] = {"User-Agent": USER_AGENT, **kwargs.pop("headers", {})}
        kwargs.setdefault("auth", NO_AUTH)
        attempts = self.retries + 1
        error: RotationError | None = None
        for attempt in range(attempts):
            if attempt:
                delay = self.backoff_seconds * 2 ** (attempt - 1)
                if deadline is not None and delay >= deadline.remaining():
                    break
                time.sleep(delay)
            timeout = self.timeout
            if deadline is not None:
                left = deadline.remaining()
                if left <= 0:
                    if error is None:
                        raise deadline_error(where, deadline)
                    break
                timeout = (min(timeout[0], left), min(timeout[1], left))
            cut_by_deadline = timeout != self.timeout
            try:
                response = session.request(
                    method, url, headers=dict(headers), timeout=timeout, allow_redirects=False, **kwargs
                )
            except requests.Timeout:
                if cut_by_deadline and deadline is not None:
                    error = deadline_error(where, deadline)
                else:
                    error = EarthdataTimeoutError(
                        f"{where} did not answer within {self.timeout[0]:g} s to connect / {self.timeout[1]:g} s to "
                        f"read ({_attempts(attempt + 1)})"
                    )
            except requests.RequestException as exc:
                error = UnreachableError(
                    f"{where} could not be reached: {type(exc).__name__} ({_attempts(attempt + 1)})"
                )
            else:
                if response.status_code < 500:
                    return response
                error = self._server_error(response, url, where, attempt + 1)
            logger.warning(
                "earthdata request failed",
                extra={"endpoint": safe_url(url), "fault": error.fault, "attempt": attempt + 1},
            )
        assert error is not None  # noqa: S101 - the loop ran at least once
        raise error

    def _server_error(self, response: requests.Response, url: str, where: str, attempts: int) -> RotationError:
        if response.status_code == 503 and origin(url) == self._edl_origin and _looks_like_html(response):
            return MaintenanceError(
                f"{where} is unavailable (HTTP 503 maintenance page, {_attempts(attempts)}): "
                "Earthdata Login is probably in a maintenance window"
            )
        return ServerError(f"{where} answered HTTP {response.status_code} ({_attempts(attempts)})")

    @staticmethod
    def _json_object(response: requests.Response, where: str) -> dict[str, Any]:
        status = response.status_code
        if status == 401:
            raise UnauthorizedError(f"{where} refused the login (HTTP 401)")
        if status == 403:
            raise ForbiddenError(
                f"{where} refused access (HTTP 403): the user may not have accepted this DAAC's EULA or lacks access"
            )
        if status != 200:
            raise UnexpectedResponseError(f"{where} answered HTTP {status}")
        if _looks_like_html(response):
            raise HtmlResponseError(f"{where} answered an HTML page instead of JSON (HTTP 200)")
        try:
            payload = json.loads(response.content)
        except ValueError:
            raise MalformedResponseError(
                f"{where} answered malformed JSON ({len(response.content)} bytes, HTTP 200)"
            ) from None
        if not isinstance(payload, dict):
            raise MalformedResponseError(f"{where} answered JSON that is not an object ({type(payload).__name__})")
        return payload
