"""A DuckDB connection to the shared DuckLake warehouse: catalog in Postgres, data on the store.

DuckDB cannot download extensions here or in most locked-down deployments, so ducklake,
postgres_scanner and httpfs are loaded from their PyPI wheels (`duckdb-extension-*`, pinned with
duckdb itself). S3 credentials and endpoint come from the standard AWS variables, the same ones
pyarrow reads for the lake.
"""

from __future__ import annotations

import importlib
import os
import re
import urllib.parse
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ei_assets.errors import EiAssetsError
from ei_assets.settings import ConfigError

# For every warehouse connection, both modes. A load reads each lake file once, so DuckDB's cache
# of file contents would only take memory.
CONNECTION_SETTINGS = "SET enable_progress_bar = false; SET enable_external_file_cache = false"
CATALOG = "wh"  # the name the DuckLake is attached under in every connection
EXTENSIONS = (("duckdb_extension_postgres_scanner", "postgres_scanner"),
              ("duckdb_extension_httpfs", "httpfs"), ("duckdb_extension_ducklake", "ducklake"))


@dataclass(frozen=True)
class DuckLake:
    """Where the DuckLake lives: its Postgres catalog (libpq conninfo) and its data path."""

    conninfo: str
    data_path: str  # e.g. s3://bucket/prefix/warehouse/ or /local/dir/warehouse/

    def describe(self) -> str:
        """The catalog for people: database and host, never a password."""
        fields = dict(re.findall(r"(\w+)\s*=\s*('[^']*'|\S+)", self.conninfo))
        where = "/".join(v.strip("'") for k, v in fields.items() if k in ("host", "port", "dbname"))
        return f"DuckLake (catalog postgres {where or 'default'}, data {self.data_path})"


def _extension_file(package: str, name: str) -> str:
    try:
        module = importlib.import_module(package)
    except ImportError:
        raise ConfigError(f"EI_WAREHOUSE: the DuckLake mode needs the package "
                          f"{package.replace('_', '-')}; install ei_assets with its 'scale' extra") from None
    folder = Path(module.__file__ or "").parent
    found = sorted(folder.glob(f"extensions/v*/{name}.duckdb_extension"))
    if not found:
        raise ConfigError(f"EI_WAREHOUSE: {package} has no {name} extension for this platform")
    return str(found[-1])


def _s3_secret(con: duckdb.DuckDBPyConnection) -> None:
    """The AWS variables as a DuckDB S3 secret (plain http endpoints allowed, for loopback)."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "")
    parsed = urllib.parse.urlparse(endpoint) if endpoint else None
    options = ["TYPE s3", "KEY_ID ?", "SECRET ?", "REGION ?"]
    values: list[object] = [os.environ.get("AWS_ACCESS_KEY_ID", ""),
                            os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
                            os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                            or "us-east-1"]
    if parsed is not None:
        options += ["ENDPOINT ?", "URL_STYLE 'path'", "USE_SSL ?"]
        values += [parsed.netloc, parsed.scheme == "https"]
    con.execute(f"CREATE OR REPLACE SECRET ei_s3 ({', '.join(options)})", values)


def connect(lake: DuckLake, read_only: bool) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the DuckLake attached as `wh` and made the default catalog."""
    con = duckdb.connect()
    try:
        con.execute(CONNECTION_SETTINGS)
        for package, name in EXTENSIONS:
            con.execute(f"LOAD '{_extension_file(package, name)}'")  # our own file paths
        if lake.data_path.startswith("s3://"):
            _s3_secret(con)
        options = ["READ_ONLY"] if read_only else [f"DATA_PATH '{literal(lake.data_path)}'",
                                                   "DATA_INLINING_ROW_LIMIT 0"]
        con.execute(f"ATTACH 'ducklake:postgres:{literal(lake.conninfo)}' AS {CATALOG} "
                    f"({', '.join(options)})")
        con.execute(f"USE {CATALOG}")
    except BaseException:
        con.close()
        raise
    return con


class LoadTurnTimeout(EiAssetsError, TimeoutError):
    """Another load held the DuckLake for longer than we wait."""


@contextmanager
def load_turn(lake: DuckLake, wait: float, on_wait: Callable[[], None]) -> Iterator[None]:
    """One load at a time per DuckLake: a Postgres advisory lock in the catalog's database, held
    by a session of its own for the length of the load. Loads that start together (a fan-out's
    runs) take turns instead of doing the same work and losing it at commit; whoever comes next
    loads all that is new by then. The lock ends with its session, so a killed load holds
    nothing. Calls `on_wait` if it has to wait; waits at most `wait` seconds."""
    try:
        import psycopg2  # type: ignore[import-untyped]
        import psycopg2.errors  # type: ignore[import-untyped]
    except ImportError:  # the scale extra's, as the extensions are
        raise ConfigError("EI_WAREHOUSE: the DuckLake mode needs the package psycopg2-binary; "
                          "install ei_assets with its 'scale' extra") from None

    key = "ei_assets load " + lake.data_path
    con = psycopg2.connect(lake.conninfo)
    try:
        con.autocommit = True
        with con.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s))", [key])
            row = cursor.fetchone()
            if not (row and row[0]):
                on_wait()
                cursor.execute("SELECT set_config('lock_timeout', %s, false)", [f"{int(wait * 1000)}ms"])
                try:
                    cursor.execute("SELECT pg_advisory_lock(hashtext(%s))", [key])
                except psycopg2.errors.LockNotAvailable:
                    raise LoadTurnTimeout(f"waited {wait:.0f}s") from None
        yield
    finally:
        con.close()


def literal(text: str) -> str:
    """Text inside a single-quoted SQL literal (ATTACH takes no parameters)."""
    return text.replace("'", "''")
