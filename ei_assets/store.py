"""The raw archive and the lake of one data dir, written together: one snapshot in, files out.

`save` archives a fetched snapshot's bodies and flattens them into the lake; `reflatten` does the
second half again from the archive (rebuilds). Both hand back what the flattener counted and the
snapshot's summary, computed from the small tables the flattener built: the lake is never read
back.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import pyarrow as pa
import pyarrow.fs as pafs

from ei_assets.flatten import SUMMARY_TABLES, Batch, flatten
from ei_assets.lake import Lake
from ei_assets.raw_archive import RawArchive
from ei_assets.snapshot import Snapshot, snapshot_id
from ei_assets.studio import LearnBlock
from ei_assets.summary import snapshot_summary


@dataclass(frozen=True)
class Saved:
    """What storing one snapshot did."""

    snapshot: Snapshot
    is_new: bool  # its raw bodies were not in the archive before
    rows: Mapping[str, int] = field(default_factory=dict)  # rows written to the lake, per table
    summary: Mapping[str, float] = field(default_factory=dict)  # see ei_assets.summary


class DataStore:
    """The raw archive and the lake of one data dir, on one pyarrow filesystem."""

    def __init__(self, filesystem: pafs.FileSystem, data_dir: str) -> None:
        self.filesystem = filesystem
        self.data_dir = data_dir.rstrip("/")
        self.raw = RawArchive(filesystem, self.data_dir)
        self.lake = Lake(filesystem, self.data_dir)

    def save(self, block: LearnBlock, fetched_at: datetime, bodies: Mapping[str, bytes]) -> Saved:
        """Archive one fetched state of a block and flatten it into the lake (once per snapshot)."""
        snapshot = Snapshot(project_id=block.project_id, learn_id=block.learn_id,
                            block_type=block.block_type, fetched_at=fetched_at,
                            endpoints=tuple(bodies), snapshot_id=snapshot_id(bodies))
        is_new = self.raw.put(snapshot, bodies)
        return self._flatten(snapshot, bodies, is_new)

    def reflatten(self, snapshot: Snapshot) -> Saved:
        """Flatten an archived snapshot into the lake again (for rebuilds)."""
        return self._flatten(snapshot, self.raw.read(snapshot), is_new=True, rewrite=True)

    def _flatten(self, snapshot: Snapshot, bodies: Mapping[str, bytes], is_new: bool,
                 rewrite: bool = False) -> Saved:
        small: dict[str, pa.Table] = {}

        def keep_small(batches: Iterator[Batch]) -> Generator[Batch, None, None]:
            for name, rows in batches:
                if name in SUMMARY_TABLES:
                    small[name] = rows
                yield name, rows

        batches = keep_small(flatten(snapshot, bodies))
        rows: dict[str, int] = {}
        if rewrite or not self.lake.has_snapshot(snapshot):
            rows = self.lake.write_snapshot(snapshot, batches)
        else:  # already in the lake: read only the small tables, which come first
            for _ in batches:
                if len(small) == len(SUMMARY_TABLES):
                    break
            batches.close()
        return Saved(snapshot, is_new, rows,
                     snapshot_summary(small["model_metrics"], small["on_device_performance"]))
