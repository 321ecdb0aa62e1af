"""The configuration contract: EI_API_KEY, EI_API_URL, EI_DATA_DIR, EI_WAREHOUSE,
EI_MAX_CONCURRENCY, EI_VERIFY_EVERY.

Everything is validated before the first request; a bad value raises ConfigError with one line
naming the variable. API keys are wrapped in ApiKey so that no repr, log line or exception can
show them.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlparse, urlsplit, urlunsplit

from ei_assets.errors import EiAssetsError

if TYPE_CHECKING:
    import pyarrow.fs as pafs

DEFAULT_API_URL = "https://studio.edgeimpulse.com/v1"
DEFAULT_DATA_DIR = "./data"
DEFAULT_MAX_CONCURRENCY = 8
DEFAULT_WAREHOUSE = "duckdb"
DEFAULT_VERIFY_EVERY = "7d"
DUCKLAKE_PREFIX = "ducklake:postgres:"
DEFAULT_SIM_PORT = 8377  # `ei-assets simulate` and `make dev`
REPORT_PATH = "report/index.html"  # the HTML report, under the data dir
# Options an s3:// EI_DATA_DIR gets unless its URI sets them. Delayed open: a file smaller than a
# part (5 MB) is written with one PutObject, not a multipart upload of 3 requests
# (apache/arrow#40557); an error then shows when the file is closed, and every write is checked.
S3_URI_DEFAULTS = {"allow_delayed_open": "true"}


class ConfigError(EiAssetsError, ValueError):
    """A configuration value is unusable; the message names the variable and what to do."""


class ApiKey:
    """An Edge Impulse API key that never shows itself: repr and str give a position label."""

    __slots__ = ("_value", "label")

    def __init__(self, value: str, label: str) -> None:
        self._value = value
        self.label = label

    def reveal(self) -> str:
        """The key itself, for the x-api-key header and nothing else."""
        return self._value

    def __repr__(self) -> str:
        return f"<api key {self.label}>"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ApiKey) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def parse_api_keys(raw: str | None) -> tuple[ApiKey, ...]:
    keys = [part.strip() for part in (raw or "").split(",") if part.strip()]
    if not keys:
        raise ConfigError(
            "EI_API_KEY: no API key given; set it to one or more project API keys, "
            "comma-separated (Studio > Dashboard > Keys), or run `ei-assets demo` for the simulator"
        )
    for index, key in enumerate(keys, start=1):
        if any(ch.isspace() for ch in key) or not key.isprintable():
            raise ConfigError(f"EI_API_KEY: key #{index} contains whitespace or control characters")
    return tuple(ApiKey(key, f"#{i}") for i, key in enumerate(dict.fromkeys(keys), start=1))


def parse_api_url(raw: str | None) -> str:
    url = (raw or DEFAULT_API_URL).strip().rstrip("/")
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https"):
        raise ConfigError(
            f"EI_API_URL: unknown URL scheme {parsed.scheme!r} in {url!r}; use http:// or https://"
        )
    if not parsed.netloc:
        raise ConfigError(f"EI_API_URL: {url!r} has no host; expected e.g. {DEFAULT_API_URL}")
    return url


def parse_warehouse(raw: str | None) -> str | None:
    """None for the embedded DuckDB file, else the DuckLake catalog's libpq conninfo."""
    value = (raw or DEFAULT_WAREHOUSE).strip()
    if value == DEFAULT_WAREHOUSE:
        return None
    if value.startswith(DUCKLAKE_PREFIX) and value[len(DUCKLAKE_PREFIX):].strip():
        return value[len(DUCKLAKE_PREFIX):].strip()
    shown = value.split(":", 2)[0] + (":..." if ":" in value else "")  # never echo a password
    raise ConfigError(f"EI_WAREHOUSE: {shown!r} is not a warehouse; use duckdb (the default) or "
                      "ducklake:postgres:<libpq conninfo>, e.g. ducklake:postgres:dbname=ei host=db")


def parse_max_concurrency(raw: str | None) -> int:
    if raw is None or not raw.strip():
        return DEFAULT_MAX_CONCURRENCY
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"EI_MAX_CONCURRENCY: {raw!r} is not a whole number") from None
    if not 1 <= value <= 256:
        raise ConfigError(f"EI_MAX_CONCURRENCY: {value} is out of range; use 1 to 256")
    return value


def _with_s3_defaults(location: str) -> str:
    """An s3:// URI with S3_URI_DEFAULTS appended where its query does not set them (the
    query as given is kept, byte for byte)."""
    parts = urlsplit(location)
    if parts.scheme != "s3":
        return location
    given = {name for name, _ in parse_qsl(parts.query, keep_blank_values=True)}
    added = urlencode([(name, value) for name, value in S3_URI_DEFAULTS.items() if name not in given])
    return urlunsplit(parts._replace(query="&".join(q for q in (parts.query, added) if q)))


def resolve_data_dir(raw: str | None, writable: bool = True) -> tuple[pafs.FileSystem, str]:
    """The data dir as a pyarrow filesystem and a base path on it, checked to be writable (and
    created), or, for commands that only read, checked to exist (and never created)."""
    import pyarrow.fs as pafs  # here, so that reading the other settings loads no pyarrow

    location = (raw or DEFAULT_DATA_DIR).strip()
    if "://" not in location and os.path.isfile(location):
        raise ConfigError(f"EI_DATA_DIR: {location!r} is a file; point it at a folder")
    try:
        if "://" in location:
            filesystem, base = pafs.FileSystem.from_uri(_with_s3_defaults(location))
        else:
            filesystem, base = pafs.LocalFileSystem(), os.path.abspath(location)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError for unknown schemes
        raise ConfigError(f"EI_DATA_DIR: cannot open {location!r}: {exc}") from None
    if not writable:
        if filesystem.get_file_info(base).type != pafs.FileType.Directory:
            raise ConfigError(f"EI_DATA_DIR: {location!r} does not exist yet; run `ei-assets refresh` "
                              "(or `ei-assets demo`) first")
        return filesystem, base.rstrip("/")
    probe = f"{base}/.write-probe-{uuid.uuid4().hex}"
    try:
        filesystem.create_dir(base, recursive=True)
        with filesystem.open_output_stream(probe) as stream:
            stream.write(b"ok")
        filesystem.delete_file(probe)
    except Exception as exc:
        raise ConfigError(f"EI_DATA_DIR: {location!r} is not writable ({exc})") from None
    return filesystem, base.rstrip("/")


_DURATION = re.compile(r"^(\d+)\s*([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def parse_verify_every(value: str | None) -> timedelta:
    """EI_VERIFY_EVERY: how old a project's last full fetch may be before its blocks are fetched
    again although Studio says the project did not change; `0` fetches every block every time."""
    text = (value or DEFAULT_VERIFY_EVERY).strip().lower()
    if text == "0":
        return timedelta(0)
    match = _DURATION.match(text)
    if not match:
        raise ConfigError(f"EI_VERIFY_EVERY: {value!r} is not a duration; use a number and a unit, "
                          "e.g. 7d, 12h, 30m, 90s, or 0 to fetch every block on every refresh")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


@dataclass(frozen=True)
class Settings:
    """Every setting of the environment, checked (the `ei-assets` command reads them once)."""

    api_keys: tuple[ApiKey, ...]
    api_url: str
    data_dir: str
    max_concurrency: int
    warehouse: str | None  # None: the embedded DuckDB file; else a DuckLake catalog's conninfo
    verify_every: timedelta

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        data_dir = (env.get("EI_DATA_DIR") or DEFAULT_DATA_DIR).strip()
        resolve_data_dir(data_dir)
        return cls(
            api_keys=parse_api_keys(env.get("EI_API_KEY")),
            api_url=parse_api_url(env.get("EI_API_URL")),
            data_dir=data_dir,
            max_concurrency=parse_max_concurrency(env.get("EI_MAX_CONCURRENCY")),
            warehouse=parse_warehouse(env.get("EI_WAREHOUSE")),
            verify_every=parse_verify_every(env.get("EI_VERIFY_EVERY")),
        )
