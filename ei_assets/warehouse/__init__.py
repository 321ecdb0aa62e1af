"""The warehouse: the lake loaded into DuckDB (an embedded file, or a DuckLake shared by many
processes), the contract's tables and views (`sql/`), the named queries, and read-only readers."""

from ei_assets.warehouse.ducklake import DuckLake
from ei_assets.warehouse.warehouse import (
    DATABASE_FILE,
    WAREHOUSE_DIR,
    LoadFailure,
    LoadResult,
    Reader,
    ReadOnlyQueryError,
    Thresholds,
    Warehouse,
    WarehouseBusyError,
)

__all__ = ["DATABASE_FILE", "WAREHOUSE_DIR", "DuckLake", "LoadFailure", "LoadResult", "ReadOnlyQueryError",
           "Reader", "Thresholds", "Warehouse", "WarehouseBusyError"]
