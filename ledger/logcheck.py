"""Checking a consortium checkpoint: the members' quorum, then an optional witness policy.

Theory of operation
-------------------
A consortium checkpoint (docs/format.md, "Checkpoints") is a C2SP checkpoint note of the log of
every act, whose origin is ``sceau/<chain_id hex>``, signed by a quorum of the member set in
force with their member keys (note signatures of type 0x01, all named after the origin), and
maybe cosigned by witnesses (``cosignature/v1``, type 0x04, each named as its operator chose).

The members' signatures say what the consortium committed; they cannot show that the
consortium told everyone the same thing. A witness cosigns a checkpoint only if it is
consistent with every checkpoint of that log the witness cosigned before, so a verifier that
asks for the cosignatures of witnesses it trusts (a :class:`WitnessPolicy`: named keys and how
many of them must have cosigned) knows that this history is the one those witnesses saw: a
quorum of members that showed two histories would be caught by any witness shown both.

:func:`verify_checkpoint` is used by ``.tlog-proof`` files (:mod:`ledger.tlogproof`) and by the
``log`` field of receipts (:mod:`ledger.receipt`). It is pure, and every failure is a
:class:`CheckpointError` whose ``step`` names the check: ``checkpoint`` (not a checkpoint of
this log), ``quorum`` (too few members signed), ``witnesses`` (the policy is not met).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ledger.model import Member, quorum_size
from ledger.note import Checkpoint, KeyType, Note, NoteError, NoteVerifierKey, verify_note

__all__ = [
    "WITNESSES_MAX",
    "CheckpointError",
    "VerifiedCheckpoint",
    "WitnessPolicy",
    "verify_checkpoint",
]

WITNESSES_MAX = 32
"""The most witnesses a policy names (a note carries at most 64 signatures in all)."""


class CheckpointError(ValueError):
    """A checkpoint that does not prove what it must; ``step`` names the failed check."""

    def __init__(self, step: str, message: str) -> None:
        super().__init__(f"{step}: {message}")
        self.step = step


@dataclass(frozen=True, slots=True)
class WitnessPolicy:
    """Witnesses a verifier trusts, by label, and how many must have cosigned a checkpoint.

    ``witnesses`` pairs a label (what messages call the witness) with its cosignature key
    (type 0x04). Cosignatures of other keys are ignored: anyone may add a signature line.
    """

    witnesses: tuple[tuple[str, NoteVerifierKey], ...]
    quorum: int

    def __post_init__(self) -> None:
        if not 1 <= len(self.witnesses) <= WITNESSES_MAX:
            raise ValueError(f"a witness policy names 1 to {WITNESSES_MAX} witnesses")
        labels = [label for label, _ in self.witnesses]
        if len(set(labels)) != len(labels):
            raise ValueError("a witness policy names each witness once")
        keys = {(key.name, key.key_id) for _, key in self.witnesses}
        if len(keys) != len(self.witnesses):
            raise ValueError("two witnesses of the policy have the same key name and id")
        for label, key in self.witnesses:
            if key.key_type is not KeyType.COSIGNATURE_V1:
                raise ValueError(f"witness {label}: its key is not a cosignature/v1 key (0x04)")
        if type(self.quorum) is not int or not 1 <= self.quorum <= len(self.witnesses):
            raise ValueError(
                f"the witness quorum is between 1 and the {len(self.witnesses)} witnesses named"
            )

    @classmethod
    def parse(cls, specifications: Sequence[str], quorum: int | None) -> WitnessPolicy:
        """A policy from ``NAME=VKEY`` texts (VKEY: the witness's verifier-key text) and the
        quorum (None: all of them). Raises ValueError with a sentence if one is malformed."""
        witnesses = []
        for specification in specifications:
            label, separator, vkey = specification.partition("=")
            if not separator or not label or len(label) > 64 or not label.isprintable():
                raise ValueError(f"{specification[:80]!r}: expected NAME=VKEY")
            try:
                key = NoteVerifierKey.parse_vkey(vkey)
            except NoteError as error:
                raise ValueError(f"witness {label}: {error}") from None
            witnesses.append((label, key))
        return cls(tuple(witnesses), len(witnesses) if quorum is None else quorum)


@dataclass(frozen=True, slots=True)
class VerifiedCheckpoint:
    """What a checkpoint proved."""

    checkpoint: Checkpoint
    signers: tuple[str, ...]
    """The members whose signature verified, in note order."""
    members: int
    """The size of the member set that had to sign."""
    witnesses: tuple[str, ...]
    """The policy's witnesses whose cosignature verified (empty without a policy)."""


def member_note_keys(origin: str, members: Sequence[Member]) -> dict[NoteVerifierKey, str]:
    """The note keys of ``members`` for the log ``origin``, with the member each one is."""
    return {
        NoteVerifierKey(origin, KeyType.ED25519, member.public_key): member.id for member in members
    }


def verify_checkpoint(
    note: Note, origin: str, members: Sequence[Member], policy: WitnessPolicy | None = None
) -> VerifiedCheckpoint:
    """Check that ``note`` is a checkpoint of the log ``origin`` signed by a quorum of
    ``members`` and, with ``policy``, cosigned by at least ``policy.quorum`` of its witnesses.
    Raises :class:`CheckpointError`."""
    try:
        checkpoint = Checkpoint.from_note(note)
    except NoteError as error:
        raise CheckpointError("checkpoint", str(error)) from None
    if checkpoint.origin != origin:
        raise CheckpointError(
            "checkpoint", f"its origin is {checkpoint.origin[:80]!r}, not this log's {origin!r}"
        )
    keys = member_note_keys(origin, members)
    try:
        verified = verify_note(note, tuple(keys))
    except NoteError as error:
        raise CheckpointError("quorum", f"the members' signatures: {error}") from None
    signers = tuple(keys[key] for key in verified)
    needed = quorum_size(len(members))
    if len(signers) < needed:
        raise CheckpointError(
            "quorum",
            f"{len(signers)} of the {len(members)} members signed it ({', '.join(signers)}); "
            f"a checkpoint needs {needed}",
        )
    witnesses = () if policy is None else _witnesses_met(note, policy)
    return VerifiedCheckpoint(
        checkpoint=checkpoint, signers=signers, members=len(members), witnesses=witnesses
    )


def _witnesses_met(note: Note, policy: WitnessPolicy) -> tuple[str, ...]:
    """The policy's witnesses that cosigned ``note``; CheckpointError below its quorum."""
    labels = {key: label for label, key in policy.witnesses}
    known = {(key.name, key.key_id) for key in labels}
    if any((signature.name, signature.key_id) in known for signature in note.signatures):
        try:
            cosigned = tuple(labels[key] for key in verify_note(note, tuple(labels)))
        except NoteError as error:
            raise CheckpointError("witnesses", f"a cosignature: {error}") from None
    else:
        cosigned = ()
    if len(cosigned) < policy.quorum:
        named = ", ".join(label for label, _ in policy.witnesses)
        raise CheckpointError(
            "witnesses",
            f"{len(cosigned)} of the witnesses {named} cosigned this checkpoint"
            f"{' (' + ', '.join(cosigned) + ')' if cosigned else ''}; "
            f"the policy needs {policy.quorum}",
        )
    return cosigned
