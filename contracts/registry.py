"""Discovery of contracts through the entry-point group ``sceau.contracts``.

A contract ships as any pip package that declares, in its ``pyproject.toml``::

    [project.entry-points."sceau.contracts"]
    my_contract = "my_package.module:MyContract"

where the entry point's name is the contract's ``name`` and the object a
:class:`~contracts.base.Contract` subclass. sceau's own contracts (membership, deeds) are
declared the same way. A genesis lists the contracts a consortium runs, each pinned to a
version; :func:`load_contracts` refuses to go on when one is missing or installed in a version
that does not run the pinned one, naming it, because members running different contract code
would compute different state roots. A contract may keep running the rules of its earlier
versions (``Contract.older_versions``), so that a chain begun under one keeps its rules when
the package is upgraded: the membership contract 1.1 still runs 1.0 for the chains that pin it.

Who writes a genesis (``sceau genesis create``, ``sceau devnet up``) names the contracts it
wants as ``NAME[=VERSION]``: :func:`contract_refs` checks each against what is installed here
and pins it (by default, at the installed version). :func:`installed_contracts` lists them.

The built-in contracts are also listed here (:data:`BUILTIN_CONTRACTS`), for the parts of the
node that serve what contracts declare without running them: the API's query routes
(:func:`query_routes`) and the anchors a receipt verifier recognizes (:func:`receipt_anchors`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata

from contracts.base import Contract, QueryRoute
from contracts.deeds import DeedsContract
from contracts.membership import MEMBERSHIP, MembershipContract
from ledger.model import ContractRef, Genesis
from ledger.receipt import AnchorLayout

__all__ = [
    "BUILTIN_CONTRACTS",
    "DEFAULT_CONTRACTS",
    "ENTRY_POINT_GROUP",
    "ContractLoadError",
    "InstalledContract",
    "contract_refs",
    "discover",
    "installed_contracts",
    "load_contracts",
    "query_routes",
    "receipt_anchors",
]

ENTRY_POINT_GROUP = "sceau.contracts"
BUILTIN_CONTRACTS: tuple[type[Contract], ...] = (DeedsContract, MembershipContract)
"""sceau's own contracts. The API serves their query routes whether or not a consortium runs
them (a route of a contract it does not run answers ``contract_not_enabled``)."""


DEFAULT_CONTRACTS: tuple[str, ...] = (MEMBERSHIP, "deeds")
"""What a genesis written by sceau's commands lists without being asked: the membership
contract (which every genesis must pin) and the deeds contract."""
_SPEC = re.compile(r"(?P<name>[a-z][a-z0-9_]{0,31})(?:=(?P<version>[0-9]+\.[0-9]+(?:\.[0-9]+)?))?")
"""``NAME[=VERSION]``: a contract name and version as a genesis accepts them."""


def query_routes(
    contracts: Iterable[type[Contract]] = BUILTIN_CONTRACTS,
) -> tuple[tuple[str, QueryRoute], ...]:
    """``(contract name, route)`` of every read ``contracts`` declare, in declaration order."""
    return tuple(
        (contract.name, route) for contract in contracts for route in contract.query_routes
    )


def receipt_anchors(
    contracts: Iterable[Contract | type[Contract]] = BUILTIN_CONTRACTS,
) -> tuple[AnchorLayout, ...]:
    """The anchoring actions ``contracts`` declare: what a receipt verifier recognizes."""
    return tuple(anchor for contract in contracts for anchor in contract.receipt_anchors)


class ContractLoadError(Exception):
    """A contract the genesis needs that cannot be loaded as pinned; the message names it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class InstalledContract:
    """A contract installed here: its name, the version its class declares, and where from."""

    name: str
    version: str
    distribution: str
    """The pip distribution that declares it (``sceau`` for the built-in ones)."""
    target: str
    """The entry point's value, ``module:Class``."""
    older_versions: tuple[str, ...] = ()
    """Earlier versions it still runs for the chains that pinned them (``older_versions``)."""


def installed_contracts(
    entry_points: Iterable[metadata.EntryPoint] | None = None,
) -> tuple[InstalledContract, ...]:
    """Every contract installed here, imported to read its version, sorted by name.

    Raises :class:`ContractLoadError` when one fails to import or is not a Contract class.
    """
    found = discover(entry_points)
    listed = []
    for name in sorted(found):
        point = found[name]
        contract_class = _import(point, name)
        distribution = point.dist.name if point.dist is not None else "?"
        listed.append(
            InstalledContract(
                name=name,
                version=contract_class.version,
                distribution=distribution,
                target=point.value,
                older_versions=tuple(contract_class.older_versions),
            )
        )
    return tuple(listed)


def contract_refs(
    specs: Sequence[str], entry_points: Iterable[metadata.EntryPoint] | None = None
) -> tuple[ContractRef, ...]:
    """The contracts a new genesis pins: :data:`DEFAULT_CONTRACTS` and ``specs``.

    Each spec is ``NAME`` or ``NAME=VERSION``; without a version the contract is pinned at
    the version installed here. A spec that names a default contract replaces its default
    entry. Raises :class:`ContractLoadError` for a malformed spec, a name given twice, a
    contract not installed here (naming what is) or installed in another version: a genesis
    this machine's node could not run.
    """
    available = discover(entry_points)
    wanted: dict[str, str | None] = dict.fromkeys(DEFAULT_CONTRACTS)
    named: set[str] = set()
    for spec in specs:
        match = _SPEC.fullmatch(spec.strip())
        if match is None:
            raise ContractLoadError(
                f"--contract {spec!r}: expected NAME or NAME=VERSION (a name of lowercase "
                "letters, digits and _; a version such as 1.0 or 0.2.1)"
            )
        name = match["name"]
        if name in named:
            raise ContractLoadError(f"--contract {name!r} is given twice")
        named.add(name)
        wanted[name] = match["version"]
    refs = []
    for name, version in wanted.items():
        point = available.get(name)
        if point is None:
            raise ContractLoadError(
                f"contract {name!r} is not installed here (installed: "
                f"{', '.join(sorted(available)) or 'none'}); install the package that provides "
                f"it (pip install ...) in the same environment as sceau"
            )
        installed = _import(point, name).version
        if version is not None and version != installed:
            raise ContractLoadError(
                f"contract {name!r}: version {version} asked, the installed one is {installed}"
            )
        refs.append(ContractRef(name=name, version=installed))
    return tuple(refs)


def discover(
    entry_points: Iterable[metadata.EntryPoint] | None = None,
) -> dict[str, metadata.EntryPoint]:
    """The installed contracts by name (not yet imported)."""
    found: dict[str, metadata.EntryPoint] = {}
    points = (
        metadata.entry_points(group=ENTRY_POINT_GROUP) if entry_points is None else entry_points
    )
    for point in points:
        if point.name in found and found[point.name].value != point.value:
            raise ContractLoadError(
                f"contract {point.name!r} is installed twice ({found[point.name].value} and "
                f"{point.value})"
            )
        found[point.name] = point
    return found


def load_contracts(
    genesis: Genesis, entry_points: Iterable[metadata.EntryPoint] | None = None
) -> dict[str, Contract]:
    """Instantiate every contract the genesis lists, checking versions.

    The genesis must list the membership contract.

    Raises :class:`ContractLoadError` naming the first contract that is missing, fails to
    import, is not a Contract, has another name, or has another version than pinned.
    """
    available = discover(entry_points)
    wanted = list(genesis.contracts)
    if all(reference.name != MEMBERSHIP for reference in wanted):
        # The membership contract writes the member set that certifies every block: members
        # running different versions of it could split without noticing. It must be pinned.
        raise ContractLoadError(
            "the genesis does not pin the membership contract: list it in 'contracts' with "
            "its version (for example membership 1.0)"
        )
    contracts: dict[str, Contract] = {}
    for reference in wanted:
        contracts[reference.name] = _load_one(reference, available)
    return contracts


def _load_one(reference: ContractRef, available: dict[str, metadata.EntryPoint]) -> Contract:
    point = available.get(reference.name)
    if point is None:
        names = ", ".join(sorted(available)) or "none"
        raise ContractLoadError(
            f"contract {reference.name!r} version {reference.version} is required by the "
            f"genesis but not installed (installed: {names}); install the package that "
            f"provides it, in that version, beside sceau (it declares the entry point "
            f"{reference.name!r} in the group {ENTRY_POINT_GROUP!r})"
        )
    contract_class = _import(point, reference.name)
    runs = (contract_class.version, *contract_class.older_versions)
    if reference.version not in runs:
        raise ContractLoadError(
            f"contract {reference.name!r}: the genesis pins version {reference.version}, "
            f"the installed one is {contract_class.version}"
            + (f" (it also runs {', '.join(contract_class.older_versions)})" if runs[1:] else "")
        )
    return contract_class.at_version(reference.version)


def _import(point: metadata.EntryPoint, name: str) -> type[Contract]:
    try:
        loaded = point.load()
    except Exception as error:  # any import failure of third-party code
        raise ContractLoadError(
            f"contract {name!r} ({point.value}) fails to import: {type(error).__name__}: {error}"
        ) from None
    if not (isinstance(loaded, type) and issubclass(loaded, Contract)):
        raise ContractLoadError(f"contract {name!r} ({point.value}) is not a Contract class")
    if loaded.name != name:
        raise ContractLoadError(
            f"entry point {name!r} loads a contract named {loaded.name!r}; they must agree"
        )
    return loaded
