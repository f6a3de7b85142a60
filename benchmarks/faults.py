"""Fault campaign: a real devnet under steady load, attacked round after round, checked after each.

Usage::

    python benchmarks/faults.py --rounds 50 --seed 7 --json          # a long campaign
    python benchmarks/faults.py --rounds 4 --kinds kill_primary,pause,isolate,restart_all

Prints exactly one JSON document on stdout (progress goes to stderr) and exits with status 1
if any invariant was violated, 0 otherwise. docs/faults.md describes the faults, the checks
and the results of a long run.

Theory of operation
-------------------
A devnet of ``--nodes`` member processes starts in a temporary directory (``node.tools.devnet``),
with the test-only ``fault_injection`` switch on (``PUT /v1/debug/links`` cuts peer links in
the transport) and the API rate limits of benchmarks/throughput.py raised. A load task submits
deeds/anchor transactions (signed by the members' node keys, benchmarks/throughput.py's
``presign``) at ``--rate`` per second, each through the client library (``ledger.client``)
given every node's API, the nodes taking turns as the first one asked: the library carries
each submission to its commit, sending it to the next node while one dies, hangs or answers
"pending", and records every *acknowledgement*: an answer that says the transaction is
committed, at which height, in which block. The report's ``load.acknowledged_then_lost``
counts acknowledged transactions missing from the final chain (must be 0, from the client's
point of view), and ``load.accepted_then_lost`` those a node answered 202 (pending) for that
are not in the final chain: what a bare HTTP client that stopped at the 202 would have lost.

Each round injects one fault, chosen by a seeded random generator among :data:`FAULTS` (or
taken in turn from ``--kinds``): SIGKILL a random node, or the current primary, and restart it
after a pause; SIGSTOP a node, then SIGCONT; cut every link of one node; split the nodes in two
halves (no quorum on either side); SIGKILL every node and start them all again; replace one
member by a hostile sender with its key (``byzantine``: benchmarks/hostile.py, a mixed attack
of oversized proposals, invalid signed proposals and junk votes), then restart its real node,
which must catch up. Faults are real: real signals to real processes, links cut inside the
real transports, attack frames authenticated as the member.

While at most f nodes are faulty, a *probe* transaction submitted to a healthy node must be
committed within ``--progress-bound``; the fault lasts at least its drawn pause and at least
until the probe answers, so this check always runs inside the fault. During a split no block
may be committed at all (a half holds fewer than a quorum). Once the fault is healed:

1. commits resume: a probe transaction is committed within ``--resume-bound`` of the healing;
2. catch-up: every node reaches the height of that commit within ``--catch-up-bound``;
3. one chain: every node serves, from the genesis, the same block at every height, each
   linked to the one before (``/v1/bundle``, read incrementally, plus random spot checks of
   old heights by ``/v1/blocks/{h}``); no transaction appears twice; no node's tip falls
   below a height it has already served (a committed block lost after a crash);
4. acknowledgements hold: every transaction acknowledged as committed is in that chain at the
   acknowledged height and block; for a sample, every node's ``GET /v1/transactions/{id}``
   says committed at that height.

The checks are :class:`ChainRecord` and :func:`check_transaction_answers`, pure functions of
what was observed (tests/test_faults.py feeds them hand-made broken chains). At the end the
load stops, every node must reach the same tip, and ``sceau export`` then ``sceau audit`` of
one node's chain, from the genesis, must succeed. Node logs must hold no traceback. The devnet
is always torn down (``--keep-dir`` keeps its directory, with every node's ``node.log``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

# Run as a script, Python puts benchmarks/ on the path, not the repository root: add the root.
# Imported (by tests/test_faults.py), benchmarks/ itself is needed, for throughput's helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from throughput import DEVNET_CONFIG, presign

SCHEMA_VERSION = 1
FAULTS = ("kill_random", "kill_primary", "pause", "isolate", "split", "restart_all", "byzantine")
"""The kinds of round; see :class:`Campaign` for what each does."""
HTTP_TIMEOUT_S = 10.0
"""A request to a node. Generous: a node busy catching up on a loaded 2-core machine may not
answer for seconds (a stopped one answers nothing, and costs this much per poll)."""
POLL_S = 0.2
SUBMIT_WAIT_S = 5
"""The probes' ``?wait=``: how long a submission waits for its commit before answering 202."""
CARRY_RETRY_INTERVAL_S = 5.0
"""The load's client: how long one node is given to commit a submission before the same
transaction goes to the next node (``AsyncClient.retry_interval_s``, the library's default).
A node that dies is left at once (its connection breaks); a shorter interval only sends more
copies of slow transactions to the other nodes, which a saturated machine pays for."""
CARRY_DEADLINE_S = 120.0
"""The load's client gives up on a submission after this (``CommitNotConfirmed``; counted)."""
LOAD_IN_FLIGHT_MAX = 512
"""Submissions outstanding at most; the load skips (and counts) beyond, it never queues."""
CONFIRM_PERIOD_S = 1.0
CONFIRM_BATCH_MAX = 200
"""Pending transactions asked about per confirmation pass (GET /v1/transactions/{id})."""
UNCONFIRMED_GIVE_UP_S = 180.0
"""A transaction answered pending but never seen committed for this long is given up (it was
never acknowledged, so losing it breaks no promise; it is counted)."""
SIGN_CHUNK = 64
BUNDLE_FRAMES = 256
SPOT_CHECKS_PER_ROUND = 5
ANSWER_SAMPLE_PER_ROUND = 20
ANSWER_SAMPLE_FINAL = 100
SET_CUT_S_MAX = 30.0
"""How long a link cut (or heal) is asked again of a node that does not answer."""
SPLIT_GRACE_S = 0.5
"""After a split is in place, votes already delivered may still finish a commit; after this
grace no node may commit anything until the split heals."""
STEADY_S = (1.0, 3.0)
"""Load without faults between two rounds, drawn uniformly."""
BYZANTINE_FRAMES_PER_S = 6.0
BYZANTINE_FRAMES_MAX = 120
"""The hostile sender of a byzantine round: a third of its frames are 15.8 MiB proposals."""
BYZANTINE_EXIT_S_MAX = 60.0
"""The hostile sender stops by itself (connection, then the round's pause, then its queue)."""


class CampaignError(Exception):
    """The campaign cannot go on (a node refuses a link cut, or never answers it)."""


def log(message: str) -> None:
    print(f"[faults] {message}", file=sys.stderr, flush=True)


# --- invariants: pure checks over what was observed ------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockSeen:
    """A block as one node served it."""

    height: int
    block_hash: bytes
    prev_hash: bytes
    tx_ids: tuple[bytes, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Acknowledgement:
    """A node's API said: this transaction is committed, at this height, in this block."""

    tx_id: bytes
    height: int
    block_hash: bytes
    member_id: str


class ChainRecord:
    """The chain as the campaign has seen it, and every check against it.

    The first node to serve a height fixes the record's block there; every other node must
    serve the same one. Each method returns the violations it found, as sentences.
    """

    def __init__(self, chain_id: bytes) -> None:
        self.chain_id = chain_id
        self.hashes: list[bytes] = []
        """``hashes[h - 1]`` is the block hash at height h."""
        self.tx_heights: dict[bytes, int] = {}
        self.served: dict[str, int] = collections.defaultdict(int)
        """The highest height each node has served, checked, in a row from height 1."""

    @property
    def height(self) -> int:
        return len(self.hashes)

    def block_hash(self, height: int) -> bytes | None:
        return self.hashes[height - 1] if 1 <= height <= self.height else None

    def absorb(self, member_id: str, blocks: Sequence[BlockSeen]) -> list[str]:
        """Check ``blocks`` of ``member_id`` (the heights after those it has served, in order)
        against the record, and extend the record with the heights it did not hold yet."""
        violations: list[str] = []
        for block in blocks:
            expected_height = self.served[member_id] + 1
            if block.height != expected_height:
                violations.append(
                    f"{member_id} served height {block.height} where {expected_height} was due"
                )
                return violations
            known = self.block_hash(block.height)
            if known is not None and known != block.block_hash:
                violations.append(
                    f"fork at height {block.height}: {member_id} serves block "
                    f"{block.block_hash.hex()[:16]}, others {known.hex()[:16]}"
                )
                return violations  # its later blocks cannot be compared meaningfully
            previous = self.chain_id if block.height == 1 else self.block_hash(block.height - 1)
            if block.prev_hash != previous:
                violations.append(
                    f"{member_id}'s block {block.height} does not link to block "
                    f"{block.height - 1} (prev_hash {block.prev_hash.hex()[:16]})"
                )
                return violations
            if known is None:
                self.hashes.append(block.block_hash)
                for tx_id in block.tx_ids:
                    first = self.tx_heights.setdefault(tx_id, block.height)
                    if first != block.height:
                        violations.append(
                            f"transaction {tx_id.hex()[:16]} committed twice: at heights "
                            f"{first} and {block.height}"
                        )
            self.served[member_id] = block.height
        return violations

    def check_tip(self, member_id: str, height: int) -> list[str]:
        """A node's reported height must not be below a height it has served (lost blocks)."""
        served = self.served[member_id]
        if height < served:
            return [f"{member_id} is at height {height} after serving block {served}: blocks lost"]
        return []

    def check_acknowledged(
        self, acknowledgements: Iterable[Acknowledgement]
    ) -> tuple[list[str], list[Acknowledgement]]:
        """Violations among ``acknowledgements``, and those above the record (check later)."""
        violations: list[str] = []
        later: list[Acknowledgement] = []
        for ack in acknowledgements:
            if ack.height > self.height:
                later.append(ack)
                continue
            where = f"acknowledged by {ack.member_id} at height {ack.height}"
            if self.block_hash(ack.height) != ack.block_hash:
                violations.append(
                    f"transaction {ack.tx_id.hex()[:16]} {where} in block "
                    f"{ack.block_hash.hex()[:16]}, which is not the chain's block there"
                )
            elif self.tx_heights.get(ack.tx_id) != ack.height:
                violations.append(
                    f"transaction {ack.tx_id.hex()[:16]} {where} is not in that block"
                )
        return violations, later


def check_transaction_answers(
    ack: Acknowledgement, answers: dict[str, dict[str, Any] | None]
) -> list[str]:
    """Every node's ``GET /v1/transactions/{id}`` answer for an acknowledged transaction must
    say committed, at the acknowledged height, in the acknowledged block. An answer is the
    JSON document, ``{"status": "unknown"}`` for a 404, None for no answer in time."""
    violations = []
    for member_id, answer in sorted(answers.items()):
        if answer is None:
            violations.append(
                f"{member_id} did not answer about transaction {ack.tx_id.hex()[:16]}, "
                f"acknowledged by {ack.member_id} at height {ack.height}"
            )
            continue
        found = (answer.get("status"), answer.get("height"), answer.get("block_hash"))
        if found != ("committed", ack.height, ack.block_hash.hex()):
            violations.append(
                f"{member_id} says {found[0]} at height {found[1]} for transaction "
                f"{ack.tx_id.hex()[:16]}, acknowledged by {ack.member_id} at height {ack.height}"
            )
    return violations


def check_no_new_height(before: dict[str, int | None], after: dict[str, int | None]) -> list[str]:
    """Without a quorum anywhere, the highest height over all nodes must not grow."""
    highest_before = max((height for height in before.values() if height is not None), default=0)
    grown = {
        member_id: height
        for member_id, height in after.items()
        if height is not None and height > highest_before
    }
    if not grown:
        return []
    return [f"heights above {highest_before} committed without a quorum: {grown}"]


def summarise(values: Sequence[float]) -> dict[str, float | None]:
    """Median and maximum, rounded (None when nothing was measured)."""
    if not values:
        return {"median": None, "max": None, "count": 0}
    return {
        "median": round(statistics.median(values), 2),
        "max": round(max(values), 2),
        "count": len(values),
    }


# --- the devnet -------------------------------------------------------------------------------


class Cluster:
    """The devnet's processes, their APIs, and the signals and link cuts the campaign uses."""

    def __init__(
        self, directory: Path, entries: list[dict[str, Any]], session: aiohttp.ClientSession
    ) -> None:
        self.directory = directory
        self.entries = {entry["member_id"]: entry for entry in entries}
        self.api = {
            entry["member_id"]: f"http://127.0.0.1:{entry['api_port']}" for entry in entries
        }
        self.members = [entry["member_id"] for entry in entries]
        """In the member set's order (replaced by /v1/members once the nodes answer)."""
        self.session = session
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.stopped: set[str] = set()
        self.cut: dict[str, list[str]] = {}

    # --- processes ---

    def start(self, member_id: str) -> None:
        from node.tools import devnet

        assert member_id not in self.processes, f"{member_id} runs already"
        self.processes[member_id] = devnet.start_member(self.entries[member_id]["dir"])
        self._record()

    def kill(self, member_id: str) -> None:
        """SIGKILL, as a crash or a power cut would; reap it."""
        process = self.processes.pop(member_id)
        process.send_signal(signal.SIGKILL)
        process.wait()
        self.stopped.discard(member_id)
        self.cut.pop(member_id, None)  # a new process starts with every link up
        self._record()

    def pause(self, member_id: str) -> None:
        self.processes[member_id].send_signal(signal.SIGSTOP)
        self.stopped.add(member_id)

    def resume(self, member_id: str) -> None:
        self.processes[member_id].send_signal(signal.SIGCONT)
        self.stopped.discard(member_id)

    def close(self) -> None:
        """SIGCONT what is stopped (SIGTERM waits for it otherwise), then stop everything."""
        from node.tools import devnet

        for member_id in list(self.stopped):
            with contextlib.suppress(ProcessLookupError):
                self.resume(member_id)
        devnet.stop_processes([process.pid for process in self.processes.values()])
        for process in self.processes.values():
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(5)
        self.processes.clear()

    def _record(self) -> None:
        """devnet.json names the running processes, so that ``sceau devnet down`` finds them."""
        from node.tools import devnet

        devnet.write_devnet(
            self.directory,
            [
                devnet.MemberProcess(
                    member_id=member_id,
                    name=self.entries[member_id]["name"],
                    pid=process.pid,
                    api_url=self.api[member_id],
                    peer_port=self.entries[member_id]["peer_port"],
                    config_file=str(self.entries[member_id]["dir"] / "node.toml"),
                    key_file=str(self.entries[member_id]["dir"] / "node.pem"),
                    log_file=str(self.entries[member_id]["dir"] / "node.log"),
                )
                for member_id, process in self.processes.items()
            ],
        )

    # --- HTTP ---

    async def get(self, member_id: str, path: str) -> tuple[int, Any] | None:
        """(status, JSON document) of a GET, or None if the node did not answer in time."""
        try:
            async with self.session.get(self.api[member_id] + path) as response:
                return response.status, await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return None

    async def status(self, member_id: str) -> dict[str, Any] | None:
        answer = await self.get(member_id, "/v1/status")
        return answer[1] if answer is not None and answer[0] == 200 else None

    async def statuses(self) -> dict[str, dict[str, Any] | None]:
        found = await asyncio.gather(*(self.status(member_id) for member_id in self.members))
        return dict(zip(self.members, found, strict=True))

    async def heights(self) -> dict[str, int | None]:
        return {
            member_id: status["height"] if status is not None else None
            for member_id, status in (await self.statuses()).items()
        }

    async def primary(self) -> str:
        """The primary of the view most nodes are in (members in the member set's order)."""
        views = [status["view"] for status in (await self.statuses()).values() if status]
        view = collections.Counter(views).most_common(1)[0][0] if views else 0
        return self.members[view % len(self.members)]

    async def set_cut(self, member_id: str, cut: Sequence[str]) -> None:
        """Cut ``member_id``'s links to exactly ``cut``, asking again while the node does not
        answer; raises :class:`CampaignError` if it refuses or stays silent."""
        from node.runtime.debug_token import TOKEN_HEADER, read_token

        url = self.api[member_id] + "/v1/debug/links"
        headers = {TOKEN_HEADER: read_token(self.entries[member_id]["dir"] / "data")}
        deadline = time.monotonic() + SET_CUT_S_MAX
        while True:
            try:
                async with self.session.put(
                    url, json={"cut": sorted(cut)}, headers=headers
                ) as response:
                    document = await response.json(content_type=None)
                break
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                if time.monotonic() > deadline:
                    raise CampaignError(f"PUT {url} unanswered: {error!r}") from None
                await asyncio.sleep(POLL_S)
        if response.status != 200 or document != {"cut": sorted(cut)}:
            raise CampaignError(f"PUT {url}: {response.status} {document}")
        self.cut[member_id] = sorted(cut)

    async def partition(self, groups: Sequence[Sequence[str]]) -> None:
        """Cut every link between two different groups, at both of its ends."""
        group_of = {member_id: set(group) for group in groups for member_id in group}
        await asyncio.gather(
            *(
                self.set_cut(member_id, [m for m in self.members if m not in group_of[member_id]])
                for member_id in self.members
            )
        )

    async def heal(self) -> None:
        await asyncio.gather(*(self.set_cut(member_id, []) for member_id in list(self.cut)))
        self.cut.clear()


# --- the load -------------------------------------------------------------------------------


class Signer:
    """Signed deeds/anchor transactions, made in small chunks (throughput.presign)."""

    def __init__(self, cluster: Cluster, chain_id: bytes, height: int) -> None:
        self.settings = {
            "signers": [
                (member_id, str(cluster.entries[member_id]["dir"] / "node.pem"))
                for member_id in cluster.members
            ],
            "chain_id": chain_id.hex(),
            "height": height,
            "count": SIGN_CHUNK,
        }
        self.ready: collections.deque[tuple[bytes, bytes]] = collections.deque()

    def next(self) -> tuple[bytes, bytes]:
        """(tx_id, canonical bytes) of a fresh signed transaction."""
        if not self.ready:
            self.ready.extend(presign(self.settings))
        return self.ready.popleft()


class Load:
    """Steady submissions, and what the API acknowledged of them (see the module doc)."""

    def __init__(self, cluster: Cluster, signer: Signer, rate_per_s: float) -> None:
        self.cluster = cluster
        self.signer = signer
        self.rate_per_s = rate_per_s
        self.acknowledged: dict[bytes, Acknowledgement] = {}
        self.unchecked: list[Acknowledgement] = []
        """Acknowledgements not yet checked against the chain record."""
        self.unconfirmed: dict[bytes, tuple[float, str]] = {}
        """Transactions answered pending (or not answered): when, and to which node."""
        self.answers: collections.Counter[str] = collections.Counter()
        self.last_answers: dict[bytes, str] = {}
        """The last GET /v1/transactions/{id} answer about each unconfirmed transaction."""
        self.violations: list[str] = []
        self.submitted = 0
        self.given_up = 0
        self.in_flight = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self.clients: dict[str, Any] = {}
        """The carrying client (ledger.client.AsyncClient) whose first endpoint is each node."""
        self.accepted: set[bytes] = set()
        """Transactions some node answered 202 (pending) for, at least once."""
        self.not_confirmed: set[bytes] = set()
        """Transactions whose client gave up (deadline) without a commit."""
        self._committed_by: dict[bytes, str] = {}
        self.client_events: collections.Counter[str] = collections.Counter()
        """Every answer the carrying clients met, by outcome (``pending`` answers and
        ``unreachable`` nodes are what made them submit again)."""

    def attach_clients(self, session: aiohttp.ClientSession) -> None:
        """One carrying client per node, that node first, the others after it in turn."""
        from ledger.client import AsyncClient

        members = self.cluster.members
        member_of = {self.cluster.api[member_id]: member_id for member_id in members}

        def observe(event: Any) -> None:
            tx_id = bytes.fromhex(event.tx_id)
            self.client_events[event.outcome] += 1
            if event.outcome == "pending":
                self.accepted.add(tx_id)
            elif event.outcome == "committed":
                self._committed_by[tx_id] = member_of[event.api_url]

        for index, member_id in enumerate(members):
            order = members[index:] + members[:index]
            self.clients[member_id] = AsyncClient(
                [self.cluster.api[m] for m in order],
                timeout_s=HTTP_TIMEOUT_S,
                retry_interval_s=CARRY_RETRY_INTERVAL_S,
                session=session,
                observer=observe,
            )

    def acknowledge(self, tx_id: bytes, document: dict[str, Any], member_id: str) -> None:
        ack = Acknowledgement(
            tx_id=tx_id,
            height=document["height"],
            block_hash=bytes.fromhex(document["block_hash"]),
            member_id=member_id,
        )
        self.unconfirmed.pop(tx_id, None)
        earlier = self.acknowledged.get(tx_id)
        if earlier is None:
            self.acknowledged[tx_id] = ack
            self.unchecked.append(ack)
        elif (earlier.height, earlier.block_hash) != (ack.height, ack.block_hash):
            self.violations.append(
                f"transaction {tx_id.hex()[:16]} acknowledged at height {earlier.height} by "
                f"{earlier.member_id} and at height {ack.height} by {member_id}"
            )

    async def submit(self, tx_id: bytes, body: bytes, member_id: str, wait_s: float) -> str:
        """Submit to ``member_id`` with ``?wait=``; record an acknowledgement. Returns the
        outcome: ``committed``, ``pending``, a problem code, or ``unreachable``."""
        url = f"{self.cluster.api[member_id]}/v1/transactions?wait={wait_s:g}"
        headers = {"Content-Type": "application/msgpack"}
        try:
            async with self.cluster.session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=wait_s + 5)
            ) as response:
                document = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError):
            # It may have been accepted all the same.
            self.unconfirmed.setdefault(tx_id, (time.monotonic(), member_id))
            return "unreachable"
        status = document.get("status")
        if status == "committed":
            self.acknowledge(tx_id, document, member_id)
            return "committed"
        if status in ("pending", "unknown"):
            self.accepted.add(tx_id)
            self.unconfirmed.setdefault(tx_id, (time.monotonic(), member_id))
            return "pending"
        return str(document.get("code", response.status))

    async def run(self) -> None:
        """Submit at the rate, to the nodes in turn, until cancelled."""
        period_s = 1 / self.rate_per_s
        due = time.monotonic()
        index = 0
        while True:
            due += period_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            if self.in_flight >= LOAD_IN_FLIGHT_MAX:
                self.answers["skipped_in_flight_max"] += 1
                continue
            members = self.cluster.members
            member_id = members[index % len(members)]
            index += 1
            _, body = self.signer.next()
            self.submitted += 1
            self.in_flight += 1
            task = asyncio.create_task(self._carry_one(body, member_id))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _carry_one(self, body: bytes, member_id: str) -> None:
        """Carry one submission to its commit with the client library, ``member_id`` first;
        count how it ended (``committed``, ``expired``, ``rejected:<code>``, ``not_confirmed``)."""
        from ledger.client import CommitNotConfirmed, TransactionExpired, TransactionRejected
        from ledger.model import Transaction

        transaction = Transaction.from_bytes(body)
        tx_id = transaction.tx_id
        try:
            document = await self.clients[member_id].submit(transaction, wait_s=CARRY_DEADLINE_S)
        except TransactionExpired:
            outcome = "expired"
        except TransactionRejected as rejection:
            outcome = f"rejected:{rejection.code}"
        except CommitNotConfirmed:
            outcome = "not_confirmed"
            self.not_confirmed.add(tx_id)
        else:
            outcome = "committed"
            self.acknowledge(tx_id, document, self._committed_by.pop(tx_id, member_id))
        finally:
            self.in_flight -= 1
        self.answers[outcome] += 1

    def losses(self, record: ChainRecord) -> dict[str, int]:
        """What the client was told against the final chain ``record`` (see the module doc)."""
        in_chain = record.tx_heights
        return {
            "acknowledged_then_lost": sum(
                1 for tx_id, ack in self.acknowledged.items() if in_chain.get(tx_id) != ack.height
            ),
            "accepted_then_lost": sum(1 for tx_id in self.accepted if tx_id not in in_chain),
            "not_confirmed": len(self.not_confirmed),
            "not_confirmed_then_committed": sum(
                1 for tx_id in self.not_confirmed if tx_id in in_chain
            ),
            "in_flight_at_end": self.in_flight,
        }

    async def confirm(self) -> None:
        """Ask about pending transactions until cancelled (one pass per CONFIRM_PERIOD_S)."""
        while True:
            await asyncio.sleep(CONFIRM_PERIOD_S)
            await self.confirm_once()

    async def confirm_once(self, limit: int | None = CONFIRM_BATCH_MAX) -> None:
        """Ask about up to ``limit`` pending transactions (every one with None), those asked
        least recently first."""
        now = time.monotonic()
        candidates = [tx_id for tx_id, (at, _) in self.unconfirmed.items() if now - at > 1.0]
        members = [m for m in self.cluster.members if m not in self.cluster.stopped]
        for index, tx_id in enumerate(candidates[:limit]):
            member_id = members[index % len(members)]
            answer = await self.cluster.get(member_id, f"/v1/transactions/{tx_id.hex()}")
            if answer is not None:
                document = answer[1]
                self.last_answers[tx_id] = str(document.get("code") or document.get("status"))
            if answer is not None and answer[0] == 200 and answer[1]["status"] == "committed":
                self.acknowledge(tx_id, answer[1], member_id)
            elif (
                tx_id in self.unconfirmed
                and now - self.unconfirmed[tx_id][0] > UNCONFIRMED_GIVE_UP_S
            ):
                del self.unconfirmed[tx_id]
                self.given_up += 1
            elif tx_id in self.unconfirmed:  # to the back of the line: the others' turn next
                self.unconfirmed[tx_id] = self.unconfirmed.pop(tx_id)

    async def drain(self, timeout_s: float) -> None:
        """Wait for the submissions still in flight (after :meth:`run` is cancelled)."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout_s)

    def report(self) -> dict[str, Any]:
        return {
            "rate_per_s": self.rate_per_s,
            "submitted": self.submitted,
            "acknowledged_committed": len(self.acknowledged),
            "never_acknowledged": len(self.unconfirmed) + self.given_up,
            "never_acknowledged_by_node_submitted_to": dict(
                sorted(collections.Counter(node for _, node in self.unconfirmed.values()).items())
            ),
            "never_acknowledged_last_answer": dict(
                collections.Counter(
                    self.last_answers.get(tx_id, "none") for tx_id in self.unconfirmed
                )
            ),
            "answers": dict(sorted(self.answers.items())),
            "client_events": dict(sorted(self.client_events.items())),
        }


# --- the campaign -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Bounds:
    """How long the campaign waits before it calls something a violation."""

    progress_s: float = 20.0
    """With at most f faulty nodes, a probe transaction commits within this."""
    resume_s: float = 30.0
    """After healing, a probe transaction commits within this."""
    catch_up_s: float = 60.0
    """After healing, every node reaches the probe's height within this."""


DEFAULT_BOUNDS = Bounds()


@dataclass(slots=True, kw_only=True)
class Round:
    """What one round did and found (one entry of the report's ``rounds``)."""

    index: int
    kind: str
    target: list[str] = field(default_factory=list)
    fault_s: float = 0.0
    heights_before: dict[str, int | None] = field(default_factory=dict)
    heights_after: dict[str, int | None] = field(default_factory=dict)
    progress_during_fault_s: float | None = None
    resume_s: float | None = None
    catch_up_s: float | None = None
    check_s: float = 0.0
    violations: list[str] = field(default_factory=list)

    def to_document(self) -> dict[str, Any]:
        document = {name: getattr(self, name) for name in self.__slots__}
        for name in ("fault_s", "progress_during_fault_s", "resume_s", "catch_up_s", "check_s"):
            if document[name] is not None:
                document[name] = round(document[name], 2)
        return document


class Campaign:
    """Rounds of faults on one cluster under load, each followed by the checks."""

    def __init__(
        self,
        cluster: Cluster,
        load: Load,
        record: ChainRecord,
        rng: random.Random,
        bounds: Bounds,
    ) -> None:
        self.cluster = cluster
        self.load = load
        self.record = record
        self.rng = rng
        self.check_rng = random.Random(rng.random())
        """For the samples of the checks, whose draws vary with the chain's length: the
        faults, drawn from ``rng`` alone, stay the same for a given seed."""
        self.bounds = bounds
        self.last_probe_outcome = ""
        self.faults: dict[str, Callable[[Round], Awaitable[None]]] = {
            "kill_random": self.kill_random,
            "kill_primary": self.kill_primary,
            "pause": self.pause,
            "isolate": self.isolate,
            "split": self.split,
            "restart_all": self.restart_all,
            "byzantine": self.byzantine,
        }

    # --- the faults: each injects, holds, heals; the round's checks come after ---

    async def kill_random(self, round_: Round) -> None:
        """SIGKILL a random node; restart it after a pause; the others keep committing."""
        await self._kill_and_restart(round_, self.rng.choice(self.cluster.members))

    async def kill_primary(self, round_: Round) -> None:
        """SIGKILL the current primary: the others must change view to commit."""
        await self._kill_and_restart(round_, await self.cluster.primary())

    async def _kill_and_restart(self, round_: Round, victim: str) -> None:
        round_.target = [victim]
        self.cluster.kill(victim)
        await self._hold(round_, self.rng.uniform(1.0, 5.0), faulty=[victim])
        self.cluster.start(victim)

    async def pause(self, round_: Round) -> None:
        """SIGSTOP a node (a hung machine: its sockets stay open), then SIGCONT."""
        victim = self.rng.choice(self.cluster.members)
        round_.target = [victim]
        self.cluster.pause(victim)
        try:
            await self._hold(round_, self.rng.uniform(2.0, 6.0), faulty=[victim])
        finally:
            self.cluster.resume(victim)

    async def isolate(self, round_: Round) -> None:
        """Cut every link of one node (both ends of each); heal."""
        victim = self.rng.choice(self.cluster.members)
        round_.target = [victim]
        others = [member_id for member_id in self.cluster.members if member_id != victim]
        await self.cluster.partition([[victim], others])
        try:
            await self._hold(round_, self.rng.uniform(2.0, 6.0), faulty=[victim])
        finally:
            await self.cluster.heal()

    async def split(self, round_: Round) -> None:
        """Split the nodes in two halves: neither holds a quorum, so no new height may be
        committed. (A node behind may still catch up, within its half, to blocks committed
        before the split: that is no new height.)"""
        members = list(self.cluster.members)
        self.rng.shuffle(members)
        half = members[: len(members) // 2]
        round_.target = sorted(half)
        await self.cluster.partition([half, members[len(half) :]])
        try:
            await asyncio.sleep(SPLIT_GRACE_S)
            frozen = await self.cluster.heights()
            await asyncio.sleep(self.rng.uniform(2.0, 5.0))
            later = await self.cluster.heights()
        finally:
            await self.cluster.heal()
        round_.violations += check_no_new_height(frozen, later)

    async def restart_all(self, round_: Round) -> None:
        """SIGKILL every node at once, then start them all."""
        round_.target = list(self.cluster.members)
        for member_id in self.cluster.members:
            self.cluster.kill(member_id)
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        for member_id in self.cluster.members:
            self.cluster.start(member_id)

    async def byzantine(self, round_: Round) -> None:
        """Replace a random member by the hostile sender of benchmarks/hostile.py (its own
        process, with the member's key and port) under load: the others must keep committing.
        Then its real node restarts and must catch up (the round's checks)."""
        victim = self.rng.choice(self.cluster.members)
        round_.target = [victim]
        pause_s = self.rng.uniform(4.0, 8.0)
        self.cluster.kill(victim)
        attacker = await asyncio.create_subprocess_exec(
            sys.executable,
            str(Path(__file__).resolve().parent / "hostile.py"),
            *("--devnet", str(self.cluster.directory), "--member", victim, "--attack", "mixed"),
            *("--seconds", f"{pause_s:.1f}", "--frames", str(BYZANTINE_FRAMES_MAX)),
            *("--rate", str(BYZANTINE_FRAMES_PER_S)),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            await self._hold(round_, pause_s, faulty=[victim])
        finally:
            try:
                output, _ = await asyncio.wait_for(attacker.communicate(), BYZANTINE_EXIT_S_MAX)
                report = json.loads(output or b"{}")
                sent, connected = report.get("frames_by_kind"), report.get("connected")
                log(f"hostile {victim}: sent {sent} to {connected}")
            except (TimeoutError, ValueError):
                attacker.kill()
                await attacker.wait()
                log(f"hostile {victim}: no report")
        self.cluster.start(victim)

    async def _hold(self, round_: Round, pause_s: float, *, faulty: Sequence[str]) -> None:
        """Keep the fault for ``pause_s`` and at least until a probe sent to a healthy node
        commits (or the progress bound passes: a violation)."""
        started = time.monotonic()
        healthy = [member_id for member_id in self.cluster.members if member_id not in faulty]
        progress_s = await self.probe(healthy, self.bounds.progress_s)
        round_.progress_during_fault_s = progress_s
        if progress_s is None:
            round_.violations.append(
                f"no commit within {self.bounds.progress_s:g} s with only {sorted(faulty)} "
                f"faulty (last answer: {self.last_probe_outcome})"
            )
        await asyncio.sleep(max(0.0, pause_s - (time.monotonic() - started)))

    # --- probes and checks ---

    async def probe(self, members: Sequence[str], bound_s: float) -> float | None:
        """Seconds until a fresh transaction, submitted to one of ``members`` (the next one
        if a node does not answer), is acknowledged as committed; None past ``bound_s``."""
        started = time.monotonic()
        deadline = started + bound_s
        tx_id, body = self.load.signer.next()
        attempt = 0
        while time.monotonic() < deadline and tx_id not in self.load.acknowledged:
            member_id = members[attempt % len(members)]
            attempt += 1
            wait_s = max(1, min(30, int(deadline - time.monotonic())))
            outcome = await self.load.submit(tx_id, body, member_id, wait_s)
            self.last_probe_outcome = f"{outcome} from {member_id}"
            if outcome not in ("committed", "pending"):  # unreachable, or a refusal to retry
                await asyncio.sleep(POLL_S)
        if tx_id not in self.load.acknowledged:
            return None
        return time.monotonic() - started

    async def catch_up(self, target: int, bound_s: float) -> float | None:
        """Seconds until every node is at ``target`` or above; None past ``bound_s``."""
        started = time.monotonic()
        while time.monotonic() - started < bound_s:
            heights = await self.cluster.heights()
            if all(height is not None and height >= target for height in heights.values()):
                return time.monotonic() - started
            await asyncio.sleep(POLL_S)
        return None

    async def check_chain(self) -> list[str]:
        """Read every node's new blocks into the record; check tips; spot-check old heights."""
        violations: list[str] = []
        for member_id, height in (await self.cluster.heights()).items():
            if height is None:
                violations.append(f"{member_id} does not answer GET /v1/status")
                continue
            violations += self.record.check_tip(member_id, height)
            while self.record.served[member_id] < height:
                blocks = await self._fetch_blocks(member_id, self.record.served[member_id] + 1)
                if not blocks:
                    violations.append(f"{member_id} does not serve its blocks from the bundle")
                    break
                found = self.record.absorb(member_id, blocks)
                if found:
                    violations += found
                    break
        return violations + await self._spot_check()

    async def _spot_check(self) -> list[str]:
        """Old heights again, from every node that served them: a block never changes."""
        violations: list[str] = []
        silent: set[str] = set()
        top = self.record.height
        for height in self.check_rng.sample(range(1, top + 1), min(SPOT_CHECKS_PER_ROUND, top)):
            expected = self.record.block_hash(height)
            assert expected is not None
            for member_id in self.cluster.members:
                if self.record.served[member_id] < height or member_id in silent:
                    continue
                answer = await self.cluster.get(member_id, f"/v1/blocks/{height}")
                if answer is None:
                    silent.add(member_id)
                    violations.append(f"{member_id} does not answer GET /v1/blocks/{height}")
                elif answer[0] != 200:
                    violations.append(f"{member_id} no longer serves block {height}: {answer[0]}")
                elif answer[1]["block_hash"] != expected.hex():
                    violations.append(f"{member_id}'s block {height} changed since it served it")
        return violations

    async def _fetch_blocks(self, member_id: str, first: int) -> list[BlockSeen]:
        from ledger.bundle import BundleError, parse_frames

        url = f"{self.cluster.api[member_id]}/v1/bundle?from={first}&count={BUNDLE_FRAMES}"
        try:
            async with self.cluster.session.get(url) as response:
                if response.status != 200:
                    return []
                data = await response.read()
            _, entries = parse_frames(data, first)
        except (aiohttp.ClientError, TimeoutError, BundleError):
            return []
        return [
            BlockSeen(
                height=entry.block.header.height,
                block_hash=entry.block.block_hash,
                prev_hash=entry.block.header.prev_hash,
                tx_ids=tuple(transaction.tx_id for transaction in entry.block.transactions),
            )
            for entry in entries
        ]

    async def check_acknowledged(self, sample_size: int) -> list[str]:
        """Acknowledgements against the record; a sample against every node's API."""
        violations, later = self.record.check_acknowledged(self.load.unchecked)
        checked = [ack for ack in self.load.unchecked if ack not in later]
        self.load.unchecked = later
        for ack in self.check_rng.sample(checked, min(sample_size, len(checked))):
            # Asked of the nodes that served the block (one behind cannot know it yet).
            asked = [m for m in self.cluster.members if self.record.served[m] >= ack.height]
            path = f"/v1/transactions/{ack.tx_id.hex()}"
            found = await asyncio.gather(
                *(self.cluster.get(member_id, path) for member_id in asked)
            )
            answers: dict[str, dict[str, Any] | None] = {}
            for member_id, answer in zip(asked, found, strict=True):
                if answer is None:
                    answers[member_id] = None
                elif answer[0] == 404:
                    answers[member_id] = {"status": "unknown"}
                else:
                    answers[member_id] = answer[1]
            violations += check_transaction_answers(ack, answers)
        return violations

    # --- one round ---

    async def run_round(self, index: int, kind: str) -> Round:
        round_ = Round(index=index, kind=kind)
        round_.heights_before = await self.cluster.heights()
        started = time.monotonic()
        await self.faults[kind](round_)
        healed = time.monotonic()
        round_.fault_s = healed - started
        resumed = await self.probe(self.cluster.members, self.bounds.resume_s)
        if resumed is None:
            round_.violations.append(
                f"no commit within {self.bounds.resume_s:g} s of healing "
                f"(last answer: {self.last_probe_outcome})"
            )
        else:
            round_.resume_s = time.monotonic() - healed
        target = max((h for h in (await self.cluster.heights()).values() if h), default=0)
        catch_up = await self.catch_up(target, self.bounds.catch_up_s)
        if catch_up is None:
            round_.violations.append(
                f"not every node reached height {target} within {self.bounds.catch_up_s:g} s"
            )
        else:
            round_.catch_up_s = time.monotonic() - healed
        checking = time.monotonic()
        round_.violations += await self.check_chain()
        round_.violations += await self.check_acknowledged(ANSWER_SAMPLE_PER_ROUND)
        round_.violations += self.load.violations
        self.load.violations = []
        round_.check_s = time.monotonic() - checking
        round_.heights_after = await self.cluster.heights()
        return round_

    async def final_check(self, bound_s: float) -> tuple[list[str], dict[str, Any]]:
        """With the load stopped: one tip everywhere, every acknowledgement in the chain."""
        violations: list[str] = []
        started = time.monotonic()
        tips: set[tuple[int, str]] = set()
        while time.monotonic() - started < bound_s:
            await self.load.confirm_once()
            statuses = await self.cluster.statuses()
            tips = {(s["height"], s["block_hash"]) for s in statuses.values() if s is not None}
            if None not in statuses.values() and len(tips) == 1:
                break
            await asyncio.sleep(POLL_S)
        else:
            violations.append(f"the nodes did not reach one tip within {bound_s:g} s: {tips}")
        await self.load.confirm_once(limit=None)
        violations += await self.check_chain()
        violations += await self.check_acknowledged(ANSWER_SAMPLE_FINAL)
        if self.load.unchecked:
            violations.append(
                f"{len(self.load.unchecked)} acknowledged transactions are above every tip"
            )
        violations += self.load.violations
        losses = self.load.losses(self.record)
        if losses["acknowledged_then_lost"]:
            violations.append(
                f"{losses['acknowledged_then_lost']} acknowledged transactions are not in the "
                "chain where acknowledged"
            )
        mempools = {
            member_id: status["mempool_transactions"] if status is not None else None
            for member_id, status in (await self.cluster.statuses()).items()
        }
        return violations, {
            "losses": losses,
            "height": self.record.height,
            "tips": sorted(tips),
            "mempool_transactions": mempools,
        }


COUNTER_FAMILIES = ("sceau_view", "sceau_view_changes_total", "sceau_messages_rejected_total")
"""The /metrics samples kept in the report: enough to see how views moved, and what each
node's replica, daemon and transport refused (why a view failed, for instance)."""


async def node_counters(cluster: Cluster, member_id: str) -> dict[str, float] | None:
    """The :data:`COUNTER_FAMILIES` samples of a node's /metrics (None if it does not answer)."""
    try:
        async with cluster.session.get(cluster.api[member_id] + "/metrics") as response:
            text = await response.text()
    except (aiohttp.ClientError, TimeoutError):
        return None
    samples = {}
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name.split("{")[0] in COUNTER_FAMILIES and float(value):
            samples[name] = float(value)
    return samples


# --- end-to-end audit and logs ------------------------------------------------------------------


def export_and_audit(api_url: str, genesis_file: Path, directory: Path) -> dict[str, Any]:
    """``sceau export`` of one node's chain from its API, then ``sceau audit`` from the genesis."""
    bundle = directory / "campaign.bundle"
    results: dict[str, Any] = {}
    for name, arguments in (
        ("export", ["export", str(bundle), "--api", api_url]),
        ("audit", ["audit", str(bundle), "--genesis", str(genesis_file)]),
    ):
        started = time.monotonic()
        completed = subprocess.run(
            [sys.executable, "-m", "node.tools.cli", *arguments],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
            cwd=Path(__file__).resolve().parents[1],
        )
        results[name] = {
            "exit_status": completed.returncode,
            "seconds": round(time.monotonic() - started, 2),
            "output": (completed.stdout + completed.stderr).strip().splitlines()[-3:],
        }
        if completed.returncode != 0:
            break
    results["ok"] = all(
        results.get(name, {}).get("exit_status") == 0 for name in ("export", "audit")
    )
    return results


def log_problems(member_dirs: Iterable[Path]) -> dict[str, int]:
    """Tracebacks and critical lines in each node's log (a node's own bug leaves one)."""
    found = {}
    for member_dir in member_dirs:
        text = (member_dir / "node.log").read_text(errors="replace")
        count = text.count("Traceback") + text.count(" CRITICAL ")
        if count:
            found[member_dir.name] = count
    return found


# --- the run ------------------------------------------------------------------------------------


def choose_kinds(rounds: int, kinds: Sequence[str] | None, rng: random.Random) -> list[str]:
    """The kinds of the rounds: ``kinds`` in turn if given, else drawn among every fault."""
    if kinds:
        return [kinds[index % len(kinds)] for index in range(rounds)]
    return [rng.choice(FAULTS) for _ in range(rounds)]


async def campaign(arguments: argparse.Namespace, directory: Path) -> dict[str, Any]:
    from node.tools import devnet

    rng = random.Random(arguments.seed)
    kinds = choose_kinds(arguments.rounds, arguments.kinds, rng)
    bounds = Bounds(
        progress_s=arguments.progress_bound,
        resume_s=arguments.resume_bound,
        catch_up_s=arguments.catch_up_bound,
    )
    log(f"starting a devnet of {arguments.nodes} nodes in {directory}")
    entries = devnet.prepare(
        directory, arguments.nodes, extra_config={**DEVNET_CONFIG, "fault_injection": True}
    )
    timeout = aiohttp.ClientTimeout(total=HTTP_TIMEOUT_S)
    # The load has a session (and connection pool) of its own: its submissions wait for their
    # commits on open connections, which must not hold up the checks' reads.
    load_connector = aiohttp.TCPConnector(limit=LOAD_IN_FLIGHT_MAX)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        aiohttp.ClientSession(timeout=timeout, connector=load_connector) as load_session,
    ):
        cluster = Cluster(directory, entries, session)
        try:
            for member_id in cluster.members:
                cluster.start(member_id)
            processes = devnet.read_devnet(directory)
            await asyncio.to_thread(devnet.wait_ready, processes, 60.0)
            first = cluster.members[0]
            answer = await cluster.get(first, "/v1/members")
            assert answer is not None and answer[0] == 200, answer
            cluster.members = [member["id"] for member in answer[1]["members"]]
            status = await cluster.status(first)
            assert status is not None
            chain_id = bytes.fromhex(status["chain_id"])
            load = Load(cluster, Signer(cluster, chain_id, status["height"]), arguments.rate)
            load.attach_clients(load_session)
            record = ChainRecord(chain_id)
            runner = Campaign(cluster, load, record, rng, bounds)
            report = await _run_rounds(runner, kinds, arguments)
        finally:
            cluster.close()
    report["log_problems"] = log_problems(entry["dir"] for entry in entries)
    if report["log_problems"]:
        report["violations"].append(f"tracebacks in node logs: {report['log_problems']}")
    return report


async def _run_rounds(
    runner: Campaign, kinds: list[str], arguments: argparse.Namespace
) -> dict[str, Any]:
    load = runner.load
    tasks = [asyncio.create_task(load.run()), asyncio.create_task(load.confirm())]
    started = time.monotonic()
    rounds: list[Round] = []
    try:
        await asyncio.sleep(2.0)  # steady load before the first fault
        for index, kind in enumerate(kinds):
            try:
                round_ = await runner.run_round(index, kind)
            except CampaignError as error:
                # The faults are no longer under control: stop, heal, and still check.
                rounds.append(Round(index=index, kind=kind, violations=[f"aborted: {error}"]))
                log(f"round {index + 1} aborted: {error}")
                with contextlib.suppress(CampaignError):
                    await runner.cluster.heal()
                break
            rounds.append(round_)
            document = round_.to_document()
            log(
                f"round {index + 1}/{len(kinds)} {kind} {round_.target}: fault "
                f"{document['fault_s']} s, resume {document['resume_s']} s, catch-up "
                f"{document['catch_up_s']} s, heights {list(round_.heights_after.values())}"
                + (f", VIOLATIONS {round_.violations}" if round_.violations else "")
            )
            await asyncio.sleep(runner.rng.uniform(*STEADY_S))
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    await load.drain(SUBMIT_WAIT_S + 25)  # carried submissions commit once the faults heal
    log("load stopped; final check")
    final_violations, final = await runner.final_check(runner.bounds.catch_up_s)
    final["node_counters"] = {
        member_id: await node_counters(runner.cluster, member_id)
        for member_id in runner.cluster.members
    }
    members = runner.cluster.members
    genesis_file = runner.cluster.directory / "genesis.json"
    audit = await asyncio.to_thread(
        export_and_audit, runner.cluster.api[members[0]], genesis_file, runner.cluster.directory
    )
    if not audit["ok"]:
        final_violations.append(f"export and audit of {members[0]}'s chain failed: {audit}")
    violations = [f"round {r.index + 1} ({r.kind}): {v}" for r in rounds for v in r.violations]
    violations += [f"final: {violation}" for violation in final_violations]
    return {
        "benchmark": "faults",
        "schema_version": SCHEMA_VERSION,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "seed": arguments.seed,
        "nodes": arguments.nodes,
        "rounds_run": len(rounds),
        "duration_s": round(time.monotonic() - started, 1),
        "violations": violations,
        "summary": {
            "by_kind": dict(collections.Counter(r.kind for r in rounds)),
            "rounds_with_violations": sum(1 for r in rounds if r.violations),
            "progress_during_fault_s": summarise(
                [r.progress_during_fault_s for r in rounds if r.progress_during_fault_s]
            ),
            "resume_s": summarise([r.resume_s for r in rounds if r.resume_s is not None]),
            "catch_up_s": summarise([r.catch_up_s for r in rounds if r.catch_up_s is not None]),
            "check_s": summarise([r.check_s for r in rounds]),
        },
        "bounds": {
            "progress_s": runner.bounds.progress_s,
            "resume_s": runner.bounds.resume_s,
            "catch_up_s": runner.bounds.catch_up_s,
        },
        "load": {**load.report(), **final.pop("losses")},
        "final": {**final, "export_and_audit": audit},
        "rounds": [r.to_document() for r in rounds],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=None, help="default: drawn, and reported")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument(
        "--kinds",
        type=lambda text: text.split(","),
        default=None,
        help=f"comma-separated, taken in turn (default: drawn among {', '.join(FAULTS)})",
    )
    parser.add_argument("--rate", type=float, default=25.0, help="load, transactions/s")
    parser.add_argument("--progress-bound", type=float, default=DEFAULT_BOUNDS.progress_s)
    parser.add_argument("--resume-bound", type=float, default=DEFAULT_BOUNDS.resume_s)
    parser.add_argument("--catch-up-bound", type=float, default=DEFAULT_BOUNDS.catch_up_s)
    parser.add_argument("--keep-dir", action="store_true", help="keep the devnet's directory")
    parser.add_argument("--json", action="store_true", help="print the JSON document only")
    arguments = parser.parse_args(argv)
    if arguments.rounds < 1 or arguments.rate <= 0:
        parser.error("--rounds and --rate must be positive")
    unknown = set(arguments.kinds or ()) - set(FAULTS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; choose among {', '.join(FAULTS)}")
    if arguments.seed is None:
        arguments.seed = random.SystemRandom().randrange(2**32)
    directory = Path(tempfile.mkdtemp(prefix="sceau-faults-"))
    # SIGTERM (a CI timeout) must still stop the nodes: they run in sessions of their own.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    load_before = os.getloadavg()
    cpu_before = time.process_time()
    try:
        report = asyncio.run(campaign(arguments, directory / "devnet"))
    finally:
        if arguments.keep_dir:
            log(f"kept {directory}")
        else:
            import shutil

            shutil.rmtree(directory, ignore_errors=True)
    report["machine"] = {
        "cpu_count": os.cpu_count(),
        "load_average_1m_before": round(load_before[0], 2),
        "load_average_1m_after": round(os.getloadavg()[0], 2),
        "campaign_cpu_s": round(time.process_time() - cpu_before, 1),
    }
    if arguments.keep_dir:
        report["directory"] = str(directory / "devnet")
    print(json.dumps(report, indent=2) if arguments.json else json.dumps(report))
    for violation in report["violations"]:
        log(f"VIOLATION {violation}")
    log(f"{report['rounds_run']} rounds, {len(report['violations'])} violations")
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
