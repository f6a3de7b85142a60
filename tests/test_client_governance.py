"""The client library's governance: issuers admitted, suspended, reinstated and removed by the
members' votes, and a principal's own key (rotate, delegate, revoke).

Against a real one-member node in process (membership 1.1 and deeds; one member's vote passes
a proposal, so each proposal here is decided by its proposer), reached over a loopback socket
by :class:`~ledger.client.AsyncClient` on the node's own event loop. The inputs the client
refuses are refused before anything is sent: those tests give an address where nothing
listens, so a request would fail with another code.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from support import NodeApi, start_client, start_node

from ledger import crypto
from ledger.client import (
    ISSUERS_PER_PROPOSAL_MAX,
    ApiError,
    AsyncClient,
    Client,
    InvalidArgument,
    TransactionRejected,
)
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef

MEMBER = "metropole-valbrune"
SIRET = "21590350100017"
NOWHERE = "http://127.0.0.1:9"
_REFERENCES = itertools.count(1)


def key_of(name: str) -> crypto.PrivateKey:
    return crypto.key_from_seed(hashlib.sha256(name.encode()).digest())


def public_text(name: str) -> str:
    return crypto.public_key_to_text(crypto.public_key_bytes(key_of(name)))


def application(commune: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": commune,
        "name": f"Commune de {commune}",
        "siret": SIRET,
        "public_key": public_text(commune),
        **fields,
    }


class Harness(NodeApi):
    url: str

    def sceau_client(self, signer: crypto.PrivateKey | None = None) -> AsyncClient:
        return AsyncClient(self.url, signer=signer, timeout_s=5)

    def call(self, signer: crypto.PrivateKey | None, method: str, *args: Any, **kw: Any) -> Any:
        """``method`` of a client signing with ``signer``, run on the node's loop."""

        async def once() -> Any:
            async with self.sceau_client(signer) as client:
                return await getattr(client, method)(*args, **kw)

        return self.run(once())

    def member(self, method: str, *args: Any, **kw: Any) -> Any:
        return self.call(self.consortium.keys[MEMBER], method, *args, **kw)

    def anchor(self, issuer: str, signer: crypto.PrivateKey) -> dict[str, Any]:
        reference = f"2026-DEL-{next(_REFERENCES):03d}"
        return self.call(
            signer,
            "anchor",
            issuer=issuer,
            reference=reference,
            kind="deliberation",
            digest=hashlib.sha256(reference.encode()).digest(),
            act_date="2026-11-28",
            title="Délibération",
        )


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    folder = tmp_path_factory.mktemp("client-governance")
    contracts = [
        ContractRef(name="membership", version="1.1"),
        ContractRef(name="deeds", version="1.0"),
    ]
    consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")], seed=b"sceau client governance", contracts=contracts
    )
    loop, node, config = start_node(folder / "node", consortium, MEMBER)
    client = loop.run_until_complete(start_client(node, config))
    harness = Harness(loop=loop, consortium=consortium, node=node, client=client)
    harness.url = str(client.make_url("")).rstrip("/")
    yield harness
    harness.close([client])


# --- admission --------------------------------------------------------------------------------


def test_admit_issuers_splits_a_territory_into_proposals_of_fifty(api: Harness) -> None:
    communes = [f"territoire-{index:03d}" for index in range(ISSUERS_PER_PROPOSAL_MAX + 3)]
    proposal_ids = api.member("admit_issuers", MEMBER, [application(c) for c in communes])
    assert len(proposal_ids) == 2 and all(len(p) == 64 for p in proposal_ids)
    admitted = api.member("issuers", after="territoire", limit=1000)
    assert [issuer["id"] for issuer in admitted] == communes
    assert {issuer["status"] for issuer in admitted} == {"active"}
    first = api.member("issuers", after="territoire", limit=2)
    assert [issuer["id"] for issuer in first] == communes[:2]
    assert api.member("proposals") == []  # each passed at once: one member is 100%


def test_an_admitted_issuer_anchors_delegates_rotates_and_revokes(api: Harness) -> None:
    [proposal_id] = api.member("admit_issuers", MEMBER, [application("commune-aubrac")])
    issuer = api.member("issuer", "commune-aubrac")
    assert issuer["status"] == "active" and issuer["public_key"] == public_text("commune-aubrac")
    commune = key_of("commune-aubrac")
    assert api.anchor("commune-aubrac", commune)["status"] == "committed"

    records = key_of("records system")
    api.call(
        commune, "delegate", "commune-aubrac", crypto.public_key_bytes(records), ["deeds.issue"]
    )
    assert api.anchor("commune-aubrac", records)["status"] == "committed"
    api.call(commune, "revoke", "commune-aubrac", crypto.public_key_bytes(records))
    with pytest.raises(TransactionRejected) as refused:
        api.anchor("commune-aubrac", records)
    assert refused.value.code == "wrong_signer"

    rotated = key_of("commune-aubrac, 2027")
    api.call(
        commune,
        "rotate_key",
        "commune-aubrac",
        crypto.public_key_to_text(crypto.public_key_bytes(rotated)),
    )
    assert api.anchor("commune-aubrac", rotated)["status"] == "committed"
    with pytest.raises(TransactionRejected):
        api.anchor("commune-aubrac", commune)
    with pytest.raises(TransactionRejected) as closed:
        api.member("vote", proposal_id, MEMBER, True)
    assert closed.value.code == "proposal_closed"


def test_suspension_reinstatement_and_removal_are_voted_changes(api: Harness) -> None:
    api.member("admit_issuers", MEMBER, [application("commune-cerdon", siret=None)])
    commune = key_of("commune-cerdon")
    suspended = api.member("suspend_issuer", MEMBER, "commune-cerdon")
    assert suspended["result"]["status"] == "passed"
    assert suspended["result"]["effective_height"] == suspended["height"] + 1
    assert suspended["proposal_id"] == suspended["tx_id"]
    assert api.member("issuer", "commune-cerdon")["status"] == "suspended"
    with pytest.raises(TransactionRejected) as refused:
        api.anchor("commune-cerdon", commune)
    assert refused.value.code == "issuer_suspended"

    api.member("reinstate_issuer", MEMBER, "commune-cerdon")
    assert api.anchor("commune-cerdon", commune)["status"] == "committed"
    with pytest.raises(TransactionRejected) as active:
        api.member("reinstate_issuer", MEMBER, "commune-cerdon")
    assert active.value.code == "invalid_issuer_transition"
    api.member("remove_issuer", MEMBER, "commune-cerdon")
    assert api.member("issuer", "commune-cerdon")["status"] == "removed"
    with pytest.raises(TransactionRejected) as again:
        api.member("remove_issuer", MEMBER, "commune-cerdon")
    assert again.value.code == "unknown_issuer"  # a removed issuer is gone for governance
    with pytest.raises(TransactionRejected) as reused:
        api.member("admit_issuers", MEMBER, [application("commune-cerdon")])
    assert reused.value.code == "duplicate_issuer_id"


def test_propose_takes_any_membership_change(api: Harness) -> None:
    change = {"kind": "set_parameters", "parameters": {"proposal_lifetime_blocks": 20_000}}
    outcome = api.member("propose", MEMBER, change)
    assert outcome["result"]["status"] == "passed"
    with pytest.raises(TransactionRejected) as unknown:
        api.member("suspend_issuer", MEMBER, "commune-inconnue")
    assert unknown.value.code == "unknown_issuer"


def test_an_issuer_never_governs(api: Harness) -> None:
    api.member("admit_issuers", MEMBER, [application("commune-dieulefit")])
    with pytest.raises(TransactionRejected) as refused:
        api.call(
            key_of("commune-dieulefit"), "suspend_issuer", "commune-dieulefit", "commune-dieulefit"
        )
    assert refused.value.code == "not_a_member"


def test_an_unknown_issuer_is_an_api_error_404(api: Harness) -> None:
    with pytest.raises(ApiError) as missing:
        api.member("issuer", "commune-inconnue")
    assert (missing.value.status, missing.value.code) == (404, "not_found")


# --- inputs refused before anything is sent ---------------------------------------------------


def refused(method: str, *args: Any, **kw: Any) -> InvalidArgument:
    with (
        Client(NOWHERE, signer=key_of("anyone")) as client,
        pytest.raises(InvalidArgument) as raised,
    ):
        getattr(client, method)(*args, **kw)
    assert raised.value.code == "invalid_argument"
    return raised.value


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        (application("Commune_A"), "issuers[0].id"),
        (application("commune-a", siret="2159035010001"), "issuers[0].siret"),
        (application("commune-a", siret="2159035010001X"), "issuers[0].siret"),
        (application("commune-a", siret=21590350100017), "issuers[0].siret"),
        (application("commune-a", public_key="ed25519:abc"), "issuers[0].public_key"),
        (application("commune-a", public_key=b"\x01" * 31), "issuers[0].public_key"),
        (application("commune-a", public_key=bytes(32)), "issuers[0].public_key"),
        (application("commune-a", name=""), "issuers[0].name"),
        (application("commune-a", name="x" * 129), "issuers[0].name"),
        (application("commune-a", mayor="Jeanne"), "issuers[0].mayor"),
        ({"id": "commune-a", "name": "Commune A"}, "issuers[0].public_key"),
    ],
)
def test_each_issuer_of_an_admission_is_checked_before_sending(
    entry: dict[str, Any], field: str
) -> None:
    assert refused("admit_issuers", MEMBER, [entry]).field == field


def test_an_admission_names_the_row_at_fault_and_refuses_duplicates() -> None:
    good = [application(f"commune-{index}") for index in range(60)]
    bad = [*good[:55], application("commune-x", siret="123"), *good[55:]]
    assert refused("admit_issuers", MEMBER, bad).field == "issuers[55].siret"
    twice = [*good[:3], application("commune-1")]
    error = refused("admit_issuers", MEMBER, twice)
    assert error.field == "issuers[3].id" and "issuers[1]" in error.why
    same_key = [*good[:2], application("commune-z", public_key=good[0]["public_key"])]
    assert refused("admit_issuers", MEMBER, same_key).field == "issuers[2].public_key"
    assert refused("admit_issuers", MEMBER, []).field == "issuers"
    assert refused("admit_issuers", MEMBER, "commune-a").field == "issuers"


def test_governance_arguments_are_checked_before_sending() -> None:
    assert refused("vote", "ab" * 31, MEMBER, True).field == "proposal_id"
    assert refused("vote", "ab" * 32, MEMBER, "yes").field == "approve"
    assert refused("vote", "ab" * 32, "Member A", True).field == "voter"
    assert refused("propose", MEMBER, {"issuer_id": "x"}).field == "change"
    assert refused("suspend_issuer", "-bad", "commune-a").field == "proposer"
    assert refused("remove_issuer", MEMBER, "commune a").field == "issuer_id"
    assert refused("reinstate_issuer", MEMBER, 7).field == "issuer_id"


def test_a_principals_key_arguments_are_checked_before_sending() -> None:
    app = public_text("app")
    assert refused("rotate_key", "commune-a", "ed25519:").field == "new_public_key"
    assert refused("rotate_key", "commune-a", 42).field == "new_public_key"
    assert refused("delegate", "commune-a", app, "deeds.issue").field == "roles"
    assert refused("delegate", "commune-a", app, []).field == "roles"
    assert refused("delegate", "commune-a", app, ["deeds"]).field == "roles"
    assert refused("delegate", "commune-a", app, ["deeds.issue", "deeds.issue"]).field == "roles"
    assert refused("delegate", "commune-a", app, [f"d.r{i}" for i in range(17)]).field == "roles"
    assert refused("delegate", "commune-a", app, ["deeds.issue"], until=0).field == "until"
    assert refused("delegate", "Commune", app, ["deeds.issue"]).field == "principal"
    assert refused("revoke", "commune-a", b"\x00" * 33).field == "signer"


def test_page_arguments_are_checked_before_sending() -> None:
    assert refused("issuers", limit=0).field == "limit"
    assert refused("issuers", limit=1001).field == "limit"
    assert refused("issuers", after="Not An Id").field == "after"
    assert refused("issuer", "commune/a").field == "issuer_id"
