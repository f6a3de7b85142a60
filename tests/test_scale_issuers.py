"""The consortium at the scale of a territory, end to end: 4 validators, 1,000 issuers, 2 observers.

One devnet for the module, started as a user would (``sceau devnet up --issuers 1000
--observers 2``): real processes, sockets, LevelDB and Ed25519, the 1,000 issuers admitted by
governance through the members' APIs (20 proposals of 50, each voted by 3 of 4 members). Then a
sample of issuers anchors acts in their own name with their own keys, through different members'
APIs (some with ``sceau anchor``); the observers catch up with the members and answer as they
do; and the issue's "done means": a commune that runs nothing anchors a deliberation through a
member's API, and a resident fetches the receipt from an observer and verifies it offline with
the genesis alone. The fixture always stops what it started.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import itertools
import json
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support import without_receipt_log

from ledger import crypto
from ledger.client import AsyncClient
from node.tools.devnet import MemberProcess, devnet_down, read_devnet, read_observers
from node.tools.territory import make_issuers, read_admission, read_issuers, siret

ISSUERS = 1_000
SAMPLE = 24
"""Issuers of the sample that anchor acts (every 41st: spread over the whole list)."""
BY_COMMAND = 3
"""Of the sample, how many anchor with ``sceau anchor`` (a process each) rather than the client."""
CONVERGENCE_S = 30.0
"""How long the observers may take to reach the members' tip (they poll every 200 ms)."""
COMMIT_WAIT_S = 30.0
CLI = [sys.executable, "-m", "node.tools.cli"]


def anchor_command(
    document: Path,
    *,
    api: str,
    issuer: str,
    key: Path,
    reference: str,
    title: str,
    kind: str = "deliberation",
) -> list[str]:
    """``sceau anchor DOCUMENT …``: an act of ``issuer`` dated 2026-11-28, signed with ``key``."""
    options = {
        "--api": api,
        "--issuer": issuer,
        "--key": str(key),
        "--reference": reference,
        "--kind": kind,
        "--date": "2026-11-28",
        "--title": title,
    }
    return [*CLI, "anchor", str(document), *itertools.chain.from_iterable(options.items())]


def get_json(url: str) -> Any:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{url}: {error.code} {error.read()[:300]!r}") from None


def tip_of(process: MemberProcess) -> tuple[int, str] | None:
    """(height, block hash) of a node's tip, or None if it does not answer."""
    with contextlib.suppress(AssertionError, urllib.error.URLError, OSError, ValueError):
        status = get_json(f"{process.api_url}/v1/status")
        return status["height"], status["block_hash"]
    return None


@dataclasses.dataclass
class Territory:
    directory: Path
    members: list[MemberProcess]
    observers: list[MemberProcess]
    output: str
    """What ``sceau devnet up`` printed."""

    @property
    def genesis_file(self) -> Path:
        return self.directory / "genesis.json"

    def key_file(self, issuer_id: str) -> Path:
        return self.directory / "issuers" / f"{issuer_id}.pem"

    def converged(self) -> tuple[int, str]:
        """Wait until every member and observer has the same tip; return it."""
        deadline = time.monotonic() + CONVERGENCE_S
        tips: list[tuple[int, str] | None] = []
        while time.monotonic() < deadline:
            tips = [tip_of(process) for process in self.members + self.observers]
            if tips[0] is not None and all(tip == tips[0] for tip in tips):
                return tips[0]
            time.sleep(0.1)
        raise AssertionError(f"no common tip within {CONVERGENCE_S} s: {tips}")

    def answers_as_a_member(self, observer: MemberProcess, path: str) -> Any:
        """The observer's answer at ``path`` is, document for document, a member's (a block's
        certificate is the one of the member the observer took it from). A receipt's ``log``
        is left out: it carries the checkpoint each node keeps, which legitimately differs from
        node to node (another quorum of signers, an older size) and is checked on its own by
        tests/test_checkpoints.py and tests/test_tlog_proof.py."""
        answer = get_json(observer.api_url + path)
        members = [without_receipt_log(get_json(member.api_url + path)) for member in self.members]
        assert without_receipt_log(answer) in members, path
        return answer


@pytest.fixture(scope="module")
def territory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Territory]:
    directory = tmp_path_factory.mktemp("territory") / "devnet"
    command = [*CLI, "devnet", "up", "--nodes", "4", "--observers", "2"]
    try:
        started = subprocess.run(
            [*command, "--issuers", str(ISSUERS), "--dir", str(directory)],
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert started.returncode == 0, started.stderr[-2000:]
        yield Territory(
            directory, read_devnet(directory), read_observers(directory), started.stdout
        )
    finally:
        if (directory / "devnet.json").exists():
            devnet_down(directory)


@pytest.fixture(scope="module")
def sample(territory: Territory, tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    """Acts of a sample of issuers, each signed by the issuer's own key and sent to a member's
    API in turn: most with the client (at once), ``BY_COMMAND`` with ``sceau anchor``."""
    issuers = [entry["id"] for entry in read_issuers(territory.directory)][::41][:SAMPLE]
    assert len(issuers) == SAMPLE
    folder = tmp_path_factory.mktemp("acts")
    commands = []
    for index, issuer in enumerate(issuers[:BY_COMMAND]):
        document = folder / f"{issuer}.txt"
        document.write_text(f"Délibération du conseil municipal de {issuer}\n")
        member = territory.members[index % len(territory.members)]
        commands.append(
            (
                issuer,
                document,
                subprocess.Popen(
                    anchor_command(
                        document,
                        api=member.api_url,
                        issuer=issuer,
                        key=territory.key_file(issuer),
                        reference="2026-DEL-001",
                        title="Approbation du budget",
                    ),
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                ),
            )
        )
    acts = asyncio.run(_anchor_with_clients(territory, issuers[BY_COMMAND:]))
    for issuer, document, process in commands:
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        tx_id = re.search(r"transaction ([0-9a-f]{64}): committed", stdout)
        assert tx_id is not None, stdout
        digest = hashlib.sha256(document.read_bytes()).hexdigest()
        acts.append(
            {"issuer": issuer, "reference": "2026-DEL-001", "tx_id": tx_id[1], "digest": digest}
        )
    return acts


async def _anchor_with_clients(territory: Territory, issuers: list[str]) -> list[dict[str, Any]]:
    async def one(index: int, issuer: str) -> dict[str, Any]:
        member = territory.members[index % len(territory.members)]
        key = crypto.load_private_key(territory.key_file(issuer))
        async with AsyncClient(member.api_url, signer=key) as client:
            outcome = await client.anchor(
                issuer=issuer,
                reference="2026-DEL-001",
                kind="deliberation",
                digest=hashlib.sha256(f"délibération {issuer}".encode()).digest(),
                act_date="2026-11-28",
                title="Approbation du budget primitif",
                wait_s=COMMIT_WAIT_S,
            )
        assert outcome["status"] == "committed", outcome
        return {"issuer": issuer, "reference": "2026-DEL-001", **outcome}

    return list(await asyncio.gather(*(one(i, issuer) for i, issuer in enumerate(issuers))))


def test_devnet_up_admits_a_thousand_issuers_by_governance(territory: Territory) -> None:
    listed = read_issuers(territory.directory)
    admission = read_admission(territory.directory)
    assert admission is not None
    assert (admission.issuers, admission.proposals, admission.transactions) == (1000, 20, 60)
    assert f"{ISSUERS} issuers admitted by governance in 20 proposals" in territory.output
    assert [entry["id"] for entry in listed] == [f"commune-{i:04d}" for i in range(1, 1001)]
    assert len({entry["siret"] for entry in listed}) == ISSUERS
    assert all(re.fullmatch(r"21[0-9]{12}", entry["siret"]) for entry in listed)
    for entry in listed[:: ISSUERS // 10]:  # each key file holds the key the list names
        key = crypto.load_private_key(territory.directory / entry["key_file"])
        assert crypto.public_key_bytes(key).hex() == entry["public_key"]
    member = territory.members[0]
    page = get_json(f"{member.api_url}/v1/query/membership/issuers?limit=1000")["answer"]
    assert [issuer["id"] for issuer in page] == [entry["id"] for entry in listed]
    assert {issuer["status"] for issuer in page} == {"active"}
    assert max(issuer["admitted_height"] for issuer in page) == admission.height
    assert all(
        (issuer["name"], issuer["siret"]) == (entry["name"], entry["siret"])
        for issuer, entry in zip(page, listed, strict=True)
    )


def test_a_sample_of_issuers_anchor_in_their_own_name_through_any_member(
    territory: Territory, sample: list[dict[str, Any]]
) -> None:
    assert len(sample) == SAMPLE
    for act in sample:
        record = get_json(
            f"{territory.members[-1].api_url}/v1/acts/{act['issuer']}/{act['reference']}"
        )["act"]
        assert record["issuer"] == act["issuer"], record
        transaction = get_json(f"{territory.members[-1].api_url}/v1/transactions/{act['tx_id']}")
        assert transaction["status"] == "committed"


def test_an_issuer_cannot_anchor_in_another_issuers_name(territory: Territory) -> None:
    """Its own key signs for itself only: commune-0002's key is refused for commune-0003."""
    document = territory.directory / "not-mine.txt"
    document.write_text("Arrêté\n")
    refused = subprocess.run(
        [
            *anchor_command(
                document,
                api=territory.members[0].api_url,
                issuer="commune-0003",
                key=territory.key_file("commune-0002"),
                reference="2026-ARR-001",
                title="Arrêté",
                kind="decree",
            ),
            "--receipt",
            str(territory.directory / "not-mine.receipt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "wrong_signer" in refused.stderr or "not_a_member" in refused.stderr, refused.stderr


def test_observers_converge_and_answer_as_the_members_do(
    territory: Territory, sample: list[dict[str, Any]]
) -> None:
    height, _ = territory.converged()
    admission = read_admission(territory.directory)
    assert admission is not None and height > admission.height
    for observer in territory.observers:
        for path in (
            "/v1/query/membership/issuers?limit=1000",
            "/v1/query/membership/issuers?after=commune-0500&limit=100",
            "/v1/query/membership/issuers",
            "/v1/query/membership/issuer/commune-0042",
            "/v1/query/membership/issuer/commune-0042?proof=true",
            f"/v1/blocks/{height}",
        ):
            territory.answers_as_a_member(observer, path)
        for act in sample:
            who = f"{act['issuer']}/{act['reference']}"
            territory.answers_as_a_member(observer, f"/v1/acts/{who}")
            territory.answers_as_a_member(observer, f"/v1/digests/{act['digest']}")
            territory.answers_as_a_member(observer, f"/v1/issuers/{act['issuer']}/acts")
            answer = territory.answers_as_a_member(observer, f"/v1/transactions/{act['tx_id']}")
            assert answer["status"] == "committed" and answer["receipt"] is not None


def test_a_commune_that_runs_nothing_anchors_and_a_resident_verifies_on_an_observer(
    territory: Territory, tmp_path: Path
) -> None:
    """The issue's "done means": commune-0999 has only its key; it anchors a deliberation
    through a member's API; a resident fetches the receipt from an observer and checks it
    offline, with the genesis and the document alone."""
    deliberation = tmp_path / "deliberation-2026-017.pdf"
    deliberation.write_bytes(b"%PDF-1.7 Conseil municipal, deliberation 2026-017\n")
    anchored = subprocess.run(
        anchor_command(
            deliberation,
            api=territory.members[2].api_url,
            issuer="commune-0999",
            key=territory.key_file("commune-0999"),
            reference="2026-DEL-017",
            title="Tarifs de la cantine scolaire",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert anchored.returncode == 0, anchored.stderr
    tx_id = re.search(r"transaction ([0-9a-f]{64}): committed", anchored.stdout)
    assert tx_id is not None, anchored.stdout
    territory.converged()
    resident = tmp_path / "resident"
    resident.mkdir()
    receipt = resident / "receipt.json"
    fetched = subprocess.run(
        [*CLI, "receipt", tx_id[1], "--api", territory.observers[1].api_url, "--out", str(receipt)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fetched.returncode == 0, fetched.stderr
    verified = subprocess.run(
        [
            *CLI,
            "verify",
            str(receipt),
            "--genesis",
            str(territory.genesis_file),
            "--document",
            str(deliberation),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=resident,
    )
    assert verified.returncode == 0, verified.stderr
    lines = verified.stdout.splitlines()
    assert lines[0].startswith("VERIFIED against the genesis of ")
    assert "  act:       commune-0999/2026-DEL-017 (deliberation, dated 2026-11-28)" in lines
    assert f"  document:  {deliberation} matches the anchored digest" in lines
    assert re.search(r"certified by [34] of 4 members", verified.stdout), verified.stdout
    # The receipt proves the commune's right to sign, from the genesis alone.
    issuer_line = next(line for line in lines if line.startswith("  issuer:"))
    assert re.fullmatch(
        r"  issuer:    \S.* \(SIRET \d{14}\), an active issuer at height \d+ "
        r"\(admitted at height \d+\)",
        issuer_line,
    ), issuer_line
    assert any(
        line.startswith("  signed by: the issuer's own key, on record after block ")
        for line in lines
    ), verified.stdout


def test_devnet_up_refuses_more_issuers_than_it_admits_before_starting_anything(
    tmp_path: Path,
) -> None:
    refused = subprocess.run(
        [*CLI, "devnet", "up", "--issuers", "10001", "--dir", str(tmp_path / "devnet")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode != 0
    assert "0 to 10000 issuers" in refused.stderr
    assert not (tmp_path / "devnet").exists()


def passes_luhn(digits: str) -> bool:
    total = 0
    for position, character in enumerate(reversed(digits)):
        value = int(character) * (2 if position % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


def test_made_up_communes_have_distinct_valid_looking_sirets() -> None:
    """A commune's SIREN starts with 21; SIREN and SIRET both pass the Luhn check."""
    numbers = [siret(index) for index in range(0, 10_001)]
    assert len(set(numbers)) == len(numbers)
    for number in numbers[::97]:
        assert re.fullmatch(r"21[0-9]{12}", number), number
        assert passes_luhn(number[:9]) and passes_luhn(number), number
    issuers = make_issuers(3)
    assert [issuer.id for issuer in issuers] == ["commune-0001", "commune-0002", "commune-0003"]
    assert issuers[0].name == "Commune d’Aubigny"
    assert len({crypto.public_key_bytes(issuer.key) for issuer in issuers}) == 3
