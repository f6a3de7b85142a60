"""Specification: ``sceau witness``, a tlog-witness server (node/witness/, docs/witnesses.md).

In process (aiohttp's test server) every status code of c2sp.org/tlog-witness's add-checkpoint;
across a SIGKILL of a real ``sceau witness run`` process, the witness keeps the size it cosigned
and refuses a checkpoint inconsistent with it; two concurrent requests cannot roll it back.
Logs are built with ledger.merkle and signed by member keys with ledger.note.sign_note.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from ledger import crypto, merkle
from ledger.devchain import LocalConsortium
from ledger.model import quorum_size
from ledger.note import (
    AddCheckpointRequest,
    Checkpoint,
    KeyType,
    Note,
    NoteSignature,
    NoteVerifierKey,
    cosignature_timestamp,
    origin_for,
    sign_note,
    verify_note,
)
from node.tools.cli import main as sceau
from node.witness import config as witness_config
from node.witness.config import ConfigError, WitnessConfig, WitnessLimits, load_config
from node.witness.server import Outcome, Witness, create_app
from node.witness.state import StateError

REPOSITORY = Path(__file__).resolve().parents[1]
CONSORTIUM = LocalConsortium.create(
    [("lyon", "Lyon"), ("villeurbanne", "Villeurbanne"), ("bron", "Bron"), ("vaulx", "Vaulx")],
    seed=b"witness tests",
)
MEMBER_KEYS = list(CONSORTIUM.keys.values())
ORIGIN = origin_for(CONSORTIUM.chain_id)
WITNESS_NAME = "prefecture.example/witness"
WITNESS_KEY = crypto.key_from_seed(b"\x42" * 32)
WITNESS_VKEY = NoteVerifierKey.for_private_key(WITNESS_NAME, KeyType.COSIGNATURE_V1, WITNESS_KEY)
NOW_S = 1_780_000_000


def leaves(count: int, fork_at: int | None = None) -> list[bytes]:
    """The acts of a log; with ``fork_at``, another history from that index on."""
    return [
        (b"forged act %d" if fork_at is not None and index >= fork_at else b"act %d") % index
        for index in range(count)
    ]


def checkpoint_note(log: list[bytes], *signers: crypto.PrivateKey, origin: str = ORIGIN) -> Note:
    text = Checkpoint(origin, len(log), merkle.root(log)).text()
    return Note(text, tuple(sign_note(text, origin, key) for key in signers))


def request_body(
    log: list[bytes], old_size: int, *, signers: int = 3, old_log: list[bytes] | None = None
) -> bytes:
    """An add-checkpoint body from ``old_size`` to ``log``, signed by ``signers`` members."""
    note = checkpoint_note(log, *MEMBER_KEYS[:signers])
    proof = () if old_size in (0, len(log)) else tuple(merkle.consistency_proof(log, old_size))
    return AddCheckpointRequest(old_size, proof, note).to_bytes()


def write_witness(directory: Path, **limits: int) -> WitnessConfig:
    """A witness folder with its key, and the consortium's genesis as its one log."""
    directory.mkdir(parents=True, exist_ok=True)
    crypto.save_private_key(WITNESS_KEY, directory / "witness.key", overwrite=True)
    (directory / "genesis.json").write_text(CONSORTIUM.genesis.model_dump_json())
    policy = witness_config.policy_from_genesis(CONSORTIUM.genesis, "genesis.json")
    config = WitnessConfig(
        directory=directory,
        name=WITNESS_NAME,
        listen="127.0.0.1:0",
        limits=WitnessLimits(**limits),
        logs=(policy,),
    )
    (directory / "witness.toml").write_text(witness_config.render_config(config))
    return load_config(directory)


def run_with_client(
    directory: Path, scenario: Callable[[TestClient, Witness], Awaitable[Any]], **limits: int
) -> Any:
    async def main() -> Any:
        witness = Witness(write_witness(directory, **limits), WITNESS_KEY, clock_s=lambda: NOW_S)
        client = TestClient(TestServer(create_app(witness)))
        await client.start_server()
        try:
            return await scenario(client, witness)
        finally:
            await client.close()

    return asyncio.run(main())


async def post(client: TestClient, body: bytes) -> tuple[int, str, str]:
    response = await client.post("/add-checkpoint", data=body)
    return response.status, response.content_type, await response.text()


def cosigned_by_the_witness(log: list[bytes], body: str) -> NoteSignature:
    """The cosignature line of a 200 answer, checked against the witness's vkey."""
    (line,) = body.splitlines()
    cosignature = NoteSignature.parse_line(line)
    note = checkpoint_note(log, MEMBER_KEYS[0]).with_signatures(cosignature)
    assert verify_note(note, [WITNESS_VKEY]) == (WITNESS_VKEY,)
    return cosignature


# --- every status code ------------------------------------------------------------------------


def test_a_quorum_signed_checkpoint_is_cosigned_from_zero_then_from_the_size_cosigned(
    tmp_path: Path,
) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        status, content_type, body = await post(client, request_body(leaves(5), 0))
        assert (status, content_type) == (200, "text/plain")
        assert cosignature_timestamp(cosigned_by_the_witness(leaves(5), body)) == NOW_S
        status, _, body = await post(client, request_body(leaves(12), 5))
        assert status == 200
        cosigned_by_the_witness(leaves(12), body)
        assert witness.state.latest(ORIGIN).size == 12

    run_with_client(tmp_path, scenario)
    saved = json.loads((tmp_path / "state.json").read_text())
    assert saved["logs"][ORIGIN]["size"] == 12


def test_the_checkpoint_last_cosigned_is_cosigned_again(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        assert (await post(client, request_body(leaves(5), 0)))[0] == 200
        assert (await post(client, request_body(leaves(5), 5)))[0] == 200

    run_with_client(tmp_path, scenario)


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"old 1\n\nnot a note\n",
        b"old 01\n\n" + checkpoint_note(leaves(3), *MEMBER_KEYS[:3]).to_bytes(),
        b"old 0\n\n" + Note("not a checkpoint\n", (NoteSignature("a", 1, b"x"),)).to_bytes(),
        "old 0\n\nsceau/x\n3\nAAAA\n\n\u2014 a AAAAAAA=\n".encode(),
    ],
    ids=["empty", "no note", "leading zero", "not a checkpoint", "short root"],
)
def test_a_body_that_is_not_a_request_is_refused_with_400(tmp_path: Path, body: bytes) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        assert (await post(client, body))[0] == 400
        assert witness.outcomes[Outcome.MALFORMED] == 1

    run_with_client(tmp_path, scenario)


def test_an_old_size_above_the_checkpoint_size_is_refused_with_400(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        note = checkpoint_note(leaves(3), *MEMBER_KEYS[:3])
        assert (await post(client, AddCheckpointRequest(4, (), note).to_bytes()))[0] == 400

    run_with_client(tmp_path, scenario)


def test_a_checkpoint_of_an_unknown_origin_is_refused_with_404(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        other = origin_for(bytes(32))
        note = checkpoint_note(leaves(3), *MEMBER_KEYS[:3], origin=other)
        status, _, _ = await post(client, AddCheckpointRequest(0, (), note).to_bytes())
        assert status == 404

    run_with_client(tmp_path, scenario)


def test_fewer_than_a_quorum_of_member_signatures_is_refused_with_403(tmp_path: Path) -> None:
    assert quorum_size(4) == 3
    stranger = crypto.key_from_seed(b"\x01" * 32)

    async def scenario(client: TestClient, witness: Witness) -> None:
        assert (await post(client, request_body(leaves(3), 0, signers=2)))[0] == 403
        text = checkpoint_note(leaves(3)).text
        strangers = Note(text, (sign_note(text, ORIGIN, stranger),))
        assert (await post(client, AddCheckpointRequest(0, (), strangers).to_bytes()))[0] == 403
        good = checkpoint_note(leaves(3), *MEMBER_KEYS[:3])
        bad = sign_note(checkpoint_note(leaves(4)).text, ORIGIN, MEMBER_KEYS[3])
        tampered = good.with_signatures(bad)  # a member's signature that fails: whole note out
        assert (await post(client, AddCheckpointRequest(0, (), tampered).to_bytes()))[0] == 403
        assert witness.outcomes[Outcome.NOT_SIGNED_BY_QUORUM] == 3
        assert witness.state.latest(ORIGIN).size == 0

    run_with_client(tmp_path, scenario)


def test_a_stale_old_size_is_refused_with_409_and_the_size_last_cosigned(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        assert (await post(client, request_body(leaves(5), 0)))[0] == 200
        status, content_type, body = await post(client, request_body(leaves(9), 3))
        assert (status, content_type, body) == (409, "text/x.tlog.size", "5\n")
        status, content_type, body = await post(client, request_body(leaves(9), 0))
        assert (status, content_type, body) == (409, "text/x.tlog.size", "5\n")

    run_with_client(tmp_path, scenario)


def test_the_size_cosigned_with_another_root_is_refused_with_409_and_kept_as_evidence(
    tmp_path: Path,
) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        assert (await post(client, request_body(leaves(5), 0)))[0] == 200
        forged = request_body(leaves(5, fork_at=4), 5)
        status, _, _ = await post(client, forged)
        assert status == 409
        assert witness.outcomes[Outcome.ROOT_MISMATCH] == 1
        return forged

    forged = run_with_client(tmp_path, scenario)
    (evidence,) = (tmp_path / "evidence").iterdir()
    assert "root_mismatch" in evidence.name
    assert evidence.read_bytes().endswith(forged)


def test_a_forked_history_is_refused_with_422_and_kept_as_evidence(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        assert (await post(client, request_body(leaves(5), 0)))[0] == 200
        # The colluding members' history agrees on 3 acts, then differs: no proof from the
        # genuine size 5 exists; they send the proof of their own tree.
        assert (await post(client, request_body(leaves(9, fork_at=3), 5)))[0] == 422
        empty_proof = AddCheckpointRequest(5, (), checkpoint_note(leaves(9), *MEMBER_KEYS[:3]))
        assert (await post(client, empty_proof.to_bytes()))[0] == 422
        assert witness.state.latest(ORIGIN).size == 5
        assert witness.evidence.count() == 2

    run_with_client(tmp_path, scenario)


def test_a_body_over_the_budget_is_refused_with_413_before_parsing(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        status, _, _ = await post(client, b"old 0\n" + b"x" * 4096)
        assert status == 413

        async def chunks() -> Any:  # no Content-Length: aiohttp's own cap applies
            for _ in range(8):
                yield b"x" * 1024

        response = await client.post("/add-checkpoint", data=chunks())
        assert response.status == 413
        assert witness.outcomes[Outcome.BODY_TOO_LARGE] == 2

    run_with_client(tmp_path, scenario, request_bytes_max=2048)


def test_a_body_that_comes_too_slowly_is_refused_with_408(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        async def trickle() -> Any:
            yield b"old 0\n"
            await asyncio.sleep(1)
            yield b"\n"

        response = await client.post("/add-checkpoint", data=trickle())
        assert response.status == 408
        assert witness.outcomes[Outcome.BODY_TOO_SLOW] == 1

    run_with_client(tmp_path, scenario, request_timeout_ms=200)


def test_a_state_that_cannot_be_saved_cosigns_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full_disk(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    async def scenario(client: TestClient, witness: Witness) -> None:
        monkeypatch.setattr("node.witness.state.write_atomically", full_disk)
        status, _, body = await post(client, request_body(leaves(5), 0))
        assert status == 503 and "\u2014" not in body
        assert witness.state.latest(ORIGIN).size == 0

    run_with_client(tmp_path, scenario)


def test_two_concurrent_requests_from_the_same_size_cannot_roll_back(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> list[int]:
        save = witness.state.save

        def slow_save(*arguments: Any) -> None:  # both requests are in flight meanwhile
            import time

            time.sleep(0.2)
            save(*arguments)

        witness.state.save = slow_save  # type: ignore[method-assign]
        answers = await asyncio.gather(
            post(client, request_body(leaves(12), 0)), post(client, request_body(leaves(5), 0))
        )
        return [status for status, _, _ in answers]

    statuses = run_with_client(tmp_path, scenario)
    assert sorted(statuses) == [200, 409]
    winner = 12 if statuses[0] == 200 else 5
    assert json.loads((tmp_path / "state.json").read_text())["logs"][ORIGIN]["size"] == winner


def test_evidence_keeps_only_the_latest_files(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> None:
        assert (await post(client, request_body(leaves(5), 0)))[0] == 200
        for fork_at in (1, 2, 3):
            assert (await post(client, request_body(leaves(5, fork_at=fork_at), 5)))[0] == 409

    run_with_client(tmp_path, scenario, evidence_files_max=2)
    kept = sorted((tmp_path / "evidence").iterdir())
    assert len(kept) == 2
    assert kept[0].read_bytes().endswith(request_body(leaves(5, fork_at=2), 5))  # 1st went


def test_metrics_count_refusals_by_reason_and_status_shows_each_log(tmp_path: Path) -> None:
    async def scenario(client: TestClient, witness: Witness) -> tuple[str, dict]:
        await post(client, request_body(leaves(5), 0))
        await post(client, request_body(leaves(9), 2))
        await post(client, b"nonsense")
        metrics = await (await client.get("/metrics")).text()
        status = await (await client.get("/")).json()
        return metrics, status

    metrics, status = run_with_client(tmp_path, scenario)
    assert 'sceau_witness_requests_total{outcome="cosigned"} 1' in metrics
    assert 'sceau_witness_requests_total{outcome="old_size_mismatch"} 1' in metrics
    assert 'sceau_witness_requests_total{outcome="malformed"} 1' in metrics
    assert f'sceau_witness_log_size{{origin="{ORIGIN}"}} 5' in metrics
    assert 'sceau_connections{port="witness"' in metrics
    assert status == {
        "name": WITNESS_NAME,
        "vkey": WITNESS_VKEY.vkey,
        "logs": [{"origin": ORIGIN, "size": 5, "quorum": 3, "members": 4}],
    }


def test_a_damaged_state_file_stops_the_witness_rather_than_forgetting(tmp_path: Path) -> None:
    config = write_witness(tmp_path)
    (tmp_path / "state.json").write_text("{not json")
    with pytest.raises(StateError, match="damaged"):
        Witness(config, WITNESS_KEY)


# --- configuration and command line -----------------------------------------------------------


def test_a_genesis_gives_the_origin_the_member_keys_and_the_quorum(tmp_path: Path) -> None:
    config = write_witness(tmp_path)
    (policy,) = config.logs
    assert policy.origin == ORIGIN
    assert policy.quorum == quorum_size(4)
    assert [key.public_key for key in policy.keys] == [
        crypto.public_key_bytes(key) for key in MEMBER_KEYS
    ]


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ("colour = 'blue'\n", "unknown setting"),
        ("[limits]\nrequest_bytes_max = 0\n", "positive"),
        ("[[logs]]\norigin = 'o'\nvkeys = []\nquorum = 1\n", "at least one member key"),
        ("[[logs]]\norigin = 'o'\nquorum = 1\n", "either genesis"),
        ("[[logs]]\ngenesis = 'missing.json'\n", "cannot read genesis"),
    ],
)
def test_a_bad_configuration_is_refused_with_a_sentence(
    tmp_path: Path, extra: str, reason: str
) -> None:
    (tmp_path / "witness.toml").write_text(f"name = 'w.example'\n{extra}")
    with pytest.raises(ConfigError, match=reason):
        load_config(tmp_path)


def test_the_command_line_makes_a_witness_and_adds_logs_by_genesis_or_by_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "w"
    assert sceau(["witness", "init", "--name", WITNESS_NAME, "--dir", str(directory)]) == 0
    printed = capsys.readouterr().out.strip()
    vkey = NoteVerifierKey.parse_vkey(printed)
    assert vkey.key_type is KeyType.COSIGNATURE_V1
    assert os.stat(directory / "witness.key").st_mode & 0o077 == 0
    assert sceau(["witness", "vkey", "--dir", str(directory)]) == 0
    assert capsys.readouterr().out.strip() == printed
    genesis = tmp_path / "genesis.json"
    genesis.write_text(CONSORTIUM.genesis.model_dump_json())
    assert sceau(["witness", "add-log", "--dir", str(directory), "--genesis", str(genesis)]) == 0
    assert sceau(["witness", "add-log", "--dir", str(directory), "--genesis", str(genesis)]) == 2
    assert "already witnessed" in capsys.readouterr().err
    # The member set changed: the operator replaces the entry by the current keys.
    members = [crypto.public_key_to_text(crypto.public_key_bytes(k)) for k in MEMBER_KEYS[:3]]
    replace = ["witness", "add-log", "--dir", str(directory), "--origin", ORIGIN, "--replace"]
    replace += [argument for key in members for argument in ("--member-key", key)]
    assert sceau([*replace, "--quorum", "3"]) == 0
    (policy,) = load_config(directory).logs
    assert (len(policy.keys), policy.quorum, policy.genesis_file) == (3, 3, None)


# --- across a restart (a real process, killed) ------------------------------------------------


def start_witness(directory: Path) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "node.tools.cli", "witness", "run", "--dir", str(directory)],
        cwd=REPOSITORY,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("sceau witness: listening on "), line
    return process, line.split()[-1]


def post_sync(url: str, body: bytes) -> tuple[int, str]:
    request = urllib.request.Request(url + "/add-checkpoint", data=body, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_after_a_sigkill_the_witness_keeps_its_size_and_refuses_another_history(
    tmp_path: Path,
) -> None:
    write_witness(tmp_path)
    process, url = start_witness(tmp_path)
    try:
        assert post_sync(url, request_body(leaves(5), 0))[0] == 200
        process.send_signal(signal.SIGKILL)  # no clean shutdown: only what is on disk counts
        process.wait(timeout=10)
        process, url = start_witness(tmp_path)
        assert post_sync(url, request_body(leaves(8, fork_at=2), 0)) == (409, "5\n")
        assert post_sync(url, request_body(leaves(5, fork_at=4), 5))[0] == 409
        assert post_sync(url, request_body(leaves(8, fork_at=2), 5))[0] == 422
        assert post_sync(url, request_body(leaves(8), 5))[0] == 200
        with urllib.request.urlopen(url + "/", timeout=10) as response:
            assert json.loads(response.read())["logs"][0]["size"] == 8
        # One process per folder: a second one would check against its own memory.
        second = [sys.executable, "-m", "node.tools.cli", "witness", "run", "--dir", str(tmp_path)]
        refused = subprocess.run(second, cwd=REPOSITORY, capture_output=True, text=True, timeout=30)
        assert refused.returncode == 2 and "another witness is running" in refused.stderr
    finally:
        process.kill()
        process.wait(timeout=10)


def test_run_and_add_log_refuse_bad_input_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_witness(tmp_path)
    (tmp_path / "state.json").write_text("[]")
    assert sceau(["witness", "run", "--dir", str(tmp_path)]) == 2
    assert "damaged" in capsys.readouterr().err
    bad_vkey = ["--origin", ORIGIN, "--vkey", "not+a+vkey", "--quorum", "1"]
    assert sceau(["witness", "add-log", "--dir", str(tmp_path), *bad_vkey]) == 2
    error = capsys.readouterr().err
    assert error.startswith("sceau: error:") and len(error.splitlines()) == 1
    assert sceau(["witness", "run", "--dir", str(tmp_path / "nowhere")]) == 2
    assert "sceau witness init" in capsys.readouterr().err


def test_the_documented_budgets_are_the_defaults() -> None:
    text = (REPOSITORY / "docs" / "witnesses.md").read_text()
    for name in WitnessLimits.__dataclass_fields__:
        value = getattr(WitnessLimits(), name)
        assert f"| `{name}` | {value} |" in text, name


def test_refusals_are_logged_within_the_budget_and_the_rest_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(client: TestClient, witness: Witness) -> str:
        for _ in range(20):
            assert (await post(client, b"junk"))[0] == 400
        return await (await client.get("/metrics")).text()

    with caplog.at_level("INFO", logger="sceau.witness"):
        metrics = run_with_client(tmp_path, scenario, log_lines_per_minute_max=3)
    assert len([r for r in caplog.records if "refused (malformed)" in r.getMessage()]) == 3
    assert "sceau_witness_log_lines_suppressed_total 17" in metrics
    assert 'sceau_witness_requests_total{outcome="malformed"} 20' in metrics


def test_the_port_budget_comes_from_the_limits(tmp_path: Path) -> None:
    from node.witness.server import guard_limits

    config = write_witness(tmp_path, connections_max=7, connections_per_address_max=2)
    limits = guard_limits(config)
    assert (limits.connections_max, limits.connections_per_address_max) == (7, 2)
    assert limits.unsettled_bytes_max == config.limits.header_bytes_max
    assert limits.milestones_ms[-1][1] == config.limits.header_timeout_ms


def test_idle_connections_cannot_lock_a_member_out(tmp_path: Path) -> None:
    from aiohttp import ClientSession

    from node.witness.server import serve

    async def main() -> tuple[int, str]:
        config = write_witness(tmp_path, connections_max=2, connections_per_address_max=2)
        witness = Witness(config, WITNESS_KEY)
        ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve(witness, "127.0.0.1:0", ready=ready.set_result))
        url = await ready
        host, port = url.removeprefix("http://").split(":")
        idle = [await asyncio.open_connection(host, int(port)) for _ in range(2)]
        try:
            async with ClientSession() as session:
                body = request_body(leaves(5), 0)
                async with session.post(url + "/add-checkpoint", data=body) as response:
                    status = response.status
                async with session.get(url + "/metrics") as response:
                    metrics = await response.text()
        finally:
            for _, writer in idle:
                writer.close()
            server.cancel()
            with pytest.raises(asyncio.CancelledError):
                await server
        return status, metrics

    status, metrics = asyncio.run(main())
    assert status == 200
    assert 'sceau_connection_events_total{port="witness",event="evicted:' in metrics
