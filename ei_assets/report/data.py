"""What the report shows, read from the warehouse in a few set-based queries (either mode)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ei_assets.warehouse import Reader, Warehouse

ENGINE_PREFERENCE = ("eon", "tflite", "eon_ram_optimized")  # the default chart's engine, if profiled

BLOCKS_SQL = """
SELECT s.project_id, s.learn_id, any_value(b.project_name) AS project_name,
       any_value(b.block_title) AS block_title, any_value(s.block_type) AS block_type,
       any_value(b.impulse_name) AS impulse_name
FROM snapshots s LEFT JOIN learn_blocks b USING (project_id, learn_id)
GROUP BY s.project_id, s.learn_id ORDER BY 1, 2
"""
SNAPSHOTS_SQL = """
SELECT project_id, learn_id, snapshot_id, epoch(model_created_at) AS x, recommended_model_type
FROM snapshots ORDER BY project_id, learn_id, model_created_at, first_fetched_at, snapshot_id
"""
ACCURACY_SQL = "SELECT project_id, learn_id, snapshot_id, model_type, accuracy FROM model_metrics"
PERFORMANCE_SQL = """
SELECT project_id, learn_id, snapshot_id, model_type, mcu, device_name, is_default, engine,
       latency_ms, ram_bytes, rom_bytes
FROM on_device_performance
"""
FLIPS_SQL = """
SELECT project_id, learn_id, snapshot_id, model_type, count(*) AS flips
FROM prediction_disagreements GROUP BY ALL
"""
BUDGETS_SQL = """
SELECT DISTINCT project_id, mcu, latency_budget_ms, ram_budget_bytes, rom_budget_bytes
FROM budget_fit
"""
LATEST_FIT_SQL = """
SELECT f.project_id, f.learn_id, bool_or(f.fits) AS fits
FROM budget_fit f JOIN latest_snapshots s USING (project_id, learn_id, snapshot_id)
WHERE f.model_type = s.recommended_model_type GROUP BY ALL
"""
FIGURES = ("latency", "ram", "rom")
Key = tuple[int, int, str]  # a snapshot of one learn block: (project_id, learn_id, snapshot_id)


def _key(row: dict[str, Any]) -> Key:
    return row["project_id"], row["learn_id"], row["snapshot_id"]


def _rows(reader: Reader, sql: str) -> list[dict[str, Any]]:
    return reader.query(sql).to_pylist()


def report_data(warehouse: Warehouse) -> list[dict[str, Any]]:
    """One dict per learn block with every series its charts draw, in snapshot order."""
    with warehouse.reader() as reader:  # one state of the warehouse for every series
        snapshots: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        for row in _rows(reader, SNAPSHOTS_SQL):
            snapshots[(row["project_id"], row["learn_id"])].append(row)
        accuracy = {(*_key(r), r["model_type"]): r["accuracy"] for r in _rows(reader, ACCURACY_SQL)}
        flips = {(*_key(r), r["model_type"]): r["flips"] for r in _rows(reader, FLIPS_SQL)}
        performance: dict[Key, list[dict[str, Any]]] = defaultdict(list)
        for row in _rows(reader, PERFORMANCE_SQL):
            performance[_key(row)].append(row)
        budgets = {(r["project_id"], r["mcu"]): r for r in _rows(reader, BUDGETS_SQL)}
        fits = {(r["project_id"], r["learn_id"]): r["fits"] for r in _rows(reader, LATEST_FIT_SQL)}
        block_rows = _rows(reader, BLOCKS_SQL)
    blocks = []
    for block in block_rows:
        key = (block["project_id"], block["learn_id"])
        ids = [s["snapshot_id"] for s in snapshots[key]]
        keys = [_key(s) for s in snapshots[key]]
        model_types = sorted({mt for (*k, mt) in accuracy if tuple(k) in set(keys)},
                             key=lambda t: (t != "float32", t))
        blocks.append({
            **block,
            "key": f"{block['project_id']}-{block['learn_id']}",
            "x": [s["x"] for s in snapshots[key]],
            "snapshots": ids,
            "recommended": snapshots[key][-1]["recommended_model_type"],
            "model_types": model_types,
            "accuracy": {mt: [accuracy.get((*k, mt)) for k in keys] for mt in model_types},
            "flips": {mt: [flips.get((*k, mt), 0) for k in keys]
                      for mt in model_types if mt != "float32"},
            "targets": _targets(keys, model_types, performance, budgets, block["project_id"]),
            "fits": fits.get(key),
        })
    return blocks


def _targets(keys: list[Key], model_types: list[str], performance: dict[Key, list[dict[str, Any]]],
             budgets: dict[tuple[int, str], dict[str, Any]], project_id: int) -> list[dict[str, Any]]:
    """Every (target, engine) profiled in any snapshot, the default target's best engine first."""
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for index, key in enumerate(keys):
        for row in performance.get(key, []):
            target = found.setdefault((row["mcu"], row["engine"]), {
                "mcu": row["mcu"], "engine": row["engine"], "device_name": row["device_name"],
                "is_default": False, **{f: {mt: [None] * len(keys) for mt in model_types} for f in FIGURES},
            })
            target["is_default"] |= bool(row["is_default"])
            if row["model_type"] in model_types:
                for figure, column in zip(FIGURES, ("latency_ms", "ram_bytes", "rom_bytes"), strict=True):
                    target[figure][row["model_type"]][index] = row[column]
    for (mcu, _), target in found.items():
        budget = budgets.get((project_id, mcu))
        target["budget"] = None if budget is None else {
            "latency": budget["latency_budget_ms"], "ram": budget["ram_budget_bytes"],
            "rom": budget["rom_budget_bytes"]}
    rank = {engine: i for i, engine in enumerate(ENGINE_PREFERENCE)}
    return sorted(found.values(), key=lambda t: (not t["is_default"], rank.get(t["engine"], 9), t["mcu"]))
