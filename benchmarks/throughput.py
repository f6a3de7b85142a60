"""Throughput and latency of a real devnet: committed transactions per second, commit latency.

Usage::

    python benchmarks/throughput.py --nodes 4 --seconds 20 --json     # the reference run
    python benchmarks/throughput.py --nodes 4 --seconds 20 --rate 50 --json   # open loop
    python benchmarks/throughput.py --quick --json                   # a few-second smoke run
    python benchmarks/throughput.py --nodes 4 --issuers 1000 --json  # 1,000 issuers sign the load
    python benchmarks/throughput.py --nodes 4 --witness --json       # members push to a witness

Prints exactly one JSON document on stdout (progress goes to stderr).

Method
------
1. The machine's bound is measured first, on the quiet machine: Ed25519 verifications per
   second on one core (distinct signatures, verified with ``cryptography`` directly, since
   ``ledger.crypto`` caches verifications), best of several rounds. Every node must verify every
   client signature once, so the bound is ``verify_per_s_per_core * cores / nodes``.
2. A devnet of N nodes starts in a temporary directory (separate processes on loopback), with
   the API rate limits raised so that they do not throttle the load. With ``--issuers K``,
   K issuers are then admitted by governance (``devnet up --issuers``: proposals of 50, each
   voted by 3 of 4 members) before anything is measured, and the load is signed by the
   issuers' own keys, in turn, in their own name (instead of the members' node keys; with
   ``--signed-by members`` the members still sign it, so that only the state differs):
   compare a run with ``--issuers 1000`` to one without, back to back (docs/benchmarks.md).
3. A separate load process (``multiprocessing``, spawn) pre-signs deeds/anchor transactions
   (unique references and digests; each signed by the node key of its issuer, issuers taken in
   turn) before anything is timed, then offers them to all nodes' APIs in turn (aiohttp,
   keep-alive, msgpack bodies):

   - open loop with ``--rate R``: transaction i is due at ``start + i / R``; it is sent then,
     whatever happened to the others (its latency counts from its due time, so a client that
     falls behind does not hide the queueing: no coordinated omission);
   - closed loop by default: as fast as the cluster takes it, with at most ``--window``
     transactions submitted but not yet seen committed.

   With ``--batch K`` (default 1) the load sends K transactions per request, through
   ``POST /v1/transactions/batch`` (a msgpack array of their canonical bytes): in closed loop
   K consecutive ones at once; in open loop each group of K leaves when its last one is due
   (the others' latency still counts from their own due time). Outcomes refused as busy
   (``rate_limited``, ``mempool_full``, ``signer_quota``) are sent again in closed loop. The
   JSON says ``batch``; ``node_cpu_ms_per_tx`` is the nodes' CPU per committed transaction.

   The same process watches the chain on the first node: it polls ``/v1/status`` every
   ``POLL_S`` and fetches every new block, so it learns when each transaction was committed
   (to within the polling period) and the size and header time of every block. In open loop
   each submission also asks to be answered at its commit (``?wait=``): the earlier of the
   submitting node's answer and the watcher's sighting counts.
4. The measured window is ``--seconds`` long and starts after ``--warmup`` seconds of load.
   ``committed_tx_per_s`` counts the transactions of the blocks first seen inside the window;
   latency percentiles are over the transactions submitted inside the window (from their
   submission, or due time in open loop, to the moment their block was seen); after the window
   the load stops and the watcher waits (``--drain``) for those to commit. ``node_cpu`` is each
   node process's utime + stime over the window (``/proc/<pid>/stat``) as a fraction of one
   core; ``load_cpu`` is the same for the load process, which shares the machine.
5. Checkpoints: every member signs the checkpoint of each block it commits and gathers a
   quorum of the others' (docs/format.md "Checkpoints"). After the drain, ``checkpoints``
   reports for each member the kept checkpoint's height and size and its lag behind the tip
   (in blocks and in transactions), and its signature counters. With ``--witness`` one real
   ``sceau witness`` runs beside the devnet and every member pushes its checkpoints to it;
   ``witness`` then reports, per member, the size it last cosigned, the pushes, failures and
   their mean latency. Compare a run with ``--witness`` to one without, back to back.
6. The devnet (and the witness) are always torn down (``finally``).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import multiprocessing
import multiprocessing.connection
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ on the path, not the repository root: add the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import library_versions, load_average_1m, machine_info, usable_cores

SCHEMA_VERSION = 1
MSGPACK = "application/msgpack"
POLL_S = 0.005
"""Period of the load process's polling of /v1/blocks/latest (commit-time resolution)."""
KINDS = ("deliberation", "decree", "permit", "budget")
EXPIRY_BLOCKS = 1_000_000
OPEN_LOOP_WAIT_S = 10
"""Open loop: each submission asks to be answered at its commit (``?wait=``), up to this."""
BUSY_CODES = ("rate_limited", "mempool_full", "signer_quota")
"""A batch's outcomes that a closed loop sends again (not the transaction's fault)."""
HTTP_IN_FLIGHT_MAX = 512
"""Open loop: HTTP requests outstanding at most (a guard; reported if it was ever reached)."""
DEVNET_CONFIG = {
    # The defaults (200/s, bursts of 400, per client address) would throttle one load client.
    "api_submissions_per_s": 100_000.0,
    "api_submission_burst": 1_000_000,
    "mempool_per_signer_max": 1_000_000,
    "mempool_transactions_max": 1_000_000,
}


def log(message: str) -> None:
    print(f"[throughput] {message}", file=sys.stderr, flush=True)


# --- the machine's bound ---------------------------------------------------------------------


def measure_verify_rate(signatures: int, rounds: int) -> dict[str, Any]:
    """Ed25519 verifications per second on one core, over distinct (key, message, signature)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    keys = [Ed25519PrivateKey.generate() for _ in range(8)]
    public = [key.public_key() for key in keys]
    items = []
    for index in range(signatures):
        message = secrets.token_bytes(32) + index.to_bytes(8, "big")
        items.append((public[index % 8], keys[index % 8].sign(message), message))
    wall_rates, cpu_rates = [], []
    for _ in range(rounds):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for key, signature, message in items:
            key.verify(signature, message)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        wall_rates.append(signatures / wall)
        cpu_rates.append(signatures / max(cpu, 1e-9))
    return {
        "verify_per_s_per_core": round(max(wall_rates), 1),
        "verify_per_s_per_core_median": round(statistics.median(wall_rates), 1),
        "verify_per_s_per_core_cpu": round(statistics.median(cpu_rates), 1),
        "signatures": signatures,
        "rounds": rounds,
    }


# --- CPU of processes -------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` in seconds (threads included), None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


# --- the load process -------------------------------------------------------------------------


def presign(settings: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    """(tx_id, canonical bytes) of ``count`` signed anchors, issuers and signers in turn."""
    from ledger import crypto
    from ledger.model import Transaction

    signers = [
        (member_id, crypto.load_private_key(key_file))
        for member_id, key_file in settings["signers"]
    ]
    chain_id = bytes.fromhex(settings["chain_id"])
    tag = secrets.token_hex(4).upper()
    expiry = settings["height"] + EXPIRY_BLOCKS
    prepared = []
    for index in range(settings["count"]):
        member_id, key = signers[index % len(signers)]
        reference = f"BENCH-{tag}-{index:07d}"
        transaction = Transaction.create(
            key,
            chain_id=chain_id,
            contract="deeds",
            action="anchor",
            args={
                "issuer": member_id,
                "reference": reference,
                "kind": KINDS[index % len(KINDS)],
                "digest": secrets.token_bytes(32),
                "act_date": f"2026-{1 + index % 12:02d}-{1 + index % 28:02d}",
                "title": f"Acte de test de charge n°{index}",
            },
            nonce=secrets.randbits(63),
            expiry_height=expiry,
        )
        prepared.append((transaction.tx_id, transaction.encoded))
    return prepared


def percentile(values: list[float], fraction: float) -> float | None:
    """The nearest-rank percentile of ``values`` (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


class Load:
    """The load process's state: what was sent when, and what was seen committed when."""

    def __init__(self, settings: dict[str, Any], prepared: list[tuple[bytes, bytes]]) -> None:
        self.settings = settings
        self.prepared = prepared
        self.urls = settings["api_urls"]
        self.submitted_at: dict[bytes, float] = {}
        self.committed_at: dict[bytes, float] = {}
        self.blocks: list[dict[str, Any]] = []
        self.answers: Counter[str] = Counter()
        self.outstanding = 0
        self.progress = asyncio.Event()
        self.stop_sending = False
        self.stop_watching = False
        self.send_lag: list[float] = []
        self.http_cap_reached = 0
        self.sent = 0

    async def watch(self, session: Any) -> None:
        """Poll the first node's height; fetch every new block; note when each tx was seen.

        The poll asks for /v1/status (a few hundred bytes), not the latest block: rendering a
        block of hundreds of transactions POLL_S apart would load the watched node itself.
        """
        from ledger import encoding

        url = self.urls[0]
        headers = {"Accept": MSGPACK}
        seen = 0
        while not self.stop_watching:
            try:
                async with session.get(f"{url}/v1/status") as response:
                    height = (await response.json())["height"] if response.status == 200 else 0
            except Exception as error:
                self.answers[f"watch_error:{type(error).__name__}"] += 1
                height = 0
            now = time.monotonic()
            if height > seen:
                documents = []
                for number in range(seen + 1, height + 1):
                    async with session.get(f"{url}/v1/blocks/{number}", headers=headers) as r:
                        documents.append(encoding.unpack(await r.read()))
                for document in documents:
                    ids = document["transaction_ids"]
                    for tx_id in ids:
                        if tx_id in self.submitted_at and tx_id not in self.committed_at:
                            self.committed_at[tx_id] = now
                            self.outstanding -= 1
                    self.blocks.append(
                        {
                            "height": document["height"],
                            "seen": now,
                            "timestamp_ms": document["header"]["timestamp_ms"],
                            "tx_count": len(ids),
                            "proposer": document["header"]["proposer"],
                        }
                    )
                seen = height
                self.progress.set()
            await asyncio.sleep(POLL_S)

    async def post(self, session: Any, index: int, retry: bool) -> None:
        if self.settings["batch"] > 1:
            await self.post_batch(session, [index], retry)
            return
        tx_id, body = self.prepared[index]
        url = f"{self.urls[index % len(self.urls)]}/v1/transactions"
        if self.settings["rate"]:
            # Open loop: the submitting node answers once the transaction is committed
            # (?wait=), which times the commit without the watcher's polling period.
            url += f"?wait={OPEN_LOOP_WAIT_S}"
        headers = {"Content-Type": MSGPACK, "Accept": MSGPACK}
        while True:
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
                    if status == 200 and tx_id not in self.committed_at:
                        self.committed_at[tx_id] = time.monotonic()
                        self.outstanding -= 1
            except Exception as error:
                self.answers[f"error:{type(error).__name__}"] += 1
                status = None
            if status is not None:
                self.answers[str(status)] += 1
            if status in (200, 202) or not retry or self.stop_sending:
                break
            await asyncio.sleep(0.05)
        if status not in (200, 202) and tx_id not in self.committed_at:
            self.submitted_at.pop(tx_id, None)
            self.outstanding -= 1

    async def post_batch(self, session: Any, indices: list[int], retry: bool) -> None:
        """``POST /v1/transactions/batch`` of the transactions ``indices`` (msgpack), to the
        node of the first; with ``retry``, the ones refused as busy are sent again."""
        from ledger import encoding

        url = f"{self.urls[indices[0] % len(self.urls)]}/v1/transactions/batch"
        if self.settings["rate"]:
            url += f"?wait={OPEN_LOOP_WAIT_S}"
        headers = {"Content-Type": MSGPACK, "Accept": MSGPACK}
        while indices:
            body = encoding.pack([self.prepared[index][1] for index in indices])
            again: list[int] = []
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    data = await response.read()
                    status = response.status
            except Exception as error:
                self.answers[f"error:{type(error).__name__}"] += 1
                status, data = None, b""
            if status is not None:
                self.answers[f"batch_{status}"] += 1
            if status == 200:
                now = time.monotonic()
                outcomes = encoding.unpack(data)["transactions"]
                for index, outcome in zip(indices, outcomes, strict=True):
                    tx_id = self.prepared[index][0]
                    state = outcome["status"]
                    self.answers[outcome.get("code") or state] += 1
                    if state == "committed" and tx_id not in self.committed_at:
                        self.committed_at[tx_id] = now
                        self.outstanding -= 1
                    elif state == "rejected":
                        if outcome["code"] in BUSY_CODES and retry and not self.stop_sending:
                            again.append(index)
                        elif tx_id not in self.committed_at:
                            self.submitted_at.pop(tx_id, None)
                            self.outstanding -= 1
            elif retry and not self.stop_sending:
                again = indices
            else:
                for index in indices:
                    tx_id = self.prepared[index][0]
                    if tx_id not in self.committed_at:
                        self.submitted_at.pop(tx_id, None)
                        self.outstanding -= 1
            indices = again
            if indices:
                await asyncio.sleep(0.05)

    async def send_open_loop(self, session: Any, start: float, end: float) -> None:
        rate = self.settings["rate"]
        limit = asyncio.Semaphore(HTTP_IN_FLIGHT_MAX)
        tasks = set()

        batch = self.settings["batch"]
        group: list[int] = []

        async def one(indices: list[int]) -> None:
            try:
                if batch > 1:
                    await self.post_batch(session, indices, retry=False)
                else:
                    await self.post(session, indices[0], retry=False)
            finally:
                limit.release()

        for index in range(len(self.prepared)):
            due = start + index / rate
            if due >= end:
                break
            # With --batch K, transaction i waits for the K-th of its group to be due: its
            # latency still counts from its own due time.
            self.submitted_at[self.prepared[index][0]] = due
            self.outstanding += 1
            self.sent += 1
            group.append(index)
            if len(group) < batch:
                continue
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            if limit.locked():
                self.http_cap_reached += 1
            await limit.acquire()
            now = time.monotonic()
            self.send_lag.append(now - due)
            task = asyncio.create_task(one(group))
            group = []
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if group:  # the last, partial group: sent when its last transaction is due
            await asyncio.sleep(max(0.0, start + group[-1] / rate - time.monotonic()))
            await limit.acquire()
            task = asyncio.create_task(one(group))
            tasks.add(task)
        if tasks:
            await asyncio.gather(*tasks)

    async def send_closed_loop(self, session: Any, end: float) -> None:
        window = self.settings["window"]
        batch = self.settings["batch"]
        tasks = set()
        for first in range(0, len(self.prepared), batch):
            while self.outstanding + batch > max(window, batch):
                self.progress.clear()
                await self.progress.wait()
            if time.monotonic() >= end:
                break
            indices = list(range(first, min(first + batch, len(self.prepared))))
            now = time.monotonic()
            for index in indices:
                self.submitted_at[self.prepared[index][0]] = now
            self.outstanding += len(indices)
            self.sent += len(indices)
            if batch > 1:
                task = asyncio.create_task(self.post_batch(session, indices, retry=True))
            else:
                task = asyncio.create_task(self.post(session, first, retry=True))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            if (first // batch) % 64 == 63:
                await asyncio.sleep(0)
        else:
            self.answers["presigned_exhausted"] += 1
        self.stop_sending = True
        if tasks:
            await asyncio.gather(*tasks)

    async def run(self, start: float) -> dict[str, Any]:
        import aiohttp

        settings = self.settings
        window_start = start + settings["warmup"]
        window_end = window_start + settings["seconds"]
        connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=60)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            watcher = asyncio.create_task(self.watch(session))
            delay = start - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            cpu0 = cpu1 = None
            if settings["rate"]:
                sender = asyncio.create_task(self.send_open_loop(session, start, window_end))
            else:
                sender = asyncio.create_task(self.send_closed_loop(session, window_end))
            await asyncio.sleep(max(0.0, window_start - time.monotonic()))
            cpu0 = time.process_time()
            await asyncio.sleep(max(0.0, window_end - time.monotonic()))
            cpu1 = time.process_time()
            await sender
            # Drain: wait until every transaction submitted in the window is seen committed.
            in_window = [
                tx_id for tx_id, at in self.submitted_at.items() if window_start <= at < window_end
            ]
            drain_end = time.monotonic() + settings["drain"]
            while time.monotonic() < drain_end and any(
                tx_id not in self.committed_at for tx_id in in_window
            ):
                await asyncio.sleep(0.05)
            self.stop_watching = True
            await watcher
        if os.environ.get("THROUGHPUT_DEBUG"):
            for block in self.blocks:
                log(
                    f"block {block['height']} seen {block['seen'] - start:.3f} s, "
                    f"{block['tx_count']} tx, header {block['timestamp_ms']}"
                )
        return self.summary(window_start, window_end, in_window, cpu1 - cpu0)

    def summary(
        self, window_start: float, window_end: float, in_window: list[bytes], load_cpu_s: float
    ) -> dict[str, Any]:
        seconds = window_end - window_start
        blocks = [block for block in self.blocks if window_start <= block["seen"] < window_end]
        committed = sum(block["tx_count"] for block in blocks)
        latencies = [
            (self.committed_at[tx_id] - self.submitted_at[tx_id]) * 1000
            for tx_id in in_window
            if tx_id in self.committed_at
        ]
        stamps = [block["timestamp_ms"] for block in blocks]
        header_span_s = (max(stamps) - min(stamps)) / 1000 if len(stamps) >= 2 else None
        return {
            "window_s": round(seconds, 3),
            "committed_in_window": committed,
            "committed_tx_per_s": round(committed / seconds, 1),
            "blocks_in_window": len(blocks),
            "blocks_per_s": round(len(blocks) / seconds, 2),
            "transactions_per_block": round(committed / len(blocks), 1) if blocks else 0.0,
            "transactions_per_block_max": max((b["tx_count"] for b in blocks), default=0),
            "block_interval_ms_by_header": (
                round(header_span_s * 1000 / (len(stamps) - 1), 1) if header_span_s else None
            ),
            "proposers_in_window": dict(Counter(block["proposer"] for block in blocks)),
            "submitted_in_window": len(in_window),
            "submitted_in_window_committed": len(latencies),
            "submitted_in_window_per_s": round(len(in_window) / seconds, 1),
            "latency_ms_p50": _round(percentile(latencies, 0.50)),
            "latency_ms_p95": _round(percentile(latencies, 0.95)),
            "latency_ms_p99": _round(percentile(latencies, 0.99)),
            "latency_ms_max": _round(max(latencies, default=None)),
            "latency_ms_mean": _round(statistics.fmean(latencies) if latencies else None),
            "sent_total": self.sent,
            "committed_total": len(self.committed_at),
            "http_answers": dict(sorted(self.answers.items())),
            "open_loop_send_lag_ms_p99": _round(
                percentile([lag * 1000 for lag in self.send_lag], 0.99)
            ),
            "open_loop_http_cap_reached": self.http_cap_reached,
            "load_cpu": round(load_cpu_s / seconds, 3),
        }


def _round(value: float | None, digits: int = 1) -> float | None:
    return None if value is None else round(value, digits)


def load_process(settings: dict[str, Any], conn: multiprocessing.connection.Connection) -> None:
    """The load process: pre-sign, report ready, wait for the start time, run, report."""
    try:
        started = time.perf_counter()
        prepared = presign(settings)
        conn.send({"ready": True, "presign_s": round(time.perf_counter() - started, 2)})
        start = conn.recv()
        conn.send({"result": asyncio.run(Load(settings, prepared).run(start))})
    except BaseException as error:
        conn.send({"error": f"{type(error).__name__}: {error}"})
        raise
    finally:
        conn.close()


# --- the run ----------------------------------------------------------------------------------


ROOT = Path(__file__).resolve().parents[1]


def sceau(*arguments: str) -> str:
    """Run the sceau CLI of this checkout; its standard output."""
    import subprocess

    command = [sys.executable, "-m", "node.tools.cli", *arguments]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=True, timeout=60
    ).stdout


def start_witness(directory: Path, genesis: Path, port: int) -> Any:
    """Add the devnet's log to the witness initialised in ``directory`` and run it."""
    import subprocess

    sceau("witness", "add-log", "--dir", str(directory), "--genesis", str(genesis))
    with open(directory / "witness.log", "wb") as witness_log:
        process = subprocess.Popen(
            [sys.executable, "-m", "node.tools.cli", "witness", "run", "--dir", str(directory)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=witness_log,
        )
    line = process.stdout.readline() if process.stdout is not None else b""
    if b"listening" not in line:
        process.kill()
        raise RuntimeError(f"the witness did not start (see {directory / 'witness.log'})")
    log(f"witness listening on 127.0.0.1:{port}")
    return process


def checkpoint_report(processes: list[Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per member: the kept checkpoint and its lag behind the tip; the witnesses' pushes."""
    import urllib.request

    def get(url: str) -> bytes:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bytes(response.read())

    checkpoints: dict[str, Any] = {}
    witnesses: dict[str, Any] = {}
    for process in processes:
        status = json.loads(get(f"{process.api_url}/v1/status"))
        header = json.loads(get(f"{process.api_url}/v1/blocks/{status['height']}"))["header"]
        kept = status.get("checkpoint") or {}
        samples = {}
        for line in get(f"{process.api_url}/metrics").decode().splitlines():
            if line.startswith(("sceau_checkpoint", "sceau_witness")):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        height, size = kept.get("height"), kept.get("size")
        log_size = header.get("log_size")
        checkpoints[process.member_id] = {
            "tip_height": status["height"],
            "height": height,
            "size": size,
            "lag_blocks": None if height is None else status["height"] - height,
            "lag_transactions": None if size is None or log_size is None else log_size - size,
            "signed": samples.get("sceau_checkpoints_signed_total"),
            "kept": samples.get("sceau_checkpoints_kept_total"),
            "signatures_received": samples.get("sceau_checkpoint_signatures_received_total"),
            "signatures_refused": {
                name: value
                for name, value in samples.items()
                if name.startswith("sceau_checkpoint_signatures_refused_total")
            },
        }
        for witness in kept.get("witnesses", []):
            label = f'{{witness="{witness["name"]}"}}'
            count = samples.get(f"sceau_witness_latency_ms_count{label}") or 0
            total = samples.get(f"sceau_witness_latency_ms_sum{label}") or 0
            witnesses[process.member_id] = {
                "cosigned_size": witness["cosigned_size"],
                "last_error": witness["last_error"],
                "pushes": samples.get(f"sceau_witness_pushes_total{label}"),
                "cosignatures": samples.get(f"sceau_witness_cosignatures_total{label}"),
                "failures": {
                    name: value
                    for name, value in samples.items()
                    if name.startswith("sceau_witness_failures_total")
                },
                "latency_ms_mean": round(total / count, 1) if count else None,
            }
    return checkpoints, witnesses


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    from node.tools import devnet

    machine = machine_info() | {"load_average_1m_before": load_average_1m()}
    cores = usable_cores()
    log("measuring the Ed25519 verification rate on one core")
    verify = measure_verify_rate(1_000 if arguments.quick else 5_000, 3 if arguments.quick else 7)
    bound = verify["verify_per_s_per_core"] * cores / arguments.nodes
    if arguments.presign:
        count = arguments.presign
    elif arguments.rate:
        count = math.ceil(arguments.rate * (arguments.warmup + arguments.seconds)) + 10
    else:
        count = 2_000 if arguments.quick else 20_000
    with tempfile.TemporaryDirectory(prefix="sceau-throughput-") as temporary:
        directory = Path(temporary) / "devnet"
        log(f"starting a devnet of {arguments.nodes} nodes in {directory}")
        processes = []
        load = None
        witness = None
        extra_config: dict[str, Any] = dict(DEVNET_CONFIG)
        if arguments.witness:
            witness_dir = Path(temporary) / "witness"
            (witness_port,) = devnet._free_ports(1)
            vkey = sceau(
                "witness", "init", "--name", "bench.example/witness", "--dir", str(witness_dir),
                "--listen", f"127.0.0.1:{witness_port}",
            ).split()[0]  # fmt: skip
            extra_config["witnesses"] = [
                {"name": "bench", "url": f"http://127.0.0.1:{witness_port}", "vkey": vkey}
            ]
        try:
            processes = devnet.devnet_up(
                directory, arguments.nodes, extra_config=extra_config, issuers=arguments.issuers
            )
            if arguments.witness:
                witness = start_witness(witness_dir, directory / "genesis.json", witness_port)
            signers = [(process.member_id, process.key_file) for process in processes]
            admission = None
            if arguments.issuers:
                from node.tools.territory import read_admission, read_issuers

                admission = read_admission(directory)
                log(f"admitted {arguments.issuers} issuers by governance")
            if arguments.issuers and arguments.signed_by == "issuers":
                signers = [
                    (entry["id"], str(directory / entry["key_file"]))
                    for entry in read_issuers(directory)
                ]
            import urllib.request

            with urllib.request.urlopen(f"{processes[0].api_url}/v1/status", timeout=5) as r:
                status = json.loads(r.read())
            settings = {
                "api_urls": [process.api_url for process in processes],
                "signers": signers,
                "chain_id": status["chain_id"],
                "height": status["height"],
                "count": count,
                "rate": arguments.rate,
                "window": arguments.window,
                "warmup": arguments.warmup,
                "seconds": arguments.seconds,
                "drain": arguments.drain,
                "batch": arguments.batch,
            }
            context = multiprocessing.get_context("spawn")
            parent, child = context.Pipe()
            load = context.Process(target=load_process, args=(settings, child), daemon=True)
            load.start()
            child.close()
            log(f"pre-signing {count} transactions in the load process (pid {load.pid})")
            ready = parent.recv()
            if "error" in ready:
                raise RuntimeError(f"load process: {ready['error']}")
            log(f"pre-signed in {ready['presign_s']} s; offering load")
            start = time.monotonic() + 0.2
            parent.send(start)
            window_start = start + arguments.warmup
            time.sleep(max(0.0, window_start - time.monotonic()))
            cpu0 = {process.member_id: cpu_seconds(process.pid) for process in processes}
            time.sleep(max(0.0, window_start + arguments.seconds - time.monotonic()))
            cpu1 = {process.member_id: cpu_seconds(process.pid) for process in processes}
            log("window over; draining")
            answer = parent.recv()
            if "error" in answer:
                raise RuntimeError(f"load process: {answer['error']}")
            result = answer["result"]
            load.join(10)
            views = {}
            for process in processes:
                with urllib.request.urlopen(f"{process.api_url}/v1/status", timeout=5) as r:
                    views[process.member_id] = json.loads(r.read())["view"]
            checkpoints, witnessed = checkpoint_report(processes)
        finally:
            if witness is not None:
                witness.terminate()
                witness.wait(10)
            if load is not None and load.is_alive():
                load.kill()
            if processes and os.environ.get("THROUGHPUT_DEBUG"):
                import shutil

                for process in processes:
                    shutil.copy(process.log_file, f"/tmp/throughput-{process.member_id}.log")
            if processes:
                log("tearing the devnet down")
                devnet.devnet_down(directory)
    node_cpu = {
        member: (
            round((cpu1[member] - cpu0[member]) / arguments.seconds, 3)
            if cpu0[member] is not None and cpu1[member] is not None
            else None
        )
        for member in cpu0
    }
    committed = result["committed_tx_per_s"]
    return {
        "benchmark": "throughput",
        "schema_version": SCHEMA_VERSION,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": arguments.quick,
        "nodes": arguments.nodes,
        "issuers": arguments.issuers,
        "issuers_admission": None if admission is None else dataclasses.asdict(admission),
        "signed_by": "issuers"
        if arguments.issuers and arguments.signed_by == "issuers"
        else "members",
        "signers": len(signers),
        "seconds": arguments.seconds,
        "warmup_s": arguments.warmup,
        "mode": "open_loop" if arguments.rate else "closed_loop",
        "offered_rate": arguments.rate if arguments.rate else "max",
        "closed_loop_window": None if arguments.rate else arguments.window,
        "batch": arguments.batch,
        "presigned": count,
        "presign_s": ready["presign_s"],
        "committed_tx_per_s": committed,
        "latency_ms_p50": result["latency_ms_p50"],
        "latency_ms_p95": result["latency_ms_p95"],
        "latency_ms_p99": result["latency_ms_p99"],
        "blocks_per_s": result["blocks_per_s"],
        "transactions_per_block": result["transactions_per_block"],
        "node_cpu": node_cpu,
        "node_cpu_total": round(sum(v for v in node_cpu.values() if v is not None), 3),
        "node_cpu_ms_per_tx": (
            round(sum(v for v in node_cpu.values() if v is not None) * 1000 / committed, 3)
            if committed
            else None
        ),
        "views_at_end": views,
        "checkpoints": checkpoints,
        "witness": witnessed if arguments.witness else None,
        "load_cpu": result["load_cpu"],
        "verify_per_s_per_core": verify["verify_per_s_per_core"],
        "cores": cores,
        "bound_tx_per_s": round(bound, 1),
        "ratio": round(committed / bound, 4),
        "details": {
            **{key: value for key, value in result.items() if key not in ("load_cpu",)},
            "verify": verify,
            "poll_s": POLL_S,
            "devnet_config": extra_config,
            "tick_ms": 50,
        },
        "machine": machine,
        "libraries": library_versions(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=None, help="measured window (20)")
    parser.add_argument("--warmup", type=float, default=None, help="load before the window (5)")
    parser.add_argument("--drain", type=float, default=None, help="wait for commits after (10)")
    parser.add_argument("--rate", type=float, default=None, help="open-loop offered tx/s")
    parser.add_argument(
        "--window", type=int, default=None, help="closed loop: uncommitted at most (1000)"
    )
    parser.add_argument("--presign", type=int, default=None, help="transactions to pre-sign")
    parser.add_argument(
        "--batch",
        type=int,
        default=1,
        metavar="K",
        help="K transactions per request (POST /v1/transactions/batch); 1: one per request",
    )
    parser.add_argument(
        "--issuers",
        type=int,
        default=0,
        help="admit N issuers by governance before measuring; they sign the load (0 to 10000)",
    )
    parser.add_argument(
        "--signed-by",
        choices=("issuers", "members"),
        default="issuers",
        help="with --issuers: who signs the load (members: only the state holds the issuers)",
    )
    parser.add_argument(
        "--witness",
        action="store_true",
        help="run a sceau witness and configure every member to push its checkpoints to it",
    )
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    parser.add_argument("--json", action="store_true", help="print the JSON document only")
    arguments = parser.parse_args(argv)
    if arguments.quick:
        defaults = {"seconds": 5.0, "warmup": 2.0, "drain": 10.0, "window": 200}
    else:
        defaults = {"seconds": 20.0, "warmup": 5.0, "drain": 10.0, "window": 1_000}
    for name, value in defaults.items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, value)
    if arguments.rate is not None and arguments.rate <= 0:
        parser.error("--rate must be positive")
    if not 1 <= arguments.batch <= 1000:
        parser.error("--batch must be 1 to 1000 (the API's BATCH_TRANSACTIONS_MAX)")
    report = run(arguments)
    if arguments.json:
        print(json.dumps(report, indent=2))
    else:
        for key in (
            "nodes", "offered_rate", "committed_tx_per_s", "latency_ms_p50", "latency_ms_p95",
            "latency_ms_p99", "blocks_per_s", "transactions_per_block", "node_cpu",
            "verify_per_s_per_core", "cores", "bound_tx_per_s", "ratio",
        ):  # fmt: skip
            print(f"{key:24} {report[key]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
