"""Deeds 1.1's deliberation data, membership 1.3's member SIRET, and what stays as it was.

Each new ``anchor`` argument is accepted when valid and refused, naming it, when not; deeds 1.0
refuses them all as unexpected, as it always did; an act without them has the same record
bytes, hence the same state root, under 1.0 and 1.1. Membership 1.3 sets and clears a member's
SIRET by vote, 1.2 refuses it; a member without a SIRET has the bytes it always had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_deeds import Chain as DeedsChain
from test_deeds import anchor_arguments
from test_membership import ACCEPTED, FOUR, admit
from test_membership import Chain as MembershipChain

from contracts.base import Rejection, decode_record
from contracts.deeds import DEEDS_KEYS, DeedsContract, check_arguments
from contracts.engine import Engine
from ledger import encoding
from ledger.devchain import LocalConsortium
from ledger.memstate import MemoryState
from ledger.model import ContractRef, Member, ModelDecodeError, members_hash
from node.tools.cli import main

VOTES = {"entitled": 45, "cast": 41, "for": 30, "against": 8, "abstention": 3}
FULL = {
    "subject_code": "7.10",
    "subject_name": "finances locales/divers",
    "votes": VOTES,
    "budget_year": "2026/2027",
    "budget_name": "budget annexe de l'eau",
    "control_entity": "SPREF02A1",
    "control_date": "2026-03-20",
}


def refusal(**more: Any) -> str:
    """The reason deeds 1.1 gives for refusing an anchoring with ``more``."""
    with pytest.raises(Rejection) as caught:
        check_arguments("anchor", anchor_arguments(**more))
    assert caught.value.code == "invalid_arguments"
    return caught.value.reason


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("subject_code", "1.1"),
        ("subject_code", "7.10"),
        ("subject_code", "9.4"),
        ("subject_name", "commande publique/marchés publics"),
        ("votes", {"entitled": 0, "cast": 0, "for": 0, "against": 0, "abstention": 0}),
        ("votes", {"entitled": 100_000, "cast": 100_000, "for": 100_000, "against": 0}),
        ("budget_name", "budget principal"),
        ("budget_year", "2026"),
        ("budget_year", "2026/2027"),
        ("control_entity", "PREF075"),
        ("control_entity", "PREF02B"),
        ("control_entity", "SPREF0131"),
        ("control_entity", "SGAR069"),
        ("control_date", "2028-02-29"),
    ],
)
def test_each_deliberation_argument_is_accepted_when_valid(name: str, value: Any) -> None:
    if name == "votes":
        value = {"abstention": 0, **value}
    extra = {"budget_year": "2026"} if name == "budget_name" else {}
    extra |= {"control_entity": "PREF069"} if name == "control_date" else {}
    check_arguments("anchor", anchor_arguments(**{name: value}, **extra))


@pytest.mark.parametrize(
    ("more", "expected"),
    [
        ({"subject_code": "7.11"}, "subject_code: expected an ACTES subject code"),
        ({"subject_code": "10.1"}, "subject_code: expected an ACTES subject code"),
        ({"subject_code": "1.0"}, "subject_code: expected an ACTES subject code"),
        ({"subject_code": " 7.5"}, "subject_code: expected an ACTES subject code"),
        ({"subject_code": 7.5}, "subject_code: expected a string"),
        ({"subject_name": ""}, "subject_name: expected 1 to 256 characters"),
        ({"subject_name": "x" * 257}, "subject_name: expected 1 to 256 characters"),
        ({"subject_name": "a\nb"}, "subject_name: control characters are not allowed"),
        ({"votes": [45, 41, 30, 8, 3]}, "votes: expected a map of exactly entitled, cast"),
        ({"votes": {**VOTES, "blank": 1}}, "votes: expected a map of exactly"),
        ({"votes": {"entitled": 45, "cast": 41, "for": 30, "against": 8}}, "votes: expected a"),
        ({"votes": {**VOTES, "for": -1}}, "votes: for: expected an integer from 0 to 100000"),
        ({"votes": {**VOTES, "for": True}}, "votes: for: expected an integer"),
        ({"votes": {**VOTES, "entitled": 100_001}}, "votes: entitled: expected an integer"),
        ({"votes": {**VOTES, "cast": 46}}, "votes: cast (46) exceeds entitled (45)"),
        ({"votes": {**VOTES, "for": 34}}, "votes: for + against (42) exceeds cast (41)"),
        ({"votes": {**VOTES, "abstention": 8}}, "votes: for + against + abstention exceeds"),
        ({"budget_year": "26"}, "budget_year: expected a year YYYY, or two years YYYY/YYYY"),
        ({"budget_year": "2026/2028"}, "budget_year: the second year follows the first"),
        ({"budget_year": "2026-2027"}, "budget_year: expected a year"),
        ({"budget_year": "2026", "budget_name": ""}, "budget_name: expected 1 to 256"),
        ({"budget_name": "budget principal"}, "budget_name: given without budget_year"),
        ({"control_entity": "PREF75"}, "control_entity: expected PREFNNN"),
        ({"control_entity": "PREF02C"}, "control_entity: expected PREFNNN"),
        ({"control_entity": "SPREF075"}, "control_entity: expected PREFNNN"),
        ({"control_entity": "pref075"}, "control_entity: expected PREFNNN"),
        ({"control_entity": "PREF069", "control_date": "2026-02-30"}, "control_date: expected a"),
        ({"control_date": "2026-03-20"}, "control_date: given without control_entity"),
        ({"kind": "decree", "subject_code": "7.5"}, "subject_code: only a deliberation carries"),
        ({"kind": "permit", "votes": VOTES}, "votes: only a deliberation carries it"),
    ],
)
def test_each_deliberation_argument_is_refused_naming_it(
    more: dict[str, Any], expected: str
) -> None:
    assert refusal(**more).startswith(expected), refusal(**more)


class Deeds10Chain(DeedsChain):
    """The deeds test chain with a contract pinned to 1.0."""

    def __init__(self) -> None:
        super().__init__()
        self.engine = Engine(self.consortium.genesis, {"deeds": DeedsContract.at_version("1.0")})


def test_deeds_1_0_refuses_every_deliberation_argument_as_unexpected() -> None:
    chain = Deeds10Chain()
    key = chain.key("metropole")
    for name, value in FULL.items():
        rejection = chain.rejection(key, "anchor", **anchor_arguments(**{name: value}))
        assert (rejection.code, rejection.reason) == (
            "invalid_arguments",
            f"{name}: unexpected argument",
        )
    with pytest.raises(ValueError, match=r"does not run version 1\.2"):
        DeedsContract.at_version("1.2")
    assert DeedsContract.older_versions == ("1.0",) and DeedsContract.version == "1.1"


def test_an_act_without_the_new_data_has_1_0s_record_bytes_and_state_root() -> None:
    chains = [DeedsChain(), Deeds10Chain()]
    for chain in chains:
        key = chain.key("metropole")
        chain.accept(key, "anchor", **anchor_arguments())
        chain.accept(key, "anchor", **anchor_arguments(reference="2026-DEL-002", kind="decree"))
        chain.accept(key, "amend", issuer="metropole", reference="2026-DEL-001",
                     by_reference="2026-DEL-002")  # fmt: skip
    newer, older = chains
    assert newer.state.state_root == older.state.state_root
    key = DEEDS_KEYS.act("metropole", "2026-DEL-001")
    assert newer.state.state_get(key) == older.state.state_get(key)
    assert "subject_code" not in decode_record(newer.state.state_get(key))


def test_the_data_is_stored_on_the_act_and_answered_with_it() -> None:
    chain = DeedsChain()
    chain.accept(chain.key("metropole"), "anchor", **anchor_arguments(**FULL))
    act = chain.engine.query(chain.state, "deeds", "act/metropole/2026-DEL-001")
    assert {name: act[name] for name in FULL} == FULL
    partial = anchor_arguments(reference="2026-DEL-002", subject_code="2.1")
    chain.accept(chain.key("metropole"), "anchor", **partial)
    act = chain.engine.query(chain.state, "deeds", "act/metropole/2026-DEL-002")
    assert act["subject_code"] == "2.1" and "votes" not in act and "subject_name" not in act


# --- membership 1.3: a member's SIRET -----------------------------------------------------------

SIRET = "20004697700019"


def pinned_membership(version: str) -> MembershipChain:
    """The membership test chain whose genesis pins ``version``."""
    chain = MembershipChain()
    chain.consortium = LocalConsortium.create(
        [(member_id, f"Collectivité {member_id}") for member_id in FOUR],
        seed=b"test-membership",
        contracts=(ContractRef(name="membership", version=version),),
    )
    chain.engine = Engine(chain.consortium.genesis, {})
    chain.state = MemoryState()
    chain.state.commit(chain.engine.genesis_state())
    return chain


def pass_change(chain: MembershipChain, change: dict[str, Any]) -> None:
    proposal_id = chain.propose("metropole", change)
    assert chain.vote("commune-a", proposal_id) == ACCEPTED
    assert chain.vote("commune-b", proposal_id) == ACCEPTED
    assert chain.status(proposal_id) == "passed"


def test_membership_1_3_sets_and_clears_a_members_siret_by_vote() -> None:
    chain = pinned_membership("1.3")
    original = members_hash(chain.members())
    pass_change(chain, {"kind": "set_member_siret", "member_id": "commune-a", "siret": SIRET})
    member = next(member for member in chain.members() if member.id == "commune-a")
    assert member.siret == SIRET and members_hash(chain.members()) != original
    assert chain.query("members")[1]["siret"] == SIRET
    pass_change(chain, {"kind": "set_member_siret", "member_id": "commune-a", "siret": None})
    assert members_hash(chain.members()) == original  # no siret: the bytes it always had
    outcome = chain.run(
        chain.propose_tx(
            "metropole", {"kind": "set_member_siret", "member_id": "nobody", "siret": SIRET}
        )
    )
    assert outcome == "unknown_member"


def test_membership_1_3_admits_a_member_with_its_siret() -> None:
    chain = pinned_membership("1.3")
    change = admit("commune-d")
    change["member"] = {**change["member"], "siret": SIRET}
    pass_change(chain, change)
    assert chain.members()[-1].siret == SIRET


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"kind": "set_member_siret", "member_id": "commune-a", "siret": "123"}, "change.siret"),
        ({"kind": "set_member_siret", "member_id": "commune-a"}, "change.siret: missing"),
        ({"kind": "set_member_siret", "member_id": "Commune A", "siret": None}, "change.member_"),
    ],
)
def test_membership_1_3_refuses_a_bad_siret_change(change: dict[str, Any], expected: str) -> None:
    chain = pinned_membership("1.3")
    result = chain.execute(chain.propose_tx("metropole", change))
    [(_, rejection)] = result.rejected
    assert rejection.code == "invalid_arguments" and rejection.reason.startswith(expected)


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_earlier_membership_versions_refuse_a_siret(version: str) -> None:
    chain = pinned_membership(version)
    change = admit("commune-d")
    change["member"] = {**change["member"], "siret": SIRET}
    [(_, rejection)] = chain.execute(chain.propose_tx("metropole", change)).rejected
    assert rejection.reason == "change.member.siret: unexpected argument"
    setting = {"kind": "set_member_siret", "member_id": "commune-a", "siret": SIRET}
    [(_, rejection)] = chain.execute(chain.propose_tx("metropole", setting)).rejected
    assert rejection.reason.startswith("change.kind: expected one of")
    assert chain.run(chain.propose_tx("metropole", admit("commune-d"))) == ACCEPTED


# --- Member's canonical bytes ---------------------------------------------------------------------


def test_a_member_without_a_siret_has_no_siret_field_and_a_nil_one_is_refused() -> None:
    chain = pinned_membership("1.3")
    member = chain.members()[0]
    assert member.siret is None and "siret" not in member.to_canonical()
    assert "siret" not in member.model_dump_json()
    before = {key: value for key, value in member.to_canonical().items()}
    assert member.to_bytes() == encoding.pack(before)  # exactly the four fields of old
    with_siret = Member.from_canonical({**before, "siret": SIRET})
    assert with_siret.to_canonical() == {**before, "siret": SIRET}
    assert Member.from_bytes(with_siret.to_bytes()) == with_siret
    assert Member.model_validate_json(with_siret.model_dump_json()) == with_siret
    with pytest.raises(ModelDecodeError, match="nil siret is not canonical"):
        Member.from_canonical({**before, "siret": None})
    with pytest.raises(ModelDecodeError, match="siret"):
        Member.from_canonical({**before, "siret": "2000469770001"})


# --- the CLI checks them before anything is signed ---------------------------------------------


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--kind", "decree", "--subject-code", "7.5"], "--subject-code: only a deliberation"),
        (["--subject-code", "7.11"], "--subject-code: expected an ACTES subject code"),
        (["--votes", "entitled=45,cast=46,for=1,against=0,abstention=0"], "--votes: cast (46)"),
        (["--votes", "entitled=45,cast=41"], "--votes: missing for, against, abstention"),
        (["--votes", "entitled=45,cast=41,for=x,against=0,abstention=0"], "for: expected a"),
        (["--budget-year", "2026/2028"], "--budget-year: the second year follows the first"),
        (["--control-entity", "PREF75"], "--control-entity: expected PREFNNN"),
        (["--control-date", "2026-02-30"], "--control-date: not a valid date"),
    ],
)
def test_sceau_anchor_refuses_bad_deliberation_data_before_signing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], options: list[str], expected: str
) -> None:
    document = tmp_path / "deliberation.pdf"
    document.write_bytes(b"%PDF-1.7 deliberation")
    arguments = ["--issuer", "metropole", "--reference", "2026-DEL-001", "--date", "2026-03-12"]
    arguments += ["--title", "Objet", "--key", str(tmp_path / "no-such-key.pem")]
    if "--kind" not in options:
        arguments += ["--kind", "deliberation"]
    try:
        status = main(["anchor", str(document), *arguments, *options])
    except SystemExit as exit_:  # argparse refuses a value its type refuses
        status = exit_.code
    assert status == 2
    error = capsys.readouterr().err
    assert expected in error, error
    assert not (tmp_path / "deliberation.pdf.receipt.json").exists()


def test_the_client_and_the_command_line_name_the_deliberation_data_as_the_contract_does() -> None:
    """Three lists of one fact: the contract's (the rule), the client library's (ledger cannot
    import contracts) and the command line's (it starts without importing either)."""
    from contracts.deeds import DELIBERATION_FIELDS as contract_fields
    from ledger.client import DELIBERATION_FIELDS as client_fields
    from node.tools.cli import _DELIBERATION_OPTIONS as command_line_fields

    assert client_fields == contract_fields
    assert command_line_fields == contract_fields
