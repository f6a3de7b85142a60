"""Peer frames: whatever a peer sends, decoding either gives a valid message or a FrameError;
the scan reads a frame's envelope and refuses frames over their kind's limits before decoding."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.messages import (
    MESSAGE_TYPES,
    BlockResponse,
    CommitVote,
    NewView,
    Prepare,
    PrePrepare,
    Status,
    ViewChange,
)
from ledger import encoding, merkle
from ledger.devchain import LocalConsortium
from ledger.model import Block, BlockHeader, Transaction
from node.runtime.wire import (
    FRAME_LIMITS,
    GOSSIP_TRANSACTIONS_MAX,
    FrameError,
    FrameLimits,
    FrameRefused,
    TransactionGossip,
    decode_frame,
    encode_frame,
    scan_frame,
)

CONSORTIUM = LocalConsortium.create([("m0", "Zero"), ("m1", "One")], seed=b"wire tests")
KEY = CONSORTIUM.keys["m0"]
GOSSIP = TransactionGossip(
    transactions=(
        Transaction.create(
            KEY,
            chain_id=CONSORTIUM.chain_id,
            contract="deeds",
            action="anchor",
            args={"reference": "2026-DEL-001", "digest": bytes(32)},
            nonce=1,
            expiry_height=9,
        ),
    ),
    sender="m0",
)
PREPARE = Prepare.sign(
    KEY, CONSORTIUM.chain_id, height=3, view=1, block_hash=bytes(range(32)), sender="m0"
)
STATUS = Status(height=2, certificate=None, sender="m1")
VALID_FRAMES = [encode_frame(message) for message in (GOSSIP, PREPARE, STATUS)]


def test_valid_frames_decode_to_their_messages() -> None:
    assert [decode_frame(frame) for frame in VALID_FRAMES] == [GOSSIP, PREPARE, STATUS]


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_never_raise_anything_but_frame_error(data: bytes) -> None:
    with contextlib.suppress(FrameError):
        decode_frame(data)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from(VALID_FRAMES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_corrupted_frames_decode_to_a_valid_message_or_raise_frame_error(
    frame: bytes, changes: list[tuple[int, int]]
) -> None:
    corrupted = bytearray(frame)
    for position, value in changes:
        corrupted[position % len(corrupted)] = value
    try:
        message = decode_frame(bytes(corrupted))
    except FrameError:
        return
    assert encode_frame(message) == bytes(corrupted)  # one byte form: nothing slipped through


def test_a_frame_claiming_huge_lengths_is_refused_without_allocating_them() -> None:
    # A map header announcing 2**32 - 1 entries, a bin header announcing 4 GiB: refused by the
    # limits before anything that size exists.
    for frame in (b"\xdf\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff" + b"x" * 16):
        try:
            decode_frame(frame)
        except FrameError:
            continue
        raise AssertionError("a frame with impossible lengths was accepted")


def test_a_frame_larger_than_the_limit_is_refused() -> None:
    oversized = encoding.pack({"kind": "status", "blob": bytes(FRAME_LIMITS.bin_bytes_max + 1)})
    try:
        decode_frame(oversized)
    except FrameError:
        return
    raise AssertionError("an oversized frame was accepted")


# --- the scan: the envelope before the bulk ------------------------------------------------------

LIMITS = FrameLimits()


def _hostile() -> object:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "hostile.py"
    spec = importlib.util.spec_from_file_location("hostile_for_wire_tests", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _block(transactions: tuple[Transaction, ...], *, height: int = 4, view: int = 1) -> Block:
    header = BlockHeader(
        chain_id=CONSORTIUM.chain_id,
        height=height,
        prev_hash=bytes(32),
        timestamp_ms=1_767_225_600_000,
        proposer="m1",
        view=view,
        tx_count=len(transactions),
        tx_root=merkle.root([transaction.encoded for transaction in transactions]),
        state_root=bytes(32),
        members_hash=CONSORTIUM.genesis.members_hash,
    )
    return Block(header=header, transactions=transactions)


def _anchors(count: int, *, size: int = 16) -> tuple[Transaction, ...]:
    return tuple(
        Transaction.create(
            KEY,
            chain_id=CONSORTIUM.chain_id,
            contract="deeds",
            action="anchor",
            args={"reference": f"2026-DEL-{index:04d}", "note": "x" * size},
            nonce=index,
            expiry_height=9,
        )
        for index in range(count)
    )


def test_kind_is_the_first_key_of_every_canonical_frame() -> None:
    # The scan reads the kind first and checks its byte limit before anything else: every
    # message's canonical map must start with it.
    for model in (*MESSAGE_TYPES, TransactionGossip):
        names = sorted(model.model_fields, key=lambda name: encoding.pack(name))
        assert names[0] == "kind", model.__name__


def test_the_scan_reads_the_envelope_of_a_proposal_without_decoding_it() -> None:
    block = _block(_anchors(3))
    proposal = PrePrepare.sign(KEY, CONSORTIUM.chain_id, view=1, block=block, sender="m0")
    header = scan_frame(encode_frame(proposal), LIMITS)
    assert (header.kind, header.sender, header.height, header.view) == ("pre_prepare", "m0", 4, 1)
    assert header.transactions == 3
    assert header.block_hash == block.block_hash, "the raw header hashes to the block hash"
    assert header.signature == proposal.signature


def test_every_valid_frame_passes_the_scan() -> None:
    block = _block(_anchors(2))
    proposal = PrePrepare.sign(KEY, CONSORTIUM.chain_id, view=1, block=block, sender="m0")
    view_change = ViewChange.sign(
        KEY, CONSORTIUM.chain_id, height=4, view=1, prepared=None, sender="m0"
    )
    new_view = NewView.sign(
        KEY,
        CONSORTIUM.chain_id,
        height=4,
        view=1,
        view_changes=(view_change,),
        pre_prepare=proposal,
        sender="m0",
    )
    certificate = CONSORTIUM.certify(block)
    response = BlockResponse(blocks=((block, certificate),), sender="m1")
    commit = CommitVote.sign(
        KEY, CONSORTIUM.chain_id, height=4, view=1, block_hash=block.block_hash, sender="m0"
    )
    for message, transactions in (
        (proposal, 2),
        (view_change, 0),
        (new_view, 2),
        (response, 2),
        (commit, 0),
        (GOSSIP, 1),
        (PREPARE, 0),
        (STATUS, 0),
    ):
        header = scan_frame(encode_frame(message), LIMITS)
        assert header.kind == message.kind
        assert header.sender == message.sender
        assert header.transactions == transactions, message.kind


def test_a_15_mib_proposal_of_75000_junk_transactions_is_refused_in_milliseconds() -> None:
    hostile = _hostile()
    frame = hostile.oversized_pre_prepare(CONSORTIUM.chain_id, sender="m0", height=3, view=0)
    assert len(frame) > 15 * 1024 * 1024
    started = time.perf_counter()
    with pytest.raises(FrameRefused) as refused:
        scan_frame(frame, LIMITS)
    by_size_s = time.perf_counter() - started
    assert (refused.value.reason, refused.value.kind) == ("too_large", "pre_prepare")
    # A consortium whose blocks may be that large still refuses the transaction count before
    # reading a single transaction.
    large_blocks = FrameLimits(block_bytes_max=12 * 1024 * 1024, envelope_bytes_max=4 * 1024**2)
    started = time.perf_counter()
    with pytest.raises(FrameRefused) as refused:
        scan_frame(frame, large_blocks)
    by_count_s = time.perf_counter() - started
    assert refused.value.reason == "too_many_transactions"
    # Measured: 0.02 ms and 8 ms (a full decode of that frame: 2.3 s and +124 MiB).
    assert by_size_s < 0.05 and by_count_s < 0.5, (by_size_s, by_count_s)


def test_a_vote_larger_than_a_small_frame_is_refused_before_decoding() -> None:
    padded = encoding.pack(
        {**PREPARE.to_canonical(), "padding": [bytes(60_000)] * 2}  # canonical order kept
    )
    with pytest.raises(FrameRefused) as refused:
        scan_frame(padded, LIMITS)
    assert (refused.value.reason, refused.value.kind) == ("too_large", "prepare")


def test_a_block_over_the_transaction_count_or_size_limit_is_refused() -> None:
    block = _block(_anchors(5))
    proposal = PrePrepare.sign(KEY, CONSORTIUM.chain_id, view=1, block=block, sender="m0")
    with pytest.raises(FrameRefused) as refused:
        scan_frame(encode_frame(proposal), FrameLimits(block_transactions_max=4))
    assert refused.value.reason == "too_many_transactions"
    big = _block(_anchors(1, size=2_000))
    proposal = PrePrepare.sign(KEY, CONSORTIUM.chain_id, view=1, block=big, sender="m0")
    with pytest.raises(FrameRefused) as refused:
        scan_frame(encode_frame(proposal), FrameLimits(transaction_bytes_max=1_024))
    assert refused.value.reason == "transaction_too_large"


def test_gossip_over_its_transaction_count_is_refused_by_the_scan() -> None:
    transaction = encoding.unpack(GOSSIP.transactions[0].encoded)
    frame = encoding.pack(
        {
            "kind": "transactions",
            "sender": "m0",
            "transactions": [transaction] * (GOSSIP_TRANSACTIONS_MAX + 1),
        }
    )
    with pytest.raises(FrameRefused) as refused:
        scan_frame(frame, LIMITS)
    assert refused.value.reason == "too_many_transactions"


def test_an_unknown_kind_or_a_frame_without_kind_first_is_refused() -> None:
    for frame, reason in (
        (encoding.pack({"kind": "gossip", "sender": "m0"}), "unknown_kind"),
        (encoding.pack({"a": 1, "kind": "status"}), "malformed"),
        (encoding.pack([1, 2]), "malformed"),
        (b"", "malformed"),
    ):
        with pytest.raises(FrameRefused) as refused:
            scan_frame(frame, LIMITS)
        assert refused.value.reason == reason, frame


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.binary(max_size=2048))
def test_the_scan_of_arbitrary_bytes_raises_nothing_but_frame_refused(data: bytes) -> None:
    with contextlib.suppress(FrameRefused):
        scan_frame(data, LIMITS)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.sampled_from(VALID_FRAMES),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=8),
)
def test_the_scan_of_corrupted_frames_raises_nothing_but_frame_refused(
    frame: bytes, changes: list[tuple[int, int]]
) -> None:
    corrupted = bytearray(frame)
    for position, value in changes:
        corrupted[position % len(corrupted)] = value
    with contextlib.suppress(FrameRefused):
        scan_frame(bytes(corrupted), LIMITS)


def test_a_transaction_of_many_tiny_values_is_refused_before_its_validation() -> None:
    # 7.7 MiB of gossip whose transactions each hold 16,000 one-byte integers: validating them
    # walks every value in Python (104 s measured for empty maps before this limit); the scan
    # counts them in C and refuses the frame in milliseconds.
    for junk in ([1] * 16_000, [{}] * 16_000):
        transaction = {**encoding.unpack(GOSSIP.transactions[0].encoded), "args": {"a": junk}}
        frame = encoding.pack(
            {"kind": "transactions", "sender": "m0", "transactions": [transaction] * 500}
        )
        started = time.perf_counter()
        with pytest.raises(FrameRefused) as refused:
            scan_frame(frame, LIMITS)
        elapsed_s = time.perf_counter() - started
        assert refused.value.reason == "too_many_values"
        assert elapsed_s < 0.5, f"{elapsed_s:.3f} s (measured 8 to 17 ms)"
    plain = encoding.unpack(GOSSIP.transactions[0].encoded)
    many = encoding.pack({"kind": "transactions", "sender": "m0", "transactions": [plain] * 512})
    assert scan_frame(many, LIMITS).transactions == 512, "plain anchors stay far below"
