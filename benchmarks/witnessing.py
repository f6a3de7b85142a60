"""What the log of every act and witnessing cost per block: CPU, bytes and a witness's latency.

Usage::

    python benchmarks/witnessing.py [--quick] [--log-size N] [--block-transactions K]

Prints exactly one JSON document on stdout (progress goes to stderr). Every figure comes from
this one run on this machine and is given beside a bound measured in the same run, so that a
noisy, shared machine gives ratios that mean something; nothing is asserted.

What is measured, for a block of ``K`` transactions appended to a log of ``N`` (medians of
repeated samples, ``time.process_time_ns`` for CPU, ``perf_counter_ns`` for latency):

* **the log, per block**: extending the frontier with the block's leaves (what the engine does
  to compute the header's ``log_root``, each member once per proposal) and computing the new
  subtree hashes the store writes (``tlog.append``); beside it, one Ed25519 verification (what
  each member spends per transaction anyway) and SHA-256 over the block's transactions;
* **checkpoints, per block and member**: signing the checkpoint note (``sign_note``), and
  verifying the other members' signatures (``verify_note`` of one signature, times n − 1);
* **bytes**: a format 2 header minus the same header in format 1, the ``checkpoint_signature``
  peer frame, the consortium note (a quorum of 3 of 4 members and one witness cosignature),
  an ``add-checkpoint`` request from the previous block's size (its consistency proof), the
  store's new log records per transaction;
* **a witness's round trip**: ``add-checkpoint`` to a real ``sceau witness run`` process on
  loopback, one block after the other (the witness verifies 3 signatures and a consistency
  proof, persists its state with fsync, cosigns), against the same server's ``GET /`` (a
  loopback HTTP round trip without that work) as the bound.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ledger import crypto, merkle, tlog  # noqa: E402
from ledger.devchain import LocalConsortium  # noqa: E402
from ledger.model import BlockHeader, Transaction  # noqa: E402
from ledger.note import (  # noqa: E402
    AddCheckpointRequest,
    Checkpoint,
    KeyType,
    Note,
    NoteVerifierKey,
    cosign,
    origin_for,
    sign_note,
    verify_note,
)
from node.runtime.wire import CheckpointSignature, encode_frame  # noqa: E402

MEMBERS = [
    ("metropole-valbrune", "Métropole du Valbrunois"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger", "Commune de Saint-Léger"),
    ("bourg-est", "Commune de Bourg-Est"),
]


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def cpu_us(operation: Callable[[], object], *, samples: int, calls: int) -> dict[str, float]:
    """Median and p90 of the CPU time of one call, over ``samples`` batches of ``calls``."""
    for _ in range(calls):  # warm-up
        operation()
    values = []
    for _ in range(samples):
        start = time.process_time_ns()
        for _ in range(calls):
            operation()
        values.append((time.process_time_ns() - start) / calls / 1000)
    values.sort()
    return {
        "median_us": round(statistics.median(values), 2),
        "p90_us": round(values[int(0.9 * (len(values) - 1))], 2),
    }


def transactions(consortium: LocalConsortium, count: int) -> list[Transaction]:
    key = consortium.keys[MEMBERS[0][0]]
    return [
        Transaction.create(
            key,
            chain_id=consortium.chain_id,
            contract="deeds",
            action="anchor",
            args={
                "reference": f"2026-DEL-{index:06d}",
                "digest": hashlib.sha256(b"%d" % index).digest(),
            },
            nonce=index,
            expiry_height=1_000_000,
        )
        for index in range(count)
    ]


def run(quick: bool, log_size: int, block_transactions: int) -> dict[str, Any]:
    samples = 5 if quick else 21
    consortium = LocalConsortium.create(MEMBERS, seed=b"witnessing", format_version=2)
    keys = [consortium.keys[member_id] for member_id, _ in MEMBERS]
    origin = origin_for(consortium.chain_id)
    block = transactions(consortium, block_transactions)
    leaves = [transaction.encoded for transaction in block]

    progress(f"a log of {log_size} leaves…")
    # A frontier of the log's size, from synthetic leaf hashes (their values change nothing).
    frontier = tlog.EMPTY_FRONTIER.extended(
        hashlib.sha256(b"%d" % index).digest() for index in range(log_size)
    )
    after, created = tlog.append(frontier, leaves)

    progress("CPU per block…")
    member_key = keys[0]
    public_key = crypto.public_key_bytes(member_key)
    message = b"x" * 200
    signature = crypto.sign_raw(member_key, message)
    text = Checkpoint(origin, after.size, after.root).text()
    one_signature = sign_note(text, origin, member_key)
    note_one = Note(text, (one_signature,))
    verifier = NoteVerifierKey(origin, KeyType.ED25519, public_key)

    def uncached(operation: Callable[[], object]) -> Callable[[], object]:
        """Every signature a node checks is new to it: leave out crypto's verification cache."""

        def call() -> object:
            crypto._verify_once.cache_clear()
            return operation()

        return call

    cpu = {
        "log_frontier_extend_per_block": cpu_us(
            lambda: frontier.extended(merkle.leaf_hash(leaf) for leaf in leaves),
            samples=samples,
            calls=20,
        ),
        "log_append_with_new_nodes_per_block": cpu_us(
            lambda: tlog.append(frontier, leaves), samples=samples, calls=20
        ),
        "checkpoint_sign_per_block": cpu_us(
            lambda: sign_note(text, origin, member_key), samples=samples, calls=50
        ),
        "checkpoint_verify_one_signature": cpu_us(
            uncached(lambda: verify_note(note_one, [verifier])), samples=samples, calls=50
        ),
        "bound_ed25519_verify_one": cpu_us(
            uncached(lambda: crypto.verify_raw(public_key, message, signature)),
            samples=samples,
            calls=50,
        ),
        "bound_sha256_of_the_block": cpu_us(
            lambda: [hashlib.sha256(leaf).digest() for leaf in leaves], samples=samples, calls=50
        ),
    }
    per_member_us = (
        cpu["log_frontier_extend_per_block"]["median_us"] * 2  # proposal + validation
        + cpu["log_append_with_new_nodes_per_block"]["median_us"]
        + cpu["checkpoint_sign_per_block"]["median_us"]
        + cpu["checkpoint_verify_one_signature"]["median_us"] * (len(MEMBERS) - 1)
    )
    verify_per_block_us = cpu["bound_ed25519_verify_one"]["median_us"] * block_transactions

    progress("bytes…")
    header_1 = BlockHeader(
        chain_id=consortium.chain_id,
        height=1000,
        prev_hash=bytes(32),
        timestamp_ms=1_767_225_600_000,
        proposer=MEMBERS[0][0],
        view=0,
        tx_count=block_transactions,
        tx_root=merkle.root(leaves),
        state_root=bytes(32),
        members_hash=consortium.genesis.members_hash,
    )
    header_2 = header_1.model_copy(update={"log_size": after.size, "log_root": after.root})
    frame = encode_frame(
        CheckpointSignature(
            sender=MEMBERS[0][0],
            height=1000,
            log_size=after.size,
            log_root=after.root,
            signature=one_signature.signature,
        )
    )
    witness_key = crypto.key_from_seed(b"w" * 32)
    note = Note(
        text,
        (
            *(sign_note(text, origin, key) for key in keys[:3]),
            cosign(text, "prefecture.example/witness", witness_key, 1_796_000_000),
        ),
    )
    previous = frontier.size
    # A consistency proof from the previous block's size: its length is what matters.
    proof_length = len(
        tlog.consistency_proof(previous - 7, previous, lambda level, index: bytes(32))
    )
    request = AddCheckpointRequest(previous, (bytes(32),) * proof_length, note)
    record_bytes = sum(10 + 32 for _ in created) + 18 + 16  # log/<l><i> → hash; log-block; size
    sizes = {
        "header_format_2_minus_format_1": len(header_2.to_bytes()) - len(header_1.to_bytes()),
        "header_format_1": len(header_1.to_bytes()),
        "checkpoint_signature_frame": len(frame),
        "checkpoint_signature_frames_per_block_per_member_sent": (len(MEMBERS) - 1) * len(frame),
        "consortium_note_3_members_1_witness": len(note.to_bytes()),
        "add_checkpoint_request_from_previous_block": len(request.to_bytes()),
        "consistency_proof_hashes": proof_length,
        "log_records_per_transaction_in_the_store": round(record_bytes / block_transactions, 1),
        "block_transactions_bytes": sum(len(leaf) for leaf in leaves),
    }

    progress("a witness's round trip…")
    witness = witness_latency(consortium, keys, quick=quick)
    return {
        "benchmark": "witnessing",
        "quick": quick,
        "log_size": log_size,
        "block_transactions": block_transactions,
        "members": len(MEMBERS),
        "cpu": cpu,
        "cpu_per_block_per_member_us": round(per_member_us, 1),
        "bound_ed25519_verify_of_the_block_us": round(verify_per_block_us, 1),
        "ratio_log_and_checkpoints_to_verifying_the_block": round(
            per_member_us / verify_per_block_us, 4
        ),
        "bytes": sizes,
        "witness": witness,
    }


def witness_latency(consortium: LocalConsortium, keys: list[Any], *, quick: bool) -> dict[str, Any]:
    """Round trips of add-checkpoint to a real witness, block after block, and of GET /."""
    rounds = 20 if quick else 200
    origin = origin_for(consortium.chain_id)
    with tempfile.TemporaryDirectory(prefix="sceau-bench-witness-") as folder:
        work = Path(folder)
        genesis = work / "genesis.json"
        genesis.write_text(consortium.genesis.model_dump_json())
        cli = [sys.executable, "-m", "node.tools.cli", "witness"]
        subprocess.run(
            [*cli, "init", "--name", "bench.example/w", "--dir", str(work / "w")],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [*cli, "add-log", "--dir", str(work / "w"), "--genesis", str(genesis)],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        process = subprocess.Popen(
            [*cli, "run", "--dir", str(work / "w"), "--listen", "127.0.0.1:0"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        try:
            line = process.stdout.readline().decode() if process.stdout else ""
            url = next(word for word in line.split() if word.startswith("http")).rstrip("/")
            leaves: list[bytes] = []
            old_size, add, status = 0, [], []
            for round_index in range(rounds):
                leaves.extend(b"act %d-%d" % (round_index, i) for i in range(7))
                root = merkle.root(leaves)
                text = Checkpoint(origin, len(leaves), root).text()
                note = Note(text, tuple(sign_note(text, origin, key) for key in keys[:3]))
                proof = merkle.consistency_proof(leaves, old_size) if old_size else []
                body = AddCheckpointRequest(old_size, tuple(proof), note).to_bytes()
                start = time.perf_counter_ns()
                with urllib.request.urlopen(
                    urllib.request.Request(f"{url}/add-checkpoint", data=body), timeout=10
                ) as answer:
                    answer.read()
                add.append((time.perf_counter_ns() - start) / 1e6)
                start = time.perf_counter_ns()
                with urllib.request.urlopen(f"{url}/", timeout=10) as answer:
                    answer.read()
                status.append((time.perf_counter_ns() - start) / 1e6)
                old_size = len(leaves)
        finally:
            process.terminate()
            process.wait(timeout=10)
    add.sort()
    status.sort()
    return {
        "rounds": rounds,
        "add_checkpoint_ms_median": round(statistics.median(add), 2),
        "add_checkpoint_ms_p90": round(add[int(0.9 * (len(add) - 1))], 2),
        "bound_get_status_ms_median": round(statistics.median(status), 2),
        "ratio_add_checkpoint_to_get": round(statistics.median(add) / statistics.median(status), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    parser.add_argument("--log-size", type=int, default=1_000_000, help="leaves before the block")
    parser.add_argument(
        "--block-transactions", type=int, default=300, help="transactions in the block (300)"
    )
    arguments = parser.parse_args(argv)
    log_size = min(arguments.log_size, 10_000) if arguments.quick else arguments.log_size
    document = run(arguments.quick, log_size, arguments.block_transactions)
    print(json.dumps(document, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
