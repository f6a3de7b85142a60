"""A local consortium for development, demos and tests: N member nodes as N processes.

``sceau devnet up --nodes N --dir DIR`` writes, in DIR, a key and a configuration per member,
a genesis naming them (with realistic collectivity names), initialises every data directory,
starts each node as a separate process on loopback and waits until every node answers and
sees its peers. ``devnet.json`` in DIR records the processes, ports and files so that
``sceau devnet down --dir DIR`` (or a test) can stop them. Logs go to DIR/<member>/node.log.

Each member's node key also signs that member's acts here (a member's node key holds every
role of its member); a real deployment delegates application keys instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledger import crypto
from ledger.model import ConsensusParameters, ContractRef, Genesis, Member
from node.launch import initialise_data_dir

__all__ = ["DevnetError", "MemberProcess", "devnet_down", "devnet_up", "read_devnet"]

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
STATE_FILE = "devnet.json"


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
    for name, value in values.items():
        # json.dumps writes strings and booleans (true, false) as TOML wants them.
        rendered = json.dumps(value) if isinstance(value, str | bool) else str(value)
        lines.append(f"{name} = {rendered}")
    path.write_text("\n".join(lines) + "\n")


def prepare(
    directory: Path,
    nodes: int,
    *,
    tick_ms: int = 50,
    view_timeout_ms: int = 1_500,
    extra_config: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Write keys, genesis, configurations and data directories for ``nodes`` members.

    ``extra_config`` adds (or overrides) fields of every node's configuration, for example
    higher ``api_submissions_per_s`` for a load test.
    """
    if not 4 <= nodes <= NODES_MAX:
        raise DevnetError(f"a devnet has 4 to {NODES_MAX} nodes (f ≥ 1 needs at least 4)")
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / "genesis.json").exists():
        raise DevnetError(f"{directory} already holds a devnet; use another --dir or remove it")
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
            )
            for entry in entries
        ),
        parameters=ConsensusParameters(view_timeout_ms=view_timeout_ms),
        contracts=(
            ContractRef(name="membership", version="1.0"),
            ContractRef(name="deeds", version="1.0"),
        ),
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
                **(extra_config or {}),
            },
        )
        initialise_data_dir(member_dir / "data", genesis).close()
    return entries


def start_member(member_dir: Path) -> subprocess.Popen[bytes]:
    """Start one member's node as a separate process (its log in node.log)."""
    log = open(member_dir / "node.log", "ab")  # noqa: SIM115 — the child keeps it open
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "node.cli", "node", "run", "--config", "node.toml"],
            cwd=member_dir,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        log.close()


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
) -> list[MemberProcess]:
    """Prepare and start a devnet in ``directory``; returns its member processes."""
    entries = prepare(directory, nodes, tick_ms=tick_ms, extra_config=extra_config)
    processes = []
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
    try:
        wait_ready(processes, timeout_s)
    except DevnetError:
        devnet_down(directory)
        raise
    return processes


def write_devnet(directory: Path, processes: list[MemberProcess]) -> None:
    state = {"members": [asdict(process) for process in processes]}
    (directory / STATE_FILE).write_text(json.dumps(state, indent=2) + "\n")


def read_devnet(directory: Path) -> list[MemberProcess]:
    try:
        state = json.loads((directory / STATE_FILE).read_text())
    except (OSError, ValueError):
        raise DevnetError(f"no running devnet recorded in {directory / STATE_FILE}") from None
    return [MemberProcess(**entry) for entry in state["members"]]


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


def devnet_down(directory: Path) -> list[str]:
    """Stop every node of the devnet in ``directory``; returns the member ids stopped."""
    processes = read_devnet(directory)
    stop_processes([process.pid for process in processes])
    (directory / STATE_FILE).unlink(missing_ok=True)
    return [process.member_id for process in processes]
