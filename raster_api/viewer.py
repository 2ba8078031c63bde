"""The publisher viewer: one HTML page at `/` to preview a COG through the API itself.

Data publishers check a COG before they publish it: the page opens on the first sample (or the `url`/`provider` of
its query string), shows `/cog/validate` as a verdict with the facts a publisher checks, a histogram per band, the
tiles on a Leaflet map with band, rescale and colormap controls, and the value under a click; the view lives in the
query string so a link reopens it. All of it is `static/viewer.js` calling this API's own endpoints. The page must
work with no internet (and so no CDN): Leaflet's script and style come from the `xstatic-leaflet` package and are
served by this API, histograms and the colormap strip are drawn on canvases, and there is no external basemap.

With an issuer configured (`RASTER_API_AUTH_ISSUER`) the page has a sign-in box: the user pastes a bearer token,
which the script keeps in `sessionStorage` (this tab only, never in the address bar) and sends as `Authorization` on
its JSON requests and as `access_token` on tile URLs. Without an issuer every caller is anonymous, so the box is left
out rather than offered for nothing.

Samples are configuration (`RASTER_API_VIEWER_SAMPLES`, a JSON list of `{"url", "provider"?, "title"?,
"variable"?}`), so the local stack can offer its sample COGs while a deployment offers none or its own. With the
`/md/` routes mounted the page also shows a variable of a NetCDF, HDF5 or Zarr object (the same map, histogram and
values; the COG check does not apply).
"""

from __future__ import annotations

from pathlib import Path

import xstatic.pkg.leaflet
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from raster_api.settings import ViewerSample, ViewerSettings

PACKAGE_DIR = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(PACKAGE_DIR / "templates"))
STATIC_DIR = PACKAGE_DIR / "static"
LEAFLET_DIR = Path(xstatic.pkg.leaflet.BASE_DIR)

LEAFLET_ROUTE = "leaflet-static"
VIEWER_STATIC_ROUTE = "viewer-static"

# rio-tiler colormap names offered in the page (all ship with rio-tiler; "none" renders the raw/rescaled values).
COLORMAPS = ("viridis", "magma", "inferno", "plasma", "cividis", "greys_r", "terrain", "rdylgn", "spectral", "rainbow")


router = APIRouter(tags=["Viewer"])


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
def viewer_page(request: Request) -> HTMLResponse:
    """The publisher viewer (HTML)."""
    return TEMPLATES.TemplateResponse(
        request,
        "viewer.html",
        {
            "leaflet_js": request.url_for(LEAFLET_ROUTE, path="leaflet.js").path,
            "leaflet_css": request.url_for(LEAFLET_ROUTE, path="leaflet.css").path,
            "viewer_js": request.url_for(VIEWER_STATIC_ROUTE, path="viewer.js").path,
            "viewer_css": request.url_for(VIEWER_STATIC_ROUTE, path="viewer.css").path,
            "api_root": request.scope.get("root_path", "").rstrip("/"),
            "colormaps": COLORMAPS,
            "sign_in": _issuer_configured(request),
            "md": request.app.state.enabled_parts.get("md", False),
        },
    )


def _issuer_configured(request: Request) -> bool:
    verifier = getattr(request.app.state, "token_verifier", None)
    return bool(verifier is not None and verifier.configured)


@router.get("/viewer/samples", response_model=list[ViewerSample], summary="Sample COGs offered by the viewer")
def viewer_samples(request: Request) -> list[ViewerSample]:
    settings: ViewerSettings = request.app.state.viewer_settings
    return settings.samples


def add_viewer(app: FastAPI, settings: ViewerSettings) -> None:
    """Register the viewer page, its sample list and the static files it needs (Leaflet and its own script)."""
    app.state.viewer_settings = settings
    app.include_router(router)
    app.mount("/static/leaflet", StaticFiles(directory=LEAFLET_DIR), name=LEAFLET_ROUTE)
    app.mount("/static/viewer", StaticFiles(directory=STATIC_DIR), name=VIEWER_STATIC_ROUTE)
