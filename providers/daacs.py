"""The built-in catalogue of NASA Earthdata DAACs: `"daac": "LPDAAC"` in a provider entry instead of hand-copied URLs.

A DAAC's `s3credentials` endpoint and https distribution host copied by hand show a typo only at the first
rotation, so each DAAC is data here: its `s3credentials` endpoint (from earthaccess's DAAC table), the
origins whose https URLs are `https://<origin>/<bucket>/<key>` for an object `s3://<bucket>/<key>` (its TEA
distribution), and the bucket names known to belong to it (what the example providers file lists).

A DAAC whose https paths are not bucket names (GES DISC's `/data/...`, ORNL DAAC's `/protected/...`, ASF's datapool
paths) lists those origins in `non_bucket_origins`, so a provider never maps them to a bucket by guessing.
Names are matched case-insensitively, ignoring `.`, `-`, `_` and spaces; the CMR provider id works too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

_IGNORED = str.maketrans("", "", ".-_ ")


@dataclass(frozen=True)
class Daac:
    """One DAAC of the catalogue."""

    name: str  # canonical catalogue name, e.g. "LPDAAC"
    title: str
    cmr_provider: str
    credentials_url: str
    distribution_origins: tuple[str, ...] = ()
    non_bucket_origins: tuple[str, ...] = ()
    buckets: tuple[str, ...] = ()
    aliases: tuple[str, ...] = ()


def normalise_daac_name(name: str) -> str:
    """`"PO.DAAC"`, `"po-daac"` and `"podaac"` are the same key."""
    return name.translate(_IGNORED).lower()


def url_origin(url: str) -> str:
    """`scheme://host[:port]` of an http(s) URL, lowercased, the default port left out."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    default = {"https": 443, "http": 80}.get(scheme)
    port = f":{parts.port}" if parts.port and parts.port != default else ""
    return f"{scheme}://{host}{port}"


DAACS: tuple[Daac, ...] = (
    Daac(
        name="LPDAAC",
        title="LP DAAC (Land Processes)",
        cmr_provider="LPCLOUD",
        credentials_url="https://data.lpdaac.earthdatacloud.nasa.gov/s3credentials",
        distribution_origins=("https://data.lpdaac.earthdatacloud.nasa.gov",),
        buckets=("lp-prod-protected", "lp-prod-public"),
    ),
    Daac(
        name="NSIDC",
        title="NSIDC DAAC (snow and ice)",
        cmr_provider="NSIDC_CPRD",
        credentials_url="https://data.nsidc.earthdatacloud.nasa.gov/s3credentials",
        distribution_origins=("https://data.nsidc.earthdatacloud.nasa.gov",),
        buckets=("nsidc-cumulus-prod-protected", "nsidc-cumulus-prod-public"),
    ),
    Daac(
        name="PODAAC",
        title="PO.DAAC (physical oceanography)",
        cmr_provider="POCLOUD",
        credentials_url="https://archive.podaac.earthdata.nasa.gov/s3credentials",
        distribution_origins=("https://archive.podaac.earthdata.nasa.gov",),
        buckets=("podaac-ops-cumulus-protected", "podaac-ops-cumulus-public"),
    ),
    Daac(
        name="GESDISC",
        title="GES DISC (Goddard Earth Sciences)",
        cmr_provider="GES_DISC",
        credentials_url="https://data.gesdisc.earthdata.nasa.gov/s3credentials",
        non_bucket_origins=("https://data.gesdisc.earthdata.nasa.gov",),  # https paths are /data/<collection>/...
        buckets=("gesdisc-cumulus-prod-protected",),
    ),
    Daac(
        name="ORNLDAAC",
        title="ORNL DAAC (biogeochemical dynamics)",
        cmr_provider="ORNL_CLOUD",
        credentials_url="https://data.ornldaac.earthdata.nasa.gov/s3credentials",
        non_bucket_origins=("https://data.ornldaac.earthdata.nasa.gov",),  # https paths are /protected/<project>/...
        buckets=("ornl-cumulus-prod-protected",),
    ),
    Daac(
        name="ASDC",
        title="ASDC (Atmospheric Science Data Center, LaRC)",
        cmr_provider="LARC_CLOUD",
        credentials_url="https://data.asdc.earthdata.nasa.gov/s3credentials",
        distribution_origins=("https://data.asdc.earthdata.nasa.gov",),
        buckets=("asdc-prod-protected", "asdc-prod-public"),
        aliases=("LARC",),
    ),
    Daac(
        name="GHRC",
        title="GHRC DAAC (Global Hydrometeorology)",
        cmr_provider="GHRC_DAAC",
        credentials_url="https://data.ghrc.earthdata.nasa.gov/s3credentials",
    ),
    Daac(
        name="ASF",
        title="ASF DAAC (Alaska Satellite Facility)",
        cmr_provider="ASF",
        credentials_url="https://sentinel1.asf.alaska.edu/s3credentials",
        non_bucket_origins=("https://sentinel1.asf.alaska.edu",),  # datapool paths (/SLC/SA/...), not buckets
    ),
    Daac(
        name="OBDAAC",
        title="OB.DAAC (ocean biology)",
        cmr_provider="OB_CLOUD",
        credentials_url="https://obdaac-tea.earthdatacloud.nasa.gov/s3credentials",
        distribution_origins=("https://obdaac-tea.earthdatacloud.nasa.gov",),
        buckets=("ob-cumulus-prod-public",),
    ),
    Daac(
        name="LAADS",
        title="LAADS DAAC (Level-1 and Atmosphere)",
        cmr_provider="LAADS",
        credentials_url="https://data.laadsdaac.earthdatacloud.nasa.gov/s3credentials",
        distribution_origins=("https://data.laadsdaac.earthdatacloud.nasa.gov",),
        buckets=("prod-lads",),
    ),
)


def _index(daacs: tuple[Daac, ...]) -> Mapping[str, Daac]:
    index: dict[str, Daac] = {}
    for daac in daacs:
        for key in (daac.name, daac.cmr_provider, *daac.aliases):
            other = index.setdefault(normalise_daac_name(key), daac)
            if other is not daac:
                raise RuntimeError(f"DAAC catalogue: {key!r} names both {other.name} and {daac.name}")
    return index


_BY_KEY = _index(DAACS)


def known_daac_names() -> tuple[str, ...]:
    """The canonical names, sorted: what an "unknown DAAC" message lists."""
    return tuple(sorted(d.name for d in DAACS))


class UnknownDaacError(ValueError):
    """The name is not in the catalogue; the message lists the known names."""


def lookup_daac(name: str) -> Daac:
    """The catalogue entry for `name` (case-insensitive; `.`, `-`, `_`, spaces ignored; CMR provider ids accepted)."""
    daac = _BY_KEY.get(normalise_daac_name(name))
    if daac is None:
        raise UnknownDaacError(f"unknown DAAC {name!r}; known DAACs: {', '.join(known_daac_names())}")
    return daac
