"""The API's failures: RFC 9457 problem objects with stable codes.

Failures are of two kinds (docs/architecture.md). Anything a client can send wrong raises a
:class:`ProblemError` with a stable code from :data:`PROBLEMS`, and becomes a problem object
(``application/problem+json``); a transaction refused by the node keeps the code of its
:class:`~contracts.base.Rejection`. Any other exception is our bug: the middleware
(node/api/app.py) logs it and answers a bare ``internal_error``.

Problem codes (also in docs/api.md; the ``code`` member is stable, the ``detail`` is for
people)::

    code                      status  when
    invalid_body              400     the submission body is not {"transaction": "<hex>"} JSON
    invalid_transaction       400     the transaction bytes are not hex / do not decode
    invalid_parameter         400     a malformed path or query parameter, an unknown or
                                      repeated query parameter
    invalid_id                400     a transaction id that is not 64 lowercase hex digits
    invalid_height            400     a height that is not an integer in 1..2**63-1
    invalid_query             400     a contract query the contract finds malformed
    invalid_links             400     PUT /v1/debug/links: not {"cut": [<peer member id>, …]}
    invalid_description       400     /v1/transactions/prepare and /signed: a transaction
                                      description that does not make a transaction
    prepared_mismatch         400     /v1/transactions/signed: a member of the prepare answer
                                      sent back is not what its description makes
    debug_forbidden           403     /v1/debug/*: no valid debug token, not from loopback, or
                                      through a proxy (a forwarding header)
    observer_read_only        403     POST /v1/transactions(/signed) to an observer: it accepts no
                                      transaction (the detail names the members it follows)
    not_found                 404     no such route; /v1/query/…: nothing at that path;
                                      /v1/issuers/{issuer}: no such issuer
    unknown_transaction       404     the node knows nothing of this transaction
    unknown_block             404     no block at this height (yet); no bundle frame there
    unknown_act               404     no act at this reference, digest or issuer
    beyond_log                404     /v1/log/…: a tile, an entry bundle or a proof of a size the
                                      log of every act has not reached
    no_checkpoint             404     /v1/log/checkpoint(.json): no consortium checkpoint yet
    contract_not_enabled      404     the consortium does not run this contract
    method_not_allowed        405     the route exists for other methods (see Allow)
    body_too_large            413     the body exceeds api_body_bytes_max
    unsupported_media_type    415     a body that is neither application/json nor msgpack
    rate_limited              429     too many submissions from this address (Retry-After)
    answer_too_large          422     /v1/query/…: the answer exceeds 4 MiB (narrow the query)
    internal_error            500     a bug of the node (logged); no details are given
    query_failed              500     /v1/query/…: the contract's query raised an error (a bug
                                      of the contract; counted, logged once per kind)
    store_corrupted           503     the node found its chain store damaged: it cannot tell
                                      what it lost, so it answers nothing from it (and stops)
    unhealthy                 503     /healthz: the node's ticker or store is not running, or
                                      its store is damaged
    http_error                4xx     any other refusal of the HTTP server (status as given)

    Transaction rejections (POST /v1/transactions) carry the rejection's own code, with
    status 422, except mempool_full (503) and signer_quota (429), both with Retry-After:
    bad_signature, wrong_chain, unknown_contract, unknown_action, invalid_arguments,
    expired_transaction, replayed_transaction, transaction_too_large, contract_failure,
    and every code of the contracts (not_a_member, wrong_signer, duplicate_reference, …).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from contracts.base import Rejection
from node.api.responses import PROBLEM_JSON, json_bytes
from node.runtime.config import NodeConfig

__all__ = [
    "PROBLEMS",
    "PROBLEM_TYPE_PREFIX",
    "REJECTION_STATUS",
    "ProblemError",
    "ProblemKind",
    "http_problem",
    "rejection_code",
    "rejection_problem",
]

PROBLEM_TYPE_PREFIX = "urn:sceau:problem:"


@dataclass(frozen=True, slots=True)
class ProblemKind:
    status: int
    title: str


PROBLEMS: dict[str, ProblemKind] = {
    "invalid_body": ProblemKind(400, "The request body is not a valid submission"),
    "invalid_transaction": ProblemKind(400, "The transaction does not decode"),
    "invalid_parameter": ProblemKind(400, "A parameter is malformed"),
    "invalid_id": ProblemKind(400, "Not a transaction id"),
    "invalid_height": ProblemKind(400, "Not a block height"),
    "invalid_query": ProblemKind(400, "The query is malformed"),
    "invalid_links": ProblemKind(400, "The link cut request is malformed"),
    "invalid_description": ProblemKind(400, "The transaction description is malformed"),
    "prepared_mismatch": ProblemKind(400, "The prepared transaction is not its description's"),
    "debug_forbidden": ProblemKind(403, "The fault-injection routes refuse this request"),
    "observer_read_only": ProblemKind(403, "This node is an observer: it accepts no transaction"),
    "not_found": ProblemKind(404, "Not found"),
    "unknown_transaction": ProblemKind(404, "Unknown transaction"),
    "unknown_block": ProblemKind(404, "Unknown block"),
    "unknown_act": ProblemKind(404, "Unknown act"),
    "beyond_log": ProblemKind(404, "The log has not reached this size"),
    "no_checkpoint": ProblemKind(404, "No consortium checkpoint yet"),
    "contract_not_enabled": ProblemKind(404, "The consortium does not run this contract"),
    "method_not_allowed": ProblemKind(405, "Method not allowed"),
    "body_too_large": ProblemKind(413, "The request body is too large"),
    "unsupported_media_type": ProblemKind(415, "Unsupported media type"),
    "rate_limited": ProblemKind(429, "Too many submissions"),
    "answer_too_large": ProblemKind(422, "The query's answer is too large"),
    "internal_error": ProblemKind(500, "Internal error"),
    "query_failed": ProblemKind(500, "The contract failed to answer the query"),
    "store_corrupted": ProblemKind(503, "The node's chain store is damaged"),
    "unhealthy": ProblemKind(503, "The node is not healthy"),
    "http_error": ProblemKind(400, "The server refused the request"),
}
"""The API's own problem codes (see the module doc). Never rename one: clients match on them."""

REJECTION_STATUS = {"mempool_full": 503, "signer_quota": 429}
"""Transaction rejections that are not the transaction's fault; every other one is 422."""
REJECTION_TITLE = "The transaction was rejected"
_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


class ProblemError(Exception):
    """A request the API refuses; becomes an RFC 9457 problem object.

    ``code`` is a key of :data:`PROBLEMS`, or (with ``status`` and ``title`` given) the code
    of a transaction rejection. ``extra`` adds members (``tx_id``) to the object.
    """

    def __init__(
        self,
        code: str,
        detail: str,
        *,
        status: int | None = None,
        title: str | None = None,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{code}: {detail}")
        kind = PROBLEMS.get(code)
        assert kind is not None or (status is not None and title is not None), code
        self.code = code
        self.detail = detail
        self.status = status if status is not None else kind.status
        self.title = title if title is not None else kind.title
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})

    def response(self) -> web.Response:
        document = {
            "type": PROBLEM_TYPE_PREFIX + self.code,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            "code": self.code,
            **self.extra,
        }
        return web.Response(
            status=self.status,
            body=json_bytes(document),
            content_type=PROBLEM_JSON,
            charset="utf-8",
            headers=self.headers,
        )


def rejection_code(rejection: Rejection) -> str:
    """The code a client sees for ``rejection``: its own, or ``rejected`` for a plug-in's
    code that is not one."""
    return rejection.code if _CODE.fullmatch(rejection.code) else "rejected"


def rejection_problem(rejection: Rejection, tx_id: bytes) -> ProblemError:
    code = rejection_code(rejection)
    status = REJECTION_STATUS.get(code, 422)
    headers = {"Retry-After": "1"} if status in (429, 503) else None
    return ProblemError(
        code,
        rejection.reason,
        status=status,
        title=REJECTION_TITLE,
        headers=headers,
        extra={"tx_id": tx_id.hex()},
    )


_HTTP_STATUS_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "body_too_large",
    415: "unsupported_media_type",
}


def http_problem(error: web.HTTPException, config: NodeConfig) -> ProblemError:
    """A problem for aiohttp's own refusals (no route, wrong method, body over the limit)."""
    code = _HTTP_STATUS_CODES.get(error.status)
    if code is None:  # none is raised today; the status is aiohttp's, the code says so
        return ProblemError("http_error", error.reason, status=error.status)
    details = {
        "not_found": "no such route; GET /openapi.json lists them",
        "method_not_allowed": f"{error.reason}; allowed: {error.headers.get('Allow', '')}",
        "body_too_large": f"the body exceeds {config.api_body_bytes_max} bytes",
        "unsupported_media_type": error.reason,
    }
    headers = {"Allow": error.headers["Allow"]} if "Allow" in error.headers else None
    return ProblemError(code, details[code], headers=headers)
