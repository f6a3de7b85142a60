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
4. **Optionally, the act's status** at a later certified height: a header and certificate (with
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
:func:`contracts.registry.receipt_anchors`). The member-set key, in contrast, is part of the
chain format (docs/format.md §7.8): :data:`ledger.namespace.MEMBERS_STATE_KEY`.

The trust a receipt gives is the trust in its member sets: a quorum of members of an *earlier*
set (members removed since, colluding) could certify a forged history that omits their
removal. Auditors who follow the whole chain (``sceau audit``) or compare receipts with a
recent certified header close that gap; see docs/audit.md.

A receipt has a JSON form (readable, stable; bytes as lowercase hex, keys as ``ed25519:``) and
a compact canonical msgpack form (``to_bytes``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, model_validator

from ledger import encoding, merkle
from ledger.audit import block_rule_failures
from ledger.model import (
    MEMBERS_MAX,
    Block,
    BlockHeader,
    CanonicalModel,
    CommitCertificate,
    Genesis,
    Hash32,
    Height,
    Member,
    ModelDecodeError,
    Transaction,
    hex_bytes,
)
from ledger.namespace import MEMBERS_STATE_KEY
from ledger.state import StateProof, verify_state_proof

__all__ = [
    "MEMBERS_STATE_KEY",
    "AnchorLayout",
    "MemberSetChange",
    "Receipt",
    "ReceiptError",
    "StatusProof",
    "VerifiedReceipt",
    "certified_members",
    "member_set_change",
    "verify_receipt",
]

MEMBER_SET_CHANGES_MAX = 4096
INCLUSION_PROOF_MAX = 64


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


class Receipt(CanonicalModel):
    """Everything needed to check, offline, that a transaction was committed."""

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


def verify_receipt(
    receipt: Receipt,
    genesis: Genesis,
    document: bytes | None = None,
    *,
    anchors: Sequence[AnchorLayout],
) -> VerifiedReceipt:
    """Check every link of ``receipt`` from ``genesis``; raises :class:`ReceiptError`.

    ``anchors`` are the anchoring actions the caller knows (the contracts' declarations).
    With ``document`` (its bytes), also check that its SHA-256 is the anchored digest.
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
    act = dict(transaction.args) if anchor is not None else None
    matches = None
    if document is not None:
        if act is None:
            raise ReceiptError("document", "the transaction anchors no document")
        matches = hashlib.sha256(document).digest() == act.get("digest")
        if not matches:
            raise ReceiptError("document", "its SHA-256 is not the anchored digest")
    status, status_height = _verify_status(receipt, transaction, anchor, members, shown)
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
    )


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
        shown.check(change.header, change.certificate, members, f"members at height {height}")
        value = encoding.pack([member.to_canonical() for member in change.members])
        if not verify_state_proof(
            change.header.state_root, MEMBERS_STATE_KEY, value, change.proof.proof()
        ):
            raise ReceiptError("members", f"the member list of height {height} is not proven")
        members = change.members
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
    store: Any, tx_id: bytes, *, anchors: Sequence[AnchorLayout] = ()
) -> Receipt | None:
    """The receipt of a committed transaction from a :class:`~ledger.store.ChainStore`.

    The receipt of an anchor of one of ``anchors`` (the contracts' declarations) also proves
    the anchored record at the tip; without ``anchors``, no receipt carries a status.
    Returns None if ``tx_id`` is not in the chain.
    """
    location = store.transaction_location(tx_id)
    if location is None:
        return None
    height, position = location
    return receipt_from_block(
        store, store.block(height), store.certificate(height), position, anchors=anchors
    )


def receipt_from_block(
    store: Any,
    block: Block,
    certificate: CommitCertificate,
    position: int,
    *,
    anchors: Sequence[AnchorLayout] = (),
) -> Receipt:
    """The receipt of transaction ``position`` of a committed ``block`` already read (with
    the status of its record at the tip if it is an anchor of one of ``anchors``)."""
    height = block.height
    transaction = block.transactions[position]
    changes = [
        member_set_change(store, change - 1)
        for change in store.member_set_changes(height)
        if change >= 2
    ]
    status = None
    anchor = _anchor_of(transaction, anchors)
    if anchor is not None and store.height >= height:
        status = _status_proof(store, anchor.record_key(transaction.args), height)
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
