"""Every LevelDB key layout of a node's chain database, in one place.

The chain database holds, under distinct ASCII prefixes:

=====================  ==========================================  ============================
key                    value                                       written
=====================  ==========================================  ============================
``meta/format``        ``b"1"``                                    at creation
``meta/genesis``       canonical genesis                           at creation
``meta/tip``           canonical ``[height, block_hash, state_root]``  with every block
``meta/safety``        the replica's safety record (consensus)     before each vote it covers
``meta/safety-saves``  how many safety records were saved (8 bytes  with ``meta/safety``
                       big-endian), what the witness counts
``meta/witnessed``     empty: this database has a witness file     at creation (or the first
                       (ledger.witness) beside its LevelDB files   open that made one)
``block/<h>``          ``block_hash (32) || canonical block``      with block h
``hash/<block_hash>``  ``<h>``                                     with block h
``cert/<h>``           canonical commit certificate                with block h
``tx/<tx_id>``         ``<h> || position (4 bytes, big-endian)``   with block h
``node/<node_hash>``   state tree record (see ledger.state)        with the block that made it
``value/<state key>``  the state value at the tip                  with every block
``members-change/<h>`` empty: block h is certified by another       with block h
                       member set than block h − 1
``meta/log-size``      the log's size (8 bytes big-endian): how    with every block (or built
                       many transactions the chain holds           at the first open of a
                                                                   database from before it)
``log/<l><i>``         the hash of the log's complete subtree of   with the block that
                       level ``l`` (1 byte) and index ``i`` (8     completes it
                       bytes big-endian) — ledger.tlog
``log-block/<i>``      ``<h>``: the first log index of block h     with block h (if it holds
                       (8 bytes big-endian)                        transactions)
``meta/checkpoint``    the latest consortium checkpoint: a C2SP    when a quorum of members
                       signed note (docs/witnesses.md), with the   signed it, and as witness
                       witnesses' cosignatures gathered so far     cosignatures arrive
=====================  ==========================================  ============================

``<h>`` is a height as 8 bytes big-endian, so that heights sort in numeric order. The value
index duplicates what the state tree holds at the tip; it exists so that contracts read the
state in one lookup instead of a walk down the tree, and is written in the same batch.
"""

from __future__ import annotations

import struct

FORMAT_VERSION = b"1"

FORMAT = b"meta/format"
GENESIS = b"meta/genesis"
TIP = b"meta/tip"
SAFETY = b"meta/safety"
SAFETY_SAVES = b"meta/safety-saves"
WITNESSED = b"meta/witnessed"

BLOCK_PREFIX = b"block/"
HASH_PREFIX = b"hash/"
CERTIFICATE_PREFIX = b"cert/"
TRANSACTION_PREFIX = b"tx/"
NODE_PREFIX = b"node/"
VALUE_PREFIX = b"value/"
MEMBER_SET_CHANGE_PREFIX = b"members-change/"
LOG_SIZE = b"meta/log-size"
CHECKPOINT = b"meta/checkpoint"
LOG_PREFIX = b"log/"
LOG_BLOCK_PREFIX = b"log-block/"

_HEIGHT = struct.Struct(">Q")
_LOCATION = struct.Struct(">QI")


def encode_height(height: int) -> bytes:
    return _HEIGHT.pack(height)


def decode_height(data: bytes) -> int:
    return _HEIGHT.unpack(data)[0]


def block_key(height: int) -> bytes:
    return BLOCK_PREFIX + _HEIGHT.pack(height)


def hash_key(block_hash: bytes) -> bytes:
    return HASH_PREFIX + block_hash


def certificate_key(height: int) -> bytes:
    return CERTIFICATE_PREFIX + _HEIGHT.pack(height)


def transaction_key(tx_id: bytes) -> bytes:
    return TRANSACTION_PREFIX + tx_id


def encode_location(height: int, position: int) -> bytes:
    return _LOCATION.pack(height, position)


def decode_location(data: bytes) -> tuple[int, int]:
    height, position = _LOCATION.unpack(data)
    return height, position


def node_key(node_hash: bytes) -> bytes:
    return NODE_PREFIX + node_hash


def value_key(state_key: bytes) -> bytes:
    return VALUE_PREFIX + state_key


def member_set_change_key(height: int) -> bytes:
    return MEMBER_SET_CHANGE_PREFIX + _HEIGHT.pack(height)


def log_key(level: int, index: int) -> bytes:
    return LOG_PREFIX + bytes([level]) + _HEIGHT.pack(index)


def log_block_key(first_index: int) -> bytes:
    return LOG_BLOCK_PREFIX + _HEIGHT.pack(first_index)
