"""AWS Lambda entry point: `raster_api.handler.handler` (API Gateway HTTP API, payload format 2.0).

The app is built once per Lambda container, at import, where the Lambda runtime has already set the environment.
Mangum base64-encodes every body whose content type is not text (PNG, JPEG, WEBP, TIFF tiles) and any compressed
body, which is what API Gateway needs to return binary responses.
"""

from __future__ import annotations

from mangum import Mangum

from raster_api.main import create_app

app = create_app()
# No lifespan per invocation: everything the app needs (credentials, the pgstac pool) is set up by create_app(), in
# Lambda's init phase, and must outlive each invocation.
handler = Mangum(app, lifespan="off")
