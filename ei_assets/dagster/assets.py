"""The asset graph of one instance, API -> raw -> lake -> warehouse -> comparisons, over the core.

- studio_refresh: one step calls `ei_assets.pipeline.refresh.refresh` (discover, fetch with bounded
  concurrency, archive, flatten) and turns its result into events: `learn_blocks` (studio_api),
  `metadata_snapshots` (raw_archive), `lake/<table>` (lake), and for each block a reported
  materialization of `learn_block_metadata`'s partition `<project_id>-<learn_id>` with its numbers
  for the UI's plots. A block that fails gets no materialization and stops nothing.
- warehouse_tables, comparison_views: DuckDB, written under the `ei_warehouse` pool (limit 1)
  so that two runs never write it at once.

Why learn_block_metadata is reported rather than executed: Dagster's single-run backfills give
one shared materialization to every partition of the run and cannot fail one partition alone
(dagster-io/dagster#17836, #21072). Reporting per-block events from one run keeps one run per
refresh, per-block history, and per-block failure.

Everything is built by `build_assets(names)`: the keys, op names, partitions and the resource keys
the steps ask for come from the instance's names (`ei_assets.dagster.names`).
"""


import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dagster as dg

from ei_assets.dagster.names import STUDIO_POOL, WAREHOUSE_POOL, InstanceNames
from ei_assets.dagster.resources import DataDirResource, ResultSink, StudioResource
from ei_assets.pipeline.refresh import STATUSES, BlockResult, RefreshResult, refresh
from ei_assets.progress import progress
from ei_assets.report import markdown_table, overview_markdown, write_report
from ei_assets.schema import PUBLIC_VIEWS, SNAPSHOT_TABLES, TABLES, VIEWS, WAREHOUSE_TABLES, Relation
from ei_assets.studio import LearnBlock
from ei_assets.warehouse.queries import LATEST_DEFAULT_TARGET_COMPARISON

__all__ = ["FULL_TAGS", "Assets", "RefreshConfig", "build_assets", "column_schema", "partition_changes"]

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
    instance: dg.DagsterInstance, partitions: str, blocks: list[LearnBlock], reachable_projects: set[int]
) -> tuple[list[str], list[str]]:
    """Partition keys to add, and to remove: only blocks of projects we could read are removed."""
    existing = set(instance.get_dynamic_partitions(partitions))
    wanted = {block.key for block in blocks}
    add = sorted(wanted - existing)
    remove = sorted(key for key in existing - wanted
                    if int(key.split("-", 1)[0]) in reachable_projects)
    return add, remove


def sync_partitions(instance: dg.DagsterInstance, partitions: str, blocks: list[LearnBlock],
                    reachable_projects: set[int]) -> tuple[list[str], list[str]]:
    """Bring the partitions in line with discovery. Another run may add the same keys at the same
    moment (a schedule tick and a user's run): then the storage refuses a duplicate, and we look
    again and add what is still missing."""
    for attempt in range(1, 4):
        add, remove = partition_changes(instance, partitions, blocks, reachable_projects)
        try:
            if add:
                instance.add_dynamic_partitions(partitions, add)
            for key in remove:
                instance.delete_dynamic_partition(partitions, key)
            return add, remove
        except Exception as exc:  # the storage's IntegrityError; its class depends on the backend
            if "unique" not in str(exc).lower() or attempt == 3:
                raise
    raise AssertionError("unreachable")


# Run tags that, set to "true", fetch every block as the config `full: true` does (contract §6
# names the tag `full`; `ei_assets/full` keeps to the package's own tag prefix).
FULL_TAGS = ("full", "ei_assets/full")


class RefreshConfig(dg.Config):
    """Run config of the refresh step: some blocks or some projects only (default: all); `full`
    fetches every block whatever Studio's change signal says."""

    blocks: list[str] = []  # partition keys `<project_id>-<learn_id>`; empty: every present block
    projects: list[int] = []  # only these projects (a fanned-out refresh: one run per project)
    full: bool = False


@dataclass(frozen=True)
class Assets:
    """The assets of one instance, and what its jobs and sensors need to know of them."""

    names: InstanceNames
    partitions: dg.DynamicPartitionsDefinition
    learn_block_metadata: dg.AssetSpec
    studio_refresh: dg.AssetsDefinition
    warehouse_tables: dg.AssetsDefinition
    comparison_views: dg.AssetsDefinition
    history_report: dg.AssetsDefinition

    @property
    def all(self) -> list[dg.AssetsDefinition | dg.AssetSpec]:
        return [self.studio_refresh, self.learn_block_metadata, self.warehouse_tables,
                self.comparison_views, self.history_report]

    @property
    def refreshed(self) -> list[dg.AssetsDefinition]:
        """What the refresh job materializes (learn_block_metadata is reported by its first step)."""
        return [self.studio_refresh, self.warehouse_tables, self.comparison_views, self.history_report]



def build_assets(names: InstanceNames) -> Assets:
    """Every asset of the instance named `names`."""
    partitions = dg.DynamicPartitionsDefinition(name=names.name("learn_blocks"))
    learn_blocks = dg.AssetSpec(
        names.key("learn_blocks"), group_name="studio_api", kinds={"python"},
        description="Every learn block of every project reachable with the configured API keys "
                    "(GET /api/projects, GET /api/{projectId}/impulses).")
    metadata_snapshots = dg.AssetSpec(
        names.key("metadata_snapshots"), deps=[learn_blocks], group_name="raw_archive", kinds={"python"},
        description="Fetch the metadata of every learn block (bounded concurrency, retries) and keep "
                    "every distinct response in the data dir's raw/.")
    learn_block_metadata = dg.AssetSpec(
        names.key("learn_block_metadata"), partitions_def=partitions, deps=[learn_blocks],
        group_name="raw_archive", kinds={"json"},
        description="The metadata of one learn block (partition `<project_id>-<learn_id>`), reported "
                    "by the refresh each time the block is fetched: accuracy, loss, latency, "
                    "RAM and ROM per model type at the default target, and int8 - float32 deltas.")
    lake_specs = [
        dg.AssetSpec(names.key("lake", t), deps=[metadata_snapshots], group_name="lake",
                     kinds={"parquet"}, description=TABLES[t].description,
                     metadata={"dagster/column_schema": column_schema(TABLES[t], lake=True)})
        for t in SNAPSHOT_TABLES
    ]
    resources = {names.studio, names.data_dir, names.result_sink}

    @dg.multi_asset(
        name=names.refresh_op,
        pool=STUDIO_POOL,
        specs=[learn_blocks, metadata_snapshots, *lake_specs],
        check_specs=[
            dg.AssetCheckSpec("all_keys_reachable", asset=learn_blocks.key,
                              description="Every configured API key reached its project and listed "
                                          "its impulses."),
            dg.AssetCheckSpec("all_blocks_refreshed", asset=metadata_snapshots.key,
                              description="Every learn block was fetched and stored; failures are "
                                          "listed, blocks of unsupported types too (not failures)."),
            dg.AssetCheckSpec("change_signal_reliable", asset=metadata_snapshots.key,
                              description="No block had a new snapshot while Studio's last "
                                          "modification date of its project had not moved (the "
                                          "signal missed a change; a full fetch caught it)."),
        ],
        required_resource_keys=resources,
    )
    def studio_refresh(context: dg.AssetExecutionContext, config: RefreshConfig
                       ) -> Iterator[dg.MaterializeResult[None] | dg.AssetMaterialization]:
        """Discover, fetch, archive and flatten (ei_assets.pipeline.refresh), then report it."""
        studio: StudioResource = getattr(context.resources, names.studio)
        data_dir: DataDirResource = getattr(context.resources, names.data_dir)
        sink: ResultSink = getattr(context.resources, names.result_sink)
        data = data_dir.open()
        full = config.full or any(context.run.tags.get(tag, "").lower() == "true" for tag in FULL_TAGS)
        with studio.client() as client:
            result = refresh(client, studio.api_keys(), data.store, only=config.blocks,
                             projects=config.projects, max_workers=studio.concurrency(),
                             on_block=_block_logger(context), verify_every=studio.verify_interval(),
                             full=full, warehouse=data.warehouse)
        sink.put(result)
        for project, date in result.not_modified.items():
            blocks = sum(b.block.project_id == project for b in result.with_status("not_modified"))
            _say(context, f"project {project}: not modified since {date:%Y-%m-%d %H:%M:%S} UTC; "
                          f"{blocks} learn blocks not fetched")
        for problem in result.signal_errors:
            context.log.warning(problem)
        if result.signal_missed:
            context.log.warning("a new snapshot although Studio's date of its project had not moved "
                                f"(the change signal missed it): {', '.join(result.signal_missed)}")
        unsupported = [b.describe() for b in result.with_status("unsupported")]
        if unsupported:  # once per run, not per block: nothing the user can fix
            context.log.info(f"{len(unsupported)} learn block(s) of a type with no known metadata "
                             f"endpoint, not fetched (not an error): {', '.join(unsupported)}")
        yield from _discovery_events(context, result, learn_blocks.key, partitions.name or "")
        yield from _block_events(result, learn_block_metadata.key, metadata_snapshots.key)
        yield from _lake_events(result, lake_specs, data.store.lake.table_dir)

    all_snapshots_loaded = dg.AssetCheckSpec(
        "all_snapshots_loaded", asset=names.key("warehouse", "snapshots"),
        description="Every new snapshot the warehouse step found in the lake was loaded; one the "
                    "warehouse refuses is named, taken out of the lake, and fails its learn block "
                    "until its response changes (one refused while the refresh step loads fails "
                    "its block in all_blocks_refreshed).")

    def warehouse_spec(table: str) -> dg.AssetSpec:
        deps: list[dg.AssetSpec | dg.AssetKey]
        if table in SNAPSHOT_TABLES:
            deps = [names.key("lake", table)]
        else:
            deps = [learn_blocks if table == "learn_blocks" else metadata_snapshots]
        return dg.AssetSpec(names.key("warehouse", table), deps=deps, group_name="warehouse",
                            kinds={"duckdb"}, description=TABLES[table].description,
                            metadata={"dagster/column_schema": column_schema(TABLES[table])})

    @dg.multi_asset(name=names.name("warehouse_tables"), specs=[warehouse_spec(t) for t in WAREHOUSE_TABLES],
                    pool=WAREHOUSE_POOL, check_specs=[all_snapshots_loaded],
                    required_resource_keys={names.data_dir, names.result_sink})
    def warehouse_tables(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult[None]]:
        """Load new lake snapshots and run logs into the warehouse, a group of snapshots per
        transaction; a snapshot that cannot be loaded is refused alone."""
        data_dir: DataDirResource = getattr(context.resources, names.data_dir)
        warehouse = data_dir.open().warehouse
        loaded = warehouse.load()
        getattr(context.resources, names.result_sink).put_load(loaded)
        refused = [failure.describe() for failure in loaded.failed]
        for failure in refused:  # the CLI lists them in its summary
            context.log.error(failure)
        during, rows_during = _loaded_by_refresh(context, metadata_snapshots.key)
        _say(context, f"warehouse: {during + loaded.new_snapshots} new snapshots loaded"
                      + (f" ({during} while fetching)" if during else "")
                      + (f", {len(refused)} refused" if refused else ""))
        counts = warehouse.row_counts(WAREHOUSE_TABLES)
        for table in WAREHOUSE_TABLES:
            checks = [] if table != "snapshots" else [dg.AssetCheckResult(
                check_name=all_snapshots_loaded.name, passed=not refused,
                severity=dg.AssetCheckSeverity.ERROR,
                metadata={"refused": len(refused), "failures": bullet_list(refused)})]
            yield dg.MaterializeResult(asset_key=names.key("warehouse", table), metadata={
                "dagster/row_count": counts[table],
                "rows_added": loaded.rows.get(table, 0) + rows_during.get(table, 0),
                "dagster/column_schema": column_schema(TABLES[table]),
            }, check_results=checks)

    @dg.multi_asset(
        name=names.name("comparison_views"),
        specs=[dg.AssetSpec(names.key("warehouse", v), group_name="comparisons", kinds={"duckdb"},
                            description=VIEWS[v].description,
                            metadata={"dagster/column_schema": column_schema(VIEWS[v])},
                            deps=[names.key("warehouse", t) for t in ("snapshots", "model_metrics",
                                                                       "on_device_performance",
                                                                       "predictions")])
               for v in PUBLIC_VIEWS],
        pool=WAREHOUSE_POOL,
        required_resource_keys={names.data_dir},
    )
    def comparison_views(context: dg.AssetExecutionContext) -> Iterator[dg.MaterializeResult[None]]:
        """The comparison views (defined with the warehouse schema): row counts and a preview."""
        data_dir: DataDirResource = getattr(context.resources, names.data_dir)
        with data_dir.open().warehouse.reader() as reader:
            counts = reader.row_counts(PUBLIC_VIEWS)
            preview = reader.query(LATEST_DEFAULT_TARGET_COMPARISON).to_pylist()
        for view in PUBLIC_VIEWS:
            metadata: dict[str, Any] = {
                "dagster/row_count": counts[view],
                "dagster/column_schema": column_schema(VIEWS[view]),
            }
            if view == "model_type_comparison":
                metadata["latest_default_target"] = dg.MetadataValue.md(
                    markdown_table(preview, "no comparison yet"))
            yield dg.MaterializeResult(asset_key=names.key("warehouse", view), metadata=metadata)

    @dg.asset(
        key=names.key("report"), group_name="report", kinds={"html"},
        deps=[names.key("warehouse", v) for v in PUBLIC_VIEWS],
        required_resource_keys={names.data_dir},
        description="The HTML report (<data dir>/report/index.html): an overview of every learn "
                    "block and its history in charts. Opens offline.",
    )
    def history_report(context: dg.AssetExecutionContext) -> dg.MaterializeResult[None]:
        """Write the report next to the warehouse; the UI links it and shows its overview table."""
        data_dir: DataDirResource = getattr(context.resources, names.data_dir)
        data = data_dir.open()
        path = data.report_path
        blocks = write_report(data.warehouse, data.store.filesystem, path)
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(path),
            "open": dg.MetadataValue.url(f"file://{path}"),
            "learn_blocks": len(blocks),
            "overview": dg.MetadataValue.md(overview_markdown(blocks)),
        })

    return Assets(names, partitions, learn_block_metadata, studio_refresh, warehouse_tables,
                  comparison_views, history_report)


# metadata of metadata_snapshots: what the refresh step loaded into the warehouse as it fetched,
# read back by the warehouse step of the same run (from the run's events: any executor)
LOADED_SNAPSHOTS, LOADED_ROWS = "warehouse_snapshots_loaded", "warehouse_rows_loaded"


def _loaded_by_refresh(context: dg.AssetExecutionContext, metadata_snapshots: dg.AssetKey
                       ) -> tuple[int, dict[str, int]]:
    """Snapshots and rows per table the refresh step of this run loaded while it fetched."""
    snapshots, rows = 0, {}
    for entry in context.instance.all_logs(context.run_id,
                                           of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
        event = entry.asset_materialization
        if event is None or event.asset_key != metadata_snapshots:
            continue
        values = {name: value.value for name, value in event.metadata.items()}
        snapshots = int(values.get(LOADED_SNAPSHOTS) or 0)
        rows = {str(t): int(n) for t, n in dict(values.get(LOADED_ROWS) or {}).items()}
    return snapshots, rows


def _block_logger(context: dg.AssetExecutionContext) -> Callable[[BlockResult, int, int], None]:
    """Every fetched block on the console; in the run log (each event a write to the instance's
    storage) failures and a count at most every RUN_LOG_EVERY_S."""
    statuses: Counter[str] = Counter()
    log_after = 0.0

    def on_block(block: BlockResult, done: int, total: int) -> None:
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

    return on_block


def _discovery_events(context: dg.AssetExecutionContext, result: RefreshResult,
                      learn_blocks: dg.AssetKey, partitions: str
                      ) -> Iterator[dg.MaterializeResult[None]]:
    found = result.discovery
    for error in result.errors:
        context.log.error(error)
    for error in result.constraint_errors:
        context.log.warning(error)
    if not found.keys_by_project:
        raise dg.Failure("no project could be discovered with the configured API keys: "
                         + "; ".join(result.errors))
    add, remove = sync_partitions(context.instance, partitions, found.blocks, set(found.keys_by_project))
    # new and gone to the instance's partitions: an ephemeral instance (a refresh without
    # DAGSTER_HOME) starts with none, so there every block would be called new
    changes = "" if context.instance.is_ephemeral else f"{len(add)} new, {len(remove)} gone, "
    _say(context, f"discovered {len(found.blocks)} learn blocks in {len(found.keys_by_project)} "
                  f"projects ({changes}{len(result.errors)} errors)")
    listing = "\n".join(
        f"| {b.key} | {b.project_name} | {b.impulse_name} | {b.block_type} | {b.block_title} |"
        for b in found.blocks
    )
    yield dg.MaterializeResult(
        asset_key=learn_blocks,
        metadata={
            "blocks": len(found.blocks),
            "projects": len(found.keys_by_project),
            "discovery_errors": len(result.errors),
            "errors": bullet_list(result.errors),
            "target_constraint_errors": bullet_list(result.constraint_errors),
            "dagster/row_count": len(found.blocks),
            "preview": dg.MetadataValue.md(
                "| partition | project | impulse | type | title |\n|---|---|---|---|---|\n" + listing),
        },
        check_results=[dg.AssetCheckResult(
            asset_key=learn_blocks, check_name="all_keys_reachable", passed=not result.errors,
            severity=dg.AssetCheckSeverity.ERROR, metadata={"errors": bullet_list(result.errors)})],
    )


def _block_events(result: RefreshResult, learn_block_metadata: dg.AssetKey,
                  metadata_snapshots: dg.AssetKey
                  ) -> Iterator[dg.MaterializeResult[None] | dg.AssetMaterialization]:
    for block in result.blocks:
        if block.snapshot_id is None or block.status == "not_modified":  # nothing new to show
            continue
        yield dg.AssetMaterialization(
            asset_key=learn_block_metadata,
            partition=block.block.key,
            metadata={**block.summary, "snapshot_id": block.snapshot_id, "changed": block.changed,
                      "block_type": block.block.block_type},
        )
    failures = [b.describe() for b in result.with_status("failed")]
    unsupported = bullet_list([b.describe() for b in result.with_status("unsupported")])
    yield dg.MaterializeResult(
        asset_key=metadata_snapshots,
        metadata={
            **{f"blocks_{status}": n for status, n in result.counts().items()},
            LOADED_SNAPSHOTS: result.loaded.new_snapshots,
            LOADED_ROWS: dg.MetadataValue.json(result.loaded.rows),
            "failures": bullet_list(failures),
            "unsupported": unsupported,
        },
        check_results=[dg.AssetCheckResult(
            asset_key=metadata_snapshots, check_name="all_blocks_refreshed",
            passed=not failures,  # a block of an unsupported type is listed, never a failure
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"failed": len(failures), "failures": bullet_list(failures),
                      "unsupported": unsupported},
        ), dg.AssetCheckResult(
            asset_key=metadata_snapshots, check_name="change_signal_reliable",
            passed=not result.signal_missed, severity=dg.AssetCheckSeverity.WARN,
            metadata={"missed": len(result.signal_missed), "blocks": bullet_list(result.signal_missed),
                      "not_modified_projects": len(result.not_modified),
                      "signal_errors": bullet_list(result.signal_errors)},
        )],
    )


def _lake_events(result: RefreshResult, lake_specs: list[dg.AssetSpec], table_dir: Callable[[str], str]
                 ) -> Iterator[dg.MaterializeResult[None]]:
    rows = result.rows()
    for spec in lake_specs:
        table = spec.key.path[-1]
        yield dg.MaterializeResult(asset_key=spec.key, metadata={
            "rows_added": rows.get(table, 0),
            "dagster/column_schema": column_schema(TABLES[table], lake=True),
            "path": dg.MetadataValue.path(table_dir(table)),
        })
