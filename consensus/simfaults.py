"""The simulator's byzantine members and its outsider: what they send besides their replica.

Part of :mod:`consensus.simulator` (see its theory of operation). A byzantine process runs a
real replica (whose actions the simulator executes like everyone's) and, after each of its
ticks, does what its behaviour adds; a liar also answers block requests itself. The outsider
is a process that holds no member key and votes for every proposal it hears of. Every random
choice is drawn from the run's one generator, in the order the seed fixes.
"""

from __future__ import annotations

from typing import Any

from consensus.messages import (
    BlockRequest,
    BlockResponse,
    CommitVote,
    Prepare,
    PrePrepare,
    Status,
    encode_message,
)
from consensus.simnet import Randomness, SimulatedNetwork, SimulatedProcess
from ledger import crypto

__all__ = ["BEHAVIOURS", "OUTSIDER", "Adversary"]

OUTSIDER = "outsider"
BEHAVIOURS = ("equivocator", "conflicting_voter", "twins", "replayer", "flooder", "liar")
RECENT_PROPOSALS_VOTED_MAX = 4
"""Proposals (the latest by height and view) the outsider votes for each time it acts."""


class Adversary:
    """The misbehaviours of the byzantine processes and of the outsider."""

    def __init__(
        self,
        *,
        rng: Randomness,
        network: SimulatedNetwork,
        chain_id: bytes,
        outsider_key: crypto.PrivateKey,
    ) -> None:
        self.rng = rng
        self.network = network
        self.chain_id = chain_id
        self.outsider_key = outsider_key
        self._equivocations: set[tuple[str, int, int]] = set()
        self._proposals_seen: dict[tuple[int, int], bytes] = {}
        """(height, view) -> block hash of every proposal a correct process sent."""

    def note_proposal(self, message: PrePrepare) -> None:
        """A correct process proposed: the outsider will vote for it."""
        self._proposals_seen[(message.height, message.view)] = message.block.block_hash

    def misbehave(self, process: SimulatedProcess) -> None:
        """What ``process``'s behaviour does after one of its ticks."""
        behaviour = process.behaviour
        if behaviour == "replayer" and process.sent_history and self.rng.random() < 0.3:
            member_id, data = self.rng.choice(process.sent_history)
            self.network.transmit(process, member_id, data)
        elif behaviour == "flooder" and self.rng.random() < 0.5:
            self._flood(process)
        elif behaviour == "conflicting_voter" and self.rng.random() < 0.3:
            self._conflicting_votes(process)
        elif behaviour == "equivocator":
            self._equivocate(process)

    def lie(self, process: SimulatedProcess, sender: str, request: BlockRequest) -> None:
        """Answer a block request with real blocks under forged certificates."""
        forged = []
        for height in range(request.from_height, request.to_height + 1):
            if height > len(process.chain):
                break
            block, certificate = process.chain[height - 1]
            forged.append(
                (
                    block,
                    certificate.model_copy(
                        update={"signatures": ((process.member_id, self.rng.randbytes(64)),)}
                    ),
                )
            )
        response = BlockResponse(blocks=tuple(forged), sender=process.member_id)
        self.network.transmit(process, sender, encode_message(response))

    def outsider_votes(self) -> None:
        """The outsider signs prepare and commit votes for the latest proposals seen."""
        network = self.network
        recent = sorted(self._proposals_seen.items())[-RECENT_PROPOSALS_VOTED_MAX:]
        for (height, view), block_hash in recent:
            for kind in (Prepare, CommitVote):
                vote = kind.sign(
                    self.outsider_key,
                    self.chain_id,
                    height=height,
                    view=view,
                    block_hash=block_hash,
                    sender=OUTSIDER,
                )
                data = encode_message(vote)
                for member_id in network.member_ids():
                    for process in network.recipients(member_id):
                        delay = self.rng.randint(1, network.config.delay_ms_max)
                        network.queue.schedule(
                            network.queue.now_ms + delay, "deliver", (process, OUTSIDER, data)
                        )

    def _flood(self, process: SimulatedProcess) -> None:
        replica = process.replica
        junk: list[Any] = [
            Prepare.sign(
                process.key,
                self.chain_id,
                height=replica.height + 10_000,
                view=0,
                block_hash=bytes(32),
                sender=process.member_id,
            ),
            Prepare.sign(
                process.key,
                self.chain_id,
                height=replica.height,
                view=replica.view + 1_000_000,
                block_hash=bytes(32),
                sender=process.member_id,
            ),
            CommitVote(
                height=replica.height,
                view=replica.view,
                block_hash=bytes(32),
                sender=process.member_id,
                signature=bytes(64),
            ),
            Status(height=replica.height + 50, certificate=None, sender=process.member_id),
        ]
        for member in self.network.other_members(process):
            for message in junk:
                self.network.transmit(process, member, encode_message(message))
            self.network.transmit(process, member, self.rng.randbytes(self.rng.randint(0, 64)))

    def _conflicting_votes(self, process: SimulatedProcess) -> None:
        replica = process.replica
        for kind in (Prepare, CommitVote):
            message = kind.sign(
                process.key,
                self.chain_id,
                height=replica.height,
                view=replica.view,
                block_hash=self.rng.randbytes(32),
                sender=process.member_id,
            )
            self.network.transmit(
                process,
                self.rng.choice(self.network.other_members(process)),
                encode_message(message),
            )
        outsider_vote = CommitVote.sign(
            self.outsider_key,
            self.chain_id,
            height=replica.height,
            view=replica.view,
            block_hash=self.rng.randbytes(32),
            sender=process.member_id,
        )
        self.network.transmit(
            process,
            self.rng.choice(self.network.other_members(process)),
            encode_message(outsider_vote),
        )

    def _equivocate(self, process: SimulatedProcess) -> None:
        """As primary, propose a second, different block to half of the others."""
        replica = process.replica
        proposal = replica._state.proposals.get(replica.view)
        if proposal is None or proposal.sender != process.member_id:
            return
        marker = (process.name, replica.height, replica.view)
        if marker in self._equivocations:
            return
        self._equivocations.add(marker)
        other_block = process.app.propose(
            height=replica.height,
            view=replica.view,
            timestamp_ms=proposal.block.header.timestamp_ms + 1,
            proposer=process.member_id,
        )
        second = PrePrepare.sign(
            process.key,
            self.chain_id,
            view=replica.view,
            block=other_block,
            sender=process.member_id,
        )
        others = self.network.other_members(process)
        for member in others[len(others) // 2 :]:
            self.network.transmit(process, member, encode_message(second))
            for kind in (Prepare, CommitVote):
                vote = kind.sign(
                    process.key,
                    self.chain_id,
                    height=replica.height,
                    view=replica.view,
                    block_hash=other_block.block_hash,
                    sender=process.member_id,
                )
                self.network.transmit(process, member, encode_message(vote))
