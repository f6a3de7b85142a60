"""Layers point down: node → consensus, contracts → ledger (DESIGN.md, STYLE.md habit 1).

The consensus core must stay sans-I/O: no clock, socket, randomness, thread or storage; the
simulator (its driver) is the one module allowed randomness and time. ``ledger`` is the bottom
layer and imports none of the others; plyvel only in its storage modules, aiohttp only in its
client module.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN_IN_CONSENSUS_CORE = {
    "aiohttp",
    "asyncio",
    "plyvel",
    "random",
    "socket",
    "threading",
    "time",
    "multiprocessing",
    "node",
    "contracts",
    "secrets",
    "os",
    "datetime",
}
CONSENSUS_DRIVERS = {"simulator.py"}
LEDGER_STORAGE_MODULES = {"store.py"}
LEDGER_CLIENT_MODULES = {"client.py"}


def imported_roots(path: Path) -> set[str]:
    """The top-level names of every module ``path`` imports."""
    tree = ast.parse(path.read_text(), filename=str(path))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize("path", modules("consensus"), ids=lambda path: path.name)
def test_the_consensus_core_imports_no_io_clock_or_randomness(path: Path) -> None:
    if path.name in CONSENSUS_DRIVERS:
        assert not imported_roots(path) & {"node", "contracts", "aiohttp", "plyvel", "asyncio"}
        return
    assert not imported_roots(path) & FORBIDDEN_IN_CONSENSUS_CORE


@pytest.mark.parametrize("path", modules("ledger"), ids=lambda path: path.name)
def test_ledger_is_the_bottom_layer(path: Path) -> None:
    roots = imported_roots(path)
    assert not roots & {"node", "consensus", "contracts"}
    if path.name not in LEDGER_STORAGE_MODULES:
        assert "plyvel" not in roots
    if path.name not in LEDGER_CLIENT_MODULES:
        assert "aiohttp" not in roots


@pytest.mark.parametrize("path", modules("contracts"), ids=lambda path: path.name)
def test_contracts_build_on_the_ledger_only(path: Path) -> None:
    roots = imported_roots(path)
    assert not roots & {"node", "consensus", "aiohttp", "plyvel", "asyncio", "random", "time"}


def test_importing_the_replica_loads_no_storage_network_or_event_loop() -> None:
    probe = (
        "import sys, consensus.replica, consensus.simulator;"
        "print(sorted(m for m in ('plyvel', 'aiohttp', 'asyncio') if m in sys.modules))"
    )
    output = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()
    assert output == "[]"
