"""Parse + flatten + write of all tables, against orjson merely parsing the same bytes.

Three kinds run on the same bytes: `orjson` (orjson.loads), `lake` (parse + flatten + write of
every lake table: the issue's measure) and `ingest` (the whole path of a new response: snapshot
id, raw archive and lake). The goals: lake/orjson <= 2.5 and the peak memory of the
whole ingest <= 3x the body; the ingest/orjson ratio is printed beside them for the record.

Each case runs in a fresh child process; its peak RSS (VmHWM, reset after imports) over the
RSS before reading the body is the peak memory reported, the body itself included.
The ingest side is the real path a fetched response takes: snapshot id (whitespace-free hash), raw archive
(zstd) and every lake table (Parquet, zstd), written atomically.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime

from bench.proc import reset_peak, status_kb

REPEATS = 3


def _child(kind: str, body_path: str, queue: mp.Queue) -> None:
    import orjson
    import pyarrow.fs as pafs

    from ei_assets.ingest.flatten import flatten
    from ei_assets.pipeline.saving import DataStore
    from ei_assets.snapshot import Snapshot
    from ei_assets.studio import LearnBlock

    block = LearnBlock(1, "bench", 1, "bench", 3, "keras", "bench", "bench")
    _warm_up(kind, block)
    reset_peak()
    baseline = status_kb("VmRSS") * 1024
    with open(body_path, "rb") as handle:
        body = handle.read()
    timings = []
    for _ in range(REPEATS):
        folder = tempfile.mkdtemp(prefix="ei-bench-")
        started = time.perf_counter()
        if kind == "orjson":
            import orjson

            doc = orjson.loads(body)
            del doc
        elif kind == "lake":
            snapshot = Snapshot(project_id=1, learn_id=3, block_type="keras", fetched_at=datetime.now(UTC),
                                endpoints=("keras",), snapshot_id="0" * 32)
            DataStore(pafs.LocalFileSystem(), folder).lake.write_snapshot(
                snapshot, flatten(snapshot, {"keras": body}))
        else:
            store = DataStore(pafs.LocalFileSystem(), folder)
            store.save(block, datetime.now(UTC), {"keras": body})
        timings.append(time.perf_counter() - started)
        shutil.rmtree(folder)
    peak = status_kb("VmHWM") * 1024
    queue.put((min(timings), peak - baseline))


def _warm_up(kind: str, block: object) -> None:
    """One small run first, so one-time library set-up (thread pools, codecs) is not counted."""
    import orjson
    import pyarrow.fs as pafs

    from bench.bodies import classifier_body, visual_anomaly_body
    from ei_assets.pipeline.saving import DataStore

    for small in (classifier_body(200), visual_anomaly_body(50)):
        folder = tempfile.mkdtemp(prefix="ei-bench-warm-")
        if kind == "orjson":
            orjson.loads(small)
        else:
            DataStore(pafs.LocalFileSystem(), folder).save(block, datetime.now(UTC), {"keras": small})
        shutil.rmtree(folder)


def measure(kind: str, body_path: str) -> tuple[float, int]:
    context = mp.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(kind, body_path, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def run() -> list[str]:
    from bench.bodies import classifier_body, visual_anomaly_body

    failures = []
    print("== issue 3: parse + flatten + write all tables (lake) vs orjson.loads, best of "
          f"{REPEATS}, {os.cpu_count()} cores; ingest = snapshot hash + raw archive + lake")
    print(f"{'case':<30}{'body MB':>8}{'orjson s':>9}{'lake s':>8}{'lake/orj':>9}"
          f"{'ingest s':>9}{'ingest/orj':>11}{'peak MB':>8}{'peak/body':>10}")
    for name, make in (("visual anomaly 13x13 grids", visual_anomaly_body),
                       ("classifier 50k windows/type", classifier_body)):
        body = make()
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
            handle.write(body)
            path = handle.name
        try:
            orjson_s, _ = measure("orjson", path)
            lake_s, _ = measure("lake", path)
            ingest_s, peak = measure("ingest", path)
        finally:
            os.unlink(path)
        ratio = lake_s / orjson_s
        print(f"{name:<30}{len(body) / 1e6:>8.1f}{orjson_s:>9.3f}{lake_s:>8.3f}{ratio:>9.2f}"
              f"{ingest_s:>9.3f}{ingest_s / orjson_s:>11.2f}{peak / 1e6:>8.1f}"
              f"{peak / len(body):>10.2f}")
        if ratio > 2.5:
            failures.append(f"{name}: parse+flatten+write / orjson ratio {ratio:.2f} > 2.5")
        if peak > 3 * len(body):
            failures.append(f"{name}: peak memory {peak / len(body):.2f}x body > 3x")
    return failures
