"""The execution engine: ordered transactions in, state writes and a state root out.

Theory of operation
-------------------
The same engine serves the primary (building a proposal), the replicas (validating it) and the
offline auditor (replaying the chain), so they cannot disagree by construction.

Given the committed state at height ``h - 1`` (anything with the four reads of
:class:`CommittedState`: a :class:`~ledger.store.ChainStore` or a
:class:`~ledger.memstate.MemoryState`) and an ordered list of transactions for height ``h``,
:meth:`Engine.execute` takes each transaction in turn and

1. checks it: chain_id, signature, expiry (``expiry_height >= h``), replay (a transaction
   already in the chain, or earlier in the batch, is never applied twice), size, contract
   enabled, and the contract's stateless ``check``;
2. applies it on a per-transaction overlay, itself on top of the block's overlay, through a
   view namespaced to the contract (state key = ``contract name || "/" || key``);
3. keeps its writes if ``apply`` returned, discards them if it raised a
   :class:`~contracts.base.Rejection` (any other exception from a contract is turned into the
   rejection ``contract_failure``: a contract bug must not split the consortium).

It returns the accepted transactions with their results, the rejected ones with their
reasons, the block's state writes and the new state root, and touches nothing committed.

Authorization comes from the membership contract's state *as committed before the block*: the
member set, each member's node key and the delegated signer keys. Membership changes made by a
block therefore take effect at the next height (DESIGN.md decision 9).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from contracts.base import (
    NAMESPACE_SEPARATOR,
    BlockContext,
    Contract,
    Rejection,
)
from contracts.membership import MEMBERSHIP, Directory, MembershipContract
from ledger import encoding, merkle
from ledger.model import Block, Genesis, Member, Transaction, members_hash

__all__ = [
    "STATE_VALUE_BYTES_MAX",
    "WRITES_PER_TRANSACTION_MAX",
    "CommittedState",
    "Engine",
    "ExecutionResult",
    "InvalidProposalError",
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
    state_root: bytes
    members_hash: bytes
    """Hash of the member set in force at this height (goes into the header)."""


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
            contracts = {MEMBERSHIP: MembershipContract(), **contracts}
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

    # --- execution ----------------------------------------------------------------------------

    def execute(
        self,
        state: CommittedState,
        transactions: Sequence[Transaction],
        *,
        height: int,
        timestamp_ms: int,
        proposer: str,
        transactions_max: int | None = None,
        bytes_max: int | None = None,
        directory: Directory | None = None,
        with_state_root: bool = True,
        stop_early: Callable[[], bool] | None = None,
    ) -> ExecutionResult:
        """Execute ``transactions`` in order as block ``height`` on ``state``.

        With ``transactions_max`` / ``bytes_max`` (the primary building a proposal), execution
        stops before the batch would exceed them; the rest is neither accepted nor rejected.
        ``directory`` is ``self.directory(state)`` when the caller already holds it (a node
        keeps it from one commit to the next instead of decoding the member set each time).
        Without ``with_state_root`` (a dry run that only asks which transactions apply), the
        result's ``state_root`` is empty: the state tree is not updated at all.
        ``stop_early`` is the proposer's own policy (a node bounds the time it spends building
        a block): asked after each accepted transaction, True ends the batch there, like the
        limits. It never changes what a given list of transactions executes to.
        """
        directory = directory if directory is not None else self.directory(state)
        base_context = BlockContext(
            height=height,
            timestamp_ms=timestamp_ms,
            proposer=proposer,
            members=directory.members,
            parameters=directory.parameters,
        )
        block_overlay = _Overlay(state)
        accepted: list[Transaction] = []
        results: list[Any] = []
        rejected: list[tuple[Transaction, Rejection]] = []
        seen: set[bytes] = set()
        block_bytes = 0
        for transaction in transactions:
            size = len(transaction.encoded)
            if transactions_max is not None and len(accepted) >= transactions_max:
                break
            if bytes_max is not None and size > bytes_max:
                rejected.append(
                    (transaction, Rejection("transaction_too_large", "larger than a block"))
                )
                continue
            if bytes_max is not None and block_bytes + size > bytes_max:
                break
            try:
                result = self._execute_one(
                    transaction, state, block_overlay, base_context, directory, seen
                )
            except Rejection as rejection:
                rejected.append((transaction, rejection))
                continue
            seen.add(transaction.tx_id)
            accepted.append(transaction)
            results.append(result)
            block_bytes += size
            if stop_early is not None and stop_early():
                break
        return ExecutionResult(
            accepted=tuple(accepted),
            results=tuple(results),
            rejected=tuple(rejected),
            state_writes=block_overlay.writes,
            state_root=(state.preview_state_root(block_overlay.writes) if with_state_root else b""),
            members_hash=members_hash(directory.members),
        )

    def check(self, transaction: Transaction) -> None:
        """The stateless checks (what a mempool runs on entry); raises Rejection."""
        if transaction.chain_id != self.chain_id:
            raise Rejection("wrong_chain", "the transaction is for another consortium")
        contract = self.contracts.get(transaction.contract)
        if contract is None:
            raise Rejection("unknown_contract", f"no contract {transaction.contract!r} here")
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

    def _execute_one(
        self,
        transaction: Transaction,
        state: CommittedState,
        block_overlay: _Overlay,
        base_context: BlockContext,
        directory: Directory,
        seen: set[bytes],
    ) -> Any:
        height = base_context.height
        if transaction.expiry_height < height:
            raise Rejection(
                "expired_transaction",
                f"the transaction expired at height {transaction.expiry_height}",
            )
        if transaction.tx_id in seen:
            raise Rejection("replayed_transaction", "the transaction is already in this block")
        if state.transaction_location(transaction.tx_id) is not None:
            raise Rejection("replayed_transaction", "the transaction is already in the chain")
        if len(transaction.encoded) > base_context.parameters.transaction_bytes_max:
            raise Rejection("transaction_too_large", "the transaction exceeds the size limit")
        self.check(transaction)
        contract = self.contracts[transaction.contract]
        context = BlockContext(
            height=height,
            timestamp_ms=base_context.timestamp_ms,
            proposer=base_context.proposer,
            members=base_context.members,
            parameters=base_context.parameters,
            signer_delegations=directory.delegations_for(transaction.signer),
        )
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

    def process_proposal(
        self,
        state: CommittedState,
        block: Block,
        directory: Directory | None = None,
    ) -> ExecutionResult:
        """Re-execute a proposed block; raise :class:`InvalidProposalError` if it is wrong.

        A correct replica refuses a block with a transaction that fails (DESIGN.md decision
        6), more transactions or bytes than the parameters allow, or a state root or member
        hash other than the ones execution gives.
        """
        header = block.header
        directory = directory if directory is not None else self.directory(state)
        parameters = directory.parameters
        if merkle.root(block.transaction_leaves()) != header.tx_root:
            raise InvalidProposalError(f"block {header.height}: tx_root does not match")
        if len(block.transactions) > parameters.block_transactions_max:
            raise InvalidProposalError(f"block {header.height} has too many transactions")
        if sum(len(tx.encoded) for tx in block.transactions) > parameters.block_bytes_max:
            raise InvalidProposalError(f"block {header.height} is too large")
        result = self.execute(
            state,
            block.transactions,
            height=header.height,
            timestamp_ms=header.timestamp_ms,
            proposer=header.proposer,
            directory=directory,
        )
        if result.rejected:
            transaction, rejection = result.rejected[0]
            raise InvalidProposalError(
                f"block {header.height}: transaction {transaction.tx_id.hex()} fails: "
                f"{rejection.code}: {rejection.reason}"
            )
        if result.members_hash != header.members_hash:
            raise InvalidProposalError(f"block {header.height}: members_hash does not match")
        if result.state_root != header.state_root:
            raise InvalidProposalError(f"block {header.height}: state_root does not match")
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
