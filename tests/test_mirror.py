"""Specification: a static mirror of the log of every act is enough to verify an act, with a
witness policy — live, with real processes, and nothing signed by the test.

``sceau devnet up --witness prefecture`` (:func:`devnet_up` with ``witnesses``) starts four
members and a real ``sceau witness run`` process that every member pushes its
checkpoints to. Three acts are anchored; once a member's status shows that the witness
cosigned a checkpoint covering them, ``sceau export tiles DIR --api URL`` writes the mirror
from that member, a plain static file server (``python -m http.server``) serves it, ``sceau
proof --tiles`` makes a ``.tlog-proof`` from the mirror alone and ``sceau verify`` checks it
offline from the genesis: verified with the préfecture's key in the policy, refused with
another witness's key. ``devnet down`` stops the witness with the members.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ledger import crypto, tlog
from ledger.client import Client
from ledger.model import sha256
from ledger.note import (
    Checkpoint,
    KeyType,
    Note,
    NoteVerifierKey,
    TlogProof,
    verify_note,
)
from node.tools.cli import main
from node.tools.devnet import (
    DevnetError,
    MemberProcess,
    WitnessProcess,
    devnet_down,
    devnet_stop,
    devnet_up,
    read_devnet,
    read_witnesses,
    write_devnet,
)

SCEAU = [sys.executable, "-m", "node.tools.cli"]
COMMAND_TIMEOUT_S = 30.0
COSIGNED_WITHIN_S = 15.0


def sceau(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``sceau`` in a process of its own."""
    return subprocess.run(
        [*SCEAU, *arguments], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S
    )


def sceau_here(*arguments: str) -> subprocess.CompletedProcess[str]:
    """``sceau`` in this process (the same code; a CLI start costs a second of a busy CPU)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(arguments))
    return subprocess.CompletedProcess(arguments, status, out.getvalue(), err.getvalue())


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as answer:
        return bytes(answer.read())


def _get_json(url: str) -> Any:
    return json.loads(_get(url))


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def _static_server(folder: Path) -> Any:
    """``python -m http.server`` on ``folder``: a plain static host, nothing of sceau's."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        cwd=folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                _get(f"{url}/checkpoint")
                break
            except OSError:
                assert time.monotonic() < deadline, "the static server did not start"
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


def _wait_until_cosigned(member: MemberProcess, vkey: NoteVerifierKey, size: int) -> Note:
    """The member's kept checkpoint once its status says the witness cosigned it, it covers
    ``size`` entries, and it carries the witness's valid cosignature."""
    deadline = time.monotonic() + COSIGNED_WITHIN_S
    while True:
        checkpoint = _get_json(f"{member.api_url}/v1/status")["checkpoint"] or {}
        cosigned = [w["cosigned_size"] for w in checkpoint.get("witnesses", [])]
        if cosigned and cosigned[0] is not None and cosigned[0] == checkpoint["size"] >= size:
            note = Note.parse(_get(f"{member.api_url}/v1/log/checkpoint"))
            if Checkpoint.from_note(note).size >= size and verify_note(note, [vkey]):
                return note
        assert time.monotonic() < deadline, f"not cosigned within {COSIGNED_WITHIN_S} s"
        time.sleep(0.1)


def _anchor_three(member: MemberProcess) -> list[dict[str, Any]]:
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
    return answers


def test_a_proof_made_from_a_static_mirror_verifies_with_the_devnet_witness_policy(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "devnet"
    try:
        started = sceau_here("devnet", "up", "--dir", str(folder), "--witness", "prefecture")
        assert started.returncode == 0, started.stderr
        member = read_devnet(folder)[0]
        (witness,) = read_witnesses(folder)
        assert witness.name == "prefecture" and witness.directory == str(
            folder.resolve() / "witness-prefecture"
        )
        assert f"  --witness prefecture={witness.vkey}\n" in started.stdout
        vkey = NoteVerifierKey.parse_vkey(witness.vkey)
        assert vkey.key_type is KeyType.COSIGNATURE_V1
        assert f'vkey = "{witness.vkey}"' in Path(member.config_file).read_text()

        answers = _anchor_three(member)
        last = max(int(answer["height"]) for answer in answers)
        covering = _get_json(f"{member.api_url}/v1/blocks/{last}")["header"]["log_size"]
        kept = _wait_until_cosigned(member, vkey, covering)

        mirror = tmp_path / "mirror"
        exported = sceau("export", "tiles", str(mirror), "--api", member.api_url)
        assert exported.returncode == 0, exported.stderr
        size = Checkpoint.from_note(kept).size
        assert (mirror / tlog.tile_path(0, 0, size)).stat().st_size == 32 * size
        assert (mirror / tlog.tile_path(None, 0, size)).is_file()
        mirrored = Note.parse((mirror / "checkpoint").read_bytes())
        assert mirrored == kept and verify_note(mirrored, [vkey])
        again = sceau_here("export", "tiles", str(mirror), "--api", member.api_url)
        assert again.returncode == 0, again.stderr

        stopped = sceau_here("devnet", "down", "--dir", str(folder))
        assert stopped.returncode == 0, stopped.stderr
        assert "stopped 4 members" in stopped.stdout
        assert "stopped 1 witnesses: prefecture" in stopped.stdout
        assert not read_witnesses(folder)
    finally:
        if (folder / "devnet.json").exists():
            devnet_down(folder)

    proof_file = tmp_path / "act.tlog-proof"
    with _static_server(mirror) as url:
        made = sceau("proof", answers[1]["tx_id"], "--tiles", url, "--out", str(proof_file))
    assert made.returncode == 0, made.stderr
    proof = TlogProof.parse(proof_file.read_bytes())
    assert proof.checkpoint == kept

    genesis_file = str(folder / "genesis.json")
    policy = ["--witness", f"prefecture={witness.vkey}", "--witness-quorum", "1"]
    verified = sceau_here("verify", str(proof_file), "--genesis", genesis_file, *policy)
    assert verified.returncode == 0, verified.stderr
    assert verified.stdout.startswith("VERIFIED") and f"entry {proof.index}" in verified.stdout
    assert "prefecture cosigned it (1 of the 1 named, 1 needed)" in verified.stdout

    other = NoteVerifierKey.for_private_key(
        "crc.example.org", KeyType.COSIGNATURE_V1, crypto.key_from_seed(sha256(b"crc"))
    ).vkey
    refused = sceau_here(
        "verify", str(proof_file), "--genesis", genesis_file, "--witness", f"crc={other}"
    )
    assert refused.returncode == 1
    assert "NOT VERIFIED — witnesses: 0 of the witnesses crc cosigned" in refused.stderr


@pytest.mark.parametrize(
    ("names", "reason"),
    [
        (("Préfecture",), "lowercase letters, digits and hyphens"),
        (("prefecture", "prefecture"), "given twice"),
        (tuple(f"w{index}" for index in range(6)), "0 to 5 witnesses"),
    ],
)
def test_devnet_witness_names_are_checked_before_anything_is_written(
    tmp_path: Path, names: tuple[str, ...], reason: str
) -> None:
    with pytest.raises(DevnetError, match=reason):
        devnet_up(tmp_path / "devnet", 4, witnesses=names)
    assert not (tmp_path / "devnet").exists()


def test_devnet_down_signals_only_a_process_that_still_serves_the_witness_folder(
    tmp_path: Path,
) -> None:
    """A recorded witness PID now used by an unrelated process is reported, not signalled;
    a process that serves the recorded folder (``witness run --dir DIR``) is stopped."""
    folder = tmp_path / "witness-prefecture"
    folder.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    stranger = subprocess.Popen(sleeper)
    served = subprocess.Popen([*sleeper, "witness", "run", "--dir", str(folder)])
    try:
        record = WitnessProcess(
            name="prefecture",
            key_name="prefecture.localhost/witness",
            vkey="-",
            pid=stranger.pid,
            url="http://127.0.0.1:1",
            directory=str(folder),
            log_file=str(folder / "witness.log"),
        )
        witnesses = [record, dataclasses.replace(record, name="crc", pid=served.pid)]
        write_devnet(tmp_path, [], witnesses=witnesses)
        assert [witness.pid for witness in read_witnesses(tmp_path)] == [
            stranger.pid,
            served.pid,
        ]
        report = devnet_stop(tmp_path)
        assert report.witnesses == ["crc"] and report.stopped == []
        assert "does not serve" in report.skipped["witness prefecture"]
        served.wait(10)
        assert stranger.poll() is None
    finally:
        for process in (stranger, served):
            process.kill()
            process.wait()
