"""Specification: C2SP signed notes, checkpoints, cosignatures, tlog-proofs (ledger/note.py).

The interoperability vectors in tests/data/c2sp_vectors.json come from the C2SP specifications,
the documentation of Go's golang.org/x/mod/sumdb/note and the tests of transparency-dev/formats
(each entry names its source). Those that come with a key and a signature are verified;
Ed25519 is deterministic, so the Go example's private key must also reproduce its signature
byte for byte. The tlog-scales package (an independent Python implementation) cross-checks
our notes in both directions.
"""

from __future__ import annotations

import base64
import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger import crypto, merkle
from ledger.note import (
    ADD_CHECKPOINT_BYTES_MAX,
    NOTE_BYTES_MAX,
    NOTE_SIGNATURES_MAX,
    PROOF_HASHES_MAX,
    AddCheckpointRequest,
    Checkpoint,
    KeyType,
    Note,
    NoteError,
    NoteSignature,
    NoteVerifierKey,
    TlogProof,
    cosign,
    cosignature_message,
    cosignature_timestamp,
    origin_for,
    sign_note,
    verify_note,
)

VECTORS = json.loads((Path(__file__).parent / "data" / "c2sp_vectors.json").read_text())
MEMBER_KEYS = [crypto.key_from_seed(bytes([index]) * 32) for index in range(1, 5)]
WITNESS_KEY = crypto.key_from_seed(b"\x77" * 32)
CHAIN_ID = bytes(range(32))
ORIGIN = origin_for(CHAIN_ID)


def checkpoint_text(size: int = 3, origin: str = ORIGIN) -> str:
    leaves = [b"act %d" % index for index in range(size)]
    return Checkpoint(origin, size, merkle.root(leaves)).text()


def member_vkey(key: crypto.PrivateKey) -> NoteVerifierKey:
    return NoteVerifierKey.for_private_key(ORIGIN, KeyType.ED25519, key)


def signed(text: str, *keys: crypto.PrivateKey) -> Note:
    return Note(text, tuple(sign_note(text, ORIGIN, key) for key in keys))


# --- interoperability vectors -----------------------------------------------------------------


@pytest.mark.parametrize("vector", VECTORS["signed_notes"], ids=lambda vector: vector["name"])
def test_every_published_signed_note_verifies_with_its_published_keys(vector: dict) -> None:
    keys = [NoteVerifierKey.parse_vkey(text) for text in vector["vkeys"]]
    note = Note.parse(vector["note"].encode())
    assert note.text == vector["text"]
    assert [key.name for key in verify_note(note, keys)] == vector["verified"]
    assert note.to_bytes() == vector["note"].encode()


@pytest.mark.parametrize("vector", VECTORS["syntax_only_notes"], ids=lambda vector: vector["name"])
def test_a_published_note_with_blank_lines_in_its_text_parses_to_its_text(vector: dict) -> None:
    note = Note.parse(vector["note"].encode())
    assert note.text == vector["text"]
    assert [signature.name for signature in note.signatures] == vector["names"]
    assert f"{note.signatures[0].key_id:08x}" == vector["key_id"]
    assert note.to_bytes() == vector["note"].encode()


def test_the_go_example_key_reproduces_the_go_example_signature_byte_for_byte() -> None:
    vector = VECTORS["signed_notes"][1]
    seed = base64.b64decode(vector["skey"].split("+", 4)[4])
    assert seed[0] == KeyType.ED25519
    key = crypto.key_from_seed(seed[1:])
    assert (
        NoteVerifierKey.for_private_key("PeterNeumann", KeyType.ED25519, key).vkey
        == (vector["vkeys"][0])
    )
    produced = Note(vector["text"], (sign_note(vector["text"], "PeterNeumann", key),))
    assert produced.to_bytes() == vector["note"].encode()


@pytest.mark.parametrize("vector", VECTORS["vkeys"], ids=lambda vector: vector["name"])
def test_published_verifier_keys_parse_with_their_key_id_and_print_back(vector: dict) -> None:
    key = NoteVerifierKey.parse_vkey(vector["vkey"])
    assert (key.name, int(key.key_type), f"{key.key_id:08x}") == (
        vector["name"],
        vector["key_type"],
        vector["key_id"],
    )
    assert key.vkey == vector["vkey"]


@pytest.mark.parametrize("vector", VECTORS["bad_vkeys"], ids=lambda vector: vector["why"])
def test_malformed_published_verifier_keys_are_refused(vector: dict) -> None:
    with pytest.raises(NoteError):
        NoteVerifierKey.parse_vkey(vector["vkey"])


def test_the_spec_checkpoint_parses_to_its_origin_size_and_root() -> None:
    vector = VECTORS["checkpoints"][0]
    note = Note.parse(vector["note"].encode())
    checkpoint = Checkpoint.from_note(note)
    assert (checkpoint.origin, checkpoint.size) == (vector["origin"], vector["size"])
    assert checkpoint.root == base64.b64decode(vector["root_base64"])
    assert checkpoint.text() == note.text


@pytest.mark.parametrize("vector", VECTORS["cosignatures"], ids=lambda vector: vector["name"])
def test_published_cosignature_timestamps_are_read_and_others_refused(vector: dict) -> None:
    signature = NoteSignature.parse_line(vector["line"])
    if vector["timestamp"] is None:
        with pytest.raises(NoteError, match="72 bytes"):
            cosignature_timestamp(signature)
    else:
        assert cosignature_timestamp(signature) == vector["timestamp"]


def test_the_cosignature_message_is_laid_out_as_in_the_spec_example() -> None:
    vector = VECTORS["cosignatures"][0]
    message = cosignature_message(vector["checkpoint_text"], vector["timestamp"])
    assert message == vector["message"].encode()


def test_the_spec_add_checkpoint_request_parses_and_prints_back() -> None:
    vector = VECTORS["add_checkpoint_requests"][0]
    request = AddCheckpointRequest.parse(vector["body"].encode())
    assert request.old_size == vector["old_size"]
    assert len(request.proof) == vector["proof_lines"]
    assert len(request.checkpoint.signatures) == vector["signatures"]
    assert request.to_bytes() == vector["body"].encode()


def test_the_spec_witness_response_is_signature_lines() -> None:
    vector = VECTORS["witness_responses"][0]
    lines = vector["body"].splitlines()
    assert len([NoteSignature.parse_line(line) for line in lines]) == vector["lines"]


def test_the_spec_tlog_proof_parses_once_its_elided_signatures_are_filled_in() -> None:
    vector = VECTORS["tlog_proofs"][0]
    proof = TlogProof.parse(vector["proof"].encode())
    assert proof.index == vector["index"]
    assert len(proof.proof) == vector["proof_lines"]
    assert proof.extra == base64.b64decode(vector["extra_base64"])
    checkpoint = Checkpoint.from_note(proof.checkpoint)
    assert (checkpoint.origin, checkpoint.size) == (vector["origin"], vector["size"])
    assert proof.to_bytes() == vector["proof"].encode()
    with pytest.raises(NoteError, match="not valid base64"):
        TlogProof.parse(vector["as_published"].encode())


# --- keys -------------------------------------------------------------------------------------


def test_the_origin_names_the_chain_in_lowercase_hex() -> None:
    assert ORIGIN == "sceau/" + "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
    assert "sceau/" + CHAIN_ID.hex() == ORIGIN


def test_a_key_id_is_the_first_four_bytes_of_the_hash_of_name_type_and_key() -> None:
    import hashlib

    key = member_vkey(MEMBER_KEYS[0])
    material = ORIGIN.encode() + b"\n\x01" + key.public_key
    assert key.key_id == int.from_bytes(hashlib.sha256(material).digest()[:4], "big")
    cosigner = NoteVerifierKey(ORIGIN, KeyType.COSIGNATURE_V1, key.public_key)
    assert cosigner.key_id != key.key_id  # the type byte separates them


@pytest.mark.parametrize(
    "text",
    [
        "",
        "name+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX",
        "PeterNeumann+c74f20a3+AhpcPeterNeumannPeterNeumannPeterNeumannPeter",
        "PeterNeumann+c74f20a3+" + "A" * 2000,
    ],
    ids=[
        "empty",
        "no key",
        "empty name",
        "space in name",
        "uppercase id",
        "truncated base64",
        "non-canonical base64",
        "unknown type",
        "too long",
    ],
)
def test_malformed_verifier_keys_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifierKey.parse_vkey(text)


def test_a_small_order_public_key_is_refused_as_a_verifier_key() -> None:
    with pytest.raises(NoteError, match="acceptable"):
        NoteVerifierKey("n", KeyType.ED25519, bytes(32))


# --- notes ------------------------------------------------------------------------------------


def test_a_member_signed_checkpoint_verifies_with_the_member_keys_in_note_order() -> None:
    note = signed(checkpoint_text(), *MEMBER_KEYS[:3])
    keys = [member_vkey(key) for key in MEMBER_KEYS]
    parsed = Note.parse(note.to_bytes())
    assert parsed == note
    assert verify_note(parsed, keys) == tuple(keys[:3])


def test_signatures_of_unknown_keys_are_ignored_even_with_a_known_name_or_id() -> None:
    text = checkpoint_text()
    known = member_vkey(MEMBER_KEYS[0])
    good = sign_note(text, ORIGIN, MEMBER_KEYS[0])
    same_name_other_key = sign_note(text, ORIGIN, MEMBER_KEYS[1])
    same_id_other_name = NoteSignature("elsewhere.example", known.key_id, b"\x00" * 64)
    note = Note(text, (same_id_other_name, same_name_other_key, good))
    assert verify_note(note, [known]) == (known,)


def test_a_failing_signature_from_a_known_key_rejects_the_whole_note() -> None:
    text = checkpoint_text()
    good = sign_note(text, ORIGIN, MEMBER_KEYS[0])
    forged = sign_note(checkpoint_text(4), ORIGIN, MEMBER_KEYS[1])  # another text
    keys = [member_vkey(key) for key in MEMBER_KEYS[:2]]
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(
            Note(text, (good, NoteSignature(ORIGIN, keys[1].key_id, forged.signature))), keys
        )


def test_a_note_that_no_known_key_signed_is_rejected() -> None:
    note = signed(checkpoint_text(), MEMBER_KEYS[3])
    with pytest.raises(NoteError, match="no signature"):
        verify_note(note, [member_vkey(MEMBER_KEYS[0])])


def test_a_non_canonical_signature_scalar_is_refused_by_the_strict_rules() -> None:
    text = checkpoint_text()
    good = sign_note(text, ORIGIN, MEMBER_KEYS[0])
    order = 2**252 + 27742317777372353535851937790883648493
    scalar = int.from_bytes(good.signature[32:], "little") + order
    malleated = good.signature[:32] + scalar.to_bytes(32, "little")
    note = Note(text, (NoteSignature(ORIGIN, good.key_id, malleated),))
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(note, [member_vkey(MEMBER_KEYS[0])])


def test_a_key_given_twice_counts_once() -> None:
    key = member_vkey(MEMBER_KEYS[0])
    note = signed(checkpoint_text(), MEMBER_KEYS[0], MEMBER_KEYS[0])
    assert verify_note(note, [key, key]) == (key,)


def test_the_text_is_separated_from_the_signatures_by_the_last_blank_line() -> None:
    text = "first\n\nsecond\n"
    note = Note(text, (sign_note(text, "n", MEMBER_KEYS[0]),))
    parsed = Note.parse(note.to_bytes())
    assert parsed.text == text
    assert verify_note(
        parsed, [NoteVerifierKey.for_private_key("n", KeyType.ED25519, MEMBER_KEYS[0])]
    )


GOOD_LINE = sign_note("x\n", "n", MEMBER_KEYS[0]).line()


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"x\n" + GOOD_LINE.encode(), "blank line"),
        (b"x\n\n", "at least one signature"),
        (("x\n\n" + GOOD_LINE[:-1]).encode(), "ends with a newline"),
        (b"x\n\n- n AAAAAAA=\n", "em dash"),
        (("x\n\n" + GOOD_LINE.replace(" n ", " n  ")).encode(), "signature line is"),
        (("x\n\n\u2014 a+b AAAAAAA=\n").encode(), "not a valid key name"),
        (("x\n\n\u2014 n AAAA\n").encode(), "shorter than a key id"),
        (("x\n\n\u2014 n AAAAAAA\n").encode(), "not valid base64"),
        (("x\n\n\u2014 n AAAAAAB=\n").encode(), "canonical"),
        (b"x\r\n\n" + GOOD_LINE.encode(), "control character"),
        (b"x\tx\n\n" + GOOD_LINE.encode(), "control character"),
        (b"\xff\n\n" + GOOD_LINE.encode(), "UTF-8"),
        (b"x" * NOTE_BYTES_MAX + b"\n\n" + GOOD_LINE.encode(), "at most"),
        (b"x\n\n" + GOOD_LINE.encode() * (NOTE_SIGNATURES_MAX + 1), "at most"),
    ],
    ids=[
        "no blank line",
        "no signature",
        "last line without newline",
        "hyphen instead of em dash",
        "two spaces",
        "plus in name",
        "signature too short",
        "bad base64",
        "non-canonical base64",
        "carriage return",
        "tab",
        "not utf-8",
        "too large",
        "too many signatures",
    ],
)
def test_malformed_notes_are_refused_with_the_reason(data: bytes, reason: str) -> None:
    with pytest.raises(NoteError, match=reason):
        Note.parse(data)


def test_a_note_with_the_maximum_signature_count_parses() -> None:
    data = b"x\n\n" + GOOD_LINE.encode() * NOTE_SIGNATURES_MAX
    assert len(Note.parse(data).signatures) == NOTE_SIGNATURES_MAX


TEXTS = st.lists(
    st.text(alphabet=st.characters(exclude_categories=("Cs",), min_codepoint=0x20), max_size=40),
    min_size=1,
    max_size=5,
).map(lambda lines: "".join(line + "\n" for line in lines))
NAMES = st.text(
    alphabet=st.characters(
        exclude_categories=("Cs", "Zs", "Zl", "Zp", "Cc"), exclude_characters="+\x85"
    ),
    min_size=1,
    max_size=20,
)


@given(text=TEXTS, name=NAMES, key_index=st.integers(0, 3))
def test_any_signed_note_round_trips_and_verifies(text: str, name: str, key_index: int) -> None:
    key = MEMBER_KEYS[key_index]
    note = Note(text, (sign_note(text, name, key),))
    parsed = Note.parse(note.to_bytes())
    assert parsed == note
    vkey = NoteVerifierKey.for_private_key(name, KeyType.ED25519, key)
    assert NoteVerifierKey.parse_vkey(vkey.vkey) == vkey
    assert verify_note(parsed, [vkey]) == (vkey,)


# --- cosignatures -----------------------------------------------------------------------------


def test_a_cosignature_verifies_with_the_witness_cosignature_key_and_carries_its_time() -> None:
    text = checkpoint_text()
    cosignature = cosign(text, "witness.example/w1", WITNESS_KEY, 1_700_000_000)
    witness = NoteVerifierKey.for_private_key(
        "witness.example/w1", KeyType.COSIGNATURE_V1, WITNESS_KEY
    )
    assert cosignature.key_id == witness.key_id
    assert cosignature_timestamp(cosignature) == 1_700_000_000
    note = signed(text, MEMBER_KEYS[0]).with_signatures(cosignature)
    assert verify_note(Note.parse(note.to_bytes()), [witness]) == (witness,)


def test_a_cosignature_does_not_pass_for_a_plain_note_signature_nor_for_another_time() -> None:
    text = checkpoint_text()
    cosignature = cosign(text, "w", WITNESS_KEY, 5)
    plain = NoteVerifierKey("w", KeyType.ED25519, crypto.public_key_bytes(WITNESS_KEY))
    assert plain.key_id != cosignature.key_id  # so a plain verifier ignores it
    retimed = NoteSignature(
        "w", cosignature.key_id, (6).to_bytes(8, "big") + cosignature.signature[8:]
    )
    witness = NoteVerifierKey.for_private_key("w", KeyType.COSIGNATURE_V1, WITNESS_KEY)
    with pytest.raises(NoteError, match="does not verify"):
        verify_note(Note(text, (retimed,)), [witness])


def test_only_a_checkpoint_is_cosigned_and_timestamps_stay_below_two_to_the_63() -> None:
    with pytest.raises(NoteError):
        cosign("not a checkpoint\n", "w", WITNESS_KEY, 1)
    with pytest.raises(NoteError):
        cosign(checkpoint_text(), "w", WITNESS_KEY, 2**63)


# --- checkpoints ------------------------------------------------------------------------------


@given(
    size=st.integers(0, 2**63 - 1),
    root=st.binary(min_size=32, max_size=32),
    extensions=st.lists(st.text(alphabet="abc xyz—é", min_size=1, max_size=10), max_size=3),
)
def test_any_checkpoint_round_trips_through_its_text(
    size: int, root: bytes, extensions: list[str]
) -> None:
    checkpoint = Checkpoint(ORIGIN, size, root, tuple(extensions))
    assert Checkpoint.parse_text(checkpoint.text()) == checkpoint


ROOT_TEXT = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"o\n3\n{ROOT_TEXT}",
        "o\n3\n",
        f"o\n03\n{ROOT_TEXT}\n",
        f"o\n-3\n{ROOT_TEXT}\n",
        f"o\n+3\n{ROOT_TEXT}\n",
        f"o\n{2**63}\n{ROOT_TEXT}\n",
        f"o\n3\n{base64.b64encode(bytes(31)).decode()}\n",
        f"o\n3\n{ROOT_TEXT}\n\next\n",
        f"\n3\n{ROOT_TEXT}\n",
        f"o\n3\n{ROOT_TEXT[:-1]}\n",
    ],
    ids=[
        "no final newline",
        "two lines",
        "leading zero",
        "negative",
        "plus sign",
        "size over 2^63-1",
        "31-byte root",
        "empty extension line",
        "empty origin",
        "bad base64 root",
    ],
)
def test_malformed_checkpoints_are_refused(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse_text(text)


def test_a_size_zero_checkpoint_is_written_as_zero() -> None:
    assert Checkpoint.parse_text(f"o\n0\n{ROOT_TEXT}\n").size == 0


# --- proofs and requests ----------------------------------------------------------------------


def test_a_tlog_proof_of_a_real_log_round_trips_and_its_inclusion_proof_verifies() -> None:
    leaves = [b"act %d" % index for index in range(7)]
    note = signed(Checkpoint(ORIGIN, 7, merkle.root(leaves)).text(), MEMBER_KEYS[0])
    proof = TlogProof(leaves[5], 5, tuple(merkle.inclusion_proof(leaves, 5)), note)
    parsed = TlogProof.parse(proof.to_bytes())
    assert parsed == proof
    checkpoint = Checkpoint.from_note(parsed.checkpoint)
    assert merkle.verify_inclusion(
        parsed.extra, parsed.index, checkpoint.size, list(parsed.proof), checkpoint.root
    )
    assert TlogProof.parse(TlogProof(None, 0, (), note).to_bytes()).extra is None


def test_a_tlog_proof_is_refused_if_malformed_or_its_index_is_outside_the_tree() -> None:
    note = signed(checkpoint_text(3), MEMBER_KEYS[0])
    with pytest.raises(NoteError, match="not in a checkpoint"):
        TlogProof(None, 3, (), note)
    body = TlogProof(None, 1, (bytes(32),), note).to_bytes()
    for bad, reason in [
        (body.replace(b"c2sp.org/tlog-proof@v1", b"c2sp.org/tlog-proof@v2"), "first line"),
        (body.replace(b"index 1", b"index 01"), "leading zeros"),
        (body.replace(b"index 1\n", b""), "index"),
        (body.replace(b"\n\n", b"\n"), "blank line"),
        (body.replace(b"index 1\n", b"index 1\n" + b"A" * 44 + b"\n" * 1), "hash"),
        (b"x" * (256 * 1024 + 1), "at most"),
    ]:
        with pytest.raises(NoteError, match=reason):
            TlogProof.parse(bad)


def test_an_add_checkpoint_request_round_trips_with_a_real_consistency_proof() -> None:
    leaves = [b"act %d" % index for index in range(9)]
    note = signed(Checkpoint(ORIGIN, 9, merkle.root(leaves)).text(), *MEMBER_KEYS[:3])
    request = AddCheckpointRequest(4, tuple(merkle.consistency_proof(leaves, 4)), note)
    assert AddCheckpointRequest.parse(request.to_bytes()) == request
    empty = AddCheckpointRequest(0, (), note)
    assert empty.to_bytes().startswith(b"old 0\n\n")
    assert AddCheckpointRequest.parse(empty.to_bytes()) == empty


def test_malformed_add_checkpoint_requests_are_refused() -> None:
    note = signed(checkpoint_text(), MEMBER_KEYS[0])
    body = AddCheckpointRequest(1, (bytes(32),), note).to_bytes()
    too_many = b"old 1\n" + (base64.b64encode(bytes(32)) + b"\n") * (PROOF_HASHES_MAX + 1)
    for bad, reason in [
        (body.replace(b"old 1", b"old  1"), "decimal"),
        (body.replace(b"old 1", b"new 1"), "starts with 'old N'"),
        (too_many + b"\n" + note.to_bytes(), "at most 63"),
        (b"old 1\n" + b"A" * 42 + b"==\n\n" + note.to_bytes(), "not a 32-byte hash"),
        (b"old 1\n", "blank line"),
        (b"old 0\n\n" + b"x" * ADD_CHECKPOINT_BYTES_MAX, "at most"),
    ]:
        with pytest.raises(NoteError, match=reason):
            AddCheckpointRequest.parse(bad)


# --- cross-check with an independent implementation -------------------------------------------


def test_tlog_scales_verifies_our_member_signatures_and_cosignatures() -> None:
    from tlog_scales import signing as their
    from tlog_scales.tlog import Checkpoint as TheirCheckpoint

    text = checkpoint_text(5)
    cosignature = cosign(text, "witness.example/w1", WITNESS_KEY, 1_700_000_123)
    ours = signed(text, MEMBER_KEYS[0]).with_signatures(cosignature)
    theirs = TheirCheckpoint.from_text(ours.to_bytes().decode())
    member = member_vkey(MEMBER_KEYS[0])
    witness = NoteVerifierKey.for_private_key(
        "witness.example/w1", KeyType.COSIGNATURE_V1, WITNESS_KEY
    )
    their_keys = their.VkeySet(
        their.Vkey.from_string(member.vkey), their.Vkey.from_string(witness.vkey)
    )
    assert len(their_keys.verify(theirs.signatures, theirs)) == 2
    assert their.Vkey.from_string(member.vkey).serialize() == member.vkey


def test_we_verify_a_checkpoint_that_tlog_scales_signed() -> None:
    from tlog_scales import signing as their
    from tlog_scales.tlog import Checkpoint as TheirCheckpoint

    leaves = [b"a", b"b", b"c"]
    signer = their.PlainEd25519Signer(ORIGIN, MEMBER_KEYS[2])
    theirs = TheirCheckpoint.make_signed(ORIGIN, 3, merkle.root(leaves), [signer])
    note = Note.parse(theirs.serialize().encode())
    assert verify_note(note, [member_vkey(MEMBER_KEYS[2])]) == (member_vkey(MEMBER_KEYS[2]),)
    assert signer.vkey.serialize() == member_vkey(MEMBER_KEYS[2]).vkey
    assert Checkpoint.from_note(note) == Checkpoint(ORIGIN, 3, merkle.root(leaves))


# --- properties of the codecs -----------------------------------------------------------------

HASHES = st.lists(st.binary(min_size=32, max_size=32), max_size=PROOF_HASHES_MAX).map(tuple)


@given(
    extra=st.none() | st.binary(min_size=1, max_size=200),
    index=st.integers(0, 99),
    proof=HASHES,
    signer_count=st.integers(1, 4),
)
def test_any_tlog_proof_round_trips(
    extra: bytes | None, index: int, proof: tuple[bytes, ...], signer_count: int
) -> None:
    note = signed(Checkpoint(ORIGIN, 100, bytes(32)).text(), *MEMBER_KEYS[:signer_count])
    value = TlogProof(extra, index, proof, note)
    assert TlogProof.parse(value.to_bytes()) == value


@given(old_size=st.integers(0, 2**63 - 1), proof=HASHES)
def test_any_add_checkpoint_request_round_trips(old_size: int, proof: tuple[bytes, ...]) -> None:
    value = AddCheckpointRequest(old_size, proof, signed(checkpoint_text(), MEMBER_KEYS[0]))
    assert AddCheckpointRequest.parse(value.to_bytes()) == value


SOME_BODIES = [
    signed(checkpoint_text(), MEMBER_KEYS[0]).to_bytes(),
    AddCheckpointRequest(1, (bytes(32),), signed(checkpoint_text(), MEMBER_KEYS[0])).to_bytes(),
    TlogProof(b"x", 1, (bytes(32),), signed(checkpoint_text(), MEMBER_KEYS[0])).to_bytes(),
]


@given(
    body=st.sampled_from(SOME_BODIES),
    position=st.integers(0, 10_000),
    junk=st.binary(min_size=0, max_size=8),
    cut=st.booleans(),
)
def test_hostile_bytes_raise_only_note_error(
    body: bytes, position: int, junk: bytes, cut: bool
) -> None:
    position %= len(body)
    mangled = body[:position] + junk + (b"" if cut else body[position + len(junk) :])
    for parse in (Note.parse, AddCheckpointRequest.parse, TlogProof.parse):
        with contextlib.suppress(NoteError):  # anything else fails the test
            parse(mangled)
