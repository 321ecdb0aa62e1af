"""Regenerate the lake and the warehouse from the raw archive alone (after a schema change, say)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from ei_assets.ingest.flatten import DocumentError
from ei_assets.pipeline.saving import DataStore
from ei_assets.storage.files import exists
from ei_assets.warehouse import LoadResult, Warehouse

log = logging.getLogger(__name__)


@dataclass
class RebuildResult:
    snapshots: int = 0
    failed: list[str] = field(default_factory=list)
    load: LoadResult | None = None


def rebuild(
    store: DataStore, warehouse: Warehouse, progress: Callable[[int, int], None] | None = None
) -> RebuildResult:
    """Holds the warehouse's write lock throughout, so no refresh loads a half-built lake."""
    report = RebuildResult()
    with warehouse.connect():  # the lock: other writers wait, then fail clearly
        warehouse.reset()
        if exists(store.filesystem, store.lake.root):
            store.filesystem.delete_dir_contents(store.lake.root)
        store.raw.forget_unloadable()  # this code may load what an older one refused; if not,
        # the load refuses it again
        archived = list(store.raw.snapshots())
        for index, snapshot in enumerate(archived, start=1):
            try:
                store.reflatten(snapshot)
                report.snapshots += 1
            except DocumentError as exc:
                report.failed.append(f"{snapshot.raw_path}: {exc}")
                log.warning("rebuild: %s: %s", snapshot.raw_path, exc)
            if progress is not None:
                progress(index, len(archived))
        report.load = warehouse.load()
        report.failed += [failure.describe() for failure in report.load.failed]
    return report
