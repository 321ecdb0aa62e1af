"""The raw archive: every distinct metadata response, compressed, written once, never rewritten.

Layout under `<data dir>/raw/`:
  project_id=P/learn_id=L/<snapshot_id>/<endpoint>.json.zst   the bodies exactly as received
  project_id=P/learn_id=L/<snapshot_id>/snapshot.json         block type, first fetch, endpoints;
                                                               written last: marks the set complete
  project_id=P/learn_id=L/<snapshot_id>/unloadable.txt         why the warehouse could not load it
                                                               (see `mark_unloadable`)
  project_id=P/learn_id=L/_seen/<body digest>                  the snapshot id of bodies with
                                                               these exact bytes (see `recall`)
  project_id=P/_refresh.json                                   what the last full fetch of the
                                                               project saw (change detection)
  _log/<table>/<YYYY-MM-DD>/<time>-<uuid>.parquet             fetch_log and discoveries, per run
The lake and the warehouse can be rebuilt from this folder alone.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import suppress
from datetime import UTC, datetime

import msgspec
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from ei_assets.schema import TABLES, Kind
from ei_assets.snapshot import RAW_DIR, Snapshot, block_dir, snapshot_part
from ei_assets.storage.files import exists, list_files, write_atomically
from ei_assets.studio.blocks import Body

MARKER = "snapshot.json"
UNLOADABLE = "unloadable.txt"
PROJECT_STATE = "_refresh.json"
SEEN_DIR = "_seen"
_read_marker = msgspec.json.Decoder(Snapshot).decode


def _writer(data: Body) -> Callable[[pa.NativeFile], object]:
    return lambda stream: stream.write(data)


class RawArchive:
    """The raw archive of one data dir: bodies as received, `_seen` digests, refused marks, run logs."""

    def __init__(self, filesystem: pafs.FileSystem, data_dir: str) -> None:
        self.filesystem = filesystem
        self.data_dir = data_dir.rstrip("/")
        self.root = f"{self.data_dir}/{RAW_DIR}"

    def _dir(self, snapshot: Snapshot) -> str:
        return f"{self.data_dir}/{snapshot.raw_path}"

    def has(self, snapshot: Snapshot) -> bool:
        return exists(self.filesystem, f"{self._dir(snapshot)}/{MARKER}")

    def put(self, snapshot: Snapshot, bodies: Mapping[str, Body]) -> bool:
        """Archive the bodies of a snapshot unless already there. True when something was written."""
        if self.has(snapshot):
            return False
        folder = self._dir(snapshot)
        for endpoint, body in bodies.items():
            path = f"{folder}/{endpoint}.json.zst"
            if not exists(self.filesystem, path):
                write_atomically(self.filesystem, path, _writer(body), "zstd")
        write_atomically(self.filesystem, f"{folder}/{MARKER}", _writer(msgspec.json.encode(snapshot)))
        return True

    def _seen(self, project_id: int, learn_id: int, digest: str) -> str:
        folder = block_dir(f"{self.data_dir}/{RAW_DIR}", project_id, learn_id)
        return f"{folder}/{SEEN_DIR}/{snapshot_part(digest)}"

    def recall(self, project_id: int, learn_id: int, digest: str) -> str | None:
        """The snapshot id of a block's bodies whose bytes have this digest (`body_digest`), if
        those exact bytes were archived before; None otherwise, or if the entry is unreadable."""
        data = self._read_small(self._seen(project_id, learn_id, digest), 64)
        if data is None:
            return None
        try:
            return snapshot_part(data.decode("ascii", "replace").strip())
        except ValueError:
            return None  # not our id: parse the bodies again and write the entry anew

    def remember(self, snapshot: Snapshot, digest: str) -> None:
        """Note that bodies with this digest are `snapshot` (after it is archived and in the lake)."""
        path = self._seen(snapshot.project_id, snapshot.learn_id, digest)
        write_atomically(self.filesystem, path, _writer(snapshot_part(snapshot.snapshot_id).encode()))

    def _unloadable(self, project_id: int, learn_id: int, snapshot_id: str) -> str:
        folder = block_dir(f"{self.data_dir}/{RAW_DIR}", project_id, learn_id)
        return f"{folder}/{snapshot_part(snapshot_id)}/{UNLOADABLE}"

    def mark_unloadable(self, project_id: int, learn_id: int, snapshot_id: str, reason: str) -> None:
        """Note that the warehouse refused this snapshot, and why: a refresh that meets the same
        response again fails the block with this reason instead of storing it again."""
        path = self._unloadable(project_id, learn_id, snapshot_id)
        write_atomically(self.filesystem, path, _writer(reason.encode()))

    def unloadable(self, project_id: int, learn_id: int, snapshot_id: str) -> str | None:
        """Why the warehouse refused this snapshot, if it did; None otherwise."""
        data = self._read_small(self._unloadable(project_id, learn_id, snapshot_id), 4096)
        return None if data is None else data.decode("utf-8", "replace")

    def forget_unloadable(self) -> int:
        """Drop every unloadable mark (a rebuild tries every snapshot again); returns how many."""
        marks = [p for p in list_files(self.filesystem, self.root, f"/{UNLOADABLE}")
                 if "/_log/" not in p]
        for path in marks:
            self.filesystem.delete_file(path)
        return len(marks)

    # ---- a project's change-detection state (its format is ei_assets.pipeline.change_detection's)

    def _project_state(self, project_id: int) -> str:
        return f"{self.root}/project_id={int(project_id)}/{PROJECT_STATE}"

    def read_project_state(self, project_id: int) -> bytes | None:
        return self._read_small(self._project_state(project_id))

    def write_project_state(self, project_id: int, state: bytes) -> None:
        write_atomically(self.filesystem, self._project_state(project_id), _writer(state))

    def forget_project_state(self, project_id: int) -> None:
        """The next refresh fetches every block of the project, whatever Studio's date says."""
        with suppress(FileNotFoundError):
            self.filesystem.delete_file(self._project_state(project_id))

    def _read_small(self, path: str, limit: int | None = None) -> bytes | None:
        """A small file's bytes (at most `limit`), as stored; None when there is none."""
        try:
            with self.filesystem.open_input_stream(path, compression=None) as stream:
                return bytes(stream.read(limit))
        except FileNotFoundError:
            return None

    def read(self, snapshot: Snapshot) -> dict[str, bytes]:
        folder = self._dir(snapshot)
        bodies = {}
        for endpoint in snapshot.endpoints:
            # the stored bytes, decompressed here: S3FileSystem does not apply open_input_stream's
            # compression, the local one guesses it from the name
            with self.filesystem.open_input_stream(f"{folder}/{endpoint}.json.zst",
                                                   compression=None) as stream, \
                    pa.CompressedInputStream(stream, "zstd") as body:
                bodies[endpoint] = body.read()
        return bodies

    def snapshots(self) -> Iterator[Snapshot]:
        """Every complete snapshot in the archive (for rebuilds), oldest fetch first."""
        found = []
        for path in list_files(self.filesystem, self.root, f"/{MARKER}"):
            if "/_log/" in path:
                continue
            with self.filesystem.open_input_stream(path) as stream:
                marker = _read_marker(stream.read())
            folder_id = snapshot_part(path.rsplit("/", 2)[-2])
            found.append(msgspec.structs.replace(marker, snapshot_id=folder_id))
        found.sort(key=lambda s: (s.fetched_at, s.project_id, s.learn_id))
        yield from found

    # ---- run logs ---------------------------------------------------------------------------

    def log_dir(self, table: str) -> str:
        if table not in TABLES or TABLES[table].kind is not Kind.LOG:
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
        rows = rows.cast(TABLES[table].arrow_schema)
        now = datetime.now(UTC)
        path = f"{self.log_dir(table)}/{now:%Y-%m-%d}/{now:%H%M%S%f}-{uuid.uuid4().hex[:8]}.parquet"
        write_atomically(self.filesystem, path,
                         lambda stream: pq.write_table(rows, stream, compression="zstd"))
        return path
