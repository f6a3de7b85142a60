"""State namespaces: how a contract's keys sit in the one shared state tree (docs/format.md §7.5).

Every contract owns the slice of the authenticated state whose keys start with its name and
``/``. That rule is part of the chain format, so it is written here, once:
:class:`StateNamespace` builds a contract's full state keys from its own keys, and strips the
prefix again. Contracts declare their layouts with it (``contracts/``); the API, the display
and the tools go through those declarations instead of rebuilding ``name + b"/" + key``.

The one contract key the chain format itself depends on is the member set
(:data:`MEMBERS_STATE_KEY`, §7.6 and §7.8): receipts and the store check follow the member set
from the genesis through it, so it is a format constant here, which the membership contract
uses rather than copies. So are the keys a receipt reads to prove who may sign for an issuer
(§7.6, §7.10): an issuer's record (:func:`issuer_state_key`) and a signer key's delegations
(:func:`signer_state_key`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "CONTRACT_NAME_PATTERN",
    "MEMBERSHIP_NAMESPACE",
    "MEMBERS_STATE_KEY",
    "NAMESPACE_SEPARATOR",
    "StateNamespace",
    "issuer_state_key",
    "signer_state_key",
]

NAMESPACE_SEPARATOR = b"/"
"""Between a contract's name and its own key (0x2f); contract names never hold it."""
CONTRACT_NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")
"""A contract name (docs/format.md §7.5)."""


@dataclass(frozen=True, slots=True)
class StateNamespace:
    """The slice of the state tree one contract owns: keys ``name || "/" || key``."""

    contract: str

    def __post_init__(self) -> None:
        assert CONTRACT_NAME_PATTERN.fullmatch(self.contract), self.contract

    @property
    def prefix(self) -> bytes:
        """``name || "/"``: the first bytes of every state key of the contract."""
        return self.contract.encode() + NAMESPACE_SEPARATOR

    def key(self, key: bytes) -> bytes:
        """The state key (as the tree holds it) of the contract's own ``key``."""
        return self.prefix + key

    def local(self, state_key: bytes) -> bytes:
        """The contract's own key of a ``state_key`` of this namespace (asserts it is)."""
        prefix = self.prefix
        assert state_key.startswith(prefix), (state_key, self.contract)
        return state_key[len(prefix) :]


MEMBERSHIP_NAMESPACE = StateNamespace("membership")
"""The membership contract's namespace (docs/format.md §7.6)."""
MEMBERS_STATE_KEY = MEMBERSHIP_NAMESPACE.key(b"members")
FORMATS_STATE_KEY = MEMBERSHIP_NAMESPACE.key(b"formats")
"""The chain's format schedule (docs/format.md §7.11): canonical ``[[version, from_height], …]``,
versions and heights increasing; absent while the chain keeps its genesis format."""
"""Where the member set in force for the next height lives: ``membership/members`` (§7.8)."""


def issuer_state_key(issuer_id: str) -> bytes:
    """Where an issuer's record lives: ``membership/issuer/<id>`` (§7.6); ids hold no ``/``."""
    return MEMBERSHIP_NAMESPACE.key(b"issuer/" + issuer_id.encode())


def signer_state_key(public_key: bytes) -> bytes:
    """Where a signer key's delegations live: ``membership/signer/<32-byte key>`` (§7.6)."""
    assert len(public_key) == 32
    return MEMBERSHIP_NAMESPACE.key(b"signer/" + public_key)
