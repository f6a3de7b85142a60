"""The client API: JSON over HTTP (msgpack accepted), described by the OpenAPI document it serves.

Theory of operation
-------------------
Reads are public; the only write is ``POST /v1/transactions``, whose body is a transaction
already signed by its submitter, so the API holds no secret and authenticates nobody
(docs/architecture.md, decision 12). Every route is declared once, in :data:`ROUTES`: the
router, the OpenAPI document (``GET /openapi.json``) and the request counters all come from that
table. The contracts' reads are declared by the contracts themselves (``Contract.query_routes``):
the API serves them with one generic handler and knows no contract's paths, keys or limits.

A handler validates its path and query parameters itself, *before* touching the node (a
height is checked to be in 1..2**63-1 before the store sees it), builds a canonical document
(:mod:`node.api.display`) and hands it to :func:`~node.api.responses.respond`, which encodes it
as msgpack when the client asks for ``application/msgpack`` and as display JSON otherwise.

Failures are of two kinds (docs/architecture.md). Anything a client can send wrong raises a
:class:`ProblemError` with a stable code from :data:`PROBLEMS` (node/api/problems.py lists
them all), and becomes an RFC 9457 problem object (``application/problem+json``); a
transaction refused by the node keeps the code of its :class:`~contracts.base.Rejection`.
Any other exception is our bug: the problem middleware (node/api/app.py) logs it with its
traceback and answers a bare ``internal_error`` (status 500), never the traceback. The tests
throw random bytes and paths at the API to show that client input never reaches that branch.

The package, one concern a module (each imports only those listed before it)::

    responses.py   media types; a document as msgpack or display JSON (respond)
    problems.py    the problem objects and their stable codes (PROBLEMS)
    limits.py      the API's bounds, and the per-client submission token buckets
    parameters.py  path and query parameters, checked before the node sees them
    query.py       GET /v1/query/{contract}/{path}: the path checks, the recording read view
    prepared.py    the bodies of /v1/transactions/prepare and /signed (ledger/txjson.py)
    metrics.py     GET /metrics in the Prometheus text format
    log.py         /v1/log/…: the log of every act as C2SP tlog-tiles, and its proofs
    routes.py      the route table (ROUTES, DEBUG_ROUTES), contract reads included
    openapi.py     GET /openapi.json, generated from the route table
    debug.py       the fault-injection handlers (DebugHandlers), guarded by the debug token
    handlers.py    the handlers over one node (Handlers)
    app.py         the aiohttp application: router and problem middleware (create_app)

Fault injection: only when the node's ``fault_injection`` switch is on (a test-only setting,
allowed on a loopback API only, node/runtime/config.py), :data:`DEBUG_ROUTES` are served and
documented too: ``GET``/``PUT /v1/debug/links`` read and set the peers whose links the
transport cuts (:meth:`node.runtime.transport.PeerTransport.cut_links`). Otherwise they do not exist
(404) and ``/openapi.json`` does not mention them. Even then they answer only a request from
a loopback address, without a proxy's forwarding header, that carries the node's debug token
(node/runtime/debug_token.py): 403 ``debug_forbidden`` otherwise.

Two more routes reach the node without a contract's declaration or the Python model:
``GET /v1/query/{contract}/{path}`` asks any query of any contract the node runs
(node/api/query.py), and ``POST /v1/transactions/prepare`` then ``/signed`` let a submitter
in any language describe a transaction in JSON and sign only what the node says; the node
builds it again from the description before admitting it (node/api/prepared.py).

Limits: a body holds at most ``api_body_bytes_max`` bytes (413); each client address may
submit ``api_submissions_per_s`` transactions per second with bursts of
``api_submission_burst`` (a token bucket; 429 with Retry-After); a submission waits at most
:data:`WAIT_S_MAX` seconds for its commit, and at most :data:`WAITING_SUBMISSIONS_MAX`
submissions wait at once (the others answer at once, 202).
"""

from node.api.app import API_KEY, create_app
from node.api.display import receipt_for
from node.api.handlers import Handlers
from node.api.limits import (
    BUNDLE_FRAMES_MAX,
    BUNDLE_RESPONSE_BYTES_MAX,
    CLIENTS_TRACKED_MAX,
    HEIGHT_MAX,
    LINKS_CUT_MAX,
    OUTCOME_POLL_S,
    STATE_KEY_BYTES_MAX,
    SUBMISSION_LIMITS,
    WAIT_S_MAX,
    WAITING_SUBMISSIONS_MAX,
    SubmissionLimiter,
)
from node.api.metrics import METRICS_EXTRA_KEY, metrics_text
from node.api.openapi import openapi_document
from node.api.problems import PROBLEMS, ProblemError, ProblemKind
from node.api.routes import DEBUG_ROUTES, ROUTES, LinksDocument, Parameter, Route, routes_for

__all__ = [
    "API_KEY",
    "BUNDLE_FRAMES_MAX",
    "BUNDLE_RESPONSE_BYTES_MAX",
    "CLIENTS_TRACKED_MAX",
    "DEBUG_ROUTES",
    "HEIGHT_MAX",
    "LINKS_CUT_MAX",
    "METRICS_EXTRA_KEY",
    "OUTCOME_POLL_S",
    "PROBLEMS",
    "ROUTES",
    "STATE_KEY_BYTES_MAX",
    "SUBMISSION_LIMITS",
    "WAITING_SUBMISSIONS_MAX",
    "WAIT_S_MAX",
    "Handlers",
    "LinksDocument",
    "Parameter",
    "ProblemError",
    "ProblemKind",
    "Route",
    "SubmissionLimiter",
    "create_app",
    "metrics_text",
    "openapi_document",
    "receipt_for",
    "routes_for",
]
