"""Layers point down: node → consensus, contracts → ledger; inside node: tools → api → runtime,
and the verification page's sources (node/web) are a leaf that the API and the CLI render.

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


# --- the house's shape (docs/architecture.md) -------------------------------------------------

PACKAGES = ("ledger", "contracts", "consensus", "node")
CLASS_LINES_MAX = 400
"""No class in consensus/ over this many lines: a reader follows one message in one module."""

AIOHTTP_ALLOWED = {
    "ledger/client.py",
    "node/runtime/transport.py",
    "node/runtime/connections.py",
    "node/runtime/observer.py",
    "node/runtime/witnesses.py",
    "node/tools/launch.py",
}
"""Who may speak HTTP/WebSocket: the client library, the peer transport, the API and witness
packages (below), the observer's follower (it fetches blocks from members' APIs), the
members' pushers of checkpoints to witnesses and the launcher."""
PLYVEL_ALLOWED = {"ledger/store.py"}
"""Who may touch LevelDB: the store, and nothing else."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES for path in modules(package)}


def _type_checking_blocks(tree: ast.AST) -> set[int]:
    """ids of the import nodes under ``if TYPE_CHECKING:`` (names for annotations only)."""
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            inside.update(id(child) for statement in node.body for child in ast.walk(statement))
    return inside


def imported_project_modules(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules ``path`` imports at run time, at module level or inside a function
    alike (an import under ``if TYPE_CHECKING:`` only names types, and is left out)."""
    found = set()
    tree = ast.parse(path.read_text(), filename=str(path))
    annotations_only = _type_checking_blocks(tree)
    for node in ast.walk(tree):
        if id(node) in annotations_only:
            continue
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            submodules = [f"{node.module}.{alias.name}" for alias in node.names]
            # ``from package import submodule`` imports the submodule (and the package's
            # __init__, which only gathers names): the arrow goes to the submodule.
            found.update(name for name in submodules if name in known)
            if any(name in known for name in submodules):
                continue
            candidates = [node.module]
        else:
            continue
        found.update(name for name in candidates if name in known)
    return found - {name for name, known_path in known.items() if known_path == path}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles a depth-first walk of ``graph`` (module -> modules it imports) meets."""
    cycles = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, trail: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def test_the_cycle_finder_sees_a_cycle_through_a_lazy_import(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def later():\n    from c import x\n")
    (tmp_path / "c.py").write_text("from a import y\n")
    (tmp_path / "d.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import a\n"
    )
    known = {path.stem: path for path in tmp_path.glob("*.py")}
    graph = {name: imported_project_modules(path, known) for name, path in known.items()}
    assert graph["d"] == set()  # an annotation-only import is no arrow
    assert import_cycles(graph) == [["a", "b", "c", "a"]]
    assert import_cycles({"a": {"b"}, "b": set()}) == []


def test_no_module_imports_itself_back_through_others() -> None:
    known = project_modules()
    graph = {name: imported_project_modules(path, known) for name, path in known.items()}
    assert import_cycles(graph) == []


@pytest.mark.parametrize("path", modules("consensus"), ids=lambda path: path.name)
def test_no_class_in_consensus_outgrows_one_reading(path: Path) -> None:
    tree = ast.parse(path.read_text(), filename=str(path))
    sizes = {
        node.name: node.end_lineno - node.lineno + 1
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    assert {name: lines for name, lines in sizes.items() if lines > CLASS_LINES_MAX} == {}


@pytest.mark.parametrize(
    "path", [path for package in PACKAGES for path in modules(package)], ids=str
)
def test_only_named_modules_reach_the_network_stack_or_leveldb(path: Path) -> None:
    relative = path.relative_to(ROOT).as_posix()
    roots = imported_roots(path)
    if "aiohttp" in roots:
        assert relative in AIOHTTP_ALLOWED or relative.startswith(("node/api/", "node/witness/"))
    if "plyvel" in roots:
        assert relative in PLYVEL_ALLOWED


@pytest.mark.parametrize("path", modules("node/web"), ids=lambda path: path.name)
def test_the_verification_page_is_a_leaf_that_only_reads_its_own_files(path: Path) -> None:
    """``node/web`` renders the page from its own sources: the API (``node/api/page.py``) and
    ``sceau page`` build on it, never the other way, and it opens no socket nor database."""
    tree = ast.parse(path.read_text(), filename=str(path))
    project = {
        node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
        if node.module.split(".")[0] in PACKAGES
    }
    assert all(module.startswith("node.web") for module in project), project
    assert not imported_roots(path) & {"aiohttp", "plyvel", "asyncio", "socket", "http"}
    assert "urllib.request" not in ast.unparse(tree)  # urllib.parse only parses
