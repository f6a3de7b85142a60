"""Transactions from any language: the bodies of ``POST /v1/transactions/prepare`` and
``POST /v1/transactions/signed`` (the rules are in :mod:`ledger.txjson`).

``prepare`` takes a JSON description and answers what to sign. ``signed`` takes
``{"prepared": …, "signature": "<128 hex digits>"}``, where ``prepared`` is either the whole
answer of ``prepare`` or a complete description (nonce and expiry height included). Either
way the node builds the transaction again from the description alone; the answer's other
members (``tx_id``, ``body``, ``message_to_sign``…), when sent back, must be what that
description makes (``prepared_mismatch`` otherwise): a client that kept a stale or altered
copy learns it, and the node never takes a byte from it.

JSON bodies are read strictly: one object, each key once (a duplicate key is refused rather
than silently overridden), nested no deeper than the arguments allow.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from ledger import jsonstrict
from ledger.model import Transaction
from ledger.txjson import DescriptionError, PreparedTransaction, prepare
from node.api.problems import ProblemError

__all__ = ["PREPARED_MEMBERS", "prepared_description", "read_json_object", "signed_transaction"]

PREPARED_MEMBERS = frozenset(
    {"description", "tx_id", "body", "message_to_sign", "message_to_sign_base64"}
)
"""The members of a ``prepare`` answer (all but ``description`` are checked, never used)."""
_SIGNATURE = re.compile(r"[0-9a-f]{128}")


def read_json_object(body: bytes) -> dict[str, Any]:
    """The JSON object of a body; an ``invalid_body`` problem otherwise."""
    try:
        document = jsonstrict.loads(body)
    except jsonstrict.DuplicateKeyError as duplicate:
        raise ProblemError("invalid_body", str(duplicate)) from None
    except ValueError:  # not JSON, not UTF-8, or nested too deeply
        raise ProblemError("invalid_body", "the body is not JSON") from None
    if not isinstance(document, dict):
        raise ProblemError("invalid_body", "the body must be one JSON object")
    return document


def prepared_description(
    document: dict[str, Any], *, chain_id: bytes, nonce: int | None, expiry_height: int | None
) -> PreparedTransaction:
    """The transaction ``document`` describes; an ``invalid_description`` problem otherwise."""
    try:
        return prepare(document, chain_id=chain_id, nonce=nonce, expiry_height=expiry_height)
    except DescriptionError as error:
        raise ProblemError("invalid_description", str(error)) from None


def signed_transaction(document: dict[str, Any], *, chain_id: bytes) -> Transaction:
    """The signed transaction of a ``signed`` body, rebuilt from its description alone."""
    if set(document) != {"prepared", "signature"}:
        raise ProblemError(
            "invalid_body",
            'expected {"prepared": <the answer of prepare, or a complete description>, '
            '"signature": "<128 hex digits>"}',
        )
    signature = document["signature"]
    if not isinstance(signature, str) or not _SIGNATURE.fullmatch(signature):
        raise ProblemError(
            "invalid_body", "signature: the Ed25519 signature, 128 lowercase hex digits"
        )
    prepared = document["prepared"]
    if not isinstance(prepared, dict):
        raise ProblemError("invalid_body", "prepared: a JSON object")
    claimed: dict[str, Any] = {}
    if "description" in prepared:
        unknown = sorted(set(prepared) - PREPARED_MEMBERS)
        if unknown:
            raise ProblemError("invalid_body", f"prepared.{unknown[0][:32]}: unknown member")
        claimed = {name: prepared[name] for name in prepared if name != "description"}
        prepared = prepared["description"]
    transaction = prepared_description(prepared, chain_id=chain_id, nonce=None, expiry_height=None)
    _check_claims(transaction, claimed)
    return transaction.signed(bytes.fromhex(signature))


def _check_claims(transaction: PreparedTransaction, claimed: dict[str, Any]) -> None:
    """Each member of a ``prepare`` answer sent back must be what the description makes."""
    made = {
        "tx_id": transaction.tx_id.hex(),
        "body": transaction.body.hex(),
        "message_to_sign": transaction.message_to_sign.hex(),
        "message_to_sign_base64": base64.b64encode(transaction.message_to_sign).decode(),
    }
    for name, value in claimed.items():
        if value != made[name]:
            raise ProblemError(
                "prepared_mismatch",
                f"prepared.{name} is not what its description makes: the description was "
                "changed after prepare, or the answer was altered; prepare it again",
            )
