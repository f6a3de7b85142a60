"""PBFT scenarios as short scripts over a scripted cluster, read off their message traces.

Each test drives real replicas through :class:`consensus_harness.Cluster` (submit, tick,
deliver, drop, partition, crash, restart) and asserts heights, views, certificates and the key
lines of the trace. The harness checks agreement, certificate validity and "never sign two
things, never go back a view" after every action; a failing test prints the whole trace.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from consensus_harness import Cluster, short

from consensus.messages import NewView, Prepare, PrePrepare
from consensus.quorum import fault_tolerance, quorum_size, weak_quorum_size
from ledger.model import CommitCertificate, Member, members_hash

MakeCluster = Callable[..., Cluster]


@pytest.fixture
def make_cluster() -> Iterator[MakeCluster]:
    """Build clusters; their traces are printed, and pytest shows them when a test fails."""
    clusters: list[Cluster] = []

    def make(members: int = 4, **options: Any) -> Cluster:
        cluster = Cluster(members, **options)
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        print(f"--- trace of a {len(cluster.genesis.members)}-member cluster ---")
        print(cluster.format_trace(numbered=True))


def kind_is(*kinds: str) -> Callable[[Any, str, str], bool]:
    return lambda message, sender, recipient: message.kind in kinds


def certificate_at(cluster: Cluster, member: str, height: int) -> CommitCertificate:
    return cluster.chain(member)[height - 1][1]


def block_hash_at(cluster: Cluster, member: str, height: int) -> bytes:
    return cluster.chain(member)[height - 1][0].block_hash


def assert_same_chain(cluster: Cluster, members: list[str]) -> None:
    reference = [block.block_hash for block, _ in cluster.chain(members[0])]
    for member in members[1:]:
        assert [block.block_hash for block, _ in cluster.chain(member)] == reference, member


# --- normal case ------------------------------------------------------------------------------


def test_one_transaction_commits_on_every_member_in_view_zero(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)

    (transaction,) = cluster.submit(1)
    cluster.deliver_all()

    assert cluster.heights() == {"m0": 1, "m1": 1, "m2": 1, "m3": 1}
    assert cluster.views() == {"m0": 0, "m1": 0, "m2": 0, "m3": 0}
    block_hash = block_hash_at(cluster, "m0", 1)
    cluster.expect(
        f"m0 -> *: pre_prepare h=1 v=0 {short(block_hash)}",
        f"m1 -> *: prepare h=1 v=0 {short(block_hash)}",
        f"m1 -> *: commit h=1 v=0 {short(block_hash)}",
        f"m1: COMMIT h=1 v=0 (3 signatures) {short(block_hash)}",
    )
    for member in ("m0", "m1", "m2", "m3"):
        block, certificate = cluster.chain(member)[0]
        assert block.block_hash == block_hash
        assert [tx.tx_id for tx in block.transactions] == [transaction.tx_id]
        assert certificate.view == 0 and certificate.block_hash == block_hash
        signers = [signer for signer, _ in certificate.signatures]
        assert len(set(signers)) == len(signers) >= 3
        certificate.verify(cluster.chain_id, cluster.genesis.members)  # raises if invalid


def test_heights_follow_one_another_under_the_same_primary(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)

    for _ in range(3):
        cluster.submit(2)
        cluster.deliver_all()

    assert cluster.heights() == {"m0": 3, "m1": 3, "m2": 3, "m3": 3}
    assert_same_chain(cluster, ["m0", "m1", "m2", "m3"])
    chain = cluster.chain("m2")
    # Views are global and nothing failed: view 0 and its primary m0 for every height.
    assert [(block.header.proposer, block.header.view) for block, _ in chain] == [("m0", 0)] * 3
    assert [block.header.prev_hash for block, _ in chain[1:]] == [
        block.block_hash for block, _ in chain[:-1]
    ]
    cluster.expect("m0 -> *: pre_prepare h=1 v=0", "m0 -> *: pre_prepare h=2 v=0")
    cluster.expect("m0 -> *: pre_prepare h=3 v=0", "m3: COMMIT h=3 v=0")
    assert not cluster.lines("VIEW-CHANGE")


def test_a_block_is_in_progress_from_its_proposal_to_its_commit(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    assert not any(cluster.replica(member).block_in_progress for member in cluster.live())

    cluster.submit(1)  # the primary proposes at once; the others have not heard of it yet
    assert cluster.replica("m0").block_in_progress
    assert not cluster.replica("m1").block_in_progress
    cluster.deliver(lambda message, sender, recipient: recipient == "m1", limit=1)
    assert cluster.replica("m1").block_in_progress

    cluster.deliver_all()
    assert cluster.heights() == {"m0": 1, "m1": 1, "m2": 1, "m3": 1}
    assert not any(cluster.replica(member).block_in_progress for member in cluster.live())


# --- quorum sizes -----------------------------------------------------------------------------


@pytest.mark.parametrize(("members", "quorum"), [(4, 3), (5, 4), (6, 5), (7, 5)])
def test_quorum_is_n_minus_f(members: int, quorum: int) -> None:
    assert quorum_size(members) == members - (members - 1) // 3 == quorum
    assert weak_quorum_size(members) == fault_tolerance(members) + 1


@pytest.mark.parametrize("members", [4, 5, 6, 7])
def test_a_certificate_forms_with_exactly_a_quorum_alive(
    make_cluster: MakeCluster, members: int
) -> None:
    cluster = make_cluster(members)
    quorum = quorum_size(members)
    for index in range(quorum, members):  # the last f members are down
        cluster.crash(f"m{index}")

    cluster.submit(1)
    cluster.deliver_all()

    live = [f"m{index}" for index in range(quorum)]
    assert {member: cluster.heights()[member] for member in live} == dict.fromkeys(live, 1)
    for member in live:
        certificate = certificate_at(cluster, member, 1)
        assert sorted(signer for signer, _ in certificate.signatures) == live
        certificate.verify(cluster.chain_id, cluster.genesis.members)
    cluster.expect(f"m0: COMMIT h=1 v=0 ({quorum} signatures)")


@pytest.mark.parametrize("members", [4, 5, 6, 7])
def test_one_member_short_of_a_quorum_nothing_commits(
    make_cluster: MakeCluster, members: int
) -> None:
    cluster = make_cluster(members)
    quorum = quorum_size(members)
    for index in range(quorum - 1, members):
        cluster.crash(f"m{index}")

    cluster.submit(1)
    cluster.deliver_all()
    cluster.run(ticks=30)  # time for view changes: they cannot gather a quorum either

    assert set(cluster.heights().values()) == {0}
    assert not cluster.lines("COMMIT")
    cluster.expect("m0 -> *: prepare h=1 v=0", "m1: VIEW-CHANGE to v=1")


# --- view change ------------------------------------------------------------------------------


def test_view_change_without_a_prepared_block_proposes_a_fresh_one(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(4)
    cluster.crash("m0")  # the primary of view 0

    cluster.submit(1)
    cluster.tick(4)
    cluster.deliver_all()
    assert cluster.views() == {"m1": 0, "m2": 0, "m3": 0}  # the timeout is 5 ticks
    cluster.tick(1)
    cluster.deliver_all()

    assert cluster.views() == {"m1": 1, "m2": 1, "m3": 1}
    assert cluster.heights() == {"m0": 0, "m1": 1, "m2": 1, "m3": 1}
    block = cluster.chain("m1")[0][0]
    assert (block.header.proposer, block.header.view) == ("m1", 1)
    cluster.expect(
        "m1: VIEW-CHANGE to v=1",
        "m1 -> *: view_change h=1 v=1 prepared=none",
        "m3 -> *: view_change h=1 v=1 prepared=none",
        f"m1 -> *: new_view h=1 v=1 (3 view changes) proposes {short(block.block_hash)}",
        f"m2 -> *: prepare h=1 v=1 {short(block.block_hash)}",
        f"m3: COMMIT h=1 v=1 (3 signatures) {short(block.block_hash)}",
    )

    # Views are global: the primary of view 1 keeps proposing at the next heights.
    cluster.submit(1)
    cluster.deliver_all()
    assert cluster.heights() == {"m0": 0, "m1": 2, "m2": 2, "m3": 2}
    cluster.expect("m1 -> *: pre_prepare h=2 v=1", "m2: COMMIT h=2 v=1")


def _prepared_but_not_committed(cluster: Cluster) -> bytes:
    """m0 proposes B; m0, m1, m2 prepare it, m3 does not (no prepares reach it), and no commit
    vote of view 0 arrives anywhere. Then m0 crashes. Returns B's hash."""
    cluster.drop(lambda message, sender, recipient: message.kind == "commit" and message.view == 0)
    stop_prepares_to_m3 = cluster.drop(
        lambda message, sender, recipient: message.kind == "prepare" and recipient == "m3"
    )
    cluster.submit(1)
    cluster.deliver_all()
    stop_prepares_to_m3()
    (proposal,) = cluster.sent_messages("pre_prepare")
    block_hash = proposal.block.block_hash
    assert set(cluster.heights().values()) == {0}
    assert cluster.replica("m1").record.prepared.block_hash == block_hash
    assert cluster.replica("m2").record.prepared.block_hash == block_hash
    assert cluster.replica("m3").record.prepared is None
    cluster.crash("m0")
    return block_hash


def test_view_change_keeps_the_prepared_block(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    prepared = _prepared_but_not_committed(cluster)

    cluster.tick(5)
    cluster.deliver_all()

    assert cluster.views() == {"m1": 1, "m2": 1, "m3": 1}
    assert cluster.heights() == {"m0": 0, "m1": 1, "m2": 1, "m3": 1}
    (new_view,) = cluster.sent_messages("new_view")
    assert new_view.pre_prepare.block.block_hash == prepared  # re-proposed, never replaced
    for member in ("m1", "m2", "m3"):
        block, certificate = cluster.chain(member)[0]
        assert block.block_hash == prepared and certificate.view == 1
        certificate.verify(cluster.chain_id, cluster.genesis.members)
    cluster.expect(
        f"m1 -> *: view_change h=1 v=1 prepared=v0:{short(prepared)}",
        "m3 -> *: view_change h=1 v=1 prepared=none",
        f"m1 -> *: new_view h=1 v=1 (3 view changes) proposes {short(prepared)}",
        f"m3 -> *: prepare h=1 v=1 {short(prepared)}",
        f"m3: COMMIT h=1 v=1 (3 signatures) {short(prepared)}",
    )


def test_a_new_view_that_does_not_keep_the_prepared_block_is_refused(
    make_cluster: MakeCluster,
) -> None:
    cluster = make_cluster(4)
    prepared = _prepared_but_not_committed(cluster)
    cluster.tick(5)
    cluster.deliver(kind_is("view_change"))  # m1, primary of view 1, now sends its NewView
    (genuine,) = cluster.sent_messages("new_view")
    view_changes = genuine.view_changes
    assert sum(vc.prepared is not None for vc in view_changes) >= 1

    # The primary's key, a valid fresh block, the same view changes: still not justified.
    other_block = cluster.app("m1").propose(
        height=1, view=1, timestamp_ms=cluster.now_ms, proposer="m1"
    )
    assert other_block.block_hash != prepared
    replacing = NewView.sign(
        cluster.key("m1"),
        cluster.chain_id,
        height=1,
        view=1,
        view_changes=view_changes,
        pre_prepare=PrePrepare.sign(
            cluster.key("m1"), cluster.chain_id, view=1, block=other_block, sender="m1"
        ),
        sender="m1",
    )
    # Nor may the primary strip the prepared certificates out of the view changes it carries.
    stripped = replacing.model_copy(
        update={
            "view_changes": tuple(vc.model_copy(update={"prepared": None}) for vc in view_changes)
        }
    )
    stripped = NewView.sign(cluster.key("m1"), cluster.chain_id, **_fields(stripped))
    for forged in (replacing, stripped):
        cluster.send_as("m1", forged, to=["m2", "m3"])
        cluster.deliver(lambda message, sender, recipient, forged=forged: message is forged)

    for member in ("m2", "m3"):
        assert cluster.dropped(member)["bad_new_view"] == 2
        assert cluster.heights()[member] == 0
        assert not [
            vote
            for vote in cluster.sent_messages("prepare", member)
            if vote.block_hash == other_block.block_hash
        ]

    cluster.deliver_all()  # the genuine NewView
    assert cluster.heights() == {"m0": 0, "m1": 1, "m2": 1, "m3": 1}
    assert block_hash_at(cluster, "m2", 1) == prepared


def _fields(message: NewView) -> dict[str, Any]:
    return {name: getattr(message, name) for name in NewView.model_fields if name != "signature"}


def test_join_rule_pulls_a_replica_into_a_higher_view(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    cluster.crash("m0")
    cluster.submit(1, to=["m1", "m2"])  # m3 has no pending work: its timer never runs

    cluster.tick(5, members=["m1", "m2"])
    assert cluster.views() == {"m1": 1, "m2": 1, "m3": 0}
    cluster.deliver(lambda message, sender, recipient: sender == "m1" and recipient == "m3")
    assert cluster.views()["m3"] == 0  # f = 1 view change: could be a byzantine one
    cluster.deliver(lambda message, sender, recipient: sender == "m2" and recipient == "m3")
    assert cluster.views()["m3"] == 1  # f + 1: one of them is correct, join at once

    cluster.deliver_all()
    assert cluster.heights() == {"m0": 0, "m1": 1, "m2": 1, "m3": 1}
    cluster.expect(
        "m1 -> *: view_change h=1 v=1",
        "m2 -> *: view_change h=1 v=1",
        "m3: VIEW-CHANGE to v=1",
        "m3 -> *: view_change h=1 v=1",
        "m1 -> *: new_view h=1 v=1 (3 view changes)",
        "m3: COMMIT h=1 v=1",
    )
    assert cluster.replica("m3").ticks == 1  # only the boot tick: its timer never fired


# --- catch-up ---------------------------------------------------------------------------------


def _commit_heights_without(cluster: Cluster, absent: str, heights: int) -> None:
    present = [member for member in cluster.nodes if member != absent]
    for _ in range(heights):
        cluster.submit(1, to=present)
        cluster.deliver_all()


def test_partitioned_member_fetches_the_missing_blocks(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    cluster.partition({"m0", "m1", "m2"}, {"m3"})
    _commit_heights_without(cluster, "m3", heights=3)
    assert cluster.heights() == {"m0": 3, "m1": 3, "m2": 3, "m3": 0}

    cluster.heal()
    cluster.run(ticks=10)  # a status round

    assert cluster.heights() == {"m0": 3, "m1": 3, "m2": 3, "m3": 3}
    assert_same_chain(cluster, ["m0", "m1", "m2", "m3"])
    cluster.expect(
        "HEAL",
        "m0 -> *: status h=3",
        "m3 -> m0: block_request 1..3",
        "m0 -> m3: block_response 1..3 (3 blocks)",
        "m3: COMMIT h=1 v=0",
        "m3: COMMIT h=3 v=0",
    )
    # The caught-up member takes part in the next height.
    cluster.submit(1)
    cluster.deliver_all()
    assert set(cluster.heights().values()) == {4}
    cluster.expect("m3 -> *: prepare h=4 v=0")


def test_restarted_member_catches_up_from_its_store(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    cluster.submit(1)
    cluster.deliver_all()
    cluster.crash("m3")
    _commit_heights_without(cluster, "m3", heights=3)

    cluster.restart("m3")
    assert cluster.replica("m3").height == 2  # its store kept height 1
    cluster.run(ticks=10)

    assert cluster.heights() == {"m0": 4, "m1": 4, "m2": 4, "m3": 4}
    assert_same_chain(cluster, ["m0", "m1", "m2", "m3"])
    cluster.expect("RESTART m3 from height 1", "m3 -> m0: block_request 2..4", "m3: COMMIT h=4")
    for block, certificate in cluster.chain("m3"):
        certificate.verify(cluster.chain_id, cluster.genesis.members)
        assert certificate.block_hash == block.block_hash


def test_a_member_behind_does_not_change_views_while_it_catches_up(
    make_cluster: MakeCluster,
) -> None:
    """A restarted member with work pending knows from a certified status that the others
    moved on: its view has not failed, so its timer waits while it fetches (seen on a real
    devnet: a member catching up slowly timed out alone into views nobody else was in, and
    the others later needed it for a quorum of view changes)."""
    cluster = make_cluster(4)
    cluster.crash("m3")
    _commit_heights_without(cluster, "m3", heights=3)
    cluster.restart("m3")
    # Slow catch-up: every block response to m3 is lost for a while.
    stop = cluster.drop(lambda message, sender, recipient: message.kind == "block_response")
    cluster.run(ticks=10)  # a status round: m3 learns that height 3 is certified
    assert cluster.heights()["m3"] == 0

    (pending,) = cluster.submit(1, to=["m3"])  # work: its view timer has something to wait for
    cluster.run(ticks=60)  # far beyond the view timeout (5 ticks)

    assert cluster.replica("m3").view == 0
    assert not cluster.lines("m3 -> *: view_change")
    stop()
    cluster.submit(pending, to=["m0", "m1", "m2"])  # gossip, which the harness leaves to us
    cluster.run(ticks=30)
    assert cluster.heights() == {"m0": 4, "m1": 4, "m2": 4, "m3": 4}
    assert set(cluster.views().values()) == {0}


def test_forged_certificates_from_a_peer_are_not_believed(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    cluster.partition({"m0", "m1", "m2"}, {"m3"})
    _commit_heights_without(cluster, "m3", heights=3)
    cluster.heal()
    cluster.lie_about_blocks("m1")
    # m3 hears only m1's (genuine) status, so it asks the liar first.
    cluster.drop(
        lambda message, sender, recipient: (
            message.kind == "status" and recipient == "m3" and sender != "m1"
        )
    )

    cluster.run(ticks=10)

    assert cluster.dropped("m3")["bad_fetched_block"] == 1
    assert cluster.heights()["m3"] == 3
    assert_same_chain(cluster, ["m0", "m1", "m3"])
    cluster.expect(
        "m3 -> m1: block_request 1..3",
        "m1 -> m3: block_response 1..3 (3 blocks) (forged certificates)",
        "m3 -> m2: block_request 1..3",
        "m2 -> m3: block_response 1..3 (3 blocks)",
        "m3: COMMIT h=1 v=0",
    )
    for _, certificate in cluster.chain("m3"):
        certificate.verify(cluster.chain_id, cluster.genesis.members)


def test_an_equivocating_primary_is_reported_and_replaced(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    # m0 shows its block B to m1 only, and another block B' (signed alike) to m2 and m3.
    cluster.drop(
        lambda message, sender, recipient: (
            message.kind == "pre_prepare" and message.view == 0 and recipient in ("m2", "m3")
        )
    )
    (transaction,) = cluster.submit(1)
    (proposal,) = cluster.sent_messages("pre_prepare")
    other_block = cluster.app("m0").propose(
        height=1, view=0, timestamp_ms=proposal.block.header.timestamp_ms + 1, proposer="m0"
    )
    other = PrePrepare.sign(
        cluster.key("m0"), cluster.chain_id, view=0, block=other_block, sender="m0"
    )
    cluster.send_as("m0", other, to=["m2", "m3"])
    cluster.deliver_all()

    # Two prepares each: no quorum for either block.
    assert set(cluster.heights().values()) == {0}
    assert [vote.block_hash for vote in cluster.sent_messages("prepare", "m2")] == [
        other_block.block_hash
    ]
    # m2 then sees B too (say, relayed): two signed proposals for one view are evidence.
    cluster.send_as("m0", proposal, to=["m2"])
    cluster.deliver_all()
    (evidence,) = cluster.reports("m2")
    assert (evidence.member, evidence.first, evidence.second) == ("m0", other, proposal)
    assert cluster.dropped("m2")["equivocation"] == 1

    cluster.run(ticks=5)  # the view change replaces m0

    assert set(cluster.heights().values()) == {1}
    block = cluster.chain("m3")[0][0]
    assert (block.header.proposer, block.header.view) == ("m1", 1)
    assert [tx.tx_id for tx in block.transactions] == [transaction.tx_id]
    cluster.expect(
        "m2: EVIDENCE against m0",
        "m1 -> *: view_change h=1 v=1 prepared=none",
        "m1 -> *: new_view h=1 v=1 (3 view changes)",
        "m3: COMMIT h=1 v=1",
    )


# --- restart safety ---------------------------------------------------------------------------


def test_restarted_replica_never_signs_a_different_prepare(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    cluster.submit(1)
    cluster.deliver(lambda message, sender, recipient: recipient == "m1", limit=1)
    (proposal,) = cluster.sent_messages("pre_prepare")
    assert cluster.nodes["m1"].safety.prepare_hash == proposal.block.block_hash
    cluster.crash("m1")  # its prepare is persisted; its memory of the proposal is gone

    cluster.restart("m1")
    # The primary equivocates: another block for the same (height, view).
    other_block = cluster.app("m0").propose(
        height=1, view=0, timestamp_ms=proposal.block.header.timestamp_ms + 1, proposer="m0"
    )
    other = PrePrepare.sign(
        cluster.key("m0"), cluster.chain_id, view=0, block=other_block, sender="m0"
    )
    cluster.send_as("m0", other, to=["m1"])
    cluster.deliver(lambda message, sender, recipient: message is other)

    assert cluster.dropped("m1")["conflicts_with_own_vote"] == 1
    prepares = cluster.sent_messages("prepare", "m1")
    assert [vote.block_hash for vote in prepares] == [proposal.block.block_hash]

    cluster.deliver_all()
    assert set(cluster.heights().values()) == {1}
    assert block_hash_at(cluster, "m1", 1) == proposal.block.block_hash


def test_restarted_replica_never_returns_to_a_lower_view(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    silent_primaries = cluster.drop(kind_is("pre_prepare", "new_view"))
    cluster.submit(1)
    cluster.run(ticks=5)  # view 0 times out
    assert cluster.views() == dict.fromkeys(["m0", "m1", "m2", "m3"], 1)
    cluster.run(ticks=10)  # view 1 times out after twice as long
    assert cluster.views() == dict.fromkeys(["m0", "m1", "m2", "m3"], 2)

    cluster.crash("m1")
    assert cluster.nodes["m1"].safety.view == 2
    cluster.restart("m1")
    assert cluster.replica("m1").view == 2
    old = Prepare.sign(
        cluster.key("m2"), cluster.chain_id, height=1, view=1, block_hash=bytes(32), sender="m2"
    )
    cluster.send_as("m2", old, to=["m1"])
    cluster.deliver_all()
    assert cluster.dropped("m1")["old_view"] >= 1

    silent_primaries()
    cluster.run(ticks=20)
    assert set(cluster.heights().values()) == {1}
    block, certificate = cluster.chain("m1")[0]
    assert (block.header.proposer, certificate.view) == ("m2", 2)
    assert min(cluster.views().values()) == 2
    cluster.expect("m1: VIEW-CHANGE to v=2", "RESTART m1", "m2 -> *: new_view h=1 v=2")


# --- member-set change ------------------------------------------------------------------------


def _admit(cluster: Cluster, joiner: str) -> list[dict[str, Any]]:
    """Commit a ``members``/``set`` transaction that adds ``joiner``; return the new set."""
    new_set = [member.to_canonical() for member in cluster.genesis.members]
    new_set.append(cluster.member_map(joiner))
    cluster.submit(cluster.transaction(contract="members", action="set", members=new_set))
    cluster.deliver_all()
    return new_set


def test_member_set_change_takes_effect_at_the_next_height(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    new_set = _admit(cluster, "m4")  # m4 is admitted but runs no replica: it stays silent
    assert cluster.heights() == dict.fromkeys(["m0", "m1", "m2", "m3"], 1)
    new_members = tuple(Member.from_canonical(entry) for entry in new_set)
    first = cluster.chain("m0")[0][0]
    assert first.header.members_hash == cluster.genesis.members_hash  # certified by the old set

    cluster.submit(1)
    cluster.deliver_all()

    block, certificate = cluster.chain("m0")[1]
    assert block.header.members_hash == members_hash(new_members) != first.header.members_hash
    assert len(certificate.signatures) == quorum_size(5) == 4  # n = 5, q = 4
    certificate.verify(cluster.chain_id, new_members)
    cluster.expect("m0: COMMIT h=1 v=0 (3 signatures)", "m0: COMMIT h=2 v=0 (4 signatures)")

    # With m4 silent, the four old members are all needed now: one down, nothing commits.
    cluster.crash("m3")
    cluster.submit(1)
    cluster.run(ticks=30)
    assert cluster.heights() == {"m0": 2, "m1": 2, "m2": 2, "m3": 2}


def test_admitted_member_catches_up_then_its_vote_counts(make_cluster: MakeCluster) -> None:
    cluster = make_cluster(4)
    _admit(cluster, "m4")
    cluster.submit(1)
    cluster.deliver_all()

    cluster.add_replica("m4")  # a new node, starting from the genesis
    cluster.run(ticks=10)
    assert cluster.heights()["m4"] == 2
    assert_same_chain(cluster, ["m0", "m4"])

    cluster.crash("m3")  # q = 4 of 5: m4's vote is needed now
    cluster.submit(1)
    cluster.deliver_all()

    assert cluster.heights() == {"m0": 3, "m1": 3, "m2": 3, "m3": 2, "m4": 3}
    certificate = certificate_at(cluster, "m0", 3)
    assert [signer for signer, _ in certificate.signatures] == ["m0", "m1", "m2", "m4"]
    cluster.expect(
        "START m4 from height 0",
        "m4 -> m0: block_request 1..2",
        "m4: COMMIT h=2 v=0 (4 signatures)",
        "m4 -> *: prepare h=3 v=0",
        "m0: COMMIT h=3 v=0 (4 signatures)",
    )


def test_a_replica_not_yet_admitted_follows_but_never_votes() -> None:
    cluster = Cluster(4)
    cluster.add_replica("m4")  # a node started before its member is admitted

    cluster.submit(1)
    cluster.deliver_all()  # the harness fails at once on an invalid certificate
    cluster.run(ticks=10)  # it may also catch up by fetching instead of following

    assert not cluster.sent_messages("prepare", "m4")
    assert not cluster.sent_messages("commit", "m4")
    assert set(cluster.heights().values()) == {1}
    certificate_at(cluster, "m4", 1).verify(cluster.chain_id, cluster.genesis.members)


def test_a_removed_member_follows_but_never_votes() -> None:
    cluster = Cluster(4)
    # m3 leaves, m4 (silent) joins: from height 2 on, m3 is no longer a member.
    new_set = [cluster.member_map(member) for member in ("m0", "m1", "m2", "m4")]
    cluster.submit(cluster.transaction(contract="members", action="set", members=new_set))
    cluster.deliver_all()
    assert set(cluster.heights().values()) == {1}

    cluster.submit(1)
    cluster.deliver_all()  # the harness fails at once on an invalid certificate
    cluster.run(ticks=10)  # it may also catch up by fetching instead of following

    assert not [vote for vote in cluster.sent_messages("prepare", "m3") if vote.height == 2]
    assert not [vote for vote in cluster.sent_messages("commit", "m3") if vote.height == 2]
    assert set(cluster.heights().values()) == {2}
    new_members = tuple(Member.from_canonical(entry) for entry in new_set)
    certificate_at(cluster, "m3", 2).verify(cluster.chain_id, new_members)


# --- liveness: stalls found by simulator campaigns ------------------------------------------


def test_a_certified_block_held_as_prepared_commits_from_a_peers_status(
    make_cluster: MakeCluster,
) -> None:
    """Seed 7000106: the network lets the commit votes of height 1 reach only m3, a member that
    answers block requests with forged certificates. m3 commits; the three correct members are
    prepared on the very block but see no commit quorum. m3's status carries the genuine
    certificate: they must commit the block they hold with it (before the fix they paused
    their view timers "because a quorum has committed this height", asked the liar, then the
    others, for a block nobody else had committed, and stayed at height 0 for ever)."""
    cluster = make_cluster(4)
    cluster.lie_about_blocks("m3")
    cluster.drop(lambda message, sender, recipient: message.kind == "commit" and recipient != "m3")

    cluster.submit(1)
    cluster.deliver_all()
    assert cluster.heights() == {"m0": 0, "m1": 0, "m2": 0, "m3": 1}
    cluster.run(ticks=60)  # commit votes to the correct members stay lost

    assert cluster.heights() == {"m0": 1, "m1": 1, "m2": 1, "m3": 1}
    assert_same_chain(cluster, ["m0", "m1", "m2", "m3"])
    cluster.expect("m3: COMMIT h=1 v=0", "m3 -> m2: status h=1", "m2: COMMIT h=1 v=0")


def test_a_restarted_replica_retransmits_its_commit_vote(make_cluster: MakeCluster) -> None:
    """A replica that crashed after its commit vote had not reached anyone re-signs it from
    its safety record (the same deterministic signature) and retransmits it: the certificate
    forms in the view the block was prepared in, without a view change (before, the vote
    was forgotten and only a view change re-proposing the block could finish the height)."""
    cluster = make_cluster(4)
    cluster.crash("m3")
    stop = cluster.drop(kind_is("commit"))
    cluster.submit(1)
    cluster.deliver_all()
    assert all(cluster.replica(m).record.prepared is not None for m in ("m0", "m1", "m2"))
    cluster.crash("m0")
    cluster.restart("m0")
    stop()

    cluster.run(ticks=4)  # one retransmission round, less than the view timeout

    assert cluster.heights() == {"m0": 1, "m1": 1, "m2": 1, "m3": 0}
    assert not cluster.lines("VIEW-CHANGE")
    cluster.expect("RESTART m0", "m0 -> *: commit h=1 v=0", "m1: COMMIT h=1 v=0")


def test_a_replica_that_timed_out_alone_waits_in_its_view_across_heights(
    make_cluster: MakeCluster,
) -> None:
    """m3, cut off with work pending, moves to view 1 alone while the others commit in view 0.
    Back on the network it follows them (commit votes of an older view still count, the
    blocks it fetches), but it stays in view 1 waiting for a quorum of view changes, height
    after height, re-announcing its view change at each one: no further timeouts of its own.
    When the others' primary fails, that announcement completes their view change at once:
    one view per stall (before, its awaited view was forgotten at every new height and it
    timed out again, alone, one view higher each time)."""
    cluster = make_cluster(4)
    cluster.partition({"m0", "m1", "m2"}, {"m3"})
    cluster.submit(1)
    cluster.run(ticks=6)  # beyond the view timeout (5 ticks)
    assert cluster.views() == {"m0": 0, "m1": 0, "m2": 0, "m3": 1}
    cluster.heal()
    cluster.run(ticks=10)  # a status round: m3 fetches height 1
    assert cluster.heights() == {"m0": 1, "m1": 1, "m2": 1, "m3": 1}

    for _ in range(3):
        cluster.submit(1)
        cluster.run(ticks=10)

    assert cluster.heights() == {"m0": 4, "m1": 4, "m2": 4, "m3": 4}
    assert cluster.views() == {"m0": 0, "m1": 0, "m2": 0, "m3": 1}
    announced = [(vc.height, vc.view) for vc in cluster.sent_messages("view_change", "m3")]
    assert {height for height, _ in announced} == {1, 2, 3, 4, 5}
    assert {view for _, view in announced} == {1}

    cluster.crash("m0")  # the primary of view 0
    cluster.submit(1)
    cluster.run(ticks=10)

    assert cluster.heights() == {"m0": 4, "m1": 5, "m2": 5, "m3": 5}
    assert cluster.views() == {"m1": 1, "m2": 1, "m3": 1}
    cluster.expect(
        "m1: VIEW-CHANGE to v=1",
        "m1 -> *: new_view h=5 v=1 (3 view changes)",
        "m3: COMMIT h=5 v=1",
    )
