"""Who is calling, and which providers they may read through.

Callers prove who they are with an OpenID Connect bearer token (a JWT): `Authorization: Bearer <token>`, or the
`access_token` query parameter for map clients that cannot set headers on tile requests. A token is checked against
the issuer's signing keys (JWKS, through PyJWT's `PyJWKClient`: fetched once and cached; a token naming a key the cache
lacks causes at most one refetch per `RASTER_API_AUTH_JWKS_REFETCH_INTERVAL`), its algorithm against an asymmetric allow-list (so neither
`none` nor an HMAC "signed" with the public key passes), then `iss`, the audience (`aud`, or `client_id` for
Cognito access tokens), `exp` and `nbf` with a small clock skew. The token itself is never logged; the access log
names the caller's `sub`.

A provider's `access` decides who may read through it (`authorize`), for every read: the read seam
(`raster_api.reading.ReadScope.resolve`) calls it, so COG, mosaic, item and download routes share one check.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt

from providers import Provider
from raster_api.errors import InvalidToken, IssuerUnavailable, NotAllowed, Unauthenticated
from raster_api.settings import AuthSettings

MAX_TOKEN_BYTES = 16_384
# After a failed JWKS fetch, the next attempt waits at least this long (an issuer outage must not be hammered).
FETCH_FAILURE_BACKOFF = 5.0
# How long the issuer's keys are trusted without a refetch when no token names a key they lack (a day).
KEYS_LIFESPAN = 86_400.0


class AuthConfigError(ValueError):
    """The providers restrict access but no issuer is configured: the API refuses to start (fail closed)."""


@dataclass(frozen=True)
class Caller:
    sub: str
    username: str | None
    groups: frozenset[str]
    expires: float | None = None  # epoch seconds: the token's `exp` (a tile grant never outlives it)


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


class _IssuerKeys(jwt.PyJWKClient):
    """PyJWT's JWKS client (cache, one refetch for an unknown `kid` per cooldown), counting its fetches and keeping
    the keys it holds when a refetch fails in any way (an outage, a maintenance page, a set without signing keys): a
    bad issuer answer then costs no valid token, and the failed refetch counts for the cooldown like a successful one
    (PyJWT's own would be retried by the very next token)."""

    fetches = 0

    def fetch_data(self) -> Any:
        self.fetches += 1
        held = self.jwk_set_cache.jwk_set_with_timestamp if self.jwk_set_cache is not None else None
        try:
            data = super().fetch_data()
            self._get_signing_keys_from_jwk_set(jwt.PyJWKSet.from_dict(data))  # raises without a usable key
            return data
        except Exception:
            if held is None or self.jwk_set_cache is None:
                raise
            self.jwk_set_cache.put(held.get_jwk_set())  # back in the cache (PyJWT may have put the bad set there)
            return held.get_jwk_set()


@dataclass
class TokenVerifier:
    settings: AuthSettings
    fetch: Callable[[str, float], Any] = fetch_json  # the discovery document
    monotonic: Callable[[], float] = time.monotonic
    _keys: _IssuerKeys | None = None
    _failed_at: float = float("-inf")
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.settings.issuer)

    @property
    def fetches(self) -> int:
        return self._keys.fetches if self._keys is not None else 0

    def prefetch(self) -> None:
        """Fetch the keys now (Lambda init, or after a SnapStart restore); a failure is retried on the first token."""
        with contextlib.suppress(IssuerUnavailable):
            self._issuer_keys().get_jwk_set()

    def forget(self) -> None:
        """Drop the issuer's keys (before a snapshot: a restore may come after the issuer retired some)."""
        with self._lock:
            self._keys = None
            self._failed_at = float("-inf")

    def verify(self, token: str) -> Caller:
        if len(token) > MAX_TOKEN_BYTES:
            raise InvalidToken("token is too large")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError:  # not a JWT, or a header PyJWT refuses (a `kid` not a string, `crit`)
            raise InvalidToken("token is not a JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.settings.algorithms:
            # Echoed into a header: only characters an algorithm name has.
            named = re.sub(r"[^A-Za-z0-9._-]", "?", str(algorithm))[:20]
            raise InvalidToken(f"token algorithm {named!r} is not accepted")
        key = self._key(header.get("kid"))
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=self.settings.algorithms,
                issuer=str(self.settings.issuer),
                leeway=self.settings.clock_skew,
                options={"require": ["exp", "iss", "sub"], "verify_aud": False},  # audience: `_caller`
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("token is not valid yet") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"token lacks the claim {exc.claim!r}") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("token claim 'iss' is not accepted") from None
        except jwt.exceptions.InvalidSubjectError:
            raise InvalidToken("token claim 'sub' is not accepted") from None
        except jwt.InvalidIssuedAtError:
            raise InvalidToken("token claim 'iat' is not accepted") from None
        except jwt.exceptions.InvalidJTIError:
            raise InvalidToken("token claim 'jti' is not accepted") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("token signature is invalid") from None
        except jwt.DecodeError:  # past the signature: a claim of the wrong type (`exp` not a number...)
            raise InvalidToken("token claims are malformed") from None
        except jwt.InvalidTokenError:
            raise InvalidToken("token signature is invalid") from None
        return self._caller(claims)

    def _caller(self, claims: dict[str, Any]) -> Caller:
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
            expires=float(min(claims["exp"], 2**53)),  # PyJWT accepts any integer; a float cannot hold them all
        )

    def _key(self, kid: object) -> jwt.PyJWK:
        if not isinstance(kid, str):
            raise InvalidToken("token is signed by an unknown key")
        try:
            return self._issuer_keys().get_signing_key(kid)
        except jwt.PyJWTError:
            raise InvalidToken("token is signed by an unknown key") from None

    def _issuer_keys(self) -> _IssuerKeys:
        """The JWKS client, made on first use (discovery may fail at start-up); after a failure, no new attempt for
        `FETCH_FAILURE_BACKOFF` s, so an issuer outage is not hammered by every token."""
        with self._lock:
            if self._keys is not None:
                return self._keys
            if self.monotonic() - self._failed_at < FETCH_FAILURE_BACKOFF:
                raise IssuerUnavailable("the identity provider's signing keys are unavailable; retry later")
            try:
                keys = _IssuerKeys(
                    self._jwks_url(),
                    # Kept until a token names a key they lack: a rotation adds the new key before using it.
                    lifespan=KEYS_LIFESPAN,
                    timeout=self.settings.http_timeout,
                    cooldown_duration=self.settings.jwks_refetch_interval,
                )
                keys.get_jwk_set()
            except Exception as exc:  # network, JSON or key format: the issuer is unusable right now
                self._failed_at = self.monotonic()
                raise IssuerUnavailable(
                    f"the identity provider's signing keys are unavailable ({type(exc).__name__}); retry later"
                ) from None
            self._keys = keys
            return keys

    def _jwks_url(self) -> str:
        if self.settings.jwks_url:
            return self.settings.jwks_url
        issuer = str(self.settings.issuer).rstrip("/")
        document = self.fetch(f"{issuer}/.well-known/openid-configuration", self.settings.http_timeout)
        if document.get("issuer") != self.settings.issuer or not isinstance(document.get("jwks_uri"), str):
            raise ValueError("discovery document names another issuer or no jwks_uri")
        return str(document["jwks_uri"])


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
