"""The CloudWatch metric names the Lambdas write and the stack's dashboard and alarms read: written once, here.

Both Lambdas emit Embedded Metric Format lines with dimension `Provider`; `infrastructure/dashboard.py` and
`infrastructure/alarms.py` plot and alarm on the same names, and a test ties the three together.
"""

from __future__ import annotations

PROVIDER_DIMENSION = "Provider"

API_NAMESPACE = "RasterTiler/RasterApi"
REQUESTS = "Requests"
CLIENT_ERRORS = "ClientErrors"
SERVER_ERRORS = "ServerErrors"
S3_REFUSALS = "S3Refusals"
LATENCY_MS = "LatencyMs"
CREDENTIAL_SECONDS_LEFT = "CredentialSecondsLeft"
API_METRICS = (REQUESTS, CLIENT_ERRORS, SERVER_ERRORS, S3_REFUSALS, LATENCY_MS, CREDENTIAL_SECONDS_LEFT)

ROTATOR_NAMESPACE = "RasterTiler/CredentialRotator"
ROTATION_SUCCESS = "RotationSuccess"
ROTATION_FAILURE = "RotationFailure"
SECONDS_UNTIL_EXPIRY = "SecondsUntilExpiry"
ROTATOR_METRICS = (ROTATION_SUCCESS, ROTATION_FAILURE, SECONDS_UNTIL_EXPIRY)
