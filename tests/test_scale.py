"""The scale-out deployment, for real on loopback: the raw archive and the lake on an S3-protocol
store (moto's server), the warehouse a DuckLake with its catalog in Postgres, and the Dagster
instance on Postgres (deploy/dagster.yaml). Refreshes fanned out per project and full ones run at
once while a reader queries; every table and view then equals the embedded mode's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.fs as pafs
import pytest

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.schema import PER_SNAPSHOT_TABLES, SNAPSHOT_TABLES, relation
from ei_assets.settings import ConfigError, resolve_data_dir
from ei_assets.simulator import Simulator, WorldConfig
from ei_assets.studio import LearnBlock
from tests import docs
from tests.servers import S3, Postgres
from tests.test_warehouse import FIRST, RETRAINED, T0, ingest, model_doc, w

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
COMPARED = (*SNAPSHOT_TABLES, "model_type_comparison", "model_type_trend", "prediction_disagreements",
            "budget_fit", "class_metric_deltas", "anomaly_score_trend")
VARYING = {"fetched_at", "first_fetched_at", "last_fetched_at"}  # when, not what


# `ei-assets sql` again and again until told to stop: one line per query, its exit code first
READER = """
import os, subprocess, sys, time
deadline = time.monotonic() + 600
while time.monotonic() < deadline and not os.path.exists(sys.argv[1]):
    query = "SELECT count(*) AS n FROM model_type_comparison"
    r = subprocess.run([sys.executable, "-m", "ei_assets.cli", "sql", query], capture_output=True, text=True)
    print(r.returncode, r.stderr.strip()[-300:], flush=True)
"""


@pytest.fixture
def servers(scale_servers: tuple[S3, Postgres, Any]) -> tuple[S3, Postgres, Any]:
    return scale_servers


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ei_assets.cli", *args], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(processes: list[subprocess.Popen[str]]) -> list[tuple[int, str]]:
    outputs = [p.communicate(timeout=900) for p in processes]
    return [(p.returncode, out + err) for p, (out, err) in zip(processes, outputs, strict=True)]


def rows(data: DataDir, name: str) -> list[str]:
    columns = [c.name for c in relation(name).all_columns if c.name not in VARYING]
    select = ", ".join(f'"{c}"' for c in columns)
    return sorted(repr(r) for r in data.warehouse.query(f'SELECT {select} FROM "{name}"').to_pylist())


def test_fanned_out_refreshes_into_s3_and_ducklake_equal_the_embedded_mode(
    servers: tuple[S3, Postgres, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    s3, pg, createdb = servers
    s3.create_bucket("ei-scale")
    createdb("lake")
    createdb("dagster")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("EI_", "DAGSTER_", "AWS_"))}
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=150)) as sim:
        api = {"EI_API_URL": sim.url, "EI_API_KEY": ",".join(sim.api_keys)}
        embedded = base | api | {"EI_DATA_DIR": str(tmp_path / "embedded")}
        scale = base | api | s3.env | {
            "EI_DATA_DIR": "s3://ei-scale/ei", "EI_WAREHOUSE": "ducklake:postgres:" + pg.conninfo("lake"),
            "DAGSTER_HOME": str(home), "DAGSTER_PG_URL": pg.url("dagster")}
        reader_loop = READER
        stop_reading = tmp_path / "stop-reading"

        assert finish([start(["refresh"], embedded)])[0][0] == 0
        first = finish([start(["refresh", "--project", "100001"], scale)])  # creates the warehouse
        assert first[0][0] == 0, first
        reader = subprocess.Popen([sys.executable, "-c", reader_loop, str(stop_reading)], env=scale,
                                  cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        together = finish([start(["refresh"], scale),
                           start(["refresh", "--project", "100002"], scale),
                           start(["refresh", "--project", "100003"], scale)])
        sim.world.retrain_matching()
        assert finish([start(["refresh"], embedded)])[0][0] == 0
        again = finish([start(["refresh"], scale), start(["refresh"], scale)])
        time.sleep(1)
        stop_reading.touch()
        reads, _ = reader.communicate(timeout=600)
    for code, output in [*together, *again]:
        assert code == 0, output
        assert "Traceback" not in output
    read_codes = [line.split(" ", 1)[0] for line in reads.splitlines() if line.strip()]
    assert read_codes and set(read_codes) == {"0"}, reads[-2000:]  # never failed by a writer

    for name, value in scale.items():
        if name.startswith(("AWS_", "DAGSTER_")):
            monkeypatch.setenv(name, value)
    lake = DataDir.open("s3://ei-scale/ei", warehouse=scale["EI_WAREHOUSE"], writable=False)
    local = DataDir.open(str(tmp_path / "embedded"), writable=False)
    assert lake.warehouse.query("SELECT count(*) AS n FROM snapshots").to_pylist() == [
        {"n": 2 * len(sim.world.blocks())}]  # every block, before and after its retrain
    for name in COMPARED:
        assert rows(lake, name) == rows(local, name), name

    rebuilt = finish([start(["rebuild"], scale)])[0]  # from the raw archive on S3 alone
    assert rebuilt[0] == 0, rebuilt[1]
    for name in COMPARED:
        assert rows(lake, name) == rows(local, name), name

    instance = dg.DagsterInstance.from_config(str(home))
    runs = instance.get_runs()
    assert len(runs) == 6 and all(r.status == dg.DagsterRunStatus.SUCCESS for r in runs)
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"


def test_a_reader_sees_one_state_of_the_ducklake_while_another_load_commits(
    servers: tuple[S3, Postgres, Any], tmp_path: Path,
) -> None:
    """The checks, the report and the views' previews each read through one reader: its queries
    must agree with each other even when a refresh commits between them."""
    _, pg, createdb = servers
    createdb("readers")
    data = DataDir.open(str(tmp_path), warehouse="ducklake:postgres:" + pg.conninfo("readers"))
    ingest(data, FIRST, T0)
    data.warehouse.load()
    names = ["snapshots", "predictions", "model_type_trend"]
    with data.warehouse.reader() as reader:
        before = reader.row_counts(names)
        ingest(data, RETRAINED, T0 + timedelta(days=4))
        assert data.warehouse.load().new_snapshots == 1  # committed by another connection
        assert reader.row_counts(names) == before
        assert reader.query("SELECT count(*) AS n FROM snapshots").to_pylist() == [{"n": 1}]
    after = data.warehouse.row_counts(names)
    assert before["snapshots"] == 1 and after["snapshots"] == 2
    assert all(after[name] > before[name] for name in names)


def test_a_load_derives_from_the_new_snapshots_rows_not_from_what_earlier_loads_wrote(
    servers: tuple[S3, Postgres, Any], tmp_path: Path,
) -> None:
    """A refresh on object storage hands its new snapshots' rows to the load, and what the load
    derives (the per-snapshot tables, a report's class names) is derived from those rows: a
    DuckLake load does not fetch back the data files earlier loads wrote (those its statistics
    do not rule out: a group's file spans many keys), so what it costs does not grow with the
    history. Shown by taking those files away: the next load still loads, and derives what the
    embedded mode derives from the lake."""
    from ei_assets.snapshot import snapshot_id

    _, pg, createdb = servers
    createdb("derives")
    data = DataDir.open(str(tmp_path), warehouse="ducklake:postgres:" + pg.conninfo("derives"))
    f32 = {"acc": 0.9, "loss": 0.2, "preds": [w(1, "a"), w(2, "b"), w(3, "a")], "perf": []}
    i8 = {"acc": 0.8, "loss": 0.3, "preds": [w(1, "a"), w(2, "a"), w(3, "b")], "perf": []}
    first = [ingest(data, model_doc(f"2026-10-{learn_id:02d}T00:00:00Z", f32, i8), T0, block(learn_id))
             for learn_id in range(1, 10)]
    assert data.warehouse.load().new_snapshots == 9  # one group: each table one file
    # a retrain of block 5 whose id falls between the first ones: no statistic rules a file out
    body = next(body for day in range(1, 29)
                if min(first) < snapshot_id({"keras": (body := docs.encode(
                    model_doc(f"2026-11-{day:02d}T00:00:00Z", i8, f32)))}) < max(first))
    written = [path for table in ("predictions", "thresholds")
               for path in (tmp_path / "warehouse" / "main" / table).glob("*.parquet")]
    assert written, sorted(str(p) for p in (tmp_path / "warehouse").rglob("*"))
    for path in written:
        path.unlink()
    saved = data.store.save(block(5), T0 + timedelta(days=4), {"keras": body}, keep=True)
    sid = saved.snapshot.snapshot_id
    loaded = data.warehouse.load_tables([((7, 5, sid), saved.tables)])
    assert (loaded.new_snapshots, loaded.failed) == (1, [])
    embedded = DataDir.open(str(tmp_path))
    assert embedded.warehouse.load().new_snapshots == 10
    for table in PER_SNAPSHOT_TABLES:
        select = f"SELECT * EXCLUDE (snapshot_id) FROM {table} WHERE snapshot_id = ? ORDER BY ALL"
        derived = data.warehouse.query(select, [sid]).to_pylist()
        assert derived == embedded.warehouse.query(select, [sid]).to_pylist(), table
        assert derived or table == "anomaly_score_stats", table  # a classifier has no scores


def block(learn_id: int) -> LearnBlock:
    return LearnBlock(7, "Project", 1, "Impulse", learn_id, "keras", "Classifier", "Classification")


def test_the_ducklake_writes_zstd_parquet_in_version_2_encodings(
    servers: tuple[S3, Postgres, Any], tmp_path: Path,
) -> None:
    """What a fan-out's loads encode and upload: zstd pages in Parquet's version 2 encodings
    (delta for the integers and text checked here), not version 1's plain pages; and the
    warehouse's reader reads back the rows the lake holds."""
    import duckdb

    _, pg, createdb = servers
    createdb("encodings")
    data = DataDir.open(str(tmp_path), warehouse="ducklake:postgres:" + pg.conninfo("encodings"))
    ingest(data, FIRST, T0)
    assert data.warehouse.load().new_snapshots == 1
    files = [str(p) for p in (tmp_path / "warehouse" / "main" / "predictions").glob("*.parquet")]
    assert files, sorted(str(p) for p in (tmp_path / "warehouse").rglob("*"))
    chunks = duckdb.sql("SELECT path_in_schema AS col, compression, encodings FROM parquet_metadata(?)",
                        params=[files]).fetchall()
    assert {compression for _, compression, _ in chunks} == {"ZSTD"}
    encodings = {col: set(found.split(", ")) for col, _, found in chunks}
    v2 = {"DELTA_BINARY_PACKED", "DELTA_LENGTH_BYTE_ARRAY", "BYTE_STREAM_SPLIT"}
    assert encodings["sample_id"] & v2 and encodings["model_type"] & v2, encodings
    windows = data.warehouse.query(
        "SELECT sample_id, start_ms, prediction FROM predictions ORDER BY ALL").to_pylist()
    assert windows == data.store.lake.dataset("predictions").to_table(
        columns=["sample_id", "start_ms", "prediction"]).sort_by(
        [("sample_id", "ascending"), ("start_ms", "ascending"), ("prediction", "ascending")]).to_pylist()


def test_loaders_at_once_load_every_snapshot_once_however_many_groups_they_race_over(
    servers: tuple[S3, Postgres, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A fan-out's runs load at once: each conflict means another load committed, and a loader
    goes on for as long as that keeps happening (more groups than LOAD_ATTEMPTS here)."""
    import threading

    import ei_assets.warehouse.warehouse as warehouse_module

    _, pg, createdb = servers
    createdb("racing")
    data = DataDir.open(str(tmp_path), warehouse="ducklake:postgres:" + pg.conninfo("racing"))
    data.warehouse.load()  # the schema, as a fan-out day finds it
    blocks = 3 * warehouse_module.LOAD_ATTEMPTS
    for learn_id in range(1, blocks + 1):
        ingest(data, FIRST, T0, LearnBlock(7, "Project", 1, "Impulse", learn_id, "keras", "C", "K"))
    monkeypatch.setattr(warehouse_module, "BATCH_BYTES", 1)  # a transaction per snapshot
    results: list[object] = []

    def load() -> None:
        try:
            results.append(data.warehouse.load().new_snapshots)
        except Exception as exc:
            results.append(exc)

    loaders = [threading.Thread(target=load) for _ in range(4)]
    for loader in loaders:
        loader.start()
    for loader in loaders:
        loader.join()
    assert all(isinstance(n, int) for n in results), results
    assert sum(results) == blocks  # type: ignore[arg-type]
    counts = data.warehouse.query(
        "SELECT count(*) AS n, count(DISTINCT learn_id) AS blocks FROM snapshots").to_pylist()
    assert counts == [{"n": blocks, "blocks": blocks}]
    predictions = data.warehouse.query("SELECT count(*) AS n FROM predictions").to_pylist()[0]["n"]
    assert predictions == data.store.lake.dataset("predictions").count_rows() > 0


def test_an_s3_data_dir_that_cannot_be_written_is_named_before_any_work(
    servers: tuple[S3, Postgres, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Small files go up as one PutObject on close (allow_delayed_open), so opening a stream no
    longer checks the bucket: the data dir's write probe still must."""
    s3, _, _ = servers
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=r"EI_DATA_DIR: 's3://no-such-bucket/ei' is not writable"):
        resolve_data_dir("s3://no-such-bucket/ei")
    s3.create_bucket("writable")
    filesystem, base = resolve_data_dir("s3://writable/ei")
    assert filesystem.get_file_info(base).type.name == "Directory"
    assert filesystem.get_file_info(pafs.FileSelector(base)) == []  # the probe is gone


def test_the_kubernetes_code_location_runs_steps_as_jobs() -> None:
    from ei_assets.k8s import defs

    job = defs.resolve_job_def("refresh")
    assert job.executor_def.name == "k8s"
    assert {spec.key.to_user_string() for spec in defs.resolve_all_asset_specs()} >= {
        "learn_blocks", "warehouse/budget_fit", "report"}


def test_a_snapshot_the_ducklake_cannot_load_is_refused_alone(
    servers: tuple[S3, Postgres, Any], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Isolation in the scale-out mode: lake on S3, DuckLake in Postgres."""
    s3, pg, createdb = servers
    for name, value in s3.env.items():
        monkeypatch.setenv(name, value)
    s3.create_bucket("refused")
    createdb("refused")
    data = DataDir.open("s3://refused/ei", warehouse="ducklake:postgres:" + pg.conninfo("refused"))
    other = LearnBlock(7, "Project", 1, "Impulse", 4, "keras", "Copy", "Classification")
    ingest(data, FIRST, T0)
    bad = ingest(data, RETRAINED, T0, other)
    with data.store.filesystem.open_output_stream(data.store.lake.file("predictions", 7, 4, bad)) as out:
        out.write(b"not parquet")
    report = data.warehouse.load()
    assert [(f.project_id, f.learn_id, f.snapshot_id) for f in report.failed] == [(7, 4, bad)]
    assert report.new_snapshots == 1
    loaded = data.warehouse.query("SELECT DISTINCT learn_id FROM predictions").to_pylist()
    assert loaded == [{"learn_id": 3}]
    assert not [f for f in data.store.lake.files("snapshots") if "learn_id=4" in f]
    assert data.store.raw.unloadable(7, 4, bad) is not None
    assert data.warehouse.load().failed == []
