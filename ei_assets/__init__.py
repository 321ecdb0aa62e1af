"""ei_assets: the history of Edge Impulse models as Dagster assets, Parquet and DuckDB.

In your Dagster project, add `EdgeImpulseComponent` through a `defs.yaml`, or merge
`build_defs(...)` into your definitions. Importing this package changes nothing in your process
and loads Dagster only when one of those two is first used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ei_assets.dagster.component import EdgeImpulseComponent
    from ei_assets.dagster.definitions import build_defs
    from ei_assets.errors import EiAssetsError
    from ei_assets.pipeline.data_dir import DataDir

__all__ = ["DataDir", "EdgeImpulseComponent", "EiAssetsError", "build_defs"]

# where each public name lives: loaded on first use, so `ei-assets --help` does not import Dagster
_LAZY = {
    "DataDir": "ei_assets.pipeline.data_dir",
    "EdgeImpulseComponent": "ei_assets.dagster.component",
    "EiAssetsError": "ei_assets.errors",
    "build_defs": "ei_assets.dagster.definitions",
}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)


def __dir__() -> list[str]:  # Dagster's registry lists a module's components through dir()
    return sorted({*globals(), *__all__})
