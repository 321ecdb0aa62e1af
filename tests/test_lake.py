"""Raw archive and lake on the real local filesystem: layout, idempotence, atomicity, and what an
unchanged or a broken response writes (nothing)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from ei_assets.ingest.flatten import DocumentError, flatten
from ei_assets.pipeline.saving import DataStore
from ei_assets.schema import TABLES
from ei_assets.snapshot import snapshot_id
from ei_assets.studio import LearnBlock
from tests import docs

BLOCK = LearnBlock(7, "Project", 1, "Impulse", 3, "keras", "Classifier", "Classification")
WHEN = datetime(2026, 11, 1, tzinfo=UTC)


def tree(root: Path) -> dict[str, str]:
    """Every file under root with the hash of its content."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def store(tmp_path: Path) -> DataStore:
    return DataStore(pafs.LocalFileSystem(), str(tmp_path))


def test_layout_compression_and_exact_bodies(store: DataStore, tmp_path: Path) -> None:
    body = docs.encode(docs.keras_doc())
    saved = store.save(BLOCK, WHEN, {"keras": body})
    sid, is_new, rows = saved.snapshot.snapshot_id, saved.is_new, saved.rows
    assert is_new and rows["predictions"] == 4 and rows["snapshots"] == 1
    raw_dir = tmp_path / f"raw/project_id=7/learn_id=3/{sid}"
    assert sorted(p.name for p in raw_dir.iterdir()) == ["keras.json.zst", "snapshot.json"]
    compressed = (raw_dir / "keras.json.zst").read_bytes()
    assert compressed[:4] == b"\x28\xb5\x2f\xfd"  # zstd frame magic
    (archived,) = list(store.raw.snapshots())
    assert store.raw.read(archived) == {"keras": body}
    assert archived.block_type == "keras" and archived.fetched_at == WHEN
    lake_file = tmp_path / f"lake/predictions/project_id=7/learn_id=3/{sid}.parquet"
    meta = pq.ParquetFile(lake_file).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    predictions = store.lake.dataset("predictions").to_table(filter=ds.field("learn_id") == 3)
    assert predictions.num_rows == 4 and set(predictions.column("project_id").to_pylist()) == {7}
    snap = pq.read_table(tmp_path / f"lake/snapshots/project_id=7/learn_id=3/{sid}.parquet")
    assert snap.schema.equals(TABLES["snapshots"].arrow_schema)
    assert snap.column("raw_path").to_pylist() == [f"raw/project_id=7/learn_id=3/{sid}"]


def test_same_bytes_twice_changes_nothing_and_parses_nothing(
    store: DataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = docs.encode(docs.keras_doc())
    first = store.save(BLOCK, WHEN, {"keras": body})
    before = tree(tmp_path)
    mtimes = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()}

    def no_parsing(*args: object) -> None:
        raise AssertionError("bytes seen before were parsed again")

    monkeypatch.setattr("ei_assets.pipeline.saving.snapshot_id", no_parsing)
    monkeypatch.setattr("ei_assets.pipeline.saving.flatten", no_parsing)
    again = store.save(BLOCK, datetime.now(UTC), {"keras": body})
    assert (again.is_new, again.rows, again.snapshot.snapshot_id) == (False, {}, first.snapshot.snapshot_id)
    assert again.summary == first.summary  # read back from the lake's small tables
    assert tree(tmp_path) == before
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.is_file()} == mtimes


def test_the_same_json_in_other_whitespace_adds_no_rows(store: DataStore, tmp_path: Path) -> None:
    body = docs.encode(docs.keras_doc())
    first = store.save(BLOCK, WHEN, {"keras": body})
    before = tree(tmp_path)
    pretty_same_state = msgspec.json.format(body, indent=2)
    saved = store.save(BLOCK, datetime.now(UTC), {"keras": pretty_same_state})
    assert (saved.is_new, saved.rows) == (False, {})
    assert saved.snapshot.snapshot_id == first.snapshot.snapshot_id
    assert saved.summary == first.summary
    after = tree(tmp_path)
    added = sorted(set(after) - set(before))
    assert len(added) == 1 and "/_seen/" in added[0]  # only the new bytes' alias
    assert after[added[0]] == hashlib.sha256(first.snapshot.snapshot_id.encode()).hexdigest()
    assert {k: v for k, v in after.items() if k not in added} == before


def test_an_unreadable_seen_entry_costs_a_parse_not_a_wrong_id(store: DataStore, tmp_path: Path) -> None:
    body = docs.encode(docs.keras_doc())
    first = store.save(BLOCK, WHEN, {"keras": body})
    (entry,) = tmp_path.glob("raw/project_id=7/learn_id=3/_seen/*")
    entry.write_text("../../etc/passwd")
    again = store.save(BLOCK, datetime.now(UTC), {"keras": body})
    assert again.snapshot.snapshot_id == first.snapshot.snapshot_id
    assert entry.read_text() == first.snapshot.snapshot_id  # written anew


def test_seen_bytes_whose_lake_files_are_gone_are_flattened_again(store: DataStore, tmp_path: Path) -> None:
    body = docs.encode(docs.keras_doc())
    first = store.save(BLOCK, WHEN, {"keras": body})
    lake = {k: v for k, v in tree(tmp_path).items() if k.startswith("lake/")}
    for path in (tmp_path / "lake").rglob("*.parquet"):
        path.unlink()
    again = store.save(BLOCK, WHEN, {"keras": body})
    assert again.rows == first.rows
    assert {k: v for k, v in tree(tmp_path).items() if k.startswith("lake/")} == lake


def test_rewriting_a_snapshot_gives_identical_files(store: DataStore, tmp_path: Path) -> None:
    body = docs.encode(docs.keras_doc())
    bodies = {"keras": body}
    snapshot = docs.snapshot_of(bodies)
    store.lake.write_snapshot(snapshot, flatten(snapshot, bodies))
    first = tree(tmp_path)
    store.lake.write_snapshot(snapshot, flatten(snapshot, bodies))
    assert tree(tmp_path) == first


def test_a_new_state_adds_one_snapshot_and_keeps_the_old(store: DataStore, tmp_path: Path) -> None:
    store.save(BLOCK, WHEN, {"keras": docs.encode(docs.keras_doc())})
    retrained = docs.keras_doc(created="2026-11-02T00:00:00Z")
    assert store.save(BLOCK, WHEN, {"keras": docs.encode(retrained)}).is_new
    assert len(list((tmp_path / "lake/snapshots/project_id=7/learn_id=3").iterdir())) == 2
    assert len(list(store.raw.snapshots())) == 2


def test_interrupted_write_leaves_no_visible_partial_file(
    store: DataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    body = docs.encode(docs.keras_doc())
    bodies = {"keras": body}
    snapshot = docs.snapshot_of(bodies)
    import ei_assets.storage.files as storage

    real_publish = storage.publish
    calls = {"n": 0}

    def crash_on_third_rename(filesystem: pafs.FileSystem, temporary: str, path: str) -> None:
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError("simulated crash between write and rename")
        real_publish(filesystem, temporary, path)

    monkeypatch.setattr(storage, "publish", crash_on_third_rename)
    with pytest.raises(OSError, match="simulated crash"):
        store.lake.write_snapshot(snapshot, flatten(snapshot, bodies))
    files = [p for p in (tmp_path / "lake").rglob("*") if p.is_file()]
    assert all(".tmp-" not in p.name for p in files)  # temporaries are cleaned up
    assert all(pq.ParquetFile(p).metadata.num_rows >= 0 for p in files)  # all complete files
    assert not store.lake.has_snapshot(snapshot)  # not committed: readers ignore it
    monkeypatch.setattr(storage, "publish", real_publish)
    assert store.lake.write_snapshot(snapshot, flatten(snapshot, bodies))["predictions"] == 4
    assert store.lake.has_snapshot(snapshot)


def test_crash_inside_a_write_leaves_nothing_behind(
    store: DataStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bodies = {"keras": docs.encode(docs.keras_doc())}
    snapshot = docs.snapshot_of(bodies)

    def fail_midway() -> Iterator[tuple[str, pa.Table]]:
        for index, item in enumerate(flatten(snapshot, bodies)):
            if index == 3:
                raise RuntimeError("power cut")
            yield item

    with pytest.raises(RuntimeError):
        store.lake.write_snapshot(snapshot, fail_midway())
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_a_broken_response_reaches_the_raw_archive_but_nothing_of_it_the_lake(
    store: DataStore, tmp_path: Path
) -> None:
    doc = docs.keras_doc()
    doc["modelValidationMetrics"][1]["predictions"][1]["sampleId"] = "x"
    with pytest.raises(DocumentError, match=r"predictions\[1\]\.sampleId"):
        store.save(BLOCK, WHEN, {"keras": docs.encode(doc)})
    assert not (tmp_path / "lake").exists() or not any((tmp_path / "lake").rglob("*.parquet"))
    assert len(list(store.raw.snapshots())) == 1  # kept as received, for a later fix + rebuild


def test_raw_bodies_are_never_rewritten(store: DataStore, tmp_path: Path) -> None:
    body = docs.encode(docs.keras_doc())
    snapshot = store.save(BLOCK, WHEN, {"keras": body}).snapshot
    path = tmp_path / f"raw/project_id=7/learn_id=3/{snapshot.snapshot_id}/keras.json.zst"
    stamp = path.stat().st_mtime_ns
    assert store.raw.put(snapshot, {"keras": body}) is False
    assert path.stat().st_mtime_ns == stamp


def test_paths_never_take_unchecked_values(store: DataStore) -> None:
    with pytest.raises(ValueError):
        store.lake.file("predictions", 7, 3, "../../etc/passwd")
    with pytest.raises(ValueError):
        store.lake.file("predictions", "7/../../x", 3, "0" * 32)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        store.lake.table_dir("../elsewhere")


def previous_release_id(bodies: dict[str, bytes]) -> str:
    """How releases before issue 21 named a snapshot: SHA-256 of its canonical JSON (keys sorted,
    no whitespace; two endpoints as the object {"anomaly": ..., "gmm": ...})."""
    decoded = {name: msgspec.json.decode(body) for name, body in bodies.items()}
    value = next(iter(decoded.values())) if len(decoded) == 1 else decoded
    return hashlib.sha256(msgspec.json.Encoder(order="sorted").encode(value)).hexdigest()[:32]


@pytest.mark.parametrize("block_type", ["keras", "anomaly-gmm"])
def test_ids_stored_by_the_previous_release_stay_through_a_refresh_and_a_rebuild(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_type: str,
) -> None:
    from ei_assets.pipeline.data_dir import DataDir
    from ei_assets.pipeline.rebuild import rebuild

    data = DataDir.open(str(tmp_path))
    block = LearnBlock(7, "Project", 1, "Impulse", 3, block_type, "Block", "Title")
    bodies = ({"keras": docs.encode(docs.keras_doc())} if block_type == "keras" else
              {"anomaly": docs.encode(docs.anomaly_doc()), "gmm": docs.encode(docs.gmm_doc())})
    with monkeypatch.context() as previous_release:
        previous_release.setattr("ei_assets.pipeline.saving.snapshot_id", previous_release_id)
        stored = data.store.save(block, WHEN, bodies).snapshot.snapshot_id
        data.warehouse.load()
    assert stored == previous_release_id(bodies) != snapshot_id(bodies)
    again = data.store.save(block, datetime.now(UTC), bodies)  # this release, the same bytes
    assert (again.is_new, again.snapshot.snapshot_id) == (False, stored)
    assert data.warehouse.load().new_snapshots == 0
    rebuild(data.store, data.warehouse)
    ids = data.warehouse.query("SELECT snapshot_id FROM snapshots").to_pylist()
    assert ids == [{"snapshot_id": stored}]
    assert [f.rsplit("/", 1)[-1] for f in data.store.lake.files("snapshots")] == [f"{stored}.parquet"]
