"""Strict JSON: a document whose objects repeat a key is refused, never read "last one wins".

Why. Python's ``json`` and pydantic's JSON parser both keep the *last* value of a repeated key.
A receipt or a genesis file with ``"status": …`` twice would be verified with one value while
a person (or another parser, which may keep the *first*) reads the other: what was checked is
not what is shown. sceau's JSON documents (receipts, genesis files, the API's JSON bodies) are
therefore read through this module, which refuses any object with a repeated key and names it.

:meth:`ledger.model.CanonicalModel.model_validate_json` calls :func:`check_unique_keys` first,
so every model read from JSON (``Receipt``, ``Genesis``, …) gets the rule without its caller
doing anything. Depth is bounded by the interpreter's recursion limit: a document nested
beyond it is refused as :class:`JsonNestingError`.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["DuplicateKeyError", "JsonNestingError", "check_unique_keys", "loads"]

KEY_SHOWN_CHARACTERS_MAX = 64
"""A repeated key is named in the error, cut to this many characters."""


class DuplicateKeyError(ValueError):
    """A JSON object holds the same key twice; ``key`` is that key."""

    def __init__(self, key: str) -> None:
        shown = (
            key if len(key) <= KEY_SHOWN_CHARACTERS_MAX else key[:KEY_SHOWN_CHARACTERS_MAX] + "…"
        )
        super().__init__(
            f"the key {shown!r} appears twice in one JSON object (a repeated key is refused: "
            "readers would disagree on which value counts)"
        )
        self.key = key


class JsonNestingError(ValueError):
    """A JSON document nested deeper than the parser's recursion limit."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise DuplicateKeyError(key)
        document[key] = value
    return document


def loads(data: str | bytes | bytearray) -> Any:
    """Parse JSON ``data``, refusing repeated keys.

    Raises :class:`DuplicateKeyError` naming the first repeated key, :class:`JsonNestingError`
    for a document nested too deeply, and ``json.JSONDecodeError`` (a ValueError) or
    ``UnicodeDecodeError`` (a ValueError too) for text that is not JSON.
    """
    try:
        return json.loads(data, object_pairs_hook=_unique_pairs)
    except RecursionError:
        raise JsonNestingError("the JSON document is nested too deeply") from None


def check_unique_keys(data: str | bytes | bytearray) -> None:
    """Raise :class:`DuplicateKeyError` if ``data`` is JSON with a repeated key.

    Text that is not JSON (or nested too deeply) passes: the caller's own parser reports it
    in its own words. Only a repeated key in well-formed JSON is this function's to refuse.
    """
    try:
        json.loads(data, object_pairs_hook=_unique_pairs)
    except DuplicateKeyError:
        raise
    except (ValueError, RecursionError):
        return
