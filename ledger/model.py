"""The chain's data: members, genesis, transactions, block headers, blocks, certificates.

Every model is a frozen pydantic v2 model with two forms:

* the **canonical form**, a plain dict with the field names as keys, that :mod:`ledger.encoding`
  turns into the bytes that are hashed, signed and stored (``to_bytes`` / ``from_bytes``);
* the **JSON form** for people and HTTP clients (``model_dump_json`` / ``model_validate_json``),
  where hashes and signatures are lowercase hex and public keys ``ed25519:<base64url>``.

Decoding is strict: a canonical document must hold exactly the model's fields, bytes as bytes
and integers as integers, so that one model has exactly one byte form. Identities follow
docs/architecture.md, decision 3::

    chain_id   = SHA-256(canonical(genesis))
    tx_id      = SHA-256(canonical(transaction without "signature"))
    block_hash = SHA-256(canonical(header))

The byte-level specification of all of this is docs/format.md.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import re
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    model_serializer,
    model_validator,
)

from ledger import crypto, domains, encoding, jsonstrict

__all__ = [
    "ISSUER_STATUSES",
    "Block",
    "BlockHeader",
    "CommitCertificate",
    "ConsensusParameters",
    "ContractRef",
    "Genesis",
    "InvalidCertificateError",
    "Issuer",
    "Member",
    "ModelDecodeError",
    "Transaction",
    "fault_tolerance",
    "members_hash",
    "quorum_size",
    "sha256",
    "vote_payload",
]

U63_MAX = 2**63 - 1
U64_MAX = 2**64 - 1
TRANSACTION_BYTES_MAX = 64 * 1024
LOG_ENTRY_BYTES_MAX = 2**16 - 1
"""The largest entry of the log of every act: tlog-tiles prefixes entries with a uint16."""
"""Hard ceiling on one transaction's canonical size, whatever the consortium's parameters."""
ARGUMENTS_DEPTH_MAX = 8
MEMBERS_MAX = 256
CONTRACTS_MAX = 64


def sha256(data: bytes) -> bytes:
    """Return SHA-256 of ``data`` (the only hash function of sceau)."""
    return hashlib.sha256(data).digest()


class ModelDecodeError(ValueError):
    """Bytes or a document that do not make a valid model; the message names the field."""


class InvalidCertificateError(ValueError):
    """A commit certificate that does not certify what it claims; the message says why."""


# --- field types ------------------------------------------------------------------------------


def _bytes_field(length: int | None = None, *, length_max: int | None = None) -> Any:
    """A bytes field: raw bytes in canonical form, lowercase hex in JSON.

    ``length`` fixes its size; otherwise ``length_max`` bounds it.
    """

    def parse(value: Any, info: ValidationInfo) -> Any:
        if info.mode == "json" and isinstance(value, str):
            if not re.fullmatch(r"(?:[0-9a-f]{2})*", value):
                raise ValueError("expected lowercase hex")
            return bytes.fromhex(value)
        return value

    def check(value: Any) -> bytes:
        if type(value) is not bytes:
            raise ValueError("expected bytes")
        if length is not None and len(value) != length:
            raise ValueError(f"expected {length} bytes, got {len(value)}")
        if length_max is not None and len(value) > length_max:
            raise ValueError(f"at most {length_max} bytes, got {len(value)}")
        return value

    return Annotated[
        bytes,
        BeforeValidator(parse),
        AfterValidator(check),
        PlainSerializer(lambda value: value.hex(), return_type=str, when_used="json"),
        Field(strict=True),
    ]


def hex_bytes(length_max: int) -> Any:
    """A variable-length bytes field (hex in JSON) of at most ``length_max`` bytes."""
    return _bytes_field(length_max=length_max)


def _parse_public_key(value: Any, info: ValidationInfo) -> Any:
    if info.mode == "json" and isinstance(value, str):
        return crypto.public_key_from_text(value)
    return value


def _check_public_key(value: bytes) -> bytes:
    if not crypto.is_acceptable_public_key(value):
        raise ValueError("not an acceptable Ed25519 public key (wrong length, or small order)")
    return value


Hash32 = _bytes_field(32)
Signature = _bytes_field(crypto.SIGNATURE_BYTES)
PublicKey = Annotated[
    bytes,
    BeforeValidator(_parse_public_key),
    Field(strict=True, min_length=32, max_length=32),
    AfterValidator(_check_public_key),
    PlainSerializer(crypto.public_key_to_text, return_type=str, when_used="json"),
]
Height = Annotated[StrictInt, Field(ge=1, le=U63_MAX)]
View = Annotated[StrictInt, Field(ge=0, le=U63_MAX)]
Count = Annotated[StrictInt, Field(ge=0, le=U63_MAX)]
MemberId = Annotated[StrictStr, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")]
"""A member's id: a lowercase slug of 1 to 48 characters, for example ``metropole-lyon``."""
Name = Annotated[StrictStr, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
"""A contract or action name: lowercase letters, digits and underscores, at most 32."""


def _check_display_text(value: str) -> str:
    if any(ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0 for char in value):
        raise ValueError("control characters are not allowed")
    if value != value.strip():
        raise ValueError("no leading or trailing white space")
    return value


DisplayName = Annotated[
    StrictStr, Field(min_length=1, max_length=128), AfterValidator(_check_display_text)
]
Endpoint = Annotated[
    StrictStr, Field(pattern=r"^[A-Za-z0-9.\-\[\]:]{1,253}:[0-9]{1,5}$", max_length=260)
]
"""A peer endpoint ``host:port`` (an IPv6 host in brackets)."""
Version = Annotated[StrictStr, Field(pattern=r"^[0-9]+\.[0-9]+(\.[0-9]+)?$", max_length=32)]


def _check_arguments(value: dict[str, Any]) -> dict[str, Any]:
    # Keep the canonical form, not the caller's objects: a private copy that a caller cannot
    # mutate after the fact (tx_id is cached), with tuples as lists and keys sorted, so that a
    # transaction equals its own decoding.
    try:
        canonical = encoding.canonical_form(value, depth_max=ARGUMENTS_DEPTH_MAX)
        size = len(encoding.pack(canonical, depth_max=ARGUMENTS_DEPTH_MAX))
    except encoding.EncodingError as error:
        raise ValueError(f"not canonically encodable: {error}") from None
    if size > TRANSACTION_BYTES_MAX:
        raise ValueError(f"arguments take {size} bytes, over {TRANSACTION_BYTES_MAX}")
    return canonical


Arguments = Annotated[dict[StrictStr, Any], AfterValidator(_check_arguments)]


# --- base model -------------------------------------------------------------------------------

_CANONICAL_CONTEXT: dict[str, Any] = {"form": "canonical"}
"""Validation context of :meth:`CanonicalModel.from_canonical` (compared by identity)."""


class CanonicalModel(BaseModel):
    """Base of every model that has a canonical byte form."""

    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _canonical_form_has_every_field(cls, data: Any, info: ValidationInfo) -> Any:
        # A default filled in for a missing field would give one model two byte forms (the
        # hash of a genesis file would differ from its chain_id); from_canonical checks the top
        # level itself, this checks nested models.
        if info.context is _CANONICAL_CONTEXT and isinstance(data, dict):
            missing = cls.model_fields.keys() - data.keys() - cls._may_be_absent()
            if missing:
                raise ValueError(f"missing field {sorted(missing)[0]!r}")
        return data

    @classmethod
    def _may_be_absent(cls) -> frozenset[str]:
        """Fields whose absence from the canonical form means None (a later format's fields)."""
        return frozenset()

    def to_canonical(self) -> dict[str, Any]:
        """Return the canonical form: a dict that :func:`ledger.encoding.pack` encodes."""
        return self.model_dump(mode="python")

    def to_bytes(self) -> bytes:
        """Return the canonical encoding of this model."""
        return encoding.pack(self.to_canonical())

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy; with ``update``, values cached from the old fields (ids, hashes) are dropped."""
        copied = super().model_copy(update=update, deep=deep)
        if update:
            for name in _cached_property_names(type(self)):
                copied.__dict__.pop(name, None)
        return copied

    @classmethod
    def from_canonical(cls, document: Any) -> Self:
        """Build the model from its canonical form; raises :class:`ModelDecodeError`."""
        if not isinstance(document, dict):
            raise ModelDecodeError(f"{cls.__name__}: expected a map, got {type(document).__name__}")
        missing = cls.model_fields.keys() - document.keys() - cls._may_be_absent()
        if missing:
            raise ModelDecodeError(f"{cls.__name__}: missing field {sorted(missing)[0]!r}")
        try:
            return cls.model_validate(document, context=_CANONICAL_CONTEXT)
        except ValidationError as error:
            raise ModelDecodeError(_describe(cls.__name__, error)) from None

    @classmethod
    def model_validate_json(cls, json_data: str | bytes | bytearray, **options: Any) -> Self:
        """The model from its JSON form; a JSON object that repeats a key is refused.

        Raises :class:`~ledger.jsonstrict.DuplicateKeyError` (a ValueError naming the key)
        before pydantic, which would keep the last value, sees the text; otherwise exactly
        pydantic's ``model_validate_json`` (a ``ValidationError`` for anything else). Every
        JSON document of sceau (receipts, genesis files) is read through here.
        """
        jsonstrict.check_unique_keys(json_data)
        return super().model_validate_json(json_data, **options)

    @classmethod
    def from_bytes(
        cls, data: bytes, limits: encoding.DecodeLimits = encoding.DEFAULT_LIMITS
    ) -> Self:
        """Decode canonical bytes; raises :class:`ModelDecodeError` (or an EncodingError)."""
        return cls.from_decoded(encoding.unpack(data, limits))

    @classmethod
    def from_decoded(cls, document: Any) -> Self:
        """As :meth:`from_canonical`, for a document that :func:`ledger.encoding.unpack` has just
        returned and that nobody else holds: the model may keep its maps and lists.

        The hot models (transactions, block headers, blocks) are built by a direct check of
        their fields (:func:`_decoded_transaction`); a document that this check does not accept
        goes through pydantic (:meth:`from_canonical`), which accepts or refuses it, with its
        message, exactly as before.
        """
        return cls.from_canonical(document)


@functools.cache
def _cached_property_names(cls: type) -> tuple[str, ...]:
    """The names of the cached properties of ``cls`` and its bases (values derived from fields)."""
    return tuple(
        name
        for klass in cls.__mro__
        for name, attribute in vars(klass).items()
        if isinstance(attribute, cached_property)
    )


def _copy_plain(value: Any) -> Any:
    """A copy of a decoded value: new maps and lists all the way down (scalars are immutable)."""
    kind = type(value)
    if kind is dict:
        return {key: _copy_plain(item) for key, item in value.items()}
    if kind is list:
        return [_copy_plain(item) for item in value]
    if kind is tuple:
        return tuple(_copy_plain(item) for item in value)
    if kind is str or kind is bytes or kind is int or kind is bool or value is None:
        return value
    return copy.deepcopy(value)


def _describe(model_name: str, error: ValidationError) -> str:
    first = error.errors()[0]
    location = ".".join(str(part) for part in first["loc"]) or "(model)"
    more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"{model_name}.{location}: {first['msg']}{more}"


# --- members and genesis ----------------------------------------------------------------------


Siret = Annotated[StrictStr, Field(pattern=r"^[0-9]{14}$")]
"""A French establishment number (SIRET): 14 digits."""


class Member(CanonicalModel):
    """A member collectivity: its id, display name, node key and peer endpoint, and optionally
    its SIRET (what open-data exports name it by)."""

    id: MemberId
    name: DisplayName
    public_key: PublicKey
    endpoint: Endpoint
    siret: Siret | None = None
    """Absent, never nil, when the member has none: so every member set written before the
    field existed keeps its bytes, hence its members_hash and its genesis its chain_id
    (docs/format.md §5.2). Membership 1.3 lets governance set it."""

    @model_serializer(mode="wrap")
    def _no_siret_when_none(self, handler: Any) -> Any:
        dumped = handler(self)
        if self.siret is None and isinstance(dumped, dict):
            dumped.pop("siret", None)
        return dumped

    @model_validator(mode="before")
    @classmethod
    def _siret_absent_not_nil(cls, data: Any, info: ValidationInfo) -> Any:
        canonical = info.context is _CANONICAL_CONTEXT
        if canonical and isinstance(data, dict) and "siret" in data and data["siret"] is None:
            raise ValueError("a nil siret is not canonical (a member without one omits it)")
        return data

    @classmethod
    def _may_be_absent(cls) -> frozenset[str]:
        return frozenset({"siret"})

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> Any:
        # The serializer above returns a plain map, which would leave the API's schema of a
        # member empty: describe the fields instead (``siret`` optional, as it is).
        return handler({key: value for key, value in core_schema.items() if key != "serialization"})


ISSUER_ACTIVE = "active"
ISSUER_SUSPENDED = "suspended"
ISSUER_REMOVED = "removed"
ISSUER_STATUSES = (ISSUER_ACTIVE, ISSUER_SUSPENDED, ISSUER_REMOVED)
"""An issuer signs only while ``active``; a removed issuer's id is never given again."""


class Issuer(CanonicalModel):
    """A collectivity admitted by governance to anchor acts in its own name; it does not vote.

    Stored by the membership contract (from its version 1.1) at ``membership/issuer/<id>``
    (docs/format.md §5.11, §7.6), and proven by receipts of the acts its keys sign.
    """

    id: MemberId
    name: DisplayName
    siret: Siret | None
    public_key: PublicKey
    """The issuer's own key: it holds every role of the issuer (but governs nothing)."""
    status: Literal["active", "suspended", "removed"]
    admitted_height: Height
    """The height of the block that admitted it; it signs from the next height."""
    status_height: Height
    """The height of the block that set its status (its admission, at first)."""

    @property
    def is_active(self) -> bool:
        return self.status == ISSUER_ACTIVE


class ContractRef(CanonicalModel):
    """A contract that the consortium runs, pinned to a version."""

    name: Name
    version: Version


class ConsensusParameters(CanonicalModel):
    """Limits and timeouts that every member applies alike (changeable by governance)."""

    block_transactions_max: Annotated[StrictInt, Field(ge=1, le=100_000)] = 2_000
    block_bytes_max: Annotated[StrictInt, Field(ge=1024, le=12 * 1024 * 1024)] = 8 * 1024 * 1024
    """At most 12 MiB: a proposal (the block and its envelope) must fit one 16 MiB peer frame."""
    transaction_bytes_max: Annotated[StrictInt, Field(ge=256, le=LOG_ENTRY_BYTES_MAX)] = 16_384
    """At most 65,535: a transaction is an entry of the log, which tlog-tiles' entry bundles
    prefix with a 16-bit length."""
    view_timeout_ms: Annotated[StrictInt, Field(ge=100, le=600_000)] = 2_000
    timestamp_drift_ms_max: Annotated[StrictInt, Field(ge=100, le=3_600_000)] = 10_000
    governance_threshold_percent: Annotated[StrictInt, Field(ge=51, le=100)] = 67
    proposal_lifetime_blocks: Annotated[StrictInt, Field(ge=1, le=10_000_000)] = 10_000

    @model_validator(mode="after")
    def _a_transaction_fits_in_a_block(self) -> Self:
        if self.block_bytes_max < self.transaction_bytes_max:
            raise ValueError("block_bytes_max must be at least transaction_bytes_max")
        return self


def members_hash(members: Sequence[Member]) -> bytes:
    """SHA-256 of the canonical array of the member set, in its order (decision 9)."""
    return sha256(encoding.pack([member.to_canonical() for member in members]))


def fault_tolerance(member_count: int) -> int:
    """f = ⌊(n − 1) / 3⌋: how many byzantine members n members tolerate."""
    assert member_count >= 1
    return (member_count - 1) // 3


def quorum_size(member_count: int) -> int:
    """q = n − f: the number of distinct members whose votes make a certificate."""
    return member_count - fault_tolerance(member_count)


class Genesis(CanonicalModel):
    """The founding document of a consortium; its hash is the chain_id."""

    format_version: Annotated[StrictInt, Field(ge=1, le=2)] = 1
    """The header format from block 1 on: 1 (no log) or 2 (headers commit to the log of every
    act); a chain may move to a later format by governance (membership 1.2)."""
    consortium: DisplayName
    created_at_ms: Annotated[StrictInt, Field(ge=0, le=U63_MAX)]
    members: Annotated[tuple[Member, ...], Field(min_length=1, max_length=MEMBERS_MAX)]
    parameters: ConsensusParameters = ConsensusParameters()
    contracts: Annotated[tuple[ContractRef, ...], Field(max_length=CONTRACTS_MAX)] = ()

    @model_validator(mode="after")
    def _unique_members_and_contracts(self) -> Self:
        for label, values in (
            ("members: member id", [member.id for member in self.members]),
            ("members: public key", [member.public_key.hex() for member in self.members]),
            ("members: endpoint", [member.endpoint for member in self.members]),
            ("contracts: contract name", [contract.name for contract in self.contracts]),
        ):
            duplicate = _first_duplicate(values)
            if duplicate is not None:
                raise ValueError(f"{label} {duplicate!r} appears twice")
        return self

    @cached_property
    def chain_id(self) -> bytes:
        """SHA-256 of the canonical genesis: the consortium's identity."""
        return sha256(self.to_bytes())

    @cached_property
    def members_hash(self) -> bytes:
        return members_hash(self.members)

    def member(self, member_id: str) -> Member | None:
        return next((member for member in self.members if member.id == member_id), None)


def _first_duplicate(values: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


# --- transactions -----------------------------------------------------------------------------


class Transaction(CanonicalModel):
    """A signed request to a contract. Immutable once built: treat ``args`` as read-only."""

    chain_id: Hash32
    contract: Name
    action: Name
    args: Arguments
    signer: PublicKey
    nonce: Annotated[StrictInt, Field(ge=0, le=U64_MAX)]
    expiry_height: Height
    signature: Signature

    SIGNED_FIELDS: ClassVar[tuple[str, ...]] = (
        "chain_id",
        "contract",
        "action",
        "args",
        "signer",
        "nonce",
        "expiry_height",
    )

    @classmethod
    def create(
        cls,
        key: crypto.PrivateKey,
        *,
        chain_id: bytes,
        contract: str,
        action: str,
        args: dict[str, Any],
        nonce: int,
        expiry_height: int,
    ) -> Transaction:
        """Build and sign a transaction with ``key``; raises ModelDecodeError on bad fields."""
        body = {
            "chain_id": chain_id,
            "contract": contract,
            "action": action,
            "args": args,
            "signer": crypto.public_key_bytes(key),
            "nonce": nonce,
            "expiry_height": expiry_height,
        }
        # Validate before signing, so that a bad field raises ModelDecodeError (not whatever
        # Domain or pack would raise) and the signature covers the validated body.
        unsigned = cls.from_canonical({**body, "signature": bytes(crypto.SIGNATURE_BYTES)})
        domain = crypto.Domain(domains.TRANSACTION, unsigned.chain_id)
        signature = crypto.sign(key, domain, unsigned.tx_id)
        return cls.from_canonical({**unsigned.body(), "signature": signature})

    def body(self) -> dict[str, Any]:
        """The signed part of the transaction, in canonical form (everything but signature)."""
        canonical = self.to_canonical()
        del canonical["signature"]
        return canonical

    @cached_property
    def tx_id(self) -> bytes:
        """SHA-256 of the canonical body: the transaction's identity."""
        return sha256(encoding.pack(self.body()))

    @cached_property
    def encoded(self) -> bytes:
        """The canonical bytes of the whole signed transaction (the Merkle leaf)."""
        return self.to_bytes()

    @classmethod
    def from_bytes(
        cls, data: bytes, limits: encoding.DecodeLimits = encoding.DEFAULT_LIMITS
    ) -> Self:
        """Decode canonical bytes; the transaction's ``encoded`` is ``data`` itself.

        The decoder refused anything but the canonical encoding, and the model refuses extra
        fields and never coerces a value, so re-encoding would give ``data`` back: every node
        decodes every transaction at least twice (gossip, block), so it is not done.
        """
        document = encoding.unpack(data, limits)
        data = bytes(data)
        transaction = decoded_transaction(document, data)
        if transaction is None:
            transaction = cls.from_canonical(document)
            transaction.__dict__["encoded"] = data
        return transaction

    @classmethod
    def from_decoded(cls, document: Any) -> Transaction:
        """As :meth:`CanonicalModel.from_decoded`, checked without pydantic when it can be."""
        transaction = decoded_transaction(document)
        return transaction if transaction is not None else cls.from_canonical(document)

    def with_private_arguments(self) -> Transaction:
        """A copy whose ``args`` is a deep copy, keeping this transaction's id and bytes.

        The execution engine hands contracts such a copy: whatever a contract does to the
        arguments, the signed transaction that goes into the block stays as it was.
        """
        # BaseModel's copy: the cached id and bytes are kept on purpose (the arguments are
        # equal; only their containers are new).
        copied = BaseModel.model_copy(self, update={"args": _copy_plain(self.args)})
        copied.__dict__["tx_id"] = self.tx_id
        copied.__dict__["encoded"] = self.encoded
        return copied

    def signature_is_valid(self) -> bool:
        """True if ``signature`` is the signer's signature of ``tx_id`` for this chain."""
        domain = crypto.Domain(domains.TRANSACTION, self.chain_id)
        return crypto.verify(self.signer, domain, self.tx_id, self.signature)


# --- blocks -----------------------------------------------------------------------------------


LOG_FIELDS = frozenset({"log_size", "log_root"})
"""The header fields of format 2 (docs/format.md §4): absent from a format 1 header."""
HEADER_FORMATS = (1, 2)
"""The header formats this software reads and writes; a chain may move to a later one at a
height its members decide (docs/operations.md, "Upgrading the chain's format")."""


FORMAT_SCHEDULE_ENTRIES_MAX = 64


def header_format_at(genesis_format: int, schedule: bytes | None, height: int) -> int:
    """The header format of block ``height``: the genesis's, or the last scheduled version
    whose height is reached. ``schedule`` is the state value at
    :data:`ledger.namespace.FORMATS_STATE_KEY` (None: nothing scheduled)."""
    if schedule is None:
        return genesis_format
    entries = encoding.unpack(schedule)
    assert isinstance(entries, list) and len(entries) <= FORMAT_SCHEDULE_ENTRIES_MAX
    version = genesis_format
    for scheduled, from_height in entries:
        if from_height <= height:
            version = scheduled
    return version


class BlockHeader(CanonicalModel):
    """What a commit certificate signs (through its hash)."""

    chain_id: Hash32
    height: Height
    prev_hash: Hash32
    """Hash of the previous header; for height 1, the chain_id."""
    timestamp_ms: Annotated[StrictInt, Field(ge=0, le=U63_MAX)]
    proposer: MemberId
    view: View
    tx_count: Count
    tx_root: Hash32
    """RFC 9162 Merkle tree hash over the canonical bytes of the transactions."""
    state_root: Hash32
    """Root of the authenticated state after this block's transactions."""
    members_hash: Hash32
    """Hash of the member set that certifies this block (the set in force at this height)."""
    log_size: Count | None = None
    """Format 2: how many transactions the chain holds up to this block included — the size of
    the log of every act (ledger.tlog). Absent, not nil, in a format 1 header."""
    log_root: Hash32 | None = None
    """Format 2: the RFC 6962 root of that log. Absent, not nil, in a format 1 header."""

    @model_serializer(mode="wrap")
    def _no_log_fields_in_format_1(self, handler: Any) -> Any:
        dumped = handler(self)
        if self.log_size is None and isinstance(dumped, dict):
            dumped.pop("log_size", None)
            dumped.pop("log_root", None)
        return dumped

    @model_validator(mode="before")
    @classmethod
    def _log_fields_both_or_none(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, dict):
            present = [name for name in LOG_FIELDS if name in data]
            if info.context is _CANONICAL_CONTEXT and any(data.get(n) is None for n in present):
                raise ValueError("a nil log field is not canonical (a format 1 header omits it)")
            if len(present) == 1 or (
                len(present) == 2 and (data["log_size"] is None) != (data["log_root"] is None)
            ):
                raise ValueError("log_size and log_root come together, or not at all")
            if info.context is _CANONICAL_CONTEXT and not present:
                data = {**data, "log_size": None, "log_root": None}
        return data

    @classmethod
    def _may_be_absent(cls) -> frozenset[str]:
        return LOG_FIELDS

    @classmethod
    def from_decoded(cls, document: Any) -> BlockHeader:
        """As :meth:`CanonicalModel.from_decoded`, checked without pydantic when it can be."""
        header = _decoded_header(document)
        return header if header is not None else cls.from_canonical(document)

    @property
    def format_version(self) -> int:
        """1 without the log fields, 2 with them (docs/format.md §4)."""
        return 1 if self.log_size is None else 2

    @cached_property
    def block_hash(self) -> bytes:
        return sha256(self.to_bytes())


class Block(CanonicalModel):
    """A header and the transactions it commits to, in order."""

    header: BlockHeader
    transactions: tuple[Transaction, ...]

    @model_validator(mode="after")
    def _count_matches(self) -> Self:
        if self.header.tx_count != len(self.transactions):
            raise ValueError(
                f"header.tx_count is {self.header.tx_count} but the block holds "
                f"{len(self.transactions)} transactions"
            )
        return self

    @classmethod
    def from_decoded(cls, document: Any) -> Block:
        """As :meth:`CanonicalModel.from_decoded`, checked without pydantic when it can be."""
        block = decoded_block(document)
        return block if block is not None else cls.from_canonical(document)

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def block_hash(self) -> bytes:
        return self.header.block_hash

    def transaction_leaves(self) -> list[bytes]:
        """The Merkle leaves of the transaction tree: each transaction's canonical bytes."""
        return [transaction.encoded for transaction in self.transactions]


def vote_payload(height: int, view: int, block_hash: bytes) -> bytes:
    """The payload of prepare and commit votes: canonical ``[height, view, block_hash]``."""
    return encoding.pack([height, view, block_hash])


class CommitCertificate(CanonicalModel):
    """Signatures of a quorum of distinct members over ``(height, view, block_hash)``.

    Entries are ``(member_id, signature)`` sorted by member id, each id at most once.
    """

    height: Height
    view: View
    block_hash: Hash32
    signatures: Annotated[
        tuple[tuple[MemberId, Signature], ...], Field(min_length=1, max_length=MEMBERS_MAX)
    ]

    @model_validator(mode="after")
    def _sorted_and_unique(self) -> Self:
        ids = [member_id for member_id, _ in self.signatures]
        if any(left >= right for left, right in itertools.pairwise(ids)):
            raise ValueError("signatures must be sorted by member id, each member once")
        return self

    def verify(self, chain_id: bytes, members: Sequence[Member]) -> None:
        """Check that a quorum of ``members`` signed this certificate's commit vote.

        ``members`` is the member set in force at ``height``. Raises
        :class:`InvalidCertificateError` naming the first problem found.
        """
        by_id = {member.id: member for member in members}
        signer_ids = [member_id for member_id, _ in self.signatures]
        if len(set(signer_ids)) != len(signer_ids):
            raise InvalidCertificateError(
                f"certificate for height {self.height}: a member signs twice"
            )
        domain = crypto.Domain(domains.COMMIT, chain_id)
        payload = vote_payload(self.height, self.view, self.block_hash)
        for member_id, signature in self.signatures:
            member = by_id.get(member_id)
            if member is None:
                raise InvalidCertificateError(
                    f"certificate for height {self.height}: {member_id!r} is not a member"
                )
            if not crypto.verify(member.public_key, domain, payload, signature):
                raise InvalidCertificateError(
                    f"certificate for height {self.height}: bad signature from {member_id!r}"
                )
        needed = quorum_size(len(members))
        if len(self.signatures) < needed:
            raise InvalidCertificateError(
                f"certificate for height {self.height}: {len(self.signatures)} signatures, "
                f"{needed} needed of {len(members)} members"
            )


# --- the decoding fast path -------------------------------------------------------------------
#
# Building a transaction with pydantic costs over half of its decoding, and a node decodes every
# transaction at least twice (submission or gossip, then the proposal). The functions below
# check a freshly decoded canonical document field by field, with the very rules of the fields
# above, and build the model without pydantic. They accept a subset of what pydantic accepts,
# never more: anything else (a missing, extra or doubtful field) returns None and goes through
# pydantic, which refuses it with its own message, or accepts it, exactly as before.
# tests/test_model.py holds both paths to the same answers.

_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
""":data:`Name`'s pattern (pydantic's ``$`` is the end of the text: hence fullmatch)."""
_MEMBER_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?")
""":data:`MemberId`'s pattern."""
_TRANSACTION_FIELDS = frozenset(Transaction.model_fields)
_HEADER_FIELDS = frozenset(BlockHeader.model_fields)
_HEADER_FIELDS_FORMAT_1 = _HEADER_FIELDS - LOG_FIELDS
_BLOCK_FIELDS = frozenset(Block.model_fields)
_set_attribute = object.__setattr__


def built(cls: type[CanonicalModel], values: dict[str, Any]) -> Any:
    """A model of ``cls`` holding ``values`` (every field, in field order, already checked), as
    pydantic's ``model_construct`` builds it, without its per-field bookkeeping."""
    model = cls.__new__(cls)
    _set_attribute(model, "__dict__", values)
    _set_attribute(model, "__pydantic_fields_set__", set(values))
    _set_attribute(model, "__pydantic_extra__", None)
    _set_attribute(model, "__pydantic_private__", None)
    return model


for _model in (Transaction, BlockHeader, Block):
    # built() skips what these models do not have: say so if one of them ever gets it.
    assert _model.__pydantic_post_init__ is None and not _model.__private_attributes__


def is_hash(value: Any) -> bool:
    return type(value) is bytes and len(value) == 32


def is_signature(value: Any) -> bool:
    return type(value) is bytes and len(value) == crypto.SIGNATURE_BYTES


def is_integer(value: Any, minimum: int, maximum: int) -> bool:
    """A StrictInt in ``[minimum, maximum]`` (a bool is no integer here, as in pydantic)."""
    return type(value) is int and minimum <= value <= maximum


_ACCEPTED_MAX = 4096
_ACCEPTED_MEMBER_IDS: set[str] = set()
_ACCEPTED_NAMES: set[str] = set()
_ACCEPTED_SIGNERS: set[bytes] = set()
"""Values a check below accepted: a chain repeats a few member ids, contract and action names
and signers' keys, each then checked by a set lookup. Bounded: a memory is emptied when full,
so values from a hostile peer can cost it speed for a while, never memory."""


def _accepted(memory: set[Any], value: Any) -> bool:
    if len(memory) >= _ACCEPTED_MAX:
        memory.clear()
    memory.add(value)
    return True


def is_member_id(value: Any) -> bool:
    return type(value) is str and (
        value in _ACCEPTED_MEMBER_IDS
        or (_MEMBER_ID.fullmatch(value) is not None and _accepted(_ACCEPTED_MEMBER_IDS, value))
    )


def _is_name(value: Any) -> bool:
    return type(value) is str and (
        value in _ACCEPTED_NAMES
        or (_NAME.fullmatch(value) is not None and _accepted(_ACCEPTED_NAMES, value))
    )


def _is_signer(value: Any) -> bool:
    return type(value) is bytes and (
        value in _ACCEPTED_SIGNERS
        or (crypto.is_acceptable_public_key(value) and _accepted(_ACCEPTED_SIGNERS, value))
    )


def _nests_within(value: Any, depth_left: int) -> bool:
    """True if the containers of a decoded value nest at most ``depth_left`` levels."""
    kind = type(value)
    if kind is dict:
        items: Any = value.values()
    elif kind is list:
        items = value
    else:
        return True
    if depth_left <= 0:
        return False
    for item in items:
        item_kind = type(item)
        if (item_kind is dict or item_kind is list) and not _nests_within(item, depth_left - 1):
            return False
    return True


def _are_arguments(arguments: Any) -> bool:
    """True if decoded ``arguments`` are a map with text keys nesting at most
    :data:`ARGUMENTS_DEPTH_MAX` levels (the decoder checked everything else of
    :data:`Arguments` but their size)."""
    if type(arguments) is not dict:
        return False
    for key, item in arguments.items():
        if type(key) is not str:
            return False
        kind = type(item)
        if (kind is dict or kind is list) and not _nests_within(item, ARGUMENTS_DEPTH_MAX - 1):
            return False
    return True


def decoded_transaction(document: Any, encoded: bytes | None = None) -> Transaction | None:
    """The transaction of a decoded canonical map, or None to leave it to pydantic.

    ``tx_id`` is set, and ``encoded`` too: ``encoded`` when given (the bytes it was decoded
    from), else the document's encoding. The document is canonical (the decoder checked it, or
    it is part of a canonical document), so the maps keep their canonical order and the encoding
    is the transaction's bytes: they bound the size of its arguments, and they are the
    transaction's Merkle leaf, needed anyway.
    """
    if type(document) is not dict or document.keys() != _TRANSACTION_FIELDS:
        return None
    arguments = document["args"]
    if not (
        is_hash(document["chain_id"])
        and _is_name(document["contract"])
        and _is_name(document["action"])
        and _are_arguments(arguments)
        and _is_signer(document["signer"])
        and is_integer(document["nonce"], 0, U64_MAX)
        and is_integer(document["expiry_height"], 1, U63_MAX)
        and is_signature(document["signature"])
    ):
        return None
    if encoded is None:
        encoded = encoding.pack_decoded(document)
    if len(encoded) > TRANSACTION_BYTES_MAX:
        return None  # the arguments may still fit: pydantic weighs them alone
    transaction = built(
        Transaction,
        {
            "chain_id": document["chain_id"],
            "contract": document["contract"],
            "action": document["action"],
            "args": arguments,
            "signer": document["signer"],
            "nonce": document["nonce"],
            "expiry_height": document["expiry_height"],
            "signature": document["signature"],
        },
    )
    transaction.__dict__["encoded"] = encoded
    # The signed body is the canonical document less its signature (taking out an entry keeps
    # the others in canonical order): its id costs a copy and an encoding, not a model dump.
    body = dict(document)
    del body["signature"]
    transaction.__dict__["tx_id"] = sha256(encoding.pack_decoded(body))
    return transaction


def _decoded_header(document: Any) -> BlockHeader | None:
    """The block header of a decoded canonical map, or None to leave it to pydantic."""
    if type(document) is not dict:
        return None
    keys = document.keys()
    if keys == _HEADER_FIELDS:
        log_size = document["log_size"]
        log_root = document["log_root"]
        if not (is_integer(log_size, 0, U63_MAX) and is_hash(log_root)):
            return None
    elif keys == _HEADER_FIELDS_FORMAT_1:
        log_size = log_root = None
    else:
        return None
    if not (
        is_hash(document["chain_id"])
        and is_integer(document["height"], 1, U63_MAX)
        and is_hash(document["prev_hash"])
        and is_integer(document["timestamp_ms"], 0, U63_MAX)
        and is_member_id(document["proposer"])
        and is_integer(document["view"], 0, U63_MAX)
        and is_integer(document["tx_count"], 0, U63_MAX)
        and is_hash(document["tx_root"])
        and is_hash(document["state_root"])
        and is_hash(document["members_hash"])
    ):
        return None
    return built(
        BlockHeader,
        {
            "chain_id": document["chain_id"],
            "height": document["height"],
            "prev_hash": document["prev_hash"],
            "timestamp_ms": document["timestamp_ms"],
            "proposer": document["proposer"],
            "view": document["view"],
            "tx_count": document["tx_count"],
            "tx_root": document["tx_root"],
            "state_root": document["state_root"],
            "members_hash": document["members_hash"],
            "log_size": log_size,
            "log_root": log_root,
        },
    )


def decoded_block(document: Any) -> Block | None:
    """The block of a decoded canonical map, or None to leave it to pydantic."""
    if type(document) is not dict or document.keys() != _BLOCK_FIELDS:
        return None
    header = _decoded_header(document["header"])
    entries = document["transactions"]
    if header is None or type(entries) is not list or header.tx_count != len(entries):
        return None
    transactions = decoded_transactions(entries)
    if transactions is None:
        return None
    return built(Block, {"header": header, "transactions": transactions})


def decoded_transactions(entries: list[Any]) -> tuple[Transaction, ...] | None:
    """The transactions of decoded canonical maps (a block's, a gossip frame's), each by
    :func:`decoded_transaction`; None as soon as one is left to pydantic, which then judges
    the whole document (one refusal, the same message)."""
    transactions = []
    for entry in entries:
        transaction = decoded_transaction(entry)
        if transaction is None:
            return None
        transactions.append(transaction)
    return tuple(transactions)
