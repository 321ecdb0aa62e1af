"""The simulator speaks the Studio API: paths, auth, shapes (checked by the official models),
realistic relations between values, retrains, profiling states and faults."""

from __future__ import annotations

import time

import httpx
import msgspec
import pytest

from ei_assets.simulator import BLOCK_TYPES, FaultPlan, Simulator, WorldConfig
from ei_assets.simulator.world import UNSUPPORTED_BLOCK_TYPES
from tests.oracle import validate


def get(sim: Simulator, path: str, key: str | None, **params: str) -> httpx.Response:
    headers = {"x-api-key": key} if key is not None else {}
    return httpx.get(sim.url + path, headers=headers, params=params, timeout=30)


def metadata_paths(sim: Simulator) -> list[tuple[str, str, str]]:
    """(api key, endpoint name, path) of every metadata endpoint of every block."""
    out = []
    for project, block in sim.world.blocks():
        base = f"/api/{project.id}/training"
        if block.block_type in UNSUPPORTED_BLOCK_TYPES:
            continue
        if block.block_type.startswith("keras"):
            out.append((project.api_key, "keras", f"{base}/keras/{block.learn_id}/metadata"))
        else:
            out.append((project.api_key, "anomaly", f"{base}/anomaly/{block.learn_id}/metadata"))
        if block.block_type == "anomaly-gmm":
            out.append((project.api_key, "gmm", f"{base}/anomaly/{block.learn_id}/gmm/metadata"))
    return out


def test_default_world_has_every_block_type_in_several_impulses(sim: Simulator) -> None:
    assert len(sim.world.projects) >= 3
    assert len(set(sim.api_keys)) == len(sim.api_keys)
    types = {block.block_type for _, block in sim.world.blocks()}
    assert types == set(BLOCK_TYPES)
    assert all(len(p.impulses) > 1 for p in sim.world.projects.values())
    model_types = {t for _, block in sim.world.blocks() for t in block.model_types}
    assert "akida" in model_types


def test_every_endpoint_block_type_and_state_validates_against_official_models(
    sim: Simulator,
) -> None:
    seen: set[tuple[str, str]] = set()

    def check_all(state: str) -> None:
        for project in sim.world.projects.values():
            for endpoint, path in (
                ("projects", "/api/projects"),
                ("impulses", f"/api/{project.id}/impulses"),
                ("impulse", f"/api/{project.id}/impulse"),
            ):
                response = get(sim, path, project.api_key)
                assert response.status_code == 200, path
                validate(endpoint, response.json())
        for key, endpoint, path in metadata_paths(sim):
            for exclude in ("true", "false"):
                response = get(sim, path, key, excludeLabels=exclude)
                assert response.status_code == 200, path
                doc = response.json()
                validate(endpoint, doc)
                parts = path.split("/")
                _, block = sim.world.find_block(int(parts[2]), int(parts[5]))
                seen.add((block.block_type, state))

    check_all("trained")
    for project, block in sim.world.blocks():
        sim.world.retrain(project.id, block.learn_id)
    check_all("profiling-pending")
    sim.world.finish_profiling()
    check_all("retrained")
    assert seen == {(t, s) for t in BLOCK_TYPES for s in ("trained", "profiling-pending", "retrained")}


def test_error_responses_validate_and_use_the_right_status(sim: Simulator) -> None:
    project = next(iter(sim.world.projects.values()))
    other = list(sim.world.projects.values())[1]
    cases = [
        (None, "/api/projects", 401),
        ("ei_wrong", "/api/projects", 401),
        (project.api_key, f"/api/{other.id}/impulses", 404),
        (project.api_key, f"/api/{project.id}/training/keras/999/metadata", 404),
        (project.api_key, f"/api/{project.id}/training/anomaly/3/metadata", 404),  # keras block
        (project.api_key, "/api/nope", 404),
    ]
    for key, path, status in cases:
        response = get(sim, path, key)
        assert response.status_code == status, path
        body = validate("error", response.json())
        assert body.success is False and body.error


def test_values_are_realistic(sim: Simulator) -> None:
    for key, endpoint, path in metadata_paths(sim):
        if endpoint == "gmm":
            continue
        doc = get(sim, path, key).json()
        by_type = {m["type"]: m for m in doc["modelValidationMetrics"]}
        for metrics in by_type.values():
            perf = metrics["onDevicePerformance"]
            assert sum(row["isDefault"] for row in perf) == 1
            assert len(perf) >= 3
            for row in (r for r in perf if r["hasPerformance"]):
                if row["tflite"]["ramRequired"]:
                    assert row["eon"]["ramRequired"] < row["tflite"]["ramRequired"]
            unprofiled = [row for row in perf if not row["hasPerformance"]]
            assert unprofiled and all(row["profilingError"] for row in unprofiled)
            predictions = metrics["predictions"]
            n = len(predictions)
            assert n == sim.world.config.predictions
            if doc.get("mode") == "regression":  # accuracy 0, loss the mean squared error
                errors = [(float(p["prediction"]) - float(p["label"])) ** 2 for p in predictions]
                assert metrics["accuracy"] == 0
                assert metrics["loss"] == pytest.approx(sum(errors) / n, abs=1e-6)
            elif doc.get("mode") == "object-detection":  # no matrix, no report; accuracy the mAP
                assert metrics["confusionMatrix"] == [] and metrics["report"] == {}
                (map_metric,) = metrics["additionalMetrics"]
                assert map_metric["name"] == "mAP"
                assert metrics["accuracy"] == map_metric["fullPrecisionValue"]
            else:
                correct = sum(p["predictionCorrect"] for p in predictions)
                assert metrics["accuracy"] == pytest.approx(correct / n)
        if "int8" in by_type:
            f32, i8 = by_type["float32"], by_type["int8"]
            assert i8["accuracy"] <= f32["accuracy"] + 0.05
            default = lambda m: next(r for r in m["onDevicePerformance"] if r["isDefault"])  # noqa: E731
            ratio = default(f32)["tflite"]["modelSize"] / default(i8)["tflite"]["modelSize"]
            assert 3.0 < ratio < 5.0
            assert default(i8)["latency"] < default(f32)["latency"]
        if path.endswith("keras/3/metadata") and doc["mode"] == "visual-anomaly":
            grid = doc["modelValidationMetrics"][0]["predictions"][0]["anomalyScores"]
            assert len(grid) == len(grid[0]) == sim.world.config.grid
            assert doc["modelValidationMetrics"][0]["report"] == {}
            assert doc["modelValidationMetrics"][0]["confusionMatrix"] == []
        if doc.get("mode") == "object-detection":
            preds = doc["modelValidationMetrics"][0]["predictions"]
            assert any(p["boundingBoxes"] for p in preds)
            assert all(p["f1Score"] is not None for p in preds)


def test_studio_real_shapes_in_the_default_world(sim: Simulator) -> None:
    """Contract section 5: what real Studio exports look like, each in the default world."""
    docs = {path: get(sim, path, key).json() for key, _, path in metadata_paths(sim)}
    keras = {path: doc for path, doc in docs.items() if "/keras/" in path}
    # scikit-learn reports keyed by class index; a class that never occurs is left out
    for path, doc in keras.items():
        for metrics in doc["modelValidationMetrics"]:
            classes = {k for k in metrics["report"] if k not in ("accuracy", "macro avg", "weighted avg")}
            assert all(k.isdigit() and int(k) < len(doc["classNames"]) for k in classes), path
            occurring = {doc["classNames"].index(p[field]) for p in metrics["predictions"]
                         for field in ("label", "prediction")} if classes else set()
            assert classes == {str(i) for i in occurring}, path
            if classes:
                assert all("f1-score" in metrics["report"][k] for k in classes)
    kws = keras["/api/100002/training/keras/6/metadata"]
    assert min(int(k) for k in kws["modelValidationMetrics"][0]["report"] if k.isdigit()) == 3
    # a model too large for its MCU: RAM 0, ROM the model's size
    too_large = [row[engine] for doc in keras.values() for m in doc["modelValidationMetrics"]
                 for row in m["onDevicePerformance"] if row["hasPerformance"]
                 for engine in ("tflite", "eon") if row[engine]["ramRequired"] == 0]
    assert too_large and all(f["romRequired"] == f["modelSize"] > 256_000 for f in too_large)
    # the GMM block's training date has no time zone
    gmm = docs["/api/100001/training/anomaly/7/metadata"]
    assert not gmm["created"].endswith("Z") and "+" not in gmm["created"]
    # a regression block
    assert keras["/api/100001/training/keras/9/metadata"]["mode"] == "regression"


def test_eon_ram_optimized_only_on_some_projects(sim: Simulator) -> None:
    present = {}
    for key, endpoint, path in metadata_paths(sim):
        if endpoint == "gmm":
            continue
        perf = get(sim, path, key).json()["modelValidationMetrics"][0]["onDevicePerformance"]
        present[path.split("/")[2]] = any("eon_ram_optimized" in r for r in perf)
    assert set(present.values()) == {True, False}


def test_same_seed_same_world_and_a_retrain_changes_metrics_then_profiling_completes() -> None:
    config = WorldConfig(seed=7, profiling_seconds=3600.0)  # pending until the control call
    with Simulator(config) as a, Simulator(config) as b:
        assert a.api_keys == b.api_keys
        key, _, path = metadata_paths(a)[0]
        before = get(a, path, key).content
        assert before == get(b, path, key).content
        control = httpx.post(a.url.replace("/v1", "/_sim/retrain"),
                             json={"projectId": 100001, "learnId": 3})
        assert control.json()["retrained"] == ["100001-3"]
        pending = get(a, path, key).json()
        assert pending["created"] != msgspec.json.decode(before)["created"]
        assert all(m["profilingJobId"] and m["onDevicePerformance"] == []
                   for m in pending["modelValidationMetrics"])
        finished = httpx.post(a.url.replace("/v1", "/_sim/profiling/finish"),
                              json={"projectId": 100001, "learnId": 3})
        assert finished.json()["finished"] == ["100001-3"]
        done = get(a, path, key).json()
        assert all("profilingJobId" not in m and m["onDevicePerformance"]
                   for m in done["modelValidationMetrics"])
        assert done["modelValidationMetrics"] != msgspec.json.decode(before)["modelValidationMetrics"]


def test_retrain_every_retrains_on_its_own() -> None:
    with Simulator(WorldConfig(profiling_seconds=0.1), retrain_every=0.1) as sim:
        deadline = time.monotonic() + 60  # a generous bound; the loop ends at the first retrain
        while time.monotonic() < deadline:
            versions = [sim.world.state(p.id, b.learn_id).version for p, b in sim.world.blocks()]
            if max(versions) > 1:
                break
            time.sleep(0.05)
    assert max(versions) > 1


@pytest.mark.parametrize("kind", ["429", "500", "502", "503", "unsuccessful"])
def test_scripted_faults_answer_as_studio_would(kind: str) -> None:
    with Simulator(faults=FaultPlan(retry_after="3")) as sim:
        sim.faults.script(r"/impulses$", [kind, "ok"])
        project = next(iter(sim.world.projects.values()))
        first = get(sim, f"/api/{project.id}/impulses", project.api_key)
        second = get(sim, f"/api/{project.id}/impulses", project.api_key)
    assert first.json()["success"] is False
    assert first.status_code == (200 if kind == "unsuccessful" else int(kind))
    if kind == "429":
        assert first.headers["retry-after"] == "3"
    assert second.status_code == 200 and second.json()["success"] is True


@pytest.mark.parametrize("kind", ["drop", "truncate"])
def test_broken_connections(kind: str) -> None:
    with Simulator() as sim:
        sim.faults.script(".*", [kind])
        project = next(iter(sim.world.projects.values()))
        with pytest.raises(httpx.TransportError):
            get(sim, f"/api/{project.id}/impulses", project.api_key)


def test_slow_responses_outlast_a_client_timeout() -> None:
    with Simulator(faults=FaultPlan(slow_seconds=1.0)) as sim:
        sim.faults.script(".*", ["slow"])
        project = next(iter(sim.world.projects.values()))
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(sim.url + "/api/projects", headers={"x-api-key": project.api_key},
                      timeout=0.2)


def test_fault_rates_and_control_endpoint() -> None:
    with Simulator() as sim:
        control = sim.url.replace("/v1", "/_sim")
        bad = httpx.post(control + "/faults", json={"rates": {"meteor": 0.5}})
        assert bad.status_code == 400 and "unknown fault" in bad.json()["error"]
        assert httpx.post(control + "/faults", json={"rates": {"503": 1.0}}).status_code == 200
        project = next(iter(sim.world.projects.values()))
        assert get(sim, "/api/projects", project.api_key).status_code == 503
        assert httpx.delete(control + "/faults").status_code == 200
        assert get(sim, "/api/projects", project.api_key).status_code == 200
        stats = httpx.get(control + "/stats").json()
        assert stats["byStatus"] == {"503": 1, "200": 1}


def test_scale_knobs() -> None:
    config = WorldConfig(projects=5, blocks_per_project=6, predictions=40, grid=13, targets=6)
    with Simulator(config) as sim:
        assert len(sim.world.projects) == 5
        assert all(sum(len(i.blocks) for i in p.impulses) == 6 for p in sim.world.projects.values())
        key, _, path = next(m for m in metadata_paths(sim) if m[1] == "keras")
        doc = get(sim, path, key).json()
        metrics = doc["modelValidationMetrics"][0]
        assert len(metrics["predictions"]) == 40
        assert len(metrics["onDevicePerformance"]) == 6


def test_the_oracle_rejects_what_studio_would_not_send(sim: Simulator) -> None:
    key, _, path = next(m for m in metadata_paths(sim) if m[1] == "keras")
    doc = get(sim, path, key).json()
    broken = [
        {k: v for k, v in doc.items() if k != "mode"},
        doc | {"modelValidationMetrics": [{"type": "int8"}]},
        doc | {"thresholds": [{"key": "k", "description": "d", "helpText": "h", "value": [1]}]},
    ]
    for bad in broken:
        with pytest.raises(ValueError):
            validate("keras", bad)


def test_target_constraints_of_every_kind_of_project_validate(sim: Simulator) -> None:
    shapes = []
    for project in sim.world.projects.values():
        response = get(sim, f"/api/{project.id}/target-constraints", project.api_key)
        assert response.status_code == 200
        parsed = validate("target-constraints", response.json())
        constraints = parsed.target_constraints
        shapes.append((len(constraints.target_devices), len(constraints.application_budgets)))
        if constraints.target_devices:
            assert constraints.target_devices[0].latency_device == project.default_target
    assert shapes == [(2, 2), (1, 0), (0, 0)]  # budgets; a target but no budget; nothing at all
