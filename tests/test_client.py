"""The Studio client against the simulator over real HTTP on loopback: discovery, endpoint routing,
every fault kind recovered or reported, Retry-After and the concurrency bound measured on the
server side, and the API key kept out of logs and exception text."""

from __future__ import annotations

import itertools
import logging
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from ei_assets.settings import ApiKey
from ei_assets.simulator import FaultPlan, Simulator, WorldConfig
from ei_assets.studio import (
    ApiError,
    AuthError,
    DeadlineExceededError,
    InvalidResponseError,
    LearnBlock,
    NotFoundError,
    RetriesExhaustedError,
    RetryPolicy,
    StudioClient,
    StudioError,
    StudioResponse,
    UnknownBlockTypeError,
    metadata_endpoints,
    parse_retry_after,
)


def fast_retry(attempts: int = 4) -> RetryPolicy:
    return RetryPolicy(max_attempts=attempts, backoff_base=0.01, backoff_max=0.05,
                       rng=random.Random(0))


def fetch_all(client: StudioClient, key: ApiKey, block: LearnBlock) -> list[StudioResponse]:
    """Every metadata response of a block, primary first, as the refresh fetches them."""
    return [client.fetch_endpoint(key, block, endpoint) for endpoint in metadata_endpoints(block.block_type)]


def first_block(client: StudioClient, keys: list[ApiKey], block_type: str) -> tuple[ApiKey, LearnBlock]:
    found = client.discover(keys)
    block = next(b for b in found.blocks if b.block_type == block_type)
    return found.keys_by_project[block.project_id], block


def test_discovery_finds_every_learn_block_of_every_key(sim: Simulator, keys: list[ApiKey]) -> None:
    with StudioClient(sim.url) as client:
        found = client.discover(keys)
    assert found.errors == []
    expected = {(p.id, b.learn_id, b.block_type) for p, b in sim.world.blocks()}
    assert {(b.project_id, b.learn_id, b.block_type) for b in found.blocks} == expected
    assert set(found.keys_by_project) == set(sim.world.projects)
    block = next(b for b in found.blocks if b.block_type == "anomaly-gmm")
    assert block.impulse_name == "Vibration anomaly (GMM)"
    assert block.key == f"{block.project_id}-{block.learn_id}"


def test_block_type_decides_endpoints_and_unknown_types_are_reported() -> None:
    assert [e.name for e in metadata_endpoints("anomaly")] == ["anomaly"]
    assert [e.name for e in metadata_endpoints("anomaly-gmm")] == ["anomaly", "gmm"]
    for keras_type in ("keras", "keras-visual-anomaly", "keras-object-detection", "keras-akida"):
        (endpoint,) = metadata_endpoints(keras_type)
        assert endpoint.name == "keras" and ("excludeLabels", "true") in endpoint.params
    with pytest.raises(UnknownBlockTypeError, match="'vlm'"):
        metadata_endpoints("vlm")


def test_fetch_returns_exact_body_bytes_for_each_endpoint(sim: Simulator, keys: list[ApiKey]) -> None:
    with StudioClient(sim.url) as client:
        key, block = first_block(client, keys, "anomaly-gmm")
        responses = fetch_all(client, key, block)
    assert [r.endpoint for r in responses] == ["anomaly", "gmm"]
    assert responses[1].json()["weights"]
    served = httpx.get(f"{sim.url}/api/{block.project_id}/training/anomaly/{block.learn_id}/gmm/metadata",
                       headers={"x-api-key": key.reveal()})
    assert responses[1].body == served.content
    assert all(r.status == 200 and r.attempts == 1 for r in responses)


def test_keras_metadata_is_asked_without_labels(sim: Simulator, keys: list[ApiKey]) -> None:
    with StudioClient(sim.url) as client:
        key, block = first_block(client, keys, "keras")
        (response,) = fetch_all(client, key, block)
    assert response.json()["labels"] == []


@pytest.mark.parametrize("kind", ["500", "502", "503", "drop", "truncate", "slow"])
def test_transient_faults_are_retried_and_recovered(kind: str, keys: list[ApiKey]) -> None:
    # "slow" hangs until the simulator stops; 5 s is far beyond a normal answer on any machine
    with Simulator(faults=FaultPlan(slow_seconds=3600.0)) as sim:
        sim.faults.script(r"/training/", [kind, kind])
        with StudioClient(sim.url, timeout=5.0, retry=fast_retry()) as client:
            key, block = first_block(client, [ApiKey(k, "#") for k in sim.api_keys], "keras")
            (response,) = fetch_all(client, key, block)
    assert response.attempts == 3
    assert response.json()["success"] is True


@pytest.mark.parametrize("kind", ["503", "drop", "truncate"])
def test_persistent_faults_exhaust_retries_with_a_clear_error(kind: str) -> None:
    with Simulator() as sim:
        sim.faults.script(r"/training/", [kind] * 10)
        with StudioClient(sim.url, retry=fast_retry(3)) as client:
            key, block = first_block(client, [ApiKey(k, "#") for k in sim.api_keys], "keras")
            with pytest.raises(RetriesExhaustedError) as raised:
                fetch_all(client, key, block)
        sim.wait_idle()
        training = [r for r in sim.stats.requests if "/training/" in r.path]
    message = str(raised.value)
    assert f"project {block.project_id}" in message and f"learn block {block.learn_id}" in message
    assert "3 attempts" in message
    assert raised.value.status == (503 if kind == "503" else None)
    if kind == "503":
        assert "HTTP 503: Simulated HTTP 503" in message  # the API's own error text
    assert len(training) == 3


def test_retry_after_seconds_is_honoured_measured_on_the_server() -> None:
    with Simulator(faults=FaultPlan(retry_after="1")) as sim:
        sim.faults.script(r"/impulses$", ["429", "429"])
        with StudioClient(sim.url, retry=fast_retry()) as client:
            client.discover([ApiKey(sim.api_keys[0], "#1")])
        sim.wait_idle()
        hits = [r for r in sim.stats.requests if r.path.endswith("/impulses")]
    assert [r.status for r in hits] == [429, 429, 200]
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    assert all(gap >= 0.95 for gap in gaps), gaps


def test_retry_after_http_date_is_honoured() -> None:
    when = datetime.now(UTC) + timedelta(seconds=2)
    with Simulator(faults=FaultPlan(retry_after=format_datetime(when, usegmt=True))) as sim:
        sim.faults.script(r"/api/projects$", ["429"])
        with StudioClient(sim.url, retry=fast_retry()) as client:
            client.list_projects(ApiKey(sim.api_keys[0], "#1"))
        sim.wait_idle()
        hits = [r for r in sim.stats.requests if r.path.endswith("/projects")]
    assert [r.status for r in hits] == [429, 200]
    assert hits[1].at - hits[0].at >= 0.9  # the date has one-second resolution


def test_parse_retry_after_forms() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("7", now) == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None


def test_too_many_429s_without_retry_after_back_off_then_give_up() -> None:
    with Simulator(faults=FaultPlan(retry_after="")) as sim:
        sim.faults.script(r"/api/projects$", ["429"] * 5)
        with StudioClient(sim.url, retry=fast_retry(3)) as client, pytest.raises(
            RetriesExhaustedError, match="HTTP 429"
        ):
            client.list_projects(ApiKey(sim.api_keys[0], "#1"))


def test_unsuccessful_at_http_200_carries_the_api_error_text(sim: Simulator, keys: list[ApiKey]) -> None:
    sim.faults.script(r"/training/", ["unsuccessful"])
    with StudioClient(sim.url, retry=fast_retry()) as client:
        key, block = first_block(client, keys, "anomaly")
        with pytest.raises(ApiError) as raised:
            fetch_all(client, key, block)
    assert raised.value.api_error == "Simulated failure: try again later"
    assert raised.value.status == 200
    assert f"learn block {block.learn_id}" in str(raised.value)


def test_non_json_body_names_endpoint_and_size(sim: Simulator, keys: list[ApiKey]) -> None:
    sim.faults.script(r"/training/", ["html"])
    with StudioClient(sim.url, retry=fast_retry()) as client:
        key, block = first_block(client, keys, "keras")
        with pytest.raises(InvalidResponseError) as raised:
            fetch_all(client, key, block)
    assert "keras" in str(raised.value) and "50 bytes" in str(raised.value)


def test_auth_and_not_found_are_typed_and_not_retried(sim: Simulator, keys: list[ApiKey]) -> None:
    with StudioClient(sim.url, retry=fast_retry()) as client:
        found = client.discover(keys)
        block = found.blocks[0]
        sim.stats.reset()
        with pytest.raises(AuthError) as auth:
            fetch_all(client, ApiKey("ei_revoked", "#9"), block)
        gone = LearnBlock(**{**block.__dict__, "learn_id": 999})
        with pytest.raises(NotFoundError) as missing:
            fetch_all(client, found.keys_by_project[block.project_id], gone)
    sim.wait_idle()
    assert sim.stats.snapshot()["requests"] == 2
    assert auth.value.status == 401 and f"project {block.project_id}" in str(auth.value)
    assert "learn block 999" in str(missing.value)


def test_discovery_reports_a_bad_key_and_keeps_the_good_ones(sim: Simulator, keys: list[ApiKey]) -> None:
    with StudioClient(sim.url, retry=fast_retry()) as client:
        found = client.discover([*keys, ApiKey("ei_bogus", "#4")])
    assert len(found.errors) == 1 and isinstance(found.errors[0].error, AuthError)
    assert found.errors[0].refused and str(found.errors[0]).startswith("EI_API_KEY #4: ")
    assert set(found.keys_by_project) == set(sim.world.projects)


def test_concurrency_never_exceeds_the_limit_measured_on_the_server() -> None:
    config = WorldConfig(projects=4, blocks_per_project=5, predictions=10)
    with Simulator(config, faults=FaultPlan(latency_seconds=0.05)) as sim:
        with StudioClient(sim.url, max_concurrency=3) as client:
            found = client.discover([ApiKey(k, "#") for k in sim.api_keys])
            sim.stats.reset()
            with ThreadPoolExecutor(max_workers=12) as pool:
                list(pool.map(lambda b: fetch_all(client, found.keys_by_project[b.project_id], b),
                              found.blocks))
        sim.wait_idle()
        stats = sim.stats.snapshot()
    assert stats["requests"] >= 20
    assert stats["maxInFlight"] == 3  # reached, never exceeded


def test_overall_deadline_stops_retrying(keys: list[ApiKey]) -> None:
    with Simulator(faults=FaultPlan(slow_seconds=3600.0)) as sim:
        sim.faults.script(r"/api/projects$", ["slow"] * 10)
        with StudioClient(sim.url, timeout=60.0, deadline_seconds=1.0, retry=fast_retry(10)) as client, \
                pytest.raises(DeadlineExceededError) as raised:
            client.list_projects(ApiKey(sim.api_keys[0], "#1"))
        asked = [r for r in sim.stats.requests if r.path.endswith("/api/projects")]
    # the request was cut at the deadline, not at its 60 s timeout, and nothing was retried
    assert len(asked) <= 1 and raised.value.attempts <= 1


def test_the_key_never_reaches_logs_or_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    with Simulator(faults=FaultPlan(slow_seconds=0.5)) as sim:
        secret = sim.api_keys[0]
        for kind in ("429", "503", "drop", "truncate", "slow", "unsuccessful", "html"):
            sim.faults.script(".*", [kind] * 3)
        with StudioClient(sim.url, timeout=0.2, retry=fast_retry(3)) as client:
            key = ApiKey(secret, "#1")
            for _ in range(8):
                try:
                    client.discover([key])
                    client.list_projects(key)
                except StudioError as exc:
                    errors.append(exc)
            try:
                client.list_projects(ApiKey(secret + "x", "#2"))
            except StudioError as exc:
                errors.append(exc)
        assert errors
        for exc in errors:
            assert secret not in str(exc) and secret not in repr(exc)
            assert secret not in repr(exc.__dict__)
        assert secret not in caplog.text
        assert secret not in repr(ApiKey(secret, "#1"))


def test_one_client_is_safe_across_threads(sim: Simulator, keys: list[ApiKey]) -> None:
    results: list[int] = []
    lock = threading.Lock()
    with StudioClient(sim.url, max_concurrency=4) as client:
        found = client.discover(keys)

        def fetch(block: LearnBlock) -> None:
            body = fetch_all(client, found.keys_by_project[block.project_id], block)[0].body
            with lock:
                results.append(len(body))

        threads = [threading.Thread(target=fetch, args=(b,)) for b in found.blocks * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(results) == len(found.blocks) * 3


def test_bodies_arrive_exact_with_or_without_content_encoding() -> None:
    """Identity bodies are read into one buffer of their declared length; gzip bodies (what a
    real Studio may send) are decoded by httpx. Both come back byte for byte, over real HTTP."""
    import gzip
    import json
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    body = json.dumps({"success": True, "values": list(range(50_000)), "text": "ünïcode"}).encode()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            payload = gzip.compress(body) if self.path.startswith("/gzip") else body
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            if self.path.startswith("/gzip"):
                self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with StudioClient(url, retry=fast_retry()) as client:
            for path in ("/plain", "/gzip"):
                response = client.get(ApiKey("k", "#1"), path, endpoint="metadata")
                assert bytes(response.body) == body, path
    finally:
        server.shutdown()
        server.server_close()
