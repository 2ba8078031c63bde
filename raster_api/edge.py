"""What the API trusts about how a request reached it: the host its links name, and the CDN's origin secret.

Links in TileJSON, WMTS capabilities and map pages are built by Starlette from the request's scheme and `Host`. Behind
a shared cache such a document is served to everyone, so a `Host` (or `X-Forwarded-Host`) a caller made up must never
get into one. `PublicHostMiddleware` settles the host before the app sees the request:
- `RASTER_API_PUBLIC_URL` set: every request is treated as addressed to it;
- else the first of `X-Forwarded-Host`, `Host` that is allowed (`RASTER_API_ALLOWED_HOSTS`, or the domain API
  Gateway names in the Lambda event, which a caller cannot choose);
- else, in Lambda, the event's domain; outside Lambda, a 400 naming the host.

`OriginVerifyMiddleware` answers 403 to a request without CloudFront's `x-origin-verify` secret, so the API is
reachable only through the distribution (where the cache policy, WAF and TLS policy apply).
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from raster_api.errors import error_response

ORIGIN_VERIFY_HEADER = b"x-origin-verify"
logger = logging.getLogger(__name__)


def _split_host(value: str) -> tuple[str, str | None]:
    """`("example.com", "8443")` from `example.com:8443`; IPv6 literals keep their brackets."""
    parts = urlsplit(f"//{value}")
    try:
        port = parts.port
    except ValueError:
        return value, None
    host = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    return host.lower(), None if port is None else str(port)


def host_allowed(value: str, patterns: Sequence[str]) -> bool:
    """Whether `value` (`host[:port]`) matches one of `patterns` (`host`, `host:port`, `*.suffix[:port]`)."""
    if not value or any(ch in value for ch in "/\\@?#% ") or not value.isprintable():
        return False
    host, port = _split_host(value)
    for pattern in patterns:
        want_host, want_port = _split_host(pattern.strip())
        if want_port is not None and want_port != port:
            continue
        if want_host.startswith("*."):
            if host.endswith(want_host[1:]) and len(host) > len(want_host) - 1:
                return True
        elif host == want_host:
            return True
    return False


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


def _lambda_domain(scope: Scope) -> str | None:
    event = scope.get("aws.event")
    context = event.get("requestContext") if isinstance(event, dict) else None
    domain = context.get("domainName") if isinstance(context, dict) else None
    return domain if isinstance(domain, str) and domain else None


def _addressed_to(scope: Scope, scheme: str, host: str) -> Scope:
    """`scope`, changed in place: outer middleware (the access log) reads what the router adds to it later."""
    headers = [(k, v) for k, v in scope.get("headers", []) if k not in (b"host", b"x-forwarded-host")]
    headers.append((b"host", host.encode("latin-1")))
    hostname, port = _split_host(host)
    default_port = 443 if scheme == "https" else 80
    scope["scheme"] = scheme
    scope["headers"] = headers
    scope["server"] = (hostname.strip("[]"), int(port) if port else default_port)
    return scope


@dataclass(frozen=True)
class PublicHostMiddleware:
    app: ASGIApp
    public_url: str | None
    allowed_hosts: Sequence[str]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.public_url:
            parts = urlsplit(self.public_url)
            await self.app(_addressed_to(scope, parts.scheme, parts.netloc), receive, send)
            return
        lambda_domain = _lambda_domain(scope)
        allowed = [*self.allowed_hosts, *([lambda_domain] if lambda_domain else [])]
        forwarded = (_header(scope, b"x-forwarded-host") or "").split(",")[0].strip()
        host = _header(scope, b"host") or ""
        if forwarded and host_allowed(forwarded, allowed):
            proto = (_header(scope, b"x-forwarded-proto") or "").split(",")[0].strip().lower()
            scheme = proto if proto in ("http", "https") else scope.get("scheme", "http")
            await self.app(_addressed_to(scope, scheme, forwarded), receive, send)
        elif host and host_allowed(host, allowed):
            await self.app(_addressed_to(scope, scope.get("scheme", "http"), host), receive, send)
        elif lambda_domain:
            await self.app(_addressed_to(scope, "https", lambda_domain), receive, send)
        else:
            named = forwarded or host
            detail = (
                f"host {named!r} is not served here: set RASTER_API_PUBLIC_URL or add it to RASTER_API_ALLOWED_HOSTS"
            )
            await error_response(scope, 400, detail, {"Cache-Control": "no-store"})(scope, receive, send)


@dataclass
class OriginSecret:
    """CloudFront's origin secret, re-read at most once per `recheck_interval` when a request does not match it (the
    secret was rotated), so a wrong header costs no Secrets Manager call each.

    Not a TTL cache (cachetools'): the value is kept until a header fails to match it, so while Secrets Manager is
    unreachable, requests that carry the current secret are still served."""

    fetch: Callable[[], str]
    recheck_interval: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _value: str | None = None
    _checked_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def matches(self, presented: str | None) -> bool:
        if self._value is None:
            self._reload()
        if self._equals(presented):
            return True
        return self.clock() - self._checked_at >= self.recheck_interval and self._reload() and self._equals(presented)

    def _equals(self, presented: str | None) -> bool:
        return bool(presented and self._value and hmac.compare_digest(presented.encode(), self._value.encode()))

    def _reload(self) -> bool:
        """Re-read the secret; True when it changed."""
        with self._lock:
            self._checked_at = self.clock()
            previous, self._value = self._value, self.fetch()
            return self._value != previous


@dataclass(frozen=True)
class OriginVerifyMiddleware:
    app: ASGIApp
    secret: OriginSecret
    retry_after_seconds: int = 30

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            verified = self.secret.matches(_header(scope, ORIGIN_VERIFY_HEADER))
        except Exception as exc:  # Secrets Manager unreachable: refuse, without a 500
            logger.warning("origin secret unavailable: %s", type(exc).__name__)
            headers = {"Cache-Control": "no-store", "Retry-After": str(self.retry_after_seconds)}
            answer = error_response(scope, 503, "origin verification is unavailable; retry later", headers)
            await answer(scope, receive, send)
            return
        if not verified:
            detail = "requests must come through the CDN: the x-origin-verify header is missing or wrong"
            await error_response(scope, 403, detail, {"Cache-Control": "no-store"})(scope, receive, send)
            return
        await self.app(scope, receive, send)


def secrets_manager_string(secret_id: str) -> Callable[[], str]:
    """A fetcher of a plain-string secret (boto3 honours `AWS_ENDPOINT_URL`)."""
    from providers.aws import client

    secrets = client("secretsmanager")

    def fetch() -> str:
        return str(secrets.get_secret_value(SecretId=secret_id)["SecretString"])

    return fetch
