"""Specification of issuers (membership 1.1): collectivities that anchor in their own name.

The territory's other collectivities are admitted by governance with their own key; they anchor
acts in their own name, rotate their key, delegate roles to their applications, and can be
suspended, reinstated and removed; they never govern. Everything runs through the real engine
(membership and deeds) on a :class:`MemoryState`, one block at a time, as a node runs it: a
change made at height h is in force from h + 1.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_membership import ACCEPTED, Chain, extra_key, public

from contracts.deeds import DeedsContract
from contracts.engine import Engine
from contracts.membership import (
    GOVERN,
    ISSUERS_PAGE_MAX,
    ISSUERS_PER_ADMISSION_MAX,
    MembershipContract,
)
from contracts.registry import ContractLoadError, load_contracts
from ledger.memstate import MemoryState
from ledger.model import ContractRef, Genesis, Transaction

SIRET = "21590350100017"


def application(issuer_id: str, *, key: Ed25519PrivateKey | None = None) -> dict[str, Any]:
    """How an ``admit_issuers`` change names ``issuer_id`` (its key: ``extra_key(id)``)."""
    return {
        "id": issuer_id,
        "name": f"Commune de {issuer_id}",
        "siret": SIRET,
        "public_key": public(key or extra_key(issuer_id)),
    }


def admit_issuers(*issuer_ids: str) -> dict[str, Any]:
    return {"kind": "admit_issuers", "issuers": [application(i) for i in issuer_ids]}


def set_status(kind: str, issuer_id: str) -> dict[str, Any]:
    return {"kind": kind, "issuer_id": issuer_id}


class Territory(Chain):
    """Four members running membership and deeds, ready to admit issuers."""

    def __init__(self, membership_version: str | None = None) -> None:
        super().__init__()
        contracts: dict[str, Any] = {"deeds": DeedsContract()}
        if membership_version is not None:
            contracts["membership"] = MembershipContract.at_version(membership_version)
        self.engine = Engine(self.consortium.genesis, contracts)
        self.state = MemoryState()
        self.state.commit(self.engine.genesis_state())

    def decide(self, change: dict[str, Any]) -> str:
        """Propose ``change`` and vote it through (3 of 4); the deciding vote's outcome."""
        proposal = self.propose("metropole", change)
        assert self.run(self.vote_tx("commune-a", proposal)) == ACCEPTED
        return self.run(self.vote_tx("commune-b", proposal))

    def anchor_tx(
        self, issuer: str, reference: str, by: Ed25519PrivateKey | str | None = None
    ) -> Transaction:
        key = by if by is not None else extra_key(issuer)
        key = self.consortium.keys[key] if isinstance(key, str) else key
        return Transaction.create(
            key,
            chain_id=self.consortium.chain_id,
            contract="deeds",
            action="anchor",
            args={
                "issuer": issuer,
                "reference": reference,
                "kind": "deliberation",
                "digest": hashlib.sha256(f"{issuer} {reference}".encode()).digest(),
                "act_date": "2026-03-12",
                "title": "Approbation du budget primitif",
            },
            nonce=next(self._nonces),
            expiry_height=10**9,
        )

    def issuer(self, issuer_id: str) -> dict[str, Any]:
        return self.query(f"issuer/{issuer_id}")


def test_an_admitted_issuer_anchors_in_its_own_name_from_the_next_height() -> None:
    chain = Territory()
    proposal = chain.propose("metropole", admit_issuers("saint-amand", "hautmont"))
    assert chain.run(chain.vote_tx("commune-a", proposal)) == ACCEPTED
    # The deciding vote and an anchor by the new issuer in one block: not in force yet.
    outcomes = chain.block(
        chain.vote_tx("commune-b", proposal), chain.anchor_tx("saint-amand", "2026-DEL-001")
    )
    assert outcomes == [ACCEPTED, "not_a_member"]
    admitted_at = chain.height
    assert chain.run(chain.anchor_tx("saint-amand", "2026-DEL-001")) == ACCEPTED
    assert chain.issuer("saint-amand") == {
        "id": "saint-amand",
        "name": "Commune de saint-amand",
        "siret": SIRET,
        "public_key": public(extra_key("saint-amand")),
        "status": "active",
        "admitted_height": admitted_at,
        "status_height": admitted_at,
    }
    act = chain.engine.query(chain.state, "deeds", "act/saint-amand/2026-DEL-001")
    assert act["issuer"] == "saint-amand"


def test_an_issuer_signs_only_for_itself_and_a_member_only_for_itself() -> None:
    chain = Territory()
    assert chain.decide(admit_issuers("saint-amand", "hautmont")) == ACCEPTED
    assert chain.run(chain.anchor_tx("hautmont", "X-1", by=extra_key("saint-amand"))) == (
        "wrong_signer"
    )
    assert chain.run(chain.anchor_tx("saint-amand", "X-2", by="metropole")) == "wrong_signer"
    assert chain.run(chain.anchor_tx("metropole", "X-3", by=extra_key("saint-amand"))) == (
        "wrong_signer"
    )


def test_issuers_never_govern() -> None:
    chain = Territory()
    assert chain.decide(admit_issuers("saint-amand")) == ACCEPTED
    key = extra_key("saint-amand")
    change = admit_issuers("hautmont")
    assert chain.run(chain.propose_tx("saint-amand", change, by=key)) == "not_a_member"
    proposal = chain.propose("metropole", change)
    assert chain.run(chain.vote_tx("saint-amand", proposal, by=key)) == "not_a_member"
    # Nor through a delegation: an issuer cannot hand out the governance role.
    clerk = extra_key("clerk")
    assert chain.run(chain.delegate_tx("saint-amand", clerk, [GOVERN], by=key)) == (
        "unauthorized_role"
    )
    # And the votes count members only: 4 members, 3 votes needed, the issuer adds nothing.
    assert len(chain.members()) == 4


def test_an_issuer_delegates_to_its_application_and_revokes() -> None:
    chain = Territory()
    assert chain.decide(admit_issuers("saint-amand")) == ACCEPTED
    key, records_system = extra_key("saint-amand"), extra_key("records-system")
    assert chain.run(chain.delegate_tx("saint-amand", records_system, ["deeds.issue"], by=key)) == (
        ACCEPTED
    )
    assert chain.run(chain.anchor_tx("saint-amand", "A-1", by=records_system)) == ACCEPTED
    assert chain.query("delegations/saint-amand")[0]["roles"] == ["deeds.issue"]
    assert chain.query(f"signer/{public(key).hex()}")["issuer_key_of"] == "saint-amand"
    # The delegate holds only the role given; only the issuer's own key manages delegations.
    assert chain.run(chain.delegate_tx("saint-amand", extra_key("other"), by=records_system)) == (
        "wrong_signer"
    )
    assert chain.run(chain.revoke_tx("saint-amand", records_system, by=key)) == ACCEPTED
    assert chain.run(chain.anchor_tx("saint-amand", "A-2", by=records_system)) == "wrong_signer"


def test_an_issuer_rotates_its_key() -> None:
    chain = Territory()
    assert chain.decide(admit_issuers("saint-amand")) == ACCEPTED
    old, new = extra_key("saint-amand"), extra_key("saint-amand-2027")
    assert chain.run(chain.rotate_tx("saint-amand", public(new), by=old)) == ACCEPTED
    assert chain.run(chain.anchor_tx("saint-amand", "R-1", by=old)) == "wrong_signer"
    assert chain.run(chain.anchor_tx("saint-amand", "R-2", by=new)) == ACCEPTED
    assert chain.issuer("saint-amand")["public_key"] == public(new)
    # A key already in use is refused: a member's node key, another issuer's key.
    assert chain.decide(admit_issuers("hautmont")) == ACCEPTED
    taken = [chain.node_key("metropole"), public(extra_key("hautmont"))]
    for key in taken:
        assert chain.run(chain.rotate_tx("saint-amand", key, by=new)) == "duplicate_public_key"
    # An issuer has no endpoint: it runs no node.
    assert chain.run(chain.endpoint_tx("saint-amand", "10.0.0.9:7000", by=new)) == "not_a_member"


def test_suspension_stops_every_key_of_the_issuer_until_reinstated() -> None:
    chain = Territory()
    assert chain.decide(admit_issuers("saint-amand")) == ACCEPTED
    key, app = extra_key("saint-amand"), extra_key("app")
    assert chain.run(chain.delegate_tx("saint-amand", app, ["deeds.issue"], by=key)) == ACCEPTED
    assert chain.decide(set_status("suspend_issuer", "saint-amand")) == ACCEPTED
    assert chain.issuer("saint-amand")["status"] == "suspended"
    assert chain.run(chain.anchor_tx("saint-amand", "S-1")) == "issuer_suspended"
    assert chain.run(chain.anchor_tx("saint-amand", "S-2", by=app)) == "issuer_suspended"
    assert chain.run(chain.rotate_tx("saint-amand", public(extra_key("x")), by=key)) == (
        "issuer_suspended"
    )
    again = chain.propose_tx("metropole", set_status("suspend_issuer", "saint-amand"))
    assert chain.run(again) == "invalid_issuer_transition"
    assert chain.decide(set_status("reinstate_issuer", "saint-amand")) == ACCEPTED
    assert chain.run(chain.anchor_tx("saint-amand", "S-3", by=app)) == ACCEPTED


def test_a_removed_issuer_signs_nothing_and_its_id_is_never_given_again() -> None:
    chain = Territory()
    assert chain.decide(admit_issuers("saint-amand")) == ACCEPTED
    key, app = extra_key("saint-amand"), extra_key("app")
    assert chain.run(chain.delegate_tx("saint-amand", app, ["deeds.issue"], by=key)) == ACCEPTED
    assert chain.run(chain.anchor_tx("saint-amand", "K-1")) == ACCEPTED
    assert chain.decide(set_status("remove_issuer", "saint-amand")) == ACCEPTED
    record = chain.issuer("saint-amand")
    assert record["status"] == "removed" and record["status_height"] == chain.height
    assert chain.run(chain.anchor_tx("saint-amand", "K-2")) == "not_a_member"
    assert chain.run(chain.anchor_tx("saint-amand", "K-3", by=app)) == "not_a_member"
    assert chain.query("delegations/saint-amand") == []
    # Its acts stay, in its name.
    assert chain.engine.query(chain.state, "deeds", "act/saint-amand/K-1")["issuer"] == (
        "saint-amand"
    )
    for change in (
        admit_issuers("saint-amand"),
        set_status("reinstate_issuer", "saint-amand"),
        set_status("remove_issuer", "saint-amand"),
    ):
        proposal = chain.propose_tx("metropole", change)
        assert chain.run(proposal) in ("duplicate_issuer_id", "unknown_issuer")
    member = {
        "kind": "admit",
        "member": {
            "id": "saint-amand",
            "name": "Saint-Amand",
            "public_key": public(extra_key("new-node")),
            "endpoint": "10.0.0.7:7000",
        },
    }
    assert chain.run(chain.propose_tx("metropole", member)) == "duplicate_issuer_id"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "admit_issuers", "issuers": []}, "change.issuers"),
        (
            {
                "kind": "admit_issuers",
                "issuers": [application(f"c{i}") for i in range(ISSUERS_PER_ADMISSION_MAX + 1)],
            },
            "change.issuers",
        ),
        (
            {"kind": "admit_issuers", "issuers": [application("a"), application("a")]},
            "change.issuers",
        ),
        (
            {"kind": "admit_issuers", "issuers": [{**application("a"), "siret": "123"}]},
            "change.issuers.0.siret",
        ),
        (
            {"kind": "admit_issuers", "issuers": [{**application("a"), "id": "Saint Amand"}]},
            "change.issuers.0.id",
        ),
        (
            {"kind": "admit_issuers", "issuers": [{**application("a"), "extra": 1}]},
            "change.issuers.0.extra",
        ),
        ({"kind": "remove_issuer", "issuer_id": "A"}, "change.issuer_id"),
    ],
)
def test_malformed_issuer_changes_are_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    chain = Territory()
    transaction = chain.propose_tx("metropole", change)
    result = chain.execute(transaction)
    [(_, rejection)] = result.rejected
    assert rejection.code == "invalid_arguments"
    assert rejection.reason.startswith(field + ":"), rejection.reason


def test_an_issuer_key_must_be_nobody_elses() -> None:
    chain = Territory()
    taken_by_member = {
        "kind": "admit_issuers",
        "issuers": [{**application("a"), "public_key": chain.node_key("commune-a")}],
    }
    assert chain.run(chain.propose_tx("metropole", taken_by_member)) == "duplicate_public_key"
    assert chain.run(chain.propose_tx("metropole", admit_issuers("commune-a"))) == (
        "duplicate_member_id"
    )
    assert chain.decide(admit_issuers("a")) == ACCEPTED
    same_key = {
        "kind": "admit_issuers",
        "issuers": [{**application("b"), "public_key": public(extra_key("a"))}],
    }
    assert chain.run(chain.propose_tx("metropole", same_key)) == "duplicate_public_key"


def test_issuers_are_listed_in_id_order_page_by_page() -> None:
    chain = Territory()
    ids = [f"commune-{n:03d}" for n in range(120)]
    for start in range(0, len(ids), ISSUERS_PER_ADMISSION_MAX):
        assert chain.decide(admit_issuers(*ids[start : start + ISSUERS_PER_ADMISSION_MAX])) == (
            ACCEPTED
        )
    first = chain.query("issuers")
    assert [entry["id"] for entry in first] == ids[:100]
    rest = chain.query(f"issuers?after={ids[99]}&limit=50")
    assert [entry["id"] for entry in rest] == ids[100:]
    assert chain.query("issuers?limit=3") == first[:3]
    for bad in ("issuers?limit=0", f"issuers?limit={ISSUERS_PAGE_MAX + 1}", "issuers?x=1"):
        with pytest.raises(ValueError):
            chain.query(bad)
    with pytest.raises(LookupError):
        chain.query("issuer/nobody")


def test_a_chain_that_pins_membership_1_0_keeps_its_rules() -> None:
    chain = Territory(membership_version="1.0")
    result = chain.execute(chain.propose_tx("metropole", admit_issuers("saint-amand")))
    [(_, rejection)] = result.rejected
    assert rejection.code == "invalid_arguments"
    assert rejection.reason.startswith("change.kind: expected one of admit, remove, set_parameters")


def test_the_registry_runs_1_0_for_a_genesis_that_pins_it_and_refuses_unknown_versions() -> None:
    chain = Chain()
    genesis = chain.consortium.genesis

    def pinned(version: str) -> Genesis:
        refs = (ContractRef(name="membership", version=version),)
        return Genesis.from_canonical(
            {**genesis.to_canonical(), "contracts": [ref.to_canonical() for ref in refs]}
        )

    old = load_contracts(pinned("1.0"))["membership"]
    assert chain_refuses_issuers(old)
    assert not chain_refuses_issuers(load_contracts(pinned("1.1"))["membership"])
    with pytest.raises(ContractLoadError, match=r"version 0\.9.*also runs 1\.2, 1\.1, 1\.0"):
        load_contracts(pinned("0.9"))


def chain_refuses_issuers(contract: Any) -> bool:
    chain = Territory()
    transaction = chain.propose_tx("metropole", admit_issuers("x"))
    try:
        contract.check(transaction)
    except Exception:
        return True
    return False


def test_at_most_issuers_max_are_ever_admitted_removed_ones_included(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("contracts.membership.ISSUERS_MAX", 3)
    chain = Territory()
    assert chain.decide(admit_issuers("a", "b")) == ACCEPTED
    assert chain.run(chain.propose_tx("metropole", admit_issuers("c", "d"))) == "too_many_issuers"
    assert chain.decide(set_status("remove_issuer", "a")) == ACCEPTED
    # A removed issuer still counts: its id stays reserved.
    assert chain.run(chain.propose_tx("metropole", admit_issuers("c", "d"))) == "too_many_issuers"
    assert chain.decide(admit_issuers("c")) == ACCEPTED


@pytest.mark.parametrize(
    ("change", "code"),
    [
        (set_status("suspend_issuer", "nobody"), "unknown_issuer"),
        (set_status("remove_issuer", "nobody"), "unknown_issuer"),
        (set_status("reinstate_issuer", "saint-amand"), "invalid_issuer_transition"),
    ],
)
def test_status_changes_name_what_they_cannot_apply_to(change: dict[str, Any], code: str) -> None:
    chain = Territory()
    assert chain.decide(admit_issuers("saint-amand")) == ACCEPTED
    assert chain.run(chain.propose_tx("metropole", change)) == code


def test_a_status_change_that_no_longer_applies_when_it_would_pass_keeps_the_proposal_open() -> (
    None
):
    chain = Territory()
    assert chain.decide(admit_issuers("saint-amand")) == ACCEPTED
    first = chain.propose("metropole", set_status("suspend_issuer", "saint-amand"))
    second = chain.propose("commune-a", set_status("remove_issuer", "saint-amand"))
    assert chain.run(chain.vote_tx("commune-b", second)) == ACCEPTED
    assert chain.run(chain.vote_tx("commune-c", second)) == ACCEPTED  # removed
    assert chain.run(chain.vote_tx("commune-a", first)) == ACCEPTED
    assert chain.run(chain.vote_tx("commune-b", first)) == "unknown_issuer"
    assert chain.proposal(first)["status"] == "open"
