"""`ei-assets report`: one self-contained HTML file with every learn block's history in charts."""

from __future__ import annotations

from typing import Any

import pyarrow.fs as pafs

from ei_assets.report.data import report_data
from ei_assets.report.page import markdown_table, overview_markdown, render
from ei_assets.storage.files import write_atomically
from ei_assets.warehouse import Warehouse

__all__ = ["markdown_table", "overview_markdown", "report_data", "write_report"]


def write_report(warehouse: Warehouse, filesystem: pafs.FileSystem, path: str) -> list[dict[str, Any]]:
    """Write the report to `path` (its folder created, the file appearing whole); returns the
    learn blocks in it."""
    blocks = report_data(warehouse)
    page = render(blocks).encode()
    write_atomically(filesystem, path, lambda stream: stream.write(page))
    return blocks
