"""The schema registry is the one declaration: a built warehouse and the Dagster definitions agree
with it column by column, types, nullability and descriptions included."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import pytest

from ei_assets.dagster.resources import DataDirResource, StudioResource
from ei_assets.definitions import build_definitions
from ei_assets.pipeline.data_dir import DataDir
from ei_assets.pipeline.refresh import discoveries_table
from ei_assets.schema import (
    PREDICTION_PARSE_SCHEMA,
    REQUIRED_PREDICTION_FIELDS,
    SNAPSHOT_TABLES,
    TABLES,
    VIEWS,
    WAREHOUSE_TABLES,
    relation,
)
from ei_assets.studio import LearnBlock
from tests import docs


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> DataDir:
    data = DataDir.open(str(tmp_path_factory.mktemp("registry")))
    block = LearnBlock(7, "P", 1, "I", 3, "keras", "B", "T")
    data.store.raw.append_log("discoveries", discoveries_table([block], datetime.now(UTC)))
    data.store.save(block, datetime.now(UTC), {"keras": docs.encode(docs.keras_doc())})
    data.warehouse.load()
    return data


def test_every_table_and_view_in_the_warehouse_is_the_registry_column_by_column(built: DataDir) -> None:
    columns = built.warehouse.query("""
        SELECT table_name, column_name, data_type, is_nullable = 'YES' AS nullable,
               column_comment AS description
        FROM information_schema.columns WHERE table_schema = 'main' AND table_name NOT LIKE '\\_%' ESCAPE '\\'
        ORDER BY table_name, ordinal_position""").to_pylist()
    built_columns: dict[str, list[tuple[str, str, bool, str]]] = {}
    for c in columns:
        built_columns.setdefault(c["table_name"], []).append(
            (c["column_name"], c["data_type"], c["nullable"], c["description"]))
    declared = {
        name: [(c.name, c.sql_type, c.nullable, c.description) for c in relation(name).all_columns]
        for name in (*TABLES, *VIEWS)
    }
    assert set(built_columns) == set(declared)
    for name, expected in declared.items():
        assert built_columns[name] == expected, name


def test_table_and_view_descriptions_are_comments(built: DataDir) -> None:
    comments = {r["name"]: r["comment"] for r in built.warehouse.query(
        "SELECT table_name AS name, comment FROM duckdb_tables() WHERE NOT internal "
        "UNION ALL SELECT view_name, comment FROM duckdb_views() WHERE NOT internal").to_pylist()}
    for name in (*TABLES, *VIEWS):
        assert comments[name] == relation(name).description, name


def test_lake_files_carry_the_registry_schema(built: DataDir) -> None:
    import pyarrow.parquet as pq

    for table in SNAPSHOT_TABLES:
        for path in built.store.lake.files(table):
            assert pq.read_schema(path).equals(TABLES[table].arrow_schema), table


def test_prediction_parse_schema_derives_from_the_columns() -> None:
    assert REQUIRED_PREDICTION_FIELDS == ("sampleId", "startMs", "endMs", "prediction")
    assert PREDICTION_PARSE_SCHEMA.field("anomalyScores").type == TABLES["anomaly_scores"].column(
        "scores").type
    boxes = PREDICTION_PARSE_SCHEMA.field("boundingBoxes").type.value_type
    assert [f.name for f in boxes] == ["label", "x", "y", "width", "height", "score"]


def test_dagster_column_schemas_carry_the_descriptions(tmp_path: Path) -> None:
    defs = build_definitions({"studio": StudioResource(api_key="unused"),
                              "data_dir": DataDirResource(data_dir=str(tmp_path))})
    specs = {spec.key: spec for spec in defs.resolve_all_asset_specs()}
    for table in WAREHOUSE_TABLES:
        schema = specs[dg.AssetKey(["warehouse", table])].metadata["dagster/column_schema"]
        assert [(c.name, c.description, c.constraints.nullable) for c in schema.columns] == [
            (c.name, c.description, c.nullable) for c in TABLES[table].all_columns], table
        assert all(c.description for c in schema.columns)
    for table in SNAPSHOT_TABLES:
        schema = specs[dg.AssetKey(["lake", table])].metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == TABLES[table].arrow_schema.names
    for view in ("model_type_comparison", "model_type_trend", "prediction_disagreements"):
        schema = specs[dg.AssetKey(["warehouse", view])].metadata["dagster/column_schema"]
        assert [c.description for c in schema.columns] == [c.description for c in VIEWS[view].columns]
