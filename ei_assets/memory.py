"""How much memory the process keeps: glibc's heaps, and giving memory back once a batch of large
responses is done with.

glibc gives each thread that allocates a heap of its own (up to eight per core) and keeps what is
freed there for that heap's reuse. A refresh has eight fetch threads and more that store, so a
40-block refresh held ~120 MB more at its peak with glibc's default than with MALLOC_ARENAS heaps,
at the same speed: `limit_malloc_arenas` sets that cap when the package is imported, unless the
user set MALLOC_ARENA_MAX (which glibc reads itself).

Freed memory is also kept for reuse by pyarrow's pool (with mimalloc, should a user choose it over
the system allocator that ei_assets sets as the default). After a refresh has let go of its
responses, that memory would otherwise stay in the process while the warehouse load (a DuckDB of
its own) allocates more on top: `release_unused_memory` hands it back.
"""

from __future__ import annotations

import ctypes
import functools
import os

MALLOC_ARENAS = 2
M_ARENA_MAX = -8  # glibc's mallopt parameter number for the heap count


@functools.cache
def _libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None)  # the process's own symbols, libc's among them
    except OSError:
        return None


def limit_malloc_arenas() -> None:
    """Cap glibc's heaps at MALLOC_ARENAS for the threads created from now on (no-op elsewhere)."""
    mallopt = getattr(_libc(), "mallopt", None)  # glibc only
    if mallopt is not None and "MALLOC_ARENA_MAX" not in os.environ:
        mallopt(M_ARENA_MAX, MALLOC_ARENAS)


def release_unused_memory() -> None:
    """Return the freed memory of pyarrow's pool and of glibc's heaps to the system."""
    import pyarrow as pa  # here, not at import: the package imports this module for every command

    pa.default_memory_pool().release_unused()
    trim = getattr(_libc(), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)
