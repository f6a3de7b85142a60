"""The documents the client API serves, and the one set of rules that turns them into JSON.

Theory of operation
-------------------
The API builds every answer as a *document* in canonical form: plain dicts, lists, text,
integers, None and **raw bytes** (hashes, signatures, canonical encodings). A client that
asks for msgpack (``Accept: application/msgpack``) gets that document as it is, encoded with
:func:`ledger.encoding.pack`; every other client gets JSON, made by :func:`to_display` with
these rules, applied recursively:

1. bytes become lowercase hex, **except** a 32-byte value under a map key named
   ``public_key``, ``signer`` or ``new_public_key``: that is an Ed25519 public key, shown as
   ``ed25519:<base64url without padding>``, the form of genesis files and of ``sceau key``;
2. tuples become arrays; map keys that are bytes become hex, integer keys decimal text;
3. a model (:class:`~ledger.model.CanonicalModel`) becomes its canonical form first, so the
   display of a header, a certificate, a member or a transaction is exactly the model's own
   JSON form (``model.model_dump_json()``), and parses back with ``model_validate_json``;
4. None, booleans, integers and text stay as they are. Integers may exceed 2**53: parse JSON
   with a library that keeps integers exact (Python's does; JavaScript's ``JSON.parse`` not).

Rule 1 is keyed on the field name on purpose: it is the one convention readers already know
from the genesis file, and it keeps every other byte string in one obvious form. A client
that needs the bytes back turns hex with ``bytes.fromhex`` and ``ed25519:`` text with
:func:`ledger.crypto.public_key_from_text`.

The pydantic models at the end of the module describe each JSON document; the API's OpenAPI
document is generated from them, and the tests validate every response against them.

The builders here only read the store, the mempool and the application: they never write,
and they raise :class:`~ledger.store.CorruptionError` when the store disagrees with itself
(the API turns that into a logged ``internal_error``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel

from contracts.base import Rejection
from ledger import crypto
from ledger.model import (
    Block,
    BlockHeader,
    CanonicalModel,
    CommitCertificate,
    ConsensusParameters,
    Member,
    Transaction,
)
from ledger.namespace import StateNamespace
from ledger.queryproof import QueryProof
from ledger.receipt import AnchorLayout, build_receipt, receipt_from_block
from ledger.store import ChainStore, CorruptionError
from node.api.limits import BATCH_TRANSACTIONS_MAX
from node.runtime.application import ChainApplication
from node.runtime.mempool import Mempool

__all__ = [
    "PUBLIC_KEY_FIELDS",
    "block_document",
    "receipt_for",
    "state_document",
    "status_document",
    "to_display",
    "transaction_status",
]

PUBLIC_KEY_FIELDS = frozenset({"public_key", "signer", "new_public_key"})
"""Map keys whose 32-byte values are Ed25519 public keys, shown as ``ed25519:`` text."""

_DISPLAY_DEPTH_MAX = 64
"""Canonical documents nest at most 32 levels (ledger.encoding); twice that is a bug."""


# --- the display rules ------------------------------------------------------------------------


def to_display(value: Any) -> Any:
    """The JSON-friendly form of a canonical document or model (see the module doc).

    Raises TypeError for a value that has no display form (a float, an object): documents
    are built from canonical values only, so that is a bug of the caller.
    """
    return _display(value, None, _DISPLAY_DEPTH_MAX)


def _display(value: Any, field_name: Any, depth_left: int) -> Any:
    assert depth_left > 0, "a document nests deeper than any canonical value can"
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, bytes):
        if field_name in PUBLIC_KEY_FIELDS and len(value) == crypto.PUBLIC_KEY_BYTES:
            return crypto.public_key_to_text(value)
        return value.hex()
    if isinstance(value, CanonicalModel):
        return _display(value.to_canonical(), field_name, depth_left)
    if isinstance(value, Mapping):
        return {
            _display_key(key): _display(item, key, depth_left - 1) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        # A list's elements stay under its field's name: a list of public keys under
        # "public_key" shows as ed25519 text like a single one.
        return [_display(item, field_name, depth_left - 1) for item in value]
    raise TypeError(f"{type(value).__name__} has no display form")


def _display_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if isinstance(key, bytes):
        return key.hex()
    if isinstance(key, int) and not isinstance(key, bool):
        return str(key)
    raise TypeError(f"a map key of type {type(key).__name__} has no display form")


# --- documents --------------------------------------------------------------------------------


def _certified(store: ChainStore, height: int) -> tuple[Block, CommitCertificate]:
    """The block at ``height`` (1..tip) and its certificate; CorruptionError if missing."""
    block = store.block(height)
    certificate = store.certificate(height)
    if block is None or certificate is None:
        raise CorruptionError("block or certificate missing below the tip", height=height)
    return block, certificate


def _header_and_certificate(block: Block, certificate: CommitCertificate) -> dict[str, Any]:
    """The certified header in both forms: the decoded document and its exact bytes."""
    return {
        "header": block.header.to_canonical(),
        "header_bytes": block.header.to_bytes(),
        "certificate": certificate.to_canonical(),
        "certificate_bytes": certificate.to_bytes(),
    }


def _locate(
    store: ChainStore, tx_id: bytes
) -> tuple[Transaction, int, Block, CommitCertificate] | None:
    """A committed transaction, its position, its block and certificate; None if not committed.

    Reads the block once (blocks may be large) and checks the index against it.
    """
    location = store.transaction_location(tx_id)
    if location is None:
        return None
    height, position = location
    block, certificate = _certified(store, height)
    if position >= len(block.transactions) or block.transactions[position].tx_id != tx_id:
        raise CorruptionError("transaction index points at another transaction", height=height)
    return block.transactions[position], position, block, certificate


def receipt_for(
    store: ChainStore, tx_id: bytes, *, anchors: Sequence[AnchorLayout] = ()
) -> dict[str, Any] | None:
    """The audit-grade receipt of a committed transaction (canonical form), or None.

    See :mod:`ledger.receipt`: the transaction, its inclusion proof, its certified header and
    the proven member-set changes since the genesis, so that ``sceau verify`` checks it from
    the genesis alone; for an anchor of one of ``anchors`` (the contracts' declarations,
    :func:`contracts.registry.receipt_anchors`), also the anchored record at the tip.
    """
    receipt = build_receipt(store, tx_id, anchors=anchors)
    return None if receipt is None else receipt.to_canonical()


def _receipt_of(
    store: ChainStore,
    block: Block,
    certificate: CommitCertificate,
    position: int,
    anchors: Sequence[AnchorLayout],
    with_status: bool,
) -> dict[str, Any]:
    receipt = receipt_from_block(
        store, block, certificate, position, anchors=anchors, with_status=with_status
    )
    return receipt.to_canonical()


def transaction_status(
    store: ChainStore,
    mempool: Mempool,
    application: ChainApplication,
    tx_id: bytes,
    *,
    anchors: Sequence[AnchorLayout] = (),
    with_status: bool = False,
) -> dict[str, Any] | None:
    """What this node knows of ``tx_id``: committed, pending or rejected; None if nothing.

    ``anchors`` are the contracts' declarations: the receipt of a committed act one of them
    issues for a principal proves the signer's right (its ``authority``, when the member sets
    do not), and with ``with_status`` (``?with_status=true``) the receipt of an anchor also
    proves the anchored record at the tip (its ``status``); any other receipt has ``status``
    null. The application remembers the results of recent commits (None after a restart).
    """
    found = _locate(store, tx_id)
    if found is not None:
        transaction, position, block, certificate = found
        return {
            "tx_id": tx_id,
            "status": "committed",
            "height": block.height,
            "position": position,
            "block_hash": block.block_hash,
            "result": application.result(tx_id),
            "transaction": transaction.to_canonical(),
            "receipt": _receipt_of(store, block, certificate, position, anchors, with_status),
        }
    if tx_id in mempool:
        return {"tx_id": tx_id, "status": "pending"}
    rejection: Rejection | None = mempool.rejection(tx_id)
    if rejection is not None:
        return {
            "tx_id": tx_id,
            "status": "rejected",
            "code": rejection.code,
            "reason": rejection.reason,
        }
    return None


def block_document(store: ChainStore, height: int, *, with_transactions: bool) -> dict[str, Any]:
    """Block ``height`` (1..tip): header, hash, certificate, transaction ids (and bodies)."""
    block, certificate = _certified(store, height)
    document: dict[str, Any] = {
        "height": block.height,
        "block_hash": block.block_hash,
        **_header_and_certificate(block, certificate),
        "transaction_ids": [transaction.tx_id for transaction in block.transactions],
    }
    if with_transactions:
        document["transactions"] = [
            transaction.to_canonical() for transaction in block.transactions
        ]
    return document


def state_document(store: ChainStore, contract: str, key: bytes) -> dict[str, Any]:
    """The value of ``contract``'s state ``key`` at the tip, with a proof against the tip.

    The proof is over ``state_key`` (the namespaced key the state tree holds); it verifies
    with :func:`ledger.state.verify_state_proof` against ``state_root``, which is the
    ``state_root`` of the certified tip header (no header before the first block: the root is
    then the genesis state's, which a client recomputes from the genesis).
    """
    state_key = StateNamespace(contract).key(key)
    tip = store.tip
    document: dict[str, Any] = {
        "contract": contract,
        "key": key,
        "state_key": state_key,
        "value": store.state_get(state_key),
        "proof": store.state_prove(state_key).to_canonical(),
        "state_root": tip.state_root,
        "height": tip.height,
        "header": None,
        "header_bytes": None,
        "certificate": None,
        "certificate_bytes": None,
    }
    if tip.height > 0:
        block, certificate = _certified(store, tip.height)
        if block.header.state_root != tip.state_root:
            raise CorruptionError("the tip header names another state root", height=tip.height)
        document.update(_header_and_certificate(block, certificate))
    return document


def status_document(status: Mapping[str, Any]) -> dict[str, Any]:
    """``Node.status()`` as a canonical document: its hex fields as bytes, uptime whole.

    ``Node.status()`` already holds display text for the two hashes and a float uptime; the
    msgpack form wants bytes and has no floats, so both are normalized here.
    """
    document = dict(status)
    for name in ("chain_id", "block_hash"):
        if isinstance(document.get(name), str):
            document[name] = bytes.fromhex(document[name])
    if isinstance(document.get("uptime_s"), float):
        document["uptime_s"] = int(document["uptime_s"])
    return document


# --- response models (the JSON forms; the OpenAPI schemas come from these) --------------------

Hex = Annotated[str, Field(pattern=r"^(?:[0-9a-f]{2})*$", description="bytes, lowercase hex")]
Hash = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="32 bytes, lowercase hex")]
PublicKeyText = Annotated[
    str,
    Field(pattern=r"^ed25519:[A-Za-z0-9_-]{43}$", description="Ed25519 public key"),
]
MemberIdText = Annotated[str, Field(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?$")]
HeightNumber = Annotated[int, Field(ge=0, le=2**63 - 1)]
Count = Annotated[int, Field(ge=0)]


class Document(BaseModel):
    """Base of the response models: strict about fields, so the tests catch any drift."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Problem(BaseModel):
    """An RFC 9457 problem object; ``code`` is the stable, machine-readable part."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: Annotated[str, Field(pattern=r"^urn:sceau:problem:[a-z][a-z0-9_]*$")]
    title: str
    status: Annotated[int, Field(ge=400, le=599)]
    detail: str
    code: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    tx_id: Hash | None = Field(default=None, description="the transaction, for rejections")


class SubmitRequest(Document):
    """A transaction to submit: the hex of its canonical msgpack bytes."""

    transaction: Annotated[
        str, Field(pattern=r"^(?:[0-9a-f]{2})+$", description="canonical bytes, lowercase hex")
    ]


class BatchSubmitRequest(Document):
    """Transactions to submit together: the hex of each one's canonical msgpack bytes."""

    transactions: Annotated[
        list[
            Annotated[
                str,
                Field(pattern=r"^(?:[0-9a-f]{2})+$", description="canonical bytes, lowercase hex"),
            ]
        ],
        Field(min_length=1, max_length=BATCH_TRANSACTIONS_MAX),
    ]


class BatchOutcome(Document):
    """What became of one transaction of a batch."""

    tx_id: Hash
    status: Literal["pending", "committed", "rejected", "unknown"] = Field(
        description="unknown: admitted, then dropped before the answer (see GET "
        "/v1/transactions/{tx_id})"
    )
    code: str | None = Field(default=None, description="a rejection's stable code")
    reason: str | None = Field(default=None, description="a rejection's reason, for people")
    height: HeightNumber | None = Field(default=None, description="a committed one's block")


class BatchAnswer(Document):
    """The outcome of every transaction of a batch, in the batch's order (200 whatever they
    are: a rejection is one transaction's, as the codes of POST /v1/transactions say)."""

    admitted: Count = Field(description="transactions this request added to the mempool")
    transactions: list[BatchOutcome]


Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class TransactionDescription(Document):
    """A transaction described in JSON (docs/api.md, "From any language"): in ``args``, bytes
    are ``{"$hex": "<lowercase hex>"}``; numbers are integers."""

    contract: Name
    action: Name
    args: dict[str, Any]
    signer: Annotated[
        str,
        Field(
            pattern=r"^(?:[0-9a-f]{64}|ed25519:[A-Za-z0-9_-]{43})$",
            description="the signer's Ed25519 public key: 64 hex digits, or ed25519:<base64url>",
        ),
    ]
    nonce: Annotated[int, Field(ge=0, le=2**64 - 1)] | None = Field(
        default=None, description="any integer; prepare picks a random one when it is absent"
    )
    expiry_height: Annotated[int, Field(ge=1, le=2**63 - 1)] | None = Field(
        default=None,
        description="the last height the transaction may be committed at; "
        "prepare takes the tip + 1000 when it is absent",
    )
    chain_id: Hash | None = Field(
        default=None, description="the consortium's chain_id: a node of another one refuses it"
    )


class PreparedTransaction(Document):
    """A transaction built from its description: what to sign, and what to send back."""

    description: TransactionDescription = Field(
        description="the complete description (nonce and expiry included), to send back"
    )
    tx_id: Hash
    body: Hex = Field(description="the canonical body; tx_id is its SHA-256")
    message_to_sign: Hex = Field(
        description="the exact bytes to sign with Ed25519: 0x0b, 'sceau/tx/v1', chain_id, tx_id"
    )
    message_to_sign_base64: str = Field(description="the same bytes, in base64")


class SignedSubmission(Document):
    """A prepared transaction sent back with its signature."""

    prepared: PreparedTransaction | TransactionDescription = Field(
        description="the answer of prepare as it came, or a complete description"
    )
    signature: Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]


class Receipt(Document):
    """An audit-grade receipt (ledger.receipt.Receipt's JSON form; docs/format.md)."""

    model_config = ConfigDict(extra="allow")
    format: Literal["sceau-receipt/v1"]
    chain_id: Hash
    transaction: Hex
    height: HeightNumber
    position: Count
    inclusion_proof: list[Hash]
    header: BlockHeader
    certificate: CommitCertificate
    member_changes: list[Any]
    status: Any = None
    authority: Any = Field(
        default=None,
        description="absent unless the signer is not the issuer's node key: the state that "
        "entitled it to sign (docs/format.md 7.10)",
    )


class CommittedTransaction(Document):
    tx_id: Hash
    status: Literal["committed"]
    height: HeightNumber
    position: Count
    block_hash: Hash
    result: Any = Field(description="the contract's result; null if the node restarted since")
    transaction: Transaction
    receipt: Receipt


class PendingTransaction(Document):
    tx_id: Hash
    status: Literal["pending"]


class RejectedTransaction(Document):
    tx_id: Hash
    status: Literal["rejected"]
    code: str
    reason: str


class AcceptedTransaction(Document):
    """The answer of a submission that is not committed yet (``unknown``: dropped since)."""

    tx_id: Hash
    status: Literal["pending", "unknown"]


class TransactionStatus(
    RootModel[
        Annotated[
            CommittedTransaction | PendingTransaction | RejectedTransaction,
            Field(discriminator="status"),
        ]
    ]
):
    """What the node knows of a transaction."""


class BlockDocument(Document):
    height: HeightNumber
    block_hash: Hash
    header: BlockHeader
    header_bytes: Hex
    certificate: CommitCertificate
    certificate_bytes: Hex
    transaction_ids: list[Hash]
    transactions: list[Transaction] | None = Field(
        default=None, description="present with ?transactions=true"
    )


class StateProofDocument(Document):
    siblings: list[Hash]
    other_key_path: Hash | None
    other_value_hash: Hash | None


class StateDocument(Document):
    contract: str
    key: Hex
    state_key: Hex
    value: Hex | None
    proof: StateProofDocument
    state_root: Hash
    height: HeightNumber
    header: BlockHeader | None
    header_bytes: Hex | None
    certificate: CommitCertificate | None
    certificate_bytes: Hex | None


class QueryDocument(Document):
    """A contract's answer to a query (``GET /v1/query/{contract}/{path}``)."""

    height: HeightNumber = Field(description="the tip height the answer was read at")
    contract: str
    path: str = Field(description="the path the contract was asked, query string included")
    answer: Any = Field(description="the contract's answer (bytes as lowercase hex)")
    proof: QueryProof | None = Field(
        default=None,
        description="with ?proof=true: the state values the query read, proven against the "
        "certified tip (sceau-query-proof/v1, docs/api.md)",
    )


class ActRecord(Document):
    """An act of the deeds contract (docs/contracts_deeds.md)."""

    issuer: MemberIdText
    reference: str
    kind: str
    digest: Hash
    act_date: str
    title: str
    legal_basis: str | None
    url: str | None
    person_commitment: Hash | None
    status: Literal["in_force", "amended", "superseded", "withdrawn", "annulled"]
    anchored_height: HeightNumber
    anchored_timestamp_ms: Count
    status_height: HeightNumber
    amended_by: list[str]
    amends: list[str]
    superseded_by: str | None
    supersedes: list[str]
    history_length: Count
    subject_code: str | None = Field(
        default=None,
        description="deeds 1.1, deliberations only (absent when not given, like the fields "
        "below): the ACTES subject code, e.g. 7.5",
    )
    subject_name: str | None = None
    votes: dict[str, Count] | None = Field(
        default=None, description="entitled, cast, for, against, abstention (counts)"
    )
    budget_year: str | None = None
    budget_name: str | None = None
    control_entity: str | None = Field(
        default=None, description="PREFNNN, SPREFNNNM or SGARNNN: who received the act"
    )
    control_date: str | None = None


class DigestMatch(Document):
    issuer: MemberIdText
    reference: str
    kind: str
    status: str
    act_date: str
    anchored_height: HeightNumber


class HistoryEntry(Document):
    sequence: Count
    height: HeightNumber
    timestamp_ms: Count
    action: str
    status: str
    tx_id: Hash
    signer: PublicKeyText
    by_reference: str | None
    reason: str | None
    decision_reference: str | None


class ActDocument(Document):
    height: HeightNumber = Field(description="the tip height the answer was read at")
    act: ActRecord


class DigestDocument(Document):
    height: HeightNumber
    digest: Hash
    acts: list[DigestMatch]


class HistoryDocument(Document):
    height: HeightNumber
    issuer: MemberIdText
    reference: str
    history: list[HistoryEntry]


class IssuerActsDocument(Document):
    height: HeightNumber
    issuer: MemberIdText
    acts: list[ActRecord]


class MembersDocument(Document):
    height: HeightNumber
    members: list[Member]


class ParametersDocument(Document):
    height: HeightNumber
    parameters: ConsensusParameters


class ProposalDocument(Document):
    proposal_id: Hash
    proposer: MemberIdText
    change: dict[str, Any] = Field(
        description="admit, remove, set_parameters, admit_issuers, suspend_issuer, "
        "reinstate_issuer, remove_issuer, schedule_format or set_member_siret"
    )
    created_height: HeightNumber
    expiry_height: HeightNumber
    yes_voters: list[MemberIdText]
    no_voters: list[MemberIdText]
    status: Literal["open", "passed", "rejected", "expired"]
    closed_height: HeightNumber | None


class ProposalsDocument(Document):
    height: HeightNumber
    proposals: list[ProposalDocument]


class IssuerRecord(Document):
    """An issuer admitted by governance (``ledger.model.Issuer``, docs/format.md §5.11)."""

    id: MemberIdText
    name: str
    siret: Annotated[str, Field(pattern=r"^[0-9]{14}$")] | None
    public_key: PublicKeyText = Field(description="the issuer's own key (it holds every role)")
    status: Literal["active", "suspended", "removed"]
    admitted_height: HeightNumber
    status_height: HeightNumber = Field(description="the height of the block that set status")


class IssuersDocument(Document):
    height: HeightNumber
    issuers: list[IssuerRecord] = Field(
        description="in id order; the next page starts after the last id (?after=)"
    )


class IssuerDocument(Document):
    height: HeightNumber
    issuer: IssuerRecord


class WitnessStatus(Document):
    """One configured witness, as this node saw its last pushes."""

    name: str
    cosigned_size: Count | None
    """The size of the last checkpoint it cosigned for this node (None: never)."""
    last_error: str | None
    """Why the last push failed (None once one succeeded)."""
    last_success_ms: Count | None
    """When a push last succeeded, Unix milliseconds."""


class CheckpointStatus(Document):
    """The ``checkpoint`` member of the node's status."""

    size: Count | None
    height: HeightNumber | None
    signers: list[MemberIdText]
    witnesses: list[WitnessStatus]


class NodeStatus(BaseModel):
    """``Node.status()``; more fields may appear in later versions. An observer's has
    ``role`` "observer", no ``member_id``, and ``following`` (the member API it follows)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    role: Literal["member", "observer"] = "member"
    member_id: MemberIdText | None
    chain_id: Hash
    height: HeightNumber
    block_hash: Hash
    view: Count
    members: Count
    peers_connected: list[str]
    mempool_transactions: Count
    mempool_bytes: Count
    checkpoint: CheckpointStatus | None = None
    """The latest consortium checkpoint and the witnesses' pushes (GET /v1/log/checkpoint)."""
    uptime_s: Count


class CheckpointWitness(Document):
    name: str
    """The cosignature's key name (the witness's name in its vkey)."""
    timestamp: Count
    """When the witness cosigned, POSIX seconds."""


class CheckpointDocument(Document):
    """``GET /v1/log/checkpoint.json``: the latest consortium checkpoint, decoded."""

    origin: str
    size: Count
    root: Hash
    height: HeightNumber | None
    """The height of the block header whose log it is."""
    signers: list[MemberIdText]
    witnesses: list[CheckpointWitness]
    note: str
    """The signed note itself, as ``GET /v1/log/checkpoint`` serves it."""


class Health(Document):
    status: Literal["ok"]
