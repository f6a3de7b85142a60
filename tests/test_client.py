"""The client library carries a submission to its commit; the devnet's files and guards.

A node that answers 202 (pending) holds the transaction in memory only: killed before the
commit, it forgets it. These tests kill such nodes, for real (SIGKILL of a ``sceau node``
process of a devnet), right after their 202 or while they hold a submission, and show that
the client library, given every member's API, still brings each submission to its commit —
zero acknowledged-then-lost from the client's point of view — while a bare HTTP client that
stopped at the 202 lost its transaction. A killed node's transaction can only stay in its
memory if its links are cut first (otherwise it gossips the transaction within milliseconds),
so each victim is isolated through the test-only fault-injection route before its kill.

The same devnet shows the smaller guarantees: the fault-injection route's guard (token,
loopback, no proxy), the private modes of everything a devnet writes, the warning for a key
file others may read, and ``devnet down`` skipping a PID that is no longer its node's.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledger import crypto
from ledger.client import (
    AsyncClient,
    Client,
    CommitNotConfirmed,
    SubmissionEvent,
    TransactionExpired,
    TransactionRejected,
)
from ledger.model import Genesis, Transaction
from node.runtime.debug_token import TOKEN_FILE_NAME, TOKEN_HEADER, read_token
from node.tools.devnet import (
    MemberProcess,
    devnet_down,
    devnet_stop,
    devnet_up,
    start_member,
    wait_ready,
    write_devnet,
)

DEADLINE_S = 30.0
ACT_DATE = "2026-11-28"
KILL_ROUNDS = 3
SUBMISSIONS_PER_ROUND = 6
RETRY_INTERVAL_S = 1.0


# --- the devnet ---------------------------------------------------------------------------------


def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """(status, JSON document) of one request; an error status is an answer too."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


class Devnet:
    def __init__(self, directory: Path, members: list[MemberProcess]) -> None:
        self.directory = directory
        self.members = members
        self.genesis = Genesis.model_validate_json((directory / "genesis.json").read_text())

    def member(self, member_id: str) -> MemberProcess:
        return next(member for member in self.members if member.member_id == member_id)

    def urls(self, first: MemberProcess) -> list[str]:
        """Every member's API, ``first`` first."""
        return [first.api_url] + [m.api_url for m in self.members if m is not first]

    def key(self, member: MemberProcess) -> crypto.PrivateKey:
        return crypto.load_private_key(member.key_file)

    def token(self, member: MemberProcess) -> str:
        return read_token(Path(member.config_file).parent / "data")

    def cut(self, member: MemberProcess, peers: list[MemberProcess]) -> None:
        status, document = http(
            "PUT",
            f"{member.api_url}/v1/debug/links",
            {"cut": sorted(peer.member_id for peer in peers)},
            {TOKEN_HEADER: self.token(member)},
        )
        assert status == 200, document

    def isolate(self, victim: MemberProcess) -> None:
        """Cut every link of ``victim``, at both ends: what it accepts stays with it."""
        others = [m for m in self.members if m is not victim]
        self.cut(victim, others)
        for other in others:
            self.cut(other, [victim])

    def kill_and_restart(self, victim: MemberProcess) -> MemberProcess:
        """SIGKILL ``victim`` if it still runs, heal the others' links, start it again."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(victim.pid, 0)
        for other in self.members:
            if other is not victim:
                self.cut(other, [])
        child = start_member(Path(victim.config_file).parent)
        restarted = dataclasses.replace(victim, pid=child.pid)
        self.members = [restarted if m is victim else m for m in self.members]
        write_devnet(self.directory, self.members)
        wait_ready(self.members, DEADLINE_S)
        return restarted

    def anchor_transaction(self, member: MemberProcess, *, expiry_height: int) -> Transaction:
        reference = f"2026-DEL-{secrets.token_hex(5)}"
        return Transaction.create(
            self.key(member),
            chain_id=self.genesis.chain_id,
            contract="deeds",
            action="anchor",
            args={
                "issuer": member.member_id,
                "reference": reference,
                "kind": "deliberation",
                "digest": secrets.token_bytes(32),
                "act_date": ACT_DATE,
                "title": f"Délibération {reference}",
            },
            nonce=secrets.randbits(63),
            expiry_height=expiry_height,
        )

    def height(self) -> int:
        return max(http("GET", f"{m.api_url}/v1/status")[1]["height"] for m in self.members)

    def committed_everywhere(self, tx_id: str, height: int, block_hash: str) -> None:
        """Every node answers: committed, at ``height``, in ``block_hash``."""
        deadline = time.monotonic() + DEADLINE_S
        for member in self.members:
            while True:
                status, document = http("GET", f"{member.api_url}/v1/transactions/{tx_id}")
                found = (document.get("status"), document.get("height"), document.get("block_hash"))
                if found == ("committed", height, block_hash):
                    break
                assert time.monotonic() < deadline, f"{member.member_id}: {status} {document}"
                time.sleep(0.1)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    directory = tmp_path_factory.mktemp("client") / "devnet"
    try:
        yield Devnet(directory, devnet_up(directory, 4, extra_config={"fault_injection": True}))
    finally:
        if (directory / "devnet.json").exists():
            devnet_down(directory)


# --- carrying a submission to its commit --------------------------------------------------------


def carry_while_killing(
    devnet: Devnet, victim: MemberProcess, transactions: list[Transaction]
) -> tuple[list[Any], list[SubmissionEvent]]:
    """Submit ``transactions`` through the library, ``victim`` first and every other member
    after it; SIGKILL ``victim`` as soon as it has answered one of them 202 (pending).
    Returns each submission's outcome (a document or an exception) and the events seen."""
    events: list[SubmissionEvent] = []

    def observe(event: SubmissionEvent) -> None:
        events.append(event)
        if event.api_url == victim.api_url and event.outcome == "pending":
            with contextlib.suppress(ProcessLookupError):
                os.kill(victim.pid, signal.SIGKILL)  # right after its 202

    async def submit_all() -> list[Any]:
        async with AsyncClient(
            devnet.urls(victim), retry_interval_s=RETRY_INTERVAL_S, observer=observe
        ) as client:
            return await asyncio.gather(
                *(client.submit(tx, wait_s=DEADLINE_S) for tx in transactions),
                return_exceptions=True,
            )

    return asyncio.run(submit_all()), events


def test_submissions_accepted_by_a_node_killed_before_their_commit_are_all_committed(
    devnet: Devnet,
) -> None:
    """Each round isolates a node, sends it submissions first (the client has every member's
    API), SIGKILLs it right after its first 202 — the other submissions are still waiting in
    it — and checks that every submission comes back committed, at the same height and block
    on every node. A bare HTTP client's transaction, answered 202 by the same node, is lost."""
    bare: Transaction | None = None
    for round_index in range(KILL_ROUNDS):
        victim = devnet.members[(round_index + 1) % len(devnet.members)]
        devnet.isolate(victim)
        expiry_height = devnet.height() + 1_000
        if bare is None:
            bare = devnet.anchor_transaction(victim, expiry_height=expiry_height)
            status, answer = http(
                "POST", f"{victim.api_url}/v1/transactions", {"transaction": bare.encoded.hex()}
            )
            assert (status, answer["status"]) == (202, "pending")
        transactions = [
            devnet.anchor_transaction(victim, expiry_height=expiry_height)
            for _ in range(SUBMISSIONS_PER_ROUND)
        ]
        started = time.monotonic()
        outcomes, events = carry_while_killing(devnet, victim, transactions)
        elapsed_s = time.monotonic() - started
        assert all(isinstance(o, dict) and o["status"] == "committed" for o in outcomes), outcomes
        assert elapsed_s < 15, f"{elapsed_s:.1f} s to carry {len(transactions)} submissions"
        from_victim = [e.outcome for e in events if e.api_url == victim.api_url]
        assert "pending" in from_victim, events  # the victim had accepted them: its 202
        assert {e.api_url for e in events if e.outcome == "committed"} <= {
            m.api_url for m in devnet.members if m is not victim
        }
        last_round = round_index == KILL_ROUNDS - 1
        if last_round:
            os.chmod(victim.key_file, 0o644)  # the restart below must warn about it
        victim = devnet.kill_and_restart(victim)
        if last_round:
            os.chmod(victim.key_file, 0o600)
            assert f"key file {victim.key_file} has mode 0644" in Path(victim.log_file).read_text()
        for transaction, outcome in zip(transactions, outcomes, strict=True):
            devnet.committed_everywhere(
                transaction.tx_id.hex(), outcome["height"], outcome["block_hash"]
            )

    # The bare client's transaction died with the node that answered 202 …
    assert bare is not None
    for member in devnet.members:
        status, answer = http("GET", f"{member.api_url}/v1/transactions/{bare.tx_id.hex()}")
        assert (status, answer["code"]) == (404, "unknown_transaction")
    # … and the same signed transaction, carried by the library, commits (idempotent).
    with Client(devnet.urls(devnet.members[0])) as client:
        outcome = client.submit(bare, wait_s=DEADLINE_S)
    assert outcome["status"] == "committed" and outcome["tx_id"] == bare.tx_id.hex()


def test_an_unreachable_member_is_passed_over(devnet: Devnet) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    events: list[SubmissionEvent] = []
    issuer = devnet.members[0]
    with Client(
        [nowhere, *devnet.urls(issuer)], signer=devnet.key(issuer), observer=events.append
    ) as client:
        outcome = client.anchor(
            issuer=issuer.member_id,
            reference=f"2026-DEL-{secrets.token_hex(4)}",
            kind="decree",
            digest=secrets.token_bytes(32),
            act_date=ACT_DATE,
            title="Arrêté de voirie",
            wait_s=DEADLINE_S,
        )
    assert outcome["status"] == "committed"
    assert [event.outcome for event in events] == ["committed"], "reads already skipped it"
    assert events[0].api_url == issuer.api_url


def test_a_rejection_is_final_and_never_sent_to_another_member(devnet: Devnet) -> None:
    issuer = devnet.members[1]
    events: list[SubmissionEvent] = []
    metadata = {
        "issuer": issuer.member_id,
        "reference": f"2026-DEL-{secrets.token_hex(4)}",
        "kind": "deliberation",
        "act_date": ACT_DATE,
        "title": "Budget primitif",
    }
    with Client(devnet.urls(issuer), signer=devnet.key(issuer), observer=events.append) as client:
        client.anchor(digest=secrets.token_bytes(32), wait_s=DEADLINE_S, **metadata)
        events.clear()
        with pytest.raises(TransactionRejected) as refused:
            client.anchor(digest=secrets.token_bytes(32), wait_s=DEADLINE_S, **metadata)
    assert refused.value.code == "duplicate_reference" and refused.value.status == 422
    assert [event.outcome for event in events] == ["rejected"]


def test_a_transaction_past_its_expiry_is_reported_expired_never_committed(
    devnet: Devnet,
) -> None:
    issuer = devnet.members[2]
    stale = devnet.anchor_transaction(issuer, expiry_height=devnet.height())
    with Client(devnet.urls(issuer)) as client, pytest.raises(TransactionExpired) as expired:
        client.submit(stale, wait_s=DEADLINE_S)
    assert expired.value.code == "expired_transaction"
    assert expired.value.tx_id == stale.tx_id.hex()


def test_past_its_deadline_the_client_says_the_transaction_may_still_commit(
    devnet: Devnet, tmp_path: Path
) -> None:
    """Only an isolated node to talk to: it accepts but cannot commit. The error names the
    transaction and says it may still commit — and it does, once the node's links heal.
    ``sceau anchor`` says so too, with exit status 3."""
    victim = devnet.members[3]
    devnet.isolate(victim)
    transaction = devnet.anchor_transaction(victim, expiry_height=devnet.height() + 1_000)
    document = tmp_path / "arrete.pdf"
    document.write_bytes(b"%PDF-1.7\n" + secrets.token_bytes(16) + b"\n%%EOF\n")
    try:
        with (
            Client(victim.api_url, retry_interval_s=0.5) as client,
            pytest.raises(CommitNotConfirmed) as unconfirmed,
        ):
            client.submit(transaction, wait_s=1.5)
        anchored = sceau_anchor(document, [victim.api_url], victim, "--wait", "1.5")
    finally:
        devnet.cut(victim, [])
        for other in devnet.members:
            if other is not victim:
                devnet.cut(other, [])
    error = unconfirmed.value
    assert error.tx_id == transaction.tx_id.hex() and error.accepted_by == (victim.api_url,)
    assert "may still commit" in str(error) and transaction.tx_id.hex() in str(error)
    assert anchored.returncode == 3, anchored.stderr
    assert "may still commit" in anchored.stderr and "Traceback" not in anchored.stderr
    with Client(devnet.urls(devnet.members[0])) as client:
        outcome = client.submit(transaction, wait_s=DEADLINE_S)
    assert outcome["status"] == "committed"


def sceau_anchor(
    document: Path, api_urls: list[str], issuer: MemberProcess, *options: str
) -> subprocess.CompletedProcess[str]:
    """``sceau anchor DOCUMENT`` with one ``--api`` per item of ``api_urls``."""
    command = [sys.executable, "-m", "node.tools.cli", "anchor", str(document)]
    for urls in api_urls:
        command += ["--api", urls]
    command += ["--key", issuer.key_file, "--issuer", issuer.member_id, "--kind", "decree"]
    command += ["--reference", f"2026-ARR-{secrets.token_hex(4)}", "--date", ACT_DATE]
    command += ["--title", "Arrêté de circulation", *options]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_anchor_takes_several_api_urls_and_skips_a_dead_one(devnet: Devnet, tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nowhere = f"http://127.0.0.1:{closed.getsockname()[1]}"
    issuer = devnet.members[0]
    document = tmp_path / "deliberation.pdf"
    document.write_bytes(b"%PDF-1.7\n" + secrets.token_bytes(16) + b"\n%%EOF\n")
    others = ",".join(m.api_url for m in devnet.members[1:])
    completed = sceau_anchor(document, [nowhere, others], issuer)
    assert completed.returncode == 0, completed.stderr
    assert "committed at height" in completed.stdout
    assert Path(f"{document}.receipt.json").is_file()


# --- the fault-injection guard ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "allowed"),
    [
        ({}, False),
        ({TOKEN_HEADER: "0" * 64}, False),
        ({TOKEN_HEADER: "TOKEN", "X-Forwarded-For": "203.0.113.9"}, False),
        ({TOKEN_HEADER: "TOKEN", "Forwarded": "for=203.0.113.9"}, False),
        ({TOKEN_HEADER: "TOKEN", "X-Real-IP": "203.0.113.9"}, False),
        ({TOKEN_HEADER: "TOKEN"}, True),
    ],
)
def test_the_debug_route_needs_the_token_and_refuses_what_a_proxy_forwards(
    devnet: Devnet, headers: dict[str, str], allowed: bool
) -> None:
    member = devnet.members[0]
    headers = {
        name: devnet.token(member) if value == "TOKEN" else value for name, value in headers.items()
    }
    for method, body in (("GET", None), ("PUT", {"cut": []})):
        status, document = http(method, f"{member.api_url}/v1/debug/links", body, headers)
        if allowed:
            assert (status, document) == (200, {"cut": []})
        else:
            assert (status, document["code"]) == (403, "debug_forbidden"), document


def test_the_debug_token_is_private_to_the_nodes_user(devnet: Devnet) -> None:
    for member in devnet.members:
        path = Path(member.config_file).parent / "data" / TOKEN_FILE_NAME
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert len(path.read_text().strip()) == 64


# --- files, keys and processes ------------------------------------------------------------------


def test_everything_the_devnet_and_its_nodes_write_is_private(devnet: Devnet) -> None:
    exposed = []
    for path in [devnet.directory, *devnet.directory.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode & 0o077 and not path.is_symlink():
            exposed.append(f"{path.relative_to(devnet.directory)} {mode:04o}")
    assert exposed == []
    assert any(devnet.directory.rglob("*.ldb")) or any(devnet.directory.rglob("*.log"))


def test_a_key_file_others_may_read_loads_with_a_warning_naming_it_and_its_mode(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "app.pem"
    key = crypto.generate_key()
    crypto.save_private_key(key, path)
    with caplog.at_level(logging.WARNING, logger="sceau.keys"):
        crypto.load_private_key(path)
    assert caplog.records == []
    os.chmod(path, 0o640)
    with caplog.at_level(logging.WARNING, logger="sceau.keys"):
        loaded = crypto.load_private_key(path)
    assert crypto.public_key_bytes(loaded) == crypto.public_key_bytes(key)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert f"key file {path} has mode 0640" in record.getMessage()
    shown = subprocess.run(
        [sys.executable, "-m", "node.tools.cli", "key", "show", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert shown.returncode == 0 and shown.stdout.startswith("ed25519:")
    assert f"sceau: warning: key file {path} has mode 0640" in shown.stderr
    assert "chmod 600" in shown.stderr


def test_devnet_down_signals_only_processes_that_are_still_its_nodes(tmp_path: Path) -> None:
    """Three records: a PID now used by an unrelated process, a process that runs the
    member's configuration but started after the record, and the member's real process."""
    config = tmp_path / "metropole-valbrune" / "node.toml"
    config.parent.mkdir()
    config.write_text("")
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    stranger = subprocess.Popen(sleeper)
    impostor = subprocess.Popen([*sleeper, "--config", str(config)])
    node = subprocess.Popen([*sleeper, "--config", str(config)])
    try:
        record = MemberProcess(
            member_id="metropole-valbrune",
            name="Métropole de Valbrune",
            pid=0,
            api_url="http://127.0.0.1:1",
            peer_port=1,
            config_file=str(config),
            key_file=str(config.parent / "node.pem"),
            log_file=str(config.parent / "node.log"),
        )
        members = [
            dataclasses.replace(record, member_id=name, pid=process.pid)
            for name, process in (("a", stranger), ("b", impostor), ("c", node))
        ]
        write_devnet(tmp_path, members)
        state = json.loads((tmp_path / "devnet.json").read_text())
        state["members"][1]["start_ticks"] -= 1  # as if the PID had been reused since
        (tmp_path / "devnet.json").write_text(json.dumps(state))
        report = devnet_stop(tmp_path)
        assert report.stopped == ["c"]
        assert set(report.skipped) == {"a", "b"}
        assert "does not run" in report.skipped["a"]
        assert "started after" in report.skipped["b"]
        node.wait(10)  # devnet_stop has already reaped it: it was stopped
        assert stranger.poll() is None and impostor.poll() is None
    finally:
        for process in (stranger, impostor, node):
            process.kill()
            process.wait()


def test_the_carrying_client_needs_an_endpoint_and_a_sane_interval() -> None:
    with pytest.raises(ValueError, match="at least one"):
        AsyncClient([])
    with pytest.raises(ValueError, match="retry_interval_s"):
        AsyncClient("http://127.0.0.1:8700", retry_interval_s=0)
    client = AsyncClient(["http://a:1/", "http://b:2", "http://a:1"])
    assert client.endpoints == ("http://a:1", "http://b:2")
