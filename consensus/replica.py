"""The PBFT replica: a synchronous, deterministic state machine with no I/O.

Theory of operation
-------------------
The chain is decided **one height at a time** (DESIGN.md decision 8). At height ``h`` the
replica runs PBFT's three phases among the member set in force at ``h`` (n members,
f = ⌊(n−1)/3⌋, quorum q = n − f; see docs/consensus.md):

1. the primary of view ``v`` (``members[v mod n]``) proposes a block built by the application
   and broadcasts a signed ``PrePrepare`` and its own ``Prepare``;
2. a replica that accepts the proposal (right primary, right parent, timestamps, and the
   application's verdict) persists, then broadcasts, a signed ``Prepare``;
3. with q matching prepares it is *prepared*: it persists the prepared certificate, then
   broadcasts a signed ``CommitVote``; q matching commit votes are the commit certificate,
   and the block is committed (:class:`~consensus.actions.CommitBlock`).

**Views are global**: they carry over from one height to the next, so a faulty primary costs
one view change, not one per height. A replica that sees no progress while work is pending
moves to view v+1 after a timeout that doubles with each consecutive view change at the same
height, broadcasting a ``ViewChange`` that carries its highest prepared certificate. f+1 view
changes for higher views pull a replica along (join rule). The primary of the new view, with q
view changes, broadcasts a ``NewView`` that proposes the block of the highest prepared
certificate, or a new block if there is none; replicas recompute that choice themselves.
Within a height, a proposal in a view that the replica entered by a view change is accepted
only inside a NewView.

**Catch-up**: a replica that sees a certified status above its tip (or f+1 peers claiming
higher heights) fetches the blocks and commits them one by one, each only after its commit
certificate verifies against the member set in force at that height and the application
validates it.

**Safety state** (:mod:`consensus.safety`) is persisted before the messages it covers, so a
restarted replica neither signs two different blocks for one (height, view, kind) nor returns
to a lower view.

**Hostile input** never raises: a message from a non-member, with a bad signature, for a
height or view outside the windows, or otherwise malformed is dropped and counted in
``dropped``; conflicting signed votes are kept as evidence. Buffers for future messages are
bounded per sender.

The replica never reads a clock: ``on_tick(now_ms)`` brings both the tick (timeouts are
counted in ticks) and the time used to stamp proposals and to bound the drift of others'.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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
from consensus.application import Application
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
    message_size_bytes,
)
from consensus.quorum import VoteSet, quorum_size, weak_quorum_size
from consensus.safety import SafetyRecord
from ledger import crypto
from ledger.model import (
    Block,
    CommitCertificate,
    InvalidCertificateError,
    Member,
    members_hash,
)

__all__ = ["DROP_REASONS", "Replica", "ReplicaConfig"]

DROP_REASONS: dict[str, str] = {
    # who may speak
    "unknown_message": "a message type the replica does not handle",
    "not_a_member": "the sender is not in the member set in force, or claims to be this replica",
    "sender_mismatch": "the message names another sender than the authenticated peer",
    "bad_signature": "a signature that does not verify with the sender's key in force",
    "not_primary": "a proposal or new view from a member that is not the primary of its view",
    # windows and buffers
    "old_height": "a message for a height already committed",
    "far_height": "a message for a height beyond the height window (it hints at catch-up)",
    "old_view": "a message for a view this replica has left",
    "far_view": "a message for a view beyond the view window",
    "future_buffer_full": "an older buffered future message of the sender, evicted to make room",
    "future_message_too_large": "one future message larger than the sender's whole byte budget",
    # the protocol
    "duplicate": "a message already counted",
    "equivocation": "a second, different signed message for one (height, view, kind): evidence",
    "equivocation_repeated": "one more proposal in a view whose primary already equivocated",
    "needs_new_view": "a bare proposal in a view entered by a view change (a NewView is needed)",
    "invalid_proposal": "a proposal the replica refused (the reason is reported)",
    "bad_view_change": "a view change that does not verify",
    "bad_new_view": "a new view that does not justify its proposal",
    "new_view_would_equivocate": "this replica cannot send a new view without contradicting itself",
    "prepared_block_unknown": "the block of the chosen prepared certificate is not known here",
    "conflicts_with_own_vote": "a proposal other than the block this replica already prepared",
    "certified_block_invalid": "a block with a valid certificate that the application refuses",
    "bad_fetched_block": "a fetched block whose certificate or content does not verify",
    "block_response_without_progress": "a block response that brought no block to commit",
}
"""Every reason a replica counts in ``Replica.dropped``, with what it means. The names are
stable: they are the labels of the node's dropped-messages metric."""

EQUIVOCATION = "a second, different proposal in the view"
_SIGNED_MESSAGES = (PrePrepare, Prepare, CommitVote, ViewChange, NewView)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReplicaConfig:
    """Limits and timeouts of a replica (ticks are the driver's ``on_tick`` calls)."""

    view_timeout_ticks: int = 40
    view_timeout_ticks_max: int = 40 * 64
    height_window: int = 16
    """Messages for heights above tip + 1 + this are not buffered (they hint at catch-up)."""
    view_window: int = 32
    """Messages for views above the current view + this are dropped."""
    future_messages_per_sender_max: int = 256
    future_bytes_per_sender_max: int = 16 * 1024 * 1024
    """Bytes of future messages (a later height or view) buffered per sender, as
    :func:`~consensus.messages.message_size_bytes` weighs them: one proposal of the largest
    block a chain may allow (12 MiB) and the votes and view changes around it. The oldest
    are evicted first; a message larger than the whole budget is dropped."""
    status_interval_ticks: int = 20
    retransmit_interval_ticks: int = 10
    """While a height is undecided, re-send this replica's own messages this often: the
    network may lose any message, and PBFT only progresses if votes eventually arrive."""
    own_messages_max: int = 16
    fetch_timeout_ticks: int = 20
    timestamp_drift_ms_max: int = 10_000
    evidence_max: int = 64
    response_bytes_max: int = 4 * 1024 * 1024

    def __post_init__(self) -> None:
        assert 1 <= self.view_timeout_ticks <= self.view_timeout_ticks_max
        assert self.height_window >= 1 and self.view_window >= 1
        assert self.future_messages_per_sender_max >= 1
        assert self.future_bytes_per_sender_max >= 1024


@dataclass(slots=True)
class _HeightState:
    """Everything the replica knows about the height in progress."""

    proposals: dict[int, PrePrepare] = field(default_factory=dict)
    judged: dict[int, PrePrepare] = field(default_factory=dict)
    """The first proposal judged in each view (accepted or refused): the only block of its
    view the application may ever validate, since a correct primary signs one."""
    equivocated_views: set[int] = field(default_factory=set)
    reported_views: set[int] = field(default_factory=set)
    blocks: dict[bytes, Block] = field(default_factory=dict)
    validated: dict[bytes, str | None] = field(default_factory=dict)
    prepares: VoteSet = field(default_factory=VoteSet)
    commits: VoteSet = field(default_factory=VoteSet)
    view_changes: dict[int, dict[str, ViewChange]] = field(default_factory=dict)
    latest_view_change: dict[str, int] = field(default_factory=dict)
    new_views_done: set[int] = field(default_factory=set)
    entered_by_change: bool = False
    view_changes_in_a_row: int = 0


class Replica:
    """One member's PBFT state machine. Feed it events; execute the actions it returns."""

    def __init__(
        self,
        *,
        member_id: str,
        key: crypto.PrivateKey,
        chain_id: bytes,
        application: Application,
        config: ReplicaConfig | None = None,
        safety: SafetyRecord | None = None,
    ) -> None:
        self.member_id = member_id
        self.chain_id = chain_id
        self.config = config or ReplicaConfig()
        self._key = key
        self._own_public_key = crypto.public_key_bytes(key)
        self._application = application
        self.now_ms = 0
        self.ticks = 0
        self.dropped: collections.Counter[str] = collections.Counter()
        self.evidence: collections.deque[tuple[str, Any, Any]] = collections.deque(
            maxlen=self.config.evidence_max
        )
        self._out: list[Action] = []
        self._future: dict[str, collections.deque[tuple[Any, int]]] = {}
        """Per sender, buffered future messages with their sizes, oldest first."""
        self._future_bytes: dict[str, int] = {}
        self._committing: CommitCertificate | None = None
        self._timer_ticks_left: int | None = None
        self._sync_target = 0
        self._height_claims: dict[str, int] = {}
        self._fetched: dict[int, tuple[Block, CommitCertificate, str]] = {}
        self._fetch_pending: tuple[str, int] | None = None
        self._status_answered: dict[str, int] = {}
        self._awaiting_view: int | None = None
        """A view this replica moved to by a view change, before q view changes for it are
        known: its timer waits for them, so that no replica runs ahead of the others alone.
        It carries over to the next height when the others commit in a lower view (see
        :meth:`_carry_awaited_view`)."""
        tip = application.tip()
        self.view = max(tip.view, safety.view if safety is not None else 0)
        self._begin_height(safety)
        self._handlers: dict[type, Callable[[str, Any], None]] = {
            PrePrepare: self._on_pre_prepare,
            Prepare: self._on_prepare,
            CommitVote: self._on_commit_vote,
            ViewChange: self._on_view_change,
            NewView: self._on_new_view,
            Status: self._on_status,
            BlockRequest: self._on_block_request,
            BlockResponse: self._on_block_response,
        }

    # --- quorum arithmetic (a test subclass may break it on purpose) --------------------------

    def quorum(self) -> int:
        return quorum_size(len(self.members))

    def weak_quorum(self) -> int:
        return weak_quorum_size(len(self.members))

    @property
    def is_member(self) -> bool:
        """Whether this replica's member is in the set in force: only then does it sign.

        A node whose member is not (yet, or any more) in the set, or whose key is no longer
        the member's (rotated while the node ran), follows the chain by catching up, but
        never votes, proposes or changes views: its signatures would not count.
        """
        return self._public_keys.get(self.member_id) == self._own_public_key

    def primary(self, view: int) -> str:
        return self.members[view % len(self.members)].id

    @property
    def block_in_progress(self) -> bool:
        """Whether a proposal for the height in progress is known in the current view, or a
        certified block is being committed (for the driver: the chain is not idle)."""
        return self._committing is not None or self.view in self._state.proposals

    # --- public events ------------------------------------------------------------------------

    def on_tick(self, now_ms: int) -> list[Action]:
        """Time passes by one tick; ``now_ms`` is the driver's clock, used for timestamps."""
        self.now_ms = now_ms
        self.ticks += 1
        if self._committing is None:
            self._tick_timer()
            self._tick_fetch()
            if self.ticks % self.config.status_interval_ticks == 0:
                self._out.append(Broadcast(message=self._status()))
            if self.ticks % self.config.retransmit_interval_ticks == 0:
                self._out.extend(Broadcast(message=message) for message in self._own_messages)
            self._maybe_propose()
            self._maybe_start_timer()
        return self._flush()

    def on_transactions(self, transactions: Any = ()) -> list[Action]:
        """New transactions are pending in the application's mempool."""
        if self._committing is None:
            self._maybe_propose()
            self._maybe_start_timer()
        return self._flush()

    def on_message(self, sender: str, message: Any, *, now_ms: int | None = None) -> list[Action]:
        """A message from peer ``sender`` (authenticated by the transport).

        ``now_ms``, when the driver gives it, refreshes the clock read at the last tick: a
        driver whose ticks lag (its loop busy executing blocks) would otherwise judge a fresh
        proposal's timestamp against a stale clock.
        """
        if now_ms is not None:
            self.now_ms = now_ms
        self._dispatch(sender, message)
        return self._flush()

    def on_block_committed(self, height: int) -> list[Action]:
        """The driver has durably appended the block of :class:`CommitBlock` at ``height``."""
        certificate = self._committing
        assert certificate is not None and certificate.height == height == self.height, (
            f"on_block_committed({height}) while committing {certificate and certificate.height}"
        )
        assert self._application.tip().height == height, "the application's tip did not move"
        self._committing = None
        self.view = max(self.view, certificate.view)
        self._begin_height(None)
        self._carry_awaited_view(certificate.view)
        self._drain_future()
        self._process_fetched()
        if self._committing is None:
            self._maybe_propose()
            self._maybe_start_timer()
            self._request_fetch()
        return self._flush()

    # --- height lifecycle ---------------------------------------------------------------------

    def _begin_height(self, safety: SafetyRecord | None) -> None:
        tip = self._application.tip()
        self.height = tip.height + 1
        self.members: tuple[Member, ...] = self._application.members()
        assert len(self.members) >= 1
        self._public_keys = {member.id: member.public_key for member in self.members}
        self._members_hash = members_hash(self.members)
        self._state = _HeightState()
        self._own_messages: collections.deque[Any] = collections.deque(
            maxlen=self.config.own_messages_max
        )
        self._timer_ticks_left = None
        self._height_claims = {
            sender: claimed
            for sender, claimed in self._height_claims.items()
            if claimed >= self.height
        }
        self._fetched = {h: entry for h, entry in self._fetched.items() if h >= self.height}
        if safety is not None and safety.height == self.height:
            self.record = safety.at_view(max(safety.view, self.view))
            self.view = self.record.view
            if self.record.prepared_block is not None:
                block = self.record.prepared_block
                self._state.blocks[block.block_hash] = block
            self._state.entered_by_change = self.record.entered_by_view_change
            self._resend_persisted_commit_vote()
        else:
            self.record = SafetyRecord(height=self.height, view=self.view)

    def _resend_persisted_commit_vote(self) -> None:
        """After a restart, sign again the commit vote that the safety record covers.

        A prepared certificate is persisted just before the commit vote of its view is sent;
        the vote may never have reached anyone. Ed25519 is deterministic, so this is the very
        same vote; it is retransmitted like any other own message. Without it a crash can
        leave a view one commit vote short of a certificate until a view change.
        """
        prepared = self.record.prepared
        if prepared is None or not self.is_member:
            return
        self._cast_vote(CommitVote, self._state.commits, prepared.view, prepared.block_hash)

    def _carry_awaited_view(self, committed_view: int) -> None:
        """Keep waiting, at the new height, for a quorum in the view this replica moved to.

        A replica that timed out alone (cut off, or slower) is in a view above the others'
        when they commit the height in their lower view. If it forgot that it waits for a
        quorum, its timer would run at the next height and carry it, alone, one view higher
        at every height. It stays in its view instead, timer stopped, and re-announces its
        view change at the new height (without a prepared certificate: nothing is prepared
        yet), so that the others' next view change completes at once: one view per stall.
        """
        view = self._awaiting_view
        if view is None:
            return
        assert view <= self.view, "an awaited view is never above the replica's own"
        if committed_view >= view or view != self.view or not self.is_member:
            self._awaiting_view = None  # a quorum reached that view, or the replica left it
            return
        state = self._state
        state.entered_by_change = True
        state.view_changes_in_a_row = 1
        self._persist(self.record.model_copy(update={"entered_by_view_change": True}))
        message = ViewChange.sign(
            self._key,
            self.chain_id,
            height=self.height,
            view=view,
            prepared=None,
            sender=self.member_id,
            prepared_block=None,
        )
        self._broadcast_own(message)
        state.view_changes.setdefault(view, {})[self.member_id] = message
        state.latest_view_change[self.member_id] = view

    def _persist(self, record: SafetyRecord) -> None:
        self.record = record
        self._out.append(PersistSafety(record=record))

    # --- dispatch and windows -----------------------------------------------------------------

    def _dispatch(self, sender: str, message: Any) -> None:
        handler = self._handlers.get(type(message))
        if handler is None:
            self._drop("unknown_message")
            return
        if sender not in self._public_keys or sender == self.member_id:
            self._drop("not_a_member")
            return
        if getattr(message, "sender", None) != sender:
            self._drop("sender_mismatch")
            return
        if self._committing is not None and not isinstance(message, BlockRequest):
            self._buffer(sender, message)
            return
        handler(sender, message)

    def _classify(self, sender: str, height: int, view: int | None) -> str:
        """'now', 'future' (buffered), or 'drop' for a message at ``(height, view)``."""
        if height < self.height:
            self._drop("old_height")
            return "drop"
        if height > self.height + self.config.height_window:
            self._drop("far_height")
            self._note_claim(sender, height - 1)
            return "drop"
        if height > self.height:
            return "future"  # its claim is noted once its signature verifies (_buffer)
        if view is None:
            return "now"
        if view < self.view:
            self._drop("old_view")
            return "drop"
        if view > self.view + self.config.view_window:
            self._drop("far_view")
            return "drop"
        return "future" if view > self.view else "now"

    def _drop(self, reason: str) -> None:
        """Count a dropped message under one of the stable :data:`DROP_REASONS`."""
        assert reason in DROP_REASONS, f"unknown drop reason {reason!r}"
        self.dropped[reason] += 1

    def _future_problem(self, sender: str, message: Any) -> str | None:
        """Why a message for later may not be buffered, judged with the keys in force now.

        Who before what: the sender's signature (and, for a proposal or a new view, its role
        as the primary of the view) is checked before anything is kept. If the member set
        changes at the next height, a genuine message of a new key or primary is dropped
        here; its sender retransmits it while the height is undecided, and a decided height
        is fetched with its certificate, so this costs time, never liveness.
        """
        public_key = self._public_keys[sender]
        if isinstance(message, PrePrepare | NewView) and sender != self.primary(message.view):
            return "not_primary"
        signed = isinstance(message, _SIGNED_MESSAGES)
        if signed and not message.signature_is_valid(self.chain_id, public_key):
            return "bad_signature"
        return None

    def _buffer(self, sender: str, message: Any) -> None:
        """Keep a message for a later height or view (or until a commit completes), within
        the sender's budget: :attr:`ReplicaConfig.future_messages_per_sender_max` messages
        and :attr:`ReplicaConfig.future_bytes_per_sender_max` bytes.

        Over budget, the sender's *oldest* messages go first. A correct peer's newest
        messages are about where it is now (its latest view and height); older ones are
        most likely superseded, and it retransmits its current ones anyway. A byzantine
        sender can only evict its own messages: each sender has its own budget.
        """
        problem = self._future_problem(sender, message)
        if problem is not None:
            self._drop(problem)
            return
        size = message_size_bytes(message)
        if size > self.config.future_bytes_per_sender_max:
            self._drop("future_message_too_large")
            return
        queue = self._future.setdefault(sender, collections.deque())
        used = self._future_bytes.get(sender, 0)
        while queue and (
            len(queue) >= self.config.future_messages_per_sender_max
            or used + size > self.config.future_bytes_per_sender_max
        ):
            _, evicted_size = queue.popleft()
            used -= evicted_size
            self._drop("future_buffer_full")
        queue.append((message, size))
        self._future_bytes[sender] = used + size
        assert len(queue) <= self.config.future_messages_per_sender_max
        assert self._future_bytes[sender] <= self.config.future_bytes_per_sender_max
        signed_ahead = isinstance(message, _SIGNED_MESSAGES) and message.height > self.height
        if self._committing is None and signed_ahead:
            self._note_claim(sender, message.height - 1)  # the sender is at a later height

    def _drain_future(self) -> None:
        pending, self._future = self._future, {}
        self._future_bytes = {}
        for sender, queue in pending.items():
            for message, _ in queue:
                if self._committing is not None:
                    self._buffer(sender, message)
                else:
                    self._dispatch(sender, message)

    def _cast_vote(
        self, kind: type[Prepare] | type[CommitVote], votes: VoteSet, view: int, block_hash: bytes
    ) -> None:
        """Sign this replica's vote of ``kind``, broadcast it (kept for retransmission) and count
        it in ``votes``. The caller has persisted the safety record that covers it."""
        vote = kind.sign(
            self._key,
            self.chain_id,
            height=self.height,
            view=view,
            block_hash=block_hash,
            sender=self.member_id,
        )
        self._broadcast_own(vote)
        votes.add(view, block_hash, self.member_id, vote.signature)

    def _broadcast_own(self, message: Any) -> None:
        """Broadcast a message this replica signed, and keep it for retransmission."""
        self._own_messages.append(message)
        self._out.append(Broadcast(message=message))

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _note_evidence(self, member: str, first: Any, second: Any) -> None:
        self.evidence.append((member, first, second))
        self._drop("equivocation")
        self._out.append(ReportEvidence(member=member, first=first, second=second))

    # --- normal case --------------------------------------------------------------------------

    def _maybe_propose(self) -> None:
        state = self._state
        if (
            not self.is_member
            or self.primary(self.view) != self.member_id
            or state.entered_by_change
            or self.view in state.proposals
            or self.record.pre_prepare_hash is not None
            or self.now_ms <= 0
            or not self._application.has_pending_transactions()
        ):
            return
        block = self._application.propose(
            height=self.height,
            view=self.view,
            timestamp_ms=max(self.now_ms, self._application.tip().timestamp_ms + 1),
            proposer=self.member_id,
        )
        assert block.height == self.height and block.header.view == self.view
        if not block.transactions:
            return  # nothing pending applies any more: no block (a NewView may still need one)
        pre_prepare = PrePrepare.sign(
            self._key, self.chain_id, view=self.view, block=block, sender=self.member_id
        )
        self._state.validated[block.block_hash] = None
        self._persist(self.record.model_copy(update={"pre_prepare_hash": block.block_hash}))
        self._broadcast_own(pre_prepare)
        self._accept_proposal(pre_prepare)

    def _on_pre_prepare(self, sender: str, message: PrePrepare) -> None:
        verdict = self._classify(sender, message.height, message.view)
        if verdict != "now":
            if verdict == "future":
                self._buffer(sender, message)
            return
        state = self._state
        if sender != self.primary(message.view):
            self._drop("not_primary")
            return
        if state.entered_by_change:
            self._drop("needs_new_view")
            return
        if not message.signature_is_valid(self.chain_id, self._public_keys[sender]):
            self._drop("bad_signature")
            return
        existing = state.proposals.get(message.view)
        if existing is not None and existing.block.block_hash == message.block.block_hash:
            self._drop("duplicate")
            return
        if not self._first_proposal_of_view(message):
            return
        reason = self._check_block(message.block, message.view, fresh=True)
        if reason is not None:
            self._reject_proposal(message, reason)
            return
        self._accept_proposal(message)

    def _first_proposal_of_view(self, message: PrePrepare) -> bool:
        """Whether ``message`` (signed by the primary of its view) may be judged: it is the
        first proposal of its view, or the same block again (a refusal for the clock may be
        reversed; the application's verdict is remembered per block, never recomputed).

        A second, different proposal of one view is equivocation: it is never validated or
        executed, so a byzantine primary costs one validation per view, not one per message.
        Evidence is reported once per view; further ones are only counted.
        """
        state = self._state
        first = state.judged.setdefault(message.view, message)
        if first.block.block_hash == message.block.block_hash:
            return True
        if message.view in state.equivocated_views:
            self._drop("equivocation_repeated")
            return False
        state.equivocated_views.add(message.view)
        self._note_evidence(message.sender, first, message)
        return False

    def _reject_proposal(self, message: PrePrepare, reason: str) -> None:
        """Count a refused proposal; report it once per view (the primary's retransmissions
        of the same block would otherwise repeat the report, and the node's log line)."""
        self._drop("invalid_proposal")
        if message.view in self._state.reported_views:
            return
        self._state.reported_views.add(message.view)
        self._out.append(
            ReportRejectedProposal(
                height=message.height, view=message.view, proposer=message.sender, reason=reason
            )
        )

    def _check_block(self, block: Block, view: int, *, fresh: bool) -> str | None:
        """Why ``block`` may not be prepared in ``view`` at this height, or None."""
        header = block.header
        tip = self._application.tip()
        if header.chain_id != self.chain_id:
            return "chain_id of another consortium"
        if header.height != self.height:
            return f"height {header.height}, expected {self.height}"
        if header.prev_hash != tip.block_hash:
            return "prev_hash is not the tip"
        if header.timestamp_ms <= tip.timestamp_ms:
            return "timestamp not after the parent's"
        if header.members_hash != self._members_hash:
            return "members_hash is not the member set in force"
        if fresh:
            if header.view != view or header.proposer != self.primary(view):
                return "view or proposer does not match the primary of the view"
            if abs(header.timestamp_ms - self.now_ms) > self.config.timestamp_drift_ms_max:
                return "timestamp too far from this replica's clock"
        elif header.view > view or header.proposer != self.primary(header.view):
            return "re-proposed block from an unexpected view or proposer"
        state = self._state
        if block.block_hash not in state.validated:
            state.validated[block.block_hash] = self._application.validate(block)
        return state.validated[block.block_hash]

    def _accept_proposal(self, message: PrePrepare) -> None:
        """Take ``message`` as the proposal of its view and prepare it (persist, then send)."""
        state = self._state
        block = message.block
        state.proposals[message.view] = message
        state.blocks[block.block_hash] = block
        if message.view != self.view or not self.is_member:
            return
        if self.record.prepare_hash not in (None, block.block_hash):
            self._drop("conflicts_with_own_vote")
            return
        if state.prepares.first_vote.get((self.view, self.member_id)) is not None:
            return  # already prepared it in this run
        if self.record.prepare_hash is None:
            self._persist(self.record.model_copy(update={"prepare_hash": block.block_hash}))
        # Otherwise the vote was persisted before a restart: Ed25519 is deterministic, so
        # signing it again gives the very same vote, which the others may not have received.
        self._cast_vote(Prepare, state.prepares, self.view, block.block_hash)
        self._maybe_start_timer()
        self._check_prepared(self.view, block.block_hash)

    def _on_prepare(self, sender: str, message: Prepare) -> None:
        self._on_vote(sender, message, self._state.prepares, self._check_prepared)

    def _on_commit_vote(self, sender: str, message: CommitVote) -> None:
        # Commit votes of an earlier view at this height still make a valid certificate.
        if message.height == self.height and message.view < self.view:
            self._record_vote(sender, message, self._state.commits, self._check_committed)
            return
        self._on_vote(sender, message, self._state.commits, self._check_committed)

    def _on_vote(
        self,
        sender: str,
        message: Prepare | CommitVote,
        votes: VoteSet,
        then: Callable[[int, bytes], None],
    ) -> None:
        verdict = self._classify(sender, message.height, message.view)
        if verdict == "future":
            self._buffer(sender, message)
        if verdict == "now":
            self._record_vote(sender, message, votes, then)

    def _record_vote(
        self,
        sender: str,
        message: Prepare | CommitVote,
        votes: VoteSet,
        then: Callable[[int, bytes], None],
    ) -> None:
        if not message.signature_is_valid(self.chain_id, self._public_keys[sender]):
            self._drop("bad_signature")
            return
        if self._count_vote(votes, message):
            then(message.view, message.block_hash)

    def _count_vote(self, votes: VoteSet, message: Prepare | CommitVote) -> bool:
        """Add a verified vote; False (and evidence) if it conflicts with the sender's own."""
        conflict = votes.add(message.view, message.block_hash, message.sender, message.signature)
        if conflict is not None:
            self._note_evidence(message.sender, conflict, message)
            return False
        return True

    def _check_prepared(self, view: int, block_hash: bytes) -> None:
        state = self._state
        proposal = state.proposals.get(view)
        if (
            view != self.view
            or not self.is_member
            or self.record.commit_hash not in (None, block_hash)
            or state.commits.first_vote.get((view, self.member_id)) is not None
            or self.record.prepare_hash != block_hash
            or proposal is None
            or proposal.block.block_hash != block_hash
            or state.prepares.count(view, block_hash) < self.quorum()
        ):
            return
        certificate = PreparedCertificate(
            height=self.height,
            view=view,
            block_hash=block_hash,
            prepares=state.prepares.signed(view, block_hash),
        )
        self._persist(
            self.record.model_copy(
                update={
                    "commit_hash": block_hash,
                    "prepared": certificate,
                    "prepared_block": proposal.block,
                }
            )
        )
        self._cast_vote(CommitVote, state.commits, view, block_hash)
        self._check_committed(view, block_hash)

    def _check_committed(self, view: int, block_hash: bytes) -> None:
        state = self._state
        if self._committing is not None or state.commits.count(view, block_hash) < self.quorum():
            return
        block = state.blocks.get(block_hash)
        if block is None:
            # A quorum committed a block we never received: fetch it from the voters.
            self._sync_target = max(self._sync_target, self.height)
            signers = [member for member, _ in state.commits.signed(view, block_hash)]
            self._request_fetch(next((m for m in signers if m != self.member_id), None))
            return
        certificate = CommitCertificate(
            height=self.height,
            view=view,
            block_hash=block_hash,
            signatures=state.commits.signed(view, block_hash),
        )
        reason = self._check_block(block, view, fresh=False)
        if reason is not None:
            self._drop("certified_block_invalid")
            return
        self._commit(block, certificate)

    def _commit(self, block: Block, certificate: CommitCertificate) -> None:
        self._committing = certificate
        self._timer_ticks_left = None
        self._out.append(CommitBlock(block=block, certificate=certificate))

    # --- view change --------------------------------------------------------------------------

    def _timeout_ticks(self) -> int:
        exponent = min(self._state.view_changes_in_a_row, 30)
        return min(self.config.view_timeout_ticks * 2**exponent, self.config.view_timeout_ticks_max)

    def _maybe_start_timer(self) -> None:
        if (
            not self.is_member
            or self._timer_ticks_left is not None
            or self._committing is not None
            or self._awaiting_view is not None
        ):
            return
        if self._state.proposals or self._application.has_pending_transactions():
            self._timer_ticks_left = self._timeout_ticks()

    def _tick_timer(self) -> None:
        if self._timer_ticks_left is None:
            return
        state = self._state
        if (
            not state.proposals
            and not state.entered_by_change
            and not self._application.has_pending_transactions()
        ):
            self._timer_ticks_left = None  # the work that started it is gone
            return
        if self._sync_target >= self.height:
            # A quorum has committed this height already (a certificate, a commit quorum or
            # f+1 claims said so): this replica is behind and fetching, the view has not
            # failed. Timing out would only carry it, alone, into views the others are not in.
            return
        self._timer_ticks_left -= 1
        if self._timer_ticks_left <= 0:
            self._start_view_change(self.view + 1)

    def _enter_view(self, view: int, *, await_quorum: bool) -> None:
        """Move to ``view``; with ``await_quorum`` the timer starts only once q view
        changes for it are known (PBFT's liveness rule), else at once."""
        assert view > self.view, "a replica never returns to a lower view"
        self.view = view
        # Keep retransmitting commit votes (a certificate of an old view is still valid) and
        # view changes (a replica still in the old view may need ours to reach its quorum and
        # start its own timer); the old view's other messages no longer matter.
        kept = [
            message
            for message in self._own_messages
            if isinstance(message, CommitVote | ViewChange)
        ]
        self._own_messages.clear()
        self._own_messages.extend(kept)
        state = self._state
        state.entered_by_change = True
        state.view_changes_in_a_row += 1
        self._awaiting_view = view if await_quorum else None
        self._timer_ticks_left = None if await_quorum else self._timeout_ticks()

    def _check_view_quorum(self) -> None:
        """Start the timer of the awaited view once a quorum has reached it (or gone beyond:
        members already in a higher view cannot send a view change for this one, and without
        counting them a replica that fell behind could wait for ever)."""
        state = self._state
        view = self._awaiting_view
        if view is None:
            return
        reached = sum(1 for latest in state.latest_view_change.values() if latest >= view)
        if max(reached, len(state.view_changes.get(view, {}))) >= self.quorum():
            self._awaiting_view = None
            self._timer_ticks_left = self._timeout_ticks()

    def _start_view_change(self, view: int) -> None:
        self._enter_view(view, await_quorum=True)
        self._persist(self.record.at_view(view))
        message = ViewChange.sign(
            self._key,
            self.chain_id,
            height=self.height,
            view=view,
            prepared=self.record.prepared,
            sender=self.member_id,
            prepared_block=self.record.prepared_block,
        )
        self._broadcast_own(message)
        self._state.view_changes.setdefault(view, {})[self.member_id] = message
        self._state.latest_view_change[self.member_id] = view
        self._check_view_quorum()
        self._drain_future()
        self._maybe_send_new_view(view)

    def _prepared_certificate_is_valid(
        self, certificate: PreparedCertificate, for_view: int
    ) -> bool:
        return (
            certificate.height == self.height
            and certificate.view < for_view
            and len(certificate.prepares) >= self.quorum()
            and certificate.signatures_are_valid(self.chain_id, self._public_keys)
        )

    def _view_change_is_valid(self, message: ViewChange, height: int, view: int) -> bool:
        public_key = self._public_keys.get(message.sender)
        return (
            public_key is not None
            and message.height == height
            and message.view == view
            and message.signature_is_valid(self.chain_id, public_key)
            and (
                message.prepared is None
                or self._prepared_certificate_is_valid(message.prepared, view)
            )
        )

    def _on_view_change(self, sender: str, message: ViewChange) -> None:
        if message.height < self.height:
            self._answer_status(sender)
            self._drop("old_height")
            return
        verdict = self._classify(sender, message.height, None)
        if verdict == "future":
            self._buffer(sender, message)
        if verdict != "now":
            return
        if message.view <= self.view and message.view in self._state.new_views_done:
            self._drop("old_view")
            return
        if message.view > self.view + self.config.view_window or message.view < self.view:
            self._drop("far_view" if message.view > self.view else "old_view")
            return
        state = self._state
        known = state.view_changes.setdefault(message.view, {})
        if sender in known:
            self._drop("duplicate")
            return
        if not self._view_change_is_valid(message, self.height, message.view):
            self._drop("bad_view_change")
            return
        known[sender] = message
        state.latest_view_change[sender] = max(
            state.latest_view_change.get(sender, 0), message.view
        )
        if message.view == self.view and self.member_id not in known:
            self._support_view_change(self.view)
        self._apply_join_rule()
        self._check_view_quorum()
        self._maybe_send_new_view(self.view)

    def _apply_join_rule(self) -> None:
        """f+1 view changes for views above ours: move to the smallest view they justify."""
        higher = sorted(
            (view for view in self._state.latest_view_change.values() if view > self.view),
            reverse=True,
        )
        if self.is_member and len(higher) >= self.weak_quorum():
            self._start_view_change(higher[self.weak_quorum() - 1])

    def _choose_prepared(
        self, view_changes: list[ViewChange]
    ) -> tuple[PreparedCertificate | None, set[bytes]]:
        """The highest-view prepared certificate among ``view_changes``, and its block hashes."""
        certificates = [vc.prepared for vc in view_changes if vc.prepared is not None]
        if not certificates:
            return None, set()
        top = max(certificate.view for certificate in certificates)
        best = [certificate for certificate in certificates if certificate.view == top]
        return best[0], {certificate.block_hash for certificate in best}

    def _maybe_send_new_view(self, view: int) -> None:
        state = self._state
        if (
            self.primary(view) != self.member_id
            or view != self.view
            or view in state.new_views_done
            or self._committing is not None
        ):
            return
        collected = [state.view_changes[view][m] for m in sorted(state.view_changes.get(view, {}))]
        if len(collected) < self.quorum():
            return
        pre_prepare = self._new_view_proposal(view, collected)
        if pre_prepare is None:
            return
        state.new_views_done.add(view)
        message = NewView.sign(
            self._key,
            self.chain_id,
            height=self.height,
            view=view,
            view_changes=tuple(vc.without_block() for vc in collected),
            pre_prepare=pre_prepare,
            sender=self.member_id,
        )
        block_hash = pre_prepare.block.block_hash
        state.validated.setdefault(block_hash, None)
        if self.record.pre_prepare_hash is None:
            self._persist(self.record.model_copy(update={"pre_prepare_hash": block_hash}))
        self._broadcast_own(message)
        self._accept_proposal(pre_prepare)

    def _new_view_proposal(self, view: int, collected: list[ViewChange]) -> PrePrepare | None:
        """The proposal a NewView for ``view`` must carry, or None if this replica cannot
        make it without contradicting what it already signed in ``view``."""
        state = self._state
        chosen, allowed = self._choose_prepared(collected)
        signed = self.record.pre_prepare_hash
        if signed is not None:
            # Already proposed in this view (a bare proposal before the others joined it):
            # the NewView may only carry that same signed proposal, if the rule allows it.
            own = state.proposals.get(view)
            if own is None or own.block.block_hash != signed:
                self._drop("new_view_would_equivocate")
                return None
            if chosen is not None and signed not in allowed:
                self._drop("new_view_would_equivocate")
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
                self._drop("prepared_block_unknown")
                return None
        else:
            block = self._application.propose(
                height=self.height,
                view=view,
                timestamp_ms=max(self.now_ms, self._application.tip().timestamp_ms + 1),
                proposer=self.member_id,
            )
        return PrePrepare.sign(
            self._key, self.chain_id, view=view, block=block, sender=self.member_id
        )

    def _support_view_change(self, view: int) -> None:
        """Others move into ``view``, where this replica already is: add its own ViewChange
        so that they can reach a quorum (it would otherwise never send one for this view)."""
        prepared = self.record.prepared
        if not self.is_member or (prepared is not None and prepared.view >= view):
            return  # prepared in this very view: a commit is near, no view change needed
        self._state.entered_by_change = True
        self._persist(self.record.model_copy(update={"entered_by_view_change": True}))
        message = ViewChange.sign(
            self._key,
            self.chain_id,
            height=self.height,
            view=view,
            prepared=prepared,
            sender=self.member_id,
            prepared_block=self.record.prepared_block if prepared is not None else None,
        )
        self._broadcast_own(message)
        self._state.view_changes.setdefault(view, {})[self.member_id] = message
        self._state.latest_view_change[self.member_id] = view

    def _on_new_view(self, sender: str, message: NewView) -> None:
        verdict = self._classify(sender, message.height, None)
        if verdict == "future":
            self._buffer(sender, message)
        if verdict != "now":
            return
        state = self._state
        view = message.view
        if view < self.view or view in state.new_views_done:
            self._drop("old_view")
            return
        if view > self.view + self.config.view_window:
            self._drop("far_view")
            return
        reason = self._new_view_problem(sender, message)
        if reason is EQUIVOCATION:
            return
        if reason is not None:
            self._drop("bad_new_view")
            if reason.startswith("proposal:"):
                self._reject_proposal(message.pre_prepare, reason)
            return
        state.new_views_done.add(view)
        if view > self.view:
            self._enter_view(view, await_quorum=False)
            self._persist(self.record.at_view(view))
        elif self._awaiting_view is not None:
            self._awaiting_view = None
            self._timer_ticks_left = self._timeout_ticks()
        state.entered_by_change = True
        self._accept_proposal(message.pre_prepare)
        self._drain_future()

    def _new_view_problem(self, sender: str, message: NewView) -> str | None:
        """Why ``message`` does not justify its proposal, or None if it does."""
        view = message.view
        if sender != self.primary(view):
            return "not the primary of the view"
        if not message.signature_is_valid(self.chain_id, self._public_keys[sender]):
            return "bad signature"
        senders = {vc.sender for vc in message.view_changes}
        if len(senders) != len(message.view_changes) or len(senders) < self.quorum():
            return "not a quorum of distinct view changes"
        if not all(
            self._view_change_is_valid(vc, self.height, view) for vc in message.view_changes
        ):
            return "an invalid view change"
        pre_prepare = message.pre_prepare
        if (
            pre_prepare.view != view
            or pre_prepare.sender != sender
            or pre_prepare.height != self.height
            or not pre_prepare.signature_is_valid(self.chain_id, self._public_keys[sender])
        ):
            return "an invalid pre-prepare"
        chosen, allowed = self._choose_prepared(list(message.view_changes))
        if chosen is not None and pre_prepare.block.block_hash not in allowed:
            return "does not re-propose the highest prepared block"
        if not self._first_proposal_of_view(pre_prepare):
            return EQUIVOCATION  # counted as such, never validated
        reason = self._check_block(pre_prepare.block, view, fresh=chosen is None)
        return None if reason is None else f"proposal: {reason}"

    # --- catch-up -----------------------------------------------------------------------------

    def _status(self) -> Status:
        tip = self._application.tip()
        committed = self._application.committed_block(tip.height) if tip.height else None
        return Status(
            height=tip.height,
            certificate=committed[1] if committed else None,
            sender=self.member_id,
        )

    def _answer_status(self, peer: str) -> None:
        """Tell a lagging peer our tip, at most once per status interval."""
        last = self._status_answered.get(peer)
        if last is not None and self.ticks - last < self.config.status_interval_ticks:
            return
        self._status_answered[peer] = self.ticks
        self._out.append(Send(to=peer, message=self._status()))

    def _note_claim(self, sender: str, height: int) -> None:
        """A peer implies it has committed ``height``; f+1 such peers are worth believing."""
        if height < self.height:
            return
        self._height_claims[sender] = max(self._height_claims.get(sender, 0), height)
        claims = sorted(self._height_claims.values(), reverse=True)
        if len(claims) >= self.weak_quorum():
            target = claims[self.weak_quorum() - 1]
            if target > self._sync_target:
                self._sync_target = target
                self._request_fetch(sender)

    def _certificate_is_valid(self, certificate: CommitCertificate | None) -> bool:
        if certificate is None:
            return False
        try:
            certificate.verify(self.chain_id, self.members)
        except InvalidCertificateError:
            return False
        return True

    def _on_status(self, sender: str, message: Status) -> None:
        if message.height + 1 < self.height:
            self._answer_status(sender)
            return
        if message.height < self.height:
            return
        certificate = message.certificate
        if (
            certificate is not None
            and certificate.height == message.height
            and self._certificate_is_valid(certificate)
        ):
            if message.height == self.height and self._commit_certified(certificate):
                return
            if message.height > self._sync_target:
                self._sync_target = message.height
                self._request_fetch(sender)
            return
        self._note_claim(sender, message.height)

    def _commit_certified(self, certificate: CommitCertificate) -> bool:
        """Commit the block of a verified certificate for this height if this replica holds
        it (typically as its own prepared block); True if it did.

        The commit votes of a view may reach only one member (a byzantine one, say, that
        then serves forged certificates): the others are prepared on the block but never see
        the certificate form. The certificate in that member's status finishes the height.
        """
        block = self._state.blocks.get(certificate.block_hash)
        if block is None or self._committing is not None:
            return False
        if self._check_block(block, certificate.view, fresh=False) is not None:
            self._drop("certified_block_invalid")
            return False
        self._commit(block, certificate)
        return True

    def _request_fetch(self, peer: str | None = None) -> None:
        if self._fetch_pending is not None or self._committing is not None:
            return
        first = self.height
        while first in self._fetched:
            first += 1
        last = min(self._sync_target, first + BLOCKS_PER_RESPONSE_MAX - 1)
        if first > last:
            return
        if peer is None or peer not in self._public_keys or peer == self.member_id:
            peer = self._next_peer(None)
        self._fetch_pending = (peer, self.config.fetch_timeout_ticks)
        request = BlockRequest(from_height=first, to_height=last, sender=self.member_id)
        self._out.append(FetchBlocks(peer=peer, request=request))

    def _next_peer(self, after: str | None) -> str:
        others = [member.id for member in self.members if member.id != self.member_id]
        if after not in others:
            return others[self.ticks % len(others)]
        return others[(others.index(after) + 1) % len(others)]

    def _tick_fetch(self) -> None:
        if self._fetch_pending is None:
            return
        peer, ticks_left = self._fetch_pending
        if ticks_left > 1:
            self._fetch_pending = (peer, ticks_left - 1)
            return
        self._fetch_pending = None
        self._request_fetch(self._next_peer(peer))

    def _on_block_request(self, sender: str, message: BlockRequest) -> None:
        blocks: list[tuple[Block, CommitCertificate]] = []
        size = 0
        last = min(message.to_height, self._application.tip().height)
        for height in range(message.from_height, last + 1):
            committed = self._application.committed_block(height)
            if committed is None:
                break
            size += len(committed[0].to_bytes())
            if blocks and size > self.config.response_bytes_max:
                break
            blocks.append(committed)
        self._out.append(
            Send(to=sender, message=BlockResponse(blocks=tuple(blocks), sender=self.member_id))
        )

    def _on_block_response(self, sender: str, message: BlockResponse) -> None:
        for block, certificate in message.blocks:
            if (
                self.height <= block.height <= self.height + BLOCKS_PER_RESPONSE_MAX
                and block.height not in self._fetched
            ):
                self._fetched[block.height] = (block, certificate, sender)
        height_before = self.height
        bad_before = self.dropped["bad_fetched_block"]
        self._process_fetched()
        progressed = self._committing is not None or self.height > height_before
        if not progressed and self.dropped["bad_fetched_block"] == bad_before:
            # An answer without the block: the pending fetch times out and moves to the next
            # peer (asking at once would bounce requests around the members without pause
            # while no correct peer has committed the block yet). A forged answer, or one
            # that moved the tip, moves on at once.
            self._drop("block_response_without_progress")
            return
        if self._fetch_pending is not None and self._fetch_pending[0] == sender:
            self._fetch_pending = None
        if self._committing is None:
            self._request_fetch(self._next_peer(sender))

    def _process_fetched(self) -> None:
        if self._committing is not None:
            return
        entry = self._fetched.pop(self.height, None)
        if entry is None:
            return
        block, certificate, peer = entry
        problem = self._fetched_block_problem(block, certificate)
        if problem is not None:
            self._drop("bad_fetched_block")
            self._fetched = {h: e for h, e in self._fetched.items() if e[2] != peer}
            return
        self._state.blocks[block.block_hash] = block
        self._commit(block, certificate)

    def _fetched_block_problem(self, block: Block, certificate: CommitCertificate) -> str | None:
        if certificate.height != block.height or certificate.block_hash != block.block_hash:
            return "the certificate is for another block"
        if not self._certificate_is_valid(certificate):
            return "the certificate does not verify"
        return self._check_block(block, certificate.view, fresh=False)
