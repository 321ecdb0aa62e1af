"""ei_assets as a plugin of a Dagster project a team already runs (contract section 7): importing it
changes nothing, `build_defs` and the Component give instances named after their key prefix that
merge with a host's executor and with each other, automation starts stopped, the API key stays an
environment variable's name, and the example project (examples/dagster_project) loads with `dg`
and materializes both of its instances against two simulator worlds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from ei_assets import EdgeImpulseComponent, build_defs
from ei_assets.settings import ConfigError
from ei_assets.simulator import Simulator, WorldConfig

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "dagster_project"
# `make test-newest` runs these tests beside the newest dagster, for which no `dg` may exist yet
WITHOUT_DG = bool(os.environ.get("EI_TEST_WITHOUT_DG"))


def run_python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300, cwd=ROOT, env=env)


def test_importing_any_module_changes_nothing_in_the_host_process() -> None:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("ARROW_DEFAULT_MEMORY_POOL", "MALLOC_ARENA_MAX")}
    result = run_python("""
        import importlib, logging, os, pkgutil, signal
        import ei_assets
        before = dict(os.environ)
        handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        root = (logging.getLogger().level, list(logging.getLogger().handlers))
        imported = []
        for module in pkgutil.walk_packages(ei_assets.__path__, "ei_assets."):
            try:
                importlib.import_module(module.name)
            except ModuleNotFoundError as exc:  # ei_assets.k8s without the scale extra
                assert exc.name == "dagster_k8s", exc
                continue
            imported.append(module.name)
        assert dict(os.environ) == before, set(os.environ.items()) ^ set(before.items())
        assert {s: signal.getsignal(s) for s in handlers} == handlers
        assert (logging.getLogger().level, list(logging.getLogger().handlers)) == root
        print(len(imported))
    """, env=clean)
    assert result.returncode == 0, result.stdout + result.stderr
    assert int(result.stdout) > 40  # every module was imported


def test_the_package_names_what_it_offers() -> None:
    import ei_assets

    assert sorted(ei_assets.__all__) == ["DataDir", "EdgeImpulseComponent", "EiAssetsError", "build_defs"]
    for name in ei_assets.__all__:
        assert getattr(ei_assets, name).__doc__, name
    assert set(ei_assets.__all__) <= set(dir(ei_assets))  # Dagster's registry lists through dir()


def test_two_instances_merge_with_a_host_executor_and_nothing_collides() -> None:
    host = dg.Definitions(executor=dg.multiprocess_executor, assets=[dg.AssetSpec("host_asset")])
    merged = dg.Definitions.merge(host, build_defs(key_prefix=["ei", "a"]),
                                  build_defs(key_prefix=["ei", "b"], api_key_env_var="EI_KEY_B"))
    dg.Definitions.validate_loadable(merged)
    assert merged.executor is dg.multiprocess_executor
    keys = {spec.key.to_user_string() for spec in merged.resolve_all_asset_specs()}
    a = {k.removeprefix("ei/a/") for k in keys if k.startswith("ei/a/")}
    b = {k.removeprefix("ei/b/") for k in keys if k.startswith("ei/b/")}
    assert a == b and {"learn_blocks", "report", "warehouse/model_type_comparison"} <= a
    assert keys == {"host_asset", *(f"ei/a/{k}" for k in a), *(f"ei/b/{k}" for k in b)}
    assert sorted(merged.resources) == ["ei_a_data_dir", "ei_a_result_sink", "ei_a_studio",
                                        "ei_b_data_dir", "ei_b_result_sink", "ei_b_studio"]
    assert merged.resources["ei_b_studio"].api_key == "EI_KEY_B"  # the variable's name
    for prefix in ("ei_a", "ei_b"):
        job = merged.resolve_job_def(f"{prefix}_refresh")
        assert {node.name for node in job.graph.node_defs} >= {f"{prefix}_studio_refresh"}
        assert merged.resolve_schedule_def(f"{prefix}_hourly_refresh").default_status == \
            dg.DefaultScheduleStatus.STOPPED
        for sensor in ("learn_block_partitions_sensor", "profiling_pending_sensor"):
            assert merged.resolve_sensor_def(f"{prefix}_{sensor}").default_status == \
                dg.DefaultSensorStatus.STOPPED
    checks = {key.asset_key.to_user_string() for key in merged.resolve_asset_graph().asset_check_keys}
    assert "ei/a/metadata_snapshots" in checks and "ei/b/warehouse/snapshots" in checks
    metadata = merged.resolve_assets_def(dg.AssetKey(["ei", "a", "learn_block_metadata"]))
    partitions = metadata.partitions_def
    assert isinstance(partitions, dg.DynamicPartitionsDefinition) and partitions.name == "ei_a_learn_blocks"
    pools = {merged.resolve_assets_def(dg.AssetKey([*p, "warehouse", "snapshots"])).op.pool
             for p in (["ei", "a"], ["ei", "b"])}
    assert pools == {"ei_warehouse"}  # shared on purpose: one writer per deployment's warehouse


def test_automation_runs_only_when_asked() -> None:
    running = build_defs(key_prefix=["org"], automation="running")
    assert running.resolve_schedule_def("org_hourly_refresh").default_status == \
        dg.DefaultScheduleStatus.RUNNING
    assert running.resolve_sensor_def("org_profiling_pending_sensor").default_status == \
        dg.DefaultSensorStatus.RUNNING


def test_the_api_key_never_reaches_the_definitions(monkeypatch: pytest.MonkeyPatch) -> None:
    from dagster._core.remote_representation.external_data import RepositorySnap
    from dagster_shared.serdes import serialize_value

    monkeypatch.setenv("EI_KEY_SECRET", "ei_0123456789abcdef_secret")
    defs = build_defs(key_prefix=["org"], api_key_env_var="EI_KEY_SECRET")
    snapshot = serialize_value(RepositorySnap.from_def(defs.get_repository_def()))
    assert "EI_KEY_SECRET" in snapshot and "0123456789abcdef" not in snapshot


@pytest.mark.parametrize(("arguments", "message"), [
    ({"key_prefix": ["edge-impulse"]}, "key_prefix: 'edge-impulse' is not a name Dagster takes"),
    ({"api_key_env_var": "ei_1234abcd the key itself"}, "api_key_env_var: "),
])
def test_bad_instance_settings_are_named(arguments: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        build_defs(**arguments)  # type: ignore[arg-type]
    assert "the key itself" not in str(raised.value) or "api_key_env_var" in str(raised.value)


def test_the_component_scaffolds_a_defs_yaml_that_loads() -> None:
    from dagster.components.testing import create_defs_folder_sandbox

    with create_defs_folder_sandbox() as sandbox:
        path = sandbox.scaffold_component(component_cls=EdgeImpulseComponent, defs_path="edge_impulse")
        text = (path / "defs.yaml").read_text()
        assert "key_prefix:\n    - edge_impulse" in text and "automation: stopped" in text
        assert "api_key_env_var: EI_API_KEY" in text
        with sandbox.load_component_and_build_defs(defs_path=path) as (component, defs):
            assert isinstance(component, EdgeImpulseComponent)
            assert defs.resolve_job_def("edge_impulse_refresh")
            keys = {s.key.to_user_string() for s in defs.resolve_all_asset_specs()}
            assert all(k.startswith("edge_impulse/") for k in keys)


@pytest.fixture
def worlds() -> Iterator[tuple[Simulator, Simulator]]:
    with Simulator(WorldConfig(seed=1, projects=2, predictions=20, profiling_seconds=0.0)) as vibration, \
            Simulator(WorldConfig(seed=2, projects=1, predictions=20, profiling_seconds=0.0)) as vision:
        yield vibration, vision


def test_the_example_project_materializes_both_instances(
        worlds: tuple[Simulator, Simulator], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for org, sim in zip(("VIBRATION", "VISION"), worlds, strict=True):
        monkeypatch.setenv(f"EI_API_URL_{org}", sim.url)
        monkeypatch.setenv(f"EI_API_KEY_{org}", ",".join(sim.api_keys))
        monkeypatch.setenv(f"EI_DATA_DIR_{org}", str(tmp_path / org.lower()))
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    from fleet_analytics.definitions import defs as lazy_defs

    defs = lazy_defs()
    dg.Definitions.validate_loadable(defs)
    with dg.instance_for_test() as instance:
        for org in ("vibration", "vision"):
            job = defs.resolve_job_def(f"edge_impulse_{org}_refresh")
            assert job.execute_in_process(instance=instance).success
        readiness = defs.resolve_implicit_global_asset_job_def().get_subset(
            asset_selection={dg.AssetKey("int8_readiness")})
        result = readiness.execute_in_process(instance=instance)
        assert result.success
        (materialization,) = result.asset_materializations_for_node("int8_readiness")
    from ei_assets import DataDir

    for org, sim in zip(("vibration", "vision"), worlds, strict=True):
        data = DataDir.open(str(tmp_path / org), writable=False)
        blocks = data.warehouse.query("SELECT DISTINCT project_id FROM snapshots").to_pylist()
        assert {b["project_id"] for b in blocks} == set(sim.world.projects)
        ready = str(materialization.metadata[f"{org}_int8_ready"].value)
        int8_blocks = sum("int8" in b.model_types for _, b in sim.world.blocks())
        assert ready.endswith(f"of {int8_blocks} learn blocks")
    assert not (ROOT / "data" / "vibration").exists()


@pytest.mark.skipif(WITHOUT_DG, reason="dg is installed only with the pinned dagster (make test)")
def test_dg_lists_the_component_scaffolds_it_and_checks_the_example(tmp_path: Path) -> None:
    dg_cli = Path(sys.executable).parent / "dg"
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env["PATH"] = f"{dg_cli.parent}{os.pathsep}{env['PATH']}"

    def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(dg_cli), *args], cwd=cwd, env=env, capture_output=True, text=True,
                              timeout=300)

    listed = run("list", "components", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert '"key": "ei_assets.EdgeImpulseComponent"' in listed.stdout
    project = tmp_path / "project"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns("__pycache__", "data"))
    scaffolded = run("scaffold", "defs", "ei_assets.EdgeImpulseComponent", "edge_impulse_new", cwd=project)
    assert scaffolded.returncode == 0, scaffolded.stdout + scaffolded.stderr
    assert (project / "src" / "fleet_analytics" / "defs" / "edge_impulse_new" / "defs.yaml").exists()
    checked = run("check", "defs", cwd=project)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "All definitions loaded successfully." in checked.stdout
