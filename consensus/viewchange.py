"""PBFT's view change at the height in progress: the view timer, ViewChange and NewView.

Theory of operation
-------------------
A member that sees no progress while work is pending (a proposal, or transactions in its
mempool) counts down its view timer; at zero it moves to view v+1 (:attr:`Mode.VIEW_CHANGE
<consensus.modes.Mode.VIEW_CHANGE>`), persists the new view, and broadcasts a ``ViewChange``
carrying its highest prepared certificate. Its timer then waits until q members are known to
have reached that view (the *awaited view*), so that no replica runs ahead alone; each
consecutive view change at one height doubles the timeout.

f+1 view changes for views above ours pull a replica along (the join rule), to the smallest
view they justify. A replica already in the view others move to adds its own ViewChange so
that they can reach their quorum. The primary of the new view, with q view changes, sends a
``NewView`` that re-proposes the block of the highest prepared certificate among them, or a
new block if there is none; every replica recomputes that choice before it accepts.

Messages arrive here already classified (:meth:`Replica._classify
<consensus.replica.Replica._classify>`): for the height in progress, within the view window,
and not for a view whose NewView is done. This replica's own ViewChange is signed, broadcast
and recorded in one place, :meth:`ViewChanges._announce`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from consensus.drops import DropReason
from consensus.messages import (
    CommitVote,
    NewView,
    PreparedCertificate,
    PrePrepare,
    ViewChange,
)
from consensus.modes import Mode
from ledger.model import Block

if TYPE_CHECKING:
    from consensus.replica import Replica

__all__ = ["ViewChanges"]

EQUIVOCATION = "a second, different proposal in the view"
"""What :meth:`ViewChanges._new_view_problem` returns for a NewView whose proposal is a
second one in its view: counted as equivocation, not as a bad NewView."""


class ViewChanges:
    """The view timer and the view changes of ``replica``."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.timer_ticks_left: int | None = None
        """Ticks before this replica gives up on its view; None while the timer is stopped."""
        self.awaiting_view: int | None = None
        """A view this replica moved to by a view change, before q view changes for it are
        known: its timer waits for them, so that no replica runs ahead of the others alone.
        It carries over to the next height when the others commit in a lower view (see
        :meth:`carry_awaited_view`)."""

    # --- the timer ----------------------------------------------------------------------------

    def timeout_ticks(self) -> int:
        replica = self.replica
        exponent = min(replica._state.view_changes_in_a_row, 30)
        config = replica.config
        return min(config.view_timeout_ticks * 2**exponent, config.view_timeout_ticks_max)

    def stop_timer(self) -> None:
        self.timer_ticks_left = None

    def maybe_start_timer(self) -> None:
        replica = self.replica
        if (
            not replica.is_member
            or self.timer_ticks_left is not None
            or replica.mode is Mode.COMMITTING
            or self.awaiting_view is not None
        ):
            return
        if replica._state.proposals or replica._application.has_pending_transactions():
            self.timer_ticks_left = self.timeout_ticks()

    def tick_timer(self) -> None:
        if self.timer_ticks_left is None:
            return
        replica = self.replica
        if (
            not replica._state.proposals
            and replica.mode is not Mode.VIEW_CHANGE
            and not replica._application.has_pending_transactions()
        ):
            self.timer_ticks_left = None  # the work that started it is gone
            return
        if replica._catch_up.behind:
            # A quorum has committed this height already (a certificate, a commit quorum or
            # f+1 claims said so): this replica is behind and fetching, the view has not
            # failed. Timing out would only carry it, alone, into views the others are not in.
            return
        self.timer_ticks_left -= 1
        if self.timer_ticks_left <= 0:
            self.start_view_change(replica.view + 1)

    # --- moving to a later view ---------------------------------------------------------------

    def _enter_view(self, view: int, *, await_quorum: bool) -> None:
        """Move to ``view``; with ``await_quorum`` the timer starts only once q view
        changes for it are known (PBFT's liveness rule), else at once."""
        replica = self.replica
        assert view > replica.view, "a replica never returns to a lower view"
        replica.view = view
        # Keep retransmitting commit votes (a certificate of an old view is still valid) and
        # view changes (a replica still in the old view may need ours to reach its quorum and
        # start its own timer); the old view's other messages no longer matter.
        kept = [
            message
            for message in replica._own_messages
            if isinstance(message, CommitVote | ViewChange)
        ]
        replica._own_messages.clear()
        replica._own_messages.extend(kept)
        replica._enter_view_change_mode()
        replica._state.view_changes_in_a_row += 1
        self.awaiting_view = view if await_quorum else None
        self.timer_ticks_left = None if await_quorum else self.timeout_ticks()

    def _check_view_quorum(self) -> None:
        """Start the timer of the awaited view once a quorum has reached it (or gone beyond:
        members already in a higher view cannot send a view change for this one, and without
        counting them a replica that fell behind could wait for ever)."""
        state = self.replica._state
        view = self.awaiting_view
        if view is None:
            return
        reached = sum(1 for latest in state.latest_view_change.values() if latest >= view)
        if max(reached, len(state.view_changes.get(view, {}))) >= self.replica.quorum():
            self.awaiting_view = None
            self.timer_ticks_left = self.timeout_ticks()

    def start_view_change(self, view: int) -> None:
        replica = self.replica
        self._enter_view(view, await_quorum=True)
        replica._persist(replica.record.at_view(view))
        self._announce(view, replica.record.prepared, replica.record.prepared_block)
        self._check_view_quorum()
        replica._drain_future()
        self._maybe_send_new_view(view)

    def _announce(
        self, view: int, prepared: PreparedCertificate | None, prepared_block: Block | None
    ) -> None:
        """Sign this replica's ViewChange for ``view``, broadcast it (kept for retransmission)
        and count it among the view's view changes. The caller has persisted the safety
        record that covers it (the view, or ``entered_by_view_change``)."""
        replica = self.replica
        message = ViewChange.sign(
            replica._key,
            replica.chain_id,
            height=replica.height,
            view=view,
            prepared=prepared,
            sender=replica.member_id,
            prepared_block=prepared_block,
        )
        replica._broadcast_own(message)
        replica._state.view_changes.setdefault(view, {})[replica.member_id] = message
        replica._state.latest_view_change[replica.member_id] = view

    def _support_view_change(self, view: int) -> None:
        """Others move into ``view``, where this replica already is: add its own ViewChange
        so that they can reach a quorum (it would otherwise never send one for this view)."""
        replica = self.replica
        prepared = replica.record.prepared
        if not replica.is_member or (prepared is not None and prepared.view >= view):
            return  # prepared in this very view: a commit is near, no view change needed
        replica._enter_view_change_mode()
        replica._persist(replica.record.model_copy(update={"entered_by_view_change": True}))
        self._announce(
            view, prepared, replica.record.prepared_block if prepared is not None else None
        )

    def carry_awaited_view(self, committed_view: int) -> None:
        """Keep waiting, at the new height, for a quorum in the view this replica moved to.

        A replica that timed out alone (cut off, or slower) is in a view above the others'
        when they commit the height in their lower view. If it forgot that it waits for a
        quorum, its timer would run at the next height and carry it, alone, one view higher
        at every height. It stays in its view instead, timer stopped, and re-announces its
        view change at the new height (without a prepared certificate: nothing is prepared
        yet), so that the others' next view change completes at once: one view per stall.
        """
        replica = self.replica
        view = self.awaiting_view
        if view is None:
            return
        assert view <= replica.view, "an awaited view is never above the replica's own"
        if committed_view >= view or view != replica.view or not replica.is_member:
            self.awaiting_view = None  # a quorum reached that view, or the replica left it
            return
        replica._enter_view_change_mode()
        replica._state.view_changes_in_a_row = 1
        replica._persist(replica.record.model_copy(update={"entered_by_view_change": True}))
        self._announce(view, None, None)

    # --- ViewChange ---------------------------------------------------------------------------

    def on_view_change(self, sender: str, message: ViewChange) -> None:
        replica = self.replica
        state = replica._state
        known = state.view_changes.setdefault(message.view, {})
        if sender in known:
            replica._drop(DropReason.DUPLICATE)
            return
        if not self.view_change_is_valid(message, replica.height, message.view):
            replica._drop(DropReason.BAD_VIEW_CHANGE)
            return
        known[sender] = message
        state.latest_view_change[sender] = max(
            state.latest_view_change.get(sender, 0), message.view
        )
        if message.view == replica.view and replica.member_id not in known:
            self._support_view_change(replica.view)
        self._apply_join_rule()
        self._check_view_quorum()
        self._maybe_send_new_view(replica.view)

    def _apply_join_rule(self) -> None:
        """f+1 view changes for views above ours: move to the smallest view they justify."""
        replica = self.replica
        higher = sorted(
            (view for view in replica._state.latest_view_change.values() if view > replica.view),
            reverse=True,
        )
        if replica.is_member and len(higher) >= replica.weak_quorum():
            self.start_view_change(higher[replica.weak_quorum() - 1])

    def _prepared_certificate_is_valid(
        self, certificate: PreparedCertificate, for_view: int
    ) -> bool:
        replica = self.replica
        return (
            certificate.height == replica.height
            and certificate.view < for_view
            and len(certificate.prepares) >= replica.quorum()
            and certificate.signatures_are_valid(replica.chain_id, replica._public_keys)
        )

    def view_change_is_valid(self, message: ViewChange, height: int, view: int) -> bool:
        public_key = self.replica._public_keys.get(message.sender)
        return (
            public_key is not None
            and message.height == height
            and message.view == view
            and message.signature_is_valid(self.replica.chain_id, public_key)
            and (
                message.prepared is None
                or self._prepared_certificate_is_valid(message.prepared, view)
            )
        )

    def choose_prepared(
        self, view_changes: list[ViewChange]
    ) -> tuple[PreparedCertificate | None, set[bytes]]:
        """The highest-view prepared certificate among ``view_changes``, and its block hashes."""
        certificates = [vc.prepared for vc in view_changes if vc.prepared is not None]
        if not certificates:
            return None, set()
        top = max(certificate.view for certificate in certificates)
        best = [certificate for certificate in certificates if certificate.view == top]
        return best[0], {certificate.block_hash for certificate in best}

    # --- NewView ------------------------------------------------------------------------------

    def _maybe_send_new_view(self, view: int) -> None:
        replica = self.replica
        state = replica._state
        if (
            replica.primary(view) != replica.member_id
            or view != replica.view
            or view in state.new_views_done
            or replica.mode is Mode.COMMITTING
        ):
            return
        collected = [state.view_changes[view][m] for m in sorted(state.view_changes.get(view, {}))]
        if len(collected) < replica.quorum():
            return
        pre_prepare = self._new_view_proposal(view, collected)
        if pre_prepare is None:
            return
        state.new_views_done.add(view)
        message = NewView.sign(
            replica._key,
            replica.chain_id,
            height=replica.height,
            view=view,
            view_changes=tuple(vc.without_block() for vc in collected),
            pre_prepare=pre_prepare,
            sender=replica.member_id,
        )
        block_hash = pre_prepare.block.block_hash
        state.validated.setdefault(block_hash, None)
        if replica.record.pre_prepare_hash is None:
            replica._persist(replica.record.model_copy(update={"pre_prepare_hash": block_hash}))
        replica._broadcast_own(message)
        replica._normal.accept_proposal(pre_prepare)

    def _new_view_proposal(self, view: int, collected: list[ViewChange]) -> PrePrepare | None:
        """The proposal a NewView for ``view`` must carry, or None if this replica cannot
        make it without contradicting what it already signed in ``view``."""
        replica = self.replica
        state = replica._state
        chosen, allowed = self.choose_prepared(collected)
        signed = replica.record.pre_prepare_hash
        if signed is not None:
            # Already proposed in this view (a bare proposal before the others joined it):
            # the NewView may only carry that same signed proposal, if the rule allows it.
            own = state.proposals.get(view)
            if own is None or own.block.block_hash != signed:
                replica._drop(DropReason.NEW_VIEW_WOULD_EQUIVOCATE)
                return None
            if chosen is not None and signed not in allowed:
                replica._drop(DropReason.NEW_VIEW_WOULD_EQUIVOCATE)
                return None
            return own
        if chosen is not None:
            block = next(
                (
                    vc.prepared_block
                    for vc in collected
                    if vc.prepared_block is not None
                    and vc.prepared_block.block_hash == chosen.block_hash
                ),
                state.blocks.get(chosen.block_hash),
            )
            if block is None:
                replica._drop(DropReason.PREPARED_BLOCK_UNKNOWN)
                return None
        else:
            block = replica._application.propose(
                height=replica.height,
                view=view,
                timestamp_ms=max(replica.now_ms, replica._application.tip().timestamp_ms + 1),
                proposer=replica.member_id,
            )
        return PrePrepare.sign(
            replica._key, replica.chain_id, view=view, block=block, sender=replica.member_id
        )

    def on_new_view(self, sender: str, message: NewView) -> None:
        replica = self.replica
        view = message.view
        reason = self._new_view_problem(sender, message)
        if reason is EQUIVOCATION:
            return
        if reason is not None:
            replica._drop(DropReason.BAD_NEW_VIEW)
            if reason.startswith("proposal:"):
                replica._normal.reject_proposal(message.pre_prepare, reason)
            return
        replica._state.new_views_done.add(view)
        if view > replica.view:
            self._enter_view(view, await_quorum=False)
            replica._persist(replica.record.at_view(view))
        elif self.awaiting_view is not None:
            self.awaiting_view = None
            self.timer_ticks_left = self.timeout_ticks()
        replica._enter_view_change_mode()
        replica._normal.accept_proposal(message.pre_prepare)
        replica._drain_future()

    def _new_view_problem(self, sender: str, message: NewView) -> str | None:
        """Why ``message`` does not justify its proposal, or None if it does."""
        replica = self.replica
        view = message.view
        if sender != replica.primary(view):
            return "not the primary of the view"
        if not message.signature_is_valid(replica.chain_id, replica._public_keys[sender]):
            return "bad signature"
        senders = {vc.sender for vc in message.view_changes}
        if len(senders) != len(message.view_changes) or len(senders) < replica.quorum():
            return "not a quorum of distinct view changes"
        if not all(
            self.view_change_is_valid(vc, replica.height, view) for vc in message.view_changes
        ):
            return "an invalid view change"
        pre_prepare = message.pre_prepare
        if (
            pre_prepare.view != view
            or pre_prepare.sender != sender
            or pre_prepare.height != replica.height
            or not pre_prepare.signature_is_valid(replica.chain_id, replica._public_keys[sender])
        ):
            return "an invalid pre-prepare"
        chosen, allowed = self.choose_prepared(list(message.view_changes))
        if chosen is not None and pre_prepare.block.block_hash not in allowed:
            return "does not re-propose the highest prepared block"
        if not replica._normal.first_proposal_of_view(pre_prepare):
            return EQUIVOCATION  # counted as such, never validated
        reason = replica._normal.check_block(pre_prepare.block, view, fresh=chosen is None)
        return None if reason is None else f"proposal: {reason}"
