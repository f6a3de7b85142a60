"""The replica's mode at the height in progress, and what it knows about that height.

A replica is in exactly one :class:`Mode`; message handling and ticks dispatch on it (the
way etcd's raft swaps its step function per role):

=================  ======================================================================
mode               what changes
=================  ======================================================================
``NORMAL``         the view in force when the height started (views carry over from one
                   height to the next): its primary proposes with a bare ``PrePrepare``
``VIEW_CHANGE``    the view was entered by a view change at this height (persisted as
                   ``SafetyRecord.entered_by_view_change``): a proposal is accepted only
                   inside a ``NewView``, and the primary never proposes a bare one
``COMMITTING``     a certified block was handed to the driver (``CommitBlock``) and is not
                   yet durably appended: every message but a ``BlockRequest`` waits in the
                   future buffer, ticks do nothing
=================  ======================================================================

Transitions: every height starts ``NORMAL`` (``VIEW_CHANGE`` after a restart whose safety
record says so); moving to a later view by a view change, supporting the others' view
change, or accepting a ``NewView`` makes it ``VIEW_CHANGE``; a commit certificate makes it
``COMMITTING`` from either; ``on_block_committed`` starts the next height.

Catching up (fetching certified blocks, :mod:`consensus.catchup`) is not a mode of its own: a
replica that fetches still votes in its view, since the certified block may never come. While
its sync target is at or above its height, only its view timer is held.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from consensus.messages import PrePrepare, ViewChange
from consensus.quorum import VoteSet
from ledger.model import Block

__all__ = ["HeightState", "Mode"]


class Mode(enum.Enum):
    """The replica's mode at the height in progress (see the module's table)."""

    NORMAL = "normal"
    VIEW_CHANGE = "view_change"
    COMMITTING = "committing"


@dataclass(slots=True)
class HeightState:
    """Everything the replica knows about the height in progress (reset at each height)."""

    proposals: dict[int, PrePrepare] = field(default_factory=dict)
    judged: dict[int, PrePrepare] = field(default_factory=dict)
    """The first proposal judged in each view (accepted or refused): the only block of its
    view the application may ever validate, since a correct primary signs one."""
    equivocated_views: set[int] = field(default_factory=set)
    reported_views: set[int] = field(default_factory=set)
    blocks: dict[bytes, Block] = field(default_factory=dict)
    validated: dict[bytes, str | None] = field(default_factory=dict)
    prepares: VoteSet = field(default_factory=VoteSet)
    commits: VoteSet = field(default_factory=VoteSet)
    view_changes: dict[int, dict[str, ViewChange]] = field(default_factory=dict)
    latest_view_change: dict[str, int] = field(default_factory=dict)
    new_views_done: set[int] = field(default_factory=set)
    view_changes_in_a_row: int = 0
