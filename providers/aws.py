"""boto3 clients that honour `AWS_ENDPOINT_URL` (boto3 reads it itself) with bounded timeouts and standard retries."""

from __future__ import annotations

import os
from typing import Any

import boto3
from botocore.config import Config

DEFAULT_REGION = "us-west-2"


def client_config(connect_timeout: float = 3.0, read_timeout: float = 5.0, max_attempts: int = 3) -> Config:
    return Config(
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        retries={"mode": "standard", "max_attempts": max_attempts},
    )


def client(service: str, region: str | None = None, config: Config | None = None, **kwargs: Any) -> Any:
    """A boto3 client; the endpoint comes from `AWS_ENDPOINT_URL`/`AWS_ENDPOINT_URL_<SERVICE>` when set."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return boto3.session.Session().client(service, region_name=region, config=config or client_config(), **kwargs)
