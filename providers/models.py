"""Provider definitions: who may read which buckets, and with which credentials.

`PROVIDERS_CONFIG` holds either inline JSON or a path to a JSON/YAML file with a list of providers. The registry is
plain data: resolving a bucket to its owner happens here, credentials are fetched elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from providers.daacs import lookup_daac, url_origin
from providers.s3 import bucket_matches, is_glob, match_specificity

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
# Cognito's group-name rules, printable and without spaces (a group is compared exactly as the token names it).
GroupName = Annotated[str, Field(pattern=r"^[\w+=,.@:-]{1,128}$")]


class ProvidersConfigError(ValueError):
    """`PROVIDERS_CONFIG` is missing, unreadable or invalid; the message says which provider and field."""


class ProviderKind(StrEnum):
    EARTHDATA = "earthdata"  # temporary keys from a DAAC's s3credentials endpoint, stored by the rotator
    ASSUME_ROLE = "assume_role"  # STS AssumeRole into role_arn
    DEFAULT = "default"  # the process's own AWS identity
    UNSIGNED = "unsigned"  # anonymous reads of public buckets


class Provider(BaseModel):
    """One entry of `PROVIDERS_CONFIG`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    title: str | None = None
    kind: ProviderKind
    buckets: Annotated[tuple[str, ...], Field(min_length=1)]
    # A DAAC of the built-in catalogue (`providers.daacs`), case-insensitive; stored under its canonical name. It
    # fills `credentials_url` when that is not given (explicit fields win) and adds its distribution origins.
    daac: str | None = None
    credentials_url: str | None = None
    secret_id: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    region: str = "us-west-2"
    requester_pays: bool = False
    allow_download: bool = False
    # Who may read through this provider: anyone ("public"), any caller with a valid token ("authenticated"), or a
    # caller whose token names one of these groups. Checked by the raster API on every read.
    access: Annotated[Literal["public", "authenticated"] | tuple[GroupName, ...], Field(union_mode="left_to_right")] = (
        "public"
    )

    @field_validator("access", mode="before")
    @classmethod
    def _access_groups(cls, value: Any) -> Any:
        if isinstance(value, list | tuple) and not value:
            raise ValueError('access must be "public", "authenticated" or a non-empty list of group names')
        return value

    @field_validator("daac")
    @classmethod
    def _known_daac(cls, value: str | None) -> str | None:
        return None if value is None else lookup_daac(value).name

    @model_validator(mode="before")
    @classmethod
    def _fill_from_catalogue(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("daac"), str) and not data.get("credentials_url"):
            try:
                daac = lookup_daac(data["daac"])
            except ValueError:
                return data  # the field validator reports it, with the known names
            data = {**data, "credentials_url": daac.credentials_url}
        return data

    @model_validator(mode="after")
    def _kind_fields(self) -> Provider:
        if self.daac is not None and self.kind is not ProviderKind.EARTHDATA:
            raise ValueError("daac only applies to kind earthdata")
        if self.kind is ProviderKind.EARTHDATA:
            missing = [f for f in ("credentials_url", "secret_id") if not getattr(self, f)]
            if missing:
                raise ValueError(f"earthdata provider needs {', '.join(missing)}")
            if not self.credentials_url or not self.credentials_url.startswith(("https://", "http://")):
                raise ValueError("credentials_url must be an http(s) URL")
        if self.kind is ProviderKind.ASSUME_ROLE and not self.role_arn:
            raise ValueError("assume_role provider needs role_arn")
        if self.kind is not ProviderKind.ASSUME_ROLE and (self.role_arn or self.external_id):
            raise ValueError("role_arn/external_id only apply to kind assume_role")
        return self

    def serves(self, bucket: str) -> str | None:
        """The most specific of this provider's patterns that names `bucket`, or None."""
        matching = [p for p in self.buckets if bucket_matches(p, bucket)]
        return max(matching, key=match_specificity) if matching else None

    @property
    def is_public(self) -> bool:
        return self.access == "public"

    @property
    def groups(self) -> tuple[str, ...]:
        """The groups that may read through this provider (empty: no group needed)."""
        return self.access if isinstance(self.access, tuple) else ()

    @property
    def display_title(self) -> str:
        return self.title or self.name

    @property
    def distribution_origins(self) -> tuple[str, ...]:
        """The `scheme://host[:port]` origins whose `https://<origin>/<bucket>/<key>` URLs name this provider's S3
        objects: the catalogue DAAC's distribution origins, then the origin of `credentials_url` (deduplicated, in that
        order). Origins the catalogue knows do not use bucket names as paths are left out."""
        origins: list[str] = []
        excluded: tuple[str, ...] = ()
        if self.daac is not None:
            daac = lookup_daac(self.daac)
            origins.extend(daac.distribution_origins)
            excluded = daac.non_bucket_origins
        if self.credentials_url:
            origins.append(url_origin(self.credentials_url))
        return tuple(o for o in dict.fromkeys(origins) if o not in excluded)


_ProviderList = TypeAdapter(list[Provider])


def _read_raw(value: str) -> Any:
    text = value.strip()
    if text.startswith(("[", "{")):
        return json.loads(text)
    path = Path(text).expanduser()
    if not path.is_file():
        raise ProvidersConfigError(f"PROVIDERS_CONFIG is neither inline JSON nor a readable file: {text[:80]!r}")
    content = path.read_text()
    if path.suffix.lower() in {".yaml", ".yml"}:
        import yaml  # only for YAML files: keeps it out of every Lambda cold start

        try:
            return yaml.safe_load(content)
        except yaml.YAMLError as exc:
            raise ProvidersConfigError(f"PROVIDERS_CONFIG file {path} is not valid YAML: {exc}") from None
    return json.loads(content)


def parse_providers(raw: Any) -> list[Provider]:
    """Validate a decoded config (a list, or a mapping with a `providers` list)."""
    if isinstance(raw, dict) and "providers" in raw:
        raw = raw["providers"]
    if not isinstance(raw, list):
        raise ProvidersConfigError("PROVIDERS_CONFIG must hold a list of providers")
    try:
        providers = _ProviderList.validate_python(raw)
    except ValidationError as exc:
        raise ProvidersConfigError(_describe(exc, raw)) from None
    _check_unique(providers)
    return providers


def load_providers(value: str | None) -> list[Provider]:
    """Read `PROVIDERS_CONFIG` (inline JSON or a JSON/YAML file path)."""
    if not value or not value.strip():
        raise ProvidersConfigError("PROVIDERS_CONFIG is not set")
    try:
        raw = _read_raw(value)
    except json.JSONDecodeError as exc:
        raise ProvidersConfigError(f"PROVIDERS_CONFIG is not valid JSON: {exc}") from None
    return parse_providers(raw)


def _describe(exc: ValidationError, raw: Sequence[Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = "PROVIDERS_CONFIG"
        first = loc[0] if loc else None
        if isinstance(first, int):
            index = first
            loc.pop(0)
            entry = raw[index] if index < len(raw) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            where = f"provider {name!r}" if name else f"provider #{index}"
        field = ".".join(str(p) for p in loc)
        lines.append(f"{where}{' field ' + field if field else ''}: {err['msg']}")
    return "invalid PROVIDERS_CONFIG: " + "; ".join(lines)


def _check_unique(providers: Iterable[Provider]) -> None:
    seen_names: set[str] = set()
    owners: dict[str, str] = {}
    for provider in providers:
        if provider.name in seen_names:
            raise ProvidersConfigError(f"invalid PROVIDERS_CONFIG: provider name {provider.name!r} is used twice")
        seen_names.add(provider.name)
        for pattern in provider.buckets:
            # Equal patterns would make ownership ambiguous; distinct globs are ranked by match_specificity.
            other = owners.setdefault(pattern, provider.name)
            if other != provider.name:
                kind = "bucket pattern" if is_glob(pattern) else "bucket"
                raise ProvidersConfigError(
                    f"invalid PROVIDERS_CONFIG: {kind} {pattern!r} is listed by both {other!r} and {provider.name!r}"
                )


def owner_of(providers: Iterable[Provider], bucket: str) -> Provider | None:
    """The provider that owns `bucket`: the one whose matching pattern is most specific.

    Ownership is exclusive: a request naming another provider for this bucket must be refused.
    """
    best: tuple[tuple[int, int], Provider] | None = None
    for provider in providers:
        pattern = provider.serves(bucket)
        if pattern is None:
            continue
        rank = match_specificity(pattern)
        if best is None or rank > best[0]:
            best = (rank, provider)
    return best[1] if best else None
