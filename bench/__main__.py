"""`make bench`: every benchmark, one run, figures side by side; exit 1 if a goal is missed."""

from __future__ import annotations

import platform
import sys

from bench import lake_bench, warehouse_bench


def main() -> int:
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
          f"Python {platform.python_version()}")
    failures = lake_bench.run()
    failures += warehouse_bench.run()
    for failure in failures:
        print(f"GOAL MISSED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
