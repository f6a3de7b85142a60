"""Hostile input never crashes a replica: it is dropped and counted, and buffers stay bounded.

One replica (``m3`` of four: the primary of view 0 is m0, of view 1 m1) is driven directly with
``on_message``; the messages come from the consortium's real keys, from an outsider, or are
garbage. Every test names the counter (``replica.dropped``) its message must land in, and that
the replica did not act on it. Hypothesis throws random well-formed messages and random bytes
at it: ``on_message`` must never raise, and ``decode_message`` raises only the two decode errors.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consensus import buffer, catchup, normal, simapp, viewchange
from consensus import replica as replica_module
from consensus.actions import Broadcast, CommitBlock, ReportEvidence, ReportRejectedProposal, Send
from consensus.drops import DROP_REASONS, DropReason
from consensus.messages import (
    BLOCKS_PER_RESPONSE_MAX,
    BlockRequest,
    BlockResponse,
    CommitVote,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Status,
    ViewChange,
    decode_message,
    encode_message,
    message_size_bytes,
)
from consensus.replica import Replica, ReplicaConfig
from consensus.simapp import SimulatedApplication, note_transaction
from ledger import crypto, encoding
from ledger.devchain import LocalConsortium
from ledger.model import (
    U63_MAX,
    Block,
    CommitCertificate,
    ModelDecodeError,
    Transaction,
    quorum_size,
    sha256,
)

MEMBERS = ("m0", "m1", "m2", "m3")
UNDER_TEST = "m3"
CONSORTIUM = LocalConsortium.create([(m, f"Member {m}") for m in MEMBERS], seed=b"hostile")
GENESIS = CONSORTIUM.genesis
CHAIN_ID = GENESIS.chain_id
OUTSIDER_KEY = crypto.key_from_seed(sha256(b"outsider"))
CLIENT_KEY = crypto.key_from_seed(sha256(b"client"))
REPLICA_MODULES = (replica_module, normal, viewchange, catchup, buffer)
"""The modules of the replica state machine (consensus/replica.py and its parts)."""
CONFIG = ReplicaConfig(
    view_timeout_ticks=5,
    view_timeout_ticks_max=40,
    height_window=4,
    view_window=3,
    future_messages_per_sender_max=8,
    evidence_max=4,
    status_interval_ticks=10,
    retransmit_interval_ticks=4,
    fetch_timeout_ticks=4,
)
NOW_MS = GENESIS.created_at_ms + 60_000
SOME_HASH = sha256(b"some block")


def transaction(nonce: int) -> Transaction:
    """A valid client transaction for the simulated application."""
    return note_transaction(CLIENT_KEY, CHAIN_ID, nonce)


@functools.cache
def certified_chain(length: int = 3) -> tuple[tuple[Block, CommitCertificate], ...]:
    """``length`` blocks of one transaction each, proposed by m0 in view 0, certified."""
    return simapp.certified_chain(GENESIS, CLIENT_KEY, CONSORTIUM.certify, length)


class Bench:
    """The replica under test, with ``committed`` blocks of :func:`certified_chain` stored."""

    def __init__(self, *, committed: int = 0, config: ReplicaConfig = CONFIG) -> None:
        self.committed = committed
        self.app = SimulatedApplication(GENESIS, chain=list(certified_chain()[:committed]))
        self.replica = Replica(
            member_id=UNDER_TEST,
            key=CONSORTIUM.keys[UNDER_TEST],
            chain_id=CHAIN_ID,
            application=self.app,
            config=config,
        )
        self.replica.on_tick(NOW_MS)

    @property
    def height(self) -> int:
        return self.replica.height

    @property
    def dropped(self) -> dict[str, int]:
        return dict(self.replica.dropped)

    def buffered(self, sender: str) -> list[Any]:
        """The future messages of ``sender`` that the replica keeps, oldest first."""
        return [message for message, _ in self.replica._future.get(sender, ())]

    def receive(self, message: Any, *, sender: str | None = None) -> list[Any]:
        """Deliver ``message`` as coming from ``sender`` (default: the sender it names)."""
        return self.replica.on_message(sender or message.sender, message)

    def block(
        self, *, view: int = 0, proposer: str = "m0", nonce: int = 100, **header: Any
    ) -> Block:
        """A valid proposal for the next height (then ``header`` fields overwritten)."""
        proposer_app = SimulatedApplication(
            GENESIS, chain=list(certified_chain()[: self.committed])
        )
        proposer_app.submit(transaction(nonce))
        block = proposer_app.propose(
            height=self.height, view=view, timestamp_ms=NOW_MS, proposer=proposer
        )
        if header:
            block = block.model_copy(update={"header": block.header.model_copy(update=header)})
        return block

    def pre_prepare(
        self, block: Block | None = None, *, sender: str = "m0", view: int = 0
    ) -> PrePrepare:
        block = block or self.block(view=view, proposer=sender)
        return PrePrepare.sign(
            CONSORTIUM.keys[sender], CHAIN_ID, view=view, block=block, sender=sender
        )


def vote(
    kind: type[Prepare] | type[CommitVote],
    sender: str,
    *,
    height: int = 1,
    view: int = 0,
    block_hash: bytes = SOME_HASH,
    key: crypto.PrivateKey | None = None,
) -> Any:
    key = key or CONSORTIUM.keys[sender]
    return kind.sign(key, CHAIN_ID, height=height, view=view, block_hash=block_hash, sender=sender)


def prepared_certificate(
    block_hash: bytes,
    *,
    view: int = 0,
    signers: tuple[str, ...] = ("m0", "m1", "m2"),
    keys: dict[str, crypto.PrivateKey] | None = None,
) -> PreparedCertificate:
    """Prepare signatures of ``signers`` (with their own keys unless ``keys`` says otherwise)."""
    keys = keys or {}
    prepares = tuple(
        (signer, vote(Prepare, signer, view=view, block_hash=block_hash, key=keys.get(signer)))
        for signer in sorted(signers)
    )
    return PreparedCertificate(
        height=1,
        view=view,
        block_hash=block_hash,
        prepares=tuple((signer, prepare.signature) for signer, prepare in prepares),
    )


def broadcasts(actions: list[Any], kind: str) -> list[Any]:
    return [a.message for a in actions if isinstance(a, Broadcast) and a.message.kind == kind]


# --- who may speak ----------------------------------------------------------------------------


def test_a_message_from_a_non_member_is_dropped() -> None:
    bench = Bench()
    outsider_vote = vote(Prepare, "outsider", key=OUTSIDER_KEY)
    assert bench.receive(outsider_vote) == []
    # A peer may not speak as this replica either.
    assert bench.receive(vote(Prepare, UNDER_TEST)) == []
    assert bench.dropped == {"not_a_member": 2}


def test_a_sender_field_that_is_not_the_transport_peer_is_dropped() -> None:
    bench = Bench()
    assert bench.receive(vote(Prepare, "m2"), sender="m1") == []
    assert bench.receive(Status(height=0, certificate=None, sender="m0"), sender="m1") == []
    assert bench.dropped == {"sender_mismatch": 2}


def test_bad_signatures_are_dropped_and_not_counted() -> None:
    bench = Bench()
    block = bench.block()
    signed_by_another = vote(Prepare, "m1", block_hash=block.block_hash, key=CONSORTIUM.keys["m2"])
    zero = CommitVote(
        height=1, view=0, block_hash=block.block_hash, sender="m1", signature=bytes(64)
    )
    forged_proposal = PrePrepare.sign(
        CONSORTIUM.keys["m1"], CHAIN_ID, view=0, block=block, sender="m0"
    )
    for message in (signed_by_another, zero, forged_proposal):
        assert bench.receive(message) == []
    assert bench.dropped == {"bad_signature": 3}
    # The forged proposal was not taken: the genuine one is, and prepared on.
    actions = bench.receive(bench.pre_prepare(block))
    assert [m.block_hash for m in broadcasts(actions, "prepare")] == [block.block_hash]


def test_a_pre_prepare_from_another_than_the_primary_is_dropped() -> None:
    bench = Bench()
    assert bench.receive(bench.pre_prepare(sender="m2", view=0)) == []
    assert bench.dropped == {"not_primary": 1}


# --- proposals that are not valid -------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ({"chain_id": sha256(b"another consortium")}, "chain_id of another consortium"),
        ({"prev_hash": sha256(b"elsewhere")}, "prev_hash is not the tip"),
        ({"timestamp_ms": GENESIS.created_at_ms}, "timestamp not after the parent's"),
        ({"timestamp_ms": NOW_MS + CONFIG.timestamp_drift_ms_max + 1}, "timestamp too far"),
        ({"members_hash": sha256(b"other members")}, "members_hash is not the member set"),
        ({"proposer": "m1"}, "view or proposer does not match"),
        ({"view": 1}, "view or proposer does not match"),
        ({"state_root": sha256(b"other state")}, "state_root does not match"),
        ({"tx_root": sha256(b"other transactions")}, "tx_root does not match"),
    ],
)
def test_an_invalid_proposal_is_refused_and_reported(header: dict[str, Any], reason: str) -> None:
    bench = Bench()
    proposal = bench.pre_prepare(bench.block(**header))

    actions = bench.receive(proposal)

    assert bench.dropped == {"invalid_proposal": 1}
    (report,) = actions
    assert isinstance(report, ReportRejectedProposal)
    assert (report.height, report.view, report.proposer) == (1, 0, "m0")
    assert reason in report.reason
    assert bench.replica.record.prepare_hash is None


def test_a_proposal_is_judged_against_the_clock_the_driver_gives_with_it() -> None:
    # A driver whose ticks lag (its loop busy) hands the current time with the message: a
    # fresh proposal is then not refused against the stale clock of the last tick.
    later_ms = NOW_MS + CONFIG.timestamp_drift_ms_max + 1
    stale = Bench()
    assert stale.receive(stale.pre_prepare(stale.block(timestamp_ms=later_ms))) != []
    assert stale.dropped == {"invalid_proposal": 1}

    fresh = Bench()
    proposal = fresh.pre_prepare(fresh.block(timestamp_ms=later_ms))
    actions = fresh.replica.on_message("m0", proposal, now_ms=later_ms)
    assert fresh.dropped == {}
    assert [m.block_hash for m in broadcasts(actions, "prepare")] == [proposal.block.block_hash]


# --- windows ----------------------------------------------------------------------------------


def test_a_message_for_a_committed_height_is_dropped() -> None:
    bench = Bench(committed=2)
    assert bench.height == 3
    for height in (1, 2):
        assert bench.receive(vote(Prepare, "m1", height=height)) == []
        assert bench.receive(vote(CommitVote, "m1", height=height)) == []
    assert bench.dropped == {"old_height": 4}


def test_heights_beyond_the_window_are_dropped_those_within_are_buffered() -> None:
    bench = Bench()
    last_buffered = bench.height + CONFIG.height_window

    assert bench.receive(vote(Prepare, "m1", height=last_buffered)) == []
    assert bench.receive(vote(Prepare, "m1", height=last_buffered + 1)) == []
    assert bench.receive(vote(Prepare, "m1", height=U63_MAX)) == []

    assert bench.dropped == {"far_height": 2}
    assert [m.height for m in bench.buffered("m1")] == [last_buffered]


def test_views_beyond_the_window_are_dropped_those_within_are_buffered() -> None:
    bench = Bench()
    last_buffered = bench.replica.view + CONFIG.view_window

    assert bench.receive(vote(Prepare, "m1", view=last_buffered)) == []
    assert bench.receive(vote(Prepare, "m1", view=last_buffered + 1)) == []
    assert bench.receive(bench.pre_prepare(sender="m0", view=4 * (last_buffered + 1))) == []

    assert bench.dropped == {"far_view": 2}
    assert [m.view for m in bench.buffered("m1")] == [last_buffered]


def test_duplicates_count_once() -> None:
    bench = Bench()
    proposal = bench.pre_prepare()
    block_hash = proposal.block.block_hash
    bench.receive(proposal)
    assert bench.receive(proposal) == []
    prepare = vote(Prepare, "m1", block_hash=block_hash)
    bench.receive(prepare)
    assert bench.receive(prepare) == []

    assert bench.dropped == {"duplicate": 1}
    # m3's own prepare and m1's: m1's second copy did not make a third vote (a quorum).
    assert bench.replica._state.prepares.count(0, block_hash) == 2
    assert bench.replica.record.commit_hash is None

    view_change = ViewChange.sign(
        CONSORTIUM.keys["m1"], CHAIN_ID, height=1, view=1, prepared=None, sender="m1"
    )
    bench.receive(view_change)
    assert bench.receive(view_change) == []
    assert bench.dropped == {"duplicate": 2}


def test_an_equivocating_vote_is_evidence_and_is_not_counted() -> None:
    bench = Bench()
    proposal = bench.pre_prepare()
    block_hash = proposal.block.block_hash
    bench.receive(proposal)
    first = vote(Prepare, "m1", block_hash=block_hash)
    second = vote(Prepare, "m1", block_hash=SOME_HASH)
    bench.receive(first)

    actions = bench.receive(second)

    (evidence,) = actions
    assert isinstance(evidence, ReportEvidence)
    assert (evidence.member, evidence.first, evidence.second) == ("m1", block_hash, second)
    assert bench.dropped == {"equivocation": 1}
    assert bench.replica._state.prepares.count(0, SOME_HASH) == 0
    assert bench.replica._state.prepares.count(0, block_hash) == 2
    # m1's first vote still counts: with m0's, the replica is prepared.
    actions = bench.receive(vote(Prepare, "m0", block_hash=block_hash))
    assert [m.block_hash for m in broadcasts(actions, "commit")] == [block_hash]
    assert bench.replica.record.prepared.block_hash == block_hash


def test_an_equivocating_primary_is_evidence_and_its_second_block_is_ignored() -> None:
    bench = Bench()
    first = bench.pre_prepare(bench.block(nonce=1))
    second = bench.pre_prepare(bench.block(nonce=2))
    bench.receive(first)

    (evidence,) = bench.receive(second)

    assert isinstance(evidence, ReportEvidence)
    assert (evidence.member, evidence.first, evidence.second) == ("m0", first, second)
    assert bench.replica.record.prepare_hash == first.block.block_hash


def _time_out_into_view_one(bench: Bench) -> None:
    bench.app.submit(transaction(7))
    bench.replica.on_transactions()
    for tick in range(1, CONFIG.view_timeout_ticks + 1):
        bench.replica.on_tick(NOW_MS + tick)
    assert bench.replica.view == 1


def test_a_bare_pre_prepare_in_a_view_entered_by_view_change_is_dropped() -> None:
    bench = Bench()
    _time_out_into_view_one(bench)

    bare = bench.pre_prepare(sender="m1", view=1)  # m1 is the primary of view 1
    assert bench.receive(bare) == []

    assert bench.dropped == {"needs_new_view": 1}
    assert bench.replica.record.prepare_hash is None


def _invalid_certificates(block_hash: bytes) -> dict[str, PreparedCertificate]:
    return {
        "signed by the wrong keys": prepared_certificate(
            block_hash, keys=dict.fromkeys(("m0", "m1", "m2"), OUTSIDER_KEY)
        ),
        "one prepare short of a quorum": prepared_certificate(block_hash, signers=("m0", "m1")),
        "a non-member among the signers": prepared_certificate(
            block_hash, signers=("m0", "m1", "outsider"), keys={"outsider": OUTSIDER_KEY}
        ),
        "from the view it changes to": prepared_certificate(block_hash, view=1),
    }


@pytest.mark.parametrize("problem", list(_invalid_certificates(SOME_HASH)))
def test_a_view_change_with_an_invalid_prepared_certificate_is_dropped(problem: str) -> None:
    bench = Bench()
    certificate = _invalid_certificates(SOME_HASH)[problem]
    view_change = ViewChange.sign(
        CONSORTIUM.keys["m1"], CHAIN_ID, height=1, view=1, prepared=certificate, sender="m1"
    )

    assert bench.receive(view_change) == []

    assert bench.dropped == {"bad_view_change": 1}
    assert bench.replica._state.view_changes.get(1, {}) == {}


def test_a_new_view_from_another_than_the_primary_is_dropped() -> None:
    bench = Bench()
    changes = tuple(
        ViewChange.sign(CONSORTIUM.keys[m], CHAIN_ID, height=1, view=1, prepared=None, sender=m)
        for m in ("m0", "m1", "m2")
    )
    for sender, expected in (("m2", "bad_new_view"), ("m1", None)):
        new_view = NewView.sign(
            CONSORTIUM.keys[sender],
            CHAIN_ID,
            height=1,
            view=1,
            view_changes=changes,
            pre_prepare=bench.pre_prepare(sender=sender, view=1),
            sender=sender,
        )
        actions = bench.receive(new_view)
        if expected:
            assert actions == [] and bench.dropped == {expected: 1}
    # The genuine one (from m1) moves the replica to view 1 and it prepares the proposal.
    assert bench.replica.view == 1
    assert bench.replica.record.prepare_hash is not None


# --- catch-up ---------------------------------------------------------------------------------


def _forgeries() -> dict[str, tuple[Block, CommitCertificate]]:
    (first, certificate), (_, second_certificate) = certified_chain()[:2]
    forged_signatures = tuple((m, bytes(64)) for m, _ in certificate.signatures)
    return {
        "signatures that do not verify": (
            first,
            certificate.model_copy(update={"signatures": forged_signatures}),
        ),
        "the certificate of another block": (first, second_certificate),
        "fewer signers than a quorum": (
            first,
            CONSORTIUM.certify(first, signers=["m0", "m1"]),
        ),
        "a certificate of another view": (
            first,
            certificate.model_copy(update={"view": 1}),
        ),
        "a block altered under its certificate": (
            first.model_copy(
                update={"header": first.header.model_copy(update={"timestamp_ms": NOW_MS})}
            ),
            certificate,
        ),
    }


@pytest.mark.parametrize("forgery", list(_forgeries()))
def test_a_block_response_with_a_wrong_certificate_is_not_believed(forgery: str) -> None:
    bench = Bench()
    block, certificate = _forgeries()[forgery]

    actions = bench.receive(BlockResponse(blocks=((block, certificate),), sender="m1"))

    assert bench.dropped == {"bad_fetched_block": 1}
    assert not [a for a in actions if isinstance(a, CommitBlock)]
    assert bench.app.tip().height == 0

    # The genuine blocks, from another peer, commit.
    genuine = BlockResponse(blocks=certified_chain()[:1], sender="m2")
    (commit,) = [a for a in bench.receive(genuine) if isinstance(a, CommitBlock)]
    assert commit.block.block_hash == certified_chain()[0][0].block_hash


def test_a_block_response_never_exceeds_the_byte_bound() -> None:
    one_block = len(certified_chain()[0][0].to_bytes())
    bench = Bench(committed=3, config=ReplicaConfig(response_bytes_max=2 * one_block + 1))
    request = BlockRequest(from_height=1, to_height=3, sender="m1")

    (answer,) = bench.receive(request)

    assert isinstance(answer, Send) and answer.to == "m1"
    assert [block.height for block, _ in answer.message.blocks] == [1, 2]


def test_fetched_blocks_are_kept_only_within_one_response_of_the_tip() -> None:
    """Unsolicited or early blocks wait for their turn, but only up to tip + 1 + 64."""
    bench = Bench()
    window = BLOCKS_PER_RESPONSE_MAX

    def unchecked(height: int) -> tuple[Block, CommitCertificate]:
        header = certified_chain()[0][0].header.model_copy(update={"height": height})
        block = Block(header=header, transactions=certified_chain()[0][0].transactions)
        signatures = (("m0", bytes(64)),)
        certificate = CommitCertificate(
            height=height, view=0, block_hash=block.block_hash, signatures=signatures
        )
        return block, certificate

    heights = range(bench.height + 1, bench.height + 1 + window)  # all but the next height
    bench.receive(BlockResponse(blocks=tuple(unchecked(h) for h in heights), sender="m1"))
    beyond = bench.height + window + 1
    bench.receive(BlockResponse(blocks=(unchecked(beyond),), sender="m2"))

    assert sorted(bench.replica._fetched) == list(heights)
    assert len(bench.replica._fetched) == window
    assert beyond not in bench.replica._fetched


# --- bounded buffers --------------------------------------------------------------------------


def test_a_flood_of_future_messages_from_one_sender_is_bounded() -> None:
    bench = Bench()
    bound = CONFIG.future_messages_per_sender_max
    future = bench.replica._future
    flood = [
        vote(Prepare, "m1", height=height, view=view, block_hash=sha256(bytes([view])))
        for height in range(2, 2 + CONFIG.height_window)
        for view in range(8)
    ]
    assert len(flood) > 2 * bound

    for message in flood:
        assert bench.receive(message) == []
        assert len(future["m1"]) <= bound

    assert len(future["m1"]) == bound
    assert bench.dropped == {"future_buffer_full": len(flood) - bound}
    # The bound is per sender: another member's future message still finds room.
    bench.receive(vote(Prepare, "m2", height=2))
    assert len(future["m2"]) == 1


def test_a_future_message_that_does_not_verify_now_is_dropped_before_it_is_buffered() -> None:
    bench = Bench()
    later = bench.block().model_copy(
        update={"header": bench.block().header.model_copy(update={"height": 2})}
    )
    forged_vote = vote(Prepare, "m1", height=2, key=CONSORTIUM.keys["m2"])
    unsigned_vote = CommitVote(
        height=3, view=0, block_hash=SOME_HASH, sender="m1", signature=bytes(64)
    )
    forged_proposal = PrePrepare.sign(
        CONSORTIUM.keys["m1"], CHAIN_ID, view=0, block=later, sender="m0"
    )
    not_the_primary = PrePrepare.sign(
        CONSORTIUM.keys["m2"], CHAIN_ID, view=0, block=later, sender="m2"
    )
    future_view_by_another = bench.pre_prepare(sender="m2", view=1)  # m1 is the primary of view 1

    for message in (forged_vote, unsigned_vote, forged_proposal, not_the_primary):
        assert bench.receive(message) == []
    assert bench.receive(future_view_by_another) == []

    assert bench.dropped == {"bad_signature": 3, "not_primary": 2}
    assert bench.replica._future == {}
    # A genuine one is kept, to be handled when its height comes.
    genuine = PrePrepare.sign(CONSORTIUM.keys["m0"], CHAIN_ID, view=0, block=later, sender="m0")
    bench.receive(genuine)
    assert bench.buffered("m0") == [genuine]


def _big_proposal(height: int, transactions: int, *, first_nonce: int) -> PrePrepare:
    """m0's signed proposal at a future ``height``: content unchecked until then, only weighed."""
    block = certified_chain()[0][0]
    notes = tuple(transaction(first_nonce + index) for index in range(transactions))
    header = block.header.model_copy(update={"height": height, "tx_count": len(notes)})
    block = Block(header=header, transactions=notes)
    return PrePrepare.sign(CONSORTIUM.keys["m0"], CHAIN_ID, view=0, block=block, sender="m0")


def test_the_future_buffer_is_bounded_in_bytes_per_sender_oldest_first() -> None:
    config = dataclasses.replace(CONFIG, future_bytes_per_sender_max=40 * 1024)
    bench = Bench(config=config)
    proposals = [
        _big_proposal(h, 60, first_nonce=1000 * h) for h in range(2, 2 + config.height_window)
    ]
    size = message_size_bytes(proposals[0])
    assert 2 * size <= config.future_bytes_per_sender_max < 3 * size  # two fit, not three

    for proposal in proposals:
        assert bench.receive(proposal) == []
        assert bench.replica._future_bytes["m0"] <= config.future_bytes_per_sender_max

    assert bench.buffered("m0") == proposals[-2:]  # the newest kept, the oldest evicted
    assert bench.dropped == {"future_buffer_full": len(proposals) - 2}
    # One message larger than the whole budget is never kept, nor evicts anything.
    huge = _big_proposal(3, 200, first_nonce=10_000_000)
    assert message_size_bytes(huge) > config.future_bytes_per_sender_max
    bench.receive(huge)
    assert bench.dropped["future_message_too_large"] == 1
    assert bench.buffered("m0") == proposals[-2:]
    # Each sender has its own budget.
    bench.receive(vote(Prepare, "m1", height=2))
    assert len(bench.buffered("m1")) == 1


def test_the_default_byte_budget_holds_a_largest_proposal_and_its_votes() -> None:
    config = ReplicaConfig()
    largest_block_bytes = 12 * 1024 * 1024  # ConsensusParameters.block_bytes_max at most
    votes = 16 * len(vote(CommitVote, "m1").to_bytes())
    assert config.future_bytes_per_sender_max >= largest_block_bytes + 2 * 1024 + votes


def test_the_weight_of_a_message_is_at_least_its_encoded_size() -> None:
    bench = Bench()
    proposal = _big_proposal(2, 30, first_nonce=500)
    status = Status(height=1, certificate=certified_chain()[0][1], sender="m1")
    response = BlockResponse(blocks=certified_chain()[:2], sender="m1")
    view_change = ViewChange.sign(
        CONSORTIUM.keys["m1"], CHAIN_ID, height=1, view=1, prepared=None, sender="m1"
    )
    new_view = NewView.sign(
        CONSORTIUM.keys["m1"],
        CHAIN_ID,
        height=1,
        view=1,
        view_changes=(view_change,),
        pre_prepare=bench.pre_prepare(sender="m1", view=1),
        sender="m1",
    )
    for message in (proposal, status, response, view_change, new_view, vote(Prepare, "m1")):
        assert (
            len(message.to_bytes())
            <= message_size_bytes(message)
            <= 2 * len(message.to_bytes()) + 4096
        )


class _CountingValidations(SimulatedApplication):
    """The simulated application, counting how many blocks it was asked to validate."""

    validations = 0

    def validate(self, block: Block) -> str | None:
        self.validations += 1
        return super().validate(block)


def test_a_primary_gets_one_proposal_per_view_executed_whatever_it_sends() -> None:
    bench = Bench()
    bench.app = app = _CountingValidations(GENESIS)
    bench.replica = Replica(
        member_id=UNDER_TEST,
        key=CONSORTIUM.keys[UNDER_TEST],
        chain_id=CHAIN_ID,
        application=app,
        config=CONFIG,
    )
    bench.replica.on_tick(NOW_MS)
    invalid = [
        bench.pre_prepare(bench.block(nonce=nonce, state_root=sha256(bytes([nonce]))))
        for nonce in range(1, 11)
    ]

    reports = [action for message in invalid for action in bench.receive(message)]
    reports += bench.receive(invalid[0])  # the first one again (a retransmission)

    assert app.validations == 1
    assert [type(report) for report in reports] == [ReportRejectedProposal, ReportEvidence]
    assert bench.dropped == {"invalid_proposal": 2, "equivocation": 1, "equivocation_repeated": 8}
    assert bench.replica.evidence[0][1:] == (invalid[0], invalid[1])
    # Even a valid block cannot follow in that view: its primary has equivocated.
    bench.receive(bench.pre_prepare(bench.block(nonce=99)))
    assert app.validations == 1
    assert bench.replica.record.prepare_hash is None


def test_evidence_is_bounded() -> None:
    bench = Bench()
    reports = 0
    for sender in ("m0", "m1", "m2"):
        for kind in (Prepare, CommitVote):
            bench.receive(vote(kind, sender, block_hash=sha256(b"first")))
            actions = bench.receive(vote(kind, sender, block_hash=sha256(b"second")))
            reports += sum(isinstance(action, ReportEvidence) for action in actions)

    assert reports == 6 > CONFIG.evidence_max
    assert bench.dropped["equivocation"] == 6
    assert len(bench.replica.evidence) == CONFIG.evidence_max
    assert bench.replica.evidence[-1][0] == "m2"  # the newest kept, the oldest let go


def test_own_messages_kept_for_retransmission_are_bounded() -> None:
    bench = Bench(config=ReplicaConfig(own_messages_max=1, retransmit_interval_ticks=1))
    proposal = bench.pre_prepare()
    bench.receive(proposal)  # m3 prepares
    for sender in ("m0", "m1"):  # prepared: m3 sends a commit vote, its second own message
        bench.receive(vote(Prepare, sender, block_hash=proposal.block.block_hash))

    retransmitted = bench.replica.on_tick(NOW_MS + 1)

    assert len(bench.replica._own_messages) == 1
    assert [a.message.kind for a in retransmitted if isinstance(a, Broadcast)] == ["commit"]


# --- random garbage ---------------------------------------------------------------------------

senders = st.sampled_from((*MEMBERS, "outsider"))
heights = st.sampled_from((1, 2, 3, 5, 6, U63_MAX))
views = st.sampled_from((0, 1, 2, 3, 4, 5, U63_MAX))
hashes = st.one_of(st.binary(min_size=32, max_size=32), st.just(SOME_HASH))
signature_bytes = st.binary(min_size=64, max_size=64)


def _blocks() -> st.SearchStrategy[Block]:
    chain_blocks = [block for block, _ in certified_chain()]
    return st.sampled_from(chain_blocks)


@st.composite
def signed_votes(draw: st.DrawFn, kind: type[Prepare] | type[CommitVote]) -> Any:
    sender = draw(senders)
    fields = {
        "height": draw(heights),
        "view": draw(views),
        "block_hash": draw(hashes),
        "sender": sender,
    }
    if draw(st.booleans()) and sender in MEMBERS:
        return kind.sign(CONSORTIUM.keys[sender], CHAIN_ID, **fields)
    return kind(**fields, signature=draw(signature_bytes))


@st.composite
def prepared_certificates(draw: st.DrawFn, height: int) -> PreparedCertificate:
    signers = sorted(draw(st.sets(senders, min_size=1, max_size=5)))
    return PreparedCertificate(
        height=height,
        view=draw(views),
        block_hash=draw(hashes),
        prepares=tuple((signer, draw(signature_bytes)) for signer in signers),
    )


@st.composite
def view_changes(draw: st.DrawFn) -> ViewChange:
    height = draw(heights)
    sender = draw(senders)
    prepared = draw(st.none() | prepared_certificates(height))
    fields = {"height": height, "view": draw(views), "prepared": prepared, "sender": sender}
    if sender in MEMBERS and draw(st.booleans()):
        return ViewChange.sign(CONSORTIUM.keys[sender], CHAIN_ID, **fields)
    return ViewChange(**fields, signature=draw(signature_bytes))


@st.composite
def pre_prepares(draw: st.DrawFn) -> PrePrepare:
    block = draw(_blocks())
    sender = draw(senders)
    view = draw(views)
    if sender in MEMBERS and draw(st.booleans()):
        return PrePrepare.sign(
            CONSORTIUM.keys[sender], CHAIN_ID, view=view, block=block, sender=sender
        )
    return PrePrepare(
        height=block.height, view=view, block=block, sender=sender, signature=draw(signature_bytes)
    )


@st.composite
def commit_certificates(draw: st.DrawFn) -> CommitCertificate:
    signers = sorted(draw(st.sets(senders, min_size=1, max_size=5)))
    return CommitCertificate(
        height=draw(heights),
        view=draw(views),
        block_hash=draw(hashes),
        signatures=tuple((signer, draw(signature_bytes)) for signer in signers),
    )


@st.composite
def new_views(draw: st.DrawFn) -> NewView:
    sender = draw(senders)
    fields = {
        "height": draw(heights),
        "view": draw(views),
        "view_changes": tuple(draw(st.lists(view_changes(), min_size=1, max_size=4))),
        "pre_prepare": draw(pre_prepares()),
        "sender": sender,
    }
    if sender in MEMBERS and draw(st.booleans()):
        return NewView.sign(CONSORTIUM.keys[sender], CHAIN_ID, **fields)
    return NewView(**fields, signature=draw(signature_bytes))


@st.composite
def block_requests(draw: st.DrawFn) -> BlockRequest:
    first = draw(st.integers(1, 70))
    return BlockRequest(
        from_height=first, to_height=first + draw(st.integers(0, 63)), sender=draw(senders)
    )


@st.composite
def block_responses(draw: st.DrawFn) -> BlockResponse:
    chain = certified_chain()
    entries = draw(
        st.lists(
            st.tuples(
                _blocks(), st.one_of(st.sampled_from([c for _, c in chain]), commit_certificates())
            ),
            max_size=3,
        )
    )
    return BlockResponse(blocks=tuple(entries), sender=draw(senders))


statuses = st.builds(
    Status,
    height=st.sampled_from((0, 1, 2, 3, 40, U63_MAX)),
    certificate=st.none()
    | commit_certificates()
    | st.sampled_from([c for _, c in certified_chain()]),
    sender=senders,
)
messages = st.one_of(
    signed_votes(Prepare),
    signed_votes(CommitVote),
    pre_prepares(),
    view_changes(),
    new_views(),
    statuses,
    block_requests(),
    block_responses(),
)


def _check_bounds(replica: Replica) -> None:
    for sender, queue in replica._future.items():
        assert len(queue) <= replica.config.future_messages_per_sender_max
        assert sum(size for _, size in queue) == replica._future_bytes[sender]
        assert replica._future_bytes[sender] <= replica.config.future_bytes_per_sender_max
    assert len(replica.evidence) <= replica.config.evidence_max
    assert len(replica._own_messages) <= replica.config.own_messages_max


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    committed=st.integers(0, 1),
    script=st.lists(st.tuples(messages, st.booleans(), st.booleans()), min_size=1, max_size=12),
)
def test_random_messages_never_make_the_replica_raise(
    committed: int, script: list[tuple[Any, bool, bool]]
) -> None:
    bench = Bench(committed=committed)
    for tick, (message, honest_transport, then_tick) in enumerate(script, 1):
        # Usually the transport peer is the named sender, so the message gets past that check.
        sender = message.sender if honest_transport else "m1"
        # Through the wire format, as a peer would send it.
        decoded = decode_message(encode_message(message))
        actions = bench.receive(decoded, sender=sender)
        if then_tick:
            actions += bench.replica.on_tick(NOW_MS + tick)
        for action in actions:
            assert not isinstance(action, CommitBlock) or action.certificate.block_hash == (
                action.block.block_hash
            )
        _check_bounds(bench.replica)
        if any(isinstance(action, CommitBlock) for action in actions):
            return  # the driver would now append the block; nothing more to check here


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=200))
def test_random_bytes_decode_to_a_message_or_a_decode_error(data: bytes) -> None:
    try:
        message = decode_message(data)
    except (encoding.EncodingError, ModelDecodeError):
        return
    bench = Bench()
    bench.receive(message, sender=getattr(message, "sender", "m1"))


@settings(max_examples=150, deadline=None)
@given(
    message=messages, position=st.integers(0, 10_000), byte=st.integers(0, 255), cut=st.booleans()
)
def test_corrupted_frames_decode_to_a_message_or_a_decode_error(
    message: Any, position: int, byte: int, cut: bool
) -> None:
    data = bytearray(encode_message(message))
    position %= len(data)
    if cut:
        del data[position:]
    else:
        data[position] = byte
    bench = Bench()
    try:
        decoded = decode_message(bytes(data))
    except (encoding.EncodingError, ModelDecodeError):
        return
    bench.receive(decoded, sender=decoded.sender)
    _check_bounds(bench.replica)


def test_a_quorum_is_three_of_four_here() -> None:
    """The arithmetic the tests above rely on (m3 prepares with its own vote and two more)."""
    assert quorum_size(len(MEMBERS)) == 3


def test_drop_reasons_are_one_fixed_table() -> None:
    """The reasons are metric labels: one enum, each member described in DROP_REASONS and
    counted somewhere in the replica's modules, always by name (never a bare string)."""
    sources = "".join(inspect.getsource(module) for module in REPLICA_MODULES)
    used = set(re.findall(r"DropReason\.([A-Z_]+)\b", sources))
    assert used == {reason.name for reason in DropReason}
    assert not re.search(r'_drop\(\s*["\']', sources), "a drop reason as a string literal"
    assert set(DROP_REASONS) == set(DropReason)
    assert all(DROP_REASONS[reason] for reason in DropReason)
    assert all(str(reason) == reason.name.lower() for reason in DropReason)


def test_dropped_counts_by_label_string() -> None:
    """The counter's keys are the label strings themselves (metrics and logs print them)."""
    bench = Bench()
    bench.receive(Status(height=0, certificate=None, sender="m0"), sender="stranger")
    assert bench.dropped == {"not_a_member": 1}
    assert all(type(reason) is str for reason in bench.replica.dropped)
