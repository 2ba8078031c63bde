"""The token issuer for restricted providers: a Cognito user pool the stack owns, when no existing OpenID Connect
issuer is configured.

The raster API validates the pool's JWTs itself (issuer, audience, signature against the pool's JWKS) and decides
per provider from the groups claim, so API Gateway has no authorizer: public providers stay anonymous on the same
routes. Users are created by an administrator and put in groups; there is no self sign-up, since membership of a
group is what grants access to a partner's data. The pool keeps CDK's default removal policy (retain): deleting the
stack must not delete the accounts.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration
from aws_cdk import aws_cognito as cognito
from constructs import Construct

# The claim Cognito puts a user's groups in, in ID and access tokens alike.
COGNITO_GROUPS_CLAIM = "cognito:groups"


@dataclass(frozen=True)
class UserPoolAuthProps:
    """`groups`: the group names the providers' `access` lists name, one Cognito group each."""

    groups: tuple[str, ...] = ()
    # Tokens are checked on every tile request; an hour keeps a revoked user's window short.
    token_validity: Duration = Duration.hours(1)


class UserPoolAuth(Construct):
    """Public members: `user_pool`, `client`, `groups` (name -> group), `issuer`, `audience`."""

    def __init__(self, scope: Construct, construct_id: str, props: UserPoolAuthProps) -> None:
        super().__init__(scope, construct_id)
        self.user_pool = cognito.UserPool(
            self,
            "UserPool",
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True, username=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=12,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
        )
        # A public client (no secret): the viewer and map clients run in a browser. Password auth lets an operator's
        # CLI (`aws cognito-idp initiate-auth`) get a token; the password only ever goes to Cognito, never to the API.
        self.client = self.user_pool.add_client(
            "Client",
            generate_secret=False,
            auth_flows=cognito.AuthFlow(user_srp=True, user_password=True),
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            access_token_validity=props.token_validity,
            id_token_validity=props.token_validity,
            refresh_token_validity=Duration.days(1),
            disable_o_auth=True,
        )
        self.groups = {
            name: cognito.UserPoolGroup(
                self,
                f"Group-{name}",
                user_pool=self.user_pool,
                group_name=name,
                description=f"Members may read the providers whose access lists {name}",
            )
            for name in props.groups
        }
        # `cognito-idp.<region>.amazonaws.com/<pool id>`: the `iss` of the pool's tokens, less the scheme.
        self.issuer = f"https://{self.user_pool.user_pool_provider_url}"
        # ID tokens carry it as `aud`, access tokens as `client_id`; the API accepts either.
        self.audience = self.client.user_pool_client_id


@dataclass(frozen=True)
class TokenIssuer:
    """The OpenID Connect issuer whose JWTs the raster API accepts (`RASTER_API_AUTH_*`)."""

    issuer: str
    audience: str
    # None: the API reads `jwks_uri` from the issuer's discovery document.
    jwks_url: str | None = None
    groups_claim: str = COGNITO_GROUPS_CLAIM

    def environment(self) -> dict[str, str]:
        env = {
            "RASTER_API_AUTH_ISSUER": self.issuer,
            "RASTER_API_AUTH_AUDIENCE": self.audience,
            "RASTER_API_AUTH_GROUPS_CLAIM": self.groups_claim,
        }
        if self.jwks_url:
            env["RASTER_API_AUTH_JWKS_URL"] = self.jwks_url
        return env
