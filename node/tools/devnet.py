"""A local consortium for development, demos and tests: N member nodes as N processes.

``sceau devnet up --nodes N --dir DIR`` writes, in DIR, a key and a configuration per member,
a genesis naming them (with realistic collectivity names), initialises every data directory,
starts each node as a separate process on loopback and waits until every node answers and
sees its peers. The genesis lists the membership and deeds contracts and, with ``--contract
NAME[=VERSION]``, any other contract installed beside sceau (a plug-in): the nodes run in the
same Python environment, so what this process can load, they can.

``devnet.json`` in DIR records the processes, ports and files so that ``sceau devnet down
--dir DIR`` (or a test) can stop them; each node is recorded as soon as it is started, so a
start-up that fails half-way leaves nothing unrecorded (and stops what it started). ``devnet
down`` also stops a node that runs one of DIR's member configurations without being recorded
(started by hand with ``sceau node run --config DIR/<member>/node.toml``). Logs go to
DIR/<member>/node.log.

Everything a devnet writes is private to its user: it is written under umask 077 (files
0600, folders 0700), and so is what its nodes write (their stores, logs and tokens). Before
``devnet down`` signals a recorded PID it checks that the process is still that member's
node — its command line names the member's configuration and its start time is the one
recorded — so that a PID reused by another process after a reboot or a crash is never
signalled: it is reported and skipped.

With ``--observers K`` (:func:`devnet_up`'s ``observers``), K observers (node/runtime/observer.py)
follow the members' APIs from DIR/observer-<i>/ (no key, no peer port); they are recorded in
devnet.json under ``observers``, stopped by ``devnet down`` with the members.

With ``--issuers N`` (:func:`devnet_up`'s ``issuers``), N issuers (``commune-0001`` …) are then
admitted through real governance over the members' APIs (node/tools/territory.py): their keys
in DIR/issuers/<id>.pem, their list in DIR/issuers.json.

With ``--witness NAME`` (:func:`devnet_up`'s ``witnesses``), a witness that is no member (as a
préfecture would run one) is set up in DIR/witness-NAME/ as ``sceau witness init`` and ``add-log
--genesis`` would, and a real ``sceau witness run`` process serves it on a free loopback port
before the members start. Every member's configuration names it in ``[[witnesses]]`` (label
NAME, its URL, its cosignature vkey), so the members push each checkpoint to it and keep its
cosignatures. It is recorded in devnet.json under ``witnesses`` (with its vkey, what a verifier
passes to ``sceau verify --witness NAME=VKEY``) and stopped by ``devnet down``; its log is
DIR/witness-NAME/witness.log.

Each member's node key also signs that member's acts here (a member's node key holds every
role of its member); a real deployment delegates application keys instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledger import crypto
from ledger.model import ConsensusParameters, ContractRef, Genesis, Member
from node.runtime.debug_token import ensure_token
from node.tools.launch import initialise_data_dir
from node.tools.territory import ISSUERS_MAX, siret

__all__ = [
    "DevnetError",
    "MemberProcess",
    "WitnessProcess",
    "devnet_down",
    "devnet_stop",
    "devnet_up",
    "read_devnet",
    "read_observers",
    "read_witnesses",
]

log = logging.getLogger("sceau.devnet")

COLLECTIVITIES = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
    ("montclar-sur-loue", "Commune de Montclar-sur-Loue"),
    ("pays-de-brune", "Communauté de communes du Pays de Brune"),
    ("region-val-de-loue", "Région Val-de-Loue"),
    ("sdis-valbrune", "Service départemental d'incendie et de secours"),
    ("bourg-sainte-anne", "Commune de Bourg-Sainte-Anne"),
    ("les-aubiers", "Commune des Aubiers"),
)
NODES_MAX = 30
OBSERVERS_MAX = 10
OBSERVER_POLL_INTERVAL_MS = 200
"""A devnet's observers ask for new blocks this often once caught up (a demo wants them
close behind the members)."""
WITNESSES_MAX = 5
WITNESS_NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
"""A devnet witness's label: also its folder (DIR/witness-NAME) and the first label of its key
name (NAME.localhost/witness), so lowercase letters, digits and hyphens."""
WITNESS_BACKOFF_MAX_MS = 2_000
"""A devnet member retries a failed push to its witness within two seconds (the default, a
minute, suits a witness across the internet, not one restarted by hand on loopback)."""
STATE_FILE = "devnet.json"
PRIVATE_UMASK = 0o077
"""The umask of everything a devnet and its nodes write: files 0600, folders 0700."""


class DevnetError(Exception):
    """The devnet cannot be started or stopped as asked; the message says why."""


@dataclass(frozen=True, slots=True)
class MemberProcess:
    member_id: str
    name: str
    pid: int
    api_url: str
    peer_port: int
    config_file: str
    key_file: str
    log_file: str
    start_ticks: int | None = None
    """The process's start time (clock ticks since boot, /proc/PID/stat field 22), recorded by
    :func:`write_devnet`: a PID reused by another process has another one."""


@dataclass(frozen=True, slots=True)
class WitnessProcess:
    """A devnet's witness: a ``sceau witness run`` process serving ``directory``."""

    name: str
    """The label members and verifiers give it (``[[witnesses]]`` name, ``--witness NAME=…``)."""
    key_name: str
    """The key name of its cosignatures (``NAME.localhost/witness``)."""
    vkey: str
    """Its cosignature verifier key (type 04), what a verifier's policy names."""
    pid: int
    url: str
    directory: str
    log_file: str
    start_ticks: int | None = None


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _members_for(count: int) -> list[tuple[str, str]]:
    if count <= len(COLLECTIVITIES):
        return list(COLLECTIVITIES[:count])
    extra = [(f"commune-{index}", f"Commune n° {index}") for index in range(count)]
    return list(COLLECTIVITIES) + extra[len(COLLECTIVITIES) : count]


def _write_config(path: Path, values: dict[str, Any]) -> None:
    lines = []
    tables = []
    for name, value in values.items():
        if isinstance(value, list | tuple) and all(isinstance(item, dict) for item in value):
            for item in value:  # an array of tables ([[witnesses]]), after the plain keys
                tables.append(f"\n[[{name}]]")
                tables.extend(f"{key} = {_toml_scalar(v)}" for key, v in item.items())
            continue
        lines.append(f"{name} = {_toml_scalar(value)}")
    path.write_text("\n".join(lines + tables) + "\n")


def _toml_scalar(value: Any) -> str:
    # json.dumps writes strings and booleans (true, false) as TOML wants them.
    return json.dumps(value) if isinstance(value, str | bool) else str(value)


def prepare(
    directory: Path,
    nodes: int,
    *,
    tick_ms: int = 50,
    view_timeout_ms: int = 1_500,
    extra_config: dict[str, Any] | None = None,
    contracts: Sequence[ContractRef] | None = None,
    format_version: int = 2,
) -> list[dict[str, Any]]:
    """Write keys, genesis, configurations and data directories for ``nodes`` members.

    ``format_version`` is the genesis's header format (2: headers commit to the log of every
    act from block 1; 1: the format before it, which a chain may leave by governance).

    ``extra_config`` adds (or overrides) fields of every node's configuration, for example
    higher ``api_submissions_per_s`` for a load test. ``contracts`` are what the genesis
    pins (default: membership and deeds at their installed versions); each must load here
    (:func:`contracts.registry.load_contracts`), or nothing is written.
    """
    if not 4 <= nodes <= NODES_MAX:
        raise DevnetError(f"a devnet has 4 to {NODES_MAX} nodes (f ≥ 1 needs at least 4)")
    if (directory / "genesis.json").exists():
        raise DevnetError(f"{directory} already holds a devnet; use another --dir or remove it")
    pinned = _loadable(contracts)
    with _private_files():
        directory.mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
        return _prepare(
            directory, nodes, tick_ms, view_timeout_ms, extra_config or {}, pinned, format_version
        )


def _loadable(contracts: Sequence[ContractRef] | None) -> tuple[ContractRef, ...]:
    """``contracts`` (default: the built-in ones), checked to load as the nodes will."""
    from contracts.registry import ContractLoadError, contract_refs, load_contracts

    try:
        pinned = contract_refs(()) if contracts is None else tuple(contracts)
        # A throw-away genesis with the same contracts: the nodes would refuse to start.
        probe = Genesis(
            consortium="probe",
            created_at_ms=0,
            members=(
                Member(
                    id="probe",
                    name="probe",
                    public_key=crypto.public_key_bytes(crypto.generate_key()),
                    endpoint="127.0.0.1:1",
                ),
            ),
            contracts=pinned,
        )
        load_contracts(probe)
    except ContractLoadError as error:
        raise DevnetError(str(error)) from None
    return pinned


@contextlib.contextmanager
def _private_files() -> Iterator[None]:
    """Run the block under umask 077. The umask is the process's: a file another thread
    creates meanwhile is private too, which errs on the safe side."""
    previous = os.umask(PRIVATE_UMASK)
    try:
        yield
    finally:
        os.umask(previous)


def _prepare(
    directory: Path,
    nodes: int,
    tick_ms: int,
    view_timeout_ms: int,
    extra_config: dict[str, Any],
    contracts: tuple[ContractRef, ...],
    format_version: int,
) -> list[dict[str, Any]]:
    members = _members_for(nodes)
    ports = _free_ports(2 * nodes)
    keys = {}
    entries = []
    for index, (member_id, name) in enumerate(members):
        member_dir = directory / member_id
        member_dir.mkdir()
        key = crypto.generate_key()
        crypto.save_private_key(key, member_dir / "node.pem")
        keys[member_id] = key
        entries.append(
            {
                "member_id": member_id,
                "name": name,
                "dir": member_dir,
                "peer_port": ports[2 * index],
                "api_port": ports[2 * index + 1],
            }
        )
    genesis = Genesis(
        consortium="Consortium des actes du Valbrunois (devnet)",
        created_at_ms=time.time_ns() // 1_000_000,
        members=tuple(
            Member(
                id=entry["member_id"],
                name=entry["name"],
                public_key=crypto.public_key_bytes(keys[entry["member_id"]]),
                endpoint=f"127.0.0.1:{entry['peer_port']}",
                siret=siret(900_000 + index, siren_prefix="20"),
            )
            for index, entry in enumerate(entries)
        ),
        parameters=ConsensusParameters(view_timeout_ms=view_timeout_ms),
        contracts=contracts,
        format_version=format_version,
    )
    (directory / "genesis.json").write_text(genesis.model_dump_json(indent=2) + "\n")
    for entry in entries:
        member_dir = entry["dir"]
        _write_config(
            member_dir / "node.toml",
            {
                "member_id": entry["member_id"],
                "data_dir": "data",
                "genesis_file": "../genesis.json",
                "key_file": "node.pem",
                "peer_listen": f"127.0.0.1:{entry['peer_port']}",
                "api_listen": f"127.0.0.1:{entry['api_port']}",
                "tick_ms": tick_ms,
                **extra_config,
            },
        )
        initialise_data_dir(member_dir / "data", genesis).close()
        if extra_config.get("fault_injection"):
            ensure_token(member_dir / "data")
    return entries


def start_member(member_dir: Path) -> subprocess.Popen[bytes]:
    """Start one member's node as a separate process (its log in node.log).

    The node runs under umask 077 and its command line names its configuration by absolute
    path, which is how :func:`devnet_stop` recognises it.
    """
    member_dir = Path(member_dir).resolve()
    config = str(member_dir / "node.toml")
    return _spawn(["node", "run", "--config", config], member_dir, member_dir / "node.log")


def _spawn(arguments: list[str], folder: Path, log_file: Path) -> subprocess.Popen[bytes]:
    """``sceau ARGUMENTS`` as a detached process in ``folder``, its output appended to
    ``log_file`` (created 0600), with the devnet's private umask."""
    descriptor = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "node.tools.cli", *arguments],
            cwd=folder,
            stdout=descriptor,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            umask=PRIVATE_UMASK,
        )
    finally:
        os.close(descriptor)


def _get_json(url: str, timeout_s: float = 1.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return json.loads(response.read())


def wait_ready(processes: list[MemberProcess], timeout_s: float = 60.0) -> None:
    """Wait until every node answers /v1/status and is connected to all its peers."""
    deadline = time.monotonic() + timeout_s
    waiting = {process.member_id for process in processes}
    while waiting:
        for process in processes:
            if process.member_id not in waiting:
                continue
            if not _alive(process.pid):
                raise DevnetError(
                    f"{process.member_id} exited during start-up; see {process.log_file}"
                    + _log_tail(process.log_file)
                )
            try:
                status = _get_json(f"{process.api_url}/v1/status")
            except (urllib.error.URLError, OSError, ValueError):
                continue
            if len(status.get("peers_connected", [])) >= len(processes) - 1:
                waiting.discard(process.member_id)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise DevnetError(f"not ready after {timeout_s:.0f} s: {sorted(waiting)}")
        time.sleep(0.2)


LOG_TAIL_LINES = 8
LOG_TAIL_BYTES_MAX = 4096


def _log_tail(log_file: str) -> str:
    """The last lines of a process's log, for an error that outlives its folder (the demo
    removes its temporary folder on the way out): at most ``LOG_TAIL_LINES`` lines of the last
    ``LOG_TAIL_BYTES_MAX`` bytes, or nothing if the log cannot be read."""
    try:
        with open(log_file, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - LOG_TAIL_BYTES_MAX))
            tail = handle.read().decode("utf-8", "replace").splitlines()[-LOG_TAIL_LINES:]
    except OSError:
        return ""
    return "".join(f"\n  | {line}" for line in tail)


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)
        if waited != 0:
            return False
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return state not in ("Z", "X")


def devnet_up(
    directory: Path,
    nodes: int,
    *,
    timeout_s: float = 60.0,
    tick_ms: int = 50,
    extra_config: dict[str, Any] | None = None,
    contracts: Sequence[ContractRef] | None = None,
    observers: int = 0,
    issuers: int = 0,
    witnesses: Sequence[str] = (),
    format_version: int = 2,
) -> list[MemberProcess]:
    """Prepare and start a devnet in ``directory``; returns its member processes.

    ``format_version``: the genesis's header format (see :func:`prepare`).

    ``witnesses``: the labels of witnesses to set up and start before the members, each in
    DIR/witness-NAME with a key of its own; every member pushes its checkpoints to each
    (:func:`read_witnesses` lists them, with their vkeys).

    ``observers``: how many observers to start once the members are ready, each following
    every member's API (:func:`read_observers` lists them).

    ``issuers``: how many issuers to admit by governance once the members (and observers)
    are up (node/tools/territory.py: keys in DIR/issuers/, the list and what the admission
    did in DIR/issuers.json). Every issuer signs from the height after
    ``read_admission(DIR).height``.

    ``contracts``: what the genesis pins (default: membership and deeds). Every node is
    recorded in devnet.json as soon as it is started; if the start-up fails or is
    interrupted, the nodes already started are stopped before the error goes on.
    """
    if not 0 <= observers <= OBSERVERS_MAX:
        raise DevnetError(f"a devnet has 0 to {OBSERVERS_MAX} observers")
    if not 0 <= issuers <= ISSUERS_MAX:
        raise DevnetError(f"a devnet admits 0 to {ISSUERS_MAX} issuers")
    planned = _plan_witnesses(witnesses)
    extra_config = dict(extra_config or {})
    if planned:
        extra_config["witnesses"] = [
            *extra_config.get("witnesses", ()),
            *(witness.settings for witness in planned),
        ]
    entries = prepare(
        directory.resolve(),
        nodes,
        tick_ms=tick_ms,
        extra_config=extra_config,
        contracts=contracts,
        format_version=format_version,
    )
    processes: list[MemberProcess] = []
    try:
        if planned:
            _start_witnesses(directory.resolve(), planned, timeout_s)
        for entry in entries:
            child = start_member(entry["dir"])
            processes.append(
                MemberProcess(
                    member_id=entry["member_id"],
                    name=entry["name"],
                    pid=child.pid,
                    api_url=f"http://127.0.0.1:{entry['api_port']}",
                    peer_port=entry["peer_port"],
                    config_file=str(entry["dir"] / "node.toml"),
                    key_file=str(entry["dir"] / "node.pem"),
                    log_file=str(entry["dir"] / "node.log"),
                )
            )
            write_devnet(directory, processes)
        wait_ready(processes, timeout_s)
        if observers:
            start_observers(directory.resolve(), processes, observers, timeout_s=timeout_s)
        if issuers:
            _admit_issuers(directory.resolve(), processes, issuers)
    except BaseException:  # a failure, or Ctrl-C: leave no node behind
        if (directory / STATE_FILE).exists():
            devnet_down(directory)
        raise
    return processes


@dataclass(frozen=True, slots=True)
class _PlannedWitness:
    """A witness before it exists: its label, new key and port, and the members' entry."""

    name: str
    key: Any
    port: int

    @property
    def key_name(self) -> str:
        return f"{self.name}.localhost/witness"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def vkey(self) -> str:
        from ledger.note import KeyType, NoteVerifierKey

        return NoteVerifierKey.for_private_key(self.key_name, KeyType.COSIGNATURE_V1, self.key).vkey

    @property
    def settings(self) -> dict[str, Any]:
        """The ``[[witnesses]]`` entry of every member's configuration."""
        return {
            "name": self.name,
            "url": self.url,
            "vkey": self.vkey,
            "backoff_max_ms": WITNESS_BACKOFF_MAX_MS,
        }


def _plan_witnesses(names: Sequence[str]) -> list[_PlannedWitness]:
    """A key and a port for each witness label, checked before anything is written."""
    if len(names) > WITNESSES_MAX:
        raise DevnetError(f"a devnet has 0 to {WITNESSES_MAX} witnesses")
    for name in names:
        if not WITNESS_NAME_PATTERN.fullmatch(name):
            raise DevnetError(
                f"witness name {name!r:.60}: 1 to 40 lowercase letters, digits and hyphens, "
                "e.g. prefecture"
            )
    if len(set(names)) != len(names):
        raise DevnetError("a witness name is given twice")
    ports = _free_ports(len(names))
    return [
        _PlannedWitness(name, crypto.generate_key(), port)
        for name, port in zip(names, ports, strict=True)
    ]


def _start_witnesses(
    directory: Path, planned: Sequence[_PlannedWitness], timeout_s: float
) -> list[WitnessProcess]:
    """Write each witness's folder (what ``sceau witness init`` and ``add-log --genesis``
    write), start ``sceau witness run`` on it, record it, and wait until it answers."""
    from node.tools.launch import read_genesis
    from node.witness.config import WitnessConfig, policy_from_genesis, render_config
    from node.witness.state import write_atomically

    genesis = read_genesis(directory / "genesis.json")
    started = read_witnesses(directory)
    for witness in planned:
        folder = directory / f"witness-{witness.name}"
        with _private_files():
            folder.mkdir()
            configuration = WitnessConfig(
                directory=folder, name=witness.key_name, listen=f"127.0.0.1:{witness.port}"
            )
            crypto.save_private_key(witness.key, configuration.key_path)
            genesis_copy = f"genesis-{genesis.chain_id.hex()[:16]}.json"
            (folder / genesis_copy).write_bytes((directory / "genesis.json").read_bytes())
            configuration = configuration.with_log(policy_from_genesis(genesis, genesis_copy))
            write_atomically(folder / "witness.toml", render_config(configuration).encode())
        log_file = folder / "witness.log"
        child = _spawn(["witness", "run", "--dir", str(folder)], folder, log_file)
        started.append(
            WitnessProcess(
                name=witness.name,
                key_name=witness.key_name,
                vkey=witness.vkey,
                pid=child.pid,
                url=witness.url,
                directory=str(folder),
                log_file=str(log_file),
            )
        )
        write_devnet(directory, read_devnet_or_none(directory), witnesses=started)
    deadline = time.monotonic() + timeout_s
    waiting = {process.name: process for process in started}
    while waiting:
        for name, process in list(waiting.items()):
            if not _alive(process.pid):
                raise DevnetError(
                    f"witness {name} exited during start-up; see {process.log_file}"
                    + _log_tail(process.log_file)
                )
            try:
                if _get_json(f"{process.url}/").get("logs"):
                    del waiting[name]
            except (urllib.error.URLError, OSError, ValueError):
                continue
        if waiting and time.monotonic() > deadline:
            raise DevnetError(f"witnesses not ready after {timeout_s:.0f} s: {sorted(waiting)}")
        time.sleep(0.1)
    return started


def _admit_issuers(directory: Path, members: list[MemberProcess], count: int) -> None:
    """Admit ``count`` issuers by governance (node/tools/territory.py), as a DevnetError."""
    from node.tools.territory import TerritoryError, admit_issuers

    try:
        with _private_files():
            admit_issuers(directory, members, count)
    except TerritoryError as error:
        raise DevnetError(f"admitting the issuers: {error}") from None


def _write_observer_config(path: Path, api_port: int, follow: Sequence[str]) -> None:
    sources = ", ".join(json.dumps(url) for url in follow)
    path.write_text(
        "\n".join(
            (
                'data_dir = "data"',
                'genesis_file = "../genesis.json"',
                f'api_listen = "127.0.0.1:{api_port}"',
                "",
                "[observer]",
                f"follow = [{sources}]",
                f"poll_interval_ms = {OBSERVER_POLL_INTERVAL_MS}",
            )
        )
        + "\n"
    )


def start_observers(
    directory: Path, members: list[MemberProcess], count: int, *, timeout_s: float = 60.0
) -> list[MemberProcess]:
    """Write, initialise and start ``count`` observers in DIR/observer-<i>, each following
    every member's API; record them in devnet.json and wait until each API answers."""
    from node.tools.launch import read_genesis

    genesis = read_genesis(directory / "genesis.json")
    started = read_observers(directory)
    ports = _free_ports(count)
    follow = [member.api_url for member in members]
    for index, port in enumerate(ports, start=len(started) + 1):
        name = f"observer-{index}"
        observer_dir = directory / name
        with _private_files():
            observer_dir.mkdir()
            _write_observer_config(observer_dir / "node.toml", port, follow)
            initialise_data_dir(observer_dir / "data", genesis).close()
        child = start_member(observer_dir)
        started.append(
            MemberProcess(
                member_id=name,
                name=f"observer {index}",
                pid=child.pid,
                api_url=f"http://127.0.0.1:{port}",
                peer_port=0,
                config_file=str(observer_dir / "node.toml"),
                key_file="",
                log_file=str(observer_dir / "node.log"),
            )
        )
        write_devnet(directory, members, started)
    deadline = time.monotonic() + timeout_s
    waiting = {process.member_id: process for process in started}
    while waiting:
        for name, process in list(waiting.items()):
            if not _alive(process.pid):
                raise DevnetError(
                    f"{name} exited during start-up; see {process.log_file}"
                    + _log_tail(process.log_file)
                )
            try:
                if _get_json(f"{process.api_url}/v1/status").get("role") == "observer":
                    del waiting[name]
            except (urllib.error.URLError, OSError, ValueError):
                continue
        if waiting and time.monotonic() > deadline:
            raise DevnetError(f"observers not ready after {timeout_s:.0f} s: {sorted(waiting)}")
        time.sleep(0.1)
    return started


def write_devnet(
    directory: Path,
    processes: list[MemberProcess],
    observers: Sequence[MemberProcess] | None = None,
    *,
    witnesses: Sequence[WitnessProcess] | None = None,
) -> None:
    """Record ``processes`` (and ``observers`` and ``witnesses``, default: those recorded) in
    DIR/devnet.json, each with its start time read now (an observer's or a witness's once,
    when first recorded)."""
    if observers is None:
        observers = read_observers(directory)
    if witnesses is None:
        witnesses = read_witnesses(directory)
    recorded = [
        dataclasses.replace(process, start_ticks=process_start_ticks(process.pid))
        for process in processes
    ]
    state: dict[str, Any] = {"members": [asdict(process) for process in recorded]}
    for key, extra in (("observers", observers), ("witnesses", witnesses)):
        if extra:
            state[key] = [asdict(_stamped(process)) for process in extra]
    target = directory / STATE_FILE
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps(state, indent=2) + "\n")


def _stamped(process: Any) -> Any:
    """``process`` with its start time recorded (kept if it already has one)."""
    if process.start_ticks is not None:
        return process
    return dataclasses.replace(process, start_ticks=process_start_ticks(process.pid))


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None without /proc, or if gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22 of proc(5); fields[0] is field 3, the state
    except (OSError, IndexError, ValueError):
        return None


def _is_member_node(process: MemberProcess) -> str | None:
    """Why ``process.pid`` is not (any more) this devnet's node, or None if it is."""
    if not Path("/proc/self").is_dir():
        return None  # no /proc to look at (not Linux): the recorded PID is trusted
    try:
        arguments = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(f"/proc/{process.pid}/cwd"))
    except OSError:
        return "no such process"
    names = [os.fsdecode(argument) for argument in arguments]
    configs = [names[i + 1] for i, name in enumerate(names[:-1]) if name == "--config"]
    if not any(
        (cwd / config).resolve() == Path(process.config_file).resolve() for config in configs
    ):
        return f"it does not run {process.config_file}"
    started = process_start_ticks(process.pid)
    if process.start_ticks is not None and started != process.start_ticks:
        return "it started after the node recorded under this PID"
    return None


def read_devnet(directory: Path) -> list[MemberProcess]:
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        raise DevnetError(f"no running devnet recorded in {directory / STATE_FILE}") from None
    return [MemberProcess(**entry) for entry in state["members"]]


def read_devnet_or_none(directory: Path) -> list[MemberProcess]:
    """The members recorded in DIR/devnet.json (none if there is no record)."""
    try:
        return read_devnet(directory)
    except DevnetError:
        return []


def read_witnesses(directory: Path) -> list[WitnessProcess]:
    """The witnesses recorded in DIR/devnet.json (none if there is no record)."""
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [WitnessProcess(**entry) for entry in state.get("witnesses", [])]


def _is_witness(process: WitnessProcess) -> str | None:
    """Why ``process.pid`` is not (any more) this devnet's witness, or None if it is."""
    if not Path("/proc/self").is_dir():
        return None
    try:
        arguments = Path(f"/proc/{process.pid}/cmdline").read_bytes().split(b"\0")
        cwd = Path(os.readlink(f"/proc/{process.pid}/cwd"))
    except OSError:
        return "no such process"
    names = [os.fsdecode(argument) for argument in arguments]
    served = [
        names[i + 3]
        for i in range(len(names) - 3)
        if names[i : i + 3] == ["witness", "run", "--dir"]
    ]
    if not any((cwd / folder).resolve() == Path(process.directory).resolve() for folder in served):
        return f"it does not serve {process.directory}"
    started = process_start_ticks(process.pid)
    if process.start_ticks is not None and started != process.start_ticks:
        return "it started after the witness recorded under this PID"
    return None


def read_observers(directory: Path) -> list[MemberProcess]:
    """The observers recorded in DIR/devnet.json (none if there is no record)."""
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [MemberProcess(**entry) for entry in state.get("observers", [])]


def stop_processes(pids: list[int], timeout_s: float = 10.0) -> None:
    """SIGTERM them all, wait (one deadline), then SIGKILL whatever still runs."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)


def stop_process(pid: int, timeout_s: float = 10.0) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; a process already gone is fine."""
    stop_processes([pid], timeout_s)


@dataclass(frozen=True, slots=True)
class StopReport:
    """What :func:`devnet_stop` did: members stopped, and stale records skipped (why)."""

    stopped: list[str]
    skipped: dict[str, str]
    unrecorded: list[str] = dataclasses.field(default_factory=list)
    """Members whose node ran without being recorded (started by hand), stopped too."""
    observers: list[str] = dataclasses.field(default_factory=list)
    """Observers stopped (their names are not in ``stopped``)."""
    witnesses: list[str] = dataclasses.field(default_factory=list)
    """Witnesses stopped (their labels)."""


def devnet_stop(directory: Path) -> StopReport:
    """Stop every node of the devnet in ``directory`` that still runs.

    The recorded ones first: a recorded PID that is no longer that member's node (it exited,
    and the PID may now be another process's) is not signalled, but reported in ``skipped``.
    Then any other ``node run`` process of this user whose configuration is one of the
    devnet's (``DIR/<member>/node.toml``): a node started by hand there, stopped and reported
    in ``unrecorded``. Raises :class:`DevnetError` when nothing is recorded
    and no such node runs.
    """
    try:
        processes = read_devnet(directory)
    except DevnetError:
        processes = []
        if not _unrecorded_nodes(directory, ()):
            raise
    observers = read_observers(directory)
    processes += observers
    running, skipped = [], {}
    for process in processes:
        reason = _is_member_node(process) if _alive(process.pid) else "no such process"
        if reason is None:
            running.append(process)
        else:
            skipped[process.member_id] = f"pid {process.pid}: {reason}"
    witnesses = []
    for witness in read_witnesses(directory):
        reason = _is_witness(witness) if _alive(witness.pid) else "no such process"
        if reason is None:
            witnesses.append(witness)
        else:
            skipped[f"witness {witness.name}"] = f"pid {witness.pid}: {reason}"
    pids = [process.pid for process in running]
    unrecorded = _unrecorded_nodes(directory, pids)
    # The members first, then their witnesses: a witness outlives every push made to it.
    stop_processes(pids + [pid for _, pid in unrecorded])
    stop_processes([witness.pid for witness in witnesses])
    (directory / STATE_FILE).unlink(missing_ok=True)
    return StopReport(
        stopped=[process.member_id for process in running if process not in observers],
        skipped=skipped,
        unrecorded=[member_id for member_id, _ in unrecorded],
        observers=[process.member_id for process in running if process in observers],
        witnesses=[witness.name for witness in witnesses],
    )


def _unrecorded_nodes(directory: Path, known: Sequence[int]) -> list[tuple[str, int]]:
    """``(member id, pid)`` of the ``node run`` processes that run one of the devnet's
    member configurations and are not in ``known``. Empty without /proc (not Linux)."""
    configs = {path.resolve(): path.parent.name for path in Path(directory).glob("*/node.toml")}
    if not configs or not Path("/proc/self").is_dir():
        return []
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in known or int(entry.name) == os.getpid():
            continue
        try:
            if entry.stat().st_uid != os.getuid():
                continue
            arguments = [
                os.fsdecode(part) for part in (entry / "cmdline").read_bytes().split(b"\0")
            ]
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue  # gone meanwhile, or not ours to read
        config = _node_config(arguments)
        member = None if config is None else configs.get((cwd / config).resolve())
        if member is not None and _alive(int(entry.name)):
            found.append((member, int(entry.name)))
    return found


def _node_config(arguments: list[str]) -> str | None:
    """The configuration a ``… node run --config FILE`` command line names, or None."""
    for index in range(len(arguments) - 3):
        if arguments[index : index + 3] == ["node", "run", "--config"]:
            return arguments[index + 3]
    return None


def devnet_down(directory: Path) -> list[str]:
    """Stop every node of the devnet in ``directory``; returns the member ids stopped, the
    recorded ones then those started by hand (stale records are skipped with a WARNING, see
    :func:`devnet_stop`)."""
    report = devnet_stop(directory)
    for member_id, reason in report.skipped.items():
        log.warning("devnet down: %s not signalled (%s)", member_id, reason)
    return report.stopped + report.unrecorded
