"""Chain bundles: a whole chain — genesis, blocks, certificates — in one streamable file.

Theory of operation
-------------------
A bundle is what an auditor receives, keeps and compares: the chain as the consortium
committed it, readable front to back with bounded memory, and extended at its end as the
chain grows. It holds nothing that is not already hashed or signed on the chain; a bundle is
trusted for nothing — ``sceau audit`` checks everything in it against a genesis.

Formats ``sceau-bundle/v1`` and ``sceau-bundle/v2`` (docs/audit.md, "Bundle format"): a
sequence of *frames*::

    frame = length || body
    length = the body's size in bytes, 4 bytes unsigned big-endian, 1 ..= FRAME_BYTES_MAX
    body   = one canonical msgpack document (docs/format.md, section 2)

    frame 0:  {"format": "sceau-bundle/v1" or "…/v2", "genesis": <canonical genesis>}
    frame h:  {"block": <canonical block of height h>, "certificate": <its commit certificate>}
    last:     {"checkpoint": <a consortium checkpoint note, its bytes>}   (v2 only, optional)

for h = 1, 2, … in order, without gaps: frame h holds block h. A bundle ends after its last
complete frame; there is no trailer, so appending a block is writing one frame at the end.

Version 2 adds one optional frame after the last block: the latest consortium checkpoint the
exporter knew (docs/format.md, "Checkpoints"), at most :data:`ledger.note.NOTE_BYTES_MAX` bytes,
whose size is at most the log size of the bundle's last block. A v1 bundle is a valid v2 bundle
without checkpoint, and the two format texts have the same length: a writer that adds a
checkpoint to a v1 bundle rewrites frame 0 in place with the v2 text (same bytes but the last
character), then writes the checkpoint frame. Appending blocks to a bundle that ends with a
checkpoint cuts that frame off, appends the blocks, and writes a checkpoint frame again (the
newer one given, or the one cut off). A writer that crashes in between leaves a valid bundle
without checkpoint, or a truncated last frame. Bundles without checkpoint are written as v1,
byte for byte as before, so readers that only know v1 keep reading them; ``GET /v1/bundle``
serves v1 frames.

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

import enum
import io
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

from ledger import encoding
from ledger.model import Block, CommitCertificate, Genesis, ModelDecodeError
from ledger.note import NOTE_BYTES_MAX, Checkpoint, Note, NoteError, origin_for

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMATS",
    "BUNDLE_FORMAT_V2",
    "FRAME_BYTES_MAX",
    "FRAME_LIMITS",
    "BundleEntry",
    "BundleError",
    "BundleReader",
    "BundleWriter",
    "CheckpointOutcome",
    "TruncatedBundleError",
    "block_frame",
    "checkpoint_frame",
    "decode_frame",
    "encode_frame",
    "genesis_frame",
    "parse_frames",
    "read_frame_bodies",
    "trailing_checkpoint",
]

BUNDLE_FORMAT = "sceau-bundle/v1"
"""The format of a bundle without checkpoint (and of the frames ``GET /v1/bundle`` serves)."""
BUNDLE_FORMAT_V2 = "sceau-bundle/v2"
"""The format of a bundle that may end with a checkpoint frame."""
BUNDLE_FORMATS = (BUNDLE_FORMAT, BUNDLE_FORMAT_V2)
assert len({len(text) for text in BUNDLE_FORMATS}) == 1, "frame 0 is upgraded in place"

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
_CHECKPOINT_FRAME_KEYS = frozenset({"checkpoint"})


class BundleError(ValueError):
    """A bundle that cannot be read; ``frame`` and ``offset`` say where (None: the file).

    ``part`` is ``"block"`` or ``"certificate"`` when that part of a frame does not decode
    as its model, ``"checkpoint"`` for a checkpoint frame out of place or malformed; ``reason``
    is the message without the location.
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

    def __reduce__(self) -> tuple[Any, ...]:
        # The audit's workers send decoding errors back to the auditor: keep where and what.
        return (_rebuild_error, (type(self), self.reason, self.frame, self.offset, self.part))


class TruncatedBundleError(BundleError):
    """The bundle ends inside a frame: a writer stopped mid-frame (a crash, a full disk).

    ``frames`` complete frames end at byte ``valid_bytes``; their last block has height
    ``frames - 1``.
    """

    def __init__(self, message: str, *, frame: int, offset: int) -> None:
        super().__init__(message, frame=frame, offset=offset)
        self.frames = frame
        self.valid_bytes = offset


def _rebuild_error(
    kind: type[BundleError], reason: str, frame: int | None, offset: int | None, part: str | None
) -> BundleError:
    """A BundleError unpickled: the one :meth:`BundleError.__reduce__` described."""
    if issubclass(kind, TruncatedBundleError):
        assert frame is not None and offset is not None
        return kind(reason, frame=frame, offset=offset)
    return kind(reason, frame=frame, offset=offset, part=part)


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


def genesis_frame(genesis: Genesis, bundle_format: str = BUNDLE_FORMAT) -> bytes:
    """Frame 0 of a bundle of ``genesis``'s chain (v1 unless told: a bundle without
    checkpoint, what every reader knows)."""
    assert bundle_format in BUNDLE_FORMATS
    return encode_frame({"format": bundle_format, "genesis": genesis.to_canonical()})


def block_frame(block: Block, certificate: CommitCertificate) -> bytes:
    """The frame of ``block`` with its commit certificate."""
    return encode_frame({"block": block.to_canonical(), "certificate": certificate.to_canonical()})


def checkpoint_frame(note: bytes) -> bytes:
    """The last frame of a v2 bundle: a checkpoint note's bytes (not verified here)."""
    assert isinstance(note, bytes) and 0 < len(note) <= NOTE_BYTES_MAX, "a bounded note"
    return encode_frame({"checkpoint": note})


def _checkpoint_size(note: bytes) -> int:
    """The size of the checkpoint ``note``; BundleError if it is not a checkpoint note."""
    if not isinstance(note, bytes) or not 0 < len(note) <= NOTE_BYTES_MAX:
        raise BundleError(f"a checkpoint note is 1 to {NOTE_BYTES_MAX} bytes")
    try:
        return Checkpoint.from_note(Note.parse(note)).size
    except NoteError as error:
        raise BundleError(f"the checkpoint: {error}") from None


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
    """Decode a piece of a bundle (frames ``first_frame``, ``first_frame + 1``, …) as
    ``GET /v1/bundle`` serves it: the genesis and blocks, no checkpoint frame.

    Returns the genesis (if frame 0 is in the piece) and the block entries. Offsets are
    relative to ``data``. Raises :class:`BundleError`, :class:`TruncatedBundleError` if the
    piece ends inside a frame.
    """
    genesis = None
    entries = []
    for frame, offset, body in _read_frames(io.BytesIO(data), first_frame):
        if frame == 0:
            genesis, _ = _decode_genesis_frame(body, offset)
        else:
            entries.append(_decode_block_frame(body, frame, offset))
    return genesis, entries


def _decode_document(body: bytes, frame: int, offset: int) -> dict[str, Any]:
    try:
        document = encoding.unpack(body, FRAME_LIMITS)
    except encoding.EncodingError as error:
        raise BundleError(f"not canonical msgpack: {error}", frame=frame, offset=offset) from None
    if not isinstance(document, dict):
        raise BundleError(
            f"expected a map, found {type(document).__name__}", frame=frame, offset=offset
        )
    return document


def _decode_body(body: bytes, keys: frozenset[str], frame: int, offset: int) -> dict[str, Any]:
    document = _decode_document(body, frame, offset)
    _check_keys(document, keys, frame, offset)
    return document


def _check_keys(document: dict[str, Any], keys: frozenset[str], frame: int, offset: int) -> None:
    if document.keys() != keys:
        raise BundleError(
            f"expected a map of {sorted(keys)}, found {sorted(document)}",
            frame=frame,
            offset=offset,
        )


def _decode_genesis_frame(body: bytes, offset: int) -> tuple[Genesis, str]:
    """The genesis and the bundle's format."""
    try:
        document = _decode_body(body, _GENESIS_FRAME_KEYS, 0, offset)
    except BundleError as error:
        raise BundleError(f"not a sceau bundle: {error.reason}", frame=0, offset=offset) from None
    if document["format"] not in BUNDLE_FORMATS:
        raise BundleError(
            f"format {str(document['format'])[:40]!r}: this version reads "
            f"{' and '.join(map(repr, BUNDLE_FORMATS))}",
            frame=0,
            offset=offset,
        )
    try:
        return Genesis.from_canonical(document["genesis"]), document["format"]
    except ModelDecodeError as error:
        raise BundleError(f"the genesis does not decode: {error}", frame=0, offset=offset) from None


def _is_checkpoint_frame(document: dict[str, Any]) -> bool:
    return "checkpoint" in document


def _decode_checkpoint(
    document: dict[str, Any], bundle_format: str, frame: int, offset: int
) -> bytes:
    """The note bytes of a checkpoint frame (well-formed as a frame; the note itself is the
    auditor's to check)."""
    if bundle_format == BUNDLE_FORMAT:
        raise BundleError(
            f"a {BUNDLE_FORMAT} bundle carries no checkpoint (only {BUNDLE_FORMAT_V2})",
            frame=frame,
            offset=offset,
            part="checkpoint",
        )
    if document.keys() != _CHECKPOINT_FRAME_KEYS:
        raise BundleError(
            f"expected a map of ['checkpoint'], found {sorted(document)}",
            frame=frame,
            offset=offset,
            part="checkpoint",
        )
    note = document["checkpoint"]
    if not isinstance(note, bytes) or not 0 < len(note) <= NOTE_BYTES_MAX:
        raise BundleError(
            f"is a byte string of 1 to {NOTE_BYTES_MAX} bytes (a signed note)",
            frame=frame,
            offset=offset,
            part="checkpoint",
        )
    return note


def _decode_block_frame(body: bytes, frame: int, offset: int) -> BundleEntry:
    return _block_entry(_decode_document(body, frame, offset), len(body), frame, offset)


def _block_entry(document: dict[str, Any], body_bytes: int, frame: int, offset: int) -> BundleEntry:
    _check_keys(document, _BLOCK_FRAME_KEYS, frame, offset)
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
        size_bytes=LENGTH_BYTES + body_bytes,
        block=block,
        certificate=certificate,
    )


def decode_frame(body: bytes, frame: int, offset: int, bundle_format: str) -> BundleEntry | bytes:
    """Decode the body of frame ``frame`` (not frame 0) of a bundle of ``bundle_format``: its
    block entry, or the note bytes of a checkpoint frame. Raises BundleError naming the frame.

    Needs nothing but the frame, so it may run in another process (the audit's workers);
    :meth:`BundleReader.take` then checks where the frame stands in the bundle.
    """
    document = _decode_document(body, frame, offset)
    if _is_checkpoint_frame(document):
        return _decode_checkpoint(document, bundle_format, frame, offset)
    return _block_entry(document, len(body), frame, offset)


def trailing_checkpoint(path: str | os.PathLike) -> bytes | None:
    """The checkpoint note a bundle ends with, found by reading only frame lengths and the last
    frame; None if there is none, or the bundle cannot be read this far (its reader reports
    why). What an auditor reads first, to know which size to look for among the blocks."""
    try:
        with open(path, "rb") as handle:
            frames = _read_frames(handle)
            first = next(frames, None)
            if first is None:
                return None
            _, bundle_format = _decode_genesis_frame(first[2], first[1])
            if bundle_format == BUNDLE_FORMAT:
                return None
            last = None
            handle.seek(LENGTH_BYTES + len(first[2]))
            offset = handle.tell()
            while True:
                prefix = handle.read(LENGTH_BYTES)
                if len(prefix) < LENGTH_BYTES:
                    break
                (length,) = _LENGTH.unpack(prefix)
                if not 1 <= length <= FRAME_BYTES_MAX:
                    return None
                last = (offset, length)
                offset += LENGTH_BYTES + length
                handle.seek(offset)
            if prefix or last is None or offset > os.fstat(handle.fileno()).st_size:
                return None
            handle.seek(last[0] + LENGTH_BYTES)
            body = handle.read(last[1])
            document = _decode_document(body, 0, last[0])
            if not _is_checkpoint_frame(document):
                return None
            return _decode_checkpoint(document, bundle_format, 0, last[0])
    except (OSError, BundleError):
        return None


# --- reading ----------------------------------------------------------------------------------


class BundleReader:
    """Reads a bundle front to back: :attr:`genesis`, then its blocks by iteration, and once
    iterated, :attr:`checkpoint` (the note a v2 bundle may end with, or None).

    Raises :class:`BundleError` (from the constructor for frame 0, from iteration for the
    others) naming the frame; :class:`TruncatedBundleError` once every complete frame was
    read. It decodes frames (canonical form, models); what they say is the auditor's to check.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.checkpoint: bytes | None = None
        """The checkpoint note the bundle ends with (known once iterated), not verified."""
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
            self.genesis, self.format = _decode_genesis_frame(body, offset)
            self.bytes_read = LENGTH_BYTES + len(body)
        except BaseException:
            self._handle.close()
            raise

    def __iter__(self) -> Iterator[BundleEntry]:
        for frame, offset, body in self._frames:
            decoded: BundleEntry | bytes | BundleError
            try:
                decoded = decode_frame(body, frame, offset, self.format)
            except BundleError as error:
                decoded = error
            entry = self.take(frame, offset, len(body), decoded)
            if entry is not None:
                yield entry

    def frames(self) -> Iterator[tuple[int, int, bytes]]:
        """``(frame, offset, body)`` of every frame after frame 0, undecoded: for a reader
        that decodes them elsewhere (:func:`decode_frame`, in worker processes) and hands each
        back to :meth:`take`, in frame order. Raises as iteration would for the frames
        themselves (a bad length, :class:`TruncatedBundleError`)."""
        return self._frames

    def take(
        self, frame: int, offset: int, body_bytes: int, decoded: BundleEntry | bytes | BundleError
    ) -> BundleEntry | None:
        """Account for frame ``frame`` (``body_bytes`` long), which :func:`decode_frame` gave
        as ``decoded`` (or refused with that BundleError): the entry, or None for the
        checkpoint frame (then in :attr:`checkpoint`). Frames are taken in order; raises
        BundleError exactly where iteration would."""
        if self.checkpoint is not None:
            raise BundleError(
                "follows the checkpoint frame, which ends a bundle",
                frame=frame,
                offset=offset,
                part="checkpoint",
            )
        if isinstance(decoded, BundleError):
            raise decoded
        self.bytes_read = offset + LENGTH_BYTES + body_bytes
        if isinstance(decoded, bytes):
            self.checkpoint = decoded
            return None
        return decoded

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> BundleReader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@dataclass(frozen=True, slots=True)
class _Tail:
    """Where a bundle's blocks end: the last block's height, hash and log size (None for a
    format 1 header), the end of its frame in bytes, and the bundle's format and checkpoint."""

    height: int
    block_hash: bytes
    valid_bytes: int
    log_size: int | None = 0
    format: str = BUNDLE_FORMAT
    checkpoint: bytes | None = None


def _scan_tail(path: Path, genesis: Genesis, repair: bool) -> _Tail:
    """Find the end of an existing bundle of ``genesis``'s chain, decoding only its last one
    or two frames (and frame 0). Raises BundleError; TruncatedBundleError unless ``repair``.

    A checkpoint frame at the end is returned in the tail, its bytes not counted in
    ``valid_bytes``: the writer cuts it off and writes a checkpoint again when it closes.
    """
    last: tuple[int, int, bytes] | None = None
    before_last: tuple[int, int, bytes] | None = None
    with open(path, "rb") as handle:
        frames = _read_frames(handle)
        try:
            first = next(frames, None)
            if first is None:
                raise BundleError(f"{path} is empty: not a sceau bundle")
            existing, bundle_format = _decode_genesis_frame(first[2], first[1])
            if existing.chain_id != genesis.chain_id:
                raise BundleError(
                    f"{path} is the bundle of another chain ({existing.consortium!r}, chain_id "
                    f"{existing.chain_id.hex()[:16]}…)"
                )
            end = LENGTH_BYTES + len(first[2])
            for position in frames:
                before_last, last = last, position
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
    checkpoint = None
    if last is not None:
        document = _decode_document(last[2], last[0], last[1])
        if _is_checkpoint_frame(document):
            checkpoint = _checkpoint_to_keep(document, bundle_format, last, path, repair)
            end = last[1]
            last = before_last
    if last is None:
        return _Tail(0, genesis.chain_id, end, 0, bundle_format, checkpoint)
    frame, offset, body = last
    entry = _decode_block_frame(body, frame, offset)
    header = entry.block.header
    if header.height != frame:
        raise BundleError(f"holds the block of height {header.height}", frame=frame, offset=offset)
    return _Tail(
        header.height, entry.block.block_hash, end, header.log_size, bundle_format, checkpoint
    )


def _checkpoint_to_keep(
    document: dict[str, Any],
    bundle_format: str,
    position: tuple[int, int, bytes],
    path: Path,
    repair: bool,
) -> bytes | None:
    """The checkpoint a bundle ends with, to write again after the appended blocks. One that
    is not a checkpoint note raises BundleError, unless ``repair``: it is then dropped."""
    frame, offset, _ = position
    try:
        note = _decode_checkpoint(document, bundle_format, frame, offset)
        _checkpoint_size(note)
    except BundleError as error:
        if repair:
            return None
        raise BundleError(
            f"{path} ends with a checkpoint frame that is not a checkpoint note ({error}); "
            "--repair drops it"
        ) from None
    return note


# --- writing ----------------------------------------------------------------------------------


class CheckpointOutcome(enum.Enum):
    """What :meth:`BundleWriter.offer_checkpoint` did with a checkpoint."""

    WRITTEN = "written"
    """It is the bundle's checkpoint now."""
    BEYOND = "beyond"
    """Its size is beyond the log of the bundle's last block (or the blocks have no log)."""
    OLDER = "older"
    """The bundle already carries a checkpoint at least as large: that one is kept."""


class BundleWriter:
    """Appends blocks to a bundle, creating it with its genesis frame if needed, and writes
    the checkpoint it is offered at its end when closed.

    Open with :meth:`open`; :meth:`append` checks that each block extends the last one
    (height, prev_hash), not that it is valid: that is the auditor's work.
    """

    def __init__(self, path: Path, handle: BinaryIO, genesis: Genesis, tail: _Tail) -> None:
        self.path = path
        self.genesis = genesis
        self._handle = handle
        self._tail = tail
        self.checkpoint: bytes | None = tail.checkpoint
        """The checkpoint note written at the end when closed (the bundle's own, or one
        offered since)."""
        self.checkpoint_size: int | None = None
        if tail.checkpoint is not None:
            self.checkpoint_size = _checkpoint_size(tail.checkpoint)

    @classmethod
    def open(
        cls, path: str | os.PathLike, genesis: Genesis, *, repair: bool = False
    ) -> BundleWriter:
        """A writer at the end of the bundle at ``path`` (created, with frame 0, if absent).

        An existing bundle must be of ``genesis``'s chain. If it ends inside a frame, raises
        :class:`TruncatedBundleError`, unless ``repair``: the partial frame is then cut off.
        A checkpoint frame at its end is cut off too, and written again by :meth:`close`.
        Raises :class:`BundleError` for anything else that does not fit.
        """
        target = Path(path)
        try:
            if not target.exists():
                handle = open(target, "x+b")  # noqa: SIM115 (closed by close())
                handle.write(genesis_frame(genesis))
                tail = _Tail(0, genesis.chain_id, handle.tell())
                return cls(target, handle, genesis, tail)
            tail = _scan_tail(target, genesis, repair)
            handle = open(target, "r+b")  # noqa: SIM115 (closed by close())
            handle.truncate(tail.valid_bytes)  # cuts a partial frame (repair), a checkpoint
            handle.seek(tail.valid_bytes)
        except OSError as error:
            raise BundleError(f"cannot write {target}: {error.strerror}") from None
        return cls(target, handle, genesis, tail)

    @property
    def log_size(self) -> int | None:
        """The log size of the bundle's last block (0 with no block, None in format 1)."""
        return self._tail.log_size

    def offer_checkpoint(self, note: bytes) -> CheckpointOutcome:
        """Write ``note`` (a checkpoint of this chain's log) at the end when closing, if its
        size is covered by the blocks written (at most :attr:`log_size`) and larger than the
        bundle's own. Call it after the last :meth:`append`. Its signatures are not checked:
        the auditor does. Raises BundleError if it is not a checkpoint note of this chain."""
        size = _checkpoint_size(note)
        try:
            origin = Checkpoint.from_note(Note.parse(note)).origin
        except NoteError as error:
            raise AssertionError("_checkpoint_size parsed it already") from error
        if origin != origin_for(self.genesis.chain_id):
            raise BundleError(f"the checkpoint is of another log ({origin[:80]!r})")
        if self.log_size is None or size > self.log_size:
            return CheckpointOutcome.BEYOND
        if self.checkpoint_size is not None and size <= self.checkpoint_size:
            return CheckpointOutcome.OLDER
        self.checkpoint, self.checkpoint_size = note, size
        return CheckpointOutcome.WRITTEN

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
        self._tail = _Tail(
            header.height,
            block.block_hash,
            tail.valid_bytes + len(frame),
            header.log_size,
            tail.format,
            tail.checkpoint,
        )

    def sync(self) -> None:
        """Flush and fsync what was appended so far."""
        try:
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            raise BundleError(f"cannot write {self.path}: {error.strerror}") from None

    def close(self) -> None:
        """Write the checkpoint frame (if any), sync and close.

        A v1 bundle getting its first checkpoint has frame 0 rewritten in place as v2 (the
        same length) and synced before the checkpoint frame is written: a crash between the
        two leaves a valid v2 bundle without checkpoint, never a v1 bundle with one.
        """
        try:
            if self.checkpoint is not None:
                self._write_checkpoint(self.checkpoint)
            self.sync()
        finally:
            self._handle.close()

    def _write_checkpoint(self, note: bytes) -> None:
        try:
            if self._tail.format == BUNDLE_FORMAT:
                old = genesis_frame(self.genesis)
                new = genesis_frame(self.genesis, BUNDLE_FORMAT_V2)
                assert len(old) == len(new), "the v1 and v2 format texts have one length"
                self._handle.seek(0)
                if self._handle.read(len(old)) != old:
                    raise BundleError(f"{self.path}: frame 0 is not this genesis's v1 frame")
                self._handle.seek(0)
                self._handle.write(new)
                self.sync()
                self._tail = replace(self._tail, format=BUNDLE_FORMAT_V2)
            self._handle.seek(self._tail.valid_bytes)
            self._handle.write(checkpoint_frame(note))
        except OSError as error:
            raise BundleError(f"cannot write {self.path}: {error.strerror}") from None

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
