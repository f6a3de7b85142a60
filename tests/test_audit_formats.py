"""The audit and the receipts across a change of header format.

A chain begun in format 1 whose members schedule format 2 (membership 1.2) stays verifiable end
to end: ``sceau audit`` recomputes the log of every act for the format 2 blocks and checks each
header's format against the genesis and the schedule, naming the field at fault
(``header.format``, ``header.log_size``, ``header.log_root``); the receipts of acts in blocks of
either format verify. Built with the real engine, store and member keys (tests/test_bundle.py's
:class:`ChainBuilder`), every forged block certified by a quorum, as colluding members would.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_audit import audit, messages, sceau
from test_bundle import MEMBERS, SEED, ChainBuilder

from contracts.engine import Engine
from contracts.registry import load_contracts, receipt_anchors
from ledger import merkle
from ledger.bundle import BundleWriter
from ledger.devchain import LocalConsortium
from ledger.model import Block, BlockHeader, ContractRef, Transaction, sha256
from ledger.receipt import build_receipt, verify_receipt
from ledger.store import ChainStore

MEMBERSHIP_1_2 = ContractRef(name="membership", version="1.2")
DEEDS_1_0 = ContractRef(name="deeds", version="1.0")
FORMAT_2_FROM = 6
"""The height from which the members schedule format 2 in :func:`upgraded_chain`."""


class FormatChainBuilder(ChainBuilder):
    """A :class:`ChainBuilder` (membership 1.2, deeds 1.0) whose headers follow the chain's
    format at each height, as a node builds them."""

    def __init__(self, folder: Path, *, genesis_format: int = 1) -> None:
        self.consortium = LocalConsortium.create(
            MEMBERS, seed=SEED, contracts=[MEMBERSHIP_1_2, DEEDS_1_0], format_version=genesis_format
        )
        self.genesis = self.consortium.genesis
        self.chain_id = self.genesis.chain_id
        self.keys = dict(self.consortium.keys)
        self.engine = Engine(self.genesis, load_contracts(self.genesis))
        self.store = ChainStore.create(folder / "chain", self.genesis, self.engine.genesis_state())
        self.nonces = itertools.count()

    def next_block(self, *transactions: Transaction, view: int = 0) -> tuple[Block, Any]:
        block, writes = super().next_block(*transactions, view=view)
        if self.engine.header_format(self.store, block.height) < 2:
            return block, writes
        return with_log(block, self.store.log_frontier().extended(
            merkle.leaf_hash(leaf) for leaf in block.transaction_leaves()
        )), writes  # fmt: skip

    def propose(self, change: dict[str, Any]) -> Transaction:
        return self.transaction(
            "metropole", "membership", "propose", proposer="metropole", change=change
        )

    def vote(self, voter: str, proposal: Transaction) -> Transaction:
        return self.transaction(
            voter, "membership", "vote", proposal_id=proposal.tx_id, voter=voter, approve=True
        )


def with_log(block: Block, log: Any) -> Block:
    header = BlockHeader.model_validate(
        {**block.header.model_dump(), "log_size": log.size, "log_root": log.root}
    )
    return Block(header=header, transactions=block.transactions)


def upgraded_chain(folder: Path, schedule_version: int = 2) -> FormatChainBuilder:
    """Format 1 from block 1; an act at 1; the members schedule ``schedule_version`` from
    height :data:`FORMAT_2_FROM` at heights 2 to 4; acts at 5 and (if this software knows the
    format) at 6 and 7."""
    chain = FormatChainBuilder(folder)
    chain.block(chain.anchor("metropole", "2026-DEL-001"), chain.anchor("commune-a", "2026-A-1"))
    proposal = chain.propose(
        {"kind": "schedule_format", "format_version": schedule_version, "height": FORMAT_2_FROM}
    )
    chain.block(proposal)
    chain.block(chain.vote("commune-a", proposal))
    chain.block(chain.vote("commune-b", proposal))
    chain.block(chain.anchor("commune-b", "2026-DEL-005"))
    if schedule_version == 2:
        chain.block(chain.anchor("metropole", "2026-DEL-006"), chain.anchor("syndicat", "S-1"))
        chain.block(chain.anchor("commune-a", "2026-DEL-007"))
    return chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FormatChainBuilder]:
    built = upgraded_chain(tmp_path_factory.mktemp("format-chain"))
    yield built
    built.close()


@pytest.fixture(scope="module")
def bundle(chain: FormatChainBuilder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return chain.write_bundle(tmp_path_factory.mktemp("format-bundle") / "chain.bundle")


def forged_bundle(
    chain: FormatChainBuilder, bundle: Path, tmp_path: Path, height: int, **fields: Any
) -> Path:
    """The bundle up to ``height - 1``, then block ``height`` with its header's ``fields``
    changed (None removes a field) and certified anew by a quorum."""
    path = tmp_path / f"forged-{height}.bundle"
    chain.write_bundle(path, up_to=height - 1)
    block = chain.store.block(height)
    assert block is not None
    document = {**block.header.model_dump(), **fields}
    header = BlockHeader.model_validate({k: v for k, v in document.items() if v is not None})
    forged = Block(header=header, transactions=block.transactions)
    with BundleWriter.open(path, chain.genesis) as writer:
        writer.append(forged, chain.certify(forged))
    return path


def test_the_headers_change_format_at_the_scheduled_height(chain: FormatChainBuilder) -> None:
    formats = [block.header.format_version for block in chain.store.blocks()]
    assert formats == [1, 1, 1, 1, 1, 2, 2]
    first = chain.store.block(FORMAT_2_FROM)
    assert first is not None
    # The log covers the whole history: the 2 + 3 + 1 transactions before, and the block's 2.
    assert first.header.log_size == 8
    leaves = [leaf for block in chain.store.blocks() for leaf in block.transaction_leaves()]
    assert first.header.log_root == merkle.root(leaves[:8])


def test_the_whole_chain_audits_and_the_report_names_its_formats(
    chain: FormatChainBuilder, bundle: Path
) -> None:
    report = audit(bundle, chain)
    assert report.ok, messages(report)
    assert report.header_formats == ((1, 1), (FORMAT_2_FROM, 2))
    assert report.to_document()["header_formats"] == [
        {"format": 1, "from_height": 1},
        {"format": 2, "from_height": FORMAT_2_FROM},
    ]


def test_sceau_audit_prints_the_format_change(
    chain: FormatChainBuilder, bundle: Path, tmp_path: Path
) -> None:
    genesis_file = tmp_path / "genesis.json"
    genesis_file.write_text(chain.genesis.model_dump_json())
    audited = sceau("audit", bundle, "--genesis", genesis_file, "--report", tmp_path / "r.json")
    assert audited.returncode == 0, audited.stderr
    assert f"header format: 1 from 1, 2 from {FORMAT_2_FROM}" in audited.stdout
    assert json.loads((tmp_path / "r.json").read_text())["ok"] is True


def test_a_wrong_log_root_is_named(chain: FormatChainBuilder, bundle: Path, tmp_path: Path) -> None:
    wrong = sha256(b"a log the consortium never had")
    report = audit(forged_bundle(chain, bundle, tmp_path, 7, log_root=wrong), chain)
    block = chain.store.block(7)
    assert block is not None and block.header.log_root is not None
    assert messages(report) == [
        f"height 7: header.log_root: is {wrong.hex()}, the log of every act gives "
        f"{block.header.log_root.hex()}"
    ]


def test_a_wrong_log_size_is_named(chain: FormatChainBuilder, bundle: Path, tmp_path: Path) -> None:
    report = audit(forged_bundle(chain, bundle, tmp_path, FORMAT_2_FROM, log_size=6), chain)
    assert messages(report) == [
        f"height {FORMAT_2_FROM}: header.log_size: is 6, but the chain holds 8 transactions up "
        "to this block"
    ]


def test_a_header_of_the_wrong_format_is_named(
    chain: FormatChainBuilder, bundle: Path, tmp_path: Path
) -> None:
    old_style = forged_bundle(chain, bundle, tmp_path, FORMAT_2_FROM, log_size=None, log_root=None)
    assert messages(audit(old_style, chain)) == [
        f"height {FORMAT_2_FROM}: header.format: is format 1, but the chain is in format 2 at "
        "this height (the genesis's, or the one its members scheduled)"
    ]
    early = chain.store.block(FORMAT_2_FROM - 1)
    assert early is not None
    log = chain.store.log_frontier()  # any log fields: the format is wrong before them
    ahead = forged_bundle(
        chain, bundle, tmp_path, FORMAT_2_FROM - 1, log_size=log.size, log_root=log.root
    )
    assert messages(audit(ahead, chain)) == [
        f"height {FORMAT_2_FROM - 1}: header.format: is format 2, but the chain is in format 1 "
        "at this height (the genesis's, or the one its members scheduled)"
    ]


def test_a_format_this_software_does_not_know_stops_the_audit_asking_to_upgrade(
    tmp_path: Path,
) -> None:
    chain = upgraded_chain(tmp_path / "node", schedule_version=3)
    try:
        path = chain.write_bundle(tmp_path / "chain.bundle")
        # No engine here can build block 6 (format 3): a quorum certifies one of any form.
        parent = chain.store.block(FORMAT_2_FROM - 1)
        assert parent is not None
        anchor = chain.anchor("metropole", "2026-DEL-006")
        header = parent.header.model_copy(
            update={
                "height": FORMAT_2_FROM,
                "prev_hash": parent.block_hash,
                "timestamp_ms": parent.header.timestamp_ms + 1000,
                "tx_root": merkle.root([anchor.encoded]),
            }
        )
        block = Block(
            header=BlockHeader.model_validate(header.model_dump()), transactions=(anchor,)
        )
        with BundleWriter.open(path, chain.genesis) as writer:
            writer.append(block, chain.certify(block))
        report = audit(path, chain)
    finally:
        chain.close()
    assert report.blocks == FORMAT_2_FROM - 1
    [message] = messages(report)
    assert message.startswith(f"height {FORMAT_2_FROM}: header.format: the chain moved to header")
    assert message.endswith("(it knows 1, 2): upgrade sceau")


@pytest.mark.parametrize(("reference", "version"), [("2026-DEL-005", 1), ("2026-DEL-006", 2)])
def test_receipts_of_acts_in_blocks_of_either_format_verify(
    chain: FormatChainBuilder, reference: str, version: int
) -> None:
    anchors = receipt_anchors()
    height = 5 if version == 1 else FORMAT_2_FROM
    block = chain.store.block(height)
    assert block is not None and block.header.format_version == version
    receipt = build_receipt(chain.store, block.transactions[0].tx_id, anchors=anchors)
    assert receipt is not None
    verified = verify_receipt(receipt, chain.genesis, anchors=anchors)
    assert verified.height == height
    assert verified.act is not None and verified.act["reference"] == reference
