"""Small hand-made metadata documents for tests (valid against the official models unless noted)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import msgspec

from ei_assets.snapshot import Snapshot, snapshot_id


def perf(mcu: str, *, default: bool = False, latency: float = 10, ram: int = 1000, rom: int = 4000,
         eon_ro: bool = False, has: bool = True, error: str | None = None,
         custom: list[dict[str, str]] | None = None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "mcu": mcu, "name": mcu.upper(), "isDefault": default, "latency": latency,
        "tflite": {"ramRequired": ram, "romRequired": rom, "arenaSize": ram - 100, "modelSize": rom // 2},
        "eon": {"ramRequired": ram - 200, "romRequired": rom - 500, "arenaSize": ram - 300,
                "modelSize": rom // 2},
        "hasPerformance": has,
    }
    if eon_ro:
        row["eon_ram_optimized"] = {"ramRequired": ram - 400, "romRequired": rom - 400,
                                    "arenaSize": ram - 500, "modelSize": rom // 2}
    if error:
        row["profilingError"] = error
    if custom:
        row["customMetrics"] = custom
    return row


def metrics(model_type: str, predictions: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    row = {
        "type": model_type, "loss": 0.25, "accuracy": 0.9,
        "confusionMatrix": [[3, 1], [0, 4]],
        "report": {"idle": {"precision": 1.0, "recall": 0.75, "f1-score": 0.857, "support": 4},
                   "accuracy": 0.875,
                   "weighted avg": {"precision": 0.9, "recall": 0.875, "f1-score": 0.87, "support": 8}},
        "onDevicePerformance": [perf("cortex-m4f-80mhz", default=True)],
        "predictions": predictions,
        "visualization": "featureExplorer",
        "isSupportedOnMcu": True,
        "additionalMetrics": [{"name": "F1", "value": "0.87", "fullPrecisionValue": 0.8712}],
    }
    row.update(extra)
    return row


def window(sample_id: int, start: float, label: str, prediction: str, **extra: Any) -> dict[str, Any]:
    return {"sampleId": sample_id, "startMs": start, "endMs": start + 1000, "label": label,
            "prediction": prediction, "predictionCorrect": label == prediction} | extra


def keras_doc(metrics_rows: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "success": True,
        "created": "2026-10-01T09:30:00Z",
        "layers": [{"input": {"shape": 39, "name": "x", "type": "float32"},
                    "output": {"shape": 2, "name": "y", "type": "float32"}}],
        "classNames": ["idle", "wave"],
        "labels": [],
        "availableModelTypes": ["float32", "int8"],
        "recommendedModelType": "int8",
        "modelValidationMetrics": metrics_rows if metrics_rows is not None else [
            metrics("float32", [window(1, 0, "idle", "idle"), window(1, 500, "wave", "wave")]),
            metrics("int8", [window(1, 0, "idle", "idle"), window(1, 500, "wave", "idle")]),
        ],
        "hasTrainedModel": True,
        "mode": "classification",
        "imageInputScaling": "0..1",
        "thresholds": [{"key": "minConfidenceRating", "description": "Min confidence",
                        "helpText": "h", "value": 0.6}],
    }
    doc.update(extra)
    return doc


def anomaly_doc(**extra: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "success": True,
        "created": "2026-10-02T10:00:00Z",
        "scale": [1.5, 2.0, 0.5],
        "mean": [0.1, -0.2, 0.3],
        "clusters": [{"center": [0.1, 0.2, 0.3], "maxError": 0.4},
                     {"center": [1.0, 1.1, 1.2], "maxError": 0.2}],
        "axes": [0, 11, 22],
        "defaultMinimumConfidenceRating": 0.3,
        "thresholds": [{"key": "min_anomaly_score", "description": "Min score", "helpText": "h",
                        "value": 0.3}],
    }
    doc.update(extra)
    return doc


def gmm_doc() -> dict[str, Any]:
    return {"success": True, "means": [[0.0, 1.0], [2.0, 3.0]],
            "covariances": [[[1.0, 0.1], [0.1, 1.0]], [[2.0, 0.0], [0.0, 2.0]]],
            "weights": [0.25, 0.75]}


def encode(doc: Any) -> bytes:
    return msgspec.json.encode(doc)


def variant(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    out.update(changes)
    return out


def snapshot_of(bodies: dict[str, bytes], block_type: str = "keras", project_id: int = 7,
                learn_id: int = 3, fetched_at: datetime | None = None) -> Snapshot:
    """The Snapshot record of some encoded bodies, as the store would make it."""
    return Snapshot(project_id=project_id, learn_id=learn_id, block_type=block_type,
                    fetched_at=fetched_at or datetime(2026, 11, 1, tzinfo=UTC),
                    endpoints=tuple(bodies), snapshot_id=snapshot_id(bodies))
