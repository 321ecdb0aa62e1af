"""Locks the kernel releases when their process dies, and telling whether a process still lives.

A killed process (SIGKILL, OOM killer, pod eviction) runs no clean-up code, so anything that
must not outlive it is either an flock on a file (freed by the kernel with the process) or
recorded with an identity (`process_identity`) that a later process can check.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ei_assets.errors import EiAssetsError


class LockTimeoutError(EiAssetsError, TimeoutError):
    """The lock stayed held by another live process for longer than we wait."""


@contextmanager
def file_lock(path: str, timeout: float, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
    """An exclusive flock on `path` (created if missing), waiting up to `timeout` seconds; the
    kernel frees it when the holder dies. `on_wait` is called once if we have to wait."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+b")  # noqa: SIM115 - closed in finally, which also frees the lock
    try:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited and on_wait is not None:
                    on_wait()
                waited = True
                if time.monotonic() >= deadline:
                    raise LockTimeoutError(f"{path} stayed locked for {timeout:.0f}s") from None
                time.sleep(0.1)
        yield
    finally:
        handle.close()


def _start_time(pid: int) -> str | None:
    """The kernel's start time of a process (clock ticks since boot), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def process_identity(pid: int | None = None) -> str:
    """`host:pid:start`: names one process for its whole life; a reused pid gets another."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()}:{pid}:{_start_time(pid) or '?'}"


def is_alive_here(identity: str) -> bool | None:
    """Whether the process named by `identity` still runs; None when it ran on another host."""
    host, _, rest = identity.partition(":")
    if host != socket.gethostname():
        return None
    pid_text, _, start = rest.partition(":")
    if not pid_text.isdigit():
        return None
    return _start_time(int(pid_text)) == start
