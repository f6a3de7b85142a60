"""The offline auditor: check a whole chain bundle against a genesis, trusting no node.

Theory of operation
-------------------
An auditor holds the consortium's genesis file and a bundle (:mod:`ledger.bundle`). Starting
from the genesis alone, :func:`audit_bundle` establishes, block after block, everything a
correct member would have checked before committing it (docs/format.md, section 10):

1. the bundle's genesis is the given one (same ``chain_id``);
2. block ``h`` is frame ``h``: heights 1, 2, … without gap; ``header.chain_id`` is the chain's;
   ``prev_hash`` is the previous block's hash (the ``chain_id`` for block 1); timestamps rise
   strictly (block 1's is after the genesis's ``created_at_ms``);
3. ``tx_count`` and ``tx_root`` match the transactions, each signed for this chain, not
   expired at this height (``expiry_height >= h``) and calling a contract the genesis lists;
   every signature verifies (in worker processes, see below);
4. ``members_hash`` names ``M(h)``, the member set in force, and the proposer is the primary
   of the header's view in that set;
5. the commit certificate names the block (height, hash, a view not before the header's) and
   holds valid signatures of at least a quorum of distinct members of ``M(h)``;
6. re-executing the block on the state of its parent, with the contracts the genesis pins,
   accepts every transaction and gives the header's ``state_root``; the state after it holds
   ``M(h + 1)``, so the member set is followed from the genesis, never taken from a header.

Steps 2 to 5, except what needs the parent or the whole block (the height, ``prev_hash``,
``tx_root``), are one function, :func:`block_rule_failures`: receipts
(:mod:`ledger.receipt`) apply it to every header they show, so a block that fails the audit
for one of those rules fails a receipt's verification too.

Step 6 needs contract code, which this bottom layer may not import: it is asked of a
:class:`Replayer` (``contracts.replay.EngineReplayer`` in sceau's commands). With ``since``
(an older bundle of the same chain), the audit also checks that every block of the old bundle
is, hash for hash, in the new one: a consortium cannot rewrite history unnoticed by a monitor
that keeps its bundles.

Pipelined across processes. Re-executing block ``h`` needs the state after block ``h - 1``,
so it runs in this process, one block after the other; everything else about a frame needs
only the frame. A pool of worker processes therefore reads ahead of the re-execution: this
process reads frames (their lengths checked first) and hands each to a worker, which decodes
it (:func:`ledger.bundle.decode_frame`: canonical form, models), computes every transaction's
id and canonical bytes (sent back with the block, so they are not computed again here), their
Merkle root, and verifies every transaction signature with :func:`ledger.crypto.verify`
exactly as a node does. Results are taken in frame order, so a frame that does not decode, or
the truncated end of a bundle, is reported only once every block before it was checked, as
without workers. The read-ahead is bounded: at most ``READ_AHEAD_BLOCKS_PER_WORKER`` frames
per worker and :data:`READ_AHEAD_BYTES_MAX` bytes of bodies besides the next frame. The
replayer is told that signatures are verified (so it does not verify them again). A block is
*verified* once its own checks passed and its signatures are valid; only then is it handed to
``on_block`` (the import writes it to a store), in height order. With one worker, each frame
is prepared in this process when its turn comes. :class:`ChainFollower`, which is handed
decoded blocks one at a time, verifies their signatures in its own process.

The checkpoint. A bundle may end with the latest consortium checkpoint its exporter knew
(:mod:`ledger.bundle`, format v2). The audit reads it first (:func:`trailing_checkpoint`: only
frame lengths and the last frame) to know its size ``s``, and while it checks the blocks it
notes the first format 2 block whose header has ``log_size == s``: its ``log_root``, which the
replay recomputed from the transactions, and ``M(h + 1)``, the member set in force after it,
which is the set whose members signed that header's checkpoint (node/runtime/checkpoints.py).
Blocks with the same log size hold no transaction after the first, so they share that root and
that set. Once every block passed, the checkpoint must be a checkpoint of this chain's log, of a
size the bundle's last block covers, with that root, signed by a quorum of that set, and, with
a :class:`~ledger.logcheck.WitnessPolicy`, cosigned by enough of its witnesses; any failure is
named ``checkpoint``. The audit keeps O(1) memory for it, whatever the length of the chain.

Failures. The audit stops at the first block that fails a check, after running every check of
that block (so a mutated field is named by each check it breaks), and reports the failures of
that block, at most :data:`FAILURES_MAX`. Blocks after it are not judged: their parent, their
member set and their state would be those of a block already found wrong. Each failure names
the height and the field (``header.tx_root``, ``transaction 3``, ``certificate``…).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ledger import crypto, domains, encoding, merkle
from ledger.bundle import (
    FRAME_LIMITS,
    BundleEntry,
    BundleError,
    BundleReader,
    TruncatedBundleError,
    decode_frame,
    read_frame_bodies,
    trailing_checkpoint,
)
from ledger.logcheck import CheckpointError, WitnessPolicy, member_note_keys, verify_checkpoint
from ledger.model import (
    Block,
    BlockHeader,
    CommitCertificate,
    Genesis,
    Member,
    ModelDecodeError,
    Transaction,
    members_hash,
    quorum_size,
    vote_payload,
)
from ledger.note import Checkpoint, Note, NoteError, NoteSignature, origin_for

__all__ = [
    "FAILURES_MAX",
    "AuditProgress",
    "AuditReport",
    "BlockRefused",
    "BundleCheckpoint",
    "ChainFollower",
    "Failure",
    "ReplayError",
    "ReplaySetupError",
    "Replayed",
    "Replayer",
    "audit_bundle",
    "block_rule_failures",
    "certificate_failures",
]

FAILURES_MAX = 100
"""Failures reported at most (a block of 10,000 forged signatures is reported by its first
hundred)."""
SIGNATURE_CHUNK_SIZE = 256
"""Transaction signatures per task sent to a worker."""
SIGNATURE_CHUNKS_IN_FLIGHT_PER_WORKER = 8
"""Bounds the signatures (and blocks awaiting them) held in memory while workers verify."""
READ_AHEAD_BLOCKS_PER_WORKER = 4
"""Frames handed to the workers ahead of the block being re-executed, per worker: enough
that a worker never waits for the next one, few enough to bound what is held decoded."""
READ_AHEAD_BYTES_MAX = 64 * 1024 * 1024
"""Bytes of frame bodies read ahead at most, besides the next frame (which may alone be up to
``FRAME_BYTES_MAX``): the read-ahead holds at most this plus one frame, and their decoded
blocks, however large the blocks of a bundle are."""
REPORT_FORMAT = "sceau-audit-report/v1"


# --- what the auditor asks of the contracts ---------------------------------------------------


class ReplaySetupError(Exception):
    """The replayer cannot execute this chain (a contract the genesis pins is missing)."""


class ReplayError(Exception):
    """A block that re-execution refuses; ``field`` names what is wrong (``header.state_root``,
    ``transaction 2``, …) and ``detail`` says how."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Replayed:
    """What re-executing a block gave."""

    state_root: bytes
    state_writes: Mapping[bytes, bytes | None]
    """The block's state writes (``None`` deletes), as a node stores them with the block."""
    next_members: tuple[Member, ...]
    """The member set in force at the next height (``membership/members`` after the block)."""


class Replayer(Protocol):
    """Executes a chain's blocks with its contracts, from the genesis state on."""

    def start(self, genesis: Genesis) -> tuple[Member, ...]:
        """Start from ``genesis``'s state; return the member set that certifies block 1.

        Raises :class:`ReplaySetupError` if the chain's contracts cannot be run here.
        """
        ...

    def execute(self, block: Block, *, signatures_verified: bool) -> Replayed:
        """Execute ``block`` on the state of its parent and commit it; raise
        :class:`ReplayError` (leaving the state as it was) if a replica would refuse it.

        With ``signatures_verified`` the caller has verified the transactions' signatures
        and will fail the audit if one does not verify: the replayer need not verify them.
        """
        ...


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Failure:
    """A check that failed: at ``height`` on ``field`` (``bundle``, ``genesis`` or ``since``
    with no height: the bundle as a whole)."""

    height: int | None
    field: str
    detail: str

    def __str__(self) -> str:
        if self.height is None:
            return f"{self.field}: {self.detail}"
        return f"height {self.height}: {self.field}: {self.detail}"

    def to_document(self) -> dict[str, Any]:
        return {
            "height": self.height,
            "field": self.field,
            "detail": self.detail,
            "message": str(self),
        }


@dataclass(frozen=True, slots=True)
class AuditProgress:
    """Where an audit is: the last block checked, and the bundle bytes read of its total."""

    height: int
    transactions: int
    bytes_read: int
    bytes_total: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BundleCheckpoint:
    """The checkpoint a bundle ended with, as the audit verified it."""

    size: int
    root: bytes
    height: int
    """The first block whose header has ``log_size == size``: the member set in force after it
    signed the checkpoint."""
    signers: tuple[str, ...]
    """The members whose signature verified, in note order."""
    members: int
    """The size of the member set that had to sign."""
    witnesses: tuple[str, ...]
    """The witnesses of the policy whose cosignature verified (empty without a policy)."""
    other_signatures: tuple[str, ...]
    """``name+keyid`` of every other signature line (witnesses' cosignatures, unchecked
    without a policy naming their keys; anyone may add a line)."""
    note: bytes
    """The note with only the signatures verified: the members', sorted by key id, then the
    policy's witnesses' (what ``sceau import`` keeps)."""

    def to_document(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "root": self.root.hex(),
            "height": self.height,
            "signers": list(self.signers),
            "members": self.members,
            "witnesses": list(self.witnesses),
            "other_signatures": list(self.other_signatures),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """The outcome of an audit; :attr:`ok` if every check of every block held."""

    bundle: str
    chain_id: bytes
    consortium: str
    blocks: int
    """Blocks verified (all of the bundle's when the audit passes)."""
    transactions: int
    """Transactions in the verified blocks."""
    tip_block_hash: bytes
    tip_state_root: bytes | None
    seconds: float
    workers: int
    member_set_changes: tuple[int, ...]
    """Heights from which another member set certifies the blocks."""
    header_formats: tuple[tuple[int, int], ...]
    """``(from_height, format)`` of each header format the verified blocks have, in order: one
    entry for a chain that never changed format, one more for each scheduled change."""
    since: str | None
    since_height: int | None
    failures: tuple[Failure, ...]
    checkpoint: BundleCheckpoint | None = None
    """The bundle's checkpoint, verified (None: the bundle carries none, or the audit failed)."""

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def transactions_per_s(self) -> float:
        return self.transactions / self.seconds if self.seconds > 0 else 0.0

    def to_document(self) -> dict[str, Any]:
        """The JSON report (docs/audit.md, "The report")."""
        return {
            "format": REPORT_FORMAT,
            "ok": self.ok,
            "bundle": self.bundle,
            "chain_id": self.chain_id.hex(),
            "consortium": self.consortium,
            "heights": {"first": 1 if self.blocks else None, "last": self.blocks},
            "blocks": self.blocks,
            "transactions": self.transactions,
            "tip": {
                "height": self.blocks,
                "block_hash": self.tip_block_hash.hex(),
                "state_root": None if self.tip_state_root is None else self.tip_state_root.hex(),
            },
            "member_set_changes": list(self.member_set_changes),
            "header_formats": [
                {"format": version, "from_height": height}
                for height, version in self.header_formats
            ],
            "since": None
            if self.since is None
            else {"bundle": self.since, "height": self.since_height},
            "seconds": round(self.seconds, 3),
            "transactions_per_s": round(self.transactions_per_s, 1),
            "workers": self.workers,
            "checkpoint": None if self.checkpoint is None else self.checkpoint.to_document(),
            "failures": [failure.to_document() for failure in self.failures],
        }


# --- certificates -----------------------------------------------------------------------------


def certificate_failures(
    certificate: CommitCertificate,
    header: BlockHeader,
    members: Sequence[Member],
    chain_id: bytes,
) -> list[tuple[str, str]]:
    """Every reason why ``certificate`` does not certify ``header`` for ``members``.

    Returns ``(field, detail)`` pairs, empty if it certifies. Unlike
    :meth:`CommitCertificate.verify`, it counts each member once whatever the certificate
    holds (a certificate built without its validator may repeat a signer), and reports every
    problem rather than the first.
    """
    found: list[tuple[str, str]] = []
    if certificate.height != header.height:
        found.append(
            ("certificate.height", f"is {certificate.height}, the block's is {header.height}")
        )
    if certificate.block_hash != header.block_hash:
        found.append(("certificate.block_hash", "is not the hash of the block's header"))
    if certificate.view < header.view:
        found.append(
            (
                "certificate.view",
                f"{certificate.view} is before the view {header.view} the block was proposed in",
            )
        )
    by_id = {member.id: member for member in members}
    domain = crypto.Domain(domains.COMMIT, chain_id)
    payload = vote_payload(certificate.height, certificate.view, certificate.block_hash)
    signers: set[str] = set()
    previous = ""
    for member_id, signature in certificate.signatures:
        if member_id in signers:
            found.append(("certificate", f"{member_id!r} signs twice"))
            continue
        if member_id < previous:
            found.append(("certificate", "the signatures are not sorted by member id"))
        previous = member_id
        member = by_id.get(member_id)
        if member is None:
            found.append(("certificate", f"{member_id!r} is not a member at this height"))
        elif not crypto.verify(member.public_key, domain, payload, signature):
            found.append(("certificate", f"bad signature from {member_id!r}"))
        else:
            signers.add(member_id)
    needed = quorum_size(len(members))
    if len(signers) < needed:
        found.append(
            (
                "certificate",
                f"{len(signers)} valid signatures of distinct members, {needed} needed of "
                f"{len(members)} members",
            )
        )
    return found


# --- the rules of one certified block --------------------------------------------------------


def block_rule_failures(
    header: BlockHeader,
    certificate: CommitCertificate,
    transactions: Iterable[tuple[int, Transaction]],
    members: Sequence[Member],
    genesis: Genesis,
    *,
    after_ms: int,
    after: str,
) -> list[tuple[str, str]]:
    """Every rule a certified block must satisfy that needs neither its parent nor replay.

    The one definition shared by the chain audit (:func:`audit_bundle`, for every block) and
    receipts (:func:`ledger.receipt.verify_receipt`, for each header a receipt shows):

    * ``header.chain_id`` is the genesis's; ``header.timestamp_ms`` is after ``after_ms``
      (``after`` says what that is: the parent's time, or the genesis's ``created_at_ms``);
    * each of ``transactions`` (``(position, transaction)``, all of the block's or only those
      seen) is signed for this chain, may still be included at this height
      (``expiry_height >= height``) and calls a contract the genesis lists;
    * ``header.members_hash`` names ``members``, the set in force, and the proposer is the
      primary of the header's view in that set;
    * the certificate certifies the header for ``members`` (:func:`certificate_failures`).

    Returns ``(field, detail)`` pairs, header fields first, empty if every rule holds.
    """
    assert members, "a member set in force is never empty"
    found: list[tuple[str, str]] = []
    chain_id = genesis.chain_id
    if header.chain_id != chain_id:
        found.append(("header.chain_id", "is not the chain_id of this genesis"))
    if header.timestamp_ms <= after_ms:
        found.append(("header.timestamp_ms", f"is not after {after}"))
    if header.members_hash != members_hash(members):
        found.append(("header.members_hash", "is not the hash of the member set in force"))
    primary = members[header.view % len(members)].id
    if header.proposer != primary:
        found.append(
            (
                "header.proposer",
                f"is {header.proposer!r}, the primary of view {header.view} is {primary!r}",
            )
        )
    listed = {contract.name for contract in genesis.contracts}
    for position, transaction in transactions:
        name = f"transaction {position}"
        if transaction.chain_id != chain_id:
            found.append((name, "chain_id: signed for another chain"))
        if transaction.expiry_height < header.height:
            found.append(
                (
                    name,
                    f"expiry_height: {transaction.expiry_height} is below the block's height "
                    f"{header.height}",
                )
            )
        if transaction.contract not in listed:
            found.append((name, f"contract: {transaction.contract!r} is not listed in the genesis"))
    found += certificate_failures(certificate, header, members, chain_id)
    return found


# --- transaction signatures, in worker processes ----------------------------------------------

SignatureTriple = tuple[bytes, bytes, bytes]
"""``(public_key, tx_id, signature)``: what the worker verifies in the transaction domain."""


def verify_transaction_signatures(chain_id: bytes, triples: Sequence[SignatureTriple]) -> list[int]:
    """The positions in ``triples`` whose signature does not verify (run in a worker).

    Exactly :meth:`Transaction.signature_is_valid`: :func:`ledger.crypto.verify` of the tx_id
    in the transaction domain of ``chain_id``.
    """
    domain = crypto.Domain(domains.TRANSACTION, chain_id)
    return [
        position
        for position, (public_key, tx_id, signature) in enumerate(triples)
        if not crypto.verify(public_key, domain, tx_id, signature)
    ]


class _Completed:
    """A result computed in this process, shaped like ``multiprocessing`` AsyncResult."""

    def __init__(self, value: list[int]) -> None:
        self._value = value

    def ready(self) -> bool:
        return True

    def get(self) -> list[int]:
        return self._value


@dataclass(slots=True)
class _Chunk:
    result: Any
    height: int
    first_position: int


class _SignatureChecker:
    """Sends each block's signatures to the workers and collects the results in order."""

    def __init__(self, chain_id: bytes, workers: int) -> None:
        self.chain_id = chain_id
        self.workers = workers
        self._pool = multiprocessing.get_context().Pool(workers) if workers > 1 else None
        self._pending: deque[_Chunk] = deque()
        self.chunks_sent = 0
        self.chunks_done = 0
        self.failures: list[Failure] = []

    def submit(self, block: Block, height: int) -> int:
        """Queue the signatures of the block at ``height``; return the sequence number of its
        last chunk."""
        transactions = block.transactions
        for start in range(0, len(transactions), SIGNATURE_CHUNK_SIZE):
            triples = [
                (transaction.signer, transaction.tx_id, transaction.signature)
                for transaction in transactions[start : start + SIGNATURE_CHUNK_SIZE]
            ]
            if self._pool is None:
                result: Any = _Completed(verify_transaction_signatures(self.chain_id, triples))
            else:
                result = self._pool.apply_async(
                    verify_transaction_signatures, (self.chain_id, triples)
                )
            self._pending.append(_Chunk(result, height, start))
            self.chunks_sent += 1
        self.collect(wait=False)
        return self.chunks_sent

    def record(self, height: int, bad_positions: Sequence[int]) -> int:
        """Note the signatures of the block at ``height``, verified by a worker that prepared
        it (the positions that do not verify); return the sequence number of the last chunk
        sent so far, which is all that block waits for."""
        for position in bad_positions:
            self.failures.append(
                Failure(height, f"transaction {position}", "the signature does not verify")
            )
        self.collect(wait=False)
        return self.chunks_sent

    @property
    def pool(self) -> Any:
        """The worker processes (None with one worker: everything runs in this process)."""
        return self._pool

    def collect(self, *, wait: bool) -> None:
        """Take the results that are ready, in order; wait while too many are outstanding
        (or for all of them, with ``wait``)."""
        in_flight_max = self.workers * SIGNATURE_CHUNKS_IN_FLIGHT_PER_WORKER
        while self._pending and (
            wait or len(self._pending) > in_flight_max or self._pending[0].result.ready()
        ):
            chunk = self._pending.popleft()
            for position in chunk.result.get():
                self.failures.append(
                    Failure(
                        chunk.height,
                        f"transaction {chunk.first_position + position}",
                        "the signature does not verify",
                    )
                )
            self.chunks_done += 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()


# --- frames decoded and verified ahead, in worker processes -----------------------------------


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A frame as a worker prepared it: decoded, with what needs only the frame itself."""

    frame: int
    offset: int
    body_bytes: int
    decoded: BundleEntry | bytes | BundleError
    """The block entry, the checkpoint note, or why the frame does not decode."""
    tx_root: bytes | None
    """The Merkle root of the block's transactions (None: not a block)."""
    bad_signatures: tuple[int, ...]
    """The positions of the transactions whose signature does not verify."""


def _prepare_frame(
    chain_id: bytes, bundle_format: str, frame: int, offset: int, body: bytes
) -> _Prepared:
    """Everything about frame ``frame`` that needs neither its parent nor the state (run in a
    worker): decode it, compute each transaction's id and canonical bytes (sent back with the
    block, so the auditor does not compute them again), their Merkle root, and verify their
    signatures exactly as :func:`verify_transaction_signatures` does."""
    try:
        decoded = decode_frame(body, frame, offset, bundle_format)
    except BundleError as error:
        return _Prepared(frame, offset, len(body), error, None, ())
    if isinstance(decoded, bytes):
        return _Prepared(frame, offset, len(body), decoded, None, ())
    transactions = decoded.block.transactions
    triples = [
        (transaction.signer, transaction.tx_id, transaction.signature)
        for transaction in transactions
    ]
    bad = verify_transaction_signatures(chain_id, triples)
    tx_root = merkle.root(decoded.block.transaction_leaves())
    return _Prepared(frame, offset, len(body), decoded, tx_root, tuple(bad))


def _prepared_frames(
    reader: BundleReader, chain_id: bytes, pool: Any, workers: int
) -> Iterator[_Prepared]:
    """The frames of ``reader`` prepared by the ``pool``'s workers, in frame order.

    Reads ahead at most ``workers × READ_AHEAD_BLOCKS_PER_WORKER`` frames and
    :data:`READ_AHEAD_BYTES_MAX` bytes of bodies besides the next frame, so the workers decode
    and verify the next blocks while the caller re-executes this one. Without a pool, each
    frame is prepared here when asked for. An error reading the frames themselves (a bad
    length, a truncated end) is raised after every frame before it was yielded.
    """
    frames = reader.frames()
    if pool is None:
        for frame, offset, body in frames:
            yield _prepare_frame(chain_id, reader.format, frame, offset, body)
        return
    blocks_max = workers * READ_AHEAD_BLOCKS_PER_WORKER
    pending: deque[tuple[Any, int]] = deque()
    bytes_ahead = 0
    unread: BundleError | None = None
    exhausted = False
    while True:
        while (
            not exhausted
            and len(pending) < blocks_max
            and (not pending or bytes_ahead < READ_AHEAD_BYTES_MAX)
        ):
            try:
                frame, offset, body = next(frames)
            except StopIteration:
                exhausted = True
                break
            except BundleError as error:
                unread, exhausted = error, True
                break
            task = (chain_id, reader.format, frame, offset, body)
            pending.append((pool.apply_async(_prepare_frame, task), len(body)))
            bytes_ahead += len(body)
        if not pending:
            break
        result, size = pending.popleft()
        bytes_ahead -= size
        yield result.get()
    if unread is not None:
        raise unread


# --- the audit --------------------------------------------------------------------------------

BlockCallback = Callable[[Block, CommitCertificate, Replayed], None]
ProgressCallback = Callable[[AuditProgress], None]


@dataclass(slots=True)
class _Verified:
    """A block whose own checks passed, waiting for its signatures to come back."""

    block: Block
    certificate: CommitCertificate
    replayed: Replayed
    last_chunk: int


@dataclass(slots=True)
class _Chain:
    """What the audit has established so far: the chain up to the last block checked."""

    chain_id: bytes
    members: tuple[Member, ...]
    height: int = 0
    block_hash: bytes = b""
    timestamp_ms: int = 0
    state_root: bytes | None = None
    transactions: int = 0
    member_set_changes: list[int] = field(default_factory=list)
    header_formats: tuple[tuple[int, int], ...] = ()
    """``(from_height, format)``; the replayer checked each header's format against the
    genesis and the schedule (a tuple: a snapshot of the chain shares nothing with it)."""
    log_size: int | None = 0
    """The last block's ``log_size`` (None for a format 1 header)."""


@dataclass(frozen=True, slots=True)
class _LogAnchor:
    """The first checked block whose header commits to the checkpoint's size."""

    height: int
    log_root: bytes
    members: tuple[Member, ...]
    """The member set in force after it: who signs its checkpoint."""


class _Audit:
    def __init__(
        self,
        genesis: Genesis,
        replayer: Replayer,
        signatures: _SignatureChecker,
        on_block: BlockCallback | None,
        since_hashes: list[bytes] | None,
    ) -> None:
        self.genesis = genesis
        self.replayer = replayer
        self.signatures = signatures
        self.on_block = on_block
        self.since_hashes = since_hashes
        self.chain = _Chain(
            genesis.chain_id,
            (),
            block_hash=genesis.chain_id,
            timestamp_ms=genesis.created_at_ms,
        )
        self.verified = _Chain(genesis.chain_id, (), block_hash=genesis.chain_id)
        self.failures: list[Failure] = []
        self._waiting: deque[_Verified] = deque()
        self.checkpoint_size: int | None = None
        """The size of the checkpoint the bundle ends with, looked for among the headers."""
        self.anchor: _LogAnchor | None = None

    def start(self) -> None:
        members = self.replayer.start(self.genesis)
        if members != self.genesis.members:
            self.failures.append(
                Failure(None, "genesis", "the genesis state holds another member set")
            )
        self.chain.members = members

    def check(
        self, block: Block, certificate: CommitCertificate, prepared: _Prepared | None = None
    ) -> None:
        """Every check of the next block; on success the chain moves on to it.

        ``prepared``: a worker decoded the block, computed its transactions' Merkle root and
        verified their signatures (otherwise they are computed, and the signatures sent to the
        workers, here). Failures are reported at the height the block should have (its place
        in the bundle), whatever its header says.
        """
        height = self.chain.height + 1
        tx_root = None if prepared is None else prepared.tx_root
        found = self._header_failures(block, certificate, height, tx_root)
        if prepared is None:
            last_chunk = self.signatures.submit(block, height)
        else:
            last_chunk = self.signatures.record(height, prepared.bad_signatures)
        replayed = None
        try:
            replayed = self.replayer.execute(block, signatures_verified=True)
        except ReplayError as error:
            # The engine checks some fields the auditor checked already (tx_root,
            # members_hash): name each field once.
            if all(failure.field != error.field for failure in found):
                found.append(Failure(height, error.field, error.detail))
        if replayed is not None and replayed.state_root != block.header.state_root:
            found.append(Failure(height, "header.state_root", "is not the root re-execution gives"))
        found += self._history_failures(block, height)
        self.failures.extend(found)
        if found or replayed is None:
            return
        self._advance(block, replayed)
        self._waiting.append(_Verified(block, certificate, replayed, last_chunk))
        self.release()

    def _history_failures(self, block: Block, height: int) -> list[Failure]:
        """With an older bundle: block ``h`` must be the older bundle's block ``h``."""
        hashes = self.since_hashes
        if hashes is None or height > len(hashes) or hashes[height - 1] == block.block_hash:
            return []
        detail = "differs from the older bundle's block at this height: history was rewritten"
        return [Failure(height, "block_hash", detail)]

    def _header_failures(
        self,
        block: Block,
        certificate: CommitCertificate,
        expected: int,
        tx_root: bytes | None = None,
    ) -> list[Failure]:
        """The rules of :func:`block_rule_failures`, and those that need the chain so far
        (the height, the link to the parent, the whole list of transactions, whose Merkle
        root is ``tx_root`` when a worker computed it)."""
        chain, header = self.chain, block.header
        found: list[tuple[str, str]] = []
        if header.height != expected:
            found.append(("header.height", f"is {header.height}, expected {expected}"))
        if header.prev_hash != chain.block_hash:
            parent = "the chain_id" if expected == 1 else f"the hash of block {chain.height}"
            found.append(("header.prev_hash", f"is not {parent}"))
        if tx_root is None:
            tx_root = merkle.root(block.transaction_leaves())
        if tx_root != header.tx_root:
            found.append(("header.tx_root", "does not match the transactions"))
        found += block_rule_failures(
            header,
            certificate,
            enumerate(block.transactions),
            chain.members,
            self.genesis,
            after_ms=chain.timestamp_ms,
            after="the genesis's created_at_ms" if expected == 1 else "its parent's",
        )
        return [Failure(expected, name, detail) for name, detail in found]

    def _advance(self, block: Block, replayed: Replayed) -> None:
        chain = self.chain
        chain.height = block.height
        chain.block_hash = block.block_hash
        chain.timestamp_ms = block.header.timestamp_ms
        chain.state_root = replayed.state_root
        chain.transactions += len(block.transactions)
        if replayed.next_members != chain.members:
            chain.member_set_changes.append(block.height + 1)
        chain.members = replayed.next_members
        chain.log_size = block.header.log_size
        size = block.header.log_size
        if self.anchor is None and size is not None and size == self.checkpoint_size:
            assert block.header.log_root is not None, "format 2 headers carry both"
            self.anchor = _LogAnchor(block.height, block.header.log_root, chain.members)
        version = block.header.format_version
        if not chain.header_formats or chain.header_formats[-1][1] != version:
            chain.header_formats = (*chain.header_formats, (block.height, version))

    def release(self) -> None:
        """Hand over the blocks whose signatures all came back, while none failed."""
        signatures = self.signatures
        first_bad = min(
            (failure.height for failure in signatures.failures if failure.height is not None),
            default=None,
        )
        while (
            self._waiting
            and self._waiting[0].last_chunk <= signatures.chunks_done
            and (first_bad is None or self._waiting[0].block.height < first_bad)
        ):
            waiting = self._waiting.popleft()
            verified = self.verified
            verified.height = waiting.block.height
            verified.block_hash = waiting.block.block_hash
            verified.state_root = waiting.replayed.state_root
            verified.transactions += len(waiting.block.transactions)
            if self.on_block is not None:
                self.on_block(waiting.block, waiting.certificate, waiting.replayed)

    @property
    def failed(self) -> bool:
        return bool(self.failures or self.signatures.failures)

    def first_failures(self) -> list[Failure]:
        """The failures of the first failing height (bundle-level ones when none has one)."""
        everything = self.failures + self.signatures.failures
        heights = [failure.height for failure in everything if failure.height is not None]
        if not heights:
            return everything[:FAILURES_MAX]
        first = min(heights)
        return sorted(
            (failure for failure in everything if failure.height == first),
            key=lambda failure: _field_order(failure.field),
        )[:FAILURES_MAX]


class BlockRefused(Exception):
    """A block :meth:`ChainFollower.verify` refuses; ``failures`` are those of the audit."""

    def __init__(self, failures: Sequence[Failure]) -> None:
        super().__init__("; ".join(str(failure) for failure in failures[:3]))
        self.failures = tuple(failures)


class ChainFollower:
    """The audit, one certified block at a time: for a node that follows a chain it does not
    help build (an observer, node/runtime/observer.py).

    It starts from a position already verified (the genesis, or the tip of a store this
    follower wrote): ``height``, ``block_hash`` and ``timestamp_ms`` of that block, and a
    ``replayer`` whose :meth:`~Replayer.start` gives the member set in force after it. Each
    :meth:`verify` runs every check :func:`audit_bundle` runs on a block (signatures in this
    process) and, when all hold, hands the block to ``on_block`` before returning; a block
    that fails raises :class:`BlockRefused` and leaves the follower where it was, ready for
    another copy of that block. The replayer must leave its state untouched by ``execute``
    (``on_block`` commits), so a refused block changes nothing.
    """

    def __init__(
        self,
        genesis: Genesis,
        replayer: Replayer,
        on_block: BlockCallback,
        *,
        height: int = 0,
        block_hash: bytes | None = None,
        timestamp_ms: int | None = None,
    ) -> None:
        assert (height == 0) == (block_hash is None) == (timestamp_ms is None), "a whole position"
        self._audit = _Audit(
            genesis, replayer, _SignatureChecker(genesis.chain_id, 1), on_block, None
        )
        members = replayer.start(genesis)
        for chain in (self._audit.chain, self._audit.verified):
            chain.members = members
            if height:
                assert block_hash is not None and timestamp_ms is not None
                chain.height, chain.block_hash, chain.timestamp_ms = (
                    height,
                    block_hash,
                    timestamp_ms,
                )
        if not height and members != genesis.members:
            raise ReplaySetupError("the genesis state holds another member set")

    @property
    def height(self) -> int:
        """The last block verified (and handed to ``on_block``)."""
        return self._audit.verified.height

    def verify(self, block: Block, certificate: CommitCertificate) -> Replayed:
        """Check ``block`` as the next one and hand it to ``on_block``; raise
        :class:`BlockRefused` with the audit's failures if a check fails."""
        audit = self._audit
        before = replace(audit.chain, member_set_changes=[])
        handed: list[Replayed] = []
        on_block = audit.on_block
        assert on_block is not None

        def hand(block: Block, certificate: CommitCertificate, replayed: Replayed) -> None:
            on_block(block, certificate, replayed)
            handed.append(replayed)

        audit.on_block = hand
        try:
            audit.check(block, certificate)
            audit.signatures.collect(wait=True)
            audit.release()
            if not audit.failed:
                assert handed, "a block that passed every check is handed over"
                return handed[0]
            failures = audit.first_failures()
            audit.failures.clear()
            audit.signatures.failures.clear()
            audit._waiting.clear()
            audit.chain = before
            raise BlockRefused(failures)
        except BlockRefused:
            raise
        except BaseException:
            if not handed:  # failed before the block was handed over: nothing changed
                audit.failures.clear()
                audit.signatures.failures.clear()
                audit._waiting.clear()
                audit.chain = before
            raise
        finally:
            audit.on_block = on_block
            audit.chain.member_set_changes.clear()


def _field_order(name: str) -> tuple[int, int]:
    """Failures of one block in reading order: header, transactions, certificate, the rest."""
    if name.startswith("header."):
        return (0, 0)
    if name.startswith("transaction "):
        return (1, int(name.removeprefix("transaction ")))
    if name.startswith("certificate"):
        return (2, 0)
    return (3, 0)


def _block_hashes(path: str | os.PathLike, genesis: Genesis) -> list[bytes]:
    """The hash of every block of an older bundle of ``genesis``'s chain (headers only).

    Raises BundleError if it is not such a bundle or does not decode.
    """
    bodies = read_frame_bodies(path)
    try:
        with BundleReader(path) as reader:
            if reader.genesis.chain_id != genesis.chain_id:
                raise BundleError("it is the bundle of another consortium")
        next(bodies)
        hashes = []
        for height, body in enumerate(bodies, start=1):
            try:
                document = encoding.unpack(body, FRAME_LIMITS)
                if isinstance(document, dict) and "checkpoint" in document:
                    break  # the last frame of a v2 bundle: no block (its reader checks it)
                header = BlockHeader.from_canonical(document["block"]["header"])
            except (encoding.EncodingError, ModelDecodeError, KeyError, TypeError) as error:
                raise BundleError(f"block {height} does not decode: {error}") from None
            hashes.append(header.block_hash)
        return hashes
    finally:
        bodies.close()


def audit_bundle(
    path: str | os.PathLike,
    genesis: Genesis,
    replayer: Replayer,
    *,
    workers: int | None = None,
    since: str | os.PathLike | None = None,
    progress: ProgressCallback | None = None,
    on_block: BlockCallback | None = None,
    witnesses: WitnessPolicy | None = None,
) -> AuditReport:
    """Audit the bundle at ``path`` against ``genesis``; see the module doc for the checks.

    ``workers`` processes verify the transaction signatures (default: one per core; 1
    verifies them in this process). ``since`` is an older bundle the chain must extend.
    ``witnesses``: the bundle must end with a checkpoint cosigned as this policy asks.
    ``progress`` is called after each block; ``on_block`` with each verified block, in height
    order. Returns the report; raises :class:`ReplaySetupError` if the chain's contracts
    cannot be run here. Problems of the bundles themselves are failures in the report.
    """
    started = time.monotonic()
    workers = max(1, workers if workers is not None else (os.cpu_count() or 1))
    since_hashes: list[bytes] | None = None
    early: list[Failure] = []
    if since is not None:
        try:
            since_hashes = _block_hashes(since, genesis)
        except TruncatedBundleError as error:
            detail = f"{since} ends inside frame {error.frames}: repair it or use a whole bundle"
            early.append(Failure(None, "since", detail))
        except BundleError as error:
            early.append(Failure(None, "since", f"{since}: {error}"))
    signatures = _SignatureChecker(genesis.chain_id, workers)
    audit = _Audit(genesis, replayer, signatures, on_block, since_hashes)
    audit.failures.extend(early)
    note: bytes | None = None
    try:
        if not audit.failures:
            note = _run(audit, Path(path), genesis, progress)
        signatures.collect(wait=True)
        audit.release()
    finally:
        signatures.close()
    checkpoint = None
    if not audit.failed:
        try:
            checkpoint = _verify_checkpoint(audit, note, witnesses)
        except CheckpointError as error:
            detail = str(error).removeprefix("checkpoint: ")
            audit.failures.append(Failure(None, "checkpoint", detail))
    if not audit.failed and since_hashes is not None and len(since_hashes) > audit.chain.height:
        audit.failures.append(
            Failure(
                None,
                "since",
                f"the older bundle reaches height {len(since_hashes)}, this one only "
                f"{audit.chain.height}",
            )
        )
    verified = audit.verified
    return AuditReport(
        bundle=str(path),
        chain_id=genesis.chain_id,
        consortium=genesis.consortium,
        blocks=verified.height,
        transactions=verified.transactions,
        tip_block_hash=verified.block_hash,
        tip_state_root=verified.state_root,
        seconds=time.monotonic() - started,
        workers=workers,
        member_set_changes=tuple(
            height for height in audit.chain.member_set_changes if height <= verified.height
        ),
        header_formats=tuple(
            entry for entry in audit.chain.header_formats if entry[0] <= verified.height
        ),
        since=None if since is None else str(since),
        since_height=None if since_hashes is None else len(since_hashes),
        failures=tuple(audit.first_failures()),
        checkpoint=checkpoint if not audit.failed else None,
    )


_KeyName = tuple[str, int]
"""A note key by ``(name, key_id)``, as signature lines name it."""


def _verify_checkpoint(
    audit: _Audit, data: bytes | None, policy: WitnessPolicy | None
) -> BundleCheckpoint | None:
    """Check the bundle's checkpoint ``data`` (None: it has none) against the audited chain
    (module doc, "The checkpoint"). Raises CheckpointError (``step`` ``checkpoint`` unless a
    signature check failed: ``quorum``, ``witnesses``)."""
    if data is None:
        if policy is None:
            return None
        named = ", ".join(label for label, _ in policy.witnesses)
        raise CheckpointError(
            "witnesses",
            f"the bundle carries no checkpoint, and a checkpoint cosigned by {policy.quorum} of "
            f"{named} was asked for",
        )
    try:
        note = Note.parse(data)
        checkpoint = Checkpoint.from_note(note)
    except NoteError as error:
        raise CheckpointError("checkpoint", f"not a checkpoint note: {error}") from None
    origin = origin_for(audit.genesis.chain_id)
    if checkpoint.origin != origin:
        raise CheckpointError(
            "checkpoint", f"its origin is {checkpoint.origin[:80]!r}, not this log's {origin!r}"
        )
    last = audit.chain.log_size
    if last is None or checkpoint.size > last:
        covered = "commits to no log (header format 1)" if last is None else f"has log_size {last}"
        raise CheckpointError(
            "checkpoint",
            f"size {checkpoint.size} is beyond the log of the bundle's last block, which {covered}",
        )
    anchor = audit.anchor
    if anchor is None or audit.checkpoint_size != checkpoint.size:
        raise CheckpointError(
            "checkpoint",
            f"no format 2 header of the bundle has log_size {checkpoint.size}: the members sign "
            "only the sizes of certified headers",
        )
    if checkpoint.root != anchor.log_root:
        raise CheckpointError(
            "checkpoint",
            f"its root of size {checkpoint.size} is not the log's (block {anchor.height}'s "
            "log_root, recomputed by the audit)",
        )
    verified = verify_checkpoint(note, origin, anchor.members, policy)
    keys = member_note_keys(origin, anchor.members)
    signed = {(key.name, key.key_id) for key, member in keys.items() if member in verified.signers}
    cosigned: set[_KeyName] = set()
    if policy is not None:
        labels = set(verified.witnesses)
        cosigned = {(key.name, key.key_id) for label, key in policy.witnesses if label in labels}
    others = tuple(
        f"{s.name}+{s.key_id:08x}"
        for s in note.signatures
        if (s.name, s.key_id) not in signed | cosigned
    )
    return BundleCheckpoint(
        size=checkpoint.size,
        root=checkpoint.root,
        height=anchor.height,
        signers=verified.signers,
        members=verified.members,
        witnesses=verified.witnesses,
        other_signatures=others,
        note=_verified_only(note, signed, cosigned),
    )


def _verified_only(
    note: Note, signed: set[tuple[str, int]], cosigned: set[tuple[str, int]]
) -> bytes:
    """``note`` with only the verified signatures, each key once: the members' (``signed``)
    sorted by key id, as nodes keep them, then the witnesses' (``cosigned``) in note order."""
    first: dict[tuple[str, int], NoteSignature] = {}
    for signature in note.signatures:
        first.setdefault((signature.name, signature.key_id), signature)
    members = sorted((first[key] for key in signed), key=lambda s: (s.key_id, s.signature))
    witnesses = [s for key, s in first.items() if key in cosigned]
    return Note(note.text, (*members, *witnesses)).to_bytes()


def _run(
    audit: _Audit, path: Path, genesis: Genesis, progress: ProgressCallback | None
) -> bytes | None:
    """Read and check the bundle block by block until its end or the first failure; return
    the checkpoint note it ends with (None if none, or if it was not read to its end)."""
    try:
        reader = BundleReader(path)
    except BundleError as error:
        audit.failures.append(Failure(None, "bundle", str(error)))
        return None
    ahead = trailing_checkpoint(path)
    if ahead is not None:
        with contextlib.suppress(NoteError):  # reported once the blocks are checked
            audit.checkpoint_size = Checkpoint.from_note(Note.parse(ahead)).size
    with reader:
        if reader.genesis.chain_id != genesis.chain_id:
            audit.failures.append(
                Failure(
                    None,
                    "genesis",
                    f"the bundle is of another chain ({reader.genesis.consortium!r}, chain_id "
                    f"{reader.genesis.chain_id.hex()}), not of {genesis.chain_id.hex()}",
                )
            )
            return None
        audit.start()
        signatures = audit.signatures
        prepared = _prepared_frames(reader, genesis.chain_id, signatures.pool, signatures.workers)
        for entry, frame in _entries(reader, audit, prepared):
            if audit.failed:
                return None
            audit.check(entry.block, entry.certificate, frame)
            if progress is not None:
                chain = audit.chain
                progress(
                    AuditProgress(
                        height=entry.block.height,
                        transactions=chain.transactions,
                        bytes_read=reader.bytes_read,
                        bytes_total=reader.size_bytes,
                    )
                )
        return reader.checkpoint


def _entries(
    reader: BundleReader, audit: _Audit, prepared: Iterator[_Prepared]
) -> Iterator[tuple[BundleEntry, _Prepared]]:
    """The bundle's entries, with how each frame was prepared; a frame that cannot be read
    becomes a failure at its height."""
    try:
        for frame in prepared:
            entry = reader.take(frame.frame, frame.offset, frame.body_bytes, frame.decoded)
            if entry is not None:
                yield entry, frame
    except TruncatedBundleError as error:
        audit.failures.append(
            Failure(
                error.frames,
                "bundle",
                f"truncated: the file ends inside frame {error.frames} (byte {error.offset}), "
                f"after block {error.frames - 1}: a writer stopped mid-frame ('sceau export "
                "--repair' cuts the partial frame off)",
            )
        )
    except BundleError as error:
        height = error.frame if error.frame is not None else audit.chain.height + 1
        if error.part == "checkpoint":
            detail = f"frame {error.frame} (byte {error.offset}): {error.reason}"
            audit.failures.append(Failure(None, "checkpoint", detail))
        elif error.part is not None:
            audit.failures.append(Failure(height, error.part, error.reason))
        else:
            detail = f"{error.reason} (at byte {error.offset})"
            audit.failures.append(Failure(height, "frame", detail))
