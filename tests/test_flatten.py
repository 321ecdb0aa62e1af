"""Flattening: every field of the metadata into the contract's tables, with hand-written
expectations, the drift seen in practice, clear rejections, and a property test on documents
shaped by the official models."""

from __future__ import annotations

import copy
import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ei_assets.ingest.flatten import DocumentError, flatten
from ei_assets.schema import TABLES
from ei_assets.snapshot import snapshot_id
from tests import docs
from tests.oracle import validate

FETCHED = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def run(bodies: dict[str, Any], block_type: str = "keras") -> dict[str, pa.Table]:
    encoded = {k: v if isinstance(v, bytes) else docs.encode(v) for k, v in bodies.items()}
    snapshot = docs.snapshot_of(encoded, block_type, fetched_at=FETCHED)
    parts: dict[str, list[pa.Table]] = {}
    for name, table in flatten(snapshot, encoded):
        assert table.schema.equals(TABLES[name].arrow_schema), name
        parts.setdefault(name, []).append(table)
    return {name: pa.concat_tables(tables) for name, tables in parts.items()}


def rows(tables: dict[str, pa.Table], name: str) -> list[dict[str, Any]]:
    return tables[name].to_pylist() if name in tables else []


def test_classifier_document_every_table_by_hand() -> None:
    doc = docs.keras_doc()
    doc["modelValidationMetrics"][1]["onDevicePerformance"] = [
        docs.perf("cortex-m4f-80mhz", default=True, latency=4, ram=800, rom=1500, eon_ro=True,
                  custom=[{"name": "Energy", "value": "0.1 mJ"}]),
        docs.perf("synaptics-ka10000", has=False, latency=0, ram=0, rom=0, error="not supported"),
    ]
    validate("keras", doc)
    t = run({"keras": doc})

    (snap,) = rows(t, "snapshots")
    assert snap["model_created_at"] == datetime(2026, 10, 1, 9, 30, tzinfo=UTC)
    assert snap["fetched_at"] == FETCHED
    assert snap["available_model_types"] == ["float32", "int8"]
    assert snap["recommended_model_type"] == "int8" and snap["mode"] == "classification"
    assert snap["class_names"] == ["idle", "wave"] and snap["axes"] is None
    assert (snap["project_id"], snap["learn_id"], snap["block_type"]) == (7, 3, "keras")

    mm = {r["model_type"]: r for r in rows(t, "model_metrics")}
    assert mm["int8"]["loss"] == 0.25 and mm["int8"]["n_predictions"] == 2
    assert mm["int8"]["profiling_pending"] is False and mm["int8"]["profiling_job_id"] is None

    perf = [(r["model_type"], r["mcu"], r["engine"], r["ram_bytes"], r["latency_ms"])
            for r in rows(t, "on_device_performance")]
    assert perf == [
        ("float32", "cortex-m4f-80mhz", "tflite", 1000, 10.0),
        ("float32", "cortex-m4f-80mhz", "eon", 800, 10.0),
        ("int8", "cortex-m4f-80mhz", "tflite", 800, 4.0),
        ("int8", "cortex-m4f-80mhz", "eon", 600, 4.0),
        ("int8", "cortex-m4f-80mhz", "eon_ram_optimized", 400, 4.0),
        # no performance: the zeros Studio sends mean unknown, so NULL; the error is kept
        ("int8", "synaptics-ka10000", "tflite", None, None),
        ("int8", "synaptics-ka10000", "eon", None, None),
    ]
    unsupported = [r for r in rows(t, "on_device_performance") if r["mcu"] == "synaptics-ka10000"]
    assert all(r["profiling_error"] == "not supported" and r["has_performance"] is False
               for r in unsupported)

    assert rows(t, "custom_metrics") == [{
        "snapshot_id": snap["snapshot_id"], "project_id": 7, "learn_id": 3, "model_type": "int8",
        "mcu": "cortex-m4f-80mhz", "name": "Energy", "value": "0.1 mJ"}]
    report = {(r["model_type"], r["class"]): r for r in rows(t, "classification_report")}
    assert report[("float32", "idle")]["recall"] == 0.75
    assert report[("float32", "idle")]["f1_score"] == 0.857
    assert report[("float32", "weighted avg")]["support"] == 8
    assert report[("float32", "accuracy")]["f1_score"] == 0.875
    assert report[("float32", "accuracy")]["precision"] is None
    cells = [(r["actual_index"], r["predicted_index"], r["count"])
             for r in rows(t, "confusion_matrix") if r["model_type"] == "int8"]
    assert cells == [(0, 0, 3), (0, 1, 1), (1, 0, 0), (1, 1, 4)]
    (threshold,) = rows(t, "thresholds")
    assert threshold["value_number"] == 0.6 and threshold["key"] == "minConfidenceRating"
    extra = rows(t, "additional_metrics")
    assert [(r["name"], r["value"], r["full_precision_value"]) for r in extra] == [
        ("F1", "0.87", 0.8712)] * 2

    preds = [(r["model_type"], r["sample_id"], r["start_ms"], r["end_ms"], r["label"],
              r["prediction"], r["prediction_correct"]) for r in rows(t, "predictions")]
    assert preds == [
        ("float32", 1, 0.0, 1000.0, "idle", "idle", True),
        ("float32", 1, 500.0, 1500.0, "wave", "wave", True),
        ("int8", 1, 0.0, 1000.0, "idle", "idle", True),
        ("int8", 1, 500.0, 1500.0, "wave", "idle", False),
    ]
    assert all(r["n_bounding_boxes"] is None and r["anomaly_score_max"] is None
               for r in rows(t, "predictions"))
    assert "anomaly_scores" not in t and "bounding_boxes" not in t


def test_anomaly_and_gmm_documents() -> None:
    doc = docs.anomaly_doc()
    validate("anomaly", doc)
    validate("gmm", docs.gmm_doc())
    t = run({"anomaly": doc, "gmm": docs.gmm_doc()}, "anomaly-gmm")
    (snap,) = rows(t, "snapshots")
    assert snap["axes"] == [0, 11, 22] and snap["scale"] == [1.5, 2.0, 0.5]
    assert snap["mean"] == [0.1, -0.2, 0.3] and snap["default_minimum_confidence_rating"] == 0.3
    assert [(r["cluster_index"], r["center"], r["max_error"]) for r in rows(t, "clusters")] == [
        (0, [0.1, 0.2, 0.3], 0.4), (1, [1.0, 1.1, 1.2], 0.2)]
    components = rows(t, "gmm_components")
    assert [(c["component_index"], c["weight"], c["mean"]) for c in components] == [
        (0, 0.25, [0.0, 1.0]), (1, 0.75, [2.0, 3.0])]
    assert components[1]["covariance"] == [[2.0, 0.0], [0.0, 2.0]]
    assert rows(t, "model_metrics") == [] and rows(t, "predictions") == []


# ---- Studio's real shapes (contract section 5), each with values written out by hand -----------


def test_a_report_keyed_by_class_index_with_classes_left_out() -> None:
    report = {"3": {"precision": 0.5, "recall": 1.0, "f1-score": 0.6667, "support": 2},
              "4": {"precision": 1.0, "recall": 0.5, "f1-score": 0.6667, "support": 2},
              "accuracy": 0.75,
              "macro avg": {"precision": 0.75, "recall": 0.75, "f1-score": 0.6667, "support": 4}}
    doc = docs.keras_doc([docs.metrics("float32", [], report=report, confusionMatrix=[[2, 0], [1, 1]])],
                         classNames=["go", "stop", "left", "helloworld", "noise"])
    validate("keras", doc)
    t = run({"keras": doc})
    assert [(r["class"], r["precision"], r["recall"], r["f1_score"], r["support"])
            for r in rows(t, "classification_report")] == [
        ("3", 0.5, 1.0, 0.6667, 2.0), ("4", 1.0, 0.5, 0.6667, 2.0), ("accuracy", None, None, 0.75, None),
        ("macro avg", 0.75, 0.75, 0.6667, 4.0)]
    (snap,) = rows(t, "snapshots")
    assert snap["class_names"] == ["go", "stop", "left", "helloworld", "noise"]


def test_object_detection_without_matrix_or_report_accuracy_the_map() -> None:
    doc = docs.keras_doc([docs.metrics("float32", [docs.window(5, 0, "bolt", "bolt", f1Score=1.0)],
                                       accuracy=0.4213, confusionMatrix=[], report={})],
                         mode="object-detection")
    validate("keras", doc)
    t = run({"keras": doc}, "keras-object-detection")
    (m,) = rows(t, "model_metrics")
    assert (m["accuracy"], m["n_predictions"]) == (0.4213, 1)
    assert rows(t, "confusion_matrix") == [] and rows(t, "classification_report") == []


def test_regression_accuracy_zero_loss_the_mse_values_as_text() -> None:
    windows = [{"sampleId": 1, "startMs": 0, "endMs": 1000, "label": "1.50", "prediction": "1.70"},
               {"sampleId": 2, "startMs": 0, "endMs": 1000, "label": "3.00", "prediction": "2.90"}]
    mse = ((1.7 - 1.5) ** 2 + (2.9 - 3.0) ** 2) / 2  # 0.025
    doc = docs.keras_doc([docs.metrics("float32", windows, accuracy=0, loss=mse, confusionMatrix=[],
                                       report={})], mode="regression", classNames=[])
    validate("keras", doc)
    t = run({"keras": doc}, "keras-regression")
    (m,) = rows(t, "model_metrics")
    assert m["accuracy"] == 0.0 and m["loss"] == pytest.approx(0.025)
    assert [(r["label"], r["prediction"], r["prediction_correct"]) for r in rows(t, "predictions")] == [
        ("1.50", "1.70", None), ("3.00", "2.90", None)]


def test_a_model_too_large_for_its_mcu_has_no_ram_figure() -> None:
    too_large = docs.perf("cortex-m4f-80mhz", default=True, latency=812)
    too_large["tflite"] = {"ramRequired": 0, "romRequired": 402_112, "arenaSize": 0, "modelSize": 402_112}
    too_large["eon"] = {"ramRequired": 0, "romRequired": 402_112, "arenaSize": 0, "modelSize": 402_112}
    doc = docs.keras_doc([docs.metrics("float32", [], onDevicePerformance=[too_large])])
    validate("keras", doc)
    t = run({"keras": doc})
    assert [(r["engine"], r["latency_ms"], r["ram_bytes"], r["rom_bytes"], r["arena_bytes"], r["model_bytes"])
            for r in rows(t, "on_device_performance")] == [
        ("tflite", 812.0, None, 402_112, None, 402_112), ("eon", 812.0, None, 402_112, None, 402_112)]


def test_a_gmm_training_date_without_a_time_zone_is_utc() -> None:
    doc = docs.anomaly_doc(created="2026-10-02T10:00:00.000")
    validate("anomaly", doc)
    (snap,) = rows(run({"anomaly": doc, "gmm": docs.gmm_doc()}, "anomaly-gmm"), "snapshots")
    assert snap["model_created_at"] == datetime(2026, 10, 2, 10, 0, tzinfo=UTC)


def test_an_error_sent_as_http_200_is_named() -> None:
    with pytest.raises(DocumentError, match=r"at \$\.success: API reported failure: Job is running"):
        run({"keras": {"success": False, "error": "Job is running"}})


@pytest.mark.parametrize("axes", ["[ 0, 11, 22 ]", "`[ 0, 11, 22 ]`", " [0,11,22] "])
def test_axes_as_a_string(axes: str) -> None:
    (snap,) = rows(run({"anomaly": docs.anomaly_doc(axes=axes)}, "anomaly"), "snapshots")
    assert snap["axes"] == [0, 11, 22]


def test_threshold_value_as_number_or_string() -> None:
    doc = docs.keras_doc(thresholds=[
        {"key": "a", "description": "d", "helpText": "h", "value": 0.5, "suggestedValue": 0.4,
         "suggestedValueText": "0.4"},
        {"key": "b", "description": "d", "helpText": "h", "value": "standard"},
        {"key": "c", "description": "d", "helpText": "h", "value": "0.75"},
    ])
    validate("keras", doc)
    got = {r["key"]: (r["value_number"], r["value_text"], r["suggested_value"])
           for r in rows(run({"keras": doc}), "thresholds")}
    assert got == {"a": (0.5, "0.5", 0.4), "b": (None, "standard", None), "c": (0.75, "0.75", None)}


def test_absent_and_empty_parts_are_accepted() -> None:
    doc = docs.anomaly_doc()
    t = run({"anomaly": doc}, "anomaly")  # no modelValidationMetrics at all
    assert rows(t, "model_metrics") == [] and len(rows(t, "snapshots")) == 1
    empty = docs.keras_doc([docs.metrics("float32", [], confusionMatrix=[], report={})])
    validate("keras", empty)
    t = run({"keras": empty})
    assert rows(t, "predictions") == [] and rows(t, "confusion_matrix") == []
    assert rows(t, "classification_report") == []
    assert rows(t, "model_metrics")[0]["n_predictions"] == 0


def test_missing_or_null_optional_fields_unknown_fields_new_model_types_non_ascii() -> None:
    prediction = {"sampleId": 9, "startMs": 0, "endMs": 1000, "prediction": "Größe ✓",
                  "label": None, "somethingNew": {"x": 1}}
    row = {"type": "int4", "loss": 0.3, "confusionMatrix": [], "report": {},
           "onDevicePerformance": [{"mcu": "m", "name": "M", "isDefault": True, "latency": 3,
                                    "tflite": {"ramRequired": 1, "romRequired": 2, "arenaSize": 1,
                                               "modelSize": 1},
                                    "eon": {"ramRequired": 1, "romRequired": 2, "arenaSize": 1,
                                            "modelSize": 1},
                                    "hasPerformance": True, "futureField": [1, 2]}],
           "predictions": [prediction], "visualization": "none", "isSupportedOnMcu": True,
           "additionalMetrics": [], "accuracy": None, "mcuSupportError": None}
    doc = docs.keras_doc([row], availableModelTypes=["int4"], recommendedModelType="int4",
                         brandNewTopLevel={"nested": True}, thresholds=[])
    t = run({"keras": doc})
    (metric,) = rows(t, "model_metrics")
    assert metric["model_type"] == "int4" and metric["accuracy"] is None
    (pred,) = rows(t, "predictions")
    assert pred["prediction"] == "Größe ✓" and pred["label"] is None
    assert rows(t, "snapshots")[0]["available_model_types"] == ["int4"]


def test_visual_anomaly_grids() -> None:
    grid_a = [[0.5, 1.5], [2.5, 3.5]]
    grid_b = [[1.0, 0.0], [0.0, 0.0]]
    doc = docs.keras_doc([docs.metrics("float32", [
        docs.window(1, 0, "no anomaly", "no anomaly", anomalyScores=grid_a),
        docs.window(2, 0, "anomaly", "no anomaly", anomalyScores=grid_b),
        docs.window(3, 0, "anomaly", "anomaly"),
    ], confusionMatrix=[], report={})], mode="visual-anomaly")
    validate("keras", doc)
    t = run({"keras": doc}, "keras-visual-anomaly")
    stats = [(r["sample_id"], r["anomaly_score_max"], r["anomaly_score_mean"])
             for r in rows(t, "predictions")]
    assert stats == [(1, 3.5, 2.0), (2, 1.0, 0.25), (3, None, None)]
    grids = rows(t, "anomaly_scores")
    assert [(g["sample_id"], g["grid_rows"], g["grid_cols"], g["scores"]) for g in grids] == [
        (1, 2, 2, grid_a), (2, 2, 2, grid_b)]


def test_object_detection_boxes_and_f1() -> None:
    box = {"label": "bolt", "x": 0.1, "y": 0.2, "width": 0.3, "height": 0.4, "score": 0.9}
    doc = docs.keras_doc([docs.metrics("int8", [
        docs.window(5, 0, "bolt", "bolt", f1Score=1.0, boundingBoxes=[box, box | {"label": "nut"}]),
        docs.window(6, 0, "nut", "", f1Score=0.0, boundingBoxes=[]),
    ])], mode="object-detection")
    validate("keras", doc)
    t = run({"keras": doc}, "keras-object-detection")
    assert [(r["sample_id"], r["f1_score"], r["n_bounding_boxes"]) for r in rows(t, "predictions")] == [
        (5, 1.0, 2), (6, 0.0, 0)]
    boxes = [(b["sample_id"], b["box_index"], b["label"], b["x"], b["score"])
             for b in rows(t, "bounding_boxes")]
    assert boxes == [(5, 0, "bolt", 0.1, 0.9), (5, 1, "nut", 0.1, 0.9)]


def test_predictions_span_several_chunks_with_exact_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    import ei_assets.ingest.flatten as flatten_module

    monkeypatch.setattr(flatten_module, "CHUNK_BYTES", 300)
    monkeypatch.setattr(flatten_module, "BLOCK_BYTES", 256)
    windows = [docs.window(i, 0, "idle", "idle") for i in range(40)]
    t = run({"keras": docs.keras_doc([docs.metrics("float32", windows)])})
    assert [r["sample_id"] for r in rows(t, "predictions")] == list(range(40))
    windows[27]["sampleId"] = "twenty-seven"
    with pytest.raises(DocumentError) as raised:
        run({"keras": docs.keras_doc([docs.metrics("float32", windows)])})
    assert raised.value.path == "$.modelValidationMetrics[0].predictions[27].sampleId"


@pytest.mark.parametrize(
    ("mutate", "path"),
    [
        (lambda d: d.update(success=False, error="Model not trained"), "$.success"),
        (lambda d: d.pop("created"), "$.created"),
        (lambda d: d.update(created="yesterday"), "$.created"),
        (lambda d: d["modelValidationMetrics"][1].update(type=8), "$.modelValidationMetrics[1].type"),
        (lambda d: d["modelValidationMetrics"][0]["onDevicePerformance"][0].pop("mcu"),
         "$.modelValidationMetrics[0].onDevicePerformance[0]"),
        (lambda d: d["modelValidationMetrics"][1]["predictions"][1].pop("prediction"),
         "$.modelValidationMetrics[1].predictions[1].prediction"),
        (lambda d: d["modelValidationMetrics"][0]["predictions"][0].update(startMs="0"),
         "$.modelValidationMetrics[0].predictions[0].startMs"),
        (lambda d: d.update(thresholds=[{"key": "k", "value": [1]}]), "$.thresholds[0].value"),
        (lambda d: d.update(axes="zero, eleven"), "$.axes"),
        (lambda d: d.update(modelValidationMetrics={"float32": {}}), "$.modelValidationMetrics"),
    ],
)
def test_unreadable_documents_are_rejected_naming_the_path(mutate: Any, path: str) -> None:
    doc = docs.keras_doc()
    mutate(doc)
    with pytest.raises(DocumentError) as raised:
        run({"keras": doc})
    assert raised.value.path == path, str(raised.value)
    assert path in str(raised.value)


def test_gmm_shapes_must_agree() -> None:
    gmm = docs.gmm_doc() | {"weights": [1.0]}
    with pytest.raises(DocumentError, match="different numbers of components"):
        run({"anomaly": docs.anomaly_doc(), "gmm": gmm}, "anomaly-gmm")


def test_snapshot_id_is_the_same_for_the_same_json_whatever_its_whitespace() -> None:
    doc = docs.keras_doc()
    compact = docs.encode(doc)
    pretty = msgspec.json.format(compact, indent=4)
    spaced = compact.replace(b'":', b'" :  ').replace(b",", b" ,\n\t")
    assert snapshot_id({"keras": compact}) == snapshot_id({"keras": pretty}) == snapshot_id({"keras": spaced})
    assert snapshot_id({"keras": compact}) == hashlib.sha256(compact).hexdigest()[:32]
    changed = docs.variant(doc, created="2026-10-01T09:31:00Z")
    assert snapshot_id({"keras": docs.encode(changed)}) != snapshot_id({"keras": compact})
    inside_a_string = docs.variant(doc, mode="classification ")  # whitespace that is data
    assert snapshot_id({"keras": docs.encode(inside_a_string)}) != snapshot_id({"keras": compact})


def test_a_two_endpoint_snapshot_id_names_each_body() -> None:
    anomaly, gmm = docs.encode(docs.anomaly_doc()), docs.encode(docs.gmm_doc())
    expected = hashlib.sha256(b"anomaly\0" + anomaly + b"\0gmm\0" + gmm + b"\0").hexdigest()[:32]
    assert snapshot_id({"anomaly": anomaly, "gmm": gmm}) == expected
    assert snapshot_id({"gmm": gmm, "anomaly": msgspec.json.format(anomaly, indent=2)}) == expected
    assert snapshot_id({"anomaly": gmm, "gmm": anomaly}) != expected  # the bodies swapped


def test_a_body_that_is_not_json_has_no_id() -> None:
    with pytest.raises(msgspec.DecodeError):
        snapshot_id({"keras": b'{"success": true, "created": '})


# ---- property test: documents shaped by the official models ----------------------------------

names = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12)
floats = st.floats(allow_nan=False, allow_infinity=False, width=32)
engine = st.fixed_dictionaries({"ramRequired": st.integers(0, 10**6), "romRequired": st.integers(0, 10**6),
                                "arenaSize": st.integers(0, 10**6), "modelSize": st.integers(0, 10**6)})


@st.composite
def performance(draw: st.DrawFn) -> dict[str, Any]:
    row = {"mcu": draw(names), "name": draw(names), "isDefault": draw(st.booleans()),
           "latency": draw(floats), "tflite": draw(engine), "eon": draw(engine),
           "hasPerformance": draw(st.booleans())}
    if draw(st.booleans()):
        row["eon_ram_optimized"] = draw(engine)
    return row


@st.composite
def prediction(draw: st.DrawFn) -> dict[str, Any]:
    row: dict[str, Any] = {"sampleId": draw(st.integers(0, 2**40)), "startMs": draw(floats),
                           "endMs": draw(floats), "prediction": draw(names)}
    if draw(st.booleans()):
        row["label"] = draw(names)
    kind = draw(st.sampled_from(["plain", "grid", "boxes"]))
    if kind == "grid":
        n = draw(st.integers(1, 4))
        row["anomalyScores"] = draw(st.lists(st.lists(floats, min_size=n, max_size=n),
                                             min_size=n, max_size=n))
    elif kind == "boxes":
        row["f1Score"] = draw(floats)
        row["boundingBoxes"] = draw(st.lists(st.fixed_dictionaries(
            {"label": names, "x": floats, "y": floats, "width": floats, "height": floats,
             "score": floats}), max_size=3))
    return row


@st.composite
def keras_document(draw: st.DrawFn) -> dict[str, Any]:
    types = draw(st.lists(st.sampled_from(["float32", "int8", "akida", "requiresRetrain"]),
                          min_size=0, max_size=3, unique=True))
    rows_ = [
        {"type": t, "loss": draw(floats), "confusionMatrix": [], "report": {},
         "onDevicePerformance": draw(st.lists(performance(), max_size=3)),
         "predictions": draw(st.lists(prediction(), max_size=6)),
         "visualization": "none", "isSupportedOnMcu": draw(st.booleans()),
         "additionalMetrics": []}
        for t in types
    ]
    return docs.keras_doc(rows_, availableModelTypes=types,
                          recommendedModelType=types[0] if types else "float32")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(keras_document())
def test_row_counts_follow_the_document(doc: dict[str, Any]) -> None:
    validate("keras", doc)
    t = run({"keras": copy.deepcopy(doc)})
    metrics_rows = doc["modelValidationMetrics"]
    predictions = [p for m in metrics_rows for p in m["predictions"]]
    assert len(rows(t, "model_metrics")) == len(metrics_rows)
    assert len(rows(t, "predictions")) == len(predictions)
    engines = sum(1 + ("eon_ram_optimized" in p) + 1
                  for m in metrics_rows for p in m["onDevicePerformance"])
    assert len(rows(t, "on_device_performance")) == engines
    assert len(rows(t, "bounding_boxes")) == sum(len(p.get("boundingBoxes", [])) for p in predictions)
    grids = [p["anomalyScores"] for p in predictions if "anomalyScores" in p]
    assert len(rows(t, "anomaly_scores")) == len(grids)
    cells = sum(r["grid_rows"] * r["grid_cols"] for r in rows(t, "anomaly_scores"))
    assert cells == sum(len(g) * len(g[0]) for g in grids)
