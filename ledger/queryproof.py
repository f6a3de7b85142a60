"""Query proofs: a contract's answer with the certified state values it was computed from.

Theory of operation
-------------------
``GET /v1/query/{contract}/{path}?proof=true`` answers a contract's query together with a
:class:`QueryProof`: the state keys the query read with ``get`` (at most
:data:`QUERY_READS_PROVEN_MAX`), each with its value (or ``None``: absent) and a proof against
the ``state_root`` of the tip's certified header, that header's commit certificate, and the
member-set changes since the genesis (as a receipt carries them, :mod:`ledger.receipt`). A
client holding only the genesis checks it with :func:`verify_query_proof`:

1. the member sets are followed from the genesis, change by change, to the header's height
   (each change certified by the set before it, its member list proven in its state);
2. the header is certified by a quorum of the member set in force at its height, and names
   that set (``members_hash``);
3. each read's value (or absence) is proven under the header's ``state_root``, at the key
   ``<contract>/<key>`` (the contract's namespace, docs/format.md);
4. optionally, given the contract's code (any object with ``query(path, view)``), the query is
   run again over the proven reads alone, and its canonical encoding must be the answer's.
   This needs ``complete``: every read the node's query made is in the proof (no scan with
   ``items``, whose result a state tree ordered by key hash cannot prove, and no more than
   :data:`QUERY_READS_PROVEN_MAX` keys).

Without step 4, the proof shows what the state holds; the answer itself is then the node's
word, computed from those values by the contract's published code.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Protocol

from pydantic import Field, StrictBool, StrictStr

from ledger import encoding
from ledger.model import (
    BlockHeader,
    CanonicalModel,
    CommitCertificate,
    Genesis,
    Hash32,
    Name,
    hex_bytes,
)
from ledger.namespace import StateNamespace
from ledger.receipt import (
    MEMBER_SET_CHANGES_MAX,
    MemberSetChange,
    ReceiptError,
    StateProofDocument,
    certified_members,
    member_set_change,
)
from ledger.state import verify_state_proof

__all__ = [
    "QUERY_ANSWER_BYTES_MAX",
    "QUERY_PATH_CHARACTERS_MAX",
    "QUERY_READS_PROVEN_MAX",
    "ProvenRead",
    "QueryProof",
    "QueryProofError",
    "VerifiedQuery",
    "build_query_proof",
    "reads_are_proven",
    "verify_query_proof",
]

QUERY_PATH_CHARACTERS_MAX = 1024
"""The longest contract query path, its query string included."""
QUERY_READS_PROVEN_MAX = 16
"""State keys whose reads one proof carries; a query that reads more is answered with the
first ones proven and ``complete`` false."""
QUERY_ANSWER_BYTES_MAX = 4 * 1024 * 1024
"""The largest answer of a contract's query, canonically encoded: the node refuses to send a
larger one (it builds and encodes answers on its event loop, so they stay short)."""
STATE_KEY_BYTES_MAX = 1024
STATE_VALUE_BYTES_MAX = 256 * 1024
_ANSWER_LIMITS = encoding.DecodeLimits(total_bytes_max=QUERY_ANSWER_BYTES_MAX)


class QueryProofError(ReceiptError):
    """A query proof that does not prove what it claims; ``step`` names the failed check."""


class ProvenRead(CanonicalModel):
    """One ``get`` of the query: the contract's own key, its value (None: absent), the proof."""

    key: hex_bytes(STATE_KEY_BYTES_MAX)
    value: hex_bytes(STATE_VALUE_BYTES_MAX) | None
    proof: StateProofDocument


class QueryProof(CanonicalModel):
    """A contract's answer to a query, with the certified state values it read."""

    format: Literal["sceau-query-proof/v1"] = "sceau-query-proof/v1"
    chain_id: Hash32
    contract: Name
    path: Annotated[StrictStr, Field(min_length=1, max_length=QUERY_PATH_CHARACTERS_MAX)]
    answer: hex_bytes(QUERY_ANSWER_BYTES_MAX)
    """The canonical encoding of the contract's answer."""
    complete: StrictBool
    """True when ``reads`` holds every read the query made (see the module doc)."""
    reads: Annotated[tuple[ProvenRead, ...], Field(max_length=QUERY_READS_PROVEN_MAX)]
    header: BlockHeader
    certificate: CommitCertificate
    member_changes: Annotated[tuple[MemberSetChange, ...], Field(max_length=MEMBER_SET_CHANGES_MAX)]


@dataclass(frozen=True, slots=True)
class VerifiedQuery:
    """What a query proof proved."""

    contract: str
    path: str
    height: int
    block_hash: bytes
    answer: Any
    """The decoded answer (canonical form: bytes as bytes)."""
    reads: dict[bytes, bytes | None]
    """The proven values, by the contract's own key."""
    answer_recomputed: bool
    """True if the answer was recomputed from the proven reads with the contract's code."""


class QueryingContract(Protocol):
    """What :func:`verify_query_proof` needs of a contract to recompute an answer."""

    def query(self, path: str, state: Any) -> Any: ...


def build_query_proof(
    store: Any,
    *,
    contract: str,
    path: str,
    answer: bytes,
    reads: Sequence[tuple[bytes, bytes | None]],
    complete: bool,
) -> QueryProof:
    """The proof of ``reads`` (the contract's own keys and the values read) at the tip of a
    :class:`~ledger.store.ChainStore` whose height is at least 1.

    ``answer`` is the canonical encoding of the answer. The proofs are the store's; a value
    read from a damaged value index would not verify: the caller checks
    (:func:`reads_are_proven`) before serving the proof.
    """
    height = store.height
    assert height >= 1, "a query proof needs a certified header"
    header = store.block(height).header
    namespace = StateNamespace(contract)
    proven = []
    for key, value in reads:
        proof = store.state_prove(namespace.key(key), header.state_root)
        proven.append(ProvenRead(key=key, value=value, proof=StateProofDocument.of(proof)))
    return QueryProof(
        chain_id=store.chain_id,
        contract=contract,
        path=path,
        answer=answer,
        complete=complete,
        reads=tuple(proven),
        header=header,
        certificate=store.certificate(height),
        member_changes=tuple(
            member_set_change(store, change - 1)
            for change in store.member_set_changes(height)
            if change >= 2
        ),
    )


def reads_are_proven(proof: QueryProof) -> bool:
    """True if every read of ``proof`` verifies under its header's state root."""
    namespace = StateNamespace(proof.contract)
    return all(
        verify_state_proof(
            proof.header.state_root, namespace.key(read.key), read.value, read.proof.proof()
        )
        for read in proof.reads
    )


class _ProvenView:
    """A read-only view that answers only the proven reads (a query re-run offline)."""

    def __init__(self, reads: dict[bytes, bytes | None]) -> None:
        self._reads = reads

    def get(self, key: bytes) -> bytes | None:
        if key not in self._reads:
            raise QueryProofError("answer", f"the query reads key {key[:64]!r}, not proven")
        return self._reads[key]

    def items(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        raise QueryProofError("answer", "the query scans the state: a scan has no proof")


def verify_query_proof(
    proof: QueryProof, genesis: Genesis, *, contract: QueryingContract | None = None
) -> VerifiedQuery:
    """Check ``proof`` from ``genesis`` alone (see the module doc); raises
    :class:`QueryProofError` (a :class:`~ledger.receipt.ReceiptError`) naming the step.

    With ``contract`` (the contract's code), also recompute the answer from the proven reads;
    that needs a ``complete`` proof.
    """
    chain_id = genesis.chain_id
    if proof.chain_id != chain_id or proof.header.chain_id != chain_id:
        raise QueryProofError("chain", "the proof is for another consortium than this genesis")
    height = proof.header.height
    try:
        certified_members(genesis, proof.member_changes, proof.header, proof.certificate)
    except QueryProofError:
        raise
    except ReceiptError as error:
        raise QueryProofError(error.step, str(error).partition(": ")[2]) from None
    namespace = StateNamespace(proof.contract)
    reads: dict[bytes, bytes | None] = {}
    for read in proof.reads:
        if read.key in reads:
            raise QueryProofError("reads", f"the key {read.key.hex()} appears twice")
        if not verify_state_proof(
            proof.header.state_root, namespace.key(read.key), read.value, read.proof.proof()
        ):
            raise QueryProofError("reads", f"the value of key {read.key.hex()} is not proven")
        reads[read.key] = read.value
    try:
        answer = encoding.unpack(proof.answer, _ANSWER_LIMITS)
    except encoding.EncodingError as error:
        raise QueryProofError("answer", f"not canonical msgpack: {error}") from None
    if contract is not None:
        _recompute(proof, contract, reads)
    return VerifiedQuery(
        contract=proof.contract,
        path=proof.path,
        height=height,
        block_hash=proof.header.block_hash,
        answer=answer,
        reads=reads,
        answer_recomputed=contract is not None,
    )


def _recompute(
    proof: QueryProof, contract: QueryingContract, reads: dict[bytes, bytes | None]
) -> None:
    if not proof.complete:
        raise QueryProofError(
            "answer", "the proof is not complete (the query scanned, or read too many keys)"
        )
    try:
        recomputed = encoding.pack(contract.query(proof.path, _ProvenView(reads)))
    except QueryProofError:
        raise
    except Exception as error:  # the contract's own failure, on these values
        raise QueryProofError(
            "answer", f"the contract fails on the proven reads: {type(error).__name__}: {error}"
        ) from None
    if recomputed != proof.answer:
        raise QueryProofError("answer", "the contract answers otherwise from the proven reads")
