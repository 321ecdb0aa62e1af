"""`make stress`: many `ei-assets refresh` runs under CPU contention, counting native crashes.

Each run is a real `ei-assets refresh` process (PYTHONFAULTHANDLER=1) against the simulator
with transient faults, two at a time on one DAGSTER_HOME and one data dir, while busy loops
keep every core loaded. A crash (negative exit code: SIGSEGV is -11) is a bug to find, and
prints the faulthandler trace. Bounded in count and time; stops its load itself.

    python -m bench.stress [--runs 50] [--parallel 2] [--busy 2]
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ei_assets.simulator import FaultPlan, Simulator, WorldConfig

BUSY_LOOP = "import time\nend = time.monotonic() + 3600\nwhile time.monotonic() < end: pass\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--runs", type=int, default=50, help="refreshes in all (default %(default)s)")
    parser.add_argument("--parallel", type=int, default=2, help="refreshes at once (default %(default)s)")
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 2,
                        help="busy-loop processes loading the CPU (default: one per core)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ei-stress-"))
    busy = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(args.busy)]
    codes: collections.Counter[int] = collections.Counter()
    crashes: list[str] = []
    started = time.monotonic()
    try:
        faults = FaultPlan(seed=5, rates={"503": 0.05, "drop": 0.03, "truncate": 0.02},
                           latency_seconds=0.01)
        with Simulator(WorldConfig(profiling_seconds=0.0, predictions=500), faults) as sim:
            env = {**os.environ, "EI_API_URL": sim.url, "EI_API_KEY": ",".join(sim.api_keys),
                   "EI_DATA_DIR": str(folder / "data"), "DAGSTER_HOME": str(folder / "home"),
                   "PYTHONFAULTHANDLER": "1"}
            done = 0
            while done < args.runs:
                batch = min(args.parallel, args.runs - done)
                processes = [subprocess.Popen([sys.executable, "-m", "ei_assets.cli", "refresh"],
                                              env=env, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE, text=True)
                             for _ in range(batch)]
                for process in processes:
                    _, stderr = process.communicate(timeout=900)
                    codes[process.returncode] += 1
                    if process.returncode < 0 or "Fatal Python error" in stderr:
                        crashes.append(stderr[-4000:])
                done += batch
                if sim.world.blocks() and done % 10 == 0:
                    sim.world.retrain_matching(100001)  # new snapshots now and then
                print(f"  {done}/{args.runs} refreshes, exit codes {dict(codes)}", flush=True)
    finally:
        for process in busy:
            process.kill()
            process.wait()
    minutes = (time.monotonic() - started) / 60
    print(f"{args.runs} refreshes ({args.parallel} at a time, {args.busy} busy loops) in "
          f"{minutes:.1f} min: exit codes {dict(codes)}, native crashes {len(crashes)}")
    for trace in crashes:
        print("---- crash ----\n" + trace)
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
