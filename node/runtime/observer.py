"""An observer: a node that follows the chain from members' APIs and signs nothing.

Theory of operation
-------------------
A journalist, a commune or a chamber of accounts wants to read the register without asking a
member to be honest. An observer holds the genesis and the API addresses of one or more
members (the ``[observer]`` table of its configuration, :class:`ObserverSettings`). It has its
own chain database, created from the genesis by ``sceau node init``, and no key.

:class:`Follower` loops: it asks one source for the bundle frames after its tip
(``GET /v1/bundle?from=H&count=N``, at most ``batch_frames_max`` frames, an answer of at most
``response_bytes_max`` bytes within ``request_timeout_ms``), decodes them with the bundle
parser's limits, and hands each block to a :class:`ledger.audit.ChainFollower`: the audit's
own checks, block by block (certificate by the member set in force, header rules, signatures,
re-execution on its own state and the state root). A verified block is appended with its
certificate, synced, exactly as a member commits one. A block that fails is refused: counted,
logged once per source and height, and that source is not asked for that height again until
another source moved the chain past it; the next source is tried. A source that cannot be
reached or answers nonsense is counted and skipped the same way. Once every source was tried
without progress the follower waits, from ``poll_interval_ms`` doubling to ``backoff_max_ms``.
Once caught up it moves to the next source every :data:`IDLE_POLLS_PER_SOURCE` polls that
brought nothing, so that a member that lags behind the others does not hold it back.
Nothing a source sends can stop the follower; only a damaged local store does (as a member).

:class:`ObserverNode` is what the API (node/api/) serves from: the store, the engine, an
always-empty mempool, a :class:`ChainApplication` over the store, metrics, and a status that
says it is an observer, its tip and the source it follows. Submissions are refused by the API
(``observer_read_only``). The observer opens no peer port: the members never learn of it, and
it is never needed for progress.

After a round that brought blocks, and in the next few rounds
(:data:`CHECKPOINT_FETCHES_AFTER_PROGRESS`), the follower also fetches the source's
consortium checkpoint (``GET /v1/log/checkpoint``) and offers it to its
:class:`~node.runtime.checkpoints.CheckpointService`. It is kept if a quorum of the member set
in force at the observer's tip signed it, its size is within the observer's own log and its
root is the observer's own root at that size; the cosignatures of the witnesses the
observer's configuration lists are kept with it, any other signature is left out. The
observer then serves it as a member serves its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import aiohttp

from contracts.engine import Engine, InvalidProposalError
from ledger.audit import BlockRefused, ChainFollower, Replayed, ReplayError
from ledger.bundle import BundleError, parse_frames
from ledger.model import Block, CommitCertificate, Genesis, Member, Transaction
from ledger.note import NOTE_BYTES_MAX, NoteError, NoteVerifierKey
from ledger.store import ChainStore, StoreError
from node.runtime.application import ChainApplication
from node.runtime.checkpoints import CheckpointService
from node.runtime.config import ObserverSettings
from node.runtime.daemon import NodeMetrics
from node.runtime.mempool import Mempool, MempoolLimits
from node.runtime.witnesses import read_bounded

__all__ = ["Follower", "ObserverNode", "StoreReplayer"]

log = logging.getLogger("sceau.observer")

BUNDLE_MEDIA_TYPE = "application/vnd.sceau.bundle"
IDLE_POLLS_PER_SOURCE = 20
"""Once caught up, the follower asks the next source after this many polls without a new
block, so that a member that lags or stopped committing does not hold it back."""


CHECKPOINT_FETCHES_AFTER_PROGRESS = 8
"""Polls after one that brought blocks (this one included) that also fetch the source's
checkpoint: the members' quorum and the witnesses' cosignatures come a little after the
block. An idle observer asks nothing more."""


class StoreReplayer:
    """:class:`ledger.audit.Replayer` over the observer's own store: the engine executes the
    block on the committed state, as a member's replica does, and changes nothing (the
    follower commits a verified block through the :class:`ChainApplication`).

    Transaction signatures are verified here again even when the auditor did: the engine's
    own check stays whole, at the cost of a second Ed25519 verification per transaction.
    """

    def __init__(self, application: ChainApplication) -> None:
        self.application = application

    def start(self, genesis: Genesis) -> tuple[Member, ...]:
        return self.application.members()

    def execute(self, block: Block, *, signatures_verified: bool) -> Replayed:
        application = self.application
        try:
            result = application.execute_next(block)
        except InvalidProposalError as error:
            raise ReplayError("block", f"refused on re-execution: {error}") from None
        return Replayed(
            state_root=result.state_root,
            state_writes=result.state_writes,
            next_members=application.engine.members_after(application.store, result.state_writes),
        )


class _NoReplica:
    """What the API reads of a replica (metrics): an observer takes part in no view."""

    view = 0
    dropped: Mapping[str, int] = {}


class ObserverNode:
    """The API's view of an observer (the attributes of :class:`~node.runtime.daemon.Node`
    that node/api/ reads), with the :class:`Follower` as its one task."""

    def __init__(
        self,
        store: ChainStore,
        engine: Engine,
        settings: ObserverSettings,
        genesis: Genesis,
        *,
        witness_keys: Sequence[NoteVerifierKey] = (),
    ) -> None:
        self.member_id = ""
        self.store = store
        self.engine = engine
        self.settings = settings
        self.mempool = Mempool(MempoolLimits(transactions_max=1, bytes_max=1024, per_signer_max=1))
        self.application = ChainApplication(store, engine, self.mempool)
        self.metrics = NodeMetrics()
        self.replica = _NoReplica()
        self.transport = None
        self.started_at = time.monotonic()
        self.checkpoints = CheckpointService(
            store, members=self.application.members, witness_keys=witness_keys
        )
        """The consortium checkpoints fetched from the sources (see the module doc)."""
        self.follower = Follower(self, genesis)
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def ticker(self) -> asyncio.Task[None] | None:
        return self._task

    async def start(self) -> None:
        assert self._task is None, "started once"
        self._task = asyncio.create_task(self.follower.run(), name="sceau-observer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.follower.close()

    def submit(self, transaction: Transaction) -> bool:
        raise AssertionError("the API refuses submissions to an observer")

    def submit_many(self, transactions: list[Transaction]) -> list[bool]:
        raise AssertionError("the API refuses submissions to an observer")

    async def wait_for_commit(self, tx_id: bytes, timeout_s: float) -> bool:
        return self.store.transaction_location(tx_id) is not None

    def status(self) -> dict[str, Any]:
        tip = self.store.tip
        follower = self.follower
        return {
            "role": "observer",
            "member_id": None,
            "chain_id": self.store.chain_id.hex(),
            "height": tip.height,
            "block_hash": tip.block_hash.hex(),
            "view": 0,
            "members": len(self.application.members()),
            "peers_connected": [],
            "mempool_transactions": 0,
            "mempool_bytes": 0,
            "following": follower.source,
            "sources": list(self.settings.follow),
            "source_tip_height": follower.source_tip,
            "blocks_refused": follower.blocks_refused,
            "checkpoint": self.checkpoints.status(),
            "uptime_s": round(time.monotonic() - self.started_at, 1),
        }


class Follower:
    """Fetches, verifies and appends the blocks after the observer's tip (module doc)."""

    def __init__(self, node: ObserverNode, genesis: Genesis) -> None:
        self.node = node
        self.settings = node.settings
        self.sources = list(node.settings.follow)
        self.source: str | None = None
        """The source the last block came from (or the one being asked)."""
        self.source_tip: int | None = None
        self.blocks_refused = 0
        self.errors: collections.Counter[str] = collections.Counter()
        """Failed requests, by reason (``unreachable``, ``http_status``, ``bad_frames``…)."""
        self._refused_at: dict[str, int] = {}
        """Source → the height whose block it sent that did not verify."""
        self._logged: set[tuple[str, str, int]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._next = 0
        self._idle_polls = 0
        self._checkpoint_fetches_left = CHECKPOINT_FETCHES_AFTER_PROGRESS
        store = node.store
        tip = store.tip
        position: dict[str, Any] = {}
        if tip.height:
            block = store.block(tip.height)
            assert block is not None, "the store holds its tip"
            position = {
                "height": tip.height,
                "block_hash": tip.block_hash,
                "timestamp_ms": block.header.timestamp_ms,
            }
        self.chain = ChainFollower(
            genesis, StoreReplayer(node.application), self._append, **position
        )

    def _append(self, block: Block, certificate: CommitCertificate, replayed: Replayed) -> None:
        """A verified block: appended with its certificate, synced (as a member commits)."""
        self.node.application.commit(block, certificate)
        self.node.metrics.blocks_committed += 1
        self.node.metrics.transactions_committed += len(block.transactions)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def run(self) -> None:
        """Follow until cancelled."""
        settings = self.settings
        idle_s = settings.poll_interval_ms / 1000
        wait_s = idle_s
        while True:
            outcome = None
            for _ in range(len(self.sources)):
                source = self.sources[self._next % len(self.sources)]
                if self._refused_at.get(source) == self.node.store.height + 1:
                    self._next += 1
                    continue
                self.source = source
                outcome = await self.poll(source)
                if outcome is not None:
                    break
                self._next += 1  # this source failed: the next one
            if outcome is True:
                self._checkpoint_fetches_left = CHECKPOINT_FETCHES_AFTER_PROGRESS
            if outcome is not None and self.source is not None and self._checkpoint_fetches_left:
                self._checkpoint_fetches_left -= 1
                await self.fetch_checkpoint(self.source)
            if outcome is True:  # blocks appended: ask again at once
                wait_s = idle_s
                self._idle_polls = 0
                continue
            if outcome is False:  # caught up with a source
                wait_s = idle_s
                self._idle_polls += 1
                if self._idle_polls >= IDLE_POLLS_PER_SOURCE:  # a lagging source: the next
                    self._idle_polls = 0
                    self._next += 1
                await asyncio.sleep(idle_s)
                continue
            await asyncio.sleep(wait_s)  # every source failed: back off
            wait_s = min(wait_s * 2, settings.backoff_max_ms / 1000)

    async def poll(self, source: str) -> bool | None:
        """One request to ``source``: True if blocks were appended, False if it has none
        after our tip, None if it failed (unreachable, nonsense, or a refused block)."""
        first = self.node.store.height + 1
        body = await self._fetch(source, first)
        if body is None:
            return None
        try:
            _, entries = parse_frames(body, first)
        except BundleError as error:
            self._failed(source, "bad_frames", first, f"frames that do not decode: {error}")
            return None
        appended = 0
        for entry in entries:
            try:
                self.chain.verify(entry.block, entry.certificate)
            except BlockRefused as refused:
                detail = f"refused: {refused}"
            except StoreError:
                raise  # our own store is damaged: the node stops, as a member does
            except Exception as error:  # a block no check foresaw: refused, never a crash
                log.exception("verifying block %d from %s failed", entry.block.height, source)
                detail = f"refused: verifying it failed ({type(error).__name__})"
            else:
                appended += 1
                await asyncio.sleep(0)  # the API answers between two blocks of a batch
                continue
            height = self.node.store.height + 1
            self.blocks_refused += 1
            self._refused_at[source] = height
            self._failed(source, "block_refused", height, detail)
            return None if appended == 0 else True
        if appended:
            # The chain moved: refusals of lower heights are history.
            height = self.node.store.height
            self._refused_at = {s: h for s, h in self._refused_at.items() if h > height}
            log.info("observer at height %d (from %s)", height, source)
        return appended > 0

    async def fetch_checkpoint(self, source: str) -> str:
        """Fetch ``source``'s consortium checkpoint and offer it to the observer's checkpoints
        (see the module doc); returns the outcome, also counted in the metrics."""
        outcome = await self._checkpoint_outcome(source)
        self.node.checkpoints.metrics.fetched[outcome] += 1
        return outcome

    async def _checkpoint_outcome(self, source: str) -> str:
        session = self._client()
        url = f"{source.rstrip('/')}/v1/log/checkpoint"
        try:
            async with session.get(url) as response:
                if response.status != 200:
                    return "none" if response.status == 404 else "http_status"
                body = await read_bounded(response, NOTE_BYTES_MAX)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError):
            return "unreachable"
        if len(body) > NOTE_BYTES_MAX:
            return "too_large"
        try:
            return self.node.checkpoints.offer_note(body)
        except NoteError as error:
            self._failed(source, "bad_checkpoint", self.node.store.height, f"checkpoint: {error}")
            return "refused"

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.settings.request_timeout_ms / 1000)
            )
        return self._session

    async def _fetch(self, source: str, first: int) -> bytes | None:
        settings = self.settings
        session = self._client()
        url = f"{source.rstrip('/')}/v1/bundle"
        parameters = {"from": str(first), "count": str(settings.batch_frames_max)}
        limit = settings.response_bytes_max
        try:
            async with session.get(
                url, params=parameters, headers={"Accept": BUNDLE_MEDIA_TYPE}
            ) as response:
                tip = response.headers.get("Sceau-Tip-Height", "")
                if not tip.isdigit():
                    self._failed(source, "not_a_node", first, "no Sceau-Tip-Height in its answer")
                    return None
                self.source_tip = int(tip)
                if response.status == 404:
                    return b""  # nothing after our tip yet
                if response.status != 200:
                    self._failed(source, "http_status", first, f"answered {response.status}")
                    return None
                if response.content_length is not None and response.content_length > limit:
                    self._failed(source, "too_large", first, f"the answer exceeds {limit} bytes")
                    return None
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > limit:
                        self._failed(
                            source, "too_large", first, f"the answer exceeds {limit} bytes"
                        )
                        return None
                return bytes(body)
        except (aiohttp.ClientError, TimeoutError, OSError, ValueError) as error:
            self._failed(source, "unreachable", first, f"cannot fetch: {error or type(error)}")
            return None

    def _failed(self, source: str, reason: str, height: int, detail: str) -> None:
        """Count a failure; log it once per source, reason and height."""
        self.errors[reason] += 1
        self.node.metrics.frames_rejected[f"{reason}:observer"] += 1
        key = (source, reason, height)
        if key in self._logged:
            return
        if len(self._logged) > 4096:
            self._logged.clear()
        self._logged.add(key)
        log.warning("source %s at height %d: %s", source, height, detail)
