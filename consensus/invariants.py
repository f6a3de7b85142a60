"""The safety invariants a run of correct replicas must keep, checked as it goes (written once).

The simulator (:mod:`consensus.simulator`) and the scripted scenario harness
(``tests/consensus_harness.py``) drive real replicas and hand what those replicas do to one
:class:`InvariantChecker`. The driver decides which processes are correct (the simulator's
byzantine members are not checked) and what a broken invariant does: the simulator records a
violation and ends the run, the harness fails the test at once with its trace.

What is checked, and when the driver calls:

* every signed message a correct replica sends (:meth:`InvariantChecker.observe_signed`): it
  never signs two different things for one (height, view, kind) — no double vote, no second
  proposal, no second view change — and never sends a prepare or a new view of a view lower
  than one it already sent at that height;
* every block a correct replica commits (:meth:`InvariantChecker.check_commit`): the
  certificate is valid for the member set in force and certifies this very block, no other
  block was committed at that height anywhere (agreement), the height follows the replica's
  chain, and the transactions were submitted by a client and are not committed twice;
* every view a replica is in after a step (:meth:`InvariantChecker.observe_view`): views never
  go back, not even across a restart;
* every restart (:meth:`InvariantChecker.check_restart`): the replica resumes after its last
  stored block (durability) and not below the view its safety record holds;
* at the end (:meth:`InvariantChecker.check_total_order`): the chains of correct members are
  prefixes of one another.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any

from consensus.messages import CommitVote, NewView, Prepare, PrePrepare, ViewChange
from ledger.model import Block, CommitCertificate, InvalidCertificateError, Member, sha256

__all__ = ["InvariantChecker", "Report"]

Report = Callable[[str], None]
"""What a broken invariant does: called with one line that says which and where."""


class InvariantChecker:
    """Remembers what correct replicas signed, committed and entered; reports what breaks.

    ``submitted``, when given, is the collection of every transaction id a client submitted
    (a live view: the driver keeps adding to it); a committed transaction outside it breaks
    validity.
    """

    def __init__(
        self,
        chain_id: bytes,
        *,
        report: Report,
        submitted: Collection[bytes] | None = None,
    ) -> None:
        self.chain_id = chain_id
        self._report = report
        self._submitted = submitted
        self._committed_at: dict[int, bytes] = {}
        """Height -> the hash of the block committed there (by the first correct member)."""
        self._certificates: dict[int, CommitCertificate] = {}
        self._signed: dict[tuple[str, int, int, str], bytes] = {}
        """(process, height, view, kind) -> what it signed: a block hash or a body digest."""
        self._highest_view_sent: dict[tuple[str, int], int] = {}
        self._view_floor: dict[str, int] = {}

    def observe_signed(self, process: str, message: Any) -> None:
        """A correct ``process`` sends ``message``: no second, different one; no going back."""
        if isinstance(message, PrePrepare):
            content = message.block.block_hash
        elif isinstance(message, Prepare | CommitVote):
            content = message.block_hash
        elif isinstance(message, ViewChange | NewView):
            content = sha256(message.body_bytes())
        else:
            return  # not signed: statuses, block requests and responses
        kind = message.kind
        earlier = self._signed.setdefault((process, message.height, message.view, kind), content)
        if earlier != content:
            self._report(
                f"{process} signed two different {kind} at height "
                f"{message.height} view {message.view}"
            )
        view_key = (process, message.height)
        highest = self._highest_view_sent.get(view_key, -1)
        # Retransmitted view changes of an earlier view are the same signed messages again
        # (checked above); a prepare or a new view in an earlier view would be a regression.
        if kind in ("new_view", "prepare") and message.view < highest:
            self._report(
                f"{process} went back from view {highest} to {message.view} "
                f"at height {message.height}"
            )
        self._highest_view_sent[view_key] = max(highest, message.view)

    def check_commit(
        self,
        process: str,
        block: Block,
        certificate: CommitCertificate,
        *,
        members: Sequence[Member],
        chain_length: int,
        is_committed: Callable[[bytes], bool],
    ) -> None:
        """A correct ``process`` commits ``block``, before it is appended to its chain.

        ``members`` is the member set in force at that height, ``chain_length`` the number
        of blocks the process has stored, ``is_committed(tx_id)`` whether its chain already
        holds a transaction.
        """
        height = block.height
        try:
            certificate.verify(self.chain_id, members)
        except InvalidCertificateError as error:
            self._report(
                f"{process} committed height {height} with an invalid certificate: {error}"
            )
        if certificate.block_hash != block.block_hash or certificate.height != height:
            self._report(f"{process} committed a certificate for another block")
        agreed = self._committed_at.setdefault(height, block.block_hash)
        if agreed != block.block_hash:
            self._report(f"agreement: two blocks committed at height {height}")
        earlier = self._certificates.setdefault(height, certificate)
        if earlier.block_hash != certificate.block_hash:
            self._report(f"two certificates for different blocks at height {height}")
        if height != chain_length + 1:
            self._report(f"{process} committed height {height} on a chain of {chain_length}")
        if self._submitted is not None:
            for transaction in block.transactions:
                if transaction.tx_id not in self._submitted:
                    self._report(f"validity: height {height} holds a transaction nobody submitted")
        tx_ids = [transaction.tx_id for transaction in block.transactions]
        if len(set(tx_ids)) != len(tx_ids) or any(is_committed(tx_id) for tx_id in tx_ids):
            self._report(f"validity: a transaction committed twice (height {height})")

    def observe_view(self, process: str, view: int) -> None:
        """``process`` is in ``view`` after a step: never lower than before (views are global)."""
        floor = self._view_floor.get(process, 0)
        if view < floor:
            self._report(f"{process} went back from view {floor} to {view}")
        self._view_floor[process] = view

    def check_restart(
        self,
        process: str,
        *,
        height: int,
        view: int,
        blocks_stored: int,
        persisted_view: int | None,
    ) -> None:
        """``process`` restarted at ``height`` and ``view`` from its durable state."""
        if height != blocks_stored + 1:
            self._report(
                f"durability: {process} restarted at height {height}"
                f" with {blocks_stored} blocks stored"
            )
        if persisted_view is not None and view < persisted_view:
            self._report(
                f"durability: {process} restarted in view {view} below its persisted view "
                f"{persisted_view}"
            )

    def check_total_order(self, chains: Iterable[Sequence[tuple[Block, Any]]]) -> None:
        """The chains of correct processes agree block by block (each a prefix of the longest)."""
        chains = list(chains)
        longest = max(chains, key=len, default=[])
        for chain in chains:
            for (block, _), (reference, _) in zip(chain, longest, strict=False):
                if block.block_hash != reference.block_hash:
                    self._report(f"total order: chains differ at height {block.height}")
                    break
