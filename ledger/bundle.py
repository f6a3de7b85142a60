"""Chain bundles: a whole chain — genesis, blocks, certificates — in one streamable file.

Theory of operation
-------------------
A bundle is what an auditor receives, keeps and compares: the chain as the consortium
committed it, readable front to back with bounded memory, and extended at its end as the
chain grows. It holds nothing that is not already hashed or signed on the chain; a bundle is
trusted for nothing — ``sceau audit`` checks everything in it against a genesis.

Format ``sceau-bundle/v1`` (docs/audit.md, "Bundle format"): a sequence of *frames*::

    frame = length || body
    length = the body's size in bytes, 4 bytes unsigned big-endian, 1 ..= FRAME_BYTES_MAX
    body   = one canonical msgpack document (docs/format.md, section 2)

    frame 0:  {"format": "sceau-bundle/v1", "genesis": <canonical genesis>}
    frame h:  {"block": <canonical block of height h>, "certificate": <its commit certificate>}

for h = 1, 2, … in order, without gaps: frame h holds block h. A bundle ends after its last
complete frame; there is no trailer, so appending a block is writing one frame at the end.

Writers append each frame with one ``write`` and sync when closed. A writer that crashed
mid-frame leaves a *truncated* last frame: fewer than 4 bytes of length, or fewer body bytes
than the length says. Readers report it as :class:`TruncatedBundleError` after yielding every
complete frame; :meth:`BundleWriter.open` refuses to append to such a bundle unless asked to
``repair`` it, which cuts the file at the end of its last complete frame (only the block being
written when the crash happened is lost, and the next export writes it again). A bundle cut
inside frame 0 is refused even with ``repair``: cutting it would leave an empty file.

Every limit is checked before memory is spent: a length prefix over :data:`FRAME_BYTES_MAX`
is refused before its body is read, and bodies are decoded under :data:`FRAME_LIMITS`.
Errors name the frame (and so the height: frame h holds block h) and the byte offset.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from ledger import encoding
from ledger.model import Block, CommitCertificate, Genesis, ModelDecodeError

__all__ = [
    "BUNDLE_FORMAT",
    "FRAME_BYTES_MAX",
    "FRAME_LIMITS",
    "BundleEntry",
    "BundleError",
    "BundleReader",
    "BundleWriter",
    "TruncatedBundleError",
    "block_frame",
    "encode_frame",
    "genesis_frame",
    "parse_frames",
    "read_frame_bodies",
]

BUNDLE_FORMAT = "sceau-bundle/v1"

_LENGTH = struct.Struct(">I")
LENGTH_BYTES = _LENGTH.size

FRAME_BYTES_MAX = 33 * 1024 * 1024
"""The largest frame body, a limit of the format: a block of up to 32 MiB of transactions with
its header, its array headers and a certificate of 256 signatures (under 40 KiB). A genesis
allows blocks of at most 12 MiB today (``ConsensusParameters.block_bytes_max``); the format
leaves room should that ceiling rise."""

FRAME_LIMITS = encoding.DecodeLimits(
    total_bytes_max=FRAME_BYTES_MAX,
    depth_max=16,
    array_length_max=100_000,
    map_length_max=100_000,
)
"""Decoding limits of a frame body. Depth: frame, block, transactions, transaction, and the
8 levels a transaction's arguments may use (ledger.model.ARGUMENTS_DEPTH_MAX), with room to
spare. Lengths: at most 100,000 transactions in a block (the ceiling of
``block_transactions_max``), and no array or map in a 64 KiB transaction is longer."""

_GENESIS_FRAME_KEYS = frozenset({"format", "genesis"})
_BLOCK_FRAME_KEYS = frozenset({"block", "certificate"})


class BundleError(ValueError):
    """A bundle that cannot be read; ``frame`` and ``offset`` say where (None: the file).

    ``part`` is ``"block"`` or ``"certificate"`` when that part of a frame does not decode
    as its model; ``reason`` is the message without the location.
    """

    def __init__(
        self,
        message: str,
        *,
        frame: int | None = None,
        offset: int | None = None,
        part: str | None = None,
    ) -> None:
        where = "" if frame is None else f"frame {frame} (byte {offset}): "
        what = "" if part is None else f"{part} "
        super().__init__(where + what + message)
        self.frame = frame
        self.offset = offset
        self.part = part
        self.reason = message


class TruncatedBundleError(BundleError):
    """The bundle ends inside a frame: a writer stopped mid-frame (a crash, a full disk).

    ``frames`` complete frames end at byte ``valid_bytes``; their last block has height
    ``frames - 1``.
    """

    def __init__(self, message: str, *, frame: int, offset: int) -> None:
        super().__init__(message, frame=frame, offset=offset)
        self.frames = frame
        self.valid_bytes = offset


@dataclass(frozen=True, slots=True)
class BundleEntry:
    """One block frame, decoded: frame ``frame`` should hold the block of that height."""

    frame: int
    offset: int
    size_bytes: int
    block: Block
    certificate: CommitCertificate


# --- frames -----------------------------------------------------------------------------------


def encode_frame(document: Any) -> bytes:
    """``length || canonical(document)``; raises BundleError if the body is too large."""
    body = encoding.pack(document, depth_max=FRAME_LIMITS.depth_max)
    if len(body) > FRAME_BYTES_MAX:
        raise BundleError(f"a frame of {len(body)} bytes is over the limit of {FRAME_BYTES_MAX}")
    return _LENGTH.pack(len(body)) + body


def genesis_frame(genesis: Genesis) -> bytes:
    """Frame 0 of a bundle of ``genesis``'s chain."""
    return encode_frame({"format": BUNDLE_FORMAT, "genesis": genesis.to_canonical()})


def block_frame(block: Block, certificate: CommitCertificate) -> bytes:
    """The frame of ``block`` with its commit certificate."""
    return encode_frame({"block": block.to_canonical(), "certificate": certificate.to_canonical()})


def _read_frames(handle: BinaryIO, first_frame: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """``(frame, offset, body)`` of each complete frame of an open bundle, from its start
    (numbered from ``first_frame``, for a piece of a bundle).

    Raises BundleError for a length of 0 or over the limit, TruncatedBundleError when the
    file ends inside a frame (after every complete frame was yielded).
    """
    offset = 0
    frame = first_frame
    while True:
        prefix = handle.read(LENGTH_BYTES)
        if not prefix:
            return
        if len(prefix) < LENGTH_BYTES:
            raise TruncatedBundleError(
                f"the bundle ends inside the length of a frame ({len(prefix)} of "
                f"{LENGTH_BYTES} bytes)",
                frame=frame,
                offset=offset,
            )
        (length,) = _LENGTH.unpack(prefix)
        if not 1 <= length <= FRAME_BYTES_MAX:
            raise BundleError(
                f"declares a body of {length} bytes (1 to {FRAME_BYTES_MAX} allowed)",
                frame=frame,
                offset=offset,
            )
        body = handle.read(length)
        if len(body) < length:
            raise TruncatedBundleError(
                f"the bundle ends inside a frame ({len(body)} of {length} bytes)",
                frame=frame,
                offset=offset,
            )
        yield frame, offset, body
        offset += LENGTH_BYTES + length
        frame += 1


def read_frame_bodies(path: str | os.PathLike) -> Iterator[bytes]:
    """The raw body of every complete frame of the bundle at ``path`` (tools and tests)."""
    with open(path, "rb") as handle:
        for _, _, body in _read_frames(handle):
            yield body


def parse_frames(data: bytes, first_frame: int) -> tuple[Genesis | None, list[BundleEntry]]:
    """Decode a piece of a bundle (frames ``first_frame``, ``first_frame + 1``, …).

    Returns the genesis (if frame 0 is in the piece) and the block entries. Offsets are
    relative to ``data``. Raises :class:`BundleError`, :class:`TruncatedBundleError` if the
    piece ends inside a frame.
    """
    genesis = None
    entries = []
    for frame, offset, body in _read_frames(io.BytesIO(data), first_frame):
        if frame == 0:
            genesis = _decode_genesis_frame(body, offset)
        else:
            entries.append(_decode_block_frame(body, frame, offset))
    return genesis, entries


def _decode_body(body: bytes, keys: frozenset[str], frame: int, offset: int) -> dict[str, Any]:
    try:
        document = encoding.unpack(body, FRAME_LIMITS)
    except encoding.EncodingError as error:
        raise BundleError(f"not canonical msgpack: {error}", frame=frame, offset=offset) from None
    if not isinstance(document, dict) or document.keys() != keys:
        found = sorted(document) if isinstance(document, dict) else type(document).__name__
        raise BundleError(
            f"expected a map of {sorted(keys)}, found {found}", frame=frame, offset=offset
        )
    return document


def _decode_genesis_frame(body: bytes, offset: int) -> Genesis:
    try:
        document = _decode_body(body, _GENESIS_FRAME_KEYS, 0, offset)
    except BundleError as error:
        raise BundleError(f"not a sceau bundle: {error.reason}", frame=0, offset=offset) from None
    if document["format"] != BUNDLE_FORMAT:
        raise BundleError(
            f"format {str(document['format'])[:40]!r}: this version reads {BUNDLE_FORMAT!r}",
            frame=0,
            offset=offset,
        )
    try:
        return Genesis.from_canonical(document["genesis"])
    except ModelDecodeError as error:
        raise BundleError(f"the genesis does not decode: {error}", frame=0, offset=offset) from None


def _decode_block_frame(body: bytes, frame: int, offset: int) -> BundleEntry:
    document = _decode_body(body, _BLOCK_FRAME_KEYS, frame, offset)
    try:
        block = Block.from_canonical(document["block"])
    except ModelDecodeError as error:
        raise BundleError(
            f"does not decode: {error}", frame=frame, offset=offset, part="block"
        ) from None
    try:
        certificate = CommitCertificate.from_canonical(document["certificate"])
    except ModelDecodeError as error:
        raise BundleError(
            f"does not decode: {error}", frame=frame, offset=offset, part="certificate"
        ) from None
    return BundleEntry(
        frame=frame,
        offset=offset,
        size_bytes=LENGTH_BYTES + len(body),
        block=block,
        certificate=certificate,
    )


# --- reading ----------------------------------------------------------------------------------


class BundleReader:
    """Reads a bundle front to back: :attr:`genesis`, then its blocks by iteration.

    Raises :class:`BundleError` (from the constructor for frame 0, from iteration for the
    others) naming the frame; :class:`TruncatedBundleError` once every complete frame was
    read. It decodes frames (canonical form, models); what they say is the auditor's to check.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        try:
            self._handle: BinaryIO = open(self.path, "rb")  # noqa: SIM115 (closed by close())
        except OSError as error:
            raise BundleError(f"cannot read {self.path}: {error.strerror}") from None
        try:
            self.size_bytes = os.fstat(self._handle.fileno()).st_size
            self._frames = _read_frames(self._handle)
            first = next(self._frames, None)
            if first is None:
                raise BundleError(f"{self.path} is empty: not a sceau bundle")
            _, offset, body = first
            self.genesis = _decode_genesis_frame(body, offset)
            self.bytes_read = LENGTH_BYTES + len(body)
        except BaseException:
            self._handle.close()
            raise

    def __iter__(self) -> Iterator[BundleEntry]:
        for frame, offset, body in self._frames:
            entry = _decode_block_frame(body, frame, offset)
            self.bytes_read = offset + entry.size_bytes
            yield entry

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class _Tail:
    """Where a bundle ends: its last block's height and hash, and its size in bytes."""

    height: int
    block_hash: bytes
    valid_bytes: int


def _scan_tail(path: Path, genesis: Genesis, repair: bool) -> _Tail:
    """Find the end of an existing bundle of ``genesis``'s chain, decoding only the last
    frame (and frame 0). Raises BundleError; TruncatedBundleError unless ``repair``."""
    last: tuple[int, int, bytes] | None = None
    with open(path, "rb") as handle:
        frames = _read_frames(handle)
        try:
            first = next(frames, None)
            if first is None:
                raise BundleError(f"{path} is empty: not a sceau bundle")
            existing = _decode_genesis_frame(first[2], first[1])
            if existing.chain_id != genesis.chain_id:
                raise BundleError(
                    f"{path} is the bundle of another chain ({existing.consortium!r}, chain_id "
                    f"{existing.chain_id.hex()[:16]}…)"
                )
            end = LENGTH_BYTES + len(first[2])
            for position in frames:
                last = position
                end = position[1] + LENGTH_BYTES + len(position[2])
        except TruncatedBundleError as error:
            if error.frames == 0:
                # Cutting this off would leave an empty file, which is not a bundle: refuse,
                # and leave the file as it is, whether or not asked to repair.
                raise BundleError(
                    f"{path} ends inside its first frame, the genesis ({error.reason}): it "
                    "holds no block and cannot be repaired; delete it and export again"
                ) from None
            if not repair:
                raise
            end = error.valid_bytes
    if last is None:
        return _Tail(0, genesis.chain_id, end)
    frame, offset, body = last
    entry = _decode_block_frame(body, frame, offset)
    header = entry.block.header
    if header.height != frame:
        raise BundleError(f"holds the block of height {header.height}", frame=frame, offset=offset)
    return _Tail(header.height, entry.block.block_hash, end)


# --- writing ----------------------------------------------------------------------------------


class BundleWriter:
    """Appends blocks to a bundle, creating it with its genesis frame if needed.

    Open with :meth:`open`; :meth:`append` checks that each block extends the last one
    (height, prev_hash), not that it is valid: that is the auditor's work.
    """

    def __init__(self, path: Path, handle: BinaryIO, genesis: Genesis, tail: _Tail) -> None:
        self.path = path
        self.genesis = genesis
        self._handle = handle
        self._tail = tail

    @classmethod
    def open(
        cls, path: str | os.PathLike, genesis: Genesis, *, repair: bool = False
    ) -> BundleWriter:
        """A writer at the end of the bundle at ``path`` (created, with frame 0, if absent).

        An existing bundle must be of ``genesis``'s chain. If it ends inside a frame, raises
        :class:`TruncatedBundleError`, unless ``repair``: the partial frame is then cut off.
        Raises :class:`BundleError` for anything else that does not fit.
        """
        target = Path(path)
        try:
            if not target.exists():
                handle = open(target, "xb")  # noqa: SIM115 (closed by close())
                handle.write(genesis_frame(genesis))
                tail = _Tail(0, genesis.chain_id, handle.tell())
                return cls(target, handle, genesis, tail)
            tail = _scan_tail(target, genesis, repair)
            handle = open(target, "r+b")  # noqa: SIM115 (closed by close())
            handle.truncate(tail.valid_bytes)  # a no-op unless repairing a truncated frame
            handle.seek(tail.valid_bytes)
        except OSError as error:
            raise BundleError(f"cannot write {target}: {error.strerror}") from None
        return cls(target, handle, genesis, tail)

    @property
    def height(self) -> int:
        """The height of the last block in the bundle (0: only the genesis)."""
        return self._tail.height

    @property
    def size_bytes(self) -> int:
        return self._tail.valid_bytes

    def append(self, block: Block, certificate: CommitCertificate) -> None:
        """Write ``block`` and its certificate as the next frame.

        Raises BundleError, writing nothing, unless the block is of the next height, links
        to the last block, and the certificate names it.
        """
        header = block.header
        tail = self._tail
        if header.height != tail.height + 1:
            raise BundleError(
                f"block {header.height} does not follow the bundle's last block {tail.height}"
            )
        if header.prev_hash != tail.block_hash:
            raise BundleError(
                f"block {header.height}: prev_hash is not the hash of the bundle's block "
                f"{tail.height} (another chain, or a rewritten history?)"
            )
        if certificate.height != header.height or certificate.block_hash != block.block_hash:
            raise BundleError(f"block {header.height}: the certificate is for another block")
        frame = block_frame(block, certificate)
        try:
            self._handle.write(frame)
        except OSError as error:
            raise BundleError(f"cannot write {self.path}: {error.strerror}") from None
        self._tail = _Tail(header.height, block.block_hash, tail.valid_bytes + len(frame))

    def sync(self) -> None:
        """Flush and fsync what was appended so far."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            raise BundleError(f"cannot write {self.path}: {error.strerror}") from None

    def close(self) -> None:
        """Sync and close."""
        try:
            self.sync()
        finally:
            self._handle.close()

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
