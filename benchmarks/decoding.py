"""Decoding benchmark: what a node pays to turn canonical bytes into transactions, blocks and peer
frames, against the C decoder's own floor and against the pydantic path.

Usage::

    python benchmarks/decoding.py [--quick] [--repeat N]

Prints exactly one JSON document on stdout (progress goes to stderr). Nothing is asserted about
absolute times: every figure is measured in this run, next to its own bounds.

What is measured
----------------
For each input (a deeds/anchor transaction, a block of 1,000 of them, the proposal frame that
carries that block, a catch-up frame of 4 blocks of 250, a gossip frame of 256 transactions):

* ``*_msgpack``: ``msgpack.unpackb`` alone, the C decoder with no canonical check and no model:
  the floor no decoder of these bytes can go under without dropping a check;
* ``*_unpack``: :func:`ledger.encoding.unpack`, the strict canonical decode (the C decode, the
  checks of sorted keys, depth and types, the re-encoding compared byte for byte);
* ``*_decode``: what a node runs (``Transaction.from_bytes``, ``Block.from_bytes``,
  ``node.runtime.wire.decode_frame``): the canonical decode and the models;
* ``*_pydantic``: the same bytes through the same canonical decode, then pydantic
  (``from_canonical``, ``message_from_document``): the path the models took before the direct
  field check, still the path of any document it does not accept.

Block-carrying operations end with the block's Merkle leaves (``transaction_leaves()``), which
a node needs right after decoding a proposal (its ``tx_root``): the direct path keeps each
transaction's bytes, the pydantic path encodes them again.

Method: CPU time (``time.process_time_ns``) per call, the median of ``samples`` timed batches
(each calibrated to take about ``sample_target_ms``, after one warm-up batch), the garbage
collector disabled inside each batch; ``wall_median_us`` alongside. CPU time is what the
issue's ratios are about, and it stays meaningful on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import msgpack
from ledger_micro import MEMBERS, START_MS, anchor_transaction
from machine import library_versions, load_average_1m, machine_info

from consensus.messages import PrePrepare, message_from_document
from ledger import encoding, merkle
from ledger.devchain import LocalConsortium
from ledger.model import Block, BlockHeader, Transaction
from node.runtime.wire import FRAME_LIMITS, TransactionGossip, decode_frame

SCHEMA_VERSION = 1
SEED = 20_261_205


def progress(message: str) -> None:
    print(f"decoding: {message}", file=sys.stderr, flush=True)


def measure(operation: Callable[[], object], *, samples: int, target_ns: int) -> dict[str, Any]:
    """CPU and wall time per call of ``operation``: medians over ``samples`` batches."""
    calls = 1
    while True:  # calibration: double the batch until it takes a measurable time
        start = time.process_time_ns()
        for _ in range(calls):
            operation()
        elapsed = time.process_time_ns() - start
        if elapsed >= target_ns // 4 or calls >= 1 << 20:
            break
        calls *= 2
    calls = max(1, round(calls * target_ns / max(1, elapsed)))
    cpu_us: list[float] = []
    wall_us: list[float] = []
    for index in range(samples + 1):
        gc.collect()
        gc.disable()
        try:
            wall_start = time.perf_counter_ns()
            cpu_start = time.process_time_ns()
            for _ in range(calls):
                operation()
            cpu = time.process_time_ns() - cpu_start
            wall = time.perf_counter_ns() - wall_start
        finally:
            gc.enable()
        if index:  # the first batch warms up
            cpu_us.append(cpu / calls / 1000)
            wall_us.append(wall / calls / 1000)
    return {
        "cpu_median_us": round(statistics.median(cpu_us), 2),
        "cpu_min_us": round(min(cpu_us), 2),
        "cpu_max_us": round(max(cpu_us), 2),
        "wall_median_us": round(statistics.median(wall_us), 2),
        "calls_per_sample": calls,
        "samples": samples,
    }


def header_for(consortium: LocalConsortium, transactions: Sequence[Transaction], height: int):
    return BlockHeader(
        chain_id=consortium.chain_id,
        height=height,
        prev_hash=bytes(32),
        timestamp_ms=START_MS + height,
        proposer=MEMBERS[0][0],
        view=0,
        tx_count=len(transactions),
        tx_root=merkle.root([transaction.encoded for transaction in transactions]),
        state_root=bytes(32),
        members_hash=consortium.genesis.members_hash,
    )


def inputs(consortium: LocalConsortium, block_transactions: int) -> dict[str, bytes]:
    """The canonical bytes of every input, built once."""
    rng = random.Random(SEED)
    transactions = [
        anchor_transaction(consortium, rng, index)[0] for index in range(block_transactions)
    ]
    block = Block(header=header_for(consortium, transactions, 5), transactions=tuple(transactions))
    proposal = PrePrepare.sign(
        consortium.keys[MEMBERS[0][0]], consortium.chain_id, view=0, block=block, sender="x"
    )
    quarter = max(1, block_transactions // 4)
    catch_up_blocks = []
    for index in range(4):
        part = transactions[index * quarter : (index + 1) * quarter]
        small = Block(header=header_for(consortium, part, 10 + index), transactions=tuple(part))
        catch_up_blocks.append([small.to_canonical(), consortium.certify(small).to_canonical()])
    catch_up = {"kind": "block_response", "blocks": catch_up_blocks, "sender": MEMBERS[1][0]}
    gossip = TransactionGossip(
        transactions=tuple(transactions[: min(256, block_transactions)]), sender=MEMBERS[2][0]
    )
    return {
        "transaction": transactions[0].encoded,
        "block": block.to_bytes(),
        "proposal": proposal.to_bytes(),
        "catch_up": encoding.pack(catch_up),
        "gossip": gossip.to_bytes(),
    }


def leaves_of(message: Any) -> Any:
    """The Merkle leaves of every block a decoded message carries (what a node computes next)."""
    if isinstance(message, Block):
        return message.transaction_leaves()
    if isinstance(message, PrePrepare):
        return message.block.transaction_leaves()
    blocks = getattr(message, "blocks", None)
    if blocks is not None:
        return [block.transaction_leaves() for block, _ in blocks]
    return [transaction.encoded for transaction in message.transactions]


def operations(data: dict[str, bytes]) -> dict[str, Callable[[], object]]:
    transaction = data["transaction"]
    block = data["block"]
    frames = {name: data[name] for name in ("proposal", "catch_up", "gossip")}

    def pydantic_transaction() -> object:
        decoded = Transaction.from_canonical(encoding.unpack(transaction))
        decoded.__dict__["encoded"] = transaction  # as from_bytes always did
        return decoded

    def pydantic_frame(frame: bytes) -> object:
        document = encoding.unpack(frame, FRAME_LIMITS)
        if document["kind"] == "transactions":
            return leaves_of(TransactionGossip.from_canonical(document))
        return leaves_of(message_from_document(document))

    table: dict[str, Callable[[], object]] = {
        "transaction_msgpack": lambda: msgpack.unpackb(transaction),
        "transaction_unpack": lambda: encoding.unpack(transaction),
        "transaction_decode": lambda: Transaction.from_bytes(transaction),
        "transaction_pydantic": pydantic_transaction,
        "block_msgpack": lambda: msgpack.unpackb(block),
        "block_unpack": lambda: encoding.unpack(block),
        "block_decode": lambda: leaves_of(Block.from_bytes(block)),
        "block_pydantic": lambda: leaves_of(Block.from_canonical(encoding.unpack(block))),
    }
    for name, frame in frames.items():
        table[f"{name}_msgpack"] = lambda frame=frame: msgpack.unpackb(frame)
        table[f"{name}_unpack"] = lambda frame=frame: encoding.unpack(frame, FRAME_LIMITS)
        table[f"{name}_decode"] = lambda frame=frame: leaves_of(decode_frame(frame))
        table[f"{name}_pydantic"] = lambda frame=frame: pydantic_frame(frame)
    document = encoding.unpack(block)
    table["block_encode_msgpack"] = lambda: msgpack.packb(document, use_bin_type=True)
    table["block_encode"] = lambda: encoding.pack_decoded(document)
    return table


def run(*, quick: bool, samples: int) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    load_start = load_average_1m()
    consortium = LocalConsortium.create(
        MEMBERS, consortium="Consortium des actes du Valbrunois", created_at_ms=START_MS
    )
    block_transactions = 100 if quick else 1000
    progress(f"building inputs ({block_transactions}-transaction blocks)")
    data = inputs(consortium, block_transactions)
    target_ns = (5 if quick else 40) * 1_000_000
    results: dict[str, dict[str, Any]] = {}
    for name, operation in operations(data).items():
        progress(name)
        results[name] = measure(operation, samples=samples, target_ns=target_ns)
    ratios = {}
    for name in ("transaction", "block", "proposal", "catch_up", "gossip"):
        decode = results[f"{name}_decode"]["cpu_median_us"]
        ratios[f"{name}_pydantic_over_decode"] = round(
            results[f"{name}_pydantic"]["cpu_median_us"] / decode, 2
        )
        ratios[f"{name}_decode_over_msgpack"] = round(
            decode / results[f"{name}_msgpack"]["cpu_median_us"], 2
        )
    ratios["block_encode_msgpack_over_encode"] = round(
        results["block_encode_msgpack"]["cpu_median_us"] / results["block_encode"]["cpu_median_us"],
        2,
    )
    return {
        "benchmark": "decoding",
        "schema_version": SCHEMA_VERSION,
        "quick": quick,
        "timestamp": started_at.isoformat(timespec="seconds"),
        "machine": machine_info()
        | {"load_average_1m_start": load_start, "load_average_1m_end": load_average_1m()},
        "libraries": library_versions(),
        "inputs": {
            "block_transactions": block_transactions,
            "bytes": {name: len(value) for name, value in data.items()},
        },
        "method": {
            "clock": "time.process_time_ns (cpu_*), time.perf_counter_ns (wall_median_us)",
            "statistic": "median of per-call sample values after one warm-up sample",
            "samples": samples,
            "sample_target_ms": target_ns / 1e6,
            "garbage_collector": "collected before, disabled inside each timed batch",
        },
        "ratios": ratios,
        "operations": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small inputs, few samples")
    parser.add_argument("--repeat", type=int, metavar="N", help="samples (default 11, quick 3)")
    arguments = parser.parse_args(argv)
    samples = arguments.repeat or (3 if arguments.quick else 11)
    if not 1 <= samples <= 1000:
        parser.error("--repeat must be between 1 and 1000")
    print(json.dumps(run(quick=arguments.quick, samples=samples), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
