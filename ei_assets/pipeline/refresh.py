"""The refresh, in one place and without Dagster: discover -> fetch -> archive -> flatten.

`refresh()` returns a typed RefreshResult: what discovery found, and per learn block its status,
snapshot id, rows written per lake table, its summary numbers and any error. The Dagster assets,
the CLI, the benchmarks and the tests all call it; the Dagster layer only turns the report into
events and metadata.

Each fetch worker takes one block from fetch to lake and then lets its response go, so at most
`max_workers` responses are in memory at a time. Fetching waits on the network, storing on the
CPU: at most one block per core is hashed, archived and flattened at a time, while the other
workers keep downloading. Any failure of one block (HTTP, decoding,
hashing, flattening, storage) is caught and reported for that block, naming it; it never stops or
corrupts the others.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

import pyarrow as pa

from ei_assets.ingest.flatten import DocumentError
from ei_assets.ingest.target_constraints import constraints_tables
from ei_assets.memory import release_unused_memory
from ei_assets.pipeline.background_load import BackgroundLoad
from ei_assets.pipeline.change_detection import (
    BlockOutcome,
    ProjectState,
    may_skip,
    missed_changes,
    next_state,
    read_state,
    supported,
    write_state,
)
from ei_assets.pipeline.saving import DataStore, UnloadableSnapshotError
from ei_assets.schema import TABLES
from ei_assets.settings import ApiKey
from ei_assets.studio import (
    Body,
    Discovery,
    LearnBlock,
    StudioClient,
    StudioError,
    UnknownBlockTypeError,
    metadata_endpoints,
)
from ei_assets.warehouse.warehouse import LoadFailure, LoadResult, Warehouse

log = logging.getLogger(__name__)
T = TypeVar("T")

# unsupported: a block type with no known metadata endpoint (a VLM block, a type newer than this
# code). Not fetched and not an error: the user cannot fix it (contract section 2).
# not_modified: not fetched, because Studio says its project did not change (contract section 6).
Status = Literal["refreshed", "unchanged", "failed", "unsupported", "not_modified"]
STATUSES: tuple[Status, ...] = ("refreshed", "unchanged", "failed", "unsupported", "not_modified")


@dataclass(frozen=True)
class BlockResult:
    """What the refresh did for one learn block."""

    block: LearnBlock
    status: Status
    snapshot_id: str | None = None
    error: str | None = None
    rows: Mapping[str, int] = field(default_factory=dict)  # rows written to the lake, per table
    summary: Mapping[str, float] = field(default_factory=dict)  # see ei_assets.ingest.summary
    fetches: Sequence[Mapping[str, Any]] = ()  # fetch_log rows
    profiling_pending: bool = False  # a model type of its snapshot is still being profiled

    @property
    def changed(self) -> bool:
        return self.status == "refreshed"

    @property
    def snapshot_key(self) -> tuple[int, int, str]:
        """(project_id, learn_id, snapshot_id): the warehouse's key of its snapshot."""
        return (self.block.project_id, self.block.learn_id, self.snapshot_id or "")

    def describe(self) -> str:
        if self.status == "unsupported":
            return f"{self.block.key} ({self.block.block_type})"
        return f"{self.block.key}: {self.error}" if self.error else self.block.key


OnBlock = Callable[[BlockResult, int, int], None]  # (report, blocks done, blocks in all)


@dataclass(frozen=True)
class RefreshResult:
    discovery: Discovery
    blocks: list[BlockResult]
    # projects whose target constraints could not be read: listed, they fail no block
    constraint_errors: list[str] = field(default_factory=list)
    # change detection: projects whose blocks were not fetched (Studio's date for each), projects
    # whose date could not be read (fetched as before), and blocks with a new snapshot although
    # their project's date had not moved (the signal missed a change)
    not_modified: dict[int, datetime] = field(default_factory=dict)
    signal_errors: list[str] = field(default_factory=list)
    signal_missed: list[str] = field(default_factory=list)
    # what was loaded into the warehouse while the blocks were fetched (refresh(warehouse=...))
    loaded: LoadResult = field(default_factory=LoadResult)

    def counts(self) -> dict[Status, int]:
        return {status: sum(b.status == status for b in self.blocks) for status in STATUSES}

    def with_status(self, status: Status) -> list[BlockResult]:
        return [b for b in self.blocks if b.status == status]

    def rows(self) -> dict[str, int]:
        """Rows written to the lake by this refresh, per table."""
        totals: dict[str, int] = {}
        for block in self.blocks:
            for table, n in block.rows.items():
                totals[table] = totals.get(table, 0) + n
        return totals

    @property
    def errors(self) -> list[str]:
        """Discovery errors (a refused key, an unreachable project), as people read them."""
        return [str(error) for error in self.discovery.errors]

    @property
    def all_refreshed(self) -> bool:
        """No block failed (each refreshed, unchanged, not modified or of an unsupported type),
        and every key reached its project."""
        return not self.errors and not self.with_status("failed")


def refresh(
    client: StudioClient,
    keys: Sequence[ApiKey],
    store: DataStore,
    *,
    only: Collection[str] = (),
    projects: Collection[int] = (),
    max_workers: int,
    on_block: OnBlock | None = None,
    verify_every: timedelta = timedelta(0),
    full: bool = False,
    warehouse: Warehouse | None = None,
) -> RefreshResult:
    """Discover every learn block of every key, then refresh them all, or those in `only` (keys
    `<project_id>-<learn_id>`), or those of `projects` (one run per project fans a refresh out
    over many workers). A project Studio says did not change is not fetched (see
    change_detection) unless `full`, `only`, or its last full fetch is `verify_every` old.
    With a `warehouse`, new snapshots are loaded into it while the next blocks are fetched
    (BackgroundLoad); one it refuses fails its block. Writes one discoveries and one fetch_log
    file per call."""
    found = client.discover(keys)
    if projects:
        found = _only_projects(found, set(projects))
    seen_at = datetime.now(UTC)
    # What the fetch does not need (the discoveries log, the target constraints) is written
    # beside it, so the first metadata request waits neither for those requests nor for pandas,
    # which pyarrow imports at its first conversion of Python values.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ei-discovery") as beside:
        constraints = beside.submit(_log_discovery, client, found, store, seen_at, max_workers)
        result = _refresh_found(client, found, store, seen_at, only=only, max_workers=max_workers,
                                on_block=on_block, verify_every=verify_every, full=full,
                                warehouse=warehouse)
    return dataclasses.replace(result, constraint_errors=constraints.result())


def _log_discovery(client: StudioClient, found: Discovery, store: DataStore, seen_at: datetime,
                   max_workers: int) -> list[str]:
    """The discoveries log and every project's target constraints; returns the projects whose
    constraints could not be read, named."""
    if found.blocks:
        store.raw.append_log("discoveries", discoveries_table(found.blocks, seen_at))
    return fetch_target_constraints(client, found, store, seen_at, max_workers)


def _refresh_found(client: StudioClient, found: Discovery, store: DataStore, seen_at: datetime, *,
                   only: Collection[str], max_workers: int, on_block: OnBlock | None,
                   verify_every: timedelta, full: bool, warehouse: Warehouse | None
                   ) -> RefreshResult:
    """The blocks of `found` that changed (or those asked for), fetched and stored."""
    dates, signal_errors = fetch_modification_dates(client, found, max_workers)
    by_project = {p: [b for b in found.blocks if b.project_id == p] for p in found.keys_by_project}
    states = {p: read_state(store.raw, p) for p in by_project}
    skipped = {} if full or only else {
        p: date for p, date in dates.items()
        if date is not None and may_skip(states[p], date, by_project[p], seen_at, verify_every)}
    not_modified = [_not_modified(b, states[b.project_id], seen_at)
                    for b in supported(found.blocks) if b.project_id in skipped]
    skipped_keys = {r.block.key for r in not_modified}  # blocks of unsupported types stay: listed
    blocks = [b for b in found.blocks if b.key not in skipped_keys]
    missing: list[BlockResult] = []
    if only:
        listed = {b.key for b in blocks}
        blocks = [b for b in blocks if b.key in set(only)]
        missing = [_not_listed(key) for key in sorted(set(only) - listed)]
    loaded = LoadResult()
    reports = refresh_blocks(client, blocks, found.keys_by_project, store, max_workers, on_block,
                             logged=not_modified, warehouse=warehouse, loaded=loaded)
    missed = _keep_states(store, by_project, skipped, dates, states, reports, seen_at)
    return RefreshResult(found, sorted([*reports, *not_modified, *missing],
                                       key=lambda r: (r.block.project_id, r.block.learn_id)),
                         [], skipped, signal_errors, missed, loaded)


def fetch_modification_dates(client: StudioClient, found: Discovery, max_workers: int
                             ) -> tuple[dict[int, datetime | None], list[str]]:
    """Studio's last modification date of every reachable project (None: none, or no answer),
    and the projects whose date could not be read, named: those are fetched as before."""
    answers = _each_project(found, max_workers, "last-modification", lambda project_id:
                            client.get_last_modification(found.keys_by_project[project_id], project_id))
    return ({p: None if isinstance(a, str) else a for p, a in answers.items()},
            [f"{a}; its blocks are fetched" for a in answers.values() if isinstance(a, str)])


def _not_modified(block: LearnBlock, state: ProjectState | None, at: datetime) -> BlockResult:
    """A block of a project that did not change: not fetched, its current snapshot kept."""
    assert state is not None  # a project is skipped only with a state that lists its blocks
    sid = state.blocks[block.learn_id]
    row = _fetch_row(block, metadata_endpoints(block.block_type)[0].name, at, ok=True, status=None,
                     attempts=0, size=0, outcome="not_modified")
    row["snapshot_id"], row["changed"] = sid, False
    return BlockResult(block, "not_modified", sid, fetches=[row])


def _keep_states(store: DataStore, by_project: Mapping[int, list[LearnBlock]],
                 skipped: Mapping[int, datetime], dates: Mapping[int, datetime | None],
                 states: Mapping[int, ProjectState | None], reports: Sequence[BlockResult],
                 fetched_at: datetime) -> list[str]:
    """After the fetch: the state of every project whose blocks were all fetched (forgotten if
    one failed); returns the blocks whose change the signal missed."""
    missed: list[str] = []
    by_key = {r.block.key: r for r in reports}
    for project, blocks in by_project.items():
        wanted = supported(blocks)
        if project in skipped or not all(b.key in by_key for b in wanted):
            continue  # not fetched, or fetched in part (`only`): what was known stays
        outcomes = [BlockOutcome(b.learn_id, by_key[b.key].snapshot_id
                                 if by_key[b.key].status != "failed" else None,
                                 by_key[b.key].profiling_pending) for b in wanted]
        missed += [f"{project}-{learn}" for learn in missed_changes(states[project], dates[project],
                                                                     outcomes)]
        write_state(store.raw, project, next_state(dates[project], outcomes, fetched_at))
    return missed


def _only_projects(found: Discovery, projects: set[int]) -> Discovery:
    unreachable = sorted(projects - set(found.keys_by_project))
    if unreachable:
        raise ValueError(f"project(s) {', '.join(map(str, unreachable))} not reachable with any key in "
                         "EI_API_KEY (see the discovery errors); refresh the others without them")
    return Discovery(blocks=[b for b in found.blocks if b.project_id in projects],
                     keys_by_project={p: k for p, k in found.keys_by_project.items() if p in projects},
                     errors=list(found.errors))


def fetch_target_constraints(client: StudioClient, found: Discovery, store: DataStore,
                             fetched_at: datetime, max_workers: int) -> list[str]:
    """Every reachable project's target devices and budgets, one log file per table; returns the
    projects that could not be read, named."""

    def one(project_id: int) -> tuple[pa.Table, pa.Table]:
        body = client.get_target_constraints(found.keys_by_project[project_id], project_id).body
        return constraints_tables(project_id, fetched_at, body)

    answers = _each_project(found, max_workers, "target-constraints", one)
    tables = [a for a in answers.values() if not isinstance(a, str)]
    for index, name in enumerate(("target_constraints", "application_budgets")):
        if tables:
            store.raw.append_log(name, pa.concat_tables([t[index] for t in tables]))
    return [a for a in answers.values() if isinstance(a, str)]


def _each_project(found: Discovery, max_workers: int, endpoint: str, call: Callable[[int], T]
                  ) -> dict[int, T | str]:
    """`call` for every reachable project, concurrently, in project order; a project whose call
    fails gets its error instead, as people read it: one project's problem is its own."""

    def one(project_id: int) -> T | str:
        try:
            return call(project_id)
        except StudioError as exc:  # names the project and endpoint already
            return str(exc)
        except Exception as exc:
            return f"project {project_id}, {endpoint}: {_describe(exc)}"

    projects = sorted(found.keys_by_project)
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=f"ei-{endpoint}") as pool:
        return dict(zip(projects, pool.map(one, projects), strict=True))


def _not_listed(key: str) -> BlockResult:
    project, _, learn = key.partition("-")
    if not (project.isdigit() and learn.isdigit()):
        raise ValueError(f"not a learn block key: {key!r}; expected <project_id>-<learn_id>, e.g. 1-3")
    block = LearnBlock(int(project), "", 0, "", int(learn), "", "", "")
    return BlockResult(block, "failed", error="not listed by discovery: the block is gone from its "
                                              "impulse, or no configured API key reaches its project")


def refresh_blocks(
    client: StudioClient,
    blocks: Iterable[LearnBlock],
    keys_by_project: Mapping[int, ApiKey],
    store: DataStore,
    max_workers: int,
    on_block: OnBlock | None = None,
    logged: Sequence[BlockResult] = (),
    warehouse: Warehouse | None = None,
    loaded: LoadResult | None = None,
) -> list[BlockResult]:
    """Refresh blocks concurrently; writes one fetch_log file for the batch, with the fetches of
    `logged` (blocks not fetched). Reports come back in the order given; `on_block` hears of
    each as it finishes. With a `warehouse`, each new snapshot is loaded while the others are
    fetched (what was loaded is added to `loaded`); a snapshot it refuses fails its block."""
    storing = threading.BoundedSemaphore(os.cpu_count() or 1)
    background = BackgroundLoad(warehouse) if warehouse is not None else None
    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="ei-fetch") as pool:
        futures = [pool.submit(refresh_block, client, keys_by_project[b.project_id], b, store, storing,
                               background) for b in blocks]
        for done, future in enumerate(as_completed(futures), start=1):
            report = future.result()
            if on_block is not None:
                on_block(report, done, len(futures))
        reports = [future.result() for future in futures]
    if background is not None:
        done_loading = background.close()
        if loaded is not None:
            loaded.add(done_loading)
        reports = _refused(reports, done_loading.failed)
    store.raw.append_log("fetch_log", fetch_log_table([*reports, *logged]))
    release_unused_memory()  # the responses are gone: their memory goes back to the system
    return reports



def _refused(reports: list[BlockResult], failures: Sequence[LoadFailure]) -> list[BlockResult]:
    """Blocks whose new snapshot the warehouse refused fail, with its reason in their fetches."""
    by_key = {(f.project_id, f.learn_id, f.snapshot_id): f.describe() for f in failures}
    if not by_key:
        return reports
    out = []
    for report in reports:
        error = by_key.get(report.snapshot_key) if report.snapshot_id is not None else None
        if error is None:
            out.append(report)
            continue
        fetches = [{**row, "error": error} for row in report.fetches]
        out.append(dataclasses.replace(report, status="failed", error=error, fetches=fetches))
    return out


def refresh_block(client: StudioClient, key: ApiKey, block: LearnBlock, store: DataStore,
                  storing: threading.BoundedSemaphore | None = None,
                  background: BackgroundLoad | None = None) -> BlockResult:
    """Fetch, archive and flatten one block (storing, if given, while holding one of its slots),
    and queue a new snapshot's rows for `background` to load. Never raises: whatever goes wrong
    fails this block."""
    try:
        return _refresh_block(client, key, block, store, storing or threading.BoundedSemaphore(),
                              background)
    except Exception as exc:
        log.debug("refreshing %s failed", block.key, exc_info=True)
        return BlockResult(block, "failed", error=f"project {block.project_id}, learn block "
                                                  f"{block.learn_id}: {_describe(exc)}")


def _refresh_block(client: StudioClient, key: ApiKey, block: LearnBlock, store: DataStore,
                   storing: threading.BoundedSemaphore, background: BackgroundLoad | None
                   ) -> BlockResult:
    try:
        endpoints = metadata_endpoints(block.block_type)
    except UnknownBlockTypeError:
        return BlockResult(block, "unsupported")
    fetched_at = datetime.now(UTC)
    bodies: dict[str, Body] = {}
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
        with storing:
            saved = store.save(block, fetched_at, bodies,
                               keep=background is not None and background.keeps_rows)
    except Exception as exc:  # any failure of this block's data is this block's alone
        error = f"project {block.project_id}, learn block {block.learn_id}: {_describe(exc)}"
        log.debug("storing %s failed", block.key, exc_info=True)
        for row in fetches:
            row["error"] = error
        return BlockResult(block, "failed", error=error, fetches=fetches)
    sid = saved.snapshot.snapshot_id
    if background is not None and saved.rows:  # a new snapshot flattened into the lake
        background.add((block.project_id, block.learn_id, sid), saved.tables or None)
    for row in fetches:
        row["snapshot_id"], row["changed"] = sid, saved.is_new
    return BlockResult(block, "refreshed" if saved.is_new else "unchanged", sid, rows=saved.rows,
                       summary=saved.summary, fetches=fetches, profiling_pending=saved.profiling_pending)


def _describe(exc: Exception) -> str:
    """The error as one line; a DocumentError names the JSON path, others their kind."""
    if isinstance(exc, RecursionError):
        return "the response is JSON nested too deeply to read; it was not stored"
    text = str(exc).splitlines()[0] if str(exc) else ""
    if isinstance(exc, DocumentError | StudioError | UnloadableSnapshotError):
        return text
    return f"{type(exc).__name__}: {text}"[:500]


def _fetch_row(
    block: LearnBlock, endpoint: str, fetched_at: datetime, *, ok: bool, status: int | None,
    attempts: int, duration_ms: float | None = None, size: int | None = None, error: str | None = None,
    outcome: str = "fetched",
) -> dict[str, Any]:
    return {
        "fetched_at": fetched_at, "project_id": block.project_id, "learn_id": block.learn_id,
        "endpoint": endpoint, "http_status": status, "ok": ok, "attempts": attempts,
        "duration_ms": duration_ms, "bytes": size, "snapshot_id": None, "changed": None,
        "error": error, "outcome": outcome,
    }


def fetch_log_table(reports: Iterable[BlockResult]) -> pa.Table:
    rows = [row for report in reports for row in report.fetches]
    return pa.Table.from_pylist(rows, schema=TABLES["fetch_log"].arrow_schema)


def discoveries_table(blocks: Iterable[LearnBlock], seen_at: datetime) -> pa.Table:
    schema = TABLES["discoveries"].arrow_schema
    rows = [{"seen_at": seen_at, **{name: getattr(b, name) for name in schema.names[1:]}}
            for b in blocks]
    return pa.Table.from_pylist(rows, schema=schema)
