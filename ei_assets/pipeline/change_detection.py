"""Change detection (contract section 6): whether a refresh may skip downloading a project's blocks.

Studio says when a project last changed (`GET /api/{projectId}/last-modification`: "upped when
data is modified, or when an impulse is trained"). After a refresh fetched every block of a
project successfully, the project's state is kept in the raw archive: that date, when the full
fetch ran, each block's snapshot and which blocks were left with profiling pending. The next
refresh skips the project's blocks only when the date is the same, no block is pending, new or
failed since, and the full fetch is younger than EI_VERIFY_EVERY. A failing or dateless answer
means: fetch as before.

Profiling that finishes does not move the date, so a pending block is always fetched again. A
fetch that finds a new snapshot of a block although the date had not moved means the signal
missed a change (the periodic full fetch caught it): `missed_changes` names those blocks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

import msgspec

from ei_assets.storage.raw_archive import RawArchive
from ei_assets.studio import LearnBlock, UnknownBlockTypeError, metadata_endpoints

__all__ = ["BlockOutcome", "ProjectState", "may_skip", "missed_changes", "next_state", "read_state",
           "supported", "write_state"]


class ProjectState(msgspec.Struct, kw_only=True):
    """What the last refresh that fetched every block of a project successfully saw."""

    modification_date: datetime | None  # Studio's date then (None: it sent none)
    full_fetch_at: datetime
    blocks: dict[int, str]  # learn id -> snapshot id
    pending: list[int] = []  # blocks whose profiling was pending


class BlockOutcome(msgspec.Struct, frozen=True):
    """What a fetch found for one block: what `next_state` and `missed_changes` need."""

    learn_id: int
    snapshot_id: str | None  # None: the block failed
    profiling_pending: bool = False


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ProjectState).decode


def read_state(raw: RawArchive, project_id: int) -> ProjectState | None:
    """The project's state; None if there is none, or it cannot be read (then: fetch)."""
    data = raw.read_project_state(project_id)
    if data is None:
        return None
    try:
        return _decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def write_state(raw: RawArchive, project_id: int, state: ProjectState | None) -> None:
    """Keep the state, or forget it (None): the next refresh then fetches every block."""
    if state is None:
        raw.forget_project_state(project_id)
    else:
        raw.write_project_state(project_id, _encode(state))


def supported(blocks: Iterable[LearnBlock]) -> list[LearnBlock]:
    """The blocks a metadata endpoint serves: the others are never fetched, so never compared."""
    found = []
    for block in blocks:
        try:
            metadata_endpoints(block.block_type)
        except UnknownBlockTypeError:
            continue
        found.append(block)
    return found


def may_skip(state: ProjectState | None, date: datetime | None, blocks: Sequence[LearnBlock],
             now: datetime, verify_every: timedelta) -> bool:
    """Whether none of the project's `blocks` (as discovered now) needs fetching."""
    return (state is not None and date is not None and state.modification_date == date
            and not state.pending
            and all(block.learn_id in state.blocks for block in supported(blocks))
            and now - state.full_fetch_at < verify_every)


def next_state(date: datetime | None, outcomes: Sequence[BlockOutcome], fetched_at: datetime
               ) -> ProjectState | None:
    """The state after a fetch of every block of a project; None when one failed."""
    if any(o.snapshot_id is None for o in outcomes):
        return None
    return ProjectState(modification_date=date, full_fetch_at=fetched_at,
                        blocks={o.learn_id: o.snapshot_id for o in outcomes if o.snapshot_id},
                        pending=sorted(o.learn_id for o in outcomes if o.profiling_pending))


def missed_changes(previous: ProjectState | None, date: datetime | None,
                   outcomes: Sequence[BlockOutcome]) -> list[int]:
    """Blocks with a new snapshot although the project's date had not moved since the previous
    full fetch (a block whose profiling was pending may change without it: not counted)."""
    if previous is None or date is None or previous.modification_date != date:
        return []
    return sorted(o.learn_id for o in outcomes
                  if o.snapshot_id is not None and o.learn_id in previous.blocks
                  and o.learn_id not in previous.pending
                  and previous.blocks[o.learn_id] != o.snapshot_id)
