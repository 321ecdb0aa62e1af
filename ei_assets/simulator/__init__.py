"""The Edge Impulse Studio simulator: a real HTTP server on loopback with the Studio's paths,
auth and response shapes, deterministic from a seed, with retrains and injectable faults."""

from ei_assets.simulator.documents import metadata_document
from ei_assets.simulator.faults import FAULT_KINDS, FaultPlan
from ei_assets.simulator.server import Simulator, SimulatorServer
from ei_assets.simulator.world import BLOCK_TYPES, World, WorldConfig

__all__ = ["BLOCK_TYPES", "FAULT_KINDS", "FaultPlan", "Simulator", "SimulatorServer", "World",
           "WorldConfig", "metadata_document"]
