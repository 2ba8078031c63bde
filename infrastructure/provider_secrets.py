"""One Secrets Manager secret per Earthdata provider, created empty by the stack and filled by the rotator.

The stack never holds a credential: the secret starts with a placeholder that the runtime treats as "not yet
rotated" (it is not valid `s3credentials` JSON), and the rotator's first run after deploy writes real keys.
"""

from __future__ import annotations

from aws_cdk import RemovalPolicy, SecretValue
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

# Not an S3Credentials document, so readers report "credentials not available yet" instead of using it.
PLACEHOLDER = '{"status": "waiting for the first credential rotation"}'


class ProviderSecrets(Construct):
    """Public members: `secrets` (provider name -> secret), `names` (provider name -> secret name)."""

    def __init__(self, scope: Construct, construct_id: str, *, names: dict[str, str]) -> None:
        super().__init__(scope, construct_id)
        self.names = dict(names)
        self.secrets: dict[str, secretsmanager.Secret] = {}
        for provider, secret_name in self.names.items():
            secret = secretsmanager.Secret(
                self,
                f"Secret-{provider}",
                secret_name=secret_name,
                description=f"Earthdata temporary S3 credentials for provider {provider} (written by the rotator)",
                secret_string_value=SecretValue.unsafe_plain_text(PLACEHOLDER),
                removal_policy=RemovalPolicy.DESTROY,
            )
            self.secrets[provider] = secret
