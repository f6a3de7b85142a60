"""The node's application (``node.runtime.application.ChainApplication``) over a real LevelDB store.

Admission at the door (the rules of contracts.admission, each check run once), with and
without a dry run, the settling of pending transactions that fail, and the
reuse of a proposal's state update when its block is appended.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import pytest

from contracts.base import Rejection
from contracts.deeds import act_key
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Transaction
from node.runtime.application import ChainApplication
from node.runtime.mempool import Mempool
from node.tools.launch import engine_for, initialise_data_dir

MEMBERS = [("est", "Commune de l'Est"), ("ouest", "Commune de l'Ouest")]
CONTRACTS = [
    ContractRef(name="membership", version="1.0"),
    ContractRef(name="deeds", version="1.0"),
]
NONCES = itertools.count(1)


@pytest.fixture
def consortium() -> LocalConsortium:
    return LocalConsortium.create(MEMBERS, seed=b"sceau application tests", contracts=CONTRACTS)


@pytest.fixture
def application(tmp_path: Path, consortium: LocalConsortium) -> ChainApplication:
    store = initialise_data_dir(tmp_path / "data", consortium.genesis)
    engine = engine_for(consortium.genesis)
    return ChainApplication(store, engine, Mempool())


def _anchor(
    consortium: LocalConsortium, reference: str, *, expiry_height: int = 1_000, **arguments: Any
) -> Transaction:
    return Transaction.create(
        consortium.keys["est"],
        chain_id=consortium.chain_id,
        contract="deeds",
        action="anchor",
        args={
            "issuer": "est",
            "reference": reference,
            "kind": "deliberation",
            "digest": hashlib.sha256(reference.encode()).digest(),
            "act_date": "2026-11-29",
            "title": f"Délibération {reference}",
            **arguments,
        },
        nonce=next(NONCES),
        expiry_height=expiry_height,
    )


def _commit_one(application: ChainApplication, consortium: LocalConsortium) -> None:
    tip = application.tip()
    block = application.propose(
        height=tip.height + 1, view=0, timestamp_ms=tip.timestamp_ms + 1, proposer="est"
    )
    application.commit(block, consortium.certify(block))


def test_a_dry_run_at_admission_refuses_what_cannot_apply_now(
    application: ChainApplication, consortium: LocalConsortium
) -> None:
    application.submit(_anchor(consortium, "D-1"))
    _commit_one(application, consortium)
    again = _anchor(consortium, "D-1", title="Même référence, autre transaction")
    with pytest.raises(Rejection) as refused:
        application.submit(again)
    assert refused.value.code == "duplicate_reference"
    assert again.tx_id not in application.mempool
    assert application.mempool.rejection(again.tx_id) is refused.value


def test_without_a_dry_run_a_failing_transaction_waits_until_it_is_settled(
    application: ChainApplication, consortium: LocalConsortium
) -> None:
    application.submit(_anchor(consortium, "D-2"))
    _commit_one(application, consortium)
    failing = _anchor(consortium, "D-2", title="Déjà ancrée")
    fine = _anchor(consortium, "D-3")
    assert application.submit(failing, dry_run=False)
    assert application.submit(fine, dry_run=False)
    assert failing.tx_id in application.mempool  # admitted on its signature and checks only

    assert application.revalidate_when_idle() == 1
    assert failing.tx_id not in application.mempool
    assert application.mempool.rejection(failing.tx_id).code == "duplicate_reference"
    assert fine.tx_id in application.mempool
    assert application.revalidate_when_idle() == 0


def test_stateless_checks_still_run_without_a_dry_run(
    application: ChainApplication, consortium: LocalConsortium
) -> None:
    bad = _anchor(consortium, "D-4", kind="not-a-kind")
    with pytest.raises(Rejection) as refused:
        application.submit(bad, dry_run=False)
    assert refused.value.code == "invalid_arguments"
    assert bad.tx_id not in application.mempool


def test_a_transaction_admitted_without_a_dry_run_commits(
    application: ChainApplication, consortium: LocalConsortium
) -> None:
    transaction = _anchor(consortium, "D-5")
    application.submit(transaction, dry_run=False)
    _commit_one(application, consortium)
    assert application.store.transaction_location(transaction.tx_id) == (1, 0)
    assert application.revalidate_when_idle() == 0
    assert len(application.mempool) == 0


def test_appending_a_proposed_block_reuses_its_state_update(
    application: ChainApplication, consortium: LocalConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    application.submit(_anchor(consortium, "D-6"))
    tip = application.tip()
    block = application.propose(
        height=tip.height + 1, view=0, timestamp_ms=tip.timestamp_ms + 1, proposer="est"
    )
    store = application.store
    updates = []
    original = store._tree.update
    monkeypatch.setattr(store._tree, "update", lambda *a: updates.append(a) or original(*a))
    application.commit(block, consortium.certify(block))
    assert updates == []  # the proposal's update was kept, not computed again
    assert store.tip.state_root == block.header.state_root
    assert store.state_get(b"deeds/" + act_key("est", "D-6")) is not None


def test_a_pending_transaction_made_invalid_by_a_commit_leaves_the_mempool(
    tmp_path: Path, application: ChainApplication, consortium: LocalConsortium
) -> None:
    # Two members: the first proposes a block with one anchoring, the second holds a rival
    # anchoring of the same reference, submitted to it alone (valid on its tip when it came).
    store = initialise_data_dir(tmp_path / "other", consortium.genesis)
    engine = engine_for(consortium.genesis)
    other = ChainApplication(store, engine, Mempool())
    first = _anchor(consortium, "D-7")
    rival = _anchor(consortium, "D-7", title="Soumise à un autre membre")
    application.submit(first)
    other.submit(rival)
    tip = application.tip()
    block = application.propose(
        height=tip.height + 1, view=0, timestamp_ms=tip.timestamp_ms + 1, proposer="est"
    )
    assert other.validate(block) is None

    other.commit(block, consortium.certify(block))  # the rival now fails: it must go

    assert rival.tx_id not in other.mempool
    assert other.mempool.rejection(rival.tx_id).code == "duplicate_reference"


def test_a_submission_runs_the_stateless_checks_once(
    application: ChainApplication, consortium: LocalConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Signature and the contract's check run once per submission, dry run or not: the door
    # does not check what the dry run checks again.
    checked: list[Transaction] = []
    check = application.engine.check
    monkeypatch.setattr(application.engine, "check", lambda tx: checked.append(tx) or check(tx))
    dry_run, gossiped = _anchor(consortium, "D-8"), _anchor(consortium, "D-9")

    assert application.submit(dry_run)
    assert application.submit(gossiped, dry_run=False)

    assert checked == [dry_run, gossiped]


def test_the_door_admits_a_transaction_up_to_its_expiry_height_as_a_block_does(
    application: ChainApplication, consortium: LocalConsortium
) -> None:
    _commit_one(application, consortium)  # the tip is block 1: the next block is 2
    too_late = _anchor(consortium, "D-10", expiry_height=1)
    last_chance = _anchor(consortium, "D-11", expiry_height=2)

    with pytest.raises(Rejection) as refused:
        application.submit(too_late)
    assert refused.value.code == "expired_transaction"
    assert application.submit(last_chance)

    _commit_one(application, consortium)
    assert application.store.transaction_location(last_chance.tx_id) == (2, 0)


def test_a_known_transaction_is_reported_known_not_refused(
    application: ChainApplication, consortium: LocalConsortium
) -> None:
    transaction = _anchor(consortium, "D-12", expiry_height=1)
    assert application.submit(transaction)
    assert not application.submit(transaction)  # pending
    _commit_one(application, consortium)
    assert not application.submit(transaction)  # committed, and past its expiry since
