"""Faults the simulator injects on /v1/api paths: as random rates, or as scripted sequences per path."""

from __future__ import annotations

import random
import re
import threading
from collections import deque
from dataclasses import dataclass, field

# `dateless`: on /last-modification only, an answer without the date (elsewhere: none)
FAULT_KINDS = ("429", "500", "502", "503", "slow", "drop", "truncate", "unsuccessful", "html",
               "dateless")
NO_FAULT = "ok"


def check_kind(kind: str) -> str:
    if kind not in FAULT_KINDS and kind != NO_FAULT:
        raise ValueError(f"unknown fault {kind!r}; choose from {', '.join((*FAULT_KINDS, NO_FAULT))}")
    return kind


@dataclass
class _Script:
    pattern: re.Pattern[str]
    kinds: deque[str]


@dataclass
class _Canned:
    pattern: re.Pattern[str]
    status: int
    body: bytes


@dataclass
class FaultPlan:
    """Which fault (if any) the next request on a path gets.

    Scripts are consulted first, in the order added: the first script whose regex matches the
    path and still has entries pops its next kind (`ok` = answer normally). Otherwise each
    rate is tried in turn with the plan's seeded generator.
    """

    seed: int = 0
    rates: dict[str, float] = field(default_factory=dict)
    retry_after: str = "1"
    slow_seconds: float = 5.0
    latency_seconds: float = 0.0  # added to every Studio response, to make concurrency visible
    # set: every `slow` answer held now goes out at once (a test's "until I say so")
    release: threading.Event = field(default_factory=threading.Event)
    _scripts: list[_Script] = field(default_factory=list)
    _canned: list[_Canned] = field(default_factory=list)
    _rng: random.Random = field(init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        for kind, rate in self.rates.items():
            check_kind(kind)
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"fault rate for {kind!r} must be within 0..1, got {rate}")

    def script(self, path_regex: str, kinds: list[str]) -> None:
        with self._lock:
            self._scripts.append(
                _Script(re.compile(path_regex), deque(check_kind(k) for k in kinds))
            )

    def serve_body(self, path_regex: str, body: bytes, status: int = 200) -> None:
        """Answer authorised requests on matching paths with exactly these bytes, until cleared:
        hostile or malformed documents for tests (`ok`-path faults still apply first)."""
        with self._lock:
            self._canned.append(_Canned(re.compile(path_regex), status, bytes(body)))

    def canned(self, path: str) -> tuple[int, bytes] | None:
        with self._lock:
            for canned in self._canned:
                if canned.pattern.search(path):
                    return canned.status, canned.body
        return None

    def set_rates(self, rates: dict[str, float]) -> None:
        checked = FaultPlan(rates=dict(rates)).rates  # validates kinds and ranges first
        with self._lock:
            self.rates.update(checked)

    def clear(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._canned.clear()
            self.rates.clear()

    def choose(self, path: str) -> str | None:
        with self._lock:
            for script in self._scripts:
                if script.kinds and script.pattern.search(path):
                    kind = script.kinds.popleft()
                    return None if kind == NO_FAULT else kind
            for kind, rate in self.rates.items():
                if rate and self._rng.random() < rate:
                    return kind
        return None
