"""The simulator must catch a broken replica: six deliberate bugs, each caught within 1,000 seeds.

Each variant below breaks one rule the protocol's safety rests on, in a subclass used only
here. For each, the simulator runs seeds from 0 until one fails; the test passes when a seed
fails before the 1,000th, and reports which seed and what was seen. A variant that survives
1,000 seeds means the simulator has grown blind to that class of bug.
"""

from __future__ import annotations

import pytest

from consensus.catchup import CatchUp
from consensus.quorum import VoteSet
from consensus.replica import Replica
from consensus.safety import SafetyRecord
from consensus.simulator import OUTSIDER, run_campaign
from consensus.viewchange import ViewChanges
from ledger import crypto
from ledger.model import CommitCertificate, sha256

SEEDS_MAX = 1_000


class QuorumOneShort(Replica):
    """Counts a quorum one vote short of n − f."""

    def quorum(self) -> int:
        return super().quorum() - 1


class VotesNotPersisted(Replica):
    """Sends its votes without persisting them first: a restart forgets what it signed."""

    def _persist(self, record: SafetyRecord) -> None:
        self.record = record


class NonMemberVoteCounted(Replica):
    """Counts votes from a process outside the member set (trusting the key it presents)."""

    def _dispatch(self, sender: str, message: object) -> None:
        if sender == OUTSIDER and OUTSIDER not in self._public_keys:
            chain_id = self.chain_id
            outsider_key = crypto.key_from_seed(sha256(b"outsider" + chain_id))
            self._public_keys[OUTSIDER] = crypto.public_key_bytes(outsider_key)
        super()._dispatch(sender, message)


class _CountingEveryVote(VoteSet):
    """A vote set that counts every vote it is given, the same member's again included."""

    def __init__(self) -> None:
        super().__init__()
        self.totals: dict[tuple[int, bytes], int] = {}

    def add(self, view: int, block_hash: bytes, member: str, signature: bytes) -> bytes | None:
        conflict = super().add(view, block_hash, member, signature)
        if conflict is None:
            key = (view, block_hash)
            self.totals[key] = self.totals.get(key, 0) + 1
        return conflict

    def count(self, view: int, block_hash: bytes) -> int:
        return self.totals.get((view, block_hash), 0)


class SameMemberCountedTwice(Replica):
    """Counts a member's repeated vote (a retransmission, a replay) as another vote."""

    def _begin_height(self, safety: SafetyRecord | None) -> None:
        super()._begin_height(safety)
        self._state.prepares = _CountingEveryVote()
        self._state.commits = _CountingEveryVote()


class _ViewChangesIgnoringPrepared(ViewChanges):
    def choose_prepared(self, view_changes):  # type: ignore[no-untyped-def]
        return None, set()


class PreparedCertificatesIgnored(Replica):
    """Ignores prepared certificates in view changes: a new primary may replace a block."""

    view_changes_type = _ViewChangesIgnoringPrepared


class _CatchUpTrustingPeers(CatchUp):
    def certificate_is_valid(self, certificate: CommitCertificate | None) -> bool:
        return certificate is not None


class CatchUpTrustsPeers(Replica):
    """Commits fetched blocks without checking their certificates."""

    catch_up_type = _CatchUpTrustingPeers


@pytest.mark.parametrize(
    "variant",
    [
        QuorumOneShort,
        VotesNotPersisted,
        NonMemberVoteCounted,
        SameMemberCountedTwice,
        PreparedCertificatesIgnored,
        CatchUpTrustsPeers,
    ],
    ids=lambda variant: variant.__name__,
)
@pytest.mark.timeout(1_800)
def test_the_simulator_catches_a_broken_replica(variant: type[Replica]) -> None:
    summary = run_campaign(range(SEEDS_MAX), replica_factory=variant, workers=2)
    assert summary["failing_seed"] is not None, (
        f"{variant.__name__} survived {summary['seeds_run']} seeds"
    )
    print(
        f"{variant.__name__}: caught at seed {summary['failing_seed']} after "
        f"{summary['seeds_run']} seeds ({summary['seconds']} s): {summary['failure']}"
    )
