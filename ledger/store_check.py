"""The full check of a node's chain store: what ``sceau node check`` runs.

Theory of operation
-------------------
Opening a store checks only what a restart builds on, in a bounded time (ledger/store.py).
This check reads **everything**, to confirm a store after an incident (a disk error, a crash
of the machine, a restore) or before exporting from it, and names the first height that fails:

1. every block from 1 to the tip reads back verified (hash, height, transaction root), links
   to its parent, and its timestamps rise;
2. every commit certificate certifies its block for the member set in force at its height —
   the genesis set, then the set the state holds after each block that changed it, checked
   against the headers' ``members_hash`` (so certificate signatures are checked from the
   genesis on, as an auditor would, without re-executing the blocks);
3. the indexes: each block's hash and each transaction's location point back at it, the
   member-set change markers match the headers, and no index holds an entry of its own;
4. each block's state root has its tree node, and the tip's whole state tree reads back
   (every node hashed again) and holds exactly what the value index holds.

It does not re-execute transactions (``sceau audit`` does, on an exported bundle). Its cost is
linear in the chain: a few hundred blocks per second on the development VM
(docs/operations.md). Every error is reported, never raised: a damaged store is what it looks for.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from ledger import encoding
from ledger.audit import certificate_failures
from ledger.model import Member, ModelDecodeError, members_hash
from ledger.namespace import MEMBERS_STATE_KEY
from ledger.state import key_path, value_hash
from ledger.store import ChainStore, StoreError

__all__ = ["MEMBERS_STATE_KEY", "StoreCheckReport", "check_store"]


@dataclass(frozen=True, slots=True)
class StoreCheckReport:
    """What the check found: ``failure`` is None when everything held."""

    blocks: int
    transactions: int
    state_entries: int
    seconds: float
    failure: str | None = None
    failure_height: int | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


class _Failed(Exception):
    def __init__(self, message: str, height: int | None = None) -> None:
        super().__init__(message)
        self.height = height


def check_store(
    store: ChainStore, *, progress: Callable[[int, int], None] | None = None
) -> StoreCheckReport:
    """Check ``store`` whole (see the module doc); ``progress(height, tip)`` after each block."""
    started = time.monotonic()
    counts = {"blocks": 0, "transactions": 0, "state": 0}
    try:
        try:
            _check_blocks(store, counts, progress)
            _check_indexes(store, counts)
            _check_state(store, counts)
        except StoreError as error:
            raise _Failed(str(error), getattr(error, "height", None)) from None
    except _Failed as failed:
        return StoreCheckReport(
            blocks=counts["blocks"],
            transactions=counts["transactions"],
            state_entries=counts["state"],
            seconds=time.monotonic() - started,
            failure=str(failed),
            failure_height=failed.height,
        )
    return StoreCheckReport(
        blocks=counts["blocks"],
        transactions=counts["transactions"],
        state_entries=counts["state"],
        seconds=time.monotonic() - started,
    )


def _members_at(store: ChainStore, state_root: bytes, height: int) -> tuple[Member, ...]:
    value = store.state_get_at(MEMBERS_STATE_KEY, state_root)
    if value is None:
        raise _Failed("the state holds no member set", height)
    try:
        return tuple(Member.from_canonical(entry) for entry in encoding.unpack(value))
    except (encoding.EncodingError, ModelDecodeError, TypeError) as error:
        raise _Failed(f"the member set in the state does not decode: {error}", height) from None


def _check_blocks(
    store: ChainStore, counts: dict[str, int], progress: Callable[[int, int], None] | None
) -> None:
    chain_id, tip = store.chain_id, store.tip
    members = tuple(store.genesis.members)
    previous_hash, previous_time = chain_id, store.genesis.created_at_ms
    previous_members_hash = members_hash(members)
    previous_state_root = None
    changes = set(store.member_set_changes())
    for height in range(1, tip.height + 1):
        block = store.block(height)
        assert block is not None
        header = block.header
        if header.prev_hash != previous_hash:
            raise _Failed("prev_hash is not the previous block's hash", height)
        if header.chain_id != chain_id:
            raise _Failed("chain_id of another chain", height)
        if header.timestamp_ms <= previous_time:
            raise _Failed("timestamp_ms is not after its parent's", height)
        changed = header.members_hash != previous_members_hash
        if changed:
            if previous_state_root is None:
                raise _Failed("members_hash is not the genesis member set's", height)
            members = _members_at(store, previous_state_root, height)
        if header.members_hash != members_hash(members):
            raise _Failed("members_hash is not the hash of the member set in force", height)
        if changed != (height in changes):
            raise _Failed("the member-set change index disagrees with the header", height)
        certificate = store.certificate(height)
        assert certificate is not None
        problems = certificate_failures(certificate, header, members, chain_id)
        if problems:
            field, detail = problems[0]
            raise _Failed(f"{field}: {detail}", height)
        if store.block_by_hash(block.block_hash) is None:
            raise _Failed("the hash index has no entry for the block", height)
        for position, transaction in enumerate(block.transactions):
            if store.transaction_location(transaction.tx_id) != (height, position):
                raise _Failed(f"the transaction index misplaces transaction {position}", height)
        store.state_prove(MEMBERS_STATE_KEY, header.state_root)  # its root node, and a path
        previous_hash, previous_time = block.block_hash, header.timestamp_ms
        previous_members_hash, previous_state_root = header.members_hash, header.state_root
        counts["blocks"] += 1
        counts["transactions"] += len(block.transactions)
        if progress is not None:
            progress(height, tip.height)
    if previous_hash != tip.block_hash:
        raise _Failed("the tip record names another block", tip.height)


def _check_indexes(store: ChainStore, counts: dict[str, int]) -> None:
    sizes = store.index_sizes()
    if sizes["hash"] != counts["blocks"]:
        raise _Failed(f"the hash index holds {sizes['hash']} entries for {counts['blocks']} blocks")
    if sizes["transaction"] != counts["transactions"]:
        raise _Failed(
            f"the transaction index holds {sizes['transaction']} entries for "
            f"{counts['transactions']} transactions"
        )
    if sizes["block"] != counts["blocks"] or sizes["certificate"] != counts["blocks"]:
        raise _Failed("blocks or certificates are stored above the tip")


def _check_state(store: ChainStore, counts: dict[str, int]) -> None:
    """The tip's whole tree, node by node, against the value index."""
    indexed = {key_path(key): value_hash(value) for key, value in store.state_items(b"")}
    for path, value in store.state_leaves():
        if indexed.pop(path, None) != value_hash(value):
            raise _Failed(
                f"the value index disagrees with the state tree at key path {path.hex()[:16]}…",
                store.height,
            )
        counts["state"] += 1
    if indexed:
        raise _Failed(
            f"the value index holds {len(indexed)} entries the state tree does not", store.height
        )
