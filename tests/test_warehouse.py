"""The DuckDB warehouse: comparison columns by hand-computed numbers, incremental loads, one
writer at a time, read-only queries, and rebuilds equal to the incremental result."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
import pytest

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.pipeline.rebuild import rebuild
from ei_assets.pipeline.refresh import BlockResult, discoveries_table, fetch_log_table
from ei_assets.schema import PER_SNAPSHOT_TABLES, SNAPSHOT_TABLES, WAREHOUSE_TABLES
from ei_assets.storage.lake import Lake
from ei_assets.studio import LearnBlock
from ei_assets.warehouse import (
    ReadOnlyQueryError,
    Thresholds,
    Warehouse,
    WarehouseBusyError,
)
from tests import docs

BLOCK = LearnBlock(7, "Project", 1, "Impulse", 3, "keras", "Classifier", "Classification")
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def w(sample: int, prediction: str, label: str = "a") -> dict[str, Any]:
    return docs.window(sample, 0, label, prediction)


def perf_rows(m4: tuple[float, int, int], eon: tuple[int, int], extra: list[dict[str, Any]] | None = None
              ) -> list[dict[str, Any]]:
    latency, ram, rom = m4
    row = docs.perf("cortex-m4f-80mhz", default=True, latency=latency, ram=ram, rom=rom)
    row["eon"] = {"ramRequired": eon[0], "romRequired": eon[1], "arenaSize": 1, "modelSize": 1}
    return [row, *(extra or [])]


def model_doc(created: str, f32: dict[str, Any], i8: dict[str, Any],
              akida: dict[str, Any] | None = None) -> dict[str, Any]:
    rows = [
        docs.metrics("float32", f32["preds"], accuracy=f32["acc"], loss=f32["loss"],
                     onDevicePerformance=f32["perf"]),
        docs.metrics("int8", i8["preds"], accuracy=i8["acc"], loss=i8["loss"],
                     onDevicePerformance=i8["perf"]),
    ]
    if akida:
        rows.append(docs.metrics("akida", [], accuracy=akida["acc"], loss=akida["loss"],
                                 onDevicePerformance=[]))
    return docs.keras_doc(rows, created=created)


FIRST = model_doc(
    "2026-10-01T00:00:00Z",
    {"acc": 0.90, "loss": 0.20, "preds": [w(1, "a"), w(2, "b"), w(3, "a"), w(4, "b")],
     "perf": perf_rows((100, 1000, 4000), (800, 3500),
                       [docs.perf("zero-target", ram=0, rom=0, latency=0)])},
    {"acc": 0.88, "loss": 0.25, "preds": [w(1, "a"), w(2, "b"), w(3, "b"), w(4, "b")],
     "perf": perf_rows((40, 400, 1000), (300, 900),
                       [docs.perf("zero-target", ram=50, rom=60, latency=5),
                        docs.perf("int8-only", ram=10, rom=20, latency=1)])},
    akida={"acc": 0.85, "loss": 0.3},
)
RETRAINED = model_doc(
    "2026-10-05T00:00:00Z",
    {"acc": 0.905, "loss": 0.19, "preds": [w(1, "a"), w(2, "b"), w(3, "a"), w(4, "b")],
     "perf": perf_rows((100, 1000, 4000), (800, 3500))},
    {"acc": 0.86, "loss": 0.27, "preds": [w(1, "a"), w(2, "a"), w(3, "b"), w(4, "b")],
     "perf": perf_rows((45, 400, 1000), (300, 900))},
)


def ingest(data: DataDir, doc: dict[str, Any], when: datetime, block: LearnBlock = BLOCK) -> str:
    """What refresh does for one block: discovery log, raw + lake, fetch log."""
    saved = data.store.save(block, when, {"keras": docs.encode(doc)})
    sid, is_new = saved.snapshot.snapshot_id, saved.is_new
    data.store.raw.append_log("discoveries", discoveries_table([block], when))
    result = BlockResult(block, "refreshed" if is_new else "unchanged", sid, fetches=[{
        "fetched_at": when, "project_id": block.project_id, "learn_id": block.learn_id,
        "endpoint": "keras", "http_status": 200, "ok": True, "attempts": 1, "duration_ms": 5.0,
        "bytes": 100, "snapshot_id": sid, "changed": is_new, "error": None}])
    data.store.raw.append_log("fetch_log", fetch_log_table([result]))
    return sid


@pytest.fixture
def data(tmp_path: Path) -> DataDir:
    return DataDir.open(str(tmp_path), lock_timeout=1.0)


def q(data: DataDir, sql: str) -> list[dict[str, Any]]:
    return data.warehouse.query(sql).to_pylist()


def test_comparison_columns_by_hand(data: DataDir) -> None:
    sid = ingest(data, FIRST, T0)
    data.warehouse.load()
    rows = {(r["model_type"], r["mcu"], r["engine"]): r
            for r in q(data, "SELECT * FROM model_type_comparison")}
    tflite = rows[("int8", "cortex-m4f-80mhz", "tflite")]
    assert tflite["snapshot_id"] == sid and tflite["baseline_model_type"] == "float32"
    assert tflite["accuracy_delta"] == pytest.approx(0.88 - 0.90)
    assert tflite["loss_delta"] == pytest.approx(0.05)
    assert (tflite["latency_ms"], tflite["baseline_latency_ms"]) == (40, 100)
    assert tflite["latency_ratio"] == pytest.approx(0.4)
    assert tflite["ram_ratio"] == pytest.approx(0.4) and tflite["rom_ratio"] == pytest.approx(0.25)
    assert tflite["prediction_agreement"] == pytest.approx(0.75)  # window 3 flips
    assert tflite["is_default"] is True and tflite["model_created_at"] == datetime(2026, 10, 1, tzinfo=UTC)
    eon = rows[("int8", "cortex-m4f-80mhz", "eon")]
    assert eon["ram_ratio"] == pytest.approx(300 / 800) and eon["rom_ratio"] == pytest.approx(900 / 3500)
    zero = rows[("int8", "zero-target", "tflite")]  # float32 measured 0 bytes: ratio NULL
    assert zero["baseline_ram_bytes"] == 0 and zero["ram_ratio"] is None
    assert zero["latency_ratio"] is None
    only = rows[("int8", "int8-only", "tflite")]  # no float32 on this target: baseline NULL
    assert only["baseline_ram_bytes"] is None and only["ram_ratio"] is None
    assert only["accuracy_delta"] == pytest.approx(-0.02)  # accuracy is per model type
    akida = rows[("akida", None, None)]  # no predictions and no profiling yet
    assert akida["prediction_agreement"] is None and akida["accuracy_delta"] == pytest.approx(-0.05)
    assert all(model_type != "float32" for model_type, _, _ in rows)


def test_missing_baseline_model_type_gives_nulls(data: DataDir) -> None:
    only_int8 = docs.keras_doc([docs.metrics("int8", [w(1, "a")], accuracy=0.8)])
    ingest(data, only_int8, T0)
    data.warehouse.load()
    (row,) = q(data, "SELECT * FROM model_type_comparison WHERE engine = 'tflite'")
    assert row["baseline_accuracy"] is None and row["accuracy_delta"] is None
    assert row["latency_ratio"] is None and row["prediction_agreement"] is None


def test_trend_flags_a_regression_across_a_retrain(data: DataDir) -> None:
    first = ingest(data, FIRST, T0)
    data.warehouse.load()
    second = ingest(data, RETRAINED, T0 + timedelta(days=4))
    data.warehouse.load()
    trend = q(data, "SELECT * FROM model_type_trend WHERE mcu = 'cortex-m4f-80mhz' "
                    "ORDER BY model_type, engine, model_created_at")
    by = {(r["model_type"], r["engine"], r["snapshot_id"]): r for r in trend}
    old, new = by[("int8", "tflite", first)], by[("int8", "tflite", second)]
    assert old["previous_snapshot_id"] is None and old["is_regression"] is False
    assert new["previous_snapshot_id"] == first
    assert new["accuracy_change"] == pytest.approx(0.86 - 0.88)
    assert new["latency_change"] == pytest.approx(45 / 40 - 1)
    assert new["ram_change"] == pytest.approx(0.0) and new["is_regression"] is True
    f32 = by[("float32", "tflite", second)]
    assert f32["accuracy_change"] == pytest.approx(0.005) and f32["is_regression"] is False
    disagreements = q(data, f"SELECT * FROM prediction_disagreements WHERE snapshot_id = '{second}'")
    assert [(r["sample_id"], r["prediction"], r["baseline_prediction"]) for r in disagreements] == [
        (2, "a", "b"), (3, "b", "a")]
    # sample 2 is labelled "a": int8 got it right where float32 did not
    assert (disagreements[0]["prediction_correct"], disagreements[0]["baseline_prediction_correct"]) == (
        True, False)


def test_regression_thresholds_are_configurable(tmp_path: Path) -> None:
    strict = DataDir.open(str(tmp_path), Thresholds(accuracy_drop=0.5, resource_rise=0.5))
    ingest(strict, FIRST, T0)
    ingest(strict, RETRAINED, T0 + timedelta(days=4))
    strict.warehouse.load()
    assert q(strict, "SELECT count(*) AS n FROM model_type_trend WHERE is_regression") == [{"n": 0}]


def test_incremental_loads_add_only_what_is_new(data: DataDir) -> None:
    sid = ingest(data, FIRST, T0)
    report = data.warehouse.load()
    assert report.new_snapshots == 1 and report.rows["predictions"] == 8
    counts = {t: q(data, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in WAREHOUSE_TABLES}
    # the same response fetched again: one more fetch, no new rows anywhere else
    again = ingest(data, FIRST, T0 + timedelta(hours=1))
    assert again == sid
    report = data.warehouse.load()
    assert report.new_snapshots == 0
    after = {t: q(data, f"SELECT count(*) AS n FROM {t}")[0]["n"] for t in WAREHOUSE_TABLES}
    assert after == counts | {"fetch_log": counts["fetch_log"] + 1}
    (snap,) = q(data, "SELECT * FROM snapshots")
    assert snap["first_fetched_at"] == T0 and snap["last_fetched_at"] == T0 + timedelta(hours=1)
    (block,) = q(data, "SELECT * FROM learn_blocks")
    assert block["last_seen_at"] == T0 + timedelta(hours=1) and block["is_present"] is True
    # a retrain adds exactly one snapshot
    ingest(data, RETRAINED, T0 + timedelta(days=1))
    assert data.warehouse.load().new_snapshots == 1
    assert q(data, "SELECT count(*) AS n FROM snapshots") == [{"n": 2}]
    assert data.warehouse.load().rows == {}


def test_a_load_with_nothing_new_lists_only_the_snapshots_files(
        data: DataDir, monkeypatch: pytest.MonkeyPatch) -> None:
    """The warehouse step after a refresh that loaded what it stored finds nothing new: on object
    storage every listing is a request, so only the snapshots' own files are listed for it."""
    listed: list[str] = []
    real = Lake.file_infos

    def file_infos(lake: Lake, table: str) -> list[pafs.FileInfo]:
        listed.append(table)
        return real(lake, table)

    monkeypatch.setattr(Lake, "file_infos", file_infos)
    ingest(data, FIRST, T0)
    report = data.warehouse.load()
    assert report.new_snapshots == 1 and report.rows["predictions"] == 8
    assert sorted(listed) == sorted(SNAPSHOT_TABLES)  # a new snapshot: its files in every table
    listed.clear()
    ingest(data, FIRST, T0 + timedelta(hours=1))  # fetched again, unchanged
    report = data.warehouse.load()
    assert report.new_snapshots == 0 and report.rows == {"fetch_log": 1, "discoveries": 1}
    assert listed == ["snapshots"]


def test_a_block_gone_from_the_impulse_is_no_longer_present(data: DataDir) -> None:
    other = LearnBlock(7, "Project", 1, "Impulse", 9, "anomaly", "Anomaly", "Anomaly")
    ingest(data, FIRST, T0)
    data.store.raw.append_log("discoveries", discoveries_table([BLOCK, other], T0))
    data.store.raw.append_log("discoveries", discoveries_table([BLOCK], T0 + timedelta(days=1)))
    data.warehouse.load()
    present = {r["learn_id"]: r["is_present"] for r in q(data, "SELECT * FROM learn_blocks")}
    assert present == {3: True, 9: False}


def test_uncommitted_snapshots_are_not_loaded(data: DataDir) -> None:
    sid = ingest(data, FIRST, T0)
    commit = Path(data.store.lake.file("snapshots", 7, 3, sid))
    commit.unlink()  # as if the process died before the last rename
    assert data.warehouse.load().new_snapshots == 0
    assert q(data, "SELECT count(*) AS n FROM predictions") == [{"n": 0}]


def test_sql_is_read_only(data: DataDir) -> None:
    ingest(data, FIRST, T0)
    data.warehouse.load()
    for statement in ("DELETE FROM snapshots", "DROP TABLE predictions",
                      "COPY snapshots TO '/tmp/x.csv'", "SELECT 1; DELETE FROM snapshots",
                      "CREATE TABLE x AS SELECT 1"):
        with pytest.raises(ReadOnlyQueryError):
            data.warehouse.query(statement)
    assert q(data, "SELECT count(*) AS n FROM snapshots") == [{"n": 1}]


HOLD_LOCK = textwrap.dedent("""
    import sys, time, duckdb
    con = duckdb.connect(sys.argv[1])
    con.execute("CREATE TABLE IF NOT EXISTS held (x INT)")
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
    con.close()
""")


def test_a_second_writer_waits_then_fails_clearly_and_the_file_stays_intact(data: DataDir) -> None:
    ingest(data, FIRST, T0)
    data.warehouse.load()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, data.warehouse.path, "3"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    started = time.monotonic()
    with pytest.raises(WarehouseBusyError, match="locked by another process"):
        data.warehouse.load()
    assert 0.9 <= time.monotonic() - started < 3.0  # waited its timeout, not forever
    holder.wait(timeout=10)
    assert q(data, "SELECT count(*) AS n FROM snapshots") == [{"n": 1}]


def test_a_second_writer_that_waits_long_enough_succeeds(tmp_path: Path) -> None:
    data = DataDir.open(str(tmp_path), lock_timeout=15.0)
    ingest(data, FIRST, T0)
    data.warehouse.load()
    ingest(data, RETRAINED, T0 + timedelta(days=1))
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, data.warehouse.path, "1.5"],
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    assert data.warehouse.load().new_snapshots == 1
    holder.wait(timeout=10)
    assert q(data, "SELECT count(*) AS n FROM snapshots") == [{"n": 2}]


def test_threads_of_one_process_open_the_warehouse_at_the_same_time(data: DataDir) -> None:
    """A refresh's loading thread and a reader in another thread (DuckDB 1.4+ refuses a file a
    connection closing at that moment still holds: connect waits that moment out)."""
    ingest(data, FIRST, T0)
    data.warehouse.load()
    errors: list[str] = []

    def open_and_count() -> None:
        for _ in range(400):
            try:
                with data.warehouse.connect() as con:
                    con.execute("SELECT count(*) FROM snapshots").fetchall()
            except Exception as exc:
                errors.append(str(exc))

    threads = [threading.Thread(target=open_and_count) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


COUNT_SNAPSHOTS = ("import sys, duckdb; print(duckdb.connect(sys.argv[1], read_only=True)"
                   ".execute('SELECT count(*) FROM snapshots').fetchone()[0])")


def test_a_writer_opened_inside_another_shares_the_file_which_the_last_one_releases(
    data: DataDir,
) -> None:
    """As `rebuild` does: it holds a connection (the lock) while its load opens its own. Both
    write the same file; once the last closes, another process reads what they wrote."""
    ingest(data, FIRST, T0)
    data.warehouse.load()
    ingest(data, RETRAINED, T0 + timedelta(days=1))
    with data.warehouse.connect() as outer:
        assert data.warehouse.load().new_snapshots == 1
        assert outer.execute("SELECT count(*) FROM snapshots").fetchone() == (2,)
    counted = subprocess.run([sys.executable, "-c", COUNT_SNAPSHOTS, data.warehouse.path],
                             capture_output=True, text=True, check=True, timeout=60)
    assert counted.stdout.strip() == "2"


def test_a_reader_waits_for_a_writer_of_its_own_process(tmp_path: Path) -> None:
    """DuckDB lets one instance of a process have the file: a reader opened while a writer of
    the same process holds it waits for the writer to close, then reads what it committed."""
    data = DataDir.open(str(tmp_path), lock_timeout=60.0)
    ingest(data, FIRST, T0)
    data.warehouse.load()
    opened = threading.Event()

    def write() -> None:
        with data.warehouse.connect() as con:
            opened.set()
            time.sleep(0.3)
            con.execute("DELETE FROM learn_blocks")

    writer = threading.Thread(target=write)
    writer.start()
    assert opened.wait(30)
    counted = q(data, "SELECT count(*) AS n FROM learn_blocks")
    writer.join()
    assert counted == [{"n": 0}]


def test_a_load_writes_row_groups_of_the_write_size_as_it_inserts(data: DataDir) -> None:
    """Rows that fill no row group wait in DuckDB's log and are compressed at the checkpoint, on
    one core: a load's tables are written in row groups of WRITE_ROW_GROUP_SIZE rows instead of
    DuckDB's 122,880, and every row is in the file once the load is over."""
    from ei_assets.warehouse.embedded import WRITE_ROW_GROUP_SIZE

    windows = [docs.window(i, 0, "a", "ab"[i % 2]) for i in range(WRITE_ROW_GROUP_SIZE + 5000)]
    doc = docs.keras_doc([docs.metrics("float32", windows), docs.metrics("int8", windows)])
    ingest(data, doc, T0)
    data.warehouse.load()
    groups = q(data, "SELECT row_group_id, max(count) AS n FROM pragma_storage_info('predictions') "
                     "GROUP BY ALL ORDER BY ALL")
    assert sum(g["n"] for g in groups) == 2 * len(windows)
    assert max(g["n"] for g in groups) == WRITE_ROW_GROUP_SIZE, groups


def dump(data: DataDir) -> dict[str, list[tuple[Any, ...]]]:
    tables = {}
    for table in (*WAREHOUSE_TABLES, "model_type_comparison", "model_type_trend",
                  "prediction_disagreements"):
        rows = data.warehouse.query(f"SELECT * FROM {table}").to_pylist()
        tables[table] = sorted(tuple(sorted((k, repr(v)) for k, v in r.items())) for r in rows)
    return tables


def test_rebuild_equals_the_incremental_result(data: DataDir, tmp_path: Path) -> None:
    ingest(data, FIRST, T0)
    data.warehouse.load()
    ingest(data, FIRST, T0 + timedelta(hours=2))
    ingest(data, RETRAINED, T0 + timedelta(days=1))
    anomaly = LearnBlock(7, "Project", 1, "Impulse", 4, "anomaly", "A", "A")
    data.store.save(anomaly, T0, {"anomaly": docs.encode(docs.anomaly_doc())})
    data.warehouse.load()
    incremental = dump(data)
    assert len(incremental["snapshots"]) == 3
    report = rebuild(data.store, data.warehouse)
    assert report.snapshots == 3 and report.failed == []
    assert dump(data) == incremental


def test_sql_command_prints_an_aligned_table_and_refuses_writes(data: DataDir, tmp_path: Path) -> None:
    ingest(data, FIRST, T0)
    data.warehouse.load()
    env = {"EI_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([sys.executable, "-m", "ei_assets.cli", "sql",
                         "SELECT model_type, round(accuracy, 2) AS acc FROM model_metrics ORDER BY 1"],
                        capture_output=True, text=True, env=env, timeout=60)
    assert ok.returncode == 0, ok.stderr
    box = [line for line in ok.stdout.splitlines() if line.strip()]
    cells = [[cell.strip() for cell in line.strip("│").split("│")] for line in box if "│" in line]
    assert cells == [["model_type", "acc"], ["varchar", "double"],
                     ["akida", "0.85"], ["float32", "0.9"], ["int8", "0.88"]]
    assert len({len(line) for line in box}) == 1  # aligned
    two = subprocess.run([sys.executable, "-m", "ei_assets.cli", "sql", "--max-rows", "2",
                          "SELECT * FROM predictions"], capture_output=True, text=True, env=env,
                         timeout=60)
    table_lines = [line for line in two.stdout.splitlines() if "│" in line]
    assert two.returncode == 0 and any("·" in line for line in table_lines)  # rows left out
    assert len([line for line in table_lines if "·" not in line]) == 2 + 2  # header, types, 2 rows
    assert "snapshot_id" in two.stdout and "n_bounding_boxes" in two.stdout  # every column
    refused = subprocess.run([sys.executable, "-m", "ei_assets.cli", "sql", "DELETE FROM snapshots"],
                             capture_output=True, text=True, env=env, timeout=60)
    assert refused.returncode == 2 and "only SELECT" in refused.stderr


def test_per_snapshot_tables_are_filled_at_load_and_again_when_their_sql_changes(data: DataDir) -> None:
    """A warehouse of an older version (prediction_agreement a view, no per-snapshot tables)
    gets them filled for every snapshot it holds; a new snapshot adds only its own rows."""
    first = ingest(data, FIRST, T0)
    data.warehouse.load()
    expected = dump(data)
    with data.warehouse.connect() as con:  # what an older warehouse looked like
        for table in PER_SNAPSHOT_TABLES:
            con.execute(f'DROP TABLE "{table}"')
        con.execute("CREATE VIEW prediction_agreement AS SELECT NULL AS snapshot_id")
        con.execute("DELETE FROM _schema")
    data.warehouse.load()
    assert dump(data) == expected
    assert q(data, "SELECT count(*) AS n FROM prediction_disagreement_rows") == [{"n": 1}]
    before = q(data, "SELECT * FROM prediction_disagreement_rows")
    second = ingest(data, RETRAINED, T0 + timedelta(days=4))
    data.warehouse.load()
    assert {r["snapshot_id"] for r in q(data, "SELECT snapshot_id FROM prediction_agreement")} == {
        first, second}
    assert q(data, f"SELECT * FROM prediction_disagreement_rows WHERE snapshot_id = '{first}'") == before


def test_a_load_in_many_transactions_equals_one_in_a_single(
    data: DataDir, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """New snapshots load in groups of about BATCH_BYTES of files, each group its own transaction:
    one snapshot a group gives what one group of all gives, and counts every snapshot once."""
    import ei_assets.warehouse.warehouse as warehouse_module

    ingest(data, FIRST, T0)
    ingest(data, RETRAINED, T0 + timedelta(days=1))
    anomaly = LearnBlock(7, "Project", 1, "Impulse", 4, "anomaly", "A", "A")
    data.store.save(anomaly, T0, {"anomaly": docs.encode(docs.anomaly_doc())})
    whole = data.warehouse.load()
    expected = dump(data)
    data.warehouse.reset()
    monkeypatch.setattr(warehouse_module, "BATCH_BYTES", 1)
    seen: list[int] = []
    original = warehouse_module.Warehouse._load_snapshots

    def counting(self: Warehouse, con: Any, batch: list[str], *args: Any) -> None:
        seen.append(len(batch))
        original(self, con, batch, *args)

    monkeypatch.setattr(warehouse_module.Warehouse, "_load_snapshots", counting)
    split = data.warehouse.load()
    assert seen == [1, 1, 1]
    assert (split.new_snapshots, split.rows) == (whole.new_snapshots, whole.rows) == (3, split.rows)
    assert dump(data) == expected


def test_a_load_group_too_large_for_the_memory_cap_loads_without_it(
    data: DataDir, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A load keeps DuckDB's memory to LOAD_MEMORY; a group that cannot fit in it (here, a cap
    of 1 MB) is loaded without the cap rather than failed, and the log says so."""
    import ei_assets.warehouse.warehouse as warehouse_module

    ingest(data, FIRST, T0)
    ingest(data, RETRAINED, T0 + timedelta(days=1))
    whole = data.warehouse.load()
    expected = dump(data)
    data.warehouse.reset()
    monkeypatch.setitem(warehouse_module.LOAD_MEMORY, "duckdb", "1MB")
    with caplog.at_level(logging.INFO, logger="ei_assets.warehouse"):
        capped = data.warehouse.load()
    assert "needs more than 1MB of memory" in caplog.text
    assert (capped.new_snapshots, capped.rows) == (whole.new_snapshots, whole.rows)
    assert dump(data) == expected


def report_entry(f1: float, support: int = 2) -> dict[str, Any]:
    return {"precision": f1, "recall": f1, "f1-score": f1, "support": support}


def test_class_names_come_from_the_report_index(data: DataDir) -> None:
    """Studio keys its report by class index; "1" (snake) never occurs and is left out."""
    f32 = {"0": report_entry(0.8), "2": report_entry(0.6), "9": report_entry(0.5), "accuracy": 0.7,
           "weighted avg": report_entry(0.7, 4)}
    i8 = {"0": report_entry(0.75), "2": report_entry(0.65), "9": report_entry(0.5), "accuracy": 0.7,
          "weighted avg": report_entry(0.7, 4)}
    doc = docs.keras_doc([docs.metrics("float32", [], report=f32), docs.metrics("int8", [], report=i8)],
                         classNames=["idle", "snake", "wave"])
    ingest(data, doc, T0)
    data.warehouse.load()
    names = q(data, "SELECT DISTINCT class, class_name FROM classification_report ORDER BY class")
    assert [(r["class"], r["class_name"]) for r in names] == [
        ("0", "idle"), ("2", "wave"), ("9", None), ("accuracy", None), ("weighted avg", None)]
    deltas = q(data, "SELECT class, class_name, f1_delta FROM class_metric_deltas ORDER BY class")
    assert [(r["class"], r["class_name"], round(r["f1_delta"], 4)) for r in deltas] == [
        ("0", "idle", -0.05), ("2", "wave", 0.05), ("9", None, 0.0), ("weighted avg", None, 0.0)]


def test_a_warehouse_from_before_block_identity_and_class_names_is_upgraded_in_place(
        data: DataDir) -> None:
    doc = docs.keras_doc([docs.metrics("float32", [w(1, "a")], report={"1": report_entry(0.9)}),
                          docs.metrics("int8", [w(1, "b")], report={"1": report_entry(0.8)})],
                         classNames=["idle", "wave"])
    ingest(data, doc, T0)
    data.warehouse.load()
    with data.warehouse.connect() as con:  # as the previous release left it
        con.execute("ALTER TABLE classification_report DROP COLUMN class_name")
        con.execute("ALTER TABLE prediction_agreement DROP COLUMN project_id")
        con.execute("ALTER TABLE prediction_agreement DROP COLUMN learn_id")
        con.execute("DELETE FROM _schema")
    assert data.warehouse.load().new_snapshots == 0
    assert q(data, "SELECT class, class_name FROM class_metric_deltas") == [
        {"class": "1", "class_name": "wave"}]
    agreement = "SELECT DISTINCT project_id, learn_id, prediction_agreement FROM model_type_comparison"
    assert q(data, agreement) == [{"project_id": 7, "learn_id": 3, "prediction_agreement": 0.0}]


def test_a_value_duckdb_refuses_fails_that_snapshot_alone(data: DataDir) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ei_assets.pipeline.saving import UnloadableSnapshotError

    other = LearnBlock(7, "Project", 1, "Impulse", 4, "keras", "Copy", "Classification")
    ingest(data, FIRST, T0)
    bad = ingest(data, RETRAINED, T0, other)
    path = data.store.lake.file("predictions", 7, 4, bad)
    rows = pq.read_table(path)  # as another writer left it: sample ids as text DuckDB cannot cast
    pq.write_table(rows.set_column(rows.schema.get_field_index("sample_id"), "sample_id",
                                   pa.array(["sample-x"] * rows.num_rows)), path)
    report = data.warehouse.load()
    assert [(f.project_id, f.learn_id, f.snapshot_id) for f in report.failed] == [(7, 4, bad)]
    assert "Conversion Error" in report.failed[0].reason and "sample-x" in report.failed[0].reason
    assert report.new_snapshots == 1
    for table in ("snapshots", "predictions", "model_metrics", "on_device_performance"):
        assert q(data, f"SELECT DISTINCT learn_id FROM {table}") == [{"learn_id": 3}], table
    left = [f for t in ("snapshots", "predictions") for f in data.store.lake.files(t) if "learn_id=4" in f]
    assert left == []
    assert q(data, "SELECT learn_id, error IS NOT NULL AS failed FROM fetch_log ORDER BY 1") == [
        {"learn_id": 3, "failed": False}, {"learn_id": 4, "failed": True}]
    with pytest.raises(UnloadableSnapshotError, match="refused by the warehouse load"):
        data.store.save(other, T0, {"keras": docs.encode(RETRAINED)})  # the same bytes again
    assert data.warehouse.load().failed == []  # nothing of it is left to try
