"""Specification of the format schedule (membership 1.2): the members move the chain's header
format at a height they decide.

A ``schedule_format`` change, proposed and voted like any other, names a later format and a
height after the block that passes it; passing it writes ``[version, height]`` into
``membership/formats``, which the engine reads before each block. Nothing in these rules depends
on the formats this software knows, so a node of older software executes the scheduling block
exactly like a newer one, and only refuses the blocks of the new format, from its height on,
asking to upgrade sceau. Everything runs through the real engine on a :class:`MemoryState`,
block by block, as a node runs it; each block is also judged by ``process_proposal`` on a
second state, as a replica judges it.
"""

from __future__ import annotations

from typing import Any

import pytest
from test_membership import ACCEPTED, TIMESTAMP_MS, Chain

import contracts.engine
from contracts.engine import Engine, ExecutionResult, InvalidProposalError
from contracts.membership import FORMAT_VERSION_MAX, MembershipContract
from ledger import encoding, merkle
from ledger.devchain import LocalConsortium
from ledger.memstate import MemoryState
from ledger.model import FORMAT_SCHEDULE_ENTRIES_MAX, Block, BlockHeader
from ledger.namespace import FORMATS_STATE_KEY


def schedule(version: Any, height: Any) -> dict[str, Any]:
    return {"kind": "schedule_format", "format_version": version, "height": height}


class FormatChain(Chain):
    """Four members (membership 1.2 unless told), a genesis of ``genesis_format``; every block
    is executed, made into a block with its header, judged by a replica's engine on a second
    state, and committed on both."""

    def __init__(self, *, genesis_format: int = 1, membership_version: str = "1.2") -> None:
        super().__init__()
        self.consortium = LocalConsortium.create(
            [(member_id, f"Collectivité {member_id}") for member_id in self.member_ids()],
            seed=b"test-membership",
            format_version=genesis_format,
        )
        membership = MembershipContract.at_version(membership_version)
        self.engine = Engine(self.consortium.genesis, {"membership": membership})
        self.replica = Engine(self.consortium.genesis, {"membership": membership})
        self.state, self.replica_state = MemoryState(), MemoryState()
        for state in (self.state, self.replica_state):
            state.commit(self.engine.genesis_state())
        self.headers: list[BlockHeader] = []
        self.leaves: list[bytes] = []
        """Every committed transaction's canonical bytes, in chain order: the log's leaves."""

    def commit(self, result: ExecutionResult) -> None:
        block = self.block_of(result)
        judged = self.replica.process_proposal(self.replica_state, block)
        assert judged.state_root == result.state_root
        for state in (self.state, self.replica_state):
            state.commit(
                result.state_writes,
                [tx.tx_id for tx in result.accepted],
                log_leaves=block.transaction_leaves(),
            )
        self.headers.append(block.header)
        self.leaves.extend(block.transaction_leaves())
        self.height += 1

    def block_of(self, result: ExecutionResult) -> Block:
        header = BlockHeader(
            chain_id=self.consortium.chain_id,
            height=self.height + 1,
            prev_hash=self.headers[-1].block_hash if self.headers else self.consortium.chain_id,
            timestamp_ms=TIMESTAMP_MS + self.height,
            proposer=self.members()[0].id,
            view=0,
            tx_count=len(result.accepted),
            tx_root=result.tx_root,
            state_root=result.state_root,
            members_hash=result.members_hash,
            **result.header_log_fields(),
        )
        return Block(header=header, transactions=result.accepted)

    def decide(self, change: dict[str, Any]) -> str:
        """Propose ``change`` and vote it through (3 of 4): the deciding vote's outcome."""
        proposal = self.propose("metropole", change)
        assert self.vote("commune-a", proposal) == ACCEPTED
        return self.vote("commune-b", proposal)

    def proposed(self, change: dict[str, Any]) -> str:
        """The outcome of proposing ``change`` in the next block."""
        return self.run(self.propose_tx("metropole", change))

    def schedule(self) -> list[dict[str, int]]:
        return self.query("formats")["scheduled"]


# --- the rules ---------------------------------------------------------------------------------


def test_a_passed_schedule_moves_the_headers_to_the_new_format_at_its_height() -> None:
    chain = FormatChain()
    chain.skip_blocks(2)
    target = chain.height + 6
    assert chain.decide(schedule(2, target)) == ACCEPTED
    assert chain.schedule() == [{"version": 2, "height": target}]
    assert chain.state.state_get(FORMATS_STATE_KEY) == encoding.pack([[2, target]])
    chain.skip_blocks(target - 1 - chain.height)
    assert all(header.format_version == 1 for header in chain.headers)
    chain.skip_blocks(2)
    first, second = chain.headers[target - 1], chain.headers[target]
    assert (first.format_version, second.format_version) == (2, 2)
    # The log covers the whole history: every transaction since block 1 (the proposal, votes).
    assert first.log_size == len(chain.leaves) == 3
    assert first.log_root == merkle.root(chain.leaves)


def test_the_proposal_and_its_passing_check_the_height_is_still_ahead() -> None:
    chain = FormatChain()
    chain.skip_blocks(3)
    assert chain.proposed(schedule(2, chain.height + 1)) == "format_height_passed"
    assert chain.proposed(schedule(2, 2)) == "format_height_passed"
    proposal = chain.propose("metropole", schedule(2, chain.height + 3))
    assert chain.vote("commune-a", proposal) == ACCEPTED
    chain.skip_blocks(1)
    # The deciding vote would come in the block of the height itself: refused, still open.
    assert chain.vote("commune-b", proposal) == "format_height_passed"
    assert chain.proposal(proposal)["status"] == "open"
    assert chain.schedule() == []


def test_the_new_format_must_be_later_than_the_one_in_force_and_every_scheduled_one() -> None:
    chain = FormatChain(genesis_format=2)
    assert chain.proposed(schedule(2, 50)) == "format_not_newer"
    assert chain.decide(schedule(4, 50)) == ACCEPTED
    assert chain.proposed(schedule(3, 60)) == "format_not_newer"
    assert chain.proposed(schedule(5, 40)) == "format_schedule_order"
    assert chain.proposed(schedule(5, 50)) == "format_schedule_order"
    assert chain.decide(schedule(5, 60)) == ACCEPTED
    assert chain.schedule() == [{"version": 4, "height": 50}, {"version": 5, "height": 60}]


def test_a_format_this_software_does_not_know_may_be_scheduled() -> None:
    chain = FormatChain()
    assert chain.decide(schedule(FORMAT_VERSION_MAX, 10**6)) == ACCEPTED
    assert chain.schedule() == [{"version": FORMAT_VERSION_MAX, "height": 10**6}]


def test_a_schedule_not_in_force_yet_is_moved_and_one_in_force_never_changes() -> None:
    chain = FormatChain()
    assert chain.decide(schedule(2, 100)) == ACCEPTED
    assert chain.decide(schedule(2, 12)) == ACCEPTED  # a mistake, moved earlier
    assert chain.schedule() == [{"version": 2, "height": 12}]
    chain.skip_blocks(12 - chain.height)
    assert chain.headers[-1].format_version == 2
    assert chain.proposed(schedule(2, 200)) == "format_not_newer"
    assert chain.decide(schedule(3, 300)) == ACCEPTED
    assert chain.decide(schedule(3, 250)) == ACCEPTED
    assert chain.schedule() == [{"version": 2, "height": 12}, {"version": 3, "height": 250}]


def test_the_schedule_holds_at_most_its_bound_of_entries() -> None:
    chain = FormatChain()
    full = [[version, 1000 + version] for version in range(2, 2 + FORMAT_SCHEDULE_ENTRIES_MAX)]
    for state in (chain.state, chain.replica_state):
        state.commit({FORMATS_STATE_KEY: encoding.pack(full)})
    chain.height += 1  # a block without a header: only the states matter here
    assert chain.proposed(schedule(100, 5000)) == "too_many_format_changes"
    last_version = full[-1][0]
    assert chain.decide(schedule(last_version, 4000)) == ACCEPTED  # moving one still works
    assert chain.schedule()[-1] == {"version": last_version, "height": 4000}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (schedule(1, 50), "change.format_version"),
        (schedule(FORMAT_VERSION_MAX + 1, 50), "change.format_version"),
        (schedule(True, 50), "change.format_version"),
        (schedule("2", 50), "change.format_version"),
        (schedule(2, 1), "change.height"),
        (schedule(2, 2**63), "change.height"),
        (schedule(2, None), "change.height"),
        ({"kind": "schedule_format", "format_version": 2}, "change.height"),
        ({**schedule(2, 50), "reason": "x"}, "change.reason"),
    ],
    ids=[
        "one",
        "too high",
        "bool",
        "text",
        "height 1",
        "height too high",
        "nil",
        "missing",
        "extra",
    ],
)
def test_malformed_schedules_are_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    chain = FormatChain()
    result = chain.execute(chain.propose_tx("metropole", change))
    [(_, rejection)] = result.rejected
    assert rejection.code == "invalid_arguments"
    assert rejection.reason.startswith(f"{field}:"), rejection.reason


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_a_chain_that_pins_membership_1_0_or_1_1_does_not_know_the_change(version: str) -> None:
    chain = FormatChain(membership_version=version)
    result = chain.execute(chain.propose_tx("metropole", schedule(2, 50)))
    [(_, rejection)] = result.rejected
    assert rejection.code == "invalid_arguments"
    assert rejection.reason.startswith("change.kind: expected one of"), rejection.reason
    assert "schedule_format" not in rejection.reason


# --- coexistence -------------------------------------------------------------------------------


def test_older_software_executes_the_scheduling_alike_and_refuses_block_h_asking_to_upgrade(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain = FormatChain()
    target = 8
    proposal = chain.propose("metropole", schedule(3, target))
    assert chain.vote("commune-a", proposal) == ACCEPTED
    deciding = chain.execute(chain.vote_tx("commune-b", proposal))
    block = chain.block_of(deciding)

    with monkeypatch.context() as older:
        older.setattr(contracts.engine, "HEADER_FORMATS", (1,))
        judged = chain.replica.process_proposal(chain.replica_state, block)
    assert judged.state_root == deciding.state_root == block.header.state_root
    chain.commit(deciding)
    chain.skip_blocks(target - 1 - chain.height)

    # Block H: this software does not know format 3 either; older software refuses alike.
    with pytest.raises(InvalidProposalError, match=r"header format 3 .*upgrade sceau"):
        chain.execute()
    monkeypatch.setattr(contracts.engine, "HEADER_FORMATS", (1,))
    with pytest.raises(
        InvalidProposalError, match=r"header format 3 .*it knows 1\): upgrade sceau"
    ):
        chain.execute()


def test_older_software_refuses_a_format_2_block_that_this_software_builds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    chain = FormatChain()
    assert chain.decide(schedule(2, 6)) == ACCEPTED
    chain.skip_blocks(5 - chain.height)
    at_h = chain.block_of(chain.execute())
    assert at_h.header.format_version == 2
    monkeypatch.setattr(contracts.engine, "HEADER_FORMATS", (1,))
    with pytest.raises(InvalidProposalError, match=r"block 6: .*header format 2.*upgrade sceau"):
        chain.replica.process_proposal(chain.replica_state, at_h)
