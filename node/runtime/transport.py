"""Peer transport: one persistent, mutually authenticated WebSocket per pair of members.

Theory of operation
-------------------
Every pair of members keeps exactly one WebSocket open (docs/architecture.md, decision 11).
The member whose id sorts lower *dials* (``ws://host:port/peer``, or ``wss://`` with a client TLS
context); the other *accepts* and refuses a connection dialed the wrong way, so two members
never race to open two sockets. A dialer that loses its connection dials again after an
exponential backoff with jitter, drawn uniformly in
``[reconnect_delay_ms_min, min(reconnect_delay_ms_max, reconnect_delay_ms_min * 2**attempt)]``.
The consensus layer above retransmits what matters, so the transport promises little:
frames to one peer arrive in order and at most once per connection, and a frame queued while
the peer is unreachable waits in that peer's bounded outbound queue (the oldest frame is
dropped, and counted, when the queue is full).

Before any payload flows, both sides run a handshake bound to the ``chain_id``, both member
ids and fresh randomness from both sides, with an ephemeral X25519 key exchange. Messages
are binary WebSocket messages holding canonical msgpack (:mod:`ledger.encoding`), at most
:data:`HANDSHAKE_MESSAGE_BYTES_MAX` bytes each, in this order::

    1. dialer   -> acceptor  hello_d = {"chain_id": bin 32, "ephemeral_key": bin 32,
                                        "member_id": str, "nonce": bin 32}
    2. acceptor -> dialer    hello_a  (same shape)
    3. dialer   -> acceptor  proof_d = {"signature": bin 64}
    4. acceptor -> dialer    proof_a
    5. dialer   -> acceptor  confirmation = the dialer's frame number 0, empty payload

    transcript = canonical [dialer_id, acceptor_id, dialer_nonce, acceptor_nonce,
                            dialer_ephemeral_key, acceptor_ephemeral_key]
    signature  = Ed25519(member key, len(tag) || tag || chain_id || transcript)
                 with tag = "sceau/peer-handshake/v1" (ledger.crypto.sign)

Each side checks the other's hello before going on: the same ``chain_id``; a ``member_id``
other than its own, present in the *current* member set (``members()`` is re-read at every
handshake); for the dialer, the member it dialed; for the acceptor, a member whose id sorts
below its own. Each side then verifies the other's proof with that member's *current* public
key, so a removed member or a rotated (stale) key fails here. The dialer proves first, so an
acceptor exposed to the network signs nothing for a peer that has not proven membership.
The dialer's confirmation (message 5, a frame as below) tells the acceptor that the dialer
accepted its proof and holds the same session keys; only then does either side send payload
frames, so neither spends queued frames on a connection the other has refused. Any failure,
or the whole handshake taking longer than ``handshake_timeout_ms``, closes the connection
(WebSocket close code 1008, the reason as close message), is logged on the
``sceau.transport`` logger and counted as ``handshake_refused:<reason>``.

Session keys come from the X25519 shared secret (an all-zero secret, from a small-order
ephemeral key, is refused)::

    salt              = SHA-256(transcript)
    key_dialer_out    = HKDF-SHA256(shared, salt, info="sceau/peer-frame/v1 dialer->acceptor")
    key_acceptor_out  = HKDF-SHA256(shared, salt, info="sceau/peer-frame/v1 acceptor->dialer")

(32 bytes each). Both signatures cover both ephemeral keys, so the keys are authenticated
without TLS. Every later message is one binary WebSocket message, a *frame*, encrypted and
authenticated with ChaCha20-Poly1305 (RFC 8439) under its direction's key::

    frame = sequence (8 bytes, big-endian)
            || ChaCha20-Poly1305-Encrypt(key = direction key,
                                         nonce = 4 zero bytes || sequence,
                                         plaintext = payload,
                                         associated data = sequence)     (ciphertext || 16-byte tag)

The sequence starts at 0 on each connection and grows by one per frame in each direction
(the dialer's frame 0 is the confirmation, so its payload frames start at 1). Keys are fresh
for each connection and each direction and the sequence never repeats within one, so no
nonce is ever used twice with a key. The receiver checks the length
(``payload <= frame_bytes_max``), then the tag (decryption fails on any change to the
sequence, the ciphertext or the tag), then that the sequence is exactly the next one. A frame
that fails, a text message, or an oversized message closes the connection (the dialer
re-establishes it) and is counted as ``bad_frame:<reason>``; nothing of it reaches
``on_frame``. An on-path attacker can therefore neither read, inject, alter, reorder, reflect
nor replay frames: the handshake authenticates, the AEAD keeps frames confidential and
intact. TLS, when configured, wraps the whole exchange as defence in depth (peers do not
check certificates: TLS is not what authenticates them).

Before the handshake completes, a connection is a stranger's and gets a small budget (node/
connections.py, enforced beneath aiohttp before any parsing): it must send a hello naming a
current member within ``hello_timeout_ms`` of the TCP accept, and complete the handshake
within ``handshake_timeout_ms``; it may send at most ``handshake_bytes_max`` bytes in all
(upgrade request included), so aiohttp never buffers a large "hello"; and the number of such
connections is capped in all (``handshakes_pending_max``), per source address
(``connections_per_address_max``) and for addresses that are no member's endpoint host
(``handshakes_pending_strangers_max``: the rest is reserved for members' addresses). When a
cap is reached, the least advanced, oldest unauthenticated connection is evicted for the
newcomer (a stranger never evicts a member address's): a member, which sends its hello at
once and proves itself within a round trip, outlives strangers that stall, even on the same
address. The acceptor tells the guard when the dialer's hello names a member and when its
proof verifies (before sending its own proof: the dialer sends nothing more until it has it,
so whatever follows comes from an authenticated member and is no longer budgeted).

Failures come in two kinds (docs/architecture.md): bad input from a peer is a counted, logged
rejection that closes at most that peer's connection; our own bugs are assertions. An
exception raised by ``on_frame`` is the daemon's bug: it is logged with its traceback and
counted (``on_frame_errors``), and the connection stays up.

Fault injection (tests only): :meth:`PeerTransport.cut_links` names the members whose links
are *cut*, as a network partition would cut them. While a member is cut, frames to it are
dropped (``frames_dropped:link_cut_out``, with whatever waited in its queue), frames still
arriving from it are dropped (``frames_dropped:link_cut_in``), its connection is closed, we do
not dial it, and a connection it dials to us is closed right after the handshake, before any
frame is delivered (``connections_refused:link_cut``: only the handshake tells who dials).
Healing (a call without that member) dials it again at once, without waiting for a backoff.
To cut the link between two members, cut each at the other. The daemon exposes this only when
``fault_injection`` is configured (node/runtime/config.py, node/api/).

Limits: the outbound queue of each peer (``queue_frames_max``, ``queue_bytes_max``), the
frame size (aiohttp's ``max_msg_size`` is the largest frame), the handshake messages
(``HANDSHAKE_MESSAGE_BYTES_MAX``), the strangers' budget above (connections, bytes,
deadlines), the log lines a hostile peer can cause (the first ten of each kind, then one per
thousand). As a dialer we reach only members' endpoints, one connection per member at a time,
so whoever answers there can make us buffer at most one message of ``max_msg_size`` bytes per
member we dial.
"""

from __future__ import annotations

import asyncio
import collections
import enum
import hashlib
import hmac
import logging
import random
import secrets
import ssl
from collections.abc import Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from aiohttp import WSCloseCode, WSMsgType, web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ledger import crypto, domains, encoding
from ledger.model import Member
from node.runtime.connections import (
    ConnectionGuard,
    GuardedSite,
    GuardLimits,
    Stage,
    address_key,
    count_and_log,
)

__all__ = [
    "FRAME_OVERHEAD_BYTES",
    "HANDSHAKE_MESSAGE_BYTES_MAX",
    "BadFrame",
    "FrameOpener",
    "FrameSealer",
    "HandshakeRefused",
    "Hello",
    "Identity",
    "PeerTransport",
    "Role",
    "Session",
    "TransportConfig",
    "check_proof",
    "derive_frame_keys",
    "encode_proof",
    "handshake_transcript",
    "new_hello",
    "perform_handshake",
]

logger = logging.getLogger("sceau.transport")

PEER_PATH = "/peer"
NONCE_BYTES = 32
EPHEMERAL_KEY_BYTES = 32
SESSION_KEY_BYTES = 32
SEQUENCE_BYTES = 8
NONCE_PADDING = bytes(4)
"""ChaCha20-Poly1305 nonces are 12 bytes: 4 zero bytes, then the 8-byte sequence."""
TAG_BYTES = 16
FRAME_OVERHEAD_BYTES = SEQUENCE_BYTES + TAG_BYTES
SEQUENCE_MAX = 2 ** (8 * SEQUENCE_BYTES) - 1
MEMBER_ID_CHARACTERS_MAX = 48
CONFIRMATION_PAYLOAD = b""
"""The payload of the dialer's first frame, which ends the handshake."""
HANDSHAKE_MESSAGE_BYTES_MAX = 256
"""A hello is under 200 bytes, a proof 77; anything longer is refused unread."""

HANDSHAKE_LIMITS = encoding.DecodeLimits(
    total_bytes_max=HANDSHAKE_MESSAGE_BYTES_MAX,
    depth_max=1,
    str_bytes_max=4 * MEMBER_ID_CHARACTERS_MAX,
    bin_bytes_max=crypto.SIGNATURE_BYTES,
    array_length_max=0,
    map_length_max=4,
)
HELLO_FIELDS = frozenset({"chain_id", "member_id", "nonce", "ephemeral_key"})
FRAME_KEY_INFO_DIALER_OUT = domains.PEER_FRAME + b" dialer->acceptor"
FRAME_KEY_INFO_ACCEPTOR_OUT = domains.PEER_FRAME + b" acceptor->dialer"


# --- configuration -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TransportConfig:
    """Every limit and timing of the peer transport, passed down by the daemon."""

    listen_host: str
    listen_port: int
    frame_bytes_max: int = 16 * 1024 * 1024
    queue_frames_max: int = 4096
    """Per peer, outbound."""
    queue_bytes_max: int = 64 * 1024 * 1024
    """Per peer, outbound (payload bytes)."""
    handshake_timeout_ms: int = 3_000
    """Bounds the WebSocket connect and, separately, the whole handshake; on the accepting
    side, counted from the TCP accept."""
    hello_timeout_ms: int = 1_000
    """Accepting side: from the TCP accept to a well-formed hello naming a current member
    (the upgrade request included)."""
    reconnect_delay_ms_min: int = 100
    reconnect_delay_ms_max: int = 10_000
    heartbeat_ms: int = 5_000
    """aiohttp's ping interval; a pong missing for half of it closes the connection."""
    close_timeout_ms: int = 1_000
    """How long closing a WebSocket waits for the peer's close frame."""
    connections_max: int = 256
    """Open connections on the peer port, authenticated or not (at most one per member is
    authenticated); a newcomer over it evicts an unauthenticated one, or is refused."""
    connections_per_address_max: int = 64
    """The same, per source address (IPv4 address, or IPv6 /64)."""
    handshakes_pending_max: int = 128
    """Accepted connections not yet authenticated."""
    handshakes_pending_strangers_max: int = 64
    """Of those, how many may come from addresses that are no member's endpoint host: the
    rest is reserved for the members' addresses."""
    handshake_bytes_max: int = 2_048
    """Bytes an unauthenticated connection may send (upgrade request, hello, proof): a hello
    is under 200 bytes, so a large message is cut off before aiohttp buffers it."""

    def __post_init__(self) -> None:
        positive = (
            "frame_bytes_max",
            "queue_frames_max",
            "queue_bytes_max",
            "handshake_timeout_ms",
            "hello_timeout_ms",
            "reconnect_delay_ms_min",
            "reconnect_delay_ms_max",
            "heartbeat_ms",
            "close_timeout_ms",
            "connections_max",
            "connections_per_address_max",
            "handshakes_pending_max",
            "handshakes_pending_strangers_max",
            "handshake_bytes_max",
        )
        for name in positive:
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if type(self.listen_port) is not int or not 0 <= self.listen_port <= 65_535:
            raise ValueError(f"listen_port must be in [0, 65535], not {self.listen_port!r}")
        if self.reconnect_delay_ms_min > self.reconnect_delay_ms_max:
            raise ValueError("reconnect_delay_ms_min must not exceed reconnect_delay_ms_max")
        if self.queue_bytes_max < self.frame_bytes_max:
            raise ValueError("queue_bytes_max must hold at least one frame of frame_bytes_max")
        if self.handshake_bytes_max < 3 * HANDSHAKE_MESSAGE_BYTES_MAX:
            raise ValueError("handshake_bytes_max must hold the handshake's messages")
        self.guard_limits()  # its own checks: the caps must nest

    def guard_limits(self) -> GuardLimits:
        """The peer port's connection budget (node/runtime/connections.py)."""
        hello_ms = min(self.hello_timeout_ms, self.handshake_timeout_ms)
        return GuardLimits(
            connections_max=self.connections_max,
            connections_per_address_max=self.connections_per_address_max,
            unsettled_max=self.handshakes_pending_max,
            unsettled_strangers_max=self.handshakes_pending_strangers_max,
            unsettled_bytes_max=self.handshake_bytes_max,
            settle_stage=Stage.SETTLED,
            milestones_ms=(
                (Stage.HEADERS, hello_ms),
                (Stage.HELLO, hello_ms),
                (Stage.SETTLED, self.handshake_timeout_ms),
            ),
        )

    @property
    def message_size_limit(self) -> int:
        """aiohttp's ``max_msg_size``: it refuses a message of this many bytes or more, so it is
        one more than the largest frame. Our own check (``FrameOpener``) stays authoritative."""
        return self.frame_bytes_max + FRAME_OVERHEAD_BYTES + 1


# --- handshake ---------------------------------------------------------------------------------


class Role(enum.Enum):
    DIALER = "dialer"
    ACCEPTOR = "acceptor"


class HandshakeRefused(Exception):
    """A handshake that must not complete; ``reason`` is a stable, countable slug."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True, kw_only=True)
class Identity:
    """Who we are on the wire: our member id, our member key, our consortium."""

    member_id: str
    key: crypto.PrivateKey
    chain_id: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class Hello:
    """The first handshake message of each side."""

    chain_id: bytes
    member_id: str
    nonce: bytes
    ephemeral_key: bytes

    def to_bytes(self) -> bytes:
        return encoding.pack(
            {
                "chain_id": self.chain_id,
                "member_id": self.member_id,
                "nonce": self.nonce,
                "ephemeral_key": self.ephemeral_key,
            }
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Hello:
        """Decode a peer's hello. Raises :class:`HandshakeRefused` (``malformed_hello``)."""
        try:
            document = encoding.unpack(data, HANDSHAKE_LIMITS)
        except encoding.EncodingError as error:
            raise HandshakeRefused("malformed_hello", str(error)) from None
        if type(document) is not dict or document.keys() != HELLO_FIELDS:
            raise HandshakeRefused("malformed_hello", "expected exactly the hello fields")
        member_id = document["member_id"]
        if type(member_id) is not str or not 0 < len(member_id) <= MEMBER_ID_CHARACTERS_MAX:
            raise HandshakeRefused("malformed_hello", "member_id is not a short text")
        lengths = {
            "chain_id": crypto.CHAIN_ID_BYTES,
            "nonce": NONCE_BYTES,
            "ephemeral_key": EPHEMERAL_KEY_BYTES,
        }
        for name, length in lengths.items():
            value = document[name]
            if type(value) is not bytes or len(value) != length:
                raise HandshakeRefused("malformed_hello", f"{name} is not {length} bytes")
        return cls(**document)


def new_hello(identity: Identity) -> tuple[Hello, X25519PrivateKey]:
    """A fresh hello for one connection, and the ephemeral private key behind it."""
    ephemeral = X25519PrivateKey.generate()
    hello = Hello(
        chain_id=identity.chain_id,
        member_id=identity.member_id,
        nonce=secrets.token_bytes(NONCE_BYTES),
        ephemeral_key=ephemeral.public_key().public_bytes(
            encoding=serialization.Encoding.Raw, format=serialization.PublicFormat.Raw
        ),
    )
    return hello, ephemeral


def handshake_transcript(*, dialer: Hello, acceptor: Hello) -> bytes:
    """The bytes both proofs sign and the session keys are salted with."""
    return encoding.pack(
        [
            dialer.member_id,
            acceptor.member_id,
            dialer.nonce,
            acceptor.nonce,
            dialer.ephemeral_key,
            acceptor.ephemeral_key,
        ]
    )


def encode_proof(identity: Identity, transcript: bytes) -> bytes:
    """Our proof of possession of our member key for this transcript."""
    domain = crypto.Domain(domains.PEER_HANDSHAKE, identity.chain_id)
    return encoding.pack({"signature": crypto.sign(identity.key, domain, transcript)})


def check_proof(data: bytes, *, public_key: bytes, chain_id: bytes, transcript: bytes) -> None:
    """Raise :class:`HandshakeRefused` unless ``data`` is ``public_key``'s proof."""
    try:
        document = encoding.unpack(data, HANDSHAKE_LIMITS)
    except encoding.EncodingError as error:
        raise HandshakeRefused("malformed_proof", str(error)) from None
    if type(document) is not dict or document.keys() != {"signature"}:
        raise HandshakeRefused("malformed_proof", "expected exactly a signature")
    domain = crypto.Domain(domains.PEER_HANDSHAKE, chain_id)
    if not crypto.verify(public_key, domain, transcript, document["signature"]):
        # A stale (rotated) key lands here too: we only know the current one.
        raise HandshakeRefused("bad_proof", "signature does not verify with the current key")


@dataclass(frozen=True, slots=True)
class FrameKeys:
    send_key: bytes
    receive_key: bytes


def derive_frame_keys(
    role: Role, ephemeral: X25519PrivateKey, peer_ephemeral_key: bytes, transcript: bytes
) -> FrameKeys:
    """One AEAD key per direction. Raises :class:`HandshakeRefused` (``bad_ephemeral_key``)."""
    try:
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(peer_ephemeral_key))
    except ValueError:
        raise HandshakeRefused("bad_ephemeral_key", "no usable X25519 shared secret") from None
    salt = hashlib.sha256(transcript).digest()

    def derive(info: bytes) -> bytes:
        kdf = HKDF(algorithm=hashes.SHA256(), length=SESSION_KEY_BYTES, salt=salt, info=info)
        return kdf.derive(shared)

    dialer_out = derive(FRAME_KEY_INFO_DIALER_OUT)
    acceptor_out = derive(FRAME_KEY_INFO_ACCEPTOR_OUT)
    if role is Role.DIALER:
        return FrameKeys(send_key=dialer_out, receive_key=acceptor_out)
    return FrameKeys(send_key=acceptor_out, receive_key=dialer_out)


# --- frames ------------------------------------------------------------------------------------


class BadFrame(Exception):
    """A frame that must not be delivered; ``reason`` is a stable, countable slug."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameSealer:
    """Numbers and encrypts (ChaCha20-Poly1305) the frames of one direction of one connection."""

    __slots__ = ("_aead", "_sequence")

    def __init__(self, key: bytes) -> None:
        assert len(key) == SESSION_KEY_BYTES
        self._aead = ChaCha20Poly1305(key)
        self._sequence = 0

    def seal(self, payload: bytes) -> bytes:
        """Return ``sequence || ciphertext || tag`` and advance the sequence."""
        assert self._sequence <= SEQUENCE_MAX, "sequence space exhausted"
        header = self._sequence.to_bytes(SEQUENCE_BYTES, "big")
        # Each key is used by one sealer only and its sequence never repeats: nonces are unique.
        sealed = self._aead.encrypt(NONCE_PADDING + header, payload, header)
        self._sequence += 1
        return header + sealed


class FrameOpener:
    """Checks and decrypts the frames of one direction of one connection, in order."""

    __slots__ = ("_aead", "_expected_sequence", "_frame_bytes_max")

    def __init__(self, key: bytes, *, frame_bytes_max: int) -> None:
        assert len(key) == SESSION_KEY_BYTES
        self._aead = ChaCha20Poly1305(key)
        self._frame_bytes_max = frame_bytes_max
        self._expected_sequence = 0

    def open(self, frame: bytes) -> bytes:
        """Return the payload of the next frame. Raises :class:`BadFrame`."""
        if len(frame) < FRAME_OVERHEAD_BYTES:
            raise BadFrame("too_short")
        if len(frame) - FRAME_OVERHEAD_BYTES > self._frame_bytes_max:
            raise BadFrame("too_large")
        header = bytes(frame[:SEQUENCE_BYTES])
        try:
            payload = self._aead.decrypt(
                NONCE_PADDING + header, memoryview(frame)[SEQUENCE_BYTES:], header
            )
        except InvalidTag:
            raise BadFrame("bad_tag") from None
        # Checked after the tag: a replayed or reordered genuine frame lands here.
        if int.from_bytes(header, "big") != self._expected_sequence:
            raise BadFrame("wrong_sequence")
        self._expected_sequence += 1
        return payload


@dataclass(frozen=True, slots=True, kw_only=True)
class Session:
    """An authenticated connection's peer and frame state."""

    peer_id: str
    peer_public_key: bytes
    role: Role
    sealer: FrameSealer
    opener: FrameOpener


class WebSocketLike(Protocol):
    """What the handshake needs of aiohttp's server and client WebSockets."""

    async def send_bytes(self, data: bytes) -> None: ...

    async def receive(self, timeout: float | None = None) -> aiohttp.WSMessage: ...


async def perform_handshake(
    ws: WebSocketLike,
    *,
    role: Role,
    identity: Identity,
    members: Callable[[], Sequence[Member]],
    expected_peer_id: str | None,
    timeout_ms: int,
    frame_bytes_max: int,
    progress: Callable[[Stage], None] | None = None,
) -> Session:
    """Run our side of the handshake on an open WebSocket; return the authenticated session.

    ``expected_peer_id`` is the member a dialer dialed (None for an acceptor). An acceptor
    calls ``progress(Stage.HELLO)`` once the dialer's hello names a current member, and
    ``progress(Stage.SETTLED)`` once its proof verifies, before answering it: the dialer sends
    nothing more until it has our proof, so whatever arrives from then on comes from a
    member. Raises :class:`HandshakeRefused`; never closes ``ws`` (the caller does).
    """
    assert (role is Role.DIALER) == (expected_peer_id is not None)
    try:
        async with asyncio.timeout(timeout_ms / 1000):
            if role is Role.DIALER:
                assert expected_peer_id is not None
                return await _dialer_handshake(
                    ws, identity, members, expected_peer_id, frame_bytes_max
                )
            return await _acceptor_handshake(
                ws, identity, members, frame_bytes_max, progress or (lambda stage: None)
            )
    except TimeoutError:
        raise HandshakeRefused("timeout", f"no complete handshake in {timeout_ms} ms") from None
    except (ConnectionError, aiohttp.ClientError) as error:
        raise HandshakeRefused("connection_lost", type(error).__name__) from None


async def _dialer_handshake(
    ws: WebSocketLike,
    identity: Identity,
    members: Callable[[], Sequence[Member]],
    expected_peer_id: str,
    frame_bytes_max: int,
) -> Session:
    hello, ephemeral = new_hello(identity)
    await ws.send_bytes(hello.to_bytes())
    peer_hello = Hello.from_bytes(await _receive_handshake_message(ws))
    member = _check_hello(peer_hello, identity, members, Role.DIALER, expected_peer_id)
    transcript = handshake_transcript(dialer=hello, acceptor=peer_hello)
    keys = derive_frame_keys(Role.DIALER, ephemeral, peer_hello.ephemeral_key, transcript)
    await ws.send_bytes(encode_proof(identity, transcript))
    check_proof(
        await _receive_handshake_message(ws),
        public_key=member.public_key,
        chain_id=identity.chain_id,
        transcript=transcript,
    )
    session = _session(member, Role.DIALER, keys, frame_bytes_max)
    await ws.send_bytes(session.sealer.seal(CONFIRMATION_PAYLOAD))
    return session


async def _acceptor_handshake(
    ws: WebSocketLike,
    identity: Identity,
    members: Callable[[], Sequence[Member]],
    frame_bytes_max: int,
    progress: Callable[[Stage], None],
) -> Session:
    peer_hello = Hello.from_bytes(await _receive_handshake_message(ws))
    member = _check_hello(peer_hello, identity, members, Role.ACCEPTOR, None)
    progress(Stage.HELLO)
    hello, ephemeral = new_hello(identity)
    transcript = handshake_transcript(dialer=peer_hello, acceptor=hello)
    keys = derive_frame_keys(Role.ACCEPTOR, ephemeral, peer_hello.ephemeral_key, transcript)
    await ws.send_bytes(hello.to_bytes())
    check_proof(
        await _receive_handshake_message(ws),
        public_key=member.public_key,
        chain_id=identity.chain_id,
        transcript=transcript,
    )
    progress(Stage.SETTLED)
    await ws.send_bytes(encode_proof(identity, transcript))
    session = _session(member, Role.ACCEPTOR, keys, frame_bytes_max)
    # The dialer's confirmation: it accepted our proof and derived the same keys. Until then
    # we send nothing, so no queued frame is spent on a connection the dialer refuses.
    try:
        confirmation = session.opener.open(await _receive_handshake_message(ws))
    except BadFrame as bad:
        raise HandshakeRefused("bad_confirmation", bad.reason) from None
    if confirmation != CONFIRMATION_PAYLOAD:
        raise HandshakeRefused("bad_confirmation", "the confirmation frame is not empty")
    return session


def _session(member: Member, role: Role, keys: FrameKeys, frame_bytes_max: int) -> Session:
    return Session(
        peer_id=member.id,
        peer_public_key=member.public_key,
        role=role,
        sealer=FrameSealer(keys.send_key),
        opener=FrameOpener(keys.receive_key, frame_bytes_max=frame_bytes_max),
    )


async def _receive_handshake_message(ws: WebSocketLike) -> bytes:
    message = await ws.receive()
    if message.type is WSMsgType.BINARY:
        if len(message.data) > HANDSHAKE_MESSAGE_BYTES_MAX:
            raise HandshakeRefused("oversized_message", f"{len(message.data)} bytes")
        return bytes(message.data)
    if message.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED):
        raise HandshakeRefused("closed_by_peer", f"WebSocket close {message.data!r}")
    if message.type is WSMsgType.ERROR:
        raise HandshakeRefused("connection_lost", repr(message.data))
    raise HandshakeRefused("unexpected_message", message.type.name)


def _check_hello(
    hello: Hello,
    identity: Identity,
    members: Callable[[], Sequence[Member]],
    role: Role,
    expected_peer_id: str | None,
) -> Member:
    """The current member behind a peer's hello, or :class:`HandshakeRefused`."""
    if not hmac.compare_digest(hello.chain_id, identity.chain_id):
        raise HandshakeRefused("wrong_chain", f"chain_id {hello.chain_id.hex()}")
    if hello.member_id == identity.member_id:
        raise HandshakeRefused("self_connection", "the peer claims our own member id")
    member = next((m for m in members() if m.id == hello.member_id), None)
    if member is None:
        raise HandshakeRefused("not_member", f"{hello.member_id!r} is not a current member")
    if role is Role.DIALER and hello.member_id != expected_peer_id:
        raise HandshakeRefused(
            "unexpected_peer", f"dialed {expected_peer_id!r}, reached {hello.member_id!r}"
        )
    if role is Role.ACCEPTOR and not hello.member_id < identity.member_id:
        raise HandshakeRefused("wrong_direction", f"{hello.member_id!r} must be dialed by us")
    return member


# --- the transport -----------------------------------------------------------------------------


def _endpoint_host(endpoint: str) -> str:
    """The host of a member's ``host:port`` endpoint (an IPv6 host without its brackets).

    Only an IP address can be recognised as a member's source address: give endpoints as
    addresses, or members behind a host name share the strangers' budget."""
    host, _, _ = endpoint.rpartition(":")
    return host.strip("[]")


@dataclass(slots=True, eq=False)
class _Connection:
    session: Session
    ws: Any  # web.WebSocketResponse or aiohttp.ClientWebSocketResponse (no common base)


@dataclass(slots=True, eq=False)
class _Peer:
    """What we keep about one other member: its outbound queue and its connection."""

    member_id: str
    queue: collections.deque[bytes] = field(default_factory=collections.deque)
    queued_bytes: int = 0
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    connection: _Connection | None = None
    dial_task: asyncio.Task[None] | None = None


class PeerTransport:
    """The mesh of authenticated peer connections of one member (see the module docstring).

    Use from one event loop: :meth:`start`, then :meth:`send` / :meth:`broadcast` from any
    coroutine or callback on that loop, :meth:`refresh_members` after a member-set change,
    :meth:`close` at the end. ``on_frame(member_id, payload)`` runs on the loop, from the
    connection's reader, once per authenticated frame, in order per peer.
    """

    def __init__(
        self,
        *,
        member_id: str,
        key: crypto.PrivateKey,
        chain_id: bytes,
        members: Callable[[], Sequence[Member]],
        on_frame: Callable[[str, bytes], None],
        config: TransportConfig,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> None:
        assert len(chain_id) == crypto.CHAIN_ID_BYTES
        self._identity = Identity(member_id=member_id, key=key, chain_id=chain_id)
        self._members = members
        self._on_frame = on_frame
        self._config = config
        self._server_ssl = server_ssl
        self._client_ssl = client_ssl
        # Bounds (docs/operations.md, section 10): the counters' keys are fixed names and
        # reasons; one peer per current member, its queue bounded by queue_frames_max and
        # queue_bytes_max; one socket per accepted connection (connections_max) or dialed
        # member; a few tasks per socket or peer (dialer, writer, closer), each gone when done.
        self.counters: collections.Counter[str] = collections.Counter()
        self._peers: dict[str, _Peer] = {}
        self._sockets: set[Any] = set()  # every open WebSocket, to close them all on close()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._member_addresses: frozenset[str] = frozenset()
        self._guard = ConnectionGuard(
            name="peer",
            limits=config.guard_limits(),
            counters=self.counters,
            is_member_address=lambda address: address in self._member_addresses,
        )
        self._runner: web.AppRunner | None = None
        self._bound_port: int | None = None
        self._session: aiohttp.ClientSession | None = None
        self._random = random.SystemRandom()
        self._started = False
        self._closing = False
        self._cut: frozenset[str] = frozenset()

    @property
    def member_id(self) -> str:
        return self._identity.member_id

    @property
    def connection_guard(self) -> ConnectionGuard:
        """The peer port's connection budget (for the metrics)."""
        return self._guard

    @property
    def bound_port(self) -> int:
        """The TCP port we listen on (useful with ``listen_port=0``); after :meth:`start`."""
        assert self._bound_port is not None, "start() first"
        return self._bound_port

    # --- lifecycle ---

    async def start(self) -> None:
        """Listen for peers (GET /peer upgrades to a WebSocket) and start dialing."""
        assert self._runner is None, "start() is called once"
        app = web.Application()
        app.router.add_get(PEER_PATH, self._handle_peer)
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=self._config.close_timeout_ms / 1000
        )
        await self._runner.setup()
        site = GuardedSite(
            self._runner,
            self._config.listen_host,
            self._config.listen_port,
            guard=self._guard,
            ssl_context=self._server_ssl,
        )
        await site.start()
        self._bound_port = site.port
        self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        self._started = True
        self.refresh_members()
        logger.info("%s listening on port %d", self.member_id, self.bound_port)

    async def close(self) -> None:
        """Stop dialing and listening, close every connection, cancel every task."""
        if self._closing:
            return
        self._closing = True
        await asyncio.gather(*(self._close_ws(ws) for ws in list(self._sockets)))
        dialers = [peer.dial_task for peer in self._peers.values() if peer.dial_task is not None]
        await self._cancel_all(dialers)
        if self._runner is not None:
            await self._runner.cleanup()
        await self._cancel_all([])  # writers and closers spawned while connections ended
        if self._session is not None:
            await self._session.close()
        for peer in self._peers.values():
            peer.queue.clear()
            peer.queued_bytes = 0

    async def _cancel_all(self, tasks: list[asyncio.Task[None]]) -> None:
        tasks = tasks + list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- sending ---

    def send(self, member_id: str, payload: bytes) -> None:
        """Queue ``payload`` for ``member_id``; never blocks.

        A payload over ``frame_bytes_max``, or for an id that is not another current member
        (as of the last :meth:`refresh_members`), is dropped and counted as
        ``send_refused:<reason>``. A full queue drops its oldest frames
        (``queue_full_dropped``).
        """
        assert isinstance(payload, bytes), "payloads are bytes"
        if self._closing:
            self.counters["send_refused:closed"] += 1
            return
        peer = self._peers.get(member_id)
        if peer is None:
            self._count_and_log("send_refused:not_a_peer", "no peer %r to send to", member_id)
            return
        if member_id in self._cut:
            self.counters["frames_dropped:link_cut_out"] += 1
            return
        if len(payload) > self._config.frame_bytes_max:
            self._count_and_log(
                "send_refused:too_large",
                "payload of %d bytes for %s is over frame_bytes_max",
                len(payload),
                member_id,
            )
            return
        queue = peer.queue
        while queue and (
            len(queue) >= self._config.queue_frames_max
            or peer.queued_bytes + len(payload) > self._config.queue_bytes_max
        ):
            peer.queued_bytes -= len(queue.popleft())
            self.counters["queue_full_dropped"] += 1
        queue.append(payload)
        peer.queued_bytes += len(payload)
        assert len(queue) <= self._config.queue_frames_max
        assert peer.queued_bytes <= self._config.queue_bytes_max
        peer.wakeup.set()

    def broadcast(self, payload: bytes) -> None:
        """Queue ``payload`` for every other current member."""
        for member_id in list(self._peers):
            self.send(member_id, payload)

    def connected_peers(self) -> list[str]:
        """The ids of the members we hold an authenticated connection with, sorted."""
        return sorted(
            peer.member_id for peer in self._peers.values() if peer.connection is not None
        )

    def queued_frames(self, member_id: str) -> int:
        """How many frames wait in ``member_id``'s outbound queue (0 for an unknown id)."""
        peer = self._peers.get(member_id)
        return len(peer.queue) if peer is not None else 0

    # --- fault injection ---

    def cut_links(self, member_ids: Iterable[str]) -> None:
        """Cut the links to exactly ``member_ids`` (an empty set heals them all); for tests.

        A newly cut member loses its connection and its queued frames and is no longer
        dialed; a healed one is dialed again at once (see the module docstring). Ids that
        are not peers are kept: they take effect if such a member appears.
        """
        cut = frozenset(member_ids)
        assert all(isinstance(member_id, str) for member_id in cut)
        newly_cut, healed = cut - self._cut, self._cut - cut
        self._cut = cut
        if newly_cut or healed:
            logger.warning(
                "%s: fault injection: links cut to %s", self.member_id, sorted(cut) or "nobody"
            )
        for member_id in newly_cut:
            peer = self._peers.get(member_id)
            if peer is None:
                continue
            if peer.dial_task is not None:
                # Cancelling also ends a backoff sleep at once, so that healing is prompt.
                peer.dial_task.cancel()
            if peer.connection is not None:
                self.counters["connections_dropped:link_cut"] += 1
                self._close_soon(peer.connection.ws, "link_cut")
            self.counters["frames_dropped:link_cut_out"] += len(peer.queue)
            peer.queue.clear()
            peer.queued_bytes = 0
        for member_id in healed:
            peer = self._peers.get(member_id)
            if peer is not None:
                self._ensure_dialing(peer)

    @property
    def links_cut(self) -> list[str]:
        """The member ids whose links are cut (:meth:`cut_links`), sorted."""
        return sorted(self._cut)

    # --- membership ---

    def refresh_members(self) -> None:
        """Re-read ``members()``: forget removed members (dropping their connection and
        queue), drop connections authenticated with a key that has since rotated (the dialer
        re-establishes them), and add new members (dialing those we dial)."""
        current = {member.id: member for member in self._members()}
        self._member_addresses = frozenset(
            address_key(_endpoint_host(member.endpoint))
            for member_id, member in current.items()
            if member_id != self.member_id
        )
        for member_id, peer in list(self._peers.items()):
            member = current.get(member_id)
            if member is None:
                self._drop_peer(peer)
            elif (
                peer.connection is not None
                and peer.connection.session.peer_public_key != member.public_key
            ):
                logger.info("%s: key of %s rotated, reconnecting", self.member_id, member_id)
                self.counters["connections_dropped:key_rotated"] += 1
                self._close_soon(peer.connection.ws, "key_rotated")
        for member_id in current:
            if member_id == self.member_id:
                continue
            peer = self._peers.get(member_id) or self._add_peer(member_id)
            self._ensure_dialing(peer)

    def _add_peer(self, member_id: str) -> _Peer:
        assert member_id != self.member_id and member_id not in self._peers
        peer = _Peer(member_id=member_id)
        self._peers[member_id] = peer
        return peer

    def _ensure_dialing(self, peer: _Peer) -> None:
        """Run a dial loop for a peer we dial (one whose id sorts above ours), once started.

        Also restarts a loop that ended because the member had left ``members()`` before a
        :meth:`refresh_members` came to say so."""
        if not self._started or self._closing or not self.member_id < peer.member_id:
            return
        if peer.member_id in self._cut:
            return  # cut_links dials it again once healed
        if peer.dial_task is not None and not (
            peer.dial_task.done() or peer.dial_task.cancelling()  # cancelling: cut, then healed
        ):
            return
        peer.dial_task = asyncio.create_task(
            self._dial_loop(peer), name=f"sceau-dial-{peer.member_id}"
        )
        peer.dial_task.add_done_callback(self._report_task_failure)

    def _drop_peer(self, peer: _Peer) -> None:
        logger.info("%s: %s left the member set", self.member_id, peer.member_id)
        del self._peers[peer.member_id]
        if peer.dial_task is not None:
            peer.dial_task.cancel()
        if peer.connection is not None:
            self.counters["connections_dropped:removed_member"] += 1
            self._close_soon(peer.connection.ws, "removed_member")
        self.counters["queue_dropped:removed_member"] += len(peer.queue)
        peer.queue.clear()
        peer.queued_bytes = 0

    # --- dialing ---

    async def _dial_loop(self, peer: _Peer) -> None:
        """Keep one connection to ``peer`` (a member we dial) for as long as it is one."""
        attempt = 0
        first = True
        while not self._closing and self._peers.get(peer.member_id) is peer:
            if peer.member_id in self._cut:
                return  # cut_links starts a new loop once healed
            member = next((m for m in self._members() if m.id == peer.member_id), None)
            if member is None:
                return  # refresh_members will forget the peer
            if not first:
                self.counters["reconnects"] += 1
            first = False
            try:
                established = await self._dial_once(peer, member)
            except (OSError, aiohttp.ClientError, ssl.SSLError) as error:
                # A connection that breaks while being served must not end the dial loop:
                # the peer would stay disconnected until this node restarts.
                self.counters["connection_errors"] += 1
                logger.info("%s: connection to %s broke: %r", self.member_id, member.id, error)
                established = True  # it was up: retry at the shortest delay
            attempt = 0 if established else attempt + 1
            await asyncio.sleep(self._reconnect_delay_ms(attempt) / 1000)

    def _reconnect_delay_ms(self, attempt: int) -> float:
        """Exponential backoff with jitter, in [min, min(max, min * 2**attempt)]."""
        low = self._config.reconnect_delay_ms_min
        high = min(self._config.reconnect_delay_ms_max, low * 2 ** min(attempt, 32))
        return self._random.uniform(low, high)

    async def _dial_once(self, peer: _Peer, member: Member) -> bool:
        """Dial ``member`` once; serve the connection until it ends. True if it was
        established (the handshake succeeded)."""
        assert self._session is not None
        scheme = "wss" if self._client_ssl is not None else "ws"
        url = f"{scheme}://{member.endpoint}{PEER_PATH}"
        self.counters["dials"] += 1
        try:
            async with asyncio.timeout(self._config.handshake_timeout_ms / 1000):
                ws = await self._session.ws_connect(
                    url,
                    max_msg_size=self._config.message_size_limit,
                    heartbeat=self._config.heartbeat_ms / 1000,
                    compress=0,
                    timeout=aiohttp.ClientWSTimeout(ws_close=self._config.close_timeout_ms / 1000),
                    **({"ssl": self._client_ssl} if self._client_ssl is not None else {}),
                )
        except (TimeoutError, OSError, aiohttp.ClientError, ssl.SSLError) as error:
            self.counters["dial_failed"] += 1
            logger.debug("%s: dialing %s at %s failed: %r", self.member_id, member.id, url, error)
            return False
        self._sockets.add(ws)
        try:
            session = await self._handshake(ws, Role.DIALER, member.id, url)
            if session is None:
                return False
            await self._serve(session, ws)
            return True
        finally:
            self._sockets.discard(ws)
            await self._close_ws(ws)

    # --- accepting ---

    async def _handle_peer(self, request: web.Request) -> web.StreamResponse:
        """GET /peer: upgrade to a WebSocket, run the acceptor's handshake, serve frames.

        The connection's budget (caps, bytes and deadlines until it is authenticated) is
        enforced beneath, by the port's :class:`~node.runtime.connections.ConnectionGuard`; the
        handshake tells the guard how far the dialer got."""
        remote = request.remote or "?"
        if self._closing:
            return web.Response(status=503, text="closing")
        ws = web.WebSocketResponse(
            max_msg_size=self._config.message_size_limit,
            heartbeat=self._config.heartbeat_ms / 1000,
            compress=False,
            timeout=self._config.close_timeout_ms / 1000,
        )
        if not ws.can_prepare(request).ok:
            self._count_and_log("handshake_refused:not_websocket", "refusing %s", remote)
            return web.Response(status=400, text="a WebSocket upgrade is expected")
        transport = request.transport
        self._sockets.add(ws)
        try:
            await ws.prepare(request)
            session = await self._handshake(
                ws,
                Role.ACCEPTOR,
                None,
                remote,
                progress=lambda stage: self._guard.advance(transport, stage),
                transport=transport,
            )
            if session is not None:
                await self._serve(session, ws)
        except (ConnectionError, aiohttp.ClientError) as error:
            logger.debug("%s: connection from %s lost: %r", self.member_id, remote, error)
        finally:
            self._sockets.discard(ws)
            await self._close_ws(ws)
        return ws

    # --- one connection ---

    async def _handshake(
        self,
        ws: Any,
        role: Role,
        expected_peer_id: str | None,
        remote: str,
        *,
        progress: Callable[[Stage], None] | None = None,
        transport: Any = None,
    ) -> Session | None:
        """The session, or None after counting, logging and closing a refused handshake
        (unless the guard closed the connection: it counted that already)."""
        try:
            return await perform_handshake(
                ws,
                role=role,
                identity=self._identity,
                members=self._members,
                expected_peer_id=expected_peer_id,
                timeout_ms=self._config.handshake_timeout_ms,
                frame_bytes_max=self._config.frame_bytes_max,
                progress=progress,
            )
        except HandshakeRefused as refusal:
            if not self._closing and self._guard.closed_reason(transport) is None:
                self._count_and_log(
                    f"handshake_refused:{refusal.reason}",
                    "%s: handshake as %s with %s refused: %s",
                    self.member_id,
                    role.value,
                    remote,
                    refusal,
                )
            await self._close_ws(ws, refusal.reason)
            return None

    async def _serve(self, session: Session, ws: Any) -> None:
        """Make ``ws`` the connection to ``session.peer_id`` and read frames until it ends."""
        member = next((m for m in self._members() if m.id == session.peer_id), None)
        if self._closing or member is None or member.public_key != session.peer_public_key:
            # The member set changed while the handshake ran.
            self.counters["connections_dropped:member_changed"] += 1
            return
        if session.peer_id in self._cut:
            self.counters["connections_refused:link_cut"] += 1
            return  # our caller closes the connection
        peer = self._peers.get(session.peer_id) or self._add_peer(session.peer_id)
        if peer.connection is not None:
            # Only the peer itself can complete a handshake as itself: its newer connection
            # wins (it restarted before we noticed the old one was dead).
            self.counters["connections_replaced"] += 1
            self._close_soon(peer.connection.ws, "replaced")
        connection = _Connection(session=session, ws=ws)
        peer.connection = connection
        self.counters["connections_established"] += 1
        logger.info("%s: connected to %s", self.member_id, session.peer_id)
        writer = self._spawn(self._write_loop(peer, connection), f"sceau-write-{peer.member_id}")
        try:
            await self._read_loop(connection)
        finally:
            writer.cancel()
            if peer.connection is connection:
                peer.connection = None
            logger.info("%s: disconnected from %s", self.member_id, session.peer_id)

    async def _read_loop(self, connection: _Connection) -> None:
        """Deliver the connection's frames until it closes or a frame is bad."""
        ws = connection.ws
        peer_id = connection.session.peer_id
        while True:
            message = await ws.receive()
            if message.type is WSMsgType.BINARY:
                try:
                    payload = connection.session.opener.open(message.data)
                except BadFrame as bad:
                    await self._refuse_frame(connection, bad.reason)
                    return
                self.counters["frames_received"] += 1
                self.counters["bytes_received"] += len(payload)
                self._deliver(peer_id, payload)
            elif message.type is WSMsgType.TEXT:
                await self._refuse_frame(connection, "text_frame")
                return
            elif message.type is WSMsgType.ERROR:
                error = message.data
                if getattr(error, "code", None) == WSCloseCode.MESSAGE_TOO_BIG:
                    await self._refuse_frame(connection, "too_large")
                elif isinstance(error, TimeoutError):  # aiohttp's heartbeat: no pong in time
                    self.counters["heartbeat_timeouts"] += 1
                    logger.info("%s: %s stopped answering pings", self.member_id, peer_id)
                else:
                    self.counters["connection_errors"] += 1
                    logger.info("%s: connection to %s failed: %r", self.member_id, peer_id, error)
                return
            else:  # CLOSE, CLOSING, CLOSED: the peer or we closed it.
                return

    async def _refuse_frame(self, connection: _Connection, reason: str) -> None:
        self._count_and_log(
            f"bad_frame:{reason}",
            "%s: bad frame (%s) from %s, closing the connection",
            self.member_id,
            reason,
            connection.session.peer_id,
        )
        await self._close_ws(connection.ws, reason)

    def _deliver(self, peer_id: str, payload: bytes) -> None:
        if peer_id in self._cut:  # arrived before the connection closed
            self.counters["frames_dropped:link_cut_in"] += 1
            return
        try:
            self._on_frame(peer_id, payload)
        except Exception:
            # The daemon's bug, not the peer's: say so loudly, keep the connection.
            self.counters["on_frame_errors"] += 1
            logger.exception("%s: on_frame failed for a frame from %s", self.member_id, peer_id)

    async def _write_loop(self, peer: _Peer, connection: _Connection) -> None:
        """Send the peer's queued payloads, in order, while this is its connection."""
        while peer.connection is connection:
            if not peer.queue:
                peer.wakeup.clear()
                await peer.wakeup.wait()
                continue
            payload = peer.queue.popleft()
            peer.queued_bytes -= len(payload)
            frame = connection.session.sealer.seal(payload)
            try:
                await connection.ws.send_bytes(frame)
            except (ConnectionError, aiohttp.ClientError, RuntimeError) as error:
                # The frame is lost with the connection; consensus retransmits.
                self.counters["frames_lost"] += 1
                logger.info("%s: send to %s failed: %r", self.member_id, peer.member_id, error)
                self._close_soon(connection.ws, "send_failed")
                return
            self.counters["frames_sent"] += 1
            self.counters["bytes_sent"] += len(payload)

    # --- helpers ---

    async def _close_ws(self, ws: Any, reason: str = "") -> None:
        code = WSCloseCode.POLICY_VIOLATION if reason else WSCloseCode.GOING_AWAY
        try:
            await ws.close(code=code, message=reason.encode()[:120])
        except (ConnectionError, aiohttp.ClientError, RuntimeError) as error:
            logger.debug("%s: closing a WebSocket failed: %r", self.member_id, error)

    def _close_soon(self, ws: Any, reason: str) -> None:
        """Close ``ws`` from synchronous code; its reader then ends the connection."""
        self._spawn(self._close_ws(ws, reason), "sceau-close")

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """A task that :meth:`close` cancels and whose unexpected death is logged."""
        task = asyncio.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._report_task_failure)
        return task

    def _count_and_log(self, counter: str, message: str, *args: object) -> None:
        """Count a rejection; log it, but at most the first ten and then one per thousand,
        so that a hostile peer cannot flood the log (the one rule, node/runtime/connections.py)."""
        count_and_log(self.counters, logger, counter, message, *args)

    @staticmethod
    def _report_task_failure(task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None:
            logger.critical("transport task %s died", task.get_name(), exc_info=task.exception())
