"""Pushing the consortium's checkpoints to witnesses, and keeping their cosignatures.

Theory of operation
-------------------
A witness (c2sp.org/tlog-witness; ``sceau witness``) cosigns a checkpoint only if it is
consistent with the last one it cosigned for the log. For each ``[[witnesses]]`` entry of its
configuration a member runs one :class:`WitnessPusher`, a background task that is never on
the consensus path. When the kept checkpoint grew (node/runtime/checkpoints.py) it sends

    POST <url>/add-checkpoint    old <size the witness has>, a consistency proof, the note

starting from size 0 and learning the witness's size from a 409 answer (``text/x.tlog.size``);
every member pushes the same checkpoints, so the witness's size may move between two
requests, and a push follows at most :data:`CONFLICTS_PER_PUSH_MAX` such answers at once.
On 200 every cosignature line of the answer that is the configured witness's key and verifies
is added to the kept note (if it is still the kept checkpoint); lines of other keys are
ignored.

Budgets: one request in flight per witness, at most one checkpoint waiting (the latest: a
pusher always takes the kept one when it is free), a deadline per request
(``request_timeout_ms``), an answer of at most :data:`ANSWER_BYTES_MAX` read, and after a
failure a wait that doubles from :data:`BACKOFF_INITIAL_MS` up to ``backoff_max_ms``. A
witness that is down therefore delays nothing: the commit path only wakes the pusher. A
witness that keeps answering 409 with a size this log does not have (a witness that cosigned
another history: a split view, or a misconfiguration) fails with ``forked`` and backs off
like any other failure, never in a hot loop. Failures are counted by :class:`Failure` and
logged through the node's rate-limited log.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from ledger import tlog
from ledger.note import (
    NOTE_SIGNATURES_MAX,
    AddCheckpointRequest,
    Note,
    NoteError,
    NoteSignature,
    verify_note,
)
from node.runtime.checkpoints import CheckpointService, KeptCheckpoint
from node.runtime.config import WitnessSettings

__all__ = ["ANSWER_BYTES_MAX", "BACKOFF_INITIAL_MS", "Failure", "WitnessPusher", "Witnesses"]

log = logging.getLogger("sceau.witnesses")

ANSWER_BYTES_MAX = 64 * 1024
"""The longest answer of a witness read (a cosignature line is about 150 bytes)."""
BACKOFF_INITIAL_MS = 500
CONFLICTS_PER_PUSH_MAX = 8
"""Requests of one push: each 409 teaches the witness's size, which other members' pushes
may have moved meanwhile (a 409 repeating the size sent is a fork, never retried at once)."""
SIZE_CONTENT_TYPE = "text/x.tlog.size"


class Failure(enum.StrEnum):
    """Why a push failed (the metrics' ``reason`` label; stable strings)."""

    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    NOT_SIGNED = "not_signed"
    """403: the witness does not count a quorum of our members' keys (its member list is
    out of date?)."""
    UNKNOWN_LOG = "unknown_log"
    """404: the witness is not configured for this log's origin."""
    BAD_PROOF = "bad_proof"
    """422: the witness found our consistency proof wrong (its history is not ours)."""
    FORKED = "forked"
    """409 with a size this log does not have, or the same size twice: it cosigned another
    history."""
    CONFLICT = "conflict"
    """409 over and over within one push."""
    BAD_ANSWER = "bad_answer"
    """A 200 without a valid cosignature of the configured key, or an answer too large."""
    HTTP_STATUS = "http_status"
    """Any other status."""


@dataclass(slots=True)
class WitnessState:
    """What status and metrics say of one witness."""

    name: str
    witness_size: int = 0
    """The size the witness cosigned last, as far as this node knows (sent as ``old``)."""
    cosigned_size: int | None = None
    """The size of the last checkpoint it cosigned for this node."""
    last_error: str | None = None
    last_success_ms: int | None = None
    pushes: int = 0
    cosignatures: int = 0
    failures: collections.Counter[str] = field(default_factory=collections.Counter)
    latency_count: int = 0
    latency_sum_ms: float = 0.0

    def status(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "cosigned_size": self.cosigned_size,
            "last_error": self.last_error,
            "last_success_ms": self.last_success_ms,
        }


class _Failed(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class WitnessPusher:
    """One witness's background pusher (see the module doc)."""

    def __init__(
        self,
        settings: WitnessSettings,
        service: CheckpointService,
        session: Callable[[], aiohttp.ClientSession],
        *,
        warn: Callable[..., None] | None = None,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        self.settings = settings
        self.key = settings.key
        self.service = service
        self._session = session
        self._warn = warn or (lambda key, message, *args: log.warning(message, *args))
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.state = WitnessState(settings.name)
        self._wake = asyncio.Event()
        self._done: KeptCheckpoint | None = None
        """The checkpoint last pushed with success (or found below the witness's size)."""
        self.backoff_ms = 0

    def wake(self) -> None:
        """A new checkpoint was kept (called on the event loop's thread)."""
        self._wake.set()

    async def run(self) -> None:
        """Push until cancelled."""
        while True:
            kept = self.service.kept
            if kept is None or (
                self._done is not None and kept.checkpoint == self._done.checkpoint
            ):
                self._wake.clear()
                await self._wake.wait()
                continue
            if await self.push(kept):
                self.backoff_ms = 0
                continue
            limit = self.settings.backoff_max_ms
            self.backoff_ms = min(limit, max(BACKOFF_INITIAL_MS, self.backoff_ms * 2))
            await asyncio.sleep(self.backoff_ms / 1000)

    async def push(self, kept: KeptCheckpoint) -> bool:
        """Send ``kept`` (the latest checkpoint) once; True on success or nothing to do."""
        state = self.state
        try:
            for _ in range(CONFLICTS_PER_PUSH_MAX):
                if state.witness_size > kept.checkpoint.size:
                    # The witness already holds a larger size of ours (another member pushed
                    # it): nothing to do until a larger checkpoint is kept.
                    self._done = kept
                    return True
                if await self._send(kept):
                    return True
            raise _Failed(Failure.CONFLICT, "the witness answered 409 again")
        except _Failed as failed:
            state.failures[failed.reason] += 1
            state.last_error = f"{failed.reason}: {failed}"[:300]
            self._warn(
                (f"witness {failed.reason}", self.settings.name),
                "witness %s: push of size %d failed: %s (%s)",
                self.settings.name,
                kept.checkpoint.size,
                failed.reason,
                str(failed)[:200],
            )
            return False

    async def _send(self, kept: KeptCheckpoint) -> bool:
        """One request; True once cosigned, False after a 409 that taught the witness's size
        (the caller sends again); raises _Failed."""
        state = self.state
        store = self.service.store
        size = kept.checkpoint.size
        old = state.witness_size
        proof = tlog.consistency_proof(old, size, store.log_hash)
        members = Note(kept.note.text, kept.note.signatures[: kept.member_signatures])
        body = AddCheckpointRequest(old, tuple(proof), members).to_bytes()
        url = self.settings.url.rstrip("/") + "/add-checkpoint"
        timeout = aiohttp.ClientTimeout(total=self.settings.request_timeout_ms / 1000)
        state.pushes += 1
        started = time.monotonic()
        try:
            async with self._session().post(url, data=body, timeout=timeout) as response:
                answer = await response.content.read(ANSWER_BYTES_MAX + 1)
                status = response.status
                media = response.headers.get("Content-Type", "")
        except TimeoutError:
            raise _Failed(Failure.TIMEOUT, f"no answer within {timeout.total} s") from None
        except (aiohttp.ClientError, OSError, ValueError) as error:
            raise _Failed(Failure.UNREACHABLE, str(error) or type(error).__name__) from None
        finally:
            state.latency_count += 1
            state.latency_sum_ms += (time.monotonic() - started) * 1000
        if len(answer) > ANSWER_BYTES_MAX:
            raise _Failed(Failure.BAD_ANSWER, f"an answer over {ANSWER_BYTES_MAX} bytes")
        if status == 200:
            self._cosigned(kept, answer)
            return True
        if status == 409 and media.split(";")[0].strip() == SIZE_CONTENT_TYPE:
            self._learn_size(old, answer)
            return False
        reason = {403: Failure.NOT_SIGNED, 404: Failure.UNKNOWN_LOG, 422: Failure.BAD_PROOF}
        detail = answer[:200].decode("utf-8", "replace").strip()
        raise _Failed(reason.get(status, Failure.HTTP_STATUS), f"HTTP {status} {detail}")

    def _learn_size(self, old: int, answer: bytes) -> None:
        text = answer.decode("ascii", "replace").strip()
        if not text.isdigit() or len(text) > 19 or (text != "0" and text.startswith("0")):
            raise _Failed(Failure.BAD_ANSWER, f"a 409 whose body is not a size: {text[:40]!r}")
        size = int(text)
        log_size = self.service.store.log_size
        if size == old:
            raise _Failed(Failure.FORKED, f"the witness cosigned size {size} with another root")
        if size > log_size:
            raise _Failed(Failure.FORKED, f"the witness has size {size}, this log only {log_size}")
        self.state.witness_size = size

    def _cosigned(self, kept: KeptCheckpoint, answer: bytes) -> None:
        try:
            lines = answer.decode("utf-8").splitlines()
        except UnicodeDecodeError:
            raise _Failed(Failure.BAD_ANSWER, "the answer is not UTF-8") from None
        valid: list[NoteSignature] = []
        for line in lines[:NOTE_SIGNATURES_MAX]:
            try:
                signature = NoteSignature.parse_line(line)
            except NoteError:
                continue
            if (signature.name, signature.key_id) != (self.key.name, self.key.key_id):
                continue  # another key of the witness's: ignored
            try:
                verify_note(Note(kept.note.text, (signature,)), [self.key])
            except NoteError:
                continue
            valid.append(signature)
        if not valid:
            raise _Failed(Failure.BAD_ANSWER, "no valid cosignature of the configured key")
        state = self.state
        state.witness_size = kept.checkpoint.size
        state.cosigned_size = kept.checkpoint.size
        state.cosignatures += 1
        state.last_error = None
        state.last_success_ms = self._clock_ms()
        self._done = kept
        self.service.add_cosignatures(kept.checkpoint, valid[-1:])


class Witnesses:
    """The pushers of a node's ``[[witnesses]]``, their tasks and their HTTP session."""

    def __init__(
        self,
        settings: Sequence[WitnessSettings],
        service: CheckpointService,
        *,
        warn: Callable[..., None] | None = None,
    ) -> None:
        self._session_: aiohttp.ClientSession | None = None
        self.pushers = [
            WitnessPusher(entry, service, self._session, warn=warn) for entry in settings
        ]
        for pusher in self.pushers:
            service.listeners.append(pusher.wake)
        self._tasks: list[asyncio.Task[None]] = []

    def _session(self) -> aiohttp.ClientSession:
        if self._session_ is None or self._session_.closed:
            connector = aiohttp.TCPConnector(limit_per_host=1)
            self._session_ = aiohttp.ClientSession(connector=connector)
        return self._session_

    def start(self) -> None:
        for pusher in self.pushers:
            name = f"sceau-witness-{pusher.settings.name}"
            self._tasks.append(asyncio.create_task(self._guarded(pusher), name=name))

    async def _guarded(self, pusher: WitnessPusher) -> None:
        """A pusher's task: a bug of ours in it is logged, and it starts again after the
        longest backoff, without touching the node."""
        while True:
            try:
                await pusher.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the pusher of witness %s failed", pusher.settings.name)
                await asyncio.sleep(pusher.settings.backoff_max_ms / 1000)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session_ is not None:
            await self._session_.close()
            self._session_ = None

    def status(self) -> list[dict[str, Any]]:
        return [pusher.state.status() for pusher in self.pushers]
