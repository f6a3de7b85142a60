"""A tiny scripted cluster for readable consensus scenarios (no randomness, no simulator).

In the spirit of etcd-raft's data-driven tests, a scenario is a short script of verbs —
``submit``, ``tick``, ``deliver_all``, ``drop``, ``partition``, ``crash``, ``restart`` — and its
expected outcome is read off a message trace::

    client -> m0,m1,m2,m3: 1 transaction 5be1…
    m0 -> *: pre_prepare h=1 v=0 3f2a…
    m1 -> *: prepare h=1 v=0 3f2a…
    m1 -> *: commit h=1 v=0 3f2a…
    m2: COMMIT h=1 v=0 (3 signatures) 3f2a…
    m3: VIEW-CHANGE to v=1

Nothing happens unless the script asks for it: messages wait in one FIFO queue until a
``deliver`` verb takes them out, clocks advance only on ``tick``. Every member has one
:class:`~consensus.simapp.SimulatedApplication` (its durable chain survives a crash) and one
real :class:`~consensus.replica.Replica`. Actions are executed by the node's and the
simulator's one executor (:func:`consensus.driver.execute_actions`) on a port of this harness:
:class:`PersistSafety` kept per member before the messages it covers leave, messages encoded
with :func:`encode_message` and decoded with :func:`decode_message` on delivery (the wire
format is exercised), ``CommitBlock`` → ``app.append`` → ``replica.on_block_committed``.

The harness checks the simulator's safety invariants (:class:`consensus.invariants.
InvariantChecker`, the same checker) as it goes and fails the test at once (printing the
trace) if one breaks: agreement, valid certificates, no replica signing two different things
for one (height, view, kind), no return to a lower view, durability across a restart.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consensus.actions import Action, ReportEvidence, ReportRejectedProposal
from consensus.driver import execute_actions
from consensus.invariants import InvariantChecker
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
from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import Block, CommitCertificate, Member, Transaction, sha256

__all__ = ["SCENARIO_CONFIG", "Cluster", "Envelope", "short"]

SCENARIO_CONFIG = ReplicaConfig(
    view_timeout_ticks=5,
    view_timeout_ticks_max=40,
    status_interval_ticks=10,
    retransmit_interval_ticks=4,
    fetch_timeout_ticks=4,
)
"""Small timeouts: a view change takes five ticks, a status goes out every ten."""

TICK_MS = 100
DELIVERIES_MAX = 20_000
"""A ``deliver`` verb that has not gone quiet after this many deliveries is a livelock."""

MessageFilter = Callable[[Any, str, str], bool]
"""``(message, sender, recipient) -> bool``: selects messages for drop rules and delivery."""


def short(digest: bytes) -> str:
    """The first four hex digits of a hash, as traces show it."""
    return digest.hex()[:4] + "…"


def describe_message(message: Any) -> str:
    """One readable line for a message: its kind and what it is about."""
    if isinstance(message, PrePrepare):
        return f"pre_prepare h={message.height} v={message.view} {short(message.block.block_hash)}"
    if isinstance(message, Prepare | CommitVote):
        return f"{message.kind} h={message.height} v={message.view} {short(message.block_hash)}"
    if isinstance(message, ViewChange):
        prepared = message.prepared
        carried = "none" if prepared is None else f"v{prepared.view}:{short(prepared.block_hash)}"
        return f"view_change h={message.height} v={message.view} prepared={carried}"
    if isinstance(message, NewView):
        return (
            f"new_view h={message.height} v={message.view} "
            f"({len(message.view_changes)} view changes) proposes "
            f"{short(message.pre_prepare.block.block_hash)}"
        )
    if isinstance(message, Status):
        return f"status h={message.height}"
    if isinstance(message, BlockRequest):
        return f"block_request {message.from_height}..{message.to_height}"
    if isinstance(message, BlockResponse):
        heights = [block.height for block, _ in message.blocks]
        span = f"{heights[0]}..{heights[-1]}" if heights else "none"
        return f"block_response {span} ({len(heights)} blocks)"
    return type(message).__name__


@dataclass(frozen=True, slots=True)
class Envelope:
    """One message in flight: canonical bytes from ``sender`` to ``recipient``."""

    sender: str
    recipient: str
    data: bytes
    message: Any
    """The message as sent (for filters); the recipient gets ``decode_message(data)``."""


@dataclass(slots=True)
class Node:
    """One member process: its durable state survives a crash, the rest does not."""

    member_id: str
    key: crypto.PrivateKey
    chain: list[tuple[Block, CommitCertificate]] = field(default_factory=list)
    safety: SafetyRecord | None = None
    app: SimulatedApplication | None = None
    replica: Replica | None = None
    reports: list[Any] = field(default_factory=list)
    """ReportEvidence and ReportRejectedProposal actions, in order (not durable)."""

    @property
    def alive(self) -> bool:
        return self.replica is not None


class Cluster:
    """A scripted consortium of real replicas (see the module doc for the verbs)."""

    def __init__(
        self,
        members: int = 4,
        *,
        seed: bytes = b"scenario",
        config: ReplicaConfig = SCENARIO_CONFIG,
        tick_ms: int = TICK_MS,
    ) -> None:
        member_ids = [f"m{index}" for index in range(members)]
        self.seed = seed
        self.consortium = LocalConsortium.create(
            [(member_id, f"Member {member_id}") for member_id in member_ids], seed=seed
        )
        self.genesis = self.consortium.genesis
        self.chain_id = self.genesis.chain_id
        self.config = config
        self.tick_ms = tick_ms
        self.now_ms = self.genesis.created_at_ms
        self.client_key = crypto.key_from_seed(sha256(b"client" + seed))
        self.trace: list[str] = []
        self.queue: list[Envelope] = []
        self.sent: list[tuple[str, Any]] = []
        """Every message a replica asked to send, as ``(sender, message)``."""
        self.drop_rules: list[MessageFilter] = []
        self.nodes: dict[str, Node] = {}
        self._nonce = 0
        self.invariants = InvariantChecker(self.chain_id, report=self._violation)
        self._liars: set[str] = set()
        for member_id in member_ids:
            self.add_replica(member_id, key=self.consortium.keys[member_id], log=False)

    # --- membership of the cluster ------------------------------------------------------------

    def key(self, member_id: str) -> crypto.PrivateKey:
        return self.nodes[member_id].key

    def add_replica(
        self, member_id: str, *, key: crypto.PrivateKey | None = None, log: bool = True
    ) -> Node:
        """Start a process for ``member_id`` with an empty chain (it catches up from peers).

        Without ``key`` the key derives from the cluster's seed like the genesis members'.
        """
        key = key or crypto.key_from_seed(sha256(self.seed + member_id.encode()))
        node = Node(member_id=member_id, key=key)
        self.nodes[member_id] = node
        if log:
            self._log(f"START {member_id} from height 0")
        self._boot(node)
        return node

    def member_map(self, member_id: str) -> dict[str, Any]:
        """The canonical member map for ``member_id`` (its key from the cluster's seed)."""
        node = self.nodes.get(member_id)
        key = node.key if node else crypto.key_from_seed(sha256(self.seed + member_id.encode()))
        index = int(member_id.removeprefix("m")) if member_id[1:].isdigit() else 99
        return Member(
            id=member_id,
            name=f"Member {member_id}",
            public_key=crypto.public_key_bytes(key),
            endpoint=f"127.0.0.1:{27_000 + index}",
        ).to_canonical()

    def replica(self, member_id: str) -> Replica:
        replica = self.nodes[member_id].replica
        assert replica is not None, f"{member_id} is crashed"
        return replica

    def app(self, member_id: str) -> SimulatedApplication:
        app = self.nodes[member_id].app
        assert app is not None, f"{member_id} is crashed"
        return app

    def live(self) -> list[str]:
        return [member_id for member_id, node in self.nodes.items() if node.alive]

    # --- verbs --------------------------------------------------------------------------------

    def submit(
        self, transaction_or_count: Transaction | int = 1, *, to: Iterable[str] | None = None
    ) -> list[Transaction]:
        """Give new signed transactions (or one given) to members ``to`` (default: all live)."""
        if isinstance(transaction_or_count, Transaction):
            transactions = [transaction_or_count]
        else:
            transactions = [self.transaction() for _ in range(transaction_or_count)]
        targets = [m for m in (to if to is not None else self.live()) if self.nodes[m].alive]
        label = " ".join(short(tx.tx_id) for tx in transactions)
        count = f"{len(transactions)} transaction{'s' if len(transactions) != 1 else ''}"
        self._log(f"client -> {','.join(targets)}: {count} {label}")
        for member_id in targets:
            node = self.nodes[member_id]
            accepted = [tx for tx in transactions if node.app.submit(tx)]
            if accepted:
                self._run(
                    node,
                    lambda node=node, accepted=accepted: node.replica.on_transactions(accepted),
                )
        return transactions

    def transaction(self, contract: str = "sim", action: str = "note", **args: Any) -> Transaction:
        """A new transaction signed by the cluster's client (nonces count up)."""
        self._nonce += 1
        return Transaction.create(
            self.client_key,
            chain_id=self.chain_id,
            contract=contract,
            action=action,
            args=args or {"n": self._nonce},
            nonce=self._nonce,
            expiry_height=10_000,
        )

    def tick(self, times: int = 1, *, members: Iterable[str] | None = None) -> None:
        """Advance the clock ``times`` ticks; each live member in ``members`` sees each one."""
        chosen = list(members) if members is not None else None
        self._log(f"TICK x{times}" + (f" ({','.join(chosen)})" if chosen is not None else ""))
        self._tick(times, chosen)

    def _tick(self, times: int, chosen: list[str] | None) -> None:
        for _ in range(times):
            self.now_ms += self.tick_ms
            for member_id in chosen if chosen is not None else self.live():
                node = self.nodes[member_id]
                if node.alive:
                    self._run(node, lambda node=node: node.replica.on_tick(self.now_ms))

    def deliver(self, filter: MessageFilter | None = None, *, limit: int | None = None) -> int:
        """Deliver queued messages (those ``filter`` selects) in order until none is left.

        Messages sent meanwhile join the queue and are delivered too if selected; the others
        stay queued. Returns how many were delivered; fails if the cluster does not go quiet.
        """
        delivered = 0
        while limit is None or delivered < limit:
            index = next(
                (
                    i
                    for i, envelope in enumerate(self.queue)
                    if filter is None
                    or filter(envelope.message, envelope.sender, envelope.recipient)
                ),
                None,
            )
            if index is None:
                break
            envelope = self.queue.pop(index)
            delivered += 1
            self._check(delivered <= DELIVERIES_MAX, "the cluster does not go quiet")
            if filter is not None:  # a targeted delivery is part of the script: show it
                self._log(
                    f"  deliver {envelope.sender} -> {envelope.recipient}: "
                    f"{describe_message(envelope.message)}"
                )
            self._deliver(envelope)
        return delivered

    def deliver_all(self) -> int:
        return self.deliver()

    def run(self, ticks: int, *, members: Iterable[str] | None = None) -> None:
        """``ticks`` times: one tick, then deliver everything (the cluster's steady state)."""
        chosen = list(members) if members is not None else None
        self._log(f"RUN x{ticks}" + (f" ({','.join(chosen)})" if chosen is not None else ""))
        for _ in range(ticks):
            self._tick(1, chosen)
            self.deliver_all()

    def discard(self, filter: MessageFilter | None = None) -> int:
        """Remove queued messages (those ``filter`` selects, or all) without delivering them."""
        removed = [
            envelope
            for envelope in self.queue
            if filter is None or filter(envelope.message, envelope.sender, envelope.recipient)
        ]
        self.queue = [envelope for envelope in self.queue if envelope not in removed]
        return len(removed)

    def drop(self, rule: MessageFilter) -> Callable[[], None]:
        """From now on, lose messages that ``rule`` selects; returns a function that stops it."""
        self.drop_rules.append(rule)
        return lambda: self.drop_rules.remove(rule)

    def partition(self, *groups: Iterable[str]) -> None:
        """Cut the network between ``groups`` (members in no group are alone)."""
        side = {member: index for index, group in enumerate(groups) for member in group}
        self._log("PARTITION " + " | ".join(",".join(sorted(group)) for group in groups))

        def cut(message: Any, sender: str, recipient: str) -> bool:
            return side.get(sender, sender) != side.get(recipient, recipient)

        self.drop_rules.append(cut)

    def heal(self) -> None:
        """Remove every drop rule and partition."""
        self.drop_rules.clear()
        self._log("HEAL")

    def crash(self, member_id: str) -> None:
        """Stop ``member_id``: it keeps its chain and safety record, loses everything else."""
        node = self.nodes[member_id]
        node.replica = None
        node.app = None
        self._log(f"CRASH {member_id}")

    def restart(self, member_id: str) -> None:
        """Rebuild ``member_id`` from its durable chain and last PersistSafety record."""
        node = self.nodes[member_id]
        assert not node.alive, f"{member_id} is running"
        self._log(f"RESTART {member_id} from height {len(node.chain)}")
        self._boot(node)

    def lie_about_blocks(self, member_id: str) -> None:
        """``member_id`` answers block requests with real blocks under forged certificates."""
        self._liars.add(member_id)

    def send_as(self, sender: str, message: Any, *, to: Iterable[str]) -> None:
        """Put a crafted ``message`` in the queue as if ``sender`` had sent it."""
        data = encode_message(message)
        recipients = list(to)
        self._log(f"{sender} -> {','.join(recipients)}: {describe_message(message)} (crafted)")
        self.queue.extend(Envelope(sender, r, data, message) for r in recipients)

    # --- what scenarios read ------------------------------------------------------------------

    def heights(self) -> dict[str, int]:
        """Committed height of every member (crashed members keep theirs)."""
        return {member_id: len(node.chain) for member_id, node in self.nodes.items()}

    def views(self) -> dict[str, int]:
        return {m: node.replica.view for m, node in self.nodes.items() if node.alive}

    def chain(self, member_id: str) -> list[tuple[Block, CommitCertificate]]:
        return self.nodes[member_id].chain

    def dropped(self, member_id: str) -> dict[str, int]:
        return dict(self.replica(member_id).dropped)

    def reports(self, member_id: str) -> list[Any]:
        return self.nodes[member_id].reports

    def sent_messages(self, kind: str, sender: str | None = None) -> list[Any]:
        """Messages of ``kind`` that replicas sent (``sender``'s only, if given), in order."""
        return [m for s, m in self.sent if m.kind == kind and (sender is None or s == sender)]

    def lines(self, fragment: str) -> list[str]:
        """Trace lines that contain ``fragment``."""
        return [line for line in self.trace if fragment in line]

    def expect(self, *fragments: str) -> None:
        """Fail unless trace lines contain ``fragments`` one after the other, in this order."""
        position = 0
        for fragment in fragments:
            found = next(
                (i for i in range(position, len(self.trace)) if fragment in self.trace[i]), None
            )
            if found is None:
                raise AssertionError(
                    f"no trace line with {fragment!r} after line {position + 1}\n"
                    f"--- trace ---\n{self.format_trace(numbered=True)}"
                )
            position = found + 1

    def format_trace(self, *, numbered: bool = False) -> str:
        if numbered:
            return "\n".join(f"{i:>4}  {line}" for i, line in enumerate(self.trace, 1))
        return "\n".join(self.trace)

    # --- execution ----------------------------------------------------------------------------

    def _log(self, line: str) -> None:
        self.trace.append(line)

    def _check(self, condition: bool, what: str) -> None:
        if not condition:
            self._violation(what)

    def _violation(self, what: str) -> None:
        """A broken invariant fails the test at once, with the trace so far."""
        self._log(f"VIOLATION {what}")
        raise AssertionError(f"{what}\n--- trace ---\n{self.format_trace()}")

    def _boot(self, node: Node) -> None:
        node.app = SimulatedApplication(self.genesis, chain=list(node.chain))
        node.replica = Replica(
            member_id=node.member_id,
            key=node.key,
            chain_id=self.chain_id,
            application=node.app,
            config=self.config,
            safety=node.safety,
        )
        replica = node.replica
        self.invariants.check_restart(
            node.member_id,
            height=replica.height,
            view=replica.view,
            blocks_stored=len(node.chain),
            persisted_view=node.safety.view if node.safety is not None else None,
        )
        # The clock starts: a replica proposes only once it knows the time.
        self._run(node, lambda: replica.on_tick(self.now_ms))

    def _run(self, node: Node, step: Callable[[], list[Any]]) -> None:
        """Call the replica, then execute its actions with the one executor."""
        member_id = node.member_id
        view_before = node.replica.view
        actions = step()
        view = node.replica.view
        if view > view_before:
            self._log(f"{member_id}: VIEW-CHANGE to v={view}")
        # Views are global: a replica never returns to a lower one, not even after a restart.
        self.invariants.observe_view(member_id, view)
        execute_actions(_MemberPort(self, node), actions, before_action=lambda: node.alive)

    def _transmit(self, sender: str, recipients: Sequence[str], message: Any, to: str) -> None:
        self.sent.append((sender, message))
        data = encode_message(message)
        lost = [r for r in recipients if any(rule(message, sender, r) for rule in self.drop_rules)]
        suffix = "" if not lost else " (lost)" if to != "*" else f" (lost: {','.join(lost)})"
        self._log(f"{sender} -> {to}: {describe_message(message)}{suffix}")
        self.queue.extend(Envelope(sender, r, data, message) for r in recipients if r not in lost)

    def _deliver(self, envelope: Envelope) -> None:
        node = self.nodes[envelope.recipient]
        if not node.alive:
            return
        message = decode_message(envelope.data)
        if envelope.recipient in self._liars and isinstance(message, BlockRequest):
            self._lie(envelope.recipient, message)
            return
        self._run(node, lambda: node.replica.on_message(envelope.sender, message))

    def _lie(self, liar: str, request: BlockRequest) -> None:
        node = self.nodes[liar]
        forged = []
        for height in range(request.from_height, min(request.to_height, len(node.chain)) + 1):
            block, certificate = node.chain[height - 1]
            signature = crypto.sign(node.key, crypto.Domain(b"forged", self.chain_id), b"")
            forged.append(
                (
                    block,
                    certificate.model_copy(
                        update={"signatures": signatures_of(certificate, signature)}
                    ),
                )
            )
        response = BlockResponse(blocks=tuple(forged), sender=liar)
        self._transmit(liar, [request.sender], response, request.sender)
        self.trace[-1] += " (forged certificates)"

    def _commit(self, node: Node, block: Block, certificate: CommitCertificate) -> list[Any]:
        height = block.height
        member_id = node.member_id
        app = node.app
        self.invariants.check_commit(
            member_id,
            block,
            certificate,
            members=app.members(),
            chain_length=len(node.chain),
            is_committed=lambda tx_id: bool(app.state.transaction_location(tx_id)),
        )
        app.append(block, certificate)
        node.chain.append((block, certificate))
        self._log(
            f"{member_id}: COMMIT h={height} v={certificate.view} "
            f"({len(certificate.signatures)} signatures) {short(block.block_hash)}"
        )
        return list(node.replica.on_block_committed(height))


class _MemberPort:
    """How the cluster executes one member's actions (the executor's port): messages go to
    the queue (past the drop rules), commits to the member's durable chain, reports to
    :meth:`Cluster.reports` and the trace."""

    __slots__ = ("cluster", "node")

    def __init__(self, cluster: Cluster, node: Node) -> None:
        self.cluster = cluster
        self.node = node

    def persist_safety(self, record: SafetyRecord) -> None:
        self.node.safety = record

    def send(self, to: str, message: Any) -> None:
        self.cluster.invariants.observe_signed(self.node.member_id, message)
        self.cluster._transmit(self.node.member_id, [to], message, to)

    def broadcast(self, message: Any) -> None:
        member_id = self.node.member_id
        self.cluster.invariants.observe_signed(member_id, message)
        others = [m for m in self.cluster.nodes if m != member_id]
        self.cluster._transmit(member_id, others, message, "*")

    def fetch_blocks(self, peer: str, request: BlockRequest) -> None:
        self.cluster._transmit(self.node.member_id, [peer], request, peer)

    def commit_block(self, block: Block, certificate: CommitCertificate) -> list[Action]:
        return self.cluster._commit(self.node, block, certificate)

    def report_rejected_proposal(self, report: ReportRejectedProposal) -> None:
        self.node.reports.append(report)
        self.cluster._log(
            f"{self.node.member_id}: REJECT h={report.height} v={report.view} "
            f"from {report.proposer}: {report.reason}"
        )

    def report_evidence(self, report: ReportEvidence) -> None:
        self.node.reports.append(report)
        self.cluster._log(f"{self.node.member_id}: EVIDENCE against {report.member}")


def signatures_of(
    certificate: CommitCertificate, signature: bytes
) -> tuple[tuple[str, bytes], ...]:
    """The certificate's signers, each with ``signature`` instead of its own (a forgery)."""
    return tuple((member_id, signature) for member_id, _ in certificate.signatures)
