"""The named SQL queries people run (README), the demo prints and the UI previews, declared once
in sql/queries.sql (`-- name: <name>` before each)."""

from __future__ import annotations

import re
from importlib import resources

QUERIES_FILE = "sql/queries.sql"


def _load() -> dict[str, str]:
    text = resources.files("ei_assets").joinpath(QUERIES_FILE).read_text()
    parts = re.split(r"^-- name: (\w+)\n", text, flags=re.M)[1:]
    return {name: body.strip().rstrip(";") for name, body in zip(parts[::2], parts[1::2], strict=True)}


QUERIES = _load()
INT8_COSTS_AND_SAVINGS = QUERIES["int8_costs_and_savings"]
REGRESSED_RETRAINS = QUERIES["regressed_retrains"]
FLIPPED_SAMPLES = QUERIES["flipped_samples"]
LATEST_DEFAULT_TARGET_COMPARISON = QUERIES["latest_default_target_comparison"]
# the questions the README shows, in its order
README_QUESTIONS = ("int8_costs_and_savings", "regressed_retrains", "flipped_samples",
                    "latest_budget_fit", "classes_int8_hurts", "anomaly_drift")
