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

Where the parts live: this module holds the run (its events, processes' lifecycles and
liveness) and the campaign; :mod:`consensus.simnet` the processes, the event queue and the
hostile network; :mod:`consensus.simfaults` the byzantine behaviours and the outsider;
:mod:`consensus.invariants` the safety checks (shared with the scenario harness). Each
process's actions run through the one executor, :func:`consensus.driver.execute_actions`,
with a hook that may crash the process before any action.

``python -m consensus.simulator --seeds N [--start S] [--nodes 4..7] [--json]`` runs a campaign
and prints one summary; a failing seed replays the exact same trace with ``--seeds 1 --start
SEED``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from consensus.actions import Action, ReportEvidence, ReportRejectedProposal
from consensus.driver import execute_actions
from consensus.invariants import InvariantChecker
from consensus.messages import BlockRequest, PrePrepare
from consensus.replica import Replica, ReplicaConfig
from consensus.safety import SafetyRecord
from consensus.simapp import SimulatedApplication
from consensus.simfaults import BEHAVIOURS, OUTSIDER, Adversary
from consensus.simnet import EventQueue, SimulatedNetwork, SimulatedProcess
from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import (
    Block,
    CommitCertificate,
    ConsensusParameters,
    Transaction,
    fault_tolerance,
    sha256,
)

__all__ = [
    "OUTSIDER",
    "Simulation",
    "SimulationConfig",
    "SimulationResult",
    "random_config",
    "run_campaign",
]

ReplicaFactory = Callable[..., Replica]
FAILING_SEEDS_LISTED_MAX = 100


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


class _ProcessPort:
    """How the simulator executes one process's actions (the :class:`ActionPort`).

    Correct processes' signed messages go past the invariant checker on their way out; the
    network then loses, delays or duplicates them. A commit is checked, appended to the
    process's durable chain, and reported to its replica.
    """

    __slots__ = ("process", "simulation")

    def __init__(self, simulation: Simulation, process: SimulatedProcess) -> None:
        self.simulation = simulation
        self.process = process

    def persist_safety(self, record: SafetyRecord) -> None:
        self.process.safety = record

    def send(self, to: str, message: Any) -> None:
        self.simulation._observe_sent(self.process, message)
        self.simulation.network.send(self.process, to, message)

    def broadcast(self, message: Any) -> None:
        self.simulation._observe_sent(self.process, message)
        self.simulation.network.broadcast(self.process, message)

    def fetch_blocks(self, peer: str, request: BlockRequest) -> None:
        self.simulation.network.send(self.process, peer, request)

    def commit_block(self, block: Block, certificate: CommitCertificate) -> Sequence[Action]:
        return self.simulation._commit(self.process, block, certificate)

    def report_rejected_proposal(self, report: ReportRejectedProposal) -> None:
        pass

    def report_evidence(self, report: ReportEvidence) -> None:
        pass


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
        self.nodes: list[SimulatedProcess] = []
        for member_id in member_ids:
            behaviour = config.byzantine.get(member_id, "correct")
            copies = 2 if behaviour == "twins" else 1
            for copy in range(copies):
                self.nodes.append(
                    SimulatedProcess(
                        name=member_id if copies == 1 else f"{member_id}/{copy}",
                        member_id=member_id,
                        key=self.consortium.keys[member_id],
                        behaviour=behaviour,
                        skew_ms=self.rng.randint(
                            -config.clock_skew_ms_max, config.clock_skew_ms_max
                        ),
                    )
                )
        self.queue = EventQueue()
        self.network = SimulatedNetwork(config, self.rng, self.nodes, self.queue)
        self.adversary = Adversary(
            rng=self.rng,
            network=self.network,
            chain_id=self.chain_id,
            outsider_key=crypto.key_from_seed(sha256(b"outsider" + self.chain_id)),
        )
        self.events = 0
        self.violations: list[str] = []
        self.submitted: dict[bytes, Transaction] = {}
        self.invariants = InvariantChecker(
            self.chain_id, report=self._violation, submitted=self.submitted
        )
        self._nonce = 0
        self.liveness_transactions: set[bytes] = set()

    @property
    def now_ms(self) -> int:
        return self.queue.now_ms

    @property
    def stabilizing(self) -> bool:
        return self.network.stabilizing

    def _schedule(self, at_ms: int, kind: str, payload: Any) -> None:
        self.queue.schedule(at_ms, kind, payload)

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
        while self.queue and not self.violations:
            at_ms, kind, payload = self.queue.pop()
            if at_ms > end_ms:
                break
            self.queue.now_ms = at_ms
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

    def _start(self, node: SimulatedProcess) -> None:
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
        if node.alive:
            self.invariants.check_restart(
                node.name,
                height=node.replica.height,
                view=node.replica.view,
                blocks_stored=len(node.chain),
                persisted_view=node.safety.view if node.safety is not None else None,
            )

    def _crash(self, node: SimulatedProcess) -> None:
        node.alive = False
        node.replica = None
        node.app = None
        self._log(f"CRASH {node.name}")

    def _call(self, node: SimulatedProcess, step: Callable[[], Any]) -> Any:
        try:
            return step()
        except Exception as error:  # a replica must never raise: that is a bug
            self._violation(f"{node.name} raised {type(error).__name__}: {error}")
            return None

    def _run_actions(self, node: SimulatedProcess, actions: Sequence[Action] | None) -> None:
        """Execute actions with the one executor; a crash may strike between any two."""
        try:
            execute_actions(
                _ProcessPort(self, node),
                actions or (),
                before_action=lambda: self._survives_next_action(node),
            )
        except AssertionError as error:  # the executor's: the replica returned a non-action
            self._violation(f"{node.name}: {error}")

    def _survives_next_action(self, node: SimulatedProcess) -> bool:
        """False if ``node`` is down or crashes now (chaos only), before its next action."""
        if not node.alive:
            return False
        if (
            self.config.crash_rate_per_s
            and not self.stabilizing
            and (self.rng.random() < self.config.crash_rate_per_s / 200)
        ):
            self._crash(node)
            self._schedule(self.now_ms + self.rng.randint(100, 3_000), "restart", node)
            return False
        return True

    def _observe_sent(self, node: SimulatedProcess, message: Any) -> None:
        """What a correct process signs goes past the invariants (and the outsider's ears)."""
        if not node.correct:
            return
        if isinstance(message, PrePrepare):
            self.adversary.note_proposal(message)
        self.invariants.observe_signed(node.name, message)

    def _commit(
        self, node: SimulatedProcess, block: Block, certificate: CommitCertificate
    ) -> Sequence[Action]:
        height = block.height
        if node.correct:
            app = node.app
            self.invariants.check_commit(
                node.name,
                block,
                certificate,
                members=app.members(),
                chain_length=len(node.chain),
                is_committed=lambda tx_id: bool(app.state.transaction_location(tx_id)),
            )
        node.app.append(block, certificate)
        node.chain.append((block, certificate))
        self._log(
            f"COMMIT {node.name} h={height} v={certificate.view} "
            f"txs={len(block.transactions)} {block.block_hash.hex()[:8]}"
        )
        return self._call(node, lambda: node.replica.on_block_committed(height)) or ()

    # --- events -------------------------------------------------------------------------------

    def _event_tick(self, node: SimulatedProcess) -> None:
        self._schedule(self.now_ms + self.config.tick_ms, "tick", node)
        if not node.alive:
            return
        local_ms = self.now_ms + node.skew_ms + self.genesis.created_at_ms
        self._run_actions(node, self._call(node, lambda: node.replica.on_tick(local_ms)))
        if node.alive and not node.correct:
            self.adversary.misbehave(node)

    def _event_deliver(self, payload: tuple[SimulatedProcess, str, bytes]) -> None:
        node, sender, data = payload
        if not node.alive:
            return
        message = self.network.decode(data)
        if message is None:
            return  # the transport drops and counts undecodable frames
        if node.behaviour == "liar" and isinstance(message, BlockRequest):
            self.adversary.lie(node, sender, message)
            return
        self._run_actions(node, self._call(node, lambda: node.replica.on_message(sender, message)))

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
        for member_id in self.network.member_ids():
            # Gossip: every member hears of it, some later than others, some maybe never.
            if self.stabilizing or self.rng.random() < 0.9:
                delay = self.rng.randint(0, self.config.delay_ms_max)
                for node in self.network.recipients(member_id):
                    self._schedule(self.now_ms + delay, "arrive", (node, transaction))
        return transaction.tx_id

    def _event_arrive(self, payload: tuple[SimulatedProcess, Transaction]) -> None:
        node, transaction = payload
        if node.alive and node.app.submit(transaction):
            self._run_actions(node, self._call(node, lambda: node.replica.on_transactions()))

    def _event_partition(self, _: Any) -> None:
        if self.stabilizing:
            return
        side_a, side_b = self.network.cut_at_random()
        self._log(f"PARTITION {sorted(side_a)} | {sorted(side_b)}")
        self._schedule(self.now_ms + self.rng.randint(200, 4_000), "heal", None)
        self._schedule(self._exponential(self.config.partition_rate_per_s), "partition", None)

    def _event_heal(self, _: Any) -> None:
        self.network.heal()
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

    def _event_restart(self, node: SimulatedProcess) -> None:
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
        self.adversary.outsider_votes()

    def _event_stabilize(self, _: Any) -> None:
        self.network.stabilizing = True
        self.network.heal()
        self._log("STABILIZE")
        for node in self.nodes:
            if not node.alive:
                self._start(node)
        for _ in range(3):
            self.liveness_transactions.add(self._submit_transaction(b"liveness"))

    # --- invariants and liveness --------------------------------------------------------------

    def _violation(self, text: str) -> None:
        self._log(f"VIOLATION {text}")
        self.violations.append(f"t={self.now_ms}ms: {text}")

    def check_invariants(self) -> list[str]:
        """Total order across correct members (run at the end and by tests)."""
        self.invariants.check_total_order(node.chain for node in self.nodes if node.correct)
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
