"""The numbers a block's materialization carries (what the Dagster UI plots)."""

from __future__ import annotations

import pyarrow as pa

from ei_assets.ingest.summary import snapshot_summary
from ei_assets.schema import TABLES


def table(name: str, rows: list[dict]) -> pa.Table:
    keys = {"snapshot_id": "s" * 32, "project_id": 1, "learn_id": 3}
    return pa.Table.from_pylist([keys | r for r in rows], schema=TABLES[name].arrow_schema)


def perf(model_type: str, engine: str, latency: float, ram: int, rom: int, default: bool = True) -> dict:
    return {"model_type": model_type, "mcu": "m4", "is_default": default, "has_performance": True,
            "engine": engine, "latency_ms": latency, "ram_bytes": ram, "rom_bytes": rom}


def test_default_target_numbers_prefer_eon_and_give_int8_deltas() -> None:
    metrics = table("model_metrics", [
        {"model_type": "float32", "accuracy": 0.9, "loss": 0.2},
        {"model_type": "int8", "accuracy": 0.883333, "loss": 0.25},
    ])
    performance = table("on_device_performance", [
        perf("float32", "tflite", 10, 1000, 4000), perf("float32", "eon", 10, 800, 3000),
        perf("int8", "tflite", 4, 500, 1500), perf("int8", "eon", 4, 400, 1200),
        perf("int8", "eon", 99, 99, 99, default=False),
    ])
    summary = snapshot_summary(metrics, performance)
    assert summary["float32/ram_bytes"] == 800 and summary["int8/ram_bytes"] == 400  # EON
    assert summary["int8-float32/accuracy"] == -0.016667  # rounded, no float noise
    assert summary["int8-float32/latency_ms"] == -6
    assert summary["int8-float32/rom_bytes"] == -1800


def test_no_profiling_gives_accuracy_only_and_no_int8_without_float32() -> None:
    metrics = table("model_metrics", [{"model_type": "int8", "accuracy": 0.8, "loss": None}])
    summary = snapshot_summary(metrics, table("on_device_performance", []))
    assert summary == {"int8/accuracy": 0.8}
