"""Isolation on the wire: what the S3 emulator received while the API served each URL.

moto's request recorder gives every request it got (path-style URL, SigV4 credential scope). For every URL — the
spellings a stranger would try (dot segments, single and double percent-encoding, unicode, NUL, backslashes,
empty segments, the https distribution form), for every provider, with and without `?provider=`, on warm and cold
GDAL caches — every S3 request made while serving provider P's read must target P's bucket, the canonical key, and
be signed with P's key; a refused URL is a 4xx naming the reason and reaches S3 not at all; nothing is a 5xx.
"""

from __future__ import annotations

import os
from urllib.parse import quote

import pytest
import rasterio.cache
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from local_stack.aws_world import (
    DAAC_A_BUCKET,
    DAAC_B_BUCKET,
    OWN_BUCKET,
    PARTNER_BUCKET,
    SAMPLE_KEYS,
    WireRecording,
)
from providers.s3 import InvalidS3Location, parse_s3_url
from tests.api_helpers import NOT_GEOTIFF_REASON

OWNERS = {DAAC_A_BUCKET: "daac-a", DAAC_B_BUCKET: "daac-b", PARTNER_BUCKET: "partner", OWN_BUCKET: "own"}
UNLISTED = "some-unlisted-bucket"
# The DAACs' distribution host in the test config (`providers_config`: http://127.0.0.1:9/<daac>/s3credentials).
DAAC_ORIGIN = "http://127.0.0.1:9"
EXAMPLES = int(os.environ.get("ISOLATION_WIRE_EXAMPLES", "500"))


@pytest.fixture(scope="module")
def wire(aws_world) -> WireRecording:
    recording = aws_world.recording
    recording.start()
    yield recording
    recording.stop()


@pytest.fixture(scope="module")
def served(aws_world, sample_urls, provider_secrets, lambda_keys):
    """An API client and each provider's current access key id (what its S3 requests must be signed with)."""
    import json

    from fastapi.testclient import TestClient

    from local_stack.aws_world import providers_config
    from raster_api.main import create_app

    env = {
        **aws_world.endpoint_env(),
        **lambda_keys.env(),
        "PROVIDERS_CONFIG": json.dumps(providers_config(aws_world)),
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        app = create_app()
        router = app.state.provider_router
        keys = {name: router.credentials(name).access_key_id for name in OWNERS.values()}
        with TestClient(app, raise_server_exceptions=False) as client:
            yield client, keys


def _statistics(client, url: str, provider: str | None):
    params = {"url": url, **({"provider": provider} if provider else {})}
    return client.get("/cog/statistics", params=params)


def _check(client, keys, wire: WireRecording, url: str, provider: str | None, cold: bool) -> None:
    if cold:
        rasterio.cache.invalidate_all()
    wire.reset()
    response = _statistics(client, url, provider)
    received = wire.s3_requests()
    status = response.status_code
    event(f"status {status}")
    event(f"s3 requests: {'some' if received else 'none'}")
    assert status < 500, (url, provider, status, response.text)
    try:
        location = _canonical(url)
    except InvalidS3Location:
        location = None
    owner = OWNERS.get(location[0]) if location else None
    if status == 200:
        assert location is not None and owner is not None, (url, provider)
        assert provider in (None, owner), (url, provider)
    for request in received:
        # The one property the product exists for: P's keys on P's bucket, for the object the URL names.
        assert owner is not None and (provider in (None, owner)), (url, provider, request)
        assert request.access_key_id == keys[owner], (url, provider, request)
        assert request.bucket_and_key[0] == location[0], (url, provider, request)  # type: ignore[index]
        assert request.bucket_and_key[1] in (location[1], location[1] + "/"), (url, provider, request)  # type: ignore[index]
    if status in (400, 403) and response.json()["detail"].startswith(("url ", "unknown provider", "provider ")):
        assert received == [], (url, provider, received)
    if status == 400:
        detail = response.json()["detail"]
        assert detail.startswith(("url ", "unknown provider")), detail


def _canonical(url: str) -> tuple[str, str]:
    """The object a URL names by the documented rules (independent of the API's own router)."""
    if url.startswith("s3://"):
        loc = parse_s3_url(url)
        return loc.bucket, loc.key
    from urllib.parse import unquote, urlsplit

    from providers.s3 import S3Location

    parts = urlsplit(url)
    if f"{parts.scheme}://{parts.netloc}" != DAAC_ORIGIN or parts.query or parts.fragment:
        raise InvalidS3Location("not a distribution URL")
    bucket, _, key = unquote(parts.path).removeprefix("/").partition("/")
    loc = S3Location(bucket, key)
    if OWNERS.get(loc.bucket) not in ("daac-a", "daac-b"):
        raise InvalidS3Location("not a DAAC bucket")
    return loc.bucket, loc.key


FIXED_CASES = [
    # (url, provider, status, detail)
    (
        "s3://own-data/../partner-data/shared/sample.tif",
        "own",
        400,
        "url 's3://own-data/../partner-data/shared/sample.tif' is refused: "
        "s3://own-data/'../partner-data/shared/sample.tif': key contains a '.' or '..' path segment",
    ),
    (
        "s3://own-data/../partner-data/shared/sample.tif",
        None,
        400,
        "url 's3://own-data/../partner-data/shared/sample.tif' is refused: "
        "s3://own-data/'../partner-data/shared/sample.tif': key contains a '.' or '..' path segment",
    ),
    (
        "s3://own-data/../some-unlisted-bucket/key.tif",
        None,
        400,
        "url 's3://own-data/../some-unlisted-bucket/key.tif' is refused: "
        "s3://own-data/'../some-unlisted-bucket/key.tif': key contains a '.' or '..' path segment",
    ),
    (
        f"{DAAC_ORIGIN}/daac-a-protected/../own-data/cogs/sample.tif",
        "daac-a",
        400,
        f"url '{DAAC_ORIGIN}/daac-a-protected/../own-data/cogs/sample.tif' is refused: "
        "s3://daac-a-protected/'../own-data/cogs/sample.tif': key contains a '.' or '..' path segment",
    ),
    (
        f"{DAAC_ORIGIN}/daac-a-protected/%2e%2e/own-data/cogs/sample.tif",
        None,
        400,
        f"url '{DAAC_ORIGIN}/daac-a-protected/%2e%2e/own-data/cogs/sample.tif' is refused: "
        "s3://daac-a-protected/'../own-data/cogs/sample.tif': key contains a '.' or '..' path segment",
    ),
    (
        "s3://own-data/cogs/sample.tif\x00/../../partner-data/shared/sample.tif",
        None,
        400,
        "url 's3://own-data/cogs/sample.tif\\x00/../../partner-data/shared/sample.tif' is refused: "
        "s3://own-data/'cogs/sample.tif\\x00/../../partner-data/shared/sample.tif': "
        "key contains a control character (such as NUL)",
    ),
    (
        "s3://own-data/cogs//sample.tif",
        None,
        400,
        "url 's3://own-data/cogs//sample.tif' is refused: "
        "s3://own-data/'cogs//sample.tif': key contains an empty path segment ('//', or a leading or trailing '/')",
    ),
    (
        "s3://own-data/cogs\\..\\..\\partner-data\\shared\\sample.tif",
        None,
        400,
        "url 's3://own-data/cogs\\\\..\\\\..\\\\partner-data\\\\shared\\\\sample.tif' is refused: "
        "s3://own-data/'cogs\\\\..\\\\..\\\\partner-data\\\\shared\\\\sample.tif': key contains a backslash",
    ),
    (
        "s3://own-data/" + "k" * 1025,
        None,
        400,
        "url 's3://own-data/"
        + "k" * 186
        + "'... (1039 characters) is refused: s3://own-data/'"
        + "k" * 1025
        + "': key is 1025 bytes long, more than S3's limit of 1024",
    ),
    (
        "s3://partner-data/shared/sample.tif",
        "own",
        403,
        "provider 'own' does not serve bucket 'partner-data'",
    ),
]


@pytest.mark.parametrize(("url", "provider", "status", "detail"), FIXED_CASES)
def test_refused_spellings_name_the_reason_and_reach_no_bucket(served, wire, url, provider, status, detail):
    client, _keys = served
    for cold in (False, True):  # a warm cache holds the other bucket's bytes; a cold one would fetch them
        _statistics(client, f"s3://{PARTNER_BUCKET}/{SAMPLE_KEYS[PARTNER_BUCKET]}", None)  # warm partner's bytes
        if cold:
            rasterio.cache.invalidate_all()
        wire.reset()
        response = _statistics(client, url, provider)
        assert response.status_code == status, response.text
        assert response.json()["detail"] == detail
        assert wire.s3_requests() == []


def test_a_readable_url_reaches_only_its_owners_bucket_with_its_owners_key(served, wire):
    client, keys = served
    for bucket, owner in OWNERS.items():
        rasterio.cache.invalidate_all()
        wire.reset()
        response = _statistics(client, f"s3://{bucket}/{SAMPLE_KEYS[bucket]}", None)
        assert response.status_code == 200, response.text
        received = wire.s3_requests()
        assert received, "a cold read must reach S3"
        assert {(r.bucket_and_key, r.access_key_id) for r in received} == {((bucket, SAMPLE_KEYS[bucket]), keys[owner])}


# -- generated URLs ---------------------------------------------------------------------------------------------

SEGMENT_ALPHABET = st.sampled_from(
    ["a", "b", "cogs", "sample.tif", "é", "日本", "%2e", "%2e%2e", "%252e%252e", "%2F", "?", "#", " ", "~", "+", ":"]
)
TRICKS = st.sampled_from(["", ".", "..", "", "\\", "\x00", "\x7f", "\u0085", "/", "%00", "%5c", "%ff", "%c3%28"])
BUCKETS = st.sampled_from([*OWNERS, UNLISTED, "Own-Data", "own_data", "a"])


@st.composite
def keys_(draw) -> str:
    if draw(st.booleans()):
        return draw(st.sampled_from(list(SAMPLE_KEYS.values())))  # readable when paired with its bucket
    parts = draw(st.lists(st.one_of(SEGMENT_ALPHABET, TRICKS), min_size=0, max_size=6))
    return "/".join(parts)


@st.composite
def urls(draw) -> str:
    if draw(st.integers(0, 9)) < 5:
        # a sample object as published (readable by its owner), sometimes in the https form
        bucket = draw(st.sampled_from(list(SAMPLE_KEYS)))
        if bucket in (DAAC_A_BUCKET, DAAC_B_BUCKET) and draw(st.booleans()):
            return f"{DAAC_ORIGIN}/{bucket}/{SAMPLE_KEYS[bucket]}"
        return f"s3://{bucket}/{SAMPLE_KEYS[bucket]}"
    bucket = draw(BUCKETS)
    key = draw(keys_())
    if draw(st.booleans()) and bucket in (DAAC_A_BUCKET, DAAC_B_BUCKET):
        # the https distribution form: percent-encoded once, sometimes twice, sometimes raw
        encoding = draw(st.sampled_from(["raw", "once", "twice"]))
        path = key if encoding == "raw" else quote(key, safe="/")
        if encoding == "twice":
            path = quote(path, safe="/")
        return f"{DAAC_ORIGIN}/{bucket}/{path}"
    if draw(st.booleans()):
        # a prefix that looks like another bucket, then a climb out of it
        other = draw(BUCKETS)
        return f"s3://{other}/{draw(TRICKS)}/{bucket}/{key}"
    return f"s3://{bucket}/{key}"


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(url=urls(), provider=st.sampled_from([None, *OWNERS.values(), "nobody"]), cold=st.booleans())
def test_generated_urls_reach_only_the_owners_bucket_signed_with_its_key(served, wire, url, provider, cold):
    client, keys = served
    _check(client, keys, wire, url, provider, cold)


def _vrt_pointing_at(source: str) -> bytes:
    """A GDAL VRT (XML) whose one band is read from `source`: what a stranger could save as `.tif`."""
    from rasterio.io import MemoryFile

    from local_stack.samples import make_cog

    with MemoryFile(make_cog(160)) as mem, mem.open() as src:
        transform = ",".join(map(str, src.transform.to_gdal()))
        return (
            f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}"><SRS>{src.crs.to_wkt()}</SRS>'
            f'<GeoTransform>{transform}</GeoTransform><VRTRasterBand dataType="Byte" band="1"><SimpleSource>'
            f'<SourceFilename relativeToVRT="0">{source}</SourceFilename><SourceBand>1</SourceBand>'
            "</SimpleSource></VRTRasterBand></VRTDataset>"
        ).encode()


@pytest.mark.parametrize("route", ["/cog/statistics", "/cog/validate", "/cog/info"])
def test_a_vrt_saved_as_tif_is_refused_and_opens_nothing_else(served, wire, aws_world, route):
    """GDAL picks a driver by content: a VRT in own-data naming partner's object must not be opened (with own's
    keys, or from partner's bytes in GDAL's cache)."""
    import uuid

    client, keys = served
    key = f"uploads/{uuid.uuid4().hex}.tif"
    aws_world.put_object(OWN_BUCKET, key, _vrt_pointing_at(f"/vsis3/{PARTNER_BUCKET}/{SAMPLE_KEYS[PARTNER_BUCKET]}"))
    assert _statistics(client, f"s3://{PARTNER_BUCKET}/{SAMPLE_KEYS[PARTNER_BUCKET]}", None).status_code == 200
    wire.reset()
    response = client.get(route, params={"url": f"s3://{OWN_BUCKET}/{key}", "provider": "own"})
    assert response.status_code == 400, response.text
    assert (
        response.json()["detail"] == f"s3://{OWN_BUCKET}/{key} (provider 'own') is not a GeoTIFF: " + NOT_GEOTIFF_REASON
    )
    assert {(r.bucket_and_key[0], r.access_key_id) for r in wire.s3_requests()} == {(OWN_BUCKET, keys["own"])}
