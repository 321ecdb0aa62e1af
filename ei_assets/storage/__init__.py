"""Storage on a pyarrow filesystem (a local disk or an object store): atomic files (`files`), the
raw archive of every distinct response (`raw_archive`) and the Parquet lake (`lake`)."""

from ei_assets.storage.lake import Lake
from ei_assets.storage.raw_archive import RawArchive

__all__ = ["Lake", "RawArchive"]
