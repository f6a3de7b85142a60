"""``GET /v1/query/{contract}/{path}``: any contract's query over HTTP, with offline proofs.

A real one-member node (built by ``node.tools.launch.build_node``, started, committing alone)
runs membership, deeds and a plug-in contract, ``notes``, defined below and loaded the way a
plug-in is: through an entry point of the ``sceau.contracts`` group (the node's contract
loader is given one more entry point; nothing else is replaced). The notes contract has a
query for every behaviour the route must handle: point reads, a scan, many reads, nothing at
a path, a malformed path, a crash, an answer that does not encode, an answer too large.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import itertools
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
import support
from aiohttp.test_utils import TestClient
from support import NodeApi, Reply, get, start_client, write_node_files

from contracts.base import Contract, Rejection, StateView, decode_record, encode_record
from contracts.registry import ENTRY_POINT_GROUP, load_contracts
from ledger import crypto, encoding
from ledger.client import ApiError, AsyncClient
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Transaction
from ledger.queryproof import (
    QUERY_READS_PROVEN_MAX,
    QueryProof,
    QueryProofError,
    reads_are_proven,
    verify_query_proof,
)
from node.api import API_KEY, display
from node.runtime.daemon import Node
from node.tools import launch
from node.tools.cli import main

MEMBER = "metropole-valbrune"
QUERY_ROUTE = "/v1/query/{contract}/{path}"
_NONCES = itertools.count(1)


# --- a plug-in contract -----------------------------------------------------------------------


class NotesContract(Contract):
    """``write {"name": text, "text": text}`` stores a note; its queries exercise the route."""

    name = "notes"
    version = "0.1"

    def check(self, transaction: Transaction) -> None:
        if transaction.action != "write" or set(transaction.args) != {"name", "text"}:
            raise Rejection("invalid_arguments", 'write takes {"name", "text"}')

    def apply(self, transaction: Transaction, state: StateView, context: Any) -> Any:
        args = transaction.args
        state.put(b"note/" + args["name"].encode(), encode_record(args["text"]))
        return {"name": args["name"]}

    def query(self, path: str, state: Any) -> Any:
        kind, _, rest = path.partition("/")
        if kind == "note":  # one point read; nothing there is a LookupError
            value = state.get(b"note/" + rest.encode())
            if value is None:
                raise LookupError(f"no note {rest!r}")
            return {"name": rest, "text": decode_record(value), "raw": value}
        if kind == "maybe":  # a point read whose absence is an answer
            value = state.get(b"note/" + rest.encode())
            return None if value is None else decode_record(value)
        if kind == "pair":  # two point reads
            first, _, second = rest.partition("/")
            return [state.get(b"note/" + name.encode()) for name in (first, second)]
        if kind == "all":  # a scan
            return {key.decode(): decode_record(value) for key, value in state.items(b"note/")}
        if kind == "many":  # more point reads than a proof carries
            return [state.get(b"n/%d" % index) for index in range(int(rest))]
        if kind == "echo":  # what the contract was asked, query string included
            return path
        if kind == "strict":
            raise ValueError(f"strict: {rest!r} is not a note name")
        if kind == "crash":
            raise RuntimeError("the plug-in has a bug")
        if kind == "keyerror":
            return {}["missing"]
        if kind == "float":
            return 1.5
        if kind == "huge":
            return b"x" * (5 * 1024 * 1024)
        raise LookupError(f"no notes query {path!r}")


def _notes_entry_point() -> metadata.EntryPoint:
    return metadata.EntryPoint(
        name="notes", value=f"{__name__}:NotesContract", group=ENTRY_POINT_GROUP
    )


# --- the harness ------------------------------------------------------------------------------


@dataclass
class Api(NodeApi):
    idle: Node
    idle_client: TestClient
    delegate: bytes

    @property
    def url(self) -> str:
        return str(self.client.make_url("")).rstrip("/")


def answer(reply: Reply) -> dict[str, Any]:
    assert reply.status == 200, reply.body[:500]
    assert reply.headers["Content-Type"].startswith("application/json")
    display.QueryDocument.model_validate_json(reply.body)
    return reply.json()


def problem(reply: Reply, code: str) -> dict[str, Any]:
    """The problem ``code``, which must be one of the PROBLEMS table."""
    return support.problem(reply, code, listed=True)


def _transaction(consortium: LocalConsortium, contract: str, action: str, **args: Any):
    return Transaction.create(
        consortium.keys[MEMBER],
        chain_id=consortium.chain_id,
        contract=contract,
        action=action,
        args=args,
        nonce=next(_NONCES),
        expiry_height=1_000_000,
    )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    folder = tmp_path_factory.mktemp("query")
    contracts = [
        ContractRef(name="membership", version="1.0"),
        ContractRef(name="deeds", version="1.0"),
        ContractRef(name="notes", version="0.1"),
    ]
    consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")], seed=b"sceau query tests", contracts=contracts
    )
    idle_consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")], seed=b"sceau query idle", contracts=contracts
    )
    installed = [*metadata.entry_points(group=ENTRY_POINT_GROUP), _notes_entry_point()]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(
            launch, "load_contracts", functools.partial(load_contracts, entry_points=installed)
        )
        config = write_node_files(folder / "live", consortium, MEMBER)
        idle_config = write_node_files(folder / "idle", idle_consortium, MEMBER)
        node = launch.build_node(config)
        idle = launch.build_node(idle_config)
    loop = asyncio.new_event_loop()
    loop.run_until_complete(node.start())
    delegate = crypto.public_key_bytes(crypto.key_from_seed(b"d" * 32))
    transactions = [
        _transaction(consortium, "notes", "write", name="agenda", text="Conseil du 28"),
        _transaction(consortium, "notes", "write", name="budget", text="Vote en décembre"),
        _transaction(
            consortium,
            "membership",
            "delegate",
            member_id=MEMBER,
            signer=delegate,
            roles=["deeds.issue"],
            expiry_height=None,
        ),
        _transaction(
            consortium,
            "deeds",
            "anchor",
            issuer=MEMBER,
            reference="2026/DEL-1",
            kind="deliberation",
            digest=hashlib.sha256(b"2026/DEL-1").digest(),
            act_date="2026-11-28",
            title="Délibération 1",
        ),
    ]
    for transaction in transactions:
        assert node.submit(transaction)
        assert loop.run_until_complete(node.wait_for_commit(transaction.tx_id, 10))
    harness = Api(
        loop=loop,
        consortium=consortium,
        node=node,
        client=loop.run_until_complete(start_client(node, config)),
        idle=idle,
        idle_client=loop.run_until_complete(start_client(idle, idle_config)),
        delegate=delegate,
    )
    yield harness
    harness.close([harness.client, harness.idle_client], idle=[idle])


@pytest.fixture(autouse=True)
def only_contract_failures_are_500(api: Api) -> Iterator[None]:
    """No client input reaches the 500 branch, except a contract's own failure."""
    yield
    handlers = api.client.server.app[API_KEY]
    failures = sum(handlers.query_failures.values())
    for (route, status), count in handlers.requests.items():
        if status == 500:
            assert route == QUERY_ROUTE and count == failures, handlers.requests


# --- answers ----------------------------------------------------------------------------------


def test_a_plug_in_contracts_query_is_answered_with_its_document(api: Api) -> None:
    document = answer(get(api, "/v1/query/notes/note/agenda"))
    assert document == {
        "height": api.node.store.height,
        "contract": "notes",
        "path": "note/agenda",
        "answer": {
            "name": "agenda",
            "text": "Conseil du 28",
            "raw": encoding.pack("Conseil du 28").hex(),
        },
    }


def test_msgpack_clients_get_the_answer_with_bytes_as_bytes(api: Api) -> None:
    reply = get(api, "/v1/query/notes/note/agenda", headers={"Accept": "application/msgpack"})
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/msgpack"
    document = encoding.unpack(reply.body)
    assert document["answer"]["raw"] == encoding.pack("Conseil du 28")
    assert document["contract"] == "notes" and document["path"] == "note/agenda"


def test_the_delegations_of_a_member_are_read_through_the_membership_query(api: Api) -> None:
    document = answer(get(api, f"/v1/query/membership/delegations/{MEMBER}"))
    assert document["answer"] == [
        {
            "signer": crypto.public_key_to_text(api.delegate),
            "roles": ["deeds.issue"],
            "expiry_height": None,
        }
    ]
    problem(get(api, "/v1/query/membership/delegations/nobody"), "not_found")
    problem(get(api, "/v1/query/membership/delegations/Not_An_Id"), "invalid_query")


def test_a_built_in_query_answers_as_its_declared_route_does(api: Api) -> None:
    declared = get(api, f"/v1/acts/{MEMBER}/2026/DEL-1").json()
    generic = answer(get(api, f"/v1/query/deeds/act/{MEMBER}/2026/DEL-1"))
    assert generic["answer"] == declared["act"]
    members = answer(get(api, "/v1/query/membership/members"))
    assert members["answer"] == get(api, "/v1/members").json()["members"]


def test_query_parameters_other_than_proof_are_handed_to_the_contract(api: Api) -> None:
    document = answer(get(api, "/v1/query/notes/echo/x?limit=5&from=2026-01-01&proof=false"))
    assert document["answer"] == document["path"] == "echo/x?limit=5&from=2026-01-01"
    acts = answer(get(api, f"/v1/query/deeds/acts/{MEMBER}?limit=1"))
    assert [act["reference"] for act in acts["answer"]] == ["2026/DEL-1"]


# --- proofs -----------------------------------------------------------------------------------


def _proof(api: Api, path: str) -> tuple[dict[str, Any], QueryProof]:
    document = answer(get(api, f"{path}?proof=true"))
    return document, QueryProof.model_validate_json(json.dumps(document["proof"]))


def test_a_proof_verifies_from_the_genesis_and_the_answer_is_recomputed(api: Api) -> None:
    document, proof = _proof(api, "/v1/query/notes/note/budget")
    verified = verify_query_proof(proof, api.consortium.genesis, contract=NotesContract())
    assert verified.answer_recomputed and proof.complete
    assert verified.height == document["height"] == api.node.store.height
    assert verified.reads == {b"note/budget": encoding.pack("Vote en décembre")}
    assert verified.answer["text"] == document["answer"]["text"] == "Vote en décembre"


def test_a_proof_of_absence_verifies_too(api: Api) -> None:
    document, proof = _proof(api, "/v1/query/notes/maybe/nothing")
    assert document["answer"] is None
    verified = verify_query_proof(proof, api.consortium.genesis, contract=NotesContract())
    assert verified.reads == {b"note/nothing": None}


def test_a_built_in_contracts_proof_verifies(api: Api) -> None:
    from contracts.membership import MembershipContract

    _, proof = _proof(api, f"/v1/query/membership/delegations/{MEMBER}")
    verified = verify_query_proof(proof, api.consortium.genesis, contract=MembershipContract())
    assert verified.answer[0]["signer"] == api.delegate


def test_the_proof_comes_as_msgpack_too(api: Api) -> None:
    reply = get(
        api, "/v1/query/notes/note/agenda?proof=true", headers={"Accept": "application/msgpack"}
    )
    proof = QueryProof.from_canonical(encoding.unpack(reply.body)["proof"])
    verify_query_proof(proof, api.consortium.genesis, contract=NotesContract())


@pytest.mark.parametrize(
    ("tamper", "step"),
    [
        (lambda proof: _with_read(proof, value=encoding.pack("Vote en janvier")), "reads"),
        (lambda proof: _with_read(proof, value=None), "reads"),
        (lambda proof: _with_read(proof, key=b"note/agenda"), "reads"),
        (lambda proof: proof.model_copy(update={"answer": encoding.pack({"x": 1})}), "answer"),
        (lambda proof: proof.model_copy(update={"path": "note/agenda"}), "answer"),
        (lambda proof: proof.model_copy(update={"chain_id": b"\x00" * 32}), "chain"),
        (
            lambda proof: proof.model_copy(
                update={"header": proof.header.model_copy(update={"state_root": b"\x01" * 32})}
            ),
            "header",
        ),
    ],
)
def test_a_tampered_proof_is_refused(api: Api, tamper: Any, step: str) -> None:
    _, proof = _proof(api, "/v1/query/notes/note/budget")
    assert reads_are_proven(proof)
    assert step != "reads" or not reads_are_proven(tamper(proof))
    with pytest.raises(QueryProofError) as refused:
        verify_query_proof(tamper(proof), api.consortium.genesis, contract=NotesContract())
    assert refused.value.step == step


def _with_read(proof: QueryProof, **changes: Any) -> QueryProof:
    (read,) = proof.reads
    return proof.model_copy(update={"reads": (read.model_copy(update=changes),)})


def test_a_proof_from_another_consortium_is_refused(api: Api) -> None:
    other = LocalConsortium.create([(MEMBER, "Ailleurs")], seed=b"another consortium")
    _, proof = _proof(api, "/v1/query/notes/note/budget")
    with pytest.raises(QueryProofError, match="another consortium"):
        verify_query_proof(proof, other.genesis)


def test_a_scan_leaves_the_proof_incomplete_and_the_answer_unrecomputable(api: Api) -> None:
    document, proof = _proof(api, "/v1/query/notes/all")
    assert document["answer"] == {"note/agenda": "Conseil du 28", "note/budget": "Vote en décembre"}
    assert not proof.complete and proof.reads == ()
    assert verify_query_proof(proof, api.consortium.genesis).answer == document["answer"]
    with pytest.raises(QueryProofError, match="not complete"):
        verify_query_proof(proof, api.consortium.genesis, contract=NotesContract())


def test_a_proof_carries_at_most_the_first_reads_and_says_it_is_incomplete(api: Api) -> None:
    _, proof = _proof(api, f"/v1/query/notes/many/{QUERY_READS_PROVEN_MAX}")
    assert proof.complete and len(proof.reads) == QUERY_READS_PROVEN_MAX
    _, proof = _proof(api, f"/v1/query/notes/many/{QUERY_READS_PROVEN_MAX + 1}")
    assert not proof.complete and len(proof.reads) == QUERY_READS_PROVEN_MAX
    verify_query_proof(proof, api.consortium.genesis)


def test_a_re_run_that_reads_an_unproven_key_is_refused(api: Api) -> None:
    _, proof = _proof(api, "/v1/query/notes/maybe/agenda")
    forged = proof.model_copy(update={"path": "pair/agenda/budget"})
    with pytest.raises(QueryProofError, match="not proven"):
        verify_query_proof(forged, api.consortium.genesis, contract=NotesContract())


def test_an_empty_chain_answers_but_has_no_proof_yet(api: Api) -> None:
    document = answer(get(api, "/v1/query/membership/members", client=api.idle_client))
    assert document["height"] == 0
    reply = get(api, "/v1/query/membership/members?proof=true", client=api.idle_client)
    problem(reply, "unknown_block")


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "code"),
    [
        ("/v1/query/cadastre/parcel/1", "contract_not_enabled"),
        ("/v1/query/Notes/note/agenda", "invalid_parameter"),
        ("/v1/query/notes/note/nothing", "not_found"),
        ("/v1/query/notes/unknown", "not_found"),
        ("/v1/query/notes/strict/x", "invalid_query"),
        ("/v1/query/notes/note/a%20b", "invalid_query"),
        ("/v1/query/notes/note/a%3Fb=c", "invalid_query"),
        ("/v1/query/notes/note/%C3%A9t%C3%A9", "invalid_query"),
        (f"/v1/query/notes/note/{'a' * 1025}", "invalid_query"),
        (f"/v1/query/notes/echo/x?q={'a' * 1020}", "invalid_query"),
        ("/v1/query/notes/echo/x?proof=yes", "invalid_parameter"),
        ("/v1/query/notes/echo/x?a=1&a=2", "invalid_parameter"),
        ("/v1/query/notes/echo/x?Bad=1", "invalid_parameter"),
        ("/v1/query/notes/echo/x?a=", "invalid_parameter"),
        ("/v1/query/notes/echo/x?a=%26", "invalid_parameter"),
        ("/v1/query/notes/echo/x?" + "&".join(f"p{i}=1" for i in range(17)), "invalid_parameter"),
        ("/v1/query/notes/huge", "answer_too_large"),
    ],
)
def test_bad_queries_are_problems_with_stable_codes(api: Api, url: str, code: str) -> None:
    problem(get(api, url), code)


def test_a_not_found_problem_carries_the_contracts_message(api: Api) -> None:
    assert (
        "no note 'nothing'"
        in problem(get(api, "/v1/query/notes/note/nothing"), "not_found")["detail"]
    )


@pytest.mark.parametrize("path", ["crash", "keyerror", "float"])
def test_a_contract_that_fails_gets_a_counted_query_failed_and_the_node_goes_on(
    api: Api, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    handlers = api.client.server.app[API_KEY]
    before = handlers.query_failures["notes"]
    with caplog.at_level(logging.ERROR, logger="sceau.api"):
        first = problem(get(api, f"/v1/query/notes/{path}"), "query_failed")
        problem(get(api, f"/v1/query/notes/{path}"), "query_failed")
    assert "notes" in first["detail"] and "Traceback" not in first["detail"]
    assert handlers.query_failures["notes"] == before + 2
    logged = [record for record in caplog.records if "failed to answer" in record.getMessage()]
    assert len(logged) == 1  # once per kind of failure, then only counted
    metrics = get(api, "/metrics").body.decode()
    assert f'sceau_api_query_failures_total{{contract="notes"}} {before + 2}' in metrics
    answer(get(api, "/v1/query/notes/note/agenda"))


def test_the_route_is_in_the_openapi_document(api: Api) -> None:
    document = get(api, "/openapi.json").json()
    operation = document["paths"][QUERY_ROUTE]["get"]
    assert operation["operationId"] == "query_contract"
    assert {parameter["name"] for parameter in operation["parameters"]} == {
        "contract",
        "path",
        "proof",
    }
    assert {"404", "400", "422", "500"} <= set(operation["responses"])
    assert "QueryDocument" in document["components"]["schemas"]
    assert "QueryProof" in json.dumps(document["components"]["schemas"]["QueryDocument"])


# --- the client and the command line -------------------------------------------------------


def test_the_client_queries_any_contract(api: Api) -> None:
    async def ask() -> tuple[Any, Any, ApiError]:
        async with AsyncClient(api.url) as client:
            document = await client.query("membership", f"delegations/{MEMBER}", proof=True)
            acts = await client.query("deeds", f"acts/{MEMBER}?limit=1")
            try:
                await client.query("notes", "note/nothing")
            except ApiError as error:
                return document, acts, error
            raise AssertionError("a query of nothing must fail")

    document, acts, error = api.run(ask())
    assert document["answer"][0]["roles"] == ["deeds.issue"]
    proof = QueryProof.model_validate_json(json.dumps(document["proof"]))
    verify_query_proof(proof, api.consortium.genesis)
    assert acts["path"] == f"acts/{MEMBER}?limit=1"
    assert (error.status, error.code) == (404, "not_found")


def _sceau(api: Api, *arguments: str) -> int:
    return api.run(asyncio.to_thread(main, [*arguments, "--api", api.url]))


def test_sceau_query_prints_the_answer_document(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _sceau(api, "query", "membership", f"delegations/{MEMBER}") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["contract"] == "membership"
    assert document["answer"][0]["signer"] == crypto.public_key_to_text(api.delegate)
    assert _sceau(api, "query", "notes", "note/agenda", "--proof") == 0
    assert "proof" in json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    ("contract", "path", "code"),
    [
        ("notes", "note/nothing", "not_found"),
        ("cadastre", "parcel/1", "contract_not_enabled"),
        ("notes", "strict/x", "invalid_query"),
    ],
)
def test_sceau_query_exits_1_with_the_problem(
    api: Api, capsys: pytest.CaptureFixture[str], contract: str, path: str, code: str
) -> None:
    assert _sceau(api, "query", contract, path) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.match(rf"{code}: \S", captured.err), captured.err


def test_sceau_query_checks_the_proof_against_the_genesis(
    api: Api, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    genesis = tmp_path / "genesis.json"
    genesis.write_text(api.consortium.genesis.model_dump_json())
    assert _sceau(api, "query", "membership", "members", "--genesis", str(genesis)) == 0
    captured = capsys.readouterr()
    assert "proof" in json.loads(captured.out)
    consortium = api.consortium.genesis.consortium
    assert captured.err.startswith(f"VERIFIED against the genesis of {consortium!r}")
    assert "recomputed from them" in captured.err
    assert _sceau(api, "query", "notes", "note/agenda", "--genesis", str(genesis)) == 0
    assert "not recomputed" in capsys.readouterr().err  # notes is not installed for the CLI
    other = tmp_path / "other.json"
    other.write_text(
        LocalConsortium.create([(MEMBER, "Ailleurs")], seed=b"other").genesis.model_dump_json()
    )
    assert _sceau(api, "query", "membership", "members", "--genesis", str(other)) == 1
    assert capsys.readouterr().err.startswith("NOT VERIFIED — chain: ")


# --- proofs across member-set changes ---------------------------------------------------------


@pytest.fixture(scope="module")
def changed_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """tests/test_receipt.py's chain: a member admitted, one removed, a key rotated."""
    from test_receipt import build_chain

    chain = build_chain(tmp_path_factory.mktemp("query-chain") / "chain")
    yield chain
    chain.store.close()


def _membership_proof(chain: Any, path: str) -> QueryProof:
    from contracts.membership import MembershipContract
    from ledger.queryproof import build_query_proof
    from node.api.query import RecordingView

    view = RecordingView(chain.store.confirmed_reads(), "membership")
    answer = encoding.pack(MembershipContract().query(path, view))
    return build_query_proof(
        chain.store,
        contract="membership",
        path=path,
        answer=answer,
        reads=view.proven_reads(),
        complete=view.complete,
    )


def test_a_proof_follows_the_member_sets_from_the_genesis(changed_chain: Any) -> None:
    from contracts.membership import MembershipContract

    proof = _membership_proof(changed_chain, "members")
    assert [change.header.height for change in proof.member_changes] == [2, 4, 6]
    verified = verify_query_proof(proof, changed_chain.genesis, contract=MembershipContract())
    assert [member["id"] for member in verified.answer] == [
        member.id for member in changed_chain.members()
    ]
    skipped = proof.model_copy(update={"member_changes": proof.member_changes[:-1]})
    with pytest.raises(QueryProofError, match="member set in force") as refused:
        verify_query_proof(skipped, changed_chain.genesis)
    assert refused.value.step == "header"
    swapped = proof.model_copy(update={"member_changes": proof.member_changes[::-1]})
    with pytest.raises(QueryProofError) as refused:
        verify_query_proof(swapped, changed_chain.genesis)
    assert refused.value.step.startswith("members")
    forged = proof.member_changes[0].model_copy(update={"members": proof.member_changes[1].members})
    altered = proof.model_copy(update={"member_changes": (forged, *proof.member_changes[1:])})
    with pytest.raises(QueryProofError, match="not proven"):
        verify_query_proof(altered, changed_chain.genesis)
