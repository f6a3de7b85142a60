"""The simulator's world: its processes, its discrete-event queue and its hostile network.

Part of :mod:`consensus.simulator` (see its theory of operation). Nothing here draws a random
number of its own: the one seeded generator of a run is passed in, and every call to it keeps
the order the run's seed fixes (a seed replays the same trace).

The network carries messages as canonical bytes (decoded on arrival, as over a socket). In
the chaos phase it delays, drops, duplicates and reorders them, cuts partitions, and — with
``withhold_commit_votes`` — holds back the commit votes of every third height from all but one
member; once the run is stabilizing it only delays them.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from consensus.messages import BlockResponse, CommitVote, Status, decode_message, encode_message
from consensus.replica import Replica
from consensus.safety import SafetyRecord
from consensus.simapp import SimulatedApplication
from ledger import crypto, encoding
from ledger.model import CommitCertificate, ModelDecodeError

if TYPE_CHECKING:
    from consensus.simulator import SimulationConfig

__all__ = [
    "DECODED_MESSAGES_MAX",
    "EventQueue",
    "Randomness",
    "SimulatedNetwork",
    "SimulatedProcess",
]

DECODED_MESSAGES_MAX = 2_048
"""Decoded messages a run remembers by their bytes (see :meth:`SimulatedNetwork.decode`)."""
SENT_HISTORY_MAX = 512
"""Messages a process remembers having sent (a replayer picks old ones from there); when full,
the older half is forgotten."""


class Randomness(Protocol):
    """The calls the simulator makes on its seeded generator (a ``random.Random``)."""

    def random(self) -> float: ...

    def randint(self, a: int, b: int) -> int: ...

    def choice(self, seq: Sequence[Any]) -> Any: ...

    def randbytes(self, n: int) -> bytes: ...

    def shuffle(self, x: list[Any]) -> None: ...

    def expovariate(self, lambd: float) -> float: ...


@dataclass(slots=True)
class SimulatedProcess:
    """One simulated process (a member, or one of a pair of twins).

    ``chain`` and ``safety`` are its durable state (they survive a crash); ``app`` and
    ``replica`` are rebuilt from them at every start.
    """

    name: str
    member_id: str
    key: crypto.PrivateKey
    behaviour: str
    skew_ms: int
    chain: list[tuple[Any, CommitCertificate]] = field(default_factory=list)
    safety: SafetyRecord | None = None
    app: SimulatedApplication | None = None
    replica: Replica | None = None
    alive: bool = False
    sent_history: list[tuple[str, bytes]] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return self.behaviour == "correct"


class EventQueue:
    """Events ordered by simulated time, then by the order they were scheduled in."""

    def __init__(self) -> None:
        self.now_ms = 0
        """The time of the event being run."""
        self._heap: list[tuple[int, int, str, Any]] = []
        self._sequence = 0

    def __bool__(self) -> bool:
        return bool(self._heap)

    def schedule(self, at_ms: int, kind: str, payload: Any) -> None:
        self._sequence += 1
        heapq.heappush(self._heap, (at_ms, self._sequence, kind, payload))

    def pop(self) -> tuple[int, str, Any]:
        """The next event as ``(at_ms, kind, payload)`` (the caller advances ``now_ms``)."""
        at_ms, _, kind, payload = heapq.heappop(self._heap)
        return at_ms, kind, payload


class SimulatedNetwork:
    """Carries the processes' messages as bytes, with the faults of the run's configuration."""

    def __init__(
        self,
        config: SimulationConfig,
        rng: Randomness,
        processes: list[SimulatedProcess],
        queue: EventQueue,
    ) -> None:
        self.config = config
        self.rng = rng
        self.processes = processes
        self.queue = queue
        self.stabilizing = False
        """Set when the run stabilizes: no more partitions, drops, duplicates or withholding."""
        self.partition: tuple[frozenset[str], frozenset[str]] | None = None
        self._decoded: dict[bytes, Any] = {}

    def member_ids(self) -> list[str]:
        """Every member that has a process, sorted."""
        return sorted({process.member_id for process in self.processes})

    def recipients(self, member_id: str) -> list[SimulatedProcess]:
        """The processes that receive what is sent to ``member_id`` (two for twins)."""
        return [process for process in self.processes if process.member_id == member_id]

    def other_members(self, process: SimulatedProcess) -> list[str]:
        return sorted({other.member_id for other in self.processes} - {process.member_id})

    def broadcast(self, process: SimulatedProcess, message: Any) -> None:
        data = encode_message(message)
        for member in self.other_members(process):
            if self._withheld(message, member):
                continue
            self.transmit(process, member, data)

    def send(self, process: SimulatedProcess, member_id: str, message: Any) -> None:
        if not self._withheld(message, member_id):
            self.transmit(process, member_id, encode_message(message))

    def transmit(self, process: SimulatedProcess, member_id: str, data: bytes) -> None:
        """Put ``data`` on the way to ``member_id`` (lost, delayed or duplicated in chaos)."""
        config = self.config
        process.sent_history.append((member_id, data))
        if len(process.sent_history) > SENT_HISTORY_MAX:
            del process.sent_history[: SENT_HISTORY_MAX // 2]
        if self._cut(process.member_id, member_id):
            return
        if not self.stabilizing and self.rng.random() < config.drop_rate:
            return
        copies = 2 if self.rng.random() < config.duplicate_rate else 1
        now_ms = self.queue.now_ms
        for _ in range(copies):
            delay = self.rng.randint(config.delay_ms_min, config.delay_ms_max)
            for recipient in self.recipients(member_id):
                self.queue.schedule(now_ms + delay, "deliver", (recipient, process.member_id, data))

    def cut_at_random(self) -> tuple[frozenset[str], frozenset[str]]:
        """Split the members in two random, non-empty sides that cannot talk to each other."""
        members = self.member_ids()
        self.rng.shuffle(members)
        cut = self.rng.randint(1, len(members) - 1)
        self.partition = (frozenset(members[:cut]), frozenset(members[cut:]))
        return self.partition

    def heal(self) -> None:
        self.partition = None

    def decode(self, data: bytes) -> Any:
        """``decode_message(data)``, or None if it does not decode; remembered per run.

        A broadcast reaches every member as the same bytes: decoding them once gives the
        same frozen message every recipient would have decoded (decoding is a pure function
        of the bytes), and it was most of a run's time. The memory is bounded.
        """
        if data in self._decoded:
            return self._decoded[data]
        try:
            message = decode_message(data)
        except (encoding.EncodingError, ModelDecodeError):
            message = None
        if len(self._decoded) >= DECODED_MESSAGES_MAX:
            self._decoded.clear()
        self._decoded[data] = message
        return message

    def _cut(self, sender: str, recipient: str) -> bool:
        if self.partition is None:
            return False
        side_a, _ = self.partition
        return (sender in side_a) != (recipient in side_a)

    def _withheld(self, message: Any, recipient: str) -> bool:
        """The adversarial scheduler of ``withhold_commit_votes`` (chaos phase only)."""
        if not self.config.withhold_commit_votes or self.stabilizing:
            return False
        if isinstance(message, Status):
            return message.height % 3 == 0 and message.height > 0
        if isinstance(message, BlockResponse):
            return any(block.height % 3 == 0 for block, _ in message.blocks)
        if not isinstance(message, CommitVote) or message.height % 3 != 0:
            return False
        members = self.member_ids()
        return recipient != members[message.height % len(members)]
