"""The membership contract: the consortium's governance (members, keys, delegations, parameters).

Theory of operation
-------------------
The member set is state (docs/architecture.md, decision 9). Everything that changes it goes
through this contract, so that the set in force at every height can be recomputed by replaying the
chain from its genesis, and the hash of that set (:func:`ledger.model.members_hash`) is what each
header records.

*Who may sign what.* A member's node key (its ``public_key`` in the member set) holds every
role of its member. A member may also delegate roles to other keys (``delegate``), until an
expiry height or until revoked. This contract's only role is ``membership.govern`` (propose a
change, vote); key rotation, endpoint change and delegation management need the node key
itself, never a delegate.

*Governance.* A change to the member set or to the consensus parameters is a proposal
(``propose``), voted on by members (``vote``). It passes when the yes votes of current members
reach :func:`required_votes` of the current member count, and the change is applied by the
transaction that casts the deciding vote (the proposer's own vote counts at once). It is
rejected when the no votes of current members leave too few members to pass it, and it
expires ``proposal_lifetime_blocks`` after it was made.

*When changes take effect.* Authorization (the member set, the node keys, the delegations, the
parameters) always comes from the state committed *before* the block, through the
:class:`~contracts.base.BlockContext` the engine builds with :meth:`MembershipContract.
read_directory`. A change made at height ``h`` therefore takes effect at ``h + 1``: within
block ``h`` a newly admitted member cannot vote yet and a rotated-out key still signs. What a
transaction *changes*, on the other hand, is checked against the pending state (the committed
state plus the block's earlier transactions), so that two transactions of one block cannot
together break an invariant (two admissions of the same id, say).

*Determinism.* No clock, no randomness, no I/O: every decision is a function of the
transaction, the block context and the state. Every list stored is sorted (or, for the member
set, kept in admission order), so every node writes the same bytes.

State layout
------------
Namespace ``membership/``; every value canonical msgpack:

==============================  ===============================================================
key                             value
==============================  ===============================================================
``members``                     array of members (``Member`` canonical maps), in rotation
                                order (genesis order, then admission order)
``parameters``                  the ``ConsensusParameters`` canonical map
``signer/<public key>``         map ``member_id -> {"roles": [role, …], "expiry_height":
                                int|nil}``: what the key may do for each member
``delegates/<member id>``       sorted array of the signer keys the member delegated to (the
                                index behind the ``delegations/<member id>`` query)
``proposal/<proposal id>``      a proposal record (see :class:`Proposal`), kept after it closes
``open_proposals``              sorted array of the ids of proposals stored as ``open``
==============================  ===============================================================

Keys hold raw bytes after their prefix (a 32-byte public key or proposal id); member ids
cannot contain ``/``, so the layout is unambiguous.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from contracts.base import (
    BlockContext,
    Contract,
    Delegation,
    QueryRoute,
    ReadView,
    Rejection,
    StateView,
    decode_record,
    encode_record,
)
from ledger import crypto
from ledger.model import (
    MEMBERS_MAX,
    ConsensusParameters,
    Endpoint,
    Genesis,
    Member,
    MemberId,
    ModelDecodeError,
    Transaction,
    members_hash,
)
from ledger.namespace import MEMBERS_STATE_KEY, MEMBERSHIP_NAMESPACE

__all__ = [
    "DELEGATIONS_PER_MEMBER_MAX",
    "DELEGATIONS_PER_SIGNER_MAX",
    "GOVERN",
    "MEMBERSHIP",
    "MEMBERSHIP_QUERY_ROUTES",
    "MEMBERS_MIN",
    "OPEN_PROPOSALS_MAX",
    "ROLES_PER_DELEGATION_MAX",
    "ROLE_CHARACTERS_MAX",
    "VOTERS_PER_PROPOSAL_MAX",
    "Admit",
    "Directory",
    "MembershipContract",
    "Proposal",
    "Remove",
    "SetParameters",
    "required_votes",
]

MEMBERSHIP = MEMBERSHIP_NAMESPACE.contract
"""The contract's name, its namespace: part of the chain format (ledger/namespace.py)."""

GOVERN = "membership.govern"
"""The role that lets a key propose changes and vote for a member."""

# --- limits -----------------------------------------------------------------------------------
# These are rules of the contract, not settings: every member must apply the same ones or the
# consortium splits, so they are constants of version 1.0 (changing one changes the version).

MEMBERS_MIN = 4
"""A removal may not leave fewer members: below 4, PBFT tolerates no fault (f = 0)."""
OPEN_PROPOSALS_MAX = 64
"""Live open proposals at once; bounds the ``open_proposals`` index and the expiry sweep."""
VOTERS_PER_PROPOSAL_MAX = 2 * MEMBERS_MAX
"""Votes recorded on one proposal. Voters must be current members, so only member churn
during a proposal's lifetime could approach it."""
DELEGATIONS_PER_SIGNER_MAX = 64
"""Members that may delegate to one signer key (a shared service may act for ~30 members)."""
DELEGATIONS_PER_MEMBER_MAX = 64
"""Signer keys one member may delegate to; also bounds the writes of a member's removal."""
ROLES_PER_DELEGATION_MAX = 16
ROLE_CHARACTERS_MAX = 40
"""With the bounds above, a ``signer/`` record stays well under the engine's value limit."""

_ROLE_PATTERN = re.compile(r"[a-z]+\.[a-z_]+")

# --- state layout (the one place where this contract's keys are built) -----------------------

MEMBERS_KEY = MEMBERSHIP_NAMESPACE.local(MEMBERS_STATE_KEY)
"""The member set: its full state key is a format constant (docs/format.md §7.8)."""
PARAMETERS_KEY = b"parameters"
SIGNER_PREFIX = b"signer/"
DELEGATES_PREFIX = b"delegates/"
PROPOSAL_PREFIX = b"proposal/"
OPEN_PROPOSALS_KEY = b"open_proposals"


def signer_key(public_key: bytes) -> bytes:
    """The state key of what ``public_key`` may do for each member."""
    return SIGNER_PREFIX + public_key


def delegates_key(member_id: str) -> bytes:
    """The state key of the sorted signer keys ``member_id`` delegated to."""
    return DELEGATES_PREFIX + member_id.encode()


def proposal_key(proposal_id: bytes) -> bytes:
    """The state key of a proposal record."""
    return PROPOSAL_PREFIX + proposal_id


# --- governance arithmetic --------------------------------------------------------------------


def required_votes(member_count: int, threshold_percent: int) -> int:
    """The yes votes that pass a proposal: ⌈member_count × threshold_percent / 100⌉.

    Integer arithmetic only (no floats in consensus code). For 67 %: 3 of 4, 4 of 5, 5 of 6,
    5 of 7.
    """
    assert member_count >= 1 and 1 <= threshold_percent <= 100
    return (member_count * threshold_percent + 99) // 100


# --- the directory: what the engine reads before each block ----------------------------------


@dataclass(frozen=True, slots=True)
class Directory:
    """Who the members are and what each signer key may do, at one height.

    Delegations are read on demand from ``view``, the committed membership state.
    """

    members: tuple[Member, ...]
    parameters: ConsensusParameters
    view: ReadView
    _cache: dict[bytes, tuple[Delegation, ...]] = field(default_factory=dict)

    def delegations_for(self, public_key: bytes) -> tuple[Delegation, ...]:
        """What ``public_key`` may do: member keys first, then delegated roles."""
        cached = self._cache.get(public_key)
        if cached is not None:
            return cached
        own = tuple(
            Delegation(
                member_id=member.id, roles=frozenset(), expiry_height=None, is_member_key=True
            )
            for member in self.members
            if member.public_key == public_key
        )
        record = self.view.get(signer_key(public_key))
        delegated = (
            ()
            if record is None
            else tuple(
                _delegation(member_id, entry)
                for member_id, entry in sorted(decode_record(record).items())
            )
        )
        self._cache[public_key] = own + delegated
        return own + delegated


# --- changes and proposals --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Admit:
    """Admit ``member`` (appended to the rotation order)."""

    member: Member

    def to_canonical(self) -> dict[str, Any]:
        return {"kind": "admit", "member": self.member.to_canonical()}


@dataclass(frozen=True, slots=True, kw_only=True)
class Remove:
    """Remove the member ``member_id`` (and every delegation it made)."""

    member_id: str

    def to_canonical(self) -> dict[str, Any]:
        return {"kind": "remove", "member_id": self.member_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class SetParameters:
    """Set some consensus parameters; ``values`` is sorted by parameter name."""

    values: tuple[tuple[str, int], ...]

    def to_canonical(self) -> dict[str, Any]:
        return {"kind": "set_parameters", "parameters": dict(self.values)}


Change = Admit | Remove | SetParameters

OPEN = "open"
PASSED = "passed"
REJECTED = "rejected"
EXPIRED = "expired"
STATUSES = (OPEN, PASSED, REJECTED, EXPIRED)


@dataclass(frozen=True, slots=True, kw_only=True)
class Proposal:
    """A proposed change and its votes; stored under ``proposal/<proposal_id>``.

    ``closed_height`` is the height at which the proposal stopped being open: the height of
    the deciding vote (passed, rejected), or ``expiry_height + 1`` (expired). A proposal past
    its ``expiry_height`` is expired even while its stored status still reads ``open``: the
    status is rewritten lazily, by the next ``propose``.
    """

    proposal_id: bytes
    proposer: str
    change: Change
    created_height: int
    expiry_height: int
    yes_voters: tuple[str, ...]
    no_voters: tuple[str, ...]
    status: str
    closed_height: int | None

    def __post_init__(self) -> None:
        assert self.status in STATUSES, self.status
        assert (self.status == OPEN) == (self.closed_height is None)
        assert list(self.yes_voters) == sorted(set(self.yes_voters))
        assert list(self.no_voters) == sorted(set(self.no_voters))
        assert not set(self.yes_voters) & set(self.no_voters)

    def has_voted(self, member_id: str) -> bool:
        return member_id in self.yes_voters or member_id in self.no_voters

    def to_record(self) -> dict[str, Any]:
        """The stored form (the id is in the key, not repeated in the value)."""
        return {
            "proposer": self.proposer,
            "change": self.change.to_canonical(),
            "created_height": self.created_height,
            "expiry_height": self.expiry_height,
            "yes_voters": list(self.yes_voters),
            "no_voters": list(self.no_voters),
            "status": self.status,
            "closed_height": self.closed_height,
        }

    def to_document(self) -> dict[str, Any]:
        """The query answer: the stored form plus ``proposal_id``."""
        return {"proposal_id": self.proposal_id, **self.to_record()}

    @classmethod
    def from_record(cls, proposal_id: bytes, record: dict[str, Any]) -> Proposal:
        return cls(
            proposal_id=proposal_id,
            proposer=record["proposer"],
            change=_parse_change(record["change"]),
            created_height=record["created_height"],
            expiry_height=record["expiry_height"],
            yes_voters=tuple(record["yes_voters"]),
            no_voters=tuple(record["no_voters"]),
            status=record["status"],
            closed_height=record["closed_height"],
        )


# --- arguments: parsed statelessly, in check and again in apply ------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ProposeArguments:
    proposer: str
    change: Change


@dataclass(frozen=True, slots=True, kw_only=True)
class VoteArguments:
    proposal_id: bytes
    voter: str
    approve: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class RotateKeyArguments:
    member_id: str
    new_public_key: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SetEndpointArguments:
    member_id: str
    endpoint: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DelegateArguments:
    member_id: str
    signer: bytes
    roles: tuple[str, ...]
    """Sorted, unique."""
    expiry_height: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RevokeArguments:
    member_id: str
    signer: bytes


_MEMBER_ID = TypeAdapter(MemberId)
_ENDPOINT = TypeAdapter(Endpoint)
_PARAMETER_NAMES = tuple(ConsensusParameters.model_fields)
_HEIGHT_MAX = 2**63 - 1


def _invalid(field_name: str, why: str) -> Rejection:
    return Rejection("invalid_arguments", f"{field_name}: {why}")


def _require_fields(document: Any, names: tuple[str, ...], where: str = "") -> None:
    """Check that ``document`` is a map with exactly the fields ``names``, or raise
    invalid_arguments naming the first field (``where`` is the path to the document)."""
    if not isinstance(document, dict) or not all(isinstance(key, str) for key in document):
        raise _invalid(where or "args", "expected a map with text keys")
    prefix = f"{where}." if where else ""
    for name in sorted(document):
        if name not in names:
            raise _invalid(prefix + name, "unexpected argument")
    for name in names:
        if name not in document:
            raise _invalid(prefix + name, "missing")


def _member_id(value: Any, field_name: str) -> str:
    try:
        return _MEMBER_ID.validate_python(value, strict=True)
    except ValidationError:
        raise _invalid(
            field_name, "expected a member id (a lowercase slug of 1 to 48 characters)"
        ) from None


def _bytes32(value: Any, field_name: str) -> bytes:
    if type(value) is not bytes or len(value) != 32:
        raise _invalid(field_name, "expected 32 bytes")
    return value


def _public_key(value: Any, field_name: str) -> bytes:
    if not crypto.is_acceptable_public_key(_bytes32(value, field_name)):
        raise _invalid(field_name, "not an acceptable Ed25519 public key")
    return value


def _parse_propose(args: dict[str, Any]) -> ProposeArguments:
    _require_fields(args, ("proposer", "change"))
    return ProposeArguments(
        proposer=_member_id(args["proposer"], "proposer"), change=_parse_change(args["change"])
    )


def _parse_change(document: Any) -> Change:
    if not isinstance(document, dict):
        raise _invalid("change", "expected a map")
    kind = document.get("kind")
    parser = _CHANGE_PARSERS.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise _invalid("change.kind", f"expected one of {', '.join(sorted(_CHANGE_PARSERS))}")
    return parser(document)


def _parse_admit(document: dict[str, Any]) -> Admit:
    _require_fields(document, ("kind", "member"), "change")
    _require_fields(document["member"], tuple(Member.model_fields), "change.member")
    try:
        member = Member.from_canonical(document["member"])
    except ModelDecodeError as error:
        # "Member.public_key: Value error, …" -> "change.member.public_key: Value error, …"
        location, _, why = str(error).removeprefix("Member.").partition(": ")
        raise _invalid(f"change.member.{location}", why) from None
    return Admit(member=member)


def _parse_remove(document: dict[str, Any]) -> Remove:
    _require_fields(document, ("kind", "member_id"), "change")
    return Remove(member_id=_member_id(document["member_id"], "change.member_id"))


def _parse_set_parameters(document: dict[str, Any]) -> SetParameters:
    _require_fields(document, ("kind", "parameters"), "change")
    values = document["parameters"]
    if (
        not isinstance(values, dict)
        or not values
        or not all(isinstance(name, str) for name in values)
    ):
        raise _invalid("change.parameters", "expected a non-empty map of parameter values")
    for name in sorted(values):
        if name not in _PARAMETER_NAMES:
            raise _invalid(f"change.parameters.{name}", "not a consensus parameter")
    # No rule of ConsensusParameters ties two fields together, so each value can be checked
    # here against the defaults; the merge with the parameters in force is checked again when
    # the change is proposed and when it passes.
    change = SetParameters(values=tuple(sorted(values.items())))
    _merged_parameters(ConsensusParameters(), change)
    return change


_CHANGE_PARSERS: dict[str, Callable[[dict[str, Any]], Change]] = {
    "admit": _parse_admit,
    "remove": _parse_remove,
    "set_parameters": _parse_set_parameters,
}


def _parse_vote(args: dict[str, Any]) -> VoteArguments:
    _require_fields(args, ("proposal_id", "voter", "approve"))
    proposal_id = _bytes32(args["proposal_id"], "proposal_id")
    voter = _member_id(args["voter"], "voter")
    if type(args["approve"]) is not bool:
        raise _invalid("approve", "expected true or false")
    return VoteArguments(proposal_id=proposal_id, voter=voter, approve=args["approve"])


def _parse_rotate_key(args: dict[str, Any]) -> RotateKeyArguments:
    _require_fields(args, ("member_id", "new_public_key"))
    return RotateKeyArguments(
        member_id=_member_id(args["member_id"], "member_id"),
        new_public_key=_public_key(args["new_public_key"], "new_public_key"),
    )


def _parse_set_endpoint(args: dict[str, Any]) -> SetEndpointArguments:
    _require_fields(args, ("member_id", "endpoint"))
    try:
        endpoint = _ENDPOINT.validate_python(args["endpoint"], strict=True)
    except ValidationError:
        raise _invalid("endpoint", "expected host:port") from None
    return SetEndpointArguments(
        member_id=_member_id(args["member_id"], "member_id"), endpoint=endpoint
    )


def _parse_delegate(args: dict[str, Any]) -> DelegateArguments:
    _require_fields(args, ("member_id", "signer", "roles", "expiry_height"))
    member_id = _member_id(args["member_id"], "member_id")
    signer = _public_key(args["signer"], "signer")
    roles = _parse_roles(args["roles"])
    expiry_height = args["expiry_height"]
    if expiry_height is not None and (
        type(expiry_height) is not int or not 1 <= expiry_height <= _HEIGHT_MAX
    ):
        raise _invalid("expiry_height", "expected a height (1 to 2**63 - 1) or nil")
    return DelegateArguments(
        member_id=member_id, signer=signer, roles=roles, expiry_height=expiry_height
    )


def _parse_roles(roles: Any) -> tuple[str, ...]:
    if not isinstance(roles, list) or not 1 <= len(roles) <= ROLES_PER_DELEGATION_MAX:
        raise _invalid("roles", f"expected a list of 1 to {ROLES_PER_DELEGATION_MAX} roles")
    for role in roles:
        if (
            not isinstance(role, str)
            or len(role) > ROLE_CHARACTERS_MAX
            or not _ROLE_PATTERN.fullmatch(role)
        ):
            raise _invalid(
                "roles", f"{role!r} is not a role (contract.action, {ROLE_CHARACTERS_MAX} max)"
            )
    if len(set(roles)) != len(roles):
        raise _invalid("roles", "a role appears twice")
    return tuple(sorted(roles))


def _parse_revoke(args: dict[str, Any]) -> RevokeArguments:
    _require_fields(args, ("member_id", "signer"))
    return RevokeArguments(
        member_id=_member_id(args["member_id"], "member_id"),
        signer=_bytes32(args["signer"], "signer"),
    )


# --- state access -----------------------------------------------------------------------------


def _read_members(state: ReadView) -> list[Member]:
    record = state.get(MEMBERS_KEY)
    assert record is not None, "the membership state is missing: was the genesis written?"
    return [Member.from_canonical(entry) for entry in decode_record(record)]


def _write_members(state: StateView, members: list[Member]) -> None:
    assert 1 <= len(members) <= MEMBERS_MAX
    for label in ("id", "public_key", "endpoint"):
        values = [getattr(member, label) for member in members]
        assert len(set(values)) == len(values), f"two members share one {label}"
    state.put(MEMBERS_KEY, encode_record([member.to_canonical() for member in members]))


def _read_parameters(state: ReadView) -> ConsensusParameters:
    record = state.get(PARAMETERS_KEY)
    assert record is not None, "the membership state is missing: was the genesis written?"
    return ConsensusParameters.from_canonical(decode_record(record))


def _read_sorted_keys(state: ReadView, key: bytes) -> list[bytes]:
    record = state.get(key)
    return [] if record is None else list(decode_record(record))


def _write_sorted_keys(state: StateView, key: bytes, values: list[bytes]) -> None:
    """Write a sorted array of 32-byte values, or delete ``key`` when there is none."""
    assert values == sorted(set(values))
    if values:
        state.put(key, encode_record(values))
    elif state.get(key) is not None:
        state.delete(key)


def _read_signer(state: ReadView, public_key: bytes) -> dict[str, Any]:
    record = state.get(signer_key(public_key))
    return {} if record is None else decode_record(record)


def _write_signer(state: StateView, public_key: bytes, entries: dict[str, Any]) -> None:
    assert len(entries) <= DELEGATIONS_PER_SIGNER_MAX
    if entries:
        state.put(signer_key(public_key), encode_record(entries))
    else:
        state.delete(signer_key(public_key))


def _read_proposal(state: ReadView, proposal_id: bytes) -> Proposal | None:
    record = state.get(proposal_key(proposal_id))
    return None if record is None else Proposal.from_record(proposal_id, decode_record(record))


def _write_proposal(state: StateView, proposal: Proposal) -> None:
    state.put(proposal_key(proposal.proposal_id), encode_record(proposal.to_record()))


# --- validating and applying changes ---------------------------------------------------------


def _check_change(change: Change, members: list[Member], parameters: ConsensusParameters) -> None:
    """Raise the Rejection that ``change`` meets on the pending member set and parameters."""
    if isinstance(change, Admit):
        if len(members) >= MEMBERS_MAX:
            raise Rejection("too_many_members", f"the consortium has {MEMBERS_MAX} members")
        _check_unique_id(change.member.id, members)
        _check_unique_public_key(change.member.public_key, members)
        _check_unique_endpoint(change.member.endpoint, members)
    elif isinstance(change, Remove):
        if all(member.id != change.member_id for member in members):
            raise Rejection("unknown_member", f"{change.member_id!r} is not a member")
        if len(members) - 1 < MEMBERS_MIN:
            raise Rejection(
                "minimum_members",
                f"removing {change.member_id!r} would leave {len(members) - 1} members, "
                f"under {MEMBERS_MIN}",
            )
    else:
        _merged_parameters(parameters, change)


def _check_unique_id(member_id: str, members: list[Member]) -> None:
    if any(member.id == member_id for member in members):
        raise Rejection("duplicate_member_id", f"{member_id!r} is already a member")


def _check_unique_public_key(public_key: bytes, members: list[Member]) -> None:
    holder = next((member for member in members if member.public_key == public_key), None)
    if holder is not None:
        raise Rejection("duplicate_public_key", f"the key is already {holder.id!r}'s node key")


def _check_unique_endpoint(endpoint: str, members: list[Member]) -> None:
    holder = next((member for member in members if member.endpoint == endpoint), None)
    if holder is not None:
        raise Rejection("duplicate_endpoint", f"{endpoint} is already {holder.id!r}'s endpoint")


def _merged_parameters(base: ConsensusParameters, change: SetParameters) -> ConsensusParameters:
    try:
        return ConsensusParameters.from_canonical({**base.to_canonical(), **dict(change.values)})
    except ModelDecodeError as error:
        location, _, why = str(error).removeprefix("ConsensusParameters.").partition(": ")
        raise _invalid(f"change.parameters.{location}", why) from None


def _apply_change(change: Change, state: StateView) -> None:
    """Apply a change already checked by :func:`_check_change` on the same pending state."""
    members = _read_members(state)
    if isinstance(change, Admit):
        _write_members(state, [*members, change.member])
    elif isinstance(change, Remove):
        _write_members(state, [member for member in members if member.id != change.member_id])
        _drop_delegations_of(state, change.member_id)
    else:
        merged = _merged_parameters(_read_parameters(state), change)
        state.put(PARAMETERS_KEY, encode_record(merged.to_canonical()))


def _drop_delegations_of(state: StateView, member_id: str) -> None:
    """Forget every delegation of a removed member, so that re-admitting the same id later
    does not bring them back; at most DELEGATIONS_PER_MEMBER_MAX + 1 writes."""
    for public_key in _read_sorted_keys(state, delegates_key(member_id)):
        entries = _read_signer(state, public_key)
        assert member_id in entries, "the delegates index and the signer records disagree"
        del entries[member_id]
        _write_signer(state, public_key, entries)
    _write_sorted_keys(state, delegates_key(member_id), [])


# --- actions ----------------------------------------------------------------------------------


def _propose(
    arguments: ProposeArguments, transaction: Transaction, state: StateView, context: BlockContext
) -> dict[str, Any]:
    context.authorization(arguments.proposer, GOVERN)
    _check_change(arguments.change, _read_members(state), _read_parameters(state))
    open_ids = _sweep_expired(state, context.height)
    if len(open_ids) >= OPEN_PROPOSALS_MAX:
        raise Rejection(
            "too_many_open_proposals",
            f"{OPEN_PROPOSALS_MAX} proposals are open; vote on them or let them expire",
        )
    proposal_id = transaction.tx_id
    assert _read_proposal(state, proposal_id) is None, "the engine lets no tx_id in twice"
    _write_sorted_keys(state, OPEN_PROPOSALS_KEY, sorted([*open_ids, proposal_id]))
    proposal = Proposal(
        proposal_id=proposal_id,
        proposer=arguments.proposer,
        change=arguments.change,
        created_height=context.height,
        expiry_height=context.height + context.parameters.proposal_lifetime_blocks,
        yes_voters=(arguments.proposer,),
        no_voters=(),
        status=OPEN,
        closed_height=None,
    )
    proposal = _settle(proposal, approve=True, state=state, context=context)
    _write_proposal(state, proposal)
    return _outcome(proposal, context)


def _sweep_expired(state: StateView, height: int) -> list[bytes]:
    """Mark the open proposals past their expiry as expired; return the ids still open."""
    open_ids = _read_sorted_keys(state, OPEN_PROPOSALS_KEY)
    assert len(open_ids) <= OPEN_PROPOSALS_MAX
    still_open = []
    for proposal_id in open_ids:
        proposal = _read_proposal(state, proposal_id)
        assert proposal is not None and proposal.status == OPEN, "open index out of date"
        if height > proposal.expiry_height:
            closed = dataclasses.replace(
                proposal, status=EXPIRED, closed_height=proposal.expiry_height + 1
            )
            _write_proposal(state, closed)
        else:
            still_open.append(proposal_id)
    if len(still_open) != len(open_ids):
        _write_sorted_keys(state, OPEN_PROPOSALS_KEY, still_open)
    return still_open


def _vote(
    arguments: VoteArguments, transaction: Transaction, state: StateView, context: BlockContext
) -> dict[str, Any]:
    proposal = _read_proposal(state, arguments.proposal_id)
    label = arguments.proposal_id.hex()
    if proposal is None:
        raise Rejection("unknown_proposal", f"no proposal {label}")
    if proposal.status in (PASSED, REJECTED):
        raise Rejection(
            "proposal_closed", f"proposal {label} {proposal.status} at {proposal.closed_height}"
        )
    if proposal.status == EXPIRED or context.height > proposal.expiry_height:
        raise Rejection(
            "proposal_expired", f"proposal {label} expired after {proposal.expiry_height}"
        )
    context.authorization(arguments.voter, GOVERN)
    if proposal.has_voted(arguments.voter):
        raise Rejection("double_vote", f"{arguments.voter!r} already voted on {label}")
    if len(proposal.yes_voters) + len(proposal.no_voters) >= VOTERS_PER_PROPOSAL_MAX:
        raise Rejection("too_many_votes", f"proposal {label} holds {VOTERS_PER_PROPOSAL_MAX}")
    if arguments.approve:
        voters = tuple(sorted((*proposal.yes_voters, arguments.voter)))
        proposal = dataclasses.replace(proposal, yes_voters=voters)
    else:
        voters = tuple(sorted((*proposal.no_voters, arguments.voter)))
        proposal = dataclasses.replace(proposal, no_voters=voters)
    proposal = _settle(proposal, approve=arguments.approve, state=state, context=context)
    _write_proposal(state, proposal)
    return _outcome(proposal, context)


def _settle(
    proposal: Proposal, *, approve: bool, state: StateView, context: BlockContext
) -> Proposal:
    """Pass (on a yes vote) or reject (on a no vote) ``proposal`` if its votes now decide it.

    Only the votes of the members in force count, against their number. Passing applies the
    change to the pending state, after checking it again: if it no longer applies, the vote
    is refused with the reason and the proposal stays open.
    """
    current = {member.id for member in context.members}
    needed = required_votes(len(current), context.parameters.governance_threshold_percent)
    if approve and sum(voter in current for voter in proposal.yes_voters) >= needed:
        try:
            _check_change(proposal.change, _read_members(state), _read_parameters(state))
        except Rejection as rejection:
            raise Rejection(
                rejection.code,
                f"proposal {proposal.proposal_id.hex()} would pass, but its change no longer "
                f"applies: {rejection.reason}",
            ) from None
        _apply_change(proposal.change, state)
        return _close(proposal, PASSED, state, context.height)
    no_votes = sum(voter in current for voter in proposal.no_voters)
    if not approve and len(current) - no_votes < needed:
        return _close(proposal, REJECTED, state, context.height)
    return proposal


def _close(proposal: Proposal, status: str, state: StateView, height: int) -> Proposal:
    open_ids = _read_sorted_keys(state, OPEN_PROPOSALS_KEY)
    assert proposal.proposal_id in open_ids, "an open proposal is missing from its index"
    open_ids.remove(proposal.proposal_id)
    _write_sorted_keys(state, OPEN_PROPOSALS_KEY, open_ids)
    return dataclasses.replace(proposal, status=status, closed_height=height)


def _outcome(proposal: Proposal, context: BlockContext) -> dict[str, Any]:
    outcome: dict[str, Any] = {"proposal_id": proposal.proposal_id, "status": proposal.status}
    if proposal.status == PASSED:
        outcome["effective_height"] = context.height + 1
    return outcome


def _pending_member(
    member_id: str, signer: bytes, state: StateView, context: BlockContext
) -> tuple[list[Member], int]:
    """Check that ``signer`` is ``member_id``'s node key in force; return the pending member
    set and the member's index in it.

    Raises ``not_a_member`` (also when an earlier transaction of this block removed it) or
    ``wrong_signer`` (any other key, delegates included).
    """
    member = context.member(member_id)
    if member is None:
        raise Rejection("not_a_member", f"{member_id!r} is not a member")
    if signer != member.public_key:
        raise Rejection("wrong_signer", f"only {member_id!r}'s node key may do this")
    members = _read_members(state)
    index = next((i for i, pending in enumerate(members) if pending.id == member_id), None)
    if index is None:
        raise Rejection("not_a_member", f"{member_id!r} was removed earlier in this block")
    return members, index


def _replaced(member: Member, **changes: Any) -> Member:
    return Member.from_canonical({**member.to_canonical(), **changes})


def _rotate_key(
    arguments: RotateKeyArguments,
    transaction: Transaction,
    state: StateView,
    context: BlockContext,
) -> dict[str, Any]:
    members, index = _pending_member(arguments.member_id, transaction.signer, state, context)
    _check_unique_public_key(arguments.new_public_key, members)
    if arguments.member_id in _read_signer(state, arguments.new_public_key):
        raise Rejection(
            "self_delegation",
            f"the new key holds a delegation from {arguments.member_id!r}: revoke it first",
        )
    members[index] = _replaced(members[index], public_key=arguments.new_public_key)
    _write_members(state, members)
    return {"member_id": arguments.member_id, "effective_height": context.height + 1}


def _set_endpoint(
    arguments: SetEndpointArguments,
    transaction: Transaction,
    state: StateView,
    context: BlockContext,
) -> dict[str, Any]:
    members, index = _pending_member(arguments.member_id, transaction.signer, state, context)
    _check_unique_endpoint(arguments.endpoint, members)
    members[index] = _replaced(members[index], endpoint=arguments.endpoint)
    _write_members(state, members)
    return {"member_id": arguments.member_id, "effective_height": context.height + 1}


def _delegate(
    arguments: DelegateArguments,
    transaction: Transaction,
    state: StateView,
    context: BlockContext,
) -> dict[str, Any]:
    members, index = _pending_member(arguments.member_id, transaction.signer, state, context)
    if arguments.signer == members[index].public_key:
        raise Rejection("self_delegation", "a member's node key holds every role already")
    if arguments.expiry_height is not None and arguments.expiry_height <= context.height:
        raise _invalid(
            "expiry_height",
            f"a delegation made at height {context.height} takes effect at "
            f"{context.height + 1}, after an expiry at {arguments.expiry_height}",
        )
    entries = _read_signer(state, arguments.signer)
    delegates = _read_sorted_keys(state, delegates_key(arguments.member_id))
    if arguments.member_id not in entries:
        if len(entries) >= DELEGATIONS_PER_SIGNER_MAX:
            raise Rejection(
                "too_many_delegations",
                f"the signer key acts for {DELEGATIONS_PER_SIGNER_MAX} members already",
            )
        if len(delegates) >= DELEGATIONS_PER_MEMBER_MAX:
            raise Rejection(
                "too_many_delegations",
                f"{arguments.member_id!r} delegates to {DELEGATIONS_PER_MEMBER_MAX} keys already",
            )
        _write_sorted_keys(
            state, delegates_key(arguments.member_id), sorted([*delegates, arguments.signer])
        )
    entries[arguments.member_id] = {
        "roles": list(arguments.roles),
        "expiry_height": arguments.expiry_height,
    }
    _write_signer(state, arguments.signer, entries)
    return {"member_id": arguments.member_id, "effective_height": context.height + 1}


def _revoke(
    arguments: RevokeArguments,
    transaction: Transaction,
    state: StateView,
    context: BlockContext,
) -> dict[str, Any]:
    _pending_member(arguments.member_id, transaction.signer, state, context)
    entries = _read_signer(state, arguments.signer)
    if arguments.member_id not in entries:
        raise Rejection(
            "unknown_delegation", f"{arguments.member_id!r} delegated nothing to that key"
        )
    del entries[arguments.member_id]
    _write_signer(state, arguments.signer, entries)
    delegates = _read_sorted_keys(state, delegates_key(arguments.member_id))
    delegates.remove(arguments.signer)
    _write_sorted_keys(state, delegates_key(arguments.member_id), delegates)
    return {"member_id": arguments.member_id, "effective_height": context.height + 1}


@dataclass(frozen=True, slots=True, kw_only=True)
class _Action:
    parse: Callable[[dict[str, Any]], Any]
    apply: Callable[[Any, Transaction, StateView, BlockContext], dict[str, Any]]


_ACTIONS: dict[str, _Action] = {
    "propose": _Action(parse=_parse_propose, apply=_propose),
    "vote": _Action(parse=_parse_vote, apply=_vote),
    "rotate_key": _Action(parse=_parse_rotate_key, apply=_rotate_key),
    "set_endpoint": _Action(parse=_parse_set_endpoint, apply=_set_endpoint),
    "delegate": _Action(parse=_parse_delegate, apply=_delegate),
    "revoke": _Action(parse=_parse_revoke, apply=_revoke),
}


# --- queries ----------------------------------------------------------------------------------


def _parse_hex32(text: str, what: str) -> bytes:
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ValueError(f"{what}: expected 64 lowercase hex digits")
    return bytes.fromhex(text)


def _query_proposal(rest: str, state: ReadView) -> Any:
    proposal = _read_proposal(state, _parse_hex32(rest, "proposal id"))
    if proposal is None:
        raise LookupError(f"no proposal {rest}")
    return proposal.to_document()


def _query_delegations(rest: str, state: ReadView) -> Any:
    try:
        member_id = _MEMBER_ID.validate_python(rest, strict=True)
    except ValidationError:
        raise ValueError(f"{rest!r} is not a member id") from None
    signers = _read_sorted_keys(state, delegates_key(member_id))
    if not signers and all(member.id != member_id for member in _read_members(state)):
        raise LookupError(f"{member_id!r} is not a member")
    return [
        {"signer": public_key, **_read_signer(state, public_key)[member_id]}
        for public_key in signers
    ]


def _query_signer(rest: str, state: ReadView) -> Any:
    public_key = _parse_hex32(rest, "public key")
    holder = next(
        (member.id for member in _read_members(state) if member.public_key == public_key), None
    )
    delegations = _read_signer(state, public_key)
    if holder is None and not delegations:
        raise LookupError(f"the key {rest} is neither a node key nor a delegate")
    return {"node_key_of": holder, "delegations": delegations}


_EXACT_QUERIES: dict[str, Callable[[ReadView], Any]] = {
    "members": lambda state: [member.to_canonical() for member in _read_members(state)],
    "parameters": lambda state: _read_parameters(state).to_canonical(),
    "proposals": lambda state: [
        _read_proposal_document(state, proposal_id)
        for proposal_id in _read_sorted_keys(state, OPEN_PROPOSALS_KEY)
    ],
}

_PREFIX_QUERIES: dict[str, Callable[[str, ReadView], Any]] = {
    "proposal": _query_proposal,
    "delegations": _query_delegations,
    "signer": _query_signer,
}


def _read_proposal_document(state: ReadView, proposal_id: bytes) -> dict[str, Any]:
    proposal = _read_proposal(state, proposal_id)
    assert proposal is not None, "the open index names a missing proposal"
    return proposal.to_document()


# --- the contract -----------------------------------------------------------------------------


def _read(name: str, path: str, answer: str, summary: str, document: str) -> QueryRoute:
    return QueryRoute(
        name=name,
        path=path,
        query=answer,
        answer=answer,
        summary=summary,
        tag="membership",
        document=document,
    )


MEMBERSHIP_QUERY_ROUTES: tuple[QueryRoute, ...] = (
    _read(
        "get_members",
        "/v1/members",
        "members",
        "The member set in force for the next block",
        "MembersDocument",
    ),
    _read(
        "get_parameters",
        "/v1/parameters",
        "parameters",
        "The consensus parameters in force",
        "ParametersDocument",
    ),
    _read(
        "get_proposals",
        "/v1/proposals",
        "proposals",
        "The open governance proposals",
        "ProposalsDocument",
    ),
)
"""The reads the node API serves for the membership contract (docs/api.md)."""


class MembershipContract(Contract):
    """Governance of the consortium: members, node keys, signer delegations, parameters."""

    name = MEMBERSHIP
    version = "1.0"
    query_routes = MEMBERSHIP_QUERY_ROUTES

    def genesis_state(self, genesis: Genesis, state: StateView) -> None:
        state.put(MEMBERS_KEY, encode_record([member.to_canonical() for member in genesis.members]))
        state.put(PARAMETERS_KEY, encode_record(genesis.parameters.to_canonical()))

    def check(self, transaction: Transaction) -> None:
        """Stateless validation of the arguments; raises ``unknown_action`` or
        ``invalid_arguments`` naming the field."""
        self._action(transaction).parse(transaction.args)

    def apply(self, transaction: Transaction, state: StateView, context: BlockContext) -> Any:
        """Apply one action; returns a small result document or raises a Rejection."""
        action = self._action(transaction)
        return action.apply(action.parse(transaction.args), transaction, state, context)

    def query(self, path: str, state: ReadView) -> Any:
        """Answer ``members``, ``parameters``, ``proposals``, ``proposal/<64 hex>``,
        ``delegations/<member id>`` or ``signer/<64 hex>``.

        Raises LookupError when nothing is at ``path`` (an unknown path included) and
        ValueError when the id or key in a path is malformed.
        """
        exact = _EXACT_QUERIES.get(path)
        if exact is not None:
            return exact(state)
        prefix, separator, rest = path.partition("/")
        handler = _PREFIX_QUERIES.get(prefix)
        if handler is None or not separator:
            raise LookupError(f"no membership query {path!r}")
        return handler(rest, state)

    @staticmethod
    def read_directory(view: ReadView) -> Directory:
        """The directory in the committed state seen by ``view`` (asserts it exists)."""
        members = tuple(_read_members(view))
        parameters = _read_parameters(view)
        return Directory(members=members, parameters=parameters, view=view)

    @staticmethod
    def members_hash_of(view: ReadView) -> bytes:
        """The hash of the member set in the state seen by ``view``: the ``members_hash`` of
        the next block's header."""
        return members_hash(_read_members(view))

    @staticmethod
    def _action(transaction: Transaction) -> _Action:
        action = _ACTIONS.get(transaction.action)
        if action is None:
            raise Rejection("unknown_action", f"membership has no action {transaction.action!r}")
        return action


def _delegation(member_id: str, entry: dict[str, Any]) -> Delegation:
    return Delegation(
        member_id=member_id,
        roles=frozenset(entry["roles"]),
        expiry_height=entry["expiry_height"],
    )
