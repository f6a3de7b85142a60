"""Hypothesis strategies shared by the specification tests of ``ledger``.

Canonical values reach every boundary of the msgpack families (integer widths, str/bin/array
length headers); model strategies build valid members, genesis documents, signed transactions,
headers, blocks and certificates. Keys come from drawn 32-byte seeds, never from the OS, so a
failing example replays and shrinks like any other.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st

from ledger import crypto
from ledger.encoding import INT_MAX, INT_MIN
from ledger.model import (
    LOG_ENTRY_BYTES_MAX,
    U63_MAX,
    U64_MAX,
    Block,
    BlockHeader,
    CommitCertificate,
    ConsensusParameters,
    ContractRef,
    Genesis,
    Member,
    Transaction,
)

# --- canonical values ------------------------------------------------------------------------

INT_BOUNDARIES = (
    *(0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1, 2**63, INT_MAX),
    *(-1, -32, -33, -127, -128, -129, -32768, -32769, -(2**31), -(2**31) - 1, INT_MIN),
)
"""Every edge between two msgpack integer families, on both sides."""

LENGTH_BOUNDARIES = (0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536)
"""Every edge between two str/bin length headers (fixstr/str8/str16/str32, bin8/16/32)."""

integers = st.one_of(st.sampled_from(INT_BOUNDARIES), st.integers(INT_MIN, INT_MAX))


def _filled(length: int, fill: bytes) -> bytes:
    return (fill * length)[:length]


def _byte_strings(lengths: tuple[int, ...]) -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=40),
        st.builds(_filled, st.sampled_from(lengths), st.binary(min_size=1, max_size=3)),
    )


def _texts(lengths: tuple[int, ...]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.text(max_size=20),
        st.builds(
            lambda length, fill: _filled(length, fill.encode()).decode(),
            st.sampled_from(lengths),
            st.sampled_from(("a", "Z", "0", "~")),
        ),
    )


byte_strings = _byte_strings(LENGTH_BOUNDARIES)
"""Bytes, including lengths on each side of every bin header edge (built, not drawn byte by
byte, so that 64 KiB values stay cheap)."""

texts = _texts(LENGTH_BOUNDARIES)
"""Text (hypothesis never draws lone surrogates), including UTF-8 byte lengths on each side of
every str header edge."""

scalars = st.one_of(st.none(), st.booleans(), integers, byte_strings, texts)
small_scalars = st.one_of(
    st.none(), st.booleans(), integers, _byte_strings((31, 32, 255, 256)), _texts((31, 32))
)
"""Scalars without the 64 KiB boundary values, for documents with a size ceiling."""
map_keys = st.one_of(st.text(max_size=8), st.binary(max_size=8), integers)


def canonical_values(
    depth: int = 3, *, width: int = 4, leaves: st.SearchStrategy[Any] = scalars
) -> st.SearchStrategy[Any]:
    """Values of the canonical subset that nest at most ``depth`` containers deep."""
    if depth == 0:
        return leaves
    inner = canonical_values(depth - 1, width=width, leaves=leaves)
    # Deferred, so that the strategy's repr (which hypothesis prints) stays one line.
    return st.deferred(
        lambda: st.one_of(
            leaves,
            st.lists(inner, max_size=width),
            st.lists(inner, max_size=width).map(tuple),
            st.dictionaries(map_keys, inner, max_size=width),
        )
    )


def json_values(depth: int = 3) -> st.SearchStrategy[Any]:
    """Canonical values that JSON represents exactly: no bytes, and text keys only."""
    leaves = st.one_of(
        st.none(), st.booleans(), st.integers(INT_MIN, INT_MAX), st.text(max_size=12)
    )
    if depth == 0:
        return leaves
    inner = json_values(depth - 1)
    return st.one_of(
        leaves,
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(max_size=8), inner, max_size=3),
    )


def normalised(value: Any) -> Any:
    """``value`` as unpack returns it: tuples become lists, bytearrays bytes."""
    if isinstance(value, list | tuple):
        return [normalised(item) for item in value]
    if isinstance(value, dict):
        return {key: normalised(item) for key, item in value.items()}
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    return value


# --- keys and field values -------------------------------------------------------------------

seeds = st.binary(min_size=32, max_size=32)
private_keys = seeds.map(Ed25519PrivateKey.from_private_bytes)
public_keys = private_keys.map(crypto.public_key_bytes)
hashes = st.binary(min_size=32, max_size=32)
signatures = st.binary(min_size=64, max_size=64)

member_ids = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,12}[a-z0-9])?", fullmatch=True)
names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
versions = st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}(\.[0-9]{1,3})?", fullmatch=True)
display_names = (
    st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40)
    .map(str.strip)
    .filter(bool)
)
endpoints = st.builds(
    "{}:{}".format,
    st.from_regex(r"[a-z0-9][a-z0-9.-]{0,20}", fullmatch=True),
    st.integers(0, 65535),
)
heights = st.one_of(st.sampled_from((1, 2, U63_MAX)), st.integers(1, U63_MAX))
views = st.one_of(st.sampled_from((0, 1, U63_MAX)), st.integers(0, U63_MAX))
milliseconds = st.integers(0, U63_MAX)
nonces = st.one_of(st.sampled_from((0, U64_MAX)), st.integers(0, U64_MAX))

# --- models ----------------------------------------------------------------------------------

members = st.builds(
    Member, id=member_ids, name=display_names, public_key=public_keys, endpoint=endpoints
)
member_sets = st.lists(
    members,
    min_size=1,
    max_size=6,
    unique_by=(
        lambda member: member.id,
        lambda member: member.public_key,
        lambda member: member.endpoint,
    ),
).map(tuple)


@st.composite
def parameters(draw: st.DrawFn) -> ConsensusParameters:
    transaction_bytes_max = draw(st.integers(256, LOG_ENTRY_BYTES_MAX))
    return ConsensusParameters(
        block_transactions_max=draw(st.integers(1, 100_000)),
        block_bytes_max=draw(st.integers(max(1024, transaction_bytes_max), 12 * 1024 * 1024)),
        transaction_bytes_max=transaction_bytes_max,
        view_timeout_ms=draw(st.integers(100, 600_000)),
        timestamp_drift_ms_max=draw(st.integers(100, 3_600_000)),
        governance_threshold_percent=draw(st.integers(51, 100)),
        proposal_lifetime_blocks=draw(st.integers(1, 10_000_000)),
    )


contract_refs = st.lists(
    st.builds(ContractRef, name=names, version=versions),
    max_size=3,
    unique_by=lambda contract: contract.name,
).map(tuple)
genesis_documents = st.builds(
    Genesis,
    consortium=display_names,
    created_at_ms=milliseconds,
    members=member_sets,
    parameters=parameters(),
    contracts=contract_refs,
)

arguments = st.dictionaries(
    st.text(max_size=10), canonical_values(3, width=3, leaves=small_scalars), max_size=4
)
"""Transaction arguments: a text-keyed map, nesting well within ARGUMENTS_DEPTH_MAX."""
json_arguments = st.dictionaries(st.text(max_size=10), json_values(3), max_size=4)


@st.composite
def transactions(
    draw: st.DrawFn,
    *,
    chain_id: bytes | None = None,
    args: st.SearchStrategy[dict[str, Any]] = arguments,
) -> Transaction:
    """A transaction signed by a drawn key (for ``chain_id`` when given)."""
    return Transaction.create(
        draw(private_keys),
        chain_id=draw(hashes) if chain_id is None else chain_id,
        contract=draw(names),
        action=draw(names),
        args=draw(args),
        nonce=draw(nonces),
        expiry_height=draw(heights),
    )


@st.composite
def headers(
    draw: st.DrawFn, *, chain_id: bytes | None = None, tx_count: int | None = None
) -> BlockHeader:
    return BlockHeader(
        chain_id=draw(hashes) if chain_id is None else chain_id,
        height=draw(heights),
        prev_hash=draw(hashes),
        timestamp_ms=draw(milliseconds),
        proposer=draw(member_ids),
        view=draw(views),
        tx_count=draw(st.integers(0, U63_MAX)) if tx_count is None else tx_count,
        tx_root=draw(hashes),
        state_root=draw(hashes),
        members_hash=draw(hashes),
    )


@st.composite
def blocks(draw: st.DrawFn, *, args: st.SearchStrategy[dict[str, Any]] = arguments) -> Block:
    """A block whose header counts its transactions (other fields are not checked here)."""
    chain_id = draw(hashes)
    body = tuple(draw(st.lists(transactions(chain_id=chain_id, args=args), max_size=3)))
    return Block(header=draw(headers(chain_id=chain_id, tx_count=len(body))), transactions=body)


@st.composite
def certificates(draw: st.DrawFn) -> CommitCertificate:
    """A well-formed certificate (signatures are random bytes: verify is tested elsewhere)."""
    signers = sorted(draw(st.lists(member_ids, min_size=1, max_size=7, unique=True)))
    return CommitCertificate(
        height=draw(heights),
        view=draw(views),
        block_hash=draw(hashes),
        signatures=tuple((signer, draw(signatures)) for signer in signers),
    )
