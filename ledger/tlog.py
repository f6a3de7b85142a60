"""The log of every act: one RFC 6962 Merkle tree over every committed transaction.

Theory of operation
-------------------
Each block's ``tx_root`` covers that block's transactions only. The *log* is one Merkle tree
(RFC 6962 / RFC 9162 hashing, :mod:`ledger.merkle`) whose leaves are the canonical bytes of
every committed transaction, in chain order from the genesis: leaf ``i`` is the ``i``-th
transaction ever committed. From header format 2 on, every block header commits to the log's
size and root after its transactions (``log_size``, ``log_root``, docs/format.md §4), so a
certificate vouches for the whole history at once, and two sizes of the log can be proven
consistent (one is a prefix of the other) with a logarithmic proof. That is what C2SP
checkpoints, witnesses and tiles speak (docs/witnesses.md).

The tree is kept as the hashes of its *complete* subtrees: ``(level, index)`` names the subtree
of the ``2**level`` leaves from ``index * 2**level``; level 0 holds the leaf hashes. Appending
``k`` leaves to a tree of ``n`` creates fewer than ``2k`` such hashes (:func:`append`), which the
store writes with the block. Any root and any proof is then a fold of at most
``2 * log2(n)`` stored hashes (:func:`range_hash`), whatever the tree's size; and the stored
hashes at levels 0, 8, 16… are exactly the tlog-tiles "tiles" (:func:`tile_path`).

Between blocks a node needs only the *frontier*: the hashes of the perfect subtrees that
decompose ``[0, n)``, largest first, one per bit set in ``n`` (:class:`LogFrontier`). The
engine extends it with a block's leaves to compute the header's ``log_root`` without touching
the disk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ledger.merkle import EMPTY_ROOT, leaf_hash, node_hash

__all__ = [
    "EMPTY_FRONTIER",
    "LEVELS_MAX",
    "TILE_HEIGHT",
    "TILE_WIDTH",
    "HashReader",
    "LogFrontier",
    "TilePathError",
    "append",
    "consistency_proof",
    "entries_bundle",
    "frontier_at",
    "frontier_positions",
    "inclusion_proof",
    "parse_entries_bundle",
    "parse_tile_path",
    "range_hash",
    "root_of",
    "tile_path",
]

LEVELS_MAX = 63
"""A log of at most 2**63 − 1 leaves: its levels are 0..62."""
TILE_HEIGHT = 8
"""tlog-tiles: a tile is a subtree of height 8 whose leaves are stored hashes."""
TILE_WIDTH = 1 << TILE_HEIGHT
"""256 hashes in a full tile, 8,192 bytes."""

HashReader = Callable[[int, int], bytes]
"""``(level, index)`` → the hash of that complete subtree; it must exist (the caller asks
only for subtrees inside a tree it has)."""


@dataclass(frozen=True, slots=True)
class LogFrontier:
    """The log's size and the hashes of the perfect subtrees that decompose ``[0, size)``.

    ``hashes[i]`` is the subtree at ``frontier_positions(size)[i]``: largest first, one per bit
    set in ``size``. Enough to append and to compute the root; nothing else.
    """

    size: int
    hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        assert self.size >= 0 and len(self.hashes) == self.size.bit_count(), "one hash per bit"

    @property
    def root(self) -> bytes:
        """The RFC 6962 root of the log: the empty root for size 0."""
        return _fold(self.hashes)

    def extended(self, leaf_hashes: Iterable[bytes]) -> LogFrontier:
        """The frontier after appending leaves (given by their RFC 6962 leaf hashes)."""
        size, stack, _ = _append(self.size, self.hashes, leaf_hashes, record=False)
        return LogFrontier(size, tuple(stack))


EMPTY_FRONTIER = LogFrontier(0, ())


def frontier_positions(size: int) -> list[tuple[int, int]]:
    """The ``(level, index)`` of each perfect subtree decomposing ``[0, size)``, largest first."""
    positions = []
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            positions.append((level, start >> level))
            start += 1 << level
    return positions


def frontier_at(size: int, read: HashReader) -> LogFrontier:
    """The frontier of the log of ``size`` leaves, read from its stored hashes."""
    return LogFrontier(size, tuple(read(level, index) for level, index in frontier_positions(size)))


def append(
    frontier: LogFrontier, leaves: Iterable[bytes]
) -> tuple[LogFrontier, dict[tuple[int, int], bytes]]:
    """Append ``leaves`` (entries, not hashes): the new frontier and every new complete-subtree
    hash by ``(level, index)``, leaf hashes included — what a store writes with the block."""
    size, stack, created = _append(
        frontier.size, frontier.hashes, (leaf_hash(leaf) for leaf in leaves), record=True
    )
    return LogFrontier(size, tuple(stack)), created


def _append(
    size: int, hashes: Sequence[bytes], leaf_hashes: Iterable[bytes], *, record: bool
) -> tuple[int, list[bytes], dict[tuple[int, int], bytes]]:
    # The frontier as a stack of (level, hash), levels strictly decreasing from the bottom.
    stack = [
        (level, digest) for (level, _), digest in zip(frontier_positions(size), hashes, strict=True)
    ]
    created: dict[tuple[int, int], bytes] = {}
    for digest in leaf_hashes:
        if record:
            created[(0, size)] = digest
        size += 1
        level = 0
        while stack and stack[-1][0] == level:
            _, left = stack.pop()
            digest = node_hash(left, digest)
            level += 1
            if record:
                created[(level, (size >> level) - 1)] = digest
        stack.append((level, digest))
    assert size < 1 << LEVELS_MAX, "the log is full"
    return size, [digest for _, digest in stack], created


def _fold(hashes: Sequence[bytes]) -> bytes:
    """The root of subtrees laid left to right, largest first (RFC 6962's right-heavy fold)."""
    if not hashes:
        return EMPTY_ROOT
    accumulated = hashes[-1]
    for digest in reversed(hashes[:-1]):
        accumulated = node_hash(digest, accumulated)
    return accumulated


def range_hash(start: int, end: int, read: HashReader) -> bytes:
    """MTH(D[start:end]) for a range the RFC 6962 recursion produces (``start`` a multiple of
    the largest power of two below ``end − start``, or of that range's size): the fold of the
    aligned perfect subtrees that decompose it."""
    assert 0 <= start < end, "a non-empty range"
    parts = []
    while start < end:
        level = (start & -start).bit_length() - 1 if start else LEVELS_MAX - 1
        while start + (1 << level) > end:
            level -= 1
        parts.append(read(level, start >> level))
        start += 1 << level
    return _fold(parts)


def root_of(size: int, read: HashReader) -> bytes:
    """The root of the log's first ``size`` leaves (any size up to the log's)."""
    return EMPTY_ROOT if size == 0 else range_hash(0, size, read)


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def inclusion_proof(index: int, size: int, read: HashReader) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf ``index`` in the tree of ``size`` leaves (PATH)."""
    assert 0 <= index < size, "the leaf is in the tree"
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _largest_power_of_two_below(end - start)
        if index < start + k:
            proof.append(range_hash(start + k, end, read))
            end = start + k
        else:
            proof.append(range_hash(start, start + k, read))
            start += k
    proof.reverse()
    return proof


def consistency_proof(old_size: int, new_size: int, read: HashReader) -> list[bytes]:
    """RFC 9162 consistency proof from the tree of ``old_size`` leaves to ``new_size`` (PROOF);
    empty when ``old_size`` is 0 or equal to ``new_size``."""
    assert 0 <= old_size <= new_size, "the old tree is not larger"
    if old_size in (0, new_size):
        return []
    proof: list[bytes] = []
    m, start, end, complete = old_size, 0, new_size, True
    while m != end - start:
        k = _largest_power_of_two_below(end - start)
        if m <= k:
            proof.append(range_hash(start + k, end, read))
            end = start + k
        else:
            proof.append(range_hash(start, start + k, read))
            start += k
            m -= k
            complete = False
    if not complete:
        proof.append(range_hash(start, end, read))
    proof.reverse()
    return proof


# --- tiles (C2SP tlog-tiles) -------------------------------------------------------------------


class TilePathError(ValueError):
    """A path that is not a tile or an entry bundle of tlog-tiles."""


def _encode_index(index: int) -> str:
    groups = []
    while True:
        groups.append(f"{index % 1000:03d}")
        index //= 1000
        if index == 0:
            break
    groups.reverse()
    return "/".join([*("x" + group for group in groups[:-1]), groups[-1]])


def tile_path(level: int | None, index: int, width: int = TILE_WIDTH) -> str:
    """The path of a tile below the log's prefix: ``tile/<L>/<N>[.p/<W>]``, or the entry bundle
    ``tile/entries/<N>[.p/<W>]`` for ``level`` None."""
    assert 1 <= width <= TILE_WIDTH and index >= 0
    head = "tile/entries" if level is None else f"tile/{level}"
    partial = "" if width == TILE_WIDTH else f".p/{width}"
    return f"{head}/{_encode_index(index)}{partial}"


def parse_tile_path(path: str) -> tuple[int | None, int, int]:
    """``(level or None for entries, index, width)`` of a tile path (as :func:`tile_path`)."""
    parts = path.split("/")
    if len(parts) < 3 or parts[0] != "tile" or len(path) > 200:
        raise TilePathError("expected tile/<L>/<N>[.p/<W>] or tile/entries/<N>[.p/<W>]")
    if parts[1] == "entries":
        level = None
    elif parts[1].isdigit() and parts[1].isascii() and str(int(parts[1])) == parts[1]:
        level = int(parts[1])
        if level > LEVELS_MAX:
            raise TilePathError(f"level {level} is above {LEVELS_MAX}")
    else:
        raise TilePathError(f"{parts[1]!r} is neither a level nor 'entries'")
    rest = parts[2:]
    width = TILE_WIDTH
    if len(rest) >= 2 and rest[-2].endswith(".p"):
        text = rest[-1]
        if not (text.isascii() and text.isdigit() and str(int(text)) == text):
            raise TilePathError(f"partial width {text!r} is not a decimal number")
        width = int(text)
        if not 1 <= width < TILE_WIDTH:
            raise TilePathError(f"partial width {width} is not between 1 and 255")
        rest = [*rest[:-2], rest[-2].removesuffix(".p")]
    index = 0
    for position, group in enumerate(rest):
        last = position == len(rest) - 1
        digits = group if last else group.removeprefix("x")
        if (not last and not group.startswith("x")) or not (
            len(digits) == 3 and digits.isascii() and digits.isdigit()
        ):
            raise TilePathError(f"index element {group!r} is not x<3 digits> or a last <3 digits>")
        index = index * 1000 + int(digits)
    if _encode_index(index) != "/".join(rest):
        raise TilePathError("the index has leading zero groups")
    return level, index, width


def entries_bundle(entries: Iterable[bytes]) -> bytes:
    """An entry bundle: each entry as a big-endian uint16 length, then its bytes."""
    out = bytearray()
    for entry in entries:
        assert len(entry) < 1 << 16, "a log entry fits a uint16 length"
        out += len(entry).to_bytes(2, "big") + entry
    return bytes(out)


def parse_entries_bundle(data: bytes, count_max: int = TILE_WIDTH) -> list[bytes]:
    """The entries of a bundle; ValueError if it is truncated or holds more than ``count_max``."""
    entries, offset = [], 0
    while offset < len(data):
        if offset + 2 > len(data):
            raise ValueError("entry bundle: truncated length")
        length = int.from_bytes(data[offset : offset + 2], "big")
        offset += 2
        if offset + length > len(data):
            raise ValueError("entry bundle: truncated entry")
        entries.append(data[offset : offset + length])
        offset += length
        if len(entries) > count_max:
            raise ValueError(f"entry bundle: more than {count_max} entries")
    return entries
