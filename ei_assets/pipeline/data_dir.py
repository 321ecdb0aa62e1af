"""Everything under EI_DATA_DIR: the raw archive and lake (DataStore), and the warehouse: the
DuckDB file beside them, or a shared DuckLake whose data files live under EI_DATA_DIR/warehouse/."""

from __future__ import annotations

from dataclasses import dataclass

from ei_assets.pipeline.saving import DataStore
from ei_assets.settings import REPORT_PATH, ConfigError, parse_warehouse, resolve_data_dir
from ei_assets.storage.files import is_local, uri
from ei_assets.warehouse import WAREHOUSE_DIR, Thresholds, Warehouse
from ei_assets.warehouse.ducklake import DuckLake


@dataclass(frozen=True)
class DataDir:
    store: DataStore
    warehouse: Warehouse

    @classmethod
    def open(cls, location: str | None, thresholds: Thresholds | None = None,
             lock_timeout: float = 60.0, writable: bool = True, warehouse: str | None = None
             ) -> DataDir:
        """The data dir; `writable=False` for commands that only read: nothing is created.
        `warehouse` is EI_WAREHOUSE's value (default: the embedded DuckDB file)."""
        conninfo = parse_warehouse(warehouse)
        filesystem, base = resolve_data_dir(location, writable)
        store = DataStore(filesystem, base)
        if conninfo is None and not is_local(filesystem):
            raise ConfigError(
                f"EI_WAREHOUSE: the embedded duckdb warehouse needs a local EI_DATA_DIR, and "
                f"{location!r} is on {filesystem.type_name}; use EI_WAREHOUSE=ducklake:postgres:...")
        lake = None if conninfo is None else DuckLake(conninfo, uri(filesystem, f"{base}/{WAREHOUSE_DIR}/"))
        return cls(store, Warehouse(base, store.lake, store.raw, thresholds, lock_timeout, lake))

    @property
    def report_path(self) -> str:
        """Where the HTML report is written, on the data dir's filesystem."""
        return f"{self.store.data_dir}/{REPORT_PATH}"
