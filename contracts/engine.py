"""The execution engine: ordered transactions in, state writes and a state root out.

Theory of operation
-------------------
The same engine serves the primary (building a proposal), the replicas (validating it) and the
offline auditor (replaying the chain), so they cannot disagree by construction.

Given the committed state at height ``h - 1`` (anything with the four reads of
:class:`CommittedState`: a :class:`~ledger.store.ChainStore` or a
:class:`~ledger.memstate.MemoryState`) and an ordered list of transactions for height ``h``,
:meth:`Engine.execute` takes each transaction in turn and

1. admits it through the one admission pipeline (:mod:`contracts.admission`, the same rules a
   mempool applies at its door): replay (a transaction already in the chain, or earlier in the
   batch, is never applied twice), expiry (``expiry_height >= h``), size, then chain,
   contract, signature and the contract's stateless ``check`` (:meth:`Engine.check`);
2. applies it on a per-transaction overlay, itself on top of the block's overlay, through a
   view namespaced to the contract (state key = ``contract name || "/" || key``);
3. keeps its writes if ``apply`` returned, discards them if it raised a
   :class:`~contracts.base.Rejection` (any other exception from a contract is turned into the
   rejection ``contract_failure``: a contract bug must not split the consortium).

It returns the accepted transactions with their results, the rejected ones with their
reasons, the block's state writes, its transaction root and the new state root (an
:class:`ExecutionResult`, computed once per block and carried to the header and the store), and
touches nothing committed. The entry points differ only in what they are given: a list to
execute whole (:meth:`Engine.execute`), candidates and :class:`ProposalLimits` (the primary,
:meth:`Engine.build_proposal`), a block to judge (:meth:`Engine.process_proposal`), or
transactions to try without a state root (:meth:`Engine.dry_run`).

Authorization comes from the membership contract's state *as committed before the block*: the
member set, each member's node key and the delegated signer keys. Membership changes made by a
block therefore take effect at the next height (docs/architecture.md, decision 9).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from contracts import admission
from contracts.base import (
    NAMESPACE_SEPARATOR,
    BlockContext,
    Contract,
    Rejection,
)
from contracts.membership import MEMBERSHIP, Directory, MembershipContract
from ledger import encoding, merkle, tlog
from ledger.model import (
    HEADER_FORMATS,
    Block,
    Genesis,
    Member,
    Transaction,
    header_format_at,
    members_hash,
)
from ledger.namespace import FORMATS_STATE_KEY

__all__ = [
    "STATE_VALUE_BYTES_MAX",
    "WRITES_PER_TRANSACTION_MAX",
    "CommittedState",
    "Engine",
    "ExecutionResult",
    "InvalidProposalError",
    "ProposalLimits",
]

STATE_VALUE_BYTES_MAX = 256 * 1024
"""Room for the largest member set (256 members with every field at its longest)."""
WRITES_PER_TRANSACTION_MAX = 256
RESULT_BYTES_MAX = 4096


class CommittedState(Protocol):
    """The reads the engine needs from the committed state (ChainStore, MemoryState)."""

    def state_get(self, key: bytes) -> bytes | None: ...

    def state_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...

    def preview_state_root(self, state_writes: Mapping[bytes, bytes | None]) -> bytes: ...

    def transaction_location(self, tx_id: bytes) -> tuple[int, int] | None: ...

    def log_frontier(self) -> tlog.LogFrontier: ...

    def preview_log(self, leaves: Sequence[bytes]) -> tlog.LogFrontier: ...


class InvalidProposalError(Exception):
    """A proposed block that a correct replica must refuse; the message says why."""


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What executing a batch gives; nothing of it is committed yet."""

    accepted: tuple[Transaction, ...]
    results: tuple[Any, ...]
    """The result document of each accepted transaction, in order."""
    rejected: tuple[tuple[Transaction, Rejection], ...]
    state_writes: dict[bytes, bytes | None]
    tx_root: bytes
    """Merkle root of the accepted transactions (goes into the header)."""
    state_root: bytes
    members_hash: bytes
    """Hash of the member set in force at this height (goes into the header)."""
    header_format: int
    """The header format at this height: from 2 on, the header carries the log fields."""
    log_size: int
    """The size of the log of every act after this block (ledger.tlog)."""
    log_root: bytes

    def header_log_fields(self) -> dict[str, Any]:
        """``log_size`` and ``log_root`` for a header of this block's format (none in format 1)."""
        if self.header_format < 2:
            return {}
        return {"log_size": self.log_size, "log_root": self.log_root}


def _never() -> bool:
    return False


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposalLimits:
    """How much a primary puts in the block it builds (the consensus parameters in force)."""

    transactions_max: int
    bytes_max: int
    time_is_up: Callable[[], bool] = _never
    """The proposer's own time budget, asked after each accepted transaction: True ends the
    batch there, like the limits. It never changes what a given list executes to."""

    def __post_init__(self) -> None:
        assert self.transactions_max >= 0 and self.bytes_max >= 0, "limits are not negative"


@dataclass(slots=True, kw_only=True)
class _Run:
    """What the execution loop gathers, before it becomes an :class:`ExecutionResult`."""

    directory: Directory
    overlay: _Overlay
    accepted: list[Transaction] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)
    rejected: list[tuple[Transaction, Rejection]] = field(default_factory=list)
    seen: set[bytes] = field(default_factory=set)
    contexts: dict[bytes, BlockContext] = field(default_factory=dict)
    """The block's context with each signer's delegations, made once per signer: the
    directory is the block's, so a signer's delegations are the same for all its
    transactions."""

    def accept(self, transaction: Transaction, result: Any) -> None:
        self.accepted.append(transaction)
        self.results.append(result)
        self.seen.add(transaction.tx_id)

    def reject(self, transaction: Transaction, rejection: Rejection) -> None:
        self.rejected.append((transaction, rejection))


class _Overlay:
    """Pending writes over a base; reads see the writes first."""

    def __init__(self, base: CommittedState | _Overlay) -> None:
        self._base = base
        self.writes: dict[bytes, bytes | None] = {}

    def state_get(self, key: bytes) -> bytes | None:
        if key in self.writes:
            return self.writes[key]
        return self._base.state_get(key)

    def state_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        merged = dict(self._base.state_items(prefix))
        for key, value in self.writes.items():
            if key.startswith(prefix):
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
        for key in sorted(merged):
            yield key, merged[key]


class _ReadOnlyView:
    """A contract's namespace, read only (queries, and other contracts' views)."""

    def __init__(self, source: CommittedState | _Overlay, contract_name: str) -> None:
        self._source = source
        self._prefix = contract_name.encode() + NAMESPACE_SEPARATOR

    def get(self, key: bytes) -> bytes | None:
        return self._source.state_get(self._prefix + key)

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        cut = len(self._prefix)
        for key, value in self._source.state_items(self._prefix + prefix):
            yield key[cut:], value


class _WritableView(_ReadOnlyView):
    """A contract's own namespace during ``apply``: writes go to the transaction's overlay."""

    def __init__(self, overlay: _Overlay, contract_name: str) -> None:
        super().__init__(overlay, contract_name)
        self._overlay = overlay

    def put(self, key: bytes, value: bytes) -> None:
        assert isinstance(key, bytes) and isinstance(value, bytes), (
            "state keys and values are bytes"
        )
        if len(value) > STATE_VALUE_BYTES_MAX:
            raise Rejection("state_limit", f"a state value of {len(value)} bytes is too large")
        self._count_write()
        self._overlay.writes[self._prefix + key] = value

    def delete(self, key: bytes) -> None:
        assert isinstance(key, bytes), "state keys are bytes"
        self._count_write()
        self._overlay.writes[self._prefix + key] = None

    def read_only_view(self, contract_name: str) -> _ReadOnlyView:
        return _ReadOnlyView(self._overlay, contract_name)

    def _count_write(self) -> None:
        if len(self._overlay.writes) >= WRITES_PER_TRANSACTION_MAX:
            raise Rejection("state_limit", "the transaction writes too many state entries")


class Engine:
    """Executes transactions with a fixed set of contracts (membership always among them)."""

    def __init__(self, genesis: Genesis, contracts: Mapping[str, Contract]) -> None:
        if MEMBERSHIP not in contracts:
            # The version the genesis pins (a 1.0 chain keeps 1.0's rules), else the newest.
            pinned = next((ref for ref in genesis.contracts if ref.name == MEMBERSHIP), None)
            membership = (
                MembershipContract()
                if pinned is None
                else MembershipContract.at_version(pinned.version)
            )
            contracts = {MEMBERSHIP: membership, **contracts}
        self.genesis = genesis
        self.chain_id = genesis.chain_id
        self.contracts: dict[str, Contract] = dict(contracts)
        for name, contract in self.contracts.items():
            assert contract.name == name, f"contract registered as {name!r} is {contract.name!r}"

    # --- genesis and membership ---------------------------------------------------------------

    def genesis_state(self) -> dict[bytes, bytes]:
        """The state at height 0: each contract's initial state, from the genesis."""
        overlay = _Overlay(_EmptyState())
        for name in sorted(self.contracts):
            self.contracts[name].genesis_state(self.genesis, _WritableView(overlay, name))
        return {key: value for key, value in overlay.writes.items() if value is not None}

    def directory(self, state: CommittedState) -> Directory:
        """The member set, parameters and signer keys in force after the committed state."""
        return MembershipContract.read_directory(_ReadOnlyView(state, MEMBERSHIP))

    def members(self, state: CommittedState) -> tuple[Member, ...]:
        """The member set that certifies the next height."""
        return self.directory(state).members

    def members_after(
        self, state: CommittedState, state_writes: Mapping[bytes, bytes | None]
    ) -> tuple[Member, ...]:
        """The member set that certifies the height after a block whose ``state_writes``
        (an :class:`ExecutionResult`'s) are not committed yet over ``state``."""
        overlay = _Overlay(state)
        overlay.writes.update(state_writes)
        return MembershipContract.read_directory(_ReadOnlyView(overlay, MEMBERSHIP)).members

    # --- execution ----------------------------------------------------------------------------
    #
    # Four entry points, one loop (_run): ``execute`` a given list as a block, ``build_proposal``
    # within a primary's limits, ``dry_run`` to ask only which transactions apply now, and
    # ``process_proposal`` to judge a proposed block. Each transaction passes the admission
    # pipeline (contracts.admission) before it is applied.

    def execute(
        self,
        state: CommittedState,
        transactions: Sequence[Transaction],
        *,
        height: int,
        timestamp_ms: int,
        proposer: str,
        directory: Directory | None = None,
    ) -> ExecutionResult:
        """Execute ``transactions`` in order as block ``height`` on ``state``, all of them.

        ``directory`` is ``self.directory(state)`` when the caller already holds it (a node
        keeps it from one commit to the next instead of decoding the member set each time).
        """
        run = self._run(state, transactions, height, timestamp_ms, proposer, directory)
        return self._result(state, run, height)

    def build_proposal(
        self,
        state: CommittedState,
        candidates: Sequence[Transaction],
        *,
        height: int,
        timestamp_ms: int,
        proposer: str,
        limits: ProposalLimits,
        directory: Directory | None = None,
    ) -> ExecutionResult:
        """Execute a prefix of ``candidates`` as block ``height``, within ``limits``.

        Execution stops before the batch would exceed the limits, or once the proposer's time
        budget is spent; the rest is neither accepted nor rejected.
        """
        run = self._run(state, candidates, height, timestamp_ms, proposer, directory, limits=limits)
        return self._result(state, run, height)

    def dry_run(
        self,
        state: CommittedState,
        transactions: Sequence[Transaction],
        *,
        height: int,
        timestamp_ms: int,
        proposer: str,
        directory: Directory | None = None,
    ) -> tuple[tuple[Transaction, Rejection], ...]:
        """The transactions that would be rejected in block ``height``, with why.

        Cheaper than :meth:`execute`: no state root, the state tree is not touched at all.
        """
        run = self._run(state, transactions, height, timestamp_ms, proposer, directory)
        return tuple(run.rejected)

    def process_proposal(
        self,
        state: CommittedState,
        block: Block,
        directory: Directory | None = None,
    ) -> ExecutionResult:
        """Re-execute a proposed block; raise :class:`InvalidProposalError` if it is wrong.

        A correct replica refuses a block with a transaction that fails (docs/architecture.md,
        decision 6), more transactions or bytes than the parameters allow, or a transaction, state
        or member-set root other than the ones its content and execution give. The cheap checks
        come before execution. The replica has checked the rest (chain, height, parent).
        """
        header = block.header
        directory = directory if directory is not None else self.directory(state)
        parameters = directory.parameters
        tx_root = merkle.root(block.transaction_leaves())
        if tx_root != header.tx_root:
            raise InvalidProposalError(f"block {header.height}: tx_root does not match")
        if len(block.transactions) > parameters.block_transactions_max:
            raise InvalidProposalError(f"block {header.height} has too many transactions")
        if sum(len(tx.encoded) for tx in block.transactions) > parameters.block_bytes_max:
            raise InvalidProposalError(f"block {header.height} is too large")
        run = self._run(
            state,
            block.transactions,
            header.height,
            header.timestamp_ms,
            header.proposer,
            directory,
        )
        if run.rejected:
            transaction, rejection = run.rejected[0]
            raise InvalidProposalError(
                f"block {header.height}: transaction {transaction.tx_id.hex()} fails: "
                f"{rejection.code}: {rejection.reason}"
            )
        result = self._result(state, run, header.height, tx_root)
        if result.members_hash != header.members_hash:
            raise InvalidProposalError(f"block {header.height}: members_hash does not match")
        if result.state_root != header.state_root:
            raise InvalidProposalError(f"block {header.height}: state_root does not match")
        if header.format_version != result.header_format:
            raise InvalidProposalError(
                f"block {header.height}: header format {header.format_version}, but the chain "
                f"is in format {result.header_format} at this height"
            )
        if header.log_size is not None and (header.log_size, header.log_root) != (
            result.log_size,
            result.log_root,
        ):
            raise InvalidProposalError(
                f"block {header.height}: log_size or log_root does not match"
            )
        return result

    def check(self, transaction: Transaction) -> None:
        """The stateless checks: chain, contract, signature, the contract's ``check``.

        Step 4 of the admission pipeline (:mod:`contracts.admission`); raises Rejection.
        """
        if transaction.chain_id != self.chain_id:
            raise Rejection("wrong_chain", "the transaction is for another consortium")
        contract = self.contracts.get(transaction.contract)
        if contract is None:
            # Only the text, for people: a rejected transaction is in no block.
            raise Rejection(
                "unknown_contract",
                f"this consortium runs no contract {transaction.contract!r} (its genesis lists "
                f"{', '.join(self.contracts)}); a contract runs only if the genesis lists it: "
                f"a new chain enables one with 'sceau genesis create --contract NAME' (or "
                f"'sceau devnet up --contract NAME'), see docs/contracts.md",
            )
        if not transaction.signature_is_valid():
            raise Rejection("bad_signature", "the signature does not verify")
        try:
            contract.check(transaction)
        except Rejection:
            raise
        except Exception as error:  # a contract bug must not stop block building
            raise Rejection(
                "contract_failure", f"{contract.name} check failed: {type(error).__name__}"
            ) from None

    def _run(
        self,
        state: CommittedState,
        transactions: Sequence[Transaction],
        height: int,
        timestamp_ms: int,
        proposer: str,
        directory: Directory | None,
        *,
        limits: ProposalLimits | None = None,
    ) -> _Run:
        """The one execution loop: admit, then apply, each transaction in turn.

        Only a primary building a proposal gives ``limits``: a given list is executed whole.
        """
        directory = directory if directory is not None else self.directory(state)
        block = BlockContext(
            height=height,
            timestamp_ms=timestamp_ms,
            proposer=proposer,
            members=directory.members,
            parameters=directory.parameters,
            issuer=directory.issuer,
            header_format=header_format_at(
                self.genesis.format_version, state.state_get(FORMATS_STATE_KEY), height
            ),
        )
        run = _Run(directory=directory, overlay=_Overlay(state))
        block_bytes = 0
        for transaction in transactions:
            size = len(transaction.encoded)
            if limits is not None:
                if len(run.accepted) >= limits.transactions_max:
                    break
                if size > limits.bytes_max:
                    too_large = Rejection("transaction_too_large", "larger than a block")
                    run.reject(transaction, too_large)
                    continue
                if block_bytes + size > limits.bytes_max:
                    break
            try:
                admission.admit_to_block(
                    transaction,
                    committed=state,
                    earlier=run.seen,
                    height=height,
                    parameters=block.parameters,
                    check=self.check,
                )
                result = self._apply(transaction, run, block)
            except Rejection as rejection:
                run.reject(transaction, rejection)
                continue
            run.accept(transaction, result)
            block_bytes += size
            if limits is not None and limits.time_is_up():
                break
        return run

    def header_format(self, state: CommittedState, height: int) -> int:
        """The header format of block ``height`` on top of ``state`` (the genesis's, or the one
        scheduled by governance); InvalidProposalError if this software does not know it."""
        version = header_format_at(
            self.genesis.format_version, state.state_get(FORMATS_STATE_KEY), height
        )
        if version not in HEADER_FORMATS:
            raise InvalidProposalError(
                f"block {height}: the chain moved to header format {version} at this height, "
                f"which this software does not know (it knows "
                f"{', '.join(map(str, HEADER_FORMATS))}): upgrade sceau"
            )
        return version

    def _result(
        self, state: CommittedState, run: _Run, height: int, tx_root: bytes | None = None
    ) -> ExecutionResult:
        """The run's result; ``tx_root`` when the caller already computed it (a given block)."""
        leaves = [transaction.encoded for transaction in run.accepted]
        if tx_root is None:
            tx_root = merkle.root(leaves)
        log = state.preview_log(leaves)  # the store's append reuses these hashes
        return ExecutionResult(
            accepted=tuple(run.accepted),
            results=tuple(run.results),
            rejected=tuple(run.rejected),
            state_writes=run.overlay.writes,
            tx_root=tx_root,
            state_root=state.preview_state_root(run.overlay.writes),
            members_hash=members_hash(run.directory.members),
            header_format=self.header_format(state, height),
            log_size=log.size,
            log_root=log.root,
        )

    def _apply(self, transaction: Transaction, run: _Run, block: BlockContext) -> Any:
        """Apply an admitted transaction on its own overlay; keep its writes if it returns."""
        contract = self.contracts[transaction.contract]
        block_overlay = run.overlay
        context = run.contexts.get(transaction.signer)
        if context is None:
            context = dataclasses.replace(
                block, signer_delegations=run.directory.delegations_for(transaction.signer)
            )
            run.contexts[transaction.signer] = context
        transaction_overlay = _Overlay(block_overlay)
        try:
            # The contract gets its own copy of the arguments: whatever it does to them,
            # the signed transaction (and its cached bytes and id) stays as it was.
            isolated = transaction.with_private_arguments()
            result = contract.apply(
                isolated, _WritableView(transaction_overlay, contract.name), context
            )
        except Rejection:
            raise
        except Exception as error:  # a contract bug must not split the consortium
            raise Rejection(
                "contract_failure", f"{contract.name} failed: {type(error).__name__}"
            ) from None
        try:
            encoded_result = encoding.pack(result)
        except encoding.EncodingError:
            raise Rejection("contract_failure", f"{contract.name} returned a bad result") from None
        if len(encoded_result) > RESULT_BYTES_MAX:
            raise Rejection("contract_failure", f"{contract.name} returned too large a result")
        block_overlay.writes.update(transaction_overlay.writes)
        return result

    def query(self, state: CommittedState, contract_name: str, path: str) -> Any:
        """A contract's answer to ``path`` over the committed state; LookupError if none."""
        contract = self.contracts.get(contract_name)
        if contract is None:
            raise LookupError(f"no contract {contract_name!r}")
        return contract.query(path, _ReadOnlyView(state, contract_name))


class _EmptyState:
    def state_get(self, key: bytes) -> bytes | None:
        return None

    def state_items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        return iter(())

    def preview_state_root(self, state_writes: Mapping[bytes, bytes | None]) -> bytes:
        raise AssertionError("the empty state has no root to preview")

    def transaction_location(self, tx_id: bytes) -> tuple[int, int] | None:
        return None

    def log_frontier(self) -> tlog.LogFrontier:
        return tlog.EMPTY_FRONTIER

    def preview_log(self, leaves: Sequence[bytes]) -> tlog.LogFrontier:
        return tlog.EMPTY_FRONTIER.extended(merkle.leaf_hash(leaf) for leaf in leaves)
