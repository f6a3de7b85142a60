"""A small, real application for the simulator: signed transactions and a member set.

The simulator must exercise the replica with the same kinds of blocks a node produces, without
the contract layer (``consensus/`` imports only ``ledger``). This application keeps:

* a chain of committed blocks with their certificates (the replica's "durable store": it
  survives a simulated crash);
* a :class:`~ledger.memstate.MemoryState` whose state root goes in every header;
* a mempool of signed :class:`~ledger.model.Transaction` objects.

A transaction is valid if it is signed for this chain, not yet committed and not expired. Its
effect is to record its tx_id in the state (``sim/<tx_id>``). A transaction of contract
``members`` and action ``set`` replaces the member set (``args["members"]``: canonical
members), which takes effect at the next height — enough for the member-set change scenarios.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from consensus.application import ChainTip
from ledger import crypto, encoding, merkle
from ledger.memstate import MemoryState
from ledger.model import (
    Block,
    BlockHeader,
    CommitCertificate,
    Genesis,
    Member,
    ModelDecodeError,
    Transaction,
    members_hash,
)

__all__ = ["SimulatedApplication", "certified_chain", "note_transaction"]

MEMBERS_KEY = b"sim-members"
BLOCK_TRANSACTIONS_MAX = 16


def transaction_key(tx_id: bytes) -> bytes:
    return b"sim/" + tx_id


@dataclass(slots=True)
class _Execution:
    accepted: list[Transaction]
    writes: dict[bytes, bytes | None]
    state_root: bytes
    rejected: list[Transaction]


@dataclass(slots=True)
class SimulatedApplication:
    """The application of one simulated member (see the module doc)."""

    genesis: Genesis
    chain: list[tuple[Block, CommitCertificate]] = field(default_factory=list)
    mempool: dict[bytes, Transaction] = field(default_factory=dict)
    state: MemoryState = field(default_factory=MemoryState)
    _members: tuple[Member, ...] = ()
    _executions: dict[bytes, _Execution] = field(default_factory=dict)

    def __post_init__(self) -> None:
        members = [member.to_canonical() for member in self.genesis.members]
        self.state = MemoryState({MEMBERS_KEY: encoding.pack(members)})
        self._members = self.genesis.members
        chain, self.chain = self.chain, []
        for block, certificate in chain:
            assert self.validate(block) is None, "a stored chain must replay"
            self.append(block, certificate)

    # --- the Application interface ------------------------------------------------------------

    def tip(self) -> ChainTip:
        if not self.chain:
            return ChainTip(0, self.genesis.chain_id, self.genesis.created_at_ms, 0)
        block, certificate = self.chain[-1]
        return ChainTip(block.height, block.block_hash, block.header.timestamp_ms, certificate.view)

    def members(self) -> tuple[Member, ...]:
        return self._members

    def has_pending_transactions(self) -> bool:
        return bool(self.mempool)

    def propose(self, *, height: int, view: int, timestamp_ms: int, proposer: str) -> Block:
        candidates = sorted(self.mempool.values(), key=lambda tx: tx.tx_id)
        execution = self._execute(candidates, height, limit=BLOCK_TRANSACTIONS_MAX)
        for transaction in execution.rejected:  # it will never apply: forget it
            self.mempool.pop(transaction.tx_id, None)
        header = BlockHeader(
            chain_id=self.genesis.chain_id,
            height=height,
            prev_hash=self.tip().block_hash,
            timestamp_ms=timestamp_ms,
            proposer=proposer,
            view=view,
            tx_count=len(execution.accepted),
            tx_root=merkle.root([tx.encoded for tx in execution.accepted]),
            state_root=execution.state_root,
            members_hash=members_hash(self._members),
        )
        block = Block(header=header, transactions=tuple(execution.accepted))
        self._executions[block.block_hash] = execution
        return block

    def validate(self, block: Block) -> str | None:
        header = block.header
        if header.height != self.tip().height + 1:
            return "does not extend the tip"
        if merkle.root(block.transaction_leaves()) != header.tx_root:
            return "tx_root does not match the transactions"
        if header.members_hash != members_hash(self._members):
            return "members_hash does not match"
        if len(block.transactions) > BLOCK_TRANSACTIONS_MAX:
            return "too many transactions"
        execution = self._execute(list(block.transactions), header.height, limit=None)
        if len(execution.accepted) != len(block.transactions):
            return "holds an invalid transaction"
        if execution.state_root != header.state_root:
            return "state_root does not match"
        self._executions[block.block_hash] = execution
        return None

    def committed_block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        if 1 <= height <= len(self.chain):
            return self.chain[height - 1]
        return None

    # --- what the driver calls ----------------------------------------------------------------

    def append(self, block: Block, certificate: CommitCertificate) -> None:
        """Commit a block the replica certified (the CommitBlock action)."""
        execution = self._executions.pop(block.block_hash, None)
        if execution is None:
            assert self.validate(block) is None, "a certified block must be valid"
            execution = self._executions.pop(block.block_hash)
        assert block.height == self.tip().height + 1
        self.state.commit(execution.writes, [tx.tx_id for tx in block.transactions])
        assert self.state.state_root == block.header.state_root
        self.chain.append((block, certificate))
        self._executions.clear()
        for transaction in block.transactions:
            self.mempool.pop(transaction.tx_id, None)
        members_record = self.state.state_get(MEMBERS_KEY)
        assert members_record is not None
        self._members = tuple(Member.from_canonical(m) for m in encoding.unpack(members_record))
        height = block.height
        for tx_id in [tx_id for tx_id, tx in self.mempool.items() if tx.expiry_height <= height]:
            del self.mempool[tx_id]

    def submit(self, transaction: Transaction) -> bool:
        """A transaction arrives in this member's mempool; False if it is not acceptable."""
        if transaction.tx_id in self.mempool or self.state.transaction_location(transaction.tx_id):
            return False
        if transaction.chain_id != self.genesis.chain_id or not transaction.signature_is_valid():
            return False
        self.mempool[transaction.tx_id] = transaction
        return True

    # --- execution ----------------------------------------------------------------------------

    def _execute(
        self, transactions: Sequence[Transaction], height: int, *, limit: int | None
    ) -> _Execution:
        accepted: list[Transaction] = []
        rejected: list[Transaction] = []
        writes: dict[bytes, bytes | None] = {}
        for transaction in transactions:
            if limit is not None and len(accepted) >= limit:
                break
            key = transaction_key(transaction.tx_id)
            if (
                transaction.chain_id != self.genesis.chain_id
                or transaction.expiry_height < height
                or key in writes
                or self.state.transaction_location(transaction.tx_id) is not None
                or not transaction.signature_is_valid()
            ):
                rejected.append(transaction)
                continue
            if transaction.contract == "members":
                members = _member_set(transaction)
                if members is None:
                    rejected.append(transaction)
                    continue
                writes[MEMBERS_KEY] = encoding.pack([m.to_canonical() for m in members])
            writes[key] = b"1"
            accepted.append(transaction)
        return _Execution(accepted, writes, self.state.preview_state_root(writes), rejected)


def _member_set(transaction: Transaction) -> tuple[Member, ...] | None:
    if transaction.action != "set" or not isinstance(transaction.args.get("members"), list):
        return None
    try:
        members = tuple(Member.from_canonical(entry) for entry in transaction.args["members"])
    except ModelDecodeError:
        return None
    if len(members) < 4 or len({m.id for m in members}) != len(members):
        return None
    return members


def note_transaction(key: crypto.PrivateKey, chain_id: bytes, nonce: int) -> Transaction:
    """A valid client transaction for this application (its effect: its id in the state)."""
    return Transaction.create(
        key,
        chain_id=chain_id,
        contract="sim",
        action="note",
        args={"n": nonce},
        nonce=nonce,
        expiry_height=10_000,
    )


def certified_chain(
    genesis: Genesis,
    client_key: crypto.PrivateKey,
    certify: Callable[[Block], CommitCertificate],
    length: int,
) -> tuple[tuple[Block, CommitCertificate], ...]:
    """``length`` blocks of one note each, proposed by the first member in view 0, with the
    certificates ``certify`` gives them (for tests that start a replica past the genesis)."""
    app = SimulatedApplication(genesis)
    chain = []
    for height in range(1, length + 1):
        app.submit(note_transaction(client_key, genesis.chain_id, height))
        block = app.propose(
            height=height,
            view=0,
            timestamp_ms=genesis.created_at_ms + height,
            proposer=genesis.members[0].id,
        )
        certificate = certify(block)
        app.append(block, certificate)
        chain.append((block, certificate))
    return tuple(chain)
