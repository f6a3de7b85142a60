"""What the replica asks its driver to do, and in what order.

Every event handler of :class:`~consensus.replica.Replica` returns a list of actions. The
driver executes them **in list order, each completely before the next**, runs the actions
``on_block_committed`` returns before the rest of the list, and executes all of them before
it calls the replica again. That contract is written once, in
:func:`consensus.driver.execute_actions`; every driver (the node, the simulator, the test
harnesses) implements its :class:`~consensus.driver.ActionPort` and calls it.
Each action states its own contract below; the ones that matter for safety:

* :class:`PersistSafety` comes before the messages it covers: a vote is on disk before it
  can be seen, so a restarted replica never signs two things for one (height, view, kind).
* :class:`CommitBlock` must be durable (block, certificate and state writes in one synced
  batch) before the driver reports it with ``replica.on_block_committed``; the replica does
  nothing at the next height until then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from consensus.messages import BlockRequest
from consensus.safety import SafetyRecord
from ledger.model import Block, CommitCertificate

__all__ = [
    "Action",
    "Broadcast",
    "CommitBlock",
    "FetchBlocks",
    "PersistSafety",
    "ReportEvidence",
    "ReportRejectedProposal",
    "Send",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class PersistSafety:
    """Write ``record`` durably (fsync) before executing the following actions."""

    record: SafetyRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Send:
    """Send ``message`` to member ``to`` (best effort: the network may lose it)."""

    to: str
    message: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class Broadcast:
    """Send ``message`` to every other member of the current set (best effort)."""

    message: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class CommitBlock:
    """Append ``block`` with ``certificate`` durably, then call ``on_block_committed``."""

    block: Block
    certificate: CommitCertificate


@dataclass(frozen=True, slots=True, kw_only=True)
class FetchBlocks:
    """Send ``request`` to ``peer``: a request for committed blocks, built by the replica.

    A kind of its own (not a plain :class:`Send`) so that a driver can count the fetches it
    has outstanding per peer; the blocks come back as messages.
    """

    peer: str
    request: BlockRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportRejectedProposal:
    """A proposal this replica refused, for logs and metrics; nothing to execute."""

    height: int
    view: int
    proposer: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportEvidence:
    """Two conflicting signed messages from ``member``: keep them as evidence."""

    member: str
    first: Any
    second: Any


Action = (
    PersistSafety
    | Send
    | Broadcast
    | CommitBlock
    | FetchBlocks
    | ReportRejectedProposal
    | ReportEvidence
)
