"""The Parquet lake: one zstd Parquet file per table per snapshot, hive-partitioned.

  <data dir>/lake/<table>/project_id=P/learn_id=L/<snapshot_id>.parquet

Every file is written under a temporary name and renamed. The `snapshots` file of a snapshot is
renamed last, so its presence means the whole snapshot is in the lake; a crash before that leaves
no snapshot file, and the next run writes the snapshot again (identically).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import ExitStack

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ei_assets.flatten import SnapshotSource, flatten
from ei_assets.schema import COMMIT_TABLE, SNAPSHOT_TABLES, TABLES
from ei_assets.storage import atomic_output, block_dir, exists, list_files, snapshot_part

Flattener = Callable[[SnapshotSource], Iterable[tuple[str, pa.Table]]]


class Lake:
    def __init__(self, filesystem: pafs.FileSystem, data_dir: str) -> None:
        self.filesystem = filesystem
        self.data_dir = data_dir.rstrip("/")
        self.root = f"{self.data_dir}/lake"

    def table_dir(self, table: str) -> str:
        if table not in SNAPSHOT_TABLES:
            raise ValueError(f"unknown lake table {table!r}")
        return f"{self.root}/{table}"

    def file(self, table: str, project_id: int, learn_id: int, snapshot_id: str) -> str:
        folder = block_dir(self.table_dir(table), project_id, learn_id)
        return f"{folder}/{snapshot_part(snapshot_id)}.parquet"

    def has_snapshot(self, project_id: int, learn_id: int, snapshot_id: str) -> bool:
        return exists(self.filesystem, self.file(COMMIT_TABLE, project_id, learn_id, snapshot_id))

    def write_snapshot(self, source: SnapshotSource, flattener: Flattener = flatten) -> dict[str, int]:
        """Flatten and write a snapshot, all tables or none. Returns rows written per table."""
        counts: dict[str, int] = {}
        commit: pa.Table | None = None
        with ExitStack() as stack:
            writers: dict[str, pq.ParquetWriter] = {}
            for table, rows in flattener(source):
                if table == COMMIT_TABLE:
                    commit = rows
                    continue
                if rows.num_rows == 0:
                    continue
                if table not in writers:
                    path = self.file(table, source.project_id, source.learn_id, source.snapshot_id)
                    stream = stack.enter_context(atomic_output(self.filesystem, path))
                    writers[table] = stack.enter_context(
                        pq.ParquetWriter(stream, TABLES[table].schema, compression="zstd")
                    )
                writers[table].write_table(rows)
                counts[table] = counts.get(table, 0) + rows.num_rows
            if commit is None:
                raise ValueError(f"flattening snapshot {source.snapshot_id} produced no snapshot row")
        # every table file is renamed into place by now; the snapshot row goes last
        path = self.file(COMMIT_TABLE, source.project_id, source.learn_id, source.snapshot_id)
        with atomic_output(self.filesystem, path) as stream:
            pq.write_table(commit, stream, compression="zstd")
        counts[COMMIT_TABLE] = commit.num_rows
        return counts

    def read(self, table: str, project_id: int, learn_id: int, snapshot_id: str) -> pa.Table:
        path = self.file(table, project_id, learn_id, snapshot_id)
        if not exists(self.filesystem, path):
            return TABLES[table].schema.empty_table()
        with self.filesystem.open_input_file(path) as handle:
            return pq.read_table(handle)

    def files(self, table: str) -> list[str]:
        """Every visible Parquet file of a table (temporary files are never listed)."""
        return list_files(self.filesystem, self.table_dir(table), ".parquet")

    def dataset(self, table: str) -> ds.Dataset:
        """A pyarrow dataset of the table; the hive partition keys are typed like the file columns."""
        partitioning = ds.partitioning(
            pa.schema([("project_id", pa.int64()), ("learn_id", pa.int64())]), flavor="hive"
        )
        return ds.dataset(self.files(table), schema=TABLES[table].schema, format="parquet",
                          filesystem=self.filesystem, partitioning=partitioning,
                          partition_base_dir=self.table_dir(table))
