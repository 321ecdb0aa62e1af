"""Loading the warehouse while a refresh fetches: what a refresh stored goes in, a group at a time.

A first refresh is work of two kinds that used to run one after the other: the fetch (network,
then hashing, archiving and flattening) and the warehouse load (DuckDB reading the lake's new
files). `BackgroundLoad` runs the second beside the first: every new snapshot the refresh
commits to the lake is queued, and one thread (one writer: the embedded file takes one at a
time) loads what is queued whenever a group's worth is ready, through `Warehouse.loader`,
with the same transactions of whole snapshots and the same isolation of a snapshot that fails
alone. On object storage a snapshot is queued with the rows it wrote, loaded as they are:
reading its dozen small files back costs more requests than the rest of its load, so a fetch
worker that finds a group's worth queued waits for room (for ROOM_WAIT_S at most). On a local
disk (and past that wait) it is queued by key alone and its files are read back. A DuckLake
connection is opened once for all the groups.
`close()` loads the rest and says what was loaded and refused.

It only ever saves time: any error that is not one snapshot's data (the warehouse busy with
another process, a lost connection, a conflict that keeps coming back) stops it, with a warning,
and the warehouse step of the run loads whatever it left, as it always did.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

import pyarrow as pa

from ei_assets.progress import progress
from ei_assets.storage.files import is_local
from ei_assets.warehouse.warehouse import LoadResult, LoadSnapshots, Warehouse

__all__ = ["GROUP_BYTES", "GROUP_SNAPSHOTS", "ROOM_WAIT_S", "BackgroundLoad"]

log = logging.getLogger(__name__)

# A group is loaded once this many bytes of rows or this many snapshots are queued (or the fetch
# is over): each load has a fixed cost (a statement per table, a commit), so single snapshots
# would cost more in all than the load they overlap. When GROUP_BYTES of rows wait already (the
# load is busy, or waits for another process's), a fetch worker waits for room, for at most
# ROOM_WAIT_S: reading a snapshot back from object storage costs far more than the wait. Past
# that, its snapshot is queued by key and read back, so memory stays bounded and a fetch never
# waits long for another process.
GROUP_BYTES = 32 << 20
GROUP_SNAPSHOTS = 64
ROOM_WAIT_S = 30.0

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
        self._full = False  # a fetch worker waits for room in the queue
        self._closing = False
        self._stopped: str | None = None  # why it gave up, if it did
        lock = threading.Lock()
        self._ready = threading.Condition(lock)  # a group is ready, or the fetch is over
        self._room = threading.Condition(lock)  # the loader took the queue, or stopped
        self._thread = threading.Thread(target=self._run, name="ei-load", daemon=True)
        self._thread.start()

    def add(self, key: Key, tables: Mapping[str, pa.Table] | None) -> None:
        """Queue a snapshot committed in the lake, with its rows (kept while they fit) or None."""
        size = sum(rows.nbytes for rows in (tables or {}).values())
        deadline = time.monotonic() + ROOM_WAIT_S
        with self._ready:
            # while a group's worth is queued: have it loaded, and wait for room (others may
            # take the room first: then it is full again, and loaded again)
            while tables is not None and size <= GROUP_BYTES and self._stopped is None \
                    and self._queued_bytes + size > GROUP_BYTES \
                    and (left := deadline - time.monotonic()) > 0:
                self._full = True
                self._ready.notify()
                self._room.wait(left)
            if self._stopped is not None:
                return
            keep = tables is not None and self._queued_bytes + size <= GROUP_BYTES
            self._queued.append((key, tables if keep else None))
            self._queued_bytes += size if keep else 0
            # a group is ready, or the first snapshot is (the loader connects then: see _run)
            if self._queued_bytes >= GROUP_BYTES or len(self._queued) >= GROUP_SNAPSHOTS \
                    or len(self._queued) == 1:
                self._ready.notify()

    def close(self) -> LoadResult:
        """Load what is still queued, stop the thread, and return what every load did."""
        with self._ready:
            self._closing = True
            self._ready.notify()
        self._thread.join()
        return self.result

    def _run(self) -> None:
        with self._ready:  # nothing new (an unchanged refresh): no connection at all
            self._ready.wait_for(lambda: self._closing or bool(self._queued))
            if not self._queued:
                return
        with self.warehouse.loader() as load:  # one DuckLake connection for every group
            try:
                # an empty load first: the connection and the schema (all of it, on a new
                # warehouse) are put in place while the next blocks download, not after
                load([], 1)
            except Exception as exc:
                self._stop(exc)
                return
            self._load_groups(load)

    def _load_groups(self, load: Callable[[LoadSnapshots, int | None], LoadResult]) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._closing or self._full
                                     or self._queued_bytes >= GROUP_BYTES
                                     or len(self._queued) >= GROUP_SNAPSHOTS)
                group, self._queued, self._queued_bytes = self._queued, [], 0
                closing, self._full = self._closing, False
                self._room.notify_all()
            if group:
                try:
                    # No storing slot is taken: a load may wait for its turn (another process
                    # loading), and the fetch goes on meanwhile, until the queue is full.
                    self.result.add(load(group, None if closing else 1))
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
            self._room.notify_all()
        log.debug("loading during the fetch stopped", exc_info=True)
        progress.info(f"warehouse: loading during the fetch stopped ({reason}); the warehouse step "
                      "loads the rest")
