"""``.tlog-proof`` files of sceau: one act's inclusion in the log of every act, checkable offline.

Theory of operation
-------------------
A C2SP tlog-proof (c2sp.org/tlog-proof, :class:`ledger.note.TlogProof`) holds an entry's index,
its inclusion proof, and the checkpoint note the proof leads to, with its signatures and the
witnesses' cosignatures. It does not hold the entry itself, nor what a verifier needs to know
which keys may sign the checkpoint; sceau puts both in the proof's *extra data*, a canonical
msgpack map (:class:`ProofExtra`, docs/format.md "tlog-proof files"):

* ``entry``: the log entry, i.e. the transaction's canonical bytes (``Transaction.encoded``);
* ``member_changes``: the member-set changes, as receipts carry them
  (:class:`ledger.receipt.MemberSetChange`), that take a verifier holding only the genesis from
  the genesis members to the set that signed the checkpoint.

:func:`verify_tlog_proof` checks, from the genesis alone: the origin is the consortium's
(``sceau/<chain_id hex>``); the transaction decodes, is for this chain and its signature
verifies; the member sets follow from the genesis through the changes; a quorum of the last set
signed the checkpoint; the entry is leaf ``index`` under the checkpoint's root; with a document,
the act anchors its SHA-256; with a :class:`~ledger.logcheck.WitnessPolicy`, enough of the
named witnesses cosigned the checkpoint. Each failure is a :class:`TlogProofError` whose
``step`` names the check. Everything here is pure (no file, clock or socket), so the same code
can check a proof wherever Python runs.

What a proof cannot show: that no member-set change was left out. A quorum of an old member set
(members removed since, colluding) could sign a checkpoint of a forged history; a witness policy
closes that gap for the history the witnesses saw, and ``sceau audit`` for a whole chain.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import Field

from ledger import encoding, merkle, tlog
from ledger.logcheck import CheckpointError, VerifiedCheckpoint, WitnessPolicy, verify_checkpoint
from ledger.model import (
    TRANSACTION_BYTES_MAX,
    CanonicalModel,
    Genesis,
    ModelDecodeError,
    Transaction,
    hex_bytes,
)
from ledger.note import (
    TLOG_PROOF_EXTRA_BYTES_MAX,
    Checkpoint,
    Note,
    NoteError,
    TlogProof,
    origin_for,
)
from ledger.receipt import (
    MEMBER_SET_CHANGES_MAX,
    AnchorLayout,
    MemberSetChange,
    ReceiptError,
    changes_before_log_size,
    checkpoint_members,
)

__all__ = [
    "EXTRA_FORMAT",
    "ProofExtra",
    "TlogProofError",
    "VerifiedTlogProof",
    "build_tlog_proof",
    "proof_from_parts",
    "verify_tlog_proof",
]

EXTRA_FORMAT = "sceau-tlog-proof-extra/v1"
EXTRA_LIMITS = encoding.DecodeLimits(
    total_bytes_max=TLOG_PROOF_EXTRA_BYTES_MAX,
    depth_max=16,
    str_bytes_max=TLOG_PROOF_EXTRA_BYTES_MAX,
    bin_bytes_max=TLOG_PROOF_EXTRA_BYTES_MAX,
    array_length_max=4096,
    map_length_max=64,
)
"""The extra data is decoded within the tlog-proof's own bound on it."""


class TlogProofError(ValueError):
    """A tlog-proof that does not prove what it claims; ``step`` names the failed check."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


class ProofExtra(CanonicalModel):
    """The extra data of a sceau tlog-proof (see the module doc)."""

    format: Literal["sceau-tlog-proof-extra/v1"] = EXTRA_FORMAT
    entry: hex_bytes(TRANSACTION_BYTES_MAX)
    """The log entry: the transaction's canonical bytes."""
    member_changes: Annotated[tuple[MemberSetChange, ...], Field(max_length=MEMBER_SET_CHANGES_MAX)]
    """From the genesis members to the set that signed the checkpoint."""

    @classmethod
    def decode(cls, data: bytes) -> ProofExtra:
        """The extra data from its canonical bytes; TlogProofError("extra") if it is not."""
        try:
            return cls.from_canonical(encoding.unpack(data, EXTRA_LIMITS))
        except (encoding.EncodingError, ModelDecodeError) as error:
            raise TlogProofError("extra", f"not sceau's extra data: {error}") from None


@dataclass(frozen=True, slots=True)
class VerifiedTlogProof:
    """What a tlog-proof proved."""

    transaction: Transaction
    index: int
    checkpoint: VerifiedCheckpoint
    act: dict[str, Any] | None
    """The anchor's arguments, for an act one of the given anchors makes."""
    document_matches: bool | None


def proof_from_parts(
    entry: bytes,
    index: int,
    proof: Sequence[bytes],
    note: bytes,
    member_changes: Sequence[MemberSetChange] = (),
) -> TlogProof:
    """A tlog-proof from its parts (as a node or a tile mirror gives them); NoteError if
    they do not make one (the note does not parse, the index is not in its tree)."""
    extra = ProofExtra(entry=entry, member_changes=tuple(member_changes)).to_bytes()
    return TlogProof(extra, index, tuple(proof), Note.parse(note))


def build_tlog_proof(store: Any, index: int, note: bytes) -> TlogProof:
    """The tlog-proof of log entry ``index`` under the checkpoint ``note`` (a consortium
    checkpoint the store's log has reached), from a :class:`~ledger.store.ChainStore`."""
    checkpoint = Checkpoint.from_note(Note.parse(note))
    assert index < checkpoint.size <= store.log_size, "a checkpoint of this store's log"
    (entry,) = store.log_entries(index, 1)
    return proof_from_parts(
        entry,
        index,
        tlog.inclusion_proof(index, checkpoint.size, store.log_hash),
        note,
        changes_before_log_size(store, 1, checkpoint.size),
    )


def verify_tlog_proof(
    data: bytes,
    genesis: Genesis,
    document: bytes | None = None,
    *,
    anchors: Sequence[AnchorLayout] = (),
    witnesses: WitnessPolicy | None = None,
) -> VerifiedTlogProof:
    """Check a ``.tlog-proof`` file's bytes from ``genesis`` (see the module doc); raises
    :class:`TlogProofError`. With ``document``, the act (an anchor of one of ``anchors``)
    must anchor its SHA-256; with ``witnesses``, the checkpoint must meet the policy."""
    try:
        proof = TlogProof.parse(data)
        checkpoint = Checkpoint.from_note(proof.checkpoint)
    except NoteError as error:
        raise TlogProofError("format", str(error)) from None
    if proof.extra is None:
        raise TlogProofError("extra", "the proof carries no extra data: no entry to check")
    extra = ProofExtra.decode(proof.extra)
    transaction = _transaction(extra.entry, genesis.chain_id)
    try:
        members = checkpoint_members(genesis, extra.member_changes, checkpoint.size)
    except ReceiptError as error:
        raise TlogProofError(error.step, str(error).removeprefix(error.step + ": ")) from None
    try:
        verified = verify_checkpoint(
            proof.checkpoint, origin_for(genesis.chain_id), members, witnesses
        )
    except CheckpointError as error:
        raise TlogProofError(error.step, str(error).removeprefix(error.step + ": ")) from None
    if not merkle.verify_inclusion(
        extra.entry, proof.index, checkpoint.size, list(proof.proof), checkpoint.root
    ):
        raise TlogProofError(
            "inclusion",
            f"the entry is not leaf {proof.index} of the checkpoint's log of size "
            f"{checkpoint.size}",
        )
    act = None
    if any(anchor.anchors(transaction) for anchor in anchors):
        act = dict(transaction.args)
    matches = None
    if document is not None:
        if act is None:
            raise TlogProofError("document", "the transaction anchors no document")
        matches = hashlib.sha256(document).digest() == act.get("digest")
        if not matches:
            raise TlogProofError("document", "its SHA-256 is not the anchored digest")
    return VerifiedTlogProof(
        transaction=transaction,
        index=proof.index,
        checkpoint=verified,
        act=act,
        document_matches=matches,
    )


def _transaction(entry: bytes, chain_id: bytes) -> Transaction:
    """The entry as a signed transaction of ``chain_id``; TlogProofError("transaction")."""
    try:
        transaction = Transaction.from_bytes(entry)
    except (encoding.EncodingError, ModelDecodeError) as error:
        raise TlogProofError("transaction", f"the entry does not decode: {error}") from None
    if transaction.chain_id != chain_id:
        raise TlogProofError("transaction", "signed for another consortium than this genesis")
    if not transaction.signature_is_valid():
        raise TlogProofError("transaction", "the signature does not verify")
    return transaction
