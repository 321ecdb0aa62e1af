"""Atomic file writes and safe path parts on a pyarrow filesystem: a local disk or an object store.

On a local disk a file is written under a temporary name and renamed. On an object store one PUT
is already atomic, and a rename is a copy plus a delete (about 15 requests a file on S3), so the
bytes are assembled in memory and written straight to the final name: a failure uploads nothing.
Every file we write is small (a lake table of one snapshot, a run log, one compressed body).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Literal

import pyarrow as pa
import pyarrow.fs as pafs


def exists(filesystem: pafs.FileSystem, path: str) -> bool:
    return filesystem.get_file_info(path).type != pafs.FileType.NotFound


def file_infos(filesystem: pafs.FileSystem, folder: str, suffix: str = "") -> list[pafs.FileInfo]:
    """Every file under `folder` (recursively) whose name ends with `suffix`, with its size, sorted
    by path; [] if none. One listing: on an object store, no request per file."""
    if not exists(filesystem, folder):
        return []
    infos = filesystem.get_file_info(pafs.FileSelector(folder, recursive=True))
    return sorted((i for i in infos if i.type == pafs.FileType.File and i.path.endswith(suffix)),
                  key=lambda i: i.path)


def list_files(filesystem: pafs.FileSystem, folder: str, suffix: str = "") -> list[str]:
    """Every file under `folder` (recursively) whose name ends with `suffix`, sorted; [] if none."""
    return [i.path for i in file_infos(filesystem, folder, suffix)]


def is_local(filesystem: pafs.FileSystem) -> bool:
    return isinstance(filesystem, pafs.LocalFileSystem)


def uri(filesystem: pafs.FileSystem, path: str) -> str:
    """The path as DuckDB and people name it: a local path, or `s3://bucket/key`."""
    return path if is_local(filesystem) else f"{filesystem.type_name}://{path}"


def publish(filesystem: pafs.FileSystem, temporary: str, path: str) -> None:
    """Make a finished file visible under its final name (a rename on local disks)."""
    filesystem.move(temporary, path)


Compression = Literal["zstd"]


@contextmanager
def atomic_output(
    filesystem: pafs.FileSystem, path: str, compression: Compression | None = None
) -> Iterator[pa.NativeFile]:
    """Write to a temporary sibling, then rename over `path` (object stores: one PUT of the whole
    file); on failure nothing appears."""
    if not is_local(filesystem):
        with _put_whole(filesystem, path, compression) as stream:
            yield stream
        return
    parent = path.rsplit("/", 1)[0]
    filesystem.create_dir(parent, recursive=True)
    temporary = f"{path}.tmp-{uuid.uuid4().hex}"
    try:
        with filesystem.open_output_stream(temporary, compression=compression) as local:
            yield local
        publish(filesystem, temporary, path)
    except BaseException:
        with suppress(OSError):
            filesystem.delete_file(temporary)
        raise


@contextmanager
def _put_whole(filesystem: pafs.FileSystem, path: str, compression: Compression | None
               ) -> Iterator[pa.NativeFile]:
    """The bytes gathered in memory, then written to `path` in one go, only if all went well."""
    sink = pa.BufferOutputStream()
    if compression is None:
        yield sink
    else:
        with pa.CompressedOutputStream(sink, compression) as compressed:
            yield compressed
    # compression=None: the bytes as they are (pyarrow would otherwise guess from the name)
    with filesystem.open_output_stream(path, compression=None) as target:
        target.write(sink.getvalue())


def write_atomically(
    filesystem: pafs.FileSystem, path: str, write: Callable[[pa.NativeFile], Any],
    compression: Compression | None = None,
) -> None:
    with atomic_output(filesystem, path, compression) as stream:
        write(stream)
