"""The worked examples of docs/format.md, computed from the code from fixed inputs.

Usage::

    python docs/vectors.py            # print the "Worked examples" section (Markdown)
    python docs/vectors.py --write    # replace that section in docs/format.md
    python docs/vectors.py --check    # exit 1 if docs/format.md is not up to date

Every input is fixed: the seeds of the keys, names, endpoints, timestamps, nonces, document
digests. Ed25519 signatures are deterministic (RFC 8032 section 5.1.6), so signatures are pinned
like everything else. The section is generated between the markers :data:`BEGIN_MARKER` and
:data:`END_MARKER`; each value sits in a fenced block preceded by ``<!-- vector: NAME -->``.
tests/test_format_vectors.py imports this file, recomputes every vector from the current code
and compares it with the document: when a byte format changes, the test fails until the
document is regenerated (``--write``) and the change reviewed.

The example is one coherent chain: a genesis of four members, a block 1 of three transactions
executed by the real engine (contracts ``membership`` and ``deeds``), its commit certificate,
proofs in the state tree, and two signed consensus messages.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from consensus.messages import Prepare, PreparedCertificate, ViewChange
from contracts import deeds
from contracts.deeds import DeedsContract
from contracts.engine import Engine
from contracts.membership import MembershipContract
from ledger import crypto, domains, encoding, merkle, state, tlog
from ledger.memstate import MemoryState
from ledger.model import (
    Block,
    BlockHeader,
    CommitCertificate,
    ContractRef,
    Genesis,
    Member,
    Transaction,
    members_hash,
    quorum_size,
    vote_payload,
)

__all__ = [
    "BEGIN_MARKER",
    "END_MARKER",
    "FORMAT_DOCUMENT",
    "Example",
    "Vector",
    "example",
    "render",
    "vectors",
]

FORMAT_DOCUMENT = Path(__file__).resolve().parent / "format.md"
BEGIN_MARKER = "<!-- BEGIN GENERATED: python docs/vectors.py --write -->"
END_MARKER = "<!-- END GENERATED -->"
HEX_CHARACTERS_PER_LINE = 64
"""32 bytes per line of hex."""

# --- fixed inputs -------------------------------------------------------------------------------

MEMBER_SPECS = (
    ("metropole", "Métropole Exemple", "metropole.example.org:7400"),
    ("commune-a", "Commune A", "commune-a.example.org:7400"),
    ("commune-b", "Commune B", "commune-b.example.org:7400"),
    ("syndicat-eaux", "Syndicat des eaux", "syndicat-eaux.example.org:7400"),
)
"""(id, display name, endpoint) of the four members, in genesis (rotation) order."""
APPLICATION_SEED = bytes(32)
"""The seed of a records-office application key that is not a member key."""
CONSORTIUM = "Consortium d'exemple"
CREATED_AT_MS = 1_767_225_600_000
"""2026-01-01T00:00:00Z."""
BLOCK_TIMESTAMP_MS = CREATED_AT_MS + 60_000
EXPIRY_HEIGHT = 100
CERTIFICATE_VIEW = 0
VIEW_CHANGE_VIEW = 1


def member_seed(index: int) -> bytes:
    """The Ed25519 seed of the member at ``index`` (0-based): 32 bytes of ``index + 1``."""
    return bytes([index + 1]) * 32


def document_digest(name: str) -> bytes:
    """The stand-in digest of an administrative act's document."""
    return hashlib.sha256(f"example document: {name}".encode()).digest()


# --- the example chain --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Example:
    """Everything the worked examples show, built once from the fixed inputs."""

    keys: dict[str, crypto.PrivateKey]
    application_key: crypto.PrivateKey
    genesis: Genesis
    genesis_state: dict[bytes, bytes]
    genesis_tree: MemoryState
    transactions: tuple[Transaction, ...]
    block: Block
    certificate: CommitCertificate
    state_after_block: MemoryState
    prepare: Prepare
    view_change: ViewChange


@cache
def example() -> Example:
    """Build the example chain (cached: it is deterministic)."""
    keys = {
        member_id: crypto.key_from_seed(member_seed(index))
        for index, (member_id, _, _) in enumerate(MEMBER_SPECS)
    }
    application_key = crypto.key_from_seed(APPLICATION_SEED)
    genesis = Genesis(
        format_version=1,
        consortium=CONSORTIUM,
        created_at_ms=CREATED_AT_MS,
        members=tuple(
            Member(
                id=member_id,
                name=name,
                public_key=crypto.public_key_bytes(keys[member_id]),
                endpoint=endpoint,
            )
            for member_id, name, endpoint in MEMBER_SPECS
        ),
        contracts=(
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="1.0"),
        ),
    )
    engine = Engine(genesis, {"membership": MembershipContract(), "deeds": DeedsContract()})
    genesis_state = engine.genesis_state()
    transactions = _block_transactions(genesis.chain_id, keys, application_key)

    committed = MemoryState(genesis_state)
    proposer = genesis.members[0].id
    result = engine.execute(
        committed, transactions, height=1, timestamp_ms=BLOCK_TIMESTAMP_MS, proposer=proposer
    )
    assert not result.rejected, result.rejected
    header = BlockHeader(
        chain_id=genesis.chain_id,
        height=1,
        prev_hash=genesis.chain_id,
        timestamp_ms=BLOCK_TIMESTAMP_MS,
        proposer=proposer,
        view=0,
        tx_count=len(transactions),
        tx_root=merkle.root([transaction.encoded for transaction in transactions]),
        state_root=result.state_root,
        members_hash=result.members_hash,
    )
    block = Block(header=header, transactions=transactions)
    engine.process_proposal(committed, block)  # a replica would accept this block
    committed.commit(result.state_writes, [transaction.tx_id for transaction in transactions])
    assert committed.state_root == header.state_root

    signers = sorted(member.id for member in genesis.members[: quorum_size(len(MEMBER_SPECS))])
    certificate = _certificate(genesis.chain_id, keys, block, signers)
    certificate.verify(genesis.chain_id, genesis.members)

    prepare = Prepare.sign(
        keys["commune-a"],
        genesis.chain_id,
        height=1,
        view=0,
        block_hash=block.block_hash,
        sender="commune-a",
    )
    prepared = PreparedCertificate(
        height=1,
        view=0,
        block_hash=block.block_hash,
        prepares=tuple(
            (
                member_id,
                Prepare.sign(
                    keys[member_id],
                    genesis.chain_id,
                    height=1,
                    view=0,
                    block_hash=block.block_hash,
                    sender=member_id,
                ).signature,
            )
            for member_id in signers
        ),
    )
    view_change = ViewChange.sign(
        keys["commune-b"],
        genesis.chain_id,
        height=1,
        view=VIEW_CHANGE_VIEW,
        prepared=prepared,
        sender="commune-b",
    )
    assert view_change.signature_is_valid(
        genesis.chain_id, crypto.public_key_bytes(keys["commune-b"])
    )
    return Example(
        keys=keys,
        application_key=application_key,
        genesis=genesis,
        genesis_state=genesis_state,
        genesis_tree=MemoryState(genesis_state),
        transactions=transactions,
        block=block,
        certificate=certificate,
        state_after_block=committed,
        prepare=prepare,
        view_change=view_change,
    )


def _block_transactions(
    chain_id: bytes, keys: dict[str, crypto.PrivateKey], application_key: crypto.PrivateKey
) -> tuple[Transaction, ...]:
    """Block 1: two deeds anchored by member keys, then a delegation to an application key."""
    anchor_deliberation = Transaction.create(
        keys["metropole"],
        chain_id=chain_id,
        contract="deeds",
        action="anchor",
        args={
            "issuer": "metropole",
            "reference": "2026-DEL-042",
            "kind": "deliberation",
            "digest": document_digest("2026-DEL-042"),
            "act_date": "2026-03-12",
            "title": "Approbation du plan local d'urbanisme",
        },
        nonce=1,
        expiry_height=EXPIRY_HEIGHT,
    )
    anchor_decree = Transaction.create(
        keys["commune-a"],
        chain_id=chain_id,
        contract="deeds",
        action="anchor",
        args={
            "issuer": "commune-a",
            "reference": "2026-ARR-007",
            "kind": "decree",
            "digest": document_digest("2026-ARR-007"),
            "act_date": "2026-03-10",
            "title": "Réglementation du stationnement, place du Marché",
        },
        nonce=1,
        expiry_height=EXPIRY_HEIGHT,
    )
    delegation = Transaction.create(
        keys["metropole"],
        chain_id=chain_id,
        contract="membership",
        action="delegate",
        args={
            "member_id": "metropole",
            "signer": crypto.public_key_bytes(application_key),
            "roles": ["deeds.issue"],
            "expiry_height": None,
        },
        nonce=2,
        expiry_height=EXPIRY_HEIGHT,
    )
    return (anchor_deliberation, anchor_decree, delegation)


def _certificate(
    chain_id: bytes, keys: dict[str, crypto.PrivateKey], block: Block, signers: list[str]
) -> CommitCertificate:
    domain = crypto.Domain(domains.COMMIT, chain_id)
    payload = vote_payload(block.height, CERTIFICATE_VIEW, block.block_hash)
    return CommitCertificate(
        height=block.height,
        view=CERTIFICATE_VIEW,
        block_hash=block.block_hash,
        signatures=tuple(
            (member_id, crypto.sign(keys[member_id], domain, payload)) for member_id in signers
        ),
    )


# --- vectors ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Vector:
    """One labelled value of the document.

    ``kind`` is ``hex`` (compared ignoring white space), ``json`` or ``text`` (compared line by
    line, trailing spaces ignored).
    """

    name: str
    kind: str
    value: str
    caption: str

    def block(self) -> str:
        """The Markdown of this vector: caption, marker and fenced block."""
        body = wrap_hex(self.value) if self.kind == "hex" else self.value
        return f"{self.caption}\n\n<!-- vector: {self.name} -->\n```{self.kind}\n{body}\n```\n"


def wrap_hex(value: str) -> str:
    """Hex in lines of :data:`HEX_CHARACTERS_PER_LINE` characters ("" for no bytes)."""
    if not value:
        return "(empty)"
    return "\n".join(textwrap.wrap(value, HEX_CHARACTERS_PER_LINE))


def _hex(name: str, data: bytes, caption: str) -> Vector:
    return Vector(name, "hex", data.hex(), caption)


def _text(name: str, lines: list[str], caption: str) -> Vector:
    return Vector(name, "text", "\n".join(lines), caption)


def _spaced(data: bytes) -> str:
    """Hex with a space between bytes, for annotated tables."""
    return data.hex(" ")


@dataclass(frozen=True, slots=True)
class Section:
    """A subsection of the worked examples: a title, an introduction, then items (vectors or
    raw Markdown)."""

    title: str
    introduction: str
    items: tuple[Vector | str, ...]


# The example map of the encoding section, piece by piece (checked to concatenate to its
# canonical encoding).
EXAMPLE_MAP: dict[Any, Any] = {"b": -1, "aa": 300, 1: "é", b"k": [True, None, b"\x00\xff"]}
_EXAMPLE_MAP_PIECES: tuple[tuple[bytes, str], ...] = (
    (b"\x84", "fixmap header, 4 entries"),
    (encoding.pack(1), "key `1`: positive fixint (the smallest key encoding sorts first)"),
    (encoding.pack("é"), 'value `"é"`: fixstr of 2 bytes (UTF-8 of U+00E9)'),
    (encoding.pack("b"), 'key `"b"`: fixstr of 1 byte'),
    (encoding.pack(-1), "value `-1`: negative fixint"),
    (encoding.pack("aa"), 'key `"aa"`: fixstr of 2 bytes (after `"b"`: its header `a2` > `a1`)'),
    (encoding.pack(300), "value `300`: uint16, big-endian"),
    (encoding.pack(b"k"), 'key `b"k"`: bin8 of 1 byte (header `c4` sorts after every fixstr)'),
    (b"\x93", "value: fixarray header, 3 elements"),
    (encoding.pack(True), "`true`"),
    (encoding.pack(None), "`nil`"),
    (encoding.pack(b"\x00\xff"), "bin8 of 2 bytes"),
)

_SHORTEST_FORMS: tuple[tuple[str, Any], ...] = (
    ("`0`", 0),
    ("`127`", 127),
    ("`128`", 128),
    ("`255`", 255),
    ("`256`", 256),
    ("`65535`", 65535),
    ("`65536`", 65536),
    ("`2**32 - 1`", 2**32 - 1),
    ("`2**32`", 2**32),
    ("`2**64 - 1` (largest)", 2**64 - 1),
    ("`-1`", -1),
    ("`-32`", -32),
    ("`-33`", -33),
    ("`-128`", -128),
    ("`-129`", -129),
    ("`-32768`", -32768),
    ("`-32769`", -32769),
    ("`-2**31`", -(2**31)),
    ("`-2**31 - 1`", -(2**31) - 1),
    ("`-2**63` (smallest)", -(2**63)),
    ("`false`, `true`, `nil`", [False, True, None]),
    ('`""` (empty text)', ""),
    ("text of 31 bytes", "a" * 31),
    ("text of 32 bytes", "a" * 32),
    ("text of 256 bytes", "a" * 256),
    ("empty bytes", b""),
    ("bytes of 256 bytes", bytes(256)),
    ("array of 15 elements `0`", [0] * 15),
    ("array of 16 elements `0`", [0] * 16),
    ("empty map", {}),
    ("map of 16 entries `i: 0`", {index: 0 for index in range(16)}),
)
_SHORTEST_FORM_BYTES_SHOWN = 6

_REJECTED: tuple[tuple[str, str], ...] = (
    ("cc05", "`5` as uint8: not the shortest form"),
    ("d0ff", "`-1` as int8: not the shortest form"),
    ("d10005", "`5` in a signed family: non-negative integers use the unsigned families"),
    ("cf0000000000000001", "`1` as uint64"),
    ("d90161", '`"a"` as str8'),
    ("c5000161", '`b"a"` as bin16'),
    ("dc000101", "`[1]` as array16"),
    ("82a16201a16102", '`{"b": 1, "a": 2}`: keys not sorted'),
    ("82a16101a16102", '`{"a": 1, "a": 2}`: duplicate key'),
    ("81c301", "`{true: 1}`: a boolean key"),
    ("81c001", "`{nil: 1}`: a nil key"),
    ("81910101", "`{[1]: 1}`: an array key"),
    ("cb3ff0000000000000", "`1.0` as float64"),
    ("ca3f800000", "`1.0` as float32"),
    ("d40100", "fixext1: extension types are not allowed"),
    ("a1ff", "text that is not UTF-8"),
    ("a3eda080", "text holding an encoded surrogate (U+D800)"),
    ("0101", "two documents: trailing bytes"),
    ("9201", "truncated array"),
    ("c1", "the never-used type byte"),
)


def _encoding_section() -> Section:
    canonical = encoding.pack(EXAMPLE_MAP)
    assert b"".join(piece for piece, _ in _EXAMPLE_MAP_PIECES) == canonical
    assert encoding.unpack(canonical) == EXAMPLE_MAP
    annotated = ["| bytes | meaning |", "|---|---|"]
    annotated += [f"| `{_spaced(piece)}` | {meaning} |" for piece, meaning in _EXAMPLE_MAP_PIECES]
    shortest = ["| value | canonical encoding |", "|---|---|"]
    for label, value in _SHORTEST_FORMS:
        data = (
            b"".join(encoding.pack(item) for item in value)
            if isinstance(value, list) and label.startswith("`false`")
            else encoding.pack(value)
        )
        shown = _spaced(data[:_SHORTEST_FORM_BYTES_SHOWN])
        if len(data) > _SHORTEST_FORM_BYTES_SHOWN:
            shown += f" … ({len(data)} bytes)"
        shortest.append(f"| {label} | `{shown}` |")
    rejected = ["| input (hex) | why a decoder must reject it | error class |", "|---|---|---|"]
    for data_hex, why in _REJECTED:
        rejected.append(f"| `{data_hex}` | {why} | {_rejection_class(bytes.fromhex(data_hex))} |")
    return Section(
        "Canonical encoding",
        'The map `{"b": -1, "aa": 300, 1: "é", b"k": [true, nil, b"\\x00\\xff"]}` '
        '(Python notation: `b"…"` is a byte string) in canonical form:',
        (
            _hex("encoding.example-map", canonical, "Canonical bytes:"),
            "Byte by byte:\n\n" + "\n".join(annotated) + "\n",
            "Shortest forms at the boundaries of each family (long values shown by their first "
            "bytes):\n\n" + "\n".join(shortest) + "\n",
            "Inputs that a decoder must reject (the last column names the `ledger.encoding` "
            "exception; all are `EncodingError`):\n\n" + "\n".join(rejected) + "\n",
        ),
    )


def _rejection_class(data: bytes) -> str:
    try:
        encoding.unpack(data)
    except encoding.EncodingError as error:
        return type(error).__name__
    raise AssertionError(f"{data.hex()} decodes, but the document lists it as rejected")


def _keys_section(chosen: Example) -> Section:
    lines: list[str] = []
    for index, (member_id, _, _) in enumerate(MEMBER_SPECS):
        lines += _key_lines(member_id, member_seed(index), chosen.keys[member_id])
    lines += _key_lines("application (not a member)", APPLICATION_SEED, chosen.application_key)
    return Section(
        "Keys",
        "Each key is `key_from_seed(seed)`: the 32-byte seed is the RFC 8032 private key. The "
        "members' seeds are 32 bytes of `0x01`, `0x02`, `0x03`, `0x04`; the application key's "
        "seed is 32 zero bytes.",
        (_text("keys", lines, "Seeds, raw public keys and their text forms:"),),
    )


def _key_lines(label: str, seed: bytes, key: crypto.PrivateKey) -> list[str]:
    public_key = crypto.public_key_bytes(key)
    return [
        label,
        f"  seed        {seed.hex()}",
        f"  public key  {public_key.hex()}",
        f"  text form   {crypto.public_key_to_text(public_key)}",
    ]


def _genesis_section(chosen: Example) -> Section:
    genesis = chosen.genesis
    members_bytes = encoding.pack([member.to_canonical() for member in genesis.members])
    assert members_hash(genesis.members) == hashlib.sha256(members_bytes).digest()
    return Section(
        "Genesis and chain_id",
        f"Four members, default consensus parameters, `created_at_ms` = {CREATED_AT_MS} "
        "(2026-01-01T00:00:00Z), contracts `membership` 1.0 and `deeds` 1.0.",
        (
            Vector(
                "genesis.json",
                "json",
                genesis.model_dump_json(indent=2),
                "The genesis file (JSON form):",
            ),
            _hex("genesis.canonical", genesis.to_bytes(), "Its canonical bytes:"),
            _hex("genesis.chain-id", genesis.chain_id, "`chain_id` = SHA-256 of those bytes:"),
            _hex(
                "members.canonical",
                members_bytes,
                "The canonical array of the member maps, in genesis order (also the value of the "
                "state key `membership/members` at height 0):",
            ),
            _hex(
                "members.hash",
                genesis.members_hash,
                "`members_hash` = SHA-256 of that array (the `members_hash` of block 1):",
            ),
        ),
    )


def _transaction_section(chosen: Example) -> Section:
    transaction = chosen.transactions[0]
    domain = crypto.Domain(domains.TRANSACTION, transaction.chain_id)
    assert transaction.signature_is_valid()
    return Section(
        "Transaction",
        "`metropole` anchors a deliberation with its node key: contract `deeds`, action "
        f"`anchor`, nonce {transaction.nonce}, `expiry_height` {transaction.expiry_height}. "
        "The `digest` argument is the SHA-256 of the bytes `example document: 2026-DEL-042`.",
        (
            _hex(
                "transaction.body",
                encoding.pack(transaction.body()),
                "The canonical body (every field but `signature`):",
            ),
            _hex("transaction.tx-id", transaction.tx_id, "`tx_id` = SHA-256 of the body:"),
            _hex(
                "transaction.signed-message",
                domain.message(transaction.tx_id),
                "The message Ed25519 signs: `0b` (length of the tag) `sceau/tx/v1` `chain_id` "
                "`tx_id`:",
            ),
            _hex("transaction.signature", transaction.signature, "The signature:"),
            _hex(
                "transaction.canonical",
                transaction.encoded,
                "The whole signed transaction (leaf 0 of block 1's transaction tree):",
            ),
        ),
    )


def _block_section(chosen: Example) -> Section:
    block, header = chosen.block, chosen.block.header
    others = chosen.transactions[1:]
    listing = [
        f"{position}  {transaction.tx_id.hex()}  {transaction.contract}.{transaction.action}"
        for position, transaction in enumerate(chosen.transactions)
    ]
    return Section(
        "Block 1",
        "Block 1 holds three transactions, executed by the engine on the genesis state: the "
        "anchor above; `commune-a` anchoring a decree (nonce 1); `metropole` delegating the role "
        "`deeds.issue` to the application key without expiry (contract `membership`, action "
        f"`delegate`, nonce 2). Proposed by `metropole` in view 0 at `timestamp_ms` "
        f"{BLOCK_TIMESTAMP_MS}.",
        (
            _hex("transaction-1.canonical", others[0].encoded, "Transaction 1 (the decree):"),
            _hex(
                "transaction-2.canonical",
                others[1].encoded,
                "Transaction 2 (the delegation):",
            ),
            _text("block.tx-ids", listing, "Positions and `tx_id`s:"),
            _hex("header.canonical", header.to_bytes(), "The header's canonical bytes:"),
            _hex("header.block-hash", block.block_hash, "`block_hash` = SHA-256 of the header:"),
            _hex(
                "block.canonical",
                block.to_bytes(),
                "The whole block (header and transactions), as stored and sent:",
            ),
        ),
    )


def _merkle_section(chosen: Example) -> Section:
    leaves = [transaction.encoded for transaction in chosen.transactions]
    leaf_hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    left = merkle.node_hash(leaf_hashes[0], leaf_hashes[1])
    root = merkle.root(leaves)
    assert root == merkle.node_hash(left, leaf_hashes[2]) == chosen.block.header.tx_root
    proof_2 = merkle.inclusion_proof(leaves, 2)
    proof_0 = merkle.inclusion_proof(leaves, 0)
    consistency = merkle.consistency_proof(leaves, 2)
    assert merkle.verify_inclusion(leaves[2], 2, 3, proof_2, root)
    assert merkle.verify_inclusion(leaves[0], 0, 3, proof_0, root)
    assert merkle.verify_consistency(2, 3, left, root, consistency)
    return Section(
        "Transaction tree",
        "The tree of block 1 over its three transactions (size 3, split at k = 2): "
        "`root = node(node(leaf0, leaf1), leaf2)`.",
        (
            _text(
                "merkle.leaf-hashes",
                [f"{index}  {value.hex()}" for index, value in enumerate(leaf_hashes)],
                "Leaf hashes, SHA-256(`00` || transaction bytes):",
            ),
            _hex(
                "merkle.node-0-1",
                left,
                "MTH(D[0:2]) = SHA-256(`01` || leaf hash 0 || leaf hash 1):",
            ),
            _hex(
                "merkle.root",
                root,
                "MTH(D[0:3]) = SHA-256(`01` || MTH(D[0:2]) || leaf hash 2), the header's "
                "`tx_root`:",
            ),
            _text(
                "merkle.inclusion-0",
                [value.hex() for value in proof_0],
                "Inclusion proof (audit path) of leaf 0 in the tree of size 3, leaf to root:",
            ),
            _text(
                "merkle.inclusion-2",
                [value.hex() for value in proof_2],
                "Inclusion proof of leaf 2 in the tree of size 3:",
            ),
            _text(
                "merkle.consistency-2-3",
                [value.hex() for value in consistency],
                "Consistency proof from size 2 (root MTH(D[0:2])) to size 3:",
            ),
        ),
    )


def _log_section(chosen: Example) -> Section:
    """The log of every act (format 2 headers) over three transactions in two blocks."""
    leaves = [transaction.encoded for transaction in chosen.transactions]
    leaf_hashes = [merkle.leaf_hash(leaf) for leaf in leaves]
    after_1 = tlog.EMPTY_FRONTIER.extended(leaf_hashes[:2])
    after_2 = after_1.extended(leaf_hashes[2:])
    assert after_1.root == merkle.root(leaves[:2]) == merkle.node_hash(*leaf_hashes[:2])
    assert after_2.root == merkle.root(leaves) == merkle.node_hash(after_1.root, leaf_hashes[2])
    block_2_tx_root = merkle.root(leaves[2:])
    assert block_2_tx_root == leaf_hashes[2] != after_2.root
    return Section(
        "The log of every act",
        "A log of three transactions: the three of block 1 above, as a chain in header format 2 "
        "would log them had it committed the first two in block 1 and the third in block 2. The "
        "leaves are the transactions' canonical bytes in chain order; the hashing is the "
        "transaction tree's ([section 6.1](#61-the-log-of-every-act)).",
        (
            _text(
                "log.leaf-hashes",
                [f"{index}  {value.hex()}" for index, value in enumerate(leaf_hashes)],
                "Leaf hashes, SHA-256(`00` || transaction bytes), log index first:",
            ),
            _text(
                "log.block-1",
                [f"log_size {after_1.size}", f"log_root {after_1.root.hex()}"],
                "The log fields of block 1 (two transactions): MTH(D[0:2]) = "
                "SHA-256(`01` || leaf hash 0 || leaf hash 1):",
            ),
            _text(
                "log.block-2",
                [
                    f"log_size {after_2.size}",
                    f"log_root {after_2.root.hex()}",
                    f"tx_root  {block_2_tx_root.hex()}",
                ],
                "The log fields of block 2 (one transaction): MTH(D[0:3]) = SHA-256(`01` || "
                "MTH(D[0:2]) || leaf hash 2) covers the whole history, while the block's own "
                "`tx_root` is leaf hash 2 alone:",
            ),
        ),
    )


def _certificate_section(chosen: Example) -> Section:
    certificate, genesis = chosen.certificate, chosen.genesis
    entries = certificate.signatures
    payload = vote_payload(certificate.height, certificate.view, certificate.block_hash)
    domain = crypto.Domain(domains.COMMIT, genesis.chain_id)
    return Section(
        "Commit certificate",
        f"n = 4 members, f = 1, quorum q = {quorum_size(4)}: `commune-a`, `commune-b` and "
        f"`metropole` sign the commit vote of block 1 in view {certificate.view}; entries are "
        "sorted by member id.",
        (
            _hex(
                "certificate.vote-payload",
                payload,
                "The vote payload, canonical `[height, view, block_hash]`:",
            ),
            _hex(
                "certificate.signed-message",
                domain.message(payload),
                "The message each member signs: `0f` `sceau/commit/v1` `chain_id` payload:",
            ),
            _text(
                "certificate.signatures",
                [f"{member_id}  {signature.hex()}" for member_id, signature in entries],
                "The signatures:",
            ),
            _hex("certificate.canonical", certificate.to_bytes(), "The certificate's bytes:"),
        ),
    )


def _state_section(chosen: Example) -> Section:
    entries: list[str] = []
    for key in sorted(chosen.genesis_state, key=state.key_path):
        value = chosen.genesis_state[key]
        path = state.key_path(key)
        entries += [
            f"key         {key.decode()}  (hex {key.hex()})",
            f"key_path    {path.hex()}",
            f"value_hash  {state.value_hash(value).hex()}",
            f"leaf hash   {state.leaf_hash(path, state.value_hash(value)).hex()}",
        ]
    tree = chosen.genesis_tree
    paths = sorted(state.key_path(key) for key in chosen.genesis_state)
    split_depth = _common_prefix_bits(paths[0], paths[1])
    parameters_key = b"membership/parameters"
    signer_key = b"membership/signer/" + crypto.public_key_bytes(chosen.application_key)
    parameters_proof = _proof(tree, tree.state_root, parameters_key)
    absent_signer_proof = _proof(tree, tree.state_root, signer_key)
    after, root = chosen.state_after_block, chosen.block.header.state_root
    signer_value = after.state_get(signer_key)
    assert signer_value is not None
    signer_proof = _proof(after, root, signer_key)
    act_key = DEEDS_PREFIX + deeds.act_key("metropole", "2026-DEL-042")
    act_value = after.state_get(act_key)
    assert act_value is not None
    act_proof = _proof(after, root, act_key)
    absent_act_key, absent_act_proof = _absent_act_at_empty_position(after, root)
    return Section(
        "State tree",
        "The state at height 0 (the genesis state) has exactly two entries, written by the "
        "membership contract: `membership/members` (its value is the member array shown above) "
        f"and `membership/parameters`. {_describe_two_leaf_tree(split_depth)}",
        (
            _text("state.genesis-entries", entries, "The two entries, in key path order:"),
            _hex(
                "state.parameters-value",
                chosen.genesis_state[parameters_key],
                "The value of `membership/parameters` (the canonical `ConsensusParameters` map):",
            ),
            _hex("state.genesis-root", tree.state_root, "The state root at height 0:"),
            _hex(
                "state.proof-parameters",
                encoding.pack(parameters_proof.to_canonical()),
                "Membership proof of `membership/parameters` against that root (canonical proof "
                f"map; {_describe_proof(parameters_proof)}):",
            ),
            _hex(
                "state.proof-signer-absent",
                encoding.pack(absent_signer_proof.to_canonical()),
                "Non-membership proof of `membership/signer/` || the application key (32 raw "
                f"bytes) against the same root ({_describe_proof(absent_signer_proof)}):",
            ),
            "After block 1, against block 1's `state_root`:",
            _hex(
                "state.signer-value",
                signer_value,
                "The application key now holds a delegation: the value of `membership/signer/` "
                '|| key is `{"metropole": {"expiry_height": nil, "roles": ["deeds.issue"]}}`:',
            ),
            _hex(
                "state.proof-signer",
                encoding.pack(signer_proof.to_canonical()),
                f"Its membership proof ({_describe_proof(signer_proof)}):",
            ),
            _hex(
                "state.act-key",
                act_key,
                "The state key of the act `2026-DEL-042` of `metropole`: `deeds/act/` || "
                'canonical `"metropole"` (`a9` + 9 bytes) || `2026-DEL-042`:',
            ),
            _hex(
                "state.act-value",
                act_value,
                "Its value, the act record written by the deeds contract (docs/contracts.md):",
            ),
            _hex(
                "state.proof-act",
                encoding.pack(act_proof.to_canonical()),
                f"Its membership proof ({_describe_proof(act_proof)}):",
            ),
            _hex(
                "state.proof-act-absent",
                encoding.pack(absent_act_proof.to_canonical()),
                f"Non-membership proof of the act `{absent_act_key}` of `metropole`, never "
                f"anchored ({_describe_proof(absent_act_proof)}):",
            ),
        ),
    )


DEEDS_PREFIX = b"deeds/"
_ABSENT_REFERENCES_TRIED_MAX = 1000


def _proof(tree: MemoryState, root: bytes, key: bytes) -> state.StateProof:
    """The proof of ``key`` in ``tree`` (whose root is ``root``), checked before it is shown."""
    assert tree.state_root == root
    proof = tree.state_prove(key)
    assert state.verify_state_proof(root, key, tree.state_get(key), proof)
    return proof


def _absent_act_at_empty_position(tree: MemoryState, root: bytes) -> tuple[str, state.StateProof]:
    """The first reference from ``2026-DEL-043`` on whose non-membership proof ends at an empty
    position (the other kind of non-membership proof than the one at height 0)."""
    for number in range(43, 43 + _ABSENT_REFERENCES_TRIED_MAX):
        reference = f"2026-DEL-{number:03d}"
        key = DEEDS_PREFIX + deeds.act_key("metropole", reference)
        proof = _proof(tree, root, key)
        if tree.state_get(key) is None and proof.other_leaf is None:
            return reference, proof
    raise AssertionError("no absent act key whose walk ends at an empty position")


def _common_prefix_bits(left: bytes, right: bytes) -> int:
    difference = int.from_bytes(left) ^ int.from_bytes(right)
    return 256 - difference.bit_length()


def _describe_two_leaf_tree(split_depth: int) -> str:
    if split_depth == 0:
        return (
            "Their key paths differ in their first bit, so the root is the node "
            "`node(leaf of membership/members, leaf of membership/parameters)`."
        )
    return (
        f"Their key paths share their first {split_depth} bits, so the root is a chain of "
        f"{split_depth} internal nodes with an empty sibling above the node of the two leaves."
    )


def _describe_proof(proof: state.StateProof) -> str:
    count = len(proof.siblings)
    siblings = f"{count} sibling" + ("" if count == 1 else "s")
    if proof.other_leaf is not None:
        return f"{siblings}; the walk ends at another key's leaf, named in `other_key_path`"
    return f"{siblings}; `other_key_path` and `other_value_hash` are nil"


def _messages_section(chosen: Example) -> Section:
    view_change = chosen.view_change
    domain = crypto.Domain(domains.VIEW_CHANGE, chosen.genesis.chain_id)
    return Section(
        "Consensus messages",
        "`commune-a`'s Prepare vote for block 1 in view 0, and `commune-b`'s ViewChange to view "
        f"{VIEW_CHANGE_VIEW} at height 1 carrying the prepared certificate of block 1 (the "
        "Prepare signatures of `commune-a`, `commune-b` and `metropole`), without "
        "`prepared_block`.",
        (
            _hex(
                "messages.prepare",
                chosen.prepare.to_bytes(),
                "The Prepare message (signed payload: the vote payload above, tag "
                "`sceau/prepare/v1`):",
            ),
            _hex(
                "messages.view-change-body",
                view_change.body_bytes(),
                "The ViewChange's signed body (its map without `signature` and `prepared_block`):",
            ),
            _hex(
                "messages.view-change-signed-message",
                domain.message(view_change.body_bytes()),
                "The message signed: `14` `sceau/view-change/v1` `chain_id` body:",
            ),
            _hex("messages.view-change-signature", view_change.signature, "The signature:"),
            _hex(
                "messages.view-change",
                view_change.to_bytes(),
                "The whole ViewChange message as sent:",
            ),
        ),
    )


_SECTION_BUILDERS: tuple[Callable[[Example], Section], ...] = (
    _keys_section,
    _genesis_section,
    _transaction_section,
    _block_section,
    _merkle_section,
    _certificate_section,
    _state_section,
    _messages_section,
    _log_section,
)


@cache
def sections() -> tuple[Section, ...]:
    """The subsections of the worked examples, in document order."""
    chosen = example()
    return (_encoding_section(), *(build(chosen) for build in _SECTION_BUILDERS))


def vectors() -> dict[str, Vector]:
    """Every labelled vector, by name, in document order."""
    found: dict[str, Vector] = {}
    for section in sections():
        for item in section.items:
            if isinstance(item, Vector):
                assert item.name not in found, f"two vectors named {item.name}"
                found[item.name] = item
    return found


SECTION_NUMBER = 11


def render() -> str:
    """The generated part of the "Worked examples" section, markers included."""
    parts = [
        BEGIN_MARKER,
        "",
        "<!-- Do not edit by hand: run `python docs/vectors.py --write`. -->",
        "",
    ]
    for number, section in enumerate(sections(), start=1):
        parts += [f"### {SECTION_NUMBER}.{number}. {section.title}", "", section.introduction, ""]
        for item in section.items:
            parts.append(item.block() if isinstance(item, Vector) else item.rstrip("\n") + "\n")
    parts.append(END_MARKER)
    return "\n".join(parts) + "\n"


def replace_generated(document: str, generated: str) -> str:
    """``document`` with the text between the markers (included) replaced by ``generated``."""
    start = document.index(BEGIN_MARKER)
    end = document.index(END_MARKER, start) + len(END_MARKER)
    if document[end : end + 1] == "\n":
        end += 1
    return document[:start] + generated + document[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="update docs/format.md in place")
    group.add_argument("--check", action="store_true", help="exit 1 if docs/format.md is stale")
    arguments = parser.parse_args(argv)
    generated = render()
    if not (arguments.write or arguments.check):
        sys.stdout.write(generated)
        return 0
    document = FORMAT_DOCUMENT.read_text(encoding="utf-8")
    updated = replace_generated(document, generated)
    if arguments.check:
        if updated != document:
            print(f"{FORMAT_DOCUMENT} is stale: run python docs/vectors.py --write")
            return 1
        return 0
    if updated != document:
        FORMAT_DOCUMENT.write_text(updated, encoding="utf-8")
        print(f"updated {FORMAT_DOCUMENT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
