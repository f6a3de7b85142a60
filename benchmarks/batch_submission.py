"""A node process's CPU per transaction submitted one per request, or K per request (batch).

Usage::

    python benchmarks/batch_submission.py [--quick] [--rounds N] [--transactions N]

Prints exactly one JSON document on stdout (progress goes to stderr). Every figure comes from
this one run on this machine; nothing is asserted about absolute times.

Method
------
Two setups, each one real ``sceau node run`` process running the deeds contract, its API
rate limits raised:

* ``committing``: the only member of a one-member consortium: it orders and commits alone, so
  each transaction is admitted, executed and committed once;
* ``admission``: the second member of a four-member consortium, started alone: without a
  quorum nothing commits and it is not the primary, so it only admits (a pass ends when every
  request is answered): the HTTP submission and admission path by itself.
 This process is the client: for each round and each mode it
pre-signs ``--transactions`` fresh deeds/anchor transactions (untimed), reads the node's
utime + stime (``/proc/<pid>/stat``), sends them over keep-alive HTTP (msgpack bodies, at most
``IN_FLIGHT_MAX`` requests outstanding), waits until the last is committed (``committing``)
or answered (``admission``), and reads the CPU again:

* ``single``: one ``POST /v1/transactions`` per transaction;
* ``batch_K``: one ``POST /v1/transactions/batch`` per K transactions.

The node's CPU divided by the transactions is the figure (milliseconds per transaction). In
``committing`` it holds the HTTP submission, admission, block building, execution and
commit. Batches also fill larger blocks there (the replica is woken once per request, with the
whole batch pending), so the blocks' fixed cost (certificate, store write, checkpoint) is
shared by more transactions: ``transactions_per_block`` (median) says how much. The client's
CPU is not counted (another process). Each mode's figure is the median over the rounds, the
modes in turn within each round, so that a busier stretch of a shared machine hits them all;
``ratio_to_single`` divides by the single mode's median.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import library_versions, load_average_1m, machine_info

from ledger import crypto, encoding
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Transaction
from node.tools.devnet import _free_ports
from node.tools.launch import initialise_data_dir

MEMBERS = [
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("commune-nord", "Commune du Nord"),
    ("commune-sud", "Commune du Sud"),
]
BATCH_SIZES = (10, 50)
IN_FLIGHT_MAX = 32
MSGPACK = "application/msgpack"
COMMIT_TIMEOUT_S = 120.0


def log(message: str) -> None:
    print(f"[batch_submission] {message}", file=sys.stderr, flush=True)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_node(
    folder: Path, members: int
) -> tuple[subprocess.Popen[bytes], str, LocalConsortium, str]:
    """The node of the last of ``members`` members (1: alone; 4: the second, not the primary
    of view 0), started alone: its process, API URL, consortium and member id."""
    folder.mkdir()
    peer_port, api_port = _free_ports(2)
    member = MEMBERS[min(members - 1, 1)][0]
    consortium = LocalConsortium.create(
        MEMBERS[:members],
        seed=b"sceau batch submission benchmark",
        contracts=[
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="1.0"),
        ],
        base_port=peer_port,
    )
    (folder / "genesis.json").write_text(consortium.genesis.model_dump_json(indent=2))
    crypto.save_private_key(consortium.keys[member], folder / "node.pem")
    (folder / "node.toml").write_text(
        f'member_id = "{member}"\ndata_dir = "data"\ngenesis_file = "genesis.json"\n'
        f'key_file = "node.pem"\npeer_listen = "127.0.0.1:{peer_port}"\n'
        f'api_listen = "127.0.0.1:{api_port}"\n'
        "api_submissions_per_s = 100000\napi_submission_burst = 1000000\n"
        "mempool_per_signer_max = 1000000\nmempool_transactions_max = 1000000\n"
    )
    initialise_data_dir(folder / "data", consortium.genesis).close()
    process = subprocess.Popen(
        [sys.executable, "-m", "node.tools.cli", "node", "run", "--config", "node.toml"],
        cwd=folder,
        stdout=open(folder / "node.log", "wb"),  # noqa: SIM115 — the child keeps it
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{api_port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                if response.status == 200:
                    return process, url, consortium, member
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError((folder / "node.log").read_text()[-2000:])
        time.sleep(0.2)


def presign(consortium: LocalConsortium, member: str, count: int, tag: str) -> list[Transaction]:
    key = consortium.keys[member]
    signed = []
    for index in range(count):
        reference = f"2026/{tag}-{index:05}"
        signed.append(
            Transaction.create(
                key,
                chain_id=consortium.chain_id,
                contract="deeds",
                action="anchor",
                args={
                    "issuer": member,
                    "reference": reference,
                    "kind": "deliberation",
                    "digest": hashlib.sha256(reference.encode()).digest(),
                    "act_date": "2026-11-28",
                    "title": f"Délibération {reference}",
                },
                nonce=index,
                expiry_height=1_000_000,
            )
        )
    return signed


async def send(
    session: Any, url: str, transactions: list[Transaction], batch: int, *, commit: bool
) -> None:
    """Send every transaction (one per request, or ``batch`` per request); with ``commit``,
    then wait until the last one is committed."""
    limit = asyncio.Semaphore(IN_FLIGHT_MAX)
    headers = {"Content-Type": MSGPACK, "Accept": MSGPACK}

    async def one(group: list[Transaction]) -> None:
        async with limit:
            if batch == 1:
                path, body = "/v1/transactions", group[0].encoded
            else:
                path = "/v1/transactions/batch"
                body = encoding.pack([transaction.encoded for transaction in group])
            async with session.post(f"{url}{path}", data=body, headers=headers) as response:
                await response.read()
                assert response.status in (200, 202), (response.status, await response.text())

    groups = [transactions[first : first + batch] for first in range(0, len(transactions), batch)]
    await asyncio.gather(*(one(group) for group in groups))
    if not commit:
        return
    last = transactions[-1].tx_id.hex()
    deadline = time.monotonic() + COMMIT_TIMEOUT_S
    while time.monotonic() < deadline:
        async with session.get(f"{url}/v1/transactions/{last}") as response:
            if response.status == 200 and (await response.json())["status"] == "committed":
                return
        await asyncio.sleep(0.02)
    raise RuntimeError("the last transaction was not committed in time")


async def measure(
    folder: Path, members: int, modes: dict[str, int], rounds: int, count: int
) -> dict[str, Any]:
    """Start the setup's node, measure every mode ``rounds`` times, stop it."""
    process, url, consortium, member = start_node(folder, members)
    try:
        return await _measure(url, process.pid, consortium, member, modes, rounds, count)
    finally:
        process.terminate()
        process.wait(10)


async def _measure(
    url: str,
    pid: int,
    consortium: LocalConsortium,
    member: str,
    modes: dict[str, int],
    rounds: int,
    count: int,
) -> dict[str, Any]:
    import aiohttp

    samples: dict[str, list[float]] = {mode: [] for mode in modes}
    blocks: dict[str, list[int]] = {mode: [] for mode in modes}
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT_MAX, keepalive_timeout=60)
    async with aiohttp.ClientSession(connector=connector) as session:
        commit = len(consortium.genesis.members) == 1
        await send(session, url, presign(consortium, member, 50, "WARMUP"), 1, commit=commit)
        for round_number in range(rounds):
            for mode, batch in modes.items():
                transactions = presign(consortium, member, count, f"R{round_number}-{mode}")
                log(f"round {round_number + 1}/{rounds}: {mode}")
                height = await tip_height(session, url)
                before = cpu_seconds(pid)
                await send(session, url, transactions, batch, commit=commit)
                samples[mode].append((cpu_seconds(pid) - before) / count * 1000)
                blocks[mode].append(await tip_height(session, url) - height)
    single = statistics.median(samples["single"])
    return {
        mode: {
            "median": round(statistics.median(values), 3),
            "min": round(min(values), 3),
            "max": round(max(values), 3),
            "ratio_to_single": round(statistics.median(values) / single, 3),
            "transactions_per_block": (
                round(count / statistics.median(blocks[mode]), 1) if commit else None
            ),
        }
        for mode, values in samples.items()
    }


async def tip_height(session: Any, url: str) -> int:
    async with session.get(f"{url}/v1/status") as response:
        return int((await response.json())["height"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (fewer, smaller)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 2)")
    parser.add_argument("--transactions", type=int, default=None, help="per pass (1000; 200)")
    arguments = parser.parse_args(argv)
    rounds = arguments.rounds or (2 if arguments.quick else 5)
    count = arguments.transactions or (200 if arguments.quick else 1000)
    modes = {"single": 1, **{f"batch_{size}": size for size in BATCH_SIZES}}
    machine = machine_info() | {"load_average_1m_before": load_average_1m()}
    figures = {}
    with tempfile.TemporaryDirectory(prefix="sceau-batch-submission-") as temporary:
        for setup, members in (("committing", 1), ("admission", 4)):
            log(f"setup {setup}")
            folder = Path(temporary) / setup
            figures[setup] = asyncio.run(measure(folder, members, modes, rounds, count))
    report = {
        "benchmark": "batch_submission",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": arguments.quick,
        "rounds": rounds,
        "transactions_per_pass": count,
        "in_flight_max": IN_FLIGHT_MAX,
        "node_cpu_ms_per_tx": figures,
        "machine": machine,
        "libraries": library_versions(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
