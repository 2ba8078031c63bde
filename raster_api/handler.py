"""AWS Lambda entry point: `raster_api.handler.handler` (API Gateway HTTP API, payload format 2.0).

The app is built once per Lambda container, at import, where the Lambda runtime has already set the environment;
with SnapStart that import is the snapshot's init, so it also primes what every first request would pay and registers
the hooks that renew credentials and database connections after a restore (`raster_api.snapstart`). Mangum
base64-encodes every body whose content type is not text (PNG, JPEG, WEBP, TIFF tiles) and any compressed body,
which is what API Gateway needs to return binary responses.
"""

from __future__ import annotations

from fastapi import FastAPI

from raster_api import snapstart
from raster_api.lambda_loop import OneLoopMangum
from raster_api.main import create_app
from raster_api.settings import Settings


def build(settings: Settings | None = None) -> tuple[FastAPI, OneLoopMangum]:
    """The app and its Lambda handler with the SnapStart hooks registered; primed when init runs ahead of requests
    (SnapStart, provisioned concurrency): in an on-demand cold start, priming would only add to the first request."""
    settings = settings or Settings()
    app = create_app(settings)
    # No lifespan per invocation: everything the app needs (credentials, the pgstac pool) is set up by create_app(),
    # in Lambda's init phase, and must outlive each invocation. One event loop for all invocations (lambda_loop).
    lambda_handler = OneLoopMangum(app)
    if settings.runtime.init_before_requests:
        snapstart.prime(lambda_handler)
    snapstart.register(app)
    return app, lambda_handler


app, handler = build()
