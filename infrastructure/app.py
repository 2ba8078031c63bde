"""CDK entry point (`cdk.json`: `.venv/bin/python -m infrastructure.app`): settings -> stack -> cdk-nag -> synth."""

from __future__ import annotations

import sys

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks
from pydantic import ValidationError

from infrastructure.config import DeploySettings
from infrastructure.stack import RasterTilerStack
from providers import ProvidersConfigError


def build_app(settings: DeploySettings, app: App | None = None) -> tuple[App, RasterTilerStack]:
    """The app with its one stack and the AwsSolutions checks (errors fail `cdk synth`)."""
    app = app or App()
    stack = RasterTilerStack(app, settings)
    Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    return app, stack


def main() -> None:
    try:
        settings = DeploySettings()  # type: ignore[call-arg]  # fields come from DEPLOY_* variables
    except (ValidationError, ProvidersConfigError) as exc:
        sys.exit(f"invalid deployment settings:\n{exc}")
    app, _ = build_app(settings)
    app.synth()


if __name__ == "__main__":
    main()
