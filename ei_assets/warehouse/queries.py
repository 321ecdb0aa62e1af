"""The named SQL queries people run (docs/sql.md, README), the demo prints and the UI previews,
declared once in sql/queries.sql (`-- name: <name>` before each); `named_sql` reads any such file."""

from __future__ import annotations

import re
from importlib import resources

QUERIES_FILE = "sql/queries.sql"


def named_sql(file: str) -> dict[str, str]:
    """The statements of a packaged SQL file, by the name in the `-- name: <name>` line before each."""
    text = resources.files("ei_assets.warehouse").joinpath(file).read_text()
    parts = re.split(r"^-- name: (\w+)\n", text, flags=re.M)[1:]
    return {name: body.strip().rstrip(";") for name, body in zip(parts[::2], parts[1::2], strict=True)}


QUERIES = named_sql(QUERIES_FILE)
INT8_COSTS_AND_SAVINGS = QUERIES["int8_costs_and_savings"]
REGRESSED_RETRAINS = QUERIES["regressed_retrains"]
FLIPPED_SAMPLES = QUERIES["flipped_samples"]
LATEST_DEFAULT_TARGET_COMPARISON = QUERIES["latest_default_target_comparison"]
# the questions docs/sql.md shows, in its order
DOC_QUESTIONS = ("int8_costs_and_savings", "regressed_retrains", "flipped_samples",
                    "latest_budget_fit", "classes_int8_hurts", "anomaly_drift")
