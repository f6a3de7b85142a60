"""Catch-up: learning that the others are ahead, fetching certified blocks, serving them.

Theory of operation
-------------------
A replica learns that it is behind from a ``Status`` whose commit certificate verifies
against its member set (one is enough: the certificate is the proof), from a commit quorum
on a block it never received, or from f+1 members claiming heights above its own (one of
them is correct). It then sets its *sync target* and asks one peer at a time for the blocks
from its height up (``BlockRequest``, at most
:data:`~consensus.messages.BLOCKS_PER_RESPONSE_MAX`); a peer that does not answer within
``fetch_timeout_ticks`` is replaced by the next member.

Each fetched block is committed only once its certificate verifies against the member set
in force at its height and the application validates it; a bad one drops everything else
that peer sent. While the sync target is at or above its height, the replica's view timer
is held (:attr:`CatchUp.behind`): the view has not failed, the replica is late. It keeps
voting meanwhile: catching up is not a mode that excludes the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from consensus.actions import FetchBlocks, Send
from consensus.drops import DropReason
from consensus.messages import BLOCKS_PER_RESPONSE_MAX, BlockRequest, BlockResponse, Status
from consensus.modes import Mode
from ledger.model import Block, CommitCertificate, InvalidCertificateError

if TYPE_CHECKING:
    from consensus.replica import Replica

__all__ = ["CatchUp", "FetchedBlock", "PendingFetch"]


@dataclass(slots=True, kw_only=True)
class PendingFetch:
    """The block request in flight: whom it went to, and the ticks it has left to answer."""

    peer: str
    ticks_left: int


class FetchedBlock(NamedTuple):
    """A block received from ``peer`` for a height above the tip, not yet committed."""

    block: Block
    certificate: CommitCertificate
    peer: str


class CatchUp:
    """The catch-up of ``replica``: its sync target, the claims heard, the blocks fetched."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.sync_target = 0
        """The highest height known to be committed by a quorum (0: none known)."""
        self.height_claims: dict[str, int] = {}
        """Per member, the highest height it implied it committed (at or above ours)."""
        self.fetched: dict[int, FetchedBlock] = {}
        self.pending: PendingFetch | None = None
        self.status_answered: dict[str, int] = {}
        """Per peer, the tick this replica last sent it its Status unasked."""

    @property
    def behind(self) -> bool:
        """Whether a quorum is known to have committed the height in progress already."""
        return self.sync_target >= self.replica.height

    def begin_height(self) -> None:
        """Forget what the new height made stale (claims and blocks at or below the tip)."""
        height = self.replica.height
        self.height_claims = {
            sender: claimed for sender, claimed in self.height_claims.items() if claimed >= height
        }
        self.fetched = {h: entry for h, entry in self.fetched.items() if h >= height}

    # --- status and claims --------------------------------------------------------------------

    def status(self) -> Status:
        replica = self.replica
        tip = replica._application.tip()
        committed = replica._application.committed_block(tip.height) if tip.height else None
        return Status(
            height=tip.height,
            certificate=committed[1] if committed else None,
            sender=replica.member_id,
        )

    def answer_status(self, peer: str) -> None:
        """Tell a lagging peer our tip, at most once per status interval."""
        replica = self.replica
        last = self.status_answered.get(peer)
        if last is not None and replica.ticks - last < replica.config.status_interval_ticks:
            return
        self.status_answered[peer] = replica.ticks
        replica._out.append(Send(to=peer, message=self.status()))

    def note_claim(self, sender: str, height: int) -> None:
        """A peer implies it has committed ``height``; f+1 such peers are worth believing."""
        replica = self.replica
        if height < replica.height:
            return
        self.height_claims[sender] = max(self.height_claims.get(sender, 0), height)
        claims = sorted(self.height_claims.values(), reverse=True)
        if len(claims) >= replica.weak_quorum():
            target = claims[replica.weak_quorum() - 1]
            if target > self.sync_target:
                self.sync_target = target
                self.request_fetch(sender)

    def certificate_is_valid(self, certificate: CommitCertificate | None) -> bool:
        if certificate is None:
            return False
        try:
            certificate.verify(self.replica.chain_id, self.replica.members)
        except InvalidCertificateError:
            return False
        return True

    def on_status(self, sender: str, message: Status) -> None:
        replica = self.replica
        if message.height + 1 < replica.height:
            self.answer_status(sender)
            return
        if message.height < replica.height:
            return
        certificate = message.certificate
        if (
            certificate is not None
            and certificate.height == message.height
            and self.certificate_is_valid(certificate)
        ):
            if message.height == replica.height and self._commit_certified(certificate):
                return
            if message.height > self.sync_target:
                self.sync_target = message.height
                self.request_fetch(sender)
            return
        self.note_claim(sender, message.height)

    def _commit_certified(self, certificate: CommitCertificate) -> bool:
        """Commit the block of a verified certificate for this height if this replica holds
        it (typically as its own prepared block); True if it did.

        The commit votes of a view may reach only one member (a byzantine one, say, that
        then serves forged certificates): the others are prepared on the block but never see
        the certificate form. The certificate in that member's status finishes the height.
        """
        replica = self.replica
        block = replica._state.blocks.get(certificate.block_hash)
        if block is None or replica.mode is Mode.COMMITTING:
            return False
        if replica._normal.check_block(block, certificate.view, fresh=False) is not None:
            replica._drop(DropReason.CERTIFIED_BLOCK_INVALID)
            return False
        replica._commit(block, certificate)
        return True

    # --- fetching -----------------------------------------------------------------------------

    def fetch_decided_block(self, voters: list[str]) -> None:
        """A quorum committed a block at this height that this replica never received:
        fetch it, from one of its voters first."""
        replica = self.replica
        self.sync_target = max(self.sync_target, replica.height)
        self.request_fetch(next((m for m in voters if m != replica.member_id), None))

    def request_fetch(self, peer: str | None = None) -> None:
        replica = self.replica
        if self.pending is not None or replica.mode is Mode.COMMITTING:
            return
        first = replica.height
        while first in self.fetched:
            first += 1
        last = min(self.sync_target, first + BLOCKS_PER_RESPONSE_MAX - 1)
        if first > last:
            return
        if peer is None or peer not in replica._public_keys or peer == replica.member_id:
            peer = self._next_peer(None)
        self.pending = PendingFetch(peer=peer, ticks_left=replica.config.fetch_timeout_ticks)
        request = BlockRequest(from_height=first, to_height=last, sender=replica.member_id)
        replica._out.append(FetchBlocks(peer=peer, request=request))

    def _next_peer(self, after: str | None) -> str:
        replica = self.replica
        others = [member.id for member in replica.members if member.id != replica.member_id]
        if after not in others:
            return others[replica.ticks % len(others)]
        return others[(others.index(after) + 1) % len(others)]

    def tick(self) -> None:
        """One tick of the request in flight: at its timeout, ask the next member."""
        pending = self.pending
        if pending is None:
            return
        if pending.ticks_left > 1:
            pending.ticks_left -= 1
            return
        self.pending = None
        self.request_fetch(self._next_peer(pending.peer))

    def on_block_request(self, sender: str, message: BlockRequest) -> None:
        replica = self.replica
        blocks: list[tuple[Block, CommitCertificate]] = []
        size = 0
        last = min(message.to_height, replica._application.tip().height)
        for height in range(message.from_height, last + 1):
            committed = replica._application.committed_block(height)
            if committed is None:
                break
            size += len(committed[0].to_bytes())
            if blocks and size > replica.config.response_bytes_max:
                break
            blocks.append(committed)
        replica._out.append(
            Send(to=sender, message=BlockResponse(blocks=tuple(blocks), sender=replica.member_id))
        )

    def on_block_response(self, sender: str, message: BlockResponse) -> None:
        replica = self.replica
        for block, certificate in message.blocks:
            if (
                replica.height <= block.height <= replica.height + BLOCKS_PER_RESPONSE_MAX
                and block.height not in self.fetched
            ):
                self.fetched[block.height] = FetchedBlock(block, certificate, sender)
        height_before = replica.height
        bad_before = replica.dropped[DropReason.BAD_FETCHED_BLOCK]
        self.process_fetched()
        progressed = replica.mode is Mode.COMMITTING or replica.height > height_before
        if not progressed and replica.dropped[DropReason.BAD_FETCHED_BLOCK] == bad_before:
            # An answer without the block: the pending fetch times out and moves to the next
            # peer (asking at once would bounce requests around the members without pause
            # while no correct peer has committed the block yet). A forged answer, or one
            # that moved the tip, moves on at once.
            replica._drop(DropReason.BLOCK_RESPONSE_WITHOUT_PROGRESS)
            return
        if self.pending is not None and self.pending.peer == sender:
            self.pending = None
        if replica.mode is not Mode.COMMITTING:
            self.request_fetch(self._next_peer(sender))

    def process_fetched(self) -> None:
        """Commit the fetched block of the height in progress, if there is one and it holds."""
        replica = self.replica
        if replica.mode is Mode.COMMITTING:
            return
        entry = self.fetched.pop(replica.height, None)
        if entry is None:
            return
        problem = self._fetched_block_problem(entry.block, entry.certificate)
        if problem is not None:
            replica._drop(DropReason.BAD_FETCHED_BLOCK)
            self.fetched = {h: e for h, e in self.fetched.items() if e.peer != entry.peer}
            return
        replica._state.blocks[entry.block.block_hash] = entry.block
        replica._commit(entry.block, entry.certificate)

    def _fetched_block_problem(self, block: Block, certificate: CommitCertificate) -> str | None:
        if certificate.height != block.height or certificate.block_hash != block.block_hash:
            return "the certificate is for another block"
        if not self.certificate_is_valid(certificate):
            return "the certificate does not verify"
        return self.replica._normal.check_block(block, certificate.view, fresh=False)
