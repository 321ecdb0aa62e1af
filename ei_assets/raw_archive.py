"""The raw archive: every distinct metadata response, compressed, written once, never rewritten.

Layout under `<data dir>/raw/`:
  project_id=P/learn_id=L/<snapshot_id>/<endpoint>.json.zst   the bodies exactly as received
  project_id=P/learn_id=L/<snapshot_id>/snapshot.json         block type, first fetch, endpoints;
                                                               written last: marks the set complete
  _log/<table>/<YYYY-MM-DD>/<time>-<uuid>.parquet             fetch_log and discoveries, per run
The lake and the warehouse can be rebuilt from this folder alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ei_assets.schema import TABLES
from ei_assets.storage import block_dir, exists, list_files, snapshot_part, write_atomically

MARKER = "snapshot.json"


class _Marker(msgspec.Struct):
    project_id: int
    learn_id: int
    block_type: str
    fetched_at: datetime
    endpoints: list[str]


@dataclass(frozen=True)
class ArchivedSnapshot:
    project_id: int
    learn_id: int
    snapshot_id: str
    block_type: str
    fetched_at: datetime
    endpoints: tuple[str, ...]
    path: str  # relative to the data dir, e.g. raw/project_id=1/learn_id=3/<id>


class RawArchive:
    def __init__(self, filesystem: pafs.FileSystem, data_dir: str) -> None:
        self.filesystem = filesystem
        self.data_dir = data_dir.rstrip("/")
        self.root = f"{self.data_dir}/raw"

    def relative_dir(self, project_id: int, learn_id: int, snapshot_id: str) -> str:
        return f"{block_dir('raw', project_id, learn_id)}/{snapshot_part(snapshot_id)}"

    def _dir(self, project_id: int, learn_id: int, snapshot_id: str) -> str:
        return f"{self.data_dir}/{self.relative_dir(project_id, learn_id, snapshot_id)}"

    def has(self, project_id: int, learn_id: int, snapshot_id: str) -> bool:
        return exists(self.filesystem, f"{self._dir(project_id, learn_id, snapshot_id)}/{MARKER}")

    def put(
        self, project_id: int, learn_id: int, snapshot_id: str, block_type: str,
        fetched_at: datetime, bodies: Mapping[str, bytes],
    ) -> bool:
        """Archive the bodies of a snapshot unless already there. True when something was written."""
        if self.has(project_id, learn_id, snapshot_id):
            return False
        folder = self._dir(project_id, learn_id, snapshot_id)
        for endpoint, body in bodies.items():
            path = f"{folder}/{endpoint}.json.zst"
            if not exists(self.filesystem, path):
                write_atomically(self.filesystem, path, lambda s, b=body: s.write(b), "zstd")
        marker = _Marker(int(project_id), int(learn_id), block_type, fetched_at, list(bodies))
        write_atomically(self.filesystem, f"{folder}/{MARKER}",
                         lambda s: s.write(msgspec.json.encode(marker)))
        return True

    def read(self, snapshot: ArchivedSnapshot) -> dict[str, bytes]:
        folder = f"{self.data_dir}/{snapshot.path}"
        bodies = {}
        for endpoint in snapshot.endpoints:
            with self.filesystem.open_input_stream(f"{folder}/{endpoint}.json.zst",
                                                   compression="zstd") as stream:
                bodies[endpoint] = stream.read()
        return bodies

    def snapshots(self) -> Iterator[ArchivedSnapshot]:
        """Every complete snapshot in the archive (for rebuilds), oldest fetch first."""
        found = []
        for path in list_files(self.filesystem, self.root, f"/{MARKER}"):
            if "/_log/" in path:
                continue
            with self.filesystem.open_input_stream(path) as stream:
                marker = msgspec.json.decode(stream.read(), type=_Marker)
            snapshot_id = path.rsplit("/", 2)[-2]
            found.append(ArchivedSnapshot(
                marker.project_id, marker.learn_id, snapshot_part(snapshot_id),
                marker.block_type, marker.fetched_at, tuple(marker.endpoints),
                self.relative_dir(marker.project_id, marker.learn_id, snapshot_id),
            ))
        found.sort(key=lambda s: (s.fetched_at, s.project_id, s.learn_id))
        yield from found

    # ---- run logs ---------------------------------------------------------------------------

    def log_dir(self, table: str) -> str:
        if table not in TABLES or TABLES[table].per_snapshot:
            raise ValueError(f"{table!r} is not a log table")
        return f"{self.root}/_log/{table}"

    def log_files(self, table: str) -> list[str]:
        """Every file of a run log, oldest first (names start with the write time)."""
        return list_files(self.filesystem, self.log_dir(table), ".parquet")

    def latest_log(self, table: str) -> pa.Table | None:
        """The rows of the most recent run of a log table (e.g. the last discovery)."""
        files = self.log_files(table)
        if not files:
            return None
        with self.filesystem.open_input_file(files[-1]) as handle:
            return pq.read_table(handle)

    def append_log(self, table: str, rows: pa.Table) -> str | None:
        """Write one run's rows of a log table as a new file; returns its path (None if no rows)."""
        if rows.num_rows == 0:
            return None
        rows = rows.cast(TABLES[table].schema)
        now = datetime.now(UTC)
        path = f"{self.log_dir(table)}/{now:%Y-%m-%d}/{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
        write_atomically(self.filesystem, path,
                         lambda stream: pq.write_table(rows, stream, compression="zstd"))
        return path
