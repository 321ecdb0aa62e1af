"""The SQL shown in docs/sql.md and the README (ei_assets/warehouse/sql/queries.sql) runs and
answers the users' questions."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow.fs as pafs

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.pipeline.refresh import refresh
from ei_assets.settings import ApiKey
from ei_assets.simulator import Simulator, WorldConfig
from ei_assets.studio import StudioClient
from ei_assets.warehouse.queries import DOC_QUESTIONS, QUERIES

ROOT = Path(__file__).parent.parent
README, SQL_DOC = ROOT / "README.md", ROOT / "docs" / "sql.md"


def load(sim: Simulator, data: DataDir) -> None:
    with StudioClient(sim.url) as client:
        report = refresh(client, [ApiKey(k, "#") for k in sim.api_keys], data.store, max_workers=4)
    assert report.all_refreshed, report
    data.warehouse.load()


def normalized(sql: str) -> str:
    lines = [line.strip() for line in sql.splitlines() if not line.strip().startswith("--")]
    return " ".join(" ".join(lines).split()).rstrip(";")


def shown(page: Path) -> set[str]:
    return {normalized(block) for block in re.findall(r"```sql\n(.*?)```", page.read_text(), flags=re.S)}


def test_the_docs_show_the_named_queries_as_they_are() -> None:
    on_page = shown(SQL_DOC)
    for name in DOC_QUESTIONS:
        assert normalized(QUERIES[name]) in on_page, name
    named = {normalized(sql) for sql in QUERIES.values()}
    assert shown(README) and shown(README) <= named  # the README's examples are named queries too


def test_readme_queries_answer_the_questions(tmp_path: Path) -> None:
    data = DataDir.open(str(tmp_path))
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=200)) as sim:
        load(sim, data)
        sim.world.retrain_matching()  # retrain everything once
        load(sim, data)
    queries = QUERIES
    costs = data.warehouse.query(queries["int8_costs_and_savings"]).to_pylist()
    assert costs and all(r["ram_ratio"] is None or r["ram_ratio"] < 1 for r in costs)
    latest = {(r["project_id"], r["learn_id"]) for r in costs}
    assert len(latest) == sum(1 for _, b in sim.world.blocks() if "int8" in b.model_types)
    regressed = data.warehouse.query(queries["regressed_retrains"]).to_pylist()
    assert regressed and len(regressed[0]) == 9  # narrow: one block per line, sorted
    assert [r["block"] for r in regressed] == sorted(r["block"] for r in regressed)
    assert all(r["d_accuracy"] < -0.01 or max(r["d_latency"] or 0, r["d_ram"] or 0,
                                              r["d_rom"] or 0) > 0.1 for r in regressed)
    flipped = data.warehouse.query(queries["flipped_samples"]).to_pylist()
    assert flipped and all(r["float32"] != r["int8"] for r in flipped)
    fit = data.warehouse.query(queries["latest_budget_fit"]).to_pylist()
    assert {r["fits"] for r in fit} >= {True, False}
    hurt = data.warehouse.query(queries["classes_int8_hurts"]).to_pylist()
    assert hurt and all(r["f1_delta"] < 0 for r in hurt)
    drift = data.warehouse.query(queries["anomaly_drift"]).to_pylist()
    assert drift and any(r["p95_change"] is not None for r in drift)
    assert pafs.LocalFileSystem().get_file_info(str(tmp_path / "ei.duckdb")).size > 0
