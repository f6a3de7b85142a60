"""Merkle tree hash, audit paths and consistency proofs of RFC 9162 (Certificate Transparency v2).

Theory of operation
-------------------
A block commits to its ordered list of leaves (byte strings) with one 32-byte root, so that a
client holding only the root can be convinced that a leaf is in the block (an inclusion proof)
and that a later, larger list extends an earlier one without rewriting it (a consistency
proof). Everything here follows RFC 9162 section 2.1 to the byte, so that any Certificate
Transparency implementation can check our proofs and we can check theirs.

Byte formats (RFC 9162 section 2.1.1), with HASH = SHA-256 and ``||`` concatenation:

- the root of the empty list is ``HASH(b"")``, that is
  ``e3b0c442...7852b855`` (:data:`EMPTY_ROOT`);
- the hash of a leaf ``d`` is ``HASH(0x00 || d)`` (:func:`leaf_hash`);
- the hash of an interior node is ``HASH(0x01 || left || right)`` (:func:`node_hash`);
- for n > 1 leaves the list ``D[0:n]`` is split at ``k``, the largest power of two strictly
  smaller than n: ``MTH(D[0:n]) = HASH(0x01 || MTH(D[0:k]) || MTH(D[k:n]))``.

The distinct 0x00 and 0x01 prefixes keep a leaf from ever being mistaken for an interior node
(second-preimage resistance). The split rule makes the tree "left-complete": hashing the leaf
hashes pairwise, level by level, and promoting an unpaired last node unchanged to the next
level yields exactly the same root. The construction functions use that bottom-up form, which
hashes each leaf once and each interior node once, O(n) in total.

- :func:`inclusion_proof` is the audit path ``PATH(m, D[n])`` of section 2.1.3.1: the sibling
  subtree roots from the leaf up to the root. :func:`verify_inclusion` is the algorithm of
  section 2.1.3.2.
- :func:`consistency_proof` is ``PROOF(m, D[n])`` / ``SUBPROOF`` of section 2.1.4.1, and
  :func:`verify_consistency` is the algorithm of section 2.1.4.2.

Two kinds of failure. The construction functions take our own data: a wrong type raises
``TypeError`` and an index or size out of range raises ``ValueError``. The verification
functions take data from peers and clients: they validate every argument up front (exact
types, 32-byte hashes, ``0 <= index < tree_size < 2**63``, at most :data:`PROOF_LENGTH_MAX`
proof elements) and answer ``False`` to anything malformed; they never raise.

A root does not commit to its tree size. A proof presented with another size whose path has
the same shape verifies too (leaf 0 of a 3-leaf tree has the same audit path shape as in a
4-leaf tree; the proof from 1 to 2 leaves also passes as a proof from 2 to 3). RFC 9162 binds
size and root together in the signed tree head: callers must take both from the same signed
block header, never a size from one source and a root from another.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE_BYTES",
    "PROOF_LENGTH_MAX",
    "TREE_SIZE_MAX",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root",
    "root_from_hashes",
    "verify_consistency",
    "verify_inclusion",
    "verify_inclusion_hash",
]

HASH_SIZE_BYTES = 32
"""Size of every hash in a tree or a proof: SHA-256 digests."""

TREE_SIZE_MAX = 2**63 - 1
"""Largest tree size a verifier accepts (RFC 9162 tree sizes are unsigned 64-bit; we keep
them below 2**63 so that they also fit a signed 64-bit integer anywhere they are stored)."""

PROOF_LENGTH_MAX = 64
"""Most elements a verifier reads from a proof. An audit path in a tree of fewer than 2**63
leaves has at most 63 elements, a consistency proof at most 64 (RFC 9162 section 2.1.4.1)."""

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"

EMPTY_ROOT = hashlib.sha256(b"").digest()
"""``MTH({})``, the root of the empty tree: SHA-256 of the empty string."""

_sha256 = hashlib.sha256


# --- Hashing -----------------------------------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    """Return ``SHA-256(0x00 || leaf)``, the hash of one leaf. Raise TypeError for non-bytes."""
    if not isinstance(leaf, bytes):
        raise TypeError(f"a leaf must be bytes, not {type(leaf).__name__}")
    return _sha256(LEAF_PREFIX + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return ``SHA-256(0x01 || left || right)``, the hash of an interior node.

    Raise TypeError unless both children are bytes, ValueError unless both are 32 bytes long.
    """
    for name, child in (("left", left), ("right", right)):
        if not isinstance(child, bytes):
            raise TypeError(f"the {name} child must be bytes, not {type(child).__name__}")
        if len(child) != HASH_SIZE_BYTES:
            raise ValueError(f"the {name} child must be {HASH_SIZE_BYTES} bytes, not {len(child)}")
    return _sha256(NODE_PREFIX + left + right).digest()


def _leaf_hashes(leaves: Sequence[bytes]) -> list[bytes]:
    """Hash every leaf once; raise TypeError naming the first leaf that is not bytes."""
    hashes = []
    for position, leaf in enumerate(leaves):
        if not isinstance(leaf, bytes):
            raise TypeError(f"leaf {position} must be bytes, not {type(leaf).__name__}")
        hashes.append(_sha256(LEAF_PREFIX + leaf).digest())
    return hashes


def _parent_level(level: list[bytes]) -> list[bytes]:
    """Hash a level's nodes pairwise; an unpaired last node moves up unchanged.

    Promoting the unpaired node is what makes the bottom-up tree identical to RFC 9162's
    split at the largest power of two below n.
    """
    parents = [
        _sha256(NODE_PREFIX + level[position] + level[position + 1]).digest()
        for position in range(0, len(level) - 1, 2)
    ]
    if len(level) % 2 == 1:
        parents.append(level[-1])
    return parents


def _largest_power_of_two_below(size: int) -> int:
    """Return the largest power of two strictly smaller than ``size`` (size >= 2)."""
    assert size >= 2, size
    return 1 << ((size - 1).bit_length() - 1)


# --- Construction ------------------------------------------------------------------------


def root_from_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return the Merkle tree hash of a list of leaf hashes (already ``leaf_hash``-ed).

    The empty list gives :data:`EMPTY_ROOT`, one hash gives itself. Raise TypeError or
    ValueError if an element is not a 32-byte bytes string.
    """
    level = list(leaf_hashes)
    for position, hash_value in enumerate(level):
        if not isinstance(hash_value, bytes):
            raise TypeError(f"leaf hash {position} must be bytes, not {type(hash_value).__name__}")
        if len(hash_value) != HASH_SIZE_BYTES:
            raise ValueError(
                f"leaf hash {position} must be {HASH_SIZE_BYTES} bytes, not {len(hash_value)}"
            )
    return _root_of_level(level)


def _root_of_level(level: list[bytes]) -> bytes:
    """Return the root above a non-validated list of 32-byte hashes."""
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        level = _parent_level(level)
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """Return ``MTH(D[n])``, the RFC 9162 Merkle tree hash of ``leaves``.

    Raise TypeError if a leaf is not bytes. O(n) hashing: each leaf and each node once.
    """
    return _root_of_level(_leaf_hashes(leaves))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """Return the audit path ``PATH(index, D[n])`` of RFC 9162 section 2.1.3.1.

    The path lists the sibling subtree roots from the leaf's level up to the root's children,
    which is the order :func:`verify_inclusion` consumes them. Raise TypeError if ``index``
    is not an int or a leaf is not bytes, ValueError unless ``0 <= index < len(leaves)``.
    """
    if not isinstance(index, int) or isinstance(index, bool):
        raise TypeError(f"the leaf index must be an int, not {type(index).__name__}")
    tree_size = len(leaves)
    if not 0 <= index < tree_size:
        raise ValueError(f"leaf index {index} is out of range for a tree of {tree_size} leaves")
    level = _leaf_hashes(leaves)
    position = index
    path: list[bytes] = []
    while len(level) > 1:
        sibling = position ^ 1
        # The last node of an odd-sized level has no sibling here: it is promoted unchanged,
        # and RFC 9162's recursion likewise adds no element for that level.
        if sibling < len(level):
            path.append(level[sibling])
        level = _parent_level(level)
        position //= 2
    return path


def consistency_proof(leaves: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return ``PROOF(old_size, D[n])`` of RFC 9162 section 2.1.4.1 for ``n = len(leaves)``.

    The proof shows that the tree of the first ``old_size`` leaves is a prefix of this one.
    It is empty when ``old_size`` is 0 (every tree extends the empty tree) or ``n`` (a tree
    is consistent with itself). Raise TypeError if ``old_size`` is not an int or a leaf is
    not bytes, ValueError unless ``0 <= old_size <= len(leaves)``.
    """
    if not isinstance(old_size, int) or isinstance(old_size, bool):
        raise TypeError(f"the old tree size must be an int, not {type(old_size).__name__}")
    new_size = len(leaves)
    if not 0 <= old_size <= new_size:
        raise ValueError(
            f"old tree size {old_size} is out of range for a tree of {new_size} leaves"
        )
    hashes = _leaf_hashes(leaves)
    if old_size in (0, new_size):
        return []
    # SUBPROOF(m, D[start:end], b) unrolled: each step appends after the recursive part, so
    # the elements are gathered top-down and reversed at the end. Each step hashes a subtree
    # disjoint from the others, so the whole proof costs O(n) hashing.
    start, end, remaining_size = 0, new_size, old_size
    old_tree_is_complete_subtree = True  # RFC 9162's b: "D[0:m] is a complete subtree".
    proof_top_down: list[bytes] = []
    for _ in range(PROOF_LENGTH_MAX):
        if remaining_size == end - start:
            break
        split = _largest_power_of_two_below(end - start)
        if remaining_size <= split:
            proof_top_down.append(_root_of_level(hashes[start + split : end]))
            end = start + split
        else:
            proof_top_down.append(_root_of_level(hashes[start : start + split]))
            start += split
            remaining_size -= split
            old_tree_is_complete_subtree = False
    else:
        raise AssertionError("SUBPROOF did not terminate within PROOF_LENGTH_MAX steps")
    if not old_tree_is_complete_subtree:
        proof_top_down.append(_root_of_level(hashes[start:end]))
    proof_top_down.reverse()
    return proof_top_down


# --- Verification (never raises) ---------------------------------------------------------


def _is_size(value: object) -> bool:
    """True for an int (not a bool) in ``0 ..= TREE_SIZE_MAX``."""
    return type(value) is int and 0 <= value <= TREE_SIZE_MAX


def _is_hash(value: object) -> bool:
    """True for an exact ``bytes`` of HASH_SIZE_BYTES. Subclasses are refused so that no
    hostile ``__eq__`` or ``__len__`` can take part in a verification."""
    return type(value) is bytes and len(value) == HASH_SIZE_BYTES


def _is_proof(value: object) -> bool:
    """True for a list or tuple of at most PROOF_LENGTH_MAX 32-byte hashes.

    Only lists and tuples: ``bytes`` is itself a Sequence (of ints), and an arbitrary
    iterable could be endless.
    """
    return (
        type(value) in (list, tuple)
        and len(value) <= PROOF_LENGTH_MAX
        and all(_is_hash(element) for element in value)
    )


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return True iff ``proof`` shows that ``leaf`` is leaf ``index`` of the tree ``root``.

    Hashes ``leaf`` with :func:`leaf_hash` and applies :func:`verify_inclusion_hash`. Never
    raises: malformed arguments of any kind give False. The leaf, the root and the proof
    elements must be exactly ``bytes`` (not bytearray, memoryview or a subclass), and the
    proof a list or tuple.
    """
    if type(leaf) is not bytes:
        return False
    return verify_inclusion_hash(leaf_hash(leaf), index, tree_size, proof, root)


def verify_inclusion_hash(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Return True iff ``proof`` shows that ``leaf_hash`` is at ``index`` in the tree ``root``.

    The algorithm of RFC 9162 section 2.1.3.2: ``fn`` walks the leaf's position up the tree
    and ``sn`` the last leaf's, so that the proof must have exactly the right length and
    ordering. Never raises: malformed arguments of any kind give False.
    """
    if not (
        _is_hash(leaf_hash)
        and _is_size(tree_size)
        and type(index) is int
        and 0 <= index < tree_size
        and _is_proof(proof)
        and _is_hash(root)
    ):
        return False
    position, last_position = index, tree_size - 1  # The RFC's fn and sn.
    computed = leaf_hash
    for sibling in proof:
        if last_position == 0:
            return False  # The proof is longer than the path.
        if position & 1 or position == last_position:
            computed = _sha256(NODE_PREFIX + sibling + computed).digest()
            # A right-edge node with no sibling at some levels: skip those levels.
            while not position & 1 and position != 0:
                position >>= 1
                last_position >>= 1
        else:
            computed = _sha256(NODE_PREFIX + computed + sibling).digest()
        position >>= 1
        last_position >>= 1
    return last_position == 0 and hmac.compare_digest(computed, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Return True iff ``proof`` shows that tree ``old_root`` is a prefix of tree ``new_root``.

    For ``0 < old_size < new_size`` this is the algorithm of RFC 9162 section 2.1.4.2. The
    RFC leaves the edge cases to the caller; we define them so that every true answer is
    sound:

    - ``old_size == 0``: consistency with the empty tree is trivial, so the proof must be
      empty; we also require ``old_root`` to be :data:`EMPTY_ROOT`, the only root of size 0;
    - ``old_size == new_size``: the proof must be empty and the two roots equal;
    - ``new_size == 0`` (hence ``old_size == 0``): ``new_root`` must be :data:`EMPTY_ROOT`.

    Never raises: malformed arguments of any kind give False.
    """
    if not (
        _is_size(old_size)
        and _is_size(new_size)
        and old_size <= new_size
        and _is_hash(old_root)
        and _is_hash(new_root)
        and _is_proof(proof)
    ):
        return False
    if old_size == 0:
        return (
            len(proof) == 0
            and hmac.compare_digest(old_root, EMPTY_ROOT)
            and (new_size != 0 or hmac.compare_digest(new_root, EMPTY_ROOT))
        )
    if old_size == new_size:
        return len(proof) == 0 and hmac.compare_digest(old_root, new_root)
    return _verify_consistency_path(old_size, new_size, old_root, new_root, list(proof))


def _verify_consistency_path(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]
) -> bool:
    """RFC 9162 section 2.1.4.2 for validated arguments with ``0 < old_size < new_size``."""
    assert 0 < old_size < new_size, (old_size, new_size)
    if not proof:
        return False
    # An old tree whose size is a power of two is a complete subtree of the new one, and the
    # proof omits its root because the verifier already has it.
    if old_size & (old_size - 1) == 0:
        proof = [old_root, *proof]
    position, last_position = old_size - 1, new_size - 1  # The RFC's fn and sn.
    while position & 1:
        position >>= 1
        last_position >>= 1
    old_computed = new_computed = proof[0]  # The RFC's fr and sr.
    for element in proof[1:]:
        if last_position == 0:
            return False  # The proof is longer than the path.
        if position & 1 or position == last_position:
            old_computed = _sha256(NODE_PREFIX + element + old_computed).digest()
            new_computed = _sha256(NODE_PREFIX + element + new_computed).digest()
            while not position & 1 and position != 0:
                position >>= 1
                last_position >>= 1
        else:
            new_computed = _sha256(NODE_PREFIX + new_computed + element).digest()
        position >>= 1
        last_position >>= 1
    return (
        last_position == 0
        and hmac.compare_digest(old_computed, old_root)
        and hmac.compare_digest(new_computed, new_root)
    )
