"""The PBFT replica: a synchronous, deterministic state machine with no I/O.

Theory of operation
-------------------
The chain is decided **one height at a time** (docs/architecture.md, decision 8). At height
``h`` the replica runs PBFT's three phases among the member set in force at ``h`` (n members,
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

Where it lives
--------------
This module holds the replica's shell: its public events, the dispatch of a message (who
may speak, then the height and view windows, then the handler of its mode) and the state
every part shares. The mode is a :class:`~consensus.modes.Mode`. The parts, each a class
that works on the replica it belongs to:

* :mod:`consensus.normal` — proposals, prepares, commit votes and the commit certificate;
* :mod:`consensus.viewchange` — the view timer, view changes and new views;
* :mod:`consensus.catchup` — status, block requests and responses, fetched blocks;
* :mod:`consensus.buffer` — the bounded buffer of future messages;
* :mod:`consensus.drops` — the drop reasons (metric labels) and the classifier's verdicts.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from consensus.actions import Action, Broadcast, CommitBlock, PersistSafety, ReportEvidence
from consensus.application import Application
from consensus.buffer import FutureMessages
from consensus.catchup import CatchUp
from consensus.drops import DROP_REASONS, DropReason, Verdict
from consensus.messages import (
    SIGNED_MESSAGE_TYPES,
    BlockRequest,
    BlockResponse,
    CommitVote,
    Message,
    NewView,
    Prepare,
    PrePrepare,
    SignedMessage,
    Status,
    ViewChange,
    message_size_bytes,
)
from consensus.modes import HeightState, Mode
from consensus.normal import NormalCase
from consensus.quorum import VoteSet, quorum_size, weak_quorum_size
from consensus.safety import SafetyRecord
from consensus.viewchange import ViewChanges
from ledger import crypto
from ledger.model import Block, CommitCertificate, Member, members_hash

__all__ = ["DROP_REASONS", "DropReason", "Replica", "ReplicaConfig"]


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


@dataclass(frozen=True, slots=True)
class _ViewRule:
    """How the classifier judges the view of one message type at the height in progress."""

    earlier: Verdict
    """A view below the current one: dropped as ``old_view``, or handled (commit votes)."""
    later: Verdict
    """A view above the current one, within the view window: buffered, or handled."""
    closed_views_are_old: bool = False
    """A view whose NewView this replica already accepted or sent counts as old."""
    old_height_earns_status: bool = False
    """A message of an old height earns its sender this replica's Status."""


_VIEW_RULES: dict[type, _ViewRule] = {
    PrePrepare: _ViewRule(earlier=Verdict.DROP, later=Verdict.FUTURE),
    Prepare: _ViewRule(earlier=Verdict.DROP, later=Verdict.FUTURE),
    # Commit votes of an earlier view at this height still make a valid certificate.
    CommitVote: _ViewRule(earlier=Verdict.NOW, later=Verdict.FUTURE),
    # A view change is by nature for a later view: the view window alone bounds it. A replica
    # still changing views at a height the others have left learns of it from their Status.
    ViewChange: _ViewRule(
        earlier=Verdict.DROP,
        later=Verdict.NOW,
        closed_views_are_old=True,
        old_height_earns_status=True,
    ),
    NewView: _ViewRule(earlier=Verdict.DROP, later=Verdict.NOW, closed_views_are_old=True),
}
"""The messages of the height in progress, judged by height and view before their handler
runs (``Status``, ``BlockRequest`` and ``BlockResponse`` carry no view and go straight in)."""
assert set(_VIEW_RULES) == set(SIGNED_MESSAGE_TYPES), "a view rule for every signed message"

Handler = Callable[[str, Any], None]


class Replica:
    """One member's PBFT state machine. Feed it events; execute the actions it returns."""

    normal_case_type: ClassVar[type[NormalCase]] = NormalCase
    view_changes_type: ClassVar[type[ViewChanges]] = ViewChanges
    catch_up_type: ClassVar[type[CatchUp]] = CatchUp
    """The parts; a test subclass may swap one for a variant that breaks it on purpose."""

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
        """Dropped messages by reason: the :class:`DropReason` labels (plain strings)."""
        self.evidence: collections.deque[tuple[str, SignedMessage, SignedMessage]] = (
            collections.deque(maxlen=self.config.evidence_max)
        )
        self._out: list[Action] = []
        self._future_messages = FutureMessages(
            messages_max=self.config.future_messages_per_sender_max,
            bytes_max=self.config.future_bytes_per_sender_max,
        )
        self.mode = Mode.NORMAL
        self._committing: CommitCertificate | None = None
        """The certificate of the block handed to the driver: set exactly in ``COMMITTING``."""
        # The height in progress: set for real by _begin_height, below and at every commit.
        self.height = 0
        self.view = 0
        self.members: tuple[Member, ...] = ()
        self._public_keys: dict[str, bytes] = {}
        self._members_hash = b""
        self._state = HeightState()
        self._own_messages: collections.deque[SignedMessage] = collections.deque(
            maxlen=self.config.own_messages_max
        )
        self.record = SafetyRecord(height=1, view=0)
        self._normal = self.normal_case_type(self)
        self._view_changes = self.view_changes_type(self)
        self._catch_up = self.catch_up_type(self)
        tip = application.tip()
        self.view = max(tip.view, safety.view if safety is not None else 0)
        self._begin_height(safety)
        self._steps = self._step_tables()

    def _step_tables(self) -> dict[Mode, dict[type, Handler]]:
        """Per mode, the handler of each message type (the mode swaps the table)."""
        deciding: dict[type, Handler] = {
            PrePrepare: self._normal.on_pre_prepare,
            Prepare: self._normal.on_prepare,
            CommitVote: self._normal.on_commit_vote,
            ViewChange: self._view_changes.on_view_change,
            NewView: self._view_changes.on_new_view,
            Status: self._catch_up.on_status,
            BlockRequest: self._catch_up.on_block_request,
            BlockResponse: self._catch_up.on_block_response,
        }
        # While a certified block is being appended, only others' fetches are served; the
        # rest waits for the next height (it may well be about it).
        committing = {kind: self._buffer for kind in deciding}
        committing[BlockRequest] = self._catch_up.on_block_request
        return {Mode.NORMAL: deciding, Mode.VIEW_CHANGE: deciding, Mode.COMMITTING: committing}

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
        return self.mode is Mode.COMMITTING or self.view in self._state.proposals

    # --- read-only views for the drivers' invariant checks (tests/fuzz) -----------------------

    @property
    def _future(self) -> dict[str, collections.deque[tuple[Message, int]]]:
        return self._future_messages.queues

    @property
    def _future_bytes(self) -> dict[str, int]:
        return self._future_messages.bytes_used

    @property
    def _fetched(self) -> dict[int, Any]:
        return self._catch_up.fetched

    @property
    def _height_claims(self) -> dict[str, int]:
        return self._catch_up.height_claims

    @property
    def _status_answered(self) -> dict[str, int]:
        return self._catch_up.status_answered

    # --- public events ------------------------------------------------------------------------

    def on_tick(self, now_ms: int) -> list[Action]:
        """Time passes by one tick; ``now_ms`` is the driver's clock, used for timestamps."""
        self.now_ms = now_ms
        self.ticks += 1
        if self.mode is not Mode.COMMITTING:
            self._view_changes.tick_timer()
            self._catch_up.tick()
            if self.ticks % self.config.status_interval_ticks == 0:
                self._out.append(Broadcast(message=self._catch_up.status()))
            if self.ticks % self.config.retransmit_interval_ticks == 0:
                self._out.extend(Broadcast(message=message) for message in self._own_messages)
            self._normal.maybe_propose()
            self._view_changes.maybe_start_timer()
        return self._flush()

    def on_transactions(self, transactions: Any = ()) -> list[Action]:
        """New transactions are pending in the application's mempool."""
        if self.mode is not Mode.COMMITTING:
            self._normal.maybe_propose()
            self._view_changes.maybe_start_timer()
        return self._flush()

    def on_message(
        self, sender: str, message: Message, *, now_ms: int | None = None
    ) -> list[Action]:
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
        assert self.mode is Mode.COMMITTING, f"on_block_committed({height}) while {self.mode}"
        assert certificate is not None and certificate.height == height == self.height, (
            f"on_block_committed({height}) while committing {certificate and certificate.height}"
        )
        assert self._application.tip().height == height, "the application's tip did not move"
        self._committing = None
        self.view = max(self.view, certificate.view)
        self._begin_height(None)
        self._view_changes.carry_awaited_view(certificate.view)
        self._drain_future()
        self._catch_up.process_fetched()
        if self.mode is not Mode.COMMITTING:
            self._normal.maybe_propose()
            self._view_changes.maybe_start_timer()
            self._catch_up.request_fetch()
        return self._flush()

    # --- height lifecycle ---------------------------------------------------------------------

    def _begin_height(self, safety: SafetyRecord | None) -> None:
        tip = self._application.tip()
        self.height = tip.height + 1
        self.members = self._application.members()
        assert len(self.members) >= 1
        self._public_keys = {member.id: member.public_key for member in self.members}
        self._members_hash = members_hash(self.members)
        self._state = HeightState()
        self.mode = Mode.NORMAL
        self._own_messages.clear()
        self._view_changes.stop_timer()
        self._catch_up.begin_height()
        if safety is not None and safety.height == self.height:
            self.record = safety.at_view(max(safety.view, self.view))
            self.view = self.record.view
            if self.record.prepared_block is not None:
                block = self.record.prepared_block
                self._state.blocks[block.block_hash] = block
            if self.record.entered_by_view_change:
                self.mode = Mode.VIEW_CHANGE
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

    def _enter_view_change_mode(self) -> None:
        """The view in progress is (now) one entered by a view change at this height."""
        assert self.mode is not Mode.COMMITTING, "no view change while a commit is appended"
        self.mode = Mode.VIEW_CHANGE

    def _commit(self, block: Block, certificate: CommitCertificate) -> None:
        """Hand the certified ``block`` to the driver; nothing moves until it is appended."""
        assert self.mode is not Mode.COMMITTING
        self.mode = Mode.COMMITTING
        self._committing = certificate
        self._view_changes.stop_timer()
        self._out.append(CommitBlock(block=block, certificate=certificate))

    def _persist(self, record: SafetyRecord) -> None:
        self.record = record
        self._out.append(PersistSafety(record=record))

    # --- dispatch and windows -----------------------------------------------------------------

    def _dispatch(self, sender: str, message: Message) -> None:
        """Who may speak, then (for the height's messages) the windows, then the handler of
        the current mode."""
        handlers = self._steps[self.mode]
        handler = handlers.get(type(message))
        if handler is None:
            self._drop(DropReason.UNKNOWN_MESSAGE)
            return
        if sender not in self._public_keys or sender == self.member_id:
            self._drop(DropReason.NOT_A_MEMBER)
            return
        if getattr(message, "sender", None) != sender:
            self._drop(DropReason.SENDER_MISMATCH)
            return
        if self.mode is not Mode.COMMITTING and isinstance(message, SIGNED_MESSAGE_TYPES):
            verdict = self._classify(sender, message)
            if verdict is Verdict.FUTURE:
                self._buffer(sender, message)
            if verdict is not Verdict.NOW:
                return
        handler(sender, message)

    def _classify(self, sender: str, message: SignedMessage) -> Verdict:
        """Judge ``message`` by its height and view alone (the windows, in one place):
        :attr:`Verdict.NOW`, :attr:`Verdict.FUTURE` (to buffer), or :attr:`Verdict.DROP`
        (counted here)."""
        rule = _VIEW_RULES[type(message)]
        height = message.height
        if height < self.height:
            if rule.old_height_earns_status:
                self._catch_up.answer_status(sender)
            self._drop(DropReason.OLD_HEIGHT)
            return Verdict.DROP
        if height > self.height + self.config.height_window:
            self._drop(DropReason.FAR_HEIGHT)
            self._catch_up.note_claim(sender, height - 1)
            return Verdict.DROP
        if height > self.height:
            return Verdict.FUTURE  # its claim is noted once its signature verifies (_buffer)
        view = message.view
        if view < self.view:
            if rule.earlier is Verdict.NOW:
                return Verdict.NOW
            self._drop(DropReason.OLD_VIEW)
            return Verdict.DROP
        if rule.closed_views_are_old and view in self._state.new_views_done:
            self._drop(DropReason.OLD_VIEW)
            return Verdict.DROP
        if view > self.view + self.config.view_window:
            self._drop(DropReason.FAR_VIEW)
            return Verdict.DROP
        return rule.later if view > self.view else Verdict.NOW

    def _drop(self, reason: DropReason) -> None:
        """Count a dropped message under its stable label (:data:`DROP_REASONS`)."""
        assert reason in DROP_REASONS, f"unknown drop reason {reason!r}"
        self.dropped[reason.value] += 1

    def _future_problem(self, sender: str, message: Message) -> DropReason | None:
        """Why a message for later may not be buffered, judged with the keys in force now.

        Who before what: the sender's signature (and, for a proposal or a new view, its role
        as the primary of the view) is checked before anything is kept. If the member set
        changes at the next height, a genuine message of a new key or primary is dropped
        here; its sender retransmits it while the height is undecided, and a decided height
        is fetched with its certificate, so this costs time, never liveness.
        """
        public_key = self._public_keys[sender]
        if isinstance(message, PrePrepare | NewView) and sender != self.primary(message.view):
            return DropReason.NOT_PRIMARY
        if isinstance(message, SIGNED_MESSAGE_TYPES) and not message.signature_is_valid(
            self.chain_id, public_key
        ):
            return DropReason.BAD_SIGNATURE
        return None

    def _buffer(self, sender: str, message: Message) -> None:
        """Keep a message for a later height or view (or until a commit completes), within
        the sender's budget: :attr:`ReplicaConfig.future_messages_per_sender_max` messages
        and :attr:`ReplicaConfig.future_bytes_per_sender_max` bytes (see
        :class:`~consensus.buffer.FutureMessages`)."""
        problem = self._future_problem(sender, message)
        if problem is not None:
            self._drop(problem)
            return
        size = message_size_bytes(message)
        if size > self.config.future_bytes_per_sender_max:
            self._drop(DropReason.FUTURE_MESSAGE_TOO_LARGE)
            return
        for _ in range(self._future_messages.add(sender, message, size)):
            self._drop(DropReason.FUTURE_BUFFER_FULL)
        if (
            self.mode is not Mode.COMMITTING
            and isinstance(message, SIGNED_MESSAGE_TYPES)
            and message.height > self.height
        ):
            self._catch_up.note_claim(sender, message.height - 1)  # the sender is at a later height

    def _drain_future(self) -> None:
        for sender, queue in self._future_messages.take_all().items():
            for message, _ in queue:
                if self.mode is Mode.COMMITTING:
                    self._buffer(sender, message)
                else:
                    self._dispatch(sender, message)

    # --- this replica's own messages ----------------------------------------------------------

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

    def _broadcast_own(self, message: SignedMessage) -> None:
        """Broadcast a message this replica signed, and keep it for retransmission."""
        self._own_messages.append(message)
        self._out.append(Broadcast(message=message))

    def _flush(self) -> list[Action]:
        out, self._out = self._out, []
        return out

    def _note_evidence(self, member: str, first: SignedMessage, second: SignedMessage) -> None:
        self.evidence.append((member, first, second))
        self._drop(DropReason.EQUIVOCATION)
        self._out.append(ReportEvidence(member=member, first=first, second=second))
