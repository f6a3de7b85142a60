"""Specification of contract discovery and loading (contracts.registry).

Most tests hand ``load_contracts`` entry points made here, pointing at classes of this module,
to reach each way loading can fail. The last ones do what a consortium member does: pip-install
a contract package (tests/plugin_counter, a copy of it built in a scratch directory) and run
it through real entry-point discovery and the engine, in a child process whose path holds it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from support import pip_install_into

from contracts.base import Contract
from contracts.membership import MEMBERSHIP, MembershipContract
from contracts.registry import (
    BUILTIN_CONTRACTS,
    ENTRY_POINT_GROUP,
    ContractLoadError,
    contract_refs,
    discover,
    installed_contracts,
    load_contracts,
    query_routes,
    receipt_anchors,
)
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Genesis

MEMBERS = (
    ("metropole-valbrune", "Métropole de Valbrune"),
    ("ville-valbrune", "Ville de Valbrune"),
    ("saint-leger-les-vignes", "Commune de Saint-Léger-les-Vignes"),
    ("syndicat-eaux-valbrunois", "Syndicat des eaux du Valbrunois"),
)
PLUGIN_SOURCE = Path(__file__).parent / "plugin_counter"


# --- contracts and entry points made by hand --------------------------------------------------


class AlphaContract(Contract):
    name = "alpha"
    version = "2.1"


class BetaContract(Contract):
    name = "beta"
    version = "1.0"


class PlainCounter:
    """Looks like a contract, but is not a Contract subclass."""

    name = "alpha"
    version = "2.1"


ALPHA_INSTANCE = AlphaContract()


def make_alpha() -> AlphaContract:
    return AlphaContract()


def entry_point(name: str, target: str) -> metadata.EntryPoint:
    """An entry point ``name`` in sceau's group, loading ``target`` (``module:attribute``)."""
    value = target if ":" in target else f"{__name__}:{target}"
    return metadata.EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


MEMBERSHIP_POINT = entry_point(MEMBERSHIP, "contracts.membership:MembershipContract")
ALPHA_POINT = entry_point("alpha", "AlphaContract")


def genesis_pinning(*pins: tuple[str, str]) -> Genesis:
    """A genesis whose consortium runs the contracts ``pins`` as ``(name, version)``.

    The membership contract is pinned at its installed version unless ``pins`` names it.
    """
    if all(name != MEMBERSHIP for name, _ in pins):
        pins = ((MEMBERSHIP, MembershipContract.version), *pins)
    contracts = [ContractRef(name=name, version=version) for name, version in pins]
    return LocalConsortium.create(MEMBERS, seed=b"test_registry", contracts=contracts).genesis


# --- discovery --------------------------------------------------------------------------------


def test_discovers_the_contracts_that_sceau_itself_declares() -> None:
    found = discover()

    assert found[MEMBERSHIP].value == "contracts.membership:MembershipContract"
    assert found["deeds"].value == "contracts.deeds:DeedsContract"
    assert {found[name].dist.name for name in (MEMBERSHIP, "deeds")} == {"sceau"}


def test_the_builtin_contracts_declare_their_reads_and_their_anchors() -> None:
    """The API and the receipts take what they serve and prove from these declarations."""
    names = {contract.name for contract in BUILTIN_CONTRACTS}
    assert names == {"deeds", MEMBERSHIP}
    routes = query_routes()
    assert {contract for contract, _ in routes} == names
    paths = [route.path for _, route in routes]
    assert len(set(paths)) == len(paths)
    assert [(anchor.contract, anchor.action) for anchor in receipt_anchors()] == [
        ("deeds", "anchor")
    ]
    assert receipt_anchors([MembershipContract]) == ()


def test_refuses_a_contract_name_installed_twice_with_different_code() -> None:
    twice = [ALPHA_POINT, entry_point("alpha", "BetaContract")]

    with pytest.raises(ContractLoadError, match=r"'alpha' is installed twice"):
        discover(twice)


# --- loading ----------------------------------------------------------------------------------


def test_loads_the_contracts_the_genesis_pins_and_membership_with_them() -> None:
    contracts = load_contracts(genesis_pinning(("alpha", "2.1")), [MEMBERSHIP_POINT, ALPHA_POINT])

    assert list(contracts) == [MEMBERSHIP, "alpha"]
    assert isinstance(contracts[MEMBERSHIP], MembershipContract)
    assert isinstance(contracts["alpha"], AlphaContract)


def test_loads_membership_at_the_version_the_genesis_pins() -> None:
    genesis = genesis_pinning((MEMBERSHIP, MembershipContract.version))

    assert list(load_contracts(genesis, [MEMBERSHIP_POINT])) == [MEMBERSHIP]


def test_refuses_a_contract_the_genesis_pins_that_is_not_installed() -> None:
    expected = "contract 'alpha' version 2.1 is required by the genesis but not installed"

    with pytest.raises(ContractLoadError, match=re.escape(expected)):
        load_contracts(genesis_pinning(("alpha", "2.1")), [MEMBERSHIP_POINT])


def test_refuses_a_genesis_when_membership_is_not_installed() -> None:
    with pytest.raises(ContractLoadError, match=r"'membership' version .* not installed"):
        load_contracts(genesis_pinning(("alpha", "2.1")), [ALPHA_POINT])


def test_refuses_a_genesis_that_does_not_pin_membership() -> None:
    genesis = LocalConsortium.create(
        MEMBERS, seed=b"test_registry", contracts=[ContractRef(name="alpha", version="2.1")]
    ).genesis

    with pytest.raises(ContractLoadError, match="does not pin the membership contract"):
        load_contracts(genesis, [MEMBERSHIP_POINT, ALPHA_POINT])


@pytest.mark.parametrize(
    ("pins", "pinned", "installed"),
    [
        ((("alpha", "2.0"),), "2.0", "2.1"),
        (((MEMBERSHIP, "0.9"),), "0.9", MembershipContract.version),
    ],
    ids=["alpha", "membership"],
)
def test_refuses_a_contract_installed_in_another_version_than_pinned(
    pins: tuple[tuple[str, str], ...], pinned: str, installed: str
) -> None:
    expected = f"the genesis pins version {pinned}, the installed one is {installed}"

    with pytest.raises(ContractLoadError, match=re.escape(expected)):
        load_contracts(genesis_pinning(*pins), [MEMBERSHIP_POINT, ALPHA_POINT])


@pytest.mark.parametrize(
    "target",
    ["sceau_no_such_package.contract:Contract", "NoSuchContract"],
    ids=["missing module", "missing attribute"],
)
def test_refuses_an_entry_point_that_fails_to_import(target: str) -> None:
    broken = entry_point("alpha", target)

    with pytest.raises(ContractLoadError, match=r"contract 'alpha' \(.*\) fails to import") as info:
        load_contracts(genesis_pinning(("alpha", "2.1")), [MEMBERSHIP_POINT, broken])
    assert broken.value in str(info.value)


@pytest.mark.parametrize("target", ["PlainCounter", "ALPHA_INSTANCE", "make_alpha"])
def test_refuses_an_entry_point_that_is_not_a_contract_class(target: str) -> None:
    with pytest.raises(ContractLoadError, match=r"'alpha' \(.*\) is not a Contract class"):
        load_contracts(
            genesis_pinning(("alpha", "2.1")), [MEMBERSHIP_POINT, entry_point("alpha", target)]
        )


def test_refuses_an_entry_point_whose_contract_has_another_name() -> None:
    misnamed = entry_point("alpha", "BetaContract")

    with pytest.raises(
        ContractLoadError, match="entry point 'alpha' loads a contract named 'beta'"
    ):
        load_contracts(genesis_pinning(("alpha", "1.0")), [MEMBERSHIP_POINT, misnamed])


def test_refuses_a_pinned_contract_absent_from_this_environment() -> None:
    # Real discovery: the counter plug-in is installed only in the child processes below.
    with pytest.raises(ContractLoadError, match=r"'counter' version 0\.1 .* not installed"):
        load_contracts(genesis_pinning(("counter", "0.1")))


# --- what a new genesis pins (sceau genesis create / devnet up --contract) ------------------

DEEDS_POINT = entry_point("deeds", "contracts.deeds:DeedsContract")
INSTALLED = [MEMBERSHIP_POINT, DEEDS_POINT, ALPHA_POINT]


def pins(*specs: str) -> list[tuple[str, str]]:
    return [(ref.name, ref.version) for ref in contract_refs(specs, INSTALLED)]


def test_a_new_genesis_pins_membership_and_deeds_and_each_contract_asked_at_its_version() -> None:
    assert pins() == [(MEMBERSHIP, "1.3"), ("deeds", "1.1")]
    assert pins("alpha") == [(MEMBERSHIP, "1.3"), ("deeds", "1.1"), ("alpha", "2.1")]
    assert pins(" alpha=2.1 ", "deeds=1.1") == pins("alpha")


@pytest.mark.parametrize(
    ("specs", "expected"),
    [
        (["beta"], "contract 'beta' is not installed here (installed: alpha, deeds, membership)"),
        (["alpha=2.0"], "contract 'alpha': version 2.0 asked, the installed one is 2.1"),
        (["alpha", "alpha=2.1"], "--contract 'alpha' is given twice"),
        (["Alpha"], "--contract 'Alpha': expected NAME or NAME=VERSION"),
        (["alpha=2"], "--contract 'alpha=2': expected NAME or NAME=VERSION"),
        (["alpha="], "--contract 'alpha=': expected NAME or NAME=VERSION"),
    ],
    ids=["not installed", "other version", "twice", "not a name", "not a version", "empty"],
)
def test_a_new_genesis_refuses_what_this_machine_could_not_run(
    specs: list[str], expected: str
) -> None:
    with pytest.raises(ContractLoadError, match=re.escape(expected)):
        contract_refs(specs, INSTALLED)


def test_lists_the_installed_contracts_with_their_versions_and_packages() -> None:
    listed = installed_contracts(INSTALLED)

    assert [(c.name, c.version, c.target) for c in listed] == [
        ("alpha", "2.1", f"{__name__}:AlphaContract"),
        ("deeds", "1.1", "contracts.deeds:DeedsContract"),
        (MEMBERSHIP, "1.3", "contracts.membership:MembershipContract"),
    ]
    found = {contract.name: contract for contract in installed_contracts()}
    assert found["deeds"].distribution == found[MEMBERSHIP].distribution == "sceau"


def test_a_missing_contract_says_how_to_install_it() -> None:
    with pytest.raises(ContractLoadError) as missing:
        load_contracts(genesis_pinning(("alpha", "2.1")), [MEMBERSHIP_POINT])

    assert "install the package that provides it, in that version, beside sceau" in str(
        missing.value
    )
    assert "entry point 'alpha' in the group 'sceau.contracts'" in str(missing.value)


# --- a contract shipped as a pip package ------------------------------------------------------


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory into which pip has installed the tests/plugin_counter package."""
    return pip_install_into(PLUGIN_SOURCE, tmp_path_factory.mktemp("plugin"))


RUN_THE_PLUGIN = """
import json
import sys

from contracts.base import decode_record
from contracts.engine import Engine
from contracts.registry import ContractLoadError, discover, load_contracts
from ledger.devchain import LocalConsortium
from ledger.memstate import MemoryState
from ledger.model import ContractRef, Transaction

members, pinned_version = json.loads(sys.argv[1]), sys.argv[2]
consortium = LocalConsortium.create(
    [tuple(member) for member in members],
    seed=b"test_registry",
    contracts=[
        ContractRef(name="membership", version="1.0"),
        ContractRef(name="counter", version=pinned_version),
    ],
)
found = discover()
report = {
    "discovered": sorted(found),
    "distribution": found["counter"].dist.name,
    "entry_point": found["counter"].value,
}
try:
    contracts = load_contracts(consortium.genesis)
except ContractLoadError as error:
    print(json.dumps({**report, "error": str(error)}))
    sys.exit(0)
engine = Engine(consortium.genesis, contracts)
state = MemoryState()
state.commit(engine.genesis_state())
key = consortium.keys[members[0][0]]
transactions = [
    Transaction.create(
        key,
        chain_id=consortium.chain_id,
        contract="counter",
        action="add",
        args={"amount": amount},
        nonce=nonce,
        expiry_height=10,
    )
    for nonce, amount in enumerate([5, 0, 7])
]
result = engine.execute(
    state, transactions, height=1, timestamp_ms=1_790_000_000_000, proposer=members[0][0]
)
print(json.dumps({
    **report,
    "loaded": {name: [type(contract).__module__, contract.version]
               for name, contract in contracts.items()},
    "results": list(result.results),
    "rejected": [rejection.code for _, rejection in result.rejected],
    "state_writes": {key.decode(): decode_record(value)
                     for key, value in result.state_writes.items()},
}))
"""


def run_the_plugin(site: Path, pinned_version: str) -> dict[str, Any]:
    """Run RUN_THE_PLUGIN in a child process that sees the packages installed in ``site``."""
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    completed = subprocess.run(
        [sys.executable, "-c", RUN_THE_PLUGIN, json.dumps(MEMBERS), pinned_version],
        capture_output=True,
        text=True,
        cwd=site.parent,
        env={**os.environ, "PYTHONPATH": path},
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_a_pip_installed_contract_is_discovered_loaded_and_applied(plugin_site: Path) -> None:
    report = run_the_plugin(plugin_site, "0.1")

    assert {"counter", "deeds", MEMBERSHIP} <= set(report["discovered"])
    assert report["distribution"] == "sceau-plugin-counter"
    assert report["entry_point"] == "sceau_plugin_counter:CounterContract"
    assert report["loaded"] == {
        MEMBERSHIP: ["contracts.membership", MembershipContract.version],
        "counter": ["sceau_plugin_counter", "0.1"],
    }
    assert report["results"] == [{"total": 5}, {"total": 12}]
    assert report["rejected"] == ["invalid_arguments"]
    assert report["state_writes"] == {"counter/total": 12}


def test_a_pip_installed_contract_in_another_version_than_pinned_is_refused(
    plugin_site: Path,
) -> None:
    report = run_the_plugin(plugin_site, "0.2")

    assert "counter" in report["discovered"]
    assert report["error"] == (
        "contract 'counter': the genesis pins version 0.2, the installed one is 0.1"
    )
