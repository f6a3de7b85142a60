"""``make demo``: a local consortium of four collectivities anchoring and verifying acts.

What it does, for real (separate processes, loopback sockets, LevelDB on disk, fsync):

1. starts a devnet of four member nodes (a metropolis, a town, a commune, a water syndicate),
   an observer, and the préfecture's witness, which cosigns every checkpoint of the register
   the members push to it (and would refuse one of a second history);
2. each member anchors acts through the client library — the documents are hashed locally,
   only their SHA-256 and public metadata go on chain;
3. one act is amended by a later one, another is withdrawn;
4. one node is killed with SIGKILL; the other three (n = 4 tolerates f = 1) keep anchoring;
5. the killed node restarts from its LevelDB store and catches up from its peers;
6. a citizen's check: a document is looked up by its digest, and a copy altered by one byte is
   not found; a receipt's inclusion proof is checked against the certified header;
7. a commune that runs no node joins as an issuer: the members admit it by a governance vote,
   it anchors a deliberation in its own name with its own key through a member's API, and a
   resident verifies its receipt, fetched from an observer that follows the chain, offline —
   the receipt proves the commune's right to sign;
8. a journalist mirrors the register as static files (``sceau export tiles``), serves them with
   a plain static file server, takes a ``.tlog-proof`` of the commune's act from the mirror
   (``sceau proof --tiles``) and verifies it offline with the genesis and the préfecture's key:
   the act is in the log, a quorum of members signed the checkpoint, the préfecture cosigned
   it; with a policy that demands another witness, the proof is refused;
9. the deliberations in force are published as open data: ``sceau export acts --format
   scdl-deliberations`` writes ``demo-data/deliberations.csv`` (SCDL "Délibérations" 2.1.5:
   the members' and the commune's SIRETs, subjects, votes, budgets, control of legality) and
   its companion of proofs, checked against the schema's rules, each row's receipt verified;
10. a summary: the height on every node and every act with its status.

It cleans up after itself (``--keep DIR`` keeps the folder) and exits 0 when every check held.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import functools
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contracts.registry import receipt_anchors
from ledger import crypto
from ledger.client import ApiError, Client
from ledger.logcheck import WitnessPolicy
from ledger.model import Genesis, sha256
from ledger.note import KeyType, NoteVerifierKey
from ledger.receipt import Receipt, ReceiptError, SignerRightKind, verify_receipt
from ledger.tlogproof import TlogProofError, verify_tlog_proof
from node.tools import scdl
from node.tools.devnet import (
    MemberProcess,
    WitnessProcess,
    devnet_down,
    devnet_up,
    read_observers,
    read_witnesses,
    start_member,
    write_devnet,
)
from node.tools.territory import siret

ACTS = (
    ("metropole-valbrune", "2026-DEL-042", "deliberation", "Plan local d'urbanisme, révision 3"),
    ("ville-valbrune", "2026-ARR-117", "decree", "Arrêté de circulation, rue des Tanneurs"),
    ("saint-leger-les-vignes", "2026-PC-0031", "permit", "Permis de construire, école"),
    ("syndicat-eaux-valbrunois", "2026-BUD-001", "budget", "Budget primitif 2026"),
    ("metropole-valbrune", "2026-OD-007", "dataset", "Qualité de l'air, jeu de données"),
    ("ville-valbrune", "2026-DEL-043", "deliberation", "Tarifs de la cantine scolaire"),
)
AMENDMENT = (
    "metropole-valbrune",
    "2026-DEL-051",
    "deliberation",
    "Plan local d'urbanisme, modification du règlement",
)
WHILE_DOWN = (
    ("ville-valbrune", "2026-ARR-130", "decree", "Arrêté de stationnement, place du Marché"),
    ("saint-leger-les-vignes", "2026-DEL-012", "deliberation", "Subvention aux associations"),
    ("metropole-valbrune", "2026-DEC-019", "decision", "Attribution du marché de voirie"),
)
KILLED = "syndicat-eaux-valbrunois"
COMMUNE = {"id": "hautmont", "name": "Commune de Hautmont", "siret": siret(59_321)}
"""A fictitious SIRET, well-formed (14 digits, SIREN and SIRET passing the Luhn check)."""
COMMUNE_ACT = ("hautmont", "2026-DEL-003", "deliberation", "Budget primitif 2027 de Hautmont")
CONTROL = {"control_entity": "PREF069", "control_date": "2026-12-02"}
"""The préfecture that received the deliberations for the control of legality, and when."""
DELIBERATION_DATA: dict[str, dict[str, Any]] = {
    "2026-DEL-042": {
        "subject_code": "2.1",
        "subject_name": "urbanisme/documents d'urbanisme",
        "votes": {"entitled": 69, "cast": 63, "for": 48, "against": 11, "abstention": 4},
        **CONTROL,
    },
    "2026-DEL-043": {
        "subject_code": "7.10",
        "subject_name": "finances locales/divers",
        "votes": {"entitled": 43, "cast": 39, "for": 33, "against": 6, "abstention": 0},
        "budget_year": "2026",
        "budget_name": "budget principal",
    },
    "2026-DEL-051": {
        "subject_code": "2.1",
        "subject_name": "urbanisme/documents d'urbanisme",
        "votes": {"entitled": 69, "cast": 60, "for": 51, "against": 5, "abstention": 4},
        **CONTROL,
    },
    "2026-DEL-012": {
        "subject_code": "7.5",
        "subject_name": "finances locales/subventions",
        "votes": {"entitled": 19, "cast": 17, "for": 17, "against": 0, "abstention": 0},
        "budget_year": "2026",
        "budget_name": "budget principal",
        "control_entity": "SPREF0692",
        "control_date": "2026-12-03",
    },
    "2026-DEL-005": {
        "subject_code": "8.8",
        "subject_name": "domaines de compétences par thèmes/environnement",
        "votes": {"entitled": 24, "cast": 22, "for": 20, "against": 1, "abstention": 1},
        "budget_year": "2027",
        "budget_name": "budget annexe de l'eau",
        **CONTROL,
    },
    "2026-DEL-003": {
        "subject_code": "7.1",
        "subject_name": "finances locales/décisions budgétaires",
        "votes": {"entitled": 15, "cast": 14, "for": 12, "against": 1, "abstention": 1},
        "budget_year": "2027",
        "budget_name": "budget principal",
        **CONTROL,
    },
}
"""What SCDL open data publishes of each deliberation (deeds 1.1): subject, votes (counts,
never names), budget, control of legality."""
DATA_FOLDER = "demo-data"
"""Where the demo writes the open data it publishes (relative to the current folder)."""
WITNESS = "prefecture"
"""The label of the préfecture's witness in the devnet, the members' configurations and the
journalist's policy (``--witness prefecture=VKEY``)."""
COSIGNED_WITHIN_S = 20.0
OTHER_WITNESS_SEED = b"chambre regionale des comptes (demo)"
"""Seed of a witness key that never cosigned anything: the chamber of accounts' in the demo's
refused policy."""


class DemoFailure(Exception):
    """A check of the demo did not hold."""


def document(issuer: str, reference: str, title: str) -> bytes:
    """The stand-in for a PDF: what matters is that its bytes are hashed, not sent."""
    return f"{issuer}\n{reference}\n{title}\n(document text)\n".encode()


def say(text: str = "") -> None:
    print(text, flush=True)


def check(condition: bool, what: str) -> None:
    if not condition:
        raise DemoFailure(what)


class Demo:
    def __init__(self, work: Path, data_folder: Path = Path(DATA_FOLDER)) -> None:
        self.work = work
        self.data_folder = data_folder
        self.members: dict[str, MemberProcess] = {}
        self.clients: dict[str, Client] = {}
        self.anchored: list[tuple[str, str, str]] = []
        self.commune_act: tuple[str, int, bytes] | None = None
        """The commune's act: its transaction id, height and document (for the mirror)."""

    def client(self, member_id: str, via: str | None = None) -> Client:
        """A client signing with ``member_id``'s key, talking to ``via``'s node."""
        via = via or member_id
        key = (member_id, via)
        if key not in self.clients:
            member = self.members[member_id]
            self.clients[key] = Client(
                self.members[via].api_url, signer=crypto.load_private_key(member.key_file)
            )
        return self.clients[key]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()

    def anchor(
        self, issuer: str, reference: str, kind: str, title: str, via: str | None = None
    ) -> dict[str, Any]:
        content = document(issuer, reference, title)
        outcome = self.client(issuer, via).anchor(
            issuer=issuer,
            reference=reference,
            kind=kind,
            digest=hashlib.sha256(content).digest(),
            act_date="2026-11-28",
            title=title,
            url=_published_at(issuer, reference),
            deliberation=DELIBERATION_DATA.get(reference) if kind == "deliberation" else None,
        )
        check(
            outcome.get("status") == "committed", f"{issuer}/{reference} not committed: {outcome}"
        )
        self.anchored.append((issuer, reference, title))
        say(
            f"  anchored {issuer}/{reference:<13} {kind:<12} at height {outcome['height']}"
            f" (via {via or issuer})"
        )
        return outcome

    def heights(self) -> dict[str, int | None]:
        heights = {}
        for member_id, member in self.members.items():
            try:
                with Client(member.api_url, timeout_s=2) as client:
                    heights[member_id] = client.status()["height"]
            except ApiError:
                heights[member_id] = None
        return heights

    def run(self) -> None:
        say(
            "starting a devnet of four member nodes, one observer and the préfecture's witness "
            "(separate processes on loopback)…"
        )
        processes = devnet_up(self.work, 4, observers=1, witnesses=(WITNESS,))
        self.members = {process.member_id: process for process in processes}
        genesis = Genesis.model_validate_json((self.work / "genesis.json").read_text())
        for process in processes:
            say(f"  {process.member_id:<26} {process.name:<36} {process.api_url}")
        [witness] = read_witnesses(self.work)
        say(
            f"  {'witness ' + witness.name:<26} {'Préfecture (not a member)':<36} {witness.url}"
            "\n  every member pushes each checkpoint of the register to the préfecture's witness"
        )

        say("\neach member anchors its acts (documents hashed locally):")
        receipts = {}
        for issuer, reference, kind, title in ACTS:
            receipts[(issuer, reference)] = self.anchor(issuer, reference, kind, title)

        say("\nthe metropolis amends its deliberation by a later one, the town withdraws one:")
        self.anchor(*AMENDMENT)
        outcome = self.client("metropole-valbrune").change_status(
            "amend",
            issuer="metropole-valbrune",
            reference="2026-DEL-042",
            by_reference="2026-DEL-051",
        )
        check(outcome.get("status") == "committed", f"amendment not committed: {outcome}")
        outcome = self.client("ville-valbrune").change_status(
            "withdraw",
            issuer="ville-valbrune",
            reference="2026-DEL-043",
            reason="Erreur matérielle dans la grille tarifaire",
        )
        check(outcome.get("status") == "committed", f"withdrawal not committed: {outcome}")
        say("  2026-DEL-042 amended by 2026-DEL-051; 2026-DEL-043 withdrawn")

        killed = self.members[KILLED]
        say(f"\nkilling {KILLED} with SIGKILL (n = 4 tolerates f = 1)…")
        os.kill(killed.pid, signal.SIGKILL)
        time.sleep(0.5)
        for issuer, reference, kind, title in WHILE_DOWN:
            self.anchor(issuer, reference, kind, title)
        heights = self.heights()
        say(f"  heights while it is down: {heights}")

        say(f"\nrestarting {KILLED} from its LevelDB store…")
        child = start_member(Path(killed.config_file).parent)
        self.members[KILLED] = dataclasses.replace(killed, pid=child.pid)
        write_devnet(self.work, list(self.members.values()))
        target = max(height for height in heights.values() if height is not None)
        deadline = time.monotonic() + 60
        while True:
            heights = self.heights()
            if heights[KILLED] is not None and heights[KILLED] >= target:
                break
            check(time.monotonic() < deadline, f"{KILLED} did not catch up: {heights}")
            time.sleep(0.3)
        say(f"  caught up: {heights}")
        self.anchor(
            "syndicat-eaux-valbrunois",
            "2026-DEL-005",
            "deliberation",
            "Tarif de l'eau 2027",
            via=KILLED,
        )

        self.citizen_check(genesis, receipts[("ville-valbrune", "2026-ARR-117")])
        self.commune_joins(genesis)
        self.mirror_check(genesis, witness)
        self.open_data(genesis)
        self.summary()

    def commune_joins(self, genesis: Genesis) -> None:
        say("\na commune that runs no node joins as an issuer:")
        commune_key = crypto.generate_key()
        application = {**COMMUNE, "public_key": crypto.public_key_bytes(commune_key)}
        [proposal] = self.client("metropole-valbrune").admit_issuers(
            "metropole-valbrune", [application]
        )
        outcome = self.client("ville-valbrune").vote(proposal, "ville-valbrune", True)
        outcome = self.client("saint-leger-les-vignes").vote(
            proposal, "saint-leger-les-vignes", True
        )
        decided = outcome.get("result", {})
        check(decided.get("status") == "passed", f"the admission did not pass: {outcome}")
        say(
            f"  admitted by 3 of 4 members' votes; it signs from height "
            f"{decided['effective_height']} (it votes in nothing)"
        )
        issuer, reference, kind, title = COMMUNE_ACT
        content = document(issuer, reference, title)
        with Client(self.members["ville-valbrune"].api_url, signer=commune_key) as commune:
            anchored = commune.anchor(
                issuer=issuer,
                reference=reference,
                kind=kind,
                digest=hashlib.sha256(content).digest(),
                act_date="2026-11-28",
                title=title,
                url=_published_at(issuer, reference),
                deliberation=DELIBERATION_DATA[reference],
            )
        check(anchored.get("status") == "committed", f"the commune's act: {anchored}")
        self.anchored.append((issuer, reference, title))
        self.commune_act = (anchored["tx_id"], int(anchored["height"]), content)
        say(
            f"  anchored {issuer}/{reference} in its own name, with its own key, through "
            f"ville-valbrune's API, at height {anchored['height']}"
        )
        [observer] = read_observers(self.work)
        deadline = time.monotonic() + 30
        with Client(observer.api_url) as resident:
            while resident.status()["height"] < anchored["height"]:
                check(time.monotonic() < deadline, "the observer did not follow the chain")
                time.sleep(0.2)
            fetched = resident.receipt(anchored["tx_id"])
        check(fetched is not None, "the observer has no receipt for the commune's act")
        receipt = Receipt.model_validate_json(json.dumps(fetched))
        proven = verify_receipt(receipt, genesis, content, anchors=receipt_anchors())
        right = proven.signer_right
        check(
            right is not None and right.kind is SignerRightKind.ISSUER_KEY,
            f"the receipt does not prove the commune's own key: {right}",
        )
        check(proven.issuer is not None and proven.issuer.name == COMMUNE["name"], "issuer")
        say(
            f"  a resident fetches its receipt from the observer and verifies it offline: "
            f"{COMMUNE['name']} (SIRET {COMMUNE['siret']}), an active issuer, signed with its "
            f"own key, as the state after block {right.proven_at_height} proves"
        )

    def wait_for_cosignature(self, member_id: str, height: int) -> dict[str, Any]:
        """``member_id``'s checkpoint status once its checkpoint covers ``height`` and the
        préfecture's witness cosigned it."""
        deadline = time.monotonic() + COSIGNED_WITHIN_S
        with Client(self.members[member_id].api_url, timeout_s=2) as client:
            while True:
                checkpoint = client.status().get("checkpoint") or {}
                sizes = [w["cosigned_size"] for w in checkpoint.get("witnesses", [])]
                if (checkpoint.get("height") or 0) >= height and sizes == [checkpoint["size"]]:
                    return checkpoint
                check(
                    time.monotonic() < deadline,
                    f"the préfecture's witness did not cosign height {height}: {checkpoint}",
                )
                time.sleep(0.1)

    def mirror_check(self, genesis: Genesis, witness: WitnessProcess) -> None:
        say("\na journalist mirrors the register as static files and checks an act from them:")
        assert self.commune_act is not None
        tx_id, height, content = self.commune_act
        source = "ville-valbrune"
        checkpoint = self.wait_for_cosignature(source, height)
        say(
            f"  the préfecture's witness has cosigned the checkpoint of {checkpoint['size']} "
            f"entries (every transaction up to height {checkpoint['height']}); its key:\n"
            f"    {witness.vkey}"
        )
        mirror = self.work / "mirror"
        self.sceau("export", "tiles", str(mirror), "--api", self.members[source].api_url)
        files = sum(1 for path in mirror.rglob("*") if path.is_file())
        say(
            f"  sceau export tiles {mirror.name}/ --api <{source}>: {files} plain files "
            "(the checkpoint, tiles of hashes, bundles of every transaction)"
        )
        proof_file = self.work / "hautmont-2026-DEL-003.tlog-proof"
        with static_server(mirror) as url:
            say(f"  served as they are by Python's plain http.server at {url}")
            self.sceau("proof", tx_id, "--tiles", url, "--out", str(proof_file))
        say(f"  sceau proof --tiles {url}: {proof_file.name}, from the mirror alone")
        data = proof_file.read_bytes()
        policy = WitnessPolicy.parse([f"{witness.name}={witness.vkey}"], 1)
        try:
            proven = verify_tlog_proof(
                data, genesis, content, anchors=receipt_anchors(), witnesses=policy
            )
        except TlogProofError as error:
            raise DemoFailure(f"the proof from the mirror did not verify: {error}") from None
        signed = proven.checkpoint
        check(proven.document_matches is True, "the proof does not match the document")
        check(signed.witnesses == (witness.name,), f"not cosigned: {signed.witnesses}")
        say("  verified offline, with only the genesis and the préfecture's key:")
        say(
            f"    the act {COMMUNE_ACT[0]}/{COMMUNE_ACT[1]} is entry {proven.index} of the log of "
            "every act, and its document matches"
        )
        say(
            f"    the consortium's checkpoint of {signed.checkpoint.size} entries is signed by "
            f"{len(signed.signers)} of its {signed.members} members, a quorum"
        )
        say(
            "    the préfecture cosigned that checkpoint; as it never cosigns two inconsistent "
            "histories, all who demand its cosignature are shown one and the same history"
        )
        other = NoteVerifierKey.for_private_key(
            "chambre-comptes.localhost/witness",
            KeyType.COSIGNATURE_V1,
            crypto.key_from_seed(sha256(OTHER_WITNESS_SEED)),
        )
        try:
            verify_tlog_proof(
                data,
                genesis,
                content,
                anchors=receipt_anchors(),
                witnesses=WitnessPolicy.parse([f"chambre-comptes={other.vkey}"], 1),
            )
            raise DemoFailure("a policy naming a witness that never cosigned was met")
        except TlogProofError as error:
            check(error.step == "witnesses", f"refused for another reason: {error}")
        say(
            "  the same proof, with a policy demanding the chamber of accounts' cosignature "
            "instead (a witness this devnet does not run): refused (witnesses)"
        )

    def open_data(self, genesis: Genesis) -> None:
        say("\nthe deliberations in force are published as open data (SCDL 'Délibérations'):")
        self.data_folder.mkdir(parents=True, exist_ok=True)
        out = self.data_folder / "deliberations.csv"
        source = self.members["saint-leger-les-vignes"].api_url
        self.sceau(
            "export", "acts", "--format", "scdl-deliberations", "--api", source, "--out", str(out)
        )
        problems = scdl.check_scdl(out.read_bytes())
        check(not problems, f"{out} breaks the SCDL rules: {problems}")
        rows = _csv_rows(out)
        proofs = _csv_rows(out.with_name(out.name + ".proofs.csv"))
        in_force = {"2026-DEL-042", "2026-DEL-051", "2026-DEL-012", "2026-DEL-005", "2026-DEL-003"}
        check({row["DELIB_ID"] for row in rows} == in_force, f"rows: {rows}")
        say(
            f"  {out}: {len(rows)} deliberations in force (2026-DEL-043, withdrawn, is left "
            "out), valid against the schema's rules: 17 columns in order, UTF-8, SIRETs, "
            "ACTES subjects, dates, vote counts, préfecture codes"
        )
        titles = {(issuer, reference): title for issuer, reference, title in self.anchored}
        with Client(source) as reader:
            for row in proofs:
                fetched = reader.receipt(row["tx_id"], with_status=True)
                check(fetched is not None, f"no receipt for {row['tx_id']}")
                receipt = Receipt.model_validate_json(json.dumps(fetched))
                content = document(
                    row["issuer"], row["DELIB_ID"], titles[(row["issuer"], row["DELIB_ID"])]
                )
                proven = verify_receipt(receipt, genesis, content, anchors=receipt_anchors())
                check(
                    proven.act is not None and proven.act["reference"] == row["DELIB_ID"],
                    f"the receipt of {row['tx_id']} does not anchor {row['DELIB_ID']}",
                )
        say(
            f"  {out.name}.proofs.csv: each row's anchoring transaction; all {len(proofs)} "
            "receipts verified offline from the genesis, with their documents"
        )

    def sceau(self, *arguments: str) -> str:
        """Run a ``sceau`` command as a user would type it, in this process (a new process
        would cost a second of start-up); its output, or a DemoFailure with its error."""
        from node.tools.cli import main as sceau_main

        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = sceau_main(list(arguments))
        check(status == 0, f"sceau {arguments[0]} {arguments[1]}: {err.getvalue().strip()}")
        return out.getvalue()

    def citizen_check(self, genesis: Genesis, outcome: dict[str, Any]) -> None:
        say("\na citizen checks a document against the register:")
        issuer, reference, title = "ville-valbrune", "2026-ARR-117", ACTS[1][3]
        genuine = hashlib.sha256(document(issuer, reference, title)).digest()
        altered = hashlib.sha256(document(issuer, reference, title) + b" ").digest()
        reader = Client(self.members["saint-leger-les-vignes"].api_url)
        try:
            found = reader.acts_by_digest(genuine)
            check(len(found) == 1 and found[0]["reference"] == reference, f"lookup: {found}")
            say(f"  genuine copy: authentic act {issuer}/{reference}, status {found[0]['status']}")
            try:
                reader.acts_by_digest(altered)
                raise DemoFailure("an altered copy was found")
            except ApiError as error:
                check(error.status == 404, f"altered copy: {error}")
                say("  copy altered by one byte: no such act")
        finally:
            reader.close()
        receipt = Receipt.model_validate_json(json.dumps(outcome["receipt"]))
        proven = verify_receipt(
            receipt, genesis, document(issuer, reference, title), anchors=receipt_anchors()
        )
        check(proven.document_matches is True, "the receipt does not match the document")
        say(
            f"  its receipt: included in block {proven.height}, certified by "
            f"{len(proven.signers)} of {proven.members} members, the document matches — "
            "verified offline from the genesis"
        )
        try:
            altered_copy = document(issuer, reference, title) + b" "
            verify_receipt(receipt, genesis, altered_copy, anchors=receipt_anchors())
            raise DemoFailure("the receipt verified an altered document")
        except ReceiptError as error:
            say(f"  the same receipt with the altered copy: refused ({error.step})")
        self.browser_page(outcome, document(issuer, reference, title), reference)

    def browser_page(self, outcome: dict[str, Any], content: bytes, reference: str) -> None:
        """Leave the reader what a resident uses without Python: the verification page as one
        offline file (``sceau page``), with a document and its receipt beside it."""
        self.data_folder.mkdir(parents=True, exist_ok=True)
        page = self.data_folder / "verify.html"
        self.sceau(
            "page", "--genesis", str(self.work / "genesis.json"), "--out", str(page), "--force"
        )
        (self.data_folder / f"{reference}.txt").write_bytes(content)
        (self.data_folder / f"{reference}.receipt.json").write_text(
            json.dumps(outcome["receipt"], indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        [observer] = read_observers(self.work)
        say(
            f"  the same check in a browser: every node serves the verification page at / "
            f"(while the demo runs, {observer.api_url}/ among them); {page} is that page as one "
            f"offline file — open it and drop "
            f"{reference}.txt with {reference}.receipt.json: the browser verifies the receipt "
            "itself, from the genesis embedded in the page"
        )

    def summary(self) -> None:
        # The last block may still be on its way to a member (each commits once it holds the
        # certificate): wait, within a bound, for every member to reach the same height.
        deadline = time.monotonic() + 15
        heights = self.heights()
        while len(set(heights.values())) != 1 and time.monotonic() < deadline:
            time.sleep(0.2)
            heights = self.heights()
        say("\nsummary")
        say("  heights: " + ", ".join(f"{member}={height}" for member, height in heights.items()))
        check(len(set(heights.values())) == 1, f"nodes disagree on the height: {heights}")
        reader = Client(self.members["metropole-valbrune"].api_url)
        try:
            for issuer, reference, title in self.anchored:
                act = reader.act(issuer, reference)
                say(f"  {issuer + '/' + reference:<40} {act['status']:<10} {title}")
        finally:
            reader.close()


def _published_at(issuer: str, reference: str) -> str:
    return f"https://actes.valbrunois.example/{issuer}/{reference}.pdf"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # one line per request would drown the demo's story


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """Serve ``folder`` with the standard library's static file server on a free loopback
    port (bound before its URL is given: no race), in a thread; its base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="mirror", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m node.tools.demo", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it afterwards")
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=DATA_FOLDER,
        help=f"where to write the open data it publishes (default ./{DATA_FOLDER})",
    )
    arguments = parser.parse_args(argv)
    work = Path(arguments.keep) if arguments.keep else Path(tempfile.mkdtemp(prefix="sceau-demo-"))
    demo = Demo(work, Path(arguments.data))
    status = 0
    try:
        demo.run()
        say("\ndemo finished: every check held")
    except DemoFailure as failure:
        say(f"\nDEMO FAILED: {failure}")
        status = 1
    finally:
        demo.close()
        if (work / "devnet.json").exists():
            devnet_down(work)
        if not arguments.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            say(f"(kept {work})")
    return status


if __name__ == "__main__":
    sys.exit(main())
