"""The bounded buffer of messages a replica keeps for later (a later height or view, or the
end of a commit in progress), per sender, in messages and in bytes."""

from __future__ import annotations

import collections

from consensus.messages import Message

__all__ = ["FutureMessages"]


class FutureMessages:
    """Per sender, buffered messages with their sizes, oldest first, within a budget of
    ``messages_max`` messages and ``bytes_max`` bytes per sender.

    Over budget, the sender's *oldest* messages go first. A correct peer's newest messages
    are about where it is now (its latest view and height); older ones are most likely
    superseded, and it retransmits its current ones anyway. A byzantine sender can only
    evict its own messages: each sender has its own budget.
    """

    def __init__(self, *, messages_max: int, bytes_max: int) -> None:
        assert messages_max >= 1 and bytes_max >= 1
        self.messages_max = messages_max
        self.bytes_max = bytes_max
        self.queues: dict[str, collections.deque[tuple[Message, int]]] = {}
        self.bytes_used: dict[str, int] = {}

    def add(self, sender: str, message: Message, size: int) -> int:
        """Keep ``message`` (weighing ``size`` bytes, at most ``bytes_max``); returns how many
        of the sender's older messages were evicted to make room."""
        assert size <= self.bytes_max, "the caller drops a message larger than the budget"
        queue = self.queues.setdefault(sender, collections.deque())
        used = self.bytes_used.get(sender, 0)
        evicted = 0
        while queue and (len(queue) >= self.messages_max or used + size > self.bytes_max):
            _, evicted_size = queue.popleft()
            used -= evicted_size
            evicted += 1
        queue.append((message, size))
        self.bytes_used[sender] = used + size
        assert len(queue) <= self.messages_max
        assert self.bytes_used[sender] <= self.bytes_max
        return evicted

    def take_all(self) -> dict[str, collections.deque[tuple[Message, int]]]:
        """Empty the buffer; returns what it held, per sender, oldest first."""
        taken, self.queues = self.queues, {}
        self.bytes_used = {}
        return taken
