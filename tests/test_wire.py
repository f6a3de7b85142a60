"""Peer frames: whatever a peer sends, decoding either gives a valid message or a FrameError."""

from __future__ import annotations

import contextlib

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus.messages import Prepare, Status
from ledger import encoding
from ledger.devchain import LocalConsortium
from ledger.model import Transaction
from node.wire import FRAME_LIMITS, FrameError, TransactionGossip, decode_frame, encode_frame

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
