"""Specification of the peer transport (node.runtime.transport), over real sockets on 127.0.0.1.

Each test is a short scenario run with ``asyncio.run`` (no pytest plugin): transports listen on
ephemeral ports, the member set is published once every port is known, and conditions are
polled with a deadline rather than slept for. Hostile peers are played by a minimal client
that speaks the handshake with the module's own functions, then misbehaves.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import functools
import hashlib
import hmac
import logging
import resource
import ssl
import subprocess
import sys
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
from support import write_self_signed_certificate

from ledger import crypto, domains, encoding
from ledger.model import Member
from node.runtime.connections import (
    ACCEPT_ERROR_MESSAGE,
    ConnectionGuard,
    GuardedSite,
    GuardLimits,
    Stage,
    address_key,
    install_accept_error_handler,
)
from node.runtime.transport import (
    FRAME_OVERHEAD_BYTES,
    BadFrame,
    FrameOpener,
    FrameSealer,
    HandshakeRefused,
    Hello,
    Identity,
    PeerTransport,
    Role,
    Session,
    TransportConfig,
    derive_frame_keys,
    encode_proof,
    handshake_transcript,
    perform_handshake,
)

CHAIN_ID = hashlib.sha256(b"consortium of the Rhone valley").digest()
OTHER_CHAIN_ID = hashlib.sha256(b"another consortium").digest()
DEADLINE_S = 5.0
SCENARIO_TIMEOUT_S = 20.0
UNUSED_ENDPOINT = "127.0.0.1:9"  # never dialed: the member it belongs to dials, or is down


def scenario(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test body in its own event loop, bounded in time."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(asyncio.wait_for(test(*args, **kwargs), SCENARIO_TIMEOUT_S))

    return run


async def until(condition: Callable[[], bool], what: str, deadline_s: float = DEADLINE_S) -> None:
    """Poll ``condition`` until it holds; fail the test after ``deadline_s``."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline_s
    while not condition():
        if loop.time() > end:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.005)


def config(**overrides: Any) -> TransportConfig:
    """Limits and timings scaled down so that scenarios take milliseconds."""
    values: dict[str, Any] = {
        "listen_host": "127.0.0.1",
        "listen_port": 0,
        "handshake_timeout_ms": 2_000,
        "reconnect_delay_ms_min": 10,
        "reconnect_delay_ms_max": 100,
        "heartbeat_ms": 2_000,
        "close_timeout_ms": 300,
    }
    values.update(overrides)
    return TransportConfig(**values)


def member(member_id: str, key: crypto.PrivateKey, endpoint: str = UNUSED_ENDPOINT) -> Member:
    return Member(
        id=member_id,
        name=member_id.title(),
        public_key=crypto.public_key_bytes(key),
        endpoint=endpoint,
    )


@dataclass
class Node:
    member_id: str
    key: crypto.PrivateKey
    transport: PeerTransport
    received: list[tuple[str, bytes]] = field(default_factory=list)

    def payloads_from(self, sender: str) -> list[bytes]:
        return [payload for who, payload in self.received if who == sender]


class Mesh:
    """Transports sharing one member list (``members``), unless a node is given its own."""

    def __init__(self) -> None:
        self.members: list[Member] = []
        self.nodes: dict[str, Node] = {}

    async def add(
        self,
        member_id: str,
        *,
        key: crypto.PrivateKey | None = None,
        transport_config: TransportConfig | None = None,
        chain_id: bytes = CHAIN_ID,
        members: Callable[[], Sequence[Member]] | None = None,
        on_frame: Callable[[str, bytes], None] | None = None,
        server_ssl: ssl.SSLContext | None = None,
        client_ssl: ssl.SSLContext | None = None,
    ) -> Node:
        """Start a transport and list it as a member (replacing an entry of the same id)."""
        key = key or crypto.generate_key()
        received: list[tuple[str, bytes]] = []
        transport = PeerTransport(
            member_id=member_id,
            key=key,
            chain_id=chain_id,
            members=members or (lambda: list(self.members)),
            on_frame=on_frame or (lambda sender, payload: received.append((sender, payload))),
            config=transport_config or config(),
            server_ssl=server_ssl,
            client_ssl=client_ssl,
        )
        await transport.start()
        node = Node(member_id, key, transport, received)
        self.nodes[member_id] = node
        self.list_member(member(member_id, key, f"127.0.0.1:{transport.bound_port}"))
        return node

    def list_member(self, entry: Member) -> None:
        self.members = [m for m in self.members if m.id != entry.id] + [entry]
        self.members.sort(key=lambda m: m.id)

    def unlist_member(self, member_id: str) -> None:
        self.members = [m for m in self.members if m.id != member_id]

    def refresh(self) -> None:
        for node in self.nodes.values():
            node.transport.refresh_members()

    async def restart(self, member_id: str, **overrides: Any) -> Node:
        """Close a member's transport and start a new one with the same key on the same port."""
        old = self.nodes[member_id]
        port = old.transport.bound_port
        await old.transport.close()
        transport_config = replace(overrides.pop("transport_config", config()), listen_port=port)
        overrides.setdefault("key", old.key)
        node = await self.add(member_id, transport_config=transport_config, **overrides)
        self.refresh()
        return node

    def fully_connected(self) -> bool:
        ids = set(self.nodes)
        return all(
            set(node.transport.connected_peers()) == ids - {member_id}
            for member_id, node in self.nodes.items()
        )

    async def close(self) -> None:
        for node in self.nodes.values():
            await node.transport.close()


async def start_mesh(member_ids: Sequence[str], **add_options: Any) -> Mesh:
    mesh = Mesh()
    for member_id in member_ids:
        await mesh.add(member_id, **add_options)
    mesh.refresh()
    await until(mesh.fully_connected, "a full mesh")
    return mesh


CLOSED_TYPES = (
    aiohttp.WSMsgType.CLOSE,
    aiohttp.WSMsgType.CLOSING,
    aiohttp.WSMsgType.CLOSED,
    aiohttp.WSMsgType.ERROR,
)


@dataclass
class RawPeer:
    """A hand-driven dialer: a genuine handshake from the module's own functions, then
    whatever frames the test chooses to send."""

    http: aiohttp.ClientSession
    ws: aiohttp.ClientWebSocketResponse
    session: Session | None = None

    async def close(self) -> None:
        await self.ws.close()
        await self.http.close()

    async def closed_within(self, seconds: float) -> bool:
        """True if the remote side closes (or cuts) the connection within ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                while True:
                    message = await self.ws.receive()
                    if message.type in CLOSED_TYPES:
                        return True
        except TimeoutError:
            return False

    async def close_code(self) -> int | None:
        """Wait for the remote side to close the connection; return its close code."""
        while True:
            message = await asyncio.wait_for(self.ws.receive(), DEADLINE_S)
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED):
                return self.ws.close_code


async def raw_connect(port: int, *, source: str | None = None) -> RawPeer:
    """An upgraded WebSocket to ``port`` that has said nothing yet, from ``source`` (another
    loopback address, e.g. 127.0.0.2: Linux routes all of 127.0.0.0/8 to lo) if given."""
    connector = aiohttp.TCPConnector(local_addr=(source, 0)) if source else None
    http = aiohttp.ClientSession(connector=connector)
    try:
        ws = await http.ws_connect(f"ws://127.0.0.1:{port}/peer")
    except BaseException:
        await http.close()
        raise
    return RawPeer(http, ws)


async def raw_dial(
    port: int,
    *,
    member_id: str,
    key: crypto.PrivateKey,
    members: Sequence[Member],
    expected_peer_id: str,
    chain_id: bytes = CHAIN_ID,
) -> RawPeer:
    peer = await raw_connect(port)
    try:
        peer.session = await perform_handshake(
            peer.ws,
            role=Role.DIALER,
            identity=Identity(member_id=member_id, key=key, chain_id=chain_id),
            members=lambda: members,
            expected_peer_id=expected_peer_id,
            timeout_ms=2_000,
            frame_bytes_max=1024,
        )
    except BaseException:
        await peer.close()
        raise
    return peer


# --- the mesh ------------------------------------------------------------------------------------

COMMUNES = ["bron", "caluire", "lyon", "villeurbanne"]


@scenario
async def test_a_full_mesh_delivers_broadcasts_and_sends_in_order_from_the_real_sender() -> None:
    mesh = await start_mesh(COMMUNES)
    try:
        count = 50
        for index in range(count):
            for sender in COMMUNES:
                mesh.nodes[sender].transport.broadcast(f"{sender}/{index}".encode())
        mesh.nodes["villeurbanne"].transport.send("bron", b"direct")
        expected_total = count * (len(COMMUNES) - 1)
        await until(
            lambda: all(
                len(node.received) >= expected_total + (node.member_id == "bron")
                for node in mesh.nodes.values()
            ),
            "every broadcast delivered",
        )
        for receiver in mesh.nodes.values():
            for sender in COMMUNES:
                if sender == receiver.member_id:
                    continue
                broadcasts = [p for p in receiver.payloads_from(sender) if p != b"direct"]
                assert broadcasts == [f"{sender}/{i}".encode() for i in range(count)]
        assert mesh.nodes["bron"].payloads_from("villeurbanne")[-1] == b"direct"
        assert mesh.nodes["lyon"].payloads_from("villeurbanne").count(b"direct") == 0
        # Exactly one connection per pair, each counted by both of its ends.
        pairs = len(COMMUNES) * (len(COMMUNES) - 1) // 2
        established = sum(
            n.transport.counters["connections_established"] for n in mesh.nodes.values()
        )
        assert established == 2 * pairs
        for node in mesh.nodes.values():
            assert node.transport.counters["frames_sent"] == expected_total + (
                node.member_id == "villeurbanne"
            )
            assert not [c for c in node.transport.counters if c.startswith(("bad_", "handshake"))]
    finally:
        await mesh.close()


@scenario
async def test_payloads_up_to_the_frame_limit_pass_and_larger_ones_are_refused() -> None:
    limit = 256 * 1024
    mesh = await start_mesh(["bron", "lyon"], transport_config=config(frame_bytes_max=limit))
    try:
        bron, lyon = mesh.nodes["bron"], mesh.nodes["lyon"]
        largest = bytes(range(256)) * (limit // 256)
        assert len(largest) == limit
        bron.transport.send("lyon", largest)
        bron.transport.send("lyon", largest + b"!")
        lyon.transport.send("bron", b"")
        await until(lambda: len(lyon.received) == 1 and len(bron.received) == 1, "delivery")
        assert lyon.received == [("bron", largest)]
        assert bron.received == [("lyon", b"")]
        assert bron.transport.counters["send_refused:too_large"] == 1
        assert bron.transport.counters["frames_sent"] == 1
    finally:
        await mesh.close()


@scenario
async def test_a_frame_over_the_receivers_limit_is_refused_and_the_connection_reopened() -> None:
    limit = 64 * 1024
    mesh = Mesh()
    try:
        bron = await mesh.add("bron", transport_config=config(frame_bytes_max=4 * limit))
        lyon = await mesh.add("lyon", transport_config=config(frame_bytes_max=limit))
        mesh.refresh()
        await until(mesh.fully_connected, "connected")
        bron.transport.send("lyon", bytes(limit + 1))
        await until(lambda: lyon.transport.counters["bad_frame:too_large"] == 1, "refusal")
        await until(lambda: bron.transport.counters["connections_established"] == 2, "redial")
        bron.transport.send("lyon", bytes(limit))
        await until(lambda: len(lyon.received) == 1, "delivery after the refusal")
        assert lyon.received == [("bron", bytes(limit))]
    finally:
        await mesh.close()


# --- handshake refusals ----------------------------------------------------------------------


@scenario
async def test_a_non_member_with_a_valid_key_is_refused() -> None:
    mesh = await start_mesh(["lyon"])
    try:
        lyon = mesh.nodes["lyon"]
        stranger = crypto.generate_key()
        with pytest.raises(HandshakeRefused) as refused:
            await raw_dial(
                lyon.transport.bound_port,
                member_id="bron",
                key=stranger,
                members=mesh.members,
                expected_peer_id="lyon",
            )
        assert refused.value.reason == "closed_by_peer"
        assert lyon.transport.counters["handshake_refused:not_member"] == 1
        assert lyon.transport.connected_peers() == []
    finally:
        await mesh.close()


@pytest.mark.parametrize("stale_side", ["dialer", "acceptor"])
@scenario
async def test_a_member_presenting_a_rotated_out_key_is_refused(stale_side: str) -> None:
    # bron < lyon, so bron dials and lyon accepts. The stale side still holds its old key
    # while the other side's member set already lists its new one.
    stale_id, verifier_id = ("bron", "lyon") if stale_side == "dialer" else ("lyon", "bron")
    mesh = Mesh()
    rotated: list[Member] = []
    try:
        for member_id in ("bron", "lyon"):
            own = member_id == verifier_id
            await mesh.add(member_id, members=(lambda: rotated) if own else None)
        new_key = crypto.generate_key()
        rotated[:] = [
            m.model_copy(update={"public_key": crypto.public_key_bytes(new_key)})
            if m.id == stale_id
            else m
            for m in mesh.members
        ]
        mesh.refresh()
        verifier = mesh.nodes[verifier_id].transport
        await until(lambda: verifier.counters["handshake_refused:bad_proof"] >= 2, "refusals")
        assert verifier.connected_peers() == []
        assert mesh.nodes[stale_id].transport.connected_peers() == []
        assert mesh.nodes["bron"].transport.counters["reconnects"] >= 1
    finally:
        await mesh.close()


@scenario
async def test_a_peer_of_another_consortium_is_refused() -> None:
    mesh = Mesh()
    try:
        await mesh.add("bron", chain_id=OTHER_CHAIN_ID)
        lyon = await mesh.add("lyon")
        mesh.refresh()
        await until(lambda: lyon.transport.counters["handshake_refused:wrong_chain"] >= 1, "x")
        assert lyon.transport.connected_peers() == []
        assert mesh.nodes["bron"].transport.connected_peers() == []
    finally:
        await mesh.close()


HOSTILE_OPENINGS: dict[str, Any] = {
    "malformed_hello": b"\x81\xa5nonce\xc0",
    "oversized_message": bytes(300),
    "unexpected_message": "hello?",
}


@pytest.mark.parametrize("reason", sorted(HOSTILE_OPENINGS))
@scenario
async def test_a_handshake_that_is_silent_or_garbled_is_refused(reason: str) -> None:
    mesh = await start_mesh(["lyon"], transport_config=config(handshake_timeout_ms=200))
    try:
        lyon = mesh.nodes["lyon"].transport
        raw = await raw_connect(lyon.bound_port)
        try:
            opening = HOSTILE_OPENINGS[reason]
            if isinstance(opening, str):
                await raw.ws.send_str(opening)
            else:
                await raw.ws.send_bytes(opening)
            assert await raw.close_code() == aiohttp.WSCloseCode.POLICY_VIOLATION
        finally:
            await raw.close()
        assert lyon.counters[f"handshake_refused:{reason}"] == 1
        assert lyon.connected_peers() == []
    finally:
        await mesh.close()


# --- the peer port's budget for unauthenticated connections ---------------------------------


def patient(**overrides: Any) -> TransportConfig:
    """Deadlines long enough that only the caps under test close anything."""
    values: dict[str, Any] = {"hello_timeout_ms": 5_000, "handshake_timeout_ms": 5_000}
    return config(**(values | overrides))


RawTcp = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def raw_tcp(port: int, opening: bytes, *, source: str = "127.0.0.1") -> RawTcp:
    """A bare TCP connection that sends ``opening`` and nothing more."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    writer.write(opening)
    await writer.drain()
    return reader, writer  # the writer too: once collected, it would close the connection


async def seconds_until_closed(connection: RawTcp) -> float:
    """Read until the server ends the connection; how long that took."""
    reader, _ = connection
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        async with asyncio.timeout(DEADLINE_S):
            while await reader.read(65_536):
                pass
    except ConnectionResetError:
        pass  # an abort with unread data resets the connection
    return loop.time() - started


@scenario
async def test_a_silent_upgrade_is_closed_at_the_hello_deadline() -> None:
    mesh = await start_mesh(["lyon"], transport_config=config(hello_timeout_ms=300))
    try:
        lyon = mesh.nodes["lyon"].transport
        loop = asyncio.get_running_loop()
        started = loop.time()
        raw = await raw_connect(lyon.bound_port)
        try:
            assert await raw.closed_within(DEADLINE_S)
        finally:
            await raw.close()
        assert 0.25 <= loop.time() - started < 2.0
        assert lyon.counters["listener_closed:hello_timeout"] == 1
        assert lyon.counters["handshake_refused:connection_lost"] == 0  # counted once
        await until(lambda: lyon.connection_guard.open_connections == 0, "released")
    finally:
        await mesh.close()


@scenario
async def test_an_upgrade_request_that_never_ends_is_closed_at_the_hello_deadline() -> None:
    mesh = await start_mesh(["lyon"], transport_config=config(hello_timeout_ms=300))
    try:
        lyon = mesh.nodes["lyon"].transport
        reader = await raw_tcp(lyon.bound_port, b"GET /peer HTTP/1.1\r\nHost: lyon\r\n")
        assert 0.25 <= await seconds_until_closed(reader) < 2.0
        assert lyon.counters["listener_closed:headers_timeout"] == 1
    finally:
        await mesh.close()


@scenario
async def test_a_large_hello_is_cut_off_at_the_handshake_byte_budget() -> None:
    mesh = await start_mesh(["lyon"], transport_config=patient(handshake_bytes_max=2_048))
    try:
        lyon = mesh.nodes["lyon"].transport
        raw = await raw_connect(lyon.bound_port)
        try:
            with contextlib.suppress(ConnectionError):
                await raw.ws.send_bytes(bytes(1024 * 1024))
            assert await raw.closed_within(DEADLINE_S)
        finally:
            await raw.close()
        assert lyon.counters["listener_closed:too_many_bytes"] == 1
        # aiohttp never got the whole message: our own size check never saw it.
        assert lyon.counters["handshake_refused:oversized_message"] == 0
    finally:
        await mesh.close()


@scenario
async def test_a_stranger_that_fakes_a_hello_and_stalls_is_closed_at_the_handshake_deadline() -> (
    None
):
    mesh = await start_mesh(["lyon"], transport_config=config(handshake_timeout_ms=400))
    try:
        lyon = mesh.nodes["lyon"].transport
        mesh.list_member(member("bron", crypto.generate_key()))  # its hello is public
        raw = await raw_connect(lyon.bound_port)
        try:
            hello = Hello(
                chain_id=CHAIN_ID, member_id="bron", nonce=bytes(32), ephemeral_key=b"\x09" * 32
            )
            await raw.ws.send_bytes(hello.to_bytes())
            answer = await asyncio.wait_for(raw.ws.receive(), DEADLINE_S)
            assert Hello.from_bytes(answer.data).member_id == "lyon"
            assert await raw.closed_within(DEADLINE_S)  # no proof: closed
        finally:
            await raw.close()
        assert lyon.counters["listener_closed:settled_timeout"] == 1
        assert lyon.counters["listener_closed:hello_timeout"] == 0
    finally:
        await mesh.close()


@scenario
async def test_stalled_connections_from_a_members_address_are_evicted_for_the_member() -> None:
    # Everyone is on 127.0.0.1 here, members and the staller alike: the per-address cap alone
    # would lock bron out; evicting the least advanced, oldest connection lets it in.
    limits = patient(
        connections_max=8,
        connections_per_address_max=4,
        handshakes_pending_max=8,
        handshakes_pending_strangers_max=8,
    )
    mesh = Mesh()
    raws: list[RawPeer] = []
    try:
        lyon = await mesh.add("lyon", transport_config=limits)
        raws += [await raw_connect(lyon.transport.bound_port) for _ in range(4)]
        await mesh.add("bron")
        mesh.refresh()
        await until(mesh.fully_connected, "bron connected despite the stallers")
        counters = lyon.transport.counters
        assert counters["listener_evicted:connections_per_address_max"] >= 1
        assert await raws[0].closed_within(DEADLINE_S), "the oldest staller went first"
        assert not await raws[-1].closed_within(0.2), "the newest staller is still there"
    finally:
        for raw in raws:
            await raw.close()
        await mesh.close()


@scenario
async def test_strangers_have_a_share_of_the_pending_slots_and_never_evict_a_member_address() -> (
    None
):
    limits = patient(
        connections_max=8,
        connections_per_address_max=8,
        handshakes_pending_max=3,
        handshakes_pending_strangers_max=2,
    )
    mesh = await start_mesh(["lyon"], transport_config=limits)
    raws: list[RawPeer] = []
    try:
        lyon = mesh.nodes["lyon"].transport
        mesh.list_member(member("bron", crypto.generate_key(), "127.0.0.1:9"))
        lyon.refresh_members()  # 127.0.0.1 is now a member's address; 127.0.0.2-4 are not
        port = lyon.bound_port
        from_member_address = await raw_connect(port)
        first, second = [await raw_connect(port, source=f"127.0.0.{i}") for i in (2, 3)]
        third = await raw_connect(port, source="127.0.0.4")  # over the strangers' share
        raws += [from_member_address, first, second, third]
        assert await first.closed_within(DEADLINE_S), "the oldest stranger is evicted"
        assert lyon.counters["listener_evicted:unsettled_strangers_max"] == 1
        # A member's address over the whole pool evicts a stranger, not its older neighbour.
        raws.append(await raw_connect(port))
        assert await second.closed_within(DEADLINE_S)
        assert lyon.counters["listener_evicted:unsettled_max"] == 1
        assert not await from_member_address.closed_within(0.2)
        assert not await third.closed_within(0.01)
        assert lyon.connection_guard.unsettled_connections == 3
    finally:
        for raw in raws:
            await raw.close()
        await mesh.close()


@scenario
async def test_a_newcomer_is_refused_at_accept_when_nobody_can_be_evicted() -> None:
    # lyon accepts bron and caluire (ids below its own); authenticated, they are never evicted.
    limits = config(
        connections_max=2,
        connections_per_address_max=2,
        handshakes_pending_max=2,
        handshakes_pending_strangers_max=2,
    )
    mesh = Mesh()
    try:
        lyon = await mesh.add("lyon", transport_config=limits)
        await mesh.add("bron")
        await mesh.add("caluire")
        mesh.refresh()
        await until(mesh.fully_connected, "a full mesh")
        with pytest.raises((aiohttp.ClientError, ConnectionError)):
            await (await raw_connect(lyon.transport.bound_port)).close()
        # (aiohttp's client may try twice.)
        assert lyon.transport.counters["listener_refused:connections_per_address_max"] >= 1
        assert lyon.transport.connected_peers() == ["bron", "caluire"]
    finally:
        await mesh.close()


# --- the API port's budget (the same guard, settled once the request headers are in) ----------


API_LIMITS = GuardLimits(
    connections_max=6,
    connections_per_address_max=4,
    unsettled_max=6,
    unsettled_strangers_max=6,
    unsettled_bytes_max=1_024,
    settle_stage=Stage.HEADERS,
    milestones_ms=((Stage.HEADERS, 300),),
)


async def serve_api(limits: GuardLimits = API_LIMITS) -> tuple[web.AppRunner, ConnectionGuard, int]:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    guard = ConnectionGuard(name="api", limits=limits)
    site = GuardedSite(runner, "127.0.0.1", 0, guard=guard)
    await site.start()
    return runner, guard, site.port


@scenario
async def test_an_api_connection_must_send_its_request_headers_in_time_and_in_bytes() -> None:
    runner, guard, port = await serve_api()
    try:
        partial = await raw_tcp(port, b"GET /healthz HTTP/1.1\r\n")
        assert 0.25 <= await seconds_until_closed(partial) < 2.0
        assert guard.counters["listener_closed:headers_timeout"] == 1
        endless = await raw_tcp(port, b"GET /healthz HTTP/1.1\r\nX-Junk: " + b"a" * 2_000)
        assert await seconds_until_closed(endless) < 0.25
        assert guard.counters["listener_closed:too_many_bytes"] == 1
        # A complete request settles its connection: kept alive past the header deadline.
        async with aiohttp.ClientSession() as http:
            for _ in range(2):
                async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert await response.text() == "ok"
                await asyncio.sleep(0.4)
        assert guard.counters["listener_closed:headers_timeout"] == 1
    finally:
        await runner.cleanup()


@scenario
async def test_an_api_flood_evicts_its_own_stalled_connections_and_the_api_still_answers() -> None:
    runner, guard, port = await serve_api()
    readers: list[RawTcp] = []
    try:
        readers += [await raw_tcp(port, b"GET /he", source="127.0.0.2") for _ in range(5)]
        assert await seconds_until_closed(readers[0]) < 0.25, "per address: the oldest goes"
        assert guard.counters["listener_evicted:connections_per_address_max"] == 1
        readers += [await raw_tcp(port, b"GET /he", source="127.0.0.3") for _ in range(3)]
        assert await seconds_until_closed(readers[1]) < 0.25, "in all: the oldest goes"
        assert guard.counters["listener_evicted:connections_max"] == 1
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{port}/healthz") as response,
        ):
            assert response.status == 200
        assert guard.open_connections <= API_LIMITS.connections_max
    finally:
        await runner.cleanup()


def test_the_guard_refuses_limits_that_do_not_nest() -> None:
    with pytest.raises(ValueError):
        replace(API_LIMITS, unsettled_max=API_LIMITS.connections_max + 1)
    with pytest.raises(ValueError):
        replace(API_LIMITS, connections_per_address_max=API_LIMITS.connections_max + 1)
    with pytest.raises(ValueError):
        replace(API_LIMITS, milestones_ms=((Stage.HELLO, 10), (Stage.HEADERS, 20)))


def test_per_address_caps_count_an_ipv6_source_by_its_64_network() -> None:
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key("192.0.2.7") == "192.0.2.7"


# --- the process: accept errors and the open files limit ---------------------------------------


def test_accept_errors_are_counted_and_logged_without_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    loop = asyncio.new_event_loop()
    try:
        counters: collections.Counter[str] = collections.Counter()
        install_accept_error_handler(loop, counters)
        caplog.set_level(logging.WARNING)
        error = OSError(errno.EMFILE, "Too many open files")
        for _ in range(2_500):
            loop.call_exception_handler({"message": ACCEPT_ERROR_MESSAGE, "exception": error})
        assert counters["listener_accept_errors:EMFILE"] == 2_500
        lines = [r for r in caplog.records if r.name == "sceau.connections"]
        assert len(lines) == 10 + 2  # the first ten, then the 1,000th and the 2,000th
        assert all(record.exc_info is None for record in lines)
        # Anything else still reaches asyncio's own handler.
        loop.call_exception_handler({"message": "something else", "exception": ValueError()})
        assert [r for r in caplog.records if r.name == "asyncio"]
    finally:
        loop.close()


def test_the_open_files_soft_limit_is_raised_to_the_hard_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowered = min(256, hard)
    script = (
        "import resource; from node.runtime.connections import raise_open_files_limit; "
        "print(*raise_open_files_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (lowered, hard)),
    )
    reported_soft, reported_hard, actual_soft, actual_hard = map(int, result.stdout.split())
    assert reported_hard == actual_hard == hard
    assert reported_soft == actual_soft == (hard if hard != resource.RLIM_INFINITY else actual_soft)
    assert actual_soft >= lowered


@scenario
async def test_a_peer_that_stops_answering_pings_is_disconnected() -> None:
    mesh = await start_mesh(["lyon"], transport_config=config(heartbeat_ms=100))
    try:
        lyon = mesh.nodes["lyon"]
        key = crypto.generate_key()
        mesh.list_member(member("bron", key))
        # Never reading from the socket, the raw peer never answers lyon's pings.
        raw = await raw_dial(
            lyon.transport.bound_port,
            member_id="bron",
            key=key,
            members=mesh.members,
            expected_peer_id="lyon",
        )
        try:
            await until(lambda: lyon.transport.connected_peers() == ["bron"], "connected")
            await until(lambda: lyon.transport.counters["heartbeat_timeouts"] == 1, "timeout")
            assert lyon.transport.connected_peers() == []
        finally:
            await raw.close()
    finally:
        await mesh.close()


@pytest.mark.parametrize(
    ("claimed_id", "reason"),
    [("villeurbanne", "wrong_direction"), ("lyon", "self_connection")],
)
@scenario
async def test_a_member_may_only_dial_members_above_it_and_never_itself(
    claimed_id: str, reason: str
) -> None:
    mesh = await start_mesh(["lyon"])
    try:
        lyon = mesh.nodes["lyon"]
        claimed_key = lyon.key if claimed_id == "lyon" else crypto.generate_key()
        mesh.list_member(member(claimed_id, claimed_key))
        with pytest.raises(HandshakeRefused):
            await raw_dial(
                lyon.transport.bound_port,
                member_id=claimed_id,
                key=claimed_key,
                members=mesh.members,
                expected_peer_id="lyon",
            )
        assert lyon.transport.counters[f"handshake_refused:{reason}"] == 1
    finally:
        await mesh.close()


@scenario
async def test_a_dialer_refuses_to_talk_to_a_member_it_did_not_dial() -> None:
    mesh = await start_mesh(["lyon"])
    try:
        key = crypto.generate_key()
        mesh.list_member(member("bron", key))
        mesh.list_member(member("caluire", crypto.generate_key()))
        with pytest.raises(HandshakeRefused) as refused:
            await raw_dial(
                mesh.nodes["lyon"].transport.bound_port,
                member_id="bron",
                key=key,
                members=mesh.members,
                expected_peer_id="caluire",
            )
        assert refused.value.reason == "unexpected_peer"
    finally:
        await mesh.close()


@scenario
async def test_members_known_before_start_are_dialed_once_started() -> None:
    mesh = Mesh()
    try:
        lyon = await mesh.add("lyon")
        key = crypto.generate_key()
        mesh.list_member(member("bron", key))
        received: list[tuple[str, bytes]] = []
        bron = PeerTransport(
            member_id="bron",
            key=key,
            chain_id=CHAIN_ID,
            members=lambda: mesh.members,
            on_frame=lambda sender, payload: received.append((sender, payload)),
            config=config(),
        )
        bron.refresh_members()
        bron.send("lyon", b"queued before start")
        await bron.start()
        try:
            lyon.transport.refresh_members()
            await until(lambda: lyon.received == [("bron", b"queued before start")], "delivery")
        finally:
            await bron.close()
    finally:
        await mesh.close()


def test_hello_decoding_refuses_anything_but_the_exact_canonical_shape() -> None:
    good = {
        "chain_id": CHAIN_ID,
        "member_id": "bron",
        "nonce": bytes(32),
        "ephemeral_key": bytes(32),
    }
    assert Hello.from_bytes(encoding.pack(good)) == Hello(**good)
    bad_documents = [
        {**good, "nonce": bytes(31)},
        {**good, "member_id": 7},
        {**good, "extra": b""},
        {k: v for k, v in good.items() if k != "nonce"},
        [good],
    ]
    for document in bad_documents:
        with pytest.raises(HandshakeRefused) as refused:
            Hello.from_bytes(encoding.pack(document))
        assert refused.value.reason == "malformed_hello"
    with pytest.raises(HandshakeRefused):
        Hello.from_bytes(b"\xc1")
    with pytest.raises(HandshakeRefused):
        Hello.from_bytes(encoding.pack({**good, "member_id": "x" * 300}))


def test_proofs_and_session_keys_follow_the_documented_byte_format() -> None:
    dialer_ephemeral = X25519PrivateKey.from_private_bytes(bytes([1]) * 32)
    acceptor_ephemeral = X25519PrivateKey.from_private_bytes(bytes([2]) * 32)

    def hello(member_id: str, ephemeral: X25519PrivateKey, nonce: bytes) -> Hello:
        raw = ephemeral.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        return Hello(chain_id=CHAIN_ID, member_id=member_id, nonce=nonce, ephemeral_key=raw)

    dialer = hello("bron", dialer_ephemeral, bytes([3]) * 32)
    acceptor = hello("lyon", acceptor_ephemeral, bytes([4]) * 32)
    transcript = handshake_transcript(dialer=dialer, acceptor=acceptor)
    assert transcript == encoding.pack(
        ["bron", "lyon", dialer.nonce, acceptor.nonce, dialer.ephemeral_key, acceptor.ephemeral_key]
    )

    key = crypto.key_from_seed(bytes([5]) * 32)
    identity = Identity(member_id="bron", key=key, chain_id=CHAIN_ID)
    signature = encoding.unpack(encode_proof(identity, transcript))["signature"]
    domain = crypto.Domain(domains.PEER_HANDSHAKE, CHAIN_ID)
    assert crypto.verify(crypto.public_key_bytes(key), domain, transcript, signature)

    # RFC 5869 by hand: PRK = HMAC(salt, shared); key = HMAC(PRK, info || 0x01).
    shared = dialer_ephemeral.exchange(acceptor_ephemeral.public_key())
    prk = hmac.new(hashlib.sha256(transcript).digest(), shared, hashlib.sha256).digest()

    def expand(info: bytes) -> bytes:
        return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()

    dialer_keys = derive_frame_keys(
        Role.DIALER, dialer_ephemeral, acceptor.ephemeral_key, transcript
    )
    acceptor_keys = derive_frame_keys(
        Role.ACCEPTOR, acceptor_ephemeral, dialer.ephemeral_key, transcript
    )
    assert dialer_keys.send_key == expand(b"sceau/peer-frame/v1 dialer->acceptor")
    assert dialer_keys.receive_key == expand(b"sceau/peer-frame/v1 acceptor->dialer")
    assert (acceptor_keys.send_key, acceptor_keys.receive_key) == (
        dialer_keys.receive_key,
        dialer_keys.send_key,
    )
    with pytest.raises(HandshakeRefused) as refused:
        derive_frame_keys(Role.DIALER, dialer_ephemeral, bytes(32), transcript)
    assert refused.value.reason == "bad_ephemeral_key"

    # Frames: sequence || ChaCha20-Poly1305(key, nonce = 4 zero bytes || sequence,
    # associated data = sequence), i.e. the ciphertext then its 16-byte tag (RFC 8439).
    sealer = FrameSealer(dialer_keys.send_key)
    frames = [sealer.seal(b"payload"), sealer.seal(b"payload")]
    aead = ChaCha20Poly1305(dialer_keys.send_key)
    for sequence, frame in enumerate(frames):
        header = sequence.to_bytes(8, "big")
        assert frame == header + aead.encrypt(bytes(4) + header, b"payload", header)
        assert b"payload" not in frame
    assert frames[0][8:] != frames[1][8:], "one nonce per frame: equal payloads look different"


# --- frames ------------------------------------------------------------------------------------


def test_frames_are_sequence_ciphertext_and_tag_and_open_only_in_order() -> None:
    key = bytes(range(32))
    sealer, opener = FrameSealer(key), FrameOpener(key, frame_bytes_max=100)
    frames = [sealer.seal(bytes([i]) * i) for i in range(5)]
    assert frames[3][:8] == (3).to_bytes(8, "big")
    assert len(frames[3]) == 3 + FRAME_OVERHEAD_BYTES == 3 + 8 + 16
    assert frames[3][8:11] != bytes([3]) * 3, "the payload is encrypted"
    assert [opener.open(frame) for frame in frames] == [bytes([i]) * i for i in range(5)]
    for frame, reason in [
        (frames[4], "wrong_sequence"),
        (frames[4][:-1] + b"\x00", "bad_tag"),
        (b"\x00" * (FRAME_OVERHEAD_BYTES - 1), "too_short"),
        (bytes(100 + FRAME_OVERHEAD_BYTES + 1), "too_large"),
    ]:
        with pytest.raises(BadFrame) as bad:
            opener.open(frame)
        assert bad.value.reason == reason
    other_direction = FrameOpener(bytes(32), frame_bytes_max=100)
    with pytest.raises(BadFrame):
        other_direction.open(frames[0])


def _tamper_cases() -> dict[str, Callable[[FrameSealer, bytes], list[Any]]]:
    def flip_tag(sealer: FrameSealer, genuine: bytes) -> list[Any]:
        frame = sealer.seal(b"forged")
        return [frame[:-1] + bytes([frame[-1] ^ 1])]

    def alter_payload(sealer: FrameSealer, genuine: bytes) -> list[Any]:
        frame = bytearray(sealer.seal(b"forged"))
        frame[9] ^= 0x20
        return [bytes(frame)]

    def skip_a_sequence_number(sealer: FrameSealer, genuine: bytes) -> list[Any]:
        sealer.seal(b"never sent")
        return [sealer.seal(b"forged")]

    def reorder(sealer: FrameSealer, genuine: bytes) -> list[Any]:
        first, second = sealer.seal(b"first"), sealer.seal(b"second")
        return [second, first]

    return {
        "bad_tag/flipped_tag": flip_tag,
        "bad_tag/altered_payload": alter_payload,
        "wrong_sequence/skipped": skip_a_sequence_number,
        "wrong_sequence/reordered": reorder,
        "wrong_sequence/replayed": lambda sealer, genuine: [genuine],
        "too_short/truncated": lambda sealer, genuine: [genuine[:20]],
        "text_frame/text": lambda sealer, genuine: ["text instead of bytes"],
    }


TAMPER_CASES = _tamper_cases()


@pytest.mark.parametrize("case", sorted(TAMPER_CASES))
@scenario
async def test_a_tampered_frame_is_counted_closes_the_connection_and_is_never_delivered(
    case: str,
) -> None:
    mesh = await start_mesh(["lyon"])
    try:
        lyon = mesh.nodes["lyon"]
        key = crypto.generate_key()
        mesh.list_member(member("bron", key))
        raw = await raw_dial(
            lyon.transport.bound_port,
            member_id="bron",
            key=key,
            members=mesh.members,
            expected_peer_id="lyon",
        )
        try:
            assert raw.session is not None
            genuine = raw.session.sealer.seal(b"genuine")
            await raw.ws.send_bytes(genuine)
            await until(lambda: lyon.received == [("bron", b"genuine")], "genuine delivery")
            for message in TAMPER_CASES[case](raw.session.sealer, genuine):
                if isinstance(message, str):
                    await raw.ws.send_str(message)
                else:
                    await raw.ws.send_bytes(message)
            assert await raw.close_code() == aiohttp.WSCloseCode.POLICY_VIOLATION
        finally:
            await raw.close()
        reason = case.split("/")[0]
        assert lyon.transport.counters[f"bad_frame:{reason}"] == 1
        assert lyon.received == [("bron", b"genuine")]
        await until(lambda: lyon.transport.connected_peers() == [], "connection dropped")
    finally:
        await mesh.close()


@scenario
async def test_an_on_frame_exception_is_logged_and_the_connection_kept(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[bytes] = []

    def fragile(sender: str, payload: bytes) -> None:
        if payload == b"boom":
            raise RuntimeError("the daemon's bug")
        received.append(payload)

    mesh = Mesh()
    try:
        bron = await mesh.add("bron")
        lyon = await mesh.add("lyon", on_frame=fragile)
        mesh.refresh()
        await until(mesh.fully_connected, "connected")
        with caplog.at_level(logging.ERROR, logger="sceau.transport"):
            for payload in (b"before", b"boom", b"after"):
                bron.transport.send("lyon", payload)
            await until(lambda: received == [b"before", b"after"], "delivery around the bug")
        assert lyon.transport.counters["on_frame_errors"] == 1
        assert lyon.transport.counters["connections_established"] == 1
        [record] = [r for r in caplog.records if r.name == "sceau.transport"]
        assert record.exc_info is not None and "the daemon's bug" in str(record.exc_info[1])
    finally:
        await mesh.close()


# --- reconnection and queues -----------------------------------------------------------------


@pytest.mark.parametrize("restarting", ["bron", "lyon"])  # the dialer, then the acceptor
@scenario
async def test_peers_reconnect_after_a_restart_and_deliver_what_was_queued(restarting: str) -> None:
    mesh = await start_mesh(["bron", "lyon"])
    try:
        staying = "lyon" if restarting == "bron" else "bron"
        await mesh.nodes[restarting].transport.close()
        survivor = mesh.nodes[staying].transport
        await until(lambda: survivor.connected_peers() == [], "the loss noticed")
        for index in range(5):
            survivor.send(restarting, b"queued %d" % index)
        assert survivor.queued_frames(restarting) == 5
        restarted = await mesh.restart(restarting)
        await until(lambda: len(restarted.received) == 5, "queued frames delivered")
        assert restarted.payloads_from(staying) == [b"queued %d" % i for i in range(5)]
        restarted.transport.send(staying, b"and back")
        await until(
            lambda: mesh.nodes[staying].payloads_from(restarting)[-1:] == [b"and back"], "reply"
        )
        assert mesh.nodes["bron"].transport.counters["reconnects"] >= (restarting == "lyon")
    finally:
        await mesh.close()


@scenario
async def test_a_full_queue_drops_its_oldest_frames_and_counts_them() -> None:
    mesh = Mesh()
    try:
        bron = await mesh.add("bron", transport_config=config(queue_frames_max=8))
        lyon = await mesh.add("lyon")
        mesh.refresh()
        await until(mesh.fully_connected, "connected")
        await lyon.transport.close()
        await until(lambda: bron.transport.connected_peers() == [], "lyon down")
        for index in range(20):
            bron.transport.send("lyon", b"%d" % index)
        assert bron.transport.counters["queue_full_dropped"] == 12
        assert bron.transport.queued_frames("lyon") == 8
        lyon = await mesh.restart("lyon")
        await until(lambda: len(lyon.received) == 8, "the newest frames delivered")
        assert lyon.payloads_from("bron") == [b"%d" % i for i in range(12, 20)]
    finally:
        await mesh.close()


@scenario
async def test_the_queue_is_bounded_in_bytes_too_while_a_peer_is_unreachable() -> None:
    bounded = config(frame_bytes_max=1000, queue_bytes_max=2500)
    mesh = Mesh()
    try:
        bron = await mesh.add("bron", transport_config=bounded)
        mesh.list_member(member("lyon", crypto.generate_key(), "127.0.0.1:1"))  # nobody there
        mesh.refresh()
        for index in range(4):
            bron.transport.send("lyon", bytes([index]) * 1000)
        assert bron.transport.counters["queue_full_dropped"] == 2
        assert bron.transport.queued_frames("lyon") == 2
        await until(lambda: bron.transport.counters["dial_failed"] >= 2, "redials")
        assert bron.transport.counters["reconnects"] >= 1
    finally:
        await mesh.close()


# --- membership changes ----------------------------------------------------------------------


@scenario
async def test_refresh_members_drops_a_removed_member_who_can_no_longer_connect() -> None:
    mesh = await start_mesh(["bron", "caluire", "lyon"])
    try:
        mesh.unlist_member("bron")  # bron dials the others, and keeps trying
        for member_id in ("caluire", "lyon"):
            mesh.nodes[member_id].transport.refresh_members()
        for member_id in ("caluire", "lyon"):
            transport = mesh.nodes[member_id].transport
            assert transport.counters["connections_dropped:removed_member"] == 1
            await until(lambda t=transport: "bron" not in t.connected_peers(), "bron dropped")
            await until(
                lambda t=transport: t.counters["handshake_refused:not_member"] >= 1,
                "bron refused",
            )
            transport.send("bron", b"to a former member")
            assert transport.counters["send_refused:not_a_peer"] == 1
        assert mesh.nodes["caluire"].transport.connected_peers() == ["lyon"]
    finally:
        await mesh.close()


@scenario
async def test_refresh_members_drops_a_connection_whose_key_has_rotated() -> None:
    mesh = await start_mesh(["bron", "lyon"])
    try:
        bron = mesh.nodes["bron"].transport
        new_key = crypto.generate_key()
        mesh.list_member(member("lyon", new_key, mesh.members[1].endpoint))
        bron.refresh_members()
        assert bron.counters["connections_dropped:key_rotated"] == 1
        # lyon still runs with its old key, so bron's redials fail until lyon restarts.
        await until(lambda: bron.counters["handshake_refused:bad_proof"] >= 1, "stale refused")
        assert bron.connected_peers() == []
        await mesh.restart("lyon", key=new_key)
        await until(mesh.fully_connected, "reconnected with the new key")
    finally:
        await mesh.close()


# --- fault injection: cut links ----------------------------------------------------------------

SLOW_REDIAL = config(reconnect_delay_ms_min=4_000, reconnect_delay_ms_max=4_000)
"""A backoff far longer than the deadlines below: a prompt redial cannot come from it."""


@scenario
async def test_a_cut_link_drops_frames_closes_the_connection_and_pauses_dialing() -> None:
    mesh = await start_mesh(["bron", "lyon"], transport_config=SLOW_REDIAL)
    try:
        bron, lyon = mesh.nodes["bron"].transport, mesh.nodes["lyon"].transport
        lyon.send("bron", b"before")
        await until(lambda: mesh.nodes["bron"].payloads_from("lyon") == [b"before"], "delivered")
        # bron dials lyon; cutting lyon at bron alone ends the link both ways.
        bron.cut_links(["lyon"])
        assert bron.links_cut == ["lyon"]
        await until(lambda: not bron.connected_peers() and not lyon.connected_peers(), "closed")
        assert bron.counters["connections_dropped:link_cut"] == 1
        bron.send("lyon", b"into the void")
        bron.broadcast(b"nor this")
        assert bron.counters["frames_dropped:link_cut_out"] == 2
        assert bron.queued_frames("lyon") == 0
        lyon.send("bron", b"waits in lyon's queue")
        dials = bron.counters["dials"]
        await asyncio.sleep(0.3)
        assert bron.counters["dials"] == dials, "a cut peer is not dialed"
        assert mesh.nodes["lyon"].received == []
        assert mesh.nodes["bron"].payloads_from("lyon") == [b"before"]

        bron.cut_links([])  # healing redials at once, not after the 4 s backoff
        await until(mesh.fully_connected, "healed", deadline_s=1.0)
        await until(lambda: len(mesh.nodes["bron"].received) == 2, "lyon's queue delivered")
        assert mesh.nodes["bron"].payloads_from("lyon")[-1] == b"waits in lyon's queue"
        assert mesh.nodes["lyon"].received == [], "nothing sent while cut is delivered later"

        bron.cut_links(["lyon"])
        bron.cut_links([])  # healed before the cancelled dial loop has even ended
        await until(lambda: bron.counters["connections_established"] == 3, "redialed")
        await until(mesh.fully_connected, "healed again", deadline_s=1.0)
    finally:
        await mesh.close()


@scenario
async def test_an_acceptor_refuses_a_cut_peer_after_the_handshake_until_healed() -> None:
    mesh = await start_mesh(["bron", "lyon"])
    try:
        bron, lyon = mesh.nodes["bron"].transport, mesh.nodes["lyon"].transport
        lyon.cut_links(["bron"])  # lyon accepts; bron, which is not cut, keeps dialing
        await until(lambda: lyon.counters["connections_refused:link_cut"] >= 2, "refused twice")
        assert lyon.connected_peers() == []
        bron.send("lyon", b"never delivered")
        lyon.send("bron", b"dropped at the source")
        await asyncio.sleep(0.2)
        assert mesh.nodes["lyon"].received == []
        assert mesh.nodes["bron"].received == []
        assert lyon.counters["frames_dropped:link_cut_out"] == 1
        lyon.cut_links([])
        assert lyon.links_cut == []
        await until(mesh.fully_connected, "healed", deadline_s=1.0)
        bron.send("lyon", b"after healing")
        await until(
            lambda: mesh.nodes["lyon"].payloads_from("bron")[-1:] == [b"after healing"], "sent"
        )
    finally:
        await mesh.close()


# --- TLS ---------------------------------------------------------------------------------------


@scenario
async def test_peers_talk_over_tls_too(tmp_path: Path) -> None:
    certificate_path, key_path = write_self_signed_certificate(tmp_path, strict=False)
    server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ssl.load_cert_chain(certificate_path, key_path)
    client_ssl = ssl.create_default_context(cafile=str(certificate_path))
    mesh = await start_mesh(["bron", "lyon"], server_ssl=server_ssl, client_ssl=client_ssl)
    try:
        mesh.nodes["bron"].transport.send("lyon", b"over tls")
        mesh.nodes["lyon"].transport.send("bron", b"and back")
        await until(
            lambda: (
                mesh.nodes["lyon"].received == [("bron", b"over tls")]
                and mesh.nodes["bron"].received == [("lyon", b"and back")]
            ),
            "delivery over wss",
        )
    finally:
        await mesh.close()


@scenario
async def test_a_plain_dialer_cannot_reach_a_tls_listener(tmp_path: Path) -> None:
    # Not a refusal the transport counts (TLS fails first), but the connection never forms.
    mesh = Mesh()
    try:
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate_path, key_path = write_self_signed_certificate(tmp_path, strict=False)
        server_ssl.load_cert_chain(certificate_path, key_path)
        await mesh.add("bron")
        await mesh.add("lyon", server_ssl=server_ssl)
        mesh.refresh()
        bron = mesh.nodes["bron"].transport
        await until(lambda: bron.counters["dial_failed"] >= 1, "failed dial")
        assert bron.connected_peers() == []
    finally:
        await mesh.close()


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"frame_bytes_max": 0},
        {"queue_frames_max": -1},
        {"reconnect_delay_ms_min": 500, "reconnect_delay_ms_max": 100},
        {"frame_bytes_max": 2048, "queue_bytes_max": 1024},
        {"listen_port": 70_000},
        {"handshakes_pending_strangers_max": 200, "handshakes_pending_max": 100},
        {"handshakes_pending_max": 300, "connections_max": 256},
        {"connections_per_address_max": 300, "connections_max": 256},
        {"handshake_bytes_max": 500},  # cannot hold the handshake's messages
        {"hello_timeout_ms": 0},
    ],
)
def test_the_configuration_refuses_inconsistent_limits(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        config(**overrides)


def test_node_settings_whose_connection_caps_do_not_nest_are_refused_at_start(
    tmp_path: Path,
) -> None:
    from node.runtime.config import NodeConfig
    from node.tools.launch import StartupError, api_guard_limits, transport_config

    base = {
        "member_id": "lyon",
        "data_dir": tmp_path,
        "genesis_file": tmp_path / "genesis.json",
        "key_file": tmp_path / "node.pem",
    }
    defaults = NodeConfig(**base)
    assert transport_config(defaults, "127.0.0.1:7400").handshakes_pending_max == 128
    assert api_guard_limits(defaults).connections_max == 512
    with pytest.raises(StartupError, match="peer connection limits"):
        transport_config(NodeConfig(**base, peer_connections_max=16), "127.0.0.1:7400")
    with pytest.raises(StartupError, match="API connection limits"):
        api_guard_limits(NodeConfig(**base, api_connections_max=8))
