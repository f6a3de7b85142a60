"""The node daemon: an asyncio loop that drives the sans-I/O replica.

Theory of operation
-------------------
A :class:`Node` is composed of a handful of collaborators passed in explicitly: the LevelDB
:class:`~ledger.store.ChainStore`, the contract :class:`~contracts.engine.Engine`, the
:class:`~node.runtime.mempool.Mempool`, the
:class:`~node.runtime.application.ChainApplication` that joins
them for consensus, the :class:`~consensus.replica.Replica`, and the peer transport. The node
feeds the replica three kinds of events — a tick every ``tick_ms`` (with the wall clock, used
only to stamp and check block times), peer messages, and new transactions — and executes the
actions it returns with the one executor (:func:`consensus.driver.execute_actions`, on the
node's port ``_NodePort``), in order, exactly as the replica's contract demands:

* ``PersistSafety`` → written to the store with ``sync=True`` before anything after it;
* ``Send`` / ``Broadcast`` / ``FetchBlocks`` → frames queued on the peer transport;
* ``CommitBlock`` → the block, certificate and state writes appended in one synced batch,
  then ``on_block_committed`` and its own actions.

Everything runs on the event loop's thread, so the replica, the store and the mempool are
never touched concurrently. A node killed at any instant restarts from its store (blocks and
the last safety record) and catches up from its peers.

Peer frames: who before what, bytes before work
-----------------------------------------------
A member's key may be in hostile hands (f of them, by PBFT's promise). Every frame a peer
sends goes through :meth:`Node.on_frame` in this order, each step cheap next to the next:

1. :func:`node.runtime.wire.scan_frame` reads the envelope without decoding the bulk: the kind, its
   byte limit (a vote is at most 64 KiB, a proposal ``block_bytes_max`` + 64 KiB), the number
   of transactions of each block against ``block_transactions_max``, each transaction's size;
2. the sender named in the frame must be the authenticated peer; a proposal (``pre_prepare``,
   ``new_view``) must come from the primary of its view; a ``pre_prepare``'s signature is
   checked over the raw header's hash; a ``pre_prepare`` for a past height is dropped; a peer
   whose proposal this node refused already gets no other one decoded for the same height
   and view (:attr:`PeerLimits.rejected_proposals_per_view_max`); a ``block_response`` larger
   than a small frame must answer a request of ours;
3. the frame is charged to one of its peer's two byte budgets (token buckets): frames larger
   than a small frame to :attr:`PeerLimits.large_frame_bytes_per_s` and
   :attr:`PeerLimits.large_frame_burst_bytes`, sized so that an honest primary proposing a
   maximum-size block every second never reaches it; the others to
   :attr:`PeerLimits.small_frame_bytes_per_s` and :attr:`PeerLimits.small_frame_burst_bytes`.
   Over budget, a frame is dropped (never decoded) and the connection stays up: consensus
   retransmits what matters. Block responses to our own requests are not charged;
4. only then is the frame decoded (:func:`node.runtime.wire.decode_frame`) and handed to the
   replica.

A ``checkpoint_signature`` frame (a member's signature of a committed block's checkpoint,
node/runtime/checkpoints.py) is small, and also charged to a budget of its own per peer
(:attr:`PeerLimits.checkpoint_signatures_per_s`), since each costs a verification; the
:class:`~node.runtime.checkpoints.CheckpointService` counts what it refuses by reason. After
each commit of a format-2 block the node signs its checkpoint and sends the signature; the
witnesses' pushers (node/runtime/witnesses.py) run as tasks of their own, off this path.

Every refusal is counted in ``NodeMetrics.frames_rejected`` as ``<reason>:<kind>`` and per
peer in ``NodeMetrics.frames_rejected_by_peer`` (both in /metrics), and logged through a
:class:`LogAggregator`: the first lines of each kind per peer, then one summary line per
interval with the number suppressed. Every other per-message warning of the daemon (refused
proposals, equivocation evidence, view changes) goes through it as well.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consensus.actions import Action, ReportEvidence, ReportRejectedProposal
from consensus.driver import execute_actions
from consensus.messages import BlockRequest
from consensus.replica import Replica, ReplicaConfig
from consensus.safety import SafetyRecord
from contracts.base import Rejection
from contracts.engine import Engine
from ledger import crypto, domains
from ledger.model import (
    Block,
    CommitCertificate,
    ConsensusParameters,
    Transaction,
    vote_payload,
)
from ledger.namespace import FORMATS_STATE_KEY
from ledger.store import ChainStore
from node.runtime.application import ChainApplication
from node.runtime.checkpoints import (
    SIGN_AGE_MAX_MS,
    CheckpointService,
    Refusal,
    SignatureRefused,
)
from node.runtime.config import PeerLimits, RuntimeSettings, WitnessSettings
from node.runtime.formats import FormatOutlook, format_outlook
from node.runtime.mempool import Mempool
from node.runtime.wire import (
    CheckpointSignature,
    FrameError,
    FrameHeader,
    FrameLimits,
    FrameRefused,
    TransactionGossip,
    decode_frame,
    encode_frame,
    scan_frame,
)
from node.runtime.witnesses import Witnesses

__all__ = ["LogAggregator", "Node", "NodeMetrics", "PeerLimits", "replica_config_for"]

log = logging.getLogger("sceau.node")

QUIET_REFUSALS = frozenset({"old_height"})
"""Refusals that honest peers cause too (a primary retransmits its proposal until it sees the
commit): counted, neither logged nor held against the peer."""
QUIET_SIGNATURE_REFUSALS = frozenset({Refusal.STALE, Refusal.TOO_FAR_AHEAD})
"""Checkpoint signatures honest members send too (after a quorum formed; while this node
catches up): counted, not logged."""
LATENCY_BUCKETS_MS = (5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 30_000)
"""The buckets of /metrics' commit latency histogram: part of the metrics' format, not tuning."""


class _ByteBucket:
    """A token bucket of bytes: ``capacity_bytes`` at most, refilled at ``rate_bytes_per_s``."""

    __slots__ = ("_rate_bytes_per_s", "capacity_bytes", "level_bytes", "updated_s")

    def __init__(self, capacity_bytes: int, rate_bytes_per_s: int, now_s: float) -> None:
        self.capacity_bytes = capacity_bytes
        self._rate_bytes_per_s = rate_bytes_per_s
        self.level_bytes = float(capacity_bytes)
        self.updated_s = now_s

    def take(self, size_bytes: int, now_s: float) -> bool:
        """Spend ``size_bytes`` if the bucket holds them (True), else spend nothing (False)."""
        elapsed_s = max(0.0, now_s - self.updated_s)
        self.updated_s = now_s
        self.level_bytes = min(
            float(self.capacity_bytes), self.level_bytes + elapsed_s * self._rate_bytes_per_s
        )
        if size_bytes > self.level_bytes:
            return False
        self.level_bytes -= size_bytes
        return True


@dataclass(slots=True)
class _LogWindow:
    started_s: float
    logged: int = 0
    suppressed: int = 0
    last: tuple[str, tuple[object, ...]] = ("", ())


class LogAggregator:
    """Repeated log lines, aggregated: per key (the kind of event and the peer), the first
    ``lines_per_interval_max`` lines of each interval are logged, the others only counted; when
    the interval ends, one line says how many were suppressed and quotes the last one.

    :meth:`flush` (called on every tick) writes the summaries of the intervals that ended.
    Keys are bounded (``keys_max``): past it, new keys share one.
    """

    def __init__(
        self,
        logger: logging.Logger,
        *,
        lines_per_interval_max: int,
        interval_ms: int,
        keys_max: int = RuntimeSettings().log_keys_max,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        assert keys_max >= 1
        self._logger = logger
        self._keys_max = keys_max
        self._lines_max = lines_per_interval_max
        self._interval_s = interval_ms / 1000
        self._clock_s = clock_s
        self._windows: dict[tuple[str, str], _LogWindow] = {}
        self.suppressed_total = 0

    def log(self, level: int, key: tuple[str, str], message: str, *args: object) -> None:
        now = self._clock_s()
        if key not in self._windows and len(self._windows) >= self._keys_max:
            key = ("other", "*")
        window = self._windows.get(key)
        if window is not None and now - window.started_s >= self._interval_s:
            self._summarise(key, window)
            window = None
        if window is None:
            window = self._windows[key] = _LogWindow(started_s=now)
        if window.logged < self._lines_max:
            window.logged += 1
            self._logger.log(level, message, *args)
        else:
            window.suppressed += 1
            window.last = (message, args)
            self.suppressed_total += 1

    def warning(self, key: tuple[str, str], message: str, *args: object) -> None:
        self.log(logging.WARNING, key, message, *args)

    def flush(self) -> None:
        """Summarise and close the intervals that have ended."""
        now = self._clock_s()
        for key, window in list(self._windows.items()):
            if now - window.started_s >= self._interval_s:
                self._summarise(key, window)
                del self._windows[key]

    def _summarise(self, key: tuple[str, str], window: _LogWindow) -> None:
        if not window.suppressed:
            return
        message, args = window.last
        self._logger.warning(
            "%d more '%s' lines about %s suppressed in %.0f s; the last: " + message,
            window.suppressed,
            key[0],
            key[1] or "this node",
            self._interval_s,
            *args,
        )


def replica_config_for(
    parameters: ConsensusParameters, tick_ms: int, settings: RuntimeSettings | None = None
) -> ReplicaConfig:
    """Replica limits from the consortium's parameters in force, this node's tick and its
    runtime settings (node/runtime/config.py; the defaults if None).

    The parameters are read when the node starts: a governance change of the timeouts takes
    effect on each node at its next restart.
    """
    settings = settings or RuntimeSettings()
    timeout_ticks = max(2, math.ceil(parameters.view_timeout_ms / tick_ms))
    return ReplicaConfig(
        view_timeout_ticks=timeout_ticks,
        view_timeout_ticks_max=timeout_ticks * settings.view_timeout_growth_max,
        status_interval_ticks=_ticks(settings.status_interval_ms, tick_ms),
        retransmit_interval_ticks=_ticks(settings.retransmit_interval_ms, tick_ms),
        fetch_timeout_ticks=_ticks(settings.fetch_timeout_ms, tick_ms),
        timestamp_drift_ms_max=parameters.timestamp_drift_ms_max,
    )


def _ticks(duration_ms: int, tick_ms: int) -> int:
    """``duration_ms`` in ticks of ``tick_ms``, rounded up, at least one."""
    return max(1, math.ceil(duration_ms / tick_ms))


@dataclass(slots=True)
class NodeMetrics:
    """Counters and a histogram for /metrics (Prometheus text format)."""

    view_changes: int = 0
    blocks_committed: int = 0
    transactions_committed: int = 0
    frames_rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    """Peer frames dropped by the daemon, as ``<reason>:<kind>`` (node/runtime/wire.py,
    on_frame)."""
    frames_rejected_by_peer: collections.Counter[str] = field(default_factory=collections.Counter)
    proposals_rejected: int = 0
    evidence: int = 0
    latency_buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_MS))
    latency_count: int = 0
    latency_sum_ms: float = 0.0

    def observe_latency(self, milliseconds: float) -> None:
        self.latency_count += 1
        self.latency_sum_ms += milliseconds
        for index, bound in enumerate(LATENCY_BUCKETS_MS):
            if milliseconds <= bound:
                self.latency_buckets[index] += 1


class Node:
    """One member's running node (see the module doc)."""

    def __init__(
        self,
        *,
        member_id: str,
        key: crypto.PrivateKey,
        store: ChainStore,
        engine: Engine,
        mempool: Mempool,
        application: ChainApplication,
        replica_config: ReplicaConfig,
        tick_ms: int,
        clock_ms: Callable[[], int] | None = None,
        peer_limits: PeerLimits | None = None,
        settings: RuntimeSettings | None = None,
        witnesses: Sequence[WitnessSettings] = (),
    ) -> None:
        self.member_id = member_id
        self.settings = settings or RuntimeSettings()
        """The runtime tuning (node/runtime/config.py); its times reach the replica through
        :func:`replica_config_for`."""
        self.store = store
        self.engine = engine
        self.mempool = mempool
        self.application = application
        self.tick_ms = tick_ms
        self.metrics = NodeMetrics()
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.transport: Any = None
        saved = store.safety_record()
        safety = SafetyRecord.from_bytes(saved) if saved is not None else None
        self.replica = Replica(
            member_id=member_id,
            key=key,
            chain_id=store.chain_id,
            application=application,
            config=replica_config,
            safety=safety,
        )
        # Every map and queue below has a bound (docs/operations.md, "Bounds of the node's memory").
        self.evidence: collections.deque[tuple[str, Any, Any]] = collections.deque(
            maxlen=self.settings.evidence_kept_max
        )
        self._waiters: dict[bytes, list[asyncio.Future[None]]] = {}
        """Per transaction, the API requests waiting for its commit: one per open request, so
        bounded by the API's connection cap; a request's entry goes when it returns."""
        self._submitted_at: dict[bytes, float] = {}
        """When this node's clients submitted the transactions still pending, for the commit
        latency histogram: at most as many as the mempool holds (see _forget_stale_submissions)."""
        self._gossip: list[Transaction] = []
        """Submissions not gossiped yet: sent when the event loop is free, or at
        ``gossip_batch_transactions_max``."""
        self._gossip_flush_scheduled = False
        self._idle_ticks = 0
        self._ticker: asyncio.Task[None] | None = None
        self._last_view = self.replica.view
        self._dropped_at_last_view: collections.Counter[str] = collections.Counter()
        self.started_at = time.monotonic()
        self.peer_limits = peer_limits or PeerLimits()
        self.log = LogAggregator(
            log,
            lines_per_interval_max=self.peer_limits.log_lines_per_interval_max,
            interval_ms=self.peer_limits.log_interval_ms,
            keys_max=self.settings.log_keys_max,
        )
        self._frame_limits_for: tuple[Any, int] | None = None
        self._frame_limits = FrameLimits()
        self._budgets: dict[tuple[str, bool], _ByteBucket] = {}
        """Two per authenticated peer; a member's go when it leaves the member set."""
        self._fetches_outstanding: collections.Counter[str] = collections.Counter()
        """Per peer, at most ``fetches_outstanding_max``; a member's go when it leaves."""
        self._rejected_proposals: dict[tuple[str, int, int], set[bytes | None]] = {}
        """The block hashes of the proposals refused, per (proposer, height, view): at most
        ``rejected_proposal_views_max`` keys, each with at most
        ``rejected_proposals_per_view_max`` hashes and one None."""
        self._proposal_in_hand: bytes | None = None
        self._formats_read: tuple[int, bytes | None] | None = None
        self._formats_warned: set[tuple[int, int]] = set()
        """The unknown scheduled formats already logged: at most the schedule's bound."""
        self.formats = self._read_formats()
        self.checkpoints = CheckpointService(
            store,
            member_id=member_id,
            key=key,
            members=application.members,
            witness_keys=[witness.key for witness in witnesses],
        )
        """The consortium checkpoints (node/runtime/checkpoints.py)."""
        self.witnesses = Witnesses(witnesses, self.checkpoints, warn=self.log.warning)
        """The pushers of the configured witnesses (node/runtime/witnesses.py)."""
        self._signature_budgets: dict[str, _ByteBucket] = {}
        """Per member, its budget of checkpoint signature frames; a member's goes when it
        leaves the member set."""

    # --- the chain's header formats (node/runtime/formats.py) ---------------------------------

    @property
    def halted_for_upgrade(self) -> bool:
        """Whether the next block is of a header format this software does not know: the node
        then no longer steps its replica (it waits for the upgrade, see formats.py)."""
        return self.formats.halted

    def _read_formats(self) -> FormatOutlook:
        """Read the format schedule on top of the tip; log what the operator must do, once."""
        schedule = self.store.state_get(FORMATS_STATE_KEY)
        next_height = self.store.tip.height + 1
        outlook = format_outlook(self.store.genesis.format_version, schedule, next_height)
        for entry in outlook.unknown:
            if entry not in self._formats_warned:
                self._formats_warned.add(entry)
                if not outlook.halted:
                    log.warning("%s", outlook.warning())
        if outlook.halted:
            log.error("%s", outlook.warning())
        return outlook

    # --- lifecycle ----------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while the ticker drives the replica (what /healthz reports)."""
        return self._ticker is not None and not self._ticker.done()

    @property
    def ticker(self) -> asyncio.Task[None] | None:
        return self._ticker

    def attach_transport(self, transport: Any) -> None:
        """The peer transport: ``send``, ``broadcast``, ``refresh_members``, ``connected_peers``."""
        self.transport = transport

    async def start(self) -> None:
        assert self.transport is not None, "attach a transport before starting"
        await self.transport.start()
        self._ticker = asyncio.create_task(self._tick_forever(), name="sceau-ticker")
        self.witnesses.start()

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        await self.witnesses.stop()
        if self.transport is not None:
            await self.transport.close()
        for waiters in self._waiters.values():
            for waiter in waiters:
                if not waiter.done():
                    waiter.cancel()

    async def _tick_forever(self) -> None:
        interval_s = self.tick_ms / 1000
        next_at = time.monotonic()
        while True:
            # Ticks missed while the loop was busy (executing a block) are not made up: the
            # view timer counts time the node could have spent waiting for its peers, not time
            # it spent working itself.
            next_at = max(next_at + interval_s, time.monotonic())
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            try:
                if self.halted_for_upgrade:
                    self.log.flush()
                    continue
                self._flush_gossip()
                self._execute(self.replica.on_tick(self._clock_ms()))
                self._revalidate_when_idle()
                self.log.flush()
            except Exception:  # our bug: log loudly, keep the node alive for diagnosis
                log.exception("tick failed")
                raise

    # --- events in ----------------------------------------------------------------------------

    def on_frame(self, sender: str, data: bytes) -> None:
        """A payload from an authenticated peer (called by the transport).

        Scanned, admitted, then decoded: see "Peer frames" in the module doc. Dropped while
        the node waits for an upgrade (:attr:`halted_for_upgrade`).
        """
        if self.halted_for_upgrade:
            self.metrics.frames_rejected["halted_for_upgrade"] += 1
            return
        try:
            header = scan_frame(data, self.frame_limits())
        except FrameRefused as refused:
            self._refuse_frame(sender, refused.kind, refused.reason, str(refused))
            return
        reason = self._admission(sender, header)
        if reason is not None:
            self._refuse_frame(sender, header.kind, reason, f"{header.size_bytes} bytes")
            return
        try:
            message = decode_frame(data)
        except FrameError as error:
            self._refuse_frame(sender, header.kind, "malformed", str(error))
            if header.kind in ("pre_prepare", "new_view"):
                # A proposal that does not even decode counts as refused: its proposer gets no
                # other one decoded in that view.
                self._remember_refused(sender, header.height, header.view, header.block_hash)
            return
        if isinstance(message, TransactionGossip):
            self._on_gossip(sender, message)
            return
        if isinstance(message, CheckpointSignature):
            self._on_checkpoint_signature(sender, message)
            return
        self._proposal_in_hand = header.block_hash
        try:
            actions = self.replica.on_message(sender, message, now_ms=self._clock_ms())
            self._execute(actions)
        finally:
            self._proposal_in_hand = None

    def frame_limits(self) -> FrameLimits:
        """The per-frame limits for the consortium's parameters and member count in force."""
        parameters = self.application.parameters()
        members_count = len(self.application.members())
        if self._frame_limits_for != (parameters, members_count):
            self._frame_limits_for = (parameters, members_count)
            self._frame_limits = FrameLimits.for_parameters(parameters, members_count)
        return self._frame_limits

    def _admission(self, sender: str, header: FrameHeader) -> str | None:
        """Why a scanned frame must not be decoded (a counter's reason), or None."""
        if header.sender != sender:
            return "sender_mismatch"
        kind = header.kind
        if kind in ("pre_prepare", "new_view"):
            reason = self._proposal_admission(sender, header)
            if reason is not None:
                return reason
        large = header.size_bytes > self._frame_limits.small_frame_bytes_max
        if kind == "block_response" and self._fetches_outstanding[sender]:
            # Catch-up answers what we asked for: our own requests bound these.
            self._fetches_outstanding[sender] -= 1
            return None
        if kind == "block_response" and large:
            return "unsolicited"
        if kind == "checkpoint_signature" and not self._signature_budget(sender).take(
            1, time.monotonic()
        ):
            return "over_budget"
        if not self._budget(sender, large).take(header.size_bytes, time.monotonic()):
            return "over_budget"
        return None

    def _budget(self, sender: str, large: bool) -> _ByteBucket:
        """The peer's byte budget for large frames, or for small ones."""
        bucket = self._budgets.get((sender, large))
        if bucket is None:
            limits = self.peer_limits
            if large:
                capacity, rate = limits.large_frame_burst_bytes, limits.large_frame_bytes_per_s
            else:
                capacity, rate = limits.small_frame_burst_bytes, limits.small_frame_bytes_per_s
            bucket = self._budgets[(sender, large)] = _ByteBucket(capacity, rate, time.monotonic())
        return bucket

    def _signature_budget(self, sender: str) -> _ByteBucket:
        """The peer's budget of checkpoint signature frames (each costs a verification)."""
        bucket = self._signature_budgets.get(sender)
        if bucket is None:
            limits = self.peer_limits
            bucket = self._signature_budgets[sender] = _ByteBucket(
                limits.checkpoint_signatures_burst,
                limits.checkpoint_signatures_per_s,
                time.monotonic(),
            )
        return bucket

    def _proposal_admission(self, sender: str, header: FrameHeader) -> str | None:
        """Role, height, signature and refusal budget of a proposal, before its block is read."""
        replica = self.replica
        if header.height is None or header.view is None:
            return "malformed"
        if header.height < replica.height:
            return "old_height"
        if sender != replica.primary(header.view):
            return "not_primary"
        refused = self._rejected_proposals.get((sender, header.height, header.view), set())
        if (
            len(refused) >= self.peer_limits.rejected_proposals_per_view_max
            and header.block_hash not in refused
        ):
            # The same block again (a retransmission) costs the replica no new execution.
            return "proposal_budget"
        if header.kind == "pre_prepare":
            public_key = next(
                (m.public_key for m in self.application.members() if m.id == sender), None
            )
            block_hash = header.block_hash
            if public_key is None or block_hash is None or header.signature is None:
                return "malformed"
            payload = vote_payload(header.height, header.view, block_hash)
            domain = crypto.Domain(domains.PRE_PREPARE, self.store.chain_id)
            if not crypto.verify(public_key, domain, payload, header.signature):
                return "bad_signature"
        return None

    def _refuse_frame(self, sender: str, kind: str, reason: str, detail: str) -> None:
        self.metrics.frames_rejected[f"{reason}:{kind}"] += 1
        if reason in QUIET_REFUSALS:
            return
        self.metrics.frames_rejected_by_peer[sender] += 1
        self.log.warning(
            (f"frame refused: {reason}", sender),
            "refused a %s frame from %s: %s (%s)",
            kind,
            sender,
            reason,
            detail[:200],
        )

    def _on_gossip(self, sender: str, gossip: TransactionGossip) -> None:
        if gossip.sender != sender:
            self.metrics.frames_rejected["sender_mismatch"] += 1
            return
        added = 0
        dry_run = len(self.mempool) < self.settings.gossip_dry_run_pending_max
        for transaction in gossip.transactions:
            try:
                added += self.application.submit(transaction, dry_run=dry_run)
            except Rejection as rejection:
                self.metrics.frames_rejected[f"gossip_{rejection.code}"] += 1
        if added:
            self._execute(self.replica.on_transactions())

    def _on_checkpoint_signature(self, sender: str, frame: CheckpointSignature) -> None:
        """Another member's signature of a checkpoint: gathered, or counted and dropped."""
        try:
            self.checkpoints.receive(
                sender, frame.height, frame.log_size, frame.log_root, frame.signature
            )
        except SignatureRefused as refused:
            if refused.reason not in QUIET_SIGNATURE_REFUSALS:
                self.log.warning(
                    (f"checkpoint signature refused: {refused.reason}", sender),
                    "refused the checkpoint signature of %s: %s",
                    sender,
                    str(refused)[:200],
                )

    def submit(self, transaction: Transaction) -> bool:
        """A client's transaction: admit it (raises Rejection), gossip it, wake the replica.

        Returns False if it was already pending or committed; ``upgrade_required`` while the
        node waits for an upgrade (it cannot build or check the next block).
        """
        if self.halted_for_upgrade:
            raise Rejection("upgrade_required", self.formats.warning() or "upgrade sceau")
        added = self.application.submit(transaction)
        if added:
            self._submitted_at[transaction.tx_id] = time.monotonic()
            if len(self._submitted_at) > self.mempool.limits.transactions_max:
                self._forget_stale_submissions()
            self._gossip.append(transaction)
            self._gossip_soon()
            self._execute(self.replica.on_transactions())
        return added

    def submit_many(self, transactions: list[Transaction]) -> list[bool | Rejection]:
        """A client's batch: admitted in one pass (``ChainApplication.submit_many``), each
        outcome in order (True admitted, False already known, or its Rejection); the admitted
        ones are gossiped together and the replica is woken once."""
        if self.halted_for_upgrade:
            rejection = Rejection("upgrade_required", self.formats.warning() or "upgrade sceau")
            return [rejection] * len(transactions)
        outcomes = self.application.submit_many(transactions)
        now = time.monotonic()
        added = False
        for transaction, outcome in zip(transactions, outcomes, strict=True):
            if outcome is True:
                added = True
                self._submitted_at[transaction.tx_id] = now
                self._gossip.append(transaction)
        if not added:
            return outcomes
        if len(self._submitted_at) > self.mempool.limits.transactions_max:
            self._forget_stale_submissions()
        self._gossip_soon()
        self._execute(self.replica.on_transactions())
        return outcomes

    def _gossip_soon(self) -> None:
        """Send the gathered gossip at once when it fills a frame; otherwise once the event
        loop has handled what is ready now, so that the submissions that arrived together
        travel in one frame and none waits for the next tick."""
        if len(self._gossip) >= self.settings.gossip_batch_transactions_max:
            self._flush_gossip()
        elif not self._gossip_flush_scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # driven synchronously (tests, tools): send now
                self._flush_gossip()
            else:
                self._gossip_flush_scheduled = True
                loop.call_soon(self._flush_gossip)

    def _flush_gossip(self) -> None:
        self._gossip_flush_scheduled = False
        batch, self._gossip = self._gossip, []
        if not batch or self.transport is None:
            return  # without a transport (tests, tools) there is nobody to gossip to
        size_max = self.settings.gossip_batch_transactions_max
        for start in range(0, len(batch), size_max):
            self._broadcast_gossip(batch[start : start + size_max])

    def _broadcast_gossip(self, transactions: list[Transaction]) -> None:
        gossip = TransactionGossip(transactions=tuple(transactions), sender=self.member_id)
        self.transport.broadcast(encode_frame(gossip))

    def _revalidate_when_idle(self) -> None:
        if self.replica.block_in_progress or not len(self.mempool):
            self._idle_ticks = 0
            return
        self._idle_ticks += 1
        if self._idle_ticks >= self.settings.revalidation_idle_ticks:
            self._idle_ticks = 0
            if self.application.revalidate_when_idle():
                self._execute(self.replica.on_transactions())
            self._forget_stale_submissions()
            self._gossip_again()

    def _forget_stale_submissions(self) -> None:
        """Forget the submission times of transactions no longer pending (rejected on a dry
        run, expired, evicted): they will never be committed from this mempool, so their
        latency will never be observed. Afterwards, ``_submitted_at`` holds at most as many
        entries as the mempool holds transactions (a committed one's goes in :meth:`_commit`).
        """
        if len(self._submitted_at) <= len(self.mempool):
            # Nothing can be stale unless there are more entries than pending transactions:
            # then a scan is due, and its cost is paid for by the entries it removes (or by
            # the mempool's own bound).
            return
        mempool = self.mempool
        self._submitted_at = {
            tx_id: submitted for tx_id, submitted in self._submitted_at.items() if tx_id in mempool
        }
        assert len(self._submitted_at) <= len(mempool)

    def _gossip_again(self) -> None:
        """Send the oldest pending transactions to the peers once more.

        Gossip goes out once, at submission: a transaction submitted while its node was cut
        off from the primary (a partition, a restart) would otherwise wait until that node
        became primary itself. Peers that know it already ignore it (a dictionary lookup).
        """
        if self.transport is None:
            return
        pending = self.mempool.candidates()[: self.settings.gossip_batch_transactions_max]
        if pending:
            self._broadcast_gossip(pending)

    # --- actions out --------------------------------------------------------------------------

    def _execute(self, actions: Iterable[Action]) -> None:
        """Execute the replica's actions with the one executor, on this node's port."""
        execute_actions(_NodePort(self), actions)
        if self.replica.view != self._last_view:
            self._log_view_change()

    def _log_view_change(self) -> None:
        """Count and log a move to a later view, with the messages dropped since the last one:
        a view that ends without a commit leaves its reason there (for operators)."""
        replica = self.replica
        self.metrics.view_changes += replica.view - self._last_view
        dropped = replica.dropped - self._dropped_at_last_view
        self.log.warning(
            ("view change", ""),
            "view %d -> %d at height %d (primary %s)%s",
            self._last_view,
            replica.view,
            replica.height,
            replica.primary(replica.view),
            f"; dropped meanwhile: {dict(sorted(dropped.items()))}" if dropped else "",
        )
        self._last_view = replica.view
        self._dropped_at_last_view = collections.Counter(replica.dropped)

    def _note_rejected_proposal(self, action: ReportRejectedProposal) -> None:
        """Remember refused proposals per (proposer, height, view), by block hash (None for one
        the replica refused out of its buffers, not straight from a frame)."""
        self._remember_refused(action.proposer, action.height, action.view, self._proposal_in_hand)

    def _remember_refused(
        self, proposer: str, height: int | None, view: int | None, block_hash: bytes | None
    ) -> None:
        assert height is not None and view is not None, "proposals are admitted with both"
        self._rejected_proposals.setdefault((proposer, height, view), set()).add(block_hash)
        remembered_max = self.settings.rejected_proposal_views_max
        if len(self._rejected_proposals) > remembered_max:
            current = self.replica.height
            for old in [k for k in self._rejected_proposals if k[1] < current]:
                del self._rejected_proposals[old]
            while len(self._rejected_proposals) > remembered_max:
                del self._rejected_proposals[next(iter(self._rejected_proposals))]

    def _forget_departed_peers(self) -> None:
        """Drop the byte budgets and fetch counts of peers no longer in the member set."""
        members = {member.id for member in self.application.members()}
        for key in [key for key in self._budgets if key[0] not in members]:
            del self._budgets[key]
        for peer in [peer for peer in self._fetches_outstanding if peer not in members]:
            del self._fetches_outstanding[peer]
        for peer in [peer for peer in self._signature_budgets if peer not in members]:
            del self._signature_budgets[peer]

    def _commit(self, block: Block, certificate: CommitCertificate) -> list[Any]:
        members_before = self.application.members()
        self.application.commit(block, certificate)
        self.metrics.blocks_committed += 1
        self.metrics.transactions_committed += len(block.transactions)
        now = time.monotonic()
        for transaction in block.transactions:
            submitted = self._submitted_at.pop(transaction.tx_id, None)
            if submitted is not None:
                self.metrics.observe_latency((now - submitted) * 1000)
            for waiter in self._waiters.pop(transaction.tx_id, []):
                if not waiter.done():
                    waiter.set_result(None)
        self._forget_stale_submissions()  # the block's expired and evicted transactions
        log.info(
            "committed height %d (view %d, %d transactions)",
            block.height,
            certificate.view,
            len(block.transactions),
        )
        self.formats = self._read_formats()  # one small state read per block
        self._sign_checkpoint(block)
        member_set_changed = self.application.members() != members_before
        if member_set_changed:
            self._forget_departed_peers()
        if member_set_changed and self.transport is not None:
            self.transport.refresh_members()
        actions = self.replica.on_block_committed(block.height)
        if member_set_changed and not self.replica.is_member:
            log.warning(
                "from height %d, %s is not a member with this node's key (removed, or its key "
                "rotated): the node follows the chain but no longer signs",
                block.height + 1,
                self.member_id,
            )
        return actions

    def _sign_checkpoint(self, block: Block) -> None:
        """Sign the checkpoint of a format-2 block just committed and send the signature to
        the other members (node/runtime/checkpoints.py): a signature and a small frame. A
        block older than ``SIGN_AGE_MAX_MS`` (this node is catching up) is not signed."""
        header = block.header
        fresh = self._clock_ms() - header.timestamp_ms <= SIGN_AGE_MAX_MS
        signature = self.checkpoints.committed(
            block.height, header.log_size, header.log_root, sign=fresh
        )
        if signature is None or self.transport is None:
            return
        assert header.log_size is not None and header.log_root is not None
        frame = CheckpointSignature(
            sender=self.member_id,
            height=block.height,
            log_size=header.log_size,
            log_root=header.log_root,
            signature=signature,
        )
        self.transport.broadcast(encode_frame(frame))

    # --- queries for the API ------------------------------------------------------------------

    async def wait_for_commit(self, tx_id: bytes, timeout_s: float) -> bool:
        """Wait until ``tx_id`` is committed (True) or the timeout passes (False)."""
        if self.store.transaction_location(tx_id) is not None:
            return True
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(tx_id, []).append(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), timeout_s)
            return True
        except TimeoutError:
            return self.store.transaction_location(tx_id) is not None
        finally:
            waiters = self._waiters.get(tx_id)
            if waiters and waiter in waiters:
                waiters.remove(waiter)
                if not waiters:
                    del self._waiters[tx_id]

    def status(self) -> dict[str, Any]:
        tip = self.store.tip
        peers = self.transport.connected_peers() if self.transport is not None else []
        return {
            "role": "member",
            "member_id": self.member_id,
            "chain_id": self.store.chain_id.hex(),
            "height": tip.height,
            "block_hash": tip.block_hash.hex(),
            "view": self.replica.view,
            "members": len(self.application.members()),
            "peers_connected": sorted(peers),
            "mempool_transactions": len(self.mempool),
            "mempool_bytes": self.mempool.size_bytes,
            "checkpoint": self.checkpoints.status(self.witnesses.status()),
            "uptime_s": round(time.monotonic() - self.started_at, 1),
            "format": self.formats.to_status(),
        }


class _NodePort:
    """How a node executes the replica's actions (:class:`consensus.driver.ActionPort`).

    The safety record goes to the store with ``sync=True``; messages are framed and queued on
    the peer transport; a commit is one synced batch (:meth:`Node._commit`); reports feed the
    metrics, the logs and the node's evidence.
    """

    __slots__ = ("node",)

    def __init__(self, node: Node) -> None:
        self.node = node

    def persist_safety(self, record: SafetyRecord) -> None:
        self.node.store.save_safety_record(record.to_bytes())

    def send(self, to: str, message: Any) -> None:
        self.node.transport.send(to, encode_frame(message))

    def broadcast(self, message: Any) -> None:
        self.node.transport.broadcast(encode_frame(message))

    def fetch_blocks(self, peer: str, request: BlockRequest) -> None:
        node = self.node
        node.transport.send(peer, encode_frame(request))
        outstanding = node._fetches_outstanding
        if outstanding[peer] < node.peer_limits.fetches_outstanding_max:
            outstanding[peer] += 1

    def commit_block(self, block: Block, certificate: CommitCertificate) -> list[Action]:
        return self.node._commit(block, certificate)

    def report_rejected_proposal(self, report: ReportRejectedProposal) -> None:
        node = self.node
        node.metrics.proposals_rejected += 1
        node._note_rejected_proposal(report)
        node.log.warning(
            ("refused proposal", report.proposer),
            "refused proposal h=%d v=%d from %s: %s",
            report.height,
            report.view,
            report.proposer,
            report.reason,
        )

    def report_evidence(self, report: ReportEvidence) -> None:
        node = self.node
        node.metrics.evidence += 1
        node.evidence.append((report.member, report.first, report.second))
        node.log.warning(
            ("equivocation evidence", report.member),
            "equivocation evidence against %s",
            report.member,
        )
