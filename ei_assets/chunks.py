"""Cutting a sequence of sized items into consecutive ranges of about N bytes (numpy, no loop per item)."""

from __future__ import annotations

from collections.abc import Sequence, Sized

import numpy as np
import numpy.typing as npt


def byte_ranges(sizes: npt.NDArray[np.int64], limit: int) -> list[tuple[int, int]]:
    """Consecutive (start, stop) ranges of about `limit` bytes; an item above it stands alone."""
    bounds: list[tuple[int, int]] = []
    start, n = 0, len(sizes)
    ends = np.cumsum(sizes)
    while start < n:
        if sizes[start] > limit:
            stop = start + 1
        else:
            base = ends[start - 1] if start else 0
            stop = int(np.searchsorted(ends, base + limit, side="right"))
            stop = max(stop, start + 1)
            big = np.flatnonzero(sizes[start:stop] > limit)
            if len(big):
                stop = start + int(big[0])
        bounds.append((start, stop))
        start = stop
    return bounds


def sizes_of(items: Sequence[Sized]) -> npt.NDArray[np.int64]:
    """The byte length of every item (bytes, or msgspec.Raw slices of a body)."""
    return np.fromiter(map(len, items), dtype=np.int64, count=len(items))
