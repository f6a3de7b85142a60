"""The log of every act in the chain store: written with each block, read back after a restart,
built once for a database written before it existed, and equal to what format 2 headers say."""

from __future__ import annotations

import hashlib
from pathlib import Path

import plyvel
import pytest

from ledger import merkle, schema, tlog
from ledger.devchain import LocalConsortium
from ledger.model import Transaction
from ledger.store import ChainStore

MEMBERS = [
    ("metropole-valbrune", "Métropole du Valbrunois"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger", "Commune de Saint-Léger"),
    ("bourg-est", "Commune de Bourg-Est"),
]
START_MS = 1_767_225_600_000


def _anchor(consortium: LocalConsortium, nonce: int) -> Transaction:
    reference = f"2026-DEL-{nonce:04d}"
    return Transaction.create(
        consortium.keys[MEMBERS[nonce % 4][0]],
        chain_id=consortium.chain_id,
        contract="deeds",
        action="anchor",
        args={"reference": reference, "digest": hashlib.sha256(reference.encode()).digest()},
        nonce=nonce,
        expiry_height=1_000,
    )


def _grow(consortium: LocalConsortium, store: ChainStore, sizes: list[int]) -> list[bytes]:
    """Append blocks of the given sizes; the canonical bytes of every transaction, in order."""
    leaves: list[bytes] = []
    for size in sizes:
        transactions = [_anchor(consortium, store.log_size + i) for i in range(size)]
        consortium.append(
            store, transactions, {}, timestamp_ms=START_MS + 60_000 * (store.height + 1)
        )
        leaves.extend(transaction.encoded for transaction in transactions)
    return leaves


@pytest.fixture(params=[1, 2], ids=["format-1", "format-2"])
def consortium(request: pytest.FixtureRequest) -> LocalConsortium:
    return LocalConsortium.create(MEMBERS, seed=b"store log", format_version=request.param)


def test_each_block_extends_the_log_and_a_format_2_header_commits_to_it(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    store = ChainStore.create(tmp_path / "chain", consortium.genesis)
    try:
        assert store.log_size == 0 and store.log_frontier().root == merkle.EMPTY_ROOT
        leaves = _grow(consortium, store, [3, 0, 5, 1])
        assert store.log_size == 9
        assert store.log_frontier().root == merkle.root(leaves)
        for height, size in ((1, 3), (2, 3), (3, 8), (4, 9)):
            header = store.block(height).header
            if consortium.genesis.format_version == 2:
                assert (header.log_size, header.log_root) == (size, merkle.root(leaves[:size]))
            else:
                assert header.log_size is None and header.log_root is None
        read = store.log_hash
        assert tlog.consistency_proof(3, 9, read) == merkle.consistency_proof(leaves, 3)
        assert tlog.inclusion_proof(4, 9, read) == merkle.inclusion_proof(leaves, 4)
        assert store.log_entries(0, 9) == leaves
        assert store.log_entries(2, 3) == leaves[2:5]
        assert store.log_entry_location(8) == (4, 0)
        assert store.log_entry_location(3) == (3, 0)
        assert store.log_hashes(0, 0, 9) == [merkle.leaf_hash(leaf) for leaf in leaves]
    finally:
        store.close()


def test_the_log_reads_back_after_a_restart(consortium: LocalConsortium, tmp_path: Path) -> None:
    path = tmp_path / "chain"
    store = ChainStore.create(path, consortium.genesis)
    leaves = _grow(consortium, store, [2, 7])
    store.close()
    with ChainStore.open(path) as store:
        assert store.log_size == 9
        assert store.log_frontier().root == merkle.root(leaves)
        leaves += _grow(consortium, store, [4])
        assert store.log_frontier().root == merkle.root(leaves)


def test_a_database_from_before_the_log_gets_it_built_at_its_first_open(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    path = tmp_path / "chain"
    store = ChainStore.create(path, consortium.genesis)
    leaves = _grow(consortium, store, [5, 0, 300])
    store.close()
    database = plyvel.DB(str(path))
    for key, _ in database.iterator(prefix=schema.LOG_PREFIX):
        database.delete(key)
    for key, _ in database.iterator(prefix=schema.LOG_BLOCK_PREFIX):
        database.delete(key)
    database.delete(schema.LOG_SIZE)
    database.close()
    with ChainStore.open(path) as store:
        assert store.log_size == 305
        assert store.log_frontier().root == merkle.root(leaves)
        assert store.log_entries(4, 2) == leaves[4:6]
        assert tlog.root_of(300, store.log_hash) == merkle.root(leaves[:300])


def test_the_latest_checkpoint_is_kept_and_replaced(
    consortium: LocalConsortium, tmp_path: Path
) -> None:
    with ChainStore.create(tmp_path / "chain", consortium.genesis) as store:
        assert store.checkpoint() is None
        store.save_checkpoint(b"first")
        store.save_checkpoint(b"second")
        assert store.checkpoint() == b"second"


def test_a_previewed_log_is_hashed_once_and_only_for_its_own_leaves(
    consortium: LocalConsortium, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine previews the log of the block it executes; the append reuses those hashes
    when the block holds the same leaves on the same log, and computes them otherwise."""
    appends = []
    original = tlog.append
    monkeypatch.setattr(tlog, "append", lambda *args: appends.append(1) or original(*args))
    with ChainStore.create(tmp_path / "chain", consortium.genesis) as store:
        leaves = _grow(consortium, store, [3])
        transactions = [_anchor(consortium, 3 + i) for i in range(4)]
        block_leaves = [transaction.encoded for transaction in transactions]
        previewed = store.preview_log(block_leaves)
        store.preview_log(block_leaves[:2])  # another candidate block, never appended
        appends.clear()
        consortium.append(store, transactions, {}, timestamp_ms=START_MS + 120_000)
        assert appends == [], "the append took the preview's hashes"
        leaves += block_leaves
        assert store.log_frontier() == previewed
        assert store.log_frontier().root == merkle.root(leaves)
        assert store.log_hashes(0, 0, 7) == [merkle.leaf_hash(leaf) for leaf in leaves]
        store.preview_log(block_leaves[:1])  # stale: the log moved on
        leaves += _grow(consortium, store, [2])
        assert appends == [1, 1], "a preview of other leaves, or of an old log, is not used"
        assert store.log_frontier().root == merkle.root(leaves)
