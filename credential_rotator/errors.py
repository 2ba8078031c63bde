"""Why a rotation failed, as a flat tree of errors under one base class that knows nothing of Lambda or HTTP status.

Each error has a short `fault` code (for logs, metrics and tests) and a message that names the endpoint but never a
password, token, key or session token: callers log and raise these messages as they are.
"""

from __future__ import annotations


class RotationError(Exception):
    """Base class: one provider's rotation (or the shared login step) failed; its secret was left untouched."""

    fault = "error"
    # True when the provider's own deadline (its share of the invocation's time) cut the wait short: not a fact
    # about the endpoint, so it is neither cached for the run nor taken as an EDL outage.
    by_deadline = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"{self.fault}: {self.message}"


class LoginConfigError(RotationError):
    """No usable Earthdata login (secret missing, unreadable or of the wrong shape; no env variables)."""

    fault = "login_config"


class LoginPageError(RotationError):
    """EDL answered `oauth/authorize` with its HTML login page (status 200): the username/password was refused."""

    fault = "edl_login_page"


class HtmlResponseError(RotationError):
    """An endpoint that should answer JSON answered an HTML page."""

    fault = "html_response"


class MalformedResponseError(RotationError):
    """The answer is not a JSON object, or a value in it does not parse."""

    fault = "malformed_json"


class MissingKeyError(RotationError):
    """The JSON answer lacks a required key."""

    fault = "missing_key"


class UnauthorizedError(RotationError):
    """HTTP 401: the token or the username/password was refused."""

    fault = "unauthorized"


class ForbiddenError(RotationError):
    """HTTP 403: the user is known but may not have these credentials (e.g. the DAAC's EULA is not accepted)."""

    fault = "forbidden"


class ServerError(RotationError):
    """HTTP 5xx (after retries)."""

    fault = "server_error"


class MaintenanceError(ServerError):
    """HTTP 503 from Earthdata Login: a maintenance window (after retries)."""

    fault = "edl_maintenance"


class EarthdataTimeoutError(RotationError):
    """Connecting or reading timed out (after retries)."""

    fault = "timeout"


class UnreachableError(RotationError):
    """The host could not be reached (after retries)."""

    fault = "unreachable"


class UnexpectedResponseError(RotationError):
    """Any other status, or a redirect the client refuses to follow (e.g. to a host other than Earthdata Login)."""

    fault = "unexpected_response"


class ExpiredCredentialsError(RotationError):
    """The credentials expire too soon (or already did) to be worth writing."""

    fault = "expiring"


class SecretWriteError(RotationError):
    """Secrets Manager refused the write."""

    fault = "secret_write"


class UnknownProviderError(RotationError):
    """The event named a provider that is not an `earthdata` provider of PROVIDERS_CONFIG."""

    fault = "unknown_provider"


class TimeBudgetError(RotationError):
    """The Lambda invocation ran short of time before this provider's turn (Earthdata was slow for the others)."""

    fault = "time_budget"
