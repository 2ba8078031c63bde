"""The baseline: a vanilla titiler app (titiler.core `TilerFactory`) whose credentials come from plain env.

This is what a titiler deployment without provider routing looks like; GDAL picks the process identity from the
`AWS_*` variables. `uvicorn bench.vanilla:create_vanilla_app --factory` serves it.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastapi import FastAPI
from titiler.core.errors import DEFAULT_STATUS_CODES, add_exception_handlers
from titiler.core.factory import TilerFactory

from bench.world import VANILLA_GDAL_ENV


def create_vanilla_app(gdal_options: Mapping[str, str | int] | None = None) -> FastAPI:
    """`gdal_options` (e.g. static `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`) are added to titiler's GDAL set."""
    env = {**VANILLA_GDAL_ENV, **(gdal_options or {})}
    app = FastAPI(title="vanilla titiler")
    cog = TilerFactory(router_prefix="/cog", environment_dependency=lambda: dict(env))
    app.include_router(cog.router, prefix="/cog")
    add_exception_handlers(app, DEFAULT_STATUS_CODES)
    return app
