"""A project's target constraints response -> the target_constraints and application_budgets rows.

A device's figures are its first processor's; a memory figure is fastBytes + slowBytes, where an
absent part counts 0 and both absent gives NULL (../shared/CONTRACT.md). Lists are kept in the
API's order: index 0 is the selected target, and the selected budget.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import msgspec
import pyarrow as pa

from ei_assets.ingest.flatten import DocumentError
from ei_assets.schema import TABLES
from ei_assets.studio.blocks import Body

ENDPOINT = "target-constraints"


class _Range(msgspec.Struct):
    minimum: float | None = None
    maximum: float | None = None


class _MemorySpec(msgspec.Struct, rename="camel"):
    fast_bytes: _Range | None = None
    slow_bytes: _Range | None = None


class _Memory(msgspec.Struct):
    ram: _MemorySpec | None = None
    rom: _MemorySpec | None = None


class _Processor(msgspec.Struct, rename="camel"):
    clock_rate_mhz: _Range | None = None
    memory: _Memory | None = None


class _Device(msgspec.Struct, rename="camel"):
    name: str | None = None
    board: str | None = None
    latency_device: str | None = None
    processors: list[_Processor] | None = None


class _Budget(msgspec.Struct, rename="camel"):
    latency_per_inference_ms: _Range | None = None
    energy_per_inference_joules: _Range | None = None
    memory_overhead: _Memory | None = None


class _Constraints(msgspec.Struct, rename="camel"):
    target_devices: list[_Device] = []
    application_budgets: list[_Budget] = []


class _Response(msgspec.Struct, rename="camel"):
    success: bool | None = None
    error: str | None = None
    target_constraints: _Constraints | None = None


_decode = msgspec.json.Decoder(_Response).decode  # built at import (see flatten)


def _bytes(spec: _MemorySpec | None, end: str) -> int | None:
    """fast + slow at one end of their ranges; an absent part counts 0, both absent is None."""
    if spec is None:
        return None
    ends: list[float | None] = [getattr(r, end) for r in (spec.fast_bytes, spec.slow_bytes) if r]
    parts = [p for p in ends if p is not None]
    if not parts:
        return None
    if not all(math.isfinite(p) and abs(p) < 2**62 for p in parts):
        raise DocumentError(ENDPOINT, "$.targetConstraints", f"memory figure out of range: {parts}")
    return round(sum(parts))


def _end(value: _Range | None, end: str) -> float | None:
    found: float | None = None if value is None else getattr(value, end)
    return found


def constraints_tables(project_id: int, fetched_at: datetime, body: Body) -> tuple[pa.Table, pa.Table]:
    """The target_constraints and application_budgets rows of one response."""
    try:
        doc = _decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
        message = str(exc) if not isinstance(exc, RecursionError) else "nested too deeply"
        raise DocumentError(ENDPOINT, "$", message) from None
    constraints = doc.target_constraints or _Constraints()
    devices: list[dict[str, Any]] = []
    for index, device in enumerate(constraints.target_devices):
        first = device.processors[0] if device.processors else None
        memory = first.memory if first and first.memory else _Memory()
        clock = first.clock_rate_mhz if first else None
        devices.append({
            "fetched_at": fetched_at, "project_id": project_id, "target_index": index,
            "is_selected": index == 0, "device_name": device.name, "board": device.board,
            "mcu": device.latency_device,
            "ram_min_bytes": _bytes(memory.ram, "minimum"), "ram_max_bytes": _bytes(memory.ram, "maximum"),
            "rom_min_bytes": _bytes(memory.rom, "minimum"), "rom_max_bytes": _bytes(memory.rom, "maximum"),
            "clock_min_mhz": _end(clock, "minimum"), "clock_max_mhz": _end(clock, "maximum"),
        })
    budgets: list[dict[str, Any]] = []
    for index, budget in enumerate(constraints.application_budgets):
        overhead = budget.memory_overhead or _Memory()
        budgets.append({
            "fetched_at": fetched_at, "project_id": project_id, "budget_index": index,
            "is_selected": index == 0,
            "latency_max_ms": _end(budget.latency_per_inference_ms, "maximum"),
            "ram_max_bytes": _bytes(overhead.ram, "maximum"),
            "rom_max_bytes": _bytes(overhead.rom, "maximum"),
            "energy_max_joules": _end(budget.energy_per_inference_joules, "maximum"),
        })
    return (pa.Table.from_pylist(devices, schema=TABLES["target_constraints"].arrow_schema),
            pa.Table.from_pylist(budgets, schema=TABLES["application_budgets"].arrow_schema))
