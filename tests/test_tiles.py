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
from pathlib import Path

import pytest

from ledger import crypto, encoding, merkle, tlog
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Transaction
from ledger.note import Checkpoint, Note, origin_for, sign_note
from ledger.store import ChainStore
from ledger.tlogproof import verify_tlog_proof
from node.api import API_KEY, ROUTES
from node.runtime.config import NodeConfig
from node.tools.cli import main as sceau
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
        args={
            "issuer": MEMBERS[nonce % 4][0],
            "reference": reference,
            "kind": "deliberation",
            "digest": hashlib.sha256(reference.encode()).digest(),
            "act_date": "2026-12-01",
            "title": f"Délibération {reference}",
        },
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


def grow(consortium: LocalConsortium, store: ChainStore, blocks: int) -> list[bytes]:
    """Append ``blocks`` blocks of 100 transactions; their canonical bytes."""
    leaves: list[bytes] = []
    for _ in range(blocks):
        first = store.log_size
        transactions = [_transaction(consortium, first + i) for i in range(100)]
        timestamp_ms = START_MS + 60_000 * (store.height + 1)
        consortium.append(store, transactions, {}, timestamp_ms=timestamp_ms)
        leaves.extend(transaction.encoded for transaction in transactions)
    return leaves


def keep_checkpoint(consortium: LocalConsortium, store: ChainStore) -> Note:
    """A checkpoint of the tip signed by the first quorum of members, kept by ``store``."""
    header = store.block(store.height).header
    origin = origin_for(consortium.chain_id)
    text = Checkpoint(origin, header.log_size, header.log_root).text()
    signers = [member_id for member_id, _ in MEMBERS][:3]
    note = Note(text, tuple(sign_note(text, origin, consortium.keys[m]) for m in signers))
    store.save_checkpoint(note.to_bytes())
    return note


def new_data_dir(folder: Path) -> tuple[LocalConsortium, ChainStore]:
    """A consortium's files in ``folder`` (genesis, the first member's key) and the store of
    a new data directory."""
    consortium = LocalConsortium.create(
        MEMBERS, seed=b"tiles", contracts=CONTRACTS, format_version=2
    )
    folder.mkdir(exist_ok=True)
    (folder / "genesis.json").write_text(consortium.genesis.model_dump_json())
    crypto.save_private_key(consortium.keys[MEMBERS[0][0]], folder / "node.pem")
    return consortium, initialise_data_dir(folder / "data", consortium.genesis)


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Log]:
    folder = tmp_path_factory.mktemp("tiles")
    consortium, store = new_data_dir(folder)
    leaves = grow(consortium, store, ENTRIES // 100)
    keep_checkpoint(consortium, store)
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


# --- sceau proof --api, from a node over a real socket ------------------------------------------


def test_sceau_proof_from_a_node_is_made_of_the_receipt_and_verifies(
    log: Log, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = str(log.api.client.make_url("")).rstrip("/")
    tx_id = Transaction.from_bytes(log.leaves[300]).tx_id.hex()
    out = tmp_path / "act.tlog-proof"
    status = log.api.run(
        asyncio.to_thread(sceau, ["proof", tx_id, "--api", url, "--out", str(out)])
    )
    assert status == 0, capsys.readouterr().err
    verified = verify_tlog_proof(out.read_bytes(), log.api.consortium.genesis)
    assert verified.index == 300 and verified.checkpoint.checkpoint.size == ENTRIES
    assert verified.checkpoint.signers == tuple(member_id for member_id, _ in MEMBERS[:3])
    unknown = log.api.run(asyncio.to_thread(sceau, ["proof", "ab" * 32, "--api", url]))
    assert unknown == 2 and "no committed transaction" in capsys.readouterr().err
    assert sceau(["proof", "xyz", "--api", url]) == 2
    assert "64 hexadecimal digits" in capsys.readouterr().err
    assert sceau(["proof", tx_id]) == 2
    assert "exactly one source" in capsys.readouterr().err


# --- sceau export tiles --data-dir ----------------------------------------------------------------


def test_export_tiles_writes_the_tlog_tiles_tree_then_only_what_changed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    consortium, store = new_data_dir(tmp_path / "node")
    leaves = grow(consortium, store, 6)
    note = keep_checkpoint(consortium, store)
    store.close()
    mirror = tmp_path / "mirror"
    export = ["export", "tiles", str(mirror), "--data-dir", str(tmp_path / "node" / "data")]
    assert sceau(export) == 0, capsys.readouterr().err
    assert "7 tile(s) written, 0 full" in capsys.readouterr().out
    files = sorted(str(path.relative_to(mirror)) for path in mirror.rglob("*") if path.is_file())
    assert files == [
        "checkpoint",
        "sceau-member-changes",
        "tile/0/000",
        "tile/0/001",
        "tile/0/002.p/88",
        "tile/1/000.p/2",
        "tile/entries/000",
        "tile/entries/001",
        "tile/entries/002.p/88",
    ]
    assert (mirror / "checkpoint").read_bytes() == note.to_bytes()
    hashes = b"".join(merkle.leaf_hash(leaf) for leaf in leaves)
    assert (mirror / "tile/0/001").read_bytes() == hashes[256 * 32 : 512 * 32]
    assert (mirror / "tile/0/002.p/88").read_bytes() == hashes[512 * 32 :]
    level_8 = merkle.root(leaves[:256]) + merkle.root(leaves[256:512])
    assert (mirror / "tile/1/000.p/2").read_bytes() == level_8
    assert (
        tlog.parse_entries_bundle((mirror / "tile/entries/002.p/88").read_bytes()) == leaves[512:]
    )
    assert encoding.unpack((mirror / "sceau-member-changes").read_bytes()) == []

    # Again after the log grew: full tiles are left alone (even one damaged since: they never
    # change, so the export does not read them back), the new ones and the partial ones written.
    (mirror / "tile/0/000").write_bytes(b"left alone")
    store = ChainStore.open(tmp_path / "node" / "data" / "chain")
    leaves += grow(consortium, store, 1)
    note = keep_checkpoint(consortium, store)
    store.close()
    assert sceau(export) == 0
    assert "3 tile(s) written, 4 full tile(s) already there" in capsys.readouterr().out
    assert (mirror / "tile/0/000").read_bytes() == b"left alone"
    hashes = b"".join(merkle.leaf_hash(leaf) for leaf in leaves)
    assert (mirror / "tile/0/002.p/188").read_bytes() == hashes[512 * 32 :]
    assert (mirror / "checkpoint").read_bytes() == note.to_bytes()
    assert not list(mirror.rglob("*.tmp"))


def test_export_tiles_needs_a_folder_a_source_and_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    consortium, store = new_data_dir(tmp_path / "node")
    grow(consortium, store, 1)
    store.close()
    data = str(tmp_path / "node" / "data")
    assert sceau(["export", "tiles", "--data-dir", data]) == 2
    assert "needs the mirror's folder" in capsys.readouterr().err
    assert sceau(["export", "tiles", str(tmp_path / "m")]) == 2
    assert "exactly one source" in capsys.readouterr().err
    assert sceau(["export", "tiles", str(tmp_path / "m"), "--data-dir", data]) == 2
    assert "keeps no checkpoint yet" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()
    assert sceau(["export", "acts", str(tmp_path / "m"), "--data-dir", data]) == 2
    assert "unexpected argument" in capsys.readouterr().err
