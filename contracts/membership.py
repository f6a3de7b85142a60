"""The membership contract: the consortium's governance (members, issuers, keys, delegations,
parameters).

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

*Issuers* (version 1.1). The territory's other collectivities — a commune, a syndicate — anchor
acts in their own name without running a validator. Governance admits them (``admit_issuers``,
up to :data:`ISSUERS_PER_ADMISSION_MAX` at once) with an id, a name, an optional SIRET and their
own key, and may suspend, reinstate and remove them. An issuer's own key holds every role of
the issuer, like a member's node key, except ``membership.govern``: issuers never propose, vote,
or count in any quorum. With its own key an issuer rotates that key and delegates roles to its
applications' keys (``rotate_key``, ``delegate``, ``revoke`` name it in ``member_id``). A
suspended issuer's keys sign nothing until it is reinstated; a removed issuer's record stays (with
status ``removed``), its key and delegations are dropped, and its id is never given again, since
its acts carry it. Contracts authorize an issuer through the same
:meth:`~contracts.base.BlockContext.authorization` as a member.

*The format schedule* (version 1.2). The chain's header format (docs/format.md §4, §7.11) moves
to a later version at a height the members decide: a ``schedule_format`` change names the
version and the height. Passing it writes ``[version, height]`` into the schedule, which the
engine reads before each block (:func:`ledger.model.header_format_at`). The rules do not depend
on the formats this software knows: a node of older software executes the scheduling exactly
like a newer one (same state root), and only refuses, from that height, the blocks of a format
it cannot build or check. A scheduled entry whose height is not reached yet may be moved (the
same version, another height); one in force never changes.

*Members' SIRETs* (version 1.3). A member may carry its SIRET (the establishment number that
open-data exports name a collectivity by, docs/format.md §5.2): an ``admit`` change may give
it, and a ``set_member_siret`` change sets or clears it. A member without one has no ``siret``
field at all (never nil), so member sets written before 1.3 keep their bytes.

*Versions.* A chain that pins 1.0 runs 1.0's rules: the issuers' changes do not parse there, and
everything else is the same code, which finds no issuer in a 1.0 chain's state. Likewise a chain
that pins 1.0 or 1.1 does not know ``schedule_format``: it keeps its genesis format for good.
A chain that pins 1.0 to 1.2 refuses a ``siret`` in an ``admit`` change (an unexpected field,
as before) and does not know ``set_member_siret``.

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
``issuer/<id>``                 the issuer's record (``ledger.model.Issuer`` canonical map),
                                kept after its removal (1.1)
``issuer_key/<public key>``     the id of the issuer whose own key it is (1.1)
``issuer_count``                issuers ever admitted, an integer (1.1)
``formats``                     the format schedule ``[[version, from_height], …]``, versions
                                and heights increasing; absent until the first one passes
                                (1.2, :data:`ledger.namespace.FORMATS_STATE_KEY`)
==============================  ===============================================================

Keys hold raw bytes after their prefix (a 32-byte public key or proposal id); member and
issuer ids cannot contain ``/``, so the layout is unambiguous. ``signer/…`` and ``issuer/…``
are part of the chain format (docs/format.md §7.6, §7.10): receipts prove them.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import TypeAdapter, ValidationError

from contracts.base import (
    BlockContext,
    Contract,
    Delegation,
    QueryParameter,
    QueryRoute,
    ReadView,
    Rejection,
    StateView,
    decode_record,
    encode_record,
)
from ledger import crypto
from ledger.model import (
    FORMAT_SCHEDULE_ENTRIES_MAX,
    ISSUER_ACTIVE,
    ISSUER_REMOVED,
    ISSUER_SUSPENDED,
    MEMBERS_MAX,
    CanonicalModel,
    ConsensusParameters,
    DisplayName,
    Endpoint,
    Genesis,
    Issuer,
    Member,
    MemberId,
    ModelDecodeError,
    PublicKey,
    Siret,
    Transaction,
    members_hash,
)
from ledger.namespace import (
    FORMATS_STATE_KEY,
    MEMBERS_STATE_KEY,
    MEMBERSHIP_NAMESPACE,
    issuer_state_key,
    signer_state_key,
)

__all__ = [
    "DELEGATIONS_PER_MEMBER_MAX",
    "DELEGATIONS_PER_SIGNER_MAX",
    "FORMAT_VERSION_MAX",
    "GOVERN",
    "ISSUERS_MAX",
    "ISSUERS_PAGE_DEFAULT",
    "ISSUERS_PAGE_MAX",
    "ISSUERS_PER_ADMISSION_MAX",
    "MEMBERSHIP",
    "MEMBERSHIP_QUERY_ROUTES",
    "MEMBERS_MIN",
    "OPEN_PROPOSALS_MAX",
    "ROLES_PER_DELEGATION_MAX",
    "ROLE_CHARACTERS_MAX",
    "VOTERS_PER_PROPOSAL_MAX",
    "Admit",
    "AdmitIssuers",
    "Directory",
    "IssuerApplication",
    "MembershipContract",
    "Proposal",
    "Remove",
    "ScheduleFormat",
    "SetIssuerStatus",
    "SetMemberSiret",
    "SetParameters",
    "issuer_key",
    "required_votes",
]

MEMBERSHIP = MEMBERSHIP_NAMESPACE.contract
"""The contract's name, its namespace: part of the chain format (ledger/namespace.py)."""

GOVERN = "membership.govern"
"""The role that lets a key propose changes and vote for a member."""

# --- limits -----------------------------------------------------------------------------------
# These are rules of the contract, not settings: every member must apply the same ones or the
# consortium splits, so they are constants of the version (changing one changes the version;
# version 1.1 added the issuers' limits and changed none of 1.0's).

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
ISSUERS_MAX = 100_000
"""Issuers ever admitted, removed ones included (their ids stay reserved: acts carry them).
About 200 bytes of state each; a territory has hundreds, France some 35,000 communes."""
ISSUERS_PER_ADMISSION_MAX = 50
"""Issuers one ``admit_issuers`` change admits, so that a proposal fits one transaction and
an urban community's communes join in a few votes."""
ISSUERS_PAGE_MAX = 1000
"""Issuers one ``issuers`` query returns (``limit``); the default is ISSUERS_PAGE_DEFAULT."""
ISSUERS_PAGE_DEFAULT = 100
FORMAT_VERSION_MAX = 65_535
"""The highest header format a ``schedule_format`` change may name (1.2). Not the formats this
software knows: an older node must accept the scheduling of a format it does not know yet."""

_ROLE_PATTERN = re.compile(r"[a-z]+\.[a-z_]+")

# --- state layout (the one place where this contract's keys are built) -----------------------

MEMBERS_KEY = MEMBERSHIP_NAMESPACE.local(MEMBERS_STATE_KEY)
"""The member set: its full state key is a format constant (docs/format.md §7.8)."""
PARAMETERS_KEY = b"parameters"
SIGNER_PREFIX = b"signer/"
DELEGATES_PREFIX = b"delegates/"
PROPOSAL_PREFIX = b"proposal/"
OPEN_PROPOSALS_KEY = b"open_proposals"
ISSUER_PREFIX = b"issuer/"
ISSUER_KEY_PREFIX = b"issuer_key/"
ISSUER_COUNT_KEY = b"issuer_count"
FORMATS_KEY = MEMBERSHIP_NAMESPACE.local(FORMATS_STATE_KEY)
"""The format schedule (1.2): its full state key is a format constant (docs/format.md §7.11)."""


def signer_key(public_key: bytes) -> bytes:
    """The state key of what ``public_key`` may do for each member or issuer (its full key is
    a format constant, :func:`ledger.namespace.signer_state_key`: receipts prove it)."""
    return MEMBERSHIP_NAMESPACE.local(signer_state_key(public_key))


def issuer_key(issuer_id: str) -> bytes:
    """The state key of an issuer's record (:func:`ledger.namespace.issuer_state_key`)."""
    return MEMBERSHIP_NAMESPACE.local(issuer_state_key(issuer_id))


def issuer_key_index(public_key: bytes) -> bytes:
    """The state key naming the issuer whose own key ``public_key`` is."""
    return ISSUER_KEY_PREFIX + public_key


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

DIRECTORY_READS_KEPT_MAX = 65_536
"""Issuer records and signer keys a directory carries over from one height to the next (a
cache, not a rule of the contract: :meth:`Directory.keep_reads_of`)."""


@dataclass(frozen=True, slots=True)
class Directory:
    """Who the members are and what each signer key may do, at one height.

    Delegations are read on demand from ``view``, the committed membership state.
    """

    members: tuple[Member, ...]
    parameters: ConsensusParameters
    view: ReadView
    _cache: dict[bytes, tuple[Delegation, ...]] = field(default_factory=dict)
    _issuers: dict[str, Issuer | None] = field(default_factory=dict)

    def keep_reads_of(self, previous: Directory) -> bool:
        """Take over what ``previous`` read of issuers and signer keys, when the caller knows
        that nothing in the membership namespace changed between the two (a block of acts):
        a territory's issuers signing in turn are then not read and decoded again at every
        height. Keeps nothing once ``previous`` holds :data:`DIRECTORY_READS_KEPT_MAX` reads
        (a bound on memory: unknown keys are remembered too). Returns whether it kept them."""
        assert self.members == previous.members and self.parameters == previous.parameters
        if len(previous._cache) + len(previous._issuers) > DIRECTORY_READS_KEPT_MAX:
            return False
        self._cache.update(previous._cache)
        self._issuers.update(previous._issuers)
        return True

    def issuer(self, issuer_id: str) -> Issuer | None:
        """The issuer ``issuer_id`` (whatever its status), or None."""
        if issuer_id not in self._issuers:
            self._issuers[issuer_id] = _read_issuer(self.view, issuer_id)
        return self._issuers[issuer_id]

    def delegations_for(self, public_key: bytes) -> tuple[Delegation, ...]:
        """What ``public_key`` may do: a member's node key or an issuer's own key first,
        then delegated roles."""
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
        holder = self.view.get(issuer_key_index(public_key))
        if holder is not None:
            own += (
                Delegation(
                    member_id=decode_record(holder),
                    roles=frozenset(),
                    expiry_height=None,
                    is_member_key=True,
                ),
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


class IssuerApplication(CanonicalModel):
    """An issuer as an ``admit_issuers`` change names it (before it has a status)."""

    id: MemberId
    name: DisplayName
    siret: Siret | None
    public_key: PublicKey


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmitIssuers:
    """Admit issuers (version 1.1): each signs, in its own name, from the next height."""

    issuers: tuple[IssuerApplication, ...]

    def to_canonical(self) -> dict[str, Any]:
        return {
            "kind": "admit_issuers",
            "issuers": [issuer.to_canonical() for issuer in self.issuers],
        }


SUSPEND_ISSUER = "suspend_issuer"
REINSTATE_ISSUER = "reinstate_issuer"
REMOVE_ISSUER = "remove_issuer"
_ISSUER_TRANSITIONS = {
    SUSPEND_ISSUER: ((ISSUER_ACTIVE,), ISSUER_SUSPENDED),
    REINSTATE_ISSUER: ((ISSUER_SUSPENDED,), ISSUER_ACTIVE),
    REMOVE_ISSUER: ((ISSUER_ACTIVE, ISSUER_SUSPENDED), ISSUER_REMOVED),
}
"""Change kind -> (the statuses it applies to, the status it sets)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SetIssuerStatus:
    """Suspend, reinstate or remove an issuer (version 1.1)."""

    kind: str
    issuer_id: str

    def to_canonical(self) -> dict[str, Any]:
        return {"kind": self.kind, "issuer_id": self.issuer_id}


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleFormat:
    """Move the chain to header format ``format_version`` from block ``height`` (version 1.2)."""

    format_version: int
    height: int

    def to_canonical(self) -> dict[str, Any]:
        return {
            "kind": "schedule_format",
            "format_version": self.format_version,
            "height": self.height,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class SetMemberSiret:
    """Set (or, with None, clear) the SIRET of the member ``member_id`` (version 1.3)."""

    member_id: str
    siret: str | None

    def to_canonical(self) -> dict[str, Any]:
        return {"kind": "set_member_siret", "member_id": self.member_id, "siret": self.siret}


Change = (
    Admit
    | Remove
    | SetParameters
    | AdmitIssuers
    | SetIssuerStatus
    | ScheduleFormat
    | SetMemberSiret
)

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


def _require_fields(
    document: Any, names: tuple[str, ...], where: str = "", optional: tuple[str, ...] = ()
) -> None:
    """Check that ``document`` is a map with exactly the fields ``names`` (and perhaps some of
    ``optional``), or raise invalid_arguments naming the first field (``where`` is the path to
    the document)."""
    if not isinstance(document, dict) or not all(isinstance(key, str) for key in document):
        raise _invalid(where or "args", "expected a map with text keys")
    prefix = f"{where}." if where else ""
    for name in sorted(document):
        if name not in names and name not in optional:
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


def _parse_propose(
    args: dict[str, Any], parsers: Mapping[str, Callable[[dict[str, Any]], Change]]
) -> ProposeArguments:
    _require_fields(args, ("proposer", "change"))
    return ProposeArguments(
        proposer=_member_id(args["proposer"], "proposer"),
        change=_parse_change(args["change"], parsers),
    )


def _parse_change(
    document: Any, parsers: Mapping[str, Callable[[dict[str, Any]], Change]] | None = None
) -> Change:
    """A change of one of the kinds ``parsers`` knows (by default, every kind)."""
    parsers = _CHANGE_PARSERS if parsers is None else parsers
    if not isinstance(document, dict):
        raise _invalid("change", "expected a map")
    kind = document.get("kind")
    parser = parsers.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise _invalid("change.kind", f"expected one of {', '.join(sorted(parsers))}")
    return parser(document)


_MEMBER_FIELDS_1_0 = ("id", "name", "public_key", "endpoint")
"""A member's fields before 1.3; 1.3 adds the optional ``siret``."""
assert set(Member.model_fields) == {*_MEMBER_FIELDS_1_0, "siret"}


def _parse_admit_1_0(document: dict[str, Any]) -> Admit:
    """An ``admit`` of versions 1.0 to 1.2: a ``siret`` is an unexpected field there."""
    return _parse_admit(document, optional=())


def _parse_admit(document: dict[str, Any], optional: tuple[str, ...] = ("siret",)) -> Admit:
    _require_fields(document, ("kind", "member"), "change")
    _require_fields(document["member"], _MEMBER_FIELDS_1_0, "change.member", optional)
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


def _parse_admit_issuers(document: dict[str, Any]) -> AdmitIssuers:
    _require_fields(document, ("kind", "issuers"), "change")
    entries = document["issuers"]
    if not isinstance(entries, list) or not 1 <= len(entries) <= ISSUERS_PER_ADMISSION_MAX:
        raise _invalid(
            "change.issuers", f"expected a list of 1 to {ISSUERS_PER_ADMISSION_MAX} issuers"
        )
    issuers = []
    for index, entry in enumerate(entries):
        where = f"change.issuers.{index}"
        _require_fields(entry, tuple(IssuerApplication.model_fields), where)
        try:
            issuers.append(IssuerApplication.from_canonical(entry))
        except ModelDecodeError as error:
            location, _, why = str(error).removeprefix("IssuerApplication.").partition(": ")
            raise _invalid(f"{where}.{location}", why) from None
    for label in ("id", "public_key"):
        values = [getattr(issuer, label) for issuer in issuers]
        if len(set(values)) != len(values):
            raise _invalid("change.issuers", f"two issuers share one {label}")
    return AdmitIssuers(issuers=tuple(issuers))


def _parse_schedule_format(document: dict[str, Any]) -> ScheduleFormat:
    _require_fields(document, ("kind", "format_version", "height"), "change")
    version = document["format_version"]
    if type(version) is not int or not 2 <= version <= FORMAT_VERSION_MAX:
        raise _invalid(
            "change.format_version", f"expected an integer from 2 to {FORMAT_VERSION_MAX}"
        )
    height = document["height"]
    if type(height) is not int or not 2 <= height <= _HEIGHT_MAX:
        raise _invalid("change.height", "expected a height (2 to 2**63 - 1)")
    return ScheduleFormat(format_version=version, height=height)


_SIRET = TypeAdapter(Siret)


def _parse_set_member_siret(document: dict[str, Any]) -> SetMemberSiret:
    _require_fields(document, ("kind", "member_id", "siret"), "change")
    siret = document["siret"]
    if siret is not None:
        try:
            siret = _SIRET.validate_python(siret, strict=True)
        except ValidationError:
            raise _invalid("change.siret", "expected 14 digits, or nil to clear it") from None
    return SetMemberSiret(
        member_id=_member_id(document["member_id"], "change.member_id"), siret=siret
    )


def _parse_issuer_status(document: dict[str, Any]) -> SetIssuerStatus:
    _require_fields(document, ("kind", "issuer_id"), "change")
    return SetIssuerStatus(
        kind=document["kind"], issuer_id=_member_id(document["issuer_id"], "change.issuer_id")
    )


_CHANGE_PARSERS_1_0: dict[str, Callable[[dict[str, Any]], Change]] = {
    "admit": _parse_admit_1_0,
    "remove": _parse_remove,
    "set_parameters": _parse_set_parameters,
}
"""The changes of version 1.0: members and parameters only."""
_CHANGE_PARSERS_1_1: dict[str, Callable[[dict[str, Any]], Change]] = {
    **_CHANGE_PARSERS_1_0,
    "admit_issuers": _parse_admit_issuers,
    **dict.fromkeys(_ISSUER_TRANSITIONS, _parse_issuer_status),
}
"""The changes of version 1.1: 1.0's and the issuers'."""
_CHANGE_PARSERS_1_2: dict[str, Callable[[dict[str, Any]], Change]] = {
    **_CHANGE_PARSERS_1_1,
    "schedule_format": _parse_schedule_format,
}
"""The changes of version 1.2: 1.1's and the format schedule."""
_CHANGE_PARSERS: dict[str, Callable[[dict[str, Any]], Change]] = {
    **_CHANGE_PARSERS_1_2,
    "admit": _parse_admit,
    "set_member_siret": _parse_set_member_siret,
}
"""The changes of version 1.3: 1.2's, a member's SIRET in ``admit`` and ``set_member_siret``."""


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


def _read_issuer(state: ReadView, issuer_id: str) -> Issuer | None:
    record = state.get(issuer_key(issuer_id))
    return None if record is None else Issuer.from_canonical(decode_record(record))


def _write_issuer(state: StateView, issuer: Issuer) -> None:
    state.put(issuer_key(issuer.id), encode_record(issuer.to_canonical()))


def _issuer_holding(state: ReadView, public_key: bytes) -> str | None:
    """The id of the issuer whose own key ``public_key`` is, or None."""
    record = state.get(issuer_key_index(public_key))
    return None if record is None else decode_record(record)


def _read_proposal(state: ReadView, proposal_id: bytes) -> Proposal | None:
    record = state.get(proposal_key(proposal_id))
    return None if record is None else Proposal.from_record(proposal_id, decode_record(record))


def _write_proposal(state: StateView, proposal: Proposal) -> None:
    state.put(proposal_key(proposal.proposal_id), encode_record(proposal.to_record()))


# --- validating and applying changes ---------------------------------------------------------


def _check_change(change: Change, state: StateView, context: BlockContext) -> None:
    """Raise the Rejection that ``change`` meets on the pending state (member set, issuers,
    parameters, format schedule) in the block of ``context``."""
    members = _read_members(state)
    if isinstance(change, ScheduleFormat):
        _scheduled_with(change, state, context)
    elif isinstance(change, Admit):
        if len(members) >= MEMBERS_MAX:
            raise Rejection("too_many_members", f"the consortium has {MEMBERS_MAX} members")
        _check_unique_id(change.member.id, members, state)
        _check_unique_public_key(change.member.public_key, members, state)
        _check_unique_endpoint(change.member.endpoint, members)
    elif isinstance(change, AdmitIssuers):
        count = _read_issuer_count(state)
        if count + len(change.issuers) > ISSUERS_MAX:
            raise Rejection(
                "too_many_issuers",
                f"{count} issuers were admitted; at most {ISSUERS_MAX} ever are",
            )
        for issuer in change.issuers:
            _check_unique_id(issuer.id, members, state)
            _check_unique_public_key(issuer.public_key, members, state)
    elif isinstance(change, SetIssuerStatus):
        issuer = _read_issuer(state, change.issuer_id)
        if issuer is None or issuer.status == ISSUER_REMOVED:
            raise Rejection("unknown_issuer", f"{change.issuer_id!r} is not an issuer")
        applies_to, _ = _ISSUER_TRANSITIONS[change.kind]
        if issuer.status not in applies_to:
            raise Rejection(
                "invalid_issuer_transition",
                f"{change.kind} does not apply to an issuer that is {issuer.status}",
            )
    elif isinstance(change, SetMemberSiret):
        if all(member.id != change.member_id for member in members):
            raise Rejection("unknown_member", f"{change.member_id!r} is not a member")
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
        _merged_parameters(_read_parameters(state), change)


def _read_schedule(state: ReadView) -> list[list[int]]:
    """The format schedule, ``[[version, from_height], …]`` (empty: the genesis format)."""
    record = state.get(FORMATS_KEY)
    entries = [] if record is None else decode_record(record)
    assert isinstance(entries, list) and len(entries) <= FORMAT_SCHEDULE_ENTRIES_MAX
    return entries


def _scheduled_with(
    change: ScheduleFormat, state: ReadView, context: BlockContext
) -> list[list[int]]:
    """The format schedule once ``change`` passes in the block of ``context``, or the
    Rejection it meets.

    Entries whose height is reached (in force, or in force once) never change. An entry not in
    force yet with the same version is moved to the new height; otherwise the new entry comes
    last. Versions and heights increase along the list, and the version exceeds the format in
    force at this height. None of this depends on the formats this software knows.
    """
    height = context.height
    if change.height <= height:
        raise Rejection(
            "format_height_passed",
            f"format {change.format_version} would take effect at height {change.height}, "
            f"which is not after this block ({height}): schedule a later height",
        )
    in_force = context.header_format
    if change.format_version <= in_force:
        raise Rejection(
            "format_not_newer",
            f"the chain is in format {in_force} at height {height}: a new format must be later",
        )
    entries = _read_schedule(state)
    kept = [entry for entry in entries if entry[1] <= height or entry[0] != change.format_version]
    moved = len(kept) != len(entries)
    for version, from_height in kept:
        if version >= change.format_version:
            raise Rejection(
                "format_not_newer",
                f"format {version} is scheduled from height {from_height} already: a new "
                f"format must be later than every scheduled one",
            )
        if from_height >= change.height:
            raise Rejection(
                "format_schedule_order",
                f"format {version} is scheduled from height {from_height}: format "
                f"{change.format_version} must take effect after it",
            )
    if not moved and len(entries) >= FORMAT_SCHEDULE_ENTRIES_MAX:
        raise Rejection(
            "too_many_format_changes",
            f"the schedule holds {FORMAT_SCHEDULE_ENTRIES_MAX} format changes, the most it may",
        )
    return [*kept, [change.format_version, change.height]]


def _query_formats(state: ReadView) -> dict[str, Any]:
    """The format schedule, as ``{"scheduled": [{"version", "height"}, …]}`` (every entry, in
    force or not: the format in force at a height needs the genesis's, see
    :func:`ledger.model.header_format_at`)."""
    return {
        "scheduled": [
            {"version": version, "height": from_height}
            for version, from_height in _read_schedule(state)
        ]
    }


def _check_unique_id(member_id: str, members: list[Member], state: ReadView) -> None:
    """A new member's or issuer's id must be no member's and no issuer's, ever: acts carry it."""
    if any(member.id == member_id for member in members):
        raise Rejection("duplicate_member_id", f"{member_id!r} is already a member")
    issuer = _read_issuer(state, member_id)
    if issuer is not None:
        raise Rejection(
            "duplicate_issuer_id",
            f"{member_id!r} is an issuer's id ({issuer.status}; a removed issuer's id is kept)",
        )


def _check_unique_public_key(public_key: bytes, members: list[Member], state: ReadView) -> None:
    """A member's node key or an issuer's own key is no other member's or issuer's."""
    holder = next((member for member in members if member.public_key == public_key), None)
    if holder is not None:
        raise Rejection("duplicate_public_key", f"the key is already {holder.id!r}'s node key")
    issuer_id = _issuer_holding(state, public_key)
    if issuer_id is not None:
        raise Rejection("duplicate_public_key", f"the key is already the issuer {issuer_id!r}'s")


def _read_issuer_count(state: ReadView) -> int:
    record = state.get(ISSUER_COUNT_KEY)
    return 0 if record is None else decode_record(record)


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


def _apply_change(change: Change, state: StateView, context: BlockContext) -> None:
    """Apply a change already checked by :func:`_check_change` on the same pending state, in
    the block of ``context``."""
    height = context.height
    members = _read_members(state)
    if isinstance(change, ScheduleFormat):
        state.put(FORMATS_KEY, encode_record(_scheduled_with(change, state, context)))
    elif isinstance(change, Admit):
        _write_members(state, [*members, change.member])
    elif isinstance(change, AdmitIssuers):
        for application in change.issuers:
            issuer = Issuer.from_canonical(
                {
                    **application.to_canonical(),
                    "status": ISSUER_ACTIVE,
                    "admitted_height": height,
                    "status_height": height,
                }
            )
            _write_issuer(state, issuer)
            state.put(issuer_key_index(issuer.public_key), encode_record(issuer.id))
        state.put(ISSUER_COUNT_KEY, encode_record(_read_issuer_count(state) + len(change.issuers)))
    elif isinstance(change, SetIssuerStatus):
        issuer = _read_issuer(state, change.issuer_id)
        assert issuer is not None
        _, status = _ISSUER_TRANSITIONS[change.kind]
        _write_issuer(state, _replaced_issuer(issuer, status=status, status_height=height))
        if status == ISSUER_REMOVED:
            state.delete(issuer_key_index(issuer.public_key))
            _drop_delegations_of(state, issuer.id)
    elif isinstance(change, SetMemberSiret):
        _write_members(
            state,
            [
                _with_siret(member, change.siret) if member.id == change.member_id else member
                for member in members
            ],
        )
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
    _require_member(arguments.proposer, context)
    context.authorization(arguments.proposer, GOVERN)
    _check_change(arguments.change, state, context)
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


def _require_member(member_id: str, context: BlockContext) -> None:
    """Only members govern: an issuer's keys never propose or vote."""
    if context.member(member_id) is None:
        raise Rejection("not_a_member", f"{member_id!r} is not a member (only members govern)")


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
    _require_member(arguments.voter, context)
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
            _check_change(proposal.change, state, context)
        except Rejection as rejection:
            raise Rejection(
                rejection.code,
                f"proposal {proposal.proposal_id.hex()} would pass, but its change no longer "
                f"applies: {rejection.reason}",
            ) from None
        _apply_change(proposal.change, state, context)
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


def _with_siret(member: Member, siret: str | None) -> Member:
    """The member with that SIRET, or with none (the field then absent, never nil)."""
    document = {**member.to_canonical(), "siret": siret}
    if siret is None:
        del document["siret"]
    return Member.from_canonical(document)


def _replaced_issuer(issuer: Issuer, **changes: Any) -> Issuer:
    return Issuer.from_canonical({**issuer.to_canonical(), **changes})


def _pending_issuer(
    issuer_id: str, signer: bytes, state: StateView, context: BlockContext
) -> Issuer:
    """Check that ``signer`` is the own key in force of ``issuer_id``, an active issuer;
    return its pending record (the committed one plus this block's earlier changes).

    Raises ``not_a_member`` (no such issuer, or removed), ``issuer_suspended`` or
    ``wrong_signer`` (any other key, delegates included).
    """
    issuer = context.issuer(issuer_id)
    if issuer is None or issuer.status == ISSUER_REMOVED:
        raise Rejection("not_a_member", f"{issuer_id!r} is neither a member nor an issuer")
    if issuer.status != ISSUER_ACTIVE:
        raise Rejection("issuer_suspended", f"the issuer {issuer_id!r} is suspended")
    if signer != issuer.public_key:
        raise Rejection("wrong_signer", f"only the issuer {issuer_id!r}'s own key may do this")
    pending = _read_issuer(state, issuer_id)
    assert pending is not None, "an issuer's record is never deleted"
    if pending.status != ISSUER_ACTIVE:
        raise Rejection(
            "issuer_suspended",
            f"the issuer {issuer_id!r} was {pending.status} earlier in this block",
        )
    return pending


def _principal_key(
    principal_id: str, signer: bytes, state: StateView, context: BlockContext
) -> tuple[bytes, bool]:
    """The own key of ``principal_id`` (a member in force or an active issuer), checked to be
    the ``signer``, and whether the principal is an issuer; raises as :func:`_pending_member`
    and :func:`_pending_issuer` do."""
    if context.member(principal_id) is not None:
        members, index = _pending_member(principal_id, signer, state, context)
        return members[index].public_key, False
    return _pending_issuer(principal_id, signer, state, context).public_key, True


def _rotate_key(
    arguments: RotateKeyArguments,
    transaction: Transaction,
    state: StateView,
    context: BlockContext,
) -> dict[str, Any]:
    _, is_issuer = _principal_key(arguments.member_id, transaction.signer, state, context)
    _check_unique_public_key(arguments.new_public_key, _read_members(state), state)
    if arguments.member_id in _read_signer(state, arguments.new_public_key):
        raise Rejection(
            "self_delegation",
            f"the new key holds a delegation from {arguments.member_id!r}: revoke it first",
        )
    if is_issuer:
        issuer = _read_issuer(state, arguments.member_id)
        assert issuer is not None
        state.delete(issuer_key_index(issuer.public_key))
        state.put(issuer_key_index(arguments.new_public_key), encode_record(issuer.id))
        _write_issuer(state, _replaced_issuer(issuer, public_key=arguments.new_public_key))
    else:
        members, index = _pending_member(arguments.member_id, transaction.signer, state, context)
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
    own_key, is_issuer = _principal_key(arguments.member_id, transaction.signer, state, context)
    if arguments.signer == own_key:
        raise Rejection("self_delegation", "a principal's own key holds every role already")
    if is_issuer and GOVERN in arguments.roles:
        raise Rejection("unauthorized_role", f"an issuer does not govern: {GOVERN} is a member's")
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
    _principal_key(arguments.member_id, transaction.signer, state, context)
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


def _actions(changes: Mapping[str, Callable[[dict[str, Any]], Change]]) -> dict[str, _Action]:
    """The actions of a version whose proposals may make ``changes``."""
    return {
        "propose": _Action(parse=lambda args: _parse_propose(args, changes), apply=_propose),
        **_COMMON_ACTIONS,
    }


_COMMON_ACTIONS: dict[str, _Action] = {
    "vote": _Action(parse=_parse_vote, apply=_vote),
    "rotate_key": _Action(parse=_parse_rotate_key, apply=_rotate_key),
    "set_endpoint": _Action(parse=_parse_set_endpoint, apply=_set_endpoint),
    "delegate": _Action(parse=_parse_delegate, apply=_delegate),
    "revoke": _Action(parse=_parse_revoke, apply=_revoke),
}
_ACTIONS_1_0 = _actions(_CHANGE_PARSERS_1_0)
_ACTIONS_1_1 = _actions(_CHANGE_PARSERS_1_1)
_ACTIONS_1_2 = _actions(_CHANGE_PARSERS_1_2)
_ACTIONS = _actions(_CHANGE_PARSERS)
_ACTIONS_BY_VERSION = {
    "1.0": _ACTIONS_1_0,
    "1.1": _ACTIONS_1_1,
    "1.2": _ACTIONS_1_2,
    "1.3": _ACTIONS,
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


def _parse_member_id(text: str) -> str:
    try:
        return _MEMBER_ID.validate_python(text, strict=True)
    except ValidationError:
        raise ValueError(f"{text!r} is not a member or issuer id") from None


def _query_delegations(rest: str, state: ReadView) -> Any:
    member_id = _parse_member_id(rest)
    signers = _read_sorted_keys(state, delegates_key(member_id))
    if (
        not signers
        and all(member.id != member_id for member in _read_members(state))
        and _read_issuer(state, member_id) is None
    ):
        raise LookupError(f"{member_id!r} is neither a member nor an issuer")
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
    issuer = _issuer_holding(state, public_key)
    if holder is None and issuer is None and not delegations:
        raise LookupError(f"the key {rest} is neither a node key, an issuer's key nor a delegate")
    return {"node_key_of": holder, "issuer_key_of": issuer, "delegations": delegations}


def _query_issuer(rest: str, state: ReadView) -> Any:
    issuer = _read_issuer(state, _parse_member_id(rest))
    if issuer is None:
        raise LookupError(f"{rest!r} is not an issuer")
    return issuer.to_canonical()


def _query_issuers(query_string: str, state: ReadView) -> Any:
    """``issuers?after=<id>&limit=N``: issuers (every status) in id order, after ``after``."""
    parameters: dict[str, str] = {}
    for pair in query_string.split("&") if query_string else []:
        name, separator, value = pair.partition("=")
        if not separator or name not in ("after", "limit") or name in parameters:
            raise ValueError("parameters are after=<issuer id> and limit=N, once each")
        parameters[name] = value
    after = _parse_member_id(parameters["after"]) if "after" in parameters else None
    limit_text = parameters.get("limit", str(ISSUERS_PAGE_DEFAULT))
    if not re.fullmatch(r"[0-9]{1,4}", limit_text) or not 1 <= int(limit_text) <= ISSUERS_PAGE_MAX:
        raise ValueError(f"limit: expected an integer from 1 to {ISSUERS_PAGE_MAX}")
    found = []
    for key, value in state.items(ISSUER_PREFIX):
        # Keys end with the raw id, so they come in id order; the scan reads at most
        # ISSUERS_MAX keys (a stated bound), and decodes only what it returns.
        if after is not None and key[len(ISSUER_PREFIX) :].decode() <= after:
            continue
        found.append(decode_record(value))
        if len(found) >= int(limit_text):
            break
    return found


_EXACT_QUERIES: dict[str, Callable[[ReadView], Any]] = {
    "members": lambda state: [member.to_canonical() for member in _read_members(state)],
    "parameters": lambda state: _read_parameters(state).to_canonical(),
    "proposals": lambda state: [
        _read_proposal_document(state, proposal_id)
        for proposal_id in _read_sorted_keys(state, OPEN_PROPOSALS_KEY)
    ],
    "formats": _query_formats,
}

_PREFIX_QUERIES: dict[str, Callable[[str, ReadView], Any]] = {
    "proposal": _query_proposal,
    "delegations": _query_delegations,
    "signer": _query_signer,
    "issuer": _query_issuer,
}


def _read_proposal_document(state: ReadView, proposal_id: bytes) -> dict[str, Any]:
    proposal = _read_proposal(state, proposal_id)
    assert proposal is not None, "the open index names a missing proposal"
    return proposal.to_document()


# --- the contract -----------------------------------------------------------------------------


_ISSUER_ID_TEXT = r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?"
"""An issuer's id, as a member's (``ledger.model.MemberId``): checked by the API first."""
_ISSUER_ID_INVALID = "an issuer is an id of lowercase letters, digits and '-' (at most 48)"
_ISSUERS_LIMIT = re.compile(r"[0-9]{1,4}")
"""The API's check of ``limit`` (the contract checks its range: 1 to ISSUERS_PAGE_MAX)."""


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
    QueryRoute(
        name="get_issuers",
        path="/v1/issuers",
        query="issuers",
        answer="issuers",
        summary="The issuers admitted by governance (every status), in id order, a page at a time",
        tag="membership",
        document="IssuersDocument",
        parameters=(
            QueryParameter(
                name="after",
                location="query",
                schema={"type": "string", "pattern": f"^{_ISSUER_ID_TEXT}$", "maxLength": 48},
                description="the last id of the previous page: the page starts after it",
                pattern=re.compile(_ISSUER_ID_TEXT),
                invalid="after: an issuer id (lowercase letters, digits and '-', at most 48)",
            ),
            QueryParameter(
                name="limit",
                location="query",
                schema={"type": "integer", "minimum": 1, "maximum": ISSUERS_PAGE_MAX},
                description=f"most issuers to return (default {ISSUERS_PAGE_DEFAULT})",
                pattern=_ISSUERS_LIMIT,
                invalid=f"limit: an integer from 1 to {ISSUERS_PAGE_MAX}",
            ),
        ),
        problems=("invalid_query", "invalid_parameter", "contract_not_enabled"),
        malformed="invalid_query",
    ),
    QueryRoute(
        name="get_issuer",
        path="/v1/issuers/{issuer}",
        query="issuer/{issuer}",
        answer="issuer",
        summary="One issuer: its name, SIRET, key and status",
        tag="membership",
        document="IssuerDocument",
        parameters=(
            QueryParameter(
                name="issuer",
                location="path",
                schema={"type": "string", "pattern": f"^{_ISSUER_ID_TEXT}$", "maxLength": 48},
                description="the issuer's id",
                pattern=re.compile(_ISSUER_ID_TEXT),
                invalid=_ISSUER_ID_INVALID,
            ),
        ),
        problems=("invalid_query", "not_found", "contract_not_enabled"),
        not_found="not_found",
        malformed="invalid_query",
        confirmed_reads=True,
    ),
)
"""The reads the node API serves for the membership contract (docs/api.md)."""


class MembershipContract(Contract):
    """Governance of the consortium: members, issuers, node keys, signer delegations,
    parameters, (from 1.2) the chain's format schedule and (from 1.3) members' SIRETs."""

    name = MEMBERSHIP
    version = "1.3"
    older_versions = ("1.2", "1.1", "1.0")
    query_routes = MEMBERSHIP_QUERY_ROUTES

    def __init__(self, *, rules: str = "1.3") -> None:
        self._actions = _ACTIONS_BY_VERSION[rules]
        """1.1 adds the issuers' changes to 1.0, 1.2 the format schedule to 1.1, 1.3 the
        members' SIRETs to 1.2; everything else is the same code: a 1.0 chain has no issuer, a
        1.0 or 1.1 chain no format schedule and a chain before 1.3 no member SIRET (unless its
        genesis gave one), so the rules that read them find none."""

    @classmethod
    def at_version(cls, version: str) -> MembershipContract:
        if version not in (cls.version, *cls.older_versions):
            raise ValueError(f"{cls.name} {cls.version} does not run version {version}")
        return cls(rules=version)

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
        """Answer ``members``, ``parameters``, ``proposals``, ``formats``, ``proposal/<64 hex>``,
        ``delegations/<member or issuer id>``, ``signer/<64 hex>``, ``issuer/<id>`` or
        ``issuers[?after=<id>&limit=N]``.

        Raises LookupError when nothing is at ``path`` (an unknown path included) and
        ValueError when the id or key in a path is malformed.
        """
        exact = _EXACT_QUERIES.get(path)
        if exact is not None:
            return exact(state)
        if path == "issuers" or path.startswith("issuers?"):
            return _query_issuers(path.partition("?")[2], state)
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

    def _action(self, transaction: Transaction) -> _Action:
        action = self._actions.get(transaction.action)
        if action is None:
            raise Rejection("unknown_action", f"membership has no action {transaction.action!r}")
        return action


def _delegation(member_id: str, entry: dict[str, Any]) -> Delegation:
    return Delegation(
        member_id=member_id,
        roles=frozenset(entry["roles"]),
        expiry_height=entry["expiry_height"],
    )
