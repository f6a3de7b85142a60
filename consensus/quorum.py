"""Quorum arithmetic and vote collection: pure functions and one small container.

With n members, f = ⌊(n − 1) / 3⌋ may be byzantine and a quorum is q = n − f (2f + 1 when
n = 3f + 1; for n = 6 it is 5). Two quorums intersect in at least f + 1 members, so in at
least one correct member: that is what makes a certificate unique per (height, view).
A weak quorum (f + 1) contains at least one correct member.

:class:`VoteSet` counts each member at most once per (view, block_hash) and remembers the
first hash each member voted for in a view, so a second, different vote is evidence of
equivocation rather than a second vote.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledger.model import fault_tolerance, quorum_size

__all__ = ["VoteSet", "fault_tolerance", "quorum_size", "weak_quorum_size"]


def weak_quorum_size(member_count: int) -> int:
    """f + 1: enough members that at least one is correct."""
    return fault_tolerance(member_count) + 1


@dataclass(slots=True)
class VoteSet:
    """Signed votes of one kind at one height, by view and block hash."""

    signatures: dict[tuple[int, bytes], dict[str, bytes]] = field(default_factory=dict)
    first_vote: dict[tuple[int, str], bytes] = field(default_factory=dict)

    def add(self, view: int, block_hash: bytes, member: str, signature: bytes) -> bytes | None:
        """Record a vote; return the conflicting hash if ``member`` voted otherwise in ``view``.

        A conflicting vote is not counted.
        """
        earlier = self.first_vote.setdefault((view, member), block_hash)
        if earlier != block_hash:
            return earlier
        self.signatures.setdefault((view, block_hash), {})[member] = signature
        return None

    def count(self, view: int, block_hash: bytes) -> int:
        return len(self.signatures.get((view, block_hash), {}))

    def signed(self, view: int, block_hash: bytes) -> tuple[tuple[str, bytes], ...]:
        """The ``(member, signature)`` pairs for ``(view, block_hash)``, sorted by member."""
        return tuple(sorted(self.signatures.get((view, block_hash), {}).items()))
