"""The client API: JSON over HTTP (msgpack accepted), described by the OpenAPI document it serves.

Theory of operation
-------------------
Reads are public; the only write is ``POST /v1/transactions``, whose body is a transaction
already signed by its submitter, so the API holds no secret and authenticates nobody
(DESIGN.md decision 12). Every route is declared once, in :data:`ROUTES`: the router, the
OpenAPI document (``GET /openapi.json``) and the request counters all come from that table.

A handler validates its path and query parameters itself, *before* touching the node (a
height is checked to be in 1..2**63-1 before the store sees it), builds a canonical document
(:mod:`node.display`) and hands it to :func:`_respond`, which encodes it as msgpack when the
client asks for ``application/msgpack`` and as display JSON otherwise.

Failures are of two kinds (STYLE.md habit 7). Anything a client can send wrong raises a
:class:`ProblemError` with a stable code from :data:`PROBLEMS`, and becomes an RFC 9457 problem
object (``application/problem+json``); a transaction refused by the node keeps the code of its
:class:`~contracts.base.Rejection`. Any other exception is our bug: :func:`_problem_middleware`
logs it with its traceback and answers a bare ``internal_error`` (status 500), never the
traceback. The tests throw random bytes and paths at the API to show that client input never
reaches that branch.

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
    debug_forbidden           403     /v1/debug/*: no valid debug token, not from loopback, or
                                      through a proxy (a forwarding header)
    not_found                 404     no such route
    unknown_transaction       404     the node knows nothing of this transaction
    unknown_block             404     no block at this height (yet); no bundle frame there
    unknown_act               404     no act at this reference, digest or issuer
    contract_not_enabled      404     the consortium does not run this contract
    method_not_allowed        405     the route exists for other methods (see Allow)
    body_too_large            413     the body exceeds api_body_bytes_max
    unsupported_media_type    415     a body that is neither application/json nor msgpack
    rate_limited              429     too many submissions from this address (Retry-After)
    internal_error            500     a bug of the node (logged); no details are given
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

Fault injection: only when the node's ``fault_injection`` switch is on (a test-only setting,
allowed on a loopback API only, node/config.py), :data:`DEBUG_ROUTES` are served and
documented too: ``GET``/``PUT /v1/debug/links`` read and set the peers whose links the
transport cuts (:meth:`node.transport.PeerTransport.cut_links`). Otherwise they do not exist
(404) and ``/openapi.json`` does not mention them. Even then they answer only a request from
a loopback address, without a proxy's forwarding header, that carries the node's debug token
(node/debug_token.py): 403 ``debug_forbidden`` otherwise.

Limits: a body holds at most ``api_body_bytes_max`` bytes (413); each client address may
submit ``api_submissions_per_s`` transactions per second with bursts of
``api_submission_burst`` (a token bucket; 429 with Retry-After); a submission waits at most
:data:`WAIT_S_MAX` seconds for its commit, and at most :data:`WAITING_SUBMISSIONS_MAX`
submissions wait at once (the others answer at once, 202).
"""

from __future__ import annotations

import asyncio
import collections
import hmac
import ipaddress
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from contracts.base import Rejection
from contracts.deeds import DEEDS, QUERY_LIMIT_MAX, REFERENCE_CHARACTERS_MAX
from contracts.membership import MEMBERSHIP
from ledger import encoding
from ledger.bundle import block_frame, genesis_frame
from ledger.model import ARGUMENTS_DEPTH_MAX, TRANSACTION_BYTES_MAX, ModelDecodeError, Transaction
from ledger.store import StoreError
from node import display
from node.config import NodeConfig
from node.daemon import LATENCY_BUCKETS_MS, Node
from node.debug_token import TOKEN_HEADER, ensure_token

__all__ = [
    "DEBUG_ROUTES",
    "PROBLEMS",
    "ROUTES",
    "ProblemError",
    "SubmissionLimiter",
    "create_app",
    "openapi_document",
    "receipt_for",
]

log = logging.getLogger("sceau.api")

receipt_for = display.receipt_for
"""Re-exported: the receipt of a committed transaction (see :func:`node.display.receipt_for`)."""

# --- limits -----------------------------------------------------------------------------------

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
FORWARDING_HEADERS = ("Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Real-IP")
"""A request carrying one of these came through a proxy: the debug routes refuse it."""
"""Peers one ``PUT /v1/debug/links`` may name (the body is bounded by api_body_bytes_max)."""
BUNDLE_FRAMES_MAX = 256
"""Frames one ``GET /v1/bundle`` answers at most (``count``)."""
BUNDLE_RESPONSE_BYTES_MAX = 4 * 1024 * 1024
"""A ``GET /v1/bundle`` answer stops before this size (it holds at least one frame, which may
be larger): the frames are read and encoded on the event loop, so an answer stays short."""
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

# --- media types ------------------------------------------------------------------------------

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
MSGPACK = "application/msgpack"
MSGPACK_TYPES = frozenset({MSGPACK, "application/x-msgpack", "application/vnd.msgpack"})
BUNDLE = "application/vnd.sceau.bundle"
"""Frames of the chain bundle format sceau-bundle/v1 (ledger.bundle, docs/audit.md)."""
TIP_HEIGHT_HEADER = "Sceau-Tip-Height"
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"

# --- problems ---------------------------------------------------------------------------------

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
    "debug_forbidden": ProblemKind(403, "The fault-injection routes refuse this request"),
    "not_found": ProblemKind(404, "No such route"),
    "unknown_transaction": ProblemKind(404, "Unknown transaction"),
    "unknown_block": ProblemKind(404, "Unknown block"),
    "unknown_act": ProblemKind(404, "Unknown act"),
    "contract_not_enabled": ProblemKind(404, "The consortium does not run this contract"),
    "method_not_allowed": ProblemKind(405, "Method not allowed"),
    "body_too_large": ProblemKind(413, "The request body is too large"),
    "unsupported_media_type": ProblemKind(415, "Unsupported media type"),
    "rate_limited": ProblemKind(429, "Too many submissions"),
    "internal_error": ProblemKind(500, "Internal error"),
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
            body=_json_bytes(document),
            content_type=PROBLEM_JSON,
            charset="utf-8",
            headers=self.headers,
        )


def _rejection_problem(rejection: Rejection, tx_id: bytes) -> ProblemError:
    code = rejection.code if _CODE.fullmatch(rejection.code) else "rejected"
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


def _http_problem(error: web.HTTPException, config: NodeConfig) -> ProblemError:
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


# --- responses --------------------------------------------------------------------------------


def _json_bytes(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


_Q_VALUE = re.compile(r"q=(0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)")


def _wants_msgpack(request: web.Request) -> bool:
    """True if the Accept header prefers msgpack to JSON (ties go to msgpack if it is named)."""
    header = request.headers.get("Accept", "")[:1024]
    msgpack_q, json_q = 0.0, 0.0
    for media_range in header.split(","):
        media, *parameters = (part.strip().lower() for part in media_range.split(";"))
        q = 1.0
        for parameter in parameters:
            if parameter.startswith("q="):
                match = _Q_VALUE.fullmatch(parameter)
                q = float(match.group(1)) if match else 0.0
        if media in MSGPACK_TYPES:
            msgpack_q = max(msgpack_q, q)
        elif media in (JSON, "application/*", "*/*"):
            json_q = max(json_q, q)
    return msgpack_q > 0 and msgpack_q >= json_q


def _respond(
    request: web.Request,
    document: Any,
    *,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """``document`` (canonical form) as msgpack if the client asks for it, else display JSON."""
    all_headers = {"Vary": "Accept", **(headers or {})}
    if _wants_msgpack(request):
        return web.Response(
            status=status, body=encoding.pack(document), content_type=MSGPACK, headers=all_headers
        )
    return web.Response(
        status=status,
        body=_json_bytes(display.to_display(document)),
        content_type=JSON,
        charset="utf-8",
        headers=all_headers,
    )


# --- parameters -------------------------------------------------------------------------------

_TX_ID = re.compile(r"[0-9a-f]{64}")
_HEIGHT = re.compile(r"[0-9]{1,19}")
_HEX = re.compile(r"(?:[0-9a-f]{2})+")
_MEMBER_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?")
_CONTRACT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_LIMIT = re.compile(r"[0-9]{1,4}")
_SECONDS = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?(?:[eE][+-]?[0-9]{1,3})?")
_BOOLEANS = {"true": True, "false": False}


def _query_parameters(request: web.Request, allowed: Iterable[str]) -> dict[str, str]:
    """The query parameters, each at most once and all in ``allowed``; else invalid_parameter."""
    names = set(allowed)
    found: dict[str, str] = {}
    for name, value in request.query.items():
        if name not in names:
            shown = name[:32]
            expected = ", ".join(sorted(names)) or "none"
            raise ProblemError(
                "invalid_parameter", f"unknown query parameter {shown!r} (expected: {expected})"
            )
        if name in found:
            raise ProblemError("invalid_parameter", f"query parameter {name!r} is repeated")
        found[name] = value
    return found


def _transaction_hex(body: bytes) -> bytes:
    """The transaction bytes of a JSON submission ``{"transaction": "<lowercase hex>"}``."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested beyond the stack
        raise ProblemError("invalid_body", "the body is not JSON") from None
    if not isinstance(document, dict) or set(document) != {"transaction"}:
        raise ProblemError("invalid_body", 'expected {"transaction": "<hex>"} and nothing else')
    text = document["transaction"]
    if not isinstance(text, str) or not _HEX.fullmatch(text):
        raise ProblemError(
            "invalid_transaction",
            "transaction: expected the lowercase hex of the transaction's canonical bytes",
        )
    return bytes.fromhex(text)


def _parse_tx_id(text: str) -> bytes:
    if not _TX_ID.fullmatch(text):
        raise ProblemError("invalid_id", "a transaction id is 64 lowercase hex digits")
    return bytes.fromhex(text)


def _parse_height(text: str) -> int:
    if not _HEIGHT.fullmatch(text) or not 1 <= int(text) <= HEIGHT_MAX:
        raise ProblemError("invalid_height", f"a block height is an integer from 1 to {HEIGHT_MAX}")
    return int(text)


def _parse_bounded(name: str, text: str | None, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not _HEIGHT.fullmatch(text) or not low <= int(text) <= high:
        raise ProblemError("invalid_parameter", f"{name}: an integer from {low} to {high}")
    return int(text)


def _parse_wait(text: str | None) -> float:
    if text is None:
        return 0.0
    seconds = float(text) if _SECONDS.fullmatch(text) else math.nan
    if not 0 <= seconds <= WAIT_S_MAX:
        raise ProblemError("invalid_parameter", f"wait: seconds from 0 to {WAIT_S_MAX}")
    return seconds


def _parse_boolean(name: str, text: str | None) -> bool:
    if text is None:
        return False
    if text not in _BOOLEANS:
        raise ProblemError("invalid_parameter", f"{name}: true or false")
    return _BOOLEANS[text]


def _parse_issuer(text: str) -> str:
    if not _MEMBER_ID.fullmatch(text):
        raise ProblemError(
            "invalid_query", "an issuer is a member id (lowercase letters, digits and '-', ≤ 48)"
        )
    return text


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

    def __len__(self) -> int:
        return len(self._buckets)


# --- metrics ----------------------------------------------------------------------------------


def _label_value(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(labels: Mapping[str, object]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{name}="{_label_value(value)}"' for name, value in labels.items())
    return "{" + inner + "}"


class _MetricsText:
    """Prometheus text exposition format 0.0.4, one family at a time."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(
        self,
        name: str,
        kind: Literal["counter", "gauge", "histogram"],
        help_text: str,
        samples: Iterable[tuple[str, Mapping[str, object], float]] = (),
    ) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for suffix, labels, value in samples:
            self.lines.append(f"{name}{suffix}{_labels(labels)} {value}")

    def single(
        self, name: str, kind: Literal["counter", "gauge"], help_text: str, value: float
    ) -> None:
        self.family(name, kind, help_text, [("", {}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


TRANSPORT_REFUSAL_PREFIXES = ("handshake_refused:", "bad_frame:")
"""The transport counters that count messages refused from peers (node/transport.py names
them ``<kind>:<reason>``); its other counters (frames, bytes, dials) are events, exported as
``sceau_transport_events_total``."""


def _transport_counters(node: Node) -> Mapping[str, int]:
    counters = getattr(node.transport, "counters", None)
    if not isinstance(counters, Mapping):
        return {}
    return {name: count for name, count in counters.items() if isinstance(count, int)}


def _rejected_messages(node: Node) -> list[tuple[str, Mapping[str, object], float]]:
    transport = {
        name: count
        for name, count in _transport_counters(node).items()
        if name.startswith(TRANSPORT_REFUSAL_PREFIXES)
    }
    sources: list[tuple[str, Mapping[str, int]]] = [
        ("replica", node.replica.dropped),
        ("node", node.metrics.frames_rejected),
        ("transport", transport),
    ]
    return [
        ("", {"source": source, "reason": reason}, count)
        for source, counts in sources
        for reason, count in sorted(counts.items())
    ]


def metrics_text(node: Node, api_requests: Mapping[tuple[str, int], int]) -> str:
    """The node's metrics in the Prometheus text format."""
    metrics = node.metrics
    out = _MetricsText()
    out.single("sceau_height", "gauge", "Height of the last committed block.", node.store.height)
    out.single("sceau_view", "gauge", "The replica's current view.", node.replica.view)
    out.single("sceau_view_changes_total", "counter", "Views moved past.", metrics.view_changes)
    out.single(
        "sceau_blocks_committed_total", "counter", "Blocks committed.", metrics.blocks_committed
    )
    out.single(
        "sceau_transactions_committed_total",
        "counter",
        "Transactions committed.",
        metrics.transactions_committed,
    )
    buckets = [
        ("_bucket", {"le": str(bound)}, count)
        for bound, count in zip(LATENCY_BUCKETS_MS, metrics.latency_buckets, strict=True)
    ]
    out.family(
        "sceau_commit_latency_ms",
        "histogram",
        "Milliseconds from a client's submission to this node to its commit.",
        [
            *buckets,
            ("_bucket", {"le": "+Inf"}, metrics.latency_count),
            ("_sum", {}, round(metrics.latency_sum_ms, 3)),
            ("_count", {}, metrics.latency_count),
        ],
    )
    out.single("sceau_mempool_transactions", "gauge", "Transactions pending.", len(node.mempool))
    out.single(
        "sceau_mempool_bytes",
        "gauge",
        "Bytes of the transactions pending.",
        node.mempool.size_bytes,
    )
    peers = node.transport.connected_peers() if node.transport is not None else []
    out.single("sceau_peers_connected", "gauge", "Peers connected.", len(peers))
    out.family(
        "sceau_messages_rejected_total",
        "counter",
        "Peer messages dropped, by source (replica, node, transport) and reason.",
        _rejected_messages(node),
    )
    out.family(
        "sceau_frames_rejected_by_peer_total",
        "counter",
        "Peer frames the node dropped before decoding them, by authenticated peer.",
        [
            ("", {"peer": peer}, count)
            for peer, count in sorted(node.metrics.frames_rejected_by_peer.items())
        ],
    )
    out.family(
        "sceau_transport_events_total",
        "counter",
        "Peer transport counters (frames, bytes, dials, refusals), by name.",
        [("", {"event": name}, count) for name, count in sorted(_transport_counters(node).items())],
    )
    out.single(
        "sceau_proposals_rejected_total",
        "counter",
        "Proposals this replica refused.",
        metrics.proposals_rejected,
    )
    out.single("sceau_evidence_total", "counter", "Equivocations detected.", metrics.evidence)
    out.family(
        "sceau_api_requests_total",
        "counter",
        "Client API requests, by route template and status.",
        [
            ("", {"route": route, "status": status}, count)
            for (route, status), count in sorted(api_requests.items())
        ],
    )
    return out.text()


# --- the routes -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Parameter:
    name: str
    location: Literal["path", "query"]
    schema: Mapping[str, Any]
    description: str

    def to_openapi(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": self.location,
            "required": self.location == "path",
            "description": self.description,
            "schema": dict(self.schema),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """One route: what the router, the OpenAPI document and the counters know of it.

    ``responses`` maps a success status to its model (or ``"text"``/``"openapi"`` for the
    two bodies that are not documents); ``problems`` lists the problem codes it may answer.
    """

    method: Literal["GET", "POST", "PUT"]
    path: str
    handler: str
    summary: str
    tag: str
    parameters: tuple[Parameter, ...] = ()
    responses: Mapping[int, type[BaseModel] | str] = field(default_factory=dict)
    problems: tuple[str, ...] = ()
    submission: bool = False
    request_model: type[BaseModel] | None = None
    """The JSON body of a route other than the submission, for the OpenAPI document."""

    @property
    def openapi_path(self) -> str:
        """The path in OpenAPI form: ``{reference:.+}`` becomes ``{reference}``."""
        return re.sub(r"\{([a-z_]+):[^}]+\}", r"{\1}", self.path)


def _path(name: str, schema: Mapping[str, Any], description: str) -> Parameter:
    return Parameter(name=name, location="path", schema=schema, description=description)


def _query(name: str, schema: Mapping[str, Any], description: str) -> Parameter:
    return Parameter(name=name, location="query", schema=schema, description=description)


_TX_ID_PARAMETER = _path(
    "tx_id", {"type": "string", "pattern": "^[0-9a-f]{64}$"}, "the transaction id (SHA-256)"
)
_ISSUER_SCHEMA = {"type": "string", "pattern": f"^{_MEMBER_ID.pattern}$", "maxLength": 48}
_REFERENCE_SCHEMA = {
    "type": "string",
    "pattern": f"^[A-Za-z0-9][A-Za-z0-9._/-]{{0,{REFERENCE_CHARACTERS_MAX - 1}}}$",
    "maxLength": REFERENCE_CHARACTERS_MAX,
}
_ISSUER_PARAMETER = _path("issuer", _ISSUER_SCHEMA, "the issuing member's id")
_REFERENCE_PARAMETER = _path(
    "reference", _REFERENCE_SCHEMA, "the act's reference (may hold '/': send it as is or %2F)"
)

ROUTES: tuple[Route, ...] = (
    Route(
        method="POST",
        path="/v1/transactions",
        handler="submit_transaction",
        summary="Submit a signed transaction",
        tag="transactions",
        parameters=(
            _query(
                "wait",
                {"type": "number", "minimum": 0, "maximum": WAIT_S_MAX},
                "seconds to wait for the commit before answering (default 0)",
            ),
        ),
        responses={200: display.CommittedTransaction, 202: display.AcceptedTransaction},
        problems=(
            "rate_limited",
            "unsupported_media_type",
            "body_too_large",
            "invalid_body",
            "invalid_transaction",
            "invalid_parameter",
        ),
        submission=True,
    ),
    Route(
        method="GET",
        path="/v1/transactions/{tx_id}",
        handler="get_transaction",
        summary="A transaction's status, with its receipt once committed",
        tag="transactions",
        parameters=(_TX_ID_PARAMETER,),
        responses={200: display.TransactionStatus},
        problems=("invalid_id", "unknown_transaction"),
    ),
    Route(
        method="GET",
        path="/v1/blocks/latest",
        handler="get_latest_block",
        summary="The last committed block",
        tag="blocks",
        parameters=(
            _query("transactions", {"type": "boolean"}, "include the transactions themselves"),
        ),
        responses={200: display.BlockDocument},
        problems=("unknown_block", "invalid_parameter"),
    ),
    Route(
        method="GET",
        path="/v1/blocks/{height}",
        handler="get_block",
        summary="The block at a height",
        tag="blocks",
        parameters=(
            _path(
                "height",
                {"type": "integer", "minimum": 1, "maximum": HEIGHT_MAX},
                "the block height",
            ),
            _query("transactions", {"type": "boolean"}, "include the transactions themselves"),
        ),
        responses={200: display.BlockDocument},
        problems=("invalid_height", "unknown_block", "invalid_parameter"),
    ),
    Route(
        method="GET",
        path="/v1/bundle",
        handler="get_bundle",
        summary="Consecutive frames of the chain's bundle (sceau-bundle/v1), for exports: "
        "frame 0 is the genesis, frame h block h with its certificate. The Sceau-Tip-Height "
        "header gives the tip.",
        tag="blocks",
        parameters=(
            _query(
                "from",
                {"type": "integer", "minimum": 0, "maximum": HEIGHT_MAX},
                "the first frame (default 0, the genesis)",
            ),
            _query(
                "count",
                {"type": "integer", "minimum": 1, "maximum": BUNDLE_FRAMES_MAX},
                f"most frames to answer (default {BUNDLE_FRAMES_MAX}); fewer once the answer "
                f"reaches {BUNDLE_RESPONSE_BYTES_MAX} bytes, never fewer than one",
            ),
        ),
        responses={200: "bundle"},
        problems=("invalid_parameter", "unknown_block"),
    ),
    Route(
        method="GET",
        path="/v1/acts/{issuer}/{reference:.+}",
        handler="get_act",
        summary="An act of the deeds contract",
        tag="acts",
        parameters=(_ISSUER_PARAMETER, _REFERENCE_PARAMETER),
        responses={200: display.ActDocument},
        problems=("invalid_query", "unknown_act", "contract_not_enabled"),
    ),
    Route(
        method="GET",
        path="/v1/digests/{digest}",
        handler="get_digest",
        summary="The acts anchoring a document digest: is this document authentic, in force?",
        tag="acts",
        parameters=(
            _path(
                "digest",
                {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "SHA-256 of the document, lowercase hex",
            ),
        ),
        responses={200: display.DigestDocument},
        problems=("invalid_query", "unknown_act", "contract_not_enabled"),
    ),
    Route(
        method="GET",
        path="/v1/history/{issuer}/{reference:.+}",
        handler="get_history",
        summary="The history of an act (anchoring and every status change)",
        tag="acts",
        parameters=(_ISSUER_PARAMETER, _REFERENCE_PARAMETER),
        responses={200: display.HistoryDocument},
        problems=("invalid_query", "unknown_act", "contract_not_enabled"),
    ),
    Route(
        method="GET",
        path="/v1/issuers/{issuer}/acts",
        handler="get_issuer_acts",
        summary="An issuer's acts by act date",
        tag="acts",
        parameters=(
            _ISSUER_PARAMETER,
            _query("from", {"type": "string", "format": "date"}, "first act date, YYYY-MM-DD"),
            _query("to", {"type": "string", "format": "date"}, "last act date, YYYY-MM-DD"),
            _query(
                "limit",
                {"type": "integer", "minimum": 1, "maximum": QUERY_LIMIT_MAX},
                "most acts to return (default 100)",
            ),
        ),
        responses={200: display.IssuerActsDocument},
        problems=("invalid_query", "invalid_parameter", "contract_not_enabled"),
    ),
    Route(
        method="GET",
        path="/v1/state/{contract}/{key_hex}",
        handler="get_state",
        summary="A state value at the tip with its proof and the certified tip header",
        tag="state",
        parameters=(
            _path(
                "contract",
                {"type": "string", "pattern": f"^{_CONTRACT_NAME.pattern}$"},
                "the contract whose namespace holds the key",
            ),
            _path(
                "key_hex",
                {"type": "string", "pattern": f"^(?:[0-9a-f]{{2}}){{1,{STATE_KEY_BYTES_MAX}}}$"},
                "the key within the contract's namespace, lowercase hex",
            ),
        ),
        responses={200: display.StateDocument},
        problems=("invalid_parameter", "contract_not_enabled"),
    ),
    Route(
        method="GET",
        path="/v1/members",
        handler="get_members",
        summary="The member set in force for the next block",
        tag="membership",
        responses={200: display.MembersDocument},
    ),
    Route(
        method="GET",
        path="/v1/parameters",
        handler="get_parameters",
        summary="The consensus parameters in force",
        tag="membership",
        responses={200: display.ParametersDocument},
    ),
    Route(
        method="GET",
        path="/v1/proposals",
        handler="get_proposals",
        summary="The open governance proposals",
        tag="membership",
        responses={200: display.ProposalsDocument},
    ),
    Route(
        method="GET",
        path="/v1/status",
        handler="get_status",
        summary="This node's status",
        tag="operations",
        responses={200: display.NodeStatus},
    ),
    Route(
        method="GET",
        path="/healthz",
        handler="get_health",
        summary="Liveness: 200 while the node's ticker runs and its store is open",
        tag="operations",
        responses={200: display.Health},
        problems=("unhealthy",),
    ),
    Route(
        method="GET",
        path="/metrics",
        handler="get_metrics",
        summary="Metrics in the Prometheus text format",
        tag="operations",
        responses={200: "text"},
    ),
    Route(
        method="GET",
        path="/openapi.json",
        handler="get_openapi",
        summary="This document",
        tag="operations",
        responses={200: "openapi"},
    ),
)


class LinksDocument(BaseModel):
    """The peers whose links this node's transport cuts (fault injection, tests only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cut: Annotated[
        list[Annotated[str, Field(pattern=f"^{_MEMBER_ID.pattern}$")]],
        Field(max_length=LINKS_CUT_MAX),
    ]


DEBUG_ROUTES: tuple[Route, ...] = (
    Route(
        method="GET",
        path="/v1/debug/links",
        handler="get_links",
        summary="Fault injection (tests only): the peers whose links are cut",
        tag="debug",
        responses={200: LinksDocument},
        problems=("debug_forbidden",),
    ),
    Route(
        method="PUT",
        path="/v1/debug/links",
        handler="put_links",
        summary="Fault injection (tests only): cut the links to exactly these peers "
        "(an empty list heals them all)",
        tag="debug",
        responses={200: LinksDocument},
        problems=("debug_forbidden", "unsupported_media_type", "body_too_large", "invalid_links"),
        request_model=LinksDocument,
    ),
)
"""Served and documented only when the node's ``fault_injection`` switch is on."""


def routes_for(config: NodeConfig) -> tuple[Route, ...]:
    """The routes a node with ``config`` serves (and documents)."""
    return ROUTES + DEBUG_ROUTES if config.fault_injection else ROUTES


# --- the handlers -----------------------------------------------------------------------------


class _Api:
    """The handlers of :data:`ROUTES` over one node (see the module doc)."""

    def __init__(self, node: Node, config: NodeConfig) -> None:
        self.node = node
        self.config = config
        self.limiter = SubmissionLimiter(config.api_submissions_per_s, config.api_submission_burst)
        self.requests: collections.Counter[tuple[str, int]] = collections.Counter()
        self.waiting = 0
        self.openapi = _json_bytes(openapi_document(routes_for(config)))
        self.debug_token = ensure_token(config.data_dir) if config.fault_injection else None

    # --- submission ---------------------------------------------------------------------------

    async def submit_transaction(self, request: web.Request) -> web.Response:
        retry_after_s = self.limiter.take(request.remote or "unknown")
        if retry_after_s is not None:
            raise ProblemError(
                "rate_limited",
                f"at most {self.config.api_submissions_per_s:g} submissions per second from "
                f"one address (bursts of {self.config.api_submission_burst})",
                headers={"Retry-After": str(max(1, math.ceil(retry_after_s)))},
            )
        wait_s = _parse_wait(_query_parameters(request, ("wait",)).get("wait"))
        transaction = await self._read_transaction(request)
        tx_id = transaction.tx_id
        try:
            self.node.submit(transaction)
        except Rejection as rejection:
            raise _rejection_problem(rejection, tx_id) from None
        if wait_s > 0 and self.waiting < WAITING_SUBMISSIONS_MAX:
            self.waiting += 1
            try:
                await self._await_outcome(tx_id, wait_s)
            finally:
                self.waiting -= 1
        node = self.node
        status = display.transaction_status(node.store, node.mempool, node.application, tx_id)
        if status is None:
            return _respond(request, {"tx_id": tx_id, "status": "unknown"}, status=202)
        if status["status"] == "rejected":
            rejection = Rejection(status["code"], status["reason"])
            raise _rejection_problem(rejection, tx_id)
        if status["status"] == "committed":
            return _respond(request, status)
        return _respond(
            request, status, status=202, headers={"Location": f"/v1/transactions/{tx_id.hex()}"}
        )

    async def _read_transaction(self, request: web.Request) -> Transaction:
        media_type = request.content_type
        if media_type != JSON and media_type not in MSGPACK_TYPES:
            raise ProblemError(
                "unsupported_media_type",
                f'send {JSON} ({{"transaction": "<hex>"}}) or {MSGPACK} (the canonical bytes)',
            )
        limit = self.config.api_body_bytes_max
        if request.content_length is not None and request.content_length > limit:
            raise ProblemError("body_too_large", f"the body exceeds {limit} bytes")
        body = await request.read()  # aiohttp raises HTTPRequestEntityTooLarge over the limit
        data = body if media_type in MSGPACK_TYPES else _transaction_hex(body)
        try:
            return Transaction.from_bytes(data, SUBMISSION_LIMITS)
        except ModelDecodeError as error:
            raise ProblemError("invalid_transaction", str(error)) from None
        except encoding.EncodingError as error:
            raise ProblemError(
                "invalid_transaction", f"transaction: not canonical msgpack: {error}"
            ) from None

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
        _query_parameters(request, ())
        tx_id = _parse_tx_id(request.match_info["tx_id"])
        node = self.node
        status = display.transaction_status(node.store, node.mempool, node.application, tx_id)
        if status is None:
            raise ProblemError(
                "unknown_transaction",
                "this node has not seen the transaction, or forgot why it was rejected",
            )
        return _respond(request, status)

    async def get_latest_block(self, request: web.Request) -> web.Response:
        parameters = _query_parameters(request, ("transactions",))
        with_transactions = _parse_boolean("transactions", parameters.get("transactions"))
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
        return _respond(request, document)

    async def get_block(self, request: web.Request) -> web.Response:
        parameters = _query_parameters(request, ("transactions",))
        height = _parse_height(request.match_info["height"])
        with_transactions = _parse_boolean("transactions", parameters.get("transactions"))
        tip = self.node.store.height
        if height > tip:
            raise ProblemError("unknown_block", f"no block at height {height}: the tip is {tip}")
        document = display.block_document(
            self.node.store, height, with_transactions=with_transactions
        )
        return _respond(request, document)

    async def get_bundle(self, request: web.Request) -> web.Response:
        parameters = _query_parameters(request, ("from", "count"))
        first = _parse_bounded("from", parameters.get("from"), 0, 0, HEIGHT_MAX)
        count = _parse_bounded(
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

    def _deeds_query(self, path: str) -> Any:
        """The deeds contract's answer to ``path``; unknown_act / invalid_query problems."""
        if DEEDS not in self.node.engine.contracts:
            raise ProblemError("contract_not_enabled", f"this consortium does not run {DEEDS}")
        try:
            # Absences confirmed in the state tree: never "unknown act" for a lost index entry.
            return self.node.engine.query(self.node.store.confirmed_reads(), DEEDS, path)
        except (KeyError, IndexError, UnicodeError, encoding.EncodingError):
            raise  # not an answer: a bug or a damaged state, for the middleware to log
        except LookupError as error:
            raise ProblemError("unknown_act", str(error)) from None
        except ValueError as error:
            raise ProblemError("invalid_query", str(error)) from None

    async def get_act(self, request: web.Request) -> web.Response:
        _query_parameters(request, ())
        issuer = _parse_issuer(request.match_info["issuer"])
        reference = request.match_info["reference"]
        height = self.node.store.height
        act = self._deeds_query(f"act/{issuer}/{reference}")
        return _respond(request, {"height": height, "act": act})

    async def get_digest(self, request: web.Request) -> web.Response:
        _query_parameters(request, ())
        digest = request.match_info["digest"]
        height = self.node.store.height
        acts = self._deeds_query(f"digest/{digest}")
        return _respond(request, {"height": height, "digest": bytes.fromhex(digest), "acts": acts})

    async def get_history(self, request: web.Request) -> web.Response:
        _query_parameters(request, ())
        issuer = _parse_issuer(request.match_info["issuer"])
        reference = request.match_info["reference"]
        height = self.node.store.height
        history = self._deeds_query(f"history/{issuer}/{reference}")
        document = {"height": height, "issuer": issuer, "reference": reference, "history": history}
        return _respond(request, document)

    async def get_issuer_acts(self, request: web.Request) -> web.Response:
        parameters = _query_parameters(request, ("from", "to", "limit"))
        issuer = _parse_issuer(request.match_info["issuer"])
        # Only validated characters reach the contract's query string: no '&', '=' or '?'.
        for name in ("from", "to"):
            if name in parameters and not _DATE.fullmatch(parameters[name]):
                raise ProblemError("invalid_query", f"{name}: expected a date YYYY-MM-DD")
        if "limit" in parameters and not _LIMIT.fullmatch(parameters["limit"]):
            raise ProblemError("invalid_query", f"limit: an integer from 1 to {QUERY_LIMIT_MAX}")
        query_string = "&".join(f"{name}={value}" for name, value in parameters.items())
        height = self.node.store.height
        acts = self._deeds_query(f"acts/{issuer}" + (f"?{query_string}" if query_string else ""))
        return _respond(request, {"height": height, "issuer": issuer, "acts": acts})

    async def get_state(self, request: web.Request) -> web.Response:
        _query_parameters(request, ())
        contract = request.match_info["contract"]
        key_hex = request.match_info["key_hex"]
        if not _CONTRACT_NAME.fullmatch(contract):
            raise ProblemError("invalid_parameter", "contract: a contract name such as 'deeds'")
        if len(key_hex) > 2 * STATE_KEY_BYTES_MAX or not _HEX.fullmatch(key_hex):
            raise ProblemError(
                "invalid_parameter",
                f"key_hex: 1 to {STATE_KEY_BYTES_MAX} bytes as lowercase hex",
            )
        if contract not in self.node.engine.contracts:
            raise ProblemError("contract_not_enabled", f"this consortium runs no {contract!r}")
        document = display.state_document(self.node.store, contract, bytes.fromhex(key_hex))
        return _respond(request, document)

    def _membership(self, request: web.Request, name: str) -> web.Response:
        _query_parameters(request, ())
        height = self.node.store.height
        answer = self.node.engine.query(self.node.store, MEMBERSHIP, name)
        return _respond(request, {"height": height, name: answer})

    async def get_members(self, request: web.Request) -> web.Response:
        return self._membership(request, "members")

    async def get_parameters(self, request: web.Request) -> web.Response:
        return self._membership(request, "parameters")

    async def get_proposals(self, request: web.Request) -> web.Response:
        return self._membership(request, "proposals")

    # --- operations ---------------------------------------------------------------------------

    async def get_status(self, request: web.Request) -> web.Response:
        _query_parameters(request, ())
        return _respond(request, display.status_document(self.node.status()))

    async def get_health(self, request: web.Request) -> web.Response:
        _query_parameters(request, ())
        if not self.node.running:
            raise ProblemError("unhealthy", "the node's ticker is not running")
        if self.node.store.damage is not None:
            raise ProblemError("unhealthy", f"the chain store is damaged: {self.node.store.damage}")
        try:
            self.node.store.safety_record()  # one read: fails once the store is closed
        except Exception:  # whatever plyvel raises, the answer is the same
            raise ProblemError("unhealthy", "the chain store cannot be read") from None
        return _respond(request, {"status": "ok"})

    async def get_metrics(self, request: web.Request) -> web.Response:
        _query_parameters(request, ())
        text = metrics_text(self.node, self.requests)
        extra = request.app.get(METRICS_EXTRA_KEY)
        if extra is not None:  # the listening ports' connection counts (node/launch.py)
            text += extra()
        return web.Response(body=text.encode(), headers={"Content-Type": PROMETHEUS_TEXT})

    async def get_openapi(self, request: web.Request) -> web.Response:
        _query_parameters(request, ())
        return web.Response(body=self.openapi, content_type=JSON, charset="utf-8")

    # --- fault injection (DEBUG_ROUTES, only with fault_injection) ----------------------------

    def _guard_debug(self, request: web.Request) -> None:
        """Only the test harness may use the debug routes: a request from loopback, not
        forwarded by a proxy, with this node's debug token (node/debug_token.py)."""
        token = self.debug_token
        assert token is not None, "debug routes exist only with fault_injection"
        forwarded = [name for name in FORWARDING_HEADERS if name in request.headers]
        if forwarded:
            raise ProblemError("debug_forbidden", f"forwarded by a proxy ({forwarded[0]})")
        if not _is_loopback_address(request.remote):
            raise ProblemError("debug_forbidden", "only from a loopback address")
        offered = request.headers.get(TOKEN_HEADER, "")
        if not hmac.compare_digest(offered.encode(), token.encode()):
            raise ProblemError("debug_forbidden", f"send the node's debug token in {TOKEN_HEADER}")

    async def get_links(self, request: web.Request) -> web.Response:
        self._guard_debug(request)
        _query_parameters(request, ())
        return _respond(request, {"cut": self._transport().links_cut})

    async def put_links(self, request: web.Request) -> web.Response:
        self._guard_debug(request)
        _query_parameters(request, ())
        if request.content_type != JSON:
            raise ProblemError("unsupported_media_type", f'send {JSON}: {{"cut": [<member id>]}}')
        cut = self._links_to_cut(await request.read())
        transport = self._transport()
        transport.cut_links(cut)
        return _respond(request, {"cut": transport.links_cut})

    def _transport(self) -> Any:
        transport = self.node.transport
        assert transport is not None, "build_node attaches a transport to every node"
        return transport

    def _links_to_cut(self, body: bytes) -> set[str]:
        """The member ids of a ``{"cut": [...]}`` body: other current members, or a problem."""
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise ProblemError("invalid_links", "the body is not JSON") from None
        if not isinstance(document, dict) or set(document) != {"cut"}:
            raise ProblemError("invalid_links", 'expected {"cut": [<member id>, …]} only')
        cut = document["cut"]
        if not isinstance(cut, list) or len(cut) > LINKS_CUT_MAX:
            raise ProblemError("invalid_links", f"cut: a list of at most {LINKS_CUT_MAX} ids")
        peers = {member.id for member in self.node.application.members()} - {self.node.member_id}
        for member_id in cut:
            if not isinstance(member_id, str) or member_id not in peers:
                shown = repr(member_id)[:60]
                raise ProblemError("invalid_links", f"cut: {shown} is not another current member")
        return set(cut)


def _is_loopback_address(address: str | None) -> bool:
    try:
        return address is not None and ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


# --- the application --------------------------------------------------------------------------

API_KEY = web.AppKey("sceau_api", _Api)
METRICS_EXTRA_KEY = web.AppKey("sceau_metrics_extra", Callable[[], str])
"""More Prometheus text for /metrics, set by whoever runs the app (node/launch.py)."""


def _route_label(request: web.Request) -> str:
    resource = getattr(request.match_info.route, "resource", None)
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def _problem_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Problems for every refusal, a logged bare 500 for every bug; counts every request."""
    api = request.app[API_KEY]
    try:
        response = await handler(request)
    except ProblemError as problem:
        response = problem.response()
    except StoreError as error:
        # Never "unknown" for what a damaged store may have lost: the store refuses every read
        # once it found damage (ledger/store.py), and the node stops (node/launch.py).
        response = ProblemError(
            "store_corrupted", f"this node's chain store is damaged ({error}): ask another member"
        ).response()
    except web.HTTPException as error:
        response = _http_problem(error, api.config).response()
    except Exception:
        log.exception("internal error in %s %s", request.method, _route_label(request))
        response = ProblemError(
            "internal_error", "the node failed to answer; the error is in its log"
        ).response()
    api.requests[(_route_label(request), response.status)] += 1
    return response


def create_app(node: Node, config: NodeConfig) -> web.Application:
    """The client API of ``node`` as an aiohttp application (see the module doc)."""
    app = web.Application(
        client_max_size=config.api_body_bytes_max, middlewares=[_problem_middleware]
    )
    api = _Api(node, config)
    app[API_KEY] = api
    for route in routes_for(config):
        handler = getattr(api, route.handler)
        if route.method == "GET":
            app.router.add_get(route.path, handler)
        else:
            app.router.add_route(route.method, route.path, handler)
    return app


# --- OpenAPI ----------------------------------------------------------------------------------

_REF = "#/components/schemas/{model}"
_PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def _models(routes: tuple[Route, ...]) -> list[type[BaseModel]]:
    found: list[type[BaseModel]] = [display.Problem]
    for route in routes:
        for model in route.responses.values():
            if not isinstance(model, str) and model not in found:
                found.append(model)
    return found


def _problem_responses(route: Route) -> dict[str, Any]:
    by_status: dict[int, list[str]] = collections.defaultdict(list)
    for code in route.problems:
        by_status[PROBLEMS[code].status].append(code)
    if route.submission:
        by_status[422].append("a rejection code (bad_signature, wrong_chain, …)")
        by_status[429].append("signer_quota")
        by_status[503].append("mempool_full")
    content = {PROBLEM_JSON: {"schema": _PROBLEM_REF}}
    responses = {
        str(status): {"description": "problem: " + ", ".join(codes), "content": content}
        for status, codes in sorted(by_status.items())
    }
    responses["default"] = {
        "description": "problem: not_found, method_not_allowed, internal_error, …",
        "content": content,
    }
    return responses


def _success_response(model: type[BaseModel] | str, schemas: Mapping[Any, Any]) -> dict[str, Any]:
    if model == "text":
        return {
            "description": "Prometheus text exposition format 0.0.4",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    if model == "bundle":
        return {
            "description": "frames of the bundle format sceau-bundle/v1 (docs/audit.md): each a "
            "4-byte big-endian length and a canonical msgpack body",
            "content": {BUNDLE: {"schema": {"type": "string", "contentMediaType": BUNDLE}}},
        }
    if model == "openapi":
        return {
            "description": "an OpenAPI 3.1 document",
            "content": {JSON: {"schema": {"type": "object"}}},
        }
    assert not isinstance(model, str), model
    return {
        "description": (model.__doc__ or model.__name__).strip().splitlines()[0],
        "content": {JSON: {"schema": schemas[(model, "serialization")]}},
    }


def _operation(route: Route, schemas: Mapping[Any, Any]) -> dict[str, Any]:
    operation: dict[str, Any] = {
        "operationId": route.handler,
        "summary": route.summary,
        "tags": [route.tag],
        "parameters": [parameter.to_openapi() for parameter in route.parameters],
        "responses": {
            **{
                str(status): _success_response(model, schemas)
                for status, model in route.responses.items()
            },
            **_problem_responses(route),
        },
    }
    if route.request_model is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {JSON: {"schema": schemas[(route.request_model, "validation")]}},
        }
    if route.submission:
        operation["requestBody"] = {
            "required": True,
            "description": "a signed transaction: the hex of its canonical bytes, or the bytes",
            "content": {
                JSON: {"schema": schemas[(display.SubmitRequest, "validation")]},
                MSGPACK: {"schema": {"type": "string", "contentMediaType": MSGPACK}},
            },
        }
    return operation


def openapi_document(routes: tuple[Route, ...] = ROUTES) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes``, schemas generated from the pydantic models."""
    keys: list[tuple[type[BaseModel], Any]] = [
        (model, "serialization") for model in _models(routes)
    ]
    keys.append((display.SubmitRequest, "validation"))
    keys.extend((r.request_model, "validation") for r in routes if r.request_model is not None)
    schemas, definitions = models_json_schema(keys, ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.openapi_path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "sceau node API",
            "version": "1",
            "description": (
                "Reads are public; writes are signed transactions. Every error is an RFC 9457 "
                "problem object with a stable code. Send Accept: application/msgpack for msgpack "
                "documents (bytes as bytes) instead of JSON (bytes as lowercase hex)."
            ),
        },
        "paths": paths,
        "components": {"schemas": definitions.get("$defs", {})},
    }
