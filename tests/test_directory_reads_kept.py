"""A node keeps what it read of signer keys and issuers from one height to the next, safely.

After each commit the node reads the directory in force (members, parameters; signer keys and
issuers on demand). When the block wrote nothing in the membership namespace (a block of acts),
what the previous directory read is still true, and the new one keeps it: a territory's
thousand issuers signing in turn are not read and decoded again at every height. A block that
changed anything in membership (a delegation here) starts from nothing, so no stale answer
survives it.
"""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path
from typing import Any

import pytest

import contracts.membership as membership
from contracts.base import Rejection
from contracts.registry import contract_refs
from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import Transaction
from node.runtime.application import ChainApplication
from node.runtime.mempool import Mempool
from node.tools.launch import engine_for, initialise_data_dir

MEMBERS = [("est", "Commune de l'Est"), ("ouest", "Commune de l'Ouest")]
NONCES = itertools.count(1)
APPLICATION_KEY = crypto.key_from_seed(hashlib.sha256(b"an application of est").digest())


@pytest.fixture
def consortium() -> LocalConsortium:
    return LocalConsortium.create(
        MEMBERS, seed=b"sceau directory reads", contracts=contract_refs(())
    )


@pytest.fixture
def application(tmp_path: Path, consortium: LocalConsortium) -> ChainApplication:
    store = initialise_data_dir(tmp_path / "data", consortium.genesis)
    return ChainApplication(store, engine_for(consortium.genesis), Mempool())


def transaction(
    consortium: LocalConsortium, key: Any, contract: str, action: str, args: dict[str, Any]
) -> Transaction:
    return Transaction.create(
        key,
        chain_id=consortium.chain_id,
        contract=contract,
        action=action,
        args=args,
        nonce=next(NONCES),
        expiry_height=1_000,
    )


def anchor(consortium: LocalConsortium, reference: str, key: Any) -> Transaction:
    return transaction(
        consortium,
        key,
        "deeds",
        "anchor",
        {
            "issuer": "est",
            "reference": reference,
            "kind": "deliberation",
            "digest": hashlib.sha256(reference.encode()).digest(),
            "act_date": "2026-11-29",
            "title": f"Délibération {reference}",
        },
    )


def commit_block(application: ChainApplication, consortium: LocalConsortium) -> None:
    tip = application.tip()
    block = application.propose(
        height=tip.height + 1, view=0, timestamp_ms=tip.timestamp_ms + 1, proposer="est"
    )
    application.commit(block, consortium.certify(block))


def test_after_a_block_of_acts_the_signer_keys_read_are_not_read_again(
    application: ChainApplication, consortium: LocalConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    application.submit(anchor(consortium, "D-1", consortium.keys["est"]))
    commit_block(application, consortium)  # writes deeds only
    reads: list[bytes] = []
    signer_key = membership.signer_key
    monkeypatch.setattr(membership, "signer_key", lambda key: reads.append(key) or signer_key(key))
    application.submit(anchor(consortium, "D-2", consortium.keys["est"]))
    assert reads == []  # est's key: known from the height before


def test_a_block_that_changes_membership_starts_from_nothing(
    application: ChainApplication, consortium: LocalConsortium
) -> None:
    """The application key signs for nobody; est delegates to it; from the next height it
    signs est's acts: the refusal remembered before the delegation does not survive it."""
    with pytest.raises(Rejection) as refused:
        application.submit(anchor(consortium, "D-3", APPLICATION_KEY))
    assert refused.value.code == "wrong_signer"
    delegate = transaction(
        consortium,
        consortium.keys["est"],
        "membership",
        "delegate",
        {
            "member_id": "est",
            "signer": crypto.public_key_bytes(APPLICATION_KEY),
            "roles": ["deeds.issue"],
            "expiry_height": None,
        },
    )
    application.submit(delegate)
    commit_block(application, consortium)
    assert application.store.transaction_location(delegate.tx_id) == (1, 0)
    assert application.submit(anchor(consortium, "D-4", APPLICATION_KEY))


def test_a_directory_keeps_at_most_a_bounded_number_of_reads(
    application: ChainApplication, consortium: LocalConsortium, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, store = application.engine, application.store
    before = engine.directory(store)
    for seed in range(3):
        before.delegations_for(bytes([seed]) * 32)
    kept = engine.directory(store)
    assert kept.keep_reads_of(before)
    monkeypatch.setattr(membership, "DIRECTORY_READS_KEPT_MAX", 2)
    assert not engine.directory(store).keep_reads_of(before)
    assert kept.delegations_for(bytes([1]) * 32) == ()
