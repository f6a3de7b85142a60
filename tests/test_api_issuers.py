"""``GET /v1/issuers`` and ``GET /v1/issuers/{issuer}``: the issuers governance admitted.

A real one-member node (built by ``node.tools.launch.build_node``, started, committing alone;
one member's vote passes a proposal) runs membership 1.1 and deeds. Its member admits three
communes, suspends one, and one commune anchors an act in its own name, so that the issuers'
routes and the deeds route ``/v1/issuers/{issuer}/acts`` that shares their prefix are both
exercised on the same chain.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
import support
from support import NodeApi, Reply, commit_each, get, start_client, start_node

from contracts.membership import ISSUERS_PAGE_MAX
from ledger import crypto, encoding
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Transaction
from node.api import API_KEY, display

MEMBER = "metropole-valbrune"
COMMUNES = ("commune-aubrac", "commune-bellecombe", "commune-cerdon")
SIRET = "21590350100017"
_NONCES = itertools.count(1)


def commune_key(commune: str) -> crypto.PrivateKey:
    return crypto.key_from_seed(hashlib.sha256(commune.encode()).digest())


def _transaction(
    consortium: LocalConsortium, contract: str, action: str, *, key: Any = None, **args: Any
) -> Transaction:
    return Transaction.create(
        key or consortium.keys[MEMBER],
        chain_id=consortium.chain_id,
        contract=contract,
        action=action,
        args=args,
        nonce=next(_NONCES),
        expiry_height=1_000_000,
    )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeApi]:
    folder = tmp_path_factory.mktemp("issuers")
    contracts = [
        ContractRef(name="membership", version="1.1"),
        ContractRef(name="deeds", version="1.0"),
    ]
    consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")], seed=b"sceau issuers api", contracts=contracts
    )
    loop, node, config = start_node(folder / "node", consortium, MEMBER)
    applications = [
        {
            "id": commune,
            "name": f"Commune de {commune.removeprefix('commune-').title()}",
            "siret": SIRET if commune != "commune-cerdon" else None,
            "public_key": crypto.public_key_bytes(commune_key(commune)),
        }
        for commune in COMMUNES
    ]
    transactions = [
        _transaction(
            consortium,
            "membership",
            "propose",
            proposer=MEMBER,
            change={"kind": "admit_issuers", "issuers": applications},
        ),
        _transaction(
            consortium,
            "membership",
            "propose",
            proposer=MEMBER,
            change={"kind": "suspend_issuer", "issuer_id": "commune-cerdon"},
        ),
        _transaction(
            consortium,
            "deeds",
            "anchor",
            key=commune_key("commune-aubrac"),
            issuer="commune-aubrac",
            reference="2026-DEL-001",
            kind="deliberation",
            digest=hashlib.sha256(b"Budget primitif d'Aubrac").digest(),
            act_date="2026-11-28",
            title="Budget primitif 2027",
        ),
    ]
    commit_each(loop, node, transactions)
    harness = NodeApi(
        loop=loop,
        consortium=consortium,
        node=node,
        client=loop.run_until_complete(start_client(node, config)),
    )
    yield harness
    harness.close([harness.client])


@pytest.fixture(autouse=True)
def no_request_is_answered_500(api: NodeApi) -> Iterator[None]:
    yield
    requests = api.client.server.app[API_KEY].requests
    assert not [key for key in requests if key[1] == 500], requests


def issuers_page(reply: Reply) -> list[dict[str, Any]]:
    assert reply.status == 200, reply.body[:500]
    display.IssuersDocument.model_validate_json(reply.body)
    return reply.json()["issuers"]


def problem(reply: Reply, code: str) -> dict[str, Any]:
    return support.problem(reply, code, listed=True, whole=True)


# --- answers ----------------------------------------------------------------------------------


def test_the_issuers_are_listed_in_id_order_with_their_status(api: NodeApi) -> None:
    reply = get(api, "/v1/issuers")
    issuers = issuers_page(reply)
    assert reply.json()["height"] == api.node.store.height
    assert [issuer["id"] for issuer in issuers] == list(COMMUNES)
    aubrac, _, cerdon = issuers
    assert aubrac["status"] == "active" and aubrac["siret"] == SIRET
    assert aubrac["public_key"] == crypto.public_key_to_text(
        crypto.public_key_bytes(commune_key("commune-aubrac"))
    )
    assert aubrac["name"] == "Commune de Aubrac" and aubrac["admitted_height"] == 1
    assert cerdon["status"] == "suspended" and cerdon["siret"] is None
    assert cerdon["status_height"] == 2 and cerdon["admitted_height"] == 1


def test_the_list_is_read_a_page_at_a_time(api: NodeApi) -> None:
    first = issuers_page(get(api, "/v1/issuers", params={"limit": "2"}))
    assert [issuer["id"] for issuer in first] == list(COMMUNES[:2])
    rest = issuers_page(get(api, "/v1/issuers", params={"after": first[-1]["id"], "limit": "2"}))
    assert [issuer["id"] for issuer in rest] == [COMMUNES[2]]
    assert issuers_page(get(api, "/v1/issuers", params={"after": COMMUNES[2]})) == []
    before_all = issuers_page(get(api, "/v1/issuers", params={"after": "a"}))
    assert len(before_all) == len(COMMUNES)
    top = issuers_page(get(api, "/v1/issuers", params={"limit": str(ISSUERS_PAGE_MAX)}))
    assert len(top) == len(COMMUNES)


def test_one_issuer_is_read_by_its_id(api: NodeApi) -> None:
    reply = get(api, "/v1/issuers/commune-bellecombe")
    assert reply.status == 200, reply.body
    document = display.IssuerDocument.model_validate_json(reply.body)
    assert document.issuer.id == "commune-bellecombe" and document.issuer.status == "active"
    assert document.height == api.node.store.height


def test_msgpack_clients_get_the_issuers_key_as_bytes(api: NodeApi) -> None:
    reply = get(api, "/v1/issuers/commune-aubrac", headers={"Accept": "application/msgpack"})
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/msgpack"
    issuer = encoding.unpack(reply.body)["issuer"]
    assert issuer["public_key"] == crypto.public_key_bytes(commune_key("commune-aubrac"))


def test_the_acts_of_an_issuer_are_still_served_under_the_same_prefix(api: NodeApi) -> None:
    reply = get(api, "/v1/issuers/commune-aubrac/acts")
    assert reply.status == 200, reply.body
    document = display.IssuerActsDocument.model_validate_json(reply.body)
    assert [act.reference for act in document.acts] == ["2026-DEL-001"]
    assert document.issuer == "commune-aubrac"


# --- refusals ---------------------------------------------------------------------------------


def test_an_unknown_issuer_is_not_found(api: NodeApi) -> None:
    document = problem(get(api, "/v1/issuers/commune-inconnue"), "not_found")
    assert "commune-inconnue" in document["detail"]
    problem(get(api, f"/v1/issuers/{MEMBER}"), "not_found")  # a member is no issuer


@pytest.mark.parametrize(
    ("parameters", "detail"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": str(ISSUERS_PAGE_MAX + 1)}, "limit"),
        ({"limit": "99999"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"after": "Commune_A"}, "after"),
        ({"after": "x" * 49}, "after"),
        ({"after": "a&limit=5"}, "after"),
    ],
)
def test_malformed_page_parameters_are_refused(
    api: NodeApi, parameters: dict[str, str], detail: str
) -> None:
    document = problem(get(api, "/v1/issuers", params=parameters), "invalid_query")
    assert document["detail"].startswith(detail), document


def test_unknown_or_repeated_page_parameters_are_refused(api: NodeApi) -> None:
    problem(get(api, "/v1/issuers?from=commune-a"), "invalid_parameter")
    problem(get(api, "/v1/issuers?limit=1&limit=2"), "invalid_parameter")


def test_a_malformed_issuer_id_is_refused(api: NodeApi) -> None:
    problem(get(api, "/v1/issuers/Commune_A"), "invalid_query")
    problem(get(api, "/v1/issuers/" + "x" * 49), "invalid_query")


def test_the_openapi_document_describes_both_routes(api: NodeApi) -> None:
    document = get(api, "/openapi.json").json()
    listing = document["paths"]["/v1/issuers"]["get"]
    assert {parameter["name"] for parameter in listing["parameters"]} == {"after", "limit"}
    limit = next(p for p in listing["parameters"] if p["name"] == "limit")
    assert limit["schema"]["maximum"] == ISSUERS_PAGE_MAX
    one = document["paths"]["/v1/issuers/{issuer}"]["get"]
    assert "404" in one["responses"] and "/v1/issuers/{issuer}/acts" in document["paths"]
    schemas = document["components"]["schemas"]
    assert {"IssuersDocument", "IssuerDocument", "IssuerRecord"} <= set(schemas)
