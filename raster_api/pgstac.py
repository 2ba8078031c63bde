"""STAC mosaics and items from a pgstac database, mounted on the raster API when a database is configured.

titiler.pgstac's factories and routes are used as they are; three things are swapped in:
- the dataset readers (`raster_api.stac_reader`), so each asset is read with the provider owning its bucket, in the
  asset's own worker thread, and `?provider=` / a collection's declared provider can refuse it;
- the request-level GDAL environment: GDAL settings plus an *unsigned* session, so a read that somehow missed its
  per-asset credentials fails instead of falling back to the Lambda's identity;
- the error map: unknown search → 404, bad CQL2 → 400, database unreachable → 503 (titiler.pgstac answers 500).

The connection pool is sized for Lambda (one connection), opened at start-up, and checks a connection before lending
it, so a connection killed during a Lambda freeze is replaced instead of failing the first request after a thaw.
The database is `DATABASE_URL` (or libpq's `PG*` variables), or in Lambda a Secrets Manager secret
`PGSTAC_SECRET_ID` holding `{"username", "password", "host", "port", "dbname"}` (re-read when a connection is made,
so a rotated password is picked up).
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Annotated, Any, cast

import psycopg
from cql2 import Expr
from fastapi import APIRouter, Depends, FastAPI, Query
from psycopg import errors as pg_errors
from psycopg.conninfo import make_conninfo
from psycopg_pool import ConnectionPool, PoolTimeout
from pydantic import ValidationError, ValidationInfo, field_validator
from starlette import status
from starlette.requests import Request
from titiler.core.dependencies import DefaultDependency
from titiler.core.factory import MultiBaseTilerFactory
from titiler.extensions import wmtsExtension
from titiler.mosaic.extensions.wmts import wmtsExtension as wmtsExtensionMosaic
from titiler.pgstac import model
from titiler.pgstac.dependencies import CollectionIdParams, ItemIdParams, SearchIdParams
from titiler.pgstac.errors import BackendError, MosaicNotFoundError, NoLayerFound, ReadOnlyPgSTACError
from titiler.pgstac.extensions import searchInfoExtension
from titiler.pgstac.factory import MosaicTilerFactory, add_search_list_route, add_search_register_route

from providers.aws import client as aws_client
from raster_api.dependencies import (
    ROUTE_GUARDS,
    STAC_ROUTER_GUARDS,
    CallerDep,
    require_caller,
    set_query,
    unsigned_environment,
)
from raster_api.mosaic_budget import bounded_backend
from raster_api.params import parameter_slots
from raster_api.reading import ReadScope
from raster_api.reuse import reused_for
from raster_api.routing import ProviderRouter
from raster_api.settings import ApiSettings, BudgetSettings, DatabaseSettings, PoolSettings
from raster_api.stac_reader import COLLECTION_PROVIDER_FIELD, RoutedItemReader, RoutedMosaicItemReader

logger = logging.getLogger(__name__)

TAGS_SEARCH = "STAC Search"
TAGS_COLLECTION = "STAC Collection"
TAGS_ITEM = "STAC Item"


class InvalidSearch(Exception):
    """A search or filter pgstac cannot run (bad CQL2, bad arguments): 400."""


def _secret_conninfo(secret_id: str, connect_timeout: int) -> str:
    value = json.loads(aws_client("secretsmanager").get_secret_value(SecretId=secret_id)["SecretString"])
    return make_conninfo(
        host=value["host"],
        port=str(value.get("port", 5432)),
        user=value["username"],
        password=value["password"],
        dbname=value.get("dbname") or value.get("dbInstanceIdentifier") or "postgres",
        connect_timeout=str(connect_timeout),
    )


def conninfo_source(db: DatabaseSettings, pool: PoolSettings) -> str | Callable[[], str]:
    """The pool's conninfo: the URL, libpq's `PG*` environment (empty string), or the secret read through a TTL."""
    if db.database_url:
        return make_conninfo(db.database_url, connect_timeout=str(pool.connect_timeout))
    if db.pgstac_secret_id:
        return reused_for(pool.secret_ttl, lambda: _secret_conninfo(str(db.pgstac_secret_id), pool.connect_timeout))
    return make_conninfo("", connect_timeout=str(pool.connect_timeout))


class PgstacConnection:
    """The pgstac connection pool of one app, plus the collections' declared providers."""

    def __init__(self, db: DatabaseSettings, settings: PoolSettings) -> None:
        self.db = db
        self.settings = settings
        self.pool: ConnectionPool | None = None
        self._declared = reused_for(settings.collection_cache_ttl, self._load_declared_providers)

    def _new_pool(self) -> ConnectionPool:
        return ConnectionPool(
            conninfo=conninfo_source(self.db, self.settings),
            min_size=self.settings.min_size,
            max_size=max(self.settings.max_size, self.settings.min_size),
            timeout=self.settings.timeout,
            max_idle=self.settings.max_idle,
            max_lifetime=self.settings.max_lifetime,
            # Validate a connection before lending it: one killed while Lambda was frozen is replaced, not used.
            check=ConnectionPool.check_connection,
            kwargs={"options": "-c search_path=pgstac,public -c application_name=raster-api"},
            open=False,
            name="pgstac",
        )

    def open(self, wait: bool = True) -> ConnectionPool:
        """Open the pool unless it is open (a closed pool cannot be reopened: a new one replaces it); `wait` for its
        first connection (at start-up), or let it connect in the background (after a SnapStart restore, where the
        first request may well be a COG tile that needs no database).

        A database that is down is logged, not fatal: the STAC routes answer 503 until it is back.
        """
        if self.pool is not None and not self.pool.closed:
            return self.pool
        self.pool = self._new_pool()
        self.pool.open(wait=False)
        if wait:
            try:
                self.pool.wait(timeout=self.settings.startup_timeout)
            except PoolTimeout:
                logger.warning("pgstac database not reachable at start-up; STAC routes answer 503 until it is")
        return self.pool

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def _load_declared_providers(self) -> dict[str, str]:
        with self.open().connection() as conn:
            rows = conn.execute(
                "SELECT id, content->>%s FROM pgstac.collections WHERE content ? %s",
                (COLLECTION_PROVIDER_FIELD, COLLECTION_PROVIDER_FIELD),
            ).fetchall()
        return {str(cid): str(name) for cid, name in rows if name}

    def collection_provider(self, collection_id: str) -> str | None:
        """The provider a collection declares (`"tiler:provider"`), or None."""
        declared: dict[str, str] = self._declared()
        return declared.get(collection_id)


# -- request dependencies -------------------------------------------------------------------------------------


def _validate_cql2(filter_expr: Any, lang: str | None) -> None:
    try:
        expr = Expr(filter_expr)
        expr.validate()
    except Exception as exc:  # cql2 raises its own ValueError subclasses for text and JSON
        raise InvalidSearch(f"invalid CQL2 filter ({lang or 'cql2-json'}): {exc}") from None


class RegisterSearch(model.RegisterMosaic):
    """titiler.pgstac's register body; an invalid `bbox` next to `intersects` is a 422 like any invalid field
    (its validator reads the failed `bbox` and raises KeyError, a 500)."""

    @field_validator("intersects")
    @classmethod
    def validate_spatial(cls, v: Any, info: ValidationInfo) -> Any:
        if v and info.data.get("bbox"):
            raise ValueError("intersects and bbox parameters are mutually exclusive")
        return v


def search_params(body: RegisterSearch) -> tuple[model.PgSTACSearch, model.Metadata]:
    """`POST /searches/register` body, with its CQL2 filter checked before it reaches pgstac."""
    if body.filter_expr is not None:
        _validate_cql2(body.filter_expr, body.filter_lang)
    search = body.model_dump(exclude_none=True, exclude={"metadata"}, by_alias=True)
    return model.PgSTACSearch(**search), body.metadata


@functools.wraps(CollectionIdParams)
def collection_search_id(*args: Any, **kwargs: Any) -> str:
    """titiler.pgstac's collection dependency, with its filter and query errors answered 400 (it lets them become
    500)."""
    try:
        return CollectionIdParams(*args, **kwargs)
    except ValidationError as exc:
        # titiler.pgstac wraps the cql2 parser's message as the title of an error-less ValidationError.
        reason = exc.title if not exc.errors() else str(exc)
        raise InvalidSearch(f"invalid CQL2 filter: {reason}") from None
    except json.JSONDecodeError as exc:  # `query` or a cql2-json `filter` that is not JSON
        raise InvalidSearch(f"query/filter parameter is not valid JSON: {exc}") from None


collection_search_id.__signature__ = inspect.signature(CollectionIdParams)  # type: ignore[attr-defined]


def _routing_dependency(router: ProviderRouter, connection: PgstacConnection) -> type[DefaultDependency]:
    @dataclass(init=False)
    class RoutingParams(DefaultDependency):
        """`?provider=` and the collections' declared providers: the read scope handed to the readers."""

        scope: ReadScope = field(init=False)

        def __init__(
            self,
            caller: CallerDep,
            provider: Annotated[
                str | None,
                Query(description="Read only assets in buckets this provider owns; any other asset is refused (403)."),
            ] = None,
        ) -> None:
            self.scope = ReadScope(router, provider, connection.collection_provider, caller=caller)

    return RoutingParams


# The collection routes' search parameters: each distinct combination registers a search row in pgstac.
COLLECTION_SEARCH_PARAMS = ("ids", "bbox", "datetime", "query", "sortby", "filter")


def collection_search_needs_a_caller(request: Request, caller: CallerDep) -> None:
    """A collection mosaic narrowed by search parameters writes a search to the database, as registering one does:
    with an issuer configured, only for a signed-in caller (the collection's own search is registered once)."""
    if any(name in request.query_params for name in COLLECTION_SEARCH_PARAMS):
        require_caller(request, caller)


async def valid_search_list_query(request: Request) -> None:
    """`/searches/list` turns every unknown query parameter into a metadata filter, quoted into the SQL text where
    psycopg then reads a `%` as a placeholder (a 500): such filters are refused with a 400."""
    for key, value in request.query_params.multi_items():
        if "%" in key or "%" in value:
            raise InvalidSearch(f"search list filters may not contain '%': {key[:40]!r}")
    # The list echoes its query into its links (and would filter on it): a token is not a filter.
    set_query(request, [(k, v) for k, v in request.query_params.multi_items() if k != "access_token"])


# -- errors ---------------------------------------------------------------------------------------------------

PGSTAC_STATUS_CODES: dict[type[Exception], int] = {
    MosaicNotFoundError: status.HTTP_404_NOT_FOUND,
    NoLayerFound: status.HTTP_400_BAD_REQUEST,
    InvalidSearch: status.HTTP_400_BAD_REQUEST,
    # titiler.pgstac raises BackendError when pgstac rejects a search's arguments (DataError): user input.
    BackendError: status.HTTP_400_BAD_REQUEST,
    pg_errors.DataError: status.HTTP_400_BAD_REQUEST,
    pg_errors.RaiseException: status.HTTP_400_BAD_REQUEST,
    ReadOnlyPgSTACError: status.HTTP_503_SERVICE_UNAVAILABLE,
    PoolTimeout: status.HTTP_503_SERVICE_UNAVAILABLE,
    psycopg.OperationalError: status.HTTP_503_SERVICE_UNAVAILABLE,
}

PGSTAC_GENERIC_DETAILS: dict[type[Exception], str] = {
    PoolTimeout: "pgstac database unavailable; retry later",
    psycopg.OperationalError: "pgstac database unavailable; retry later",
}


# -- wiring ---------------------------------------------------------------------------------------------------


def _mosaic_factory(
    path_dependency: Callable[..., str],
    prefix: str,
    reader_dependency: type[DefaultDependency],
    environment: Callable[..., dict[str, Any]],
    api_settings: ApiSettings,
    budget: BudgetSettings,
    guards: Sequence[Any] = (),
) -> MosaicTilerFactory:
    return MosaicTilerFactory(
        backend=bounded_backend(budget),
        router=APIRouter(dependencies=[*STAC_ROUTER_GUARDS, *guards]),
        route_dependencies=ROUTE_GUARDS,
        **parameter_slots(api_settings, MosaicTilerFactory, reader_dependency=reader_dependency),
        path_dependency=path_dependency,
        router_prefix=prefix,
        dataset_reader=RoutedMosaicItemReader,
        environment_dependency=environment,
        add_statistics=True,
        add_viewer=True,
        add_part=True,
        extensions=[searchInfoExtension(), wmtsExtensionMosaic()],
    )


def _lifespan_with_pool(app: FastAPI, connection: PgstacConnection, close_on_shutdown: bool) -> None:
    """Keep the pool open around whatever lifespan the app already has: opened at start-up (again if a shutdown
    closed it), closed at shutdown under uvicorn and in tests. On Lambda no lifespan runs (`raster_api.handler`:
    Mangum with `lifespan="off"`), so the pool opened at init serves every invocation."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app_: FastAPI) -> AsyncIterator[Any]:
        app_.state.dbpool = connection.open()
        try:
            async with inner(app_) as state:
                yield state
        finally:
            if close_on_shutdown:
                connection.close()

    app.router.lifespan_context = lifespan


def register(
    app: FastAPI,
    router: ProviderRouter,
    db: DatabaseSettings,
    pool: PoolSettings,
) -> PgstacConnection | None:
    """Mount `/searches`, `/collections/{id}` and `/collections/{id}/items/{id}` when a database is configured.

    Returns the connection (also `app.state.pgstac`; its pool is `app.state.dbpool` for titiler.pgstac's own
    dependencies), or None when no database is configured. The pool opens here, at start-up (on Lambda: during
    the init phase), and again in the lifespan if a previous shutdown closed it.
    """
    if not db.configured:
        logger.warning("pgstac routes requested but no database configured (DATABASE_URL, PGSTAC_SECRET_ID, PGHOST)")
        return None
    connection = PgstacConnection(db, pool)
    app.state.pgstac = connection
    app.state.dbpool = connection.open()
    _lifespan_with_pool(app, connection, pool.close_on_shutdown)
    parts = getattr(app.state, "enabled_parts", None)
    if isinstance(parts, dict):
        parts["pgstac"] = True

    routing = _routing_dependency(router, connection)
    environment = unsigned_environment
    api_settings: ApiSettings = app.state.settings.api if hasattr(app.state, "settings") else ApiSettings()
    budget: BudgetSettings = app.state.settings.budget if hasattr(app.state, "settings") else BudgetSettings()

    searches = _mosaic_factory(SearchIdParams, "/searches/{search_id}", routing, environment, api_settings, budget)
    app.include_router(searches.router, tags=[TAGS_SEARCH], prefix="/searches/{search_id}")
    # titiler.pgstac adds its list routes to whatever has `.get` and `.url_path_for`: a router carrying the guard.
    search_list = APIRouter(dependencies=[Depends(valid_search_list_query)])
    add_search_list_route(cast(FastAPI, search_list), prefix="/searches", tags=[TAGS_SEARCH])
    app.include_router(search_list)
    # Registering writes to the database: a signed-in caller whenever an issuer is configured.
    search_register = APIRouter(dependencies=[Depends(require_caller)])
    add_search_register_route(
        cast(FastAPI, search_register),
        prefix="/searches",
        search_dependency=search_params,
        tile_dependencies=[
            searches.layer_dependency,
            searches.dataset_dependency,
            searches.pixel_selection_dependency,
            searches.process_dependency,
            searches.render_dependency,
            searches.assets_accessor_dependency,
            searches.reader_dependency,
            searches.backend_dependency,
        ],
        tags=[TAGS_SEARCH],
    )
    app.include_router(search_register)

    collections = _mosaic_factory(
        collection_search_id,
        "/collections/{collection_id}",
        routing,
        environment,
        api_settings,
        budget,
        guards=[Depends(collection_search_needs_a_caller)],
    )
    app.include_router(collections.router, tags=[TAGS_COLLECTION], prefix="/collections/{collection_id}")

    items = MultiBaseTilerFactory(
        router=APIRouter(dependencies=STAC_ROUTER_GUARDS),
        route_dependencies=ROUTE_GUARDS,
        **parameter_slots(api_settings, MultiBaseTilerFactory, reader_dependency=routing),
        reader=RoutedItemReader,
        environment_dependency=environment,
        path_dependency=ItemIdParams,
        router_prefix="/collections/{collection_id}/items/{item_id}",
        add_viewer=True,
        extensions=[wmtsExtension()],
    )
    app.include_router(items.router, tags=[TAGS_ITEM], prefix="/collections/{collection_id}/items/{item_id}")

    return connection
