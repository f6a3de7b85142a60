"""The deeds contract: administrative acts of the member collectivities, anchored on chain.

Theory of operation
-------------------
A member collectivity (the *issuer*) anchors each of its administrative acts — a deliberation,
a decree, a permit, a published dataset — as the SHA-256 digest of the signed document plus a
little public metadata: an issuer-scoped reference (``2026-DEL-042``), a kind, the act's date,
a short title. Anyone holding a copy of the document can then ask the chain "is this an
authentic act, and is it still in force?" (query ``digest/<hex>``) and get an answer that a
node can prove against the state root of a certified header.

An act then lives through a small lifecycle::

    anchor
      |
      v        amend               amend (again)
    in_force ---------> amended <-----+
      |                   |    |      |
      |                   |    +------+
      +---------+---------+
                |
                +-- supersede --> superseded   (terminal)
                +-- withdraw  --> withdrawn    (terminal)
                +-- annul     --> annulled     (terminal)

``in_force`` and ``amended`` are *active*; ``superseded``, ``withdrawn`` and ``annulled`` are
*terminal*: nothing changes a terminal act any more. Amending and superseding link two acts of
the same issuer both ways (``amended_by`` / ``amends``, ``superseded_by`` / ``supersedes``);
the act named by ``by_reference`` must be active and different from the act it changes.

Every change of an act's status (the anchoring included) appends one entry to the act's
history, stored as its own state entry so that the act record stays small: height, block
timestamp, action, resulting status, tx_id, signer key, and the action's ``by_reference`` /
``reason`` / ``decision_reference``. The act named by ``by_reference`` gets a new link in its
record but no history entry: the change is recorded once, in the history of the act it changes.

Deliberation data (version 1.1). The anchoring of a ``deliberation`` may also carry what the
open-data format of deliberations (SCDL "Délibérations") publishes: its subject in the ACTES
nomenclature (``subject_code``, ``subject_name``), its vote counts (``votes``: ``entitled``,
``cast``, ``for``, ``against``, ``abstention``), its budget (``budget_year``, ``budget_name``)
and its control of legality (``control_entity``, the prefecture or sub-prefecture that received
it, and ``control_date``). Each is optional and checked (:data:`DELIBERATION_ARGUMENTS`); an act
of another kind may not carry them. An act record holds only the ones given, so an act anchored
under 1.1 without them has the very bytes it would have had under 1.0, and a chain that pins
1.0 refuses them as unexpected arguments, as it always did.

Who may sign: the issuer's own node key holds every role; another key acts for the issuer only
through a delegation of the role ``deeds.issue`` (anchor) or ``deeds.status`` (amend,
supersede, withdraw, annul), read by the engine from the membership state
(:meth:`contracts.base.BlockContext.authorization`).

Rejection codes: ``invalid_arguments`` and ``unknown_action`` (stateless, from :meth:`check`);
``not_a_member``, ``wrong_signer``, ``expired_delegation``, ``unauthorized_role``
(authorization); ``duplicate_reference``, ``duplicate_digest``, ``unknown_act``,
``invalid_transition``, ``duplicate_link`` and ``link_limit`` (the rules above). Every limit
below is part of the contract's version: changing one changes which transactions a node
accepts, so it needs a new version pinned in the genesis.

State layout (namespace ``deeds/``)
-----------------------------------
Values are canonical msgpack (:func:`contracts.base.encode_record`). ``P(text)`` is the
canonical msgpack encoding of a string (:func:`ledger.encoding.pack`): its header holds its
length, so a sequence of ``P`` parts can never be read two ways even though references may
hold ``/``. A raw string is only ever the *last* part of a key, where nothing follows it; there
it keeps byte order equal to the string's order (a ``P`` part sorts by length first).

=================================================  =============================================
key                                                value
=================================================  =============================================
``act/`` P(issuer) reference                       the act record (:class:`Act`)
``digest/`` digest P(issuer)                       ``{"reference": reference}``; the digest is
                                                   32 bytes; one act per issuer and digest
``date/`` P(issuer) act_date reference             nil (an index entry); act_date is 10 ASCII
                                                   bytes, so entries sort by date, then reference
``history/`` P(issuer) P(reference) sequence       a history entry (:class:`HistoryEntry`); the
                                                   sequence is 4 bytes big-endian, from 0
=================================================  =============================================

Personal data stays off chain
-----------------------------
The chain is replicated to every member and kept forever; it cannot forget. It therefore holds
no personal data: the document itself stays with the issuer (only its digest is anchored), the
free text fields are short and bounded and must describe the act, never name a private person.
Vote counts are counts: who voted what stays in the minutes, off chain.
When an act concerns a person (a permit, an individual decision), the issuer may anchor a
*salted commitment* (:func:`person_commitment`) instead: the salt stays with the issuer, who
can prove the link by revealing it; once the salt is destroyed, nobody can link the on-chain
value to the person any more, and without the salt nobody can test guesses of the value.

Determinism: no clock, no randomness, no I/O; the block time comes from the context; only
sorted key iteration; records are built from validated arguments whose order the canonical
encoding fixes.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, ClassVar

from contracts.base import (
    BlockContext,
    Contract,
    QueryParameter,
    QueryRoute,
    ReadView,
    Rejection,
    StateView,
    decode_record,
    encode_record,
)
from ledger import encoding
from ledger.model import Transaction
from ledger.namespace import StateNamespace
from ledger.receipt import AnchorLayout

__all__ = [
    "ACTIVE_STATUSES",
    "DEEDS",
    "DEEDS_KEYS",
    "DEEDS_QUERY_ROUTES",
    "DELIBERATION_ARGUMENTS",
    "KINDS",
    "LINKS_PER_LIST_MAX",
    "PERSON_COMMITMENT_TAG",
    "QUERY_LIMIT_DEFAULT",
    "QUERY_LIMIT_MAX",
    "RECEIPT_ANCHOR",
    "ROLE_ISSUE",
    "ROLE_STATUS",
    "SUBJECT_CODES",
    "TERMINAL_STATUSES",
    "VOTE_COUNTS",
    "Act",
    "DeedsContract",
    "DeedsStateKeys",
    "HistoryEntry",
    "person_commitment",
    "verify_person_commitment",
]

DEEDS = "deeds"
ROLE_ISSUE = "deeds.issue"
"""The role that anchors acts for an issuer."""
ROLE_STATUS = "deeds.status"
"""The role that amends, supersedes, withdraws and annuls an issuer's acts."""

KINDS = frozenset(
    {"deliberation", "decree", "decision", "permit", "contract", "budget", "dataset", "other"}
)

IN_FORCE = "in_force"
AMENDED = "amended"
SUPERSEDED = "superseded"
WITHDRAWN = "withdrawn"
ANNULLED = "annulled"
ACTIVE_STATUSES = frozenset({IN_FORCE, AMENDED})
TERMINAL_STATUSES = frozenset({SUPERSEDED, WITHDRAWN, ANNULLED})

# --- limits (part of the contract's version) --------------------------------------------------

DIGEST_BYTES = 32
REFERENCE_CHARACTERS_MAX = 64
TITLE_CHARACTERS_MAX = 200
LEGAL_BASIS_CHARACTERS_MAX = 200
URL_CHARACTERS_MAX = 500
REASON_CHARACTERS_MAX = 280
DECISION_REFERENCE_CHARACTERS_MAX = 64
LINKS_PER_LIST_MAX = 64
"""At most this many references in each of ``amended_by``, ``amends`` and ``supersedes``."""
HISTORY_ENTRIES_PER_ACT_MAX = 1 + LINKS_PER_LIST_MAX + 1
"""The anchoring, at most one entry per amendment, one terminal change: a consequence of the
rules, asserted rather than checked."""
QUERY_LIMIT_DEFAULT = 100
QUERY_LIMIT_MAX = 1000
QUERY_PATH_CHARACTERS_MAX = 1024
SUBJECT_NAME_CHARACTERS_MAX = 256
BUDGET_NAME_CHARACTERS_MAX = 256
VOTE_COUNT_MAX = 100_000
"""The largest vote count: far above any assembly (the largest council has a few hundred)."""
SUBJECT_CODES = frozenset(
    f"{theme}.{sub}"
    for theme, subs in ((1, 7), (2, 3), (3, 6), (4, 5), (5, 8), (6, 5), (7, 10), (8, 9), (9, 4))
    for sub in range(1, subs + 1)
)
"""The level-2 subjects of the ACTES nomenclature (1.1 to 1.7, …, 9.1 to 9.4): the values
SCDL "Délibérations" allows in DELIB_MATIERE_CODE."""
VOTE_COUNTS = ("entitled", "cast", "for", "against", "abstention")
"""The counts of a deliberation's ``votes``: members entitled to vote, members who took part
(present or represented), votes for, against, and abstentions."""
PERSON_SALT_BYTES_MIN = 16
PERSON_SALT_BYTES_MAX = 255
"""The salt's length is hashed as one byte."""
PERSON_COMMITMENT_TAG = b"sceau/deeds/person/v1"
"""Hash domain of :func:`person_commitment` (a hash, not a signature: not in ledger.domains)."""

# --- keys: the one place where the state layout is built --------------------------------------

ACT_PREFIX = b"act/"
DIGEST_PREFIX = b"digest/"
DATE_PREFIX = b"date/"
HISTORY_PREFIX = b"history/"
ACT_DATE_BYTES = 10
SEQUENCE_BYTES = 4


def _part(text: str) -> bytes:
    """A self-delimiting key part: the canonical msgpack encoding of ``text``."""
    return encoding.pack(text)


def act_key(issuer: str, reference: str) -> bytes:
    return ACT_PREFIX + _part(issuer) + reference.encode()


def digest_key(digest: bytes, issuer: str) -> bytes:
    assert len(digest) == DIGEST_BYTES
    return DIGEST_PREFIX + digest + _part(issuer)


def date_prefix(issuer: str) -> bytes:
    return DATE_PREFIX + _part(issuer)


def date_key(issuer: str, act_date: str, reference: str) -> bytes:
    assert len(act_date) == ACT_DATE_BYTES
    return date_prefix(issuer) + act_date.encode() + reference.encode()


def history_prefix(issuer: str, reference: str) -> bytes:
    return HISTORY_PREFIX + _part(issuer) + _part(reference)


def history_key(issuer: str, reference: str, sequence: int) -> bytes:
    assert 0 <= sequence < HISTORY_ENTRIES_PER_ACT_MAX
    return history_prefix(issuer, reference) + sequence.to_bytes(SEQUENCE_BYTES, "big")


_STR8 = 0xD9
"""The msgpack header byte of a str8; shorter texts are fixstr (``0xa0 | length``)."""


@dataclass(frozen=True, slots=True)
class DeedsStateKeys:
    """The deeds contract's keys as the state tree holds them (docs/format.md §7.9).

    The functions above build the contract's own keys (what ``apply`` reads and writes
    through its namespaced view); this object puts them in the contract's namespace, for
    whoever reads the state tree directly: receipts, exports, the audit tools.
    """

    namespace: StateNamespace

    def act(self, issuer: str, reference: str) -> bytes:
        """The state key of an act's record: ``deeds/act/`` || P(issuer) || reference."""
        return self.namespace.key(act_key(issuer, reference))

    def history(self, issuer: str, reference: str, sequence: int) -> bytes:
        """The state key of entry ``sequence`` of an act's history."""
        return self.namespace.key(history_key(issuer, reference, sequence))

    @property
    def acts_prefix(self) -> bytes:
        """The prefix of every act record's state key, ``deeds/act/``."""
        return self.namespace.key(ACT_PREFIX)

    def act_of(self, state_key: bytes) -> tuple[str, str]:
        """``(issuer, reference)`` of an act record's state key (asserts it is one)."""
        rest = self.namespace.local(state_key)[len(ACT_PREFIX) :]
        # The issuer is a canonical msgpack text (a fixstr or a str8: ids are <= 48 bytes).
        header = 2 if rest[0] == _STR8 else 1
        length = rest[1] if header == 2 else rest[0] & 0x1F
        issuer = encoding.unpack(rest[: header + length])
        reference = rest[header + length :].decode()
        assert self.act(issuer, reference) == state_key, state_key
        return issuer, reference


DEEDS_KEYS = DeedsStateKeys(StateNamespace(DEEDS))


# --- records ----------------------------------------------------------------------------------

LINK_LISTS = ("amended_by", "amends", "supersedes")


@dataclass(frozen=True, slots=True, kw_only=True)
class Act:
    """The record of one anchored act: its metadata, its status and its links."""

    issuer: str
    reference: str
    kind: str
    digest: bytes
    act_date: str
    title: str
    legal_basis: str | None
    url: str | None
    person_commitment: bytes | None
    status: str
    anchored_height: int
    anchored_timestamp_ms: int
    status_height: int
    """The height of the last change of ``status`` (the anchoring height at first)."""
    amended_by: tuple[str, ...] = ()
    """References of the acts that amended this one, in order."""
    amends: tuple[str, ...] = ()
    """References of the acts this one amended, in order."""
    superseded_by: str | None = None
    supersedes: tuple[str, ...] = ()
    history_length: int = 0
    """How many history entries the act has (the next entry's sequence number)."""
    subject_code: str | None = None
    """Version 1.1, deliberations only, like the fields below: absent from the record when
    None (never nil), so that a record without them keeps 1.0's bytes."""
    subject_name: str | None = None
    votes: Mapping[str, int] | None = None
    budget_year: str | None = None
    budget_name: str | None = None
    control_entity: str | None = None
    control_date: str | None = None

    def to_record(self) -> dict[str, Any]:
        """The stored form (and the ``act/`` answer): a plain map with lists, not tuples."""
        # Field by field rather than dataclasses.asdict, which deep-copies every value: this
        # runs for every anchoring on every node.
        record = {name: getattr(self, name) for name in _ACT_FIELDS}
        for name in LINK_LISTS:
            record[name] = list(record[name])
        for name in DELIBERATION_FIELDS:
            if record[name] is None:
                del record[name]
            elif name == "votes":
                record[name] = dict(record[name])
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Act:
        """The act stored as ``record`` (written by this contract; anything else is a bug)."""
        act = cls(**record)
        assert act.status in ACTIVE_STATUSES | TERMINAL_STATUSES, act.status
        return replace(act, **{name: tuple(record[name]) for name in LINK_LISTS})

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_STATUSES


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryEntry:
    """One change of an act, as stored under ``history/``."""

    sequence: int
    height: int
    timestamp_ms: int
    action: str
    status: str
    """The act's status after the change."""
    tx_id: bytes
    signer: bytes
    """The public key that signed the transaction."""
    by_reference: str | None = None
    reason: str | None = None
    decision_reference: str | None = None

    def to_record(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in _HISTORY_FIELDS}


_ACT_FIELDS = tuple(field.name for field in fields(Act))
_HISTORY_FIELDS = tuple(field.name for field in fields(HistoryEntry))


# --- stateless validation of arguments --------------------------------------------------------

_MEMBER_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?")
"""The pattern of ``ledger.model.MemberId``, checked here so that a bad issuer is reported as an
invalid argument rather than as ``not_a_member``."""
_REFERENCE = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._/-]{{0,{REFERENCE_CHARACTERS_MAX - 1}}}")
_ISO_DATE = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")
_HTTP_URL = re.compile(r"https?://[!-~]+")
_HEX_DIGEST = re.compile(rf"[0-9a-f]{{{2 * DIGEST_BYTES}}}")

Validator = Callable[[Any], str | None]
"""Returns why a value is not acceptable, or None when it is."""


def _member_id(value: Any) -> str | None:
    if type(value) is not str:
        return "expected a string"
    if not _MEMBER_ID.fullmatch(value):
        return "not a member id (lowercase letters, digits and '-', at most 48)"
    return None


def _reference(value: Any) -> str | None:
    if type(value) is not str:
        return "expected a string"
    if not _REFERENCE.fullmatch(value):
        return (
            f"1 to {REFERENCE_CHARACTERS_MAX} characters of A-Z a-z 0-9 . _ / -, starting with "
            "a letter or digit"
        )
    return None


def _kind(value: Any) -> str | None:
    if type(value) is not str:
        return "expected a string"
    if value not in KINDS:
        return "one of " + ", ".join(sorted(KINDS))
    return None


def _digest(value: Any) -> str | None:
    if type(value) is not bytes:
        return "expected bytes"
    if len(value) != DIGEST_BYTES:
        return f"expected {DIGEST_BYTES} bytes (SHA-256), got {len(value)}"
    return None


def parse_act_date(value: Any) -> datetime.date | None:
    """The calendar date written ``YYYY-MM-DD`` in ``value``, or None if it is not one."""
    if type(value) is not str:
        return None
    match = _ISO_DATE.fullmatch(value)
    if match is None:
        return None
    year, month, day = (int(group) for group in match.groups())
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


def _act_date(value: Any) -> str | None:
    if parse_act_date(value) is None:
        return "expected a calendar date YYYY-MM-DD"
    return None


_CONTROL_CHARACTER = re.compile("[\x00-\x1f\x7f-\x9f]")
"""C0 and C1 control characters and DEL: ``ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0``, found
at C speed (every title of every act is scanned, on every node)."""


def _text(characters_max: int) -> Validator:
    """Free text of 1 to ``characters_max`` characters without control characters."""

    def validate(value: Any) -> str | None:
        if type(value) is not str:
            return "expected a string"
        if not 1 <= len(value) <= characters_max:
            return f"expected 1 to {characters_max} characters, got {len(value)}"
        if _CONTROL_CHARACTER.search(value):
            return "control characters are not allowed"
        return None

    return validate


def _subject_code(value: Any) -> str | None:
    if type(value) is not str:
        return "expected a string"
    if not re.fullmatch(r"[0-9]\.[0-9]{1,2}", value) or value not in SUBJECT_CODES:
        return (
            "expected an ACTES subject code: 1.1-1.7, 2.1-2.3, 3.1-3.6, 4.1-4.5, 5.1-5.8, "
            "6.1-6.5, 7.1-7.10, 8.1-8.9 or 9.1-9.4"
        )
    return None


def _votes(value: Any) -> str | None:
    if not isinstance(value, dict) or sorted(value) != sorted(VOTE_COUNTS):
        return "expected a map of exactly " + ", ".join(VOTE_COUNTS)
    for name in VOTE_COUNTS:
        count = value[name]
        if type(count) is not int or not 0 <= count <= VOTE_COUNT_MAX:
            return f"{name}: expected an integer from 0 to {VOTE_COUNT_MAX}"
    entitled, cast = value["entitled"], value["cast"]
    if cast > entitled:
        return f"cast ({cast}) exceeds entitled ({entitled})"
    if value["for"] + value["against"] > cast:
        return f"for + against ({value['for'] + value['against']}) exceeds cast ({cast})"
    if value["for"] + value["against"] + value["abstention"] > entitled:
        return "for + against + abstention exceeds entitled"
    return None


_BUDGET_YEAR = re.compile(r"([0-9]{4})(?:/([0-9]{4}))?")


def _budget_year(value: Any) -> str | None:
    if type(value) is not str:
        return "expected a string"
    match = _BUDGET_YEAR.fullmatch(value)
    if match is None:
        return "expected a year YYYY, or two years YYYY/YYYY"
    first, second = match.groups()
    if second is not None and int(second) != int(first) + 1:
        return "the second year follows the first (2026/2027)"
    return None


_CONTROL_ENTITY = re.compile(r"PREF[0-9]{2}[0-9AB]|SPREF[0-9]{2}[0-9AB][0-9]|SGAR[0-9]{2}[0-9AB]")


def _control_entity(value: Any) -> str | None:
    if type(value) is not str:
        return "expected a string"
    if not _CONTROL_ENTITY.fullmatch(value):
        return (
            "expected PREFNNN (a prefecture), SPREFNNNM (a sub-prefecture) or SGARNNN, NNN "
            "the département on three characters (075, 02A), M the arrondissement digit"
        )
    return None


def _url(value: Any) -> str | None:
    if type(value) is not str:
        return "expected a string"
    if len(value) > URL_CHARACTERS_MAX:
        return f"at most {URL_CHARACTERS_MAX} characters, got {len(value)}"
    if not _HTTP_URL.fullmatch(value):
        return "expected an http:// or https:// URL of visible ASCII characters"
    return None


@dataclass(frozen=True, slots=True)
class _Argument:
    name: str
    validate: Validator
    required: bool = True


_ISSUER = _Argument("issuer", _member_id)
_REFERENCE_ARGUMENT = _Argument("reference", _reference)
_BY_REFERENCE = _Argument("by_reference", _reference)
_STATUS_REASON = (
    _ISSUER,
    _REFERENCE_ARGUMENT,
    _Argument("reason", _text(REASON_CHARACTERS_MAX)),
    _Argument("decision_reference", _text(DECISION_REFERENCE_CHARACTERS_MAX), required=False),
)

_ANCHOR_1_0 = (
    _ISSUER,
    _REFERENCE_ARGUMENT,
    _Argument("kind", _kind),
    _Argument("digest", _digest),
    _Argument("act_date", _act_date),
    _Argument("title", _text(TITLE_CHARACTERS_MAX)),
    _Argument("legal_basis", _text(LEGAL_BASIS_CHARACTERS_MAX), required=False),
    _Argument("url", _url, required=False),
    _Argument("person_commitment", _digest, required=False),
)
DELIBERATION_ARGUMENTS = (
    _Argument("subject_code", _subject_code, required=False),
    _Argument("subject_name", _text(SUBJECT_NAME_CHARACTERS_MAX), required=False),
    _Argument("votes", _votes, required=False),
    _Argument("budget_year", _budget_year, required=False),
    _Argument("budget_name", _text(BUDGET_NAME_CHARACTERS_MAX), required=False),
    _Argument("control_entity", _control_entity, required=False),
    _Argument("control_date", _act_date, required=False),
)
"""The deliberation data of version 1.1's ``anchor``, only for the kind ``deliberation``."""
DELIBERATION_FIELDS = tuple(argument.name for argument in DELIBERATION_ARGUMENTS)
_DEPENDENT_ARGUMENTS = (("budget_name", "budget_year"), ("control_date", "control_entity"))
"""(argument, the argument it needs): a budget's name goes with its year, the date of the
control of legality with the authority that received the act."""

_STATUS_ACTIONS: dict[str, tuple[_Argument, ...]] = {
    "amend": (_ISSUER, _REFERENCE_ARGUMENT, _BY_REFERENCE),
    "supersede": (_ISSUER, _REFERENCE_ARGUMENT, _BY_REFERENCE),
    "withdraw": _STATUS_REASON,
    "annul": _STATUS_REASON,
}
ACTION_ARGUMENTS_1_0: dict[str, tuple[_Argument, ...]] = {"anchor": _ANCHOR_1_0, **_STATUS_ACTIONS}
"""Version 1.0's actions and their arguments, in the order they are checked."""
ACTION_ARGUMENTS: dict[str, tuple[_Argument, ...]] = {
    "anchor": _ANCHOR_1_0 + DELIBERATION_ARGUMENTS,
    **_STATUS_ACTIONS,
}
"""Version 1.1's: 1.0's, and the deliberation data on ``anchor``. Amending and superseding
only link two anchored acts: each new version of an act is anchored, with its own data."""

_NAME_IN_REASON_CHARACTERS_MAX = 64


def check_arguments(
    action: str,
    arguments: dict[str, Any],
    actions: Mapping[str, tuple[_Argument, ...]] = ACTION_ARGUMENTS,
) -> None:
    """Raise ``Rejection("invalid_arguments", "<field>: <why>")`` for the first bad argument.

    Unexpected keys come first (in sorted order), then the arguments in declared order, then
    the rules between arguments (deliberation data only on a deliberation, a budget's name with
    its year, a control date with its authority). ``actions`` is the version's
    (:data:`ACTION_ARGUMENTS_1_0` or :data:`ACTION_ARGUMENTS`).
    """
    expected = actions.get(action)
    if expected is None:
        raise Rejection("unknown_action", f"{DEEDS} has no action {action[:32]!r}")
    names = {argument.name for argument in expected}
    for name in sorted(arguments):
        if name not in names:
            shown = name[:_NAME_IN_REASON_CHARACTERS_MAX]
            raise Rejection("invalid_arguments", f"{shown}: unexpected argument")
    for argument in expected:
        if argument.name not in arguments:
            if argument.required:
                raise Rejection("invalid_arguments", f"{argument.name}: missing")
            continue
        why = argument.validate(arguments[argument.name])
        if why is not None:
            raise Rejection("invalid_arguments", f"{argument.name}: {why}")
    if action == "anchor":
        _check_deliberation_data(arguments)


def _check_deliberation_data(arguments: dict[str, Any]) -> None:
    given = [name for name in DELIBERATION_FIELDS if name in arguments]
    if given and arguments["kind"] != "deliberation":
        raise Rejection(
            "invalid_arguments",
            f"{given[0]}: only a deliberation carries it (this act is a {arguments['kind']})",
        )
    for name, needed in _DEPENDENT_ARGUMENTS:
        if name in arguments and needed not in arguments:
            raise Rejection("invalid_arguments", f"{name}: given without {needed}")


# --- the contract -----------------------------------------------------------------------------


# --- what the node serves and what receipts prove -------------------------------------------

_ISSUER_PARAMETER = QueryParameter(
    name="issuer",
    location="path",
    schema={"type": "string", "pattern": f"^{_MEMBER_ID.pattern}$", "maxLength": 48},
    description="the issuer's id (a member or an admitted issuer)",
    pattern=_MEMBER_ID,
    invalid="an issuer is a member id (lowercase letters, digits and '-', ≤ 48)",
)
_REFERENCE_PARAMETER = QueryParameter(
    name="reference",
    location="path",
    schema={
        "type": "string",
        "pattern": f"^{_REFERENCE.pattern}$",
        "maxLength": REFERENCE_CHARACTERS_MAX,
    },
    description="the act's reference (may hold '/': send it as is or %2F)",
)
_QUERY_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_QUERY_LIMIT = re.compile(r"[0-9]{1,4}")


def _echoed(parameter: QueryParameter) -> QueryParameter:
    return replace(parameter, echo="text")


def _date_parameter(name: str, description: str) -> QueryParameter:
    return QueryParameter(
        name=name,
        location="query",
        schema={"type": "string", "format": "date"},
        description=description,
        pattern=_QUERY_DATE,
        invalid=f"{name}: expected a date YYYY-MM-DD",
    )


_ACT_PROBLEMS = ("invalid_query", "unknown_act", "contract_not_enabled")
_ACT_ROUTE = {"not_found": "unknown_act", "malformed": "invalid_query", "confirmed_reads": True}

DEEDS_QUERY_ROUTES: tuple[QueryRoute, ...] = (
    QueryRoute(
        name="get_act",
        path="/v1/acts/{issuer}/{reference:.+}",
        query="act/{issuer}/{reference}",
        answer="act",
        summary="An act of the deeds contract",
        tag="acts",
        document="ActDocument",
        parameters=(_ISSUER_PARAMETER, _REFERENCE_PARAMETER),
        problems=_ACT_PROBLEMS,
        **_ACT_ROUTE,
    ),
    QueryRoute(
        name="get_digest",
        path="/v1/digests/{digest}",
        query="digest/{digest}",
        answer="acts",
        summary="The acts anchoring a document digest: is this document authentic, in force?",
        tag="acts",
        document="DigestDocument",
        parameters=(
            QueryParameter(
                name="digest",
                location="path",
                schema={"type": "string", "pattern": f"^{_HEX_DIGEST.pattern}$"},
                description="SHA-256 of the document, lowercase hex",
                echo="hex",
            ),
        ),
        problems=_ACT_PROBLEMS,
        **_ACT_ROUTE,
    ),
    QueryRoute(
        name="get_history",
        path="/v1/history/{issuer}/{reference:.+}",
        query="history/{issuer}/{reference}",
        answer="history",
        summary="The history of an act (anchoring and every status change)",
        tag="acts",
        document="HistoryDocument",
        parameters=(_echoed(_ISSUER_PARAMETER), _echoed(_REFERENCE_PARAMETER)),
        problems=_ACT_PROBLEMS,
        **_ACT_ROUTE,
    ),
    QueryRoute(
        name="get_issuer_acts",
        path="/v1/issuers/{issuer}/acts",
        query="acts/{issuer}",
        answer="acts",
        summary="An issuer's acts by act date",
        tag="acts",
        document="IssuerActsDocument",
        parameters=(
            _echoed(_ISSUER_PARAMETER),
            _date_parameter("from", "first act date, YYYY-MM-DD"),
            _date_parameter("to", "last act date, YYYY-MM-DD"),
            QueryParameter(
                name="limit",
                location="query",
                schema={"type": "integer", "minimum": 1, "maximum": QUERY_LIMIT_MAX},
                description=f"most acts to return (default {QUERY_LIMIT_DEFAULT})",
                pattern=_QUERY_LIMIT,
                invalid=f"limit: an integer from 1 to {QUERY_LIMIT_MAX}",
            ),
        ),
        problems=("invalid_query", "invalid_parameter", "contract_not_enabled"),
        **_ACT_ROUTE,
    ),
)
"""The reads the node API serves for the deeds contract (docs/api.md)."""


def _anchored_act_key(arguments: Mapping[str, Any]) -> bytes:
    return DEEDS_KEYS.act(arguments["issuer"], arguments["reference"])


def _anchoring_issuer(arguments: Mapping[str, Any]) -> str:
    return arguments["issuer"]


RECEIPT_ANCHOR = AnchorLayout(
    contract=DEEDS,
    action="anchor",
    record_key=_anchored_act_key,
    principal=_anchoring_issuer,
    role=ROLE_ISSUE,
)
"""An ``anchor`` carries the document's digest; a receipt's status proves the act's record,
and its authority that the signer may issue acts (``deeds.issue``) for the act's ``issuer``."""


class DeedsContract(Contract):
    """Anchoring and lifecycle of administrative acts (see the module docstring)."""

    name: ClassVar[str] = DEEDS
    version: ClassVar[str] = "1.1"
    older_versions: ClassVar[tuple[str, ...]] = ("1.0",)
    query_routes: ClassVar[tuple[QueryRoute, ...]] = DEEDS_QUERY_ROUTES
    receipt_anchors: ClassVar[tuple[AnchorLayout, ...]] = (RECEIPT_ANCHOR,)

    def __init__(self, *, rules: str = "1.1") -> None:
        self._arguments = ACTION_ARGUMENTS_1_0 if rules == "1.0" else ACTION_ARGUMENTS
        """1.1 only adds the deliberation data to ``anchor``; everything else is the same
        code, and an act without them is stored exactly as 1.0 stores it."""

    @classmethod
    def at_version(cls, version: str) -> DeedsContract:
        if version not in (cls.version, *cls.older_versions):
            raise ValueError(f"{cls.name} {cls.version} does not run version {version}")
        return cls(rules=version)

    def check(self, transaction: Transaction) -> None:
        check_arguments(transaction.action, transaction.args, self._arguments)

    def apply(self, transaction: Transaction, state: StateView, context: BlockContext) -> Any:
        """Apply one action; return ``{"issuer", "reference", "status"}`` or raise Rejection.

        The engine runs :meth:`check` on every transaction before ``apply`` (for the proposer,
        the validators and the auditor alike), so the arguments here are validated.
        """
        handler = _ACTION_HANDLERS[transaction.action]
        act = handler(transaction, state, context)
        return {"issuer": act.issuer, "reference": act.reference, "status": act.status}

    def query(self, path: str, state: ReadView) -> Any:
        """Answer ``act/``, ``digest/``, ``history/`` or ``acts/`` (docs/contracts_deeds.md).

        Raises ValueError for a malformed path, LookupError when no act is there (``acts/``
        answers a list, possibly empty).
        """
        if type(path) is not str or len(path) > QUERY_PATH_CHARACTERS_MAX:
            raise ValueError(f"a query path is a string of at most {QUERY_PATH_CHARACTERS_MAX}")
        kind, separator, rest = path.partition("/")
        answer = _QUERIES.get(kind)
        if answer is None or not separator:
            raise ValueError(
                f"unknown query {kind[:32]!r}: expected act/, digest/, history/, acts/"
            )
        return answer(rest, state)


# --- actions ----------------------------------------------------------------------------------


def _anchor(transaction: Transaction, state: StateView, context: BlockContext) -> Act:
    arguments = transaction.args
    issuer, reference, digest = arguments["issuer"], arguments["reference"], arguments["digest"]
    context.authorization(issuer, ROLE_ISSUE)
    if state.get(act_key(issuer, reference)) is not None:
        raise Rejection("duplicate_reference", f"{issuer} already anchored an act {reference!r}")
    existing = state.get(digest_key(digest, issuer))
    if existing is not None:
        earlier = decode_record(existing)["reference"]
        raise Rejection(
            "duplicate_digest", f"{issuer} already anchored this document as {earlier!r}"
        )
    act = Act(
        issuer=issuer,
        reference=reference,
        kind=arguments["kind"],
        digest=digest,
        act_date=arguments["act_date"],
        title=arguments["title"],
        legal_basis=arguments.get("legal_basis"),
        url=arguments.get("url"),
        person_commitment=arguments.get("person_commitment"),
        **{name: arguments.get(name) for name in DELIBERATION_FIELDS},
        status=IN_FORCE,
        anchored_height=context.height,
        anchored_timestamp_ms=context.timestamp_ms,
        status_height=context.height,
    )
    act = _record_change(state, act, transaction, context, action="anchor")
    state.put(digest_key(digest, issuer), encode_record({"reference": reference}))
    state.put(date_key(issuer, act.act_date, reference), encode_record(None))
    _store(state, act)
    return act


def _amend(transaction: Transaction, state: StateView, context: BlockContext) -> Act:
    act, other = _load_link_pair(transaction, state, context)
    if other.reference in act.amended_by:
        raise Rejection(
            "duplicate_link", f"{act.reference!r} is already amended by {other.reference!r}"
        )
    _check_room(act, "amended_by", act.amended_by)
    _check_room(other, "amends", other.amends)
    act = replace(
        act,
        status=AMENDED,
        status_height=context.height,
        amended_by=(*act.amended_by, other.reference),
    )
    other = replace(other, amends=(*other.amends, act.reference))
    act = _record_change(
        state, act, transaction, context, action="amend", by_reference=other.reference
    )
    _store(state, act)
    _store(state, other)
    return act


def _supersede(transaction: Transaction, state: StateView, context: BlockContext) -> Act:
    act, other = _load_link_pair(transaction, state, context)
    _check_room(other, "supersedes", other.supersedes)
    act = replace(
        act, status=SUPERSEDED, status_height=context.height, superseded_by=other.reference
    )
    other = replace(other, supersedes=(*other.supersedes, act.reference))
    act = _record_change(
        state, act, transaction, context, action="supersede", by_reference=other.reference
    )
    _store(state, act)
    _store(state, other)
    return act


def _end(status: str) -> Callable[[Transaction, StateView, BlockContext], Act]:
    """The withdraw or annul action: an active act becomes terminal with a stated reason."""

    def end(transaction: Transaction, state: StateView, context: BlockContext) -> Act:
        arguments = transaction.args
        act = _load_changeable(transaction, state, context)
        act = replace(act, status=status, status_height=context.height)
        act = _record_change(
            state,
            act,
            transaction,
            context,
            action=transaction.action,
            reason=arguments["reason"],
            decision_reference=arguments.get("decision_reference"),
        )
        _store(state, act)
        return act

    return end


_ACTION_HANDLERS: dict[str, Callable[[Transaction, StateView, BlockContext], Act]] = {
    "anchor": _anchor,
    "amend": _amend,
    "supersede": _supersede,
    "withdraw": _end(WITHDRAWN),
    "annul": _end(ANNULLED),
}
assert _ACTION_HANDLERS.keys() == ACTION_ARGUMENTS.keys()


def _load(state: StateView | ReadView, issuer: str, reference: str) -> Act | None:
    record = state.get(act_key(issuer, reference))
    return None if record is None else Act.from_record(decode_record(record))


def _load_changeable(transaction: Transaction, state: StateView, context: BlockContext) -> Act:
    """The act a status change names, once the signer's authority is checked; it is active."""
    issuer, reference = transaction.args["issuer"], transaction.args["reference"]
    context.authorization(issuer, ROLE_STATUS)
    act = _load(state, issuer, reference)
    if act is None:
        raise Rejection("unknown_act", f"{issuer} has no act {reference!r}")
    if not act.is_active:
        raise Rejection(
            "invalid_transition", f"act {reference!r} is {act.status}: it can no longer change"
        )
    return act


def _load_link_pair(
    transaction: Transaction, state: StateView, context: BlockContext
) -> tuple[Act, Act]:
    """The act to change and the active, different act of the same issuer that changes it."""
    act = _load_changeable(transaction, state, context)
    by_reference = transaction.args["by_reference"]
    if by_reference == act.reference:
        raise Rejection("invalid_transition", f"act {by_reference!r} cannot change itself")
    other = _load(state, act.issuer, by_reference)
    if other is None:
        raise Rejection("unknown_act", f"{act.issuer} has no act {by_reference!r}")
    if not other.is_active:
        raise Rejection(
            "invalid_transition", f"act {by_reference!r} is {other.status}: it cannot act"
        )
    return act, other


def _check_room(act: Act, field_name: str, links: tuple[str, ...]) -> None:
    if len(links) >= LINKS_PER_LIST_MAX:
        raise Rejection(
            "link_limit",
            f"act {act.reference!r} already has {LINKS_PER_LIST_MAX} entries in {field_name}",
        )


def _record_change(
    state: StateView,
    act: Act,
    transaction: Transaction,
    context: BlockContext,
    *,
    action: str,
    by_reference: str | None = None,
    reason: str | None = None,
    decision_reference: str | None = None,
) -> Act:
    """Append the change that gave ``act`` its status to its history; return the act."""
    sequence = act.history_length
    assert sequence < HISTORY_ENTRIES_PER_ACT_MAX, "the lifecycle bounds the history"
    entry = HistoryEntry(
        sequence=sequence,
        height=context.height,
        timestamp_ms=context.timestamp_ms,
        action=action,
        status=act.status,
        tx_id=transaction.tx_id,
        signer=transaction.signer,
        by_reference=by_reference,
        reason=reason,
        decision_reference=decision_reference,
    )
    state.put(history_key(act.issuer, act.reference, sequence), encode_record(entry.to_record()))
    return replace(act, history_length=sequence + 1)


def _store(state: StateView, act: Act) -> None:
    state.put(act_key(act.issuer, act.reference), encode_record(act.to_record()))


# --- queries ----------------------------------------------------------------------------------


def _issuer_and_reference(rest: str) -> tuple[str, str]:
    """``<issuer>/<reference>``, split on the first slash only (references may hold "/")."""
    issuer, separator, reference = rest.partition("/")
    if not separator or _member_id(issuer) is not None or _reference(reference) is not None:
        raise ValueError("expected <issuer>/<reference>")
    return issuer, reference


def _query_act(rest: str, state: ReadView) -> dict[str, Any]:
    issuer, reference = _issuer_and_reference(rest)
    act = _load(state, issuer, reference)
    if act is None:
        raise LookupError(f"{issuer} has no act {reference!r}")
    return act.to_record()


def _query_digest(rest: str, state: ReadView) -> list[dict[str, Any]]:
    if not _HEX_DIGEST.fullmatch(rest):
        raise ValueError(f"expected {2 * DIGEST_BYTES} lowercase hex digits")
    prefix = DIGEST_PREFIX + bytes.fromhex(rest)
    found = []
    # At most one entry per issuer, hence at most one per member: a bounded loop.
    for key, value in state.items(prefix):
        issuer = encoding.unpack(key[len(prefix) :])
        act = _load(state, issuer, decode_record(value)["reference"])
        assert act is not None, "the digest index names an act that exists"
        found.append(
            {
                "issuer": act.issuer,
                "reference": act.reference,
                "kind": act.kind,
                "status": act.status,
                "act_date": act.act_date,
                "anchored_height": act.anchored_height,
            }
        )
    if not found:
        raise LookupError(f"no act has the digest {rest}")
    return sorted(found, key=lambda entry: entry["issuer"])


def _query_history(rest: str, state: ReadView) -> list[dict[str, Any]]:
    issuer, reference = _issuer_and_reference(rest)
    entries = [decode_record(value) for _, value in state.items(history_prefix(issuer, reference))]
    if not entries:
        raise LookupError(f"{issuer} has no act {reference!r}")
    assert [entry["sequence"] for entry in entries] == list(range(len(entries)))
    return entries


def _query_acts(rest: str, state: ReadView) -> list[dict[str, Any]]:
    issuer, _, query_string = rest.partition("?")
    if _member_id(issuer) is not None:
        raise ValueError("expected acts/<issuer>")
    since, until, limit = _parse_range(query_string)
    base = date_prefix(issuer)
    # Narrow the scan to the dates both bounds share ("2026-0" for 2026-01-01..2026-09-30).
    shared = _common_prefix(since, until) if since is not None and until is not None else ""
    found: list[dict[str, Any]] = []
    for act_date, reference in _dated_references(state, base, shared):
        if since is not None and act_date < since:
            continue
        if until is not None and act_date > until:
            break
        act = _load(state, issuer, reference)
        assert act is not None, "the date index names an act that exists"
        found.append(act.to_record())
        if len(found) >= limit:
            break
    return found


def _dated_references(state: ReadView, base: bytes, shared: str) -> Iterator[tuple[str, str]]:
    for key, _ in state.items(base + shared.encode()):
        rest = key[len(base) :]
        yield rest[:ACT_DATE_BYTES].decode(), rest[ACT_DATE_BYTES:].decode()


def _parse_range(query_string: str) -> tuple[str | None, str | None, int]:
    """``from``, ``to`` and ``limit`` of an ``acts/`` query; raises ValueError."""
    parameters: dict[str, str] = {}
    for pair in query_string.split("&") if query_string else []:
        name, separator, value = pair.partition("=")
        if not separator or name not in ("from", "to", "limit") or name in parameters:
            raise ValueError("parameters are from=YYYY-MM-DD, to=YYYY-MM-DD, limit=N, once each")
        parameters[name] = value
    for name in ("from", "to"):
        if name in parameters and parse_act_date(parameters[name]) is None:
            raise ValueError(f"{name}: expected a calendar date YYYY-MM-DD")
    since, until = parameters.get("from"), parameters.get("to")
    if since is not None and until is not None and since > until:
        raise ValueError("from is after to")
    limit_text = parameters.get("limit", str(QUERY_LIMIT_DEFAULT))
    if not re.fullmatch(r"[0-9]{1,4}", limit_text) or not 1 <= int(limit_text) <= QUERY_LIMIT_MAX:
        raise ValueError(f"limit: expected an integer from 1 to {QUERY_LIMIT_MAX}")
    return since, until, int(limit_text)


def _common_prefix(left: str, right: str) -> str:
    length = 0
    while length < min(len(left), len(right)) and left[length] == right[length]:
        length += 1
    return left[:length]


_QUERIES: dict[str, Callable[[str, ReadView], Any]] = {
    "act": _query_act,
    "digest": _query_digest,
    "history": _query_history,
    "acts": _query_acts,
}


# --- personal data: salted commitments --------------------------------------------------------


def person_commitment(salt: bytes, value: str) -> bytes:
    """SHA-256(tag || len(salt) as one byte || salt || UTF-8 value): a salted commitment.

    ``value`` identifies a person (a name, a file number); the issuer keeps ``salt`` (at
    least 16 random bytes, at most 255) off chain. Revealing the salt proves the link; destroying
    it makes the on-chain commitment unlinkable. Normalize ``value`` the same way every time
    (e.g. Unicode NFC): the commitment is over its exact bytes. Raises ValueError for a salt of
    the wrong type or length, or a value that is not text.
    """
    if type(salt) is not bytes or not PERSON_SALT_BYTES_MIN <= len(salt) <= PERSON_SALT_BYTES_MAX:
        raise ValueError(
            f"the salt must be {PERSON_SALT_BYTES_MIN} to {PERSON_SALT_BYTES_MAX} bytes"
        )
    if type(value) is not str:
        raise ValueError("the value must be text")
    return hashlib.sha256(
        PERSON_COMMITMENT_TAG + bytes([len(salt)]) + salt + value.encode("utf-8")
    ).digest()


def verify_person_commitment(commitment: bytes, salt: bytes, value: str) -> bool:
    """True if ``commitment`` is :func:`person_commitment` of ``salt`` and ``value``.

    Raises ValueError as :func:`person_commitment` does.
    """
    expected = person_commitment(salt, value)
    return type(commitment) is bytes and hmac.compare_digest(commitment, expected)
