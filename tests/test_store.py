"""Specification of the chain store (ledger.store): create and open, append, read back, refuse,
and report corruption.

Chains are built with ledger.devchain, which signs real transactions and real commit
certificates with the keys of a whole consortium. Corruption is written straight into LevelDB
with plyvel, under the key layouts of ledger.schema, while the store is closed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import plyvel
import pytest

from ledger import encoding, merkle, schema, witness
from ledger.devchain import LocalConsortium
from ledger.model import Block, BlockHeader, CommitCertificate, Transaction
from ledger.state import EMPTY_ROOT, MemoryNodeStore, SparseMerkleTree, verify_state_proof
from ledger.store import (
    ChainStore,
    CorruptionError,
    RolledBackError,
    StoreError,
    Tip,
)
from ledger.witness import Witness

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
START_MS = 1_790_000_000_000
INITIAL_STATE = {
    b"membership/member/metropole-valbrune": b"founding member",
    b"membership/member/ville-valbrune": b"founding member",
}

StateWrites = Mapping[bytes, bytes | None]


@pytest.fixture(scope="module")
def consortium() -> LocalConsortium:
    return LocalConsortium.create(MEMBERS, seed=b"test_store")


def anchor(consortium: LocalConsortium, nonce: int, *, signer: int = 0) -> Transaction:
    """A signed transaction anchoring the digest of a document numbered ``nonce``."""
    reference = f"2026-DEL-{nonce:04d}"
    return Transaction.create(
        consortium.keys[MEMBERS[signer % len(MEMBERS)][0]],
        chain_id=consortium.chain_id,
        contract="deeds",
        action="anchor",
        args={"reference": reference, "digest": hashlib.sha256(reference.encode()).digest()},
        nonce=nonce,
        expiry_height=1_000,
    )


def act_key(nonce: int) -> bytes:
    return b"deeds/act/%04d" % nonce


def timestamp_ms(height: int) -> int:
    return START_MS + 60_000 * height


def raw_contents(path: Path) -> dict[bytes, bytes]:
    """Every key and value of the closed chain database at ``path``."""
    database = plyvel.DB(str(path))
    try:
        return dict(database.iterator())
    finally:
        database.close()


def rebuilt_header(header: BlockHeader, **changes: object) -> BlockHeader:
    """``header`` with fields changed, built anew so that its hash is computed afresh."""
    return BlockHeader.from_canonical({**header.to_canonical(), **changes})


def rebuilt_certificate(certificate: CommitCertificate, **changes: object) -> CommitCertificate:
    return CommitCertificate.from_canonical({**certificate.to_canonical(), **changes})


@dataclass
class Chain:
    """A chain database on disk and the store currently open on it."""

    consortium: LocalConsortium
    path: Path
    store: ChainStore

    def append(self, transactions: list[Transaction], writes: StateWrites) -> Block:
        height = self.store.height + 1
        block, _ = self.consortium.append(
            self.store, transactions, writes, timestamp_ms=timestamp_ms(height)
        )
        return block

    def build(self, transactions: list[Transaction], writes: StateWrites) -> Block:
        """The next block, built but not appended."""
        height = self.store.height + 1
        return self.consortium.build_block(
            self.store, transactions, writes, timestamp_ms=timestamp_ms(height)
        )

    def reopen(self) -> ChainStore:
        self.store.close()
        self.store = ChainStore.open(self.path)
        return self.store

    def raw_contents(self) -> dict[bytes, bytes]:
        """Every record on disk (closes and reopens the store to read them)."""
        self.store.close()
        contents = raw_contents(self.path)
        self.store = ChainStore.open(self.path)
        return contents


@pytest.fixture
def chain(consortium: LocalConsortium, tmp_path: Path):
    path = tmp_path / "chain"
    chain = Chain(consortium, path, ChainStore.create(path, consortium.genesis, INITIAL_STATE))
    yield chain
    chain.store.close()


@pytest.fixture
def two_blocks(chain: Chain) -> Chain:
    """A chain of two blocks: acts 1-3, then acts 4-5 with one act revoked (deleted)."""
    chain.append(
        [anchor(chain.consortium, nonce, signer=nonce) for nonce in (1, 2, 3)],
        {act_key(nonce): b"in_force" for nonce in (1, 2, 3)},
    )
    chain.append(
        [anchor(chain.consortium, nonce, signer=nonce) for nonce in (4, 5)],
        {act_key(4): b"in_force", act_key(5): b"in_force", act_key(2): None},
    )
    return chain


# --- create and open --------------------------------------------------------------------------


def test_create_makes_a_chain_in_an_empty_directory(consortium, tmp_path):
    (tmp_path / "empty").mkdir()
    with ChainStore.create(tmp_path / "empty", consortium.genesis) as store:
        assert store.tip == Tip(0, consortium.chain_id, EMPTY_ROOT)
    with ChainStore.create(tmp_path / "not-yet-there", consortium.genesis) as store:
        assert store.height == 0


def test_create_refuses_a_directory_that_is_not_empty(consortium, tmp_path):
    (tmp_path / "chain").mkdir()
    (tmp_path / "chain" / "notes.txt").write_text("somebody else's file")
    with pytest.raises(StoreError, match="is not empty"):
        ChainStore.create(tmp_path / "chain", consortium.genesis)
    assert sorted(path.name for path in (tmp_path / "chain").iterdir()) == ["notes.txt"]


def test_create_refuses_an_existing_chain(chain):
    chain.store.close()
    with pytest.raises(StoreError, match="is not empty"):
        ChainStore.create(chain.path, chain.consortium.genesis)
    chain.store = ChainStore.open(chain.path)


def test_open_without_a_database_is_a_store_error(tmp_path):
    with pytest.raises(StoreError, match="no chain database"):
        ChainStore.open(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreError, match="no chain database"):
        ChainStore.open(tmp_path / "empty")


def test_open_of_an_interrupted_creation_says_so(tmp_path):
    # What a crash between LevelDB's creation and the first batch of create() leaves.
    plyvel.DB(str(tmp_path / "chain"), create_if_missing=True).close()
    with pytest.raises(StoreError, match="creation did not complete"):
        ChainStore.open(tmp_path / "chain")


def test_genesis_and_tip_read_back_after_reopening(two_blocks):
    tip = two_blocks.store.tip
    store = two_blocks.reopen()
    assert store.genesis == two_blocks.consortium.genesis
    assert store.chain_id == two_blocks.consortium.chain_id
    assert store.tip == tip
    assert tip.height == 2
    assert tip.block_hash == store.block(2).block_hash


def test_initial_state_is_the_state_at_height_0(chain):
    store = chain.reopen()
    expected_root = SparseMerkleTree(MemoryNodeStore()).update(EMPTY_ROOT, INITIAL_STATE).root
    assert store.height == 0
    assert store.tip.state_root == expected_root
    assert dict(store.state_items(b"membership/")) == INITIAL_STATE
    for key, value in INITIAL_STATE.items():
        assert store.state_get(key) == value
        assert verify_state_proof(expected_root, key, value, store.state_prove(key))
    absent = b"membership/member/syndicat-eaux-valbrunois"
    assert store.state_get(absent) is None
    assert verify_state_proof(expected_root, absent, None, store.state_prove(absent))


def test_opening_an_open_chain_again_is_a_clear_store_error(chain):
    with pytest.raises(StoreError, match="already open") as raised:
        ChainStore.open(chain.path)
    assert not isinstance(raised.value, plyvel.Error)
    assert chain.store.height == 0  # the first store is unharmed


# --- append and read back ---------------------------------------------------------------------


def test_appended_blocks_read_back_by_height_and_by_hash(two_blocks):
    chain = two_blocks
    blocks = [chain.store.block(1), chain.store.block(2)]
    store = chain.reopen()
    assert [store.block(1), store.block(2)] == blocks
    assert list(store.blocks()) == blocks
    assert blocks[1].header.prev_hash == blocks[0].block_hash
    assert blocks[0].header.prev_hash == chain.consortium.chain_id
    for block in blocks:
        assert store.block_by_hash(block.block_hash) == block
        certificate = store.certificate(block.height)
        assert certificate.block_hash == block.block_hash
        certificate.verify(store.chain_id, store.genesis.members)
    assert store.block(3) is None
    assert store.certificate(3) is None
    assert store.block_by_hash(hashlib.sha256(b"no such block").digest()) is None


def test_transactions_are_found_by_tx_id(two_blocks):
    store = two_blocks.reopen()
    for height in (1, 2):
        for position, transaction in enumerate(store.block(height).transactions):
            assert store.transaction_location(transaction.tx_id) == (height, position)
            assert store.transaction(transaction.tx_id) == (transaction, height, position)
            assert transaction.signature_is_valid()
    stranger = anchor(two_blocks.consortium, 99)
    assert store.transaction_location(stranger.tx_id) is None
    assert store.transaction(stranger.tx_id) is None


def test_state_writes_put_and_delete_at_the_tip(two_blocks):
    store = two_blocks.reopen()
    assert store.state_get(act_key(1)) == b"in_force"
    assert store.state_get(act_key(2)) is None
    assert dict(store.state_items(b"deeds/act/")) == {
        act_key(nonce): b"in_force" for nonce in (1, 3, 4, 5)
    }
    assert [key for key, _ in store.state_items(b"deeds/")] == sorted(
        act_key(nonce) for nonce in (1, 3, 4, 5)
    )
    assert dict(store.state_items(b"membership/")) == INITIAL_STATE


def test_state_proofs_verify_against_the_header_state_root(two_blocks):
    store = two_blocks.reopen()
    state_root = store.block(2).header.state_root
    assert state_root == store.tip.state_root
    for key in [act_key(1), act_key(4), *INITIAL_STATE]:
        value = store.state_get(key)
        assert verify_state_proof(state_root, key, value, store.state_prove(key))
        assert not verify_state_proof(state_root, key, b"revoked", store.state_prove(key))
    deleted = act_key(2)
    assert verify_state_proof(state_root, deleted, None, store.state_prove(deleted))
    assert not verify_state_proof(state_root, deleted, b"in_force", store.state_prove(deleted))


def test_earlier_states_stay_readable_by_their_root(two_blocks):
    store = two_blocks.reopen()
    first_root = store.block(1).header.state_root
    assert store.state_get_at(act_key(2), first_root) == b"in_force"
    assert store.state_get_at(act_key(4), first_root) is None
    proof = store.state_prove(act_key(2), first_root)
    assert verify_state_proof(first_root, act_key(2), b"in_force", proof)
    assert store.state_get_at(act_key(2), store.tip.state_root) is None


def test_a_block_without_transactions_has_the_empty_tree_hash_as_tx_root(chain):
    empty_tree_hash = hashlib.sha256(b"").digest()
    assert merkle.root([]) == empty_tree_hash
    block = chain.append([], {b"deeds/heartbeat": b"1"})
    assert block.header.tx_root == empty_tree_hash
    assert block.header.tx_count == 0
    store = chain.reopen()
    assert store.block(1) == block
    assert store.block(1).transactions == ()
    assert store.state_get(b"deeds/heartbeat") == b"1"
    chain.append([anchor(chain.consortium, 1)], {})
    assert store.height == 2


def test_append_returns_the_new_tip(chain):
    transactions = [anchor(chain.consortium, 1)]
    block = chain.build(transactions, {act_key(1): b"in_force"})
    tip = chain.store.append_block(
        block, chain.consortium.certify(block), {act_key(1): b"in_force"}
    )
    assert tip == Tip(1, block.block_hash, block.header.state_root)
    assert chain.store.tip == tip


# --- append refuses, and writes nothing -------------------------------------------------------

# Each case takes a chain of two blocks and returns what to append to it: a block, its
# certificate and the state writes.
Attempt = tuple[Block, CommitCertificate, StateWrites]


def _next_block(chain: Chain, **header_changes: object) -> Attempt:
    writes = {act_key(6): b"in_force"}
    block = chain.build([anchor(chain.consortium, 6)], writes)
    if header_changes:
        header = rebuilt_header(block.header, **header_changes)
        block = Block(header=header, transactions=block.transactions)
    return block, chain.consortium.certify(block), writes


def _height_skips_one(chain: Chain) -> Attempt:
    return _next_block(chain, height=4)


def _height_repeats_one(chain: Chain) -> Attempt:
    block = chain.store.block(2)
    return block, chain.store.certificate(2), {}


def _prev_hash_of_another_block(chain: Chain) -> Attempt:
    return _next_block(chain, prev_hash=chain.store.block(1).block_hash)


def _chain_id_of_another_consortium(chain: Chain) -> Attempt:
    other = LocalConsortium.create(MEMBERS, consortium="Un autre consortium", seed=b"other")
    return _next_block(chain, chain_id=other.chain_id)


def _state_root_that_does_not_match_the_writes(chain: Chain) -> Attempt:
    block, certificate, _ = _next_block(chain)
    return block, certificate, {act_key(6): b"revoked"}


def _certificate_for_another_block_hash(chain: Chain) -> Attempt:
    block, _, writes = _next_block(chain)
    sibling, _, _ = _next_block(chain, timestamp_ms=block.header.timestamp_ms + 1)
    return block, chain.consortium.certify(sibling), writes


def _certificate_for_another_height(chain: Chain) -> Attempt:
    block, certificate, writes = _next_block(chain)
    return block, rebuilt_certificate(certificate, height=4), writes


def _certificate_of_a_view_before_the_block(chain: Chain) -> Attempt:
    block, certificate, writes = _next_block(chain, view=2)
    return block, rebuilt_certificate(certificate, view=1), writes


def _transaction_already_in_the_chain(chain: Chain) -> Attempt:
    replayed = chain.store.block(1).transactions[0]
    writes = {act_key(6): b"in_force"}
    block = chain.build([anchor(chain.consortium, 6), replayed], writes)
    return block, chain.consortium.certify(block), writes


def _same_transaction_twice_in_the_block(chain: Chain) -> Attempt:
    transaction = anchor(chain.consortium, 6)
    writes = {act_key(6): b"in_force"}
    block = chain.build([transaction, transaction], writes)
    return block, chain.consortium.certify(block), writes


REFUSALS: list[tuple[Callable[[Chain], Attempt], str]] = [
    (_height_skips_one, r"block 4 does not extend the tip: expected height 3"),
    (_height_repeats_one, r"block 2 does not extend the tip: expected height 3"),
    (_prev_hash_of_another_block, r"block 3: prev_hash [0-9a-f]{64} is not the tip's hash"),
    (_chain_id_of_another_consortium, r"block 3: chain_id of another consortium"),
    (_state_root_that_does_not_match_the_writes, r"block 3: state_root [0-9a-f]{64} but the st"),
    (_certificate_for_another_block_hash, r"block 3: the certificate is for another block"),
    (_certificate_for_another_height, r"block 3: the certificate is for another block"),
    (_certificate_of_a_view_before_the_block, r"block 3: certificate of view 1, before the "),
    (_transaction_already_in_the_chain, r"block 3: transaction [0-9a-f]{64} is already in the "),
    (_same_transaction_twice_in_the_block, r"block 3: transaction [0-9a-f]{64} appears twice"),
]


@pytest.mark.parametrize(
    ("attempt", "reason"),
    REFUSALS,
    ids=[attempt.__name__.strip("_").replace("_", " ") for attempt, _ in REFUSALS],
)
def test_append_asserts_that_a_block_fits_and_writes_nothing_if_not(two_blocks, attempt, reason):
    # The replica and the engine admit a block before it is appended: a misfit is our own bug,
    # which the store's assertions stop before anything is written. (The transaction root is
    # not recomputed at append: it comes with the execution, and every read checks it.)
    chain = two_blocks
    block, certificate, writes = attempt(chain)
    tip = chain.store.tip
    before = chain.raw_contents()

    with pytest.raises(AssertionError, match=reason):
        chain.store.append_block(block, certificate, writes)

    assert chain.store.tip == tip
    assert chain.raw_contents() == before
    store = chain.reopen()
    assert store.tip == tip
    assert store.block(3) is None
    assert store.state_get(act_key(6)) is None
    # The refusal leaves the store usable: the block that fits is appended.
    chain.append([anchor(chain.consortium, 6)], {act_key(6): b"in_force"})
    assert store.height == 3


def test_a_transaction_is_refused_in_any_later_block(two_blocks):
    chain = two_blocks
    chain.append([], {})
    replayed = chain.store.block(2).transactions[1]
    block = chain.build([replayed], {})
    with pytest.raises(AssertionError, match=r"block 4: .* is already in the chain \(block 2"):
        chain.store.append_block(block, chain.consortium.certify(block), {})
    assert chain.store.height == 3


# --- corruption is reported, naming the height ------------------------------------------------


@pytest.fixture
def four_blocks(chain: Chain) -> Chain:
    """A chain of four blocks of two transactions each, closed, for tampering with plyvel."""
    for height in range(1, 5):
        nonces = (2 * height - 1, 2 * height)
        chain.append(
            [anchor(chain.consortium, nonce, signer=nonce) for nonce in nonces],
            {act_key(nonce): b"in_force" for nonce in nonces},
        )
    chain.store.close()
    return chain


def tamper(path: Path, change: Callable[[plyvel.DB], None]) -> None:
    database = plyvel.DB(str(path))
    try:
        change(database)
    finally:
        database.close()


def _garbage_block_record(database: plyvel.DB) -> None:
    database.put(schema.block_key(2), b"\x93garbage, not a block")


def _garbage_after_a_right_hash(database: plyvel.DB) -> None:
    record = database.get(schema.block_key(2))
    database.put(schema.block_key(2), record[:32] + b"\xc1" + record[33:])


def _truncated_block_record(database: plyvel.DB) -> None:
    database.put(schema.block_key(2), database.get(schema.block_key(2))[:-10])


def _wrong_stored_hash(database: plyvel.DB) -> None:
    record = database.get(schema.block_key(2))
    database.put(schema.block_key(2), hashlib.sha256(b"another").digest() + record[32:])


def _block_under_the_wrong_height(database: plyvel.DB) -> None:
    database.put(schema.block_key(2), database.get(schema.block_key(3)))


def _altered_transaction(database: plyvel.DB) -> None:
    # The header (hence the stored hash) is intact; a transaction's signature is not.
    record = database.get(schema.block_key(2))
    block = Block.from_bytes(record[32:])
    transaction = block.transactions[0]
    forged = Transaction.from_canonical(
        {**transaction.to_canonical(), "signature": bytes(64), "nonce": 999}
    )
    altered = Block(header=block.header, transactions=(forged, block.transactions[1]))
    database.put(schema.block_key(2), record[:32] + altered.to_bytes())


def _deleted_block_record(database: plyvel.DB) -> None:
    database.delete(schema.block_key(2))


def _certificate_of_another_height(database: plyvel.DB) -> None:
    database.put(schema.certificate_key(2), database.get(schema.certificate_key(3)))


def _certificate_of_another_block(database: plyvel.DB) -> None:
    certificate = CommitCertificate.from_bytes(database.get(schema.certificate_key(2)))
    forged = rebuilt_certificate(certificate, block_hash=hashlib.sha256(b"another").digest())
    database.put(schema.certificate_key(2), forged.to_bytes())


def _garbage_certificate(database: plyvel.DB) -> None:
    database.put(schema.certificate_key(2), b"not a certificate")


def _deleted_certificate(database: plyvel.DB) -> None:
    database.delete(schema.certificate_key(2))


BLOCK_CORRUPTIONS = [
    (_garbage_block_record, "block does not decode"),
    (_garbage_after_a_right_hash, "block does not decode"),
    (_truncated_block_record, "block does not decode"),
    (_wrong_stored_hash, "block hash does not match the stored hash"),
    (_block_under_the_wrong_height, "holds the block of height 3"),
    (_altered_transaction, "transactions do not match tx_root"),
]


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    BLOCK_CORRUPTIONS,
    ids=[corrupt.__name__.strip("_").replace("_", " ") for corrupt, _ in BLOCK_CORRUPTIONS],
)
def test_a_corrupt_block_below_the_tip_is_reported_with_its_height(four_blocks, corrupt, reason):
    tamper(four_blocks.path, corrupt)
    with ChainStore.open(four_blocks.path) as store:
        with pytest.raises(CorruptionError, match=f"^height 2: {reason}") as raised:
            store.block(2)
        assert raised.value.height == 2
        assert_nothing_more_is_served(store, four_blocks.consortium, raised.value)


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [
        (_certificate_of_another_height, "certificate is for another block"),
        (_certificate_of_another_block, "certificate is for another block"),
        (_garbage_certificate, "certificate does not decode"),
    ],
    ids=["of another height", "of another block", "garbage"],
)
def test_a_corrupt_certificate_is_reported_with_its_height(four_blocks, corrupt, reason):
    tamper(four_blocks.path, corrupt)
    with ChainStore.open(four_blocks.path) as store:
        with pytest.raises(CorruptionError, match=f"^height 2: {reason}") as raised:
            store.certificate(2)
        assert raised.value.height == 2
        assert_nothing_more_is_served(store, four_blocks.consortium, raised.value)


@pytest.mark.parametrize(
    ("corrupt", "reason"),
    [(_deleted_block_record, "block is missing"), (_deleted_certificate, "certificate is missing")],
    ids=["block", "certificate"],
)
def test_a_recent_height_without_its_block_or_certificate_stops_the_open(
    four_blocks, corrupt, reason
):
    # A write batch lost in the middle of LevelDB's log leaves such a hole under an intact tip.
    tamper(four_blocks.path, corrupt)
    with pytest.raises(CorruptionError, match=f"^height 2: {reason}"):
        ChainStore.open(four_blocks.path)


def assert_nothing_more_is_served(
    store: ChainStore, consortium: LocalConsortium, damage: CorruptionError
) -> None:
    """Once a read found the store damaged, every read and write raises that damage again:
    a damaged store is never served, not even the parts that still read back."""
    assert store.damage is damage
    tip = store.height
    reads = [
        lambda: store.block(1),
        lambda: store.certificate(tip),
        lambda: store.state_get(act_key(1)),
        lambda: list(store.state_items(b"")),
        lambda: store.transaction_location(bytes(32)),
        store.safety_record,
        lambda: store.save_safety_record(b"record"),
        lambda: consortium.append(
            store, [anchor(consortium, 100)], {}, timestamp_ms=timestamp_ms(tip + 1)
        ),
    ]
    for read in reads:
        with pytest.raises(CorruptionError) as raised:
            read()
        assert raised.value is damage


def test_a_transaction_index_into_a_corrupt_block_is_reported(four_blocks):
    with ChainStore.open(four_blocks.path) as store:
        tx_id = store.block(2).transactions[0].tx_id
    tamper(four_blocks.path, _garbage_block_record)
    with ChainStore.open(four_blocks.path) as store:
        assert store.transaction_location(tx_id) == (2, 0)
        with pytest.raises(CorruptionError, match=r"^height 2: block does not decode"):
            store.transaction(tx_id)


def test_a_tip_record_that_does_not_decode_stops_the_open(four_blocks):
    tamper(four_blocks.path, lambda database: database.put(schema.TIP, b"\xc1\xc1"))
    with pytest.raises(CorruptionError, match="the tip record does not decode"):
        ChainStore.open(four_blocks.path)


@pytest.mark.parametrize(
    "record",
    [
        [4, b"short", bytes(32)],
        [4, bytes(32), b"short"],
        [-1, bytes(32), bytes(32)],
        [True, bytes(32), bytes(32)],
        {"height": 4},
    ],
    ids=["short hash", "short state root", "negative height", "boolean height", "a map"],
)
def test_a_malformed_tip_record_stops_the_open(four_blocks, record):
    tamper(four_blocks.path, lambda database: database.put(schema.TIP, encoding.pack(record)))
    with pytest.raises(CorruptionError, match="the tip record"):
        ChainStore.open(four_blocks.path)


def test_a_tip_record_naming_another_block_stops_the_open_with_its_height(four_blocks):
    def point_the_tip_at_block_3(database: plyvel.DB) -> None:
        _, _, state_root = encoding.unpack(database.get(schema.TIP))
        block_3 = database.get(schema.block_key(3))[:32]
        database.put(schema.TIP, encoding.pack([4, block_3, state_root]))

    tamper(four_blocks.path, point_the_tip_at_block_3)
    with pytest.raises(CorruptionError, match=r"^height 4: the tip record names another block"):
        ChainStore.open(four_blocks.path)


def test_a_tip_record_behind_the_blocks_stops_the_open(four_blocks):
    # Appending on such a tip would rewrite block 4: the store must refuse to open instead.
    def roll_the_tip_back(database: plyvel.DB) -> None:
        block_3 = Block.from_bytes(database.get(schema.block_key(3))[32:])
        tip = [3, block_3.block_hash, block_3.header.state_root]
        database.put(schema.TIP, encoding.pack(tip))

    tamper(four_blocks.path, roll_the_tip_back)
    with pytest.raises(CorruptionError, match=r"^height 4: a block is stored above the tip"):
        ChainStore.open(four_blocks.path)


def test_a_corrupt_tip_block_stops_the_open_with_its_height(four_blocks):
    tamper(four_blocks.path, lambda database: database.put(schema.block_key(4), b"garbage"))
    with pytest.raises(CorruptionError, match=r"^height 4: block does not decode"):
        ChainStore.open(four_blocks.path)


def test_a_corrupt_genesis_record_is_a_corruption_error(four_blocks):
    tamper(four_blocks.path, lambda database: database.put(schema.GENESIS, b"\x80"))
    with pytest.raises(CorruptionError, match="genesis record does not decode"):
        ChainStore.open(four_blocks.path)


def test_a_failed_open_releases_the_database(four_blocks):
    tamper(four_blocks.path, lambda database: database.put(schema.TIP, b"\xc1"))
    for _ in range(2):  # a leaked LevelDB lock would turn the second try into "already open"
        with pytest.raises(CorruptionError, match="tip record"):
            ChainStore.open(four_blocks.path)


def test_append_accepts_a_block_certified_in_a_later_view_than_proposed(two_blocks):
    """After a view change, a prepared block is proposed again and certified in a later view."""
    block, _, writes = _next_block(two_blocks)
    later = two_blocks.consortium.certify(block, view=3)
    later.verify(two_blocks.consortium.chain_id, two_blocks.consortium.genesis.members)
    tip = two_blocks.store.append_block(block, later, writes)
    assert tip.height == block.height
    assert two_blocks.store.certificate(block.height).view == 3


# --- damage LevelDB cannot see: the witness, and scans that must not end short -----------------


def leveldb_files(path: Path) -> dict[str, bytes]:
    """The database's own files (the witness left out), to put back later."""
    return {
        entry.name: entry.read_bytes()
        for entry in path.iterdir()
        if entry.name not in (witness.FILE_NAME, "LOCK")
    }


def put_back(path: Path, files: dict[str, bytes]) -> None:
    """Replace the database's files by an older copy, keeping the current witness: what a
    truncated log or a partial restore does, and what LevelDB takes for a crash."""
    for entry in path.iterdir():
        if entry.name not in (witness.FILE_NAME, "LOCK"):
            entry.unlink()
    for name, data in files.items():
        (path / name).write_bytes(data)


def reopen_elsewhere(chain: Chain) -> None:
    """The fixture closes ``chain.store``: give it a healthy one after refusing this one."""
    chain.store = ChainStore.create(chain.path.with_name("other"), chain.consortium.genesis)


def test_a_tip_rolled_back_below_the_witness_is_refused(two_blocks):
    two_blocks.store.close()
    at_two_blocks = leveldb_files(two_blocks.path)
    store = two_blocks.reopen()
    two_blocks.append([anchor(two_blocks.consortium, 6)], {act_key(6): b"in_force"})
    store = two_blocks.reopen()
    assert store.height == 3
    store.close()
    put_back(two_blocks.path, at_two_blocks)
    with pytest.raises(RolledBackError, match="rolled back: the database's tip is height 2, but"):
        ChainStore.open(two_blocks.path)
    reopen_elsewhere(two_blocks)


def test_a_safety_record_rolled_back_below_the_witness_is_refused(two_blocks):
    store = two_blocks.store
    store.save_safety_record(encoding.pack({"view": 3, "height": 3, "prepare_hash": bytes(32)}))
    store.close()
    before_the_vote = leveldb_files(two_blocks.path)
    store = two_blocks.reopen()
    store.save_safety_record(encoding.pack({"view": 3, "height": 3, "commit_hash": bytes(32)}))
    assert store.safety_position == (2, 3, 3)
    store.close()
    put_back(two_blocks.path, before_the_vote)
    with pytest.raises(RolledBackError, match=r"save #1, but save #2 \(height 3, view 3\)"):
        ChainStore.open(two_blocks.path)
    reopen_elsewhere(two_blocks)


def test_a_database_one_write_ahead_of_its_witness_opens_and_levels_it(two_blocks):
    # A kill between the synced LevelDB write and the witness write leaves exactly this.
    path = two_blocks.path
    behind = (path / witness.FILE_NAME).read_bytes()
    two_blocks.append([anchor(two_blocks.consortium, 6)], {act_key(6): b"in_force"})
    two_blocks.store.close()
    (path / witness.FILE_NAME).write_bytes(behind)
    store = two_blocks.reopen()
    assert store.height == 3
    seen = Witness.open(path)
    assert (seen.state.tip_height, seen.state.tip_hash) == (3, store.tip.block_hash)
    seen.close()


@pytest.mark.parametrize("damage", ["deleted", "both slots damaged", "cut short"])
def test_a_missing_or_damaged_witness_stops_the_open(two_blocks, damage):
    path = two_blocks.path / witness.FILE_NAME
    two_blocks.store.close()
    if damage == "deleted":
        path.unlink()
    elif damage == "cut short":
        path.write_bytes(path.read_bytes()[:100])
    else:
        data = bytearray(path.read_bytes())
        data[20] ^= 1
        data[witness.SLOT_STRIDE_BYTES + 20] ^= 1
        path.write_bytes(bytes(data))
    with pytest.raises(CorruptionError, match="witness"):
        ChainStore.open(two_blocks.path)
    reopen_elsewhere(two_blocks)


def test_a_store_of_an_earlier_version_gets_a_witness_at_its_first_open(two_blocks):
    two_blocks.store.close()
    (two_blocks.path / witness.FILE_NAME).unlink()
    tamper(two_blocks.path, lambda database: database.delete(schema.WITNESSED))
    store = two_blocks.reopen()
    assert (two_blocks.path / witness.FILE_NAME).exists()
    assert store.height == 2
    two_blocks.reopen()


def data_blocks_end(table: bytes) -> int:
    """Where a LevelDB table's data blocks end: the offset of its index block, which the
    footer (the last 48 bytes) gives as the second of two varint (offset, size) handles."""
    handles, value, shift = [], 0, 0
    for byte in table[-48:]:
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            handles.append(value)
            value, shift = 0, 0
    return handles[2]


def _many_small_states(path: Path, consortium: LocalConsortium) -> dict[bytes, bytes]:
    """A store whose value index spans many table blocks, all compacted into tables."""
    state = {b"deeds/bulk/%05d" % index: b"value %05d" % index * 4 for index in range(3000)}
    ChainStore.create(path, consortium.genesis, state).close()
    database = plyvel.DB(str(path))
    database.compact_range()
    database.close()
    return state


def test_a_scan_over_a_damaged_table_block_raises_instead_of_ending_short(consortium, tmp_path):
    path = tmp_path / "chain"
    state = _many_small_states(path, consortium)
    table = max(path.glob("*.ldb"), key=lambda entry: entry.stat().st_size)
    data = bytearray(table.read_bytes())
    # In the last data block: the last value entries, with no valid block after them.
    data[data_blocks_end(bytes(data)) - 50] ^= 1
    table.write_bytes(bytes(data))
    database = plyvel.DB(str(path))
    try:
        # plyvel's plain iterator ends silently where LevelDB's stops on the damaged block:
        # a short answer, the "unknown act" of the issue.
        prefix = schema.value_key(b"deeds/bulk/")
        seen = sum(1 for _ in database.iterator(prefix=prefix, verify_checksums=True))
        assert seen < len(state)
    finally:
        database.close()
    with ChainStore.open(path) as store:
        with pytest.raises(CorruptionError, match="checksum mismatch"):
            list(store.state_items(b"deeds/bulk/"))
        assert isinstance(store.damage, CorruptionError)


def test_an_absence_told_to_clients_is_confirmed_in_the_state_tree(two_blocks):
    # The value index lost an entry its block wrote (it did not reach the disk, say): for an
    # answer to a client, the tree, whose root the tip block commits to, must confirm absence.
    two_blocks.store.close()
    tamper(two_blocks.path, lambda database: database.delete(schema.value_key(act_key(1))))
    store = two_blocks.reopen()
    assert store.state_get(act_key(1)) is None  # the one-lookup read of execution
    assert store.confirmed_reads().state_get(act_key(99)) is None  # truly absent: proven
    assert store.confirmed_reads().state_get(act_key(3)) == b"in_force"
    with pytest.raises(CorruptionError, match="the value index lost state key"):
        store.confirmed_reads().state_get(act_key(1))
    assert store.damage is not None


def test_opening_checks_recent_heights_only_and_the_full_check_finds_the_rest(
    four_blocks, monkeypatch
):
    # Start-up must stay fast on any chain: a hole below the recent heights is left to
    # 'sceau node check', which reads everything.
    from ledger import store as store_module
    from ledger.store_check import check_store

    monkeypatch.setattr(store_module, "RECENT_BLOCKS_CHECKED", 2)
    tamper(four_blocks.path, _deleted_block_record)  # block 2, below heights 3 and 4
    with ChainStore.open(four_blocks.path) as store:
        report = check_store(store)
    assert not report.ok and report.failure_height == 2, report
    assert report.failure == "height 2: block is missing"
    monkeypatch.setattr(store_module, "RECENT_BLOCKS_CHECKED", 3)
    with pytest.raises(CorruptionError, match=r"^height 2: block is missing"):
        ChainStore.open(four_blocks.path)


def test_the_full_check_passes_a_sound_store_and_names_a_bad_certificate(four_blocks):
    from ledger.store_check import check_store

    with ChainStore.open(four_blocks.path) as store:
        report = check_store(store)
    assert report.ok, report
    assert (report.blocks, report.transactions) == (4, 8)
    tamper(four_blocks.path, _certificate_of_another_block)
    with ChainStore.open(four_blocks.path) as store:
        report = check_store(store)
    assert report.failure_height == 2 and "certificate" in report.failure, report


def test_a_bulk_fill_writes_the_witness_once_at_the_end(two_blocks):
    witness_file = two_blocks.path / witness.FILE_NAME
    before = witness_file.read_bytes()
    with two_blocks.store.witness_deferred():
        two_blocks.append([anchor(two_blocks.consortium, 6)], {act_key(6): b"in_force"})
        assert witness_file.read_bytes() == before
    store = two_blocks.reopen()
    seen = Witness.open(two_blocks.path)
    assert (seen.state.tip_height, seen.state.tip_hash) == (3, store.tip.block_hash)
    seen.close()
