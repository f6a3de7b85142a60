"""Attacks by an outsider (no member key) on real node processes, and the bounds they must meet.

A devnet of four real ``sceau node`` processes on loopback. The victim is the member whose id
sorts last (it accepts a connection from every other member). The outsider floods its two
listening ports from a process of its own, from 127.0.0.1 (where the members are too, so only
their behaviour tells them apart) and from 127.0.0.2–127.0.0.9 (Linux routes all of
127.0.0.0/8 to lo), so that per-address quotas are exercised as on a real network:

* **hello flood**: WebSocket upgrades on the peer port, each sending a 16 MiB message where a
  hello (under 200 bytes) is expected. The victim's resident memory must stay within
  ``MEMORY_GROWTH_MIB_MAX`` of what it was before.
* **handshake flood**: looping upgrades that then say nothing, while a genuine member is killed
  and restarted: it must be connected to the victim again within ``RECONNECT_S_MAX`` of
  answering on its API.
* **half-open flood**: TCP connections that send nothing, or half a request line, to the API
  and the peer port of a victim whose open files limit is 1,024 (soft and hard, as many
  systems set it): the victim's ``/healthz`` must keep answering within
  ``HEALTHZ_S_MAX``, and its log must grow by fewer than ``LOG_LINES_MAX`` lines, none of
  them a traceback.

Each flood is bounded in time (``FLOOD_S``; ``SCEAU_LONG_TESTS=1`` runs 40 s floods as in
the original report) and cleaned up whatever happens. Measured figures are printed (run with
``-s``) and recorded in docs/security-outsider.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import resource
import signal
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from node.tools.devnet import MemberProcess, devnet_down, devnet_up, start_member, write_devnet

LONG = bool(os.environ.get("SCEAU_LONG_TESTS"))
FLOOD_S = 40.0 if LONG else 6.0
HANDSHAKE_FLOOD_S = 40.0 if LONG else 15.0
"""Ended early once the restarted member is back in."""
MEMORY_GROWTH_MIB_MAX = 300
RECONNECT_S_MAX = 5.0
HEALTHZ_S_MAX = 2.0
LOG_LINES_MAX = 200
ATTACKERS = [f"127.0.0.{last}" for last in range(2, 10)]
"""Source addresses that are no member's (the members' endpoints are on 127.0.0.1)."""
HELLO_FLOOD_CONNECTIONS = 48
HALF_OPEN_CONNECTIONS = 1_100
LARGE_MESSAGE = bytes(16 * 1024 * 1024)
OPEN_FILES_LIMIT = 1_024


# --- the devnet ----------------------------------------------------------------------------------


@dataclasses.dataclass
class Devnet:
    directory: Path
    members: list[MemberProcess]

    @property
    def victim(self) -> MemberProcess:
        """The member every other one dials (its id sorts last)."""
        return max(self.members, key=lambda member: member.member_id)

    @property
    def dialer(self) -> MemberProcess:
        """The member that dials every other one (its id sorts first)."""
        return min(self.members, key=lambda member: member.member_id)

    def member(self, member_id: str) -> MemberProcess:
        return next(m for m in self.members if m.member_id == member_id)

    def restart(self, member: MemberProcess) -> MemberProcess:
        child = start_member(Path(member.config_file).parent)
        restarted = dataclasses.replace(member, pid=child.pid)
        self.members = [restarted if m.member_id == member.member_id else m for m in self.members]
        write_devnet(self.directory, self.members)  # so that devnet_down stops the new process
        return restarted


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    directory = tmp_path_factory.mktemp("outsider")
    try:
        yield Devnet(directory, devnet_up(directory, 4))
    finally:
        if (directory / "devnet.json").exists():
            devnet_down(directory)


def resident_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for {pid}")


def connection_events(member: MemberProcess, port: str = "peer") -> dict[str, int]:
    """The victim's refusals, evictions and closures on ``port`` (its /metrics)."""
    try:
        with urllib.request.urlopen(f"{member.api_url}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    events = {}
    for line in text.splitlines():
        if line.startswith(f'sceau_connection_events_total{{port="{port}"'):
            labels, value = line.rsplit(" ", 1)
            events[labels.split('event="')[1].rstrip('"}')] = int(float(value))
    return events


def log_lines(member: MemberProcess) -> list[str]:
    return Path(member.log_file).read_text(errors="replace").splitlines()


async def get_json(http: aiohttp.ClientSession, url: str, timeout_s: float = 2.0) -> object:
    async with http.get(url, timeout=aiohttp.ClientTimeout(total=timeout_s)) as response:
        return await response.json()


async def answers(http: aiohttp.ClientSession, member: MemberProcess) -> bool:
    try:
        return await get_json(http, f"{member.api_url}/healthz") == {"status": "ok"}
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return False


async def peers_of(http: aiohttp.ClientSession, member: MemberProcess) -> list[str]:
    try:
        status = await get_json(http, f"{member.api_url}/v1/status")
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return []
    assert isinstance(status, dict)
    return list(status.get("peers_connected", []))


# --- the outsider's tools ------------------------------------------------------------------------


async def flood(
    count: int,
    attempt: Callable[[str], Awaitable[None]],
    seconds: float,
    sources: list[str],
    stop: Callable[[], bool] = lambda: False,
) -> int:
    """Run ``count`` loops, each repeating ``attempt(source)`` for ``seconds`` or until
    ``stop()``; the number of attempts made. Every connection is closed when the flood ends."""
    attempts = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds

    async def one(index: int) -> None:
        nonlocal attempts
        source = sources[index % len(sources)]
        while loop.time() < end:
            attempts += 1
            with contextlib.suppress(OSError, aiohttp.ClientError, TimeoutError):
                async with asyncio.timeout(max(0.01, end - loop.time())):
                    await attempt(source)
            await asyncio.sleep(0.01)  # a refused attempt must not spin the loop

    tasks = [asyncio.create_task(one(index)) for index in range(count)]
    try:
        while not all(task.done() for task in tasks) and not stop():
            await asyncio.sleep(0.05)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return attempts


Attempt = Callable[[str], Awaitable[None]]


class Outsider:
    """Floods run in a process of their own, so that the attacker's event loop, busy with
    thousands of connections, delays neither the test's probes nor its clock."""

    def __init__(self, floods: list[tuple[int, Attempt, list[str]]], seconds: float) -> None:
        context = multiprocessing.get_context("fork")
        self._attempts: Any = context.Value("q", 0)
        self._stop = context.Event()
        self._seconds = seconds
        self._process = context.Process(target=self._run, args=(floods,), daemon=True)

    def _run(self, floods: list[tuple[int, Attempt, list[str]]]) -> None:
        async def main() -> None:
            runs = [
                flood(count, attempt, self._seconds, sources, self._stop.is_set)
                for count, attempt, sources in floods
            ]
            self._attempts.value = sum(await asyncio.gather(*runs))

        asyncio.run(main())

    def __enter__(self) -> Outsider:
        self._process.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._process.join(self._seconds + 15)
        if self._process.is_alive():
            self._process.kill()
            self._process.join()

    def stop(self) -> None:
        """End the flood now (its connections are closed)."""
        self._stop.set()

    @property
    def flooding(self) -> bool:
        return self._process.is_alive()

    @property
    def attempts(self) -> int:
        return int(self._attempts.value)


def upgrade_then(port: int, then: Callable[[aiohttp.ClientWebSocketResponse], Awaitable[None]]):
    """An attempt: a WebSocket upgrade on the peer port from ``source``, then ``then(ws)``."""

    async def attempt(source: str) -> None:
        connector = aiohttp.TCPConnector(local_addr=(source, 0), force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.ws_connect(f"ws://127.0.0.1:{port}/peer", autoping=False) as ws,
        ):
            await then(ws)

    return attempt


async def until_closed(ws: aiohttp.ClientWebSocketResponse) -> None:
    """Say nothing; return when the server closes the connection."""
    async for _ in ws:
        pass


UPGRADE_REQUEST = (
    b"GET /peer HTTP/1.1\r\nHost: victim\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
LARGE_MESSAGE_HEADER = bytes([0x82, 0x80 | 127]) + len(LARGE_MESSAGE).to_bytes(8, "big") + bytes(4)
"""A final binary frame of 16 MiB, masked with the key 0 (so the zeros need no masking)."""


def large_hello(port: int):
    """An attempt: a WebSocket upgrade on the peer port, then a 16 MiB message where a hello
    is expected. Written by hand so that the attacker spends no time masking it."""

    async def attempt(source: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            writer.write(UPGRADE_REQUEST)
            response = await reader.readuntil(b"\r\n\r\n")
            if not response.startswith(b"HTTP/1.1 101"):
                return
            writer.write(LARGE_MESSAGE_HEADER)
            writer.write(LARGE_MESSAGE)
            await writer.drain()
            while await reader.read(65_536):
                pass
        finally:
            writer.transport.abort()

    return attempt


def half_open(port: int, opening: bytes):
    """An attempt: a TCP connection that sends ``opening`` (maybe nothing), then waits."""

    async def attempt(source: str) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
        try:
            if opening:
                writer.write(opening)
            while await reader.read(4096):
                pass
        finally:
            writer.transport.abort()

    return attempt


# --- (a) the hello flood -------------------------------------------------------------------------


def test_a_flood_of_16_mib_hellos_leaves_the_victims_memory_within_bounds(devnet: Devnet) -> None:
    victim = devnet.victim
    before = resident_mib(victim.pid)
    peak = before
    sources = ["127.0.0.1", *ATTACKERS]

    cut_off_before = connection_events(victim).get("closed:too_many_bytes", 0)
    attack = large_hello(victim.peer_port)
    with Outsider([(HELLO_FLOOD_CONNECTIONS, attack, sources)], FLOOD_S) as outsider:
        while outsider.flooding:
            peak = max(peak, resident_mib(victim.pid))
            time.sleep(0.05)
    growth = peak - before
    cut_off = connection_events(victim).get("closed:too_many_bytes", 0) - cut_off_before
    print(
        f"\nhello flood: {outsider.attempts} upgrades with a 16 MiB message in {FLOOD_S:.0f} s "
        f"({cut_off} cut off after 2 KiB); victim RSS {before:.0f} -> peak {peak:.0f} MiB "
        f"(+{growth:.0f} MiB)"
    )
    assert growth < MEMORY_GROWTH_MIB_MAX
    assert cut_off >= HELLO_FLOOD_CONNECTIONS, "the flood was real: messages were cut off"


# --- (b) the handshake flood ---------------------------------------------------------------------


HANDSHAKE_FLOODS = {
    # Where the members are: only their behaviour (a hello within a round trip) tells them apart.
    "48-from-the-members-address": (48, ["127.0.0.1"]),
    # More than that address's quota: stalled connections must be evicted for the member.
    "256-from-the-members-address": (256, ["127.0.0.1"]),
    # From addresses that are no member's: quotas per address and the strangers' share.
    "48-from-other-addresses": (48, ATTACKERS),
}


@pytest.mark.parametrize(
    "attack",
    [
        pytest.param(
            name,
            marks=pytest.mark.skipif(
                name.startswith("256") and not LONG,
                reason="eviction on a shared address: tests/test_transport.py in short; "
                "set SCEAU_LONG_TESTS=1 for real processes",
            ),
        )
        for name in sorted(HANDSHAKE_FLOODS)
    ],
)
def test_a_restarted_member_reconnects_within_seconds_during_a_handshake_flood(
    devnet: Devnet, attack: str
) -> None:
    victim, member = devnet.victim, devnet.dialer
    connections, sources = HANDSHAKE_FLOODS[attack]
    os.kill(member.pid, signal.SIGKILL)

    async def scenario(outsider: Outsider) -> tuple[float, float | None]:
        """(seconds until the member answers, then until the victim lists it, or None if the
        flood ended first)."""
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 10
            while member.member_id in await peers_of(http, victim):
                assert time.monotonic() < deadline, "the victim never noticed the kill"
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # the flood is on
            started = time.monotonic()
            restarted = devnet.restart(member)
            while not await answers(http, restarted):
                assert time.monotonic() - started < 30, f"{member.member_id} did not start"
                await asyncio.sleep(0.05)
            up = time.monotonic()
            while member.member_id not in await peers_of(http, victim):
                if not outsider.flooding:
                    return up - started, None
                await asyncio.sleep(0.05)
            return up - started, time.monotonic() - up

    attempt = upgrade_then(victim.peer_port, until_closed)
    with Outsider([(connections, attempt, sources)], HANDSHAKE_FLOOD_S) as outsider:
        try:
            start_s, reconnect_s = asyncio.run(scenario(outsider))
        finally:
            outsider.stop()
    outcome = (
        f"then was connected to {victim.member_id} {reconnect_s:.2f} s later"
        if reconnect_s is not None
        else f"and was still not connected to {victim.member_id} when the flood ended"
    )
    print(
        f"\nhandshake flood ({attack}, looping silent upgrades, {outsider.attempts} in all): "
        f"{member.member_id} answered {start_s:.1f} s after its restart, {outcome}; "
        f"victim's peer port: {connection_events(victim)}"
    )
    assert reconnect_s is not None, "the member got back in only after the flood"
    assert reconnect_s < RECONNECT_S_MAX


# --- (c) the half-open flood ---------------------------------------------------------------------


def test_half_open_connections_neither_stall_the_api_nor_flood_the_log(devnet: Devnet) -> None:
    victim = devnet.victim
    api_port = int(victim.api_url.rsplit(":", 1)[1])
    lines_before = len(log_lines(victim))
    bytes_before = Path(victim.log_file).stat().st_size
    per_port = HALF_OPEN_CONNECTIONS
    waits: list[float] = []
    failures: list[str] = []

    async def probe(outsider: Outsider) -> None:
        async with aiohttp.ClientSession() as http:
            await asyncio.sleep(1.0)  # every connection is open
            while outsider.flooding:
                started = time.monotonic()
                try:
                    answer = await get_json(http, f"{victim.api_url}/healthz", HEALTHZ_S_MAX * 2)
                    assert answer == {"status": "ok"}
                except (aiohttp.ClientError, TimeoutError) as error:
                    failures.append(repr(error))
                waits.append(time.monotonic() - started)
                await asyncio.sleep(0.25)

    floods = [
        (per_port // 2, half_open(api_port, b""), ATTACKERS),
        (per_port // 2, half_open(api_port, b"GET /v1/sta"), ATTACKERS),
        (per_port // 2, half_open(victim.peer_port, b""), ATTACKERS),
        (per_port // 2, half_open(victim.peer_port, b"GET /pe"), ATTACKERS),
    ]
    # As under a default service manager limit: past ~1,000 connections accept() fails. The
    # node cannot raise a hard limit, so its connection caps must keep it below. (The victim
    # keeps this limit: raising a hard limit again needs a privilege a test should not need.)
    resource.prlimit(victim.pid, resource.RLIMIT_NOFILE, (OPEN_FILES_LIMIT, OPEN_FILES_LIMIT))
    with Outsider(floods, FLOOD_S) as outsider:
        asyncio.run(probe(outsider))
    attempts = outsider.attempts
    new_lines = log_lines(victim)[lines_before:]
    new_bytes = Path(victim.log_file).stat().st_size - bytes_before
    tracebacks = [line for line in new_lines if "Traceback" in line]
    print(
        f"\nhalf-open flood: {attempts} connections ({2 * per_port} held at once) in "
        f"{FLOOD_S:.0f} s; /healthz answered {len(waits) - len(failures)}/{len(waits)} times, "
        f"slowest {max(waits):.2f} s; the log grew by {len(new_lines)} lines ({new_bytes} bytes), "
        f"{len(tracebacks)} tracebacks; API port: {connection_events(victim, 'api')}; "
        f"peer port: {connection_events(victim)}"
    )
    assert not failures
    assert max(waits) < HEALTHZ_S_MAX
    assert len(new_lines) < LOG_LINES_MAX
    assert not tracebacks
