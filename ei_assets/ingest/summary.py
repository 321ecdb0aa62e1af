"""One snapshot in a few numbers: per model type at the default target, and int8 against float32.

These become the numeric metadata of a learn block's materialization, which the Dagster UI plots
over time. The engine is EON when profiled, else TFLite.
"""

from __future__ import annotations

import pyarrow as pa

ENGINE_PREFERENCE = ("eon", "tflite", "eon_ram_optimized")


def snapshot_summary(model_metrics: pa.Table, performance: pa.Table) -> dict[str, float]:
    out: dict[str, float] = {}
    by_type: dict[str, dict[str, float]] = {}
    for row in model_metrics.select(["model_type", "accuracy", "loss"]).to_pylist():
        numbers = {k: row[k] for k in ("accuracy", "loss") if row[k] is not None}
        by_type.setdefault(row["model_type"], {}).update(numbers)
    default_rows = [r for r in performance.to_pylist() if r["is_default"] and r["has_performance"]]
    for model_type in by_type:
        rows = {r["engine"]: r for r in default_rows if r["model_type"] == model_type}
        engine = next((e for e in ENGINE_PREFERENCE if e in rows), None)
        if engine is None:
            continue
        row = rows[engine]
        for name, column in (("latency_ms", "latency_ms"), ("ram_bytes", "ram_bytes"),
                             ("rom_bytes", "rom_bytes")):
            if row[column] is not None:
                by_type[model_type][name] = float(row[column])
    for model_type, numbers in sorted(by_type.items()):
        for name, value in numbers.items():
            out[f"{model_type}/{name}"] = float(value)
    if "int8" in by_type and "float32" in by_type:
        for name in ("accuracy", "loss", "latency_ms", "ram_bytes", "rom_bytes"):
            if name in by_type["int8"] and name in by_type["float32"]:
                delta = by_type["int8"][name] - by_type["float32"][name]
                out[f"int8-float32/{name}"] = round(delta, 6)  # no float noise in the UI
    return out
