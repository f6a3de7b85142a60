"""The log of every act (ledger.tlog): stored complete subtrees give the same roots and proofs as
ledger.merkle's from the full leaf list, for every size and split; tile paths as tlog-tiles says."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import merkle, tlog


def _leaves(count: int) -> list[bytes]:
    return [b"act %d" % i for i in range(count)]


def _stored(leaves: list[bytes], chunks: list[int]) -> tuple[tlog.LogFrontier, dict]:
    """Append ``leaves`` in blocks of the given sizes, keeping every created hash."""
    frontier, nodes, position = tlog.EMPTY_FRONTIER, {}, 0
    for size in [*chunks, len(leaves)]:
        block = leaves[position : position + size]
        position += len(block)
        frontier, created = tlog.append(frontier, block)
        assert not created.keys() & nodes.keys(), "a subtree hash is written once"
        nodes.update(created)
        if position >= len(leaves):
            break
    return frontier, nodes


@pytest.mark.parametrize("size", range(0, 70))
def test_roots_and_proofs_match_the_reference_for_every_size(size: int) -> None:
    leaves = _leaves(size)
    frontier, nodes = _stored(leaves, [3, 1, 7])
    read = lambda level, index: nodes[(level, index)]  # noqa: E731
    assert frontier.size == size
    assert frontier.root == merkle.root(leaves)
    assert tlog.frontier_at(size, read) == frontier
    for old in range(0, size + 1):
        assert tlog.root_of(old, read) == merkle.root(leaves[:old])
        assert tlog.consistency_proof(old, size, read) == merkle.consistency_proof(leaves, old)
    for index in range(size):
        proof = tlog.inclusion_proof(index, size, read)
        assert proof == merkle.inclusion_proof(leaves, index)
        assert merkle.verify_inclusion(leaves[index], index, size, proof, frontier.root)


@given(st.lists(st.integers(min_value=0, max_value=40), max_size=8))
def test_the_frontier_does_not_depend_on_how_leaves_are_split_into_blocks(
    chunks: list[int],
) -> None:
    leaves = _leaves(sum(chunks))
    frontier = tlog.EMPTY_FRONTIER
    position = 0
    for size in chunks:
        frontier = frontier.extended(
            merkle.leaf_hash(leaf) for leaf in leaves[position : position + size]
        )
        position += size
    assert frontier == _stored(leaves, [])[0]


def test_consistency_between_two_stored_sizes_verifies() -> None:
    leaves = _leaves(1000)
    _, nodes = _stored(leaves, [17, 250, 3])
    read = lambda level, index: nodes[(level, index)]  # noqa: E731
    for old, new in ((1, 1000), (256, 257), (511, 999), (999, 1000), (300, 300)):
        proof = tlog.consistency_proof(old, new, read)
        assert merkle.verify_consistency(
            old, new, tlog.root_of(old, read), tlog.root_of(new, read), proof
        )


@pytest.mark.parametrize(
    ("level", "index", "width", "path"),
    [
        (0, 0, 256, "tile/0/000"),
        (0, 1234067, 256, "tile/0/x001/x234/067"),
        (1, 5, 17, "tile/1/005.p/17"),
        (None, 1234067, 112, "tile/entries/x001/x234/067.p/112"),
        (None, 0, 256, "tile/entries/000"),
    ],
)
def test_tile_paths_are_the_specs(level: int | None, index: int, width: int, path: str) -> None:
    assert tlog.tile_path(level, index, width) == path
    assert tlog.parse_tile_path(path) == (level, index, width)


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/1234",
        "tile/0/x1/234",
        "tile/0/001/234",
        "tile/0/x000/234",
        "tile/01/000",
        "tile/64/000",
        "tile/0/000.p/256",
        "tile/0/000.p/0",
        "tile/0/000.p/017",
        "tile/x/000",
        "tiles/0/000",
        "tile/0",
    ],
)
def test_malformed_tile_paths_are_refused(path: str) -> None:
    with pytest.raises(tlog.TilePathError):
        tlog.parse_tile_path(path)


def test_entry_bundles_round_trip_and_refuse_truncation() -> None:
    entries = [b"", b"x" * 300, b"deliberation"]
    bundle = tlog.entries_bundle(entries)
    assert tlog.parse_entries_bundle(bundle) == entries
    for cut in (1, 3, len(bundle) - 1):
        with pytest.raises(ValueError, match="truncated"):
            tlog.parse_entries_bundle(bundle[:cut])
    with pytest.raises(ValueError, match="more than 2"):
        tlog.parse_entries_bundle(bundle, count_max=2)
