"""Ed25519 keys and domain-separated signatures.

Theory of operation
-------------------
sceau signs with Ed25519 (RFC 8032) through ``cryptography``. Every signature covers a
*domain-separated* message::

    message = len(tag) (1 byte) || tag || chain_id (32 bytes) || payload

where ``tag`` names the purpose (see :mod:`ledger.domains`) and ``chain_id`` the consortium.
A signature made for one purpose, or for another consortium, therefore never verifies here.

Every node and every auditor must accept exactly the same signatures, or they could disagree
about a certificate. Ed25519 libraries differ at the edges, so :func:`verify` pins them itself
before handing over to OpenSSL:

* a public key must be 32 bytes, its y coordinate canonical (y < p), and the point not of
  small order (the eight points of order dividing 8, whatever their sign bit);
* a signature must be 64 bytes with a canonical scalar S < L (no malleability);
* then OpenSSL's verification (cofactorless, ``[S]B = R + [k]A`` with R compared by encoding).

Private keys are stored as PKCS#8 PEM, optionally encrypted with a passphrase, written
atomically with mode 0600. Loading a key file that its group or others may read (or write)
logs a WARNING naming the file and its mode (:func:`loose_permissions`): the key still loads,
as refusing would break a node at its next restart, but the operator is told to ``chmod 600``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from ledger import domains

log = logging.getLogger("sceau.keys")

__all__ = [
    "PUBLIC_KEY_BYTES",
    "PUBLIC_KEY_TEXT_PREFIX",
    "SIGNATURE_BYTES",
    "Domain",
    "KeyFileError",
    "PrivateKey",
    "generate_key",
    "is_acceptable_public_key",
    "key_from_seed",
    "load_private_key",
    "loose_permissions",
    "public_key_bytes",
    "public_key_from_text",
    "public_key_to_text",
    "save_private_key",
    "sign",
    "sign_raw",
    "verify",
    "verify_raw",
]

PrivateKey = Ed25519PrivateKey

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
CHAIN_ID_BYTES = 32
PUBLIC_KEY_TEXT_PREFIX = "ed25519:"

_FIELD_PRIME = 2**255 - 19
_GROUP_ORDER = 2**252 + 27742317777372353535851937790883648493

# y coordinates (little-endian, sign bit cleared) of the points whose order divides 8, as in
# libsodium's blocklist: 0 (order 4), 1 (order 1), the two order-8 y values, p-1 (order 2).
# Non-canonical encodings (y >= p) are rejected separately.
_SMALL_ORDER_Y = frozenset(
    bytes.fromhex(value)
    for value in (
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0100000000000000000000000000000000000000000000000000000000000000",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    )
)


class KeyFileError(Exception):
    """A key file that cannot be read, decrypted or written; the message says which and why."""


@dataclass(frozen=True, slots=True)
class Domain:
    """The context of a signature: a purpose tag and the consortium's chain_id."""

    tag: bytes
    chain_id: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.tag, bytes) or not 0 < len(self.tag) <= 64:
            raise ValueError("domain tag must be 1 to 64 bytes")
        if not isinstance(self.chain_id, bytes) or len(self.chain_id) != CHAIN_ID_BYTES:
            raise ValueError(f"chain_id must be {CHAIN_ID_BYTES} bytes")

    @property
    def prefix(self) -> bytes:
        """The bytes that precede every payload signed in this domain."""
        return bytes([len(self.tag)]) + self.tag + self.chain_id

    def message(self, payload: bytes) -> bytes:
        """Return the exact bytes that Ed25519 signs for ``payload`` in this domain."""
        return self.prefix + payload

    @classmethod
    def transaction(cls, chain_id: bytes) -> Domain:
        return cls(domains.TRANSACTION, chain_id)


def generate_key() -> PrivateKey:
    """Return a new random Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def key_from_seed(seed: bytes) -> PrivateKey:
    """The Ed25519 key whose 32-byte RFC 8032 secret is ``seed``.

    For tests, simulations and demos that must rebuild the same keys: such a key is exactly
    as secret as its seed.
    """
    if not isinstance(seed, bytes) or len(seed) != 32:
        raise ValueError("an Ed25519 seed is 32 bytes")
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_key_bytes(key: PrivateKey) -> bytes:
    """Return the raw 32-byte public key of ``key``."""
    return key.public_key().public_bytes(
        encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
    )


def public_key_to_text(public_key: bytes) -> str:
    """Return the readable form ``ed25519:<base64url without padding>`` of a raw public key."""
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_BYTES:
        raise ValueError(f"a public key is {PUBLIC_KEY_BYTES} bytes")
    return PUBLIC_KEY_TEXT_PREFIX + base64.urlsafe_b64encode(public_key).rstrip(b"=").decode()


def public_key_from_text(text: str) -> bytes:
    """Parse ``ed25519:<base64url>`` back to 32 raw bytes; raises ValueError on bad input."""
    if not isinstance(text, str) or not text.startswith(PUBLIC_KEY_TEXT_PREFIX):
        raise ValueError(f"a public key's text form starts with {PUBLIC_KEY_TEXT_PREFIX!r}")
    body = text[len(PUBLIC_KEY_TEXT_PREFIX) :]
    if len(body) != 43 or not all(c.isalnum() or c in "-_" for c in body):
        raise ValueError("a public key's text form has 43 base64url characters after the prefix")
    try:
        raw = base64.urlsafe_b64decode(body + "=")
    except (binascii.Error, ValueError):
        raise ValueError("public key is not valid base64url") from None
    if public_key_to_text(raw) != text:
        raise ValueError("public key text is not in canonical base64url form")
    return raw


def sign(key: PrivateKey, domain: Domain, payload: bytes) -> bytes:
    """Return the 64-byte Ed25519 signature of ``payload`` in ``domain``."""
    return key.sign(domain.message(payload))


def is_acceptable_public_key(public_key: object) -> bool:
    """True if ``public_key`` is 32 bytes, canonically encoded and not of small order."""
    if not isinstance(public_key, bytes) or len(public_key) != PUBLIC_KEY_BYTES:
        return False
    y_bytes = public_key[:31] + bytes([public_key[31] & 0x7F])
    if int.from_bytes(y_bytes, "little") >= _FIELD_PRIME:
        return False
    return y_bytes not in _SMALL_ORDER_Y


def verify(public_key: bytes, domain: Domain, payload: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s signature of ``payload`` in ``domain``.

    Never raises on hostile input: anything malformed is simply not a valid signature.
    """
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        return False
    if not isinstance(payload, bytes) or not isinstance(domain, Domain):
        return False
    return verify_raw(public_key, domain.message(payload), signature)


def sign_raw(key: PrivateKey, message: bytes) -> bytes:
    """Return the 64-byte Ed25519 signature of ``message`` exactly as given, with no domain.

    Only for formats fixed elsewhere that carry their own framing (C2SP signed notes and
    cosignatures, :mod:`ledger.note`); every sceau message goes through :func:`sign`. A raw
    message cannot pass for a domain-separated one when it never starts with a byte below
    0x20 other than a newline, as a signed note's text never does (docs/format.md).
    """
    assert isinstance(message, bytes)
    return key.sign(message)


def verify_raw(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s Ed25519 signature of ``message`` as given.

    The same strict rules as :func:`verify` (canonical, not small-order key; canonical S).
    Never raises on hostile input.
    """
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_BYTES:
        return False
    if not isinstance(message, bytes):
        return False
    if int.from_bytes(signature[32:], "little") >= _GROUP_ORDER:
        return False
    if not is_acceptable_public_key(public_key):
        return False
    return _verify_once(public_key, message, signature)


@lru_cache(maxsize=65_536)
def _verify_once(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 verification, remembered: a vote broadcast to every replica, or a transaction
    seen by the mempool and again in a block, is verified once per process. The result is a
    pure function of the three byte strings, so remembering it changes nothing else."""
    loaded = _load_public_key(public_key)
    if loaded is None:
        return False
    try:
        loaded.verify(signature, message)
    except InvalidSignature:
        return False
    return True


@lru_cache(maxsize=4096)
def _load_public_key(public_key: bytes) -> Ed25519PublicKey | None:
    try:
        return Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError:
        return None


def save_private_key(
    key: PrivateKey,
    path: str | os.PathLike,
    *,
    passphrase: bytes | None = None,
    overwrite: bool = False,
) -> None:
    """Write ``key`` as PKCS#8 PEM at ``path`` with mode 0600, atomically and durably.

    With ``passphrase`` the PEM is encrypted. Refuses to replace an existing file unless
    ``overwrite``. Raises :class:`KeyFileError`.
    """
    target = Path(path)
    if target.exists() and not overwrite:
        raise KeyFileError(f"{target} already exists; refusing to overwrite a key")
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.PKCS8,
        encryption_algorithm=encryption,
    )
    directory = target.parent if str(target.parent) else Path(".")
    try:
        descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=".key-", suffix=".tmp")
        try:
            os.fchmod(descriptor, 0o600)
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        directory_descriptor = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(directory_descriptor)
        finally:
            os.close(directory_descriptor)
    except OSError as error:
        raise KeyFileError(f"cannot write key file {target}: {error.strerror}") from None


SECRET_FILE_MODE_MASK = 0o077
"""Permission bits a secret file (key, passphrase, token) must not have: any for group or
others."""


def loose_permissions(path: str | os.PathLike, what: str = "key file") -> str | None:
    """A warning if the file at ``path`` is open to its group or others, else None.

    The sentence names the file, its mode and the fix. None too where the mode cannot be
    read (the read that follows reports a missing file) or means nothing (Windows).
    """
    if os.name != "posix":
        return None
    try:
        mode = stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None
    if not mode & SECRET_FILE_MODE_MASK:
        return None
    return (
        f"{what} {path} has mode {mode:04o}: its group or other users may read it "
        f"(run: chmod 600 {path})"
    )


def load_private_key(path: str | os.PathLike, *, passphrase: bytes | None = None) -> PrivateKey:
    """Read an Ed25519 PKCS#8 PEM key from ``path``. Raises :class:`KeyFileError`.

    Logs a WARNING (logger ``sceau.keys``) if the key loads from a file open to group or
    others.
    """
    target = Path(path)
    try:
        pem = target.read_bytes()
    except OSError as error:
        raise KeyFileError(f"cannot read key file {target}: {error.strerror}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=passphrase or None)
    except TypeError as error:
        if "encrypted" in str(error) and not passphrase:
            raise KeyFileError(f"{target} is encrypted: a passphrase is needed") from None
        raise KeyFileError(f"{target}: {error}") from None
    except ValueError:
        reason = (
            "wrong passphrase or not a PEM private key" if passphrase else ("not a PEM private key")
        )
        raise KeyFileError(f"cannot load {target}: {reason}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{target} holds a {type(key).__name__}, not an Ed25519 key")
    warning = loose_permissions(target)
    if warning is not None:
        log.warning("%s", warning)
    return key
