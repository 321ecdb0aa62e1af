"""What a snapshot is: its record (`Snapshot`) and its id, the SHA-256 of the canonical JSON;
and the digest of the bytes as received, which names a state already seen without parsing it.

Canonical means: object keys sorted, no insignificant whitespace, numbers and strings as msgspec
writes them. The same model state therefore always gets the same id, whatever the server's key
order or formatting. A learn block described by two endpoints (anomaly-gmm: metadata + GMM) gets
the id of the canonical object `{"anomaly": <metadata>, "gmm": <gmm>}`.

The serialisation is streamed into the hash: large objects and arrays are split one level at a
time into zero-copy msgspec.Raw slices, and only pieces of at most SMALL bytes are ever decoded,
so hashing a 30 MB body never builds its 6 million floats as Python objects at once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import datetime

import msgspec

from ei_assets.chunks import byte_ranges, sizes_of
from ei_assets.storage import block_dir, snapshot_part

RAW_DIR = "raw"  # the raw archive's folder under the data dir

SMALL = 1 << 16


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

_encoder = msgspec.json.Encoder(order="sorted")
_decode_any = msgspec.json.Decoder().decode
_decode_object = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
_decode_array = msgspec.json.Decoder(list[msgspec.Raw]).decode

Sink = Callable[[bytes], object]


def write_canonical(raw: bytes | msgspec.Raw, sink: Sink) -> None:
    """Write the canonical serialisation of the JSON value in `raw` to `sink`, piece by piece."""
    if len(raw) <= SMALL:
        sink(_encoder.encode(_decode_any(raw)))
        return
    first = bytes(memoryview(raw)[:64]).lstrip()[:1]
    if first == b"{":
        members = _decode_object(raw)
        sink(b"{")
        for index, name in enumerate(sorted(members)):
            sink(b"," if index else b"")
            sink(_encoder.encode(name) + b":")
            write_canonical(members[name], sink)
        sink(b"}")
    elif first == b"[":
        _write_array(_decode_array(raw), sink)
    else:  # one very long string
        sink(_encoder.encode(_decode_any(raw)))


def _write_array(items: list[msgspec.Raw], sink: Sink) -> None:
    """Items are canonicalised in batches of about SMALL bytes; larger items one level deeper."""
    sizes = sizes_of(items)
    sink(b"[")
    wrote = False
    for start, stop in byte_ranges(sizes, SMALL):
        sink(b"," if wrote else b"")
        if stop - start == 1 and sizes[start] > SMALL:
            write_canonical(items[start], sink)
        else:
            joined = b"[" + b",".join(items[start:stop]) + b"]"  # Raw slices join in C
            sink(_encoder.encode(_decode_any(joined))[1:-1])
        wrote = True
    sink(b"]")


def canonical_json(raw: bytes) -> bytes:
    """The whole canonical serialisation (for tests and small documents)."""
    parts: list[bytes] = []
    write_canonical(raw, parts.append)
    return b"".join(parts)


def body_digest(bodies: Mapping[str, bytes]) -> str:
    """SHA-256 of the bodies exactly as received (endpoint names and lengths included). Equal
    bytes mean an equal state, so a digest seen before names its snapshot without parsing."""
    digest = hashlib.sha256()
    for name, body in bodies.items():
        digest.update(b"%s:%d:" % (name.encode(), len(body)))
        digest.update(body)
    return digest.hexdigest()[:32]


def snapshot_id(bodies: Mapping[str, bytes]) -> str:
    """Content id of a block's metadata: one body per endpoint, in the order the API is asked."""
    digest = hashlib.sha256()
    if len(bodies) == 1:
        write_canonical(next(iter(bodies.values())), digest.update)
    else:
        digest.update(b"{")
        for index, name in enumerate(sorted(bodies)):
            digest.update((b"," if index else b"") + _encoder.encode(name) + b":")
            write_canonical(bodies[name], digest.update)
        digest.update(b"}")
    return digest.hexdigest()[:32]
