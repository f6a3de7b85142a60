#!/usr/bin/env python3
"""Write the fuzzers' seed corpus: real, valid peer frames and replica scripts.

Usage::

    python tests/fuzz/make_corpus.py          # rewrites tests/fuzz/corpus/{frames,replica}
    python tests/fuzz/make_corpus.py --check  # exit status 1 if the files are not up to date

A coverage-guided fuzzer that starts from nothing spends most of its time learning msgpack
and pydantic's field names; one that starts from valid messages mutates them into almost-valid
ones, which is where decoders and state machines hide their bugs. Every file here is
deterministic (seeded keys, deterministic Ed25519, fixed timestamps), so regenerating the
corpus changes nothing unless the wire format changed.

``frames/`` holds one canonical frame per message kind (and a few plain documents): the seeds
of the ``decode`` and ``unpack`` targets. ``replica/`` holds scripts (format in
:mod:`fuzz_support`) that take a fresh replica through a whole height, a view change, a
catch-up, an equivocation… Each script is replayed here and its outcome checked, so a seed
that stopped doing what its name says (after a protocol change) fails loudly instead of
silently losing coverage.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fuzz_support as fixture
from fuzz_support import CHAIN_ID, CONSORTIUM, GENESIS, NOW_MS, pack_script, run_script

from consensus.messages import (
    BlockRequest,
    BlockResponse,
    CommitVote,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Status,
    ViewChange,
)
from consensus.simapp import SimulatedApplication
from ledger import encoding
from ledger.model import Block
from node.runtime.wire import TransactionGossip, encode_frame

CORPUS = Path(__file__).resolve().parent / "corpus"
UNDER_TEST_M3 = 3 << 5
"""Script flags: the replica under test is m3 (a backup in views 0, 1 and 2)."""
UNDER_TEST_M0 = 0
"""Script flags: the replica under test is m0, the primary of view 0."""
UNDER_TEST_M1 = 1 << 5
"""Script flags: the replica under test is m1, the primary of view 1."""


def block(
    *, committed: int = 0, view: int = 0, proposer: str = "m0", nonce: int = 100, offset_ms: int = 0
) -> Block:
    """A valid proposal for height ``committed + 1`` at the replica's clock."""
    app = SimulatedApplication(GENESIS, chain=list(fixture.certified_chain()[:committed]))
    app.submit(fixture.transaction(nonce))
    return app.propose(
        height=committed + 1, view=view, timestamp_ms=NOW_MS + offset_ms, proposer=proposer
    )


def pre_prepare(proposal: Block, *, sender: str = "m0", view: int = 0) -> PrePrepare:
    return PrePrepare.sign(
        CONSORTIUM.keys[sender], CHAIN_ID, view=view, block=proposal, sender=sender
    )


def vote(
    kind: type[Prepare] | type[CommitVote], sender: str, proposal: Block, view: int = 0
) -> Any:
    return kind.sign(
        CONSORTIUM.keys[sender],
        CHAIN_ID,
        height=proposal.height,
        view=view,
        block_hash=proposal.block_hash,
        sender=sender,
    )


def prepared_certificate(proposal: Block, *, view: int = 0) -> PreparedCertificate:
    prepares = tuple(
        (signer, vote(Prepare, signer, proposal, view).signature) for signer in ("m0", "m1", "m2")
    )
    return PreparedCertificate(
        height=proposal.height, view=view, block_hash=proposal.block_hash, prepares=prepares
    )


def view_change(
    sender: str,
    *,
    height: int = 1,
    view: int = 1,
    prepared: PreparedCertificate | None = None,
    prepared_block: Block | None = None,
) -> ViewChange:
    return ViewChange.sign(
        CONSORTIUM.keys[sender],
        CHAIN_ID,
        height=height,
        view=view,
        prepared=prepared,
        sender=sender,
        prepared_block=prepared_block,
    )


def new_view(
    sender: str, view_changes: list[ViewChange], proposal: PrePrepare, *, view: int = 1
) -> NewView:
    return NewView.sign(
        CONSORTIUM.keys[sender],
        CHAIN_ID,
        height=proposal.height,
        view=view,
        view_changes=tuple(change.without_block() for change in view_changes),
        pre_prepare=proposal,
        sender=sender,
    )


def gossip(*nonces: int, sender: str = "m1") -> TransactionGossip:
    return TransactionGossip(
        transactions=tuple(fixture.transaction(nonce) for nonce in nonces), sender=sender
    )


# --- the frames -------------------------------------------------------------------------------


def frames() -> dict[str, bytes]:
    """One canonical frame per message kind and shape, plus plain canonical documents."""
    chain = fixture.certified_chain()
    proposal = block()
    changes = [view_change(sender) for sender in ("m0", "m1", "m2")]
    messages: dict[str, Any] = {
        "pre_prepare": pre_prepare(proposal),
        "prepare": vote(Prepare, "m1", proposal),
        "commit": vote(CommitVote, "m1", proposal),
        "view_change": changes[0],
        "view_change_prepared": view_change(
            "m0", prepared=prepared_certificate(proposal), prepared_block=proposal
        ),
        "new_view": new_view(
            "m1", changes, pre_prepare(block(view=1, proposer="m1"), sender="m1", view=1)
        ),
        "status_genesis": Status(height=0, certificate=None, sender="m2"),
        "status_certified": Status(height=2, certificate=chain[1][1], sender="m1"),
        "block_request": BlockRequest(from_height=1, to_height=3, sender="m2"),
        "block_response": BlockResponse(blocks=chain[:2], sender="m1"),
        "block_response_empty": BlockResponse(blocks=(), sender="m1"),
        "transactions": gossip(7, 8),
    }
    result = {name: encode_frame(message) for name, message in messages.items()}
    documents: dict[str, Any] = {
        "document_scalars": [
            None,
            True,
            False,
            0,
            -1,
            127,
            128,
            255,
            256,
            65_536,
            2**32,
            2**64 - 1,
        ],
        "document_negative": [-32, -33, -128, -129, -32_768, -32_769, -(2**31) - 1, -(2**63)],
        "document_nested": {"a": [b"\x00" * 40, "é" * 40, {1: {b"k": [[[]]]}}], "b": {}},
    }
    result.update({name: encoding.pack(value) for name, value in documents.items()})
    return result


# --- the replica scripts ----------------------------------------------------------------------

Check = Callable[[fixture.ReplicaDriver], bool]


def committed(height: int) -> Check:
    return lambda driver: driver.app.tip().height == height


def sent(kind: str) -> Check:
    return lambda driver: any(message.kind == kind for message in driver.sent)


def dropped(reason: str) -> Check:
    return lambda driver: driver.replica.dropped[reason] > 0


def scripts() -> dict[str, tuple[bytes, Check]]:
    """Scripts and what each must achieve on a fresh replica."""
    chain = fixture.certified_chain()
    proposal = block()
    proposal_2 = block(committed=1)
    height_1 = [
        pre_prepare(proposal),
        vote(Prepare, "m0", proposal),
        vote(Prepare, "m1", proposal),
        vote(CommitVote, "m0", proposal),
        vote(CommitVote, "m1", proposal),
    ]
    changes = [view_change(sender) for sender in ("m0", "m1", "m2")]
    proposal_v1 = block(view=1, proposer="m1")
    view_1 = [
        *changes,
        new_view("m1", changes, pre_prepare(proposal_v1, sender="m1", view=1)),
        vote(Prepare, "m0", proposal_v1, 1),
        vote(Prepare, "m2", proposal_v1, 1),
        vote(CommitVote, "m0", proposal_v1, 1),
        vote(CommitVote, "m2", proposal_v1, 1),
    ]
    certificate = prepared_certificate(proposal)
    carried = [
        view_change("m0", prepared=certificate, prepared_block=proposal),
        changes[1],
        changes[2],
    ]
    re_proposal = pre_prepare(proposal, sender="m1", view=1)
    own_block = block(proposer="m0", nonce=7)  # what m0 proposes once gossip gives it tx 7
    m3, m0, m1 = UNDER_TEST_M3, UNDER_TEST_M0, UNDER_TEST_M1
    table: dict[str, tuple[int, list[Any], Check]] = {
        "height_committed": (m3, height_1, committed(1)),
        "height_committed_after_one": (
            m3 | 1,
            [
                pre_prepare(proposal_2),
                vote(Prepare, "m0", proposal_2),
                vote(Prepare, "m2", proposal_2),
                vote(CommitVote, "m0", proposal_2),
                vote(CommitVote, "m2", proposal_2),
            ],
            committed(2),
        ),
        "height_resigned": (m3 | fixture.FLAG_RESIGN, height_1, committed(1)),
        "height_lying_transport": (
            m3 | fixture.FLAG_LYING_TRANSPORT,
            height_1,
            dropped("sender_mismatch"),
        ),
        "view_change_then_commit": (m3, view_1, committed(1)),
        "view_change_carries_prepared": (
            m3,
            [*carried, new_view("m1", carried, re_proposal)],
            sent("prepare"),
        ),
        "timeout_view_change": (
            m3 | fixture.FLAG_TICK,
            [pre_prepare(proposal)] * 4,
            sent("view_change"),
        ),
        "catch_up": (
            m3,
            [
                Status(height=2, certificate=chain[1][1], sender="m1"),
                BlockResponse(blocks=chain[:2], sender="m1"),
            ],
            committed(2),
        ),
        "answer_block_request": (
            m3 | 3,
            [BlockRequest(from_height=1, to_height=3, sender="m2")],
            sent("block_response"),
        ),
        "answer_old_status": (
            m3 | 3,
            [Status(height=0, certificate=None, sender="m2")],
            sent("status"),
        ),
        "equivocation": (
            m3,
            [pre_prepare(proposal), pre_prepare(block(nonce=101))],
            lambda driver: len(driver.replica.evidence) == 1,
        ),
        "future_height_buffered": (
            m3,
            [vote(Prepare, sender, block(committed=1, nonce=102)) for sender in ("m0", "m1", "m2")]
            + [Status(height=5, certificate=None, sender=sender) for sender in ("m0", "m1")],
            lambda driver: bool(driver.replica._future),
        ),
        "new_view_sent_by_replica": (m1, [changes[0], changes[2]], sent("new_view")),
        "new_view_re_proposes_prepared": (
            m1,
            [carried[0], changes[2]],
            lambda driver: any(
                message.kind == "new_view" and message.pre_prepare.block == proposal
                for message in driver.sent
            ),
        ),
        "view_change_supported_next_height": (
            m3,  # committed in view 1, so height 2 starts in view 1 without a view change
            [*view_1, view_change("m0", height=2, view=1)],
            lambda driver: sum(message.kind == "view_change" for message in driver.sent) == 2,
        ),
        "primary_proposes_gossip": (
            m0,
            [
                gossip(7),
                vote(Prepare, "m1", own_block),
                vote(Prepare, "m2", own_block),
                vote(CommitVote, "m1", own_block),
                vote(CommitVote, "m2", own_block),
            ],
            committed(1),
        ),
    }
    return {
        name: (pack_script(flags, [encode_frame(message) for message in messages]), check)
        for name, (flags, messages, check) in table.items()
    }


# --- writing ----------------------------------------------------------------------------------


def write(directory: Path, files: dict[str, bytes]) -> None:
    """Replace ``directory``'s files with ``files``."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.iterdir():
        if stale.is_file() and stale.name not in files:
            stale.unlink()
    for name, data in files.items():
        (directory / name).write_bytes(data)


def differences(directory: Path, files: dict[str, bytes]) -> list[str]:
    """Names of the files that ``write`` would create, change or remove in ``directory``."""
    present = {path.name for path in directory.glob("*") if path.is_file()}
    changed = [
        name
        for name, data in files.items()
        if name not in present or (directory / name).read_bytes() != data
    ]
    return sorted(changed + [name for name in present if name not in files])


def main(argv: list[str]) -> int:
    replica_scripts = scripts()
    failed = [
        name for name, (data, check) in replica_scripts.items() if not check(run_script(data))
    ]
    if failed:
        print(f"seed scripts that no longer do what they say: {', '.join(failed)}", file=sys.stderr)
        return 1
    corpus = {
        CORPUS / "frames": frames(),
        CORPUS / "replica": {name: data for name, (data, _) in replica_scripts.items()},
    }
    if "--check" in argv:
        stale = [f"{d.name}/{n}" for d, files in corpus.items() for n in differences(d, files)]
        if stale:
            print(f"stale seed corpus (run {argv[0]}): {', '.join(stale)}", file=sys.stderr)
            return 1
        return 0
    for directory, files in corpus.items():
        write(directory, files)
    total = sum(len(data) for files in corpus.values() for data in files.values())
    print(f"wrote {sum(map(len, corpus.values()))} files ({total} bytes) under {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
