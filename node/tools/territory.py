"""A territory's issuers admitted into a devnet by governance: ``sceau devnet up --issuers N``.

An urban community carries dozens or hundreds of communes that run no node; each is admitted
as an *issuer* (membership 1.1): its own key, id, name and SIRET, anchoring acts in its own
name. :func:`admit_issuers` does it on a running devnet the way a consortium would, through
the members' APIs and nothing else:

1. N issuers are made up: ids ``commune-0001`` …, commune names, valid-looking SIRETs (a
   commune's SIREN starts with 21; SIREN and SIRET pass the Luhn check, as real ones do) and
   a fresh Ed25519 key each, written to ``DIR/issuers/<id>.pem`` (PKCS#8 PEM, mode 0600, the
   format of the members' ``node.pem``); ``DIR/issuers.json`` lists them (no private key).
2. They are proposed ``admit_issuers`` changes of at most 50 (the contract's limit), the
   proposers taken in turn among the members, each signed by the member's ``node.pem``.
3. Every proposal is voted through by as many other members as the threshold needs (3 of 4),
   each vote signed by its voter's key and sent to the voter's own API.

Proposals go in waves of at most :data:`PROPOSALS_PER_WAVE_MAX` (the contract keeps at most
64 open at once): a wave's proposals are submitted together and carried to their commit, then
its votes. Every node executes every admission (checking, proposing, validating), so the
time grows with the issuers: on a 2-core machine running the four nodes, 1,000 issuers (20
proposals, 60 transactions) took 8-12 s and 10,000 (200 proposals) about 3 minutes.
An issuer signs from the height after its deciding vote's block; the function
returns once the last vote is committed, so every issuer may submit its first act at once
(it goes into a later block).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Awaitable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization

from contracts.membership import ISSUERS_PER_ADMISSION_MAX, required_votes
from ledger import crypto
from ledger.client import AsyncClient, SceauError
from node.tools.launch import read_genesis

if TYPE_CHECKING:  # devnet.py imports this module
    from node.tools.devnet import MemberProcess

__all__ = [
    "ISSUERS_MAX",
    "Admission",
    "IssuerIdentity",
    "admit_issuers",
    "make_issuers",
    "read_admission",
    "read_issuers",
    "siret",
]

ISSUERS_MAX = 10_000
"""Issuers a devnet admits at most (the contract allows 100,000; a devnet has no use for more)."""
PROPOSALS_PER_WAVE_MAX = 32
"""Proposals open at once while admitting: half of the contract's ``OPEN_PROPOSALS_MAX``, so
that a member may still propose something else meanwhile."""
SUBMISSION_WAIT_S = 60.0
"""How long one transaction is carried to its commit before the admission gives up."""
ISSUERS_FILE = "issuers.json"
ISSUERS_FOLDER = "issuers"

_ROOTS = (
    "Aubigny", "Beaulieu", "Bellefontaine", "Boisjoli", "Chantemerle", "Clairvaux", "Fontenay",
    "Grandpré", "Hautmont", "Lavaur", "Longchamp", "Marville", "Montclar", "Montfort",
    "Neuville", "Piremont", "Rochefort", "Roquebrune", "Saint-Amand", "Saint-Martin",
    "Sainte-Anne", "Vaudrey", "Villeneuve", "Villiers",
)  # fmt: skip
_SUFFIXES = ("", "-sur-Loue", "-les-Vignes", "-en-Brune", "-le-Haut", "-la-Forêt")


class TerritoryError(Exception):
    """The issuers could not be admitted; the message says which step failed and why."""


@dataclass(frozen=True, slots=True, kw_only=True)
class IssuerIdentity:
    """One made-up issuer: what its admission names, and its private key."""

    id: str
    name: str
    siret: str
    key: crypto.PrivateKey

    def application(self) -> dict[str, Any]:
        """This issuer as an ``admit_issuers`` change lists it."""
        return {
            "id": self.id,
            "name": self.name,
            "siret": self.siret,
            "public_key": crypto.public_key_bytes(self.key),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Admission:
    """What :func:`admit_issuers` did."""

    issuers: int
    proposals: int
    transactions: int
    height: int
    """The height of the block of the last deciding vote: every issuer signs from the next."""
    seconds: float


def _luhn_digit(digits: str) -> str:
    """The digit that, appended to ``digits``, makes the whole pass the Luhn check."""
    total = 0
    for position, character in enumerate(reversed(digits)):
        value = int(character) * (2 if position % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def siret(index: int, *, siren_prefix: str = "21") -> str:
    """A valid-looking SIRET for the ``index``-th commune: SIREN ``21`` + 6 digits + a Luhn
    digit (communes' SIRENs start with 21; ``siren_prefix="20"`` makes an intercommunality's),
    then the NIC ``0001`` + the digit that makes the 14 digits pass the Luhn check, as real
    SIRETs do. Distinct for 0 ≤ index < 10**6. Fictitious: no real establishment is meant."""
    assert 0 <= index < 10**6 and len(siren_prefix) == 2 and siren_prefix.isdigit()
    siren = f"{siren_prefix}{index:06d}"
    siren += _luhn_digit(siren)
    body = siren + "0001"
    return body + _luhn_digit(body)


def make_issuers(count: int) -> list[IssuerIdentity]:
    """``count`` issuers with fresh keys: ``commune-0001`` …, numbered on 4 digits or more."""
    if not 0 <= count <= ISSUERS_MAX:
        raise TerritoryError(f"a devnet admits 0 to {ISSUERS_MAX} issuers, not {count}")
    width = max(4, len(str(count)))
    issuers = []
    for index in range(1, count + 1):
        root = _ROOTS[(index - 1) % len(_ROOTS)]
        suffix = _SUFFIXES[((index - 1) // len(_ROOTS)) % len(_SUFFIXES)]
        issuers.append(
            IssuerIdentity(
                id=f"commune-{index:0{width}d}",
                name=f"Commune {'d’' if root[0] in 'AEIOU' else 'de '}{root}{suffix}",
                siret=siret(index),
                key=crypto.generate_key(),
            )
        )
    return issuers


def _write_issuers(directory: Path, issuers: Sequence[IssuerIdentity]) -> None:
    """Each key to ``DIR/issuers/<id>.pem`` and the list to ``DIR/issuers.json``.

    The keys are written as PKCS#8 PEM with mode 0600 like ``crypto.save_private_key``, but
    without its two fsyncs per file: a devnet is disposable, and 10,000 of them would take
    longer than the admission itself.
    """
    folder = directory / ISSUERS_FOLDER
    folder.mkdir(mode=0o700)
    listed = []
    for issuer in issuers:
        pem = issuer.key.private_bytes(
            encoding=serialization.Encoding.PEM,
            format=serialization.PrivateFormat.PKCS8,
            encryption_algorithm=serialization.NoEncryption(),
        )
        descriptor = os.open(
            folder / f"{issuer.id}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600
        )
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(pem)
        listed.append(
            {
                "id": issuer.id,
                "name": issuer.name,
                "siret": issuer.siret,
                "public_key": crypto.public_key_bytes(issuer.key).hex(),
                "key_file": f"{ISSUERS_FOLDER}/{issuer.id}.pem",
            }
        )
    descriptor = os.open(directory / ISSUERS_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(json.dumps({"issuers": listed}, indent=1, ensure_ascii=False) + "\n")


def _record_admission(directory: Path, admission: Admission) -> None:
    """Add what the admission did to ``DIR/issuers.json``, beside the list."""
    path = directory / ISSUERS_FILE
    document = json.loads(path.read_text())
    document = {"admission": asdict(admission), "issuers": document["issuers"]}
    path.write_text(json.dumps(document, indent=1, ensure_ascii=False) + "\n")


def read_issuers(directory: Path) -> list[dict[str, Any]]:
    """The issuers listed in ``DIR/issuers.json`` (none if the devnet admitted none)."""
    try:
        return json.loads((directory / ISSUERS_FILE).read_text())["issuers"]
    except FileNotFoundError:
        return []


def read_admission(directory: Path) -> Admission | None:
    """What the admission of ``DIR/issuers.json`` did (None: no issuers, or not admitted)."""
    try:
        recorded = json.loads((directory / ISSUERS_FILE).read_text()).get("admission")
    except FileNotFoundError:
        return None
    return None if recorded is None else Admission(**recorded)


def admit_issuers(
    directory: Path,
    members: Sequence[MemberProcess],
    count: int,
    *,
    wait_s: float = SUBMISSION_WAIT_S,
) -> Admission:
    """Make ``count`` issuers and admit them by governance on the devnet in ``directory``.

    ``members`` are the devnet's member processes: each signs with its ``key_file`` and
    submits to its own ``api_url``.
    Writes the keys and ``issuers.json`` first (see the module doc), then proposes and votes.
    Raises :class:`TerritoryError` if ``DIR/issuers.json`` exists already, for a count out of
    range, or if a proposal or vote is rejected or not committed within ``wait_s``.
    """
    directory = Path(directory)
    if (directory / ISSUERS_FILE).exists():
        raise TerritoryError(f"{directory / ISSUERS_FILE} exists: this devnet has its issuers")
    issuers = make_issuers(count)
    if not issuers:
        return Admission(issuers=0, proposals=0, transactions=0, height=0, seconds=0.0)
    started = time.monotonic()
    _write_issuers(directory, issuers)
    genesis = read_genesis(directory / "genesis.json")
    votes = required_votes(len(members), genesis.parameters.governance_threshold_percent)
    if votes > len(members):
        raise TerritoryError(f"{votes} votes needed, {len(members)} members")
    proposals, transactions, height = asyncio.run(_govern(members, issuers, votes, wait_s))
    admission = Admission(
        issuers=len(issuers),
        proposals=proposals,
        transactions=transactions,
        height=height,
        seconds=round(time.monotonic() - started, 2),
    )
    _record_admission(directory, admission)
    return admission


async def _govern(
    members: Sequence[MemberProcess], issuers: Sequence[IssuerIdentity], votes: int, wait_s: float
) -> tuple[int, int, int]:
    """Propose and vote every batch, wave after wave: (proposals, transactions, last height)."""
    clients = [
        AsyncClient(member.api_url, signer=crypto.load_private_key(member.key_file))
        for member in members
    ]
    batches = [
        issuers[start : start + ISSUERS_PER_ADMISSION_MAX]
        for start in range(0, len(issuers), ISSUERS_PER_ADMISSION_MAX)
    ]
    transactions, height = 0, 0
    try:
        for first in range(0, len(batches), PROPOSALS_PER_WAVE_MAX):
            wave = list(enumerate(batches[first : first + PROPOSALS_PER_WAVE_MAX], start=first))
            proposed = await asyncio.gather(
                *(_propose(members, clients, number, batch, wait_s) for number, batch in wave)
            )
            ballots = [
                (number + offset, proposal_id)
                for (number, _), proposal_id in zip(wave, proposed, strict=True)
                for offset in range(1, votes)
            ]
            committed = await asyncio.gather(
                *(
                    _vote(members, clients, voter, proposal_id, wait_s)
                    for voter, proposal_id in ballots
                )
            )
            transactions += len(proposed) + len(ballots)
            height = max(height, *committed)
    finally:
        for client in clients:
            await client.close()
    return len(batches), transactions, height


async def _propose(
    members: Sequence[MemberProcess],
    clients: Sequence[AsyncClient],
    number: int,
    batch: Sequence[IssuerIdentity],
    wait_s: float,
) -> bytes:
    """Proposal ``number`` (of ``batch``) by member ``number`` mod n; its id once committed."""
    proposer = number % len(members)
    change = {"kind": "admit_issuers", "issuers": [issuer.application() for issuer in batch]}
    answer = await _carry(
        clients[proposer].propose(members[proposer].member_id, change, wait_s=wait_s),
        f"proposal {number + 1}",
    )
    return bytes.fromhex(answer["proposal_id"])


async def _vote(
    members: Sequence[MemberProcess],
    clients: Sequence[AsyncClient],
    voter: int,
    proposal_id: bytes,
    wait_s: float,
) -> int:
    """A yes vote by member ``voter`` mod n through its own API; the height it committed at."""
    voter %= len(members)
    answer = await _carry(
        clients[voter].vote(proposal_id, members[voter].member_id, True, wait_s=wait_s),
        f"{members[voter].member_id}'s vote",
    )
    return int(answer["height"])


async def _carry(submission: Awaitable[dict[str, Any]], what: str) -> dict[str, Any]:
    """Await a submission carried to its commit (a rejection is final: the client raises it);
    its committed status document."""
    try:
        return await submission
    except SceauError as error:
        raise TerritoryError(f"{what}: {error}") from None
