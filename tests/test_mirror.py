"""A static mirror of the log of every act, end to end, with real processes.

A four-member devnet (format 2) commits three acts; its members' checkpoint is kept by the
store of a stopped member (signed here with the members' own keys, as their nodes sign it);
``sceau export tiles`` writes the mirror from that data directory; a plain static file server
(``python -m http.server``) serves it; ``sceau proof --tiles`` makes a ``.tlog-proof`` from the
mirror alone and ``sceau verify`` checks it from the genesis with a witness policy, the
witness's cosignature having been added to the exported checkpoint here with
``ledger.note.cosign`` (a witness process cosigns it in production, docs/witnesses.md).
"""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from ledger import crypto, tlog
from ledger.client import Client
from ledger.model import quorum_size, sha256
from ledger.note import (
    Checkpoint,
    KeyType,
    Note,
    NoteVerifierKey,
    TlogProof,
    cosign,
    origin_for,
    sign_note,
)
from ledger.store import ChainStore
from node.tools.devnet import devnet_down, devnet_up
from node.tools.launch import read_genesis

SCEAU = [sys.executable, "-m", "node.tools.cli"]
WITNESS = "witness.example.org/prefecture"
WITNESS_KEY = crypto.key_from_seed(sha256(b"test-mirror/witness"))
COMMAND_TIMEOUT_S = 30.0


def sceau(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SCEAU, *arguments], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while True:
        try:
            urllib.request.urlopen(f"{url}/checkpoint", timeout=1).read()
            return server, url
        except OSError:
            if time.monotonic() > deadline:
                server.kill()
                raise
            time.sleep(0.05)


def test_a_proof_made_from_a_static_mirror_verifies_with_a_witness_policy(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "devnet"
    processes = devnet_up(folder, 4)
    try:
        member = processes[0]
        with Client(member.api_url, signer=crypto.load_private_key(member.key_file)) as client:
            answers = [
                client.anchor(
                    issuer=member.member_id,
                    reference=f"2026-DEL-{number:03d}",
                    kind="deliberation",
                    digest=hashlib.sha256(b"act %d" % number).digest(),
                    act_date="2026-12-01",
                    title=f"Délibération {number}",
                    wait_s=10,
                )
                for number in range(3)
            ]
        assert all(answer["status"] == "committed" for answer in answers)
        keys = {
            process.member_id: crypto.load_private_key(process.key_file) for process in processes
        }
    finally:
        devnet_down(folder)
    genesis_file = next(folder.rglob("genesis.json"))
    genesis = read_genesis(genesis_file)
    data_dir = Path(member.config_file).parent / "data"
    store = ChainStore.open(data_dir / "chain")
    try:
        header = store.block(store.height).header
        assert header.log_size == store.log_size >= 3
        origin = origin_for(genesis.chain_id)
        text = Checkpoint(origin, header.log_size, header.log_root).text()
        signers = sorted(keys)[: quorum_size(len(keys))]
        store.save_checkpoint(
            Note(
                text, tuple(sign_note(text, origin, keys[signer]) for signer in signers)
            ).to_bytes()
        )
    finally:
        store.close()

    mirror = tmp_path / "mirror"
    exported = sceau("export", "tiles", str(mirror), "--data-dir", str(data_dir))
    assert exported.returncode == 0, exported.stderr
    size = header.log_size
    assert (mirror / tlog.tile_path(0, 0, size)).stat().st_size == 32 * size
    assert (mirror / tlog.tile_path(None, 0, size)).is_file()
    again = sceau("export", "tiles", str(mirror), "--data-dir", str(data_dir))
    assert again.returncode == 0, again.stderr
    note = Note.parse((mirror / "checkpoint").read_bytes())
    cosigned = note.with_signatures(cosign(note.text, WITNESS, WITNESS_KEY, int(time.time())))
    (mirror / "checkpoint").write_bytes(cosigned.to_bytes())

    server, url = _serve(mirror)
    try:
        tx_id = answers[1]["tx_id"]
        proof_file = tmp_path / "act.tlog-proof"
        made = sceau("proof", tx_id, "--tiles", url, "--out", str(proof_file))
        assert made.returncode == 0, made.stderr
    finally:
        server.terminate()
        server.wait(timeout=10)
    proof = TlogProof.parse(proof_file.read_bytes())
    assert proof.checkpoint == cosigned
    vkey = NoteVerifierKey.for_private_key(WITNESS, KeyType.COSIGNATURE_V1, WITNESS_KEY).vkey
    policy = ["--witness", f"prefecture={vkey}", "--witness-quorum", "1"]
    verified = sceau("verify", str(proof_file), "--genesis", str(genesis_file), *policy)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("VERIFIED") and f"entry {proof.index}" in verified.stdout
    assert "prefecture cosigned it (1 of the 1 named, 1 needed)" in verified.stdout
    other = NoteVerifierKey.for_private_key(
        "crc.example.org", KeyType.COSIGNATURE_V1, crypto.key_from_seed(sha256(b"crc"))
    ).vkey
    refused = sceau(
        "verify", str(proof_file), "--genesis", str(genesis_file), "--witness", f"crc={other}"
    )
    assert refused.returncode == 1
    assert "NOT VERIFIED — witnesses: 0 of the witnesses crc cosigned" in refused.stderr
