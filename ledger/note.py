"""C2SP signed notes, checkpoints, cosignatures, tlog-proofs and add-checkpoint requests.

Theory of operation
-------------------
The transparency-log world (Go's checksum database, Sigstore, sigsum, the public witness
network) exchanges tree heads as *signed notes* (c2sp.org/signed-note): a UTF-8 text ending in
a newline, a blank line, then one line per signature, ``— <key name> base64(key id || sig)``.
A verifier knows keys by (name, key id); it ignores the signatures of keys it does not know
and rejects a note whose known signature fails, or that no known key signed.

On top of notes:

* a **checkpoint** (c2sp.org/tlog-checkpoint) is a note whose text is the log's origin, its
  size in decimal and its RFC 6962 root in base64, one per line, maybe followed by extension
  lines. sceau's log of every act has the origin :func:`origin_for` (chain_id) and its
  checkpoints are signed by the members with their member Ed25519 key as note signatures of
  type 0x01 named after the origin (:func:`sign_note`);
* a **cosignature** (c2sp.org/tlog-cosignature, Ed25519 ``cosignature/v1``, type 0x04) is a
  witness's timestamped signature of ``cosignature/v1\\ntime <t>\\n`` followed by the
  checkpoint text (:func:`cosign`);
* a **tlog-proof** (c2sp.org/tlog-proof) is an inclusion proof of one entry with the
  checkpoint it leads to (:class:`TlogProof`);
* an **add-checkpoint request** (c2sp.org/tlog-witness) is what a log sends a witness: the
  size the witness last cosigned, a consistency proof from it, and the new checkpoint
  (:class:`AddCheckpointRequest`).

Everything here is pure (no clock, file or socket: a cosignature's time is an argument) and
every parser is bounded before it works: :data:`NOTE_BYTES_MAX` bytes and
:data:`NOTE_SIGNATURES_MAX` signatures per note, :data:`PROOF_HASHES_MAX` hashes per proof.
Hostile input raises :class:`NoteError` with a sentence that says what is wrong; a failed
``assert`` is our own bug. Base64 is the standard alphabet with padding, and only its
canonical form is accepted, so that every value has one spelling. Ed25519 goes through
:func:`ledger.crypto.verify_raw`, which applies the project's strict key and signature rules.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ledger import crypto

__all__ = [
    "ADD_CHECKPOINT_BYTES_MAX",
    "COSIGNATURE_BYTES",
    "NOTE_BYTES_MAX",
    "NOTE_SIGNATURES_MAX",
    "PROOF_HASHES_MAX",
    "TLOG_PROOF_BYTES_MAX",
    "TLOG_PROOF_EXTRA_BYTES_MAX",
    "TLOG_PROOF_HEADER",
    "AddCheckpointRequest",
    "Checkpoint",
    "KeyType",
    "Note",
    "NoteError",
    "NoteSignature",
    "NoteVerifierKey",
    "TlogProof",
    "cosign",
    "cosignature_message",
    "cosignature_timestamp",
    "is_valid_key_name",
    "origin_for",
    "sign_note",
    "verify_note",
]

NOTE_BYTES_MAX = 64 * 1024
"""The largest note parsed, in bytes (text and signature lines)."""
NOTE_SIGNATURES_MAX = 64
"""The most signature lines a note may carry (the spec asks verifiers to accept at least 16:
a consortium of ten members plus a dozen witnesses fits)."""
PROOF_HASHES_MAX = 63
"""The most hashes in a consistency or inclusion proof (tlog-witness: at most 63 lines)."""
ADD_CHECKPOINT_BYTES_MAX = 64 * 1024
"""The largest add-checkpoint request body parsed (the witness reads no more)."""
TLOG_PROOF_EXTRA_BYTES_MAX = 64 * 1024
"""The largest extra data of a tlog-proof (an act's canonical transaction is ≤ 16 KiB)."""
TLOG_PROOF_BYTES_MAX = 256 * 1024
"""The largest tlog-proof parsed: extra data in base64, index, proof, checkpoint note."""
TLOG_PROOF_HEADER = "c2sp.org/tlog-proof@v1"
COSIGNATURE_BYTES = 8 + crypto.SIGNATURE_BYTES
"""An Ed25519 cosignature/v1: the u64 big-endian timestamp, then the 64-byte signature."""
HASH_BYTES = 32
SIZE_MAX = 2**63 - 1
"""The largest tree size, index or timestamp read (they are u64 on the wire, we stay signed)."""
KEY_ID_BYTES = 4
VKEY_CHARACTERS_MAX = 1024
"""The longest verifier key text parsed."""

_EM_DASH = "\u2014"
_SIGNATURE_PREFIX = _EM_DASH + " "
_DECIMAL = re.compile(r"0|[1-9][0-9]{0,18}")
_COSIGNATURE_HEADER = "cosignature/v1\n"


class NoteError(ValueError):
    """A note, key, checkpoint, proof or request that is malformed or does not verify."""


class KeyType(enum.IntEnum):
    """The signature type byte of a signed-note key (signed-note.md, "Signature types")."""

    ED25519 = 0x01
    """Ed25519 over the note text: what the members sign checkpoints with."""
    COSIGNATURE_V1 = 0x04
    """Timestamped Ed25519 witness cosignature (tlog-cosignature ``cosignature/v1``)."""


# --- small parsers ----------------------------------------------------------------------------


def origin_for(chain_id: bytes) -> str:
    """The origin line of the log of every act of the chain ``chain_id``."""
    assert isinstance(chain_id, bytes) and len(chain_id) == 32, "a chain_id is 32 bytes"
    return "sceau/" + chain_id.hex()


def is_valid_key_name(name: object) -> bool:
    """True for a signed-note key name: non-empty, no Unicode space, no '+', no control
    character (the note format forbids them anywhere)."""
    return (
        isinstance(name, str)
        and name != ""
        and "+" not in name
        and not any(character.isspace() or character < " " for character in name)
    )


def _decode_base64(text: str, what: str) -> bytes:
    """Strict standard base64 with padding, in its one canonical form."""
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise NoteError(f"{what} is not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise NoteError(f"{what} is not in canonical base64")
    return raw


def _encode_base64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii")


def _parse_decimal(text: str, what: str) -> int:
    """A decimal without leading zeros (``0`` itself excepted), at most :data:`SIZE_MAX`."""
    if not _DECIMAL.fullmatch(text) or int(text) > SIZE_MAX:
        raise NoteError(f"{what} must be a decimal number without leading zeros, not {text!r:.40}")
    return int(text)


def _check_note_characters(text: str, what: str) -> None:
    bad = next((character for character in text if character < " " and character != "\n"), None)
    if bad is not None:
        raise NoteError(f"{what} contains the control character {bad!r}")


def _hash_lines(lines: Sequence[str], what: str) -> tuple[bytes, ...]:
    if len(lines) > PROOF_HASHES_MAX:
        raise NoteError(f"{what} has {len(lines)} hashes, at most {PROOF_HASHES_MAX} allowed")
    hashes = []
    for number, line in enumerate(lines, start=1):
        value = _decode_base64(line, f"{what} line {number}")
        if len(value) != HASH_BYTES:
            raise NoteError(f"{what} line {number} is not a {HASH_BYTES}-byte hash")
        hashes.append(value)
    return tuple(hashes)


def _check_hashes(proof: object, what: str) -> None:
    if not isinstance(proof, tuple) or len(proof) > PROOF_HASHES_MAX:
        raise NoteError(f"{what} must be a tuple of at most {PROOF_HASHES_MAX} hashes")
    if not all(isinstance(value, bytes) and len(value) == HASH_BYTES for value in proof):
        raise NoteError(f"{what} holds something other than {HASH_BYTES}-byte hashes")


def _check_size(value: object, what: str) -> None:
    if type(value) is not int or not 0 <= value <= SIZE_MAX:
        raise NoteError(f"{what} must be an integer from 0 to 2^63 - 1")


# --- keys -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteVerifierKey:
    """A public key as signed notes know it: a name, a signature type and the key itself."""

    name: str
    key_type: KeyType
    public_key: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise NoteError(f"{self.name!r:.80} is not a valid key name (non-empty, no space or +)")
        if not isinstance(self.key_type, KeyType):
            raise NoteError(f"unknown key type {self.key_type!r}")
        if not crypto.is_acceptable_public_key(self.public_key):
            raise NoteError("the public key is not an acceptable 32-byte Ed25519 key")

    @property
    def key_id(self) -> int:
        """SHA-256(name || 0x0A || type || public key)[:4], as a big-endian integer."""
        material = self.name.encode() + b"\n" + bytes([self.key_type]) + self.public_key
        return int.from_bytes(hashlib.sha256(material).digest()[:KEY_ID_BYTES], "big")

    @property
    def vkey(self) -> str:
        """The verifier-key text ``<name>+<key id, 8 hex>+base64(type || key)``."""
        material = bytes([self.key_type]) + self.public_key
        return f"{self.name}+{self.key_id:08x}+{_encode_base64(material)}"

    @classmethod
    def for_private_key(
        cls, name: str, key_type: KeyType, private_key: crypto.PrivateKey
    ) -> NoteVerifierKey:
        """The verifier key of ``private_key`` under ``name`` and ``key_type``."""
        return cls(name, key_type, crypto.public_key_bytes(private_key))

    @classmethod
    def parse_vkey(cls, text: str) -> NoteVerifierKey:
        """Parse a verifier-key text; NoteError if it is malformed, of an unsupported type,
        or if its key id is not the one its name, type and key give."""
        if not isinstance(text, str) or len(text) > VKEY_CHARACTERS_MAX:
            raise NoteError("a verifier key is a text of at most 1024 characters")
        parts = text.split("+", 2)  # the base64 part may itself contain '+'
        if len(parts) != 3:
            raise NoteError("a verifier key has the form <name>+<key id>+<base64 key>")
        name, key_id_text, material_text = parts
        if not is_valid_key_name(name):
            raise NoteError(f"{name!r:.80} is not a valid key name (non-empty, no space or +)")
        if not re.fullmatch(r"[0-9a-f]{8}", key_id_text):
            raise NoteError("a verifier key's id is 8 lowercase hexadecimal digits")
        material = _decode_base64(material_text, "the verifier key's key material")
        if not material:
            raise NoteError("the verifier key has no key material")
        try:
            key_type = KeyType(material[0])
        except ValueError:
            raise NoteError(f"unsupported key type 0x{material[0]:02x}") from None
        if len(material) != 1 + crypto.PUBLIC_KEY_BYTES:
            raise NoteError(f"an Ed25519 key is {crypto.PUBLIC_KEY_BYTES} bytes")
        key = cls(name, key_type, material[1:])
        if key.key_id != int(key_id_text, 16):
            raise NoteError(f"the key id {key_id_text} does not match the name, type and key")
        return key


# --- notes ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NoteSignature:
    """One signature line: the key's name, its 32-bit id, and the signature bytes after the id."""

    name: str
    key_id: int
    signature: bytes

    def __post_init__(self) -> None:
        if not is_valid_key_name(self.name):
            raise NoteError(f"{self.name!r:.80} is not a valid key name (non-empty, no space or +)")
        if type(self.key_id) is not int or not 0 <= self.key_id < 2**32:
            raise NoteError("a key id is a 32-bit unsigned integer")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise NoteError("a signature has at least one byte after the key id")

    def line(self) -> str:
        """The signature line, ``— <name> base64(key id || signature)`` and a newline."""
        blob = self.key_id.to_bytes(KEY_ID_BYTES, "big") + self.signature
        return f"{_SIGNATURE_PREFIX}{self.name} {_encode_base64(blob)}\n"

    @classmethod
    def parse_line(cls, line: str) -> NoteSignature:
        """Parse one signature line, without its newline; NoteError if malformed."""
        if not line.startswith(_SIGNATURE_PREFIX):
            raise NoteError("a signature line starts with an em dash and a space")
        fields = line[len(_SIGNATURE_PREFIX) :].split(" ")
        if len(fields) != 2:
            raise NoteError("a signature line is '— <key name> <base64 signature>'")
        name, blob_text = fields
        if not is_valid_key_name(name):
            raise NoteError(f"{name!r:.80} is not a valid key name (non-empty, no space or +)")
        blob = _decode_base64(blob_text, f"the signature of {name:.80}")
        if len(blob) <= KEY_ID_BYTES:
            raise NoteError(f"the signature of {name:.80} is shorter than a key id and one byte")
        return cls(name, int.from_bytes(blob[:KEY_ID_BYTES], "big"), blob[KEY_ID_BYTES:])


@dataclass(frozen=True, slots=True)
class Note:
    """A signed note: its text (ending in a newline) and its signatures, in order."""

    text: str
    signatures: tuple[NoteSignature, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.text, str) or not self.text.endswith("\n"):
            raise NoteError("a note's text ends with a newline")
        _check_note_characters(self.text, "the note's text")
        if not isinstance(self.signatures, tuple) or not all(
            isinstance(signature, NoteSignature) for signature in self.signatures
        ):
            raise NoteError("a note's signatures are a tuple of NoteSignature")
        if len(self.signatures) > NOTE_SIGNATURES_MAX:
            raise NoteError(
                f"a note carries at most {NOTE_SIGNATURES_MAX} signatures, "
                f"not {len(self.signatures)}"
            )

    def to_bytes(self) -> bytes:
        """The note as sent: text, blank line, signature lines (UTF-8)."""
        assert self.signatures, "a note without a signature cannot be written"
        lines = "".join(signature.line() for signature in self.signatures)
        return (self.text + "\n" + lines).encode()

    def with_signatures(self, *signatures: NoteSignature) -> Note:
        """This note with ``signatures`` added after its own."""
        return Note(self.text, self.signatures + tuple(signatures))

    @classmethod
    def parse(cls, data: bytes) -> Note:
        """Parse a signed note (signatures not verified: see :func:`verify_note`).

        Raises NoteError if it is larger than :data:`NOTE_BYTES_MAX`, not UTF-8, holds a
        control character other than newline, has no blank line before its signatures, no
        signature, more than :data:`NOTE_SIGNATURES_MAX`, or a malformed signature line.
        """
        if not isinstance(data, bytes | bytearray):
            raise NoteError("a note is bytes")
        if len(data) > NOTE_BYTES_MAX:
            raise NoteError(f"a note is at most {NOTE_BYTES_MAX} bytes, not {len(data)}")
        try:
            whole = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("a note is UTF-8 text") from None
        _check_note_characters(whole, "the note")
        split = whole.rfind("\n\n")
        if split < 0:
            raise NoteError("a note's text is separated from its signatures by a blank line")
        text, block = whole[: split + 1], whole[split + 2 :]
        if not block:
            raise NoteError("a note carries at least one signature")
        if not block.endswith("\n"):
            raise NoteError("a note's last signature line ends with a newline")
        lines = block[:-1].split("\n")
        if len(lines) > NOTE_SIGNATURES_MAX:
            raise NoteError(f"a note carries at most {NOTE_SIGNATURES_MAX} signatures")
        return cls(text, tuple(NoteSignature.parse_line(line) for line in lines))


def _check_text(text: object) -> str:
    if not isinstance(text, str) or not text.endswith("\n"):
        raise NoteError("a note's text ends with a newline")
    _check_note_characters(text, "the note's text")
    return text


def sign_note(text: str, name: str, private_key: crypto.PrivateKey) -> NoteSignature:
    """An Ed25519 note signature (type 0x01) of ``text`` by ``private_key`` named ``name``."""
    key = NoteVerifierKey.for_private_key(name, KeyType.ED25519, private_key)
    return NoteSignature(name, key.key_id, crypto.sign_raw(private_key, _check_text(text).encode()))


def cosignature_message(checkpoint_text: str, timestamp_s: int) -> bytes:
    """What a cosignature/v1 signs: ``cosignature/v1``, ``time <t>``, then the checkpoint text."""
    _check_size(timestamp_s, "a cosignature's timestamp")
    return f"{_COSIGNATURE_HEADER}time {timestamp_s}\n{checkpoint_text}".encode()


def cosign(
    checkpoint_text: str, name: str, private_key: crypto.PrivateKey, timestamp_s: int
) -> NoteSignature:
    """A witness's Ed25519 cosignature/v1 (type 0x04) of a checkpoint's text at ``timestamp_s``
    (POSIX seconds). The signature bytes are the u64 big-endian timestamp and the signature.
    Raises NoteError if the text is not a checkpoint."""
    Checkpoint.parse_text(checkpoint_text)
    key = NoteVerifierKey.for_private_key(name, KeyType.COSIGNATURE_V1, private_key)
    signed = crypto.sign_raw(private_key, cosignature_message(checkpoint_text, timestamp_s))
    return NoteSignature(name, key.key_id, timestamp_s.to_bytes(8, "big") + signed)


def cosignature_timestamp(signature: NoteSignature) -> int:
    """The timestamp (POSIX seconds) a cosignature/v1 carries; NoteError if it is not one."""
    if len(signature.signature) != COSIGNATURE_BYTES:
        raise NoteError(f"a cosignature/v1 is {COSIGNATURE_BYTES} bytes after the key id")
    timestamp = int.from_bytes(signature.signature[:8], "big")
    if timestamp > SIZE_MAX:
        raise NoteError("a cosignature's timestamp is at most 2^63 - 1")
    return timestamp


def _signature_verifies(key: NoteVerifierKey, text: str, signature: bytes) -> bool:
    if key.key_type is KeyType.ED25519:
        return crypto.verify_raw(key.public_key, text.encode(), signature)
    assert key.key_type is KeyType.COSIGNATURE_V1
    if len(signature) != COSIGNATURE_BYTES:
        return False
    timestamp = int.from_bytes(signature[:8], "big")
    if timestamp > SIZE_MAX:
        return False
    message = cosignature_message(text, timestamp)
    return crypto.verify_raw(key.public_key, message, signature[8:])


def verify_note(note: Note, keys: Sequence[NoteVerifierKey]) -> tuple[NoteVerifierKey, ...]:
    """The keys of ``keys`` whose signature of ``note`` verifies, each once, in note order.

    Signatures from keys not in ``keys`` (another name, or another id) are ignored. Raises
    NoteError if a signature from a known key fails (the note as a whole is then suspect), if
    no known key signed, or if two of ``keys`` share both name and id.
    """
    known: dict[tuple[str, int], NoteVerifierKey] = {}
    for key in keys:
        if known.setdefault((key.name, key.key_id), key) != key:
            raise NoteError(f"two verifier keys are both {key.name}+{key.key_id:08x}")
    verified: dict[NoteVerifierKey, None] = {}
    for signature in note.signatures:
        key = known.get((signature.name, signature.key_id))
        if key is None:
            continue
        if not _signature_verifies(key, note.text, signature.signature):
            raise NoteError(f"the signature of {key.name}+{key.key_id:08x} does not verify")
        verified[key] = None
    if not verified:
        raise NoteError("no signature of the note is from a known key")
    return tuple(verified)


# --- checkpoints ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A tlog-checkpoint's text: origin, tree size, root hash and optional extension lines."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.origin, str) or not self.origin or "\n" in self.origin:
            raise NoteError("a checkpoint's origin is a non-empty line")
        _check_note_characters(self.origin, "the checkpoint's origin")
        _check_size(self.size, "a checkpoint's size")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_BYTES:
            raise NoteError(f"a checkpoint's root is a {HASH_BYTES}-byte hash")
        if not isinstance(self.extensions, tuple):
            raise NoteError("a checkpoint's extensions are a tuple of lines")
        for line in self.extensions:
            if not isinstance(line, str) or not line or "\n" in line:
                raise NoteError("a checkpoint's extension lines are non-empty lines")
            _check_note_characters(line, "a checkpoint's extension line")

    def text(self) -> str:
        """The note text: one line each for origin, size, base64 root, then the extensions."""
        lines = [self.origin, str(self.size), _encode_base64(self.root), *self.extensions]
        return "".join(line + "\n" for line in lines)

    @classmethod
    def parse_text(cls, text: str) -> Checkpoint:
        """Parse a checkpoint's note text; NoteError if it breaks tlog-checkpoint's rules
        (at least three non-empty lines, a decimal size without leading zeros, a base64
        32-byte root, every line ending in a newline)."""
        if not isinstance(text, str) or len(text) > NOTE_BYTES_MAX:
            raise NoteError(f"a checkpoint is a text of at most {NOTE_BYTES_MAX} characters")
        if not text.endswith("\n"):
            raise NoteError("a checkpoint's text ends with a newline")
        lines = text[:-1].split("\n")
        if len(lines) < 3:
            raise NoteError("a checkpoint has at least three lines: origin, size, root")
        if any(not line for line in lines):
            raise NoteError("a checkpoint has no empty line")
        origin, size_text, root_text, *extensions = lines
        size = _parse_decimal(size_text, "a checkpoint's size")
        root = _decode_base64(root_text, "a checkpoint's root")
        if len(root) != HASH_BYTES:
            raise NoteError(f"a checkpoint's root is a {HASH_BYTES}-byte hash")
        return cls(origin, size, root, tuple(extensions))

    @classmethod
    def from_note(cls, note: Note) -> Checkpoint:
        """The checkpoint a note's text holds; NoteError if it holds none."""
        return cls.parse_text(note.text)


# --- proofs and requests ----------------------------------------------------------------------


def _split_head(whole: str, what: str) -> tuple[list[str], bytes]:
    """The lines before the first blank line, and the bytes after it (a note)."""
    split = whole.find("\n\n")
    if split < 0:
        raise NoteError(f"{what} has no blank line before its checkpoint")
    return whole[:split].split("\n"), whole[split + 2 :].encode()


@dataclass(frozen=True, slots=True)
class TlogProof:
    """A c2sp.org/tlog-proof: optional extra data, the entry's index, its inclusion proof (leaf
    sibling first) and the checkpoint note whose tree it leads to."""

    extra: bytes | None
    index: int
    proof: tuple[bytes, ...]
    checkpoint: Note

    def __post_init__(self) -> None:
        if self.extra is not None and (
            not isinstance(self.extra, bytes)
            or not 0 < len(self.extra) <= TLOG_PROOF_EXTRA_BYTES_MAX
        ):
            raise NoteError(
                f"extra data is None or 1 to {TLOG_PROOF_EXTRA_BYTES_MAX} bytes (no empty extra)"
            )
        _check_size(self.index, "a proof's index")
        _check_hashes(self.proof, "an inclusion proof")
        if not isinstance(self.checkpoint, Note):
            raise NoteError("a tlog-proof's checkpoint is a Note")
        checkpoint = Checkpoint.from_note(self.checkpoint)
        if self.index >= checkpoint.size:
            raise NoteError(f"index {self.index} is not in a checkpoint of size {checkpoint.size}")

    def to_bytes(self) -> bytes:
        """The proof as a ``.tlog-proof`` file holds it."""
        lines = [TLOG_PROOF_HEADER]
        if self.extra is not None:
            lines.append(f"extra {_encode_base64(self.extra)}")
        lines.append(f"index {self.index}")
        lines.extend(_encode_base64(value) for value in self.proof)
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint.to_bytes()

    @classmethod
    def parse(cls, data: bytes) -> TlogProof:
        """Parse a tlog-proof; NoteError if it is larger than :data:`TLOG_PROOF_BYTES_MAX`,
        malformed, or its index is not in its checkpoint's tree."""
        if not isinstance(data, bytes | bytearray) or len(data) > TLOG_PROOF_BYTES_MAX:
            raise NoteError(f"a tlog-proof is at most {TLOG_PROOF_BYTES_MAX} bytes")
        try:
            whole = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("a tlog-proof is UTF-8 text") from None
        head, note_bytes = _split_head(whole, "a tlog-proof")
        if head[0] != TLOG_PROOF_HEADER:
            raise NoteError(f"a tlog-proof's first line is {TLOG_PROOF_HEADER}")
        position = 1
        extra = None
        if position < len(head) and head[position].startswith("extra "):
            extra = _decode_base64(head[position][len("extra ") :], "the extra data")
            position += 1
        if position >= len(head) or not head[position].startswith("index "):
            raise NoteError("a tlog-proof has an 'index N' line after its header")
        index = _parse_decimal(head[position][len("index ") :], "a proof's index")
        proof = _hash_lines(head[position + 1 :], "the inclusion proof")
        return cls(extra, index, proof, Note.parse(note_bytes))


@dataclass(frozen=True, slots=True)
class AddCheckpointRequest:
    """A tlog-witness add-checkpoint request body: the size the witness last cosigned (as the
    log believes), a consistency proof from it, and the new checkpoint note."""

    old_size: int
    proof: tuple[bytes, ...]
    checkpoint: Note

    def __post_init__(self) -> None:
        _check_size(self.old_size, "the old size")
        _check_hashes(self.proof, "a consistency proof")
        if not isinstance(self.checkpoint, Note):
            raise NoteError("an add-checkpoint request's checkpoint is a Note")

    def to_bytes(self) -> bytes:
        """The request body as tlog-witness specifies it."""
        lines = [f"old {self.old_size}", *(_encode_base64(value) for value in self.proof)]
        return ("\n".join(lines) + "\n\n").encode() + self.checkpoint.to_bytes()

    @classmethod
    def parse(cls, data: bytes) -> AddCheckpointRequest:
        """Parse a request body; NoteError if it is larger than
        :data:`ADD_CHECKPOINT_BYTES_MAX` or malformed (the checkpoint's text is not checked
        here: see :meth:`Checkpoint.from_note`)."""
        if not isinstance(data, bytes | bytearray) or len(data) > ADD_CHECKPOINT_BYTES_MAX:
            raise NoteError(
                f"an add-checkpoint request is at most {ADD_CHECKPOINT_BYTES_MAX} bytes"
            )
        try:
            whole = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise NoteError("an add-checkpoint request is UTF-8 text") from None
        head, note_bytes = _split_head(whole, "an add-checkpoint request")
        if not head[0].startswith("old "):
            raise NoteError("an add-checkpoint request starts with 'old N'")
        old_size = _parse_decimal(head[0][len("old ") :], "the old size")
        proof = _hash_lines(head[1:], "the consistency proof")
        return cls(old_size, proof, Note.parse(note_bytes))
