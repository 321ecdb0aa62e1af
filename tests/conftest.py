from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

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


@pytest.fixture(scope="session")
def scale_servers() -> Iterator[tuple[Any, Any, Any]]:
    """The scale-out mode's servers, once per test session: an S3-protocol store (moto) and a
    Postgres, on loopback (tests/servers.py). Yields (s3, postgres, createdb)."""
    from tests.servers import postgres_server, s3_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's request log
    with s3_server() as s3, postgres_server() as (pg, createdb):
        yield s3, pg, createdb
