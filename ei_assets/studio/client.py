"""A small, synchronous, thread-safe client for the Edge Impulse Studio API, on httpx.

One client serves a whole run: it bounds the requests in flight over all projects with one
semaphore, gives each request a timeout, and stops retrying when the run's deadline is reached.
Callers fan out with threads (see ei_assets.ingest); the client itself never spawns any.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import msgspec

from ei_assets.errors import EiAssetsError
from ei_assets.settings import ApiKey
from ei_assets.studio.blocks import Body, Endpoint, LearnBlock, Project
from ei_assets.studio.errors import (
    ApiError,
    AuthError,
    DeadlineExceededError,
    InvalidResponseError,
    NotFoundError,
    RetriesExhaustedError,
    StudioError,
    describe_location,
)
from ei_assets.studio.retry import RETRYABLE_STATUS, RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

USER_AGENT = "ei-assets/0.1 (+https://github.com/ei-assets)"
MAX_BODY_BYTES = 1 << 30  # larger bodies are refused, not buffered: far above any metadata body


@dataclass(frozen=True)
class StudioResponse:
    """A successful response: the exact body bytes as received, plus how it was obtained."""

    endpoint: str
    path: str
    status: int
    body: Body
    attempts: int
    duration_ms: float
    fetched_at: datetime

    def json(self) -> Any:
        """The whole document as Python objects (fine for small documents; see ei_assets.ingest.flatten)."""
        return msgspec.json.decode(self.body)


@dataclass(frozen=True)
class _Reply:
    """One HTTP answer, its body read whole (and bounded)."""

    status: int
    headers: httpx.Headers
    body: Body
    path: str


class BodyTooLargeError(EiAssetsError):
    """A response body larger than the client reads (it is refused unread)."""


class _Envelope(msgspec.Struct):
    success: bool | None = None
    error: str | None = None


class _ProjectDoc(msgspec.Struct):
    id: int
    name: str


class _ProjectsDoc(msgspec.Struct):
    projects: list[_ProjectDoc]


class _LearnBlockDoc(msgspec.Struct):
    id: int
    type: str
    name: str
    title: str


class _ImpulseDoc(msgspec.Struct, rename="camel"):
    id: int
    name: str
    learn_blocks: list[_LearnBlockDoc]


class _ImpulsesDoc(msgspec.Struct):
    impulses: list[_ImpulseDoc]


class _LastModificationDoc(msgspec.Struct, rename="camel"):
    last_modification_date: datetime | None = None


# Built once at import, never lazily inside the fetch threads.
_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_DECODERS: dict[type[Any], Callable[[Body], Any]] = {
    doc_type: msgspec.json.Decoder(doc_type).decode
    for doc_type in (_ProjectsDoc, _ImpulsesDoc, _LastModificationDoc)
}


@dataclass(frozen=True)
class DiscoveryProblem:
    """A key, or a project of a key, that discovery could not read. Names the key by position."""

    key_label: str  # "#2": the key's position in EI_API_KEY
    error: StudioError

    @property
    def refused(self) -> bool:
        """The key itself was refused (401/403): a configuration error, not a passing failure."""
        return isinstance(self.error, AuthError) and self.error.endpoint == "projects"

    def __str__(self) -> str:
        return f"EI_API_KEY {self.key_label}: {self.error}"


@dataclass
class Discovery:
    """Every learn block reachable with the configured keys, and what could not be discovered."""

    blocks: list[LearnBlock] = field(default_factory=list)
    keys_by_project: dict[int, ApiKey] = field(default_factory=dict)
    errors: list[DiscoveryProblem] = field(default_factory=list)


class StudioClient:
    """The Studio API over httpx: discovery, metadata and target constraints, with bounded
    concurrency, timeouts, an overall deadline, retries and typed errors."""

    def __init__(
        self,
        base_url: str,
        *,
        max_concurrency: int = 8,
        timeout: float = 30.0,
        deadline_seconds: float | None = None,
        retry: RetryPolicy | None = None,
        transport: httpx.BaseTransport | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.max_body_bytes = max_body_bytes
        self._deadline = None if deadline_seconds is None else time.monotonic() + deadline_seconds
        self._slots = threading.BoundedSemaphore(max_concurrency)
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            limits=httpx.Limits(
                max_connections=max_concurrency, max_keepalive_connections=max_concurrency
            ),
            headers={"accept": "application/json", "user-agent": USER_AGENT},
            follow_redirects=False,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StudioClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- API calls -------------------------------------------------------------------------

    def list_projects(self, key: ApiKey) -> list[Project]:
        response = self.get(key, "/api/projects", endpoint="projects")
        doc = self._decode(response, _ProjectsDoc)
        return [Project(id=p.id, name=p.name) for p in doc.projects]

    def list_learn_blocks(self, key: ApiKey, project: Project) -> list[LearnBlock]:
        response = self.get(
            key, f"/api/{int(project.id)}/impulses", endpoint="impulses", project_id=project.id
        )
        doc = self._decode(response, _ImpulsesDoc, project_id=project.id)
        return [
            LearnBlock(
                project_id=project.id,
                project_name=project.name,
                impulse_id=impulse.id,
                impulse_name=impulse.name,
                learn_id=block.id,
                block_type=block.type,
                block_name=block.name,
                block_title=block.title,
            )
            for impulse in doc.impulses
            for block in impulse.learn_blocks
        ]

    def get_target_constraints(self, key: ApiKey, project_id: int) -> StudioResponse:
        """GET /api/{projectId}/target-constraints: the project's target devices and budgets."""
        return self.get(key, f"/api/{int(project_id)}/target-constraints",
                        endpoint="target-constraints", project_id=project_id)

    def get_last_modification(self, key: ApiKey, project_id: int) -> datetime | None:
        """GET /api/{projectId}/last-modification: when the project's data or an impulse last
        changed (UTC), or None when Studio sends no date. Errors as for any request."""
        response = self.get(key, f"/api/{int(project_id)}/last-modification",
                            endpoint="last-modification", project_id=project_id)
        doc: _LastModificationDoc = self._decode(response, _LastModificationDoc, project_id=project_id)
        date = doc.last_modification_date
        if date is None:
            return None
        return date.replace(tzinfo=UTC) if date.tzinfo is None else date.astimezone(UTC)

    def discover(self, keys: Sequence[ApiKey]) -> Discovery:
        """Projects of every key, then the learn blocks of every project, concurrently."""
        found = Discovery()
        lock = threading.Lock()

        def one_key(key: ApiKey) -> None:
            try:
                projects = self.list_projects(key)
            except StudioError as exc:
                with lock:
                    found.errors.append(DiscoveryProblem(key.label, exc))
                return
            for project in projects:
                try:
                    blocks = self.list_learn_blocks(key, project)
                except StudioError as exc:
                    with lock:
                        found.errors.append(DiscoveryProblem(key.label, exc))
                    continue
                with lock:
                    found.keys_by_project[project.id] = key
                    found.blocks.extend(blocks)

        with ThreadPoolExecutor(max_workers=min(len(keys), self.max_concurrency) or 1) as pool:
            list(pool.map(one_key, keys))
        found.blocks.sort(key=lambda b: (b.project_id, b.impulse_id, b.learn_id))
        return found

    def fetch_endpoint(self, key: ApiKey, block: LearnBlock, endpoint: Endpoint) -> StudioResponse:
        return self.get(
            key,
            endpoint.path(block.project_id, block.learn_id),
            endpoint=endpoint.name,
            params=endpoint.params,
            project_id=block.project_id,
            learn_id=block.learn_id,
        )

    # ---- the request loop ------------------------------------------------------------------

    def get(
        self,
        key: ApiKey,
        path: str,
        *,
        endpoint: str,
        params: Sequence[tuple[str, str]] = (),
        project_id: int | None = None,
        learn_id: int | None = None,
    ) -> StudioResponse:
        """GET with retries. Returns only successful responses; everything else raises StudioError."""
        where: dict[str, Any] = {"endpoint": endpoint, "project_id": project_id, "learn_id": learn_id}
        started = time.monotonic()
        fetched_at = datetime.now(UTC)
        last_problem = "no attempt made"
        last_status: int | None = None
        for attempt in range(1, self.retry.max_attempts + 1):
            remaining = self._remaining()
            if remaining is not None and remaining <= 0:
                raise DeadlineExceededError(
                    f"overall deadline reached after {attempt - 1} attempt(s); last: {last_problem}",
                    attempts=attempt - 1,
                    status=last_status,
                    **where,
                )
            wait: float | None
            try:
                response = self._send(key, path, params, remaining)
            except BodyTooLargeError as exc:
                raise InvalidResponseError(str(exc), attempts=attempt, **where) from None
            except httpx.TimeoutException:
                last_problem = f"timed out after {self._request_timeout(remaining):.1f}s"
                last_status = None
                wait = self.retry.backoff(attempt)
            except httpx.TransportError as exc:
                last_problem = f"connection failed ({type(exc).__name__}: {exc})"
                last_status = None
                wait = self.retry.backoff(attempt)
            else:
                status = response.status
                if status < 400 or status not in RETRYABLE_STATUS:
                    return self._accept(response, attempt, started, fetched_at, where)
                last_problem, last_status = f"HTTP {status}{_api_error_text(response)}", status
                wait = None
                if status == 429:
                    wait = parse_retry_after(response.headers.get("retry-after"))
                    if wait is not None:
                        wait = min(wait, self.retry.retry_after_max)
                if wait is None:
                    wait = self.retry.backoff(attempt)
            if attempt == self.retry.max_attempts:
                break
            remaining = self._remaining()
            if remaining is not None and wait >= remaining:
                raise DeadlineExceededError(
                    f"overall deadline would pass while waiting {wait:.1f}s to retry ({last_problem})",
                    attempts=attempt,
                    status=last_status,
                    **where,
                )
            log.info(  # a retry is routine: shown with -v, summed up in fetch_log.attempts
                "%s: %s; retrying in %.2fs (attempt %d/%d)",
                describe_location(**where),
                last_problem,
                wait,
                attempt + 1,
                self.retry.max_attempts,
            )
            time.sleep(wait)
        raise RetriesExhaustedError(
            f"gave up after {self.retry.max_attempts} attempts; last: {last_problem}",
            attempts=self.retry.max_attempts,
            status=last_status,
            **where,
        )

    def _send(
        self, key: ApiKey, path: str, params: Sequence[tuple[str, str]], remaining: float | None
    ) -> _Reply:
        timeout = self._request_timeout(remaining)
        acquired = self._slots.acquire(timeout=remaining if remaining is not None else -1)
        if not acquired:
            raise httpx.PoolTimeout("no request slot free before the deadline")
        try:
            with self._http.stream(
                "GET",
                path,
                params=list(params),
                headers={"x-api-key": key.reveal()},
                timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            ) as response:
                return _Reply(response.status_code, response.headers,
                              self._read_bounded(response), str(response.request.url.path))
        finally:
            self._slots.release()

    def _read_bounded(self, response: httpx.Response) -> Body:
        """The body, bounded by max_body_bytes. With a declared length and no content encoding
        (the usual case) it is read straight into one buffer of that size: no list of chunks to
        join, so a body costs its own size in memory, once."""
        declared = response.headers.get("content-length", "")
        length = int(declared) if declared.isdigit() else None
        if length is not None and length > self.max_body_bytes:
            raise BodyTooLargeError(f"body of {length} bytes is larger than the limit of "
                                    f"{self.max_body_bytes} bytes; refused unread")
        if length is not None and response.headers.get("content-encoding", "identity") == "identity":
            body = bytearray(length)
            view, size = memoryview(body), 0
            for chunk in response.iter_raw():  # h11 refuses a body longer or shorter than declared
                view[size:size + len(chunk)] = chunk
                size += len(chunk)
            view.release()
            return body
        chunks, size = [], 0
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise BodyTooLargeError(f"body larger than the limit of {self.max_body_bytes} bytes; "
                                        "refused after reading that much")
            chunks.append(chunk)
        return b"".join(chunks)

    def _accept(
        self,
        response: _Reply,
        attempts: int,
        started: float,
        fetched_at: datetime,
        where: dict[str, Any],
    ) -> StudioResponse:
        status = response.status
        body = response.body
        try:
            envelope = _decode_envelope(body)
        except (msgspec.DecodeError, msgspec.ValidationError, RecursionError) as exc:
            if status >= 400:  # an error page that is not JSON: the status says enough
                envelope = _Envelope(success=False, error=None)
            else:
                raise InvalidResponseError(
                    f"body of {len(body)} bytes is not a JSON object ({_reason(exc)})",
                    status=status,
                    attempts=attempts,
                    **where,
                ) from None
        api_error = envelope.error or f"HTTP {status}"
        if status in (401, 403):
            raise AuthError(
                f"HTTP {status}: the API key was refused ({api_error}); "
                "check that this key is current (Studio > your project > Dashboard > Keys)",
                status=status,
                attempts=attempts,
                **where,
            )
        if status == 404:
            raise NotFoundError(
                f"HTTP 404: not found ({api_error})", status=status, attempts=attempts, **where
            )
        if status >= 400:
            raise ApiError(
                f"HTTP {status}: {api_error}",
                api_error=envelope.error,
                status=status,
                attempts=attempts,
                **where,
            )
        if envelope.success is False:
            raise ApiError(
                f"API reported failure: {envelope.error or '(no error text)'}",
                api_error=envelope.error,
                status=status,
                attempts=attempts,
                **where,
            )
        return StudioResponse(
            endpoint=where["endpoint"],
            path=response.path,
            status=status,
            body=body,
            attempts=attempts,
            duration_ms=(time.monotonic() - started) * 1000.0,
            fetched_at=fetched_at,
        )

    def _decode(self, response: StudioResponse, doc_type: type[Any], **where: Any) -> Any:
        try:
            return _DECODERS[doc_type](response.body)
        except (msgspec.ValidationError, msgspec.DecodeError, RecursionError) as exc:
            raise InvalidResponseError(
                f"unexpected response shape: {_reason(exc)}", endpoint=response.endpoint, **where
            ) from None

    def _remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def _request_timeout(self, remaining: float | None) -> float:
        return self.timeout if remaining is None else max(0.001, min(self.timeout, remaining))


def _reason(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "JSON nested too deeply to read"
    return str(exc)


def _api_error_text(response: _Reply) -> str:
    """`: <error>` from a `success: false` body, so retried failures keep the API's own words."""
    try:
        envelope = _decode_envelope(response.body)
    except (msgspec.DecodeError, msgspec.ValidationError, RecursionError):
        return ""
    return f": {envelope.error}" if envelope.error else ""
