"""The admission pipeline's rules (contracts.admission), each written once.

The mempool's door and every block run these same functions; the node-level tests
(test_node_application.py) and the engine's (test_engine.py) check that both use them.
"""

from __future__ import annotations

import itertools

import pytest

from contracts.admission import (
    Replay,
    admit_to_block,
    is_expired,
    replay_of,
    screen,
)
from contracts.base import Rejection
from ledger.devchain import LocalConsortium
from ledger.memstate import MemoryState
from ledger.model import ConsensusParameters, Transaction

CONSORTIUM = LocalConsortium.create([("est", "Commune de l'Est")], seed=b"test_admission")
PARAMETERS = ConsensusParameters(transaction_bytes_max=512)
NONCES = itertools.count(1)


def note(*, expiry_height: int = 100, text: str = "x") -> Transaction:
    return Transaction.create(
        CONSORTIUM.keys["est"],
        chain_id=CONSORTIUM.chain_id,
        contract="notes",
        action="write",
        args={"text": text},
        nonce=next(NONCES),
        expiry_height=expiry_height,
    )


def committed_with(*transactions: Transaction) -> MemoryState:
    state = MemoryState()
    state.commit({}, [transaction.tx_id for transaction in transactions])
    return state


def refuse(transaction: Transaction) -> None:
    raise Rejection("bad_signature", "refused by the stateless check")


def test_a_transaction_may_be_included_up_to_its_expiry_height_and_not_after() -> None:
    transaction = note(expiry_height=7)
    assert not is_expired(transaction, 7)
    assert is_expired(transaction, 8)


def test_replay_finds_an_earlier_transaction_before_a_committed_one() -> None:
    transaction = note()
    assert replay_of(transaction, committed_with(), set()) is None
    assert replay_of(transaction, committed_with(transaction), set()) is Replay.COMMITTED
    assert replay_of(transaction, committed_with(transaction), {transaction.tx_id}) is (
        Replay.EARLIER
    )


def test_screen_reports_a_known_transaction_before_judging_its_expiry() -> None:
    # A client resubmitting a committed transaction after its expiry hears "known", not
    # "expired": replay comes first.
    old = note(expiry_height=3)
    state = committed_with(old)
    assert (
        screen(old, committed=state, earlier=(), height=10, parameters=PARAMETERS)
        is Replay.COMMITTED
    )


@pytest.mark.parametrize(
    ("transaction", "height", "code"),
    [
        (note(expiry_height=4), 5, "expired_transaction"),
        (note(text="x" * 600), 5, "transaction_too_large"),
    ],
    ids=["expired", "too large"],
)
def test_screen_refuses_a_new_transaction_that_breaks_a_rule(
    transaction: Transaction, height: int, code: str
) -> None:
    with pytest.raises(Rejection) as refused:
        screen(
            transaction,
            committed=committed_with(),
            earlier=(),
            height=height,
            parameters=PARAMETERS,
        )
    assert refused.value.code == code


def admit(transaction: Transaction, state: MemoryState, check=refuse) -> None:
    admit_to_block(
        transaction, committed=state, earlier=(), height=1, parameters=PARAMETERS, check=check
    )


def test_in_a_block_a_replay_is_a_rejection_and_the_stateless_check_runs_last() -> None:
    transaction = note()
    checked: list[Transaction] = []

    with pytest.raises(Rejection) as refused:
        admit(transaction, committed_with(transaction), check=checked.append)
    assert (refused.value.code, refused.value.reason) == (
        "replayed_transaction",
        "the transaction is already in the chain",
    )
    assert checked == []

    admit(transaction, committed_with(), check=checked.append)
    assert checked == [transaction]
    with pytest.raises(Rejection, match="refused by the stateless check"):
        admit(transaction, committed_with())
