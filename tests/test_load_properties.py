"""Property tests over the warehouse load (contract section 5): any document the flattener accepts
loads whole into the warehouse; any it rejects leaves nothing in the lake or the warehouse, and
neither disturbs the snapshots loaded before it."""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.schema import SNAPSHOT_TABLES
from ei_assets.studio import LearnBlock
from tests import docs
from tests.test_flatten import keras_document

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
Doc = dict[str, Any]


def _each_prediction(change: Callable[[Doc], None]) -> Callable[[Doc], Doc]:
    def mutate(doc: Doc) -> Doc:
        for metrics in doc["modelValidationMetrics"]:
            for prediction in metrics["predictions"]:
                change(prediction)
        return doc
    return mutate


def _each_metrics(change: Callable[[Doc], None]) -> Callable[[Doc], Doc]:
    def mutate(doc: Doc) -> Doc:
        for metrics in doc["modelValidationMetrics"]:
            change(metrics)
        return doc
    return mutate


# Ways real documents go wrong; where a document has nothing to break, it stays valid.
MUTATIONS: dict[str, Callable[[Doc], Doc]] = {
    "none": lambda doc: doc,
    "a window without its prediction": _each_prediction(lambda p: p.pop("prediction")),
    "a sample id as text": _each_prediction(lambda p: p.update(sampleId="sample-1")),
    "a sample id beyond 64 bits": _each_prediction(lambda p: p.update(sampleId=2**70)),
    "a window start as text": _each_prediction(lambda p: p.update(startMs="0 ms")),
    "a report entry as text": _each_metrics(lambda m: m.update(report={"0": "high"})),
    "engine figures as text": _each_metrics(lambda m: [row["tflite"].update(ramRequired="lots")
                                                       for row in m["onDevicePerformance"]]),
    "no training date": lambda doc: {k: v for k, v in doc.items() if k != "created"},
    "a training date that is no date": lambda doc: doc | {"created": "yesterday"},
    "an error sent as HTTP 200": lambda doc: {"success": False, "error": "Job failed"},
}


def warehouse_rows(data: DataDir, learn_id: int) -> dict[str, int]:
    with data.warehouse.reader() as reader:
        counts = {table: reader.query(f'SELECT count(*) AS n FROM "{table}" WHERE learn_id = ?',
                                      [learn_id]).to_pylist()[0]["n"] for table in SNAPSHOT_TABLES}
    return {table: n for table, n in counts.items() if n}


def lake_files(data: DataDir, learn_id: int) -> list[str]:
    return [f for table in SNAPSHOT_TABLES for f in data.store.lake.files(table)
            if f"/learn_id={learn_id}/" in f]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> DataDir:
    return DataDir.open(str(tmp_path_factory.mktemp("properties")))


LEARN_IDS = itertools.count(1)


@settings(max_examples=50, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(doc=keras_document(), mutation=st.sampled_from(sorted(MUTATIONS)))
def test_what_the_flattener_accepts_loads_whole_and_what_it_rejects_leaves_nothing(
        data: DataDir, doc: Doc, mutation: str) -> None:
    block = LearnBlock(7, "Project", 1, "Impulse", next(LEARN_IDS), "keras", "Block", "Title")
    before = data.warehouse.row_counts(SNAPSHOT_TABLES) if data.warehouse.exists() else {}
    body = docs.encode(MUTATIONS[mutation](copy.deepcopy(doc)))
    try:
        saved = data.store.save(block, T0, {"keras": body})
    except Exception:  # what the refresh reports as this block's failure
        saved = None
    event("rejected" if saved is None else "accepted")
    report = data.warehouse.load()
    assert report.failed == []
    if saved is None:
        assert lake_files(data, block.learn_id) == []
        assert warehouse_rows(data, block.learn_id) == {}
        assert report.new_snapshots == 0
    else:
        assert warehouse_rows(data, block.learn_id) == {t: n for t, n in saved.rows.items() if n}
        assert report.new_snapshots == 1
    after = data.warehouse.row_counts(SNAPSHOT_TABLES)
    grown = {t: after[t] - before.get(t, 0) for t in SNAPSHOT_TABLES}
    assert grown == {t: saved.rows.get(t, 0) if saved else 0 for t in SNAPSHOT_TABLES}
