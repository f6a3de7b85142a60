"""Build certified chains locally, with every member's key at hand.

In a running consortium each member holds only its own key and certificates come out of the
consensus protocol. Tests, demos and benchmarks need real chains without a network: this
module holds the keys of a whole consortium and builds blocks and commit certificates with
them, using exactly the formats and signatures that the consensus produces. Nothing here is a
stand-in: a chain built here verifies like any other.

Keys can be derived from a seed so that two processes (a test and its child) build the same
consortium. Such keys are for tests only: they are as secret as the seed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ledger import crypto, domains, merkle
from ledger.model import (
    Block,
    BlockHeader,
    CommitCertificate,
    ConsensusParameters,
    ContractRef,
    Genesis,
    Member,
    Transaction,
    quorum_size,
    sha256,
    vote_payload,
)

if TYPE_CHECKING:  # the store (and plyvel) only for type checking: the simulator uses this too
    from ledger.store import ChainStore

__all__ = ["LocalConsortium"]


@dataclass(frozen=True, slots=True)
class LocalConsortium:
    """A genesis and the private key of each of its members."""

    genesis: Genesis
    keys: Mapping[str, crypto.PrivateKey]

    @classmethod
    def create(
        cls,
        members: Sequence[tuple[str, str]],
        *,
        consortium: str = "Consortium de test",
        created_at_ms: int = 1_767_225_600_000,
        seed: bytes | None = None,
        parameters: ConsensusParameters | None = None,
        contracts: Sequence[ContractRef] = (),
        base_port: int = 27_000,
        format_version: int = 1,
    ) -> LocalConsortium:
        """A consortium of ``members`` given as ``(id, display name)`` pairs.

        With ``seed`` the keys are derived deterministically (SHA-256 of seed and member id);
        without it they are random.
        """
        keys = {
            member_id: (
                crypto.key_from_seed(sha256(seed + member_id.encode()))
                if seed is not None
                else crypto.generate_key()
            )
            for member_id, _ in members
        }
        genesis = Genesis(
            consortium=consortium,
            created_at_ms=created_at_ms,
            members=tuple(
                Member(
                    id=member_id,
                    name=name,
                    public_key=crypto.public_key_bytes(keys[member_id]),
                    endpoint=f"127.0.0.1:{base_port + index}",
                )
                for index, (member_id, name) in enumerate(members)
            ),
            parameters=parameters or ConsensusParameters(),
            contracts=tuple(contracts),
            format_version=format_version,
        )
        return cls(genesis=genesis, keys=keys)

    @property
    def chain_id(self) -> bytes:
        return self.genesis.chain_id

    def certify(
        self,
        block: Block,
        *,
        signers: Sequence[str] | None = None,
        members: Sequence[Member] | None = None,
        view: int | None = None,
    ) -> CommitCertificate:
        """A commit certificate for ``block`` signed by ``signers`` in ``view``.

        By default the first quorum of ``members`` (the genesis member set) signs, in the view
        the block was proposed in.
        """
        view = block.header.view if view is None else view
        member_set = members if members is not None else self.genesis.members
        if signers is None:
            signers = [member.id for member in member_set][: quorum_size(len(member_set))]
        domain = crypto.Domain(domains.COMMIT, self.chain_id)
        payload = vote_payload(block.height, view, block.block_hash)
        return CommitCertificate(
            height=block.height,
            view=view,
            block_hash=block.block_hash,
            signatures=tuple(
                (member_id, crypto.sign(self.keys[member_id], domain, payload))
                for member_id in sorted(signers)
            ),
        )

    def build_block(
        self,
        store: ChainStore,
        transactions: Sequence[Transaction],
        state_writes: Mapping[bytes, bytes | None],
        *,
        timestamp_ms: int,
        view: int = 0,
        proposer: str | None = None,
    ) -> Block:
        """The block that extends ``store``'s tip with ``transactions`` and ``state_writes``."""
        tip = store.tip
        header = BlockHeader(
            chain_id=self.chain_id,
            height=tip.height + 1,
            prev_hash=tip.block_hash,
            timestamp_ms=timestamp_ms,
            proposer=proposer or self.genesis.members[view % len(self.genesis.members)].id,
            view=view,
            tx_count=len(transactions),
            tx_root=merkle.root([transaction.encoded for transaction in transactions]),
            state_root=store.preview_state_root(state_writes),
            members_hash=self.genesis.members_hash,
            **_log_fields(self.genesis, store, transactions),
        )
        return Block(header=header, transactions=tuple(transactions))

    def append(
        self,
        store: ChainStore,
        transactions: Sequence[Transaction],
        state_writes: Mapping[bytes, bytes | None],
        *,
        timestamp_ms: int,
    ) -> tuple[Block, CommitCertificate]:
        """Build, certify and append one block; returns the block and its certificate."""
        block = self.build_block(store, transactions, state_writes, timestamp_ms=timestamp_ms)
        certificate = self.certify(block)
        store.append_block(block, certificate, state_writes)
        return block, certificate


def _log_fields(
    genesis: Genesis, store: ChainStore, transactions: Sequence[Transaction]
) -> dict[str, object]:
    """The header's log fields in a format 2 chain (none in format 1)."""
    if genesis.format_version < 2:
        return {}
    log = store.log_frontier().extended(
        merkle.leaf_hash(transaction.encoded) for transaction in transactions
    )
    return {"log_size": log.size, "log_root": log.root}
