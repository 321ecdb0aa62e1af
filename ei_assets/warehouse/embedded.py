"""Connections to the embedded warehouse file: read-only ones, and the process's writers.

Writers ATTACH the file with row groups of WRITE_ROW_GROUP_SIZE rows. DuckDB writes inserted rows
to the file, compressed on every core, each time a row group is full, and keeps the rest in its
write-ahead log, to be compressed at the next checkpoint on one core: with its default row groups
(122,880 rows), a load's score grids and smaller tables all waited for that checkpoint
(docs/performance.md). ATTACH takes the row group size, `duckdb.connect(path)` does not; but a file
is attached by one DuckDB instance of a process at a time, which `duckdb.connect(path)` ensures by
sharing one instance among a file's connections. The writers here share one as well: a process's
writers to a file are cursors of one instance, closed with the last of them.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from ei_assets.warehouse.ducklake import literal

__all__ = ["CATALOG", "WRITE_ROW_GROUP_SIZE", "connection"]

CATALOG = "ei"  # the file's name in a writer's DuckDB, as `duckdb.connect` names ei.duckdb
# Smaller row groups cost more to write for a long table (predictions); larger ones leave a typical
# load's score grids to the checkpoint (docs/performance.md).
WRITE_ROW_GROUP_SIZE = 32_768


class _Writers:
    """The process's writing DuckDB instance of each file, and how many use it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._open: dict[str, tuple[duckdb.DuckDBPyConnection, int]] = {}

    def cursor(self, path: str) -> duckdb.DuckDBPyConnection:
        with self._lock:
            base, users = self._open.get(path) or (_attach(path), 0)
            self._open[path] = (base, users + 1)
            try:
                cursor = base.cursor()
            except BaseException:
                self._drop(path)
                raise
        try:
            cursor.execute(f"USE {CATALOG}")  # a cursor starts in the instance's own catalog
        except BaseException:
            self.release(path, cursor)
            raise
        return cursor

    def release(self, path: str, cursor: duckdb.DuckDBPyConnection) -> None:
        cursor.close()
        with self._lock:
            self._drop(path)

    def _drop(self, path: str) -> None:
        base, users = self._open[path]
        if users > 1:
            self._open[path] = (base, users - 1)
        else:
            del self._open[path]
            base.close()  # DuckDB checkpoints the file as its last connection closes


_WRITERS = _Writers()


def _attach(path: str) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{literal(path)}' AS {CATALOG} (ROW_GROUP_SIZE {WRITE_ROW_GROUP_SIZE})")
    except BaseException:
        con.close()
        raise
    return con


@contextmanager
def connection(path: str, read_only: bool) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection to the DuckDB file at `path`, closed on exit. Opening it raises as
    `duckdb.connect(path)` does: IOException while another process holds the file's lock."""
    if read_only:
        con = duckdb.connect(path, read_only=True)
        try:
            yield con
        finally:
            con.close()
        return
    path = os.path.realpath(path)  # one instance per file, however its path is spelled
    cursor = _WRITERS.cursor(path)
    try:
        yield cursor
    finally:
        _WRITERS.release(path, cursor)
