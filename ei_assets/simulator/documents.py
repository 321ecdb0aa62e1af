"""Response documents of the simulator, shaped like the official Studio API models.

Values are drawn from a generator seeded by (world seed, project, learn block, version), so a
block answers the same until it is retrained. Relations hold the way they do on real projects:
predictions determine the confusion matrix, report and accuracy; int8 flips a few float32
predictions, is ~4x smaller and faster; EON needs less RAM/ROM than TFLite.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from ei_assets.simulator.world import TARGETS, BlockSpec, BlockState, ProjectSpec, Target, World

Doc = dict[str, Any]

# float32 -> model type: (flip rate of correct windows, fix rate of wrong ones, size, speed)
MODEL_TYPE_FACTORS = {
    "float32": (0.0, 0.0, 1.0, 1.0),
    "int8": (0.02, 0.01, 0.26, 0.38),
    "akida": (0.04, 0.01, 0.27, 0.30),
}


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def last_modification_document(modified: datetime, dateless: bool = False) -> Doc:
    """GET /api/{projectId}/last-modification; `dateless` answers without the date."""
    return {"success": True} if dateless else {"success": True, "lastModificationDate": _iso(modified)}


def projects_document(project: ProjectSpec, modified: datetime) -> Doc:
    return {
        "success": True,
        "projects": [
            {
                "id": project.id,
                "name": project.name,
                "description": f"{project.name} (Studio simulator)",
                "created": "2026-09-01T08:00:00.000Z",
                "lastModified": _iso(modified),
                "owner": "ei-assets simulator",
                "ownerIsDeveloperProfile": False,
                "collaborators": [],
                "labelingMethod": project.labeling_method,
                "metadata": {},
                "isEnterpriseProject": False,
                "whitelabelId": None,
                "tier": "professional",
                "hasPublicVersion": False,
                "isPublic": False,
                "allowsLivePublicAccess": False,
                "indPauseProcessingSamples": False,
                "publicProjectListed": False,
            }
        ],
    }


def _impulse_document(impulse: Any) -> Doc:
    image = impulse.input_type == "image"
    input_block: Doc = {"id": 1, "type": impulse.input_type, "name": "Input", "title": "Input"}
    if image:
        input_block |= {"imageWidth": 96, "imageHeight": 96, "resizeMode": "fit-short"}
        dsp = {"id": 2, "type": "image", "name": "Image", "title": "Image",
               "axes": ["image"], "implementationVersion": 1}
    else:
        input_block |= {"windowSizeMs": 1000, "windowIncreaseMs": 500, "frequencyHz": 100.0}
        dsp = {"id": 2, "type": "spectral-analysis", "name": "Spectral features",
               "title": "Spectral Analysis", "axes": ["accX", "accY", "accZ"],
               "implementationVersion": 4}
    return {
        "id": impulse.id,
        "name": impulse.name,
        "type": "default",
        "inputBlocks": [input_block],
        "dspBlocks": [dsp],
        "learnBlocks": [
            {"id": b.learn_id, "type": b.block_type, "name": b.name, "title": b.title, "dsp": [2]}
            for b in impulse.blocks
        ],
        "postProcessingBlocks": [],
    }


def impulses_document(project: ProjectSpec) -> Doc:
    return {
        "success": True,
        "impulses": [_impulse_document(impulse) for impulse in project.impulses],
        "maxImpulseCount": 3,
    }


def impulse_document(project: ProjectSpec) -> Doc:
    return {"success": True, "impulse": _impulse_document(project.impulses[0])}


def _rng(world: World, project: ProjectSpec, block: BlockSpec, version: int) -> np.random.Generator:
    return np.random.default_rng([world.config.seed, project.id, block.learn_id, version])


class _Model:
    """Quality and size of one trained version of a block, before model-type factors."""

    def __init__(self, rng: np.random.Generator, block: BlockSpec, version: int) -> None:
        drift = rng.normal(0, 0.012) * min(version - 1, 1)
        self.accuracy = float(np.clip(rng.uniform(0.86, 0.97) + drift, 0.5, 0.995))
        self.loss = float(rng.uniform(0.08, 0.35))
        self.size = float(rng.uniform(0.85, 1.25))  # scales latency/RAM/ROM of this version


def _windows(n: int, block: BlockSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sampleId, startMs, endMs of n validation windows (4 windows per time-series sample)."""
    index = np.arange(n)
    if block.block_type in ("keras-visual-anomaly", "keras-object-detection"):
        return 5000 + index, np.zeros(n), np.zeros(n)
    start = (index % 4) * 500.0
    return 1000 + index // 4, start, start + 1000.0


def _classifier_predictions(
    rng: np.random.Generator, model: _Model, classes: tuple[str, ...], n: int,
    model_types: tuple[str, ...], absent: int = 0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """True class index per window, and predicted class index per window for each model type."""
    # classes below `absent` never occur, neither as truth nor as prediction
    k = len(classes) - absent
    truth = rng.integers(0, k, n)
    correct = rng.random(n) < model.accuracy
    wrong_shift = rng.integers(1, max(k, 2), n)
    base = np.where(correct, truth, (truth + wrong_shift) % k)
    predicted = {}
    for model_type in model_types:
        flip, fix, _, _ = MODEL_TYPE_FACTORS.get(model_type, MODEL_TYPE_FACTORS["int8"])
        draw = rng.random(n)
        flipped = np.where(
            base == truth,
            np.where(draw < flip, (truth + wrong_shift) % k, base),
            np.where(draw < fix, truth, base),
        )
        predicted[model_type] = flipped + absent
    return truth + absent, predicted


def _report(matrix: np.ndarray) -> Doc:
    """scikit-learn's classification_report as Studio sends it: keyed by class index ("0", "1", …),
    a class that occurs neither as truth nor as prediction left out, averages over the others."""
    report: Doc = {}
    occurs = (matrix.sum(axis=1) + matrix.sum(axis=0)) > 0
    index = np.flatnonzero(occurs)
    matrix = matrix[np.ix_(index, index)]
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    diag = np.diag(matrix)
    k = len(index)
    precision = np.divide(diag, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(diag, support, out=np.zeros(k), where=support > 0)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros(k), where=(precision + recall) > 0)
    for i, class_index in enumerate(index):
        report[str(class_index)] = {"precision": float(precision[i]), "recall": float(recall[i]),
                                    "f1-score": float(f1[i]), "support": int(support[i])}
    total = int(support.sum())
    report["accuracy"] = float(diag.sum() / total) if total else 0.0
    report["macro avg"] = {"precision": float(precision.mean()), "recall": float(recall.mean()),
                           "f1-score": float(f1.mean()), "support": total}
    weights = support / total if total else np.zeros(k)
    report["weighted avg"] = {"precision": float((precision * weights).sum()),
                              "recall": float((recall * weights).sum()),
                              "f1-score": float((f1 * weights).sum()), "support": total}
    return report


def _performance(
    world: World, project: ProjectSpec, block: BlockSpec, model: _Model, model_type: str,
    rng: np.random.Generator,
) -> list[Doc]:
    _, _, size, speed = MODEL_TYPE_FACTORS.get(model_type, MODEL_TYPE_FACTORS["int8"])
    rows = []
    for target in world.targets:
        unsupported = target.profiling_error or (
            "Akida models can only be profiled on BrainChip Akida hardware"
            if model_type == "akida" else None
        )
        row: Doc = {
            "mcu": target.mcu,
            "name": target.name,
            "isDefault": target.mcu == project.default_target,
            "hasPerformance": unsupported is None,
        }
        if unsupported:
            zero = {"ramRequired": 0, "romRequired": 0, "arenaSize": 0, "modelSize": 0}
            row |= {"latency": 0, "tflite": zero, "eon": dict(zero), "profilingError": unsupported}
            rows.append(row)
            continue
        row |= _engine_figures(block, model, target, size, speed, rng, project.has_eon_ram_optimized)
        for engine in ("tflite", "eon", "eon_ram_optimized"):
            figures = row.get(engine)
            if figures and target.max_model_bytes and figures["modelSize"] > target.max_model_bytes:
                # too large for the target: no RAM figure, ROM is the model's size
                figures |= {"ramRequired": 0, "romRequired": figures["modelSize"], "arenaSize": 0}
        if target.custom_metrics:
            row["customMetrics"] = [
                {"name": name, "value": f"{row['latency'] * 0.021:.3f} {unit}"}
                for name, unit in target.custom_metrics
            ]
        rows.append(row)
    return rows


def _engine_figures(
    block: BlockSpec, model: _Model, target: Target, size: float, speed: float,
    rng: np.random.Generator, eon_ram_optimized: bool,
) -> Doc:
    model_size = int(block.rom_bytes * 0.7 * size * model.size)
    arena = int(block.ram_bytes * 0.8 * (0.35 + 0.65 * size) * model.size)
    tflite_ram = arena + 3_000
    tflite_rom = model_size + 28_000
    eon_ram = int(tflite_ram * rng.uniform(0.68, 0.85))
    eon_rom = int(tflite_rom * rng.uniform(0.72, 0.88))
    figures: Doc = {
        "latency": max(1, round(block.latency_ms * target.speed * speed * model.size)),
        "tflite": {"ramRequired": tflite_ram, "romRequired": tflite_rom,
                   "arenaSize": arena, "modelSize": model_size},
        "eon": {"ramRequired": eon_ram, "romRequired": eon_rom,
                "arenaSize": int(arena * 0.9), "modelSize": model_size},
    }
    if eon_ram_optimized:
        figures["eon_ram_optimized"] = {
            "ramRequired": int(eon_ram * rng.uniform(0.55, 0.75)),
            "romRequired": int(eon_rom * rng.uniform(1.0, 1.08)),
            "arenaSize": int(arena * 0.6), "modelSize": model_size,
        }
    return figures


def _threshold(key: str, description: str, help_text: str, value: float | str, **extra: Any) -> Doc:
    return {"key": key, "description": description, "helpText": help_text, "value": value} | extra


def _thresholds(block: BlockSpec, model: _Model) -> list[Doc]:
    if block.block_type == "keras-regression":
        return []
    if block.block_type == "keras":
        return [_threshold("minConfidenceRating", "Minimum confidence rating",
                           "Below this confidence a window is classified as uncertain.", 0.6)]
    if block.block_type == "keras-object-detection":
        return [
            _threshold("min_score", "Score threshold",
                       "Threshold score for bounding boxes. If the score for a bounding box is "
                       "below this the box will be discarded.", 0.5),
            _threshold("nms", "Non-maximum suppression", "How overlapping boxes are merged.",
                       "standard"),
        ]
    score = round(3.0 + 4.0 * model.size, 2)
    return [_threshold("min_anomaly_score", "Minimum anomaly score",
                       "Windows scoring above this are tagged as anomaly.",
                       round(score * 1.1, 2), suggestedValue=score, suggestedValueText=f"{score}")]


def _metrics_row(
    world: World, project: ProjectSpec, block: BlockSpec, state: BlockState, model: _Model,
    model_type: str, predictions: list[Doc], matrix: list[list[int]], report: Doc,
    accuracy: float, loss: float, rng: np.random.Generator, now: float,
) -> Doc:
    row: Doc = {
        "type": model_type,
        "loss": round(loss, 6),
        "accuracy": round(accuracy, 6),
        "confusionMatrix": matrix,
        "report": report,
        "onDevicePerformance": [],
        "predictions": predictions,
        "visualization": "featureExplorer" if block.block_type == "keras" else "none",
        "isSupportedOnMcu": True,
        "additionalMetrics": _additional_metrics(block, report, accuracy),
    }
    if state.profiling_pending(now):
        row["profilingJobId"] = 700_000 + block.learn_id * 1000 + state.version
    else:
        row["onDevicePerformance"] = _performance(world, project, block, model, model_type, rng)
    return row


def _additional_metrics(block: BlockSpec, report: Doc, accuracy: float) -> list[Doc]:
    if block.block_type == "keras" and "weighted avg" in report:
        f1 = report["weighted avg"]["f1-score"]
        return [{"name": "Weighted average F1 score", "value": f"{f1:.2f}",
                 "fullPrecisionValue": f1, "tooltipText": "F1 across classes, weighted by support"}]
    if block.block_type == "keras-object-detection":  # accuracy is the mAP here
        return [{"name": "mAP", "value": f"{accuracy:.2f}",
                 "fullPrecisionValue": accuracy,
                 "link": "https://docs.edgeimpulse.com/docs/edge-impulse-studio/learning-blocks/object-detection"}]
    if block.block_type == "keras-visual-anomaly":
        return [{"name": "Area under ROC curve", "value": f"{accuracy:.2f}",
                 "fullPrecisionValue": accuracy}]
    return []


def metadata_document(
    world: World, project: ProjectSpec, block: BlockSpec, state: BlockState, now: float,
    exclude_labels: bool = True,
) -> Doc:
    """The anomaly or keras metadata document of a block (the GMM one is gmm_document)."""
    rng = _rng(world, project, block, state.version)
    model = _Model(rng, block, state.version)
    n = world.predictions(block.block_type)
    sample_ids, starts, ends = _windows(n, block)
    rows = []
    if block.block_type == "keras-regression":
        rows = _regression_rows(world, project, block, state, model, rng, now, sample_ids, starts, ends)
    elif block.block_type in ("keras", "keras-object-detection", "anomaly", "anomaly-gmm"):
        classes = block.classes
        anomaly = block.block_type.startswith("anomaly")
        if anomaly:
            classes = ("no anomaly", "anomaly")
        truth, predicted = _classifier_predictions(rng, model, classes, n, block.model_types,
                                                   block.absent_classes)
        for model_type in block.model_types:
            pred = predicted[model_type]
            k = len(classes)
            matrix = np.zeros((k, k), dtype=int)
            np.add.at(matrix, (truth, pred), 1)
            accuracy = float(np.trace(matrix) / n) if n else 0.0
            loss = model.loss * (1.0 + (0.15 if model_type != "float32" else 0.0))
            if block.block_type == "keras-object-detection":
                predictions = _detections(rng, classes, sample_ids, truth, pred, model_type)
                # Studio sends no matrix and no report for object detection; accuracy is the mAP
                rows.append(_metrics_row(world, project, block, state, model, model_type, predictions,
                                         [], {}, round(accuracy * 0.9, 6), loss, rng, now))
                continue
            else:
                predictions = [
                    {"sampleId": int(s), "startMs": float(a), "endMs": float(b),
                     "label": ("idle", "snake", "updown", "wave")[int(s) % 4] if anomaly
                     else classes[t],
                     "prediction": classes[p], "predictionCorrect": bool(t == p)}
                    | ({"expectedAnomalyOutcome": classes[t]} if anomaly else {})
                    for s, a, b, t, p in zip(sample_ids, starts, ends, truth, pred, strict=True)
                ]
            empty = block.block_type == "anomaly-gmm"
            rows.append(_metrics_row(
                world, project, block, state, model, model_type, predictions,
                [] if empty else matrix.tolist(), {} if empty else _report(matrix),
                accuracy, loss, rng, now,
            ))
    else:  # keras-visual-anomaly: n x n anomaly score grids, empty matrix and report
        g = world.config.grid
        truth = rng.random(n) < 0.3
        base_grid = rng.gamma(2.0, 0.9, (n, g, g))
        for model_type in block.model_types:
            noise = 0 if model_type == "float32" else rng.normal(0, 0.08, (n, g, g))
            grids = np.round(np.abs(base_grid + noise + truth[:, None, None] * 4.0 *
                                    (rng.random((n, g, g)) < 0.15)), 4)
            threshold = 6.3
            is_anomaly = grids.max(axis=(1, 2)) > threshold
            predictions = [
                {"sampleId": int(s), "startMs": 0.0, "endMs": 0.0,
                 "label": "anomaly" if t else "no anomaly",
                 "prediction": "anomaly" if p else "no anomaly",
                 "predictionCorrect": bool(t == p), "anomalyScores": grid.tolist()}
                for s, t, p, grid in zip(sample_ids, truth, is_anomaly, grids, strict=True)
            ]
            accuracy = float(np.mean(truth == is_anomaly)) if n else 0.0
            rows.append(_metrics_row(world, project, block, state, model, model_type,
                                     predictions, [], {}, accuracy, model.loss, rng, now))
    common: Doc = {
        "success": True,
        # GMM blocks send their training date without a time zone (it is UTC)
        "created": _iso(state.created).removesuffix("Z") if block.block_type == "anomaly-gmm"
        else _iso(state.created),
        "availableModelTypes": list(block.model_types),
        "recommendedModelType": "int8" if "int8" in block.model_types else "float32",
        "modelValidationMetrics": rows,
        "hasTrainedModel": True,
        "thresholds": _thresholds(block, model),
    }
    if block.block_type.startswith("anomaly"):
        return common | _anomaly_fields(rng, block)
    return common | _keras_fields(block, n, exclude_labels)


def _anomaly_fields(rng: np.random.Generator, block: BlockSpec) -> Doc:
    axes = 3
    fields: Doc = {
        "scale": np.round(rng.uniform(0.5, 3.0, axes), 6).tolist(),
        "mean": np.round(rng.normal(0, 1.0, axes), 6).tolist(),
        "axes": [0, 11, 22],
        "defaultMinimumConfidenceRating": 0.3,
        "clusters": [],
    }
    if block.block_type == "anomaly":
        fields["clusters"] = [
            {"center": np.round(rng.normal(0, 1.5, axes), 6).tolist(),
             "maxError": round(float(rng.uniform(0.05, 0.6)), 6)}
            for _ in range(32)
        ]
    return fields


def _keras_fields(block: BlockSpec, n: int, exclude_labels: bool) -> Doc:
    mode = {
        "keras": "classification",
        "keras-object-detection": "object-detection",
        "keras-visual-anomaly": "visual-anomaly",
        "keras-regression": "regression",
    }[block.block_type]
    fields: Doc = {
        "layers": [{"input": {"shape": 39 if mode == "classification" else 27648,
                              "name": "x_input:0", "type": "<dtype: 'float32'>"},
                    "output": {"shape": len(block.classes), "name": "Identity:0",
                               "type": "<dtype: 'float32'>"}}],
        "classNames": list(block.classes),
        "labels": [] if exclude_labels or not block.classes
        else [block.classes[i % len(block.classes)] for i in range(n)],
        "mode": mode,
        "imageInputScaling": "0..1",
    }
    if mode == "object-detection":
        fields["objectDetectionLastLayer"] = "fomo"
    return fields


def _regression_rows(
    world: World, project: ProjectSpec, block: BlockSpec, state: BlockState, model: _Model,
    rng: np.random.Generator, now: float, sample_ids: np.ndarray, starts: np.ndarray,
    ends: np.ndarray,
) -> list[Doc]:
    """A regression block as Studio sends it: values as text, accuracy 0, loss the mean squared
    error of the predictions, no confusion matrix and no report."""
    truth = np.round(rng.uniform(0.0, 10.0, len(sample_ids)), 2)
    rows = []
    for model_type in block.model_types:
        noise = 0.25 if model_type == "float32" else 0.3
        predicted = np.round(truth + rng.normal(0.0, noise, len(truth)), 2)
        mse = round(float(np.mean((predicted - truth) ** 2)), 6) if len(truth) else 0.0
        predictions = [{"sampleId": int(s), "startMs": float(a), "endMs": float(b),
                        "label": f"{t:.2f}", "prediction": f"{p:.2f}"}
                       for s, a, b, t, p in zip(sample_ids, starts, ends, truth, predicted, strict=True)]
        rows.append(_metrics_row(world, project, block, state, model, model_type, predictions,
                                 [], {}, 0.0, mse, rng, now))
    return rows


def _detections(
    rng: np.random.Generator, classes: tuple[str, ...], sample_ids: np.ndarray,
    truth: np.ndarray, predicted: np.ndarray, model_type: str,
) -> list[Doc]:
    out = []
    for s, t, p in zip(sample_ids, truth, predicted, strict=True):
        count = int(rng.integers(0, 4))
        boxes = [
            {"label": classes[(p + i) % len(classes)],
             "x": round(float(rng.uniform(0, 0.8)), 4), "y": round(float(rng.uniform(0, 0.8)), 4),
             "width": 0.125, "height": 0.125,
             "score": round(float(rng.uniform(0.5, 1.0)), 4)}
            for i in range(count)
        ]
        f1 = 1.0 if t == p else round(float(rng.uniform(0.3, 0.8)), 4)
        out.append({"sampleId": int(s), "startMs": 0.0, "endMs": 0.0,
                    "label": classes[t], "prediction": classes[p],
                    "predictionCorrect": bool(t == p), "f1Score": f1, "boundingBoxes": boxes})
    return out


def gmm_document(world: World, project: ProjectSpec, block: BlockSpec, state: BlockState) -> Doc:
    rng = _rng(world, project, block, state.version)
    components, dims = 6, 3
    weights = rng.dirichlet(np.ones(components))
    covariances = []
    for _ in range(components):
        a = rng.normal(0, 0.4, (dims, dims))
        covariances.append(np.round(a @ a.T + np.eye(dims) * 0.1, 6).tolist())
    return {
        "success": True,
        "means": np.round(rng.normal(0, 1.2, (components, dims)), 6).tolist(),
        "covariances": covariances,
        "weights": np.round(weights, 6).tolist(),
    }


def _range(minimum: float | None = None, maximum: float | None = None) -> Doc:
    return {k: v for k, v in (("minimum", minimum), ("maximum", maximum)) if v is not None}


def target_constraints_document(world: World, project: ProjectSpec) -> Doc:
    """GET /api/{projectId}/target-constraints. The three kinds of project cycle: targets and
    budgets; a target but no budget; no targets and no budgets at all."""
    kind = (project.id - 100_001) % 3
    by_mcu = {t.mcu: t for t in TARGETS}
    selected = by_mcu[project.default_target]
    devices: list[Doc] = []
    budgets: list[Doc] = []
    if kind in (0, 1):
        devices.append({
            "name": selected.name,
            "board": f"{selected.mcu}-devkit",
            "latencyDevice": selected.mcu,
            "processors": [
                {"part": selected.mcu.upper(), "format": "low-end MCU", "architecture": "Cortex-M",
                 "fpu": True, "clockRateMhz": _range(64, 80 if kind == 0 else 128),
                 "memory": {"ram": {"fastBytes": _range(65_536, 131_072),
                                    "slowBytes": _range(maximum=262_144)},
                            "rom": {"fastBytes": _range(1_048_576, 1_048_576)}}},
                {"part": "coprocessor", "clockRateMhz": _range(8, 8),  # ignored: the first counts
                 "memory": {"ram": {"fastBytes": _range(1, 1)}}},
            ],
        })
    if kind == 0:
        other = by_mcu["cortex-m7-216mhz"]
        devices.append({"name": other.name, "latencyDevice": other.mcu,
                        "processors": [{"clockRateMhz": _range(216, 216)}]})
        budgets.append({"latencyPerInferenceMs": _range(maximum=1.0),
                        "energyPerInferenceJoules": _range(maximum=0.005),
                        "memoryOverhead": {"ram": {"fastBytes": _range(maximum=6_000),
                                                   "slowBytes": _range(maximum=2_192)},
                                           "rom": {"fastBytes": _range(maximum=32_768)}}})
        budgets.append({"latencyPerInferenceMs": _range(maximum=100.0)})
    return {"success": True,
            "targetConstraints": {"selectedTargetBasedOn": "user-configured",
                                  "targetDevices": devices, "applicationBudgets": budgets}}
