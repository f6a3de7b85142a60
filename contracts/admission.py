"""Admission: the rules a transaction passes, at a mempool's door and again in every block.

Theory of operation
-------------------
Like ABCI's ``CheckTx``, one pipeline decides whether a transaction may be included at a given
height. It runs in this order, cheapest and most telling first:

1. **replay** (:func:`replay_of`): is the transaction already committed, or already earlier in
   the same place (pending in the mempool, or earlier in the block being executed)?
2. **expiry** (:func:`is_expired`): a transaction may be included at height ``h`` only while
   ``h <= expiry_height``. A mempool asks for the next height (tip + 1), a block for its own.
3. **size** (:func:`check_size`): the encoded transaction is within the consensus parameter
   ``transaction_bytes_max``.
4. **chain, contract, signature and the contract's own check**: :meth:`Engine.check
   <contracts.engine.Engine.check>`, stateless and the costliest step (an Ed25519
   verification), so it comes last. A mempool spends its own budget (count, bytes, per signer)
   between 3 and 4, so that a full pool does not verify signatures it would refuse anyway.

Then the engine applies the transaction (a dry run at the door, the block's execution later).

The node's door (:meth:`node.runtime.application.ChainApplication.submit`) runs 1–3 through
:func:`screen`, where a replay is no error (the transaction is simply known: the submission
returns False); a block runs 1–4 through :func:`admit_to_block`, where a replay is the
rejection ``replayed_transaction``. Each rule is written here once; the rejection codes are the
API's problem codes (docs/api.md) and never change.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Container
from typing import Protocol

from contracts.base import Rejection
from ledger.model import ConsensusParameters, Transaction

__all__ = [
    "CommittedTransactions",
    "Replay",
    "admit_to_block",
    "check_expiry",
    "check_size",
    "is_expired",
    "replay_of",
    "screen",
]


class CommittedTransactions(Protocol):
    """The one read replay needs from the committed chain (ChainStore, MemoryState, …)."""

    def transaction_location(self, tx_id: bytes) -> tuple[int, int] | None: ...


class Replay(enum.Enum):
    """Where a transaction was already seen (the value is the rejection's reason in a block)."""

    EARLIER = "the transaction is already in this block"
    """Earlier in the same place: pending in the mempool, or earlier in the block."""
    COMMITTED = "the transaction is already in the chain"


def replay_of(
    transaction: Transaction, committed: CommittedTransactions, earlier: Container[bytes]
) -> Replay | None:
    """Where ``transaction`` was already seen, or None if it is new (rule 1)."""
    if transaction.tx_id in earlier:
        return Replay.EARLIER
    if committed.transaction_location(transaction.tx_id) is not None:
        return Replay.COMMITTED
    return None


def is_expired(transaction: Transaction, height: int) -> bool:
    """True when ``transaction`` may no longer be included in block ``height`` (rule 2)."""
    return transaction.expiry_height < height


def check_expiry(transaction: Transaction, height: int) -> None:
    """Raise ``expired_transaction`` if ``transaction`` cannot be included at ``height``."""
    if is_expired(transaction, height):
        raise Rejection("expired_transaction", "expiry_height is already past")


def check_size(transaction: Transaction, parameters: ConsensusParameters) -> None:
    """Raise ``transaction_too_large`` over the parameter ``transaction_bytes_max`` (rule 3)."""
    size = len(transaction.encoded)
    if size > parameters.transaction_bytes_max:
        raise Rejection(
            "transaction_too_large", f"{size} bytes, over {parameters.transaction_bytes_max}"
        )


def screen(
    transaction: Transaction,
    *,
    committed: CommittedTransactions,
    earlier: Container[bytes],
    height: int,
    parameters: ConsensusParameters,
) -> Replay | None:
    """Rules 1–3 for inclusion at ``height``: the replay found (no error), or None if new.

    Raises :class:`~contracts.base.Rejection` (``expired_transaction``,
    ``transaction_too_large``) for a new transaction that fails rule 2 or 3.
    """
    replay = replay_of(transaction, committed, earlier)
    if replay is not None:
        return replay
    check_expiry(transaction, height)
    check_size(transaction, parameters)
    return None


def admit_to_block(
    transaction: Transaction,
    *,
    committed: CommittedTransactions,
    earlier: Container[bytes],
    height: int,
    parameters: ConsensusParameters,
    check: Callable[[Transaction], None],
) -> None:
    """Rules 1–4 for a transaction of block ``height``; raises Rejection if it may not be in it.

    ``earlier`` holds the ids of the transactions before it in the block; ``check`` is the
    engine's stateless check (:meth:`contracts.engine.Engine.check`).
    """
    replay = screen(
        transaction, committed=committed, earlier=earlier, height=height, parameters=parameters
    )
    if replay is not None:
        raise Rejection("replayed_transaction", replay.value)
    check(transaction)
