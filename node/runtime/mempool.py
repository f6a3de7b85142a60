"""The mempool: signed transactions waiting to be ordered, bounded in every dimension.

A transaction enters through the node's door (``ChainApplication.submit``), which runs the
admission pipeline of :mod:`contracts.admission` once (replay, expiry, size, then
:meth:`Mempool.check_room` here, then signature and the contract's check, or a dry run); it is
then kept until a block commits it, its expiry height passes, or the primary's execution
rejects it. The pool itself only holds and bounds: in count, in bytes and per signer, so that
no client can fill it alone.

Transactions enter from the client API and from peers' gossip alike; the node gossips what
it accepted from clients to every member, so that any primary can include it after a view
change.

The pool also remembers, for a while (a bounded record), why recent transactions were
rejected, so a client asking about its transaction gets the reason.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass

from contracts import admission
from contracts.base import Rejection
from ledger.model import Transaction

__all__ = ["Mempool", "MempoolLimits"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MempoolLimits:
    transactions_max: int = 20_000
    bytes_max: int = 64 * 1024 * 1024
    per_signer_max: int = 2_000
    rejections_remembered_max: int = 20_000


class Mempool:
    """Pending transactions in arrival order (see the module doc)."""

    def __init__(self, limits: MempoolLimits | None = None) -> None:
        self.limits = limits or MempoolLimits()
        self._pending: dict[bytes, Transaction] = {}
        self._admitted_height: dict[bytes, int] = {}
        self._per_signer: collections.Counter[bytes] = collections.Counter()
        self._bytes = 0
        self._rejections: collections.OrderedDict[bytes, Rejection] = collections.OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, tx_id: object) -> bool:
        return tx_id in self._pending

    @property
    def size_bytes(self) -> int:
        return self._bytes

    def check_room(self, transaction: Transaction) -> None:
        """Raise a Rejection if the pool has no room for ``transaction`` (the door's budget).

        Codes: ``mempool_full`` (count or bytes), ``signer_quota`` (too many from its signer).
        Runs before the costly checks, so that a full pool verifies no signature.
        """
        if len(self._pending) >= self.limits.transactions_max or (
            self._bytes + len(transaction.encoded) > self.limits.bytes_max
        ):
            raise Rejection("mempool_full", "the node's mempool is full; retry later")
        if self._per_signer[transaction.signer] >= self.limits.per_signer_max:
            raise Rejection("signer_quota", "too many pending transactions from this signer")

    def add(self, transaction: Transaction, *, height: int) -> None:
        """Hold an admitted ``transaction`` (admitted at tip ``height``) until it is ordered.

        The caller has run the admission pipeline and :meth:`check_room` just before.
        """
        tx_id = transaction.tx_id
        assert tx_id not in self._pending, "admission lets no pending transaction in twice"
        self._pending[tx_id] = transaction
        self._admitted_height[tx_id] = height
        self._per_signer[transaction.signer] += 1
        self._bytes += len(transaction.encoded)

    def candidates(self) -> list[Transaction]:
        """Pending transactions in arrival order (the primary executes a prefix of them)."""
        return list(self._pending.values())

    def pending(self, tx_id: bytes) -> Transaction | None:
        """The pending transaction ``tx_id``, if it is pending."""
        return self._pending.get(tx_id)

    def admitted_before(self, height: int, limit: int) -> list[Transaction]:
        """Up to ``limit`` pending transactions admitted at tip ``height`` or earlier."""
        older = []
        for tx_id, transaction in self._pending.items():
            if self._admitted_height[tx_id] <= height:
                older.append(transaction)
                if len(older) >= limit:
                    break
        return older

    def remove(self, tx_ids: Iterable[bytes]) -> None:
        """Forget transactions (committed, or rejected by execution)."""
        for tx_id in tx_ids:
            transaction = self._pending.pop(tx_id, None)
            if transaction is None:
                continue
            self._admitted_height.pop(tx_id, None)
            self._bytes -= len(transaction.encoded)
            self._per_signer[transaction.signer] -= 1
            if self._per_signer[transaction.signer] <= 0:
                del self._per_signer[transaction.signer]

    def drop_expired(self, next_height: int) -> list[bytes]:
        """Drop transactions that can no longer be included at ``next_height``."""
        expired = [
            tx_id
            for tx_id, transaction in self._pending.items()
            if admission.is_expired(transaction, next_height)
        ]
        self.remove(expired)
        for tx_id in expired:
            self.remember_rejection(
                tx_id, Rejection("expired_transaction", "expired before it was included")
            )
        return expired

    def remember_rejection(self, tx_id: bytes, rejection: Rejection) -> None:
        self._rejections[tx_id] = rejection
        self._rejections.move_to_end(tx_id)
        while len(self._rejections) > self.limits.rejections_remembered_max:
            self._rejections.popitem(last=False)

    def rejection(self, tx_id: bytes) -> Rejection | None:
        """Why a recent transaction was refused, if it was."""
        return self._rejections.get(tx_id)
