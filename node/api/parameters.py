"""Path and query parameters: each checked before the node sees it.

A handler validates its parameters itself, *before* touching the node (a height is checked to
be in 1..2**63-1 before the store sees it); a malformed one is an ``invalid_parameter`` (or a
more precise) problem. The parameters of the contracts' query routes are checked against the
patterns the contracts declare (:class:`~contracts.base.QueryParameter`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from aiohttp import web

from contracts.base import QueryParameter
from ledger import encoding, jsonstrict
from node.api.limits import BATCH_LIMITS, BATCH_TRANSACTIONS_MAX, HEIGHT_MAX, WAIT_S_MAX
from node.api.problems import ProblemError

__all__ = [
    "HEX",
    "MEMBER_ID",
    "batch_items",
    "contract_parameter",
    "parse_boolean",
    "parse_bounded",
    "parse_height",
    "parse_tx_id",
    "parse_wait",
    "query_parameters",
    "transaction_hex",
]

_TX_ID = re.compile(r"[0-9a-f]{64}")
_HEIGHT = re.compile(r"[0-9]{1,19}")
HEX = re.compile(r"(?:[0-9a-f]{2})+")
MEMBER_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,46}[a-z0-9])?")
_SECONDS = re.compile(r"[0-9]{1,20}(?:\.[0-9]{1,20})?(?:[eE][+-]?[0-9]{1,3})?")
_BOOLEANS = {"true": True, "false": False}


def query_parameters(request: web.Request, allowed: Iterable[str]) -> dict[str, str]:
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


def transaction_hex(body: bytes) -> bytes:
    """The transaction bytes of a JSON submission ``{"transaction": "<lowercase hex>"}``."""
    try:
        document = jsonstrict.loads(body)
    except jsonstrict.DuplicateKeyError as error:
        raise ProblemError("invalid_body", str(error)) from None
    except ValueError:  # not JSON, not UTF-8, or nested beyond the stack
        raise ProblemError("invalid_body", "the body is not JSON") from None
    if not isinstance(document, dict) or set(document) != {"transaction"}:
        raise ProblemError("invalid_body", 'expected {"transaction": "<hex>"} and nothing else')
    text = document["transaction"]
    if not isinstance(text, str) or not HEX.fullmatch(text):
        raise ProblemError(
            "invalid_transaction",
            "transaction: expected the lowercase hex of the transaction's canonical bytes",
        )
    return bytes.fromhex(text)


def batch_items(body: bytes, request: web.Request) -> list[bytes]:
    """The canonical bytes of each transaction of a batch's body, not decoded yet: a canonical
    msgpack array of byte strings, or ``{"transactions": ["<hex>", …]}``; 1 to
    BATCH_TRANSACTIONS_MAX of them (``invalid_body`` otherwise)."""
    expected = f"1 to {BATCH_TRANSACTIONS_MAX} transactions"
    if request.content_type == "application/json":
        try:
            document = jsonstrict.loads(body)
        except jsonstrict.DuplicateKeyError as error:
            raise ProblemError("invalid_body", str(error)) from None
        except ValueError:  # not JSON, not UTF-8, or nested beyond the stack
            raise ProblemError("invalid_body", "the body is not JSON") from None
        if not isinstance(document, dict) or set(document) != {"transactions"}:
            raise ProblemError(
                "invalid_body", 'expected {"transactions": ["<hex>", …]} and nothing else'
            )
        texts = document["transactions"]
        if not isinstance(texts, list) or not 1 <= len(texts) <= BATCH_TRANSACTIONS_MAX:
            raise ProblemError("invalid_body", f"transactions: expected a list of {expected}")
        for index, text in enumerate(texts):
            if not isinstance(text, str) or not HEX.fullmatch(text):
                raise ProblemError(
                    "invalid_transaction",
                    f"transactions[{index}]: expected the lowercase hex of the transaction's "
                    "canonical bytes",
                )
        return [bytes.fromhex(text) for text in texts]
    try:
        items = encoding.unpack(body, BATCH_LIMITS)
    except encoding.EncodingError as error:
        raise ProblemError(
            "invalid_body", f"expected a canonical msgpack array of {expected}: {error}"
        ) from None
    if (
        not isinstance(items, list)
        or not items
        or not all(isinstance(item, bytes) for item in items)
    ):
        raise ProblemError(
            "invalid_body",
            f"expected a msgpack array of {expected}, each its canonical bytes as a byte string",
        )
    return items


def parse_tx_id(text: str) -> bytes:
    if not _TX_ID.fullmatch(text):
        raise ProblemError("invalid_id", "a transaction id is 64 lowercase hex digits")
    return bytes.fromhex(text)


def parse_height(text: str) -> int:
    if not _HEIGHT.fullmatch(text) or not 1 <= int(text) <= HEIGHT_MAX:
        raise ProblemError("invalid_height", f"a block height is an integer from 1 to {HEIGHT_MAX}")
    return int(text)


def parse_bounded(name: str, text: str | None, default: int, low: int, high: int) -> int:
    if text is None:
        return default
    if not _HEIGHT.fullmatch(text) or not low <= int(text) <= high:
        raise ProblemError("invalid_parameter", f"{name}: an integer from {low} to {high}")
    return int(text)


def parse_wait(text: str | None) -> float:
    if text is None:
        return 0.0
    seconds = float(text) if _SECONDS.fullmatch(text) else math.nan
    if not 0 <= seconds <= WAIT_S_MAX:
        raise ProblemError("invalid_parameter", f"wait: seconds from 0 to {WAIT_S_MAX}")
    return seconds


def parse_boolean(name: str, text: str | None) -> bool:
    if text is None:
        return False
    if text not in _BOOLEANS:
        raise ProblemError("invalid_parameter", f"{name}: true or false")
    return _BOOLEANS[text]


def contract_parameter(parameter: QueryParameter, text: str) -> str:
    """``text`` if it matches the contract's declared pattern; else an invalid_query problem."""
    if parameter.pattern is not None and not parameter.pattern.fullmatch(text):
        raise ProblemError("invalid_query", parameter.invalid)
    return text
