"""What a replica persists so that a restart never makes it contradict itself.

Views are global (they carry over from one height to the next) and a replica never acts in a
view lower than the highest it has entered. So it is enough to persist, for the height in
progress:

* the highest view entered;
* what it signed in that view: the block hash of its pre-prepare (as primary), prepare and
  commit votes, and whether it entered the view by a view change (then it accepts a proposal
  for that view only inside a NewView);
* its highest prepared certificate at that height, which a later view change must carry.

The record is written (:class:`~consensus.actions.PersistSafety`) before any message that it
covers is sent. After a restart the replica is built from the last record and refuses to sign
anything the record contradicts.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictBool, StrictInt

from consensus.messages import PreparedCertificate
from ledger.model import Block, CanonicalModel, Hash32, View

__all__ = ["SafetyRecord"]


class SafetyRecord(CanonicalModel):
    """The replica's signing history for the height in progress (see the module doc)."""

    height: Annotated[StrictInt, Field(ge=1, le=2**63 - 1)]
    view: View
    pre_prepare_hash: Hash32 | None = None
    prepare_hash: Hash32 | None = None
    commit_hash: Hash32 | None = None
    entered_by_view_change: StrictBool = False
    """The view was entered by a view change at this height: proposals need a NewView."""
    prepared: PreparedCertificate | None = None
    prepared_block: Block | None = None

    def at_view(self, view: int) -> SafetyRecord:
        """The record after entering ``view`` (votes of the old view are no longer needed)."""
        assert view >= self.view, "a replica never returns to a lower view"
        if view == self.view:
            return self
        return SafetyRecord(
            height=self.height,
            view=view,
            entered_by_view_change=True,
            prepared=self.prepared,
            prepared_block=self.prepared_block,
        )
