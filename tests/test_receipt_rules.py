"""Specification: ``sceau verify`` applies to every header a receipt shows the rules that
``sceau audit`` applies to one block without replaying it — one definition for both
(:func:`ledger.audit.block_rule_failures`).

An attacking quorum holds the keys to re-sign anything. Each test here is such a quorum: it
rewrites a committed block (on the chain of tests/test_receipt.py) so that it breaks one rule,
re-certifies it with a quorum of the members in force, and builds the receipt of the rewritten
block. The receipt must be refused naming the rule, and the same block in a bundle must fail
the audit on the same field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_receipt import (
    AFTER_REMOVAL,
    ANCHORS,
    METROPOLE,
    NEWCOMER,
    PLAIN,
    SAINT_LEGER,
    TIP,
    VILLE,
    Chain,
    build_chain,
    forged_certificate,
)

from contracts.replay import EngineReplayer
from ledger import merkle
from ledger.audit import audit_bundle
from ledger.bundle import block_frame, genesis_frame
from ledger.model import Block, BlockHeader, CommitCertificate, Transaction
from ledger.receipt import Receipt, ReceiptError, receipt_from_block, verify_receipt


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    built = build_chain(tmp_path_factory.mktemp("receipt-rules") / "chain")
    yield built
    built.store.close()


HEIGHT = 5
"""The block rewritten: ``AFTER_REMOVAL``'s, certified by four members (two changes before)."""
QUORUM_AT_HEIGHT = (VILLE, SAINT_LEGER, NEWCOMER)


def rewritten_block(
    chain: Chain,
    *,
    header: dict[str, Any] | None = None,
    transaction: Callable[[Transaction], Transaction] | None = None,
) -> tuple[Block, CommitCertificate]:
    """Block ``HEIGHT`` rewritten (header fields, its first transaction replaced), with a
    fresh certificate by a quorum of the members in force: what an attacking quorum can do."""
    block = chain.store.block(HEIGHT)
    transactions = block.transactions
    if transaction is not None:
        transactions = (transaction(transactions[0]), *transactions[1:])
    update = dict(header or {})
    update["tx_root"] = merkle.root([item.encoded for item in transactions])
    new_header = block.header.model_copy(update=update)
    certificate = forged_certificate(chain, new_header, list(QUORUM_AT_HEIGHT))
    return Block(header=new_header, transactions=transactions), certificate


def resigned(chain: Chain, original: Transaction, **fields: Any) -> Transaction:
    """``original`` with ``fields`` changed, signed again by its signer's key."""
    return Transaction.create(
        chain.keys[METROPOLE],
        chain_id=original.chain_id,
        contract=fields.get("contract", original.contract),
        action=original.action,
        args=dict(original.args),
        nonce=original.nonce,
        expiry_height=fields.get("expiry_height", original.expiry_height),
    )


TAMPERINGS: dict[str, tuple[dict[str, Any], str, str]] = {
    # name: (how the block is rewritten, the field named, a fragment of the detail)
    "a proposer that is not the view's primary": (
        {"header": {"proposer": VILLE}},
        "header.proposer",
        f"is {VILLE!r}, the primary of view 4 is {METROPOLE!r}",
    ),
    "a timestamp before the genesis": (
        {"header": {"timestamp_ms": 1_000}},
        "header.timestamp_ms",
        "is not after",
    ),
    "a transaction expired below the block's height": (
        {"expiry_height": HEIGHT - 1},
        "transaction 0",
        f"expiry_height: {HEIGHT - 1} is below the block's height {HEIGHT}",
    ),
    "a contract the genesis does not list": (
        {"contract": "roadworks"},
        "transaction 0",
        "contract: 'roadworks' is not listed in the genesis",
    ),
}


def tampered(chain: Chain, how: dict[str, Any]) -> tuple[Block, CommitCertificate]:
    fields = {name: how[name] for name in ("expiry_height", "contract") if name in how}
    rewrite = None
    if fields:

        def rewrite(original: Transaction) -> Transaction:
            return resigned(chain, original, **fields)

    return rewritten_block(chain, header=how.get("header"), transaction=rewrite)


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_verify_refuses_a_requorumed_block_that_breaks_a_rule_naming_it(
    chain: Chain,
    name: str,
) -> None:
    how, field, detail = TAMPERINGS[name]
    block, certificate = tampered(chain, how)
    assert block.transactions[0].signature_is_valid()  # a real signature, a real quorum
    receipt = receipt_from_block(chain.store, block, certificate, 0)
    decoded = Receipt.model_validate_json(receipt.model_dump_json())  # as a verifier reads it
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(decoded, chain.genesis, anchors=ANCHORS)
    assert caught.value.step == "block"
    assert str(caught.value).startswith(f"block: {field}: "), str(caught.value)
    assert detail in str(caught.value)


@pytest.mark.parametrize("name", list(TAMPERINGS))
def test_the_audit_still_fails_the_same_block_on_the_same_field(
    chain: Chain,
    name: str,
    tmp_path: Path,
) -> None:
    how, field, _ = TAMPERINGS[name]
    block, certificate = tampered(chain, how)
    frames = [genesis_frame(chain.genesis)]
    frames += [
        block_frame(chain.store.block(height), chain.store.certificate(height))
        for height in range(1, HEIGHT)
    ]
    frames.append(block_frame(block, certificate))
    path = tmp_path / "tampered.bundle"
    path.write_bytes(b"".join(frames))
    report = audit_bundle(path, chain.genesis, EngineReplayer(), workers=1)
    assert not report.ok and report.blocks == HEIGHT - 1
    assert {failure.height for failure in report.failures} == {HEIGHT}
    assert field in {failure.field for failure in report.failures}, report.failures


def test_the_untouched_block_still_verifies_and_audits(chain: Chain, tmp_path: Path) -> None:
    block, certificate = rewritten_block(chain)
    assert block == chain.store.block(HEIGHT)
    receipt = receipt_from_block(chain.store, block, certificate, 0)
    proven = verify_receipt(receipt, chain.genesis, anchors=ANCHORS)
    assert proven.act is not None and proven.act["reference"] == AFTER_REMOVAL
    frames = [genesis_frame(chain.genesis)] + [
        block_frame(chain.store.block(height), chain.store.certificate(height))
        for height in range(1, TIP + 1)
    ]
    path = tmp_path / "genuine.bundle"
    path.write_bytes(b"".join(frames))
    assert audit_bundle(path, chain.genesis, EngineReplayer(), workers=1).ok


def resigned_header(
    chain: Chain, header: BlockHeader, signers: list[str], **update: Any
) -> tuple[BlockHeader, CommitCertificate]:
    new_header = header.model_copy(update=update)
    return new_header, forged_certificate(chain, new_header, signers)


def test_a_member_change_header_with_a_wrong_proposer_is_refused(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_REMOVAL)
    first = receipt.member_changes[0]  # height 2, certified by the genesis members
    header, certificate = resigned_header(
        chain, first.header, [METROPOLE, VILLE, SAINT_LEGER], proposer=SAINT_LEGER
    )
    change = first.model_copy(update={"header": header, "certificate": certificate})
    forged = receipt.model_copy(update={"member_changes": (change, *receipt.member_changes[1:])})
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(forged, chain.genesis, anchors=ANCHORS)
    assert caught.value.step == "members at height 2"
    assert "header.proposer" in str(caught.value)


def test_a_status_header_before_the_genesis_is_refused(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN, with_status=True)
    status = receipt.status
    assert status is not None and status.header.height == TIP
    header, certificate = resigned_header(
        chain, status.header, [VILLE, SAINT_LEGER, NEWCOMER], timestamp_ms=0
    )
    forged = receipt.model_copy(
        update={"status": status.model_copy(update={"header": header, "certificate": certificate})}
    )
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(forged, chain.genesis, anchors=ANCHORS)
    # Its highest header below is the member-set change of height 6: block times rise.
    assert str(caught.value) == (
        "status: header.timestamp_ms: is not after the time of block 6 in this receipt"
    )


def test_a_block_dated_before_an_earlier_header_of_the_receipt_is_refused(chain: Chain) -> None:
    receipt = chain.receipt(AFTER_REMOVAL)
    change = receipt.member_changes[-1]  # height 4
    earlier = change.header.timestamp_ms - 1  # after the genesis, before block 4
    header, certificate = resigned_header(
        chain, receipt.header, list(QUORUM_AT_HEIGHT), timestamp_ms=earlier
    )
    forged = receipt.model_copy(update={"header": header, "certificate": certificate})
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(forged, chain.genesis, anchors=ANCHORS)
    assert str(caught.value) == (
        "block: header.timestamp_ms: is not after the time of block 4 in this receipt"
    )


def test_two_certified_headers_of_one_height_in_a_receipt_are_refused(chain: Chain) -> None:
    receipt = chain.receipt(PLAIN, with_status=True)
    status = receipt.status
    assert status is not None
    # A status "at the act's height" under another header of height 1, certified too.
    header, certificate = resigned_header(
        chain, receipt.header, [METROPOLE, VILLE, SAINT_LEGER], state_root=status.header.state_root
    )
    forged = receipt.model_copy(
        update={
            "status": status.model_copy(
                update={"header": header, "certificate": certificate, "member_changes": ()}
            )
        }
    )
    with pytest.raises(ReceiptError) as caught:
        verify_receipt(forged, chain.genesis, anchors=ANCHORS)
    assert str(caught.value) == (
        "status: header: another certified header of height 1 is in this receipt "
        "(a quorum certified two blocks at one height)"
    )
