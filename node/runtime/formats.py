"""What a node knows of the chain's header formats: the one in force, the ones scheduled, and
whether this software can follow them.

The members move the chain to a later header format by governance (membership 1.2,
docs/operations.md "Upgrading the chain's format"): the schedule is state
(:data:`ledger.namespace.FORMATS_STATE_KEY`). A node reads it after each commit. When a
scheduled format is one this software does not know, the operator must upgrade before its
height: the node says so once per schedule (a WARNING, and in its status). When the next block
must be of such a format, the node cannot build or check it: it stops following the chain at
the block before, says so once (an ERROR, and in its status), and waits for the upgrade,
without proposing, voting or fetching anything (a node that retried would spin on a block it
can never accept).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ledger import encoding, model

__all__ = ["FormatOutlook", "format_outlook"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FormatOutlook:
    """The header formats seen from a node whose next block is ``next_height``."""

    next_height: int
    in_force: int
    """The format of block ``next_height``."""
    scheduled: tuple[tuple[int, int], ...]
    """``(version, from_height)`` of every entry the members scheduled, in force or not."""
    supported: tuple[int, ...]
    """The formats this software reads and writes (:data:`ledger.model.HEADER_FORMATS`)."""

    @property
    def unknown(self) -> tuple[tuple[int, int], ...]:
        """The scheduled entries still ahead or in force that this software does not know."""
        return tuple(
            (version, height)
            for version, height in self.scheduled
            if version not in self.supported and (version, height) not in self._passed()
        )

    def _passed(self) -> tuple[tuple[int, int], ...]:
        """Entries superseded by a later one already in force (never this node's concern)."""
        reached = [entry for entry in self.scheduled if entry[1] <= self.next_height]
        return tuple(reached[:-1])

    @property
    def halted(self) -> bool:
        """Whether the next block is of a format this software does not know."""
        return self.in_force not in self.supported

    def warning(self) -> str | None:
        """What an operator must do about the first unknown format ahead, or None."""
        if not self.unknown:
            return None
        version, height = self.unknown[0]
        known = ", ".join(map(str, self.supported))
        if self.halted:
            return (
                f"the consortium moved to header format {version} at height {height}; this "
                f"software knows {known}: this node stopped at height {self.next_height - 1}. "
                f"Upgrade sceau and restart the node: it then follows the chain again"
            )
        return (
            f"the consortium moves to header format {version} at height {height}; this "
            f"software knows {known}: upgrade before {height}"
        )

    def to_status(self) -> dict[str, Any]:
        """The ``format`` field of the node's status."""
        document: dict[str, Any] = {
            "in_force": self.in_force,
            "scheduled": [
                {"version": version, "height": height} for version, height in self.scheduled
            ],
            "supported": list(self.supported),
        }
        warning = self.warning()
        if warning is not None:
            document["upgrade_required"] = warning
        if self.halted:
            document["halted_at"] = self.next_height - 1
        return document


def format_outlook(genesis_format: int, schedule: bytes | None, next_height: int) -> FormatOutlook:
    """The outlook of a node whose next block is ``next_height``, given the genesis's format and
    the state value at :data:`ledger.namespace.FORMATS_STATE_KEY` (None: nothing scheduled)."""
    entries = () if schedule is None else tuple(tuple(entry) for entry in encoding.unpack(schedule))
    assert len(entries) <= model.FORMAT_SCHEDULE_ENTRIES_MAX
    return FormatOutlook(
        next_height=next_height,
        in_force=model.header_format_at(genesis_format, schedule, next_height),
        scheduled=entries,  # type: ignore[arg-type]
        supported=tuple(model.HEADER_FORMATS),
    )
