"""Per-provider AWS credentials, cached so that no tile costs a Secrets Manager or STS call.

Each provider kind has one fetcher: `earthdata` reads the secret the rotator writes, `assume_role` calls STS
AssumeRole, `default` takes the process identity from botocore's default chain, `unsigned` has no credentials.
The cache refreshes ahead of `expiration` and at least every `refresh_interval`, one refresh at a time per provider,
and keeps serving still-valid credentials when a refresh fails. When there is nothing valid to serve it raises
`CredentialsUnavailable`: there is never a fallback to another identity.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent import futures
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import botocore.credentials
import botocore.session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from providers import Provider, ProviderKind, S3Credentials
from providers.aws import client, client_config
from raster_api.errors import CredentialsUnavailable
from raster_api.settings import CredentialSettings

logger = logging.getLogger(__name__)

# STS's shortest session.
STS_MIN_DURATION = 900


@dataclass(frozen=True)
class AwsCredentials:
    """One provider's keys. `repr` never shows a secret, so a stray log line cannot leak one."""

    access_key_id: str = field(repr=False)
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)
    expiration: datetime | None = None

    def seconds_left(self, now: datetime | None = None) -> float | None:
        if self.expiration is None:
            return None
        return (self.expiration - (now or datetime.now(UTC))).total_seconds()

    def secret_values(self) -> tuple[str, ...]:
        """Values that must never appear in a response or a log line."""
        return tuple(v for v in (self.secret_access_key, self.session_token) if v)


Fetcher = Callable[[Provider], AwsCredentials]


class CredentialFetchError(Exception):
    """A fetch failed; the message names the provider and the cause, never a credential."""


@dataclass(frozen=True)
class CredentialHealth:
    """What `/providers` shows about a provider's credentials (no key, no token)."""

    kind: str
    expires_at: datetime | None
    seconds_left: float | None
    last_refresh: datetime | None
    last_error: str | None
    available: bool
    last_forced_refresh: datetime | None = None


@dataclass
class _Entry:
    credentials: AwsCredentials | None = None
    fetched_at: float | None = None  # the cache's clock() at the last successful fetch
    refreshed_at: datetime | None = None
    failed_at: float | None = None
    last_error: str | None = None
    forced_at: float | None = None  # the cache's clock() at the last forced refresh (S3 refused a read)
    forced_refreshed_at: datetime | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client_error_message(exc: Exception) -> str:
    """A short cause for `last_error` and the 503 body: the AWS error code, never a raw response body."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "Error")
        if "<" in code or not code.replace(".", "").isalnum():
            code = f"HTTP {exc.response.get('ResponseMetadata', {}).get('HTTPStatusCode', '?')}"
        return code
    return type(exc).__name__


class AwsFetchers:
    """The AWS calls behind each provider kind, with bounded timeouts and botocore's standard retries."""

    def __init__(self, settings: CredentialSettings) -> None:
        self.settings = settings
        self.config = client_config(settings.aws_connect_timeout, settings.aws_read_timeout, settings.aws_max_attempts)
        # One client per service and region, built once (a boto3 client costs tens of ms to build, more than the call
        # it makes): the refreshes of a warm container, and those after a SnapStart restore, pay only the call.
        self._client = functools.cache(lambda service, region: client(service, region=region, config=self.config))
        # The process's own identity (the `default` kind), resolved through one botocore resolver built once: it
        # reads the environment or Lambda's container credentials endpoint at each call, but building it (a boto3
        # session and an HTTPS context) costs tens of ms, which a SnapStart restore would pay for every provider.
        self._identity = functools.cache(
            lambda: botocore.credentials.create_credential_resolver(botocore.session.get_session())
        )

    def earthdata(self, provider: Provider) -> AwsCredentials:
        try:
            secret = self._client("secretsmanager", None).get_secret_value(SecretId=provider.secret_id)
        except (ClientError, BotoCoreError) as exc:
            raise CredentialFetchError(
                f"cannot read secret {provider.secret_id!r}: {_client_error_message(exc)}"
            ) from None
        try:
            creds = S3Credentials.model_validate_json(secret.get("SecretString") or "")
        except ValidationError as exc:
            fields = ", ".join(str(e["loc"][0]) for e in exc.errors() if e["loc"]) or "value"
            raise CredentialFetchError(
                f"secret {provider.secret_id!r} is not valid s3credentials JSON ({fields})"
            ) from None
        return AwsCredentials(creds.access_key_id, creds.secret_access_key, creds.session_token, creds.expiration)

    def assume_role(self, provider: Provider) -> AwsCredentials:
        return self.assume(
            str(provider.role_arn),
            f"raster-api-{provider.name}",
            self.settings.assume_role_duration,
            region=provider.region,
            external_id=provider.external_id,
        )

    def assume(
        self,
        role_arn: str,
        session_name: str,
        duration: int,
        region: str | None = None,
        external_id: str | None = None,
        policy: str | None = None,
    ) -> AwsCredentials:
        """STS AssumeRole; `policy` (an inline session policy) narrows what the session may do below the role's."""
        extra: dict[str, str] = {}
        if external_id:
            extra["ExternalId"] = external_id
        if policy:
            extra["Policy"] = policy
        try:
            answer = self._client("sts", region).assume_role(
                RoleArn=role_arn, RoleSessionName=session_name[:64], DurationSeconds=duration, **extra
            )["Credentials"]
        except (ClientError, BotoCoreError) as exc:
            raise CredentialFetchError(f"cannot assume role {role_arn}: {_client_error_message(exc)}") from None
        return AwsCredentials(
            answer["AccessKeyId"], answer["SecretAccessKey"], answer["SessionToken"], answer["Expiration"]
        )

    def default(self, provider: Provider) -> AwsCredentials:
        credentials = self._identity().load_credentials()
        if credentials is None:
            raise CredentialFetchError("the process has no AWS identity")
        expiry = getattr(credentials, "_expiry_time", None)  # refreshable credentials (Lambda, ECS, IMDS)
        frozen = credentials.get_frozen_credentials()
        return AwsCredentials(frozen.access_key, frozen.secret_key, frozen.token or None, expiry)

    def as_mapping(self) -> dict[ProviderKind, Fetcher]:
        return {
            ProviderKind.EARTHDATA: self.earthdata,
            ProviderKind.ASSUME_ROLE: self.assume_role,
            ProviderKind.DEFAULT: self.default,
        }


class CredentialCache:
    """Credentials per provider, refreshed ahead of expiry, never fetched per tile.

    `on_rotation(provider)` runs when a provider's access key changes (the router clears GDAL's cache there).
    """

    def __init__(
        self,
        providers: Iterable[Provider],
        settings: CredentialSettings | None = None,
        fetchers: Mapping[ProviderKind, Fetcher] | None = None,
        on_rotation: Callable[[Provider], None] | None = None,
    ) -> None:
        self.settings = settings or CredentialSettings()
        self.providers = {p.name: p for p in providers}
        # The one way to AWS's credential services (bounded timeouts, standard retries), also for scoped sessions.
        self.aws = AwsFetchers(self.settings)
        self.fetchers = dict(fetchers) if fetchers is not None else self.aws.as_mapping()
        self.on_rotation = on_rotation
        self._entries = {name: _Entry() for name in self.providers}
        # Injectable clocks (tests move time on instead of sleeping): ages and intervals, and wall time for expiry.
        self.clock: Callable[[], float] = time.monotonic
        self.now: Callable[[], datetime] = lambda: datetime.now(UTC)

    def get(self, name: str) -> AwsCredentials | None:
        """Valid credentials for provider `name` (None for `unsigned`); raise `CredentialsUnavailable`."""
        provider = self.providers[name]
        if provider.kind is ProviderKind.UNSIGNED:
            return None
        entry = self._entries[name]
        if not self._needs_refresh(entry) and self._usable(entry.credentials) is not None:
            return entry.credentials
        usable = self._usable(entry.credentials)
        if usable is not None:
            # Someone else is refreshing: keep reading with what is still valid rather than queueing.
            if entry.lock.acquire(blocking=False):
                try:
                    if self._needs_refresh(entry):
                        self._refresh(provider, entry)
                finally:
                    entry.lock.release()
            return self._usable(entry.credentials) or self._unavailable(provider, entry)
        if not entry.lock.acquire(timeout=self.settings.lock_timeout):
            raise CredentialsUnavailable(provider.name, "a credential refresh is taking too long")
        try:
            if self._usable(entry.credentials) is None and not self._backing_off(entry):
                self._refresh(provider, entry)
        finally:
            entry.lock.release()
        return self._usable(entry.credentials) or self._unavailable(provider, entry)

    def refresh(self, name: str) -> AwsCredentials | None:
        """Fetch now (S3 refused a read), at most once per `forced_refresh_interval` per provider; then `get`."""
        provider = self.providers[name]
        if provider.kind is ProviderKind.UNSIGNED:
            return None
        entry = self._entries[name]
        with entry.lock:
            now = self.clock()
            if entry.forced_at is None or now - entry.forced_at >= self.settings.forced_refresh_interval:
                entry.forced_at = now
                entry.forced_refreshed_at = self.now()
                self._refresh(provider, entry)
        return self.get(name)

    def scoped_session(self, provider: Provider, role_arn: str, session_name: str, policy: str) -> AwsCredentials:
        """A short STS session of `role_arn` narrowed by an inline session `policy` (a download of one object), for
        `provider` (its region and external id); not cached: each is for one caller and one object."""
        return self.aws.assume(
            role_arn,
            session_name,
            STS_MIN_DURATION,
            region=provider.region,
            external_id=provider.external_id,
            policy=policy,
        )

    def prefetch(self, deadline: float | None = None) -> None:
        """Fetch every provider's credentials now, side by side (at start-up: Lambda's init phase, or after a
        SnapStart restore), so the first tile pays no Secrets Manager or STS call; a failure is recorded for
        `/providers`, never raised. With a `deadline` (seconds), fetches still running then finish in the
        background."""
        signed = [name for name, p in self.providers.items() if p.kind is not ProviderKind.UNSIGNED]
        if not signed:
            return

        def fetch(name: str) -> None:
            # A failure is recorded in the entry's last_error; requests answer 503 until a refresh succeeds.
            with contextlib.suppress(CredentialsUnavailable):
                self.get(name)

        pool = ThreadPoolExecutor(max_workers=min(8, len(signed)), thread_name_prefix="credentials")
        try:
            futures.wait([pool.submit(fetch, name) for name in signed], timeout=deadline)
        finally:
            pool.shutdown(wait=False)

    def forget(self) -> None:
        """Drop every provider's credentials and refresh history (before a SnapStart snapshot: keys must not be
        restored hours later, when they have expired or been rotated)."""
        for name in self.providers:
            with self._entries[name].lock:
                self._entries[name] = _Entry()

    def health(self, name: str) -> CredentialHealth:
        provider = self.providers[name]
        entry = self._entries[name]
        creds = entry.credentials
        seconds_left = creds.seconds_left(self.now()) if creds else None
        return CredentialHealth(
            kind=provider.kind.value,
            expires_at=creds.expiration if creds else None,
            seconds_left=round(seconds_left, 1) if seconds_left is not None else None,
            last_refresh=entry.refreshed_at,
            last_error=entry.last_error,
            available=provider.kind is ProviderKind.UNSIGNED or self._usable(creds) is not None,
            last_forced_refresh=entry.forced_refreshed_at,
        )

    # -- internals ---------------------------------------------------------------------------------------------

    def _usable(self, creds: AwsCredentials | None) -> AwsCredentials | None:
        """Credentials that have not expired (a small safety margin for the read itself)."""
        if creds is None:
            return None
        left = creds.seconds_left(self.now())
        return creds if left is None or left > 5 else None

    def _needs_refresh(self, entry: _Entry) -> bool:
        creds = entry.credentials
        if creds is None or entry.fetched_at is None:
            return True
        if self._backing_off(entry):
            return False
        age = self.clock() - entry.fetched_at
        if age >= self.settings.refresh_interval:
            return True
        left = creds.seconds_left(self.now())
        # Inside the margin, re-check at most every `near_expiry_recheck` s while the rotator catches up.
        return left is not None and left <= self.settings.refresh_margin and age >= self.settings.near_expiry_recheck

    def _backing_off(self, entry: _Entry) -> bool:
        return entry.failed_at is not None and self.clock() - entry.failed_at < self.settings.failure_backoff

    def _refresh(self, provider: Provider, entry: _Entry) -> None:
        """Fetch and store; on failure keep what we have and record why (for `/providers`)."""
        try:
            creds = self.fetchers[provider.kind](provider)
            left = creds.seconds_left(self.now())
            if left is not None and left <= 5:
                raise CredentialFetchError(f"credentials expired at {creds.expiration:%Y-%m-%d %H:%M:%S%z}")
        except CredentialFetchError as exc:
            self._record_failure(provider, entry, str(exc))
            return
        except Exception as exc:  # a fetcher bug must not take the provider's still-valid keys with it
            self._record_failure(provider, entry, f"unexpected {type(exc).__name__}")
            logger.exception("credential refresh crashed for provider %s", provider.name)
            return
        rotated = entry.credentials is not None and entry.credentials.access_key_id != creds.access_key_id
        entry.credentials = creds
        entry.fetched_at = self.clock()
        entry.refreshed_at = self.now()
        entry.failed_at = None
        entry.last_error = None
        logger.info("credentials refreshed for provider %s (expires %s)", provider.name, creds.expiration)
        if rotated and self.on_rotation is not None:
            self.on_rotation(provider)

    def _record_failure(self, provider: Provider, entry: _Entry, message: str) -> None:
        entry.failed_at = self.clock()
        entry.last_error = message
        logger.warning("credential refresh failed for provider %s: %s", provider.name, message)

    def _unavailable(self, provider: Provider, entry: _Entry) -> AwsCredentials:
        reason = entry.last_error or "no valid credentials"
        raise CredentialsUnavailable(provider.name, reason)
