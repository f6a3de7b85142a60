"""A hostile member: the attacks of a byzantine member's key on the other members of a devnet.

Usage::

    python benchmarks/hostile.py --devnet DIR --member ID --attack oversized --seconds 20
    python benchmarks/hostile.py --devnet DIR --member ID --attack mixed --seconds 30 --frames 500

Prints one JSON document on stdout (what was sent, the transport's counters), progress on
stderr. The member's own node must be stopped first: the attacker takes its place, with its
key (``DIR/<ID>/node.pem``) and its peer port, and connects to the other members through the
real transport (:class:`node.runtime.transport.PeerTransport`), so every frame arrives
authenticated as that member: the attack of issue 11, section 1. Used as a module by
tests/test_attack_member.py and by the byzantine round of benchmarks/faults.py.

Attacks (:data:`ATTACKS`), each bounded in frames and in time:

``oversized``
    PrePrepares of ~15.8 MiB holding :data:`JUNK_TRANSACTIONS` junk transactions each
    (well-formed maps, bad signatures), with a junk signature: before the fix each was decoded
    whole (the victim went from 252 to 1,437 MiB on 10 frames).
``invalid-proposals``
    Distinct, correctly signed proposals for the current height and view, each a block of valid
    signed transactions (anchors by the member itself) with a wrong state root: a replica must
    execute the block to find out. Sent whether or not the member is the primary of the view.
``junk-votes``
    Correctly framed and signed Prepare and Commit votes and ViewChanges for far and future
    heights and views, each for a different block hash.
``mixed``
    The three in turn (votes, a proposal, an oversized proposal).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from consensus.messages import CommitVote, Prepare, PrePrepare, ViewChange
from ledger import crypto, encoding, merkle
from ledger.model import (
    Block,
    BlockHeader,
    Genesis,
    Member,
    Transaction,
    members_hash,
)

ATTACKS = ("oversized", "invalid-proposals", "junk-votes", "mixed")
JUNK_TRANSACTIONS = 75_000
"""Transactions in an oversized proposal: 220 bytes each, 15.7 MiB in all (as in the issue)."""
PROPOSAL_TRANSACTIONS = 200
"""Valid transactions in each invalid proposal: executing them is the victim's cost."""
FRAMES_MAX = 100_000
"""No attack sends more frames than this, whatever ``--frames`` says."""
SECONDS_MAX = 3_600.0
CONNECT_S_MAX = 20.0
DRAIN_S_MAX = 30.0
"""How long one large frame may wait in the transport's queue before the next is queued."""
MIXED_DRAIN_S_MAX = 1.0
SMALL_FRAMES_PER_S = 2_000.0
"""Pace of the small frames (votes): fast, but the attacker's own loop must stay responsive."""
STATUS_POLL_S = 0.5


def log(message: str) -> None:
    print(f"[hostile] {message}", file=sys.stderr, flush=True)


# --- frames ------------------------------------------------------------------------------------


def junk_transaction_documents(chain_id: bytes, count: int) -> list[dict[str, Any]]:
    """``count`` distinct, well-formed transaction maps with junk signatures."""
    signer = secrets.token_bytes(32)
    return [
        {
            "action": "anchor",
            "args": {},
            "chain_id": chain_id,
            "contract": "deeds",
            "expiry_height": 60_000,
            "nonce": index,
            "signature": bytes(64),
            "signer": signer,
        }
        for index in range(count)
    ]


def oversized_pre_prepare(
    chain_id: bytes,
    *,
    sender: str,
    height: int,
    view: int,
    transactions: int = JUNK_TRANSACTIONS,
) -> bytes:
    """The canonical bytes of an unsigned PrePrepare holding ``transactions`` junk ones."""
    documents = junk_transaction_documents(chain_id, transactions)
    header = {
        "chain_id": chain_id,
        "height": height,
        "members_hash": secrets.token_bytes(32),
        "prev_hash": secrets.token_bytes(32),
        "proposer": sender,
        "state_root": secrets.token_bytes(32),
        "timestamp_ms": time.time_ns() // 1_000_000,
        "tx_count": transactions,
        "tx_root": secrets.token_bytes(32),
        "view": view,
    }
    frame = {
        "kind": "pre_prepare",
        "height": height,
        "view": view,
        "block": {"header": header, "transactions": documents},
        "sender": sender,
        "signature": secrets.token_bytes(64),
    }
    return encoding.pack(frame)


def signed_transactions(
    key: crypto.PrivateKey, chain_id: bytes, *, issuer: str, count: int, expiry_height: int
) -> tuple[Transaction, ...]:
    """``count`` valid anchors by ``issuer`` (a member's node key holds every role)."""
    tag = secrets.token_hex(4).upper()
    return tuple(
        Transaction.create(
            key,
            chain_id=chain_id,
            contract="deeds",
            action="anchor",
            args={
                "issuer": issuer,
                "reference": f"HOSTILE-{tag}-{index:06d}",
                "kind": "deliberation",
                "digest": secrets.token_bytes(32),
                "act_date": "2026-12-04",
                "title": f"Acte hostile n°{index}",
            },
            nonce=secrets.randbits(63),
            expiry_height=expiry_height,
        )
        for index in range(count)
    )


def invalid_proposal(
    key: crypto.PrivateKey,
    chain_id: bytes,
    *,
    sender: str,
    members: tuple[Member, ...],
    height: int,
    view: int,
    prev_hash: bytes,
    transactions: tuple[Transaction, ...],
) -> bytes:
    """A signed PrePrepare of a well-formed block whose state root is wrong (a fresh random
    one each call, so every proposal is distinct): only its execution tells."""
    header = BlockHeader(
        chain_id=chain_id,
        height=height,
        prev_hash=prev_hash,
        timestamp_ms=time.time_ns() // 1_000_000,
        proposer=sender,
        view=view,
        tx_count=len(transactions),
        tx_root=merkle.root([transaction.encoded for transaction in transactions]),
        state_root=secrets.token_bytes(32),
        members_hash=members_hash(members),
    )
    block = Block(header=header, transactions=transactions)
    return PrePrepare.sign(key, chain_id, view=view, block=block, sender=sender).to_bytes()


def junk_vote(
    key: crypto.PrivateKey, chain_id: bytes, *, sender: str, height: int, view: int, index: int
) -> bytes:
    """A signed Prepare, CommitVote or ViewChange (in turn) for ``(height, view)``."""
    block_hash = secrets.token_bytes(32)
    if index % 3 == 0:
        vote: Any = Prepare.sign(
            key, chain_id, height=height, view=view, block_hash=block_hash, sender=sender
        )
    elif index % 3 == 1:
        vote = CommitVote.sign(
            key, chain_id, height=height, view=view, block_hash=block_hash, sender=sender
        )
    else:
        vote = ViewChange.sign(
            key, chain_id, height=height, view=view, prepared=None, sender=sender
        )
    return vote.to_bytes()


# --- the hostile member ----------------------------------------------------------------------


@dataclass(slots=True)
class AttackReport:
    attack: str
    member_id: str
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_by_kind: dict[str, int] = field(default_factory=dict)
    connected: list[str] = field(default_factory=list)
    connect_s: float | None = None
    duration_s: float = 0.0
    transport_counters: dict[str, int] = field(default_factory=dict)

    def to_document(self) -> dict[str, Any]:
        document = {name: getattr(self, name) for name in self.__slots__}
        document["duration_s"] = round(self.duration_s, 2)
        if self.connect_s is not None:
            document["connect_s"] = round(self.connect_s, 2)
        return document


@dataclass(frozen=True, slots=True, kw_only=True)
class Impersonation:
    """What the attacker takes from the devnet directory: the member's key and place."""

    member_id: str
    key: crypto.PrivateKey
    chain_id: bytes
    members: tuple[Member, ...]
    peer_port: int
    api_urls: tuple[str, ...]
    """The other members' APIs (public: where the attacker reads the height and view)."""

    @classmethod
    def from_devnet(cls, directory: Path, member_id: str) -> Impersonation:
        from node.runtime.config import load_config

        genesis = Genesis.model_validate_json((directory / "genesis.json").read_text())
        member = next((m for m in genesis.members if m.id == member_id), None)
        if member is None:
            raise SystemExit(f"{member_id!r} is not a member of the devnet in {directory}")
        api_urls = []
        for other in genesis.members:
            if other.id != member_id:
                config = load_config(directory / other.id / "node.toml", environment={})
                api_urls.append(f"http://{config.api_listen}")
        return cls(
            member_id=member_id,
            key=crypto.load_private_key(directory / member_id / "node.pem"),
            chain_id=genesis.chain_id,
            members=genesis.members,
            peer_port=int(member.endpoint.rpartition(":")[2]),
            api_urls=tuple(api_urls),
        )


class HostileMember:
    """A member's key and place on the network, sending attack frames to the others."""

    def __init__(self, who: Impersonation) -> None:
        from node.runtime.transport import PeerTransport, TransportConfig

        self.who = who
        self.received: dict[str, int] = {}
        self.tip: tuple[int, bytes, int] = (0, who.chain_id, 0)
        """(height, block hash, view) of the chain, as the victims' APIs last said."""
        self.transport = PeerTransport(
            member_id=who.member_id,
            key=who.key,
            chain_id=who.chain_id,
            members=lambda: who.members,
            on_frame=self._on_frame,
            config=TransportConfig(listen_host="127.0.0.1", listen_port=who.peer_port),
        )
        self.others = [m.id for m in who.members if m.id != who.member_id]
        self.targets = list(self.others)
        """The members that receive the attack frames (all the others by default)."""

    def _on_frame(self, sender: str, payload: bytes) -> None:
        self.received[sender] = self.received.get(sender, 0) + 1

    async def connect(self, timeout_s: float) -> float | None:
        """Start the transport; seconds until every other member is connected (or None)."""
        started = time.monotonic()
        await self.transport.start()
        while time.monotonic() - started < timeout_s:
            if len(self.transport.connected_peers()) == len(self.others):
                return time.monotonic() - started
            await asyncio.sleep(0.1)
        return None

    async def follow_tip(self, session: Any) -> None:
        """Poll the victims' status until cancelled: the attack aims at the current height."""
        while True:
            for url in self.who.api_urls:
                with contextlib.suppress(Exception):
                    async with session.get(url + "/v1/status") as response:
                        status = await response.json()
                    self.tip = (
                        status["height"],
                        bytes.fromhex(status["block_hash"]),
                        status["view"],
                    )
                    break
            await asyncio.sleep(STATUS_POLL_S)

    async def drained(self, deadline: float) -> None:
        while time.monotonic() < deadline and any(
            self.transport.queued_frames(member_id) for member_id in self.targets
        ):
            await asyncio.sleep(0.01)

    async def close(self) -> None:
        await self.transport.close()


FrameMaker = Callable[[int], tuple[str, bytes]]


def frame_makers(hostile: HostileMember, attack: str) -> list[FrameMaker]:
    """Functions of the frame index giving (kind, payload) for ``attack``."""
    who = hostile.who
    pool: list[tuple[Transaction, ...]] = []
    if attack in ("invalid-proposals", "mixed"):
        # Signed before the attack starts: the proposals go out at once, while the attacker's
        # member may still be the primary of the view.
        pool.append(
            signed_transactions(
                who.key,
                who.chain_id,
                issuer=who.member_id,
                count=PROPOSAL_TRANSACTIONS,
                expiry_height=10_000_000,
            )
        )

    built: dict[tuple[int, int], bytes] = {}

    def oversized(index: int) -> tuple[str, bytes]:
        # Built once per height and view (0.7 s each): the victims pay per frame received.
        height, _, view = hostile.tip
        target = (height + 1 + index % 2, view)
        if target not in built:
            if len(built) >= 2:
                built.clear()
            built[target] = oversized_pre_prepare(
                who.chain_id, sender=who.member_id, height=target[0], view=target[1]
            )
        return "oversized", built[target]

    def invalid(index: int) -> tuple[str, bytes]:
        height, tip_hash, view = hostile.tip
        frame = invalid_proposal(
            who.key,
            who.chain_id,
            sender=who.member_id,
            members=who.members,
            height=height + 1,
            view=view,
            prev_hash=tip_hash,
            transactions=pool[0],
        )
        return "invalid_proposal", frame

    def votes(index: int) -> tuple[str, bytes]:
        height, _, view = hostile.tip
        far = index % 2 == 0
        frame = junk_vote(
            who.key,
            who.chain_id,
            sender=who.member_id,
            height=height + (1_000 + index if far else 1 + index % 4),
            view=view + (10_000 + index if far else index % 8),
            index=index,
        )
        return "junk_vote", frame

    makers = {"oversized": [oversized], "invalid-proposals": [invalid], "junk-votes": [votes]}
    return makers.get(attack, [votes, invalid, oversized])


async def run_attack(
    directory: Path,
    member_id: str,
    attack: str,
    *,
    seconds: float,
    frames: int | None = None,
    frames_per_s: float | None = None,
    targets: Sequence[str] | None = None,
    stop: threading.Event | None = None,
) -> AttackReport:
    """Impersonate ``member_id`` of the devnet in ``directory`` and send ``attack`` frames to
    every other member (or to ``targets``) for ``seconds`` or ``frames`` frames (each sent to
    every target), whichever ends first (or until ``stop`` is set). Its own node must be
    stopped."""
    import aiohttp

    assert attack in ATTACKS, attack
    seconds = min(seconds, SECONDS_MAX)
    frames = min(frames if frames is not None else FRAMES_MAX, FRAMES_MAX)
    report = AttackReport(attack=attack, member_id=member_id)
    hostile = HostileMember(Impersonation.from_devnet(directory, member_id))
    if targets is not None:
        assert set(targets) <= set(hostile.others), targets
        hostile.targets = list(targets)
    started = time.monotonic()
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        makers = frame_makers(hostile, attack)
        follower = asyncio.create_task(hostile.follow_tip(session))
        try:
            report.connect_s = await hostile.connect(CONNECT_S_MAX)
            report.connected = hostile.transport.connected_peers()
            log(f"{member_id} connected to {report.connected} ({report.connect_s} s)")
            await _send_frames(hostile, makers, report, seconds, frames, frames_per_s, stop)
        finally:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            report.transport_counters = dict(hostile.transport.counters)
            await hostile.close()
    report.duration_s = time.monotonic() - started
    return report


async def _send_frames(
    hostile: HostileMember,
    makers: list[FrameMaker],
    report: AttackReport,
    seconds: float,
    frames: int,
    frames_per_s: float | None,
    stop: threading.Event | None,
) -> None:
    deadline = time.monotonic() + seconds
    period_s = 1 / frames_per_s if frames_per_s else 0.0
    for index in range(frames):
        if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
            break
        kind, payload = makers[index % len(makers)](index // len(makers))
        for member_id in hostile.targets:
            hostile.transport.send(member_id, payload)
        report.frames_sent += 1
        report.bytes_sent += len(payload) * len(hostile.targets)
        report.frames_by_kind[kind] = report.frames_by_kind.get(kind, 0) + 1
        if len(payload) > 64 * 1024:
            # Large frames wait for the queue to drain: the transport would drop the oldest
            # ones past its queue's byte budget, and they must reach the victims. In a mixed
            # attack, not for long: the other kinds must go out too.
            drain_s = DRAIN_S_MAX if len(makers) == 1 else MIXED_DRAIN_S_MAX
            await hostile.drained(min(deadline, time.monotonic() + drain_s))
        if period_s:
            await asyncio.sleep(period_s)
        elif index % 64 == 63:
            await asyncio.sleep(64 / SMALL_FRAMES_PER_S)
    if stop is None or not stop.is_set():
        await hostile.drained(min(deadline + 5, time.monotonic() + DRAIN_S_MAX))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devnet", type=Path, required=True, help="the devnet's directory")
    parser.add_argument("--member", required=True, help="the member to impersonate (stopped)")
    parser.add_argument("--attack", choices=ATTACKS, required=True)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--frames", type=int, default=None, help="at most this many frames")
    parser.add_argument("--rate", type=float, default=None, help="frames per second")
    parser.add_argument(
        "--targets",
        type=lambda text: text.split(","),
        default=None,
        help="comma-separated member ids to attack (default: every other member)",
    )
    arguments = parser.parse_args(argv)
    if arguments.seconds <= 0 or (arguments.frames is not None and arguments.frames < 1):
        parser.error("--seconds and --frames must be positive")
    report = asyncio.run(
        run_attack(
            arguments.devnet,
            arguments.member,
            arguments.attack,
            seconds=arguments.seconds,
            frames=arguments.frames,
            frames_per_s=arguments.rate,
            targets=arguments.targets,
        )
    )
    print(json.dumps(report.to_document()))
    log(f"{report.frames_sent} frames, {report.bytes_sent} bytes in {report.duration_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
