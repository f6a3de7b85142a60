"""Specification of receipts: what ``verify_receipt`` and ``sceau verify`` accept and refuse.

Every receipt here comes from a real chain, built once for the module by the real contract
engine (membership 1.0 and deeds 1.0, as pinned in the genesis) over a real LevelDB
:class:`~ledger.store.ChainStore`, each block certified by a quorum of the member set in force
at its height. The chain walks a consortium of four through every kind of member-set change a
receipt must follow from the genesis::

    height 1  three acts anchored in one block (a tree of three leaves)
    height 2  admission of a fifth member (proposed and voted in the block)   -> in force at 3
    height 3  an act of the newcomer, certified with the newcomer's signature
    height 4  removal of a genesis member                                      -> in force at 5
    height 5  an act, certified by the four members left
    height 6  a member rotates its node key                                    -> in force at 7
    height 7  an act of that member, certified with its new key
    height 8  the act of height 1 is withdrawn

Receipts are then tampered with field by field, certificates forged in every way a byzantine
member could try, and the command line run on the files an application would keep.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import hashlib
import inspect
import itertools
import json
import re
import shlex
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts.deeds import DEEDS_KEYS
from contracts.engine import Engine
from contracts.registry import load_contracts, receipt_anchors
from ledger import crypto, domains, encoding, merkle
from ledger.devchain import LocalConsortium
from ledger.model import (
    Block,
    BlockHeader,
    CommitCertificate,
    ContractRef,
    Genesis,
    Member,
    ModelDecodeError,
    Transaction,
    quorum_size,
    sha256,
    vote_payload,
)
from ledger.receipt import (
    MEMBERS_STATE_KEY,
    MemberSetChange,
    Receipt,
    ReceiptError,
    StateProofDocument,
    StatusProof,
    VerifiedReceipt,
    build_receipt,
    verify_receipt,
)
from ledger.state import verify_state_proof
from ledger.store import ChainStore
from node.api import display

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
METROPOLE, VILLE, SAINT_LEGER, SYNDICAT = (member_id for member_id, _ in MEMBERS)
NEWCOMER = "agglo-val-d-orge"
REMOVED = SYNDICAT
ROTATED = VILLE
CONTRACTS = (
    ContractRef(name="membership", version="1.0"),
    ContractRef(name="deeds", version="1.0"),
)
SEED = b"test-receipt"
FIRST_BLOCK_TIMESTAMP_MS = 1_796_029_200_000
"""2026-11-30 09:00:00 UTC; block h is committed h − 1 minutes later."""
BLOCK_INTERVAL_MS = 60_000
SCEAU = [sys.executable, "-m", "node.tools.cli"]
COMMAND_TIMEOUT_S = 60.0
ANCHORS = receipt_anchors()
"""The anchoring actions the built-in contracts declare (the deeds ``anchor``)."""


def key_for(label: str) -> crypto.PrivateKey:
    """A deterministic key that no genesis member holds."""
    return crypto.key_from_seed(sha256(SEED + b"/extra/" + label.encode()))


def document_of(reference: str) -> bytes:
    """The bytes of the (fictitious) signed document anchored as ``reference``."""
    return f"%PDF-1.7\n% Acte {reference}, signé électroniquement\n".encode()


# --- the chain --------------------------------------------------------------------------------


@dataclass(repr=False)
class Chain:
    """A consortium, every key it ever used, its engine and its store."""

    consortium: LocalConsortium
    keys: dict[str, crypto.PrivateKey]
    """The node key in force of every member, past and present (updated on rotation)."""
    engine: Engine
    store: ChainStore
    nonce: int = 0
    old_keys: dict[str, crypto.PrivateKey] = field(default_factory=dict)
    """Node keys rotated out, by member id."""
    acts: dict[str, Transaction] = field(default_factory=dict)
    """Anchors by reference."""
    transactions: dict[str, Transaction] = field(default_factory=dict)
    """Other notable transactions by label."""

    @classmethod
    def create(cls, path: Path) -> Chain:
        base = LocalConsortium.create(MEMBERS, seed=SEED, contracts=CONTRACTS)
        keys = dict(base.keys)
        # The consortium signs with ``keys``: admissions and rotations update it in place.
        consortium = LocalConsortium(genesis=base.genesis, keys=keys)
        engine = Engine(consortium.genesis, load_contracts(consortium.genesis))
        store = ChainStore.create(path, consortium.genesis, engine.genesis_state())
        return cls(consortium=consortium, keys=keys, engine=engine, store=store)

    @property
    def genesis(self) -> Genesis:
        return self.consortium.genesis

    def __repr__(self) -> str:
        return f"<Chain of {self.store.height} blocks at {self.store.path}>"

    def keys_at(self, height: int, member_ids: Sequence[str]) -> dict[str, crypto.PrivateKey]:
        """The node keys of ``member_ids`` in force at ``height``."""
        return {
            member_id: (
                self.old_keys[member_id]
                if member_id in self.old_keys and height < ROTATION_EFFECTIVE_HEIGHT
                else self.keys[member_id]
            )
            for member_id in member_ids
        }

    def members(self) -> tuple[Member, ...]:
        """The member set that certifies the next block."""
        return self.engine.members(self.store)

    def transaction(self, signer: str, contract: str, action: str, **args: Any) -> Transaction:
        self.nonce += 1
        return Transaction.create(
            self.keys[signer],
            chain_id=self.genesis.chain_id,
            contract=contract,
            action=action,
            args=args,
            nonce=self.nonce,
            expiry_height=1_000_000,
        )

    def anchor(self, issuer: str, reference: str, kind: str = "deliberation") -> Transaction:
        transaction = self.transaction(
            issuer,
            "deeds",
            "anchor",
            issuer=issuer,
            reference=reference,
            kind=kind,
            digest=hashlib.sha256(document_of(reference)).digest(),
            act_date="2026-11-28",
            title=f"Délibération {reference} du conseil",
        )
        self.acts[reference] = transaction
        return transaction

    def commit(self, *transactions: Transaction, signers: Sequence[str] | None = None) -> Block:
        """Execute, certify (by ``signers``, default the first quorum in force) and append."""
        members = self.members()
        height = self.store.height + 1
        # One view per block, each proposed by the primary of its view (as a chain where every
        # primary stepped down after one block): a receipt checks the proposer like an audit.
        view = height - 1
        proposer = members[view % len(members)].id
        result = self.engine.execute(
            self.store,
            transactions,
            height=height,
            timestamp_ms=FIRST_BLOCK_TIMESTAMP_MS + (height - 1) * BLOCK_INTERVAL_MS,
            proposer=proposer,
        )
        assert not result.rejected, result.rejected
        header = BlockHeader(
            chain_id=self.genesis.chain_id,
            height=height,
            prev_hash=self.store.tip.block_hash,
            timestamp_ms=FIRST_BLOCK_TIMESTAMP_MS + (height - 1) * BLOCK_INTERVAL_MS,
            proposer=proposer,
            view=view,
            tx_count=len(result.accepted),
            tx_root=merkle.root([transaction.encoded for transaction in result.accepted]),
            state_root=result.state_root,
            members_hash=result.members_hash,
        )
        block = Block(header=header, transactions=result.accepted)
        if signers is None:
            signers = [member.id for member in members][: quorum_size(len(members))]
        certificate = self.consortium.certify(block, members=members, signers=signers)
        self.store.append_block(block, certificate, result.state_writes)
        return block

    def governance(self, change: dict[str, Any], proposer: str, voters: Sequence[str]) -> None:
        """A proposal and the votes that pass it, in one block."""
        proposal = self.transaction(
            proposer, "membership", "propose", proposer=proposer, change=change
        )
        votes = [
            self.transaction(
                voter,
                "membership",
                "vote",
                proposal_id=proposal.tx_id,
                voter=voter,
                approve=True,
            )
            for voter in voters
        ]
        self.transactions[f"propose {change['kind']}"] = proposal
        self.commit(proposal, *votes)

    def receipt(self, reference: str, *, with_status: bool = False) -> Receipt:
        anchors = ANCHORS if with_status else ()
        receipt = build_receipt(self.store, self.acts[reference].tx_id, anchors=anchors)
        assert receipt is not None
        return receipt


PLAIN = "2026-DEL-001"
"""Anchored at height 1 with two others, withdrawn at height 8."""
SECOND, THIRD = "2026-DEL-002", "2026-ARR-003"
AFTER_ADMISSION = "2026-DEL-101"
"""The newcomer's first act, height 3."""
AFTER_REMOVAL = "2026-DEL-201"
"""Height 5."""
AFTER_ROTATION = "2026-DEL-301"
"""Height 7, by the member that rotated its key."""
ROTATION_EFFECTIVE_HEIGHT = 7
TIP = 8


def build_chain(path: Path) -> Chain:
    chain = Chain.create(path)
    chain.commit(
        chain.anchor(METROPOLE, PLAIN),
        chain.anchor(VILLE, SECOND),
        chain.anchor(SAINT_LEGER, THIRD, kind="decree"),
    )
    newcomer_key = key_for(NEWCOMER)
    newcomer = Member(
        id=NEWCOMER,
        name="Agglomération du Val d'Orge",
        public_key=crypto.public_key_bytes(newcomer_key),
        endpoint="10.20.0.5:8600",
    )
    chain.keys[NEWCOMER] = newcomer_key
    chain.governance(
        {"kind": "admit", "member": newcomer.to_canonical()}, METROPOLE, [VILLE, SAINT_LEGER]
    )
    # The newcomer's own key must be known to the verifier: it signs this certificate.
    chain.commit(
        chain.anchor(NEWCOMER, AFTER_ADMISSION), signers=[VILLE, SAINT_LEGER, SYNDICAT, NEWCOMER]
    )
    chain.governance(
        {"kind": "remove", "member_id": REMOVED}, METROPOLE, [VILLE, SAINT_LEGER, NEWCOMER]
    )
    chain.commit(chain.anchor(METROPOLE, AFTER_REMOVAL), signers=[VILLE, SAINT_LEGER, NEWCOMER])
    new_key = key_for(f"{ROTATED}/rotated")
    rotation = chain.transaction(
        ROTATED,
        "membership",
        "rotate_key",
        member_id=ROTATED,
        new_public_key=crypto.public_key_bytes(new_key),
    )
    chain.transactions["rotate_key"] = rotation
    chain.commit(rotation)  # certified with the old key: the rotation takes effect at 7
    chain.old_keys[ROTATED] = chain.keys[ROTATED]
    chain.keys[ROTATED] = new_key
    chain.commit(chain.anchor(ROTATED, AFTER_ROTATION))  # signed and certified with the new key
    withdrawal = chain.transaction(
        METROPOLE,
        "deeds",
        "withdraw",
        issuer=METROPOLE,
        reference=PLAIN,
        reason="Retirée à la demande du préfet",
    )
    chain.transactions["withdraw"] = withdrawal
    chain.commit(withdrawal)
    assert chain.store.height == TIP
    assert chain.store.member_set_changes() == [3, 5, 7]
    return chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    built = build_chain(tmp_path_factory.mktemp("receipt-chain") / "chain")
    yield built
    built.store.close()


@pytest.fixture(scope="module")
def other_genesis() -> Genesis:
    """Another consortium: the same members and keys, another name, hence another chain_id."""
    return LocalConsortium.create(
        MEMBERS, seed=SEED, contracts=CONTRACTS, consortium="Un autre consortium"
    ).genesis


# --- helpers ----------------------------------------------------------------------------------


def failure(receipt: Receipt, genesis: Genesis, document: bytes | None = None) -> ReceiptError:
    """The ReceiptError that verifying ``receipt`` raises (the test fails if it verifies)."""
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(receipt, genesis, document, anchors=ANCHORS)
    return caught.value


def sign_vote(
    key: crypto.PrivateKey, *, chain_id: bytes, height: int, view: int, block_hash: bytes
) -> bytes:
    domain = crypto.Domain(domains.COMMIT, chain_id)
    return crypto.sign(key, domain, vote_payload(height, view, block_hash))


def forged_certificate(
    chain: Chain,
    header: BlockHeader,
    signers: Mapping[str, crypto.PrivateKey] | Sequence[str],
    *,
    view: int | None = None,
    signed_view: int | None = None,
    signed_height: int | None = None,
    signed_block_hash: bytes | None = None,
    signed_chain_id: bytes | None = None,
) -> CommitCertificate:
    """A certificate of ``header`` by ``signers``: ids (signing with their node keys in force
    at that height) or ids with the keys to sign with. ``signed_*`` make the signatures cover
    other values than the certificate states."""
    keys = signers if isinstance(signers, Mapping) else chain.keys_at(header.height, signers)
    view = header.view if view is None else view
    return CommitCertificate(
        height=header.height,
        view=view,
        block_hash=header.block_hash,
        signatures=tuple(
            (
                member_id,
                sign_vote(
                    keys[member_id],
                    chain_id=signed_chain_id or chain.genesis.chain_id,
                    height=signed_height or header.height,
                    view=view if signed_view is None else signed_view,
                    block_hash=signed_block_hash or header.block_hash,
                ),
            )
            for member_id in sorted(keys)
        ),
    )


def with_certificate(receipt: Receipt, certificate: CommitCertificate) -> Receipt:
    return receipt.model_copy(update={"certificate": certificate})


def canonical(receipt: Receipt) -> dict[str, Any]:
    """The receipt's canonical form as decoded from its bytes: plain dicts, lists, scalars."""
    return encoding.unpack(receipt.to_bytes())


FieldPath = tuple[str | int, ...]


def leaf_paths(value: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    """The path of every scalar in a canonical document."""
    if isinstance(value, dict):
        for key in value:
            yield from leaf_paths(value[key], (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaf_paths(item, (*path, index))
    else:
        yield path


def list_paths(value: Any, path: FieldPath = ()) -> Iterator[FieldPath]:
    """The path of every non-empty list in a canonical document."""
    if isinstance(value, dict):
        for key in value:
            yield from list_paths(value[key], (*path, key))
    elif isinstance(value, list):
        if value:
            yield path
        for index, item in enumerate(value):
            yield from list_paths(item, (*path, index))


def get_at(document: Any, path: FieldPath) -> Any:
    for part in path:
        document = document[part]
    return document


PAIRED = {"other_key_path": "other_value_hash", "other_value_hash": "other_key_path"}
"""A state proof's other leaf is both fields or neither (a half-filled one is its own test)."""


def replaced(document: dict[str, Any], path: FieldPath, value: Any) -> dict[str, Any]:
    copied = copy.deepcopy(document)
    parent = get_at(copied, path[:-1])
    parent[path[-1]] = value
    pair = PAIRED.get(path[-1]) if isinstance(path[-1], str) else None
    if pair is not None and (parent[pair] is None) != (value is None):
        parent[pair] = None if value is None else sha256(value)
    return copied


def mutated_scalar(value: Any, choice: int) -> Any:
    """Another value of the same type (``choice`` picks which)."""
    if isinstance(value, bytes):
        if not value:
            return b"\x00"
        index = choice % len(value)
        return value[:index] + bytes([value[index] ^ (1 << (choice % 8))]) + value[index + 1 :]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + (1 if choice % 2 == 0 else -1) * (1 + choice % 3)
    if isinstance(value, str):
        return value + "x" if choice % 2 == 0 else value[:-1] + ("0" if value[-1:] != "0" else "1")
    assert value is None, value
    return bytes([choice % 256]) * 32


def expected_steps(path: FieldPath) -> tuple[str, ...]:
    """The steps of ``verify_receipt`` that may report a change at ``path`` (prefixes)."""
    top = path[0]
    # Without one of its member changes, the next certified header names an unknown set.
    if path == ("member_changes",):
        return ("members", "block")
    if path == ("status", "member_changes"):
        return ("members", "status")
    if path[:2] == ("status", "member_changes"):
        return ("members",)
    if path == ("status", "header", "height"):
        return ("status", "members")  # an earlier height has fewer changes behind it
    return {
        "chain_id": ("chain",),
        "transaction": ("transaction",),
        "height": ("block", "members"),
        "position": ("inclusion",),
        "inclusion_proof": ("inclusion",),
        "header": ("block",),
        "certificate": ("block",),
        "member_changes": ("members",),
        "status": ("status",),
    }[top]


def assert_detected(
    document: dict[str, Any], genesis: Genesis, path: FieldPath, how: str
) -> ReceiptError | None:
    """A tampered receipt is refused: at decoding, or by ``verify_receipt`` at the right step.

    Returns the ReceiptError, or None if the tampered document does not even decode.
    """
    try:
        tampered = Receipt.from_canonical(document)
    except ModelDecodeError:
        return None
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(tampered, genesis, anchors=ANCHORS)
    steps = expected_steps(path)
    assert caught.value.step.startswith(steps), (path, how, str(caught.value))
    return caught.value


RECEIPTS_TO_TAMPER = (
    (PLAIN, True),  # no member change, a status after three of them
    (AFTER_ROTATION, True),  # three member changes, a status at the tip
    (SECOND, False),  # the middle leaf of a tree of three
)


@pytest.fixture(scope="module")
def tamperable(chain: Chain) -> dict[str, dict[str, Any]]:
    """The canonical forms of the receipts that the tampering tests mutate."""
    return {
        reference: canonical(chain.receipt(reference, with_status=with_status))
        for reference, with_status in RECEIPTS_TO_TAMPER
    }


# --- plain anchors ----------------------------------------------------------------------------


def test_a_plain_anchor_receipt_proves_the_act_from_the_genesis_alone(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN)
    proven = verify_receipt(receipt, chain.genesis, anchors=ANCHORS)
    transaction = chain.acts[PLAIN]
    assert isinstance(proven, VerifiedReceipt)
    assert proven.transaction == transaction
    assert (proven.height, receipt.position, receipt.header.tx_count) == (1, 0, 3)
    assert proven.timestamp_ms == FIRST_BLOCK_TIMESTAMP_MS
    assert proven.block_hash == chain.store.block(1).block_hash
    assert proven.signers == (METROPOLE, SAINT_LEGER, VILLE)
    assert proven.members == 4
    assert proven.act == transaction.args
    assert proven.act["issuer"] == METROPOLE and proven.act["reference"] == PLAIN
    assert proven.document_matches is None
    assert (proven.status, proven.status_height) == (None, None)
    assert receipt.member_changes == () and receipt.status is None


def test_every_leaf_of_a_three_leaf_block_has_its_own_inclusion_proof(chain: Chain) -> None:
    for position, reference in enumerate((PLAIN, SECOND, THIRD)):
        receipt = chain.receipt(reference)
        assert receipt.position == position
        assert len(receipt.inclusion_proof) == [2, 2, 1][position]  # the third leaf is promoted
        assert verify_receipt(receipt, chain.genesis, anchors=ANCHORS).act["reference"] == reference


def test_the_anchored_document_matches_and_any_other_document_does_not(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN)
    proven = verify_receipt(receipt, chain.genesis, document_of(PLAIN), anchors=ANCHORS)
    assert proven.document_matches is True
    for other in (document_of(SECOND), document_of(PLAIN) + b"\n", b"", document_of(PLAIN)[:-1]):
        error = failure(receipt, chain.genesis, other)
        assert error.step == "document"
        assert "not the anchored digest" in str(error)


def test_a_receipt_of_a_non_anchor_has_no_act_and_no_document(chain: Chain) -> None:
    receipt = build_receipt(chain.store, chain.transactions["rotate_key"].tx_id, anchors=ANCHORS)
    assert receipt is not None and receipt.status is None  # a status is only an act's
    proven = verify_receipt(receipt, chain.genesis, anchors=ANCHORS)
    assert proven.act is None and proven.height == 6
    assert proven.transaction.action == "rotate_key"
    error = failure(receipt, chain.genesis, document_of(PLAIN))
    assert error.step == "document" and "anchors no document" in str(error)


def test_no_receipt_for_a_transaction_that_is_not_in_the_chain(chain: Chain) -> None:
    assert build_receipt(chain.store, bytes(32)) is None
    assert display.receipt_for(chain.store, sha256(b"nothing")) is None


def test_a_receipt_for_another_consortium_is_refused(chain: Chain, other_genesis: Genesis) -> None:
    assert other_genesis.chain_id != chain.genesis.chain_id
    for reference in (PLAIN, AFTER_ROTATION):
        error = failure(chain.receipt(reference), other_genesis)
        assert error.step == "chain" and "another consortium" in str(error)


# --- member-set changes -----------------------------------------------------------------------


def test_a_receipt_after_an_admission_carries_the_new_member_set(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_ADMISSION)
    (change,) = receipt.member_changes
    assert isinstance(change, MemberSetChange)
    assert change.header.height == 2  # committed by block 2, in force from 3
    assert [member.id for member in change.members] == [*(m for m, _ in MEMBERS), NEWCOMER]
    assert change.certificate == chain.store.certificate(2)
    # The list is proven under block 2's state root, where the membership contract keeps it.
    listed = encoding.pack([member.to_canonical() for member in change.members])
    assert chain.store.state_get_at(MEMBERS_STATE_KEY, change.header.state_root) == listed
    assert verify_state_proof(
        change.header.state_root, MEMBERS_STATE_KEY, listed, change.proof.proof()
    )
    proven = verify_receipt(receipt, chain.genesis, anchors=ANCHORS)
    assert proven.members == 5 and NEWCOMER in proven.signers
    assert len(proven.signers) == quorum_size(5) == 4
    assert proven.act["issuer"] == NEWCOMER


def test_a_receipt_after_a_removal_follows_both_changes(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_REMOVAL)
    assert [change.header.height for change in receipt.member_changes] == [2, 4]
    assert REMOVED not in {member.id for member in receipt.member_changes[-1].members}
    proven = verify_receipt(receipt, chain.genesis, anchors=ANCHORS)
    assert proven.members == 4
    assert proven.signers == tuple(sorted((VILLE, SAINT_LEGER, NEWCOMER)))


def test_a_removed_member_can_no_longer_certify(chain: Chain) -> None:
    # Its signatures of the blocks before its removal still count.
    before = verify_receipt(chain.receipt(AFTER_ADMISSION), chain.genesis, anchors=ANCHORS)
    assert REMOVED in before.signers
    for reference in (AFTER_REMOVAL, AFTER_ROTATION):
        receipt = chain.receipt(reference)
        # The removed member with a quorum of others, and with just enough others.
        for signers in (
            [REMOVED, METROPOLE, SAINT_LEGER, NEWCOMER],
            [REMOVED, METROPOLE, NEWCOMER],
        ):
            certificate = forged_certificate(chain, receipt.header, signers)
            error = failure(receipt.model_copy(update={"certificate": certificate}), chain.genesis)
            assert error.step == "block"
            assert f"{REMOVED!r} is not a member" in str(error)


def test_a_removed_member_cannot_hide_its_removal(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_REMOVAL)
    admission, removal = receipt.member_changes
    # Without the removal, block 5 names a member set the verifier was not shown.
    error = failure(receipt.model_copy(update={"member_changes": (admission,)}), chain.genesis)
    assert error.step == "block" and "member-set change is missing" in str(error)
    # Claiming the old set is still in force at 5 is not what the state of block 4 proves.
    still_there = removal.model_copy(update={"members": admission.members})
    forged = receipt.model_copy(update={"member_changes": (admission, still_there)})
    error = failure(forged, chain.genesis)
    assert error.step == "members" and "height 4 is not proven" in str(error)


def test_a_receipt_after_a_key_rotation_verifies_with_the_new_key(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_ROTATION)
    assert [change.header.height for change in receipt.member_changes] == [2, 4, 6]
    rotated = next(member for member in receipt.member_changes[-1].members if member.id == ROTATED)
    assert rotated.public_key == crypto.public_key_bytes(chain.keys[ROTATED])
    proven = verify_receipt(receipt, chain.genesis, anchors=ANCHORS)
    assert ROTATED in proven.signers and proven.members == 4
    assert proven.transaction.signer == rotated.public_key


def test_a_certificate_with_a_rotated_out_key_fails(chain: Chain) -> None:
    old_key = chain.old_keys[ROTATED]
    receipt = chain.receipt(AFTER_ROTATION)
    keys = {**chain.keys_at(7, [METROPOLE, SAINT_LEGER]), ROTATED: old_key}
    certificate = forged_certificate(chain, receipt.header, keys)
    error = failure(receipt.model_copy(update={"certificate": certificate}), chain.genesis)
    assert error.step == "block" and f"bad signature from {ROTATED!r}" in str(error)
    # Before the rotation took effect the old key certified, and the new one could not.
    rotation = build_receipt(chain.store, chain.transactions["rotate_key"].tx_id)
    assert rotation is not None and rotation.height == 6
    assert ROTATED in verify_receipt(rotation, chain.genesis, anchors=ANCHORS).signers
    keys[ROTATED] = chain.keys[ROTATED]
    certificate = forged_certificate(chain, rotation.header, keys)
    error = failure(rotation.model_copy(update={"certificate": certificate}), chain.genesis)
    assert error.step == "block" and f"bad signature from {ROTATED!r}" in str(error)


@pytest.mark.parametrize("dropped", [0, 1, 2])
def test_omitting_any_member_change_fails(chain: Chain, dropped: int) -> None:
    receipt = chain.receipt(AFTER_ROTATION)
    kept = tuple(c for index, c in enumerate(receipt.member_changes) if index != dropped)
    error = failure(receipt.model_copy(update={"member_changes": kept}), chain.genesis)
    assert error.step == ("block" if dropped == 2 else f"members at height {[4, 6][dropped]}")
    assert "member-set change is missing" in str(error)


def test_member_changes_out_of_order_or_after_the_block_fail(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_ROTATION)
    first, second, third = receipt.member_changes
    for changes in ((first, second, third, second), (first, first, second, third)):
        error = failure(receipt.model_copy(update={"member_changes": changes}), chain.genesis)
        assert error.step == "members" and "out of order" in str(error)
    early = chain.receipt(AFTER_ADMISSION)  # height 3: the change of height 4 comes after it
    late = early.model_copy(update={"member_changes": (first, second)})
    error = failure(late, chain.genesis)
    assert error.step == "members" and "comes after the block" in str(error)


def test_a_member_change_certified_by_the_wrong_set_fails(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_ROTATION)
    first, second, third = receipt.member_changes
    # Block 4 must be certified by the five members in force at 4: a quorum of them plus an
    # outsider is refused, whatever else the receipt holds.
    keys = chain.keys_at(4, [METROPOLE, VILLE, SAINT_LEGER, NEWCOMER])
    keys["intrus"] = key_for("intrus")
    forged = second.model_copy(
        update={"certificate": forged_certificate(chain, second.header, keys)}
    )
    changes = (first, forged, third)
    error = failure(receipt.model_copy(update={"member_changes": changes}), chain.genesis)
    assert error.step == "members at height 4" and "'intrus' is not a member" in str(error)


# --- status proofs ----------------------------------------------------------------------------


def test_a_status_proof_shows_the_act_withdrawn_at_the_tip(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN, with_status=True)
    status = receipt.status
    assert isinstance(status, StatusProof)
    assert status.header.height == TIP and status.key == DEEDS_KEYS.act(METROPOLE, PLAIN)
    # The changes between the act's block and the tip, for the tip's certificate.
    assert [change.header.height for change in status.member_changes] == [2, 4, 6]
    proven = verify_receipt(receipt, chain.genesis, document_of(PLAIN), anchors=ANCHORS)
    assert proven.status_height == TIP and proven.document_matches
    assert proven.status is not None
    assert proven.status["status"] == "withdrawn"
    assert (proven.status["anchored_height"], proven.status["status_height"]) == (1, TIP)
    assert proven.height == 1 and proven.members == 4  # the set of the act's block


def test_a_status_proof_of_an_act_still_in_force(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_ROTATION, with_status=True)
    assert receipt.status is not None and receipt.status.member_changes == ()
    proven = verify_receipt(receipt, chain.genesis, anchors=ANCHORS)
    assert proven.status is not None and proven.status["status"] == "in_force"
    assert proven.status_height == TIP


def test_tampering_with_the_status_fails_at_the_status_step(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN, with_status=True)
    status = receipt.status
    assert status is not None and status.value is not None
    other = chain.receipt(SECOND, with_status=True).status
    assert other is not None
    record = encoding.unpack(status.value)
    in_force = encoding.pack({**record, "status": "in_force"})
    proof = status.proof
    siblings = list(proof.siblings)
    siblings[0] = bytes(b ^ 0xFF for b in siblings[0])
    cases = {
        "the value says in force": {"value": in_force},
        "no value (absent)": {"value": None},
        "another act's key": {"key": other.key},
        "another act's key, value and valid proof": {
            "key": other.key,
            "value": other.value,
            "proof": other.proof,
        },
        "a sibling flipped": {"proof": proof.model_copy(update={"siblings": tuple(siblings)})},
        "a sibling dropped": {"proof": proof.model_copy(update={"siblings": proof.siblings[1:]})},
        "the header of another block": {"header": chain.store.block(TIP - 1).header},
        "the changes omitted": {"member_changes": ()},
    }
    for label, update in cases.items():
        tampered = receipt.model_copy(update={"status": status.model_copy(update=update)})
        error = failure(tampered, chain.genesis)
        assert error.step == "status", (label, str(error))


def test_a_status_certified_before_the_act_fails(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_ROTATION, with_status=True)
    earlier = chain.receipt(AFTER_REMOVAL, with_status=True).status
    assert earlier is not None
    # A status of height 5 (well certified) for an act of height 7.
    moved = earlier.model_copy(
        update={
            "header": chain.store.block(5).header,
            "certificate": chain.store.certificate(5),
            "member_changes": (),
        }
    )
    error = failure(receipt.model_copy(update={"status": moved}), chain.genesis)
    assert error.step == "status" and "before the act's block" in str(error)


def test_a_state_proof_with_half_an_other_leaf_is_refused(chain: Chain) -> None:
    """``other_key_path`` without ``other_value_hash`` (or the reverse) is no state proof: it
    must be refused at decoding or as a receipt that does not verify, never with another
    exception (which ``sceau verify`` would show as a traceback)."""
    status = canonical(chain.receipt(PLAIN, with_status=True))
    status["status"]["proof"]["other_key_path"] = bytes(32)
    change = canonical(chain.receipt(AFTER_ADMISSION))
    change["member_changes"][0]["proof"]["other_value_hash"] = bytes(32)
    for document, step in ((status, "status"), (change, "members")):
        try:
            tampered = Receipt.from_canonical(document)
        except ModelDecodeError:
            continue
        assert failure(tampered, chain.genesis).step.startswith(step)


def members_status_on_a_non_anchor(chain: Chain) -> Receipt:
    """The rotation's receipt with a genuine, certified proof of ``membership/members`` at the
    tip as its "status": every part is real, but it is no act's record."""
    receipt = build_receipt(chain.store, chain.transactions["rotate_key"].tx_id)
    assert receipt is not None
    header = chain.store.block(TIP).header
    act_status = chain.receipt(PLAIN, with_status=True).status
    assert act_status is not None
    status = StatusProof(
        header=header,
        certificate=chain.store.certificate(TIP),
        member_changes=tuple(
            change for change in act_status.member_changes if change.header.height >= 6
        ),
        key=MEMBERS_STATE_KEY,
        value=chain.store.state_get_at(MEMBERS_STATE_KEY, header.state_root),
        proof=StateProofDocument.of(chain.store.state_prove(MEMBERS_STATE_KEY, header.state_root)),
    )
    return receipt.model_copy(update={"status": status})


def test_a_status_proof_on_a_receipt_of_a_non_anchor_is_refused(chain: Chain) -> None:
    """A status is an act's record; on another transaction's receipt the proven key is
    nobody's record (here the member list, which is no status at all)."""
    error = failure(members_status_on_a_non_anchor(chain), chain.genesis)
    assert error.step == "status"


# --- tampering, field by field ----------------------------------------------------------------


@pytest.mark.parametrize("reference", [reference for reference, _ in RECEIPTS_TO_TAMPER])
def test_every_field_of_a_receipt_changed_is_detected(
    chain: Chain, tamperable: dict[str, dict[str, Any]], reference: str
) -> None:
    document = tamperable[reference]
    assert verify_receipt(Receipt.from_canonical(document), chain.genesis, anchors=ANCHORS)
    detected = 0
    paths = list(leaf_paths(document))
    for path in paths:
        value = get_at(document, path)
        if path == ("format",):
            continue  # a literal: any other value does not decode
        for choice in (0, 7):
            tampered = replaced(document, path, mutated_scalar(value, choice))
            error = assert_detected(tampered, chain.genesis, path, f"scalar {choice}")
            detected += error is not None
    # Most changes decode (then verification names them); only few are refused at decoding.
    assert detected > len(paths)


@pytest.mark.parametrize("reference", [reference for reference, _ in RECEIPTS_TO_TAMPER])
def test_every_list_of_a_receipt_shortened_or_extended_is_detected(
    chain: Chain, tamperable: dict[str, dict[str, Any]], reference: str
) -> None:
    document = tamperable[reference]
    for path in list_paths(document):
        items = get_at(document, path)
        for how, changed in (
            ("drop first", items[1:]),
            ("drop last", items[:-1]),
            ("repeat first", [items[0], *items]),
            ("reverse", items[::-1]),
        ):
            if changed == items:
                continue
            assert_detected(replaced(document, path, changed), chain.genesis, path, how)


MUTATIONS = ("scalar", "drop", "repeat", "swap", "set none")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_tampering_of_a_receipt_is_detected(
    chain: Chain, tamperable: dict[str, dict[str, Any]], data: st.DataObject
) -> None:
    reference = data.draw(st.sampled_from([reference for reference, _ in RECEIPTS_TO_TAMPER]))
    document = tamperable[reference]
    mutation = data.draw(st.sampled_from(MUTATIONS), label="mutation")
    if mutation in ("scalar", "set none"):
        path = data.draw(st.sampled_from(list(leaf_paths(document))), label="path")
        if path == ("format",):
            return
        value = get_at(document, path)
        if mutation == "set none":
            if value is None:
                return
            new_value = None
        else:
            new_value = mutated_scalar(value, data.draw(st.integers(0, 2**16), label="choice"))
    else:
        path = data.draw(st.sampled_from(list(list_paths(document))), label="path")
        items = get_at(document, path)
        index = data.draw(st.integers(0, len(items) - 1), label="index")
        if mutation == "drop":
            new_value = items[:index] + items[index + 1 :]
        elif mutation == "repeat":
            new_value = [*items[: index + 1], items[index], *items[index + 1 :]]
        else:
            other = data.draw(st.integers(0, len(items) - 1), label="other")
            new_value = list(items)
            new_value[index], new_value[other] = new_value[other], new_value[index]
            if new_value == items:
                return
    assert_detected(replaced(document, path, new_value), chain.genesis, path, mutation)


def test_a_receipt_with_a_transaction_signed_for_another_chain_is_refused(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN)
    args = dict(chain.acts[PLAIN].args)
    foreign = Transaction.create(
        chain.keys[METROPOLE],
        chain_id=sha256(b"another chain"),
        contract="deeds",
        action="anchor",
        args=args,
        nonce=1,
        expiry_height=10,
    )
    error = failure(receipt.model_copy(update={"transaction": foreign.encoded}), chain.genesis)
    assert error.step == "transaction" and "another consortium" in str(error)
    resigned = Transaction.create(
        chain.keys[METROPOLE],
        chain_id=chain.genesis.chain_id,
        contract="deeds",
        action="anchor",
        args={**args, "title": "Un autre titre"},
        nonce=chain.acts[PLAIN].nonce,
        expiry_height=chain.acts[PLAIN].expiry_height,
    )
    error = failure(receipt.model_copy(update={"transaction": resigned.encoded}), chain.genesis)
    assert error.step == "inclusion"
    error = failure(receipt.model_copy(update={"transaction": b"\x91\x01"}), chain.genesis)
    assert error.step == "transaction" and "does not decode" in str(error)


def test_a_transaction_moved_to_another_position_fails_inclusion(chain: Chain) -> None:
    second = chain.receipt(SECOND)
    for position in (0, 2, 3, 2**31):
        error = failure(second.model_copy(update={"position": position}), chain.genesis)
        assert error.step == "inclusion"
    # The proof of another leaf of the same block does not prove this one.
    third = chain.receipt(THIRD)
    swapped = second.model_copy(update={"inclusion_proof": third.inclusion_proof})
    assert failure(swapped, chain.genesis).step == "inclusion"


# --- certificates inside receipts -------------------------------------------------------------


def test_the_receipts_own_certificate_can_be_rebuilt_and_verifies(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN)
    rebuilt = forged_certificate(chain, receipt.header, [METROPOLE, VILLE, SAINT_LEGER])
    assert rebuilt == receipt.certificate
    assert verify_receipt(with_certificate(receipt, rebuilt), chain.genesis, anchors=ANCHORS)


def test_duplicate_signers_do_not_make_a_quorum(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN)
    signatures = receipt.certificate.signatures
    duplicated = (signatures[0], signatures[0], signatures[1])
    # Decoding refuses them: entries sorted by member id, each member once.
    document = canonical(receipt)
    document["certificate"]["signatures"] = [list(pair) for pair in duplicated]
    with pytest.raises(ModelDecodeError, match="each member once"):
        Receipt.from_canonical(document)
    with pytest.raises(ValueError, match="each member once"):
        Receipt.model_validate_json(
            json.dumps(
                {
                    **receipt.model_dump(mode="json"),
                    "certificate": {
                        **receipt.certificate.model_dump(mode="json"),
                        "signatures": [[member_id, sig.hex()] for member_id, sig in duplicated],
                    },
                }
            )
        )
    # A certificate built around the validator: two distinct signers are not a quorum of 4.
    certificate = CommitCertificate.model_construct(
        height=receipt.certificate.height,
        view=receipt.certificate.view,
        block_hash=receipt.certificate.block_hash,
        signatures=duplicated,
    )
    error = failure(with_certificate(receipt, certificate), chain.genesis)
    assert error.step == "block"


def test_a_non_member_signer_fails(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN)
    quorum = chain.keys_at(1, [METROPOLE, VILLE, SAINT_LEGER])
    cases = {
        "'intrus' is not a member": {**quorum, "intrus": key_for("intrus")},
        # A member's id with a key that is not its node key.
        f"bad signature from {METROPOLE!r}": {**quorum, METROPOLE: key_for("intrus")},
        # The newcomer was not a member yet at height 1.
        f"{NEWCOMER!r} is not a member": {**quorum, NEWCOMER: chain.keys[NEWCOMER]},
    }
    for message, keys in cases.items():
        certificate = forged_certificate(chain, receipt.header, keys)
        error = failure(with_certificate(receipt, certificate), chain.genesis)
        assert error.step == "block" and message in str(error)


def test_too_few_signatures_fail(chain: Chain) -> None:
    for reference, members in ((PLAIN, 4), (AFTER_ADMISSION, 5), (AFTER_ROTATION, 4)):
        receipt = chain.receipt(reference)
        signatures = receipt.certificate.signatures
        assert len(signatures) == quorum_size(members)
        for dropped in range(len(signatures)):
            fewer = signatures[:dropped] + signatures[dropped + 1 :]
            certificate = receipt.certificate.model_copy(update={"signatures": fewer})
            error = failure(with_certificate(receipt, certificate), chain.genesis)
            assert error.step == "block"
            assert (
                f"{len(fewer)} valid signatures of distinct members, {quorum_size(members)} needed"
                in str(error)
            )


def test_signatures_for_another_view_or_height_fail(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_REMOVAL)
    signers = [VILLE, SAINT_LEGER, NEWCOMER]
    header = receipt.header
    cases = {
        "signed for the next view, claims the block's": forged_certificate(
            chain, header, signers, signed_view=header.view + 1
        ),
        "signed for the block's view, claims the next": forged_certificate(
            chain, header, signers, view=header.view + 1, signed_view=header.view
        ),
        "signed for the next height": forged_certificate(
            chain, header, signers, signed_height=header.height + 1
        ),
        "signed for another block": forged_certificate(
            chain, header, signers, signed_block_hash=sha256(b"another block")
        ),
        "signed for another consortium": forged_certificate(
            chain, header, signers, signed_chain_id=sha256(b"another chain")
        ),
    }
    for label, certificate in cases.items():
        error = failure(with_certificate(receipt, certificate), chain.genesis)
        assert error.step == "block" and "bad signature" in str(error), (label, str(error))


def test_a_certificate_naming_another_block_fails(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_REMOVAL)
    other = chain.store.certificate(4)
    for certificate in (
        other,
        receipt.certificate.model_copy(update={"height": 6}),
        receipt.certificate.model_copy(update={"block_hash": other.block_hash}),
    ):
        error = failure(with_certificate(receipt, certificate), chain.genesis)
        assert error.step == "block"
        assert "block: certificate.height: is" in str(error) or (
            "block: certificate.block_hash: is not the hash of the block's header" in str(error)
        )


def test_a_block_may_be_committed_in_a_later_view_never_an_earlier_one(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN)
    signers = [METROPOLE, VILLE, SAINT_LEGER]
    later = forged_certificate(chain, receipt.header, signers, view=3)
    assert (
        verify_receipt(with_certificate(receipt, later), chain.genesis, anchors=ANCHORS).height == 1
    )
    # A header proposed in view 4 (whose primary is the proposer's, as in view 0), with a
    # certificate of view 1: re-sign both.
    header = receipt.header.model_copy(update={"view": 4})
    earlier = forged_certificate(chain, header, signers, view=1)
    tampered = receipt.model_copy(update={"header": header, "certificate": earlier})
    error = failure(tampered, chain.genesis)
    assert str(error) == "block: certificate.view: 1 is before the view 4 the block was proposed in"


def test_a_header_of_another_consortium_fails_even_if_certified(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN)
    header = receipt.header.model_copy(update={"chain_id": sha256(b"another chain")})
    certificate = forged_certificate(chain, header, [METROPOLE, VILLE, SAINT_LEGER])
    tampered = receipt.model_copy(update={"header": header, "certificate": certificate})
    error = failure(tampered, chain.genesis)
    assert str(error) == "block: header.chain_id: is not the chain_id of this genesis"


# --- the JSON and msgpack forms ---------------------------------------------------------------

TOP_LEVEL_KEYS = [
    "format",
    "chain_id",
    "transaction",
    "height",
    "position",
    "inclusion_proof",
    "header",
    "certificate",
    "member_changes",
    "status",
]


@pytest.mark.parametrize(
    ("reference", "with_status"), [(PLAIN, False), (PLAIN, True), (AFTER_ROTATION, True)]
)
def test_json_and_msgpack_forms_round_trip_and_verify(
    chain: Chain, reference: str, with_status: bool
) -> None:
    receipt = chain.receipt(reference, with_status=with_status)
    text = receipt.model_dump_json(indent=2)
    from_json = Receipt.model_validate_json(text)
    assert from_json == receipt
    data = receipt.to_bytes()
    from_bytes = Receipt.from_bytes(data)
    assert from_bytes == receipt
    assert encoding.pack(encoding.unpack(data)) == data  # canonical: one byte form
    assert from_json.to_bytes() == data and from_bytes.model_dump_json(indent=2) == text
    for decoded in (from_json, from_bytes):
        proven = verify_receipt(decoded, chain.genesis, document_of(reference), anchors=ANCHORS)
        assert proven.document_matches and proven.act["reference"] == reference
    assert len(data) < len(text.encode())  # the compact form is compact


def test_the_json_form_is_stable(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_ROTATION, with_status=True)
    document = json.loads(receipt.model_dump_json())
    assert list(document) == TOP_LEVEL_KEYS
    assert document["format"] == "sceau-receipt/v1"
    assert document["chain_id"] == chain.genesis.chain_id.hex()
    assert document["transaction"] == chain.acts[AFTER_ROTATION].encoded.hex()
    assert (document["height"], document["position"]) == (7, 0)
    assert document["inclusion_proof"] == []
    format_1_fields = [
        name for name in BlockHeader.model_fields if name not in ("log_size", "log_root")
    ]
    assert list(document["header"]) == format_1_fields  # a format 1 chain: no log fields
    assert "block_hash" not in document["header"]  # computed, never carried
    assert list(document["certificate"]) == ["height", "view", "block_hash", "signatures"]
    assert document["certificate"]["signatures"][0] == [
        receipt.certificate.signatures[0][0],
        receipt.certificate.signatures[0][1].hex(),
    ]
    change = document["member_changes"][-1]
    assert list(change) == ["header", "certificate", "members", "proof"]
    assert list(change["proof"]) == ["siblings", "other_key_path", "other_value_hash"]
    rotated = next(member for member in change["members"] if member["id"] == ROTATED)
    assert list(rotated) == ["id", "name", "public_key", "endpoint"]
    assert rotated["public_key"] == crypto.public_key_to_text(
        crypto.public_key_bytes(chain.keys[ROTATED])
    )
    assert rotated["public_key"].startswith("ed25519:")
    status = document["status"]
    assert list(status) == ["header", "certificate", "member_changes", "key", "value", "proof"]
    assert status["key"] == DEEDS_KEYS.act(ROTATED, AFTER_ROTATION).hex()
    hexes = [
        document["chain_id"],
        document["transaction"],
        document["header"]["tx_root"],
        status["value"],
        *change["proof"]["siblings"],
    ]
    assert all(text == text.lower() and bytes.fromhex(text) for text in hexes)
    assert json.loads(chain.receipt(PLAIN).model_dump_json())["status"] is None


def test_the_canonical_form_has_every_field_and_nothing_else(chain: Chain) -> None:
    document = canonical(chain.receipt(PLAIN))
    assert sorted(document) == sorted(TOP_LEVEL_KEYS)
    for missing in TOP_LEVEL_KEYS:
        incomplete = {key: value for key, value in document.items() if key != missing}
        with pytest.raises(ModelDecodeError, match=missing):
            Receipt.from_canonical(incomplete)
    with pytest.raises(ModelDecodeError):
        Receipt.from_canonical({**document, "extra": 1})
    with pytest.raises(ModelDecodeError):
        Receipt.from_canonical({**document, "format": "sceau-receipt/v2"})


# --- what the API serves ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reference", "with_status"),
    [(PLAIN, False), (PLAIN, True), (AFTER_ADMISSION, False), (AFTER_ROTATION, True)],
)
def test_the_api_receipt_is_the_receipts_json_form(
    chain: Chain, reference: str, with_status: bool
) -> None:
    tx_id = chain.acts[reference].tx_id
    served = display.receipt_for(chain.store, tx_id, anchors=ANCHORS if with_status else ())
    receipt = chain.receipt(reference, with_status=with_status)
    assert served == receipt.to_canonical()
    shown = display.to_display(served)
    assert shown == receipt.model_dump(mode="json")
    # What `sceau anchor` writes (json.dumps of the API's document) is a valid receipt file.
    saved = json.dumps(shown, indent=2) + "\n"
    assert Receipt.model_validate_json(saved) == receipt
    assert verify_receipt(Receipt.model_validate_json(saved), chain.genesis, anchors=ANCHORS)


# --- the command line -------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def files(chain: Chain, other_genesis: Genesis, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The files a person verifying receipts would hold, in one folder."""
    folder = tmp_path_factory.mktemp("verify")
    (folder / "genesis.json").write_text(chain.genesis.model_dump_json(indent=2) + "\n")
    (folder / "other-genesis.json").write_text(other_genesis.model_dump_json(indent=2) + "\n")
    (folder / "deliberation.pdf").write_bytes(document_of(PLAIN))
    altered = document_of(PLAIN).replace(b"Acte", b"acte")
    (folder / "deliberation-altered.pdf").write_bytes(altered)
    plain = chain.receipt(PLAIN)
    (folder / "plain.receipt.json").write_text(plain.model_dump_json(indent=2) + "\n")
    (folder / "plain.receipt.msgpack").write_bytes(plain.to_bytes())
    status = chain.receipt(PLAIN, with_status=True).model_dump_json(indent=2)
    (folder / "status.receipt.json").write_text(status)
    rotated = chain.receipt(AFTER_ROTATION).model_dump_json(indent=2)
    (folder / "rotated.receipt.json").write_text(rotated)
    removed = chain.receipt(AFTER_REMOVAL)
    certificate = forged_certificate(chain, removed.header, [REMOVED, METROPOLE, NEWCOMER])
    forged = with_certificate(removed, certificate).model_dump_json()
    (folder / "forged.receipt.json").write_text(forged)
    (folder / "truncated.receipt.json").write_text(plain.model_dump_json(indent=2)[:300])
    (folder / "garbage.receipt").write_bytes(b"\x93\x01\x02")
    half = json.loads(chain.receipt(PLAIN, with_status=True).model_dump_json())
    half["status"]["proof"]["other_key_path"] = bytes(32).hex()
    (folder / "half-proof.receipt.json").write_text(json.dumps(half))
    non_anchor = members_status_on_a_non_anchor(chain).model_dump_json()
    (folder / "non-anchor-status.receipt.json").write_text(non_anchor)
    return folder


SUBPROCESS_CASES = {
    "plain": ["plain.receipt.json", "--genesis", "genesis.json"],
    "document": [
        *("plain.receipt.json", "--genesis", "genesis.json"),
        *("--document", "deliberation.pdf"),
    ],
    "altered": [
        *("plain.receipt.json", "--genesis", "genesis.json"),
        *("--document", "deliberation-altered.pdf"),
    ],
    "other genesis": ["plain.receipt.json", "--genesis", "other-genesis.json"],
    "msgpack": [
        *("plain.receipt.msgpack", "--genesis", "genesis.json"),
        *("--document", "deliberation.pdf"),
    ],
    "status": ["status.receipt.json", "--genesis", "genesis.json"],
    "truncated": ["truncated.receipt.json", "--genesis", "genesis.json"],
}
"""``sceau verify`` runs made as a person makes them: one process each (in the files' folder)."""


@pytest.fixture(scope="module")
def cli(files: Path) -> dict[str, Run]:
    """Run every case of SUBPROCESS_CASES at once and collect what each did."""
    children = {
        name: subprocess.Popen(
            [*SCEAU, "verify", *arguments],
            cwd=files,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        for name, arguments in SUBPROCESS_CASES.items()
    }
    results = {}
    for name, child in children.items():
        try:
            out, err = child.communicate(timeout=COMMAND_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            child.kill()
            child.communicate()
            raise
        results[name] = Run(child.returncode, out, err)
    return results


def verify_in_process(
    files: Path, capsys: pytest.CaptureFixture[str], receipt: str, genesis: str = "genesis.json"
) -> Run:
    """``sceau verify`` through ``node.tools.cli.main``: the same code, without a process start."""
    from node.tools.cli import main

    capsys.readouterr()
    returncode = main(["verify", str(files / receipt), "--genesis", str(files / genesis)])
    captured = capsys.readouterr()
    return Run(returncode, captured.out, captured.err)


def assert_verified(run: Run) -> str:
    assert run.returncode == 0, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert "Traceback" not in run.stderr and run.stdout.startswith("VERIFIED")
    return run.stdout


def assert_not_verified(run: Run, *fragments: str) -> str:
    assert run.returncode == 1, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert "Traceback" not in run.stderr and "VERIFIED" not in run.stdout
    assert run.stderr.startswith("NOT VERIFIED"), run.stderr
    for fragment in fragments:
        assert fragment in run.stderr, (fragment, run.stderr)
    return run.stderr


def assert_unusable(run: Run, *fragments: str) -> str:
    assert run.returncode == 2, f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"
    assert "Traceback" not in run.stderr
    error = run.stderr.strip()
    assert len(error.splitlines()) == 1 and error.startswith("sceau: error:"), error
    for fragment in fragments:
        assert fragment in error, (fragment, error)
    return error


def test_cli_verify_prints_what_the_receipt_proves(cli: dict[str, Run], chain: Chain) -> None:
    out = assert_verified(cli["plain"])
    when = datetime.datetime.fromtimestamp(FIRST_BLOCK_TIMESTAMP_MS / 1000, datetime.UTC)
    assert f"{METROPOLE}/{PLAIN}" in out  # issuer and reference
    assert "deliberation" in out and "dated 2026-11-28" in out
    assert "height 1," in out and f"{when:%Y-%m-%d %H:%M:%S} UTC" in out
    assert "2026-11-30 09:00:00 UTC" in out
    assert hashlib.sha256(document_of(PLAIN)).hexdigest() in out
    assert "certified by 3 of 4 members" in out
    assert chain.genesis.consortium in out
    assert "matches" not in out and "status:" not in out


def test_cli_verify_with_the_document(cli: dict[str, Run]) -> None:
    assert "deliberation.pdf matches the anchored digest" in assert_verified(cli["document"])


def test_cli_verify_with_an_altered_document_fails(cli: dict[str, Run]) -> None:
    assert_not_verified(cli["altered"], "document", "not the anchored digest")


def test_cli_verify_names_the_failed_check_once(cli: dict[str, Run]) -> None:
    error = assert_not_verified(cli["altered"])
    assert error.strip() == "NOT VERIFIED — document: its SHA-256 is not the anchored digest"


def test_cli_verify_against_another_consortium_fails(cli: dict[str, Run]) -> None:
    assert_not_verified(cli["other genesis"], "chain", "another consortium")


def test_cli_verify_accepts_the_msgpack_form(cli: dict[str, Run]) -> None:
    out = assert_verified(cli["msgpack"])
    assert f"{METROPOLE}/{PLAIN}" in out and "matches the anchored digest" in out


def test_cli_verify_prints_the_proven_status(cli: dict[str, Run]) -> None:
    out = assert_verified(cli["status"])
    assert f"  status:    withdrawn since height {TIP} (status as of height {TIP})\n" in out


def test_cli_verify_follows_the_member_changes(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = assert_verified(verify_in_process(files, capsys, "rotated.receipt.json"))
    assert f"{ROTATED}/{AFTER_ROTATION}" in out and "height 7," in out
    assert "2026-11-30 09:06:00 UTC" in out and "certified by 3 of 4 members" in out


def test_cli_verify_refuses_a_removed_members_certificate(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = verify_in_process(files, capsys, "forged.receipt.json")
    assert_not_verified(run, "block", f"{REMOVED!r} is not a member")


def test_cli_verify_reports_a_malformed_receipt_without_a_traceback(
    cli: dict[str, Run], files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert_unusable(cli["truncated"], "truncated.receipt.json is not a receipt")
    garbage = verify_in_process(files, capsys, "garbage.receipt")
    assert_unusable(garbage, "garbage.receipt is not a receipt")
    assert_unusable(verify_in_process(files, capsys, "no-such.receipt.json"), "cannot read")


def test_cli_verify_refuses_a_half_filled_state_proof_without_a_traceback(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = verify_in_process(files, capsys, "half-proof.receipt.json")
    if run.returncode == 2:
        assert_unusable(run, "half-proof.receipt.json is not a receipt")
    else:
        assert_not_verified(run, "status")


def test_cli_verify_of_a_non_anchor_with_a_foreign_status_does_not_crash(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = verify_in_process(files, capsys, "non-anchor-status.receipt.json")
    assert run.returncode in (0, 1) and "Traceback" not in run.stderr
    if run.returncode == 1:
        assert_not_verified(run, "status")


def test_cli_verify_reports_a_file_that_is_no_genesis_in_one_line(
    files: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = verify_in_process(files, capsys, "plain.receipt.json", genesis="deliberation.pdf")
    assert_unusable(run, "deliberation.pdf is not a valid genesis")


# --- status receipts from a running node: the API, the client, `sceau receipt` ----------------


@dataclass
class ServedNode:
    """A one-member consortium's node, its API on a real socket, run by a loop in a thread
    (so that the synchronous client and the command line, each with its own loop, reach it)."""

    consortium: LocalConsortium
    url: str
    loop: asyncio.AbstractEventLoop
    tips: dict[str, int]
    """Heights: ``anchored``, ``withdrawn`` (its status change), ``tip`` (a later block)."""
    tx_ids: dict[str, str]
    """The anchor, the withdrawal (a transaction that anchors nothing) and a rejected
    anchor (never committed), as hex."""

    def call(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(COMMAND_TIMEOUT_S)

    def get(self, path: str) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(self.url + path, timeout=COMMAND_TIMEOUT_S) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


SERVED_ACT = "2026-DEL-900"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedNode]:
    from support import served_node

    from ledger.client import Client, TransactionRejected

    consortium = LocalConsortium.create(
        [(METROPOLE, "Métropole de Valbrune")], seed=SEED + b"/served", contracts=CONTRACTS
    )
    folder = tmp_path_factory.mktemp("served") / "node"
    with served_node(folder, consortium, METROPOLE, timeout_s=COMMAND_TIMEOUT_S) as (url, loop):
        with Client(url, signer=consortium.keys[METROPOLE]) as client:
            anchored = client.anchor(
                issuer=METROPOLE,
                reference=SERVED_ACT,
                kind="deliberation",
                digest=hashlib.sha256(document_of(SERVED_ACT)).digest(),
                act_date="2026-11-28",
                title="Délibération servie",
            )
            withdrawn = client.change_status(
                "withdraw", issuer=METROPOLE, reference=SERVED_ACT, reason="Retirée"
            )
            later = client.anchor(
                issuer=METROPOLE,
                reference="2026-DEL-901",
                kind="deliberation",
                digest=hashlib.sha256(b"later").digest(),
                act_date="2026-11-29",
                title="Une délibération plus tardive",
            )
            try:  # the same reference again: refused by the deeds contract, never committed
                client.anchor(
                    issuer=METROPOLE,
                    reference=SERVED_ACT,
                    kind="deliberation",
                    digest=hashlib.sha256(b"another document").digest(),
                    act_date="2026-11-30",
                    title="Une référence déjà prise",
                )
            except TransactionRejected as error:
                rejected = error.tx_id
            else:
                raise AssertionError("a duplicate reference was committed")
        tips = {
            "anchored": anchored["height"],
            "withdrawn": withdrawn["height"],
            "tip": later["height"],
        }
        tx_ids = {
            "anchor": anchored["tx_id"],
            "withdraw": withdrawn["tx_id"],
            "rejected": rejected,
        }
        assert tips["anchored"] < tips["withdrawn"] < tips["tip"], tips
        yield ServedNode(consortium, url, loop, tips, tx_ids)


def test_the_api_serves_a_status_receipt_that_proves_the_withdrawal(served: ServedNode) -> None:
    status, document = served.get(f"/v1/transactions/{served.tx_ids['anchor']}?with_status=true")
    assert status == 200 and document["status"] == "committed"
    receipt = Receipt.model_validate_json(json.dumps(document["receipt"]))
    proven = verify_receipt(receipt, served.consortium.genesis, anchors=ANCHORS)
    assert proven.status is not None and proven.status["status"] == "withdrawn"
    assert proven.status["status_height"] == served.tips["withdrawn"]  # the last change
    assert proven.status_height == served.tips["tip"]  # the header that proves it
    plain = served.get(f"/v1/transactions/{served.tx_ids['anchor']}")[1]["receipt"]
    explicit = served.get(f"/v1/transactions/{served.tx_ids['anchor']}?with_status=false")
    assert plain["status"] is None and explicit[1]["receipt"] == plain


def test_with_status_on_a_transaction_that_anchors_nothing_gives_a_receipt_without_status(
    served: ServedNode,
) -> None:
    status, document = served.get(f"/v1/transactions/{served.tx_ids['withdraw']}?with_status=true")
    assert status == 200 and document["receipt"]["status"] is None
    receipt = Receipt.model_validate_json(json.dumps(document["receipt"]))
    assert verify_receipt(receipt, served.consortium.genesis, anchors=ANCHORS).act is None


def test_with_status_takes_only_true_or_false(served: ServedNode) -> None:
    for value in ("yes", "1", "", "TRUE"):
        status, problem = served.get(
            f"/v1/transactions/{served.tx_ids['anchor']}?with_status={value}"
        )
        assert (status, problem["code"]) == (400, "invalid_parameter")
        assert "with_status" in problem["detail"]


def test_the_openapi_document_lists_with_status(served: ServedNode) -> None:
    document = served.get("/openapi.json")[1]
    parameters = document["paths"]["/v1/transactions/{tx_id}"]["get"]["parameters"]
    listed = {parameter["name"]: parameter for parameter in parameters}
    assert listed["with_status"]["in"] == "query"
    assert listed["with_status"]["schema"] == {"type": "boolean"}


def test_the_client_fetches_a_receipt_with_or_without_status(served: ServedNode) -> None:
    from ledger.client import AsyncClient, Client

    with Client(served.url) as client:
        with_status = client.receipt(served.tx_ids["anchor"], with_status=True)
        without = client.receipt(bytes.fromhex(served.tx_ids["anchor"]))
    assert with_status is not None and with_status["status"] is not None
    assert without is not None and without["status"] is None
    assert "with_status" in inspect.signature(AsyncClient.receipt).parameters


def run_cli(capsys: pytest.CaptureFixture[str], *arguments: str) -> Run:
    from node.tools.cli import main

    capsys.readouterr()
    returncode = main([str(argument) for argument in arguments])
    captured = capsys.readouterr()
    return Run(returncode, captured.out, captured.err)


def test_sceau_receipt_saves_a_status_receipt_that_sceau_verify_explains(
    served: ServedNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(served.consortium.genesis.model_dump_json(indent=2))
    out = tmp_path / "act.receipt.json"
    tx_id = served.tx_ids["anchor"]
    run = run_cli(capsys, "receipt", tx_id, "--with-status", "--out", out, "--api", served.url)
    assert run.returncode == 0, run
    assert run.stdout == f"receipt of {tx_id} (height 1, with the status) saved to {out}\n"
    verified = assert_verified(run_cli(capsys, "verify", out, "--genesis", genesis))
    withdrawn, tip = served.tips["withdrawn"], served.tips["tip"]
    assert f"  status:    withdrawn since height {withdrawn} (status as of height {tip})\n" in (
        verified
    )
    again = run_cli(capsys, "receipt", tx_id, "--out", out, "--api", served.url)
    assert_unusable(again, f"{out} exists; use --force")
    forced = run_cli(capsys, "receipt", tx_id, "--out", out, "--force", "--api", served.url)
    assert forced.returncode == 0 and "with the status" not in forced.stdout
    assert Receipt.model_validate_json(out.read_text()).status is None


def test_sceau_receipt_prints_the_receipt_without_out(
    served: ServedNode, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_cli(capsys, "receipt", served.tx_ids["withdraw"], "--api", served.url)
    assert run.returncode == 0, run
    receipt = Receipt.model_validate_json(run.stdout)
    assert Transaction.from_bytes(receipt.transaction).action == "withdraw"


def test_sceau_receipt_refuses_a_missing_folder_before_any_network_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Nothing listens at this URL: an attempt to reach it would be reported as unreachable.
    nowhere = "http://127.0.0.1:9"
    missing = tmp_path / "no-such-folder" / "r.json"
    run = run_cli(capsys, "receipt", "ab" * 32, "--out", missing, "--api", nowhere)
    assert_unusable(run, f"the folder {missing.parent} does not exist")
    folder = run_cli(capsys, "receipt", "ab" * 32, "--out", tmp_path, "--api", nowhere)
    assert_unusable(folder, "is a folder")
    bad_id = run_cli(capsys, "receipt", "not-an-id", "--api", nowhere)
    assert_unusable(bad_id, "is not a transaction id")


def test_sceau_receipt_of_an_unknown_transaction_says_so(
    served: ServedNode, capsys: pytest.CaptureFixture[str]
) -> None:
    run = run_cli(capsys, "receipt", "ab" * 32, "--api", served.url)
    assert_unusable(run, "unknown_transaction")


# --- docs/audit_receipts.md: its examples are the real output ----------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs" / "audit_receipts.md"


def write_documented_files(chain: Chain, other_genesis: Genesis, folder: Path) -> None:
    """The files the examples of docs/audit_receipts.md name, made as the page describes."""
    (folder / "genesis.json").write_text(chain.genesis.model_dump_json(indent=2) + "\n")
    (folder / "other-genesis.json").write_text(other_genesis.model_dump_json(indent=2) + "\n")
    for reference in (PLAIN, AFTER_ROTATION):
        (folder / f"{reference}.pdf").write_bytes(document_of(reference))
    altered = document_of(PLAIN).replace(b"Acte", b"acte")
    (folder / f"{PLAIN}-altered.pdf").write_bytes(altered)
    saved = {
        f"{PLAIN}.pdf.receipt.json": chain.receipt(PLAIN),
        f"{PLAIN}.status.receipt.json": chain.receipt(PLAIN, with_status=True),
        f"{AFTER_ROTATION}.receipt.json": chain.receipt(AFTER_ROTATION, with_status=True),
    }
    removed = chain.receipt(AFTER_REMOVAL)
    certificate = forged_certificate(chain, removed.header, [REMOVED, METROPOLE, NEWCOMER])
    saved["forged.receipt.json"] = with_certificate(removed, certificate)
    rotated = chain.receipt(AFTER_ROTATION)
    saved["missing-change.receipt.json"] = rotated.model_copy(
        update={"member_changes": rotated.member_changes[:-1]}
    )
    for name, receipt in saved.items():
        (folder / name).write_text(receipt.model_dump_json(indent=2) + "\n")


def documented_section(heading: str) -> str:
    """The section of docs/audit_receipts.md that starts at ``heading``."""
    text = DOCS.read_text()
    start = text.index(f"\n## {heading}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def documented_blocks(heading: str) -> list[str]:
    """The fenced blocks of the section of docs/audit_receipts.md that starts at ``heading``."""
    return re.findall(r"\n```[a-z]*\n(.*?)\n```", documented_section(heading), flags=re.DOTALL)


def documented_runs(blocks: list[str]) -> list[tuple[str, str]]:
    """``(command line, its documented output)`` of every ``$ sceau …`` in ``blocks``."""
    runs: list[tuple[str, str]] = []
    for block in blocks:
        for part in re.split(r"^\$ ", block, flags=re.MULTILINE)[1:]:
            command, _, output = part.partition("\n")
            runs.append((command, output))
    return runs


@pytest.fixture(scope="module")
def documented(
    chain: Chain, other_genesis: Genesis, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("documented")
    write_documented_files(chain, other_genesis, folder)
    return folder


def test_the_sceau_verify_examples_of_the_docs_are_its_real_output(
    documented: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from node.tools.cli import main

    monkeypatch.chdir(documented)
    runs = documented_runs(documented_blocks("5. Verifying with `sceau verify`"))
    assert len(runs) >= 9 and all(command.startswith("sceau verify ") for command, _ in runs)
    for command, output in runs:
        capsys.readouterr()
        returncode = main(shlex.split(command)[1:])
        captured = capsys.readouterr()
        shown = captured.out + captured.err + (f"[exit {returncode}]" if returncode else "")
        assert shown.rstrip("\n") == output.rstrip("\n"), command


def test_the_library_examples_of_the_docs_print_what_they_show(
    documented: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(documented)
    blocks = documented_blocks("7. Checking by hand with the library")
    pairs = [(code, shown) for code, shown in itertools.pairwise(blocks) if "import" in code]
    assert len(pairs) == 2
    for code, shown in pairs:
        capsys.readouterr()
        exec(compile(code, str(DOCS), "exec"), {"__name__": "docs_example"})
        assert capsys.readouterr().out.rstrip("\n") == shown.rstrip("\n")


def test_the_sizes_the_docs_give_for_both_forms_are_true(chain: Chain) -> None:
    section = documented_section("4. The compact form (msgpack)")
    saved = {
        "plain": chain.receipt(PLAIN),
        "status": chain.receipt(AFTER_ROTATION, with_status=True),
    }
    sizes = [
        f"{len(receipt.to_bytes()):,} against {len(receipt.model_dump_json(indent=2)) + 1:,}"
        for receipt in saved.values()
    ]
    stated = re.findall(r"([\d,]+)(?: bytes)? against ([\d,]+)", " ".join(section.split()))
    assert [f"{compact} against {text}" for compact, text in stated] == sizes


def test_sceau_receipt_of_a_rejected_transaction_says_there_is_no_receipt(
    served: ServedNode, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "rejected.receipt.json"
    tx_id = served.tx_ids["rejected"]
    run = run_cli(capsys, "receipt", tx_id, "--with-status", "--out", out, "--api", served.url)
    assert run.returncode == 1 and "Traceback" not in run.stderr
    assert run.stderr.startswith(f"transaction {tx_id}: rejected (duplicate_reference: ")
    assert run.stderr.endswith("), never committed; no receipt\n")
    assert not out.exists()
