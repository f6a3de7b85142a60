"""``sceau export``, ``sceau audit`` and ``sceau import``: whole-chain commands (step 5).

The commands are added to the ``sceau`` parser by :func:`add_chain_commands`.
"""

from __future__ import annotations

from typing import Any


def add_chain_commands(commands: Any) -> None:
    """Add the chain commands to the ``sceau`` sub-command parser ``commands``."""
