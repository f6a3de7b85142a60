"""The one action executor and the one invariant checker that every driver shares.

The node, the simulator, the scenario harness and the fuzz harness each implement the
executor's port (:class:`consensus.driver.ActionPort`); the simulator and the harnesses hand
what their replicas do to :class:`consensus.invariants.InvariantChecker`. These tests pin the
execution contract of :mod:`consensus.actions` and what the checker reports.
"""

from __future__ import annotations

from typing import Any

import pytest

from consensus.actions import (
    Action,
    Broadcast,
    CommitBlock,
    FetchBlocks,
    PersistSafety,
    ReportEvidence,
    ReportRejectedProposal,
    Send,
)
from consensus.driver import execute_actions
from consensus.invariants import InvariantChecker
from consensus.messages import BlockRequest, CommitVote, Prepare, Status
from consensus.safety import SafetyRecord
from consensus.simapp import certified_chain
from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import Block, CommitCertificate, sha256

CONSORTIUM = LocalConsortium.create([(m, f"Member {m}") for m in ("m0", "m1", "m2", "m3")])
GENESIS = CONSORTIUM.genesis
CHAIN_ID = GENESIS.chain_id
CLIENT_KEY = crypto.key_from_seed(sha256(b"driver test client"))
CHAIN = certified_chain(GENESIS, CLIENT_KEY, CONSORTIUM.certify, 2)
OTHER_CHAIN = certified_chain(
    GENESIS, crypto.key_from_seed(sha256(b"another client")), CONSORTIUM.certify, 1
)


class RecordingPort:
    """A port that writes down what it is asked, and answers a commit with ``follow_up``."""

    def __init__(self, follow_up: list[Action] | None = None) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.follow_up = follow_up or []

    def persist_safety(self, record: SafetyRecord) -> None:
        self.calls.append(("persist", record.view))

    def send(self, to: str, message: Any) -> None:
        self.calls.append(("send", to))

    def broadcast(self, message: Any) -> None:
        self.calls.append(("broadcast", message.height))

    def fetch_blocks(self, peer: str, request: BlockRequest) -> None:
        self.calls.append(("fetch", peer))

    def commit_block(self, block: Block, certificate: CommitCertificate) -> list[Action]:
        self.calls.append(("commit", block.height))
        follow_up, self.follow_up = self.follow_up, []
        return follow_up

    def report_rejected_proposal(self, report: ReportRejectedProposal) -> None:
        self.calls.append(("rejected", report.reason))

    def report_evidence(self, report: ReportEvidence) -> None:
        self.calls.append(("evidence", report.member))


def status(height: int) -> Status:
    return Status(height=height, certificate=None, sender="m0")


def vote(kind: type, *, height: int = 1, view: int = 0, block_hash: bytes = bytes(32)) -> Any:
    return kind.sign(
        CONSORTIUM.keys["m1"],
        CHAIN_ID,
        height=height,
        view=view,
        block_hash=block_hash,
        sender="m1",
    )


# --- the executor -----------------------------------------------------------------------------


def test_actions_run_in_order_and_a_commit_follow_up_runs_before_the_rest() -> None:
    block, certificate = CHAIN[0]
    port = RecordingPort(follow_up=[Broadcast(message=status(2)), Send(to="m3", message=None)])
    actions: list[Action] = [
        PersistSafety(record=SafetyRecord(height=1, view=0)),
        CommitBlock(block=block, certificate=certificate),
        Broadcast(message=status(1)),
        FetchBlocks(peer="m2", request=BlockRequest(from_height=1, to_height=2, sender="m0")),
        ReportRejectedProposal(height=2, view=0, proposer="m1", reason="bad_block"),
        ReportEvidence(member="m1", first=None, second=None),
    ]

    assert execute_actions(port, actions) is True

    assert port.calls == [
        ("persist", 0),
        ("commit", 1),
        ("broadcast", 2),
        ("send", "m3"),
        ("broadcast", 1),
        ("fetch", "m2"),
        ("rejected", "bad_block"),
        ("evidence", "m1"),
    ]


def test_the_hook_before_each_action_can_stop_the_execution_as_a_crash_would() -> None:
    port = RecordingPort()
    actions: list[Action] = [Broadcast(message=status(height)) for height in (1, 2, 3)]
    allowed = iter([True, True, False])

    assert execute_actions(port, actions, before_action=lambda: next(allowed)) is False

    assert port.calls == [("broadcast", 1), ("broadcast", 2)]


def test_an_object_that_is_not_an_action_is_a_bug() -> None:
    with pytest.raises(AssertionError, match="unknown action"):
        execute_actions(RecordingPort(), [status(1)])  # type: ignore[list-item]


# --- the invariant checker --------------------------------------------------------------------


def checker() -> tuple[InvariantChecker, list[str]]:
    reports: list[str] = []
    return InvariantChecker(CHAIN_ID, report=reports.append), reports


def commit(checker: InvariantChecker, process: str, block: Block, certificate: Any) -> None:
    checker.check_commit(
        process,
        block,
        certificate,
        members=GENESIS.members,
        chain_length=block.height - 1,
        is_committed=lambda tx_id: False,
    )


def test_a_second_different_vote_for_one_height_view_and_kind_is_reported() -> None:
    invariants, reports = checker()
    invariants.observe_signed("m1", vote(Prepare, block_hash=bytes(32)))
    invariants.observe_signed("m1", vote(Prepare, block_hash=bytes(32)))  # a retransmission
    invariants.observe_signed("m1", vote(CommitVote, block_hash=bytes(32)))
    assert reports == []

    invariants.observe_signed("m1", vote(Prepare, block_hash=b"\x01" * 32))

    assert reports == ["m1 signed two different prepare at height 1 view 0"]


def test_a_prepare_in_an_earlier_view_is_reported_as_going_back() -> None:
    invariants, reports = checker()
    invariants.observe_signed("m1", vote(Prepare, view=2))
    invariants.observe_signed("m1", vote(Prepare, view=1))
    assert reports == ["m1 went back from view 2 to 1 at height 1"]


def test_a_replica_in_a_lower_view_than_before_is_reported_even_across_a_restart() -> None:
    invariants, reports = checker()
    invariants.observe_view("m1", 3)
    invariants.check_restart("m1", height=1, view=2, blocks_stored=0, persisted_view=3)
    invariants.observe_view("m1", 2)
    assert reports == [
        "durability: m1 restarted in view 2 below its persisted view 3",
        "m1 went back from view 3 to 2",
    ]


def test_a_restart_that_lost_blocks_is_reported() -> None:
    invariants, reports = checker()
    invariants.check_restart("m1", height=2, view=0, blocks_stored=3, persisted_view=None)
    assert reports == ["durability: m1 restarted at height 2 with 3 blocks stored"]


def test_two_blocks_committed_at_one_height_break_agreement() -> None:
    invariants, reports = checker()
    commit(invariants, "m0", *CHAIN[0])
    commit(invariants, "m1", *CHAIN[0])
    assert reports == []

    commit(invariants, "m2", *OTHER_CHAIN[0])

    assert "agreement: two blocks committed at height 1" in reports


def test_a_commit_under_a_forged_certificate_or_out_of_order_is_reported() -> None:
    invariants, reports = checker()
    block, certificate = CHAIN[1]
    forged = certificate.model_copy(update={"signatures": (("m0", bytes(64)),)})
    invariants.check_commit(
        "m0",
        block,
        forged,
        members=GENESIS.members,
        chain_length=0,
        is_committed=lambda tx_id: False,
    )
    assert reports[0].startswith("m0 committed height 2 with an invalid certificate")
    assert reports[-1] == "m0 committed height 2 on a chain of 0"


def test_an_unsubmitted_or_repeated_transaction_breaks_validity() -> None:
    reports: list[str] = []
    invariants = InvariantChecker(CHAIN_ID, report=reports.append, submitted=set())
    block, certificate = CHAIN[0]
    invariants.check_commit(
        "m0",
        block,
        certificate,
        members=GENESIS.members,
        chain_length=0,
        is_committed=lambda tx_id: True,
    )
    assert reports == [
        "validity: height 1 holds a transaction nobody submitted",
        "validity: a transaction committed twice (height 1)",
    ]


def test_chains_that_differ_break_total_order() -> None:
    invariants, reports = checker()
    invariants.check_total_order([CHAIN[:1], CHAIN, ()])
    assert reports == []
    invariants.check_total_order([CHAIN, OTHER_CHAIN])
    assert reports == ["total order: chains differ at height 1"]
