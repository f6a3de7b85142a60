"""A deterministic simulator that runs real replicas over a hostile, simulated network.

Theory of operation
-------------------
One seed fixes everything: the number of members, the faults, the byzantine members and their
behaviour, every delay and every drop. The simulator runs ``n`` real
:class:`~consensus.replica.Replica` objects, each with its own
:class:`~consensus.simapp.SimulatedApplication` (durable chain, state and mempool), on a
discrete-event queue ordered by simulated time. Messages travel as canonical bytes and are
decoded on arrival, exactly as over a socket.

A run has two phases:

* **chaos** — clients submit signed transactions to random members; the network delays,
  drops, duplicates and reorders messages and cuts partitions that heal; members crash (at
  any instant, even between two actions of one step) and restart from their persisted state;
  clocks are skewed; up to f members are byzantine (equivocating primary, conflicting voter,
  twins sharing one key, replayer of old messages, flooder, liar serving forged certificates);
* **stabilization** — the network heals, crashed members restart, the byzantine ones keep
  misbehaving; fresh transactions must then commit on every correct member within a bound.

As it runs it checks the invariants: at every commit, agreement (one block per height),
certificate validity against the member set in force and validity of the transactions; at
every message a correct replica sends, that it never signs two different things for one
(height, view, kind) nor goes back to a lower view; at every step, that no replica raises;
at every restart, durability. At the end it checks total order across the correct members
(:meth:`Simulation.check_invariants`) and liveness.

``python -m consensus.simulator --seeds N [--start S] [--nodes 4..7] [--json]`` runs a campaign
and prints one summary; a failing seed replays the exact same trace with ``--seeds 1 --start
SEED``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consensus.actions import (
    Broadcast,
    CommitBlock,
    FetchBlocks,
    PersistSafety,
    ReportEvidence,
    ReportRejectedProposal,
    Send,
)
from consensus.messages import (
    BlockRequest,
    BlockResponse,
    CommitVote,
    NewView,
    Prepare,
    PrePrepare,
    Status,
    ViewChange,
    decode_message,
    encode_message,
)
from consensus.replica import Replica, ReplicaConfig
from consensus.safety import SafetyRecord
from consensus.simapp import SimulatedApplication
from ledger import crypto, encoding
from ledger.devchain import LocalConsortium
from ledger.model import (
    CommitCertificate,
    ConsensusParameters,
    InvalidCertificateError,
    ModelDecodeError,
    Transaction,
    fault_tolerance,
    sha256,
)

__all__ = ["Simulation", "SimulationConfig", "SimulationResult", "random_config", "run_campaign"]

OUTSIDER = "outsider"
BEHAVIOURS = ("equivocator", "conflicting_voter", "twins", "replayer", "flooder", "liar")
ReplicaFactory = Callable[..., Replica]
FAILING_SEEDS_LISTED_MAX = 100
DECODED_MESSAGES_MAX = 2_048
"""Decoded messages a run remembers by their bytes (see :meth:`Simulation._decode`)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SimulationConfig:
    """Everything one run depends on (derived from the seed by :func:`random_config`)."""

    seed: int
    nodes: int
    byzantine: dict[str, str] = field(default_factory=dict)
    chaos_ms: int = 12_000
    stabilization_ms: int = 120_000
    tick_ms: int = 50
    transaction_interval_ms: int = 300
    delay_ms_min: int = 1
    delay_ms_max: int = 40
    drop_rate: float = 0.0
    duplicate_rate: float = 0.0
    partition_rate_per_s: float = 0.0
    crash_rate_per_s: float = 0.0
    clock_skew_ms_max: int = 0
    member_change: bool = False
    outsider: bool = False
    """A process that is not a member votes for every proposal it sees."""
    withhold_commit_votes: bool = False
    """During chaos, at every third height the network delivers commit votes to one member
    only (and holds back statuses and blocks of those heights): it commits, the others see no
    commit, change views, and the new primary must propose the same block again — the case
    that prepared certificates exist for."""


@dataclass(slots=True)
class SimulationResult:
    seed: int
    nodes: int
    byzantine: dict[str, str]
    heights: dict[str, int]
    violations: list[str]
    liveness_failure: str | None
    events: int
    committed_transactions: int

    @property
    def ok(self) -> bool:
        return not self.violations and self.liveness_failure is None


def random_config(seed: int, nodes: int | None = None) -> SimulationConfig:
    """The configuration a seed stands for: members, faults, byzantine behaviours."""
    rng = random.Random(f"config/{seed}")
    count = nodes if nodes is not None else rng.randint(4, 7)
    member_ids = [f"m{index}" for index in range(count)]
    faulty = rng.randint(0, fault_tolerance(count))
    byzantine = {member: rng.choice(BEHAVIOURS) for member in rng.sample(member_ids, faulty)}
    return SimulationConfig(
        seed=seed,
        nodes=count,
        byzantine=byzantine,
        drop_rate=rng.choice((0.0, 0.01, 0.05, 0.15)),
        duplicate_rate=rng.choice((0.0, 0.02, 0.1)),
        delay_ms_max=rng.choice((5, 40, 200, 600)),
        partition_rate_per_s=rng.choice((0.0, 0.0, 0.1, 0.3)),
        crash_rate_per_s=rng.choice((0.0, 0.05, 0.2)),
        clock_skew_ms_max=rng.choice((0, 200, 2_000)),
        # The joining member stays silent: it counts as one more faulty member of n + 1.
        member_change=(
            rng.random() < 0.2 and count < 7 and faulty + 1 <= fault_tolerance(count + 1)
        ),
        outsider=rng.random() < 0.3,
        withhold_commit_votes=rng.random() < 0.25,
    )


@dataclass(slots=True)
class _Node:
    """One simulated process (a member, or one of a pair of twins)."""

    name: str
    member_id: str
    key: crypto.PrivateKey
    behaviour: str
    skew_ms: int
    chain: list[tuple[Any, CommitCertificate]] = field(default_factory=list)
    safety: SafetyRecord | None = None
    app: SimulatedApplication | None = None
    replica: Replica | None = None
    alive: bool = False
    sent_history: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return self.behaviour == "correct"


class Simulation:
    """One seeded run (see the module doc). ``replica_factory`` lets tests inject variants."""

    def __init__(
        self,
        config: SimulationConfig,
        *,
        replica_factory: ReplicaFactory = Replica,
        replica_config: ReplicaConfig | None = None,
        trace: Callable[[str], None] | None = None,
    ) -> None:
        self.config = config
        self.rng = random.Random(f"run/{config.seed}")
        self.replica_factory = replica_factory
        self.replica_config = replica_config or ReplicaConfig(
            view_timeout_ticks=20,
            view_timeout_ticks_max=20 * 16,
            status_interval_ticks=20,
            fetch_timeout_ticks=10,
            timestamp_drift_ms_max=10_000,
        )
        self.trace = trace
        member_ids = [f"m{index}" for index in range(config.nodes)]
        self.consortium = LocalConsortium.create(
            [(member_id, f"Member {member_id}") for member_id in member_ids],
            seed=f"sim/{config.seed}".encode(),
            parameters=ConsensusParameters(),
        )
        self.genesis = self.consortium.genesis
        self.chain_id = self.genesis.chain_id
        self.client_key = crypto.key_from_seed(sha256(b"client" + self.chain_id))
        self.outsider_key = crypto.key_from_seed(sha256(b"outsider" + self.chain_id))
        self.nodes: list[_Node] = []
        for member_id in member_ids:
            behaviour = config.byzantine.get(member_id, "correct")
            copies = 2 if behaviour == "twins" else 1
            for copy in range(copies):
                self.nodes.append(
                    _Node(
                        name=member_id if copies == 1 else f"{member_id}/{copy}",
                        member_id=member_id,
                        key=self.consortium.keys[member_id],
                        behaviour=behaviour,
                        skew_ms=self.rng.randint(
                            -config.clock_skew_ms_max, config.clock_skew_ms_max
                        ),
                    )
                )
        self.now_ms = 0
        self._queue: list[tuple[int, int, str, Any]] = []
        self._sequence = 0
        self.events = 0
        self.violations: list[str] = []
        self.partition: tuple[frozenset[str], frozenset[str]] | None = None
        self.submitted: dict[bytes, Transaction] = {}
        self.committed_at: dict[int, bytes] = {}
        self.certificates: dict[int, CommitCertificate] = {}
        self.signed_by_correct: dict[tuple[str, int, int, str], bytes] = {}
        self.highest_view_sent: dict[tuple[str, int], int] = {}
        self.members_at: dict[int, tuple[Any, ...]] = {1: self.genesis.members}
        self._nonce = 0
        self.stabilizing = False
        self.liveness_transactions: set[bytes] = set()
        self.equivocations: set[tuple[str, int, int]] = set()
        self.proposals_seen: dict[tuple[int, int], bytes] = {}
        self._decoded: dict[bytes, Any] = {}

    # --- scheduling ---------------------------------------------------------------------------

    def _schedule(self, at_ms: int, kind: str, payload: Any) -> None:
        self._sequence += 1
        heapq.heappush(self._queue, (at_ms, self._sequence, kind, payload))

    def _log(self, text: str) -> None:
        if self.trace is not None:
            self.trace(f"{self.now_ms:>8} {text}")

    def run(self) -> SimulationResult:
        config = self.config
        for node in self.nodes:
            self._start(node)
            self._schedule(self.rng.randint(1, config.tick_ms), "tick", node)
        self._schedule(config.transaction_interval_ms, "submit", None)
        self._schedule(config.chaos_ms, "stabilize", None)
        if config.outsider:
            self._schedule(config.tick_ms, "outsider", None)
        if config.member_change:
            self._schedule(config.chaos_ms // 3, "member_change", None)
        if config.partition_rate_per_s:
            self._schedule(self._exponential(config.partition_rate_per_s), "partition", None)
        if config.crash_rate_per_s:
            self._schedule(self._exponential(config.crash_rate_per_s), "crash", None)
        end_ms = config.chaos_ms + config.stabilization_ms
        liveness_failure = None
        while self._queue and not self.violations:
            at_ms, _, kind, payload = heapq.heappop(self._queue)
            if at_ms > end_ms:
                break
            self.now_ms = at_ms
            self.events += 1
            getattr(self, f"_event_{kind}")(payload)
            if self.stabilizing and self._liveness_reached():
                break
        if not self.violations:
            liveness_failure = self._liveness_failure()
        return SimulationResult(
            seed=config.seed,
            nodes=config.nodes,
            byzantine=dict(config.byzantine),
            heights={node.name: len(node.chain) for node in self.nodes},
            violations=self.violations,
            liveness_failure=liveness_failure,
            events=self.events,
            committed_transactions=sum(
                len(block.transactions) for block, _ in self._longest_correct_chain()
            ),
        )

    def _exponential(self, rate_per_s: float) -> int:
        return self.now_ms + max(1, int(self.rng.expovariate(rate_per_s) * 1000))

    # --- processes ----------------------------------------------------------------------------

    def _start(self, node: _Node) -> None:
        node.app = SimulatedApplication(self.genesis, chain=list(node.chain))
        node.replica = self._call(
            node,
            lambda: self.replica_factory(
                member_id=node.member_id,
                key=node.key,
                chain_id=self.chain_id,
                application=node.app,
                config=self.replica_config,
                safety=node.safety,
            ),
        )
        node.alive = node.replica is not None
        if node.alive and node.replica.height != len(node.chain) + 1:
            self._violation(
                f"durability: {node.name} restarted at height {node.replica.height}"
                f" with {len(node.chain)} blocks stored"
            )

    def _crash(self, node: _Node) -> None:
        node.alive = False
        node.replica = None
        node.app = None
        self._log(f"CRASH {node.name}")

    def _call(self, node: _Node, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except Exception as error:  # a replica must never raise: that is a bug
            self._violation(f"{node.name} raised {type(error).__name__}: {error}")
            return None

    def _run_actions(self, node: _Node, actions: Sequence[Any] | None) -> None:
        """Execute actions in order; a crash may strike between any two of them."""
        pending = list(actions or ())
        while pending and node.alive:
            if (
                self.config.crash_rate_per_s
                and not self.stabilizing
                and (self.rng.random() < self.config.crash_rate_per_s / 200)
            ):
                self._crash(node)
                self._schedule(self.now_ms + self.rng.randint(100, 3_000), "restart", node)
                return
            action = pending.pop(0)
            follow_up = self._execute(node, action)
            if follow_up:
                pending = list(follow_up) + pending

    def _execute(self, node: _Node, action: Any) -> Sequence[Any] | None:
        if isinstance(action, PersistSafety):
            node.safety = action.record
        elif isinstance(action, Broadcast):
            self._observe_sent(node, action.message)
            self._broadcast(node, action.message)
        elif isinstance(action, Send):
            self._observe_sent(node, action.message)
            self._send(node, action.to, action.message)
        elif isinstance(action, FetchBlocks):
            self._send(node, action.peer, action.request)
        elif isinstance(action, CommitBlock):
            return self._commit(node, action)
        elif not isinstance(action, ReportEvidence | ReportRejectedProposal):
            self._violation(f"{node.name} returned an unknown action {action!r}")
        return None

    def _commit(self, node: _Node, action: CommitBlock) -> Sequence[Any] | None:
        block, certificate = action.block, action.certificate
        height = block.height
        if node.correct:
            self._check_commit(node, block, certificate)
        node.app.append(block, certificate)
        node.chain.append((block, certificate))
        self.members_at.setdefault(height + 1, node.app.members())
        self._log(
            f"COMMIT {node.name} h={height} v={certificate.view} "
            f"txs={len(block.transactions)} {block.block_hash.hex()[:8]}"
        )
        return self._call(node, lambda: node.replica.on_block_committed(height))

    # --- network ------------------------------------------------------------------------------

    def _recipients(self, member_id: str) -> list[_Node]:
        return [node for node in self.nodes if node.member_id == member_id]

    def _broadcast(self, node: _Node, message: Any) -> None:
        data = encode_message(message)
        for member in self._other_members(node):
            if self._withheld(message, member):
                continue
            self._transmit(node, member, data)

    def _withheld(self, message: Any, recipient: str) -> bool:
        """The adversarial scheduler of ``withhold_commit_votes`` (chaos phase only)."""
        if not self.config.withhold_commit_votes or self.stabilizing:
            return False
        if isinstance(message, Status):
            return message.height % 3 == 0 and message.height > 0
        if isinstance(message, BlockResponse):
            return any(block.height % 3 == 0 for block, _ in message.blocks)
        if not isinstance(message, CommitVote) or message.height % 3 != 0:
            return False
        members = sorted({node.member_id for node in self.nodes})
        return recipient != members[message.height % len(members)]

    def _send(self, node: _Node, member_id: str, message: Any) -> None:
        if not self._withheld(message, member_id):
            self._transmit(node, member_id, encode_message(message))

    def _transmit(self, node: _Node, member_id: str, data: bytes) -> None:
        config = self.config
        node.sent_history.append((member_id, data))
        if len(node.sent_history) > 512:
            del node.sent_history[:256]
        if self._cut(node.member_id, member_id):
            return
        if not self.stabilizing and self.rng.random() < config.drop_rate:
            return
        copies = 2 if self.rng.random() < config.duplicate_rate else 1
        for _ in range(copies):
            delay = self.rng.randint(config.delay_ms_min, config.delay_ms_max)
            for recipient in self._recipients(member_id):
                self._schedule(self.now_ms + delay, "deliver", (recipient, node.member_id, data))

    def _cut(self, sender: str, recipient: str) -> bool:
        if self.partition is None:
            return False
        side_a, _ = self.partition
        return (sender in side_a) != (recipient in side_a)

    # --- events -------------------------------------------------------------------------------

    def _event_tick(self, node: _Node) -> None:
        self._schedule(self.now_ms + self.config.tick_ms, "tick", node)
        if not node.alive:
            return
        local_ms = self.now_ms + node.skew_ms + self.genesis.created_at_ms
        self._run_actions(node, self._call(node, lambda: node.replica.on_tick(local_ms)))
        if node.alive and not node.correct:
            self._misbehave(node)

    def _event_deliver(self, payload: tuple[_Node, str, bytes]) -> None:
        node, sender, data = payload
        if not node.alive:
            return
        message = self._decode(data)
        if message is None:
            return  # the transport drops and counts undecodable frames
        if node.behaviour == "liar" and isinstance(message, BlockRequest):
            self._lie(node, sender, message)
            return
        self._run_actions(node, self._call(node, lambda: node.replica.on_message(sender, message)))

    def _decode(self, data: bytes) -> Any:
        """``decode_message(data)``, or None if it does not decode; remembered per run.

        A broadcast reaches every member as the same bytes: decoding them once gives the
        same frozen message every recipient would have decoded (decoding is a pure function
        of the bytes), and it was most of a run's time. The memory is bounded.
        """
        if data in self._decoded:
            return self._decoded[data]
        try:
            message = decode_message(data)
        except (encoding.EncodingError, ModelDecodeError):
            message = None
        if len(self._decoded) >= DECODED_MESSAGES_MAX:
            self._decoded.clear()
        self._decoded[data] = message
        return message

    def _event_submit(self, _: Any) -> None:
        if not self.stabilizing:
            self._schedule(self.now_ms + self.config.transaction_interval_ms, "submit", None)
        self._submit_transaction(b"chaos")

    def _submit_transaction(self, label: bytes, contract: str = "sim", **extra: Any) -> bytes:
        self._nonce += 1
        transaction = Transaction.create(
            self.client_key,
            chain_id=self.chain_id,
            contract=contract,
            action=extra.pop("action", "note"),
            args=extra.pop("args", {"label": label}),
            nonce=self._nonce,
            expiry_height=10_000,
        )
        self.submitted[transaction.tx_id] = transaction
        targets = {node.member_id for node in self.nodes}
        for member_id in sorted(targets):
            # Gossip: every member hears of it, some later than others, some maybe never.
            if self.stabilizing or self.rng.random() < 0.9:
                delay = self.rng.randint(0, self.config.delay_ms_max)
                for node in self._recipients(member_id):
                    self._schedule(self.now_ms + delay, "arrive", (node, transaction))
        return transaction.tx_id

    def _event_arrive(self, payload: tuple[_Node, Transaction]) -> None:
        node, transaction = payload
        if node.alive and node.app.submit(transaction):
            self._run_actions(node, self._call(node, lambda: node.replica.on_transactions()))

    def _event_partition(self, _: Any) -> None:
        if self.stabilizing:
            return
        members = sorted({node.member_id for node in self.nodes})
        self.rng.shuffle(members)
        cut = self.rng.randint(1, len(members) - 1)
        self.partition = (frozenset(members[:cut]), frozenset(members[cut:]))
        self._log(f"PARTITION {sorted(self.partition[0])} | {sorted(self.partition[1])}")
        self._schedule(self.now_ms + self.rng.randint(200, 4_000), "heal", None)
        self._schedule(self._exponential(self.config.partition_rate_per_s), "partition", None)

    def _event_heal(self, _: Any) -> None:
        self.partition = None
        self._log("HEAL")

    def _event_crash(self, _: Any) -> None:
        if self.stabilizing:
            return
        self._schedule(self._exponential(self.config.crash_rate_per_s), "crash", None)
        alive = [node for node in self.nodes if node.alive]
        if alive:
            node = self.rng.choice(alive)
            self._crash(node)
            self._schedule(self.now_ms + self.rng.randint(100, 5_000), "restart", node)

    def _event_restart(self, node: _Node) -> None:
        if not node.alive:
            self._log(f"RESTART {node.name} from height {len(node.chain)}")
            self._start(node)

    def _event_member_change(self, _: Any) -> None:
        """Admit a new (correct but silent) member: n grows by one at the next height."""
        joining = crypto.key_from_seed(sha256(b"joining" + self.chain_id))
        members = [member.to_canonical() for member in self.genesis.members]
        members.append(
            {
                "id": "joiner",
                "name": "Joining member",
                "public_key": crypto.public_key_bytes(joining),
                "endpoint": "127.0.0.1:29999",
            }
        )
        self._submit_transaction(b"", contract="members", action="set", args={"members": members})

    def _event_outsider(self, _: Any) -> None:
        """A non-member signs prepare and commit votes for every proposal seen lately."""
        self._schedule(self.now_ms + 4 * self.config.tick_ms, "outsider", None)
        recent = sorted(self.proposals_seen.items())[-4:]
        for (height, view), block_hash in recent:
            for kind in (Prepare, CommitVote):
                vote = kind.sign(
                    self.outsider_key,
                    self.chain_id,
                    height=height,
                    view=view,
                    block_hash=block_hash,
                    sender=OUTSIDER,
                )
                data = encode_message(vote)
                for member_id in sorted({node.member_id for node in self.nodes}):
                    for node in self._recipients(member_id):
                        delay = self.rng.randint(1, self.config.delay_ms_max)
                        self._schedule(self.now_ms + delay, "deliver", (node, OUTSIDER, data))

    def _event_stabilize(self, _: Any) -> None:
        self.stabilizing = True
        self.partition = None
        self._log("STABILIZE")
        for node in self.nodes:
            if not node.alive:
                self._start(node)
        for _ in range(3):
            self.liveness_transactions.add(self._submit_transaction(b"liveness"))

    # --- byzantine behaviours -----------------------------------------------------------------

    def _misbehave(self, node: _Node) -> None:
        behaviour = node.behaviour
        if behaviour == "replayer" and node.sent_history and self.rng.random() < 0.3:
            member_id, data = self.rng.choice(node.sent_history)
            self._transmit(node, member_id, data)
        elif behaviour == "flooder" and self.rng.random() < 0.5:
            self._flood(node)
        elif behaviour == "conflicting_voter" and self.rng.random() < 0.3:
            self._conflicting_votes(node)
        elif behaviour == "equivocator":
            self._equivocate(node)

    def _flood(self, node: _Node) -> None:
        replica = node.replica
        junk = [
            Prepare.sign(
                node.key,
                self.chain_id,
                height=replica.height + 10_000,
                view=0,
                block_hash=bytes(32),
                sender=node.member_id,
            ),
            Prepare.sign(
                node.key,
                self.chain_id,
                height=replica.height,
                view=replica.view + 1_000_000,
                block_hash=bytes(32),
                sender=node.member_id,
            ),
            CommitVote(
                height=replica.height,
                view=replica.view,
                block_hash=bytes(32),
                sender=node.member_id,
                signature=bytes(64),
            ),
            Status(height=replica.height + 50, certificate=None, sender=node.member_id),
        ]
        for member in self._other_members(node):
            for message in junk:
                self._transmit(node, member, encode_message(message))
            self._transmit(node, member, self.rng.randbytes(self.rng.randint(0, 64)))

    def _conflicting_votes(self, node: _Node) -> None:
        replica = node.replica
        for kind in (Prepare, CommitVote):
            message = kind.sign(
                node.key,
                self.chain_id,
                height=replica.height,
                view=replica.view,
                block_hash=self.rng.randbytes(32),
                sender=node.member_id,
            )
            self._transmit(
                node, self.rng.choice(self._other_members(node)), encode_message(message)
            )
        outsider_vote = CommitVote.sign(
            self.outsider_key,
            self.chain_id,
            height=replica.height,
            view=replica.view,
            block_hash=self.rng.randbytes(32),
            sender=node.member_id,
        )
        self._transmit(
            node, self.rng.choice(self._other_members(node)), encode_message(outsider_vote)
        )

    def _equivocate(self, node: _Node) -> None:
        """As primary, propose a second, different block to half of the others."""
        replica = node.replica
        proposal = replica._state.proposals.get(replica.view)
        if proposal is None or proposal.sender != node.member_id:
            return
        marker = (node.name, replica.height, replica.view)
        if marker in self.equivocations:
            return
        self.equivocations.add(marker)
        other_block = node.app.propose(
            height=replica.height,
            view=replica.view,
            timestamp_ms=proposal.block.header.timestamp_ms + 1,
            proposer=node.member_id,
        )
        second = PrePrepare.sign(
            node.key, self.chain_id, view=replica.view, block=other_block, sender=node.member_id
        )
        others = self._other_members(node)
        for member in others[len(others) // 2 :]:
            self._transmit(node, member, encode_message(second))
            for kind in (Prepare, CommitVote):
                vote = kind.sign(
                    node.key,
                    self.chain_id,
                    height=replica.height,
                    view=replica.view,
                    block_hash=other_block.block_hash,
                    sender=node.member_id,
                )
                self._transmit(node, member, encode_message(vote))

    def _lie(self, node: _Node, sender: str, request: BlockRequest) -> None:
        """Answer a block request with real blocks under forged certificates."""
        forged = []
        for height in range(request.from_height, request.to_height + 1):
            if height > len(node.chain):
                break
            block, certificate = node.chain[height - 1]
            forged.append(
                (
                    block,
                    certificate.model_copy(
                        update={"signatures": ((node.member_id, self.rng.randbytes(64)),)}
                    ),
                )
            )
        response = BlockResponse(blocks=tuple(forged), sender=node.member_id)
        self._transmit(node, sender, encode_message(response))

    def _other_members(self, node: _Node) -> list[str]:
        return sorted({other.member_id for other in self.nodes} - {node.member_id})

    # --- invariants ---------------------------------------------------------------------------

    def _violation(self, text: str) -> None:
        self._log(f"VIOLATION {text}")
        self.violations.append(f"t={self.now_ms}ms: {text}")

    def _observe_sent(self, node: _Node, message: Any) -> None:
        """No correct replica signs two things for one (height, view, kind), nor goes back."""
        if not node.correct or not isinstance(
            message, PrePrepare | Prepare | CommitVote | ViewChange | NewView
        ):
            return
        if isinstance(message, PrePrepare):
            content = message.block.block_hash
            self.proposals_seen[(message.height, message.view)] = content
        elif isinstance(message, Prepare | CommitVote):
            content = message.block_hash
        else:
            content = sha256(message.body_bytes())
        kind = message.kind
        key = (node.name, message.height, message.view, kind)
        earlier = self.signed_by_correct.setdefault(key, content)
        if earlier != content:
            self._violation(
                f"{node.name} signed two different {kind} at height "
                f"{message.height} view {message.view}"
            )
        view_key = (node.name, message.height)
        highest = self.highest_view_sent.get(view_key, -1)
        # Retransmitted view changes of an earlier view are the same signed messages again
        # (checked above); a prepare or a new view in an earlier view would be a regression.
        if kind in ("new_view", "prepare") and message.view < highest:
            self._violation(
                f"{node.name} went back from view {highest} to {message.view} "
                f"at height {message.height}"
            )
        self.highest_view_sent[view_key] = max(highest, message.view)

    def _check_commit(self, node: _Node, block: Any, certificate: CommitCertificate) -> None:
        height = block.height
        members = node.app.members()
        try:
            certificate.verify(self.chain_id, members)
        except InvalidCertificateError as error:
            self._violation(
                f"{node.name} committed height {height} with an invalid certificate: {error}"
            )
        if certificate.block_hash != block.block_hash or certificate.height != height:
            self._violation(f"{node.name} committed a certificate for another block")
        agreed = self.committed_at.setdefault(height, block.block_hash)
        if agreed != block.block_hash:
            self._violation(f"agreement: two blocks committed at height {height}")
        earlier = self.certificates.setdefault(height, certificate)
        if earlier.block_hash != certificate.block_hash:
            self._violation(f"two certificates for different blocks at height {height}")
        if height != len(node.chain) + 1:
            self._violation(
                f"{node.name} committed height {height} on a chain of {len(node.chain)}"
            )
        for transaction in block.transactions:
            if transaction.tx_id not in self.submitted:
                self._violation(f"validity: height {height} holds a transaction nobody submitted")
        tx_ids = [tx.tx_id for tx in block.transactions]
        if len(set(tx_ids)) != len(tx_ids) or any(
            node.app.state.transaction_location(tx_id) for tx_id in tx_ids
        ):
            self._violation(f"validity: a transaction committed twice (height {height})")

    def check_invariants(self) -> list[str]:
        """Total order across correct members (run at the end and by tests)."""
        chains = [node.chain for node in self.nodes if node.correct]
        longest = max(chains, key=len, default=[])
        for chain in chains:
            for (block, _), (reference, _) in zip(chain, longest, strict=False):
                if block.block_hash != reference.block_hash:
                    self._violation(f"total order: chains differ at height {block.height}")
                    break
        return self.violations

    def _longest_correct_chain(self) -> list[tuple[Any, CommitCertificate]]:
        return max((node.chain for node in self.nodes if node.correct), key=len, default=[])

    def _liveness_reached(self) -> bool:
        correct = [node for node in self.nodes if node.correct]
        if not correct or not all(node.alive for node in correct):
            return False
        for node in correct:
            if any(
                not node.app.state.transaction_location(tx_id)
                for tx_id in self.liveness_transactions
            ):
                return False
        return True

    def _liveness_failure(self) -> str | None:
        self.check_invariants()
        if self.violations:
            return None
        if not self._liveness_reached():
            heights = {node.name: len(node.chain) for node in self.nodes if node.correct}
            return (
                f"transactions submitted at stabilization not committed on every correct "
                f"member within {self.config.stabilization_ms} ms (heights {heights})"
            )
        return None


def run_seed(
    seed: int, nodes: int | None = None, replica_factory: ReplicaFactory = Replica
) -> dict[str, Any]:
    """Run one seed; return a small picklable summary of its result."""
    result = Simulation(random_config(seed, nodes), replica_factory=replica_factory).run()
    return {
        "seed": seed,
        "ok": result.ok,
        "height": max(result.heights.values(), default=0),
        "transactions": result.committed_transactions,
        "violation": result.violations[0] if result.violations else None,
        "liveness_failure": result.liveness_failure,
    }


def _run_seed_packed(arguments: tuple[int, int | None, ReplicaFactory]) -> dict[str, Any]:
    return run_seed(*arguments)


def run_campaign(
    seeds: Sequence[int],
    *,
    nodes: int | None = None,
    replica_factory: ReplicaFactory = Replica,
    stop_at_first_failure: bool = True,
    workers: int = 1,
    progress: Callable[[dict[str, Any]], None] | None = None,
    progress_every: int = 100,
) -> dict[str, Any]:
    """Run many seeds (over ``workers`` processes); return a summary document.

    Seeds are independent and each is deterministic, so running them in parallel changes
    nothing but the wall-clock time; results are reported in seed order. ``progress`` is
    called with the summary so far every ``progress_every`` seeds (a long campaign reports
    its figures before it ends). ``failing_seeds`` lists the first
    :data:`FAILING_SEEDS_LISTED_MAX` failing seeds.
    """
    started = time.perf_counter()
    summary: dict[str, Any] = {
        "seeds_run": 0,
        "heights_committed": 0,
        "transactions_committed": 0,
        "safety_violations": 0,
        "liveness_failures": 0,
        "failing_seed": None,
        "failure": None,
        "replay": None,
        "failing_seeds": [],
        "workers": workers,
    }
    jobs = [(seed, nodes, replica_factory) for seed in seeds]
    if workers > 1:
        pool = multiprocessing.get_context("fork").Pool(workers)
        results = pool.imap(_run_seed_packed, jobs, chunksize=1)
    else:
        pool = None
        results = map(_run_seed_packed, jobs)
    try:
        for result in results:
            summary["seeds_run"] += 1
            summary["heights_committed"] += result["height"]
            summary["transactions_committed"] += result["transactions"]
            if progress is not None and summary["seeds_run"] % progress_every == 0:
                summary["seconds"] = round(time.perf_counter() - started, 2)
                progress(summary)
            if result["ok"]:
                continue
            if len(summary["failing_seeds"]) < FAILING_SEEDS_LISTED_MAX:
                summary["failing_seeds"].append(result["seed"])
            if result["violation"] is not None:
                summary["safety_violations"] += 1
            else:
                summary["liveness_failures"] += 1
            if summary["failing_seed"] is None:
                seed = result["seed"]
                summary["failing_seed"] = seed
                summary["failure"] = result["violation"] or result["liveness_failure"]
                node_flag = f" --nodes {nodes}" if nodes else ""
                summary["replay"] = (
                    f"python -m consensus.simulator --seeds 1 --start {seed}{node_flag} --trace"
                )
            if stop_at_first_failure:
                break
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
    summary["seconds"] = round(time.perf_counter() - started, 2)
    return summary


def _print_progress(summary: dict[str, Any]) -> None:
    print(json.dumps(summary), file=sys.stderr, flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m consensus.simulator",
        description="Run seeded PBFT simulations with faults and byzantine members; exit "
        "non-zero on any safety violation or liveness failure.",
    )
    parser.add_argument("--seeds", type=int, default=100, help="how many seeds (default 100)")
    parser.add_argument("--start", type=int, default=0, help="first seed (default 0)")
    parser.add_argument(
        "--nodes",
        type=int,
        choices=range(4, 8),
        metavar="4..7",
        help="members per run (default: chosen by each seed)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    parser.add_argument(
        "--trace", action="store_true", help="print the event trace (use with --seeds 1)"
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="run every seed even after a failure"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="processes to run seeds in (default: one per core)",
    )
    parser.add_argument(
        "--progress",
        action="store_true",
        help="print the summary so far to stderr every 100 seeds (one JSON line each)",
    )
    arguments = parser.parse_args(argv)
    if arguments.trace:
        config = random_config(arguments.start, arguments.nodes)
        print(f"seed {config.seed}: {config}")
        result = Simulation(config, trace=print).run()
        print(
            json.dumps(
                {
                    "ok": result.ok,
                    "violations": result.violations,
                    "liveness_failure": result.liveness_failure,
                    "heights": result.heights,
                },
                indent=2,
            )
        )
        return 0 if result.ok else 1
    summary = run_campaign(
        range(arguments.start, arguments.start + arguments.seeds),
        nodes=arguments.nodes,
        stop_at_first_failure=not arguments.keep_going,
        workers=max(1, arguments.workers),
        progress=_print_progress if arguments.progress else None,
    )
    if arguments.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"seeds run: {summary['seeds_run']} in {summary['seconds']} s; heights "
            f"committed: {summary['heights_committed']}; safety violations: "
            f"{summary['safety_violations']}; liveness failures: "
            f"{summary['liveness_failures']}"
        )
        if summary["failing_seed"] is not None:
            print(f"first failing seed: {summary['failing_seed']}: {summary['failure']}")
            print(f"replay: {summary['replay']}")
    return 0 if summary["failing_seed"] is None else 1


if __name__ == "__main__":
    sys.exit(main())
