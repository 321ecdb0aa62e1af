"""The asset graph, API -> raw -> lake -> warehouse -> comparisons.

- learn_blocks (studio_api): discovery over every configured key; keeps the dynamic partitions of
  learn_block_metadata in sync.
- metadata_snapshots (raw_archive): one run fetches every block with the client's bounded
  concurrency, archives each distinct response and flattens it into the lake. For each block it
  reports a materialization of learn_block_metadata's partition `<project_id>-<learn_id>` with
  numeric metadata for the UI's plots. A block that fails gets no materialization and stops nothing.
- lake/<table> (lake): the Parquet tables, with row counts and column schemas.
- warehouse/<table> and warehouse/<view> (warehouse, comparisons): DuckDB, written under the
  `ei_warehouse` pool (limit 1) so that two runs never write it at once.

Why learn_block_metadata is reported rather than executed: Dagster's single-run backfills give
one shared materialization to every partition of the run and cannot fail one partition alone
(dagster-io/dagster#17836, #21072). Reporting per-block events from one run keeps one run per
refresh, per-block history, and per-block failure.
"""


import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import dagster as dg
import pyarrow as pa
from dagster import AssetExecutionContext

from ei_assets.datadir import DataDir
from ei_assets.ingest import BlockResult, discoveries_table, refresh_blocks
from ei_assets.orchestration.resources import DataDirResource, StudioResource
from ei_assets.schema import SNAPSHOT_TABLES, TABLES
from ei_assets.settings import ApiKey
from ei_assets.studio import LearnBlock, StudioClient, StudioError
from ei_assets.summary import snapshot_summary
from ei_assets.warehouse import VIEWS

# The CLI shows these lines as progress; in the UI they appear through context.log.
progress = logging.getLogger("ei_assets.progress")

learn_block_partitions = dg.DynamicPartitionsDefinition(name="learn_blocks")

WAREHOUSE_POOL = "ei_warehouse"
WAREHOUSE_TABLES = (*SNAPSHOT_TABLES, "fetch_log", "learn_blocks")
COMPARISON_VIEWS = tuple(v for v in VIEWS if v != "prediction_agreement")  # latest_snapshots too


def table_schema(schema: pa.Schema) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def bullet_list(items: list[str]) -> dg.MetadataValue:
    """Markdown for people in the UI; machines read the `*_list` JSON beside it."""
    return dg.MetadataValue.md("\n".join(f"- {item}" for item in items) or "none")


def _say(context: AssetExecutionContext, message: str) -> None:
    context.log.info(message)
    progress.info(message)


# ---- API ------------------------------------------------------------------------------------

learn_block_metadata = dg.AssetSpec(
    "learn_block_metadata",
    partitions_def=learn_block_partitions,
    deps=["learn_blocks"],
    group_name="raw_archive",
    description="The metadata of one learn block (partition `<project_id>-<learn_id>`), reported "
                "by metadata_snapshots each time the block is fetched: accuracy, loss, latency, "
                "RAM and ROM per model type at the default target, and int8 - float32 deltas.",
    kinds={"json"},
)


def partition_changes(
    instance: dg.DagsterInstance, blocks: list[LearnBlock], reachable_projects: set[int]
) -> tuple[list[str], list[str]]:
    """Partition keys to add, and to remove: only blocks of projects we could read are removed."""
    existing = set(instance.get_dynamic_partitions(learn_block_partitions.name))
    wanted = {block.key for block in blocks}
    add = sorted(wanted - existing)
    remove = sorted(key for key in existing - wanted
                    if int(key.split("-", 1)[0]) in reachable_projects)
    return add, remove


@dg.asset(
    group_name="studio_api",
    kinds={"python"},
    description="Every learn block of every project reachable with EI_API_KEY "
                "(GET /api/projects, GET /api/{projectId}/impulses).",
    check_specs=[dg.AssetCheckSpec(
        "all_keys_reachable", asset="learn_blocks",
        description="Every configured API key reached its project and listed its impulses.")],
)
def learn_blocks(
    context: AssetExecutionContext, studio: StudioResource, data_dir: DataDirResource
) -> dg.MaterializeResult:
    data = data_dir.open()
    with studio.client() as client:
        found = client.discover(studio.api_keys())
    for error in found.errors:
        context.log.error(str(error))
    if not found.keys_by_project:
        raise dg.Failure(
            "no project could be discovered with the configured EI_API_KEY: "
            + "; ".join(str(e) for e in found.errors)
        )
    data.store.raw.append_log("discoveries", discoveries_table(found.blocks, datetime.now(UTC)))
    add, remove = partition_changes(context.instance, found.blocks, set(found.keys_by_project))
    if add:
        context.instance.add_dynamic_partitions(learn_block_partitions.name, add)
    for key in remove:
        context.instance.delete_dynamic_partition(learn_block_partitions.name, key)
    _say(context, f"discovered {len(found.blocks)} learn blocks in {len(found.keys_by_project)} "
                  f"projects ({len(add)} new, {len(remove)} gone, {len(found.errors)} errors)")
    listing = "\n".join(
        f"| {b.key} | {b.project_name} | {b.impulse_name} | {b.block_type} | {b.block_title} |"
        for b in found.blocks
    )
    errors = [str(e) for e in found.errors]
    return dg.MaterializeResult(
        metadata={
            "blocks": len(found.blocks),
            "projects": len(found.keys_by_project),
            "discovery_errors": len(errors),
            "errors": bullet_list(errors),
            "error_list": dg.MetadataValue.json(errors),
            "dagster/row_count": len(found.blocks),
            "preview": dg.MetadataValue.md(
                "| partition | project | impulse | type | title |\n|---|---|---|---|---|\n" + listing),
        },
        check_results=[dg.AssetCheckResult(
            check_name="all_keys_reachable", passed=not errors,
            severity=dg.AssetCheckSeverity.ERROR, metadata={"errors": bullet_list(errors)})],
    )


# ---- raw archive + lake -----------------------------------------------------------------------


class RefreshConfig(dg.Config):
    blocks: list[str] = []  # partition keys `<project_id>-<learn_id>`; empty: every present block


def _blocks_to_refresh(data: DataDir, config: RefreshConfig) -> list[LearnBlock]:
    latest = data.store.raw.latest_log("discoveries")
    if latest is None:
        raise dg.Failure("no discovery yet: materialize learn_blocks first")
    fields = ("project_id", "project_name", "impulse_id", "impulse_name", "learn_id",
              "block_type", "block_name", "block_title")
    blocks = [LearnBlock(**{f: row[f] for f in fields}) for row in latest.to_pylist()]
    if config.blocks:
        wanted = set(config.blocks)
        unknown = wanted - {b.key for b in blocks}
        if unknown:
            raise dg.Failure(f"unknown learn block partitions: {', '.join(sorted(unknown))}; "
                             "the last discovery does not list them")
        blocks = [b for b in blocks if b.key in wanted]
    return blocks


def _keys_by_project(
    context: AssetExecutionContext, client: StudioClient, studio: StudioResource
) -> dict[int, ApiKey]:
    """Which key reaches which project; a refused key is logged (discovery reports it too)."""
    keys: dict[int, ApiKey] = {}
    for key in studio.api_keys():
        try:
            projects = client.list_projects(key)
        except StudioError as exc:
            context.log.warning(f"skipping API key {key.label}: {exc}")
            continue
        for project in projects:
            keys[project.id] = key
    return keys


@dg.asset(
    deps=[learn_blocks],
    group_name="raw_archive",
    kinds={"python", "parquet"},
    description="Fetch the metadata of every learn block (bounded concurrency, retries), keep "
                "every distinct response in EI_DATA_DIR/raw and flatten it into EI_DATA_DIR/lake.",
    check_specs=[dg.AssetCheckSpec(
        "all_blocks_refreshed", asset="metadata_snapshots",
        description="Every learn block was fetched and stored; failures are listed.")],
)
def metadata_snapshots(
    context: AssetExecutionContext, config: RefreshConfig, studio: StudioResource,
    data_dir: DataDirResource,
) -> Iterator[dg.MaterializeResult | dg.AssetMaterialization]:
    data = data_dir.open()
    blocks = _blocks_to_refresh(data, config)
    done = 0

    def on_result(result: BlockResult) -> None:
        nonlocal done
        done += 1
        detail = result.error if result.error else f"snapshot {result.snapshot_id}"
        line = f"[{done}/{len(blocks)}] {result.block.key} {result.block.block_type}: {result.status}"
        _say(context, f"{line} ({detail})")

    with studio.client() as client:
        keys = _keys_by_project(context, client, studio)
        missing = [b for b in blocks if b.project_id not in keys]
        reachable = [b for b in blocks if b.project_id in keys]
        results = refresh_blocks(client, reachable, keys, data.store, studio.max_concurrency,
                                 on_result)
    results += [BlockResult(b, "failed", error=f"project {b.project_id}: no configured API key "
                                                  "reaches it any more") for b in missing]
    for result in results:
        if result.snapshot_id is None:
            continue
        block = result.block
        summary = snapshot_summary(
            data.store.lake.read("model_metrics", block.project_id, block.learn_id, result.snapshot_id),
            data.store.lake.read("on_device_performance", block.project_id, block.learn_id,
                                 result.snapshot_id),
        )
        yield dg.AssetMaterialization(
            asset_key=learn_block_metadata.key,
            partition=block.key,
            metadata={**summary, "snapshot_id": result.snapshot_id, "changed": result.changed,
                      "block_type": block.block_type},
        )
    counts = {status: sum(r.status == status for r in results)
              for status in ("refreshed", "unchanged", "failed", "skipped")}
    failures = [f"{r.block.key}: {r.error}" for r in results if r.status == "failed"]
    skipped = [f"{r.block.key}: {r.error}" for r in results if r.status == "skipped"]
    yield dg.MaterializeResult(
        metadata={
            **{f"blocks_{status}": n for status, n in counts.items()},
            "failures": bullet_list(failures),
            "failure_list": dg.MetadataValue.json(failures),
            "skipped": bullet_list(skipped),
        },
        check_results=[dg.AssetCheckResult(
            check_name="all_blocks_refreshed",
            passed=not failures,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={"failed": len(failures), "failures": bullet_list(failures)},
        )],
    )


def _lake_spec(table: str) -> dg.AssetSpec:
    return dg.AssetSpec(["lake", table], deps=[metadata_snapshots], group_name="lake",
                        kinds={"parquet"}, description=TABLES[table].description,
                        metadata={"dagster/column_schema": table_schema(TABLES[table].schema)})


@dg.multi_asset(specs=[_lake_spec(t) for t in SNAPSHOT_TABLES], can_subset=True)
def lake_tables(context: AssetExecutionContext, data_dir: DataDirResource
                ) -> Iterator[dg.MaterializeResult]:
    """The Parquet lake as written by metadata_snapshots: one result per table."""
    lake = data_dir.open().store.lake
    for key in context.selected_asset_keys:
        table = key.path[-1]
        dataset = lake.dataset(table)  # one listing of the table's files serves both counts
        yield dg.MaterializeResult(asset_key=key, metadata={
            "dagster/row_count": dataset.count_rows(), "files": len(dataset.files),
            "dagster/column_schema": table_schema(TABLES[table].schema),
            "path": dg.MetadataValue.path(lake.table_dir(table)),
        })


# ---- warehouse --------------------------------------------------------------------------------


def _warehouse_spec(table: str) -> dg.AssetSpec:
    if table in SNAPSHOT_TABLES:
        deps: list = [["lake", table]]
    elif table == "learn_blocks":
        deps = [learn_blocks]
    else:
        deps = [metadata_snapshots]
    return dg.AssetSpec(["warehouse", table], deps=deps, group_name="warehouse", kinds={"duckdb"},
                        description=TABLES[table].description if table in TABLES else
                        "One row per learn block ever discovered, with presence.")


@dg.multi_asset(specs=[_warehouse_spec(t) for t in WAREHOUSE_TABLES], pool=WAREHOUSE_POOL)
def warehouse_tables(context: AssetExecutionContext, data_dir: DataDirResource
                     ) -> Iterator[dg.MaterializeResult]:
    """Load new lake snapshots and run logs into EI_DATA_DIR/ei.duckdb, in one transaction."""
    warehouse = data_dir.open().warehouse
    report = warehouse.load()
    _say(context, f"warehouse: {report.new_snapshots} new snapshots loaded")
    with warehouse.connect(read_only=True) as con:
        for table in WAREHOUSE_TABLES:
            yield dg.MaterializeResult(asset_key=["warehouse", table], metadata={
                "dagster/row_count": con.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0],
                "rows_added": report.rows.get(table, 0),
                "dagster/column_schema": _duckdb_schema(con, table),
            })


def _duckdb_schema(con: object, relation: str) -> dg.TableSchema:
    rows = con.execute(  # type: ignore[attr-defined]
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'main' AND table_name = ? ORDER BY ordinal_position", [relation]
    ).fetchall()
    return dg.TableSchema(columns=[dg.TableColumn(name, type_) for name, type_ in rows])


VIEW_DESCRIPTIONS = {
    "latest_snapshots": "The snapshot each learn block showed when last fetched.",
    "model_type_comparison": "Each non-float32 model type against float32, per snapshot, target "
                             "and engine: accuracy/loss deltas, latency/RAM/ROM ratios, agreement.",
    "model_type_trend": "The comparison over the snapshots of a block, with changes against the "
                        "previous snapshot and is_regression.",
    "prediction_disagreements": "Validation windows where a model type's prediction differs from "
                                "float32's.",
}

PREVIEW_SQL = """
SELECT project_id || '-' || learn_id AS block, mcu, engine, model_type,
       round(accuracy_delta, 4) AS accuracy_delta, round(latency_ratio, 2) AS latency_ratio,
       round(ram_ratio, 2) AS ram_ratio, round(rom_ratio, 2) AS rom_ratio,
       round(prediction_agreement, 3) AS agreement
FROM model_type_comparison
WHERE is_default AND snapshot_id IN (SELECT snapshot_id FROM latest_snapshots)
ORDER BY project_id, learn_id, model_type, engine
LIMIT 40
"""


@dg.multi_asset(
    specs=[dg.AssetSpec(["warehouse", v], group_name="comparisons", kinds={"duckdb"},
                        description=VIEW_DESCRIPTIONS[v],
                        deps=[["warehouse", t] for t in ("snapshots", "model_metrics",
                                                         "on_device_performance", "predictions")])
           for v in COMPARISON_VIEWS],
    pool=WAREHOUSE_POOL,
)
def comparison_views(data_dir: DataDirResource) -> Iterator[dg.MaterializeResult]:
    """The comparison views (defined with the warehouse schema): row counts and a preview."""
    warehouse = data_dir.open().warehouse
    with warehouse.connect(read_only=True) as con:
        for view in COMPARISON_VIEWS:
            metadata: dict[str, object] = {
                "dagster/row_count": con.execute(f'SELECT count(*) FROM "{view}"').fetchone()[0],
                "dagster/column_schema": _duckdb_schema(con, view),
            }
            if view == "model_type_comparison":
                preview = con.sql(PREVIEW_SQL).to_df()
                metadata["latest_default_target"] = dg.MetadataValue.md(
                    preview.to_markdown(index=False) if len(preview) else "no comparison yet")
            yield dg.MaterializeResult(asset_key=["warehouse", view], metadata=metadata)
