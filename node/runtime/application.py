"""The node's application: the consensus interface over the store, the engine and the mempool.

:class:`ChainApplication` implements :class:`consensus.application.Application` for a real
node. The primary builds proposals from the mempool with the contract engine; replicas
validate proposals by executing them (decision 6: a block holding a failing transaction is
refused); a committed block is appended to the LevelDB store with the state writes its
execution produced. Executions are remembered by block hash between ``validate`` and
``commit`` so that a block is executed once per node, not twice.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Mapping

from consensus.application import ChainTip
from contracts import admission
from contracts.base import Rejection
from contracts.engine import Engine, ExecutionResult, InvalidProposalError, ProposalLimits
from ledger.model import (
    Block,
    BlockHeader,
    CommitCertificate,
    ConsensusParameters,
    Member,
    Transaction,
)
from ledger.namespace import MEMBERSHIP_NAMESPACE
from ledger.store import ChainStore
from node.runtime.mempool import Mempool

__all__ = ["ChainApplication"]

EXECUTIONS_REMEMBERED_MAX = 64
RESULTS_REMEMBERED_MAX = 100_000
REVALIDATED_PER_COMMIT_MAX = 256
LINGERING_BLOCKS = 4
LINGERING_REVALIDATED_PER_COMMIT_MAX = 32
PROPOSAL_TIME_SHARE_PERCENT = 15
"""The default share of the view timeout a primary spends at most executing the block it
builds (the node's ``runtime.proposal_time_share_percent``)."""


class ChainApplication:
    """The application a node's replica talks to (see the module doc)."""

    def __init__(
        self,
        store: ChainStore,
        engine: Engine,
        mempool: Mempool,
        *,
        proposal_time_share_percent: int = PROPOSAL_TIME_SHARE_PERCENT,
    ) -> None:
        assert 1 <= proposal_time_share_percent <= 100, proposal_time_share_percent
        self.proposal_time_share_percent = proposal_time_share_percent
        self.store = store
        self.engine = engine
        self.mempool = mempool
        self._executions: collections.OrderedDict[bytes, ExecutionResult] = (
            collections.OrderedDict()
        )
        self._results: collections.OrderedDict[bytes, object] = collections.OrderedDict()
        self._last_committed: tuple[Block, CommitCertificate] | None = None
        self._tip = self._read_tip()
        self._refresh_directory()

    def _read_tip(self) -> ChainTip:
        tip = self.store.tip
        if tip.height == 0:
            genesis = self.store.genesis
            return ChainTip(0, genesis.chain_id, genesis.created_at_ms, 0)
        block = self.store.block(tip.height)
        certificate = self.store.certificate(tip.height)
        assert block is not None and certificate is not None
        return ChainTip(tip.height, tip.block_hash, block.header.timestamp_ms, certificate.view)

    # --- consensus.Application ----------------------------------------------------------------

    def tip(self) -> ChainTip:
        return self._tip

    def members(self) -> tuple[Member, ...]:
        return self._members

    def parameters(self) -> ConsensusParameters:
        """The consortium's parameters in force (for the node's per-frame limits)."""
        return self._parameters

    def has_pending_transactions(self) -> bool:
        return len(self.mempool) > 0

    def propose(self, *, height: int, view: int, timestamp_ms: int, proposer: str) -> Block:
        parameters = self._parameters
        # Every member executes the block after the primary, and the view timer runs meanwhile:
        # a block that takes the primary a fraction of the view timeout to build stays well
        # inside it on the others too. The rest waits for the next block.
        share = self.proposal_time_share_percent / 100
        deadline = time.monotonic() + parameters.view_timeout_ms / 1000 * share
        result = self.engine.build_proposal(
            self.store,
            self.mempool.candidates(),
            height=height,
            timestamp_ms=timestamp_ms,
            proposer=proposer,
            limits=ProposalLimits(
                transactions_max=parameters.block_transactions_max,
                bytes_max=parameters.block_bytes_max,
                time_is_up=lambda: time.monotonic() > deadline,
            ),
            directory=self._directory,
        )
        for transaction, rejection in result.rejected:
            self.mempool.remember_rejection(transaction.tx_id, rejection)
        self.mempool.remove(transaction.tx_id for transaction, _ in result.rejected)
        header = BlockHeader(
            chain_id=self.store.chain_id,
            height=height,
            prev_hash=self._tip.block_hash,
            timestamp_ms=timestamp_ms,
            proposer=proposer,
            view=view,
            tx_count=len(result.accepted),
            tx_root=result.tx_root,
            state_root=result.state_root,
            members_hash=result.members_hash,
            **result.header_log_fields(),
        )
        block = Block(header=header, transactions=result.accepted)
        self._remember(block.block_hash, result)
        return block

    def validate(self, block: Block) -> str | None:
        # The replica owns the chain: it asks only about a block that extends the tip.
        assert block.height == self._tip.height + 1, "the replica validates the next height"
        assert block.header.prev_hash == self._tip.block_hash, "the replica checks the parent"
        try:
            result = self.engine.process_proposal(self.store, block, self._directory)
        except InvalidProposalError as error:
            return str(error)
        self._remember(block.block_hash, result)
        return None

    def execute_next(self, block: Block) -> ExecutionResult:
        """Execute ``block`` on the committed state as the next one, changing nothing, and keep
        the result for :meth:`commit` (an observer verifying a block it did not vote on).
        Raises InvalidProposalError if a replica would refuse it."""
        result = self.engine.process_proposal(self.store, block, self._directory)
        self._remember(block.block_hash, result)
        return result

    def committed_block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        if not 1 <= height <= self._tip.height:
            return None
        if self._last_committed is not None and self._last_committed[0].height == height:
            return self._last_committed  # the tip, asked for by every status message
        block = self.store.block(height)
        certificate = self.store.certificate(height)
        if block is None or certificate is None:
            return None
        return block, certificate

    # --- driven by the daemon -----------------------------------------------------------------

    def commit(self, block: Block, certificate: CommitCertificate) -> None:
        """Append a certified block durably (the replica's CommitBlock action)."""
        result = self._executions.pop(block.block_hash, None)
        if result is None:
            result = self.engine.process_proposal(self.store, block, self._directory)
        self.store.append_block(block, certificate, result.state_writes)
        self._executions.clear()
        self.mempool.remove(transaction.tx_id for transaction in block.transactions)
        for transaction, outcome in zip(block.transactions, result.results, strict=True):
            self._results[transaction.tx_id] = outcome
        while len(self._results) > RESULTS_REMEMBERED_MAX:
            self._results.popitem(last=False)
        self._tip = ChainTip(
            block.height, block.block_hash, block.header.timestamp_ms, certificate.view
        )
        self._last_committed = (block, certificate)
        self._refresh_directory(result.state_writes)
        self.mempool.drop_expired(block.height + 1)
        self.revalidate_pending()

    def submit(self, transaction: Transaction, *, dry_run: bool = True) -> bool:
        """Admit a transaction into the mempool (raises Rejection); False if already known.

        The door of :mod:`contracts.admission`: replay, expiry and size on the next height,
        then the mempool's room, then either a dry run on the tip (which verifies the signature
        and the contract's check, then applies) or, without ``dry_run`` (gossip under load),
        only the stateless checks; such a transaction waits for a block, or a dry run after
        commits or while idle, to settle it.
        """
        replay = admission.screen(
            transaction,
            committed=self.store,
            earlier=self.mempool,
            height=self._tip.height + 1,
            parameters=self._parameters,
        )
        if replay is not None:
            return False
        self.mempool.check_room(transaction)
        try:
            if dry_run:
                # A transaction that cannot apply now (a signer without the role, a reference
                # already anchored…) is refused at once instead of lingering in every
                # member's mempool and holding views open.
                rejected = self._dry_run([transaction])
                if rejected:
                    raise rejected[0][1]
            else:
                self.engine.check(transaction)
        except Rejection as rejection:
            self.mempool.remember_rejection(transaction.tx_id, rejection)
            raise
        self.mempool.add(transaction, height=self._tip.height)
        return True

    def submit_many(self, transactions: list[Transaction]) -> list[bool | Rejection]:
        """Admit a batch in order: for each, True (admitted), False (already known) or its
        :class:`~contracts.base.Rejection`; the batch's admitted transactions keep its order.

        The door of :meth:`submit`, with one dry run for the whole batch instead of one per
        transaction: each transaction runs on the tip plus the batch's earlier admitted ones,
        as the block that includes them in this order will run it (a second anchor of one
        reference in the same batch is refused here, not in the block). Rules 1–3 and the
        mempool's room are checked per transaction first, so that a full pool verifies no
        signature; a transaction the dry run refuses leaves the pool again.
        """
        outcomes: list[bool | Rejection] = []
        candidates: list[Transaction] = []
        height = self._tip.height
        for transaction in transactions:
            try:
                replay = admission.screen(
                    transaction,
                    committed=self.store,
                    earlier=self.mempool,
                    height=height + 1,
                    parameters=self._parameters,
                )
                if replay is not None:
                    outcomes.append(False)
                    continue
                self.mempool.check_room(transaction)
            except Rejection as rejection:  # not remembered, as by submit: it may come again
                outcomes.append(rejection)
                continue
            # Held at once: a later transaction of the batch sees its room taken, and a copy of
            # it later in the batch is known (False), as it would be in two requests.
            self.mempool.add(transaction, height=height)
            candidates.append(transaction)
            outcomes.append(True)
        if not candidates:
            return outcomes
        try:
            rejected = self._dry_run(candidates)
        except BaseException:  # a bug: nothing unchecked may stay in the pool
            self.mempool.remove(transaction.tx_id for transaction in candidates)
            raise
        refused = {transaction.tx_id: rejection for transaction, rejection in rejected}
        if refused:
            self.mempool.remove(refused)
            for tx_id, rejection in refused.items():
                self.mempool.remember_rejection(tx_id, rejection)
            for index, transaction in enumerate(transactions):
                if outcomes[index] is True and transaction.tx_id in refused:
                    outcomes[index] = refused[transaction.tx_id]
        return outcomes

    def _dry_run(
        self, transactions: list[Transaction]
    ) -> tuple[tuple[Transaction, Rejection], ...]:
        """The transactions that would fail in the next block (admission, then apply)."""
        return self.engine.dry_run(
            self.store,
            transactions,
            height=self._tip.height + 1,
            timestamp_ms=self._tip.timestamp_ms + 1,
            proposer=self._members[0].id,
            directory=self._directory,
        )

    def revalidate_pending(self) -> int:
        """Drop pending transactions that no longer apply on the tip; returns how many.

        A committed transaction can invalidate a pending one (the same reference submitted
        to two members): it must leave every mempool, or it would hold views open. A small
        mempool is checked whole after each commit. A large one (under load, where commits
        follow each other and the primary drops what fails when it builds a block) only in a
        few of its transactions pending for several blocks, so that the check does not cost a
        second execution of every transaction; :meth:`revalidate_when_idle` does the rest once
        the load stops.
        """
        pending = self.mempool.candidates()
        if len(pending) > REVALIDATED_PER_COMMIT_MAX:
            pending = self.mempool.admitted_before(
                self._tip.height - LINGERING_BLOCKS, LINGERING_REVALIDATED_PER_COMMIT_MAX
            )
        if not pending:
            return 0
        return self._settle(pending)

    def revalidate_when_idle(self) -> int:
        """Dry-run the oldest pending transactions (a bounded number); returns how many dropped.

        Called while no block commits although transactions are pending: ones admitted without
        a dry run (gossip under load) or made invalid since, which the primary drops but the
        other members keep, must not hold the view timer open.
        """
        pending = self.mempool.candidates()[:REVALIDATED_PER_COMMIT_MAX]
        return self._settle(pending) if pending else 0

    def _settle(self, transactions: list[Transaction]) -> int:
        """Dry-run ``transactions`` on the tip; drop (and remember) the ones that fail."""
        rejected = self._dry_run(transactions)
        for transaction, rejection in rejected:
            self.mempool.remember_rejection(transaction.tx_id, rejection)
        self.mempool.remove(transaction.tx_id for transaction, _ in rejected)
        return len(rejected)

    def result(self, tx_id: bytes) -> object | None:
        """The result document of a recently committed transaction (kept in memory)."""
        return self._results.get(tx_id)

    def _refresh_directory(self, state_writes: Mapping[bytes, bytes | None] | None = None) -> None:
        """Read the member set, parameters and signer keys in force (after each commit).

        After a block that wrote nothing in the membership namespace (``state_writes``), the
        issuers and signer keys the previous directory read are still those in force: the
        new one keeps them (bounded, :meth:`Directory.keep_reads_of`)."""
        previous = getattr(self, "_directory", None)
        self._directory = self.engine.directory(self.store)
        if (
            previous is not None
            and state_writes is not None
            and not any(key.startswith(MEMBERSHIP_NAMESPACE.prefix) for key in state_writes)
        ):
            self._directory.keep_reads_of(previous)
        self._members = self._directory.members
        self._parameters = self._directory.parameters

    def _remember(self, block_hash: bytes, result: ExecutionResult) -> None:
        self._executions[block_hash] = result
        while len(self._executions) > EXECUTIONS_REMEMBERED_MAX:
            self._executions.popitem(last=False)
