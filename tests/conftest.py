from __future__ import annotations

from collections.abc import Iterator

import pytest

from ei_assets.settings import ApiKey
from ei_assets.simulator import Simulator, WorldConfig


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A default-world simulator on a free loopback port, profiling delays kept short."""
    # profiling after a retrain stays pending until a test ends it (world.finish_profiling)
    with Simulator(WorldConfig(profiling_seconds=3600.0)) as simulator:
        yield simulator


@pytest.fixture
def keys(sim: Simulator) -> list[ApiKey]:
    return [ApiKey(key, f"#{i}") for i, key in enumerate(sim.api_keys, start=1)]
