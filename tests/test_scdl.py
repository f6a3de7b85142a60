"""``sceau export acts --format scdl-deliberations``: SCDL "Délibérations" 2.1.5 open data.

The file is checked by :func:`scdl_problems`, a validator written here from the schema's rules
(an independent reading, not the exporter's code): UTF-8 without a byte-order mark, ``,`` as
separator, exactly the 17 columns in order, required values present, integers, real dates, every
pattern, the allowed subject codes. The chain is a real one (the contract engine over a LevelDB
store, certified blocks) with members and issuers, accents, commas and quotes in titles, amended,
superseded and withdrawn acts, and incomplete ones; once, the CLI exports from a devnet's API.
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import io
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from test_cli import assert_ok, sceau

from contracts.engine import Engine
from contracts.registry import load_contracts, receipt_anchors
from ledger import crypto
from ledger.client import Client
from ledger.devchain import LocalConsortium
from ledger.model import ContractRef, Transaction
from ledger.receipt import build_receipt, verify_receipt
from ledger.store import ChainStore
from node.tools import scdl
from node.tools.cli import main
from node.tools.devnet import devnet_down, devnet_up
from tests.logchain import commit_block

# --- the schema, read independently -------------------------------------------------------------

HEADER = [
    *("COLL_NOM", "COLL_SIRET", "DELIB_ID", "DELIB_DATE", "DELIB_MATIERE_CODE"),
    *("DELIB_MATIERE_NOM", "DELIB_OBJET", "BUDGET_ANNEE", "BUDGET_NOM", "PREF_ID", "PREF_DATE"),
    *("VOTE_EFFECTIF", "VOTE_REEL", "VOTE_POUR", "VOTE_CONTRE", "VOTE_ABSTENTION", "DELIB_URL"),
]
REQUIRED = {"COLL_NOM", "COLL_SIRET", "DELIB_ID", "DELIB_DATE", "DELIB_MATIERE_CODE"}
REQUIRED |= {"DELIB_MATIERE_NOM", "DELIB_OBJET"}
ALLOWED_CODES = {
    f"{level1}.{level2}"
    for level1, count in {1: 7, 2: 3, 3: 6, 4: 5, 5: 8, 6: 5, 7: 10, 8: 9, 9: 4}.items()
    for level2 in range(1, count + 1)
}
PATTERNS = {
    "COLL_SIRET": r"^\d{14}$",
    "DELIB_MATIERE_CODE": r"^\d\.\d{1,2}$",
    "BUDGET_ANNEE": r"^[0-9]{4}(\/[0-9]{4})?$",
    "PREF_ID": r"^(PREF\d{2}[0-9AB]|SPREF\d{2}[0-9AB]\d|SGAR\d{2}[0-9AB])$",
}
DATES = ("DELIB_DATE", "PREF_DATE")
INTEGERS = ("VOTE_EFFECTIF", "VOTE_REEL", "VOTE_POUR", "VOTE_CONTRE", "VOTE_ABSTENTION")


def scdl_problems(data: bytes) -> list[str]:
    """Every way ``data`` breaks the SCDL "Délibérations" 2.1.5 rules (empty: valid)."""
    if data[:3] == b"\xef\xbb\xbf":
        return ["byte-order mark"]
    text = data.decode("utf-8")  # raises on anything that is not UTF-8
    lines = list(csv.reader(io.StringIO(text, newline=""), delimiter=","))
    if lines[0] != HEADER:
        return [f"header {lines[0]}"]
    problems = []
    for number, line in enumerate(lines[1:], start=2):
        if len(line) != len(HEADER):
            problems.append(f"line {number}: {len(line)} fields")
            continue
        row = dict(zip(HEADER, line, strict=True))
        problems += [f"line {number}: {name} empty" for name in sorted(REQUIRED) if not row[name]]
        for name, pattern in PATTERNS.items():
            if row[name] and not re.search(pattern, row[name]):
                problems.append(f"line {number}: {name} {row[name]!r}")
        if row["DELIB_MATIERE_CODE"] not in ALLOWED_CODES:
            problems.append(f"line {number}: code {row['DELIB_MATIERE_CODE']!r} not allowed")
        for name in DATES:
            if row[name]:
                try:
                    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", row[name])
                    datetime.date.fromisoformat(row[name])
                except (AssertionError, ValueError):
                    problems.append(f"line {number}: {name} {row[name]!r} is not a date")
        for name in INTEGERS:
            if row[name] and not re.fullmatch(r"-?\d+", row[name]):
                problems.append(f"line {number}: {name} {row[name]!r} is not an integer")
        if row["DELIB_URL"] and not re.fullmatch(r"[a-z][a-z0-9+.-]*://\S+", row["DELIB_URL"]):
            problems.append(f"line {number}: DELIB_URL {row['DELIB_URL']!r}")
    return problems


def rows_of(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))


def test_the_validator_catches_what_the_schema_forbids() -> None:
    good = (
        ",".join(HEADER)
        + "\r\n"
        + (
            "Ville de Poitiers,21860194900013,2026-DEL-1,2026-02-28,7.5,"
            "finances locales/subventions,Objet,2026,,PREF086,2026-03-02,45,40,30,5,5,https://example.org/d.pdf\r\n"
        )
    )
    assert scdl_problems(good.encode()) == []
    assert scdl.check_scdl(good.encode()) == []
    for before, after in (
        ("21860194900013", "2186019490001"),  # 13 digits
        ("2026-02-28", "2026-02-30"),  # not a real date
        (",7.5,", ",7.11,"),  # no such subject
        ("PREF086", "PREF86"),
        (",45,", ",4.5,"),
        (",2026,", ",2026-2027,"),
        ("Ville de Poitiers", ""),  # required
    ):
        bad = good.replace(before, after, 1).encode()
        assert scdl_problems(bad), before
        assert scdl.check_scdl(bad), before
    assert scdl_problems(b"\xef\xbb\xbf" + good.encode())
    assert scdl.check_scdl(good.replace(",", ";").encode())


# --- a real chain -------------------------------------------------------------------------------

SEED = b"test-scdl"
METROPOLE, VILLE, SYNDICAT, AGGLO = "metropole-valbrune", "ville-valbrune", "syndicat-eaux", "agglo"
COMMUNE, HAMEAU = "commune-bellecombe", "commune-hameau"
SIRETS = {METROPOLE: "20004697700019", SYNDICAT: "25690123400016", AGGLO: "20007123400012"}
COMMUNE_SIRET = "21590350100017"
QUOTED_TITLE = 'Subvention à l\'association « Les Amis, du "Vieux" Port », 2 500 €'
CONTROL_DATE = "2026-03-05"
FULL = {
    "subject_code": "7.5",
    "subject_name": "finances locales/subventions",
    "votes": {"entitled": 45, "cast": 41, "for": 30, "against": 8, "abstention": 3},
    "budget_year": "2026",
    "budget_name": "budget principal",
    "control_entity": "PREF069",
    "control_date": CONTROL_DATE,
}
SUBJECT_ONLY = {"subject_code": "2.1", "subject_name": "urbanisme/documents d'urbanisme"}


@dataclass
class Chain:
    consortium: LocalConsortium
    engine: Engine
    store: ChainStore
    path: Path
    keys: dict[str, crypto.PrivateKey] = field(default_factory=dict)
    nonce: int = 0
    anchors: dict[tuple[str, str], Transaction] = field(default_factory=dict)

    def transaction(self, signer: str, contract: str, action: str, **args: Any) -> Transaction:
        self.nonce += 1
        return Transaction.create(
            self.keys[signer],
            chain_id=self.consortium.genesis.chain_id,
            contract=contract,
            action=action,
            args=args,
            nonce=self.nonce,
            expiry_height=1_000_000,
        )

    def anchor(
        self, issuer: str, reference: str, title: str, kind: str = "deliberation", **data: Any
    ) -> Transaction:
        transaction = self.transaction(
            issuer,
            "deeds",
            "anchor",
            issuer=issuer,
            reference=reference,
            kind=kind,
            digest=hashlib.sha256(f"document {issuer} {reference}".encode()).digest(),
            act_date="2026-03-01" if reference.endswith("1") else "2026-02-14",
            title=title,
            url=f"https://actes.example.org/{issuer}/{reference}.pdf",
            **data,
        )
        self.anchors[(issuer, reference)] = transaction
        return transaction

    def status(self, issuer: str, reference: str, action: str, **args: Any) -> Transaction:
        return self.transaction(issuer, "deeds", action, issuer=issuer, reference=reference, **args)

    def commit(self, *transactions: Transaction) -> None:
        height = self.store.height + 1
        commit_block(
            self.engine,
            self.store,
            self.consortium,
            transactions,
            timestamp_ms=1_772_000_000_000 + height * 60_000,
        )

    def vote_through(self, change: dict[str, Any]) -> None:
        proposal = self.transaction(
            METROPOLE, "membership", "propose", proposer=METROPOLE, change=change
        )
        votes = [
            self.transaction(
                voter, "membership", "vote", proposal_id=proposal.tx_id, voter=voter, approve=True
            )
            for voter in (VILLE, SYNDICAT)
        ]
        self.commit(proposal, *votes)


def build_chain(path: Path) -> Chain:
    """Four members (Ville de Valbrune without a SIRET), two issuers (one without), and acts."""
    base = LocalConsortium.create(
        [
            (METROPOLE, "Métropole de Valbrune"),
            (VILLE, "Ville de Valbrune"),
            (SYNDICAT, "Syndicat des eaux du Valbrunois"),
            (AGGLO, "Agglomération du Val d'Orge"),
        ],
        seed=SEED,
        contracts=(
            ContractRef(name="membership", version="1.3"),
            ContractRef(name="deeds", version="1.1"),
        ),
        format_version=2,
    )
    members = tuple(
        member.model_copy(update={"siret": SIRETS.get(member.id)})
        for member in base.genesis.members
    )
    genesis = base.genesis.model_copy(update={"members": members})
    consortium = LocalConsortium(genesis=genesis, keys=dict(base.keys))
    engine = Engine(genesis, load_contracts(genesis))
    store = ChainStore.create(path, genesis, engine.genesis_state())
    chain = Chain(consortium, engine, store, path, keys=dict(base.keys))
    for issuer in (COMMUNE, HAMEAU):
        chain.keys[issuer] = crypto.key_from_seed(hashlib.sha256(SEED + issuer.encode()).digest())
    chain.vote_through(
        {
            "kind": "admit_issuers",
            "issuers": [
                {
                    "id": COMMUNE,
                    "name": "Commune de Bellecombe",
                    "siret": COMMUNE_SIRET,
                    "public_key": crypto.public_key_bytes(chain.keys[COMMUNE]),
                },
                {
                    "id": HAMEAU,
                    "name": "Commune du Hameau",
                    "siret": None,
                    "public_key": crypto.public_key_bytes(chain.keys[HAMEAU]),
                },
            ],
        }
    )
    chain.commit(
        chain.anchor(METROPOLE, "2026-DEL-001", QUOTED_TITLE, **FULL),
        chain.anchor(METROPOLE, "2026-DEL-002", "Plan local d'urbanisme", **SUBJECT_ONLY),
        chain.anchor(METROPOLE, "2026-DEL-003", "PLU, modification n° 1", **SUBJECT_ONLY),
        chain.anchor(METROPOLE, "2026-DEL-004", "Tarifs 2026", **SUBJECT_ONLY),
        chain.anchor(METROPOLE, "2026-DEL-005", "Tarifs 2026, refonte", **SUBJECT_ONLY),
        chain.anchor(METROPOLE, "2026-DEL-006", "Motion retirée", **SUBJECT_ONLY),
        chain.anchor(METROPOLE, "2026-DEL-007", "Sans matière"),
        chain.anchor(METROPOLE, "2026-ARR-011", "Arrêté de circulation", kind="decree"),
        chain.anchor(VILLE, "2026-DEL-101", "Budget primitif 2026", **FULL),
        chain.anchor(SYNDICAT, "2026-DEL-201", "Tarif de l'eau", **SUBJECT_ONLY),
        chain.anchor(COMMUNE, "2026-DEL-301", "Église Saint-Léger : travaux", **FULL),
        chain.anchor(HAMEAU, "2026-DEL-401", "Fête du hameau", **SUBJECT_ONLY),
    )
    chain.commit(
        chain.status(METROPOLE, "2026-DEL-002", "amend", by_reference="2026-DEL-003"),
        chain.status(METROPOLE, "2026-DEL-004", "supersede", by_reference="2026-DEL-005"),
        chain.status(METROPOLE, "2026-DEL-006", "withdraw", reason="erreur matérielle"),
    )
    return chain


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    built = build_chain(tmp_path_factory.mktemp("scdl") / "chain")
    built.store.close()  # the export opens it as a stopped node's database
    yield built


def export(
    chain: Chain, out: Path, *options: str, capsys: pytest.CaptureFixture[str]
) -> tuple[int, str]:
    status = main(
        [
            "export",
            "acts",
            "--format",
            "scdl-deliberations",
            "--data-dir",
            str(chain.path),
            "--out",
            str(out),
            *options,
        ]
    )
    return status, capsys.readouterr().err


COMPLETE_ROWS = [
    (COMMUNE, "2026-DEL-301"),
    (METROPOLE, "2026-DEL-002"),
    (METROPOLE, "2026-DEL-003"),
    (METROPOLE, "2026-DEL-005"),
    (METROPOLE, "2026-DEL-001"),
    (SYNDICAT, "2026-DEL-201"),
]
"""The rows, in order (issuer, act date, reference): DEL-004 is superseded by DEL-005, DEL-006
withdrawn, ARR-011 a decree; DEL-007 lacks a subject, DEL-101 and DEL-401 a SIRET."""


def test_incomplete_deliberations_fail_the_export_and_nothing_is_written(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deliberations.csv"
    status, errors = export(chain, out, capsys=capsys)
    assert status == 1
    assert not out.exists() and not (tmp_path / "deliberations.csv.proofs.csv").exists()
    assert "3 deliberation(s) in force lack values" in errors and "--skip-incomplete" in errors
    lines = [line for line in errors.splitlines() if " lacks " in line]
    assert len(lines) == 3, errors
    assert any(
        line.startswith(f"{METROPOLE}/2026-DEL-007 lacks DELIB_MATIERE_CODE")
        and "DELIB_MATIERE_NOM" in line
        for line in lines
    ), lines
    assert any(line.startswith(f"{VILLE}/2026-DEL-101 lacks COLL_SIRET") for line in lines)
    assert any(line.startswith(f"{HAMEAU}/2026-DEL-401 lacks COLL_SIRET") for line in lines)


def test_the_territory_export_keeps_the_deliberations_in_force_and_passes_the_schema(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deliberations.csv"
    status, errors = export(chain, out, "--skip-incomplete", capsys=capsys)
    assert status == 0, errors
    assert errors.count("skipped ") == 3 and "6 deliberations as of height 3" in errors
    data = out.read_bytes()
    assert scdl_problems(data) == [] and scdl.check_scdl(data) == []
    assert data.count(b"\r\n") == len(COMPLETE_ROWS) + 1 and b"\n" not in data.replace(b"\r\n", b"")
    rows = rows_of(out)
    assert [(row["DELIB_ID"]) for row in rows] == [reference for _, reference in COMPLETE_ROWS]
    full = next(row for row in rows if row["DELIB_ID"] == "2026-DEL-001")
    assert full == {
        "COLL_NOM": "Métropole de Valbrune",
        "COLL_SIRET": SIRETS[METROPOLE],
        "DELIB_ID": "2026-DEL-001",
        "DELIB_DATE": "2026-03-01",
        "DELIB_MATIERE_CODE": "7.5",
        "DELIB_MATIERE_NOM": "finances locales/subventions",
        "DELIB_OBJET": QUOTED_TITLE,  # commas, quotes and accents survive CSV quoting
        "BUDGET_ANNEE": "2026",
        "BUDGET_NOM": "budget principal",
        "PREF_ID": "PREF069",
        "PREF_DATE": CONTROL_DATE,
        "VOTE_EFFECTIF": "45",
        "VOTE_REEL": "41",
        "VOTE_POUR": "30",
        "VOTE_CONTRE": "8",
        "VOTE_ABSTENTION": "3",
        "DELIB_URL": f"https://actes.example.org/{METROPOLE}/2026-DEL-001.pdf",
    }
    sparse = next(row for row in rows if row["DELIB_ID"] == "2026-DEL-201")
    assert [name for name, value in sparse.items() if not value] == [
        "BUDGET_ANNEE",
        "BUDGET_NOM",
        "PREF_ID",
        "PREF_DATE",
        *INTEGERS,
    ]
    assert next(row for row in rows if row["DELIB_ID"] == "2026-DEL-301")["COLL_NOM"] == (
        "Commune de Bellecombe"
    )


def test_each_proof_row_names_a_receipt_that_proves_that_deliberation(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "deliberations.csv"
    assert export(chain, out, "--skip-incomplete", capsys=capsys)[0] == 0
    proofs = rows_of(tmp_path / "deliberations.csv.proofs.csv")
    assert list(proofs[0]) == ["DELIB_ID", "COLL_SIRET", "issuer", "tx_id", "height", "digest"]
    assert [(row["issuer"], row["DELIB_ID"]) for row in proofs] == COMPLETE_ROWS
    store = ChainStore.open(chain.path)
    try:
        for row, published in zip(proofs, rows_of(out), strict=True):
            assert (row["DELIB_ID"], row["COLL_SIRET"]) == (
                published["DELIB_ID"],
                published["COLL_SIRET"],
            )
            receipt = build_receipt(store, bytes.fromhex(row["tx_id"]), anchors=receipt_anchors())
            assert receipt is not None
            document = f"document {row['issuer']} {row['DELIB_ID']}".encode()
            verified = verify_receipt(
                receipt, chain.consortium.genesis, document, anchors=receipt_anchors()
            )
            assert verified.document_matches and verified.height == int(row["height"])
            assert verified.act is not None and verified.act["reference"] == row["DELIB_ID"]
            assert verified.act["issuer"] == row["issuer"]
            assert verified.act["digest"].hex() == row["digest"]
            assert verified.status is not None and verified.status["status"] in (
                "in_force",
                "amended",
            )
    finally:
        store.close()


def test_one_issuer_and_the_proof_columns(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "bellecombe.csv"
    status, errors = export(chain, out, "--issuer", COMMUNE, "--proof-columns", capsys=capsys)
    assert status == 0, errors
    rows = rows_of(out)
    assert list(rows[0]) == [*HEADER, "issuer", "tx_id", "height", "digest"]
    assert [(row["COLL_SIRET"], row["DELIB_ID"]) for row in rows] == [
        (COMMUNE_SIRET, "2026-DEL-301")
    ]
    assert rows[0]["tx_id"] == chain.anchors[(COMMUNE, "2026-DEL-301")].tx_id.hex()
    status, errors = export(chain, tmp_path / "x.csv", "--issuer", "nobody", capsys=capsys)
    assert status == 2 and "--issuer nobody: neither a member nor an issuer" in errors


def test_a_bundle_exports_the_same_files_as_the_data_directory(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "chain.bundle"
    assert main(["export", str(bundle), "--data-dir", str(chain.path)]) == 0
    from_store, from_bundle = tmp_path / "store.csv", tmp_path / "bundle.csv"
    assert export(chain, from_store, "--skip-incomplete", capsys=capsys)[0] == 0
    common = ["export", "acts", "--format", "scdl-deliberations", "--skip-incomplete"]
    status = main([*common, "--bundle", str(bundle), "--workers", "1", "--out", str(from_bundle)])
    assert status == 0, capsys.readouterr().err
    assert from_bundle.read_bytes() == from_store.read_bytes()
    proofs = ".proofs.csv"
    assert (tmp_path / f"bundle.csv{proofs}").read_bytes() == (
        tmp_path / f"store.csv{proofs}"
    ).read_bytes()


def test_the_export_needs_an_out_file_and_one_source(
    chain: Chain, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    common = ["export", "acts", "--format", "scdl-deliberations"]
    assert main([*common, "--data-dir", str(chain.path)]) == 2
    assert "needs --out FILE" in capsys.readouterr().err
    assert main([*common, "--out", str(tmp_path / "x.csv")]) == 2
    assert "exactly one source" in capsys.readouterr().err
    assert main(["export", "acts", "--format", "csv", "--data-dir", str(chain.path),
                 "--skip-incomplete"]) == 2  # fmt: skip
    assert "--skip-incomplete is for --format scdl-deliberations" in capsys.readouterr().err


NEW_SIRET = "20004697700019"


def test_the_api_export_of_a_devnet_passes_the_schema(tmp_path: Path) -> None:
    """A member's SIRET set by vote (sceau governance set-siret), a deliberation anchored with
    its data by 'sceau anchor', exported through the API."""
    started = time.monotonic()
    members = devnet_up(tmp_path / "devnet", 4)
    try:
        first = members[0]
        proposed = sceau(
            "governance", "set-siret", first.member_id, "--siret", NEW_SIRET,
            "--member", first.member_id, "--key", first.key_file, "--api", first.api_url,
        )  # fmt: skip
        assert "open, waiting for the other members' votes" in assert_ok(proposed)
        proposal_id = re.search(r"proposal ([0-9a-f]{64})", proposed.stdout)
        assert proposal_id is not None, proposed.stdout
        for voter in members[1:3]:
            voted = sceau(
                "governance", "vote", proposal_id.group(1), "--yes", "--member", voter.member_id,
                "--key", voter.key_file, "--api", voter.api_url,
            )  # fmt: skip
            assert_ok(voted)
        assert "passed" in voted.stdout, voted.stdout
        document = tmp_path / "deliberation-42.pdf"
        document.write_bytes(b"%PDF-1.7 deliberation 42")
        anchored = sceau(
            "anchor", document, "--issuer", first.member_id, "--reference", "2026-DEL-042",
            "--kind", "deliberation", "--date", "2026-11-28", "--title",
            "Réseau de chaleur, tranche 2", "--url", "https://example.org/2026-DEL-042.pdf",
            "--subject-code", "7.5", "--subject-name", "finances locales/subventions",
            "--votes", "entitled=45,cast=41,for=30,against=8,abstention=3",
            "--budget-year", "2026", "--budget-name", "budget principal",
            "--control-entity", "PREF069", "--control-date", CONTROL_DATE,
            "--api", first.api_url, "--key", first.key_file,
        )  # fmt: skip
        assert_ok(anchored)
        tx_id = re.search(r"transaction ([0-9a-f]{64}): committed", anchored.stdout)
        assert tx_id is not None, anchored.stdout
        with Client(first.api_url, signer=crypto.load_private_key(first.key_file)) as client:
            client.anchor(
                issuer=first.member_id,
                reference="2026-DEC-001",
                kind="decree",
                digest=hashlib.sha256(b"decree 1").digest(),
                act_date="2026-11-29",
                title="Arrêté",
            )
            act = client.act(first.member_id, "2026-DEL-042")
        assert {name: act[name] for name in FULL} == FULL
        out = tmp_path / "deliberations.csv"
        result = sceau(
            "export", "acts", "--format", "scdl-deliberations", "--api", first.api_url,
            "--out", out,
        )  # fmt: skip
        assert_ok(result)
        assert "1 deliberations" in result.stderr
        assert scdl_problems(out.read_bytes()) == []
        [row] = rows_of(out)
        assert row["DELIB_ID"] == "2026-DEL-042" and row["COLL_SIRET"] == NEW_SIRET
        assert row["VOTE_POUR"] == "30" and row["PREF_ID"] == "PREF069"
        [proof] = rows_of(tmp_path / "deliberations.csv.proofs.csv")
        assert proof["tx_id"] == tx_id.group(1)
        assert proof["height"] == str(act["anchored_height"])
        assert proof["digest"] == hashlib.sha256(document.read_bytes()).hexdigest()
    finally:
        devnet_down(tmp_path / "devnet")
    assert time.monotonic() - started < 60
