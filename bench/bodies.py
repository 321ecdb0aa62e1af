"""Large, realistic metadata bodies made by the simulator's own document builders."""

from __future__ import annotations

import msgspec

from ei_assets.simulator import World, WorldConfig, metadata_document


def visual_anomaly_body(predictions: int = 12_500, grid: int = 13) -> bytes:
    """~30 MB: float32 + int8, each window with a grid x grid anomaly score grid."""
    world = World(WorldConfig(predictions=predictions, grid=grid))
    project = world.projects[100_003]
    block = project.impulses[0].blocks[0]
    assert block.block_type == "keras-visual-anomaly"
    state = world.state(project.id, block.learn_id)
    return msgspec.json.encode(metadata_document(world, project, block, state, now=1e12))


def classifier_body(predictions: int = 50_000) -> bytes:
    """~16 MB: keyword classifier with float32, int8 and akida, `predictions` windows per type."""
    world = World(WorldConfig(predictions=predictions))
    project = world.projects[100_002]
    block = project.impulses[0].blocks[0]
    assert block.block_type == "keras"
    state = world.state(project.id, block.learn_id)
    return msgspec.json.encode(metadata_document(world, project, block, state, now=1e12))
