"""The asset graph, API -> raw -> lake -> warehouse -> comparisons, over the core's refresh.

- studio_refresh: one step calls `ei_assets.refresh.refresh` (discover, fetch with bounded
  concurrency, archive, flatten) and turns its report into events: `learn_blocks` (studio_api),
  `metadata_snapshots` (raw_archive), `lake/<table>` (lake), and for each block a reported
  materialization of `learn_block_metadata`'s partition `<project_id>-<learn_id>` with its numbers
  for the UI's plots. A block that fails gets no materialization and stops nothing.
- warehouse_tables, comparison_views: DuckDB, written under the `ei_warehouse` pool (limit 1)
  so that two runs never write it at once.

Why learn_block_metadata is reported rather than executed: Dagster's single-run backfills give
one shared materialization to every partition of the run and cannot fail one partition alone
(dagster-io/dagster#17836, #21072). Reporting per-block events from one run keeps one run per
refresh, per-block history, and per-block failure.
"""

import time
from collections import Counter
from collections.abc import Callable, Iterator

import dagster as dg

from ei_assets.orchestration.resources import DataDirResource, ReportSink, StudioResource
from ei_assets.progress import progress
from ei_assets.queries import LATEST_DEFAULT_TARGET_COMPARISON
from ei_assets.refresh import STATUSES, BlockReport, RefreshReport, refresh
from ei_assets.report import markdown_table, overview_markdown, write_report
from ei_assets.schema import PUBLIC_VIEWS, SNAPSHOT_TABLES, TABLES, VIEWS, WAREHOUSE_TABLES, Relation
from ei_assets.studio import LearnBlock

PARTITIONS = "learn_blocks"  # the dynamic partitions of learn_block_metadata
learn_block_partitions = dg.DynamicPartitionsDefinition(name=PARTITIONS)

REFRESH_OP = "studio_refresh"
WAREHOUSE_POOL = "ei_warehouse"
RUN_LOG_EVERY_S = 2.0  # a count of blocks done; each block also has its own materialization


def column_schema(relation: Relation, *, lake: bool = False) -> dg.TableSchema:
    """The registry's columns as Dagster shows them: type, nullability and description."""
    columns = relation.columns if lake else relation.all_columns
    return dg.TableSchema(columns=[
        dg.TableColumn(c.name, str(c.type) if lake else c.sql_type, description=c.description,
                       constraints=dg.TableColumnConstraints(nullable=c.nullable))
        for c in columns
    ])


def bullet_list(items: list[str]) -> dg.MetadataValue:
    return dg.MetadataValue.md("\n".join(f"- {item}" for item in items) or "none")


def _say(context: dg.AssetExecutionContext, message: str) -> None:
    context.log.info(message)
    progress.info(message)


def partition_changes(
    instance: dg.DagsterInstance, blocks: list[LearnBlock], reachable_projects: set[int]
) -> tuple[list[str], list[str]]:
    """Partition keys to add, and to remove: only blocks of projects we could read are removed."""
    existing = set(instance.get_dynamic_partitions(PARTITIONS))
    wanted = {block.key for block in blocks}
    add = sorted(wanted - existing)
    remove = sorted(key for key in existing - wanted
                    if int(key.split("-", 1)[0]) in reachable_projects)
    return add, remove


def sync_partitions(instance: dg.DagsterInstance, blocks: list[LearnBlock],
                    reachable_projects: set[int]) -> tuple[list[str], list[str]]:
    """Bring the partitions in line with discovery. Another run may add the same keys at the same
    moment (a schedule tick and a user's run): then the storage refuses a duplicate, and we look
    again and add what is still missing."""
    for attempt in range(1, 4):
        add, remove = partition_changes(instance, blocks, reachable_projects)
        try:
            if add:
                instance.add_dynamic_partitions(PARTITIONS, add)
            for key in remove:
                instance.delete_dynamic_partition(PARTITIONS, key)
            return add, remove
        except Exception as exc:  # the storage's IntegrityError; its class depends on the backend
            if "unique" not in str(exc).lower() or attempt == 3:
                raise
    raise AssertionError("unreachable")


# ---- API -> raw archive -> lake ---------------------------------------------------------------

learn_block_metadata = dg.AssetSpec(
    "learn_block_metadata",
    partitions_def=learn_block_partitions,
    deps=["learn_blocks"],
    group_name="raw_archive",
    description="The metadata of one learn block (partition `<project_id>-<learn_id>`), reported "
                "by studio_refresh each time the block is fetched: accuracy, loss, latency, "
                "RAM and ROM per model type at the default target, and int8 - float32 deltas.",
    kinds={"json"},
)

LEARN_BLOCKS = dg.AssetSpec(
    "learn_blocks", group_name="studio_api", kinds={"python"},
    description="Every learn block of every project reachable with EI_API_KEY "
                "(GET /api/projects, GET /api/{projectId}/impulses).",
)
METADATA_SNAPSHOTS = dg.AssetSpec(
    "metadata_snapshots", deps=[LEARN_BLOCKS], group_name="raw_archive", kinds={"python"},
    description="Fetch the metadata of every learn block (bounded concurrency, retries) and keep "
                "every distinct response in EI_DATA_DIR/raw.",
)
LAKE_SPECS = [
    dg.AssetSpec(["lake", t], deps=[METADATA_SNAPSHOTS], group_name="lake", kinds={"parquet"},
                 description=TABLES[t].description,
                 metadata={"dagster/column_schema": column_schema(TABLES[t], lake=True)})
    for t in SNAPSHOT_TABLES
]


class RefreshConfig(dg.Config):
    blocks: list[str] = []  # partition keys `<project_id>-<learn_id>`; empty: every present block
    projects: list[int] = []  # only these projects (a fanned-out refresh: one run per project)


STUDIO_POOL = "ei_studio_api"  # bounds the refreshes talking to Edge Impulse across all runs


@dg.multi_asset(
    name=REFRESH_OP,
    pool=STUDIO_POOL,
    specs=[LEARN_BLOCKS, METADATA_SNAPSHOTS, *LAKE_SPECS],
    check_specs=[
        dg.AssetCheckSpec("all_keys_reachable", asset=LEARN_BLOCKS.key,
                          description="Every configured API key reached its project and listed "
                                      "its impulses."),
        dg.AssetCheckSpec("all_blocks_refreshed", asset=METADATA_SNAPSHOTS.key,
                          description="Every learn block was fetched and stored; failures are listed."),
    ],
)
def studio_refresh(
    context: dg.AssetExecutionContext, config: RefreshConfig, studio: StudioResource,
    data_dir: DataDirResource, report_sink: dg.ResourceParam[ReportSink],
) -> Iterator[dg.MaterializeResult[None] | dg.AssetMaterialization]:
    """Discover, fetch, archive and flatten (ei_assets.refresh), then report what happened."""
    data = data_dir.open()

    statuses: Counter[str] = Counter()
    log_after = 0.0

    def on_block(block: BlockReport, done: int, total: int) -> None:
        """Every fetched block on the console; in the run log (each event a write to the
        instance's storage) failures and a count at most every RUN_LOG_EVERY_S."""
        nonlocal log_after
        statuses[block.status] += 1
        line = (f"[{done}/{total}] {block.block.key} {block.block.block_type}: {block.status} "
                f"({block.error or f'snapshot {block.snapshot_id}'})")
        if block.status != "unsupported":  # listed once, in the run's summary
            progress.info(line)
        if block.error:
            context.log.warning(line)
        if done == total or time.monotonic() >= log_after:
            context.log.info(f"{done} of {total} learn blocks done: "
                             + ", ".join(f"{statuses[s]} {s}" for s in STATUSES))
            log_after = time.monotonic() + RUN_LOG_EVERY_S

    with studio.client() as client:
        report = refresh(client, studio.api_keys(), data.store, only=config.blocks,
                         projects=config.projects, max_workers=studio.concurrency(),
                         on_block=on_block)
    report_sink.put(report)
    unsupported = [b.describe() for b in report.with_status("unsupported")]
    if unsupported:  # once per run, not per block: nothing the user can fix
        context.log.info(f"{len(unsupported)} learn block(s) of a type with no known metadata "
                         f"endpoint, not fetched (not an error): {', '.join(unsupported)}")
    yield from _discovery_events(context, report)
    yield from _block_events(report)
    yield from _lake_events(report, data.store.lake.table_dir)


def _discovery_events(context: dg.AssetExecutionContext, report: RefreshReport
                      ) -> Iterator[dg.MaterializeResult[None]]:
    found = report.discovery
    for error in report.errors:
        context.log.error(error)
    for error in report.constraint_errors:
        context.log.warning(error)
    if not found.keys_by_project:
        raise dg.Failure("no project could be discovered with the configured EI_API_KEY: "
                         + "; ".join(report.errors))
    add, remove = sync_partitions(context.instance, found.blocks, set(found.keys_by_project))
    _say(context, f"discovered {len(found.blocks)} learn blocks in {len(found.keys_by_project)} "
                  f"projects ({len(add)} new, {len(remove)} gone, {len(report.errors)} errors)")
    listing = "\n".join(
        f"| {b.key} | {b.project_name} | {b.impulse_name} | {b.block_type} | {b.block_title} |"
        for b in found.blocks
    )
    yield dg.MaterializeResult(
        asset_key=LEARN_BLOCKS.key,
        metadata={
            "blocks": len(found.blocks),
            "projects": len(found.keys_by_project),
            "discovery_errors": len(report.errors),
            "errors": bullet_list(report.errors),
            "target_constraint_errors": bullet_list(report.constraint_errors),
            "dagster/row_count": len(found.blocks),
            "preview": dg.MetadataValue.md(
                "| partition | project | impulse | type | title |\n|---|---|---|---|---|\n" + listing),
        },
        check_results=[dg.AssetCheckResult(
            asset_key=LEARN_BLOCKS.key, check_name="all_keys_reachable", passed=not report.errors,
            severity=dg.AssetCheckSeverity.ERROR, metadata={"errors": bullet_list(report.errors)})],
    )


def _block_events(report: RefreshReport) -> Iterator[dg.MaterializeResult[None] | dg.AssetMaterialization]:
    for block in report.blocks:
        if block.snapshot_id is None:
            continue
        yield dg.AssetMaterialization(
            asset_key=learn_block_metadata.key,
            partition=block.block.key,
            metadata={**block.summary, "snapshot_id": block.snapshot_id, "changed": block.changed,
                      "block_type": block.block.block_type},
        )
    failures = [b.describe() for b in report.with_status("failed")]
    unsupported = bullet_list([b.describe() for b in report.with_status("unsupported")])
    yield dg.MaterializeResult(
        asset_key=METADATA_SNAPSHOTS.key,
        metadata={
            **{f"blocks_{status}": n for status, n in report.counts().items()},
            "failures": bullet_list(failures),
            "unsupported": unsupported,
        },
        check_results=[dg.AssetCheckResult(
            asset_key=METADATA_SNAPSHOTS.key, check_name="all_blocks_refreshed",
            passed=not failures,  # a block of an unsupported type is listed, never a failure
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"failed": len(failures), "failures": bullet_list(failures),
                      "unsupported": unsupported},
        )],
    )


def _lake_events(report: RefreshReport, table_dir: Callable[[str], str]
                 ) -> Iterator[dg.MaterializeResult[None]]:
    rows = report.rows()
    for spec in LAKE_SPECS:
        table = spec.key.path[-1]
        yield dg.MaterializeResult(asset_key=spec.key, metadata={
            "rows_added": rows.get(table, 0),
            "dagster/column_schema": column_schema(TABLES[table], lake=True),
            "path": dg.MetadataValue.path(table_dir(table)),
        })


# ---- warehouse --------------------------------------------------------------------------------


def _warehouse_spec(table: str) -> dg.AssetSpec:
    if table in SNAPSHOT_TABLES:
        deps: list[dg.AssetSpec | dg.AssetKey] = [dg.AssetKey(["lake", table])]
    elif table == "learn_blocks":
        deps = [LEARN_BLOCKS]
    else:
        deps = [METADATA_SNAPSHOTS]
    return dg.AssetSpec(["warehouse", table], deps=deps, group_name="warehouse", kinds={"duckdb"},
                        description=TABLES[table].description,
                        metadata={"dagster/column_schema": column_schema(TABLES[table])})


ALL_SNAPSHOTS_LOADED = dg.AssetCheckSpec(
    "all_snapshots_loaded", asset=dg.AssetKey(["warehouse", "snapshots"]),
    description="Every new snapshot in the lake was loaded; one the warehouse refuses is named, "
                "taken out of the lake, and fails its learn block until its response changes.")


@dg.multi_asset(specs=[_warehouse_spec(t) for t in WAREHOUSE_TABLES], pool=WAREHOUSE_POOL,
                check_specs=[ALL_SNAPSHOTS_LOADED])
def warehouse_tables(context: dg.AssetExecutionContext, data_dir: DataDirResource,
                     report_sink: dg.ResourceParam[ReportSink]
                     ) -> Iterator[dg.MaterializeResult[None]]:
    """Load new lake snapshots and run logs into the warehouse, a group of snapshots per
    transaction; a snapshot that cannot be loaded is refused alone."""
    warehouse = data_dir.open().warehouse
    report = warehouse.load()
    report_sink.put_load(report)
    refused = [failure.describe() for failure in report.failed]
    for failure in refused:  # the CLI lists them in its summary
        context.log.error(failure)
    _say(context, f"warehouse: {report.new_snapshots} new snapshots loaded"
                  + (f", {len(refused)} refused" if refused else ""))
    counts = warehouse.row_counts(WAREHOUSE_TABLES)
    for table in WAREHOUSE_TABLES:
        checks = [] if table != "snapshots" else [dg.AssetCheckResult(
            check_name=ALL_SNAPSHOTS_LOADED.name, passed=not refused,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"refused": len(refused), "failures": bullet_list(refused)})]
        yield dg.MaterializeResult(asset_key=["warehouse", table], metadata={
            "dagster/row_count": counts[table],
            "rows_added": report.rows.get(table, 0),
            "dagster/column_schema": column_schema(TABLES[table]),
        }, check_results=checks)


@dg.multi_asset(
    specs=[dg.AssetSpec(["warehouse", v], group_name="comparisons", kinds={"duckdb"},
                        description=VIEWS[v].description,
                        metadata={"dagster/column_schema": column_schema(VIEWS[v])},
                        deps=[["warehouse", t] for t in ("snapshots", "model_metrics",
                                                         "on_device_performance", "predictions")])
           for v in PUBLIC_VIEWS],
    pool=WAREHOUSE_POOL,
)
def comparison_views(data_dir: DataDirResource) -> Iterator[dg.MaterializeResult[None]]:
    """The comparison views (defined with the warehouse schema): row counts and a preview."""
    with data_dir.open().warehouse.reader() as reader:
        counts = reader.row_counts(PUBLIC_VIEWS)
        preview = reader.query(LATEST_DEFAULT_TARGET_COMPARISON).to_pylist()
    for view in PUBLIC_VIEWS:
        metadata: dict[str, dg.MetadataValue | dg.TableSchema | int] = {
            "dagster/row_count": counts[view],
            "dagster/column_schema": column_schema(VIEWS[view]),
        }
        if view == "model_type_comparison":
            metadata["latest_default_target"] = dg.MetadataValue.md(
                markdown_table(preview, "no comparison yet"))
        yield dg.MaterializeResult(asset_key=["warehouse", view], metadata=metadata)


@dg.asset(
    key="report", group_name="report", kinds={"html"},
    deps=[dg.AssetKey(["warehouse", v]) for v in PUBLIC_VIEWS],
    description="The HTML report (EI_DATA_DIR/report/index.html): an overview of every learn block "
                "and its history in charts. Opens offline.",
)
def history_report(data_dir: DataDirResource) -> dg.MaterializeResult[None]:
    """Write the report next to the warehouse; the UI links it and shows its overview table."""
    data = data_dir.open()
    path = data.report_path
    blocks = write_report(data.warehouse, data.store.filesystem, path)
    return dg.MaterializeResult(metadata={
        "path": dg.MetadataValue.path(path),
        "open": dg.MetadataValue.url(f"file://{path}"),
        "learn_blocks": len(blocks),
        "overview": dg.MetadataValue.md(overview_markdown(blocks)),
    })
