"""Why a replica drops a peer's message, and the classifier's verdicts.

Every message a replica does not act on is counted in ``Replica.dropped`` under one
:class:`DropReason`. The reasons are metric labels (the node exports them, docs/consensus.md
lists them): their string values are stable, and the counter is keyed by those strings.
"""

from __future__ import annotations

import enum

__all__ = ["DROP_REASONS", "DropReason", "Verdict"]


class Verdict(enum.Enum):
    """What the replica does with a message, judged by its height and view alone."""

    NOW = "now"
    """For the height and view in progress (or a view change, whose views lie ahead): handle it."""
    FUTURE = "future"
    """For a later height or view within the windows: buffer it until then."""
    DROP = "drop"
    """Outside the windows: already counted under a :class:`DropReason`."""


class DropReason(enum.StrEnum):
    """A reason to drop a message; the value is the metric label."""

    # who may speak
    UNKNOWN_MESSAGE = "unknown_message"
    NOT_A_MEMBER = "not_a_member"
    SENDER_MISMATCH = "sender_mismatch"
    BAD_SIGNATURE = "bad_signature"
    NOT_PRIMARY = "not_primary"
    # windows and buffers
    OLD_HEIGHT = "old_height"
    FAR_HEIGHT = "far_height"
    OLD_VIEW = "old_view"
    FAR_VIEW = "far_view"
    FUTURE_BUFFER_FULL = "future_buffer_full"
    FUTURE_MESSAGE_TOO_LARGE = "future_message_too_large"
    # the protocol
    DUPLICATE = "duplicate"
    EQUIVOCATION = "equivocation"
    EQUIVOCATION_REPEATED = "equivocation_repeated"
    NEEDS_NEW_VIEW = "needs_new_view"
    INVALID_PROPOSAL = "invalid_proposal"
    BAD_VIEW_CHANGE = "bad_view_change"
    BAD_NEW_VIEW = "bad_new_view"
    NEW_VIEW_WOULD_EQUIVOCATE = "new_view_would_equivocate"
    PREPARED_BLOCK_UNKNOWN = "prepared_block_unknown"
    CONFLICTS_WITH_OWN_VOTE = "conflicts_with_own_vote"
    CERTIFIED_BLOCK_INVALID = "certified_block_invalid"
    BAD_FETCHED_BLOCK = "bad_fetched_block"
    BLOCK_RESPONSE_WITHOUT_PROGRESS = "block_response_without_progress"


DROP_REASONS: dict[str, str] = {
    # who may speak
    DropReason.UNKNOWN_MESSAGE: "a message type the replica does not handle",
    DropReason.NOT_A_MEMBER: (
        "the sender is not in the member set in force, or claims to be this replica"
    ),
    DropReason.SENDER_MISMATCH: "the message names another sender than the authenticated peer",
    DropReason.BAD_SIGNATURE: "a signature that does not verify with the sender's key in force",
    DropReason.NOT_PRIMARY: (
        "a proposal or new view from a member that is not the primary of its view"
    ),
    # windows and buffers
    DropReason.OLD_HEIGHT: "a message for a height already committed",
    DropReason.FAR_HEIGHT: (
        "a message for a height beyond the height window (it hints at catch-up)"
    ),
    DropReason.OLD_VIEW: "a message for a view this replica has left",
    DropReason.FAR_VIEW: "a message for a view beyond the view window",
    DropReason.FUTURE_BUFFER_FULL: (
        "an older buffered future message of the sender, evicted to make room"
    ),
    DropReason.FUTURE_MESSAGE_TOO_LARGE: (
        "one future message larger than the sender's whole byte budget"
    ),
    # the protocol
    DropReason.DUPLICATE: "a message already counted",
    DropReason.EQUIVOCATION: (
        "a second, different signed message for one (height, view, kind): evidence"
    ),
    DropReason.EQUIVOCATION_REPEATED: (
        "one more proposal in a view whose primary already equivocated"
    ),
    DropReason.NEEDS_NEW_VIEW: (
        "a bare proposal in a view entered by a view change (a NewView is needed)"
    ),
    DropReason.INVALID_PROPOSAL: "a proposal the replica refused (the reason is reported)",
    DropReason.BAD_VIEW_CHANGE: "a view change that does not verify",
    DropReason.BAD_NEW_VIEW: "a new view that does not justify its proposal",
    DropReason.NEW_VIEW_WOULD_EQUIVOCATE: (
        "this replica cannot send a new view without contradicting itself"
    ),
    DropReason.PREPARED_BLOCK_UNKNOWN: (
        "the block of the chosen prepared certificate is not known here"
    ),
    DropReason.CONFLICTS_WITH_OWN_VOTE: (
        "a proposal other than the block this replica already prepared"
    ),
    DropReason.CERTIFIED_BLOCK_INVALID: (
        "a block with a valid certificate that the application refuses"
    ),
    DropReason.BAD_FETCHED_BLOCK: "a fetched block whose certificate or content does not verify",
    DropReason.BLOCK_RESPONSE_WITHOUT_PROGRESS: (
        "a block response that brought no block to commit"
    ),
}
"""Every reason a replica counts in ``Replica.dropped``, with what it means (keys are the
:class:`DropReason` members, equal to their label strings)."""

assert set(DROP_REASONS) == set(DropReason), "every drop reason is described, once"
