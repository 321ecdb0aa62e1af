"""`make bench`: every benchmark, one run, figures side by side; exit 1 if a goal is missed.

`python -m bench [lake] [warehouse] [e2e] [growth]` runs only the parts named.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable

from bench import e2e, lake_bench, warehouse_bench

PARTS: dict[str, Callable[[], list[str]]] = {
    "lake": lake_bench.run,
    "warehouse": warehouse_bench.run,
    "e2e": e2e.measure_world,
    "growth": e2e.measure_growth,
}


def main(argv: list[str]) -> int:
    unknown = [name for name in argv if name not in PARTS]
    if unknown:
        print(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
        return 2
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"Python {platform.python_version()}")
    failures = [failure for name in argv or PARTS for failure in PARTS[name]()]
    for failure in failures:
        print(f"GOAL MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
