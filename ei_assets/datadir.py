"""Everything under EI_DATA_DIR: the raw archive and lake (DataStore) and the DuckDB warehouse."""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.fs as pafs

from ei_assets.settings import ConfigError, resolve_data_dir
from ei_assets.store import DataStore
from ei_assets.warehouse import Thresholds, Warehouse


@dataclass(frozen=True)
class DataDir:
    store: DataStore
    warehouse: Warehouse

    @classmethod
    def open(cls, location: str | None, thresholds: Thresholds | None = None,
             lock_timeout: float = 60.0, writable: bool = True) -> DataDir:
        """The data dir; `writable=False` for commands that only read: nothing is created."""
        filesystem, base = resolve_data_dir(location, writable)
        if not isinstance(filesystem, pafs.LocalFileSystem):
            raise ConfigError(
                "EI_DATA_DIR: the DuckDB warehouse needs a local directory for now; "
                f"{location!r} is on {filesystem.type_name}"
            )
        store = DataStore(filesystem, base)
        return cls(store, Warehouse(base, store.lake, store.raw, thresholds, lock_timeout))
