"""One block's metadata response(s) -> the contract's tables, as Arrow record batches.

Decoding is split by size. msgspec decodes only the fields declared below and skips the rest
without allocating. Prediction arrays are kept as zero-copy `msgspec.Raw` slices of the body, and
pyarrow's JSON reader parses them in chunks of about CHUNK_BYTES straight into columns. So a 30 MB
response never becomes millions of Python floats, and the hot path has no per-row Python.

Drift seen in practice is accepted: `axes` as a list or a string ("[ 0, 11, 22 ]", even in
backticks), threshold values as numbers or strings, missing or null optional fields, unknown
fields, new model types. A document that cannot be read raises DocumentError naming the JSON path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from ei_assets.chunks import byte_ranges, sizes_of
from ei_assets.errors import EiAssetsError
from ei_assets.schema import PREDICTION_PARSE_SCHEMA, REQUIRED_PREDICTION_FIELDS, TABLES
from ei_assets.snapshot import Snapshot
from ei_assets.studio.blocks import Body

CHUNK_BYTES = 2 << 20  # predictions joined for one parse: bounds the extra copy
T = TypeVar("T")
BLOCK_BYTES = 1 << 19  # pyarrow parses blocks of this size: bounds its buffers
# One thread per parse: a refresh stores a block per core already, and pyarrow's own threads
# on top of that cost more CPU than they save wall time.
PARSE_THREADS = False
ENGINES = ("tflite", "eon", "eon_ram_optimized")  # the API's field names, and `engine` values


class DocumentError(EiAssetsError, ValueError):
    """A response that cannot be read; `path` is the JSON path of the problem."""

    def __init__(self, endpoint: str, path: str, problem: str) -> None:
        self.endpoint = endpoint
        self.path = path
        super().__init__(f"{endpoint} response, at {path}: {problem}")


# ---- what we read of the documents (everything else is ignored here, kept in the raw archive) ---


class _Engine(msgspec.Struct, rename="camel"):
    ram_required: int | None = None
    rom_required: int | None = None
    arena_size: int | None = None
    model_size: int | None = None


class _CustomMetric(msgspec.Struct):
    name: str | None = None
    value: str | float | None = None


class _Performance(msgspec.Struct, rename="camel"):
    mcu: str
    name: str | None = None
    is_default: bool | None = None
    latency: float | None = None
    tflite: _Engine | None = None
    eon: _Engine | None = None
    eon_ram_optimized: _Engine | None = msgspec.field(default=None, name="eon_ram_optimized")
    custom_metrics: list[_CustomMetric] | None = None
    has_performance: bool | None = None
    profiling_error: str | None = None


class _AdditionalMetric(msgspec.Struct, rename="camel"):
    name: str | None = None
    value: str | float | None = None
    full_precision_value: float | None = None
    tooltip_text: str | None = None
    link: str | None = None


class _Metrics(msgspec.Struct, rename="camel"):
    type: str
    loss: float | None = None
    accuracy: float | None = None
    confusion_matrix: list[list[float]] | None = None
    report: dict[str, Any] | None = None
    on_device_performance: list[_Performance] | None = None
    predictions: list[msgspec.Raw] | None = None
    visualization: str | None = None
    is_supported_on_mcu: bool | None = None
    mcu_support_error: str | None = None
    profiling_job_id: int | None = None
    profiling_job_failed: bool | None = None
    additional_metrics: list[_AdditionalMetric] | None = None


class _Threshold(msgspec.Struct, rename="camel"):
    key: str
    description: str | None = None
    help_text: str | None = None
    value: float | str | None = None
    suggested_value: float | None = None
    suggested_value_text: str | None = None


class _Cluster(msgspec.Struct, rename="camel"):
    center: list[float]
    max_error: float | None = None


class _Metadata(msgspec.Struct, rename="camel"):
    success: bool | None = None
    error: str | None = None
    created: datetime | None = None
    scale: list[float] | None = None
    mean: list[float] | None = None
    clusters: list[_Cluster] | None = None
    axes: list[int] | str | None = None
    default_minimum_confidence_rating: float | None = None
    thresholds: list[_Threshold] | None = None
    available_model_types: list[str] | None = None
    recommended_model_type: str | None = None
    model_validation_metrics: list[_Metrics] | None = None
    has_trained_model: bool | None = None
    mode: str | None = None
    class_names: list[str] | None = None


class _Gmm(msgspec.Struct):
    means: list[list[float]]
    covariances: list[list[list[float]]]
    weights: list[float]
    success: bool | None = None
    error: str | None = None


# Decoders are built once, at import: msgspec then never builds a type's decoding plan lazily
# while several fetch threads decode at once.
_decode_metadata = msgspec.json.Decoder(_Metadata).decode
_decode_gmm = msgspec.json.Decoder(_Gmm).decode
_decode_axes = msgspec.json.Decoder(list[int]).decode


Batch = tuple[str, pa.Table]


# flatten yields these first, so a caller that needs only them stops before the predictions
SUMMARY_TABLES = ("model_metrics", "on_device_performance")


def flatten(snapshot: Snapshot, bodies: Mapping[str, Body]) -> Iterator[Batch]:
    """Yield (table name, rows) for every table; predictions come in several chunks.

    `bodies` maps each of the snapshot's endpoints to its body, primary ("anomaly", "keras") first.
    Callers must treat the output as all-or-nothing: a DocumentError may come after some batches.
    """
    primary = next(name for name in bodies if name != "gmm")
    doc = _decode(primary, bodies[primary], _decode_metadata)
    if doc.success is False:
        raise DocumentError(primary, "$.success", f"API reported failure: {doc.error or '(no text)'}")
    if doc.created is None:
        raise DocumentError(primary, "$.created", "the training date is missing")
    gmm = _decode("gmm", bodies["gmm"], _decode_gmm) if "gmm" in bodies else None
    keys = _Keys(snapshot)
    metrics = doc.model_validation_metrics or []

    yield "model_metrics", _model_metrics(keys, metrics)
    yield "on_device_performance", _on_device_performance(keys, metrics)
    yield "custom_metrics", _custom_metrics(keys, metrics)
    yield "additional_metrics", _additional_metrics(keys, metrics)
    yield "confusion_matrix", _confusion_matrix(keys, metrics)
    yield "classification_report", _classification_report(keys, metrics, primary)
    yield "thresholds", _thresholds(keys, doc.thresholds or [])
    yield "clusters", _clusters(keys, doc.clusters or [])
    if gmm is not None:
        yield "gmm_components", _gmm_components(keys, gmm)
    has_newlines = b"\n" in bodies[primary]
    for index, entry in enumerate(metrics):
        yield from _predictions(keys, entry, f"$.modelValidationMetrics[{index}].predictions",
                                primary, has_newlines)
    yield "snapshots", _snapshot(snapshot, doc, primary)


def _decode(endpoint: str, body: Body, decode: Callable[[Body], T]) -> T:
    try:
        return decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        path = message.rsplit(" - at `", 1)[1].rstrip("`") if " - at `" in message else "$"
        raise DocumentError(endpoint, path, message.split(" - at `")[0]) from None
    except msgspec.DecodeError as exc:
        raise DocumentError(endpoint, "$", f"not valid JSON ({exc})") from None
    except RecursionError:
        raise DocumentError(endpoint, "$", "JSON nested too deeply to read") from None


class _Keys:
    """The key columns every row of a snapshot carries."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot_id = snapshot.snapshot_id
        self.project_id = int(snapshot.project_id)
        self.learn_id = int(snapshot.learn_id)

    def columns(self, n: int, model_types: list[str] | pa.Array[Any] | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "snapshot_id": _constant(self.snapshot_id, pa.string(), n),
            "project_id": _constant(self.project_id, pa.int64(), n),
            "learn_id": _constant(self.learn_id, pa.int64(), n),
        }
        if model_types is not None:
            out["model_type"] = model_types
        return out


def _constant(value: Any, type_: pa.DataType, n: int) -> pa.Array[Any]:
    column: pa.Array[Any] = pa.repeat(pa.scalar(value, type_), n)  # type: ignore[call-overload]  # stubs lack the Scalar overload
    return column


def _table(name: str, columns: Mapping[str, Any]) -> pa.Table:
    """A table of the declared schema; columns are Arrow arrays or Python lists."""
    schema = TABLES[name].arrow_schema
    arrays = []
    for field in schema:
        value = columns[field.name]
        if isinstance(value, pa.Array | pa.ChunkedArray):
            arrays.append(value.cast(field.type))
        else:
            arrays.append(pa.array(value, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def _rows(name: str, keys: _Keys, rows: list[dict[str, Any]], per_model_type: bool = True) -> pa.Table:
    """A small table from Python rows (a few per target or class: not a hot path)."""
    schema = TABLES[name].arrow_schema
    columns: dict[str, Any] = keys.columns(len(rows), [r["model_type"] for r in rows]
                                           if per_model_type else None)
    for field in schema:
        if field.name not in columns:
            columns[field.name] = [row.get(field.name) for row in rows]
    return _table(name, columns)


def _model_metrics(keys: _Keys, metrics: list[_Metrics]) -> pa.Table:
    return _rows("model_metrics", keys, [
        {
            "model_type": m.type,
            "loss": m.loss,
            "accuracy": m.accuracy,
            "visualization": m.visualization,
            "is_supported_on_mcu": m.is_supported_on_mcu,
            "mcu_support_error": m.mcu_support_error,
            "profiling_job_id": m.profiling_job_id,
            "profiling_failed": bool(m.profiling_job_failed),
            "profiling_pending": m.profiling_job_id is not None and not m.profiling_job_failed,
            "n_predictions": len(m.predictions) if m.predictions is not None else 0,
        }
        for m in metrics
    ])


def _on_device_performance(keys: _Keys, metrics: list[_Metrics]) -> pa.Table:
    rows = []
    for m in metrics:
        for perf in m.on_device_performance or []:
            measured = perf.has_performance is not False
            for engine in ENGINES:
                figures: _Engine | None = getattr(perf, engine)
                if figures is None:
                    continue
                # a model too large for the target comes with RAM 0 and ROM = its size: the RAM
                # it would need is unknown, not zero
                too_large = figures.ram_required == 0 and (figures.rom_required or 0) > 0
                rows.append({
                    "model_type": m.type,
                    "mcu": perf.mcu,
                    "device_name": perf.name,
                    "is_default": perf.is_default,
                    "has_performance": perf.has_performance,
                    "profiling_error": perf.profiling_error,
                    "engine": engine,
                    # without performance, Studio sends zeros: they mean "unknown", not "free"
                    "latency_ms": perf.latency if measured else None,
                    "ram_bytes": figures.ram_required if measured and not too_large else None,
                    "rom_bytes": figures.rom_required if measured else None,
                    "arena_bytes": figures.arena_size if measured and not too_large else None,
                    "model_bytes": figures.model_size if measured else None,
                })
    return _rows("on_device_performance", keys, rows)


def _custom_metrics(keys: _Keys, metrics: list[_Metrics]) -> pa.Table:
    return _rows("custom_metrics", keys, [
        {"model_type": m.type, "mcu": perf.mcu, "name": cm.name, "value": _text(cm.value)}
        for m in metrics
        for perf in m.on_device_performance or []
        for cm in perf.custom_metrics or []
    ])


def _additional_metrics(keys: _Keys, metrics: list[_Metrics]) -> pa.Table:
    return _rows("additional_metrics", keys, [
        {"model_type": m.type, "name": am.name, "value": _text(am.value),
         "full_precision_value": am.full_precision_value, "tooltip_text": am.tooltip_text,
         "link": am.link}
        for m in metrics
        for am in m.additional_metrics or []
    ])


def _confusion_matrix(keys: _Keys, metrics: list[_Metrics]) -> pa.Table:
    return _rows("confusion_matrix", keys, [
        {"model_type": m.type, "actual_index": i, "predicted_index": j, "count": count}
        for m in metrics
        for i, row in enumerate(m.confusion_matrix or [])
        for j, count in enumerate(row)
    ])


def _classification_report(keys: _Keys, metrics: list[_Metrics], endpoint: str) -> pa.Table:
    rows = []
    for index, m in enumerate(metrics):
        for name, entry in (m.report or {}).items():
            if isinstance(entry, dict):
                rows.append({
                    "model_type": m.type, "class": name,
                    "precision": _number(entry.get("precision")),
                    "recall": _number(entry.get("recall")),
                    "f1_score": _number(entry.get("f1-score", entry.get("f1_score"))),
                    "support": _number(entry.get("support")),
                })
            elif isinstance(entry, int | float) and not isinstance(entry, bool):
                rows.append({"model_type": m.type, "class": name, "f1_score": float(entry)})
            else:
                raise DocumentError(endpoint, f"$.modelValidationMetrics[{index}].report.{name}",
                                    f"expected an object or a number, got {type(entry).__name__}")
    return _rows("classification_report", keys, rows)


def _thresholds(keys: _Keys, thresholds: list[_Threshold]) -> pa.Table:
    return _rows("thresholds", keys, [
        {"key": t.key, "description": t.description, "help_text": t.help_text,
         "value_number": _number(t.value),
         "value_text": _text(t.value), "suggested_value": t.suggested_value,
         "suggested_value_text": t.suggested_value_text}
        for t in thresholds
    ], per_model_type=False)


def _clusters(keys: _Keys, clusters: list[_Cluster]) -> pa.Table:
    return _rows("clusters", keys, [
        {"cluster_index": i, "center": c.center, "max_error": c.max_error}
        for i, c in enumerate(clusters)
    ], per_model_type=False)


def _gmm_components(keys: _Keys, gmm: _Gmm) -> pa.Table:
    n = len(gmm.weights)
    if len(gmm.means) != n or len(gmm.covariances) != n:
        raise DocumentError("gmm", "$", f"weights ({n}), means ({len(gmm.means)}) and covariances "
                            f"({len(gmm.covariances)}) describe different numbers of components")
    return _rows("gmm_components", keys, [
        {"component_index": i, "weight": gmm.weights[i], "mean": gmm.means[i],
         "covariance": gmm.covariances[i]}
        for i in range(n)
    ], per_model_type=False)


def _snapshot(snapshot: Snapshot, doc: _Metadata, endpoint: str) -> pa.Table:
    created = doc.created
    assert created is not None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    keys = _Keys(snapshot)
    return _rows("snapshots", keys, [{
        "block_type": snapshot.block_type,
        "model_created_at": created.astimezone(UTC),
        "fetched_at": snapshot.fetched_at.astimezone(UTC),
        "recommended_model_type": doc.recommended_model_type,
        "available_model_types": doc.available_model_types,
        "has_trained_model": doc.has_trained_model,
        "default_minimum_confidence_rating": doc.default_minimum_confidence_rating,
        "axes": _axes(doc.axes, endpoint),
        "scale": doc.scale,
        "mean": doc.mean,
        "mode": doc.mode,
        "class_names": doc.class_names,
        "raw_path": snapshot.raw_path,
    }], per_model_type=False)


def _axes(axes: list[int] | str | None, endpoint: str) -> list[int] | None:
    if axes is None or isinstance(axes, list):
        return axes
    text = axes.strip().strip("`").strip()
    try:
        return _decode_axes(text)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise DocumentError(endpoint, "$.axes", f"expected a list of axis indexes, got {axes!r}") from None


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return repr(value) if isinstance(value, float) else str(value)


def _number(value: Any) -> float | None:
    """A number, or numeric text such as "0.75"; None for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


# ---- predictions: the hot path, columnar --------------------------------------------------------


def _predictions(
    keys: _Keys, metrics: _Metrics, path: str, endpoint: str, has_newlines: bool
) -> Iterator[Batch]:
    """Parse the prediction objects in groups of about CHUNK_BYTES, each streamed in blocks."""
    raws = metrics.predictions or []
    for start, stop in byte_ranges(sizes_of(raws), CHUNK_BYTES):
        group = raws[start:stop]
        seen = 0
        for rows in _parse_predictions(group, path, start, endpoint, has_newlines):
            _check_required(rows, path, start + seen, endpoint)
            seen += rows.num_rows
            yield from _prediction_tables(keys, metrics.type, rows)
        if seen != len(group):
            raise DocumentError(endpoint, f"{path}[{start}:{stop}]",
                                f"expected {len(group)} prediction objects, read {seen}")


def _parse_predictions(
    group: list[msgspec.Raw], path: str, offset: int, endpoint: str, has_newlines: bool
) -> Iterator[pa.Table]:
    ndjson = b"\n".join(group)  # Raw slices are buffers: joined in C, no per-item Python
    try:
        reader = pajson.open_json(
            pa.BufferReader(ndjson),  # type: ignore[arg-type]  # stubs omit pyarrow's own NativeFile
            read_options=pajson.ReadOptions(use_threads=PARSE_THREADS, block_size=BLOCK_BYTES),
            parse_options=pajson.ParseOptions(
                explicit_schema=PREDICTION_PARSE_SCHEMA,
                unexpected_field_behavior="ignore",
                newlines_in_values=has_newlines,
            ),
        )
        for batch in reader:
            yield pa.Table.from_batches([batch])
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise _locate_prediction_error(group, path, offset, endpoint, str(exc)) from None


def _python_type(arrow: pa.DataType) -> Any:
    """The msgspec type that accepts what pyarrow's JSON reader accepts for an Arrow type."""
    if pa.types.is_list(arrow):
        return list[_python_type(arrow.value_type)]  # type: ignore[misc]  # a type built at run time, for msgspec.defstruct
    if pa.types.is_struct(arrow):
        return dict[str, Any]
    if pa.types.is_integer(arrow):
        return int
    if pa.types.is_floating(arrow):
        return float
    if pa.types.is_boolean(arrow):
        return bool
    return str


# The prediction object as the lake types it, derived from the parse schema; used only to locate
# a parse error (the slow path).
_PredictionCheck = msgspec.defstruct("_PredictionCheck", [
    (f.name, _python_type(f.type)) if f.name in REQUIRED_PREDICTION_FIELDS
    else (f.name, _python_type(f.type) | None, None)
    for f in sorted(PREDICTION_PARSE_SCHEMA, key=lambda f: f.name not in REQUIRED_PREDICTION_FIELDS)
])
_check_prediction = msgspec.json.Decoder(_PredictionCheck).decode


def _locate_prediction_error(
    group: list[msgspec.Raw], path: str, offset: int, endpoint: str, arrow_message: str
) -> DocumentError:
    """The slow path, taken only for a broken document: find the first prediction that fails."""
    for index, raw in enumerate(group):
        try:
            _check_prediction(raw)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            message = str(exc)
            inner = message.rsplit(" - at `$", 1)[1].rstrip("`") if " - at `$" in message else ""
            return DocumentError(endpoint, f"{path}[{offset + index}]{inner}",
                                 message.split(" - at `")[0])
    return DocumentError(endpoint, f"{path}[{offset}:{offset + len(group)}]",
                         arrow_message.removeprefix("JSON parse error: "))


def _check_required(rows: pa.Table, path: str, offset: int, endpoint: str) -> None:
    for name in REQUIRED_PREDICTION_FIELDS:
        column = rows.column(name)
        if column.null_count:
            first = pc.index(pc.is_null(column), True).as_py()
            raise DocumentError(endpoint, f"{path}[{offset + first}].{name}", "required field missing")


def _prediction_tables(keys: _Keys, model_type: str, rows: pa.Table) -> Iterator[Batch]:
    n = rows.num_rows
    key_columns = keys.columns(n, _constant(model_type, pa.string(), n))
    window = {"sample_id": rows["sampleId"], "start_ms": rows["startMs"], "end_ms": rows["endMs"]}
    # the parse schema makes these a list<list<float>> and a list<struct> column
    grids = cast("pa.ListArray[Any]", rows["anomalyScores"].combine_chunks())
    boxes = cast("pa.ListArray[Any]", rows["boundingBoxes"].combine_chunks())
    score_max, score_mean = _grid_max_mean(grids)
    yield "predictions", _table("predictions", key_columns | window | {
        "label": rows["label"],
        "prediction": rows["prediction"],
        "prediction_correct": rows["predictionCorrect"],
        "expected_anomaly_outcome": rows["expectedAnomalyOutcome"],
        "f1_score": rows["f1Score"],
        "anomaly_score_max": score_max,
        "anomaly_score_mean": score_mean,
        "n_bounding_boxes": pc.list_value_length(boxes),
    })
    if grids.null_count < n:
        has_grid = pc.is_valid(grids)
        picked = {name: pc.filter(col, has_grid) for name, col in (key_columns | window).items()}
        kept = pc.filter(grids, has_grid)
        yield "anomaly_scores", _table("anomaly_scores", picked | {
            "grid_rows": pc.list_value_length(kept),
            "grid_cols": pc.list_value_length(cast("pa.ListArray[Any]", pc.list_element(kept, 0)))
            if len(kept) else
            pa.array([], pa.int32()),
            "scores": kept,
        })
    if pc.sum(pc.list_value_length(boxes)).as_py():
        parents = pc.list_parent_indices(boxes)
        flat = cast("pa.StructArray", pc.list_flatten(boxes))
        offsets = boxes.offsets.to_numpy()[:-1]
        parent_np = parents.to_numpy()
        box_index = np.arange(len(parent_np)) - offsets[parent_np]
        picked = {name: pc.take(col, parents) for name, col in (key_columns | window).items()}
        yield "bounding_boxes", _table("bounding_boxes", picked | {
            "box_index": pa.array(box_index.astype(np.int32)),
            **{name: flat.field(name) for name in ("label", "x", "y", "width", "height", "score")},
        })


def _grid_max_mean(grids: pa.ListArray[Any]) -> tuple[pa.Array[Any], pa.Array[Any]]:
    """Per-prediction max and mean over its grid, as numpy segment reductions over Arrow buffers."""
    n = len(grids)
    grid_rows = grids.offsets.to_numpy()  # grid i spans rows grid_rows[i]:grid_rows[i+1]
    grid_values = cast("pa.ListArray[Any]", grids.values)
    row_cells = grid_values.offsets.to_numpy()  # row j spans cells row_cells[j]:row_cells[j+1]
    values = grid_values.values.to_numpy(zero_copy_only=False)
    first, last = row_cells[grid_rows[:-1]], row_cells[grid_rows[1:]]
    has_cells = (last > first) & pc.is_valid(grids).to_numpy(zero_copy_only=False)
    maxima = np.zeros(n, dtype=np.float32)
    means = np.zeros(n, dtype=np.float64)
    if has_cells.any():
        # non-empty segments are contiguous (empty ones between them hold no cells)
        starts = first[has_cells]
        maxima[has_cells] = np.maximum.reduceat(values, starts)[: len(starts)]
        sums = np.add.reduceat(values.astype(np.float64), starts)[: len(starts)]
        means[has_cells] = sums / (last - first)[has_cells]
    return pa.array(maxima, mask=~has_cells), pa.array(means, mask=~has_cells)
