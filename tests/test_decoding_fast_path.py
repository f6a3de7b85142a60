"""The decoding fast path (ledger.model ``from_decoded``, consensus.messages
``message_from_decoded``, node.runtime.wire ``TransactionGossip.from_decoded``) against pydantic.

The fast path checks a freshly decoded document field by field and builds the model without
pydantic; whatever it does not accept goes to pydantic. So it must never accept what pydantic
refuses, and what it accepts must be the very model pydantic builds. Each test decodes the same
document both ways, from two independent copies, and compares the outcomes: the same model
(same fields, same bytes, same id) or the same error message. The documents are valid ones with
one field replaced, removed or added, for every field and a list of values on each side of
every rule (lengths, ranges, patterns, types, nesting, size).
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from strategies import blocks, headers, transactions

from consensus.messages import (
    BlockResponse,
    PrePrepare,
    message_from_decoded,
    message_from_document,
)
from ledger import encoding
from ledger.devchain import LocalConsortium
from ledger.model import (
    ARGUMENTS_DEPTH_MAX,
    U63_MAX,
    U64_MAX,
    Block,
    BlockHeader,
    ModelDecodeError,
    Transaction,
)
from node.runtime.wire import FrameError, TransactionGossip, decode_frame

CONSORTIUM = LocalConsortium.create(
    (("metropole", "Métropole"), ("ville-a", "Ville A"), ("ville-b", "Ville B"), ("port", "Port")),
    seed=b"fast path",
)


def nested(depth: int) -> Any:
    """A value whose containers nest ``depth`` levels."""
    value: Any = 0
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


TRICKY_VALUES: tuple[Any, ...] = (
    None,
    True,
    False,
    0,
    1,
    -1,
    U63_MAX,
    U63_MAX + 1,
    U64_MAX,
    -(2**63),
    b"",
    b"\x07" * 31,
    b"\x07" * 32,
    b"\x07" * 33,
    b"\x07" * 63,
    b"\x07" * 64,
    b"\x07" * 65,
    bytes(32),  # a small-order public key (y = 0)
    b"\x01" + bytes(31),  # the identity point, small order too
    b"\xff" * 32,  # y over the field prime
    "",
    "a",
    "A",
    "0",
    "a" * 32,
    "a" * 33,
    "a" * 48,
    "a" * 49,
    "abc\n",
    "a-",
    "-a",
    "a-b",
    "a_b",
    "é",
    "pre_prepare",
    "transactions",
    [],
    [1],
    {},
    {"a": 1},
    {b"a": 1},
    {1: 1},
    nested(ARGUMENTS_DEPTH_MAX - 1),
    nested(ARGUMENTS_DEPTH_MAX),
    nested(ARGUMENTS_DEPTH_MAX + 1),
    {"big": b"\x00" * 60_000, "bigger": b"\x00" * 6_000},
    {"big": b"\x00" * 65_000},
)


def decoded(document: Any) -> Any:
    """``document`` as the decoder returns it: canonical order, lists, fresh containers."""
    return encoding.unpack(encoding.pack(document))


def outcome(build: Any, document: Any) -> tuple[str, Any]:
    """What ``build`` makes of ``document``: the model's bytes and fields, or the error."""
    try:
        model = build(document)
    except (ModelDecodeError, FrameError, encoding.EncodingError) as error:
        return ("refused", f"{type(error).__name__}: {error}")
    return ("accepted", (type(model).__name__, model.to_bytes(), model, identities(model)))


def identities(model: Any) -> list[bytes]:
    """The ids of the transactions ``model`` is or carries (the fast path computes them)."""
    if isinstance(model, Transaction):
        return [model.tx_id, model.encoded]
    block = getattr(model, "block", model)
    if isinstance(block, Block):
        return [
            block.block_hash,
            *(t.tx_id for t in block.transactions),
            *block.transaction_leaves(),
        ]
    carried = getattr(model, "transactions", None) or ()
    return [transaction.tx_id for transaction in carried]


def assert_same(fast: Any, slow: Any, document: Any) -> None:
    """The fast path and pydantic give the same answer for ``document`` (decoded twice)."""
    expected = outcome(slow, decoded(document))
    got = outcome(fast, decoded(document))
    assert got == expected, document


def mutations(document: dict[str, Any]) -> list[dict[str, Any]]:
    """``document`` with each field removed, replaced by each tricky value, and one extra."""
    variants = [{**document, "extra": 1}]
    for name in document:
        variants.append({key: value for key, value in document.items() if key != name})
        variants.extend({**document, name: value} for value in TRICKY_VALUES)
    return variants


def transaction_document(**arguments: Any) -> dict[str, Any]:
    transaction = Transaction.create(
        CONSORTIUM.keys["metropole"],
        chain_id=CONSORTIUM.chain_id,
        contract="deeds",
        action="anchor",
        args=arguments or {"reference": "2026-DEL-1", "digest": b"\x01" * 32, "links": [1, [2]]},
        nonce=7,
        expiry_height=100,
    )
    return transaction.to_canonical()


def header_document(tx_count: int, **log: Any) -> dict[str, Any]:
    return {
        "chain_id": CONSORTIUM.chain_id,
        "height": 3,
        "prev_hash": b"\x02" * 32,
        "timestamp_ms": 1_790_000_000_000,
        "proposer": "metropole",
        "view": 1,
        "tx_count": tx_count,
        "tx_root": b"\x03" * 32,
        "state_root": b"\x04" * 32,
        "members_hash": CONSORTIUM.genesis.members_hash,
        **log,
    }


def block_document(transaction_count: int = 2, **log: Any) -> dict[str, Any]:
    return {
        "header": header_document(transaction_count, **log),
        "transactions": [transaction_document(n=n) for n in range(transaction_count)],
    }


# --- transactions, headers, blocks -----------------------------------------------------------


def test_every_transaction_mutation_gets_pydantics_answer() -> None:
    document = transaction_document()
    for variant in mutations(document):
        assert_same(Transaction.from_decoded, Transaction.from_canonical, variant)
    for value in TRICKY_VALUES:
        arguments = {**document["args"], "reference": value}
        assert_same(
            Transaction.from_decoded, Transaction.from_canonical, {**document, "args": arguments}
        )


def test_the_fast_path_builds_transactions_it_accepts() -> None:
    """Not a vacuous comparison: the valid documents do take the fast path."""
    from ledger.model import decoded_transaction

    document = decoded(transaction_document())
    transaction = decoded_transaction(document)
    assert transaction is not None
    assert transaction == Transaction.from_canonical(decoded(transaction_document()))
    assert transaction.encoded == encoding.pack(transaction_document())
    unsigned = {key: value for key, value in transaction_document().items() if key != "signature"}
    assert transaction.tx_id == hashlib.sha256(encoding.pack(unsigned)).digest()
    assert "tx_id" in transaction.__dict__  # computed by the fast path, not by the property
    assert transaction.signature_is_valid()


def test_transaction_from_bytes_keeps_its_bytes_and_refuses_as_before() -> None:
    data = encoding.pack(transaction_document())
    transaction = Transaction.from_bytes(data)
    assert transaction.encoded == data and transaction.to_bytes() == data
    assert Transaction.from_bytes(bytearray(data)).encoded == data
    with pytest.raises(encoding.MalformedError):
        Transaction.from_bytes("not bytes")  # type: ignore[arg-type]
    too_big = encoding.pack({**transaction_document(), "args": {"big": b"\x00" * 65_600}})
    with pytest.raises(ModelDecodeError, match="args"):
        Transaction.from_bytes(too_big)


def test_every_header_mutation_gets_pydantics_answer() -> None:
    for document in (header_document(2), header_document(2, log_size=9, log_root=b"\x05" * 32)):
        for variant in mutations(document):
            assert_same(BlockHeader.from_decoded, BlockHeader.from_canonical, variant)


def test_every_block_mutation_gets_pydantics_answer() -> None:
    document = block_document()
    for variant in mutations(document):
        assert_same(Block.from_decoded, Block.from_canonical, variant)
    for variant in mutations(document["header"]):
        assert_same(Block.from_decoded, Block.from_canonical, {**document, "header": variant})
    for variant in mutations(document["transactions"][1]):
        changed = {**document, "transactions": [document["transactions"][0], variant]}
        assert_same(Block.from_decoded, Block.from_canonical, changed)
    assert_same(Block.from_decoded, Block.from_canonical, block_document(0))
    assert_same(Block.from_decoded, Block.from_canonical, block_document(1, log_size=1))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(transaction=transactions(), header=headers(), block=blocks())
def test_drawn_models_decode_alike(
    transaction: Transaction, header: BlockHeader, block: Block
) -> None:
    for model in (transaction, header, block):
        data = model.to_bytes()
        decoded_model = type(model).from_bytes(data)
        assert decoded_model == model and decoded_model.to_bytes() == data
        assert outcome(type(model).from_decoded, encoding.unpack(data)) == outcome(
            type(model).from_canonical, encoding.unpack(data)
        )
    assert Block.from_bytes(block.to_bytes()).transaction_leaves() == block.transaction_leaves()


# --- peer messages ---------------------------------------------------------------------------


def pre_prepare_document() -> dict[str, Any]:
    return {
        "kind": "pre_prepare",
        "height": 3,
        "view": 1,
        "block": block_document(),
        "sender": "metropole",
        "signature": b"\x06" * 64,
    }


def test_every_proposal_mutation_gets_pydantics_answer() -> None:
    document = pre_prepare_document()
    for variant in mutations(document):
        assert_same(message_from_decoded, message_from_document, variant)
    for variant in mutations(document["block"]["header"]):
        block = {**document["block"], "header": variant}
        assert_same(message_from_decoded, message_from_document, {**document, "block": block})
    message = message_from_decoded(decoded(document))
    assert isinstance(message, PrePrepare)
    assert decode_frame(encoding.pack(document)) == message


def test_every_catch_up_mutation_gets_pydantics_answer() -> None:
    block = Block.from_canonical(block_document())
    certificate = CONSORTIUM.certify(block).to_canonical()
    document = {
        "kind": "block_response",
        "blocks": [[block.to_canonical(), certificate]],
        "sender": "ville-a",
    }
    for variant in mutations(document):
        assert_same(message_from_decoded, message_from_document, variant)
    for value in TRICKY_VALUES:
        for entry in ([value, certificate], [block.to_canonical(), value], [value]):
            variant = {**document, "blocks": [entry]}
            assert_same(message_from_decoded, message_from_document, variant)
    for name in certificate:
        for value in TRICKY_VALUES:
            entry = [block.to_canonical(), {**certificate, name: value}]
            assert_same(
                message_from_decoded, message_from_document, {**document, "blocks": [entry]}
            )
    many = {**document, "blocks": document["blocks"] * 65}
    assert_same(message_from_decoded, message_from_document, many)
    assert isinstance(message_from_decoded(decoded(document)), BlockResponse)


def test_every_gossip_mutation_gets_pydantics_answer() -> None:
    document = {
        "kind": "transactions",
        "transactions": [transaction_document(n=1), transaction_document(n=2)],
        "sender": "port",
    }
    for variant in mutations(document):
        assert_same(TransactionGossip.from_decoded, TransactionGossip.from_canonical, variant)
    for variant in mutations(document["transactions"][0]):
        changed = {**document, "transactions": [variant]}
        assert_same(TransactionGossip.from_decoded, TransactionGossip.from_canonical, changed)
    too_many = {**document, "transactions": document["transactions"] * 257}
    assert_same(TransactionGossip.from_decoded, TransactionGossip.from_canonical, too_many)
    gossip = decode_frame(encoding.pack(document))
    assert isinstance(gossip, TransactionGossip) and len(gossip.transactions) == 2


def test_the_fast_path_keeps_no_reference_to_what_the_caller_may_share() -> None:
    """from_canonical (the path for documents a caller holds) still copies the arguments."""
    arguments = {"list": [1, 2]}
    transaction = Transaction.from_canonical({**transaction_document(), "args": arguments})
    arguments["list"].append(3)
    assert transaction.args == {"list": [1, 2]}
    assert copy.deepcopy(transaction) == transaction


@pytest.mark.parametrize("name", ["chain_id", "nonce", "args"])
def test_a_refused_field_is_named_as_before(name: str) -> None:
    document = decoded({**transaction_document(), name: "x" * 70})
    with pytest.raises(ModelDecodeError, match=f"Transaction.{name}"):
        Transaction.from_decoded(document)


def test_remembered_values_stay_bounded_and_only_accepted_ones_are_remembered() -> None:
    from ledger import model

    for index in range(model._ACCEPTED_MAX + 10):
        assert model.is_member_id(f"m{index}")
    assert len(model._ACCEPTED_MEMBER_IDS) <= model._ACCEPTED_MAX
    for bad in ("M", "a-", "", "a" * 49, b"m1", ["m1"]):
        assert not model.is_member_id(bad)
        assert not model._is_name(bad)
    assert not model._is_signer(bytes(32)) and bytes(32) not in model._ACCEPTED_SIGNERS
    assert "M" not in model._ACCEPTED_MEMBER_IDS and "a-" not in model._ACCEPTED_NAMES
