"""The routes: one table drives the router, the OpenAPI document and the request counters.

:data:`ROUTES` declares every route once. The reads of the contracts are not written here:
each contract declares its own (``Contract.query_routes``, contracts/base.py) and
:data:`CONTRACT_ROUTES` turns those declarations into routes, so the API knows no contract's
paths, parameters or limits. :data:`DEBUG_ROUTES` exist only with the node's
``fault_injection`` switch (a test-only setting).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.base import QueryRoute
from contracts.registry import query_routes
from ledger.namespace import CONTRACT_NAME_PATTERN
from node.api import display
from node.api.limits import (
    BATCH_TRANSACTIONS_MAX,
    BUNDLE_FRAMES_MAX,
    BUNDLE_RESPONSE_BYTES_MAX,
    HEIGHT_MAX,
    LINKS_CUT_MAX,
    QUERY_PATH_CHARACTERS_MAX,
    STATE_KEY_BYTES_MAX,
    WAIT_S_MAX,
)
from node.api.log import ConsistencyDocument, InclusionDocument
from node.api.parameters import MEMBER_ID
from node.api.problems import PROBLEMS
from node.api.query import PATH_CHARACTERS
from node.runtime.config import NodeConfig

__all__ = [
    "CONTRACT_ROUTES",
    "DEBUG_ROUTES",
    "LOG_ROUTES",
    "PAGE_ROUTES",
    "ROUTES",
    "LinksDocument",
    "Parameter",
    "Route",
    "routes_for",
]


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
    rejections: bool = False
    """The route submits a transaction: it may answer every rejection of one."""
    batch: bool = False
    """The route's body is a batch of transactions (display.BatchSubmitRequest, or msgpack)."""
    request_model: type[BaseModel] | None = None
    """The JSON body of a route other than the submission, for the OpenAPI document."""
    contract_query: tuple[str, QueryRoute] | None = None
    """For a contract's read: the contract's name and its declaration (the generic handler
    :meth:`~node.api.handlers.Handlers.contract_query` serves it)."""

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


_WAIT_PARAMETER = _query(
    "wait",
    {"type": "number", "minimum": 0, "maximum": WAIT_S_MAX},
    "seconds to wait for the commit before answering (default 0)",
)
_BODY_PROBLEMS = ("unsupported_media_type", "body_too_large", "invalid_body")
"""What any route with a request body may answer before its body is read."""


_CHAIN_ROUTES: tuple[Route, ...] = (
    Route(
        method="POST",
        path="/v1/transactions",
        handler="submit_transaction",
        summary="Submit a signed transaction",
        tag="transactions",
        parameters=(_WAIT_PARAMETER,),
        responses={200: display.CommittedTransaction, 202: display.AcceptedTransaction},
        problems=(
            "observer_read_only",
            "rate_limited",
            *_BODY_PROBLEMS,
            "invalid_transaction",
            "invalid_parameter",
        ),
        submission=True,
        rejections=True,
    ),
    Route(
        method="POST",
        path="/v1/transactions/batch",
        handler="submit_batch",
        summary=f"Submit up to {BATCH_TRANSACTIONS_MAX} signed transactions in one request: "
        "admitted in order in one pass (each sees the batch's earlier ones), each charged to "
        "the client's rate limit; the answer gives each one's outcome, in order",
        tag="transactions",
        parameters=(_WAIT_PARAMETER,),
        responses={200: display.BatchAnswer},
        problems=(
            "observer_read_only",
            "rate_limited",
            *_BODY_PROBLEMS,
            "invalid_transaction",
            "invalid_parameter",
        ),
        batch=True,
    ),
    Route(
        method="POST",
        path="/v1/transactions/prepare",
        handler="prepare_transaction",
        summary="From any language: a transaction described in JSON, built into its canonical "
        "body, its id and the exact bytes to sign (nothing is submitted)",
        tag="transactions",
        responses={200: display.PreparedTransaction},
        problems=(
            *_BODY_PROBLEMS,
            "invalid_description",
            "invalid_parameter",
        ),
        request_model=display.TransactionDescription,
    ),
    Route(
        method="POST",
        path="/v1/transactions/signed",
        handler="submit_signed",
        summary="From any language: a prepared transaction and its signature; the node builds "
        "the transaction again from the description and submits it like POST /v1/transactions",
        tag="transactions",
        parameters=(_WAIT_PARAMETER,),
        responses={200: display.CommittedTransaction, 202: display.AcceptedTransaction},
        problems=(
            "observer_read_only",
            "rate_limited",
            *_BODY_PROBLEMS,
            "invalid_description",
            "prepared_mismatch",
            "invalid_parameter",
        ),
        request_model=display.SignedSubmission,
        rejections=True,
    ),
    Route(
        method="GET",
        path="/v1/transactions/{tx_id}",
        handler="get_transaction",
        summary="A transaction's status, with its receipt once committed",
        tag="transactions",
        parameters=(
            _TX_ID_PARAMETER,
            _query(
                "with_status",
                {"type": "boolean"},
                "the receipt of an anchor also proves the act's record at the tip (its "
                "status); the receipt of any other transaction has status null",
            ),
        ),
        responses={200: display.TransactionStatus},
        problems=("invalid_id", "unknown_transaction", "invalid_parameter"),
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
)
"""Transactions and blocks."""

_NODE_ROUTES: tuple[Route, ...] = (
    Route(
        method="GET",
        path="/v1/state/{contract}/{key_hex}",
        handler="get_state",
        summary="A state value at the tip with its proof and the certified tip header",
        tag="state",
        parameters=(
            _path(
                "contract",
                {"type": "string", "pattern": f"^{CONTRACT_NAME_PATTERN.pattern}$"},
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
        path="/v1/query/{contract}/{path:.+}",
        handler="query_contract",
        summary="Any contract's query at the tip (its query(path)), with a proof of the state "
        "values it read on demand. Query parameters other than proof are handed to the "
        "contract as ?name=value&...",
        tag="state",
        parameters=(
            _path(
                "contract",
                {"type": "string", "pattern": f"^{CONTRACT_NAME_PATTERN.pattern}$"},
                "a contract the consortium runs (built-in or plug-in)",
            ),
            _path(
                "path",
                {
                    "type": "string",
                    "pattern": f"^{PATH_CHARACTERS.pattern}$",
                    "maxLength": QUERY_PATH_CHARACTERS_MAX,
                },
                "the contract's query path; it may hold '/' (membership: members, "
                "delegations/<member id>; deeds: act/<issuer>/<reference>, ...)",
            ),
            _query(
                "proof",
                {"type": "boolean"},
                "add a proof of the state values the query read, against the certified tip",
            ),
        ),
        responses={200: display.QueryDocument},
        problems=(
            "invalid_parameter",
            "invalid_query",
            "contract_not_enabled",
            "not_found",
            "unknown_block",
            "answer_too_large",
            "query_failed",
        ),
    ),
    Route(
        method="GET",
        path="/v1/log/checkpoint",
        handler="get_log_checkpoint",
        summary="The latest consortium checkpoint of the log of every act: a C2SP signed note "
        "(text/plain) signed by a quorum of the members, with the witnesses' cosignatures "
        "gathered so far (also tlog-tiles' <prefix>/checkpoint)",
        tag="log",
        responses={200: "text"},
        problems=("no_checkpoint",),
    ),
    Route(
        method="GET",
        path="/v1/log/checkpoint.json",
        handler="get_log_checkpoint_json",
        summary="The latest consortium checkpoint, decoded: origin, size, root, height, "
        "signing members, witnesses, and the note",
        tag="log",
        responses={200: display.CheckpointDocument},
        problems=("no_checkpoint",),
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
"""The raw state, and the operations of the node."""


_SIZE = {"type": "integer", "minimum": 0, "maximum": 2**63 - 1}
TILE_PATH_PATTERN = r"^(?:entries|[0-9]{1,2})/(?:x[0-9]{3}/){0,6}[0-9]{3}(?:\.p/[0-9]{1,3})?$"
"""What follows ``/v1/log/tile/`` in a tlog-tiles path (ledger.tlog.parse_tile_path has the
last word: a level up to 63, a partial width from 1 to 255, no leading zero group)."""

LOG_ROUTES: tuple[Route, ...] = (
    Route(
        method="GET",
        path="/v1/log/tile/{tile:.+}",
        handler="get_log_tile",
        summary="The log of every act as C2SP tlog-tiles: tile/<L>/<N>[.p/<W>] (the stored "
        "hashes of tree level 8·L from N·256, 32 bytes each) or tile/entries/<N>[.p/<W>] (the "
        "transactions' canonical bytes, each after a uint16 length); a partial tile of any "
        "width the log covers. Full tiles are immutable (cached a year), partial ones a minute.",
        tag="log",
        parameters=(
            _path(
                "tile",
                {"type": "string", "pattern": TILE_PATH_PATTERN},
                "the tile's path below /v1/log/tile/, e.g. 0/x001/234.p/17 or entries/000",
            ),
        ),
        responses={200: "tile"},
        problems=("invalid_parameter", "beyond_log"),
    ),
    Route(
        method="GET",
        path="/v1/log/consistency",
        handler="get_log_consistency",
        summary="An RFC 9162 consistency proof between two sizes of the log of every act "
        "(hashes as lowercase hex)",
        tag="log",
        parameters=(
            _query("old", _SIZE, "the smaller tree size (required)"),
            _query("new", _SIZE, "the larger tree size, at most the log's (required)"),
        ),
        responses={200: ConsistencyDocument},
        problems=("invalid_parameter", "beyond_log"),
    ),
    Route(
        method="GET",
        path="/v1/log/inclusion",
        handler="get_log_inclusion",
        summary="An RFC 9162 inclusion proof of entry index in the log of every act's first "
        "size entries (hashes as lowercase hex)",
        tag="log",
        parameters=(
            _query("index", _SIZE, "the entry's index, below size (required)"),
            _query("size", _SIZE, "the tree size, at most the log's (required)"),
        ),
        responses={200: InclusionDocument},
        problems=("invalid_parameter", "beyond_log"),
    ),
)
"""The log of every act: tiles and proofs (node/api/log.py)."""


_LANGUAGE_PARAMETER = _query(
    "lang",
    {"type": "string", "enum": ["fr", "en"]},
    "the page's language (default: the reader's browser's)",
)

PAGE_ROUTES: tuple[Route, ...] = (
    Route(
        method="GET",
        path="/",
        handler="get_page",
        summary="The verification page (HTML): a resident drops a document, their browser "
        "hashes it, fetches its act's receipt and verifies it against this node's genesis "
        "(docs/page.md)",
        tag="page",
        parameters=(_LANGUAGE_PARAMETER,),
        responses={200: "html"},
        problems=("invalid_parameter",),
    ),
    Route(
        method="GET",
        path="/verify",
        handler="get_page",
        summary="The verification page again, at a path that says what it is",
        tag="page",
        parameters=(_LANGUAGE_PARAMETER,),
        responses={200: "html"},
        problems=("invalid_parameter",),
    ),
)
"""The verification page (node/api/page.py, node/web/)."""


def _contract_route(contract: str, query: QueryRoute) -> Route:
    """The route of one contract read: its declaration, with its answer's schema."""
    document = getattr(display, query.document, None)
    assert isinstance(document, type) and issubclass(document, BaseModel), query.document
    assert all(code in PROBLEMS for code in query.problems), query.problems
    assert all(code in PROBLEMS for code in (query.not_found, query.malformed) if code), query
    return Route(
        method="GET",
        path=query.path,
        handler=query.name,
        summary=query.summary,
        tag=query.tag,
        parameters=tuple(
            Parameter(
                name=parameter.name,
                location=parameter.location,
                schema=parameter.schema,
                description=parameter.description,
            )
            for parameter in query.parameters
        ),
        responses={200: document},
        problems=query.problems,
        contract_query=(contract, query),
    )


CONTRACT_ROUTES: tuple[Route, ...] = tuple(
    _contract_route(contract, query) for contract, query in query_routes()
)
"""The reads the built-in contracts declare (``Contract.query_routes``)."""

ROUTES: tuple[Route, ...] = (
    _CHAIN_ROUTES + LOG_ROUTES + CONTRACT_ROUTES + _NODE_ROUTES + PAGE_ROUTES
)
"""Every route a node serves: one declaration drives the router, OpenAPI and the counters."""


class LinksDocument(BaseModel):
    """The peers whose links this node's transport cuts (fault injection, tests only)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    cut: Annotated[
        list[Annotated[str, Field(pattern=f"^{MEMBER_ID.pattern}$")]],
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
