"""Build a node from its configuration and run it until it is told to stop.

:func:`build_node` does the composing (store, contracts, engine, mempool, application,
replica, transport) and refuses to start, with a clear message, when something does not fit:
no chain database, a genesis file that is not the chain's, a member id that is not in the
member set, a key that is not the member's, a contract missing or in another version.
:func:`run_node` adds the HTTP API and runs until SIGINT/SIGTERM, on the event loop that
:func:`event_loop_factory` chooses (asyncio's own unless ``SCEAU_EVENT_LOOP=uvloop``).

Both listening ports go through a :class:`~node.runtime.connections.ConnectionGuard` (caps on open
connections, per source address too, a deadline and a byte budget for the request headers,
and on the peer port for the handshake), set up here for the API and by the transport for
the peer port. At start, the open files limit's soft value is raised to its hard value, and
failed ``accept()`` calls are counted and logged without tracebacks
(docs/security-outsider.md).
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import signal
import ssl
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.engine import Engine
from contracts.registry import ContractLoadError, load_contracts
from ledger import crypto
from ledger.encoding import EncodingError
from ledger.model import Genesis, ModelDecodeError
from ledger.store import ChainStore, CorruptionError, StoreError
from node.runtime.application import ChainApplication
from node.runtime.config import NodeConfig, host_and_port
from node.runtime.daemon import Node, replica_config_for
from node.runtime.mempool import Mempool, MempoolLimits

if TYPE_CHECKING:  # imported where used: aiohttp is not loaded for commands that need no server
    from node.runtime.connections import GuardLimits
    from node.runtime.observer import ObserverNode
    from node.runtime.transport import TransportConfig

__all__ = [
    "EVENT_LOOPS",
    "EVENT_LOOP_VARIABLE",
    "StartupError",
    "build_node",
    "build_observer",
    "damaged_store_message",
    "event_loop_factory",
    "initialise_data_dir",
    "read_genesis",
    "run_node",
    "run_node_until_stopped",
]

log = logging.getLogger("sceau.node")

API_HEADER_LINES_MAX = 32
DESCRIPTORS_RESERVED = 1_200
"""File descriptors kept out of the connection caps: LevelDB's table files (up to 1,000),
logs, the event loop's own, and connections we dial."""


class StartupError(Exception):
    """The node cannot start as configured; the message says what to fix."""


def read_genesis(path: Path) -> Genesis:
    """Read a genesis JSON file; raises StartupError naming the problem."""
    try:
        return Genesis.model_validate_json(Path(path).read_text())
    except OSError as error:
        raise StartupError(f"cannot read genesis file {path}: {error.strerror}") from None
    except (ValueError, ModelDecodeError) as error:
        raise StartupError(f"{path} is not a valid genesis: {_one_line(error)}") from None


def _one_line(error: Exception) -> str:
    """The first problem of a validation error, on one line."""
    errors = getattr(error, "errors", None)
    if callable(errors):
        first = errors()[0]
        location = ".".join(str(part) for part in first["loc"])
        return f"{location}: {first['msg']}" if location else str(first["msg"])
    return " ".join(str(error).split())


def damaged_store_message(config: NodeConfig, error: StoreError) -> str:
    """One line for an operator: which database, what failed, and what to do."""
    return (
        f"the chain database in {config.chain_path} is damaged: {error}. The node refuses to "
        f"serve it; confirm with 'sceau node check --data-dir {config.data_dir}', then restore "
        "it from a peer's bundle or rebuild it (docs/operations.md, 'Corruption and recovery'; "
        "never restart on an old copy)"
    )


def engine_for(genesis: Genesis) -> Engine:
    """The contract engine for ``genesis``: its contracts, as pinned, from the registry."""
    try:
        return Engine(genesis, load_contracts(genesis))
    except ContractLoadError as error:
        raise StartupError(str(error)) from None


def initialise_data_dir(data_dir: Path, genesis: Genesis) -> ChainStore:
    """Create the chain database of a new node; raises StartupError if one exists.

    A data directory created here is private to the node's user (mode 0700).
    """
    engine = engine_for(genesis)
    try:
        Path(data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)
        return ChainStore.create(Path(data_dir) / "chain", genesis, engine.genesis_state())
    except StoreError as error:
        raise StartupError(str(error)) from None
    except OSError as error:
        raise StartupError(f"cannot create {data_dir}: {error.strerror}") from None


def _load_key(config: NodeConfig) -> crypto.PrivateKey:
    """The node key (a WARNING is logged if it, or its passphrase file, is open to others)."""
    passphrase = None
    if config.key_passphrase_file is not None:
        warning = crypto.loose_permissions(config.key_passphrase_file, "passphrase file")
        if warning is not None:
            log.warning("%s", warning)
        try:
            passphrase = config.key_passphrase_file.read_bytes().rstrip(b"\r\n")
        except OSError as error:
            raise StartupError(
                f"cannot read {config.key_passphrase_file}: {error.strerror}"
            ) from None
    try:
        return crypto.load_private_key(config.key_file, passphrase=passphrase)
    except crypto.KeyFileError as error:
        raise StartupError(str(error)) from None


def server_ssl_context(config: NodeConfig) -> ssl.SSLContext | None:
    if config.tls_cert_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(config.tls_cert_file), str(config.tls_key_file))
    return context


def client_ssl_context(config: NodeConfig) -> ssl.SSLContext | None:
    """Peers authenticate each other by their member keys (the handshake), so the TLS layer
    only encrypts: certificates of peers are not checked against a CA."""
    if config.tls_cert_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def transport_config(config: NodeConfig, endpoint: str) -> TransportConfig:
    """The peer transport's settings; raises StartupError if its caps do not nest."""
    from node.runtime.transport import TransportConfig

    listen = config.peer_listen or f"0.0.0.0:{host_and_port(endpoint)[1]}"
    host, port = host_and_port(listen)
    try:
        return TransportConfig(
            listen_host=host,
            listen_port=port,
            connections_max=config.peer_connections_max,
            connections_per_address_max=config.peer_connections_per_address_max,
            handshakes_pending_max=config.peer_handshakes_pending_max,
            handshakes_pending_strangers_max=config.peer_handshakes_pending_strangers_max,
        )
    except ValueError as error:
        raise StartupError(f"peer connection limits: {error}") from None


def api_guard_limits(config: NodeConfig) -> GuardLimits:
    """The API port's connection budget: a connection settles once its request headers are
    in (aiohttp's limits and ``api_keepalive_timeout_ms`` apply from then on); until then it
    has ``api_header_timeout_ms`` and ``api_header_bytes_max``. Raises StartupError."""
    from node.runtime.connections import GuardLimits, Stage

    try:
        return GuardLimits(
            connections_max=config.api_connections_max,
            connections_per_address_max=config.api_connections_per_address_max,
            unsettled_max=config.api_connections_max,
            unsettled_strangers_max=config.api_connections_max,
            unsettled_bytes_max=config.api_header_bytes_max,
            settle_stage=Stage.HEADERS,
            milestones_ms=((Stage.HEADERS, config.api_header_timeout_ms),),
        )
    except ValueError as error:
        raise StartupError(f"API connection limits: {error}") from None


def open_files_budget(config: NodeConfig) -> None:
    """Raise the open files limit (soft to hard) and warn if the connection caps do not fit
    well below it: past it, accept() fails and connections are refused by the kernel."""
    from node.runtime.connections import raise_open_files_limit

    soft, hard = raise_open_files_limit()
    needed = config.api_connections_max + config.peer_connections_max + DESCRIPTORS_RESERVED
    log.info("open files limit: %d (hard %d); connection caps need %d", soft, hard, needed)
    if needed > soft:
        log.warning(
            "the open files limit (%d) is below what the connection caps need (%d): raise "
            "LimitNOFILE (systemd) or ulimit -n, or lower api_connections_max and "
            "peer_connections_max",
            soft,
            needed,
        )


def _open_chain(config: NodeConfig) -> tuple[Genesis, ChainStore]:
    """The genesis and the chain database of ``config``, checked to belong together; raises
    StartupError (the store closed)."""
    genesis = read_genesis(config.genesis_file)
    try:
        store = ChainStore.open(config.chain_path)
    except CorruptionError as error:
        raise StartupError(damaged_store_message(config, error)) from None
    except StoreError as error:
        hint = (
            " (create it first with 'sceau node init --config ...')"
            if "no chain database" in str(error)
            else ""
        )
        raise StartupError(f"{error}{hint}") from None
    if store.chain_id != genesis.chain_id:
        store.close()
        raise StartupError(
            f"{config.genesis_file} is not the genesis of the chain in {config.chain_path}"
        )
    return genesis, store


def build_node(config: NodeConfig) -> Node:
    """Open the store and compose a node for ``config``; raises StartupError."""
    genesis, store = _open_chain(config)
    try:
        engine = engine_for(genesis)
        key = _load_key(config)
        members = engine.members(store)
        me = next((member for member in members if member.id == config.member_id), None)
        if me is None:
            raise StartupError(f"{config.member_id!r} is not in the current member set")
        if me.public_key != crypto.public_key_bytes(key):
            raise StartupError(
                f"{config.key_file} is not the current node key of {config.member_id!r}"
            )
        mempool = Mempool(
            MempoolLimits(
                transactions_max=config.mempool_transactions_max,
                bytes_max=config.mempool_bytes_max,
                per_signer_max=config.mempool_per_signer_max,
            ),
        )
        application = ChainApplication(
            store,
            engine,
            mempool,
            proposal_time_share_percent=config.runtime.proposal_time_share_percent,
        )
        node = Node(
            member_id=config.member_id,
            key=key,
            store=store,
            engine=engine,
            mempool=mempool,
            application=application,
            replica_config=replica_config_for(
                engine.directory(store).parameters, config.tick_ms, config.runtime
            ),
            tick_ms=config.tick_ms,
            peer_limits=config.peer_limits,
            settings=config.runtime,
            witnesses=config.witnesses,
        )
        from node.runtime.transport import PeerTransport

        node.attach_transport(
            PeerTransport(
                member_id=config.member_id,
                key=key,
                chain_id=store.chain_id,
                members=application.members,
                on_frame=node.on_frame,
                config=transport_config(config, me.endpoint),
                server_ssl=server_ssl_context(config),
                client_ssl=client_ssl_context(config),
            )
        )
        return node
    except StoreError as error:
        store.close()
        raise StartupError(damaged_store_message(config, error)) from None
    except (ModelDecodeError, EncodingError) as error:
        # Node() decodes the safety record the store kept: one that no longer decodes is a
        # damaged database too.
        store.close()
        message = StoreError(f"the safety record does not decode ({_one_line(error)})")
        raise StartupError(damaged_store_message(config, message)) from None
    except BaseException:
        store.close()
        raise


def build_observer(config: NodeConfig) -> ObserverNode:
    """Open the store and compose an observer for ``config`` (no key, no peer port); raises
    StartupError."""
    from node.runtime.observer import ObserverNode

    assert config.observer is not None, "an observer's configuration"
    genesis, store = _open_chain(config)
    try:
        return ObserverNode(
            store,
            engine_for(genesis),
            config.observer,
            genesis,
            witness_keys=[witness.key for witness in config.witnesses],
        )
    except StoreError as error:
        store.close()
        raise StartupError(damaged_store_message(config, error)) from None
    except BaseException:
        store.close()
        raise


EVENT_LOOP_VARIABLE = "SCEAU_EVENT_LOOP"
EVENT_LOOPS = ("asyncio", "uvloop")
"""The event loops a node can run on: Python's own (the default), or uvloop when installed
(``pip install 'sceau[uvloop]'``) and chosen with ``SCEAU_EVENT_LOOP=uvloop``.

uvloop is not the default: when ``accept()`` fails (out of file descriptors), uvloop closes the
listening socket for good and reports nothing, where asyncio pauses, retries and lets
:func:`~node.runtime.connections.install_accept_error_handler` count the failures
(docs/security-outsider.md). A node on uvloop trades that for a cheaper loop."""


def event_loop_factory(
    environment: Mapping[str, str] | None = None,
) -> tuple[str, Callable[[], asyncio.AbstractEventLoop]]:
    """The name and the factory of the event loop that ``SCEAU_EVENT_LOOP`` chooses.

    Raises StartupError for a name that is not in :data:`EVENT_LOOPS`; uvloop chosen but not
    installed falls back to asyncio's loop, with a warning.
    """
    environment = os.environ if environment is None else environment
    choice = environment.get(EVENT_LOOP_VARIABLE, "asyncio").strip() or "asyncio"
    if choice not in EVENT_LOOPS:
        raise StartupError(
            f"{EVENT_LOOP_VARIABLE}={choice!r}: the event loop is one of {', '.join(EVENT_LOOPS)}"
        )
    if choice == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning(
                "%s=uvloop but uvloop is not installed: the standard event loop runs",
                EVENT_LOOP_VARIABLE,
            )
        else:
            return "uvloop", uvloop.new_event_loop
    return "asyncio", asyncio.new_event_loop


def run_node_until_stopped(config: NodeConfig) -> None:
    """Run :func:`run_node` on the event loop that :func:`event_loop_factory` chooses."""
    _, factory = event_loop_factory()
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(run_node(config))


def running_event_loop_name() -> str:
    """``uvloop`` or ``asyncio``: the module of the running loop, as the startup log says it."""
    return type(asyncio.get_running_loop()).__module__.partition(".")[0]


async def run_node(config: NodeConfig, *, ready: asyncio.Event | None = None) -> None:
    """Run a node and its API until SIGINT or SIGTERM."""
    from aiohttp import web

    from node.api import METRICS_EXTRA_KEY, create_app
    from node.runtime.connections import (
        ConnectionGuard,
        GuardedSite,
        install_accept_error_handler,
        metrics_text,
    )

    api_guard = ConnectionGuard(name="api", limits=api_guard_limits(config))
    node: Node | ObserverNode = (
        build_node(config) if config.observer is None else build_observer(config)
    )
    role = "observer" if config.observer is not None else f"member {config.member_id}"
    open_files_budget(config)  # once the node can start: a startup error stays one line
    stop = asyncio.Event()
    # A read or write that finds the store damaged stops the node (exit status 2, see
    # node/tools/cli.py): it must neither vote nor answer from a history it cannot prove whole.
    node.store.on_damage = lambda error: stop.set()
    # aiohttp logs a traceback for every malformed HTTP request it refuses itself; a hostile
    # client must not be able to flood the log that way.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    accept_errors: collections.Counter[str] = collections.Counter()
    install_accept_error_handler(loop, accept_errors)
    app = create_app(node, config)
    guards = {"api": api_guard}
    if node.transport is not None:
        guards["peer"] = node.transport.connection_guard
    app[METRICS_EXTRA_KEY] = lambda: metrics_text(guards, accept_errors)
    runner = web.AppRunner(
        app,
        access_log=None,
        keepalive_timeout=config.api_keepalive_timeout_ms / 1000,
        # Later requests on a kept-alive connection are bounded by aiohttp's parser alone:
        # 32 header lines of 8 KiB at most (its default allows 128).
        max_headers=API_HEADER_LINES_MAX,
    )
    try:
        await node.start()
        await runner.setup()
        host, port = host_and_port(config.api_listen)
        site = GuardedSite(
            runner, host, port, guard=api_guard, ssl_context=server_ssl_context(config)
        )
        await site.start()
        log.info(
            "%s running: height %d, API on %s, event loop %s",
            role,
            node.store.height,
            config.api_listen,
            running_event_loop_name(),
        )
        if ready is not None:
            ready.set()
        ticker = node.ticker
        assert ticker is not None
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({waiter, ticker}, return_when=asyncio.FIRST_COMPLETED)
        if node.store.damage is not None:
            raise node.store.damage
        if ticker in done and ticker.exception() is not None:
            raise ticker.exception()
    finally:
        await runner.cleanup()
        await node.stop()
        node.store.close()
        log.info("%s stopped", role)
