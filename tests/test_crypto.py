"""Specification of keys and signatures (ledger.crypto).

Ed25519 itself is checked against RFC 8032 section 7.1. The edges that implementations disagree
on (small-order keys, non-canonical encodings, S >= L) are checked against this file's own,
deliberately textbook Edwards25519 arithmetic, so that the blocklist in ledger.crypto is not
merely compared with itself.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import private_keys, seeds

from ledger import crypto, domains
from ledger.crypto import Domain, KeyFileError

CHAIN_A = hashlib.sha256(b"consortium A").digest()
CHAIN_B = hashlib.sha256(b"consortium B").digest()

# --- textbook Edwards25519 (RFC 8032 section 5.1), for the tests only ----------------------------

P = 2**255 - 19
L = 2**252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)
IDENTITY = (0, 1, 1, 0)
"""Points are in extended coordinates (X, Y, Z, T): x = X/Z, y = Y/Z, x*y = T/Z."""


def point_add(p: tuple, q: tuple) -> tuple:
    a = (p[1] - p[0]) * (q[1] - q[0]) % P
    b = (p[1] + p[0]) * (q[1] + q[0]) % P
    c = 2 * p[3] * q[3] * D % P
    d = 2 * p[2] * q[2] % P
    e, f, g, h = b - a, d - c, d + c, b + a
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def point_multiply(scalar: int, point: tuple) -> tuple:
    result = IDENTITY
    while scalar > 0:
        if scalar & 1:
            result = point_add(result, point)
        point = point_add(point, point)
        scalar >>= 1
    return result


def point_equal(p: tuple, q: tuple) -> bool:
    return (p[0] * q[2] - q[0] * p[2]) % P == 0 and (p[1] * q[2] - q[1] * p[2]) % P == 0


def recover_x(y: int, sign: int) -> int | None:
    if y >= P:
        return None
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    if x2 == 0:
        return None if sign else 0
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x & 1 != sign:
        x = P - x
    return x


def decompress(encoding: bytes, *, lenient: bool = False) -> tuple | None:
    """RFC 8032 decoding; ``lenient`` also takes y >= p modulo p and "x = 0 with the sign bit
    set" as x = 0, as some libraries do — the encodings a blocklist must catch."""
    number = int.from_bytes(encoding, "little")
    y, sign = number & (2**255 - 1), number >> 255
    if lenient:
        y %= P
    x = recover_x(y, sign)
    if x is None and lenient:
        x = recover_x(y, 0)
        if x != 0:
            return None
    if x is None:
        return None
    return (x, y, 1, x * y % P)


def compress(point: tuple) -> bytes:
    z_inverse = pow(point[2], P - 2, P)
    x, y = point[0] * z_inverse % P, point[1] * z_inverse % P
    return (y | (x & 1) << 255).to_bytes(32, "little")


BASE = decompress((4 * pow(5, P - 2, P) % P).to_bytes(32, "little"))


def has_small_order(encoding: bytes) -> bool:
    point = decompress(encoding, lenient=True)
    assert point is not None, f"{encoding.hex()} is not a point at all"
    return point_equal(point_multiply(8, point), IDENTITY)


def secret_scalar(seed: bytes) -> int:
    digest = bytearray(hashlib.sha512(seed).digest()[:32])
    digest[0] &= 248
    digest[31] &= 127
    digest[31] |= 64
    return int.from_bytes(digest, "little")


def satisfies_verification_equation(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Cofactorless Ed25519 verification, [S]B = R + [k]A, with no check on S or A."""
    a, r = decompress(public_key, lenient=True), decompress(signature[:32])
    if a is None or r is None:
        return False
    k = int.from_bytes(hashlib.sha512(signature[:32] + public_key + message).digest(), "little")
    s = int.from_bytes(signature[32:], "little")
    return point_equal(point_multiply(s, BASE), point_add(r, point_multiply(k % L, a)))


def torsion_points() -> list[bytes]:
    """The encodings of the eight points of order dividing 8, found from scratch."""
    for counter in range(1000):
        y = int.from_bytes(hashlib.sha256(counter.to_bytes(4, "big")).digest(), "little") % P
        x = recover_x(y, 0)
        if x is None:
            continue
        torsion = point_multiply(L, (x, y, 1, x * y % P))
        if not point_equal(point_multiply(4, torsion), IDENTITY):  # order exactly 8
            return [compress(point_multiply(k, torsion)) for k in range(8)]
    raise AssertionError("no point with a torsion component of order 8 found")


TORSION = torsion_points()


def with_sign_bit(encoding: bytes, sign: int) -> bytes:
    return encoding[:31] + bytes([encoding[31] & 0x7F | sign << 7])


def test_textbook_arithmetic_of_this_file_derives_the_rfc_public_keys():
    for vector in RFC8032_VECTORS:
        public = compress(point_multiply(secret_scalar(vector.secret), BASE))
        assert public == vector.public


# --- RFC 8032 section 7.1 ------------------------------------------------------------------------


class Vector:
    def __init__(self, name: str, secret: str, public: str, message: str, signature: str):
        self.name = name
        self.secret = bytes.fromhex(secret)
        self.public = bytes.fromhex(public)
        self.message = bytes.fromhex(message)
        self.signature = bytes.fromhex(signature)


TEST_1024_MESSAGE = (
    "08b8b2b733424243760fe426a4b54908632110a66c2f6591eabd3345e3e4eb98fa6e264bf09efe12ee50f8f54e9f"
    "77b1e355f6c50544e23fb1433ddf73be84d879de7c0046dc4996d9e773f4bc9efe5738829adb26c81b37c93a1b27"
    "0b20329d658675fc6ea534e0810a4432826bf58c941efb65d57a338bbd2e26640f89ffbc1a858efcb8550ee3a5e1"
    "998bd177e93a7363c344fe6b199ee5d02e82d522c4feba15452f80288a821a579116ec6dad2b3b310da903401aa6"
    "2100ab5d1a36553e06203b33890cc9b832f79ef80560ccb9a39ce767967ed628c6ad573cb116dbefefd75499da96"
    "bd68a8a97b928a8bbc103b6621fcde2beca1231d206be6cd9ec7aff6f6c94fcd7204ed3455c68c83f4a41da4af2b"
    "74ef5c53f1d8ac70bdcb7ed185ce81bd84359d44254d95629e9855a94a7c1958d1f8ada5d0532ed8a5aa3fb2d17b"
    "a70eb6248e594e1a2297acbbb39d502f1a8c6eb6f1ce22b3de1a1f40cc24554119a831a9aad6079cad88425de6bd"
    "e1a9187ebb6092cf67bf2b13fd65f27088d78b7e883c8759d2c4f5c65adb7553878ad575f9fad878e80a0c9ba63b"
    "cbcc2732e69485bbc9c90bfbd62481d9089beccf80cfe2df16a2cf65bd92dd597b0707e0917af48bbb75fed413d2"
    "38f5555a7a569d80c3414a8d0859dc65a46128bab27af87a71314f318c782b23ebfe808b82b0ce26401d2e22f04d"
    "83d1255dc51addd3b75a2b1ae0784504df543af8969be3ea7082ff7fc9888c144da2af58429ec96031dbcad3dad9"
    "af0dcbaaaf268cb8fcffead94f3c7ca495e056a9b47acdb751fb73e666c6c655ade8297297d07ad1ba5e43f1bca3"
    "2301651339e22904cc8c42f58c30c04aafdb038dda0847dd988dcda6f3bfd15c4b4c4525004aa06eeff8ca61783a"
    "acec57fb3d1f92b0fe2fd1a85f6724517b65e614ad6808d6f6ee34dff7310fdc82aebfd904b01e1dc54b2927094b"
    "2db68d6f903b68401adebf5a7e08d78ff4ef5d63653a65040cf9bfd4aca7984a74d37145986780fc0b16ac451649"
    "de6188a7dbdf191f64b5fc5e2ab47b57f7f7276cd419c17a3ca8e1b939ae49e488acba6b965610b5480109c8b17b"
    "80e1b7b750dfc7598d5d5011fd2dcc5600a32ef5b52a1ecc820e308aa342721aac0943bf6686b64b2579376504cc"
    "c493d97e6aed3fb0f9cd71a43dd497f01f17c0e2cb3797aa2a2f256656168e6c496afc5fb93246f6b1116398a346"
    "f1a641f3b041e989f7914f90cc2c7fff357876e506b50d334ba77c225bc307ba537152f3f1610e4eafe595f6d9d9"
    "0d11faa933a15ef1369546868a7f3a45a96768d40fd9d03412c091c6315cf4fde7cb68606937380db2eaaa707b4c"
    "4185c32eddcdd306705e4dc1ffc872eeee475a64dfac86aba41c0618983f8741c5ef68d3a101e8a3b8cac60c905c"
    "15fc910840b94c00a0b9d0"
)

RFC8032_VECTORS = [
    Vector(
        "TEST 1",
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701"
        "cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    Vector(
        "TEST 2",
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d"
        "0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    Vector(
        "TEST 3",
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f7609"
        "84dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
    Vector(
        "TEST 1024",
        "f5e5767cf153319517630f226876b86c8160cc583bc013744c6bf255f5cc0ee5",
        "278117fc144c72340f67d0f2316e8386ceffbf2b2428c9c51fef7c597f1d426e",
        TEST_1024_MESSAGE,
        "0aab4c900501b3e24d7cdf4663326a3a87df5e4843b2cbdb67cbf6e460fec350aa5371b1508f9f4528ecea23c"
        "436d94b5e8fcd4f681e30a6ac00a9704a188a03",
    ),
    Vector(
        "TEST SHA(abc)",
        "833fe62409237b9d62ec77587520911e9a759cec1d19755b7da901b96dca3d42",
        "ec172b93ad5e563bf4932c70e1245034c35467ef2efd4d64ebf819683467e2bf",
        hashlib.sha512(b"abc").hexdigest(),
        "dc2a4459e7369633a52b1bf277839a00201009a3efbf3ecb69bea2186c26b58909351fc9ac90b3ecfdfbc7c66"
        "431e0303dca179c138ac17ad9bef1177331a704",
    ),
]


def raw_verify(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Verify a signature over a raw message (no domain) with ledger.crypto's pinned checks."""
    if not crypto.is_acceptable_public_key(public_key) or len(signature) != 64:
        return False
    if int.from_bytes(signature[32:], "little") >= L:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
    except InvalidSignature:
        return False
    return True


@pytest.mark.parametrize("vector", RFC8032_VECTORS, ids=lambda vector: vector.name)
def test_rfc8032_vector_signs_and_verifies(vector: Vector):
    key = Ed25519PrivateKey.from_private_bytes(vector.secret)
    assert crypto.public_key_bytes(key) == vector.public
    assert key.sign(vector.message) == vector.signature
    assert crypto.is_acceptable_public_key(vector.public)
    assert raw_verify(vector.public, vector.message, vector.signature)
    assert satisfies_verification_equation(vector.public, vector.message, vector.signature)
    assert not raw_verify(vector.public, vector.message + b"\x00", vector.signature)


def test_rfc8032_messages_have_their_published_lengths():
    assert [len(vector.message) for vector in RFC8032_VECTORS] == [0, 1, 2, 1023, 64]


@pytest.mark.parametrize("vector", RFC8032_VECTORS, ids=lambda vector: vector.name)
def test_rfc8032_keys_sign_and_verify_in_a_domain(vector: Vector):
    key = Ed25519PrivateKey.from_private_bytes(vector.secret)
    domain = Domain(domains.TRANSACTION, CHAIN_A)
    signature = crypto.sign(key, domain, vector.message)
    assert signature == key.sign(domain.message(vector.message))
    assert crypto.verify(vector.public, domain, vector.message, signature)
    # The raw RFC signature is over the bare message: it is valid in no domain.
    assert not crypto.verify(vector.public, domain, vector.message, vector.signature)


# --- domain separation ---------------------------------------------------------------------------


def test_domain_message_is_length_tag_chain_id_then_payload():
    domain = Domain(b"sceau/test/v1", CHAIN_A)
    assert domain.message(b"payload") == b"\x0dsceau/test/v1" + CHAIN_A + b"payload"
    assert Domain.transaction(CHAIN_A) == Domain(domains.TRANSACTION, CHAIN_A)


tags = st.sampled_from(domains.ALL_TAGS)
chain_ids = st.binary(min_size=32, max_size=32)


@settings(max_examples=40, deadline=None)
@given(
    private_keys, tags, tags, chain_ids, chain_ids, st.binary(max_size=64), st.binary(max_size=64)
)
def test_a_signature_verifies_only_for_its_own_tag_chain_and_payload(
    key: Ed25519PrivateKey,
    tag: bytes,
    other_tag: bytes,
    chain_id: bytes,
    other_chain_id: bytes,
    payload: bytes,
    other_payload: bytes,
):
    public_key = crypto.public_key_bytes(key)
    signature = crypto.sign(key, Domain(tag, chain_id), payload)
    assert crypto.verify(public_key, Domain(tag, chain_id), payload, signature)
    if other_tag != tag:
        assert not crypto.verify(public_key, Domain(other_tag, chain_id), payload, signature)
    if other_chain_id != chain_id:
        assert not crypto.verify(public_key, Domain(tag, other_chain_id), payload, signature)
    if other_payload != payload:
        assert not crypto.verify(public_key, Domain(tag, chain_id), other_payload, signature)


def test_a_signature_does_not_verify_under_another_key():
    key, other = (Ed25519PrivateKey.from_private_bytes(bytes([n]) * 32) for n in (1, 2))
    signature = crypto.sign(key, Domain.transaction(CHAIN_A), b"payload")
    assert not crypto.verify(
        crypto.public_key_bytes(other), Domain.transaction(CHAIN_A), b"payload", signature
    )


def test_the_tag_length_prefix_keeps_tag_and_chain_id_apart():
    # Without the length byte, the last byte of one tag could be the first of a chain_id.
    long_tag, long_payload = Domain(b"sceau/x/v1!", CHAIN_B), b"payload"
    short_tag, short_payload = Domain(b"sceau/x/v1", b"!" + CHAIN_B[:31]), CHAIN_B[31:] + b"payload"
    assert long_tag.message(long_payload)[1:] == short_tag.message(short_payload)[1:]
    assert long_tag.message(long_payload) != short_tag.message(short_payload)
    signature = crypto.sign(KEY, long_tag, long_payload)
    assert crypto.verify(PUBLIC_KEY, long_tag, long_payload, signature)
    assert not crypto.verify(PUBLIC_KEY, short_tag, short_payload, signature)


@pytest.mark.parametrize(
    ("tag", "chain_id"),
    [
        (b"", CHAIN_A),
        (b"x" * 65, CHAIN_A),
        ("sceau/tx/v1", CHAIN_A),
        (None, CHAIN_A),
        (bytearray(b"sceau/tx/v1"), CHAIN_A),
        (domains.TRANSACTION, CHAIN_A[:31]),
        (domains.TRANSACTION, CHAIN_A + b"\x00"),
        (domains.TRANSACTION, b""),
        (domains.TRANSACTION, CHAIN_A.hex()),
        (domains.TRANSACTION, None),
    ],
)
def test_domain_rejects_bad_tags_and_chain_ids(tag: Any, chain_id: Any):
    with pytest.raises(ValueError):
        Domain(tag, chain_id)


def test_domain_accepts_tags_of_one_to_sixty_four_bytes():
    assert Domain(b"x", CHAIN_A).prefix == b"\x01x" + CHAIN_A
    assert Domain(b"x" * 64, CHAIN_A).prefix == b"\x40" + b"x" * 64 + CHAIN_A


# --- pinned edge cases ---------------------------------------------------------------------------

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC_KEY = crypto.public_key_bytes(KEY)
DOMAIN = Domain(domains.COMMIT, CHAIN_A)
SIGNATURE = crypto.sign(KEY, DOMAIN, b"payload")


def with_scalar(signature: bytes, scalar: int) -> bytes:
    return signature[:32] + scalar.to_bytes(32, "little")


def test_the_pinned_signature_verifies():
    assert crypto.verify(PUBLIC_KEY, DOMAIN, b"payload", SIGNATURE)


@pytest.mark.parametrize("length", [0, 1, 31, 33, 64])
def test_a_public_key_of_the_wrong_length_is_refused(length: int):
    public_key = (PUBLIC_KEY * 2)[:length]
    assert not crypto.is_acceptable_public_key(public_key)
    assert not crypto.verify(public_key, DOMAIN, b"payload", SIGNATURE)


@pytest.mark.parametrize("length", [0, 1, 63, 65, 128])
def test_a_signature_of_the_wrong_length_is_refused(length: int):
    signature = (SIGNATURE * 2)[:length]
    assert not crypto.verify(PUBLIC_KEY, DOMAIN, b"payload", signature)


def test_a_signature_with_s_plus_l_is_refused_though_the_equation_holds():
    scalar = int.from_bytes(SIGNATURE[32:], "little")
    malleated = with_scalar(SIGNATURE, scalar + L)
    # [S + L]B = [S]B: without the S < L check this second signature would be accepted.
    assert satisfies_verification_equation(PUBLIC_KEY, DOMAIN.message(b"payload"), malleated)
    assert not crypto.verify(PUBLIC_KEY, DOMAIN, b"payload", malleated)


@pytest.mark.parametrize(
    ("scalar", "reaches_the_curve_check"),
    [(L - 1, True), (L, False), (L + 1, False), (2**256 - 1, False)],
    ids=["L-1", "L", "L+1", "2**256-1"],
)
def test_the_scalar_check_draws_the_line_exactly_at_l(
    scalar: int, reaches_the_curve_check: bool, monkeypatch: pytest.MonkeyPatch
):
    reached: list[bytes] = []
    load = crypto._load_public_key

    def spy(public_key: bytes) -> Any:
        reached.append(public_key)
        return load(public_key)

    monkeypatch.setattr(crypto, "_load_public_key", spy)
    assert not crypto.verify(PUBLIC_KEY, DOMAIN, b"payload", with_scalar(SIGNATURE, scalar))
    assert bool(reached) == reaches_the_curve_check


def test_torsion_points_found_from_scratch_are_eight_distinct_small_order_points():
    assert len(set(TORSION)) == 8
    assert all(has_small_order(encoding) for encoding in TORSION)
    assert TORSION[0] == compress(IDENTITY)


@pytest.mark.parametrize("sign", [0, 1])
@pytest.mark.parametrize("index", range(8))
def test_small_order_public_keys_are_refused_with_either_sign_bit(index: int, sign: int):
    public_key = with_sign_bit(TORSION[index], sign)
    assert not crypto.is_acceptable_public_key(public_key)
    assert not crypto.verify(public_key, DOMAIN, b"payload", SIGNATURE)


def test_the_blocklist_is_exactly_the_small_order_y_coordinates():
    blocklist = crypto._SMALL_ORDER_Y
    assert blocklist == {with_sign_bit(encoding, 0) for encoding in TORSION}
    for encoding in blocklist:
        for sign in (0, 1):
            assert has_small_order(with_sign_bit(encoding, sign))


NON_CANONICAL_Y = [P + offset for offset in range(19)]
"""Every y >= p that fits in 255 bits: p (read as 0), p + 1 (read as 1), …, 2**255 - 1."""


@pytest.mark.parametrize("sign", [0, 1])
@pytest.mark.parametrize("y", NON_CANONICAL_Y, ids=lambda y: f"p+{y - P}")
def test_non_canonical_encodings_are_refused(y: int, sign: int):
    public_key = with_sign_bit(y.to_bytes(32, "little"), sign)
    assert not crypto.is_acceptable_public_key(public_key)
    assert not crypto.verify(public_key, DOMAIN, b"payload", SIGNATURE)


def test_the_non_canonical_aliases_of_small_order_points_have_small_order():
    assert NON_CANONICAL_Y[-1] == 2**255 - 1
    for alias in (P, P + 1):
        assert has_small_order(alias.to_bytes(32, "little"))


def test_the_identity_key_would_accept_a_universal_forgery_but_is_refused():
    identity = compress(IDENTITY)
    s = 123456789
    forged = compress(point_multiply(s, BASE)) + s.to_bytes(32, "little")
    for payload in (b"anything", b"at all"):
        message = DOMAIN.message(payload)
        assert satisfies_verification_equation(identity, message, forged)
        assert not crypto.verify(identity, DOMAIN, payload, forged)


@settings(max_examples=10, deadline=None)
@given(private_keys)
def test_a_generated_public_key_is_acceptable_and_of_prime_order(key: Ed25519PrivateKey):
    public_key = crypto.public_key_bytes(key)
    point = decompress(public_key)
    assert point is not None
    assert not has_small_order(public_key)
    assert point_equal(point_multiply(L, point), IDENTITY)
    assert crypto.is_acceptable_public_key(public_key)


def test_a_public_key_that_is_not_on_the_curve_never_verifies():
    off_curve = next(y.to_bytes(32, "little") for y in range(2, 100) if recover_x(y, 0) is None)
    assert not crypto.verify(off_curve, DOMAIN, b"payload", SIGNATURE)


garbage = st.one_of(
    st.none(),
    st.integers(),
    st.text(max_size=70),
    st.binary(max_size=70),
    st.binary(min_size=32, max_size=32),
    st.binary(min_size=64, max_size=64),
    st.builds(bytearray, st.binary(min_size=32, max_size=64)),
    st.lists(st.integers(0, 255), max_size=64),
    st.just(PUBLIC_KEY),
    st.just(SIGNATURE),
)


@settings(max_examples=300, deadline=None)
@given(garbage, st.one_of(garbage, st.just(DOMAIN)), garbage, garbage)
def test_verify_never_raises_on_garbage(public_key: Any, domain: Any, payload: Any, signature: Any):
    assert crypto.verify(public_key, domain, payload, signature) in (True, False)
    assert crypto.is_acceptable_public_key(public_key) in (True, False)


# --- key files -----------------------------------------------------------------------------------


def test_a_saved_key_loads_back_identical(tmp_path: Path):
    path = tmp_path / "node.pem"
    crypto.save_private_key(KEY, path)
    loaded = crypto.load_private_key(path)
    assert crypto.public_key_bytes(loaded) == PUBLIC_KEY
    assert crypto.sign(loaded, DOMAIN, b"payload") == SIGNATURE
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_a_key_file_is_private_to_its_owner_whatever_the_umask(tmp_path: Path):
    previous = os.umask(0)
    try:
        crypto.save_private_key(KEY, tmp_path / "node.pem")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "node.pem").stat().st_mode) == 0o600


def test_saving_leaves_no_temporary_file_behind(tmp_path: Path):
    crypto.save_private_key(KEY, tmp_path / "node.pem")
    assert [path.name for path in tmp_path.iterdir()] == ["node.pem"]


def test_an_encrypted_key_loads_back_with_its_passphrase(tmp_path: Path):
    path = tmp_path / "node.pem"
    crypto.save_private_key(KEY, path, passphrase=b"correct horse")
    assert path.read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    loaded = crypto.load_private_key(path, passphrase=b"correct horse")
    assert crypto.public_key_bytes(loaded) == PUBLIC_KEY


def test_a_wrong_passphrase_is_a_key_file_error(tmp_path: Path):
    path = tmp_path / "node.pem"
    crypto.save_private_key(KEY, path, passphrase=b"correct horse")
    with pytest.raises(KeyFileError, match="wrong passphrase"):
        crypto.load_private_key(path, passphrase=b"battery staple")


def test_a_missing_passphrase_is_a_key_file_error(tmp_path: Path):
    path = tmp_path / "node.pem"
    crypto.save_private_key(KEY, path, passphrase=b"correct horse")
    with pytest.raises(KeyFileError, match="passphrase is needed"):
        crypto.load_private_key(path)


def test_a_passphrase_for_a_plain_key_is_a_key_file_error(tmp_path: Path):
    path = tmp_path / "node.pem"
    crypto.save_private_key(KEY, path)
    with pytest.raises(KeyFileError, match="not encrypted"):
        crypto.load_private_key(path, passphrase=b"correct horse")


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"not a key at all",
        b"\x00\xff" * 40,
        b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    ],
    ids=["empty", "text", "binary", "truncated PEM"],
)
def test_a_corrupt_key_file_is_a_key_file_error(tmp_path: Path, content: bytes):
    path = tmp_path / "node.pem"
    path.write_bytes(content)
    with pytest.raises(KeyFileError, match="not a PEM private key"):
        crypto.load_private_key(path)


def test_a_half_written_key_file_is_a_key_file_error(tmp_path: Path):
    path = tmp_path / "node.pem"
    crypto.save_private_key(KEY, path)
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(KeyFileError):
        crypto.load_private_key(path)


def test_a_missing_key_file_is_a_key_file_error(tmp_path: Path):
    with pytest.raises(KeyFileError, match="cannot read"):
        crypto.load_private_key(tmp_path / "absent.pem")


@pytest.mark.parametrize(
    ("make_key", "type_name"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048), "RSA"),
        (lambda: ec.generate_private_key(ec.SECP256R1()), "EC"),
    ],
    ids=["RSA", "EC P-256"],
)
def test_a_key_file_of_another_algorithm_is_a_key_file_error(
    tmp_path: Path, make_key: Any, type_name: str
):
    path = tmp_path / "other.pem"
    path.write_bytes(
        make_key().private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(KeyFileError, match=f"{type_name}.*not an Ed25519 key"):
        crypto.load_private_key(path)


def test_saving_refuses_to_overwrite_a_key_unless_told(tmp_path: Path):
    path = tmp_path / "node.pem"
    crypto.save_private_key(KEY, path)
    other = Ed25519PrivateKey.from_private_bytes(bytes(32))
    with pytest.raises(KeyFileError, match="already exists"):
        crypto.save_private_key(other, path)
    assert crypto.public_key_bytes(crypto.load_private_key(path)) == PUBLIC_KEY
    crypto.save_private_key(other, path, overwrite=True)
    loaded = crypto.load_private_key(path)
    assert crypto.public_key_bytes(loaded) == crypto.public_key_bytes(other)


def test_saving_into_a_missing_directory_is_a_key_file_error(tmp_path: Path):
    with pytest.raises(KeyFileError, match="cannot write"):
        crypto.save_private_key(KEY, tmp_path / "absent" / "node.pem")


# --- text form of public keys --------------------------------------------------------------------


@given(st.binary(min_size=32, max_size=32))
def test_public_key_text_form_round_trips(public_key: bytes):
    text = crypto.public_key_to_text(public_key)
    assert text.startswith("ed25519:")
    assert len(text) == len("ed25519:") + 43
    assert crypto.public_key_from_text(text) == public_key


def test_public_key_text_form_is_unpadded_base64url():
    assert crypto.public_key_to_text(bytes(32)) == "ed25519:" + "A" * 43
    # 256 bits make 42 full characters and 4 bits (plus 2 zero bits) in the 43rd.
    assert crypto.public_key_to_text(b"\xff" * 32) == "ed25519:" + "_" * 42 + "8"
    assert crypto.public_key_to_text(b"\xfb" * 32) == "ed25519:" + "-_v7" * 10 + "-_s"


ZEROS = "A" * 43


@pytest.mark.parametrize(
    "text",
    [
        "",
        ZEROS,
        "ED25519:" + ZEROS,
        "ed25519" + ZEROS,
        "ed25519:" + ZEROS[:-1],
        "ed25519:" + ZEROS + "A",
        "ed25519:" + ZEROS + "=",
        "ed25519:" + ZEROS[:-1] + "B",  # stray bits past the 256th: a second spelling
        "ed25519:" + "+" * 43,
        "ed25519:" + "/" * 43,
        "ed25519:" + ZEROS[:-1] + "é",
        "ed25519:" + ZEROS[:-1] + "٣",  # an Arabic-Indic digit: alphanumeric, not base64
        "ed25519:" + ZEROS[:-1] + " ",
        " ed25519:" + ZEROS,
        "ed25519:" + ZEROS + "\n",
    ],
)
def test_malformed_public_key_text_is_refused(text: str):
    with pytest.raises(ValueError):
        crypto.public_key_from_text(text)


@pytest.mark.parametrize("value", [b"ed25519:" + b"A" * 43, None, 7])
def test_public_key_from_text_wants_text(value: Any):
    with pytest.raises(ValueError):
        crypto.public_key_from_text(value)


@pytest.mark.parametrize("value", [b"", bytes(31), bytes(33), bytearray(32), "x" * 32, None])
def test_public_key_to_text_wants_32_bytes(value: Any):
    with pytest.raises(ValueError):
        crypto.public_key_to_text(value)


@settings(max_examples=20, deadline=None)
@given(seeds)
def test_generated_and_derived_keys_have_32_byte_public_keys(seed: bytes):
    assert len(crypto.public_key_bytes(Ed25519PrivateKey.from_private_bytes(seed))) == 32
    assert crypto.is_acceptable_public_key(crypto.public_key_bytes(crypto.generate_key()))


def test_a_key_from_a_seed_is_the_rfc8032_key_of_that_secret():
    vector = RFC8032_VECTORS[0]
    assert crypto.public_key_bytes(crypto.key_from_seed(vector.secret)) == vector.public
    for seed in (vector.secret[:31], vector.secret + b"\x00", vector.secret.hex(), None):
        with pytest.raises(ValueError):
            crypto.key_from_seed(seed)
