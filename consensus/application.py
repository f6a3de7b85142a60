"""The narrow interface through which the replica asks the application about blocks.

In the spirit of CometBFT's ABCI, the replica knows nothing of transactions, contracts or
state: it asks the application to build a proposal, to judge one, and to tell it the chain's
tip and the member set. The node implements this interface over its LevelDB store, mempool
and contract engine; the simulator implements it in memory. Every method is synchronous and
deterministic given the committed chain (the replica passes in the time it proposes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from ledger.model import Block, CommitCertificate, Member

__all__ = ["Application", "ChainTip"]


@dataclass(frozen=True, slots=True)
class ChainTip:
    """The last committed block (height 0: the genesis, with chain_id as hash)."""

    height: int
    block_hash: bytes
    timestamp_ms: int
    view: int
    """The view of the tip's commit certificate (0 at the genesis)."""


class Application(Protocol):
    """What the replica needs to know and ask about the chain."""

    def tip(self) -> ChainTip:
        """The committed tip, as durably stored."""
        ...

    def members(self) -> tuple[Member, ...]:
        """The member set in force for the next height (tip + 1), in rotation order."""
        ...

    def has_pending_transactions(self) -> bool:
        """True when transactions wait to be ordered (drives proposals and timers)."""
        ...

    def propose(self, *, height: int, view: int, timestamp_ms: int, proposer: str) -> Block:
        """Build a valid block on the tip from pending transactions (possibly none)."""
        ...

    def validate(self, block: Block) -> str | None:
        """Judge a block that extends the tip: None if valid, else the reason it is not.

        The application checks what only it can: every transaction (its admission, then its
        execution), the transaction root, the state root and the member-set hash. The replica
        owns the rest (chain, height, parent, proposer, timestamps, signatures of votes) and
        asks only about a block whose chain, height and parent it has checked: the
        application does not judge them again.
        """
        ...

    def committed_block(self, height: int) -> tuple[Block, CommitCertificate] | None:
        """A committed block with its certificate, to serve a lagging peer; None if absent."""
        ...
