"""Specification: a receipt proves the signer's right to sign its act, at the act's height.

An act is issued for a *principal* (the deeds ``anchor`` names its ``issuer``). A member's node
key is proven by the member sets the receipt follows already; any other key needs the state
that authorized the block — the state after block h − 1 — and the receipt carries it: block
h − 1's header (named by the certified header's ``prev_hash``) and state proofs under its
``state_root`` of the issuer's record and of the signer key's delegations
(``SignerAuthority``, docs/format.md §7.10).

Every receipt here comes from a real chain: the real engine (membership 1.1, deeds 1.0) over a
real LevelDB store, every block certified by a quorum of the four members::

    height 1  an act of metropole-valbrune signed with its node key; metropole delegates
              deeds.issue to its records system; ville delegates it to an app until height 3
    height 2  saint-amand (with a SIRET) and hautmont (without) admitted as issuers; an act of
              metropole signed by its records system; an act of ville signed by its app
    height 3  an act of saint-amand signed with its own key; saint-amand delegates deeds.issue
              to its records system; an act of hautmont signed with its own key
    height 4  an act of saint-amand signed by its records system; hautmont suspended
    height 5  an act of metropole-valbrune signed with its node key; saint-leger moves its
              node (a new endpoint: a member-set change, in force at 6)
    height 6  an act of metropole signed by its records system

Then receipts are tampered with, and a colluding quorum certifies a rewritten block 5 that
holds what the contracts refuse (an act of the suspended hautmont, an act of ville's expired
app): each receipt must be refused at the ``signer`` step, naming what is wrong.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_receipt import (
    ANCHORS,
    MEMBERS,
    METROPOLE,
    SAINT_LEGER,
    VILLE,
    Chain,
    forged_certificate,
)

from contracts.engine import Engine
from contracts.registry import load_contracts
from ledger import crypto, encoding, merkle
from ledger.devchain import LocalConsortium
from ledger.model import Block, CommitCertificate, ContractRef, Issuer, Transaction, sha256
from ledger.namespace import issuer_state_key, signer_state_key
from ledger.receipt import (
    ProvenValue,
    Receipt,
    ReceiptError,
    SignerAuthority,
    SignerRightKind,
    StateProofDocument,
    VerifiedReceipt,
    build_receipt,
    receipt_from_block,
    verify_receipt,
)
from ledger.store import ChainStore

# --- the chain (also run, unchanged, by the code before receipts proved signers: see
# OLD_RECEIPTS below) ---------------------------------------------------------------------------

ISSUER_CONTRACTS = (
    ContractRef(name="membership", version="1.1"),
    ContractRef(name="deeds", version="1.0"),
)
ISSUER_SEED = b"test-receipt-issuers"
SAINT_AMAND, HAUTMONT = "saint-amand", "hautmont"
SAINT_AMAND_SIRET = "21590544900012"
METROPOLE_RECORDS, VILLE_APP, SAINT_AMAND_RECORDS = (
    "metropole/records",
    "ville/app",
    "saint-amand/records",
)
VILLE_APP_EXPIRY = 3


def extra(label: str) -> crypto.PrivateKey:
    """A deterministic key that no member holds: an issuer's, a delegate's."""
    return crypto.key_from_seed(sha256(ISSUER_SEED + b"/" + label.encode()))


def signed(chain: Chain, key: crypto.PrivateKey, action: str, **args: Any) -> Transaction:
    chain.nonce += 1
    contract = "deeds" if action == "anchor" else "membership"
    return Transaction.create(
        key,
        chain_id=chain.genesis.chain_id,
        contract=contract,
        action=action,
        args=args,
        nonce=chain.nonce,
        expiry_height=1_000_000,
    )


def act(chain: Chain, key: crypto.PrivateKey, issuer: str, reference: str) -> Transaction:
    transaction = signed(
        chain,
        key,
        "anchor",
        issuer=issuer,
        reference=reference,
        kind="deliberation",
        digest=hashlib.sha256(f"{issuer} {reference}".encode()).digest(),
        act_date="2026-11-28",
        title=f"Délibération {reference}",
    )
    chain.acts[reference] = transaction
    return transaction


def delegation(
    chain: Chain, key: crypto.PrivateKey, principal: str, delegate: str, expiry: int | None = None
) -> Transaction:
    return signed(
        chain,
        key,
        "delegate",
        member_id=principal,
        signer=crypto.public_key_bytes(extra(delegate)),
        roles=["deeds.issue"],
        expiry_height=expiry,
    )


def decided(chain: Chain, change: dict[str, Any]) -> list[Transaction]:
    """A proposal and the votes that pass it (3 of 4), to commit in one block."""
    proposal = chain.transaction(
        METROPOLE, "membership", "propose", proposer=METROPOLE, change=change
    )
    votes = [
        chain.transaction(
            voter, "membership", "vote", proposal_id=proposal.tx_id, voter=voter, approve=True
        )
        for voter in (VILLE, SAINT_LEGER)
    ]
    return [proposal, *votes]


def create_issuer_chain(path: Path) -> Chain:
    base = LocalConsortium.create(MEMBERS, seed=ISSUER_SEED, contracts=ISSUER_CONTRACTS)
    keys = dict(base.keys)
    consortium = LocalConsortium(genesis=base.genesis, keys=keys)
    engine = Engine(consortium.genesis, load_contracts(consortium.genesis))
    store = ChainStore.create(path, consortium.genesis, engine.genesis_state())
    return Chain(consortium=consortium, keys=keys, engine=engine, store=store)


def build_issuer_chain(path: Path) -> Chain:
    chain = create_issuer_chain(path)
    metropole, ville = chain.keys[METROPOLE], chain.keys[VILLE]
    chain.commit(
        act(chain, metropole, METROPOLE, "M-1"),
        delegation(chain, metropole, METROPOLE, METROPOLE_RECORDS),
        delegation(chain, ville, VILLE, VILLE_APP, expiry=VILLE_APP_EXPIRY),
    )
    issuers = [
        {
            "id": SAINT_AMAND,
            "name": "Commune de Saint-Amand",
            "siret": SAINT_AMAND_SIRET,
            "public_key": crypto.public_key_bytes(extra(SAINT_AMAND)),
        },
        {
            "id": HAUTMONT,
            "name": "Commune d'Hautmont",
            "siret": None,
            "public_key": crypto.public_key_bytes(extra(HAUTMONT)),
        },
    ]
    chain.commit(
        *decided(chain, {"kind": "admit_issuers", "issuers": issuers}),
        act(chain, extra(METROPOLE_RECORDS), METROPOLE, "M-2"),
        act(chain, extra(VILLE_APP), VILLE, "V-2"),
    )
    chain.commit(
        act(chain, extra(SAINT_AMAND), SAINT_AMAND, "2026-DEL-031"),
        delegation(chain, extra(SAINT_AMAND), SAINT_AMAND, SAINT_AMAND_RECORDS),
        act(chain, extra(HAUTMONT), HAUTMONT, "2026-ARR-007"),
    )
    chain.commit(
        act(chain, extra(SAINT_AMAND_RECORDS), SAINT_AMAND, "2026-DEL-042"),
        *decided(chain, {"kind": "suspend_issuer", "issuer_id": HAUTMONT}),
    )
    moved = chain.transaction(
        SAINT_LEGER,
        "membership",
        "set_endpoint",
        member_id=SAINT_LEGER,
        endpoint="10.20.0.9:8600",
    )
    chain.commit(act(chain, metropole, METROPOLE, "M-5"), moved)
    chain.commit(act(chain, extra(METROPOLE_RECORDS), METROPOLE, "M-6"))
    return chain


# --- end of the chain ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    built = build_issuer_chain(tmp_path_factory.mktemp("receipt-issuers") / "chain")
    assert built.store.height == 6 and built.store.member_set_changes() == [6]
    yield built
    built.store.close()


def receipt_of(chain: Chain, reference: str, *, with_status: bool = False) -> Receipt:
    receipt = build_receipt(
        chain.store, chain.acts[reference].tx_id, anchors=ANCHORS, with_status=with_status
    )
    assert receipt is not None
    # As a verifier reads it: from the JSON an application kept.
    return Receipt.model_validate_json(receipt.model_dump_json())


def verified(chain: Chain, receipt: Receipt) -> VerifiedReceipt:
    return verify_receipt(receipt, chain.genesis, anchors=ANCHORS)


def refused(chain: Chain, receipt: Receipt) -> str:
    """The message of the refusal, which must be at the ``signer`` step."""
    with pytest.raises(ReceiptError) as caught:
        verified(chain, receipt)
    assert caught.value.step == "signer", str(caught.value)
    return str(caught.value)


def with_authority(receipt: Receipt, **update: Any) -> Receipt:
    assert receipt.authority is not None
    return receipt.model_copy(update={"authority": receipt.authority.model_copy(update=update)})


def issuer_record(chain: Chain, issuer_id: str, height: int) -> Issuer:
    root = chain.store.block(height).header.state_root
    value = chain.store.state_get_at(issuer_state_key(issuer_id), root)
    assert value is not None
    return Issuer.from_canonical(encoding.unpack(value))


# --- what each kind of signer's receipt proves --------------------------------------------------


def test_an_issuers_own_key_is_proven_by_its_record_in_the_state_before_the_block(
    chain: Chain,
) -> None:
    receipt = receipt_of(chain, "2026-DEL-031")
    authority = receipt.authority
    assert authority is not None
    assert authority.parent == chain.store.block(2).header
    assert [entry.key for entry in authority.entries] == [issuer_state_key(SAINT_AMAND)]
    proven = verified(chain, receipt)
    right = proven.signer_right
    assert right is not None and right.kind is SignerRightKind.ISSUER_KEY
    assert (right.principal, right.role, right.height, right.proven_at_height) == (
        SAINT_AMAND,
        "deeds.issue",
        3,
        2,
    )
    issuer = proven.issuer
    assert issuer is not None
    assert (issuer.name, issuer.siret, issuer.status, issuer.admitted_height) == (
        "Commune de Saint-Amand",
        SAINT_AMAND_SIRET,
        "active",
        2,
    )
    assert Receipt.from_bytes(receipt.to_bytes()) == receipt


def test_an_issuers_delegate_is_proven_by_the_record_and_the_signer_keys_delegations(
    chain: Chain,
) -> None:
    receipt = receipt_of(chain, "2026-DEL-042", with_status=True)
    authority = receipt.authority
    assert authority is not None and authority.parent == chain.store.block(3).header
    delegate = crypto.public_key_bytes(extra(SAINT_AMAND_RECORDS))
    assert [entry.key for entry in authority.entries] == [
        issuer_state_key(SAINT_AMAND),
        signer_state_key(delegate),
    ]
    proven = verified(chain, receipt)
    right = proven.signer_right
    assert right is not None and right.kind is SignerRightKind.DELEGATED
    assert (right.principal, right.proven_at_height, right.expiry_height) == (SAINT_AMAND, 3, None)
    assert proven.issuer is not None and proven.issuer.name == "Commune de Saint-Amand"
    assert proven.status is not None and proven.status["status"] == "in_force"


def test_an_issuer_without_a_siret_is_proven_as_it_is(chain: Chain) -> None:
    proven = verified(chain, receipt_of(chain, "2026-ARR-007"))
    assert proven.issuer is not None and proven.issuer.siret is None
    assert proven.signer_right is not None
    assert proven.signer_right.kind is SignerRightKind.ISSUER_KEY


def test_a_members_node_key_needs_no_authority_and_no_field_for_it(chain: Chain) -> None:
    for reference, height in (("M-1", 1), ("M-5", 5)):
        receipt = receipt_of(chain, reference, with_status=True)
        assert receipt.authority is None
        assert "authority" not in encoding.unpack(receipt.to_bytes())
        assert "authority" not in json.loads(receipt.model_dump_json())
        proven = verified(chain, receipt)
        assert proven.issuer is None
        right = proven.signer_right
        assert right is not None and right.kind is SignerRightKind.MEMBER_NODE_KEY
        assert (right.principal, right.height, right.proven_at_height) == (
            METROPOLE,
            height,
            None,
        )


def test_a_members_delegate_is_proven_by_the_signer_keys_delegations(chain: Chain) -> None:
    receipt = receipt_of(chain, "M-2")
    authority = receipt.authority
    assert authority is not None and authority.parent == chain.store.block(1).header
    delegate = crypto.public_key_bytes(extra(METROPOLE_RECORDS))
    assert [entry.key for entry in authority.entries] == [signer_state_key(delegate)]
    proven = verified(chain, receipt)
    assert proven.issuer is None
    right = proven.signer_right
    assert right is not None and right.kind is SignerRightKind.DELEGATED
    assert (right.principal, right.proven_at_height, right.expiry_height) == (METROPOLE, 1, None)
    expiring = verified(chain, receipt_of(chain, "V-2")).signer_right
    assert expiring is not None and expiring.expiry_height == VILLE_APP_EXPIRY


def test_the_parent_may_be_a_member_set_change_the_receipt_also_shows(chain: Chain) -> None:
    receipt = receipt_of(chain, "M-6")
    assert receipt.authority is not None
    assert [change.header for change in receipt.member_changes] == [receipt.authority.parent]
    right = verified(chain, receipt).signer_right
    assert right is not None and right.kind is SignerRightKind.DELEGATED
    # A quorum certifies another block 5 (same state, another time): the receipt's member-set
    # change shows it, while block 6 and the authority stand on the real block 5.
    change = receipt.member_changes[0]
    other = change.header.model_copy(update={"timestamp_ms": change.header.timestamp_ms + 1})
    certificate = forged_certificate(chain, other, QUORUM)
    forged = receipt.model_copy(
        update={
            "member_changes": (
                change.model_copy(update={"header": other, "certificate": certificate}),
            )
        }
    )
    assert refused(chain, forged) == (
        "signer: another header of height 5 is certified in this receipt (a quorum certified a "
        "block on another parent)"
    )


def test_a_members_delegate_without_authority_verifies_as_an_older_receipt(chain: Chain) -> None:
    older = receipt_of(chain, "M-2").model_copy(update={"authority": None})
    right = verified(chain, older).signer_right
    assert right is not None and right.kind is SignerRightKind.NOT_PROVEN
    assert right.proven_at_height is None


def test_an_issuers_act_without_authority_is_refused(chain: Chain) -> None:
    for reference in ("2026-DEL-031", "2026-DEL-042"):
        bare = receipt_of(chain, reference).model_copy(update={"authority": None})
        message = refused(chain, bare)
        assert f"{SAINT_AMAND!r} is not a member at height" in message
        assert "no authority" in message


def test_a_receipt_of_a_transaction_that_issues_nothing_carries_no_authority(
    chain: Chain,
) -> None:
    proposal = chain.store.block(2).transactions[0]
    assert proposal.action == "propose"
    receipt = build_receipt(chain.store, proposal.tx_id, anchors=ANCHORS)
    assert receipt is not None and receipt.authority is None
    assert verified(chain, receipt).signer_right is None
    borrowed = receipt_of(chain, "2026-DEL-031").authority
    message = refused(chain, receipt.model_copy(update={"authority": borrowed}))
    assert "only the receipt of an act issued for a principal carries an authority" in message


# --- receipts kept from before: they still load, verify, and keep their bytes ------------------

OLD_RECEIPTS = Path(__file__).resolve().parent / "data" / "receipts-before-signer-authority.json"
"""Receipts of this module's chain written by the code before receipts proved signers (main
at 3ee40fe): ``build_receipt(...).model_dump_json(indent=2)`` of ``M-1`` (a member's node
key), ``M-2`` (a member's delegate) and ``M-5`` with its status, by reference."""


@pytest.fixture(scope="module")
def old_receipts() -> dict[str, str]:
    return json.loads(OLD_RECEIPTS.read_text())


def test_an_old_receipt_file_still_loads_and_verifies(
    chain: Chain, old_receipts: dict[str, str]
) -> None:
    kinds = {}
    for reference, text in old_receipts.items():
        receipt = Receipt.model_validate_json(text)
        assert receipt.authority is None
        assert Receipt.from_bytes(receipt.to_bytes()) == receipt
        right = verified(chain, receipt).signer_right
        assert right is not None
        kinds[reference] = right.kind
    assert kinds == {
        "M-1": SignerRightKind.MEMBER_NODE_KEY,
        "M-2": SignerRightKind.NOT_PROVEN,
        "M-5": SignerRightKind.MEMBER_NODE_KEY,
    }


def test_a_member_node_key_receipt_is_byte_for_byte_what_it_was(
    chain: Chain, old_receipts: dict[str, str]
) -> None:
    for reference in ("M-1", "M-5"):
        receipt = build_receipt(
            chain.store,
            chain.acts[reference].tx_id,
            anchors=ANCHORS,
            with_status=reference == "M-5",
        )
        assert receipt is not None
        assert receipt.model_dump_json(indent=2) == old_receipts[reference]
        old = Receipt.model_validate_json(old_receipts[reference])
        assert receipt.to_bytes() == old.to_bytes()


def test_a_nil_authority_in_the_compact_form_is_refused(chain: Chain) -> None:
    from ledger.model import ModelDecodeError

    document = encoding.unpack(receipt_of(chain, "M-1").to_bytes())
    document["authority"] = None
    with pytest.raises(ModelDecodeError, match="authority"):
        Receipt.from_bytes(encoding.pack(document))


# --- tampering: every change is refused at the signer step, naming what is wrong ---------------


def replaced_entry(receipt: Receipt, index: int, **update: Any) -> Receipt:
    assert receipt.authority is not None
    entries = list(receipt.authority.entries)
    entries[index] = entries[index].model_copy(update=update)
    return with_authority(receipt, entries=tuple(entries))


@pytest.mark.parametrize(
    "field, value",
    [
        ("name", "Commune de Saint-Amand-les-Eaux"),
        ("siret", "21590544900020"),
        ("status", "suspended"),
        ("public_key", crypto.public_key_bytes(extra("someone else"))),
    ],
)
def test_a_changed_issuer_record_is_refused(chain: Chain, field: str, value: Any) -> None:
    receipt = receipt_of(chain, "2026-DEL-031")
    record = issuer_record(chain, SAINT_AMAND, 2).model_copy(update={field: value})
    forged = replaced_entry(receipt, 0, value=record.to_bytes())
    message = refused(chain, forged)
    assert message == (
        "signer: the proof of 'membership/issuer/saint-amand' does not verify under the state "
        "of block 2"
    )


def test_a_changed_delegation_is_refused(chain: Chain) -> None:
    receipt = receipt_of(chain, "2026-DEL-042")
    assert receipt.authority is not None
    value = receipt.authority.entries[1].value
    assert value is not None
    delegations = encoding.unpack(value)
    delegations[SAINT_AMAND]["expiry_height"] = 1_000
    message = refused(chain, replaced_entry(receipt, 1, value=encoding.pack(delegations)))
    assert "the proof of 'membership/signer/" in message and "does not verify" in message


def test_another_parent_header_is_refused(chain: Chain) -> None:
    receipt = receipt_of(chain, "2026-DEL-042")
    assert refused(chain, with_authority(receipt, parent=chain.store.block(2).header)) == (
        "signer: the authority's header is of height 2, not the block's parent (3)"
    )
    assert receipt.authority is not None
    parent = receipt.authority.parent
    altered = parent.model_copy(update={"state_root": bytes(32)})
    assert refused(chain, with_authority(receipt, parent=altered)) == (
        "signer: the authority's header is not the block's parent (its prev_hash)"
    )


def test_a_broken_proof_is_refused(chain: Chain) -> None:
    receipt = receipt_of(chain, "2026-DEL-031")
    assert receipt.authority is not None
    proof = receipt.authority.entries[0].proof
    siblings = list(proof.siblings)
    siblings[-1] = bytes(32) if siblings[-1] != bytes(32) else b"\x01" * 32
    broken = replaced_entry(
        receipt, 0, proof=proof.model_copy(update={"siblings": tuple(siblings)})
    )
    assert "does not verify under the state of block 2" in refused(chain, broken)


def test_a_missing_entry_is_refused_naming_it(chain: Chain) -> None:
    receipt = receipt_of(chain, "2026-DEL-042")
    assert receipt.authority is not None
    issuer_entry, signer_entry = receipt.authority.entries
    without_signer = with_authority(receipt, entries=(issuer_entry,))
    assert "the receipt does not prove its delegations" in refused(chain, without_signer)
    without_record = with_authority(receipt, entries=(signer_entry,))
    assert "does not prove its issuer record (membership/issuer/saint-amand)" in refused(
        chain, without_record
    )


def proven_entry(chain: Chain, receipt: Receipt, key: bytes) -> ProvenValue:
    """A true entry for ``key`` under the state of ``receipt``'s authority's parent."""
    assert receipt.authority is not None
    root = receipt.authority.parent.state_root
    return ProvenValue(
        key=key,
        value=chain.store.state_get_at(key, root),
        proof=StateProofDocument.of(chain.store.state_prove(key, root)),
    )


def test_an_entry_the_right_does_not_need_or_out_of_order_is_refused(chain: Chain) -> None:
    delegate = receipt_of(chain, "2026-DEL-042")
    assert delegate.authority is not None
    issuer_entry, signer_entry = delegate.authority.entries
    swapped = with_authority(delegate, entries=(signer_entry, issuer_entry))
    assert refused(chain, swapped) == "signer: the authority's entries are out of order"
    twice = with_authority(delegate, entries=(issuer_entry, issuer_entry, signer_entry))
    assert "membership/issuer/saint-amand' twice" in refused(chain, twice)
    # The issuer's own key: its delegations are not needed (true as they are), nor allowed.
    own = receipt_of(chain, "2026-DEL-031")
    assert own.authority is not None
    own_key = signer_state_key(chain.acts["2026-DEL-031"].signer)
    padded = with_authority(
        own, entries=(*own.authority.entries, proven_entry(chain, own, own_key))
    )
    assert refused(chain, padded) == (
        f"signer: the authority proves 'membership/signer/{own_key[-32:].hex()}', which this "
        "signer's right does not need"
    )
    # A member's delegate: its principal's issuer record (an absence) is not needed either.
    member_delegate = receipt_of(chain, "M-2")
    assert member_delegate.authority is not None
    absent = proven_entry(chain, member_delegate, issuer_state_key(METROPOLE))
    assert absent.value is None
    padded = with_authority(member_delegate, entries=(absent, *member_delegate.authority.entries))
    assert refused(chain, padded) == (
        "signer: the authority proves 'membership/issuer/metropole-valbrune', which this "
        "signer's right does not need"
    )


def test_an_authority_on_a_member_node_key_receipt_is_refused(chain: Chain) -> None:
    receipt = receipt_of(chain, "M-5")
    parent = chain.store.block(4).header
    key = signer_state_key(chain.acts["M-5"].signer)
    entry = ProvenValue(
        key=key,
        value=chain.store.state_get_at(key, parent.state_root),
        proof=StateProofDocument.of(chain.store.state_prove(key, parent.state_root)),
    )
    authority = SignerAuthority(parent=parent, entries=(entry,))
    message = refused(chain, receipt.model_copy(update={"authority": authority}))
    assert "the node key of member 'metropole-valbrune'" in message
    assert "an authority it does not need" in message


def test_an_authority_for_another_key_is_refused(chain: Chain) -> None:
    # V-2 and M-2 are in one block: M-2's authority proves the delegations of another key.
    borrowed = receipt_of(chain, "M-2").authority
    receipt = receipt_of(chain, "V-2").model_copy(update={"authority": borrowed})
    message = refused(chain, receipt)
    assert "neither the principal's issuer record nor the signer key's delegations" in message


# --- a colluding quorum certifies what the contracts refuse -------------------------------------

REWRITTEN = 5
QUORUM = [METROPOLE, VILLE, SAINT_LEGER]


def requorumed(chain: Chain, transaction: Transaction) -> tuple[Block, CommitCertificate]:
    """Block 5 with ``transaction`` in place of its act, certified by a quorum in force."""
    block = chain.store.block(REWRITTEN)
    transactions = (transaction, *block.transactions[1:])
    header = block.header.model_copy(
        update={"tx_root": merkle.root([item.encoded for item in transactions])}
    )
    certificate = forged_certificate(chain, header, QUORUM)
    return Block(header=header, transactions=transactions), certificate


def forged_receipt(chain: Chain, transaction: Transaction) -> Receipt:
    block, certificate = requorumed(chain, transaction)
    receipt = receipt_from_block(
        chain.store, block, certificate, 0, anchors=ANCHORS, with_status=False
    )
    return Receipt.model_validate_json(receipt.model_dump_json())


def test_a_suspended_issuers_act_certified_by_a_colluding_quorum_is_refused(
    chain: Chain,
) -> None:
    forged = forged_receipt(chain, act(chain, extra(HAUTMONT), HAUTMONT, "2026-ARR-009"))
    assert refused(chain, forged) == (
        "signer: the issuer 'hautmont' is suspended at height 5 (since height 4): its keys sign "
        "nothing"
    )


def test_an_expired_delegates_act_certified_by_a_colluding_quorum_is_refused(
    chain: Chain,
) -> None:
    forged = forged_receipt(chain, act(chain, extra(VILLE_APP), VILLE, "V-5"))
    assert refused(chain, forged) == (
        "signer: the signer's delegation from 'ville-valbrune' expired at height 3, before the "
        "block's height 5"
    )


def test_a_stranger_or_a_wrong_role_certified_by_a_colluding_quorum_is_refused(
    chain: Chain,
) -> None:
    stranger = forged_receipt(chain, act(chain, extra("stranger"), SAINT_AMAND, "X-5"))
    assert refused(chain, stranger) == "signer: the signer key holds no delegation at height 5"
    # metropole's records system signs for saint-amand, which never delegated to it.
    other = forged_receipt(chain, act(chain, extra(METROPOLE_RECORDS), SAINT_AMAND, "Y-5"))
    assert refused(chain, other) == (
        "signer: the signer key holds no delegation from 'saint-amand' at height 5"
    )
    nobody = forged_receipt(chain, act(chain, extra("nobody"), "nobody", "Z-5"))
    assert refused(chain, nobody) == (
        "signer: 'nobody' is neither a member nor an admitted issuer at height 5"
    )


def test_the_genuine_block_still_verifies(chain: Chain) -> None:
    block, certificate = requorumed(chain, chain.store.block(REWRITTEN).transactions[0])
    receipt = receipt_from_block(chain.store, block, certificate, 0, anchors=ANCHORS)
    assert verified(chain, receipt).signer_right is not None


# --- any byte of the authority ------------------------------------------------------------------


@pytest.fixture(scope="module")
def delegate_receipt(chain: Chain) -> tuple[Receipt, VerifiedReceipt]:
    receipt = receipt_of(chain, "2026-DEL-042")
    return receipt, verified(chain, receipt)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_flipping_any_byte_of_the_authority_is_refused_or_proves_the_same(
    chain: Chain, delegate_receipt: tuple[Receipt, VerifiedReceipt], data: st.DataObject
) -> None:
    receipt, proven = delegate_receipt
    assert receipt.authority is not None
    encoded = bytearray(receipt.authority.to_bytes())
    position = data.draw(st.integers(0, len(encoded) - 1), label="position")
    encoded[position] ^= data.draw(st.integers(1, 255), label="mask")
    try:
        authority = SignerAuthority.from_bytes(bytes(encoded))
    except (encoding.EncodingError, ValueError):
        return  # does not decode: nothing is proven
    tampered = receipt.model_copy(update={"authority": authority})
    try:
        again = verified(chain, tampered)
    except ReceiptError as error:
        assert error.step == "signer", str(error)
        return
    assert (again.signer_right, again.issuer) == (proven.signer_right, proven.issuer)


# --- sceau verify says who signed, and why the key could ----------------------------------------


def test_sceau_verify_names_the_issuer_and_how_the_signer_was_authorized(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_receipt import assert_not_verified, assert_verified, run_cli

    genesis = tmp_path / "genesis.json"
    genesis.write_text(chain.genesis.model_dump_json(indent=2))
    expected = {
        "2026-DEL-031": [
            "  issuer:    Commune de Saint-Amand (SIRET 21590544900012), an active issuer at "
            "height 3 (admitted at height 2)",
            "  signed by: the issuer's own key, on record after block 2",
        ],
        "2026-DEL-042": [
            "  issuer:    Commune de Saint-Amand (SIRET 21590544900012), an active issuer at "
            "height 4 (admitted at height 2)",
            "  signed by: a key saint-amand delegated deeds.issue to (until revoked), on record "
            "after block 3",
        ],
        "2026-ARR-007": [
            "  issuer:    Commune d'Hautmont (no SIRET), an active issuer at height 3 (admitted "
            "at height 2)",
            "  signed by: the issuer's own key, on record after block 2",
        ],
        "M-2": [
            "  signed by: a key metropole-valbrune delegated deeds.issue to (until revoked), on "
            "record after block 1",
        ],
        "V-2": [
            "  signed by: a key ville-valbrune delegated deeds.issue to (valid to height 3), on "
            "record after block 1",
        ],
        "M-5": ["  signed by: the node key of member metropole-valbrune, in force at height 5"],
    }
    for reference, lines in expected.items():
        path = tmp_path / f"{reference}.receipt.json"
        path.write_text(receipt_of(chain, reference).model_dump_json(indent=2))
        shown = assert_verified(run_cli(capsys, "verify", path, "--genesis", genesis))
        committed = next(line for line in shown.splitlines() if line.startswith("  committed:"))
        after = shown.splitlines()
        start = after.index(committed) + 1
        assert after[start : start + len(lines)] == lines, shown
    older = tmp_path / "older.receipt.json"
    older.write_text(
        receipt_of(chain, "M-2").model_copy(update={"authority": None}).model_dump_json(indent=2)
    )
    shown = assert_verified(run_cli(capsys, "verify", older, "--genesis", genesis))
    assert (
        "  signed by: a key acting for member metropole-valbrune, not its node key: delegation "
        "not proven by this receipt (older receipt)\n"
    ) in shown
    bare = tmp_path / "bare.receipt.json"
    bare.write_text(
        receipt_of(chain, "2026-DEL-031").model_copy(update={"authority": None}).model_dump_json()
    )
    assert_not_verified(
        run_cli(capsys, "verify", bare, "--genesis", genesis),
        "NOT VERIFIED — signer: 'saint-amand' is not a member at height 3",
    )


# --- a node serves receipts that carry the authority, with or without the status ---------------


def test_a_node_serves_an_issuers_receipts_with_their_authority(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from support import served_node

    from ledger.client import Client

    consortium = LocalConsortium.create(
        [(METROPOLE, "Métropole de Valbrune")],
        seed=ISSUER_SEED + b"/served",
        contracts=ISSUER_CONTRACTS,
    )
    folder = tmp_path_factory.mktemp("served") / "node"
    issuer_key, records_key = extra(SAINT_AMAND), extra(SAINT_AMAND_RECORDS)
    application = {
        "id": SAINT_AMAND,
        "name": "Commune de Saint-Amand",
        "siret": SAINT_AMAND_SIRET,
        "public_key": crypto.public_key_bytes(issuer_key),
    }
    act_args: dict[str, Any] = {
        "issuer": SAINT_AMAND,
        "kind": "deliberation",
        "act_date": "2026-11-28",
        "title": "Délibération servie",
    }
    with served_node(folder, consortium, METROPOLE) as (url, _):
        with Client(url, signer=consortium.keys[METROPOLE]) as member:
            change = {"kind": "admit_issuers", "issuers": [application]}
            proposal = member.build(
                "membership", "propose", {"proposer": METROPOLE, "change": change}
            )
            assert member.submit(proposal, wait_s=30)["status"] == "committed"
        with Client(url, signer=issuer_key) as issuer:
            own = issuer.anchor(reference="S-1", digest=sha256(b"S-1"), **act_args)
            grant = issuer.build(
                "membership",
                "delegate",
                {
                    "member_id": SAINT_AMAND,
                    "signer": crypto.public_key_bytes(records_key),
                    "roles": ["deeds.issue"],
                    "expiry_height": None,
                },
            )
            assert issuer.submit(grant, wait_s=30)["status"] == "committed"
        with Client(url, signer=records_key) as records:
            delegated = records.anchor(reference="S-2", digest=sha256(b"S-2"), **act_args)
            served = {
                "own, POST ?wait=": own["receipt"],
                "delegated, POST ?wait=": delegated["receipt"],
                "own, GET": records.receipt(own["tx_id"]),
                "delegated, GET ?with_status=true": records.receipt(
                    delegated["tx_id"], with_status=True
                ),
            }
        for how, document in served.items():
            receipt = Receipt.model_validate_json(json.dumps(document))
            assert receipt.authority is not None, how
            proven = verify_receipt(receipt, consortium.genesis, anchors=ANCHORS)
            assert proven.issuer is not None and proven.issuer.id == SAINT_AMAND, how
            kind = SignerRightKind.ISSUER_KEY if how.startswith("own") else None
            assert proven.signer_right is not None
            assert proven.signer_right.kind is (kind or SignerRightKind.DELEGATED), how
            assert (receipt.status is not None) == how.endswith("with_status=true"), how


def test_the_issuer_examples_of_the_docs_are_the_real_output_of_sceau_verify(
    chain: Chain,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import re
    import shlex

    from node.tools.cli import main

    text = (Path(__file__).resolve().parent.parent / "docs" / "audit_receipts.md").read_text()
    start = text.index("\n### 1.1. Who may sign for the issuer")
    section = text[start : text.index("\n## ", start)]
    (block,) = re.findall(r"\n```\n(.*?)\n```", section, flags=re.DOTALL)
    runs = [part.partition("\n") for part in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]]
    assert len(runs) == 2
    (tmp_path / "genesis.json").write_text(chain.genesis.model_dump_json(indent=2))
    for reference in ("2026-DEL-031", "2026-DEL-042"):
        receipt = receipt_of(chain, reference)
        (tmp_path / f"{reference}.receipt.json").write_text(receipt.model_dump_json(indent=2))
    monkeypatch.chdir(tmp_path)
    for command, _, output in runs:
        capsys.readouterr()
        assert main(shlex.split(command)[1:]) == 0
        assert capsys.readouterr().out.rstrip("\n") == output.rstrip("\n"), command
