"""Typed errors of the Studio client. Messages name the endpoint, project and learn block; never a key."""

from __future__ import annotations

from typing import Any

from ei_assets.errors import EiAssetsError


def describe_location(endpoint: str | None, project_id: int | None, learn_id: int | None) -> str:
    """`project 1, learn block 3, keras`: how every message and log line names a request."""
    parts = []
    if project_id is not None:
        parts.append(f"project {project_id}")
    if learn_id is not None:
        parts.append(f"learn block {learn_id}")
    if endpoint:
        parts.append(endpoint)
    return ", ".join(parts)


class StudioError(EiAssetsError):
    """Base class: something went wrong talking to the Studio API."""

    def __init__(
        self,
        message: str,
        *,
        endpoint: str | None = None,
        project_id: int | None = None,
        learn_id: int | None = None,
        status: int | None = None,
        attempts: int = 1,
    ) -> None:
        self.endpoint = endpoint
        self.project_id = project_id
        self.learn_id = learn_id
        self.status = status
        self.attempts = attempts
        where = describe_location(endpoint, project_id, learn_id)
        super().__init__(f"{where}: {message}" if where else message)
        self.reason = message


class AuthError(StudioError):
    """401/403: the key is wrong, revoked or lacks access. Not retried."""


class NotFoundError(StudioError):
    """404: the project or learn block does not exist (any more). Not retried."""


class ApiError(StudioError):
    """The API answered `success: false` (at any HTTP status) or an unexpected 4xx."""

    def __init__(self, message: str, *, api_error: str | None = None, **kwargs: Any) -> None:
        self.api_error = api_error
        super().__init__(message, **kwargs)


class InvalidResponseError(StudioError):
    """The body is not valid JSON (or not a JSON object)."""


class RetriesExhaustedError(StudioError):
    """A transient failure (429, 5xx, timeout, dropped connection) outlived every retry."""


class DeadlineExceededError(StudioError):
    """The overall deadline ran out before the request could succeed."""


class UnknownBlockTypeError(StudioError):
    """A learn block type whose metadata endpoint we do not know; reported, never guessed."""
