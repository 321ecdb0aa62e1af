"""The root of every error ei_assets raises: `except EiAssetsError` catches them all.

Each error also derives from the built-in kind it has always been (ValueError for bad input,
RuntimeError, TimeoutError), so code that caught those still does.
"""

from __future__ import annotations

__all__ = ["EiAssetsError"]


class EiAssetsError(Exception):
    """Something ei_assets could not do; the message names what and, where it can, what to do."""
