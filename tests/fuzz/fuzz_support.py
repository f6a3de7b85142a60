"""What the fuzz harness and its corpus generator share: a consortium, a script format, a driver.

Both sides must agree byte for byte: the seed corpus holds messages signed with this
consortium's keys, and the harness checks them against the same genesis, so a seed input
reaches the replica's deep paths (prepared, committed, view changed, caught up) instead of
stopping at a signature check. Everything here is deterministic (seeded keys, Ed25519
signatures, fixed timestamps): regenerating the corpus gives the same files, and an input
replays the same way every time.

This module is harness code, not code under test: ``fuzz_frames.py`` imports it inside
``atheris.instrument_imports(include=["ledger", "consensus", "node"])``, so the project
modules it pulls in are instrumented and it is not.

Replica script format (what the ``replica`` target reads)
---------------------------------------------------------
``flags`` (1 byte), then up to :data:`SCRIPT_FRAMES_MAX` frames, each as a 2-byte big-endian
length followed by that many bytes of peer frame (a truncated last frame is taken as it is).
``flags`` chooses the replica's starting point, so that the fuzzer can flip it with one byte:

* bits 0-1: how many blocks of :func:`certified_chain` the replica has already committed;
* bit 2: re-sign every signature of a decoded message that names a member, with that
  member's key (mutated fields then pass the signature checks and reach the logic behind);
* bit 3: tick the replica after every frame;
* bit 4: the transport peer is not the message's ``sender`` (the replica must notice);
* bits 5-6: which member the replica under test is (m0 is the primary of view 0).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from consensus import simapp
from consensus.actions import Action, ReportEvidence, ReportRejectedProposal
from consensus.driver import execute_actions
from consensus.invariants import InvariantChecker
from consensus.messages import (
    BLOCKS_PER_RESPONSE_MAX,
    BlockRequest,
    BlockResponse,
    CommitVote,
    NewView,
    Prepare,
    PreparedCertificate,
    PrePrepare,
    Status,
    ViewChange,
)
from consensus.replica import Replica, ReplicaConfig
from consensus.safety import SafetyRecord
from consensus.simapp import SimulatedApplication, note_transaction
from ledger import crypto, domains
from ledger.devchain import LocalConsortium
from ledger.model import Block, CommitCertificate, Transaction, sha256, vote_payload
from node.runtime.wire import FrameError, TransactionGossip, decode_frame, encode_frame

__all__ = [
    "CHAIN_ID",
    "CONFIG",
    "CONSORTIUM",
    "FLAG_LYING_TRANSPORT",
    "FLAG_RESIGN",
    "FLAG_TICK",
    "GENESIS",
    "MEMBERS",
    "NOW_MS",
    "SCRIPT_FRAMES_MAX",
    "ReplicaDriver",
    "certified_chain",
    "pack_script",
    "resign",
    "run_script",
    "transaction",
    "unpack_script",
]

MEMBERS = ("m0", "m1", "m2", "m3")
CONSORTIUM = LocalConsortium.create([(m, f"Member {m}") for m in MEMBERS], seed=b"sceau fuzz")
GENESIS = CONSORTIUM.genesis
CHAIN_ID = GENESIS.chain_id
CLIENT_KEY = crypto.key_from_seed(sha256(b"sceau fuzz client"))
NOW_MS = GENESIS.created_at_ms + 60_000
"""The replica's clock when a script starts; each tick adds a millisecond."""

CONFIG = ReplicaConfig(
    view_timeout_ticks=2,
    view_timeout_ticks_max=16,
    height_window=4,
    view_window=3,
    future_messages_per_sender_max=4,
    evidence_max=4,
    status_interval_ticks=3,
    retransmit_interval_ticks=2,
    own_messages_max=4,
    fetch_timeout_ticks=2,
)
"""Tiny timeouts and bounds, so that a script of a few frames can fill every buffer and
reach every timer; the logic is the same as with the defaults."""

SCRIPT_FRAMES_MAX = 12
"""Frames per script: enough for a whole height (pre-prepare, prepares, commits) or a view
change, few enough that one input stays fast."""

FLAG_RESIGN = 0b0000_0100
FLAG_TICK = 0b0000_1000
FLAG_LYING_TRANSPORT = 0b0001_0000
ACTIONS_PER_EVENT_MAX = 10_000
"""More actions than this from one event would be a replica looping: fail rather than hang."""


def transaction(nonce: int) -> Transaction:
    """A valid client transaction for the simulated application."""
    return note_transaction(CLIENT_KEY, CHAIN_ID, nonce)


@functools.cache
def certified_chain(length: int = 3) -> tuple[tuple[Block, CommitCertificate], ...]:
    """``length`` blocks of one transaction each, proposed by m0 in view 0, certified."""
    return simapp.certified_chain(GENESIS, CLIENT_KEY, CONSORTIUM.certify, length)


# --- the script format ------------------------------------------------------------------------


def pack_script(flags: int, frames: list[bytes]) -> bytes:
    """The replica-target input that replays ``frames`` from the start ``flags`` describes."""
    assert 0 <= flags <= 0xFF and len(frames) <= SCRIPT_FRAMES_MAX
    parts = [bytes([flags])]
    for frame in frames:
        assert len(frame) <= 0xFFFF, "a script frame is at most 64 KiB"
        parts.append(len(frame).to_bytes(2, "big") + frame)
    return b"".join(parts)


def unpack_script(data: bytes) -> tuple[int, list[bytes]]:
    """``(flags, frames)`` of any byte string: every input is some script, none is refused."""
    if not data:
        return 0, []
    flags, position, frames = data[0], 1, []
    while position < len(data) and len(frames) < SCRIPT_FRAMES_MAX:
        length = int.from_bytes(data[position : position + 2], "big")
        position += 2
        frames.append(data[position : position + length])
        position += length
    return flags, frames


# --- re-signing -------------------------------------------------------------------------------


def _sign_votes(
    tag: bytes, height: int, view: int, block_hash: bytes, votes: tuple[tuple[str, bytes], ...]
) -> tuple[tuple[str, bytes], ...]:
    """``votes`` with each member's signature made anew (strangers keep theirs)."""
    domain = crypto.Domain(tag, CHAIN_ID)
    payload = vote_payload(height, view, block_hash)
    keys = CONSORTIUM.keys
    return tuple(
        (member, crypto.sign(keys[member], domain, payload) if member in keys else signature)
        for member, signature in votes
    )


def _resign_prepared(certificate: PreparedCertificate | None) -> PreparedCertificate | None:
    if certificate is None:
        return None
    prepares = _sign_votes(
        domains.PREPARE,
        certificate.height,
        certificate.view,
        certificate.block_hash,
        certificate.prepares,
    )
    return certificate.model_copy(update={"prepares": prepares})


def _resign_commit(certificate: CommitCertificate | None) -> CommitCertificate | None:
    if certificate is None:
        return None
    signatures = _sign_votes(
        domains.COMMIT,
        certificate.height,
        certificate.view,
        certificate.block_hash,
        certificate.signatures,
    )
    return certificate.model_copy(update={"signatures": signatures})


def _resign_view_change(message: ViewChange) -> ViewChange:
    key = CONSORTIUM.keys.get(message.sender)
    prepared = _resign_prepared(message.prepared)
    if key is None:
        return message.model_copy(update={"prepared": prepared})
    return ViewChange.sign(
        key,
        CHAIN_ID,
        height=message.height,
        view=message.view,
        prepared=prepared,
        sender=message.sender,
        prepared_block=message.prepared_block,
    )


def _resign_pre_prepare(message: PrePrepare) -> PrePrepare:
    key = CONSORTIUM.keys.get(message.sender)
    if key is None:
        return message
    return PrePrepare.sign(
        key, CHAIN_ID, view=message.view, block=message.block, sender=message.sender
    )


def _resign_new_view(message: NewView) -> NewView:
    view_changes = tuple(_resign_view_change(change) for change in message.view_changes)
    pre_prepare = _resign_pre_prepare(message.pre_prepare)
    key = CONSORTIUM.keys.get(message.sender)
    if key is None:
        return message.model_copy(update={"view_changes": view_changes, "pre_prepare": pre_prepare})
    return NewView.sign(
        key,
        CHAIN_ID,
        height=message.height,
        view=message.view,
        view_changes=view_changes,
        pre_prepare=pre_prepare,
        sender=message.sender,
    )


def _resign_vote(message: Prepare | CommitVote) -> Prepare | CommitVote:
    key = CONSORTIUM.keys.get(message.sender)
    if key is None:
        return message
    return type(message).sign(
        key,
        CHAIN_ID,
        height=message.height,
        view=message.view,
        block_hash=message.block_hash,
        sender=message.sender,
    )


def _resign_status(message: Status) -> Status:
    return message.model_copy(update={"certificate": _resign_commit(message.certificate)})


def _resign_block_response(message: BlockResponse) -> BlockResponse:
    blocks = tuple((block, _resign_commit(certificate)) for block, certificate in message.blocks)
    return message.model_copy(update={"blocks": blocks})


_RESIGN: dict[type, Callable[[Any], Any]] = {
    Prepare: _resign_vote,
    CommitVote: _resign_vote,
    PrePrepare: _resign_pre_prepare,
    ViewChange: _resign_view_change,
    NewView: _resign_new_view,
    Status: _resign_status,
    BlockResponse: _resign_block_response,
}


def resign(message: Any) -> Any:
    """``message`` with every signature of a consortium member replaced by a valid one.

    The fuzzer mutates a field, this makes the message authentic again, and the replica's
    logic behind the signature checks gets tested: the position of an insider (any member
    may be byzantine), not only of an outsider who holds no key.
    """
    resigner = _RESIGN.get(type(message))
    return message if resigner is None else resigner(message)


# --- the driver -------------------------------------------------------------------------------


def _broken(what: str) -> None:
    raise AssertionError(what)


class ReplicaDriver:
    """One replica and its application, driven as the node drives them, checked as it goes.

    The driver is the executor's port (:class:`consensus.driver.ActionPort`): the replica's
    actions run through the node's one executor, and what the replica signs, enters and
    commits goes past the simulator's invariant checker, which fails the input at once.
    """

    def __init__(self, flags: int) -> None:
        committed = flags & 0b11
        self.member_id = MEMBERS[(flags >> 5) & 0b11]
        self.app = SimulatedApplication(GENESIS, chain=list(certified_chain()[:committed]))
        self.replica = Replica(
            member_id=self.member_id,
            key=CONSORTIUM.keys[self.member_id],
            chain_id=CHAIN_ID,
            application=self.app,
            config=CONFIG,
        )
        self.invariants = InvariantChecker(CHAIN_ID, report=_broken)
        self.now_ms = NOW_MS
        self.sent: list[Any] = []
        """Every message the replica sent (broadcast or to one peer), in order."""
        self.execute(self.replica.on_tick(self.now_ms))

    def receive(self, message: Any, *, lying_transport: bool) -> None:
        """Deliver a decoded frame as the daemon does: consensus message or mempool gossip."""
        if isinstance(message, TransactionGossip):
            for gossiped in message.transactions:
                self.app.submit(gossiped)
            self.execute(self.replica.on_transactions(message.transactions))
            return
        peer = message.sender
        if lying_transport:
            peer = "m1" if peer != "m1" else "m2"
        self.execute(self.replica.on_message(peer, message))

    def tick(self) -> None:
        self.now_ms += 1
        self.execute(self.replica.on_tick(self.now_ms))

    def execute(self, actions: list[Any]) -> None:
        """Run actions with the one executor (a CommitBlock's follow-up runs right after it)."""
        self.invariants.observe_view(self.member_id, self.replica.view)
        executed = 0

        def bounded() -> bool:
            nonlocal executed
            executed += 1
            assert executed <= ACTIONS_PER_EVENT_MAX, "the replica does not go quiet"
            return True

        execute_actions(self, actions, before_action=bounded)

    # --- the executor's port ------------------------------------------------------------------

    def persist_safety(self, record: SafetyRecord) -> None:
        pass  # nothing restarts: the record is never read back

    def send(self, to: str, message: Any) -> None:
        self._sent(message)

    def broadcast(self, message: Any) -> None:
        self._sent(message)

    def _sent(self, message: Any) -> None:
        # What the replica sends must be a valid frame for its peers.
        assert decode_frame(encode_frame(message)) == message
        self.invariants.observe_signed(self.member_id, message)
        self.sent.append(message)

    def fetch_blocks(self, peer: str, request: BlockRequest) -> None:
        pass

    def commit_block(self, block: Block, certificate: CommitCertificate) -> list[Action]:
        """Append the block as the node's store would; returns the replica's follow-up."""
        app = self.app
        self.invariants.check_commit(
            self.member_id,
            block,
            certificate,
            members=app.members(),
            chain_length=app.tip().height,
            is_committed=lambda tx_id: bool(app.state.transaction_location(tx_id)),
        )
        assert app.validate(block) is None, "committed an invalid block"
        app.append(block, certificate)
        return self.replica.on_block_committed(block.height)

    def report_rejected_proposal(self, report: ReportRejectedProposal) -> None:
        pass

    def report_evidence(self, report: ReportEvidence) -> None:
        pass

    def check_bounds(self) -> None:
        """Every buffer a peer can fill stays within its configured limit."""
        replica = self.replica
        members = set(MEMBERS) | {member.id for member in replica.members}
        for queue in replica._future.values():
            assert len(queue) <= CONFIG.future_messages_per_sender_max, "future buffer overflow"
        assert set(replica._future) <= members, "future buffers for strangers"
        assert len(replica.evidence) <= CONFIG.evidence_max, "evidence overflow"
        assert len(replica._own_messages) <= CONFIG.own_messages_max, "own messages overflow"
        assert len(replica._fetched) <= BLOCKS_PER_RESPONSE_MAX + 1, "fetched blocks overflow"
        assert set(replica._height_claims) <= members, "height claims from strangers"
        assert set(replica._status_answered) <= members, "status answers to strangers"


def run_script(data: bytes) -> ReplicaDriver:
    """Replay a script on a fresh replica; returns the driver for inspection.

    Raises whatever the replica raises (a bug), or AssertionError for a broken invariant.
    """
    flags, frames = unpack_script(data)
    driver = ReplicaDriver(flags)
    for frame in frames:
        try:
            message = decode_frame(frame)
        except FrameError:
            continue
        if flags & FLAG_RESIGN:
            message = resign(message)
        driver.receive(message, lying_transport=bool(flags & FLAG_LYING_TRANSPORT))
        if flags & FLAG_TICK:
            driver.tick()
    driver.check_bounds()
    return driver
