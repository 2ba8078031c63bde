"""A throwaway PostgreSQL + PostGIS cluster migrated with `pypgstac` (a development tool, never deployed).

The test suite, benchmarks and the local stack need a real pgstac database, not a mock: titiler.pgstac's mosaic
search runs inside PostgreSQL (`geojsonsearch`). This module starts one on 127.0.0.1 in a temporary directory, as the
`postgres` user when we are root (PostgreSQL refuses to run as root), and removes every trace when done.

API (all small and synchronous):
- `postgis_missing()`: None when a PostgreSQL with PostGIS is installed, else the reason (for `pytest.skip`).
- `pgstac_database()`: context manager; starts the cluster, creates the database, runs `pypgstac migrate`,
  yields a `PgstacDatabase` (dsn, `env()` for `DATABASE_URL`/`PG*`, `secret_value()` for `PGSTAC_SECRET_ID`),
  then stops the server and deletes its directory.
- `load_collections(dsn, collections)` / `load_items(dsn, items)`: upsert STAC dicts with pypgstac's `Loader`.
- `stac_collection(...)` / `stac_item(...)`: minimal valid STAC documents for sample COGs.
"""

from __future__ import annotations

import glob
import logging
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from local_stack.aws_world import free_port

logger = logging.getLogger(__name__)

SERVER_USER = "postgres"  # the OS account that runs the server when we are root
DB_USER = "postgres"  # the database superuser (pgstac's migration creates extensions and roles)
DB_NAME = "pgstac"

# Durability is worthless for a throwaway cluster; these make `pypgstac migrate` and loading several times faster.
_FAST_OPTIONS = ("-c fsync=off", "-c full_page_writes=off", "-c synchronous_commit=off")


@dataclass(frozen=True)
class PgstacDatabase:
    """Connection facts of a running pgstac database."""

    host: str
    port: int
    user: str
    password: str
    dbname: str
    directory: Path

    @property
    def dsn(self) -> str:
        return f"postgresql://{quote(self.user)}:{quote(self.password, safe='')}@{self.host}:{self.port}/{self.dbname}"

    def env(self) -> dict[str, str]:
        """The environment a raster API process needs to use this database (`DATABASE_URL` and libpq's `PG*`)."""
        return {
            "DATABASE_URL": self.dsn,
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
            "PGDATABASE": self.dbname,
        }

    def secret_value(self) -> dict[str, Any]:
        """The Secrets Manager value `PGSTAC_SECRET_ID` points at (the RDS-generated secret's shape)."""
        return {
            "username": self.user,
            "password": self.password,
            "host": self.host,
            "port": self.port,
            "dbname": self.dbname,
        }


def postgres_bin_dir() -> Path | None:
    """The directory holding `initdb`/`pg_ctl`: `$PG_BIN`, else Debian's newest `/usr/lib/postgresql/N/bin`."""
    if env_dir := os.environ.get("PG_BIN"):
        return Path(env_dir)
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _share_dir(bin_dir: Path) -> Path | None:
    pg_config = bin_dir / "pg_config"
    if not pg_config.exists():
        return None
    out = subprocess.run([str(pg_config), "--sharedir"], capture_output=True, text=True, check=False)  # noqa: S603
    return Path(out.stdout.strip()) if out.returncode == 0 else None


def postgis_missing() -> str | None:
    """None when PostgreSQL and PostGIS are installed; otherwise why not (a skip reason)."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not (bin_dir / "initdb").exists():
        return "PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql-15 or set PG_BIN"
    share = _share_dir(bin_dir)
    if share is None or not (share / "extension" / "postgis.control").exists():
        return f"PostGIS is not installed for the PostgreSQL in {bin_dir} (Debian: apt-get install postgresql-15-postgis-3)"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SERVER_USER)
        except KeyError:
            return f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as"
    return None


def _as_server_user(argv: Sequence[str]) -> list[str]:
    # PostgreSQL refuses to start as root; drop to the postgres account for every server command.
    return ["runuser", "-u", SERVER_USER, "--", *argv] if os.geteuid() == 0 else list(argv)


def _run(argv: Sequence[str], what: str) -> None:
    proc = subprocess.run(_as_server_user(argv), capture_output=True, text=True, check=False)  # noqa: S603
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")


def _make_directory(base_dir: str | None) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="pgstac-", dir=base_dir))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    directory.chmod(0o700)
    return directory


def _write_owned(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _start_cluster(bin_dir: Path, directory: Path, port: int, password: str) -> None:
    data = directory / "data"
    pwfile = directory / "pwfile"
    _write_owned(pwfile, password + "\n")
    _run(
        [
            str(bin_dir / "initdb"),
            "-D",
            str(data),
            "-U",
            DB_USER,
            "--pwfile",
            str(pwfile),
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        ],
        "initdb",
    )
    pwfile.unlink()
    options = " ".join(["-c listen_addresses=127.0.0.1", f"-p {port}", f"-k {directory}", *_FAST_OPTIONS])
    _run(
        [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(directory / "postgres.log"), "-o", options, "-w", "start"],
        "pg_ctl start",
    )


def _stop_cluster(bin_dir: Path, directory: Path) -> None:
    data = directory / "data"
    if (data / "postmaster.pid").exists():
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"], "pg_ctl stop")


def migrate(dsn: str) -> str:
    """Run `pypgstac migrate` against `dsn`; returns the pgstac version now installed."""
    from pypgstac.db import PgstacDB
    from pypgstac.migrate import Migrate

    with PgstacDB(dsn=dsn) as db:
        return str(Migrate(db).run_migration())


def _create_database(host: str, port: int, password: str) -> None:
    import psycopg

    admin_dsn = f"postgresql://{DB_USER}:{quote(password, safe='')}@{host}:{port}/postgres"
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {DB_NAME}")  # a constant name, not user input


@contextmanager
def pgstac_database(base_dir: str | None = None, port: int = 0) -> Iterator[PgstacDatabase]:
    """Start PostgreSQL on 127.0.0.1, create and migrate a pgstac database, yield it, then tear it all down."""
    reason = postgis_missing()
    if reason:
        raise RuntimeError(reason)
    bin_dir = postgres_bin_dir()
    assert bin_dir is not None
    directory = _make_directory(base_dir)
    password = secrets.token_urlsafe(18)
    port = port or free_port()
    db = PgstacDatabase("127.0.0.1", port, DB_USER, password, DB_NAME, directory)
    try:
        _start_cluster(bin_dir, directory, port, password)
        _create_database(db.host, port, password)
        version = migrate(db.dsn)
        logger.info("pgstac %s ready on 127.0.0.1:%d", version, port)
        yield db
    finally:
        try:
            _stop_cluster(bin_dir, directory)
        finally:
            shutil.rmtree(directory, ignore_errors=True)


def load_collections(dsn: str, collections: Iterable[Mapping[str, Any]]) -> None:
    """Insert or replace collections (pypgstac `Loader`, upsert mode)."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    with PgstacDB(dsn=dsn) as db:
        Loader(db=db).load_collections(iter([dict(c) for c in collections]), insert_mode=Methods.upsert)


def load_items(dsn: str, items: Iterable[Mapping[str, Any]]) -> None:
    """Insert or replace items (their collections must be loaded first)."""
    from pypgstac.db import PgstacDB
    from pypgstac.load import Loader, Methods

    with PgstacDB(dsn=dsn) as db:
        Loader(db=db).load_items(iter([dict(i) for i in items]), insert_mode=Methods.upsert)


def stac_collection(
    collection_id: str,
    bbox: tuple[float, float, float, float],
    description: str = "",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A minimal valid STAC collection; `extra` is merged at the top level (e.g. `{"summaries": {...}}`)."""
    return {
        "type": "Collection",
        "stac_version": "1.0.0",
        "id": collection_id,
        "description": description or collection_id,
        "license": "proprietary",
        "links": [],
        "extent": {
            "spatial": {"bbox": [list(bbox)]},
            "temporal": {"interval": [["2024-01-01T00:00:00Z", None]]},
        },
        "item_assets": {"data": {"type": "image/tiff; application=geotiff; profile=cloud-optimized"}},
        **(extra or {}),
    }


def stac_item(
    collection_id: str,
    item_id: str,
    href: str,
    bbox: tuple[float, float, float, float],
    datetime: str = "2024-06-01T00:00:00Z",
    asset: str = "data",
) -> dict[str, Any]:
    """A minimal STAC item with one COG asset at `href` covering `bbox`."""
    west, south, east, north = bbox
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": item_id,
        "collection": collection_id,
        "bbox": list(bbox),
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[west, south], [east, south], [east, north], [west, north], [west, south]]],
        },
        "properties": {"datetime": datetime},
        "links": [],
        "assets": {
            asset: {
                "href": href,
                "type": "image/tiff; application=geotiff; profile=cloud-optimized",
                "roles": ["data"],
            }
        },
    }
