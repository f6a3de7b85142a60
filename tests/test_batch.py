"""Batched submission: ``POST /v1/transactions/batch`` of a real node, and its one-pass admission.

A one-member consortium running the deeds contract is started in-process (it orders and
commits alone), with a second API client whose rate limit is a burst of three. Every request
goes through aiohttp's test server; the tests drive the fixture's loop with ``api.run``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest
import support
from aiohttp.test_utils import TestClient
from support import NodeApi, Reply, start_client, write_node_files

from contracts.base import Rejection
from contracts.registry import receipt_anchors
from ledger import crypto
from ledger.client import AsyncClient, InvalidArgument, _batches
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Transaction
from ledger.receipt import Receipt, verify_receipt
from node.api import API_KEY, SubmissionLimiter, display, openapi_document
from node.api.limits import BATCH_TRANSACTIONS_MAX
from node.tools.devnet import _free_ports
from node.tools.launch import build_node, initialise_data_dir

MEMBER = "metropole-valbrune"
MSGPACK = {"Content-Type": "application/msgpack"}
BODY_BYTES_MAX = 256 * 1024


@dataclass
class Api(NodeApi):
    limited: TestClient
    nonces: Iterator[int] = field(default_factory=lambda: iter(range(1, 10**9)))

    def anchor(self, reference: str, **changes: Any) -> Transaction:
        """A signed deeds.anchor by the member; ``changes`` override fields."""
        fields: dict[str, Any] = {
            "chain_id": self.consortium.chain_id,
            "contract": "deeds",
            "action": "anchor",
            "args": {
                "issuer": MEMBER,
                "reference": reference,
                "kind": "deliberation",
                "digest": hashlib.sha256(reference.encode()).digest(),
                "act_date": "2026-11-28",
                "title": f"Délibération {reference}",
            },
            "nonce": next(self.nonces),
            "expiry_height": 1_000_000,
        }
        fields.update(changes)
        key = fields.pop("key", self.consortium.keys[MEMBER])
        return Transaction.create(key, **fields)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("batch")
    consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")],
        seed=b"sceau batch tests",
        contracts=[
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="1.0"),
        ],
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
        update={"api_submissions_per_s": 0.001, "api_submission_burst": 3}
    )
    loop = asyncio.new_event_loop()
    node = build_node(config)
    loop.run_until_complete(node.start())
    harness = Api(
        loop=loop,
        consortium=consortium,
        node=node,
        client=loop.run_until_complete(start_client(node, config)),
        limited=loop.run_until_complete(start_client(node, limited_config)),
    )
    yield harness
    harness.close([harness.client, harness.limited])


@pytest.fixture(autouse=True)
def no_internal_errors(api: Api) -> Iterator[None]:
    yield
    for client in (api.client, api.limited):
        counts = client.server.app[API_KEY].requests
        assert not [key for key in counts if key[1] == 500], counts


def post_batch(
    api: Api,
    transactions: list[Transaction],
    *,
    wait: str | None = "5",
    client: TestClient | None = None,
) -> Reply:
    body = msgpack.packb([transaction.encoded for transaction in transactions])
    params = {"wait": wait} if wait is not None else {}
    return support.post(
        api, "/v1/transactions/batch", client=client, data=body, headers=MSGPACK, params=params
    )


def answer(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body[:500]
    display.BatchAnswer.model_validate_json(reply.body)
    return reply.json()


def problem(reply: Reply, code: str) -> dict[str, Any]:
    return support.problem(reply, code, whole=True)


def test_a_batch_is_admitted_in_order_and_each_answer_names_its_commit(api: Api) -> None:
    batch = [api.anchor(f"2026/SESSION-{index:02}") for index in range(50)]
    document = answer(post_batch(api, batch))
    assert document["admitted"] == 50
    outcomes = document["transactions"]
    assert [outcome["tx_id"] for outcome in outcomes] == [tx.tx_id.hex() for tx in batch]
    assert {outcome["status"] for outcome in outcomes} == {"committed"}
    for transaction, outcome in zip(batch, outcomes, strict=True):
        location = api.node.store.transaction_location(transaction.tx_id)
        assert location is not None and outcome["height"] == location[0]
    # The same batch again: each one is known and committed, none admitted twice.
    again = answer(post_batch(api, batch, wait=None))
    assert again["admitted"] == 0
    assert [outcome["status"] for outcome in again["transactions"]] == ["committed"] * 50


def test_the_json_form_is_accepted_and_answers_pending_without_wait(api: Api) -> None:
    batch = [api.anchor(f"2026/JSON-{index}") for index in range(3)]
    body = {"transactions": [transaction.encoded.hex() for transaction in batch]}
    reply = support.post(api, "/v1/transactions/batch", json=body)
    document = answer(reply)
    assert document["admitted"] == 3
    assert {outcome["status"] for outcome in document["transactions"]} <= {"pending", "committed"}
    for transaction in batch:
        assert api.run(api.node.wait_for_commit(transaction.tx_id, 5))


def test_each_transaction_of_a_batch_has_its_own_outcome(api: Api) -> None:
    other = crypto.key_from_seed(b"not a member of this consortium".ljust(32, b"\0")[:32])
    good = api.anchor("2026/MIX-1")
    twin = api.anchor("2026/MIX-1")  # the same reference: the dry run sees the batch's first
    stranger = api.anchor("2026/MIX-2", key=other)
    foreign = api.anchor("2026/MIX-3", chain_id=b"\x01" * 32)
    expired = api.anchor("2026/MIX-4", expiry_height=1)
    last = api.anchor("2026/MIX-5")
    batch = [good, twin, stranger, foreign, expired, good, last]
    document = answer(post_batch(api, batch))
    outcomes = document["transactions"]
    assert document["admitted"] == 2
    assert [outcome["status"] for outcome in outcomes] == [
        "committed",
        "rejected",
        "rejected",
        "rejected",
        "rejected",
        "committed",  # the same transaction twice: admitted once, the same outcome
        "committed",
    ]
    assert outcomes[1]["code"] == "duplicate_reference"
    assert outcomes[2]["code"] not in (None, "duplicate_reference")
    assert outcomes[3]["code"] == "wrong_chain"
    assert outcomes[4]["code"] == "expired_transaction"
    # A transaction the dry run refused is remembered, as for a single submission.
    status = support.get(api, f"/v1/transactions/{twin.tx_id.hex()}").json()
    assert (status["status"], status["code"]) == ("rejected", "duplicate_reference")


def test_one_transaction_that_does_not_decode_refuses_the_whole_batch(api: Api) -> None:
    fine = api.anchor("2026/UNDECODED-1")
    body = msgpack.packb([fine.encoded, fine.encoded[::-1]])
    reply = support.post(api, "/v1/transactions/batch", data=body, headers=MSGPACK)
    assert problem(reply, "invalid_transaction")["detail"].startswith("transactions[1]: ")
    assert fine.tx_id not in api.node.mempool
    assert api.node.store.transaction_location(fine.tx_id) is None


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (msgpack.packb([]), "invalid_body"),
        (msgpack.packb([b"\x00"] * (BATCH_TRANSACTIONS_MAX + 1)), "invalid_body"),
        (msgpack.packb(["text, not bytes"]), "invalid_body"),
        (msgpack.packb({"transactions": []}), "invalid_body"),
        (b"\xdc\x00\x01\xc4\x01\x00", "invalid_body"),  # array 16 for one item: not canonical
        (msgpack.packb([b"\x00"]), "invalid_transaction"),
    ],
)
def test_a_malformed_msgpack_batch_is_refused(api: Api, body: bytes, code: str) -> None:
    reply = support.post(api, "/v1/transactions/batch", data=body, headers=MSGPACK)
    problem(reply, code)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"[]", "invalid_body"),
        (b'{"transactions": []}', "invalid_body"),
        (b'{"transactions": ["00"], "more": 1}', "invalid_body"),
        (b'{"transactions": ["00"], "transactions": ["00"]}', "invalid_body"),
        (b'{"transactions": ["ABCD"]}', "invalid_transaction"),
        (b'{"transactions": "00"}', "invalid_body"),
    ],
)
def test_a_malformed_json_batch_is_refused(api: Api, body: bytes, code: str) -> None:
    headers = {"Content-Type": "application/json"}
    problem(support.post(api, "/v1/transactions/batch", data=body, headers=headers), code)


def test_the_body_bounds_and_media_type_hold_for_a_batch(api: Api) -> None:
    oversized = msgpack.packb([b"\x00" * 1000] * (BODY_BYTES_MAX // 1000 + 1))
    problem(
        support.post(api, "/v1/transactions/batch", data=oversized, headers=MSGPACK),
        "body_too_large",
    )
    reply = support.post(
        api, "/v1/transactions/batch", data=b"x", headers={"Content-Type": "text/plain"}
    )
    problem(reply, "unsupported_media_type")
    problem(post_batch(api, [api.anchor("2026/WAIT-1")], wait="31"), "invalid_parameter")


def test_a_batch_is_charged_one_token_per_transaction(api: Api) -> None:
    batch = [api.anchor(f"2026/LIMITED-{index}") for index in range(5)]
    document = answer(post_batch(api, batch, client=api.limited, wait=None))
    codes = [outcome.get("code") for outcome in document["transactions"]]
    assert codes == [None, None, None, "rate_limited", "rate_limited"]
    assert document["admitted"] == 3
    assert batch[3].tx_id not in api.node.mempool
    reply = post_batch(api, batch[3:], client=api.limited)
    assert "bursts of 3" in problem(reply, "rate_limited")["detail"]
    assert int(reply.headers["Retry-After"]) >= 1
    for transaction in batch[:3]:
        assert api.run(api.node.wait_for_commit(transaction.tx_id, 5))


def test_the_limiter_grants_what_a_bucket_holds() -> None:
    now = [0.0]
    limiter = SubmissionLimiter(2.0, 3, clock=lambda: now[0])
    assert limiter.take_up_to("a", 2) == (2, None)
    granted, retry_after_s = limiter.take_up_to("a", 5)
    assert granted == 1 and retry_after_s == pytest.approx(0.5)
    assert limiter.take_up_to("a", 1) == (0, pytest.approx(0.5))
    now[0] = 1.0
    assert limiter.take_up_to("a", 2) == (2, None)
    assert limiter.take("a") == pytest.approx(0.5)


def test_the_batch_admission_matches_the_block_that_includes_it(api: Api) -> None:
    """One dry run for the batch: a transaction is judged on the tip plus the batch's earlier
    admitted ones, which is how the block holding them in this order judges it."""
    application = api.node.application
    first = api.anchor("2026/DRY-1")
    again = api.anchor("2026/DRY-1")
    other = api.anchor("2026/DRY-2")
    outcomes = application.submit_many([first, again, other, first])
    assert outcomes[0] is True and outcomes[2] is True and outcomes[3] is False
    assert isinstance(outcomes[1], Rejection) and outcomes[1].code == "duplicate_reference"
    assert first.tx_id in api.node.mempool and again.tx_id not in api.node.mempool
    api.node.submit(api.anchor("2026/DRY-3"))  # wakes the replica for the pending ones
    for transaction in (first, other):
        assert api.run(api.node.wait_for_commit(transaction.tx_id, 5))


def test_a_failing_dry_run_leaves_nothing_unchecked_in_the_mempool(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    application = api.node.application

    def broken(transactions: list[Transaction]) -> Any:
        raise RuntimeError("a bug in a contract's apply")

    monkeypatch.setattr(application, "_dry_run", broken)
    batch = [api.anchor(f"2026/BROKEN-{index}") for index in range(3)]
    with pytest.raises(RuntimeError):
        application.submit_many(batch)
    assert not any(transaction.tx_id in api.node.mempool for transaction in batch)


def test_the_openapi_document_describes_the_batch_route() -> None:
    operation = openapi_document()["paths"]["/v1/transactions/batch"]["post"]
    content = operation["requestBody"]["content"]
    assert set(content) == {"application/json", "application/msgpack"}
    assert "200" in operation["responses"] and "429" in operation["responses"]


# --- the client library -------------------------------------------------------------------------


def acts(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "issuer": MEMBER,
            "reference": f"{prefix}-{index:02}",
            "kind": "deliberation",
            "digest": hashlib.sha256(f"{prefix} {index}".encode()).digest(),
            "act_date": "2026-11-28",
            "title": f"Délibération {prefix} {index}",
        }
        for index in range(count)
    ]


def library(api: Api, *urls: str) -> AsyncClient:
    live = str(api.client.make_url("")).rstrip("/")
    return AsyncClient([*urls, live], signer=api.consortium.keys[MEMBER], retry_interval_s=1)


def test_anchor_many_anchors_a_session_and_each_receipt_verifies(api: Api) -> None:
    session = acts("2026/CONSEIL-12", 12)
    session[5]["reference"] = session[4]["reference"]  # one reference twice: that act only

    async def anchor() -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        async with library(api) as client:
            outcomes = await client.anchor_many(session, wait_s=10)
            return outcomes, await client.receipt(outcomes[0]["tx_id"])

    outcomes, receipt = api.run(anchor())
    assert [outcome["status"] for outcome in outcomes].count("committed") == 11
    assert (outcomes[5]["status"], outcomes[5]["code"]) == ("rejected", "duplicate_reference")
    for act, outcome in zip(session, outcomes, strict=True):
        assert outcome["digest"] == act["digest"].hex()
    assert receipt is not None
    proven = verify_receipt(
        Receipt.model_validate_json(json.dumps(receipt)),
        api.consortium.genesis,
        anchors=receipt_anchors(),
    )
    assert proven.transaction.tx_id.hex() == outcomes[0]["tx_id"]
    assert proven.height == outcomes[0]["height"]


def test_submit_many_goes_on_past_a_dead_endpoint_and_splits_long_lists(api: Api) -> None:
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens there
    batch = [api.anchor(f"2026/CARRIED-{index}") for index in range(3)]

    async def submit() -> list[dict[str, Any]]:
        async with library(api, dead) as client:
            return await client.submit_many(batch, wait_s=10)

    outcomes = api.run(submit())
    assert [outcome["status"] for outcome in outcomes] == ["committed"] * 3
    assert [outcome["tx_id"] for outcome in outcomes] == [tx.tx_id.hex() for tx in batch]
    small = SimpleNamespace(encoded=b"\x00" * 100)
    assert [len(group) for group in _batches([small] * 2500)] == [1000, 1000, 500]
    large = SimpleNamespace(encoded=b"\x00" * 300_000)
    assert [len(group) for group in _batches([large] * 7)] == [3, 3, 1]


def test_anchor_many_names_a_bad_act_before_sending_anything(api: Api) -> None:
    session = acts("2026/BAD", 3)
    session[2]["act_date"] = "2026-02-30"
    with pytest.raises(InvalidArgument) as refused:
        api.run(library(api).anchor_many(session))
    assert refused.value.field == "acts[2].act_date"
    del session[2]["title"]
    with pytest.raises(InvalidArgument, match=r"acts\[2\]\.title"):
        api.run(library(api).anchor_many(session))
    session[2] = {**session[1], "colour": "blue"}
    with pytest.raises(InvalidArgument, match=r"acts\[2\]\.colour"):
        api.run(library(api).anchor_many(session))
    digests = {act["digest"] for act in session}
    pending = [tx.args.get("digest") for tx in api.node.mempool.candidates()]
    assert not digests.intersection(pending)  # nothing was signed nor sent


# --- sceau anchor --batch -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A one-member consortium's ``sceau node run`` process: its API URL and key file."""
    folder = tmp_path_factory.mktemp("cli")
    peer_port, api_port = _free_ports(2)
    consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")],
        seed=b"sceau batch cli",
        contracts=[
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="1.0"),
        ],
        base_port=peer_port,
    )
    (folder / "genesis.json").write_text(consortium.genesis.model_dump_json(indent=2))
    crypto.save_private_key(consortium.keys[MEMBER], folder / "node.pem")
    (folder / "node.toml").write_text(
        f'member_id = "{MEMBER}"\ndata_dir = "data"\ngenesis_file = "genesis.json"\n'
        f'key_file = "node.pem"\npeer_listen = "127.0.0.1:{peer_port}"\n'
        f'api_listen = "127.0.0.1:{api_port}"\n'
    )
    initialise_data_dir(folder / "data", consortium.genesis).close()
    with open(folder / "node.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "node.tools.cli", "node", "run", "--config", "node.toml"],
            cwd=folder,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{api_port}"
    try:
        deadline = time.monotonic() + 30
        while not _healthy(url):
            assert process.poll() is None and time.monotonic() < deadline, (
                folder / "node.log"
            ).read_text()[-2000:]
            time.sleep(0.2)
        yield url, folder / "node.pem"
    finally:
        process.terminate()
        process.wait(10)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


def sceau(*arguments: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.tools.cli", *map(str, arguments)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sceau_anchor_batch_anchors_every_document_of_a_csv(
    node_process: tuple[str, Path], tmp_path: Path
) -> None:
    url, key = node_process
    session = tmp_path / "session"
    session.mkdir()
    rows = ["file,reference,title,kind"]
    for index in range(6):
        (session / f"acte-{index}.pdf").write_bytes(f"%PDF-1.7 acte {index}\n".encode())
        kind = "decree" if index == 5 else ""
        rows.append(f"acte-{index}.pdf,2026-CM-{index:03},Délibération n° {index},{kind}")
    rows.append("acte-0.pdf,2026-CM-000,Again,")  # its receipt twice: refused before sending
    csv_file = session / "session.csv"
    csv_file.write_text("\n".join(rows) + "\n", encoding="utf-8")
    common = [
        "anchor", "--batch", csv_file, "--issuer", MEMBER, "--kind", "deliberation",
        "--date", "2026-11-28", "--api", url, "--key", key,
    ]  # fmt: skip
    twice = sceau(*common)
    assert twice.returncode == 2 and "line 8" in twice.stderr and "twice" in twice.stderr
    assert not list(session.glob("*.receipt.json"))

    csv_file.write_text("\n".join(rows[:-1]) + "\n", encoding="utf-8")
    done = sceau(*common)
    assert done.returncode == 0, done.stderr
    assert "6 of 6 documents anchored" in done.stdout
    for index in range(6):
        document = session / f"acte-{index}.pdf"
        receipt = json.loads(Path(f"{document}.receipt.json").read_text())
        digest = hashlib.sha256(document.read_bytes()).hexdigest()
        assert f"{document}: sha256 {digest}" in done.stdout
        assert receipt["chain_id"] and receipt["height"] >= 1

    # Again: the receipts exist (refused without --force); with --force each act is refused
    # by the consortium (the references are taken): exit 1, each rejection reported.
    exists = sceau(*common)
    assert exists.returncode == 2 and "--force" in exists.stderr
    again = sceau(*common, "--force")
    assert again.returncode == 1 and again.stderr.count("duplicate_reference") == 6
    assert "0 of 6 documents anchored" in again.stdout
    conflicting = sceau(*common, "--title", "A title")
    assert conflicting.returncode == 2 and "--title: not with --batch" in conflicting.stderr
    alone = sceau("anchor", "--issuer", MEMBER, "--api", url, "--key", key)
    assert alone.returncode == 2 and "FILE, --reference, --kind, --date, --title" in alone.stderr
