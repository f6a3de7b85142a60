"""The log of every act over HTTP: C2SP tlog-tiles, and proofs between its sizes.

Theory of operation
-------------------
Every node (member or observer) serves the log of every act (ledger/tlog.py) under the prefix
``/v1/log`` exactly as c2sp.org/tlog-tiles lays it out, so any tlog client, a static mirror made
by ``sceau export tiles`` and the node answer the same paths with the same bytes:

* ``/v1/log/tile/<L>/<N>[.p/<W>]``: the ``W`` (default 256) stored hashes of tree level ``8·L``
  from ``N·256``: 32 bytes each, at most 8 KiB;
* ``/v1/log/tile/entries/<N>[.p/<W>]``: the entry bundle of log entries ``N·256 …``: each the
  transaction's canonical bytes after a big-endian uint16 length, at most 256 entries of at
  most the genesis's ``transaction_bytes_max`` each (4 MiB with the default 16 KiB);
* ``/v1/log/checkpoint`` is the consortium checkpoint (served with the checkpoints).

A tile is immutable once the log covers it, so a full tile is served with a year-long,
``immutable`` cache lifetime. A partial tile of *any* width the log already covers is served
too (its bytes never change either, they are a prefix of the full tile's), with a short cache
lifetime: tlog-tiles asks clients for the width their checkpoint implies, and a node ahead of
a client's checkpoint still answers it. A tile beyond the log is ``beyond_log`` (404), a
malformed path ``invalid_parameter`` (400): problem objects like every other refusal.

Proofs are JSON (or msgpack) documents, hashes as lowercase hex like every hash of the API:
``/v1/log/consistency?old=M&new=N`` (RFC 9162 consistency proof, ``0 ≤ M ≤ N ≤`` the log's
size) and ``/v1/log/inclusion?index=I&size=N`` (``I < N ≤`` the log's size).

Budgets: a tile answer is bounded by the tile format (above), a proof by 2·63 hashes; every
answer is read from the store's log index with one LevelDB scan (tiles) or at most 2·63 point
reads (proofs), before any byte is sent.
"""

from __future__ import annotations

from aiohttp import web
from pydantic import Field

from ledger import tlog
from ledger.store import ChainStore
from node.api.display import Count, Document, Hash
from node.api.limits import TILE_CACHE_FULL, TILE_CACHE_PARTIAL
from node.api.parameters import parse_bounded, query_parameters
from node.api.problems import ProblemError
from node.api.responses import respond
from node.runtime.daemon import Node

__all__ = [
    "LOG_SIZE_MAX",
    "TILE_MEDIA_TYPE",
    "ConsistencyDocument",
    "InclusionDocument",
    "LogHandlers",
    "covered_width",
    "tile_bytes",
]

TILE_MEDIA_TYPE = "application/octet-stream"
LOG_SIZE_MAX = 2**63 - 1
_PROOF_HASHES_MAX = 2 * tlog.LEVELS_MAX


class ConsistencyDocument(Document):
    """An RFC 9162 consistency proof between two sizes of the log of every act."""

    old_size: Count
    new_size: Count
    proof: list[Hash] = Field(max_length=_PROOF_HASHES_MAX)


class InclusionDocument(Document):
    """An RFC 9162 inclusion proof of one entry of the log of every act in a tree size."""

    index: Count
    size: Count
    proof: list[Hash] = Field(max_length=_PROOF_HASHES_MAX)


def tile_bytes(store: ChainStore, level: int | None, index: int, width: int) -> bytes:
    """The bytes of a tile (``level``) or entry bundle (``level`` None) of ``store``'s log, which
    must cover it (:func:`covered_width`)."""
    start = index * tlog.TILE_WIDTH
    if level is None:
        return tlog.entries_bundle(store.log_entries(start, width))
    return b"".join(store.log_hashes(tlog.TILE_HEIGHT * level, start, width))


def covered_width(log_size: int, level: int | None) -> int:
    """How many hashes (entries for ``level`` None) of the tiles of ``level`` a log of
    ``log_size`` leaves has: its stored hashes at tree level 8·level."""
    if level is None:
        return log_size
    shift = tlog.TILE_HEIGHT * level
    return log_size >> shift if shift < 64 else 0


class LogHandlers:
    """The handlers of the log's routes (see the module doc) over one node's store."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def get_log_tile(self, request: web.Request) -> web.Response:
        query_parameters(request, ())
        path = "tile/" + request.match_info["tile"]
        try:
            level, index, width = tlog.parse_tile_path(path)
        except tlog.TilePathError as error:
            raise ProblemError("invalid_parameter", f"tile: {error}") from None
        store = self.node.store
        size = store.log_size
        end = index * tlog.TILE_WIDTH + width
        if end > covered_width(size, level):
            what = "entries" if level is None else f"hashes of tree level {8 * level}"
            raise ProblemError(
                "beyond_log",
                f"the log of every act holds {size} entries: {path} needs {what} up to {end}",
            )
        body = tile_bytes(store, level, index, width)
        full = width == tlog.TILE_WIDTH
        return web.Response(
            body=body,
            content_type=TILE_MEDIA_TYPE,
            headers={"Cache-Control": TILE_CACHE_FULL if full else TILE_CACHE_PARTIAL},
        )

    async def get_log_consistency(self, request: web.Request) -> web.Response:
        parameters = query_parameters(request, ("old", "new"))
        old = _required_size(parameters, "old")
        new = _required_size(parameters, "new")
        if old > new:
            raise ProblemError("invalid_parameter", f"old ({old}) is larger than new ({new})")
        store = self.node.store
        self._within_log(new, store.log_size)
        proof = tlog.consistency_proof(old, new, store.log_hash)
        return respond(request, {"old_size": old, "new_size": new, "proof": proof})

    async def get_log_inclusion(self, request: web.Request) -> web.Response:
        parameters = query_parameters(request, ("index", "size"))
        index = _required_size(parameters, "index")
        size = _required_size(parameters, "size")
        if index >= size:
            raise ProblemError("invalid_parameter", f"index ({index}) is not below size ({size})")
        store = self.node.store
        self._within_log(size, store.log_size)
        proof = tlog.inclusion_proof(index, size, store.log_hash)
        return respond(request, {"index": index, "size": size, "proof": proof})

    @staticmethod
    def _within_log(size: int, log_size: int) -> None:
        if size > log_size:
            raise ProblemError(
                "beyond_log", f"the log of every act holds {log_size} entries, not {size}"
            )


def _required_size(parameters: dict[str, str], name: str) -> int:
    if name not in parameters:
        raise ProblemError("invalid_parameter", f"{name}: required, an integer")
    return parse_bounded(name, parameters[name], 0, 0, LOG_SIZE_MAX)
