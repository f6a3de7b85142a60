"""Specification: the split-view attack, and what a witness stops (docs/witnesses.md).

A real devnet of four members (processes, sockets, LevelDB; header format 2) pushes its
checkpoints to one real ``sceau witness run`` process, configured with the devnet's genesis.
Two genuine acts are anchored; the witness cosigns the checkpoint that covers the second one,
the deliberation 2026-DEL-042 of the Métropole.

Then three members — a quorum of four — collude. With their own ``node.pem`` they certify a
second history from the height of that act: the genuine chain up to the block before it
(fetched from a member's API as a bundle), then a block anchoring *another document* under the
same reference, then two more blocks, each built by the real engine and certified by their
commit votes; they sign its checkpoint with their note keys (tests/forgery.py). Every check
that counts member signatures accepts that history, since a quorum did sign it:

* ``sceau audit`` of the forged chain's bundle passes from the genesis alone; only an auditor
  holding the genuine bundle (``--since``) sees that history was rewritten;
* the witness refuses it, whatever old size they claim, keeps the evidence, and still stands
  at the genuine size;
* ``sceau verify`` without a witness policy accepts the forged act's receipt and its
  ``.tlog-proof`` — the split-view danger, asserted here so that it stays documented;
* with ``--witness NAME=VKEY --witness-quorum 1`` both are refused, naming the witness policy,
  while the genuine act's receipt and ``.tlog-proof`` (from a member's API) are accepted;
* attaching the genuine, cosigned checkpoint to the forged act does not help: the act is not
  in that tree.

What a witness does not decide is which history it sees first: a fork after the size it
cosigned, shown to it before the genuine continuation, is the one it keeps; the honest
members' pushes are then refused, which their status shows (the last test).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from contracts.registry import receipt_anchors
from ledger import crypto, tlog
from ledger.client import Client
from ledger.model import Transaction
from ledger.note import (
    AddCheckpointRequest,
    Checkpoint,
    Note,
    NoteSignature,
    NoteVerifierKey,
    verify_note,
)
from ledger.receipt import LogInclusion, Receipt, build_receipt
from ledger.tlogproof import build_tlog_proof, proof_from_parts
from node.tools.cli import main as sceau_main
from node.tools.devnet import MemberProcess, _free_ports, devnet_down, devnet_up
from tests.forgery import ForgedHistory, document_of

DEADLINE_S = 20.0
WITNESS_NAME = "prefecture.example/witness"
WITNESS_LABEL = "prefecture"
METROPOLE, VILLE, SAINT_LEGER, SYNDICAT = (
    "metropole-valbrune",
    "ville-valbrune",
    "saint-leger-les-vignes",
    "syndicat-eaux-valbrunois",
)
COLLUDERS = (METROPOLE, VILLE, SAINT_LEGER)
"""Three of four members: a quorum. The Syndicat des eaux stays honest."""
REFERENCE = "2026-DEL-042"
GENUINE_DOCUMENT = document_of("Délibération 2026-DEL-042 : budget primitif 2027, adopté")
FORGED_DOCUMENT = document_of("Délibération 2026-DEL-042 : cession du parc des Aubiers, 1 euro")
T = TypeVar("T")


def _wait_for(condition: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            value = condition()
            if value:
                return value
        time.sleep(0.1)
    raise AssertionError(f"not within {DEADLINE_S} s: {what}")


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read()


def _post(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url, data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def sceau(*arguments: str) -> tuple[int, str, str]:
    """Run a ``sceau`` command in this process: its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = sceau_main(list(arguments))
    return status, out.getvalue(), err.getvalue()


@dataclasses.dataclass
class Attack:
    """The devnet, its witness, the genuine act and the colluders' forged history."""

    directory: Path
    members: dict[str, MemberProcess]
    genesis_file: Path
    witness_dir: Path
    witness_url: str
    witness_vkey: NoteVerifierKey
    genuine_tx: str
    genuine_height: int
    cosigned_size: int
    """The genuine log's size at the genuine act's block: what the witness cosigned."""
    forged: ForgedHistory
    forged_act: Transaction
    forged_same_size: Note
    """The forged checkpoint of the forged block that replaces the genuine act's (same size)."""
    forged_tip: Note
    """The forged checkpoint of the forged tip, larger than what the witness cosigned."""

    @property
    def policy(self) -> tuple[str, ...]:
        return ("--witness", f"{WITNESS_LABEL}={self.witness_vkey.vkey}", "--witness-quorum", "1")

    def verify(self, path: Path, *options: str) -> tuple[int, str, str]:
        return sceau("verify", str(path), "--genesis", str(self.genesis_file), *options)

    def witness_size(self) -> int:
        (log,) = json.loads(_get(self.witness_url + "/"))["logs"]
        return int(log["size"])


def _anchor(member: MemberProcess, reference: str, document: bytes) -> dict[str, Any]:
    """Anchor ``document`` as ``member``'s act through its own node; the committed outcome."""
    with Client(member.api_url, signer=crypto.load_private_key(member.key_file)) as client:
        outcome = client.anchor(
            issuer=member.member_id,
            reference=reference,
            kind="deliberation",
            digest=hashlib.sha256(document).digest(),
            act_date="2026-11-28",
            title=f"Délibération {reference}",
            wait_s=DEADLINE_S,
        )
    assert outcome["status"] == "committed", outcome
    return outcome


def _start_witness(directory: Path, genesis_file: Path, log: Path) -> subprocess.Popen[bytes]:
    status, _, err = sceau(
        "witness", "add-log", "--dir", str(directory), "--genesis", str(genesis_file)
    )
    assert status == 0, err
    with open(log, "wb") as stderr:
        witness = subprocess.Popen(
            [sys.executable, "-m", "node.tools.cli", "witness", "run", "--dir", str(directory)],
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    assert witness.stdout is not None
    assert witness.stdout.readline().startswith(b"sceau witness: listening on ")
    return witness


def _cosigned_checkpoint(
    members: dict[str, MemberProcess], vkey: NoteVerifierKey, size: int
) -> Note | None:
    """The honest member's kept checkpoint once it is of ``size`` and cosigned by the witness."""
    member = members[SYNDICAT]
    status = json.loads(_get(member.api_url + "/v1/status"))
    (witness,) = status["checkpoint"]["witnesses"]
    if witness["cosigned_size"] != size:
        return None
    note = Note.parse(_get(member.api_url + "/v1/log/checkpoint"))
    if Checkpoint.from_note(note).size != size or not verify_note(note, [vkey]):
        return None
    return note


@pytest.fixture(scope="module")
def attack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Attack]:
    directory = tmp_path_factory.mktemp("split-view")
    (witness_port,) = _free_ports(1)
    witness_dir = directory / "witness"
    status, out, err = sceau(
        "witness",
        "init",
        "--name",
        WITNESS_NAME,
        "--dir",
        str(witness_dir),
        "--listen",
        f"127.0.0.1:{witness_port}",
    )
    assert status == 0, err
    vkey = NoteVerifierKey.parse_vkey(out.split()[0])
    witness_url = f"http://127.0.0.1:{witness_port}"
    net = directory / "net"
    witness: subprocess.Popen[bytes] | None = None
    forged: ForgedHistory | None = None
    try:
        settings = {
            "name": WITNESS_LABEL,
            "url": witness_url,
            "vkey": vkey.vkey,
            "backoff_max_ms": 500,
        }
        members = {
            m.member_id: m for m in devnet_up(net, 4, extra_config={"witnesses": [settings]})
        }
        genesis_file = net / "genesis.json"
        witness = _start_witness(witness_dir, genesis_file, directory / "witness.log")
        # 1. The genuine history: an act of the Ville, then the Métropole's deliberation.
        _anchor(members[VILLE], "2026-DEL-041", document_of("Délibération 2026-DEL-041"))
        genuine = _anchor(members[METROPOLE], REFERENCE, GENUINE_DOCUMENT)
        height = int(genuine["height"])
        header = json.loads(_get(f"{members[SYNDICAT].api_url}/v1/blocks/{height}"))["header"]
        size = int(header["log_size"])
        _wait_for(lambda: _cosigned_checkpoint(members, vkey, size), "the witness's cosignature")
        # 2. The colluders' second history from the same height.
        bundle = _get(f"{members[SYNDICAT].api_url}/v1/bundle?from=0&count={height}")
        keys = {member: crypto.load_private_key(members[member].key_file) for member in COLLUDERS}
        forged = ForgedHistory.from_bundle(directory / "forged", bundle, keys)
        assert forged.store.height == height - 1
        forged_act = forged.anchor(METROPOLE, REFERENCE, FORGED_DOCUMENT)
        forged.certify(forged_act)
        same_size = forged.checkpoint()
        forged.certify(forged.anchor(VILLE, "2026-DEL-043", document_of("2026-DEL-043")))
        forged.certify(forged.anchor(SAINT_LEGER, "2026-DEL-044", document_of("2026-DEL-044")))
        tip = forged.checkpoint()
        yield Attack(
            directory=directory,
            members=members,
            genesis_file=genesis_file,
            witness_dir=witness_dir,
            witness_url=witness_url,
            witness_vkey=vkey,
            genuine_tx=genuine["tx_id"],
            genuine_height=height,
            cosigned_size=size,
            forged=forged,
            forged_act=forged_act,
            forged_same_size=same_size,
            forged_tip=tip,
        )
    finally:
        if forged is not None:
            forged.store.close()
        if witness is not None:
            witness.terminate()
            witness.wait(timeout=10)
        if (net / "devnet.json").exists():
            devnet_down(net)


# --- 1. the forged history is a real one: a quorum certified it -------------------------------


def test_the_colluders_certify_a_larger_log_from_the_same_height(attack: Attack) -> None:
    store = attack.forged.store
    assert store.height == attack.genuine_height + 2
    forged_block = store.block(attack.genuine_height)
    assert forged_block.transactions == (attack.forged_act,)
    genuine = json.loads(
        _get(f"{attack.members[SYNDICAT].api_url}/v1/blocks/{attack.genuine_height}")
    )
    assert forged_block.header.prev_hash.hex() == genuine["header"]["prev_hash"]
    assert forged_block.block_hash.hex() != genuine["block_hash"]
    assert forged_block.header.log_size == attack.cosigned_size
    assert Checkpoint.from_note(attack.forged_tip).size == attack.cosigned_size + 2
    certificate = store.certificate(attack.genuine_height)
    assert [member for member, _ in certificate.signatures] == sorted(COLLUDERS)


def test_the_forged_chain_passes_an_audit_unless_compared_with_the_genuine_one(
    attack: Attack, tmp_path: Path
) -> None:
    """A quorum signed every forged block: from the genesis alone, the chain holds together.
    Only an auditor who kept the genuine chain sees that it was rewritten."""
    forged = tmp_path / "forged.bundle"
    attack.forged.write_bundle(forged)
    genesis = str(attack.genesis_file)
    status, out, err = sceau("audit", str(forged), "--genesis", genesis, "--workers", "1")
    assert status == 0, out + err
    genuine = tmp_path / "genuine.bundle"
    genuine.write_bytes(
        _get(f"{attack.members[SYNDICAT].api_url}/v1/bundle?count={attack.genuine_height + 1}")
    )
    status, out, err = sceau(
        "audit", str(forged), "--genesis", genesis, "--since", str(genuine), "--workers", "1"
    )
    assert status == 1, out + err
    assert f"height {attack.genuine_height}: block_hash" in err and "history was rewritten" in err


# --- 2. the witness refuses it, keeps the evidence, stays where it was -------------------------


def test_the_witness_refuses_the_forged_checkpoints_and_keeps_the_evidence(attack: Attack) -> None:
    forged, url = attack.forged, attack.witness_url + "/add-checkpoint"
    size = attack.cosigned_size
    assert attack.witness_size() == size
    # From the size it cosigned, with the consistency proof the forged log gives: that proof
    # leads from the forged log's first `size` entries, whose root is not the one cosigned.
    status, body = _post(url, forged.add_checkpoint_request(attack.forged_tip, size))
    assert status == 422, body
    # As if the witness had never seen the log: it answers with the size it holds.
    assert _post(url, forged.add_checkpoint_request(attack.forged_tip, 0)) == (409, f"{size}\n")
    # The forged block's own checkpoint: the very size cosigned, another root.
    status, body = _post(url, forged.add_checkpoint_request(attack.forged_same_size, size))
    assert status == 409 and "another root" in body
    assert attack.witness_size() == size
    evidence = sorted(path.name for path in (attack.witness_dir / "evidence").iterdir())
    assert len(evidence) == 2
    assert any("proof_invalid" in name for name in evidence)
    assert any("root_mismatch" in name for name in evidence)
    metrics = _get(attack.witness_url + "/metrics").decode()
    assert "sceau_witness_evidence_recorded_total 2" in metrics
    # The genuine history is still the witness's: its checkpoint, as the members push it
    # (their signatures only), is cosigned again.
    genuine = Note.parse(_get(attack.members[SYNDICAT].api_url + "/v1/log/checkpoint"))
    signed = Note(genuine.text, tuple(s for s in genuine.signatures if s.name != WITNESS_NAME))
    status, body = _post(url, AddCheckpointRequest(size, (), signed).to_bytes())
    assert status == 200 and body.startswith(f"— {WITNESS_NAME} "), body


# --- 3. a verifier: without a policy, the danger; with one, the forged act is refused ----------


def test_without_a_witness_policy_the_forged_receipt_verifies(
    attack: Attack, tmp_path: Path
) -> None:
    """The split-view danger: a quorum's signatures are all a verifier without a policy asks."""
    path = forged_receipt(attack, tmp_path)
    document = tmp_path / "forged.pdf"
    document.write_bytes(FORGED_DOCUMENT)
    status, out, err = attack.verify(path, "--document", str(document))
    assert status == 0, err
    assert f"{METROPOLE}/{REFERENCE}" in out and "matches the anchored digest" in out


def test_with_a_witness_policy_the_forged_receipt_is_refused(
    attack: Attack, tmp_path: Path
) -> None:
    status, _, err = attack.verify(forged_receipt(attack, tmp_path), *attack.policy)
    assert status == 1
    assert "NOT VERIFIED — witnesses:" in err and WITNESS_LABEL in err and "policy" in err


def test_with_a_witness_policy_the_genuine_receipt_verifies(attack: Attack, tmp_path: Path) -> None:
    path = tmp_path / "genuine.json"
    api = attack.members[SYNDICAT].api_url
    status, _, err = sceau("receipt", attack.genuine_tx, "--api", api, "--out", str(path))
    assert status == 0, err
    document = tmp_path / "genuine.pdf"
    document.write_bytes(GENUINE_DOCUMENT)
    status, out, err = attack.verify(path, "--document", str(document), *attack.policy)
    assert status == 0, err
    assert f"witnesses: {WITNESS_LABEL} cosigned it" in out


def test_the_same_holds_for_tlog_proofs(attack: Attack, tmp_path: Path) -> None:
    forged = tmp_path / "forged.tlog-proof"
    index = attack.cosigned_size - 1
    forged.write_bytes(
        build_tlog_proof(attack.forged.store, index, attack.forged_tip.to_bytes()).to_bytes()
    )
    status, out, err = attack.verify(forged)
    assert status == 0 and f"{METROPOLE}/{REFERENCE}" in out, err
    status, _, err = attack.verify(forged, *attack.policy)
    assert status == 1 and "NOT VERIFIED — witnesses:" in err and WITNESS_LABEL in err
    genuine = tmp_path / "genuine.tlog-proof"
    api = attack.members[SYNDICAT].api_url
    status, _, err = sceau("proof", attack.genuine_tx, "--api", api, "--out", str(genuine))
    assert status == 0, err
    status, out, err = attack.verify(genuine, *attack.policy)
    assert status == 0 and f"witnesses: {WITNESS_LABEL} cosigned it" in out, err


# --- 4. a stale, genuine checkpoint does not cover the forged act ------------------------------


def test_the_genuine_cosigned_checkpoint_does_not_cover_the_forged_act(
    attack: Attack, tmp_path: Path
) -> None:
    genuine = _cosigned_checkpoint(attack.members, attack.witness_vkey, attack.cosigned_size)
    assert genuine is not None
    index = attack.cosigned_size - 1
    forged_path = tuple(
        tlog.inclusion_proof(index, attack.cosigned_size, attack.forged.store.log_hash)
    )
    receipt = Receipt.model_validate_json(forged_receipt(attack, tmp_path).read_bytes())
    assert receipt.log is not None and receipt.log.index == index
    # Whatever path the attacker attaches — the forged tree's, or the genuine act's own — the
    # forged act is not a leaf of the tree the witness cosigned.
    for path in (forged_path, genuine_inclusion(attack, tmp_path)):
        stale = receipt.model_copy(
            update={
                "log": LogInclusion(
                    index=index,
                    inclusion_proof=path,
                    checkpoint=genuine.to_bytes().decode(),
                    member_changes=(),
                )
            }
        )
        file = tmp_path / "stale.json"
        file.write_text(stale.model_dump_json())
        status, _, err = attack.verify(file, *attack.policy)
        assert status == 1 and "NOT VERIFIED — log:" in err and "not leaf" in err, err
        proof = tmp_path / "stale.tlog-proof"
        proof.write_bytes(
            proof_from_parts(attack.forged_act.encoded, index, path, genuine.to_bytes()).to_bytes()
        )
        status, _, err = attack.verify(proof, *attack.policy)
        assert status == 1 and "NOT VERIFIED — inclusion:" in err, err


# --- helpers ------------------------------------------------------------------------------------


def forged_receipt(attack: Attack, folder: Path) -> Path:
    """The forged act's receipt from the forged store, with the forged tip's checkpoint."""
    receipt = build_receipt(attack.forged.store, attack.forged_act.tx_id, anchors=receipt_anchors())
    assert receipt is not None and receipt.log is not None
    assert Checkpoint.from_note(
        Note.parse(receipt.log.checkpoint.encode())
    ) == Checkpoint.from_note(attack.forged_tip)
    path = folder / "forged.json"
    path.write_text(receipt.model_dump_json())
    return path


def genuine_inclusion(attack: Attack, folder: Path) -> tuple[bytes, ...]:
    """The genuine act's inclusion path under the cosigned checkpoint (from its receipt)."""
    path = folder / "genuine-for-path.json"
    api = attack.members[SYNDICAT].api_url
    status, _, err = sceau(
        "receipt", attack.genuine_tx, "--api", api, "--out", str(path), "--force"
    )
    assert status == 0, err
    receipt = Receipt.model_validate_json(path.read_bytes())
    assert receipt.log is not None and receipt.log.index == attack.cosigned_size - 1
    return receipt.log.inclusion_proof


# --- 5. what a witness does not decide: which history it sees first ---------------------------
# This test moves the witness on (to a history of the colluders): it comes last in this file,
# and the tests above never run after it (pytest keeps the file's order).


def test_a_fork_shown_to_the_witness_first_is_the_history_it_keeps(
    attack: Attack, tmp_path: Path
) -> None:
    """Beyond the size it cosigned, a witness cosigns whichever history reaches it first. If the
    colluders' does, the genuine continuation is the one refused — and the honest members'
    nodes say so in their status."""
    size, api = attack.cosigned_size, attack.members[SYNDICAT].api_url
    url = attack.witness_url + "/add-checkpoint"
    keys = {
        member: crypto.load_private_key(attack.members[member].key_file) for member in COLLUDERS
    }
    bundle = _get(f"{api}/v1/bundle?count={attack.genuine_height + 1}")
    fork = ForgedHistory.from_bundle(tmp_path / "fork", bundle, keys)
    evidence = len(list((attack.witness_dir / "evidence").iterdir()))
    try:
        act = fork.anchor(VILLE, "2026-DEL-050", FORGED_DOCUMENT)
        fork.certify(act)
        note = fork.checkpoint()
        status, line = _post(url, fork.add_checkpoint_request(note, size))
        assert status == 200, line
        assert attack.witness_size() == size + 1
        fork.store.save_checkpoint(
            note.with_signatures(NoteSignature.parse_line(line.strip())).to_bytes()
        )
        receipt = build_receipt(fork.store, act.tx_id, anchors=receipt_anchors())
        assert receipt is not None
        forged = tmp_path / "forked.json"
        forged.write_text(receipt.model_dump_json())
        status, out, err = attack.verify(forged, *attack.policy)
        assert status == 0 and f"witnesses: {WITNESS_LABEL} cosigned it" in out, err
    finally:
        fork.store.close()
    genuine = _anchor(attack.members[VILLE], "2026-DEL-050", GENUINE_DOCUMENT)

    def refused() -> dict[str, Any] | None:
        status = json.loads(_get(api + "/v1/status"))["checkpoint"]
        (witness,) = status["witnesses"]
        return witness if status["size"] == size + 1 and witness["last_error"] else None

    witness = _wait_for(refused, "the honest member's push refused")
    assert witness["cosigned_size"] == size
    assert witness["last_error"].endswith(f"size {size + 1} was cosigned with another root")
    assert len(list((attack.witness_dir / "evidence").iterdir())) > evidence
    path = tmp_path / "genuine.json"
    status, _, err = sceau("receipt", genuine["tx_id"], "--api", api, "--out", str(path))
    assert status == 0, err
    status, _, err = attack.verify(path, *attack.policy)
    assert status == 1 and "NOT VERIFIED — witnesses:" in err, err
