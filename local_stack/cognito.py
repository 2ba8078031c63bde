"""A local OpenID Connect issuer: moto's Cognito user pool (a development tool, never deployed).

moto signs RS256 ID and access tokens with the key it serves at `<endpoint>/<pool id>/.well-known/jwks.json`; their
`iss` is the AWS issuer URL `https://cognito-idp.<region>.amazonaws.com/<pool id>`, which does not resolve locally,
so the raster API is given the JWKS URL explicitly (`RASTER_API_AUTH_JWKS_URL`). One sample user per group, plus
one in no group.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from local_stack.aws_world import REGION, AwsWorld

SAMPLE_GROUPS = ("partner-analysts",)
NO_GROUP_USER = "visitor"


def sample_user(group: str) -> str:
    return f"{group}-user"


@dataclass
class CognitoIssuer:
    world: AwsWorld
    pool_id: str
    client_id: str
    passwords: dict[str, str] = field(default_factory=dict)

    @property
    def issuer(self) -> str:
        return f"https://cognito-idp.{REGION}.amazonaws.com/{self.pool_id}"

    @property
    def jwks_url(self) -> str:
        return f"{self.world.endpoint}/{self.pool_id}/.well-known/jwks.json"

    def api_env(self) -> dict[str, str]:
        """The raster API's settings for this issuer."""
        return {
            "RASTER_API_AUTH_ISSUER": self.issuer,
            "RASTER_API_AUTH_AUDIENCE": self.client_id,
            "RASTER_API_AUTH_JWKS_URL": self.jwks_url,
        }

    def tokens(self, username: str) -> dict[str, Any]:
        """`{"IdToken", "AccessToken", ...}` for a sample user (a real sign-in with their password)."""
        result = self.world.client("cognito-idp").admin_initiate_auth(
            UserPoolId=self.pool_id,
            ClientId=self.client_id,
            AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": self.passwords[username]},
        )
        return dict(result["AuthenticationResult"])

    def id_token(self, username: str) -> str:
        return str(self.tokens(username)["IdToken"])

    def add_user(self, username: str, groups: tuple[str, ...] = ()) -> None:
        idp = self.world.client("cognito-idp")
        password = "Pw-" + secrets.token_urlsafe(12)
        idp.admin_create_user(UserPoolId=self.pool_id, Username=username, MessageAction="SUPPRESS")
        idp.admin_set_user_password(UserPoolId=self.pool_id, Username=username, Password=password, Permanent=True)
        for group in groups:
            idp.admin_add_user_to_group(UserPoolId=self.pool_id, Username=username, GroupName=group)
        self.passwords[username] = password


def create_issuer(world: AwsWorld, groups: tuple[str, ...] = SAMPLE_GROUPS) -> CognitoIssuer:
    """A user pool with an app client, the groups, one user per group and one user in none."""
    idp = world.client("cognito-idp")
    pool_id = idp.create_user_pool(PoolName="raster-api-users")["UserPool"]["Id"]
    client_id = idp.create_user_pool_client(
        UserPoolId=pool_id, ClientName="raster-viewer", ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH"]
    )["UserPoolClient"]["ClientId"]
    issuer = CognitoIssuer(world, pool_id, client_id)
    for group in groups:
        idp.create_group(UserPoolId=pool_id, GroupName=group)
        issuer.add_user(sample_user(group), (group,))
    issuer.add_user(NO_GROUP_USER)
    return issuer
