"""The Parquet lake: one zstd Parquet file per table per snapshot, hive-partitioned.

  <data dir>/lake/<table>/project_id=P/learn_id=L/<snapshot_id>.parquet

Every file is written under a temporary name and renamed. The `snapshots` file of a snapshot is
renamed last, so its presence means the whole snapshot is in the lake; a crash before that leaves
no snapshot file, and the next run writes the snapshot again (identically).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack, suppress
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ei_assets.schema import COMMIT_TABLE, LEARN_ID, PROJECT_ID, SNAPSHOT_TABLES, TABLES
from ei_assets.snapshot import Snapshot, block_dir, snapshot_part
from ei_assets.storage.files import atomic_output, exists, file_infos, list_files

if TYPE_CHECKING:
    import pyarrow.dataset as ds

LAKE_DIR = "lake"  # the lake's folder under the data dir


def parquet_writer(stream: pa.NativeFile, table: str) -> pq.ParquetWriter:
    """A lake file's writer: zstd, dictionary-encoded text columns. Numbers are written plain:
    scores and times rarely repeat, and trying a dictionary on them first (pyarrow's default)
    costs a large part of the write and, once it falls back, larger files (docs/performance.md)."""
    schema = TABLES[table].arrow_schema
    text = [field.name for field in schema if pa.types.is_string(field.type)]
    return pq.ParquetWriter(stream, schema, compression="zstd",
                            use_dictionary=text)  # type: ignore[arg-type]  # stubs: bool only; pyarrow takes column names


class Lake:
    """The Parquet lake of one data dir: a snapshot's tables written all or none, read back."""

    def __init__(self, filesystem: pafs.FileSystem, data_dir: str) -> None:
        self.filesystem = filesystem
        self.data_dir = data_dir.rstrip("/")
        self.root = f"{self.data_dir}/{LAKE_DIR}"

    def table_dir(self, table: str) -> str:
        if table not in SNAPSHOT_TABLES:
            raise ValueError(f"unknown lake table {table!r}")
        return f"{self.root}/{table}"

    def file(self, table: str, project_id: int, learn_id: int, snapshot_id: str) -> str:
        folder = block_dir(self.table_dir(table), project_id, learn_id)
        return f"{folder}/{snapshot_part(snapshot_id)}.parquet"

    def has_snapshot(self, snapshot: Snapshot) -> bool:
        return exists(self.filesystem, self._file(COMMIT_TABLE, snapshot))

    def _file(self, table: str, snapshot: Snapshot) -> str:
        return self.file(table, snapshot.project_id, snapshot.learn_id, snapshot.snapshot_id)

    def write_snapshot(self, snapshot: Snapshot, batches: Iterable[tuple[str, pa.Table]]) -> dict[str, int]:
        """Write a snapshot's flattened batches, all tables or none. Returns rows written per table."""
        counts: dict[str, int] = {}
        commit: pa.Table | None = None
        with ExitStack() as stack:
            writers: dict[str, pq.ParquetWriter] = {}
            for table, rows in batches:
                if table == COMMIT_TABLE:
                    commit = rows
                    continue
                if rows.num_rows == 0:
                    continue
                if table not in writers:
                    stream = stack.enter_context(atomic_output(self.filesystem, self._file(table, snapshot)))
                    writers[table] = stack.enter_context(parquet_writer(stream, table))
                writers[table].write_table(rows)
                counts[table] = counts.get(table, 0) + rows.num_rows
            if commit is None:
                raise ValueError(f"flattening snapshot {snapshot.snapshot_id} produced no snapshot row")
        # every table file is renamed into place by now; the snapshot row goes last
        with atomic_output(self.filesystem, self._file(COMMIT_TABLE, snapshot)) as stream, \
                parquet_writer(stream, COMMIT_TABLE) as writer:
            writer.write_table(commit)
        counts[COMMIT_TABLE] = commit.num_rows
        return counts

    def remove_snapshot(self, project_id: int, learn_id: int, snapshot_id: str) -> None:
        """Take a snapshot out of the lake (one the warehouse cannot load): its `snapshots` file
        first, so that at no moment does the lake show it committed with files missing."""
        for table in (COMMIT_TABLE, *(t for t in SNAPSHOT_TABLES if t != COMMIT_TABLE)):
            with suppress(FileNotFoundError):
                self.filesystem.delete_file(self.file(table, project_id, learn_id, snapshot_id))

    def read(self, table: str, snapshot: Snapshot) -> pa.Table:
        """One snapshot's rows of a table (no file: the snapshot has no rows there)."""
        try:
            with self.filesystem.open_input_file(self._file(table, snapshot)) as handle:
                return pq.read_table(handle, schema=TABLES[table].arrow_schema)
        except FileNotFoundError:
            return TABLES[table].arrow_schema.empty_table()

    def files(self, table: str) -> list[str]:
        """Every visible Parquet file of a table (temporary files are never listed)."""
        return list_files(self.filesystem, self.table_dir(table), ".parquet")

    def file_infos(self, table: str) -> list[pafs.FileInfo]:
        """The same files, with their sizes, from the same one listing."""
        return file_infos(self.filesystem, self.table_dir(table), ".parquet")

    def dataset(self, table: str) -> ds.Dataset:
        """A pyarrow dataset of the table; the hive partition keys are typed like the file columns."""
        import pyarrow.dataset as ds  # here: it loads pandas, which the refresh does not need

        partitioning = ds.partitioning(
            pa.schema([PROJECT_ID.field, LEARN_ID.field]), flavor="hive"
        )
        return ds.dataset(self.files(table), schema=TABLES[table].arrow_schema, format="parquet",
                          filesystem=self.filesystem, partitioning=partitioning,
                          partition_base_dir=self.table_dir(table))
