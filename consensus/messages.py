"""The messages replicas exchange, as frozen models with canonical bytes.

Every message is a canonical map with a ``kind`` field naming its type (see
:data:`MESSAGE_TYPES`). Votes are individually signed (docs/architecture.md, decision 11) because
certificates are made of them:

=================  =================================  =========================================
message            signed payload                     domain tag
=================  =================================  =========================================
``PrePrepare``     ``[height, view, block_hash]``     ``sceau/pre-prepare/v1``
``Prepare``        ``[height, view, block_hash]``     ``sceau/prepare/v1``
``CommitVote``     ``[height, view, block_hash]``     ``sceau/commit/v1`` (certificates reuse it)
``ViewChange``     canonical body without signature   ``sceau/view-change/v1``
``NewView``        canonical body without signature   ``sceau/new-view/v1``
=================  =================================  =========================================

``Status``, ``BlockRequest`` and ``BlockResponse`` are not signed: a status carries a commit
certificate (itself the proof), and fetched blocks are checked against their certificates.
The transport authenticates the peer that sends a message; the replica checks that ``sender``
is that peer for every message it receives directly.
"""

from __future__ import annotations

import itertools
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, TypeAdapter, ValidationError, model_validator

from ledger import crypto, domains, encoding
from ledger.model import (
    MEMBERS_MAX,
    U63_MAX,
    Block,
    CanonicalModel,
    CommitCertificate,
    Hash32,
    Height,
    MemberId,
    ModelDecodeError,
    Signature,
    View,
    built,
    decoded_block,
    is_integer,
    is_member_id,
    is_signature,
    vote_payload,
)

__all__ = [
    "BLOCKS_PER_RESPONSE_MAX",
    "MESSAGE_TYPES",
    "SIGNED_MESSAGE_TYPES",
    "BlockRequest",
    "BlockResponse",
    "CommitVote",
    "Message",
    "NewView",
    "PrePrepare",
    "Prepare",
    "PreparedCertificate",
    "SignedMessage",
    "Status",
    "ViewChange",
    "decode_message",
    "encode_message",
    "message_from_decoded",
    "message_from_document",
    "message_size_bytes",
]

BLOCKS_PER_RESPONSE_MAX = 64
VoteSignatures = Annotated[
    tuple[tuple[MemberId, Signature], ...], Field(min_length=1, max_length=MEMBERS_MAX)
]


def _sorted_unique(entries: tuple[tuple[str, bytes], ...]) -> None:
    ids = [member_id for member_id, _ in entries]
    if any(left >= right for left, right in itertools.pairwise(ids)):
        raise ValueError("signatures must be sorted by member id, each member once")


class _Vote(CanonicalModel):
    """A signed statement about ``(height, view, block_hash)``."""

    DOMAIN_TAG: ClassVar[bytes] = b""

    height: Height
    view: View
    block_hash: Hash32
    sender: MemberId
    signature: Signature

    @classmethod
    def sign(
        cls,
        key: crypto.PrivateKey,
        chain_id: bytes,
        *,
        height: int,
        view: int,
        block_hash: bytes,
        sender: str,
    ) -> Self:
        payload = vote_payload(height, view, block_hash)
        signature = crypto.sign(key, crypto.Domain(cls.DOMAIN_TAG, chain_id), payload)
        return cls(
            height=height, view=view, block_hash=block_hash, sender=sender, signature=signature
        )

    def signature_is_valid(self, chain_id: bytes, public_key: bytes) -> bool:
        payload = vote_payload(self.height, self.view, self.block_hash)
        domain = crypto.Domain(self.DOMAIN_TAG, chain_id)
        return crypto.verify(public_key, domain, payload, self.signature)


class Prepare(_Vote):
    """Phase 2: the sender holds a valid proposal ``block_hash`` for ``(height, view)``."""

    DOMAIN_TAG: ClassVar[bytes] = domains.PREPARE
    kind: Literal["prepare"] = "prepare"


class CommitVote(_Vote):
    """Phase 3: the sender is prepared on ``block_hash``; q of these make a certificate."""

    DOMAIN_TAG: ClassVar[bytes] = domains.COMMIT
    kind: Literal["commit"] = "commit"


class PrePrepare(CanonicalModel):
    """Phase 1: the primary of ``(height, view)`` proposes ``block``."""

    kind: Literal["pre_prepare"] = "pre_prepare"
    height: Height
    view: View
    block: Block
    sender: MemberId
    signature: Signature

    @classmethod
    def sign(
        cls, key: crypto.PrivateKey, chain_id: bytes, *, view: int, block: Block, sender: str
    ) -> PrePrepare:
        payload = vote_payload(block.height, view, block.block_hash)
        signature = crypto.sign(key, crypto.Domain(domains.PRE_PREPARE, chain_id), payload)
        return cls(height=block.height, view=view, block=block, sender=sender, signature=signature)

    @model_validator(mode="after")
    def _height_matches(self) -> Self:
        if self.block.height != self.height:
            raise ValueError("block.header.height differs from height")
        return self

    def signature_is_valid(self, chain_id: bytes, public_key: bytes) -> bool:
        payload = vote_payload(self.height, self.view, self.block.block_hash)
        domain = crypto.Domain(domains.PRE_PREPARE, chain_id)
        return crypto.verify(public_key, domain, payload, self.signature)


class PreparedCertificate(CanonicalModel):
    """Proof that a quorum prepared ``block_hash`` at ``(height, view)``: q Prepare signatures."""

    height: Height
    view: View
    block_hash: Hash32
    prepares: VoteSignatures

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _sorted_unique(self.prepares)
        return self

    def signatures_are_valid(self, chain_id: bytes, public_keys: dict[str, bytes]) -> bool:
        """True if every signer is in ``public_keys`` and every Prepare signature verifies."""
        payload = vote_payload(self.height, self.view, self.block_hash)
        domain = crypto.Domain(domains.PREPARE, chain_id)
        for member_id, signature in self.prepares:
            public_key = public_keys.get(member_id)
            if public_key is None or not crypto.verify(public_key, domain, payload, signature):
                return False
        return True


class _SignedBody(CanonicalModel):
    """A message signed over its canonical body: every field but those in UNSIGNED_FIELDS."""

    DOMAIN_TAG: ClassVar[bytes] = b""
    UNSIGNED_FIELDS: ClassVar[tuple[str, ...]] = ("signature",)
    signature: Signature

    def body_bytes(self) -> bytes:
        body = self.to_canonical()
        for name in self.UNSIGNED_FIELDS:
            del body[name]
        return encoding.pack(body)

    def signature_is_valid(self, chain_id: bytes, public_key: bytes) -> bool:
        domain = crypto.Domain(self.DOMAIN_TAG, chain_id)
        return crypto.verify(public_key, domain, self.body_bytes(), self.signature)

    @classmethod
    def sign(cls, key: crypto.PrivateKey, chain_id: bytes, **fields: Any) -> Self:
        unsigned = cls.model_construct(**fields, signature=bytes(64))
        signature = crypto.sign(key, crypto.Domain(cls.DOMAIN_TAG, chain_id), unsigned.body_bytes())
        return cls.model_validate({**fields, "signature": signature})


class ViewChange(_SignedBody):
    """The sender moves to ``view`` at ``height``, carrying its highest prepared certificate.

    ``prepared_block`` is the block of that certificate, so the new primary can propose it
    again. It is not signed (the certificate names its hash) and is left out when the view
    change travels inside a NewView, which carries the chosen block once.
    """

    DOMAIN_TAG: ClassVar[bytes] = domains.VIEW_CHANGE
    UNSIGNED_FIELDS: ClassVar[tuple[str, ...]] = ("signature", "prepared_block")
    kind: Literal["view_change"] = "view_change"
    height: Height
    view: View
    prepared: PreparedCertificate | None
    sender: MemberId
    prepared_block: Block | None = None

    @model_validator(mode="after")
    def _block_matches(self) -> Self:
        if self.prepared is not None and self.prepared.height != self.height:
            raise ValueError("prepared.height differs from height")
        if self.prepared_block is not None and (
            self.prepared is None or self.prepared_block.block_hash != self.prepared.block_hash
        ):
            raise ValueError("prepared_block does not match the prepared certificate")
        return self

    def without_block(self) -> ViewChange:
        return (
            self
            if self.prepared_block is None
            else self.model_copy(update={"prepared_block": None})
        )


class NewView(_SignedBody):
    """The primary of ``view`` justifies its proposal with q ViewChange messages."""

    DOMAIN_TAG: ClassVar[bytes] = domains.NEW_VIEW
    kind: Literal["new_view"] = "new_view"
    height: Height
    view: View
    view_changes: Annotated[tuple[ViewChange, ...], Field(min_length=1, max_length=MEMBERS_MAX)]
    pre_prepare: PrePrepare
    sender: MemberId


class Status(CanonicalModel):
    """The sender's committed tip, with the certificate that proves it (none at height 0)."""

    kind: Literal["status"] = "status"
    height: Annotated[int, Field(ge=0, le=2**63 - 1, strict=True)]
    certificate: CommitCertificate | None
    sender: MemberId


class BlockRequest(CanonicalModel):
    """Ask a peer for committed blocks ``from_height`` to ``to_height`` with certificates."""

    kind: Literal["block_request"] = "block_request"
    from_height: Height
    to_height: Height
    sender: MemberId

    @model_validator(mode="after")
    def _bounded(self) -> Self:
        if not 0 <= self.to_height - self.from_height < BLOCKS_PER_RESPONSE_MAX:
            raise ValueError(f"ask for 1 to {BLOCKS_PER_RESPONSE_MAX} blocks")
        return self


class BlockResponse(CanonicalModel):
    """Committed blocks with their certificates, in height order."""

    kind: Literal["block_response"] = "block_response"
    blocks: Annotated[
        tuple[tuple[Block, CommitCertificate], ...], Field(max_length=BLOCKS_PER_RESPONSE_MAX)
    ]
    sender: MemberId


Message = Annotated[
    PrePrepare
    | Prepare
    | CommitVote
    | ViewChange
    | NewView
    | Status
    | BlockRequest
    | BlockResponse,
    Field(discriminator="kind"),
]
MESSAGE_TYPES = (
    PrePrepare,
    Prepare,
    CommitVote,
    ViewChange,
    NewView,
    Status,
    BlockRequest,
    BlockResponse,
)
SignedMessage = PrePrepare | Prepare | CommitVote | ViewChange | NewView
"""The messages a member signs (``Status``, ``BlockRequest``, ``BlockResponse`` are not)."""
SIGNED_MESSAGE_TYPES = (PrePrepare, Prepare, CommitVote, ViewChange, NewView)
_MESSAGE_ADAPTER: TypeAdapter[Any] = TypeAdapter(Message)


def encode_message(message: Any) -> bytes:
    """The canonical bytes of a message (what goes in a peer frame)."""
    return message.to_bytes()


def decode_message(data: bytes, limits: encoding.DecodeLimits = encoding.DEFAULT_LIMITS) -> Any:
    """Decode a peer message; raises ModelDecodeError or EncodingError on bad input."""
    return message_from_decoded(encoding.unpack(data, limits))


def message_from_decoded(document: Any) -> Any:
    """As :func:`message_from_document`, for a document that :func:`ledger.encoding.unpack` has
    just returned and that nobody else holds.

    The messages that carry blocks (proposals, catch-up responses) are built by a direct check
    of their fields, their blocks' and their transactions' (:func:`ledger.model.decoded_block`);
    a document that this check does not accept goes through pydantic, which accepts or refuses
    it, with its message, exactly as before.
    """
    kind = document.get("kind") if type(document) is dict else None
    message = None
    if kind == "pre_prepare":
        message = _decoded_pre_prepare(document)
    elif kind == "block_response":
        message = _decoded_block_response(document)
    return message if message is not None else message_from_document(document)


def message_from_document(document: Any) -> Any:
    """Build a message from its decoded canonical map; raises ModelDecodeError."""
    if not isinstance(document, dict) or "kind" not in document:
        raise ModelDecodeError("message: expected a map with a 'kind'")
    try:
        message = _MESSAGE_ADAPTER.validate_python(document)
    except ValidationError as error:
        first = error.errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        raise ModelDecodeError(f"message.{location}: {first['msg']}") from None
    missing = type(message).model_fields.keys() - document.keys()
    if missing:
        raise ModelDecodeError(f"message: missing field {sorted(missing)[0]!r}")
    return message


BLOCK_OVERHEAD_BYTES = 1024
"""More than a block's header and framing take, beyond its transactions' own bytes."""
CERTIFICATE_OVERHEAD_BYTES = 256
SIGNATURE_ENTRY_BYTES = 128
"""More than one ``(member id, signature)`` entry of a certificate takes."""


def _block_size_bytes(block: Block | None) -> int:
    if block is None:
        return 0
    return BLOCK_OVERHEAD_BYTES + sum(len(tx.encoded) + 8 for tx in block.transactions)


def _certificate_size_bytes(certificate: Any) -> int:
    if certificate is None:
        return 0
    signatures = getattr(certificate, "signatures", None) or certificate.prepares
    return CERTIFICATE_OVERHEAD_BYTES + SIGNATURE_ENTRY_BYTES * len(signatures)


def message_size_bytes(message: Any) -> int:
    """An upper estimate of ``message``'s canonical size, in bytes, without encoding it.

    Buffers are bounded in bytes; encoding a block again to weigh it would cost as much as
    the buffering it guards. A block weighs its transactions' canonical bytes (each
    transaction keeps them once computed: the Merkle root needs them anyway) plus a generous
    :data:`BLOCK_OVERHEAD_BYTES`; messages without a block are small and simply encoded.
    """
    if isinstance(message, PrePrepare):
        return BLOCK_OVERHEAD_BYTES + _block_size_bytes(message.block)
    if isinstance(message, ViewChange):
        return (
            BLOCK_OVERHEAD_BYTES
            + _certificate_size_bytes(message.prepared)
            + _block_size_bytes(message.prepared_block)
        )
    if isinstance(message, NewView):
        return (
            BLOCK_OVERHEAD_BYTES
            + sum(message_size_bytes(view_change) for view_change in message.view_changes)
            + message_size_bytes(message.pre_prepare)
        )
    if isinstance(message, Status):
        return BLOCK_OVERHEAD_BYTES + _certificate_size_bytes(message.certificate)
    if isinstance(message, BlockResponse):
        return BLOCK_OVERHEAD_BYTES + sum(
            _block_size_bytes(block) + _certificate_size_bytes(certificate)
            for block, certificate in message.blocks
        )
    return len(message.to_bytes())


# --- the decoding fast path (see ledger.model's) ---------------------------------------------

_PRE_PREPARE_FIELDS = frozenset(PrePrepare.model_fields)
_BLOCK_RESPONSE_FIELDS = frozenset(BlockResponse.model_fields)
for _model in (PrePrepare, BlockResponse):
    assert _model.__pydantic_post_init__ is None and not _model.__private_attributes__


def _decoded_pre_prepare(document: dict[str, Any]) -> PrePrepare | None:
    """The proposal of a decoded canonical map, or None to leave it to pydantic."""
    if document.keys() != _PRE_PREPARE_FIELDS:
        return None
    height = document["height"]
    if not (
        is_integer(height, 1, U63_MAX)
        and is_integer(document["view"], 0, U63_MAX)
        and is_member_id(document["sender"])
        and is_signature(document["signature"])
    ):
        return None
    block = decoded_block(document["block"])
    if block is None or block.height != height:
        return None
    return built(
        PrePrepare,
        {
            "kind": "pre_prepare",
            "height": height,
            "view": document["view"],
            "block": block,
            "sender": document["sender"],
            "signature": document["signature"],
        },
    )


def _decoded_block_response(document: dict[str, Any]) -> BlockResponse | None:
    """The catch-up response of a decoded canonical map, or None to leave it to pydantic."""
    if document.keys() != _BLOCK_RESPONSE_FIELDS or not is_member_id(document["sender"]):
        return None
    entries = document["blocks"]
    if type(entries) is not list or len(entries) > BLOCKS_PER_RESPONSE_MAX:
        return None
    blocks = []
    for entry in entries:
        if type(entry) is not list or len(entry) != 2:
            return None
        block = decoded_block(entry[0])
        if block is None:
            return None
        try:
            # Small, and validated as pydantic would inside the response: by pydantic.
            certificate = CommitCertificate.model_validate(entry[1])
        except ValidationError:
            return None
        blocks.append((block, certificate))
    return built(
        BlockResponse,
        {"kind": "block_response", "blocks": tuple(blocks), "sender": document["sender"]},
    )
