"""Domain tags: the one place where every signature context of sceau is named.

Every Ed25519 signature in sceau covers ``len(tag) || tag || chain_id || payload`` (see
:mod:`ledger.crypto` and docs/format.md). The tag says what the signature is for, the
``chain_id`` which consortium it belongs to, so a signature made for one purpose or one
consortium never verifies for another. A tag is ASCII, at most 64 bytes, and ends with a
version so that a future format gets a new tag instead of a silent reinterpretation.
"""

from __future__ import annotations

TRANSACTION = b"sceau/tx/v1"
"""A client transaction; payload = tx_id (32 bytes)."""

PRE_PREPARE = b"sceau/pre-prepare/v1"
"""A primary's proposal; payload = canonical [height, view, block_hash]."""

PREPARE = b"sceau/prepare/v1"
"""A PBFT prepare vote; payload = canonical [height, view, block_hash]."""

COMMIT = b"sceau/commit/v1"
"""A PBFT commit vote, the stuff of commit certificates; payload = canonical
[height, view, block_hash]."""

VIEW_CHANGE = b"sceau/view-change/v1"
"""A view-change message; payload = canonical body of the message."""

NEW_VIEW = b"sceau/new-view/v1"
"""A new-view message; payload = canonical body of the message."""

PEER_HANDSHAKE = b"sceau/peer-handshake/v1"
"""Proof of possession of a member key when a peer connection opens."""

PEER_FRAME = b"sceau/peer-frame/v1"
"""An authenticated frame on a peer connection without TLS."""

ALL_TAGS = (
    TRANSACTION,
    PRE_PREPARE,
    PREPARE,
    COMMIT,
    VIEW_CHANGE,
    NEW_VIEW,
    PEER_HANDSHAKE,
    PEER_FRAME,
)

assert len(set(ALL_TAGS)) == len(ALL_TAGS), "domain tags must be distinct"
assert all(0 < len(tag) <= 64 and tag.isascii() for tag in ALL_TAGS)
# Every signed message starts with the byte len(tag): with tags of 11 to 31 bytes that byte is
# an ASCII control character other than newline (0x0B..0x1F), which the text of a signed note
# never holds. So no sceau signature is ever also a valid signed-note signature (members sign
# checkpoints as notes with the same key, docs/format.md "Checkpoints"), nor the reverse.
assert all(11 <= len(tag) <= 31 for tag in ALL_TAGS), "a tag is 11 to 31 bytes (see above)"
