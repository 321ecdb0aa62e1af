"""The raw archive and the lake of one data dir, written together: one snapshot in, files out.

`save` archives a fetched snapshot's bodies and flattens them into the lake; `reflatten` does the
second half again from the archive (rebuilds). Both hand back what the flattener counted and the
snapshot's summary, computed from the small tables the flattener built.

Bodies whose exact bytes were stored before cost a SHA-256 of their bytes and two small reads
(the archive's `_seen` entry, then the snapshot's summary tables from the lake): they are neither
hashed again nor parsed. Bodies with new bytes but a known id (the same JSON, other whitespace)
are not flattened again. Bytes whose snapshot the warehouse refused
(`RawArchive.mark_unloadable`) fail with UnloadableSnapshotError until the response changes.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from ei_assets.errors import EiAssetsError
from ei_assets.ingest.flatten import SUMMARY_TABLES, Batch, flatten
from ei_assets.ingest.summary import snapshot_summary
from ei_assets.snapshot import Snapshot, body_digest, snapshot_id
from ei_assets.storage.lake import Lake
from ei_assets.storage.raw_archive import RawArchive
from ei_assets.studio import Body, LearnBlock


class UnloadableSnapshotError(EiAssetsError, ValueError):
    """Bytes seen before whose snapshot the warehouse refused: not stored again until they change."""

    def __init__(self, snapshot: Snapshot, reason: str) -> None:
        self.snapshot = snapshot
        super().__init__(f"snapshot {snapshot.snapshot_id} was refused by the warehouse load ({reason}); "
                         "it is stored again only when the response changes")


@dataclass(frozen=True)
class Saved:
    """What storing one snapshot did."""

    snapshot: Snapshot
    is_new: bool  # its raw bodies were not in the archive before
    rows: Mapping[str, int] = field(default_factory=dict)  # rows written to the lake, per table
    summary: Mapping[str, float] = field(default_factory=dict)  # see ei_assets.ingest.summary
    profiling_pending: bool = False  # a model type of it is still being profiled
    # save(keep=True): the rows written to the lake, per table, for a load without reading them back
    tables: Mapping[str, pa.Table] = field(default_factory=dict)


class DataStore:
    """The raw archive and the lake of one data dir, on one pyarrow filesystem."""

    def __init__(self, filesystem: pafs.FileSystem, data_dir: str) -> None:
        self.filesystem = filesystem
        self.data_dir = data_dir.rstrip("/")
        self.raw = RawArchive(filesystem, self.data_dir)
        self.lake = Lake(filesystem, self.data_dir)

    def save(self, block: LearnBlock, fetched_at: datetime, bodies: Mapping[str, Body],
             keep: bool = False) -> Saved:
        """Archive one fetched state of a block and flatten it into the lake (once per snapshot);
        `keep`: hand back the rows written (the warehouse loads them as they are)."""
        digest = body_digest(bodies)
        known = self.raw.recall(block.project_id, block.learn_id, digest)
        snapshot = Snapshot(project_id=block.project_id, learn_id=block.learn_id,
                            block_type=block.block_type, fetched_at=fetched_at,
                            endpoints=tuple(bodies), snapshot_id=known or snapshot_id(bodies))
        if known and self.lake.has_snapshot(snapshot):
            return self._unchanged(snapshot, is_new=False)
        if known and (reason := self.raw.unloadable(block.project_id, block.learn_id, known)) is not None:
            raise UnloadableSnapshotError(snapshot, reason)
        saved = self._flatten(snapshot, bodies, self.raw.put(snapshot, bodies), keep=keep)
        self.raw.remember(snapshot, digest)
        return saved

    def reflatten(self, snapshot: Snapshot) -> Saved:
        """Flatten an archived snapshot into the lake again (for rebuilds)."""
        return self._flatten(snapshot, self.raw.read(snapshot), is_new=True, rewrite=True)

    def _unchanged(self, snapshot: Snapshot, is_new: bool) -> Saved:
        """A snapshot already in the lake: nothing written, its summary read from the lake."""
        small = [self.lake.read(table, snapshot) for table in SUMMARY_TABLES]
        return Saved(snapshot, is_new, {}, snapshot_summary(*small), _pending(small[0]))

    def _flatten(self, snapshot: Snapshot, bodies: Mapping[str, Body], is_new: bool,
                 rewrite: bool = False, keep: bool = False) -> Saved:
        if not rewrite and self.lake.has_snapshot(snapshot):
            return self._unchanged(snapshot, is_new)
        kept: dict[str, list[pa.Table]] = {}

        def keeping(batches: Iterator[Batch]) -> Generator[Batch, None, None]:
            for name, rows in batches:
                if keep or name in SUMMARY_TABLES:
                    kept.setdefault(name, []).append(rows)
                yield name, rows

        rows = self.lake.write_snapshot(snapshot, keeping(flatten(snapshot, bodies)))
        small = [pa.concat_tables(kept[name]) for name in SUMMARY_TABLES]
        tables = {name: pa.concat_tables(parts) for name, parts in kept.items()
                  if rows.get(name)} if keep else {}
        return Saved(snapshot, is_new, rows, snapshot_summary(*small), _pending(small[0]), tables)


def _pending(model_metrics: pa.Table) -> bool:
    """Whether any model type of the snapshot is still being profiled."""
    return bool(pc.any(model_metrics.column("profiling_pending")).as_py())
