#!/usr/bin/env python3
"""Coverage-guided fuzzing (atheris/libFuzzer) of what a peer can make a node decode and do.

Usage::

    python tests/fuzz/fuzz_frames.py TARGET [CORPUS_DIR ...] [-libfuzzer_flag=value ...]

``TARGET`` (or the ``SCEAU_FUZZ_TARGET`` environment variable) is one of:

``decode``
    The bytes are a peer frame's payload. They go through the transport's frame layer
    (``FrameSealer`` then ``FrameOpener`` must give them back unchanged; the same bytes taken
    as a forged frame must raise ``BadFrame``), then through :func:`node.runtime.wire.decode_frame`,
    which may only raise :class:`~node.runtime.wire.FrameError`. A frame that decodes must
    re-encode to exactly its own bytes: one message, one byte form, so nothing unsigned slips
    through. And pydantic alone (the path of anything the direct field check does not take)
    must give the same message, or refuse with the same message.
``replica``
    The bytes are a script (see :mod:`fuzz_support`): a starting point, then up to twelve
    frames that a fresh :class:`~consensus.replica.Replica` of a four-member consortium
    receives through ``on_message`` (gossip through ``on_transactions``). The replica may not
    raise anything; its actions are executed as the node executes them (a ``CommitBlock`` must
    carry a valid certificate for a valid block that extends the chain), every message it sends
    must survive the wire, and its buffers must stay within their configured bounds.
``unpack``
    :func:`ledger.encoding.unpack` under the peer-frame limits may only raise
    :class:`~ledger.encoding.EncodingError`, and what it returns must re-encode to the input.

Every input is handled from a fresh state, so a crash replays from its bytes alone. Run with
``-rss_limit_mb=1024`` (the Makefile and the test do): an input that makes memory grow without
bound then fails as "out-of-memory" instead of going unnoticed. Uncaught exceptions and failed
assertions are reported by atheris with the input that caused them (written under
``-artifact_prefix``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

import atheris

# Only the project's own code is instrumented: pydantic-core and msgpack are compiled and
# give no Python coverage, and instrumenting the rest of the standard library would only slow
# every input down.
with atheris.instrument_imports(include=["ledger", "consensus", "node"]):
    import fuzz_support

    from consensus.messages import message_from_document
    from ledger import encoding
    from ledger.model import ModelDecodeError
    from node.runtime.transport import SESSION_KEY_BYTES, BadFrame, FrameOpener, FrameSealer
    from node.runtime.wire import (
        FRAME_LIMITS,
        CheckpointSignature,
        FrameError,
        TransactionGossip,
        decode_frame,
        encode_frame,
    )

SESSION_KEY = bytes(range(SESSION_KEY_BYTES))
FRAME_BYTES_MAX = FRAME_LIMITS.total_bytes_max


# --- target: decode ---------------------------------------------------------------------------


def fuzz_decode(data: bytes) -> None:
    """A peer frame payload: decoded to the one message it encodes, or refused with FrameError."""
    sealer = FrameSealer(SESSION_KEY)
    opener = FrameOpener(SESSION_KEY, frame_bytes_max=FRAME_BYTES_MAX)
    assert opener.open(sealer.seal(data)) == data, "a sealed frame did not open to its payload"
    try:
        FrameOpener(SESSION_KEY, frame_bytes_max=FRAME_BYTES_MAX).open(data)
    except BadFrame:
        pass
    else:  # only if the fuzzer forged a ChaCha20-Poly1305 tag: worth a report
        raise AssertionError("unsealed bytes were accepted as an authenticated frame")
    try:
        message = decode_frame(data)
    except FrameError as error:
        assert decoded_by_pydantic(data) == ("refused", str(error)), "the two paths differ"
        return
    assert encode_frame(message) == data, "a frame decoded to a message with other bytes"
    assert decoded_by_pydantic(data) == ("accepted", message), "the two paths differ"


def decoded_by_pydantic(data: bytes) -> tuple[str, Any]:
    """What pydantic alone makes of a frame (decode_frame builds the messages that carry blocks
    or transactions by a direct field check): the same message, or the same refusal."""
    try:
        document = encoding.unpack(data, FRAME_LIMITS)
        kind = document.get("kind") if isinstance(document, dict) else None
        if kind == "transactions":
            return ("accepted", TransactionGossip.from_canonical(document))
        if kind == "checkpoint_signature":
            return ("accepted", CheckpointSignature.from_canonical(document))
        return ("accepted", message_from_document(document))
    except (encoding.EncodingError, ModelDecodeError) as error:
        return ("refused", str(error))


# --- target: unpack ---------------------------------------------------------------------------


def fuzz_unpack(data: bytes) -> None:
    """Canonical msgpack: EncodingError, or a value whose only encoding is the input."""
    try:
        value = encoding.unpack(data, FRAME_LIMITS)
    except encoding.EncodingError:
        return
    assert encoding.pack(value, depth_max=FRAME_LIMITS.depth_max) == data, "two byte forms"


# --- target: replica --------------------------------------------------------------------------


def fuzz_replica(data: bytes) -> None:
    """A script of peer frames: the replica never raises, and stays bounded (see the driver)."""
    fuzz_support.run_script(data)


# --- entry point ------------------------------------------------------------------------------

TARGETS: dict[str, Callable[[bytes], None]] = {
    "decode": fuzz_decode,
    "replica": fuzz_replica,
    "unpack": fuzz_unpack,
}


def choose_target(argv: list[str]) -> tuple[Callable[[bytes], None], list[str]]:
    """The target named by ``argv[1]`` (removed from the returned argv) or the environment."""
    if len(argv) > 1 and argv[1] in TARGETS:
        return TARGETS[argv[1]], [argv[0], *argv[2:]]
    name = os.environ.get("SCEAU_FUZZ_TARGET", "")
    if name not in TARGETS:
        sys.exit(f"usage: {argv[0]} {{{','.join(TARGETS)}}} [corpus ...] [libFuzzer flags]")
    return TARGETS[name], argv


def main() -> None:
    target, argv = choose_target(sys.argv)
    atheris.Setup(argv, target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
