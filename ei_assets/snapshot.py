"""What a snapshot is: its record (`Snapshot`) and its id; the digest of the bytes as received,
which names a state already seen without parsing it; and the path parts both give.

The id is the SHA-256 of the body with its insignificant whitespace removed (msgspec's
`json.format`, one pass in C, which changes nothing else): the same bytes always get the same id,
and so do bodies that differ only in whitespace. A large body is compacted piece by piece into the
hash (its objects and arrays split one level at a time into zero-copy msgspec.Raw slices, array
items in groups of about PIECE bytes), so hashing it never copies it whole. A learn block
described by two endpoints (anomaly-gmm: metadata + GMM) gets the id of both, each after its
name and a NUL (which compact JSON never holds). Ids stored by earlier
releases (SHA-256 of the canonical JSON, keys sorted) stay valid: a body whose exact bytes were
stored before is recalled by its digest (`body_digest`, the raw archive's `_seen`), and a rebuild
keeps every archived snapshot's id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime

import msgspec

from ei_assets.chunks import byte_ranges, sizes_of
from ei_assets.studio.blocks import Body

RAW_DIR = "raw"  # the raw archive's folder under the data dir
PIECE = 1 << 20  # compacted at once: larger bodies and items are split
_SNAPSHOT_ID = re.compile(r"^[0-9a-f]{32}$")


def snapshot_part(snapshot_id: str) -> str:
    """A snapshot id checked to be our own hex hash before it becomes part of a path."""
    if not _SNAPSHOT_ID.match(snapshot_id):
        raise ValueError(f"not a snapshot id: {snapshot_id!r}")
    return snapshot_id


def block_dir(root: str, project_id: int, learn_id: int) -> str:
    """`root/project_id=P/learn_id=L`, from integers only: API values never shape a path unchecked."""
    return f"{root}/project_id={int(project_id)}/learn_id={int(learn_id)}"


class Snapshot(msgspec.Struct, frozen=True, kw_only=True):
    """One distinct state of a learn block's metadata: the one record the raw archive's marker
    file, the flattener and rebuilds all use."""

    project_id: int
    learn_id: int
    block_type: str
    fetched_at: datetime  # first fetch that returned this state
    endpoints: tuple[str, ...]  # the endpoint names whose bodies describe it, primary first
    snapshot_id: str = ""  # markers written before the id was stored get it from their folder

    @property
    def raw_path(self) -> str:
        """The archive folder, relative to the data dir: raw/project_id=P/learn_id=L/<id>."""
        return f"{block_dir(RAW_DIR, self.project_id, self.learn_id)}/{snapshot_part(self.snapshot_id)}"


def body_digest(bodies: Mapping[str, Body]) -> str:
    """SHA-256 of the bodies exactly as received (endpoint names and lengths included). Equal
    bytes mean an equal state, so a digest seen before names its snapshot without parsing."""
    digest = hashlib.sha256()
    for name, body in bodies.items():
        digest.update(b"%s:%d:" % (name.encode(), len(body)))
        digest.update(body)
    return digest.hexdigest()[:32]


_decode_object = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_array = msgspec.json.Decoder(list[msgspec.Raw]).decode
Sink = Callable[[bytes], object]


def write_compact(raw: Body | msgspec.Raw, sink: Sink) -> None:
    """The JSON value in `raw` without insignificant whitespace, to `sink` piece by piece."""
    if len(raw) <= PIECE:
        sink(msgspec.json.format(raw, indent=-1))
        return
    first = bytes(memoryview(raw)[:64]).lstrip()[:1]
    if first == b"{":
        sink(b"{")
        for index, (name, value) in enumerate(_decode_object(raw).items()):
            sink((b"," if index else b"") + msgspec.json.encode(name) + b":")
            write_compact(value, sink)
        sink(b"}")
    elif first == b"[":
        items = _decode_array(raw)
        sizes = sizes_of(items)
        sink(b"[")
        for index, (start, stop) in enumerate(byte_ranges(sizes, PIECE)):
            sink(b"," if index else b"")
            if stop - start == 1 and sizes[start] > PIECE:
                write_compact(items[start], sink)
            else:  # Raw slices join in C; the group's brackets are dropped again
                sink(msgspec.json.format(b"[" + b",".join(items[start:stop]) + b"]", indent=-1)[1:-1])
        sink(b"]")
    else:  # one very long string
        sink(msgspec.json.format(raw, indent=-1))


def snapshot_id(bodies: Mapping[str, Body]) -> str:
    """Content id of a block's metadata: one body per endpoint. Raises msgspec.DecodeError for a
    body that is not JSON."""
    digest = hashlib.sha256()
    if len(bodies) == 1:
        write_compact(next(iter(bodies.values())), digest.update)
    else:
        for name in sorted(bodies):
            digest.update(name.encode() + b"\0")
            write_compact(bodies[name], digest.update)
            digest.update(b"\0")
    return digest.hexdigest()[:32]
