"""Micro-benchmarks of the ledger core: the per-operation costs later benchmarks compare against.

Usage::

    python benchmarks/ledger_micro.py [--quick] [--repeat N]

Prints exactly one JSON document on stdout (progress goes to stderr). Every figure comes from
this one run on this machine; nothing is asserted about absolute times.

Method
------
The machine is shared and noisy, so every operation is measured the same robust way:

1. calibration: the operation is run in doubling batches until a batch takes a measurable time,
   which fixes ``calls_per_sample`` so that one sample lasts about ``sample_target_ms``;
2. warm-up: ``warmup_samples`` samples are run and thrown away (caches, lazy imports, LevelDB
   block cache, OpenSSL key loading);
3. ``samples`` timed samples (``--repeat``), each a batch of ``calls_per_sample`` calls timed
   with ``time.perf_counter_ns`` with the garbage collector disabled (as ``timeit`` does; here
   also because this process holds a large state whose collection would be an artefact of the
   benchmark, not a cost of the operation); a sample's value is its time divided by its calls.

Each operation reports the median, p10, p90 and min per call in microseconds, and ops/s derived
from the median, all wall clock; ``cpu_*_us`` give the same from ``time.process_time_ns``, which
leaves out the time spent waiting for a core on a busy machine (and waiting for the disk).
Inputs that a call could cache on (a transaction's ``tx_id`` or ``encoded``) are rebuilt outside
the timed batch, so every timed call does the full work; the one exception is said where it
applies (blocks are appended with their transactions' ``tx_id`` already known).

Operation names are stable: in ``--quick`` mode (a smoke test, ``"quick": true``) the sizes are
smaller than the names say (10^3 state keys, 100-transaction blocks) and every entry states the
sizes it actually used.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script (``python benchmarks/ledger_micro.py``), Python puts benchmarks/ on the path,
# not the repository root, and the project is not necessarily installed: add the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import library_versions, load_average_1m, machine_info

from ledger import crypto, encoding, merkle
from ledger.devchain import LocalConsortium
from ledger.model import Transaction
from ledger.state import EMPTY_ROOT, MemoryNodeStore, SparseMerkleTree
from ledger.store import ChainStore

SCHEMA_VERSION = 1
SEED = 20_260_101
START_MS = 1_790_000_000_000
EXPIRY_HEIGHT = 1_000_000
DISTINCT_TRANSACTIONS = 64
"""Distinct signed transactions cycled through by the transaction benchmarks."""
CALIBRATION_ROUNDS_MAX = 24
"""Doublings tried at most while calibrating (2**24 calls: far beyond any operation here)."""

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
KINDS = (
    ("deliberation", "DEL", "Délibération"),
    ("decree", "ARR", "Arrêté"),
    ("permit", "PC", "Permis de construire"),
    ("budget", "BUD", "Budget"),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """Sizes and repetition counts of one run."""

    quick: bool
    samples: int
    warmup_samples: int
    sample_target_ns: int
    calls_per_sample_max: int
    state_keys: int
    block_transactions: int
    merkle_leaves: int = 1_000
    merkle_leaf_bytes: int = 250

    def __post_init__(self) -> None:
        assert self.samples >= 1 and self.warmup_samples >= 0
        assert self.sample_target_ns > 0 and self.calls_per_sample_max >= 1
        assert self.state_keys >= 2 and self.state_keys % 2 == 0, "two keys per anchored act"
        assert self.block_transactions >= 1


def settings_for(*, quick: bool, repeat: int | None) -> Settings:
    """The full run (the reference figures) or the quick smoke run."""
    if quick:
        return Settings(
            quick=True,
            samples=repeat or 3,
            warmup_samples=1,
            sample_target_ns=1_000_000,
            calls_per_sample_max=200,
            state_keys=1_000,
            block_transactions=100,
        )
    return Settings(
        quick=False,
        samples=repeat or 21,
        warmup_samples=3,
        sample_target_ns=10_000_000,
        calls_per_sample_max=10_000,
        state_keys=100_000,
        block_transactions=1_000,
    )


# --- timing ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """The duration of one timed batch, or of one call of it: wall clock and CPU time."""

    wall_ns: float
    cpu_ns: float

    def per_call(self, calls: int) -> Sample:
        return Sample(self.wall_ns / calls, self.cpu_ns / calls)


def time_batch(operation: Callable[[Any], object], inputs: Sequence[Any]) -> Sample:
    """Call ``operation`` on each input with the collector off; return the time taken.

    The CPU time (``time.process_time_ns``, every thread of the process, LevelDB's included)
    excludes the time the process waited for a core, so it stays meaningful when the shared
    machine is busy; it also excludes waits for the disk (fsync).
    """
    collector_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start_cpu_ns = time.process_time_ns()
        start_wall_ns = time.perf_counter_ns()
        for item in inputs:
            operation(item)
        wall_ns = time.perf_counter_ns() - start_wall_ns
        cpu_ns = time.process_time_ns() - start_cpu_ns
    finally:
        if collector_was_enabled:
            gc.enable()
    return Sample(wall_ns, cpu_ns)


def percentiles_10_50_90(values: Sequence[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    deciles = statistics.quantiles(values, n=10, method="inclusive")
    return deciles[0], statistics.median(values), deciles[-1]


def summarize(per_call: Sequence[Sample], *, calls_per_sample: int, what: str) -> dict:
    """The report of one operation from its per-call sample values."""
    assert per_call, "at least one sample"
    walls = sorted(sample.wall_ns for sample in per_call)
    p10_ns, median_ns, p90_ns = percentiles_10_50_90(walls)
    cpu_p10_ns, cpu_median_ns, cpu_p90_ns = percentiles_10_50_90(
        sorted(sample.cpu_ns for sample in per_call)
    )
    return {
        "what": what,
        "median_us": round(median_ns / 1_000, 3),
        "p10_us": round(p10_ns / 1_000, 3),
        "p90_us": round(p90_ns / 1_000, 3),
        "min_us": round(walls[0] / 1_000, 3),
        "ops_per_s": round(1e9 / median_ns, 1),
        "cpu_median_us": round(cpu_median_ns / 1_000, 3),
        "cpu_p10_us": round(cpu_p10_ns / 1_000, 3),
        "cpu_p90_us": round(cpu_p90_ns / 1_000, 3),
        "samples": len(walls),
        "calls_per_sample": calls_per_sample,
    }


def calls_per_sample(
    operation: Callable[[Any], object],
    make_inputs: Callable[[int], Sequence[Any]],
    settings: Settings,
) -> int:
    """How many calls make one sample last about ``sample_target_ns`` (timeit's autorange).

    A first, untimed call keeps one-off costs (lazy imports, first cache fills) out of the
    estimate, and the final batch size is timed twice, keeping the faster: a batch slowed by
    another process would otherwise make every sample too short.
    """
    time_batch(operation, make_inputs(1))
    calls = 1
    for _ in range(CALIBRATION_ROUNDS_MAX):
        elapsed_ns = time_batch(operation, make_inputs(calls)).wall_ns
        if elapsed_ns >= settings.sample_target_ns // 4 or calls >= settings.calls_per_sample_max:
            break
        calls *= 2
    elapsed_ns = min(elapsed_ns, time_batch(operation, make_inputs(calls)).wall_ns)
    per_call_ns = max(elapsed_ns / calls, 1.0)
    return max(
        1, min(settings.calls_per_sample_max, round(settings.sample_target_ns / per_call_ns))
    )


def measure(
    what: str,
    operation: Callable[[Any], object],
    make_inputs: Callable[[int], Sequence[Any]],
    settings: Settings,
) -> dict:
    """Calibrate, warm up, then time ``settings.samples`` batches of ``operation``.

    ``make_inputs(count)`` returns the inputs of one batch; it runs outside the timed section,
    so it is where fresh, uncached inputs are built.
    """
    gc.collect()
    calls = calls_per_sample(operation, make_inputs, settings)
    per_call = []
    for index in range(settings.warmup_samples + settings.samples):
        sample = time_batch(operation, make_inputs(calls))
        if index >= settings.warmup_samples:
            per_call.append(sample.per_call(calls))
    return summarize(per_call, calls_per_sample=calls, what=what)


def progress(message: str) -> None:
    print(f"ledger_micro: {message}", file=sys.stderr, flush=True)


# --- realistic data --------------------------------------------------------------------------


def anchor_arguments(rng: random.Random, index: int) -> dict[str, Any]:
    """The arguments of a deeds/anchor transaction for act number ``index``."""
    issuer = MEMBERS[index % len(MEMBERS)][0]
    kind, code, label = KINDS[index % len(KINDS)]
    reference = f"2026-{code}-{index:06d}"
    title = f"{label} n°{index:06d} : plan local d'urbanisme, révision 3"
    return {
        "issuer": issuer,
        "reference": reference,
        "kind": kind,
        "digest": rng.randbytes(32),
        "act_date": f"2026-{1 + index % 12:02d}-{1 + index % 28:02d}",
        "title": title[:60].rstrip(),
        "url": f"https://actes.{issuer}.fr/2026/{kind}/{reference}.pdf",
    }


def act_key(arguments: dict[str, Any]) -> bytes:
    return f"deeds/act/{arguments['issuer']}/{arguments['reference']}".encode()


def digest_key(arguments: dict[str, Any]) -> bytes:
    return b"deeds/digest/" + arguments["digest"]


def anchor_writes(arguments: dict[str, Any], tx_id: bytes) -> dict[bytes, bytes]:
    """The two state writes of an anchored act: its record and its digest index entry."""
    record = encoding.pack({**arguments, "status": "in_force", "tx_id": tx_id})
    return {act_key(arguments): record, digest_key(arguments): act_key(arguments)}


def anchor_transaction(
    consortium: LocalConsortium, rng: random.Random, index: int
) -> tuple[Transaction, dict[bytes, bytes]]:
    """A signed deeds/anchor transaction, issued by its act's issuer, and its state writes."""
    arguments = anchor_arguments(rng, index)
    transaction = Transaction.create(
        consortium.keys[arguments["issuer"]],
        chain_id=consortium.chain_id,
        contract="deeds",
        action="anchor",
        args=arguments,
        nonce=index,
        expiry_height=EXPIRY_HEIGHT,
    )
    return transaction, anchor_writes(arguments, transaction.tx_id)


def initial_state(rng: random.Random, key_count: int) -> tuple[dict[bytes, bytes], list[bytes]]:
    """A state of ``key_count`` keys: ``key_count / 2`` anchored acts, two keys each.

    Returns the state and the act record keys (the keys an update would change).
    """
    state: dict[bytes, bytes] = {}
    record_keys = []
    for index in range(key_count // 2):
        arguments = anchor_arguments(rng, index)
        state.update(anchor_writes(arguments, rng.randbytes(32)))
        record_keys.append(act_key(arguments))
    assert len(state) == key_count
    return state, record_keys


def cycle(items: Sequence[Any], count: int) -> list[Any]:
    return [items[index % len(items)] for index in range(count)]


# --- the benchmarks --------------------------------------------------------------------------


def bench_transactions(consortium: LocalConsortium, settings: Settings) -> dict[str, dict]:
    """Canonical encoding and decoding of a deeds/anchor transaction, and its tx_id."""
    rng = random.Random(SEED)
    transactions = [
        anchor_transaction(consortium, rng, index)[0] for index in range(DISTINCT_TRANSACTIONS)
    ]
    encoded = [transaction.to_bytes() for transaction in transactions]
    canonical = [transaction.to_canonical() for transaction in transactions]

    def fresh(count: int) -> list[Transaction]:
        return [Transaction.from_bytes(data) for data in cycle(encoded, count)]

    size = {"transaction_bytes": len(encoded[0]), "title_chars": len(transactions[0].args["title"])}
    return {
        "transaction_pack": size
        | measure(
            "Transaction.to_bytes() on a freshly decoded model (model_dump + canonical pack)",
            lambda transaction: transaction.to_bytes(),
            fresh,
            settings,
        ),
        "encoding_pack": size
        | measure(
            "encoding.pack(dict) of a transaction's canonical form",
            encoding.pack,
            lambda count: cycle(canonical, count),
            settings,
        ),
        "encoding_unpack": size
        | measure(
            "encoding.unpack(bytes) of a transaction (decode + canonical re-encode check)",
            encoding.unpack,
            lambda count: cycle(encoded, count),
            settings,
        ),
        "transaction_unpack": size
        | measure(
            "Transaction.from_bytes(bytes): encoding.unpack + pydantic validation",
            Transaction.from_bytes,
            lambda count: cycle(encoded, count),
            settings,
        ),
        "transaction_tx_id": size
        | measure(
            "Transaction.tx_id on a freshly decoded model (body dump + pack + SHA-256)",
            lambda transaction: transaction.tx_id,
            fresh,
            settings,
        ),
    }


def bench_signatures(consortium: LocalConsortium, settings: Settings) -> dict[str, dict]:
    """Ed25519 through ledger.crypto, and a transaction's full signature check.

    ledger.crypto may remember verifications (a signature seen twice is checked once), so the
    verification benchmarks give every call a signature this process has never verified; the
    remembered path is measured apart, as ``ed25519_verify_repeated``.
    """
    rng = random.Random(SEED + 1)
    key = consortium.keys[MEMBERS[0][0]]
    public_key = crypto.public_key_bytes(key)
    domain = crypto.Domain.transaction(consortium.chain_id)
    payloads = [rng.randbytes(32) for _ in range(DISTINCT_TRANSACTIONS)]
    verified_before = [(payload, crypto.sign(key, domain, payload)) for payload in payloads]
    for payload, signature in verified_before:
        assert crypto.verify(public_key, domain, payload, signature)
    act_numbers = itertools.count(10**9)  # Far from the acts of the other benchmarks.

    def never_verified(count: int) -> list[tuple[bytes, bytes]]:
        fresh_payloads = [rng.randbytes(32) for _ in range(count)]
        return [(payload, crypto.sign(key, domain, payload)) for payload in fresh_payloads]

    def never_verified_transactions(count: int) -> list[Transaction]:
        """New transactions, decoded from bytes: nothing about them is cached anywhere."""
        created = [anchor_transaction(consortium, rng, next(act_numbers))[0] for _ in range(count)]
        return [Transaction.from_bytes(transaction.encoded) for transaction in created]

    def verify(pair: tuple[bytes, bytes]) -> None:
        assert crypto.verify(public_key, domain, pair[0], pair[1])

    def signature_is_valid(transaction: Transaction) -> None:
        assert transaction.signature_is_valid()

    return {
        "ed25519_sign": measure(
            "crypto.sign(key, Domain.transaction, 32-byte tx_id)",
            lambda payload: crypto.sign(key, domain, payload),
            lambda count: cycle(payloads, count),
            settings,
        ),
        "ed25519_verify": measure(
            "crypto.verify of a valid signature over a 32-byte payload, never verified before "
            "(canonicity checks + OpenSSL; the signer's public key is already loaded)",
            verify,
            never_verified,
            settings,
        ),
        "ed25519_verify_repeated": measure(
            "crypto.verify of a signature this process has already verified (what a "
            "verification cache in ledger.crypto, if any, answers)",
            verify,
            lambda count: cycle(verified_before, count),
            settings,
        ),
        "transaction_signature_verify": measure(
            "Transaction.signature_is_valid() on a freshly decoded transaction never verified "
            "before (tx_id recomputed + Ed25519 verify)",
            signature_is_valid,
            never_verified_transactions,
            settings,
        ),
    }


def bench_merkle(settings: Settings) -> dict[str, dict]:
    rng = random.Random(SEED + 2)
    leaves = [rng.randbytes(settings.merkle_leaf_bytes) for _ in range(settings.merkle_leaves)]
    report = measure(
        "merkle.root (RFC 9162) over the leaves",
        merkle.root,
        lambda count: [leaves] * count,
        settings,
    )
    return {
        "merkle_root_1000": {
            "leaves": settings.merkle_leaves,
            "leaf_bytes": settings.merkle_leaf_bytes,
        }
        | report
    }


def bench_state(
    consortium: LocalConsortium, settings: Settings, work: Path
) -> tuple[dict[str, dict], ChainStore]:
    """Build the state in memory and in LevelDB, then time single-key updates on both.

    Returns the reports and the LevelDB store (still open), on which blocks are appended next.
    """
    rng = random.Random(SEED + 3)
    progress(f"generating a state of {settings.state_keys} keys")
    state, record_keys = initial_state(rng, settings.state_keys)
    sizes = {"state_keys": settings.state_keys}

    progress("building the state tree in memory")
    memory_nodes = MemoryNodeStore()
    built: dict[str, Any] = {}

    def build_in_memory(_: None) -> None:
        built["update"] = SparseMerkleTree(memory_nodes).update(EMPTY_ROOT, state)
        memory_nodes.put_nodes(built["update"].new_nodes)

    def build_in_leveldb(_: None) -> None:
        built["store"] = ChainStore.create(work / "chain", consortium.genesis, initial_state=state)

    gc.collect()
    memory_build = time_batch(build_in_memory, [None])
    progress("building the state in a LevelDB chain store")
    gc.collect()
    leveldb_build = time_batch(build_in_leveldb, [None])
    update, store = built["update"], built["store"]
    assert store.tip.state_root == update.root, "the two builds disagree"

    def single_changes(count: int) -> list[dict[bytes, bytes]]:
        """One change each: a random act's record, rewritten as withdrawn."""
        changes = []
        for key in rng.choices(record_keys, k=count):
            record = encoding.unpack(state[key])
            changes.append({key: encoding.pack({**record, "status": "withdrawn"})})
        return changes

    memory_tree = SparseMerkleTree(memory_nodes)
    progress("single-key state updates")
    reports = {
        "state_build_100k_memory": sizes
        | summarize(
            [memory_build],
            calls_per_sample=1,
            what="SparseMerkleTree.update from the empty root with every key, "
            "then MemoryNodeStore.put_nodes (built once)",
        )
        | {"tree_nodes": len(update.new_nodes)},
        "state_build_100k_leveldb": sizes
        | summarize(
            [leveldb_build],
            calls_per_sample=1,
            what="ChainStore.create(initial_state=...): tree build, then one synced LevelDB "
            "batch of the nodes and the value index (built once)",
        ),
        "state_update_at_100k": sizes
        | measure(
            "ChainStore.preview_state_root({key: value}): one existing key changed, tree "
            "nodes read from LevelDB (default 8 MiB block cache), nothing written",
            store.preview_state_root,
            single_changes,
            settings,
        ),
        "state_update_at_100k_memory": sizes
        | measure(
            "SparseMerkleTree.update(root, {key: value}) on a MemoryNodeStore: one existing "
            "key changed",
            lambda changes: memory_tree.update(update.root, changes).root,
            single_changes,
            settings,
        ),
    }
    return reports, store


def bench_append(
    consortium: LocalConsortium, store: ChainStore, settings: Settings
) -> dict[str, dict]:
    """Append blocks of deeds/anchor transactions, timing ``ChainStore.append_block`` only.

    Each block is built on the tip (``build_block`` needs it) and certified before its append
    starts. Its transactions' ``tx_id`` and ``encoded`` are already computed, as after
    admission to the mempool.
    """
    rng = random.Random(SEED + 4)
    first_index = settings.state_keys // 2  # After the acts of the initial state.
    transactions_per_block = settings.block_transactions
    per_block = []
    block_bytes = 0
    for round_index in range(settings.warmup_samples + settings.samples):
        start = first_index + round_index * transactions_per_block
        transactions, writes = [], {}
        for index in range(start, start + transactions_per_block):
            transaction, transaction_writes = anchor_transaction(consortium, rng, index)
            transactions.append(transaction)
            writes.update(transaction_writes)
        timestamp_ms = START_MS + 1_000 * (store.height + 1)
        block = consortium.build_block(store, transactions, writes, timestamp_ms=timestamp_ms)
        certificate = consortium.certify(block)
        block_bytes = block_bytes or len(block.to_bytes())
        gc.collect()
        sample = time_batch(lambda item: store.append_block(*item), [(block, certificate, writes)])
        assert store.tip.block_hash == block.block_hash
        if round_index >= settings.warmup_samples:
            per_block.append(sample)
    report = summarize(
        per_block,
        calls_per_sample=1,
        what="ChainStore.append_block(block, certificate, state_writes) on a LevelDB store "
        "(one sync=True write batch), onto the state of state_update_at_100k",
    )
    median_per_transaction_us = report["median_us"] / transactions_per_block
    return {
        "append_block_1000": {
            "transactions_per_block": transactions_per_block,
            "state_writes_per_block": 2 * transactions_per_block,
            "block_bytes": block_bytes,
            "state_keys_before": settings.state_keys,
        }
        | report
        | {
            "per_transaction_median_us": round(median_per_transaction_us, 3),
            "transactions_per_s": round(1e6 / median_per_transaction_us, 1),
        }
    }


# --- the report ------------------------------------------------------------------------------


def run(settings: Settings) -> dict[str, Any]:
    """Run every benchmark and return the JSON document."""
    started_at = datetime.now(UTC)
    start_ns = time.perf_counter_ns()
    load_start = load_average_1m()
    consortium = LocalConsortium.create(
        MEMBERS,
        consortium="Consortium des actes du Valbrunois",
        created_at_ms=START_MS,
        seed=b"sceau-benchmarks",
    )
    operations: dict[str, dict] = {}
    progress("transactions")
    operations |= bench_transactions(consortium, settings)
    progress("signatures")
    operations |= bench_signatures(consortium, settings)
    progress("merkle root")
    operations |= bench_merkle(settings)
    with tempfile.TemporaryDirectory(prefix="sceau-bench-") as work:
        state_reports, store = bench_state(consortium, settings, Path(work))
        operations |= state_reports
        try:
            progress(f"appending blocks of {settings.block_transactions} transactions")
            operations |= bench_append(consortium, store, settings)
        finally:
            store.close()
    return {
        "benchmark": "ledger_micro",
        "schema_version": SCHEMA_VERSION,
        "quick": settings.quick,
        "timestamp": started_at.isoformat(timespec="seconds"),
        "duration_s": round((time.perf_counter_ns() - start_ns) / 1e9, 1),
        "machine": machine_info()
        | {"load_average_1m_start": load_start, "load_average_1m_end": load_average_1m()},
        "libraries": library_versions(),
        "method": {
            "clock": "time.perf_counter_ns",
            "statistic": "median of per-call sample values; p10/p90/min alongside",
            "cpu_time": "time.process_time_ns per call (cpu_*_us): robust to a busy machine, "
            "blind to disk waits",
            "samples": settings.samples,
            "warmup_samples": settings.warmup_samples,
            "sample_target_ms": settings.sample_target_ns / 1e6,
            "garbage_collector": "disabled inside each timed batch",
        },
        "single_core_ed25519_verify_per_s": operations["ed25519_verify"]["ops_per_s"],
        "single_core_ed25519_verify_per_s_cpu": round(
            1e6 / operations["ed25519_verify"]["cpu_median_us"], 1
        ),
        "operations": operations,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small sizes and few samples (a smoke test)"
    )
    parser.add_argument(
        "--repeat", type=int, metavar="N", help="timed samples per operation (default 21, quick 3)"
    )
    arguments = parser.parse_args(argv)
    if arguments.repeat is not None and not 1 <= arguments.repeat <= 10_000:
        parser.error("--repeat must be between 1 and 10000")
    document = run(settings_for(quick=arguments.quick, repeat=arguments.repeat))
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
