"""The SQL shown in the README (docs/queries.sql) runs and answers the users' questions."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.fs as pafs

from ei_assets.datadir import DataDir
from ei_assets.ingest import discoveries_table, refresh_blocks
from ei_assets.settings import ApiKey
from ei_assets.simulator import Simulator, WorldConfig
from ei_assets.studio import StudioClient

QUERIES = Path(__file__).parent.parent / "docs" / "queries.sql"


def named_queries() -> dict[str, str]:
    text = QUERIES.read_text()
    parts = re.split(r"^-- name: (\w+)\n", text, flags=re.M)[1:]
    return {name: body.strip() for name, body in zip(parts[::2], parts[1::2], strict=True)}


def refresh(sim: Simulator, data: DataDir) -> None:
    with StudioClient(sim.url) as client:
        found = client.discover([ApiKey(k, "#") for k in sim.api_keys])
        data.store.raw.append_log("discoveries", discoveries_table(found.blocks, datetime.now(UTC)))
        refresh_blocks(client, found.blocks, found.keys_by_project, data.store, 4)
    data.warehouse.load()


def test_readme_queries_answer_the_questions(tmp_path: Path) -> None:
    data = DataDir.open(str(tmp_path))
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=200)) as sim:
        refresh(sim, data)
        for project, block in sim.world.blocks():  # retrain everything once
            sim.world.retrain(project.id, block.learn_id)
        refresh(sim, data)
    queries = named_queries()
    assert set(queries) == {"int8_costs_and_savings", "regressed_retrains", "flipped_samples"}
    costs = data.warehouse.query(queries["int8_costs_and_savings"]).to_pylist()
    assert costs and all(r["ram_ratio"] is None or r["ram_ratio"] < 1 for r in costs)
    latest = {(r["project_id"], r["learn_id"]) for r in costs}
    assert len(latest) == sum(1 for _, b in sim.world.blocks() if "int8" in b.model_types)
    regressed = data.warehouse.query(queries["regressed_retrains"]).to_pylist()
    assert all(r["previous_snapshot_id"] for r in regressed)
    flipped = data.warehouse.query(queries["flipped_samples"]).to_pylist()
    assert flipped and all(r["float32"] != r["int8"] for r in flipped)
    assert pafs.LocalFileSystem().get_file_info(str(tmp_path / "ei.duckdb")).size > 0
