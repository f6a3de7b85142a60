"""The contract interface: what an application plugs into sceau.

Theory of operation
-------------------
A contract is a small deterministic state machine over its own slice of the authenticated
state, in the spirit of CometBFT's ABCI. The execution engine (:mod:`contracts.engine`) calls:

``check(transaction)``
    Stateless: are the arguments well formed? No state, no context. Cheap enough to run when a
    transaction enters a node's mempool.
``apply(transaction, state, context)``
    Called only for a transaction whose ``check`` passed. Deterministic: read and write
    through ``state`` (a :class:`StateView` namespaced to the contract), decide from the
    transaction and the block ``context`` only, and return a small result document, or raise
    :class:`Rejection` with a stable code and a reason. A rejected transaction leaves no
    trace: its writes are discarded.
``query(path, state)``
    Reads for clients, over a :class:`ReadView` of the committed state.
``genesis_state(genesis, state)``
    The contract's initial state, written at height 0.

A contract gets no clock, no randomness and no I/O: the context carries only block data
(height, the block's timestamp as proposed by the primary, the proposer, the member set in
force, and what the signer is authorized to do). It sees other contracts' state only through
explicit read-only views (:meth:`StateView.read_only_view`).

Values stored are bytes; contracts store canonical msgpack (:mod:`ledger.encoding`) so that
every node computes the same state root.

What a contract knows, it declares
----------------------------------
A contract is the one place that knows its own state layout and its reads. It declares them
as data, so that the node's API, the receipts and the display use them without knowing the
contract's internals:

``namespace``
    The :class:`~ledger.namespace.StateNamespace` of its state (``name || "/"``); a contract
    module builds its full state keys with it (for example ``deeds.DEEDS_KEYS.act(...)``).
``query_routes``
    :class:`QueryRoute` declarations: the HTTP path the node API serves for one of the
    contract's queries, its parameters with their limits, and how the answer is framed. The
    API builds its router, its OpenAPI document and its parameter checks from them.
``receipt_anchors``
    :class:`~ledger.receipt.AnchorLayout` declarations: which action anchors a document and
    which state record a receipt's status proves (docs/audit.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from ledger import encoding
from ledger.model import ConsensusParameters, Genesis, Issuer, Member, Transaction
from ledger.namespace import NAMESPACE_SEPARATOR, StateNamespace
from ledger.receipt import AnchorLayout

__all__ = [
    "NAMESPACE_SEPARATOR",
    "BlockContext",
    "Contract",
    "Delegation",
    "QueryParameter",
    "QueryRoute",
    "ReadView",
    "Rejection",
    "StateView",
    "decode_record",
    "encode_record",
]


class Rejection(Exception):
    """A transaction refused for a reason its submitter can read.

    ``code`` is stable (clients and tests match on it); ``reason`` is for people.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class Delegation:
    """What a signer key may do on behalf of a member or an issuer (a *principal*)."""

    member_id: str
    """The principal's id: a member's, or an issuer's."""
    roles: frozenset[str]
    expiry_height: int | None
    """The last height at which the delegation is valid; None: until revoked."""
    is_member_key: bool = False
    """The principal's own key (a member's node key, an issuer's key), which holds every role
    of its principal."""

    def allows(self, role: str, height: int) -> bool:
        if self.expiry_height is not None and height > self.expiry_height:
            return False
        return self.is_member_key or role in self.roles


def _no_issuer(issuer_id: str) -> Issuer | None:
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class BlockContext:
    """Everything a contract may know besides the transaction and its state: block data."""

    height: int
    timestamp_ms: int
    proposer: str
    members: tuple[Member, ...]
    """The member set in force at this height."""
    signer_delegations: tuple[Delegation, ...] = ()
    """What the transaction's signer may do, for which principals (filled per transaction)."""
    parameters: ConsensusParameters = field(default_factory=ConsensusParameters)
    """The consensus parameters in force at this height."""
    issuer: Callable[[str], Issuer | None] = _no_issuer
    """The issuer of an id, as in force at this height (status included), or None."""
    header_format: int = 1
    """The chain's header format at this height (the genesis's, or the one the members
    scheduled: :func:`ledger.model.header_format_at`), whether or not this software knows it."""

    def member(self, member_id: str) -> Member | None:
        return next((member for member in self.members if member.id == member_id), None)

    def authorization(self, member_id: str, role: str) -> Delegation:
        """The signer's delegation from ``member_id`` (a member or an active issuer) for
        ``role``, or a :class:`Rejection`.

        Codes: ``not_a_member`` (no such member, and no such issuer or a removed one),
        ``issuer_suspended``, ``wrong_signer`` (the signer holds nothing for that principal),
        ``expired_delegation``, ``unauthorized_role``. Issuers never govern: a contract that
        needs a member (the membership contract's votes) checks :meth:`member` itself.
        """
        if self.member(member_id) is None:
            issuer = self.issuer(member_id)
            if issuer is None or issuer.status == "removed":
                raise Rejection(
                    "not_a_member", f"{member_id!r} is neither a member nor an admitted issuer"
                )
            if issuer.status != "active":
                raise Rejection(
                    "issuer_suspended",
                    f"the issuer {member_id!r} is suspended (since height {issuer.status_height})",
                )
        held = [entry for entry in self.signer_delegations if entry.member_id == member_id]
        if not held:
            raise Rejection("wrong_signer", f"the signer holds no key of {member_id!r}")
        for entry in held:
            if entry.allows(role, self.height):
                return entry
        if all(
            entry.expiry_height is not None and self.height > entry.expiry_height for entry in held
        ):
            raise Rejection(
                "expired_delegation", f"the signer's delegation from {member_id!r} has expired"
            )
        raise Rejection("unauthorized_role", f"the signer may not {role} for {member_id!r}")


class ReadView(Protocol):
    """Read access to one contract's namespace."""

    def get(self, key: bytes) -> bytes | None: ...

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class StateView(Protocol):
    """Read and write access to one contract's namespace during ``apply``."""

    def get(self, key: bytes) -> bytes | None: ...

    def put(self, key: bytes, value: bytes) -> None: ...

    def delete(self, key: bytes) -> None: ...

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Entries under ``prefix`` in key order, this transaction's writes included."""
        ...

    def read_only_view(self, contract_name: str) -> ReadView: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryParameter:
    """One parameter of a :class:`QueryRoute`, checked by the API before the contract sees it.

    A value that does not match ``pattern`` is refused with an ``invalid_query`` problem
    whose detail is ``invalid``; with no pattern, the value goes to the contract as it is and
    the contract's own check (a ValueError) answers. Only checked characters reach the
    contract's query string: no ``&``, ``=`` or ``?`` can be smuggled in.
    """

    name: str
    location: Literal["path", "query"]
    schema: Mapping[str, Any]
    """Its JSON schema, for the OpenAPI document (with the contract's limits)."""
    description: str
    pattern: re.Pattern[str] | None = None
    invalid: str = ""
    """The problem detail when the value does not match ``pattern``."""
    echo: Literal["no", "text", "hex"] = "no"
    """Repeat a path parameter in the answer: as text, or (``hex``) as the bytes it spells."""

    def __post_init__(self) -> None:
        assert self.pattern is None or self.invalid, self.name
        assert self.echo == "no" or self.location == "path", self.name


@dataclass(frozen=True, slots=True, kw_only=True)
class QueryRoute:
    """A read of a contract that the node's API serves at ``GET path``.

    The API checks the parameters, asks the contract ``query`` (its ``{name}`` fields filled
    from the path parameters, the query parameters appended as ``?name=value&…`` in the
    client's order) and answers ``{"height": tip, <echoed parameters>, answer: <the
    contract's answer>}``. A LookupError of the contract becomes the ``not_found`` problem, a
    ValueError ``malformed`` (when set; otherwise either is a bug, answered 500).
    """

    name: str
    """The handler's name: the OpenAPI operationId (``get_act``)."""
    path: str
    """The API path, aiohttp-style: ``{name}`` or ``{name:regex}`` for a path parameter."""
    query: str
    """The contract's query path, with ``{name}`` for each path parameter."""
    answer: str
    """The member of the answer document that holds the contract's answer."""
    summary: str
    tag: str
    document: str
    """The name of the answer's schema: a model of node/api/display.py (for OpenAPI and tests)."""
    parameters: tuple[QueryParameter, ...] = ()
    problems: tuple[str, ...] = ()
    """The API problem codes this route may answer (for the OpenAPI document)."""
    not_found: str | None = None
    malformed: str | None = None
    confirmed_reads: bool = False
    """Read through the store's confirmed reads: an absence is proven by the state tree, so
    a lost index entry is never answered as "unknown"."""

    def __post_init__(self) -> None:
        assert self.path.startswith("/") and self.name.startswith("get_"), self.name
        for parameter in self.parameters:
            if parameter.location == "path":
                assert "{" + parameter.name in self.path, (self.name, parameter.name)

    def path_parameters(self) -> tuple[QueryParameter, ...]:
        return tuple(p for p in self.parameters if p.location == "path")

    def query_parameters(self) -> tuple[QueryParameter, ...]:
        return tuple(p for p in self.parameters if p.location == "query")


class Contract:
    """Base class of contracts, with do-nothing defaults.

    Subclasses set ``name`` (a slug, the namespace of their state) and ``version``, and
    override what they need. Instances must hold no mutable state of their own: everything
    lives in the state view, so that every node computes the same thing.
    """

    name: ClassVar[str] = ""
    version: ClassVar[str] = "0.0"
    """The version this code is (a new genesis pins it)."""
    older_versions: ClassVar[tuple[str, ...]] = ()
    """Earlier versions this code still runs exactly as they were, for the chains that pinned
    them (:meth:`at_version`); a contract that lists none runs only ``version``."""
    query_routes: ClassVar[tuple[QueryRoute, ...]] = ()
    """The reads the node API serves for this contract (see :class:`QueryRoute`)."""
    receipt_anchors: ClassVar[tuple[AnchorLayout, ...]] = ()
    """The actions that anchor a document, for receipts (:class:`~ledger.receipt.AnchorLayout`)."""

    @classmethod
    def at_version(cls, version: str) -> Contract:
        """An instance that runs the rules of ``version`` (``version`` or one of
        ``older_versions``); raises ValueError for another. Override to tell them apart."""
        if version != cls.version:
            raise ValueError(f"{cls.name} {cls.version} does not run version {version}")
        return cls()

    @property
    def namespace(self) -> StateNamespace:
        """The slice of the state tree this contract owns (``name || "/"``)."""
        return StateNamespace(self.name)

    def check(self, transaction: Transaction) -> None:
        """Stateless validation of ``transaction.action`` and ``args``; raise Rejection."""

    def apply(self, transaction: Transaction, state: StateView, context: BlockContext) -> Any:
        """Apply the transaction; return a small canonical document or raise Rejection."""
        raise Rejection("unknown_action", f"{self.name} has no action {transaction.action!r}")

    def query(self, path: str, state: ReadView) -> Any:
        """Answer a read; raise LookupError when nothing is at ``path``."""
        raise LookupError(path)

    def genesis_state(self, genesis: Genesis, state: StateView) -> None:
        """Write the contract's initial state from the genesis."""


def encode_record(value: Any) -> bytes:
    """Encode a stored record canonically."""
    return encoding.pack(value)


def decode_record(data: bytes) -> Any:
    """Decode a stored record (written by :func:`encode_record`)."""
    return encoding.unpack(data)
