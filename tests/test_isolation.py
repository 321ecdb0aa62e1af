"""One learn block never sinks another (contract sections 2, 4 and 5), run as a user runs it:
`ei-assets refresh` against the simulator over real HTTP. A block of a type with no metadata
endpoint is listed and is no error; two blocks answering with identical bytes each keep their
snapshot and rows; a document built to fail at each stage (decode, flatten, lake, warehouse load)
fails its own block, named, and every other snapshot loads whole, on this refresh and the next."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pyarrow.parquet as pq
import pytest

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.pipeline.refresh import refresh
from ei_assets.schema import SNAPSHOT_TABLES
from ei_assets.settings import ApiKey
from ei_assets.simulator import Simulator, WorldConfig
from ei_assets.studio import RetryPolicy, StudioClient
from tests.docs import encode, keras_doc, metrics, window
from tests.test_cli import ei

pytestmark = pytest.mark.slow

KERAS = "/api/{project}/training/keras/{learn}/metadata"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=40)) as simulator:
        yield simulator


def env(sim: Simulator, data: Path) -> dict[str, str]:
    return {"EI_API_URL": sim.url, "EI_API_KEY": ",".join(sim.api_keys), "EI_DATA_DIR": str(data)}


def body(sim: Simulator, project: int, learn: int) -> bytes:
    key = sim.world.projects[project].api_key
    return httpx.get(sim.url + KERAS.format(project=project, learn=learn), timeout=30,
                     headers={"x-api-key": key}, params={"excludeLabels": "true"}).content


def serve(sim: Simulator, project: int, learn: int, content: bytes) -> None:
    sim.faults.serve_body(KERAS.format(project=project, learn=learn) + "$", content)


def rows_by_block(data: Path) -> dict[tuple[int, int], dict[str, int]]:
    """Rows of every snapshot table in the warehouse, per learn block."""
    con = duckdb.connect(str(data / "ei.duckdb"), read_only=True)
    out: dict[tuple[int, int], dict[str, int]] = {}
    for table in SNAPSHOT_TABLES:
        for project, learn, n in con.execute(
                f'SELECT project_id, learn_id, count(*) FROM "{table}" GROUP BY ALL').fetchall():
            out.setdefault((project, learn), {})[table] = n
    con.close()
    return out


def lake_rows(data: Path, project: int, learn: int) -> dict[str, int]:
    """Rows of a block's files in the lake, per table: what a whole snapshot has."""
    out = {}
    for table in SNAPSHOT_TABLES:
        folder = data / "lake" / table / f"project_id={project}" / f"learn_id={learn}"
        files = list(folder.glob("*.parquet"))
        if files:
            out[table] = sum(pq.read_metadata(f).num_rows for f in files)
    return out


def test_an_unsupported_block_type_is_listed_once_and_is_no_error(tmp_path: Path) -> None:
    with Simulator(WorldConfig(profiling_seconds=0.0, predictions=20, unsupported_blocks=("vlm",))) as sim:
        first = ei(["refresh"], env(sim, tmp_path / "data"), tmp_path)
        second = ei(["refresh"], env(sim, tmp_path / "data"), tmp_path)
        asked = [r.path for r in sim.stats.requests]
    assert first.returncode == 0, first.stdout + first.stderr
    assert "8 refreshed, 0 unchanged, 0 failed, 1 unsupported" in first.stdout
    assert first.stdout.count("100001-91") == 1
    assert ("unsupported (no metadata endpoint is known for the type; not fetched, not an error): "
            "100001-91 (vlm)") in first.stdout
    assert "Fix or wait out" not in first.stdout
    assert second.returncode == 0
    assert "0 refreshed, 0 unchanged, 0 failed, 1 unsupported, 8 not_modified" in second.stdout
    assert not [path for path in asked if "/91/" in path]  # never fetched


def test_two_pairs_of_blocks_with_identical_responses_each_keep_every_row(
        sim: Simulator, tmp_path: Path) -> None:
    # a copied impulse (same project) and a cloned project (another one) answer the same bytes
    pairs = [((100002, 3), (100002, 6)), ((100001, 3), (100003, 6))]
    for (project, learn), (copy_project, copy_learn) in pairs:
        serve(sim, copy_project, copy_learn, body(sim, project, learn))
    data = tmp_path / "data"
    first = ei(["refresh"], env(sim, data), tmp_path)
    again = ei(["refresh", "--full"], env(sim, data), tmp_path)  # fetched again, not skipped
    assert first.returncode == 0, first.stdout + first.stderr
    assert "8 refreshed, 0 unchanged, 0 failed" in first.stdout
    assert again.returncode == 0 and "0 refreshed, 8 unchanged, 0 failed" in again.stdout
    rows = rows_by_block(data)
    con = duckdb.connect(str(data / "ei.duckdb"), read_only=True)
    snapshots = con.execute("SELECT project_id, learn_id, snapshot_id, first_fetched_at, last_fetched_at "
                            "FROM snapshots").fetchall()
    assert len(snapshots) == 8 and len({s[2] for s in snapshots}) == 6
    ids = {(project, learn): sid for project, learn, sid, *_ in snapshots}
    for original, copy in pairs:
        assert ids[original] == ids[copy]  # the same bytes: the same content id
        assert rows[copy] == rows[original] == lake_rows(data, *original) == lake_rows(data, *copy)
        for relation in ("model_type_comparison", "prediction_agreement", "class_metric_deltas",
                         "prediction_disagreements"):
            per_block = [con.execute(f"SELECT count(*) FROM {relation} WHERE project_id = ? AND learn_id = ?",
                                     list(block)).fetchone() for block in (original, copy)]
            assert per_block[0] == per_block[1], relation
            assert per_block[0] != (0,) or relation == "prediction_disagreements", relation
    # each block's fetch times are its own
    fetches = con.execute("SELECT count(*) FROM fetch_log WHERE snapshot_id IS NOT NULL").fetchone()
    assert fetches == (2 * 9,)
    con.close()
    assert all(first_at < last_at for *_, first_at, last_at in snapshots)


def test_a_poison_document_fails_its_block_and_every_other_snapshot_loads_whole(
        sim: Simulator, tmp_path: Path) -> None:
    # flatten stage: a validation window without its prediction (required by the contract)
    poison = keras_doc([metrics("float32", [window(1, 0, "idle", "idle"), {"sampleId": 2, "startMs": 0,
                                                                          "endMs": 1000}])])
    serve(sim, 100001, 3, encode(poison))
    data = tmp_path / "data"
    runs = [ei(["refresh"], env(sim, data), tmp_path) for _ in range(2)]
    for result in runs:
        assert result.returncode == 1, result.stdout + result.stderr
        assert ("failed: 100001-3: project 100001, learn block 3: keras response, at "
                "$.modelValidationMetrics[0].predictions[1].prediction: required field missing"
                ) in result.stdout
    assert "7 refreshed, 0 unchanged, 1 failed" in runs[0].stdout
    # its project is fetched again (a block failed); the others did not change: not fetched
    assert "0 refreshed, 3 unchanged, 1 failed, 0 unsupported, 4 not_modified" in runs[1].stdout
    rows = rows_by_block(data)
    assert (100001, 3) not in rows and lake_rows(data, 100001, 3) == {}
    good = [(p.id, b.learn_id) for p, b in sim.world.blocks() if (p.id, b.learn_id) != (100001, 3)]
    assert sorted(rows) == sorted(good)
    for block in good:
        assert rows[block] == lake_rows(data, *block)
    con = duckdb.connect(str(data / "ei.duckdb"), read_only=True)
    errors = con.execute("SELECT count(*), count(error) FROM fetch_log WHERE learn_id = 3 "
                         "AND project_id = 100001").fetchone()
    con.close()
    assert errors == (2, 2)


@pytest.mark.parametrize("stage", ["decode", "lake"])
def test_a_block_failing_at_decode_or_lake_fails_alone(sim: Simulator, tmp_path: Path, stage: str) -> None:
    data = tmp_path / "data"
    if stage == "decode":
        serve(sim, 100002, 6, b'{"success": true, "created": "2026-10-01T09:30:00Z", "modelVal')
    else:  # the block's folder in the lake cannot be made: a file is in its way
        (data / "lake" / "predictions" / "project_id=100002").mkdir(parents=True)
        (data / "lake" / "predictions" / "project_id=100002" / "learn_id=6").write_text("in the way")
    result = ei(["refresh"], env(sim, data), tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "7 refreshed, 0 unchanged, 1 failed" in result.stdout
    failed = [line for line in result.stdout.splitlines() if line.startswith("  failed:")]
    assert len(failed) == 1 and failed[0].startswith("  failed: 100002-6: project 100002, learn block 6")
    assert ("is not a JSON object" if stage == "decode" else "learn_id=6") in failed[0]
    rows = rows_by_block(data)
    assert (100002, 6) not in rows and len(rows) == 7
    assert all(rows[block] == lake_rows(data, *block) for block in rows)
    assert lake_rows(data, 100002, 6) == {}


def test_a_snapshot_the_warehouse_cannot_load_is_refused_alone_and_stays_refused(
        sim: Simulator, tmp_path: Path) -> None:
    data = tmp_path / "data"
    keys = [ApiKey(k, f"#{i}") for i, k in enumerate(sim.api_keys, start=1)]
    store = DataDir.open(str(data)).store
    with StudioClient(sim.url, retry=RetryPolicy(max_attempts=2, backoff_base=0.01)) as client:
        assert refresh(client, keys, store, max_workers=4).all_refreshed
    # warehouse stage: a lake file that cannot be read (the refresh wrote it; the disk lost it)
    (bad,) = (data / "lake" / "predictions" / "project_id=100001" / "learn_id=9").glob("*.parquet")
    bad.write_bytes(bad.read_bytes()[:-40])
    sid = bad.stem
    first = ei(["refresh"], env(sim, data), tmp_path)
    second = ei(["refresh"], env(sim, data), tmp_path)
    assert first.returncode == 1, first.stdout + first.stderr
    assert "0 refreshed, 0 unchanged, 1 failed, 0 unsupported, 7 not_modified" in first.stdout
    assert (f"failed: project 100001, learn block 9: snapshot {sid} could not be loaded into the "
            "warehouse: ") in first.stdout
    assert second.returncode == 1, second.stdout + second.stderr
    assert "0 refreshed, 3 unchanged, 1 failed, 0 unsupported, 4 not_modified" in second.stdout
    assert (f"failed: 100001-9: project 100001, learn block 9: snapshot {sid} was refused by the "
            "warehouse load") in second.stdout
    assert "no magic bytes" in second.stdout.lower()
    rows = rows_by_block(data)
    assert (100001, 9) not in rows and lake_rows(data, 100001, 9) == {}
    assert len(rows) == 7 and all(rows[block] == lake_rows(data, *block) for block in rows)
    assert (data / "raw" / "project_id=100001" / "learn_id=9" / sid / "unloadable.txt").exists()
    con = duckdb.connect(str(data / "ei.duckdb"), read_only=True)
    errors = con.execute("SELECT error FROM fetch_log WHERE project_id = 100001 AND learn_id = 9 "
                         "ORDER BY fetched_at").fetchall()
    con.close()
    assert len(errors) == 3 and all(e and sid in e for (e,) in errors)
    # a rebuild starts from the raw archive, whose bytes are good: the snapshot loads then
    rebuilt = ei(["rebuild"], {"EI_DATA_DIR": str(data)}, tmp_path)
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    assert (100001, 9) in rows_by_block(data)
