"""The Edge Impulse Studio API client (pure Python, no Dagster)."""

from ei_assets.studio.blocks import Body, LearnBlock, Project, metadata_endpoints
from ei_assets.studio.client import Discovery, DiscoveryProblem, StudioClient, StudioResponse
from ei_assets.studio.errors import (
    ApiError,
    AuthError,
    DeadlineExceededError,
    InvalidResponseError,
    NotFoundError,
    RetriesExhaustedError,
    StudioError,
    UnknownBlockTypeError,
)
from ei_assets.studio.retry import RetryPolicy, parse_retry_after

__all__ = [
    "ApiError",
    "AuthError",
    "Body",
    "DeadlineExceededError",
    "Discovery",
    "DiscoveryProblem",
    "InvalidResponseError",
    "LearnBlock",
    "NotFoundError",
    "Project",
    "RetriesExhaustedError",
    "RetryPolicy",
    "StudioClient",
    "StudioError",
    "StudioResponse",
    "UnknownBlockTypeError",
    "metadata_endpoints",
    "parse_retry_after",
]
