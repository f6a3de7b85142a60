"""Discovery of contracts through the entry-point group ``sceau.contracts``.

A contract ships as any pip package that declares, in its ``pyproject.toml``::

    [project.entry-points."sceau.contracts"]
    my_contract = "my_package.module:MyContract"

where the entry point's name is the contract's ``name`` and the object a
:class:`~contracts.base.Contract` subclass. sceau's own contracts (membership, deeds) are
declared the same way. A genesis lists the contracts a consortium runs, each pinned to a
version; :func:`load_contracts` refuses to go on when one is missing or installed in another
version, naming it, because members running different contract code would compute different
state roots.

The built-in contracts are also listed here (:data:`BUILTIN_CONTRACTS`), for the parts of the
node that serve what contracts declare without running them: the API's query routes
(:func:`query_routes`) and the anchors a receipt verifier recognizes (:func:`receipt_anchors`).
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

from contracts.base import Contract, QueryRoute
from contracts.deeds import DeedsContract
from contracts.membership import MEMBERSHIP, MembershipContract
from ledger.model import ContractRef, Genesis
from ledger.receipt import AnchorLayout

__all__ = [
    "BUILTIN_CONTRACTS",
    "ENTRY_POINT_GROUP",
    "ContractLoadError",
    "discover",
    "load_contracts",
    "query_routes",
    "receipt_anchors",
]

ENTRY_POINT_GROUP = "sceau.contracts"
BUILTIN_CONTRACTS: tuple[type[Contract], ...] = (DeedsContract, MembershipContract)
"""sceau's own contracts. The API serves their query routes whether or not a consortium runs
them (a route of a contract it does not run answers ``contract_not_enabled``)."""


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
            f"genesis but not installed (installed: {names})"
        )
    contract_class = _import(point, reference.name)
    if contract_class.version != reference.version:
        raise ContractLoadError(
            f"contract {reference.name!r}: the genesis pins version {reference.version}, "
            f"the installed one is {contract_class.version}"
        )
    return contract_class()


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
