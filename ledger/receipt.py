"""Receipts: proof, checkable offline from the genesis alone, that an act was anchored.

Theory of operation
-------------------
A receipt carries a transaction and everything needed to show that the consortium committed
it, to someone who holds only the genesis file (docs/audit.md walks through it):

1. **The member sets.** Block 1 is certified by the genesis members. Whenever the member set
   changed, say at height ``h``, the receipt carries a :class:`MemberSetChange`: block
   ``h − 1``'s header and commit certificate (certified by the set the verifier already
   trusts), the new member list, and a state proof that ``membership/members`` holds exactly
   that list under that header's ``state_root``. Step by step, the verifier learns which keys
   may certify each later block, trusting no node.
2. **The block.** The header of the transaction's block, with its commit certificate: a quorum
   of the member set in force at that height, and the header's ``members_hash`` names that set.
3. **The transaction.** Its canonical bytes are leaf ``position`` of the RFC 9162 tree of
   ``tx_count`` leaves whose root is the header's ``tx_root`` (inclusion proof); its signature
   verifies; for an anchor (a deeds ``anchor``), the document's SHA-256 is the anchored
   ``digest``.
4. **The signer's right**, for an act issued for a *principal* (the deeds ``anchor`` names its
   ``issuer``): the key that signed it may act for that principal at the block's height. A
   member's node key is proven by the member sets already. Any other key — an issuer's own
   key, a key delegated a role — is proven by the receipt's :class:`SignerAuthority`: the
   header of block ``h − 1`` (linked to the certified header ``h`` by its ``prev_hash``, so it
   needs no certificate of its own) and state proofs, under its ``state_root``, of the
   issuer's record and of the signer key's delegations: the state that authorized block
   ``h``'s transactions (a change at ``h − 1`` is in force at ``h``).
5. **Optionally, the act's status** at a later certified height: a header and certificate (with
   the member-set changes up to it) and a state proof of the act's record under its root.

Every header a receipt shows (each member-set change, the block, the status) is held to the
rules the chain audit applies to one block without its parent or re-execution — the chain, a
time after the genesis, the member set in force, the proposer being the view's primary, the
certificate — and the transaction to its expiry and to a contract the genesis lists: one
definition, :func:`ledger.audit.block_rule_failures`, so that a quorum re-signing a block that
breaks one of them gets a receipt that fails exactly as the audit would.

Which transactions anchor a document, and where their record lives, is the contract's
knowledge, not the format's: the caller passes the :class:`AnchorLayout` declarations of the
contracts it knows (``Contract.receipt_anchors``, gathered by
:func:`contracts.registry.receipt_anchors`); so is who an act is issued for and the role that
issuing takes (``AnchorLayout.principal``, ``AnchorLayout.role``). The member-set key, in
contrast, is part of the chain format (docs/format.md §7.8):
:data:`ledger.namespace.MEMBERS_STATE_KEY`, and so are the keys of an issuer's record and of a
signer's delegations (§7.6, §7.10): :func:`ledger.namespace.issuer_state_key`,
:func:`ledger.namespace.signer_state_key`.

The trust a receipt gives is the trust in its member sets: a quorum of members of an *earlier*
set (members removed since, colluding) could certify a forged history that omits their
removal. Auditors who follow the whole chain (``sceau audit``) or compare receipts with a
recent certified header close that gap; see docs/audit.md.

A receipt has a JSON form (readable, stable; bytes as lowercase hex, keys as ``ed25519:``) and
a compact canonical msgpack form (``to_bytes``). A receipt without a signer authority has no
``authority`` field at all, in either form: the receipts of acts signed by a member's node key,
and every receipt made before authorities existed, keep their bytes.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Self

from pydantic import Field, StrictInt, StrictStr, model_serializer, model_validator

from ledger import encoding, merkle, tlog
from ledger.audit import block_rule_failures
from ledger.logcheck import CheckpointError, VerifiedCheckpoint, WitnessPolicy, verify_checkpoint
from ledger.model import (
    MEMBERS_MAX,
    Block,
    BlockHeader,
    CanonicalModel,
    CommitCertificate,
    Genesis,
    Hash32,
    Height,
    Issuer,
    Member,
    ModelDecodeError,
    Transaction,
    hex_bytes,
)
from ledger.namespace import MEMBERS_STATE_KEY, issuer_state_key, signer_state_key
from ledger.note import NOTE_BYTES_MAX, PROOF_HASHES_MAX, Checkpoint, Note, NoteError, origin_for
from ledger.state import StateProof, verify_state_proof

__all__ = [
    "MEMBERS_STATE_KEY",
    "AnchorLayout",
    "LogInclusion",
    "MemberSetChange",
    "ProvenValue",
    "Receipt",
    "ReceiptError",
    "SignerAuthority",
    "SignerRight",
    "SignerRightKind",
    "StatusProof",
    "VerifiedReceipt",
    "certified_members",
    "changes_before_log_size",
    "checkpoint_members",
    "log_inclusion",
    "log_index",
    "member_set_change",
    "signer_authority",
    "verify_receipt",
]

MEMBER_SET_CHANGES_MAX = 4096
INCLUSION_PROOF_MAX = 64
AUTHORITY_ENTRIES_MAX = 4
"""State values one :class:`SignerAuthority` proves: two are ever needed (the issuer's record,
the signer's delegations); the bound leaves room and refuses more before any proof is checked."""
STATE_KEY_BYTES_MAX = 1024
STATE_VALUE_BYTES_MAX = 256 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class AnchorLayout:
    """A contract's action that anchors a document, as a receipt sees it.

    Declared by the contract (``Contract.receipt_anchors``): a transaction of ``contract``
    and ``action`` carries the document's SHA-256 in its ``digest`` argument, and its record
    lives at the state key ``record_key(arguments)``; a receipt's status proves that key.
    """

    contract: str
    action: str
    record_key: Callable[[Mapping[str, Any]], bytes]
    """The full state key (namespace included) of the record the anchor writes."""
    principal: Callable[[Mapping[str, Any]], str] | None = None
    """Who the act is issued for (a member's or an issuer's id), from its arguments; with it,
    a receipt proves that the signer may act for that principal (:class:`SignerAuthority`).
    None: the receipt proves nothing about the signer's right (a plug-in's anchors)."""
    role: str | None = None
    """The role the signer needs from the principal (the deeds ``anchor``: ``deeds.issue``)."""

    def __post_init__(self) -> None:
        assert (self.principal is None) == (self.role is None), "a principal goes with a role"

    def anchors(self, transaction: Transaction) -> bool:
        return transaction.contract == self.contract and transaction.action == self.action


def _anchor_of(transaction: Transaction, anchors: Sequence[AnchorLayout]) -> AnchorLayout | None:
    """The layout under which ``transaction`` anchors a document, or None."""
    return next((layout for layout in anchors if layout.anchors(transaction)), None)


class ReceiptError(ValueError):
    """A receipt that does not prove what it claims; ``step`` names the check that failed."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


class StateProofDocument(CanonicalModel):
    """A :class:`~ledger.state.StateProof` in a model's fields."""

    siblings: Annotated[tuple[Hash32, ...], Field(max_length=256)]
    other_key_path: Hash32 | None
    other_value_hash: Hash32 | None

    @model_validator(mode="after")
    def _other_leaf_is_whole(self) -> StateProofDocument:
        if (self.other_key_path is None) != (self.other_value_hash is None):
            raise ValueError("other_key_path and other_value_hash go together")
        return self

    @classmethod
    def of(cls, proof: StateProof) -> StateProofDocument:
        return cls.model_validate(proof.to_canonical())

    def proof(self) -> StateProof:
        return StateProof.from_canonical(self.to_canonical())


class MemberSetChange(CanonicalModel):
    """The member set committed by block ``header.height``, in force from the next height."""

    header: BlockHeader
    certificate: CommitCertificate
    members: Annotated[tuple[Member, ...], Field(min_length=1, max_length=MEMBERS_MAX)]
    proof: StateProofDocument


class StatusProof(CanonicalModel):
    """The value of a state key (an act's record) under a later certified header."""

    header: BlockHeader
    certificate: CommitCertificate
    member_changes: Annotated[tuple[MemberSetChange, ...], Field(max_length=MEMBER_SET_CHANGES_MAX)]
    key: hex_bytes(1024)
    value: hex_bytes(256 * 1024) | None
    proof: StateProofDocument


class ProvenValue(CanonicalModel):
    """The value of a state key (None: absent) and its proof, under a root given by context."""

    key: hex_bytes(STATE_KEY_BYTES_MAX)
    value: hex_bytes(STATE_VALUE_BYTES_MAX) | None
    proof: StateProofDocument


class SignerAuthority(CanonicalModel):
    """The state that authorized a block's transactions, as far as one signer needs it.

    ``parent`` is the header of block ``h − 1``: the certified header ``h`` names it by its
    ``prev_hash``, so it needs no certificate. ``entries`` are proven under its
    ``state_root``: the principal's issuer record (``membership/issuer/<id>``) when the
    principal is not a member, and the signer key's delegations (``membership/signer/<key>``)
    when the signer is not the principal's own key — only what the signer's right needs, in
    that order.
    """

    parent: BlockHeader
    entries: Annotated[
        tuple[ProvenValue, ...], Field(min_length=1, max_length=AUTHORITY_ENTRIES_MAX)
    ]


class LogInclusion(CanonicalModel):
    """A transaction's place in the log of every act, under a consortium checkpoint.

    ``index`` is its leaf in the log, ``inclusion_proof`` leads from it to the root of the
    log's first ``size`` leaves that ``checkpoint`` (a signed note, with its witnesses'
    cosignatures) names; ``member_changes`` are the member-set changes after the receipt's
    block that take effect before the checkpoint, so that the set that signed it is known.
    """

    index: Annotated[StrictInt, Field(ge=0, le=2**63 - 2)]
    inclusion_proof: Annotated[tuple[Hash32, ...], Field(max_length=PROOF_HASHES_MAX)]
    checkpoint: Annotated[StrictStr, Field(min_length=1, max_length=NOTE_BYTES_MAX)]
    member_changes: Annotated[tuple[MemberSetChange, ...], Field(max_length=MEMBER_SET_CHANGES_MAX)]


class Receipt(CanonicalModel):
    """Everything needed to check, offline, that a transaction was committed.

    ``authority`` is present only when the signer's right needs a state proof (see
    :class:`SignerAuthority`); a receipt without one has no ``authority`` field at all — not a
    nil — so that the receipts of acts signed by a member's node key, and every receipt made
    before authorities existed, keep their canonical bytes and their JSON. ``log`` (the act's
    place in the log of every act, under a consortium checkpoint) is absent the same way when
    the node had no checkpoint covering the act.
    """

    format: Literal["sceau-receipt/v1"] = "sceau-receipt/v1"
    chain_id: Hash32
    transaction: hex_bytes(64 * 1024)
    """The canonical bytes of the signed transaction (the Merkle leaf)."""
    height: Height
    position: Annotated[StrictInt, Field(ge=0, le=2**31)]
    inclusion_proof: Annotated[tuple[Hash32, ...], Field(max_length=INCLUSION_PROOF_MAX)]
    header: BlockHeader
    certificate: CommitCertificate
    member_changes: Annotated[tuple[MemberSetChange, ...], Field(max_length=MEMBER_SET_CHANGES_MAX)]
    status: StatusProof | None = None
    authority: SignerAuthority | None = None
    log: LogInclusion | None = None

    @model_serializer(mode="wrap")
    def _no_optional_field_without_one(self, handler: Any) -> Any:
        dumped = handler(self)
        if isinstance(dumped, dict):
            for name in _ABSENT_WHEN_NONE:
                if getattr(self, name) is None:
                    dumped.pop(name, None)
        return dumped

    @classmethod
    def from_canonical(cls, document: Any) -> Self:
        """As :meth:`CanonicalModel.from_canonical`; an absent ``authority`` or ``log`` is None,
        and a nil one is refused (one receipt, one byte form)."""
        if isinstance(document, dict):
            for name in _ABSENT_WHEN_NONE:
                if name not in document:
                    document = {**document, name: None}
                elif document[name] is None:
                    raise ModelDecodeError(
                        f"Receipt.{name}: nil is not canonical (a receipt without one omits it)"
                    )
        return super().from_canonical(document)


_ABSENT_WHEN_NONE = ("authority", "log")
"""The receipt's fields that are left out, not nil, when there is none (older receipts keep
their bytes)."""


class SignerRightKind(enum.Enum):
    """How the key that signed an act was entitled to sign it for the act's principal."""

    MEMBER_NODE_KEY = "member_node_key"
    """The principal is a member and the signer its node key: the member sets prove it."""
    ISSUER_KEY = "issuer_key"
    """The principal is an active issuer and the signer its own key: its record proves it."""
    DELEGATED = "delegated"
    """A key the principal (a member, or an active issuer) delegated the role to."""
    NOT_PROVEN = "not_proven"
    """The principal is a member and the signer another key, but the receipt carries no
    authority (a receipt made before authorities existed): the certifying quorum vouched for
    the delegation, the receipt does not prove it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SignerRight:
    """What a receipt proved about the signer's right to sign its act."""

    principal: str
    """Who the act is issued for (a member's or an issuer's id)."""
    role: str
    kind: SignerRightKind
    height: int
    """The block's height: the right is in force there."""
    proven_at_height: int | None
    """The height of the header whose state proves the right (``height − 1``: the state that
    authorized the block); None for a member's node key (the member sets prove it) and for
    :attr:`SignerRightKind.NOT_PROVEN`."""
    expiry_height: int | None = None
    """For a delegation: its last valid height (None: until revoked)."""


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """What a receipt proved."""

    transaction: Transaction
    height: int
    timestamp_ms: int
    block_hash: bytes
    signers: tuple[str, ...]
    members: int
    act: dict[str, Any] | None
    """The anchor's arguments, for a deeds anchor."""
    document_matches: bool | None
    status: dict[str, Any] | None
    """The act's record under the status header (its ``status``, and for deeds the height of
    its last change, ``status_height``), or None (no status, or no record)."""
    status_height: int | None
    """The height of the certified header the status is proven under ("status as of"), or
    None without a status: not the height of the act's last change, which is in the record."""
    signer_right: SignerRight | None = None
    """How the signer was entitled to sign, for an act issued for a principal (a deeds anchor);
    None for any other transaction."""
    issuer: Issuer | None = None
    """The principal's issuer record in force at ``height`` (name, SIRET, status), when the
    principal is an issuer rather than a member."""
    log_index: int | None = None
    """The act's place in the log of every act, when the receipt carries a ``log``."""
    checkpoint: VerifiedCheckpoint | None = None
    """The consortium checkpoint the act is proven under (its signers, and the witnesses of
    the policy that cosigned it), when the receipt carries a ``log``."""


def verify_receipt(
    receipt: Receipt,
    genesis: Genesis,
    document: bytes | None = None,
    *,
    anchors: Sequence[AnchorLayout],
    witnesses: WitnessPolicy | None = None,
) -> VerifiedReceipt:
    """Check every link of ``receipt`` from ``genesis``; raises :class:`ReceiptError`.

    ``anchors`` are the anchoring actions the caller knows (the contracts' declarations).
    With ``document`` (its bytes), also check that its SHA-256 is the anchored digest. A
    receipt's ``log`` is checked when present (:func:`_verify_log`); with ``witnesses``, it
    must be present and its checkpoint cosigned as the policy demands.
    """
    chain_id = genesis.chain_id
    if receipt.chain_id != chain_id:
        raise ReceiptError("chain", "the receipt is for another consortium than this genesis")
    try:
        transaction = Transaction.from_bytes(receipt.transaction)
    except (encoding.EncodingError, ModelDecodeError) as error:
        raise ReceiptError("transaction", f"does not decode: {error}") from None
    if transaction.chain_id != chain_id:
        raise ReceiptError("transaction", "signed for another consortium")
    if not transaction.signature_is_valid():
        raise ReceiptError("transaction", "the signature does not verify")
    shown = _ShownHeaders(genesis)
    members = _follow_member_sets(genesis.members, 1, receipt.member_changes, receipt.height, shown)
    shown.check(
        receipt.header,
        receipt.certificate,
        members,
        "block",
        transactions=((receipt.position, transaction),),
    )
    if receipt.header.height != receipt.height:
        raise ReceiptError("block", f"the header is of height {receipt.header.height}")
    included = merkle.verify_inclusion(
        receipt.transaction,
        receipt.position,
        receipt.header.tx_count,
        list(receipt.inclusion_proof),
        receipt.header.tx_root,
    )
    if not included:
        raise ReceiptError("inclusion", "the transaction is not in the block's tx_root")
    anchor = _anchor_of(transaction, anchors)
    signer_right, issuer = _verify_signer(receipt, transaction, anchor, members, shown)
    act = dict(transaction.args) if anchor is not None else None
    matches = None
    if document is not None:
        if act is None:
            raise ReceiptError("document", "the transaction anchors no document")
        matches = hashlib.sha256(document).digest() == act.get("digest")
        if not matches:
            raise ReceiptError("document", "its SHA-256 is not the anchored digest")
    status, status_height = _verify_status(receipt, transaction, anchor, members, shown)
    checkpoint = _verify_log(receipt, members, shown, witnesses)
    return VerifiedReceipt(
        transaction=transaction,
        height=receipt.height,
        timestamp_ms=receipt.header.timestamp_ms,
        block_hash=receipt.header.block_hash,
        signers=tuple(member_id for member_id, _ in receipt.certificate.signatures),
        members=len(members),
        act=act,
        document_matches=matches,
        status=status,
        status_height=status_height,
        signer_right=signer_right,
        issuer=issuer,
        log_index=None if receipt.log is None else receipt.log.index,
        checkpoint=checkpoint,
    )


def _verify_log(
    receipt: Receipt,
    members: tuple[Member, ...],
    shown: _ShownHeaders,
    witnesses: WitnessPolicy | None,
) -> VerifiedCheckpoint | None:
    """Check the receipt's place in the log of every act: its index agrees with the certified
    header (format 2: ``log_size − tx_count + position``), the member sets from the block to
    the checkpoint are proven, a quorum of the last one signed the checkpoint (and the witness
    policy is met), and the transaction is leaf ``index`` under the checkpoint's root."""
    log = receipt.log
    if log is None:
        if witnesses is not None:
            raise ReceiptError(
                "witnesses",
                "the receipt carries no checkpoint (no 'log' field), so no witness cosigned "
                "anything it shows: ask a node that keeps checkpoints for a newer receipt",
            )
        return None
    header = receipt.header
    if header.log_size is not None:
        expected = header.log_size - header.tx_count + receipt.position
        if log.index != expected:
            raise ReceiptError(
                "log",
                f"index {log.index} is not the act's place in the log, {expected} (the "
                "certified header's log_size - tx_count + position)",
            )
    try:
        note = Note.parse(log.checkpoint.encode())
        checkpoint = Checkpoint.from_note(note)
    except NoteError as error:
        raise ReceiptError("checkpoint", str(error)) from None
    if log.index >= checkpoint.size:
        raise ReceiptError(
            "log", f"index {log.index} is not in the checkpoint's log of size {checkpoint.size}"
        )
    later = _follow_to_log_size(
        members, receipt.height - 1, log.member_changes, checkpoint.size, shown
    )
    try:
        verified = verify_checkpoint(note, origin_for(receipt.chain_id), later, witnesses)
    except CheckpointError as error:
        raise ReceiptError(error.step, str(error).removeprefix(error.step + ": ")) from None
    if not merkle.verify_inclusion(
        receipt.transaction,
        log.index,
        checkpoint.size,
        list(log.inclusion_proof),
        checkpoint.root,
    ):
        raise ReceiptError(
            "log", f"the transaction is not leaf {log.index} under the checkpoint's root"
        )
    return verified


def _follow_to_log_size(
    members: tuple[Member, ...],
    previous_height: int,
    changes: tuple[MemberSetChange, ...],
    size: int,
    shown: _ShownHeaders,
) -> tuple[Member, ...]:
    """The member set that signs the checkpoint of a log of ``size`` leaves, proven change by
    change from ``members`` (in force after height ``previous_height``).

    A change committed by a block whose log held fewer than ``size`` leaves is in force where
    the log reached ``size``; one at exactly ``size`` may be (blocks without transactions
    keep the size), so it is accepted too; a later one is refused. A format-1 header (no
    ``log_size``) comes before every checkpoint.
    """
    for change in changes:
        height = change.header.height
        if height <= previous_height:
            raise ReceiptError("members", f"member-set changes out of order at height {height}")
        log_size = change.header.log_size
        if log_size is not None and log_size > size:
            raise ReceiptError(
                "members",
                f"the change at height {height} comes after the checkpoint (log size "
                f"{log_size} > {size})",
            )
        members = _apply_change(members, change, shown)
        previous_height = height
    return members


def checkpoint_members(
    genesis: Genesis, changes: tuple[MemberSetChange, ...], size: int
) -> tuple[Member, ...]:
    """The member set that signs a checkpoint of ``size`` leaves, followed from ``genesis``
    through ``changes`` (each header checked as a receipt's); raises :class:`ReceiptError`.
    For ``.tlog-proof`` files (:mod:`ledger.tlogproof`)."""
    shown = _ShownHeaders(genesis, document="proof")
    return _follow_to_log_size(genesis.members, 0, changes, size, shown)


def _apply_change(
    members: tuple[Member, ...], change: MemberSetChange, shown: _ShownHeaders
) -> tuple[Member, ...]:
    """The member set ``change`` commits, its header certified by ``members``."""
    height = change.header.height
    shown.check(change.header, change.certificate, members, f"members at height {height}")
    value = encoding.pack([member.to_canonical() for member in change.members])
    if not verify_state_proof(
        change.header.state_root, MEMBERS_STATE_KEY, value, change.proof.proof()
    ):
        raise ReceiptError("members", f"the member list of height {height} is not proven")
    return change.members


def _follow_member_sets(
    members: tuple[Member, ...],
    from_height: int,
    changes: tuple[MemberSetChange, ...],
    target_height: int,
    shown: _ShownHeaders,
) -> tuple[Member, ...]:
    """The member set in force at ``target_height``, proven change by change.

    A change carried by header ``g`` takes effect at ``g + 1``; changes must come in strictly
    increasing order, from ``from_height`` on, and take effect by ``target_height``.
    """
    previous = from_height - 1
    for change in changes:
        height = change.header.height
        if height <= previous:
            raise ReceiptError("members", f"member-set changes out of order at height {height}")
        if height + 1 > target_height:
            raise ReceiptError("members", f"a change at height {height} comes after the block")
        members = _apply_change(members, change, shown)
        previous = height
    return members


def certified_members(
    genesis: Genesis,
    changes: tuple[MemberSetChange, ...],
    header: BlockHeader,
    certificate: CommitCertificate,
    *,
    step: str = "header",
) -> tuple[Member, ...]:
    """The member set in force at ``header``'s height, followed from ``genesis`` through
    ``changes``, with ``header`` checked as a receipt's (certified by that set, every block
    rule of :func:`ledger.audit.block_rule_failures`); raises :class:`ReceiptError`.

    For proofs that show one certified header and the member-set changes before it (a query
    proof, :mod:`ledger.queryproof`)."""
    shown = _ShownHeaders(genesis, document="proof")
    members = _follow_member_sets(genesis.members, 1, changes, header.height, shown)
    shown.check(header, certificate, members, step)
    return members


class _ShownHeaders:
    """The certified headers a receipt shows, checked in increasing height order.

    Each is held to :func:`ledger.audit.block_rule_failures` — the rules the chain audit
    applies to one block without its parent or re-execution, one definition for both — with
    the time of the highest header already shown below it standing for its parent's (block
    times rise strictly with height on a valid chain; the genesis's ``created_at_ms`` before
    the first). Two different headers of one height are refused: a quorum certified both.
    """

    def __init__(self, genesis: Genesis, *, document: str = "receipt") -> None:
        self.genesis = genesis
        self.document = document
        """What shows the headers, for messages ("receipt", "proof")."""
        self._shown: dict[int, BlockHeader] = {}

    def check(
        self,
        header: BlockHeader,
        certificate: CommitCertificate,
        members: tuple[Member, ...],
        step: str,
        *,
        transactions: tuple[tuple[int, Transaction], ...] = (),
    ) -> None:
        """Raise ReceiptError at ``step`` unless ``header`` (and the ``transactions`` seen in
        it) holds every rule, ``certificate`` certifying it for ``members``; the first failure
        is reported, header fields first."""
        height = header.height
        same = self._shown.get(height)
        if same is not None and same.block_hash != header.block_hash:
            raise ReceiptError(
                step,
                f"header: another certified header of height {height} is in this {self.document} "
                "(a quorum certified two blocks at one height)",
            )
        below = [shown for shown in self._shown.values() if shown.height < height]
        parent = max(below, key=lambda shown: shown.height, default=None)
        found = block_rule_failures(
            header,
            certificate,
            transactions,
            members,
            self.genesis,
            after_ms=self.genesis.created_at_ms if parent is None else parent.timestamp_ms,
            after="the genesis's created_at_ms"
            if parent is None
            else f"the time of block {parent.height} in this {self.document}",
        )
        if found:
            field, detail = found[0]
            if field == "header.members_hash":
                detail += (
                    f" at height {height} (a member-set change is missing from the "
                    f"{self.document}, or the header was altered)"
                )
            raise ReceiptError(step, f"{field}: {detail}")
        self._shown[height] = header

    def at(self, height: int) -> BlockHeader | None:
        """The certified header of ``height`` already shown, if any."""
        return self._shown.get(height)


def _verify_signer(
    receipt: Receipt,
    transaction: Transaction,
    anchor: AnchorLayout | None,
    members: tuple[Member, ...],
    shown: _ShownHeaders,
) -> tuple[SignerRight | None, Issuer | None]:
    """The signer's right to sign the act for its principal at the block's height, and the
    principal's issuer record when it is an issuer; raises :class:`ReceiptError` at step
    ``signer``.

    Mirrors the contracts' authorization (``BlockContext.authorization``) over the state
    after block ``h − 1``: a member's node key; an active issuer's own key; a key that a member
    or an active issuer delegated the role to, not expired at ``h``.
    """
    authority = receipt.authority
    if anchor is None or anchor.principal is None or anchor.role is None:
        if authority is not None:
            raise ReceiptError(
                "signer", "only the receipt of an act issued for a principal carries an authority"
            )
        return None, None
    principal = _principal_of(anchor, transaction)
    height = receipt.height
    right = SignerRight(
        principal=principal,
        role=anchor.role,
        kind=SignerRightKind.MEMBER_NODE_KEY,
        height=height,
        proven_at_height=None,
    )
    member = next((member for member in members if member.id == principal), None)
    if member is not None and member.public_key == transaction.signer:
        if authority is not None:
            raise ReceiptError(
                "signer",
                f"the signer is the node key of member {principal!r}, which the member sets "
                "prove: the receipt carries an authority it does not need",
            )
        return right, None
    if authority is None:
        if member is not None:  # a receipt made before authorities existed
            return dataclasses.replace(right, kind=SignerRightKind.NOT_PROVEN), None
        raise ReceiptError(
            "signer",
            f"{principal!r} is not a member at height {height}, and the receipt does not prove "
            f"that the signer may act for it (no authority: the issuer's record and the signer's "
            f"delegations in the state of block {height - 1} are missing)",
        )
    proven_right = dataclasses.replace(right, proven_at_height=height - 1)
    return _right_from_authority(
        authority, receipt.header, transaction.signer, proven_right, member is not None, shown
    )


def _right_from_authority(
    authority: SignerAuthority,
    header: BlockHeader,
    signer: bytes,
    right: SignerRight,
    principal_is_member: bool,
    shown: _ShownHeaders,
) -> tuple[SignerRight, Issuer | None]:
    """The signer's right as ``authority`` proves it, for the block of ``header``: ``right``
    with its kind (an issuer's own key, a delegation) and its delegation's expiry."""
    principal, height = right.principal, right.height
    issuer_key, signer_key = issuer_state_key(principal), signer_state_key(signer)
    proven = _proven_values(authority, header, (issuer_key, signer_key), shown)
    needed = [signer_key]
    issuer = None
    if not principal_is_member:
        issuer = _active_issuer(proven, issuer_key, principal, height)
        if issuer.public_key == signer:
            _only(proven, [issuer_key])
            return dataclasses.replace(right, kind=SignerRightKind.ISSUER_KEY), issuer
        needed = [issuer_key, signer_key]
    if signer_key not in proven:
        raise ReceiptError(
            "signer",
            f"the signer is not {principal!r}'s own key, and the receipt does not prove its "
            f"delegations (membership/signer/<key> in the state of block {height - 1})",
        )
    expiry_height = _delegated(proven[signer_key], principal, right.role, height)
    _only(proven, needed)
    delegated = dataclasses.replace(
        right, kind=SignerRightKind.DELEGATED, expiry_height=expiry_height
    )
    return delegated, issuer


def _principal_of(anchor: AnchorLayout, transaction: Transaction) -> str:
    """Who the act is issued for, as its layout reads it from the arguments."""
    assert anchor.principal is not None
    try:
        principal = anchor.principal(transaction.args)
    except (KeyError, TypeError, ValueError):
        principal = None
    if not isinstance(principal, str):
        raise ReceiptError("signer", "the act does not name who it is issued for")
    return principal


def _proven_values(
    authority: SignerAuthority,
    header: BlockHeader,
    allowed: tuple[bytes, ...],
    shown: _ShownHeaders,
) -> dict[bytes, bytes | None]:
    """The authority's values by key, each proven under its parent header's ``state_root``,
    that header being the parent of the certified ``header``."""
    parent = authority.parent
    if parent.height != header.height - 1:
        raise ReceiptError(
            "signer",
            f"the authority's header is of height {parent.height}, not the block's parent "
            f"({header.height - 1})",
        )
    if parent.block_hash != header.prev_hash:
        raise ReceiptError(
            "signer", "the authority's header is not the block's parent (its prev_hash)"
        )
    same = shown.at(parent.height)
    if same is not None and same.block_hash != parent.block_hash:
        raise ReceiptError(
            "signer",
            f"another header of height {parent.height} is certified in this receipt "
            "(a quorum certified a block on another parent)",
        )
    proven: dict[bytes, bytes | None] = {}
    for entry in authority.entries:
        if entry.key not in allowed:
            raise ReceiptError(
                "signer",
                f"the authority proves {_describe_key(entry.key)}: neither the principal's "
                "issuer record nor the signer key's delegations",
            )
        if entry.key in proven:
            raise ReceiptError("signer", f"the authority proves {_describe_key(entry.key)} twice")
        if not verify_state_proof(parent.state_root, entry.key, entry.value, entry.proof.proof()):
            raise ReceiptError(
                "signer",
                f"the proof of {_describe_key(entry.key)} does not verify under the state of "
                f"block {parent.height}",
            )
        proven[entry.key] = entry.value
    return proven


def _describe_key(key: bytes) -> str:
    """A state key for messages: text where it is text, the raw key bytes as hex."""
    for prefix in (b"membership/signer/", b"membership/issuer_key/"):
        if key.startswith(prefix):
            return repr(prefix.decode() + key[len(prefix) :].hex())
    return repr(key.decode("utf-8", "backslashreplace"))


def _only(proven: Mapping[bytes, bytes | None], needed: Sequence[bytes]) -> None:
    """Refuse an authority that proves more than the signer's right needs (one receipt, one
    form), or lists what it needs out of order."""
    if list(proven) != list(needed):
        extra = next((key for key in proven if key not in needed), None)
        if extra is not None:
            raise ReceiptError(
                "signer",
                f"the authority proves {_describe_key(extra)}, which this signer's right does "
                "not need",
            )
        raise ReceiptError("signer", "the authority's entries are out of order")


def _active_issuer(
    proven: Mapping[bytes, bytes | None], key: bytes, principal: str, height: int
) -> Issuer:
    """The issuer record proven at ``key``, which must be ``principal``'s and active."""
    if key not in proven:
        raise ReceiptError(
            "signer",
            f"{principal!r} is not a member at height {height}, and the authority does not "
            f"prove its issuer record (membership/issuer/{principal})",
        )
    value = proven[key]
    if value is None:
        raise ReceiptError(
            "signer", f"{principal!r} is neither a member nor an admitted issuer at height {height}"
        )
    try:
        issuer = Issuer.from_canonical(encoding.unpack(value))
    except (encoding.EncodingError, ModelDecodeError) as error:
        raise ReceiptError("signer", f"the issuer record does not decode: {error}") from None
    if issuer.id != principal:
        raise ReceiptError("signer", f"the issuer record is {issuer.id!r}'s, not {principal!r}'s")
    if not issuer.is_active:
        raise ReceiptError(
            "signer",
            f"the issuer {principal!r} is {issuer.status} at height {height} (since height "
            f"{issuer.status_height}): its keys sign nothing",
        )
    return issuer


def _delegated(value: bytes | None, principal: str, role: str, height: int) -> int | None:
    """The expiry height of the delegation of ``role`` from ``principal`` that ``value`` (a
    signer key's delegations, docs/format.md §7.6) holds, valid at ``height``."""
    if value is None:
        raise ReceiptError("signer", f"the signer key holds no delegation at height {height}")
    try:
        delegations = encoding.unpack(value)
    except encoding.EncodingError as error:
        raise ReceiptError("signer", f"the signer's delegations do not decode: {error}") from None
    entry = delegations.get(principal) if isinstance(delegations, dict) else None
    if entry is None:
        raise ReceiptError(
            "signer", f"the signer key holds no delegation from {principal!r} at height {height}"
        )
    roles = entry.get("roles") if isinstance(entry, dict) else None
    expiry_height = entry.get("expiry_height") if isinstance(entry, dict) else None
    if (
        not isinstance(roles, list)
        or not all(isinstance(held, str) for held in roles)
        or not (expiry_height is None or type(expiry_height) is int)
    ):
        raise ReceiptError("signer", f"the signer's delegation from {principal!r} does not decode")
    if role not in roles:
        raise ReceiptError(
            "signer", f"the signer key may not {role} for {principal!r} (it holds {roles})"
        )
    if expiry_height is not None and height > expiry_height:
        raise ReceiptError(
            "signer",
            f"the signer's delegation from {principal!r} expired at height {expiry_height}, "
            f"before the block's height {height}",
        )
    return expiry_height


def _verify_status(
    receipt: Receipt,
    transaction: Transaction,
    anchor: AnchorLayout | None,
    members: tuple[Member, ...],
    shown: _ShownHeaders,
) -> tuple[dict[str, Any] | None, int | None]:
    status = receipt.status
    if status is None:
        return None, None
    if status.header.height < receipt.height:
        raise ReceiptError("status", "the status is certified before the act's block")
    later = _follow_member_sets(
        members, receipt.height, status.member_changes, status.header.height, shown
    )
    shown.check(status.header, status.certificate, later, "status")
    if anchor is None:
        raise ReceiptError("status", "only the receipt of an anchored act carries a status")
    if status.key != anchor.record_key(transaction.args):
        raise ReceiptError("status", "the proven key is not this act's record")
    if not verify_state_proof(
        status.header.state_root, status.key, status.value, status.proof.proof()
    ):
        raise ReceiptError("status", "the state proof does not verify")
    record = None
    if status.value is not None:
        try:
            record = encoding.unpack(status.value)
        except encoding.EncodingError as error:
            raise ReceiptError("status", f"the record does not decode: {error}") from None
    return record, status.header.height


# --- building receipts from a node's store ----------------------------------------------------


def build_receipt(
    store: Any, tx_id: bytes, *, anchors: Sequence[AnchorLayout] = (), with_status: bool = True
) -> Receipt | None:
    """The receipt of a committed transaction from a :class:`~ledger.store.ChainStore`.

    ``anchors`` are the contracts' declarations (:func:`contracts.registry.receipt_anchors`):
    the receipt of an act one of them issues for a principal proves the signer's right when
    the member sets do not (:class:`SignerAuthority`), and with ``with_status`` the receipt
    of an anchor also proves the anchored record at the tip. Without ``anchors``, no receipt
    carries either. Returns None if ``tx_id`` is not in the chain.
    """
    location = store.transaction_location(tx_id)
    if location is None:
        return None
    height, position = location
    return receipt_from_block(
        store,
        store.block(height),
        store.certificate(height),
        position,
        anchors=anchors,
        with_status=with_status,
    )


def receipt_from_block(
    store: Any,
    block: Block,
    certificate: CommitCertificate,
    position: int,
    *,
    anchors: Sequence[AnchorLayout] = (),
    with_status: bool = True,
) -> Receipt:
    """The receipt of transaction ``position`` of a committed ``block`` already read: with
    the signer's authority if it is an act one of ``anchors`` issues for a principal and the
    member sets do not prove the signer's right, and (``with_status``) the status of its
    record at the tip if it is an anchor of one of ``anchors``."""
    height = block.height
    transaction = block.transactions[position]
    changes = [
        member_set_change(store, change - 1)
        for change in store.member_set_changes(height)
        if change >= 2
    ]
    status = None
    anchor = _anchor_of(transaction, anchors)
    if anchor is not None and with_status and store.height >= height:
        status = _status_proof(store, anchor.record_key(transaction.args), height)
    authority = None
    if anchor is not None and anchor.principal is not None:
        authority = signer_authority(store, block.header, transaction, anchor.principal)
    log = log_inclusion(store, height, position)
    return Receipt(
        chain_id=store.chain_id,
        transaction=transaction.encoded,
        height=height,
        position=position,
        inclusion_proof=tuple(merkle.inclusion_proof(block.transaction_leaves(), position)),
        header=block.header,
        certificate=certificate,
        member_changes=tuple(changes),
        status=status,
        authority=authority,
        log=log,
    )


def log_index(store: Any, height: int, position: int) -> int:
    """The log index of transaction ``position`` of committed block ``height``: from a format 2
    header, ``log_size − tx_count + position``; before, found in the store's log index."""
    header = store.block(height).header
    if header.log_size is not None:
        return int(header.log_size - header.tx_count + position)
    low, high = 0, store.log_size  # the first entry of a block at or above ``height``
    while low < high:
        middle = (low + high) // 2
        if store.log_entry_location(middle)[0] < height:
            low = middle + 1
        else:
            high = middle
    return low + position


def log_inclusion(store: Any, height: int, position: int) -> LogInclusion | None:
    """The place of transaction ``position`` of block ``height`` under the store's kept
    consortium checkpoint, or None if there is none or it does not cover the transaction."""
    note_bytes = store.checkpoint()
    if note_bytes is None:
        return None
    checkpoint = Checkpoint.from_note(Note.parse(note_bytes))
    index = log_index(store, height, position)
    if index >= checkpoint.size:
        return None
    return LogInclusion(
        index=index,
        inclusion_proof=tuple(tlog.inclusion_proof(index, checkpoint.size, store.log_hash)),
        checkpoint=note_bytes.decode(),
        member_changes=changes_before_log_size(store, height, checkpoint.size),
    )


def changes_before_log_size(
    store: Any, first_height: int, size: int
) -> tuple[MemberSetChange, ...]:
    """The member-set changes committed by blocks from ``first_height`` on whose log held
    fewer than ``size`` leaves: those in force where the log first reached ``size``."""
    changes = []
    for change in store.member_set_changes():
        committed_by = change - 1
        if committed_by < max(first_height, 1):
            continue
        log_size = store.block(committed_by).header.log_size
        if log_size is None or log_size < size:
            changes.append(member_set_change(store, committed_by))
    return tuple(changes)


def signer_authority(
    store: Any,
    header: BlockHeader,
    transaction: Transaction,
    principal_of: Callable[[Mapping[str, Any]], str],
) -> SignerAuthority | None:
    """What proves that ``transaction``'s signer may act for its principal in block
    ``header``: None when the member sets prove it (a member's node key) or when nothing in
    the state could (block 1: no issuer nor delegation exists before it); otherwise the
    parent header and, under its state root, the principal's issuer record (if it is not a
    member) and the signer key's delegations (unless it is the issuer's own, active key).

    It shows the state as it is, whether or not it authorizes the signer: a block that a
    quorum certified against the rules gets a receipt that fails to verify, naming why.
    """
    height = header.height
    if height < 2:
        return None
    parent = store.block(height - 1).header
    assert parent.block_hash == header.prev_hash, f"block {height} is not on the store's chain"
    root = parent.state_root
    listed = store.state_get_at(MEMBERS_STATE_KEY, root)
    assert listed is not None, f"no member set under the state root of height {height - 1}"
    members = [Member.from_canonical(entry) for entry in encoding.unpack(listed)]
    principal = principal_of(transaction.args)
    member = next((member for member in members if member.id == principal), None)
    if member is not None and member.public_key == transaction.signer:
        return None
    keys = []
    if member is None:
        issuer_key = issuer_state_key(principal)
        keys.append(issuer_key)
        record = store.state_get_at(issuer_key, root)
        issuer = None if record is None else Issuer.from_canonical(encoding.unpack(record))
        signs_itself = (
            issuer is not None and issuer.is_active and issuer.public_key == transaction.signer
        )
        if not signs_itself:
            keys.append(signer_state_key(transaction.signer))
    else:
        keys.append(signer_state_key(transaction.signer))
    return SignerAuthority(
        parent=parent,
        entries=tuple(
            ProvenValue(
                key=key,
                value=store.state_get_at(key, root),
                proof=StateProofDocument.of(store.state_prove(key, root)),
            )
            for key in keys
        ),
    )


def member_set_change(store: Any, height: int) -> MemberSetChange:
    """Block ``height`` committed a new member set: its header, certificate and proof (as a
    receipt, a status and a query proof carry it)."""
    header = store.block(height).header
    value = store.state_get_at(MEMBERS_STATE_KEY, header.state_root)
    assert value is not None, f"no member set under the state root of height {height}"
    return MemberSetChange(
        header=header,
        certificate=store.certificate(height),
        members=tuple(Member.from_canonical(entry) for entry in encoding.unpack(value)),
        proof=StateProofDocument.of(store.state_prove(MEMBERS_STATE_KEY, header.state_root)),
    )


def _status_proof(store: Any, key: bytes, height: int) -> StatusProof:
    tip_height = store.height
    header = store.block(tip_height).header
    return StatusProof(
        header=header,
        certificate=store.certificate(tip_height),
        member_changes=tuple(
            member_set_change(store, change - 1)
            for change in store.member_set_changes(tip_height)
            if change - 1 >= height
        ),
        key=key,
        value=store.state_get_at(key, header.state_root),
        proof=StateProofDocument.of(store.state_prove(key, header.state_root)),
    )
