"""What a snapshot is: its record (`Snapshot`) and its id, the SHA-256 of the canonical JSON;
and the digest of the bytes as received, which names a state already seen without parsing it.

Canonical means: object keys sorted, no insignificant whitespace, numbers and strings as msgspec
writes them. The same model state therefore always gets the same id, whatever the server's key
order or formatting. A learn block described by two endpoints (anomaly-gmm: metadata + GMM) gets
the id of the canonical object `{"anomaly": <metadata>, "gmm": <gmm>}`.

The serialisation is streamed into the hash: large objects and arrays are split one level at a
time into zero-copy msgspec.Raw slices, and only pieces of at most SMALL bytes are ever decoded,
so hashing a 30 MB body never builds its 6 million floats as Python objects at once.

Arrays of prediction objects, most of a body, take a faster road to the same bytes: they are
decoded into a Struct whose fields are the prediction keys we know (each value kept as decoded,
an absent key left out), and encoded with sorted fields. Any object with another key fails that
decode and takes the general road.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import msgspec

from ei_assets.chunks import byte_ranges, sizes_of
from ei_assets.schema import PREDICTION_PARSE_SCHEMA
from ei_assets.studio.blocks import Body

RAW_DIR = "raw"  # the raw archive's folder under the data dir
_SNAPSHOT_ID = re.compile(r"^[0-9a-f]{32}$")


def snapshot_part(snapshot_id: str) -> str:
    """A snapshot id checked to be our own hex hash before it becomes part of a path."""
    if not _SNAPSHOT_ID.match(snapshot_id):
        raise ValueError(f"not a snapshot id: {snapshot_id!r}")
    return snapshot_id


def block_dir(root: str, project_id: int, learn_id: int) -> str:
    """`root/project_id=P/learn_id=L`, from integers only: API values never shape a path unchecked."""
    return f"{root}/project_id={int(project_id)}/learn_id={int(learn_id)}"

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
# The prediction object with exactly the keys we know (from the lake's parse schema): a present key
# keeps its value as decoded, even null; an absent one stays UNSET and is not encoded.
_KnownPrediction = msgspec.defstruct(
    "_KnownPrediction", [(name, Any | msgspec.UnsetType, msgspec.UNSET)
                         for name in sorted(PREDICTION_PARSE_SCHEMA.names)],
    forbid_unknown_fields=True)
_decode_predictions = msgspec.json.Decoder(list[_KnownPrediction]).decode  # type: ignore[valid-type]  # built at run time from the schema

Sink = Callable[[bytes], object]


def write_canonical(raw: Body | msgspec.Raw, sink: Sink) -> None:
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
            sink(_canonical_items(joined)[1:-1])
        wrote = True
    sink(b"]")


def _canonical_items(array: bytes) -> bytes:
    """The canonical serialisation of a JSON array (of at most about SMALL bytes)."""
    if array[1:2] == b"{":
        try:
            return _encoder.encode(_decode_predictions(array))
        except msgspec.ValidationError:  # not all prediction objects as we know them
            pass
    return _encoder.encode(_decode_any(array))


def canonical_json(raw: bytes) -> bytes:
    """The whole canonical serialisation (for tests and small documents)."""
    parts: list[bytes] = []
    write_canonical(raw, parts.append)
    return b"".join(parts)


def body_digest(bodies: Mapping[str, Body]) -> str:
    """SHA-256 of the bodies exactly as received (endpoint names and lengths included). Equal
    bytes mean an equal state, so a digest seen before names its snapshot without parsing."""
    digest = hashlib.sha256()
    for name, body in bodies.items():
        digest.update(b"%s:%d:" % (name.encode(), len(body)))
        digest.update(body)
    return digest.hexdigest()[:32]


def snapshot_id(bodies: Mapping[str, Body]) -> str:
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
