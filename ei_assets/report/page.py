"""The report page: one self-contained HTML file (uPlot, its CSS, our script and the data inline)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from importlib import resources
from typing import Any

MISSING = "\N{EN DASH}"  # how the overview shows a value that does not exist
ASSETS = ("vendor/uPlot.min.css", "report.css", "vendor/uPlot.iife.min.js", "report.js")


def _asset(name: str) -> str:
    return resources.files("ei_assets.report").joinpath(name).read_text()


def _number(value: float | None, digits: int = 3) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def _latest(series: dict[str, list[Any]], model_type: str) -> Any:
    values = series.get(model_type) or [None]
    return values[-1]


def overview_rows(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The overview's facts per block (also the Dagster asset's markdown)."""
    rows = []
    for block in blocks:
        f32, i8 = _latest(block["accuracy"], "float32"), _latest(block["accuracy"], "int8")
        rows.append({
            "block": block["key"], "project": block["project_name"] or block["project_id"],
            "learn block": block["block_title"] or block["block_type"], "type": block["block_type"],
            "snapshots": len(block["snapshots"]),
            "float32 accuracy": f32, "int8 accuracy": i8,
            "int8 - float32": None if f32 is None or i8 is None else i8 - f32,
            "int8 flips": _latest(block["flips"], "int8"),
            "fits budget": block["fits"],
        })
    return rows


def markdown_table(rows: list[dict[str, Any]], empty: str = "no rows") -> str:
    """Rows as a markdown table for the Dagster UI: numbers to 4 places, NULL and NaN as a dash."""
    if not rows:
        return empty
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [MISSING if v is None or (isinstance(v, float) and v != v)
                 else _number(v, 4) if isinstance(v, float) else str(v) for v in row.values()]
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in cells) + " |")
    return "\n".join(lines)


def overview_markdown(blocks: list[dict[str, Any]]) -> str:
    return markdown_table(overview_rows(blocks), "no learn block in the warehouse yet")


def render(blocks: list[dict[str, Any]], generated_at: datetime | None = None) -> str:
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    css = _asset(ASSETS[0]) + "\n" + _asset(ASSETS[1])
    table = []
    for row in overview_rows(blocks):
        fits = row["fits budget"]
        fits_cell = MISSING if fits is None else f'<span class="fits-{str(fits).lower()}">' \
                                               f'{"fits" if fits else "over budget"}</span>'
        table.append(
            f'<tr><td><a href="#block-{escape(row["block"])}">{escape(row["block"])}</a></td>'
            f'<td>{escape(str(row["project"]))}</td><td>{escape(str(row["learn block"]))}</td>'
            f'<td>{escape(row["type"])}</td><td class="num">{row["snapshots"]}</td>'
            f'<td class="num">{_number(row["float32 accuracy"], 4)}</td>'
            f'<td class="num">{_number(row["int8 accuracy"], 4)}</td>'
            f'<td class="num">{_number(row["int8 - float32"], 4)}</td>'
            f'<td class="num">{MISSING if row["int8 flips"] is None else row["int8 flips"]}</td>'
            f"<td>{fits_cell}</td></tr>")
    sections = []
    for block in blocks:
        key = escape(block["key"])
        sections.append(
            f'<section id="block-{key}"><h2>{key} · {escape(str(block["block_title"] or ""))}</h2>'
            f'<p class="meta">project {block["project_id"]} {escape(str(block["project_name"] or ""))}'
            f' · learn block {block["learn_id"]} ({escape(block["block_type"] or "")}) · '
            f'{len(block["snapshots"])} snapshot(s) · recommended: '
            f'{escape(str(block["recommended"]))}</p>'
            f'<div class="charts"><div class="accuracy"></div><div class="flips"></div></div>'
            f'<div class="target">Target and engine: <select aria-label="target {key}"></select></div>'
            f'<div class="charts resources"></div></section>')
    data = json.dumps(blocks, default=str).replace("</", "<\\/")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>ei_assets: Edge Impulse model history</title>
<style>{css}</style></head>
<body>
<h1>Edge Impulse model history</h1>
<p class="meta">Every learn block over its retrains, each model type against float32. Generated
{when} by ei_assets; charts drawn with uPlot, everything inline.</p>
<table class="overview"><thead><tr><th>block</th><th>project</th><th>learn block</th><th>type</th>
<th>snapshots</th><th>float32 accuracy</th><th>int8 accuracy</th><th>int8 &minus; float32</th>
<th>int8 flips</th><th>budget (recommended type)</th></tr></thead>
<tbody>{"".join(table)}</tbody></table>
{"".join(sections)}
<script type="application/json" id="report-data">{data}</script>
<script>{_asset(ASSETS[2])}</script>
<script>{_asset(ASSETS[3])}</script>
</body></html>
"""
