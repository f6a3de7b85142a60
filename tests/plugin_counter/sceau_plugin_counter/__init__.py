"""A counter contract shipped as its own pip package, the way a third party ships one.

State (namespace ``counter/``): ``total``, the canonical integer sum of every ``add``.
"""

from __future__ import annotations

from typing import Any

from contracts.base import (
    BlockContext,
    Contract,
    Rejection,
    StateView,
    decode_record,
    encode_record,
)
from ledger.model import Transaction

__all__ = ["CounterContract"]

TOTAL_KEY = b"total"
AMOUNT_MAX = 1000


class CounterContract(Contract):
    """One action, ``add {"amount": int in 1..1000}``, that adds to a running total."""

    name = "counter"
    version = "0.1"

    def check(self, transaction: Transaction) -> None:
        if transaction.action != "add":
            raise Rejection("unknown_action", f"counter has no action {transaction.action!r}")
        amount = transaction.args.get("amount")
        if set(transaction.args) != {"amount"} or type(amount) is not int:
            raise Rejection("invalid_arguments", 'add takes {"amount": int}')
        if not 1 <= amount <= AMOUNT_MAX:
            raise Rejection("invalid_arguments", f"amount must be in 1..{AMOUNT_MAX}")

    def apply(self, transaction: Transaction, state: StateView, context: BlockContext) -> Any:
        record = state.get(TOTAL_KEY)
        total = (0 if record is None else decode_record(record)) + transaction.args["amount"]
        state.put(TOTAL_KEY, encode_record(total))
        return {"total": total}
