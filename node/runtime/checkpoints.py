"""Consortium checkpoints: the members sign the log's checkpoints, gather a quorum, keep them.

Theory of operation
-------------------
A format-2 block header commits to the log of every act (``log_size``, ``log_root``). When a
member commits such a block it signs the C2SP checkpoint text of that header::

    sceau/<chain_id in hex>        the origin (ledger.note.origin_for)
    <log_size>
    <base64 log_root>

as a signed note, with its member key and the origin as key name (the key id tells the members
apart), and sends its signature to the other members in a ``checkpoint_signature`` frame
(node/runtime/wire.py). A :class:`Gatherer` collects the signatures of each committed height:
the sender must be in the member set in force after that block (the set that certifies the
next one), the frame's ``(log_size, log_root)`` must be this node's own committed header's, and
the signature must verify. Once ``quorum_size(n)`` members of that set signed a size larger
than the kept checkpoint's, the note is built (signatures sorted by key id) and kept in the
store: the consortium checkpoint, served at ``GET /v1/log/checkpoint``.

Every member signs every format-2 block it commits, so that honest members sign the same
sizes and a quorum forms at each height; only a block committed more than
:data:`SIGN_AGE_MAX_MS` after its header's time (a node catching up: the others formed that
quorum long ago) is not signed. Signatures for heights this node has not committed
yet are held (at most :attr:`CheckpointLimits.heights_ahead_max` heights ahead, one per
member and height) and checked when it commits them; those for heights further back than
:attr:`CheckpointLimits.recent_heights_max` or not above the kept checkpoint are dropped. Every
refusal is counted by :class:`Refusal`; none raises out of the daemon or logs a line per frame.

Witnesses (node/runtime/witnesses.py) add their cosignatures to the kept note, through
:meth:`CheckpointService.add_cosignatures`, as long as it is still the latest checkpoint.
"""

from __future__ import annotations

import collections
import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ledger import crypto, tlog
from ledger.model import Member, quorum_size
from ledger.note import (
    Checkpoint,
    KeyType,
    Note,
    NoteError,
    NoteSignature,
    NoteVerifierKey,
    origin_for,
    sign_note,
    verify_note,
)
from ledger.store import ChainStore

__all__ = [
    "CheckpointLimits",
    "CheckpointService",
    "CommittedLog",
    "Gatherer",
    "KeptCheckpoint",
    "Refusal",
    "SignatureRefused",
    "member_keys",
    "verify_consortium_note",
]


SIGN_AGE_MAX_MS = 60_000
"""A member does not sign the checkpoint of a block committed this long after its header's
time: it is catching up, and thousands of signatures nobody needs any more would only fill its
peers' budgets."""


class Refusal(enum.StrEnum):
    """Why a member's checkpoint signature was dropped (the metrics' ``reason`` label)."""

    NOT_A_MEMBER = "not_a_member"
    """The sender is not in the member set in force at that height."""
    WRONG_LOG = "wrong_log"
    """Its (log_size, log_root) is not what this node's committed header at that height says."""
    BAD_SIGNATURE = "bad_signature"
    """The signature does not verify with the sender's member key."""
    DUPLICATE = "duplicate"
    """The sender's signature for that height is already held."""
    STALE = "stale"
    """Not above the kept checkpoint, or a height too far back (or of a format-1 block)."""
    TOO_FAR_AHEAD = "too_far_ahead"
    """More than ``heights_ahead_max`` heights above this node's tip."""


class SignatureRefused(Exception):
    """A checkpoint signature dropped, for ``reason``."""

    def __init__(self, reason: Refusal, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointLimits:
    """What gathering checkpoint signatures may hold in memory."""

    heights_ahead_max: int = 64
    """Heights above the tip whose signatures are held until this node commits them."""
    recent_heights_max: int = 64
    """Committed heights whose checkpoint still accepts signatures (late members)."""

    def __post_init__(self) -> None:
        assert self.heights_ahead_max >= 1 and self.recent_heights_max >= 1


def member_keys(origin: str, members: Iterable[Member]) -> dict[str, NoteVerifierKey]:
    """Each member's note verifier key: its member key, named after the origin."""
    return {
        member.id: NoteVerifierKey(origin, KeyType.ED25519, member.public_key) for member in members
    }


@dataclass(frozen=True, slots=True)
class CommittedLog:
    """A committed format-2 block's checkpoint and who may sign it."""

    height: int
    checkpoint: Checkpoint
    keys: Mapping[str, NoteVerifierKey]
    """Member id → note key: the member set in force after the block."""

    @property
    def quorum(self) -> int:
        return quorum_size(len(self.keys))


@dataclass(frozen=True, slots=True)
class KeptCheckpoint:
    """The latest consortium checkpoint: its note (member signatures, then witnesses')."""

    note: Note
    checkpoint: Checkpoint
    height: int | None
    """The height whose header it is (None if unknown: size 0 read back from the store)."""
    signers: tuple[str, ...]
    """The members whose signatures it carries, sorted."""
    member_signatures: int
    """The first ``member_signatures`` signatures of the note are the members'."""

    @property
    def cosignatures(self) -> tuple[NoteSignature, ...]:
        return self.note.signatures[self.member_signatures :]

    def with_cosignatures(self, cosignatures: Iterable[NoteSignature]) -> KeptCheckpoint:
        """This checkpoint with ``cosignatures`` replacing those of the same key."""
        kept = {(s.name, s.key_id): s for s in self.cosignatures}
        for signature in cosignatures:
            kept[(signature.name, signature.key_id)] = signature
        members = self.note.signatures[: self.member_signatures]
        ordered = tuple(kept[key] for key in sorted(kept))
        return KeptCheckpoint(
            Note(self.note.text, members + ordered),
            self.checkpoint,
            self.height,
            self.signers,
            self.member_signatures,
        )


def verify_consortium_note(
    note: Note,
    origin: str,
    keys: Mapping[str, NoteVerifierKey],
    witnesses: Sequence[NoteVerifierKey] = (),
) -> tuple[Checkpoint, tuple[str, ...], tuple[NoteSignature, ...], tuple[NoteSignature, ...]]:
    """Check that ``note`` is a checkpoint of ``origin`` signed by a quorum of ``keys``.

    Returns the checkpoint, the signing member ids (sorted), the members' signatures (sorted
    by key id) and the cosignatures of ``witnesses`` that verify; every other signature is
    left out. Raises NoteError.
    """
    checkpoint = Checkpoint.from_note(note)
    if checkpoint.origin != origin:
        raise NoteError(f"the checkpoint is of {checkpoint.origin[:80]!r}, not {origin!r}")
    by_key = {(key.name, key.key_id): member for member, key in keys.items()}
    signed = {key for key in verify_note(note, list(keys.values()))}
    signers = sorted(by_key[(key.name, key.key_id)] for key in signed)
    if len(signers) < quorum_size(len(keys)):
        raise NoteError(
            f"{len(signers)} member signature(s), {quorum_size(len(keys))} needed (the quorum)"
        )
    members: dict[int, NoteSignature] = {}
    cosignatures: dict[tuple[str, int], NoteSignature] = {}
    known = {(key.name, key.key_id): key for key in witnesses}
    for signature in note.signatures:
        identity = (signature.name, signature.key_id)
        if identity in by_key:
            members[signature.key_id] = signature
        elif identity in known:
            try:
                verify_note(Note(note.text, (signature,)), [known[identity]])
            except NoteError:
                continue
            cosignatures[identity] = signature
    return (
        checkpoint,
        tuple(signers),
        tuple(members[key_id] for key_id in sorted(members)),
        tuple(cosignatures[key] for key in sorted(cosignatures)),
    )


class Gatherer:
    """Signatures of committed checkpoints, gathered per height until a quorum (module doc).

    Pure: no I/O, no clock. The caller keeps what :meth:`committed` and :meth:`receive`
    return.
    """

    def __init__(
        self, limits: CheckpointLimits | None = None, kept: KeptCheckpoint | None = None
    ) -> None:
        self.limits = limits or CheckpointLimits()
        self.kept = kept
        self.tip = 0
        """The last height :meth:`committed` was told of."""
        self.received = 0
        self.refused: collections.Counter[Refusal] = collections.Counter()
        self._recent: collections.OrderedDict[int, CommittedLog] = collections.OrderedDict()
        self._signed: dict[int, dict[str, NoteSignature]] = {}
        self._ahead: dict[int, dict[str, tuple[int, bytes, bytes]]] = {}
        self._members: frozenset[str] = frozenset()

    def set_members(self, member_ids: Iterable[str]) -> None:
        """The member set in force at the tip: who may have signatures held ahead of it
        (set again at each commit of a format-2 block)."""
        self._members = frozenset(member_ids)

    @property
    def held(self) -> int:
        """Signatures held in memory (for tests of the bounds)."""
        return sum(map(len, self._signed.values())) + sum(map(len, self._ahead.values()))

    def committed(
        self,
        height: int,
        log: CommittedLog | None,
        own: tuple[str, NoteSignature] | None = None,
    ) -> KeptCheckpoint | None:
        """This node committed ``height`` (``log`` None for a format-1 block); ``own`` is its
        own signature of it. Returns a new kept checkpoint if a quorum formed."""
        assert height > self.tip, "heights are committed in order"
        self.tip = height
        pending = self._ahead.pop(height, {})
        for old in [h for h in self._ahead if h < height]:
            del self._ahead[old]
        if log is None:
            return None
        assert log.height == height
        self._members = frozenset(log.keys)
        self._recent[height] = log
        self._signed[height] = {}
        while len(self._recent) > self.limits.recent_heights_max:
            old, _ = self._recent.popitem(last=False)
            self._signed.pop(old, None)
        if own is not None:
            member, signature = own
            self._signed[height][member] = signature
        result = None
        for sender, (log_size, log_root, signature) in pending.items():
            try:
                result = self._add(sender, height, log_size, log_root, signature) or result
            except SignatureRefused as refused:
                self.refused[refused.reason] += 1
        return self._quorum(height) or result

    def receive(
        self, sender: str, height: int, log_size: int, log_root: bytes, signature: bytes
    ) -> KeptCheckpoint | None:
        """A member's signature; returns a new kept checkpoint if it completes a quorum,
        raises :class:`SignatureRefused` (counted) if it is dropped."""
        self.received += 1
        try:
            if self.kept is not None and log_size <= self.kept.checkpoint.size:
                raise SignatureRefused(Refusal.STALE, f"size {log_size} is already checkpointed")
            if height > self.tip:
                return self._hold(sender, height, log_size, log_root, signature)
            return self._add(sender, height, log_size, log_root, signature)
        except SignatureRefused as refused:
            self.refused[refused.reason] += 1
            raise

    def _hold(
        self, sender: str, height: int, log_size: int, log_root: bytes, signature: bytes
    ) -> None:
        if height > self.tip + self.limits.heights_ahead_max:
            raise SignatureRefused(
                Refusal.TOO_FAR_AHEAD,
                f"height {height}, tip {self.tip} (held: at most "
                f"{self.limits.heights_ahead_max} ahead)",
            )
        if self._members and sender not in self._members:
            raise SignatureRefused(Refusal.NOT_A_MEMBER, f"{sender} is not a member")
        held = self._ahead.setdefault(height, {})
        if sender in held:
            raise SignatureRefused(Refusal.DUPLICATE, f"{sender} at height {height}, held")
        held[sender] = (log_size, log_root, signature)
        return None

    def _add(
        self, sender: str, height: int, log_size: int, log_root: bytes, signature: bytes
    ) -> KeptCheckpoint | None:
        log = self._recent.get(height)
        if log is None:
            raise SignatureRefused(Refusal.STALE, f"height {height} is not a recent checkpoint")
        if self.kept is not None and log_size <= self.kept.checkpoint.size:
            raise SignatureRefused(Refusal.STALE, f"size {log_size} is already checkpointed")
        key = log.keys.get(sender)
        if key is None:
            raise SignatureRefused(Refusal.NOT_A_MEMBER, f"{sender} at height {height}")
        if (log_size, log_root) != (log.checkpoint.size, log.checkpoint.root):
            raise SignatureRefused(
                Refusal.WRONG_LOG,
                f"size {log_size} at height {height}, ours is {log.checkpoint.size}",
            )
        signed = self._signed[height]
        if sender in signed:
            raise SignatureRefused(Refusal.DUPLICATE, f"{sender} at height {height}")
        text = log.checkpoint.text()
        if not crypto.verify_raw(key.public_key, text.encode(), signature):
            raise SignatureRefused(Refusal.BAD_SIGNATURE, f"{sender} at height {height}")
        signed[sender] = NoteSignature(key.name, key.key_id, signature)
        return self._quorum(height)

    def _quorum(self, height: int) -> KeptCheckpoint | None:
        log = self._recent[height]
        signed = self._signed[height]
        if len(signed) < log.quorum:
            return None
        if self.kept is not None and log.checkpoint.size <= self.kept.checkpoint.size:
            return None
        signatures = tuple(sorted(signed.values(), key=lambda s: (s.key_id, s.signature)))
        note = Note(log.checkpoint.text(), signatures)
        self.kept = KeptCheckpoint(
            note, log.checkpoint, height, tuple(sorted(signed)), len(signatures)
        )
        # Bounded memory: nothing at or below the kept size is gathered any longer.
        size = log.checkpoint.size
        for old in [h for h, r in self._recent.items() if r.checkpoint.size <= size]:
            self._signed[old] = {}
        return self.kept


@dataclass(slots=True)
class CheckpointMetrics:
    """What /metrics says of checkpoints besides the gatherer's counts (node/api/metrics.py)."""

    kept: int = 0
    """Checkpoints kept since the node started."""
    signed: int = 0
    """Checkpoints this node signed."""
    fetched: collections.Counter[str] = field(default_factory=collections.Counter)
    """An observer's fetches of its sources' checkpoints, by outcome."""


class CheckpointService:
    """A node's checkpoints: its signatures, the gathering, the kept note and its listeners.

    Built by the daemon (members) and the observer; ``key`` None for an observer, which only
    keeps checkpoints it fetched (:meth:`offer_note`).
    """

    def __init__(
        self,
        store: ChainStore,
        *,
        member_id: str = "",
        key: crypto.PrivateKey | None = None,
        members: Callable[[], Sequence[Member]],
        limits: CheckpointLimits | None = None,
        witness_keys: Sequence[NoteVerifierKey] = (),
    ) -> None:
        self.store = store
        self.origin = origin_for(store.chain_id)
        self.member_id = member_id
        self._key = key
        self._members = members
        self.witness_keys = tuple(witness_keys)
        self.metrics = CheckpointMetrics()
        self.listeners: list[Callable[[], None]] = []
        """Called whenever a new checkpoint is kept (the witnesses' pushers wake up)."""
        self.gatherer = Gatherer(limits, self._load_kept())
        self.gatherer.tip = store.height
        self.gatherer.set_members(member.id for member in members())

    def _load_kept(self) -> KeptCheckpoint | None:
        """The checkpoint the store kept (written by this node: trusted), or None."""
        data = self.store.checkpoint()
        if data is None:
            return None
        note = Note.parse(data)
        checkpoint = Checkpoint.from_note(note)
        keys = member_keys(self.origin, self._members())
        by_key = {(key.name, key.key_id): member for member, key in keys.items()}
        count = sum(1 for s in note.signatures if s.name == self.origin)
        signers = sorted(
            by_key[(s.name, s.key_id)]
            for s in note.signatures[:count]
            if (s.name, s.key_id) in by_key
        )
        height = None
        if checkpoint.size:
            height = self.store.log_entry_location(checkpoint.size - 1)[0]
        return KeptCheckpoint(note, checkpoint, height, tuple(signers), count)

    @property
    def kept(self) -> KeptCheckpoint | None:
        return self.gatherer.kept

    def committed(
        self, height: int, log_size: int | None, log_root: bytes | None, *, sign: bool = True
    ) -> bytes | None:
        """This node committed ``height``: sign its checkpoint (a member in the set in force
        after it, unless ``sign`` is False) and return the signature to send, or None."""
        members = self._members()
        if log_size is None or log_root is None:
            self.gatherer.committed(height, None)
            return None
        keys = member_keys(self.origin, members)
        checkpoint = Checkpoint(self.origin, log_size, log_root)
        own = None
        if sign and self._key is not None and self.member_id in keys:
            key = keys[self.member_id]
            if key.public_key == crypto.public_key_bytes(self._key):
                own = (self.member_id, sign_note(checkpoint.text(), self.origin, self._key))
                self.metrics.signed += 1
        kept = self.gatherer.committed(height, CommittedLog(height, checkpoint, keys), own)
        if kept is not None:
            self._keep(kept)
        return None if own is None else own[1].signature

    def receive(
        self, sender: str, height: int, log_size: int, log_root: bytes, signature: bytes
    ) -> None:
        """Another member's signature (raises :class:`SignatureRefused`, counted)."""
        kept = self.gatherer.receive(sender, height, log_size, log_root, signature)
        if kept is not None:
            self._keep(kept)

    def _keep(self, kept: KeptCheckpoint) -> None:
        self.store.save_checkpoint(kept.note.to_bytes())
        self.metrics.kept += 1
        for listener in self.listeners:
            listener()

    def add_cosignatures(
        self, checkpoint: Checkpoint, cosignatures: Sequence[NoteSignature]
    ) -> bool:
        """Witness cosignatures (already verified) of ``checkpoint``: added to the kept note if
        it is still the kept checkpoint (True), else dropped (False)."""
        kept = self.gatherer.kept
        if kept is None or kept.checkpoint != checkpoint or not cosignatures:
            return False
        updated = kept.with_cosignatures(cosignatures)
        self.store.save_checkpoint(updated.note.to_bytes())
        self.gatherer.kept = updated
        return True

    def offer_note(self, data: bytes) -> str:
        """A checkpoint note fetched from elsewhere (an observer's source): verified against
        the member set in force at this node's tip and its own log, then kept if larger than
        the kept one, or its cosignatures merged if it is the same checkpoint. Returns what
        happened (``kept``, ``merged``, ``older``); raises NoteError if it does not verify."""
        note = Note.parse(data)
        keys = member_keys(self.origin, self._members())
        checkpoint, signers, members, cosignatures = verify_consortium_note(
            note, self.origin, keys, self.witness_keys
        )
        store = self.store
        if checkpoint.size > store.log_size:
            raise NoteError(f"size {checkpoint.size} is beyond this node's log ({store.log_size})")
        if checkpoint.root != tlog.root_of(checkpoint.size, store.log_hash):
            raise NoteError(f"the root of size {checkpoint.size} is not this node's log's")
        kept = self.gatherer.kept
        if kept is not None and checkpoint == kept.checkpoint:
            before = kept.cosignatures
            if not cosignatures or set(cosignatures) <= set(before):
                return "older"
            self.add_cosignatures(checkpoint, cosignatures)
            return "merged"
        if kept is not None and checkpoint.size <= kept.checkpoint.size:
            return "older"
        height = store.log_entry_location(checkpoint.size - 1)[0] if checkpoint.size else None
        fresh = KeptCheckpoint(
            Note(note.text, members + cosignatures), checkpoint, height, signers, len(members)
        )
        self.gatherer.kept = fresh
        self._keep(fresh)
        return "kept"

    def status(self, witnesses: Sequence[Mapping[str, object]] = ()) -> dict[str, object] | None:
        """The ``checkpoint`` member of the node's status (None before the first)."""
        kept = self.gatherer.kept
        return {
            "size": None if kept is None else kept.checkpoint.size,
            "height": None if kept is None else kept.height,
            "signers": [] if kept is None else list(kept.signers),
            "witnesses": list(witnesses),
        }
