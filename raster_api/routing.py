"""Provider routing: which provider may read a URL, and the GDAL environment that reads it with its credentials.

Reads go through `raster_api.reading` (the provider-read seam), which builds on this router:

- `parse_url(url) -> S3Location`: the one parser of dataset URLs (`s3://`, a DAAC's https distribution URL);
  keys GDAL would rewrite are refused (`providers.s3`), so the location checked is the object read.
- `owner(bucket)`, `check_access(provider_name, bucket)`: the ownership rules.
- `gdal_env(provider) -> dict`: kwargs for `rasterio.Env(**env)`.
- `credentials(provider) -> AwsCredentials | None`: the provider's current keys (None for `unsigned`).
- `force_refresh(provider)`: fetch fresh credentials after S3 refused a read (bounded per provider).
- `provider_health(name)`: a provider's credential health for `/providers`.

Ownership is exclusive (`providers.models.owner_of`): a request naming provider B for provider A's bucket is refused
before GDAL is ever called, which is also what keeps GDAL's path-keyed caches from serving A's bytes to B.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any
from urllib.parse import unquote, urlsplit

from botocore import UNSIGNED
from botocore.config import Config
from botocore.credentials import ReadOnlyCredentials
from botocore.exceptions import BotoCoreError, ClientError
from rasterio.session import AWSSession

from providers import Provider, ProviderKind, S3Location, parse_s3_url
from providers.aws import client, client_config
from providers.daacs import url_origin
from providers.models import owner_of
from providers.s3 import InvalidS3Location
from raster_api import gdal
from raster_api.credentials import AwsCredentials, CredentialCache, CredentialHealth
from raster_api.errors import BucketNotServed, InvalidDatasetUrl, S3Failure, UnknownProvider, classify_s3_answer
from raster_api.settings import CredentialSettings, GdalSettings, Settings


def _shown(url: str, limit: int = 200) -> str:
    """The URL as a 400 message quotes it: repr (control characters visible), and not kilobytes of it."""
    return repr(url) if len(url) <= limit else repr(url[:limit]) + f"... ({len(url)} characters)"


class _Current:
    """Marker for "the provider's current credentials" (None already means unsigned)."""


CURRENT = _Current()


class ResolvedRead(str):
    """A dataset URL resolved to the provider that reads it. As a `str` it is the canonical `s3://bucket/key`: the
    value rio-tiler's `input` slot holds (and titiler's WMTS names a layer by), so the resolved read travels through
    the libraries' own typed slots to the provider-read seam."""

    provider: Provider
    location: S3Location

    def __new__(cls, provider: Provider, location: S3Location) -> ResolvedRead:
        read = super().__new__(cls, location.url)
        read.provider = provider
        read.location = location
        return read

    def __reduce__(self) -> tuple[Any, ...]:
        return (ResolvedRead, (self.provider, self.location))

    @property
    def gdal_path(self) -> str:
        return self.location.gdal_path

    @property
    def url(self) -> str:
        return self.location.url


class _ProviderSession:
    """A provider's key set as GDAL (`rasterio`'s `AWSSession`) and boto3 (an S3 client, built when first asked) use
    it; `credentials` None is an unsigned provider."""

    def __init__(
        self,
        provider: Provider,
        credentials: AwsCredentials | None,
        settings: CredentialSettings,
        gdal_config: dict[str, str],
    ) -> None:
        self.provider = provider
        self.credentials = credentials
        self.settings = settings
        self.gdal_config = gdal_config
        if credentials is None:
            self.gdal = AWSSession(aws_unsigned=True, region_name=provider.region)
        else:
            keys = _Keys(credentials.access_key_id, credentials.secret_access_key, credentials.session_token)
            self.gdal = AWSSession(session=_KeysSession(keys, provider.region), requester_pays=provider.requester_pays)

    @cached_property
    def s3(self) -> Any:
        """A boto3 S3 client that asks the S3 GDAL asks (`AWS_S3_ENDPOINT`, `AWS_HTTPS`, `AWS_VIRTUAL_HOSTING`), with
        these keys."""
        s = self.settings
        config = client_config(s.aws_connect_timeout, s.aws_read_timeout, s.aws_max_attempts)
        extra: dict[str, Any] = {}
        # GDAL's default endpoint, not boto3's `AWS_ENDPOINT_URL`: the answer must come from where GDAL read.
        endpoint = self.gdal_config.get("AWS_S3_ENDPOINT") or f"s3.{self.provider.region}.amazonaws.com"
        scheme = "http" if self.gdal_config.get("AWS_HTTPS", "YES").upper() in ("NO", "FALSE", "OFF") else "https"
        extra["endpoint_url"] = f"{scheme}://{endpoint}"
        if self.gdal_config.get("AWS_VIRTUAL_HOSTING", "TRUE").upper() in ("NO", "FALSE", "OFF"):
            config = config.merge(Config(s3={"addressing_style": "path"}))
        if self.credentials is None:
            config = config.merge(Config(signature_version=UNSIGNED))
        else:
            extra.update(
                aws_access_key_id=self.credentials.access_key_id,
                aws_secret_access_key=self.credentials.secret_access_key,
                aws_session_token=self.credentials.session_token,
            )
        return client("s3", region=self.provider.region, config=config, **extra)


@dataclass(frozen=True)
class _Keys:
    """Fixed keys in the shape botocore's credentials take (`get_frozen_credentials`)."""

    access_key: str
    secret_key: str
    token: str | None

    def get_frozen_credentials(self) -> ReadOnlyCredentials:
        return ReadOnlyCredentials(self.access_key, self.secret_key, self.token)


@dataclass(frozen=True)
class _KeysSession:
    """What rasterio's `AWSSession(session=...)` reads of a boto3 session (its keys and region): building a real one
    costs milliseconds, on the first tile after every credential refresh."""

    keys: _Keys
    region_name: str

    def get_credentials(self) -> _Keys:
        return self.keys


class ProviderRouter:
    """Routes reads to providers and hands out each provider's GDAL environment."""

    def __init__(
        self, providers: Sequence[Provider], credentials: CredentialCache, gdal_settings: GdalSettings | None = None
    ) -> None:
        self.providers: dict[str, Provider] = {p.name: p for p in providers}
        self.credential_cache = credentials
        self.gdal_config = gdal.gdal_config(gdal_settings)
        self._sessions: dict[str, _ProviderSession] = {}
        self._sessions_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ProviderRouter:
        """Load `PROVIDERS_CONFIG` (raising `ProvidersConfigError`) and wire GDAL cache invalidation on rotation."""
        providers = settings.providers.load()
        cache = CredentialCache(
            providers, settings.credentials, on_rotation=lambda p: gdal.invalidate_buckets(p.buckets)
        )
        gdal.configure_process(settings.gdal)
        return cls(providers, cache, settings.gdal)

    # -- routing ----------------------------------------------------------------------------------------------

    def provider(self, name: str) -> Provider:
        try:
            return self.providers[name]
        except KeyError:
            raise self.unknown_provider(name) from None

    def unknown_provider(self, name: str) -> UnknownProvider:
        """The answer to a provider name that does not exist (or, to a caller who may not read it, is restricted)."""
        # Restricted providers are not named to whoever mistyped a name (`/providers` lists them to readers).
        known = ", ".join(sorted(n for n, p in self.providers.items() if p.is_public))
        return UnknownProvider(f"unknown provider {name!r}; known providers: {known}")

    def owner(self, bucket: str) -> Provider | None:
        return owner_of(self.providers.values(), bucket)

    def check_access(self, provider_name: str | None, bucket: str) -> Provider:
        """The provider that reads `bucket`: the named one if it owns the bucket, else the owner; or 403."""
        named = self.provider(provider_name) if provider_name else None
        owner = self.owner(bucket)
        if owner is None:
            who = f"provider {named.name!r}" if named else "any provider"
            raise BucketNotServed(f"bucket {bucket!r} is not served by {who}")
        if named is not None and named.name != owner.name:
            raise BucketNotServed(f"provider {named.name!r} does not serve bucket {bucket!r}")
        return owner

    def parse_url(self, url: str) -> S3Location:
        """`s3://bucket/key` (key taken literally), or a DAAC distribution URL
        `https://<one of the owner's distribution_origins>/<bucket>/<key>` (path percent-decoded exactly once)."""
        try:
            if url.startswith("s3://"):
                return parse_s3_url(url)
            location = self._distribution_location(url)
        except InvalidS3Location as exc:
            raise InvalidDatasetUrl(f"url {_shown(url)} is refused: {exc}") from None
        if location is None:
            raise InvalidDatasetUrl(
                "url must be s3://bucket/key (or a DAAC's https distribution URL) to be read with provider "
                f"credentials: {_shown(url)}"
            )
        return location

    def _distribution_location(self, url: str) -> S3Location | None:
        """The S3 object a DAAC's distribution URL names, or None when `url` is not one of a configured DAAC."""
        try:
            parts = urlsplit(url)
            origin = url_origin(url)
        except ValueError:  # e.g. a port that is not a number
            return None
        if parts.scheme not in ("https", "http") or not parts.netloc or "@" in parts.netloc:
            return None
        owners = [
            p for p in self.providers.values() if p.kind is ProviderKind.EARTHDATA and origin in p.distribution_origins
        ]
        if not owners:
            return None
        if parts.query or parts.fragment:
            raise InvalidS3Location("a distribution URL may not carry a query string or a fragment")
        try:
            path = unquote(parts.path, errors="strict")
        except UnicodeDecodeError:
            raise InvalidS3Location("its percent-encoding is not UTF-8") from None
        bucket, _, key = path.removeprefix("/").partition("/")
        location = S3Location(bucket=bucket, key=key)
        # A DAAC's host names only that DAAC's buckets.
        owner = self.owner(location.bucket)
        return location if owner is not None and owner in owners else None

    # -- credentials and GDAL ---------------------------------------------------------------------------------

    def _provider(self, provider: Provider | str) -> Provider:
        return self.provider(provider) if isinstance(provider, str) else provider

    def credentials(self, provider: Provider | str) -> AwsCredentials | None:
        """Current keys of `provider` (None for `unsigned`); raises `CredentialsUnavailable`."""
        return self.credential_cache.get(self._provider(provider).name)

    def force_refresh(self, provider: Provider | str) -> AwsCredentials | None:
        """After S3 refused a read: fetch fresh credentials unless a forced refresh of this provider happened within
        `forced_refresh_interval` (strangers sending refused reads cannot make us call AWS in a loop). Returns the
        provider's current credentials. A key change clears GDAL's cache of the provider's buckets."""
        return self.credential_cache.refresh(self._provider(provider).name)

    def gdal_env(
        self, provider: Provider | str, credentials: AwsCredentials | None | _Current = CURRENT
    ) -> dict[str, Any]:
        """kwargs for `rasterio.Env(**env)` reading with `provider`'s credentials (its current ones unless given)
        and the Lambda GDAL settings.

        `AWS_SESSION_TOKEN` is always set explicitly (empty when the provider has none): otherwise GDAL would combine
        the provider's keys with the Lambda's own `AWS_SESSION_TOKEN` from the process environment.
        """
        provider = self._provider(provider)
        creds = self.credentials(provider) if isinstance(credentials, _Current) else credentials
        env: dict[str, Any] = {**self.gdal_config, "session": self._session(provider, creds).gdal}
        env["AWS_REGION"] = provider.region
        if creds is None:
            # GDAL ignores any key (from the environment too) when told not to sign.
            env.update(AWS_NO_SIGN_REQUEST="YES", AWS_SESSION_TOKEN="")
        else:
            env.update(AWS_NO_SIGN_REQUEST="NO", AWS_SESSION_TOKEN=creds.session_token or "")
        if provider.requester_pays:
            env["AWS_REQUEST_PAYER"] = "requester"
        return env

    def _session(self, provider: Provider, creds: AwsCredentials | None) -> _ProviderSession:
        """One session per provider and key set (building a boto3 session per tile would be wasteful)."""
        cached = self._sessions.get(provider.name)
        if cached is not None and cached.credentials == creds:
            return cached
        session = _ProviderSession(provider, creds, self.credential_cache.settings, self.gdal_config)
        with self._sessions_lock:
            self._sessions[provider.name] = session
        return session

    def object_failure(self, read: ResolvedRead, credentials: AwsCredentials | None) -> S3Failure | None:
        """What S3 answers a GET of the object's first byte with these credentials; None when it is readable.

        GDAL reports the error of its *last* request, which need not be the object's: GDAL 3.12 follows a `NoSuchKey`
        with a listing probe (`?delimiter=/&prefix=<key>/`), which keys without `s3:ListBucket` get refused. A
        missing object must read as missing, and only a refusal of the object itself may force a credential refresh.
        A ranged GET rather than `HeadObject`: it is the request GDAL makes, and the permission `s3:GetObject` covers.
        """
        provider = read.provider
        extra = {"RequestPayer": "requester"} if provider.requester_pays else {}
        try:
            answer = self._session(provider, credentials).s3.get_object(
                Bucket=read.location.bucket, Key=read.location.key, Range="bytes=0-0", **extra
            )
            answer["Body"].close()
        except ClientError as exc:
            error = exc.response.get("Error", {})
            http_status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if http_status == 416:  # an empty object exists
                return None
            return classify_s3_answer(str(error.get("Code", "")), http_status)
        except BotoCoreError:
            return S3Failure.OTHER
        return None

    # -- health -----------------------------------------------------------------------------------------------

    def forget(self) -> None:
        """Drop every provider's credentials and the GDAL/boto3 sessions built from them (before a snapshot)."""
        self.credential_cache.forget()
        with self._sessions_lock:
            self._sessions.clear()

    def provider_health(self, name: str) -> CredentialHealth:
        return self.credential_cache.health(self.provider(name).name)
