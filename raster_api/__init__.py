"""The raster API: titiler on AWS Lambda with per-provider credential routing (see `raster_api.main.create_app`)."""
