"""Replaying a chain with the contract engine: the execution half of the offline auditor.

Theory of operation
-------------------
:mod:`ledger.audit` checks everything about a chain that needs no contract code (hash links,
heights, timestamps, transaction roots, signatures, certificates) and asks a *replayer* for the
rest: "what does executing this block on the state of its parent give?" The ledger layer may
not import the contracts, so the replayer is handed to the auditor through the small
:class:`ledger.audit.Replayer` protocol; :class:`EngineReplayer` is the implementation that
sceau's commands use.

:class:`EngineReplayer` is exactly what a replica runs on a proposal: an :class:`Engine` built
from the genesis with the contracts it pins (:func:`contracts.registry.load_contracts`), the
genesis state from :meth:`Engine.genesis_state`, and each block through
:meth:`Engine.process_proposal` (every transaction must apply, within the limits in force, to
the header's members_hash and state_root), its writes then committed to a
:class:`~ledger.memstate.MemoryState` that keeps only its latest tree (``history=False``). A
block the engine refuses is described by :class:`ReplayError` naming the header field or the
transaction at fault.

Memory. The auditor only ever needs the latest root, so its MemoryState keeps only the tree
nodes reachable from it: memory in proportion to the state, not to the chain's history (see
ledger/memstate.py).

Signatures. The auditor verifies every transaction signature in worker processes, over all
cores. Verifying them again here, in the auditor's one process, would double the audit's cost
and serialise it on one core, so :meth:`EngineReplayer.execute` with
``signatures_verified=True`` lets the engine take each signature as checked; every other check
of :meth:`Engine.check` still runs. A caller that passes True must verify the signatures
itself and fail the audit when one does not verify (:mod:`ledger.audit` does).
"""

from __future__ import annotations

from typing import Any

from contracts.engine import Engine, ExecutionResult, InvalidProposalError
from contracts.registry import ContractLoadError, load_contracts
from ledger.audit import Replayed, ReplayError, ReplaySetupError
from ledger.memstate import MemoryState
from ledger.model import Block, Genesis, Member, Transaction

__all__ = ["EngineReplayer"]


class _SignatureVerified:
    """A transaction seen through :meth:`Engine.check` as already signature-checked.

    Every attribute is the transaction's own; only ``signature_is_valid`` answers True without
    running Ed25519 again, because the caller verified it (see the module doc).
    """

    __slots__ = ("_transaction",)

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transaction, name)

    def signature_is_valid(self) -> bool:
        return True


class _ReplayEngine(Engine):
    """The engine, able to take transaction signatures as verified by its caller."""

    signatures_verified = False

    def check(self, transaction: Transaction) -> None:
        if self.signatures_verified:
            # Engine.check stays the one definition of the stateless checks; only the
            # signature is answered from the caller's verification.
            super().check(_SignatureVerified(transaction))  # type: ignore[arg-type]
        else:
            super().check(transaction)


class EngineReplayer:
    """Re-executes a chain block by block with the contracts its genesis pins, in memory.

    Implements :class:`ledger.audit.Replayer`. Raises :class:`ReplaySetupError` from
    :meth:`start` when a pinned contract is missing or installed in another version.
    """

    def __init__(self) -> None:
        self._engine: _ReplayEngine | None = None
        self._state: MemoryState | None = None

    def start(self, genesis: Genesis) -> tuple[Member, ...]:
        """Reset to the genesis state; return the member set that certifies block 1."""
        try:
            contracts = load_contracts(genesis)
        except ContractLoadError as error:
            raise ReplaySetupError(str(error)) from None
        self._engine = _ReplayEngine(genesis, contracts)
        self._state = MemoryState(self._engine.genesis_state(), history=False)
        return self._engine.members(self._state)

    @property
    def state(self) -> MemoryState:
        """The replayed state after the last block executed (for queries and exports)."""
        assert self._state is not None, "start() first"
        return self._state

    @property
    def engine(self) -> Engine:
        assert self._engine is not None, "start() first"
        return self._engine

    def execute(self, block: Block, *, signatures_verified: bool) -> Replayed:
        """Execute ``block`` on the state of its parent and commit it.

        Returns the state writes and the member set in force at the next height. Raises
        :class:`ReplayError` when a correct replica would refuse the block (the state is then
        left as it was).
        """
        engine, state = self._engine, self._state
        assert engine is not None and state is not None, "start() first"
        engine.signatures_verified = signatures_verified
        try:
            result = engine.process_proposal(state, block)
        except InvalidProposalError as error:
            raise _diagnose(engine, state, block, error) from None
        finally:
            engine.signatures_verified = False
        state.commit(
            result.state_writes,
            [transaction.tx_id for transaction in block.transactions],
            log_leaves=block.transaction_leaves(),
        )
        return Replayed(
            state_root=result.state_root,
            state_writes=result.state_writes,
            next_members=engine.members(state),
        )


def _diagnose(
    engine: _ReplayEngine, state: MemoryState, block: Block, error: InvalidProposalError
) -> ReplayError:
    """Name what the engine refused in ``block``: a transaction, or a header field.

    Only runs on a refusal: the block is executed once more, without limits, to find out. The
    header's format comes first (a format this software does not know cannot be executed at
    all); the log fields last, since a wrong state or member set explains a wrong log too.
    """
    header = block.header
    try:
        expected_format = engine.header_format(state, header.height)
    except InvalidProposalError as unknown:
        return ReplayError("header.format", str(unknown).removeprefix(f"block {header.height}: "))
    if header.format_version != expected_format:
        return ReplayError(
            "header.format",
            f"is format {header.format_version}, but the chain is in format {expected_format} "
            f"at this height (the genesis's, or the one its members scheduled)",
        )
    result = _execute(engine, state, block)
    if result.rejected:
        transaction, rejection = result.rejected[0]
        position = block.transactions.index(transaction)
        return ReplayError(
            f"transaction {position}",
            f"rejected by the {transaction.contract} contract on re-execution: "
            f"{rejection.code}: {rejection.reason}",
        )
    for field, computed in (
        ("members_hash", result.members_hash),
        ("state_root", result.state_root),
    ):
        stated = getattr(header, field)
        if stated != computed:
            return ReplayError(
                f"header.{field}",
                f"is {stated.hex()}, re-executing the block gives {computed.hex()}",
            )
    if header.log_size is not None:
        if header.log_size != result.log_size:
            return ReplayError(
                "header.log_size",
                f"is {header.log_size}, but the chain holds {result.log_size} transactions up "
                f"to this block",
            )
        if header.log_root != result.log_root:
            assert header.log_root is not None
            return ReplayError(
                "header.log_root",
                f"is {header.log_root.hex()}, the log of every act gives {result.log_root.hex()}",
            )
    reason = str(error).removeprefix(f"block {header.height}: ")
    if reason.startswith("tx_root"):
        return ReplayError("header.tx_root", "does not match the transactions")
    return ReplayError("block", f"refused on re-execution: {reason}")


def _execute(engine: Engine, state: MemoryState, block: Block) -> ExecutionResult:
    header = block.header
    return engine.execute(
        state,
        block.transactions,
        height=header.height,
        timestamp_ms=header.timestamp_ms,
        proposer=header.proposer,
    )
