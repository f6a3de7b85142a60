"""Observers, end to end: a devnet of 4 members and 2 observers, real processes and sockets.

An observer follows the chain from the members' APIs, verifies every block as the audit does,
serves the read API from its own store and refuses submissions. It is never needed for
progress, resumes from its own tip after a crash, and refuses a block a source tampered with,
going on from another source. Every test stops what it started (devnet down in the fixture).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import http.server
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from support import without_receipt_log

from ledger import crypto
from ledger.bundle import parse_frames
from ledger.client import Client
from ledger.model import Genesis
from node.tools.devnet import (
    MemberProcess,
    _free_ports,
    _write_observer_config,
    devnet_down,
    devnet_up,
    read_observers,
    start_member,
    write_devnet,
)
from node.tools.launch import initialise_data_dir

DEADLINE_S = 20.0
POLL_S = 0.1
T = TypeVar("T")


def get(url: str, *, data: bytes | None = None, content_type: str = "application/json") -> Any:
    """(status, headers, body) of a GET (or a POST with ``data``), errors included."""
    request = urllib.request.Request(url, data=data, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def get_json(url: str) -> Any:
    status, _, body = get(url)
    assert status == 200, (url, status, body[:300])
    return json.loads(body)


def status_of(process: MemberProcess) -> dict[str, Any] | None:
    with contextlib.suppress(urllib.error.URLError, OSError, ValueError):
        return json.loads(urllib.request.urlopen(f"{process.api_url}/v1/status", timeout=2).read())
    return None


def wait_for(condition: Callable[[], T | None], what: str) -> T:
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL_S)
    raise AssertionError(f"not within {DEADLINE_S} s: {what}")


def wait_at_height(processes: list[MemberProcess], height: int) -> None:
    def there() -> bool:
        statuses = [status_of(process) for process in processes]
        return all(status is not None and status["height"] >= height for status in statuses)

    wait_for(there, f"{[p.member_id for p in processes]} at height {height}")


@dataclasses.dataclass
class Network:
    directory: Path
    members: list[MemberProcess]
    genesis: Genesis

    @property
    def observers(self) -> list[MemberProcess]:
        return read_observers(self.directory)

    def anchor(self, member: MemberProcess) -> dict[str, Any]:
        """Anchor a fresh act of ``member`` through its own API, signed with its node key."""
        reference = f"2026-DEL-{secrets.token_hex(4)}"
        with Client(member.api_url, signer=crypto.load_private_key(member.key_file)) as client:
            outcome = client.anchor(
                issuer=member.member_id,
                reference=reference,
                kind="deliberation",
                digest=hashlib.sha256(reference.encode()).digest(),
                act_date="2026-11-28",
                title=f"Délibération {reference}",
                wait_s=DEADLINE_S,
            )
        assert outcome["status"] == "committed", outcome
        return {**outcome, "issuer": member.member_id, "reference": reference}

    def tip(self) -> int:
        status = status_of(self.members[0])
        assert status is not None
        return int(status["height"])


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    directory = tmp_path_factory.mktemp("observed")
    try:
        members = devnet_up(directory, 4, observers=2)
        genesis = Genesis.model_validate_json((directory / "genesis.json").read_text())
        yield Network(directory, members, genesis)
    finally:
        if (directory / "devnet.json").exists():
            devnet_down(directory)


def answers_as_a_member(network: Network, observer: MemberProcess, path: str) -> None:
    """The observer's answer at ``path`` is, document for document, a member's. Each member
    holds its own certificate of a block (its quorum of signatures): an observer serves the
    one of the member it took the block from. A receipt's ``log`` is left out: it carries the
    checkpoint each node keeps, which differs from node to node (another quorum of signers,
    an older size); tests/test_checkpoints.py checks an observer's checkpoint."""
    answer = without_receipt_log(get_json(observer.api_url + path))
    members = [without_receipt_log(get_json(member.api_url + path)) for member in network.members]
    assert answer in members, path


def test_devnet_records_two_observers_that_say_what_they_are(network: Network) -> None:
    observers = network.observers
    assert [observer.member_id for observer in observers] == ["observer-1", "observer-2"]
    for observer in observers:
        status = status_of(observer)
        assert status is not None
        assert status["role"] == "observer"
        assert status["member_id"] is None
        assert status["peers_connected"] == []
        assert status["following"] in [member.api_url for member in network.members]
        assert status["chain_id"] == network.genesis.chain_id.hex()
        config = Path(observer.config_file).read_text()
        assert "key_file" not in config and "peer_listen" not in config


def test_observers_converge_and_answer_as_a_member_does(network: Network) -> None:
    member = network.members[1]
    acts = [network.anchor(member) for _ in range(3)]
    height = network.tip()
    wait_at_height(network.observers, height)
    for observer in network.observers:
        for each in range(1, height + 1):
            answers_as_a_member(network, observer, f"/v1/blocks/{each}")
        for act in acts:
            answers_as_a_member(network, observer, f"/v1/acts/{act['issuer']}/{act['reference']}")
            answers_as_a_member(network, observer, f"/v1/transactions/{act['tx_id']}")
            issuer = act["issuer"].encode()
            key = b"act/" + bytes([0xA0 + len(issuer)]) + issuer + act["reference"].encode()
            answers_as_a_member(network, observer, f"/v1/state/deeds/{key.hex()}")
        answers_as_a_member(network, observer, f"/v1/query/deeds/acts/{member.member_id}")
        status, headers, body = get(f"{observer.api_url}/v1/bundle?from=0&count=256")
        assert status == 200 and headers["Sceau-Tip-Height"] == str(height)
        assert len(parse_frames(body, 0)[1]) == height
        for path in ("/healthz", "/metrics", "/openapi.json"):
            assert get(observer.api_url + path)[0] == 200, path


def test_a_receipt_from_an_observer_verifies_with_the_genesis(
    network: Network, tmp_path: Path
) -> None:
    act = network.anchor(network.members[0])
    observer = network.observers[1]
    wait_at_height([observer], network.tip())
    receipt = tmp_path / "receipt.json"
    command = [sys.executable, "-m", "node.tools.cli"]
    fetched = subprocess.run(
        [*command, "receipt", act["tx_id"], "--api", observer.api_url, "--out", str(receipt)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert fetched.returncode == 0, fetched.stderr
    checked = subprocess.run(
        [*command, "verify", str(receipt), "--genesis", str(network.directory / "genesis.json")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_submission_to_an_observer_is_refused_with_a_stable_code(network: Network) -> None:
    observer = network.observers[0]
    height = network.tip()
    for path in ("/v1/transactions", "/v1/transactions/signed"):
        status, headers, body = get(observer.api_url + path, data=b'{"transaction": "00"}')
        problem = json.loads(body)
        assert (status, problem["code"]) == (403, "observer_read_only"), problem
        assert headers["Content-Type"].startswith("application/problem+json")
        for member in network.members:
            assert member.api_url in problem["detail"]
    assert network.tip() == height


def test_a_killed_observer_resumes_from_its_tip(network: Network) -> None:
    network.anchor(network.members[2])
    observer = network.observers[0]
    wait_at_height([observer], network.tip())
    before = status_of(observer)
    assert before is not None and before["height"] > 0
    os.kill(observer.pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(observer.pid, 0)
    network.anchor(network.members[3])  # progress without it
    child = start_member(Path(observer.config_file).parent)
    restarted = dataclasses.replace(observer, pid=child.pid, start_ticks=None)
    write_devnet(
        network.directory,
        network.members,
        [restarted if o.member_id == observer.member_id else o for o in network.observers],
    )
    wait_at_height([restarted], network.tip())
    log = Path(observer.log_file).read_text()
    assert f"observer running: height {before['height']}," in log, log[-2000:]


class _TamperingSource(http.server.BaseHTTPRequestHandler):
    """Serves a member's bundle frames with one byte of the first certificate changed."""

    upstream = ""
    served = 0

    def do_GET(self) -> None:
        status, headers, body = get(self.upstream + self.path)
        if status == 200:
            first = int(self.path.split("from=")[1].split("&")[0])
            _, entries = parse_frames(body, first)
            if entries:
                block_hash = entries[0].certificate.block_hash
                at = body.index(block_hash)  # the first certificate's, in the first frame
                body = body[:at] + bytes([body[at] ^ 1]) + body[at + 1 :]
                type(self).served += 1
        self.send_response(status)
        for name in ("Content-Type", "Sceau-Tip-Height"):
            if headers.get(name) is not None:
                self.send_header(name, headers[name])
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_tampered_frame_is_refused_and_the_observer_goes_on_from_a_good_source(
    network: Network,
) -> None:
    network.anchor(network.members[0])
    _TamperingSource.upstream = network.members[0].api_url
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TamperingSource)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        tampering = f"http://127.0.0.1:{server.server_address[1]}"
        directory = network.directory / "observer-tampered"
        directory.mkdir()
        (port,) = _free_ports(1)
        _write_observer_config(
            directory / "node.toml", port, [tampering, network.members[1].api_url]
        )
        initialise_data_dir(directory / "data", network.genesis).close()
        child = start_member(directory)
        observer = MemberProcess(
            member_id="observer-tampered",
            name="observer following a tampering source first",
            pid=child.pid,
            api_url=f"http://127.0.0.1:{port}",
            peer_port=0,
            config_file=str(directory / "node.toml"),
            key_file="",
            log_file=str(directory / "node.log"),
        )
        write_devnet(network.directory, network.members, [*network.observers, observer])
        wait_at_height([observer], network.tip())
        status = status_of(observer)
        assert status is not None and status["blocks_refused"] >= 1
        assert _TamperingSource.served >= 1
        for each in range(1, status["height"] + 1):  # none from the tampering source
            assert get_json(f"{observer.api_url}/v1/blocks/{each}") == get_json(
                f"{network.members[1].api_url}/v1/blocks/{each}"
            )
        log = Path(observer.log_file).read_text()
        assert f"source {tampering} at height 1: refused: height 1: certificate" in log, log
        assert "Traceback" not in log
        _, _, metrics = get(f"{observer.api_url}/metrics")
        assert 'reason="block_refused:observer"' in metrics.decode()
    finally:
        server.shutdown()
        server.server_close()


# --- configuration: an observer has no key ----------------------------------------------------


def _sceau(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "node.tools.cli", *arguments],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_node_init_creates_an_observer_from_the_genesis_alone(
    network: Network, tmp_path: Path
) -> None:
    (tmp_path / "genesis.json").write_text((network.directory / "genesis.json").read_text())
    config = tmp_path / "observer.toml"
    config.write_text(
        'data_dir = "data"\ngenesis_file = "genesis.json"\napi_listen = "127.0.0.1:8799"\n'
        '\n[observer]\nfollow = ["http://127.0.0.1:8700"]\n'
    )
    initialised = _sceau("node", "init", "--config", str(config))
    assert initialised.returncode == 0, initialised.stderr
    assert (tmp_path / "data" / "chain" / "CURRENT").exists()


def test_an_observer_refuses_a_missing_chain_or_another_consortiums_genesis(
    network: Network, tmp_path: Path
) -> None:
    genesis = json.loads((network.directory / "genesis.json").read_text())
    (tmp_path / "genesis.json").write_text(json.dumps(genesis))
    config = tmp_path / "observer.toml"
    config.write_text(
        'data_dir = "data"\ngenesis_file = "genesis.json"\napi_listen = "127.0.0.1:0"\n'
        '\n[observer]\nfollow = ["http://127.0.0.1:8700"]\n'
    )
    missing = _sceau("node", "run", "--config", str(config))
    assert missing.returncode == 2 and "create it first with 'sceau node init" in missing.stderr
    assert _sceau("node", "init", "--config", str(config)).returncode == 0
    genesis["consortium"] += " (another)"
    (tmp_path / "genesis.json").write_text(json.dumps(genesis))
    other = _sceau("node", "run", "--config", str(config))
    assert other.returncode == 2, other.stderr
    assert "is not the genesis of the chain in" in other.stderr
    assert "Traceback" not in missing.stderr + other.stderr


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ('data_dir = "d"\ngenesis_file = "g.json"\n', "a member node needs member_id and key_file"),
        (
            'data_dir = "d"\ngenesis_file = "g.json"\nkey_file = "k.pem"\n'
            '[observer]\nfollow = ["http://127.0.0.1:8700"]\n',
            "an observer holds no key",
        ),
        ('data_dir = "d"\ngenesis_file = "g.json"\n[observer]\nfollow = []\n', "observer.follow"),
        (
            'data_dir = "d"\ngenesis_file = "g.json"\n[observer]\nfollow = ["ftp://x"]\n',
            "observer.follow",
        ),
        (
            'data_dir = "d"\ngenesis_file = "g.json"\n[observer]\nfollow = ["http://x:1"]\n'
            "batch_frames_max = 257\n",
            "observer.batch_frames_max",
        ),
    ],
)
def test_a_configuration_is_a_member_or_an_observer(tmp_path: Path, text: str, says: str) -> None:
    config = tmp_path / "node.toml"
    config.write_text(text)
    refused = _sceau("node", "init", "--config", str(config))
    assert refused.returncode == 2
    assert says in refused.stderr, refused.stderr


# --- the follower's verification, block by block (no processes) -------------------------------


def test_the_chain_follower_applies_the_audit_block_by_block_and_resumes_from_a_store(
    tmp_path: Path,
) -> None:
    """Eight blocks with two member set changes, followed into a fresh store: a block whose
    certificate was changed is refused and changes nothing; the same block, whole, passes; a
    follower built again on the reopened store goes on from its tip."""
    from test_bundle import reference_chain

    from ledger.audit import BlockRefused, ChainFollower
    from ledger.model import CommitCertificate
    from ledger.store import ChainStore
    from node.runtime.application import ChainApplication
    from node.runtime.mempool import Mempool, MempoolLimits
    from node.runtime.observer import StoreReplayer
    from node.tools.launch import engine_for

    source = reference_chain(tmp_path / "source")
    genesis = source.genesis
    tip = source.store.height
    assert tip == 8

    def follower_on(store: ChainStore) -> ChainFollower:
        application = ChainApplication(store, engine_for(genesis), Mempool(MempoolLimits()))
        position: dict[str, Any] = {}
        if store.height:
            block = store.block(store.height)
            assert block is not None
            position = {
                "height": store.height,
                "block_hash": block.block_hash,
                "timestamp_ms": block.header.timestamp_ms,
            }
        return ChainFollower(
            genesis,
            StoreReplayer(application),
            lambda block, certificate, _: application.commit(block, certificate),
            **position,
        )

    store = initialise_data_dir(tmp_path / "observer", genesis)
    follower = follower_on(store)
    for height in range(1, 6):
        block, certificate = source.store.block(height), source.store.certificate(height)
        assert block is not None and certificate is not None
        if height == 4:  # the first block of the new member set: a forged certificate
            forged = CommitCertificate(
                height=certificate.height,
                view=certificate.view,
                block_hash=bytes(32),
                signatures=certificate.signatures,
            )
            with pytest.raises(BlockRefused) as refused:
                follower.verify(block, forged)
            assert {failure.field for failure in refused.value.failures} >= {
                "certificate.block_hash"
            }
            assert (follower.height, store.height) == (3, 3)
        follower.verify(block, certificate)
        assert store.height == follower.height == height
    store.close()
    store = ChainStore.open(tmp_path / "observer" / "chain")
    follower = follower_on(store)
    for height in range(6, tip + 1):
        block, certificate = source.store.block(height), source.store.certificate(height)
        assert block is not None and certificate is not None
        follower.verify(block, certificate)
    assert store.tip == source.store.tip
    assert store.certificate(tip) == source.store.certificate(tip)
    store.close()
    source.close()


def test_devnet_up_with_observers_prints_them_and_down_stops_them(tmp_path: Path) -> None:
    directory = tmp_path / "cli-devnet"
    try:
        up = _sceau("devnet", "up", "--dir", str(directory), "--observers", "1")
        assert up.returncode == 0, up.stderr
        assert "1 observers (read only, following the members):" in up.stdout
        (observer,) = read_observers(directory)
        assert f"observer-1                   api {observer.api_url}" in up.stdout
        status = status_of(observer)
        assert status is not None and status["role"] == "observer"
    finally:
        down = _sceau("devnet", "down", "--dir", str(directory))
    assert down.returncode == 0, down.stderr
    assert "stopped 4 members: " in down.stdout and "observer" not in down.stdout.splitlines()[0]
    assert "stopped 1 observers: observer-1" in down.stdout
    assert not Path(f"/proc/{observer.pid}").exists() or status_of(observer) is None
    refused = _sceau("devnet", "up", "--dir", str(tmp_path / "x"), "--observers", "11")
    assert refused.returncode == 2 and "0 to 10 observers" in refused.stderr
