"""Specification of canonical msgpack (ledger.encoding): one value, one byte form.

The tests carry their own msgpack encoder, written from the msgpack specification and nothing
else. Writing the shortest form it must agree with ``pack`` byte for byte; told to widen one
header (a small integer as uint64, a 3-byte string under a str8 header, two elements under an
array16 header…) it produces valid msgpack that ``unpack`` must refuse as non-canonical.
"""

from __future__ import annotations

import enum
import math
import struct
from dataclasses import dataclass
from typing import Any

import msgpack
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from strategies import canonical_values, integers, map_keys, normalised, scalars

from ledger import encoding
from ledger.encoding import (
    INT_MAX,
    INT_MIN,
    DecodeLimits,
    DepthLimitError,
    EncodingError,
    LengthLimitError,
    MalformedError,
    NonCanonicalError,
    SizeLimitError,
    UnsupportedTypeError,
    pack,
    unpack,
)

# --- an independent msgpack encoder that can write every legal form ---------------------------


@dataclass(frozen=True)
class Family:
    name: str
    marker: int
    size: int
    """Bytes of the length or value after the marker (0: packed into the marker itself)."""
    maximum: int


INT_FAMILIES = {
    "unsigned": (
        Family("positive fixint", 0x00, 0, 127),
        Family("uint8", 0xCC, 1, 2**8 - 1),
        Family("uint16", 0xCD, 2, 2**16 - 1),
        Family("uint32", 0xCE, 4, 2**32 - 1),
        Family("uint64", 0xCF, 8, 2**64 - 1),
    ),
    "signed": (
        Family("negative fixint", 0xE0, 0, -1),
        Family("int8", 0xD0, 1, 2**7 - 1),
        Family("int16", 0xD1, 2, 2**15 - 1),
        Family("int32", 0xD2, 4, 2**31 - 1),
        Family("int64", 0xD3, 8, 2**63 - 1),
    ),
}
LENGTH_FAMILIES = {
    "str": (
        Family("fixstr", 0xA0, 0, 31),
        Family("str8", 0xD9, 1, 2**8 - 1),
        Family("str16", 0xDA, 2, 2**16 - 1),
        Family("str32", 0xDB, 4, 2**32 - 1),
    ),
    "bin": (
        Family("bin8", 0xC4, 1, 2**8 - 1),
        Family("bin16", 0xC5, 2, 2**16 - 1),
        Family("bin32", 0xC6, 4, 2**32 - 1),
    ),
    "array": (
        Family("fixarray", 0x90, 0, 15),
        Family("array16", 0xDC, 2, 2**16 - 1),
        Family("array32", 0xDD, 4, 2**32 - 1),
    ),
    "map": (
        Family("fixmap", 0x80, 0, 15),
        Family("map16", 0xDE, 2, 2**16 - 1),
        Family("map32", 0xDF, 4, 2**32 - 1),
    ),
}
ALL_FAMILIES = {
    family.name: family
    for families in (*INT_FAMILIES.values(), *LENGTH_FAMILIES.values())
    for family in families
}


def int_fits(value: int, family: Family) -> bool:
    if family.name == "positive fixint":
        return 0 <= value <= 127
    if family.name == "negative fixint":
        return -32 <= value <= -1
    if family.name.startswith("uint"):
        return 0 <= value <= family.maximum
    return -family.maximum - 1 <= value <= family.maximum


def int_families(value: int) -> list[Family]:
    """Every family that can hold ``value``, the canonical one first."""
    canonical_kind = "unsigned" if value >= 0 else "signed"
    canonical = next(f for f in INT_FAMILIES[canonical_kind] if int_fits(value, f))
    others = [
        family
        for families in INT_FAMILIES.values()
        for family in families
        if family is not canonical and int_fits(value, family)
    ]
    return [canonical, *others]


def length_families(kind: str, length: int) -> list[Family]:
    """Every header family of ``kind`` that can hold ``length``, the shortest first."""
    return [family for family in LENGTH_FAMILIES[kind] if length <= family.maximum]


def encode_int(value: int, family: Family | str) -> bytes:
    family = ALL_FAMILIES[family] if isinstance(family, str) else family
    assert int_fits(value, family), (value, family.name)
    if family.size == 0:
        return bytes([value & 0xFF])
    return bytes([family.marker]) + value.to_bytes(family.size, "big", signed=value < 0)


def header(family: Family | str, length: int) -> bytes:
    family = ALL_FAMILIES[family] if isinstance(family, str) else family
    assert length <= family.maximum, (length, family.name)
    if family.size == 0:
        return bytes([family.marker | length])
    return bytes([family.marker]) + length.to_bytes(family.size, "big")


class HandEncoder:
    """A plain msgpack encoder that writes every header in its shortest form, except one.

    Nodes (every value and every map key) are numbered in the order they are written; node
    ``widen_node`` gets a legal but non-canonical family instead, chosen by ``wide_choice``
    among the alternatives. ``widened`` tells which family was used, if any.
    """

    def __init__(self, widen_node: int | None = None, wide_choice: int = 0) -> None:
        self.widen_node = widen_node
        self.wide_choice = wide_choice
        self.nodes = 0
        self.widened: str | None = None

    def _pick(self, node: int, families: list[Family]) -> Family:
        if node == self.widen_node and len(families) > 1:
            family = families[1 + self.wide_choice % (len(families) - 1)]
            self.widened = family.name
            return family
        return families[0]

    def encode(self, value: Any) -> bytes:
        node = self.nodes
        self.nodes += 1
        if value is None:
            return b"\xc0"
        if value is True or value is False:
            return b"\xc3" if value else b"\xc2"
        if isinstance(value, int):
            return encode_int(value, self._pick(node, int_families(value)))
        if isinstance(value, bytes):
            return header(self._pick(node, length_families("bin", len(value))), len(value)) + value
        if isinstance(value, str):
            data = value.encode()
            return header(self._pick(node, length_families("str", len(data))), len(data)) + data
        if isinstance(value, list | tuple):
            head = header(self._pick(node, length_families("array", len(value))), len(value))
            return head + b"".join(self.encode(item) for item in value)
        if isinstance(value, dict):
            head = header(self._pick(node, length_families("map", len(value))), len(value))
            ordered = sorted(value.items(), key=lambda item: HandEncoder().encode(item[0]))
            return head + b"".join(self.encode(k) + self.encode(v) for k, v in ordered)
        raise AssertionError(f"not a canonical value: {value!r}")


def canonical(value: Any) -> bytes:
    return HandEncoder().encode(value)


def node_count(value: Any) -> int:
    encoder = HandEncoder()
    encoder.encode(value)
    return encoder.nodes


def float32(value: float) -> bytes:
    return b"\xca" + struct.pack(">f", value)


def float64(value: float) -> bytes:
    return b"\xcb" + struct.pack(">d", value)


def nested(depth: int, kind: str = "array") -> Any:
    """A value whose containers nest exactly ``depth`` deep (a scalar at the bottom)."""
    value: Any = 0
    for _ in range(depth):
        value = [value] if kind == "array" else {"k": value}
    return value


# --- round trips ---------------------------------------------------------------------------------


@settings(max_examples=200)
@given(canonical_values())
def test_unpack_inverts_pack_for_every_canonical_value(value: Any):
    assert unpack(pack(value)) == normalised(value)


@settings(max_examples=150)
@given(canonical_values())
def test_pack_agrees_with_an_independent_shortest_form_encoder(value: Any):
    assert pack(value) == canonical(value)


@settings(max_examples=50)
@given(canonical_values())
def test_pack_is_stable_under_decoding(value: Any):
    encoded = pack(value)
    assert pack(unpack(encoded)) == encoded


@settings(max_examples=50)
@given(st.dictionaries(map_keys, scalars, max_size=8), st.randoms(use_true_random=False))
def test_pack_ignores_the_insertion_order_of_map_keys(value: dict, random: Any):
    items = list(value.items())
    random.shuffle(items)
    assert pack(dict(items)) == pack(value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "c0"),
        (False, "c2"),
        (True, "c3"),
        (0, "00"),
        (127, "7f"),
        (128, "cc80"),
        (255, "ccff"),
        (256, "cd0100"),
        (65535, "cdffff"),
        (65536, "ce00010000"),
        (2**32 - 1, "ceffffffff"),
        (2**32, "cf0000000100000000"),
        (INT_MAX, "cfffffffffffffffff"),
        (-1, "ff"),
        (-32, "e0"),
        (-33, "d0df"),
        (-128, "d080"),
        (-129, "d1ff7f"),
        (-32768, "d18000"),
        (-32769, "d2ffff7fff"),
        (-(2**31), "d280000000"),
        (-(2**31) - 1, "d3ffffffff7fffffff"),
        (INT_MIN, "d38000000000000000"),
        ("", "a0"),
        ("a", "a161"),
        ("é", "a2c3a9"),
        ("x" * 31, "bf" + "78" * 31),
        ("x" * 32, "d920" + "78" * 32),
        (b"", "c400"),
        (b"a", "c40161"),
        ([], "90"),
        ([1, [2]], "920191" + "02"),
        ({}, "80"),
        ({"b": 1, "a": 2}, "82a16102a16201"),
    ],
)
def test_pack_writes_the_shortest_form(value: Any, expected: str):
    assert pack(value).hex() == expected
    assert unpack(bytes.fromhex(expected)) == value


@pytest.mark.parametrize(
    ("kind", "length", "expected_header"),
    [
        ("str", 31, "bf"),
        ("str", 32, "d920"),
        ("str", 255, "d9ff"),
        ("str", 256, "da0100"),
        ("str", 65535, "daffff"),
        ("str", 65536, "db00010000"),
        ("bin", 255, "c4ff"),
        ("bin", 256, "c50100"),
        ("bin", 65535, "c5ffff"),
        ("bin", 65536, "c600010000"),
        ("array", 15, "9f"),
        ("array", 16, "dc0010"),
        ("array", 65535, "dcffff"),
        ("array", 65536, "dd00010000"),
        ("map", 15, "8f"),
        ("map", 16, "de0010"),
        ("map", 65535, "deffff"),
        ("map", 65536, "df00010000"),
    ],
)
def test_length_headers_switch_family_exactly_at_the_boundary(
    kind: str, length: int, expected_header: str
):
    value: Any = {
        "str": lambda: "x" * length,
        "bin": lambda: b"x" * length,
        "array": lambda: [0] * length,
        "map": lambda: {index: 0 for index in range(length)},
    }[kind]()
    encoded = pack(value)
    assert encoded.hex().startswith(expected_header)
    assert unpack(encoded) == value


def test_map_keys_sort_by_their_encoded_bytes_not_their_python_order():
    value = {-1: "negative fixint ff", 200: "uint8 cc", b"a": "bin8 c4", "a": "fixstr a1", 1: "01"}
    assert list(unpack(pack(value))) == [1, "a", b"a", 200, -1]


@settings(max_examples=100)
@given(
    st.dictionaries(st.text(max_size=40), canonical_values(), min_size=1, max_size=8),
    st.randoms(use_true_random=False),
)
def test_a_remembered_key_order_encodes_exactly_like_a_fresh_sort(value: dict, random: Any):
    # Text keys of different lengths sort by their encoded bytes (length prefix first): the
    # order remembered from the first encoding must give the same bytes every time after.
    first = pack(value)
    assert pack(value) == first
    items = list(value.items())
    random.shuffle(items)
    shuffled = dict(items)
    assert pack(shuffled) == pack(shuffled) == first
    assert pack(unpack(first)) == first
    assert list(unpack(first)) == sorted(value, key=lambda key: pack(key))


def test_a_remembered_key_order_still_checks_the_values():
    good = {"b": 1, "aa": "x"}
    pack(good)
    with pytest.raises(UnsupportedTypeError):
        pack({"b": 1.5, "aa": "x"})
    with pytest.raises(UnsupportedTypeError):
        pack({"b": 2**64, "aa": "x"})


def test_str_and_bytes_stay_distinct_types():
    assert pack("abc") != pack(b"abc")
    assert unpack(pack("abc")) == "abc"
    assert unpack(pack(b"abc")) == b"abc"
    assert pack({"k": 1}) != pack({b"k": 1})


def test_pack_encodes_tuples_as_arrays_and_byte_buffers_as_bytes():
    assert pack((1, (2, 3))) == pack([1, [2, 3]])
    assert pack(bytearray(b"ab")) == pack(memoryview(b"ab")) == pack(b"ab")


def test_pack_encodes_int_and_str_enums_as_their_values():
    class Colour(enum.IntEnum):
        RED = 300

    class Shape(enum.StrEnum):
        SQUARE = "square"

    assert pack([Colour.RED, Shape.SQUARE]) == pack([300, "square"])


# --- non-canonical forms are refused -------------------------------------------------------------


@settings(max_examples=200)
@given(canonical_values(depth=2), st.data())
def test_unpack_rejects_any_non_shortest_header(value: Any, data: st.DataObject):
    node = data.draw(st.integers(0, node_count(value) - 1), label="node")
    encoder = HandEncoder(widen_node=node, wide_choice=data.draw(st.integers(0, 8)))
    widened = encoder.encode(value)
    assume(encoder.widened is not None)  # nil and booleans have a single form
    # The widened form is legal msgpack holding the same value: only canonicality is at stake.
    assert msgpack.unpackb(widened, strict_map_key=False) == normalised(value)
    with pytest.raises(NonCanonicalError):
        unpack(widened)


@settings(max_examples=60)
@given(integers, st.data())
def test_unpack_rejects_an_integer_in_any_other_family(value: int, data: st.DataObject):
    canonical_family, *others = int_families(value)
    assert encode_int(value, canonical_family) == pack(value)
    assume(others)
    family = data.draw(st.sampled_from(others), label="family")
    with pytest.raises(NonCanonicalError):
        unpack(encode_int(value, family))


@pytest.mark.parametrize("family", ["uint8", "uint16", "uint32", "uint64"])
def test_unpack_rejects_a_small_positive_integer_in_a_wide_unsigned_family(family: str):
    with pytest.raises(NonCanonicalError):
        unpack(encode_int(5, family))


@pytest.mark.parametrize("family", ["int8", "int16", "int32", "int64"])
def test_unpack_rejects_a_non_negative_integer_in_a_signed_family(family: str):
    with pytest.raises(NonCanonicalError):
        unpack(encode_int(5, family))


@pytest.mark.parametrize("family", ["int8", "int16", "int32", "int64"])
def test_unpack_rejects_a_small_negative_integer_in_a_wide_signed_family(family: str):
    with pytest.raises(NonCanonicalError):
        unpack(encode_int(-5, family))


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("str8 for a 3-byte string", header("str8", 3) + b"abc"),
        ("str16 for a 3-byte string", header("str16", 3) + b"abc"),
        ("str32 for a 3-byte string", header("str32", 3) + b"abc"),
        ("str16 for a 32-byte string", header("str16", 32) + b"x" * 32),
        ("bin16 for 3 bytes", header("bin16", 3) + b"abc"),
        ("bin32 for 3 bytes", header("bin32", 3) + b"abc"),
        ("array16 for 2 elements", header("array16", 2) + b"\x01\x02"),
        ("array32 for 2 elements", header("array32", 2) + b"\x01\x02"),
        ("map16 for 1 entry", header("map16", 1) + b"\xa1a\x01"),
        ("map32 for 1 entry", header("map32", 1) + b"\xa1a\x01"),
        ("uint16 map key", header("fixmap", 1) + encode_int(1, "uint16") + b"\x01"),
        ("str8 map key", header("fixmap", 1) + header("str8", 1) + b"a\x01"),
    ],
)
def test_unpack_rejects_non_shortest_length_headers(name: str, document: bytes):
    with pytest.raises(NonCanonicalError):
        unpack(document)


@settings(max_examples=60)
@given(st.dictionaries(map_keys, scalars, min_size=2, max_size=6), st.data())
def test_unpack_rejects_unsorted_map_keys(value: dict, data: st.DataObject):
    entries = sorted((canonical(key), canonical(item)) for key, item in value.items())
    shuffled = data.draw(st.permutations(entries), label="order")
    assume(shuffled != entries)
    document = header(length_families("map", len(entries))[0], len(entries))
    document += b"".join(key + item for key, item in shuffled)
    with pytest.raises(NonCanonicalError):
        unpack(document)


@settings(max_examples=60)
@given(st.dictionaries(st.text(max_size=8), scalars, min_size=2, max_size=6), st.data())
def test_a_key_order_seen_sorted_lets_no_other_order_through(value: dict, data: st.DataObject):
    """unpack remembers key tuples found sorted; the same keys in another order are still
    refused, before and after the memory is full and dropped."""
    entries = sorted((canonical(key), canonical(item)) for key, item in value.items())
    shuffled = data.draw(st.permutations(entries), label="order")
    assume(shuffled != entries)
    family = length_families("map", len(entries))[0]
    sorted_document = header(family, len(entries)) + b"".join(k + v for k, v in entries)
    shuffled_document = header(family, len(entries)) + b"".join(k + v for k, v in shuffled)
    assert unpack(sorted_document) == value
    with pytest.raises(NonCanonicalError):
        unpack(shuffled_document)
    for index in range(encoding._SORTED_KEYS_SIZE_MAX + 1):  # fills and drops the memory
        unpack(pack({f"k{index}": 1}))
    assert len(encoding._SORTED_KEYS) <= encoding._SORTED_KEYS_SIZE_MAX
    with pytest.raises(NonCanonicalError):
        unpack(shuffled_document)
    assert unpack(sorted_document) == value


@settings(max_examples=300)
@given(canonical_values())
def test_msgspecs_encoder_writes_msgpacks_bytes(value: Any):
    """encoding may encode with msgspec (when installed) or msgpack: the same bytes."""
    msgspec = pytest.importorskip("msgspec")
    value = encoding.canonical_form(value)
    expected = msgpack.packb(value, use_bin_type=True, strict_types=True)
    assert msgspec.msgpack.Encoder().encode(value) == expected
    assert pack(value) == expected


HEADER_EDGES = (
    *(0, 127, 128, 255, 256, 2**16 - 1, 2**16, 2**32 - 1, 2**32, 2**64 - 1),
    *(-1, -32, -33, -128, -129, -(2**15), -(2**15) - 1, -(2**31), -(2**31) - 1, -(2**63)),
    *("", "a" * 31, "a" * 32, "a" * 255, "a" * 256, "a" * 65_536),
    *(b"", b"a" * 255, b"a" * 256, b"a" * 65_536, [0] * 15, [0] * 16, [0] * 65_536),
    *({str(n): n for n in range(16)}, {str(n): n for n in range(65_536)}),
)


@pytest.mark.parametrize("value", HEADER_EDGES)
def test_msgspecs_encoder_writes_msgpacks_headers(value: Any):
    msgspec = pytest.importorskip("msgspec")
    value = encoding.canonical_form(value)
    expected = msgpack.packb(value, use_bin_type=True, strict_types=True)
    assert msgspec.msgpack.Encoder().encode(value) == expected == pack(value)


@settings(max_examples=60)
@given(st.dictionaries(map_keys, scalars, min_size=1, max_size=6), scalars, st.data())
def test_unpack_rejects_duplicate_map_keys(value: dict, other: Any, data: st.DataObject):
    entries = sorted((canonical(key), canonical(item)) for key, item in value.items())
    duplicated_key = data.draw(st.sampled_from(entries), label="duplicated")[0]
    position = data.draw(st.integers(0, len(entries)), label="position")
    entries.insert(position, (duplicated_key, canonical(other)))
    document = header(length_families("map", len(entries))[0], len(entries))
    document += b"".join(key + item for key, item in entries)
    with pytest.raises(NonCanonicalError):
        unpack(document)


def test_unpack_rejects_keys_that_differ_only_in_python_equality():
    # 1 and true are distinct msgpack keys but one Python key: decoding would lose an entry.
    with pytest.raises(NonCanonicalError):
        unpack(header("fixmap", 2) + b"\x01\x01\xc3\x02")


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("nil key", b"\x81\xc0\x01"),
        ("boolean key", b"\x81\xc3\x01"),
        ("array key", b"\x81\x91\x01\x01"),
        ("map key", b"\x81\x80\x01"),
        ("float key", b"\x81" + float64(1.0) + b"\x01"),
        ("extension key", b"\x81\xd4\x01\x00\x01"),
    ],
)
def test_unpack_rejects_map_keys_that_are_not_text_bytes_or_integers(name: str, document: bytes):
    with pytest.raises(NonCanonicalError):
        unpack(document)


@settings(max_examples=60)
@given(
    st.floats(allow_nan=True, width=32),
    st.floats(allow_nan=True),
    st.sampled_from(["alone", "in an array", "as a map value"]),
)
def test_unpack_rejects_floats_of_either_width(single: float, double: float, where: str):
    for number in (float32(single), float64(double)):
        document = {
            "alone": number,
            "in an array": b"\x92\x01" + number,
            "as a map value": b"\x81\xa1k" + number,
        }[where]
        with pytest.raises(NonCanonicalError):
            unpack(document)


def test_unpack_rejects_a_float_even_when_it_holds_an_integer():
    with pytest.raises(NonCanonicalError):
        unpack(float64(1.0))
    with pytest.raises(NonCanonicalError):
        unpack(float32(0.0))


EXTENSION_HEADERS = [
    *(
        (f"fixext{size}", bytes([marker]), size)
        for size, marker in zip((1, 2, 4, 8, 16), range(0xD4, 0xD9), strict=True)
    ),
    *(("ext8", b"\xc7", size) for size in (1, 3, 17)),
    *(("ext16", b"\xc8", size) for size in (1, 300)),
    *(("ext32", b"\xc9", size) for size in (1,)),
]


@pytest.mark.parametrize(("name", "marker", "size"), EXTENSION_HEADERS)
@settings(max_examples=20)
@given(code=st.integers(-128, 127), payload=st.data())
def test_unpack_rejects_extension_types(
    name: str, marker: bytes, size: int, code: int, payload: st.DataObject
):
    data = payload.draw(st.binary(min_size=size, max_size=size))
    length = b"" if name.startswith("fixext") else size.to_bytes(int(name[3:]) // 8, "big")
    document = marker + length + code.to_bytes(1, "big", signed=True) + data
    with pytest.raises(NonCanonicalError):
        unpack(document)
    with pytest.raises(NonCanonicalError):
        unpack(b"\x91" + document)


@pytest.mark.parametrize(
    ("name", "document"),
    [
        ("timestamp 32", b"\xd6\xff" + (1_700_000_000).to_bytes(4, "big")),
        ("timestamp 64", b"\xd7\xff" + (1_700_000_000).to_bytes(8, "big")),
        ("timestamp 96", b"\xc7\x0c\xff" + (0).to_bytes(4, "big") + (2**40).to_bytes(8, "big")),
        ("empty ext8 of an application type", b"\xc7\x00\x05"),
    ],
)
def test_unpack_rejects_msgpack_timestamps_and_empty_extensions(name: str, document: bytes):
    with pytest.raises(NonCanonicalError):
        unpack(document)


def test_unpack_rejects_an_empty_timestamp_as_malformed():
    with pytest.raises(MalformedError):
        unpack(b"\xc7\x00\xff")


@settings(max_examples=60)
@given(canonical_values(), st.binary(min_size=1, max_size=9))
def test_unpack_rejects_trailing_bytes(value: Any, trailing: bytes):
    with pytest.raises(MalformedError, match="trailing"):
        unpack(pack(value) + trailing)


@settings(max_examples=60)
@given(canonical_values(), st.data())
def test_unpack_rejects_every_truncation(value: Any, data: st.DataObject):
    encoded = pack(value)
    cut = data.draw(st.integers(0, len(encoded) - 1), label="cut")
    with pytest.raises(MalformedError):
        unpack(encoded[:cut])


INVALID_UTF8 = [
    b"\xff",
    b"\x80",
    b"\xc0\x80",  # overlong NUL
    b"\xe0\x80\x80",  # overlong
    b"\xed\xa0\x80",  # an encoded surrogate
    b"\xf4\x90\x80\x80",  # above U+10FFFF
    b"\xe2\x82",  # truncated sequence
    b"abc\xfe",
]


@settings(max_examples=60)
@given(
    st.one_of(
        st.sampled_from(INVALID_UTF8),
        st.binary(max_size=40).filter(lambda raw: not _is_utf8(raw)),
    ),
    st.booleans(),
)
def test_unpack_rejects_invalid_utf8_in_text(raw: bytes, as_key: bool):
    text = header(length_families("str", len(raw))[0], len(raw)) + raw
    document = b"\x81" + text + b"\x01" if as_key else text
    with pytest.raises(MalformedError):
        unpack(document)


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize(
    ("name", "document", "error"),
    [
        ("empty document", b"", MalformedError),
        ("the never-used byte 0xc1", b"\xc1", MalformedError),
        ("0xc1 inside an array", b"\x91\xc1", MalformedError),
        ("an array missing its element", b"\x92\x01", MalformedError),
        (
            "an array32 header claiming more than the input",
            b"\xdd\x00\x00\x00\x05\x01",
            MalformedError,
        ),
    ],
)
def test_unpack_rejects_malformed_input(name: str, document: bytes, error: type[Exception]):
    with pytest.raises(error):
        unpack(document)


@pytest.mark.parametrize("document", ["c0", 1, None, [0xC0]])
def test_unpack_rejects_anything_but_a_bytes_like_document(document: Any):
    with pytest.raises(MalformedError):
        unpack(document)


def test_unpack_accepts_bytearray_and_memoryview():
    assert unpack(bytearray(b"\x92\x01\x02")) == [1, 2]
    assert unpack(memoryview(b"\xa1a")) == "a"


# --- limits --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    [
        SizeLimitError,
        DepthLimitError,
        LengthLimitError,
        MalformedError,
        NonCanonicalError,
        UnsupportedTypeError,
    ],
)
def test_every_error_is_an_encoding_error_and_a_value_error(error: type[Exception]):
    assert issubclass(error, EncodingError)
    assert issubclass(error, ValueError)


def test_unpack_accepts_a_document_of_exactly_the_size_limit():
    document = pack(b"x" * 100)
    assert unpack(document, DecodeLimits(total_bytes_max=len(document))) == b"x" * 100
    with pytest.raises(SizeLimitError):
        unpack(document, DecodeLimits(total_bytes_max=len(document) - 1))


def test_unpack_checks_the_size_limit_before_decoding():
    # Garbage, but too large: the size is the first thing unpack looks at.
    with pytest.raises(SizeLimitError):
        unpack(b"\xc1" * (encoding.DEFAULT_LIMITS.total_bytes_max + 1))


@pytest.mark.parametrize("kind", ["array", "map"])
@pytest.mark.parametrize("depth_max", [0, 1, 5, encoding.DEFAULT_LIMITS.depth_max])
def test_depth_limit_admits_exactly_depth_max_levels(kind: str, depth_max: int):
    deepest = nested(depth_max, kind)
    encoded = pack(deepest, depth_max=depth_max)
    assert unpack(encoded, DecodeLimits(depth_max=depth_max)) == deepest

    too_deep = nested(depth_max + 1, kind)
    with pytest.raises(DepthLimitError):
        pack(too_deep, depth_max=depth_max)
    with pytest.raises(DepthLimitError):
        unpack(pack(too_deep, depth_max=depth_max + 1), DecodeLimits(depth_max=depth_max))


def test_default_depth_limit_applies_to_pack_and_unpack():
    depth_max = encoding.DEFAULT_LIMITS.depth_max
    assert unpack(pack(nested(depth_max))) == nested(depth_max)
    with pytest.raises(DepthLimitError):
        pack(nested(depth_max + 1))
    with pytest.raises(DepthLimitError):
        unpack(b"\x91" * (depth_max + 1) + b"\x00")


@pytest.mark.parametrize("depth", [33, 500, 1023, 1024, 1025, 10_000])
@pytest.mark.parametrize("container", [b"\x91", b"\x81\xa1k"])
def test_deeply_nested_input_raises_depth_limit_error_not_recursion_error(
    depth: int, container: bytes
):
    # Below and above the C decoder's own stack (1024 levels): both paths end the same way.
    with pytest.raises(DepthLimitError):
        unpack(container * depth + b"\xc0")


def test_pack_of_a_ten_thousand_deep_value_raises_depth_limit_error():
    with pytest.raises(DepthLimitError):
        pack(nested(10_000))
    with pytest.raises(DepthLimitError):
        pack(nested(10_000, "map"))


def test_decode_limits_refuse_a_depth_the_walkers_cannot_reach():
    # pack and unpack recurse; a limit deeper than they can walk would let a RecursionError out.
    with pytest.raises(AssertionError):
        DecodeLimits(depth_max=100_000)
    with pytest.raises(AssertionError):
        pack([], depth_max=100_000)


@pytest.mark.parametrize(
    ("limit", "make"),
    [
        ("str_bytes_max", lambda length: "é" * (length // 2) + "x" * (length % 2)),
        ("bin_bytes_max", lambda length: b"\x00" * length),
        ("array_length_max", lambda length: [None] * length),
        ("map_length_max", lambda length: {index: None for index in range(length)}),
    ],
)
@pytest.mark.parametrize("maximum", [0, 1, 31, 300])
def test_length_limits_admit_exactly_the_maximum(limit: str, make: Any, maximum: int):
    limits = DecodeLimits(**{limit: maximum})
    assert unpack(pack(make(maximum)), limits) == make(maximum)
    with pytest.raises(LengthLimitError):
        unpack(pack(make(maximum + 1)), limits)
    with pytest.raises(LengthLimitError):
        unpack(pack([make(maximum + 1)]), limits)


def test_the_text_limit_applies_to_map_keys_too():
    with pytest.raises(LengthLimitError):
        unpack(pack({"long key": 1}), DecodeLimits(str_bytes_max=7))


@pytest.mark.parametrize(
    ("document", "error"),
    [
        (b"\xdd\xff\xff\xff\xff", LengthLimitError),  # array32
        (b"\xdf\xff\xff\xff\xff", LengthLimitError),  # map32
        (b"\xdb\xff\xff\xff\xff", MalformedError),  # str32, and no text follows
        (b"\xc6\xff\xff\xff\xff", MalformedError),  # bin32, and no bytes follow
    ],
)
def test_a_header_claiming_four_billion_items_is_refused_at_once(
    document: bytes, error: type[Exception]
):
    with pytest.raises(error):
        unpack(document)


# --- what pack refuses ---------------------------------------------------------------------------


class Opaque:
    pass


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("float", 1.0),
        ("nan", math.nan),
        ("infinity", math.inf),
        ("complex", 1j),
        ("set", {1, 2}),
        ("frozenset", frozenset()),
        ("object", Opaque()),
        ("class", Opaque),
        ("integer above 2**64 - 1", INT_MAX + 1),
        ("integer below -2**63", INT_MIN - 1),
        ("float inside an array", [1, 2.5]),
        ("float inside a map", {"a": 0.5}),
        ("boolean key", {True: 1}),
        ("float key", {1.5: 1}),
        ("nil key", {None: 1}),
        ("tuple key", {(1, 2): 1}),
        ("text with a lone surrogate", "a\ud800b"),
        ("key with a lone surrogate", {"\udc00": 1}),
    ],
)
def test_pack_rejects_values_outside_the_canonical_subset(name: str, value: Any):
    with pytest.raises(UnsupportedTypeError):
        pack(value)


# --- fuzzing -------------------------------------------------------------------------------------


def assert_decodes_canonically_or_is_refused(document: bytes) -> None:
    try:
        value = unpack(document)
    except EncodingError:
        return
    assert pack(value) == document


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_unpack_of_arbitrary_bytes_is_canonical_or_an_encoding_error(document: bytes):
    assert_decodes_canonically_or_is_refused(document)


@settings(max_examples=300)
@given(canonical_values(depth=2), st.data())
def test_unpack_of_a_mutated_encoding_is_canonical_or_an_encoding_error(
    value: Any, data: st.DataObject
):
    document = bytearray(pack(value))
    position = data.draw(st.integers(0, len(document)), label="position")
    mutation = data.draw(st.sampled_from(["replace", "insert", "delete"]), label="mutation")
    byte = data.draw(st.integers(0, 255), label="byte")
    if mutation == "replace" and position < len(document):
        document[position] = byte
    elif mutation == "insert":
        document.insert(position, byte)
    elif position < len(document):
        del document[position]
    assert_decodes_canonically_or_is_refused(bytes(document))


def test_a_map_is_checked_entry_by_entry_in_order():
    """A float value before a bad key is refused for the float, as it always was: remembering
    sorted key sets changed no error message."""
    float_then_nil_key = b"\x82\xa1a\xcb" + struct.pack(">d", 1.5) + b"\xc0\x01"
    with pytest.raises(NonCanonicalError, match="floats are not allowed"):
        unpack(float_then_nil_key)
    nil_key_then_float = b"\x82\xc0\x01\xa1a\xcb" + struct.pack(">d", 1.5)
    with pytest.raises(NonCanonicalError, match="map key of type NoneType"):
        unpack(nil_key_then_float)
