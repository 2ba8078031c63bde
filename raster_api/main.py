"""The raster API application: titiler.core factories wired to per-provider credential routing.

`create_app()` reads the settings and `PROVIDERS_CONFIG` when it is called (never at import), so the Lambda handler
and the tests build the app after the environment is set. A bad `PROVIDERS_CONFIG` fails here with the
`ProvidersConfigError` message, at start-up rather than on the first tile.
"""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, Depends, FastAPI, HTTPException
from pydantic import BaseModel
from starlette.middleware.cors import CORSMiddleware
from starlette_cramjam.middleware import CompressionMiddleware
from titiler.core.factory import AlgorithmFactory, ColorMapFactory, TilerFactory, TMSFactory
from titiler.extensions import wmtsExtension

from raster_api.auth import TokenVerifier, check_configuration, may_read
from raster_api.caching import CachePolicy
from raster_api.dependencies import (
    ROUTE_GUARDS,
    CallerDep,
    CogReaderParams,
    DatasetPath,
    ProviderRouterDep,
    bounded_query_size,
    unsigned_environment,
)
from raster_api.edge import OriginSecret, OriginVerifyMiddleware, PublicHostMiddleware, secrets_manager_string
from raster_api.errors import add_exception_handlers
from raster_api.grants import GrantSigner, grant_keys
from raster_api.metrics import RequestMetrics
from raster_api.middleware import RequestMiddleware
from raster_api.params import TILE_MATRIX_SETS, parameter_slots
from raster_api.reading import ProviderReader
from raster_api.routing import ProviderRouter
from raster_api.settings import Settings
from raster_api.validate import ProviderCogValidateExtension

logger = logging.getLogger(__name__)

# Already compressed (or not worth it): never gzip these, whatever the client accepts.
BINARY_MEDIA_TYPES = {
    "image/jpeg",
    "image/jpg",
    "image/png",
    "image/jp2",
    "image/webp",
    "image/tiff",
    "image/tiff; application=geotiff",
}


class CredentialHealthModel(BaseModel):
    available: bool
    expires_at: datetime | None
    seconds_left: float | None
    last_refresh: datetime | None
    last_error: str | None
    last_forced_refresh: datetime | None


class ProviderModel(BaseModel):
    """What `/providers` tells about a provider: never a key or a token."""

    name: str
    title: str
    kind: str
    buckets: list[str]
    region: str
    requester_pays: bool
    allow_download: bool
    access: str | list[str]
    credentials: CredentialHealthModel


def _configure_logging() -> None:
    # rasterio's DEBUG output can include request headers (X-Amz-Security-Token): never below INFO.
    # Set explicitly (not just inherited), so a DEBUG root logger cannot lower them.
    for name in ("rasterio", "rio_tiler", "botocore", "boto3", "urllib3"):
        logger_ = logging.getLogger(name)
        if logger_.level < logging.INFO:
            logger_.setLevel(logging.INFO)
    api_logger = logging.getLogger("raster_api")
    api_logger.setLevel(logging.INFO)
    if not logging.getLogger().handlers and not api_logger.handlers:
        # Outside Lambda (whose runtime configures the root logger) and pytest: print the JSON lines as they are.
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        api_logger.addHandler(handler)


def _provider_model(router: ProviderRouter, name: str) -> ProviderModel:
    provider = router.provider(name)
    health = router.provider_health(name)
    return ProviderModel(
        name=provider.name,
        title=provider.display_title,
        kind=provider.kind.value,
        buckets=list(provider.buckets),
        region=provider.region,
        requester_pays=provider.requester_pays,
        allow_download=provider.allow_download,
        access=provider.access if isinstance(provider.access, str) else list(provider.access),
        credentials=CredentialHealthModel(
            available=health.available,
            expires_at=health.expires_at,
            seconds_left=health.seconds_left,
            last_refresh=health.last_refresh,
            last_error=health.last_error,
            last_forced_refresh=health.last_forced_refresh,
        ),
    )


def _providers_router() -> APIRouter:
    router = APIRouter(tags=["Providers"])

    @router.get("/providers", response_model=list[ProviderModel])
    def list_providers(request_router: ProviderRouterDep, caller: CallerDep) -> list[ProviderModel]:
        """The providers this caller may read through, and the health of their cached credentials (no AWS call)."""
        return [
            _provider_model(request_router, name)
            for name, provider in request_router.providers.items()
            if may_read(provider, caller)
        ]

    @router.get("/providers/{name}", response_model=ProviderModel, responses={404: {"description": "Unknown"}})
    def get_provider(name: str, request_router: ProviderRouterDep, caller: CallerDep) -> ProviderModel:
        """One provider and the health of its cached credentials (404 for a restricted one the caller may not read:
        its existence is not told either)."""
        provider = request_router.providers.get(name)
        if provider is None or not may_read(provider, caller):
            raise HTTPException(status_code=404, detail=f"unknown provider {name!r}")
        return _provider_model(request_router, name)

    return router


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the raster API; raises `providers.ProvidersConfigError` when `PROVIDERS_CONFIG` is invalid and
    `raster_api.auth.AuthConfigError` when a provider is restricted but no issuer is configured."""
    settings = settings or Settings()
    _configure_logging()
    provider_router = ProviderRouter.from_settings(settings)
    check_configuration(provider_router.providers.values(), settings.auth)
    token_verifier = TokenVerifier(settings.auth)
    if token_verifier.configured:
        token_verifier.prefetch()
    # In Lambda's init phase: the first tile after a cold start pays no Secrets Manager or STS call.
    provider_router.credential_cache.prefetch()

    app = FastAPI(
        title=settings.api.name,
        description="Dynamic raster tiles from S3 with per-provider credentials (`?provider=NAME`).",
        openapi_url="/api",
        docs_url="/api.html",
    )
    app.state.provider_router = provider_router
    app.state.token_verifier = token_verifier
    app.state.grant_signer = (
        GrantSigner(grant_keys(settings.grants), settings.grants.ttl) if settings.grants.enabled else None
    )
    app.state.settings = settings
    # What /healthz reports; the pgstac registration flips its flag.
    app.state.enabled_parts = {"cog": True, "pgstac": False, "md": settings.md.enabled}

    cog = TilerFactory(
        router_prefix="/cog",
        route_dependencies=ROUTE_GUARDS,
        reader=ProviderReader,
        path_dependency=DatasetPath,
        environment_dependency=unsigned_environment,
        **parameter_slots(settings.api, TilerFactory, reader_dependency=CogReaderParams),
        extensions=[ProviderCogValidateExtension(), wmtsExtension()],
    )
    app.include_router(cog.router, prefix="/cog", tags=["Cloud Optimized GeoTIFF"])
    app.include_router(TMSFactory(supported_tms=TILE_MATRIX_SETS).router, tags=["Tiling Schemes"])
    app.include_router(AlgorithmFactory().router, tags=["Algorithms"])
    app.include_router(
        ColorMapFactory(router=APIRouter(dependencies=[Depends(bounded_query_size)])).router, tags=["ColorMaps"]
    )
    app.include_router(_providers_router())

    from raster_api.download import add_download
    from raster_api.viewer import add_viewer

    add_download(app, settings.download)
    add_viewer(app, settings.viewer)

    # When a database is configured (DATABASE_URL or PGSTAC_SECRET_ID, or RASTER_API_PGSTAC_ENABLED=true with libpq's
    # PG* variables), mount the mosaic/collection/item endpoints:
    if settings.pgstac_mounted:
        from raster_api import pgstac  # lazy: titiler.pgstac and psycopg only when a database is configured

        pgstac.register(app, provider_router, settings.database, settings.pgstac_pool)
    elif settings.pgstac.pgstac_enabled:
        logger.warning("pgstac routes requested but no database configured (DATABASE_URL, PGSTAC_SECRET_ID, PGHOST)")

    if settings.md.enabled:
        try:
            from raster_api.md import add_md_routes  # lazy: titiler.xarray, h5py, zarr and obstore are the md extra
        except ImportError as exc:
            raise RuntimeError(f"RASTER_API_MD_ENABLED=true needs the md extra ({exc})") from exc
        add_md_routes(app)

    @app.get("/healthz", tags=["Health"])
    def healthz() -> dict[str, object]:
        """Liveness, and which parts of the API are enabled."""
        return {"status": "ok", **app.state.enabled_parts}

    add_exception_handlers(app, settings.api.retry_after_seconds, *_part_error_tables(app))
    _add_middleware(app, settings)
    return app


def _part_error_tables(app: FastAPI) -> tuple[dict[type[Exception], int], dict[type[Exception], str]]:
    """The status table and generic messages of the optional parts that are mounted (pgstac, md)."""
    codes: dict[type[Exception], int] = {}
    generic: dict[type[Exception], str] = {}
    if app.state.enabled_parts["pgstac"]:
        from raster_api.pgstac import PGSTAC_GENERIC_DETAILS, PGSTAC_STATUS_CODES

        codes.update(PGSTAC_STATUS_CODES)
        generic.update(PGSTAC_GENERIC_DETAILS)
    if app.state.enabled_parts["md"]:
        from raster_api.md import MD_STATUS_CODES

        codes.update(MD_STATUS_CODES)
    return codes, generic


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    """Added innermost first: compression, CORS, the public host, the CDN's origin check, then outermost the one layer
    that logs, catches, limits the size and sets the cache policy of every answer (`RequestMiddleware`: it sees the
    answers of the layers inside it, and keeps a refused response's CORS headers on its 413)."""
    app.add_middleware(
        CompressionMiddleware,
        minimum_size=0,
        exclude_mediatype=BINARY_MEDIA_TYPES,
    )
    if settings.api.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.api.cors_origins,
            allow_credentials=settings.api.cors_allow_credentials,
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["*"],
            expose_headers=["x-request-id"],
        )
    app.add_middleware(
        PublicHostMiddleware, public_url=settings.api.public_url, allowed_hosts=tuple(settings.api.allowed_hosts)
    )
    if settings.api.origin_verify_secret_id:
        app.add_middleware(
            OriginVerifyMiddleware,
            secret=OriginSecret(secrets_manager_string(settings.api.origin_verify_secret_id)),
            retry_after_seconds=settings.api.retry_after_seconds,
        )
    metrics = RequestMetrics(app.state.provider_router) if settings.api.metrics else None
    app.add_middleware(
        RequestMiddleware,
        cache_policy=CachePolicy(settings.cache),
        max_response_bytes=settings.api.max_response_bytes,
        metrics=metrics,
        budget=settings.budget,
    )
