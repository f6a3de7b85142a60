"""What every ``sceau`` command shares: its exit statuses and the error a user can act on.

A module of its own so that the command modules (node/tools/cli.py, node/tools/cli_chain.py)
import it rather than each other.
"""

from __future__ import annotations

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_NOT_CONFIRMED",
    "EXIT_RECEIPT_NOT_SAVED",
    "EXIT_USAGE",
    "CommandError",
]

EXIT_CHECK_FAILED = 1
"""A check ran and failed (a verification, an audit, a damaged store)."""
EXIT_USAGE = 2
"""The command could not run as asked (bad arguments, a missing file); one line on stderr."""
EXIT_NOT_CONFIRMED = 3
"""``anchor`` / ``act status``: no member confirmed the commit in time; it may still commit."""
EXIT_RECEIPT_NOT_SAVED = 4
"""``anchor``: the act is committed but its receipt could not be written where asked; it was
saved in the current folder (or printed) instead, and the message says where."""


class CommandError(Exception):
    """A failure the user can act on; printed without a traceback."""
