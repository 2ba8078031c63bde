"""The Earthdata login the rotator uses: read per run from Secrets Manager (or, for a developer, the environment).

Ops keep the password (or a pre-generated EDL token) in a secret so it never sits in a Lambda's environment; the
value is held in `SecretStr` so a stray repr or log line shows asterisks.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import SecretStr

from credential_rotator.errors import LoginConfigError
from credential_rotator.settings import EarthdataSettings


@dataclass(frozen=True)
class EarthdataLogin:
    """A username/password, a pre-generated token, or both (the token is tried first)."""

    username: str | None = None
    password: SecretStr | None = None
    token: SecretStr | None = None
    source: str = "environment"

    @property
    def has_password(self) -> bool:
        return bool(self.username and self.password and self.password.get_secret_value())

    @property
    def has_token(self) -> bool:
        return bool(self.token and self.token.get_secret_value())

    def secret_values(self) -> tuple[str, ...]:
        """What must never be printed (for redaction checks)."""
        return tuple(v.get_secret_value() for v in (self.password, self.token) if v and v.get_secret_value())


def _from_mapping(data: dict[str, Any], source: str) -> EarthdataLogin:
    def text(key: str) -> str | None:
        value = data.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    username, password, token = text("username"), data.get("password"), text("token")
    login = EarthdataLogin(
        username=username,
        password=SecretStr(password) if isinstance(password, str) and password else None,
        token=SecretStr(token) if token else None,
        source=source,
    )
    if not (login.has_password or login.has_token):
        raise LoginConfigError(f'{source} holds neither {{"username", "password"}} nor {{"token"}}')
    return login


def load_login(settings: EarthdataSettings, secrets_client: Any | None = None) -> EarthdataLogin:
    """The login from `EARTHDATA_LOGIN_SECRET_ID` when set, else from `EARTHDATA_USERNAME/PASSWORD/TOKEN`."""
    if settings.login_secret_id:
        return _from_secret(settings.login_secret_id, secrets_client)
    data = {
        "username": settings.username,
        "password": settings.password.get_secret_value() if settings.password else None,
        "token": settings.token.get_secret_value() if settings.token else None,
    }
    if not any(data.values()):
        raise LoginConfigError(
            "no Earthdata login configured: set EARTHDATA_LOGIN_SECRET_ID or EARTHDATA_USERNAME/EARTHDATA_PASSWORD "
            "or EARTHDATA_TOKEN"
        )
    return _from_mapping(data, "the EARTHDATA_* environment variables")


def _from_secret(secret_id: str, secrets_client: Any | None) -> EarthdataLogin:
    source = f"Earthdata login secret {secret_id!r}"
    if secrets_client is None:
        from providers.aws import client

        secrets_client = client("secretsmanager")
    try:
        text = secrets_client.get_secret_value(SecretId=secret_id)["SecretString"]
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise LoginConfigError(f"could not read the {source}: {code}") from None
    except (BotoCoreError, KeyError) as exc:
        raise LoginConfigError(f"could not read the {source}: {type(exc).__name__}") from None
    try:
        data = json.loads(text)
    except ValueError:
        raise LoginConfigError(f"the {source} is not JSON") from None
    if not isinstance(data, dict):
        raise LoginConfigError(f"the {source} is not a JSON object")
    return _from_mapping(data, f"the {source}")
