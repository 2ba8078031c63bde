"""The credential rotator: Earthdata Login -> each DAAC's `s3credentials` -> the provider's Secrets Manager secret.

A small Lambda (boto3, requests, pydantic and `providers` only: no titiler, GDAL or numpy) run every 30 minutes, so
the raster API always finds unexpired DAAC credentials. A failed fetch never overwrites a good secret and never
blocks the other providers.
"""
