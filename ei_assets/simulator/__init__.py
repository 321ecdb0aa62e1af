"""The Edge Impulse Studio simulator: a real HTTP server on loopback with the Studio's paths,
auth and response shapes, deterministic from a seed, with retrains and injectable faults.

The server and the document builders (numpy) load on first use, so that a command that only
describes the simulator's options starts quickly.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ei_assets.simulator.faults import FAULT_KINDS, FaultPlan
from ei_assets.simulator.world import BLOCK_TYPES, World, WorldConfig

if TYPE_CHECKING:
    from ei_assets.simulator.documents import metadata_document
    from ei_assets.simulator.server import Simulator, SimulatorServer

__all__ = ["BLOCK_TYPES", "FAULT_KINDS", "FaultPlan", "Simulator", "SimulatorServer", "World",
           "WorldConfig", "metadata_document"]

_LAZY = {"metadata_document": "documents", "Simulator": "server", "SimulatorServer": "server"}


def __getattr__(name: str) -> object:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
