"""The handlers of the routes, over one node.

Each handler checks its parameters (node/api/parameters.py) before it touches the node, builds
a canonical document (node/api/display.py) and hands it to :func:`~node.api.responses.respond`.
The contracts' reads share one handler, :meth:`Handlers.contract_query`, driven by the
contracts' declarations: the API holds no contract's paths, keys or limits. The
fault-injection handlers are apart (node/api/debug.py).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from contracts.base import QueryRoute, Rejection
from contracts.registry import receipt_anchors
from ledger import encoding
from ledger.bundle import block_frame, genesis_frame
from ledger.model import ModelDecodeError, Transaction
from ledger.namespace import CONTRACT_NAME_PATTERN
from ledger.note import NoteError, cosignature_timestamp
from ledger.queryproof import QUERY_ANSWER_BYTES_MAX, build_query_proof, reads_are_proven
from ledger.store import CorruptionError, StoreError
from node.api import display
from node.api.debug import DebugHandlers
from node.api.limits import (
    BUNDLE_FRAMES_MAX,
    BUNDLE_RESPONSE_BYTES_MAX,
    HEIGHT_MAX,
    OUTCOME_POLL_S,
    PREPARED_EXPIRY_BLOCKS,
    STATE_KEY_BYTES_MAX,
    SUBMISSION_LIMITS,
    WAITING_SUBMISSIONS_MAX,
    SubmissionLimiter,
)
from node.api.log import LogHandlers
from node.api.metrics import METRICS_EXTRA_KEY, metrics_text
from node.api.openapi import openapi_document
from node.api.page import PageHandlers
from node.api.parameters import (
    HEX,
    batch_items,
    contract_parameter,
    parse_boolean,
    parse_bounded,
    parse_height,
    parse_tx_id,
    parse_wait,
    query_parameters,
    transaction_hex,
)
from node.api.prepared import prepared_description, read_json_object, signed_transaction
from node.api.problems import ProblemError, rejection_code, rejection_problem
from node.api.query import RecordingView, query_path
from node.api.responses import (
    BUNDLE,
    JSON,
    MSGPACK,
    MSGPACK_TYPES,
    PROMETHEUS_TEXT,
    TIP_HEIGHT_HEADER,
    json_bytes,
    respond,
)
from node.api.routes import DEBUG_ROUTES, LOG_ROUTES, PAGE_ROUTES, Route, routes_for
from node.runtime.config import NodeConfig
from node.runtime.daemon import Node
from node.runtime.debug_token import ensure_token

__all__ = ["Handlers"]

log = logging.getLogger("sceau.api")

NOTE_TEXT = "text/plain; charset=utf-8"
CHECKPOINT_CACHE_CONTROL = "max-age=2"
"""A checkpoint changes with every block; clients and caches may keep one two seconds."""
QUERY_FAILURE_KINDS_LOGGED_MAX = 256
"""Kinds of query failure (contract, exception type) logged with their traceback; the
others are only counted, so that a failing plug-in cannot flood the log."""


class Handlers:
    """The handlers of :data:`~node.api.routes.ROUTES` over one node (see the package doc)."""

    def __init__(self, node: Node, config: NodeConfig) -> None:
        self.node = node
        self.config = config
        self.limiter = SubmissionLimiter(config.api_submissions_per_s, config.api_submission_burst)
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self.waiting = 0
        self.openapi = json_bytes(openapi_document(routes_for(config)))
        self.debug_token = ensure_token(config.data_dir) if config.fault_injection else None
        self.debug = None if self.debug_token is None else DebugHandlers(node, self.debug_token)
        self.query_failures: collections.Counter[str] = collections.Counter()
        """Queries whose contract raised an unexpected error, by contract."""
        self._query_failures_logged: set[tuple[str, str]] = set()
        self.log = LogHandlers(node)
        """The log of every act's tiles and proofs (node/api/log.py)."""
        self.page = PageHandlers(node)
        """The verification page (node/api/page.py)."""

    def handler(self, route: Route) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The coroutine that serves ``route``: a method (of :class:`DebugHandlers` for a
        debug route), or the handler of a contract's read."""
        if route in DEBUG_ROUTES:
            assert self.debug is not None, "debug routes exist only with fault_injection"
            debug_method: Callable[[web.Request], Awaitable[web.Response]]
            debug_method = getattr(self.debug, route.handler)
            return debug_method
        if route in PAGE_ROUTES:
            page_method: Callable[[web.Request], Awaitable[web.Response]]
            page_method = getattr(self.page, route.handler)
            return page_method
        if route in LOG_ROUTES:
            log_method: Callable[[web.Request], Awaitable[web.Response]]
            log_method = getattr(self.log, route.handler)
            return log_method
        if route.contract_query is None:
            method: Callable[[web.Request], Awaitable[web.Response]] = getattr(self, route.handler)
            return method
        contract, query = route.contract_query

        async def contract_read(request: web.Request) -> web.Response:
            return await self.contract_query(contract, query, request)

        contract_read.__name__ = route.handler
        return contract_read

    # --- submission ---------------------------------------------------------------------------

    async def submit_transaction(self, request: web.Request) -> web.Response:
        self._charge_submission(request)
        wait_s = parse_wait(query_parameters(request, ("wait",)).get("wait"))
        transaction = await self._read_transaction(request)
        return await self._submit(request, transaction, wait_s)

    def _charge_submission(self, request: web.Request) -> None:
        """One token of the client's bucket, before its body is read; else rate_limited.
        An observer refuses every submission first (observer_read_only)."""
        self._refuse_on_observer()
        retry_after_s = self.limiter.take(request.remote or "unknown")
        if retry_after_s is not None:
            raise self._rate_limited(retry_after_s)

    def _refuse_on_observer(self) -> None:
        observer = self.config.observer
        if observer is not None:
            raise ProblemError(
                "observer_read_only",
                "this node is an observer: it serves the chain but accepts no transaction; "
                f"submit to a member ({', '.join(observer.follow)})",
            )

    def _rate_limited(self, retry_after_s: float) -> ProblemError:
        return ProblemError(
            "rate_limited",
            f"at most {self.config.api_submissions_per_s:g} submissions per second from "
            f"one address (bursts of {self.config.api_submission_burst})",
            headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
        )

    async def submit_batch(self, request: web.Request) -> web.Response:
        """``POST /v1/transactions/batch``: many signed transactions, one outcome each.

        The body's size is bounded as for one transaction; the number of transactions is read
        from it, and the client's bucket charged one token per transaction, before anything
        is decoded or verified. A bucket with fewer tokens admits that many, in order; the
        rest answer ``rate_limited`` (send them again). One transaction that does not decode
        refuses the whole batch (``invalid_transaction``, naming its index): nothing of it
        is admitted. Admission is one pass (``Node.submit_many``): one dry run for the batch.
        """
        self._refuse_on_observer()
        wait_s = parse_wait(query_parameters(request, ("wait",)).get("wait"))
        items = batch_items(await self._read_submission_body(request, batch=True), request)
        granted, retry_after_s = self.limiter.take_up_to(request.remote or "unknown", len(items))
        if granted == 0:
            assert retry_after_s is not None
            raise self._rate_limited(retry_after_s)
        transactions = [_decoded(data, f"transactions[{i}]: ") for i, data in enumerate(items)]
        outcomes: list[bool | Rejection] = list(self.node.submit_many(transactions[:granted]))
        if granted < len(transactions):
            limited = Rejection(
                "rate_limited",
                f"over this address's rate limit ({self.config.api_submissions_per_s:g} "
                f"transactions per second, bursts of {self.config.api_submission_burst}): "
                f"send it again in {max(1, math.ceil(retry_after_s or 1))} s",
            )
            outcomes.extend([limited] * (len(transactions) - granted))
        admitted = sum(outcome is True for outcome in outcomes)
        waited = [
            transaction.tx_id
            for transaction, outcome in zip(transactions, outcomes, strict=True)
            if not isinstance(outcome, Rejection)
        ]
        if wait_s > 0 and waited and self.waiting < WAITING_SUBMISSIONS_MAX:
            self.waiting += 1
            try:
                await self._await_outcomes(waited, wait_s)
            finally:
                self.waiting -= 1
        answer = [
            self._batch_outcome(transaction.tx_id, outcome)
            for transaction, outcome in zip(transactions, outcomes, strict=True)
        ]
        return respond(request, {"admitted": admitted, "transactions": answer})

    def _batch_outcome(self, tx_id: bytes, outcome: bool | Rejection) -> dict[str, Any]:
        """One transaction's entry of a batch's answer (display.BatchOutcome)."""
        if isinstance(outcome, Rejection):
            code = rejection_code(outcome)
            return {"tx_id": tx_id, "status": "rejected", "code": code, "reason": outcome.reason}
        node = self.node
        location = node.store.transaction_location(tx_id)
        if location is not None:
            return {"tx_id": tx_id, "status": "committed", "height": location[0]}
        if tx_id in node.mempool:
            return {"tx_id": tx_id, "status": "pending"}
        rejection = node.mempool.rejection(tx_id)
        if rejection is not None:
            return self._batch_outcome(tx_id, rejection)
        return {"tx_id": tx_id, "status": "unknown"}

    async def _await_outcomes(self, tx_ids: list[bytes], wait_s: float) -> None:
        """Wait up to ``wait_s`` in all for every one of ``tx_ids`` to be settled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        for tx_id in tx_ids:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            await self._await_outcome(tx_id, remaining)

    async def _submit(
        self, request: web.Request, transaction: Transaction, wait_s: float
    ) -> web.Response:
        """Admit ``transaction`` and answer as a submission does (committed, pending, …)."""
        tx_id = transaction.tx_id
        try:
            self.node.submit(transaction)
        except Rejection as rejection:
            raise rejection_problem(rejection, tx_id) from None
        if wait_s > 0 and self.waiting < WAITING_SUBMISSIONS_MAX:
            self.waiting += 1
            try:
                await self._await_outcome(tx_id, wait_s)
            finally:
                self.waiting -= 1
        node = self.node
        # The receipt of an act issued for a principal proves the signer's right (an issuer's
        # key, a delegate): the contracts' declarations say which acts those are.
        status = display.transaction_status(
            node.store,
            node.mempool,
            node.application,
            tx_id,
            anchors=receipt_anchors(node.application.engine.contracts.values()),
        )
        if status is None:
            return respond(request, {"tx_id": tx_id, "status": "unknown"}, status=202)
        if status["status"] == "rejected":
            rejection = Rejection(status["code"], status["reason"])
            raise rejection_problem(rejection, tx_id)
        if status["status"] == "committed":
            return respond(request, status)
        return respond(
            request, status, status=202, headers={"Location": f"/v1/transactions/{tx_id.hex()}"}
        )

    # --- transactions from any language (node/api/prepared.py, ledger/txjson.py) --------------

    async def prepare_transaction(self, request: web.Request) -> web.Response:
        """``POST /v1/transactions/prepare``: a JSON description → the bytes to sign."""
        query_parameters(request, ())
        document = read_json_object(await self._read_json_body(request))
        prepared = prepared_description(
            document,
            chain_id=self.node.store.chain_id,
            nonce=secrets.randbits(63),
            expiry_height=self.node.store.height + PREPARED_EXPIRY_BLOCKS,
        )
        return respond(request, prepared.document())

    async def submit_signed(self, request: web.Request) -> web.Response:
        """``POST /v1/transactions/signed``: the description again, with its signature; the
        transaction is rebuilt from the description and submitted as any other."""
        self._charge_submission(request)
        wait_s = parse_wait(query_parameters(request, ("wait",)).get("wait"))
        document = read_json_object(await self._read_json_body(request))
        transaction = signed_transaction(document, chain_id=self.node.store.chain_id)
        return await self._submit(request, transaction, wait_s)

    async def _read_json_body(self, request: web.Request) -> bytes:
        if request.content_type != JSON:
            raise ProblemError("unsupported_media_type", f"send {JSON}")
        limit = self.config.api_body_bytes_max
        if request.content_length is not None and request.content_length > limit:
            raise ProblemError("body_too_large", f"the body exceeds {limit} bytes")
        return await request.read()  # aiohttp raises HTTPRequestEntityTooLarge over the limit

    async def _read_transaction(self, request: web.Request) -> Transaction:
        body = await self._read_submission_body(request, batch=False)
        data = body if request.content_type in MSGPACK_TYPES else transaction_hex(body)
        return _decoded(data)

    async def _read_submission_body(self, request: web.Request, *, batch: bool) -> bytes:
        """The body of a submission, JSON or msgpack, within ``api_body_bytes_max``."""
        media_type = request.content_type
        if media_type != JSON and media_type not in MSGPACK_TYPES:
            json_form = '{"transactions": ["<hex>", …]}' if batch else '{"transaction": "<hex>"}'
            msgpack_form = "an array of the canonical bytes" if batch else "the canonical bytes"
            raise ProblemError(
                "unsupported_media_type", f"send {JSON} ({json_form}) or {MSGPACK} ({msgpack_form})"
            )
        limit = self.config.api_body_bytes_max
        if request.content_length is not None and request.content_length > limit:
            raise ProblemError("body_too_large", f"the body exceeds {limit} bytes")
        return await request.read()  # aiohttp raises HTTPRequestEntityTooLarge over the limit

    async def _await_outcome(self, tx_id: bytes, wait_s: float) -> None:
        """Wait up to ``wait_s`` for ``tx_id`` to be committed or rejected."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        node = self.node
        while tx_id in node.mempool:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            if await node.wait_for_commit(tx_id, min(remaining, OUTCOME_POLL_S)):
                return

    # --- reads --------------------------------------------------------------------------------

    async def get_transaction(self, request: web.Request) -> web.Response:
        parameters = query_parameters(request, ("with_status",))
        tx_id = parse_tx_id(request.match_info["tx_id"])
        with_status = parse_boolean("with_status", parameters.get("with_status"))
        node = self.node
        # With the status, an anchor's receipt also proves its record at the tip; a transaction
        # that anchors nothing has no record: its receipt comes with "status": null. With or
        # without it, the receipt of an act issued for a principal proves the signer's right.
        status = display.transaction_status(
            node.store,
            node.mempool,
            node.application,
            tx_id,
            anchors=receipt_anchors(node.application.engine.contracts.values()),
            with_status=with_status,
        )
        if status is None:
            raise ProblemError(
                "unknown_transaction",
                "this node has not seen the transaction, or forgot why it was rejected",
            )
        return respond(request, status)

    async def get_latest_block(self, request: web.Request) -> web.Response:
        parameters = query_parameters(request, ("transactions",))
        with_transactions = parse_boolean("transactions", parameters.get("transactions"))
        height = self.node.store.height
        if height == 0:
            raise ProblemError(
                "unknown_block",
                "the chain has no block yet (height 0): the first block comes with the first "
                "transaction",
            )
        document = display.block_document(
            self.node.store, height, with_transactions=with_transactions
        )
        return respond(request, document)

    async def get_block(self, request: web.Request) -> web.Response:
        parameters = query_parameters(request, ("transactions",))
        height = parse_height(request.match_info["height"])
        with_transactions = parse_boolean("transactions", parameters.get("transactions"))
        tip = self.node.store.height
        if height > tip:
            raise ProblemError("unknown_block", f"no block at height {height}: the tip is {tip}")
        document = display.block_document(
            self.node.store, height, with_transactions=with_transactions
        )
        return respond(request, document)

    async def get_bundle(self, request: web.Request) -> web.Response:
        parameters = query_parameters(request, ("from", "count"))
        first = parse_bounded("from", parameters.get("from"), 0, 0, HEIGHT_MAX)
        count = parse_bounded(
            "count", parameters.get("count"), BUNDLE_FRAMES_MAX, 1, BUNDLE_FRAMES_MAX
        )
        store = self.node.store
        tip = store.height
        if first > tip:
            raise ProblemError("unknown_block", f"no frame {first}: the tip is at height {tip}")
        frames: list[bytes] = []
        size = 0
        for frame in range(first, min(tip, first + count - 1) + 1):
            if frame == 0:
                data = genesis_frame(store.genesis)
            else:
                block, certificate = store.block(frame), store.certificate(frame)
                assert block is not None and certificate is not None
                data = block_frame(block, certificate)
            if frames and size + len(data) > BUNDLE_RESPONSE_BYTES_MAX:
                break
            frames.append(data)
            size += len(data)
        return web.Response(
            body=b"".join(frames), content_type=BUNDLE, headers={TIP_HEIGHT_HEADER: str(tip)}
        )

    async def get_state(self, request: web.Request) -> web.Response:
        query_parameters(request, ())
        contract = request.match_info["contract"]
        key_hex = request.match_info["key_hex"]
        if not CONTRACT_NAME_PATTERN.fullmatch(contract):
            raise ProblemError("invalid_parameter", "contract: a contract name such as 'deeds'")
        if len(key_hex) > 2 * STATE_KEY_BYTES_MAX or not HEX.fullmatch(key_hex):
            raise ProblemError(
                "invalid_parameter",
                f"key_hex: 1 to {STATE_KEY_BYTES_MAX} bytes as lowercase hex",
            )
        if contract not in self.node.engine.contracts:
            raise ProblemError("contract_not_enabled", f"this consortium runs no {contract!r}")
        document = display.state_document(self.node.store, contract, bytes.fromhex(key_hex))
        return respond(request, document)

    # --- the contracts' reads (their QueryRoute declarations) ----------------------------------

    async def contract_query(
        self, contract: str, route: QueryRoute, request: web.Request
    ) -> web.Response:
        """Serve ``route``, a read ``contract`` declares (see :class:`~contracts.base.QueryRoute`).

        The parameters are checked first (unknown or repeated query parameters, then each
        declared pattern in order), so that only checked characters reach the contract's
        query string: no ``&``, ``=`` or ``?``.
        """
        parameters = query_parameters(request, (p.name for p in route.query_parameters()))
        path_values = {
            parameter.name: contract_parameter(parameter, request.match_info[parameter.name])
            for parameter in route.path_parameters()
        }
        for parameter in route.query_parameters():
            if parameter.name in parameters:
                contract_parameter(parameter, parameters[parameter.name])
        query_string = "&".join(f"{name}={value}" for name, value in parameters.items())
        path = route.query.format(**path_values) + (f"?{query_string}" if query_string else "")
        height = self.node.store.height
        answer = self._query(contract, route, path)
        document: dict[str, Any] = {"height": height}
        for parameter in route.path_parameters():
            value = path_values[parameter.name]
            if parameter.echo == "text":
                document[parameter.name] = value
            elif parameter.echo == "hex":
                document[parameter.name] = bytes.fromhex(value)
        document[route.answer] = answer
        return respond(request, document)

    def _query(self, contract: str, route: QueryRoute, path: str) -> Any:
        """The contract's answer to ``path``, its LookupError and ValueError as the problems
        the route declares (otherwise they are bugs, for the middleware to log)."""
        if contract not in self.node.engine.contracts:
            raise ProblemError("contract_not_enabled", f"this consortium does not run {contract}")
        store = self.node.store
        # Confirmed reads: absences proven by the state tree, never "unknown" for a lost index.
        state = store.confirmed_reads() if route.confirmed_reads else store
        try:
            return self.node.engine.query(state, contract, path)
        except (KeyError, IndexError, UnicodeError, encoding.EncodingError):
            raise  # not an answer: a bug or a damaged state, for the middleware to log
        except LookupError as error:
            if route.not_found is None:
                raise
            raise ProblemError(route.not_found, str(error)) from None
        except ValueError as error:
            if route.malformed is None:
                raise
            raise ProblemError(route.malformed, str(error)) from None

    # --- any contract's query -------------------------------------------------------------

    async def query_contract(self, request: web.Request) -> web.Response:
        """``GET /v1/query/{contract}/{path}`` (node/api/query.py): the contract's answer at
        the tip, with a proof of the state values it read when ``?proof=true``."""
        contract_name = request.match_info["contract"]
        if not CONTRACT_NAME_PATTERN.fullmatch(contract_name):
            raise ProblemError("invalid_parameter", "contract: a contract name such as 'deeds'")
        path, with_proof = query_path(request)
        contract = self.node.engine.contracts.get(contract_name)
        if contract is None:
            raise ProblemError("contract_not_enabled", f"this consortium runs no {contract_name!r}")
        store = self.node.store
        height = store.height
        if with_proof and height == 0:
            raise ProblemError(
                "unknown_block",
                "the chain has no block yet (height 0): a proof needs a certified header",
            )
        view = RecordingView(store.confirmed_reads(), contract_name)
        answer = self._run_query(contract_name, contract, path, view)
        try:
            encoded = encoding.pack(answer)
        except encoding.EncodingError as error:
            raise self._query_failure(contract_name, path, error) from None
        if len(encoded) > QUERY_ANSWER_BYTES_MAX:
            raise ProblemError(
                "answer_too_large",
                f"the answer takes {len(encoded)} bytes, over {QUERY_ANSWER_BYTES_MAX}: "
                "narrow the query",
            )
        document: dict[str, Any] = {
            "height": height,
            "contract": contract_name,
            "path": path,
            "answer": encoding.canonical_form(answer),
        }
        if with_proof:
            proof = build_query_proof(
                store,
                contract=contract_name,
                path=path,
                answer=encoded,
                reads=view.proven_reads(),
                complete=view.complete,
            )
            if not reads_are_proven(proof):
                raise CorruptionError(
                    "a value read for a query disagrees with the state tree", height=height
                )
            document["proof"] = proof.to_canonical()
        return respond(request, document)

    def _run_query(self, contract_name: str, contract: Any, path: str, view: Any) -> Any:
        """``contract.query(path, view)``; its LookupError and ValueError as problems, any
        other error a counted ``query_failed``; the store's own errors go on."""
        try:
            return contract.query(path, view)
        except StoreError:
            raise  # the store found damage: store_corrupted, whatever the contract
        except (KeyError, IndexError, UnicodeError, encoding.EncodingError) as error:
            raise self._query_failure(contract_name, path, error) from None
        except LookupError as error:
            raise ProblemError("not_found", _error_text(error, "nothing at this path")) from None
        except ValueError as error:
            raise ProblemError("invalid_query", _error_text(error, "malformed path")) from None
        except Exception as error:  # a plug-in's bug must not take the node down
            raise self._query_failure(contract_name, path, error) from None

    def _query_failure(self, contract_name: str, path: str, error: Exception) -> ProblemError:
        """Count (and log, the first time of its kind) a contract's failure to answer."""
        self.query_failures[contract_name] += 1
        kind = (contract_name, type(error).__name__)
        if (
            kind not in self._query_failures_logged
            and len(self._query_failures_logged) < QUERY_FAILURE_KINDS_LOGGED_MAX
        ):
            self._query_failures_logged.add(kind)
            log.error(
                "contract %s failed to answer the query %r (%s; later failures of this kind "
                "are only counted)",
                contract_name,
                path[:200],
                type(error).__name__,
                exc_info=error,
            )
        return ProblemError(
            "query_failed",
            f"the contract {contract_name} failed to answer ({type(error).__name__}); "
            "the error is in the node's log",
        )

    # --- the log's checkpoints --------------------------------------------------------------

    def _kept_checkpoint(self) -> Any:
        kept = self.node.checkpoints.kept
        if kept is None:
            raise ProblemError("no_checkpoint", "the members have not signed a checkpoint yet")
        return kept

    async def get_log_checkpoint(self, request: web.Request) -> web.Response:
        query_parameters(request, ())
        kept = self._kept_checkpoint()
        return web.Response(
            body=kept.note.to_bytes(),
            headers={"Content-Type": NOTE_TEXT, "Cache-Control": CHECKPOINT_CACHE_CONTROL},
        )

    async def get_log_checkpoint_json(self, request: web.Request) -> web.Response:
        query_parameters(request, ())
        kept = self._kept_checkpoint()
        checkpoint = kept.checkpoint
        witnesses = []
        for cosignature in kept.cosignatures:
            try:
                timestamp = cosignature_timestamp(cosignature)
            except NoteError:
                continue
            witnesses.append({"name": cosignature.name, "timestamp": timestamp})
        document = {
            "origin": checkpoint.origin,
            "size": checkpoint.size,
            "root": checkpoint.root,
            "height": kept.height,
            "signers": list(kept.signers),
            "witnesses": witnesses,
            "note": kept.note.to_bytes().decode(),
        }
        return respond(request, document, headers={"Cache-Control": CHECKPOINT_CACHE_CONTROL})

    # --- operations ---------------------------------------------------------------------------

    async def get_status(self, request: web.Request) -> web.Response:
        query_parameters(request, ())
        return respond(request, display.status_document(self.node.status()))

    async def get_health(self, request: web.Request) -> web.Response:
        query_parameters(request, ())
        if not self.node.running:
            raise ProblemError("unhealthy", "the node's ticker is not running")
        if self.node.store.damage is not None:
            raise ProblemError("unhealthy", f"the chain store is damaged: {self.node.store.damage}")
        try:
            self.node.store.safety_record()  # one read: fails once the store is closed
        except Exception:  # whatever plyvel raises, the answer is the same
            raise ProblemError("unhealthy", "the chain store cannot be read") from None
        return respond(request, {"status": "ok"})

    async def get_metrics(self, request: web.Request) -> web.Response:
        query_parameters(request, ())
        text = metrics_text(self.node, self.requests, query_failures=self.query_failures)
        extra = request.app.get(METRICS_EXTRA_KEY)
        if extra is not None:  # the listening ports' connection counts (node/tools/launch.py)
            text += extra()
        return web.Response(body=text.encode(), headers={"Content-Type": PROMETHEUS_TEXT})

    async def get_openapi(self, request: web.Request) -> web.Response:
        query_parameters(request, ())
        return web.Response(body=self.openapi, content_type=JSON, charset="utf-8")


def _decoded(data: bytes, where: str = "") -> Transaction:
    """The transaction of canonical bytes; an ``invalid_transaction`` problem otherwise
    (``where`` names a batch's member)."""
    try:
        return Transaction.from_bytes(data, SUBMISSION_LIMITS)
    except ModelDecodeError as error:
        raise ProblemError("invalid_transaction", f"{where}{error}") from None
    except encoding.EncodingError as error:
        raise ProblemError(
            "invalid_transaction", f"{where}transaction: not canonical msgpack: {error}"
        ) from None


_ERROR_TEXT_CHARACTERS_MAX = 300


def _error_text(error: Exception, default: str) -> str:
    """A contract's error message for a problem's detail: its text, bounded."""
    text = str(error.args[0]) if len(error.args) == 1 else str(error)
    return text[:_ERROR_TEXT_CHARACTERS_MAX] or default
