"""ei_assets: the history of Edge Impulse models as Dagster assets, Parquet and DuckDB."""

import os

from ei_assets.memory import limit_malloc_arenas

# pyarrow's buffers from the system allocator rather than its bundled mimalloc, unless the user
# chose: with eight fetch threads, mimalloc kept each thread's freed pages, and a refresh of 40
# blocks peaked ~110 MB higher (see ei_assets.memory). pyarrow reads this when it first allocates.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
limit_malloc_arenas()  # before any thread of ours allocates
