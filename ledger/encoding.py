"""Canonical msgpack: the only byte form that sceau hashes, signs or stores.

Theory of operation
-------------------
Every hash and signature in sceau is computed over bytes produced by :func:`pack`. For two
implementations (a node and an auditor, say, or Python and another language) to agree on a
hash, one value must have exactly one encoding. Plain msgpack allows several (a small integer
may be written in 1, 2, 3, 5 or 9 bytes; map keys may come in any order), so sceau uses a
strict subset:

* Allowed types: nil, bool, integers in [-2**63, 2**64 - 1], bytes (msgpack ``bin``), text
  (msgpack ``str``, valid UTF-8), arrays and maps. No floats, no extension types (hence no
  msgpack timestamps).
* Every integer, string, bytes, array and map header uses its shortest form. Non-negative
  integers always use the unsigned families (positive fixint, uint8..uint64); negative ones the
  signed families (negative fixint, int8..int64).
* Map keys are text, bytes or integers, unique, and sorted by their *encoded* bytes
  (byte-wise lexicographic order).
* A document is exactly one value: no trailing bytes.

:func:`unpack` accepts only bytes that :func:`pack` could have produced: it decodes with
msgpack's C decoder under hard length limits, then re-encodes the result canonically and
compares. Any difference (non-shortest form, unsorted or duplicate keys, a float, an extension
type…) is a :class:`NonCanonicalError`. The re-encoding walk also enforces the depth limit.

Limits are carried by a frozen :class:`DecodeLimits` value passed in by the caller; the default
suits anything sceau stores. Errors form a small hierarchy rooted at :class:`EncodingError`
(a ``ValueError``) so that a caller handling peer or client input catches one type.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import msgpack

__all__ = [
    "DEFAULT_LIMITS",
    "INT_MAX",
    "INT_MIN",
    "DecodeLimits",
    "DepthLimitError",
    "EncodingError",
    "LengthLimitError",
    "MalformedError",
    "NonCanonicalError",
    "SizeLimitError",
    "UnsupportedTypeError",
    "canonical_form",
    "pack",
    "pack_decoded",
    "unpack",
]

INT_MIN = -(2**63)
INT_MAX = 2**64 - 1


class EncodingError(ValueError):
    """Base class of every canonical encoding or decoding failure."""


class UnsupportedTypeError(EncodingError):
    """A value of a type outside the canonical subset (float, set, object, …)."""


class MalformedError(EncodingError):
    """Bytes that are not msgpack at all (truncated, invalid UTF-8, trailing bytes)."""


class NonCanonicalError(EncodingError):
    """Valid msgpack that is not the canonical encoding of the value it holds."""


class SizeLimitError(EncodingError):
    """The whole document is larger than ``total_bytes_max``."""


class DepthLimitError(EncodingError):
    """Arrays and maps nest deeper than ``depth_max``."""


class LengthLimitError(EncodingError):
    """A string, bytes, array or map is longer than its limit."""


_DEPTH_MAX_SUPPORTED = 256
"""The deepest nesting pack and unpack can walk: both recurse (as does msgpack's packer, which
stops at 511 levels), so a larger limit would turn deep input into a RecursionError instead of a
DepthLimitError."""


@dataclass(frozen=True, slots=True, kw_only=True)
class DecodeLimits:
    """Upper bounds that a decoded document must respect.

    ``depth_max`` counts container levels: a scalar has depth 0, ``[1]`` depth 1, ``[[1]]``
    depth 2.
    """

    total_bytes_max: int = 32 * 1024 * 1024
    depth_max: int = 32
    str_bytes_max: int = 1024 * 1024
    bin_bytes_max: int = 16 * 1024 * 1024
    array_length_max: int = 1_000_000
    map_length_max: int = 100_000

    def __post_init__(self) -> None:
        for name in (
            "total_bytes_max",
            "depth_max",
            "str_bytes_max",
            "bin_bytes_max",
            "array_length_max",
            "map_length_max",
        ):
            value = getattr(self, name)
            assert isinstance(value, int) and value >= 0, f"{name} must be a non-negative int"
        assert self.depth_max <= _DEPTH_MAX_SUPPORTED, f"depth_max over {_DEPTH_MAX_SUPPORTED}"


DEFAULT_LIMITS = DecodeLimits()

_PACKER_OPTIONS = {"use_bin_type": True, "strict_types": True, "autoreset": True}


def pack(value: Any, *, depth_max: int = DEFAULT_LIMITS.depth_max) -> bytes:
    """Return the canonical msgpack encoding of ``value``.

    Tuples are encoded as arrays (and decode as lists). Raises :class:`UnsupportedTypeError`
    for a value outside the canonical subset, :class:`DepthLimitError` when containers nest
    deeper than ``depth_max``.
    """
    kind = type(value)
    if kind is str or kind is bytes:  # state keys are built from many small parts
        return _packb(value)
    assert 0 <= depth_max <= _DEPTH_MAX_SUPPORTED, f"depth_max over {_DEPTH_MAX_SUPPORTED}"
    return _packb(_canonical(value, depth_max))


def canonical_form(value: Any, *, depth_max: int = DEFAULT_LIMITS.depth_max) -> Any:
    """``value`` rebuilt as it decodes from its canonical encoding: new maps in canonical key
    order, lists for tuples, bytes for byte buffers, base types for subclasses.

    Raises like :func:`pack`. Cheaper than ``unpack(pack(value))`` and gives an equal value made
    of new containers (scalars are immutable and shared).
    """
    assert 0 <= depth_max <= _DEPTH_MAX_SUPPORTED, f"depth_max over {_DEPTH_MAX_SUPPORTED}"
    return _canonical(value, depth_max)


def pack_decoded(value: Any) -> bytes:
    """The canonical encoding of a value that :func:`unpack` returned (or a part of it).

    Such a value is canonical as it is, maps in canonical order included: it is encoded without
    the walk that :func:`pack` makes to check and sort an arbitrary value.
    """
    return _packb(value)


def _msgpack_packb(value: Any) -> bytes:
    return msgpack.packb(value, **_PACKER_OPTIONS)


try:
    import msgspec
except ImportError:  # a platform without its wheel: msgpack's packer gives the same bytes
    _encode = _msgpack_packb
else:
    _encode = msgspec.msgpack.Encoder().encode
    """msgspec's encoder writes what msgpack's does with the options above (shortest forms,
    unsigned families for non-negative integers, bin for bytes, maps in their order) at twice
    its speed; tests/test_encoding.py holds the two to the same bytes. Only values already made
    canonical reach it (:func:`_canonical`, or a decoded value): no float, tuple or subclass."""


def _packb(value: Any) -> bytes:
    try:
        return _encode(value)
    except UnicodeEncodeError as error:
        # A str holding a lone surrogate has no UTF-8 form, hence no canonical encoding.
        raise UnsupportedTypeError(f"text that is not valid Unicode: {error.reason}") from None


def unpack(data: bytes, limits: DecodeLimits = DEFAULT_LIMITS) -> Any:
    """Decode one canonical msgpack document, rejecting anything non-canonical.

    Returns nil/bool/int/bytes/str/list/dict values. Raises :class:`SizeLimitError`,
    :class:`LengthLimitError`, :class:`DepthLimitError`, :class:`MalformedError`,
    :class:`NonCanonicalError` or :class:`UnsupportedTypeError` (all :class:`EncodingError`).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MalformedError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) > limits.total_bytes_max:
        raise SizeLimitError(
            f"document is {len(data)} bytes, more than the limit of {limits.total_bytes_max}"
        )
    if not data:
        raise MalformedError("empty document")
    value = _decode(data, limits)
    # The decoded value keeps the document's map order: if the document is canonical, its
    # maps are already sorted and msgpack re-encodes it to the very same bytes.
    _check_decoded(value, limits.depth_max)
    try:
        again = _packb(value)
    except UnsupportedTypeError as error:
        raise NonCanonicalError(f"document holds a non-canonical type: {error}") from None
    if again != data:
        raise NonCanonicalError(_describe_difference(data, again))
    return value


def _decode(data: bytes, limits: DecodeLimits) -> Any:
    try:
        return msgpack.unpackb(
            data,
            raw=False,
            use_list=True,
            strict_map_key=False,
            max_str_len=limits.str_bytes_max,
            max_bin_len=limits.bin_bytes_max,
            max_array_len=limits.array_length_max,
            max_map_len=limits.map_length_max,
            max_ext_len=0,
            ext_hook=_reject_extension,
        )
    except EncodingError:
        raise
    except msgpack.ExtraData:
        raise MalformedError("trailing bytes after the document") from None
    except (msgpack.OutOfData, UnicodeDecodeError) as error:
        raise MalformedError(f"malformed msgpack: {type(error).__name__}") from None
    except TypeError as error:
        # An unhashable map key (an array or map used as a key).
        raise NonCanonicalError(f"map key of a non-canonical type: {error}") from None
    except (ValueError, msgpack.FormatError, msgpack.StackError) as error:
        message = str(error)
        if "max_ext_len" in message:
            raise NonCanonicalError("extension types are not allowed") from None
        if "exceeds max" in message:
            raise LengthLimitError(message) from None
        if isinstance(error, msgpack.StackError):
            raise DepthLimitError("document nests deeper than the decoder allows") from None
        raise MalformedError(f"malformed msgpack: {message or type(error).__name__}") from None


def _reject_extension(code: int, data: bytes) -> Any:
    raise NonCanonicalError(f"extension type {code} is not allowed")


def _canonical(value: Any, depth_left: int) -> Any:
    """Validate ``value`` and return it with every map rebuilt in canonical key order."""
    kind = type(value)
    if kind is bytes or kind is str or kind is bool or value is None:
        return value
    if kind is int:
        if not INT_MIN <= value <= INT_MAX:
            raise UnsupportedTypeError(f"integer {value} is outside [-2**63, 2**64 - 1]")
        return value
    if kind is list or kind is tuple:
        if depth_left <= 0:
            raise DepthLimitError("containers nest deeper than the depth limit")
        return [_canonical(item, depth_left - 1) for item in value]
    if kind is dict:
        if depth_left <= 0:
            raise DepthLimitError("containers nest deeper than the depth limit")
        return _canonical_map(value, depth_left - 1)
    if kind is bytearray or kind is memoryview:
        return bytes(value)
    if isinstance(value, bool | int | str | bytes):
        # Subclasses (IntEnum, StrEnum…) encode as their base value.
        for base in (bool, int, str, bytes):
            if isinstance(value, base):
                return _canonical(base(value), depth_left)
    raise UnsupportedTypeError(f"type {kind.__name__} has no canonical encoding")


_KEY_CACHE: dict[str, bytes] = {}
_KEY_CACHE_SIZE_MAX = 4096


def _encoded_key(key: str | bytes | int) -> bytes:
    """The canonical encoding of a map key (text keys, nearly always field names, cached)."""
    if type(key) is str:
        encoded = _KEY_CACHE.get(key)
        if encoded is None:
            encoded = _packb(key)
            if len(_KEY_CACHE) < _KEY_CACHE_SIZE_MAX:
                _KEY_CACHE[key] = encoded
        return encoded
    return _packb(_canonical(key, 0))


def _check_decoded(value: Any, depth_left: int) -> None:
    """Reject floats, bad map keys, unsorted maps and excess depth in a decoded value."""
    kind = type(value)
    if kind is float:
        raise NonCanonicalError("floats are not allowed")
    if kind is not list and kind is not dict:
        return
    if depth_left <= 0:
        raise DepthLimitError("containers nest deeper than the depth limit")
    if kind is list:
        for item in value:
            item_kind = type(item)
            if item_kind is list or item_kind is dict or item_kind is float:
                _check_decoded(item, depth_left - 1)
        return
    keys = tuple(value)
    if keys not in _SORTED_KEYS:
        _check_map(value, keys, depth_left)
        return
    for item in value.values():
        item_kind = type(item)
        if item_kind is list or item_kind is dict or item_kind is float:
            _check_decoded(item, depth_left - 1)


_SORTED_KEYS: set[tuple[str, ...]] = set()
"""Key tuples of decoded maps already found sorted: records of one kind repeat the same field
names, whose order is then checked once (a set lookup instead of a comparison per key)."""
_SORTED_KEYS_SIZE_MAX = 1024


def _check_map(value: dict, keys: tuple[Any, ...], depth_left: int) -> None:
    """Check a decoded map whose keys are not known sorted: each key (text, bytes or an
    integer, sorted by its encoding: distinct, as the re-encoding compares) then its value, in
    order; a small set of short text keys found sorted is remembered."""
    previous = b""
    for key, item in value.items():
        key_kind = type(key)
        if key_kind is not str and key_kind is not bytes and key_kind is not int:
            raise NonCanonicalError(f"map key of type {key_kind.__name__} is not allowed")
        encoded = _encoded_key(key)
        if encoded <= previous:
            raise NonCanonicalError("map keys are not sorted by their encoding")
        previous = encoded
        item_kind = type(item)
        if item_kind is list or item_kind is dict or item_kind is float:
            _check_decoded(item, depth_left - 1)
    if len(keys) <= _KEY_ORDER_KEYS_MAX and all(
        type(key) is str and len(key) <= _KEY_ORDER_KEY_CHARACTERS_MAX for key in keys
    ):
        # Only small sets of short text keys are remembered, and the whole memory is dropped
        # when full: maps from a hostile peer can cost it its speed for a while, never memory.
        if len(_SORTED_KEYS) >= _SORTED_KEYS_SIZE_MAX:
            _SORTED_KEYS.clear()
        _SORTED_KEYS.add(keys)


_KEY_ORDER_CACHE: dict[tuple[str, ...], tuple[str, ...]] = {}
_KEY_ORDER_CACHE_SIZE_MAX = 1024
_KEY_ORDER_KEYS_MAX = 32
_KEY_ORDER_KEY_CHARACTERS_MAX = 64


def _canonical_map(value: dict, depth_left: int) -> dict:
    # Records are written by code, so the same text keys come back in the same insertion
    # order again and again: their canonical order is computed once and remembered.
    order = _KEY_ORDER_CACHE.get(tuple(value))
    if order is None:
        return _canonical_map_sorted(value, depth_left)
    result = {}
    for key in order:
        item = value[key]
        kind = type(item)
        if kind is str or kind is bytes or item is None or kind is bool:
            result[key] = item
        else:
            result[key] = _canonical(item, depth_left)
    return result


def _canonical_map_sorted(value: dict, depth_left: int) -> dict:
    entries = []
    for key, item in value.items():
        if type(key) not in (str, bytes, int) or type(key) is bool:
            raise UnsupportedTypeError(
                f"map key of type {type(key).__name__}: keys must be str, bytes or int"
            )
        entries.append((_encoded_key(key), key, _canonical(item, depth_left)))
    entries.sort(key=lambda entry: entry[0])
    for previous, current in itertools.pairwise(entries):
        if previous[0] == current[0]:
            raise UnsupportedTypeError(f"duplicate map key {current[1]!r}")
    keys = tuple(value)
    if (
        len(_KEY_ORDER_CACHE) < _KEY_ORDER_CACHE_SIZE_MAX
        and len(keys) <= _KEY_ORDER_KEYS_MAX
        and all(type(key) is str and len(key) <= _KEY_ORDER_KEY_CHARACTERS_MAX for key in keys)
    ):
        # Distinct text keys have distinct encodings: the order alone can be reused. Only
        # small key sets are remembered, so that hostile maps cannot fill memory.
        _KEY_ORDER_CACHE[keys] = tuple(key for _, key, _ in entries)
    return {key: item for _, key, item in entries}


def _describe_difference(data: bytes, canonical: bytes) -> str:
    offset = next(
        (index for index, (a, b) in enumerate(zip(data, canonical, strict=False)) if a != b),
        min(len(data), len(canonical)),
    )
    return (
        f"not the canonical encoding (first difference at byte {offset}; "
        f"{len(data)} bytes given, canonical form has {len(canonical)})"
    )
