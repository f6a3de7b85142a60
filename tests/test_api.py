"""The client API (the node/api package) of a real node, over HTTP.

Two real nodes, each built by ``node.tools.launch.build_node`` from files in a temporary folder:

* the *live* node: a one-member consortium running the deeds contract, started, so it
  orders and commits alone (n = 1, quorum 1) through the real replica, store and transport
  (a transport without peers: a one-member consortium has none);
* the *idle* node: another one-member consortium without the deeds contract, built but never
  started: its chain stays empty and its mempool holds what it is given, which is how the
  tests see pending transactions, full mempools, an empty chain and an unhealthy node.

Every request goes through aiohttp's test server; the event loop is the fixture's, so plain
(synchronous) pytest and hypothesis tests drive it with ``api.run(...)``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import support
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from support import NodeApi, Reply, fetch, get, start_client, write_node_files
from yarl import URL

from contracts.deeds import act_key
from contracts.registry import query_routes, receipt_anchors
from ledger import crypto, encoding, merkle
from ledger.bundle import BundleWriter, block_frame, genesis_frame, parse_frames
from ledger.devchain import LocalConsortium
from ledger.model import (
    BlockHeader,
    CommitCertificate,
    ContractRef,
    Genesis,
    Member,
    Transaction,
    sha256,
)
from ledger.receipt import Receipt, verify_receipt
from ledger.state import StateProof, verify_state_proof
from node.api import (
    API_KEY,
    DEBUG_ROUTES,
    PROBLEMS,
    ROUTES,
    LinksDocument,
    SubmissionLimiter,
    display,
    receipt_for,
)
from node.runtime.config import ConfigError, load_config
from node.runtime.daemon import Node
from node.runtime.wire import decode_frame
from node.tools.launch import build_node

MEMBER = "metropole-valbrune"
IDLE_MEMBER = "ville-valbrune"
IDLE_NEIGHBOUR = "commune-voisine"
MEMBERSHIP_1_0 = ContractRef(name="membership", version="1.0")
DEEDS_1_0 = ContractRef(name="deeds", version="1.0")
BODY_BYTES_MAX = 4096
WAIT = {"wait": "5"}
PROBLEM_CODE = re.compile(r"[a-z][a-z0-9_]*")


# --- the harness ------------------------------------------------------------------------------


@dataclass
class Api(NodeApi):
    """The nodes, their clients and the loop they run on."""

    limited: TestClient
    idle_consortium: LocalConsortium
    idle: Node
    idle_client: TestClient
    nonces: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))
    committed: list[Transaction] = field(default_factory=list)
    """Three anchors committed together in one block (a tree of three leaves)."""

    @property
    def key(self) -> crypto.PrivateKey:
        return self.consortium.keys[MEMBER]

    def anchor(self, reference: str, **changes: Any) -> Transaction:
        """A signed deeds.anchor by the member; ``changes`` override fields or arguments."""
        args = {
            "issuer": MEMBER,
            "reference": reference,
            "kind": "deliberation",
            "digest": hashlib.sha256(reference.encode()).digest(),
            "act_date": "2026-11-28",
            "title": f"Délibération {reference}",
        }
        args.update(changes.pop("args", {}))
        fields = {
            "chain_id": self.consortium.chain_id,
            "contract": "deeds",
            "action": "anchor",
            "args": args,
            "nonce": next(self.nonces),
            "expiry_height": 1_000_000,
        }
        fields.update(changes)
        key = fields.pop("key", self.key)
        return Transaction.create(key, **fields)


def post(api: Api, transaction: Transaction, *, client: TestClient | None = None, **options):
    body = {"transaction": transaction.encoded.hex()}
    return support.post(api, "/v1/transactions", client=client, json=body, **options)


def post_raw(api: Api, *, client: TestClient | None = None, **options: Any) -> Reply:
    return support.post(api, "/v1/transactions", client=client, **options)


def problem(reply: Reply, code: str) -> dict[str, Any]:
    """Check that ``reply`` is the RFC 9457 problem ``code`` with its table status."""
    return support.problem(reply, code, whole=True)


def ok(reply: Reply, model: Any, status: int = 200) -> dict[str, Any]:
    """Check a success: status, JSON content type, and the document against its model."""
    assert reply.status == status, reply.body[:500]
    assert reply.content_type.startswith("application/json")
    model.model_validate_json(reply.body)
    return reply.json()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("api")
    consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")],
        seed=b"sceau api tests",
        contracts=[MEMBERSHIP_1_0, DEEDS_1_0],
    )
    config = write_node_files(
        folder / "live",
        consortium,
        MEMBER,
        api_body_bytes_max=BODY_BYTES_MAX,
        api_submissions_per_s=100_000,
        api_submission_burst=100_000,
    )
    limited_config = config.model_copy(
        update={"api_submissions_per_s": 0.001, "api_submission_burst": 2}
    )
    idle_consortium = LocalConsortium.create(
        [(IDLE_MEMBER, "Ville de Valbrune"), (IDLE_NEIGHBOUR, "Commune voisine")],
        seed=b"sceau idle",
        contracts=[MEMBERSHIP_1_0],
    )
    idle_config = write_node_files(
        folder / "idle",
        idle_consortium,
        IDLE_MEMBER,
        mempool_transactions_max=3,
        mempool_per_signer_max=2,
    )
    loop = asyncio.new_event_loop()
    node = build_node(config)
    idle = build_node(idle_config)
    loop.run_until_complete(node.start())
    harness = Api(
        loop=loop,
        consortium=consortium,
        node=node,
        client=loop.run_until_complete(start_client(node, config)),
        limited=loop.run_until_complete(start_client(node, limited_config)),
        idle_consortium=idle_consortium,
        idle=idle,
        idle_client=loop.run_until_complete(start_client(idle, idle_config)),
    )
    # Three anchors in one block: the first two wait in the mempool (no tick runs while this
    # code does not yield), the third wakes the replica, whose proposal takes all three.
    batch = [harness.anchor(f"2026/BATCH-{index}") for index in range(3)]
    for transaction in batch[:2]:
        assert node.application.submit(transaction)
    assert node.submit(batch[2])
    assert loop.run_until_complete(node.wait_for_commit(batch[2].tx_id, 5))
    harness.committed.extend(batch)
    yield harness
    harness.close([harness.client, harness.limited, harness.idle_client], idle=[idle])


@pytest.fixture(autouse=True)
def no_internal_errors(api: Api) -> Iterator[None]:
    """No client input may reach the 500 branch: checked after every test."""
    yield
    for client in (api.client, api.limited, api.idle_client):
        counts = client.server.app[API_KEY].requests
        assert not [key for key in counts if key[1] == 500], counts


# --- submitting -------------------------------------------------------------------------------


def test_a_transaction_submitted_as_json_hex_is_answered_with_its_commit(api: Api) -> None:
    transaction = api.anchor("2026-DEL-042")
    document = ok(post(api, transaction, params=WAIT), display.CommittedTransaction)
    assert document["tx_id"] == transaction.tx_id.hex()
    assert document["status"] == "committed"
    assert document["result"] == {
        "issuer": MEMBER,
        "reference": "2026-DEL-042",
        "status": "in_force",
    }
    # Bytes inside args show as hex: the display is for reading; the bytes are in the receipt.
    assert document["transaction"] == display.to_display(transaction)
    assert document["receipt"]["transaction"] == transaction.encoded.hex()


def test_a_transaction_submitted_as_msgpack_bytes_is_committed(api: Api) -> None:
    transaction = api.anchor("2026-DEL-043")
    reply = post_raw(
        api,
        data=transaction.encoded,
        headers={"Content-Type": "application/msgpack"},
        params=WAIT,
    )
    assert ok(reply, display.CommittedTransaction)["height"] == api.node.store.height


def test_submitting_a_committed_transaction_again_answers_its_commit(api: Api) -> None:
    transaction = api.committed[0]
    document = ok(post(api, transaction), display.CommittedTransaction)
    assert document["position"] == 0


def test_a_transaction_that_fails_execution_is_answered_with_its_rejection(api: Api) -> None:
    first = api.anchor("2026-DUP-001")
    ok(post(api, first, params=WAIT), display.CommittedTransaction)
    again = api.anchor("2026-DUP-001", args={"digest": bytes(range(32))})
    document = problem(post(api, again, params=WAIT), "duplicate_reference")
    assert document["status"] == 422
    assert document["tx_id"] == again.tx_id.hex()
    status = ok(get(api, f"/v1/transactions/{again.tx_id.hex()}"), display.TransactionStatus)
    assert status == {
        "tx_id": again.tx_id.hex(),
        "status": "rejected",
        "code": "duplicate_reference",
        "reason": document["detail"],
    }


def test_a_submission_not_yet_committed_is_accepted_as_pending(api: Api) -> None:
    transaction = _vote(api, voter=IDLE_MEMBER, key=api.idle_consortium.keys[IDLE_MEMBER])
    started = time.monotonic()
    reply = post(api, transaction, client=api.idle_client, params={"wait": "0.2"})
    assert time.monotonic() - started >= 0.2
    assert ok(reply, display.AcceptedTransaction, 202) == {
        "tx_id": transaction.tx_id.hex(),
        "status": "pending",
    }
    assert reply.headers["Location"] == f"/v1/transactions/{transaction.tx_id.hex()}"
    status = get(api, reply.headers["Location"], client=api.idle_client)
    assert ok(status, display.TransactionStatus)["status"] == "pending"
    again = post(api, transaction, client=api.idle_client)
    assert ok(again, display.AcceptedTransaction, 202)["status"] == "pending"
    api.idle.mempool.remove([transaction.tx_id])


def _vote(api: Api, *, voter: str, key: crypto.PrivateKey) -> Transaction:
    """A transaction of the idle consortium that applies on its tip but is never committed
    (the idle node does not run): ``voter`` delegates a role to a fresh key."""
    return Transaction.create(
        key,
        chain_id=api.idle_consortium.chain_id,
        contract="membership",
        action="delegate",
        args={
            "member_id": voter,
            "signer": crypto.public_key_bytes(crypto.generate_key()),
            "roles": ["deeds.issue"],
            "expiry_height": None,
        },
        nonce=next(api.nonces),
        expiry_height=1_000,
    )


def test_a_full_mempool_and_a_signer_over_quota_are_told_to_retry(api: Api) -> None:
    member_key = api.idle_consortium.keys[IDLE_MEMBER]
    neighbour = api.idle_consortium.keys[IDLE_NEIGHBOUR]
    accepted = [_vote(api, voter=IDLE_MEMBER, key=member_key) for _ in range(2)]
    accepted.append(_vote(api, voter=IDLE_NEIGHBOUR, key=neighbour))
    for transaction in accepted[:2]:
        ok(post(api, transaction, client=api.idle_client), display.AcceptedTransaction, 202)
    over_quota = post(api, _vote(api, voter=IDLE_MEMBER, key=member_key), client=api.idle_client)
    assert problem(over_quota, "signer_quota")["status"] == 429
    assert over_quota.headers["Retry-After"] == "1"
    ok(post(api, accepted[2], client=api.idle_client), display.AcceptedTransaction, 202)
    full = post(api, _vote(api, voter=IDLE_NEIGHBOUR, key=neighbour), client=api.idle_client)
    assert problem(full, "mempool_full")["status"] == 503
    assert full.headers["Retry-After"] == "1"
    api.idle.mempool.remove(transaction.tx_id for transaction in accepted)


def test_an_idle_node_gossips_its_pending_transactions_again(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Gossip goes out once, at submission; a node that stays idle with work pending (its
    # primary may never have received it: a partition, a restart) sends it again.
    transaction = _vote(api, voter=IDLE_MEMBER, key=api.idle_consortium.keys[IDLE_MEMBER])
    ok(post(api, transaction, client=api.idle_client), display.AcceptedTransaction, 202)
    sent: list[bytes] = []
    monkeypatch.setattr(api.idle.transport, "broadcast", sent.append)
    try:
        assert not api.idle.replica.block_in_progress
        for _ in range(api.idle.settings.revalidation_idle_ticks - 1):
            api.idle._revalidate_when_idle()
        assert sent == []
        api.idle._revalidate_when_idle()
        (frame,) = sent
        gossip = decode_frame(frame)
        assert gossip.sender == IDLE_MEMBER
        assert [tx.tx_id for tx in gossip.transactions] == [transaction.tx_id]
    finally:
        api.idle.mempool.remove([transaction.tx_id])


def test_a_badly_signed_transaction_is_rejected(api: Api) -> None:
    transaction = api.anchor("2026-SIG-001")
    forged_signature = crypto.sign(
        api.key, crypto.Domain.transaction(api.consortium.chain_id), b"something else"
    )
    forged = Transaction.from_canonical(
        {**transaction.to_canonical(), "signature": forged_signature}
    )
    document = problem(post(api, forged), "bad_signature")
    assert document["status"] == 422
    assert document["title"] == "The transaction was rejected"


def test_a_transaction_for_another_consortium_is_rejected(api: Api) -> None:
    transaction = api.anchor("2026-CHN-001", chain_id=sha256(b"another consortium"))
    assert problem(post(api, transaction), "wrong_chain")["status"] == 422


def test_a_transaction_for_a_contract_not_run_here_is_rejected(api: Api) -> None:
    transaction = api.anchor("2026-CTR-001", contract="cadastre")
    assert problem(post(api, transaction), "unknown_contract")["status"] == 422


def test_a_transaction_with_bad_arguments_is_rejected_naming_the_argument(api: Api) -> None:
    transaction = api.anchor("2026-ARG-001", args={"kind": "poem"})
    assert problem(post(api, transaction), "invalid_arguments")["detail"].startswith("kind:")


def test_an_expired_transaction_is_rejected(api: Api) -> None:
    transaction = api.anchor("2026-EXP-001", expiry_height=1)
    assert problem(post(api, transaction), "expired_transaction")["status"] == 422


MALFORMED_JSON_BODIES = [
    (b"not json", "invalid_body"),
    (b"", "invalid_body"),
    (b"\xff\xfe\x00", "invalid_body"),
    (b"[" * 3000, "invalid_body"),
    (b'["transaction"]', "invalid_body"),
    (b'{"transaction": "00", "wait": 5}', "invalid_body"),
    (b'{"tx": "00"}', "invalid_body"),
    (b'{"transaction": 5}', "invalid_transaction"),
    (b'{"transaction": ""}', "invalid_transaction"),
    (b'{"transaction": "zz"}', "invalid_transaction"),
    (b'{"transaction": "ABCD"}', "invalid_transaction"),
    (b'{"transaction": "abc"}', "invalid_transaction"),
    (b'{"transaction": "c0"}', "invalid_transaction"),
    (b'{"transaction": "ca3f800000"}', "invalid_transaction"),
]


@pytest.mark.parametrize(("body", "code"), MALFORMED_JSON_BODIES)
def test_a_malformed_json_submission_is_a_problem(api: Api, body: bytes, code: str) -> None:
    reply = post_raw(api, data=body, headers={"Content-Type": "application/json"})
    problem(reply, code)


def test_a_submission_names_the_field_that_does_not_decode(api: Api) -> None:
    canonical = api.anchor("2026-FLD-001").to_canonical()
    without_action = {name: value for name, value in canonical.items() if name != "action"}
    reply = post_raw(
        api,
        data=encoding.pack(without_action),
        headers={"Content-Type": "application/msgpack"},
    )
    assert "'action'" in problem(reply, "invalid_transaction")["detail"]
    bad_contract = encoding.pack({**canonical, "contract": "Not A Name"})
    reply = post_raw(api, json={"transaction": bad_contract.hex()})
    assert "Transaction.contract" in problem(reply, "invalid_transaction")["detail"]
    reordered = api.anchor("2026-FLD-002").encoded[::-1]
    reply = post_raw(api, data=reordered, headers={"Content-Type": "application/msgpack"})
    assert problem(reply, "invalid_transaction")["detail"].startswith("transaction:")


def test_a_body_over_the_limit_is_refused(api: Api) -> None:
    oversized = b"0" * (BODY_BYTES_MAX + 1)
    reply = post_raw(api, data=oversized, headers={"Content-Type": "application/json"})
    assert str(BODY_BYTES_MAX) in problem(reply, "body_too_large")["detail"]

    async def chunks() -> Any:
        for _ in range(BODY_BYTES_MAX // 1000 + 1):
            yield b"0" * 1000

    reply = post_raw(api, data=chunks(), headers={"Content-Type": "application/msgpack"})
    problem(reply, "body_too_large")


@pytest.mark.parametrize("media_type", ["text/plain", "application/octet-stream", "image/png"])
def test_a_body_of_another_media_type_is_refused(api: Api, media_type: str) -> None:
    body = api.anchor("2026-MED-001").encoded
    reply = post_raw(api, data=body, headers={"Content-Type": media_type})
    problem(reply, "unsupported_media_type")


@pytest.mark.parametrize(
    "query", [{"wait": "soon"}, {"wait": "31"}, {"wait": "-1"}, {"wait": "nan"}, {"wiat": "1"}]
)
def test_submission_parameters_are_validated(api: Api, query: dict[str, str]) -> None:
    problem(post(api, api.anchor("2026-PRM-001"), params=query), "invalid_parameter")


@pytest.mark.parametrize("wait", ["0", "0.0", "30", "1.1754943508222875e-38", "3E-2"])
def test_any_decimal_wait_within_bounds_is_accepted(api: Api, wait: str) -> None:
    ok(post(api, api.committed[0], params={"wait": wait}), display.CommittedTransaction)


def test_submissions_are_rate_limited_per_address(api: Api) -> None:
    garbage = {"data": b"{}", "headers": {"Content-Type": "application/json"}}
    for _ in range(2):  # the burst; even a refused submission spends a token
        problem(post_raw(api, client=api.limited, **garbage), "invalid_body")
    reply = post_raw(api, client=api.limited, **garbage)
    assert "bursts of 2" in problem(reply, "rate_limited")["detail"]
    assert int(reply.headers["Retry-After"]) >= 1
    ok(get(api, "/v1/status", client=api.limited), display.NodeStatus)  # reads are not limited


def test_the_limiter_refills_and_remembers_a_bounded_number_of_addresses() -> None:
    now = [0.0]
    limiter = SubmissionLimiter(2.0, 3, clients_max=2, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] = 0.5
    assert limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(0.5)
    limiter.take("b")
    limiter.take("c")
    assert len(limiter) == 2
    assert limiter.take("a") is None  # forgotten, hence a new full bucket


# --- reading transactions and receipts --------------------------------------------------------


def test_a_receipt_verifies_offline_against_the_certified_header(api: Api) -> None:
    for position, transaction in enumerate(api.committed):
        url = f"/v1/transactions/{transaction.tx_id.hex()}"
        document = ok(get(api, url), display.TransactionStatus)
        receipt = Receipt.model_validate_json(json.dumps(document["receipt"]))
        assert (document["position"], receipt.position, receipt.header.tx_count) == (
            position,
            position,
            3,
        )
        assert receipt.header.block_hash == bytes.fromhex(document["block_hash"])
        assert len(receipt.inclusion_proof) == [2, 2, 1][position]  # the third leaf is promoted
        proven = verify_receipt(receipt, api.consortium.genesis, anchors=receipt_anchors())
        assert proven.transaction.tx_id == transaction.tx_id
        assert proven.height == receipt.height
        assert merkle.verify_inclusion(
            receipt.transaction,
            position,
            receipt.header.tx_count,
            list(receipt.inclusion_proof),
            receipt.header.tx_root,
        )
        assert (
            display.to_display(receipt_for(api.node.store, transaction.tx_id))
            == document["receipt"]
        )


def test_transaction_ids_are_validated_and_unknown_ones_are_not_found(api: Api) -> None:
    for bad in ["xyz", "A" * 64, "a" * 63, "a" * 65, "g" * 64]:
        problem(get(api, f"/v1/transactions/{bad}"), "invalid_id")
    problem(get(api, f"/v1/transactions/{'ab' * 32}"), "unknown_transaction")
    assert receipt_for(api.node.store, bytes(32)) is None


# --- blocks -----------------------------------------------------------------------------------


def test_the_latest_block_and_a_block_by_height(api: Api) -> None:
    latest = ok(get(api, "/v1/blocks/latest"), display.BlockDocument)
    assert latest["height"] == api.node.store.height
    assert "transactions" not in latest
    first = ok(get(api, "/v1/blocks/1", params={"transactions": "true"}), display.BlockDocument)
    assert first["transaction_ids"] == [tx.tx_id.hex() for tx in api.committed]
    assert first["transactions"] == display.to_display(api.committed)
    header = BlockHeader.from_bytes(bytes.fromhex(first["header_bytes"]))
    assert header.block_hash.hex() == first["block_hash"] == first["certificate"]["block_hash"]
    assert header.prev_hash == api.consortium.chain_id


@pytest.mark.parametrize(
    "height", ["0", "-1", "abc", "1.5", "01x", "9223372036854775808", "1" * 30, "%20"]
)
def test_a_bad_height_is_refused_before_the_store_is_asked(api: Api, height: str) -> None:
    problem(get(api, URL(f"/v1/blocks/{height}", encoded=True)), "invalid_height")


def test_a_height_above_the_tip_is_not_found(api: Api) -> None:
    tip = api.node.store.height
    detail = problem(get(api, f"/v1/blocks/{tip + 1}"), "unknown_block")["detail"]
    assert f"the tip is {tip}" in detail
    problem(get(api, f"/v1/blocks/{2**63 - 1}"), "unknown_block")
    problem(get(api, "/v1/blocks/1", params={"transactions": "yes"}), "invalid_parameter")


def test_the_bundle_route_serves_consecutive_canonical_frames(api: Api) -> None:
    store = api.node.store
    reply = get(api, "/v1/bundle", params={"from": "0", "count": "2"})
    assert reply.status == 200 and reply.content_type == "application/vnd.sceau.bundle"
    assert int(reply.headers["Sceau-Tip-Height"]) == store.height
    assert reply.body == genesis_frame(store.genesis) + block_frame(
        store.block(1), store.certificate(1)
    )
    genesis, entries = parse_frames(reply.body, 0)
    assert genesis == api.consortium.genesis and [entry.frame for entry in entries] == [1]
    rest = get(api, "/v1/bundle", params={"from": "1"})
    _, entries = parse_frames(rest.body, 1)
    assert [entry.block for entry in entries] == list(store.blocks(1, len(entries)))
    assert len(entries) == min(store.height, 256)
    # The idle node's chain is empty: its bundle is the genesis frame alone.
    idle = get(api, "/v1/bundle", client=api.idle_client)
    assert idle.body == genesis_frame(api.idle_consortium.genesis)
    problem(get(api, "/v1/bundle", params={"from": "1"}, client=api.idle_client), "unknown_block")


@pytest.mark.parametrize(
    "query",
    [{"from": "-1"}, {"from": "x"}, {"count": "0"}, {"count": "257"}, {"since": "1"}],
)
def test_bundle_parameters_are_validated(api: Api, query: dict[str, str]) -> None:
    problem(get(api, "/v1/bundle", params=query), "invalid_parameter")


def test_export_from_the_api_writes_a_bundle_that_passes_the_audit(
    api: Api, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from contracts.replay import EngineReplayer
    from ledger.audit import audit_bundle
    from node.tools.cli import main

    url = str(api.client.make_url("")).rstrip("/")
    path = tmp_path / "live.bundle"

    def export(*options: str) -> int:
        command = ["export", str(path), "--api", url, *options]
        return api.run(api.loop.run_in_executor(None, main, command))

    assert export("--batch", "1") == 0
    assert "it now holds blocks 1 to" in capsys.readouterr().out
    report = audit_bundle(path, api.consortium.genesis, EngineReplayer(), workers=1)
    assert report.ok, [str(failure) for failure in report.failures]
    assert report.blocks >= 1
    assert report.tip_block_hash == api.node.store.block(report.blocks).block_hash
    assert export() == 0  # again: appends what was committed since, if anything
    other = LocalConsortium.create([(MEMBER, "Ailleurs")], seed=b"another", contracts=[])
    path.unlink()
    BundleWriter.open(path, other.genesis).close()
    assert export() == 2
    assert "another chain" in capsys.readouterr().err


def test_an_empty_chain_has_no_latest_block(api: Api) -> None:
    document = problem(get(api, "/v1/blocks/latest", client=api.idle_client), "unknown_block")
    assert "no block yet" in document["detail"]


# --- acts -------------------------------------------------------------------------------------


def test_an_act_with_a_slash_in_its_reference(api: Api) -> None:
    document = ok(get(api, f"/v1/acts/{MEMBER}/2026/BATCH-1"), display.ActDocument)
    act = document["act"]
    assert (act["issuer"], act["reference"], act["status"]) == (MEMBER, "2026/BATCH-1", "in_force")
    assert act["digest"] == hashlib.sha256(b"2026/BATCH-1").hexdigest()
    encoded = ok(
        get(api, URL(f"/v1/acts/{MEMBER}/2026%2FBATCH-1", encoded=True)), display.ActDocument
    )
    assert encoded == document


def test_a_document_digest_finds_its_act(api: Api) -> None:
    digest = hashlib.sha256(b"2026/BATCH-2").hexdigest()
    document = ok(get(api, f"/v1/digests/{digest}"), display.DigestDocument)
    assert document["digest"] == digest
    assert [(act["reference"], act["status"]) for act in document["acts"]] == [
        ("2026/BATCH-2", "in_force")
    ]
    problem(get(api, f"/v1/digests/{hashlib.sha256(b'forged').hexdigest()}"), "unknown_act")
    for bad in ["abc", "A" * 64, "0" * 66]:
        problem(get(api, f"/v1/digests/{bad}"), "invalid_query")


def test_the_history_of_an_act(api: Api) -> None:
    document = ok(get(api, f"/v1/history/{MEMBER}/2026/BATCH-0"), display.HistoryDocument)
    (entry,) = document["history"]
    assert (entry["action"], entry["status"]) == ("anchor", "in_force")
    assert entry["tx_id"] == api.committed[0].tx_id.hex()
    assert entry["signer"] == crypto.public_key_to_text(crypto.public_key_bytes(api.key))


def test_an_issuers_acts_by_date(api: Api) -> None:
    url = f"/v1/issuers/{MEMBER}/acts"
    everything = ok(get(api, url), display.IssuerActsDocument)
    assert {"2026/BATCH-0", "2026/BATCH-1", "2026/BATCH-2"} <= {
        act["reference"] for act in everything["acts"]
    }
    window = {"from": "2026-11-01", "to": "2026-11-30", "limit": "2"}
    assert len(ok(get(api, url, params=window), display.IssuerActsDocument)["acts"]) == 2
    none = ok(get(api, url, params={"to": "2000-01-01"}), display.IssuerActsDocument)
    assert none["acts"] == []


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ({"from": "2026-13-01"}, "invalid_query"),
        ({"from": "yesterday"}, "invalid_query"),
        ({"from": "2026-12-01", "to": "2026-01-01"}, "invalid_query"),
        ({"limit": "0"}, "invalid_query"),
        ({"limit": "1001"}, "invalid_query"),
        ({"limit": "ten"}, "invalid_query"),
        ({"from": "2026-01-01&limit=1"}, "invalid_query"),
        ({"since": "2026-01-01"}, "invalid_parameter"),
    ],
)
def test_an_issuers_acts_query_is_validated(api: Api, query: dict[str, str], code: str) -> None:
    problem(get(api, f"/v1/issuers/{MEMBER}/acts", params=query), code)


def test_act_paths_are_validated_and_unknown_acts_not_found(api: Api) -> None:
    problem(get(api, f"/v1/acts/{MEMBER}/2026-NONE"), "unknown_act")
    problem(get(api, f"/v1/history/{MEMBER}/2026-NONE"), "unknown_act")
    problem(get(api, "/v1/acts/Not_A_Member/2026-DEL-042"), "invalid_query")
    problem(get(api, URL("/v1/acts/a%2Fb/ref", encoded=True)), "invalid_query")
    problem(get(api, f"/v1/acts/{MEMBER}/-starts-with-a-dash"), "invalid_query")
    problem(get(api, URL(f"/v1/acts/{MEMBER}/a%3Fb", encoded=True)), "invalid_query")
    problem(get(api, "/v1/issuers/NOPE/acts"), "invalid_query")


def test_act_routes_of_a_consortium_without_the_deeds_contract(api: Api) -> None:
    for url in [
        f"/v1/acts/{IDLE_MEMBER}/2026-1",
        f"/v1/digests/{'0' * 64}",
        f"/v1/history/{IDLE_MEMBER}/2026-1",
        f"/v1/issuers/{IDLE_MEMBER}/acts",
    ]:
        problem(get(api, url, client=api.idle_client), "contract_not_enabled")


# --- state proofs -----------------------------------------------------------------------------


def _verify_state(api: Api, document: dict[str, Any], members: tuple[Member, ...]) -> None:
    """What a client holding the genesis checks: the header is certified, its state root is
    the proof's root, and the proof shows the value (or its absence)."""
    header = BlockHeader.from_bytes(bytes.fromhex(document["header_bytes"]))
    certificate = CommitCertificate.from_bytes(bytes.fromhex(document["certificate_bytes"]))
    assert certificate.block_hash == header.block_hash
    certificate.verify(header.chain_id, members)
    assert header.state_root.hex() == document["state_root"]
    value = None if document["value"] is None else bytes.fromhex(document["value"])
    proof = StateProof.from_canonical(
        {
            name: (
                [bytes.fromhex(item) for item in part]
                if isinstance(part, list)
                else None
                if part is None
                else bytes.fromhex(part)
            )
            for name, part in document["proof"].items()
        }
    )
    state_key = bytes.fromhex(document["state_key"])
    assert verify_state_proof(header.state_root, state_key, value, proof)
    assert not verify_state_proof(header.state_root, state_key, (value or b"") + b"x", proof)


def test_a_state_value_comes_with_a_proof_against_the_certified_tip(api: Api) -> None:
    key = act_key(MEMBER, "2026/BATCH-1")
    document = ok(get(api, f"/v1/state/deeds/{key.hex()}"), display.StateDocument)
    assert document["height"] == api.node.store.height
    assert bytes.fromhex(document["state_key"]) == b"deeds/" + key
    assert encoding.unpack(bytes.fromhex(document["value"]))["reference"] == "2026/BATCH-1"
    _verify_state(api, document, api.consortium.genesis.members)


def test_an_absent_state_key_comes_with_a_proof_of_absence(api: Api) -> None:
    document = ok(get(api, f"/v1/state/deeds/{b'nothing here'.hex()}"), display.StateDocument)
    assert document["value"] is None
    _verify_state(api, document, api.consortium.genesis.members)


def test_the_state_of_an_empty_chain_has_no_header_yet(api: Api) -> None:
    reply = get(api, f"/v1/state/membership/{b'members'.hex()}", client=api.idle_client)
    document = ok(reply, display.StateDocument)
    assert document["height"] == 0
    assert document["header"] is None and document["certificate"] is None
    assert document["state_root"] == api.idle.store.tip.state_root.hex()
    proof = api.idle.store.state_prove(b"membership/members")
    assert verify_state_proof(
        api.idle.store.tip.state_root,
        b"membership/members",
        bytes.fromhex(document["value"]),
        proof,
    )


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("/v1/state/Deeds/00", "invalid_parameter"),
        ("/v1/state/deeds/zz", "invalid_parameter"),
        ("/v1/state/deeds/abc", "invalid_parameter"),
        (f"/v1/state/deeds/{'00' * 1025}", "invalid_parameter"),
        ("/v1/state/cadastre/00", "contract_not_enabled"),
    ],
)
def test_state_paths_are_validated(api: Api, path: str, code: str) -> None:
    problem(get(api, path), code)


# --- membership and operations ----------------------------------------------------------------


def test_the_members_parameters_and_proposals(api: Api) -> None:
    members = ok(get(api, "/v1/members"), display.MembersDocument)
    (member,) = members["members"]
    assert member["id"] == MEMBER
    assert member["public_key"] == crypto.public_key_to_text(crypto.public_key_bytes(api.key))
    parameters = ok(get(api, "/v1/parameters"), display.ParametersDocument)
    assert parameters["parameters"] == api.consortium.genesis.parameters.model_dump(mode="json")
    assert ok(get(api, "/v1/proposals"), display.ProposalsDocument)["proposals"] == []


def test_the_status_of_the_node(api: Api) -> None:
    status = ok(get(api, "/v1/status"), display.NodeStatus)
    assert status["member_id"] == MEMBER
    assert status["chain_id"] == api.consortium.chain_id.hex()
    assert status["height"] == api.node.store.height


def test_health_is_ok_while_the_node_runs_and_unhealthy_otherwise(api: Api) -> None:
    assert ok(get(api, "/healthz"), display.Health) == {"status": "ok"}
    assert "ticker" in problem(get(api, "/healthz", client=api.idle_client), "unhealthy")["detail"]


PROMETHEUS_SAMPLE = re.compile(
    r'(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?P<labels>\{[a-z_]+="[^"\\\n]*"(?:,[a-z_]+="[^"\\\n]*")*\})?'
    r" (?P<value>-?[0-9]+(?:\.[0-9]+)?(?:e[+-]?[0-9]+)?)"
)


def test_the_metrics_are_prometheus_text(api: Api) -> None:
    get(api, "/v1/status")
    reply = get(api, "/metrics")
    assert reply.status == 200
    assert reply.content_type.startswith("text/plain; version=0.0.4")
    types: dict[str, str] = {}
    samples: dict[str, float] = {}
    for line in reply.body.decode().splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            types[name] = kind
        elif not line.startswith("# HELP "):
            match = PROMETHEUS_SAMPLE.fullmatch(line)
            assert match, line
            samples[match["name"] + (match["labels"] or "")] = float(match["value"])
    assert types == {
        "sceau_height": "gauge",
        "sceau_view": "gauge",
        "sceau_view_changes_total": "counter",
        "sceau_blocks_committed_total": "counter",
        "sceau_transactions_committed_total": "counter",
        "sceau_commit_latency_ms": "histogram",
        "sceau_mempool_transactions": "gauge",
        "sceau_mempool_bytes": "gauge",
        "sceau_peers_connected": "gauge",
        "sceau_messages_rejected_total": "counter",
        "sceau_frames_rejected_by_peer_total": "counter",
        "sceau_transport_events_total": "counter",
        "sceau_proposals_rejected_total": "counter",
        "sceau_evidence_total": "counter",
        "sceau_api_requests_total": "counter",
        "sceau_api_query_failures_total": "counter",
        "sceau_checkpoints_kept_total": "counter",
        "sceau_checkpoint_size": "gauge",
        "sceau_checkpoint_height": "gauge",
        "sceau_checkpoints_signed_total": "counter",
        "sceau_checkpoint_signatures_received_total": "counter",
        "sceau_checkpoint_signatures_refused_total": "counter",
        "sceau_checkpoint_fetches_total": "counter",
        "sceau_witness_pushes_total": "counter",
        "sceau_witness_cosignatures_total": "counter",
        "sceau_witness_cosigned_size": "gauge",
        "sceau_witness_failures_total": "counter",
        "sceau_witness_latency_ms": "summary",
    }
    assert samples["sceau_height"] == api.node.store.height
    assert samples["sceau_blocks_committed_total"] >= 1
    assert samples["sceau_peers_connected"] == 0
    buckets = [
        value for key, value in samples.items() if key.startswith("sceau_commit_latency_ms_bucket")
    ]
    assert buckets == sorted(buckets)
    assert buckets[-1] == samples["sceau_commit_latency_ms_count"] >= 1
    assert samples['sceau_api_requests_total{route="/v1/status",status="200"}'] >= 1


def test_unknown_routes_and_methods_are_problems(api: Api) -> None:
    problem(get(api, "/v1/nothing"), "not_found")
    problem(get(api, URL("/v1//blocks", encoded=True)), "not_found")
    reply = api.run(fetch(api.client, "DELETE", "/v1/status"))
    assert "GET" in problem(reply, "method_not_allowed")["detail"]
    assert "GET" in reply.headers["Allow"]
    problem(api.run(fetch(api.client, "POST", "/v1/blocks/latest")), "method_not_allowed")


def test_an_internal_error_is_logged_and_answered_without_details(
    api: Api, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*arguments: Any, **options: Any) -> Any:
        raise RuntimeError("secret detail of a bug")

    monkeypatch.setattr(display, "block_document", broken)
    with caplog.at_level(logging.ERROR, logger="sceau.api"):
        reply = get(api, "/v1/blocks/1")
    document = problem(reply, "internal_error")
    assert "secret" not in reply.body.decode()
    assert document["detail"] == "the node failed to answer; the error is in its log"
    assert "secret detail of a bug" in caplog.text
    requests = api.client.server.app[API_KEY].requests
    assert requests.pop(("/v1/blocks/{height}", 500)) == 1  # expected here, not elsewhere


# --- msgpack ----------------------------------------------------------------------------------


def _readable_urls(api: Api) -> list[str]:
    tx_id = api.committed[1].tx_id.hex()
    return [
        f"/v1/transactions/{tx_id}",
        "/v1/blocks/latest?transactions=true",
        "/v1/blocks/1",
        f"/v1/acts/{MEMBER}/2026/BATCH-1",
        f"/v1/digests/{hashlib.sha256(b'2026/BATCH-1').hexdigest()}",
        f"/v1/history/{MEMBER}/2026/BATCH-1",
        f"/v1/issuers/{MEMBER}/acts",
        f"/v1/state/deeds/{act_key(MEMBER, '2026/BATCH-1').hex()}",
        "/v1/members",
        "/v1/parameters",
        "/v1/proposals",
        "/v1/status",
        "/healthz",
    ]


def test_msgpack_clients_get_the_same_documents_with_bytes_as_bytes(api: Api) -> None:
    for url in _readable_urls(api):
        as_json = get(api, url)
        as_msgpack = get(api, url, headers={"Accept": "application/msgpack"})
        assert as_msgpack.status == as_json.status == 200, url
        assert as_msgpack.content_type == "application/msgpack"
        shown, expected = display.to_display(encoding.unpack(as_msgpack.body)), as_json.json()
        if url == "/v1/status":  # the uptime may tick between the two requests
            shown.pop("uptime_s")
            expected.pop("uptime_s")
        assert shown == expected, url
    committed = encoding.unpack(
        get(api, _readable_urls(api)[0], headers={"Accept": "application/msgpack"}).body
    )
    assert committed["tx_id"] == api.committed[1].tx_id
    assert Transaction.from_bytes(committed["receipt"]["transaction"]) == api.committed[1]


@pytest.mark.parametrize(
    ("accept", "msgpack"),
    [
        ("application/msgpack", True),
        ("application/x-msgpack, application/json;q=0.5", True),
        ("application/json, application/msgpack;q=0.9", False),
        ("application/msgpack;q=0", False),
        ("*/*", False),
        ("text/html", False),
        ("application/msgpack;q=banana", False),
    ],
)
def test_content_negotiation(api: Api, accept: str, msgpack: bool) -> None:
    reply = get(api, "/v1/members", headers={"Accept": accept})
    expected = "application/msgpack" if msgpack else "application/json"
    assert reply.content_type.startswith(expected)
    assert reply.headers["Vary"] == "Accept"


def test_problems_stay_json_for_msgpack_clients(api: Api) -> None:
    reply = get(api, "/v1/blocks/0", headers={"Accept": "application/msgpack"})
    problem(reply, "invalid_height")


# --- the OpenAPI document ---------------------------------------------------------------------


def _references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for name, item in value.items():
            if name == "$ref":
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def test_the_openapi_document_describes_every_route(api: Api) -> None:
    reply = get(api, "/openapi.json")
    assert reply.status == 200
    document = reply.json()
    assert document["openapi"].startswith("3.1")
    documented = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        for method in operations
    }
    served = {
        (route.method, re.sub(r"\{([a-z_]+):[^}]+\}", r"{\1}", route.resource.canonical))
        for route in api.client.server.app.router.routes()
        if route.method != "HEAD"
    }
    assert documented == served == {(route.method, route.openapi_path) for route in ROUTES}
    schemas = document["components"]["schemas"]
    for reference in _references(document):
        assert reference.startswith("#/components/schemas/")
        assert reference.removeprefix("#/components/schemas/") in schemas, reference
    for path, operations in document["paths"].items():
        for operation in operations.values():
            placeholders = set(re.findall(r"\{([a-z_]+)\}", path))
            path_parameters = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert placeholders == path_parameters, path
            for parameter in operation["parameters"]:
                assert parameter["schema"], parameter
                assert parameter["required"] or parameter["in"] == "query"
            assert "default" in operation["responses"]
            for status, response in operation["responses"].items():
                if status == "default" or int(status) >= 400:
                    assert list(response["content"]) == ["application/problem+json"]
    assert set(schemas["Problem"]["required"]) == {"type", "title", "status", "detail", "code"}


# --- fault injection (tests only) --------------------------------------------------------------


@pytest.fixture
def debug_client(api: Api) -> Iterator[TestClient]:
    """The idle node's API with the test-only fault_injection switch on (its two members give
    it one peer, IDLE_NEIGHBOUR, whose link can be cut; its transport is never started)."""
    config = api.idle_client.server.app[API_KEY].config.model_copy(update={"fault_injection": True})
    client = api.run(start_client(api.idle, config, debug=True))
    try:
        yield client
        assert not [key for key in client.server.app[API_KEY].requests if key[1] == 500]
    finally:
        api.idle.transport.cut_links([])
        api.run(client.close())


def put_links(api: Api, client: TestClient, **options: Any) -> Reply:
    return api.run(fetch(client, "PUT", "/v1/debug/links", **options))


def test_without_fault_injection_there_is_no_debug_route(api: Api) -> None:
    problem(get(api, "/v1/debug/links"), "not_found")
    problem(put_links(api, api.client, json={"cut": []}), "not_found")
    assert "/v1/debug/links" not in get(api, "/openapi.json").json()["paths"]


def test_with_fault_injection_links_are_cut_and_healed_through_the_api(
    api: Api, debug_client: TestClient
) -> None:
    assert ok(get(api, "/v1/debug/links", client=debug_client), LinksDocument) == {"cut": []}
    reply = put_links(api, debug_client, json={"cut": [IDLE_NEIGHBOUR]})
    assert ok(reply, LinksDocument) == {"cut": [IDLE_NEIGHBOUR]}
    assert api.idle.transport.links_cut == [IDLE_NEIGHBOUR]
    assert get(api, "/v1/debug/links", client=debug_client).json() == {"cut": [IDLE_NEIGHBOUR]}
    assert put_links(api, debug_client, json={"cut": []}).json() == {"cut": []}
    assert api.idle.transport.links_cut == []
    paths = get(api, "/openapi.json", client=debug_client).json()["paths"]
    assert set(paths["/v1/debug/links"]) == {"get", "put"}
    assert {(route.method, route.path) for route in DEBUG_ROUTES} == {
        ("GET", "/v1/debug/links"),
        ("PUT", "/v1/debug/links"),
    }


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[]",
        b'{"cut": "commune-voisine"}',
        b'{"cut": [], "heal": true}',
        b'{"cut": [1]}',
        b'{"cut": ["ville-valbrune"]}',  # the node itself
        b'{"cut": ["nobody-here"]}',
        json.dumps({"cut": ["commune-voisine"] * 65}).encode(),
    ],
)
def test_a_malformed_link_cut_is_a_problem_and_changes_nothing(
    api: Api, debug_client: TestClient, body: bytes
) -> None:
    reply = put_links(api, debug_client, data=body, headers={"Content-Type": "application/json"})
    problem(reply, "invalid_links")
    assert api.idle.transport.links_cut == []


@pytest.mark.parametrize(
    ("api_listen", "allowed"),
    [
        ("127.0.0.1:8700", True),
        ("127.8.9.10:8700", True),
        ("[::1]:8700", True),
        ("localhost:8700", True),
        ("0.0.0.0:8700", False),
        ("[::]:8700", False),
        ("192.168.1.20:8700", False),
        ("sceau.valbrune.example:8700", False),
    ],
)
def test_fault_injection_is_refused_unless_the_api_listens_on_loopback(
    api_listen: str, allowed: bool
) -> None:
    settings = {
        "member_id": MEMBER,
        "data_dir": "data",
        "genesis_file": "genesis.json",
        "key_file": "node.pem",
        "api_listen": api_listen,
        "fault_injection": True,
    }
    if allowed:
        assert load_config(overrides=settings, environment={}).fault_injection
    else:
        with pytest.raises(ConfigError, match="fault_injection is a test-only switch"):
            load_config(overrides=settings, environment={})
    assert not load_config(
        overrides={**settings, "fault_injection": False}, environment={}
    ).fault_injection


def test_a_link_cut_must_be_json(api: Api, debug_client: TestClient) -> None:
    reply = put_links(api, debug_client, data=b"cut", headers={"Content-Type": "text/plain"})
    problem(reply, "unsupported_media_type")


def test_the_display_form_of_a_model_is_its_json_form(api: Api) -> None:
    block = api.node.store.block(1)
    certificate = api.node.store.certificate(1)
    genesis: Genesis = api.consortium.genesis
    # Without bytes in its arguments: pydantic cannot dump bytes held in ``Any`` as JSON.
    transaction = Transaction.create(
        api.key,
        chain_id=genesis.chain_id,
        contract="deeds",
        action="withdraw",
        args={"issuer": MEMBER, "reference": "2026/BATCH-0", "reason": "erreur matérielle"},
        nonce=1,
        expiry_height=10,
    )
    for model in [block.header, certificate, transaction, genesis.members[0], genesis]:
        assert display.to_display(model) == json.loads(model.model_dump_json())


def test_the_display_rules() -> None:
    public_key = crypto.public_key_bytes(crypto.key_from_seed(bytes(32)))
    assert display.to_display(
        {
            "signer": public_key,
            "public_key": [public_key],
            "digest": public_key,
            "short_signer": b"\x01",
            b"\xab": (1, None, True, "text"),
            7: b"",
        }
    ) == {
        "signer": crypto.public_key_to_text(public_key),
        "public_key": [crypto.public_key_to_text(public_key)],
        "digest": public_key.hex(),
        "short_signer": "01",
        "ab": [1, None, True, "text"],
        "7": "",
    }
    assert display.to_display({"signer": b"\x01" * 31}) == {"signer": "01" * 31}
    with pytest.raises(TypeError):
        display.to_display({"float": 1.5})


# --- hostile input ----------------------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
MEDIA_TYPES = st.sampled_from(
    ["application/json", "application/msgpack", "application/json; charset=utf-8", "text/plain"]
)


@st.composite
def submission_bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "hex", "mutated", "mutated_hex"]))
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "json":
        return json.dumps(draw(JSON_VALUES)).encode()
    if kind == "hex":
        return json.dumps({"transaction": draw(st.binary(max_size=200)).hex()}).encode()
    data = bytearray(draw(st.sampled_from(_SAMPLE_TRANSACTIONS)))
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    if kind == "mutated":
        return bytes(data)
    return json.dumps({"transaction": bytes(data).hex()}).encode()


_SAMPLE_KEY = crypto.key_from_seed(sha256(b"hostile"))
_SAMPLE_TRANSACTIONS = [
    Transaction.create(
        _SAMPLE_KEY,
        chain_id=sha256(b"some chain"),
        contract="deeds",
        action="anchor",
        args={"issuer": "x", "reference": "r", "digest": bytes(32), "nested": [{"a": [1, b""]}]},
        nonce=nonce,
        expiry_height=10,
    ).encoded
    for nonce in (0, 2**40)
]


def _assert_answered(reply: Reply) -> None:
    assert reply.status < 500, reply.body[:300]
    if reply.status >= 400:
        document = reply.json()
        display.Problem.model_validate(document)
        assert reply.content_type.startswith("application/problem+json")
        assert PROBLEM_CODE.fullmatch(document["code"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(body=submission_bodies(), media_type=MEDIA_TYPES, wait=st.sampled_from([None, "0", "x"]))
def test_random_submissions_never_fail_the_node(
    api: Api, body: bytes, media_type: str, wait: str | None
) -> None:
    params = {} if wait is None else {"wait": wait}
    reply = post_raw(api, data=body, headers={"Content-Type": media_type}, params=params)
    _assert_answered(reply)
    assert reply.status in (400, 413, 415, 422), reply.body[:300]


TEMPLATES = [
    "/v1/transactions/{}",
    "/v1/blocks/{}",
    "/v1/acts/{}/{}",
    "/v1/digests/{}",
    "/v1/history/{}/{}",
    "/v1/issuers/{}/acts",
    "/v1/state/{}/{}",
    "/v1/{}",
    "/{}",
]
SEGMENTS = (
    st.text(max_size=80)
    | st.sampled_from(["latest", MEMBER, "deeds", "membership", "2026/BATCH-1", "1", "0"])
    | st.binary(min_size=1, max_size=33).map(bytes.hex)
    | st.integers(-(2**70), 2**70).map(str)
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@example(template="/{}", segments=["/0", "x"], quoted=False, query={}, accept=None)
@given(
    template=st.sampled_from(TEMPLATES),
    segments=st.lists(SEGMENTS, min_size=2, max_size=2),
    quoted=st.booleans(),
    query=st.dictionaries(st.text(max_size=10), st.text(max_size=20), max_size=3),
    accept=st.sampled_from([None, "application/msgpack", "*/*", "application/json;q=0.1"]),
)
def test_random_paths_and_queries_never_fail_the_node(
    api: Api,
    template: str,
    segments: list[str],
    quoted: bool,
    query: dict[str, str],
    accept: str | None,
) -> None:
    safe = "" if quoted else "/"
    path = template.format(*(quote(segment, safe=safe) for segment in segments))
    if path.startswith("//"):
        # "//0" is a scheme-relative URL to an HTTP client, which refuses to send it as a path:
        # the node gets the same first segment, its slash encoded.
        path = "/%2F" + path[2:]
    headers = {} if accept is None else {"Accept": accept}
    url = URL(path, encoded=True).with_query(query) if query else URL(path, encoded=True)
    reply = get(api, url, headers=headers)
    _assert_answered(reply)


def test_the_problem_table_is_well_formed() -> None:
    for code, kind in PROBLEMS.items():
        assert PROBLEM_CODE.fullmatch(code)
        assert 400 <= kind.status <= 599
    documented = Path(__file__).resolve().parent.parent / "docs" / "api.md"
    text = documented.read_text()
    for code in PROBLEMS:
        assert f"`{code}`" in text, code


def test_routes_are_declared_once() -> None:
    assert len({(route.method, route.path) for route in ROUTES}) == len(ROUTES)


def test_the_contracts_reads_are_the_routes_they_declare() -> None:
    """The API holds no contract's paths: each read is a contract's QueryRoute, served as is."""
    served = {route.path: route for route in ROUTES if route.contract_query is not None}
    declared = query_routes()
    assert set(served) == {query.path for _, query in declared}
    for contract, query in declared:
        route = served[query.path]
        assert route.contract_query == (contract, query)
        assert route.handler == query.name and route.problems == query.problems
        assert [parameter.name for parameter in route.parameters] == [
            parameter.name for parameter in query.parameters
        ]
