"""Hostile bodies over real HTTP: whatever one learn block's endpoint answers (huge numbers,
NaN, deep nesting, wrong types, invalid UTF-8, HTML at 200, null, nothing, too many bytes), that
block fails with a message naming it and every other block is refreshed. The client and the
flattener are fuzzed with Hypothesis, over the official shapes and over hostile bytes."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.fs as pafs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ei_assets.pipeline.refresh import RefreshResult, refresh
from ei_assets.pipeline.saving import DataStore
from ei_assets.settings import ApiKey
from ei_assets.simulator import Simulator, WorldConfig
from ei_assets.studio import StudioClient
from tests import docs

VICTIM = (100001, 3)  # a keras block of the default world
VICTIM_PATH = rf"/api/{VICTIM[0]}/training/keras/{VICTIM[1]}/metadata$"


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=20)) as simulator:
        yield simulator


def run(sim: Simulator, folder: Path, body: bytes, status: int = 200,
        max_body_bytes: int = 1 << 30) -> RefreshResult:
    sim.faults.clear()
    sim.faults.serve_body(VICTIM_PATH, body, status)
    store = DataStore(pafs.LocalFileSystem(), str(folder))
    keys = [ApiKey(k, f"#{i}") for i, k in enumerate(sim.api_keys, start=1)]
    with StudioClient(sim.url, max_body_bytes=max_body_bytes) as client:
        return refresh(client, keys, store, max_workers=4)


def assert_only_the_victim_failed(report: RefreshResult) -> str:
    by_key = {(b.block.project_id, b.block.learn_id): b for b in report.blocks}
    victim = by_key.pop(VICTIM)
    assert victim.status == "failed", victim
    assert victim.error and f"project {VICTIM[0]}" in victim.error
    assert f"learn block {VICTIM[1]}" in victim.error
    assert all(b.status in ("refreshed", "unchanged") for b in by_key.values()), by_key
    return victim.error


def nested(depth: int) -> bytes:
    return b'{"success": true, "created": "2026-01-01T00:00:00Z", "x": ' + b"[" * depth + \
        b"]" * depth + b"}"


HOSTILE = {
    "huge integer": docs.encode(docs.keras_doc()).replace(b'"sampleId":1,', b'"sampleId":' +
                                                           b"9" * 400 + b",", 1),
    "huge integer in a count": msgspec.json.encode({"success": True}).replace(
        b"}", b', "created": "2026-01-01T00:00:00Z", "modelValidationMetrics": [{"type": "float32", '
              b'"profilingJobId": ' + b"1" * 50 + b"}]}"),
    "NaN and Infinity": docs.encode(docs.keras_doc()).replace(b'"loss":0.2', b'"loss":NaN', 1)
    .replace(b'"accuracy":0.9', b'"accuracy":Infinity', 1),
    "deep nesting": nested(5000),
    "wrong types": msgspec.json.encode({"success": True, "created": "2026-01-01T00:00:00Z",
                                        "modelValidationMetrics": "all of them"}),
    "invalid UTF-8": b'{"success": true, "created": "2026-01-01T00:00:00Z", "mode": "\xff\xfe"}',
    "HTML at 200": b"<html><body>Bad gateway</body></html>",
    "null": b"null",
    "empty": b"",
    "a list": b"[1, 2, 3]",
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_body_fails_its_block_only(name: str, sim: Simulator, tmp_path: Path) -> None:
    error = assert_only_the_victim_failed(run(sim, tmp_path, HOSTILE[name]))
    assert "Traceback" not in error and len(error) < 600


def test_a_body_over_the_size_limit_is_refused_unread(sim: Simulator, tmp_path: Path) -> None:
    error = assert_only_the_victim_failed(run(sim, tmp_path, b" " * 200_000 + b"{}",
                                              max_body_bytes=100_000))
    assert "larger than the limit of 100000 bytes" in error


def test_deep_nesting_says_so(sim: Simulator, tmp_path: Path) -> None:
    error = assert_only_the_victim_failed(run(sim, tmp_path, nested(100_000)))
    assert "nested too deeply" in error


def _mutations() -> st.SearchStrategy[bytes]:
    """Valid documents with one value replaced by something hostile, and plain hostile bytes."""
    hostile_values = st.one_of(
        st.integers(min_value=-(10**40), max_value=10**40), st.floats(allow_nan=True),
        st.text(max_size=20), st.none(), st.booleans(), st.just([[[[]]]]), st.just({}),
        st.lists(st.integers(), max_size=3),
    )

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        doc: Any = copy.deepcopy(docs.keras_doc())
        paths = [("modelValidationMetrics", 0, "predictions", 0, "sampleId"),
                 ("modelValidationMetrics", 1, "accuracy"), ("modelValidationMetrics", 0, "type"),
                 ("modelValidationMetrics", 0, "onDevicePerformance", 0, "latency"),
                 ("modelValidationMetrics", 0, "report"), ("created",), ("axes",),
                 ("modelValidationMetrics", 0, "confusionMatrix"), ("thresholds",)]
        *parents, last = draw(st.sampled_from(paths))
        target = doc
        for part in parents:
            target = target[part]
        value = draw(hostile_values)
        if isinstance(value, float) and value != value:
            return docs.encode(doc).replace(b'"created"', b'"nan_here":NaN,"created"', 1)
        target[last] = value
        return msgspec.json.encode(doc)

    raw = st.one_of(st.binary(max_size=200), st.just(b"{" * 3000), st.just(b"\x00" * 10))
    return st.one_of(mutated(), raw)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_mutations())
def test_fuzzed_bodies_never_stop_the_run(body: bytes, sim: Simulator, tmp_path: Path) -> None:
    report = run(sim, tmp_path, body)
    by_key = {(b.block.project_id, b.block.learn_id): b for b in report.blocks}
    others = [b for key, b in by_key.items() if key != VICTIM]
    assert all(b.status in ("refreshed", "unchanged") for b in others)
    victim = by_key[VICTIM]
    if victim.status == "failed":
        assert victim.error and f"learn block {VICTIM[1]}" in victim.error


def test_no_struct_decoder_is_built_inside_a_function() -> None:
    """msgspec fills a Struct type's decoding info on its first use, and on Python < 3.13 two
    threads doing that at once can crash the process (SIGSEGV). So every typed decoder is built
    at import: no `msgspec.json.decode(..., type=...)` and no `Decoder(...)` inside a function."""
    import ast

    offenders = []
    for path in (Path(__file__).parent.parent / "ei_assets").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for function in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.Lambda)):
            for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
                name = ast.unparse(call.func)
                typed = name.endswith("json.decode") and any(k.arg == "type" for k in call.keywords)
                if typed or (name.endswith("json.Decoder") and call.args):
                    offenders.append(f"{path.name}:{call.lineno}")
    assert offenders == []


CONSTRAINTS_HOSTILE = {
    "memory figure beyond any integer": b'{"success": true, "targetConstraints": {"targetDevices": '
    b'[{"processors": [{"memory": {"ram": {"fastBytes": {"maximum": 1e400}}}}]}], '
    b'"applicationBudgets": []}}',
    "invalid UTF-8 in a name": b'{"targetConstraints": {"targetDevices": [{"name": "\xff\xfe"}], '
    b'"applicationBudgets": []}}',
    "wrong type": b'{"targetConstraints": {"targetDevices": "all", "applicationBudgets": []}}',
    "deep nesting": nested(5000),
    "HTML at 200": HOSTILE["HTML at 200"],
}


@pytest.mark.parametrize("name", list(CONSTRAINTS_HOSTILE))
def test_a_hostile_target_constraints_body_fails_no_block(name: str, sim: Simulator,
                                                         tmp_path: Path) -> None:
    sim.faults.clear()
    sim.faults.serve_body(r"/100001/target-constraints$", CONSTRAINTS_HOSTILE[name])
    store = DataStore(pafs.LocalFileSystem(), str(tmp_path))
    keys = [ApiKey(k, f"#{i}") for i, k in enumerate(sim.api_keys, start=1)]
    with StudioClient(sim.url) as client:
        report = refresh(client, keys, store, max_workers=4)
    assert all(b.status in ("refreshed", "unchanged") for b in report.blocks)
    assert len(report.constraint_errors) == 1 and "project 100001" in report.constraint_errors[0]
