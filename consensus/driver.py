"""The one action executor: how a driver carries out what the replica asks, written once.

Theory of operation
-------------------
Every event handler of :class:`~consensus.replica.Replica` returns a list of actions
(:mod:`consensus.actions`). Whoever drives a replica — the node daemon over sockets and
LevelDB, the simulator over a simulated network, the scripted scenario harness, the fuzz
harness — must execute that list under one contract:

* **in list order, each action completely before the next**, so that a
  :class:`~consensus.actions.PersistSafety` is durable before the messages it covers leave;
* a :class:`~consensus.actions.CommitBlock` is made durable and reported to the replica
  (``on_block_committed``) by the port, and the actions the replica returns then — its
  **follow-up** — run **before the rest** of the list: the replica has moved to the next
  height, and what remains of the list was computed after the follow-up in its own logic;
* everything is executed before the replica is called again (the caller's job: it calls
  :func:`execute_actions` once per event and returns).

:func:`execute_actions` holds that contract; a driver only implements :class:`ActionPort`,
one method per action kind, which does the I/O (or its simulation). An optional hook runs
before each action and may stop the execution there: the simulator crashes a process
between two actions of one step with it, and the fuzz harness bounds the actions of one event.

This module does no I/O and imports nothing that does (the port does it).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from consensus.actions import (
    Action,
    Broadcast,
    CommitBlock,
    FetchBlocks,
    PersistSafety,
    ReportEvidence,
    ReportRejectedProposal,
    Send,
)
from consensus.messages import BlockRequest
from consensus.safety import SafetyRecord
from ledger.model import Block, CommitCertificate

__all__ = ["ActionPort", "BeforeAction", "execute_actions"]


class ActionPort(Protocol):
    """What a driver provides to execute the replica's actions (one method per kind).

    Each method is called with the action's fields, in the executor's order; it does the
    action completely before it returns.
    """

    def persist_safety(self, record: SafetyRecord) -> None:
        """Store ``record`` durably (the node syncs it to disk) before returning."""

    def send(self, to: str, message: Any) -> None:
        """Send a signed consensus ``message`` to member ``to`` (best effort)."""

    def broadcast(self, message: Any) -> None:
        """Send a signed consensus ``message`` to every other member (best effort)."""

    def fetch_blocks(self, peer: str, request: BlockRequest) -> None:
        """Send the replica's block ``request`` to ``peer`` (best effort)."""

    def commit_block(self, block: Block, certificate: CommitCertificate) -> Sequence[Action]:
        """Append ``block`` with ``certificate`` durably, then report it to the replica.

        Returns the replica's follow-up: what ``replica.on_block_committed(block.height)``
        returned (empty if the port could not report it).
        """
        ...

    def report_rejected_proposal(self, report: ReportRejectedProposal) -> None:
        """Note a proposal the replica refused (logs, metrics); nothing to execute."""

    def report_evidence(self, report: ReportEvidence) -> None:
        """Keep two conflicting signed messages of one member as evidence."""


BeforeAction = Callable[[], bool]
"""Called before each action; returning False stops the execution there (the rest is lost,
as when the process dies at that instant)."""


def _persist_safety(port: ActionPort, action: PersistSafety) -> Sequence[Action]:
    port.persist_safety(action.record)
    return ()


def _send(port: ActionPort, action: Send) -> Sequence[Action]:
    port.send(action.to, action.message)
    return ()


def _broadcast(port: ActionPort, action: Broadcast) -> Sequence[Action]:
    port.broadcast(action.message)
    return ()


def _fetch_blocks(port: ActionPort, action: FetchBlocks) -> Sequence[Action]:
    port.fetch_blocks(action.peer, action.request)
    return ()


def _commit_block(port: ActionPort, action: CommitBlock) -> Sequence[Action]:
    return port.commit_block(action.block, action.certificate)


def _report_rejected_proposal(port: ActionPort, action: ReportRejectedProposal) -> Sequence[Action]:
    port.report_rejected_proposal(action)
    return ()


def _report_evidence(port: ActionPort, action: ReportEvidence) -> Sequence[Action]:
    port.report_evidence(action)
    return ()


_EXECUTE: dict[type, Callable[[ActionPort, Any], Sequence[Action]]] = {
    PersistSafety: _persist_safety,
    Send: _send,
    Broadcast: _broadcast,
    FetchBlocks: _fetch_blocks,
    CommitBlock: _commit_block,
    ReportRejectedProposal: _report_rejected_proposal,
    ReportEvidence: _report_evidence,
}
"""How each action kind is executed on the port; the follow-up it returns runs next."""


def execute_actions(
    port: ActionPort, actions: Iterable[Action], *, before_action: BeforeAction | None = None
) -> bool:
    """Execute ``actions`` on ``port`` under the contract of the module doc.

    Returns True when every action (follow-ups included) was executed, False when
    ``before_action`` stopped the execution. Raises AssertionError for an object that is not
    an action (a bug in the replica), and whatever the port raises.
    """
    pending = collections.deque(actions)
    while pending:
        if before_action is not None and not before_action():
            return False
        action = pending.popleft()
        execute = _EXECUTE.get(type(action))
        assert execute is not None, f"unknown action {action!r}"
        pending.extendleft(reversed(execute(port, action)))
    return True
