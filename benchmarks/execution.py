"""Executing a block: CPU per transaction to build, validate and append it, on a real chain.

Usage::

    python benchmarks/execution.py [--quick] [--rounds N] [--block N]

Prints exactly one JSON document on stdout (progress goes to stderr).

Method
------
A real format-2 chain is built in a fresh LevelDB ``ChainStore`` by the engine (membership
1.1, deeds 1.0), each block certified by three of the four members (``ledger.devchain``):
``--issuers`` issuers admitted by governance as on a network (proposals of 50, voted by two
more members), then ``--acts`` acts anchored in blocks of 500, half by members, half by
issuers. Then, ``--rounds`` times, one block of ``--block`` new anchors (half signed by the
members in turn, half by distinct issuers) goes through what a node does with it:

* ``admit``: ``Engine.check`` of each transaction (the mempool's door verifies its
  signature; ``crypto``'s cache of verified signatures is emptied first, as for transactions
  this node has never seen): the one signature check each node must make;
* ``build``: ``Engine.build_proposal`` (the primary), signatures already verified, with the
  directory kept from the previous height as a node keeps it (``keep_reads_of``);
* ``validate``: ``Engine.process_proposal`` of the same block decoded from its bytes, on a
  second store holding the same chain (a replica gets the block from the wire and has not
  built it; decoding is not timed), signatures already verified;
* ``append``: the replica's ``ChainStore.append_block`` with the validation's state writes
  (``commit``); the primary then appends the block too, untimed.

Each phase is timed with ``time.process_time_ns`` (this process's CPU, robust to a busy
machine; blind to disk waits, which ``append``'s synced write batch has) with the garbage
collector disabled; a round appends its block, so the state grows a little from round to
round. The report gives the median per transaction over the rounds (and the minimum, the
least disturbed by other processes on a shared machine), and the ratio of a node's
CPU (build or validate, plus append) to the bound it cannot go below: the Ed25519 verification
of each transaction, measured in the same run (``bound_verify_us_per_tx``).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import itertools
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# Run as a script, Python puts benchmarks/ on the path, not the repository root: add the root.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from machine import library_versions, load_average_1m, machine_info

from contracts.engine import Engine, ExecutionResult, ProposalLimits
from contracts.membership import ISSUERS_PER_ADMISSION_MAX, Directory
from contracts.registry import contract_refs, load_contracts
from ledger import crypto
from ledger.devchain import LocalConsortium
from ledger.model import Block, BlockHeader, Transaction, quorum_size
from ledger.store import ChainStore
from node.tools.territory import IssuerIdentity, make_issuers

SCHEMA_VERSION = 1
SEED = b"sceau benchmarks/execution.py"
MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
PROPOSALS_PER_BLOCK_MAX = 32
"""Proposals one block carries (the contract keeps at most 64 open at once)."""
SETUP_BLOCK = 500
BLOCK_INTERVAL_MS = 1_000


def progress(message: str) -> None:
    print(f"[execution benchmark] {message}", file=sys.stderr, flush=True)


class Chain:
    """A LevelDB format-2 chain of the four members, one certified block at a time."""

    def __init__(self, path: Path) -> None:
        self.local = LocalConsortium.create(
            MEMBERS,
            consortium="Consortium de Valbrune (benchmark)",
            seed=SEED,
            contracts=contract_refs(()),
            format_version=2,
        )
        self.genesis = self.local.genesis
        self.engine = Engine(self.genesis, load_contracts(self.genesis))
        genesis_state = self.engine.genesis_state()
        self.store = ChainStore.create(path / "primary", self.genesis, genesis_state)
        self.replica = ChainStore.create(path / "replica", self.genesis, genesis_state)
        """The same chain in a second store: a replica validates a block it did not build."""
        self.nonces = itertools.count()
        self.directories: dict[Path, Directory] = {}
        self.acts = itertools.count()

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

    def next_header(self, result: ExecutionResult, view: int = 0) -> BlockHeader:
        height = self.store.height + 1
        return BlockHeader(
            chain_id=self.local.chain_id,
            height=height,
            prev_hash=self.store.tip.block_hash,
            timestamp_ms=self.timestamp_ms(height),
            proposer=self.proposer(view),
            view=view,
            tx_count=len(result.accepted),
            tx_root=result.tx_root,
            state_root=result.state_root,
            members_hash=result.members_hash,
            **result.header_log_fields(),
        )

    def directory(self, store: ChainStore) -> Directory:
        """The directory in force on ``store``, keeping what the one of the previous height
        read of issuers and keys, as a node does after a block that changed no membership
        (``ChainApplication._refresh_directory``; the blocks timed here are acts only)."""
        directory = self.engine.directory(store)
        previous = self.directories.get(store.path)
        if previous is not None and previous.members == directory.members:
            directory.keep_reads_of(previous)
        self.directories[store.path] = directory
        return directory

    def timestamp_ms(self, height: int) -> int:
        return self.genesis.created_at_ms + height * BLOCK_INTERVAL_MS

    def proposer(self, view: int) -> str:
        return MEMBERS[view % len(MEMBERS)][0]

    def certify(self, block: Block) -> Any:
        members = self.engine.members(self.store)
        signers = [member.id for member in members][: quorum_size(len(members))]
        return self.local.certify(block, members=members, signers=signers)

    def block(self, transactions: Sequence[Transaction]) -> None:
        """Execute, certify and append one block; every transaction must be accepted."""
        height = self.store.height + 1
        result = self.engine.execute(
            self.store,
            transactions,
            height=height,
            timestamp_ms=self.timestamp_ms(height),
            proposer=self.proposer(0),
        )
        assert not result.rejected, result.rejected[0][1]
        block = Block(header=self.next_header(result), transactions=result.accepted)
        certificate = self.certify(block)
        self.store.append_block(block, certificate, result.state_writes)
        self.replica.append_block(block, certificate, result.state_writes)

    def admit(self, issuers: Sequence[IssuerIdentity]) -> None:
        """Admit ``issuers`` by governance: proposals of 50 in a block, their votes in the
        next (two more members each: 3 of 4)."""
        batches = [
            issuers[start : start + ISSUERS_PER_ADMISSION_MAX]
            for start in range(0, len(issuers), ISSUERS_PER_ADMISSION_MAX)
        ]
        for first in range(0, len(batches), PROPOSALS_PER_BLOCK_MAX):
            wave = list(enumerate(batches[first : first + PROPOSALS_PER_BLOCK_MAX], start=first))
            proposals = []
            for number, batch in wave:
                proposer, key = self.member(number)
                change = {"kind": "admit_issuers", "issuers": [i.application() for i in batch]}
                arguments = {"proposer": proposer, "change": change}
                proposals.append(
                    (number, self.transaction(key, "membership", "propose", arguments))
                )
            self.block([proposal for _, proposal in proposals])
            votes = []
            for number, proposal in proposals:
                for offset in (1, 2):
                    voter, key = self.member(number + offset)
                    arguments = {"proposal_id": proposal.tx_id, "voter": voter, "approve": True}
                    votes.append(self.transaction(key, "membership", "vote", arguments))
            self.block(votes)

    def anchors(self, issuers: Sequence[IssuerIdentity], count: int) -> list[Transaction]:
        """``count`` new acts: even ones by the members in turn, odd ones by issuers in turn."""
        transactions = []
        for position in range(count):
            number = next(self.acts)
            if position % 2 == 0 or not issuers:
                issuer, key = self.member(number)
            else:
                identity = issuers[number % len(issuers)]
                issuer, key = identity.id, identity.key
            transactions.append(
                self.transaction(
                    key,
                    "deeds",
                    "anchor",
                    {
                        "issuer": issuer,
                        "reference": f"BENCH-{number:07d}",
                        "kind": "deliberation",
                        "digest": hashlib.sha256(f"{issuer} {number}".encode()).digest(),
                        "act_date": "2026-11-28",
                        "title": f"Délibération n° {number} du conseil",
                    },
                )
            )
        return transactions


def cpu_ns(operation: Callable[[], Any]) -> tuple[int, Any]:
    """This process's CPU time of one call, the garbage collector off; and its value."""
    gc.collect()
    gc.disable()
    try:
        start = time.process_time_ns()
        value = operation()
        return time.process_time_ns() - start, value
    finally:
        gc.enable()


def clear_signature_caches() -> None:
    """Forget every verified signature: transactions this node has never seen."""
    crypto._verify_once.cache_clear()


def one_round(chain: Chain, issuers: Sequence[IssuerIdentity], size: int) -> dict[str, float]:
    """One block through admit, build, validate and append; CPU µs per transaction of each."""
    engine, store = chain.engine, chain.store
    transactions = chain.anchors(issuers, size)
    for transaction in transactions:  # as they arrive: decoded, id and bytes computed
        transaction.tx_id  # noqa: B018
    directory = chain.directory(store)
    height = store.height + 1
    clear_signature_caches()
    admit_ns, _ = cpu_ns(lambda: [engine.check(transaction) for transaction in transactions])
    parameters = directory.parameters
    limits = ProposalLimits(
        transactions_max=parameters.block_transactions_max,
        bytes_max=parameters.block_bytes_max,
    )
    build_ns, built = cpu_ns(
        lambda: engine.build_proposal(
            store,
            transactions,
            height=height,
            timestamp_ms=chain.timestamp_ms(height),
            proposer=chain.proposer(0),
            limits=limits,
            directory=directory,
        )
    )
    assert not built.rejected and len(built.accepted) == size, built.rejected[:1]
    block = Block(header=chain.next_header(built), transactions=built.accepted)
    received = Block.from_bytes(block.to_bytes())
    for transaction in received.transactions:  # the replica admitted them from gossip
        transaction.tx_id  # noqa: B018
    replica = chain.replica
    replica_directory = chain.directory(replica)
    validate_ns, validated = cpu_ns(
        lambda: engine.process_proposal(replica, received, replica_directory)
    )
    certificate = chain.certify(received)
    append_ns, _ = cpu_ns(
        lambda: replica.append_block(received, certificate, validated.state_writes)
    )
    store.append_block(block, certificate, built.state_writes)
    assert store.tip.block_hash == replica.tip.block_hash == block.block_hash
    clear_signature_caches()
    verify_ns, _ = cpu_ns(
        lambda: [transaction.signature_is_valid() for transaction in transactions]
    )
    return {
        name: value / 1000 / size
        for name, value in (
            ("admit", admit_ns),
            ("build", build_ns),
            ("validate", validate_ns),
            ("append", append_ns),
            ("bound_verify", verify_ns),
        )
    }


def run(arguments: argparse.Namespace) -> dict[str, Any]:
    started_at = datetime.now(UTC)
    start_ns = time.perf_counter_ns()
    load_start = load_average_1m()
    with tempfile.TemporaryDirectory(prefix="sceau-bench-execution-") as work:
        chain = Chain(Path(work) / "chain")
        try:
            progress(f"admitting {arguments.issuers} issuers")
            issuers = make_issuers(arguments.issuers)
            chain.admit(issuers)
            progress(f"anchoring {arguments.acts} acts")
            for start in range(0, arguments.acts, SETUP_BLOCK):
                chain.block(chain.anchors(issuers, min(SETUP_BLOCK, arguments.acts - start)))
            state_entries_before = sum(1 for _ in chain.store.state_items(b""))
            progress(f"{arguments.rounds} rounds of a block of {arguments.block} anchors")
            one_round(chain, issuers, arguments.block)  # warm-up
            rounds = [one_round(chain, issuers, arguments.block) for _ in range(arguments.rounds)]
            height = chain.store.height
        finally:
            chain.store.close()
            chain.replica.close()
    medians = {
        name: round(statistics.median(entry[name] for entry in rounds), 2) for name in rounds[0]
    }
    bound = medians["bound_verify"]
    node = {
        "primary_build_append": round(medians["build"] + medians["append"], 2),
        "replica_validate_append": round(medians["validate"] + medians["append"], 2),
    }
    return {
        "benchmark": "execution",
        "schema_version": SCHEMA_VERSION,
        "quick": arguments.quick,
        "timestamp": started_at.isoformat(timespec="seconds"),
        "duration_s": round((time.perf_counter_ns() - start_ns) / 1e9, 1),
        "machine": machine_info()
        | {"load_average_1m_start": load_start, "load_average_1m_end": load_average_1m()},
        "libraries": library_versions(),
        "chain": {
            "issuers": arguments.issuers,
            "acts_before": arguments.acts,
            "state_entries_before": state_entries_before,
            "height_after": height,
            "transactions_per_block": arguments.block,
            "rounds": arguments.rounds,
        },
        "method": "time.process_time_ns per phase, garbage collector off; median over rounds",
        "cpu_us_per_tx": medians,
        "cpu_us_per_tx_min": {
            name: round(min(entry[name] for entry in rounds), 2) for name in rounds[0]
        },
        "cpu_us_per_tx_node": node,
        "ratio_bound_to_node": {
            name: round(bound / value, 3) if value else None for name, value in node.items()
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small chain, few rounds")
    parser.add_argument("--rounds", type=int, help="timed blocks (default 9, quick 3)")
    parser.add_argument("--block", type=int, help="anchors per block (default 300, quick 100)")
    parser.add_argument("--issuers", type=int, help="issuers admitted (default 1000, quick 50)")
    parser.add_argument("--acts", type=int, help="acts anchored before (default 3000, quick 200)")
    arguments = parser.parse_args(argv)
    quick = arguments.quick
    defaults = {"rounds": (9, 3), "block": (300, 100), "issuers": (1000, 50), "acts": (3000, 200)}
    for name, (full, small) in defaults.items():
        if getattr(arguments, name) is None:
            setattr(arguments, name, small if quick else full)
    if not 1 <= arguments.rounds <= 1000 or not 1 <= arguments.block <= 1000:
        parser.error("--rounds and --block are between 1 and 1000")
    print(json.dumps(run(arguments), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
