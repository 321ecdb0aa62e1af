"""The simulator's world: projects, impulses, learn blocks and their training state.

Everything is derived from the seed, so the same seed always gives the same keys, ids and
(until the first retrain) the same metadata. A retrain bumps a block's version, stamps `created`
with the current time, leaves profiling pending for `profiling_seconds`, and moves its project's
last modification date, as a change of the project's data does; profiling that finishes does
not move it (as on Studio). A silent retrain changes a block without moving the date: the case
of a change signal that misses one.
"""

from __future__ import annotations

import hashlib
import random
import threading
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class Target:
    mcu: str
    name: str
    speed: float  # latency multiplier against a Cortex-M4F at 80 MHz
    profiling_error: str | None = None
    custom_metrics: tuple[tuple[str, str], ...] = ()
    # a model larger than this does not fit: Studio then reports RAM 0 and ROM = the model's size
    max_model_bytes: int | None = None


TARGETS: tuple[Target, ...] = (
    Target("cortex-m4f-80mhz", "Cortex-M4F 80MHz", 1.0, max_model_bytes=256_000),
    Target("cortex-m7-216mhz", "Cortex-M7 216MHz", 0.28),
    Target(
        "espressif-esp32",
        "Espressif ESP-EYE (ESP32 240MHz)",
        0.55,
        custom_metrics=(("Energy per inference", "mJ"),),
    ),
    Target(
        "synaptics-ka10000",
        "Synaptics KA10000",
        0.4,
        profiling_error="Profiling failed: model uses operators not supported on this target",
    ),
    Target("nordic-nrf5340dk", "Nordic nRF5340 DK (Cortex-M33 128MHz)", 0.7),
    Target("raspberry-pi-rp2040", "Raspberry Pi RP2040 (Cortex-M0+ 133MHz)", 3.5),
    Target("sony-spresense", "Sony Spresense (Cortex-M4F 156MHz)", 0.6),
    Target("ti-am62x", "TI AM62x (Cortex-A53 1.4GHz)", 0.05),
)

BLOCK_TYPES = ("keras", "anomaly", "anomaly-gmm", "keras-visual-anomaly", "keras-object-detection",
               "keras-regression")
# The scaled layout (benchmarks, scale tests) cycles through these: the kinds its published figures
# were measured on, so that a new kind in the default world does not change their worlds.
SCALED_BLOCK_TYPES = BLOCK_TYPES[:5]
# Learn block types Studio has and no metadata endpoint serves (ei_assets lists them as unsupported)
UNSUPPORTED_BLOCK_TYPES = ("vlm",)


@dataclass(frozen=True)
class BlockSpec:
    learn_id: int
    block_type: str
    name: str
    title: str
    classes: tuple[str, ...]
    model_types: tuple[str, ...]
    # resource scale of the float32 model on a Cortex-M4F: latency ms, RAM bytes, ROM bytes
    latency_ms: float
    ram_bytes: int
    rom_bytes: int
    # leading classes that never occur in the validation set: Studio's report (scikit-learn's)
    # then leaves their keys out, so its keys start at this index
    absent_classes: int = 0


@dataclass(frozen=True)
class ImpulseSpec:
    id: int
    name: str
    input_type: str
    blocks: tuple[BlockSpec, ...]


@dataclass(frozen=True)
class ProjectSpec:
    id: int
    name: str
    api_key: str
    labeling_method: str
    impulses: tuple[ImpulseSpec, ...]
    has_eon_ram_optimized: bool
    default_target: str


@dataclass
class BlockState:
    version: int
    created: datetime
    profiling_until: float | None = None  # monotonic time; None = profiling done

    def profiling_pending(self, now: float) -> bool:
        return self.profiling_until is not None and now < self.profiling_until


@dataclass(frozen=True)
class WorldConfig:
    seed: int = 42
    projects: int = 3
    blocks_per_project: int | None = None  # None: the hand-made default layout
    predictions: int = 60  # validation windows per model type
    # per block type, overriding `predictions` (e.g. (("keras-visual-anomaly", 3000),))
    predictions_by_type: tuple[tuple[str, int], ...] = ()
    akida: bool = False  # the classifiers of the scaled layout also have an akida build
    # learn blocks of types no metadata endpoint serves (e.g. "vlm"), added to the first project
    unsupported_blocks: tuple[str, ...] = ()
    grid: int = 8  # visual anomaly grid size (n x n)
    targets: int = 4
    profiling_seconds: float = 2.0


def _block(learn_id: int, block_type: str, variant: int = 0, akida: bool = False) -> BlockSpec:
    if block_type == "keras":
        classes = (("idle", "snake", "updown", "wave"), ("helloworld", "noise", "unknown"))[
            variant % 2
        ]
        return BlockSpec(
            learn_id,
            "keras",
            "Classifier" if variant % 2 == 0 else "Keyword classifier",
            "Classification",
            classes,
            ("float32", "int8", "akida") if akida else ("float32", "int8"),
            latency_ms=2.0 + 40.0 * (variant % 2),
            ram_bytes=6_000 + 24_000 * (variant % 2),
            rom_bytes=36_000 + 40_000 * (variant % 2),
        )
    if block_type == "anomaly":
        return BlockSpec(
            learn_id, "anomaly", "Anomaly detection (K-means)", "Anomaly detection (K-means)",
            ("idle", "snake", "updown", "wave"), ("float32",), 0.3, 1_800, 6_500,
        )
    if block_type == "anomaly-gmm":
        return BlockSpec(
            learn_id, "anomaly-gmm", "Anomaly detection (GMM)", "Anomaly detection (GMM)",
            ("idle", "snake", "updown", "wave"), ("float32",), 0.5, 2_400, 9_000,
        )
    if block_type == "keras-visual-anomaly":
        return BlockSpec(
            learn_id, "keras-visual-anomaly", "Visual anomaly detection (GMM)",
            "Visual Anomaly Detection - FOMO-AD", ("anomaly", "no anomaly"),
            ("float32", "int8"), 980.0, 310_000, 520_000,
        )
    if block_type == "keras-object-detection":
        return BlockSpec(
            learn_id, "keras-object-detection", "Object detection", "Object detection (FOMO)",
            ("bolt", "nut", "washer"), ("float32", "int8"), 640.0, 240_000, 82_000,
        )
    if block_type == "keras-regression":
        return BlockSpec(
            learn_id, "keras-regression", "Regression", "Regression (vibration severity)",
            (), ("float32", "int8"), 1.5, 4_000, 24_000,
        )
    if block_type in UNSUPPORTED_BLOCK_TYPES:
        return BlockSpec(learn_id, block_type, "Visual language model", "VLM", (), (), 0.0, 0, 0)
    raise ValueError(f"unknown block type {block_type!r}")


def _keyword_spotter(learn_id: int) -> BlockSpec:
    """A keyword classifier whose validation set lacks its first three classes (report keys "3"…)."""
    return replace(_block(learn_id, "keras", 1), name="Keyword classifier (5 words)",
                   classes=("go", "stop", "left", "helloworld", "noise"), absent_classes=3)


def _api_key(seed: int, project_id: int) -> str:
    return "ei_" + hashlib.sha256(f"ei-assets-sim/{seed}/{project_id}".encode()).hexdigest()


def _default_layout(index: int) -> tuple[str, str, tuple[ImpulseSpec, ...], bool, str]:
    """Three hand-made projects (cycled when more are asked for)."""
    kind = index % 3
    if kind == 0:
        return (
            "Motor vibration monitoring",
            "time-series",
            (
                ImpulseSpec(1, "Vibration classifier", "time-series",
                            (_block(3, "keras"), _block(4, "anomaly"))),
                ImpulseSpec(5, "Vibration anomaly (GMM)", "time-series", (_block(7, "anomaly-gmm"),)),
                ImpulseSpec(8, "Vibration severity", "time-series", (_block(9, "keras-regression"),)),
            ),
            True,
            "cortex-m4f-80mhz",
        )
    if kind == 1:
        return (
            "Keyword spotting",
            "time-series",
            (
                ImpulseSpec(1, "KWS MFCC", "time-series", (_block(3, "keras", 1, akida=True),)),
                # trained on a data set whose first classes were since removed
                ImpulseSpec(4, "KWS MFE small", "time-series", (_keyword_spotter(6),)),
            ),
            False,
            "cortex-m4f-80mhz",
        )
    return (
        "Factory line vision",
        "image",
        (
            ImpulseSpec(1, "Defect detection", "image", (_block(3, "keras-visual-anomaly"),)),
            ImpulseSpec(4, "Part counting", "image", (_block(6, "keras-object-detection"),)),
        ),
        True,
        "cortex-m7-216mhz",
    )


def _scaled_layout(index: int, blocks: int, akida: bool
                   ) -> tuple[str, str, tuple[ImpulseSpec, ...], bool, str]:
    """`blocks` learn blocks cycling through every block type, split over two impulses."""
    specs = [_block(10 + i, SCALED_BLOCK_TYPES[(i + index) % len(SCALED_BLOCK_TYPES)], i, akida)
             for i in range(blocks)]
    half = (len(specs) + 1) // 2
    impulses: tuple[ImpulseSpec, ...] = (ImpulseSpec(1, "Impulse A", "time-series", tuple(specs[:half])),)
    if specs[half:]:
        impulses += (ImpulseSpec(2, "Impulse B", "time-series", tuple(specs[half:])),)
    return (f"Scale project {index + 1}", "time-series", impulses, index % 2 == 0, "cortex-m4f-80mhz")


@dataclass
class World:
    config: WorldConfig = field(default_factory=WorldConfig)
    projects: dict[int, ProjectSpec] = field(init=False)
    states: dict[tuple[int, int], BlockState] = field(init=False)
    modified: dict[int, datetime] = field(init=False)  # each project's last modification date
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def predictions(self, block_type: str) -> int:
        """Validation windows per model type of a block of this type."""
        return dict(self.config.predictions_by_type).get(block_type, self.config.predictions)

    def __post_init__(self) -> None:
        if not 1 <= self.config.targets <= len(TARGETS):
            raise ValueError(f"targets must be 1..{len(TARGETS)}, got {self.config.targets}")
        self.projects = {}
        self.states = {}
        self.modified = {}
        rng = random.Random(self.config.seed)
        base = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)
        for index in range(self.config.projects):
            project_id = 100_001 + index
            if self.config.blocks_per_project is None:
                name, input_type, impulses, eon_ro, default_target = _default_layout(index)
            else:
                name, input_type, impulses, eon_ro, default_target = _scaled_layout(
                    index, self.config.blocks_per_project, self.config.akida
                )
            if index >= 3:
                name = f"{name} #{index + 1}"
            if index == 0 and self.config.unsupported_blocks:
                impulses += (ImpulseSpec(90, "Unsupported blocks", input_type, tuple(
                    _block(91 + i, kind) for i, kind in enumerate(self.config.unsupported_blocks))),)
            self.projects[project_id] = ProjectSpec(
                id=project_id,
                name=name,
                api_key=_api_key(self.config.seed, project_id),
                labeling_method="object_detection" if input_type == "image" else "single_label",
                impulses=impulses,
                has_eon_ram_optimized=eon_ro,
                default_target=default_target,
            )
            for impulse in impulses:
                for block in impulse.blocks:
                    created = base + timedelta(minutes=rng.randrange(0, 60 * 24 * 30))
                    self.states[(project_id, block.learn_id)] = BlockState(1, created)
            self.modified[project_id] = max(
                (self.states[(project_id, b.learn_id)].created for i in impulses for b in i.blocks),
                default=base)

    @property
    def targets(self) -> tuple[Target, ...]:
        return TARGETS[: self.config.targets]

    def project_for_key(self, api_key: str) -> ProjectSpec | None:
        return next((p for p in self.projects.values() if p.api_key == api_key), None)

    def find_block(self, project_id: int, learn_id: int) -> tuple[ImpulseSpec, BlockSpec] | None:
        project = self.projects.get(project_id)
        for impulse in project.impulses if project else ():
            for block in impulse.blocks:
                if block.learn_id == learn_id:
                    return impulse, block
        return None

    def blocks(self) -> list[tuple[ProjectSpec, BlockSpec]]:
        return [
            (project, block)
            for project in self.projects.values()
            for impulse in project.impulses
            for block in impulse.blocks
        ]

    def state(self, project_id: int, learn_id: int) -> BlockState:
        with self._lock:
            state = self.states[(project_id, learn_id)]
            return BlockState(state.version, state.created, state.profiling_until)

    def matching(self, project_id: int | None = None, learn_id: int | None = None
                 ) -> list[tuple[int, int]]:
        """(project id, learn id) of one block, every block of a project, or every block."""
        chosen = [
            (project.id, block.learn_id)
            for project, block in self.blocks()
            if (project_id is None or project.id == int(project_id))
            and (learn_id is None or block.learn_id == int(learn_id))
        ]
        if not chosen:
            raise KeyError(f"no learn block matches project {project_id}, learn block {learn_id}")
        return chosen

    def retrain_matching(self, project_id: int | None = None, learn_id: int | None = None,
                         signal: bool = True) -> list[str]:
        """Retrain one block, every block of a project, or every block; returns `project-learn` keys."""
        chosen = self.matching(project_id, learn_id)
        for pid, lid in chosen:
            self.retrain(pid, lid, signal)
        return [f"{pid}-{lid}" for pid, lid in chosen]

    def last_modified(self, project_id: int) -> datetime:
        with self._lock:
            return self.modified[project_id]

    def change_data(self, project_id: int) -> datetime:
        """The project's data changed (samples added, say): its date moves, no block changes."""
        with self._lock:
            return self._touch(project_id)

    def _touch(self, project_id: int) -> datetime:
        now = datetime.now(UTC).replace(microsecond=0)
        self.modified[project_id] = max(now, self.modified[project_id] + timedelta(seconds=1))
        return self.modified[project_id]

    def finish_profiling(self, project_id: int | None = None, learn_id: int | None = None) -> list[str]:
        """End pending profiling now (tests control time this way, not by sleeping)."""
        chosen = self.matching(project_id, learn_id)
        with self._lock:
            for key in chosen:
                self.states[key].profiling_until = None
        return [f"{pid}-{lid}" for pid, lid in chosen]

    def retrain(self, project_id: int, learn_id: int, signal: bool = True) -> BlockState:
        """Train the block again: new metrics, new `created`, profiling pending for a while; the
        project's date moves, unless `signal` is False (a change the signal misses)."""
        with self._lock:
            state = self.states[(project_id, learn_id)]
            state.version += 1
            state.created = max(
                datetime.now(UTC).replace(microsecond=0), state.created + timedelta(seconds=1)
            )
            state.profiling_until = time.monotonic() + self.config.profiling_seconds
            if signal:
                self._touch(project_id)
            return BlockState(state.version, state.created, state.profiling_until)
