"""``GET /v1/query/{contract}/{path}``: any contract's ``query(path, state)``, over HTTP.

Theory of operation
-------------------
The declared reads (``Contract.query_routes``) give a few queries of the built-in contracts
their own paths and parameters. This generic route reaches every query of every contract the
node runs — built-in or plug-in, as the genesis lists them — with one rule for all:

* **The path is checked before the contract sees it**: at most
  :data:`~ledger.queryproof.QUERY_PATH_CHARACTERS_MAX` characters, made of
  :data:`PATH_CHARACTERS` only (letters, digits and ``. _ ~ - / : @ + ,``: no space, no
  ``%``, ``?``, ``&`` or ``=``). The client's query parameters other than ``proof`` (names of
  lowercase letters, digits and ``_``; values of the same characters as the path, ``/``
  included; at most :data:`~node.api.limits.QUERY_PARAMETERS_MAX`) are appended as
  ``?name=value&…`` in the client's order, the convention of the declared reads, so
  ``/v1/query/deeds/acts/x?limit=5`` asks the deeds contract ``acts/x?limit=5``.
* **The query reads the committed state at the tip** through a :class:`RecordingView`:
  point reads (``get``) whose absence the state tree confirms, and scans (``items``). The
  view remembers the first :data:`~ledger.queryproof.QUERY_READS_PROVEN_MAX` keys read with
  ``get``; with ``?proof=true``, the answer carries a :class:`~ledger.queryproof.QueryProof`
  of those reads against the certified tip, which a client checks offline from the genesis.
* **The contract's errors keep their meaning**: a LookupError (nothing at that path) is
  ``not_found`` (404), a ValueError (a malformed path) ``invalid_query`` (400). Anything else
  it raises — a KeyError or a UnicodeError included — is a bug of the contract: the client
  gets ``query_failed`` (500), the failure is counted by contract
  (``sceau_api_query_failures_total``) and logged with its traceback the first time each kind
  occurs, and the node goes on. A store found damaged is still ``store_corrupted``.
* **The answer is bounded**: it must encode canonically (no floats, no objects: otherwise
  ``query_failed``) in at most :data:`~ledger.queryproof.QUERY_ANSWER_BYTES_MAX` bytes
  (``answer_too_large``, 422: narrow the query).

The query runs on the event loop, like every read of the API: the contract's query is
synchronous code over the committed state, and nothing commits while it runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from aiohttp import web

from ledger.namespace import StateNamespace
from ledger.queryproof import QUERY_PATH_CHARACTERS_MAX, QUERY_READS_PROVEN_MAX
from ledger.store import ConfirmedState
from node.api.limits import QUERY_PARAMETERS_MAX
from node.api.problems import ProblemError

__all__ = [
    "PATH_CHARACTERS",
    "QUERY_PARAMETER_NAME",
    "RecordingView",
    "query_path",
]

PATH_CHARACTERS = re.compile(r"[A-Za-z0-9._~:@+,/-]+")
"""The characters of a contract query path (and of a query parameter's value)."""
QUERY_PARAMETER_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
PROOF_PARAMETER = "proof"


def query_path(request: web.Request) -> tuple[str, bool]:
    """The contract's query path of ``request`` (its query string appended) and whether a
    proof is asked; raises an ``invalid_query`` or ``invalid_parameter`` problem."""
    path = request.match_info["path"]
    if len(path) > QUERY_PATH_CHARACTERS_MAX or not PATH_CHARACTERS.fullmatch(path):
        raise ProblemError(
            "invalid_query",
            f"a query path is 1 to {QUERY_PATH_CHARACTERS_MAX} characters of A-Z a-z 0-9 "
            ". _ ~ - / : @ + ,",
        )
    parameters: list[str] = []
    seen: set[str] = set()
    proof = False
    for name, value in request.query.items():
        if name in seen:
            raise ProblemError("invalid_parameter", f"query parameter {name[:32]!r} is repeated")
        seen.add(name)
        if name == PROOF_PARAMETER:
            if value not in ("true", "false"):
                raise ProblemError("invalid_parameter", "proof: true or false")
            proof = value == "true"
            continue
        if not QUERY_PARAMETER_NAME.fullmatch(name) or not PATH_CHARACTERS.fullmatch(value):
            raise ProblemError(
                "invalid_parameter",
                f"query parameter {name[:32]!r}: a name of a-z 0-9 _ (at most 32) and a "
                "non-empty value of A-Z a-z 0-9 . _ ~ - / : @ + ,",
            )
        parameters.append(f"{name}={value}")
    if len(parameters) > QUERY_PARAMETERS_MAX:
        raise ProblemError(
            "invalid_parameter", f"at most {QUERY_PARAMETERS_MAX} query parameters besides proof"
        )
    full = path + ("?" + "&".join(parameters) if parameters else "")
    if len(full) > QUERY_PATH_CHARACTERS_MAX:
        raise ProblemError(
            "invalid_query",
            f"the path and its query parameters exceed {QUERY_PATH_CHARACTERS_MAX} characters",
        )
    return full, proof


class RecordingView:
    """A contract's namespace at the tip, read only, remembering what the query reads.

    ``get`` reads are remembered, each key once, up to ``reads_max`` keys: they are what a
    proof proves. A scan (``items``), or more keys than that, makes the record incomplete.
    """

    def __init__(
        self, state: ConfirmedState, contract: str, *, reads_max: int = QUERY_READS_PROVEN_MAX
    ) -> None:
        self._state = state
        self._namespace = StateNamespace(contract)
        self._reads_max = reads_max
        self.reads: dict[bytes, bytes | None] = {}
        self.complete = True

    def get(self, key: bytes) -> bytes | None:
        if type(key) is not bytes:
            raise TypeError(f"a state key is bytes, not {type(key).__name__}")
        value = self._state.state_get(self._namespace.key(key))
        if key not in self.reads:
            if len(self.reads) < self._reads_max:
                self.reads[key] = value
            else:
                self.complete = False
        return value

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        if type(prefix) is not bytes:
            raise TypeError(f"a state key prefix is bytes, not {type(prefix).__name__}")
        self.complete = False
        for key, value in self._state.state_items(self._namespace.key(prefix)):
            yield self._namespace.local(key), value

    def proven_reads(self) -> list[tuple[bytes, bytes | None]]:
        return list(self.reads.items())
