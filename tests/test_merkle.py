"""Specification tests for ledger.merkle, the RFC 9162 section 2.1 Merkle tree.

The module is checked against a naive reference written line by line from the RFC text
(MTH, PATH, PROOF and SUBPROOF below), against the published Certificate Transparency test
vectors, and against hostile verifier inputs, which must always be answered with False.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import merkle

# --- Reference implementation, written directly from RFC 9162 section 2.1 --------------------
# Deliberately naive: recursion on list slices exactly as the RFC states it. The cache only
# memoizes a pure function so that the exhaustive sweeps below stay fast.


def reference_split(size: int) -> int:
    """The largest power of two smaller than ``size`` (the RFC's k, for size > 1)."""
    split = 1
    while split * 2 < size:
        split *= 2
    return split


@functools.lru_cache(maxsize=2**15)
def reference_mth(leaves: tuple[bytes, ...]) -> bytes:
    """MTH(D[n]) of RFC 9162 section 2.1.1."""
    if len(leaves) == 0:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = reference_split(len(leaves))
    left, right = reference_mth(leaves[:split]), reference_mth(leaves[split:])
    return hashlib.sha256(b"\x01" + left + right).digest()


def reference_path(index: int, leaves: tuple[bytes, ...]) -> list[bytes]:
    """PATH(m, D[n]) of RFC 9162 section 2.1.3.1."""
    if len(leaves) == 1:
        return []
    split = reference_split(len(leaves))
    if index < split:
        return [*reference_path(index, leaves[:split]), reference_mth(leaves[split:])]
    return [*reference_path(index - split, leaves[split:]), reference_mth(leaves[:split])]


def reference_path_sides(index: int, tree_size: int) -> list[str]:
    """For each element of PATH(m, D[n]), the side of the sibling it stands for."""
    if tree_size == 1:
        return []
    split = reference_split(tree_size)
    if index < split:
        return [*reference_path_sides(index, split), "right"]
    return [*reference_path_sides(index - split, tree_size - split), "left"]


def reference_proof(old_size: int, leaves: tuple[bytes, ...]) -> list[bytes]:
    """PROOF(m, D[n]) of RFC 9162 section 2.1.4.1, empty for m == 0 and m == n."""
    if old_size in (0, len(leaves)):
        return []
    return reference_subproof(old_size, leaves, True)


def reference_subproof(
    old_size: int, leaves: tuple[bytes, ...], old_tree_is_complete_subtree: bool
) -> list[bytes]:
    """SUBPROOF(m, D[n], b) of RFC 9162 section 2.1.4.1."""
    if old_size == len(leaves):
        return [] if old_tree_is_complete_subtree else [reference_mth(leaves)]
    split = reference_split(len(leaves))
    if old_size <= split:
        left = reference_subproof(old_size, leaves[:split], old_tree_is_complete_subtree)
        return [*left, reference_mth(leaves[split:])]
    right = reference_subproof(old_size - split, leaves[split:], False)
    return [*right, reference_mth(leaves[:split])]


# --- Published Certificate Transparency test vectors -----------------------------------------
# The 8-leaf tree of the RFC 6962 reference tests (certificate-transparency C++ and Go,
# transparency-dev/merkle testonly). Indices here are 0-based; the C++ tables are 1-based.

CT_LEAVES = [
    bytes.fromhex(text)
    for text in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]

CT_ROOTS_BY_SIZE = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]

CT_LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]

# (index, tree_size) -> PATH
CT_INCLUSION_PROOFS = {
    (0, 1): [],
    (0, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (5, 8): [
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 3): ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
    (1, 5): [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
}

# (old_size, new_size) -> PROOF
CT_CONSISTENCY_PROOFS = {
    (1, 1): [],
    (1, 8): [
        "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    ],
    (6, 8): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
    (2, 5): [
        "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
        "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    ],
    (6, 7): [
        "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
        "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    ],
}


def hex_list(hashes: Sequence[bytes]) -> list[str]:
    return [hash_value.hex() for hash_value in hashes]


def test_the_reference_reproduces_the_published_vectors():
    """The reference is only a judge if it agrees with the outside world."""
    leaves = tuple(CT_LEAVES)
    for size, expected in enumerate(CT_ROOTS_BY_SIZE):
        assert reference_mth(leaves[:size]).hex() == expected
    for (index, size), expected in CT_INCLUSION_PROOFS.items():
        assert hex_list(reference_path(index, leaves[:size])) == expected
    for (old_size, new_size), expected in CT_CONSISTENCY_PROOFS.items():
        assert hex_list(reference_proof(old_size, leaves[:new_size])) == expected


def test_empty_tree_root_is_sha256_of_the_empty_string():
    expected = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.root([]).hex() == expected
    assert merkle.EMPTY_ROOT.hex() == expected
    assert merkle.root_from_hashes([]).hex() == expected


def test_leaf_and_node_hashes_use_the_0x00_and_0x01_prefixes():
    left, right = merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")
    assert left == hashlib.sha256(b"\x00a").digest()
    assert merkle.node_hash(left, right) == hashlib.sha256(b"\x01" + left + right).digest()
    assert [merkle.leaf_hash(leaf).hex() for leaf in CT_LEAVES] == CT_LEAF_HASHES


@pytest.mark.parametrize("tree_size", range(len(CT_ROOTS_BY_SIZE)))
def test_root_matches_the_certificate_transparency_vectors(tree_size):
    assert merkle.root(CT_LEAVES[:tree_size]).hex() == CT_ROOTS_BY_SIZE[tree_size]


@pytest.mark.parametrize(("index", "tree_size"), sorted(CT_INCLUSION_PROOFS))
def test_inclusion_proof_matches_the_certificate_transparency_vectors(index, tree_size):
    leaves = CT_LEAVES[:tree_size]
    proof = merkle.inclusion_proof(leaves, index)
    assert hex_list(proof) == CT_INCLUSION_PROOFS[(index, tree_size)]
    root = bytes.fromhex(CT_ROOTS_BY_SIZE[tree_size])
    assert merkle.verify_inclusion(leaves[index], index, tree_size, proof, root)


@pytest.mark.parametrize(("old_size", "new_size"), sorted(CT_CONSISTENCY_PROOFS))
def test_consistency_proof_matches_the_certificate_transparency_vectors(old_size, new_size):
    proof = merkle.consistency_proof(CT_LEAVES[:new_size], old_size)
    assert hex_list(proof) == CT_CONSISTENCY_PROOFS[(old_size, new_size)]
    old_root = bytes.fromhex(CT_ROOTS_BY_SIZE[old_size])
    new_root = bytes.fromhex(CT_ROOTS_BY_SIZE[new_size])
    assert merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)


# --- Sweep against the reference -------------------------------------------------------------
# Every tree size up to SWEEP_SIZE_MAX gets its root checked. Each proof construction hashes
# the whole tree, so checking every position of every size would be cubic (about 10^7 hashes,
# tens of seconds). Every index and every old size are therefore checked for trees up to
# EVERY_POSITION_SIZE_MAX leaves (every shape of a 6-bit position) and around the power of
# two 128, where the tree's shape changes; the other sizes get the positions where a path's
# shape changes (edges, middle, around the largest power of two below the size) and a stride.

SWEEP_SIZE_MAX = 300
EVERY_POSITION_SIZE_MAX = 64
EVERY_POSITION_SIZES_AROUND_A_POWER_OF_TWO = (127, 128, 129)
SAMPLE_STRIDE = 61

SWEEP_LEAVES = tuple(b"leaf-%d" % number + bytes(number % 5) for number in range(SWEEP_SIZE_MAX))


def sweep_positions(tree_size: int, *, include_end: bool) -> list[int]:
    """The indices (or, with include_end, the old sizes 0..tree_size) checked for a tree."""
    end = tree_size + 1 if include_end else tree_size
    if (
        tree_size <= EVERY_POSITION_SIZE_MAX
        or tree_size in EVERY_POSITION_SIZES_AROUND_A_POWER_OF_TWO
    ):
        return list(range(end))
    split = reference_split(tree_size)
    positions = {0, 1, tree_size // 2, split - 1, split, split + 1, tree_size - 2, tree_size - 1}
    positions |= set(range(0, end, SAMPLE_STRIDE))
    if include_end:
        positions.add(tree_size)
    return sorted(position for position in positions if 0 <= position < end)


SWEEP_BAND_SIZE = 25
SWEEP_BANDS = [
    range(first, min(first + SWEEP_BAND_SIZE, SWEEP_SIZE_MAX + 1))
    for first in range(0, SWEEP_SIZE_MAX + 1, SWEEP_BAND_SIZE)
]
SWEEP_BAND_IDS = [f"sizes_{band[0]}_to_{band[-1]}" for band in SWEEP_BANDS]


@pytest.mark.parametrize("tree_sizes", SWEEP_BANDS, ids=SWEEP_BAND_IDS)
def test_root_equals_the_reference_for_every_size(tree_sizes):
    for tree_size in tree_sizes:
        leaves = SWEEP_LEAVES[:tree_size]
        assert merkle.root(leaves) == reference_mth(leaves), tree_size
        leaf_hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
        assert merkle.root_from_hashes(leaf_hashes) == reference_mth(leaves), tree_size


@pytest.mark.parametrize("tree_sizes", SWEEP_BANDS, ids=SWEEP_BAND_IDS)
def test_inclusion_proof_equals_the_reference_path_and_verifies(tree_sizes):
    for tree_size in tree_sizes:
        leaves = SWEEP_LEAVES[:tree_size]
        root = reference_mth(leaves)
        for index in sweep_positions(tree_size, include_end=False):
            where = (tree_size, index)
            proof = merkle.inclusion_proof(leaves, index)
            assert proof == reference_path(index, leaves), where
            assert merkle.verify_inclusion(leaves[index], index, tree_size, proof, root), where
            assert merkle.verify_inclusion_hash(
                merkle.leaf_hash(leaves[index]), index, tree_size, tuple(proof), root
            ), where


@pytest.mark.parametrize("new_sizes", SWEEP_BANDS, ids=SWEEP_BAND_IDS)
def test_consistency_proof_equals_the_reference_and_verifies(new_sizes):
    for new_size in new_sizes:
        leaves = SWEEP_LEAVES[:new_size]
        new_root = reference_mth(leaves)
        for old_size in sweep_positions(new_size, include_end=True):
            where = (old_size, new_size)
            proof = merkle.consistency_proof(leaves, old_size)
            assert proof == reference_proof(old_size, leaves), where
            old_root = reference_mth(leaves[:old_size])
            assert merkle.verify_consistency(old_size, new_size, old_root, new_root, proof), where


def test_proof_lengths_stay_within_the_verifier_limit_for_the_largest_tree():
    """The verifier reads at most PROOF_LENGTH_MAX elements; honest proofs for any tree size
    it accepts must fit (the reference shape only depends on the sizes)."""
    largest = merkle.TREE_SIZE_MAX
    assert len(reference_path_sides(largest - 1, largest)) <= merkle.PROOF_LENGTH_MAX
    assert len(reference_path_sides(0, largest)) <= merkle.PROOF_LENGTH_MAX


# --- Tampering ---------------------------------------------------------------------------------

TAMPER_SIZES = [*range(1, 18), 31, 32, 33, 100]


def flipped(hash_value: bytes, position: int) -> bytes:
    return hash_value[:position] + bytes([hash_value[position] ^ 0x01]) + hash_value[position + 1 :]


def tamper_indices(tree_size: int) -> list[int]:
    if tree_size <= 17:
        return list(range(tree_size))
    return sorted({0, 1, tree_size // 2, tree_size - 2, tree_size - 1})


@pytest.mark.parametrize("tree_size", TAMPER_SIZES)
def test_inclusion_fails_when_any_byte_of_any_proof_element_is_flipped(tree_size):
    leaves = SWEEP_LEAVES[:tree_size]
    root = merkle.root(leaves)
    for index in tamper_indices(tree_size):
        proof = merkle.inclusion_proof(leaves, index)
        for element_position, element in enumerate(proof):
            for byte_position in range(merkle.HASH_SIZE_BYTES):
                tampered = list(proof)
                tampered[element_position] = flipped(element, byte_position)
                assert not merkle.verify_inclusion(leaves[index], index, tree_size, tampered, root)


@pytest.mark.parametrize("tree_size", TAMPER_SIZES)
def test_inclusion_fails_when_an_element_is_dropped_or_added(tree_size):
    leaves = SWEEP_LEAVES[:tree_size]
    root = merkle.root(leaves)
    extra = hashlib.sha256(b"extra").digest()
    for index in tamper_indices(tree_size):
        proof = merkle.inclusion_proof(leaves, index)
        leaf = leaves[index]
        for position in range(len(proof)):
            dropped = proof[:position] + proof[position + 1 :]
            assert not merkle.verify_inclusion(leaf, index, tree_size, dropped, root)
        for position in range(len(proof) + 1):
            for added in (extra, root, *proof):
                longer = [*proof[:position], added, *proof[position:]]
                assert not merkle.verify_inclusion(leaf, index, tree_size, longer, root)


@pytest.mark.parametrize("tree_size", TAMPER_SIZES)
def test_inclusion_fails_for_a_wrong_index_root_or_leaf(tree_size):
    leaves = SWEEP_LEAVES[:tree_size]
    root = merkle.root(leaves)
    for index in tamper_indices(tree_size):
        proof = merkle.inclusion_proof(leaves, index)
        leaf = leaves[index]
        for wrong_index in range(tree_size + 2):
            if wrong_index != index:
                assert not merkle.verify_inclusion(leaf, wrong_index, tree_size, proof, root)
        for wrong_root in (merkle.EMPTY_ROOT, merkle.root(leaves[:-1]), flipped(root, 0)):
            assert not merkle.verify_inclusion(leaf, index, tree_size, proof, wrong_root)
        for wrong_leaf in (leaf + b"\x00", b"", leaves[index - 1], merkle.leaf_hash(leaf)):
            if wrong_leaf != leaf:
                assert not merkle.verify_inclusion(wrong_leaf, index, tree_size, proof, root)
        # A leaf hash is not a leaf, and a raw leaf is not a leaf hash.
        assert not merkle.verify_inclusion_hash(leaf, index, tree_size, proof, root)


@pytest.mark.parametrize("tree_size", TAMPER_SIZES)
def test_inclusion_with_a_wrong_tree_size_fails_unless_the_path_has_the_same_shape(tree_size):
    """The root does not commit to the tree size by itself: a size that gives the leaf the
    same path shape (same sibling sides) verifies too. RFC 9162 binds the size to the root
    in the signed tree head; callers must take both from the same signed header."""
    leaves = SWEEP_LEAVES[:tree_size]
    root = merkle.root(leaves)
    for index in tamper_indices(tree_size):
        proof = merkle.inclusion_proof(leaves, index)
        expected_sides = reference_path_sides(index, tree_size)
        for wrong_size in range(1, 2 * tree_size + 3):
            if wrong_size == tree_size:
                continue
            same_shape = index < wrong_size and (
                reference_path_sides(index, wrong_size) == expected_sides
            )
            verified = merkle.verify_inclusion(leaves[index], index, wrong_size, proof, root)
            assert verified == same_shape, (index, wrong_size)


def test_inclusion_with_a_wrong_tree_size_of_the_same_shape_verifies():
    """Pinned instance of the caveat above: leaf 0 of 3 has the same path shape as in 4."""
    leaves = SWEEP_LEAVES[:3]
    proof = merkle.inclusion_proof(leaves, 0)
    assert merkle.verify_inclusion(leaves[0], 0, 4, proof, merkle.root(leaves))


CONSISTENCY_TAMPER_SIZES = [*range(2, 18), 32, 33, 100]
WRONG_SIZE_TAMPER_SIZES = [*range(2, 18), 32, 33]


def consistency_cases(new_size: int) -> list[int]:
    if new_size <= 17:
        return list(range(1, new_size))
    return sorted({1, 2, new_size // 2, new_size - 2, new_size - 1})


@pytest.mark.parametrize("new_size", CONSISTENCY_TAMPER_SIZES)
def test_consistency_fails_when_any_byte_of_any_proof_element_is_flipped(new_size):
    leaves = SWEEP_LEAVES[:new_size]
    new_root = merkle.root(leaves)
    for old_size in consistency_cases(new_size):
        old_root = merkle.root(leaves[:old_size])
        proof = merkle.consistency_proof(leaves, old_size)
        for element_position, element in enumerate(proof):
            for byte_position in range(merkle.HASH_SIZE_BYTES):
                tampered = list(proof)
                tampered[element_position] = flipped(element, byte_position)
                assert not merkle.verify_consistency(
                    old_size, new_size, old_root, new_root, tampered
                )


@pytest.mark.parametrize("new_size", CONSISTENCY_TAMPER_SIZES)
def test_consistency_fails_when_an_element_is_dropped_or_added(new_size):
    leaves = SWEEP_LEAVES[:new_size]
    new_root = merkle.root(leaves)
    extra = hashlib.sha256(b"extra").digest()
    for old_size in consistency_cases(new_size):
        old_root = merkle.root(leaves[:old_size])
        proof = merkle.consistency_proof(leaves, old_size)
        for position in range(len(proof)):
            dropped = proof[:position] + proof[position + 1 :]
            assert not merkle.verify_consistency(old_size, new_size, old_root, new_root, dropped)
        for position in range(len(proof) + 1):
            for added in (extra, old_root, new_root, *proof):
                longer = [*proof[:position], added, *proof[position:]]
                assert not merkle.verify_consistency(old_size, new_size, old_root, new_root, longer)


@pytest.mark.parametrize("new_size", CONSISTENCY_TAMPER_SIZES)
def test_consistency_fails_for_wrong_or_swapped_roots(new_size):
    leaves = SWEEP_LEAVES[:new_size]
    new_root = merkle.root(leaves)
    for old_size in consistency_cases(new_size):
        old_root = merkle.root(leaves[:old_size])
        proof = merkle.consistency_proof(leaves, old_size)
        forked_old_root = merkle.root([b"forged", *leaves[1:old_size]])
        forked_new_root = merkle.root([*leaves[:-1], b"forged"])
        for wrong_old_root in (forked_old_root, flipped(old_root, 31), new_root):
            assert not merkle.verify_consistency(
                old_size, new_size, wrong_old_root, new_root, proof
            )
        for wrong_new_root in (forked_new_root, flipped(new_root, 0), old_root):
            assert not merkle.verify_consistency(
                old_size, new_size, old_root, wrong_new_root, proof
            )
        assert not merkle.verify_consistency(old_size, new_size, new_root, old_root, proof)


@pytest.mark.parametrize("new_size", WRONG_SIZE_TAMPER_SIZES)
def test_consistency_with_wrong_sizes_fails_whenever_the_proof_length_differs(new_size):
    """The verifier consumes exactly as many elements as the sizes dictate, so a proof
    presented with sizes whose honest proof has another length never verifies. (As for
    inclusion, sizes of the same shape may verify: sizes are bound by the signed header.)"""
    leaves = SWEEP_LEAVES[:new_size]
    new_root = merkle.root(leaves)
    for old_size in consistency_cases(new_size):
        old_root = merkle.root(leaves[:old_size])
        proof = merkle.consistency_proof(leaves, old_size)
        for wrong_old_size in range(0, new_size + 3):
            for wrong_new_size in range(max(wrong_old_size, 1), new_size + 3):
                if (wrong_old_size, wrong_new_size) == (old_size, new_size):
                    continue
                honest_shape = reference_proof(wrong_old_size, SWEEP_LEAVES[:wrong_new_size])
                if len(honest_shape) == len(proof):
                    continue
                assert not merkle.verify_consistency(
                    wrong_old_size, wrong_new_size, old_root, new_root, proof
                ), (wrong_old_size, wrong_new_size)


def test_consistency_edge_cases_are_defined_soundly():
    leaves = SWEEP_LEAVES[:5]
    five = merkle.root(leaves)
    some_hash = merkle.leaf_hash(b"x")
    # From the empty tree: trivial, with an empty proof and the empty root only.
    assert merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, five, [])
    assert merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, merkle.EMPTY_ROOT, [])
    assert not merkle.verify_consistency(0, 5, some_hash, five, [])
    assert not merkle.verify_consistency(0, 5, merkle.EMPTY_ROOT, five, [some_hash])
    assert not merkle.verify_consistency(0, 0, merkle.EMPTY_ROOT, some_hash, [])
    # Same size: an empty proof and equal roots.
    assert merkle.verify_consistency(5, 5, five, five, [])
    assert not merkle.verify_consistency(5, 5, five, some_hash, [])
    assert not merkle.verify_consistency(5, 5, five, five, [five])
    # Shrinking is never consistent, and a proper extension needs a non-empty proof.
    assert not merkle.verify_consistency(5, 4, five, merkle.root(leaves[:4]), [])
    assert not merkle.verify_consistency(4, 5, merkle.root(leaves[:4]), five, [])
    assert merkle.consistency_proof(leaves, 0) == []
    assert merkle.consistency_proof(leaves, 5) == []


def test_consistency_sizes_are_not_bound_by_the_roots_alone():
    """Pinned instance of the RFC 9162 caveat: the proof from 1 to 2 leaves also verifies as
    a proof from 2 to 3 leaves, because a root does not commit to its tree size. Callers
    must take sizes and roots from the same signed header."""
    leaves = SWEEP_LEAVES[:2]
    proof = merkle.consistency_proof(leaves, 1)
    old_root, new_root = merkle.root(leaves[:1]), merkle.root(leaves)
    assert merkle.verify_consistency(1, 2, old_root, new_root, proof)
    assert merkle.verify_consistency(2, 3, old_root, new_root, proof)


# --- Construction errors -----------------------------------------------------------------------


def test_inclusion_proof_rejects_an_index_out_of_range():
    leaves = SWEEP_LEAVES[:4]
    for index in (-1, 4, 5, 2**70):
        with pytest.raises(ValueError, match="out of range"):
            merkle.inclusion_proof(leaves, index)
    with pytest.raises(ValueError, match="out of range"):
        merkle.inclusion_proof([], 0)
    for index in (None, "0", 1.0, True):
        with pytest.raises(TypeError):
            merkle.inclusion_proof(leaves, index)


def test_consistency_proof_rejects_an_old_size_out_of_range():
    leaves = SWEEP_LEAVES[:4]
    for old_size in (-1, 5, 2**70):
        with pytest.raises(ValueError, match="out of range"):
            merkle.consistency_proof(leaves, old_size)
    for old_size in (None, "0", 1.0, False):
        with pytest.raises(TypeError):
            merkle.consistency_proof(leaves, old_size)


def test_construction_rejects_leaves_that_are_not_bytes():
    for leaves in ([b"a", "b"], [None], [b"a", 1]):
        with pytest.raises(TypeError, match="must be bytes"):
            merkle.root(leaves)
        with pytest.raises(TypeError, match="must be bytes"):
            merkle.inclusion_proof(leaves, 0)
        with pytest.raises(TypeError, match="must be bytes"):
            merkle.consistency_proof(leaves, 1)


def test_hash_helpers_reject_malformed_children():
    good = merkle.leaf_hash(b"")
    with pytest.raises(TypeError):
        merkle.leaf_hash("text")
    with pytest.raises(ValueError):
        merkle.node_hash(good, good[:31])
    with pytest.raises(TypeError):
        merkle.node_hash(None, good)
    with pytest.raises(ValueError):
        merkle.root_from_hashes([good, good + b"\x00"])
    with pytest.raises(TypeError):
        merkle.root_from_hashes([good, "x" * 32])


# --- Hostile inputs: verification answers False and never raises -----------------------------

HOSTILE_VALUES = [
    None,
    "text",
    "a" * 32,
    1.5,
    -1,
    2**63,
    2**70,
    -(2**70),
    True,
    b"",
    b"\x00" * 31,
    b"\x00" * 33,
    bytearray(32),
    memoryview(bytes(32)),
    [b"\x00" * 32],
    (None,),
    {"key": "value"},
    object(),
]

HOSTILE_PROOFS = [
    None,
    "text",
    bytes(32),
    bytes(64),
    [None],
    [1, 2],
    ["a" * 32],
    [bytes(31)],
    [bytes(33)],
    [bytearray(32)],
    [bytes(32)] * (merkle.PROOF_LENGTH_MAX + 1),
    [bytes(32)] * 10_000,
    iter([bytes(32)]),
    (proof_element for proof_element in [bytes(32)]),
    {bytes(32)},
    {bytes(32): bytes(32)},
    range(3),
]


class EvilBytes(bytes):
    """A bytes subclass that claims to equal anything."""

    def __eq__(self, other):
        return True

    __hash__ = bytes.__hash__


def valid_inclusion_arguments() -> dict:
    leaves = SWEEP_LEAVES[:7]
    return {
        "leaf": leaves[3],
        "index": 3,
        "tree_size": 7,
        "proof": merkle.inclusion_proof(leaves, 3),
        "root": merkle.root(leaves),
    }


def valid_consistency_arguments() -> dict:
    leaves = SWEEP_LEAVES[:7]
    return {
        "old_size": 3,
        "new_size": 7,
        "old_root": merkle.root(leaves[:3]),
        "new_root": merkle.root(leaves),
        "proof": merkle.consistency_proof(leaves, 3),
    }


@pytest.mark.parametrize("argument", ["leaf", "index", "tree_size", "proof", "root"])
def test_verify_inclusion_answers_false_to_any_hostile_argument(argument):
    arguments = valid_inclusion_arguments()
    assert merkle.verify_inclusion(**arguments) is True
    hostile_values = HOSTILE_PROOFS + HOSTILE_VALUES if argument == "proof" else HOSTILE_VALUES
    for hostile in [*hostile_values, EvilBytes(bytes(32))]:
        if argument == "leaf" and type(hostile) is bytes:
            continue  # Any bytes is a legitimate leaf; it just is not this one.
        assert merkle.verify_inclusion(**{**arguments, argument: hostile}) is False, hostile
        if argument != "leaf":
            hashed = {**arguments, "leaf_hash": merkle.leaf_hash(arguments["leaf"])}
            del hashed["leaf"]
            assert merkle.verify_inclusion_hash(**{**hashed, argument: hostile}) is False
    hashed = {**arguments, "leaf_hash": merkle.leaf_hash(arguments["leaf"])}
    del hashed["leaf"]
    for hostile in [*HOSTILE_VALUES, EvilBytes(merkle.leaf_hash(arguments["leaf"]))]:
        assert merkle.verify_inclusion_hash(**{**hashed, "leaf_hash": hostile}) is False


@pytest.mark.parametrize("argument", ["old_size", "new_size", "old_root", "new_root", "proof"])
def test_verify_consistency_answers_false_to_any_hostile_argument(argument):
    arguments = valid_consistency_arguments()
    assert merkle.verify_consistency(**arguments) is True
    hostile_values = HOSTILE_PROOFS + HOSTILE_VALUES if argument == "proof" else HOSTILE_VALUES
    for hostile in [*hostile_values, EvilBytes(bytes(32))]:
        assert merkle.verify_consistency(**{**arguments, argument: hostile}) is False, hostile


def test_verifiers_refuse_sizes_at_and_beyond_two_to_the_63():
    assert not merkle.verify_inclusion(b"x", 0, 2**63, [bytes(32)] * 63, bytes(32))
    assert not merkle.verify_inclusion(b"x", 2**63 - 1, 2**63 - 1, [bytes(32)] * 63, bytes(32))
    assert not merkle.verify_consistency(2**62, 2**63, bytes(32), bytes(32), [bytes(32)])
    assert not merkle.verify_consistency(2**62 + 1, 2**63 - 1, bytes(32), bytes(32), [bytes(32)])


def test_an_evil_bytes_root_cannot_force_a_match():
    arguments = valid_inclusion_arguments()
    assert not merkle.verify_inclusion(**{**arguments, "root": EvilBytes(bytes(32))})
    proof_of_evil = [EvilBytes(element) for element in arguments["proof"]]
    assert not merkle.verify_inclusion(**{**arguments, "proof": proof_of_evil})


# --- Property tests ----------------------------------------------------------------------------

leaf_lists = st.lists(st.binary(max_size=40), min_size=1, max_size=200)
junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.lists(st.one_of(st.binary(max_size=40), st.integers(), st.none()), max_size=70),
)


@settings(max_examples=150, deadline=None)
@given(leaves=st.lists(st.binary(max_size=40), max_size=200))
def test_property_root_equals_the_reference(leaves):
    assert merkle.root(leaves) == reference_mth(tuple(leaves))


@settings(max_examples=200, deadline=None)
@given(leaves=leaf_lists, data=st.data())
def test_property_inclusion_proof_round_trips(leaves, data):
    index = data.draw(st.integers(0, len(leaves) - 1), label="index")
    root = merkle.root(leaves)
    proof = merkle.inclusion_proof(leaves, index)
    assert proof == reference_path(index, tuple(leaves))
    assert merkle.verify_inclusion(leaves[index], index, len(leaves), proof, root)
    other_leaf = data.draw(st.binary(max_size=40), label="other_leaf")
    if other_leaf != leaves[index]:
        assert not merkle.verify_inclusion(other_leaf, index, len(leaves), proof, root)


@settings(max_examples=200, deadline=None)
@given(leaves=st.lists(st.binary(max_size=40), max_size=200), data=st.data())
def test_property_consistency_proof_round_trips(leaves, data):
    old_size = data.draw(st.integers(0, len(leaves)), label="old_size")
    proof = merkle.consistency_proof(leaves, old_size)
    assert proof == reference_proof(old_size, tuple(leaves))
    old_root, new_root = merkle.root(leaves[:old_size]), merkle.root(leaves)
    assert merkle.verify_consistency(old_size, len(leaves), old_root, new_root, proof)
    if 0 < old_size < len(leaves):
        forged = [b"forged" + leaves[0], *leaves[1:old_size]]
        forged_old_root = merkle.root(forged)
        assert not merkle.verify_consistency(
            old_size, len(leaves), forged_old_root, new_root, proof
        )


@settings(max_examples=150, deadline=None)
@given(leaf=junk, index=junk, tree_size=junk, proof=junk, root=junk)
def test_property_verify_inclusion_never_raises_on_junk(leaf, index, tree_size, proof, root):
    assert merkle.verify_inclusion(leaf, index, tree_size, proof, root) is False
    assert merkle.verify_inclusion_hash(leaf, index, tree_size, proof, root) is False


@settings(max_examples=150, deadline=None)
@given(
    old_size=junk | st.integers(0, 2**64),
    new_size=junk | st.integers(0, 2**64),
    old_root=junk | st.binary(min_size=32, max_size=32),
    new_root=junk | st.binary(min_size=32, max_size=32),
    proof=junk | st.lists(st.binary(min_size=32, max_size=32), max_size=70),
)
def test_property_verify_consistency_never_raises_on_junk(
    old_size, new_size, old_root, new_root, proof
):
    result = merkle.verify_consistency(old_size, new_size, old_root, new_root, proof)
    assert result is False or (old_size == new_size and old_root == new_root and proof == [])
