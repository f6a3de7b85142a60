"""Specification of the deeds contract, driven through the real execution engine.

Every transaction here is signed, executed by :class:`contracts.engine.Engine` as part of a
block and committed into a :class:`ledger.memstate.MemoryState`, exactly as a node would. The
rules are stated three ways: scenario tests (one rule each), a table of invalid arguments, and
a Hypothesis state machine that plays random blocks against a small Python model of the rules.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from contracts.base import Rejection, decode_record, encode_record
from contracts.deeds import (
    DEEDS_KEYS,
    LINKS_PER_LIST_MAX,
    RECEIPT_ANCHOR,
    Act,
    DeedsContract,
    person_commitment,
    verify_person_commitment,
)
from contracts.engine import STATE_VALUE_BYTES_MAX, Engine, ExecutionResult
from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.memstate import MemoryState
from ledger.model import Transaction

MEMBERS = (
    ("metropole", "Métropole de test"),
    ("commune-a", "Commune A"),
    ("commune-b", "Commune B"),
    ("syndicat-eau", "Syndicat des eaux"),
)
CONSORTIUM = LocalConsortium.create(MEMBERS, seed=b"sceau tests: deeds")
BLOCK_INTERVAL_MS = 1_000


def digest_of(text: str) -> bytes:
    """The SHA-256 digest of a stand-in document."""
    return hashlib.sha256(text.encode()).digest()


def outside_key(name: str) -> crypto.PrivateKey:
    """A key that no member holds, derived from ``name`` so that examples replay."""
    return Ed25519PrivateKey.from_private_bytes(
        hashlib.sha256(b"outside " + name.encode()).digest()
    )


def public(key: crypto.PrivateKey) -> bytes:
    return crypto.public_key_bytes(key)


def anchor_arguments(issuer: str = "metropole", reference: str = "2026-DEL-001", **more: Any):
    """Valid ``anchor`` arguments, with ``more`` overriding or adding fields."""
    arguments: dict[str, Any] = {
        "issuer": issuer,
        "reference": reference,
        "kind": "deliberation",
        "digest": digest_of(f"{issuer} {reference}"),
        "act_date": "2026-03-12",
        "title": "Approbation du plan local d'urbanisme",
    }
    arguments.update(more)
    return arguments


class Chain:
    """A consortium's committed state, moved forward one block at a time by the real engine."""

    def __init__(self, consortium: LocalConsortium = CONSORTIUM) -> None:
        self.consortium = consortium
        self.engine = Engine(consortium.genesis, {"deeds": DeedsContract()})
        self.state = MemoryState()
        self.state.commit(self.engine.genesis_state())
        self.height = 0
        """The height of the last block executed (0: only the genesis)."""
        self._nonces = itertools.count()

    def key(self, member_id: str) -> crypto.PrivateKey:
        return self.consortium.keys[member_id]

    def transaction(self, key: crypto.PrivateKey, action: str, **arguments: Any) -> Transaction:
        return Transaction.create(
            key,
            chain_id=self.consortium.chain_id,
            contract="deeds",
            action=action,
            args=arguments,
            nonce=next(self._nonces),
            expiry_height=1_000_000,
        )

    def timestamp_ms(self, height: int) -> int:
        return self.consortium.genesis.created_at_ms + height * BLOCK_INTERVAL_MS

    def block(self, *transactions: Transaction, height_gap: int = 1) -> ExecutionResult:
        """Execute ``transactions`` as the next block and commit what the engine accepted."""
        height = self.height + height_gap
        result = self.engine.execute(
            self.state,
            transactions,
            height=height,
            timestamp_ms=self.timestamp_ms(height),
            proposer=self.consortium.genesis.members[0].id,
        )
        self.state.commit(result.state_writes, [tx.tx_id for tx in result.accepted])
        self.height = height
        return result

    def submit(self, key: crypto.PrivateKey, action: str, **arguments: Any) -> ExecutionResult:
        """One transaction in a block of its own."""
        return self.block(self.transaction(key, action, **arguments))

    def accept(self, key: crypto.PrivateKey, action: str, **arguments: Any) -> dict[str, Any]:
        """Submit and require acceptance; return the result document."""
        result = self.submit(key, action, **arguments)
        assert not result.rejected, result.rejected[0][1]
        return result.results[0]

    def rejection(self, key: crypto.PrivateKey, action: str, **arguments: Any) -> Rejection:
        """Submit and require rejection without any trace; return the rejection."""
        root_before = self.state.state_root
        result = self.submit(key, action, **arguments)
        assert not result.accepted and result.state_writes == {}
        assert result.state_root == root_before
        return result.rejected[0][1]

    def delegate(
        self,
        key: crypto.PrivateKey,
        member_id: str,
        roles: list[str],
        expiry_height: int | None = None,
    ) -> None:
        """Write a delegation straight into the committed membership state.

        The membership contract's ``delegate`` action is written elsewhere; this is the
        committed layout the engine reads (``membership/signer/<public key>``).
        """
        state_key = b"membership/signer/" + public(key)
        existing = self.state.state_get(state_key)
        record = {} if existing is None else decode_record(existing)
        record[member_id] = {"roles": roles, "expiry_height": expiry_height}
        self.state.commit({state_key: encode_record(record)})

    def query(self, path: str) -> Any:
        return self.engine.query(self.state, "deeds", path)


@pytest.fixture
def chain() -> Chain:
    return Chain()


# --- anchoring --------------------------------------------------------------------------------


def test_a_member_key_anchors_an_act_in_force(chain: Chain) -> None:
    result = chain.accept(chain.key("metropole"), "anchor", **anchor_arguments())

    assert result == {"issuer": "metropole", "reference": "2026-DEL-001", "status": "in_force"}
    act = chain.query("act/metropole/2026-DEL-001")
    assert act["status"] == "in_force"
    assert act["digest"] == digest_of("metropole 2026-DEL-001")
    assert act["anchored_height"] == act["status_height"] == 1
    assert act["anchored_timestamp_ms"] == chain.timestamp_ms(1)
    assert act["legal_basis"] is None and act["url"] is None and act["person_commitment"] is None
    assert act["amended_by"] == act["amends"] == act["supersedes"] == []
    assert act["superseded_by"] is None
    assert act["history_length"] == 1


def test_optional_anchor_fields_are_kept(chain: Chain) -> None:
    commitment = person_commitment(bytes(range(16)), "Dossier 2026-00042")
    chain.accept(
        chain.key("commune-a"),
        "anchor",
        **anchor_arguments(
            "commune-a",
            "PC-069-2026-0012",
            kind="permit",
            legal_basis="Code de l'urbanisme, art. L421-1",
            url="https://www.commune-a.example/actes/PC-069-2026-0012.pdf",
            person_commitment=commitment,
        ),
    )
    act = chain.query("act/commune-a/PC-069-2026-0012")
    assert act["kind"] == "permit"
    assert act["legal_basis"] == "Code de l'urbanisme, art. L421-1"
    assert act["url"] == "https://www.commune-a.example/actes/PC-069-2026-0012.pdf"
    assert act["person_commitment"] == commitment


def test_arguments_at_their_limits_are_accepted(chain: Chain) -> None:
    reference = "R/" + "x" * 62
    chain.accept(
        chain.key("metropole"),
        "anchor",
        **anchor_arguments(
            reference=reference,
            title="é" * 200,
            legal_basis="b" * 200,
            url="https://" + "u" * 492,
            act_date="2028-02-29",
        ),
    )
    assert chain.query(f"act/metropole/{reference}")["title"] == "é" * 200


def test_a_delegate_with_the_issue_role_anchors_for_its_member(chain: Chain) -> None:
    records_office = outside_key("records office")
    chain.delegate(records_office, "metropole", ["deeds.issue"])

    chain.accept(records_office, "anchor", **anchor_arguments())

    [entry] = chain.query("history/metropole/2026-DEL-001")
    assert entry["signer"] == public(records_office)


def test_another_members_key_is_the_wrong_signer(chain: Chain) -> None:
    rejection = chain.rejection(chain.key("commune-a"), "anchor", **anchor_arguments("metropole"))
    assert rejection.code == "wrong_signer"


def test_a_key_without_any_delegation_is_the_wrong_signer(chain: Chain) -> None:
    rejection = chain.rejection(outside_key("nobody"), "anchor", **anchor_arguments())
    assert rejection.code == "wrong_signer"


def test_an_issuer_that_is_not_a_member_is_refused(chain: Chain) -> None:
    rejection = chain.rejection(chain.key("metropole"), "anchor", **anchor_arguments("ghost-town"))
    assert rejection.code == "not_a_member"


def test_a_delegate_with_only_the_issue_role_may_not_change_a_status(chain: Chain) -> None:
    records_office = outside_key("records office")
    chain.delegate(records_office, "metropole", ["deeds.issue"])
    chain.accept(records_office, "anchor", **anchor_arguments())

    rejection = chain.rejection(
        records_office, "withdraw", issuer="metropole", reference="2026-DEL-001", reason="Erreur"
    )
    assert rejection.code == "unauthorized_role"


def test_a_delegate_with_only_the_status_role_may_not_anchor(chain: Chain) -> None:
    clerk = outside_key("clerk")
    chain.delegate(clerk, "metropole", ["deeds.status"])
    assert chain.rejection(clerk, "anchor", **anchor_arguments()).code == "unauthorized_role"


def test_a_delegation_is_valid_up_to_its_expiry_height_and_not_after(chain: Chain) -> None:
    temporary = outside_key("temporary")
    chain.delegate(temporary, "metropole", ["deeds.issue"], expiry_height=2)
    chain.accept(temporary, "anchor", **anchor_arguments(reference="A-1"))  # height 1
    chain.accept(temporary, "anchor", **anchor_arguments(reference="A-2"))  # height 2

    rejection = chain.rejection(temporary, "anchor", **anchor_arguments(reference="A-3"))
    assert rejection.code == "expired_delegation"
    assert chain.height == 3


def test_a_delegation_holds_only_for_the_member_that_gave_it(chain: Chain) -> None:
    records_office = outside_key("records office")
    chain.delegate(records_office, "metropole", ["deeds.issue"])
    rejection = chain.rejection(records_office, "anchor", **anchor_arguments("commune-b"))
    assert rejection.code == "wrong_signer"


def test_an_issuer_anchors_a_document_once(chain: Chain) -> None:
    chain.accept(chain.key("metropole"), "anchor", **anchor_arguments(reference="A-1"))
    rejection = chain.rejection(
        chain.key("metropole"),
        "anchor",
        **anchor_arguments(reference="A-2", digest=digest_of("metropole A-1")),
    )
    assert rejection.code == "duplicate_digest"
    assert "A-1" in rejection.reason


def test_an_issuer_uses_a_reference_once(chain: Chain) -> None:
    chain.accept(chain.key("metropole"), "anchor", **anchor_arguments(reference="A-1"))
    rejection = chain.rejection(
        chain.key("metropole"), "anchor", **anchor_arguments(reference="A-1", digest=bytes(32))
    )
    assert rejection.code == "duplicate_reference"


def test_two_issuers_may_use_the_same_reference_and_the_same_digest(chain: Chain) -> None:
    shared = digest_of("convention intercommunale")
    for issuer in ("metropole", "commune-a"):
        chain.accept(
            chain.key(issuer), "anchor", **anchor_arguments(issuer, "CONV-1", digest=shared)
        )
    assert chain.query("act/commune-a/CONV-1")["digest"] == shared


def test_the_second_of_two_duplicates_in_one_block_is_refused(chain: Chain) -> None:
    first = chain.transaction(chain.key("metropole"), "anchor", **anchor_arguments())
    second = chain.transaction(
        chain.key("metropole"),
        "anchor",
        **anchor_arguments(reference="other", digest=digest_of("metropole 2026-DEL-001")),
    )
    result = chain.block(first, second)
    assert result.accepted == (first,)
    assert [rejection.code for _, rejection in result.rejected] == ["duplicate_digest"]


# --- invalid arguments ------------------------------------------------------------------------

STATUS_CHANGE = {"issuer": "metropole", "reference": "A-1", "reason": "Erreur matérielle"}
LINK = {"issuer": "metropole", "reference": "A-1", "by_reference": "A-2"}

INVALID_ARGUMENTS = [
    # (action, arguments, the field the reason names)
    ("anchor", anchor_arguments(issuer=42), "issuer"),
    ("anchor", anchor_arguments(issuer="Metropole"), "issuer"),
    ("anchor", anchor_arguments(reference=""), "reference"),
    ("anchor", anchor_arguments(reference="-2026-001"), "reference"),
    ("anchor", anchor_arguments(reference="/2026"), "reference"),
    ("anchor", anchor_arguments(reference="2026 DEL"), "reference"),
    ("anchor", anchor_arguments(reference="x" * 65), "reference"),
    ("anchor", anchor_arguments(reference=b"2026"), "reference"),
    ("anchor", anchor_arguments(kind="law"), "kind"),
    ("anchor", anchor_arguments(digest=bytes(31)), "digest"),
    ("anchor", anchor_arguments(digest="00" * 32), "digest"),
    ("anchor", anchor_arguments(act_date="2026-02-30"), "act_date"),
    ("anchor", anchor_arguments(act_date="2026-3-12"), "act_date"),
    ("anchor", anchor_arguments(act_date="20260312"), "act_date"),
    ("anchor", anchor_arguments(act_date="２０２６-03-12"), "act_date"),
    ("anchor", anchor_arguments(act_date=20260312), "act_date"),
    ("anchor", anchor_arguments(title=""), "title"),
    ("anchor", anchor_arguments(title="t" * 201), "title"),
    ("anchor", anchor_arguments(title="two\nlines"), "title"),
    ("anchor", anchor_arguments(title="c1 control \x85"), "title"),
    ("anchor", anchor_arguments(legal_basis=""), "legal_basis"),
    ("anchor", anchor_arguments(legal_basis="b" * 201), "legal_basis"),
    ("anchor", anchor_arguments(legal_basis=None), "legal_basis"),
    ("anchor", anchor_arguments(url="ftp://example.org/act.pdf"), "url"),
    ("anchor", anchor_arguments(url="https://example.org/an act.pdf"), "url"),
    ("anchor", anchor_arguments(url="https://"), "url"),
    ("anchor", anchor_arguments(url="https://" + "u" * 493), "url"),
    ("anchor", anchor_arguments(person_commitment=b"Jean Dupont"), "person_commitment"),
    ("anchor", anchor_arguments(signed_by="Le Maire"), "signed_by"),
    ("anchor", {k: v for k, v in anchor_arguments().items() if k != "title"}, "title"),
    ("amend", {**LINK, "by_reference": "-x"}, "by_reference"),
    ("amend", {k: v for k, v in LINK.items() if k != "by_reference"}, "by_reference"),
    ("supersede", {**LINK, "reference": ""}, "reference"),
    ("supersede", {**LINK, "reason": "not for supersede"}, "reason"),
    ("withdraw", {**STATUS_CHANGE, "reason": ""}, "reason"),
    ("withdraw", {**STATUS_CHANGE, "reason": "r" * 281}, "reason"),
    ("withdraw", {**STATUS_CHANGE, "reason": "tab\there"}, "reason"),
    ("withdraw", {**STATUS_CHANGE, "by_reference": "A-2"}, "by_reference"),
    ("annul", {**STATUS_CHANGE, "decision_reference": "d" * 65}, "decision_reference"),
    ("annul", {**STATUS_CHANGE, "decision_reference": ""}, "decision_reference"),
    ("annul", {k: v for k, v in STATUS_CHANGE.items() if k != "reason"}, "reason"),
    ("annul", {**STATUS_CHANGE, "issuer": ""}, "issuer"),
]


@pytest.mark.parametrize(
    ("action", "arguments", "field_name"),
    INVALID_ARGUMENTS,
    ids=[f"{action}-{name}-{index}" for index, (action, _, name) in enumerate(INVALID_ARGUMENTS)],
)
def test_invalid_arguments_are_refused_naming_the_field(
    chain: Chain, action: str, arguments: dict[str, Any], field_name: str
) -> None:
    rejection = chain.rejection(chain.key("metropole"), action, **arguments)
    assert rejection.code == "invalid_arguments"
    assert rejection.reason.startswith(f"{field_name}: "), rejection.reason


def test_invalid_arguments_are_refused_before_any_state_is_read(chain: Chain) -> None:
    transaction = chain.transaction(chain.key("metropole"), "anchor", **anchor_arguments(kind="x"))
    with pytest.raises(Rejection) as raised:
        chain.engine.check(transaction)
    assert raised.value.code == "invalid_arguments"


def test_an_unknown_action_is_refused(chain: Chain) -> None:
    rejection = chain.rejection(chain.key("metropole"), "delete", issuer="metropole")
    assert rejection.code == "unknown_action"


# --- lifecycle --------------------------------------------------------------------------------


def anchor_many(chain: Chain, issuer: str, *references: str) -> None:
    """Anchor ``references`` for ``issuer`` in one block, all accepted."""
    result = chain.block(
        *(
            chain.transaction(chain.key(issuer), "anchor", **anchor_arguments(issuer, reference))
            for reference in references
        )
    )
    assert not result.rejected, result.rejected[0][1]


def test_an_amendment_links_both_acts_and_keeps_the_act_active(chain: Chain) -> None:
    anchor_many(chain, "metropole", "A-1", "A-2", "A-3")
    key = chain.key("metropole")
    assert chain.accept(key, "amend", **LINK)["status"] == "amended"
    chain.accept(key, "amend", issuer="metropole", reference="A-1", by_reference="A-3")

    amended = chain.query("act/metropole/A-1")
    assert amended["status"] == "amended"
    assert amended["amended_by"] == ["A-2", "A-3"]
    assert chain.query("act/metropole/A-2")["amends"] == ["A-1"]
    assert chain.query("act/metropole/A-2")["status"] == "in_force"
    assert amended["status_height"] == 3


def test_an_amended_act_can_be_amended_again_and_amend_others(chain: Chain) -> None:
    anchor_many(chain, "metropole", "A-1", "A-2", "A-3")
    key = chain.key("metropole")
    chain.accept(key, "amend", **LINK)
    chain.accept(key, "amend", issuer="metropole", reference="A-3", by_reference="A-1")
    assert chain.query("act/metropole/A-1")["amends"] == ["A-3"]


def test_a_supersession_links_both_acts_and_ends_the_act(chain: Chain) -> None:
    anchor_many(chain, "metropole", "A-1", "A-2")
    result = chain.accept(chain.key("metropole"), "supersede", **LINK)
    assert result == {"issuer": "metropole", "reference": "A-1", "status": "superseded"}
    assert chain.query("act/metropole/A-1")["superseded_by"] == "A-2"
    assert chain.query("act/metropole/A-2")["supersedes"] == ["A-1"]


@pytest.mark.parametrize(("action", "status"), [("withdraw", "withdrawn"), ("annul", "annulled")])
def test_withdrawal_and_annulment_end_an_act_with_a_reason(
    chain: Chain, action: str, status: str
) -> None:
    anchor_many(chain, "metropole", "A-1")
    result = chain.accept(
        chain.key("metropole"), action, **STATUS_CHANGE, decision_reference="TA Lyon 2601234"
    )
    assert result["status"] == status
    last = chain.query("history/metropole/A-1")[-1]
    assert (last["action"], last["status"]) == (action, status)
    assert last["reason"] == "Erreur matérielle"
    assert last["decision_reference"] == "TA Lyon 2601234"


TERMINAL_ENDINGS = [
    ("supersede", {"by_reference": "A-2"}),
    ("withdraw", {"reason": "Erreur"}),
    ("annul", {"reason": "Jugement du tribunal administratif"}),
]
CHANGES = [
    ("amend", {"by_reference": "A-3"}),
    ("supersede", {"by_reference": "A-3"}),
    ("withdraw", {"reason": "encore"}),
    ("annul", {"reason": "encore"}),
]


@pytest.mark.parametrize(("ending", "ending_arguments"), TERMINAL_ENDINGS)
@pytest.mark.parametrize(("change", "change_arguments"), CHANGES)
def test_a_terminal_act_never_changes_again(
    chain: Chain,
    ending: str,
    ending_arguments: dict[str, str],
    change: str,
    change_arguments: dict[str, str],
) -> None:
    anchor_many(chain, "metropole", "A-1", "A-2", "A-3")
    key = chain.key("metropole")
    chain.accept(key, ending, issuer="metropole", reference="A-1", **ending_arguments)

    rejection = chain.rejection(
        key, change, issuer="metropole", reference="A-1", **change_arguments
    )
    assert rejection.code == "invalid_transition"


@pytest.mark.parametrize("change", ["amend", "supersede"])
def test_a_terminal_act_cannot_amend_or_supersede_another(chain: Chain, change: str) -> None:
    anchor_many(chain, "metropole", "A-1", "A-2", "A-3")
    key = chain.key("metropole")
    chain.accept(key, "withdraw", issuer="metropole", reference="A-2", reason="Erreur")
    rejection = chain.rejection(key, change, **LINK)
    assert rejection.code == "invalid_transition"


@pytest.mark.parametrize("change", ["amend", "supersede"])
def test_an_act_cannot_amend_or_supersede_itself(chain: Chain, change: str) -> None:
    anchor_many(chain, "metropole", "A-1")
    rejection = chain.rejection(
        chain.key("metropole"), change, issuer="metropole", reference="A-1", by_reference="A-1"
    )
    assert rejection.code == "invalid_transition"


def test_a_status_change_of_an_unknown_act_is_refused(chain: Chain) -> None:
    rejection = chain.rejection(chain.key("metropole"), "withdraw", **STATUS_CHANGE)
    assert rejection.code == "unknown_act"


def test_an_unknown_amending_act_is_refused(chain: Chain) -> None:
    anchor_many(chain, "metropole", "A-1")
    assert chain.rejection(chain.key("metropole"), "amend", **LINK).code == "unknown_act"


def test_acts_link_only_within_one_issuer(chain: Chain) -> None:
    anchor_many(chain, "metropole", "A-1")
    anchor_many(chain, "commune-a", "A-2")
    assert chain.rejection(chain.key("metropole"), "amend", **LINK).code == "unknown_act"


def test_the_same_amendment_is_recorded_once(chain: Chain) -> None:
    anchor_many(chain, "metropole", "A-1", "A-2")
    chain.accept(chain.key("metropole"), "amend", **LINK)
    assert chain.rejection(chain.key("metropole"), "amend", **LINK).code == "duplicate_link"


def test_an_act_takes_at_most_64_amendments(chain: Chain) -> None:
    amenders = [f"M-{index}" for index in range(LINKS_PER_LIST_MAX + 1)]
    anchor_many(chain, "metropole", "A-1", *amenders)
    key = chain.key("metropole")
    result = chain.block(
        *(
            chain.transaction(key, "amend", issuer="metropole", reference="A-1", by_reference=m)
            for m in amenders
        )
    )
    assert len(result.accepted) == LINKS_PER_LIST_MAX
    [(_, rejection)] = result.rejected
    assert rejection.code == "link_limit"
    assert len(chain.query("history/metropole/A-1")) == 1 + LINKS_PER_LIST_MAX


@pytest.mark.parametrize(("change", "links"), [("amend", "amends"), ("supersede", "supersedes")])
def test_an_act_amends_or_supersedes_at_most_64_acts(chain: Chain, change: str, links: str) -> None:
    targets = [f"T-{index}" for index in range(LINKS_PER_LIST_MAX + 1)]
    anchor_many(chain, "metropole", "NEW", *targets)
    key = chain.key("metropole")
    result = chain.block(
        *(
            chain.transaction(key, change, issuer="metropole", reference=t, by_reference="NEW")
            for t in targets
        )
    )
    assert [rejection.code for _, rejection in result.rejected] == ["link_limit"]
    assert chain.query("act/metropole/NEW")[links] == targets[:LINKS_PER_LIST_MAX]


def test_the_largest_act_record_fits_in_one_state_value() -> None:
    longest = "R" * 64
    largest = Act(
        issuer="m" * 48,
        reference=longest,
        kind="deliberation",
        digest=bytes(32),
        act_date="2026-01-01",
        title="\U0001f4dc" * 200,  # 4 bytes each in UTF-8
        legal_basis="\U0001f4dc" * 200,
        url="https://" + "u" * 492,
        person_commitment=bytes(32),
        status="amended",
        anchored_height=2**63 - 1,
        anchored_timestamp_ms=2**63 - 1,
        status_height=2**63 - 1,
        amended_by=(longest,) * LINKS_PER_LIST_MAX,
        amends=(longest,) * LINKS_PER_LIST_MAX,
        superseded_by=longest,
        supersedes=(longest,) * LINKS_PER_LIST_MAX,
        history_length=66,
    )
    assert len(encode_record(largest.to_record())) < STATE_VALUE_BYTES_MAX // 4


def test_status_changes_need_the_status_role_of_the_issuer(chain: Chain) -> None:
    anchor_many(chain, "metropole", "A-1")
    clerk = outside_key("clerk")
    chain.delegate(clerk, "metropole", ["deeds.status"])
    assert chain.rejection(chain.key("commune-a"), "withdraw", **STATUS_CHANGE).code == (
        "wrong_signer"
    )
    assert chain.accept(clerk, "withdraw", **STATUS_CHANGE)["status"] == "withdrawn"


def test_the_history_records_every_change_in_order(chain: Chain) -> None:
    anchor_many(chain, "metropole", "A-1", "A-2", "A-3")
    key = chain.key("metropole")
    amend = chain.transaction(key, "amend", **LINK)
    chain.block(amend, height_gap=4)
    supersede = chain.transaction(
        key, "supersede", issuer="metropole", reference="A-1", by_reference="A-3"
    )
    chain.block(supersede)

    history = chain.query("history/metropole/A-1")
    assert [(entry["sequence"], entry["height"]) for entry in history] == [(0, 1), (1, 5), (2, 6)]
    assert [entry["action"] for entry in history] == ["anchor", "amend", "supersede"]
    assert [entry["status"] for entry in history] == ["in_force", "amended", "superseded"]
    assert [entry["by_reference"] for entry in history] == [None, "A-2", "A-3"]
    assert history[1]["tx_id"] == amend.tx_id and history[2]["tx_id"] == supersede.tx_id
    assert history[2]["timestamp_ms"] == chain.timestamp_ms(6)
    assert {entry["signer"] for entry in history} == {public(key)}
    assert chain.query("act/metropole/A-1")["history_length"] == 3
    # The amending act's history records only its own changes.
    assert [entry["action"] for entry in chain.query("history/metropole/A-2")] == ["anchor"]


# --- queries ----------------------------------------------------------------------------------


def test_references_with_slashes_are_queried_by_splitting_on_the_first_two(chain: Chain) -> None:
    anchor_many(chain, "metropole", "2026/DEL/042", "2026/DEL")
    assert chain.query("act/metropole/2026/DEL/042")["reference"] == "2026/DEL/042"
    assert chain.query("act/metropole/2026/DEL")["reference"] == "2026/DEL"
    assert len(chain.query("history/metropole/2026/DEL/042")) == 1
    with pytest.raises(LookupError):
        chain.query("act/metropole/2026")


def test_the_digest_query_answers_the_citizens_question(chain: Chain) -> None:
    shared = digest_of("convention de mutualisation")
    chain.accept(
        chain.key("metropole"),
        "anchor",
        **anchor_arguments("metropole", "CONV/7", kind="contract", digest=shared),
    )
    chain.accept(
        chain.key("commune-b"),
        "anchor",
        **anchor_arguments("commune-b", "2026-12", kind="contract", digest=shared),
    )
    chain.accept(
        chain.key("metropole"),
        "withdraw",
        issuer="metropole",
        reference="CONV/7",
        reason="Erreur de transmission",
    )

    assert chain.query(f"digest/{shared.hex()}") == [
        {
            "issuer": "commune-b",
            "reference": "2026-12",
            "kind": "contract",
            "status": "in_force",
            "act_date": "2026-03-12",
            "anchored_height": 2,
        },
        {
            "issuer": "metropole",
            "reference": "CONV/7",
            "kind": "contract",
            "status": "withdrawn",
            "act_date": "2026-03-12",
            "anchored_height": 1,
        },
    ]
    with pytest.raises(LookupError):
        chain.query(f"digest/{digest_of('unknown').hex()}")


def test_acts_are_listed_by_date_then_reference_within_a_range(chain: Chain) -> None:
    dated = [
        ("B", "2025-12-31"),
        ("A", "2026-01-15"),
        ("C/1", "2026-01-15"),
        ("D", "2026-02-01"),
        ("E", "2026-10-01"),
        ("F", "2027-01-01"),
    ]
    key = chain.key("metropole")
    chain.block(
        *(
            chain.transaction(key, "anchor", **anchor_arguments(reference=r, act_date=d))
            for r, d in dated
        )
    )
    anchor_many(chain, "commune-a", "A")

    def listed(path: str) -> list[tuple[str, str]]:
        return [(act["reference"], act["act_date"]) for act in chain.query(path)]

    assert listed("acts/metropole") == dated
    assert listed("acts/metropole?from=2026-01-15&to=2026-02-01") == dated[1:4]
    assert listed("acts/metropole?from=2026-01-16") == dated[3:]
    assert listed("acts/metropole?to=2026-01-15") == dated[:3]
    assert listed("acts/metropole?from=2026-01-01&to=2026-12-31") == dated[1:5]
    assert listed("acts/metropole?limit=2&from=2026-01-01") == dated[1:3]
    assert listed("acts/metropole?from=2024-01-01&to=2024-12-31") == []
    assert listed("acts/syndicat-eau") == []
    assert chain.query("acts/metropole?limit=1")[0]["title"] == anchor_arguments()["title"]


def test_the_default_list_limit_is_100(chain: Chain) -> None:
    anchor_many(chain, "metropole", *(f"A-{index:03}" for index in range(101)))
    assert len(chain.query("acts/metropole")) == 100
    assert len(chain.query("acts/metropole?limit=1000")) == 101


@pytest.mark.parametrize(
    "path",
    [
        "",
        "act",
        "acts",
        "acts/metropole?limit=0",
        "acts/metropole?limit=1001",
        "acts/metropole?limit=ten",
        "acts/metropole?from=2026-13-01",
        "acts/metropole?from=2026-02-01&to=2026-01-01",
        "acts/metropole?from=2026-01-01&from=2026-01-02",
        "acts/metropole?since=2026-01-01",
        "acts/Metropole",
        "act/metropole",
        "act/metropole/",
        "act/metropole/-x",
        "history/metropole",
        "digest/abc",
        "digest/" + "AB" * 32,
        "deeds/metropole/A-1",
        "x" * 2000,
    ],
)
def test_a_malformed_query_path_is_a_value_error(chain: Chain, path: str) -> None:
    with pytest.raises(ValueError):
        chain.query(path)


@pytest.mark.parametrize("path", ["act/metropole/A-1", "history/metropole/A-1"])
def test_a_query_for_an_act_that_does_not_exist_is_a_lookup_error(chain: Chain, path: str) -> None:
    with pytest.raises(LookupError):
        chain.query(path)


# --- determinism ------------------------------------------------------------------------------


def test_two_independent_states_reach_byte_identical_roots() -> None:
    first, second = Chain(), Chain()
    script = Chain()  # builds the transactions once, so both replay the very same bytes
    blocks = [
        [
            script.transaction(script.key("metropole"), "anchor", **anchor_arguments()),
            script.transaction(
                script.key("commune-a"), "anchor", **anchor_arguments("commune-a", "X/1")
            ),
        ],
        [
            script.transaction(
                script.key("metropole"), "anchor", **anchor_arguments(reference="2026-DEL-002")
            ),
            script.transaction(script.key("commune-b"), "anchor", **anchor_arguments()),
        ],
        [
            script.transaction(
                script.key("metropole"),
                "amend",
                issuer="metropole",
                reference="2026-DEL-001",
                by_reference="2026-DEL-002",
            ),
            script.transaction(
                script.key("commune-a"), "annul", issuer="commune-a", reference="X/1", reason="TA"
            ),
        ],
    ]
    for transactions in blocks:
        results = [first.block(*transactions), second.block(*transactions)]
        assert results[0].state_writes == results[1].state_writes
        assert results[0].state_root == results[1].state_root
    assert first.state.state_root == second.state.state_root
    assert first.state.state_root != Chain().state.state_root


def test_a_rejected_transaction_changes_nothing(chain: Chain) -> None:
    anchor_many(chain, "metropole", "A-1")
    key = chain.key("metropole")
    before = chain.transaction(key, "anchor", **anchor_arguments(reference="A-2"))
    refused = chain.transaction(key, "amend", issuer="metropole", reference="A-1", by_reference="Z")
    after = chain.transaction(key, "withdraw", issuer="metropole", reference="A-1", reason="R")

    def execute(*transactions: Transaction) -> ExecutionResult:
        return chain.engine.execute(
            chain.state, transactions, height=2, timestamp_ms=chain.timestamp_ms(2), proposer="x"
        )

    with_refused, without = execute(before, refused, after), execute(before, after)
    assert [rejection.code for _, rejection in with_refused.rejected] == ["unknown_act"]
    assert with_refused.accepted == without.accepted == (before, after)
    assert with_refused.state_writes == without.state_writes
    assert with_refused.state_root == without.state_root
    assert execute(refused).state_root == chain.state.state_root


# --- personal data ----------------------------------------------------------------------------


def test_person_commitment_known_answer() -> None:
    salt = bytes.fromhex("000102030405060708090a0b0c0d0e0f10")
    value = "Dossier n° 2026-00042"
    by_hand = hashlib.sha256(
        b"sceau/deeds/person/v1" + bytes([17]) + salt + value.encode("utf-8")
    ).digest()
    assert person_commitment(salt, value) == by_hand
    assert verify_person_commitment(by_hand, salt, value)
    assert not verify_person_commitment(by_hand, salt, value + " ")
    assert not verify_person_commitment(by_hand, bytes(17), value)


@pytest.mark.parametrize("salt", [bytes(15), bytes(256), "0" * 16])
def test_person_commitment_needs_a_salt_of_16_to_255_bytes(salt: Any) -> None:
    with pytest.raises(ValueError):
        person_commitment(salt, "Dossier 1")


# --- a model of the rules, played against the engine ------------------------------------------

MODEL_ISSUERS = ("metropole", "commune-a", "ghost-town")
MODEL_REFERENCES = ("A", "2026/DEL/1", "2026/DEL", "2026/DEL/1/a", "B.2", "C")
MODEL_DIGESTS = tuple(digest_of(f"document {index}") for index in range(8))
MODEL_DATES = ("2025-12-31", "2026-01-01", "2026-06-30")
ALL_ROLES = None
"""A member's own key: every role of its member."""


@dataclass(frozen=True)
class ModelSigner:
    key: crypto.PrivateKey
    grants: dict[str, tuple[frozenset[str] | None, int | None]]
    """member id -> (roles, or ALL_ROLES; expiry height or None)."""


MODEL_SIGNERS = {
    "metropole": ModelSigner(CONSORTIUM.keys["metropole"], {"metropole": (ALL_ROLES, None)}),
    "commune-a": ModelSigner(CONSORTIUM.keys["commune-a"], {"commune-a": (ALL_ROLES, None)}),
    "records office": ModelSigner(
        outside_key("records office"), {"metropole": (frozenset({"deeds.issue"}), None)}
    ),
    "interim": ModelSigner(
        outside_key("interim"),
        {
            "metropole": (frozenset({"deeds.issue", "deeds.status"}), 3),
            "commune-a": (frozenset({"deeds.status"}), None),
        },
    ),
    "stranger": ModelSigner(outside_key("stranger"), {}),
}


@dataclass
class ModelAct:
    record: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)


class DeedsModel:
    """The rules of the deeds contract, written as plainly as possible."""

    def __init__(self) -> None:
        self.acts: dict[tuple[str, str], ModelAct] = {}
        self.height = 0
        """The height of the block being applied."""

    def decide(self, signer: ModelSigner, action: str, arguments: dict[str, Any]) -> str | None:
        """The rejection code for this transaction, or None if it is accepted."""
        if arguments["reference"] not in MODEL_REFERENCES:
            return "invalid_arguments"
        issuer, reference = arguments["issuer"], arguments["reference"]
        role = "deeds.issue" if action == "anchor" else "deeds.status"
        refused = self.authorization(signer, issuer, role)
        if refused:
            return refused
        act = self.acts.get((issuer, reference))
        if action == "anchor":
            if act is not None:
                return "duplicate_reference"
            if any(
                key[0] == issuer and model.record["digest"] == arguments["digest"]
                for key, model in self.acts.items()
            ):
                return "duplicate_digest"
            return None
        if act is None:
            return "unknown_act"
        if act.record["status"] not in ("in_force", "amended"):
            return "invalid_transition"
        if action in ("amend", "supersede"):
            by_reference = arguments["by_reference"]
            if by_reference == reference:
                return "invalid_transition"
            other = self.acts.get((issuer, by_reference))
            if other is None:
                return "unknown_act"
            if other.record["status"] not in ("in_force", "amended"):
                return "invalid_transition"
            if action == "amend" and by_reference in act.record["amended_by"]:
                return "duplicate_link"
        return None

    def authorization(self, signer: ModelSigner, issuer: str, role: str) -> str | None:
        if issuer not in CONSORTIUM.keys:
            return "not_a_member"
        if issuer not in signer.grants:
            return "wrong_signer"
        roles, expiry_height = signer.grants[issuer]
        if expiry_height is not None and self.height > expiry_height:
            return "expired_delegation"
        if roles is not ALL_ROLES and role not in roles:
            return "unauthorized_role"
        return None

    def apply(self, transaction: Transaction, timestamp_ms: int) -> None:
        arguments, action = transaction.args, transaction.action
        issuer, reference = arguments["issuer"], arguments["reference"]
        if action == "anchor":
            self.acts[issuer, reference] = ModelAct(
                {
                    "issuer": issuer,
                    "reference": reference,
                    "kind": arguments["kind"],
                    "digest": arguments["digest"],
                    "act_date": arguments["act_date"],
                    "title": arguments["title"],
                    "legal_basis": None,
                    "url": None,
                    "person_commitment": None,
                    "status": "in_force",
                    "anchored_height": self.height,
                    "anchored_timestamp_ms": timestamp_ms,
                    "status_height": self.height,
                    "amended_by": [],
                    "amends": [],
                    "superseded_by": None,
                    "supersedes": [],
                    "history_length": 0,
                }
            )
        act = self.acts[issuer, reference]
        by_reference = arguments.get("by_reference")
        if action == "amend":
            act.record["status"] = "amended"
            act.record["amended_by"].append(by_reference)
            self.acts[issuer, by_reference].record["amends"].append(reference)
        elif action == "supersede":
            act.record["status"] = "superseded"
            act.record["superseded_by"] = by_reference
            self.acts[issuer, by_reference].record["supersedes"].append(reference)
        elif action in ("withdraw", "annul"):
            act.record["status"] = {"withdraw": "withdrawn", "annul": "annulled"}[action]
        act.record["status_height"] = self.height
        act.history.append(
            {
                "sequence": len(act.history),
                "height": self.height,
                "timestamp_ms": timestamp_ms,
                "action": action,
                "status": act.record["status"],
                "tx_id": transaction.tx_id,
                "signer": transaction.signer,
                "by_reference": by_reference,
                "reason": arguments.get("reason"),
                "decision_reference": arguments.get("decision_reference"),
            }
        )
        act.record["history_length"] = len(act.history)


MODEL_SIGNER_CHOICES = ("metropole", "metropole", "commune-a", "commune-a", *sorted(MODEL_SIGNERS))
"""Member keys come up more often: most transactions in a consortium are well signed."""


def one_in(draw: st.DrawFn, chances: int) -> bool:
    """True about once in ``chances`` draws.

    Hypothesis favours the ends of a range (and shrinks towards its start), so the rare outcome
    sits in the middle, where it is drawn about as often as any other value.
    """
    return draw(st.integers(0, chances - 1)) == chances // 2


@st.composite
def model_transactions(
    draw: st.DrawFn, anchored: dict[str, list[str]]
) -> tuple[str, str, dict[str, Any]]:
    """(signer name, action, arguments): mostly for an issuer the signer holds something of
    and acts that exist (``anchored``: references by issuer), sometimes anything, rarely
    malformed."""
    signer = draw(st.sampled_from(MODEL_SIGNER_CHOICES))
    granted = sorted(MODEL_SIGNERS[signer].grants)
    issuer_pool = granted if granted and not one_in(draw, 5) else list(MODEL_ISSUERS)
    issuer = draw(st.sampled_from(issuer_pool))

    existing = anchored.get(issuer, [])

    def reference(usual: list[str]) -> str:
        """Usually one of ``usual``, sometimes any reference of the pool."""
        pool = usual if usual and not one_in(draw, 5) else list(MODEL_REFERENCES)
        return draw(st.sampled_from(pool))

    action = draw(st.sampled_from(["anchor", "anchor", "amend", "supersede", "withdraw", "annul"]))
    if action == "anchor":
        fresh = [name for name in MODEL_REFERENCES if name not in existing]
        arguments: dict[str, Any] = {"issuer": issuer, "reference": reference(fresh)}
    else:
        arguments = {"issuer": issuer, "reference": reference(existing)}
    if one_in(draw, 20):
        arguments["reference"] = "-bad"
    if action == "anchor":
        arguments["kind"] = draw(st.sampled_from(["decree", "permit"]))
        arguments["digest"] = draw(st.sampled_from(MODEL_DIGESTS))
        arguments["act_date"] = draw(st.sampled_from(MODEL_DATES))
        arguments["title"] = "Arrêté de voirie"
    elif action in ("amend", "supersede"):
        others = [name for name in existing if name != arguments["reference"]]
        arguments["by_reference"] = reference(others)
    else:
        arguments["reason"] = "Motif"
        if draw(st.booleans()):
            arguments["decision_reference"] = "CAA Lyon 26LY00042"
    return signer, action, arguments


class DeedsMachine(RuleBasedStateMachine):
    """Random blocks of random signers' transactions; engine and model must agree."""

    def __init__(self) -> None:
        super().__init__()
        self.chain = Chain()
        for name in sorted(MODEL_SIGNERS):
            signer = MODEL_SIGNERS[name]
            for member_id, (roles, expiry_height) in sorted(signer.grants.items()):
                if roles is not ALL_ROLES:
                    self.chain.delegate(signer.key, member_id, sorted(roles), expiry_height)
        self.model = DeedsModel()

    @rule(data=st.data(), size=st.integers(1, 4), height_gap=st.integers(1, 2))
    def execute_a_block(self, data: st.DataObject, size: int, height_gap: int) -> None:
        anchored: dict[str, list[str]] = {}
        for issuer, reference in sorted(self.model.acts):
            anchored.setdefault(issuer, []).append(reference)
        drawn = [data.draw(model_transactions(anchored)) for _ in range(size)]
        transactions = [
            self.chain.transaction(MODEL_SIGNERS[signer].key, action, **arguments)
            for signer, action, arguments in drawn
        ]
        result = self.chain.block(*transactions, height_gap=height_gap)
        self.model.height = self.chain.height
        timestamp_ms = self.chain.timestamp_ms(self.chain.height)
        expected: dict[bytes, str | None] = {}
        for (signer, action, arguments), transaction in zip(drawn, transactions, strict=True):
            code = self.model.decide(MODEL_SIGNERS[signer], action, arguments)
            expected[transaction.tx_id] = code
            if code is None:
                self.model.apply(transaction, timestamp_ms)
        actual = {transaction.tx_id: None for transaction in result.accepted}
        actual.update(
            {transaction.tx_id: rejection.code for transaction, rejection in result.rejected}
        )
        assert actual == expected

    @rule(
        issuer=st.sampled_from(MODEL_ISSUERS[:2]),
        since=st.none() | st.sampled_from(MODEL_DATES),
        until=st.none() | st.sampled_from(MODEL_DATES),
        limit=st.none() | st.integers(1, 3),
    )
    def list_acts(self, issuer: str, since: str | None, until: str | None, limit: int | None):
        parameters = [
            f"{name}={value}"
            for name, value in (("from", since), ("to", until), ("limit", limit))
            if value is not None
        ]
        path = f"acts/{issuer}?" + "&".join(parameters) if parameters else f"acts/{issuer}"
        if since is not None and until is not None and since > until:
            with pytest.raises(ValueError):
                self.chain.query(path)
            return
        expected = sorted(
            (
                model.record
                for (act_issuer, _), model in self.model.acts.items()
                if act_issuer == issuer
                and (since is None or model.record["act_date"] >= since)
                and (until is None or model.record["act_date"] <= until)
            ),
            key=lambda record: (record["act_date"], record["reference"]),
        )[: limit or 100]
        assert self.chain.query(path) == expected

    @invariant()
    def acts_and_histories_match_the_model(self) -> None:
        for issuer in MODEL_ISSUERS[:2]:
            for reference in MODEL_REFERENCES:
                model = self.model.acts.get((issuer, reference))
                if model is None:
                    with pytest.raises(LookupError):
                        self.chain.query(f"act/{issuer}/{reference}")
                    continue
                assert self.chain.query(f"act/{issuer}/{reference}") == model.record
                assert self.chain.query(f"history/{issuer}/{reference}") == model.history

    @invariant()
    def digest_queries_match_the_model(self) -> None:
        for digest in MODEL_DIGESTS:
            expected = sorted(
                (
                    {
                        name: model.record[name]
                        for name in (
                            "issuer",
                            "reference",
                            "kind",
                            "status",
                            "act_date",
                            "anchored_height",
                        )
                    }
                    for model in self.model.acts.values()
                    if model.record["digest"] == digest
                ),
                key=lambda entry: entry["issuer"],
            )
            if expected:
                assert self.chain.query(f"digest/{digest.hex()}") == expected
            else:
                with pytest.raises(LookupError):
                    self.chain.query(f"digest/{digest.hex()}")


TestDeedsMachine = DeedsMachine.TestCase
TestDeedsMachine.settings = settings(max_examples=40, stateful_step_count=20, deadline=None)


# --- the state layout the contract declares ---------------------------------------------------

ISSUER_IDS = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?", fullmatch=True)
REFERENCES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,63}", fullmatch=True)


@given(issuer=ISSUER_IDS, reference=REFERENCES)
def test_an_act_state_key_names_its_issuer_and_reference(issuer: str, reference: str) -> None:
    key = DEEDS_KEYS.act(issuer, reference)
    assert key.startswith(b"deeds/act/")  # docs/format.md §7.9
    assert DEEDS_KEYS.act_of(key) == (issuer, reference)


def test_the_receipt_anchor_proves_the_record_the_anchor_writes() -> None:
    arguments = {"issuer": "ville-valbrune", "reference": "DEL-2026-001"}
    assert (RECEIPT_ANCHOR.contract, RECEIPT_ANCHOR.action) == ("deeds", "anchor")
    assert (
        RECEIPT_ANCHOR.record_key(arguments)
        == b"deeds/act/"
        + bytes([0xA0 + len("ville-valbrune")])
        + b"ville-valbrune"
        + b"DEL-2026-001"
    )
