"""The publisher viewer in a real browser (Debian's chromium through Playwright), against the API served by uvicorn.

Each fixture is one visit a publisher would make: open `/` and look, open a shared link, check an upload that is not
a COG, paste a URL with the wrong provider. The tests then check what that publisher would notice: the map shows the
image without a click, the link reproduces the view (asserted on the tile URLs the page requests), the COG check names
the problem, the histogram is drawn, a click tells the pixel's value, a refusal is explained in words, nothing left
127.0.0.1 and the console stayed clean. A second API, with moto's Cognito as the issuer and provider `partner`
restricted to the group `partner-analysts`, is visited signed out, signed in as a member, signed in as a user in no
group and with an expired token.

With `VIEWER_SCREENSHOTS=DIR` the visits also write the screenshots shown in docs/local-stack.md (`docs/viewer-*.png`).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey
from moto.utilities.utils import load_resource
from PIL import Image
from playwright.sync_api import Browser, Page, Request, Route

from local_stack.aws_world import (
    DAAC_A_BUCKET,
    MD_SAMPLE_BASES,
    NON_COG_URL,
    OWN_BUCKET,
    PARTNER_BUCKET,
    AwsWorld,
    Keys,
    free_port,
    providers_config,
    upload_md_samples,
)
from local_stack.cognito import NO_GROUP_USER, CognitoIssuer, sample_user
from local_stack.processes import base_env, serving, uvicorn_argv
from local_stack.samples import SST_SIZE, SST_VARIABLE, expected_value, sst_value

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(os.environ["VIEWER_SCREENSHOTS"]) if os.environ.get("VIEWER_SCREENSHOTS") else None
TILE_LOADED = ".cog-layer img.leaflet-tile-loaded"
GRANT_KEY = "viewer-test-grant-key-of-at-least-32-chars"
# Where the tests click on the own sample: column 288 of 512, in the middle of the 256..319 band (value base + 4).
CLICK_COLUMN = 288
# Chromium's own line for a fetch answered 4xx (the page shows the reason; the browser logs the status anyway).
RESOURCE_ERROR = "Failed to load resource: the server responded with a status of"

CANVAS_IS_DRAWN = """(canvas) => {
  const data = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  const colours = new Set();
  for (let i = 0; i < data.length; i += 4) if (data[i + 3]) colours.add(`${data[i]},${data[i + 1]},${data[i + 2]}`);
  return colours.size;
}"""


@dataclass
class Visit:
    outside_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    tile_requests: list[str] = field(default_factory=list)
    tile_statuses: list[int] = field(default_factory=list)
    texts: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    map_png: bytes = b""
    histogram_colours: int = 0
    strip_colours: int = 0
    all_console: list[str] = field(default_factory=list)
    storage: dict[str, str | None] = field(default_factory=dict)
    checks: dict[str, bool] = field(default_factory=dict)


def _serve_api(
    world: AwsWorld, keys: Keys, providers: list[dict], samples: list[dict], extra: dict[str, str], log_dir: Path
) -> Iterator[str]:
    env = {
        **base_env(),
        **world.endpoint_env(),
        **keys.env(),
        "PROVIDERS_CONFIG": json.dumps(providers),
        "RASTER_API_VIEWER_SAMPLES": json.dumps(samples),
        **extra,
    }
    port = free_port()
    with serving(uvicorn_argv(port, log_level="warning"), env, log_dir / "api.log", f"http://127.0.0.1:{port}/healthz"):
        yield f"http://127.0.0.1:{port}/"


def _samples(sample_urls: dict[str, str], md_urls: dict[str, str] | None = None) -> list[dict]:
    return [
        {"url": sample_urls[OWN_BUCKET], "provider": "own", "title": "own sample"},
        {"url": sample_urls[PARTNER_BUCKET], "provider": "partner", "title": "partner sample"},
        {"url": NON_COG_URL, "provider": "own", "title": "not a COG"},
        *(
            [{"url": md_urls[DAAC_A_BUCKET], "provider": "daac-a", "title": "sea surface", "variable": SST_VARIABLE}]
            if md_urls
            else []
        ),
    ]


@pytest.fixture(scope="module")
def md_urls(aws_world: AwsWorld) -> dict[str, str]:
    return upload_md_samples(aws_world)


@pytest.fixture(scope="module")
def viewer_url(
    aws_world: AwsWorld,
    sample_urls: dict[str, str],
    provider_secrets: dict[str, str],
    lambda_keys: Keys,
    md_urls: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    yield from _serve_api(
        aws_world,
        lambda_keys,
        providers_config(aws_world),
        _samples(sample_urls, md_urls),
        {"RASTER_API_MD_ENABLED": "true"},
        tmp_path_factory.mktemp("viewer"),
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (scripts/bootstrap.sh installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def _open(browser: Browser, address: str, seen: Visit, stub: Callable[[Page], None] | None = None) -> Page:
    """A page that may only reach 127.0.0.1 and records console errors and the tiles it asks for.

    `stub` may add routes of its own before the page loads (Playwright tries the last added route first).
    """

    def only_loopback(route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            seen.outside_requests.append(request.url)
            route.abort()

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.route("**/*", only_loopback)
    page.on("console", lambda msg: seen.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("console", lambda msg: seen.all_console.append(msg.text))
    page.on("pageerror", lambda exc: seen.page_errors.append(str(exc)))
    page.on("request", lambda r: seen.tile_requests.append(r.url) if _is_tile(r.url) else None)
    page.on("response", lambda r: seen.tile_statuses.append(r.status) if _is_tile(r.url) else None)
    if stub is not None:
        stub(page)
    page.goto(address)
    return page


def _is_tile(url: str) -> bool:
    return "/cog/tiles/" in url or "/md/tiles/" in url


def _wait_for_map(page: Page) -> None:
    page.wait_for_selector(TILE_LOADED, timeout=60_000)
    page.wait_for_load_state("networkidle")
    # Leaflet fades tiles in: wait until every loaded tile is fully opaque before looking at the map.
    page.wait_for_function(
        """() => [...document.querySelectorAll('.cog-layer img.leaflet-tile-loaded')]
                 .every((img) => getComputedStyle(img).opacity === '1')""",
    )


def _screenshot(page: Page, name: str, panel_part: str) -> None:
    """With `VIEWER_SCREENSHOTS` set: the page, its side panel scrolled to `panel_part` (a selector)."""
    if SCREENSHOTS is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.locator(panel_part).evaluate("(el) => el.scrollIntoView({ block: 'start' })")
        page.screenshot(path=str(SCREENSHOTS / name))


def _click_image(page: Page, column_fraction: float, row_fraction: float = 0.5) -> str:
    """Click the image at a fraction of its outline's width and height; returns the popup's text."""
    box = page.locator("path.cog-outline").bounding_box()
    assert box is not None, "the image's outline is not drawn"
    page.mouse.click(box["x"] + box["width"] * column_fraction, box["y"] + box["height"] * row_fraction)
    popup = page.locator(".value-popup .leaflet-popup-content")
    popup.filter(has_not_text="reading").wait_for()
    page.wait_for_function("getComputedStyle(document.querySelector('.value-popup')).opacity === '1'")
    return popup.inner_text()


def _query(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


@pytest.fixture(scope="module")
def opening_visit(browser: Browser, viewer_url: str) -> Visit:
    """Open `/` and do nothing: the first sample must be on the map; then click it, restyle it, and go back."""
    seen = Visit()
    page = _open(browser, viewer_url, seen)
    try:
        _wait_for_map(page)
        page.wait_for_selector("#validation .verdict")
        seen.map_png = page.locator("#map").screenshot()
        seen.texts["status"] = page.inner_text("#status")
        seen.texts["verdict"] = page.inner_text("#verdict")
        seen.texts["facts"] = page.inner_text("#facts")
        seen.values["page_url"] = page.url
        seen.values["tile_url"] = page.input_value("#tile-url")
        seen.values["tilejson_url"] = page.input_value("#tilejson-url")
        seen.values["share_url"] = page.input_value("#share-url")
        seen.values["raw_open"] = str(page.locator("#raw").get_attribute("open"))
        seen.values["signin_boxes"] = str(page.locator("#signin").count())
        seen.histogram_colours = page.locator("canvas.histogram-canvas").first.evaluate(CANVAS_IS_DRAWN)
        seen.strip_colours = page.locator("#colormap-strip").evaluate(CANVAS_IS_DRAWN)
        seen.texts["popup"] = _click_image(page, (CLICK_COLUMN + 0.5) / 512)
        _screenshot(page, "viewer-opening.png", "#render")

        page.fill("#rescale-min", "100")
        page.fill("#rescale-max", "130")
        page.select_option("#colormap", "greys_r")  # a colormap change re-renders at once, with the typed rescale
        page.wait_for_function("document.getElementById('tile-url').value.includes('greys_r')")
        seen.values["restyled_tile_url"] = page.input_value("#tile-url")
        seen.values["restyled_page_url"] = page.url
        page.go_back()
        page.wait_for_function("!document.getElementById('tile-url').value.includes('greys_r')")
        seen.values["back_page_url"] = page.url
        seen.values["back_tile_url"] = page.input_value("#tile-url")
        seen.values["back_colormap"] = page.input_value("#colormap")
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    return seen


@pytest.fixture(scope="module")
def deep_link(viewer_url: str, sample_urls: dict[str, str]) -> str:
    query = {"url": sample_urls[PARTNER_BUCKET], "provider": "partner", "rescale": "150,170", "colormap_name": "magma"}
    return f"{viewer_url}?{urlencode(query)}"


@pytest.fixture(scope="module")
def deep_link_visit(browser: Browser, deep_link: str) -> Visit:
    """Open a copied link: the same source and rendering, without touching the form."""
    seen = Visit()
    page = _open(browser, deep_link, seen)
    try:
        _wait_for_map(page)
        seen.map_png = page.locator("#map").screenshot()
        for field_id in ("provider", "url", "rescale-min", "rescale-max", "colormap"):
            seen.values[field_id] = page.input_value(f"#{field_id}")
        seen.values["page_url"] = page.url
    finally:
        page.close()
    return seen


@pytest.fixture(scope="module")
def non_cog_visit(browser: Browser, viewer_url: str) -> Visit:
    """Choose the striped, overview-less sample: the COG check must say what is wrong; then pick one band."""
    seen = Visit()
    page = _open(browser, viewer_url, seen)
    try:
        _wait_for_map(page)  # the first sample, then the choice of the non-COG
        page.select_option("#sample", NON_COG_URL)
        page.wait_for_selector("#verdict.invalid")
        page.wait_for_function("document.getElementById('tile-url').value.includes('striped')")
        _wait_for_map(page)
        _screenshot(page, "viewer-validation.png", "#validation")
        seen.texts["verdict"] = page.inner_text("#verdict")
        seen.texts["messages"] = page.inner_text("#cog-messages")
        seen.texts["facts"] = page.inner_text("#facts")
        seen.texts["advice"] = page.inner_text("#cog-advice")
        seen.texts["histograms"] = page.inner_text("#histogram-list")
        seen.values["rgb_tile_url"] = page.input_value("#tile-url")
        seen.values["bands"] = " | ".join(page.locator("#bands option").all_inner_texts())

        page.select_option("#bands", "2")
        page.wait_for_function("new URL(document.getElementById('tile-url').value).searchParams.get('bidx') === '2'")
        seen.values["band_tile_url"] = page.input_value("#tile-url")
        page.select_option("#bands", "expr")
        page.fill("#expression", "b1+b2")
        page.press("#expression", "Enter")
        page.wait_for_function("document.getElementById('tile-url').value.includes('expression')")
        seen.values["expression_tile_url"] = page.input_value("#tile-url")
        seen.values["expression_page_url"] = page.url
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    return seen


# Where the md visit clicks: column 200 of the sample's 256 (the 192..223 band: base + 3 degrees on the first day).
MD_CLICK_COLUMN = 200


@pytest.fixture(scope="module")
def md_visit(browser: Browser, viewer_url: str) -> Visit:
    """Choose the DAAC's NetCDF sample in the list: its variable is on the map through /md/, with a histogram and
    the value under a click, and no COG check (it is not a GeoTIFF)."""
    seen = Visit()
    page = _open(browser, viewer_url, seen)
    try:
        _wait_for_map(page)  # the first sample (a COG), then the choice of the NetCDF
        page.select_option("#sample", label="sea surface")
        page.wait_for_function("document.getElementById('tile-url').value.includes('/md/tiles/')")
        _wait_for_map(page)
        seen.map_png = page.locator("#map").screenshot()
        seen.texts["status"] = page.inner_text("#status")
        seen.values["validation_hidden"] = str(page.locator("#validation").is_hidden())
        seen.values["variable"] = page.input_value("#variable")
        seen.values["tile_url"] = page.input_value("#tile-url")
        seen.values["page_url"] = page.url
        seen.values["bands"] = " | ".join(page.locator("#bands option").all_inner_texts())
        seen.histogram_colours = page.locator("canvas.histogram-canvas").first.evaluate(CANVAS_IS_DRAWN)
        seen.texts["popup"] = _click_image(page, (MD_CLICK_COLUMN + 0.5) / SST_SIZE, row_fraction=0.7)
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    return seen


def _refused(browser: Browser, viewer_url: str, provider: str, url: str) -> Visit:
    seen = Visit()
    page = _open(browser, viewer_url, seen)
    try:
        _wait_for_map(page)
        page.fill("#url", url)
        page.select_option("#provider", provider)
        page.click("#load")
        page.wait_for_selector("#status.error")
        seen.texts["status"] = page.inner_text("#status")
        seen.values["layers"] = str(page.locator(".cog-layer").count())
        seen.values["tile_url"] = page.input_value("#tile-url")
        seen.values["page_url"] = page.url
    finally:
        page.close()
    return seen


@pytest.fixture(scope="module")
def wrong_provider_visit(browser: Browser, viewer_url: str, sample_urls: dict[str, str]) -> Visit:
    """Paste our own sample's URL but read it as a DAAC: the page must say why it shows nothing, and what to do."""
    return _refused(browser, viewer_url, "daac-b", sample_urls[OWN_BUCKET])


@pytest.fixture(scope="module")
def missing_object_visit(browser: Browser, viewer_url: str) -> Visit:
    return _refused(browser, viewer_url, "own", "s3://own-data/cogs/no-such-file.tif")


@pytest.fixture(scope="module")
def unavailable_credentials_visit(browser: Browser, viewer_url: str, sample_urls: dict[str, str]) -> Visit:
    """The API's 503 for credentials it cannot get (body and Retry-After as `raster_api.errors` sends them).

    Stubbed in the browser: this world's credentials are always there, and the test is about the page's words.
    """
    detail = "credentials for provider 'daac-a' are unavailable; retry later"

    def unavailable(page: Page) -> None:
        page.route(
            "**/cog/info.geojson?*",
            lambda route: route.fulfill(
                status=503,
                headers={"Retry-After": "30"},
                content_type="application/json",
                body=json.dumps({"detail": detail, "request_id": "stub"}),
            ),
        )

    seen = Visit()
    link = f"{viewer_url}?{urlencode({'url': sample_urls[DAAC_A_BUCKET], 'provider': 'daac-a'})}"
    page = _open(browser, link, seen, stub=unavailable)
    try:
        page.wait_for_selector("#status.error")
        seen.texts["status"] = page.inner_text("#status")
    finally:
        page.close()
    return seen


# ---- opening `/` -------------------------------------------------------------------------------------------------


def test_opening_shows_the_first_sample_without_a_click(opening_visit: Visit, sample_urls: dict[str, str]) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(opening_visit.map_png)).convert("RGB")).astype(float)
    assert pixels.std() > 10, "the map area is blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 5, "the colormapped ramp is missing"
    assert opening_visit.tile_statuses and set(opening_visit.tile_statuses) == {200}
    assert opening_visit.texts["status"].startswith(f"Showing {sample_urls[OWN_BUCKET]} as own.")


def test_opening_puts_the_view_in_the_address_bar(opening_visit: Visit, sample_urls: dict[str, str]) -> None:
    query = _query(opening_visit.values["page_url"])
    assert query == {
        "url": [sample_urls[OWN_BUCKET]],
        "provider": ["own"],
        "rescale": ["110,117"],  # the sample's 2nd..98th percentiles
        "colormap_name": ["viridis"],
    }
    assert opening_visit.values["share_url"] == opening_visit.values["page_url"]


def test_valid_cog_is_called_valid_with_what_a_publisher_checks(opening_visit: Visit) -> None:
    assert opening_visit.texts["verdict"] == "✓ Valid cloud-optimized GeoTIFF"
    facts = opening_visit.texts["facts"]
    for line in (
        "Size\t512 × 512 px",
        "Bands\t1 × uint8 (gray)",
        "Nodata\t0",
        "EPSG:4326",
        "Overviews\t1: 1/2 (256 × 256)",
        "Internal tiling\ttiled, blocks of 256 × 256 px",
        "Compression\tDEFLATE",
    ):
        assert line in facts


def test_histogram_and_colormap_strip_are_drawn(opening_visit: Visit) -> None:
    assert opening_visit.histogram_colours >= 2, "the histogram canvas is empty"
    assert opening_visit.strip_colours > 100, "the viridis strip is not drawn"


def test_click_on_the_image_shows_its_value(opening_visit: Visit) -> None:
    value = expected_value(110, CLICK_COLUMN)
    assert f"b1: {value}" in opening_visit.texts["popup"]
    assert "N" in opening_visit.texts["popup"] and "W" in opening_visit.texts["popup"]


def test_controls_change_the_tiles_and_back_restores_them(opening_visit: Visit) -> None:
    v = opening_visit.values
    restyled = _query(v["restyled_tile_url"])
    assert restyled["colormap_name"] == ["greys_r"] and restyled["rescale"] == ["100,130"]
    assert _query(v["restyled_page_url"])["colormap_name"] == ["greys_r"]
    assert v["back_page_url"] == v["page_url"]
    assert v["back_tile_url"] == v["tile_url"] and v["back_colormap"] == "viridis"


def test_copyable_urls_name_the_provider(opening_visit: Visit) -> None:
    assert "/cog/tiles/WebMercatorQuad/{z}/{x}/{y}" in opening_visit.values["tile_url"]
    assert _query(opening_visit.values["tile_url"])["provider"] == ["own"]
    assert _query(opening_visit.values["tilejson_url"])["provider"] == ["own"]
    assert opening_visit.values["tilejson_url"].startswith("http://127.0.0.1:")


def test_raw_json_is_collapsed(opening_visit: Visit) -> None:
    assert opening_visit.values["raw_open"] == "None"


def test_without_an_issuer_there_is_no_sign_in_box(opening_visit: Visit) -> None:
    assert opening_visit.values["signin_boxes"] == "0"


# ---- a shared link -----------------------------------------------------------------------------------------------


def test_deep_link_requests_the_same_tiles(deep_link_visit: Visit, sample_urls: dict[str, str]) -> None:
    assert deep_link_visit.tile_requests, "the map requested no tile"
    for tile in deep_link_visit.tile_requests:
        query = _query(tile)
        assert query["url"] == [sample_urls[PARTNER_BUCKET]]
        assert query["provider"] == ["partner"]
        assert query["rescale"] == ["150,170"]
        assert query["colormap_name"] == ["magma"]
    assert set(deep_link_visit.tile_statuses) == {200}


def test_deep_link_fills_the_form(deep_link_visit: Visit, sample_urls: dict[str, str], deep_link: str) -> None:
    assert deep_link_visit.values == {
        "provider": "partner",
        "url": sample_urls[PARTNER_BUCKET],
        "rescale-min": "150",
        "rescale-max": "170",
        "colormap": "magma",
        "page_url": deep_link,  # nothing to add: the link already says everything
    }


# ---- an upload that is not a COG ---------------------------------------------------------------------------------


def test_non_cog_is_called_invalid_and_the_problems_are_named(non_cog_visit: Visit) -> None:
    assert non_cog_visit.texts["verdict"] == "✗ Not a valid cloud-optimized GeoTIFF: 1 error, 1 warning"
    messages = non_cog_visit.texts["messages"]
    assert "Error: The file is greater than 512xH or 512xW, but is not tiled." in messages
    assert "Warning: The file is greater than 512xH or 512xW, it is recommended to include internal overviews." in (
        messages
    )
    assert "rio cogeo create" in non_cog_visit.texts["advice"]
    facts = non_cog_visit.texts["facts"]
    assert "Overviews\tnone" in facts
    assert "Internal tiling\tnot tiled (strips of 1024 × 8 px)" in facts
    assert "Bands\t3 × uint8 (red, green, blue)" in facts


def test_multi_band_image_has_a_histogram_per_band_and_band_choices(non_cog_visit: Visit) -> None:
    histograms = non_cog_visit.texts["histograms"]
    assert all(f"b{i}: min" in histograms for i in (1, 2, 3))
    assert "b3: min 200, max 200" in histograms
    assert non_cog_visit.values["bands"] == "Band 1 | Band 2 | Band 3 | RGB: bands 1, 2, 3 | Expression…"


def test_band_and_expression_choices_reach_the_tiles(non_cog_visit: Visit) -> None:
    rgb = _query(non_cog_visit.values["rgb_tile_url"])
    assert rgb["bidx"] == ["1", "2", "3"] and "colormap_name" not in rgb
    band = _query(non_cog_visit.values["band_tile_url"])
    assert band["bidx"] == ["2"] and "colormap_name" in band
    expression = _query(non_cog_visit.values["expression_tile_url"])
    assert expression["expression"] == ["b1+b2"] and "bidx" not in expression
    assert _query(non_cog_visit.values["expression_page_url"])["expression"] == ["b1+b2"]
    assert set(non_cog_visit.tile_statuses) == {200}


# ---- errors in words ---------------------------------------------------------------------------------------------


def test_wrong_provider_is_explained_next_to_the_form(wrong_provider_visit: Visit, sample_urls: dict[str, str]) -> None:
    status = wrong_provider_visit.texts["status"]
    assert f"Cannot open {sample_urls[OWN_BUCKET]} as daac-b." in status
    assert "provider 'daac-b' does not serve bucket 'own-data' (HTTP 403)." in status
    assert "Bucket 'own-data' is served by provider 'own' (Our buckets): choose it as Provider" in status
    assert wrong_provider_visit.values["layers"] == "0" and wrong_provider_visit.values["tile_url"] == ""


def test_missing_object_is_explained(missing_object_visit: Visit) -> None:
    status = missing_object_visit.texts["status"]
    assert "s3://own-data/cogs/no-such-file.tif not found for provider 'own' (HTTP 404)." in status
    assert "Check the bucket and the key" in status


def test_unavailable_credentials_say_when_to_retry(unavailable_credentials_visit: Visit) -> None:
    status = unavailable_credentials_visit.texts["status"]
    assert "credentials for provider 'daac-a' are unavailable; retry later (HTTP 503)." in status
    assert "The credentials of provider 'daac-a' are not available right now. Press Show again in 30 s." in status


def test_a_failed_view_is_still_a_shareable_link(wrong_provider_visit: Visit, sample_urls: dict[str, str]) -> None:
    assert _query(wrong_provider_visit.values["page_url"])["provider"] == ["daac-b"]


# ---- a NetCDF variable through /md/ ---------------------------------------------------------------------------------


def test_a_netcdf_variable_is_shown_through_md(md_visit: Visit, md_urls: dict[str, str]) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(md_visit.map_png)).convert("RGB")).astype(float)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 5, "the colormapped temperature ramp is missing"
    assert md_visit.tile_statuses and set(md_visit.tile_statuses) == {200}
    url = md_urls[DAAC_A_BUCKET]
    assert md_visit.texts["status"].startswith(f"Showing {url} as daac-a.")
    tile = _query(md_visit.values["tile_url"])
    assert (tile["url"], tile["provider"], tile["variable"], tile["bidx"]) == ([url], ["daac-a"], [SST_VARIABLE], ["1"])
    page = _query(md_visit.values["page_url"])
    assert (page["url"], page["variable"]) == ([url], [SST_VARIABLE])
    assert md_visit.values["variable"] == SST_VARIABLE
    # The two days, named by their time coordinate.
    assert md_visit.values["bands"] == (
        "Band 1 (2026-07-01T00:00:00.000000000) | Band 2 (2026-07-02T00:00:00.000000000) | Expression…"
    )
    assert md_visit.values["validation_hidden"] == "True"  # no COG check for a NetCDF
    assert md_visit.histogram_colours >= 2, "the histogram canvas is empty"


def test_click_on_a_variable_shows_its_temperature(md_visit: Visit) -> None:
    value = sst_value(MD_SAMPLE_BASES[DAAC_A_BUCKET], MD_CLICK_COLUMN)  # the first day's (band 1, shown)
    assert md_visit.texts["popup"].endswith(f"b1: {round(value, 3):g}"), md_visit.texts["popup"]


# ---- what no visit may do ----------------------------------------------------------------------------------------


def test_no_request_leaves_loopback(
    opening_visit: Visit,
    deep_link_visit: Visit,
    non_cog_visit: Visit,
    wrong_provider_visit: Visit,
    missing_object_visit: Visit,
    md_visit: Visit,
) -> None:
    for visit in (opening_visit, deep_link_visit, non_cog_visit, wrong_provider_visit, missing_object_visit, md_visit):
        assert visit.outside_requests == []


def test_no_console_error(
    opening_visit: Visit,
    deep_link_visit: Visit,
    non_cog_visit: Visit,
    wrong_provider_visit: Visit,
    missing_object_visit: Visit,
    md_visit: Visit,
) -> None:
    for visit in (opening_visit, deep_link_visit, non_cog_visit, md_visit):
        assert visit.console_errors == [] and visit.page_errors == []
    for visit in (wrong_provider_visit, missing_object_visit):
        # Chromium logs the refused fetches' status itself; the page must add no error of its own.
        assert visit.page_errors == []
        assert [e for e in visit.console_errors if not e.startswith(RESOURCE_ERROR)] == []


# ---- sign-in: an API with an issuer and a restricted provider -----------------------------------------------------

MEMBER = sample_user("partner-analysts")
TOKEN_KEY = "raster-api-token"
STORAGE = "() => ({ session: sessionStorage.getItem('raster-api-token'), local: String(localStorage.length) })"
# The key moto's Cognito signs with: the only way to hold a real-looking token that has already expired (moto's own
# tokens live an hour), so the test needs no clock games.
MOTO_KEY = RSAKey.import_key(load_resource("cognitoidp/resources/jwks-private.json"))


@pytest.fixture(scope="module")
def auth_viewer_url(
    aws_world: AwsWorld,
    sample_urls: dict[str, str],
    provider_secrets: dict[str, str],
    lambda_keys: Keys,
    issuer: CognitoIssuer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    providers = providers_config(aws_world)
    for provider in providers:
        if provider["name"] == "partner":
            provider["access"] = ["partner-analysts"]
    yield from _serve_api(
        aws_world,
        lambda_keys,
        providers,
        _samples(sample_urls),
        {**issuer.api_env(), "RASTER_API_GRANT_KEYS": GRANT_KEY},
        tmp_path_factory.mktemp("viewer-auth"),
    )


@pytest.fixture(scope="module")
def partner_link(auth_viewer_url: str, sample_urls: dict[str, str]) -> str:
    return f"{auth_viewer_url}?{urlencode({'url': sample_urls[PARTNER_BUCKET], 'provider': 'partner'})}"


def _sign_in(page: Page, token: str) -> None:
    page.fill("#token", token)
    page.click("#signin-button")


def _providers_listed(page: Page) -> str:
    return " | ".join(page.locator("#provider option").all_inner_texts())


def _record_auth_headers(token: str, seen: Visit) -> Callable[[Page], None]:
    """Before the page loads: whether each `/providers` and `/cog/info.geojson` request carried the token."""

    def listen(page: Page) -> None:
        def record(request: Request) -> None:
            path = urlsplit(request.url).path
            if path in ("/providers", "/cog/info.geojson"):
                sent = request.headers.get("authorization") == f"Bearer {token}"
                seen.values[path] = seen.values.get(path, "") + ("T" if sent else "-")
                seen.checks.setdefault("no JSON request has access_token", True)
                seen.checks["no JSON request has access_token"] &= "access_token" not in _query(request.url)

        page.on("request", record)

    return listen


def _no_token_shown(page: Page, token: str, seen: Visit) -> None:
    """What a user could see or copy: the address bar, the fields, the page text, the console."""
    shown = [page.url, page.input_value("#share-url"), page.input_value("#tile-url"), page.inner_text("body")]
    seen.checks["token not shown"] = all(token not in text for text in shown)
    seen.checks["token not on console"] = all(token not in text for text in seen.all_console)


@pytest.fixture(scope="module")
def signed_out_visit(browser: Browser, partner_link: str) -> Visit:
    """Open a link to the restricted provider without signing in."""
    seen = Visit()
    page = _open(browser, partner_link, seen)
    try:
        page.wait_for_selector("#status.error")
        seen.texts["status"] = page.inner_text("#status")
        seen.values["providers"] = _providers_listed(page)
        seen.values["layers"] = str(page.locator(".cog-layer").count())
        seen.values["token_field"] = str(page.is_visible("#token"))
    finally:
        page.close()
    return seen


@pytest.fixture(scope="module")
def member_visit(browser: Browser, partner_link: str, issuer: CognitoIssuer) -> Visit:
    """Open the link, sign in as a member of the provider's group, look at the map, then sign out."""
    token = issuer.id_token(MEMBER)
    seen = Visit()
    page = _open(browser, partner_link, seen, stub=_record_auth_headers(token, seen))
    try:
        page.wait_for_selector("#status.error")  # signed out: sign-in needed
        _sign_in(page, token)
        _wait_for_map(page)
        seen.map_png = page.locator("#map").screenshot()
        _screenshot(page, "viewer-signin.png", "#panel h1")
        seen.texts["status"] = page.inner_text("#status")
        seen.texts["signed_in_as"] = page.inner_text("#signed-in-as")
        seen.values["providers"] = _providers_listed(page)
        seen.values["page_url"] = page.url
        seen.values["token_hint"] = str(page.is_visible("#tile-token-hint"))
        tiles = list(seen.tile_requests)
        seen.checks["tiles carry a grant, not the token"] = bool(tiles) and all(
            "grant" in _query(tile) and "access_token" not in _query(tile) and token not in tile for tile in tiles
        )
        seen.checks["session holds the token"] = page.evaluate(STORAGE) == {"session": token, "local": "0"}
        _no_token_shown(page, token, seen)

        page.click("#signout")
        page.locator("#status", has_text="HTTP 401").wait_for()
        seen.texts["signed_out_status"] = page.inner_text("#status")
        seen.storage = page.evaluate(STORAGE)
        seen.values["signed_out_providers"] = _providers_listed(page)
        seen.values["signed_out_layers"] = str(page.locator(".cog-layer").count())
        seen.values["token_field"] = str(page.is_visible("#token"))
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    return seen


@pytest.fixture(scope="module")
def visitor_visit(browser: Browser, partner_link: str, issuer: CognitoIssuer) -> Visit:
    """Sign in as a user in no group: signed in, but not allowed to read the provider."""
    token = issuer.id_token(NO_GROUP_USER)
    seen = Visit()
    page = _open(browser, partner_link, seen)
    try:
        page.wait_for_selector("#status.error")
        _sign_in(page, token)
        page.locator("#status", has_text="HTTP 403").wait_for()
        seen.texts["status"] = page.inner_text("#status")
        seen.texts["signed_in_as"] = page.inner_text("#signed-in-as")
        seen.values["layers"] = str(page.locator(".cog-layer").count())
        _no_token_shown(page, token, seen)
    finally:
        page.close()
    return seen


@pytest.fixture(scope="module")
def expired_visit(browser: Browser, partner_link: str, issuer: CognitoIssuer) -> Visit:
    """Sign in with a token that expired an hour ago (signed by the issuer's own key)."""
    now = int(time.time())
    claims = {
        "iss": issuer.issuer,
        "sub": "expired-user",
        "aud": issuer.client_id,
        "iat": now - 7200,
        "exp": now - 3600,
        "cognito:username": MEMBER,
        "cognito:groups": ["partner-analysts"],
    }
    token = jwt.encode({"alg": "RS256", "kid": "dummy"}, claims, MOTO_KEY)
    seen = Visit()
    page = _open(browser, partner_link, seen)
    try:
        page.wait_for_selector("#status.error")
        _sign_in(page, token)
        page.locator("#signin-status", has_text="refused").wait_for()
        seen.texts["signin_status"] = page.inner_text("#signin-status")
        seen.storage = page.evaluate(STORAGE)
        seen.values["token_field"] = str(page.is_visible("#token"))
        _no_token_shown(page, token, seen)
        page.wait_for_load_state("networkidle")
    finally:
        page.close()
    return seen


def test_signed_out_the_page_says_sign_in_is_needed(signed_out_visit: Visit, sample_urls: dict[str, str]) -> None:
    status = signed_out_visit.texts["status"]
    assert f"Cannot open {sample_urls[PARTNER_BUCKET]} as partner." in status
    assert (
        "provider 'partner' is restricted: sign in and send a bearer token "
        "(Authorization header, or access_token for tile URLs) (HTTP 401)."
    ) in status
    assert "Sign-in needed: sign in above as a user who may read provider 'partner'." in status
    assert signed_out_visit.values["layers"] == "0"
    assert signed_out_visit.values["token_field"] == "True"
    # Restricted providers are listed only to those who may read them: the link's provider is kept, as not listed.
    assert signed_out_visit.values["providers"] == (
        "(owner of the bucket) | DAAC A (Earthdata) (daac-a) | DAAC B (Earthdata) (daac-b) | Our buckets (own) | "
        "partner (not listed)"
    )


def test_signing_in_as_a_member_shows_the_restricted_tiles(member_visit: Visit, sample_urls: dict[str, str]) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(member_visit.map_png)).convert("RGB")).astype(float)
    assert pixels.std() > 10, "the map area is blank"
    assert member_visit.tile_statuses and set(member_visit.tile_statuses) == {200}
    assert member_visit.texts["status"].startswith(f"Showing {sample_urls[PARTNER_BUCKET]} as partner.")
    assert member_visit.texts["signed_in_as"] == f"Signed in as {MEMBER}."
    assert "Partner account (partner)" in member_visit.values["providers"]  # the list was fetched again, signed in
    assert member_visit.values["token_hint"] == "True"


def test_the_token_goes_in_headers_never_in_tile_urls_or_the_address_bar(member_visit: Visit) -> None:
    assert member_visit.checks == {
        "no JSON request has access_token": True,
        "tiles carry a grant, not the token": True,
        "session holds the token": True,
        "token not shown": True,
        "token not on console": True,
    }
    # Signed out, signed in, signed out again: each time the provider list and the source are fetched anew.
    assert member_visit.values["/providers"] == "-T-"
    assert member_visit.values["/cog/info.geojson"] == "-T-"
    assert "access_token" not in member_visit.values["page_url"]
    assert _query(member_visit.values["page_url"])["provider"] == ["partner"]


def test_signing_out_forgets_the_token(member_visit: Visit) -> None:
    assert member_visit.storage == {"session": None, "local": "0"}
    assert (
        "Sign-in needed: sign in above as a user who may read provider 'partner'."
        in (member_visit.texts["signed_out_status"])
    )
    assert "Partner account (partner)" not in member_visit.values["signed_out_providers"]
    assert member_visit.values["signed_out_layers"] == "0"
    assert member_visit.values["token_field"] == "True"


def test_a_user_outside_the_group_is_told_the_provider_is_not_allowed(visitor_visit: Visit) -> None:
    status = visitor_visit.texts["status"]
    assert (
        "provider 'partner' is restricted to the groups partner-analysts, and this caller is in none of them "
        "(HTTP 403)."
    ) in status
    assert f"You are signed in as {NO_GROUP_USER}, but may not read provider 'partner'." in status
    assert visitor_visit.texts["signed_in_as"] == f"Signed in as {NO_GROUP_USER}."
    assert visitor_visit.values["layers"] == "0"
    assert visitor_visit.checks == {"token not shown": True, "token not on console": True}


def test_an_expired_token_is_refused_with_advice_to_sign_in_again(expired_visit: Visit) -> None:
    assert expired_visit.texts["signin_status"] == (
        "The API refused this token: token has expired. Get a new token and sign in again."
    )
    assert expired_visit.storage == {"session": None, "local": "0"}
    assert expired_visit.values["token_field"] == "True"
    assert expired_visit.checks == {"token not shown": True, "token not on console": True}


def test_sign_in_visits_stay_on_loopback_and_add_no_console_error(
    signed_out_visit: Visit, member_visit: Visit, visitor_visit: Visit, expired_visit: Visit
) -> None:
    for visit in (signed_out_visit, member_visit, visitor_visit, expired_visit):
        assert visit.outside_requests == []
        assert visit.page_errors == []
        # Chromium logs the refused fetches' status itself (401/403 here); the page must add no error of its own.
        assert [e for e in visit.console_errors if not e.startswith(RESOURCE_ERROR)] == []
