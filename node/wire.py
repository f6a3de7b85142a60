"""Peer frames: consensus messages plus the node's own transaction gossip.

Every peer frame is one canonical msgpack map with a ``kind``. Consensus messages are defined
in :mod:`consensus.messages`; the node adds ``transactions`` (mempool gossip: signed
transactions a member accepted from its clients, forwarded so that any primary can include
them). Frames are decoded under strict limits; anything malformed raises a
:class:`FrameError` that the daemon counts and drops.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from consensus.messages import message_from_document
from ledger import encoding
from ledger.model import CanonicalModel, MemberId, ModelDecodeError, Transaction

__all__ = ["FRAME_LIMITS", "FrameError", "TransactionGossip", "decode_frame", "encode_frame"]

GOSSIP_TRANSACTIONS_MAX = 512

FRAME_LIMITS = encoding.DecodeLimits(
    total_bytes_max=16 * 1024 * 1024,
    depth_max=24,
    str_bytes_max=64 * 1024,
    bin_bytes_max=64 * 1024,
    array_length_max=100_000,
    map_length_max=4_096,
)
"""Peer frames: the transport delivers at most 16 MiB (a block is at most 12 MiB of
transactions); everything else is bounded tighter."""


class FrameError(ValueError):
    """A frame that does not decode to a known, valid message."""


class TransactionGossip(CanonicalModel):
    """Transactions a member accepted into its mempool, forwarded to the others."""

    kind: Literal["transactions"] = "transactions"
    transactions: Annotated[
        tuple[Transaction, ...], Field(min_length=1, max_length=GOSSIP_TRANSACTIONS_MAX)
    ]
    sender: MemberId


def encode_frame(message: Any) -> bytes:
    return message.to_bytes()


def decode_frame(data: bytes) -> Any:
    """A consensus message or a :class:`TransactionGossip`; raises :class:`FrameError`."""
    try:
        document = encoding.unpack(data, FRAME_LIMITS)
        if isinstance(document, dict) and document.get("kind") == "transactions":
            return TransactionGossip.from_canonical(document)
        return message_from_document(document)
    except (encoding.EncodingError, ModelDecodeError) as error:
        raise FrameError(str(error)) from None
