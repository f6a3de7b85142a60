"""Budgets for the connections a listening port accepts, enforced beneath aiohttp.

Theory of operation
-------------------
aiohttp's server has no cap on open connections and no deadline for a request's headers: a
connection that never completes a request holds a file descriptor, a protocol object and
whatever it sent, for ever (its keep-alive timer only starts after a first response). Rather
than patch aiohttp, each listening port wraps aiohttp's protocol factory in a thin
:class:`asyncio.Protocol` of ours (:meth:`ConnectionGuard.protocol_factory`, used by
:class:`GuardedSite`). That protocol sees every connection before aiohttp does:

* **At accept time, before any byte is parsed**, :meth:`ConnectionGuard.admit` checks the
  caps: open connections in all (``connections_max``) and per source address
  (``connections_per_address_max``; an IPv6 source counts by its /64), connections not yet
  *settled* (``unsettled_max``), and, when the port knows which addresses are its members'
  (the peer port), the unsettled connections of *strangers* (``unsettled_strangers_max``: the
  rest is reserved for member addresses). When a cap is reached, the newcomer is not simply
  refused: the least advanced, oldest unsettled connection within that cap is **evicted** to
  make room (a stranger never evicts a member address's connection). A genuine client or
  member advances within a round trip, so it outlives whoever stalls, even from the same
  address; only when nothing can be evicted is the newcomer refused (closed at once).
* **Bytes before work**: until a connection is settled, the bytes it may send are bounded
  (``unsettled_bytes_max``), counted before aiohttp sees them, so that aiohttp's parsers never
  buffer more than that for someone who has not proved anything (a 16 MiB "hello" is cut off
  after a few hundred bytes, whatever aiohttp's own message limit).
* **Deadlines**: a connection must reach each *milestone* (complete request headers; on the
  peer port, a valid hello, then the end of the handshake) within its deadline counted from
  the accept, or it is closed.

aiohttp's own protocol for a connection (its request parser, its task) is only made when the
first bytes arrive, so that a connection refused, evicted or closed while silent costs one
small object; and the listen backlog is 1,024 (aiohttp's 128 overflowed under a flood, and
the kernel then dropped genuine clients' SYNs too).

A connection *settles* when its port says so: the API settles a connection once its request
headers are complete (from then on, aiohttp's own limits and keep-alive timeout apply); the
peer port once the dialer has proved its membership (:meth:`ConnectionGuard.advance`). Every
refusal, eviction and closure is counted (``listener_refused:<cap>``,
``listener_evicted:<cap>``, ``listener_closed:<reason>``) and logged at most
``LOG_FIRST_COUNT`` times, then once per ``LOG_EVERY_COUNT``, so that a flood cannot flood the
log. :func:`install_accept_error_handler` does the same for the ``accept()`` errors asyncio
reports when the process runs out of file descriptors, and :func:`raise_open_files_limit`
makes that rarer.

With TLS, asyncio runs the TLS handshake before the protocol sees the connection: the caps
then apply once the TLS handshake is done, and that handshake is bounded by the first
milestone's deadline (``ssl_handshake_timeout``).
"""

from __future__ import annotations

import asyncio
import collections
import enum
import errno
import ipaddress
import logging
import resource
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "ConnectionGuard",
    "GuardLimits",
    "GuardedSite",
    "Stage",
    "address_key",
    "count_and_log",
    "install_accept_error_handler",
    "metrics_text",
    "raise_open_files_limit",
]

logger = logging.getLogger("sceau.connections")

LOG_FIRST_COUNT = 10
LOG_EVERY_COUNT = 1000
HEADERS_END = b"\r\n\r\n"
IPV6_PREFIX_BITS = 64
ACCEPT_ERROR_MESSAGE = "socket.accept() out of system resource"
COUNTER_PREFIX = "listener_"
LISTEN_BACKLOG = 1_024
"""Connections the kernel may hold for us before we accept them (capped by
net.core.somaxconn). aiohttp's 128 overflowed under a flood of reconnecting strangers: the
kernel then dropped SYNs, a genuine client's included, which retried only after 1 s, then 3 s."""


class Stage(enum.IntEnum):
    """How far a connection has come; each port settles at one of these."""

    ACCEPTED = 0
    HEADERS = 1
    """Its (first) request's headers are complete."""
    HELLO = 2
    """Peer port: a well-formed hello naming a current member arrived."""
    SETTLED = 3
    """No longer subject to the unsettled caps, byte budget and deadlines."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GuardLimits:
    """The caps, budget and deadlines of one listening port (see the module docstring)."""

    connections_max: int
    connections_per_address_max: int
    unsettled_max: int
    unsettled_strangers_max: int
    """Equal to ``unsettled_max`` on a port that does not tell members from strangers."""
    unsettled_bytes_max: int
    settle_stage: Stage
    milestones_ms: tuple[tuple[Stage, int], ...]
    """(stage, deadline from the accept in ms): reach ``stage`` by then or be closed."""

    def __post_init__(self) -> None:
        for name in (
            "connections_max",
            "connections_per_address_max",
            "unsettled_max",
            "unsettled_strangers_max",
            "unsettled_bytes_max",
        ):
            value = getattr(self, name)
            if type(value) is not int or value <= 0:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if not self.unsettled_strangers_max <= self.unsettled_max <= self.connections_max:
            raise ValueError("need unsettled_strangers_max <= unsettled_max <= connections_max")
        if self.connections_per_address_max > self.connections_max:
            raise ValueError("connections_per_address_max must not exceed connections_max")
        stages = [stage for stage, _ in self.milestones_ms]
        deadlines = [deadline for _, deadline in self.milestones_ms]
        if not stages or stages != sorted(set(stages)) or stages[-1] != self.settle_stage:
            raise ValueError("milestones must rise strictly and end at the settle stage")
        if any(type(d) is not int or d <= 0 for d in deadlines) or deadlines != sorted(deadlines):
            raise ValueError("milestone deadlines must be positive and not decrease")


def address_key(host: str) -> str:
    """The unit a per-address cap counts: the IPv4 address (an IPv4-mapped IPv6 address is
    its IPv4 address), or the /64 network of an IPv6 address (one subscriber's usual share)."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_PREFIX_BITS}", strict=False))
    return str(address)


def count_and_log(
    counters: collections.Counter[str], log: logging.Logger, counter: str, message: str, *args: Any
) -> None:
    """Count an event; log it the first ``LOG_FIRST_COUNT`` times, then once per
    ``LOG_EVERY_COUNT`` (with its count), so that whoever causes it cannot flood the log."""
    counters[counter] += 1
    count = counters[counter]
    if count <= LOG_FIRST_COUNT or count % LOG_EVERY_COUNT == 0:
        log.warning(f"[{counter} #{count}] {message}", *args)


@dataclass(slots=True, eq=False)
class _Entry:
    """What the guard knows of one open connection."""

    transport: asyncio.BaseTransport
    address: str
    member_address: bool
    accepted_at: float
    stage: Stage = Stage.ACCEPTED
    unsettled_bytes: int = 0
    headers_tail: bytes = b""
    timer: asyncio.TimerHandle | None = None
    closed_reason: str | None = None
    spoke: bool = False
    """It sent bytes, so aiohttp has a protocol for it (aiohttp closes it at shutdown)."""

    def eviction_rank(self) -> tuple[bool, int, float]:
        """Lowest first: strangers before member addresses, the least advanced, the oldest."""
        return (self.member_address, int(self.stage), self.accepted_at)


class ConnectionGuard:
    """The connections of one listening port and their budgets (see the module docstring).

    ``is_member_address(address_key)`` tells member addresses from strangers (None: every
    connection is a stranger and ``unsettled_strangers_max`` must equal ``unsettled_max``).
    ``counters`` receives the refusals, evictions and closures.
    """

    def __init__(
        self,
        *,
        name: str,
        limits: GuardLimits,
        counters: collections.Counter[str] | None = None,
        is_member_address: Callable[[str], bool] | None = None,
    ) -> None:
        assert is_member_address is not None or (
            limits.unsettled_strangers_max == limits.unsettled_max
        ), "a reserve for member addresses needs a way to recognise them"
        self.name = name
        self.limits = limits
        self.counters: collections.Counter[str] = (
            counters if counters is not None else collections.Counter()
        )
        self._knows_members = is_member_address is not None
        self._is_member_address = is_member_address or (lambda address: False)
        self._entries: dict[asyncio.BaseTransport, _Entry] = {}
        """At most ``connections_max`` open, plus those closed by us whose ``connection_lost``
        has not come yet (asyncio delivers it within a loop iteration or two)."""
        self._per_address: collections.Counter[str] = collections.Counter()
        """Open connections per address, a key removed at zero: at most ``connections_max``."""
        self._open = 0
        """Open connections not closed by us yet (a closed one stays in ``_entries`` until
        its ``connection_lost``)."""
        self._unsettled = 0
        self._unsettled_strangers = 0

    # --- what the port's code asks ---

    def protocol_factory(
        self, inner_factory: Callable[[], asyncio.Protocol]
    ) -> Callable[[], asyncio.Protocol]:
        """A factory for ``loop.create_server`` that guards ``inner_factory``'s protocols."""
        return lambda: _GuardedProtocol(self, inner_factory)

    def advance(self, transport: asyncio.BaseTransport | None, stage: Stage) -> None:
        """Record that the connection on ``transport`` reached ``stage`` (never backwards);
        at the port's settle stage it settles."""
        entry = self._entries.get(transport) if transport is not None else None
        if entry is None or entry.closed_reason is not None or entry.stage is Stage.SETTLED:
            return
        if stage <= entry.stage:
            return
        if stage >= self.limits.settle_stage:
            entry.stage = Stage.SETTLED
            self._count_unsettled(entry, -1)
            self._cancel_timer(entry)
        else:
            entry.stage = stage
            self._arm_timer(entry)

    def closed_reason(self, transport: asyncio.BaseTransport | None) -> str | None:
        """Why the guard closed that connection (None if it did not, or does not know it)."""
        entry = self._entries.get(transport) if transport is not None else None
        return entry.closed_reason if entry is not None else None

    def close_silent(self) -> None:
        """Close the connections that never sent anything (aiohttp does not know them, so its
        shutdown would not close them)."""
        for entry in list(self._entries.values()):
            if not entry.spoke and entry.closed_reason is None:
                entry.transport.abort()

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def unsettled_connections(self) -> int:
        return self._unsettled

    def counts(self) -> Mapping[str, int]:
        """Gauges for the metrics: open and unsettled connections."""
        return {"open": self._open, "unsettled": self._unsettled}

    # --- accept time ---

    def admit(self, transport: asyncio.BaseTransport) -> _Entry | None:
        """The new connection's entry, after evicting whom the caps require; None (and the
        connection closed) when a cap is reached and nobody can be evicted."""
        peer = transport.get_extra_info("peername")
        host = peer[0] if isinstance(peer, tuple | list) and peer else str(peer or "?")
        address = address_key(str(host))
        member_address = bool(self._is_member_address(address))
        loop = asyncio.get_running_loop()
        newcomer = _Entry(
            transport=transport,
            address=address,
            member_address=member_address,
            accepted_at=loop.time(),
        )
        for cap, full, scope in self._caps(newcomer):
            while full():
                victim = self._eviction_candidate(newcomer, scope)
                if victim is None:
                    count_and_log(
                        self.counters,
                        logger,
                        f"listener_refused:{cap}",
                        "%s port: refused a connection from %s (%s reached)",
                        self.name,
                        host,
                        cap,
                    )
                    transport.abort()
                    return None
                self._close(victim, f"evicted:{cap}", counter=f"listener_evicted:{cap}")
        self._entries[transport] = newcomer
        self._open += 1
        self._per_address[address] += 1
        self._count_unsettled(newcomer, +1)
        self._arm_timer(newcomer)
        return newcomer

    def _caps(
        self, newcomer: _Entry
    ) -> Iterable[tuple[str, Callable[[], bool], Callable[[_Entry], bool]]]:
        """(name, "is it full?", "may this entry be evicted for it?") of every cap that
        applies to ``newcomer``, the narrowest first."""
        limits = self.limits
        address = newcomer.address
        yield (
            "connections_per_address_max",
            lambda: self._per_address[address] >= limits.connections_per_address_max,
            lambda entry: entry.address == address,
        )
        if self._knows_members and not newcomer.member_address:
            yield (
                "unsettled_strangers_max",
                lambda: self._unsettled_strangers >= limits.unsettled_strangers_max,
                lambda entry: not entry.member_address,
            )
        if limits.unsettled_max < limits.connections_max:
            yield (
                "unsettled_max",
                lambda: self._unsettled >= limits.unsettled_max,
                lambda entry: True,
            )
        yield (
            "connections_max",
            lambda: self._open >= limits.connections_max,
            lambda entry: True,
        )

    def _eviction_candidate(
        self, newcomer: _Entry, scope: Callable[[_Entry], bool]
    ) -> _Entry | None:
        """The lowest ranked unsettled connection in ``scope`` that ``newcomer`` may evict.

        ``_entries`` keeps the order of accept, so the first stranger that sent nothing yet
        is the best candidate there can be: the search usually stops there, which keeps a
        flood's admissions cheap."""
        best: _Entry | None = None
        for entry in self._entries.values():
            if (
                entry.closed_reason is not None
                or entry.stage is Stage.SETTLED
                or (entry.member_address and not newcomer.member_address)
                or not scope(entry)
            ):
                continue
            if not entry.member_address and entry.stage is Stage.ACCEPTED:
                return entry
            if best is None or entry.eviction_rank() < best.eviction_rank():
                best = entry
        return best

    # --- while unsettled ---

    def received(self, entry: _Entry, data: bytes) -> bool:
        """Account for ``data``; False if the connection is (now) closed and the data must
        not be passed on."""
        if entry.closed_reason is not None:
            return False
        if entry.stage is Stage.SETTLED:
            return True
        headers_end = None
        if entry.stage is Stage.ACCEPTED:
            window = entry.headers_tail + data
            found = window.find(HEADERS_END)
            if found >= 0:  # where the headers end, in ``data``
                headers_end = found + len(HEADERS_END) - len(entry.headers_tail)
            else:
                entry.headers_tail = window[-(len(HEADERS_END) - 1) :]
        if not self._spend(entry, len(data) if headers_end is None else headers_end):
            return False
        if headers_end is not None:
            self.advance(entry.transport, Stage.HEADERS)
            # What follows the headers counts too, unless that settled the connection.
            if entry.stage is not Stage.SETTLED:
                return self._spend(entry, len(data) - headers_end)
        return True

    def _spend(self, entry: _Entry, byte_count: int) -> bool:
        entry.unsettled_bytes += byte_count
        if entry.unsettled_bytes <= self.limits.unsettled_bytes_max:
            return True
        self._close(entry, "unsettled_bytes_max", counter="listener_closed:too_many_bytes")
        return False

    def _arm_timer(self, entry: _Entry) -> None:
        self._cancel_timer(entry)
        for stage, deadline_ms in self.limits.milestones_ms:
            if entry.stage < stage:
                loop = asyncio.get_running_loop()
                entry.timer = loop.call_at(
                    entry.accepted_at + deadline_ms / 1000, self._deadline, entry, stage
                )
                return

    def _deadline(self, entry: _Entry, stage: Stage) -> None:
        entry.timer = None
        if entry.closed_reason is None and entry.stage < stage:
            reason = f"{stage.name.lower()}_timeout"
            self._close(entry, reason, counter=f"listener_closed:{reason}")

    @staticmethod
    def _cancel_timer(entry: _Entry) -> None:
        if entry.timer is not None:
            entry.timer.cancel()
            entry.timer = None

    # --- closing ---

    def _close(self, entry: _Entry, reason: str, *, counter: str) -> None:
        """Close a connection for ``reason``; it stays listed until ``connection_lost``, but
        no longer counts against the unsettled caps."""
        assert entry.closed_reason is None
        count_and_log(
            self.counters,
            logger,
            counter,
            "%s port: closed a connection from %s (%s)",
            self.name,
            entry.address,
            reason,
        )
        if entry.stage is not Stage.SETTLED:
            self._count_unsettled(entry, -1)
        entry.closed_reason = reason
        self._cancel_timer(entry)
        self._release(entry)
        entry.transport.abort()

    def forget(self, entry: _Entry) -> None:
        """The connection is gone (``connection_lost``)."""
        if self._entries.get(entry.transport) is not entry:
            return
        del self._entries[entry.transport]
        self._cancel_timer(entry)
        if entry.closed_reason is None:
            if entry.stage is not Stage.SETTLED:
                self._count_unsettled(entry, -1)
            entry.closed_reason = "lost"
            self._release(entry)

    def _release(self, entry: _Entry) -> None:
        self._open -= 1
        self._per_address[entry.address] -= 1
        if self._per_address[entry.address] == 0:
            del self._per_address[entry.address]

    def _count_unsettled(self, entry: _Entry, delta: int) -> None:
        self._unsettled += delta
        if not entry.member_address:
            self._unsettled_strangers += delta
        assert 0 <= self._unsettled_strangers <= self._unsettled <= self._open


class _GuardedProtocol(asyncio.Protocol):
    """Stands between the event loop and aiohttp's protocol for one connection.

    aiohttp's protocol (a request parser and a task per connection) is only made when the
    first bytes arrive: a connection refused, evicted or closed before it says anything costs
    us this small object alone."""

    __slots__ = ("_entry", "_guard", "_inner", "_inner_factory", "_transport")

    def __init__(self, guard: ConnectionGuard, inner_factory: Callable[[], asyncio.Protocol]):
        self._guard = guard
        self._inner_factory = inner_factory
        self._inner: asyncio.Protocol | None = None
        self._entry: _Entry | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._entry = self._guard.admit(transport)
        self._transport = transport  # refused (entry None): already closed

    def data_received(self, data: bytes) -> None:
        entry = self._entry
        if entry is None or not self._guard.received(entry, data):
            return
        if self._inner is None:
            assert self._transport is not None
            entry.spoke = True
            self._inner = self._inner_factory()
            self._inner.connection_made(self._transport)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._entry is not None:
            self._guard.forget(self._entry)
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class GuardedSite(web.BaseSite):
    """aiohttp's ``TCPSite``, with every accepted connection going through ``guard`` first."""

    __slots__ = ("_bound_port", "_guard", "_host", "_port")

    def __init__(
        self,
        runner: web.BaseRunner,
        host: str,
        port: int,
        *,
        guard: ConnectionGuard,
        ssl_context: ssl.SSLContext | None = None,
        backlog: int = LISTEN_BACKLOG,
    ) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host, self._port, self._guard = host, port, guard
        self._bound_port: int | None = None

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        return self._bound_port if self._bound_port is not None else self._port

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None
        first_deadline_ms = self._guard.limits.milestones_ms[0][1]
        self._server = await asyncio.get_running_loop().create_server(
            self._guard.protocol_factory(server),
            self._host,
            self._port,
            ssl=self._ssl_context,
            backlog=self._backlog,
            **({"ssl_handshake_timeout": first_deadline_ms / 1000} if self._ssl_context else {}),
        )
        self._bound_port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await super().stop()
        self._guard.close_silent()


# --- the process ---------------------------------------------------------------------------


def raise_open_files_limit() -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit to its hard limit; return (soft, hard) after.

    Many systems start processes with a soft limit of 1,024 open files, which LevelDB (up to
    1,000 table files) and a few hundred sockets exhaust. The hard limit is the ceiling the
    administrator allows (``LimitNOFILE=`` in systemd, ``ulimit -Hn``); raising the soft
    limit up to it needs no privilege."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft >= hard:
        return soft, hard
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as error:
        logger.warning("cannot raise the open files limit from %d to %d: %s", soft, target, error)
        return soft, hard
    return target, hard


def install_accept_error_handler(
    loop: asyncio.AbstractEventLoop, counters: collections.Counter[str]
) -> None:
    """Count the ``accept()`` failures asyncio reports (out of file descriptors or memory)
    and log them without a traceback, the first few then one per ``LOG_EVERY_COUNT``.

    asyncio calls the loop's exception handler for each failed ``accept()`` (and, on Linux,
    retries up to the backlog's length per readiness event): with the default handler, a
    connection flood on a node out of descriptors wrote ~100,000 identical tracebacks in 30 s.
    Every other context goes to the handler that was installed before (or the default)."""
    previous = loop.get_exception_handler()

    def handle(event_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == ACCEPT_ERROR_MESSAGE:
            error = context.get("exception")
            number = getattr(error, "errno", None)
            name = errno.errorcode.get(number, "unknown") if number is not None else "unknown"
            count_and_log(
                counters,
                logger,
                f"listener_accept_errors:{name}",
                "accept() failed: %s (out of file descriptors or memory; see "
                "the open files limit and the connection caps)",
                error,
            )
        elif previous is not None:
            previous(event_loop, context)
        else:
            event_loop.default_exception_handler(context)

    loop.set_exception_handler(handle)


def metrics_text(guards: Mapping[str, ConnectionGuard], accept_errors: Mapping[str, int]) -> str:
    """Prometheus text for the listening ports: open and unsettled connections per port,
    their refusals, evictions and closures, and the failed ``accept()`` calls."""
    lines = [
        "# HELP sceau_connections Open connections per port (unsettled: not yet through their "
        "request headers, or on the peer port, their handshake).",
        "# TYPE sceau_connections gauge",
    ]
    for port, guard in sorted(guards.items()):
        for state, count in sorted(guard.counts().items()):
            lines.append(f'sceau_connections{{port="{port}",state="{state}"}} {count}')
    lines += [
        "# HELP sceau_connection_events_total Connections refused at accept, evicted to make "
        "room, or closed for a deadline or a byte budget, per port.",
        "# TYPE sceau_connection_events_total counter",
    ]
    for port, guard in sorted(guards.items()):
        for name, count in sorted(guard.counters.items()):
            if name.startswith(COUNTER_PREFIX) and not name.startswith("listener_accept_"):
                event = name.removeprefix(COUNTER_PREFIX)
                lines.append(
                    f'sceau_connection_events_total{{port="{port}",event="{event}"}} {count}'
                )
    lines += [
        "# HELP sceau_accept_errors_total accept() calls that failed for want of file "
        "descriptors or memory, by errno.",
        "# TYPE sceau_accept_errors_total counter",
    ]
    for name, count in sorted(accept_errors.items()):
        if name.startswith("listener_accept_errors:"):
            error = name.split(":", 1)[1]
            lines.append(f'sceau_accept_errors_total{{error="{error}"}} {count}')
    return "\n".join(lines) + "\n"
