"""Who is calling, and which providers they may read through.

Callers prove who they are with an OpenID Connect bearer token (a JWT): `Authorization: Bearer <token>`, or the
`access_token` query parameter for map clients that cannot set headers on tile requests. A token is checked against
the issuer's signing keys (JWKS, fetched once and cached; a token naming a key the cache lacks causes at most one
refetch per `RASTER_API_AUTH_JWKS_REFETCH_INTERVAL`), its algorithm against an asymmetric allow-list (so neither
`none` nor an HMAC "signed" with the public key passes), then `iss`, the audience (`aud`, or `client_id` for
Cognito access tokens), `exp` and `nbf` with a small clock skew. The token itself is never logged; the access log
names the caller's `sub`.

A provider's `access` decides who may read through it (`authorize`), for every read: the read seam
(`raster_api.reading.ReadScope.resolve`) calls it, so COG, mosaic, item and download routes share one check.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from joserfc import errors as jose_errors
from joserfc import jws, jwt
from joserfc.jwk import KeySet

from providers import Provider
from raster_api.errors import InvalidToken, IssuerUnavailable, NotAllowed, Unauthenticated
from raster_api.settings import AuthSettings

MAX_TOKEN_BYTES = 16_384
# After a failed JWKS fetch, the next attempt waits at least this long (an issuer outage must not be hammered).
FETCH_FAILURE_BACKOFF = 5.0


class AuthConfigError(ValueError):
    """The providers restrict access but no issuer is configured: the API refuses to start (fail closed)."""


@dataclass(frozen=True)
class Caller:
    sub: str
    username: str | None
    groups: frozenset[str]


def may_read(provider: Provider, caller: Caller | None) -> bool:
    if provider.is_public:
        return True
    if caller is None:
        return False
    return not provider.groups or bool(caller.groups.intersection(provider.groups))


def authorize(provider: Provider, caller: Caller | None) -> None:
    """Raise 401 (no caller) or 403 (caller without the group) unless `caller` may read through `provider`."""
    if may_read(provider, caller):
        return
    if caller is None:
        raise Unauthenticated(
            f"provider {provider.name!r} is restricted: sign in and send a bearer token "
            "(Authorization header, or access_token for tile URLs)"
        )
    raise NotAllowed(
        f"provider {provider.name!r} is restricted to the groups {', '.join(provider.groups)}, "
        "and this caller is in none of them"
    )


def check_configuration(providers: Iterable[Provider], settings: AuthSettings) -> None:
    restricted = [p.name for p in providers if not p.is_public]
    if restricted and not settings.issuer:
        raise AuthConfigError(
            f"providers {', '.join(map(repr, restricted))} restrict access but RASTER_API_AUTH_ISSUER is not set: "
            "refusing to start, since every caller would be anonymous"
        )


def fetch_json(url: str, timeout: float) -> Any:
    if not url.startswith(("https://", "http://")):
        raise ValueError(f"not an http(s) URL: {url[:80]!r}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (scheme checked)
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
        return json.loads(response.read(1_000_000))


@dataclass
class TokenVerifier:
    settings: AuthSettings
    fetch: Callable[[str, float], Any] = fetch_json
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], float] = time.time
    fetches: int = 0
    _keys: KeySet | None = None
    _last_fetch: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.settings.issuer)

    def prefetch(self) -> None:
        """Fetch the keys now (Lambda init); a failure is retried on the first token."""
        with contextlib.suppress(IssuerUnavailable):
            self._refresh(force=True)

    def verify(self, token: str) -> Caller:
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token is too large")
        try:
            header = jws.extract_compact(token.encode("ascii")).headers()
        except (jose_errors.JoseError, UnicodeEncodeError, ValueError):
            raise InvalidToken("token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.settings.algorithms:
            raise InvalidToken(f"token algorithm {str(algorithm)[:20]!r} is not accepted")
        kid = header.get("kid")
        key = self._key(kid if isinstance(kid, str) else None)
        try:
            decoded = jwt.decode(token, key, algorithms=self.settings.algorithms)
        except (jose_errors.JoseError, ValueError):
            raise InvalidToken("token signature is invalid") from None
        return self._caller(decoded.claims)

    def _caller(self, claims: dict[str, Any]) -> Caller:
        registry = jwt.JWTClaimsRegistry(
            now=lambda: int(self.now()),
            leeway=int(self.settings.clock_skew),
            iss={"essential": True, "value": str(self.settings.issuer)},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except jose_errors.ExpiredTokenError:
            raise InvalidToken("token has expired") from None
        except jose_errors.InvalidClaimError as exc:
            if exc.claim == "nbf":
                raise InvalidToken("token is not valid yet") from None
            raise InvalidToken(f"token claim {exc.claim!r} is not accepted") from None
        except jose_errors.MissingClaimError as exc:
            raise InvalidToken(f"token lacks the claim {exc.claim!r}") from None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.settings.audience not in audiences and claims.get("client_id") != self.settings.audience:
            raise InvalidToken("token audience is not accepted")
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise InvalidToken("token claim 'sub' is not accepted")
        return Caller(
            sub=claims["sub"],
            username=next((str(claims[c]) for c in ("cognito:username", "username") if c in claims), None),
            groups=_groups(claims.get(self.settings.groups_claim)),
        )

    def _key(self, kid: str | None) -> Any:
        keys = self._keys or self._refresh(force=False)
        key = _find(keys, kid)
        if key is None:
            keys = self._refresh(force=False)
            key = _find(keys, kid)
        if key is None:
            raise InvalidToken("token is signed by an unknown key")
        return key

    def _refresh(self, force: bool) -> KeySet:
        """Refetch the JWKS unless it was fetched less than the refetch interval ago (then: the cached keys)."""
        with self._lock:
            interval = self.settings.jwks_refetch_interval if self._keys is not None else FETCH_FAILURE_BACKOFF
            if not force and self.monotonic() - self._last_fetch < interval:
                if self._keys is None:
                    raise IssuerUnavailable("the identity provider's signing keys are unavailable; retry later")
                return self._keys
            self._last_fetch = self.monotonic()
            self.fetches += 1
            try:
                self._keys = KeySet.import_key_set(self.fetch(self._jwks_url(), self.settings.http_timeout))
            except Exception as exc:  # network, JSON or key format: the issuer is unusable right now
                if self._keys is None:
                    raise IssuerUnavailable(
                        f"the identity provider's signing keys are unavailable ({type(exc).__name__}); retry later"
                    ) from None
            return self._keys

    def _jwks_url(self) -> str:
        if self.settings.jwks_url:
            return self.settings.jwks_url
        issuer = str(self.settings.issuer).rstrip("/")
        document = self.fetch(f"{issuer}/.well-known/openid-configuration", self.settings.http_timeout)
        if document.get("issuer") != self.settings.issuer or not isinstance(document.get("jwks_uri"), str):
            raise ValueError("discovery document names another issuer or no jwks_uri")
        return str(document["jwks_uri"])


def _find(keys: KeySet, kid: str | None) -> Any:
    matching = [key for key in keys.keys if kid is None or key.kid == kid]
    return matching[0] if len(matching) == 1 else None


def _groups(value: object) -> frozenset[str]:
    if isinstance(value, list):
        return frozenset(str(v) for v in value)
    if isinstance(value, str):
        return frozenset(value.replace(",", " ").split())
    return frozenset()


def bearer_token(authorization: str | None, access_token: str | None) -> str | None:
    """The token a request carries: the `Authorization: Bearer` header, else the `access_token` parameter."""
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise InvalidToken("the Authorization header must be 'Bearer <token>'")
        return value.strip()
    return access_token or None
