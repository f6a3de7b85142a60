"""A small format-2 chain for the tests of the log's proofs, tiles and checkpoints.

Built by the real contract engine (membership and deeds) over a real LevelDB store, each block
certified by a quorum of the member set in force; a fifth member is admitted at height 2::

    height 1  three acts anchored                         log entries 0..2
    height 2  admission of a fifth member (3 transactions)  entries 3..5   -> in force at 3
    height 3  the newcomer's act                          entry 6
    height 4  two acts                                    entries 7..8

:meth:`LogChain.checkpoint` signs a consortium checkpoint with chosen members' keys (as the
members' nodes do), :meth:`LogChain.cosign` adds a witness's cosignature.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contracts.engine import Engine
from contracts.registry import load_contracts
from ledger import crypto, merkle
from ledger.devchain import LocalConsortium
from ledger.model import Block, BlockHeader, ContractRef, Member, Transaction, quorum_size, sha256
from ledger.note import Checkpoint, KeyType, Note, NoteVerifierKey, cosign, origin_for, sign_note
from ledger.store import ChainStore

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
METROPOLE, VILLE, SAINT_LEGER, SYNDICAT = (member_id for member_id, _ in MEMBERS)
NEWCOMER = "agglo-val-d-orge"
CONTRACTS = (
    ContractRef(name="membership", version="1.0"),
    ContractRef(name="deeds", version="1.0"),
)
SEED = b"test-log-chain"
FIRST_BLOCK_MS = 1_796_029_200_000
BLOCK_INTERVAL_MS = 60_000
COSIGNED_AT_S = 1_796_030_000


def key_for(label: str) -> crypto.PrivateKey:
    """A deterministic key no genesis member holds (witnesses, the newcomer)."""
    return crypto.key_from_seed(sha256(SEED + b"/" + label.encode()))


def document_of(reference: str) -> bytes:
    return f"%PDF-1.7\n% Acte {reference}\n".encode()


def witness_vkey(name: str) -> str:
    """The cosignature verifier key of the test witness ``name``."""
    return NoteVerifierKey.for_private_key(name, KeyType.COSIGNATURE_V1, key_for(name)).vkey


@dataclass(repr=False)
class LogChain:
    consortium: LocalConsortium
    keys: dict[str, crypto.PrivateKey]
    engine: Engine
    store: ChainStore
    nonce: int = 0
    acts: dict[str, Transaction] = field(default_factory=dict)

    @classmethod
    def build(cls, path: Path) -> LogChain:
        base = LocalConsortium.create(MEMBERS, seed=SEED, contracts=CONTRACTS, format_version=2)
        keys = dict(base.keys)
        consortium = LocalConsortium(genesis=base.genesis, keys=keys)
        engine = Engine(consortium.genesis, load_contracts(consortium.genesis))
        store = ChainStore.create(path, consortium.genesis, engine.genesis_state())
        chain = cls(consortium=consortium, keys=keys, engine=engine, store=store)
        chain.commit(*(chain.anchor(METROPOLE, f"2026-DEL-00{n}") for n in range(1, 4)))
        newcomer_key = key_for(NEWCOMER)
        keys[NEWCOMER] = newcomer_key
        newcomer = Member(
            id=NEWCOMER,
            name="Agglomération du Val d'Orge",
            public_key=crypto.public_key_bytes(newcomer_key),
            endpoint="10.20.0.5:8600",
        )
        proposal = chain.transaction(
            METROPOLE,
            "membership",
            "propose",
            proposer=METROPOLE,
            change={"kind": "admit", "member": newcomer.to_canonical()},
        )
        votes = [
            chain.transaction(
                voter, "membership", "vote", proposal_id=proposal.tx_id, voter=voter, approve=True
            )
            for voter in (VILLE, SAINT_LEGER)
        ]
        chain.commit(proposal, *votes)
        chain.commit(chain.anchor(NEWCOMER, "2026-DEL-101"))
        chain.commit(chain.anchor(VILLE, "2026-DEL-201"), chain.anchor(VILLE, "2026-DEL-202"))
        assert chain.store.log_size == 9 and chain.store.member_set_changes() == [3]
        return chain

    @property
    def genesis(self) -> Any:
        return self.consortium.genesis

    @property
    def origin(self) -> str:
        return origin_for(self.genesis.chain_id)

    def transaction(self, signer: str, contract: str, action: str, **args: Any) -> Transaction:
        self.nonce += 1
        return Transaction.create(
            self.keys[signer],
            chain_id=self.genesis.chain_id,
            contract=contract,
            action=action,
            args=args,
            nonce=self.nonce,
            expiry_height=1_000_000,
        )

    def anchor(self, issuer: str, reference: str) -> Transaction:
        transaction = self.transaction(
            issuer,
            "deeds",
            "anchor",
            issuer=issuer,
            reference=reference,
            kind="deliberation",
            digest=hashlib.sha256(document_of(reference)).digest(),
            act_date="2026-11-28",
            title=f"Délibération {reference}",
        )
        self.acts[reference] = transaction
        return transaction

    def commit(self, *transactions: Transaction) -> Block:
        height = self.store.height + 1
        return commit_block(
            self.engine,
            self.store,
            self.consortium,
            transactions,
            timestamp_ms=FIRST_BLOCK_MS + (height - 1) * BLOCK_INTERVAL_MS,
        )

    def checkpoint(self, height: int | None = None, signers: Sequence[str] | None = None) -> Note:
        """The consortium checkpoint of block ``height``'s header (default the tip), signed by
        ``signers`` (default: the first quorum of the set in force there)."""
        header = self.store.block(height or self.store.height).header
        text = Checkpoint(self.origin, header.log_size, header.log_root).text()
        if signers is None:
            in_force = [NEWCOMER, METROPOLE, VILLE, SAINT_LEGER] if header.height >= 3 else None
            signers = in_force or [METROPOLE, VILLE, SAINT_LEGER]
        return Note(
            text, tuple(sign_note(text, self.origin, self.keys[signer]) for signer in signers)
        )

    def keep(self, note: Note) -> bytes:
        """Keep ``note`` as the store's consortium checkpoint; its bytes."""
        self.store.save_checkpoint(note.to_bytes())
        return note.to_bytes()


def cosigned(note: Note, *witnesses: str) -> Note:
    """``note`` with the cosignature of each test witness named."""
    return note.with_signatures(
        *(cosign(note.text, name, key_for(name), COSIGNED_AT_S) for name in witnesses)
    )


def commit_block(
    engine: Engine,
    store: ChainStore,
    consortium: LocalConsortium,
    transactions: Sequence[Transaction],
    *,
    timestamp_ms: int,
) -> Block:
    """Execute ``transactions`` as the next block on ``store`` (all must apply), proposed in
    view ``height − 1`` by that view's primary, certified by the first quorum of the member set
    in force, and appended: a block as the consensus would commit it, without a network."""
    members = engine.members(store)
    height = store.height + 1
    view = height - 1
    proposer = members[view % len(members)].id
    result = engine.execute(
        store, transactions, height=height, timestamp_ms=timestamp_ms, proposer=proposer
    )
    assert not result.rejected, result.rejected
    header = BlockHeader(
        chain_id=consortium.genesis.chain_id,
        height=height,
        prev_hash=store.tip.block_hash,
        timestamp_ms=timestamp_ms,
        proposer=proposer,
        view=view,
        tx_count=len(result.accepted),
        tx_root=merkle.root([transaction.encoded for transaction in result.accepted]),
        state_root=result.state_root,
        members_hash=result.members_hash,
        **result.header_log_fields(),
    )
    block = Block(header=header, transactions=result.accepted)
    signers = [member.id for member in members][: quorum_size(len(members))]
    certificate = consortium.certify(block, members=members, signers=signers)
    store.append_block(block, certificate, result.state_writes)
    return block
