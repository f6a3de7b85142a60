"""The normal case of PBFT at one height: proposal, prepares, commit votes, certificate.

A message reaches these handlers once :meth:`Replica._dispatch
<consensus.replica.Replica._dispatch>` has checked who sent it and classified it as one of
the height and view in progress (commit votes: of any view at this height). From here:

* ``PrePrepare`` — from the primary of its view, never bare in a view entered by a view
  change (:attr:`Mode.VIEW_CHANGE <consensus.modes.Mode.VIEW_CHANGE>`), signed, the first
  block of its view (a second one is equivocation), valid for the application: the replica
  persists, then broadcasts, its ``Prepare``;
* ``Prepare`` — counted; with a quorum on the proposal the replica persists its prepared
  certificate, then broadcasts its ``CommitVote``;
* ``CommitVote`` — counted; a quorum is the commit certificate: the block is handed to the
  driver (:class:`~consensus.actions.CommitBlock`), or fetched if it is unknown here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from consensus.actions import ReportRejectedProposal
from consensus.drops import DropReason
from consensus.messages import CommitVote, Prepare, PreparedCertificate, PrePrepare
from consensus.modes import Mode
from consensus.quorum import VoteSet
from ledger.model import Block, CommitCertificate

if TYPE_CHECKING:
    from consensus.replica import Replica

__all__ = ["NormalCase"]


class NormalCase:
    """The proposal and the two voting phases of the height in progress, for ``replica``."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica

    # --- the proposal -------------------------------------------------------------------------

    def maybe_propose(self) -> None:
        """As the primary of a view the height started in, propose a block if work is pending."""
        replica = self.replica
        if (
            not replica.is_member
            or replica.primary(replica.view) != replica.member_id
            or replica.mode is not Mode.NORMAL
            or replica.view in replica._state.proposals
            or replica.record.pre_prepare_hash is not None
            or replica.now_ms <= 0
            or not replica._application.has_pending_transactions()
        ):
            return
        block = replica._application.propose(
            height=replica.height,
            view=replica.view,
            timestamp_ms=max(replica.now_ms, replica._application.tip().timestamp_ms + 1),
            proposer=replica.member_id,
        )
        assert block.height == replica.height and block.header.view == replica.view
        if not block.transactions:
            return  # nothing pending applies any more: no block (a NewView may still need one)
        pre_prepare = PrePrepare.sign(
            replica._key, replica.chain_id, view=replica.view, block=block, sender=replica.member_id
        )
        replica._state.validated[block.block_hash] = None
        replica._persist(replica.record.model_copy(update={"pre_prepare_hash": block.block_hash}))
        replica._broadcast_own(pre_prepare)
        self.accept_proposal(pre_prepare)

    def on_pre_prepare(self, sender: str, message: PrePrepare) -> None:
        replica = self.replica
        state = replica._state
        if sender != replica.primary(message.view):
            replica._drop(DropReason.NOT_PRIMARY)
            return
        if replica.mode is Mode.VIEW_CHANGE:
            replica._drop(DropReason.NEEDS_NEW_VIEW)
            return
        if not message.signature_is_valid(replica.chain_id, replica._public_keys[sender]):
            replica._drop(DropReason.BAD_SIGNATURE)
            return
        existing = state.proposals.get(message.view)
        if existing is not None and existing.block.block_hash == message.block.block_hash:
            replica._drop(DropReason.DUPLICATE)
            return
        if not self.first_proposal_of_view(message):
            return
        reason = self.check_block(message.block, message.view, fresh=True)
        if reason is not None:
            self.reject_proposal(message, reason)
            return
        self.accept_proposal(message)

    def first_proposal_of_view(self, message: PrePrepare) -> bool:
        """Whether ``message`` (signed by the primary of its view) may be judged: it is the
        first proposal of its view, or the same block again (a refusal for the clock may be
        reversed; the application's verdict is remembered per block, never recomputed).

        A second, different proposal of one view is equivocation: it is never validated or
        executed, so a byzantine primary costs one validation per view, not one per message.
        Evidence is reported once per view; further ones are only counted.
        """
        replica = self.replica
        state = replica._state
        first = state.judged.setdefault(message.view, message)
        if first.block.block_hash == message.block.block_hash:
            return True
        if message.view in state.equivocated_views:
            replica._drop(DropReason.EQUIVOCATION_REPEATED)
            return False
        state.equivocated_views.add(message.view)
        replica._note_evidence(message.sender, first, message)
        return False

    def reject_proposal(self, message: PrePrepare, reason: str) -> None:
        """Count a refused proposal; report it once per view (the primary's retransmissions
        of the same block would otherwise repeat the report, and the node's log line)."""
        replica = self.replica
        replica._drop(DropReason.INVALID_PROPOSAL)
        if message.view in replica._state.reported_views:
            return
        replica._state.reported_views.add(message.view)
        replica._out.append(
            ReportRejectedProposal(
                height=message.height, view=message.view, proposer=message.sender, reason=reason
            )
        )

    def check_block(self, block: Block, view: int, *, fresh: bool) -> str | None:
        """Why ``block`` may not be prepared in ``view`` at this height, or None."""
        replica = self.replica
        header = block.header
        tip = replica._application.tip()
        if header.chain_id != replica.chain_id:
            return "chain_id of another consortium"
        if header.height != replica.height:
            return f"height {header.height}, expected {replica.height}"
        if header.prev_hash != tip.block_hash:
            return "prev_hash is not the tip"
        if header.timestamp_ms <= tip.timestamp_ms:
            return "timestamp not after the parent's"
        if header.members_hash != replica._members_hash:
            return "members_hash is not the member set in force"
        if fresh:
            if header.view != view or header.proposer != replica.primary(view):
                return "view or proposer does not match the primary of the view"
            if abs(header.timestamp_ms - replica.now_ms) > replica.config.timestamp_drift_ms_max:
                return "timestamp too far from this replica's clock"
        elif header.view > view or header.proposer != replica.primary(header.view):
            return "re-proposed block from an unexpected view or proposer"
        state = replica._state
        if block.block_hash not in state.validated:
            state.validated[block.block_hash] = replica._application.validate(block)
        return state.validated[block.block_hash]

    def accept_proposal(self, message: PrePrepare) -> None:
        """Take ``message`` as the proposal of its view and prepare it (persist, then send)."""
        replica = self.replica
        state = replica._state
        block = message.block
        state.proposals[message.view] = message
        state.blocks[block.block_hash] = block
        if message.view != replica.view or not replica.is_member:
            return
        if replica.record.prepare_hash not in (None, block.block_hash):
            replica._drop(DropReason.CONFLICTS_WITH_OWN_VOTE)
            return
        if state.prepares.first_vote.get((replica.view, replica.member_id)) is not None:
            return  # already prepared it in this run
        if replica.record.prepare_hash is None:
            replica._persist(replica.record.model_copy(update={"prepare_hash": block.block_hash}))
        # Otherwise the vote was persisted before a restart: Ed25519 is deterministic, so
        # signing it again gives the very same vote, which the others may not have received.
        replica._cast_vote(Prepare, state.prepares, replica.view, block.block_hash)
        replica._view_changes.maybe_start_timer()
        self.check_prepared(replica.view, block.block_hash)

    # --- the votes ----------------------------------------------------------------------------

    def on_prepare(self, sender: str, message: Prepare) -> None:
        self._record_vote(sender, message, self.replica._state.prepares, self.check_prepared)

    def on_commit_vote(self, sender: str, message: CommitVote) -> None:
        self._record_vote(sender, message, self.replica._state.commits, self.check_committed)

    def _record_vote(
        self,
        sender: str,
        message: Prepare | CommitVote,
        votes: VoteSet,
        then: Callable[[int, bytes], None],
    ) -> None:
        replica = self.replica
        if not message.signature_is_valid(replica.chain_id, replica._public_keys[sender]):
            replica._drop(DropReason.BAD_SIGNATURE)
            return
        conflict = votes.add(message.view, message.block_hash, message.sender, message.signature)
        if conflict is not None:
            replica._note_evidence(message.sender, conflict, message)
            return
        then(message.view, message.block_hash)

    def check_prepared(self, view: int, block_hash: bytes) -> None:
        """With a quorum of prepares on this view's proposal, persist the prepared certificate,
        then cast the commit vote."""
        replica = self.replica
        state = replica._state
        proposal = state.proposals.get(view)
        if (
            view != replica.view
            or not replica.is_member
            or replica.record.commit_hash not in (None, block_hash)
            or state.commits.first_vote.get((view, replica.member_id)) is not None
            or replica.record.prepare_hash != block_hash
            or proposal is None
            or proposal.block.block_hash != block_hash
            or state.prepares.count(view, block_hash) < replica.quorum()
        ):
            return
        certificate = PreparedCertificate(
            height=replica.height,
            view=view,
            block_hash=block_hash,
            prepares=state.prepares.signed(view, block_hash),
        )
        replica._persist(
            replica.record.model_copy(
                update={
                    "commit_hash": block_hash,
                    "prepared": certificate,
                    "prepared_block": proposal.block,
                }
            )
        )
        replica._cast_vote(CommitVote, state.commits, view, block_hash)
        self.check_committed(view, block_hash)

    def check_committed(self, view: int, block_hash: bytes) -> None:
        """With a quorum of commit votes, commit the block (or fetch it if unknown here)."""
        replica = self.replica
        state = replica._state
        if (
            replica.mode is Mode.COMMITTING
            or state.commits.count(view, block_hash) < replica.quorum()
        ):
            return
        block = state.blocks.get(block_hash)
        if block is None:
            # A quorum committed a block we never received: fetch it from the voters.
            voters = [member for member, _ in state.commits.signed(view, block_hash)]
            replica._catch_up.fetch_decided_block(voters)
            return
        certificate = CommitCertificate(
            height=replica.height,
            view=view,
            block_hash=block_hash,
            signatures=state.commits.signed(view, block_hash),
        )
        reason = self.check_block(block, view, fresh=False)
        if reason is not None:
            replica._drop(DropReason.CERTIFIED_BLOCK_INVALID)
            return
        replica._commit(block, certificate)
