"""Transactions described in JSON, for applications that do not run the Python model.

Theory of operation
-------------------
A transaction is signed over its canonical msgpack body (docs/format.md); an application in
Java, C#, PHP or JavaScript would have to re-implement that encoding to build one. Instead it
describes the transaction in JSON and lets a node build it (``POST /v1/transactions/prepare``)::

    {"contract": "deeds", "action": "anchor", "args": {...},
     "signer": "<the signer's Ed25519 public key: 64 hex digits, or ed25519:<base64url>>",
     "nonce": 1234, "expiry_height": 5000, "chain_id": "<64 hex digits>"}

``nonce`` and ``expiry_height`` are optional when preparing (the node picks a random nonce and
an expiry some blocks ahead); ``chain_id``, optional, pins the consortium (a node of another
one refuses the description). The node answers the canonical body, the ``tx_id`` and the exact
bytes to sign; the application signs them with any Ed25519 library, and sends the description
back with the signature (``POST /v1/transactions/signed``). The node then **builds the
transaction again from the description** with :func:`prepare` and checks the signature
against it: it never uses bytes the client says the transaction has.

**Arguments in JSON** follow one rule (:func:`arguments_from_json`): JSON text, integers,
booleans, null, arrays and objects are themselves; **bytes are written** ``{"$hex": "<lowercase
hex>"}`` — an object whose only member is ``"$hex"``. Other object keys starting with ``$``
are reserved, and JSON numbers with a fraction or an exponent are refused (the canonical
encoding has no floats). The normalized description a node answers uses the same rule
(:func:`arguments_to_json`), so it can be sent back as it is.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ledger import crypto, encoding
from ledger.model import ARGUMENTS_DEPTH_MAX, U64_MAX, ModelDecodeError, Transaction

__all__ = [
    "DESCRIPTION_FIELDS",
    "HEX_MEMBER",
    "DescriptionError",
    "PreparedTransaction",
    "arguments_from_json",
    "arguments_to_json",
    "prepare",
]

HEX_MEMBER = "$hex"
"""The one member of a JSON object that stands for bytes: ``{"$hex": "00ff"}``."""
DESCRIPTION_FIELDS = frozenset(
    {"contract", "action", "args", "signer", "nonce", "expiry_height", "chain_id"}
)
_REQUIRED_FIELDS = ("contract", "action", "args", "signer")
_HEX = re.compile(r"(?:[0-9a-f]{2})*")
_HEX_32 = re.compile(r"[0-9a-f]{64}")
_NO_SIGNATURE = bytes(crypto.SIGNATURE_BYTES)
_ERROR_CHARACTERS_MAX = 300


class DescriptionError(ValueError):
    """A JSON description that does not make a transaction; the message names the field."""


def arguments_from_json(value: Any, *, where: str = "args", depth: int = 0) -> Any:
    """The canonical value of a JSON argument (see the module doc); raises DescriptionError."""
    if depth > ARGUMENTS_DEPTH_MAX:
        raise DescriptionError(f"{where}: nested deeper than {ARGUMENTS_DEPTH_MAX} levels")
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        raise DescriptionError(f"{where}: numbers are integers (no fraction, no exponent)")
    if isinstance(value, list):
        return [
            arguments_from_json(item, where=f"{where}[{index}]", depth=depth + 1)
            for index, item in enumerate(value)
        ]
    if isinstance(value, dict):
        if HEX_MEMBER in value:
            text = value[HEX_MEMBER]
            if len(value) != 1 or not isinstance(text, str) or not _HEX.fullmatch(text):
                raise DescriptionError(
                    f'{where}: bytes are {{"{HEX_MEMBER}": "<lowercase hex>"}} and nothing else'
                )
            return bytes.fromhex(text)
        reserved = next((key for key in value if key.startswith("$")), None)
        if reserved is not None:
            raise DescriptionError(f"{where}: the key {reserved[:32]!r} is reserved ('$…')")
        return {
            key: arguments_from_json(item, where=f"{where}.{key[:32]}", depth=depth + 1)
            for key, item in value.items()
        }
    raise DescriptionError(f"{where}: {type(value).__name__} is not a JSON value")


def arguments_to_json(value: Any) -> Any:
    """The JSON form of canonical arguments: bytes as ``{"$hex": …}``, the rest as it is."""
    if isinstance(value, bytes):
        return {HEX_MEMBER: value.hex()}
    if isinstance(value, Mapping):
        return {key: arguments_to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [arguments_to_json(item) for item in value]
    return value


@dataclass(frozen=True, slots=True)
class PreparedTransaction:
    """A transaction built from its description, not signed yet."""

    unsigned: Transaction
    """The transaction with an all-zero signature: every signed field is final."""

    @property
    def tx_id(self) -> bytes:
        return self.unsigned.tx_id

    @property
    def body(self) -> bytes:
        """The canonical body: the transaction without ``signature``; ``tx_id`` is its SHA-256."""
        return encoding.pack(self.unsigned.body())

    @property
    def message_to_sign(self) -> bytes:
        """The exact bytes Ed25519 signs: ``len(tag) || "sceau/tx/v1" || chain_id || tx_id``."""
        return crypto.Domain.transaction(self.unsigned.chain_id).message(self.tx_id)

    @property
    def description(self) -> dict[str, Any]:
        """The complete description (nonce and expiry included), in its JSON form."""
        transaction = self.unsigned
        return {
            "chain_id": transaction.chain_id.hex(),
            "contract": transaction.contract,
            "action": transaction.action,
            "args": arguments_to_json(transaction.args),
            "signer": transaction.signer.hex(),
            "nonce": transaction.nonce,
            "expiry_height": transaction.expiry_height,
        }

    def document(self) -> dict[str, Any]:
        """What ``POST /v1/transactions/prepare`` answers (canonical form: bytes as bytes)."""
        message = self.message_to_sign
        return {
            "description": self.description,
            "tx_id": self.tx_id,
            "body": self.body,
            "message_to_sign": message,
            "message_to_sign_base64": base64.b64encode(message).decode(),
        }

    def signed(self, signature: bytes) -> Transaction:
        """The transaction with ``signature`` (not checked here: admission checks it)."""
        assert len(signature) == crypto.SIGNATURE_BYTES, "the caller checks the length"
        return Transaction.from_canonical({**self.unsigned.body(), "signature": signature})


def _signer(text: Any) -> bytes:
    if isinstance(text, str) and _HEX_32.fullmatch(text):
        return bytes.fromhex(text)
    if isinstance(text, str) and text.startswith("ed25519:"):
        try:
            return crypto.public_key_from_text(text)
        except ValueError:
            pass
    raise DescriptionError(
        "signer: the signer's Ed25519 public key, 64 lowercase hex digits or ed25519:<base64url>"
    )


def _integer(description: Mapping[str, Any], name: str, default: int | None) -> int:
    value = description.get(name)
    if value is None:
        if default is None:
            raise DescriptionError(
                f"{name}: required when signing (send back the description prepare answered)"
            )
        return default
    if type(value) is not int or not 0 <= value <= U64_MAX:
        raise DescriptionError(f"{name}: an integer from 0 to {U64_MAX}")
    return value


def prepare(
    description: Any,
    *,
    chain_id: bytes,
    nonce: int | None = None,
    expiry_height: int | None = None,
) -> PreparedTransaction:
    """Build the unsigned transaction that ``description`` (decoded JSON) describes.

    ``nonce`` and ``expiry_height`` are the defaults for a description without them; without a
    default, the description must give them. Raises :class:`DescriptionError` naming the field.
    """
    if not isinstance(description, dict):
        raise DescriptionError("a transaction description is a JSON object")
    unknown = sorted(set(description) - DESCRIPTION_FIELDS)
    if unknown:
        raise DescriptionError(f"{unknown[0][:32]}: unknown field")
    missing = [name for name in _REQUIRED_FIELDS if name not in description]
    if missing:
        raise DescriptionError(f"{missing[0]}: missing")
    pinned = description.get("chain_id")
    if pinned is not None and not (isinstance(pinned, str) and _HEX_32.fullmatch(pinned)):
        raise DescriptionError("chain_id: the consortium's chain_id, 64 lowercase hex digits")
    if pinned is not None and pinned != chain_id.hex():
        raise DescriptionError("chain_id: this node's consortium is another one")
    if not isinstance(description["args"], dict):
        raise DescriptionError("args: a JSON object")
    fields = {
        "chain_id": chain_id,
        "contract": description["contract"],
        "action": description["action"],
        "args": arguments_from_json(description["args"]),
        "signer": _signer(description["signer"]),
        "nonce": _integer(description, "nonce", nonce),
        "expiry_height": _integer(description, "expiry_height", expiry_height),
        "signature": _NO_SIGNATURE,
    }
    try:
        return PreparedTransaction(Transaction.from_canonical(fields))
    except ModelDecodeError as error:
        text = str(error).removeprefix("Transaction.")
        raise DescriptionError(text[:_ERROR_CHARACTERS_MAX]) from None
