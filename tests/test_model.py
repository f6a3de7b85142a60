"""Specification of the chain's data (ledger.model): byte forms, identities, signatures,
validation and commit certificates.

Identities are recomputed here from dictionaries written out field by field, with hashlib and
ledger.encoding alone, so that a renamed or reordered field cannot slip through unnoticed.
"""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    blocks,
    certificates,
    genesis_documents,
    headers,
    json_arguments,
    members,
    transactions,
)

from ledger import crypto, domains, encoding
from ledger.model import (
    Block,
    BlockHeader,
    CommitCertificate,
    ConsensusParameters,
    ContractRef,
    Genesis,
    InvalidCertificateError,
    Member,
    ModelDecodeError,
    Transaction,
    fault_tolerance,
    members_hash,
    quorum_size,
    vote_payload,
)


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- a small consortium, written out in full -----------------------------------------------------

MEMBER_IDS = ("metropole", "ville-a", "ville-b", "ville-c", "syndicat", "region", "port")
KEYS = {
    member_id: Ed25519PrivateKey.from_private_bytes(sha256(member_id.encode()))
    for member_id in MEMBER_IDS
}
MEMBERS = tuple(
    Member(
        id=member_id,
        name=f"Collectivité {member_id}",
        public_key=crypto.public_key_bytes(KEYS[member_id]),
        endpoint=f"{member_id}.example.org:7{index:03d}",
    )
    for index, member_id in enumerate(MEMBER_IDS)
)
OUTSIDER = Ed25519PrivateKey.from_private_bytes(sha256(b"outsider"))

GENESIS = Genesis(
    consortium="Consortium de test",
    created_at_ms=1_790_000_000_000,
    members=MEMBERS[:4],
    parameters=ConsensusParameters(view_timeout_ms=3_000),
    contracts=(ContractRef(name="deeds", version="1.0"),),
)
CHAIN_ID = GENESIS.chain_id
OTHER_CHAIN_ID = sha256(b"another consortium")

TRANSACTION = Transaction.create(
    KEYS["metropole"],
    chain_id=CHAIN_ID,
    contract="deeds",
    action="anchor",
    args={"reference": "2026-DEL-0001", "digest": sha256(b"deliberation"), "pages": 12},
    nonce=7,
    expiry_height=100,
)
HEADER = BlockHeader(
    chain_id=CHAIN_ID,
    height=1,
    prev_hash=CHAIN_ID,
    timestamp_ms=1_790_000_001_000,
    proposer="metropole",
    view=0,
    tx_count=1,
    tx_root=sha256(b"tx root"),
    state_root=sha256(b"state root"),
    members_hash=GENESIS.members_hash,
)
BLOCK = Block(header=HEADER, transactions=(TRANSACTION,))


def certify(
    signer_ids: tuple[str, ...] | list[str],
    *,
    height: int = HEADER.height,
    view: int = HEADER.view,
    block_hash: bytes = HEADER.block_hash,
    chain_id: bytes = CHAIN_ID,
    tag: bytes = domains.COMMIT,
    keys: dict[str, Ed25519PrivateKey] = KEYS,
) -> CommitCertificate:
    """A certificate claiming HEADER's height, view and hash, whatever its signers signed."""
    payload = vote_payload(height, view, block_hash)
    domain = crypto.Domain(tag, chain_id)
    return CommitCertificate(
        height=HEADER.height,
        view=HEADER.view,
        block_hash=HEADER.block_hash,
        signatures=tuple(
            sorted((signer, crypto.sign(keys[signer], domain, payload)) for signer in signer_ids)
        ),
    )


def rebuilt(model: Any, **changes: Any) -> Any:
    """``model`` decoded again from its canonical form with ``changes`` applied."""
    return type(model).from_canonical({**model.to_canonical(), **changes})


# --- round trips ---------------------------------------------------------------------------------

MODEL_STRATEGIES = {
    "Member": members,
    "Genesis": genesis_documents,
    "Transaction": transactions(),
    "BlockHeader": headers(),
    "Block": blocks(),
    "CommitCertificate": certificates(),
}
JSON_STRATEGIES = {
    **MODEL_STRATEGIES,
    "Transaction": transactions(args=json_arguments),
    "Block": blocks(args=json_arguments),
}


@pytest.mark.parametrize("name", MODEL_STRATEGIES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_canonical_bytes_round_trip(name: str, data: st.DataObject):
    model = data.draw(MODEL_STRATEGIES[name])
    encoded = model.to_bytes()
    decoded = type(model).from_bytes(encoded)
    assert decoded == model
    assert decoded.to_bytes() == encoded
    assert model.to_bytes() == encoded
    if isinstance(decoded, Transaction):
        assert decoded.encoded == encoded == decoded.model_copy().to_bytes()


@pytest.mark.parametrize("name", JSON_STRATEGIES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_json_form_round_trips(name: str, data: st.DataObject):
    model = data.draw(JSON_STRATEGIES[name])
    decoded = type(model).model_validate_json(model.model_dump_json())
    assert decoded == model
    assert decoded.to_bytes() == model.to_bytes()


@pytest.mark.xfail(
    strict=True,
    reason="known gap: JSON has no form for bytes (or non-text keys) inside args; "
    "model_dump_json fails or turns them into text, changing tx_id",
)
def test_json_form_round_trips_bytes_inside_arguments():
    assert Transaction.model_validate_json(TRANSACTION.model_dump_json()) == TRANSACTION


def test_json_form_shows_hashes_in_hex_and_keys_in_text_form():
    document = HEADER.model_dump(mode="json")
    assert document["tx_root"] == sha256(b"tx root").hex()
    member = MEMBERS[0].model_dump(mode="json")
    assert member["public_key"] == crypto.public_key_to_text(MEMBERS[0].public_key)


def test_json_form_refuses_uppercase_hex():
    text = HEADER.model_dump_json().replace(HEADER.tx_root.hex(), HEADER.tx_root.hex().upper())
    assert text != HEADER.model_dump_json()
    with pytest.raises(ValueError, match="tx_root"):
        BlockHeader.model_validate_json(text)


def test_a_transaction_equals_its_decoding_whatever_containers_its_args_were_built_from():
    transaction = Transaction.create(
        KEYS["metropole"],
        chain_id=CHAIN_ID,
        contract="deeds",
        action="anchor",
        args={"z": (1, (2, 3)), "a": bytearray(b"raw"), "m": {"y": 1, "x": 2}},
        nonce=0,
        expiry_height=10,
    )
    assert Transaction.from_bytes(transaction.to_bytes()) == transaction
    assert transaction.args == {"a": b"raw", "m": {"x": 2, "y": 1}, "z": [1, [2, 3]]}


def test_a_transaction_is_not_changed_by_later_changes_to_the_callers_args():
    pages = [1, 2]
    transaction = Transaction.create(
        KEYS["metropole"],
        chain_id=CHAIN_ID,
        contract="deeds",
        action="anchor",
        args={"pages": pages},
        nonce=0,
        expiry_height=10,
    )
    encoded = transaction.to_bytes()
    pages.append(3)
    assert transaction.to_bytes() == encoded
    assert Transaction.from_bytes(transaction.to_bytes()).signature_is_valid()


# --- identities ----------------------------------------------------------------------------------


def test_chain_id_is_the_hash_of_the_canonical_genesis():
    document = {
        "format_version": 1,
        "consortium": "Consortium de test",
        "created_at_ms": 1_790_000_000_000,
        "members": [
            {
                "id": member.id,
                "name": member.name,
                "public_key": member.public_key,
                "endpoint": member.endpoint,
            }
            for member in MEMBERS[:4]
        ],
        "parameters": {
            "block_transactions_max": 2_000,
            "block_bytes_max": 8 * 1024 * 1024,
            "transaction_bytes_max": 16_384,
            "view_timeout_ms": 3_000,
            "timestamp_drift_ms_max": 10_000,
            "governance_threshold_percent": 67,
            "proposal_lifetime_blocks": 10_000,
        },
        "contracts": [{"name": "deeds", "version": "1.0"}],
    }
    assert GENESIS.to_bytes() == encoding.pack(document)
    assert sha256(encoding.pack(document)) == CHAIN_ID


def test_members_hash_is_the_hash_of_the_canonical_member_array():
    document = [member.to_canonical() for member in MEMBERS[:4]]
    assert GENESIS.members_hash == members_hash(MEMBERS[:4]) == sha256(encoding.pack(document))


def test_tx_id_is_the_hash_of_the_canonical_body_without_signature():
    body = {
        "chain_id": CHAIN_ID,
        "contract": "deeds",
        "action": "anchor",
        "args": {"reference": "2026-DEL-0001", "digest": sha256(b"deliberation"), "pages": 12},
        "signer": crypto.public_key_bytes(KEYS["metropole"]),
        "nonce": 7,
        "expiry_height": 100,
    }
    assert TRANSACTION.tx_id == sha256(encoding.pack(body))
    assert TRANSACTION.to_bytes() == encoding.pack({**body, "signature": TRANSACTION.signature})


def test_block_hash_is_the_hash_of_the_canonical_header():
    document = {
        "chain_id": CHAIN_ID,
        "height": 1,
        "prev_hash": CHAIN_ID,
        "timestamp_ms": 1_790_000_001_000,
        "proposer": "metropole",
        "view": 0,
        "tx_count": 1,
        "tx_root": sha256(b"tx root"),
        "state_root": sha256(b"state root"),
        "members_hash": GENESIS.members_hash,
    }
    assert HEADER.block_hash == sha256(encoding.pack(document)) == BLOCK.block_hash


def test_vote_payload_is_the_canonical_array_of_height_view_and_block_hash():
    assert vote_payload(1, 0, bytes(32)) == bytes.fromhex("930100c420") + bytes(32)
    assert vote_payload(300, 2, HEADER.block_hash) == encoding.pack([300, 2, HEADER.block_hash])


def test_block_leaves_are_the_canonical_bytes_of_its_transactions():
    assert BLOCK.transaction_leaves() == [TRANSACTION.to_bytes()]
    assert BLOCK.height == 1


GENESIS_CHANGES = {
    "consortium": "Un autre consortium",
    "created_at_ms": 1_790_000_000_001,
    "members": [member.to_canonical() for member in reversed(MEMBERS[:4])],
    "parameters": {**ConsensusParameters().to_canonical(), "view_timeout_ms": 3_001},
    "contracts": [],
}


@pytest.mark.parametrize(("field", "value"), GENESIS_CHANGES.items(), ids=GENESIS_CHANGES)
def test_changing_any_genesis_field_changes_the_chain_id(field: str, value: Any):
    assert rebuilt(GENESIS, **{field: value}).chain_id != CHAIN_ID


TRANSACTION_CHANGES = {
    "chain_id": OTHER_CHAIN_ID,
    "contract": "archives",
    "action": "revoke",
    "args": {**TRANSACTION.args, "pages": 13},
    "signer": MEMBERS[1].public_key,
    "nonce": 8,
    "expiry_height": 101,
}


@pytest.mark.parametrize(("field", "value"), TRANSACTION_CHANGES.items(), ids=TRANSACTION_CHANGES)
def test_changing_any_signed_field_changes_the_tx_id_and_voids_the_signature(
    field: str, value: Any
):
    changed = rebuilt(TRANSACTION, **{field: value})
    assert changed.tx_id != TRANSACTION.tx_id
    assert not changed.signature_is_valid()


def test_every_field_but_the_signature_is_signed():
    assert set(TRANSACTION_CHANGES) == set(Transaction.SIGNED_FIELDS)
    assert set(Transaction.model_fields) == {*Transaction.SIGNED_FIELDS, "signature"}


def test_the_signature_is_not_part_of_the_tx_id():
    changed = rebuilt(TRANSACTION, signature=bytes(64))
    assert changed.tx_id == TRANSACTION.tx_id
    assert changed.to_bytes() != TRANSACTION.to_bytes()


HEADER_CHANGES = {
    "chain_id": OTHER_CHAIN_ID,
    "height": 2,
    "prev_hash": sha256(b"other"),
    "timestamp_ms": HEADER.timestamp_ms + 1,
    "proposer": "ville-a",
    "view": 1,
    "tx_count": 2,
    "tx_root": sha256(b"other tx root"),
    "state_root": sha256(b"other state root"),
    "members_hash": sha256(b"other members"),
}


@pytest.mark.parametrize(("field", "value"), HEADER_CHANGES.items(), ids=HEADER_CHANGES)
def test_changing_any_header_field_changes_the_block_hash(field: str, value: Any):
    assert rebuilt(HEADER, **{field: value}).block_hash != HEADER.block_hash


FORMAT_2_HEADER = rebuilt(HEADER, log_size=7, log_root=sha256(b"log root"))


@pytest.mark.parametrize(
    ("field", "value"), [("log_size", 8), ("log_root", sha256(b"other log root"))]
)
def test_changing_a_log_field_of_a_format_2_header_changes_the_block_hash(field: str, value: Any):
    assert rebuilt(FORMAT_2_HEADER, **{field: value}).block_hash != FORMAT_2_HEADER.block_hash
    assert FORMAT_2_HEADER.block_hash != HEADER.block_hash


def test_every_header_field_is_covered_by_the_block_hash():
    assert set(HEADER_CHANGES) | {"log_size", "log_root"} == set(BlockHeader.model_fields)


def test_a_format_1_header_has_no_log_fields_and_a_format_2_header_both():
    assert "log_size" not in HEADER.to_canonical() and HEADER.format_version == 1
    assert FORMAT_2_HEADER.format_version == 2
    assert BlockHeader.from_bytes(FORMAT_2_HEADER.to_bytes()) == FORMAT_2_HEADER
    for document in (
        {**HEADER.to_canonical(), "log_size": None, "log_root": None},
        {**HEADER.to_canonical(), "log_size": 7},
        {**HEADER.to_canonical(), "log_root": sha256(b"log root")},
    ):
        with pytest.raises(ModelDecodeError):
            BlockHeader.from_canonical(document)


# --- transaction signatures ----------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(transactions())
def test_a_created_transaction_carries_a_valid_signature(transaction: Transaction):
    assert transaction.signature_is_valid()
    assert Transaction.from_bytes(transaction.to_bytes()).signature_is_valid()


def test_a_signature_made_for_another_chain_is_invalid():
    elsewhere = Transaction.create(
        KEYS["metropole"],
        chain_id=OTHER_CHAIN_ID,
        contract="deeds",
        action="anchor",
        args=TRANSACTION.args,
        nonce=7,
        expiry_height=100,
    )
    assert elsewhere.signature_is_valid()
    assert not rebuilt(TRANSACTION, signature=elsewhere.signature).signature_is_valid()


def test_a_signature_by_another_key_is_invalid():
    domain = crypto.Domain(domains.TRANSACTION, CHAIN_ID)
    forged = crypto.sign(OUTSIDER, domain, TRANSACTION.tx_id)
    assert not rebuilt(TRANSACTION, signature=forged).signature_is_valid()


def test_a_transaction_signature_is_no_commit_vote():
    domain = crypto.Domain(domains.COMMIT, CHAIN_ID)
    other_purpose = crypto.sign(KEYS["metropole"], domain, TRANSACTION.tx_id)
    assert not rebuilt(TRANSACTION, signature=other_purpose).signature_is_valid()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("chain_id", b"short"),
        ("contract", "Deeds"),
        ("args", {"ratio": 0.5}),
        ("args", {"deep": [[[[[[[[[0]]]]]]]]]}),
        ("nonce", -1),
        ("expiry_height", 0),
    ],
)
def test_create_refuses_bad_fields_with_a_model_decode_error(field: str, value: Any):
    fields = {
        "chain_id": CHAIN_ID,
        "contract": "deeds",
        "action": "anchor",
        "args": {},
        "nonce": 0,
        "expiry_height": 10,
    }
    with pytest.raises(ModelDecodeError, match=field):
        Transaction.create(KEYS["metropole"], **{**fields, field: value})


# --- validation names the field ------------------------------------------------------------------

SMALL_ORDER_KEY = b"\x01" + bytes(31)  # the identity point
PUBLIC_KEY_TEXT = crypto.public_key_to_text(MEMBERS[0].public_key)

BAD_FIELDS: list[tuple[Any, str, Any]] = [
    *((MEMBERS[0], "id", value) for value in ("Ville", "-ville", "ville-", "a" * 49, "a b")),
    *((MEMBERS[0], "id", value) for value in ("ville\n", "", 7, b"ville")),
    *((MEMBERS[0], "name", value) for value in ("", " Ville", "Ville ", "Vi\tlle", "Vi\x07lle")),
    *((MEMBERS[0], "name", value) for value in ("Vi\x85lle", "x" * 129, 7, b"Ville")),
    *((MEMBERS[0], "public_key", value) for value in (bytes(31), bytes(33), SMALL_ORDER_KEY)),
    *((MEMBERS[0], "public_key", value) for value in (PUBLIC_KEY_TEXT, None)),
    *((MEMBERS[0], "endpoint", value) for value in ("host", "host:", ":7000", "ho st:7000")),
    *((MEMBERS[0], "endpoint", value) for value in ("host:123456", 7000)),
    *((GENESIS, "format_version", value) for value in (0, 3, "1")),
    *((GENESIS, "consortium", value) for value in ("", None)),
    *((GENESIS, "created_at_ms", value) for value in (-1, 2**63, 1.0)),
    *((GENESIS, "members", value) for value in ([], "metropole", [7])),
    (GENESIS, "parameters", {**ConsensusParameters().to_canonical(), "view_timeout_ms": 99}),
    (GENESIS, "parameters", {**ConsensusParameters().to_canonical(), "block_bytes_max": 2**25 + 1}),
    (GENESIS, "contracts", [{"name": "Deeds", "version": "1.0"}]),
    (GENESIS, "contracts", [{"name": "deeds", "version": "v1"}]),
    *((TRANSACTION, "chain_id", value) for value in (CHAIN_ID[:31], CHAIN_ID.hex(), None)),
    *((TRANSACTION, "contract", value) for value in ("Deeds", "1deeds", "d" * 33, "de-eds")),
    *((TRANSACTION, "action", value) for value in ("", "anchor act")),
    *((TRANSACTION, "args", value) for value in ({"x": 1.5}, {1: "x"}, ["x"], "x")),
    (TRANSACTION, "args", {"nested": [[[[[[[[0]]]]]]]]}),
    (TRANSACTION, "args", {"large": bytes(64 * 1024)}),
    *((TRANSACTION, "signer", value) for value in (SMALL_ORDER_KEY, PUBLIC_KEY_TEXT)),
    *((TRANSACTION, "nonce", value) for value in (-1, 2**64)),
    *((TRANSACTION, "expiry_height", value) for value in (0, 2**63)),
    *((TRANSACTION, "signature", value) for value in (bytes(63), bytes(65), bytes(64).hex())),
    *((HEADER, "chain_id", value) for value in (bytes(31), "00" * 32)),
    *((HEADER, "height", value) for value in (0, -1, 2**63, "1")),
    *((HEADER, "prev_hash", value) for value in (bytes(33), None)),
    *((HEADER, "timestamp_ms", value) for value in (-1, 2**63)),
    *((HEADER, "proposer", value) for value in ("Metropole", "")),
    *((HEADER, "view", value) for value in (-1, 2**63)),
    *((HEADER, "tx_count", value) for value in (-1, 2**63)),
    *((HEADER, field, bytes(31)) for field in ("tx_root", "state_root", "members_hash")),
    (BLOCK, "header", "not a header"),
    (BLOCK, "transactions", "not a list"),
    (BLOCK, "transactions", [{"not": "a transaction"}]),
    *((certify(MEMBER_IDS[:3]), "height", value) for value in (0, 2**63)),
    *((certify(MEMBER_IDS[:3]), "view", value) for value in (-1, 2**63)),
    (certify(MEMBER_IDS[:3]), "block_hash", bytes(31)),
    (certify(MEMBER_IDS[:3]), "signatures", []),
    (certify(MEMBER_IDS[:3]), "signatures", [["Metropole", bytes(64)]]),
    (certify(MEMBER_IDS[:3]), "signatures", [["metropole", bytes(63)]]),
    (certify(MEMBER_IDS[:3]), "signatures", [["metropole", bytes(64), 1]]),
]


@pytest.mark.parametrize(
    ("model", "field", "value"),
    BAD_FIELDS,
    ids=[f"{type(model).__name__}.{field}={value!r:.20}" for model, field, value in BAD_FIELDS],
)
def test_a_bad_field_is_refused_with_its_name(model: Any, field: str, value: Any):
    with pytest.raises(ModelDecodeError, match=rf"{type(model).__name__}\.{field}\b"):
        rebuilt(model, **{field: value})


ALL_MODELS = [
    MEMBERS[0],
    GENESIS.contracts[0],
    GENESIS.parameters,
    GENESIS,
    TRANSACTION,
    HEADER,
    BLOCK,
    certify(MEMBER_IDS[:3]),
]


def fields_of(models: list[Any]) -> list[tuple[Any, str]]:
    """Every field a canonical form must hold (the later formats' optional fields aside: a
    format 1 header has no log fields, tested above)."""
    return [
        (model, field)
        for model in models
        for field in type(model).model_fields
        if field not in type(model)._may_be_absent()
    ]


@pytest.mark.parametrize(
    ("model", "field"),
    fields_of(ALL_MODELS),
    ids=[f"{type(model).__name__}.{field}" for model, field in fields_of(ALL_MODELS)],
)
def test_a_missing_field_is_refused_with_its_name(model: Any, field: str):
    document = model.to_canonical()
    del document[field]
    with pytest.raises(ModelDecodeError, match=f"missing field '{field}'"):
        type(model).from_canonical(document)


@pytest.mark.parametrize("field", list(ConsensusParameters.model_fields))
def test_a_nested_field_with_a_default_must_still_be_present(field: str):
    # Otherwise two genesis files would decode to one Genesis: their hashes could not both be
    # the chain_id.
    parameters = GENESIS.parameters.to_canonical()
    del parameters[field]
    with pytest.raises(ModelDecodeError, match=f"parameters.*missing field '{field}'"):
        rebuilt(GENESIS, parameters=parameters)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"header": {k: v for k, v in HEADER.to_canonical().items() if k != "view"}}, "view"),
        ({"transactions": [{**TRANSACTION.to_canonical(), "nonce": None}]}, "nonce"),
    ],
)
def test_a_nested_model_names_the_nested_field(changes: dict, field: str):
    with pytest.raises(ModelDecodeError, match=field):
        rebuilt(BLOCK, **changes)


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda model: type(model).__name__)
def test_an_extra_field_is_refused_with_its_name(model: Any):
    with pytest.raises(ModelDecodeError, match="surplus"):
        rebuilt(model, surplus=1)


def test_an_extra_field_in_a_nested_model_is_refused():
    with pytest.raises(ModelDecodeError, match=r"members\.0\.surplus"):
        rebuilt(GENESIS, members=[{**MEMBERS[0].to_canonical(), "surplus": 1}])


@pytest.mark.parametrize("document", [[], "genesis", None, 1, b"\x80"])
def test_a_document_that_is_not_a_map_is_refused(document: Any):
    with pytest.raises(ModelDecodeError, match="expected a map"):
        Genesis.from_canonical(document)


def bytes_fields(model: Any) -> list[str]:
    return [field for field, value in model.to_canonical().items() if isinstance(value, bytes)]


def int_fields(model: Any) -> list[str]:
    return [
        field
        for field, value in model.to_canonical().items()
        if isinstance(value, int) and not isinstance(value, bool)
    ]


BYTES_FIELDS = [(model, field) for model in ALL_MODELS for field in bytes_fields(model)]
INT_FIELDS = [(model, field) for model in ALL_MODELS for field in int_fields(model)]


@pytest.mark.parametrize(
    ("model", "field"),
    BYTES_FIELDS,
    ids=[f"{type(model).__name__}.{field}" for model, field in BYTES_FIELDS],
)
def test_bytes_fields_accept_bytes_only_in_canonical_form(model: Any, field: str):
    raw = model.to_canonical()[field]
    for spelling in (raw.hex(), raw.decode("latin-1"), bytearray(raw), list(raw)):
        with pytest.raises(ModelDecodeError, match=field):
            rebuilt(model, **{field: spelling})
    # The same bytes written as a msgpack str: valid msgpack, not the model's byte form.
    document = {**model.to_canonical(), field: raw.decode("latin-1")}
    with pytest.raises(ModelDecodeError, match=field):
        type(model).from_bytes(encoding.pack(document))


@pytest.mark.parametrize(
    ("model", "field"),
    INT_FIELDS,
    ids=[f"{type(model).__name__}.{field}" for model, field in INT_FIELDS],
)
def test_integer_fields_refuse_booleans(model: Any, field: str):
    for value in (True, False):
        with pytest.raises(ModelDecodeError, match=field):
            rebuilt(model, **{field: value})


def test_from_bytes_refuses_non_canonical_bytes():
    document = MEMBERS[0].to_canonical()
    reversed_keys = b"\x84" + b"".join(
        encoding.pack(key) + encoding.pack(value) for key, value in reversed(document.items())
    )
    with pytest.raises(encoding.NonCanonicalError):
        Member.from_bytes(reversed_keys)
    with pytest.raises(ModelDecodeError, match="expected a map"):
        Member.from_bytes(encoding.pack([1, 2]))


def test_a_block_whose_tx_count_disagrees_is_refused():
    with pytest.raises(ModelDecodeError, match="tx_count"):
        rebuilt(BLOCK, transactions=[])
    with pytest.raises(ModelDecodeError, match="tx_count"):
        rebuilt(BLOCK, transactions=[TRANSACTION.to_canonical()] * 2)


@pytest.mark.parametrize(
    "signers",
    [
        ["ville-a", "metropole"],
        ["metropole", "ville-a", "ville-a"],
        ["metropole", "metropole"],
        ["ville-b", "metropole", "ville-a"],
    ],
)
def test_certificate_entries_must_be_sorted_and_distinct(signers: list[str]):
    entries = [[signer, bytes(64)] for signer in signers]
    with pytest.raises(ModelDecodeError, match="signatures must be sorted"):
        rebuilt(certify(MEMBER_IDS[:3]), signatures=entries)


@pytest.mark.parametrize(
    ("field", "label"),
    [("id", "member id"), ("public_key", "public key"), ("endpoint", "endpoint")],
)
def test_genesis_refuses_duplicate_members(field: str, label: str):
    twin = {**MEMBERS[1].to_canonical(), field: getattr(MEMBERS[0], field)}
    members = [MEMBERS[0].to_canonical(), twin]
    with pytest.raises(ModelDecodeError, match=f"members: {label}"):
        rebuilt(GENESIS, members=members)


def test_genesis_refuses_duplicate_contracts():
    contracts = [{"name": "deeds", "version": "1.0"}, {"name": "deeds", "version": "2.0"}]
    with pytest.raises(ModelDecodeError, match="contract name 'deeds'"):
        rebuilt(GENESIS, contracts=contracts)


def test_transaction_arguments_nest_at_most_eight_levels():
    assert rebuilt(TRANSACTION, args={"x": [[[[[[[0]]]]]]]}).args == {"x": [[[[[[[0]]]]]]]}
    with pytest.raises(ModelDecodeError, match="args"):
        rebuilt(TRANSACTION, args={"x": [[[[[[[[0]]]]]]]]})


def test_genesis_finds_its_members_by_id():
    assert GENESIS.member("ville-a") == MEMBERS[1]
    assert GENESIS.member("port") is None


# --- commit certificates -------------------------------------------------------------------------


@pytest.mark.parametrize(("member_count", "quorum"), [(4, 3), (6, 5), (7, 5)])
def test_a_quorum_of_valid_signatures_certifies(member_count: int, quorum: int):
    members = MEMBERS[:member_count]
    assert quorum_size(member_count) == quorum
    certify(MEMBER_IDS[:quorum]).verify(CHAIN_ID, members)
    certify(MEMBER_IDS[member_count - quorum : member_count]).verify(CHAIN_ID, members)
    certify(MEMBER_IDS[:member_count]).verify(CHAIN_ID, members)


@pytest.mark.parametrize(("member_count", "quorum"), [(4, 3), (6, 5), (7, 5)])
def test_one_signature_short_of_a_quorum_does_not_certify(member_count: int, quorum: int):
    with pytest.raises(InvalidCertificateError, match=f"{quorum - 1} signatures, {quorum} needed"):
        certify(MEMBER_IDS[: quorum - 1]).verify(CHAIN_ID, MEMBERS[:member_count])


@pytest.mark.parametrize("signer_count", [3, 4])
def test_six_members_need_five_signatures_not_a_simple_majority(signer_count: int):
    with pytest.raises(InvalidCertificateError, match="5 needed of 6 members"):
        certify(MEMBER_IDS[:signer_count]).verify(CHAIN_ID, MEMBERS[:6])


def test_a_signature_from_a_non_member_does_not_certify():
    keys = {**KEYS, "intrus": OUTSIDER}
    certificate = certify(["intrus", "metropole", "ville-a", "ville-b"], keys=keys)
    with pytest.raises(InvalidCertificateError, match="'intrus' is not a member"):
        certificate.verify(CHAIN_ID, MEMBERS[:4])


def test_a_member_outside_the_set_in_force_does_not_certify():
    certificate = certify(["metropole", "region", "ville-a"])
    with pytest.raises(InvalidCertificateError, match="'region' is not a member"):
        certificate.verify(CHAIN_ID, MEMBERS[:4])


def test_a_bad_signature_does_not_certify():
    certificate = certify(["metropole", "ville-a", "ville-b"])
    entries = [list(entry) for entry in certificate.signatures]
    entries[1][1] = bytes(64)
    with pytest.raises(InvalidCertificateError, match="bad signature from 'ville-a'"):
        rebuilt(certificate, signatures=entries).verify(CHAIN_ID, MEMBERS[:4])


def test_a_signature_attributed_to_another_member_does_not_certify():
    certificate = certify(["metropole", "ville-a", "ville-b"])
    entries = [list(entry) for entry in certificate.signatures]
    entries[0][1], entries[1][1] = entries[1][1], entries[0][1]
    with pytest.raises(InvalidCertificateError, match="bad signature from 'metropole'"):
        rebuilt(certificate, signatures=entries).verify(CHAIN_ID, MEMBERS[:4])


@pytest.mark.parametrize(
    "signed",
    [
        {"view": HEADER.view + 1},
        {"height": HEADER.height + 1},
        {"block_hash": sha256(b"another block")},
        {"chain_id": OTHER_CHAIN_ID},
        {"tag": domains.PREPARE},
        {"tag": domains.PRE_PREPARE},
    ],
    ids=["view", "height", "block_hash", "chain_id", "prepare vote", "pre-prepare"],
)
def test_a_signature_for_anything_else_does_not_certify(signed: dict[str, Any]):
    honest = certify(["metropole", "ville-a"])
    stray = certify(["ville-b"], **signed)
    certificate = rebuilt(honest, signatures=sorted(honest.signatures + stray.signatures))
    with pytest.raises(InvalidCertificateError, match="bad signature from 'ville-b'"):
        certificate.verify(CHAIN_ID, MEMBERS[:4])


def test_a_certificate_verifies_only_for_its_own_chain():
    with pytest.raises(InvalidCertificateError, match="bad signature"):
        certify(MEMBER_IDS[:3]).verify(OTHER_CHAIN_ID, MEMBERS[:4])


@pytest.mark.parametrize("member_count", range(1, 32))
def test_quorum_size_is_n_minus_the_tolerated_faults(member_count: int):
    faults = fault_tolerance(member_count)
    quorum = quorum_size(member_count)
    assert faults == (member_count - 1) // 3
    assert quorum == member_count - (member_count - 1) // 3
    assert 3 * faults < member_count  # f byzantine members are fewer than a third
    assert 2 * quorum - member_count >= faults + 1  # two quorums share an honest member
    assert quorum <= member_count - faults  # honest members alone make a quorum


def test_quorum_sizes_for_the_usual_consortium_sizes():
    assert [quorum_size(n) for n in range(1, 11)] == [1, 2, 3, 3, 4, 5, 5, 6, 7, 7]
    assert [fault_tolerance(n) for n in range(1, 11)] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]
