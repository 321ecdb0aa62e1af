"""What a snapshot is: its record (`Snapshot`) and its id; the digest of the bytes as received,
which names a state already seen without parsing it; and the path parts both give.

The id is the SHA-256 of the body with its insignificant whitespace removed (msgspec's
`json.format`, one pass in C, which changes nothing else): the same bytes always get the same id,
and so do bodies that differ only in whitespace. The compact copy lives only while it is hashed
(a body at most; cutting it into pieces to avoid that copy cost more time holding the GIL than
the whole pass). A learn block
described by two endpoints (anomaly-gmm: metadata + GMM) gets the id of both, each after its
name and a NUL (which compact JSON never holds). Ids stored by earlier
releases (SHA-256 of the canonical JSON, keys sorted) stay valid: a body whose exact bytes were
stored before is recalled by its digest (`body_digest`, the raw archive's `_seen`), and a rebuild
keeps every archived snapshot's id.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime

import msgspec

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


def snapshot_id(bodies: Mapping[str, Body]) -> str:
    """Content id of a block's metadata: one body per endpoint. Raises msgspec.DecodeError for a
    body that is not JSON."""
    digest = hashlib.sha256()
    if len(bodies) == 1:
        digest.update(msgspec.json.format(next(iter(bodies.values())), indent=-1))
    else:
        for name in sorted(bodies):
            digest.update(name.encode() + b"\0")
            digest.update(msgspec.json.format(bodies[name], indent=-1))
            digest.update(b"\0")
    return digest.hexdigest()[:32]
