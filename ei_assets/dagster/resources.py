"""Dagster resources: the Studio API, the data dir, and where a refresh report goes.

Every setting comes in as a Dagster `EnvVar` (see `ei_assets.definitions`), so the UI shows the
variable's name and the value is read when a run starts, not when the code location loads. Each
value is validated once, here, by the parsers of `ei_assets.settings`: a bad one fails the run
with one line naming the variable.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import dagster as dg
from pydantic import Field

from ei_assets.pipeline.data_dir import DataDir
from ei_assets.pipeline.refresh import RefreshResult
from ei_assets.settings import (
    DEFAULT_API_URL,
    DEFAULT_DATA_DIR,
    DEFAULT_MAX_CONCURRENCY,
    DEFAULT_VERIFY_EVERY,
    DEFAULT_WAREHOUSE,
    ApiKey,
    parse_api_keys,
    parse_api_url,
    parse_max_concurrency,
    parse_verify_every,
)
from ei_assets.studio import RetryPolicy, StudioClient
from ei_assets.warehouse import LoadResult, Thresholds


class StudioResource(dg.ConfigurableResource["StudioResource"]):
    """The Edge Impulse Studio API. `api_key` is given as dg.EnvVar("EI_API_KEY"): the UI shows the
    variable's name, never its value."""

    api_key: str = Field(description="EI_API_KEY: one or more project API keys, comma-separated")
    api_url: str = Field(default=DEFAULT_API_URL, description="EI_API_URL: base URL of the Studio API")
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY,
                                 description="EI_MAX_CONCURRENCY: most requests in flight at once, "
                                             "over all projects (1-256)")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Timeout of one request")
    deadline_seconds: float = Field(default=3600.0, gt=0,
                                    description="Overall deadline of one run's API work")
    max_attempts: int = Field(default=5, ge=1, le=20,
                              description="Attempts per request on 429, 5xx, timeouts, drops")
    backoff_seconds: float = Field(default=0.5, gt=0,
                                   description="First backoff; doubles per attempt, with jitter")
    verify_every: str = Field(default=DEFAULT_VERIFY_EVERY,
                              description="EI_VERIFY_EVERY: how old a project's last full fetch may "
                                          "be before its blocks are fetched although Studio says it "
                                          "did not change (7d, 12h, 30m; 0: always fetch)")

    def verify_interval(self) -> timedelta:
        return parse_verify_every(self.verify_every)

    def api_keys(self) -> tuple[ApiKey, ...]:
        return parse_api_keys(self.api_key)

    def concurrency(self) -> int:
        return parse_max_concurrency(str(self.max_concurrency))

    @contextmanager
    def client(self) -> Iterator[StudioClient]:
        with StudioClient(parse_api_url(self.api_url), max_concurrency=self.concurrency(),
                          timeout=self.timeout_seconds, deadline_seconds=self.deadline_seconds,
                          retry=RetryPolicy(max_attempts=self.max_attempts,
                                            backoff_base=self.backoff_seconds)) as client:
            yield client


class DataDirResource(dg.ConfigurableResource["DataDirResource"]):
    """EI_DATA_DIR: raw archive, Parquet lake and DuckDB warehouse, plus the check thresholds."""

    data_dir: str = Field(default=DEFAULT_DATA_DIR,
                          description="EI_DATA_DIR: where raw/, lake/ and ei.duckdb live "
                                      "(a local path or s3://bucket/prefix)")
    warehouse: str = Field(default=DEFAULT_WAREHOUSE,
                           description="EI_WAREHOUSE: duckdb (the file in EI_DATA_DIR) or "
                                       "ducklake:postgres:<libpq conninfo>")
    lock_timeout_seconds: float = Field(default=300.0, gt=0,
                                        description="How long a warehouse write waits for the lock")
    regression_accuracy_drop: float = Field(
        default=Thresholds.accuracy_drop, ge=0,
        description="model_type_trend: accuracy fall that counts as regression")
    regression_resource_rise: float = Field(
        default=Thresholds.resource_rise, ge=0,
        description="model_type_trend: relative latency/RAM/ROM rise that counts")
    int8_max_accuracy_drop: float = Field(
        default=0.02, ge=0, description="Check: int8 accuracy below float32 by more than this warns")
    profiling_recheck_minutes: float = Field(
        default=5.0, gt=0, description="Sensor: re-fetch a block this long after profiling was pending")

    def open(self) -> DataDir:
        return DataDir.open(
            self.data_dir,
            Thresholds(self.regression_accuracy_drop, self.regression_resource_rise),
            self.lock_timeout_seconds,
            warehouse=self.warehouse,
        )


class ResultSink:
    """Where the refresh and warehouse assets hand their reports: the CLI passes one and reads
    them after the run, instead of parsing UI metadata."""

    def __init__(self) -> None:
        self.last: RefreshResult | None = None
        self.load: LoadResult | None = None

    def put(self, report: RefreshResult) -> None:
        self.last = report

    def put_load(self, report: LoadResult) -> None:
        self.load = report
