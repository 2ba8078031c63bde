"""The publisher viewer in a real browser (Debian's chromium through Playwright), against the API served by uvicorn.

Each fixture is one visit a publisher would make: open `/` and look, open a shared link, check an upload that is not
a COG, paste a URL with the wrong provider. The tests then check what that publisher would notice: the map shows the
image without a click, the link reproduces the view (asserted on the tile URLs the page requests), the COG check names
the problem, the histogram is drawn, a click tells the pixel's value, a refusal is explained in words, nothing left
127.0.0.1 and the console stayed clean.

With `VIEWER_SCREENSHOTS=DIR` the visits also write the screenshots shown in the README (`docs/viewer-*.png`).
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Request, Route

from local_stack.aws_world import (
    DAAC_A_BUCKET,
    NON_COG_URL,
    OWN_BUCKET,
    PARTNER_BUCKET,
    AwsWorld,
    Keys,
    free_port,
    providers_config,
)
from local_stack.processes import api_argv, base_env, start_process, stop_process, wait_until_healthy
from local_stack.samples import expected_value

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


@pytest.fixture(scope="module")
def viewer_url(
    aws_world: AwsWorld,
    sample_urls: dict[str, str],
    provider_secrets: dict[str, str],
    lambda_keys: Keys,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    samples = [
        {"url": sample_urls[OWN_BUCKET], "provider": "own", "title": "own sample"},
        {"url": sample_urls[PARTNER_BUCKET], "provider": "partner", "title": "partner sample"},
        {"url": NON_COG_URL, "provider": "own", "title": "not a COG"},
    ]
    env = {
        **base_env(),
        **aws_world.endpoint_env(),
        **lambda_keys.env(),
        "PROVIDERS_CONFIG": json.dumps(providers_config(aws_world)),
        "RASTER_API_VIEWER_SAMPLES": json.dumps(samples),
    }
    port = free_port()
    log = open(tmp_path_factory.mktemp("viewer") / "api.log", "wb")  # noqa: SIM115
    proc = start_process(api_argv(port, log_level="warning"), env, log)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/healthz", proc)
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_process(proc)
        log.close()


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
    page.on("pageerror", lambda exc: seen.page_errors.append(str(exc)))
    page.on("request", lambda r: seen.tile_requests.append(r.url) if "/cog/tiles/" in r.url else None)
    page.on("response", lambda r: seen.tile_statuses.append(r.status) if "/cog/tiles/" in r.url else None)
    if stub is not None:
        stub(page)
    page.goto(address)
    return page


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


# ---- what no visit may do ----------------------------------------------------------------------------------------


def test_no_request_leaves_loopback(
    opening_visit: Visit,
    deep_link_visit: Visit,
    non_cog_visit: Visit,
    wrong_provider_visit: Visit,
    missing_object_visit: Visit,
) -> None:
    for visit in (opening_visit, deep_link_visit, non_cog_visit, wrong_provider_visit, missing_object_visit):
        assert visit.outside_requests == []


def test_no_console_error(
    opening_visit: Visit,
    deep_link_visit: Visit,
    non_cog_visit: Visit,
    wrong_provider_visit: Visit,
    missing_object_visit: Visit,
) -> None:
    for visit in (opening_visit, deep_link_visit, non_cog_visit):
        assert visit.console_errors == [] and visit.page_errors == []
    for visit in (wrong_provider_visit, missing_object_visit):
        # Chromium logs the refused fetches' status itself; the page must add no error of its own.
        assert visit.page_errors == []
        assert [e for e in visit.console_errors if not e.startswith(RESOURCE_ERROR)] == []
