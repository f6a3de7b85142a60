"""The API's limits, and the token buckets that bound each client's submissions.

Every bound the API applies to a client is here: how long a submission may wait, how many wait
at once, how many client addresses are remembered, how large a state key, a height, a bundle
answer may be. The body size and the submission rate are node settings (node/runtime/config.py).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

from ledger import encoding
from ledger.model import ARGUMENTS_DEPTH_MAX, TRANSACTION_BYTES_MAX
from ledger.queryproof import (
    QUERY_ANSWER_BYTES_MAX,
    QUERY_PATH_CHARACTERS_MAX,
    QUERY_READS_PROVEN_MAX,
)

__all__ = [
    "BATCH_LIMITS",
    "BATCH_TRANSACTIONS_MAX",
    "BUNDLE_FRAMES_MAX",
    "BUNDLE_RESPONSE_BYTES_MAX",
    "CLIENTS_TRACKED_MAX",
    "HEIGHT_MAX",
    "LINKS_CUT_MAX",
    "OUTCOME_POLL_S",
    "PREPARED_EXPIRY_BLOCKS",
    "QUERY_ANSWER_BYTES_MAX",
    "QUERY_PARAMETERS_MAX",
    "QUERY_PATH_CHARACTERS_MAX",
    "QUERY_READS_PROVEN_MAX",
    "STATE_KEY_BYTES_MAX",
    "SUBMISSION_LIMITS",
    "TILE_CACHE_FULL",
    "TILE_CACHE_PARTIAL",
    "WAITING_SUBMISSIONS_MAX",
    "WAIT_S_MAX",
    "SubmissionLimiter",
]

WAIT_S_MAX = 30
"""The longest a submission may wait for its commit (``?wait=``)."""
WAITING_SUBMISSIONS_MAX = 1024
"""Submissions waiting for their commit at once; beyond, they answer 202 without waiting."""
OUTCOME_POLL_S = 0.05
"""How often a waiting submission looks for a rejection (commits wake it at once)."""
CLIENTS_TRACKED_MAX = 10_000
"""Client addresses whose token buckets are remembered (least recently seen forgotten)."""
STATE_KEY_BYTES_MAX = 1024
HEIGHT_MAX = 2**63 - 1
LINKS_CUT_MAX = 64
"""Peers one ``PUT /v1/debug/links`` may name (the body is bounded by api_body_bytes_max)."""
BUNDLE_FRAMES_MAX = 256
"""Frames one ``GET /v1/bundle`` answers at most (``count``)."""
BUNDLE_RESPONSE_BYTES_MAX = 4 * 1024 * 1024
"""A ``GET /v1/bundle`` answer stops before this size (it holds at least one frame, which may
be larger): the frames are read and encoded on the event loop, so an answer stays short."""
PREPARED_EXPIRY_BLOCKS = 1000
"""``POST /v1/transactions/prepare`` without ``expiry_height``: the tip plus this many blocks
(the client library's default too)."""
QUERY_PARAMETERS_MAX = 16
"""Query parameters handed to a contract's query (``proof`` aside)."""
SUBMISSION_LIMITS = encoding.DecodeLimits(
    total_bytes_max=TRANSACTION_BYTES_MAX + 1024,
    depth_max=ARGUMENTS_DEPTH_MAX + 1,
    str_bytes_max=TRANSACTION_BYTES_MAX,
    bin_bytes_max=TRANSACTION_BYTES_MAX,
    array_length_max=TRANSACTION_BYTES_MAX,
    map_length_max=TRANSACTION_BYTES_MAX,
)
"""A transaction's arguments take at most TRANSACTION_BYTES_MAX encoded bytes and nest at
most ARGUMENTS_DEPTH_MAX deep (ledger.model); the transaction map adds one level and a few
hundred bytes of fixed fields."""
BATCH_TRANSACTIONS_MAX = 1000
"""Transactions one ``POST /v1/transactions/batch`` may carry (the body stays within the
node's ``api_body_bytes_max`` too): a batch is admitted in one pass on the event loop, so it
stays a few tens of milliseconds of work."""
BATCH_LIMITS = encoding.DecodeLimits(
    total_bytes_max=64 * 1024 * 1024,
    depth_max=1,
    str_bytes_max=0,
    bin_bytes_max=SUBMISSION_LIMITS.total_bytes_max,
    array_length_max=BATCH_TRANSACTIONS_MAX,
    map_length_max=0,
)
"""A batch's msgpack body: one array of at most BATCH_TRANSACTIONS_MAX byte strings, each a
transaction's canonical bytes (decoded afterwards with SUBMISSION_LIMITS); the body's size is
bounded before by ``api_body_bytes_max`` (at most 64 MiB)."""


# --- rate limiting ----------------------------------------------------------------------------


class SubmissionLimiter:
    """A token bucket per client address: ``rate_per_s`` tokens a second, ``burst`` at most.

    Bounded: at most ``clients_max`` addresses are remembered; the least recently seen one is
    forgotten first (it comes back with a full bucket, no worse than a new address).
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        *,
        clients_max: int = CLIENTS_TRACKED_MAX,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert rate_per_s > 0 and burst >= 1 and clients_max >= 1
        self.rate_per_s = rate_per_s
        self.burst = burst
        self.clients_max = clients_max
        self._clock = clock
        self._buckets: collections.OrderedDict[str, tuple[float, float]] = collections.OrderedDict()

    def take(self, client: str) -> float | None:
        """Spend one token of ``client``: None if allowed, else the seconds until one is due."""
        now = self._clock()
        tokens, updated_at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated_at) * self.rate_per_s)
        allowed = tokens >= 1
        if allowed:
            tokens -= 1
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.clients_max:
            self._buckets.popitem(last=False)
        return None if allowed else (1 - tokens) / self.rate_per_s

    def take_up_to(self, client: str, count: int) -> tuple[int, float | None]:
        """Spend up to ``count`` tokens of ``client`` (a batch charges one per transaction):
        how many it had, and the seconds until the next one is due when it had fewer."""
        assert count >= 1
        now = self._clock()
        tokens, updated_at = self._buckets.pop(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - updated_at) * self.rate_per_s)
        granted = min(count, int(tokens))
        tokens -= granted
        self._buckets[client] = (tokens, now)
        while len(self._buckets) > self.clients_max:
            self._buckets.popitem(last=False)
        return granted, None if granted == count else (1 - tokens) / self.rate_per_s

    def __len__(self) -> int:
        return len(self._buckets)


# --- the log of every act (tiles and proofs, node/api/log.py) -----------------------------------

TILE_CACHE_FULL = "public, max-age=31536000, immutable"
"""A full tile never changes: caches keep it for a year."""
TILE_CACHE_PARTIAL = "public, max-age=60"
"""A partial tile of a given width never changes either, but clients should move on to the
wider one soon: a short lifetime."""
