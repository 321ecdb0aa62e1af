"""Loading the warehouse while a refresh fetches: what a refresh stored goes in, a group at a time.

A first refresh is work of two kinds that used to run one after the other: the fetch (network,
then hashing, archiving and flattening) and the warehouse load (DuckDB reading the lake's new
files). `BackgroundLoad` runs the second beside the first: every new snapshot the refresh
commits to the lake is queued, and one thread (one writer: the embedded file takes one at a
time) loads what is queued whenever a group's worth is ready, through `Warehouse.load_tables`,
with the same transactions of whole snapshots and the same isolation of a snapshot that fails
alone. On object storage a snapshot is queued with the rows it wrote, loaded as they are:
reading its dozen small files back costs more requests than the rest of its load. On a local
disk (and past a group's worth of rows) it is queued by key alone and its files are read back.
`close()` loads the rest and says what was loaded and refused.

It only ever saves time: any error that is not one snapshot's data (the warehouse busy with
another process, a lost connection, a conflict that keeps coming back) stops it, with a warning,
and the warehouse step of the run loads whatever it left, as it always did.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping

import pyarrow as pa

from ei_assets.progress import progress
from ei_assets.storage.files import is_local
from ei_assets.warehouse.warehouse import LoadResult, Warehouse

__all__ = ["GROUP_BYTES", "GROUP_SNAPSHOTS", "BackgroundLoad"]

log = logging.getLogger(__name__)

# A group is loaded once this many bytes of rows or this many snapshots are queued (or the fetch
# is over): each load has a fixed cost (a connection, the schema check, a statement per table),
# so single snapshots would cost more in all than the load they overlap. Rows beyond GROUP_BYTES
# not loaded yet (the load waits for another process's, say) are not kept: those snapshots are
# queued by key and read back from the lake, so memory stays bounded and the fetch never waits.
GROUP_BYTES = 16 << 20
GROUP_SNAPSHOTS = 32

Key = tuple[int, int, str]


class BackgroundLoad:
    """One thread loading the snapshots queued by `add` into `warehouse`; `close` finishes.

    While the fetch goes on, a load runs on one DuckDB thread, beside the fetch's hashing and
    flattening; the last group, after the fetch, on every core.
    """

    def __init__(self, warehouse: Warehouse) -> None:
        self.warehouse = warehouse
        # rows are worth keeping where reading them back costs requests: not on a local disk,
        # where they are in the page cache and holding them would only add to the peak
        self.keeps_rows = not is_local(warehouse.lake.filesystem)
        self.result = LoadResult()
        self._queued: list[tuple[Key, Mapping[str, pa.Table] | None]] = []
        self._queued_bytes = 0
        self._closing = False
        self._stopped: str | None = None  # why it gave up, if it did
        self._ready = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="ei-load", daemon=True)
        self._thread.start()

    def add(self, key: Key, tables: Mapping[str, pa.Table] | None) -> None:
        """Queue a snapshot committed in the lake, with its rows (kept while they fit) or None."""
        size = sum(rows.nbytes for rows in (tables or {}).values())
        with self._ready:
            if self._stopped is not None:
                return
            keep = tables is not None and self._queued_bytes + size <= GROUP_BYTES
            self._queued.append((key, tables if keep else None))
            self._queued_bytes += size if keep else 0
            if self._queued_bytes >= GROUP_BYTES or len(self._queued) >= GROUP_SNAPSHOTS:
                self._ready.notify()

    def close(self) -> LoadResult:
        """Load what is still queued, stop the thread, and return what every load did."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join()
        return self.result

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._closing or self._queued_bytes >= GROUP_BYTES
                                     or len(self._queued) >= GROUP_SNAPSHOTS)
                group, self._queued, self._queued_bytes = self._queued, [], 0
                closing = self._closing
            if group:
                try:
                    # No storing slot is taken: a load may wait for its turn (another process
                    # loading), and the fetch must not wait with it.
                    self.result.add(self.warehouse.load_tables(group, threads=None if closing else 1))
                except Exception as exc:  # not one snapshot's data: the warehouse step loads it
                    self._stop(exc)
                    return
            if closing:
                return

    def _stop(self, exc: Exception) -> None:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        with self._ready:
            self._stopped = reason
            self._queued, self._queued_bytes = [], 0
        log.debug("loading during the fetch stopped", exc_info=True)
        progress.info(f"warehouse: loading during the fetch stopped ({reason}); the warehouse step "
                      "loads the rest")
