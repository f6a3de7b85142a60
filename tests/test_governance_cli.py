"""``sceau issuer`` and ``sceau governance`` on a real four-member devnet: a commune joins.

One devnet (real processes, sockets, LevelDB, Ed25519) serves the whole file, and the tests
run in order as one story, the way a territory's communes join: the commune makes its key,
a member proposes the admission of the territory's communes from a CSV file, two other
members vote it through, the commune anchors a deliberation in its own name with
``sceau anchor --issuer``, delegates to its records system, rotates its key, is suspended
(its anchors refused with a clear message), reinstated and removed. A CSV with bad rows is
refused whole, naming each bad row. Every command runs as a user runs it: ``sceau …`` in a
new process.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_cli import assert_ok, assert_user_error, sceau

from node.tools.devnet import MemberProcess, devnet_down, devnet_up

COMMUNE = "commune-aubrac"
SIRET = "21590350100017"
PROPOSAL = re.compile(r"proposal ([0-9a-f]{64})")


@dataclass
class Territory:
    members: list[MemberProcess]
    work: Path

    def api(self, index: int = 0) -> list[str]:
        return ["--api", self.members[index].api_url]

    def as_member(self, index: int) -> list[str]:
        member = self.members[index]
        return ["--member", member.member_id, "--key", member.key_file, *self.api(index)]

    def vote_through(self, proposal_id: str) -> str:
        """Members 1 and 2 vote yes (with the proposer's vote, 3 of 4): the last output."""
        first = assert_ok(sceau("governance", "vote", proposal_id, "--yes", *self.as_member(1)))
        assert f"proposal {proposal_id}: open" in first, first
        return assert_ok(sceau("governance", "vote", proposal_id, "--yes", *self.as_member(2)))

    def propose(self, *command: str) -> str:
        """Run a proposing command as member 0; the proposal's id."""
        output = assert_ok(sceau(*command, *self.as_member(0)))
        found = PROPOSAL.search(output)
        assert found, output
        return found[1]

    def anchor(self, key: Path, reference: str) -> subprocess.CompletedProcess[str]:
        document = self.work / f"{reference}.pdf"
        document.write_bytes(f"%PDF-1.7 {reference}".encode())
        return sceau(
            "anchor", document, "--issuer", COMMUNE, "--key", key,
            "--reference", reference, "--kind", "deliberation", "--date", "2026-11-28",
            "--title", "Budget primitif", *self.api(3),
        )  # fmt: skip

    def status(self) -> str:
        return json.loads(assert_ok(sceau("issuer", "show", COMMUNE, *self.api())))["status"]


@pytest.fixture(scope="module")
def territory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Territory]:
    work = tmp_path_factory.mktemp("governance-cli")
    directory = work / "devnet"
    members = devnet_up(directory, 4)
    try:
        yield Territory(members=members, work=work)
    finally:
        devnet_down(directory)


def key_file(territory: Territory, name: str) -> tuple[Path, str]:
    """``sceau key generate`` a key: its file and its public key text."""
    path = territory.work / f"{name}.pem"
    if not path.exists():
        assert_ok(sceau("key", "generate", path))
    return path, assert_ok(sceau("key", "show", path)).strip()


def test_a_bad_csv_is_refused_whole_naming_each_bad_row(territory: Territory) -> None:
    _, public = key_file(territory, "commune")
    csv_file = territory.work / "bad.csv"
    csv_file.write_text(
        "id,name,siret,public_key\n"
        f"commune-ok,Commune OK,{SIRET},{public}\n"
        f"Commune_Bad,Commune mal nommée,{SIRET},{public}\n"
        f"commune-siret,Commune,2159035,{public}\n"
        "commune-key,Commune,,ed25519:not-a-key\n"
        "commune-short,Commune sans clé\n"
        f"commune-ok,Commune OK bis,,{public}\n"
    )
    result = sceau("issuer", "admit", "--csv", csv_file, *territory.as_member(0))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    error = result.stderr
    assert "5 bad row(s)" in error and "nothing was sent" in error, error
    for line, fragment in (
        (3, "id:"),
        (4, "siret: a SIRET is 14 digits"),
        (5, "public_key:"),
        (6, "expected 4 fields"),
        (7, "id commune-ok is already on line 2"),
    ):
        assert re.search(rf"line {line}: .*{re.escape(fragment)}", error), (line, error)
    assert "no open proposal" in assert_ok(sceau("governance", "proposals", *territory.api()))


def test_a_territorys_communes_are_admitted_from_a_csv_and_voted_through(
    territory: Territory,
) -> None:
    _, public = key_file(territory, "commune")
    others = [key_file(territory, f"other-{index}")[1] for index in range(2)]
    csv_file = territory.work / "communes.csv"
    csv_file.write_text(
        "id,name,siret,public_key\n"
        f'{COMMUNE},"Commune d\'Aubrac, Lozère",{SIRET},{public}\n'
        f"commune-bellecombe,Commune de Bellecombe,,{others[0]}\n"
        f"commune-cerdon,Commune de Cerdon,21010068700013,{others[1]}\n"
    )
    output = assert_ok(sceau("issuer", "admit", "--csv", csv_file, *territory.as_member(0)))
    assert "admit 3 issuer(s) (commune-aubrac … commune-cerdon): open" in output, output
    assert "sceau governance vote" in output
    proposal_id = PROPOSAL.search(output)[1]  # type: ignore[index]

    listed = assert_ok(sceau("governance", "proposals", *territory.api(1)))
    assert proposal_id in listed and "admit_issuers commune-aubrac" in listed, listed
    decided = territory.vote_through(proposal_id)
    passed = re.search(r"passed at height (\d+); the change is in force from height (\d+)", decided)
    assert passed and int(passed[2]) == int(passed[1]) + 1, decided

    listing = sceau("issuer", "list", *territory.api(2))
    issuers = assert_ok(listing)
    assert "next page" not in listing.stderr, "three issuers fit the default page"
    rows = [line.split()[:3] for line in issuers.splitlines()]
    assert rows == [
        [COMMUNE, "active", SIRET],
        ["commune-bellecombe", "active", "-"],
        ["commune-cerdon", "active", "21010068700013"],
    ]
    paged = sceau("issuer", "list", "--after", COMMUNE, "--limit", "1", *territory.api())
    assert assert_ok(paged).split()[0] == "commune-bellecombe"
    assert "sceau issuer list --after commune-bellecombe" in paged.stderr
    assert "Commune d'Aubrac, Lozère" in assert_ok(
        sceau("issuer", "show", COMMUNE, *territory.api())
    )


def test_the_commune_anchors_in_its_own_name_and_delegates_to_its_records_system(
    territory: Territory,
) -> None:
    commune, _ = key_file(territory, "commune")
    assert "committed at height" in assert_ok(territory.anchor(commune, "2026-DEL-001"))

    records, records_public = key_file(territory, "records")
    delegated = assert_ok(
        sceau("issuer", "delegate", COMMUNE, "--signer", records_public, "--role", "deeds.issue",
              "--key", commune, *territory.api())
    )  # fmt: skip
    assert f"deeds.issue delegated to {records_public} until revoked" in delegated
    assert "committed" in assert_ok(territory.anchor(records, "2026-DEL-002"))
    assert_ok(
        sceau("issuer", "revoke", COMMUNE, "--signer", records_public, "--key", commune,
              *territory.api())
    )  # fmt: skip
    refused = territory.anchor(records, "2026-DEL-003")
    assert refused.returncode == 1 and "rejected: wrong_signer" in refused.stderr, refused.stderr


def test_the_commune_rotates_its_key(territory: Territory) -> None:
    commune, _ = key_file(territory, "commune")
    rotated, rotated_public = key_file(territory, "commune-2027")
    output = assert_ok(
        sceau("issuer", "rotate-key", COMMUNE, "--new-key", rotated, "--key", commune,
              *territory.api())
    )  # fmt: skip
    assert "key rotated" in output
    assert rotated_public in assert_ok(sceau("issuer", "show", COMMUNE, *territory.api()))
    assert "committed" in assert_ok(territory.anchor(rotated, "2026-DEL-004"))
    old = territory.anchor(commune, "2026-DEL-005")
    assert old.returncode == 1 and "rejected" in old.stderr, old.stderr


def test_an_issuer_never_governs(territory: Territory) -> None:
    rotated, _ = key_file(territory, "commune-2027")
    result = sceau("issuer", "suspend", "commune-cerdon", "--member", COMMUNE, "--key", rotated,
                   *territory.api())  # fmt: skip
    assert result.returncode == 1 and "not_a_member" in result.stderr, result.stderr


def test_a_suspended_commune_cannot_anchor_until_reinstated_then_is_removed(
    territory: Territory,
) -> None:
    rotated, _ = key_file(territory, "commune-2027")
    territory.vote_through(territory.propose("issuer", "suspend", COMMUNE))
    assert territory.status() == "suspended"
    refused = territory.anchor(rotated, "2026-DEL-006")
    assert refused.returncode == 1, refused.stderr
    assert "rejected: issuer_suspended" in refused.stderr, refused.stderr

    again = sceau("issuer", "suspend", COMMUNE, *territory.as_member(0))
    assert again.returncode == 1 and "invalid_issuer_transition" in again.stderr, again.stderr

    territory.vote_through(territory.propose("issuer", "reinstate", COMMUNE))
    assert "committed" in assert_ok(territory.anchor(rotated, "2026-DEL-006"))
    territory.vote_through(territory.propose("issuer", "remove", COMMUNE))
    assert territory.status() == "removed"
    gone = territory.anchor(rotated, "2026-DEL-007")
    assert gone.returncode == 1 and "rejected" in gone.stderr, gone.stderr


def test_clear_errors_for_what_cannot_be_asked(territory: Territory) -> None:
    member = territory.as_member(0)
    assert_user_error(sceau("issuer", "show", "commune-inconnue", *territory.api()), "not_found")
    assert_user_error(sceau("issuer", "show", "Commune_A", *territory.api()), "lowercase")
    assert_user_error(
        sceau("issuer", "admit", "--id", "commune-x", "--name", "Commune X", "--siret", "123",
              "--public-key", key_file(territory, "x")[1], *member),
        "--siret", "14 digits",
    )  # fmt: skip
    assert_user_error(sceau("issuer", "admit", "--id", "commune-x", *member), "--name")
    assert_user_error(sceau("issuer", "list", "--limit", "0", *territory.api()), "--limit")
    assert_user_error(
        sceau("issuer", "delegate", COMMUNE, "--signer", "ed25519:abc", "--role", "deeds.issue",
              "--key", territory.members[0].key_file),
        "--signer",
    )  # fmt: skip
    assert_user_error(sceau("governance", "vote", "ab" * 31, "--yes", *member), "64 hex")
    unknown = sceau("governance", "vote", "ab" * 32, "--no", *member)
    assert unknown.returncode == 1 and "unknown_proposal" in unknown.stderr, unknown.stderr


def test_genesis_contracts_says_membership_still_runs_1_0() -> None:
    output = assert_ok(sceau("genesis", "contracts"))
    line = next(line for line in output.splitlines() if line.startswith("membership"))
    assert "1.3" in line and "also runs 1.2, 1.1, 1.0" in line, line
    assert "admitted issuer" in " ".join(assert_ok(sceau("anchor", "--help")).split())
