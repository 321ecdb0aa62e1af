"""Budget fit, per-class deltas and anomaly drift, from the simulator's world over real HTTP, each
checked against values computed by hand (in Python, from the documents and the base tables)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.pipeline.refresh import RefreshResult, refresh
from ei_assets.settings import ApiKey
from ei_assets.simulator import Simulator, WorldConfig
from ei_assets.studio import RetryPolicy, StudioClient


def load(sim: Simulator, data: DataDir) -> RefreshResult:
    keys = [ApiKey(k, f"#{i}") for i, k in enumerate(sim.api_keys, start=1)]
    with StudioClient(sim.url, retry=RetryPolicy(max_attempts=2, backoff_base=0.01)) as client:
        report = refresh(client, keys, data.store, max_workers=4)
    data.warehouse.load()
    return report


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Simulator, DataDir]]:
    data = DataDir.open(str(tmp_path_factory.mktemp("insights")))
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=120)) as sim:
        assert load(sim, data).all_refreshed
        sim.world.retrain_matching(100003, 3)  # the visual anomaly block gets a second snapshot
        assert load(sim, data).all_refreshed
        yield sim, data


def q(data: DataDir, sql: str) -> list[dict[str, Any]]:
    return data.warehouse.query(sql).to_pylist()


def test_target_constraints_and_budgets_as_the_contract_flattens_them(
    world: tuple[Simulator, DataDir],
) -> None:
    _, data = world
    targets = q(data, """SELECT project_id, target_index, is_selected, mcu, ram_min_bytes, ram_max_bytes,
                                rom_min_bytes, rom_max_bytes, clock_min_mhz, clock_max_mhz
                         FROM target_constraints
                         WHERE fetched_at = (SELECT max(fetched_at) FROM target_constraints)
                         ORDER BY 1, 2""")
    # first processor only; fast + slow, an absent part counting 0; both absent: NULL
    assert [tuple(r.values()) for r in targets] == [
        (100001, 0, True, "cortex-m4f-80mhz", 65_536, 131_072 + 262_144, 1_048_576, 1_048_576, 64, 80),
        (100001, 1, False, "cortex-m7-216mhz", None, None, None, None, 216, 216),
        (100002, 0, True, "cortex-m4f-80mhz", 65_536, 131_072 + 262_144, 1_048_576, 1_048_576, 64, 128),
    ]
    budgets = q(data, """SELECT project_id, budget_index, is_selected, latency_max_ms, ram_max_bytes,
                                rom_max_bytes, energy_max_joules
                         FROM application_budgets
                         WHERE fetched_at = (SELECT max(fetched_at) FROM application_budgets)
                         ORDER BY 1, 2""")
    assert [tuple(r.values()) for r in budgets] == [
        (100001, 0, True, 1.0, 6_000 + 2_192, 32_768, 0.005),
        (100001, 1, False, 100.0, None, None, None),
    ]
    fetches = q(data, "SELECT count(DISTINCT fetched_at) AS n FROM target_constraints")
    assert fetches == [{"n": 2}]  # one per refresh: the history is kept


def test_budget_fit_by_hand(world: tuple[Simulator, DataDir]) -> None:
    _, data = world
    fit = {(r["snapshot_id"], r["model_type"], r["engine"]): r
           for r in q(data, "SELECT * FROM budget_fit")}
    perf = q(data, "SELECT * FROM on_device_performance WHERE mcu = 'cortex-m4f-80mhz' "
                   "AND project_id IN (100001, 100002)")
    assert perf and set(fit) == {(p["snapshot_id"], p["model_type"], p["engine"]) for p in perf}
    outcomes = set()
    for p in perf:
        row = fit[(p["snapshot_id"], p["model_type"], p["engine"])]
        if p["project_id"] == 100002:  # a selected target, no budget
            assert (row["latency_budget_ms"], row["ram_headroom"], row["fits"]) == (None, None, None)
            continue
        latency, ram, rom = p["latency_ms"], p["ram_bytes"], p["rom_bytes"]
        expected = None if None in (latency, ram, rom) else (
            latency <= 1.0 and ram <= 8_192 and rom <= 32_768)
        assert row["fits"] == expected, (p, row)
        if ram is not None:
            assert row["ram_headroom"] == 8_192 - ram and row["rom_headroom"] == 32_768 - rom
            assert row["latency_headroom"] == pytest.approx(1.0 - latency)
        outcomes.add(row["fits"])
    assert outcomes >= {True, False}  # the simulated budget separates the models
    assert not [k for k, r in fit.items() if r["project_id"] == 100003]  # no target at all


def test_class_metric_deltas_by_hand(world: tuple[Simulator, DataDir]) -> None:
    _, data = world
    report = q(data, "SELECT * FROM classification_report")
    baseline = {(r["snapshot_id"], r["class"]): r for r in report if r["model_type"] == "float32"}
    expected = {}
    for r in report:
        if r["model_type"] == "float32" or (r["class"] == "accuracy" and r["precision"] is None):
            continue
        b = baseline.get((r["snapshot_id"], r["class"]), {})
        delta = [None if r[m] is None or b.get(m) is None else pytest.approx(r[m] - b[m])
                 for m in ("precision", "recall", "f1_score")]
        expected[(r["snapshot_id"], r["model_type"], r["class"])] = (*delta, r["support"])
    deltas = {(r["snapshot_id"], r["model_type"], r["class"]):
              (r["precision_delta"], r["recall_delta"], r["f1_delta"], r["support"])
              for r in q(data, "SELECT * FROM class_metric_deltas")}
    assert deltas == expected
    assert {c for _, _, c in deltas} >= {"weighted avg", "macro avg"}
    assert "accuracy" not in {c for _, _, c in deltas}
    assert any(d[0] is not None and d[0] < 0 for d in deltas.values())  # int8 hurts some class


def test_anomaly_score_trend_by_hand(world: tuple[Simulator, DataDir]) -> None:
    _, data = world
    trend = q(data, "SELECT * FROM anomaly_score_trend ORDER BY model_type, model_created_at")
    assert trend and {(r["project_id"], r["learn_id"]) for r in trend} == {(100003, 3)}
    for row in trend:
        scores = np.array([r["s"] for r in q(data, f"""
            SELECT anomaly_score_max::DOUBLE AS s FROM predictions
            WHERE snapshot_id = '{row["snapshot_id"]}' AND model_type = '{row["model_type"]}'
              AND anomaly_score_max IS NOT NULL""")])
        (threshold,) = [r["value_number"] for r in q(data, f"""
            SELECT value_number FROM thresholds
            WHERE snapshot_id = '{row["snapshot_id"]}' AND key = 'min_anomaly_score'""")]
        assert row["n_scores"] == len(scores)
        assert row["score_p50"] == pytest.approx(np.quantile(scores, 0.5))
        assert row["score_p95"] == pytest.approx(np.quantile(scores, 0.95))
        assert row["score_max"] == pytest.approx(scores.max())
        assert row["threshold"] == threshold
        assert row["share_above_threshold"] == pytest.approx((scores > threshold).mean())
    for model_type in {r["model_type"] for r in trend}:
        first, second = [r for r in trend if r["model_type"] == model_type]
        assert first["previous_snapshot_id"] is None
        assert second["previous_snapshot_id"] == first["snapshot_id"]
        assert second["p95_change"] == pytest.approx(second["score_p95"] - first["score_p95"])


def test_a_project_whose_constraints_cannot_be_read_fails_no_block(tmp_path: Path) -> None:
    data = DataDir.open(str(tmp_path))
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=20)) as sim:
        sim.faults.script(r"/100002/target-constraints$", ["503"] * 10)
        report = load(sim, data)
    assert all(b.status == "refreshed" for b in report.blocks)
    assert len(report.constraint_errors) == 1
    assert report.constraint_errors[0].startswith("project 100002, target-constraints: ")
    projects = q(data, "SELECT DISTINCT project_id FROM target_constraints ORDER BY 1")
    assert projects == [{"project_id": 100001}]
