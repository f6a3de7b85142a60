"""Specification of the membership contract: the consortium's governance.

Everything runs through the real execution engine on a :class:`MemoryState`, one block at a
time, as a node would run it: the engine reads the member set, the parameters and the
delegations from the state committed before each block, so a change made at height h is in
force from h + 1. The default consortium has four members and the default threshold, 67 %:
ceil(4 × 67 / 100) = 3 yes votes pass a proposal.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from contracts.base import Rejection, encode_record
from contracts.engine import Engine, ExecutionResult, InvalidProposalError
from contracts.membership import (
    DELEGATIONS_PER_MEMBER_MAX,
    DELEGATIONS_PER_SIGNER_MAX,
    GOVERN,
    MEMBERSHIP,
    OPEN_PROPOSALS_MAX,
    VOTERS_PER_PROPOSAL_MAX,
    MembershipContract,
    proposal_key,
    required_votes,
)
from ledger import crypto, merkle
from ledger.devchain import LocalConsortium
from ledger.memstate import MemoryState
from ledger.model import (
    MEMBERS_MAX,
    Block,
    BlockHeader,
    ConsensusParameters,
    Genesis,
    Member,
    Transaction,
    members_hash,
    sha256,
)

FOUR = ("metropole", "commune-a", "commune-b", "commune-c")
ACCEPTED = "accepted"
TIMESTAMP_MS = 1_767_225_600_000
NAMESPACE = MEMBERSHIP.encode() + b"/"

Signer = str | Ed25519PrivateKey
"""A genesis member's id (its node key) or any key."""


def extra_key(label: str) -> Ed25519PrivateKey:
    """A deterministic key that is no genesis member's node key."""
    return Ed25519PrivateKey.from_private_bytes(sha256(b"test-membership/" + label.encode()))


def public(key: Ed25519PrivateKey) -> bytes:
    return crypto.public_key_bytes(key)


def admit(member_id: str, *, port: int = 9000) -> dict[str, Any]:
    """An admission of ``member_id``, whose node key is ``extra_key(member_id)``."""
    member = Member(
        id=member_id,
        name=f"Collectivité {member_id}",
        public_key=public(extra_key(member_id)),
        endpoint=f"10.0.0.1:{port}",
    )
    return {"kind": "admit", "member": member.to_canonical()}


def remove(member_id: str) -> dict[str, Any]:
    return {"kind": "remove", "member_id": member_id}


def set_parameters(**values: Any) -> dict[str, Any]:
    return {"kind": "set_parameters", "parameters": values}


def outcomes(result: ExecutionResult, transactions: Sequence[Transaction]) -> list[str]:
    """Each transaction's outcome, in order: ``accepted`` or its rejection code."""
    codes = {tx.tx_id: rejection.code for tx, rejection in result.rejected}
    assert len(result.accepted) + len(result.rejected) == len(transactions)
    return [codes.get(tx.tx_id, ACCEPTED) for tx in transactions]


class Chain:
    """A consortium's chain in memory, driven block by block through the engine."""

    def __init__(
        self, member_ids: Sequence[str] = FOUR, *, parameters: ConsensusParameters | None = None
    ) -> None:
        self.consortium = LocalConsortium.create(
            [(member_id, f"Collectivité {member_id}") for member_id in member_ids],
            seed=b"test-membership",
            parameters=parameters,
        )
        self.engine = Engine(self.consortium.genesis, {})
        self.state = MemoryState()
        self.state.commit(self.engine.genesis_state())
        self.height = 0
        self._nonces = itertools.count()

    # --- building transactions ---

    def tx(self, by: Signer, action: str, /, **args: Any) -> Transaction:
        key = self.consortium.keys[by] if isinstance(by, str) else by
        return Transaction.create(
            key,
            chain_id=self.consortium.chain_id,
            contract=MEMBERSHIP,
            action=action,
            args=args,
            nonce=next(self._nonces),
            expiry_height=10**9,
        )

    def propose_tx(
        self, proposer: str, change: dict[str, Any], by: Signer | None = None
    ) -> Transaction:
        return self.tx(by or proposer, "propose", proposer=proposer, change=change)

    def vote_tx(
        self, voter: str, proposal_id: bytes, approve: bool = True, by: Signer | None = None
    ) -> Transaction:
        return self.tx(by or voter, "vote", proposal_id=proposal_id, voter=voter, approve=approve)

    def delegate_tx(
        self,
        member_id: str,
        delegate: Ed25519PrivateKey | bytes,
        roles: Sequence[str] = (GOVERN,),
        expiry_height: int | None = None,
        by: Signer | None = None,
    ) -> Transaction:
        signer = delegate if isinstance(delegate, bytes) else public(delegate)
        return self.tx(
            by or member_id,
            "delegate",
            member_id=member_id,
            signer=signer,
            roles=list(roles),
            expiry_height=expiry_height,
        )

    def revoke_tx(
        self, member_id: str, delegate: Ed25519PrivateKey, by: Signer | None = None
    ) -> Transaction:
        return self.tx(by or member_id, "revoke", member_id=member_id, signer=public(delegate))

    def rotate_tx(self, member_id: str, new_key: bytes, by: Signer | None = None) -> Transaction:
        return self.tx(by or member_id, "rotate_key", member_id=member_id, new_public_key=new_key)

    def endpoint_tx(self, member_id: str, endpoint: str, by: Signer | None = None) -> Transaction:
        return self.tx(by or member_id, "set_endpoint", member_id=member_id, endpoint=endpoint)

    # --- running blocks ---

    def execute(self, *transactions: Transaction) -> ExecutionResult:
        """Execute the next block without committing it."""
        return self.engine.execute(
            self.state,
            transactions,
            height=self.height + 1,
            timestamp_ms=TIMESTAMP_MS + self.height,
            proposer=self.members()[0].id,
        )

    def commit(self, result: ExecutionResult) -> None:
        self.state.commit(result.state_writes, [tx.tx_id for tx in result.accepted])
        self.height += 1

    def block(self, *transactions: Transaction) -> list[str]:
        """Execute and commit a block; return each transaction's outcome in order."""
        result = self.execute(*transactions)
        self.commit(result)
        return outcomes(result, transactions)

    def run(self, transaction: Transaction) -> str:
        """A block of one transaction: its outcome."""
        return self.block(transaction)[0]

    def skip_blocks(self, count: int) -> None:
        for _ in range(count):
            self.block()

    def propose(self, proposer: str, change: dict[str, Any]) -> bytes:
        """Propose in a block of its own (it must be accepted); return the proposal id."""
        transaction = self.propose_tx(proposer, change)
        assert self.run(transaction) == ACCEPTED
        return transaction.tx_id

    def vote(
        self, voter: str, proposal_id: bytes, approve: bool = True, by: Signer | None = None
    ) -> str:
        return self.run(self.vote_tx(voter, proposal_id, approve, by))

    # --- reading the committed state ---

    def members(self) -> tuple[Member, ...]:
        return self.engine.members(self.state)

    def member_ids(self) -> list[str]:
        return [member.id for member in self.members()]

    def node_key(self, member_id: str) -> bytes:
        return next(member.public_key for member in self.members() if member.id == member_id)

    def query(self, path: str) -> Any:
        return self.engine.query(self.state, MEMBERSHIP, path)

    def proposal(self, proposal_id: bytes) -> dict[str, Any]:
        return self.query(f"proposal/{proposal_id.hex()}")

    def status(self, proposal_id: bytes) -> str:
        return self.proposal(proposal_id)["status"]


class CommittedMembershipView:
    """The membership namespace of a committed MemoryState, as a ReadView."""

    def __init__(self, state: MemoryState) -> None:
        self._state = state

    def get(self, key: bytes) -> bytes | None:
        return self._state.state_get(NAMESPACE + key)

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        for key, value in self._state.state_items(NAMESPACE + prefix):
            yield key[len(NAMESPACE) :], value


# --- threshold arithmetic ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("member_count", "threshold_percent", "needed"),
    [
        (1, 67, 1),
        (4, 67, 3),
        (5, 67, 4),
        (6, 67, 5),
        (7, 67, 5),
        (4, 51, 3),
        (5, 51, 3),
        (6, 51, 4),
        (7, 51, 4),
        (4, 100, 4),
        (7, 100, 7),
    ],
)
def test_required_votes_is_the_ceiling_of_the_threshold(
    member_count: int, threshold_percent: int, needed: int
) -> None:
    assert required_votes(member_count, threshold_percent) == needed
    assert needed == math.ceil(member_count * threshold_percent / 100)


# --- admission and the next height ------------------------------------------------------------


def test_admitting_a_fifth_member_takes_three_of_four_votes_and_it_votes_next_height() -> None:
    chain = Chain()
    admission = chain.propose("metropole", admit("commune-d"))
    other = chain.propose("metropole", set_parameters(view_timeout_ms=3000))
    assert chain.vote("commune-a", admission) == ACCEPTED
    assert chain.status(admission) == "open"  # 2 of the 3 needed

    deciding = chain.vote_tx("commune-b", admission)
    newcomer_too_early = chain.vote_tx("commune-d", other, by=extra_key("commune-d"))
    assert chain.block(deciding, newcomer_too_early) == [ACCEPTED, "not_a_member"]
    assert chain.proposal(admission)["status"] == "passed"
    assert chain.proposal(admission)["closed_height"] == chain.height
    assert chain.member_ids() == [*FOUR, "commune-d"]

    assert chain.vote("commune-d", other, by=extra_key("commune-d")) == ACCEPTED


def test_a_change_is_invisible_until_its_block_is_committed() -> None:
    chain = Chain()
    admission = chain.propose("metropole", admit("commune-d"))
    assert chain.vote("commune-a", admission) == ACCEPTED
    before = chain.engine.directory(chain.state)

    result = chain.execute(chain.vote_tx("commune-b", admission))
    assert len(result.accepted) == 1
    # Executed, not committed: the directory in force has not moved, and the block is certified
    # by the member set in force before it.
    assert chain.engine.directory(chain.state).members == before.members
    assert result.members_hash == members_hash(before.members)

    chain.commit(result)
    after = chain.engine.directory(chain.state)
    assert [member.id for member in after.members] == [*FOUR, "commune-d"]
    assert after.delegations_for(public(extra_key("commune-d")))[0].is_member_key


def test_members_hash_changes_exactly_when_the_member_set_changes() -> None:
    chain = Chain()
    clerk = extra_key("clerk")
    admission = chain.propose_tx("metropole", admit("commune-d"))
    blocks = [
        (admission, False),
        (chain.vote_tx("commune-a", admission.tx_id), False),
        (chain.delegate_tx("metropole", clerk), False),
        (chain.propose_tx("metropole", set_parameters(proposal_lifetime_blocks=50)), False),
        (chain.vote_tx("commune-b", admission.tx_id), True),  # admits commune-d
        (chain.endpoint_tx("commune-a", "10.0.0.2:7000"), True),  # an endpoint is in the set
        (chain.rotate_tx("commune-c", public(extra_key("c-2026"))), True),  # and a node key
    ]
    for transaction, changes_the_set in blocks:
        in_force = chain.execute().members_hash
        assert chain.run(transaction) == ACCEPTED
        next_hash = chain.execute().members_hash
        assert (next_hash != in_force) == changes_the_set
        assert next_hash == members_hash(chain.members())
        assert next_hash == MembershipContract.members_hash_of(CommittedMembershipView(chain.state))


def test_an_auditor_replaying_the_chain_finds_the_member_set_of_every_height() -> None:
    chain = Chain()
    blocks: list[Block] = []
    member_sets: list[tuple[Member, ...]] = []

    def produce(*transactions: Transaction) -> None:
        """What a primary does: execute, build the header, commit."""
        result = chain.execute(*transactions)
        assert not result.rejected
        header = BlockHeader(
            chain_id=chain.consortium.chain_id,
            height=chain.height + 1,
            prev_hash=blocks[-1].block_hash if blocks else chain.consortium.chain_id,
            timestamp_ms=TIMESTAMP_MS + chain.height,
            proposer=chain.members()[0].id,
            view=0,
            tx_count=len(result.accepted),
            tx_root=merkle.root([transaction.encoded for transaction in result.accepted]),
            state_root=result.state_root,
            members_hash=result.members_hash,
        )
        chain.commit(result)
        blocks.append(Block(header=header, transactions=result.accepted))
        member_sets.append(chain.members())

    admission = chain.propose_tx("metropole", admit("commune-d"))
    produce(admission)
    produce(chain.vote_tx("commune-a", admission.tx_id))
    produce(chain.vote_tx("commune-b", admission.tx_id))  # commune-d is in from height 4
    new_key = extra_key("commune-c-2026")
    produce(chain.rotate_tx("commune-c", public(new_key)))
    removal = chain.propose_tx("metropole", remove("commune-d"))
    produce(removal)
    produce(
        chain.vote_tx("commune-a", removal.tx_id),
        chain.vote_tx("commune-b", removal.tx_id),
        chain.vote_tx("commune-c", removal.tx_id, by=new_key),  # 4 of 5: commune-d leaves
    )

    # The auditor holds the genesis and the blocks, nothing else.
    auditor = Engine(chain.consortium.genesis, {})
    state = MemoryState()
    state.commit(auditor.genesis_state())
    in_force = chain.consortium.genesis.members
    changed_at = []
    for block, expected in zip(blocks, member_sets, strict=True):
        assert block.header.members_hash == members_hash(in_force)
        result = auditor.process_proposal(state, block)  # raises if anything differs
        state.commit(result.state_writes, [tx.tx_id for tx in result.accepted])
        if auditor.members(state) != in_force:
            changed_at.append(block.height)
        in_force = auditor.members(state)
        assert in_force == expected
    assert changed_at == [3, 4, 6]  # admission, rotation, removal

    forged = blocks[0].header.model_copy(update={"members_hash": sha256(b"another set")})
    fresh = MemoryState()
    fresh.commit(auditor.genesis_state())
    with pytest.raises(InvalidProposalError, match="members_hash"):
        auditor.process_proposal(fresh, Block(header=forged, transactions=blocks[0].transactions))


def test_a_one_member_consortium_passes_a_proposal_at_once() -> None:
    chain = Chain(["seule"])
    admission = chain.propose("seule", admit("commune-d"))
    assert chain.status(admission) == "passed"
    assert chain.member_ids() == ["seule", "commune-d"]


def test_admission_refuses_an_id_key_or_endpoint_already_used() -> None:
    chain = Chain()
    taken = chain.members()[2]
    fresh = admit("commune-d")["member"]
    for member, code in (
        ({**fresh, "id": taken.id}, "duplicate_member_id"),
        ({**fresh, "public_key": taken.public_key}, "duplicate_public_key"),
        ({**fresh, "endpoint": taken.endpoint}, "duplicate_endpoint"),
    ):
        change = {"kind": "admit", "member": member}
        assert chain.run(chain.propose_tx("metropole", change)) == code


def test_a_passing_vote_is_refused_when_its_change_no_longer_applies() -> None:
    chain = Chain()
    first = chain.propose("metropole", admit("commune-d", port=9000))
    second = chain.propose("metropole", admit("commune-e", port=9000))  # the same endpoint
    for proposal_id in (first, second):
        assert chain.vote("commune-a", proposal_id) == ACCEPTED
    assert chain.vote("commune-b", first) == ACCEPTED
    assert chain.status(first) == "passed"

    assert chain.vote("commune-b", second) == ACCEPTED  # 3 of the 4 that 5 members need
    assert chain.vote("commune-c", second) == "duplicate_endpoint"
    assert chain.status(second) == "open"
    assert chain.proposal(second)["yes_voters"] == ["commune-a", "commune-b", "metropole"]


def test_two_admissions_of_one_id_in_one_block_cannot_both_pass() -> None:
    chain = Chain()
    first = chain.propose("metropole", admit("commune-d", port=9000))
    second = chain.propose("metropole", admit("commune-d", port=9001))
    for proposal_id in (first, second):
        assert chain.vote("commune-a", proposal_id) == ACCEPTED
    both = chain.block(chain.vote_tx("commune-b", first), chain.vote_tx("commune-b", second))
    assert both == [ACCEPTED, "duplicate_member_id"]


def test_the_member_set_is_bounded() -> None:
    chain = Chain([f"m{index}" for index in range(MEMBERS_MAX)])
    assert chain.run(chain.propose_tx("m0", admit("one-too-many"))) == "too_many_members"


# --- removal ----------------------------------------------------------------------------------


def test_removal_goes_down_to_four_members_and_no_further() -> None:
    chain = Chain([*FOUR, "commune-d"])
    removal = chain.propose("metropole", remove("commune-d"))
    for voter in ("commune-a", "commune-b"):
        assert chain.vote(voter, removal) == ACCEPTED
    assert chain.status(removal) == "open"  # 3 of 5: ceil(5 × 67 / 100) = 4 are needed
    assert chain.vote("commune-c", removal) == ACCEPTED
    assert chain.status(removal) == "passed"
    assert chain.member_ids() == list(FOUR)

    assert chain.run(chain.propose_tx("metropole", remove("commune-c"))) == "minimum_members"


def test_a_removal_vote_is_refused_when_it_would_leave_fewer_than_four() -> None:
    chain = Chain([*FOUR, "commune-d"])
    first = chain.propose("metropole", remove("commune-d"))
    second = chain.propose("metropole", remove("commune-c"))
    for voter in ("commune-a", "commune-b"):
        assert chain.vote(voter, first) == ACCEPTED
        assert chain.vote(voter, second) == ACCEPTED
    assert chain.vote("commune-c", first) == ACCEPTED  # 4 of 5: commune-d leaves
    assert chain.member_ids() == list(FOUR)

    # `second` holds 3 yes votes of current members, as many as 4 members need: the next yes
    # vote would pass it, but only 3 members would remain.
    assert chain.vote("commune-d", second) == "not_a_member"
    assert chain.vote("commune-c", second) == "minimum_members"
    assert chain.status(second) == "open"
    assert chain.vote("commune-c", second, approve=False) == ACCEPTED
    assert chain.status(second) == "open"
    assert chain.member_ids() == list(FOUR)


def test_a_removed_member_loses_its_node_key_and_delegations_at_the_next_height() -> None:
    chain = Chain([*FOUR, "commune-d"])
    clerk = extra_key("clerk")
    assert chain.run(chain.delegate_tx("commune-d", clerk)) == ACCEPTED
    pending = chain.propose("metropole", set_parameters(view_timeout_ms=4000))
    removal = chain.propose("metropole", remove("commune-d"))
    for voter in ("commune-a", "commune-b"):
        assert chain.vote(voter, removal) == ACCEPTED

    deciding = chain.vote_tx("commune-c", removal)
    by_node_key = chain.vote_tx("commune-d", pending)
    assert chain.block(deciding, by_node_key) == [ACCEPTED, ACCEPTED]  # still in force
    assert chain.member_ids() == list(FOUR)

    later = chain.propose("metropole", set_parameters(view_timeout_ms=5000))
    assert chain.vote("commune-d", later) == "not_a_member"
    assert chain.vote("commune-d", later, by=clerk) == "not_a_member"
    # The removal also forgot what commune-d delegated, so that re-admitting the same id
    # later does not bring the clerk's key back.
    with pytest.raises(LookupError):
        chain.query(f"signer/{public(clerk).hex()}")
    with pytest.raises(LookupError):
        chain.query("delegations/commune-d")


def test_votes_of_removed_members_no_longer_count() -> None:
    chain = Chain([*FOUR, "commune-d"])
    pending = chain.propose("commune-d", set_parameters(view_timeout_ms=4000))
    removal = chain.propose("metropole", remove("commune-d"))
    for voter in ("commune-a", "commune-b", "commune-c"):
        assert chain.vote(voter, removal) == ACCEPTED
    assert chain.member_ids() == list(FOUR)

    # `pending` holds commune-d's yes vote (no longer counted), then two current members'.
    for voter in ("commune-a", "commune-b"):
        assert chain.vote(voter, pending) == ACCEPTED
    assert chain.status(pending) == "open"
    assert chain.vote("commune-c", pending) == ACCEPTED
    assert chain.status(pending) == "passed"


def test_removing_an_unknown_member_is_refused() -> None:
    chain = Chain([*FOUR, "commune-d"])
    assert chain.run(chain.propose_tx("metropole", remove("ailleurs"))) == "unknown_member"


# --- parameters -------------------------------------------------------------------------------


def test_set_parameters_takes_effect_at_the_next_height() -> None:
    chain = Chain()
    change = set_parameters(governance_threshold_percent=100, proposal_lifetime_blocks=2)
    proposal_id = chain.propose("metropole", change)
    assert chain.vote("commune-a", proposal_id) == ACCEPTED
    assert chain.vote("commune-b", proposal_id) == ACCEPTED
    parameters = chain.engine.directory(chain.state).parameters
    assert parameters.governance_threshold_percent == 100
    assert parameters.proposal_lifetime_blocks == 2
    assert parameters.view_timeout_ms == ConsensusParameters().view_timeout_ms
    assert chain.query("parameters") == parameters.to_canonical()

    # Now all 4 must approve, within 2 blocks.
    admission = chain.propose("metropole", admit("commune-d"))
    record = chain.proposal(admission)
    assert record["expiry_height"] == record["created_height"] + 2
    for voter in ("commune-a", "commune-b"):
        assert chain.vote(voter, admission) == ACCEPTED
    assert chain.status(admission) == "open"
    assert chain.vote("commune-c", admission) == "proposal_expired"


def test_set_parameters_refuses_a_value_out_of_range_naming_it() -> None:
    chain = Chain()
    change = set_parameters(governance_threshold_percent=50)
    [(_, rejection)] = chain.execute(chain.propose_tx("metropole", change)).rejected
    assert rejection.code == "invalid_arguments"
    assert rejection.reason.startswith("change.parameters.governance_threshold_percent:")


# --- node keys and endpoints ------------------------------------------------------------------


def test_rotate_key_hands_over_at_the_next_height() -> None:
    chain = Chain()
    new_key = extra_key("commune-a-2026")
    proposal_id = chain.propose("metropole", set_parameters(view_timeout_ms=3000))

    rotation = chain.rotate_tx("commune-a", public(new_key))
    new_key_too_early = chain.vote_tx("commune-a", proposal_id, by=new_key)
    assert chain.block(rotation, new_key_too_early) == [ACCEPTED, "wrong_signer"]
    assert chain.node_key("commune-a") == public(new_key)

    assert chain.vote("commune-a", proposal_id) == "wrong_signer"  # the old key
    assert chain.vote("commune-a", proposal_id, by=new_key) == ACCEPTED


def test_rotate_key_refuses_a_node_key_in_use() -> None:
    chain = Chain()
    for taken in ("commune-b", "commune-a"):  # another member's key, or its own
        outcome = chain.run(chain.rotate_tx("commune-a", chain.node_key(taken)))
        assert outcome == "duplicate_public_key"


def test_rotate_key_refuses_a_key_that_holds_a_delegation_from_the_same_member() -> None:
    chain = Chain()
    clerk = extra_key("clerk")
    assert chain.run(chain.delegate_tx("commune-a", clerk)) == ACCEPTED
    assert chain.run(chain.rotate_tx("commune-a", public(clerk))) == "self_delegation"


def test_only_the_members_own_node_key_may_rotate_it() -> None:
    chain = Chain()
    clerk = extra_key("clerk")
    assert chain.run(chain.delegate_tx("commune-a", clerk)) == ACCEPTED
    new_key = public(extra_key("new"))
    assert chain.run(chain.rotate_tx("commune-a", new_key, by=clerk)) == "wrong_signer"
    assert chain.run(chain.rotate_tx("commune-a", new_key, by="commune-b")) == "wrong_signer"
    assert chain.run(chain.rotate_tx("ailleurs", new_key, by="commune-b")) == "not_a_member"


def test_set_endpoint_moves_a_member_and_refuses_an_endpoint_in_use() -> None:
    chain = Chain()
    assert chain.run(chain.endpoint_tx("commune-b", "[2001:db8::1]:7000")) == ACCEPTED
    assert chain.members()[2].endpoint == "[2001:db8::1]:7000"
    taken = chain.endpoint_tx("commune-c", "[2001:db8::1]:7000")
    assert chain.run(taken) == "duplicate_endpoint"
    other = chain.endpoint_tx("commune-c", "10.9.9.9:7000", by="metropole")
    assert chain.run(other) == "wrong_signer"


# --- delegations ------------------------------------------------------------------------------


def test_a_delegated_key_votes_from_the_next_height_until_its_expiry_height() -> None:
    chain = Chain()
    clerk = extra_key("clerk")
    admission = chain.propose("metropole", admit("commune-d"))
    expiry_height = chain.height + 3
    roles = ["deeds.record", GOVERN]
    delegation = chain.delegate_tx("commune-a", clerk, roles, expiry_height)
    too_early = chain.vote_tx("commune-a", admission, by=clerk)
    assert chain.block(delegation, too_early) == [ACCEPTED, "wrong_signer"]
    assert chain.query("delegations/commune-a") == [
        {"signer": public(clerk), "roles": roles, "expiry_height": expiry_height}
    ]
    # What the engine hands to contracts: roles for commune-a, and nothing for anyone else.
    granted = chain.engine.directory(chain.state).delegations_for(public(clerk))
    assert [(entry.member_id, entry.roles) for entry in granted] == [
        ("commune-a", frozenset(roles))
    ]

    assert chain.vote("commune-b", admission, by=clerk) == "wrong_signer"
    assert chain.vote("commune-a", admission, by=clerk) == ACCEPTED
    assert chain.height == expiry_height  # the last height at which it is valid

    later = chain.propose("metropole", set_parameters(view_timeout_ms=3000))
    assert chain.vote("commune-a", later, by=clerk) == "expired_delegation"


def test_a_delegated_key_holds_only_the_roles_it_was_given() -> None:
    chain = Chain()
    recorder = extra_key("recorder")
    assert chain.run(chain.delegate_tx("commune-a", recorder, ["deeds.record"])) == ACCEPTED
    admission = chain.propose("metropole", admit("commune-d"))
    assert chain.vote("commune-a", admission, by=recorder) == "unauthorized_role"
    proposal = chain.propose_tx("commune-a", remove("commune-b"), by=recorder)
    assert chain.run(proposal) == "unauthorized_role"


def test_a_delegate_cannot_manage_its_member() -> None:
    chain = Chain()
    clerk = extra_key("clerk")
    assert chain.run(chain.delegate_tx("commune-a", clerk)) == ACCEPTED
    for transaction in (
        chain.delegate_tx("commune-a", extra_key("other"), by=clerk),
        chain.revoke_tx("commune-a", clerk, by=clerk),
        chain.endpoint_tx("commune-a", "10.9.9.9:7000", by=clerk),
        chain.rotate_tx("commune-a", public(extra_key("new")), by=clerk),
    ):
        assert chain.run(transaction) == "wrong_signer"


def test_revoke_withdraws_a_delegation_at_the_next_height() -> None:
    chain = Chain()
    clerk = extra_key("clerk")
    assert chain.run(chain.delegate_tx("commune-a", clerk)) == ACCEPTED
    admission = chain.propose("metropole", admit("commune-d"))

    revocation = chain.revoke_tx("commune-a", clerk)
    by_clerk = chain.vote_tx("commune-a", admission, by=clerk)
    assert chain.block(revocation, by_clerk) == [ACCEPTED, ACCEPTED]  # still in force
    with pytest.raises(LookupError):
        chain.query(f"signer/{public(clerk).hex()}")
    assert chain.query("delegations/commune-a") == []

    assert chain.vote("commune-b", admission, by=clerk) == "wrong_signer"
    assert chain.run(chain.revoke_tx("commune-a", clerk)) == "unknown_delegation"


def test_delegating_again_replaces_the_roles_and_expiry() -> None:
    chain = Chain()
    clerk = extra_key("clerk")
    assert chain.run(chain.delegate_tx("commune-a", clerk, [GOVERN], 50)) == ACCEPTED
    assert chain.run(chain.delegate_tx("commune-a", clerk, ["deeds.record"])) == ACCEPTED
    assert chain.query(f"signer/{public(clerk).hex()}") == {
        "node_key_of": None,
        "issuer_key_of": None,
        "delegations": {"commune-a": {"roles": ["deeds.record"], "expiry_height": None}},
    }


def test_a_member_may_not_delegate_to_its_own_node_key() -> None:
    chain = Chain()
    own = chain.node_key("commune-a")
    assert chain.run(chain.delegate_tx("commune-a", own)) == "self_delegation"


def test_a_delegation_that_would_expire_before_it_takes_effect_is_refused() -> None:
    chain = Chain()
    chain.skip_blocks(3)
    delegation = chain.delegate_tx("commune-a", extra_key("clerk"), expiry_height=4)
    [(_, rejection)] = chain.execute(delegation).rejected
    assert rejection.code == "invalid_arguments"
    assert rejection.reason.startswith("expiry_height:")


def test_one_member_delegates_to_a_bounded_number_of_keys() -> None:
    chain = Chain()
    transactions = [
        chain.delegate_tx("commune-a", extra_key(f"clerk-{index}"))
        for index in range(DELEGATIONS_PER_MEMBER_MAX + 1)
    ]
    expected = [ACCEPTED] * DELEGATIONS_PER_MEMBER_MAX + ["too_many_delegations"]
    assert chain.block(*transactions) == expected
    assert len(chain.query("delegations/commune-a")) == DELEGATIONS_PER_MEMBER_MAX


def test_one_key_acts_for_a_bounded_number_of_members() -> None:
    member_ids = [f"commune-{index}" for index in range(DELEGATIONS_PER_SIGNER_MAX + 1)]
    chain = Chain(member_ids)
    shared_service = extra_key("shared-service")
    transactions = [
        chain.delegate_tx(member_id, shared_service, ["deeds.record"]) for member_id in member_ids
    ]
    expected = [ACCEPTED] * DELEGATIONS_PER_SIGNER_MAX + ["too_many_delegations"]
    assert chain.block(*transactions) == expected


# --- voting -----------------------------------------------------------------------------------


def test_a_vote_from_outside_the_consortium_is_refused() -> None:
    chain = Chain()
    admission = chain.propose("metropole", admit("commune-d"))
    stranger = extra_key("stranger")
    assert chain.vote("ailleurs", admission, by=stranger) == "not_a_member"
    assert chain.vote("commune-a", admission, by=stranger) == "wrong_signer"
    assert chain.vote("commune-a", admission, by="commune-b") == "wrong_signer"


def test_a_member_votes_once_per_proposal() -> None:
    chain = Chain()
    admission = chain.propose("metropole", admit("commune-d"))
    assert chain.vote("metropole", admission) == "double_vote"  # proposing is voting yes
    assert chain.vote("commune-a", admission, approve=False) == ACCEPTED
    assert chain.vote("commune-a", admission, approve=True) == "double_vote"
    assert chain.vote("commune-a", admission, approve=False) == "double_vote"


def test_a_vote_on_an_unknown_proposal_is_refused() -> None:
    chain = Chain()
    assert chain.vote("commune-a", bytes(32)) == "unknown_proposal"


def test_no_votes_that_make_passing_impossible_reject_the_proposal() -> None:
    chain = Chain()
    admission = chain.propose("metropole", admit("commune-d"))
    assert chain.vote("commune-a", admission, approve=False) == ACCEPTED
    assert chain.status(admission) == "open"  # 3 members may still approve, 3 are needed
    assert chain.vote("commune-b", admission, approve=False) == ACCEPTED
    assert chain.status(admission) == "rejected"
    assert chain.query("proposals") == []
    assert chain.vote("commune-c", admission) == "proposal_closed"


def test_a_passed_proposal_is_closed_to_further_votes() -> None:
    chain = Chain()
    admission = chain.propose("metropole", admit("commune-d"))
    for voter in ("commune-a", "commune-b"):
        assert chain.vote(voter, admission) == ACCEPTED
    assert chain.vote("commune-c", admission) == "proposal_closed"


def test_a_proposal_expires_after_its_lifetime_and_the_next_proposal_marks_it() -> None:
    chain = Chain(parameters=ConsensusParameters(proposal_lifetime_blocks=2))
    admission = chain.propose("metropole", admit("commune-d"))
    assert chain.proposal(admission)["expiry_height"] == chain.height + 2
    chain.skip_blocks(2)
    assert chain.vote("commune-a", admission) == "proposal_expired"
    assert chain.query("proposals")[0]["status"] == "open"  # the stored status, until swept

    chain.propose("metropole", admit("commune-e"))
    record = chain.proposal(admission)
    assert record["status"] == "expired"
    assert record["closed_height"] == record["expiry_height"] + 1
    still_open = [entry["change"]["member"]["id"] for entry in chain.query("proposals")]
    assert still_open == ["commune-e"]
    assert chain.vote("commune-a", admission) == "proposal_expired"


def test_open_proposals_are_bounded_and_expired_ones_free_their_place() -> None:
    chain = Chain(parameters=ConsensusParameters(proposal_lifetime_blocks=1))
    transactions = [
        chain.propose_tx("metropole", set_parameters(view_timeout_ms=1000 + index))
        for index in range(OPEN_PROPOSALS_MAX + 1)
    ]
    expected = [ACCEPTED] * OPEN_PROPOSALS_MAX + ["too_many_open_proposals"]
    assert chain.block(*transactions) == expected
    assert len(chain.query("proposals")) == OPEN_PROPOSALS_MAX

    chain.skip_blocks(1)  # the 64 expire after this height
    chain.propose("metropole", admit("commune-d"))
    assert len(chain.query("proposals")) == 1


def test_the_votes_recorded_on_a_proposal_are_bounded() -> None:
    chain = Chain()
    admission = chain.propose("metropole", admit("commune-d"))
    record = chain.proposal(admission)
    del record["proposal_id"]
    # Only member churn could fill a proposal with votes: write such a record directly.
    record["no_voters"] = sorted(f"ancien-{index}" for index in range(VOTERS_PER_PROPOSAL_MAX - 1))
    chain.state.commit({NAMESPACE + proposal_key(admission): encode_record(record)})
    assert chain.vote("commune-a", admission) == "too_many_votes"


# --- arguments --------------------------------------------------------------------------------

SMALL_ORDER_KEY = bytes(32)
VALID_KEY = public(extra_key("valid"))


def propose_args(change: Any, **extra: Any) -> tuple[str, dict[str, Any]]:
    return "propose", {"proposer": "metropole", "change": change, **extra}


def admit_with(**fields: Any) -> dict[str, Any]:
    """An admission with some member fields replaced (``...`` removes one)."""
    member = {**admit("commune-d")["member"], **fields}
    return {"kind": "admit", "member": {k: v for k, v in member.items() if v is not ...}}


def vote_args(**fields: Any) -> tuple[str, dict[str, Any]]:
    return "vote", {"proposal_id": bytes(32), "voter": "metropole", "approve": True, **fields}


def delegate_args(**fields: Any) -> tuple[str, dict[str, Any]]:
    base = {"member_id": "metropole", "signer": VALID_KEY, "roles": [GOVERN]}
    return "delegate", {**base, "expiry_height": None, **fields}


INVALID_ARGUMENTS = [
    (("propose", {"proposer": "metropole"}), "change"),
    (propose_args(admit("commune-d"), extra=1), "extra"),
    (("propose", {"proposer": "Métropole", "change": admit("commune-d")}), "proposer"),
    (propose_args("admit"), "change"),
    (propose_args({"kind": "merge"}), "change.kind"),
    (propose_args({**admit("commune-d"), "why": "x"}), "change.why"),
    (propose_args({"kind": "admit", "member": [1]}), "change.member"),
    (propose_args(admit_with(id="Commune D")), "change.member.id"),
    (propose_args(admit_with(name="tab\there")), "change.member.name"),
    (propose_args(admit_with(public_key=SMALL_ORDER_KEY)), "change.member.public_key"),
    (propose_args(admit_with(endpoint="no-port")), "change.member.endpoint"),
    (propose_args(admit_with(endpoint=...)), "change.member.endpoint"),
    (propose_args(admit_with(role="x")), "change.member.role"),
    (propose_args({"kind": "remove", "member_id": 7}), "change.member_id"),
    (propose_args(set_parameters()), "change.parameters"),
    (propose_args(set_parameters(gas_price=1)), "change.parameters.gas_price"),
    (
        propose_args(set_parameters(block_transactions_max=0)),
        "change.parameters.block_transactions_max",
    ),
    (propose_args(set_parameters(block_bytes_max=10)), "change.parameters.block_bytes_max"),
    (
        propose_args(set_parameters(transaction_bytes_max=10**6)),
        "change.parameters.transaction_bytes_max",
    ),
    (propose_args(set_parameters(view_timeout_ms=1)), "change.parameters.view_timeout_ms"),
    (
        propose_args(set_parameters(timestamp_drift_ms_max=1)),
        "change.parameters.timestamp_drift_ms_max",
    ),
    (
        propose_args(set_parameters(governance_threshold_percent=101)),
        "change.parameters.governance_threshold_percent",
    ),
    (
        propose_args(set_parameters(proposal_lifetime_blocks=0)),
        "change.parameters.proposal_lifetime_blocks",
    ),
    (propose_args(set_parameters(view_timeout_ms=True)), "change.parameters.view_timeout_ms"),
    (vote_args(proposal_id=bytes(31)), "proposal_id"),
    (vote_args(voter=""), "voter"),
    (vote_args(approve=1), "approve"),
    (
        ("rotate_key", {"member_id": "metropole", "new_public_key": SMALL_ORDER_KEY}),
        "new_public_key",
    ),
    (("rotate_key", {"member_id": "-x", "new_public_key": VALID_KEY}), "member_id"),
    (("set_endpoint", {"member_id": "metropole", "endpoint": "host"}), "endpoint"),
    (delegate_args(member_id=None), "member_id"),
    (delegate_args(signer=VALID_KEY.hex()), "signer"),
    (delegate_args(signer=SMALL_ORDER_KEY), "signer"),
    (delegate_args(roles=[]), "roles"),
    (delegate_args(roles=GOVERN), "roles"),
    (delegate_args(roles=["govern"]), "roles"),
    (delegate_args(roles=[GOVERN, GOVERN]), "roles"),
    (delegate_args(roles=[f"deeds.role_{chr(97 + index)}" for index in range(17)]), "roles"),
    (delegate_args(roles=["deeds." + "x" * 40]), "roles"),
    (delegate_args(expiry_height=0), "expiry_height"),
    (delegate_args(expiry_height=True), "expiry_height"),
    (delegate_args(expiry_height="10"), "expiry_height"),
    (("revoke", {"member_id": "metropole", "signer": b"short"}), "signer"),
    (("revoke", {"member_id": "metropole"}), "signer"),
]


@pytest.mark.parametrize(
    ("action_and_args", "field_name"),
    INVALID_ARGUMENTS,
    ids=[f"{action}-{name}" for (action, _), name in INVALID_ARGUMENTS],
)
def test_malformed_arguments_are_refused_naming_the_field(
    action_and_args: tuple[str, dict[str, Any]], field_name: str
) -> None:
    chain = Chain()
    action, args = action_and_args
    transaction = chain.tx("metropole", action, **args)
    with pytest.raises(Rejection) as raised:
        chain.engine.check(transaction)  # stateless: what a mempool runs on entry
    assert raised.value.code == "invalid_arguments"
    assert raised.value.reason.startswith(f"{field_name}:"), raised.value.reason
    assert chain.run(transaction) == "invalid_arguments"


def test_an_unknown_action_is_refused() -> None:
    chain = Chain()
    assert chain.run(chain.tx("metropole", "dissolve", member_id="metropole")) == "unknown_action"


# --- queries ----------------------------------------------------------------------------------


def test_queries_answer_from_the_committed_state() -> None:
    chain = Chain()
    clerk = extra_key("clerk")
    assert chain.run(chain.delegate_tx("commune-a", clerk)) == ACCEPTED
    admission = chain.propose("metropole", admit("commune-d"))

    assert chain.query("members") == [member.to_canonical() for member in chain.members()]
    assert chain.query("parameters") == ConsensusParameters().to_canonical()
    assert chain.proposal(admission) == {
        "proposal_id": admission,
        "proposer": "metropole",
        "change": admit("commune-d"),
        "created_height": chain.height,
        "expiry_height": chain.height + ConsensusParameters().proposal_lifetime_blocks,
        "yes_voters": ["metropole"],
        "no_voters": [],
        "status": "open",
        "closed_height": None,
    }
    assert [entry["proposal_id"] for entry in chain.query("proposals")] == [admission]
    assert chain.query("delegations/commune-b") == []
    assert chain.query(f"signer/{chain.node_key('metropole').hex()}") == {
        "node_key_of": "metropole",
        "issuer_key_of": None,
        "delegations": {},
    }
    assert chain.query(f"signer/{public(clerk).hex()}") == {
        "node_key_of": None,
        "issuer_key_of": None,
        "delegations": {"commune-a": {"roles": [GOVERN], "expiry_height": None}},
    }


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("proposal/" + "00" * 32, LookupError),
        ("signer/" + "00" * 32, LookupError),
        ("delegations/ailleurs", LookupError),
        ("nothing", LookupError),
        ("members/extra", LookupError),
        ("proposal/xyz", ValueError),
        ("proposal/" + "AB" * 32, ValueError),
        ("signer/" + "00" * 31, ValueError),
        ("delegations/Not An Id", ValueError),
    ],
)
def test_queries_for_nothing_or_malformed_paths_raise(path: str, error: type) -> None:
    with pytest.raises(error):
        Chain().query(path)


# --- determinism ------------------------------------------------------------------------------


def test_the_same_transactions_give_byte_identical_states_on_two_nodes() -> None:
    first, second = Chain(), Chain()
    admission = first.propose_tx("metropole", admit("commune-d"))
    blocks = [
        [admission],
        [
            first.vote_tx("commune-a", admission.tx_id),
            first.delegate_tx("commune-b", extra_key("clerk"), ["deeds.record", GOVERN], 99),
        ],
        [first.vote_tx("commune-c", admission.tx_id)],
    ]
    for chain in (first, second):
        for transactions in blocks:
            assert set(chain.block(*transactions)) == {ACCEPTED}
    assert first.member_ids() == [*FOUR, "commune-d"]
    assert first.state.state_root == second.state.state_root
    assert list(first.state.state_items(b"")) == list(second.state.state_items(b""))


def test_a_rejected_transaction_changes_nothing() -> None:
    chain = Chain([*FOUR, "commune-d"])
    removal = chain.propose("metropole", remove("commune-d"))
    root = chain.state.state_root
    accepted = chain.vote_tx("commune-a", removal)
    refused = [
        chain.vote_tx("commune-b", removal, by="commune-a"),
        chain.rotate_tx("commune-b", chain.node_key("metropole")),
    ]
    mixed = chain.execute(accepted, *refused)
    assert outcomes(mixed, [accepted, *refused]) == [
        ACCEPTED,
        "wrong_signer",
        "duplicate_public_key",
    ]
    alone = chain.execute(accepted)
    assert (mixed.state_writes, mixed.state_root) == (alone.state_writes, alone.state_root)
    assert chain.execute(*refused).state_writes == {}
    assert chain.state.state_root == root


# --- the rules against a model ----------------------------------------------------------------
# A plain restatement of the rules over Python lists, dicts and sets. The machine queues random
# transactions (by members, ex-members and strangers; signed with node keys, delegated keys and
# wrong keys), executes them as a block, and checks that the engine accepts and refuses exactly
# what the model does, with the same codes, and that both end in the same state.

CANDIDATES = ("m0", "m1", "m2", "m3", "m4", "m5", "m6")
GENESIS_MEMBERS = CANDIDATES[:4]
KEY_COUNT = 10
"""Key i < 7 is candidate i's initial node key; the others are spare (delegates, rotations)."""
PORT_COUNT = 9
ROLE_SETS = ((GOVERN,), ("deeds.record",), ("deeds.record", GOVERN))
MODEL_KEYS = tuple(extra_key(f"model-{index}") for index in range(KEY_COUNT))
MODEL_PUBLIC_KEYS = tuple(public(key) for key in MODEL_KEYS)


def model_endpoint(port: int) -> str:
    return f"10.0.0.1:{7000 + port}"


def candidate_document(member_id: str) -> dict[str, Any]:
    index = CANDIDATES.index(member_id)
    member = Member(
        id=member_id,
        name=member_id,
        public_key=MODEL_PUBLIC_KEYS[index],
        endpoint=model_endpoint(index),
    )
    return member.to_canonical()


class Refused(Exception):
    def __init__(self, code: str) -> None:
        self.code = code


@dataclass
class ModelMember:
    id: str
    key: int
    port: int


@dataclass
class ModelProposal:
    proposer: str
    change: tuple[Any, ...]
    """("admit", id) | ("remove", id) | ("set_parameters", threshold, lifetime)"""
    expiry_height: int
    yes: set[str]
    no: set[str] = field(default_factory=set)
    status: str = "open"
    closed_height: int | None = None


@dataclass
class Model:
    members: list[ModelMember]
    threshold_percent: int
    lifetime_blocks: int
    delegations: dict[int, dict[str, tuple[tuple[str, ...], int | None]]] = field(
        default_factory=dict
    )
    """delegate key -> member id -> (roles, expiry height)"""
    proposals: dict[bytes, ModelProposal] = field(default_factory=dict)

    def member(self, member_id: str) -> ModelMember | None:
        return next((member for member in self.members if member.id == member_id), None)


def model_authorize(committed: Model, signer: int, member_id: str, height: int) -> None:
    member = committed.member(member_id)
    if member is None:
        raise Refused("not_a_member")
    if member.key == signer:
        return
    entry = committed.delegations.get(signer, {}).get(member_id)
    if entry is None:
        raise Refused("wrong_signer")
    roles, expiry_height = entry
    if expiry_height is not None and height > expiry_height:
        raise Refused("expired_delegation")
    if GOVERN not in roles:
        raise Refused("unauthorized_role")


def model_node_key(committed: Model, pending: Model, signer: int, member_id: str) -> ModelMember:
    member = committed.member(member_id)
    if member is None:
        raise Refused("not_a_member")
    if member.key != signer:
        raise Refused("wrong_signer")
    pending_member = pending.member(member_id)
    if pending_member is None:  # removed earlier in the block
        raise Refused("not_a_member")
    return pending_member


def model_check_change(pending: Model, change: tuple[Any, ...]) -> None:
    if change[0] == "admit":
        index = CANDIDATES.index(change[1])
        if pending.member(change[1]) is not None:
            raise Refused("duplicate_member_id")
        if any(member.key == index for member in pending.members):
            raise Refused("duplicate_public_key")
        if any(member.port == index for member in pending.members):
            raise Refused("duplicate_endpoint")
    elif change[0] == "remove":
        if pending.member(change[1]) is None:
            raise Refused("unknown_member")
        if len(pending.members) - 1 < 4:
            raise Refused("minimum_members")


def model_apply_change(pending: Model, change: tuple[Any, ...]) -> None:
    if change[0] == "admit":
        index = CANDIDATES.index(change[1])
        pending.members.append(ModelMember(change[1], index, index))
    elif change[0] == "remove":
        pending.members = [member for member in pending.members if member.id != change[1]]
        for delegate in list(pending.delegations):
            pending.delegations[delegate].pop(change[1], None)
            if not pending.delegations[delegate]:
                del pending.delegations[delegate]
    else:
        pending.threshold_percent, pending.lifetime_blocks = change[1], change[2]


def model_settle(
    committed: Model, pending: Model, proposal: ModelProposal, approve: bool, height: int
) -> None:
    current = {member.id for member in committed.members}
    needed = math.ceil(len(current) * committed.threshold_percent / 100)
    if approve and len(proposal.yes & current) >= needed:
        model_check_change(pending, proposal.change)
        model_apply_change(pending, proposal.change)
        proposal.status, proposal.closed_height = "passed", height
    elif not approve and len(current) - len(proposal.no & current) < needed:
        proposal.status, proposal.closed_height = "rejected", height


def model_propose(
    committed: Model, pending: Model, height: int, signer: int, rest: list, tx_id: bytes
) -> None:
    proposer, change = rest
    if change[0] == "set_parameters" and not 51 <= change[1] <= 100:
        raise Refused("invalid_arguments")
    model_authorize(committed, signer, proposer, height)
    model_check_change(pending, change)
    for proposal in pending.proposals.values():
        if proposal.status == "open" and height > proposal.expiry_height:
            proposal.status, proposal.closed_height = "expired", proposal.expiry_height + 1
    proposal = ModelProposal(proposer, change, height + committed.lifetime_blocks, {proposer})
    pending.proposals[tx_id] = proposal
    model_settle(committed, pending, proposal, True, height)


def model_vote(committed: Model, pending: Model, height: int, signer: int, rest: list) -> None:
    voter, proposal_id, approve = rest
    proposal = pending.proposals.get(proposal_id)
    if proposal is None:
        raise Refused("unknown_proposal")
    if proposal.status in ("passed", "rejected"):
        raise Refused("proposal_closed")
    if proposal.status == "expired" or height > proposal.expiry_height:
        raise Refused("proposal_expired")
    model_authorize(committed, signer, voter, height)
    if voter in proposal.yes or voter in proposal.no:
        raise Refused("double_vote")
    (proposal.yes if approve else proposal.no).add(voter)
    model_settle(committed, pending, proposal, approve, height)


def model_manage(
    committed: Model, pending: Model, height: int, action: str, signer: int, rest: list
) -> None:
    member = model_node_key(committed, pending, signer, rest[0])
    if action == "rotate_key":
        if any(other.key == rest[1] for other in pending.members):
            raise Refused("duplicate_public_key")
        if member.id in pending.delegations.get(rest[1], {}):
            raise Refused("self_delegation")
        member.key = rest[1]
    elif action == "set_endpoint":
        if any(other.port == rest[1] for other in pending.members):
            raise Refused("duplicate_endpoint")
        member.port = rest[1]
    elif action == "delegate":
        _, delegate, roles, expiry_height = rest
        if delegate == member.key:
            raise Refused("self_delegation")
        if expiry_height is not None and expiry_height <= height:
            raise Refused("invalid_arguments")
        pending.delegations.setdefault(delegate, {})[member.id] = (roles, expiry_height)
    else:
        if member.id not in pending.delegations.get(rest[1], {}):
            raise Refused("unknown_delegation")
        del pending.delegations[rest[1]][member.id]
        if not pending.delegations[rest[1]]:
            del pending.delegations[rest[1]]


def model_step(
    committed: Model, pending: Model, height: int, intent: tuple[Any, ...], tx_id: bytes
) -> None:
    """Apply one transaction to ``pending`` or raise Refused (``pending`` is then discarded).

    Authorization reads ``committed`` (the state before the block); changes are checked
    against and made to ``pending``.
    """
    action, signer, *rest = intent
    if action == "propose":
        model_propose(committed, pending, height, signer, rest, tx_id)
    elif action == "vote":
        model_vote(committed, pending, height, signer, rest)
    else:
        model_manage(committed, pending, height, action, signer, rest)


ANYONE = (*CANDIDATES, "stranger")
signers = st.one_of(st.just("own"), st.just("own"), st.integers(0, KEY_COUNT - 1))
""""own" (two times in three): the committed node key of the member concerned; else any key
of the pool, which may be a delegate's, another member's or nobody's."""
key_indexes = st.integers(0, KEY_COUNT - 1)
parameter_changes = st.tuples(
    st.just("set_parameters"), st.sampled_from((50, 51, 67, 75, 100)), st.integers(1, 6)
)


class MembershipRules(RuleBasedStateMachine):
    """The engine and the model, fed the same random blocks, agree on every outcome and state."""

    @initialize()
    def start(self) -> None:
        genesis = Genesis(
            consortium="Consortium modèle",
            created_at_ms=TIMESTAMP_MS,
            members=tuple(
                Member.from_canonical(candidate_document(member_id))
                for member_id in GENESIS_MEMBERS
            ),
            parameters=ConsensusParameters(
                governance_threshold_percent=51, proposal_lifetime_blocks=4
            ),
        )
        self.chain_id = genesis.chain_id
        self.engine = Engine(genesis, {})
        self.state = MemoryState()
        self.state.commit(self.engine.genesis_state())
        self.height = 0
        self.model = Model(
            members=[ModelMember(member_id, i, i) for i, member_id in enumerate(GENESIS_MEMBERS)],
            threshold_percent=51,
            lifetime_blocks=4,
        )
        self.queue: list[tuple[Transaction, tuple[Any, ...]]] = []
        self.nonces = itertools.count()

    def _queue(self, signer: str | int, action: str, args: dict[str, Any], *intent: Any) -> None:
        if signer == "own":
            member = self.model.member(intent[0])
            signer = member.key if member is not None else 0
        transaction = Transaction.create(
            MODEL_KEYS[signer],
            chain_id=self.chain_id,
            contract=MEMBERSHIP,
            action=action,
            args=args,
            nonce=next(self.nonces),
            expiry_height=10**9,
        )
        self.queue.append((transaction, (action, signer, *intent)))

    def _someone(self, data: st.DataObject) -> str:
        """Usually a current member; sometimes anyone (an ex-member, a candidate, a stranger)."""
        current = [member.id for member in self.model.members]
        return data.draw(
            st.one_of(st.sampled_from(current), st.sampled_from(current), st.sampled_from(ANYONE)),
            label="member_id",
        )

    @rule(
        signer=signers, kind=st.sampled_from(("admit", "remove", "set_parameters")), data=st.data()
    )
    def propose(self, signer: str | int, kind: str, data: st.DataObject) -> None:
        proposer = self._someone(data)
        if kind == "admit":
            outside = [
                member_id for member_id in CANDIDATES if self.model.member(member_id) is None
            ]
            candidates = st.sampled_from(outside or CANDIDATES)
            candidate = data.draw(st.one_of(candidates, st.sampled_from(CANDIDATES)))
            change = ("admit", candidate)
            document = {"kind": "admit", "member": candidate_document(change[1])}
        elif kind == "remove":
            change = ("remove", self._someone(data))
            document = remove(change[1])
        else:
            change = data.draw(parameter_changes, label="parameters")
            document = set_parameters(
                governance_threshold_percent=change[1], proposal_lifetime_blocks=change[2]
            )
        args = {"proposer": proposer, "change": document}
        self._queue(signer, "propose", args, proposer, change)

    def _has_proposals(self) -> bool:
        return bool(self.model.proposals) or any(intent[0] == "propose" for _, intent in self.queue)

    @precondition(_has_proposals)
    @rule(signers=st.lists(signers, min_size=1, max_size=3), data=st.data())
    def vote(self, signers: list[str | int], data: st.DataObject) -> None:
        """A few votes at once, mostly on open proposals, so that some proposals pass."""
        queued = [tx.tx_id for tx, intent in self.queue if intent[0] == "propose"]
        known = sorted({*self.model.proposals, *queued, bytes(32)})  # bytes(32): unknown
        likely = st.sampled_from(sorted({*self._live_proposals(), *queued}) or known)
        for signer in signers:
            voter = self._someone(data)
            proposal_id = data.draw(
                st.one_of(likely, likely, likely, st.sampled_from(known)), label="proposal_id"
            )
            approve = data.draw(st.booleans(), label="approve")
            args = {"proposal_id": proposal_id, "voter": voter, "approve": approve}
            self._queue(signer, "vote", args, voter, proposal_id, approve)

    def _live_proposals(self) -> list[bytes]:
        return sorted(
            key
            for key, value in self.model.proposals.items()
            if value.status == "open" and value.expiry_height > self.height
        )

    @precondition(lambda self: self._live_proposals())
    @rule(data=st.data())
    def campaign(self, data: st.DataObject) -> None:
        """Some current members approve one live proposal with their node keys, so that
        proposals pass often enough to move the member set and the parameters."""
        proposal_id = data.draw(st.sampled_from(self._live_proposals()), label="proposal_id")
        current = [member.id for member in self.model.members]
        voters = data.draw(st.lists(st.sampled_from(current), unique=True, min_size=1))
        for voter in voters:
            args = {"proposal_id": proposal_id, "voter": voter, "approve": True}
            self._queue("own", "vote", args, voter, proposal_id, True)

    @rule(signer=signers, rotate=st.booleans(), data=st.data())
    def manage_node(self, signer: str | int, rotate: bool, data: st.DataObject) -> None:
        """A key rotation or an endpoint change."""
        member_id = self._someone(data)
        if rotate:
            new_key = data.draw(key_indexes, label="new_key")
            args = {"member_id": member_id, "new_public_key": MODEL_PUBLIC_KEYS[new_key]}
            self._queue(signer, "rotate_key", args, member_id, new_key)
        else:
            port = data.draw(st.integers(0, PORT_COUNT - 1), label="port")
            args = {"member_id": member_id, "endpoint": model_endpoint(port)}
            self._queue(signer, "set_endpoint", args, member_id, port)

    @rule(
        signer=signers,
        delegate=key_indexes,
        roles=st.one_of(st.none(), st.sampled_from(ROLE_SETS)),
        expiry_in=st.one_of(st.none(), st.integers(0, 5)),
        data=st.data(),
    )
    def manage_delegations(
        self,
        signer: str | int,
        delegate: int,
        roles: tuple[str, ...] | None,
        expiry_in: int | None,
        data: st.DataObject,
    ) -> None:
        """A delegation (with roles), or a revocation (without)."""
        member_id = self._someone(data)
        if roles is None:
            args = {"member_id": member_id, "signer": MODEL_PUBLIC_KEYS[delegate]}
            self._queue(signer, "revoke", args, member_id, delegate)
            return
        # expiry_in 0 or 1 gives an expiry at or before the block's height: refused.
        expiry_height = None if expiry_in is None else max(1, self.height + expiry_in)
        args = {
            "member_id": member_id,
            "signer": MODEL_PUBLIC_KEYS[delegate],
            "roles": list(roles),
            "expiry_height": expiry_height,
        }
        self._queue(signer, "delegate", args, member_id, delegate, roles, expiry_height)

    @rule()
    def end_block(self) -> None:
        height = self.height + 1
        transactions = [transaction for transaction, _ in self.queue]
        result = self.engine.execute(
            self.state,
            transactions,
            height=height,
            timestamp_ms=TIMESTAMP_MS + height,
            proposer=self.model.members[0].id,
        )
        pending = copy.deepcopy(self.model)
        expected = []
        for transaction, intent in self.queue:
            attempt = copy.deepcopy(pending)
            try:
                model_step(self.model, attempt, height, intent, transaction.tx_id)
            except Refused as refused:
                expected.append(refused.code)
            else:
                expected.append(ACCEPTED)
                pending = attempt
        assert outcomes(result, transactions) == expected, [intent for _, intent in self.queue]
        assert result.members_hash == members_hash(self.engine.members(self.state))
        self.state.commit(result.state_writes, [tx.tx_id for tx in result.accepted])
        self.model, self.height, self.queue = pending, height, []

    def _query(self, path: str) -> Any:
        return self.engine.query(self.state, MEMBERSHIP, path)

    @invariant()
    @precondition(lambda self: not self.queue)  # the state moves only at end_block
    def member_set_and_parameters_agree(self) -> None:
        members = self.engine.members(self.state)
        assert [(member.id, member.public_key, member.endpoint) for member in members] == [
            (member.id, MODEL_PUBLIC_KEYS[member.key], model_endpoint(member.port))
            for member in self.model.members
        ]
        parameters = self.engine.directory(self.state).parameters
        assert parameters.governance_threshold_percent == self.model.threshold_percent
        assert parameters.proposal_lifetime_blocks == self.model.lifetime_blocks

    @invariant()
    @precondition(lambda self: not self.queue)  # the state moves only at end_block
    def delegations_agree(self) -> None:
        for index, public_key in enumerate(MODEL_PUBLIC_KEYS):
            expected = {
                member_id: {"roles": list(roles), "expiry_height": expiry_height}
                for member_id, (roles, expiry_height) in self.model.delegations.get(
                    index, {}
                ).items()
            }
            try:
                answer = self._query(f"signer/{public_key.hex()}")["delegations"]
            except LookupError:
                answer = {}
            assert answer == expected
        for member in self.model.members:
            delegates = [entry["signer"] for entry in self._query(f"delegations/{member.id}")]
            assert delegates == sorted(
                MODEL_PUBLIC_KEYS[index]
                for index, entries in self.model.delegations.items()
                if member.id in entries
            )

    @invariant()
    @precondition(lambda self: not self.queue)  # the state moves only at end_block
    def proposals_agree(self) -> None:
        for proposal_id, proposal in self.model.proposals.items():
            record = self._query(f"proposal/{proposal_id.hex()}")
            assert record["status"] == proposal.status
            assert record["closed_height"] == proposal.closed_height
            assert record["yes_voters"] == sorted(proposal.yes)
            assert record["no_voters"] == sorted(proposal.no)
            assert record["expiry_height"] == proposal.expiry_height
        still_open = sorted(
            key for key, value in self.model.proposals.items() if value.status == "open"
        )
        assert [entry["proposal_id"] for entry in self._query("proposals")] == still_open


TestMembershipRules = MembershipRules.TestCase
TestMembershipRules.settings = settings(
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
