"""The provider registry schema shared by `raster_api`, `credential_rotator` and `infrastructure`.

It is deliberately light (pydantic, PyYAML, boto3 only) so the rotator Lambda can import it without titiler or GDAL.
"""

from providers.credentials import S3Credentials
from providers.daacs import DAACS, Daac, known_daac_names, lookup_daac
from providers.models import Provider, ProviderKind, ProvidersConfigError, load_providers
from providers.s3 import S3Location, bucket_matches, parse_s3_url

__all__ = [
    "DAACS",
    "Daac",
    "Provider",
    "ProviderKind",
    "ProvidersConfigError",
    "S3Credentials",
    "S3Location",
    "bucket_matches",
    "known_daac_names",
    "load_providers",
    "lookup_daac",
    "parse_s3_url",
]
