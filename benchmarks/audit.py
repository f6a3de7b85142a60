"""Benchmark of the offline auditor: transactions audited per second, against Ed25519's bound.

Usage::

    python benchmarks/audit.py [--quick] [--blocks N] [--transactions-per-block N]
                               [--workers N] [--cache DIR]

Prints exactly one JSON document on stdout (progress goes to stderr).

What it does
------------
1. **Build** (or reuse from the cache) a real chain: a consortium of four members running
   membership 1.0 and deeds 1.0, ``blocks`` blocks of ``transactions_per_block`` deeds anchors
   (100 × 1,000 = 10^5 transactions by default), each signed by one of the four member keys,
   executed by the engine and appended to a LevelDB ``ChainStore`` with a commit certificate of
   three members. Keys and documents derive from a fixed seed, so a cached chain is the chain
   this run would build; the build time is reported apart (``null`` when cached).
2. **Export** it to a bundle (``ledger.bundle``), timed.
3. **Audit** the bundle exactly as ``sceau audit`` does (``ledger.audit.audit_bundle`` with
   ``contracts.replay.EngineReplayer``), with one worker process per core decoding the blocks
   and verifying their signatures ahead of the re-execution. Besides its wall-clock rate, the
   CPU time it took in the main process and in the workers is reported per transaction: on a
   shared machine, the figure to compare between runs.
4. **Measure the bound** in the same run: Ed25519 verifications per second on one core, over
   fresh signatures (distinct keys, messages and signatures, so that ``ledger.crypto``'s cache
   of verifications never answers), in batches before and after the audit (the best batch
   counts: the machine is shared), times the cores this process may use.

The **ratio** ``audit_tx_per_s / (verify_per_s_per_core × cores)`` says how close the audit
comes to the rate at which this machine could merely check the signatures. The rest of the
audit — decoding, hashing, and above all re-executing every transaction with the contracts on
one core — is what keeps it below 1.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ on the path, not the repository root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import library_versions, load_average_1m, machine_info, usable_cores

from contracts.engine import Engine
from contracts.registry import load_contracts
from contracts.replay import EngineReplayer
from ledger import crypto, domains, merkle
from ledger.audit import audit_bundle
from ledger.bundle import BundleWriter
from ledger.devchain import LocalConsortium
from ledger.model import (
    Block,
    BlockHeader,
    ConsensusParameters,
    ContractRef,
    Genesis,
    Transaction,
)
from ledger.store import ChainStore

SCHEMA_VERSION = 1
CACHE_FORMAT = "1"
"""Bumped whenever the chain this script builds changes (the cache is keyed by it)."""
SEED = b"sceau benchmarks/audit.py"
MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
CONTRACTS = (
    ContractRef(name="membership", version="1.0"),
    ContractRef(name="deeds", version="1.0"),
)
KINDS = ("deliberation", "decree", "permit", "budget")
BLOCK_INTERVAL_MS = 2_000
VERIFY_BATCHES = 3
"""Batches of fresh verifications timed before the audit, and again after it."""


def log(message: str) -> None:
    print(f"[audit benchmark] {message}", file=sys.stderr, flush=True)


# --- the chain --------------------------------------------------------------------------------


def consortium(transactions_per_block: int) -> LocalConsortium:
    return LocalConsortium.create(
        MEMBERS,
        consortium="Consortium de Valbrune (benchmark)",
        seed=SEED,
        contracts=CONTRACTS,
        parameters=ConsensusParameters(
            block_transactions_max=max(transactions_per_block, 1),
            block_bytes_max=12 * 1024 * 1024,
        ),
    )


def anchors(local: LocalConsortium, height: int, count: int, nonces: Any) -> list[Transaction]:
    """``count`` anchors for block ``height``, spread over the four members' keys."""
    transactions = []
    for index in range(count):
        issuer = MEMBERS[index % len(MEMBERS)][0]
        reference = f"{2026 + height // 1000}-{height:05d}-{index:05d}"
        transactions.append(
            Transaction.create(
                local.keys[issuer],
                chain_id=local.chain_id,
                contract="deeds",
                action="anchor",
                args={
                    "issuer": issuer,
                    "reference": reference,
                    "kind": KINDS[index % len(KINDS)],
                    "digest": hashlib.sha256(f"{issuer}/{reference}".encode()).digest(),
                    "act_date": "2026-11-28",
                    "title": f"Acte {reference} du conseil",
                },
                nonce=next(nonces),
                expiry_height=10**9,
            )
        )
    return transactions


def build_chain(path: Path, blocks: int, per_block: int) -> None:
    """Build the chain in a LevelDB store at ``path``."""
    local = consortium(per_block)
    genesis = local.genesis
    engine = Engine(genesis, load_contracts(genesis))
    nonces = itertools.count()
    with ChainStore.create(path, genesis, engine.genesis_state()) as store:
        for height in range(1, blocks + 1):
            transactions = anchors(local, height, per_block, nonces)
            timestamp_ms = genesis.created_at_ms + height * BLOCK_INTERVAL_MS
            proposer = genesis.members[0].id
            result = engine.execute(
                store, transactions, height=height, timestamp_ms=timestamp_ms, proposer=proposer
            )
            assert not result.rejected, result.rejected[0][1]
            header = BlockHeader(
                chain_id=genesis.chain_id,
                height=height,
                prev_hash=store.tip.block_hash,
                timestamp_ms=timestamp_ms,
                proposer=proposer,
                view=0,
                tx_count=len(result.accepted),
                tx_root=merkle.root([transaction.encoded for transaction in result.accepted]),
                state_root=result.state_root,
                members_hash=result.members_hash,
            )
            block = Block(header=header, transactions=result.accepted)
            store.append_block(block, local.certify(block), result.state_writes)
            if height % 10 == 0 or height == blocks:
                log(f"built block {height} of {blocks}")


def cached_chain(cache: Path, blocks: int, per_block: int) -> tuple[Path, float | None]:
    """The chain's store path, built unless the cache holds it; and the build time."""
    folder = cache / f"chain-v{CACHE_FORMAT}-{blocks}x{per_block}"
    done = folder / "complete"
    if done.exists():
        return folder / "chain", None
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    build_chain(folder / "chain", blocks, per_block)
    seconds = time.perf_counter() - started
    done.write_text("built\n")
    return folder / "chain", seconds


def export_bundle(store_path: Path, bundle: Path) -> tuple[Genesis, int, float]:
    """Export the store to a fresh bundle; (genesis, bytes, seconds)."""
    bundle.unlink(missing_ok=True)
    started = time.perf_counter()
    with ChainStore.open(store_path) as store, BundleWriter.open(bundle, store.genesis) as out:
        for block in store.blocks():
            out.append(block, store.certificate(block.height))
        genesis = store.genesis
    return genesis, bundle.stat().st_size, time.perf_counter() - started


# --- the bound: Ed25519 on one core -----------------------------------------------------------


def fresh_signatures(count: int, label: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """``count`` (public key, payload, signature) never verified in this process."""
    keys = [crypto.key_from_seed(hashlib.sha256(label + bytes([i])).digest()) for i in range(8)]
    public_keys = [crypto.public_key_bytes(key) for key in keys]
    domain = crypto.Domain(domains.TRANSACTION, hashlib.sha256(label).digest())
    signed = []
    for index in range(count):
        payload = hashlib.sha256(label + index.to_bytes(8, "big")).digest()
        which = index % len(keys)
        signed.append((public_keys[which], payload, crypto.sign(keys[which], domain, payload)))
    return signed


def verify_rate(count: int, label: bytes) -> dict[str, float]:
    """Verifications per second, wall clock and CPU time, of ``count`` fresh signatures."""
    signed = fresh_signatures(count, label)
    domain = crypto.Domain(domains.TRANSACTION, hashlib.sha256(label).digest())
    started_wall, started_cpu = time.perf_counter(), time.process_time()
    for public_key, payload, signature in signed:
        assert crypto.verify(public_key, domain, payload, signature)
    wall, cpu = time.perf_counter() - started_wall, time.process_time() - started_cpu
    return {"per_s": count / wall, "per_s_cpu": count / cpu if cpu > 0 else 0.0}


# --- the CPU time of the audit ----------------------------------------------------------------


def cpu_seconds() -> tuple[float, float]:
    """CPU time (user + system) of this process, and of its children that ended.

    The audit's workers end (and are waited for) before ``audit_bundle`` returns, so the
    difference of two readings around it is the CPU time of the audit in every process: a
    figure that other work on a shared machine changes little, unlike the wall clock.
    """
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime)


# --- the run ----------------------------------------------------------------------------------


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    cores = usable_cores()
    workers = arguments.workers or cores
    blocks, per_block = arguments.blocks, arguments.transactions_per_block
    cache = Path(arguments.cache)
    cache.mkdir(parents=True, exist_ok=True)
    verifications = 500 if arguments.quick else 10_000

    log(f"chain of {blocks} blocks × {per_block} anchors (cache {cache})")
    store_path, build_s = cached_chain(cache, blocks, per_block)
    transactions = blocks * per_block
    log("exporting the bundle")
    bundle = cache / f"bundle-{os.getpid()}.bundle"
    try:
        genesis, bundle_bytes, export_s = export_bundle(store_path, bundle)
        rates = [verify_rate(verifications, b"before %d" % i) for i in range(VERIFY_BATCHES)]
        log(f"auditing with {workers} workers")
        before = cpu_seconds()
        report = audit_bundle(bundle, genesis, EngineReplayer(), workers=workers)
        after = cpu_seconds()
        rates += [verify_rate(verifications, b"after %d" % i) for i in range(VERIFY_BATCHES)]
    finally:
        bundle.unlink(missing_ok=True)
    if not report.ok:
        raise SystemExit(f"the benchmark chain fails its audit: {report.failures[0]}")
    verify_per_s = max(rate["per_s"] for rate in rates)
    bound = verify_per_s * cores
    audit_tx_per_s = report.transactions / report.seconds
    main_cpu_s, workers_cpu_s = (after[0] - before[0], after[1] - before[1])
    transactions_audited = max(report.transactions, 1)
    return {
        "benchmark": "audit",
        "schema_version": SCHEMA_VERSION,
        "quick": arguments.quick,
        "chain": {
            "blocks": blocks,
            "transactions_per_block": per_block,
            "transactions": transactions,
            "bundle_bytes": bundle_bytes,
            "cached": build_s is None,
            "build_s": None if build_s is None else round(build_s, 2),
            "build_tx_per_s": None if build_s is None else round(transactions / build_s, 1),
        },
        "export": {
            "seconds": round(export_s, 3),
            "blocks_per_s": round(blocks / export_s, 1),
        },
        "audit": {
            "ok": report.ok,
            "transactions": report.transactions,
            "seconds": round(report.seconds, 3),
            "workers": workers,
            "transactions_per_s": round(audit_tx_per_s, 1),
            "cpu_s": {"main": round(main_cpu_s, 3), "workers": round(workers_cpu_s, 3)},
            "cpu_us_per_transaction": {
                "main": round(main_cpu_s / transactions_audited * 1e6, 1),
                "workers": round(workers_cpu_s / transactions_audited * 1e6, 1),
                "total": round((main_cpu_s + workers_cpu_s) / transactions_audited * 1e6, 1),
            },
            "cpu_is": "user + system time of the auditing process (main) and of its worker "
            "processes; the main process re-executes the blocks, one after the other",
        },
        "ed25519": {
            "verify_per_s_per_core": round(verify_per_s, 1),
            "verify_per_s_per_core_cpu": round(max(rate["per_s_cpu"] for rate in rates), 1),
            "batches_per_s": [round(rate["per_s"], 1) for rate in rates],
            "signatures_per_batch": verifications,
            "what": "ledger.crypto.verify of fresh (never verified) signatures on one core; "
            "the best of the batches before and after the audit",
        },
        "cores": cores,
        "bound_tx_per_s": round(bound, 1),
        "ratio": round(audit_tx_per_s / bound, 4),
        "ratio_is": "audit_tx_per_s / (verify_per_s_per_core * cores)",
        "machine": machine_info() | {"load_average_1m": load_average_1m()},
        "libraries": library_versions(),
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="a small chain (4 × 50): a smoke test, not figures"
    )
    parser.add_argument("--blocks", type=int, help="blocks in the chain (default 100)")
    parser.add_argument(
        "--transactions-per-block", type=int, help="anchors per block (default 1000)"
    )
    parser.add_argument("--workers", type=int, help="signature workers (default: one per core)")
    parser.add_argument(
        "--cache",
        default=str(Path(tempfile.gettempdir()) / "sceau-benchmark-audit"),
        help="where the built chain is kept between runs",
    )
    arguments = parser.parse_args(argv)
    arguments.blocks = arguments.blocks or (4 if arguments.quick else 100)
    arguments.transactions_per_block = arguments.transactions_per_block or (
        50 if arguments.quick else 1_000
    )
    print(json.dumps(run(arguments), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
