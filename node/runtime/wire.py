"""Peer frames: consensus messages plus the node's own transaction gossip.

Every peer frame is one canonical msgpack map with a ``kind``. Consensus messages are defined
in :mod:`consensus.messages`; the node adds ``transactions`` (mempool gossip: signed
transactions a member accepted from its clients, forwarded so that any primary can include
them) and ``checkpoint_signature`` (a member's signed-note signature of the checkpoint of a
block it committed, node/runtime/checkpoints.py: no part of consensus). Anything malformed
raises a :class:`FrameError` that the daemon counts and drops.

Theory of operation: budgets before work
----------------------------------------
Decoding a frame is the first cost a peer can impose: building a pydantic model of a 16 MiB
proposal with 75,000 transactions takes seconds and over 100 MiB. So a frame goes through two
stages:

1. :func:`scan_frame` reads only the envelope, with msgpack's streaming decoder: the map
   header, the ``kind`` (always the first key of a canonical frame: every other field name is
   longer, or sorts after it), then the other top-level fields. Scalars (``sender``,
   ``height``, ``view``, ``signature``) are read; blocks are entered only to read their header's
   raw bytes and the *length* of their transaction array, and each transaction is skipped in C
   without building it, only its size measured and its values counted (decoded alone, in C).
   Everything else is skipped in C. Refused here, before the frame is decoded: a frame over
   its kind's byte limit (checked right after the kind, before the rest is even copied), a
   block with more transactions than ``block_transactions_max``, a transaction over
   ``transaction_bytes_max`` or :attr:`FrameLimits.transaction_values_max` values, a gossip
   frame of more than :data:`GOSSIP_TRANSACTIONS_MAX` transactions or
   :attr:`FrameLimits.gossip_values_max` values. Decoding costs per value, not per byte
   (validating a transaction walks its arguments in Python): counting values bounds it.
   A 15.8 MiB proposal is refused in well under a millisecond (tests/test_wire.py).
2. :func:`decode_frame` decodes the whole frame canonically and builds the model, under
   :data:`FRAME_LIMITS`. The daemon calls it only once the scan, the sender, its role and its
   budget have passed (node/runtime/daemon.py).

The byte limit of each kind comes from :class:`FrameLimits`, built from the consortium's
parameters in force: votes, status, block requests and view changes without a block are small
(:attr:`FrameLimits.small_frame_bytes_max`); a proposal (``pre_prepare``) is at most
``block_bytes_max`` plus an envelope; a ``new_view`` adds one small view change per member; a
``block_response`` (catch-up) may fill a whole frame.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgpack
from pydantic import Field

from consensus.messages import BLOCKS_PER_RESPONSE_MAX, MESSAGE_TYPES, message_from_decoded
from ledger import encoding
from ledger.model import (
    MEMBERS_MAX,
    CanonicalModel,
    ConsensusParameters,
    Count,
    Hash32,
    Height,
    MemberId,
    ModelDecodeError,
    Signature,
    Transaction,
    built,
    decoded_transactions,
    is_member_id,
)

__all__ = [
    "FRAME_LIMITS",
    "GOSSIP_TRANSACTIONS_MAX",
    "CheckpointSignature",
    "FrameError",
    "FrameHeader",
    "FrameLimits",
    "FrameRefused",
    "TransactionGossip",
    "decode_frame",
    "encode_frame",
    "scan_frame",
]

GOSSIP_TRANSACTIONS_MAX = 512
FRAME_BYTES_MAX = 16 * 1024 * 1024
"""What the transport delivers at most (node/runtime/transport.py ``frame_bytes_max``)."""

FRAME_LIMITS = encoding.DecodeLimits(
    total_bytes_max=FRAME_BYTES_MAX,
    depth_max=24,
    str_bytes_max=64 * 1024,
    bin_bytes_max=64 * 1024,
    array_length_max=100_000,
    map_length_max=4_096,
)
"""The full decode of a frame that passed :func:`scan_frame`: a block is at most 12 MiB of
transactions; everything else is bounded tighter."""

ENVELOPE_PEEK_BYTES = 64
"""The map header and the kind fit in this many bytes: the rest of a frame is not even copied
into the decoder before the kind's byte limit is checked."""
TOP_LEVEL_FIELDS_MAX = 16
"""No message has more than 8 fields; a map header announcing more is refused unread."""


class FrameError(ValueError):
    """A frame that does not decode to a known, valid message."""


class FrameRefused(FrameError):
    """A frame refused by :func:`scan_frame` before it was decoded.

    ``reason`` is a stable slug for the counters (``too_large``, ``too_many_transactions``,
    ``transaction_too_large``, ``too_many_values``, ``unknown_kind``, ``malformed``);
    ``kind`` the frame's kind when it was read (else ``"?"``).
    """

    def __init__(self, reason: str, kind: str, detail: str) -> None:
        super().__init__(f"{reason} ({kind}): {detail}")
        self.reason = reason
        self.kind = kind


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameLimits:
    """Byte and count limits that :func:`scan_frame` applies to each kind of frame.

    Build it with :meth:`for_parameters` from the consortium parameters in force.
    """

    small_frame_bytes_max: int = 64 * 1024
    """Votes (~200 bytes), status and view changes (a certificate of at most 256 signatures,
    ~30 KiB), block requests."""
    envelope_bytes_max: int = 64 * 1024
    """What a proposal frame holds besides its block's transactions (header, signature)."""
    block_bytes_max: int = ConsensusParameters().block_bytes_max
    block_transactions_max: int = ConsensusParameters().block_transactions_max
    transaction_bytes_max: int = ConsensusParameters().transaction_bytes_max
    members_count: int = 4
    frame_bytes_max: int = FRAME_BYTES_MAX
    transaction_values_max: int = 1_024
    """Values (map entries and array items, at every depth) in one transaction: validating a
    transaction walks every value of its arguments in Python (about a microsecond each), so a
    16 KiB transaction of 16,000 one-byte integers would cost 60 ms; the built-in contracts
    take at most a few hundred (deeds: three lists of at most 64 links)."""
    gossip_values_max: int = 65_536
    """Values in all the transactions of one gossip frame (512 plain anchors take ~8,000).
    Gossip is no part of consensus: a node may refuse it, the client submits elsewhere."""

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            assert type(value) is int and value > 0, f"{name} must be a positive int"
        assert self.small_frame_bytes_max <= self.frame_bytes_max

    @classmethod
    def for_parameters(cls, parameters: ConsensusParameters, members_count: int) -> FrameLimits:
        return cls(
            block_bytes_max=parameters.block_bytes_max,
            block_transactions_max=parameters.block_transactions_max,
            transaction_bytes_max=parameters.transaction_bytes_max,
            members_count=max(1, members_count),
        )

    @property
    def proposal_frame_bytes_max(self) -> int:
        """A ``pre_prepare``: one block and its envelope."""
        return min(self.frame_bytes_max, self.block_bytes_max + self.envelope_bytes_max)

    def bytes_max(self, kind: str) -> int:
        """The largest frame of ``kind`` (a view change may carry its prepared block)."""
        if kind in ("prepare", "commit", "status", "block_request", "checkpoint_signature"):
            return self.small_frame_bytes_max
        if kind in ("pre_prepare", "view_change"):
            return self.proposal_frame_bytes_max
        if kind == "new_view":
            extra = self.members_count * self.small_frame_bytes_max
            return min(self.frame_bytes_max, self.proposal_frame_bytes_max + extra)
        if kind == "transactions":
            gossip = GOSSIP_TRANSACTIONS_MAX * self.transaction_bytes_max
            return min(self.frame_bytes_max, gossip + self.envelope_bytes_max)
        assert kind == "block_response", kind
        return self.frame_bytes_max


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameHeader:
    """What :func:`scan_frame` read of a frame without decoding it."""

    kind: str
    size_bytes: int
    sender: str | None = None
    height: int | None = None
    view: int | None = None
    signature: bytes | None = None
    transactions: int = 0
    """Transactions in every block (or the gossip) of the frame."""
    block_header: bytes | None = None
    """The raw bytes of the (first) block's header: its SHA-256 is the block hash if the
    frame turns out canonical (the full decode checks that)."""

    @property
    def block_hash(self) -> bytes | None:
        return hashlib.sha256(self.block_header).digest() if self.block_header else None


class TransactionGossip(CanonicalModel):
    """Transactions a member accepted into its mempool, forwarded to the others."""

    kind: Literal["transactions"] = "transactions"
    transactions: Annotated[
        tuple[Transaction, ...], Field(min_length=1, max_length=GOSSIP_TRANSACTIONS_MAX)
    ]
    sender: MemberId

    @classmethod
    def from_decoded(cls, document: Any) -> TransactionGossip:
        """As :meth:`CanonicalModel.from_decoded`: the transactions are checked without
        pydantic when they can be (:func:`ledger.model.decoded_transaction`)."""
        gossip = _decoded_gossip(document)
        return gossip if gossip is not None else cls.from_canonical(document)


_GOSSIP_FIELDS = frozenset(TransactionGossip.model_fields)
assert TransactionGossip.__pydantic_post_init__ is None
assert not TransactionGossip.__private_attributes__


def _decoded_gossip(document: Any) -> TransactionGossip | None:
    """The gossip of a decoded canonical map, or None to leave it to pydantic."""
    if type(document) is not dict or document.keys() != _GOSSIP_FIELDS:
        return None
    entries = document["transactions"]
    if not (
        document["kind"] == "transactions"
        and is_member_id(document["sender"])
        and type(entries) is list
        and 1 <= len(entries) <= GOSSIP_TRANSACTIONS_MAX
    ):
        return None
    transactions = decoded_transactions(entries)
    if transactions is None:
        return None
    return built(
        TransactionGossip,
        {"kind": "transactions", "transactions": transactions, "sender": document["sender"]},
    )


class CheckpointSignature(CanonicalModel):
    """A member's Ed25519 signed-note signature (64 bytes, key name = the chain's origin) of
    the checkpoint ``(log_size, log_root)`` of the block it committed at ``height``, sent to
    the other members so that each gathers a quorum (node/runtime/checkpoints.py)."""

    kind: Literal["checkpoint_signature"] = "checkpoint_signature"
    sender: MemberId
    height: Height
    log_size: Count
    log_root: Hash32
    signature: Signature


MESSAGE_FIELDS: dict[str, frozenset[str]] = {
    model.model_fields["kind"].default: frozenset(model.model_fields) - {"kind"}
    for model in (*MESSAGE_TYPES, TransactionGossip, CheckpointSignature)
}
"""The fields of each kind of message, but ``kind``: any other is refused by the scan."""
KINDS = frozenset(MESSAGE_FIELDS)
BLOCK_HEADER_BYTES_MAX = 1024
"""A block header is about 350 bytes (fixed fields, a member id of at most 48 characters)."""


def encode_frame(message: Any) -> bytes:
    return message.to_bytes()


def decode_frame(data: bytes) -> Any:
    """A consensus message, a :class:`TransactionGossip` or a :class:`CheckpointSignature`;
    raises :class:`FrameError`.

    The full, canonical decode: call :func:`scan_frame` first on anything a peer sent.
    """
    try:
        document = encoding.unpack(data, FRAME_LIMITS)
        if isinstance(document, dict) and document.get("kind") == "transactions":
            return TransactionGossip.from_decoded(document)
        if isinstance(document, dict) and document.get("kind") == "checkpoint_signature":
            return CheckpointSignature.from_canonical(document)
        return message_from_decoded(document)
    except (encoding.EncodingError, ModelDecodeError) as error:
        raise FrameError(str(error)) from None


# --- the scan ------------------------------------------------------------------------------------

_MAP_BYTES = frozenset(range(0x80, 0x90)) | {0xDE, 0xDF}
_ARRAY_BYTES = frozenset(range(0x90, 0xA0)) | {0xDC, 0xDD}
_NIL_BYTE = 0xC0


class _Scan:
    """One pass over a frame's envelope (see the module doc); raises :class:`FrameRefused`."""

    def __init__(self, data: bytes, limits: FrameLimits) -> None:
        self.data = data
        self.limits = limits
        self.kind = "?"
        self.fields: dict[str, Any] = {}
        self.transactions = 0
        self.values = 0
        self.transaction_values = 0
        self.block_header: bytes | None = None
        self.unpacker = msgpack.Unpacker(
            raw=False,
            strict_map_key=False,
            max_buffer_size=max(1, len(data)),
            max_str_len=FRAME_LIMITS.str_bytes_max,
            max_bin_len=FRAME_LIMITS.bin_bytes_max,
            max_array_len=FRAME_LIMITS.array_length_max,
            max_map_len=FRAME_LIMITS.map_length_max,
            max_ext_len=0,
            list_hook=self.count,
            object_hook=self.count,
        )
        self.fed = min(len(data), ENVELOPE_PEEK_BYTES)
        self.unpacker.feed(memoryview(data)[: self.fed])

    def feed_the_rest(self) -> None:
        """The kind's limit passed: the rest of the frame goes in (a copy, in C)."""
        if self.fed < len(self.data):
            self.unpacker.feed(memoryview(self.data)[self.fed :])
            self.fed = len(self.data)

    def refuse(self, reason: str, detail: str) -> FrameRefused:
        return FrameRefused(reason, self.kind, detail)

    def next_byte(self) -> int:
        position = self.unpacker.tell()
        if position >= len(self.data):
            raise self.refuse("malformed", "truncated")
        return self.data[position]

    def scalar(self) -> Any:
        """The next value, which must not be a container (a scalar is at most 64 KiB)."""
        if self.next_byte() in _MAP_BYTES or self.next_byte() in _ARRAY_BYTES:
            raise self.refuse("malformed", "a container where a scalar is due")
        return self.unpacker.unpack()

    def map_header(self, entries_max: int) -> int:
        if self.next_byte() not in _MAP_BYTES:
            raise self.refuse("malformed", "a map is due")
        count = self.unpacker.read_map_header()
        if count > entries_max:
            raise self.refuse("malformed", f"a map of {count} entries")
        return count

    def array_header(self, length_max: int, what: str, reason: str = "malformed") -> int:
        if self.next_byte() not in _ARRAY_BYTES:
            raise self.refuse("malformed", f"{what}: an array is due")
        length = self.unpacker.read_array_header()
        if length > length_max:
            raise self.refuse(reason, f"{length} {what}, over {length_max}")
        return length

    def key(self) -> Any:
        return self.scalar()

    def run(self) -> FrameHeader:
        size = len(self.data)
        if size > self.limits.frame_bytes_max:
            raise self.refuse("too_large", f"{size} bytes, over {self.limits.frame_bytes_max}")
        entries = self.map_header(TOP_LEVEL_FIELDS_MAX)
        if entries == 0 or self.key() != "kind":
            raise self.refuse("malformed", "the first key is not 'kind'")
        kind = self.scalar()
        if kind not in KINDS:
            raise self.refuse("unknown_kind", f"kind {str(kind)[:40]!r}")
        self.kind = kind
        size_max = self.limits.bytes_max(kind)
        if size > size_max:
            raise self.refuse("too_large", f"{size} bytes, over {size_max}")
        self.feed_the_rest()
        self.fields = self.message_fields(entries - 1, kind)
        if self.unpacker.tell() != size:
            raise self.refuse("malformed", "trailing bytes")
        if kind == "view_change" and self.block_header is None and size > self.small_limit():
            raise self.refuse("too_large", f"{size} bytes without a block")
        fields = self.fields
        return FrameHeader(
            kind=kind,
            size_bytes=size,
            sender=fields.get("sender") if type(fields.get("sender")) is str else None,
            height=fields.get("height") if type(fields.get("height")) is int else None,
            view=fields.get("view") if type(fields.get("view")) is int else None,
            signature=fields.get("signature") if type(fields.get("signature")) is bytes else None,
            transactions=self.transactions,
            block_header=self.block_header,
        )

    def small_limit(self) -> int:
        return self.limits.small_frame_bytes_max

    def message_fields(self, entries: int, kind: str) -> dict[str, Any]:
        """Read the remaining ``entries`` of a ``kind`` message's map: scalars kept, blocks
        scanned, other known fields skipped in C; a field the message does not have is refused
        (the full decode would refuse it too, but only after building it)."""
        fields: dict[str, Any] = {}
        known = MESSAGE_FIELDS[kind]
        for _ in range(entries):
            name = self.key()
            if name not in known:
                raise self.refuse("malformed", f"{kind} has no field {str(name)[:40]!r}")
            if name in ("sender", "height", "view", "signature"):
                fields[name] = self.scalar()
            elif name in ("block", "prepared_block"):
                self.block_or_nil()
            elif name == "pre_prepare":
                self.message_fields(self.map_header(TOP_LEVEL_FIELDS_MAX) - 1, self.kind_key())
            elif name == "view_changes":
                for _ in range(self.array_header(MEMBERS_MAX, "view changes")):
                    entries_inner = self.map_header(TOP_LEVEL_FIELDS_MAX) - 1
                    self.message_fields(entries_inner, self.kind_key())
            elif name == "blocks":
                for _ in range(self.array_header(BLOCKS_PER_RESPONSE_MAX, "blocks")):
                    if self.array_header(2, "a block and its certificate") != 2:
                        raise self.refuse("malformed", "a block without its certificate")
                    self.block_or_nil()
                    self.unpacker.skip()
            elif name == "transactions":
                self.transaction_array(GOSSIP_TRANSACTIONS_MAX)
            else:
                self.unpacker.skip()
        return fields

    def kind_key(self) -> str:
        """The ``kind`` that opens a nested message's map (a NewView's proposal and view
        changes), which must be a known kind."""
        if self.key() != "kind":
            raise self.refuse("malformed", "the first key is not 'kind'")
        kind = self.scalar()
        if kind not in MESSAGE_FIELDS:
            raise self.refuse("malformed", f"nested kind {str(kind)[:40]!r}")
        return kind

    def block_or_nil(self) -> None:
        """A block: its header's raw bytes kept (at most :data:`BLOCK_HEADER_BYTES_MAX`), its
        transactions scanned."""
        if self.next_byte() == _NIL_BYTE:
            self.unpacker.skip()
            return
        for _ in range(self.map_header(2)):
            name = self.key()
            if name == "header":
                start = self.unpacker.tell()
                self.unpacker.skip()
                if self.unpacker.tell() - start > BLOCK_HEADER_BYTES_MAX:
                    raise self.refuse("malformed", "a block header over 1 KiB")
                if self.block_header is None:
                    self.block_header = self.data[start : self.unpacker.tell()]
            elif name == "transactions":
                self.transaction_array(self.limits.block_transactions_max)
            else:
                raise self.refuse("malformed", f"a block has no field {str(name)[:40]!r}")

    def transaction_array(self, count_max: int) -> None:
        """Count the transactions (refused over ``count_max`` before any is read), then decode
        each one alone, in C, measuring its size and counting its values (one Python call per
        map or array, :meth:`count`)."""
        count = self.array_header(count_max, "transactions", reason="too_many_transactions")
        self.transactions += count
        limits = self.limits
        unpacker = self.unpacker
        for _ in range(count):
            start = unpacker.tell()
            self.transaction_values = 0
            unpacker.unpack()
            if unpacker.tell() - start > limits.transaction_bytes_max:
                raise self.refuse(
                    "transaction_too_large",
                    f"a transaction over {limits.transaction_bytes_max} bytes",
                )
            self.values += self.transaction_values
        if self.kind == "transactions" and self.values > limits.gossip_values_max:
            raise self.refuse("too_many_values", f"{self.values} values in the gossip")

    def count(self, container: Any) -> Any:
        """The decoder's hook for every map and array it builds (only transactions are built:
        everything else is skipped or read as scalars)."""
        self.transaction_values += len(container)
        if self.transaction_values > self.limits.transaction_values_max:
            raise self.refuse(
                "too_many_values",
                f"a transaction of over {self.limits.transaction_values_max} values",
            )
        return container


def scan_frame(data: bytes, limits: FrameLimits) -> FrameHeader:
    """Read a frame's envelope without decoding its bulk (see the module doc).

    Returns a :class:`FrameHeader`; raises :class:`FrameRefused` for a frame over its kind's
    limits or that is not the msgpack map of a known kind. Passing the scan proves nothing
    else: :func:`decode_frame` still checks everything.
    """
    assert isinstance(data, bytes), "frames are bytes"
    scan = _Scan(data, limits)
    try:
        return scan.run()
    except FrameRefused:
        raise
    except (
        msgpack.OutOfData,
        msgpack.FormatError,
        msgpack.StackError,
        ValueError,
        TypeError,
        UnicodeDecodeError,
    ) as error:
        raise scan.refuse("malformed", f"{type(error).__name__}") from None
