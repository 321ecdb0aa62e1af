"""Fetch -> raw archive -> lake, for many learn blocks at once (pure Python, no Dagster).

Each worker takes one block from fetch to lake and then lets its response go. At most
`max_workers` responses are in memory at a time, one per worker. A block that fails is reported
in its BlockResult and never stops or corrupts the others.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import pyarrow as pa
import pyarrow.fs as pafs

from ei_assets.flatten import SnapshotSource
from ei_assets.lake import Lake
from ei_assets.raw_archive import ArchivedSnapshot, RawArchive
from ei_assets.schema import TABLES
from ei_assets.settings import ApiKey
from ei_assets.snapshot import snapshot_id
from ei_assets.studio import (
    LearnBlock,
    StudioClient,
    StudioError,
    UnknownBlockTypeError,
    metadata_endpoints,
)

log = logging.getLogger(__name__)

Status = Literal["refreshed", "unchanged", "failed", "skipped"]


@dataclass
class BlockResult:
    block: LearnBlock
    status: Status
    snapshot_id: str | None = None
    error: str | None = None
    rows: dict[str, int] = field(default_factory=dict)
    fetches: list[dict[str, Any]] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return self.status == "refreshed"


class DataStore:
    """The raw archive and the lake of one data dir."""

    def __init__(self, filesystem: pafs.FileSystem, data_dir: str) -> None:
        self.filesystem = filesystem
        self.data_dir = data_dir.rstrip("/")
        self.raw = RawArchive(filesystem, self.data_dir)
        self.lake = Lake(filesystem, self.data_dir)

    def store(
        self, block: LearnBlock, fetched_at: datetime, bodies: dict[str, bytes]
    ) -> tuple[str, bool, dict[str, int]]:
        """Archive and flatten one fetched snapshot. Returns (snapshot id, is new, rows written)."""
        sid = snapshot_id(bodies)
        is_new = self.raw.put(block.project_id, block.learn_id, sid, block.block_type, fetched_at, bodies)
        rows: dict[str, int] = {}
        if not self.lake.has_snapshot(block.project_id, block.learn_id, sid):
            archived = ArchivedSnapshot(block.project_id, block.learn_id, sid, block.block_type,
                                        fetched_at, tuple(bodies),
                                        self.raw.relative_dir(block.project_id, block.learn_id, sid))
            rows = self.flatten_into_lake(archived, bodies)
        return sid, is_new, rows

    def restore(self, snapshot: ArchivedSnapshot) -> dict[str, int]:
        """Flatten an archived snapshot into the lake again (for rebuilds)."""
        return self.flatten_into_lake(snapshot, self.raw.read(snapshot))

    def flatten_into_lake(self, snapshot: ArchivedSnapshot, bodies: dict[str, bytes]) -> dict[str, int]:
        return self.lake.write_snapshot(SnapshotSource(
            snapshot_id=snapshot.snapshot_id,
            project_id=snapshot.project_id,
            learn_id=snapshot.learn_id,
            block_type=snapshot.block_type,
            fetched_at=snapshot.fetched_at,
            raw_path=snapshot.path,
            bodies=bodies,
        ))


def refresh_block(client: StudioClient, key: ApiKey, block: LearnBlock, store: DataStore) -> BlockResult:
    try:
        endpoints = metadata_endpoints(block.block_type)
    except UnknownBlockTypeError as exc:
        return BlockResult(block, "skipped", error=str(exc))
    fetched_at = datetime.now(UTC)
    bodies: dict[str, bytes] = {}
    fetches: list[dict[str, Any]] = []
    for endpoint in endpoints:
        try:
            response = client.fetch_endpoint(key, block, endpoint)
        except StudioError as exc:
            fetches.append(_fetch_row(block, endpoint.name, fetched_at, ok=False, status=exc.status,
                                      attempts=exc.attempts, error=str(exc)))
            return BlockResult(block, "failed", error=str(exc), fetches=fetches)
        bodies[endpoint.name] = response.body
        fetches.append(_fetch_row(block, endpoint.name, response.fetched_at, ok=True,
                                  status=response.status, attempts=response.attempts,
                                  duration_ms=response.duration_ms, size=len(response.body)))
    try:
        sid, is_new, rows = store.store(block, fetched_at, bodies)
    except (ValueError, OSError, pa.ArrowException) as exc:  # DocumentError is a ValueError
        error = f"project {block.project_id}, learn block {block.learn_id}: {exc}"
        for row in fetches:
            row["error"] = error
        return BlockResult(block, "failed", error=error, fetches=fetches)
    for row in fetches:
        row["snapshot_id"], row["changed"] = sid, is_new
    return BlockResult(block, "refreshed" if is_new else "unchanged", sid, rows=rows, fetches=fetches)


def refresh_blocks(
    client: StudioClient,
    blocks: Iterable[LearnBlock],
    keys_by_project: dict[int, ApiKey],
    store: DataStore,
    max_workers: int,
    on_result: Callable[[BlockResult], None] | None = None,
) -> list[BlockResult]:
    """Refresh blocks concurrently; writes one fetch_log file for the whole batch."""
    results: list[BlockResult] = []
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ei-fetch") as pool:
        futures = [
            pool.submit(refresh_block, client, keys_by_project[block.project_id], block, store)
            for block in blocks
        ]
        for future in as_completed(futures):
            result = future.result()
            results.append(result)
            if on_result is not None:
                on_result(result)
    store.raw.append_log("fetch_log", fetch_log_table(results))
    results.sort(key=lambda r: (r.block.project_id, r.block.learn_id))
    return results


def _fetch_row(
    block: LearnBlock, endpoint: str, fetched_at: datetime, *, ok: bool, status: int | None,
    attempts: int, duration_ms: float | None = None, size: int | None = None, error: str | None = None,
) -> dict[str, Any]:
    return {
        "fetched_at": fetched_at, "project_id": block.project_id, "learn_id": block.learn_id,
        "endpoint": endpoint, "http_status": status, "ok": ok, "attempts": attempts,
        "duration_ms": duration_ms, "bytes": size, "snapshot_id": None, "changed": None,
        "error": error,
    }


def fetch_log_table(results: Iterable[BlockResult]) -> pa.Table:
    rows = [row for result in results for row in result.fetches]
    return pa.Table.from_pylist(rows, schema=TABLES["fetch_log"].schema)


def discoveries_table(blocks: Iterable[LearnBlock], seen_at: datetime) -> pa.Table:
    rows = [
        {"seen_at": seen_at, "project_id": b.project_id, "project_name": b.project_name,
         "impulse_id": b.impulse_id, "impulse_name": b.impulse_name, "learn_id": b.learn_id,
         "block_type": b.block_type, "block_name": b.block_name, "block_title": b.block_title}
        for b in blocks
    ]
    return pa.Table.from_pylist(rows, schema=TABLES["discoveries"].schema)
