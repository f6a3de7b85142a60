"""Specification of the authenticated state: the compressed sparse Merkle tree in ledger.state.

The tree's roots are checked against `reference_root`, an independent and deliberately naive
computation of the published definition, written with hashlib alone.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Mapping
from functools import cache

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from ledger.state import (
    EMPTY_ROOT,
    PROOF_SIBLINGS_MAX,
    MemoryNodeStore,
    SparseMerkleTree,
    StateCorruptionError,
    StateProof,
    key_path,
    leaf_hash,
    node_hash,
    verify_state_proof,
)

# --- an independent reference ---------------------------------------------------------------


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def path_bits(path: bytes) -> str:
    return format(int.from_bytes(path, "big"), "0256b")


def reference_root(contents: Mapping[bytes, bytes]) -> bytes:
    """Return the state root of `contents` computed straight from the definition: a subtree
    is empty (32 zero bytes), a lone leaf, or the node over its two halves."""
    leaves = sorted(
        (path_bits(sha256(key)), sha256(key), sha256(value)) for key, value in contents.items()
    )

    def subtree(depth: int, leaves: list[tuple[str, bytes, bytes]]) -> bytes:
        if not leaves:
            return bytes(32)
        if len(leaves) == 1:
            _, path, hash_of_value = leaves[0]
            return sha256(b"\x00" + path + hash_of_value)
        left = [leaf for leaf in leaves if leaf[0][depth] == "0"]
        right = [leaf for leaf in leaves if leaf[0][depth] == "1"]
        return sha256(b"\x01" + subtree(depth + 1, left) + subtree(depth + 1, right))

    return subtree(0, leaves)


@cache
def keys_sharing_24_leading_path_bits() -> tuple[bytes, bytes]:
    """Find, by brute force over small integers, two keys whose paths share their first 3
    bytes, so that their leaves sit deep below a chain of single-child internal nodes."""
    seen: dict[bytes, bytes] = {}
    for number in range(1_000_000):
        key = b"key-%d" % number
        prefix = sha256(key)[:3]
        if prefix in seen:
            return seen[prefix], key
        seen[prefix] = key
    raise AssertionError("no pair found")


# --- helpers --------------------------------------------------------------------------------


def new_tree() -> tuple[MemoryNodeStore, SparseMerkleTree]:
    store = MemoryNodeStore()
    return store, SparseMerkleTree(store)


def apply(store: MemoryNodeStore, tree: SparseMerkleTree, root: bytes, changes: Mapping) -> bytes:
    update = tree.update(root, changes)
    store.put_nodes(update.new_nodes)
    return update.root


def tree_with(contents: Mapping[bytes, bytes]) -> tuple[MemoryNodeStore, SparseMerkleTree, bytes]:
    store, tree = new_tree()
    return store, tree, apply(store, tree, EMPTY_ROOT, contents)


def flip_byte(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def tampered_proofs(proof: StateProof, path: bytes) -> list[StateProof]:
    """Every structural tampering of `proof` that must fail for its key and value."""
    siblings = proof.siblings
    some_hash = sha256(b"some other hash")
    variants = [
        StateProof(siblings=(*siblings, some_hash), other_leaf=proof.other_leaf),
        StateProof(siblings=(*siblings, EMPTY_ROOT), other_leaf=proof.other_leaf),
        StateProof(siblings=(some_hash, *siblings), other_leaf=proof.other_leaf),
        StateProof(siblings=(EMPTY_ROOT, *siblings), other_leaf=proof.other_leaf),
        # Claiming that the key's own leaf is "another" leaf proves nothing.
        StateProof(siblings=siblings, other_leaf=(path, sha256(b"anything"))),
    ]
    if siblings:
        variants += [
            StateProof(siblings=siblings[1:], other_leaf=proof.other_leaf),
            StateProof(siblings=siblings[:-1], other_leaf=proof.other_leaf),
            StateProof(
                siblings=(flip_byte(siblings[0], 0), *siblings[1:]), other_leaf=proof.other_leaf
            ),
            StateProof(
                siblings=(*siblings[:-1], flip_byte(siblings[-1], 31)),
                other_leaf=proof.other_leaf,
            ),
        ]
    if proof.other_leaf is not None:
        other_path, other_value_hash = proof.other_leaf
        variants += [
            StateProof(siblings=siblings, other_leaf=None),
            StateProof(siblings=siblings, other_leaf=(other_path, flip_byte(other_value_hash, 0))),
            StateProof(siblings=siblings, other_leaf=(flip_byte(other_path, 31), other_value_hash)),
        ]
    return variants


def assert_proof_is_sound(root: bytes, key: bytes, value: bytes | None, proof: StateProof):
    """The honest claim verifies; every tampered claim or proof does not."""
    assert verify_state_proof(root, key, value, proof)
    assert not verify_state_proof(flip_byte(root, 0), key, value, proof)
    if value is None:
        assert not verify_state_proof(root, key, b"claimed present", proof)
    else:
        assert not verify_state_proof(root, key, None, proof)
        assert not verify_state_proof(root, key, value + b"!", proof)
    for tampered in tampered_proofs(proof, key_path(key)):
        assert not verify_state_proof(root, key, value, tampered), tampered


class CountingReader:
    """Wraps a node store and counts its reads."""

    def __init__(self, store: MemoryNodeStore) -> None:
        self.store = store
        self.reads = 0

    def get_node(self, node_hash: bytes) -> bytes | None:
        self.reads += 1
        return self.store.get_node(node_hash)


class RecordingReader:
    """Wraps a node store and records the hashes read."""

    def __init__(self, store: MemoryNodeStore) -> None:
        self.store = store
        self.read: set[bytes] = set()

    def get_node(self, node_hash: bytes) -> bytes | None:
        self.read.add(node_hash)
        return self.store.get_node(node_hash)


class ReplacingReader:
    """Wraps a node store and answers chosen hashes with chosen (corrupt) records."""

    def __init__(self, store: MemoryNodeStore, replacements: Mapping[bytes, bytes | None]):
        self.store = store
        self.replacements = replacements

    def get_node(self, node_hash: bytes) -> bytes | None:
        if node_hash in self.replacements:
            return self.replacements[node_hash]
        return self.store.get_node(node_hash)


# --- the published hashing ------------------------------------------------------------------


def test_hash_functions_follow_the_published_byte_layout():
    path, hash_of_value = sha256(b"key"), sha256(b"value")
    assert key_path(b"key") == path
    assert leaf_hash(path, hash_of_value) == sha256(b"\x00" + path + hash_of_value)
    assert node_hash(path, hash_of_value) == sha256(b"\x01" + path + hash_of_value)
    assert bytes(32) == EMPTY_ROOT


def test_empty_state_has_the_all_zero_root_and_proves_every_key_absent():
    _, tree = new_tree()
    assert tree.get(EMPTY_ROOT, b"anything") is None
    proof = tree.prove(EMPTY_ROOT, b"anything")
    assert proof == StateProof(siblings=())
    assert_proof_is_sound(EMPTY_ROOT, b"anything", None, proof)
    assert tree.update(EMPTY_ROOT, {}).root == EMPTY_ROOT


def test_single_key_state_root_is_that_keys_leaf_hash():
    _, tree, root = tree_with({b"act/1": b"adopted"})
    assert root == sha256(b"\x00" + sha256(b"act/1") + sha256(b"adopted"))
    assert tree.get(root, b"act/1") == b"adopted"
    assert tree.get(root, b"act/2") is None
    assert_proof_is_sound(root, b"act/1", b"adopted", tree.prove(root, b"act/1"))
    absent = tree.prove(root, b"act/2")
    assert absent == StateProof(siblings=(), other_leaf=(sha256(b"act/1"), sha256(b"adopted")))
    assert_proof_is_sound(root, b"act/2", None, absent)


def test_empty_value_is_present_and_distinct_from_absent():
    _, tree, root = tree_with({b"flag": b""})
    assert tree.get(root, b"flag") == b""
    assert_proof_is_sound(root, b"flag", b"", tree.prove(root, b"flag"))


def test_two_keys_sharing_a_long_prefix_hang_below_a_chain_of_single_child_nodes():
    first, second = keys_sharing_24_leading_path_bits()
    shared_bits = (
        256 - (int.from_bytes(sha256(first)) ^ int.from_bytes(sha256(second))).bit_length()
    )
    assert shared_bits >= 24
    _, tree, root = tree_with({first: b"1", second: b"2"})
    assert root == reference_root({first: b"1", second: b"2"})

    proof = tree.prove(root, first)
    second_leaf = sha256(b"\x00" + sha256(second) + sha256(b"2"))
    assert proof.siblings == (EMPTY_ROOT,) * shared_bits + (second_leaf,)
    assert proof.other_leaf is None
    assert_proof_is_sound(root, first, b"1", proof)
    assert_proof_is_sound(root, second, b"2", tree.prove(root, second))


def test_key_absent_below_a_deep_pair_proves_absence_by_the_empty_position_it_reaches():
    first, second = keys_sharing_24_leading_path_bits()
    _, tree, root = tree_with({first: b"1", second: b"2"})
    for number in range(1000):
        absent = b"absent-%d" % number
        proof = tree.prove(root, absent)
        assert tree.get(root, absent) is None
        assert proof.other_leaf is None  # the root is internal, so the walk ends empty...
        assert len(proof.siblings) == 1 or proof.siblings[-1] != EMPTY_ROOT  # ...canonically
        assert_proof_is_sound(root, absent, None, proof)


def test_deleting_every_key_returns_to_the_empty_root():
    first, second = keys_sharing_24_leading_path_bits()
    contents = {first: b"1", second: b"2", b"a": b"x", b"b": b"y", b"c": b"z"}
    store, tree, root = tree_with(contents)
    root = apply(store, tree, root, {first: None, b"a": None})
    assert root == reference_root({second: b"2", b"b": b"y", b"c": b"z"})
    root = apply(store, tree, root, {second: None, b"b": None, b"c": None})
    assert root == EMPTY_ROOT


def test_leaf_moves_up_unchanged_when_its_neighbour_is_deleted():
    first, second = keys_sharing_24_leading_path_bits()
    _, tree, root = tree_with({first: b"1", second: b"2"})
    update = tree.update(root, {first: None})
    second_leaf = sha256(b"\x00" + sha256(second) + sha256(b"2"))
    assert update.root == second_leaf
    assert update.new_nodes == {}  # the surviving leaf's record is already stored


def test_setting_a_key_to_its_current_value_changes_nothing():
    _, tree, root = tree_with({b"a": b"1", b"b": b"2", b"c": b"3"})
    update = tree.update(root, {b"a": b"1", b"c": b"3"})
    assert update.root == root
    assert update.new_nodes == {}


def test_deleting_an_absent_key_changes_nothing():
    _, tree, root = tree_with({b"a": b"1", b"b": b"2"})
    update = tree.update(root, {b"never-set": None, b"also-never-set": None})
    assert update.root == root
    assert update.new_nodes == {}
    assert tree.update(EMPTY_ROOT, {b"never-set": None}).root == EMPTY_ROOT


def test_update_writes_nothing_and_returns_the_nodes_the_new_root_needs():
    store, tree, root = tree_with({b"a": b"1", b"b": b"2"})
    records_before = len(store)
    update = tree.update(root, {b"c": b"3"})
    assert len(store) == records_before
    with pytest.raises(StateCorruptionError):
        tree.get(update.root, b"c")
    store.put_nodes(update.new_nodes)
    assert tree.get(update.root, b"c") == b"3"
    for hash_of_node, record in update.new_nodes.items():
        if record[0] == 0:
            assert hash_of_node == sha256(b"\x00" + record[1:33] + sha256(record[33:]))
        else:
            assert hash_of_node == sha256(record) and len(record) == 65


def test_earlier_roots_still_answer_get_and_prove_after_later_updates():
    store, tree, first_root = tree_with({b"act/1": b"draft", b"act/2": b"draft"})
    second_root = apply(store, tree, first_root, {b"act/1": b"adopted", b"act/3": b"draft"})
    third_root = apply(store, tree, second_root, {b"act/2": None, b"act/3": None})
    assert len({first_root, second_root, third_root}) == 3

    assert tree.get(first_root, b"act/1") == b"draft"
    assert tree.get(first_root, b"act/3") is None
    assert tree.get(second_root, b"act/3") == b"draft"
    assert tree.get(third_root, b"act/2") is None
    assert_proof_is_sound(first_root, b"act/1", b"draft", tree.prove(first_root, b"act/1"))
    assert_proof_is_sound(first_root, b"act/3", None, tree.prove(first_root, b"act/3"))
    assert_proof_is_sound(second_root, b"act/2", b"draft", tree.prove(second_root, b"act/2"))


def test_a_proof_for_one_root_does_not_verify_against_another():
    store, tree, old_root = tree_with({b"act/1": b"draft"})
    new_root = apply(store, tree, old_root, {b"act/1": b"adopted"})
    old_proof = tree.prove(old_root, b"act/1")
    assert verify_state_proof(old_root, b"act/1", b"draft", old_proof)
    assert not verify_state_proof(new_root, b"act/1", b"draft", old_proof)


def test_update_rejects_non_bytes_keys_values_and_malformed_roots():
    _, tree = new_tree()
    with pytest.raises(ValueError, match="key"):
        tree.update(EMPTY_ROOT, {"text key": b"1"})
    with pytest.raises(ValueError, match="value"):
        tree.update(EMPTY_ROOT, {b"key": 1})
    with pytest.raises(ValueError, match="root"):
        tree.update(b"short", {b"key": b"1"})
    with pytest.raises(ValueError, match="root"):
        tree.get(bytes(33), b"key")
    with pytest.raises(ValueError, match="key"):
        tree.prove(EMPTY_ROOT, "text key")


# --- corruption -----------------------------------------------------------------------------


def corrupted_records(record: bytes) -> dict[str, bytes | None]:
    return {
        "missing": None,
        "one bit flipped": flip_byte(record, len(record) - 1),
        "truncated": record[:-1],
        "unknown tag": b"\x02" + record[1:],
        "empty": b"",
        "tag only": record[:1],
    }


@pytest.mark.parametrize("corruption", sorted(corrupted_records(b"\x00" * 65)))
@pytest.mark.parametrize("target", ["root internal node", "leaf"])
def test_reading_a_corrupted_node_raises_state_corruption_error_naming_its_hash(
    corruption: str, target: str
):
    store, _, root = tree_with({b"a": b"1", b"b": b"2"})
    victim = root if target == "root internal node" else leaf_hash(key_path(b"a"), sha256(b"1"))
    bad_record = corrupted_records(store.get_node(victim))[corruption]
    damaged = SparseMerkleTree(ReplacingReader(store, {victim: bad_record}))
    operations = [
        lambda: damaged.get(root, b"a"),
        lambda: damaged.prove(root, b"a"),
        lambda: damaged.update(root, {b"a": b"changed"}),
    ]
    for operation in operations:
        with pytest.raises(StateCorruptionError) as raised:
            operation()
        assert raised.value.node_hash == victim
        assert victim.hex() in str(raised.value)


def test_reading_an_unknown_root_raises_state_corruption_error():
    _, tree = new_tree()
    unknown = sha256(b"never stored")
    with pytest.raises(StateCorruptionError, match="missing") as raised:
        tree.get(unknown, b"a")
    assert raised.value.node_hash == unknown


def test_reading_a_tree_that_breaks_the_compression_rule_raises():
    store, tree, _ = tree_with({b"a": b"1"})
    lone_leaf = leaf_hash(key_path(b"a"), sha256(b"1"))
    goes_right = key_path(b"a")[0] >= 0x80
    uncompressed = b"\x01" + (EMPTY_ROOT + lone_leaf if goes_right else lone_leaf + EMPTY_ROOT)
    both_empty = b"\x01" + EMPTY_ROOT + EMPTY_ROOT
    store.put_nodes({sha256(uncompressed): uncompressed, sha256(both_empty): both_empty})
    with pytest.raises(StateCorruptionError, match="compressed"):
        tree.get(sha256(uncompressed), b"a")
    with pytest.raises(StateCorruptionError, match="two empty children"):
        tree.get(sha256(both_empty), b"a")


def test_reading_a_leaf_placed_off_its_path_raises():
    left_key = next(b"%d" % n for n in range(100) if sha256(b"%d" % n)[0] < 0x80)
    right_key = next(b"%d" % n for n in range(100) if sha256(b"%d" % n)[0] >= 0x80)
    store, tree, _ = tree_with({left_key: b"l", right_key: b"r"})
    left_leaf = leaf_hash(key_path(left_key), sha256(b"l"))
    right_leaf = leaf_hash(key_path(right_key), sha256(b"r"))
    swapped = b"\x01" + right_leaf + left_leaf
    store.put_nodes({sha256(swapped): swapped})
    with pytest.raises(StateCorruptionError, match="off its path"):
        tree.get(sha256(swapped), left_key)
    with pytest.raises(StateCorruptionError, match="off its path"):
        tree.update(sha256(swapped), {left_key: b"new"})


# --- random operations against a dict model --------------------------------------------------

KEY_POOL = [b"key-%d" % number for number in range(14)] + list(keys_sharing_24_leading_path_bits())
pool_keys = st.sampled_from(KEY_POOL)
values = st.binary(max_size=3)


class StateAgainstDictModel(RuleBasedStateMachine):
    """Random puts, deletes and batches; the tree must always agree with a plain dict."""

    def __init__(self) -> None:
        super().__init__()
        self.store, self.tree = new_tree()
        self.root = EMPTY_ROOT
        self.model: dict[bytes, bytes] = {}
        self.history: list[tuple[bytes, dict[bytes, bytes]]] = [(EMPTY_ROOT, {})]

    def apply_changes(self, changes: dict[bytes, bytes | None]) -> None:
        expected = dict(self.model)
        for key, value in changes.items():
            if value is None:
                expected.pop(key, None)
            else:
                expected[key] = value
        update = self.tree.update(self.root, changes)
        if expected == self.model:
            assert update.root == self.root
            assert update.new_nodes == {}
        for hash_of_node, record in update.new_nodes.items():
            if record[0] == 0:
                assert hash_of_node == sha256(b"\x00" + record[1:33] + sha256(record[33:]))
            else:
                assert hash_of_node == sha256(record)
        self.store.put_nodes(update.new_nodes)
        self.root, self.model = update.root, expected
        self.history.append((self.root, dict(self.model)))

    @rule(key=pool_keys, value=values)
    def put(self, key: bytes, value: bytes) -> None:
        self.apply_changes({key: value})

    @rule(key=pool_keys)
    def delete(self, key: bytes) -> None:
        self.apply_changes({key: None})

    @rule(changes=st.dictionaries(pool_keys, st.none() | values, max_size=10))
    def apply_batch(self, changes: dict[bytes, bytes | None]) -> None:
        self.apply_changes(changes)

    @rule(key=pool_keys | st.binary(max_size=4))
    def tampered_proofs_fail(self, key: bytes) -> None:
        assert_proof_is_sound(self.root, key, self.model.get(key), self.tree.prove(self.root, key))

    @rule(data=st.data(), key=pool_keys)
    def earlier_roots_still_answer(self, data: st.DataObject, key: bytes) -> None:
        old_root, old_model = data.draw(st.sampled_from(self.history))
        assert self.tree.get(old_root, key) == old_model.get(key)
        proof = self.tree.prove(old_root, key)
        assert verify_state_proof(old_root, key, old_model.get(key), proof)

    @invariant()
    def root_matches_the_reference_definition(self) -> None:
        assert self.root == reference_root(self.model)

    @invariant()
    def every_key_reads_and_proves_as_in_the_model(self) -> None:
        for key in KEY_POOL:
            value = self.model.get(key)
            assert self.tree.get(self.root, key) == value
            assert verify_state_proof(self.root, key, value, self.tree.prove(self.root, key))


StateAgainstDictModel.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
TestStateAgainstDictModel = StateAgainstDictModel.TestCase


# --- order independence ---------------------------------------------------------------------

operations = st.lists(st.tuples(pool_keys, st.none() | values), max_size=40)


@settings(max_examples=80, deadline=None)
@given(operations=operations, data=st.data())
def test_root_depends_only_on_contents_not_on_operation_order_or_batching(
    operations: list[tuple[bytes, bytes | None]], data: st.DataObject
):
    final: dict[bytes, bytes] = {}
    for key, value in operations:
        if value is None:
            final.pop(key, None)
        else:
            final[key] = value

    store, tree = new_tree()
    one_at_a_time = EMPTY_ROOT
    for key, value in operations:
        one_at_a_time = apply(store, tree, one_at_a_time, {key: value})

    # Consecutive operations grouped into batches: within a batch the last write wins,
    # exactly as it would one at a time.
    cuts = sorted(data.draw(st.sets(st.integers(0, len(operations)), max_size=6)))
    batched = EMPTY_ROOT
    for start, end in zip([0, *cuts], [*cuts, len(operations)], strict=True):
        batched = apply(store, tree, batched, dict(operations[start:end]))

    shuffled = data.draw(st.permutations(sorted(final.items())))
    in_one_batch = apply(store, tree, EMPTY_ROOT, dict(shuffled))

    detour = apply(store, tree, EMPTY_ROOT, {b"detour-%d" % n: b"x" for n in range(5)})
    detour = apply(store, tree, detour, dict(shuffled))
    detour = apply(store, tree, detour, {b"detour-%d" % n: None for n in range(5)})

    expected = reference_root(final)
    assert one_at_a_time == batched == in_one_batch == detour == expected


# --- hostile input --------------------------------------------------------------------------

hashes = st.binary(min_size=32, max_size=32)
garbage = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.text(max_size=4),
    st.binary(max_size=40),
    st.lists(st.binary(max_size=33), max_size=3),
    st.tuples(st.binary(max_size=33), st.binary(max_size=33)),
    st.tuples(hashes, st.integers()),
    st.dictionaries(st.text(max_size=3), st.binary(max_size=3), max_size=2),
)


def unchecked_proof(siblings: object, other_leaf: object) -> StateProof:
    """A StateProof whose fields skipped validation, as a hostile caller could build."""
    proof = object.__new__(StateProof)
    object.__setattr__(proof, "siblings", siblings)
    object.__setattr__(proof, "other_leaf", other_leaf)
    return proof


@settings(max_examples=300)
@given(
    root=garbage | hashes | st.just(EMPTY_ROOT),
    key=garbage,
    value=garbage,
    siblings=garbage | st.lists(hashes | st.just(EMPTY_ROOT), max_size=4).map(tuple),
    other_leaf=garbage | st.tuples(hashes, hashes),
    proof_is_garbage=st.booleans(),
)
def test_verify_state_proof_never_raises_on_garbage(
    root, key, value, siblings, other_leaf, proof_is_garbage
):
    proof = siblings if proof_is_garbage else unchecked_proof(siblings, other_leaf)
    assert verify_state_proof(root, key, value, proof) in (True, False)


def test_verify_state_proof_rejects_hostile_proofs_of_a_real_state():
    _, tree, root = tree_with({b"a": b"1", b"b": b"2", b"c": b"3"})
    proof = tree.prove(root, b"a")
    path = key_path(b"a")
    hostile = [
        unchecked_proof(list(proof.siblings), None),
        unchecked_proof((*proof.siblings, *[EMPTY_ROOT] * PROOF_SIBLINGS_MAX), None),
        unchecked_proof((*proof.siblings[:-1], proof.siblings[-1][:31]), None),
        unchecked_proof(proof.siblings, (path,)),
        unchecked_proof(proof.siblings, [path, sha256(b"1")]),
        unchecked_proof(proof.siblings, (path, sha256(b"1"))),
        unchecked_proof(proof.siblings, "other"),
    ]
    for bad_proof in hostile:
        assert verify_state_proof(root, b"a", b"1", bad_proof) is False
        assert verify_state_proof(root, b"a", None, bad_proof) is False
    assert verify_state_proof(bytearray(root), b"a", b"1", proof) is False
    assert verify_state_proof(root, "a", b"1", proof) is False
    assert verify_state_proof(root, b"a", "1", proof) is False
    assert verify_state_proof(root, b"a", b"1", proof.to_canonical()) is False


def first_key_going(direction: int, skip: int = 0) -> bytes:
    """A key whose path takes `direction` (0 left, 1 right) at the root; `skip` picks a later
    one."""
    keys = (b"k%d" % n for n in range(1000) if sha256(b"k%d" % n)[0] >> 7 == direction)
    return next(itertools.islice(keys, skip, None))


def test_non_membership_proof_whose_other_leaf_is_off_the_path_fails():
    # Hand-built roots whose hashes fold correctly: only the prefix rule can reject the proof.
    other_leaf = (key_path(first_key_going(1)), sha256(b"v"))
    sibling = sha256(b"some subtree")
    proof = StateProof(siblings=(sibling,), other_leaf=other_leaf)
    leaf_on_the_left = node_hash(leaf_hash(*other_leaf), sibling)
    assert not verify_state_proof(leaf_on_the_left, first_key_going(0), None, proof)
    leaf_on_the_right = node_hash(sibling, leaf_hash(*other_leaf))
    assert verify_state_proof(leaf_on_the_right, first_key_going(1, skip=1), None, proof)
    assert not verify_state_proof(leaf_on_the_right, first_key_going(0), None, proof)


def test_proof_ending_beside_an_empty_sibling_is_not_canonical_and_fails():
    # A lone leaf beside an empty subtree must be compressed into its parent's position.
    key = first_key_going(0)
    uncompressed_root = node_hash(leaf_hash(key_path(key), sha256(b"v")), EMPTY_ROOT)
    proof = StateProof(siblings=(EMPTY_ROOT,))
    assert not verify_state_proof(uncompressed_root, key, b"v", proof)
    empty_beside_empty = node_hash(EMPTY_ROOT, EMPTY_ROOT)
    assert not verify_state_proof(empty_beside_empty, key, None, proof)


# --- canonical form -------------------------------------------------------------------------


def test_proofs_round_trip_through_their_canonical_msgpack_form():
    first, second = keys_sharing_24_leading_path_bits()
    _, tree, root = tree_with({first: b"1", second: b"2", b"a": b"3"})
    for key in (first, second, b"a", b"absent", b"also absent"):
        proof = tree.prove(root, key)
        canonical = proof.to_canonical()
        assert all(isinstance(field, str) for field in canonical)
        decoded = msgpack.unpackb(msgpack.packb(canonical, use_bin_type=True), raw=False)
        assert StateProof.from_canonical(decoded) == proof


def valid_canonical() -> dict:
    return {"siblings": [bytes(32), b"\x01" * 32], "other_key_path": None, "other_value_hash": None}


BAD_CANONICAL_PROOFS = {
    "not a map": [],
    "none": None,
    "bytes": b"\x00" * 32,
    "missing siblings": {"other_key_path": None, "other_value_hash": None},
    "extra key": {**valid_canonical(), "depth": 3},
    "non-str key": {**valid_canonical(), 1: None},
    "siblings not a list": {**valid_canonical(), "siblings": b"\x00" * 32},
    "siblings a map": {**valid_canonical(), "siblings": {"a": bytes(32)}},
    "short sibling": {**valid_canonical(), "siblings": [bytes(31)]},
    "long sibling": {**valid_canonical(), "siblings": [bytes(33)]},
    "str sibling": {**valid_canonical(), "siblings": ["0" * 32]},
    "none sibling": {**valid_canonical(), "siblings": [None]},
    "too many siblings": {**valid_canonical(), "siblings": [bytes(32)] * 257},
    "other path without value hash": {**valid_canonical(), "other_key_path": bytes(32)},
    "other value hash without path": {**valid_canonical(), "other_value_hash": bytes(32)},
    "short other path": {
        **valid_canonical(),
        "other_key_path": bytes(31),
        "other_value_hash": bytes(32),
    },
    "str other value hash": {
        **valid_canonical(),
        "other_key_path": bytes(32),
        "other_value_hash": "x" * 32,
    },
}


@pytest.mark.parametrize("name", sorted(BAD_CANONICAL_PROOFS))
def test_from_canonical_rejects_malformed_proofs_with_value_error(name: str):
    with pytest.raises(ValueError):
        StateProof.from_canonical(BAD_CANONICAL_PROOFS[name])


def test_from_canonical_accepts_the_limit_of_256_siblings():
    proof = StateProof.from_canonical({**valid_canonical(), "siblings": [b"\x01" * 32] * 256})
    assert len(proof.siblings) == PROOF_SIBLINGS_MAX


def test_state_proof_constructor_rejects_malformed_fields():
    with pytest.raises(ValueError):
        StateProof(siblings=[bytes(32)])
    with pytest.raises(ValueError):
        StateProof(siblings=(bytes(32),) * 257)
    with pytest.raises(ValueError):
        StateProof(siblings=(), other_leaf=(bytes(32),))


# --- scale ----------------------------------------------------------------------------------


def test_single_key_updates_in_a_large_tree_touch_logarithmically_many_nodes():
    key_count = 10_000
    contents = {b"act/%d" % number: b"status-%d" % number for number in range(key_count)}
    store, _, root = tree_with(contents)
    assert root == reference_root(contents)
    counting = CountingReader(store)
    tree = SparseMerkleTree(counting)
    nodes_max = 2 * math.log2(key_count) + 8

    single_changes = [
        {b"act/17": b"repealed"},
        {b"act/new": b"draft"},
        {b"act/4242": None},
    ]
    for changes in single_changes:
        counting.reads = 0
        update = tree.update(root, changes)
        assert len(update.new_nodes) <= nodes_max, changes
        assert counting.reads <= nodes_max, changes
    for key in (b"act/17", b"act/absent"):
        counting.reads = 0
        tree.prove(root, key)
        tree.get(root, key)
        assert counting.reads <= 2 * nodes_max

    batch = {b"act/%d" % number: b"archived" for number in range(0, key_count, 100)}
    counting.reads = 0
    update = tree.update(root, batch)
    assert counting.reads <= len(batch) * nodes_max
    assert len(update.new_nodes) <= len(batch) * nodes_max


# --- remembered nodes -------------------------------------------------------------------------


def test_a_tree_that_remembers_nodes_gives_the_same_roots_and_reads_its_own_nodes_from_memory():
    """Block after block, a tree keeping the nodes it made gives the roots and proofs of the
    naive reference and reads none of the last update's back (a small memory forgets some:
    same roots); a node read from the store is still checked, ``leaves`` reads the store."""
    store = MemoryNodeStore()
    counting = RecordingReader(store)
    remembering = SparseMerkleTree(counting, nodes_remembered_max=10_000)
    small = SparseMerkleTree(store, nodes_remembered_max=16)
    plain = SparseMerkleTree(store)
    contents: dict[bytes, bytes] = {}
    root = EMPTY_ROOT
    last_made: dict[bytes, bytes] = {}
    for block in range(12):
        changes: dict[bytes, bytes | None] = {b"act/%d/%d" % (block, n): b"v" for n in range(9)}
        if block:
            changes[b"act/%d/0" % (block - 1)] = None
            changes[b"act/%d/1" % (block - 1)] = b"withdrawn"
        counting.read.clear()
        update = remembering.update(root, changes)
        assert not counting.read & last_made.keys(), "the last update's nodes are in memory"
        last_made = update.new_nodes
        assert update == plain.update(root, changes) == small.update(root, changes)
        store.put_nodes(update.new_nodes)
        remembering.remember(update.new_nodes)
        small.remember(update.new_nodes)
        for key, value in changes.items():
            if value is None:
                contents.pop(key, None)
            else:
                contents[key] = value
        root = update.root
        assert root == reference_root(contents)
        for key in (b"act/%d/3" % block, b"act/absent"):
            assert remembering.prove(root, key) == plain.prove(root, key) == small.prove(root, key)
            assert remembering.get(root, key) == plain.get(root, key) == small.get(root, key)
    counting.read.clear()
    assert dict(remembering.leaves(root)) == dict(plain.leaves(root))
    assert len(counting.read) >= len(contents), "an integrity walk reads the store's nodes"
    record = store._records[root]
    damaged = SparseMerkleTree(
        ReplacingReader(store, {root: record[:-1] + bytes([record[-1] ^ 1])}),
        nodes_remembered_max=64,
    )
    with pytest.raises(StateCorruptionError):
        damaged.get(root, b"act/0/3")


def test_a_tree_without_memory_keeps_nothing():
    store, tree = new_tree()
    update = tree.update(EMPTY_ROOT, {b"a": b"1", b"b": b"2"})
    tree.remember(update.new_nodes)
    store.put_nodes(update.new_nodes)
    tree.get(update.root, b"a")
    assert tree._recent == {} and tree._older == {} and tree._made == ()
