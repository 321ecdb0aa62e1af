"""Giving memory back to the operating system once a batch of large responses is done with.

Freed memory is kept by the allocators for reuse: pyarrow's pool keeps its pages (with mimalloc,
should a user choose it over the system allocator that ei_assets sets as the default), and glibc
keeps freed chunks in the heaps of the threads that used them. After a refresh has let go
of its responses, that memory would otherwise stay in the process while the warehouse load (a
DuckDB of its own) allocates more on top.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Callable

import pyarrow as pa


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):  # not glibc: nothing to trim
        return None
    return trim


def release_unused_memory() -> None:
    """Return the freed memory of pyarrow's pool and of glibc's heaps to the system."""
    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
