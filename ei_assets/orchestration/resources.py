"""Dagster resources: the Studio API (keys from the EI_API_KEY env var) and the data dir."""


from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
from pydantic import Field

from ei_assets.datadir import DataDir
from ei_assets.settings import (
    DEFAULT_API_URL,
    DEFAULT_DATA_DIR,
    DEFAULT_MAX_CONCURRENCY,
    ApiKey,
    parse_api_keys,
    parse_api_url,
)
from ei_assets.studio import RetryPolicy, StudioClient
from ei_assets.warehouse import Thresholds


class StudioResource(dg.ConfigurableResource):
    """The Edge Impulse Studio API. Give `api_key` as dg.EnvVar("EI_API_KEY"): the UI then shows
    the variable's name, never its value."""

    api_key: str = Field(description="One or more project API keys, comma-separated")
    api_url: str = Field(default=DEFAULT_API_URL, description="Base URL of the Studio API")
    max_concurrency: int = Field(default=DEFAULT_MAX_CONCURRENCY, ge=1, le=256,
                                 description="Most requests in flight at once, over all projects")
    timeout_seconds: float = Field(default=60.0, gt=0, description="Timeout of one request")
    deadline_seconds: float = Field(default=3600.0, gt=0,
                                    description="Overall deadline of one run's API work")
    max_attempts: int = Field(default=5, ge=1, le=20,
                              description="Attempts per request on 429, 5xx, timeouts, drops")
    backoff_seconds: float = Field(default=0.5, gt=0,
                                   description="First backoff; doubles per attempt, with jitter")

    def api_keys(self) -> tuple[ApiKey, ...]:
        return parse_api_keys(self.api_key)

    @contextmanager
    def client(self) -> Iterator[StudioClient]:
        with StudioClient(parse_api_url(self.api_url), max_concurrency=self.max_concurrency,
                          timeout=self.timeout_seconds, deadline_seconds=self.deadline_seconds,
                          retry=RetryPolicy(max_attempts=self.max_attempts,
                                            backoff_base=self.backoff_seconds)) as client:
            yield client


class DataDirResource(dg.ConfigurableResource):
    """EI_DATA_DIR: raw archive, Parquet lake and DuckDB warehouse, plus the check thresholds."""

    data_dir: str = Field(default=DEFAULT_DATA_DIR, description="Where raw/, lake/ and ei.duckdb live")
    lock_timeout_seconds: float = Field(default=300.0, gt=0,
                                        description="How long a warehouse write waits for the lock")
    regression_accuracy_drop: float = Field(
        default=0.01, ge=0, description="model_type_trend: accuracy fall that counts as regression")
    regression_resource_rise: float = Field(
        default=0.10, ge=0, description="model_type_trend: relative latency/RAM/ROM rise that counts")
    int8_max_accuracy_drop: float = Field(
        default=0.02, ge=0, description="Check: int8 accuracy below float32 by more than this warns")
    profiling_recheck_minutes: float = Field(
        default=5.0, gt=0, description="Sensor: re-fetch a block this long after profiling was pending")

    def open(self) -> DataDir:
        return DataDir.open(
            self.data_dir,
            Thresholds(self.regression_accuracy_drop, self.regression_resource_rise),
            self.lock_timeout_seconds,
        )
