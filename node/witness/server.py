"""The witness server: tlog-witness ``add-checkpoint`` over HTTP, with metrics and a status.

Theory of operation
-------------------
A witness is run by someone outside the consortium (a préfecture, a chamber of accounts). It
remembers, per log, the latest checkpoint it cosigned, and cosigns a new one only if a proof
shows that the new tree extends that one. Whoever shows two histories — one to a citizen, one
to an auditor — must then get both cosigned, and no honest witness will cosign the second.

``POST <prefix>/add-checkpoint`` follows c2sp.org/tlog-witness to the status code:

==========  ================================================================================
status      when
==========  ================================================================================
200         cosigned: the body is the witness's cosignature line (``text/plain``)
400         the body is not a request (or the old size is above the checkpoint's size)
403         fewer than the log's quorum of distinct member keys signed it, or one failed
404         the checkpoint's origin is not a log this witness is configured for
408/413     the body was too slow or too large (budgets, before any parsing)
409         the old size is not the size last cosigned (body: that size, ``text/x.tlog.size``),
            or the sizes match and the roots do not
422         the consistency proof from the size last cosigned does not verify
503         the state could not be saved: nothing is cosigned
==========  ================================================================================

The order of the checks is that of the spec, cheapest and least trusting first: the body's
size, its syntax, the origin, the signatures (so that only a quorum of the members can make
the witness do anything more, or write anything), then — **under one lock** — the old size, the
root, the proof, the durable save of the new state, and only then the cosignature. The lock
makes check-and-save atomic (the spec's race: two requests must never both pass the check
against the same old state), and the critical section is shielded from cancellation, so that a
client that hangs up cannot leave the memory behind the disk. A 409 on equal sizes, or a 422,
for a checkpoint that a quorum signed, is a split view or a broken log: the request is kept in
``DIR/evidence`` (bounded) and logged (rate-limited).

Every refusal is counted by reason and shown in ``GET <prefix>/metrics`` (Prometheus text)
with the size last cosigned per log; ``GET /`` tells the witness's name, vkey and logs.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from ledger import crypto, merkle
from ledger.note import (
    AddCheckpointRequest,
    Checkpoint,
    KeyType,
    NoteError,
    NoteVerifierKey,
    cosign,
    verify_note,
)
from node.runtime.connections import (
    ConnectionGuard,
    GuardedSite,
    GuardLimits,
    Stage,
    metrics_text,
)
from node.runtime.daemon import LogAggregator
from node.witness.config import LogPolicy, WitnessConfig, parse_listen
from node.witness.state import Evidence, Latest, StateError, WitnessState

__all__ = ["Answer", "Outcome", "Witness", "create_app", "serve"]

log = logging.getLogger("sceau.witness")

SIZE_CONTENT_TYPE = "text/x.tlog.size"


class Outcome(enum.Enum):
    """What became of an add-checkpoint request; counted in the metrics."""

    COSIGNED = "cosigned"
    BODY_TOO_LARGE = "body_too_large"
    BODY_TOO_SLOW = "body_too_slow"
    MALFORMED = "malformed"
    UNKNOWN_ORIGIN = "unknown_origin"
    NOT_SIGNED_BY_QUORUM = "not_signed_by_quorum"
    OLD_SIZE_ABOVE_SIZE = "old_size_above_size"
    OLD_SIZE_MISMATCH = "old_size_mismatch"
    ROOT_MISMATCH = "root_mismatch"
    PROOF_INVALID = "proof_invalid"
    STATE_NOT_SAVED = "state_not_saved"


STATUS = {
    Outcome.COSIGNED: 200,
    Outcome.BODY_TOO_LARGE: 413,
    Outcome.BODY_TOO_SLOW: 408,
    Outcome.MALFORMED: 400,
    Outcome.UNKNOWN_ORIGIN: 404,
    Outcome.NOT_SIGNED_BY_QUORUM: 403,
    Outcome.OLD_SIZE_ABOVE_SIZE: 400,
    Outcome.OLD_SIZE_MISMATCH: 409,
    Outcome.ROOT_MISMATCH: 409,
    Outcome.PROOF_INVALID: 422,
    Outcome.STATE_NOT_SAVED: 503,
}
EVIDENCE_OUTCOMES = frozenset({Outcome.ROOT_MISMATCH, Outcome.PROOF_INVALID})
"""Refusals of a quorum-signed checkpoint that prove the log showed two histories (or is
broken): kept in ``DIR/evidence``."""


@dataclass(frozen=True, slots=True)
class Answer:
    """An HTTP answer: outcome, body and content type (the status follows the outcome)."""

    outcome: Outcome
    body: str
    content_type: str = "text/plain"

    @property
    def status(self) -> int:
        return STATUS[self.outcome]


class Witness:
    """The add-checkpoint logic over a state, a key and the configured logs (no HTTP here)."""

    def __init__(
        self,
        config: WitnessConfig,
        key: crypto.PrivateKey,
        *,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self._key = key
        self._clock_s = clock_s
        self.vkey = NoteVerifierKey.for_private_key(config.name, KeyType.COSIGNATURE_V1, key)
        self.logs: dict[str, LogPolicy] = {policy.origin: policy for policy in config.logs}
        self.state = WitnessState(config.directory)
        self.evidence = Evidence(config.directory, config.limits.evidence_files_max)
        self.outcomes: collections.Counter[Outcome] = collections.Counter()
        self.evidence_recorded = 0
        self._lock = asyncio.Lock()
        self._log = LogAggregator(
            log, lines_per_interval_max=config.limits.log_lines_per_minute_max, interval_ms=60_000
        )

    def refuse(self, outcome: Outcome, message: str, *, origin: str = "-") -> Answer:
        """Count and (rate-limited) log a refusal; its answer carries ``message``."""
        self.outcomes[outcome] += 1
        self._log.log(
            logging.INFO, (outcome.value, origin), "refused (%s): %s", outcome.value, message
        )
        return Answer(outcome, message + "\n")

    async def add_checkpoint(self, body: bytes) -> Answer:
        """Check an add-checkpoint request body and cosign it, or say why not."""
        try:
            request = AddCheckpointRequest.parse(body)
            checkpoint = Checkpoint.from_note(request.checkpoint)
        except NoteError as error:
            return self.refuse(Outcome.MALFORMED, str(error))
        policy = self.logs.get(checkpoint.origin)
        if policy is None:
            return self.refuse(Outcome.UNKNOWN_ORIGIN, "this witness does not know this origin")
        try:
            signers = verify_note(request.checkpoint, policy.keys)
        except NoteError as error:
            return self.refuse(Outcome.NOT_SIGNED_BY_QUORUM, str(error), origin=policy.origin)
        if len(signers) < policy.quorum:
            return self.refuse(
                Outcome.NOT_SIGNED_BY_QUORUM,
                f"{len(signers)} member signature(s), {policy.quorum} needed",
                origin=policy.origin,
            )
        if request.old_size > checkpoint.size:
            return self.refuse(
                Outcome.OLD_SIZE_ABOVE_SIZE,
                f"old size {request.old_size} is above the checkpoint's size {checkpoint.size}",
                origin=policy.origin,
            )
        # The check and the save are one step, never interrupted halfway (module docstring).
        return await asyncio.shield(self._check_and_cosign(request, checkpoint, body))

    async def _check_and_cosign(
        self, request: AddCheckpointRequest, checkpoint: Checkpoint, body: bytes
    ) -> Answer:
        origin = checkpoint.origin
        async with self._lock:
            latest = self.state.latest(origin)
            if request.old_size != latest.size:
                answer = self.refuse(
                    Outcome.OLD_SIZE_MISMATCH,
                    f"old size {request.old_size}, last cosigned {latest.size}",
                    origin=origin,
                )
                return Answer(answer.outcome, f"{latest.size}\n", SIZE_CONTENT_TYPE)
            if checkpoint.size == latest.size and checkpoint.root != latest.root:
                await self._keep_evidence(Outcome.ROOT_MISMATCH, origin, latest, body)
                return self.refuse(
                    Outcome.ROOT_MISMATCH,
                    f"size {latest.size} was cosigned with another root",
                    origin=origin,
                )
            if not merkle.verify_consistency(
                latest.size, checkpoint.size, latest.root, checkpoint.root, list(request.proof)
            ):
                await self._keep_evidence(Outcome.PROOF_INVALID, origin, latest, body)
                return self.refuse(
                    Outcome.PROOF_INVALID,
                    f"no consistency from size {latest.size} to {checkpoint.size}",
                    origin=origin,
                )
            if checkpoint.size != latest.size:
                try:
                    await asyncio.to_thread(
                        self.state.save, origin, Latest(checkpoint.size, checkpoint.root)
                    )
                except StateError as error:
                    self._log.log(
                        logging.ERROR,
                        ("state", origin),
                        "%s: nothing is cosigned until this is fixed",
                        error,
                    )
                    return self.refuse(Outcome.STATE_NOT_SAVED, "the witness cannot save its state")
            cosignature = cosign(
                request.checkpoint.text, self.config.name, self._key, int(self._clock_s())
            )
        self.outcomes[Outcome.COSIGNED] += 1
        return Answer(Outcome.COSIGNED, cosignature.line())

    async def _keep_evidence(
        self, outcome: Outcome, origin: str, latest: Latest, body: bytes
    ) -> None:
        try:
            path = await asyncio.to_thread(
                self.evidence.record, outcome.value, origin, latest, body
            )
        except OSError as error:
            self._log.log(logging.ERROR, ("evidence", origin), "cannot keep evidence: %s", error)
            return
        self.evidence_recorded += 1
        self._log.log(
            logging.WARNING,
            ("split-view", origin),
            "a quorum of the members of %s signed a checkpoint inconsistent with the one "
            "this witness cosigned (%s); kept as evidence in %s",
            origin,
            outcome.value,
            path,
        )

    def status(self) -> dict:
        """``GET /``: who the witness is and where each log stands."""
        return {
            "name": self.config.name,
            "vkey": self.vkey.vkey,
            "logs": [
                {
                    "origin": origin,
                    "size": self.state.latest(origin).size,
                    "quorum": policy.quorum,
                    "members": len(policy.keys),
                }
                for origin, policy in sorted(self.logs.items())
            ],
        }

    def metrics(self) -> str:
        """Prometheus text: requests by outcome, size last cosigned per log, evidence kept."""
        lines = [
            "# HELP sceau_witness_requests_total add-checkpoint requests by outcome.",
            "# TYPE sceau_witness_requests_total counter",
        ]
        for outcome in Outcome:
            count = self.outcomes[outcome]
            lines.append(f'sceau_witness_requests_total{{outcome="{outcome.value}"}} {count}')
        lines += [
            "# HELP sceau_witness_log_size Size of the latest checkpoint cosigned, per log.",
            "# TYPE sceau_witness_log_size gauge",
        ]
        for origin in sorted(self.logs):
            size = self.state.latest(origin).size
            lines.append(f'sceau_witness_log_size{{origin="{_label(origin)}"}} {size}')
        lines += [
            "# HELP sceau_witness_evidence_recorded_total Refused quorum-signed checkpoints "
            "kept as evidence of a split view.",
            "# TYPE sceau_witness_evidence_recorded_total counter",
            f"sceau_witness_evidence_recorded_total {self.evidence_recorded}",
            "# HELP sceau_witness_log_lines_suppressed_total Log lines counted but not written.",
            "# TYPE sceau_witness_log_lines_suppressed_total counter",
            f"sceau_witness_log_lines_suppressed_total {self._log.suppressed_total}",
        ]
        return "\n".join(lines) + "\n"

    def flush_logs(self) -> None:
        self._log.flush()


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


# --- HTTP -------------------------------------------------------------------------------------

WITNESS_KEY: web.AppKey[Witness] = web.AppKey("witness", Witness)
GUARD_KEY: web.AppKey[ConnectionGuard] = web.AppKey("guard", ConnectionGuard)


async def _add_checkpoint(request: web.Request) -> web.Response:
    witness = request.app[WITNESS_KEY]
    limits = witness.config.limits
    if request.content_length is not None and request.content_length > limits.request_bytes_max:
        answer = witness.refuse(
            Outcome.BODY_TOO_LARGE, f"the body is larger than {limits.request_bytes_max} bytes"
        )
        return _response(answer)
    try:
        async with asyncio.timeout(limits.request_timeout_ms / 1000):
            body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        answer = witness.refuse(
            Outcome.BODY_TOO_LARGE, f"the body is larger than {limits.request_bytes_max} bytes"
        )
        return _response(answer)
    except TimeoutError:
        return _response(witness.refuse(Outcome.BODY_TOO_SLOW, "the body came too slowly"))
    return _response(await witness.add_checkpoint(body))


def _response(answer: Answer) -> web.Response:
    response = web.Response(status=answer.status, text=answer.body)
    response.content_type = answer.content_type
    response.charset = None if answer.content_type == SIZE_CONTENT_TYPE else "utf-8"
    return response


async def _metrics(request: web.Request) -> web.Response:
    witness = request.app[WITNESS_KEY]
    guard = request.app[GUARD_KEY]
    text = witness.metrics() + metrics_text({"witness": guard}, guard.counters)
    return web.Response(text=text, content_type="text/plain", charset="utf-8")


async def _status(request: web.Request) -> web.Response:
    return web.json_response(request.app[WITNESS_KEY].status())


def guard_limits(config: WitnessConfig) -> GuardLimits:
    """The listening port's connection budget: settled once its request headers are in."""
    limits = config.limits
    return GuardLimits(
        connections_max=limits.connections_max,
        connections_per_address_max=limits.connections_per_address_max,
        unsettled_max=limits.connections_max,
        unsettled_strangers_max=limits.connections_max,
        unsettled_bytes_max=limits.header_bytes_max,
        settle_stage=Stage.HEADERS,
        milestones_ms=((Stage.HEADERS, limits.header_timeout_ms),),
    )


def create_app(witness: Witness, guard: ConnectionGuard | None = None) -> web.Application:
    """The aiohttp application of ``witness`` (``guard``: the port's connection budget)."""
    config = witness.config
    app = web.Application(client_max_size=config.limits.request_bytes_max)
    app[WITNESS_KEY] = witness
    app[GUARD_KEY] = guard or ConnectionGuard(name="witness", limits=guard_limits(config))
    app.router.add_post(f"{config.prefix}/add-checkpoint", _add_checkpoint)
    app.router.add_get(f"{config.prefix}/metrics", _metrics)
    app.router.add_get("/", _status)
    return app


async def serve(
    witness: Witness, listen: str, *, ready: Callable[[str], None] | None = None
) -> None:
    """Serve ``witness`` on ``listen`` (HOST:PORT; port 0 picks one) until SIGINT/SIGTERM.
    ``ready`` is called with the URL once the port is open."""
    host, port = parse_listen(listen)
    guard = ConnectionGuard(name="witness", limits=guard_limits(witness.config))
    runner = web.AppRunner(
        create_app(witness, guard),
        access_log=None,
        keepalive_timeout=witness.config.limits.keepalive_timeout_ms / 1000,
    )
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(number, stop.set)
    try:
        site = GuardedSite(runner, host, port, guard=guard)
        await site.start()
        log.info(
            "witness %s listening on %s (%d logs)",
            witness.config.name,
            site.name,
            len(witness.logs),
        )
        if ready is not None:
            ready(site.name)
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=5)
            witness.flush_logs()
    finally:
        await runner.cleanup()
        log.info("witness stopped")
