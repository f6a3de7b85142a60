"""Specification of ``.tlog-proof`` files and of the receipt's ``log``: what a verifier holding
only the genesis accepts, and every tampering it refuses, each by the name of its check.

The chain is :mod:`tests.logchain`'s: a real engine over a real LevelDB store, format 2, a fifth
member admitted at height 2, nine log entries; checkpoints are signed with the members' keys as
their nodes sign them, and cosigned by test witnesses.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.registry import receipt_anchors
from ledger import encoding
from ledger.devchain import LocalConsortium
from ledger.logcheck import WitnessPolicy
from ledger.note import Checkpoint, Note, NoteError, TlogProof
from ledger.receipt import Receipt, ReceiptError, build_receipt, verify_receipt
from ledger.tlogproof import (
    ProofExtra,
    TlogProofError,
    build_tlog_proof,
    proof_from_parts,
    verify_tlog_proof,
)
from node.tools.cli import main as sceau
from tests.logchain import (
    METROPOLE,
    NEWCOMER,
    SAINT_LEGER,
    SYNDICAT,
    VILLE,
    LogChain,
    cosigned,
    document_of,
    witness_vkey,
)

ANCHORS = receipt_anchors()
NEWCOMER_ACT = 6
"""The log index of the newcomer's act (height 3, after the admission's three entries)."""


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogChain]:
    built = LogChain.build(tmp_path_factory.mktemp("tlog-proof") / "chain")
    yield built
    built.store.close()


def policy(*names: str, quorum: int | None = None) -> WitnessPolicy:
    return WitnessPolicy.parse([f"{name}={witness_vkey(name)}" for name in names], quorum)


def proof_bytes(chain: LogChain, index: int = NEWCOMER_ACT, note: Note | None = None) -> bytes:
    note = note or cosigned(chain.checkpoint(), "prefecture", "cour-des-comptes")
    return build_tlog_proof(chain.store, index, note.to_bytes()).to_bytes()


def refused(data: bytes, chain: LogChain, **options: object) -> TlogProofError:
    with pytest.raises(TlogProofError) as caught:
        verify_tlog_proof(data, chain.genesis, anchors=ANCHORS, **options)  # type: ignore[arg-type]
    return caught.value


def replaced(data: bytes, **changes: object) -> bytes:
    proof = TlogProof.parse(data)
    return dataclasses.replace(proof, **changes).to_bytes()


# --- a proof that holds -----------------------------------------------------------------------


def test_a_proof_carries_the_entry_and_the_member_changes_and_verifies_from_the_genesis(
    chain: LogChain,
) -> None:
    data = proof_bytes(chain)
    assert data.startswith(b"c2sp.org/tlog-proof@v1\nextra ")
    proof = TlogProof.parse(data)
    extra = ProofExtra.decode(proof.extra)
    act = chain.acts["2026-DEL-101"]
    assert extra.entry == act.encoded == chain.store.log_entries(NEWCOMER_ACT, 1)[0]
    assert [change.header.height for change in extra.member_changes] == [2]
    assert proof.index == NEWCOMER_ACT and Checkpoint.from_note(proof.checkpoint).size == 9
    verified = verify_tlog_proof(data, chain.genesis, document_of("2026-DEL-101"), anchors=ANCHORS)
    assert verified.transaction.tx_id == act.tx_id and verified.index == NEWCOMER_ACT
    assert verified.document_matches is True and verified.act["issuer"] == NEWCOMER
    assert verified.checkpoint.members == 5 and NEWCOMER in verified.checkpoint.signers
    assert verified.checkpoint.witnesses == ()


def test_every_entry_of_the_log_has_a_proof_that_verifies(chain: LogChain) -> None:
    note = chain.checkpoint()
    for index in range(chain.store.log_size):
        verified = verify_tlog_proof(proof_bytes(chain, index, note), chain.genesis)
        assert verified.transaction.encoded == chain.store.log_entries(index, 1)[0]


def test_a_checkpoint_before_the_admission_needs_no_member_change(chain: LogChain) -> None:
    early = chain.checkpoint(height=1)
    data = proof_bytes(chain, 1, early)
    assert ProofExtra.decode(TlogProof.parse(data).extra).member_changes == ()
    assert verify_tlog_proof(data, chain.genesis).checkpoint.members == 4


# --- witness policies -------------------------------------------------------------------------


def test_a_witness_policy_met_names_the_witnesses_that_cosigned(chain: LogChain) -> None:
    data = proof_bytes(chain)
    verified = verify_tlog_proof(
        data, chain.genesis, witnesses=policy("prefecture", "cour-des-comptes", "crc", quorum=2)
    )
    assert verified.checkpoint.witnesses == ("prefecture", "cour-des-comptes")


def test_a_witness_policy_unmet_is_refused_saying_who_signed_and_how_many_were_needed(
    chain: LogChain,
) -> None:
    data = proof_bytes(chain, note=cosigned(chain.checkpoint(), "prefecture"))
    error = refused(data, chain, witnesses=policy("prefecture", "crc", quorum=2))
    assert error.step == "witnesses"
    assert "1 of the witnesses prefecture, crc cosigned" in str(error)
    assert "(prefecture)" in str(error) and "needs 2" in str(error)
    bare = proof_bytes(chain, note=chain.checkpoint())
    error = refused(bare, chain, witnesses=policy("prefecture"))
    assert error.step == "witnesses" and "0 of the witnesses" in str(error)


def test_an_unknown_witness_is_ignored(chain: LogChain) -> None:
    data = proof_bytes(chain, note=cosigned(chain.checkpoint(), "stranger", "prefecture"))
    verified = verify_tlog_proof(data, chain.genesis, witnesses=policy("prefecture"))
    assert verified.checkpoint.witnesses == ("prefecture",)
    error = refused(data, chain, witnesses=policy("crc"))
    assert error.step == "witnesses"


def test_a_forged_cosignature_of_a_named_witness_is_refused(chain: LogChain) -> None:
    note = cosigned(chain.checkpoint(), "prefecture")
    forged = note.signatures[-1]
    bad = dataclasses.replace(
        forged, signature=forged.signature[:-1] + bytes([forged.signature[-1] ^ 1])
    )
    data = proof_bytes(chain, note=Note(note.text, (*note.signatures[:-1], bad)))
    assert refused(data, chain, witnesses=policy("prefecture")).step == "witnesses"


def test_witness_policies_are_checked_when_written() -> None:
    with pytest.raises(ValueError, match="NAME=VKEY"):
        WitnessPolicy.parse(["no-separator"], None)
    with pytest.raises(ValueError, match="witness a"):
        WitnessPolicy.parse(["a=not+a+vkey"], None)
    with pytest.raises(ValueError, match="quorum"):
        WitnessPolicy.parse([f"a={witness_vkey('a')}"], 2)
    with pytest.raises(ValueError, match="once"):
        WitnessPolicy.parse([f"a={witness_vkey('a')}", f"a={witness_vkey('b')}"], 1)


# --- tampering, each by its step ----------------------------------------------------------------


def test_a_tampered_entry_is_refused(chain: LogChain) -> None:
    data = proof_bytes(chain)
    proof = TlogProof.parse(data)
    other = chain.acts["2026-DEL-201"].encoded  # a genuine act, at another index
    extra = ProofExtra.decode(proof.extra).model_copy(update={"entry": other}).to_bytes()
    assert refused(replaced(data, extra=extra), chain).step == "inclusion"
    flipped = bytearray(ProofExtra.decode(proof.extra).entry)
    flipped[-1] ^= 1
    extra = ProofExtra.decode(proof.extra).model_copy(update={"entry": bytes(flipped)})
    assert refused(replaced(data, extra=extra.to_bytes()), chain).step == "transaction"


def test_a_tampered_index_or_proof_is_refused(chain: LogChain) -> None:
    data = proof_bytes(chain)
    proof = TlogProof.parse(data)
    assert refused(replaced(data, index=NEWCOMER_ACT + 1), chain).step == "inclusion"
    hashes = list(proof.proof)
    hashes[0] = hashlib.sha256(hashes[0]).digest()
    assert refused(replaced(data, proof=tuple(hashes)), chain).step == "inclusion"
    assert refused(replaced(data, proof=proof.proof[:-1]), chain).step == "inclusion"


def test_a_checkpoint_with_another_root_is_refused(chain: LogChain) -> None:
    """The members signed the root: another root makes every signature fail."""
    data = proof_bytes(chain)
    note = TlogProof.parse(data).checkpoint
    checkpoint = Checkpoint.from_note(note)
    forged_text = dataclasses.replace(checkpoint, root=bytes(32)).text()
    error = refused(replaced(data, checkpoint=Note(forged_text, note.signatures)), chain)
    assert error.step == "quorum" and "does not verify" in str(error)


def test_a_checkpoint_signed_by_too_few_members_is_refused(chain: LogChain) -> None:
    note = chain.checkpoint(signers=[NEWCOMER, METROPOLE, VILLE])
    error = refused(proof_bytes(chain, note=note), chain)
    assert error.step == "quorum" and "3 of the 5 members" in str(error)
    assert "needs 4" in str(error)


def test_a_checkpoint_signed_by_strangers_only_is_refused(chain: LogChain) -> None:
    other = LocalConsortium.create([("intrus", "Intrus")], seed=b"other")
    text = chain.checkpoint().text
    from ledger.note import sign_note

    note = Note(text, (sign_note(text, chain.origin, other.keys["intrus"]),))
    error = refused(proof_bytes(chain, note=note), chain)
    assert error.step == "quorum" and "no signature" in str(error)


def test_a_proof_for_another_consortium_is_refused(chain: LogChain) -> None:
    other = LocalConsortium.create([("intrus", "Intrus")], seed=b"other", format_version=2)
    with pytest.raises(TlogProofError) as caught:
        verify_tlog_proof(proof_bytes(chain), other.genesis)
    assert caught.value.step == "transaction" and "another consortium" in str(caught.value)


def test_a_checkpoint_of_another_origin_is_refused(chain: LogChain) -> None:
    data = proof_bytes(chain)
    note = TlogProof.parse(data).checkpoint
    checkpoint = dataclasses.replace(Checkpoint.from_note(note), origin="example.org/log")
    error = refused(replaced(data, checkpoint=Note(checkpoint.text(), note.signatures)), chain)
    assert error.step == "checkpoint" and "origin" in str(error)


def test_member_changes_dropped_forged_or_after_the_checkpoint_are_refused(
    chain: LogChain,
) -> None:
    data = proof_bytes(chain)
    extra = ProofExtra.decode(TlogProof.parse(data).extra)
    (admission,) = extra.member_changes
    # Without the admission, the newcomer's signature is unknown and three genesis members
    # signed: a quorum of four. A checkpoint signed by the newcomer and two others is then short.
    short = chain.checkpoint(signers=[NEWCOMER, METROPOLE, VILLE, SYNDICAT])
    dropped = proof_from_parts(
        extra.entry, NEWCOMER_ACT, TlogProof.parse(data).proof, short.to_bytes()
    )
    assert verify_tlog_proof(dropped.to_bytes(), chain.genesis).checkpoint.members == 4
    two = chain.checkpoint(signers=[NEWCOMER, METROPOLE, SAINT_LEGER])
    without = proof_from_parts(
        extra.entry, NEWCOMER_ACT, TlogProof.parse(data).proof, two.to_bytes()
    )
    assert refused(without.to_bytes(), chain).step == "quorum"
    members = tuple(member for member in admission.members if member.id != VILLE)
    forged = admission.model_copy(update={"members": members})
    forged_extra = extra.model_copy(update={"member_changes": (forged,)}).to_bytes()
    assert refused(replaced(data, extra=forged_extra), chain).step == "members"
    early = proof_bytes(chain, 1, chain.checkpoint(height=1))
    late = extra.model_copy(update={"entry": ProofExtra.decode(TlogProof.parse(early).extra).entry})
    error = refused(replaced(early, extra=late.to_bytes()), chain)
    assert error.step == "members" and "after the checkpoint" in str(error)


def test_a_document_that_is_not_the_anchored_one_is_refused(chain: LogChain) -> None:
    error = refused(proof_bytes(chain), chain, document=b"another document")
    assert error.step == "document"


def test_malformed_proofs_and_extra_data_are_refused(chain: LogChain) -> None:
    data = proof_bytes(chain)
    assert refused(data[:40], chain).step == "format"
    assert refused(b"c2sp.org/tlog-proof@v2" + data[22:], chain).step == "format"
    assert refused(replaced(data, extra=None), chain).step == "extra"
    assert refused(replaced(data, extra=b"\x81\xa1a\x01"), chain).step == "extra"
    assert refused(replaced(data, extra=encoding.pack([1, 2])), chain).step == "extra"
    with pytest.raises(NoteError):
        proof_from_parts(b"entry", 9, (), chain.checkpoint().to_bytes())  # index not in the tree


# --- receipts with a log ----------------------------------------------------------------------


def receipt_of(chain: LogChain, reference: str) -> Receipt:
    receipt = build_receipt(chain.store, chain.acts[reference].tx_id, anchors=ANCHORS)
    assert receipt is not None
    return receipt


def test_a_receipt_without_a_kept_checkpoint_has_no_log_field_and_keeps_its_bytes(
    tmp_path: Path,
) -> None:
    fresh = LogChain.build(tmp_path / "chain")
    try:
        receipt = receipt_of(fresh, "2026-DEL-101")
        assert receipt.log is None and "log" not in receipt.to_canonical()
        assert Receipt.from_canonical(receipt.to_canonical()) == receipt
        with pytest.raises(ReceiptError) as caught:
            verify_receipt(receipt, fresh.genesis, anchors=ANCHORS, witnesses=policy("prefecture"))
        error = caught.value
        assert error.step == "witnesses" and "no checkpoint" in str(error)
        with pytest.raises(Exception, match="nil is not canonical"):
            Receipt.from_canonical({**receipt.to_canonical(), "log": None})
        # A checkpoint below the act does not cover it: still no log.
        fresh.keep(fresh.checkpoint(height=1))
        assert receipt_of(fresh, "2026-DEL-101").log is None
    finally:
        fresh.store.close()


def test_a_receipt_carries_its_place_in_the_log_and_meets_a_witness_policy(
    chain: LogChain,
) -> None:
    chain.keep(cosigned(chain.checkpoint(), "prefecture"))
    receipt = receipt_of(chain, "2026-DEL-101")
    assert receipt.log is not None and receipt.log.index == NEWCOMER_ACT
    assert receipt.log.member_changes == ()  # the admission is already in the receipt's own
    assert Receipt.from_canonical(receipt.to_canonical()) == receipt
    assert Receipt.model_validate_json(receipt.model_dump_json()) == receipt
    verified = verify_receipt(
        receipt, chain.genesis, anchors=ANCHORS, witnesses=policy("prefecture")
    )
    assert verified.log_index == NEWCOMER_ACT and verified.checkpoint.witnesses == ("prefecture",)
    early = receipt_of(chain, "2026-DEL-001")
    assert [change.header.height for change in early.log.member_changes] == [2]
    assert verify_receipt(early, chain.genesis, anchors=ANCHORS).checkpoint.members == 5
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(
            receipt, chain.genesis, anchors=ANCHORS, witnesses=policy("prefecture", "crc", quorum=2)
        )
    error = caught.value
    assert error.step == "witnesses" and "needs 2" in str(error)


def test_a_receipt_log_tampered_is_refused(chain: LogChain) -> None:
    chain.keep(chain.checkpoint())
    receipt = receipt_of(chain, "2026-DEL-101")
    log = receipt.log

    def step(**changes: object) -> str:
        tampered = receipt.model_copy(update={"log": log.model_copy(update=changes)})
        with pytest.raises(ReceiptError) as caught:
            verify_receipt(tampered, chain.genesis, anchors=ANCHORS)
        return caught.value.step

    assert step(index=NEWCOMER_ACT + 1) == "log"  # not what the certified header says
    hashes = (hashlib.sha256(log.inclusion_proof[0]).digest(), *log.inclusion_proof[1:])
    assert step(inclusion_proof=hashes) == "log"
    few = chain.checkpoint(signers=[NEWCOMER, METROPOLE]).to_bytes().decode()
    assert step(checkpoint=few) == "quorum"
    assert step(checkpoint="not a note") == "checkpoint"
    below = chain.checkpoint(height=2).to_bytes().decode()
    assert step(checkpoint=below) == "log"  # the act is not in a log of six entries
    early = receipt_of(chain, "2026-DEL-001")
    (admission,) = early.log.member_changes
    members = tuple(member for member in admission.members if member.id != VILLE)
    forged = admission.model_copy(update={"members": members})
    tampered = early.model_copy(
        update={"log": early.log.model_copy(update={"member_changes": (forged,)})}
    )
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(tampered, chain.genesis, anchors=ANCHORS)
    assert caught.value.step == "members"


# --- sceau verify -----------------------------------------------------------------------------


def test_sceau_verify_checks_tlog_proofs_and_receipts_with_a_witness_policy(
    chain: LogChain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(chain.genesis.model_dump_json())
    proof = tmp_path / "act.tlog-proof"
    proof.write_bytes(proof_bytes(chain))
    named = [f"prefecture={witness_vkey('prefecture')}", f"crc={witness_vkey('crc')}"]
    policy_options = [option for witness in named for option in ("--witness", witness)]
    document = tmp_path / "act.pdf"
    document.write_bytes(document_of("2026-DEL-101"))
    base = ["verify", str(proof), "--genesis", str(genesis)]
    assert (
        sceau([*base, "--document", str(document), *policy_options, "--witness-quorum", "1"]) == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("VERIFIED") and f"entry {NEWCOMER_ACT} of its log" in out
    assert "signed by 4 of 5 members" in out and "matches the anchored digest" in out
    assert "prefecture cosigned it (1 of the 2 named, 1 needed)" in out
    assert sceau([*base, *policy_options]) == 1
    assert "NOT VERIFIED — witnesses: 1 of the witnesses prefecture, crc" in capsys.readouterr().err
    tampered = TlogProof.parse(proof.read_bytes())
    proof.write_bytes(dataclasses.replace(tampered, index=NEWCOMER_ACT - 1).to_bytes())
    assert sceau(base) == 1
    assert "NOT VERIFIED — inclusion" in capsys.readouterr().err
    assert sceau([*base, "--witness-quorum", "1"]) == 2
    assert "needs at least one --witness" in capsys.readouterr().err
    assert sceau([*base, "--witness", "prefecture=garbage"]) == 2
    assert "--witness: witness prefecture" in capsys.readouterr().err

    chain.keep(cosigned(chain.checkpoint(), "prefecture"))
    receipt = tmp_path / "act.receipt.json"
    receipt.write_text(receipt_of(chain, "2026-DEL-101").model_dump_json())
    on_receipt = ["verify", str(receipt), "--genesis", str(genesis)]
    assert sceau([*on_receipt, "--witness", named[0]]) == 0
    out = capsys.readouterr().out
    assert f"log index: {NEWCOMER_ACT}" in out and "prefecture cosigned it" in out
    assert sceau([*on_receipt, *policy_options]) == 1
    assert "NOT VERIFIED — witnesses" in capsys.readouterr().err
    bare = receipt_of(chain, "2026-DEL-101").model_copy(update={"log": None})
    receipt.write_text(bare.model_dump_json())
    assert sceau(on_receipt) == 0
    assert sceau([*on_receipt, "--witness", named[0]]) == 1
    assert "no checkpoint (no 'log' field)" in capsys.readouterr().err
