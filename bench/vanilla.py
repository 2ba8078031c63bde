"""The baseline: a vanilla titiler app (titiler.core `TilerFactory`) whose credentials come from plain env.

This is what a titiler deployment without provider routing looks like; GDAL picks the process identity from the
`AWS_*` variables. `uvicorn bench.vanilla:create_vanilla_app --factory` serves it.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from rasterio.session import AWSSession
from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
from titiler.core.factory import TilerFactory

from bench.world import VANILLA_GDAL_ENV


def create_vanilla_app(session: AWSSession | None = None) -> FastAPI:
    """`session`: one fixed identity for every read (rasterio's way to pass explicit keys); default: plain env."""
    env: dict[str, Any] = {**VANILLA_GDAL_ENV, **({"session": session} if session else {})}
    app = FastAPI(title="vanilla titiler")
    cog = TilerFactory(router_prefix="/cog", environment_dependency=lambda: dict(env))
    app.include_router(cog.router, prefix="/cog")
    add_exception_handlers(app, DEFAULT_STATUS_CODES)
    return app
