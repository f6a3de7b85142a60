"""CPU per transaction of admission at a node's door: one at a time, or in batches of K.

Usage::

    python benchmarks/batch_admission.py [--quick] [--rounds N] [--transactions N]

Prints exactly one JSON document on stdout (progress goes to stderr). Every figure comes from
this one run on this machine; nothing is asserted about absolute times.

Method
------
A one-member consortium running the deeds contract is built in a temporary folder (a real
node: its LevelDB store, engine and mempool, ``node.tools.launch.build_node``), never started,
so that no block is built: only admission runs. Each round pre-signs ``--transactions`` fresh
deeds/anchor transactions (distinct keys' signatures are never cached across rounds: every
one is new) and keeps only their canonical bytes; then, timed with ``time.process_time`` (CPU
of this process, unaffected by other processes waiting for the cores):

* ``decode``: each transaction decoded from its bytes as the API does
  (``Transaction.from_bytes`` with the submission limits);
* ``single``: ``ChainApplication.submit`` of each, one at a time (as ``POST /v1/transactions``
  does: screen, room, one dry run per transaction);
* ``batch_K``: ``ChainApplication.submit_many`` of groups of K (as
  ``POST /v1/transactions/batch`` does: one dry run per group).

The mempool is emptied after each timed pass. Each mode's figure is the median over the rounds
of CPU microseconds per transaction; ``ratio_to_single`` divides it by the single mode's median.
The modes run in turn within each round, so that a slower stretch of the machine hits them all.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from batch_submission import presign as signed_anchors
from machine import library_versions, load_average_1m, machine_info

from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Transaction
from node.api.limits import SUBMISSION_LIMITS
from node.runtime.config import NodeConfig
from node.tools.launch import build_node, initialise_data_dir

MEMBER = "metropole-valbrune"
BATCH_SIZES = (10, 50, 200)


def log(message: str) -> None:
    print(f"[batch_admission] {message}", file=sys.stderr, flush=True)


def build(folder: Path) -> tuple[Any, LocalConsortium]:
    """A built (never started) node of a one-member consortium, its mempool unbounded."""
    consortium = LocalConsortium.create(
        [(MEMBER, "Métropole de Valbrune")],
        seed=b"sceau batch admission benchmark",
        contracts=[
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="1.0"),
        ],
    )
    (folder / "genesis.json").write_text(consortium.genesis.model_dump_json(indent=2))
    crypto.save_private_key(consortium.keys[MEMBER], folder / "node.pem")
    initialise_data_dir(folder / "data", consortium.genesis).close()
    config = NodeConfig(
        member_id=MEMBER,
        data_dir=folder / "data",
        genesis_file=folder / "genesis.json",
        key_file=folder / "node.pem",
        peer_listen="127.0.0.1:0",
        mempool_transactions_max=1_000_000,
        mempool_per_signer_max=1_000_000,
    )
    return build_node(config), consortium


def presign(consortium: LocalConsortium, count: int, tag: str) -> list[bytes]:
    """``count`` anchors signed by the member's node key, as canonical bytes: the same
    transactions ``batch_submission.py`` sends a node over HTTP."""
    return [transaction.encoded for transaction in signed_anchors(consortium, MEMBER, count, tag)]


def decoded(encoded: list[bytes]) -> list[Transaction]:
    return [Transaction.from_bytes(data, SUBMISSION_LIMITS) for data in encoded]


def timed_pass(node: Any, encoded: list[bytes], batch: int) -> float:
    """CPU seconds to admit ``encoded`` (decoded first, untimed), one at a time or in groups."""
    application = node.application
    transactions = decoded(encoded)
    started = time.process_time()
    if batch == 1:
        for transaction in transactions:
            assert application.submit(transaction)
    else:
        for first in range(0, len(transactions), batch):
            outcomes = application.submit_many(transactions[first : first + batch])
            assert all(outcome is True for outcome in outcomes), outcomes
    elapsed = time.process_time() - started
    node.mempool.remove([transaction.tx_id for transaction in transactions])
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (fewer, smaller)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 7, quick 2)")
    parser.add_argument("--transactions", type=int, default=None, help="per pass (1000; 200)")
    arguments = parser.parse_args(argv)
    rounds = arguments.rounds or (2 if arguments.quick else 7)
    count = arguments.transactions or (200 if arguments.quick else 1000)
    modes = {"single": 1, **{f"batch_{size}": size for size in BATCH_SIZES}}
    samples: dict[str, list[float]] = {"decode": [], **{mode: [] for mode in modes}}
    machine = machine_info() | {"load_average_1m_before": load_average_1m()}
    with tempfile.TemporaryDirectory(prefix="sceau-batch-admission-") as temporary:
        node, consortium = build(Path(temporary))
        try:
            for round_number in range(rounds):
                log(f"round {round_number + 1}/{rounds}: signing {count * (len(modes) + 1)}")
                for mode, batch in modes.items():
                    encoded = presign(consortium, count, f"R{round_number}-{mode}")
                    samples[mode].append(timed_pass(node, encoded, batch) / count * 1e6)
                encoded = presign(consortium, count, f"R{round_number}-decode")
                started = time.process_time()
                decoded(encoded)
                samples["decode"].append((time.process_time() - started) / count * 1e6)
        finally:
            node.store.close()
    single = statistics.median(samples["single"])
    report = {
        "benchmark": "batch_admission",
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": arguments.quick,
        "rounds": rounds,
        "transactions_per_pass": count,
        "cpu_us_per_tx": {
            mode: {
                "median": round(statistics.median(values), 1),
                "min": round(min(values), 1),
                "max": round(max(values), 1),
                "ratio_to_single": round(statistics.median(values) / single, 3),
            }
            for mode, values in samples.items()
        },
        "machine": machine,
        "libraries": library_versions(),
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
