"""Receipts with many issuers in the state: their size and verification time, 0 to 10,000 issuers.

Usage::

    python benchmarks/issuers.py                  # 0, 1,000 and 10,000 issuers
    python benchmarks/issuers.py --quick          # a few-second smoke run (0, 50, 200)
    python benchmarks/issuers.py --issuers 0 --issuers 5000 --samples 500

Prints exactly one JSON document on stdout (progress goes to stderr).

Method
------
For each number N of issuers, in the same run, one after the other:

1. A real chain is built in a fresh LevelDB ``ChainStore`` (``ledger.store``), its blocks
   executed by the engine (``contracts.engine``, membership 1.1 and deeds 1.0) and certified by
   three of the four members (``ledger.devchain``): N issuers are admitted by governance
   transactions exactly as on a network — ``admit_issuers`` proposals of 50, each voted
   through by two more members (3 of 4) in the next block, 32 proposals per wave.
2. One block then anchors two acts: one by a member (``metropole-valbrune``, the same act for
   every N) and one by the issuer in the middle of the list, signed with its key (with no
   issuers, one by another member: every N gets a block of the same shape).
3. For each act, its receipt is built from the store as a node's API builds it, with the
   act's status at the tip (``ledger.receipt.build_receipt`` with the contracts' anchors): the
   status carries a *state proof* (sparse Merkle tree) of the act's record under the tip's
   state root, whose length grows like log2 of the number of entries in the state. The
   receipt's size is measured as the JSON a node serves (``receipt_json_bytes``) and as its
   canonical bytes; ``state_proof_siblings`` is the proof's length.
4. Once every chain is built, verification (``ledger.receipt.verify_receipt`` with the
   genesis, as ``sceau verify`` does) is timed in ``--samples`` rounds after a few warm-up
   rounds, each round verifying every receipt of every N once in turn — so that a busy moment
   of a shared machine falls on all of them alike — with ``ledger.crypto``'s cache of
   verified signatures emptied before each verification (an auditor's fresh process checks
   every signature): the median, 10th and 90th percentiles of the wall time, and the median
   of this process's CPU time (less sensitive to other processes).

5. The execution of a block of 200 anchors (not committed) is timed too, signed by the
   members in turn or by 200 distinct issuers, with a directory read afresh at the height or
   kept from the previous heights (a node keeps it across blocks that change nothing in
   membership): reading and decoding each issuer's record and key for every block was what
   made issuers' transactions dearer than members'.

``state_entries`` counts the keys of the state at the tip (every contract's). Compare the
figures of one report with each other: they come from the same run on the same machine.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ on the path, not the repository root: add the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import library_versions, load_average_1m, machine_info

from contracts.engine import Engine
from contracts.membership import ISSUERS_PER_ADMISSION_MAX
from contracts.registry import contract_refs, load_contracts, receipt_anchors
from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import Genesis, Transaction
from ledger.receipt import Receipt, build_receipt, verify_receipt
from ledger.store import ChainStore
from node.tools.territory import IssuerIdentity, make_issuers

SCHEMA_VERSION = 1
SEED = b"sceau benchmarks/issuers.py"
MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
PROPOSALS_PER_BLOCK_MAX = 32
"""Proposals one block carries (the contract keeps at most 64 open at once)."""
BLOCK_INTERVAL_MS = 1_000
WARMUP_RUNS = 5
EXECUTION_BLOCK = 200
"""Anchors in the block whose execution is timed (distinct issuers, when there are enough)."""
EXECUTION_ROUNDS = 3
DEFAULT_ISSUERS = (0, 1_000, 10_000)
QUICK_ISSUERS = (0, 50, 200)


def log(message: str) -> None:
    print(f"[issuers benchmark] {message}", file=sys.stderr, flush=True)


class Chain:
    """A LevelDB chain of the four members, one certified block at a time."""

    def __init__(self, path: Path) -> None:
        self.local = LocalConsortium.create(
            MEMBERS,
            consortium="Consortium de Valbrune (benchmark)",
            seed=SEED,
            contracts=contract_refs(()),
        )
        self.genesis = self.local.genesis
        self.engine = Engine(self.genesis, load_contracts(self.genesis))
        genesis_state = self.engine.genesis_state()
        self.store = ChainStore.create(path, self.genesis, genesis_state)
        self.live_keys = set(genesis_state)
        """The keys of the state at the tip (to count its entries)."""
        self.nonces = itertools.count()

    def transaction(
        self, key: crypto.PrivateKey, contract: str, action: str, args: dict[str, Any]
    ) -> Transaction:
        return Transaction.create(
            key,
            chain_id=self.local.chain_id,
            contract=contract,
            action=action,
            args=args,
            nonce=next(self.nonces),
            expiry_height=10**9,
        )

    def member(self, index: int) -> tuple[str, crypto.PrivateKey]:
        member_id = MEMBERS[index % len(MEMBERS)][0]
        return member_id, self.local.keys[member_id]

    def block(self, transactions: Sequence[Transaction]) -> None:
        """Execute, certify and append one block; every transaction must be accepted."""
        height = self.store.height + 1
        result = self.engine.execute(
            self.store,
            transactions,
            height=height,
            timestamp_ms=self.genesis.created_at_ms + height * BLOCK_INTERVAL_MS,
            proposer=MEMBERS[0][0],
        )
        assert not result.rejected, result.rejected[0][1]
        self.local.append(
            self.store,
            result.accepted,
            result.state_writes,
            timestamp_ms=self.genesis.created_at_ms + height * BLOCK_INTERVAL_MS,
        )
        for key, value in result.state_writes.items():
            if value is None:
                self.live_keys.discard(key)
            else:
                self.live_keys.add(key)

    def admit(self, issuers: Sequence[IssuerIdentity]) -> int:
        """Admit ``issuers`` by governance: proposals of 50 in a block, their votes in the
        next (two more members each: 3 of 4). Returns the governance transactions."""
        batches = [
            issuers[start : start + ISSUERS_PER_ADMISSION_MAX]
            for start in range(0, len(issuers), ISSUERS_PER_ADMISSION_MAX)
        ]
        count = 0
        for first in range(0, len(batches), PROPOSALS_PER_BLOCK_MAX):
            wave = list(enumerate(batches[first : first + PROPOSALS_PER_BLOCK_MAX], start=first))
            proposals = []
            for number, batch in wave:
                proposer, key = self.member(number)
                change = {"kind": "admit_issuers", "issuers": [i.application() for i in batch]}
                proposals.append(
                    (
                        number,
                        self.transaction(
                            key, "membership", "propose", {"proposer": proposer, "change": change}
                        ),
                    )
                )
            self.block([proposal for _, proposal in proposals])
            votes = []
            for number, proposal in proposals:
                for offset in (1, 2):
                    voter, key = self.member(number + offset)
                    args = {"proposal_id": proposal.tx_id, "voter": voter, "approve": True}
                    votes.append(self.transaction(key, "membership", "vote", args))
            self.block(votes)
            count += len(proposals) + len(votes)
        return count

    def anchor_numbered(self, issuer: str, key: crypto.PrivateKey, number: int) -> Transaction:
        """A distinct anchor of ``issuer`` (reference ``BENCH-<number>``)."""
        return self.transaction(
            key,
            "deeds",
            "anchor",
            {
                "issuer": issuer,
                "reference": f"BENCH-{number:06d}",
                "kind": "deliberation",
                "digest": hashlib.sha256(f"{issuer} {number}".encode()).digest(),
                "act_date": "2026-11-28",
                "title": "Acte de test",
            },
        )

    def anchor(self, issuer: str, key: crypto.PrivateKey) -> Transaction:
        """An anchor of a deliberation of ``issuer`` (the same act for the same issuer)."""
        return self.transaction(
            key,
            "deeds",
            "anchor",
            {
                "issuer": issuer,
                "reference": "2026-DEL-042",
                "kind": "deliberation",
                "digest": hashlib.sha256(f"{issuer} 2026-DEL-042".encode()).digest(),
                "act_date": "2026-11-28",
                "title": "Approbation du budget primitif",
            },
        )


def _clear_signature_caches() -> None:
    """Forget every verified signature and loaded key: an auditor's fresh process."""
    crypto._verify_once.cache_clear()
    crypto._load_public_key.cache_clear()


def time_execution(
    chain: Chain, issuers: Sequence[IssuerIdentity], count: int, rounds: int
) -> dict[str, Any]:
    """Median µs per transaction of executing (not committing) a block of ``count`` anchors
    signed by the members in turn, or by ``count`` distinct issuers, with the directory a node
    held before this change (read afresh at the height: ``fresh``) and the one it now keeps
    across blocks of acts (``kept``). Signatures are verified once beforehand (cached, as in
    a node that checked them at admission): what remains is execution."""
    height = chain.store.height + 1
    timestamp_ms = chain.genesis.created_at_ms + height * BLOCK_INTERVAL_MS
    blocks = {"members": [chain.anchor_numbered(*chain.member(i), i) for i in range(count)]}
    if issuers:
        signers = [issuers[i % len(issuers)] for i in range(count)]
        blocks["issuers"] = [chain.anchor_numbered(i.id, i.key, n) for n, i in enumerate(signers)]
    kept = chain.engine.directory(chain.store)
    figures: dict[str, list[float]] = {}
    for transactions in blocks.values():
        chain.engine.execute(  # warm-up: signatures verified, the kept directory filled
            chain.store, transactions, height=height, timestamp_ms=timestamp_ms,
            proposer=MEMBERS[0][0], directory=kept,
        )  # fmt: skip
    for _ in range(rounds):
        for signed_by, transactions in blocks.items():
            for name, directory in (("fresh", None), ("kept", kept)):
                started = time.perf_counter()
                result = chain.engine.execute(
                    chain.store, transactions, height=height, timestamp_ms=timestamp_ms,
                    proposer=MEMBERS[0][0], directory=directory,
                )  # fmt: skip
                elapsed = time.perf_counter() - started
                assert not result.rejected, result.rejected[0][1]
                figures.setdefault(f"{signed_by}_{name}_us_per_tx", []).append(
                    elapsed * 1e6 / count
                )
    return {
        "transactions_per_block": count,
        "rounds": rounds,
        **{name: round(statistics.median(values), 1) for name, values in figures.items()},
    }


def receipt_figures(chain: Chain, transaction: Transaction) -> tuple[Receipt, dict[str, Any]]:
    """The receipt of ``transaction`` with its status, and its sizes."""
    receipt = build_receipt(chain.store, transaction.tx_id, anchors=receipt_anchors())
    assert receipt is not None and receipt.status is not None
    plain = receipt.model_copy(update={"status": None})  # what `sceau anchor` saves
    return receipt, {
        "receipt_json_bytes": len(receipt.model_dump_json()),
        "receipt_canonical_bytes": len(receipt.to_bytes()),
        "receipt_without_status_json_bytes": len(plain.model_dump_json()),
        "state_proof_siblings": len(receipt.status.proof.siblings),
    }


def build(count: int, work: Path) -> tuple[dict[str, Any], dict[str, tuple[Genesis, Receipt]]]:
    """Build a chain with ``count`` issuers and anchor; its figures and its receipts."""
    chain = Chain(work / f"chain-{count}")
    try:
        issuers = make_issuers(count)
        started = time.perf_counter()
        governance = chain.admit(issuers)
        admit_s = time.perf_counter() - started
        acts = {"member_act": chain.anchor(*chain.member(0))}
        if issuers:
            middle = issuers[len(issuers) // 2]
            acts["issuer_act"] = chain.anchor(middle.id, middle.key)
        else:  # a second act all the same: the same block shape (and inclusion proof) for all N
            acts["other_member_act"] = chain.anchor(*chain.member(1))
        chain.block(list(acts.values()))
        log(f"{count} issuers: {chain.store.height} blocks, {len(chain.live_keys)} state entries")
        execution = time_execution(chain, issuers, EXECUTION_BLOCK, EXECUTION_ROUNDS)
        entry: dict[str, Any] = {
            "issuers": count,
            "state_entries": len(chain.live_keys),
            "height": chain.store.height,
            "governance_transactions": governance,
            "admission_build_s": round(admit_s, 2),
            "execution": execution,
        }
        receipts = {}
        for name, transaction in acts.items():
            if name == "other_member_act":
                continue
            receipt, figures = receipt_figures(chain, transaction)
            entry[name] = figures
            receipts[name] = (chain.genesis, receipt)
        if "issuer_act" in entry:
            entry["issuer_act"]["issuer"] = issuers[len(issuers) // 2].id
        return entry, receipts
    finally:
        chain.store.close()


def _clear_signature_caches() -> None:
    """Forget every verified signature and loaded key: an auditor's fresh process."""
    crypto._verify_once.cache_clear()
    crypto._load_public_key.cache_clear()


def time_verifications(
    receipts: dict[tuple[int, str], tuple[Genesis, Receipt]], samples: int
) -> dict[tuple[int, str], dict[str, Any]]:
    """Wall and CPU time of ``verify_receipt`` for every receipt, ``samples`` rounds in which
    each receipt is verified once in turn (so that the machine's noise falls on all alike),
    signature caches emptied before each verification."""
    anchors = receipt_anchors()
    wall: dict[tuple[int, str], list[float]] = {name: [] for name in receipts}
    cpu: dict[tuple[int, str], list[float]] = {name: [] for name in receipts}
    for round_number in range(WARMUP_RUNS + samples):
        for name, (genesis, receipt) in receipts.items():
            _clear_signature_caches()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            verify_receipt(receipt, genesis, None, anchors=anchors)
            wall1, cpu1 = time.perf_counter(), time.process_time()
            if round_number >= WARMUP_RUNS:
                wall[name].append((wall1 - wall0) * 1e6)
                cpu[name].append((cpu1 - cpu0) * 1e6)
    figures = {}
    for name, durations in wall.items():
        durations.sort()
        figures[name] = {
            "verify_median_us": round(statistics.median(durations), 1),
            "verify_p10_us": round(durations[len(durations) // 10], 1),
            "verify_p90_us": round(durations[(len(durations) * 9) // 10], 1),
            "verify_cpu_median_us": round(statistics.median(cpu[name]), 1),
            "verify_samples": samples,
        }
    return figures


def comparison(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The member act's figures of each N against N = the smallest, side by side."""
    base = results[0]["member_act"]
    return {
        str(entry["issuers"]): {
            "state_entries": entry["state_entries"],
            "log2_state_entries": round(_log2(entry["state_entries"]), 1),
            "state_proof_siblings": entry["member_act"]["state_proof_siblings"],
            "receipt_json_bytes_delta": entry["member_act"]["receipt_json_bytes"]
            - base["receipt_json_bytes"],
            "verify_median_ratio": round(
                entry["member_act"]["verify_median_us"] / base["verify_median_us"], 3
            ),
            "verify_cpu_median_ratio": round(
                entry["member_act"]["verify_cpu_median_us"] / base["verify_cpu_median_us"], 3
            ),
        }
        for entry in results
    }


def _log2(value: int) -> float:
    import math

    return math.log2(value) if value > 0 else 0.0


def run(counts: Sequence[int], samples: int, quick: bool) -> dict[str, Any]:
    machine = machine_info() | {"load_average_1m_before": load_average_1m()}
    results = []
    receipts: dict[tuple[int, str], tuple[Genesis, Receipt]] = {}
    with tempfile.TemporaryDirectory(prefix="sceau-issuers-") as temporary:
        for count in counts:
            log(f"building a chain with {count} issuers")
            entry, built = build(count, Path(temporary))
            results.append(entry)
            receipts.update({(count, name): value for name, value in built.items()})
    log(f"timing {samples} verifications of each of {len(receipts)} receipts, in turn")
    timings = time_verifications(receipts, samples)
    for entry in results:
        for (count, name), figures in timings.items():
            if count == entry["issuers"]:
                entry[name].update(figures)
    return {
        "benchmark": "issuers",
        "schema_version": SCHEMA_VERSION,
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": quick,
        "method": {
            "members": len(MEMBERS),
            "certificate_signers": 3,
            "issuers_per_proposal": ISSUERS_PER_ADMISSION_MAX,
            "verify_samples": samples,
            "verify_warmup_runs": WARMUP_RUNS,
            "signature_caches_cleared_per_run": True,
            "receipt_with_status": True,
        },
        "results": results,
        "comparison": comparison(results),
        "machine": machine,
        "libraries": library_versions(),
    }


def _counts(values: Sequence[int] | None, quick: bool) -> Iterator[int]:
    yield from sorted(set(values or (QUICK_ISSUERS if quick else DEFAULT_ISSUERS)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--issuers",
        type=int,
        action="append",
        help="issuers in the state (repeat it; default 0, 1000 and 10000)",
    )
    parser.add_argument("--samples", type=int, default=None, help="timed verifications (300)")
    parser.add_argument("--quick", action="store_true", help="a few-second smoke run")
    arguments = parser.parse_args(argv)
    counts = list(_counts(arguments.issuers, arguments.quick))
    if any(not 0 <= count <= 10_000 for count in counts):
        parser.error("--issuers is 0 to 10000")
    samples = arguments.samples or (20 if arguments.quick else 300)
    if samples < 1:
        parser.error("--samples must be positive")
    print(json.dumps(run(counts, samples, arguments.quick), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
