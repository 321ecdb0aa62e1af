"""How much memory the process keeps: glibc's heaps, pyarrow's allocator, and giving memory back
once a batch of large responses is done with.

glibc gives each thread that allocates a heap of its own (up to eight per core) and keeps what is
freed there for that heap's reuse; pyarrow's bundled mimalloc keeps each thread's freed pages. A
refresh has eight fetch threads and more that store, so both raise its peak for no speed
(docs/performance.md). `tune_process` caps glibc's heaps and puts pyarrow on the system allocator,
unless the user chose (MALLOC_ARENA_MAX, ARROW_DEFAULT_MEMORY_POOL). Only the processes ei_assets
owns call it (the `ei-assets` command, `make dev`): importing the package changes nothing in a
host's process.

After a refresh has let go of its responses, their memory would otherwise stay in the process
while the warehouse load (a DuckDB of its own) allocates more on top: `release_unused_memory`
hands it back.
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


def tune_process() -> None:
    """For a process of ours, before its threads allocate: glibc's heaps capped at MALLOC_ARENAS
    (here, and through the environment in the processes it starts) and pyarrow on the system
    allocator (read when pyarrow first allocates), unless the user set either."""
    if "MALLOC_ARENA_MAX" not in os.environ:
        mallopt = getattr(_libc(), "mallopt", None)  # glibc only
        if mallopt is not None:
            mallopt(M_ARENA_MAX, MALLOC_ARENAS)
        os.environ["MALLOC_ARENA_MAX"] = str(MALLOC_ARENAS)
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


def release_unused_memory() -> None:
    """Return the freed memory of pyarrow's pool and of glibc's heaps to the system."""
    import pyarrow as pa  # here, not at import: the package imports this module for every command

    pa.default_memory_pool().release_unused()
    trim = getattr(_libc(), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)
