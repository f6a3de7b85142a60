"""The authenticated state: a compressed sparse Merkle tree over 256-bit key paths.

Theory of operation
===================

The state is a map from byte-string keys to byte-string values. Its root hash goes into every
block header, and a node can prove to a client holding only that root that a key has a given
value (membership) or has none (non-membership).

Paths and hashes (published in the byte-level spec; never change them)
----------------------------------------------------------------------

- ``key_path = SHA-256(key)``: 256 bits; the most significant bit of byte 0 is the first branch
  taken from the root, bit 0 goes left and bit 1 goes right. Callers namespace their keys.
- ``value_hash = SHA-256(value)``.
- leaf: ``SHA-256(0x00 || key_path || value_hash)``.
- internal node: ``SHA-256(0x01 || left_hash || right_hash)``.
- the empty subtree hashes to ``EMPTY_ROOT``, 32 zero bytes; so does the empty state.

Compression (as in Diem's sparse Merkle tree): the hash of a subtree is ``EMPTY_ROOT`` if it
holds no leaf, the leaf's hash if it holds exactly one, and otherwise the internal node hash of
its two halves. A lone leaf therefore sits at the highest position where it is alone, and an
internal node exists only above two or more leaves (one of its sides may still be empty, when
all those leaves share the next bit). The root depends only on the set of (key, value) pairs,
never on the order of the operations that produced it. Since a leaf record names its own key
path, a leaf's hash does not depend on its depth: when a neighbour is deleted the leaf moves up
unchanged.

The node store (content addressed, functional)
----------------------------------------------

Nodes live in a content-addressed store read through ``NodeReader.get_node(node_hash)``. This
module never writes: ``SparseMerkleTree.update`` returns the new root and the records it
created, and the caller persists them (the LevelDB store writes them in the same write batch
as the block). Old records are never deleted, so every earlier root stays readable and
provable. Records, keyed by their node hash:

- leaf: ``0x00 || key_path (32 bytes) || value`` (the value itself, any length, so ``get``
  can return it); its key in the store is the leaf hash above;
- internal node: ``0x01 || left_hash (32 bytes) || right_hash (32 bytes)``, exactly 65 bytes;
  its key is the SHA-256 of the record, which is the internal node hash above.

The empty subtree has no record: ``EMPTY_ROOT`` is recognised by value. Every record read back
is checked (tag, length, hash equal to the key asked for, position consistent with the path
that led to it); a record that fails, or a missing one, raises ``StateCorruptionError`` naming
the node hash, because the store is ours and silently answering from a damaged tree would
hand out wrong state.

Updates and cost
----------------

``update`` applies a batch of k changes in one recursive descent over the changes sorted by key
path: a subtree no change falls in is kept by hash without being read, so a batch costs
O(k log n) node reads and hashes for a tree of n random key paths, not O(n). Setting a key to
its current value and deleting an absent key are no-ops: they neither change the root nor
create records.

Proofs
------

A ``StateProof`` lists the sibling hashes met on the key's path from the root down to the
position where the walk ends (at most 256 of them, one per bit). The walk ends at the key's
own leaf (membership), at an empty position, or at the leaf of another key whose path shares
the prefix walked (non-membership; the proof then carries that leaf's key path and value
hash). ``verify_state_proof`` folds the siblings back up and compares with the root; it needs
no store and returns ``False``, never raises, on malformed or hostile input. Proofs are
canonical: the deepest sibling is never empty, because a lone leaf or an empty position with
an empty sibling would have been compressed into its parent.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from operator import itemgetter
from typing import Protocol

__all__ = [
    "EMPTY_ROOT",
    "HASH_BYTES",
    "INTERNAL_NODE_TAG",
    "KEY_PATH_BITS",
    "PROOF_SIBLINGS_MAX",
    "MemoryNodeStore",
    "NodeReader",
    "SparseMerkleTree",
    "StateCorruptionError",
    "StateProof",
    "StateUpdate",
    "key_path",
    "leaf_hash",
    "node_hash",
    "value_hash",
    "verify_state_proof",
]

HASH_BYTES = 32
KEY_PATH_BITS = 256
# One sibling per bit of the key path: a walk can go no deeper than the last bit.
PROOF_SIBLINGS_MAX = KEY_PATH_BITS
EMPTY_ROOT = bytes(HASH_BYTES)

_LEAF_TAG = b"\x00"
_INTERNAL_TAG = b"\x01"
INTERNAL_NODE_TAG = _INTERNAL_TAG
"""First byte of an internal node's record, ``0x01 || left || right`` (for tree walkers)."""
_LEAF_RECORD_BYTES_MIN = 1 + HASH_BYTES
_INTERNAL_RECORD_BYTES = 1 + 2 * HASH_BYTES
_LEAF_VALUE_BYTES_REMEMBERED_MAX = 1024
"""Larger leaves (a member set, a big record) are not kept in memory: read when needed."""
UPDATES_REMEMBERED = 8
"""The stored updates whose records a remembering tree holds (:meth:`SparseMerkleTree.remember`)."""
_CANONICAL_FIELDS = frozenset({"siblings", "other_key_path", "other_value_hash"})


# --- hashing --------------------------------------------------------------------------------


def key_path(key: bytes) -> bytes:
    """Return the 256-bit path of a state key in the tree: ``SHA-256(key)``."""
    return hashlib.sha256(key).digest()


def value_hash(value: bytes) -> bytes:
    """Return the hash committed for a value in its leaf: ``SHA-256(value)``."""
    return hashlib.sha256(value).digest()


def leaf_hash(path: bytes, hash_of_value: bytes) -> bytes:
    """Return the hash of a leaf: ``SHA-256(0x00 || key_path || value_hash)``."""
    return hashlib.sha256(_LEAF_TAG + path + hash_of_value).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the hash of an internal node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(_INTERNAL_TAG + left + right).digest()


def _bit(path: bytes, depth: int) -> int:
    """Return the branch taken at ``depth`` (0 = root) by ``path``: 0 left, 1 right."""
    return (path[depth >> 3] >> (7 - (depth & 7))) & 1


def _common_prefix_bits(path_a: bytes, path_b: bytes) -> int:
    """Return how many leading bits two 32-byte paths share (256 when they are equal)."""
    difference = int.from_bytes(path_a) ^ int.from_bytes(path_b)
    return KEY_PATH_BITS - difference.bit_length()


def _right_half_start(path: bytes, depth: int) -> bytes:
    """Return the smallest path that shares ``path``'s first ``depth`` bits and has bit
    ``depth`` set: in a sorted run of paths sharing that prefix, the right half starts there.
    """
    shift = KEY_PATH_BITS - 1 - depth
    return (((int.from_bytes(path) >> shift) | 1) << shift).to_bytes(HASH_BYTES)


def _with_bit(path: bytes, depth: int) -> bytes:
    """``path`` with bit ``depth`` set (the prefix of the right half at that depth)."""
    return (int.from_bytes(path) | (1 << (KEY_PATH_BITS - 1 - depth))).to_bytes(HASH_BYTES)


def _is_hash(candidate: object) -> bool:
    return isinstance(candidate, bytes) and len(candidate) == HASH_BYTES


# --- node store -----------------------------------------------------------------------------


class StateCorruptionError(Exception):
    """A node the tree needs is missing from the store, or its record fails validation.

    The store is written only by this node, so this is never a peer's fault: it means a lost
    write, a damaged disk, or a root that was never stored. ``node_hash`` names the node.
    """

    def __init__(self, node_hash: bytes, reason: str) -> None:
        super().__init__(f"state node {node_hash.hex()}: {reason}")
        self.node_hash = node_hash
        self.reason = reason


class NodeReader(Protocol):
    """Read access to a content-addressed store of tree node records."""

    def get_node(self, node_hash: bytes) -> bytes | None:
        """Return the record stored under ``node_hash``, or ``None`` if there is none."""
        ...


class MemoryNodeStore:
    """A dict-backed node store, for tests and for state that need not survive a restart."""

    def __init__(self) -> None:
        self._records: dict[bytes, bytes] = {}

    def get_node(self, node_hash: bytes) -> bytes | None:
        """Return the record stored under ``node_hash``, or ``None`` if there is none."""
        return self._records.get(node_hash)

    def put_nodes(self, nodes: Mapping[bytes, bytes]) -> None:
        """Store records keyed by their node hash, such as ``StateUpdate.new_nodes``.

        Storing a record again is harmless: a hash always names the same record.
        """
        for hash_of_node, record in nodes.items():
            existing = self._records.get(hash_of_node)
            assert existing is None or existing == record, "two records under one hash"
            self._records[hash_of_node] = record

    def __len__(self) -> int:
        return len(self._records)


class _Kind(enum.Enum):
    """What a subtree hash stands for; compression needs it when a sibling becomes empty."""

    EMPTY = "empty"
    LEAF = "leaf"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class _Leaf:
    path: bytes
    value: bytes


@dataclass(frozen=True, slots=True)
class _Internal:
    left: bytes
    right: bytes


def _leaf_record(path: bytes, value: bytes) -> bytes:
    return _LEAF_TAG + path + value


def _decode_made(record: bytes) -> _Leaf | _Internal:
    """Decode a record this process built (a tree update's): no check against its hash."""
    if record[:1] == _INTERNAL_TAG:
        return _Internal(record[1:33], record[33:65])
    return _Leaf(record[1:_LEAF_RECORD_BYTES_MIN], record[_LEAF_RECORD_BYTES_MIN:])


def _decode_record(hash_of_node: bytes, record: bytes | None) -> _Leaf | _Internal:
    """Decode a record read back from the store, checking it against the hash asked for.

    Raises ``StateCorruptionError`` if the record is missing, malformed, or hashes to
    anything other than ``hash_of_node``.
    """
    if record is None:
        raise StateCorruptionError(hash_of_node, "missing from the node store")
    if not isinstance(record, bytes) or not record:
        raise StateCorruptionError(hash_of_node, "record is not a non-empty byte string")
    tag = record[:1]
    if tag == _LEAF_TAG:
        if len(record) < _LEAF_RECORD_BYTES_MIN:
            raise StateCorruptionError(hash_of_node, f"leaf record of {len(record)} bytes")
        path, value = record[1:_LEAF_RECORD_BYTES_MIN], record[_LEAF_RECORD_BYTES_MIN:]
        if leaf_hash(path, value_hash(value)) != hash_of_node:
            raise StateCorruptionError(hash_of_node, "leaf record does not match its hash")
        return _Leaf(path, value)
    if tag == _INTERNAL_TAG:
        if len(record) != _INTERNAL_RECORD_BYTES:
            raise StateCorruptionError(hash_of_node, f"internal record of {len(record)} bytes")
        if hashlib.sha256(record).digest() != hash_of_node:
            raise StateCorruptionError(hash_of_node, "internal record does not match its hash")
        left, right = record[1 : 1 + HASH_BYTES], record[1 + HASH_BYTES :]
        if left == EMPTY_ROOT and right == EMPTY_ROOT:
            raise StateCorruptionError(hash_of_node, "internal node with two empty children")
        return _Internal(left, right)
    raise StateCorruptionError(hash_of_node, f"unknown record tag {tag.hex()}")


# --- values returned ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class StateUpdate:
    """The result of ``SparseMerkleTree.update``.

    ``new_nodes`` maps node hash to record for the nodes created along the changed paths;
    the caller must store them (in the same write batch as the block) before reading
    ``root``. Records already stored may appear again; storing them twice is harmless.
    """

    root: bytes
    new_nodes: dict[bytes, bytes]


@dataclass(frozen=True, slots=True, kw_only=True)
class StateProof:
    """A membership or non-membership proof for one key against one state root.

    ``siblings`` holds the sibling hashes from the root down to the position where the key's
    walk ends (``EMPTY_ROOT`` allowed, at most ``PROOF_SIBLINGS_MAX``). ``other_leaf`` is set
    only in a non-membership proof whose walk ends at another key's leaf, as
    ``(key_path, value_hash)`` of that leaf. Whether the proof claims membership is decided by
    the value handed to ``verify_state_proof``, not by the proof.

    Raises ``ValueError`` at construction if a field has the wrong type or length.
    """

    siblings: tuple[bytes, ...]
    other_leaf: tuple[bytes, bytes] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.siblings, tuple):
            raise ValueError("siblings must be a tuple of 32-byte hashes")
        if len(self.siblings) > PROOF_SIBLINGS_MAX:
            raise ValueError(
                f"{len(self.siblings)} siblings, more than the {PROOF_SIBLINGS_MAX} allowed"
            )
        for index, sibling in enumerate(self.siblings):
            if not _is_hash(sibling):
                raise ValueError(f"sibling {index} is not a 32-byte hash")
        if self.other_leaf is not None and not (
            isinstance(self.other_leaf, tuple)
            and len(self.other_leaf) == 2
            and all(_is_hash(part) for part in self.other_leaf)
        ):
            raise ValueError("other_leaf must be None or a (key_path, value_hash) pair of hashes")

    def to_canonical(self) -> dict[str, object]:
        """Return the proof as a map for the canonical msgpack encoder."""
        other_path, other_value_hash = self.other_leaf or (None, None)
        return {
            "siblings": list(self.siblings),
            "other_key_path": other_path,
            "other_value_hash": other_value_hash,
        }

    @classmethod
    def from_canonical(cls, obj: object) -> StateProof:
        """Rebuild a proof from its canonical map, as decoded from msgpack.

        Raises ``ValueError`` unless ``obj`` has exactly the keys ``siblings`` (a list of at
        most 256 hashes of 32 bytes), ``other_key_path`` and ``other_value_hash`` (both
        32-byte hashes, or both ``None``).
        """
        if not isinstance(obj, dict):
            raise ValueError(f"a state proof must be a map, not {type(obj).__name__}")
        if obj.keys() != _CANONICAL_FIELDS:
            raise ValueError(f"a state proof map must have exactly the keys {_CANONICAL_FIELDS}")
        siblings = obj["siblings"]
        if not isinstance(siblings, list | tuple):
            raise ValueError(f"siblings must be a list, not {type(siblings).__name__}")
        other_path, other_value_hash = obj["other_key_path"], obj["other_value_hash"]
        if other_path is None and other_value_hash is None:
            other_leaf = None
        elif _is_hash(other_path) and _is_hash(other_value_hash):
            other_leaf = (other_path, other_value_hash)
        else:
            raise ValueError("other_key_path and other_value_hash must be both None or both hashes")
        return cls(siblings=tuple(siblings), other_leaf=other_leaf)


# --- the tree -------------------------------------------------------------------------------

# A change sorted for the descent: (key_path, new value or None to delete).
_Change = tuple[bytes, bytes | None]
# A leaf to place while building a subtree: (key_path, leaf hash, record, or None when the
# record is already in the store).
_Placement = tuple[bytes, bytes, bytes | None]


class SparseMerkleTree:
    """Reads, updates and proves states held in a content-addressed node store.

    The tree holds no state of its own: every method takes the root to work on, so any root
    ever produced stays usable. Methods raise ``ValueError`` on a malformed root or change and
    ``StateCorruptionError`` when a node they need is missing or damaged.
    """

    def __init__(self, nodes: NodeReader, *, nodes_remembered_max: int = 0) -> None:
        """``nodes_remembered_max`` above 0 keeps up to that many decoded nodes in memory,
        and the records of the last updates stored (:meth:`remember`), so that the next
        blocks' updates, which walk the same top of the tree, neither read nor check them
        again."""
        self._nodes = nodes
        self._generation_max = nodes_remembered_max // 2
        self._recent: dict[bytes, _Leaf | _Internal] = {}
        self._older: dict[bytes, _Leaf | _Internal] = {}
        self._made: tuple[Mapping[bytes, bytes], ...] = ()

    def remember(self, new_nodes: Mapping[bytes, bytes]) -> None:
        """Keep the records of an update that was just stored (a :class:`StateUpdate`'s
        ``new_nodes``, held as it is: no copy): the next update reads the top ones again.

        The last :data:`UPDATES_REMEMBERED` updates are kept; a node read from them is decoded
        then kept like one read from the store. Only records this tree built go here: they
        are not checked against their hashes (a hash names one record). Nothing is kept
        unless the tree was made with ``nodes_remembered_max``.
        """
        if self._generation_max:
            self._made = (new_nodes, *self._made[: UPDATES_REMEMBERED - 1])

    def _keep(self, hash_of_node: bytes, node: _Leaf | _Internal) -> None:
        """Two generations: when the recent one is full it becomes the older one, and the
        older one is dropped; a node read from the older one moves back to the recent one."""
        self._recent[hash_of_node] = node
        if len(self._recent) >= self._generation_max:
            self._older, self._recent = self._recent, {}

    def get(self, root: bytes, key: bytes) -> bytes | None:
        """Return the value of ``key`` in the state ``root``, or ``None`` if it has none.

        Reads one node per level of the key's path: O(log n) for n random key paths.
        """
        path = key_path(_require_bytes(key, "key"))
        _, leaf = self._walk(_require_root(root), path)
        if leaf is not None and leaf.path == path:
            return leaf.value
        return None

    def prove(self, root: bytes, key: bytes) -> StateProof:
        """Return a proof of the value of ``key`` in the state ``root``, or of its absence."""
        path = key_path(_require_bytes(key, "key"))
        siblings, leaf = self._walk(_require_root(root), path)
        other_leaf = None
        if leaf is not None and leaf.path != path:
            other_leaf = (leaf.path, value_hash(leaf.value))
        return StateProof(siblings=tuple(siblings), other_leaf=other_leaf)

    def update(self, root: bytes, changes: Mapping[bytes, bytes | None]) -> StateUpdate:
        """Apply ``changes`` (key to new value, ``None`` to delete) to the state ``root``.

        Returns the new root and the records created, without writing anything. Setting a
        key to its current value and deleting an absent key change nothing.
        """
        _require_root(root)
        sorted_changes: list[_Change] = []
        for key, value in changes.items():
            _require_bytes(key, "key")
            if value is not None:
                _require_bytes(value, "value")
            sorted_changes.append((key_path(key), value))
        sorted_changes.sort(key=itemgetter(0))
        for earlier, later in itertools.pairwise(sorted_changes):
            assert earlier[0] != later[0], "two keys with one key path: SHA-256 collision"
        new_nodes: dict[bytes, bytes] = {}
        # The paths as integers too: the descent splits each run of changes with one shift
        # and one bisection (big-endian paths of one length sort as their integers do).
        numbers = [int.from_bytes(path) for path, _ in sorted_changes]
        new_root, _ = self._update_subtree(
            root, 0, sorted_changes, numbers, 0, len(sorted_changes), new_nodes
        )
        return StateUpdate(root=new_root, new_nodes=new_nodes)

    def leaves(self, root: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every ``(key_path, value)`` of the state ``root``, each node read and checked.

        Reads the whole tree (an integrity check, ``sceau node check``), depth first, with a
        stack of at most one pending sibling per level: memory stays O(depth).
        """
        pending: list[tuple[bytes, int, bytes]] = [(_require_root(root), 0, bytes(HASH_BYTES))]
        while pending:
            current, depth, prefix = pending.pop()
            if current == EMPTY_ROOT:
                continue
            node = self._read_stored(current)
            if isinstance(node, _Leaf):
                _check_leaf_position(current, node, prefix, depth)
                yield node.path, node.value
                continue
            if depth == KEY_PATH_BITS:
                raise StateCorruptionError(current, "internal node below the last key bit")
            right_prefix = _with_bit(prefix, depth)
            pending.append((node.right, depth + 1, right_prefix))
            pending.append((node.left, depth + 1, prefix))

    # --- reading ----------------------------------------------------------------------------

    def _read(self, hash_of_node: bytes) -> _Leaf | _Internal:
        """The node, from memory if it is remembered, else read from the store and checked."""
        node = self._recent.get(hash_of_node)
        if node is not None:
            return node
        node = self._older.get(hash_of_node)
        if node is None:
            for made in self._made:
                record = made.get(hash_of_node)
                if record is not None:  # made by this tree: decoded, not checked
                    node = _decode_made(record)
                    break
            else:
                node = self._read_stored(hash_of_node)
            if isinstance(node, _Leaf) and len(node.value) > _LEAF_VALUE_BYTES_REMEMBERED_MAX:
                return node
        if self._generation_max:
            self._keep(hash_of_node, node)
        return node

    def _read_stored(self, hash_of_node: bytes) -> _Leaf | _Internal:
        """The node as stored, checked against its hash (never from memory)."""
        return _decode_record(hash_of_node, self._nodes.get_node(hash_of_node))

    def _walk(self, root: bytes, path: bytes) -> tuple[list[bytes], _Leaf | None]:
        """Follow ``path`` from ``root`` to an empty position or a leaf.

        Returns the siblings met on the way and the leaf reached (``None`` if the walk ends
        at an empty position). The leaf may belong to another key sharing the prefix walked.
        """
        siblings: list[bytes] = []
        current = root
        parent = root
        while current != EMPTY_ROOT:
            node = self._read(current)
            depth = len(siblings)
            if isinstance(node, _Leaf):
                _check_leaf_position(current, node, path, depth)
                if siblings and siblings[-1] == EMPTY_ROOT:
                    raise StateCorruptionError(parent, "a lone leaf below it is not compressed")
                return siblings, node
            if depth == KEY_PATH_BITS:
                raise StateCorruptionError(current, "internal node below the last key bit")
            parent = current
            if _bit(path, depth):
                siblings.append(node.left)
                current = node.right
            else:
                siblings.append(node.right)
                current = node.left
        return siblings, None

    def _kind(self, hash_of_node: bytes) -> _Kind:
        if hash_of_node == EMPTY_ROOT:
            return _Kind.EMPTY
        return _Kind.LEAF if isinstance(self._read(hash_of_node), _Leaf) else _Kind.INTERNAL

    # --- updating ---------------------------------------------------------------------------

    def _update_subtree(
        self,
        subtree: bytes,
        depth: int,
        changes: list[_Change],
        numbers: list[int],
        low: int,
        high: int,
        new_nodes: dict[bytes, bytes],
    ) -> tuple[bytes, _Kind | None]:
        """Apply ``changes[low:high]``, all within the subtree at ``depth``, to ``subtree``
        (``numbers`` are the changes' paths as integers).

        Returns the new subtree hash and its kind, or ``None`` as the kind when no change
        falls in the subtree: it is then kept by hash and never read.
        """
        if low == high:
            return subtree, None
        if subtree == EMPTY_ROOT:
            placements = [
                _placement(path, value) for path, value in changes[low:high] if value is not None
            ]
            return _build(depth, placements, 0, len(placements), new_nodes)
        node = self._read(subtree)
        if isinstance(node, _Leaf):
            _check_leaf_position(subtree, node, changes[low][0], depth)
            return _update_leaf(subtree, node, depth, changes[low:high], new_nodes)
        if depth == KEY_PATH_BITS:
            raise StateCorruptionError(subtree, "internal node below the last key bit")
        shift = KEY_PATH_BITS - 1 - depth  # as _right_half_start, on the integers
        split = bisect.bisect_left(numbers, (numbers[low] >> shift | 1) << shift, low, high)
        left, left_kind = self._update_subtree(
            node.left, depth + 1, changes, numbers, low, split, new_nodes
        )
        right, right_kind = self._update_subtree(
            node.right, depth + 1, changes, numbers, split, high, new_nodes
        )
        if left == node.left and right == node.right:
            return subtree, _Kind.INTERNAL
        if left != EMPTY_ROOT and right != EMPTY_ROOT:  # the usual case, no compression
            return _internal(left, right, new_nodes), _Kind.INTERNAL
        return self._join(left, left_kind, right, right_kind, new_nodes)

    def _join(
        self,
        left: bytes,
        left_kind: _Kind | None,
        right: bytes,
        right_kind: _Kind | None,
        new_nodes: dict[bytes, bytes],
    ) -> tuple[bytes, _Kind]:
        """Return the subtree made of two halves, applying the compression rule.

        An unchanged half's kind is unknown; it is read only if the other half is empty, to
        know whether it is a lone leaf that must move up.
        """
        if left == EMPTY_ROOT and right == EMPTY_ROOT:
            return EMPTY_ROOT, _Kind.EMPTY
        if left == EMPTY_ROOT or right == EMPTY_ROOT:
            if left == EMPTY_ROOT:
                survivor, survivor_kind = right, right_kind
            else:
                survivor, survivor_kind = left, left_kind
            if survivor_kind is None:
                survivor_kind = self._kind(survivor)
            if survivor_kind is _Kind.LEAF:
                return survivor, _Kind.LEAF
        return _internal(left, right, new_nodes), _Kind.INTERNAL


def _update_leaf(
    subtree: bytes, leaf: _Leaf, depth: int, changes: list[_Change], new_nodes: dict[bytes, bytes]
) -> tuple[bytes, _Kind]:
    """Apply ``changes`` to a subtree holding the single leaf ``leaf`` (hash ``subtree``)."""
    placements: list[_Placement] = []
    leaf_stays = True
    for path, value in changes:
        if path == leaf.path:
            if value == leaf.value:
                continue
            leaf_stays = False
        if value is not None:
            placements.append(_placement(path, value))
    if leaf_stays and not placements:
        return subtree, _Kind.LEAF
    if leaf_stays:
        bisect.insort(placements, (leaf.path, subtree, None), key=itemgetter(0))
    return _build(depth, placements, 0, len(placements), new_nodes)


def _build(
    depth: int,
    placements: list[_Placement],
    low: int,
    high: int,
    new_nodes: dict[bytes, bytes],
) -> tuple[bytes, _Kind]:
    """Build the subtree at ``depth`` holding exactly ``placements[low:high]`` (sorted)."""
    if low == high:
        return EMPTY_ROOT, _Kind.EMPTY
    if high - low == 1:
        _, hash_of_leaf, record = placements[low]
        if record is not None:
            new_nodes[hash_of_leaf] = record
        return hash_of_leaf, _Kind.LEAF
    assert depth < KEY_PATH_BITS, "two leaves with one key path"
    split = bisect.bisect_left(
        placements, _right_half_start(placements[low][0], depth), low, high, key=itemgetter(0)
    )
    left, _ = _build(depth + 1, placements, low, split, new_nodes)
    right, _ = _build(depth + 1, placements, split, high, new_nodes)
    return _internal(left, right, new_nodes), _Kind.INTERNAL


def _placement(path: bytes, value: bytes) -> _Placement:
    return (path, leaf_hash(path, value_hash(value)), _leaf_record(path, value))


def _internal(left: bytes, right: bytes, new_nodes: dict[bytes, bytes]) -> bytes:
    record = _INTERNAL_TAG + left + right
    hash_of_node = hashlib.sha256(record).digest()
    new_nodes[hash_of_node] = record
    return hash_of_node


def _check_leaf_position(hash_of_leaf: bytes, leaf: _Leaf, path: bytes, depth: int) -> None:
    """Raise ``StateCorruptionError`` unless ``leaf`` shares the ``depth`` bits walked."""
    if _common_prefix_bits(leaf.path, path) < depth:
        raise StateCorruptionError(hash_of_leaf, f"leaf found at depth {depth} off its path")


def _require_bytes(candidate: object, name: str) -> bytes:
    if not isinstance(candidate, bytes):
        raise ValueError(f"a state {name} must be bytes, not {type(candidate).__name__}")
    return candidate


def _require_root(root: object) -> bytes:
    if not _is_hash(root):
        raise ValueError("a state root must be 32 bytes")
    return root  # type: ignore[return-value]


# --- verification ---------------------------------------------------------------------------


def verify_state_proof(root: bytes, key: bytes, value: bytes | None, proof: StateProof) -> bool:
    """Return whether ``proof`` shows that ``key`` has ``value`` in the state ``root``.

    ``value=None`` checks non-membership. Needs no store. Returns ``False``, never raises,
    on any malformed argument: wrong types or lengths, too many siblings, a non-canonical
    proof, or a non-membership proof whose other leaf has the key's own path.
    """
    if not (_is_hash(root) and isinstance(key, bytes) and isinstance(proof, StateProof)):
        return False
    if value is not None and not isinstance(value, bytes):
        return False
    siblings, other_leaf = proof.siblings, proof.other_leaf
    # A StateProof validates itself, but a hostile caller can bypass its constructor.
    if not (isinstance(siblings, tuple) and len(siblings) <= PROOF_SIBLINGS_MAX):
        return False
    if not all(_is_hash(sibling) for sibling in siblings):
        return False
    if siblings and siblings[-1] == EMPTY_ROOT:
        return False
    path = key_path(key)
    if value is not None:
        if other_leaf is not None:
            return False
        current = leaf_hash(path, value_hash(value))
    elif other_leaf is None:
        current = EMPTY_ROOT
    else:
        if not (isinstance(other_leaf, tuple) and len(other_leaf) == 2):
            return False
        other_path, other_value_hash = other_leaf
        if not (_is_hash(other_path) and _is_hash(other_value_hash)) or other_path == path:
            return False
        if _common_prefix_bits(other_path, path) < len(siblings):
            return False
        current = leaf_hash(other_path, other_value_hash)
    for depth in range(len(siblings) - 1, -1, -1):
        if _bit(path, depth):
            current = node_hash(siblings[depth], current)
        else:
            current = node_hash(current, siblings[depth])
    return current == root
