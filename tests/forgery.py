"""What a colluding quorum of members can build on its own: a second history of the chain.

The split-view attack (tests/test_split_view.py, docs/witnesses.md): members holding a quorum of
the member set in force take the genuine chain up to some height, then certify *other* blocks
from the next height on. Nothing here bypasses a check: every forged block is built by the real
contract engine (:meth:`contracts.engine.Engine.build_proposal`) over a real LevelDB store, its
header carries the log fields the engine computed, it is certified by commit votes of the
colluders' own member keys (as :meth:`ledger.devchain.LocalConsortium.certify` does), and its
checkpoint is a note signed by the same keys. Such a history passes every check that counts
member signatures, because a quorum did sign it; only someone who saw the other history — a
witness — can tell.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from contracts.engine import Engine, ProposalLimits
from contracts.registry import load_contracts
from ledger import crypto, tlog
from ledger.bundle import BundleWriter, parse_frames
from ledger.devchain import LocalConsortium
from ledger.model import Block, BlockHeader, Genesis, Transaction, quorum_size
from ledger.note import AddCheckpointRequest, Checkpoint, Note, origin_for, sign_note
from ledger.store import ChainStore

__all__ = ["ForgedHistory", "document_of"]

BLOCK_INTERVAL_MS = 1_000
"""The forged blocks follow each other one second apart (any later time would do)."""
EXPIRY_BLOCKS = 100


def document_of(label: str) -> bytes:
    """The bytes of a (stand-in) PDF document; each label gives another document."""
    return f"%PDF-1.7\n% {label}\n".encode()


@dataclass(repr=False)
class ForgedHistory:
    """A chain store that a colluding quorum extends with blocks of its own choosing."""

    genesis: Genesis
    store: ChainStore
    engine: Engine
    colluders: Mapping[str, crypto.PrivateKey]
    """The colluding members' keys (their ``node.pem``), by member id."""
    nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @classmethod
    def from_bundle(
        cls, path: Path, bundle: bytes, colluders: Mapping[str, crypto.PrivateKey]
    ) -> ForgedHistory:
        """A fresh store at ``path`` holding the genuine chain of ``bundle`` (frame 0 and the
        blocks a member's ``GET /v1/bundle`` gave), each block re-executed by the engine."""
        genesis, entries = parse_frames(bundle, 0)
        assert genesis is not None, "the bundle starts with its genesis"
        engine = Engine(genesis, load_contracts(genesis))
        store = ChainStore.create(path, genesis, engine.genesis_state())
        for entry in entries:
            result = engine.process_proposal(store, entry.block)
            store.append_block(entry.block, entry.certificate, result.state_writes)
        members = engine.members(store)
        assert len(colluders) >= quorum_size(len(members)), "colluders hold a quorum"
        return cls(genesis=genesis, store=store, engine=engine, colluders=colluders)

    @property
    def origin(self) -> str:
        return origin_for(self.genesis.chain_id)

    def anchor(
        self, issuer: str, reference: str, document: bytes, *, title: str | None = None
    ) -> Transaction:
        """A deeds ``anchor`` of ``document`` for ``issuer``, signed by that colluder's key."""
        return Transaction.create(
            self.colluders[issuer],
            chain_id=self.genesis.chain_id,
            contract="deeds",
            action="anchor",
            args={
                "issuer": issuer,
                "reference": reference,
                "kind": "deliberation",
                "digest": hashlib.sha256(document).digest(),
                "act_date": "2026-11-28",
                "title": title or f"Délibération {reference}",
            },
            nonce=next(self.nonces),
            expiry_height=self.store.height + EXPIRY_BLOCKS,
        )

    def certify(self, *transactions: Transaction) -> Block:
        """Build the next block with ``transactions`` (all must be accepted), certify it with
        the colluders' commit votes, append it; returns it."""
        members = self.engine.members(self.store)
        height = self.store.height + 1
        # The proposer must be the primary of the header's view: take the first view whose
        # primary is a colluder.
        view = next(v for v in range(len(members)) if members[v].id in self.colluders)
        proposer = members[view].id
        tip = self.store.block(self.store.height).header if self.store.height else None
        timestamp_ms = (tip.timestamp_ms if tip else self.genesis.created_at_ms) + BLOCK_INTERVAL_MS
        parameters = self.genesis.parameters
        result = self.engine.build_proposal(
            self.store,
            transactions,
            height=height,
            timestamp_ms=timestamp_ms,
            proposer=proposer,
            limits=ProposalLimits(
                transactions_max=parameters.block_transactions_max,
                bytes_max=parameters.block_bytes_max,
            ),
        )
        assert not result.rejected and len(result.accepted) == len(transactions), result.rejected
        header = BlockHeader(
            chain_id=self.genesis.chain_id,
            height=height,
            prev_hash=self.store.tip.block_hash,
            timestamp_ms=timestamp_ms,
            proposer=proposer,
            view=view,
            tx_count=len(result.accepted),
            tx_root=result.tx_root,
            state_root=result.state_root,
            members_hash=result.members_hash,
            **result.header_log_fields(),
        )
        block = Block(header=header, transactions=result.accepted)
        signing = LocalConsortium(genesis=self.genesis, keys=dict(self.colluders))
        certificate = signing.certify(block, signers=sorted(self.colluders), members=members)
        self.store.append_block(block, certificate, result.state_writes)
        return block

    def checkpoint(self) -> Note:
        """The checkpoint of the forged tip, signed by every colluder as the members sign
        theirs (note signatures named after the origin), and kept by the forged store so that
        its receipts carry it."""
        header = self.store.block(self.store.height).header
        assert header.log_size is not None, "a format-2 chain"
        text = Checkpoint(self.origin, header.log_size, header.log_root).text()
        note = Note(
            text,
            tuple(sign_note(text, self.origin, key) for _, key in sorted(self.colluders.items())),
        )
        self.store.save_checkpoint(note.to_bytes())
        return note

    def write_bundle(self, path: Path) -> None:
        """The forged chain as a bundle (``sceau-bundle/v1``), as ``sceau export`` writes one."""
        writer = BundleWriter.open(path, self.genesis)
        try:
            for height in range(1, self.store.height + 1):
                writer.append(self.store.block(height), self.store.certificate(height))
        finally:
            writer.close()

    def add_checkpoint_request(self, note: Note, old_size: int) -> bytes:
        """The add-checkpoint body that asks a witness to move from ``old_size`` to ``note``,
        with the consistency proof the forged log gives (the best the colluders can do)."""
        size = Checkpoint.from_note(note).size
        proof: Sequence[bytes] = ()
        if 0 < old_size < size:
            proof = tlog.consistency_proof(old_size, size, self.store.log_hash)
        return AddCheckpointRequest(old_size, tuple(proof), note).to_bytes()
