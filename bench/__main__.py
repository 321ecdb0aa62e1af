"""`make bench`: every benchmark, one run, figures side by side; exit 1 if a goal is missed.

`python -m bench [lake] [warehouse] [e2e] [growth] [fanout]` runs only the parts named. A run of every part
also writes what it printed into docs/performance.md, between its markers: the figures the docs
quote are always those of the last full run.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import platform
import re
import sys
from collections.abc import Callable
from pathlib import Path

from bench import e2e, lake_bench, scale, warehouse_bench
from ei_assets.memory import tune_process

PARTS: dict[str, Callable[[], list[str]]] = {
    "lake": lake_bench.run,
    "warehouse": warehouse_bench.run,
    "e2e": e2e.measure_world,
    "growth": e2e.measure_growth,
    "fanout": scale.measure_fanout,
}


PAGE = Path(__file__).parent.parent / "docs" / "performance.md"
BEGIN, END = "<!-- make bench: begin -->", "<!-- make bench: end -->"


class _Tee(io.StringIO):
    """What is printed goes to the terminal as it comes, and is kept."""

    def write(self, text: str) -> int:
        sys.__stdout__.write(text)
        sys.__stdout__.flush()
        return super().write(text)


def main(argv: list[str]) -> int:
    tune_process()  # as the ei-assets command runs; its environment reaches the benchmarks' children
    unknown = [name for name in argv if name not in PARTS]
    if unknown:
        print(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
        return 2
    printed = _Tee()
    with contextlib.redirect_stdout(printed):
        print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, "
              f"Python {platform.python_version()}, {datetime.date.today()}")
        failures = [failure for name in argv or PARTS for failure in PARTS[name]()]
        for failure in failures:
            print(f"GOAL MISSED: {failure}")
    if not argv:
        record(printed.getvalue())
    return 1 if failures else 0


def record(output: str) -> None:
    """Put the run's output between the page's markers."""
    page = PAGE.read_text()
    block = f"{BEGIN}\n```text\n{output.strip()}\n```\n{END}"
    PAGE.write_text(re.sub(f"{re.escape(BEGIN)}.*?{re.escape(END)}", lambda _: block, page, flags=re.S))
    print(f"figures written to {PAGE}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
