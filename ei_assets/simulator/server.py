"""The simulator's HTTP server: the Studio API under /v1, and a control API under /_sim.

Studio paths (all GET, `x-api-key` auth):
  /v1/api/projects, /v1/api/{projectId}/impulses, /v1/api/{projectId}/impulse,
  /v1/api/{projectId}/target-constraints, /v1/api/{projectId}/last-modification,
  /v1/api/{projectId}/training/anomaly/{learnId}/metadata,
  /v1/api/{projectId}/training/anomaly/{learnId}/gmm/metadata,
  /v1/api/{projectId}/training/keras/{learnId}/metadata[?excludeLabels=true]
Control paths (no auth, loopback only):
  GET /_sim/state, GET /_sim/stats, POST /_sim/stats/reset,
  POST /_sim/retrain {"projectId": P, "learnId": L} (both optional: all blocks; "signal": false
                     retrains without moving the project's last modification date),
  POST /_sim/data-change {"projectId": P} (the project's date moves, no block changes),
  POST /_sim/profiling/finish {"projectId": P, "learnId": L},
  POST /_sim/faults {"rates": {"503": 0.1}, "script": [{"path": "regex", "kinds": ["429", "ok"]}],
                     "retryAfter": "2", "slowSeconds": 5, "latencySeconds": 0},
  DELETE /_sim/faults
Fault kinds: 429 (with Retry-After), 500, 502, 503, slow (longer than a client timeout), drop
(connection closed, no response), truncate (half the body, then closed), unsuccessful
(`success: false` at HTTP 200), html (a proxy's HTML error page at HTTP 200), dateless (a
last-modification answer without its date).
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec

from ei_assets.simulator import documents
from ei_assets.simulator.faults import FaultPlan
from ei_assets.simulator.world import World, WorldConfig

log = logging.getLogger(__name__)

_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("projects", re.compile(r"^/v1/api/projects$")),
    ("impulses", re.compile(r"^/v1/api/(?P<project>\d+)/impulses$")),
    ("impulse", re.compile(r"^/v1/api/(?P<project>\d+)/impulse$")),
    ("target-constraints", re.compile(r"^/v1/api/(?P<project>\d+)/target-constraints$")),
    ("last-modification", re.compile(r"^/v1/api/(?P<project>\d+)/last-modification$")),
    ("gmm", re.compile(r"^/v1/api/(?P<project>\d+)/training/anomaly/(?P<learn>\d+)/gmm/metadata$")),
    ("anomaly", re.compile(r"^/v1/api/(?P<project>\d+)/training/anomaly/(?P<learn>\d+)/metadata$")),
    ("keras", re.compile(r"^/v1/api/(?P<project>\d+)/training/keras/(?P<learn>\d+)/metadata$")),
]


@dataclass
class RequestRecord:
    """One Studio request the server answered."""

    at: float  # monotonic seconds
    path: str
    status: int
    fault: str | None
    sent: int = 0  # body bytes sent

    @property
    def is_metadata(self) -> bool:
        return "/training/" in self.path


@dataclass
class Stats:
    """What the server saw: measured here, not trusted from the client."""

    in_flight: int = 0
    max_in_flight: int = 0
    requests: list[RequestRecord] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self) -> None:
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self, record: RequestRecord) -> None:
        with self.lock:
            self.in_flight -= 1
            self.requests.append(record)

    def reset(self) -> None:
        with self.lock:
            self.max_in_flight = self.in_flight
            self.requests.clear()

    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "inFlight": self.in_flight,
                "maxInFlight": self.max_in_flight,
                "requests": len(self.requests),
                "byStatus": _count(str(r.status) for r in self.requests),
                "byFault": _count(r.fault for r in self.requests if r.fault),
                "metadataRequests": sum(r.is_metadata for r in self.requests),
                "metadataBytes": sum(r.sent for r in self.requests if r.is_metadata),
                "bytes": sum(r.sent for r in self.requests),
            }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


class _BodyCache:
    """Recently generated bodies: big documents are built once per block state, not per request."""

    def __init__(self, size: int = 64) -> None:
        self._items: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], build: Any) -> bytes:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        body = msgspec.json.encode(build())
        with self._lock:
            self._items[key] = body
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return body


class SimulatorServer(ThreadingHTTPServer):
    """The HTTP server of the simulator: one thread a request, the world, its faults and stats."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], world: World, faults: FaultPlan,
                 cache_size: int = 64) -> None:
        self.world = world
        self.faults = faults
        self.stats = Stats()
        self.cache = _BodyCache(cache_size)
        self.stopping = threading.Event()
        super().__init__(address, _Handler)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/v1"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: SimulatorServer
    _sent = 0  # body bytes of the response being answered

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("%s - %s", self.address_string(), format % args)

    # ---- dispatch --------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _handle(self, method: str) -> None:
        url = urlsplit(self.path)
        if url.path.startswith("/_sim/"):
            self._control(method, url.path, self._read_body())
            return
        stats = self.server.stats
        stats.enter()
        self._sent = 0
        status, fault = 500, None
        try:
            fault = self.server.faults.choose(url.path) if url.path.startswith("/v1/api/") else None
            status = self._studio(method, url.path, parse_qs(url.query), fault)
        except (BrokenPipeError, ConnectionResetError):
            status = 499  # the client went away (e.g. it timed out on a slow response)
        finally:
            stats.leave(RequestRecord(time.monotonic(), url.path, status, fault, self._sent))

    # ---- the Studio API --------------------------------------------------------------------

    def _studio(self, method: str, path: str, query: dict[str, list[str]], fault: str | None) -> int:
        if self.server.faults.latency_seconds:
            time.sleep(self.server.faults.latency_seconds)
        if fault == "drop":
            self._drop()
            return 0
        if fault == "html":
            page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"
            self._send_bytes(200, page, {"Content-Type": "text/html"})
            return 200
        if fault == "slow":  # released early when the simulator stops, or by the plan's release
            deadline = time.monotonic() + self.server.faults.slow_seconds
            while not self.server.stopping.is_set() and time.monotonic() < deadline:
                if self.server.faults.release.wait(0.05):
                    break
        elif fault in ("500", "502", "503"):
            return self._json(int(fault), {"success": False, "error": f"Simulated HTTP {fault}"})
        elif fault == "429":
            return self._json(
                429,
                {"success": False, "error": "Too many requests"},
                {"Retry-After": self.server.faults.retry_after},
            )
        if method != "GET":
            return self._json(405, {"success": False, "error": "Method not allowed"})
        world = self.server.world
        project = world.project_for_key(self.headers.get("x-api-key", ""))
        if project is None:
            return self._json(401, {"success": False, "error": "Invalid API key"})
        canned = self.server.faults.canned(path)
        if canned is not None:
            self._send_bytes(canned[0], canned[1])
            return canned[0]
        route, match = next(
            ((name, m) for name, pattern in _ROUTES if (m := pattern.match(path))), (None, None)
        )
        if route is None or match is None:
            return self._json(404, {"success": False, "error": f"Unknown path {path}"})
        if route == "projects":
            modified = world.last_modified(project.id)
            return self._send_doc(fault, ("projects", project.id, modified),
                                  lambda: documents.projects_document(project, modified))
        project_id = int(match.group("project"))
        if project_id != project.id:
            # Studio does not reveal whether a project exists to a key of another project
            return self._json(404, {"success": False, "error": f"Project {project_id} not found"})
        if route == "impulses":
            return self._send_doc(fault, ("impulses", project.id),
                                  lambda: documents.impulses_document(project))
        if route == "impulse":
            return self._send_doc(fault, ("impulse", project.id),
                                  lambda: documents.impulse_document(project))
        if route == "last-modification":
            modified, dateless = world.last_modified(project.id), fault == "dateless"
            return self._send_doc(fault, ("last-modification", project.id, modified, dateless),
                                  lambda: documents.last_modification_document(modified, dateless))
        if route == "target-constraints":
            return self._send_doc(fault, ("target-constraints", project.id),
                                  lambda: documents.target_constraints_document(world, project))
        learn_id = int(match.group("learn"))
        found = world.find_block(project.id, learn_id)
        expected = {"anomaly": ("anomaly", "anomaly-gmm"), "gmm": ("anomaly-gmm",)}
        if found is None or (
            found[1].block_type not in expected.get(route, ())
            and not (route == "keras" and found[1].block_type.startswith("keras"))
        ):
            return self._json(404, {"success": False, "error": f"Learn block {learn_id} not found"})
        block = found[1]
        state = world.state(project.id, learn_id)
        now = time.monotonic()
        pending = state.profiling_pending(now)
        if route == "gmm":
            return self._send_doc(fault, ("gmm", project.id, learn_id, state.version),
                                  lambda: documents.gmm_document(world, project, block, state))
        exclude = query.get("excludeLabels", ["false"])[0].lower() == "true"
        return self._send_doc(
            fault,
            (route, project.id, learn_id, state.version, pending, exclude),
            lambda: documents.metadata_document(world, project, block, state, now, exclude),
        )

    def _send_doc(self, fault: str | None, cache_key: tuple[Any, ...], build: Any) -> int:
        if fault == "unsuccessful":
            return self._json(200, {"success": False, "error": "Simulated failure: try again later"})
        body = self.server.cache.get(cache_key, build)
        if fault == "truncate":
            self._send_bytes(200, body, truncate=True)
            return 200
        self._send_bytes(200, body)
        return 200

    # ---- the control API -------------------------------------------------------------------

    def _control(self, method: str, path: str, body: bytes) -> None:
        server = self.server
        try:
            payload = msgspec.json.decode(body) if body else {}
            if method == "GET" and path == "/_sim/state":
                self._json(200, state_document(server))
            elif method == "GET" and path == "/_sim/stats":
                self._json(200, server.stats.snapshot())
            elif method == "POST" and path == "/_sim/stats/reset":
                server.stats.reset()
                self._json(200, {"success": True})
            elif method == "POST" and path == "/_sim/retrain":
                retrained = server.world.retrain_matching(payload.get("projectId"), payload.get("learnId"),
                                                          signal=payload.get("signal", True) is not False)
                self._json(200, {"success": True, "retrained": retrained})
            elif method == "POST" and path == "/_sim/data-change":
                modified = server.world.change_data(int(payload["projectId"]))
                self._json(200, {"success": True, "lastModificationDate": modified.isoformat()})
            elif method == "POST" and path == "/_sim/profiling/finish":
                finished = server.world.finish_profiling(payload.get("projectId"), payload.get("learnId"))
                self._json(200, {"success": True, "finished": finished})
            elif method == "POST" and path == "/_sim/faults":
                configure_faults(server.faults, payload)
                self._json(200, {"success": True})
            elif method == "DELETE" and path == "/_sim/faults":
                server.faults.clear()
                self._json(200, {"success": True})
            else:
                self._json(404, {"success": False, "error": f"Unknown control path {method} {path}"})
        except (ValueError, KeyError, TypeError, msgspec.DecodeError) as exc:
            self._json(400, {"success": False, "error": str(exc)})

    # ---- I/O -------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, status: int, doc: Any, headers: dict[str, str] | None = None) -> int:
        self._send_bytes(status, msgspec.json.encode(doc), headers)
        return status

    def _send_bytes(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, truncate: bool = False
    ) -> None:
        headers = {"Content-Type": "application/json; charset=utf-8"} | (headers or {})
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if truncate:
            self.wfile.write(body[: len(body) // 2])
            self._sent = len(body) // 2
            self.wfile.flush()
            self._drop()
            return
        self.wfile.write(body)
        self._sent = len(body)

    def _drop(self) -> None:
        """Close the connection abruptly, without (the rest of) a response."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)


def state_document(server: SimulatorServer) -> dict[str, Any]:
    world = server.world
    now = time.monotonic()
    return {
        "url": server.url,
        "seed": world.config.seed,
        "projects": [
            {
                "id": project.id,
                "name": project.name,
                "apiKey": project.api_key,
                "blocks": [
                    {
                        "learnId": block.learn_id,
                        "type": block.block_type,
                        "version": (state := world.state(project.id, block.learn_id)).version,
                        "created": state.created.isoformat(),
                        "profilingPending": state.profiling_pending(now),
                    }
                    for impulse in project.impulses
                    for block in impulse.blocks
                ],
            }
            for project in world.projects.values()
        ],
    }


def configure_faults(plan: FaultPlan, payload: dict[str, Any]) -> None:
    rates = {str(k): float(v) for k, v in (payload.get("rates") or {}).items()}
    if "retryAfter" in payload:
        plan.retry_after = str(payload["retryAfter"])
    if "slowSeconds" in payload:
        plan.slow_seconds = float(payload["slowSeconds"])
    if "latencySeconds" in payload:
        plan.latency_seconds = float(payload["latencySeconds"])
    for entry in payload.get("script") or []:
        plan.script(str(entry.get("path", ".*")), [str(k) for k in entry["kinds"]])
    plan.set_rates(rates)


class Simulator:
    """A running simulator on loopback: `with Simulator() as sim: sim.url, sim.api_keys`."""

    def __init__(
        self,
        config: WorldConfig | None = None,
        faults: FaultPlan | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        retrain_every: float | None = None,
        cache_size: int = 64,
    ) -> None:
        """`cache_size`: how many generated bodies are kept; a world with more bodies than that
        generates some again on each request."""
        self.world = World(config or WorldConfig())
        self.faults = faults or FaultPlan(seed=self.world.config.seed)
        self.server = SimulatorServer((host, port), self.world, self.faults, cache_size)
        self.retrain_every = retrain_every
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def api_keys(self) -> list[str]:
        return [project.api_key for project in self.world.projects.values()]

    @property
    def stats(self) -> Stats:
        return self.server.stats

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no request is being handled, so that stats include every request made."""
        deadline = time.monotonic() + timeout
        while self.stats.in_flight and time.monotonic() < deadline:
            time.sleep(0.005)

    def start(self) -> Simulator:
        serve = threading.Thread(target=self.server.serve_forever, name="ei-sim", daemon=True)
        serve.start()
        self._threads.append(serve)
        if self.retrain_every:
            ticker = threading.Thread(target=self._retrain_loop, name="ei-sim-retrain", daemon=True)
            ticker.start()
            self._threads.append(ticker)
        return self

    def _retrain_loop(self) -> None:
        blocks = self.world.blocks()
        turn = 0
        while not self._stop.wait(self.retrain_every):
            project, block = blocks[turn % len(blocks)]
            self.world.retrain(project.id, block.learn_id)
            log.info("retrained project %s learn block %s", project.id, block.learn_id)
            turn += 1

    def stop(self) -> None:
        self._stop.set()
        self.server.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
