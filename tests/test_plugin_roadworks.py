"""A contract written by a third party, used as docs/contracts.md tells a newcomer to use it.

examples/roadworks is installed with pip as its own distribution (sceau-example-roadworks)
into a scratch directory that the ``sceau`` commands — and the nodes they start — see through
PYTHONPATH, exactly as a package installed beside sceau. Then, with the documented commands
only: ``sceau devnet up --contract roadworks`` starts a real four-node devnet that runs it, the
client library submits to it (and an application key gets its role by delegation), ``sceau
query`` reads it back, ``sceau export`` writes the chain and ``sceau audit`` checks it — with
the plug-in installed, and without it (a one-line error that names it and says how to install
it). The same commands, in the same order, are the tutorial of docs/contracts.md.

Also here: what ``devnet up`` and ``devnet down`` promise about the nodes they start (each
recorded and stopped; a node started by hand with a devnet's configuration stopped too).
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import pip_install_into

from contracts.registry import discover
from ledger import crypto
from ledger.client import ApiError, Client
from ledger.model import Genesis
from node.tools.devnet import DevnetError, devnet_up, read_devnet

EXAMPLE = Path(__file__).parent.parent / "examples" / "roadworks"
EXAMPLE_ENTRY_POINT = "sceau_roadworks:RoadworksContract"
SCEAU = [sys.executable, "-m", "node.tools.cli"]
COMMAND_TIMEOUT_S = 120.0
COMMIT_WAIT_S = 30.0
ISSUER = "metropole-valbrune"  # the first member of every devnet
DECREE = {
    "issuer": ISSUER,
    "number": "2026-VOI-0142",
    "road": "Rue des Tanneurs, entre le pont Neuf et la place du Marché",
    "restriction": "closed",
    "starts": "2026-12-07",
    "ends": "2026-12-18",
}


# --- the plug-in, installed as a separate distribution ---------------------------------------


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory into which pip has installed examples/roadworks (offline, no deps)."""
    # The tests compare this environment with and without the plug-in.
    assert "roadworks" not in discover(), (
        "the roadworks contract is installed in the test environment itself: "
        "pip uninstall sceau-example-roadworks, these tests install it on their own"
    )
    return pip_install_into(EXAMPLE, tmp_path_factory.mktemp("roadworks"))


def environment(site: Path | None) -> dict[str, str]:
    """This process's environment, with the packages of ``site`` importable (None: without)."""
    paths = [str(site)] if site is not None else []
    paths += [path for path in os.environ.get("PYTHONPATH", "").split(os.pathsep) if path]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}


def sceau(*arguments: str | Path, site: Path | None) -> subprocess.CompletedProcess[str]:
    """Run ``sceau ARGUMENTS`` in a new process, with the plug-in installed or not."""
    return subprocess.run(
        [*SCEAU, *(str(argument) for argument in arguments)],
        capture_output=True,
        text=True,
        env=environment(site),
        timeout=COMMAND_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout


def user_error(result: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """Exit status 2 and one line on stderr, with no traceback, holding every fragment."""
    error = result.stderr.strip()
    assert result.returncode == 2, f"exit {result.returncode}\n{result.stdout}\n{error}"
    assert "Traceback" not in error and len(error.splitlines()) == 1, error
    assert error.startswith("sceau: error:"), error
    for fragment in fragments:
        assert fragment in error, f"{fragment!r} not in {error!r}"
    return error


def running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def node_pids(directory: Path) -> list[int]:
    """The ``node run`` processes of this user whose configuration is in ``directory``."""
    configs = {path.resolve() for path in directory.glob("*/node.toml")}
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            arguments = [os.fsdecode(a) for a in (entry / "cmdline").read_bytes().split(b"\0")]
            cwd = Path(os.readlink(entry / "cwd"))
        except (OSError, ValueError):
            continue
        if "run" in arguments and any(
            (cwd / after).resolve() in configs
            for before, after in itertools.pairwise(arguments)
            if before == "--config"
        ):
            pids.append(int(entry.name))
    return [pid for pid in pids if running(pid)]


@pytest.fixture
def devnet_dir(tmp_path: Path) -> Iterator[Path]:
    """A folder for a devnet; whatever runs there at the end is stopped (and must not)."""
    directory = tmp_path / "devnet"
    yield directory
    left = node_pids(directory) if directory.exists() else []
    if left:
        sceau("devnet", "down", "--dir", directory, site=None)
    assert not left, f"nodes left running: {left}"


# --- enabling a plug-in: genesis create, devnet up -------------------------------------------


def test_the_installed_plugin_is_listed_and_a_genesis_pins_it(
    plugin_site: Path, tmp_path: Path
) -> None:
    listed = ok(sceau("genesis", "contracts", site=plugin_site))
    rows = {line.split()[0]: line.split() for line in listed.splitlines()}
    assert rows["roadworks"][1:4] == ["0.1", "sceau-example-roadworks", EXAMPLE_ENTRY_POINT]
    assert {"membership", "deeds"} <= set(rows)

    key = crypto.public_key_to_text(crypto.public_key_bytes(crypto.generate_key()))
    create = ["genesis", "create", "--consortium", "Voirie du Valbrunois"]
    create += ["--member", f"{ISSUER},Métropole de Valbrune,{key},127.0.0.1:7400"]
    out = tmp_path / "genesis.json"
    shown = ok(sceau(*create, "--contract", "roadworks", "--out", out, site=plugin_site))
    assert "contracts: membership 1.3, deeds 1.1, roadworks 0.1" in shown
    genesis = Genesis.model_validate_json(out.read_text())
    assert [(ref.name, ref.version) for ref in genesis.contracts] == [
        ("membership", "1.3"),
        ("deeds", "1.1"),
        ("roadworks", "0.1"),
    ]

    again = [*create, "--out", tmp_path / "other.json"]
    user_error(sceau(*again, "--contract", "roadworks", site=None), "'roadworks' is not installed")
    error = user_error(sceau(*again, "--contract", "roadworks=0.2", site=plugin_site))
    assert "version 0.2 asked, the installed one is 0.1" in error
    user_error(sceau(*again, "--contract", "Roadworks", site=plugin_site), "NAME=VERSION")
    user_error(
        sceau(*again, "--contract", "roadworks", "--contract", "roadworks=0.1", site=plugin_site),
        "given twice",
    )
    assert not (tmp_path / "other.json").exists()


def test_devnet_up_refuses_a_contract_that_is_not_installed_naming_what_is(
    tmp_path: Path,
) -> None:
    error = user_error(
        sceau("devnet", "up", "--dir", tmp_path / "d", "--contract", "roadworks", site=None)
    )
    assert "installed: deeds, membership" in error
    assert not (tmp_path / "d").exists()


# --- the tutorial, end to end ----------------------------------------------------------------


def test_a_plugin_runs_on_a_devnet_is_queried_and_its_chain_audits_only_where_installed(
    plugin_site: Path, devnet_dir: Path, tmp_path: Path
) -> None:
    started = ok(
        sceau("devnet", "up", "--dir", devnet_dir, "--contract", "roadworks", site=plugin_site)
    )
    assert "contracts: membership 1.3, deeds 1.1, roadworks 0.1" in started
    members = read_devnet(devnet_dir)
    first = next(member for member in members if member.member_id == ISSUER)
    api = first.api_url
    node_key = crypto.load_private_key(first.key_file)
    application_key = crypto.generate_key()
    application = crypto.public_key_bytes(application_key)
    try:
        # The tutorial's script: the member's node key holds every role of its member.
        script = subprocess.run(
            [sys.executable, EXAMPLE / "publish.py", api, first.key_file],
            capture_output=True,
            text=True,
            env=environment(None),  # a client needs sceau only, not the contract
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        published = json.loads(ok(script))
        assert published["status"] == "committed"
        assert published["result"] == {**_id(DECREE), "status": "published"}

        with Client(api, signer=node_key) as client:
            # An application key acts only with a role delegated by the member.
            with Client(api, signer=application_key) as app:
                second = {**DECREE, "number": "2026-VOI-0143", "restriction": "single_lane"}
                with pytest.raises(ApiError) as refused:
                    app.submit(app.build("roadworks", "publish", second), wait_s=COMMIT_WAIT_S)
                assert refused.value.code == "wrong_signer"

                delegation = {
                    "member_id": ISSUER,
                    "signer": application,
                    "roles": ["roadworks.publish"],
                    "expiry_height": None,
                }
                client.submit(
                    client.build("membership", "delegate", delegation), wait_s=COMMIT_WAIT_S
                )
                # A delegation is in force from the next height: this block is later.
                done = app.submit(app.build("roadworks", "publish", second), wait_s=COMMIT_WAIT_S)
                assert done["result"]["status"] == "published"
                third = {**DECREE, "number": "2026-VOI-0144", "restriction": "no_parking"}
                app.submit(app.build("roadworks", "publish", third), wait_s=COMMIT_WAIT_S)
                withdrawn = app.submit(
                    app.build("roadworks", "withdraw", _id(third)), wait_s=COMMIT_WAIT_S
                )
                assert withdrawn["result"]["status"] == "withdrawn"

                # The contract's own checks, with their stable codes.
                for arguments, code in (
                    ({**DECREE, "ends": "2026-12-01"}, "invalid_arguments"),
                    ({**DECREE, "restriction": "open"}, "invalid_arguments"),
                    (DECREE, "duplicate_decree"),
                ):
                    with pytest.raises(ApiError) as rejected:
                        app.submit(
                            app.build("roadworks", "publish", arguments), wait_s=COMMIT_WAIT_S
                        )
                    assert rejected.value.code == code
                with pytest.raises(ApiError) as unknown:
                    app.submit(app.build("roadworks", "withdraw", _id(third)), wait_s=COMMIT_WAIT_S)
                assert unknown.value.code == "unknown_decree"

            # A contract the genesis does not list: refused, saying how one is enabled.
            with pytest.raises(ApiError) as not_listed:
                client.submit(client.build("tolls", "pay", {"amount": 3}))
            assert (not_listed.value.status, not_listed.value.code) == (422, "unknown_contract")
            assert "membership, deeds, roadworks" in not_listed.value.detail
            assert "--contract NAME" in not_listed.value.detail

        # Reading it back, with the documented command.
        one = json.loads(
            ok(
                sceau(
                    "query", "roadworks", f"decree/{ISSUER}/2026-VOI-0142", "--api", api, site=None
                )
            )
        )
        assert one["contract"] == "roadworks"
        assert one["answer"] == {**DECREE, "published_height": published["height"]}
        listing = json.loads(
            ok(sceau("query", "roadworks", f"decrees/{ISSUER}", "--api", api, site=None))
        )
        assert [decree["number"] for decree in listing["answer"]] == [
            "2026-VOI-0142",
            "2026-VOI-0143",
        ]

        # The contract's LookupError and ValueError: exit 1 with the problem's code.
        for path, code in (
            (f"decree/{ISSUER}/2026-VOI-0144", "not_found"),  # withdrawn: deleted
            ("decree/Metropole/1", "invalid_query"),
            ("tolls", "not_found"),
        ):
            missing = sceau("query", "roadworks", path, "--api", api, site=None)
            assert missing.returncode == 1 and missing.stderr.startswith(f"{code}:"), missing
        not_run = sceau("query", "tolls", "anything", "--api", api, site=None)
        assert not_run.returncode == 1 and "contract_not_enabled" in not_run.stderr

        bundle = tmp_path / "voirie.bundle"
        ok(sceau("export", bundle, "--api", api, site=None))
    finally:
        stopped = ok(sceau("devnet", "down", "--dir", devnet_dir, site=None))
    assert f"stopped {len(members)} members" in stopped

    genesis = devnet_dir / "genesis.json"
    audited = ok(sceau("audit", bundle, "--genesis", genesis, site=plugin_site))
    assert "OK:" in audited
    error = user_error(sceau("audit", bundle, "--genesis", genesis, site=None))
    assert "contract 'roadworks' version 0.1 is required by the genesis but not installed" in error
    assert "install the package that provides it" in error
    assert "'sceau.contracts'" in error
    assert error in TUTORIAL.read_text()  # the tutorial shows it as it is


def _id(decree: dict[str, Any]) -> dict[str, str]:
    return {"issuer": decree["issuer"], "number": decree["number"]}


# --- devnet up and down: every node recorded, every node stopped -----------------------------


def test_devnet_down_also_stops_a_node_started_by_hand_with_a_devnet_configuration(
    devnet_dir: Path,
) -> None:
    members = devnet_up(devnet_dir, 4)
    replaced = members[1]
    os.kill(replaced.pid, signal.SIGTERM)
    os.waitpid(replaced.pid, 0)  # our child: gone, its store unlocked
    # Started again by hand, as docs/operations.md tells an operator: not recorded.
    config = Path(replaced.config_file)
    by_hand = subprocess.Popen(
        [*SCEAU, "node", "run", "--config", config.name],
        cwd=config.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        stopped = ok(sceau("devnet", "down", "--dir", devnet_dir, site=None))
        assert f"{replaced.member_id} (not recorded)" in stopped
        assert "stopped 4 members" in stopped
        by_hand.wait(10)
        assert node_pids(devnet_dir) == []
        for member in members:
            assert not running(member.pid)
    finally:
        if by_hand.poll() is None:
            by_hand.kill()
            by_hand.wait()


def test_a_devnet_that_fails_to_start_stops_the_nodes_it_started(devnet_dir: Path) -> None:
    with pytest.raises(DevnetError, match="not ready"):
        devnet_up(devnet_dir, 4, timeout_s=0.0)

    assert node_pids(devnet_dir) == []
    assert not (devnet_dir / "devnet.json").exists()
    user_error(sceau("devnet", "down", "--dir", devnet_dir, site=None), "devnet.json")


# --- the tutorial shows what the tests run -------------------------------------------------


TUTORIAL = Path(__file__).parent.parent / "docs" / "contracts.md"
TUTORIAL_COMMANDS = (
    "pip install -e ./roadworks",
    "sceau genesis contracts",
    "sceau devnet up --dir devnet --contract roadworks",
    "python roadworks/publish.py http://127.0.0.1:40997 devnet/metropole-valbrune/node.pem",
    "sceau query roadworks decree/metropole-valbrune/2026-VOI-0142 --api http://127.0.0.1:40997",
    "sceau query roadworks decrees/metropole-valbrune --api http://127.0.0.1:40997",
    "sceau export voirie.bundle --api http://127.0.0.1:40997",
    "sceau devnet down --dir devnet",
    "sceau audit voirie.bundle --genesis devnet/genesis.json",
)


@pytest.mark.parametrize("example", ["pyproject.toml", "sceau_roadworks/__init__.py", "publish.py"])
def test_the_tutorial_shows_each_file_of_the_example_as_it_is(example: str) -> None:
    assert (EXAMPLE / example).read_text() in TUTORIAL.read_text()


def test_the_tutorial_gives_the_commands_that_the_tests_run() -> None:
    """The same sub-commands and options as above; only the paths and ports differ."""
    text = TUTORIAL.read_text()
    for command in TUTORIAL_COMMANDS:
        assert f"\n{command}\n" in text, command
