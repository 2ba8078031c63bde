"""The publisher viewer in a real browser (Debian's chromium through Playwright), against the API served by uvicorn.

One scenario per module: open `/`, choose a provider and a sample, wait for the map. The tests then check what a
publisher would notice: nothing left 127.0.0.1, tiles arrived, the map shows an image, the console stayed clean.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import Browser, Page, Request, Route

from local_stack.aws_world import OWN_BUCKET, PARTNER_BUCKET, AwsWorld, Keys, free_port, providers_config
from local_stack.processes import api_argv, base_env, start_process, stop_process, wait_until_healthy

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
SCREENSHOT = Path(os.environ.get("VIEWER_SCREENSHOT", "/tmp/viewer-map.png"))


@dataclass
class Visit:
    outside_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    tile_statuses: list[int] = field(default_factory=list)
    map_png: bytes = b""
    status_text: str = ""
    tile_url: str = ""
    tilejson_url: str = ""
    restyled_tile_url: str = ""


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


def _open(browser: Browser, viewer_url: str, seen: Visit) -> Page:
    """A page that may only reach 127.0.0.1 and records console errors and tile answers."""

    def only_loopback(route: Route, request: Request) -> None:
        if urlsplit(request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            seen.outside_requests.append(request.url)
            route.abort()

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    page.route("**/*", only_loopback)
    page.on("console", lambda msg: seen.console_errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: seen.console_errors.append(str(exc)))
    page.on("response", lambda r: seen.tile_statuses.append(r.status) if "/cog/tiles/" in r.url else None)
    page.goto(viewer_url)
    page.wait_for_selector('#provider option[value="partner"]', state="attached")
    return page


@pytest.fixture(scope="module")
def visit(browser: Browser, viewer_url: str, sample_urls: dict[str, str]) -> Visit:
    """Choose a provider and a sample, look at the map, then change the colormap and rescale."""
    seen = Visit()
    page = _open(browser, viewer_url, seen)
    try:
        page.wait_for_selector(f'#sample option[value="{sample_urls[PARTNER_BUCKET]}"]', state="attached")
        page.select_option("#provider", "partner")
        page.select_option("#sample", sample_urls[PARTNER_BUCKET])
        page.wait_for_selector(".cog-layer img.leaflet-tile-loaded", timeout=60_000)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(500)  # let Leaflet's fade-in finish before the screenshot
        seen.map_png = page.locator("#map").screenshot()
        page.screenshot(path=str(SCREENSHOT))
        seen.status_text = page.inner_text("#status")
        seen.tile_url = page.input_value("#tile-url")
        seen.tilejson_url = page.input_value("#tilejson-url")

        page.fill("#rescale-min", "150")
        page.fill("#rescale-max", "170")
        page.select_option("#colormap", "greys_r")
        page.click("#apply")
        page.wait_for_function("document.getElementById('tile-url').value.includes('greys_r')")
        page.wait_for_load_state("networkidle")
        seen.restyled_tile_url = page.input_value("#tile-url")
    finally:
        page.close()
    return seen


@pytest.fixture(scope="module")
def refused_visit(browser: Browser, viewer_url: str, sample_urls: dict[str, str]) -> Visit:
    """Paste another provider's URL: the page must say why it shows nothing."""
    seen = Visit()
    page = _open(browser, viewer_url, seen)
    try:
        page.select_option("#provider", "own")
        page.fill("#url", sample_urls[PARTNER_BUCKET])
        page.click("#load")
        page.wait_for_selector("#status.error")
        seen.status_text = page.inner_text("#status")
    finally:
        page.close()
    return seen


def test_no_request_leaves_loopback(visit: Visit) -> None:
    assert visit.outside_requests == []


def test_tiles_arrive(visit: Visit) -> None:
    assert visit.tile_statuses, "the map requested no tile"
    assert set(visit.tile_statuses) == {200}


def test_map_shows_the_image(visit: Visit) -> None:
    pixels = np.asarray(Image.open(io.BytesIO(visit.map_png)).convert("RGB")).astype(float)
    assert pixels.std() > 10, "the map area is blank"
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 5, "the colormapped ramp is missing"


def test_no_console_error(visit: Visit) -> None:
    assert visit.console_errors == []


def test_copyable_urls_name_the_provider(visit: Visit, sample_urls: dict[str, str]) -> None:
    assert "Showing" in visit.status_text
    assert "/cog/tiles/WebMercatorQuad/{z}/{x}/{y}" in visit.tile_url
    assert "provider=partner" in visit.tile_url and "provider=partner" in visit.tilejson_url
    assert visit.tilejson_url.startswith("http://127.0.0.1:")


def test_rescale_and_colormap_controls_change_the_tiles(visit: Visit) -> None:
    assert "colormap_name=greys_r" in visit.restyled_tile_url
    assert "rescale=150%2C170" in visit.restyled_tile_url or "rescale=150,170" in visit.restyled_tile_url
    assert visit.restyled_tile_url != visit.tile_url


def test_refused_read_is_explained_on_the_page(refused_visit: Visit) -> None:
    assert "provider 'own' does not serve bucket 'partner-data'" in refused_visit.status_text
    assert refused_visit.outside_requests == []
