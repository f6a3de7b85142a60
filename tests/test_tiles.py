"""Specification of the log's routes: C2SP tlog-tiles and proofs, from a node's real store.

A node (built by the real launcher over a real LevelDB store) holds a format-2 chain of 600
transactions in blocks of 100; its API answers on an aiohttp test server. Every answer is
compared with what ledger.merkle computes from the transactions themselves, and every refusal
is a problem object with its code.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator

import pytest

from ledger import crypto, encoding, merkle, tlog
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Transaction
from node.api import API_KEY, ROUTES
from node.runtime.config import NodeConfig
from node.tools.launch import build_node, initialise_data_dir
from tests.support import NodeApi, Reply, get, problem, start_client

MEMBERS = [
    ("metropole-valbrune", "Métropole du Valbrunois"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger", "Commune de Saint-Léger"),
    ("bourg-est", "Commune de Bourg-Est"),
]
CONTRACTS = (
    ContractRef(name="membership", version="1.0"),
    ContractRef(name="deeds", version="1.0"),
)
ENTRIES = 600
"""Two full level-0 tiles and a partial one of 88; two hashes at tree level 8 (tile 1/000.p/2)."""
START_MS = 1_767_225_600_000


def _transaction(consortium: LocalConsortium, nonce: int) -> Transaction:
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


class Log:
    """The node's API and the log's leaves, as the test knows them."""

    def __init__(self, api: NodeApi, leaves: list[bytes]) -> None:
        self.api = api
        self.leaves = leaves

    def get(self, path: str, **options: object) -> Reply:
        return get(self.api, path, **options)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    folder = tmp_path_factory.mktemp("tiles")
    consortium = LocalConsortium.create(
        MEMBERS, seed=b"tiles", contracts=CONTRACTS, format_version=2
    )
    (folder / "genesis.json").write_text(consortium.genesis.model_dump_json())
    crypto.save_private_key(consortium.keys[MEMBERS[0][0]], folder / "node.pem")
    store = initialise_data_dir(folder / "data", consortium.genesis)
    leaves: list[bytes] = []
    for block in range(ENTRIES // 100):
        transactions = [_transaction(consortium, block * 100 + i) for i in range(100)]
        consortium.append(store, transactions, {}, timestamp_ms=START_MS + 60_000 * (block + 1))
        leaves.extend(transaction.encoded for transaction in transactions)
    store.close()
    config = NodeConfig(
        member_id=MEMBERS[0][0],
        data_dir=folder / "data",
        genesis_file=folder / "genesis.json",
        key_file=folder / "node.pem",
        peer_listen="127.0.0.1:0",
    )
    node = build_node(config)
    loop = asyncio.new_event_loop()
    client = loop.run_until_complete(start_client(node, config))
    try:
        yield Log(NodeApi(loop=loop, consortium=consortium, node=node, client=client), leaves)
    finally:
        loop.run_until_complete(client.close())
        node.store.close()
        loop.close()


def leaf_hashes(log: Log, start: int, end: int) -> bytes:
    return b"".join(merkle.leaf_hash(leaf) for leaf in log.leaves[start:end])


def tile(log: Log, path: str) -> Reply:
    reply = log.get(f"/v1/log/{path}")
    assert reply.status == 200, reply.body[:300]
    assert reply.content_type == "application/octet-stream"
    return reply


# --- tiles ------------------------------------------------------------------------------------


def test_a_full_level_0_tile_holds_256_leaf_hashes_and_is_immutable(log: Log) -> None:
    for index in (0, 1):
        reply = tile(log, tlog.tile_path(0, index))
        assert reply.body == leaf_hashes(log, 256 * index, 256 * (index + 1))
        assert len(reply.body) == 8192
        assert reply.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_a_partial_tile_of_any_width_the_log_covers_is_served_briefly_cached(log: Log) -> None:
    for width in (88, 1, 50):
        reply = tile(log, f"tile/0/002.p/{width}")
        assert reply.body == leaf_hashes(log, 512, 512 + width)
        assert reply.headers["Cache-Control"] == "public, max-age=60"
    for width in (1, 255):  # inside a full tile: a prefix of it, as tlog-tiles defines it
        assert tile(log, f"tile/0/001.p/{width}").body == leaf_hashes(log, 256, 256 + width)


def test_a_level_1_tile_holds_the_hashes_of_tree_level_8(log: Log) -> None:
    body = tile(log, "tile/1/000.p/2").body
    assert body == merkle.root(log.leaves[:256]) + merkle.root(log.leaves[256:512])
    assert tile(log, "tile/1/000.p/1").body == body[:32]


def test_entry_bundles_hold_the_transactions_canonical_bytes(log: Log) -> None:
    full = tile(log, "tile/entries/001")
    assert tlog.parse_entries_bundle(full.body) == log.leaves[256:512]
    assert full.headers["Cache-Control"].endswith("immutable")
    partial = tile(log, "tile/entries/002.p/88").body
    assert tlog.parse_entries_bundle(partial) == log.leaves[512:600]
    transaction = Transaction.from_bytes(tlog.parse_entries_bundle(partial)[-1])
    assert transaction.nonce == ENTRIES - 1


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/002",  # the third tile is not full yet
        "tile/0/002.p/89",
        "tile/0/003.p/1",
        "tile/0/x001/000",
        "tile/1/000",
        "tile/1/000.p/3",
        "tile/2/000.p/1",
        "tile/63/000.p/1",
        "tile/entries/002",
        "tile/entries/002.p/89",
        "tile/entries/x999/999",
    ],
)
def test_a_tile_beyond_the_log_is_a_404_problem(log: Log, path: str) -> None:
    document = problem(log.get(f"/v1/log/{path}"), "beyond_log", listed=True)
    assert "600 entries" in document["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "tile/0/2",
        "tile/0/0000",
        "tile/0/x000/001",  # a leading zero group
        "tile/0/001/002",  # only the last element lacks the x
        "tile/0/000.p/0",
        "tile/0/000.p/256",
        "tile/0/000.p/07",
        "tile/0/000.p/",
        "tile/64/000",
        "tile/01/000",
        "tile/abc/000",
        "tile/-1/000",
        "tile/entries",
        "tile/0/٣٣٣",
    ],
)
def test_a_malformed_tile_path_is_a_400_problem(log: Log, path: str) -> None:
    problem(log.get(f"/v1/log/{path}"), "invalid_parameter", listed=True)


def test_a_tile_takes_no_query_parameter(log: Log) -> None:
    problem(log.get("/v1/log/tile/0/000?width=3"), "invalid_parameter")


# --- proofs -----------------------------------------------------------------------------------


def test_consistency_proofs_are_rfc_9162_proofs_in_hex(log: Log) -> None:
    for old, new in ((100, 600), (256, 512), (1, 2), (599, 600), (600, 600), (0, 300)):
        reply = log.get(f"/v1/log/consistency?old={old}&new={new}")
        assert reply.status == 200, reply.body
        document = reply.json()
        expected = merkle.consistency_proof(log.leaves[:new], old) if 0 < old < new else []
        assert document == {
            "old_size": old,
            "new_size": new,
            "proof": [value.hex() for value in expected],
        }
        if 0 < old < new:
            assert merkle.verify_consistency(
                old,
                new,
                merkle.root(log.leaves[:old]),
                merkle.root(log.leaves[:new]),
                [bytes.fromhex(value) for value in document["proof"]],
            )


def test_inclusion_proofs_are_rfc_9162_proofs_in_hex(log: Log) -> None:
    for index, size in ((0, 1), (5, 600), (599, 600), (300, 301), (255, 256)):
        document = log.get(f"/v1/log/inclusion?index={index}&size={size}").json()
        proof = [bytes.fromhex(value) for value in document["proof"]]
        assert proof == merkle.inclusion_proof(log.leaves[:size], index)
        assert merkle.verify_inclusion(
            log.leaves[index], index, size, proof, merkle.root(log.leaves[:size])
        )


def test_proofs_in_msgpack_carry_bytes(log: Log) -> None:
    reply = log.get("/v1/log/inclusion?index=7&size=600", headers={"Accept": "application/msgpack"})
    document = encoding.unpack(reply.body)
    assert document["proof"] == merkle.inclusion_proof(log.leaves, 7)


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("consistency?old=1&new=601", "beyond_log"),
        ("consistency?old=700&new=800", "beyond_log"),
        ("consistency?old=5&new=4", "invalid_parameter"),
        ("consistency?old=5", "invalid_parameter"),
        ("consistency?new=5", "invalid_parameter"),
        ("consistency?old=-1&new=5", "invalid_parameter"),
        ("consistency?old=1&new=99999999999999999999", "invalid_parameter"),
        ("consistency?old=1&new=2&new=3", "invalid_parameter"),
        ("consistency?old=1&new=2&other=3", "invalid_parameter"),
        ("inclusion?index=0&size=601", "beyond_log"),
        ("inclusion?index=600&size=600", "invalid_parameter"),
        ("inclusion?index=0&size=0", "invalid_parameter"),
        ("inclusion?index=x&size=3", "invalid_parameter"),
        ("inclusion?size=3", "invalid_parameter"),
    ],
)
def test_proof_requests_out_of_bounds_are_problems(log: Log, query: str, code: str) -> None:
    problem(log.get(f"/v1/log/{query}"), code, listed=True)


def test_the_log_routes_are_in_the_route_table_and_the_openapi_document(log: Log) -> None:
    paths = log.get("/openapi.json").json()["paths"]
    for path in ("/v1/log/tile/{tile}", "/v1/log/consistency", "/v1/log/inclusion"):
        assert path in paths
        assert any(route.openapi_path == path for route in ROUTES)
    counted = log.api.client.server.app[API_KEY].requests
    assert counted[("/v1/log/tile/{tile}", 200)] > 0
    assert counted[("/v1/log/consistency", 200)] > 0
    assert not [key for key in counted if key[1] == 500]
